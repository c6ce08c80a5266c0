/* config.h - the YAML configuration: one file, several, or the YAML files
 * of a directory (read as one configuration), each a stream of Canary
 * documents, either
 * native (apiVersion canaryd/v1, unknown fields are errors) or Flagger's
 * (apiVersion flagger.app/v1beta1, spec.analysis as Flagger means it; the
 * Kubernetes-only fields are kept in <raw> for the mesh routers), and the
 * MetricTemplate and AlertProvider documents their metrics and alerts
 * refer to, in any of the files, as objects of one cluster do.
 * Every error is reported, each as "FILE:LINE:COL: message". */
#ifndef CANARYD_CONFIG_H
#define CANARYD_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>
#include "cost.h"
#include "engine.h"
#include "match.h"
#include "template.h"

typedef struct cfg_webhook {
	char *name;
	char *type;        /* pre-rollout, rollout, post-rollout, rollback, ... */
	char *url;         /* where it is posted; NULL for an exec hook */
	char **argv;       /* exec.command (canaryd/v1): the program and its
	                    * arguments, NULL-terminated; NULL for a URL hook */
	uint64_t timeout_ms;   /* default 10s as in Flagger (exec: exec.timeout,
	                        * else this) */
	json_t *metadata;      /* object or NULL */
	bool disable_tls;      /* Flagger's disableTLS: https without verifying */
	int retries;           /* Flagger's retries of a failed post (hooks.h) */
	bool mute_alert;       /* Flagger's muteAlert: a confirm-* gate that holds
	                        * sends no waiting alert */
} cfg_webhook;

/* An alert of spec.analysis.alerts[], its AlertProvider resolved. */
typedef struct cfg_alert {
	char *name;
	int severity;          /* notify_severity: info (default), warn, error */
	char *provider;        /* the AlertProvider's metadata.name */
	int kind;              /* notify_kind: slack, msteams, discord, generic */
	char *address;         /* where alerts are posted (never logged: a Slack
	                        * address is a secret) */
	char *token;           /* Bearer token (tokenFile/tokenEnv), or NULL */
	char *channel, *username; /* or NULL: Flagger's defaults */
} cfg_alert;

/* Proxy timeouts and limits (builtin router); defaults in comments. */
typedef struct cfg_timeouts {
	uint64_t connect_ms;   /* upstream connect, 5s */
	uint64_t response_ms;  /* upstream response head/idle, 30s -> 504 */
	uint64_t client_head_ms; /* client request head, 10s */
	uint64_t client_idle_ms; /* idle keep-alive client, 60s */
} cfg_timeouts;

/* The built-in proxy's settings (spec.timeouts, spec.workers, spec.limits,
 * spec.outlierDetection); defaults in comments. */
typedef struct cfg_proxy {
	cfg_timeouts timeouts;
	int workers;               /* event loops, one a thread, SO_REUSEPORT: 1 */
	int max_connections;       /* open client connections at most: 10000 */
	int outlier_errors;        /* consecutive failures that eject an endpoint: 5 (0: never) */
	uint64_t outlier_ejection_ms; /* how long an ejected endpoint stays out: 30s */
} cfg_proxy;

/* Active health checks of every endpoint (spec.healthCheck, router
 * builtin only); defaults in comments, as Envoy's and HAProxy's practice. */
typedef struct cfg_health {
	int enabled;               /* spec.healthCheck was given */
	char *path;                /* HTTP GET of this origin-form path ("/healthz"),
	                            * 2xx or 3xx passes; NULL: a TCP connect check */
	uint64_t interval_ms;      /* between two checks of an endpoint: 5s */
	uint64_t timeout_ms;       /* connect and answer of one check: 1s, at most
	                            * the interval */
	int unhealthy_threshold;   /* consecutive failures that take an endpoint out: 3 */
	int healthy_threshold;     /* consecutive passes that bring it back: 2 */
} cfg_health;

/* spec.analysis.sessionAffinity (Flagger's SessionAffinity), read by the
 * built-in proxy (proxy.h route_set_rules); the Kubernetes routers render
 * it from <raw>. */
typedef struct cfg_affinity {
	char *cookie_name;         /* cookieName; NULL: no affinity */
	long long max_age;         /* maxAge, seconds: 86400 */
	char *domain;              /* Domain, or NULL */
	char *path;                /* Path, or NULL */
	char *same_site;           /* Strict, Lax or None, or NULL */
	bool http_only, secure, partitioned;
	char *primary_cookie_name; /* primaryCookieName, or NULL */
} cfg_affinity;

/* Where a metric's values come from (metrics[i].provider, or the provider
 * of the MetricTemplate that metrics[i].templateRef names): a built-in
 * metric has none, and is read by the builtin provider (provider.h). */
