/* config.c - see config.h. Each YAML document is composed from libyaml's
 * events under the CFG_MAX_ bounds, converted to JSON (cfg_canary.raw; this
 * pass also bounds what aliases repeat, and reports duplicate keys), then
 * validated by walking tables of known keys,
 * one table per mapping, each row naming its handler. A handler reports every
 * problem it finds and carries on, so that one run shows every error.
 * MetricTemplate documents are read into the load's context and the metrics'
 * templateRefs resolved once the whole stream is read, so that a template may
 * come after the canaries that use it. */
#include "config.h"
#include "resolve.h"
#include "template.h"
#include "util.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#define API_NATIVE "canaryd/v1"
#define API_FLAGGER "flagger.app/v1beta1"

#define NOSTORE ((size_t)-1)
#define PATH_LEN 256

/* ---- the load in progress ---- */

/* A MetricTemplate document, kept until the end of the file because the
 * canaries that use it may come before it. */
typedef struct tmpl_def {
	char *name, *namespace_;
	cfg_metric_source src;   /* query and provider (template_name unset) */
	bool ok;                 /* read without errors */
	int line;                /* where the document starts */
} tmpl_def;

/* A metric's templateRef, resolved once every document is read. */
typedef struct tmpl_ref {
	size_t canary;           /* index in cfg.canaries */
	int metric;              /* index in policy.metrics; -1: the metric had errors */
	char *name, *namespace_;
	size_t line, col;        /* of the templateRef key */
	char path[PATH_LEN];
} tmpl_ref;

typedef struct ctx {
	const char *name;      /* file name for messages */
	cfg_errors *errs;
	yaml_document_t *doc;
	bool flagger;          /* the document being read is Flagger's */
	/* the CFG_MAX_ budgets, for the whole file */
	size_t documents;      /* documents begun */
	size_t composed;       /* node and alias events composed */
	size_t values, text;   /* JSON values made and bytes of their keys and
	                        * scalars, each use of an alias counted again */
	bool too_big;          /* a bound was crossed (reported): stop reading */
	/* where each message added by this load points (1-based), to sort them
	 * by position at the end; past CFG_MAX_ERRORS they are counted only */
	struct errpos { size_t line, col, seq; char *msg; } *pos;
	size_t n_pos, pos_cap;
	size_t dropped;        /* messages past CFG_MAX_ERRORS */
	size_t drop_line, drop_col; /* where the first of them was */
	bool stopping;         /* the message being added ends the reading: never
	                        * left out */
	bool in_template;      /* reading a MetricTemplate, not a Canary */
	size_t canary;         /* index the canary being read will have */
	tmpl_def *defs;
	size_t n_defs, defs_cap;
	tmpl_ref *refs;
	size_t n_refs, refs_cap;
	size_t canaries_cap;   /* of cfg.canaries */
} ctx;

/* Makes room for one more element in array *<p> of <n> elements of <size>
 * bytes, *<cap> allocated, doubling: a file has up to CFG_MAX_DOCUMENTS
 * canaries of some KB each, which growing one at a time would copy over
 * and over. */
static void cfg_grow(void *p, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return;
	*cap = *cap ? *cap * 2 : 8;
	*(void **)p = xrealloc(*(void **)p, *cap * size);
}

/* Appends <msg> (taken) about LINE:COL (1-based). */
static void cfg_errs_push(ctx *x, size_t line, size_t col, char *msg)
{
	cfg_errors *e = x->errs;
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 8;
		e->msg = xrealloc(e->msg, e->cap * sizeof *e->msg);
	}
	e->msg[e->n++] = msg;
	cfg_grow(&x->pos, x->n_pos, &x->pos_cap, sizeof *x->pos);
	x->pos[x->n_pos] = (struct errpos){ line, col, x->n_pos, msg };
	x->n_pos++;
}

/* True once messages are being left out: work done only to word a message
 * (finding a "did you mean") can then be skipped. */
static bool cfg_errs_full(const ctx *x)
{
	return x->n_pos >= CFG_MAX_ERRORS;
}

static int errpos_cmp(const void *a, const void *b)
{
	const struct errpos *p = a, *q = b;
	if (p->line != q->line)
		return p->line < q->line ? -1 : 1;
	if (p->col != q->col)
		return p->col < q->col ? -1 : 1;
	return p->seq < q->seq ? -1 : p->seq > q->seq;
}

/* Puts the messages of this load in file order (a reader fixes a file top
 * to bottom); those at one position keep the order they were found in. */
static void cfg_errs_sort(ctx *x)
{
	if (!x->n_pos)
		return;
	qsort(x->pos, x->n_pos, sizeof *x->pos, errpos_cmp);
	size_t first = x->errs->n - x->n_pos;
	for (size_t i = 0; i < x->n_pos; i++)
		x->errs->msg[first + i] = x->pos[i].msg;
	free(x->pos);
	x->pos = NULL;
	x->n_pos = x->pos_cap = 0;
}

/* Returns <s> (taken) with each control character (C0, DEL, and C1 as
 * UTF-8) written as \xNN: a message is one line on a terminal or in a log,
 * whatever the file's keys and values hold. */
static char *cfg_escape_controls(char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t n = 0;
	for (; *p; p++)
		n += *p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f);
	if (!n)
		return s;
	buf b = BUF_INIT;
	for (p = (const unsigned char *)s; *p; p++) {
		if (*p < 0x20 || *p == 0x7f)
			buf_printf(&b, "\\x%02x", *p);
		else if (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f)
			buf_printf(&b, "\\x%02x", *++p);
		else
			buf_append(&b, p, 1);
	}
	free(s);
	return b.p;
}

/* Appends "NAME:LINE:COL: message". <line> 0 (no position: what is about
 * the whole file) is reported at 1:1, so that every message has the same
 * form for an editor or a script to read. Past CFG_MAX_ERRORS messages in
 * this load, the message is only counted (cfg_load_string says how many
 * were left out): a file made of one mistake repeated would otherwise give
 * a message per value, which nobody reads and a reload would log. */
static void err_vpos(ctx *x, size_t line, size_t col, const char *fmt, va_list ap)
{
	if (!line)
		line = col = 1;
	if (cfg_errs_full(x) && !x->stopping) {
		if (!x->dropped++) {
			x->drop_line = line;
			x->drop_col = col;
		}
		return;
	}
	buf b = BUF_INIT;
	buf_printf(&b, "%s:%zu:%zu: ", x->name, line, col);
	buf_vprintf(&b, fmt, ap);
	cfg_errs_push(x, line, col, cfg_escape_controls(b.p));
}

/* Appends "NAME:LINE:COL: message" for node <n>; without a node, at the
 * start of the document being read, or at 1:1. */
