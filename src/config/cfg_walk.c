/* cfg_walk.c - the row walker: a mapping is read by walking a table of
 * its known keys, one row per key naming its handler, where the value
 * goes and its bounds; unknown keys get a "did you mean". Every value
 * reader and handler reports every problem it finds and carries on, so
 * that one run shows every error. Also the handlers many tables share
 * (integers, durations, strings, maps of strings, ...). */
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
bool cfg_walk_map(doc *d, const char *path, yaml_node_t *map, const field *t, size_t n,
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

void *cfg_at(void *obj, const field *f)
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
bool cfg_controls_ok(doc *d, const char *path, yaml_node_t *v, bool text)
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

/* A string taken from <v> into *out: one line, or with <text> a text that
 * may have tabs and line breaks. */
static int read_str(doc *d, const char *path, yaml_node_t *v, bool text, char **out)
{
	char got_[64];
	if (!cfg_is_scalar(v) || cfg_is_null(v)) {
		cfg_err_at(d->x, v, "%s: must be a string, got %s", path, GOT(v));
		return -1;
	}
	if (!cfg_controls_ok(d, path, v, text))
		return -1;
	*out = xstrdup(cfg_sval(v));
	return 0;
}

int cfg_read_string(doc *d, const char *path, yaml_node_t *v, char **out)
{
	return read_str(d, path, v, false, out);
}

/* As cfg_read_string, for text that may have tabs and line breaks. */
static int read_text(doc *d, const char *path, yaml_node_t *v, char **out)
{
	return read_str(d, path, v, true, out);
}

int cfg_read_int(doc *d, const char *path, yaml_node_t *v, long long lo, long long hi,
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
int cfg_read_number(doc *d, const char *path, yaml_node_t *v, double lo, double hi,
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

int cfg_read_hostport(doc *d, const char *path, yaml_node_t *v, const char *example,
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

int cfg_read_one_of(doc *d, const char *path, yaml_node_t *v, const char *const *w,
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

void cfg_h_int(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                  void *obj)
{
	int n;
	if (cfg_read_int(d, path, v, f->lo, f->hi, &n) == 0 && f->off != NOSTORE)
		*(int *)cfg_at(obj, f) = n;
}

void cfg_h_duration(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	uint64_t ms;
	if (read_duration(d, path, v, f->lo, f->hi, &ms) == 0 && f->off != NOSTORE)
		*(uint64_t *)cfg_at(obj, f) = ms;
}

void cfg_h_string(doc *d, const field *f, const char *path, yaml_node_t *k,
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

void cfg_h_text(doc *d, const field *f, const char *path, yaml_node_t *k,
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

void cfg_h_bool(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                   void *obj)
{
	char got_[64];
	if (!cfg_is_plain(v) || cfg_bool_value(cfg_sval(v)) < 0)
		cfg_err_at(d->x, v, "%s: must be true or false, got %s", path, GOT(v));
	else if (f->off != NOSTORE)
		*(bool *)cfg_at(obj, f) = cfg_bool_value(cfg_sval(v));
}

void cfg_h_list(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                   void *obj)
{
	char got_[64];
	if (v->type != YAML_SEQUENCE_NODE)
		cfg_err_at(d->x, v, "%s: must be a list, got %s", path, GOT(v));
}

void cfg_h_map(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
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
void cfg_h_string_map(doc *d, const field *f, const char *path, yaml_node_t *k,
                         yaml_node_t *v, void *obj)
{
	string_map(d, f, path, v, obj, false);
}

/* Annotations and webhook metadata: values may span lines. */
void cfg_h_text_map(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	string_map(d, f, path, v, obj, true);
}

/* Reads a mapping of <names> to strings into a new JSON object (NULL when
 * <v> is not a mapping). A name that <name_ok> refuses is reported as
 * "<bad_name>"; a value that is not a string, or that <value_ok> (may be
 * NULL; it reports its own error) refuses, is left out. */
json_t *cfg_read_string_map(doc *d, const char *path, yaml_node_t *v, const char *names,
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

/* A value of one line. */
bool cfg_line_value_ok(doc *d, const char *p, yaml_node_t *pv)
{
	return cfg_controls_ok(d, p, pv, false);
}
