/* cfg_yaml.c - reading YAML for the configuration (see config.h): each
 * document composed from libyaml's events under the CFG_MAX_ bounds and
 * converted to JSON (cfg_canary.raw; this pass also bounds what aliases
 * repeat, and reports duplicate keys); the scalars as YAML 1.2's core
 * schema reads them; and the load's messages, each "FILE:LINE:COL:
 * message", sorted by position, bounded in number. */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgload.h"
#include "util.h"

/* Makes room for one more element in array *<p> of <n> elements of <size>
 * bytes, *<cap> allocated, doubling: a file has up to CFG_MAX_DOCUMENTS
 * canaries of some KB each, which growing one at a time would copy over
 * and over. */
void cfg_grow(void *p, size_t n, size_t *cap, size_t size)
{
	if (n < *cap)
		return;
	*cap = *cap ? *cap * 2 : 8;
	*(void **)p = xrealloc(*(void **)p, *cap * size);
}

/* Appends <msg> (taken) about LINE:COL (1-based). */
void cfg_errs_push(ctx *x, size_t line, size_t col, char *msg)
{
	cfg_errors *e = x->errs;
	if (e->n == e->cap) {
		e->cap = e->cap ? e->cap * 2 : 8;
		e->msg = xrealloc(e->msg, e->cap * sizeof *e->msg);
	}
	e->msg[e->n++] = msg;
	cfg_grow(&x->pos, x->n_pos, &x->pos_cap, sizeof *x->pos);
	x->pos[x->n_pos] = (struct errpos){ x->file, line, col, x->n_pos, msg };
	x->n_pos++;
}

/* True once messages are being left out: work done only to word a message
 * (finding a "did you mean") can then be skipped. */
bool cfg_errs_full(const ctx *x)
{
	return x->n_pos >= CFG_MAX_ERRORS;
}

static int errpos_cmp(const void *a, const void *b)
{
	const struct errpos *p = a, *q = b;
	if (p->file != q->file)
		return p->file < q->file ? -1 : 1;
	if (p->line != q->line)
		return p->line < q->line ? -1 : 1;
	if (p->col != q->col)
		return p->col < q->col ? -1 : 1;
	return p->seq < q->seq ? -1 : p->seq > q->seq;
}

/* Puts the messages of this load in file order (a reader fixes a file top
 * to bottom), the files in the order they were read; those at one position
 * keep the order they were found in. */
