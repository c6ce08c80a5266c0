/* cfg_canary.c - Canary documents (see config.h): the tables of their
 * keys, from metadata to spec.analysis (its metrics are read by
 * cfg_metric.c), their defaults, the checks that span several keys, and
 * the clashes between canaries of one file. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cfgload.h"
#include "haproxy_rt.h"
#include "resolve.h"
#include "util.h"

static const char *const native_routers[] = { "builtin", "haproxy", "istio",
                                              "gatewayapi", "smi" };
static const char *const hook_types[] = { "pre-rollout", "rollout", "confirm-rollout",
                                          "post-rollout", "rollback", "confirm-promotion",
                                          "confirm-traffic-increase", "event" };

/* ---- metadata ---- */

static void h_name(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                   void *obj)
{
	char got_[64];
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (!util_valid_name(s)) {
		cfg_err_at(d->x, v, "%s: must be 1 to 63 lower case letters, digits or '-', starting "
		       "and ending with a letter or digit, got %s", path, GOT(v));
		free(s);
		return;
	}
	d->c->name = s;
	d->name_val = v;
}

const field cfg_metadata_fields[] = {
	{ "name", h_name, F_BOTH, NOSTORE, 0, 0 },
	{ "namespace", cfg_h_string, F_BOTH, offsetof(cfg_canary, namespace_), 0, 0 },
	{ "labels", cfg_h_string_map, F_BOTH, NOSTORE, 0, 0 },
	{ "annotations", cfg_h_text_map, F_BOTH, NOSTORE, 0, 0 },
};

static void h_metadata(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	slot seen[N_OF(cfg_metadata_fields)];
	if (!cfg_walk_map(d, path, v, cfg_metadata_fields, N_OF(cfg_metadata_fields), d->c, seen))
		return;
	if (!seen[M_NAME].key)
		cfg_err_at(d->x, k, "metadata.name: required (the canary's name)");
}

/* ---- stable and canary targets ---- */

typedef struct target_in {
	char *rev;
	char **eps;
	cfg_pos *pos;
	size_t n;
	yaml_node_t *rev_val;
} target_in;

static void h_revision(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	target_in *t = obj;
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (strlen(s) >= ENG_REV_LEN) {
		cfg_err_at(d->x, v, "%s: must be at most %d characters, got %zu", path,
		       ENG_REV_LEN - 1, strlen(s));
		free(s);
		return;
	}
	t->rev = s;
	t->rev_val = v;
}

static void h_endpoints(doc *d, const field *f, const char *path, yaml_node_t *k,
                        yaml_node_t *v, void *obj)
{
	char got_[64];
	target_in *t = obj;
	if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start) {
		cfg_err_at(d->x, v, "%s: must be a non-empty list of HOST:PORT, got %s", path,
		       v->type == YAML_SEQUENCE_NODE ? "an empty list" : GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	t->eps = xcalloc(n, sizeof *t->eps);
	t->pos = xcalloc(n, sizeof *t->pos);
	json_t *seen = json_object(); /* a set: lists can be as long as the file */
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		char p[PATH_LEN];
		cfg_join_index(p, path, i);
		char *s;
		if (!e || cfg_read_hostport(d, p, e, "127.0.0.1:9001", &s) < 0)
			continue;
		/* the host is an address or a name getaddrinfo may be asked about */
		char host[RSV_HOST_LEN], why[400];
		int port;
		if (rsv_parse(s, host, sizeof host, &port, NULL, why, sizeof why) == RSV_INVALID) {
			cfg_err_at(d->x, e, "%s: %s (an IP address, localhost or a host name such as "
			       "app.internal:9001)", p, why);
			free(s);
			continue;
		}
		if (json_object_get(seen, s)) {
			cfg_err_at(d->x, e, "%s: duplicate endpoint '%s'", p, s);
			free(s);
			continue;
		}
		json_object_set_new(seen, s, json_null());
		t->pos[t->n].line = (int)e->start_mark.line + 1;
		t->pos[t->n].col = (int)e->start_mark.column + 1;
		t->eps[t->n++] = s;
	}
	json_decref(seen);
}

static const field target_fields[] = {
	{ "revision", h_revision, F_NATIVE, NOSTORE, 0, 0 },
	{ "endpoints", h_endpoints, F_NATIVE, NOSTORE, 0, 0 },
};

static void read_target(doc *d, const char *path, yaml_node_t *k, yaml_node_t *v,
                        target_in *t)
{
	slot seen[N_OF(target_fields)];
	if (!cfg_walk_map(d, path, v, target_fields, N_OF(target_fields), t, seen))
		return;
	for (size_t i = 0; i < N_OF(target_fields); i++)
		if (!seen[i].key)
			cfg_err_at(d->x, k, "%s.%s: required", path, target_fields[i].key);
}

static void h_stable(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	target_in t = { 0 };
	read_target(d, path, k, v, &t);
	d->c->stable_rev = t.rev;
	d->c->stable_eps = t.eps;
	d->c->stable_eps_pos = t.pos;
	d->c->n_stable_eps = t.n;
	d->stable_rev_val = t.rev_val;
}

static void h_canary(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	target_in t = { 0 };
	read_target(d, path, k, v, &t);
	d->c->canary_rev = t.rev;
	d->c->canary_eps = t.eps;
	d->c->canary_eps_pos = t.pos;
	d->c->n_canary_eps = t.n;
	d->canary_rev_val = t.rev_val;
}

/* ---- webhooks ---- */

static void h_hook_type(doc *d, const field *f, const char *path, yaml_node_t *k,
                        yaml_node_t *v, void *obj)
{
	cfg_webhook *w = obj;
	cfg_read_one_of(d, path, v, hook_types, N_OF(hook_types), &w->type);
}

static void h_hook_url(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	char got_[64];
	cfg_webhook *w = obj;
	if (cfg_is_scalar(v) && !cfg_controls_ok(d, path, v, false))
		return;
	if (cfg_is_scalar(v) && cfg_address_ok(cfg_sval(v))) {
		w->url = xstrdup(cfg_sval(v));
		return;
	}
	cfg_err_at(d->x, v, "%s: must be an http:// or https:// URL, got %s", path, GOT(v));
}

#define EXEC_ARGS_MAX 64   /* arguments of an exec hook's command */

typedef struct exec_in {
	uint64_t timeout_ms;
} exec_in;

static const field exec_fields[] = {
	{ "command", NULL, F_BOTH, NOSTORE, 0, 0 }, /* read by h_hook_exec */
	{ "timeout", cfg_h_duration, F_BOTH, offsetof(exec_in, timeout_ms), 100, 3600000 },
};

/* exec: {command: [PROGRAM, ARG...], timeout} (canaryd/v1): a program
 * run with these arguments, no shell. A Flagger document cannot have it:
 * Flagger would prune the key and post to no URL. */
