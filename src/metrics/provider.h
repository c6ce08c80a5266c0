/* provider.h - the metrics-provider interface: where a metric's values
 * come from. A provider reads one window of one metric (readings.h: the
 * canary's value, stable's over the same seconds, or stable's baseline)
 * and answers once, at once or later on the loop, never blocking it:
 * - builtin: request-success-rate, request-duration and error-rate, from
 *   the request stats the canary's router keeps;
 * - prometheus: an instant query that must return one sample;
 * - web: any HTTP JSON API, the number found by a JSON path (as Argo
 *   Rollouts' web metric).
 * The controller finds a metric's provider in a table by its source's type
 * (provider_of) and knows nothing else of it: a new provider is a row of
 * that table and a file. */
#ifndef CANARYD_PROVIDER_H
#define CANARYD_PROVIDER_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "hooks.h"
#include "readings.h"
#include "stats.h"
#include "template.h"

/* Called once with the reading: <has_data> 1 and <value>, or 0 and <reason>
 * ("query returned no sample", "Prometheus at 'http://…' did not answer:
 * Connection refused", "no canary requests in the last 60s", ...). */
typedef void (*provider_fn)(void *arg, int has_data, double value, const char *reason);

/* What a read may use, the controller's. */
typedef struct provider_env {
	hooks *http;            /* the HTTP client; NULL when libcurl failed */
	const stats *st;        /* the canary's request stats */
} provider_env;

/* The window to read, and the template variables of a query: {{ interval }}
 * is the window's span ("1m"), {{ revision }} the canary's revision for the
 * canary's value and stable's for the others. */
typedef struct provider_window {
	rd_window w;
	eng_metric_kind kind;   /* the metric's (builtin reads by it) */
	tmpl_vars vars;
} provider_window;

typedef struct provider_ops {
	const char *name;       /* as in provider.type ("builtin": no provider key) */
	/* Starts reading window <w> of the metric whose source is <src>.
	 * Returns 0, and <done>(<arg>, ...) is called once, perhaps before
	 * read returns; or -1 with <err> filled (a template that does not
	 * render safely, a request that cannot start), and <done> is not
	 * called. */
	int (*read)(const provider_env *env, const cfg_metric_source *src,
	            const provider_window *w, provider_fn done, void *arg, char *err,
	            size_t errlen);
} provider_ops;

/* The provider of a metric whose source is <src> (by src->type), or NULL
 * for a type this build has none for. */
const provider_ops *provider_of(const cfg_metric_source *src);

extern const provider_ops provider_builtin;     /* provider_builtin.c */
extern const provider_ops provider_prometheus;  /* provider_http.c */
extern const provider_ops provider_web;         /* provider_http.c */

/* For providers: writes <reason> (one line of printable ASCII, whatever a
 * receiver sent) and returns 0, as the parsers below do for no value. */
int provider_no_value(char *reason, size_t rlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Parses a Prometheus /api/v1/query answer. Returns 1 with *value, or 0
 * with <reason> (no sample, several samples, NaN or an infinity, a value
 * that is not a plain decimal number, an error answer, not JSON or JSON
 * with a duplicated key). A value is always finite; a reason is one line
 * of printable ASCII. Pure, for tests. */
int provider_parse_prometheus(const char *body, size_t len, double *value,
                              char *reason, size_t rlen);

/* Parses a web metric's answer (any JSON text: with <path> "$" a bare
 * number) and finds the number at <path> in it, read as
 * provider_parse_prometheus reads a sample. Returns 1 with *value, or 0
 * with <reason>. Pure, for tests. */
int provider_parse_web(const char *body, size_t len, const char *path, double *value,
                       char *reason, size_t rlen);

/* Finds the number at <path> ("$.a.b[0]['c']" or "$.a[\"c\"]") in <root>:
 * a JSON number, or a string holding a plain decimal number. Returns 1
 * with *value or 0 with <reason>. */
int provider_json_path(const json_t *root, const char *path, double *value,
                       char *reason, size_t rlen);

#endif
