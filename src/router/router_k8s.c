/* router_k8s.c - the Kubernetes routers: "istio" (VirtualService and two
 * DestinationRules), "gatewayapi" (HTTPRoute) and "smi" (TrafficSplit), and
 * the Flagger providers that map onto them (istio, linkerd, osm,
 * smi:VERSION:MESH, gatewayapi:v1, gatewayapi:v1beta1, gatewayapi). A
 * Canary means what it means to Flagger (docs/routers.md, "Driving a
 * cluster"): spec.targetRef names the Deployment users update.
 *
 * A split is carried out in steps (start_split), each a k8s_upsert (GET; on
 * 404 create; else PUT with the fetched resourceVersion, only when the live
 * object does not hold what is wanted; a 409 starts again from the GET) or
 * a wait: the primary Deployment and the Services when missing; the
 * target's pod template copied into the primary when the split's stable
 * revision is not the primary's, then a wait until the primary is
 * available with it (so that 100 % to the primary means the promoted
 * revision); the route objects Flagger v1.44.0 would hold for the split's
 * weight (render.h); for an HTTPRoute a wait until its parents accepted the
 * generation written; the target scaled up during a rollout, to zero
 * otherwise. The split is answered once the last step is done: what
 * canaryd then says is what the cluster holds. A failure (the mesh not
 * installed, a 403 with the RBAC rule, the API down, a wait past
 * progressDeadlineSeconds) is the split's error, one line; the controller
 * tries again later.
 *
 * Splits run one at a time per canary: one that arrives while another is
 * carried out waits, and one that waits is replaced by a newer one (the
 * replaced split is answered with the newer one's outcome, after it: the
 * controller ignores an answer older than one it had). A wait for the
 * primary or the gateway ends early for a split that wants something else.
 *
 * Watches (resumed, relisted on 410: k8s.h) follow the target (readiness,
 * and its pod template's hash: a new one is reported as a revision), the
 * primary, and the route object (an HTTPRoute's Accepted conditions; a
 * route changed by someone else is written again).
 *
 * One Kubernetes client serves every mesh canary of the daemon: made when
 * the first opens (from --kubeconfig, or the pod's service account), freed
 * when the last closes. */
#include "router_k8s.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "k8s.h"
#include "log.h"
#include "provider.h"
#include "render.h"
#include "util.h"

#define MAX_WAITING 64        /* replaced splits kept for their answer */
#define DRIFT_MIN_MS 1000     /* a route changed by someone else: written again
                               * at most this often */

/* ---- the client every mesh router shares ---- */

static const char *kubeconfig_path;
static k8s *shared;               /* NULL until the first mesh router opens */
static char shared_source[256];   /* where its configuration came from */
static size_t shared_refs;        /* open routers (not closed) */

typedef struct kroute kroute;
static kroute *zombies;           /* closed, waiting for an operation's answer */

void router_k8s_kubeconfig(const char *path)
{
	kubeconfig_path = path;
}

/* Takes a reference on the shared client, making it on <loop> the first
 * time. Returns it, or NULL with <err>. */
static k8s *client_get(uv_loop_t *loop, char *err, size_t errlen)
{
	if (shared) {
		shared_refs++;
		return shared;
	}
	k8s_config c;
	memset(&c, 0, sizeof c);
	char why[1024];
	int rc;
	if (kubeconfig_path) {
		rc = k8s_config_kubeconfig(&c, kubeconfig_path, NULL, why, sizeof why);
	} else if (getenv("KUBERNETES_SERVICE_HOST")) {
		k8s_incluster where = { NULL, NULL, NULL };
		rc = k8s_config_incluster(&c, &where, why, sizeof why);
	} else {
		snprintf(err, errlen, "no Kubernetes API to write to: give --kubeconfig FILE, or run "
		         "in a cluster (KUBERNETES_SERVICE_HOST is not set)");
		return NULL;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s", why);
		k8s_config_release(&c);
		return NULL;
	}
	shared = k8s_new(loop, &c, why, sizeof why);
	snprintf(shared_source, sizeof shared_source, "%s", c.source ? c.source : "");
	/* a Canary with no namespace is in the client's, where its objects
	 * are written: its mesh metrics are read there too */
	provider_set_mesh_namespace(shared ? c.namespace : NULL);
	k8s_config_release(&c);
	if (!shared) {
		snprintf(err, errlen, "%s", why);
		return NULL;
	}
	shared_refs = 1;
	return shared;
}

static void zombies_free(void);

/* Drops a reference; the last one frees the client, which ends every
 * operation still in flight without its callback. */
static void client_put(void)
{
	if (!shared || --shared_refs > 0)
		return;
	k8s_free(shared);
	shared = NULL;
	zombies_free();
}

/* ---- the router ---- */

/* A split: what the controller asked (the members are not kept: the
 * Services select the pods). */
typedef struct ksplit {
	uint64_t generation;
	int weight;
	bool watch_ready;
	char stable_rev[ENG_REV_LEN], canary_rev[ENG_REV_LEN];
	router_done_fn done;
	void *arg;
} ksplit;

/* One object a split writes, as the API last answered for it. */
typedef struct kobj {
	char api_version[128];
	char kind[64];
	char name[254];
	char ns[64];
	char resource_version[64];
	json_int_t generation;
} kobj;

/* What a step of a split does with its object (see start_split). */
typedef enum {
	STEP_CREATE = 0,  /* create when missing, else leave it as it is */
	STEP_PRIMARY,     /* the primary Deployment, created from the target */
	STEP_PROMOTE,     /* the target's pod template into the primary */
	STEP_WAIT,        /* until the primary runs the stable revision, available */
	STEP_ROUTE,       /* Flagger's write: the desired spec when it differs */
	STEP_SCALE,       /* the target's replicas */
	STEP_ACCEPT,      /* until every parent Accepted the HTTPRoute as written */
} step_kind;

/* How a rollout's iterations are routed (Flagger's scheduler, not the
 * engine's weight: the engine sends the iterations of A/B testing and
 * blue/green as weight 0, and the router alone knows what they mean). */
typedef enum {
	ITER_WEIGHTS = 0, /* the split's weight, as in every step */
	ITER_AB,          /* runAB: the matched route all to the canary, the rest
	                   * to the primary (rendered at weight 100) */
	ITER_MIRROR,      /* runBlueGreen with mirror: the weight, mirrored */
} iter_mode;

struct kroute {
	router base;
	uv_loop_t *loop;
	char *name;                   /* the canary's */
	json_t *doc;                  /* its document (cfg_canary.raw, a reference) */
	char *provider;               /* cc->router */
	render_target target;
	uint64_t deadline_ms;         /* progressDeadlineSeconds */
	k8s *k;
	router_events ev;             /* cleared by retire */
	bool retired, closed, timer_closed;
	int ops;                      /* k8s operations in flight (each holds <kr>) */
	kroute *next_zombie;
	uv_timer_t timer;             /* bounds STEP_WAIT */

	/* the split being written, step by step */
	bool busy;
	ksplit cur;
	json_t *steps;                /* [{"step": KIND, "object": {...}}] */
	size_t at;
	const json_t *writing;        /* steps[at].object */
	char run_rev[ENG_REV_LEN];    /* the revision the primary must run */
	int route_weight;             /* the canary's weight in the routes */
	bool route_mirror;            /* and whether they mirror to the canary */
	iter_mode iter;               /* how the document's iterations are routed */
	char services_for[ENG_REV_LEN]; /* the rollout the Services were checked for */
	bool failed;                  /* the last split failed: check everything */
	json_t *audits;               /* messages of the writes, sent at the end */
	json_t *last_route;           /* the route object as last written */
	uint64_t drift_ms;            /* when it was last written again (on_route) */
	json_t *route_obj;            /* the route as last watched */
	json_int_t accept_gen;        /* the HTTPRoute generation written */
	step_kind kind;               /* steps[at].step */
	bool discovered;              /* the route's API group is served */
	/* the splits that arrived meanwhile: the last is written next, the
	 * others are answered with its outcome */
	ksplit wait[MAX_WAITING];
	size_t n_wait;

