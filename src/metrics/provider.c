/* provider.c - see provider.h: the table of providers, and reading their
 * answers. The reads are in provider_builtin.c (the request stats),
 * provider_http.c (Prometheus and web metrics), provider_mesh.c,
 * provider_datadog.c and provider_newrelic.c. */
#include "provider.h"

#include <ctype.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "util.h"

/* By cfg_metric_source.type: a table, so that a new provider is a row. */
static const provider_ops *const providers[] = {
	[CFG_PROVIDER_BUILTIN] = &provider_builtin,
	[CFG_PROVIDER_PROMETHEUS] = &provider_prometheus,
	[CFG_PROVIDER_WEB] = &provider_web,
	[CFG_PROVIDER_DATADOG] = &provider_datadog,
	[CFG_PROVIDER_NEWRELIC] = &provider_newrelic,
};

const provider_ops *provider_by_type(cfg_provider_type t)
{
	size_t n = (size_t)t;
	return n < sizeof providers / sizeof providers[0] ? providers[n] : NULL;
}

const provider_ops *provider_of(const cfg_canary *cc, int i)
{
	if (i < 0 || i >= cc->policy.n_metrics)
		return NULL;
	cfg_provider_type t = cc->sources[i].type;
	/* a built-in metric is measured where the traffic goes: behind a
	 * mesh, by the mesh's proxies, into Prometheus */
	if (t == CFG_PROVIDER_BUILTIN && cc->policy.metrics[i].kind != ENG_M_CUSTOM &&
	    provider_is_mesh(cc))
		return &provider_mesh;
	return provider_by_type(t);
}

int provider_check(const cfg_canary *cc, char *err, size_t errlen)
{
	for (int i = 0; i < cc->policy.n_metrics; i++) {
		const provider_ops *ops = provider_of(cc, i);
		if (!ops) {
			snprintf(err, errlen, "canary '%s': metric '%s' has no provider in this version",
			         cc->name, cc->policy.metrics[i].name);
			return -1;
		}
		if (ops->check && ops->check(cc, i, err, errlen) < 0)
			return -1;
	}
	return 0;
}

/* --metrics-server: one value for the process, as Flagger's flag */
static char *metrics_server;

void provider_set_metrics_server(const char *url)
{
	free(metrics_server);
	metrics_server = url ? xstrdup(url) : NULL;
}

const char *provider_metrics_server(void)
{
	return metrics_server;
}

static char *mesh_namespace;

void provider_set_mesh_namespace(const char *ns)
{
	free(mesh_namespace);
	mesh_namespace = ns && *ns ? xstrdup(ns) : NULL;
}

const char *provider_mesh_namespace(void)
{
	return mesh_namespace ? mesh_namespace : "default";
}

/* Reasons quote what a receiver sent (its error message, the parser's view
 * of its bytes), so they are made one line of plain text here, before the
 * audit, the log or a terminal sees them. */
int provider_no_value(char *reason, size_t rlen, const char *fmt, ...)
{
	if (!rlen)
		return 0;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(reason, rlen, fmt, ap);
	va_end(ap);
	util_ascii_line(reason);
	return 0;
}

void provider_redact(char *s, const char *secret)
{
	size_t kl = secret ? strlen(secret) : 0;
	if (!kl)
		return;
	for (char *p = s; (p = strstr(p, secret)) != NULL; p += kl)
		memset(p, '*', kl);
	/* a reason is cut to its buffer, which may end inside the key: the
	 * start of a key at the very end is masked too (from 4 characters,
	 * below which a text's last word would be masked by chance) */
	size_t n = strlen(s);
	for (size_t l = kl - 1 < n ? kl - 1 : n; l >= 4; l--)
		if (!memcmp(s + n - l, secret, l)) {
			memset(s + n - l, '*', l);
			break;
		}
}

/* A plain decimal number as JSON writes it and as Prometheus formats
 * sample values: -?DIGITS(.DIGITS)?([eE][+-]?DIGITS)?. Only such text goes
 * to strtod, which alone would also take "0x10", " 5", "infinity" and
 * "nan(1)": from a provider those are garbage, not values. */
static bool plain_decimal(const char *s)
{
	if (*s == '-')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s))
		s++;
	if (*s == '.') {
		s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '+' || *s == '-')
			s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return *s == '\0';
}