void cfg_errs_sort(ctx *x)
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
char *cfg_escape_controls(char *s)
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
			x->drop_file = x->file;
			x->drop_name = x->name;
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
void cfg_err_at(ctx *x, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void cfg_err_at(ctx *x, const yaml_node_t *n, const char *fmt, ...)
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
void cfg_err_stop(ctx *x, size_t line, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void cfg_err_stop(ctx *x, size_t line, size_t col, const char *fmt, ...)
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
void cfg_err_pos(ctx *x, size_t line, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void cfg_err_pos(ctx *x, size_t line, size_t col, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	err_vpos(x, line, col, fmt, ap);
	va_end(ap);
}

/* ---- scalars ---- */

bool cfg_is_scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE;
}

bool cfg_is_plain(const yaml_node_t *n)
{
	return cfg_is_scalar(n) && n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
}

const char *cfg_sval(const yaml_node_t *n)
{
	return (const char *)n->data.scalar.value;
}

bool cfg_is_null(const yaml_node_t *n)
{
	if (!cfg_is_plain(n))
		return false;
	const char *s = cfg_sval(n);
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

int cfg_bool_value(const char *s)
{
	if (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"))
		return 1;
	if (!strcmp(s, "false") || !strcmp(s, "False") || !strcmp(s, "FALSE"))
		return 0;
	return -1;
}

/* Decimal integer: [-+]?[0-9]+ */
bool cfg_looks_decimal(const char *s)
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
bool cfg_looks_float(const char *s)
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
const char *cfg_describe(const yaml_node_t *n, char *out, size_t len)
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


/* Paths longer than PATH_LEN are cut: they only appear in messages. */
void cfg_join(char *out, const char *path, const char *key)
{
	if (snprintf(out, PATH_LEN, "%s%s%s", path, *path ? "." : "", key) >= PATH_LEN)
		out[PATH_LEN - 1] = '\0';
}

void cfg_join_index(char *out, const char *path, size_t i)
{
	if (snprintf(out, PATH_LEN, "%s[%zu]", path, i) >= PATH_LEN)
		out[PATH_LEN - 1] = '\0';
}

/* ---- YAML to JSON ---- */

yaml_node_t *cfg_node_at(ctx *x, int i)
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
json_t *cfg_to_json(ctx *x, yaml_node_t *n, buf *path, int depth)
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
void cfg_offset_pos(const char *text, size_t len, size_t off, size_t *line, size_t *col)
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
static int attach(yaml_document_t *ydoc, frame *st, int depth, int idx)
{
	if (!depth)
		return 1;
	frame *f = &st[depth - 1];
	if (yaml_document_get_node(ydoc, f->node)->type == YAML_SEQUENCE_NODE)
		return yaml_document_append_sequence_item(ydoc, f->node, idx);
	if (!f->key) {
		f->key = idx;
		return 1;
	}
	int key = f->key;
	f->key = 0;
	return yaml_document_append_mapping_pair(ydoc, f->node, key, idx);
}

/* Remembers that <anchor> (from the event, may be NULL) names node <idx>
 * in <anchors> (name -> index). Returns false when reported: YAML wants an
 * anchor defined once in a document, as libyaml's loader does. */
static bool anchor_set(ctx *x, yaml_document_t *ydoc, json_t *anchors, const yaml_char_t *anchor,
                       int idx, yaml_mark_t m)
{
	if (!anchor)
		return true;
	const char *a = (const char *)anchor;
	json_t *old = json_object_get(anchors, a);
	if (old) {
		yaml_node_t *first = yaml_document_get_node(ydoc, (int)json_integer_value(old));
		cfg_err_stop(x, m.line + 1, m.column + 1, "YAML syntax error: found duplicate anchor "
		         "'%.64s' (first at line %zu)", a, first ? first->start_mark.line + 1 : 0);
		return false;
	}
	json_object_set_new(anchors, a, json_integer(idx));
	return true;
}

/* Reads the next document of the stream into <ydoc> (initialised; release it
 * with yaml_document_delete). Returns 1 for a document, 0 at the end of the
 * stream (<ydoc> untouched), -1 when reading must stop (reported: YAML syntax,
 * a bound, an undefined alias; <ydoc> untouched). */
int cfg_compose(ctx *x, yaml_parser_t *p, yaml_document_t *ydoc, const char *text,
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
	if (!yaml_document_initialize(ydoc, NULL, NULL, NULL, ev.data.document_start.implicit, 1)) {
		cfg_err_stop(x, ev.start_mark.line + 1, ev.start_mark.column + 1,
		         "cannot read: out of memory");
		yaml_event_delete(&ev);
		return -1;
	}
	ydoc->start_mark = ev.start_mark;
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
			ydoc->end_mark = ev.end_mark;
			ydoc->end_implicit = ev.data.document_end.implicit;
			yaml_event_delete(&ev);
			json_decref(anchors);
			return 1;
		case YAML_SEQUENCE_END_EVENT:
		case YAML_MAPPING_END_EVENT:
			yaml_document_get_node(ydoc, st[--depth].node)->end_mark = ev.end_mark;
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
			idx = yaml_document_add_scalar(ydoc, NULL, ev.data.scalar.value,
			                               (int)ev.data.scalar.length, ev.data.scalar.style);
			break;
		case YAML_SEQUENCE_START_EVENT:
			anchor = ev.data.sequence_start.anchor;
			idx = depth < CFG_MAX_DEPTH ? yaml_document_add_sequence(ydoc, NULL,
			                                  ev.data.sequence_start.style) : -1;
			break;
		case YAML_MAPPING_START_EVENT:
			anchor = ev.data.mapping_start.anchor;
			idx = depth < CFG_MAX_DEPTH ? yaml_document_add_mapping(ydoc, NULL,
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
			yaml_node_t *n = yaml_document_get_node(ydoc, idx);
			n->start_mark = ev.start_mark;
			n->end_mark = ev.end_mark;
			/* registered before the collection's items, as the loader
			 * does: an alias inside may name the collection itself */
			if (!anchor_set(x, ydoc, anchors, anchor, idx, m))
				goto fail_event;
		}
		if (!attach(ydoc, st, depth, idx)) {
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
	yaml_document_delete(ydoc);
	return -1;
}
