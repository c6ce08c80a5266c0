/* util.c - see util.h. */
#include "util.h"

#include <ctype.h>
#include <stdbool.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static void oom(void)
{
	fputs("canaryd: out of memory\n", stderr);
	abort();
}

void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		oom();
	return p;
}

void *xcalloc(size_t n, size_t m)
{
	void *p = calloc(n ? n : 1, m ? m : 1);
	if (!p)
		oom();
	return p;
}

void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q)
		oom();
	return q;
}

char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	char *p = xmalloc(n);
	memcpy(p, s, n);
	return p;
}

static void buf_grow(buf *b, size_t extra)
{
	size_t need = b->len + extra + 1;
	if (need <= b->cap)
		return;
	size_t cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap *= 2;
	b->p = xrealloc(b->p, cap);
	b->cap = cap;
}

void buf_append(buf *b, const void *data, size_t n)
{
	buf_grow(b, n);
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
}

void buf_puts(buf *b, const char *s)
{
	buf_append(b, s, strlen(s));
}

void buf_vprintf(buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	va_copy(ap2, ap);
	int n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return;
	buf_grow(b, (size_t)n);
	vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
}

void buf_printf(buf *b, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void buf_reset(buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void buf_release(buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
}

char *util_ascii_line(char *s)
{
	for (char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f)
			*p = '?';
	return s;
}

/* Go's time.ParseDuration grammar: [0-9]+(\.[0-9]*)?unit, repeated. */
int util_parse_duration(const char *s, uint64_t *ms)
{
	if (!s || !*s)
		return -1;
	if (strcmp(s, "0") == 0) {
		*ms = 0;
		return 0;
	}
	double total_ns = 0;
	const char *p = s;
	while (*p) {
		/* DIGITS[.DIGITS], one digit at least: strtod alone would also
		 * take "0x10" and "1e3", which are no durations */
		size_t k = strspn(p, "0123456789"), digits = k;
		if (p[k] == '.') {
			size_t f = strspn(p + k + 1, "0123456789");
			digits += f;
			k += 1 + f;
		}
		if (!digits)
			return -1;
		char *end;
		errno = 0;
		double v = strtod(p, &end);
		if (end != p + k || errno || v < 0)
			return -1;
		p = end;
		static const struct { const char *u; double ns; } units[] = {
			{ "ns", 1 }, { "us", 1e3 }, { "\xc2\xb5s", 1e3 }, { "ms", 1e6 },
			{ "s", 1e9 }, { "m", 60e9 }, { "h", 3600e9 }, { "d", 86400e9 },
		};
		size_t best = 0, bestlen = 0;
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
			size_t l = strlen(units[i].u);
			if (strncmp(p, units[i].u, l) == 0 && l > bestlen) {
				best = i;
				bestlen = l;
			}
		}
		if (!bestlen)
			return -1;
		total_ns += v * units[best].ns;
		p += bestlen;
	}
	if (total_ns > 1e9 * 86400.0 * 3650) /* ten years is a typo */
		return -1;
	double m = total_ns / 1e6;
	if (m != floor(m))
		return -1;
	*ms = (uint64_t)m;
	return 0;
}

void util_format_duration(uint64_t ms, char *out, size_t outlen)
{
	if (ms == 0) {
		snprintf(out, outlen, "0s");
		return;
	}
	/* whole hours, minutes, seconds and milliseconds: exact, and what both
	 * Go and PromQL (no fractions there) read back as the same duration */
	uint64_t h = ms / 3600000, m = ms / 60000 % 60, s = ms / 1000 % 60, r = ms % 1000;
	size_t n = 0;
	out[0] = '\0';
	if (h && n < outlen)
		n += (size_t)snprintf(out + n, outlen - n, "%lluh", (unsigned long long)h);
	if (m && n < outlen)
		n += (size_t)snprintf(out + n, outlen - n, "%llum", (unsigned long long)m);
	if (s && n < outlen)
		n += (size_t)snprintf(out + n, outlen - n, "%llus", (unsigned long long)s);
	if (r && n < outlen)
		snprintf(out + n, outlen - n, "%llums", (unsigned long long)r);
}

int util_parse_hostport(const char *s, char *host, size_t hostlen, int *port)
{
	if (!s || !*s)
		return -1;
	const char *colon;
	const char *h = s;
	size_t hl;
	if (*s == '[') {
		const char *rb = strchr(s, ']');
		if (!rb || rb[1] != ':')
			return -1;
		h = s + 1;
		hl = (size_t)(rb - h);
		colon = rb + 1;
	} else {
		colon = strrchr(s, ':');
		if (!colon || strchr(s, ':') != colon)
			return -1;
		hl = (size_t)(colon - s);
	}
	if (hl == 0 || hl >= hostlen)
		return -1;
	/* a name or an address, nothing else: the host goes on to logs,
	 * status and Host headers (in brackets: IPv6, with a zone after '%') */
	const char *ok = *s == '[' ? "0123456789abcdefABCDEF:.%" : NULL;
	for (size_t i = 0; i < hl; i++) {
		unsigned char c = (unsigned char)h[i];
		bool name = isalnum(c) || c == '.' || c == '-' || c == '_';
		if (ok ? !(strchr(ok, c) || (name && memchr(h, '%', i))) : !name)
			return -1;
	}
	const char *ps = colon + 1;
	if (!*ps || strlen(ps) > 5)
		return -1;
	for (const char *q = ps; *q; q++)
		if (!isdigit((unsigned char)*q))
			return -1;
	int pv = atoi(ps);
	if (pv < 1 || pv > 65535)
		return -1;
	memcpy(host, h, hl);
	host[hl] = '\0';
	*port = pv;
	return 0;
}

int util_valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
			return 0;
	return 1;
}