/* The value of a sample or of the number a web metric points at: a JSON
 * number, or a string holding a plain decimal number (Prometheus writes
 * every value as a string). NaN and the infinities, which Prometheus
 * writes as "NaN", "+Inf" and "-Inf" (a division by zero, a quantile in
 * the +Inf bucket), measure nothing: with thresholdRange {min: 99} +Inf
 * would pass. They are no data, so the check fails. */
static int number_from(const json_t *j, double *value, char *reason, size_t rlen)
{
	double v;
	if (json_is_number(j)) {
		v = json_number_value(j);
	} else if (json_is_string(j)) {
		const char *s = json_string_value(j);
		if (strcasecmp(s, "NaN") == 0)
			return provider_no_value(reason, rlen, "value is NaN");
		if (strcasecmp(s, "+Inf") == 0 || strcasecmp(s, "Inf") == 0)
			return provider_no_value(reason, rlen, "value is +Inf");
		if (strcasecmp(s, "-Inf") == 0)
			return provider_no_value(reason, rlen, "value is -Inf");
		if (!plain_decimal(s))
			return provider_no_value(reason, rlen, "value '%.40s' is not a number", s);
		v = strtod(s, NULL);
	} else {
		return provider_no_value(reason, rlen, "value is not a number");
	}
	if (!isfinite(v)) /* strtod's answer to 1e999 */
		return provider_no_value(reason, rlen, "value '%.40s' is out of range",
		                json_is_string(j) ? json_string_value(j) : "?");
	*value = v;
	return 1;
}

/* Answers are read with duplicated keys refused: {"status": "error", ...,
 * "status": "success"} means one thing to one JSON reader and another to
 * the next; such an answer is refused rather than guessed at. */
#define ANSWER_FLAGS JSON_REJECT_DUPLICATES

int provider_parse_prometheus(const char *body, size_t len, double *value,
                              char *reason, size_t rlen)
{
	json_error_t jerr;
	json_t *root = json_loadb(body, len, ANSWER_FLAGS, &jerr);
	if (!root)
		return provider_no_value(reason, rlen, "answer is not JSON: %s", jerr.text);
	int ok = 0;
	const char *status = json_string_value(json_object_get(root, "status"));
	const json_t *data = json_object_get(root, "data");
	const char *rtype = json_string_value(json_object_get(data, "resultType"));
	const json_t *result = json_object_get(data, "result");
	if (!status || strcmp(status, "success") != 0) {
		const char *e = json_string_value(json_object_get(root, "error"));
		provider_no_value(reason, rlen, "query failed: %.150s", e ? e : "no status 'success'");
	} else if (!rtype) {
		provider_no_value(reason, rlen, "answer has no data.resultType");
	} else if (strcmp(rtype, "scalar") == 0) {
		ok = number_from(json_array_get(result, 1), value, reason, rlen);
	} else if (strcmp(rtype, "vector") == 0) {
		size_t n = json_array_size(result);
		if (n == 0)
			provider_no_value(reason, rlen, "query returned no sample");
		else if (n > 1)
			provider_no_value(reason, rlen, "query returned %zu samples; it must return one "
			         "(aggregate it, e.g. sum(...))", n);
		else
			ok = number_from(json_array_get(json_object_get(json_array_get(result, 0), "value"), 1),
			                 value, reason, rlen);
	} else {
		provider_no_value(reason, rlen, "query returned a %.40s; it must return one sample", rtype);
	}
	json_decref(root);
	return ok;
}

int provider_json_path(const json_t *root, const char *path, double *value,
                       char *reason, size_t rlen)
{
	const json_t *cur = root;
	const char *p = path;
	if (*p == '$')
		p++;
	char key[256];
	while (*p) {
		if (*p == '.') {
			p++;
			size_t n = 0;
			while (*p && *p != '.' && *p != '[' && n + 1 < sizeof key)
				key[n++] = *p++;
			key[n] = '\0';
			if (!n)
				return provider_no_value(reason, rlen, "bad jsonPath '%s'", path);
			cur = json_object_get(cur, key);
		} else if (*p == '[') {
			p++;
			if (*p == '\'' || *p == '"') {
				char q = *p++;
				size_t n = 0;
				while (*p && *p != q && n + 1 < sizeof key)
					key[n++] = *p++;
				key[n] = '\0';
				if (*p != q || p[1] != ']')
					return provider_no_value(reason, rlen, "bad jsonPath '%s'", path);
				p += 2;
				cur = json_object_get(cur, key);
			} else {
				char *end;
				long idx = strtol(p, &end, 10);
				if (end == p || *end != ']' || idx < 0)
					return provider_no_value(reason, rlen, "bad jsonPath '%s'", path);
				p = end + 1;
				cur = json_array_get(cur, (size_t)idx);
			}
		} else {
			return provider_no_value(reason, rlen, "bad jsonPath '%s'", path);
		}
		if (!cur)
			return provider_no_value(reason, rlen, "nothing at %s in the answer", path);
	}
	return number_from(cur, value, reason, rlen);
}

