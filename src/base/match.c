/* match.c - request matching for A/B tests and affinity cookies (see
 * match.h). */
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "match.h"
#include "util.h"

typedef struct cond {
	match_on on;
	match_op op;
	char *name;
	size_t nlen;
	char *value;
	size_t vlen;
	regex_t re;                /* MATCH_REGEX: "^(" value ")$" compiled */
} cond;

typedef struct entry {
	size_t first, n;           /* its conditions: c[first .. first+n) */
} entry;

struct match_set {
	int refs;                  /* atomic */
	cond *c;
	size_t nc;
	entry *e;
	size_t ne;
};

match_set *match_set_new(void)
{
	match_set *m = xcalloc(1, sizeof *m);
	m->refs = 1;
	return m;
}

void match_set_entry(match_set *m)
{
	m->e = xrealloc(m->e, (m->ne + 1) * sizeof *m->e);
	m->e[m->ne].first = m->nc;
	m->e[m->ne].n = 0;
	m->ne++;
}

int match_set_add(match_set *m, match_on on, const char *name, match_op op,
                  const char *value, char *err, size_t errlen)
{
	if (!name || !*name) {
		snprintf(err, errlen, "a match needs a name");
		return -1;
	}
	if (on == MATCH_QUERY && op == MATCH_SUFFIX) {
		snprintf(err, errlen, "query parameter '%.100s': no suffix match (exact, prefix "
		         "or regex)", name);
		return -1;
	}
	cond c = { .on = on, .op = op, .name = NULL, .nlen = strlen(name),
	           .vlen = strlen(value) };
	if (op == MATCH_REGEX) {
		/* a full match, as Envoy's: anchored around the whole pattern,
		 * whose own anchors are then harmless */
		buf b = BUF_INIT;
		buf_printf(&b, "^(%s)$", value);
		int rc = regcomp(&c.re, b.p, REG_EXTENDED | REG_NOSUB);
		buf_release(&b);
		if (rc != 0) {
			char why[160];
			regerror(rc, &c.re, why, sizeof why);
			snprintf(err, errlen, "regex '%.200s' is not a POSIX extended regular "
			         "expression: %s", value, why);
			return -1;
		}
	}
	c.name = xstrdup(name);
	c.value = xstrdup(value);
	if (m->ne == 0)
		match_set_entry(m);
	m->c = xrealloc(m->c, (m->nc + 1) * sizeof *m->c);
	m->c[m->nc++] = c;
	m->e[m->ne - 1].n++;
	return 0;
}

size_t match_set_entries(const match_set *m)
{
	return m ? m->ne : 0;
}

match_set *match_set_ref(match_set *m)
{
	if (m)
		__atomic_add_fetch(&m->refs, 1, __ATOMIC_RELAXED);
	return m;
}

