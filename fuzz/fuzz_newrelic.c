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

#include "keyed.h"
#include "provider.h"

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
	return keyed_one(data, size, statuses, provider_parse_newrelic, oracle);
}