static void h_hook_exec(doc *d, const field *f, const char *path, yaml_node_t *k,
                        yaml_node_t *v, void *obj)
{
	char got_[64];
	cfg_webhook *w = obj;
	if (d->x->flagger) {
		cfg_err_at(d->x, k, "%s: is canaryd's (a program run as the hook): use apiVersion "
		           API_NATIVE " for this Canary", path);
		return;
	}
	exec_in ei = { .timeout_ms = 0 };
	slot seen[N_OF(exec_fields)];
	if (!cfg_walk_map(d, path, v, exec_fields, N_OF(exec_fields), &ei, seen))
		return;
	char p[PATH_LEN];
	cfg_join(p, path, "command");
	yaml_node_t *cv = seen[0].val;
	if (!seen[0].key) {
		cfg_err_at(d->x, v, "%s: required (the program and its arguments, such as "
		           "[/usr/local/bin/scale, --to, \"0\"])", p);
		return;
	}
	size_t n = cv->type == YAML_SEQUENCE_NODE
	           ? (size_t)(cv->data.sequence.items.top - cv->data.sequence.items.start) : 0;
	if (cv->type != YAML_SEQUENCE_NODE || n == 0) {
		cfg_err_at(d->x, cv, "%s: must be a non-empty list of strings (the program, then its "
		           "arguments; no shell), got %s", p,
		           cv->type == YAML_SEQUENCE_NODE ? "an empty list" : GOT(cv));
		return;
	}
	if (n > EXEC_ARGS_MAX) {
		cfg_err_at(d->x, cv, "%s: at most %d arguments, got %zu", p, EXEC_ARGS_MAX, n);
		return;
	}
	char **argv = xcalloc(n + 1, sizeof *argv);
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, cv->data.sequence.items.start[i]);
		char ip[PATH_LEN];
		cfg_join_index(ip, p, i);
		if (!e || cfg_read_string(d, ip, e, &argv[i]) < 0) {
			ok = false;
			continue;
		}
		if (i == 0 && argv[0][0] != '/') {
			/* PATH is canaryd's, and may differ between a shell and a
			 * service manager: the program is named, not searched */
			cfg_err_at(d->x, e, "%s: must be an absolute path (such as /usr/local/bin/%s): "
			           "the program is not searched for in PATH", ip, argv[0]);
			ok = false;
		}
	}
	if (!ok) {
		for (size_t i = 0; i < n; i++)
			free(argv[i]);
		free(argv);
		return;
	}
	w->argv = argv;
	if (seen[1].key)
		w->timeout_ms = ei.timeout_ms;
}

static const field hook_fields[] = {
	{ "name", cfg_h_string, F_BOTH, offsetof(cfg_webhook, name), 0, 0 },
	{ "type", h_hook_type, F_BOTH, NOSTORE, 0, 0 },
	{ "url", h_hook_url, F_BOTH, NOSTORE, 0, 0 },
	{ "timeout", cfg_h_duration, F_BOTH, offsetof(cfg_webhook, timeout_ms), 100, 3600000 },
	{ "metadata", cfg_h_text_map, F_BOTH, offsetof(cfg_webhook, metadata), 0, 0 },
	{ "exec", h_hook_exec, F_BOTH, NOSTORE, 0, 0 },
	{ "disableTLS", cfg_h_bool, F_BOTH, offsetof(cfg_webhook, disable_tls), 0, 0 },
	{ "muteAlert", cfg_h_bool, F_BOTH, offsetof(cfg_webhook, mute_alert), 0, 0 },
	{ "retries", cfg_h_int, F_BOTH, offsetof(cfg_webhook, retries), 0, 100 },
};
enum { W_NAME, W_TYPE, W_URL, W_TIMEOUT, W_METADATA, W_EXEC, W_TLS, W_MUTE, W_RETRIES };

static void h_webhooks(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	char got_[64];
	cfg_canary *c = d->c;
	if (v->type != YAML_SEQUENCE_NODE) {
		cfg_err_at(d->x, v, "%s: must be a list of webhooks, got %s", path, GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	c->webhooks = xcalloc(n, sizeof *c->webhooks);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		if (!e)
			continue;
		char ip[PATH_LEN];
		cfg_join_index(ip, path, i);
		cfg_webhook *w = &c->webhooks[c->n_webhooks++];
		w->timeout_ms = 10000; /* Flagger's (CallWebhook) */
		slot seen[N_OF(hook_fields)];
		if (!cfg_walk_map(d, ip, e, hook_fields, N_OF(hook_fields), w, seen))
			continue;
		if (!seen[W_NAME].key)
			cfg_err_at(d->x, e, "%s.name: required", ip);
		if (seen[W_URL].key && seen[W_EXEC].key)
			cfg_err_at(d->x, seen[W_EXEC].key, "%s.exec: cannot be used with url (a hook "
			           "posts to a URL or runs a program)", ip);
		else if (!seen[W_URL].key && !seen[W_EXEC].key)
			cfg_err_at(d->x, e, "%s.url: required (where the webhook is posted)%s", ip,
			           d->x->flagger ? "" : ", or exec (the program run as the hook)");
		if (seen[W_EXEC].key && seen[W_TLS].key)
			cfg_err_at(d->x, seen[W_TLS].key, "%s.disableTLS: only for a URL hook", ip);
		if (seen[W_EXEC].key && seen[W_RETRIES].key)
			cfg_err_at(d->x, seen[W_RETRIES].key, "%s.retries: only for a URL hook", ip);
		if (!seen[W_TYPE].key)
			w->type = xstrdup("rollout"); /* Flagger's default */
	}
}

/* ---- analysis ---- */

static void h_step_weights(doc *d, const field *f, const char *path, yaml_node_t *k,
                           yaml_node_t *v, void *obj)
{
	char got_[64];
	eng_policy *p = obj;
	if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start) {
		cfg_err_at(d->x, v, "%s: must be a non-empty list of integers from 1 to 100, got %s",
		       path, v->type == YAML_SEQUENCE_NODE ? "an empty list" : GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > ENG_MAX_STEPS) {
		cfg_err_at(d->x, v, "%s: at most %d steps, got %zu", path, ENG_MAX_STEPS, n);
		return;
	}
	int prev = 0;
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		char ip[PATH_LEN];
		cfg_join_index(ip, path, i);
		int w;
		if (!e || cfg_read_int(d, ip, e, 1, 100, &w) < 0) {
			ok = false;
			continue;
		}
		if (w <= prev) {
			cfg_err_at(d->x, e, "%s: steps must be strictly ascending: %d is not greater than "
			       "the step before it (%d)", ip, w, prev);
			ok = false;
		}
		p->step_weights[i] = w;
		prev = w > prev ? w : prev;
	}
	if (ok)
		p->n_step_weights = (int)n;
}

static void h_judge(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj)
{
	static const char *const judges[] = { "threshold", "sequential" };
	eng_policy *p = obj;
	char *s;
	if (cfg_read_one_of(d, path, v, judges, N_OF(judges), &s) < 0)
		return;
	p->judge = strcmp(s, "sequential") ? ENG_JUDGE_THRESHOLD : ENG_JUDGE_SEQUENTIAL;
	free(s);
}

/* 0 < alpha < 0.5: at 0.5 or more the test would roll back a canary as good
 * as stable as often as not. */
static void h_alpha(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj)
{
	char got_[64];
	eng_policy *p = obj;
	if (cfg_is_plain(v) && (cfg_looks_float(cfg_sval(v)) || cfg_looks_decimal(cfg_sval(v)))) {
		double a = strtod(cfg_sval(v), NULL);
		if (isfinite(a) && a > 0 && a < 0.5) {
			p->alpha = a;
			return;
		}
	}
	cfg_err_at(d->x, v, "%s: must be a number greater than 0 and less than 0.5 (the chance of "
	       "rolling back a canary as good as stable, such as 0.01), got %s", path, GOT(v));
}