void match_set_unref(match_set *m)
{
	if (!m || __atomic_sub_fetch(&m->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	for (size_t i = 0; i < m->nc; i++) {
		if (m->c[i].op == MATCH_REGEX)
			regfree(&m->c[i].re);
		free(m->c[i].name);
		free(m->c[i].value);
	}
	free(m->c);
	free(m->e);
	free(m);
}

/* ---- matching ---- */

/* Whether regex <c> matches v[0..n). The value is copied, NUL-terminated:
 * in the request buffer it is not, and although glibc reads no further
 * than REG_STARTEND's end, sanitizers' regexec takes the string's length
 * with strlen. REG_STARTEND still bounds it, for a decoded "%00". */
static __attribute__((noinline)) bool regex_value(const cond *c, const char *v, size_t n)
{
	char tmp[HTTP_MAX_HEAD + 1];
	if (n >= sizeof tmp)
		return false;   /* longer than any head: cannot happen */
	if (n)
		memcpy(tmp, v, n);
	tmp[n] = '\0';
	regmatch_t rm = { .rm_so = 0, .rm_eo = (regoff_t)n };
	return regexec(&c->re, tmp, 1, &rm, REG_STARTEND) == 0;
}

/* Whether v[0..n) passes condition <c>. */
static bool cond_value(const cond *c, const char *v, size_t n)
{
	switch (c->op) {
	case MATCH_EXACT:
		return n == c->vlen && memcmp(v, c->value, n) == 0;
	case MATCH_PREFIX:
		return n >= c->vlen && memcmp(v, c->value, c->vlen) == 0;
	case MATCH_SUFFIX:
		return n >= c->vlen && memcmp(v + n - c->vlen, c->value, c->vlen) == 0;
	case MATCH_REGEX:
		return regex_value(c, v, n);
	}
	return false;
}

/* A header sent on several lines: matched on the lines joined by ",".
 * They fit <tmp>: the joined values are shorter than the head. */
static __attribute__((noinline)) bool header_joined(const cond *c, const http_request *q)
{
	char tmp[HTTP_MAX_HEAD];
	size_t n = 0;
	for (size_t i = 0; i < q->n_headers; i++) {
		const http_header *h = &q->headers[i];
		if (!http_ieqn(h->name, h->name_len, c->name, c->nlen))
			continue;
		if (n + h->value_len + 1 > sizeof tmp)
			return false;
		if (n)
			tmp[n++] = ',';
		memcpy(tmp + n, h->value, h->value_len);
		n += h->value_len;
	}
	return cond_value(c, tmp, n);
}

static bool header_cond(const cond *c, const http_request *q)
{
	const http_header *found = NULL;
	for (size_t i = 0; i < q->n_headers; i++) {
		const http_header *h = &q->headers[i];
		if (!http_ieqn(h->name, h->name_len, c->name, c->nlen))
			continue;
		if (found)
			return header_joined(c, q);
		found = h;
	}
	return found && cond_value(c, found->value, found->value_len);
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* Percent-decodes s[0..n) into out (room for n bytes); a '%' not followed
 * by two hex digits stays as it is. Returns the decoded length. */
static size_t pct_decode(const char *s, size_t n, char *out)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		int hi, lo;
		if (s[i] == '%' && i + 2 < n &&
		    (hi = hexval(s[i + 1])) >= 0 && (lo = hexval(s[i + 2])) >= 0) {
			out[k++] = (char)(hi * 16 + lo);
			i += 2;
		} else {
			out[k++] = s[i];
		}
	}
	return k;
}

/* The query of <q>: what follows the first '?' of its target (of its path
 * in absolute-form), or NULL. */
static const char *query_of(const http_request *q, size_t *len)
{
	const char *t = q->target;
	size_t n = q->target_len;
	if (q->form == HTTP_FORM_ABSOLUTE) {
		t = q->path;
		n = q->path_len;
	} else if (q->form != HTTP_FORM_ORIGIN) {
		return NULL;
	}
	const char *qm = t ? memchr(t, '?', n) : NULL;
	if (!qm)
		return NULL;
	*len = n - (size_t)(qm + 1 - t);
	return qm + 1;
}

static __attribute__((noinline)) bool query_cond(const cond *c, const http_request *q)
{
	size_t qlen;
	const char *s = query_of(q, &qlen);
	if (!s)
		return false;
	char tmp[HTTP_MAX_HEAD];
	const char *end = s + qlen;
	while (s < end) {
		const char *amp = memchr(s, '&', (size_t)(end - s));
		const char *pe = amp ? amp : end;
		const char *eq = memchr(s, '=', (size_t)(pe - s));
		const char *ne = eq ? eq : pe;
		if ((size_t)(ne - s) <= sizeof tmp) {
			size_t k = pct_decode(s, (size_t)(ne - s), tmp);
			if (k == c->nlen && memcmp(tmp, c->name, k) == 0) {
				/* the first parameter of that name decides */
				size_t vk = eq ? pct_decode(eq + 1, (size_t)(pe - eq - 1), tmp) : 0;
				return cond_value(c, tmp, vk);
			}
		}
		s = amp ? amp + 1 : end;
	}
	return false;
}

bool match_request(const match_set *m, const http_request *q)
{
	if (!m)
		return false;
	for (size_t e = 0; e < m->ne; e++) {
		bool all = true;
		for (size_t i = m->e[e].first; all && i < m->e[e].first + m->e[e].n; i++) {
			const cond *c = &m->c[i];
			all = c->on == MATCH_HEADER ? header_cond(c, q) : query_cond(c, q);
		}
		if (all)
			return true;
	}
	return false;
}

/* ---- cookies ---- */

static bool is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

int match_cookie(const http_request *q, const char *name, size_t nlen,
                 const char *want, size_t wlen)
{
	int best = 0;
	for (size_t i = 0; i < q->n_headers; i++) {
		const http_header *h = &q->headers[i];
		if (!http_ieq(h->name, h->name_len, "cookie"))
			continue;
		const char *s = h->value, *end = h->value + h->value_len;
		while (s < end) {
			const char *semi = memchr(s, ';', (size_t)(end - s));
			const char *pe = semi ? semi : end;
			while (s < pe && is_blank(*s))
				s++;
			const char *eq = memchr(s, '=', (size_t)(pe - s));
			if (eq && (size_t)(eq - s) == nlen && memcmp(s, name, nlen) == 0) {
				const char *v = eq + 1, *ve = pe;
				while (ve > v && is_blank(ve[-1]))
					ve--;
				if (ve - v >= 2 && v[0] == '"' && ve[-1] == '"') {
					v++;
					ve--;
				}
				if ((size_t)(ve - v) == wlen && memcmp(v, want, wlen) == 0)
					return 2;
				best = 1;
			}
			s = semi ? semi + 1 : end;
		}
	}
	return best;
}

bool match_cookie_name_ok(const char *s)
{
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch <= 0x20 || ch >= 0x7f || strchr("()<>@,;:\\\"/[]?={}", ch))
			return false;
	}
	return true;
}
