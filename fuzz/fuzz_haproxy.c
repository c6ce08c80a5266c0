/* fuzz_haproxy.c - libFuzzer target for what HAProxy's runtime API answers
 * canaryd (src/net/haproxy_rt.h): a socket may answer anything, and the
 * router must read garbage as an error, never as servers or weights. The
 * first byte picks the reader (0 the answer to a batch of changes, 1
 * show info, 2 show servers state, 3 show stat), the rest is the answer.
 *
 * Invariants (abort() when broken):
 * - a batch succeeds exactly when every non-blank line is one of the two
 *   success lines, as read again here;
 * - show info: Pid and Uptime_sec only from lines that say exactly those
 *   numbers;
 * - show servers state / show stat: every server read has a name (no
 *   blank, comma or NUL) found in the answer, a port, weight and state in
 *   range; a failure returns nothing; a balance algorithm read is a name
 *   found in the answer;
 * - every error is one printable line within its buffer, naming the
 *   command; the same answer reads the same twice. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haproxy_rt.h"

static void check_line(const char *err, size_t cap, const char *prefix)
{
	size_t n = strnlen(err, cap);
	if (n == cap)
		abort();
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)err[i] < 0x20 || (unsigned char)err[i] > 0x7e)
			abort();
	if (prefix && strncmp(err, prefix, strlen(prefix)) != 0)
		abort();
}

/* The oracle for batches, written again: lines split at '\n', a '\r'
 * before it dropped. */
static bool batch_ok(const char *s, size_t n)
{
	size_t i = 0;
	while (i < n) {
		size_t e = i;
		while (e < n && s[e] != '\n')
			e++;
		size_t l = e - i;
		if (l && s[i + l - 1] == '\r')
			l--;
		bool blank = true;
		for (size_t k = 0; k < l; k++)
			if (!(s[i + k] == ' ' || (s[i + k] >= '\t' && s[i + k] <= '\r')))
				blank = false;
		if (!blank && !(l == 22 && !memcmp(s + i, "New server registered.", 22)) &&
		    !(l == 15 && !memcmp(s + i, "Server deleted.", 15)))
			return false;
		i = e + 1;
	}
	return true;
}

/* Whether some line of <s> is exactly <want> (a '\r' before '\n' dropped). */
static bool has_line(const char *s, size_t n, const char *want)
{
	size_t w = strlen(want), i = 0;
	while (i < n) {
		size_t e = i;
		while (e < n && s[e] != '\n')
			e++;
		size_t l = e - i;
		if (l && s[i + l - 1] == '\r')
			l--;
		if (l == w && !memcmp(s + i, want, w))
			return true;
		i = e + 1;
	}
	return false;
}

static bool name_ok(const char *name, size_t cap, const char *s, size_t n)
{
	size_t l = strnlen(name, cap);
	if (l == 0 || l == cap || strpbrk(name, " ,\n"))
		return false;
	return memmem(s, n, name, l) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int which = data[0] % 4;
	const char *s = (const char *)data + 1;
	size_t n = size - 1;
	char err[160];
	memset(err, 'x', sizeof err);
	err[sizeof err - 1] = '\0';
	switch (which) {
	case 0: {
		int rc = hart_answer_ok(s, n, err, sizeof err);
		if ((rc == 0) != batch_ok(s, n))
			abort();
		if (rc < 0)
			check_line(err, sizeof err, NULL);
		break;
	}
	case 1: {
		hart_info in, in2;
		int rc = hart_parse_info(s, n, &in, err, sizeof err);
		if (rc == 0) {
			char l[64];
			snprintf(l, sizeof l, "Pid: %ld", in.pid);
			if (!has_line(s, n, l) || in.pid < 0)
				abort();
			snprintf(l, sizeof l, "Uptime_sec: %llu", (unsigned long long)in.uptime_sec);
			if (!has_line(s, n, l))
				abort();
			if (hart_parse_info(s, n, &in2, err, sizeof err) != 0 || in2.pid != in.pid ||
			    in2.uptime_sec != in.uptime_sec)
				abort();
		} else {
			check_line(err, sizeof err, "show info: ");
		}
		break;
	}
	case 2: {
		hart_server *v, *v2;
		size_t k, k2;
		int rc = hart_parse_servers(s, n, "be", &v, &k, err, sizeof err);
		if (rc < 0) {
			if (v || k)
				abort();
			check_line(err, sizeof err, "show servers state");
			break;
		}
		for (size_t i = 0; i < k; i++)
			if (!name_ok(v[i].name, sizeof v[i].name, s, n) ||
			    !name_ok(v[i].addr, sizeof v[i].addr, s, n) || v[i].port < 0 ||
			    v[i].port > 65535 || v[i].uweight < 0 || v[i].uweight > 256 ||
			    v[i].op_state < 0 || v[i].op_state > 3 || v[i].admin_state < 0)
				abort();
		if (hart_parse_servers(s, n, "be", &v2, &k2, err, sizeof err) != 0 || k2 != k ||
		    (k && memcmp(v, v2, k * sizeof *v)))
			abort();
		free(v);
		free(v2);
		break;
	}
	case 3: {
		hart_stat *v, *v2;
		size_t k, k2;
		char algo[64];
		if (hart_stat_algo(s, n, "be", algo, sizeof algo) == 0 &&
		    !name_ok(algo, sizeof algo, s, n))
			abort();
		int rc = hart_parse_stat(s, n, "be", &v, &k, err, sizeof err);
		if (rc < 0) {
			if (v || k)
				abort();
			check_line(err, sizeof err, "show stat");
			break;
		}
		for (size_t i = 0; i < k; i++)
			if (!name_ok(v[i].name, sizeof v[i].name, s, n) ||
			    !strcmp(v[i].name, "FRONTEND") || !strcmp(v[i].name, "BACKEND"))
				abort();
		if (hart_parse_stat(s, n, "be", &v2, &k2, err, sizeof err) != 0 || k2 != k ||
		    (k && memcmp(v, v2, k * sizeof *v)))
			abort();
		free(v);
		free(v2);
		break;
	}
	}
	return 0;
}