static void h_min_samples(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj)
{
	eng_policy *p = obj;
	int n;
	if (cfg_read_int(d, path, v, 1, INT_MAX, &n) == 0)
		p->min_samples = (uint64_t)n;
}

/* The sequential judge's non-inferiority margin, in percentage points of
 * error rate (0.5 means the canary may fail 0.5 points more than stable). */
static void h_error_margin(doc *d, const field *f, const char *path, yaml_node_t *k,
                           yaml_node_t *v, void *obj)
{
	eng_policy *p = obj;
	double m;
	if (cfg_read_number(d, path, v, 0.01, 50, " (percentage points)", &m) == 0)
		p->judge_margin = m / 100.0;
}

/* The sequential judge's margin as a ratio: the canary is no worse while
 * its error rate is at most this many times stable's (or within
 * errorMargin points of it, whichever allows more). */
static void h_error_ratio(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj)
{
	eng_policy *p = obj;
	double r;
	if (cfg_read_number(d, path, v, 1, 100, " (a ratio, 1 or more)", &r) == 0)
		p->judge_error_ratio = r;
}

/* The latency quantile the sequential judge compares, in percent (99 is
 * p99, as Flagger's request-duration). */
static void h_latency_quantile(doc *d, const field *f, const char *path, yaml_node_t *k,
                               yaml_node_t *v, void *obj)
{
	eng_policy *p = obj;
	double q;
	if (cfg_read_number(d, path, v, 1, 99.99, " (a percentile, such as 99 for p99)", &q) == 0)
		p->judge_latency_quantile = q / 100.0;
}

/* How many times slower than stable the canary may be before the latency
 * test calls it worse; 0 turns the latency test off. */
static void h_latency_ratio(doc *d, const field *f, const char *path, yaml_node_t *k,
                            yaml_node_t *v, void *obj)
{
	eng_policy *p = obj;
	double r;
	if (cfg_read_number(d, path, v, 0, 100, " (1 or more, or 0 for off)", &r) == 0) {
		if (r != 0 && r < 1)
			cfg_err_at(d->x, v, "%s: must be 0 (off) or at least 1, got %g", path, r);
		else
			p->judge_latency_ratio = r;
	}
}

/* analysis.onNoData: hold | fail. */
static void h_on_no_data(doc *d, const field *f, const char *path, yaml_node_t *k,
                         yaml_node_t *v, void *obj)
{
	static const char *const ways[] = { "hold", "fail" };
	eng_policy *p = obj;
	char *s;
	if (cfg_read_one_of(d, path, v, ways, N_OF(ways), &s) < 0)
		return;
	p->on_no_data = strcmp(s, "fail") ? ENG_NODATA_HOLD : ENG_NODATA_FAIL;
	free(s);
}

/* analysis.onMaxDuration: pause | rollback | promote. */
static void h_on_max_duration(doc *d, const field *f, const char *path, yaml_node_t *k,
                              yaml_node_t *v, void *obj)
{
	static const char *const ways[] = { "pause", "rollback", "promote" };
	eng_policy *p = obj;
	char *s;
	if (cfg_read_one_of(d, path, v, ways, N_OF(ways), &s) < 0)
		return;
	p->on_max_duration = !strcmp(s, "rollback") ? ENG_MAXDUR_ROLLBACK
	                     : !strcmp(s, "promote") ? ENG_MAXDUR_PROMOTE : ENG_MAXDUR_PAUSE;
	free(s);
}

static const field analysis_fields[] = {
	{ "interval", cfg_h_duration, F_BOTH, offsetof(eng_policy, interval_ms), 100, 86400000 },
	{ "threshold", cfg_h_int, F_BOTH, offsetof(eng_policy, threshold), 1, INT_MAX },
	{ "maxWeight", cfg_h_int, F_BOTH, offsetof(eng_policy, max_weight), 1, 100 },
	{ "stepWeight", cfg_h_int, F_BOTH, offsetof(eng_policy, step_weight), 1, 100 },
	{ "stepWeights", h_step_weights, F_BOTH, NOSTORE, 0, 0 },
	{ "iterations", cfg_h_int, F_BOTH, offsetof(eng_policy, iterations), 1, INT_MAX },
	{ "metrics", cfg_h_metrics, F_BOTH, NOSTORE, 0, 0 },
	{ "webhooks", h_webhooks, F_BOTH, NOSTORE, 0, 0 },
	{ "match", cfg_h_match, F_BOTH, NOSTORE, 0, 0 },            /* cfg_route.c */
	/* blue/green with mirror: read into cfg_canary.mirror_weight and
	 * checked together (analysis_mirror); the built-in proxy mirrors */
	{ "mirror", cfg_h_bool, F_BOTH, NOSTORE, 0, 0 },
	{ "mirrorWeight", cfg_h_int, F_BOTH, NOSTORE, 0, 100 },
	/* Flagger's, accepted and kept in <raw>; not interpreted yet */
	{ "primaryReadyThreshold", cfg_h_int, F_BOTH, NOSTORE, 0, 100 },
	{ "canaryReadyThreshold", cfg_h_int, F_BOTH, NOSTORE, 0, 100 },
	{ "alerts", cfg_h_alerts, F_BOTH, NOSTORE, 0, 0 },
	{ "sessionAffinity", cfg_h_affinity, F_BOTH, NOSTORE, 0, 0 }, /* cfg_route.c */
	{ "stepWeightPromotion", cfg_h_int, F_BOTH, NOSTORE, 1, 100 },
	/* canaryd's */
	{ "judge", h_judge, F_BOTH, NOSTORE, 0, 0 },
	{ "alpha", h_alpha, F_BOTH, NOSTORE, 0, 0 },
	{ "minSamples", h_min_samples, F_BOTH, NOSTORE, 0, 0 },
	{ "errorMargin", h_error_margin, F_BOTH, NOSTORE, 0, 0 },
	{ "latencyRatio", h_latency_ratio, F_BOTH, NOSTORE, 0, 0 },
	{ "errorRatio", h_error_ratio, F_BOTH, NOSTORE, 0, 0 },
	{ "latencyQuantile", h_latency_quantile, F_BOTH, NOSTORE, 0, 0 },
	{ "warmup", cfg_h_duration, F_BOTH, offsetof(eng_policy, warmup_ms), 0, 86400000 },
	{ "maxDuration", cfg_h_duration, F_BOTH, offsetof(eng_policy, max_duration_ms), 0,
	  30ULL * 86400000 },
	{ "onMaxDuration", h_on_max_duration, F_BOTH, NOSTORE, 0, 0 },
	{ "onNoData", h_on_no_data, F_BOTH, NOSTORE, 0, 0 },
	{ "steps", cfg_h_steps, F_BOTH, NOSTORE, 0, 0 },
	{ "approval", cfg_h_approval, F_BOTH, NOSTORE, 0, 0 },
	{ "onFailure", cfg_h_on_failure, F_BOTH, NOSTORE, 0, 0 },
	{ "rollbackStepWeight", cfg_h_int, F_BOTH, offsetof(eng_policy, rollback_step_weight), 1,
	  100 },
	{ "postPromotion", cfg_h_post_promotion, F_BOTH, NOSTORE, 0, 0 },
	{ "undoWindow", cfg_h_duration, F_BOTH, offsetof(eng_policy, undo_window_ms), 0,
	  30LL * 86400000 },
};
enum { A_INTERVAL, A_THRESHOLD, A_MAX_WEIGHT, A_STEP_WEIGHT, A_STEP_WEIGHTS, A_ITERATIONS };

