/* ctl_out.c - canaryctl's output: formats, colour, tables, help text,
 * "did you mean" (ctl_out.h). */
#include "ctl_out.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "render.h"

int out_parse_format(const char *s, out_format *f)
{
	if (!s || strcmp(s, "text") == 0)
		*f = OUT_TEXT;
	else if (strcmp(s, "json") == 0)
		*f = OUT_JSON;
	else if (strcmp(s, "yaml") == 0 || strcmp(s, "yml") == 0)
		*f = OUT_YAML;
	else
		return -1;
	return 0;
}

int out_print(FILE *f, const json_t *j, out_format fmt, char *err, size_t errlen)
{
	if (fmt == OUT_JSON) {
		char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY |
		                        JSON_REAL_PRECISION(12));
		if (!s) {
			snprintf(err, errlen, "cannot encode the answer as JSON");
			return -1;
		}
		fputs(s, f);
		fputc('\n', f);
		free(s);
		return 0;
	}
	if (fmt != OUT_YAML) {
		snprintf(err, errlen, "no such output format");
		return -1;
	}
	/* render_yaml writes a stream of documents: this is a stream of one,
	 * with its quoting rules (a revision "10" stays a string) */
	json_t *docs = json_array();
	json_array_append(docs, (json_t *)j);
	buf b = BUF_INIT;
	int rc = render_yaml(docs, &b, err, errlen);
	json_decref(docs);
	if (rc == 0 && b.len)
		fwrite(b.p, 1, b.len, f);
	buf_release(&b);
	return rc;
}

bool out_color_wanted(int fd, bool no_color)
{
	if (no_color)
		return false;
	const char *nc = getenv("NO_COLOR");
	if (nc && *nc)
		return false;
	const char *term = getenv("TERM");
	if (term && strcmp(term, "dumb") == 0)
		return false;
	return isatty(fd) == 1;
}

static const char *const sgr_start[] = {
	[OUT_PLAIN] = "", [OUT_GREEN] = "\033[32m", [OUT_RED] = "\033[31m",
	[OUT_YELLOW] = "\033[33m", [OUT_CYAN] = "\033[36m", [OUT_BOLD] = "\033[1m",
	[OUT_DIM] = "\033[2m",
};

const char *out_sgr(bool on, out_color c)
{
	if (!on || c <= OUT_PLAIN || c > OUT_DIM)
		return "";
	return sgr_start[c];
}

const char *out_sgr_end(bool on, out_color c)
{
	return on && c > OUT_PLAIN && c <= OUT_DIM ? "\033[0m" : "";
}

out_color out_phase_color(const char *phase)
{
	static const struct {
		const char *phase;
		out_color c;
	} rows[] = {
		{ "Succeeded", OUT_GREEN },   { "Failed", OUT_RED },
		{ "Paused", OUT_YELLOW },     { "Waiting", OUT_YELLOW },
		{ "WaitingPromotion", OUT_YELLOW }, { "WaitingApproval", OUT_YELLOW },
		{ "Progressing", OUT_CYAN },  { "Promoting", OUT_CYAN },
		{ "Finalising", OUT_CYAN },   { "Initializing", OUT_CYAN },
	};
	for (size_t i = 0; phase && i < sizeof rows / sizeof rows[0]; i++)
		if (strcmp(rows[i].phase, phase) == 0)
			return rows[i].c;
	return OUT_PLAIN;
}

size_t out_width(const char *s)
{
	size_t n = 0;
	for (; *s; s++)
		if (((unsigned char)*s & 0xC0) != 0x80)
			n++;
	return n;
}

#define DIST_MAX 64

int out_distance(const char *a, const char *b)
{
	size_t la = strlen(a), lb = strlen(b);
	if (la > DIST_MAX || lb > DIST_MAX)
		return DIST_MAX + 1;
	/* three rows of the classic table: the swap needs the one before last */
	int rows[3][DIST_MAX + 1];
	int *pp = rows[0], *p = rows[1], *c = rows[2];
	for (size_t j = 0; j <= lb; j++)
		p[j] = (int)j;
	for (size_t i = 1; i <= la; i++) {
		c[0] = (int)i;
		for (size_t j = 1; j <= lb; j++) {
			int cost = a[i - 1] != b[j - 1];
			int d = p[j] + 1;
			if (c[j - 1] + 1 < d)
				d = c[j - 1] + 1;
			if (p[j - 1] + cost < d)
				d = p[j - 1] + cost;
			if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
			    pp[j - 2] + 1 < d)
				d = pp[j - 2] + 1;
			c[j] = d;
		}
		int *t = pp;
		pp = p;
		p = c;
		c = t;
	}
	return p[lb];
}

