/* provider_mesh.c - the "mesh" provider: the built-in metrics
 * (request-success-rate, request-duration, error-rate) of a canary whose
 * traffic goes through a mesh or Gateway API, where canaryd's own proxy
 * sees none of it. They are read from Prometheus, as Flagger reads them:
 * with the query Flagger v1.44.0 runs for the canary's provider (the Go
 * files of pkg/metrics/observers, fluxcd/flagger 15bd6ad, copied below as
 * they are there), its variables filled as Flagger's toMetricModel fills
 * them, its whitespace collapsed as Flagger's Prometheus client does before
 * sending (trimQuery), from the Prometheus of --metrics-server (Flagger's
 * -metrics-server) or the canary's spec.metricsServer.
 *
 * What canaryd adds, each on the same series:
 * - error-rate, which Flagger has not built in: 100 minus the success
 *   rate, computed by Prometheus (`100 - (<Flagger's success-rate query>)`),
 *   so it is the share of the requests Flagger counts as failed: 5xx for
 *   Istio, OSM and the pods' own histogram, Linkerd's "failure"
 *   classification (5xx, and gRPC errors) for Linkerd;
 * - stable's value (a relative threshold, a baseline): the same query for
 *   the primary workload, <target>-primary, which is where Flagger runs
 *   the stable version. */
#include "provider.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* Flagger's queries, byte for byte: the text is the contract (Flagger's
 * own tests assert it, and users' dashboards and alerts copy it). */
