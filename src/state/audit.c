/* audit.c - see audit.h. */
#include "audit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

void audit_quote(buf *out, const char *s)
{
	if (!s) {
		buf_puts(out, "null");
		return;
	}
	/* SQLite's jsonAppendString: short escapes for these five only */
	static const char shortesc[32] = { [8] = 'b', [9] = 't', [10] = 'n', [12] = 'f',
	                                   [13] = 'r' };
	buf_puts(out, "\"");
	const char *run = s;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p != '"' && *p != '\\' && *p >= 0x20)
			continue;
		buf_append(out, run, (size_t)((const char *)p - run));
		if (*p == '"' || *p == '\\')
			buf_printf(out, "\\%c", *p);
		else if (shortesc[*p])
			buf_printf(out, "\\%c", shortesc[*p]);
		else
			buf_printf(out, "\\u00%02x", *p);
		run = (const char *)p + 1;
	}
	buf_puts(out, run);
	buf_puts(out, "\"");
}

void audit_canonical(buf *out, const audit_event *e)
{
	buf_printf(out, "{\"seq\":%lld,\"canary\":", (long long)e->seq);
	audit_quote(out, e->canary);
	buf_printf(out, ",\"time\":%lld,\"type\":", (long long)e->time_ms);
	audit_quote(out, e->type);
	buf_puts(out, ",\"phase\":");
	audit_quote(out, e->phase);
	buf_printf(out, ",\"weight\":%lld,\"message\":", (long long)e->weight);
	audit_quote(out, e->message);
	buf_puts(out, ",\"actor\":");
	audit_quote(out, e->actor);
	buf_puts(out, ",\"metrics\":");
	audit_quote(out, e->metrics);
	buf_puts(out, ",\"detail\":");
	audit_quote(out, e->detail);
	buf_puts(out, "}");
}

int audit_hash(const char *prev, const audit_event *e, char hex[AUDIT_HEX])
{
	buf b = BUF_INIT;
	buf_puts(&b, prev);
	audit_canonical(&b, e);
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int n = 0;
	int ok = EVP_Digest(b.p, b.len, md, &n, EVP_sha256(), NULL) == 1 && n == 32;
	buf_release(&b);
	hex[0] = '\0';
	if (!ok)
		return -1;
	for (unsigned i = 0; i < n; i++)
		snprintf(hex + 2 * i, 3, "%02x", md[i]);
	return 0;
}

/* ---- time ---- */

/* Days from 1970-01-01 to <y>-<m>-<d> (proleptic Gregorian; H. Hinnant's
 * days_from_civil), so that no TZ nor timegm is needed. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m, int *d)
{
	z += 719468;
	int64_t era = (z >= 0 ? z : z - 146096) / 146097;
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;
	*d = (int)(doy - (153 * mp + 2) / 5 + 1);
	*m = (int)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static int64_t floor_div(int64_t a, int64_t b)
{
	return a / b - (a % b != 0 && (a < 0) != (b < 0));
}

/* 01:00 UTC on the last Sunday of month <m> (31 days long) of <y>, in ms. */
static int64_t last_sunday_0100(int64_t y, int m)
{
	int64_t last = days_from_civil(y, m, 31);
	/* 1970-01-01 was a Thursday: weekday 0 = Sunday is (days + 4) mod 7 */
	int64_t wd = ((last + 4) % 7 + 7) % 7;
	return ((last - wd) * 86400 + 3600) * 1000;
}

int audit_is_bst(int64_t ms)
{
	int64_t y;
	int m, d;
	civil_from_days(floor_div(ms, 86400000), &y, &m, &d);
	return ms >= last_sunday_0100(y, 3) && ms < last_sunday_0100(y, 10);
}

/* <ms> shifted by <off_min> as "YYYY-MM-DDTHH:MM:SS.mmm" and the offset. */
static void format_local(int64_t ms, int off_min, char *out, size_t outlen)
{
	int64_t local = ms + (int64_t)off_min * 60000;
	int64_t days = floor_div(local, 86400000);
	int64_t rem = local - days * 86400000;
	int64_t y;
	int m, d;
	civil_from_days(days, &y, &m, &d);
	int a = off_min < 0 ? -off_min : off_min;
	snprintf(out, outlen, "%04lld-%02d-%02dT%02d:%02d:%02d.%03d%c%02d:%02d", (long long)y, m,
	         d, (int)(rem / 3600000), (int)(rem / 60000 % 60), (int)(rem / 1000 % 60),
	         (int)(rem % 1000), off_min < 0 ? '-' : '+', a / 60, a % 60);
}

const char *audit_london(int64_t ms, char *out, size_t outlen)
{
	int bst = audit_is_bst(ms);
	format_local(ms, bst ? 60 : 0, out, outlen);
	return bst ? "BST" : "GMT";
}

static int digits(const char **p, int n, int *v)
{
	*v = 0;
	for (int i = 0; i < n; i++, (*p)++) {
		if (**p < '0' || **p > '9')
			return -1;
		*v = *v * 10 + (**p - '0');
	}
	return 0;
}

int audit_parse_time(const char *s, int64_t *ms)
{
	const char *p = s;
	int y, mo, d, h = 0, mi = 0, sec = 0, frac = 0, off = 0;
	if (!s || digits(&p, 4, &y) < 0 || *p++ != '-' || digits(&p, 2, &mo) < 0 ||
	    *p++ != '-' || digits(&p, 2, &d) < 0)
		return -1;
	if (mo < 1 || mo > 12 || d < 1 || d > 31)
		return -1;
	static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	int leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
	if (d > mdays[mo - 1] || (mo == 2 && d == 29 && !leap))
		return -1;
	if (*p) {
		if ((*p != 'T' && *p != 't' && *p != ' ') || (p++, digits(&p, 2, &h) < 0) ||
		    *p++ != ':' || digits(&p, 2, &mi) < 0 || *p++ != ':' || digits(&p, 2, &sec) < 0)
			return -1;
		if (h > 23 || mi > 59 || sec > 59)
			return -1;
		if (*p == '.') {
			p++;
			int n = 0;
			for (; *p >= '0' && *p <= '9'; p++, n++)
				if (n < 3)
					frac = frac * 10 + (*p - '0');
			if (n == 0)
				return -1;
			for (; n < 3; n++)
				frac *= 10;
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if (*p == '+' || *p == '-') {
			int sign = *p++ == '-' ? -1 : 1, oh, om;
			if (digits(&p, 2, &oh) < 0 || *p++ != ':' || digits(&p, 2, &om) < 0 ||
			    oh > 23 || om > 59)
				return -1;
			off = sign * (oh * 60 + om);
		} else {
			return -1; /* a time without its zone would be a guess */
		}
		if (*p)
			return -1;
	}
	*ms = ((days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec) - off * 60) * 1000 +
	      frac;
	return 0;
}