typedef enum {
	CFG_PROVIDER_NONE = 0, CFG_PROVIDER_BUILTIN = CFG_PROVIDER_NONE,
	CFG_PROVIDER_PROMETHEUS, CFG_PROVIDER_WEB, CFG_PROVIDER_DATADOG, CFG_PROVIDER_NEWRELIC,
	/* a Flagger provider type canaryd does not read (datadog, cloudwatch,
	 * ...; type_name says which): valid, but canaryd does not start with
	 * it. Far from the others so that no table indexed by type reaches it. */
	CFG_PROVIDER_UNSUPPORTED = 100,
} cfg_provider_type;

/* The keys a datadog or newrelic provider sends (cfg_metric_source.key):
 * each read when the configuration is loaded from a file or an
 * environment variable that the configuration names, never written in it. */
enum { CFG_KEY_API, CFG_KEY_APP, CFG_KEY_QUERY, CFG_KEYS };

typedef struct cfg_metric_source {
	cfg_provider_type type;
	char *address;      /* prometheus: base URL, e.g. http://127.0.0.1:9090 */
	char *query;        /* prometheus: PromQL template ({{ name }}, {{ namespace }},
	                     * {{ target }}, {{ interval }}, {{ revision }}) */
	char *url;          /* web: URL template (same variables, URL-escaped) */
	char *method;       /* web: GET (default) or POST */
	json_t *headers;    /* web: object of header name -> value (a template), or NULL */
	char *body;         /* web: body template, or NULL */
	char *json_path;    /* web: where the number is, e.g. "$.data.value" */
	uint64_t timeout_ms;/* per request: 10s (datadog and newrelic: 5s, as Flagger) */
	char *account_id;   /* newrelic: the account, digits */
	/* datadog: [CFG_KEY_API] DD-API-KEY and [CFG_KEY_APP] DD-APPLICATION-KEY;
	 * newrelic: [CFG_KEY_QUERY] X-Query-Key. key[] holds the keys
	 * themselves (letters, digits and - _ . ~ + / =; never logged, shown
	 * or put in a message);
	 * key_file[] and key_env[] where each was read (provider.apiKeyFile,
	 * ...Env), for messages. */
	char *key[CFG_KEYS];
	char *key_file[CFG_KEYS];
	char *key_env[CFG_KEYS];
	char *template_name;/* the MetricTemplate it came from, or NULL */
	char *type_name;    /* CFG_PROVIDER_UNSUPPORTED: Flagger's provider type */
	const char *unread; /* a Flagger provider key canaryd cannot honour
	                     * ("secretRef", "insecureSkipVerify"), or NULL:
	                     * valid, but the metric does not start (main.c) */
	const char *unread_why; /* with <unread>: what to do instead, or NULL */
	tmpl_kv *variables; /* the metric's templateVariables ({{ variables.KEY }}),
	                     * keys and values owned */
	size_t n_variables;
} cfg_metric_source;

/* Where a value is in its file (1-based). */
typedef struct cfg_pos {
	int line, col;
} cfg_pos;

typedef struct cfg_canary {
	char *name;
	char *namespace_;      /* Flagger metadata.namespace or NULL */
	char *file;            /* the file the document is in */
	char *target;          /* Flagger: spec.targetRef.name, or NULL */
	char *service;         /* Flagger: spec.service.name, or NULL ({{ service }}) */
	char *ingress;         /* Flagger: spec.ingressRef.name, or NULL ({{ ingress }}) */
	char *route;           /* Flagger: spec.routeRef.name, or NULL ({{ route }}) */
	int flagger;           /* 1 for flagger.app/v1beta1 documents */
	char *router;          /* builtin | haproxy | istio | gatewayapi | smi | (Flagger provider) */
	char *listen;          /* builtin router: "HOST:PORT", or NULL */
	int mirror_weight;     /* analysis.mirror (builtin router): % of the requests
	                        * routed to stable that are also copied to the canary
	                        * while a rollout is analysed (analysis.mirrorWeight,
	                        * 100 unless set); 0 without mirror: true */
	/* router haproxy (spec.haproxy), else NULL */
	char *haproxy_api;     /* runtimeAPI: "unix:/path" or "HOST:PORT" */
	char *haproxy_backend; /* backend: where canaryd adds its own servers */
	char *haproxy_log;     /* log: "HOST:PORT" where canaryd takes HAProxy's
	                        * request logs (UDP syslog), or NULL */
	char *stable_rev;      /* may be NULL for Flagger documents */
	char **stable_eps;     /* "HOST:PORT" strings: an IP address, localhost
	                        * or a host name (resolve.h) */
	cfg_pos *stable_eps_pos; /* where each is, for --check's notes */
	size_t n_stable_eps;
	char *canary_rev;      /* NULL when there is no canary section */
	char **canary_eps;
	cfg_pos *canary_eps_pos;
	size_t n_canary_eps;
	uint64_t dns_refresh_ms; /* spec.dns.refresh: host names are looked up
	                          * again this often, 30s */
	eng_policy policy;     /* spec.analysis + progressDeadlineSeconds */
	cfg_webhook *webhooks;
	size_t n_webhooks;
	cfg_alert *alerts;     /* spec.analysis.alerts, each resolved */
	size_t n_alerts;
	cfg_proxy proxy;
	cfg_health health;     /* spec.healthCheck (enabled 0 without it) */
	cfg_metric_source sources[ENG_MAX_METRICS]; /* of policy.metrics[i] */
	match_set *match;      /* spec.analysis.match compiled, with router builtin
	                        * (the other routers render it from <raw>), or NULL */
	cfg_affinity affinity; /* spec.analysis.sessionAffinity */
	json_t *alert_matchers; /* spec.alerts.matchers: labels a firing alert must all
	                         * have to fail the rollout (object), or NULL; an alert
	                         * labelled canary=NAME always does */
	bool has_cost;         /* spec.cost (canaryd/v1): the rates status's "cost"
	                        * is computed with (docs/config.md) */
	cost_rates cost;
	char *runbook;         /* spec.runbook (canaryd/v1): the runbook's URL, linked
	                        * from rollback events and alerts, or NULL (the
	                        * daemon's --runbook-url then) */
	int line;              /* where the document starts (1-based) */
	json_t *raw;           /* the whole document as JSON (owned) */
} cfg_canary;