int provider_parse_web(const char *body, size_t len, const char *path, double *value,
                       char *reason, size_t rlen)
{
	/* any JSON text: with the default path "$" the answer may be a bare number */
	json_error_t jerr;
	json_t *root = json_loadb(body, len, ANSWER_FLAGS | JSON_DECODE_ANY, &jerr);
	if (!root)
		return provider_no_value(reason, rlen, "answer is not JSON: %s", jerr.text);
	int ok = provider_json_path(root, path, value, reason, rlen);
	json_decref(root);
	return ok;
}

/* ---- keyed APIs (datadog, newrelic) ---- */

int provider_json_answer(int status, const char *body, size_t len,
                         const char *(*message)(const json_t *root), json_t **root,
                         char *reason, size_t rlen)
{
	json_error_t jerr;
	*root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
	if (status != 200) {
		const char *e = json_is_object(*root) ? message(*root) : NULL;
		if (e)
			provider_no_value(reason, rlen, "answered HTTP %d: %.150s", status, e);
		else
			provider_no_value(reason, rlen, "answered HTTP %d", status);
		json_decref(*root);
		*root = NULL;
		return 0;
	}
	if (!*root)
		return provider_no_value(reason, rlen, "answer is not JSON: %s", jerr.text);
	return 1;
}

typedef struct keyed_read {
	provider_fn done;
	void *arg;
	provider_parse_fn parse;
	char *keys[2];     /* copies, to scrub a reason that echoes one */
	char what[160];
} keyed_read;

static void keyed_free(keyed_read *r)
{
	for (int i = 0; i < 2; i++)
		free(r->keys[i]);
	free(r);
}

static void keyed_answer(void *arg, int status, const char *error, const char *body,
                         size_t body_len, uint64_t elapsed_ms)
{
	keyed_read *r = arg;
	char why[256], reason[448];
	double value = 0;
	int ok = 0;
	(void)elapsed_ms;
	if (error)
		provider_no_value(reason, sizeof reason, "%s did not answer: %s", r->what, error);
	else if (!(ok = r->parse(status, body, body_len, &value, why, sizeof why)))
		provider_no_value(reason, sizeof reason, "%s: %s", r->what, why);
	for (int i = 0; !ok && i < 2; i++)
		provider_redact(reason, r->keys[i]);
	r->done(r->arg, ok, value, ok ? "" : reason);
	keyed_free(r);
}

int provider_keyed_get(const provider_env *env, const char *url, const char *const *names,
                       const char *const *keys, int n, const char *what, provider_parse_fn parse,
                       uint64_t timeout_ms, size_t max_body, provider_fn done, void *arg,
                       char *err, size_t errlen)
{
	if (!env->http) {
		snprintf(err, errlen, "no HTTP client (libcurl failed to initialise)");
		return -1;
	}
	if (n < 0 || n > 2) {
		snprintf(err, errlen, "%s: %d keys, at most 2", what, n);
		return -1;
	}
	keyed_read *r = xcalloc(1, sizeof *r);
	r->done = done;
	r->arg = arg;
	r->parse = parse;
	snprintf(r->what, sizeof r->what, "%s", what);
	buf h[2] = { BUF_INIT, BUF_INIT };
	const char *hdrs[2];
	for (int i = 0; i < n; i++) {
		r->keys[i] = xstrdup(keys[i]);
		buf_printf(&h[i], "%s: %s", names[i], keys[i]);
		hdrs[i] = h[i].p;
	}
	int rc = hooks_request(env->http, "GET", url, hdrs, (size_t)n, NULL, timeout_ms, max_body,
	                       keyed_answer, r);
	if (rc < 0) {
		snprintf(err, errlen, "cannot start the request to %s", r->what);
		keyed_free(r);
	}
	for (int i = 0; i < 2; i++)
		buf_release(&h[i]);
	return rc;
}
