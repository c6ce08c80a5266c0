/* router_builtin.c - the "builtin" router: canaryd's own proxy (proxy.h).
 * A split is applied at once: the route gets the endpoint sets' members and
 * the weight, and the next request follows them. A new listen address
 * (a reload) starts a second proxy before anything changes (prepare); the
 * old one then drains, closed once idle or after RETIRE_MAX_MS. While a
 * rollout runs, the canary's readiness is probed: a TCP connect to each of
 * its addresses every PROBE_EVERY_MS, ready when any answers; with
 * spec.healthCheck, ready when any of them is healthy (health.h), whose
 * checks run whatever the phase and take unhealthy endpoints out. */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health.h"
#include "list.h"
#include "log.h"
#include "util.h"

#define TICK_MS 100          /* probes and retired proxies are looked at this often */
#define PROBE_EVERY_MS 1000  /* a readiness round at most this often */
#define PROBE_TIMEOUT_MS 1000
#define RETIRE_MAX_MS 30000  /* a retired proxy is closed after this at most */

typedef struct probe probe;

typedef struct builtin {
	router base;
	uv_loop_t *loop;
	char *name;                   /* the canary's, for logs */
	route *route;
	proxy *px;
	char *listen;                 /* where px listens */
	proxy *staged;                /* prepared by a reload, not in use yet */
	char *staged_listen;
	struct retired {
		proxy *px;
		uint64_t since_ms;
	} *ret;                       /* proxies draining after a reload */
	size_t n_ret;
	router_events ev;             /* cleared by retire */
	int mirror_weight;            /* cfg_canary.mirror_weight */
	stats *st;                    /* the route's (not owned) */
	bool analysing;               /* the last split's watch_ready */
	uv_timer_t tick;              /* runs while probing or draining proxies */
	bool ticking;
	/* readiness probes of the canary's addresses */
	bool watching;
	unsigned round_id;
	uint64_t round_started_ms;
	int round_pending, round_ok;
	probe *probes;                /* in flight (each holds <b> until detached) */
	health *health;               /* spec.healthCheck's checks, or NULL */
} builtin;

/* ---- readiness probes (progressDeadlineSeconds) ---- */

struct probe {
	uv_tcp_t tcp;
	uv_connect_t req;
	uv_timer_t timer;
	builtin *b;                   /* NULL once the router went away */
	unsigned round;
	int closes;                   /* handles still to close before free */
	int done;
	probe *prev, *next;           /* in b->probes */
};

static void probe_closed(uv_handle_t *h)
{
	probe *p = h->data;
	if (--p->closes == 0)
		free(p);
}

static void report_ready(builtin *b, bool ready)
{
	if (b->ev.ready)
		b->ev.ready(b->ev.arg, ready);
}

static void probe_finish(probe *p, int ok)
{
	if (p->done)
		return;
	p->done = 1;
	builtin *b = p->b;
	if (b) {
		LIST_UNLINK(b->probes, p);
		if (b->watching && b->round_id == p->round) {
			b->round_ok += ok;
			if (--b->round_pending == 0)
				report_ready(b, b->round_ok > 0);
		}
	}
	uv_close((uv_handle_t *)&p->tcp, probe_closed);
	uv_close((uv_handle_t *)&p->timer, probe_closed);
}

static void probe_connected(uv_connect_t *req, int status)
{
	probe *p = req->data;
	if (status == UV_ECANCELED)
		return;
	probe_finish(p, status == 0);
}

static void probe_timeout(uv_timer_t *t)
{
	probe_finish(t->data, 0);
}

/* Probes one address of the canary: the route's, so that readiness is
 * judged on what requests are sent to (every address of a host name). */
static int probe_one(builtin *b, const struct sockaddr_storage *ss)
{
	probe *p = xcalloc(1, sizeof *p);
	p->b = b;
	p->round = b->round_id;
	uv_tcp_init(b->loop, &p->tcp);
	uv_timer_init(b->loop, &p->timer);
	p->closes = 2;
	p->tcp.data = p->timer.data = p->req.data = p;
	if (uv_tcp_connect(&p->req, &p->tcp, (const struct sockaddr *)ss, probe_connected) != 0) {
		p->done = 1;
		uv_close((uv_handle_t *)&p->tcp, probe_closed);
		uv_close((uv_handle_t *)&p->timer, probe_closed);
		return -1;
	}
	LIST_PUSH(b->probes, p);
	uv_timer_start(&p->timer, probe_timeout, PROBE_TIMEOUT_MS, 0);
	return 0;
}

