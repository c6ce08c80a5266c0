/* fuzz_newrelic.c - libFuzzer target for the newrelic provider's answers:
 * what the Insights query API sends back (provider_parse_newrelic), and
 * the scrubbing of a key from the reason (provider_redact).
 *
 * Input: the first byte picks the HTTP status (low 2 bits: 200, 200, 400,
 * 401) and the size of the reason buffer; the next line is a key (what
 * the server might echo back); the rest is the answer's body.
 *
 * Invariants (abort() when broken):
 * - a value only from a 200 answer that is a JSON object without
 *   duplicated keys and without "error", whose "results" has exactly one
 *   row, and it is that row's "result" (Flagger's choice), a finite
 *   number;
 * - no value comes with a reason: one line of printable ASCII within the
 *   buffer, which after provider_redact holds neither the key (one
 *   without '*') nor, at its end, the key's first 4 or more characters;
 * - parsing is pure: the same answer gives the same result twice. */
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"

static void check_reason(const char *reason, size_t rlen)
{
	size_t n = strnlen(reason, rlen);
	if (n == rlen || (rlen > 1 && n == 0))
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)reason[i] < 0x20 || (unsigned char)reason[i] >= 0x7f)
			abort();
}

/* The key is gone from <reason>, whole or cut at its end (for a key
 * without '*', the mask: the configuration takes none). */
static void check_scrubbed(const char *reason, const char *key)
{
	size_t kl = strlen(key), n = strlen(reason);
	if (!kl || strchr(key, '*'))
		return;
	if (strstr(reason, key))
		abort();
	for (size_t l = 4; l < kl && l <= n; l++)
		if (!memcmp(reason + n - l, key, l))
			abort();
}

/* The value the oracle reads from <body>: 1 with *v, or 0. */
static int oracle(int status, const char *body, size_t len, double *v)
{
	if (status != 200)
		return 0;
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	int ok = 0;
	const json_t *results = json_object_get(j, "results");
	const json_t *e = json_object_get(j, "error");
	bool has_error = (json_is_string(e) && *json_string_value(e)) ||
	                 (json_is_string(json_object_get(e, "message")) &&
	                  *json_string_value(json_object_get(e, "message")));
	if (json_is_object(j) && !has_error && json_array_size(results) == 1) {
		const json_t *r = json_object_get(json_array_get(results, 0), "result");
		if (json_is_number(r)) {
			*v = json_number_value(r);
			ok = 1;
		}
	}
	json_decref(j);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[] = { 200, 200, 400, 401 };
	if (size < 1)
		return 0;
	int status = statuses[data[0] & 3];
	size_t rlen = (size_t)(data[0] >> 2) * 6 + 1; /* 1 .. 379 */
	const char *p = (const char *)data + 1, *end = (const char *)data + size;
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	char key[65];
	if (!nl || (size_t)(nl - p) >= sizeof key || memchr(p, '\0', (size_t)(nl - p)))
		return 0;
	memcpy(key, p, (size_t)(nl - p));
	key[nl - p] = '\0';
	p = nl + 1;
	size_t n = (size_t)(end - p);
	char *body = malloc(n ? n : 1); /* a private copy: ASan sees reads past it */
	if (!body)
		return 0;
	memcpy(body, p, n);
	char *reason = malloc(rlen);
	memset(reason, 'x', rlen);
	reason[rlen - 1] = '\0';
	double v1 = 0, v2 = 0, want = 0;
	int ok = provider_parse_newrelic(status, body, n, &v1, reason, rlen);
	if (ok != oracle(status, body, n, &want))
		abort();
	if (ok && (!isfinite(v1) || memcmp(&v1, &want, sizeof v1) != 0))
		abort();
	if (!ok) {
		check_reason(reason, rlen);
		provider_redact(reason, key);
		check_reason(reason, rlen);
		check_scrubbed(reason, key);
	}
	if (provider_parse_newrelic(status, body, n, &v2, reason, rlen) != ok ||
	    (ok && memcmp(&v1, &v2, sizeof v1) != 0))
		abort();
	free(reason);
	free(body);
	return 0;
}