typedef struct cfg {
	char *path;            /* the first file read */
	char **files;          /* every file read, in the order read */
	size_t n_files;
	char **notes;          /* "FILE:LINE:COL: note: ..." lines for --check: what is
	                        * valid but will not run (a MetricTemplate of a
	                        * provider type canaryd does not read) */
	size_t n_notes;
	cfg_canary *canaries;
	size_t n_canaries;
} cfg;

/* What one load reads at most, far beyond any real configuration (a Canary
 * is a few hundred values in a few KB, nested about 8 deep), so that no file,
 * however it was made, makes a load slow or big: crossing one is an error at
 * the position where it happens, and reading stops there. */
#define CFG_MAX_BYTES     (4u << 20)  /* the file: 4 MiB */
#define CFG_MAX_DEPTH     64          /* mappings and lists nested in each other */
#define CFG_MAX_DOCUMENTS 1000        /* documents in the file, empty ones too */
#define CFG_MAX_VALUES    100000      /* values in the file, counting each use of an alias */
#define CFG_MAX_TEXT      (16u << 20) /* bytes of keys and scalars, likewise: 16 MiB */
#define CFG_MAX_ERRORS    1000        /* messages a load reports; one more says so */
/* and for a load of several files, in all */
#define CFG_MAX_FILES     256         /* files, those of directories included */
#define CFG_MAX_TOTAL_BYTES (32u << 20) /* bytes of all the files: 32 MiB */
#define CFG_MAX_TOTAL_VALUES 400000   /* values, as CFG_MAX_VALUES counts them */
#define CFG_MAX_TOTAL_TEXT (64u << 20) /* bytes of keys and scalars, as CFG_MAX_TEXT */

/* Error messages, each "FILE:LINE:COL: message" (LINE:COL 1:1 for what is
 * about the whole file), with control characters shown as \xNN. */
typedef struct cfg_errors {
	char **msg;
	size_t n, cap;
} cfg_errors;

/* Loads and validates <path>. On success returns 0 and *out (free with
 * cfg_free). On failure returns -1, *out is NULL, and every problem found is
 * appended to <errs> (an unreadable file or one that is not a regular file,
 * YAML syntax, a CFG_MAX_ bound crossed, unknown or mistyped fields, values
 * out of range, control characters in a string, duplicate canary names or
 * listen addresses).
 * cfg_load and cfg_load_string touch no global state and log nothing, so
 * they may run on another thread (the daemon loads a reload on the libuv
 * thread pool); what they return shares nothing with an earlier load. */
int cfg_load(const char *path, cfg **out, cfg_errors *errs);

/* As cfg_load, for the files and directories <paths> (<n> of them, at
 * least one) read as one configuration: a directory gives its *.yaml and
 * *.yml files (regular files, not hidden, not its subdirectories, as
 * `kubectl apply -f DIR`), sorted by name. Each message names the file it
 * is about; a templateRef or providerRef finds its document in any file;
 * a canary name used twice, in one file or two, is an error naming both
 * places. The CFG_MAX_ bounds apply to each file, CFG_MAX_FILES and the
 * CFG_MAX_TOTAL_ ones to all. A file named twice is read once. */
int cfg_load_paths(const char *const *paths, size_t n, cfg **out, cfg_errors *errs);

/* As cfg_load, from a string (<name> is used in messages). */
int cfg_load_string(const char *name, const char *text, size_t len, cfg **out,
                    cfg_errors *errs);

void cfg_free(cfg *c);                 /* NULL is a no-op */
void cfg_errors_release(cfg_errors *e);/* frees the messages */

/* The canary named <name>, or NULL. */
const cfg_canary *cfg_find(const cfg *c, const char *name);

#endif