/* Starts a round when the last one is over and PROBE_EVERY_MS has passed
 * since it started. */
static void probe_round(builtin *b, uint64_t now_mono)
{
	if (b->round_pending > 0 || now_mono - b->round_started_ms < PROBE_EVERY_MS)
		return;
	b->round_id++;
	b->round_started_ms = now_mono;
	b->round_ok = 0;
	b->round_pending = 0;
	/* a canary whose host names have not resolved has no member: unready */
	size_t n = route_members(b->route, TARGET_CANARY, NULL, 0);
	route_member *m = xcalloc(n ? n : 1, sizeof *m);
	n = route_members(b->route, TARGET_CANARY, m, n);
	for (size_t i = 0; i < n; i++)
		if (probe_one(b, &m[i].addr) == 0)
			b->round_pending++;
	free(m);
	if (b->round_pending == 0)
		report_ready(b, false);
}

/* The probes in flight will not report: their round is over (the rollout
 * ended) or their router is going away. */
static void probes_detach(builtin *b)
{
	while (b->probes) {
		probe *p = b->probes;
		LIST_UNLINK(b->probes, p);
		p->b = NULL;
	}
	b->round_pending = 0;
	b->round_id++;
}

/* ---- the tick: probes, and proxies retired by a reload ---- */

static void tick_cb(uv_timer_t *t);

static void tick_update(builtin *b)
{
	bool want = b->watching || b->n_ret > 0;
	if (want && !b->ticking)
		uv_timer_start(&b->tick, tick_cb, 0, TICK_MS);
	else if (!want && b->ticking)
		uv_timer_stop(&b->tick);
	b->ticking = want;
}

/* Closes the retired proxies that are idle, or all of them with <force>. */
static void retire_sweep(builtin *b, uint64_t now_mono, bool force)
{
	size_t j = 0;
	for (size_t i = 0; i < b->n_ret; i++) {
		struct retired *r = &b->ret[i];
		if (force || (proxy_inflight(r->px) == 0 && proxy_connections(r->px) == 0) ||
		    now_mono - r->since_ms > RETIRE_MAX_MS)
			proxy_close(r->px);
		else
			b->ret[j++] = *r;
	}
	b->n_ret = j;
}

static void tick_cb(uv_timer_t *t)
{
	builtin *b = t->data;
	uint64_t now = uv_now(b->loop);
	if (b->watching && b->health)
		report_ready(b, health_ready(b->health, TARGET_CANARY));
	else if (b->watching)
		probe_round(b, now);
	retire_sweep(b, now, false);
	tick_update(b);
}

static void retire_proxy(builtin *b, proxy *px)
{
	proxy_drain(px);
	b->ret = xrealloc(b->ret, (b->n_ret + 1) * sizeof *b->ret);
	b->ret[b->n_ret].px = px;
	b->ret[b->n_ret].since_ms = uv_now(b->loop);
	b->n_ret++;
	tick_update(b);
}

/* ---- the ops ---- */

static int b_check(const cfg_canary *cc, char *err, size_t errlen)
{
	if (!cc->listen) {
		snprintf(err, errlen, "canary '%s': router 'builtin' needs spec.listen", cc->name);
		return -1;
	}
	/* what the proxy would not make as asked (an A/B test run as a
	 * weighted split) is refused */
	const json_t *an = json_object_get(json_object_get(cc->raw, "spec"), "analysis");
	/* the configuration compiles analysis.match for this router; a
	 * configuration built otherwise must not run its A/B test by weight */
	if (json_array_size(json_object_get(an, "match")) > 0 && !cc->match) {
		snprintf(err, errlen, "canary '%s': spec.analysis.match: not compiled for router "
		         "'builtin'", cc->name);
		return -1;
	}
	if (json_object_get(an, "sessionAffinity") && !cc->affinity.cookie_name) {
		snprintf(err, errlen, "canary '%s': spec.analysis.sessionAffinity: no cookieName",
		         cc->name);
		return -1;
	}
	return 0;
}

