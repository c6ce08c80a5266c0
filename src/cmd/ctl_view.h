/* ctl_view.h - canaryctl's views of the admin API's JSON for a person:
 * the status and list tables, event lines, one canary in detail (`get`),
 * and the block `wait` and `status --watch` redraw on a terminal.
 *
 * Every view takes the API's objects as they come and is tolerant of what
 * is absent or of another type (an older or newer canaryd): a missing
 * field prints as "-" or not at all, never as a crash. Strings must have
 * been through view_escape() first: they reach a terminal. */
#ifndef CANARYD_CTL_VIEW_H
#define CANARYD_CTL_VIEW_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "util.h"

/* Escapes, in place, every string value in <j> (at any depth) as
 * log_escape() does: what the server sends (a revision, an alert's name,
 * an upstream's error) must not move the cursor, clear the screen or start
 * a line that looks like another event. Not for -o json|yaml, whose
 * encoders escape by themselves. */
void view_escape(json_t *j);

/* A string member of <o>, or <dflt> when absent, null or not a string. */
const char *view_str(const json_t *o, const char *key, const char *dflt);

/* An integer member of <o> (a real is truncated), or 0. */
long long view_int(const json_t *o, const char *key);

/* "v1->v2" while a canary revision differs from the stable one, else the
 * stable revision ("-" when there is none). */
void view_revisions(const json_t *st, char *out, size_t outlen);

/* `status`: NAME PHASE WEIGHT FAILED REVISIONS MESSAGE, one row per status
 * object of the array <arr>. */
void view_status_table(FILE *f, const json_t *arr, bool color);

/* `list`: NAME PHASE WEIGHT STABLE CANARY FAILED AGE (since the last
 * transition, against the wall clock <now_ms>). */
void view_list_table(FILE *f, const json_t *arr, bool color, uint64_t now_ms);

/* One audit event on one line: time, type, phase, weight, actor, message,
 * and for a check each metric as "name=value [min..max] pass|FAIL|held". */
void view_event_line(buf *b, const json_t *ev, bool color);

/* `history`: each event on a line, and under a check event one line per
 * metric. */
void view_events(FILE *f, const json_t *arr, bool color);

/* One canary in detail, from its status <st> and its audit <events> (may
 * be NULL): phase, weights and steps, gates and approval, the judge's
 * evidence, the last check with each metric's value against its
 * threshold, and the last <recent> events. Appends to <b>. */
void view_detail(buf *b, const json_t *st, const json_t *events, int recent, bool color,
                 uint64_t now_ms);

#endif
