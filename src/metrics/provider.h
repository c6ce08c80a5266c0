/* provider.h - the metrics-provider interface: where a metric's values
 * come from. A provider reads one window of one metric (readings.h: the
 * canary's value, stable's over the same seconds, or stable's baseline)
 * and answers once, at once or later on the loop, never blocking it:
 * - builtin: request-success-rate, request-duration and error-rate, from
 *   the request stats the canary's router keeps;
 * - prometheus: an instant query that must return one sample;
 * - web: any HTTP JSON API, the number found by a JSON path (as Argo
 *   Rollouts' web metric);
 * - mesh: the same built-in metrics for a canary whose traffic goes
 *   through a service mesh or Gateway API (Kubernetes routers), read from
 *   Prometheus with the queries Flagger v1.44.0 runs for that provider;
 * - datadog and newrelic: Flagger v1.44.0's providers of those types, their
 *   keys read from files or the environment when the configuration loads.
 * The controller finds a metric's provider in a table (provider_of: by its
 * source's type, and for a built-in metric by the canary's router) and
 * knows nothing else of it: a new provider is a row of that table and a
 * file. */
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
	const cfg_canary *cc;   /* the canary whose metric is read */
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
	/* Optional (NULL: nothing to check). Whether metric <i> of canary <cc>
	 * can be read in this process (a setting it needs, such as the mesh
	 * provider's Prometheus): 0, or -1 with <err>, one line naming the
	 * canary and the metric. Called when a configuration is applied (at
	 * start and on reload), so that what cannot work never starts. */
	int (*check)(const cfg_canary *cc, int i, char *err, size_t errlen);
	/* Optional (NULL: no request to show, as for the stats). Appends to
	 * <out> what read would ask for window <w>: the query as sent (PromQL),
	 * or "METHOD URL". Returns 0, or -1 with <err> (as read). For
	 * `canaryctl query`. */
	int (*describe)(const provider_env *env, const cfg_metric_source *src,
	                const provider_window *w, buf *out, char *err, size_t errlen);
} provider_ops;

/* The provider of metric <i> of canary <cc>: by the type of its source,
 * and for a built-in metric (no source) by the canary's router: the mesh
 * provider for a Kubernetes router (every Flagger document; spec.router
 * istio, gatewayapi or smi), the builtin one otherwise. NULL for a type
 * this build has none for. */
const provider_ops *provider_of(const cfg_canary *cc, int i);

/* The provider of sources of type <t> (the table's row), or NULL. */
const provider_ops *provider_by_type(cfg_provider_type t);

/* Runs the check of every metric's provider of <cc> (provider_ops.check):
 * 0, or -1 with <err>. */
int provider_check(const cfg_canary *cc, char *err, size_t errlen);

/* canaryd --metrics-server (Flagger's -metrics-server): the Prometheus the
 * mesh provider reads unless a canary names its own (spec.metricsServer).
 * A process setting, as Flagger's flag is: set once, before the controller
 * starts (and by canaryctl query); <url> is copied; NULL unsets it. */
void provider_set_metrics_server(const char *url);
const char *provider_metrics_server(void);

/* The namespace of a mesh canary whose document names none: the Kubernetes
 * client's (its kubeconfig context's, or the pod's service account's),
 * where the router writes its objects, as kubectl would apply the Canary.
 * Set by the Kubernetes router when it makes its client; <ns> is copied;
 * NULL (or never set: canaryctl query) means "default". */
void provider_set_mesh_namespace(const char *ns);
const char *provider_mesh_namespace(void);

/* Whether <s> may be a Prometheus address: http:// or https://, a host, at
 * most 2048 bytes, no blanks or control characters (the rules of a
 * prometheus provider's address). */
int provider_url_ok(const char *s);

extern const provider_ops provider_builtin;     /* provider_builtin.c */
extern const provider_ops provider_prometheus;  /* provider_http.c */
extern const provider_ops provider_web;         /* provider_http.c */
extern const provider_ops provider_mesh;        /* provider_mesh.c */
extern const provider_ops provider_datadog;     /* provider_datadog.c */
extern const provider_ops provider_newrelic;    /* provider_newrelic.c */

/* ---- the mesh provider's parts, pure, for tests and canaryctl ---- */

/* Flagger's observer (pkg/metrics/observers) for a canary: its built-in
 * metrics' queries, as Flagger's source has them. */
typedef struct mesh_observer {
	const char *name;           /* "istio", "linkerd", "osm", "http" */
	const char *success_rate;   /* request-success-rate */
	const char *duration;       /* request-duration (99th percentile) */
	double duration_to_ms;      /* what request-duration's value is
	                             * multiplied by to be milliseconds */
} mesh_observer;