static void cfg_err_at(ctx *x, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void cfg_err_at(ctx *x, const yaml_node_t *n, const char *fmt, ...)
{
	const yaml_mark_t *m = n ? &n->start_mark : x->doc ? &x->doc->start_mark : NULL;
	va_list ap;
	va_start(ap, fmt);
	err_vpos(x, m ? m->line + 1 : 0, m ? m->column + 1 : 0, fmt, ap);
	va_end(ap);
}

/* As cfg_err_pos, for what ends the reading of the file (YAML syntax, a bound
 * crossed): shown even past CFG_MAX_ERRORS, since it says why the rest of
 * the file was not checked. */
static void cfg_err_stop(ctx *x, size_t line, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void cfg_err_stop(ctx *x, size_t line, size_t col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	x->stopping = true;
	err_vpos(x, line, col, fmt, ap);
	x->stopping = false;
	va_end(ap);
}

/* As cfg_err_at, at libyaml mark <m>. */
static void err_mark(ctx *x, yaml_mark_t m, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void err_mark(ctx *x, yaml_mark_t m, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vpos(x, m.line + 1, m.column + 1, fmt, ap);
	va_end(ap);
}

/* As cfg_err_at, at LINE:COL (1-based): for what is reported once the
 * document's nodes are gone (template references, resolved at the end). */
static void cfg_err_pos(ctx *x, size_t line, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void cfg_err_pos(ctx *x, size_t line, size_t col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vpos(x, line, col, fmt, ap);
	va_end(ap);
}

/* ---- scalars ---- */

static bool cfg_is_scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE;
}

static bool cfg_is_plain(const yaml_node_t *n)
{
	return cfg_is_scalar(n) && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

static const char *cfg_sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

static bool cfg_is_null(const yaml_node_t *n)
{
	if (!cfg_is_plain(n))
		return false;
	const char *s = cfg_sval(n);
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

static int cfg_bool_value(const char *s)
{
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return 1;
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return 0;
	return -1;
}

/* Decimal integer: [-+]?[0-9]+ */
static bool cfg_looks_decimal(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	if (!isdigit((unsigned char)*s))
		return false;
	while (isdigit((unsigned char)*s))
		s++;
	return !*s;
}

/* YAML 1.2 core schema integers: decimal, 0x hex, 0o octal. */
static bool looks_int(const char *s)
{
	if (cfg_looks_decimal(s))
		return true;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'o') && s[2]) {
		for (const char *p = s + 2; *p; p++)
			if (s[1] == 'x' ? !isxdigit((unsigned char)*p) : (*p < '0' || *p > '7'))
				return false;
		return true;
	}
	return false;
}

/* Core schema floats: [-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)? */
static bool cfg_looks_float(const char *s)
{
	if (*s == '-' || *s == '+')
		s++;
	size_t digits = 0;
	while (isdigit((unsigned char)*s))
		s++, digits++;
	if (*s == '.') {
		s++;
		while (isdigit((unsigned char)*s))
			s++, digits++;
	}
	if (!digits)
		return false;
	if (*s == 'e' || *s == 'E') {
		s++;
		if (*s == '-' || *s == '+')
			s++;
		if (!isdigit((unsigned char)*s))
			return false;
		while (isdigit((unsigned char)*s))
			s++;
	}
	return !*s;
}

/* Describes <n> after "got" in messages: a scalar quoted (cut, and with
 * control characters replaced, so that one message stays one line), or the
 * kind of node. Strings that would be numbers unquoted say so, because that
 * is the usual surprise. */
static const char *cfg_describe(const yaml_node_t *n, char *out, size_t len)
{
	if (!n) {
		snprintf(out, len, "nothing");
		return out;
	}
	if (n->type == YAML_MAPPING_NODE) {
		snprintf(out, len, "a mapping");
		return out;
	}
	if (n->type == YAML_SEQUENCE_NODE) {
		snprintf(out, len, "a list");
		return out;
	}
	if (cfg_is_null(n)) {
		snprintf(out, len, "nothing (null)");
		return out;
	}
	const char *s = cfg_sval(n);
	char cut[44];
	size_t i = 0;
	for (; s[i] && i < 40; i++)
		cut[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
	cut[i] = '\0';
	const char *more = s[i] ? "..." : "";
	bool numberish = cfg_looks_float(s) || looks_int(s) || cfg_bool_value(s) >= 0;
	if (!cfg_is_plain(n) && numberish)
		snprintf(out, len, "the string '%s%s'", cut, more);
	else
		snprintf(out, len, "'%s%s'", cut, more);
	return out;
}

#define GOT(n) cfg_describe((n), got_, sizeof got_)

/* Paths longer than PATH_LEN are cut: they only appear in messages. */
static void cfg_join(char *out, const char *path, const char *key)
{
	if (snprintf(out, PATH_LEN, "%s%s%s", path, *path ? "." : "", key) >= PATH_LEN)
		out[PATH_LEN - 1] = '\0';
}

static void cfg_join_index(char *out, const char *path, size_t i)
{
	if (snprintf(out, PATH_LEN, "%s[%zu]", path, i) >= PATH_LEN)
		out[PATH_LEN - 1] = '\0';
}

/* ---- YAML to JSON ---- */

static yaml_node_t *cfg_node_at(ctx *x, int i)
{
	return yaml_document_get_node(x->doc, i);
}

static json_t *scalar_json(const yaml_node_t *n)
{
	const char *s = cfg_sval(n);
	size_t len = n->data.scalar.length;
	if (cfg_is_plain(n)) {
		if (cfg_is_null(n))
			return json_null();
		int b = cfg_bool_value(s);
		if (b >= 0)
			return json_boolean(b);
		if (looks_int(s)) {
			int base = 10;
			const char *digits = s;
			if (s[0] == '0' && s[1] == 'x')
				base = 16, digits = s + 2;
			else if (s[0] == '0' && s[1] == 'o')
				base = 8, digits = s + 2;
			errno = 0;
			long long v = strtoll(digits, NULL, base);
			if (!errno)
				return json_integer(v);
			double d = strtod(s, NULL); /* too big for an integer */
			if (base == 10 && isfinite(d))
				return json_real(d);
		} else if (cfg_looks_float(s)) {
			double d = strtod(s, NULL);
			if (isfinite(d))
				return json_real(d);
		}
	}
	return json_stringn(s, len);
}

/* The messages about crossing a bound, shared by the composer and cfg_to_json. */
#define TOO_DEEP "nested more than %d levels deep (a configuration needs about 10)"
#define TOO_MANY_VALUES "more than %d values in the file, counting each use of an alias"
#define TOO_MUCH_TEXT "more than %u MiB of keys and values in the file, counting each " \
	"use of an alias"

/* <path> for a message: "(root)" when empty, cut to PATH_LEN - 1 bytes
 * (keys can be as long as the file). */
static const char *path_for(const buf *path, char *out)
{
	if (!path->len)
		return "(root)";
	snprintf(out, PATH_LEN, "%s", path->p);
	return out;
}

/* Converts <n> and what is below it, at <depth> (the root is 0). Returns
 * NULL only when a CFG_MAX_ bound is crossed (reported once, x->too_big
 * set): aliases repeat nodes, so the JSON can be much bigger than the file
 * ("billion laughs"), and a node can contain itself. Pairs with a
 * non-scalar or duplicate key are reported and left out. */
static json_t *cfg_to_json(ctx *x, yaml_node_t *n, buf *path, int depth)
{
	char cut[PATH_LEN];
	if (x->too_big)
		return NULL;
	size_t len = n->type == YAML_SCALAR_NODE ? n->data.scalar.length : 0;
	if (depth > CFG_MAX_DEPTH || ++x->values > CFG_MAX_VALUES ||
	    (x->text += len) > CFG_MAX_TEXT) {
		x->too_big = true;
		size_t line = n->start_mark.line + 1, col = n->start_mark.column + 1;
		if (depth > CFG_MAX_DEPTH)
			cfg_err_stop(x, line, col, "%s: " TOO_DEEP, path_for(path, cut), CFG_MAX_DEPTH);
		else if (x->values > CFG_MAX_VALUES)
			cfg_err_stop(x, line, col, "%s: " TOO_MANY_VALUES, path_for(path, cut),
			         CFG_MAX_VALUES);
		else
			cfg_err_stop(x, line, col, "%s: " TOO_MUCH_TEXT, path_for(path, cut),
			         CFG_MAX_TEXT >> 20);
		return NULL;
	}
	size_t mark = path->len;
	if (n->type == YAML_SCALAR_NODE) {
		json_t *j = scalar_json(n);
		if (!j) {
			cfg_err_at(x, n, "%s: string is not valid UTF-8", path_for(path, cut));
			j = json_null();
		}
		return j;
	}
	if (n->type == YAML_SEQUENCE_NODE) {
		json_t *arr = json_array();
		size_t i = 0;
		for (yaml_node_item_t *it = n->data.sequence.items.start;
		     it < n->data.sequence.items.top; it++, i++) {
			yaml_node_t *c = cfg_node_at(x, *it);
			if (!c)
				continue;
			buf_printf(path, "[%zu]", i);
			json_t *j = cfg_to_json(x, c, path, depth + 1);
			path->len = mark;
			path->p[mark] = '\0';
			if (!j) {
				json_decref(arr);
				return NULL;
			}
			json_array_append_new(arr, j);
		}
		return arr;
	}
	json_t *obj = json_object();
	for (yaml_node_pair_t *pr = n->data.mapping.pairs.start;
	     pr < n->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = cfg_node_at(x, pr->key), *v = cfg_node_at(x, pr->value);
		if (!k || !v)
			continue;
		if (!cfg_is_scalar(k)) {
			cfg_err_at(x, k, "%s: mapping keys must be strings, got %s", path_for(path, cut),
			       k->type == YAML_MAPPING_NODE ? "a mapping" : "a list");
			continue;
		}
		const char *key = cfg_sval(k);
		size_t klen = k->data.scalar.length;
		if ((x->text += klen) > CFG_MAX_TEXT) {
			x->too_big = true;
			cfg_err_stop(x, k->start_mark.line + 1, k->start_mark.column + 1, "%s: " TOO_MUCH_TEXT,
			         path_for(path, cut), CFG_MAX_TEXT >> 20);
			json_decref(obj);
			return NULL;
		}
		buf_printf(path, "%s%s", path->len ? "." : "", key);
		if (json_object_getn(obj, key, klen)) {
			cfg_err_at(x, k, "%s: duplicate key", path_for(path, cut));
		} else {
			json_t *j = cfg_to_json(x, v, path, depth + 1);
			if (!j) {
				json_decref(obj);
				return NULL;
			}
			if (json_object_setn_new(obj, key, klen, j) < 0)
				cfg_err_at(x, k, "%s: key is not valid UTF-8", path_for(path, cut));
		}
		path->len = mark;
		path->p[mark] = '\0';
	}
	return obj;
}

/* ---- composing documents from events, bounded ---- */

/* Why not yaml_parser_load: libyaml's loader keeps a document's anchors in a
 * list that it searches at every anchor and alias (100,000 anchors: 14 s),
 * and bounds nothing; and libyaml's scanner spends, on every token, time in
 * proportion to the flow nesting around it (100,000 '[': 13 s), all before
 * the loader returns a document to check. Composing from the parser's
 * events lets each CFG_MAX_ bound stop the parser at the event that crosses
 * it, while the scanner is at most a line ahead, and report it there. The
 * documents made are the loader's: the same nodes, marks, and aliases as
 * references to the anchored node (which may contain itself). */

/* A collection being composed: its node, and in a mapping the key read
 * that waits for its value (0 when none). */
typedef struct frame {
	int node, key;
} frame;

/* The 0-based line and column (in characters) of byte <off> of <text>. */
static void cfg_offset_pos(const char *text, size_t len, size_t off, size_t *line, size_t *col)
{
	*line = *col = 0;
	for (size_t i = 0; i < off && i < len; i++) {
		if (text[i] == '\n')
			++*line, *col = 0;
		else if (((unsigned char)text[i] & 0xc0) != 0x80) /* not a UTF-8 continuation */
			++*col;
	}
}

static void syntax_error(ctx *x, yaml_parser_t *p, const char *text, size_t len)
{
	size_t line = p->problem_mark.line, col = p->problem_mark.column;
	if (p->error == YAML_READER_ERROR) /* the reader gives an offset, not a mark */
		cfg_offset_pos(text, len, p->problem_offset, &line, &col);
	char ctx_[128] = "";
	if (p->context)
		snprintf(ctx_, sizeof ctx_, " (%s at line %zu)", p->context, p->context_mark.line + 1);
	cfg_err_stop(x, line + 1, col + 1, "YAML syntax error: %s%s",
	         p->problem ? p->problem : "cannot parse", ctx_);
}

/* Adds node <idx> to the collection on top of <st> (<depth> frames), or
 * leaves it as the root when there is none (a document's first node is its
 * root). Returns libyaml's 1, or 0 out of memory. */
static int attach(yaml_document_t *doc, frame *st, int depth, int idx)
{
	if (!depth)
		return 1;
	frame *f = &st[depth - 1];
	if (yaml_document_get_node(doc, f->node)->type == YAML_SEQUENCE_NODE)
		return yaml_document_append_sequence_item(doc, f->node, idx);
	if (!f->key) {
		f->key = idx;
		return 1;
	}
	int key = f->key;
	f->key = 0;
	return yaml_document_append_mapping_pair(doc, f->node, key, idx);
}

/* Remembers that <anchor> (from the event, may be NULL) names node <idx>
 * in <anchors> (name -> index). Returns false when reported: YAML wants an
 * anchor defined once in a document, as libyaml's loader does. */
static bool anchor_set(ctx *x, yaml_document_t *doc, json_t *anchors, const yaml_char_t *anchor,
                       int idx, yaml_mark_t m)
{
	if (!anchor)
		return true;
	const char *a = (const char *)anchor;
	json_t *old = json_object_get(anchors, a);
	if (old) {
		yaml_node_t *first = yaml_document_get_node(doc, (int)json_integer_value(old));
		cfg_err_stop(x, m.line + 1, m.column + 1, "YAML syntax error: found duplicate anchor "
		         "'%.64s' (first at line %zu)", a, first ? first->start_mark.line + 1 : 0);
		return false;
	}
	json_object_set_new(anchors, a, json_integer(idx));
	return true;
}

/* Reads the next document of the stream into <doc> (initialised; release it
 * with yaml_document_delete). Returns 1 for a document, 0 at the end of the
 * stream (<doc> untouched), -1 when reading must stop (reported: YAML syntax,
 * a bound, an undefined alias; <doc> untouched). */
static int cfg_compose(ctx *x, yaml_parser_t *p, yaml_document_t *doc, const char *text,
                   size_t len)
{
	yaml_event_t ev;
	for (;;) { /* to the document's start */
		if (!yaml_parser_parse(p, &ev)) {
			syntax_error(x, p, text, len);
			return -1;
		}
		if (ev.type == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			return 0;
		}
		if (ev.type == YAML_DOCUMENT_START_EVENT)
			break;
		yaml_event_delete(&ev); /* the stream's start */
	}
	if (++x->documents > CFG_MAX_DOCUMENTS) {
		cfg_err_stop(x, ev.start_mark.line + 1, ev.start_mark.column + 1,
		         "more than %d documents in the file", CFG_MAX_DOCUMENTS);
		yaml_event_delete(&ev);
		x->too_big = true;
		return -1;
	}
	if (!yaml_document_initialize(doc, NULL, NULL, NULL, ev.data.document_start.implicit, 1)) {
		cfg_err_stop(x, ev.start_mark.line + 1, ev.start_mark.column + 1,
		         "cannot read: out of memory");
		yaml_event_delete(&ev);
		return -1;
	}
	doc->start_mark = ev.start_mark;
	yaml_event_delete(&ev);
	frame st[CFG_MAX_DEPTH];
	int depth = 0;
	json_t *anchors = json_object();
	for (;;) {
		if (!yaml_parser_parse(p, &ev)) {
			syntax_error(x, p, text, len);
			goto fail;
		}
		yaml_mark_t m = ev.start_mark;
		int idx = 0;
		const yaml_char_t *anchor = NULL;
		switch (ev.type) {
		case YAML_DOCUMENT_END_EVENT:
			doc->end_mark = ev.end_mark;
			doc->end_implicit = ev.data.document_end.implicit;
			yaml_event_delete(&ev);
			json_decref(anchors);
			return 1;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			yaml_document_get_node(doc, st[--depth].node)->end_mark = ev.end_mark;
			yaml_event_delete(&ev);
			continue;
		case YAML_ALIAS_EVENT: {
			const char *a = (const char *)ev.data.alias.anchor;
			json_t *to = json_object_get(anchors, a);
			if (!to) {
				cfg_err_stop(x, m.line + 1, m.column + 1, "YAML syntax error: found undefined "
				         "alias '%.64s'", a);
				goto fail_event;
			}
			idx = (int)json_integer_value(to);
			break;
		}
		case YAML_SCALAR_EVENT:
			/* only a "\0" escape makes one; every reader below sees C
			 * strings, which would quietly end there */
			if (memchr(ev.data.scalar.value, 0, ev.data.scalar.length))
				err_mark(x, m, "value contains a NUL character (\\0), which no "
				         "configuration value may");
			anchor = ev.data.scalar.anchor;
			idx = yaml_document_add_scalar(doc, NULL, ev.data.scalar.value,
			                               (int)ev.data.scalar.length, ev.data.scalar.style);
			break;
		case YAML_SEQUENCE_START_EVENT:
			anchor = ev.data.sequence_start.anchor;
			idx = depth < CFG_MAX_DEPTH ? yaml_document_add_sequence(doc, NULL,
			                                  ev.data.sequence_start.style) : -1;
			break;
		case YAML_MAPPING_START_EVENT:
			anchor = ev.data.mapping_start.anchor;
			idx = depth < CFG_MAX_DEPTH ? yaml_document_add_mapping(doc, NULL,
			                                  ev.data.mapping_start.style) : -1;
			break;
		default: /* none other comes inside a document */
			cfg_err_stop(x, m.line + 1, m.column + 1, "YAML syntax error: unexpected event %d",
			         (int)ev.type);
			goto fail_event;
		}
		if (idx < 0) {
			cfg_err_stop(x, m.line + 1, m.column + 1, TOO_DEEP, CFG_MAX_DEPTH);
			x->too_big = true;
			goto fail_event;
		}
		if (++x->composed > CFG_MAX_VALUES) {
			cfg_err_stop(x, m.line + 1, m.column + 1, TOO_MANY_VALUES, CFG_MAX_VALUES);
			x->too_big = true;
			goto fail_event;
		}
		if (!idx) {
			cfg_err_stop(x, m.line + 1, m.column + 1, "cannot read: out of memory");
			goto fail_event;
		}
		if (ev.type != YAML_ALIAS_EVENT) {
			yaml_node_t *n = yaml_document_get_node(doc, idx);
			n->start_mark = ev.start_mark;
			n->end_mark = ev.end_mark;
			/* registered before the collection's items, as the loader
			 * does: an alias inside may name the collection itself */
			if (!anchor_set(x, doc, anchors, anchor, idx, m))
				goto fail_event;
		}
		if (!attach(doc, st, depth, idx)) {
			cfg_err_stop(x, m.line + 1, m.column + 1, "cannot read: out of memory");
			goto fail_event;
		}
		if (ev.type == YAML_SEQUENCE_START_EVENT || ev.type == YAML_MAPPING_START_EVENT)
			st[depth++] = (frame){ idx, 0 };
		yaml_event_delete(&ev);
	}
fail_event:
	yaml_event_delete(&ev);
fail:
	json_decref(anchors);
	yaml_document_delete(doc);
	return -1;
}

/* ---- tables of known keys ---- */

enum { F_NATIVE = 1, F_FLAGGER = 2, F_BOTH = 3 };

typedef struct doc doc;
typedef struct field field;

/* A handler reads the value <val> of key <key> at <path> into <obj>. */
typedef void (*field_fn)(doc *d, const field *f, const char *path, yaml_node_t *key,
                         yaml_node_t *val, void *obj);

struct field {
	const char *key;
	field_fn fn;
	int docs;          /* F_NATIVE, F_FLAGGER or F_BOTH: who knows the key */
	size_t off;        /* where in <obj> the value goes, or NOSTORE */
	long long lo, hi;  /* bounds for integers (and durations, in ms) */
};

/* A key that was present: its key and value nodes. */
typedef struct slot {
	yaml_node_t *key, *val;
} slot;

/* A provider mapping as read, before its type says which keys it needs. */
typedef struct src_in {
	cfg_metric_source s;
	char *type;
} src_in;

/* What is read from one metric before it becomes an eng_metric: the checks
 * that depend on several keys (thresholds need the metric's kind) run after
 * the whole mapping is read. */
typedef struct metric_in {
	eng_metric m;
	double rmin, rmax;   /* thresholdRange */
	double thr;          /* threshold (Flagger's deprecated form) */
	src_in src;          /* provider and query, for custom metrics */
	char *query;
	char *ref_name, *ref_ns; /* templateRef */
	yaml_node_t *ref_key;
} metric_in;

struct doc {
	ctx *x;
	cfg_canary *c;
	yaml_node_t *name_val, *listen_val, *stable_rev_val, *canary_rev_val;
	yaml_node_t *no_strategy; /* analysis key, when it has no steps nor iterations */
};

static const char *const native_routers[] = { "builtin", "haproxy", "istio",
                                              "gatewayapi", "smi" };
static const char *const hook_types[] = { "pre-rollout", "rollout", "confirm-rollout",
                                          "post-rollout", "rollback", "confirm-promotion",
                                          "confirm-traffic-increase", "event" };
static const struct {
	const char *name;
	eng_metric_kind kind;
} builtin_metrics[] = {
	{ "request-success-rate", ENG_M_SUCCESS_RATE },
	{ "request-duration", ENG_M_DURATION },
	{ "error-rate", ENG_M_ERROR_RATE },
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static void list_words(buf *b, const char *const *w, size_t n)
{
	for (size_t i = 0; i < n; i++)
		buf_printf(b, "%s%s", i ? ", " : "", w[i]);
}

/* Optimal string alignment distance, case-insensitive (so that "stepweight"
 * finds "stepWeight"); SIZE_MAX for long strings. */
static size_t edit_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > 64 || lb > 64)
		return SIZE_MAX;
	size_t d[65][65];
	for (size_t i = 0; i <= la; i++)
		d[i][0] = i;
	for (size_t j = 0; j <= lb; j++)
		d[0][j] = j;
	for (size_t i = 1; i <= la; i++)
		for (size_t j = 1; j <= lb; j++) {
			int ca = tolower((unsigned char)a[i - 1]), cb = tolower((unsigned char)b[j - 1]);
			size_t cost = ca != cb;
			size_t v = d[i - 1][j] + 1;
			if (d[i][j - 1] + 1 < v)
				v = d[i][j - 1] + 1;
			if (d[i - 1][j - 1] + cost < v)
				v = d[i - 1][j - 1] + cost;
			if (i > 1 && j > 1 && ca == tolower((unsigned char)b[j - 2]) &&
			    tolower((unsigned char)a[i - 2]) == cb && d[i - 2][j - 2] + 1 < v)
				v = d[i - 2][j - 2] + 1;
			d[i][j] = v;
		}
	return d[la][lb];
}

static void unknown_field(doc *d, const char *path, yaml_node_t *key, const field *t,
                          size_t n)
{
	int mask = d->x->flagger ? F_FLAGGER : F_NATIVE;
	const char *k = cfg_sval(key);
	const char *best = NULL;
	size_t bestd = SIZE_MAX;
	if (cfg_errs_full(d->x)) { /* the message will not be shown */
		cfg_err_at(d->x, key, "unknown field");
		return;
	}
	size_t klen = strlen(k);
	for (size_t i = 0; i < n; i++) {
		if (!(t[i].docs & mask))
			continue;
		size_t len = strlen(t[i].key);
		size_t allowed = len >= 5 ? 2 : len >= 3 ? 1 : 0;
		/* the distance is at least the difference in length */
		if (klen > len + allowed || len > klen + allowed)
			continue;
		size_t dist = edit_distance(k, t[i].key);
		if (dist <= allowed && dist < bestd) {
			best = t[i].key;
			bestd = dist;
		}
	}
	char p[PATH_LEN];
	cfg_join(p, path, k);
	if (best) {
		cfg_err_at(d->x, key, "%s: unknown field; did you mean '%s'?", p, best);
		return;
	}
	buf b = BUF_INIT;
	for (size_t i = 0; i < n; i++)
		if (t[i].docs & mask)
			buf_printf(&b, "%s%s", b.len ? ", " : "", t[i].key);
	cfg_err_at(d->x, key, "%s: unknown field; known fields here: %s", p, b.p ? b.p : "none");
	buf_release(&b);
}

/* Reads mapping <map> at <path> with table <t> (n rows) into <obj>; seen[i]
 * gets the nodes of row i's key when present. Unknown keys are errors in
 * native documents and ignored in Flagger's (Kubernetes prunes them). Returns
 * false (reported) when <map> is not a mapping. */
static bool cfg_walk_map(doc *d, const char *path, yaml_node_t *map, const field *t, size_t n,
                     void *obj, slot *seen)
{
	char got_[64];
	memset(seen, 0, n * sizeof *seen);
	if (!map || map->type != YAML_MAPPING_NODE) {
		cfg_err_at(d->x, map, "%s: must be a mapping, got %s", path, GOT(map));
		return false;
	}
	int mask = d->x->flagger ? F_FLAGGER : F_NATIVE;
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
	     pr < map->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = cfg_node_at(d->x, pr->key), *v = cfg_node_at(d->x, pr->value);
		if (!cfg_is_scalar(k) || !v)
			continue; /* reported by cfg_to_json */
		size_t i = 0;
		while (i < n && !((t[i].docs & mask) && !strcmp(t[i].key, cfg_sval(k))))
			i++;
		if (i == n) {
			if (!d->x->flagger)
				unknown_field(d, path, k, t, n);
			continue;
		}
		if (seen[i].key)
			continue; /* duplicate key, reported by cfg_to_json */
		seen[i].key = k;
		seen[i].val = v;
		char p[PATH_LEN];
		cfg_join(p, path, t[i].key);
		if (t[i].fn)
			t[i].fn(d, &t[i], p, k, v, obj);
	}
	return true;
}

static void *cfg_at(void *obj, const field *f)
{
	return (char *)obj + f->off;
}

/* ---- value readers: 0, or -1 when reported ---- */

/* Why no control characters: names, revisions, URLs, header values and
 * the like end up in log lines, the audit, `canaryctl` output and the
 * dashboard, where a line break forges a log line and an escape sequence
 * drives the reader's terminal. So every string that is one line by nature
 * refuses C0, DEL and C1 (U+0080..U+009F); text that may span lines (a
 * query, a body, an annotation) may also have tabs and line breaks. NUL is
 * refused for every scalar while composing. */

/* Returns true when scalar <v> at <path> has no control character beyond
 * what <text> allows, or reports the first one and its place. */
static bool cfg_controls_ok(doc *d, const char *path, yaml_node_t *v, bool text)
{
	const unsigned char *s = (const unsigned char *)cfg_sval(v);
	size_t chars = 0;
	for (size_t i = 0; s[i]; i++) {
		unsigned c = s[i];
		if ((c & 0xc0) != 0x80)
			chars++;
		if (c == 0xc2 && s[i + 1] >= 0x80 && s[i + 1] <= 0x9f)
			c = s[i + 1]; /* C1, as UTF-8 */
		else if (c >= 0x20 && c != 0x7f)
			continue;
		if (text && (c == '\t' || c == '\n' || c == '\r'))
			continue;
		cfg_err_at(d->x, v, "%s: must not contain control characters%s, found \\x%02x at "
		       "character %zu", path, text ? " other than tabs and line breaks" : "", c,
		       chars);
		return false;
	}
	return true;
}

/* A string of one line, taken from <v> into *out. */
static int cfg_read_string(doc *d, const char *path, yaml_node_t *v, char **out)
{
	char got_[64];
	if (!cfg_is_scalar(v) || cfg_is_null(v)) {
		cfg_err_at(d->x, v, "%s: must be a string, got %s", path, GOT(v));
		return -1;
	}
	if (!cfg_controls_ok(d, path, v, false))
		return -1;
	*out = xstrdup(cfg_sval(v));
	return 0;
}

/* As cfg_read_string, for text that may have tabs and line breaks. */
static int read_text(doc *d, const char *path, yaml_node_t *v, char **out)
{
	char got_[64];
	if (!cfg_is_scalar(v) || cfg_is_null(v)) {
		cfg_err_at(d->x, v, "%s: must be a string, got %s", path, GOT(v));
		return -1;
	}
	if (!cfg_controls_ok(d, path, v, true))
		return -1;
	*out = xstrdup(cfg_sval(v));
	return 0;
}

static int cfg_read_int(doc *d, const char *path, yaml_node_t *v, long long lo, long long hi,
                    int *out)
{
	char got_[64];
	if (cfg_is_plain(v) && cfg_looks_decimal(cfg_sval(v))) {
		errno = 0;
		long long n = strtoll(cfg_sval(v), NULL, 10);
		if (!errno && n >= lo && n <= hi) {
			*out = (int)n;
			return 0;
		}
	}
	if (hi >= INT_MAX)
		cfg_err_at(d->x, v, "%s: must be an integer >= %lld, got %s", path, lo, GOT(v));
	else
		cfg_err_at(d->x, v, "%s: must be an integer from %lld to %lld, got %s", path, lo, hi,
		       GOT(v));
	return -1;
}

/* A number in [lo, hi]; <what> completes "must be a number from LO to HI". */
static int cfg_read_number(doc *d, const char *path, yaml_node_t *v, double lo, double hi,
                       const char *what, double *out)
{
	char got_[64];
	if (cfg_is_plain(v) && (cfg_looks_float(cfg_sval(v)) || cfg_looks_decimal(cfg_sval(v)))) {
		double n = strtod(cfg_sval(v), NULL);
		if (isfinite(n) && n >= lo && n <= hi) {
			*out = n;
			return 0;
		}
	}
	if (isinf(hi))
		cfg_err_at(d->x, v, "%s: must be a number >= %g%s, got %s", path, lo, what, GOT(v));
	else
		cfg_err_at(d->x, v, "%s: must be a number from %g to %g%s, got %s", path, lo, hi, what,
		       GOT(v));
	return -1;
}

static int read_duration(doc *d, const char *path, yaml_node_t *v, long long lo,
                         long long hi, uint64_t *out)
{
	char got_[64];
	uint64_t ms;
	if (cfg_is_scalar(v) && !cfg_is_null(v) && util_parse_duration(cfg_sval(v), &ms) == 0 &&
	    ms >= (uint64_t)lo && ms <= (uint64_t)hi) {
		*out = ms;
		return 0;
	}
	char a[32], b[32];
	util_format_duration((uint64_t)lo, a, sizeof a);
	util_format_duration((uint64_t)hi, b, sizeof b);
	cfg_err_at(d->x, v, "%s: must be a duration from %s to %s (like 500ms, 30s, 1m or 1h30m), "
	       "got %s", path, a, b, GOT(v));
	return -1;
}

static int cfg_read_hostport(doc *d, const char *path, yaml_node_t *v, const char *example,
                         char **out)
{
	char got_[64];
	char host[256];
	int port;
	if (cfg_is_scalar(v) && !cfg_controls_ok(d, path, v, false))
		return -1;
	if (cfg_is_scalar(v) && !cfg_is_null(v) &&
	    util_parse_hostport(cfg_sval(v), host, sizeof host, &port) == 0) {
		*out = xstrdup(cfg_sval(v));
		return 0;
	}
	cfg_err_at(d->x, v, "%s: must be HOST:PORT with a port from 1 to 65535, such as %s, got %s",
	       path, example, GOT(v));
	return -1;
}

static int cfg_read_one_of(doc *d, const char *path, yaml_node_t *v, const char *const *w,
                       size_t n, char **out)
{
	char got_[64];
	if (cfg_is_scalar(v))
		for (size_t i = 0; i < n; i++)
			if (!strcmp(cfg_sval(v), w[i])) {
				*out = xstrdup(w[i]);
				return 0;
			}
	buf b = BUF_INIT;
	list_words(&b, w, n);
	cfg_err_at(d->x, v, "%s: must be one of %s, got %s", path, b.p, GOT(v));
	buf_release(&b);
	return -1;
}

/* ---- generic handlers (the <off> of the row says where the value goes) ---- */

static void cfg_h_int(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                  void *obj)
{
	int n;
	if (cfg_read_int(d, path, v, f->lo, f->hi, &n) == 0 && f->off != NOSTORE)
		*(int *)cfg_at(obj, f) = n;
}

static void cfg_h_duration(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	uint64_t ms;
	if (read_duration(d, path, v, f->lo, f->hi, &ms) == 0 && f->off != NOSTORE)
		*(uint64_t *)cfg_at(obj, f) = ms;
}

static void cfg_h_string(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (f->off == NOSTORE)
		free(s);
	else
		*(char **)cfg_at(obj, f) = s;
}

static void cfg_h_text(doc *d, const field *f, const char *path, yaml_node_t *k,
                   yaml_node_t *v, void *obj)
{
	char *s;
	if (read_text(d, path, v, &s) < 0)
		return;
	if (f->off == NOSTORE)
		free(s);
	else
		*(char **)cfg_at(obj, f) = s;
}

static void cfg_h_bool(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                   void *obj)
{
	char got_[64];
	if (!cfg_is_plain(v) || cfg_bool_value(cfg_sval(v)) < 0)
		cfg_err_at(d->x, v, "%s: must be true or false, got %s", path, GOT(v));
	else if (f->off != NOSTORE)
		*(bool *)cfg_at(obj, f) = cfg_bool_value(cfg_sval(v));
}

static void cfg_h_list(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                   void *obj)
{
	char got_[64];
	if (v->type != YAML_SEQUENCE_NODE)
		cfg_err_at(d->x, v, "%s: must be a list, got %s", path, GOT(v));
}

static void cfg_h_map(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                  void *obj)
{
	char got_[64];
	if (v->type != YAML_MAPPING_NODE)
		cfg_err_at(d->x, v, "%s: must be a mapping, got %s", path, GOT(v));
}

/* A mapping of strings, of one line or of <text>. Stored as a JSON object
 * of strings when <off> says where. */
static void string_map(doc *d, const field *f, const char *path, yaml_node_t *v, void *obj,
                       bool text)
{
	char got_[64];
	if (v->type != YAML_MAPPING_NODE) {
		cfg_err_at(d->x, v, "%s: must be a mapping of strings, got %s", path, GOT(v));
		return;
	}
	json_t *o = json_object();
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start;
	     pr < v->data.mapping.pairs.top; pr++) {
		yaml_node_t *pk = cfg_node_at(d->x, pr->key), *pv = cfg_node_at(d->x, pr->value);
		if (!cfg_is_scalar(pk) || !pv)
			continue;
		char p[PATH_LEN];
		cfg_join(p, path, cfg_sval(pk));
		if (!cfg_controls_ok(d, p, pk, false))
			continue;
		if (!cfg_is_scalar(pv)) {
			cfg_err_at(d->x, pv, "%s: must be a string, got %s", p, GOT(pv));
			continue;
		}
		if (!cfg_controls_ok(d, p, pv, text))
			continue;
		json_t *s = cfg_is_null(pv) ? json_string("")
		                        : json_stringn(cfg_sval(pv), pv->data.scalar.length);
		if (s)
			json_object_setn_new(o, cfg_sval(pk), pk->data.scalar.length, s);
	}
	if (f->off != NOSTORE)
		*(json_t **)cfg_at(obj, f) = o;
	else
		json_decref(o);
}

/* Labels: values of one line. */
static void cfg_h_string_map(doc *d, const field *f, const char *path, yaml_node_t *k,
                         yaml_node_t *v, void *obj)
{
	string_map(d, f, path, v, obj, false);
}

/* Annotations and webhook metadata: values may span lines. */
static void cfg_h_text_map(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	string_map(d, f, path, v, obj, true);
}

/* ---- metadata ---- */

/* Kubernetes' DNS label: [a-z0-9]([-a-z0-9]*[a-z0-9])?, at most 63. */
static bool cfg_valid_name(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || s[0] == '-' || s[n - 1] == '-')
		return false;
	for (size_t i = 0; i < n; i++)
		if (!(islower((unsigned char)s[i]) || isdigit((unsigned char)s[i]) || s[i] == '-'))
			return false;
	return true;
}

