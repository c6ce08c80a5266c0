/* cfg_metric.c - what a metric is read from (see config.h): the metrics
 * of spec.analysis, their providers (Prometheus and web) with their
 * queries, and MetricTemplate documents, kept until the whole file is
 * read so that a template may come after the canaries that use it, then
 * resolved into the metrics whose templateRef names them. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgload.h"
#include "template.h"
#include "util.h"

static const struct {
	const char *name;
	eng_metric_kind kind;
} builtin_metrics[] = {
	{ "request-success-rate", ENG_M_SUCCESS_RATE },
	{ "request-duration", ENG_M_DURATION },
	{ "error-rate", ENG_M_ERROR_RATE },
};

/* ---- metric sources: provider, query, templateRef ---- */

void cfg_src_release(cfg_metric_source *s)
{
	free(s->address);
	free(s->query);
	free(s->url);
	free(s->method);
	json_decref(s->headers);
	free(s->body);
	free(s->json_path);
	free(s->template_name);
	memset(s, 0, sizeof *s);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void src_copy(cfg_metric_source *dst, const cfg_metric_source *src)
{
	dst->type = src->type;
	dst->address = dup_or_null(src->address);
	dst->query = dup_or_null(src->query);
	dst->url = dup_or_null(src->url);
	dst->method = dup_or_null(src->method);
	dst->headers = src->headers ? json_deep_copy(src->headers) : NULL;
	dst->body = dup_or_null(src->body);
	dst->json_path = dup_or_null(src->json_path);
	dst->timeout_ms = src->timeout_ms;
	dst->template_name = dup_or_null(src->template_name);
}

/* http:// or https:// and a host. */
static bool url_ok(const char *s)
{
	size_t scheme = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
	return scheme && s[scheme] && s[scheme] != '/';
}

/* A fixed URL (no template): url_ok, and no blanks or control characters. */
bool cfg_address_ok(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	return url_ok(s);
}

/* The JSON paths a web metric can use: "$", then any of .NAME (letters,
 * digits, _ and -, not starting with a digit or -), [INDEX] and ["KEY"] or
 * ['KEY'] (KEY without that quote). No wildcards, filters or slices: the
 * path names exactly one number. */
static bool json_path_ok(const char *s)
{
	if (*s++ != '$')
		return false;
	while (*s) {
		if (*s == '.') {
			s++;
			if (!isalpha((unsigned char)*s) && *s != '_')
				return false;
			while (isalnum((unsigned char)*s) || *s == '_' || *s == '-')
				s++;
		} else if (*s == '[') {
			s++;
			if (isdigit((unsigned char)*s)) {
				while (isdigit((unsigned char)*s))
					s++;
			} else if (*s == '"' || *s == '\'') {
				char q = *s++;
				const char *start = s;
				while (*s && *s != q)
					s++;
				if (!*s || s == start)
					return false;
				s++;
			} else {
				return false;
			}
			if (*s != ']')
				return false;
			s++;
		} else {
			return false;
		}
	}
	return true;
}

/* Checks the template <s>, the value of node <v> at <path>; false when
 * reported (an unknown variable, an unclosed "{{"). */
static bool check_template(doc *d, const char *path, yaml_node_t *v, const char *s)
{
	char msg[256];
	if (tmpl_check(s, msg, sizeof msg) == 0)
		return true;
	cfg_err_at(d->x, v, "%s: %s", path, msg);
	return false;
}

static void h_method(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	static const char *const methods[] = { "GET", "POST" };
	src_in *si = obj;
	cfg_read_one_of(d, path, v, methods, N_OF(methods), &si->s.method);
}

/* RFC 9110 token characters. */
static bool header_name_ok(const char *s, size_t len)
{
	if (!len || strlen(s) != len)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

/* A header value: one line, and a template that renders. */
static bool header_value_ok(doc *d, const char *p, yaml_node_t *pv)
{
	return cfg_controls_ok(d, p, pv, false) && check_template(d, p, pv, cfg_sval(pv));
}

/* A web metric's headers: name -> value template. In a Flagger
 * MetricTemplate the key is Flagger's (name -> list of values for its
 * providers): kept in <raw>, not used. */
static void h_headers(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	src_in *si = obj;
	if (d->x->flagger && d->x->in_template && v->type == YAML_MAPPING_NODE)
		return;
	json_t *o = cfg_read_string_map(d, path, v, "header names", header_name_ok,
	                            "not a valid header name", header_value_ok);
	if (!o)
		return;
	json_decref(si->s.headers);
	si->s.headers = o;
}

/* Rows in the order of the P_ enum below. */
static const field provider_fields[] = {
	{ "type", cfg_h_string, F_BOTH, offsetof(src_in, type), 0, 0 },
	{ "address", cfg_h_string, F_BOTH, offsetof(src_in, s.address), 0, 0 },
	{ "timeout", cfg_h_duration, F_BOTH, offsetof(src_in, s.timeout_ms), 100, 300000 },
	{ "url", cfg_h_string, F_BOTH, offsetof(src_in, s.url), 0, 0 },
	{ "method", h_method, F_BOTH, NOSTORE, 0, 0 },
	{ "headers", h_headers, F_BOTH, NOSTORE, 0, 0 },
	{ "body", cfg_h_text, F_BOTH, offsetof(src_in, s.body), 0, 0 },
	{ "jsonPath", cfg_h_string, F_BOTH, offsetof(src_in, s.json_path), 0, 0 },
	/* Flagger's, accepted and ignored (canaryd reads no Kubernetes secrets;
	 * TLS is always verified) */
	{ "secretRef", cfg_h_map, F_BOTH, NOSTORE, 0, 0 },
	{ "insecureSkipVerify", cfg_h_bool, F_BOTH, NOSTORE, 0, 0 },
	{ "region", NULL, F_FLAGGER, NOSTORE, 0, 0 },
};
enum { P_TYPE, P_ADDRESS, P_TIMEOUT, P_URL, P_METHOD, P_HEADERS, P_BODY, P_JSONPATH };

/* Flagger's provider types that canaryd does not speak. */
static const char *const flagger_providers[] = {
	"influxdb", "datadog", "externalmetrics", "stackdriver", "cloudwatch", "newrelic",
	"graphite", "dynatrace", "keptn", "splunk",
};

/* Checks a provider read into <si> (key <pk> at <ppath>, its keys in <ps>)
 * together with its query (<query>, taken; key <qk> and value <qv> at
 * <qpath>, or NULL when absent, in which case a missing query is reported
 * at <qwhere>) and fills si->s. Returns true when all is well. */
static bool finish_source(doc *d, const char *ppath, yaml_node_t *pk, const slot *ps,
                          src_in *si, char *query, const char *qpath, yaml_node_t *qk,
                          yaml_node_t *qv, yaml_node_t *qwhere)
{
	char got_[64];
	char p[PATH_LEN];
	size_t e0 = d->x->errs->n;
	si->s.query = query;
	if (!ps[P_TYPE].key) {
		cfg_err_at(d->x, pk, "%s.type: required (prometheus or web)", ppath);
		return false;
	}
	if (!si->type)
		return false; /* reported by cfg_read_string */
	cfg_join(p, ppath, "type");
	bool prom = !strcmp(si->type, "prometheus"), web = !strcmp(si->type, "web");
	if (!prom && !web) {
		size_t i = 0;
		while (i < N_OF(flagger_providers) && strcmp(flagger_providers[i], si->type))
			i++;
		if (i < N_OF(flagger_providers))
			cfg_err_at(d->x, ps[P_TYPE].val, "%s: provider type '%s' is not supported; use "
			       "prometheus, or a web metric", p, si->type);
		else
			cfg_err_at(d->x, ps[P_TYPE].val, "%s: must be prometheus or web, got %s", p,
			       GOT(ps[P_TYPE].val));
		return false;
	}
	if (web && d->x->flagger && d->x->in_template) {
		cfg_err_at(d->x, ps[P_TYPE].val, "%s: provider type 'web' is canaryd's: use apiVersion "
		       API_NATIVE " for this MetricTemplate", p);
		return false;
	}
	if (prom) {
		si->s.type = CFG_PROVIDER_PROMETHEUS;
		static const int web_only[] = { P_URL, P_METHOD, P_HEADERS, P_BODY, P_JSONPATH };
		for (size_t i = 0; i < N_OF(web_only); i++) {
			int r = web_only[i];
			if (!ps[r].key || (r == P_HEADERS && d->x->flagger && d->x->in_template))
				continue;
			cfg_join(p, ppath, provider_fields[r].key);
			cfg_err_at(d->x, ps[r].key, "%s: only for provider type web", p);
		}
		if (!ps[P_ADDRESS].key)
			cfg_err_at(d->x, pk, "%s.address: required (the Prometheus server, such as "
			       "http://127.0.0.1:9090)", ppath);
		else if (si->s.address && !cfg_address_ok(si->s.address))
			cfg_err_at(d->x, ps[P_ADDRESS].val, "%s.address: must be an http:// or https:// "
			       "URL such as http://127.0.0.1:9090, got %s", ppath,
			       GOT(ps[P_ADDRESS].val));
		if (!qk)
			cfg_err_at(d->x, qwhere, "%s: required with provider type prometheus (the PromQL "
			       "query)", qpath);
		else if (query)
			check_template(d, qpath, qv, query);
		return d->x->errs->n == e0;
	}
	si->s.type = CFG_PROVIDER_WEB;
	if (ps[P_ADDRESS].key) {
		cfg_join(p, ppath, "address");
		cfg_err_at(d->x, ps[P_ADDRESS].key, "%s: only for provider type prometheus (a web "
		       "metric has url)", p);
	}
	if (qk)
		cfg_err_at(d->x, qk, "%s: cannot be used with provider type web (url and jsonPath say "
		       "where the value is)", qpath);
	if (!ps[P_URL].key)
		cfg_err_at(d->x, pk, "%s.url: required (where the value is fetched from)", ppath);
	else if (si->s.url) {
		cfg_join(p, ppath, "url");
		if (!url_ok(si->s.url) || strpbrk(si->s.url, "\r\n"))
			cfg_err_at(d->x, ps[P_URL].val, "%s: must be an http:// or https:// URL, got %s", p,
			       GOT(ps[P_URL].val));
		else
			check_template(d, p, ps[P_URL].val, si->s.url);
	}
	if (!ps[P_JSONPATH].key)
		cfg_err_at(d->x, pk, "%s.jsonPath: required (where the number is in the response, "
		       "such as $.data.value)", ppath);
	else if (si->s.json_path && !json_path_ok(si->s.json_path)) {
		cfg_join(p, ppath, "jsonPath");
		cfg_err_at(d->x, ps[P_JSONPATH].val, "%s: must be a path like $.data.value, "
		       "$.result[0].value or $.x[\"y\"], got %s", p, GOT(ps[P_JSONPATH].val));
	}
	if (!ps[P_METHOD].key)
		si->s.method = xstrdup("GET");
	if (si->s.body) {
		cfg_join(p, ppath, "body");
		if (si->s.method && !strcmp(si->s.method, "GET"))
			cfg_err_at(d->x, ps[P_BODY].key, "%s: needs method POST", p);
		else
			check_template(d, p, ps[P_BODY].val, si->s.body);
	}
	return d->x->errs->n == e0;
}

/* ---- metrics ---- */

static void h_metric_name(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj)
{
	metric_in *mi = obj;
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (strlen(s) >= sizeof mi->m.name) /* cut, it would be another name */
		cfg_err_at(d->x, v, "%s: must be at most %zu characters, got %zu", path,
		       sizeof mi->m.name - 1, strlen(s));
	else
		snprintf(mi->m.name, sizeof mi->m.name, "%s", s);
	free(s);
}

static void h_number(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	double n;
	/* bounds depend on the metric's kind: checked once it is known */
	if (cfg_read_number(d, path, v, -INFINITY, INFINITY, "", &n) == 0)
		*(double *)cfg_at(obj, f) = n;
}

static void h_ref_name(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	char got_[64];
	metric_in *mi = obj;
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (!util_valid_name(s)) {
		cfg_err_at(d->x, v, "%s: must be a MetricTemplate's name (lower case letters, digits "
		       "or '-'), got %s", path, GOT(v));
		free(s);
		return;
	}
	mi->ref_name = s;
}

static const field ref_fields[] = {
	{ "name", h_ref_name, F_BOTH, NOSTORE, 0, 0 },
	{ "namespace", cfg_h_string, F_BOTH, offsetof(metric_in, ref_ns), 0, 0 },
};

static const field range_fields[] = {
	{ "min", h_number, F_BOTH, offsetof(metric_in, rmin), 0, 0 },
	{ "max", h_number, F_BOTH, offsetof(metric_in, rmax), 0, 0 },
	{ "relative", cfg_h_bool, F_BOTH, offsetof(metric_in, m.relative), 0, 0 },
};
enum { R_MIN, R_MAX };

static const field baseline_fields[] = {
	{ "window", cfg_h_duration, F_BOTH, offsetof(metric_in, m.baseline_window_ms), 60000,
	  86400000 },
};

static const field metric_fields[] = {
	{ "name", h_metric_name, F_BOTH, NOSTORE, 0, 0 },
	{ "thresholdRange", NULL, F_BOTH, NOSTORE, 0, 0 },   /* read by read_metric */
	{ "threshold", h_number, F_BOTH, offsetof(metric_in, thr), 0, 0 },
	{ "interval", cfg_h_duration, F_BOTH, offsetof(metric_in, m.window_ms), 1000, 30 * 60000 },
	{ "query", cfg_h_text, F_BOTH, offsetof(metric_in, query), 0, 0 },
	{ "templateRef", NULL, F_BOTH, NOSTORE, 0, 0 },      /* read by read_source */
	{ "provider", NULL, F_BOTH, NOSTORE, 0, 0 },         /* read by read_source */
	{ "baseline", NULL, F_BOTH, NOSTORE, 0, 0 },         /* read by read_metric */
	{ "failureDuration", cfg_h_duration, F_BOTH, offsetof(metric_in, m.failure_duration_ms),
	  1000, 3600000 },
	{ "templateVariables", cfg_h_map, F_BOTH, NOSTORE, 0, 0 },
};
enum { MT_NAME, MT_RANGE, MT_THRESHOLD, MT_INTERVAL, MT_QUERY, MT_TEMPLATE, MT_PROVIDER,
       MT_BASELINE };

/* Checks bound <val> (at node <n>, path <path>) for a metric of kind <kind>,
 * absolute or <relative> to stable's value. */
static bool bound_ok(doc *d, const char *path, yaml_node_t *n, eng_metric_kind kind,
                     bool relative, double val)
{
	char got_[64];
	if (kind == ENG_M_CUSTOM)
		return true; /* the provider's unit, whatever it is */
	if (kind == ENG_M_DURATION) {
		if (val >= 0)
			return true;
		cfg_err_at(d->x, n, "%s: must be a number >= 0 (%s), got %s", path,
		       relative ? "a ratio to stable's" : "milliseconds", GOT(n));
		return false;
	}
	if (relative) {
		if (val >= -100 && val <= 100)
			return true;
		cfg_err_at(d->x, n, "%s: must be a number from -100 to 100 (a difference in "
		       "percentage points from stable's), got %s", path, GOT(n));
		return false;
	}
	if (val >= 0 && val <= 100)
		return true;
	cfg_err_at(d->x, n, "%s: must be a number from 0 to 100 (a percentage), got %s", path,
	       GOT(n));
	return false;
}

/* Reads where a custom metric's value comes from: a templateRef, or a
 * provider with its query. Returns true when the metric has a source (read
 * into <mi>, errors reported), false for a built-in metric. */
static bool read_source(doc *d, const char *path, yaml_node_t *v, const slot *seen,
                        metric_in *mi)
{
	char p[PATH_LEN], qp[PATH_LEN];
	const slot *q = &seen[MT_QUERY], *pr = &seen[MT_PROVIDER], *t = &seen[MT_TEMPLATE];
	cfg_join(qp, path, "query");
	if (t->key) {
		cfg_join(p, path, "templateRef");
		if (q->key || pr->key)
			cfg_err_at(d->x, t->key, "%s: cannot be used with query or provider (the "
			       "MetricTemplate has them)", p);
		slot rs[N_OF(ref_fields)];
		if (cfg_walk_map(d, p, t->val, ref_fields, N_OF(ref_fields), mi, rs) && !rs[0].key)
			cfg_err_at(d->x, t->key, "%s.name: required (the MetricTemplate's metadata.name)",
			       p);
		mi->ref_key = t->key;
		return true;
	}
	if (pr->key) {
		cfg_join(p, path, "provider");
		slot ps[N_OF(provider_fields)];
		mi->src.s.timeout_ms = 10000;
		if (cfg_walk_map(d, p, pr->val, provider_fields, N_OF(provider_fields), &mi->src, ps)) {
			char *query = mi->query;
			mi->query = NULL;
			finish_source(d, p, pr->key, ps, &mi->src, query, qp, q->key, q->val, v);
		}
		return true;
	}
	if (q->key) {
		cfg_err_at(d->x, q->key, "%s: query needs provider.address (canaryd has no mesh "
		       "Prometheus to default to): add provider: {type: prometheus, address: "
		       "http://HOST:PORT}, or use a templateRef", path);
		return true;
	}
	return false;
}

/* Reads metric mapping <v> at <path>; returns true when it is valid, in
 * <mi>->m (and, for a custom metric, mi->src or mi->ref_name). */
static bool read_metric(doc *d, const char *path, yaml_node_t *v, metric_in *mi)
{
	slot seen[N_OF(metric_fields)];
	slot rseen[N_OF(range_fields)] = { { 0 } };
	size_t errs0 = d->x->errs->n;
	memset(mi, 0, sizeof *mi);
	mi->m.window_ms = 60000;
	if (!cfg_walk_map(d, path, v, metric_fields, N_OF(metric_fields), mi, seen))
		return false;
	char p[PATH_LEN], rp[PATH_LEN];
	cfg_join(rp, path, "thresholdRange");
	if (seen[MT_RANGE].key)
		cfg_walk_map(d, rp, seen[MT_RANGE].val, range_fields, N_OF(range_fields), mi, rseen);
	if (seen[MT_BASELINE].key) {
		slot bseen[N_OF(baseline_fields)];
		char bp[PATH_LEN];
		cfg_join(bp, path, "baseline");
		cfg_join(p, bp, "window");
		if (cfg_walk_map(d, bp, seen[MT_BASELINE].val, baseline_fields, N_OF(baseline_fields),
		             mi, bseen)) {
			if (!bseen[0].key) {
				cfg_err_at(d->x, seen[MT_BASELINE].key, "%s: required (how far back stable's "
				       "history is read, such as 1h)", p);
			} else if (mi->m.baseline_window_ms &&
			           mi->m.baseline_window_ms <= mi->m.window_ms) {
				char a[32];
				util_format_duration(mi->m.window_ms, a, sizeof a);
				cfg_err_at(d->x, bseen[0].val, "%s: must be longer than the metric's "
				       "interval (%s)", p, a);
			}
		}
	}
	bool custom = read_source(d, path, v, seen, mi);
	if (!seen[MT_NAME].key) {
		if (custom)
			cfg_err_at(d->x, v, "%s.name: required (the metric's name)", path);
		else
			cfg_err_at(d->x, v, "%s.name: required (one of request-success-rate, "
			       "request-duration, error-rate)", path);
		return false;
	}
	if (custom) {
		mi->m.kind = ENG_M_CUSTOM;
	} else {
		size_t kind = 0;
		while (kind < N_OF(builtin_metrics) && strcmp(builtin_metrics[kind].name, mi->m.name))
			kind++;
		if (kind == N_OF(builtin_metrics)) {
			if (mi->m.name[0]) {
				cfg_join(p, path, "name");
				cfg_err_at(d->x, seen[MT_NAME].val, "%s: unknown metric '%s'; built in: "
				       "request-success-rate, request-duration, error-rate (any other "
				       "needs a provider and query, or a templateRef)", p, mi->m.name);
			}
			return false;
		}
		mi->m.kind = builtin_metrics[kind].kind;
	}
	bool rel = mi->m.relative;
	bool has_range = seen[MT_RANGE].key && seen[MT_RANGE].val->type == YAML_MAPPING_NODE;
	if (seen[MT_RANGE].key && seen[MT_THRESHOLD].key && !d->x->flagger) {
		cfg_join(p, path, "threshold");
		cfg_err_at(d->x, seen[MT_THRESHOLD].key, "%s: cannot be used with thresholdRange "
		       "(threshold is Flagger's deprecated form of it)", p);
	} else if (has_range) {
		if (!rseen[R_MIN].key && !rseen[R_MAX].key)
			cfg_err_at(d->x, seen[MT_RANGE].key, "%s: needs min, max or both", rp);
		if (rseen[R_MIN].key) {
			cfg_join(p, rp, "min");
			mi->m.has_min = bound_ok(d, p, rseen[R_MIN].val, mi->m.kind, rel, mi->rmin);
			mi->m.min = mi->rmin;
		}
		if (rseen[R_MAX].key) {
			cfg_join(p, rp, "max");
			mi->m.has_max = bound_ok(d, p, rseen[R_MAX].val, mi->m.kind, rel, mi->rmax);
			mi->m.max = mi->rmax;
		}
		if (mi->m.has_min && mi->m.has_max && mi->m.min > mi->m.max)
			cfg_err_at(d->x, seen[MT_RANGE].key, "%s: min (%g) must not be greater than "
			       "max (%g)", rp, mi->m.min, mi->m.max);
	} else if (seen[MT_THRESHOLD].key) {
		/* Flagger: a minimum for the success rate, a maximum otherwise */
		cfg_join(p, path, "threshold");
		bool ok = bound_ok(d, p, seen[MT_THRESHOLD].val, mi->m.kind, false, mi->thr);
		if (mi->m.kind == ENG_M_SUCCESS_RATE) {
			mi->m.has_min = ok;
			mi->m.min = mi->thr;
		} else {
			mi->m.has_max = ok;
			mi->m.max = mi->thr;
		}
	} else if (!seen[MT_RANGE].key) {
		cfg_err_at(d->x, v, "%s: needs thresholdRange (min, max or both) or threshold", path);
	}
	return d->x->errs->n == errs0;
}

static void metric_in_release(metric_in *mi)
{
	cfg_src_release(&mi->src.s);
	free(mi->src.type);
	free(mi->query);
	free(mi->ref_name);
	free(mi->ref_ns);
	memset(mi, 0, sizeof *mi);
}

void cfg_h_metrics(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	char got_[64];
	eng_policy *p = obj;
	if (v->type != YAML_SEQUENCE_NODE) {
		cfg_err_at(d->x, v, "%s: must be a list of metrics, got %s", path, GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > ENG_MAX_METRICS) {
		cfg_err_at(d->x, k, "%s: at most %d metrics, got %zu", path, ENG_MAX_METRICS, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		if (!e)
			continue;
		char ip[PATH_LEN];
		cfg_join_index(ip, path, i);
		metric_in mi;
		int idx = -1;
		if (read_metric(d, ip, e, &mi)) {
			idx = p->n_metrics++;
			p->metrics[idx] = mi.m;
			d->c->sources[idx] = mi.src.s; /* taken */
			memset(&mi.src.s, 0, sizeof mi.src.s);
		}
		if (mi.ref_name && mi.ref_key) {
			/* resolved when every document is read */
			ctx *x = d->x;
			cfg_grow(&x->refs, x->n_refs, &x->refs_cap, sizeof *x->refs);
			tmpl_ref *r = &x->refs[x->n_refs++];
			memset(r, 0, sizeof *r);
			r->canary = x->canary;
			r->metric = idx;
			r->name = mi.ref_name;
			r->namespace_ = mi.ref_ns;
			mi.ref_name = mi.ref_ns = NULL;
			r->line = mi.ref_key->start_mark.line + 1;
			r->col = mi.ref_key->start_mark.column + 1;
			cfg_join(r->path, ip, "templateRef");
		}
		metric_in_release(&mi);
	}
}

/* ---- MetricTemplate documents ---- */

static const field tmpl_top_fields[] = {
	{ "apiVersion", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "kind", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "metadata", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "spec", NULL, F_BOTH, NOSTORE, 0, 0 },
};

static const field tmpl_spec_fields[] = {
	{ "provider", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "query", cfg_h_text, F_BOTH, 0, 0, 0 }, /* into a char * */
};

/* Reads MetricTemplate document <root> (starting at line <line>) into
 * x->defs, for the templateRefs resolved at the end. */
void cfg_load_template(ctx *x, yaml_node_t *root, int line)
{
	cfg_canary meta;
	memset(&meta, 0, sizeof meta);
	doc d = { .x = x, .c = &meta };
	size_t e0 = x->errs->n;
	x->in_template = true;
	slot seen[N_OF(tmpl_top_fields)];
	cfg_walk_map(&d, "", root, tmpl_top_fields, N_OF(tmpl_top_fields), NULL, seen);
	if (!seen[T_METADATA].key) {
		cfg_err_at(x, root, "metadata: required (with the MetricTemplate's name)");
	} else {
		slot ms[N_OF(cfg_metadata_fields)];
		if (cfg_walk_map(&d, "metadata", seen[T_METADATA].val, cfg_metadata_fields,
		             N_OF(cfg_metadata_fields), &meta, ms) && !ms[M_NAME].key)
			cfg_err_at(x, seen[T_METADATA].key, "metadata.name: required (what a metric's "
			       "templateRef.name names)");
	}
	src_in si;
	memset(&si, 0, sizeof si);
	si.s.timeout_ms = 10000;
	char *query = NULL;
	if (!seen[T_SPEC].key) {
		cfg_err_at(x, root, "spec: required (provider and query)");
	} else {
		slot ss[N_OF(tmpl_spec_fields)];
		if (cfg_walk_map(&d, "spec", seen[T_SPEC].val, tmpl_spec_fields, N_OF(tmpl_spec_fields),
		             &query, ss)) {
			slot ps[N_OF(provider_fields)];
			if (!ss[0].key)
				cfg_err_at(x, seen[T_SPEC].key, "spec.provider: required (type and address)");
			else if (cfg_walk_map(&d, "spec.provider", ss[0].val, provider_fields,
			                  N_OF(provider_fields), &si, ps)) {
				finish_source(&d, "spec.provider", ss[0].key, ps, &si, query, "spec.query",
				              ss[1].key, ss[1].val, seen[T_SPEC].key);
				query = NULL; /* taken */
			}
		}
	}
	free(query);
	free(si.type);
	x->in_template = false;
	if (!meta.name) {
		cfg_src_release(&si.s);
		free(meta.namespace_);
		return;
	}
	for (size_t i = 0; i < x->n_defs; i++) {
		const tmpl_def *o = &x->defs[i];
		bool same_ns = !o->namespace_ == !meta.namespace_ &&
		               (!o->namespace_ || !strcmp(o->namespace_, meta.namespace_));
		if (!strcmp(o->name, meta.name) && same_ns) {
			cfg_err_at(x, d.name_val, "metadata.name: duplicate MetricTemplate name '%s' (also "
			       "the document at line %d)", meta.name, o->line);
			break;
		}
	}
	cfg_grow(&x->defs, x->n_defs, &x->defs_cap, sizeof *x->defs);
	x->defs[x->n_defs++] = (tmpl_def){ .name = meta.name, .namespace_ = meta.namespace_,
	                                   .src = si.s, .ok = x->errs->n == e0, .line = line };
}

/* The MetricTemplate a templateRef names: same name, and same namespace
 * when both say one. */
static const tmpl_def *find_template(const ctx *x, const tmpl_ref *r)
{
	for (size_t i = 0; i < x->n_defs; i++) {
		const tmpl_def *t = &x->defs[i];
		if (!strcmp(t->name, r->name) &&
		    (!r->namespace_ || !t->namespace_ || !strcmp(r->namespace_, t->namespace_)))
			return t;
	}
	return NULL;
}

/* Gives each templateRef its template's source, or reports it (unless the
 * file could not be read to its end: the template may be past the syntax
 * error). Frees x->refs and x->defs. */
void cfg_resolve_templates(ctx *x, cfg *c, bool complete)
{
	for (size_t i = 0; i < x->n_refs; i++) {
		tmpl_ref *r = &x->refs[i];
		const tmpl_def *t = find_template(x, r);
		if (!t && complete) {
			buf b = BUF_INIT; /* the first ten: a message stays a line */
			for (size_t j = 0; j < x->n_defs && j < 10; j++) {
				buf_printf(&b, "%s%s", j ? ", " : "", x->defs[j].name);
				if (r->namespace_ && x->defs[j].namespace_)
					buf_printf(&b, " (namespace %.64s)", x->defs[j].namespace_);
			}
			if (x->n_defs > 10)
				buf_printf(&b, " and %zu more", x->n_defs - 10);
			char ns[128] = "";
			if (r->namespace_)
				snprintf(ns, sizeof ns, " in namespace '%.64s'", r->namespace_);
			cfg_err_pos(x, r->line, r->col, "%s: no MetricTemplate named '%s'%s in this file; "
			        "%s%s", r->path, r->name, ns, b.len ? "there are: " : "there are none",
			        b.len ? b.p : "");
			buf_release(&b);
		} else if (t && t->ok && r->metric >= 0 && r->canary < c->n_canaries) {
			cfg_metric_source *s = &c->canaries[r->canary].sources[r->metric];
			cfg_src_release(s);
			src_copy(s, &t->src);
			s->template_name = xstrdup(t->name);
		}
		free(r->name);
		free(r->namespace_);
	}
	free(x->refs);
	x->refs = NULL;
	x->n_refs = x->refs_cap = 0;
	for (size_t i = 0; i < x->n_defs; i++) {
		free(x->defs[i].name);
		free(x->defs[i].namespace_);
		cfg_src_release(&x->defs[i].src);
	}
	free(x->defs);
	x->defs = NULL;
	x->n_defs = x->defs_cap = 0;
}