	/* what status shows */
	kobj *objs;
	size_t n_objs;

	/* the workload (spec.targetRef) and its primary, as watched */
	char target_name[254];        /* "" when the document names none */
	char primary_name[262];       /* <target>-primary */
	char ns[64];                  /* metadata.namespace, "" for the client's */
	k8s_watch *w_deploy, *w_primary, *w_route;
	json_t *target_obj, *primary_obj;
	char target_rev[ENG_REV_LEN]; /* the hash of the target's pod template */
	char reported_rev[ENG_REV_LEN];
	bool watch_ready;             /* of the split in force */
	int deploy_ok, route_ok;      /* 1 ready, 0 not yet, -1 failed */
	char deploy_why[512], route_why[512];
	char route_name[254];         /* the apex */
};

static void kr_free(kroute *kr)
{
	json_decref(kr->doc);
	json_decref(kr->steps);
	json_decref(kr->audits);
	json_decref(kr->last_route);
	json_decref(kr->route_obj);
	json_decref(kr->target_obj);
	json_decref(kr->primary_obj);
	free(kr->objs);
	free(kr->provider);
	free(kr->name);
	free(kr);
}

/* Frees a closed router once nothing refers to it: no operation in flight,
 * its timer closed. */
static void maybe_free(kroute *kr)
{
	if (!kr->closed || !kr->timer_closed || kr->ops > 0)
		return;
	for (kroute **p = &zombies; *p; p = &(*p)->next_zombie)
		if (*p == kr) {
			*p = kr->next_zombie;
			break;
		}
	kr_free(kr);
}

static void zombies_free(void)
{
	/* the client is gone with every operation: none will answer */
	kroute *kr = zombies, *next;
	for (; kr; kr = next) {
		next = kr->next_zombie;
		kr->ops = 0;
		maybe_free(kr);
	}
}

static const router_ops *ops_of(render_router r)
{
	switch (r) {
	case RENDER_ISTIO: return &router_istio;
	case RENDER_GATEWAYAPI: return &router_gatewayapi;
	case RENDER_SMI: return &router_smi;
	}
	return NULL;
}

const router_ops *router_k8s_find(const char *provider)
{
	render_target t;
	char note[256], err[512];
	if (!provider || !*provider || !strcmp(provider, "builtin") || !strcmp(provider, "haproxy"))
		return NULL;
	if (render_target_of(provider, &t, note, sizeof note, err, sizeof err) < 0)
		return NULL;
	return ops_of(t.router);
}