static void h_name(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                   void *obj)
{
	char got_[64];
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (!cfg_valid_name(s)) {
		cfg_err_at(d->x, v, "%s: must be 1 to 63 lower case letters, digits or '-', starting "
		       "and ending with a letter or digit, got %s", path, GOT(v));
		free(s);
		return;
	}
	d->c->name = s;
	d->name_val = v;
}

static const field cfg_metadata_fields[] = {
	{ "name", h_name, F_BOTH, NOSTORE, 0, 0 },
	{ "namespace", cfg_h_string, F_BOTH, offsetof(cfg_canary, namespace_), 0, 0 },
	{ "labels", cfg_h_string_map, F_BOTH, NOSTORE, 0, 0 },
	{ "annotations", cfg_h_text_map, F_BOTH, NOSTORE, 0, 0 },
};
enum { M_NAME = 0 };

static void h_metadata(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	slot seen[N_OF(cfg_metadata_fields)];
	if (!cfg_walk_map(d, path, v, cfg_metadata_fields, N_OF(cfg_metadata_fields), d->c, seen))
		return;
	if (!seen[M_NAME].key)
		cfg_err_at(d->x, k, "metadata.name: required (the canary's name)");
}

/* ---- stable and canary targets ---- */

typedef struct target_in {
	char *rev;
	char **eps;
	cfg_pos *pos;
	size_t n;
	yaml_node_t *rev_val;
} target_in;