void buf_url_escape(buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			buf_append(b, s, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			buf_append(b, e, 3);
		}
	}
}

int util_read_tokens(const char *path,
                     int (*fn)(void *arg, const char *name, const char *secret, int line,
                               char *err, size_t errlen),
                     void *arg, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		char why[128];
		snprintf(err, errlen, "cannot read token file '%s': %s", path,
		         strerror_r(errno, why, sizeof why));
		return -1;
	}
	char line[1024];
	int lineno = 0, rc = 0, tokens = 0;
	while (rc == 0 && fgets(line, sizeof line, f)) {
		lineno++;
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		size_t l = strlen(p);
		while (l && isspace((unsigned char)p[l - 1]))
			p[--l] = '\0';
		if (!*p || *p == '#')
			continue;
		char *sp = strpbrk(p, " \t");
		const char *name = "token", *secret = p;
		if (sp) {
			*sp = '\0';
			name = p;
			secret = sp + 1;
			while (isspace((unsigned char)*secret))
				secret++;
			if (strpbrk(secret, " \t")) {
				snprintf(err, errlen, "%s:%d: expected 'NAME TOKEN' or 'TOKEN'", path, lineno);
				rc = -1;
				break;
			}
		}
		tokens++;
		rc = fn(arg, name, secret, lineno, err, errlen);
	}
	explicit_bzero(line, sizeof line);   /* it held a secret */
	fclose(f);
	if (rc == 0 && tokens == 0) {
		snprintf(err, errlen, "token file '%s' holds no token", path);
		rc = -1;
	}
	return rc;
}

uint64_t util_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

uint64_t util_wall_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void util_rfc3339(uint64_t wall_ms, char *out, size_t outlen)
{
	time_t t = (time_t)(wall_ms / 1000);
	struct tm tm;
	gmtime_r(&t, &tm);
	snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02d.%03uZ",
	         tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	         tm.tm_min, tm.tm_sec, (unsigned)(wall_ms % 1000));
}
