/* controller.h - the driver around the engine: one runtime per configured
 * canary (engine state, its router, stats), a tick timer that runs checks
 * and deadlines, metric reads through the providers, persistence before
 * traffic, and the operator commands behind the admin API. */
#ifndef CANARYD_CONTROLLER_H
#define CANARYD_CONTROLLER_H

#include <jansson.h>
#include <uv.h>

#include "config.h"
#include "engine.h"
#include "store.h"
#include "util.h"

typedef struct ctl ctl;

/* Creates the controller on <loop> with <db> (not owned) and applies
 * <conf> (ownership passes to the controller): restores each canary's state
 * from the database, starts the rollouts the configuration asks for, and
 * starts the proxies. Returns 0, or -1 with <err> filled (nothing started). */
int ctl_new(uv_loop_t *loop, store *db, cfg *conf, ctl **out, char *err,
            size_t errlen);

/* Applies a new, already validated configuration (SIGHUP) without closing
 * a connection. Takes ownership of <conf>. Returns 0, or -1 with <err> (the
 * running configuration is then kept and <conf> freed). */
int ctl_reload(ctl *c, cfg *conf, char *err, size_t errlen);

/* A command that waits for host name lookups (see ctl_command). */
typedef struct ctl_call ctl_call;

/* The end of a command that waited: <status> and, for 200, <result> (the
 * canary's status, owned by the callee) or, otherwise, <err>, as
 * ctl_command would have returned them. */
typedef void (*ctl_done_fn)(void *arg, int status, json_t *result, const char *err);

/* An operator command from the API. <action> is one of rollout, promote,
 * abort, pause, resume, approve, weight; <body> its JSON arguments (may be
 * NULL); <actor> who asked. Returns an HTTP status: 200 with *result the
 * canary's status, or 4xx/5xx with <err> filled.
 *
 * A rollout whose endpoints include host names is applied only once they
 * have resolved (a command that was accepted is a command traffic follows):
 * ctl_command then returns 0 and sets *pending, and <done>(<arg>, ...) is
 * called once, later, on the loop, with 200, or 422 naming the endpoint
 * that did not resolve (within 5 s) and the resolver's error. Until then
 * <body> and <actor> may go (they are copied). */
int ctl_command(ctl *c, const char *name, const char *action,
                const json_t *body, const char *actor, json_t **result,
                char *err, size_t errlen, ctl_done_fn done, void *arg,
                ctl_call **pending);

/* The caller of a pending command goes away (its connection closed): <done>
 * will not be called. The command itself still completes as it would have.
 * NULL is a no-op. */
void ctl_call_cancel(ctl_call *call);

/* Alertmanager's webhook payload: every firing alert whose labels match a
 * canary (canary=NAME, or all of the canary's spec.alerts.matchers) fails
 * that canary's running rollout at once, with the alert in the audit.
 * Returns an HTTP status: 200 with *result {"matched": [names]}, or 400
 * with <err>. */
int ctl_alerts(ctl *c, const json_t *payload, const char *actor, json_t **result,
               char *err, size_t errlen);

/* Status object of <name> (NULL when unknown), or the array of all when
 * <name> is NULL. Caller owns the result. */
json_t *ctl_status(ctl *c, const char *name);

/* The dashboard's series of <name> (NULL when unknown): {"canary",
 * "step": "5s", "available", "samples": [...]} with the samples of the
 * last 30 minutes whose time is after <since_ms> (0 for all), oldest
 * first, each {"t", "weight", "phase", "canary": {...}, "stable": {...}};
 * "available": false with a "reason" for a canary whose requests canaryd
 * does not see (a Kubernetes router). Each new sample also goes to the
 * event sink as "sample": {"canary", "sample"}. Caller owns the result. */
json_t *ctl_series(ctl *c, const char *name, uint64_t since_ms);

/* The runbook of canaries without spec.runbook (--runbook-url): <url>
 * (copied), or NULL/"" for none. Rollback, abort, failure-paused and undo
 * events and every alert then link to it, with the event's section of
 * docs/runbook.md as the fragment. */
void ctl_set_runbook_url(ctl *c, const char *url);

/* Adds "runbook" to each event of <events> (the events API's array for
 * canary <name>) that carries one, as the live events do. */
void ctl_event_links(ctl *c, const char *name, json_t *events);

/* True when <name> is a configured canary. */
int ctl_has(ctl *c, const char *name);

/* Records how the last configuration load ended (<ok> nonzero: loaded and
 * applied; 0: refused, the running one kept), for /metrics
 * (canaryd_config_last_reload_success and its timestamp). The daemon calls
 * it after ctl_new and after each SIGHUP's reload. */
void ctl_note_reload(ctl *c, int ok);

/* Appends the Prometheus exposition of every canary to <out>. */
void ctl_metrics(ctl *c, buf *out);

/* Called with each audit event as it is recorded ("audit": the event as
 * the events API gives it, less its id) and with the canary's status when
 * it changed ("status"); for live views (the admin API's event stream).
 * <data> is the callee's to read, not to keep. */
typedef void (*ctl_event_fn)(void *arg, const char *canary, const char *type,
                             const json_t *data);
void ctl_set_event_sink(ctl *c, ctl_event_fn fn, void *arg);

/* 0 while the database takes writes; 1 while writes fail (backing off) or
 * after it was found damaged, with <why> filled for /readyz. */
int ctl_store_health(ctl *c, char *why, size_t n);

/* Stops accepting new connections: every router drains (SIGTERM). */
void ctl_drain(ctl *c);
/* Requests in flight over all routers, and commands waiting for host
 * name lookups (answered within 5 s). */
size_t ctl_inflight(ctl *c);

/* Stops timers and closes every router and handle; frees <c> once closed
 * (run the loop afterwards until it ends). Frees the configuration. */
void ctl_close(ctl *c);

#endif