/* Whether the built-in metrics of <cc> are read by the mesh provider. */
int provider_is_mesh(const cfg_canary *cc);

/* The observer Flagger picks for provider <provider> (its spec.provider,
 * or canaryd's spec.router) of a canary whose targetRef is a Service
 * (<service_target>) or not: NULL with <err> for a provider canaryd has no
 * queries for. */
const mesh_observer *mesh_observer_for(const char *provider, int service_target, char *err,
                                       size_t errlen);

/* Appends to <out> the query the mesh provider sends for built-in metric
 * <kind> of <cc> over <interval> ("1m"): for the canary's workload, or
 * (<stable>) the primary's, with Flagger's variables filled as Flagger
 * fills them and its whitespace collapsed as Flagger's Prometheus client
 * does before sending. Returns 0, or -1 with <err> (out as it was). */
int mesh_query(const cfg_canary *cc, eng_metric_kind kind, int stable, const char *interval,
               buf *out, char *err, size_t errlen);

/* The Prometheus the mesh provider reads for <cc>: its spec.metricsServer,
 * else --metrics-server; NULL when neither is set. */
const char *mesh_server(const cfg_canary *cc);

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

/* Parses a Datadog /api/v1/query answer of HTTP status <status>, as
 * Flagger reads it: the value of the first point of the first series.
 * Returns 1 with *value (finite), or 0 with <reason>: a status other than
 * 200 (with the first of its documented {"errors": [...]}), a status
 * field not "ok", no series, no points, a point that is not [time, value],
 * a null or non-number value, not JSON or JSON with a duplicated key.
 * A reason is one line of printable ASCII. Pure, for tests. */
int provider_parse_datadog(int status, const char *body, size_t len, double *value,
                           char *reason, size_t rlen);

/* Parses a New Relic Insights query answer of HTTP status <status>, as
 * Flagger reads it: results[0].result of an answer with exactly one
 * result. Returns 1 with *value (finite), or 0 with <reason>: a status
 * other than 200 (with its documented {"error": "..."}), no results or
 * several, no "result" (a row named after its function), null, a
 * non-number, not JSON or JSON with a duplicated key. Pure, for tests. */
int provider_parse_newrelic(int status, const char *body, size_t len, double *value,
                            char *reason, size_t rlen);

/* Reads a keyed API's answer: provider_parse_datadog, _newrelic. */
typedef int (*provider_parse_fn)(int status, const char *body, size_t len, double *value,
                                 char *reason, size_t rlen);

/* The start of reading a JSON API's answer: a status other than 200 is no
 * value, with the API's own message when <message>(root) finds one in the
 * body (as Flagger, which takes anything but 200 as an error); a body that
 * is not JSON is no value. Returns 1 with the parsed body in *root (the
 * caller frees it), or 0 with <reason> and nothing to free. */
int provider_json_answer(int status, const char *body, size_t len,
                         const char *(*message)(const json_t *root), json_t **root,
                         char *reason, size_t rlen);

/* Starts GET <url> with one header line "<names[i]>: <keys[i]>" per key
 * (<n> of them, at most 2), <parse> reading the answer, and calls <done>
 * once with its value or a reason that names the API (<what>: "Datadog at
 * 'URL'") and never holds a key (provider_redact). Returns 0, or -1 with
 * <err> (no HTTP client, a request that cannot start) and <done> is not
 * called. The keyed providers share it: the keys live in the headers and
 * in the scrubbing, nowhere else. */
int provider_keyed_get(const provider_env *env, const char *url, const char *const *names,
                       const char *const *keys, int n, const char *what, provider_parse_fn parse,
                       uint64_t timeout_ms, size_t max_body, provider_fn done, void *arg,
                       char *err, size_t errlen);

/* Overwrites each occurrence of <secret> (a provider's key; NULL or "" is
 * none) in NUL-terminated <s> with '*', and the key's first 4 or more
 * characters at the end of <s> (where a cut reason ends): a receiver that
 * echoes a key back in an error must not put it in a reason, which goes
 * to the audit and the logs. Afterwards <s> holds neither, for a key
 * without '*' (the configuration takes none: config.h). */
void provider_redact(char *s, const char *secret);

/* Finds the number at <path> ("$.a.b[0]['c']" or "$.a[\"c\"]") in <root>:
 * a JSON number, or a string holding a plain decimal number. Returns 1
 * with *value or 0 with <reason>. */
int provider_json_path(const json_t *root, const char *path, double *value,
                       char *reason, size_t rlen);

#endif