const char *out_nearest(const char *word, const char *const *cands)
{
	size_t l = strlen(word);
	int bound = l <= 4 ? 1 : l <= 8 ? 2 : 3;
	const char *best = NULL, *prefixed = NULL;
	int best_d = bound + 1;
	for (const char *const *c = cands; *c; c++) {
		int d = out_distance(word, *c);
		if (d == 0)
			return NULL;
		if (d < best_d) {
			best_d = d;
			best = *c;
		}
		/* "--reason-text" for "--reason": a candidate that begins the
		 * word (or that the word begins), when no edit is near */
		size_t cl = strlen(*c);
		if (!prefixed && cl >= 3 && l >= 3 &&
		    strncmp(word, *c, cl < l ? cl : l) == 0)
			prefixed = *c;
	}
	return best ? best : prefixed;
}

void out_wrap(buf *b, const char *text, size_t col, size_t indent, size_t width)
{
	const char *p = text;
	bool first_word = true;
	while (*p) {
		while (*p == ' ')
			p++;
		if (!*p)
			break;
		size_t wl = strcspn(p, " ");
		char word[512];
		size_t cl = wl < sizeof word - 1 ? wl : sizeof word - 1;
		memcpy(word, p, cl);
		word[cl] = '\0';
		size_t ww = out_width(word);
		/* a word goes on this line when it fits, or when nothing else is
		 * on the line yet (it would not fit on any line) */
		if (!first_word && col + 1 + ww > width) {
			buf_puts(b, "\n");
			for (size_t i = 0; i < indent; i++)
				buf_puts(b, " ");
			col = indent;
			first_word = true;
		}
		if (!first_word) {
			buf_puts(b, " ");
			col++;
		}
		buf_append(b, p, wl);
		col += ww;
		first_word = false;
		p += wl;
	}
	buf_puts(b, "\n");
}

int out_parse_time(const char *s, uint64_t *ms)
{
	struct tm tm;
	memset(&tm, 0, sizeof tm);
	int frac_ms = 0;
	const char *end = s ? strptime(s, "%Y-%m-%dT%H:%M:%S", &tm) : NULL;
	if (!end)
		return -1;
	if (*end == '.') {
		int digits = 0;
		for (end++; *end >= '0' && *end <= '9'; end++, digits++)
			if (digits < 3)
				frac_ms = frac_ms * 10 + (*end - '0');
		if (digits == 0)
			return -1;
		for (; digits < 3; digits++)
			frac_ms *= 10;
	}
	if (strcmp(end, "Z") != 0 && strcmp(end, "+00:00") != 0)
		return -1;
	time_t t = timegm(&tm);
	if (t < 0)
		return -1;
	*ms = (uint64_t)t * 1000 + (uint64_t)frac_ms;
	return 0;
}

void out_age(uint64_t ms, char *out, size_t outlen)
{
	uint64_t s = ms / 1000;
	if (s < 120)
		snprintf(out, outlen, "%llus", (unsigned long long)s);
	else if (s < 2 * 3600)
		snprintf(out, outlen, "%llum", (unsigned long long)(s / 60));
	else if (s < 2 * 86400)
		snprintf(out, outlen, "%lluh", (unsigned long long)(s / 3600));
	else
		snprintf(out, outlen, "%llud", (unsigned long long)(s / 86400));
}

void out_table_init(out_table *t, size_t ncols, const char *const *head)
{
	memset(t, 0, sizeof *t);
	t->ncols = ncols;
	out_color bold[16];
	for (size_t i = 0; i < ncols && i < 16; i++)
		bold[i] = OUT_BOLD;
	out_table_add(t, head, ncols <= 16 ? bold : NULL);
}

void out_table_add(out_table *t, const char *const *cells, const out_color *colors)
{
	if (t->nrows == t->cap) {
		t->cap = t->cap ? t->cap * 2 : 8;
		t->cells = xrealloc(t->cells, t->cap * t->ncols * sizeof *t->cells);
		t->colors = xrealloc(t->colors, t->cap * t->ncols * sizeof *t->colors);
	}
	for (size_t i = 0; i < t->ncols; i++) {
		t->cells[t->nrows * t->ncols + i] = xstrdup(cells[i] ? cells[i] : "-");
		t->colors[t->nrows * t->ncols + i] = colors ? colors[i] : OUT_PLAIN;
	}
	t->nrows++;
}

void out_table_print(const out_table *t, FILE *f, bool color)
{
	size_t w[16] = { 0 };
	size_t nc = t->ncols < 16 ? t->ncols : 16;
	for (size_t r = 0; r < t->nrows; r++)
		for (size_t i = 0; i < nc; i++) {
			size_t l = out_width(t->cells[r * t->ncols + i]);
			if (l > w[i])
				w[i] = l;
		}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t i = 0; i < nc; i++) {
			const char *s = t->cells[r * t->ncols + i];
			out_color c = t->colors[r * t->ncols + i];
			fprintf(f, "%s%s%s", out_sgr(color, c), s, out_sgr_end(color, c));
			if (i + 1 < nc)
				fprintf(f, "%*s", (int)(w[i] - out_width(s) + 2), "");
		}
		fputc('\n', f);
	}
}

void out_table_release(out_table *t)
{
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t->colors);
	memset(t, 0, sizeof *t);
}
