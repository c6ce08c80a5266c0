/* fuzz_haproxy_log.c - libFuzzer target for the syslog datagrams canaryd
 * takes on spec.haproxy.log (hart_parse_log): anyone who can reach that
 * UDP port can send anything, and a datagram must count as one request
 * of a server only when it is an HTTP log line.
 *
 * Invariants (abort() when broken):
 * - a request read has a backend and a server (no blank, no NUL; no '/'
 *   in the backend) that appear in the datagram as "BACKEND/SERVER"; a
 *   status -1 or 100..999; a total time -1 or more, written in the
 *   datagram as the fifth of the slash-separated timers;
 * - the same datagram reads the same twice. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haproxy_rt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *s = (const char *)data;
	hart_log l, l2;
	if (hart_parse_log(s, size, &l) < 0)
		return 0;
	size_t bl = strnlen(l.backend, sizeof l.backend), sl = strnlen(l.server, sizeof l.server);
	if (!bl || !sl || bl == sizeof l.backend || sl == sizeof l.server ||
	    strpbrk(l.backend, " /") || strchr(l.server, ' '))
		abort();
	char pair[2 * HART_NAME_LEN + 2];
	snprintf(pair, sizeof pair, "%s/%s ", l.backend, l.server);
	if (!memmem(s, size, pair, strlen(pair)))
		abort();
	if (!(l.status == -1 || (l.status >= 100 && l.status <= 999)) || l.total_ms < -1)
		abort();
	char ta[32];
	snprintf(ta, sizeof ta, "/%lld ", (long long)l.total_ms);
	char ta_plus[32];
	snprintf(ta_plus, sizeof ta_plus, "/+%lld ", (long long)l.total_ms);
	if (!memmem(s, size, ta, strlen(ta)) && !memmem(s, size, ta_plus, strlen(ta_plus)))
		abort();
	if (hart_parse_log(s, size, &l2) != 0 || memcmp(&l, &l2, sizeof l))
		abort();
	return 0;
}