/* The plural resource name of an object's kind (the ones written here). */
static const char *resource_of(const char *kind)
{
	static const char *const map[][2] = {
		{ "VirtualService", "virtualservices" }, { "DestinationRule", "destinationrules" },
		{ "HTTPRoute", "httproutes" }, { "TrafficSplit", "trafficsplits" },
		{ "Service", "services" }, { "Deployment", "deployments" },
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (kind && !strcmp(map[i][0], kind))
			return map[i][1];
	return NULL;
}

/* Splits "group/version" (or "v1") into <group> and <version>. */
static void split_api(const char *api, char *group, size_t gl, char *version, size_t vl)
{
	const char *slash = strchr(api, '/');
	if (slash) {
		snprintf(group, gl, "%.*s", (int)(slash - api), api);
		snprintf(version, vl, "%s", slash + 1);
	} else {
		group[0] = '\0';
		snprintf(version, vl, "%s", api);
	}
}

/* Renders the route objects of <doc> for weight <w> (mirrored to the
 * canary with <mirror>), or returns NULL with every error in <err>.
 * <cookie> is the session-affinity value. */
static json_t *render_for(const json_t *doc, const char *provider, int w, bool mirror,
                          const char *cookie, char *err, size_t errlen)
{
	render_opts o = { .provider = provider,
	                  .split = { .weight = w, .mirror = mirror, .cookie = cookie,
	                             .primary_cookie = cookie } };
	render_result r;
	json_t *objs = NULL;
	if (render_canary(doc, &o, &r) == 0) {
		objs = json_incref(r.objects);
	} else {
		size_t n = 0, i;
		json_t *e;
		err[0] = '\0';
		json_array_foreach(r.errors, i, e)
			n += (size_t)snprintf(err + (n < errlen ? n : errlen), n < errlen ? errlen - n : 0,
			                      "%s%s", i ? "; " : "", json_string_value(e));
	}
	render_result_release(&r);
	return objs;
}

/* The apex: the name of the route object (the last one rendered). */
static void apex_of(const json_t *doc, const char *provider, char *out, size_t outlen)
{
	char why[512];
	json_t *objs = render_for(doc, provider, 0, false, "aaaaaaaaaa", why, sizeof why);
	const json_t *last = json_array_get(objs, json_array_size(objs) - 1);
	const char *n = json_string_value(json_object_get(json_object_get(last, "metadata"),
	                                                  "name"));
	snprintf(out, outlen, "%s", n ? n : "");
	json_decref(objs);
}

static uint64_t fnv(uint64_t h, const char *p)
{
	for (; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	return h;
}

/* Session affinity needs a cookie value while the canary has weight
 * (Flagger draws 10 random letters per rollout and keeps them in the
 * Canary's status). canaryd derives them from the canary and its revision:
 * the same rollout keeps its value across restarts, a new one gets a new
 * value. */
static void cookie_of(const char *name, const char *rev, char out[11])
{
	uint64_t h = fnv(fnv(1469598103934665603ULL, name), "/");
	h = fnv(h, rev ? rev : "");
	for (int i = 0; i < 10; i++) {
		out[i] = (char)('a' + h % 26);
		h = h / 26 ^ (h << 7);
	}
	out[10] = '\0';
}

/* The revision of a Deployment's pod template: a hash of its canonical
 * JSON (keys sorted), as kubectl's pod-template-hash names a ReplicaSet.
 * "" when the object has no template. */
static void template_rev(const json_t *deploy, char *out, size_t outlen)
{
	const json_t *t = json_object_get(json_object_get(deploy, "spec"), "template");
	out[0] = '\0';
	if (!json_is_object(t))
		return;
	char *text = json_dumps(t, JSON_SORT_KEYS | JSON_COMPACT);
	if (!text)
		return;
	snprintf(out, outlen, "%016llx", (unsigned long long)fnv(1469598103934665603ULL, text));
	free(text);
}

#define REV_ANNOTATION "canaryd.io/revision"

static const char *rev_annotation(const json_t *deploy)
{
	return json_string_value(json_object_get(json_object_get(json_object_get(deploy,
	                         "metadata"), "annotations"), REV_ANNOTATION));
}

/* Flagger runs A/B testing or blue/green when analysis.iterations is set
 * (the configuration loader then drops the steps, as Flagger ignores
 * them); that is when the engine runs iterations too. */
static bool has_iterations(const cfg_canary *cc)
{
	return cc->policy.iterations > 0 && cc->policy.step_weight <= 0 &&
	       cc->policy.n_step_weights <= 0;
}

static iter_mode iter_mode_of(const cfg_canary *cc)
{
	const json_t *an = json_object_get(json_object_get(cc->raw, "spec"), "analysis");
	if (!has_iterations(cc))
		return ITER_WEIGHTS;
	if (json_array_size(json_object_get(an, "match")) > 0)
		return ITER_AB;
	if (json_is_true(json_object_get(an, "mirror")))
		return ITER_MIRROR;
	return ITER_WEIGHTS;
}

/* The A/B match and the mirror of <cc>: 0 when its routes can carry them
 * as Flagger's scheduler does, or -1 with <err>. What a route cannot
 * express is refused rather than written as something else: an A/B match
 * that SMI or a TCP route drops would send every request to the canary. */
static int iter_mode_check(const cfg_canary *cc, char *err, size_t errlen)
{
	const json_t *spec = json_object_get(cc->raw, "spec");
	const json_t *an = json_object_get(spec, "analysis");
	bool match = json_array_size(json_object_get(an, "match")) > 0;
	bool mirror = json_is_true(json_object_get(an, "mirror"));
	if (!match && !mirror)
		return 0;
	const char *key = match ? "match" : "mirror";
	const char *appp = json_string_value(json_object_get(json_object_get(spec, "service"),
	                                                      "appProtocol"));
	render_target t = { 0 };
	char note[256], why[512];
	if (render_target_of(cc->router, &t, note, sizeof note, why, sizeof why) == 0 &&
	    t.router == RENDER_SMI) {
		snprintf(err, errlen, "canary '%s': spec.analysis.%s: router '%s' cannot %s: an SMI "
		         "TrafficSplit has weights only (use istio or gatewayapi)", cc->name, key,
		         cc->router, match ? "run an A/B test" : "mirror traffic");
		return -1;
	}
	if (t.router == RENDER_ISTIO && appp && !strcasecmp(appp, "tcp")) {
		snprintf(err, errlen, "canary '%s': spec.analysis.%s: router '%s' cannot %s on a "
		         "TCP route (spec.service.appProtocol tcp has no request match or mirror)",
		         cc->name, key, cc->router, match ? "run an A/B test" : "mirror traffic");
		return -1;
	}
	if (!has_iterations(cc)) {
		snprintf(err, errlen, "canary '%s': spec.analysis.%s: router '%s' %s during "
		         "analysis.iterations only (%s); this canary shifts weight in steps",
		         cc->name, key, cc->router, match ? "runs A/B tests" : "mirrors traffic",
		         match ? "Flagger's A/B testing" : "Flagger's blue/green; the mirror step "
		         "before the first weight step is not run");
		return -1;
	}
	if (match && mirror) {
		snprintf(err, errlen, "canary '%s': spec.analysis.mirror: router '%s' does not mirror "
		         "an A/B test (Flagger's A/B testing ignores mirror): remove one", cc->name,
		         cc->router);
		return -1;
	}
	return 0;
}

static int k_check(const cfg_canary *cc, char *err, size_t errlen)
{
	char why[2048];
	/* the workloads are Deployments (spec.targetRef), which only a Flagger
	 * Canary names; a canaryd/v1 document's endpoints would be ignored */
	const json_t *t = json_object_get(json_object_get(json_object_get(cc->raw, "spec"),
	                                                  "targetRef"), "name");
	if (!cc->flagger || !json_is_string(t)) {
		snprintf(err, errlen, "canary '%s': router '%s' drives Kubernetes workloads: it needs "
		         "a Flagger Canary (apiVersion flagger.app/v1beta1) whose spec.targetRef "
		         "names the Deployment", cc->name, cc->router);
		return -1;
	}
	if (iter_mode_check(cc, err, errlen) < 0)
		return -1;
	const char *kind = json_string_value(json_object_get(json_object_get(json_object_get(
	                                     cc->raw, "spec"), "targetRef"), "kind"));
	if (kind && strcmp(kind, "Deployment") != 0) {
		snprintf(err, errlen, "canary '%s': spec.targetRef.kind '%.60s': router '%s' drives "
		         "Deployments only (Flagger also drives DaemonSets and Services)", cc->name,
		         kind, cc->router);
		return -1;
	}
	/* the routes of an iteration too, where they differ */
	iter_mode m = iter_mode_of(cc);
	json_t *objs = render_for(cc->raw, cc->router, 0, false, "aaaaaaaaaa", why, sizeof why);
	if (objs && m != ITER_WEIGHTS) {
		json_decref(objs);
		objs = render_for(cc->raw, cc->router, m == ITER_AB ? 100 : 0, m == ITER_MIRROR,
		                  "aaaaaaaaaa", why, sizeof why);
	}
	if (!objs) {
		snprintf(err, errlen, "canary '%s': router '%s' cannot render its objects: %s",
		         cc->name, cc->router, why);
		return -1;
	}
	json_decref(objs);
	return 0;
}

static void audit(kroute *kr, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void audit(kroute *kr, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	log_msg(LOG_INFO, kr->name, "router '%s': %s", kr->base.ops->name, msg);
	if (!kr->audits)
		kr->audits = json_array();
	json_array_append_new(kr->audits, json_string(msg));
}

/* Sends the audit events of the writes made: once a split is answered,
 * since the controller re-applies after recording one (a split that then
 * writes nothing). */
static void audits_flush(kroute *kr)
{
	json_t *a = kr->audits;
	kr->audits = NULL;
	size_t i;
	json_t *m;
	json_array_foreach(a, i, m)
		if (!kr->retired && kr->ev.audit)
			kr->ev.audit(kr->ev.arg, "router-write", json_string_value(m));
	json_decref(a);
}

/* ---- watches: readiness and revisions ---- */

static void report_ready(kroute *kr)
{
	if (!kr->watch_ready || kr->retired || !kr->ev.ready)
		return;
	bool ok = (!kr->target_name[0] || kr->deploy_ok == 1) &&
	          (kr->target.router != RENDER_GATEWAYAPI || kr->route_ok == 1);
	kr->ev.ready(kr->ev.arg, ok);
}

/* The one object a watch of <name> knows after <ev>: the object, or NULL
 * when it is gone or not there. */
static const json_t *watched(const k8s_event *ev, const char *name)
{
	if (ev->type == K8S_EV_DELETED)
		return NULL;
	if (ev->type != K8S_EV_SYNC)
		return ev->object;
	const json_t *items = json_object_get(ev->object, "items");
	size_t i;
	const json_t *it;
	json_array_foreach(items, i, it) {
		const char *n = json_string_value(json_object_get(json_object_get(it, "metadata"),
		                                                  "name"));
		if (n && !strcmp(n, name))
			return it;
	}
	return NULL;
}

static void step_wait_check(kroute *kr);

static void on_deploy(void *arg, const k8s_event *ev)
{
	kroute *kr = arg;
	if (ev->type == K8S_EV_BOOKMARK || ev->type == K8S_EV_ERROR)
		return; /* the watch goes on: what is known stays true */
	const json_t *d = watched(ev, kr->target_name);
	json_decref(kr->target_obj);
	kr->target_obj = d ? json_deep_copy(d) : NULL;
	if (!d) {
		kr->deploy_ok = 0;
		kr->target_rev[0] = '\0';
		snprintf(kr->deploy_why, sizeof kr->deploy_why, "Deployment '%s' does not exist",
		         kr->target_name);
	} else {
		kr->deploy_ok = k8s_deployment_ready(d, kr->deploy_why, sizeof kr->deploy_why);
		if (kr->deploy_ok == 1)
			kr->deploy_why[0] = '\0';
		template_rev(d, kr->target_rev, sizeof kr->target_rev);
	}
	report_ready(kr);
	/* a new pod template is a new revision: the controller decides */
	if (kr->target_rev[0] && strcmp(kr->target_rev, kr->reported_rev) != 0 && !kr->retired) {
		snprintf(kr->reported_rev, sizeof kr->reported_rev, "%s", kr->target_rev);
		if (kr->ev.revision)
			kr->ev.revision(kr->ev.arg, kr->target_rev);
	}
}

static void on_primary(void *arg, const k8s_event *ev)
{
	kroute *kr = arg;
	if (ev->type == K8S_EV_BOOKMARK || ev->type == K8S_EV_ERROR)
		return;
	const json_t *d = watched(ev, kr->primary_name);
	json_decref(kr->primary_obj);
	kr->primary_obj = d ? json_deep_copy(d) : NULL;
	step_wait_check(kr);
}

static void start_split(kroute *kr);

/* Whether the live route's spec <live> holds the desired <want>: what the
 * API fills in is ignored (k8s_json_subset), but not a mirror that
 * <want> does not have. A VirtualService route's mirror is a key of its
 * own, so a subset test would leave the mirror of the iterations in place
 * once the routes are written without it (an HTTPRoute's RequestMirror is
 * a filter in a list, whose length differs). */
static bool route_holds(const json_t *want, const json_t *live)
{
	if (!k8s_json_subset(want, live))
		return false;
	const json_t *wh = json_object_get(want, "http"), *lh = json_object_get(live, "http");
	for (size_t i = 0; i < json_array_size(lh); i++) {
		const json_t *w = json_array_get(wh, i), *l = json_array_get(lh, i);
		if ((json_object_get(l, "mirror") && !json_object_get(w, "mirror")) ||
		    (json_object_get(l, "mirrorPercentage") && !json_object_get(w, "mirrorPercentage")))
			return false;
	}
	return true;
}

static void on_route(void *arg, const k8s_event *ev)
{
	kroute *kr = arg;
	if (ev->type == K8S_EV_BOOKMARK || ev->type == K8S_EV_ERROR)
		return;
	const json_t *o = watched(ev, kr->route_name);
	/* someone else changed (or deleted) the route since canaryd wrote it:
	 * traffic no longer follows the split in force, so it is written
	 * again, as Flagger's next reconcile would (nobody waits for this
	 * write: the split was answered) */
	bool drift = kr->last_route && !kr->busy && !kr->failed && !kr->retired &&
	             (!o || !route_holds(json_object_get(kr->last_route, "spec"),
	                                 json_object_get(o, "spec")));
	/* at most once a second: two writers that disagree (another controller
	 * owning the route) must not make a storm of writes */
	if (drift && uv_now(kr->loop) < kr->drift_ms + DRIFT_MIN_MS) {
		log_msg(LOG_WARN, kr->name, "router '%s': '%s' changed outside canaryd again within "
		        "%dms: left as it is until the next split", kr->base.ops->name, kr->route_name,
		        DRIFT_MIN_MS);
	} else if (drift) {
		kr->drift_ms = uv_now(kr->loop);
		log_msg(LOG_WARN, kr->name, "router '%s': %s '%s' was %s outside canaryd: writing "
		        "it again", kr->base.ops->name, json_string_value(json_object_get(
		        kr->last_route, "kind")), kr->route_name, o ? "changed" : "deleted");
		kr->cur.done = NULL;
		start_split(kr);
	}
	json_decref(kr->route_obj);
	kr->route_obj = o ? json_deep_copy(o) : NULL;
	if (kr->target.router != RENDER_GATEWAYAPI)
		return;
	step_wait_check(kr);
	if (!o) {
		kr->route_ok = 0;
		snprintf(kr->route_why, sizeof kr->route_why, "HTTPRoute '%s' does not exist",
		         kr->route_name);
	} else {
		kr->route_ok = k8s_httproute_ready(o, kr->route_why, sizeof kr->route_why);
		if (kr->route_ok == 1)
			kr->route_why[0] = '\0';
	}
	report_ready(kr);
}

static void watches_stop(kroute *kr)
{
	k8s_watch *w[] = { kr->w_deploy, kr->w_primary, kr->w_route };
	for (size_t i = 0; i < 3; i++)
		if (w[i])
			k8s_watch_stop(w[i]);
	kr->w_deploy = kr->w_primary = kr->w_route = NULL;
}

/* The resource of the route object (the apex). */
static const char *route_resource(const kroute *kr)
{
	switch (kr->target.router) {
	case RENDER_ISTIO: return "virtualservices";
	case RENDER_GATEWAYAPI: return "httproutes";
	case RENDER_SMI: return "trafficsplits";
	}
	return "";
}

/* Reads from the document what the watches follow, and starts them.
 * Returns 0, or -1 with <err> when one cannot start (the client's 32
 * watches are taken: three a canary). */
static int watches_start(kroute *kr, char *err, size_t errlen)
{
	const json_t *spec = json_object_get(kr->doc, "spec");
	const char *t = json_string_value(json_object_get(json_object_get(spec, "targetRef"), "name"));
	const char *ns = json_string_value(json_object_get(json_object_get(kr->doc, "metadata"),
	                                                   "namespace"));
	snprintf(kr->target_name, sizeof kr->target_name, "%s", t ? t : "");
	snprintf(kr->primary_name, sizeof kr->primary_name, "%s-primary", t ? t : "");
	snprintf(kr->ns, sizeof kr->ns, "%s", ns ? ns : "");
	apex_of(kr->doc, kr->provider, kr->route_name, sizeof kr->route_name);
	kr->deploy_ok = kr->route_ok = 0;
	char why[512];
	const char *nsp = kr->ns[0] ? kr->ns : NULL;
	if (kr->target_name[0]) {
		k8s_ref ref = { "apps", "v1", "deployments", nsp, kr->target_name };
		kr->w_deploy = k8s_watch_start(kr->k, &ref, NULL, on_deploy, kr, why, sizeof why);
		if (!kr->w_deploy) {
			snprintf(err, errlen, "cannot watch the target Deployment: %s", why);
			return -1;
		}
		ref.name = kr->primary_name;
		kr->w_primary = k8s_watch_start(kr->k, &ref, NULL, on_primary, kr, why, sizeof why);
		if (!kr->w_primary) {
			snprintf(err, errlen, "cannot watch the primary Deployment: %s", why);
			watches_stop(kr);
			return -1;
		}
	}
	if (kr->route_name[0]) {
		char group[128], version[64];
		split_api(kr->target.api_version, group, sizeof group, version, sizeof version);
		k8s_ref ref = { group, version, route_resource(kr), nsp, kr->route_name };
		kr->w_route = k8s_watch_start(kr->k, &ref, NULL, on_route, kr, why, sizeof why);
		if (!kr->w_route) {
			snprintf(err, errlen, "cannot watch the route: %s", why);
			watches_stop(kr);
			return -1;
		}
	}
	return 0;
}

/* ---- the workloads (Flagger's kubernetes_default.go and deployment
 * controller, as far as canaryd drives them) ---- */

/* The selector label key of the target: the first of app, name,
 * app.kubernetes.io/name it has, as Flagger picks it. */
static const char *label_key(const json_t *deploy)
{
	static const char *const keys[] = { "app", "name", "app.kubernetes.io/name" };
	const json_t *ml = json_object_get(json_object_get(json_object_get(deploy, "spec"),
	                                                   "selector"), "matchLabels");
	for (size_t i = 0; i < 3; i++)
		if (json_is_string(json_object_get(ml, keys[i])))
			return keys[i];
	return NULL;
}

/* The target's pod template, relabelled for the primary. */
static json_t *primary_template(const json_t *target, const char *key, const char *primary)
{
	json_t *t = json_deep_copy(json_object_get(json_object_get(target, "spec"), "template"));
	json_t *m = json_object_get(t, "metadata");
	if (!json_is_object(m)) {
		m = json_object();
		json_object_set_new(t, "metadata", m);
	}
	json_t *l = json_object_get(m, "labels");
	if (!json_is_object(l)) {
		l = json_object();
		json_object_set_new(m, "labels", l);
	}
	json_object_set_new(l, key, json_string(primary));
	return t;
}

/* The three ClusterIP Services Flagger makes: <apex> and <apex>-primary
 * select the primary's pods, <apex>-canary the target's. */
static void add_services(kroute *kr, json_t *steps, const char *key)
{
	const json_t *svc = json_object_get(json_object_get(kr->doc, "spec"), "service");
	json_int_t port = json_integer_value(json_object_get(svc, "port"));
	const json_t *tp = json_object_get(svc, "targetPort");
	const char *pname = json_string_value(json_object_get(svc, "portName"));
	const char *proto = json_string_value(json_object_get(svc, "appProtocol"));
	const char *names[3][2] = { { "", "primary" }, { "-primary", "primary" },
	                            { "-canary", "target" } };
	for (int i = 0; i < 3; i++) {
		char name[300];
		snprintf(name, sizeof name, "%s%s", kr->route_name, names[i][0]);
		json_t *p = json_pack("{s:s,s:s,s:I}", "name", pname ? pname : "http",
		                      "protocol", "TCP", "port", port);
		json_object_set_new(p, "targetPort", json_is_integer(tp) || json_is_string(tp) ?
		                    json_deep_copy(tp) : json_integer(port));
		if (proto)
			json_object_set_new(p, "appProtocol", json_string(proto));
		json_t *o = json_pack("{s:s,s:s,s:{s:s},s:{s:s,s:{s:s},s:[o]}}",
		                      "apiVersion", "v1", "kind", "Service",
		                      "metadata", "name", name,
		                      "spec", "type", "ClusterIP", "selector", key,
		                      names[i][1][0] == 'p' ? kr->primary_name : kr->target_name,
		                      "ports", p);
		if (kr->ns[0])
			json_object_set_new(json_object_get(o, "metadata"), "namespace",
			                    json_string(kr->ns));
		json_array_append_new(steps, json_pack("{s:i,s:o}", "step", STEP_CREATE, "object", o));
	}
}

/* A step on a Deployment (the target or the primary): <o> names it. */
static json_t *deploy_ref(kroute *kr, const char *name)
{
	json_t *o = json_pack("{s:s,s:s,s:{s:s}}", "apiVersion", "apps/v1", "kind", "Deployment",
	                      "metadata", "name", name);
	if (kr->ns[0])
		json_object_set_new(json_object_get(o, "metadata"), "namespace", json_string(kr->ns));
	return o;
}

/* ---- applying a split ---- */

static void next_step(kroute *kr);
static void start_split(kroute *kr);

/* An operation's answer came: returns whether <kr> still wants it (else it
 * was closed meanwhile, and is freed once nothing refers to it). */
static bool op_back(kroute *kr)
{
	kr->ops--;
	if (!kr->closed)
		return true;
	maybe_free(kr);
	return false;
}

/* The split being written ends with <status> (and <err>): it is answered,
 * then the splits it replaced, then the next one starts. */
static void split_end(kroute *kr, int status, const char *err)
{
	json_decref(kr->steps);
	kr->steps = NULL;
	kr->writing = NULL;
	kr->busy = false;
	uv_timer_stop(&kr->timer);
	ksplit done = kr->cur;
	kr->failed = status < 0;
	if (!kr->retired && done.done)
		done.done(done.arg, done.generation, status, err);
	if (kr->n_wait == 0 || kr->retired) {
		audits_flush(kr);
		return;
	}
	/* all but the last waiting split were replaced: they get this outcome,
	 * after the answer above (which the controller keeps) */
	for (size_t i = 0; i + 1 < kr->n_wait; i++)
		if (!kr->retired && kr->wait[i].done)
			kr->wait[i].done(kr->wait[i].arg, kr->wait[i].generation, status, err);
	kr->cur = kr->wait[kr->n_wait - 1];
	kr->n_wait = 0;
	start_split(kr);
	audits_flush(kr);
}

/* Remembers what the API answered for an object. */
static void note_object(kroute *kr, const json_t *obj)
{
	const json_t *m = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(m, "name"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	const char *api = json_string_value(json_object_get(obj, "apiVersion"));
	if (!name || !kind)
		return;
	kobj *o = NULL;
	for (size_t i = 0; i < kr->n_objs; i++)
		if (!strcmp(kr->objs[i].name, name) && !strcmp(kr->objs[i].kind, kind))
			o = &kr->objs[i];
	if (!o) {
		kr->objs = xrealloc(kr->objs, (kr->n_objs + 1) * sizeof *kr->objs);
		o = &kr->objs[kr->n_objs++];
		memset(o, 0, sizeof *o);
		snprintf(o->name, sizeof o->name, "%s", name);
		snprintf(o->kind, sizeof o->kind, "%s", kind);
	}
	const char *ns = json_string_value(json_object_get(m, "namespace"));
	const char *rv = json_string_value(json_object_get(m, "resourceVersion"));
	snprintf(o->api_version, sizeof o->api_version, "%s", api ? api : "");
	snprintf(o->ns, sizeof o->ns, "%s", ns ? ns : "");
	snprintf(o->resource_version, sizeof o->resource_version, "%s", rv ? rv : "");
	o->generation = json_integer_value(json_object_get(m, "generation"));
}

/* The live object less what the API owns, to be written back changed. */
static json_t *writable(const json_t *live)
{
	json_t *o = json_deep_copy(live);
	json_object_del(o, "status");
	json_object_del(json_object_get(o, "metadata"), "managedFields");
	return o;
}

static void set_annotation(json_t *o, const char *key, const char *value)
{
	json_t *m = json_object_get(o, "metadata");
	json_t *a = json_object_get(m, "annotations");
	if (!json_is_object(a)) {
		a = json_object();
		json_object_set_new(m, "annotations", a);
	}
	json_object_set_new(a, key, json_string(value));
}

/* Flagger's route write: nothing when the live object already holds the
 * desired spec, labels and annotations (compared ignoring what the API
 * fills in); else the live object with the desired spec and metadata laid
 * over (k8s_upsert sets the resourceVersion it fetched). */
static int mutate_route(const json_t *want, const json_t *live, json_t **out)
{
	if (!live) {
		*out = json_deep_copy(want);
		return 1;
	}
	const json_t *wm = json_object_get(want, "metadata");
	const json_t *lm = json_object_get(live, "metadata");
	if (route_holds(json_object_get(want, "spec"), json_object_get(live, "spec")) &&
	    k8s_json_subset(json_object_get(wm, "labels"), json_object_get(lm, "labels")) &&
	    k8s_json_subset(json_object_get(wm, "annotations"), json_object_get(lm, "annotations")))
		return 0;
	json_t *o = writable(live);
	json_t *om = json_object_get(o, "metadata");
	const char *keys[] = { "labels", "annotations" };
	for (int i = 0; i < 2; i++) {
		const json_t *w = json_object_get(wm, keys[i]);
		if (!json_is_object(w))
			continue;
		json_t *l = json_object_get(om, keys[i]);
		if (!json_is_object(l)) {
			l = json_object();
			json_object_set_new(om, keys[i], l);
		}
		json_object_update(l, (json_t *)w);
	}
	json_object_set(o, "spec", json_object_get(want, "spec"));
	*out = o;
	return 1;
}

static int mutate(void *arg, const json_t *live, json_t **out, char *err, size_t errlen)
{
	kroute *kr = arg;
	const json_t *t = kr->target_obj;
	const char *key = t ? label_key(t) : NULL;
	switch (kr->kind) {
	case STEP_ROUTE:
		return mutate_route(kr->writing, live, out);
	case STEP_CREATE:
		if (live)
			return 0;
		*out = json_deep_copy(kr->writing);
		return 1;
	case STEP_PRIMARY: {
		if (live)
			return 0;
		if (!t || !key) {
			snprintf(err, errlen, "the target Deployment '%s' %s", kr->target_name, !t ?
			         "is not known yet (no such Deployment, or its watch has not listed it)" :
			         "has no app, name or app.kubernetes.io/name label in its selector");
			return -1;
		}
		json_t *o = writable(t);
		json_t *m = json_object_get(o, "metadata");
		json_t *nm = json_pack("{s:s}", "name", kr->primary_name);
		if (json_object_get(m, "namespace"))
			json_object_set(nm, "namespace", json_object_get(m, "namespace"));
		json_object_set_new(o, "metadata", nm);
		/* a list's items have no kind: the object written says it */
		json_object_set_new(o, "apiVersion", json_string("apps/v1"));
		json_object_set_new(o, "kind", json_string("Deployment"));
		char rev[ENG_REV_LEN];
		template_rev(t, rev, sizeof rev);
		set_annotation(o, REV_ANNOTATION, rev);
		json_t *spec = json_object_get(o, "spec");
		json_t *ml = json_object_get(json_object_get(spec, "selector"), "matchLabels");
		json_object_set_new(ml, key, json_string(kr->primary_name));
		json_object_set_new(spec, "template", primary_template(t, key, kr->primary_name));
		json_int_t n = json_integer_value(json_object_get(spec, "replicas"));
		if (n < 1)
			json_object_set_new(spec, "replicas", json_integer(1));
		*out = o;
		return 1;
	}
	case STEP_PROMOTE: {
		const char *want = json_string_value(json_object_get(json_object_get(kr->writing,
		                                     "metadata"), "revision"));
		const char *have = rev_annotation(live);
		if (!live) {
			snprintf(err, errlen, "the primary Deployment '%s' does not exist",
			         kr->primary_name);
			return -1;
		}
		if (have && !strcmp(have, want))
			return 0;
		if (!t || !key || strcmp(kr->target_rev, want) != 0) {
			/* the analysed template is gone: promoting another would route
			 * everything to a template nobody analysed */
			snprintf(err, errlen, "cannot promote revision %s: the target Deployment '%s' "
			         "now runs revision %s", want, kr->target_name,
			         kr->target_rev[0] ? kr->target_rev : "(unknown)");
			return -1;
		}
		json_t *o = writable(live);
		set_annotation(o, REV_ANNOTATION, want);
		json_object_set_new(json_object_get(o, "spec"), "template",
		                    primary_template(t, key, kr->primary_name));
		*out = o;
		return 1;
	}
	case STEP_SCALE: {
		json_int_t want = json_integer_value(json_object_get(json_object_get(kr->writing,
		                                     "spec"), "replicas"));
		if (!live) {
			snprintf(err, errlen, "the target Deployment '%s' does not exist", kr->target_name);
			return -1;
		}
		const json_t *r = json_object_get(json_object_get(live, "spec"), "replicas");
		json_int_t have = r ? json_integer_value(r) : 1;
		if (want < 0) /* scale up: to the primary's replicas, when at zero */
			want = have > 0 ? have : -want;
		if (have == want)
			return 0;
		json_t *o = writable(live);
		json_object_set_new(json_object_get(o, "spec"), "replicas", json_integer(want));
		*out = o;
		return 1;
	}
	case STEP_WAIT:
	case STEP_ACCEPT:
		break;
	}
	snprintf(err, errlen, "nothing to write");
	return -1;
}

static const char *step_what(step_kind k)
{
	switch (k) {
	case STEP_CREATE: return "created";
	case STEP_PRIMARY: return "created the primary";
	case STEP_PROMOTE: return "promoted: copied the target's pod template into";
	case STEP_SCALE: return "scaled";
	default: return "wrote";
	}
}

static void on_written(void *arg, const k8s_result *res)
{
	kroute *kr = arg;
	if (!op_back(kr))
		return;
	if (res->error) {
		split_end(kr, -1, res->error);
		return;
	}
	note_object(kr, res->object);
	const char *wname = json_string_value(json_object_get(json_object_get(kr->writing,
	                                      "metadata"), "name"));
	if (kr->kind == STEP_ROUTE && wname && !strcmp(wname, kr->route_name)) {
		json_decref(kr->last_route);
		kr->last_route = json_deep_copy(kr->writing);
		kr->accept_gen = json_integer_value(json_object_get(json_object_get(res->object,
		                                    "metadata"), "generation"));
	}
	if (res->written) {
		const json_t *m = json_object_get(res->object, "metadata");
		const char *kind = json_string_value(json_object_get(res->object, "kind"));
		const char *name = json_string_value(json_object_get(m, "name"));
		const char *rv = json_string_value(json_object_get(m, "resourceVersion"));
		char extra[128] = "";
		if (kr->kind == STEP_ROUTE)
			snprintf(extra, sizeof extra, ", canary weight %d%s%s", kr->route_weight,
			         kr->iter == ITER_AB && kr->route_weight == 100 ?
			         " on the A/B match" : "", kr->route_mirror ? ", mirrored" : "");
		else if (kr->kind == STEP_SCALE)
			snprintf(extra, sizeof extra, ", replicas %lld", (long long)json_integer_value(
			         json_object_get(json_object_get(res->object, "spec"), "replicas")));
		else if (kr->kind == STEP_PROMOTE || kr->kind == STEP_PRIMARY)
			snprintf(extra, sizeof extra, ", revision %s", rev_annotation(res->object) ?
			         rev_annotation(res->object) : "?");
		audit(kr, "%s %s '%s' (resourceVersion %s%s)%s%s", step_what(kr->kind),
		      kind ? kind : "?", name ? name : "?", rv ? rv : "?", extra,
		      res->warnings ? "; the API warns: " : "", res->warnings ? res->warnings : "");
	}
	kr->at++;
	next_step(kr);
}

/* A waiting step's readiness answer <ok> (k8s_*_ready: 1 ready, 0 not
 * yet, -1 never, with <why>): the next step, the split's end, or more
 * waiting. */
static void step_on_ready(kroute *kr, int ok, const char *why)
{
	if (ok == 0)
		return;
	if (ok < 0) {
		split_end(kr, -1, why);
		return;
	}
	kr->at++;
	next_step(kr);
}

/* STEP_WAIT: done once the primary runs the stable revision and is
 * available; progressDeadlineSeconds bounds it (kr->timer). */
static void step_wait_check(kroute *kr)
{
	char why[512];
	if (kr->busy && kr->writing && kr->kind == STEP_ACCEPT) {
		/* Flagger's GetRoutes: the route is not trusted until every parent
		 * accepted the generation written */
		const json_t *o = kr->route_obj;
		json_int_t gen = json_integer_value(json_object_get(json_object_get(o, "metadata"),
		                                                    "generation"));
		if (!o || gen < kr->accept_gen)
			return;
		step_on_ready(kr, k8s_httproute_ready(o, why, sizeof why), why);
		return;
	}
	if (!kr->busy || !kr->writing || kr->kind != STEP_WAIT)
		return;
	const char *want = kr->run_rev;
	const json_t *p = kr->primary_obj;
	const char *have = rev_annotation(p);
	if (!p || !have || strcmp(have, want) != 0)
		return;
	step_on_ready(kr, k8s_deployment_ready(p, why, sizeof why), why);
}

static void on_wait_timeout(uv_timer_t *t)
{
	kroute *kr = t->data;
	char why[512] = "";
	if (kr->kind == STEP_ACCEPT) {
		char err[1400];
		if (kr->route_obj)
			k8s_httproute_ready(kr->route_obj, why, sizeof why);
		snprintf(err, sizeof err, "HTTPRoute '%s' generation %lld not accepted by its parents "
		         "after %llus: %s", kr->route_name, (long long)kr->accept_gen,
		         (unsigned long long)(kr->deadline_ms / 1000), why[0] ? why : "not seen");
		split_end(kr, -1, err);
		return;
	}
	if (kr->primary_obj)
		k8s_deployment_ready(kr->primary_obj, why, sizeof why);
	char err[1400];
	snprintf(err, sizeof err, "the primary Deployment '%s' is not available with revision %s "
	         "after %llus: %s", kr->primary_name, kr->run_rev,
	         (unsigned long long)(kr->deadline_ms / 1000), why[0] ? why : "not seen");
	split_end(kr, -1, err);
}

static void next_step(kroute *kr)
{
	if (kr->at >= json_array_size(kr->steps)) {
		split_end(kr, 0, NULL);
		return;
	}
	const json_t *st = json_array_get(kr->steps, kr->at);
	kr->kind = (step_kind)json_integer_value(json_object_get(st, "step"));
	kr->writing = json_object_get(st, "object");
	if (kr->kind == STEP_WAIT || kr->kind == STEP_ACCEPT) {
		uv_timer_start(&kr->timer, on_wait_timeout, kr->deadline_ms, 0);
		step_wait_check(kr);
		return;
	}
	const char *api = json_string_value(json_object_get(kr->writing, "apiVersion"));
	const char *kind = json_string_value(json_object_get(kr->writing, "kind"));
	const json_t *m = json_object_get(kr->writing, "metadata");
	const char *name = json_string_value(json_object_get(m, "name"));
	const char *ns = json_string_value(json_object_get(m, "namespace"));
	const char *res = resource_of(kind);
	char group[128], version[64], err[1024];
	if (!api || !name || !res) {
		snprintf(err, sizeof err, "cannot write a %s: no apiVersion, name or known kind",
		         kind ? kind : "object");
		split_end(kr, -1, err);
		return;
	}
	split_api(api, group, sizeof group, version, sizeof version);
	k8s_ref ref = { group, version, res, ns, name };
	if (k8s_upsert(kr->k, &ref, mutate, kr, on_written, kr, err, sizeof err) < 0) {
		split_end(kr, -1, err);
		return;
	}
	kr->ops++;
}

static void on_discovered(void *arg, const k8s_result *res)
{
	kroute *kr = arg;
	if (!op_back(kr))
		return;
	if (res->error) {
		split_end(kr, -1, res->error);
		return;
	}
	kr->discovered = true;
	next_step(kr);
}

static void add_step(json_t *steps, step_kind k, json_t *obj)
{
	json_array_append_new(steps, json_pack("{s:i,s:o}", "step", (int)k, "object", obj));
}

/* Whether <k> is the engine's promotion (see start_split). */
static bool is_promotion(const kroute *kr, const ksplit *k)
{
	return !k->watch_ready && k->weight == 100 && k->canary_rev[0] && kr->target_name[0];
}

/* The canary's weight in the routes for <k>, and in *mirror whether they
 * mirror to it, as Flagger's scheduler routes each phase: the promotion's
 * 100 % is the primary's once it runs the canary's template; while a
 * rollout is analysed an A/B test sends its matched requests to the
 * canary and blue/green with mirror mirrors; otherwise (idle, rolled
 * back, promoted) no match reaches the canary and nothing is mirrored. */
static int route_split_of(const kroute *kr, const ksplit *k, bool *mirror)
{
	*mirror = false;
	if (is_promotion(kr, k))
		return 0;
	if (k->watch_ready && kr->iter == ITER_AB)
		return 100;
	*mirror = k->watch_ready && kr->iter == ITER_MIRROR;
	return k->weight;
}

/* The revision the primary must run for <k>. */
static const char *run_rev_of(const kroute *kr, const ksplit *k)
{
	return is_promotion(kr, k) ? k->canary_rev : k->stable_rev;
}

/* Plans the split kr->cur, then starts it. In order, as Flagger's
 * reconcile does: the primary Deployment (from the target, when missing)
 * and the three Services (when missing); when the stable revision is not
 * the primary's, the target's pod template copied into the primary, and
 * a wait until it is available with it (so that 100 % to the primary
 * means the promoted revision); the route objects; then the target scaled
 * up while a rollout runs, and to zero when none does (after a promotion
 * or a rollback). */
static void start_split(kroute *kr)
{
	char err[2048], cookie[11];
	kr->busy = true;
	cookie_of(kr->name, kr->cur.canary_rev, cookie);
	/* the engine promotes by sending 100 % to the canary's revision (the
	 * built-in proxy: to its endpoints); on Kubernetes that is Flagger's
	 * promotion: the primary gets the canary's pod template, then all the
	 * traffic. A weight of 100 while a rollout is analysed (set by hand) is
	 * routed as it says; the iterations of an A/B test or blue/green with
	 * mirror as Flagger routes them (route_split_of). */
	snprintf(kr->run_rev, sizeof kr->run_rev, "%s", run_rev_of(kr, &kr->cur));
	kr->route_weight = route_split_of(kr, &kr->cur, &kr->route_mirror);
	json_t *routes = render_for(kr->doc, kr->provider, kr->route_weight, kr->route_mirror,
	                            cookie, err, sizeof err);
	if (!routes) {
		split_end(kr, -1, err);
		return;
	}
	json_t *steps = json_array();
	const char *key = kr->target_obj ? label_key(kr->target_obj) : NULL;
	/* what the watches show done needs no request: the primary exists, the
	 * Services were there for this rollout, the primary runs the revision */
	if (kr->target_name[0]) {
		if (!kr->primary_obj)
			add_step(steps, STEP_PRIMARY, deploy_ref(kr, kr->primary_name));
		if (strcmp(kr->services_for, kr->cur.canary_rev) != 0 || kr->failed) {
			add_services(kr, steps, key ? key : "app");
			snprintf(kr->services_for, sizeof kr->services_for, "%s", kr->cur.canary_rev);
		}
		const char *have = rev_annotation(kr->primary_obj);
		if (kr->run_rev[0] && (!have || strcmp(have, kr->run_rev) != 0 ||
		                       k8s_deployment_ready(kr->primary_obj, err, sizeof err) != 1)) {
			json_t *o = deploy_ref(kr, kr->primary_name);
			json_object_set_new(json_object_get(o, "metadata"), "revision",
			                    json_string(kr->run_rev));
			add_step(steps, STEP_PROMOTE, o);
			add_step(steps, STEP_WAIT, deploy_ref(kr, kr->primary_name));
		}
	}
	size_t i;
	json_t *r;
	json_array_foreach(routes, i, r)
		add_step(steps, STEP_ROUTE, json_incref(r));
	json_decref(routes);
	if (kr->target.router == RENDER_GATEWAYAPI)
		add_step(steps, STEP_ACCEPT, json_object());
	if (kr->target_name[0]) {
		json_t *o = deploy_ref(kr, kr->target_name);
		/* -1: up to the primary's replicas (1 at least) when at zero */
		json_int_t n = kr->cur.watch_ready ? -1 : 0;
		if (n < 0 && kr->primary_obj) {
			json_int_t p = json_integer_value(json_object_get(json_object_get(
			               kr->primary_obj, "spec"), "replicas"));
			n = p > 0 ? -p : -1;
		}
		json_object_set_new(o, "spec", json_pack("{s:I}", "replicas", n));
		/* not before the primary is known to run the stable revision (the
		 * wait above): until then the target may be all that serves */
		const json_t *tr = json_object_get(json_object_get(kr->target_obj, "spec"), "replicas");
		json_int_t have = tr ? json_integer_value(tr) : 1;
		bool done = kr->target_obj && !kr->failed && (n == 0 ? have == 0 : have > 0);
		if ((kr->cur.watch_ready || kr->run_rev[0]) && !done)
			add_step(steps, STEP_SCALE, o);
		else
			json_decref(o);
	}
	kr->steps = steps;
	kr->at = 0;
	if (kr->discovered) {
		next_step(kr);
		return;
	}
	/* the route's API first: "Istio is not installed" says more than a 404
	 * on the object's path */
	char group[128], version[64];
	split_api(kr->target.api_version, group, sizeof group, version, sizeof version);
	const char *res = route_resource(kr);
	if (k8s_discover(kr->k, group, version, res, on_discovered, kr, err, sizeof err) < 0) {
		split_end(kr, -1, err);
		return;
	}
	kr->ops++;
}

static void k_apply(router *r, const router_split *s, router_done_fn done, void *arg)
{
	kroute *kr = (kroute *)r;
	bool was = kr->watch_ready;
	kr->watch_ready = s->watch_ready;
	ksplit k = { .generation = s->generation, .weight = s->weight,
	             .watch_ready = s->watch_ready, .done = done, .arg = arg };
	snprintf(k.stable_rev, sizeof k.stable_rev, "%s", s->stable_rev ? s->stable_rev : "");
	snprintf(k.canary_rev, sizeof k.canary_rev, "%s", s->canary_rev ? s->canary_rev : "");
	bool route_m;
	int route_w = route_split_of(kr, &k, &route_m);
	bool other_rev = strcmp(run_rev_of(kr, &k), kr->run_rev) != 0;
	if (kr->busy && kr->writing && kr->n_wait < MAX_WAITING &&
	    ((kr->kind == STEP_WAIT && other_rev) ||
	     (kr->kind == STEP_ACCEPT && (other_rev || route_w != kr->route_weight ||
	                                  route_m != kr->route_mirror)))) {
		/* a later split for another revision (a rollback) does not wait
		 * behind a promotion that waits, nor another route behind the
		 * acceptance of this one */
		kr->wait[kr->n_wait++] = k;
		split_end(kr, -1, kr->kind == STEP_WAIT ?
		          "replaced by a later split while the primary was not available" :
		          "replaced by a later split before the gateway accepted this one");
	} else if (kr->busy) {
		if (kr->n_wait == MAX_WAITING) {
			/* the oldest replaced split gets its answer now: a failure,
			 * which the controller ignores once a later one is answered */
			ksplit *o = &kr->wait[0];
			if (o->done)
				o->done(o->arg, o->generation, -1, "replaced by a later split");
			memmove(kr->wait, kr->wait + 1, (MAX_WAITING - 1) * sizeof *kr->wait);
			kr->n_wait--;
		}
		kr->wait[kr->n_wait++] = k;
	} else {
		kr->cur = k;
		start_split(kr);
	}
	if (s->watch_ready && !was)
		report_ready(kr); /* what the watches know already */
}

/* ---- the ops ---- */

static void k_close(router *r);

static int k_open(uv_loop_t *loop, const cfg_canary *cc, stats *st, const router_events *ev,
                  router **out, char *err, size_t errlen)
{
	(void)st; /* traffic does not pass through canaryd */
	render_target t;
	char note[512], why[1024];
	if (render_target_of(cc->router, &t, note, sizeof note, why, sizeof why) < 0) {
		snprintf(err, errlen, "canary '%s': %s", cc->name, why);
		return -1;
	}
	k8s *k = client_get(loop, why, sizeof why);
	if (!k) {
		snprintf(err, errlen, "canary '%s': router '%s': %s", cc->name, cc->router, why);
		return -1;
	}
	kroute *kr = xcalloc(1, sizeof *kr);
	kr->base.ops = ops_of(t.router);
	kr->loop = loop;
	kr->name = xstrdup(cc->name);
	kr->doc = json_incref(cc->raw);
	kr->provider = xstrdup(cc->router);
	kr->target = t;
	kr->iter = iter_mode_of(cc);
	kr->deadline_ms = cc->policy.progress_deadline_ms ? cc->policy.progress_deadline_ms : 600000;
	kr->k = k;
	kr->ev = *ev;
	uv_timer_init(loop, &kr->timer);
	kr->timer.data = kr;
	snprintf(kr->services_for, sizeof kr->services_for, "\n"); /* no revision: check them */
	if (note[0])
		log_msg(LOG_WARN, cc->name, "%s", note);
	if (watches_start(kr, why, sizeof why) < 0) {
		snprintf(err, errlen, "canary '%s': router '%s': %s", cc->name, cc->router, why);
		kr->retired = true;
		k_close(&kr->base);
		return -1;
	}
	log_msg(LOG_INFO, cc->name, "router '%s' writes %s through the Kubernetes API (%s)",
	        kr->base.ops->name, t.api_version, shared_source);
	*out = &kr->base;
	return 0;
}

static int k_prepare(router *r, const cfg_canary *cc, char *err, size_t errlen)
{
	(void)r;
	return k_check(cc, err, errlen);
}

static void k_finish(router *r, const cfg_canary *cc)
{
	kroute *kr = (kroute *)r;
	json_decref(kr->doc);
	kr->doc = json_incref(cc->raw);
	free(kr->provider);
	kr->provider = xstrdup(cc->router);
	char note[256], why[512];
	render_target_of(cc->router, &kr->target, note, sizeof note, why, sizeof why);
	kr->iter = iter_mode_of(cc);
	kr->deadline_ms = cc->policy.progress_deadline_ms ? cc->policy.progress_deadline_ms : 600000;
	kr->discovered = false;
	/* the workload or the route may have other names now */
	watches_stop(kr);
	json_decref(kr->target_obj);
	json_decref(kr->primary_obj);
	kr->target_obj = kr->primary_obj = NULL;
	kr->reported_rev[0] = '\0';
	snprintf(kr->services_for, sizeof kr->services_for, "\n");
	char err[600];
	if (watches_start(kr, err, sizeof err) < 0)
		log_msg(LOG_ERROR, kr->name, "router '%s': %s: the workload is not followed until "
		        "canaryd restarts", kr->base.ops->name, err);
}

static void k_cancel(router *r)
{
	(void)r;
}

static void k_status(router *r, json_t *o)
{
	kroute *kr = (kroute *)r;
	json_t *k = json_object();
	json_object_set_new(k, "api", json_string(shared_source));
	json_t *arr = json_array();
	for (size_t i = 0; i < kr->n_objs; i++) {
		const kobj *x = &kr->objs[i];
		json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:I}", "apiVersion", x->api_version,
		                      "kind", x->kind, "name", x->name,
		                      "resourceVersion", x->resource_version,
		                      "generation", (json_int_t)x->generation);
		if (x->ns[0])
			json_object_set_new(e, "namespace", json_string(x->ns));
		json_array_append_new(arr, e);
	}
	json_object_set_new(k, "objects", arr);
	if (kr->target_name[0]) {
		json_t *w = json_pack("{s:s,s:b}", "name", kr->target_name, "available",
		                      kr->deploy_ok == 1);
		if (kr->target_rev[0])
			json_object_set_new(w, "revision", json_string(kr->target_rev));
		if (kr->deploy_why[0])
			json_object_set_new(w, "waitingFor", json_string(kr->deploy_why));
		json_object_set_new(k, "workload", w);
		const char *pr = rev_annotation(kr->primary_obj);
		json_t *p = json_pack("{s:s}", "name", kr->primary_name);
		if (pr)
			json_object_set_new(p, "revision", json_string(pr));
		json_object_set_new(k, "primary", p);
	}
	if (kr->target.router == RENDER_GATEWAYAPI) {
		json_t *w = json_pack("{s:b}", "accepted", kr->route_ok == 1);
		if (kr->route_why[0])
			json_object_set_new(w, "waitingFor", json_string(kr->route_why));
		json_object_set_new(k, "route", w);
	}
	if (kr->busy && kr->kind == STEP_WAIT && kr->writing)
		json_object_set_new(k, "waitingFor", json_pack("{s:s,s:s}", "primary",
		                    kr->primary_name, "revision", kr->run_rev));
	if (kr->busy && kr->kind == STEP_ACCEPT && kr->writing)
		json_object_set_new(k, "waitingFor", json_pack("{s:s,s:I}", "accepted",
		                    kr->route_name, "generation", (json_int_t)kr->accept_gen));
	json_object_set_new(o, "kubernetes", k);
}

static size_t k_zero(router *r)
{
	(void)r;
	return 0;
}

static void k_drain(router *r)
{
	(void)r;
}

static void k_retire(router *r)
{
	kroute *kr = (kroute *)r;
	kr->retired = true;
	memset(&kr->ev, 0, sizeof kr->ev);
	watches_stop(kr);
	uv_timer_stop(&kr->timer);
}

static void timer_closed(uv_handle_t *h)
{
	kroute *kr = h->data;
	kr->timer_closed = true;
	maybe_free(kr);
}

static void k_close(router *r)
{
	kroute *kr = (kroute *)r;
	k_retire(r);
	kr->closed = true;
	/* freed once its timer is closed and no answer is due (or the client
	 * goes, with its last user, and with it every answer) */
	kr->next_zombie = zombies;
	zombies = kr;
	uv_close((uv_handle_t *)&kr->timer, timer_closed);
	client_put();
}

#define K8S_OPS(NAME) {                                                         \
	.name = NAME, .check = k_check, .open = k_open, .apply = k_apply,       \
	.prepare = k_prepare, .finish = k_finish, .cancel = k_cancel,           \
	.status = k_status, .inflight = k_zero, .connections = k_zero,          \
	.drain = k_drain, .retire = k_retire, .close = k_close,                 \
}

const router_ops router_istio = K8S_OPS("istio");
const router_ops router_gatewayapi = K8S_OPS("gatewayapi");
const router_ops router_smi = K8S_OPS("smi");