/* The slot of row <key> of analysis_fields (its key NULL when absent). */
static const slot *analysis_slot(const slot *seen, const char *key)
{
	for (size_t i = 0; i < N_OF(analysis_fields); i++)
		if (!strcmp(analysis_fields[i].key, key))
			return &seen[i];
	abort();   /* a key with no row: a programming error */
}

/* analysis.mirror and mirrorWeight, once the walk has read them (each row
 * has checked its value's type and range). Mirroring is Flagger's
 * blue/green with mirror: the canary gets no weighted traffic while the
 * iterations run, a copy of stable's requests instead, and 100 % at the
 * promotion; so a canaryd/v1 document must say iterations, without steps
 * and without a maxWeight below 100 (which in iterations mode sends that
 * share to the canary: an A/B split, not a zero-traffic canary). A Flagger
 * document keeps Flagger's meaning (mirrorWeight 0 or unset: 100 %, and
 * no mirror without mirror: true); its router checks the rest. */
static void analysis_mirror(doc *d, const char *path, const slot *seen)
{
	cfg_canary *c = d->c;
	const eng_policy *p = &c->policy;
	const slot *ms = analysis_slot(seen, "mirror"), *mws = analysis_slot(seen, "mirrorWeight");
	yaml_node_t *m = ms->key ? ms->val : NULL, *mw = mws->key ? mws->val : NULL;
	bool on = m && cfg_is_plain(m) && cfg_bool_value(cfg_sval(m)) == 1;
	int weight = 0;
	if (mw && cfg_is_plain(mw) && cfg_looks_decimal(cfg_sval(mw)))
		weight = atoi(cfg_sval(mw));
	c->mirror_weight = on ? (weight > 0 && weight <= 100 ? weight : 100) : 0;
	if (d->x->flagger)
		return;
	if (mw && weight == 0 && cfg_looks_decimal(cfg_sval(mw)))
		cfg_err_at(d->x, mw, "%s.mirrorWeight: must be 1 to 100 (the share of stable's "
		       "requests copied to the canary), got 0; remove mirror to mirror nothing",
		       path);
	if (mw && !on)
		cfg_err_at(d->x, mws->key, "%s.mirrorWeight: needs %s.mirror: "
		       "true", path, path);
	if (!on)
		return;
	if (seen[A_STEP_WEIGHT].key || seen[A_STEP_WEIGHTS].key || !seen[A_ITERATIONS].key)
		cfg_err_at(d->x, ms->key, "%s.mirror: needs %s.iterations and no "
		       "stepWeight or stepWeights (a mirrored canary gets no live traffic until "
		       "it is promoted, as Flagger's blue/green with mirror; set iterations, "
		       "such as 10, or remove mirror)", path, path);
	else if (seen[A_MAX_WEIGHT].key && p->max_weight < 100)
		cfg_err_at(d->x, seen[A_MAX_WEIGHT].key, "%s.maxWeight: %d would send %d%% of "
		       "the requests to the canary during the iterations, besides the mirror; "
		       "with %s.mirror remove maxWeight (the canary gets live traffic only "
		       "once promoted)", path, p->max_weight, p->max_weight, path);
}

/* The key of row <key> of analysis_fields that was present, or NULL. */
static yaml_node_t *seen_analysis(const slot *seen, const char *key)
{
	for (size_t i = 0; i < N_OF(analysis_fields); i++)
		if (!strcmp(analysis_fields[i].key, key))
			return seen[i].key;
	return NULL;
}

static void h_analysis(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	eng_policy *p = &d->c->policy;
	slot seen[N_OF(analysis_fields)];
	if (!cfg_walk_map(d, path, v, analysis_fields, N_OF(analysis_fields), p, seen))
		return;
	/* A Flagger document under the threshold judge is analysed as Flagger
	 * does (docs/config.md): a check counts on whatever requests its
	 * window had, one being enough, and fails without data. canaryd's own
	 * documents, and Flagger ones that chose canaryd's sequential judge,
	 * hold a check on no data or fewer than minSamples requests. Any
	 * document may set either key: a Flagger one may carry canaryd's
	 * analysis keys, as it may carry judge */
	bool flaggers = d->x->flagger && p->judge == ENG_JUDGE_THRESHOLD;
	/* the gates the engine holds a move at while the driver polls them */
	for (size_t i = 0; i < d->c->n_webhooks; i++) {
		const char *t = d->c->webhooks[i].type;
		p->gate_rollout |= t && strcmp(t, "confirm-rollout") == 0;
		p->gate_traffic |= t && strcmp(t, "confirm-traffic-increase") == 0;
		p->gate_promotion |= t && strcmp(t, "confirm-promotion") == 0;
	}
	/* the sequential judge's own keys mean nothing to the threshold judge:
	 * accepting them would let a user believe a margin or an alpha guards
	 * the rollout when fixed thresholds alone decide it */
	static const char *const seq_only[] = { "alpha", "errorMargin", "errorRatio",
		                                "latencyRatio", "latencyQuantile" };
	for (size_t i = 0; p->judge == ENG_JUDGE_THRESHOLD && i < N_OF(seq_only); i++) {
		yaml_node_t *sk = seen_analysis(seen, seq_only[i]);
		if (sk)
			cfg_err_at(d->x, sk, "%s.%s: only with judge: sequential (the threshold "
			           "judge decides by the metrics' thresholdRange alone; set %s.judge: "
			           "sequential, or remove it)", path, seq_only[i], path);
	}
	if (!seen_analysis(seen, "onNoData"))
		p->on_no_data = flaggers ? ENG_NODATA_FAIL : ENG_NODATA_HOLD;
	if (flaggers && !seen_analysis(seen, "minSamples"))
		p->min_samples = 1;
	yaml_node_t *on_max = seen_analysis(seen, "onMaxDuration");
	if (on_max && p->max_duration_ms == 0)
		cfg_err_at(d->x, on_max, "%s.onMaxDuration: needs %s.maxDuration (how long an "
		       "analysis may stay undecided, such as 2h)", path, path);
	yaml_node_t *max = seen_analysis(seen, "maxDuration");
	if (max && p->max_duration_ms > 0 && p->max_duration_ms <= p->warmup_ms) {
		char a[32], b[32];
		util_format_duration(p->max_duration_ms, a, sizeof a);
		util_format_duration(p->warmup_ms, b, sizeof b);
		cfg_err_at(d->x, max, "%s.maxDuration: must be longer than %s.warmup (%s is not "
		       "longer than %s: the analysis would end before its first check)", path, path,
		       a, b);
	}
	yaml_node_t *ladder = seen_analysis(seen, "steps");
	if (ladder) {
		/* analysis.steps sets every weight: the Flagger keys that also
		 * would are refused, not silently outranked */
		static const char *const other[] = { "stepWeight", "stepWeights", "maxWeight",
			                             "iterations", "stepWeightPromotion" };
		for (size_t i = 0; i < N_OF(other); i++)
			if (seen_analysis(seen, other[i]))
				cfg_err_at(d->x, seen_analysis(seen, other[i]), "%s.%s: cannot be used "
				           "with %s.steps, which sets every weight; use one", path,
				           other[i], path);
		return;
	}
	bool steps = seen[A_STEP_WEIGHT].key || seen[A_STEP_WEIGHTS].key;
	if (seen[A_STEP_WEIGHT].key && seen[A_STEP_WEIGHTS].key)
		cfg_err_at(d->x, seen[A_STEP_WEIGHTS].key, "%s: stepWeight and stepWeights cannot be "
		       "used together; use one", path);
	if (!steps && !seen[A_ITERATIONS].key)
		d->no_strategy = k; /* decided in h_spec, which knows the provider */
	if (steps && seen[A_ITERATIONS].key) {
		if (!d->x->flagger)
			cfg_err_at(d->x, seen[A_ITERATIONS].key, "%s.iterations: cannot be used with "
			       "stepWeight or stepWeights (iterations means blue/green or A/B "
			       "testing, which has no steps)", path);
		/* Flagger runs blue/green or A/B when iterations is set, whatever
		 * the steps say */
		p->step_weight = 0;
		p->n_step_weights = 0;
	}
	/* Flagger: with stepWeights the last step is the maximum weight */
	if (p->n_step_weights > 0)
		p->max_weight = p->step_weights[p->n_step_weights - 1];
	analysis_mirror(d, path, seen);
}

