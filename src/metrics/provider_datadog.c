/* provider_datadog.c - the "datadog" provider, as Flagger v1.44.0's
 * (pkg/metrics/providers/datadog.go): GET {address}/api/v1/query with
 * from, to and query, the keys in the DD-API-KEY and DD-APPLICATION-KEY
 * headers, and the value of the first point of the first series.
 *
 * The window is Flagger's: from is ten times the metric's interval before
 * now (Flagger's datadogFromDeltaMultiplierOnMetricInterval), and the
 * oldest point is read, because the newest bucket of a Datadog series is
 * almost always incomplete. The keys are read when the configuration is
 * loaded (cfg_metric.c); they go in the request's headers and nowhere
 * else: not in a reason, a log line or what describe shows. */
#include "provider.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define DATADOG_MAX_BODY (4u << 20)   /* as the other providers' answers */
#define DATADOG_FROM_FACTOR 10        /* Flagger: from = now - 10 x interval */


/* The first message of a Datadog error body, {"errors": ["...", ...]} (its
 * documented form), or of {"error": "..."} (a query answer whose status is
 * not "ok"); NULL when there is none. */
static const char *error_message(const json_t *root)
{
	const json_t *errs = json_object_get(root, "errors");
	const char *e = json_string_value(json_array_get(errs, 0));
	if (!e)
		e = json_string_value(errs);
	if (!e)
		e = json_string_value(json_object_get(root, "error"));
	return e && *e ? e : NULL;
}

int provider_parse_datadog(int status, const char *body, size_t len, double *value,
                           char *reason, size_t rlen)
{
	json_t *root;
	if (!provider_json_answer(status, body, len, error_message, &root, reason, rlen))
		return 0;
	int ok = 0;
	const json_t *stj = json_object_get(root, "status");
	const char *st = json_string_value(stj);
	const json_t *series = json_object_get(root, "series");
	const json_t *pl = json_object_get(json_array_get(series, 0), "pointlist");
	const json_t *point = json_array_get(pl, 0);
	const json_t *v = json_array_get(point, 1);
	if (!json_is_object(root)) {
		provider_no_value(reason, rlen, "answer is not a JSON object");
	} else if ((stj && !(st && !strcmp(st, "ok"))) || json_object_get(root, "errors")) {
		const char *e = error_message(root);
		provider_no_value(reason, rlen, "query failed: %.150s",
		                  e ? e : st ? st : "status is not 'ok'");
	} else if (!json_is_array(series)) {
		provider_no_value(reason, rlen, "answer has no series");
	} else if (json_array_size(series) == 0) {
		provider_no_value(reason, rlen, "query returned no series");
	} else if (!json_is_array(pl)) {
		provider_no_value(reason, rlen, "series[0] has no pointlist");
	} else if (json_array_size(pl) == 0) {
		provider_no_value(reason, rlen, "series[0] has no points");
	} else if (!json_is_array(point) || json_array_size(point) != 2) {
		provider_no_value(reason, rlen, "series[0].pointlist[0] is not a [time, value] pair");
	} else if (json_is_null(v)) {
		/* Flagger's []float64 reads null as 0; an empty bucket is no data */
		provider_no_value(reason, rlen, "series[0]'s first point has no value (null)");
	} else if (!json_is_number(v)) {
		provider_no_value(reason, rlen, "series[0]'s first point's value is not a number");
	} else if (!isfinite(json_number_value(v))) {
		provider_no_value(reason, rlen, "series[0]'s first point's value is out of range");
	} else {
		*value = json_number_value(v);
		ok = 1;
	}
	json_decref(root);
	return ok;
}

/* The URL a read of window <w> sends at <now> (seconds since the epoch):
 * {address}/api/v1/query?from=..&to=..&query=.. (Flagger's parameters). */
static int datadog_url(const cfg_metric_source *src, const provider_window *w, time_t now,
                       buf *out, char *err, size_t errlen)
{
	buf q = BUF_INIT;
	if (tmpl_render(src->query, &w->vars, TMPL_PROMQL, &q, err, errlen) < 0)
		return -1;
	const char *a = src->address;
	size_t al = strlen(a);
	while (al && a[al - 1] == '/')
		al--;
	/* Flagger: int64(10 * interval.Seconds()) */
	long long delta = (long long)(DATADOG_FROM_FACTOR * w->w.span_ms / 1000);
	buf_append(out, a, al);
	buf_printf(out, "/api/v1/query?from=%lld&to=%lld&query=", (long long)now - delta,
	           (long long)now);
	buf_url_escape(out, q.p);
	buf_release(&q);
	return 0;
}

static int datadog_describe(const provider_env *env, const cfg_metric_source *src,
                            const provider_window *w, buf *out, char *err, size_t errlen)
{
	buf_puts(out, "GET ");
	return datadog_url(src, w, time(NULL), out, err, errlen);
}

static int datadog_read(const provider_env *env, const cfg_metric_source *src,
                        const provider_window *w, provider_fn done, void *arg, char *err,
                        size_t errlen)
{
	if (!src->key[CFG_KEY_API] || !src->key[CFG_KEY_APP]) {
		snprintf(err, errlen, "the datadog provider has no keys");
		return -1;
	}
	buf url = BUF_INIT;
	if (datadog_url(src, w, time(NULL), &url, err, errlen) < 0)
		return -1;
	char what[160];
	snprintf(what, sizeof what, "Datadog at '%.120s'", src->address);
	static const char *const names[] = { "DD-API-KEY", "DD-APPLICATION-KEY" };
	const char *keys[] = { src->key[CFG_KEY_API], src->key[CFG_KEY_APP] };
	int rc = provider_keyed_get(env, url.p, names, keys, 2, what, provider_parse_datadog,
	                            src->timeout_ms, DATADOG_MAX_BODY, done, arg, err, errlen);
	buf_release(&url);
	return rc;
}

const provider_ops provider_datadog = {
	.name = "datadog",
	.read = datadog_read,
	.describe = datadog_describe,
};
