/* health.h - active health checks of a route's endpoints (spec.healthCheck).
 *
 * Every member of both endpoint sets of a route (stable and canary; each
 * address of a host name) is checked every <interval>, on the loop that
 * owns the route, with libuv's TCP directly: nothing blocks, and a check
 * costs the proxy one connection. A check is a TCP connect, or with a
 * path an HTTP/1.1 "GET path" with "Connection: close" whose status line
 * is read (2xx or 3xx pass; a refused connect, no answer within
 * <timeout>, a close before the status line or any other status fail).
 *
 * An endpoint's state changes only after <unhealthyThreshold> consecutive
 * failures (out) or <healthyThreshold> consecutive passes (back), as
 * Envoy and HAProxy count; a new endpoint starts healthy (HAProxy's
 * default), so that a reload or a rollout does not take traffic away
 * before a check has failed. Each change is logged and reported.
 *
 * An unhealthy endpoint gets no new request: the proxy's endpoint choice
 * (route.c ep_pick) skips it, reading one flag of the endpoint's outlier
 * record, which every worker shares. When every endpoint of a target is
 * unhealthy, the proxy routes to them anyway (Envoy's panic mode): a
 * health path that is wrong, or checks that fail from canaryd alone, must
 * not turn a serving version into one that answers nothing; a canary in
 * that state is not ready (health_ready), which rolls it back after
 * progressDeadlineSeconds, and its requests' errors count in the
 * analysis. */
#ifndef CANARYD_HEALTH_H
#define CANARYD_HEALTH_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>
#include <uv.h>

#include "config.h"
#include "proxy.h"
#include "util.h"

/* ---- the threshold state machine (pure) ---- */

/* One endpoint's health as the checks have found it. */
typedef struct health_sm {
	bool healthy;                 /* starts true */
	int fails;                    /* consecutive failed checks */
	int passes;                   /* consecutive passed checks */
} health_sm;

#define HEALTH_SM_INIT { .healthy = true, .fails = 0, .passes = 0 }

/* Counts one check of <s> that passed (<ok>) or failed. Returns true when
 * it changed s->healthy: the <unhealthy>-th consecutive failure of a
 * healthy endpoint, or the <healthy>-th consecutive pass of an unhealthy
 * one (thresholds of at least 1). The counts saturate: any number of
 * checks is safe. */
bool health_sm_result(health_sm *s, bool ok, int unhealthy, int healthy);

/* Reads the status of an HTTP/1.x response from its first <len> bytes
 * <p>: 1 with *status (100..999) once the status line is complete, 0
 * while more bytes are needed, -1 when they cannot be an HTTP/1.x status
 * line. */
int health_parse_status(const char *p, size_t len, int *status);

/* ---- the checker ---- */

typedef struct health health;

/* A change of an endpoint's health: <endpoint> (route_member.name) of
 * <target> is now <healthy>, with <reason> ("3 checks failed: connection
 * refused", "2 checks passed"). Called on the loop; the callee may
 * change the route's members (health_sync) but not free the checker. */
typedef void (*health_fn)(void *arg, int target, const char *endpoint, bool healthy,
                          const char *reason);

/* Starts checking the members of <r> (referenced until health_free) on
 * <loop> as <hc> says (copied; hc->enabled must be set), reporting
 * changes to <fn>(<arg>) (may be NULL). The first checks start at once.
 * Call health_sync after each change of the route's members. */
health *health_new(uv_loop_t *loop, route *r, const cfg_health *hc, health_fn fn, void *arg);

/* New settings (a reload): the states found so far are kept, the next
 * checks follow <hc>. */
void health_configure(health *h, const cfg_health *hc);

/* The route's members changed: a new member starts healthy and is checked
 * at the next round, one that left is forgotten (its check in flight is
 * dropped), one that stays keeps its state, also when it moved to the
 * other target (a promotion). */
void health_sync(health *h);

/* Whether any member of <target> is healthy (false when it has none). */
bool health_ready(const health *h, int target);

/* The members' health for the canary's status: an array of {"endpoint",
 * "target", "healthy", "consecutiveFailures", "lastCheck" (RFC 3339, or
 * null before the first), "lastError" (the last failed check's, or
 * null)}. Caller owns it. */
json_t *health_json(const health *h);

/* Appends one sample of canaryd_endpoint_healthy{canary, target,
 * endpoint} per member to <out> (the family's HELP and TYPE are the
 * caller's, written once for every canary). */
void health_prometheus(const health *h, const char *canary, buf *out);

/* Stops the checks, clears the flags they set on the route's endpoints
 * (every one gets requests again), and frees <h> once its handles are
 * closed; checks in flight end without a report. NULL is a no-op. */
void health_free(health *h);

#endif
