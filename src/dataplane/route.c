/* route.c - routes and their endpoints (see proxy.h): the split between
 * stable and canary by smooth weighted round-robin, the request rules that
 * come before it (A/B match, session affinity), round-robin over each
 * target's endpoints, and passive outlier detection. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "dataplane.h"
#include "log.h"
#include "resolve.h"
#include "util.h"

/* ---- routes and endpoints ---------------------------------------------- */

static outlier *ol_new(void)
{
	outlier *ol = xcalloc(1, sizeof *ol);
	ol->refs = 1;
	return ol;
}

outlier *ol_ref(outlier *ol)
{
	__atomic_add_fetch(&ol->refs, 1, __ATOMIC_RELAXED);
	return ol;
}

void ol_unref(outlier *ol)
{
	if (ol && __atomic_sub_fetch(&ol->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(ol);
}

void ep_unref(endpoint *ep)
{
	if (ep && --ep->refs == 0) {
		ol_unref(ep->ol);
		free(ep);
	}
}

/* Marks <ep> as out of every set and closes its pooled connections. */
static void ep_retire(endpoint *ep)
{
	ep->removed = true;
	while (ep->n_idle > 0)
		up_close(ep->idle[ep->n_idle - 1]);   /* removes itself */
}

route *route_new(const char *name, stats *st)
{
	route *r = xcalloc(1, sizeof *r);
	r->refs = 1;
	r->name = xstrdup(name ? name : "");
	r->st = st;
	return r;
}

void route_ref(route *r) { r->refs++; }

void route_unref(route *r)
{
	if (!r || --r->refs > 0)
		return;
	for (int t = 0; t < TARGET_COUNT; t++) {
		for (size_t i = 0; i < r->set[t].n; i++) {
			ep_retire(r->set[t].v[i]);
			ep_unref(r->set[t].v[i]);
		}
		free(r->set[t].v);
	}
	route_ab_unref(r->ab);
	free(r->hubs);
	free(r->name);
	free(r);
}

void route_release(route *r) { route_unref(r); }

/* The endpoint of <r> named <name> at <addr>. Same member: same name and
 * same address. The name alone would do today (a host name's members
 * carry their address in it), but a pooled connection must never be
 * handed to a member whose address differs. */
static endpoint *route_find_ep(route *r, const char *name,
                               const struct sockaddr_storage *addr)
{
	for (int t = 0; t < TARGET_COUNT; t++)
		for (size_t i = 0; i < r->set[t].n; i++) {
			endpoint *ep = r->set[t].v[i];
			if (strcmp(ep->name, name) == 0 && rsv_addr_cmp(&ep->addr, addr) == 0)
				return ep;
		}
	return NULL;
}

/* Replaces the set of <target> by v[0..n). An endpoint that stays keeps
 * its object and pool (possibly moving from one target to the other on
 * promotion). A given outlier record (a replica's) replaces the
 * endpoint's; without one, a new endpoint gets a fresh record. */
void route_replace(route *r, int target, const epinfo *in, size_t n)
{
	endpoint **v = xcalloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		endpoint *ep = route_find_ep(r, in[i].name, &in[i].addr);
		if (!ep) {
			ep = xcalloc(1, sizeof *ep);
			snprintf(ep->name, sizeof ep->name, "%s", in[i].name);
			ep->addr = in[i].addr;
		}
		if (in[i].ol && ep->ol != in[i].ol) {
			ol_unref(ep->ol);
			ep->ol = ol_ref(in[i].ol);
		} else if (!ep->ol) {
			ep->ol = ol_new();
		}
		ep->refs++;
		v[i] = ep;
	}
	epset old = r->set[target];
	r->set[target].v = v;
	r->set[target].n = n;
	r->set[target].rr = 0;
	for (size_t i = 0; i < old.n; i++) {
		/* gone from both sets: its pooled connections close now, those
		 * in use once their request is done */
		if (!route_find_ep(r, old.v[i]->name, &old.v[i]->addr))
			ep_retire(old.v[i]);
		ep_unref(old.v[i]);
	}
	free(old.v);
}

void route_set_members(route *r, int target, const route_member *m, size_t n)
{
	if (target < 0 || target >= TARGET_COUNT) {
		fprintf(stderr, "canaryd: route_set_members: invalid target %d\n", target);
		abort();
	}
	epinfo *in = xcalloc(n ? n : 1, sizeof *in);
	for (size_t i = 0; i < n; i++) {
		memcpy(in[i].name, m[i].name, sizeof in[i].name);
		in[i].name[sizeof in[i].name - 1] = '\0';
		in[i].addr = m[i].addr;
	}
	route_replace(r, target, in, n);
	free(in);
	for (size_t i = 0; i < r->n_hubs; i++)
		hub_publish(r->hubs[i]);
}

size_t route_members(const route *r, int target, route_member *out, size_t max)
{
	if (target < 0 || target >= TARGET_COUNT)
		return 0;
	const epset *s = &r->set[target];
	for (size_t i = 0; i < s->n && i < max; i++) {
		memcpy(out[i].name, s->v[i]->name, sizeof out[i].name);
		out[i].addr = s->v[i]->addr;
	}
	return s->n;
}

int route_set_endpoints(route *r, int target, char *const *eps, size_t n,
                        char *err, size_t errlen)
{
	if (target < 0 || target >= TARGET_COUNT) {
		snprintf(err, errlen, "invalid target %d", target);
		return -1;
	}
	route_member *m = xcalloc(n ? n : 1, sizeof *m);
	for (size_t i = 0; i < n; i++) {
		char host[RSV_HOST_LEN], why[400];
		int port;
		rsv_kind k = strlen(eps[i]) >= sizeof m[i].name
		             ? RSV_INVALID
		             : rsv_parse(eps[i], host, sizeof host, &port, &m[i].addr, why, sizeof why);
		if (k != RSV_NUMERIC) {
			snprintf(err, errlen, "invalid address '%.200s': %s", eps[i],
			         k == RSV_NAME ? "a host name (resolve it first)"
			                       : "expected HOST:PORT with a numeric host");
			free(m);
			return -1;
		}
		snprintf(m[i].name, sizeof m[i].name, "%s", eps[i]);
	}
	route_set_members(r, target, m, n);
	free(m);
	return 0;
}

void route_set_weight(route *r, int canary_weight)
{
	if (canary_weight < 0)
		canary_weight = 0;
	if (canary_weight > 100)
		canary_weight = 100;
	/* workers read it, relaxed, at their next pick: no lock on the
	 * request path */
	ST(r->weight, canary_weight);
}

int route_weight(const route *r) { return LD(r->weight); }

void route_set_mirror(route *r, int percent)
{
	if (percent < 0)
		percent = 0;
	if (percent > 100)
		percent = 100;
	ST(r->mirror, percent);   /* read as the weight is (route_pick) */
}

int route_mirror(const route *r) { return LD(r->mirror); }

/* ---- request rules: A/B match and session affinity ---- */

route_ab *route_ab_ref(route_ab *ab)
{
	if (ab)
		__atomic_add_fetch(&ab->refs, 1, __ATOMIC_RELAXED);
	return ab;
}

void route_ab_unref(route_ab *ab)
{
	if (!ab || __atomic_sub_fetch(&ab->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	match_set_unref(ab->match);
	free(ab);
}

void route_set_rules(route *r, match_set *m, const cfg_affinity *a, uint64_t interval_ms)
{
	route_ab *ab = NULL;
	if (match_set_entries(m) > 0 || (a && a->cookie_name)) {
		ab = xcalloc(1, sizeof *ab);
		ab->refs = 1;
		ab->match = match_set_entries(m) > 0 ? match_set_ref(m) : NULL;
	}
	if (ab && a && a->cookie_name) {
		snprintf(ab->cookie, sizeof ab->cookie, "%s", a->cookie_name);
		ab->cookie_len = strlen(ab->cookie);
		ab->max_age = a->max_age > 0 ? a->max_age : 86400;
		if (a->primary_cookie_name) {
			snprintf(ab->pcookie, sizeof ab->pcookie, "%s", a->primary_cookie_name);
			ab->pcookie_len = strlen(ab->pcookie);
			/* Flagger: the analysis interval; a cookie of Max-Age 0
			 * would be deleted at once, so at least a second */
			ab->pmax_age = (long long)((interval_ms + 999) / 1000);
		}
		/* the attributes in Flagger's order (after Max-Age) */
		snprintf(ab->attrs, sizeof ab->attrs, "%s%s%s%s%s%s%s%s%s",
		         a->domain ? "; Domain=" : "", a->domain ? a->domain : "",
		         a->http_only ? "; HttpOnly" : "", a->partitioned ? "; Partitioned" : "",
		         a->path ? "; Path=" : "", a->path ? a->path : "",
		         a->same_site ? "; SameSite=" : "", a->same_site ? a->same_site : "",
		         a->secure ? "; Secure" : "");
	}
	route_ab *old = r->ab;
	r->ab = ab;
	route_ab_unref(old);
	for (size_t i = 0; i < r->n_hubs; i++)
		hub_publish(r->hubs[i]);
}

void route_set_rollout(route *r, uint64_t id)
{
	ST(r->rollout, id);
}

/* The cookie value of rollout <id> (16 hex digits), and of its primary
 * cookie (another 16, so that neither can be told from the other). */
static void cookie_value(uint64_t id, bool primary, char out[17])
{
	if (primary) {   /* splitmix64's finaliser */
		id ^= id >> 30;
		id *= 0xbf58476d1ce4e5b9ULL;
		id ^= id >> 27;
		id *= 0x94d049bb133111ebULL;
		id ^= id >> 31;
	}
	static const char hex[] = "0123456789abcdef";
	for (int i = 15; i >= 0; i--, id >>= 4)
		out[i] = hex[id & 15];
	out[16] = '\0';
}

/* Appends "Set-Cookie: <name>=<value>; Max-Age=<age><attrs>" to sc[*len..cap). */
static void set_cookie(char *sc, size_t cap, size_t *len, const char *name,
                       const char *value, long long age, const char *attrs)
{
	int n = snprintf(sc + *len, cap - *len, "Set-Cookie: %s=%s; Max-Age=%lld%s\r\n", name,
	                 value, age, attrs);
	if (n > 0 && (size_t)n < cap - *len)
		*len += (size_t)n;
}

/* Picks the target of request <q> (see route_set_rules for the rules, in
 * their order), and writes into sc[0..cap) the Set-Cookie lines its
 * response must carry (*sclen bytes, 0 for none). Without rules it is
 * route_pick. Allocates nothing; a match costs a look at the headers or
 * the query that its conditions name. */
int route_pick_request(route *r, const http_request *q, char *sc, size_t cap, size_t *sclen)
{
	*sclen = 0;
	const route_ab *ab = r->ab;
	if (!ab)
		return route_pick(r);
	uint64_t id = LD((r->src ? r->src : r)->rollout);
	bool active = id != 0 && r->set[TARGET_CANARY].n > 0;
	char val[17];
	bool stale = false;
	if (ab->cookie_len) {
		cookie_value(id, false, val);
		int k = match_cookie(q, ab->cookie, ab->cookie_len, val, 16);
		if (k == 2 && active)
			return TARGET_CANARY;   /* sticky while its rollout lasts */
		/* another rollout's (with none active every cookie is: no
		 * rollout has the value of id 0); this rollout's cookie is
		 * kept while its canary has no endpoint for a moment */
		stale = k == 1;
	}
	if (active && ab->match && match_request(ab->match, q))
		return TARGET_CANARY;
	char pval[17];
	if (active && ab->pcookie_len) {
		cookie_value(id, true, pval);
		if (r->set[TARGET_STABLE].n > 0 &&
		    match_cookie(q, ab->pcookie, ab->pcookie_len, pval, 16) == 2)
			return TARGET_STABLE;
	}
	int t = route_pick(r);
	if (active && t == TARGET_CANARY && ab->cookie_len) {
		set_cookie(sc, cap, sclen, ab->cookie, val, ab->max_age, ab->attrs);
		return t;
	}
	if (active && t == TARGET_STABLE && ab->pcookie_len)
		set_cookie(sc, cap, sclen, ab->pcookie, pval, ab->pmax_age, ab->attrs);
	if (stale)   /* a cookie of a rollout that is over: deleted */
		set_cookie(sc, cap, sclen, ab->cookie, "", 0, ab->attrs);
	return t;
}

/* Picks the target of the next request by smooth weighted round-robin over
 * (100-w, w) (nginx's algorithm: over any <total> consecutive picks each
 * target gets exactly its weight). A target without endpoints weighs 0; if
 * both weigh 0, any target with endpoints. Returns -1 when there is none.
 * With workers, each worker's replica keeps its own state: the split is
 * exact per worker, so over all workers it is exact to within one request
 * per worker (N requests for N workers) at any moment. */
int route_pick(route *r)
{
	int weight = LD((r->src ? r->src : r)->weight);
	int w[TARGET_COUNT];
	w[TARGET_STABLE] = r->set[TARGET_STABLE].n ? 100 - weight : 0;
	w[TARGET_CANARY] = r->set[TARGET_CANARY].n ? weight : 0;
	int total = w[0] + w[1];
	if (total == 0) {
		for (int t = 0; t < TARGET_COUNT; t++)
			if (r->set[t].n)
				return t;
		return -1;
	}
	if (w[0] != r->eff[0] || w[1] != r->eff[1]) {
		/* a new split starts a fresh cycle */
		r->eff[0] = w[0];
		r->eff[1] = w[1];
		r->cur[0] = r->cur[1] = 0;
	}
	r->cur[0] += w[0];
	r->cur[1] += w[1];
	int pick = r->cur[1] > r->cur[0] ? 1 : 0;
	r->cur[pick] -= total;
	return pick;
}

void route_set_observer(route *r, route_observer_fn fn, void *arg)
{
	r->obs = fn;
	r->obs_arg = arg;
}

static void route_notify(route *r, int target, endpoint *ep, int ejected,
                         const char *reason)
{
	if (ejected)
		log_msg(LOG_WARN, r->name, "%s endpoint '%s' ejected for %" PRIu64
		        " ms: %s", stats_target_name(target), ep->name,
		        r->ejection_ms, reason);
	else
		log_msg(LOG_INFO, r->name, "%s endpoint '%s' taken back: %s",
		        stats_target_name(target), ep->name, reason);
	if (r->obs)
		r->obs(r->obs_arg, target, ep->name, ejected, reason);
}

/* Moves <ol>'s ejected flag from <from> to !<from>; true for the one
 * thread that does it. */
static bool ol_flip(outlier *ol, int from)
{
	int expect = from;
	return __atomic_compare_exchange_n(&ol->ejected, &expect, !from, false,
	                                   __ATOMIC_ACQ_REL, __ATOMIC_RELAXED);
}

/* Brings <ep> back when its ejection time is over. Returns whether it is
 * (still) out. */
static bool ep_out(route *r, int target, endpoint *ep, uint64_t now)
{
	outlier *ol = ep->ol;
	if (!__atomic_load_n(&ol->ejected, __ATOMIC_ACQUIRE))
		return false;
	if (now < LD(ol->until))
		return true;
	if (ol_flip(ol, 1)) {
		ST(ol->fails, 0);
		route_notify(r, target, ep, 0, "ejection time over");
	}
	return false;
}

/* The next endpoint of <target> round-robin, skipping unhealthy ones
 * (active health checks, health.h), ejected ones and <avoid> while
 * another is available. When every endpoint is unhealthy, health is not
 * looked at (Envoy's panic mode: health.h says why); when every endpoint
 * is out, any of them (a request never fails for lack of endpoints).
 * NULL only when the set is empty. */
endpoint *ep_pick(route *r, int target, uint64_t now, endpoint *avoid)
{
	epset *s = &r->set[target];
	if (s->n == 0)
		return NULL;
	bool panic = true;
	for (size_t i = 0; i < s->n; i++) {
		endpoint *ep = s->v[s->rr++ % s->n];
		if (LD(ep->ol->unhealthy))
			continue;
		panic = false;
		if (ep != avoid && !ep_out(r, target, ep, now))
			return ep;
	}
	for (size_t i = 0; panic && i < s->n; i++) {
		endpoint *ep = s->v[s->rr++ % s->n];
		if (ep != avoid && !ep_out(r, target, ep, now))
			return ep;
	}
	endpoint *ep = s->v[s->rr++ % s->n];
	if (ep == avoid && s->n > 1)
		ep = s->v[s->rr++ % s->n];
	return ep;
}

/* Counts a failure of <ep> (connect refused/failed/timed out, a 5xx, no
 * answer): <why> is the last one's description. */
void ep_failed(route *r, int target, endpoint *ep, uint64_t now,
                      const char *why)
{
	if (!ep || r->outlier_errors <= 0)
		return;
	outlier *ol = ep->ol;
	if (__atomic_load_n(&ol->ejected, __ATOMIC_ACQUIRE)) {
		/* picked while every endpoint was out, and failed again */
		ST(ol->until, now + r->ejection_ms);
		return;
	}
	int fails = __atomic_add_fetch(&ol->fails, 1, __ATOMIC_RELAXED);
	if (fails < r->outlier_errors)
		return;
	/* the time first: a worker that sees the flag must see it too */
	ST(ol->until, now + r->ejection_ms);
	if (!ol_flip(ol, 0))
		return;   /* another worker ejected it and reported it */
	char reason[160];
	snprintf(reason, sizeof reason, "%d consecutive failures: %s", fails, why);
	route_notify(r, target, ep, 1, reason);
}

/* A response below 500 from <ep>. Reads only, in the usual case, so that
 * workers do not bounce the record's cache line. */
void ep_succeeded(route *r, int target, endpoint *ep)
{
	if (!ep)
		return;
	outlier *ol = ep->ol;
	if (LD(ol->fails))
		ST(ol->fails, 0);
	if (__atomic_load_n(&ol->ejected, __ATOMIC_ACQUIRE) && ol_flip(ol, 1))
		route_notify(r, target, ep, 0, "answered while ejected");
}
