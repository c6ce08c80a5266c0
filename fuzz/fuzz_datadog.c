/* fuzz_datadog.c - libFuzzer target for the datadog provider's answers:
 * what GET /api/v1/query sends back (provider_parse_datadog), and the
 * scrubbing of a key from the reason (provider_redact).
 *
 * Input: the first byte picks the HTTP status (low 2 bits: 200, 200, 403,
 * 500) and the size of the reason buffer; the next line is a key (what
 * the server might echo back); the rest is the answer's body.
 *
 * Invariants (abort() when broken):
 * - a value only from a 200 answer that is a JSON object without
 *   duplicated keys, without "errors" and with no status but "ok", and it
 *   is the number at series[0].pointlist[0][1] of a [time, value] pair
 *   (Flagger's choice), finite;
 * - no value comes with a reason: one line of printable ASCII within the
 *   buffer, which after provider_redact holds neither the key (one
 *   without '*') nor, at its end, the key's first 4 or more characters;
 * - parsing is pure: the same answer gives the same result twice. */
#include <math.h>
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
	if (json_is_object(j) && !json_object_get(j, "errors")) {
		const json_t *st = json_object_get(j, "status");
		const json_t *pair = json_array_get(json_object_get(json_array_get(
			json_object_get(j, "series"), 0), "pointlist"), 0);
		if ((!st || (json_is_string(st) && !strcmp(json_string_value(st), "ok"))) &&
		    json_is_array(pair) && json_array_size(pair) == 2 &&
		    json_is_number(json_array_get(pair, 1))) {
			*v = json_number_value(json_array_get(pair, 1));
			ok = 1;
		}
	}
	json_decref(j);
	return ok;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const int statuses[] = { 200, 200, 403, 500 };
	return keyed_one(data, size, statuses, provider_parse_datadog, oracle);
}
