/* fuzz_provider.c - libFuzzer target for the metric providers' answers:
 * what a Prometheus server (/api/v1/query) or a web metric's JSON API sends
 * back, which canaryd turns into the number a check is judged on.
 *
 * Input: the first byte picks the provider (even: Prometheus, odd: web)
 * and the size of the reason buffer; for web the next line is the
 * jsonPath; the rest is the answer's body.
 *
 * Invariants (abort() when broken):
 * - a value is only ever a finite number (a check must never pass on
 *   NaN, an infinity or text that is not a plain decimal number);
 * - a value is what the answer holds: a JSON number or a string with a
 *   plain decimal number, in a JSON answer without duplicated keys (which
 *   two JSON readers could read differently); for Prometheus the one
 *   sample of a "success" answer;
 * - no value comes with a reason; no value, with a reason that is one
 *   line of printable ASCII within the buffer (it goes to the audit, the
 *   logs and terminals);
 * - parsing is pure: the same answer gives the same result twice. */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "oneline.h"
#include "provider.h"

static void check_reason(const char *reason, size_t rlen)
{
	fuzz_check_line(reason, rlen, true);
}

/* -?DIGITS(.DIGITS)?([eE][+-]?DIGITS)?, written again here as the oracle */
static bool decimal(const char *s)
{
	size_t i = s[0] == '-', d = 0;
	while (s[i] >= '0' && s[i] <= '9')
		i++, d++;
	if (!d)
		return false;
	if (s[i] == '.') {
		for (i++, d = 0; s[i] >= '0' && s[i] <= '9'; i++)
			d++;
		if (!d)
			return false;
	}
	if (s[i] == 'e' || s[i] == 'E') {
		i++;
		if (s[i] == '+' || s[i] == '-')
			i++;
		for (d = 0; s[i] >= '0' && s[i] <= '9'; i++)
			d++;
		if (!d)
			return false;
	}
	return s[i] == '\0';
}

/* The value <v> came from <j>: a JSON number equal to it, or a string
 * holding a plain decimal number that reads as it. */
static bool value_from(const json_t *j, double v)
{
	if (json_is_number(j))
		return json_number_value(j) == v;
	const char *s = json_string_value(j);
	return s && decimal(s) && strtod(s, NULL) == v;
}

/* What the Prometheus answer <body> may legitimately give as a value. */
static bool prometheus_value_ok(const char *body, size_t len, double v)
{
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	const char *st = json_string_value(json_object_get(j, "status"));
	const json_t *data = json_object_get(j, "data");
	const char *type = json_string_value(json_object_get(data, "resultType"));
	const json_t *res = json_object_get(data, "result");
	const json_t *sample = NULL;
	if (type && strcmp(type, "scalar") == 0)
		sample = json_array_get(res, 1);
	else if (type && strcmp(type, "vector") == 0 && json_array_size(res) == 1)
		sample = json_array_get(json_object_get(json_array_get(res, 0), "value"), 1);
	bool ok = st && strcmp(st, "success") == 0 && sample && value_from(sample, v);
	json_decref(j);
	return ok;
}

/* The same for a web answer, as far as the oracle follows paths: the
 * answer is JSON without duplicated keys, and with the path "$" it is the
 * value itself. */
static bool web_value_ok(const char *body, size_t len, const char *path, double v)
{
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, NULL);
	bool ok = j && (strcmp(path, "$") != 0 || value_from(j, v));
	json_decref(j);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	bool web = data[0] & 1;
	size_t rlen = (size_t)(data[0] >> 1) * 3 + 1; /* 1 .. 382 */
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	char path[256] = "$";
	if (web) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl || (size_t)(nl - p) >= sizeof path || memchr(p, '\0', (size_t)(nl - p)))
			return 0;
		memcpy(path, p, (size_t)(nl - p));
		path[nl - p] = '\0';
		p = nl + 1;
	}
	/* a private copy so that reads past the end are caught by ASan */
	size_t n = (size_t)(end - p);
	char *body = malloc(n ? n : 1);
	if (!body)
		return 0;
	memcpy(body, p, n);

	char *reason = malloc(rlen);
	double v1 = 0, v2 = 0;
	memset(reason, 'x', rlen);
	reason[rlen - 1] = '\0';
	int ok = web ? provider_parse_web(body, n, path, &v1, reason, rlen)
	             : provider_parse_prometheus(body, n, &v1, reason, rlen);
	if (ok) {
		if (!isfinite(v1))
			abort(); /* a check judged on NaN or an infinity */
		if (web ? !web_value_ok(body, n, path, v1) : !prometheus_value_ok(body, n, v1))
			abort(); /* a value the answer does not hold */
	} else {
		check_reason(reason, rlen);
	}
	int again = web ? provider_parse_web(body, n, path, &v2, reason, rlen)
	                : provider_parse_prometheus(body, n, &v2, reason, rlen);
	if (again != ok || (ok && memcmp(&v1, &v2, sizeof v1) != 0))
		abort();
	free(reason);
	free(body);
	return 0;
}