static const mesh_observer observers[] = {
	/* istio.go: istio_requests_total and istio_request_duration_milliseconds_bucket,
	 * reported by the destination's sidecar */
	{ "istio",
	  "\n"
	  "\tsum(\n"
	  "\t\trate(\n"
	  "\t\t\tistio_requests_total{\n"
	  "\t\t\t\treporter=\"destination\",\n"
	  "\t\t\t\tdestination_workload_namespace=\"{{ namespace }}\",\n"
	  "\t\t\t\tdestination_workload=~\"{{ target }}\",\n"
	  "\t\t\t\tresponse_code!~\"5.*\"\n"
	  "\t\t\t}[{{ interval }}]\n"
	  "\t\t)\n"
	  "\t) \n"
	  "\t/ \n"
	  "\tsum(\n"
	  "\t\trate(\n"
	  "\t\t\tistio_requests_total{\n"
	  "\t\t\t\treporter=\"destination\",\n"
	  "\t\t\t\tdestination_workload_namespace=\"{{ namespace }}\",\n"
	  "\t\t\t\tdestination_workload=~\"{{ target }}\"\n"
	  "\t\t\t}[{{ interval }}]\n"
	  "\t\t)\n"
	  "\t) \n"
	  "\t* 100",
	  "\n"
	  "\thistogram_quantile(\n"
	  "\t\t0.99,\n"
	  "\t\tsum(\n"
	  "\t\t\trate(\n"
	  "\t\t\t\tistio_request_duration_milliseconds_bucket{\n"
	  "\t\t\t\t\treporter=\"destination\",\n"
	  "\t\t\t\t\tdestination_workload_namespace=\"{{ namespace }}\",\n"
	  "\t\t\t\t\tdestination_workload=~\"{{ target }}\"\n"
	  "\t\t\t\t}[{{ interval }}]\n"
	  "\t\t\t)\n"
	  "\t\t) by (le)\n"
	  "\t)",
	  1 },
	/* linkerd.go: the proxy's inbound response_total and response_latency_ms_bucket */
	{ "linkerd",
	  "\n"
	  "\tsum(\n"
	  "\t\trate(\n"
	  "\t\t\tresponse_total{\n"
	  "\t\t\t\tnamespace=\"{{ namespace }}\",\n"
	  "\t\t\t\tdeployment=~\"{{ target }}\",\n"
	  "\t\t\t\tclassification!=\"failure\",\n"
	  "\t\t\t\tdirection=\"inbound\"\n"
	  "\t\t\t}[{{ interval }}]\n"
	  "\t\t)\n"
	  "\t) \n"
	  "\t/ \n"
	  "\tsum(\n"
	  "\t\trate(\n"
	  "\t\t\tresponse_total{\n"
	  "\t\t\t\tnamespace=\"{{ namespace }}\",\n"
	  "\t\t\t\tdeployment=~\"{{ target }}\",\n"
	  "\t\t\t\tdirection=\"inbound\"\n"
	  "\t\t\t}[{{ interval }}]\n"
	  "\t\t)\n"
	  "\t) \n"
	  "\t* 100",
	  "\n"
	  "\thistogram_quantile(\n"
	  "\t\t0.99,\n"
	  "\t\tsum(\n"
	  "\t\t\trate(\n"
	  "\t\t\t\tresponse_latency_ms_bucket{\n"
	  "\t\t\t\t\tnamespace=\"{{ namespace }}\",\n"
	  "\t\t\t\t\tdeployment=~\"{{ target }}\",\n"
	  "\t\t\t\t\tdirection=\"inbound\"\n"
	  "\t\t\t\t}[{{ interval }}]\n"
	  "\t\t\t)\n"
	  "\t\t) by (le)\n"
	  "\t)",
	  1 },
	/* osm.go: osm_request_total and osm_request_duration_ms_bucket */
	{ "osm",
	  "\n"
	  "    sum(\n"
	  "        rate(\n"
	  "            osm_request_total{\n"
	  "\t\t\t\tdestination_namespace=\"{{ namespace }}\",\n"
	  "\t\t\t\tdestination_kind=\"Deployment\",\n"
	  "\t\t\t\tdestination_name=\"{{ target }}\",\n"
	  "\t\t\t\tresponse_code!~\"5.*\"\n"
	  "            }[{{ interval }}]\n"
	  "        )\n"
	  "    )\n"
	  "    /\n"
	  "    sum(\n"
	  "        rate(\n"
	  "            osm_request_total{\n"
	  "\t\t\t\tdestination_namespace=\"{{ namespace }}\",\n"
	  "\t\t\t\tdestination_kind=\"Deployment\",\n"
	  "\t\t\t\tdestination_name=\"{{ target }}\"\n"
	  "            }[{{ interval }}]\n"
	  "        )\n"
	  "    )\n"
	  "\t* 100",
	  "\n"
	  "\thistogram_quantile(\n"
	  "\t\t0.99,\n"
	  "\t\tsum(\n"
	  "\t\t  rate(\n"
	  "\t\t\tosm_request_duration_ms_bucket{\n"
	  "\t\t\t\tdestination_namespace=\"{{ namespace }}\",\n"
	  "\t\t\t\tdestination_kind=\"Deployment\",\n"
	  "\t\t\t\tdestination_name=\"{{ target }}\"\n"
	  "\t\t\t}[{{ interval }}]\n"
	  "\t\t  )\n"
	  "\t\t) by (le)\n"
	  "\t)",
	  1 },
	/* http.go (gatewayapi:*, kubernetes): the workload's own
	 * http_request_duration_seconds histogram, its pods found by name; seconds */
	{ "http",
	  "\n"
	  "\tsum(\n"
	  "\t\trate(\n"
	  "\t\t\thttp_request_duration_seconds_count{\n"
	  "\t\t\t\tkubernetes_namespace=\"{{ namespace }}\",\n"
	  "\t\t\t\tkubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\",\n"
	  "\t\t\t\tstatus!~\"5.*\"\n"
	  "\t\t\t}[{{ interval }}]\n"
	  "\t\t)\n"
	  "\t) \n"
	  "\t/ \n"
	  "\tsum(\n"
	  "\t\trate(\n"
	  "\t\t\thttp_request_duration_seconds_count{\n"
	  "\t\t\t\tkubernetes_namespace=\"{{ namespace }}\",\n"
	  "\t\t\t\tkubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"\n"
	  "\t\t\t}[{{ interval }}]\n"
	  "\t\t)\n"
	  "\t) \n"
	  "\t* 100",
	  "\n"
	  "\thistogram_quantile(\n"
	  "\t\t0.99,\n"
	  "\t\tsum(\n"
	  "\t\t\trate(\n"
	  "\t\t\t\thttp_request_duration_seconds_bucket{\n"
	  "\t\t\t\t\tkubernetes_namespace=\"{{ namespace }}\",\n"
	  "\t\t\t\t\tkubernetes_pod_name=~\"{{ target }}-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\"\n"
	  "\t\t\t\t}[{{ interval }}]\n"
	  "\t\t\t)\n"
	  "\t\t) by (le)\n"
	  "\t)",
	  1000 },
};

