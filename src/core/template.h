/* template.h - the query templates of custom metrics: Flagger's variables
 * ({{ name }}, {{ namespace }}, {{ target }}, {{ interval }}) plus canaryd's
 * {{ revision }}, substituted so that a value cannot change the meaning of
 * the text around it (a PromQL query, a URL, a JSON body).
 *
 * Syntax: "{{", optional spaces or tabs, a variable name, optional spaces
 * or tabs, "}}". Everything else is copied as is (a lone "{" or "}" too, as
 * PromQL selectors need them). There is nothing else: no functions, no
 * pipelines, no Flagger {{ variables.x }}. */
#ifndef CANARYD_TEMPLATE_H
#define CANARYD_TEMPLATE_H

#include <stddef.h>
#include "util.h"

/* How a value is written into the text. */
typedef enum {
	TMPL_PROMQL = 0, /* as is, but only values made of [A-Za-z0-9_.:/-] are
	                  * accepted (see template.c for why not escaping) */
	TMPL_URL,        /* percent-encoded: all but A-Z a-z 0-9 - . _ ~ */
	TMPL_JSON,       /* escaped for inside a JSON string (no quotes added);
	                  * only UTF-8 values are accepted, as JSON text is UTF-8 */
	TMPL_RAW,        /* as is */
} tmpl_escape;

/* The values of the variables. A NULL value renders as "" (a native canary
 * has no namespace). */
typedef struct tmpl_vars {
	const char *name;       /* {{ name }}: the canary's name */
	const char *namespace_; /* {{ namespace }} */
	const char *target;     /* {{ target }}: the workload (Flagger's targetRef.name) */
	const char *interval;   /* {{ interval }}: the metric's window, as "1m" */
	const char *revision;   /* {{ revision }}: the canary revision */
} tmpl_vars;

/* Appends <tmpl> with its variables replaced by <v>'s values, written as
 * <mode> says, to <out>. Returns 0; or -1 with <out> as it was before the
 * call and a message in <err> (always NUL-terminated when errlen > 0): an
 * unclosed "{{", an empty or unknown variable ("unknown variable
 * {{ nmae }} at character 12; known: name, namespace, target, interval,
 * revision"), in TMPL_PROMQL mode a value outside the safe set ("unsafe
 * value for {{ revision }}: 'x\"} or vector(1)'"), in TMPL_JSON mode a value
 * that is not UTF-8. Messages are one line of printable ASCII. */
int tmpl_render(const char *tmpl, const tmpl_vars *v, tmpl_escape mode, buf *out,
                char *err, size_t errlen);

/* Checks <tmpl>'s syntax and variable names only (what does not depend on
 * the values). Returns 0, or -1 with the message tmpl_render would give. */
int tmpl_check(const char *tmpl, char *err, size_t errlen);

#endif
