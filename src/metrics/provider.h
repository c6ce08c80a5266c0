/* provider.h - custom metrics read from a provider: Prometheus (an instant
 * query that must return one sample) or any HTTP JSON API ("web", as Argo
 * Rollouts' web metric: a number found by a JSON path). Reads are
 * asynchronous, on the hooks HTTP client, never blocking the loop. */
#ifndef CANARYD_PROVIDER_H
#define CANARYD_PROVIDER_H

#include <jansson.h>
#include <stddef.h>

#include "config.h"
#include "hooks.h"
#include "template.h"

/* Called once with the reading: <has_data> 1 and <value>, or 0 and <reason>
 * ("query returned no sample", "Prometheus at 'http://…' did not answer:
 * Connection refused", "value is NaN", ...). */
typedef void (*provider_fn)(void *arg, int has_data, double value, const char *reason);

/* Renders <src>'s query or request with <vars> and starts the read. Returns
 * 0, or -1 with <err> filled (a template that does not render safely, a
 * request that cannot start); <done> is then not called. */
int provider_read(hooks *h, const cfg_metric_source *src, const tmpl_vars *vars,
                  provider_fn done, void *arg, char *err, size_t errlen);

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
