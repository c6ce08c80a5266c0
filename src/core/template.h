/* template.h - the query templates of custom metrics, as Flagger's
 * MetricTemplate queries are written: Go's text/template with Flagger's
 * functions ({{ name }}, {{ namespace }}, {{ target }}, {{ service }},
 * {{ ingress }}, {{ route }}, {{ interval }}, {{ variables.KEY }}) plus
 * canaryd's {{ revision }}, and the Go functions Flagger's own examples
 * use (printf, print); each value is substituted so that it cannot change
 * the meaning of the text around it (a PromQL query, a URL, a JSON body).
 *
 * Syntax (the subset of text/template a MetricTemplate can use, since
 * Flagger executes the template with no data): "{{", a pipeline, "}}".
 * A pipeline is commands separated by '|', the result of one given to the
 * next as its last argument; a command is a function and its arguments,
 * or one operand. Operands: a function name, variables.KEY, a string
 * ("..." with Go's escapes, or `raw`), a number, or a parenthesised
 * pipeline. "{{- " and " -}}" trim the white space before and after;
 * Go's comments ("{{" slash-star ... star-slash "}}") render nothing.
 * Everything outside the braces is copied as is (a lone "{" or "}" too, as
 * PromQL selectors need them).
 * Not supported, and refused by name: actions (if, range, with, define,
 * template, block, end, else), the data "." and $variables, which no
 * MetricTemplate can use since Flagger passes no data. */
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

/* One of a metric's templateVariables. */
typedef struct tmpl_kv {
	const char *key, *value;
} tmpl_kv;

/* The values of the variables, filled as Flagger fills its template model
 * (pkg/controller/scheduler_metrics.go, toMetricModel). A NULL value
 * renders as "" (a native canary has no namespace), except that service,
 * ingress and route default to target, as in Flagger (they default to
 * spec.targetRef.name). */
typedef struct tmpl_vars {
	const char *name;       /* {{ name }}: the canary's name */
	const char *namespace_; /* {{ namespace }} */
	const char *target;     /* {{ target }}: the workload (Flagger's targetRef.name) */
	const char *service;    /* {{ service }}: spec.service.name */
	const char *ingress;    /* {{ ingress }}: spec.ingressRef.name */
	const char *route;      /* {{ route }}: spec.routeRef.name */
	const char *interval;   /* {{ interval }}: the metric's window, as "1m" */
	const char *revision;   /* {{ revision }}: the canary revision */
	const tmpl_kv *variables; /* {{ variables.KEY }}: the metric's templateVariables */
	size_t n_variables;
} tmpl_vars;

/* Appends <tmpl> with its actions replaced by their values, each value
 * written as <mode> says, to <out>; the text of the template itself
 * (outside the braces, or a string literal such as printf's format) is
 * the author's and written as is. Returns 0; or -1 with <out> as it was
 * before the call and a message in <err> (always NUL-terminated when
 * errlen > 0): a syntax error, an unknown function or variable ("unknown
 * variable {{ nmae }} at character 12; known: name, namespace, ..."), a
 * key missing from templateVariables (as Flagger's missingkey=error), a
 * printf whose arguments do not match its format, in TMPL_PROMQL mode a
 * value outside the safe set ("unsafe value for {{ revision }}:
 * 'x\"} or vector(1)'"), in TMPL_JSON mode a value that is not UTF-8.
 * Messages are one line of printable ASCII. */
int tmpl_render(const char *tmpl, const tmpl_vars *v, tmpl_escape mode, buf *out,
                char *err, size_t errlen);

/* Checks <tmpl>'s syntax, function names and printf formats only (what
 * does not depend on the values: a variables.KEY is not looked up).
 * Returns 0, or -1 with the message tmpl_render would give. */
int tmpl_check(const char *tmpl, char *err, size_t errlen);

#endif