/* The route's observer: passive outlier detection's reports. */
static void on_endpoint(void *arg, int target, const char *endpoint, int ejected,
                        const char *reason)
{
	builtin *b = arg;
	if (b->ev.endpoint)
		b->ev.endpoint(b->ev.arg, target, endpoint, ejected, reason);
}

/* The health checks' reports: an audit event, and the canary's readiness
 * at once when it may have changed. The controller may apply a split
 * meanwhile (health_sync): b->health stays. */
static void on_health(void *arg, int target, const char *endpoint, bool healthy,
                      const char *reason)
{
	builtin *b = arg;
	if (b->ev.health)
		b->ev.health(b->ev.arg, target, endpoint, healthy, reason);
	if (b->watching && b->health)
		report_ready(b, health_ready(b->health, TARGET_CANARY));
}

/* Starts, reconfigures or stops the health checks as <cc> says. */
static void health_follow(builtin *b, const cfg_canary *cc)
{
	if (cc->health.enabled && b->health) {
		health_configure(b->health, &cc->health);
	} else if (cc->health.enabled) {
		b->health = health_new(b->loop, b->route, &cc->health, on_health, b);
	} else if (b->health) {
		health_free(b->health);   /* every endpoint gets requests again */
		b->health = NULL;
	}
}

static int b_open(uv_loop_t *loop, const cfg_canary *cc, stats *st, const router_events *ev,
                  router **out, char *err, size_t errlen)
{
	builtin *b = xcalloc(1, sizeof *b);
	b->base.ops = &router_builtin;
	b->loop = loop;
	b->name = xstrdup(cc->name);
	b->ev = *ev;
	b->route = route_new(cc->name, st);
	b->mirror_weight = cc->mirror_weight;
	b->st = st;
	route_set_observer(b->route, on_endpoint, b);
	route_set_rules(b->route, cc->match, &cc->affinity, cc->policy.interval_ms);
	int rc = proxy_start(loop, cc->listen, b->route, &cc->proxy, &b->px, err, errlen);
	if (rc < 0) {
		route_release(b->route);
		free(b->name);
		free(b);
		return rc;
	}
	b->listen = xstrdup(cc->listen);
	uv_timer_init(loop, &b->tick);
	b->tick.data = b;
	health_follow(b, cc);
	log_msg(LOG_INFO, cc->name, "proxy listening on %s", cc->listen);
	*out = &b->base;
	return 0;
}

/* The identity of the rollout <s> is in, never 0: a hash (FNV-1a) of the
 * canary's name, the revision and the rollout's start, all persisted, so
 * that a restart keeps the clients' affinity cookies valid and a new
 * rollout (of the same revision too, after a rollback) makes them stale.
 * It names a rollout; it is no secret. */
static uint64_t rollout_id(const char *name, const router_split *s)
{
	uint64_t h = 14695981039346656037ULL;
	char when[24];
	snprintf(when, sizeof when, "%llu", (unsigned long long)s->rollout_started_ms);
	const char *parts[] = { name, "/", s->canary_rev ? s->canary_rev : "", "/", when };
	for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++)
		for (const unsigned char *p = (const unsigned char *)parts[i]; *p; p++)
			h = (h ^ *p) * 1099511628211ULL;
	return h ? h : 1;
}

static void b_apply(router *r, const router_split *s, router_done_fn done, void *arg)
{
	builtin *b = (builtin *)r;
	for (int t = 0; t < TARGET_COUNT; t++)
		route_set_members(b->route, t, s->members[t], s->n_members[t]);
	if (b->health)
		health_sync(b->health);
	route_set_weight(b->route, s->weight);
	/* as Flagger's blue/green with mirror: copies while the rollout is
	 * analysed, none once it is promoting, promoted or rolled back */
	b->analysing = s->watch_ready;
	route_set_mirror(b->route, b->analysing ? b->mirror_weight : 0);
	route_set_rollout(b->route, s->rollout ? rollout_id(b->name, s) : 0);
	if (s->watch_ready != b->watching) {
		b->watching = s->watch_ready;
		if (b->watching)
			b->round_started_ms = 0;   /* the first round at once */
		else
			probes_detach(b);
		tick_update(b);
	}
	done(arg, s->generation, 0, NULL);
}