/* ---- spec ---- */

static void h_router(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	cfg_read_one_of(d, path, v, native_routers, N_OF(native_routers), &d->c->router);
}

static void h_listen(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	if (cfg_read_hostport(d, path, v, "127.0.0.1:8080", &d->c->listen) == 0)
		d->listen_val = v;
}

/* spec.haproxy: the HAProxy canaryd drives (router haproxy). */
static void h_hap_api(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	char *s, why[300];
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (hart_addr_check(s, why, sizeof why) < 0) {
		cfg_err_at(d->x, v, "%s: %s", path, why);
		free(s);
		return;
	}
	free(d->c->haproxy_api);
	d->c->haproxy_api = s;
}

/* HAProxy's proxy names: letters, digits, '-', '_', '.' and ':'. */
static void h_hap_backend(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj)
{
	char got_[64];
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	size_t n = strlen(s);
	bool ok = n > 0 && n < 64;
	for (size_t i = 0; ok && i < n; i++)
		ok = isalnum((unsigned char)s[i]) || strchr("-_.:", s[i]);
	if (!ok) {
		cfg_err_at(d->x, v, "%s: must be a HAProxy backend name (1 to 63 letters, digits, "
		       "'-', '_', '.' or ':'), got %s", path, GOT(v));
		free(s);
		return;
	}
	free(d->c->haproxy_backend);
	d->c->haproxy_backend = s;
}

static void h_hap_log(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	char *s, host[256];
	int port;
	if (cfg_read_hostport(d, path, v, "127.0.0.1:5140", &s) < 0)
		return;
	struct in6_addr a6;
	struct in_addr a4;
	util_parse_hostport(s, host, sizeof host, &port);
	if (inet_pton(AF_INET, host, &a4) != 1 && inet_pton(AF_INET6, host, &a6) != 1) {
		cfg_err_at(d->x, v, "%s: must be an IP address and port canaryd listens on for "
		       "HAProxy's logs, such as 127.0.0.1:5140, got '%s'", path, s);
		free(s);
		return;
	}
	free(d->c->haproxy_log);
	d->c->haproxy_log = s;
}

static const field haproxy_fields[] = {
	{ "runtimeAPI", h_hap_api, F_NATIVE, NOSTORE, 0, 0 },
	{ "backend", h_hap_backend, F_NATIVE, NOSTORE, 0, 0 },
	{ "log", h_hap_log, F_NATIVE, NOSTORE, 0, 0 },
};
enum { H_API, H_BACKEND };

static void h_haproxy(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	slot seen[N_OF(haproxy_fields)];
	if (!cfg_walk_map(d, path, v, haproxy_fields, N_OF(haproxy_fields), d->c, seen))
		return;
	if (!seen[H_API].key)
		cfg_err_at(d->x, k, "%s.runtimeAPI: required (HAProxy's stats socket at level "
		       "admin: unix:/run/haproxy/admin.sock or 127.0.0.1:9999)", path);
	if (!seen[H_BACKEND].key)
		cfg_err_at(d->x, k, "%s.backend: required (the backend canaryd adds its servers "
		       "to)", path);
}

static void h_deadline(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	int s;
	if (cfg_read_int(d, path, v, 1, INT_MAX, &s) == 0)
		d->c->policy.progress_deadline_ms = (uint64_t)s * 1000;
}

static const field timeout_fields[] = {
	{ "connect", cfg_h_duration, F_NATIVE, offsetof(cfg_timeouts, connect_ms), 1, 86400000 },
	{ "response", cfg_h_duration, F_NATIVE, offsetof(cfg_timeouts, response_ms), 1, 86400000 },
	{ "clientHead", cfg_h_duration, F_NATIVE, offsetof(cfg_timeouts, client_head_ms), 1, 86400000 },
	{ "clientIdle", cfg_h_duration, F_NATIVE, offsetof(cfg_timeouts, client_idle_ms), 1, 86400000 },
};

static void h_timeouts(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	slot seen[N_OF(timeout_fields)];
	cfg_walk_map(d, path, v, timeout_fields, N_OF(timeout_fields), &d->c->proxy.timeouts, seen);
}

static const field limit_fields[] = {
	{ "maxConnections", cfg_h_int, F_NATIVE, offsetof(cfg_proxy, max_connections), 1, 1000000 },
};

static void h_limits(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	slot seen[N_OF(limit_fields)];
	cfg_walk_map(d, path, v, limit_fields, N_OF(limit_fields), &d->c->proxy, seen);
}

static const field outlier_fields[] = {
	{ "consecutiveErrors", cfg_h_int, F_NATIVE, offsetof(cfg_proxy, outlier_errors), 0, 1000 },
	{ "ejectionTime", cfg_h_duration, F_NATIVE, offsetof(cfg_proxy, outlier_ejection_ms), 1, 86400000 },
};

static void h_outliers(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	slot seen[N_OF(outlier_fields)];
	cfg_walk_map(d, path, v, outlier_fields, N_OF(outlier_fields), &d->c->proxy, seen);
}

