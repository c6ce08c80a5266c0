/* ctl_out.h - what canaryctl prints, apart from what it asks canaryd.
 *
 * canaryctl.c holds the commands and the HTTP calls; this module holds the
 * pure pieces of its output, each testable without a server
 * (tests/unit/cmd/test_ctl_out.c): the output formats (-o json|yaml), when
 * to colour, a table whose columns fit their widest cell, help text
 * wrapped to 80 columns, the age of a timestamp, and "did you mean" by
 * edit distance.
 *
 * Terminal safety is the caller's: strings from the server are escaped
 * (canaryctl.c escape_strings) before they reach a table or a line; JSON
 * and YAML encoders escape by themselves. */
#ifndef CANARYD_CTL_OUT_H
#define CANARYD_CTL_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "util.h"

/* The columns every help text fits in: a default terminal. */
#define OUT_HELP_WIDTH 80

typedef enum out_format {
	OUT_TEXT = 0,   /* for a person: tables, lines */
	OUT_JSON,       /* the API's JSON, indented */
	OUT_YAML,       /* the same value as YAML (libyaml's emitter) */
} out_format;

/* Parses an -o value: NULL or "text", "json", "yaml" (or "yml"). Returns 0
 * with *f set, or -1 for anything else. */
int out_parse_format(const char *s, out_format *f);

/* Writes <j> to <f> as JSON or YAML per <fmt> (OUT_TEXT is refused: the
 * caller renders text itself). Returns 0, or -1 with <err> (a string that
 * is not valid UTF-8 cannot be YAML). */
int out_print(FILE *f, const json_t *j, out_format fmt, char *err, size_t errlen);

/* Whether to colour what goes to <fd>: never with <no_color> (--no-color),
 * with NO_COLOR set to anything non-empty (no-color.org), with TERM=dumb,
 * or when <fd> is not a terminal (a pipe or a file gets plain text). */
bool out_color_wanted(int fd, bool no_color);

typedef enum out_color {
	OUT_PLAIN = 0,
	OUT_GREEN,      /* Succeeded, a passing check */
	OUT_RED,        /* Failed, a failing check */
	OUT_YELLOW,     /* waiting for a person: Paused, Waiting* */
	OUT_CYAN,       /* moving: Progressing, Promoting, Finalising */
	OUT_BOLD,
	OUT_DIM,
} out_color;

/* The SGR escape that starts <c>, or "" when <on> is false or <c> is
 * OUT_PLAIN; out_sgr_end() the one that ends it (or ""). */
const char *out_sgr(bool on, out_color c);
const char *out_sgr_end(bool on, out_color c);

/* The colour of a canary's phase name (Flagger's and canaryd's phases). */
out_color out_phase_color(const char *phase);

/* The columns <s> takes on a terminal: one per UTF-8 code point, none for
 * a continuation byte (every string canaryctl prints is escaped to
 * printable text first, and East Asian wide characters are not expected
 * in canary names, phases or revisions). */
size_t out_width(const char *s);

/* The optimal-string-alignment distance between <a> and <b>: insertions,
 * deletions, substitutions and swaps of two neighbours count 1 each, so
 * "stauts" is 1 from "status". Strings longer than 64 bytes give a
 * distance above any suggestion's bound. */
int out_distance(const char *a, const char *b);

/* The candidate of <cands> (NULL-terminated) nearest to <word> when it is
 * near enough to be what was meant: at most 1 edit for words up to 4
 * characters, 2 up to 8, 3 beyond; else the first candidate that begins
 * <word> or that <word> begins (3 characters at least). NULL when none is
 * (or <word> is one of them). Ties go to the earlier candidate. */
const char *out_nearest(const char *word, const char *const *cands);

/* Appends <text> to <b> word-wrapped so that no line is wider than
 * <width> columns: the first line starts at column <col> (where the
 * caller's text ends), the others are indented by <indent> spaces. A
 * single word wider than the room is put on a line of its own, unbroken.
 * The text ends with a newline. */
void out_wrap(buf *b, const char *text, size_t col, size_t indent, size_t width);

/* Parses an RFC 3339 time in UTC as canaryd writes it
 * ("2026-01-02T03:04:05Z", optional fraction of a second). Returns 0 with
 * *ms (Unix epoch milliseconds), or -1. */
int out_parse_time(const char *s, uint64_t *ms);

/* A coarse age for a table ("45s", "12m", "3h", "2d"), from <ms>. */
void out_age(uint64_t ms, char *out, size_t outlen);

/* A table of text cells, printed with each column as wide as its widest
 * cell, two spaces apart, the last column unpadded. Cells are copied. */
typedef struct out_table {
	size_t ncols;
	size_t nrows;        /* the header is row 0 */
	char **cells;        /* nrows * ncols, owned */
	out_color *colors;   /* one per cell */
	size_t cap;          /* rows allocated */
} out_table;

/* Starts <t> with its header row <head> (<ncols> names, printed bold). */
void out_table_init(out_table *t, size_t ncols, const char *const *head);

/* Adds a row of t->ncols cells (NULL cells print as "-"); <colors> may be
 * NULL (all plain) or one colour per cell. */
void out_table_add(out_table *t, const char *const *cells, const out_color *colors);

/* Prints <t> to <f>, in colour when <color>. */
void out_table_print(const out_table *t, FILE *f, bool color);

void out_table_release(out_table *t);

#endif
