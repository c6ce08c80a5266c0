/* template.c - see template.h. */
#include "template.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The functions a template may call: Flagger's model, one function per
 * field (MetricTemplateModel.TemplateFunctions), canaryd's revision, and
 * the Go builtins Flagger's documented queries use. */
enum { F_NAME, F_NAMESPACE, F_TARGET, F_SERVICE, F_INGRESS, F_ROUTE, F_INTERVAL,
       F_REVISION, F_VARIABLES, F_PRINTF, F_PRINT, N_FUNCS };
static const char *const func_names[N_FUNCS] = {
	"name", "namespace", "target", "service", "ingress", "route", "interval", "revision",
	"variables", "printf", "print",
};
#define KNOWN "name, namespace, target, service, ingress, route, interval, revision, " \
	"variables.KEY, printf, print"

/* Go's template keywords and constants: what a MetricTemplate cannot need
 * (Flagger passes no data to range over or test), refused by name. */
static const char *const go_words[] = {
	"if", "else", "end", "range", "with", "define", "template", "block", "break",
	"continue", "nil", "true", "false", "and", "or", "not", "len", "index", "slice",
	"eq", "ne", "lt", "le", "gt", "ge", "call", "html", "js", "urlquery", "println",
};

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

/* The value of string function <f>, with Flagger's defaults: service,
 * ingress and route are the target unless set. */
