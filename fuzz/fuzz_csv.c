/* fuzz_csv.c - libFuzzer target for recorded traffic (`canaryctl simulate
 * --data FILE`): a CSV file a user exports from their own monitoring,
 * parsed by sim_parse_csv.
 *
 * Invariants (abort() when broken):
 * - success gives at least one second; no second with more errors than
 *   requests;
 * - every data row is read as written: an independent reading of the
 *   text finds the same counts at the same seconds (and the latency
 *   column only when it is a plain decimal number; the histogram columns
 *   stable_hist and canary_hist only as ascending BUCKET:COUNT pairs
 *   that add up to the version's requests, with the same counts);
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

/* Reads histogram column [s, s + n) again ("BUCKET:COUNT;..." ascending,
 * or blanks) and compares it with <h>; its total must be <want>. */
static void hist_field(const char *s, size_t n, const uint64_t *h, uint64_t want)
{
	uint64_t seen[STATS_BUCKETS] = { 0 }, total = 0;
	size_t i = 0;
	int last = -1;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	while (i < n) {
		uint64_t b = 0, c = 0;
		size_t d = 0;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, d++)
			b = b * 10 + (uint64_t)(s[i] - '0');
		if (!d || d > 4 || i >= n || s[i] != ':' || b >= STATS_BUCKETS || (int)b <= last)
			abort(); /* accepted a bucket that is not one */
		i++;
		d = 0;
		for (; i < n && s[i] >= '0' && s[i] <= '9'; i++, d++) {
			if (c > (UINT64_MAX - 9) / 10)
				abort();
			c = c * 10 + (uint64_t)(s[i] - '0');
		}
		if (!d)
			abort(); /* accepted a count that is not a number */
		seen[b] = c;
		total += c;
		last = (int)b;
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
		if (i < n && (s[i] != ';' || i + 1 >= n))
			abort(); /* accepted something between the pairs */
		if (i < n)
			i++;
	}
	if (total != want || memcmp(seen, h, sizeof seen) != 0)
		abort(); /* a histogram read as something else */
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
		const char *hcol[2] = { NULL, NULL }, *hend[2] = { NULL, NULL };
		for (int col = 0; col < 8; col++) {
			const char *c = memchr(f, ',', (size_t)(le - f));
			const char *fe = c ? c : le;
			if (col < 5) {
				if (!uint_field(f, (size_t)(fe - f), &v[col]))
					abort(); /* accepted a count that is not a number */
				if (!c && col < 4)
					abort(); /* accepted a row with fewer than 5 columns */
			} else if (col == 5) {
				bool blanks = true;
				for (const char *x = f; x < fe; x++)
					blanks = blanks && (*x == ' ' || *x == '\t');
				/* an empty last column: no latency */
				if (!blanks || (!c && fe > f)) {
					if (!decimal_field(f, (size_t)(fe - f)))
						abort(); /* accepted a latency that is not a number */
					p99 = true;
				}
				/* a trailing comma ends the row; else two histograms follow */
				if (c && c + 1 == le)
					break;
			} else {
				hcol[col - 6] = f;
				hend[col - 6] = fe;
				if (col == 7 && c)
					abort(); /* accepted a ninth column */
				if (col == 6 && !c)
					abort(); /* accepted stable_hist alone */
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
		    s->has_p99 != p99 || (s->hist != NULL) != (hcol[0] != NULL))
			abort(); /* a row read as something else */
		if (s->hist) {
			hist_field(hcol[0], (size_t)(hend[0] - hcol[0]), &s->hist[TARGET_STABLE * STATS_BUCKETS],
			           v[1]);
			hist_field(hcol[1], (size_t)(hend[1] - hcol[1]), &s->hist[TARGET_CANARY * STATS_BUCKETS],
			           v[3]);
		}
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
