/* keyed.h - what the fuzz targets of the keyed providers' answers share
 * (fuzz_datadog.c, fuzz_newrelic.c): the input's layout, the checks of a
 * reason, and the run of one input against the target's oracle.
 *
 * Input: the first byte picks the HTTP status (its low 2 bits index the
 * target's four <statuses>) and the size of the reason buffer; the next
 * line is a key (what the server might echo back); the rest is the
 * answer's body. abort() when: the parser and the oracle disagree, a
 * value is not finite, a reason is not one line of printable ASCII within
 * its buffer, a reason still holds the key after provider_redact (whole,
 * or its first 4 or more characters at the end), or a second parse of
 * the same answer differs (parsing is pure). */
#ifndef CANARYD_FUZZ_KEYED_H
#define CANARYD_FUZZ_KEYED_H

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

static int keyed_one(const uint8_t *data, size_t size, const int *statuses,
                     provider_parse_fn parse, int (*oracle)(int, const char *, size_t, double *))
{
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
	int ok = parse(status, body, n, &v1, reason, rlen);
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
	if (parse(status, body, n, &v2, reason, rlen) != ok ||
	    (ok && memcmp(&v1, &v2, sizeof v1) != 0))
		abort();
	free(reason);
	free(body);
	return 0;
}

#endif