static const char *value_of(const tmpl_vars *v, int f)
{
	const char *s = NULL;
	switch (f) {
	case F_NAME: s = v->name; break;
	case F_NAMESPACE: s = v->namespace_; break;
	case F_TARGET: s = v->target; break;
	case F_SERVICE: s = v->service; break;
	case F_INGRESS: s = v->ingress; break;
	case F_ROUTE: s = v->route; break;
	case F_INTERVAL: s = v->interval; break;
	case F_REVISION: s = v->revision; break;
	default: break;
	}
	if (!s && (f == F_SERVICE || f == F_INGRESS || f == F_ROUTE))
		s = v->target;
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

/* ---- evaluating one action ---- */

/* A render in progress. With <check>, no value is known: functions give
 * "" and every variables.KEY exists, so that only what does not depend on
 * the values (syntax, names, printf's formats) can fail. */
typedef struct run {
	const tmpl_vars *v;
	tmpl_escape mode;
	bool check;
	char *err;
	size_t errlen;
	bool failed;
	size_t at;          /* 1-based character of the action's "{{" */
	const char *p, *e;  /* what is left of the action's text */
} run;

/* A value: a string already written for the mode (values escaped, the
 * template's own text as is), a number as written, or the variables map. */
typedef enum { V_STR, V_NUM, V_MAP } vkind;
typedef struct val {
	vkind kind;
	buf s;
	bool literal;   /* a string literal of the template itself */
} val;

#define MAX_ARGS 16
#define MAX_NEST 16  /* parentheses in one action */

static void fail(run *r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void fail(run *r, const char *fmt, ...)
{
	if (r->failed)
		return;
	r->failed = true;
	if (!r->errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(r->err, r->errlen, fmt, ap);
	va_end(ap);
	util_ascii_line(r->err);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Go allows any Unicode letter in a name: bytes of multi-byte characters
 * are taken as letters so that a misspelt name is quoted whole. */
static bool ident_char(char c, bool first)
{
	unsigned char u = (unsigned char)c;
	return u == '_' || (u >= 'A' && u <= 'Z') || (u >= 'a' && u <= 'z') || u >= 0x80 ||
	       (!first && u >= '0' && u <= '9');
}

static void skip_space(run *r)
{
	while (r->p < r->e && is_space(*r->p))
		r->p++;
}

static void val_release(val *x)
{
	buf_release(&x->s);
	memset(x, 0, sizeof *x);
}

static void val_str(val *x, vkind kind)
{
	memset(x, 0, sizeof *x);
	x->kind = kind;
	buf_puts(&x->s, ""); /* a string even when empty */
}

/* Writes value <s> of <label> ("name", "variables.app") into <x> as the
 * mode says, or fails with <x> empty. */
static bool put_value(run *r, const char *label, const char *s, val *x)
{
	char what[48];
	val_str(x, V_STR);
	if (r->check)
		return true;
	switch (r->mode) {
	case TMPL_PROMQL:
		if (!promql_safe(s)) {
			cut(s, strlen(s), what);
			fail(r, "unsafe value for {{ %s }}: '%s' (in a query a value may only have "
			     "letters, digits and _ . : / -)", label, what);
			val_release(x);
			return false;
		}
		buf_puts(&x->s, s);
		break;
	case TMPL_URL:
		buf_url_escape(&x->s, s);
		buf_puts(&x->s, "");
		break;
	case TMPL_JSON:
		if (!utf8_ok(s)) {
			fail(r, "value for {{ %s }} is not UTF-8, which a JSON body must be", label);
			val_release(x);
			return false;
		}
		put_json(&x->s, s);
		break;
	default:
		buf_puts(&x->s, s);
		break;
	}
	return true;
}

/* {{ variables.KEY }}: the metric's templateVariables, a missing key an
 * error as with Flagger's missingkey=error. */
static bool lookup(run *r, const char *key, size_t klen, val *x)
{
	char what[48], label[64];
	cut(key, klen, what);
	snprintf(label, sizeof label, "variables.%s", what);
	if (r->check)
		return put_value(r, label, "", x);
	for (size_t i = 0; i < r->v->n_variables; i++) {
		const tmpl_kv *kv = &r->v->variables[i];
		if (kv->key && strlen(kv->key) == klen && !memcmp(kv->key, key, klen))
			return put_value(r, label, kv->value ? kv->value : "", x);
	}
	fail(r, "{{ %s }} at character %zu: the metric's templateVariables has no key '%s'",
	     label, r->at, what);
	return false;
}

/* A name at r->p: its length (0 when none). */
static size_t ident_len(const run *r)
{
	size_t n = 0;
	while (r->p + n < r->e && ident_char(r->p[n], n == 0))
		n++;
	return n;
}

/* Field accesses after an operand: ".KEY" on the variables map. */
static bool fields(run *r, val *x)
{
	while (r->p < r->e && *r->p == '.') {
		r->p++;
		size_t n = ident_len(r);
		char what[48];
		if (!n) {
			fail(r, "expected a key after '.' at character %zu", r->at);
			return false;
		}
		cut(r->p, n, what);
		if (x->kind != V_MAP) {
			fail(r, "cannot read key '%s' at character %zu: only variables has keys", what,
			     r->at);
			return false;
		}
		val_release(x);
		if (!lookup(r, r->p, n, x))
			return false;
		r->p += n;
	}
	return true;
}

/* A string literal at r->p ("..." with Go's escapes, or `raw`). */
static bool string_lit(run *r, val *x)
{
	char q = *r->p++;
	val_str(x, V_STR);
	x->literal = true;
	while (r->p < r->e && *r->p != q) {
		char c = *r->p++;
		if (c == '\\' && q == '"') {
			if (r->p >= r->e)
				break;
			char e = *r->p++;
			const char *map = "n\nt\tr\ra\ab\bf\fv\v\\\\\"\"''";
			const char *m = strchr(map, e);
			if (e && m && (m - map) % 2 == 0) {
				c = m[1];
			} else if (e == 'x' && r->e - r->p >= 2 && isxdigit((unsigned char)r->p[0]) &&
			           isxdigit((unsigned char)r->p[1])) {
				char hex[3] = { r->p[0], r->p[1], 0 };
				c = (char)strtol(hex, NULL, 16);
				r->p += 2;
			} else {
				fail(r, "unknown escape '\\%c' in a string at character %zu", e, r->at);
				return false;
			}
		} else if (c == '\n' && q == '"') {
			break;
		}
		if (!c) {
			fail(r, "NUL in a string at character %zu", r->at);
			return false;
		}
		buf_append(&x->s, &c, 1);
	}
	if (r->p >= r->e || *r->p != q) {
		fail(r, "unterminated string at character %zu", r->at);
		return false;
	}
	r->p++;
	return true;
}

static bool pipeline(run *r, val *out, int depth);

static bool is_go_word(const char *s, size_t n)
{
	for (size_t i = 0; i < sizeof go_words / sizeof go_words[0]; i++)
		if (strlen(go_words[i]) == n && !memcmp(go_words[i], s, n))
			return true;
	return false;
}

/* The function named s[0..n), or -1 (reported). */
static int func_of(run *r, const char *s, size_t n)
{
	char what[48];
	for (int f = 0; f < N_FUNCS; f++)
		if (strlen(func_names[f]) == n && !memcmp(func_names[f], s, n))
			return f;
	cut(s, n, what);
	if (is_go_word(s, n))
		fail(r, "{{ %s }} at character %zu is not supported in a metric query (Flagger "
		     "passes no data to a template; known: " KNOWN ")", what, r->at);
	else
		fail(r, "unknown variable {{ %s }} at character %zu; known: " KNOWN, what, r->at);
	return -1;
}

/* One operand at r->p into <x>; a name is called with no arguments. */
static bool operand(run *r, val *x, int depth)
{
	char c = *r->p;
	memset(x, 0, sizeof *x);
	if (c == '"' || c == '`')
		return string_lit(r, x) && fields(r, x);
	if (c == '(') {
		if (depth >= MAX_NEST) {
			fail(r, "more than %d nested parentheses at character %zu", MAX_NEST, r->at);
			return false;
		}
		r->p++;
		if (!pipeline(r, x, depth + 1))
			return false;
		skip_space(r);
		if (r->p >= r->e || *r->p != ')') {
			fail(r, "unclosed '(' at character %zu", r->at);
			return false;
		}
		r->p++;
		return fields(r, x);
	}
	if ((c >= '0' && c <= '9') || ((c == '-' || c == '+' || c == '.') && r->e - r->p > 1 &&
	                               r->p[1] >= '0' && r->p[1] <= '9')) {
		val_str(x, V_NUM);
		const char *s = r->p++;
		while (r->p < r->e && (isalnum((unsigned char)*r->p) || *r->p == '.' || *r->p == '_'))
			r->p++;
		buf_append(&x->s, s, (size_t)(r->p - s));
		return true;
	}
	size_t n = ident_len(r);
	if (n) {
		const char *s = r->p;
		int f = func_of(r, s, n);
		if (f < 0)
			return false;
		r->p += n;
		if (f == F_PRINTF || f == F_PRINT) {
			fail(r, "%s at character %zu needs its arguments in parentheses here: "
			     "(%s ...)", func_names[f], r->at, func_names[f]);
			return false;
		}
		if (f == F_VARIABLES)
			val_str(x, V_MAP);
		else if (!put_value(r, func_names[f], value_of(r->v, f), x))
			return false;
		return fields(r, x);
	}
	if (c == '.' || c == '$')
		fail(r, "'%c' at character %zu: Flagger passes no data to a template; use its "
		     "functions (known: " KNOWN ")", c, r->at);
	else if (c == '\'')
		fail(r, "character constants are not supported (at character %zu)", r->at);
	else
		fail(r, "unexpected '%c' in {{ }} at character %zu", isprint((unsigned char)c) ? c : '?',
		     r->at);
	return false;
}

/* Go's fmt.Sprintf for the verbs a query needs: %s and %v (a string or a
 * number), %d (a number), %%. */
static bool do_printf(run *r, val *args, size_t n, val *out)
{
	if (!n || args[0].kind != V_STR) {
		fail(r, "printf at character %zu needs a format string first", r->at);
		return false;
	}
	/* a format taken from a value would make the query depend on what a
	 * revision or a name holds, and differ by escaping ('%7B' of a URL-
	 * escaped '{' read as a verb: the fuzz target found it); Flagger's
	 * templates write the format: printf "%s-canary" name */
	if (!args[0].literal) {
		fail(r, "printf at character %zu: the format must be a string literal, such as "
		     "printf \"%%s-canary\" name", r->at);
		return false;
	}
	val_str(out, V_STR);
	const char *f = args[0].s.p;
	size_t used = 1;
	for (; *f; f++) {
		if (*f != '%') {
			buf_append(&out->s, f, 1);
			continue;
		}
		char verb = *++f;
		if (verb == '%') {
			buf_puts(&out->s, "%");
			continue;
		}
		if (verb != 's' && verb != 'v' && verb != 'd') {
			fail(r, "printf at character %zu: %%%c is not supported (only %%s, %%v, %%d and "
			     "%%%%)", r->at, verb && isprint((unsigned char)verb) ? verb : '?');
			return false;
		}
		if (used >= n) {
			fail(r, "printf at character %zu: the format needs more than the %zu "
			     "argument%s given", r->at, n - 1, n == 2 ? "" : "s");
			return false;
		}
		val *a = &args[used++];
		if (a->kind == V_MAP || (verb == 'd' && a->kind != V_NUM)) {
			fail(r, "printf at character %zu: %%%c of %s", r->at, verb,
			     a->kind == V_MAP ? "variables (name a key: variables.KEY)" : "a string");
			return false;
		}
		buf_puts(&out->s, a->s.p);
	}
	if (used < n) {
		fail(r, "printf at character %zu: %zu argument%s but the format uses %zu", r->at,
		     n - 1, n == 2 ? "" : "s", used - 1);
		return false;
	}
	return true;
}

/* Go's fmt.Sprint: the operands one after the other, with a space
 * between two that are not strings. */
static bool do_print(run *r, val *args, size_t n, val *out)
{
	val_str(out, V_STR);
	for (size_t i = 0; i < n; i++) {
		if (args[i].kind == V_MAP) {
			fail(r, "print at character %zu: name a key of variables (variables.KEY)", r->at);
			return false;
		}
		if (i && args[i].kind == V_NUM && args[i - 1].kind == V_NUM)
			buf_puts(&out->s, " ");
		buf_puts(&out->s, args[i].s.p);
	}
	return true;
}

static bool at_command_end(const run *r)
{
	return r->p >= r->e || *r->p == '|' || *r->p == ')';
}

/* One command at r->p into <out> (empty when it fails); <in>, when not
 * NULL, is the value piped into it (its last argument), taken. */
static bool command(run *r, val *in, val *out, int depth)
{
	val args[MAX_ARGS + 1];
	size_t n = 0;
	bool ok = false;
	int f = -1;
	memset(out, 0, sizeof *out);
	skip_space(r);
	if (at_command_end(r)) {
		fail(r, "empty {{ }} at character %zu; known variables: " KNOWN, r->at);
		goto done;
	}
	size_t len = ident_len(r);
	if (len && (r->p + len >= r->e || r->p[len] != '.')) {
		f = func_of(r, r->p, len);
		if (f < 0)
			goto done;
		r->p += len;
	}
	for (;;) {
		skip_space(r);
		if (at_command_end(r))
			break;
		if (n == MAX_ARGS) {
			fail(r, "more than %d arguments at character %zu", MAX_ARGS, r->at);
			goto done;
		}
		if (!operand(r, &args[n], depth)) {
			val_release(&args[n]); /* what it read before it failed */
			goto done;
		}
		n++;
		if (r->p < r->e && !is_space(*r->p) && !at_command_end(r)) {
			fail(r, "unexpected '%c' after an operand at character %zu",
			     isprint((unsigned char)*r->p) ? *r->p : '?', r->at);
			goto done;
		}
	}
	if (in) {
		args[n++] = *in;
		memset(in, 0, sizeof *in);
	}
	if (f < 0) { /* an operand alone */
		if (n != 1) {
			fail(r, "at character %zu: only printf and print take arguments", r->at);
			goto done;
		}
		*out = args[0];
		memset(&args[0], 0, sizeof args[0]);
		ok = true;
	} else if (f == F_PRINTF) {
		ok = do_printf(r, args, n, out);
	} else if (f == F_PRINT) {
		ok = do_print(r, args, n, out);
	} else if (n) {
		fail(r, "{{ %s }} at character %zu takes no arguments", func_names[f], r->at);
	} else if (f == F_VARIABLES) {
		val_str(out, V_MAP);
		ok = true;
	} else {
		ok = put_value(r, func_names[f], value_of(r->v, f), out);
	}
done:
	for (size_t i = 0; i < n; i++)
		val_release(&args[i]);
	if (in)
		val_release(in);
	if (!ok)
		val_release(out); /* printf and print fill it before they fail */
	return ok;
}

/* Commands separated by '|' at r->p into <out>. */
static bool pipeline(run *r, val *out, int depth)
{
	val cur;
	bool have = false;
	memset(out, 0, sizeof *out);
	for (;;) {
		val next;
		if (!command(r, have ? &cur : NULL, &next, depth))
			return false;
		cur = next;
		have = true;
		skip_space(r);
		if (r->p < r->e && *r->p == '|') {
			r->p++;
			continue;
		}
		break;
	}
	*out = cur;
	return true;
}

/* The end of the action starting at <a> (after "{{"): its "}}", past any
 * string literal, or NULL. */
static const char *action_end(const char *a)
{
	char q = 0;
	for (; *a; a++) {
		if (q) {
			if (*a == '\\' && q == '"' && a[1])
				a++;
			else if (*a == q)
				q = 0;
		} else if (*a == '"' || *a == '`') {
			q = *a;
		} else if (a[0] == '}' && a[1] == '}') {
			return a;
		}
	}
	return NULL;
}

/* The work of both entry points: with <check> no values are used and
 * nothing is written. */
static int render(const char *tmpl, const tmpl_vars *v, tmpl_escape mode, buf *out,
                  bool check, char *err, size_t errlen)
{
	size_t mark = out ? out->len : 0;
	const char *p = tmpl, *lit = tmpl;
	char what[48];
	run r = { .v = v, .mode = mode, .check = check, .err = err, .errlen = errlen };
	if (errlen)
		err[0] = '\0';
	while ((p = strstr(p, "{{")) != NULL) {
		const char *a = p + 2;
		bool ltrim = a[0] == '-' && is_space(a[1]);
		if (ltrim)
			a += 2;
		if (out) {
			size_t l = (size_t)(p - lit);
			while (ltrim && l && is_space(lit[l - 1]))
				l--;
			buf_append(out, lit, l);
		}
		r.at = (size_t)(p - tmpl) + 1;
		const char *close = action_end(a);
		if (!close) {
			cut(p, strlen(p), what);
			fail(&r, "unclosed {{ at character %zu: '%s' has no }}", r.at, what);
			goto fail;
		}
		const char *e = close;
		bool rtrim = e - a >= 2 && e[-1] == '-' && is_space(e[-2]);
		if (rtrim)
			e -= 2;
		if (e - a >= 2 && a[0] == '/' && a[1] == '*') {
			if (e - a < 4 || e[-1] != '/' || e[-2] != '*') {
				fail(&r, "unclosed comment at character %zu", r.at);
				goto fail;
			}
		} else {
			r.p = a;
			r.e = e;
			val x;
			skip_space(&r);
			if (r.p == r.e) {
				fail(&r, "empty {{ }} at character %zu; known variables: " KNOWN, r.at);
				goto fail;
			}
			if (!pipeline(&r, &x, 0))
				goto fail;
			skip_space(&r);
			if (r.p < r.e) {
				fail(&r, "unexpected '%c' at character %zu", isprint((unsigned char)*r.p) ?
				     *r.p : '?', r.at);
				val_release(&x);
				goto fail;
			}
			if (x.kind == V_MAP) {
				fail(&r, "{{ variables }} at character %zu: name a key (variables.KEY)",
				     r.at);
				val_release(&x);
				goto fail;
			}
			if (out)
				buf_append(out, x.s.p, x.s.len);
			val_release(&x);
		}
		p = lit = close + 2;
		while (rtrim && is_space(*lit))
			lit++;
		p = lit;
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
	return render(tmpl, v ? v : &none, mode, out, false, err, errlen);
}

int tmpl_check(const char *tmpl, char *err, size_t errlen)
{
	static const tmpl_vars none = { 0 };
	return render(tmpl, &none, TMPL_RAW, NULL, true, err, errlen);
}