static void h_revision(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	target_in *t = obj;
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (strlen(s) >= ENG_REV_LEN) {
		cfg_err_at(d->x, v, "%s: must be at most %d characters, got %zu", path,
		       ENG_REV_LEN - 1, strlen(s));
		free(s);
		return;
	}
	t->rev = s;
	t->rev_val = v;
}

static void h_endpoints(doc *d, const field *f, const char *path, yaml_node_t *k,
                        yaml_node_t *v, void *obj)
{
	char got_[64];
	target_in *t = obj;
	if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start) {
		cfg_err_at(d->x, v, "%s: must be a non-empty list of HOST:PORT, got %s", path,
		       v->type == YAML_SEQUENCE_NODE ? "an empty list" : GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	t->eps = xcalloc(n, sizeof *t->eps);
	t->pos = xcalloc(n, sizeof *t->pos);
	json_t *seen = json_object(); /* a set: lists can be as long as the file */
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		char p[PATH_LEN];
		cfg_join_index(p, path, i);
		char *s;
		if (!e || cfg_read_hostport(d, p, e, "127.0.0.1:9001", &s) < 0)
			continue;
		/* the host is an address or a name getaddrinfo may be asked about */
		char host[RSV_HOST_LEN], why[400];
		int port;
		if (rsv_parse(s, host, sizeof host, &port, NULL, why, sizeof why) == RSV_INVALID) {
			cfg_err_at(d->x, e, "%s: %s (an IP address, localhost or a host name such as "
			       "app.internal:9001)", p, why);
			free(s);
			continue;
		}
		if (json_object_get(seen, s)) {
			cfg_err_at(d->x, e, "%s: duplicate endpoint '%s'", p, s);
			free(s);
			continue;
		}
		json_object_set_new(seen, s, json_null());
		t->pos[t->n].line = (int)e->start_mark.line + 1;
		t->pos[t->n].col = (int)e->start_mark.column + 1;
		t->eps[t->n++] = s;
	}
	json_decref(seen);
}

static const field target_fields[] = {
	{ "revision", h_revision, F_NATIVE, NOSTORE, 0, 0 },
	{ "endpoints", h_endpoints, F_NATIVE, NOSTORE, 0, 0 },
};

static void read_target(doc *d, const char *path, yaml_node_t *k, yaml_node_t *v,
                        target_in *t)
{
	slot seen[N_OF(target_fields)];
	if (!cfg_walk_map(d, path, v, target_fields, N_OF(target_fields), t, seen))
		return;
	for (size_t i = 0; i < N_OF(target_fields); i++)
		if (!seen[i].key)
			cfg_err_at(d->x, k, "%s.%s: required", path, target_fields[i].key);
}

static void h_stable(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	target_in t = { 0 };
	read_target(d, path, k, v, &t);
	d->c->stable_rev = t.rev;
	d->c->stable_eps = t.eps;
	d->c->stable_eps_pos = t.pos;
	d->c->n_stable_eps = t.n;
	d->stable_rev_val = t.rev_val;
}

static void h_canary(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	target_in t = { 0 };
	read_target(d, path, k, v, &t);
	d->c->canary_rev = t.rev;
	d->c->canary_eps = t.eps;
	d->c->canary_eps_pos = t.pos;
	d->c->n_canary_eps = t.n;
	d->canary_rev_val = t.rev_val;
}

/* ---- metric sources: provider, query, templateRef ---- */

