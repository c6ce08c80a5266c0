/* fuzz_csv.c - libFuzzer target for recorded traffic (`canaryctl simulate
 * --data FILE`): a CSV file a user exports from their own monitoring,
 * parsed by sim_parse_csv.
 *
 * Invariants (abort() when broken):
 * - success gives at least one second; no second with more errors than
 *   requests;
 * - every data row is read as written: an independent reading of the
 *   text finds the same counts at the same seconds (and the latency
 *   column only when it is a plain decimal number);
 * - failure releases the rows and says why as one line
 *   "NAME:LINE: message" (or "NAME: message"). */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "simulate.h"

/* blanks DIGITS blanks, as the columns are written */
static bool uint_field(const char *s, size_t n, uint64_t *v)
{
	size_t i = 0, d = 0;
	uint64_t x = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, d++) {
		if (x > (UINT64_MAX - 9) / 10)
			return false;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	*v = x;
	return d > 0 && i == n;
}

/* blanks DIGITS[.DIGITS][e[+-]DIGITS] blanks */
static bool decimal_field(const char *s, size_t n)
{
	size_t i = 0, d = 0;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
		d++;
	if (i < n && s[i] == '.')
		for (i++; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			d++;
	if (!d)
		return false;
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		size_t e = 0;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++)
			e++;
		if (!e)
			return false;
	}
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	return i == n;
}

/* Reads the rows again and compares them with <d>. */
static void compare(const char *text, size_t len, const sim_data *d)
{
	const char *p = text, *end = text + len;
	uint64_t first = 0;
	bool any = false;
	size_t rows = 0;
	for (int line = 1; p < end; line++) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		const char *le = eol ? eol : end;
		if (le > p && le[-1] == '\r')
			le--;
		const char *q = p;
		p = eol ? eol + 1 : end;
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		if (q == le || *q == '#' ||
		    (line == 1 && ((*q >= 'a' && *q <= 'z') || (*q >= 'A' && *q <= 'Z'))))
			continue;
		uint64_t v[5];
		const char *f = q;
		bool p99 = false;
		for (int col = 0; col < 6; col++) {
			const char *c = memchr(f, ',', (size_t)(le - f));
			const char *fe = c ? c : le;
			if (col < 5) {
				if (!uint_field(f, (size_t)(fe - f), &v[col]))
					abort(); /* accepted a count that is not a number */
				if (!c && col < 4)
					abort(); /* accepted a row with fewer than 5 columns */
			} else if (fe > f) { /* an empty last column: no latency */
				/* (an empty column may follow it, nothing else) */
				if (!decimal_field(f, (size_t)(fe - f)) || (c && c + 1 != le))
					abort(); /* accepted a latency that is not a number */
				p99 = true;
			}
			if (!c)
				break;
			f = c + 1;
		}
		if (!any)
			first = v[0];
		any = true;
		size_t idx = (size_t)(v[0] - first);
		if (idx >= d->n)
			abort();
		const sim_second *s = &d->sec[idx];
		if (s->stable_requests != v[1] || s->stable_errors != v[2] ||
		    s->canary_requests != v[3] || s->canary_errors != v[4] ||
		    s->has_p99 != p99)
			abort(); /* a row read as something else */
		rows++;
	}
	if (!rows || (size_t)(d->n) == 0)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *text = malloc(size ? size : 1);
	memcpy(text, data, size);
	sim_data d;
	char err[200];
	memset(err, 'x', sizeof err);
	err[sizeof err - 1] = '\0';
	if (sim_parse_csv("data.csv", text, size, &d, err, sizeof err) == 0) {
		if (!d.n || !d.sec)
			abort();
		for (size_t i = 0; i < d.n; i++)
			if (d.sec[i].stable_errors > d.sec[i].stable_requests ||
			    d.sec[i].canary_errors > d.sec[i].canary_requests)
				abort();
		compare(text, size, &d);
		sim_data_release(&d);
	} else {
		if (d.sec || d.n || strncmp(err, "data.csv:", 9) != 0)
			abort();
		for (const char *p = err; *p; p++)
			if (*p == '\n' || *p == '\r')
				abort();
	}
	free(text);
	return 0;
}