static int b_prepare(router *r, const cfg_canary *cc, char *err, size_t errlen)
{
	builtin *b = (builtin *)r;
	if (strcmp(b->listen, cc->listen) == 0)
		return 0;
	if (proxy_start(b->loop, cc->listen, b->route, &cc->proxy, &b->staged, err, errlen) < 0)
		return -1;
	b->staged_listen = xstrdup(cc->listen);
	return 0;
}

static void b_finish(router *r, const cfg_canary *cc)
{
	builtin *b = (builtin *)r;
	health_follow(b, cc);
	b->mirror_weight = cc->mirror_weight;
	route_set_mirror(b->route, b->analysing ? b->mirror_weight : 0);
	route_set_rules(b->route, cc->match, &cc->affinity, cc->policy.interval_ms);
	if (!b->staged) {
		proxy_set_config(b->px, &cc->proxy);
		return;
	}
	retire_proxy(b, b->px);
	b->px = b->staged;
	b->staged = NULL;
	free(b->listen);
	b->listen = b->staged_listen;
	b->staged_listen = NULL;
	log_msg(LOG_INFO, b->name, "proxy now listening on %s", b->listen);
}

static void b_cancel(router *r)
{
	builtin *b = (builtin *)r;
	if (b->staged)
		proxy_close(b->staged);
	b->staged = NULL;
	free(b->staged_listen);
	b->staged_listen = NULL;
}

static void b_status(router *r, json_t *o)
{
	builtin *b = (builtin *)r;
	json_object_set_new(o, "listen", json_string(b->listen));
	if (b->health)
		json_object_set_new(o, "endpointHealth", health_json(b->health));
	if (b->mirror_weight > 0) {
		uint64_t m[STATS_MIRROR_COUNT];
		stats_mirror_totals(b->st, m);
		json_object_set_new(o, "mirror", json_pack("{s:i,s:I,s:I}",
		                    "weight", route_mirror(b->route),
		                    "sent", (json_int_t)m[STATS_MIRROR_SENT],
		                    "skipped", (json_int_t)(m[STATS_MIRROR_LIMIT] +
		                    m[STATS_MIRROR_SLOW] + m[STATS_MIRROR_CLIENT])));
	}
}

static void b_health_metrics(router *r, const char *canary, buf *out)
{
	builtin *b = (builtin *)r;
	if (b->health)
		health_prometheus(b->health, canary, out);
}

static size_t b_inflight(router *r)
{
	builtin *b = (builtin *)r;
	size_t n = proxy_inflight(b->px);
	for (size_t i = 0; i < b->n_ret; i++)
		n += proxy_inflight(b->ret[i].px);
	return n;
}

static size_t b_connections(router *r)
{
	builtin *b = (builtin *)r;
	size_t n = proxy_connections(b->px);
	for (size_t i = 0; i < b->n_ret; i++)
		n += proxy_connections(b->ret[i].px);
	return n;
}

static void b_drain(router *r)
{
	builtin *b = (builtin *)r;
	proxy_drain(b->px);
}

static void b_retire(router *r)
{
	builtin *b = (builtin *)r;
	route_set_observer(b->route, NULL, NULL);
	memset(&b->ev, 0, sizeof b->ev);
	b->watching = false;
	probes_detach(b);
	health_free(b->health);
	b->health = NULL;
	tick_update(b);
	proxy_drain(b->px);
}

static void tick_closed(uv_handle_t *h)
{
	builtin *b = h->data;
	free(b->ret);
	free(b->listen);
	free(b->name);
	free(b);
}

static void b_close(router *r)
{
	builtin *b = (builtin *)r;
	route_set_observer(b->route, NULL, NULL);
	memset(&b->ev, 0, sizeof b->ev);
	probes_detach(b);
	health_free(b->health);
	b->health = NULL;
	b_cancel(r);
	retire_sweep(b, 0, true);
	proxy_close(b->px);
	route_release(b->route);
	uv_close((uv_handle_t *)&b->tick, tick_closed);
}

const router_ops router_builtin = {
	.name = "builtin",
	.check = b_check,
	.open = b_open,
	.apply = b_apply,
	.prepare = b_prepare,
	.finish = b_finish,
	.cancel = b_cancel,
	.status = b_status,
	.health_metrics = b_health_metrics,
	.inflight = b_inflight,
	.connections = b_connections,
	.drain = b_drain,
	.retire = b_retire,
	.close = b_close,
};
