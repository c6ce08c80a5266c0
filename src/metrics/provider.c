/* provider.c - see provider.h. */
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

#define PROVIDER_MAX_BODY (4u << 20) /* an answer larger than this is an error */

typedef struct prov_read {
	provider_fn done;
	void *arg;
	int web;
	char *json_path;
	char what[160];    /* "Prometheus at 'URL'" / "web metric 'URL'" for messages */
} prov_read;

/* Writes a reason and returns 0 (no value). Reasons quote what a receiver
 * sent (its error message, the parser's view of its bytes), so they are
 * made one line of plain text here, before the audit, the log or a
 * terminal sees them. */
static int no_value(char *reason, size_t rlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static int no_value(char *reason, size_t rlen, const char *fmt, ...)
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
			return no_value(reason, rlen, "value is NaN");
		if (strcasecmp(s, "+Inf") == 0 || strcasecmp(s, "Inf") == 0)
			return no_value(reason, rlen, "value is +Inf");
		if (strcasecmp(s, "-Inf") == 0)
			return no_value(reason, rlen, "value is -Inf");
		if (!plain_decimal(s))
			return no_value(reason, rlen, "value '%.40s' is not a number", s);
		v = strtod(s, NULL);
	} else {
		return no_value(reason, rlen, "value is not a number");
	}
	if (!isfinite(v)) /* strtod's answer to 1e999 */
		return no_value(reason, rlen, "value '%.40s' is out of range",
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
		return no_value(reason, rlen, "answer is not JSON: %s", jerr.text);
	int ok = 0;
	const char *status = json_string_value(json_object_get(root, "status"));
	const json_t *data = json_object_get(root, "data");
	const char *rtype = json_string_value(json_object_get(data, "resultType"));
	const json_t *result = json_object_get(data, "result");
	if (!status || strcmp(status, "success") != 0) {
		const char *e = json_string_value(json_object_get(root, "error"));
		no_value(reason, rlen, "query failed: %.150s", e ? e : "no status 'success'");
	} else if (!rtype) {
		no_value(reason, rlen, "answer has no data.resultType");
	} else if (strcmp(rtype, "scalar") == 0) {
		ok = number_from(json_array_get(result, 1), value, reason, rlen);
	} else if (strcmp(rtype, "vector") == 0) {
		size_t n = json_array_size(result);
		if (n == 0)
			no_value(reason, rlen, "query returned no sample");
		else if (n > 1)
			no_value(reason, rlen, "query returned %zu samples; it must return one "
			         "(aggregate it, e.g. sum(...))", n);
		else
			ok = number_from(json_array_get(json_object_get(json_array_get(result, 0), "value"), 1),
			                 value, reason, rlen);
	} else {
		no_value(reason, rlen, "query returned a %.40s; it must return one sample", rtype);
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
				return no_value(reason, rlen, "bad jsonPath '%s'", path);
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
					return no_value(reason, rlen, "bad jsonPath '%s'", path);
				p += 2;
				cur = json_object_get(cur, key);
			} else {
				char *end;
				long idx = strtol(p, &end, 10);
				if (end == p || *end != ']' || idx < 0)
					return no_value(reason, rlen, "bad jsonPath '%s'", path);
				p = end + 1;
				cur = json_array_get(cur, (size_t)idx);
			}
		} else {
			return no_value(reason, rlen, "bad jsonPath '%s'", path);
		}
		if (!cur)
			return no_value(reason, rlen, "nothing at %s in the answer", path);
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
		return no_value(reason, rlen, "answer is not JSON: %s", jerr.text);
	int ok = provider_json_path(root, path, value, reason, rlen);
	json_decref(root);
	return ok;
}

static void on_answer(void *arg, int status, const char *error, const char *body,
                      size_t body_len, uint64_t elapsed_ms)
{
	prov_read *r = arg;
	char reason[256];
	double value = 0;
	int ok = 0;
	if (error) {
		no_value(reason, sizeof reason, "%s did not answer: %s", r->what, error);
	} else if (status < 200 || status >= 300) {
		no_value(reason, sizeof reason, "%s answered HTTP %d", r->what, status);
	} else if (!r->web) {
		ok = provider_parse_prometheus(body, body_len, &value, reason, sizeof reason);
	} else {
		ok = provider_parse_web(body, body_len, r->json_path, &value, reason, sizeof reason);
	}
	r->done(r->arg, ok, value, ok ? "" : reason);
	free(r->json_path);
	free(r);
}

int provider_read(hooks *h, const cfg_metric_source *src, const tmpl_vars *vars,
                  provider_fn done, void *arg, char *err, size_t errlen)
{
	if (!h) {
		snprintf(err, errlen, "no HTTP client (libcurl failed to initialise)");
		return -1;
	}
	prov_read *r = xcalloc(1, sizeof *r);
	r->done = done;
	r->arg = arg;
	buf url = BUF_INIT, body = BUF_INIT, q = BUF_INIT;
	const char *hdrs[32];
	buf hbuf[32];
	size_t nh = 0;
	int rc = -1;
	if (src->type == CFG_PROVIDER_PROMETHEUS) {
		if (tmpl_render(src->query, vars, TMPL_PROMQL, &q, err, errlen) < 0)
			goto out;
		const char *a = src->address;
		size_t al = strlen(a);
		while (al && a[al - 1] == '/')
			al--;
		buf_append(&url, a, al);
		buf_puts(&url, "/api/v1/query?query=");
		buf_url_escape(&url, q.p);
		snprintf(r->what, sizeof r->what, "Prometheus at '%.120s'", src->address);
		rc = hooks_request(h, "GET", url.p, NULL, 0, NULL, src->timeout_ms, PROVIDER_MAX_BODY,
		                   on_answer, r);
	} else if (src->type == CFG_PROVIDER_WEB) {
		r->web = 1;
		r->json_path = xstrdup(src->json_path ? src->json_path : "$");
		if (tmpl_render(src->url, vars, TMPL_URL, &url, err, errlen) < 0)
			goto out;
		if (src->body && tmpl_render(src->body, vars, TMPL_JSON, &body, err, errlen) < 0)
			goto out;
		const char *key;
		json_t *val;
		json_object_foreach(src->headers, key, val) {
			if (nh == 32)
				break;
			hbuf[nh] = (buf)BUF_INIT;
			buf_printf(&hbuf[nh], "%s: ", key);
			if (tmpl_render(json_string_value(val) ? json_string_value(val) : "", vars,
			                TMPL_PROMQL, &hbuf[nh], err, errlen) < 0) {
				buf_release(&hbuf[nh]);
				goto out;
			}
			hdrs[nh] = hbuf[nh].p;
			nh++;
		}
		snprintf(r->what, sizeof r->what, "web metric '%.120s'", url.p);
		rc = hooks_request(h, src->method && !strcmp(src->method, "POST") ? "POST" : "GET",
		                   url.p, hdrs, nh, body.p, src->timeout_ms, PROVIDER_MAX_BODY,
		                   on_answer, r);
	} else {
		snprintf(err, errlen, "metric has no provider");
		goto out;
	}
	if (rc < 0)
		snprintf(err, errlen, "cannot start the request to %s", r->what);
out:
	for (size_t i = 0; i < nh; i++)
		buf_release(&hbuf[i]);
	buf_release(&url);
	buf_release(&body);
	buf_release(&q);
	if (rc < 0) {
		free(r->json_path);
		free(r);
	}
	return rc;
}
