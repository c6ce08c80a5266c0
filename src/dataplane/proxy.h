/* proxy.h - the built-in HTTP/1.1 reverse proxy (the "builtin" router).
 *
 * A route is what the controller steers: two endpoint sets (stable, canary)
 * and the canary weight. A proxy is a listener bound to one route. Each new
 * request picks its target by smooth weighted round-robin over (100-w, w),
 * exact over many requests, then an endpoint of that target round-robin.
 * A weight or endpoint change applies to the next request: no connection is
 * closed and no request fails because of it; connections to endpoints that
 * left a set are closed once idle, requests in flight on them finish. */
#ifndef CANARYD_PROXY_H
#define CANARYD_PROXY_H

#include <stddef.h>
#include <stdint.h>
#include <uv.h>
#include "stats.h"
#include "config.h"

typedef struct route route;

/* A new route named <name> (the canary's name) that records every finished
 * request into <st> (not owned; must outlive the route). Weight 0, no
 * endpoints. */
route *route_new(const char *name, stats *st);

/* One member of an endpoint set: an address requests are sent to, and the
 * name logs and the observer give it. */
#define ROUTE_NAME_LEN 320
typedef struct route_member {
	char name[ROUTE_NAME_LEN];    /* "HOST:PORT" as configured; for one address
	                               * of a host name "NAME:PORT (ADDRESS)" */
	struct sockaddr_storage addr; /* port included */
} route_member;

/* Replaces the members of <target> (TARGET_STABLE/TARGET_CANARY) by
 * m[0..n) (copied). A member that stays (same name and address) keeps its
 * pooled connections and outlier state, also when it moves from one target
 * to the other (a promotion). It cannot fail: whoever builds the members
 * (the controller, from its endpoint sets and their host names' answers)
 * has already checked them, so that a change that was accepted is a change
 * that is applied. An out-of-range <target> is a programming error and
 * aborts. */
void route_set_members(route *r, int target, const route_member *m, size_t n);

/* The members of <target> as requests see them now: copies up to <max>
 * into <out> and returns how many there are. */
size_t route_members(const route *r, int target, route_member *out, size_t max);

/* Replaces the endpoints of <target> by <eps>, which must all be numeric
 * ("HOST:PORT" with an IPv4 or IPv6 address, or "localhost"): a shorthand
 * for callers that have no host names to resolve. Returns 0, or -1 with
 * <err> filled when one is not numeric (the route is then unchanged). */
int route_set_endpoints(route *r, int target, char *const *eps, size_t n,
                        char *err, size_t errlen);

/* Request rules (analysis.match, analysis.sessionAffinity). While a
 * rollout is active (route_set_rollout), a request is sent to the canary,
 * when it has endpoints, if
 *   1. it carries the affinity cookie of this rollout (sticky), or
 *   2. it matches <m> (an A/B test: one entry of the set), whatever the
 *      weight, 0 included;
 * else to stable if it carries this rollout's primary cookie; else by
 * weight. A response to a request the weight sent to the canary sets the
 * affinity cookie (cookieName=<rollout id>; Max-Age=maxAge and the
 * attributes), one the weight sent to stable the primary cookie (with
 * primaryCookieName; Max-Age: the analysis interval). An affinity cookie
 * of another rollout (ended, rolled back or promoted) pins nothing: the
 * request goes by weight, and its response deletes the cookie (Max-Age=0)
 * unless it sets a new one. With no rollout active, rules 1 and 2 send
 * nothing to the canary.
 * <m> (may be NULL) is referenced, <a> copied (NULL or no cookie name: no
 * affinity); <interval_ms> is the analysis interval. The next request of
 * every worker follows the new rules. */
#define ROUTE_COOKIE_LEN MATCH_COOKIE_NAME_MAX /* a cookie name, NUL included */
#define ROUTE_ATTRS_LEN 400           /* the cookie attributes after Max-Age */
void route_set_rules(route *r, match_set *m, const cfg_affinity *a, uint64_t interval_ms);

/* Whether a rollout is active, and which: <id> is a number that differs
 * from one rollout to the next (0: none active). Cookies carry it. */
void route_set_rollout(route *r, uint64_t id);

/* Sets the canary's share of new requests, 0..100 (clamped). */
void route_set_weight(route *r, int canary_weight);
int route_weight(const route *r);

/* Mirroring: <percent> (0..100, clamped) of the requests routed to stable
 * are also copied to a canary endpoint (Istio's mirror, with Host
 * "NAME-shadow" and X-Canaryd-Mirror: 1); the client is answered by
 * stable alone, and the canary's status and latency are recorded as its
 * requests (stats_record). 0 (the default) copies nothing. The router
 * sets it while a rollout with analysis.mirror is analysed. */
void route_set_mirror(route *r, int percent);
int route_mirror(const route *r);

/* Passive outlier detection: <fn> is told, on the loop thread that created
 * the route, when an endpoint of <target> is ejected (<ejected> 1, with the
 * reason, e.g. "5 consecutive failures: connection refused") and when it is
 * taken back (<ejected> 0). The controller writes these to the audit. */
typedef void (*route_observer_fn)(void *arg, int target, const char *endpoint,
                                  int ejected, const char *reason);
void route_set_observer(route *r, route_observer_fn fn, void *arg);

/* Frees the route once no proxy and no connection uses it. */
void route_release(route *r);

typedef struct proxy proxy;

/* Starts listening on <listen> ("HOST:PORT") for <r> on <loop>, with the
 * settings <pc> (copied, not retained). Returns 0, or a negative libuv error code
 * with <err> filled ("cannot listen on '127.0.0.1:8080': address already in
 * use"). */
int proxy_start(uv_loop_t *loop, const char *listen, route *r,
                const cfg_proxy *pc, proxy **out, char *err, size_t errlen);

/* Points a running proxy at another route / new settings (SIGHUP). */
void proxy_set_route(proxy *p, route *r);
void proxy_set_config(proxy *p, const cfg_proxy *pc);

/* Stops accepting new connections; connections in flight go on. Idle
 * keep-alive client connections are closed; others close after their
 * current response. */
void proxy_drain(proxy *p);

/* Requests in flight (received, response not finished). */
size_t proxy_inflight(const proxy *p);
/* Open client connections. */
size_t proxy_connections(const proxy *p);

/* Closes everything now (after a drain, or at exit) and frees <p> once every
 * handle is closed; <p> must not be used after the call. */
void proxy_close(proxy *p);

#endif
