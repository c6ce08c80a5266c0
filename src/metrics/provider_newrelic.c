/* provider_newrelic.c - the "newrelic" provider, as Flagger v1.44.0's
 * (pkg/metrics/providers/newrelic.go): an NRQL query to the Insights query
 * API, GET {address}/v1/accounts/{accountId}/query?nrql=..., with the
 * query key in the X-Query-Key header. Flagger appends " SINCE N seconds
 * ago" (N the metric's interval) to the query, and the value is the
 * "result" of the one row the answer must have: NRQL names a row's value
 * after its function ({"count": 5}) except for an arithmetic expression
 * ({"result": 0.5}), so a query is written as one ("SELECT count(*) / 1").
 * The key is read when the configuration is loaded (cfg_metric.c); it
 * goes in the request's header and nowhere else. */
#include "provider.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define NEWRELIC_MAX_BODY (4u << 20)


/* The message of a New Relic error body, {"error": "..."} (its documented
 * form; some answers nest it: {"error": {"message": "..."}}), or NULL. */
static const char *error_message(const json_t *root)
{
	const json_t *e = json_object_get(root, "error");
	const char *s = json_string_value(e);
	if (!s)
		s = json_string_value(json_object_get(e, "message"));
	return s && *s ? s : NULL;
}

int provider_parse_newrelic(int status, const char *body, size_t len, double *value,
                            char *reason, size_t rlen)
{
	json_t *root;
	if (!provider_json_answer(status, body, len, error_message, &root, reason, rlen))
		return 0;
	int ok = 0;
	const json_t *results = json_object_get(root, "results");
	const json_t *row = json_array_get(results, 0);
	const json_t *v = json_object_get(row, "result");
	if (!json_is_object(root)) {
		provider_no_value(reason, rlen, "answer is not a JSON object");
	} else if (error_message(root)) {
		provider_no_value(reason, rlen, "query failed: %.150s", error_message(root));
	} else if (!json_is_array(results)) {
		provider_no_value(reason, rlen, "answer has no results");
	} else if (json_array_size(results) == 0) {
		provider_no_value(reason, rlen, "query returned no results");
	} else if (json_array_size(results) > 1) {
		provider_no_value(reason, rlen, "query returned %zu results; it must return one",
		                  json_array_size(results));
	} else if (!json_is_object(row)) {
		provider_no_value(reason, rlen, "results[0] is not an object");
	} else if (!v) {
		const char *k = json_object_iter_key(json_object_iter((json_t *)row));
		if (k)
			provider_no_value(reason, rlen, "results[0] has no 'result' (it has '%.40s'): "
			                  "write the query as an expression, such as count(*) / 1", k);
		else
			provider_no_value(reason, rlen, "results[0] has no 'result'");
	} else if (json_is_null(v)) {
		provider_no_value(reason, rlen, "results[0].result is null");
	} else if (!json_is_number(v)) {
		provider_no_value(reason, rlen, "results[0].result is not a number");
	} else if (!isfinite(json_number_value(v))) {
		provider_no_value(reason, rlen, "results[0].result is out of range");
	} else {
		*value = json_number_value(v);
		ok = 1;
	}
	json_decref(root);
	return ok;
}

/* The URL a read of window <w> sends: the query with Flagger's " SINCE N
 * seconds ago", N the window's span in whole seconds. */
static int newrelic_url(const cfg_metric_source *src, const provider_window *w, buf *out,
                        char *err, size_t errlen)
{
	buf q = BUF_INIT;
	if (tmpl_render(src->query, &w->vars, TMPL_PROMQL, &q, err, errlen) < 0)
		return -1;
	buf_printf(&q, " SINCE %llu seconds ago", (unsigned long long)(w->w.span_ms / 1000));
	const char *a = src->address;
	size_t al = strlen(a);
	while (al && a[al - 1] == '/')
		al--;
	buf_append(out, a, al);
	buf_puts(out, "/v1/accounts/");
	buf_url_escape(out, src->account_id ? src->account_id : "");
	buf_puts(out, "/query?nrql=");
	buf_url_escape(out, q.p);
	buf_release(&q);
	return 0;
}

static int newrelic_describe(const provider_env *env, const cfg_metric_source *src,
                             const provider_window *w, buf *out, char *err, size_t errlen)
{
	buf_puts(out, "GET ");
	return newrelic_url(src, w, out, err, errlen);
}

static int newrelic_read(const provider_env *env, const cfg_metric_source *src,
                         const provider_window *w, provider_fn done, void *arg, char *err,
                         size_t errlen)
{
	if (!src->key[CFG_KEY_QUERY] || !src->account_id) {
		snprintf(err, errlen, "the newrelic provider has no query key or account");
		return -1;
	}
	buf url = BUF_INIT;
	if (newrelic_url(src, w, &url, err, errlen) < 0)
		return -1;
	char what[160];
	snprintf(what, sizeof what, "New Relic at '%.120s'", src->address);
	static const char *const names[] = { "X-Query-Key" };
	const char *keys[] = { src->key[CFG_KEY_QUERY] };
	int rc = provider_keyed_get(env, url.p, names, keys, 1, what, provider_parse_newrelic,
	                            src->timeout_ms, NEWRELIC_MAX_BODY, done, arg, err, errlen);
	buf_release(&url);
	return rc;
}

const provider_ops provider_newrelic = {
	.name = "newrelic",
	.read = newrelic_read,
	.describe = newrelic_describe,
};
