/* fuzz_util.c - libFuzzer target for the small parsers outside values go
 * through: durations (every timeout and window in the configuration, the
 * --drain-timeout flag, canaryctl's --timeout, and back out as templates'
 * {{ interval }}) and HOST:PORT (endpoints from the configuration and the
 * API, listen and admin addresses).
 *
 * Input: the first byte picks the parser (0 duration, 1 formatting, 2
 * host:port) and, for host:port, the size of the host buffer; the rest is
 * the text (for formatting: up to 8 bytes of a number of milliseconds).
 *
 * Invariants (abort() when broken):
 * - a duration is accepted only in Go's grammar (DIGITS[.DIGITS] and a
 *   unit, repeated; or "0") and formats back to text that parses as the
 *   same number of milliseconds;
 * - any number of milliseconds up to ten years formats as whole units
 *   ([0-9]+ then h, m, s or ms: what PromQL takes) and parses back to
 *   itself;
 * - an accepted HOST:PORT is exactly the host (in brackets if IPv6), a
 *   colon and the port's digits, the host within its buffer and made of
 *   name or address characters only, the port 1..65535. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const units[] = { "ns", "us", "\xc2\xb5s", "ms", "s", "m", "h", "d" };

/* The grammar, written again as the oracle. */
static bool duration_grammar(const char *s)
{
	if (strcmp(s, "0") == 0)
		return true;
	if (!*s)
		return false;
	while (*s) {
		size_t d = 0;
		while (*s >= '0' && *s <= '9')
			s++, d++;
		if (*s == '.')
			for (s++; *s >= '0' && *s <= '9'; s++)
				d++;
		if (!d)
			return false;
		size_t best = 0;
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
			size_t l = strlen(units[i]);
			if (strncmp(s, units[i], l) == 0 && l > best)
				best = l;
		}
		if (!best)
			return false;
		s += best;
	}
	return true;
}

/* [0-9]+h? [0-9]+m? [0-9]+s? [0-9]+ms?, at least one, in that order */
static bool whole_units(const char *s)
{
	static const char *const order[] = { "h", "m", "s", "ms" };
	size_t next = 0, parts = 0;
	if (strcmp(s, "0s") == 0)
		return true;
	while (*s) {
		size_t d = 0;
		while (*s >= '0' && *s <= '9')
			s++, d++;
		if (!d)
			return false;
		size_t l = (s[0] == 'm' && s[1] == 's') ? 2 : 1;
		size_t u = next;
		while (u < 4 && !(strlen(order[u]) == l && strncmp(s, order[u], l) == 0))
			u++;
		if (u == 4)
			return false;
		next = u + 1;
		s += l;
		parts++;
	}
	return parts > 0;
}

static void round_trip(uint64_t ms)
{
	char out[48];
	uint64_t back = ~(uint64_t)0;
	util_format_duration(ms, out, sizeof out);
	if (!whole_units(out) || util_parse_duration(out, &back) != 0 || back != ms)
		abort();
}

static bool host_char(unsigned char c, bool bracketed)
{
	if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	    c == '.' || c == '-' || c == '_')
		return true;
	return bracketed && (c == ':' || c == '%');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	int mode = data[0] % 3;
	size_t hostlen = (size_t)(data[0] / 3) + 1; /* 1 .. 86 */
	char *s = malloc(size);
	memcpy(s, data + 1, size - 1);
	s[size - 1] = '\0';
	if (mode != 1 && memchr(data + 1, '\0', size - 1)) {
		free(s);
		return 0; /* the parsers take C strings */
	}
	if (mode == 0) {
		uint64_t ms = 0;
		if (util_parse_duration(s, &ms) == 0) {
			if (!duration_grammar(s))
				abort(); /* accepted outside the grammar */
			round_trip(ms);
		}
	} else if (mode == 1) {
		uint64_t ms = 0;
		memcpy(&ms, data + 1, size - 1 < 8 ? size - 1 : 8);
		round_trip(ms % (3650ull * 86400000ull + 1));
	} else {
		char *host = malloc(hostlen);
		int port = 0;
		if (util_parse_hostport(s, host, hostlen, &port) == 0) {
			size_t hl = strnlen(host, hostlen);
			if (hl == 0 || hl == hostlen || port < 1 || port > 65535)
				abort();
			bool br = s[0] == '[';
			for (size_t i = 0; i < hl; i++)
				if (!host_char((unsigned char)host[i], br))
					abort();
			if (!br && strchr(host, ':'))
				abort();
			/* the text is exactly [host]:digits or host:digits */
			size_t off = br ? 1 : 0;
			if (strncmp(s + off, host, hl) != 0 || (br && s[hl + 1] != ']') ||
			    s[hl + 2 * off] != ':')
				abort();
			const char *ps = s + hl + 2 * off + 1;
			if (!*ps || strspn(ps, "0123456789") != strlen(ps) || atoi(ps) != port)
				abort();
		}
		free(host);
	}
	free(s);
	return 0;
}