static void cfg_src_release(cfg_metric_source *s)
{
	free(s->address);
	free(s->query);
	free(s->url);
	free(s->method);
	json_decref(s->headers);
	free(s->body);
	free(s->json_path);
	free(s->template_name);
	memset(s, 0, sizeof *s);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void src_copy(cfg_metric_source *dst, const cfg_metric_source *src)
{
	dst->type = src->type;
	dst->address = dup_or_null(src->address);
	dst->query = dup_or_null(src->query);
	dst->url = dup_or_null(src->url);
	dst->method = dup_or_null(src->method);
	dst->headers = src->headers ? json_deep_copy(src->headers) : NULL;
	dst->body = dup_or_null(src->body);
	dst->json_path = dup_or_null(src->json_path);
	dst->timeout_ms = src->timeout_ms;
	dst->template_name = dup_or_null(src->template_name);
}

/* http:// or https:// and a host. */
static bool url_ok(const char *s)
{
	size_t scheme = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
	return scheme && s[scheme] && s[scheme] != '/';
}

/* A fixed URL (no template): url_ok, and no blanks or control characters. */
static bool cfg_address_ok(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	return url_ok(s);
}

/* The JSON paths a web metric can use: "$", then any of .NAME (letters,
 * digits, _ and -, not starting with a digit or -), [INDEX] and ["KEY"] or
 * ['KEY'] (KEY without that quote). No wildcards, filters or slices: the
 * path names exactly one number. */
static bool json_path_ok(const char *s)
{
	if (*s++ != '$')
		return false;
	while (*s) {
		if (*s == '.') {
			s++;
			if (!isalpha((unsigned char)*s) && *s != '_')
				return false;
			while (isalnum((unsigned char)*s) || *s == '_' || *s == '-')
				s++;
		} else if (*s == '[') {
			s++;
			if (isdigit((unsigned char)*s)) {
				while (isdigit((unsigned char)*s))
					s++;
			} else if (*s == '"' || *s == '\'') {
				char q = *s++;
				const char *start = s;
				while (*s && *s != q)
					s++;
				if (!*s || s == start)
					return false;
				s++;
			} else {
				return false;
			}
			if (*s != ']')
				return false;
			s++;
		} else {
			return false;
		}
	}
	return true;
}

/* Checks the template <s>, the value of node <v> at <path>; false when
 * reported (an unknown variable, an unclosed "{{"). */
static bool check_template(doc *d, const char *path, yaml_node_t *v, const char *s)
{
	char msg[256];
	if (tmpl_check(s, msg, sizeof msg) == 0)
		return true;
	cfg_err_at(d->x, v, "%s: %s", path, msg);
	return false;
}

static void h_method(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	static const char *const methods[] = { "GET", "POST" };
	src_in *si = obj;
	cfg_read_one_of(d, path, v, methods, N_OF(methods), &si->s.method);
}

/* RFC 9110 token characters. */
static bool header_name_ok(const char *s, size_t len)
{
	if (!len || strlen(s) != len)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

/* Reads a mapping of <names> to strings into a new JSON object (NULL when
 * <v> is not a mapping). A name that <name_ok> refuses is reported as
 * "<bad_name>"; a value that is not a string, or that <value_ok> (may be
 * NULL; it reports its own error) refuses, is left out. */
static json_t *cfg_read_string_map(doc *d, const char *path, yaml_node_t *v, const char *names,
                               bool (*name_ok)(const char *, size_t), const char *bad_name,
                               bool (*value_ok)(doc *, const char *, yaml_node_t *))
{
	char got_[64];
	if (v->type != YAML_MAPPING_NODE) {
		cfg_err_at(d->x, v, "%s: must be a mapping of %s to strings, got %s", path, names,
		       GOT(v));
		return NULL;
	}
	json_t *o = json_object();
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start;
	     pr < v->data.mapping.pairs.top; pr++) {
		yaml_node_t *pk = cfg_node_at(d->x, pr->key), *pv = cfg_node_at(d->x, pr->value);
		if (!cfg_is_scalar(pk) || !pv)
			continue;
		char p[PATH_LEN];
		cfg_join(p, path, cfg_sval(pk));
		if (!name_ok(cfg_sval(pk), pk->data.scalar.length)) {
			cfg_err_at(d->x, pk, "%s: %s, got %s", p, bad_name, GOT(pk));
			continue;
		}
		if (!cfg_is_scalar(pv) || cfg_is_null(pv)) {
			cfg_err_at(d->x, pv, "%s: must be a string, got %s", p, GOT(pv));
			continue;
		}
		if (value_ok && !value_ok(d, p, pv))
			continue;
		json_t *js = json_stringn(cfg_sval(pv), pv->data.scalar.length);
		if (js) /* else not UTF-8: reported by cfg_to_json */
			json_object_set_new(o, cfg_sval(pk), js);
	}
	return o;
}

/* A header value: one line, and a template that renders. */
static bool header_value_ok(doc *d, const char *p, yaml_node_t *pv)
{
	return cfg_controls_ok(d, p, pv, false) && check_template(d, p, pv, cfg_sval(pv));
}

/* A value of one line. */
static bool cfg_line_value_ok(doc *d, const char *p, yaml_node_t *pv)
{
	return cfg_controls_ok(d, p, pv, false);
}

/* A web metric's headers: name -> value template. In a Flagger
 * MetricTemplate the key is Flagger's (name -> list of values for its
 * providers): kept in <raw>, not used. */
static void h_headers(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	src_in *si = obj;
	if (d->x->flagger && d->x->in_template && v->type == YAML_MAPPING_NODE)
		return;
	json_t *o = cfg_read_string_map(d, path, v, "header names", header_name_ok,
	                            "not a valid header name", header_value_ok);
	if (!o)
		return;
	json_decref(si->s.headers);
	si->s.headers = o;
}

/* Rows in the order of the P_ enum below. */
static const field provider_fields[] = {
	{ "type", cfg_h_string, F_BOTH, offsetof(src_in, type), 0, 0 },
	{ "address", cfg_h_string, F_BOTH, offsetof(src_in, s.address), 0, 0 },
	{ "timeout", cfg_h_duration, F_BOTH, offsetof(src_in, s.timeout_ms), 100, 300000 },
	{ "url", cfg_h_string, F_BOTH, offsetof(src_in, s.url), 0, 0 },
	{ "method", h_method, F_BOTH, NOSTORE, 0, 0 },
	{ "headers", h_headers, F_BOTH, NOSTORE, 0, 0 },
	{ "body", cfg_h_text, F_BOTH, offsetof(src_in, s.body), 0, 0 },
	{ "jsonPath", cfg_h_string, F_BOTH, offsetof(src_in, s.json_path), 0, 0 },
	/* Flagger's, accepted and ignored (canaryd reads no Kubernetes secrets;
	 * TLS is always verified) */
	{ "secretRef", cfg_h_map, F_BOTH, NOSTORE, 0, 0 },
	{ "insecureSkipVerify", cfg_h_bool, F_BOTH, NOSTORE, 0, 0 },
	{ "region", NULL, F_FLAGGER, NOSTORE, 0, 0 },
};
enum { P_TYPE, P_ADDRESS, P_TIMEOUT, P_URL, P_METHOD, P_HEADERS, P_BODY, P_JSONPATH };

/* Flagger's provider types that canaryd does not speak. */
static const char *const flagger_providers[] = {
	"influxdb", "datadog", "externalmetrics", "stackdriver", "cloudwatch", "newrelic",
	"graphite", "dynatrace", "keptn", "splunk",
};

/* Checks a provider read into <si> (key <pk> at <ppath>, its keys in <ps>)
 * together with its query (<query>, taken; key <qk> and value <qv> at
 * <qpath>, or NULL when absent, in which case a missing query is reported
 * at <qwhere>) and fills si->s. Returns true when all is well. */
static bool finish_source(doc *d, const char *ppath, yaml_node_t *pk, const slot *ps,
                          src_in *si, char *query, const char *qpath, yaml_node_t *qk,
                          yaml_node_t *qv, yaml_node_t *qwhere)
{
	char got_[64];
	char p[PATH_LEN];
	size_t e0 = d->x->errs->n;
	si->s.query = query;
	if (!ps[P_TYPE].key) {
		cfg_err_at(d->x, pk, "%s.type: required (prometheus or web)", ppath);
		return false;
	}
	if (!si->type)
		return false; /* reported by cfg_read_string */
	cfg_join(p, ppath, "type");
	bool prom = !strcmp(si->type, "prometheus"), web = !strcmp(si->type, "web");
	if (!prom && !web) {
		size_t i = 0;
		while (i < N_OF(flagger_providers) && strcmp(flagger_providers[i], si->type))
			i++;
		if (i < N_OF(flagger_providers))
			cfg_err_at(d->x, ps[P_TYPE].val, "%s: provider type '%s' is not supported; use "
			       "prometheus, or a web metric", p, si->type);
		else
			cfg_err_at(d->x, ps[P_TYPE].val, "%s: must be prometheus or web, got %s", p,
			       GOT(ps[P_TYPE].val));
		return false;
	}
	if (web && d->x->flagger && d->x->in_template) {
		cfg_err_at(d->x, ps[P_TYPE].val, "%s: provider type 'web' is canaryd's: use apiVersion "
		       API_NATIVE " for this MetricTemplate", p);
		return false;
	}
	if (prom) {
		si->s.type = CFG_PROVIDER_PROMETHEUS;
		static const int web_only[] = { P_URL, P_METHOD, P_HEADERS, P_BODY, P_JSONPATH };
		for (size_t i = 0; i < N_OF(web_only); i++) {
			int r = web_only[i];
			if (!ps[r].key || (r == P_HEADERS && d->x->flagger && d->x->in_template))
				continue;
			cfg_join(p, ppath, provider_fields[r].key);
			cfg_err_at(d->x, ps[r].key, "%s: only for provider type web", p);
		}
		if (!ps[P_ADDRESS].key)
			cfg_err_at(d->x, pk, "%s.address: required (the Prometheus server, such as "
			       "http://127.0.0.1:9090)", ppath);
		else if (si->s.address && !cfg_address_ok(si->s.address))
			cfg_err_at(d->x, ps[P_ADDRESS].val, "%s.address: must be an http:// or https:// "
			       "URL such as http://127.0.0.1:9090, got %s", ppath,
			       GOT(ps[P_ADDRESS].val));
		if (!qk)
			cfg_err_at(d->x, qwhere, "%s: required with provider type prometheus (the PromQL "
			       "query)", qpath);
		else if (query)
			check_template(d, qpath, qv, query);
		return d->x->errs->n == e0;
	}
	si->s.type = CFG_PROVIDER_WEB;
	if (ps[P_ADDRESS].key) {
		cfg_join(p, ppath, "address");
		cfg_err_at(d->x, ps[P_ADDRESS].key, "%s: only for provider type prometheus (a web "
		       "metric has url)", p);
	}
	if (qk)
		cfg_err_at(d->x, qk, "%s: cannot be used with provider type web (url and jsonPath say "
		       "where the value is)", qpath);
	if (!ps[P_URL].key)
		cfg_err_at(d->x, pk, "%s.url: required (where the value is fetched from)", ppath);
	else if (si->s.url) {
		cfg_join(p, ppath, "url");
		if (!url_ok(si->s.url) || strpbrk(si->s.url, "\r\n"))
			cfg_err_at(d->x, ps[P_URL].val, "%s: must be an http:// or https:// URL, got %s", p,
			       GOT(ps[P_URL].val));
		else
			check_template(d, p, ps[P_URL].val, si->s.url);
	}
	if (!ps[P_JSONPATH].key)
		cfg_err_at(d->x, pk, "%s.jsonPath: required (where the number is in the response, "
		       "such as $.data.value)", ppath);
	else if (si->s.json_path && !json_path_ok(si->s.json_path)) {
		cfg_join(p, ppath, "jsonPath");
		cfg_err_at(d->x, ps[P_JSONPATH].val, "%s: must be a path like $.data.value, "
		       "$.result[0].value or $.x[\"y\"], got %s", p, GOT(ps[P_JSONPATH].val));
	}
	if (!ps[P_METHOD].key)
		si->s.method = xstrdup("GET");
	if (si->s.body) {
		cfg_join(p, ppath, "body");
		if (si->s.method && !strcmp(si->s.method, "GET"))
			cfg_err_at(d->x, ps[P_BODY].key, "%s: needs method POST", p);
		else
			check_template(d, p, ps[P_BODY].val, si->s.body);
	}
	return d->x->errs->n == e0;
}

/* ---- metrics ---- */

static void h_metric_name(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj)
{
	metric_in *mi = obj;
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (strlen(s) >= sizeof mi->m.name) /* cut, it would be another name */
		cfg_err_at(d->x, v, "%s: must be at most %zu characters, got %zu", path,
		       sizeof mi->m.name - 1, strlen(s));
	else
		snprintf(mi->m.name, sizeof mi->m.name, "%s", s);
	free(s);
}

static void h_number(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	double n;
	/* bounds depend on the metric's kind: checked once it is known */
	if (cfg_read_number(d, path, v, -INFINITY, INFINITY, "", &n) == 0)
		*(double *)cfg_at(obj, f) = n;
}

static void h_ref_name(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	char got_[64];
	metric_in *mi = obj;
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (!cfg_valid_name(s)) {
		cfg_err_at(d->x, v, "%s: must be a MetricTemplate's name (lower case letters, digits "
		       "or '-'), got %s", path, GOT(v));
		free(s);
		return;
	}
	mi->ref_name = s;
}

static const field ref_fields[] = {
	{ "name", h_ref_name, F_BOTH, NOSTORE, 0, 0 },
	{ "namespace", cfg_h_string, F_BOTH, offsetof(metric_in, ref_ns), 0, 0 },
};

static const field range_fields[] = {
	{ "min", h_number, F_BOTH, offsetof(metric_in, rmin), 0, 0 },
	{ "max", h_number, F_BOTH, offsetof(metric_in, rmax), 0, 0 },
	{ "relative", cfg_h_bool, F_BOTH, offsetof(metric_in, m.relative), 0, 0 },
};
enum { R_MIN, R_MAX };

static const field baseline_fields[] = {
	{ "window", cfg_h_duration, F_BOTH, offsetof(metric_in, m.baseline_window_ms), 60000,
	  86400000 },
};

static const field metric_fields[] = {
	{ "name", h_metric_name, F_BOTH, NOSTORE, 0, 0 },
	{ "thresholdRange", NULL, F_BOTH, NOSTORE, 0, 0 },   /* read by read_metric */
	{ "threshold", h_number, F_BOTH, offsetof(metric_in, thr), 0, 0 },
	{ "interval", cfg_h_duration, F_BOTH, offsetof(metric_in, m.window_ms), 1000, 30 * 60000 },
	{ "query", cfg_h_text, F_BOTH, offsetof(metric_in, query), 0, 0 },
	{ "templateRef", NULL, F_BOTH, NOSTORE, 0, 0 },      /* read by read_source */
	{ "provider", NULL, F_BOTH, NOSTORE, 0, 0 },         /* read by read_source */
	{ "baseline", NULL, F_BOTH, NOSTORE, 0, 0 },         /* read by read_metric */
	{ "failureDuration", cfg_h_duration, F_BOTH, offsetof(metric_in, m.failure_duration_ms),
	  1000, 3600000 },
	{ "templateVariables", cfg_h_map, F_BOTH, NOSTORE, 0, 0 },
};
enum { MT_NAME, MT_RANGE, MT_THRESHOLD, MT_INTERVAL, MT_QUERY, MT_TEMPLATE, MT_PROVIDER,
       MT_BASELINE };

/* Checks bound <val> (at node <n>, path <path>) for a metric of kind <kind>,
 * absolute or <relative> to stable's value. */
static bool bound_ok(doc *d, const char *path, yaml_node_t *n, eng_metric_kind kind,
                     bool relative, double val)
{
	char got_[64];
	if (kind == ENG_M_CUSTOM)
		return true; /* the provider's unit, whatever it is */
	if (kind == ENG_M_DURATION) {
		if (val >= 0)
			return true;
		cfg_err_at(d->x, n, "%s: must be a number >= 0 (%s), got %s", path,
		       relative ? "a ratio to stable's" : "milliseconds", GOT(n));
		return false;
	}
	if (relative) {
		if (val >= -100 && val <= 100)
			return true;
		cfg_err_at(d->x, n, "%s: must be a number from -100 to 100 (a difference in "
		       "percentage points from stable's), got %s", path, GOT(n));
		return false;
	}
	if (val >= 0 && val <= 100)
		return true;
	cfg_err_at(d->x, n, "%s: must be a number from 0 to 100 (a percentage), got %s", path,
	       GOT(n));
	return false;
}

/* Reads where a custom metric's value comes from: a templateRef, or a
 * provider with its query. Returns true when the metric has a source (read
 * into <mi>, errors reported), false for a built-in metric. */
static bool read_source(doc *d, const char *path, yaml_node_t *v, const slot *seen,
                        metric_in *mi)
{
	char p[PATH_LEN], qp[PATH_LEN];
	const slot *q = &seen[MT_QUERY], *pr = &seen[MT_PROVIDER], *t = &seen[MT_TEMPLATE];
	cfg_join(qp, path, "query");
	if (t->key) {
		cfg_join(p, path, "templateRef");
		if (q->key || pr->key)
			cfg_err_at(d->x, t->key, "%s: cannot be used with query or provider (the "
			       "MetricTemplate has them)", p);
		slot rs[N_OF(ref_fields)];
		if (cfg_walk_map(d, p, t->val, ref_fields, N_OF(ref_fields), mi, rs) && !rs[0].key)
			cfg_err_at(d->x, t->key, "%s.name: required (the MetricTemplate's metadata.name)",
			       p);
		mi->ref_key = t->key;
		return true;
	}
	if (pr->key) {
		cfg_join(p, path, "provider");
		slot ps[N_OF(provider_fields)];
		mi->src.s.timeout_ms = 10000;
		if (cfg_walk_map(d, p, pr->val, provider_fields, N_OF(provider_fields), &mi->src, ps)) {
			char *query = mi->query;
			mi->query = NULL;
			finish_source(d, p, pr->key, ps, &mi->src, query, qp, q->key, q->val, v);
		}
		return true;
	}
	if (q->key) {
		cfg_err_at(d->x, q->key, "%s: query needs provider.address (canaryd has no mesh "
		       "Prometheus to default to): add provider: {type: prometheus, address: "
		       "http://HOST:PORT}, or use a templateRef", path);
		return true;
	}
	return false;
}

/* Reads metric mapping <v> at <path>; returns true when it is valid, in
 * <mi>->m (and, for a custom metric, mi->src or mi->ref_name). */
static bool read_metric(doc *d, const char *path, yaml_node_t *v, metric_in *mi)
{
	slot seen[N_OF(metric_fields)];
	slot rseen[N_OF(range_fields)] = { { 0 } };
	size_t errs0 = d->x->errs->n;
	memset(mi, 0, sizeof *mi);
	mi->m.window_ms = 60000;
	if (!cfg_walk_map(d, path, v, metric_fields, N_OF(metric_fields), mi, seen))
		return false;
	char p[PATH_LEN], rp[PATH_LEN];
	cfg_join(rp, path, "thresholdRange");
	if (seen[MT_RANGE].key)
		cfg_walk_map(d, rp, seen[MT_RANGE].val, range_fields, N_OF(range_fields), mi, rseen);
	if (seen[MT_BASELINE].key) {
		slot bseen[N_OF(baseline_fields)];
		char bp[PATH_LEN];
		cfg_join(bp, path, "baseline");
		cfg_join(p, bp, "window");
		if (cfg_walk_map(d, bp, seen[MT_BASELINE].val, baseline_fields, N_OF(baseline_fields),
		             mi, bseen)) {
			if (!bseen[0].key) {
				cfg_err_at(d->x, seen[MT_BASELINE].key, "%s: required (how far back stable's "
				       "history is read, such as 1h)", p);
			} else if (mi->m.baseline_window_ms &&
			           mi->m.baseline_window_ms <= mi->m.window_ms) {
				char a[32];
				util_format_duration(mi->m.window_ms, a, sizeof a);
				cfg_err_at(d->x, bseen[0].val, "%s: must be longer than the metric's "
				       "interval (%s)", p, a);
			}
		}
	}
	bool custom = read_source(d, path, v, seen, mi);
	if (!seen[MT_NAME].key) {
		if (custom)
			cfg_err_at(d->x, v, "%s.name: required (the metric's name)", path);
		else
			cfg_err_at(d->x, v, "%s.name: required (one of request-success-rate, "
			       "request-duration, error-rate)", path);
		return false;
	}
	if (custom) {
		mi->m.kind = ENG_M_CUSTOM;
	} else {
		size_t kind = 0;
		while (kind < N_OF(builtin_metrics) && strcmp(builtin_metrics[kind].name, mi->m.name))
			kind++;
		if (kind == N_OF(builtin_metrics)) {
			if (mi->m.name[0]) {
				cfg_join(p, path, "name");
				cfg_err_at(d->x, seen[MT_NAME].val, "%s: unknown metric '%s'; built in: "
				       "request-success-rate, request-duration, error-rate (any other "
				       "needs a provider and query, or a templateRef)", p, mi->m.name);
			}
			return false;
		}
		mi->m.kind = builtin_metrics[kind].kind;
	}
	bool rel = mi->m.relative;
	bool has_range = seen[MT_RANGE].key && seen[MT_RANGE].val->type == YAML_MAPPING_NODE;
	if (seen[MT_RANGE].key && seen[MT_THRESHOLD].key && !d->x->flagger) {
		cfg_join(p, path, "threshold");
		cfg_err_at(d->x, seen[MT_THRESHOLD].key, "%s: cannot be used with thresholdRange "
		       "(threshold is Flagger's deprecated form of it)", p);
	} else if (has_range) {
		if (!rseen[R_MIN].key && !rseen[R_MAX].key)
			cfg_err_at(d->x, seen[MT_RANGE].key, "%s: needs min, max or both", rp);
		if (rseen[R_MIN].key) {
			cfg_join(p, rp, "min");
			mi->m.has_min = bound_ok(d, p, rseen[R_MIN].val, mi->m.kind, rel, mi->rmin);
			mi->m.min = mi->rmin;
		}
		if (rseen[R_MAX].key) {
			cfg_join(p, rp, "max");
			mi->m.has_max = bound_ok(d, p, rseen[R_MAX].val, mi->m.kind, rel, mi->rmax);
			mi->m.max = mi->rmax;
		}
		if (mi->m.has_min && mi->m.has_max && mi->m.min > mi->m.max)
			cfg_err_at(d->x, seen[MT_RANGE].key, "%s: min (%g) must not be greater than "
			       "max (%g)", rp, mi->m.min, mi->m.max);
	} else if (seen[MT_THRESHOLD].key) {
		/* Flagger: a minimum for the success rate, a maximum otherwise */
		cfg_join(p, path, "threshold");
		bool ok = bound_ok(d, p, seen[MT_THRESHOLD].val, mi->m.kind, false, mi->thr);
		if (mi->m.kind == ENG_M_SUCCESS_RATE) {
			mi->m.has_min = ok;
			mi->m.min = mi->thr;
		} else {
			mi->m.has_max = ok;
			mi->m.max = mi->thr;
		}
	} else if (!seen[MT_RANGE].key) {
		cfg_err_at(d->x, v, "%s: needs thresholdRange (min, max or both) or threshold", path);
	}
	return d->x->errs->n == errs0;
}

static void metric_in_release(metric_in *mi)
{
	cfg_src_release(&mi->src.s);
	free(mi->src.type);
	free(mi->query);
	free(mi->ref_name);
	free(mi->ref_ns);
	memset(mi, 0, sizeof *mi);
}

static void cfg_h_metrics(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	char got_[64];
	eng_policy *p = obj;
	if (v->type != YAML_SEQUENCE_NODE) {
		cfg_err_at(d->x, v, "%s: must be a list of metrics, got %s", path, GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > ENG_MAX_METRICS) {
		cfg_err_at(d->x, k, "%s: at most %d metrics, got %zu", path, ENG_MAX_METRICS, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		if (!e)
			continue;
		char ip[PATH_LEN];
		cfg_join_index(ip, path, i);
		metric_in mi;
		int idx = -1;
		if (read_metric(d, ip, e, &mi)) {
			idx = p->n_metrics++;
			p->metrics[idx] = mi.m;
			d->c->sources[idx] = mi.src.s; /* taken */
			memset(&mi.src.s, 0, sizeof mi.src.s);
		}
		if (mi.ref_name && mi.ref_key) {
			/* resolved when every document is read */
			ctx *x = d->x;
			cfg_grow(&x->refs, x->n_refs, &x->refs_cap, sizeof *x->refs);
			tmpl_ref *r = &x->refs[x->n_refs++];
			memset(r, 0, sizeof *r);
			r->canary = x->canary;
			r->metric = idx;
			r->name = mi.ref_name;
			r->namespace_ = mi.ref_ns;
			mi.ref_name = mi.ref_ns = NULL;
			r->line = mi.ref_key->start_mark.line + 1;
			r->col = mi.ref_key->start_mark.column + 1;
			cfg_join(r->path, ip, "templateRef");
		}
		metric_in_release(&mi);
	}
}

/* ---- webhooks ---- */

static void h_hook_type(doc *d, const field *f, const char *path, yaml_node_t *k,
                        yaml_node_t *v, void *obj)
{
	cfg_webhook *w = obj;
	cfg_read_one_of(d, path, v, hook_types, N_OF(hook_types), &w->type);
}

static void h_hook_url(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	char got_[64];
	cfg_webhook *w = obj;
	if (cfg_is_scalar(v) && !cfg_controls_ok(d, path, v, false))
		return;
	if (cfg_is_scalar(v) && cfg_address_ok(cfg_sval(v))) {
		w->url = xstrdup(cfg_sval(v));
		return;
	}
	cfg_err_at(d->x, v, "%s: must be an http:// or https:// URL, got %s", path, GOT(v));
}

static const field hook_fields[] = {
	{ "name", cfg_h_string, F_BOTH, offsetof(cfg_webhook, name), 0, 0 },
	{ "type", h_hook_type, F_BOTH, NOSTORE, 0, 0 },
	{ "url", h_hook_url, F_BOTH, NOSTORE, 0, 0 },
	{ "timeout", cfg_h_duration, F_BOTH, offsetof(cfg_webhook, timeout_ms), 100, 3600000 },
	{ "metadata", cfg_h_text_map, F_BOTH, offsetof(cfg_webhook, metadata), 0, 0 },
};
enum { W_NAME, W_TYPE, W_URL };

static void h_webhooks(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	char got_[64];
	cfg_canary *c = d->c;
	if (v->type != YAML_SEQUENCE_NODE) {
		cfg_err_at(d->x, v, "%s: must be a list of webhooks, got %s", path, GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	c->webhooks = xcalloc(n, sizeof *c->webhooks);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		if (!e)
			continue;
		char ip[PATH_LEN];
		cfg_join_index(ip, path, i);
		cfg_webhook *w = &c->webhooks[c->n_webhooks++];
		w->timeout_ms = 60000;
		slot seen[N_OF(hook_fields)];
		if (!cfg_walk_map(d, ip, e, hook_fields, N_OF(hook_fields), w, seen))
			continue;
		if (!seen[W_NAME].key)
			cfg_err_at(d->x, e, "%s.name: required", ip);
		if (!seen[W_URL].key)
			cfg_err_at(d->x, e, "%s.url: required (where the webhook is posted)", ip);
		if (!seen[W_TYPE].key)
			w->type = xstrdup("rollout"); /* Flagger's default */
	}
}

/* ---- analysis ---- */

static void h_step_weights(doc *d, const field *f, const char *path, yaml_node_t *k,
                           yaml_node_t *v, void *obj)
{
	char got_[64];
	eng_policy *p = obj;
	if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start) {
		cfg_err_at(d->x, v, "%s: must be a non-empty list of integers from 1 to 100, got %s",
		       path, v->type == YAML_SEQUENCE_NODE ? "an empty list" : GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > ENG_MAX_STEPS) {
		cfg_err_at(d->x, v, "%s: at most %d steps, got %zu", path, ENG_MAX_STEPS, n);
		return;
	}
	int prev = 0;
	bool ok = true;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		char ip[PATH_LEN];
		cfg_join_index(ip, path, i);
		int w;
		if (!e || cfg_read_int(d, ip, e, 1, 100, &w) < 0) {
			ok = false;
			continue;
		}
		if (w <= prev) {
			cfg_err_at(d->x, e, "%s: steps must be strictly ascending: %d is not greater than "
			       "the step before it (%d)", ip, w, prev);
			ok = false;
		}
		p->step_weights[i] = w;
		prev = w > prev ? w : prev;
	}
	if (ok)
		p->n_step_weights = (int)n;
}

static void h_judge(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj)
{
	static const char *const judges[] = { "threshold", "sequential" };
	eng_policy *p = obj;
	char *s;
	if (cfg_read_one_of(d, path, v, judges, N_OF(judges), &s) < 0)
		return;
	p->judge = strcmp(s, "sequential") ? ENG_JUDGE_THRESHOLD : ENG_JUDGE_SEQUENTIAL;
	free(s);
}

/* 0 < alpha < 0.5: at 0.5 or more the test would roll back a canary as good
 * as stable as often as not. */
static void h_alpha(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj)
{
	char got_[64];
	eng_policy *p = obj;
	if (cfg_is_plain(v) && (cfg_looks_float(cfg_sval(v)) || cfg_looks_decimal(cfg_sval(v)))) {
		double a = strtod(cfg_sval(v), NULL);
		if (isfinite(a) && a > 0 && a < 0.5) {
			p->alpha = a;
			return;
		}
	}
	cfg_err_at(d->x, v, "%s: must be a number greater than 0 and less than 0.5 (the chance of "
	       "rolling back a canary as good as stable, such as 0.01), got %s", path, GOT(v));
}

static void h_min_samples(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj)
{
	eng_policy *p = obj;
	int n;
	if (cfg_read_int(d, path, v, 1, INT_MAX, &n) == 0)
		p->min_samples = (uint64_t)n;
}

/* The sequential judge's non-inferiority margin, in percentage points of
 * error rate (0.5 means the canary may fail 0.5 points more than stable). */
static void h_error_margin(doc *d, const field *f, const char *path, yaml_node_t *k,
                           yaml_node_t *v, void *obj)
{
	eng_policy *p = obj;
	double m;
	if (cfg_read_number(d, path, v, 0.01, 50, " (percentage points)", &m) == 0)
		p->judge_margin = m / 100.0;
}

/* How many times slower than stable the canary may be before the latency
 * test calls it worse; 0 turns the latency test off. */
static void h_latency_ratio(doc *d, const field *f, const char *path, yaml_node_t *k,
                            yaml_node_t *v, void *obj)
{
	eng_policy *p = obj;
	double r;
	if (cfg_read_number(d, path, v, 0, 100, " (1 or more, or 0 for off)", &r) == 0) {
		if (r != 0 && r < 1)
			cfg_err_at(d->x, v, "%s: must be 0 (off) or at least 1, got %g", path, r);
		else
			p->judge_latency_ratio = r;
	}
}

static const field analysis_fields[] = {
	{ "interval", cfg_h_duration, F_BOTH, offsetof(eng_policy, interval_ms), 100, 86400000 },
	{ "threshold", cfg_h_int, F_BOTH, offsetof(eng_policy, threshold), 1, INT_MAX },
	{ "maxWeight", cfg_h_int, F_BOTH, offsetof(eng_policy, max_weight), 1, 100 },
	{ "stepWeight", cfg_h_int, F_BOTH, offsetof(eng_policy, step_weight), 1, 100 },
	{ "stepWeights", h_step_weights, F_BOTH, NOSTORE, 0, 0 },
	{ "iterations", cfg_h_int, F_BOTH, offsetof(eng_policy, iterations), 1, INT_MAX },
	{ "metrics", cfg_h_metrics, F_BOTH, NOSTORE, 0, 0 },
	{ "webhooks", h_webhooks, F_BOTH, NOSTORE, 0, 0 },
	/* Flagger's, accepted and kept in <raw>; not interpreted yet */
	{ "match", cfg_h_list, F_BOTH, NOSTORE, 0, 0 },
	{ "mirror", cfg_h_bool, F_BOTH, NOSTORE, 0, 0 },
	{ "mirrorWeight", cfg_h_int, F_BOTH, NOSTORE, 0, 100 },
	{ "primaryReadyThreshold", cfg_h_int, F_BOTH, NOSTORE, 0, 100 },
	{ "canaryReadyThreshold", cfg_h_int, F_BOTH, NOSTORE, 0, 100 },
	{ "alerts", cfg_h_list, F_BOTH, NOSTORE, 0, 0 },
	{ "sessionAffinity", cfg_h_map, F_BOTH, NOSTORE, 0, 0 },
	{ "stepWeightPromotion", cfg_h_int, F_BOTH, NOSTORE, 1, 100 },
	/* canaryd's */
	{ "judge", h_judge, F_BOTH, NOSTORE, 0, 0 },
	{ "alpha", h_alpha, F_BOTH, NOSTORE, 0, 0 },
	{ "minSamples", h_min_samples, F_BOTH, NOSTORE, 0, 0 },
	{ "errorMargin", h_error_margin, F_BOTH, NOSTORE, 0, 0 },
	{ "latencyRatio", h_latency_ratio, F_BOTH, NOSTORE, 0, 0 },
};
enum { A_INTERVAL, A_THRESHOLD, A_MAX_WEIGHT, A_STEP_WEIGHT, A_STEP_WEIGHTS, A_ITERATIONS };

static void h_analysis(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	eng_policy *p = &d->c->policy;
	slot seen[N_OF(analysis_fields)];
	if (!cfg_walk_map(d, path, v, analysis_fields, N_OF(analysis_fields), p, seen))
		return;
	bool steps = seen[A_STEP_WEIGHT].key || seen[A_STEP_WEIGHTS].key;
	if (seen[A_STEP_WEIGHT].key && seen[A_STEP_WEIGHTS].key)
		cfg_err_at(d->x, seen[A_STEP_WEIGHTS].key, "%s: stepWeight and stepWeights cannot be "
		       "used together; use one", path);
	if (!steps && !seen[A_ITERATIONS].key)
		d->no_strategy = k; /* decided in h_spec, which knows the provider */
	if (steps && seen[A_ITERATIONS].key) {
		if (!d->x->flagger)
			cfg_err_at(d->x, seen[A_ITERATIONS].key, "%s.iterations: cannot be used with "
			       "stepWeight or stepWeights (iterations means blue/green or A/B "
			       "testing, which has no steps)", path);
		/* Flagger runs blue/green or A/B when iterations is set, whatever
		 * the steps say */
		p->step_weight = 0;
		p->n_step_weights = 0;
	}
	/* Flagger: with stepWeights the last step is the maximum weight */
	if (p->n_step_weights > 0)
		p->max_weight = p->step_weights[p->n_step_weights - 1];
}

/* ---- spec ---- */

static void h_router(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	cfg_read_one_of(d, path, v, native_routers, N_OF(native_routers), &d->c->router);
}

static void h_listen(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	if (cfg_read_hostport(d, path, v, "127.0.0.1:8080", &d->c->listen) == 0)
		d->listen_val = v;
}

static void h_deadline(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	int s;
	if (cfg_read_int(d, path, v, 1, INT_MAX, &s) == 0)
		d->c->policy.progress_deadline_ms = (uint64_t)s * 1000;
}

static const field timeout_fields[] = {
	{ "connect", cfg_h_duration, F_NATIVE, offsetof(cfg_timeouts, connect_ms), 1, 86400000 },
	{ "response", cfg_h_duration, F_NATIVE, offsetof(cfg_timeouts, response_ms), 1, 86400000 },
	{ "clientHead", cfg_h_duration, F_NATIVE, offsetof(cfg_timeouts, client_head_ms), 1, 86400000 },
	{ "clientIdle", cfg_h_duration, F_NATIVE, offsetof(cfg_timeouts, client_idle_ms), 1, 86400000 },
};

static void h_timeouts(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	slot seen[N_OF(timeout_fields)];
	cfg_walk_map(d, path, v, timeout_fields, N_OF(timeout_fields), &d->c->proxy.timeouts, seen);
}

static const field limit_fields[] = {
	{ "maxConnections", cfg_h_int, F_NATIVE, offsetof(cfg_proxy, max_connections), 1, 1000000 },
};

static void h_limits(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	slot seen[N_OF(limit_fields)];
	cfg_walk_map(d, path, v, limit_fields, N_OF(limit_fields), &d->c->proxy, seen);
}

static const field outlier_fields[] = {
	{ "consecutiveErrors", cfg_h_int, F_NATIVE, offsetof(cfg_proxy, outlier_errors), 0, 1000 },
	{ "ejectionTime", cfg_h_duration, F_NATIVE, offsetof(cfg_proxy, outlier_ejection_ms), 1, 86400000 },
};

static void h_outliers(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	slot seen[N_OF(outlier_fields)];
	cfg_walk_map(d, path, v, outlier_fields, N_OF(outlier_fields), &d->c->proxy, seen);
}

/* Prometheus' label names. */
static bool label_name_ok(const char *s, size_t len)
{
	if (!len || strlen(s) != len || isdigit((unsigned char)s[0]))
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && *s != '_')
			return false;
	return true;
}

/* spec.alerts.matchers: label name -> value, all of which a firing alert
 * must have to fail the rollout. */
static void h_matchers(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	cfg_canary *c = obj;
	size_t e0 = d->x->errs->n;
	json_t *o = cfg_read_string_map(d, path, v, "label names", label_name_ok,
	                            "not a label name (letters, digits and _, not starting "
	                            "with a digit)", cfg_line_value_ok);
	if (!o)
		return;
	if (!json_object_size(o) && d->x->errs->n == e0)
		cfg_err_at(d->x, v, "%s: needs at least one label (no labels would match every "
		       "alert)", path);
	json_decref(c->alert_matchers);
	c->alert_matchers = o;
}

static const field alert_fields[] = {
	{ "matchers", h_matchers, F_BOTH, NOSTORE, 0, 0 },
};

static void h_alerts(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	slot seen[N_OF(alert_fields)];
	cfg_walk_map(d, path, v, alert_fields, N_OF(alert_fields), d->c, seen);
}

/* spec.dns: how host names in endpoints are kept resolved (resolve.h).
 * At least 1s: every canary refreshes each of its names on this period,
 * and a DNS server should not see a query storm from a typo'd interval. */
static const field dns_fields[] = {
	{ "refresh", cfg_h_duration, F_NATIVE, offsetof(cfg_canary, dns_refresh_ms), 1000, 86400000 },
};

static void h_dns(doc *d, const field *f, const char *path, yaml_node_t *k,
                  yaml_node_t *v, void *obj)
{
	slot seen[N_OF(dns_fields)];
	cfg_walk_map(d, path, v, dns_fields, N_OF(dns_fields), d->c, seen);
}

static const field spec_fields[] = {
	{ "router", h_router, F_NATIVE, NOSTORE, 0, 0 },
	{ "listen", h_listen, F_NATIVE, NOSTORE, 0, 0 },
	{ "stable", h_stable, F_NATIVE, NOSTORE, 0, 0 },
	{ "canary", h_canary, F_NATIVE, NOSTORE, 0, 0 },
	{ "timeouts", h_timeouts, F_NATIVE, NOSTORE, 0, 0 },
	{ "provider", cfg_h_string, F_FLAGGER, offsetof(cfg_canary, router), 0, 0 },
	{ "progressDeadlineSeconds", h_deadline, F_BOTH, NOSTORE, 0, 0 },
	{ "analysis", h_analysis, F_BOTH, NOSTORE, 0, 0 },
	{ "workers", cfg_h_int, F_NATIVE, offsetof(cfg_canary, proxy.workers), 1, 64 },
	{ "limits", h_limits, F_NATIVE, NOSTORE, 0, 0 },
	{ "outlierDetection", h_outliers, F_NATIVE, NOSTORE, 0, 0 },
	{ "alerts", h_alerts, F_BOTH, NOSTORE, 0, 0 },
	{ "dns", h_dns, F_NATIVE, NOSTORE, 0, 0 },
};
enum { S_ROUTER, S_LISTEN, S_STABLE, S_CANARY, S_TIMEOUTS, S_PROVIDER, S_DEADLINE,
       S_ANALYSIS };

static void h_spec(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                   void *obj)
{
	cfg_canary *c = d->c;
	slot seen[N_OF(spec_fields)];
	if (!cfg_walk_map(d, path, v, spec_fields, N_OF(spec_fields), c, seen))
		return;
	if (!seen[S_ANALYSIS].key)
		cfg_err_at(d->x, k, "spec.analysis: required (how the canary is analysed: interval, "
		       "threshold, stepWeight, metrics...)");
	if (d->x->flagger && !c->router)
		c->router = xstrdup("istio"); /* Flagger's default mesh provider */
	if (d->no_strategy) {
		/* Flagger's kubernetes provider has no traffic split: it runs
		 * blue/green with 10 iterations unless told otherwise */
		if (d->x->flagger && !strcmp(c->router, "kubernetes"))
			c->policy.iterations = 10;
		else
			cfg_err_at(d->x, d->no_strategy, "spec.analysis: one of stepWeight, stepWeights "
			       "or iterations is required");
	}
	if (d->x->flagger)
		return;
	if (!c->router && !seen[S_ROUTER].key)
		c->router = xstrdup("builtin");
	if (!seen[S_STABLE].key)
		cfg_err_at(d->x, k, "spec.stable: required (the revision and endpoints that get "
		       "traffic by default)");
	if (c->router && !strcmp(c->router, "builtin") && !seen[S_LISTEN].key)
		cfg_err_at(d->x, k, "spec.listen: required with router builtin (HOST:PORT where "
		       "clients connect, such as 127.0.0.1:8080)");
	if (c->stable_rev && c->canary_rev && !strcmp(c->stable_rev, c->canary_rev))
		cfg_err_at(d->x, d->canary_rev_val, "spec.canary.revision: must differ from "
		       "spec.stable.revision ('%s')", c->stable_rev);
}

static const field top_fields[] = {
	{ "apiVersion", NULL, F_BOTH, NOSTORE, 0, 0 }, /* checked first */
	{ "kind", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "metadata", h_metadata, F_BOTH, NOSTORE, 0, 0 },
	{ "spec", h_spec, F_BOTH, NOSTORE, 0, 0 },
};
enum { T_API, T_KIND, T_METADATA, T_SPEC };

/* ---- documents ---- */

static yaml_node_t *map_get(ctx *x, yaml_node_t *map, const char *key)
{
	for (yaml_node_pair_t *pr = map->data.mapping.pairs.start;
	     pr < map->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = cfg_node_at(x, pr->key);
		if (cfg_is_scalar(k) && !strcmp(cfg_sval(k), key))
			return cfg_node_at(x, pr->value);
	}
	return NULL;
}

static void cfg_canary_release(cfg_canary *c)
{
	free(c->name);
	free(c->namespace_);
	free(c->router);
	free(c->listen);
	free(c->stable_rev);
	for (size_t i = 0; i < c->n_stable_eps; i++)
		free(c->stable_eps[i]);
	free(c->stable_eps);
	free(c->stable_eps_pos);
	free(c->canary_rev);
	for (size_t i = 0; i < c->n_canary_eps; i++)
		free(c->canary_eps[i]);
	free(c->canary_eps);
	free(c->canary_eps_pos);
	for (size_t i = 0; i < c->n_webhooks; i++) {
		free(c->webhooks[i].name);
		free(c->webhooks[i].type);
		free(c->webhooks[i].url);
		json_decref(c->webhooks[i].metadata);
	}
	free(c->webhooks);
	for (size_t i = 0; i < ENG_MAX_METRICS; i++)
		cfg_src_release(&c->sources[i]);
	json_decref(c->alert_matchers);
	json_decref(c->raw);
	memset(c, 0, sizeof *c);
}

/* Do two listen addresses clash? A wildcard host clashes with any host on
 * the same port, as bind(2) would say. */
static bool same_listen(const char *a, const char *b)
{
	char ha[256], hb[256];
	int pa, pb;
	if (util_parse_hostport(a, ha, sizeof ha, &pa) < 0 ||
	    util_parse_hostport(b, hb, sizeof hb, &pb) < 0 || pa != pb)
		return false;
	bool wa = !strcmp(ha, "0.0.0.0") || !strcmp(ha, "::") || !strcmp(ha, "*");
	bool wb = !strcmp(hb, "0.0.0.0") || !strcmp(hb, "::") || !strcmp(hb, "*");
	return wa || wb || !strcasecmp(ha, hb);
}

/* ---- MetricTemplate documents ---- */

static const field tmpl_top_fields[] = {
	{ "apiVersion", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "kind", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "metadata", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "spec", NULL, F_BOTH, NOSTORE, 0, 0 },
};

static const field tmpl_spec_fields[] = {
	{ "provider", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "query", cfg_h_text, F_BOTH, 0, 0, 0 }, /* into a char * */
};

/* Reads MetricTemplate document <root> (starting at line <line>) into
 * x->defs, for the templateRefs resolved at the end. */
static void cfg_load_template(ctx *x, yaml_node_t *root, int line)
{
	cfg_canary meta;
	memset(&meta, 0, sizeof meta);
	doc d = { .x = x, .c = &meta };
	size_t e0 = x->errs->n;
	x->in_template = true;
	slot seen[N_OF(tmpl_top_fields)];
	cfg_walk_map(&d, "", root, tmpl_top_fields, N_OF(tmpl_top_fields), NULL, seen);
	if (!seen[T_METADATA].key) {
		cfg_err_at(x, root, "metadata: required (with the MetricTemplate's name)");
	} else {
		slot ms[N_OF(cfg_metadata_fields)];
		if (cfg_walk_map(&d, "metadata", seen[T_METADATA].val, cfg_metadata_fields,
		             N_OF(cfg_metadata_fields), &meta, ms) && !ms[M_NAME].key)
			cfg_err_at(x, seen[T_METADATA].key, "metadata.name: required (what a metric's "
			       "templateRef.name names)");
	}
	src_in si;
	memset(&si, 0, sizeof si);
	si.s.timeout_ms = 10000;
	char *query = NULL;
	if (!seen[T_SPEC].key) {
		cfg_err_at(x, root, "spec: required (provider and query)");
	} else {
		slot ss[N_OF(tmpl_spec_fields)];
		if (cfg_walk_map(&d, "spec", seen[T_SPEC].val, tmpl_spec_fields, N_OF(tmpl_spec_fields),
		             &query, ss)) {
			slot ps[N_OF(provider_fields)];
			if (!ss[0].key)
				cfg_err_at(x, seen[T_SPEC].key, "spec.provider: required (type and address)");
			else if (cfg_walk_map(&d, "spec.provider", ss[0].val, provider_fields,
			                  N_OF(provider_fields), &si, ps)) {
				finish_source(&d, "spec.provider", ss[0].key, ps, &si, query, "spec.query",
				              ss[1].key, ss[1].val, seen[T_SPEC].key);
				query = NULL; /* taken */
			}
		}
	}
	free(query);
	free(si.type);
	x->in_template = false;
	if (!meta.name) {
		cfg_src_release(&si.s);
		free(meta.namespace_);
		return;
	}
	for (size_t i = 0; i < x->n_defs; i++) {
		const tmpl_def *o = &x->defs[i];
		bool same_ns = !o->namespace_ == !meta.namespace_ &&
		               (!o->namespace_ || !strcmp(o->namespace_, meta.namespace_));
		if (!strcmp(o->name, meta.name) && same_ns) {
			cfg_err_at(x, d.name_val, "metadata.name: duplicate MetricTemplate name '%s' (also "
			       "the document at line %d)", meta.name, o->line);
			break;
		}
	}
	cfg_grow(&x->defs, x->n_defs, &x->defs_cap, sizeof *x->defs);
	x->defs[x->n_defs++] = (tmpl_def){ .name = meta.name, .namespace_ = meta.namespace_,
	                                   .src = si.s, .ok = x->errs->n == e0, .line = line };
}

/* The MetricTemplate a templateRef names: same name, and same namespace
 * when both say one. */
static const tmpl_def *find_template(const ctx *x, const tmpl_ref *r)
{
	for (size_t i = 0; i < x->n_defs; i++) {
		const tmpl_def *t = &x->defs[i];
		if (!strcmp(t->name, r->name) &&
		    (!r->namespace_ || !t->namespace_ || !strcmp(r->namespace_, t->namespace_)))
			return t;
	}
	return NULL;
}

/* Gives each templateRef its template's source, or reports it (unless the
 * file could not be read to its end: the template may be past the syntax
 * error). Frees x->refs and x->defs. */
static void cfg_resolve_templates(ctx *x, cfg *c, bool complete)
{
	for (size_t i = 0; i < x->n_refs; i++) {
		tmpl_ref *r = &x->refs[i];
		const tmpl_def *t = find_template(x, r);
		if (!t && complete) {
			buf b = BUF_INIT; /* the first ten: a message stays a line */
			for (size_t j = 0; j < x->n_defs && j < 10; j++) {
				buf_printf(&b, "%s%s", j ? ", " : "", x->defs[j].name);
				if (r->namespace_ && x->defs[j].namespace_)
					buf_printf(&b, " (namespace %.64s)", x->defs[j].namespace_);
			}
			if (x->n_defs > 10)
				buf_printf(&b, " and %zu more", x->n_defs - 10);
			char ns[128] = "";
			if (r->namespace_)
				snprintf(ns, sizeof ns, " in namespace '%.64s'", r->namespace_);
			cfg_err_pos(x, r->line, r->col, "%s: no MetricTemplate named '%s'%s in this file; "
			        "%s%s", r->path, r->name, ns, b.len ? "there are: " : "there are none",
			        b.len ? b.p : "");
			buf_release(&b);
		} else if (t && t->ok && r->metric >= 0 && r->canary < c->n_canaries) {
			cfg_metric_source *s = &c->canaries[r->canary].sources[r->metric];
			cfg_src_release(s);
			src_copy(s, &t->src);
			s->template_name = xstrdup(t->name);
		}
		free(r->name);
		free(r->namespace_);
	}
	free(x->refs);
	x->refs = NULL;
	x->n_refs = x->refs_cap = 0;
	for (size_t i = 0; i < x->n_defs; i++) {
		free(x->defs[i].name);
		free(x->defs[i].namespace_);
		cfg_src_release(&x->defs[i].src);
	}
	free(x->defs);
	x->defs = NULL;
	x->n_defs = x->defs_cap = 0;
}

/* Validates one document (root <root>, not empty) and appends it to <out>,
 * or keeps it in x->defs when it is a MetricTemplate. Returns false for a
 * MetricTemplate (not counted as a Canary), true otherwise. */
static bool cfg_load_document(ctx *x, yaml_document_t *ydoc, yaml_node_t *root, cfg *out)
{
	char got_[64];
	cfg_canary c;
	memset(&c, 0, sizeof c);
	c.line = (int)ydoc->start_mark.line + 1;
	x->doc = ydoc;
	buf path = BUF_INIT;
	buf_puts(&path, "");
	c.raw = cfg_to_json(x, root, &path, 0);
	buf_release(&path);
	if (!c.raw)
		return true;
	if (root->type != YAML_MAPPING_NODE) {
		cfg_err_at(x, root, "document must be a mapping (a Canary), got %s", GOT(root));
		cfg_canary_release(&c);
		return true;
	}
	yaml_node_t *kind = map_get(x, root, "kind");
	yaml_node_t *api = map_get(x, root, "apiVersion");
	bool ok = true;
	bool is_template = kind && cfg_is_scalar(kind) && !strcmp(cfg_sval(kind), "MetricTemplate");
	if (!is_template && (!kind || !cfg_is_scalar(kind) || strcmp(cfg_sval(kind), "Canary"))) {
		cfg_err_at(x, kind ? kind : root, "kind must be Canary or MetricTemplate, got %s",
		       GOT(kind));
		ok = false;
	}
	bool native = api && cfg_is_scalar(api) && !strcmp(cfg_sval(api), API_NATIVE);
	bool flagger = api && cfg_is_scalar(api) && !strcmp(cfg_sval(api), API_FLAGGER);
	if (!native && !flagger) {
		cfg_err_at(x, api ? api : root, "apiVersion: must be " API_NATIVE " or " API_FLAGGER
		       ", got %s", GOT(api));
		ok = false;
	}
	if (!ok || is_template) {
		x->flagger = flagger;
		if (ok)
			cfg_load_template(x, root, c.line);
		cfg_canary_release(&c);
		return !is_template;
	}
	x->flagger = flagger;
	c.flagger = flagger;
	x->canary = out->n_canaries;
	eng_policy_defaults(&c.policy);
	c.policy.judge = ENG_JUDGE_THRESHOLD;
	c.policy.alpha = 0.01;
	c.policy.min_samples = 100;
	c.proxy.timeouts.connect_ms = 5000;
	c.proxy.timeouts.response_ms = 30000;
	c.proxy.timeouts.client_head_ms = 10000;
	c.proxy.timeouts.client_idle_ms = 60000;
	c.proxy.workers = 1;
	c.proxy.max_connections = 10000;
	c.proxy.outlier_errors = 5;
	c.proxy.outlier_ejection_ms = 30000;
	c.dns_refresh_ms = 30000;
	doc d = { .x = x, .c = &c };
	slot seen[N_OF(top_fields)];
	cfg_walk_map(&d, "", root, top_fields, N_OF(top_fields), &c, seen);
	if (!seen[T_METADATA].key)
		cfg_err_at(x, root, "metadata: required (with the canary's name)");
	if (!seen[T_SPEC].key)
		cfg_err_at(x, root, "spec: required");

	/* each clash named once, with the first document it clashes with: n
	 * copies of a document would otherwise give n * n / 2 messages */
	bool name_dup = false, listen_dup = false;
	for (size_t i = 0; i < out->n_canaries; i++) {
		const cfg_canary *o = &out->canaries[i];
		if (!name_dup && c.name && o->name && !strcmp(c.name, o->name)) {
			cfg_err_at(x, d.name_val, "metadata.name: duplicate canary name '%s' (also the "
			       "document at line %d)", c.name, o->line);
			name_dup = true;
		}
		if (!listen_dup && c.listen && o->listen && same_listen(c.listen, o->listen)) {
			cfg_err_at(x, d.listen_val, "spec.listen: address '%s' is already used by "
			       "canary '%s' (line %d)", c.listen, o->name ? o->name : "?", o->line);
			listen_dup = true;
		}
	}
	cfg_grow(&out->canaries, out->n_canaries, &x->canaries_cap, sizeof *out->canaries);
	out->canaries[out->n_canaries++] = c;
	return true;
}

int cfg_load_string(const char *name, const char *text, size_t len, cfg **out,
                    cfg_errors *errs)
{
	*out = NULL;
	ctx x = { .name = name, .errs = errs };
	size_t errs0 = errs->n;
	if (len > CFG_MAX_BYTES) {
		size_t line, col;
		cfg_offset_pos(text, len, CFG_MAX_BYTES, &line, &col);
		cfg_err_stop(&x, line + 1, col + 1, "file too large: more than %u MiB (a configuration "
		         "is a few KB)", CFG_MAX_BYTES >> 20);
		cfg_errs_sort(&x);
		return -1;
	}
	cfg *c = xcalloc(1, sizeof *c);
	c->path = xstrdup(name);

	yaml_parser_t parser;
	if (!yaml_parser_initialize(&parser)) {
		cfg_err_at(&x, NULL, "cannot parse: out of memory");
		cfg_errs_sort(&x);
		cfg_free(c);
		return -1;
	}
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
	size_t docs = 0;
	bool complete = false; /* read to the end, without a syntax error or a bound */
	for (;;) {
		yaml_document_t ydoc;
		int rc = cfg_compose(&x, &parser, &ydoc, text, len);
		if (rc <= 0) {
			complete = rc == 0;
			break;
		}
		x.doc = &ydoc;
		yaml_node_t *root = yaml_document_get_root_node(&ydoc);
		if (root && !cfg_is_null(root) && cfg_load_document(&x, &ydoc, root, c))
			docs++; /* empty documents and MetricTemplates do not count */
		x.doc = NULL;
		yaml_document_delete(&ydoc);
		if (x.too_big)
			break; /* crossed in cfg_to_json: reported */
	}
	yaml_parser_delete(&parser);
	cfg_resolve_templates(&x, c, complete);
	if (!docs && complete)
		cfg_err_at(&x, NULL, "no Canary documents (a configuration has at least one document "
		       "with kind: Canary)");
	if (x.dropped) {
		buf b = BUF_INIT;
		buf_printf(&b, "%s:%zu:%zu: too many errors: %zu more not shown (fix these "
		           "first)", name, x.drop_line, x.drop_col, x.dropped);
		cfg_errs_push(&x, x.drop_line, x.drop_col, cfg_escape_controls(b.p));
	}
	cfg_errs_sort(&x);
	if (errs->n > errs0) {
		cfg_free(c);
		return -1;
	}
	*out = c;
	return 0;
}

/* Reads at most CFG_MAX_BYTES + 1 bytes of <path> into <b> (enough for
 * cfg_load_string to see a file too large). Returns 0, or -1 with <why>
 * filled. Only a regular file is read: a FIFO would block, a device like
 * /dev/zero never ends, and the daemon's reload runs this on a worker thread
 * that SIGTERM waits for. O_NONBLOCK keeps open from waiting for a FIFO's
 * writer; strerror_r, not strerror, because of that thread. */
static int read_file(const char *path, buf *b, char *why, size_t whylen)
{
	int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0)
		goto fail;
	if (!S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		close(fd);
		return -1;
	}
	char chunk[16384];
	while (b->len <= CFG_MAX_BYTES) {
		size_t want = CFG_MAX_BYTES + 1 - b->len;
		ssize_t n = read(fd, chunk, want < sizeof chunk ? want : sizeof chunk);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto fail;
		if (n == 0)
			break;
		buf_append(b, chunk, (size_t)n);
	}
	close(fd);
	return 0;
fail:;
	int e = errno;
	char tmp[128];
	snprintf(why, whylen, "%s", strerror_r(e, tmp, sizeof tmp));
	if (fd >= 0)
		close(fd);
	return -1;
}

int cfg_load(const char *path, cfg **out, cfg_errors *errs)
{
	*out = NULL;
	buf b = BUF_INIT;
	char why[160];
	if (read_file(path, &b, why, sizeof why) < 0) {
		ctx x = { .name = path, .errs = errs };
		cfg_err_at(&x, NULL, "cannot read: %s", why);
		cfg_errs_sort(&x);
		buf_release(&b);
		return -1;
	}
	int rc = cfg_load_string(path, b.p ? b.p : "", b.len, out, errs);
	buf_release(&b);
	return rc;
}

void cfg_free(cfg *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n_canaries; i++)
		cfg_canary_release(&c->canaries[i]);
	free(c->canaries);
	free(c->path);
	free(c);
}

void cfg_errors_release(cfg_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		free(e->msg[i]);
	free(e->msg);
	e->msg = NULL;
	e->n = e->cap = 0;
}

const cfg_canary *cfg_find(const cfg *c, const char *name)
{
	if (!c || !name)
		return NULL;
	for (size_t i = 0; i < c->n_canaries; i++)
		if (c->canaries[i].name && !strcmp(c->canaries[i].name, name))
			return &c->canaries[i];
	return NULL;
}
