/* template.c - see template.h. */
#include "template.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

static const char *const var_names[] = { "name", "namespace", "target", "interval",
                                         "revision" };
#define N_VARS (sizeof var_names / sizeof var_names[0])
#define KNOWN "name, namespace, target, interval, revision"

/* Copies at most 40 bytes of s[0..n) into <out> (>= 48 bytes) for a
 * message, as one line of printable ASCII (util_ascii_line): messages go
 * to the audit and the log, and the cut may split a multi-byte character. */
static void cut(const char *s, size_t n, char *out)
{
	size_t i = 0;
	for (; i < n && i < 40 && s[i]; i++)
		out[i] = s[i];
	if (i < n)
		memcpy(out + i, "...", 3), i += 3;
	out[i] = '\0';
	util_ascii_line(out);
}

static const char *value_of(const tmpl_vars *v, size_t var)
{
	const char *s = NULL;
	switch (var) {
	case 0: s = v->name; break;
	case 1: s = v->namespace_; break;
	case 2: s = v->target; break;
	case 3: s = v->interval; break;
	default: s = v->revision; break;
	}
	return s ? s : "";
}

/* Why a whitelist and not escaping, in PromQL: a value may stand inside a
 * string literal ({pod=~"{{ name }}-.*"}) or outside any quotes ([{{ interval }}],
 * offset {{ interval }}, a metric name built from {{ target }}). Escaping is
 * only defined inside a literal, and the template does not say where the
 * value stands; quoting it ourselves would break the unquoted uses. So the
 * value must be harmless wherever it lands: the characters of Kubernetes
 * names, revisions and durations, none of which can end a string, a label
 * matcher, a range or an expression. A regex matcher still sees '.' as any
 * character, which only widens a match, it cannot add a clause. */
static bool promql_safe(const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		      c == '_' || c == '.' || c == ':' || c == '/' || c == '-'))
			return false;
	}
	return true;
}

/* Whether <s> is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), as JSON text must be. */
static bool utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		unsigned char c = *p;
		int more;
		unsigned min, cp;
		if (c < 0x80) {
			p++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			more = 1, min = 0x80, cp = c & 0x1f;
		} else if (c >= 0xe0 && c <= 0xef) {
			more = 2, min = 0x800, cp = c & 0x0f;
		} else if (c >= 0xf0 && c <= 0xf4) {
			more = 3, min = 0x10000, cp = c & 0x07;
		} else {
			return false;
		}
		for (int k = 1; k <= more; k++) {
			if ((p[k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[k] & 0x3f);
		}
		if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		p += more + 1;
	}
	return true;
}

static void put_json(buf *out, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		switch (c) {
		case '"': buf_puts(out, "\\\""); break;
		case '\\': buf_puts(out, "\\\\"); break;
		case '\n': buf_puts(out, "\\n"); break;
		case '\r': buf_puts(out, "\\r"); break;
		case '\t': buf_puts(out, "\\t"); break;
		case '\b': buf_puts(out, "\\b"); break;
		case '\f': buf_puts(out, "\\f"); break;
		default:
			if (c < 0x20 || c == 0x7f)
				buf_printf(out, "\\u%04x", c);
			else
				buf_append(out, s, 1);
		}
	}
}

/* The work of both entry points: with <v> NULL only the syntax and names
 * are checked and nothing is written. */
static int render(const char *tmpl, const tmpl_vars *v, tmpl_escape mode, buf *out,
                  char *err, size_t errlen)
{
	size_t mark = out ? out->len : 0;
	const char *p = tmpl, *lit = tmpl;
	char what[48];
	if (errlen)
		err[0] = '\0';
	while ((p = strstr(p, "{{")) != NULL) {
		if (out && p > lit)
			buf_append(out, lit, (size_t)(p - lit));
		size_t at = (size_t)(p - tmpl) + 1;
		const char *close = strstr(p + 2, "}}");
		if (!close) {
			cut(p, strlen(p), what);
			snprintf(err, errlen, "unclosed {{ at character %zu: '%s' has no }}", at, what);
			goto fail;
		}
		const char *a = p + 2, *b = close;
		while (a < b && (*a == ' ' || *a == '\t'))
			a++;
		while (b > a && (b[-1] == ' ' || b[-1] == '\t'))
			b--;
		if (a == b) {
			snprintf(err, errlen, "empty {{ }} at character %zu; known variables: " KNOWN,
			         at);
			goto fail;
		}
		size_t var = 0;
		while (var < N_VARS && !(strlen(var_names[var]) == (size_t)(b - a) &&
		                         !memcmp(var_names[var], a, (size_t)(b - a))))
			var++;
		if (var == N_VARS) {
			cut(a, (size_t)(b - a), what);
			snprintf(err, errlen, "unknown variable {{ %s }} at character %zu; known: " KNOWN,
			         what, at);
			goto fail;
		}
		if (out) {
			const char *val = value_of(v, var);
			switch (mode) {
			case TMPL_PROMQL:
				if (!promql_safe(val)) {
					cut(val, strlen(val), what);
					snprintf(err, errlen, "unsafe value for {{ %s }}: '%s' (in a query "
					         "a value may only have letters, digits and _ . : / -)",
					         var_names[var], what);
					goto fail;
				}
				buf_puts(out, val);
				break;
			case TMPL_URL:
				buf_url_escape(out, val);
				break;
			case TMPL_JSON:
				if (!utf8_ok(val)) {
					snprintf(err, errlen, "value for {{ %s }} is not UTF-8, which a JSON "
					         "body must be", var_names[var]);
					goto fail;
				}
				put_json(out, val);
				break;
			default:
				buf_puts(out, val);
				break;
			}
		}
		p = lit = close + 2;
	}
	if (out)
		buf_puts(out, lit); /* also makes out->p a string when all is empty */
	return 0;
fail:
	if (out && out->p) {
		out->len = mark;
		out->p[mark] = '\0';
	}
	return -1;
}

int tmpl_render(const char *tmpl, const tmpl_vars *v, tmpl_escape mode, buf *out,
                char *err, size_t errlen)
{
	static const tmpl_vars none = { 0 };
	return render(tmpl, v ? v : &none, mode, out, err, errlen);
}

int tmpl_check(const char *tmpl, char *err, size_t errlen)
{
	return render(tmpl, NULL, TMPL_RAW, NULL, err, errlen);
}