/* Prometheus' label names. */
static bool label_name_ok(const char *s, size_t len)
{
	if (!len || strlen(s) != len || isdigit((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* spec.alerts.matchers: label name -> value, all of which a firing alert
 * must have to fail the rollout. */
static void h_matchers(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	cfg_canary *c = obj;
	size_t e0 = d->x->errs->n;
	json_t *o = cfg_read_string_map(d, path, v, "label names", label_name_ok,
	                            "not a label name (letters, digits and _, not starting "
	                            "with a digit)", cfg_line_value_ok);
	if (!o)
		return;
	if (!json_object_size(o) && d->x->errs->n == e0)
		cfg_err_at(d->x, v, "%s: needs at least one label (no labels would match every "
		       "alert)", path);
	json_decref(c->alert_matchers);
	c->alert_matchers = o;
}

static const field alert_fields[] = {
	{ "matchers", h_matchers, F_BOTH, NOSTORE, 0, 0 },
};

static void h_alerts(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	slot seen[N_OF(alert_fields)];
	cfg_walk_map(d, path, v, alert_fields, N_OF(alert_fields), d->c, seen);
}

/* spec.dns: how host names in endpoints are kept resolved (resolve.h).
 * At least 1s: every canary refreshes each of its names on this period,
 * and a DNS server should not see a query storm from a typo'd interval. */
static const field dns_fields[] = {
	{ "refresh", cfg_h_duration, F_NATIVE, offsetof(cfg_canary, dns_refresh_ms), 1000, 86400000 },
};

static void h_dns(doc *d, const field *f, const char *path, yaml_node_t *k,
                  yaml_node_t *v, void *obj)
{
	slot seen[N_OF(dns_fields)];
	cfg_walk_map(d, path, v, dns_fields, N_OF(dns_fields), d->c, seen);
}

/* Flagger's references to Kubernetes objects (targetRef, service,
 * ingressRef, routeRef): only their name is read, for the query
 * functions {{ target }}, {{ service }}, {{ ingress }} and {{ route }};
 * the rest stays in <raw> for the Kubernetes routers. */
static const field ref_name_fields[] = {
	{ "name", cfg_h_string, F_BOTH, 0, 0, 0 }, /* into the char * given */
};

static void h_object_ref(doc *d, const field *f, const char *path, yaml_node_t *k,
                         yaml_node_t *v, void *obj)
{
	slot seen[N_OF(ref_name_fields)];
	cfg_walk_map(d, path, v, ref_name_fields, N_OF(ref_name_fields), cfg_at(obj, f), seen);
}

/* spec.cost.currency: an ISO 4217 code, three capitals (GBP, EUR, USD);
 * which codes exist is not checked: the dashboard only shows it. */
static void h_currency(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	char got_[64];
	cost_rates *r = obj;
	const char *s = cfg_is_plain(v) ? cfg_sval(v) : NULL;
	bool ok = s && strlen(s) == 3;
	for (int i = 0; ok && i < 3; i++)
		ok = s[i] >= 'A' && s[i] <= 'Z';
	if (ok) {
		memcpy(r->currency, s, 4);
		return;
	}
	cfg_err_at(d->x, v, "%s: must be an ISO 4217 currency code of 3 capital letters, such "
	           "as GBP, got %s", path, GOT(v));
}

/* A rate of spec.cost: a number >= 0 into the double at the row's offset. */
static void h_rate(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                   void *obj)
{
	double x;
	if (cfg_read_number(d, path, v, 0, INFINITY, "", &x) == 0)
		*(double *)cfg_at(obj, f) = x;
}

static const field cost_fields[] = {
	{ "currency", h_currency, F_NATIVE, NOSTORE, 0, 0 },
	{ "perMillionRequests", h_rate, F_NATIVE, offsetof(cost_rates, per_million), 0, 0 },
	{ "canaryHourly", h_rate, F_NATIVE, offsetof(cost_rates, hourly), 0, 0 },
	{ "failedRequest", h_rate, F_NATIVE, offsetof(cost_rates, failed), 0, 0 },
};
enum { C_CURRENCY };

/* spec.cost (canaryd/v1): the rates of the dashboard's cost panel. A
 * currency is required (a sum without one is not a price); each rate left
 * out is 0. */
static void h_cost(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                   void *obj)
{
	cfg_canary *c = d->c;
	slot seen[N_OF(cost_fields)];
	memset(&c->cost, 0, sizeof c->cost);
	if (!cfg_walk_map(d, path, v, cost_fields, N_OF(cost_fields), &c->cost, seen))
		return;
	if (!seen[C_CURRENCY].key)
		cfg_err_at(d->x, k, "%s.currency: required (an ISO 4217 code such as GBP)", path);
	c->has_cost = true;
}

/* spec.runbook (canaryd/v1): the URL of the team's runbook. */
static void h_runbook(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	char got_[64];
	cfg_canary *c = d->c;
	if (cfg_is_scalar(v) && !cfg_controls_ok(d, path, v, false))
		return;
	if (cfg_is_scalar(v) && cfg_address_ok(cfg_sval(v))) {
		free(c->runbook);
		c->runbook = xstrdup(cfg_sval(v));
		return;
	}
	cfg_err_at(d->x, v, "%s: must be an http:// or https:// URL, got %s", path, GOT(v));
}

static const field spec_fields[] = {
	{ "router", h_router, F_NATIVE, NOSTORE, 0, 0 },
	{ "listen", h_listen, F_NATIVE, NOSTORE, 0, 0 },
	{ "stable", h_stable, F_NATIVE, NOSTORE, 0, 0 },
	{ "canary", h_canary, F_NATIVE, NOSTORE, 0, 0 },
	{ "timeouts", h_timeouts, F_NATIVE, NOSTORE, 0, 0 },
	{ "provider", cfg_h_string, F_FLAGGER, offsetof(cfg_canary, router), 0, 0 },
	{ "progressDeadlineSeconds", h_deadline, F_BOTH, NOSTORE, 0, 0 },
	{ "analysis", h_analysis, F_BOTH, NOSTORE, 0, 0 },
	{ "workers", cfg_h_int, F_NATIVE, offsetof(cfg_canary, proxy.workers), 1, 64 },
	{ "limits", h_limits, F_NATIVE, NOSTORE, 0, 0 },
	{ "outlierDetection", h_outliers, F_NATIVE, NOSTORE, 0, 0 },
	{ "alerts", h_alerts, F_BOTH, NOSTORE, 0, 0 },
	{ "dns", h_dns, F_NATIVE, NOSTORE, 0, 0 },
	{ "haproxy", h_haproxy, F_NATIVE, NOSTORE, 0, 0 },
	{ "targetRef", h_object_ref, F_FLAGGER, offsetof(cfg_canary, target), 0, 0 },
	{ "service", h_object_ref, F_FLAGGER, offsetof(cfg_canary, service), 0, 0 },
	{ "ingressRef", h_object_ref, F_FLAGGER, offsetof(cfg_canary, ingress), 0, 0 },
	{ "routeRef", h_object_ref, F_FLAGGER, offsetof(cfg_canary, route), 0, 0 },
	{ "healthCheck", cfg_h_health, F_NATIVE, NOSTORE, 0, 0 },
	{ "cost", h_cost, F_NATIVE, NOSTORE, 0, 0 },
	{ "runbook", h_runbook, F_NATIVE, NOSTORE, 0, 0 },
};
/* the rows above, in order: seen[] is indexed by them */
enum { S_ROUTER, S_LISTEN, S_STABLE, S_CANARY, S_TIMEOUTS, S_PROVIDER, S_DEADLINE,
       S_ANALYSIS, S_WORKERS, S_LIMITS, S_OUTLIERS, S_ALERTS, S_DNS, S_HAPROXY, S_TARGETREF,
       S_SERVICE, S_INGRESSREF, S_ROUTEREF, S_HEALTH, S_COST, S_RUNBOOK, S_COUNT };
_Static_assert(S_COUNT == sizeof spec_fields / sizeof spec_fields[0],
               "an S_ name for each row of spec_fields");

static void h_spec(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                   void *obj)
{
	cfg_canary *c = d->c;
	slot seen[N_OF(spec_fields)];
	if (!cfg_walk_map(d, path, v, spec_fields, N_OF(spec_fields), c, seen))
		return;
	cfg_route_finish(d);
	if (!seen[S_ANALYSIS].key)
		cfg_err_at(d->x, k, "spec.analysis: required (how the canary is analysed: interval, "
		       "threshold, stepWeight, metrics...)");
	if (d->x->flagger && !c->router)
		c->router = xstrdup("istio"); /* Flagger's default mesh provider */
	if (d->no_strategy) {
		/* Flagger's kubernetes provider has no traffic split: it runs
		 * blue/green with 10 iterations unless told otherwise */
		if (d->x->flagger && !strcmp(c->router, "kubernetes"))
			c->policy.iterations = 10;
		else
			cfg_err_at(d->x, d->no_strategy, "spec.analysis: one of steps, stepWeight, "
			       "stepWeights or iterations is required");
	}
	/* an undo swaps endpoint sets back: the Kubernetes routers' promotion
	 * copied the pod template into the primary and kept no other */
	bool k8s = c->router && strcmp(c->router, "builtin") && strcmp(c->router, "haproxy");
	if (k8s && c->policy.post_promotion_ms)
		cfg_err_at(d->x, seen[S_ANALYSIS].key ? seen[S_ANALYSIS].key : k,
		           "spec.analysis.postPromotion: not with router '%s' (an undo needs the "
		           "previous stable's endpoints: routers builtin and haproxy)", c->router);
	if (c->policy.post_promotion_ms && c->policy.undo_window_ms < c->policy.post_promotion_ms)
		cfg_err_at(d->x, seen[S_ANALYSIS].key ? seen[S_ANALYSIS].key : k,
		           "spec.analysis.postPromotion.window: longer than spec.analysis.undoWindow "
		           "(an undo after the window closed cannot happen)");
	if (d->x->flagger)
		return;
	if (!c->router && !seen[S_ROUTER].key)
		c->router = xstrdup("builtin");
	if (!seen[S_STABLE].key)
		cfg_err_at(d->x, k, "spec.stable: required (the revision and endpoints that get "
		       "traffic by default)");
	if (c->router && !strcmp(c->router, "builtin") && !seen[S_LISTEN].key)
		cfg_err_at(d->x, k, "spec.listen: required with router builtin (HOST:PORT where "
		       "clients connect, such as 127.0.0.1:8080)");
	bool hap = c->router && !strcmp(c->router, "haproxy");
	if (hap && c->mirror_weight > 0)
		cfg_err_at(d->x, seen[S_ANALYSIS].key, "spec.analysis.mirror: router haproxy does "
		       "not mirror traffic (router builtin does)");
	if (hap && !seen[S_HAPROXY].key)
		cfg_err_at(d->x, k, "spec.haproxy: required with router haproxy ({runtimeAPI: "
		       "unix:/run/haproxy/admin.sock, backend: NAME})");
	if (!hap && seen[S_HAPROXY].key)
		cfg_err_at(d->x, seen[S_HAPROXY].key, "spec.haproxy: only with router haproxy "
		       "(the router is '%s')", c->router ? c->router : "builtin");
	/* show stat has a moving mean of times, no distribution: a p99 needs
	 * each request's time, from HAProxy's logs (docs/routers.md) */
	for (int i = 0; hap && seen[S_HAPROXY].key && !c->haproxy_log && i < c->policy.n_metrics;
	     i++)
		if (c->policy.metrics[i].kind == ENG_M_DURATION)
			cfg_err_at(d->x, seen[S_HAPROXY].key, "spec.analysis.metrics[%d] '%s': "
			       "request-duration with router haproxy needs spec.haproxy.log (HAProxy's "
			       "show stat has only a moving mean of response times, not a p99)", i,
			       c->policy.metrics[i].name);
	if (hap && seen[S_HAPROXY].key && !c->haproxy_log &&
	    c->policy.judge == ENG_JUDGE_SEQUENTIAL && c->policy.judge_latency_ratio > 0)
		cfg_err_at(d->x, seen[S_HAPROXY].key, "spec.analysis.judge: the sequential judge's "
		       "latency test with router haproxy needs spec.haproxy.log (or "
		       "spec.analysis.latencyRatio: 0)");
	/* the sequential judge's promise covers the whole analysis: every
	 * metric must be one it can test sequentially (docs/analysis.md) */
	for (int i = 0; c->policy.judge == ENG_JUDGE_SEQUENTIAL && i < c->policy.n_metrics; i++) {
		const eng_metric *m = &c->policy.metrics[i];
		const char *why = NULL;
		if (m->kind == ENG_M_CUSTOM)
			why = "its values come from a provider, and a fixed threshold checked on them "
			      "each interval has no false-rollback bound";
		else if (m->relative || m->baseline_window_ms || m->failure_duration_ms)
			why = "the sequential judge compares with stable itself: use "
			      "errorMargin, errorRatio or latencyRatio instead of relative, baseline "
			      "or failureDuration";
		else if (m->kind == ENG_M_ERROR_RATE && (!m->has_max || m->has_min || m->max <= 0 ||
		                                         m->max >= 100))
			why = "an error-rate guard needs thresholdRange.max alone, above 0 and below 100";
		else if (m->kind == ENG_M_SUCCESS_RATE && (!m->has_min || m->has_max ||
		                                           m->min <= 0 || m->min >= 100))
			why = "a request-success-rate guard needs thresholdRange.min alone, above 0 and "
			      "below 100";
		else if (m->kind == ENG_M_DURATION && (!m->has_max || m->has_min || m->max <= 0))
			why = "a request-duration guard needs thresholdRange.max alone, above 0";
		if (why)
			cfg_err_at(d->x, seen[S_ANALYSIS].key ? seen[S_ANALYSIS].key : k,
			           "spec.analysis.metrics[%d] '%s': not with judge sequential: %s "
			           "(or use judge: threshold)", i, m->name, why);
	}
	if (seen[S_HEALTH].key)
		cfg_health_router_check(d, seen[S_HEALTH].key, c->router);
	if (hap && seen[S_LISTEN].key)
		cfg_err_at(d->x, seen[S_LISTEN].key, "spec.listen: not with router haproxy (clients "
		       "connect to HAProxy; canaryd adds servers to spec.haproxy.backend)");
	if (c->stable_rev && c->canary_rev && !strcmp(c->stable_rev, c->canary_rev))
		cfg_err_at(d->x, d->canary_rev_val, "spec.canary.revision: must differ from "
		       "spec.stable.revision ('%s')", c->stable_rev);
}

static const field top_fields[] = {
	{ "apiVersion", NULL, F_BOTH, NOSTORE, 0, 0 }, /* checked first */
	{ "kind", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "metadata", h_metadata, F_BOTH, NOSTORE, 0, 0 },
	{ "spec", h_spec, F_BOTH, NOSTORE, 0, 0 },
};

/* ---- documents ---- */

static yaml_node_t *map_get(ctx *x, yaml_node_t *map, const char *key)
{
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
	     pr < map->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = cfg_node_at(x, pr->key);
		if (cfg_is_scalar(k) && !strcmp(cfg_sval(k), key))
			return cfg_node_at(x, pr->value);
	}
	return NULL;
}

void cfg_canary_release(cfg_canary *c)
{
	free(c->name);
	free(c->namespace_);
	free(c->file);
	free(c->target);
	free(c->service);
	free(c->ingress);
	free(c->route);
	free(c->router);
	free(c->listen);
	free(c->haproxy_api);
	free(c->haproxy_backend);
	free(c->haproxy_log);
	free(c->runbook);
	free(c->health.path);
	free(c->stable_rev);
	for (size_t i = 0; i < c->n_stable_eps; i++)
		free(c->stable_eps[i]);
	free(c->stable_eps);
	free(c->stable_eps_pos);
	free(c->canary_rev);
	for (size_t i = 0; i < c->n_canary_eps; i++)
		free(c->canary_eps[i]);
	free(c->canary_eps);
	free(c->canary_eps_pos);
	for (size_t i = 0; i < c->n_webhooks; i++) {
		free(c->webhooks[i].name);
		free(c->webhooks[i].type);
		free(c->webhooks[i].url);
		for (char **a = c->webhooks[i].argv; a && *a; a++)
			free(*a);
		free(c->webhooks[i].argv);
		json_decref(c->webhooks[i].metadata);
	}
	free(c->webhooks);
	for (size_t i = 0; i < ENG_MAX_METRICS; i++)
		cfg_src_release(&c->sources[i]);
	for (size_t i = 0; i < c->n_alerts; i++)
		cfg_alert_release(&c->alerts[i]);
	free(c->alerts);
	cfg_route_release(c);
	json_decref(c->alert_matchers);
	json_decref(c->raw);
	memset(c, 0, sizeof *c);
}

/* Do two listen addresses clash? A wildcard host clashes with any host on
 * the same port, as bind(2) would say. */
static bool same_listen(const char *a, const char *b)
{
	char ha[256], hb[256];
	int pa, pb;
	if (util_parse_hostport(a, ha, sizeof ha, &pa) < 0 ||
	    util_parse_hostport(b, hb, sizeof hb, &pb) < 0 || pa != pb)
		return false;
	bool wa = !strcmp(ha, "0.0.0.0") || !strcmp(ha, "::") || !strcmp(ha, "*");
	bool wb = !strcmp(hb, "0.0.0.0") || !strcmp(hb, "::") || !strcmp(hb, "*");
	return wa || wb || !strcasecmp(ha, hb);
}

/* Validates one document (root <root>, not empty) and appends it to <out>,
 * or keeps it in x->defs when it is a MetricTemplate. Returns false for a
 * MetricTemplate (not counted as a Canary), true otherwise. */
bool cfg_load_document(ctx *x, yaml_document_t *ydoc, yaml_node_t *root, cfg *out)
{
	char got_[64];
	cfg_canary c;
	memset(&c, 0, sizeof c);
	c.line = (int)ydoc->start_mark.line + 1;
	x->doc = ydoc;
	buf path = BUF_INIT;
	buf_puts(&path, "");
	c.raw = cfg_to_json(x, root, &path, 0);
	buf_release(&path);
	if (!c.raw)
		return true;
	c.file = xstrdup(x->name);
	if (root->type != YAML_MAPPING_NODE) {
		cfg_err_at(x, root, "document must be a mapping (a Canary), got %s", GOT(root));
		cfg_canary_release(&c);
		return true;
	}
	yaml_node_t *kind = map_get(x, root, "kind");
	yaml_node_t *api = map_get(x, root, "apiVersion");
	bool ok = true;
	bool is_template = kind && cfg_is_scalar(kind) && !strcmp(cfg_sval(kind), "MetricTemplate");
	bool is_alert = kind && cfg_is_scalar(kind) && !strcmp(cfg_sval(kind), "AlertProvider");
	if (!is_template && !is_alert &&
	    (!kind || !cfg_is_scalar(kind) || strcmp(cfg_sval(kind), "Canary"))) {
		cfg_err_at(x, kind ? kind : root, "kind must be Canary, MetricTemplate or "
		       "AlertProvider, got %s", GOT(kind));
		ok = false;
	}
	bool native = api && cfg_is_scalar(api) && !strcmp(cfg_sval(api), API_NATIVE);
	bool flagger = api && cfg_is_scalar(api) && !strcmp(cfg_sval(api), API_FLAGGER);
	if (!native && !flagger && api && cfg_is_scalar(api) &&
	    !strncmp(cfg_sval(api), "flagger.app/", 12)) {
		cfg_err_at(x, api, "apiVersion: %s is an API version Flagger no longer serves (its "
		       "CRD serves " API_FLAGGER " only): use " API_FLAGGER, GOT(api));
		ok = false;
	} else if (!native && !flagger) {
		cfg_err_at(x, api ? api : root, "apiVersion: must be " API_NATIVE " or " API_FLAGGER
		       ", got %s", GOT(api));
		ok = false;
	}
	if (!ok || is_template || is_alert) {
		x->flagger = flagger;
		if (ok)
			cfg_load_template(x, root, c.line, is_alert);
		cfg_canary_release(&c);
		return !is_template && !is_alert;
	}
	x->flagger = flagger;
	c.flagger = flagger;
	x->canary = out->n_canaries;
	eng_policy_defaults(&c.policy);
	c.policy.judge = ENG_JUDGE_THRESHOLD;
	c.policy.alpha = 0.01;
	c.policy.min_samples = 100;
	c.proxy.timeouts.connect_ms = 5000;
	c.proxy.timeouts.response_ms = 30000;
	c.proxy.timeouts.client_head_ms = 10000;
	c.proxy.timeouts.client_idle_ms = 60000;
	c.proxy.workers = 1;
	c.proxy.max_connections = 10000;
	c.proxy.outlier_errors = 5;
	c.proxy.outlier_ejection_ms = 30000;
	c.dns_refresh_ms = 30000;
	doc d = { .x = x, .c = &c };
	slot seen[N_OF(top_fields)];
	cfg_walk_map(&d, "", root, top_fields, N_OF(top_fields), &c, seen);
	if (!seen[T_METADATA].key)
		cfg_err_at(x, root, "metadata: required (with the canary's name)");
	if (!seen[T_SPEC].key)
		cfg_err_at(x, root, "spec: required");

	/* each clash named once, with the first document it clashes with: n
	 * copies of a document would otherwise give n * n / 2 messages */
	bool name_dup = false, listen_dup = false;
	for (size_t i = 0; i < out->n_canaries; i++) {
		const cfg_canary *o = &out->canaries[i];
		/* the other place: its line, and its file when not this one */
		bool here = !strcmp(o->file, c.file);
		if (!name_dup && c.name && o->name && !strcmp(c.name, o->name)) {
			if (here)
				cfg_err_at(x, d.name_val, "metadata.name: duplicate canary name '%s' (also the "
				       "document at line %d)", c.name, o->line);
			else
				cfg_err_at(x, d.name_val, "metadata.name: duplicate canary name '%s' (also "
				       "the document at %s:%d)", c.name, o->file, o->line);
			name_dup = true;
		}
		if (!listen_dup && c.listen && o->listen && same_listen(c.listen, o->listen)) {
			if (here)
				cfg_err_at(x, d.listen_val, "spec.listen: address '%s' is already used by "
				       "canary '%s' (line %d)", c.listen, o->name ? o->name : "?", o->line);
			else
				cfg_err_at(x, d.listen_val, "spec.listen: address '%s' is already used by "
				       "canary '%s' (%s:%d)", c.listen, o->name ? o->name : "?", o->file,
				       o->line);
			listen_dup = true;
		}
	}
	cfg_grow(&out->canaries, out->n_canaries, &x->canaries_cap, sizeof *out->canaries);
	out->canaries[out->n_canaries++] = c;
	return true;
}