enum { OBS_ISTIO, OBS_LINKERD, OBS_OSM, OBS_HTTP };

/* Flagger's timeout for every Prometheus query (NewPrometheusProvider). */
#define MESH_TIMEOUT_MS 5000

static int starts(const char *s, const char *prefix)
{
	return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* The providers whose observers Flagger has and canaryd has not: their
 * routers are not driven either, and their queries need variables
 * (ingress, route, service) or Go template code canaryd does not fill. */
static const char *const without_queries[] = {
	"appmesh", "contour", "gloo", "nginx", "skipper", "traefik", "kuma", "apisix", "knative",
};

const mesh_observer *mesh_observer_for(const char *provider, int service_target, char *err,
                                       size_t errlen)
{
	/* smi:VERSION:MESH: Flagger picks the observer by its global
	 * -mesh-provider (a Flagger installed for Linkerd reads Linkerd's
	 * series for every canary); canaryd has no such flag, and the mesh the
	 * provider names is the same answer */
	if (!strcmp(provider, "smi") || starts(provider, "smi:")) {
		const char *mesh = strrchr(provider, ':');
		int has_mesh = mesh && mesh != strchr(provider, ':');
		if (has_mesh && !strcmp(mesh + 1, "linkerd"))
			return &observers[OBS_LINKERD];
		if (has_mesh && !strcmp(mesh + 1, "osm"))
			return &observers[OBS_OSM];
		if (has_mesh && !strcmp(mesh + 1, "istio"))
			return &observers[OBS_ISTIO];
		snprintf(err, errlen, "provider '%.64s' does not say which mesh's metrics to read: use "
		         "smi:VERSION:linkerd, smi:VERSION:osm or smi:VERSION:istio (or provider linkerd "
		         "or osm), or give the metric a query", provider);
		return NULL;
	}
	/* Flagger's factory (observers/factory.go), on the provider with
	 * ":service" appended when the target is a Service (scheduler_metrics.go):
	 * then only the prefix-matched providers keep their observer, the
	 * others fall back to Istio's, as they do in Flagger */
	char p[128];
	snprintf(p, sizeof p, "%s%s", provider, service_target ? ":service" : "");
	for (size_t i = 0; i < sizeof without_queries / sizeof without_queries[0]; i++) {
		const char *w = without_queries[i];
		int match = (!strcmp(w, "appmesh") || !strcmp(w, "gloo")) ? starts(p, w) : !strcmp(p, w);
		if (match) {
			snprintf(err, errlen, "canaryd has no Flagger queries for provider '%.64s': give "
			         "each built-in metric a query (or a templateRef)", provider);
			return NULL;
		}
	}
	if (!strcmp(p, "linkerd"))
		return &observers[OBS_LINKERD];
	if (!strcmp(p, "osm"))
		return &observers[OBS_OSM];
	if (!strcmp(p, "kubernetes") || starts(p, "gatewayapi"))
		return &observers[OBS_HTTP];
	return &observers[OBS_ISTIO]; /* istio, and Flagger's default */
}

/* A string member of object <o>, or NULL. */
static const char *str_at(const json_t *o, const char *key)
{
	return json_string_value(json_object_get(o, key));
}

/* What Flagger calls the canary's provider: spec.provider (the default
 * mesh provider, istio, when absent), or canaryd's spec.router. */
static const char *provider_name(const cfg_canary *cc)
{
	if (!cc->flagger)
		return cc->router ? cc->router : "";
	const char *p = str_at(json_object_get(cc->raw, "spec"), "provider");
	return p && *p ? p : "istio";
}

int provider_is_mesh(const cfg_canary *cc)
{
	/* every Flagger provider is a Kubernetes one */
	if (cc->flagger)
		return 1;
	return cc->router && (!strcmp(cc->router, "istio") || !strcmp(cc->router, "gatewayapi") ||
	                      !strcmp(cc->router, "smi"));
}

const char *mesh_server(const cfg_canary *cc)
{
	const char *s = str_at(json_object_get(cc->raw, "spec"), "metricsServer");
	return s && *s ? s : provider_metrics_server();
}

/* Go's regexp \s: the blanks trimQuery collapses. */
static int go_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

/* The observer of <cc>, or NULL with <err>. */
static const mesh_observer *observer_of(const cfg_canary *cc, char *err, size_t errlen)
{
	const json_t *tref = json_object_get(json_object_get(cc->raw, "spec"), "targetRef");
	const char *kind = str_at(tref, "kind");
	return mesh_observer_for(provider_name(cc), kind && !strcmp(kind, "Service"), err, errlen);
}

int mesh_query(const cfg_canary *cc, eng_metric_kind kind, int stable, const char *interval,
               buf *out, char *err, size_t errlen)
{
	const mesh_observer *ob = observer_of(cc, err, errlen);
	if (!ob)
		return -1;
	const json_t *tref = json_object_get(json_object_get(cc->raw, "spec"), "targetRef");
	if (kind != ENG_M_SUCCESS_RATE && kind != ENG_M_ERROR_RATE && kind != ENG_M_DURATION) {
		snprintf(err, errlen, "not a built-in metric");
		return -1;
	}
	/* toMetricModel: target is spec.targetRef.name (a canaryd/v1 document
	 * has none: its name); the namespace is the Canary's, the Kubernetes
	 * client's when the document does not say, as kubectl applies it and
	 * as the router writes the canary's objects */
	const char *target = cc->flagger ? str_at(tref, "name") : cc->name;
	if (!target || !*target) {
		snprintf(err, errlen, "spec.targetRef.name is needed: Flagger's queries select the "
		         "target's series");
		return -1;
	}
	buf tgt = BUF_INIT, q = BUF_INIT;
	buf_printf(&tgt, "%s%s", target, stable ? "-primary" : "");
	tmpl_vars v = {
		.name = cc->name,
		.namespace_ = cc->namespace_ && *cc->namespace_ ? cc->namespace_ :
		              provider_mesh_namespace(),
		.target = tgt.p,
		.interval = interval,
	};
	int rc = tmpl_render(kind == ENG_M_DURATION ? ob->duration : ob->success_rate, &v,
	                     TMPL_PROMQL, &q, err, errlen);
	buf_release(&tgt);
	if (rc < 0) {
		buf_release(&q);
		return -1;
	}
	if (kind == ENG_M_ERROR_RATE)
		buf_puts(out, "100 - (");
	/* trimQuery: every run of \s (Go's: space, \t, \n, \f, \r) becomes
	 * one space */
	for (size_t i = 0; i < q.len; i++) {
		if (go_space(q.p[i])) {
			while (i + 1 < q.len && go_space(q.p[i + 1]))
				i++;
			buf_append(out, " ", 1);
		} else {
			buf_append(out, &q.p[i], 1);
		}
	}
	if (kind == ENG_M_ERROR_RATE)
		buf_puts(out, ")");
	buf_release(&q);
	return 0;
}

/* ---- the provider ---- */

typedef struct mesh_read {
	provider_fn done;
	void *arg;
	double to_ms;   /* request-duration: the unit's factor; 0 otherwise */
} mesh_read;

static void on_value(void *arg, int has_data, double value, const char *reason)
{
	mesh_read *m = arg;
	/* Flagger keeps whole milliseconds: time.Duration(int64(value)) */
	if (has_data && m->to_ms > 0)
		value = trunc(value * m->to_ms);
	m->done(m->arg, has_data, value, reason);
	free(m);
}

static int mesh_describe(const provider_env *env, const cfg_metric_source *src,
                         const provider_window *w, buf *out, char *err, size_t errlen)
{
	return mesh_query(env->cc, w->kind, w->w.which != RD_CANARY, w->vars.interval, out, err,
	                  errlen);
}

static int mesh_read_start(const provider_env *env, const cfg_metric_source *src,
                           const provider_window *w, provider_fn done, void *arg, char *err,
                           size_t errlen)
{
	const char *server = mesh_server(env->cc);
	if (!server) {
		snprintf(err, errlen, "no Prometheus to read from (--metrics-server)");
		return -1;
	}
	buf q = BUF_INIT;
	if (mesh_describe(env, src, w, &q, err, errlen) < 0) {
		buf_release(&q);
		return -1;
	}
	/* the rendered query is read as a prometheus metric's: same request,
	 * same strict reading of the answer */
	cfg_metric_source prom = {
		.type = CFG_PROVIDER_PROMETHEUS,
		.address = (char *)server,
		.query = q.p,
		.timeout_ms = MESH_TIMEOUT_MS,
	};
	mesh_read *m = xcalloc(1, sizeof *m);
	m->done = done;
	m->arg = arg;
	if (w->kind == ENG_M_DURATION)
		m->to_ms = observer_of(env->cc, err, errlen)->duration_to_ms; /* found above */
	int rc = provider_prometheus.read(env, &prom, w, on_value, m, err, errlen);
	if (rc < 0)
		free(m);
	buf_release(&q);
	return rc;
}

int provider_url_ok(const char *s)
{
	size_t scheme = starts(s, "http://") ? 7 : starts(s, "https://") ? 8 : 0;
	if (!scheme || !s[scheme] || s[scheme] == '/' || strlen(s) > 2048)
		return 0;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

static int mesh_check(const cfg_canary *cc, int i, char *err, size_t errlen)
{
	const eng_metric *m = &cc->policy.metrics[i];
	char why[256];
	if (cc->policy.judge == ENG_JUDGE_SEQUENTIAL) {
		snprintf(err, errlen, "canary '%s': the sequential judge counts the requests of "
		         "canaryd's own proxy, and a mesh canary's requests do not pass through it; use "
		         "the threshold judge", cc->name);
		return -1;
	}
	/* Flagger's spec.metricsServer: empty is unset */
	const json_t *ms = json_object_get(json_object_get(cc->raw, "spec"), "metricsServer");
	const char *mss = json_string_value(ms);
	if (ms && !json_is_null(ms) && (!mss || (*mss && !provider_url_ok(mss)))) {
		snprintf(err, errlen, "canary '%s': spec.metricsServer must be an http:// or https:// "
		         "URL such as http://127.0.0.1:9090", cc->name);
		return -1;
	}
	/* what the query needs first (a mesh whose series it knows, a target
	 * it can name), then where to send it */
	buf q = BUF_INIT;
	int rc = mesh_query(cc, m->kind, 0, "1m", &q, why, sizeof why);
	buf_release(&q);
	if (rc < 0) {
		snprintf(err, errlen, "canary '%s': metric '%s': %s", cc->name, m->name, why);
		return -1;
	}
	if (!mesh_server(cc)) {
		snprintf(err, errlen, "canary '%s': metric '%s' is read from Prometheus with Flagger's "
		         "%s query: start canaryd with --metrics-server URL (or set spec.metricsServer)",
		         cc->name, m->name, provider_name(cc));
		return -1;
	}
	return 0;
}

const provider_ops provider_mesh = {
	.name = "mesh",
	.read = mesh_read_start,
	.check = mesh_check,
	.describe = mesh_describe,
};
