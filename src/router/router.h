/* router.h - the router interface: what carries a canary's traffic split
 * out. The controller decides (the engine) and persists; a router is told
 * what traffic must look like and makes it so: the built-in proxy at once,
 * an external router (HAProxy's runtime API, a Kubernetes object) perhaps
 * later. One router instance per canary, of the kind spec.router names,
 * found in a table by that name (router_find): the controller never asks
 * which kind it drives.
 *
 * The contract between the two, so that status says what traffic does:
 * - every split the controller applies carries a generation, one more than
 *   the one before for that canary; the router reports each apply's end
 *   with its generation (router_done_fn), and a report for an older
 *   generation than one already reported is ignored: a late apply loses;
 * - a router calls the controller back only on the loop it was opened on,
 *   and never after retire or close (see router_ops);
 * - what a router reports (ejections, readiness) is about traffic as it
 *   is, whatever the engine's state. */
#ifndef CANARYD_ROUTER_H
#define CANARYD_ROUTER_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "config.h"
#include "proxy.h"
#include "stats.h"
#include "util.h"

typedef struct router router;
typedef struct router_ops router_ops;

/* Every router instance starts with this (its ops), so that the
 * controller can reach the ops from the instance. */
struct router {
	const router_ops *ops;
};

/* What the traffic must look like. The pointers are valid during the call
 * only (the router copies what it keeps). */
typedef struct router_split {
	uint64_t generation;              /* this canary's apply count: grows by one */
	int weight;                       /* the canary's share of new requests, 0..100 */
	const char *stable_rev;           /* the revisions (canary_rev "" when none) */
	const char *canary_rev;
	/* the addresses of each endpoint set (TARGET_STABLE, TARGET_CANARY):
	 * a numeric endpoint is one member, a host name one per address */
	const route_member *members[TARGET_COUNT];
	size_t n_members[TARGET_COUNT];
	bool watch_ready;                 /* a rollout runs: report the canary's
	                                   * readiness (progressDeadlineSeconds) */
	bool rollout;                     /* a rollout is active (Progressing ..
	                                   * Promoting): A/B match and affinity apply */
	uint64_t rollout_started_ms;      /* when it started: with canary_rev, its
	                                   * identity (affinity cookies carry it) */
} router_split;

/* The end of an apply: <status> 0 when traffic now follows the split of
 * <generation>, or a negative error with <err> (one line, for status and
 * the log). */
typedef void (*router_done_fn)(void *arg, uint64_t generation, int status, const char *err);

/* What a router tells the controller about traffic as it is, on the loop. */
typedef struct router_events {
	/* An endpoint of <target> was ejected (<ejected> 1) or taken back (0),
	 * with the reason (passive outlier detection). */
	void (*endpoint)(void *arg, int target, const char *endpoint, int ejected,
	                 const char *reason);
	/* While a split with watch_ready is in force: whether the canary can
	 * take requests, each time the router has found out. */
	void (*ready)(void *arg, bool ready);
	/* The workload the router watches now runs revision <rev> (a Kubernetes
	 * router: a hash of the target Deployment's pod template): the
	 * controller starts a rollout of it as `canaryctl rollout` would (no
	 * new endpoints), unless it is the stable revision or that of the last
	 * rollout (ended or not); the first revision seen with no stable one becomes
	 * the stable revision. May be NULL for routers that never call it. */
	void (*revision)(void *arg, const char *rev);
	/* The router changed something outside canaryd (a Kubernetes write):
	 * an audit event of <type> ("router-write") with <message>, actor
	 * "router". May be NULL. */
	void (*audit)(void *arg, const char *type, const char *message);
	/* Active health checks (spec.healthCheck) found endpoint <endpoint> of
	 * <target> <healthy> again or not, with the reason ("3 checks failed:
	 * connection refused"). May be NULL. */
	void (*health)(void *arg, int target, const char *endpoint, bool healthy,
	               const char *reason);
	void *arg;
} router_events;

struct router_ops {
	const char *name;                 /* spec.router */

	/* Whether this kind of router can drive canary <cc> (its settings, as
	 * far as the configuration loader left them to the router). Returns
	 * 0, or -1 with <err>. Pure: --check and a reload call it too. */
	int (*check)(const cfg_canary *cc, char *err, size_t errlen);

	/* Opens a router for <cc> on <loop>: the built-in proxy starts
	 * listening. Requests are recorded into <st> (not owned; must outlive
	 * the router). Traffic follows nothing until the first apply, which
	 * the caller makes before it returns to the loop. <ev> is copied.
	 * Returns 0 with *out, or a negative error with <err> filled (nothing
	 * is left open). */
	int (*open)(uv_loop_t *loop, const cfg_canary *cc, stats *st, const router_events *ev,
	            router **out, char *err, size_t errlen);

	/* Makes traffic follow <s>. <done> is called exactly once with
	 * s->generation, on the loop, perhaps before apply returns (the
	 * built-in proxy applies at once), never after retire or close. */
	void (*apply)(router *r, const router_split *s, router_done_fn done, void *arg);

	/* A new configuration <cc> for the same canary, in two steps so that
	 * a reload applies to every canary or to none: prepare does what can
	 * fail (a new listener) and leaves traffic as it is, returning 0 or -1
	 * with <err>; then either finish switches to it (it cannot fail) or
	 * cancel undoes the prepare. */
	int (*prepare)(router *r, const cfg_canary *cc, char *err, size_t errlen);
	void (*finish)(router *r, const cfg_canary *cc);
	void (*cancel)(router *r);

	/* Adds what status shows of this router to the canary's status <o>
	 * (the built-in proxy: "listen"). */
	void (*status)(router *r, json_t *o);

	/* Appends a canaryd_endpoint_healthy{canary, target, endpoint} sample
	 * per endpoint it checks the health of to <out>, <canary> being the
	 * canary's name; the controller writes the family's HELP and TYPE once
	 * for all canaries. NULL for routers that check no endpoint. */
	void (*health_metrics)(router *r, const char *canary, buf *out);

	/* Requests in flight, and client connections open. */
	size_t (*inflight)(router *r);
	size_t (*connections)(router *r);

	/* canaryd stops: no new connections; those in flight go on. */
	void (*drain)(router *r);
	/* The canary goes away: as drain, and no callback is made any more;
	 * close follows once it is idle or has had its time. */
	void (*retire)(router *r);
	/* Closes everything now; <r> is freed (once its handles are closed)
	 * and must not be used again. */
	void (*close)(router *r);
};

/* The router kinds this build drives, by spec.router name; NULL when it
 * drives none by that name. */
const router_ops *router_find(const char *name);

/* "'builtin'" or "'builtin', 'haproxy'": for messages. */
void router_names(char *out, size_t outlen);

/* Adds <ops> to the kinds router_find knows, ahead of the built-in ones
 * (at most 8): for tests, which drive the controller with a router of
 * their own. */
void router_register(const router_ops *ops);

extern const router_ops router_builtin;
extern const router_ops router_haproxy;   /* router_haproxy.c */

#endif
