/* controller.c - see controller.h.
 *
 * The engine decides; this file carries the decisions out. Every engine
 * call follows one pattern (commit()): keep the previous state, let the
 * engine move, persist the new state and its events in one transaction, and
 * only then touch traffic: the canary's router (router.h, whichever kind
 * spec.router names) is given the new split, with the next generation.
 *
 * When the database refuses the write (disk full, a damaged file), what
 * happens to the change depends on which way it moves users:
 * - A change that sends no more traffic to the canary than now (a rollback,
 *   an abort, a lower manual weight, a failed check, a pause, an audit-only
 *   event) takes effect at once anyway: users are protected first. The
 *   state stays in memory marked unsaved, its events wait in a bounded
 *   queue per canary (UNSAVED_MAX, the oldest dropped and counted beyond),
 *   and both are written, with the events' own times, as soon as the
 *   database takes writes again. A restart before that resumes from the
 *   last saved state: canaryd says so at shutdown.
 * - A change that would raise the canary's weight, promote it, or start a
 *   rollout waits until it is saved: the state is put back (a check that
 *   was made still counts as made, so the next one is an interval away),
 *   and the engine decides again once the database works.
 * So the state in memory, which status shows, is always what traffic is
 * told to do, and "stateSaved" says whether the database has it yet. A
 * router may apply a split later (a Kubernetes write, a HAProxy command):
 * status's canaryWeight is the weight of the last split it applied, and
 * "applying" the one it has not answered yet; an answer for an older
 * generation than one already answered loses.
 *
 * A failing database is retried with backoff, from STORE_RETRY_FIRST_MS
 * doubling to STORE_RETRY_MAX_MS, by writing what is unsaved (or, when
 * nothing is, one canary's state as it stands, to learn whether writes work
 * again); between attempts nothing touches the disk. A damaged one
 * (store.h: STORE_DAMAGED) is never written again until canaryd restarts.
 * Each change of condition (failing, damaged, saved again with the count of
 * failed attempts) is logged once, /readyz answers 503 with the reason, and
 * /metrics has canaryd_store_ok, canaryd_store_errors_total and
 * canaryd_store_unsaved_events. */
#include "controller.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cost.h"
#include "exec_hook.h"
#include "hooks.h"
#include "list.h"
#include "log.h"
#include "notify.h"
#include "provider.h"
#include "readings.h"
#include "resolve.h"
#include "router.h"
#include "router_k8s.h"
#include "series.h"
#include "stats.h"
#include "version.h"

#define TICK_MS 100          /* check/deadline resolution; intervals >= 100ms */
#define RETIRE_MAX_MS 30000  /* a retired router is closed after this at most */
#define APPLY_RETRY_MS 1000  /* a split the router failed to apply is tried
                              * again this long after */
#define APPLY_RING 8         /* splits a router may have in flight at once */
#define STORE_RETRY_FIRST_MS 100  /* first retry of a database that failed a write */
#define STORE_RETRY_MAX_MS 5000   /* the backoff doubles up to this */
#define UNSAVED_MAX 64            /* events kept per canary while unsaved */
#define CALL_RESOLVE_MS 5000 /* a command waits this long for its host names:
                              * canaryctl gives up after 10 s, and a command
                              * it reported as failed must not happen later */

typedef struct epset {
	char **ep;   /* "HOST:PORT", owned */
	size_t n;
} epset;

/* spec.cost counts requests of stable, of the canary, and of the
 * canary's answers to mirrored copies (a part of the canary's that no user
 * got): cost_totals. */
#define COST_COPIES TARGET_COUNT
#define COST_SLOTS (TARGET_COUNT + 1)

typedef struct canary_rt {
	ctl *owner;
	char *name;
	const cfg_canary *conf;     /* points into owner->conf */
	eng_state st;
	epset eps[TARGET_COUNT];    /* current endpoint sets (persisted) */
	epset prev_stable;          /* the stable set a promotion replaced, for
	                             * an undo within the undo window (persisted) */
	/* the confirm-* webhooks of the gate the engine waits for (polled
	 * each interval, eng_gate_answer) */
	int confirm_pending;        /* posts still running */
	unsigned confirm_gen;       /* rollout_gen they were posted for */
	eng_gate confirm_gate;
	bool confirm_ok;            /* every answer so far passed */
	char confirm_reason[128];   /* the first that did not */
	char confirm_last[160];     /* the last outcome audited */
	uint64_t confirm_next_mono; /* when to poll again */
	uint64_t watch_from_sec;    /* postPromotion: the new stable's counts
	                             * start at this monotonic second */
	rsv_table *names;           /* their host names (and the configuration's),
	                             * kept resolved; the router gets every address */
	bool stable_wait_logged;    /* the configuration's stable endpoints wait
	                             * for host names (logged once) */
	bool rollout_wait_logged;   /* so does the configuration's rollout */
	bool promote_wait_logged;   /* and the end of a promotion */
	stats *stats;
	router *router;             /* carries the split out (spec.router) */
	/* what the router was asked and what traffic does (router.h): status
	 * shows the weight of the last split applied */
	uint64_t gen;               /* the last split's generation */
	uint64_t done_gen;          /* the last generation the router answered */
	uint64_t applied_gen;       /* the last it applied: traffic follows it */
	int applied_weight;
	int asked[APPLY_RING];      /* the weight of each of the last splits, by
	                             * generation % APPLY_RING */
	char apply_err[1024];       /* why the last split failed, "" if it did not
	                             * (a Kubernetes 403 names the RBAC rule: long) */
	uint64_t apply_retry_ms;    /* monotonic: when a failed split is tried again */
	uint64_t data_from_sec;     /* monotonic second canary data counts from */
	/* judged_from_sec's answer, fixed for a rollout and warm-up: the
	 * judge's counts must not move their start by a second to and fro */
	uint64_t judged_sec, judged_rollout, judged_warmup;
	bool judged_known;
	int ready;                  /* the canary takes requests (the router says,
	                             * while a rollout runs) */
	/* webhook gates (pre-rollout until it passes, rollout on every check) */
	unsigned rollout_gen;       /* bumped by every new rollout */
	int pre_rollout_ok;         /* pre-rollout hooks passed in this rollout */
	int gate_pending;           /* gate posts and provider reads still running
	                             * for this check */
	eng_reading readings[ENG_MAX_METRICS]; /* the providers' for this check */
	int n_gates;
	/* rollback hooks, polled each interval (poll_rollback_hooks) */
	uint64_t rb_next_ms;        /* monotonic: the next poll */
	int rb_pending;             /* polls not answered yet */
	char rb_last[128];          /* the last "not signalling" answer audited */
	unsigned rb_gen;            /* the rollout rb_last is about */
	struct gate_result {
		char name[ENG_NAME_LEN];
		int ok;
		char reason[96];
	} gates[ENG_MAX_METRICS];
	/* counters for /metrics */
	uint64_t checks_pass, checks_fail, rollbacks, promotions;
	/* the last check's result of each metric, for /metrics (values with
	 * their thresholds: what a dashboard draws) */
	eng_metric_result last_check[ENG_MAX_METRICS];
	int n_last_check;
	/* applied to traffic but not in the database yet (head comment) */
	int unsaved;                /* st differs from the saved state */
	eng_event *unsaved_ev;      /* UNSAVED_MAX slots, oldest first */
	uint64_t *unsaved_ms;       /* when each happened (wall clock) */
	int n_unsaved;
	uint64_t unsaved_dropped;   /* events dropped from the full queue */
	int config_rollout_waits;   /* the configured rollout could not be saved:
	                             * started once the database takes writes,
	                             * unless another rollout started meanwhile */
	uint64_t config_rollout_over; /* rollout_started_ms it would replace */
	/* the dashboard's recent history: a sample per 5 s (series.h), of
	 * a canary whose requests canaryd sees (not a Kubernetes router's) */
	series *series;
	uint64_t series_end_sec;    /* monotonic: the bucket being filled ends
	                             * before this second; 0 before the first */
	/* spec.cost's counts of the current or last rollout: carried plus
	 * what the stats counted since base (cost_sums). Saved with the
	 * state, so that a restart loses at most what came since the last
	 * save (one check interval), never the whole rollout's counts */
	struct cost_run {
		uint64_t rollout_ms;    /* rollout_started_ms they are of, 0 none */
		uint64_t end_ms;        /* when the rollout ended, 0 while it runs */
		/* [stable, canary, copies] (COST_SLOTS): requests, 5xx */
		uint64_t carried[COST_SLOTS][2];   /* counted by an earlier canaryd,
		                                    * or all of them once it ended */
		uint64_t base[COST_SLOTS][2];      /* the totals when counting began */
	} cost;
} canary_rt;

typedef struct retired {
	router *r;
	uint64_t since_ms;
} retired;

struct ctl {
	uv_loop_t *loop;
	ctl_event_fn sink;        /* live views: ctl_set_event_sink */
	void *sink_arg;
	store *db;
	cfg *conf;
	canary_rt **rt;
	size_t n;
	uv_timer_t tick;
	retired *ret;             /* routers of removed canaries, draining */
	size_t n_ret;
	hooks *hk;                /* webhooks in flight */
	exec_hooks *ex;           /* exec hooks running */
	int quiet_hooks;          /* the commit in progress records a hook's or an
	                           * alert's result: no event hooks nor alerts */
	stats **graveyard;        /* stats of removed canaries (their routers may
	                           * still record) */
	size_t n_grave;
	int draining;
	/* whether the database takes writes (head comment) */
	struct store_health {
		enum { DB_OK = 0, DB_FAILING, DB_DAMAGED } state;
		uint64_t since_ms;    /* monotonic: when the failing began */
		uint64_t retry_at;    /* monotonic: the next attempt */
		uint64_t backoff_ms;
		uint64_t attempts;    /* failed attempts since the failing began */
		char why[320];        /* the first failure */
	} dbh;
	rsv *rsv;                 /* host name lookups */
	ctl_call *calls;          /* commands waiting for their host names */
	/* the last configuration load (ctl_note_reload), for /metrics */
	int reload_failed;        /* the last one failed: the running one is kept */
	uint64_t reload_ok_ms;    /* wall clock of the last that succeeded */
	char *runbook_url;        /* --runbook-url: the runbook of canaries
	                           * without spec.runbook, or NULL */
};

/* ---- endpoint sets ---- */

static void epset_free(epset *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->ep[i]);
	free(s->ep);
	s->ep = NULL;
	s->n = 0;
}

static void epset_from(epset *s, char *const *eps, size_t n)
{
	s->ep = xcalloc(n ? n : 1, sizeof *s->ep);
	for (size_t i = 0; i < n; i++)
		s->ep[i] = xstrdup(eps[i]);
	s->n = n;
}

static int epset_equal(const epset *a, char *const *eps, size_t n)
{
	if (a->n != n)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (strcmp(a->ep[i], eps[i]) != 0)
			return 0;
	return 1;
}

static char *epset_join(const epset *s)
{
	buf b = BUF_INIT;
	buf_puts(&b, "");
	for (size_t i = 0; i < s->n; i++)
		buf_printf(&b, "%s%s", i ? "," : "", s->ep[i]);
	return b.p;
}

/* Splits "a,b,c" into <s>; an empty or NULL string gives an empty set. */
static void epset_split(epset *s, const char *csv)
{
	s->ep = NULL;
	s->n = 0;
	if (!csv || !*csv)
		return;
	size_t cap = 1;
	for (const char *p = csv; *p; p++)
		cap += *p == ',';
	s->ep = xcalloc(cap, sizeof *s->ep);
	const char *p = csv;
	while (*p) {
		const char *e = strchr(p, ',');
		size_t l = e ? (size_t)(e - p) : strlen(p);
		if (l) {
			s->ep[s->n] = xmalloc(l + 1);
			memcpy(s->ep[s->n], p, l);
			s->ep[s->n][l] = '\0';
			s->n++;
		}
		p += l + (e ? 1 : 0);
	}
}

/* Drops from set <target> of <rt> (read from the database) what is not an
 * endpoint, saying so: the status must not show what traffic cannot use. */
static void epset_drop_invalid(canary_rt *rt, int target)
{
	epset *s = &rt->eps[target];
	size_t j = 0;
	for (size_t i = 0; i < s->n; i++) {
		char host[RSV_HOST_LEN], why[400];
		int port;
		if (rsv_parse(s->ep[i], host, sizeof host, &port, NULL, why, sizeof why) != RSV_INVALID) {
			s->ep[j++] = s->ep[i];
			continue;
		}
		log_msg(LOG_ERROR, rt->name, "%s endpoint from the database dropped: %s",
		        stats_target_name(target), why);
		free(s->ep[i]);
	}
	s->n = j;
}

static json_t *epset_json(const epset *s)
{
	json_t *a = json_array();
	for (size_t i = 0; i < s->n; i++)
		json_array_append_new(a, json_string(s->ep[i]));
	return a;
}

/* ---- endpoints and their addresses ----
 *
 * The endpoint sets (rt->eps) are what the operator wrote: they are what is
 * persisted, shown and audited. The router gets their members: a numeric
 * endpoint is one member; a host name is one member per address of its last
 * good answer (rt->names), and none while it has never resolved. Every
 * change of a set is checked with eps_ready wherever it can still be refused
 * or held back (an operator's command, the configuration), so that what is
 * committed is what the router carries out; apply_traffic cannot fail. */

/* 0 when every endpoint of eps[0..n) can get requests now (numeric, or a
 * host name with addresses), else -1 with <err> naming the first one that
 * cannot, <what> first ("canary endpoint"), and *first_lookup (may be NULL)
 * true when that one is only waiting for its first answer. */
static int eps_ready(canary_rt *rt, char *const *eps, size_t n, const char *what,
                     char *err, size_t errlen, bool *first_lookup)
{
	if (first_lookup)
		*first_lookup = false;
	for (size_t i = 0; i < n; i++) {
		char host[RSV_HOST_LEN], why[400];
		int port;
		rsv_kind k = rsv_parse(eps[i], host, sizeof host, &port, NULL, why, sizeof why);
		if (k == RSV_NUMERIC)
			continue;
		if (k == RSV_INVALID) {
			snprintf(err, errlen, "%s %s", what, why);
			return -1;
		}
		rsv_name nm;
		int known = rsv_table_find(rt->names, host, &nm);
		if (known && nm.addrs->n)
			continue;
		if (known && nm.error)
			snprintf(err, errlen, "%s '%s': host name '%s' does not resolve: %s", what,
			         eps[i], host, nm.error);
		else
			snprintf(err, errlen, "%s '%s': host name '%s' has not resolved yet", what,
			         eps[i], host);
		if (first_lookup)
			*first_lookup = !known || !nm.looked_up;
		return -1;
	}
	return 0;
}

/* The router members of <s> (see above); *n_out of them, to free. */
static route_member *members_of(canary_rt *rt, const epset *s, size_t *n_out)
{
	route_member *m = NULL;
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < s->n; i++) {
		char host[RSV_HOST_LEN], why[400];
		int port;
		struct sockaddr_storage ss;
		rsv_kind k = rsv_parse(s->ep[i], host, sizeof host, &port, &ss, why, sizeof why);
		rsv_name nm;
		size_t add = k == RSV_NUMERIC ? 1
		           : k == RSV_NAME && rsv_table_find(rt->names, host, &nm) ? nm.addrs->n : 0;
		if (n + add > cap) {
			cap = (n + add) * 2;
			m = xrealloc(m, cap * sizeof *m);
		}
		if (k == RSV_NUMERIC) {
			memset(&m[n], 0, sizeof m[n]);
			snprintf(m[n].name, sizeof m[n].name, "%s", s->ep[i]);
			m[n++].addr = ss;
			continue;
		}
		for (size_t a = 0; a < add; a++) {
			char ip[RSV_ADDR_LEN];
			memset(&m[n], 0, sizeof m[n]);
			m[n].addr = nm.addrs->v[a];
			rsv_addr_set_port(&m[n].addr, port);
			rsv_addr_text(&m[n].addr, ip, sizeof ip);
			/* the operator's name first: logs and the audit say which
			 * endpoint, the address which of its members */
			snprintf(m[n].name, sizeof m[n].name, "%s (%s)", s->ep[i], ip);
			n++;
		}
	}
	*n_out = n;
	return m;
}

/* Does the member named <member> belong to endpoint <ep>? */
static bool member_of(const char *member, const char *ep)
{
	size_t l = strlen(ep);
	return strncmp(member, ep, l) == 0 && (member[l] == '\0' || strncmp(member + l, " (", 2) == 0);
}

static void want_hosts(canary_rt *rt, char *const *eps, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		char host[RSV_HOST_LEN];
		if (rsv_host_of(eps[i], host, sizeof host))
			rsv_table_want(rt->names, host);
	}
}

/* Keeps resolved the host names of both sets, and those of the
 * configuration's sets that may yet be applied (a stable set that differs
 * from the running one, a rollout not started yet); forgets the rest. */
static void want_names(canary_rt *rt)
{
	const cfg_canary *cc = rt->conf;
	rsv_table_unmark(rt->names);
	for (int t = 0; t < TARGET_COUNT; t++)
		want_hosts(rt, rt->eps[t].ep, rt->eps[t].n);
	if (cc->stable_rev && strcmp(cc->stable_rev, rt->st.stable_rev) == 0)
		want_hosts(rt, cc->stable_eps, cc->n_stable_eps);
	if (cc->canary_rev && strcmp(cc->canary_rev, rt->st.stable_rev) != 0 &&
	    strcmp(cc->canary_rev, rt->st.canary_rev) != 0)
		want_hosts(rt, cc->canary_eps, cc->n_canary_eps);
	rsv_table_sweep(rt->names);
}

/* ---- lookup ---- */

static canary_rt *find_rt(ctl *c, const char *name)
{
	/* during a reload, removed runtimes leave NULL holes in c->rt */
	for (size_t i = 0; i < c->n; i++)
		if (c->rt[i] && strcmp(c->rt[i]->name, name) == 0)
			return c->rt[i];
	return NULL;
}

int ctl_has(ctl *c, const char *name)
{
	return find_rt(c, name) != NULL;
}

/* ---- runbook links ---- */

/* The section of docs/runbook.md about an event of <type>, or NULL for
 * the runbook as a whole. */
static const char *runbook_anchor(const char *type)
{
	static const struct { const char *type, *anchor; } rows[] = {
		{ "rollback", "canary-rolled-back" },
		{ "abort", "canary-rolled-back" },
		{ "failure-paused", "canary-paused-by-failed-checks" },
		{ "undo", "undoing-a-promotion" },
		{ "waiting", "canary-stuck-waiting" },
		{ "max-duration", "canary-paused-too-long" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
		if (!strcmp(rows[i].type, type))
			return rows[i].anchor;
	return NULL;
}

/* Whether an audit event of <type> carries a runbook link: those after
 * which on-call has something to do. */
static bool runbook_event(const char *type)
{
	return !strcmp(type, "rollback") || !strcmp(type, "abort") ||
	       !strcmp(type, "failure-paused") || !strcmp(type, "undo");
}

/* The runbook link for an event of <type> of <rt> (malloc'd), or NULL
 * when neither spec.runbook nor --runbook-url names a runbook: the URL
 * with the event's section as its fragment, unless it has a fragment of
 * its own (a page per canary, say), which is kept as it is. */
static char *runbook_link(const canary_rt *rt, const char *type)
{
	const char *base = rt->conf->runbook ? rt->conf->runbook : rt->owner->runbook_url;
	if (!base || !base[0])
		return NULL;
	const char *a = runbook_anchor(type);
	if (!a || strchr(base, '#'))
		return xstrdup(base);
	buf b = BUF_INIT;
	buf_printf(&b, "%s#%s", base, a);
	return b.p;
}

void ctl_set_runbook_url(ctl *c, const char *url)
{
	free(c->runbook_url);
	c->runbook_url = url && url[0] ? xstrdup(url) : NULL;
}

void ctl_event_links(ctl *c, const char *name, json_t *events)
{
	canary_rt *rt = find_rt(c, name);
	size_t i;
	json_t *ev;
	json_array_foreach(events, i, ev) {
		const char *type = json_string_value(json_object_get(ev, "type"));
		if (!rt || !type || !runbook_event(type))
			continue;
		char *link = runbook_link(rt, type);
		if (link)
			json_object_set_new(ev, "runbook", json_string(link));
		free(link);
	}
}

/* ---- cost (spec.cost) ---- */

/* The counts of the current or last rollout: out[target] = {requests, 5xx}. */
/* The stats' totals of cost slot <t> (COST_SLOTS). */
static void cost_totals(const canary_rt *rt, int t, uint64_t *n, uint64_t *e)
{
	if (t == COST_COPIES)
		stats_copy_totals(rt->stats, n, e);
	else
		stats_totals(rt->stats, t, n, e);
}

static void cost_sums(const canary_rt *rt, uint64_t out[COST_SLOTS][2])
{
	const struct cost_run *cr = &rt->cost;
	for (int t = 0; t < COST_SLOTS; t++) {
		out[t][0] = cr->carried[t][0];
		out[t][1] = cr->carried[t][1];
		if (!cr->rollout_ms || cr->end_ms)
			continue;
		uint64_t n, e;
		cost_totals(rt, t, &n, &e);
		/* the stats count from canaryd's start: never below base */
		out[t][0] += n >= cr->base[t][0] ? n - cr->base[t][0] : 0;
		out[t][1] += e >= cr->base[t][1] ? e - cr->base[t][1] : 0;
	}
}

/* Follows rt->st: a new rollout starts its counts from the stats' totals
 * now; a rollout that ended keeps what it counted, and its end. */
static void cost_follow(canary_rt *rt)
{
	struct cost_run *cr = &rt->cost;
	if (rt->st.rollout_started_ms != cr->rollout_ms) {
		memset(cr, 0, sizeof *cr);
		cr->rollout_ms = rt->st.rollout_started_ms;
		for (int t = 0; t < COST_SLOTS; t++)
			cost_totals(rt, t, &cr->base[t][0], &cr->base[t][1]);
	}
	if (cr->rollout_ms && !cr->end_ms && !eng_active(&rt->st)) {
		uint64_t sums[COST_SLOTS][2];
		cost_sums(rt, sums);
		memcpy(cr->carried, sums, sizeof sums);
		/* the engine's time of the transition: the same after a restart */
		cr->end_ms = rt->st.last_transition_ms ? rt->st.last_transition_ms : util_wall_ms();
	}
}

/* The "cost" object of status (docs/config.md, spec.cost). */
static json_t *cost_json(const canary_rt *rt)
{
	const cost_rates *r = &rt->conf->cost;
	const struct cost_run *cr = &rt->cost;
	uint64_t sums[COST_SLOTS][2];
	cost_sums(rt, sums);
	uint64_t end = cr->end_ms ? cr->end_ms : util_wall_ms();
	/* the copies are a part of the canary's answers (never more: the
	 * counters are read one after the other, while workers count) */
	uint64_t copies = sums[COST_COPIES][0], copies_failed = sums[COST_COPIES][1];
	if (copies > sums[TARGET_CANARY][0])
		copies = sums[TARGET_CANARY][0];
	if (copies_failed > sums[TARGET_CANARY][1])
		copies_failed = sums[TARGET_CANARY][1];
	cost_counts k = {
		.hours = cr->rollout_ms && end > cr->rollout_ms
		         ? (double)(end - cr->rollout_ms) / 3600000.0 : 0,
		.canary_requests = sums[TARGET_CANARY][0],
		.canary_failed = sums[TARGET_CANARY][1],
		.copies_failed = copies_failed,
		.all_requests = sums[TARGET_CANARY][0] - copies + sums[TARGET_STABLE][0],
		.all_failed = sums[TARGET_CANARY][1] - copies_failed + sums[TARGET_STABLE][1],
		.rolled_back = cr->rollout_ms && cr->end_ms && rt->st.phase == ENG_FAILED,
	};
	cost_result res;
	cost_compute(r, &k, &res);
	json_t *o = json_object();
	json_object_set_new(o, "currency", json_string(r->currency));
	json_object_set_new(o, "perMillionRequests", json_real(r->per_million));
	json_object_set_new(o, "canaryHourly", json_real(r->hourly));
	json_object_set_new(o, "failedRequest", json_real(r->failed));
	char since[40];
	if (cr->rollout_ms)
		util_rfc3339(cr->rollout_ms, since, sizeof since);
	json_object_set_new(o, "since", cr->rollout_ms ? json_string(since) : json_null());
	json_object_set_new(o, "canaryHours", json_real(k.hours));
	json_object_set_new(o, "canaryRequests", json_integer((json_int_t)k.canary_requests));
	json_object_set_new(o, "canaryFailedRequests", json_integer((json_int_t)k.canary_failed));
	json_object_set_new(o, "mirroredRequests", json_integer((json_int_t)copies));
	json_object_set_new(o, "mirroredFailedRequests", json_integer((json_int_t)copies_failed));
	json_object_set_new(o, "failedRequestsServed",
	                    json_integer((json_int_t)(k.canary_failed - copies_failed)));
	json_object_set_new(o, "requests", json_integer((json_int_t)k.all_requests));
	json_object_set_new(o, "failedRequests", json_integer((json_int_t)k.all_failed));
	json_object_set_new(o, "runningCost", json_real(res.running));
	json_object_set_new(o, "failedRequestsCost", json_real(res.failed_cost));
	json_object_set_new(o, "savedByRollback", res.has_saved ? json_real(res.saved) : json_null());
	json_object_set_new(o, "fullRolloutFailedRequests",
	                    res.has_saved ? json_real(res.full_failed) : json_null());
	return o;
}

/* ---- the dashboard's series ---- */

/* Whether canaryd sees the canary's requests: its own proxy's and
 * HAProxy's, not a Kubernetes router's (the mesh counts those). */
static bool sees_traffic(const canary_rt *rt)
{
	return !router_k8s_find(rt->conf->router);
}

static json_t *side_json(const series_side *sd)
{
	double rate;
	json_t *o = json_object();
	json_object_set_new(o, "requests", json_integer((json_int_t)sd->requests));
	json_object_set_new(o, "errors", json_integer((json_int_t)sd->errors));
	json_object_set_new(o, "errorRate",
	                    series_error_rate(sd, &rate) ? json_real(rate) : json_null());
	json_object_set_new(o, "p50", sd->p50 >= 0 ? json_real(sd->p50) : json_null());
	json_object_set_new(o, "p95", sd->p95 >= 0 ? json_real(sd->p95) : json_null());
	json_object_set_new(o, "p99", sd->p99 >= 0 ? json_real(sd->p99) : json_null());
	return o;
}

static json_t *sample_json(const series_sample *smp)
{
	json_t *o = json_object();
	json_object_set_new(o, "t", json_integer((json_int_t)smp->t_ms));
	json_object_set_new(o, "weight", json_integer(smp->weight));
	json_object_set_new(o, "phase", json_string(eng_phase_name((eng_phase)smp->phase)));
	json_object_set_new(o, "canary", side_json(&smp->side[TARGET_CANARY]));
	json_object_set_new(o, "stable", side_json(&smp->side[TARGET_STABLE]));
	return o;
}

/* The first bucket end after monotonic second <now_sec> that falls on a
 * wall-clock multiple of SERIES_STEP_SEC (<off_ms>: wall minus monotonic),
 * so that every canary's samples share their times. */
static uint64_t series_next_end(uint64_t now_sec, int64_t off_ms)
{
	uint64_t end = now_sec + 1;
	for (int i = 0; i < SERIES_STEP_SEC; i++, end++)
		if ((((int64_t)end * 1000 + off_ms) / 1000) % SERIES_STEP_SEC == 0)
			break;
	return end;
}

/* Takes the samples of the buckets that ended by <now_mono> (ms) from the
 * stats rings, and publishes each as a "sample" event. */
static void series_tick(canary_rt *rt, uint64_t now_wall, uint64_t now_mono)
{
	if (!sees_traffic(rt))
		return;
	uint64_t now_sec = now_mono / 1000;
	int64_t off = (int64_t)now_wall - (int64_t)now_mono;
	if (!rt->series_end_sec) {
		rt->series_end_sec = series_next_end(now_sec, off);
		return;
	}
	/* a loop held up for a minute owes 12 buckets: taken, up to a bound;
	 * beyond it the series starts again from now */
	for (int k = 0; now_sec >= rt->series_end_sec; k++) {
		if (k == 12) {
			rt->series_end_sec = series_next_end(now_sec, off);
			break;
		}
		uint64_t end = rt->series_end_sec;
		series_sample smp = {
			.t_ms = (uint64_t)((int64_t)end * 1000 + off),
			.weight = rt->applied_weight,
			.phase = rt->st.phase,
		};
		stats_summary sum;
		for (int t = 0; t < TARGET_COUNT; t++) {
			stats_query(rt->stats, t, end - SERIES_STEP_SEC, end - 1, &sum);
			series_side_from(&smp.side[t], &sum);
		}
		rt->series_end_sec += SERIES_STEP_SEC;
		if (!series_push(rt->series, &smp) || !rt->owner->sink)
			continue;
		json_t *j = json_pack("{s:s, s:o}", "canary", rt->name, "sample", sample_json(&smp));
		rt->owner->sink(rt->owner->sink_arg, rt->name, "sample", j);
		json_decref(j);
	}
}

json_t *ctl_series(ctl *c, const char *name, uint64_t since_ms)
{
	canary_rt *rt = find_rt(c, name);
	if (!rt)
		return NULL;
	json_t *o = json_pack("{s:s, s:s}", "canary", rt->name, "step", "5s");
	json_t *arr = json_array();
	if (!sees_traffic(rt)) {
		char why[200];
		snprintf(why, sizeof why, "canary '%s' is routed by '%s' (Kubernetes): its requests "
		         "go through the mesh, which canaryd does not see", rt->name, rt->conf->router);
		json_object_set_new(o, "available", json_false());
		json_object_set_new(o, "reason", json_string(why));
	} else {
		json_object_set_new(o, "available", json_true());
		size_t first, n = series_select(rt->series, since_ms, util_wall_ms(), &first);
		for (size_t i = 0; i < n; i++)
			json_array_append_new(arr, sample_json(series_at(rt->series, first + i)));
	}
	json_object_set_new(o, "samples", arr);
	return o;
}

/* The revision label of canaryd_requests_total follows the state. */
static void follow_revisions(canary_rt *rt)
{
	stats_set_revision(rt->stats, TARGET_STABLE, rt->st.stable_rev);
	stats_set_revision(rt->stats, TARGET_CANARY, rt->st.canary_rev);
}

/* ---- logging of what the engine did ---- */

static void log_event(const canary_rt *rt, const eng_event *ev)
{
	log_level lvl = LOG_INFO;
	if (strcmp(ev->type, "rollback") == 0)
		lvl = LOG_WARN;
	buf b = BUF_INIT;
	buf_printf(&b, "%s: %s [phase %s, weight %d", ev->type, ev->message,
	           eng_phase_name(ev->phase), ev->weight);
	if (strcmp(ev->actor, "canaryd") != 0)
		buf_printf(&b, ", by %s", ev->actor);
	buf_puts(&b, "]");
	for (int i = 0; i < ev->n_metrics; i++) {
		const eng_metric_result *m = &ev->metrics[i];
		if (m->has_value)
			buf_printf(&b, " %s=%.2f", m->name, m->value);
		else
			buf_printf(&b, " %s=nodata", m->name);
		buf_printf(&b, "(%s)", m->held ? "held" : m->passed ? "pass" : "fail");
	}
	log_msg(lvl, rt->name, "%s", b.p);
	buf_release(&b);
}

static int commit(canary_rt *rt, const eng_state *prev, const eng_output *out,
                  char *err, size_t errlen);

/* ---- hooks and alerts ----
 *
 * Flagger's webhooks, by type (pkg/controller/scheduler*.go):
 * - pre-rollout, until it passes, and rollout, on every check, are gates
 *   of the check (start_gates): one that does not pass fails the check;
 * - confirm-rollout, confirm-promotion and confirm-traffic-increase hold
 *   the rollout until they pass;
 * - rollback is polled every interval while a rollout is analysed or
 *   waits: one that passes rolls the canary back (poll_rollback_hooks);
 * - post-rollout runs once a rollout ends, Succeeded or Failed; its
 *   result is audited and changes nothing;
 * - event gets every audit event.
 * A URL hook passes when it answers a status of at most 202 (Flagger's
 * "if r.StatusCode > 202 { return error }"); an exec hook when its
 * program exits 0. Alerts go to the AlertProviders of analysis.alerts for
 * the events Flagger alerts on, filtered by severity (notify.h). Every
 * result is an audit event; the results of event hooks and alerts are
 * not sent to event hooks or alerts again. */

#define HOOK_NOTIFY (-1)        /* hook_call.gate: a notification */
#define HOOK_ROLLBACK_POLL (-2) /* a rollback hook's poll */
#define ALERT_TIMEOUT_MS 5000   /* Flagger's notifier: 5 s */

/* The phase Flagger's CallWebhook is given for a hook of <type>. */
static const char *hook_phase(const canary_rt *rt, const char *type)
{
	if (!strcmp(type, "pre-rollout") || !strcmp(type, "rollout") ||
	    !strcmp(type, "confirm-promotion") || !strcmp(type, "confirm-traffic-increase"))
		return "Progressing";
	return eng_phase_name(rt->st.phase);
}

static notify_canary hook_canary(const canary_rt *rt)
{
	return (notify_canary){
		.name = rt->name,
		.namespace_ = rt->conf->namespace_ ? rt->conf->namespace_ : "",
		.checksum = rt->st.canary_rev,
		.weight = rt->st.weight,
		.stable_rev = rt->st.stable_rev,
		.canary_rev = rt->st.canary_rev,
	};
}

/* The webhook payload of a hook of <type>, or of an event hook for <ev>. */
static char *hook_payload(const canary_rt *rt, const cfg_webhook *wh, const char *type,
                          const eng_event *ev)
{
	notify_canary nc = hook_canary(rt);
	if (!ev)
		return notify_hook_payload(&nc, hook_phase(rt, type), type, wh->metadata);
	bool failed = false;
	for (int m = 0; m < ev->n_metrics; m++)
		failed |= !ev->metrics[m].passed && !ev->metrics[m].held;
	notify_severity sev = notify_event_severity(ev->type, failed,
	                                            !strcmp(ev->actor, "canaryd"));
	return notify_event_payload(&nc, eng_phase_name(ev->phase), wh->metadata, ev->message,
	                            ev->type, sev, util_wall_ms());
}

typedef struct hook_call {
	ctl *c;
	char canary[ENG_NAME_LEN];
	char hook[ENG_NAME_LEN];
	char type[32];
	unsigned gen;
	int gate;          /* index in rt->gates, HOOK_NOTIFY, HOOK_ROLLBACK_POLL,
	                    * or CONFIRM_GATE(g) for a confirm-* hook of gate g */
	bool exec;         /* a program, not a URL */
	bool alert;        /* an alert: <hook> is the alert, <type> its provider's */
	char provider[ENG_NAME_LEN];
} hook_call;

#define CONFIRM_GATE(g) (-100 - (int)(g))

static void confirm_answer(canary_rt *rt, const hook_call *hc, bool ok, const char *why);

static void do_check(canary_rt *rt);
static int maybe_start_config_rollout(ctl *c, canary_rt *rt, uint64_t now, char *err,
                                      size_t errlen);

/* Records a result as an audit event of <type> (state unchanged); with
 * <quiet> it is not sent to event hooks nor alerts. */
static void audit_hook_msg(canary_rt *rt, const char *type, const char *msg, bool quiet,
                           const char *detail)
{
	eng_output *out = xcalloc(1, sizeof *out);
	eng_event *ev = &out->events[out->n_events++];
	snprintf(ev->type, sizeof ev->type, "%s", type);
	if (detail)
		snprintf(ev->detail, sizeof ev->detail, "%s", detail);
	ev->phase = rt->st.phase;
	ev->weight = rt->st.weight;
	snprintf(ev->actor, sizeof ev->actor, "canaryd");
	snprintf(ev->message, sizeof ev->message, "%s", msg);
	eng_state prev = rt->st;
	int was = rt->owner->quiet_hooks;
	rt->owner->quiet_hooks = quiet;
	commit(rt, &prev, out, NULL, 0);
	rt->owner->quiet_hooks = was;
	free(out);
}

/* A rollback hook passed: Flagger's "Rolling back manual webhook
 * invoked", here a rollback whose actor is the hook. */
static void rollback_by_hook(canary_rt *rt, const hook_call *hc, const char *how)
{
	char msg[ENG_MSG_LEN], actor[ENG_NAME_LEN];
	snprintf(msg, sizeof msg, "rollback %s '%s' %s: rolling back", hc->exec ? "exec hook"
	         : "webhook", hc->hook, how);
	audit_hook_msg(rt, "webhook", msg, false, NULL);
	snprintf(actor, sizeof actor, "rollback hook '%.45s'", hc->hook);
	char why[ENG_MSG_LEN];
	snprintf(why, sizeof why, "rollback %s '%s' signalled a rollback",
	         hc->exec ? "exec hook" : "webhook", hc->hook);
	/* a rollback, as Flagger's: not an operator's abort */
	eng_cmd cmd = { .kind = ENG_CMD_FAIL, .actor = actor, .reason = why };
	eng_output *out = xcalloc(1, sizeof *out);
	eng_state prev = rt->st;
	char err[256];
	if (eng_command(&rt->st, &rt->conf->policy, util_wall_ms(), &cmd, out, err, sizeof err) == 0)
		commit(rt, &prev, out, NULL, 0);
	free(out);
}

/* Whether rollback hooks are polled in the state <s>: Flagger polls them
 * while the rollout is analysed or waits for a gate. */
static bool rollback_polled(const eng_state *s)
{
	return eng_active(s) && s->phase != ENG_PAUSED && s->phase != ENG_PROMOTING;
}

/* Where a hook's call ended: <ok> whether it passed, <how> what it did
 * ("answered 200 in 3ms", "exited 1 after 2ms: ..."), <why> for a gate's
 * reason. */
static void hook_result(hook_call *hc, bool ok, const char *how, const char *why,
                        const char *detail)
{
	canary_rt *rt = find_rt(hc->c, hc->canary);
	if (!rt)
		return;
	const char *kind = hc->exec ? "exec hook" : "webhook";
	char msg[ENG_MSG_LEN];
	if (hc->gate <= CONFIRM_GATE(0)) {
		confirm_answer(rt, hc, ok, why);
	} else if (hc->alert) {
		snprintf(msg, sizeof msg, "alert '%s' to %s provider '%s' %s", hc->hook, hc->type,
		         hc->provider, how);
		audit_hook_msg(rt, "notification", msg, true, NULL);
	} else if (hc->gate == HOOK_NOTIFY) {
		snprintf(msg, sizeof msg, "%s %s '%s' %s", hc->type, kind, hc->hook, how);
		audit_hook_msg(rt, "webhook", msg, !strcmp(hc->type, "event"), detail);
	} else if (hc->gate == HOOK_ROLLBACK_POLL) {
		if (rt->rb_pending > 0)
			rt->rb_pending--;
		if (rt->rollout_gen != hc->gen || !rollback_polled(&rt->st))
			return;
		if (ok) {
			rollback_by_hook(rt, hc, how);
			return;
		}
		/* "not signalling a rollback": audited when it changes, not on
		 * every interval */
		char was[sizeof rt->rb_last];
		snprintf(was, sizeof was, "%s", rt->rb_last);
		snprintf(rt->rb_last, sizeof rt->rb_last, "%.40s %.80s", hc->hook, why);
		if (strcmp(was, rt->rb_last) != 0) {
			snprintf(msg, sizeof msg, "rollback %s '%s' is not signalling a rollback: %s",
			         kind, hc->hook, why);
			audit_hook_msg(rt, "webhook", msg, false, detail);
		}
	} else if (rt->rollout_gen == hc->gen && rt->gate_pending > 0) {
		struct gate_result *g = &rt->gates[hc->gate];
		g->ok = ok;
		if (!ok)
			snprintf(g->reason, sizeof g->reason, "%s", why);
		if (--rt->gate_pending == 0)
			do_check(rt);
	}
}

static void hook_done(void *arg, int status, const char *error, uint64_t ms)
{
	hook_call *hc = arg;
	char how[ENG_MSG_LEN], why[96];
	/* Flagger's callWebhook: "if r.StatusCode > 202 { return error }" */
	bool ok = !error && status > 0 && status <= 202;
	if (error) {
		snprintf(how, sizeof how, "failed after %llums: %s", (unsigned long long)ms, error);
		snprintf(why, sizeof why, "%s", error);
	} else {
		snprintf(how, sizeof how, "answered %d in %llums", status, (unsigned long long)ms);
		snprintf(why, sizeof why, "answered HTTP %d", status);
	}
	hook_result(hc, ok, how, why, NULL);
	free(hc);
}

/* An alert's answer: any 2xx passes (Flagger's notifier postMessage). */
static void alert_done(void *arg, int status, const char *error, const char *body,
                       size_t body_len, uint64_t ms)
{
	hook_call *hc = arg;
	char how[ENG_MSG_LEN];
	(void)body;
	(void)body_len;
	if (error)
		snprintf(how, sizeof how, "not sent: failed after %llums: %s", (unsigned long long)ms,
		         error);
	else if (status < 200 || status > 299)
		snprintf(how, sizeof how, "not accepted: answered %d in %llums", status,
		         (unsigned long long)ms);
	else
		snprintf(how, sizeof how, "sent: answered %d in %llums", status,
		         (unsigned long long)ms);
	hook_result(hc, !error && status >= 200 && status <= 299, how, how, NULL);
	free(hc);
}

static void exec_done(void *arg, const exec_result *r)
{
	hook_call *hc = arg;
	char how[ENG_MSG_LEN], why[96], out[200] = "";
	bool ok = !r->error && r->exited && r->exit_code == 0;
	if (r->output_len) {
		/* the start of the output, one line of plain text */
		snprintf(out, sizeof out, "%.*s", (int)(r->output_len < 150 ? r->output_len : 150),
		         r->output);
		util_ascii_line(out);
	}
	char end[96];
	if (r->error)
		snprintf(end, sizeof end, "%s", r->error);
	else if (r->timed_out)
		snprintf(end, sizeof end, "timed out, killed by signal %d", r->term_signal);
	else if (r->exited)
		snprintf(end, sizeof end, "exited %d", r->exit_code);
	else
		snprintf(end, sizeof end, "killed by signal %d", r->term_signal);
	snprintf(how, sizeof how, "%.60s after %llums%s%.120s%s", end, (unsigned long long)r->elapsed_ms,
	         out[0] ? ": " : "", out,
	         r->truncated || r->output_len > 120 ? " (output truncated)" : "");
	snprintf(why, sizeof why, "%.32s%s%.60s", end, out[0] ? ": " : "", out);
	canary_rt *rt = find_rt(hc->c, hc->canary);
	if (r->output_len)
		/* all that was kept (EXEC_OUTPUT_MAX), for whoever reads the log */
		log_msg(ok ? LOG_INFO : LOG_WARN, rt ? rt->name : hc->canary,
		        "%s exec hook '%s' output%s: %.*s", hc->type, hc->hook,
		        r->truncated ? " (truncated)" : "", (int)r->output_len, r->output);
	/* its output, as kept, in the audit: one event's detail (the
	 * first ENG_DETAIL_LEN - 1 bytes; the log has all EXEC_OUTPUT_MAX) */
	char detail[ENG_DETAIL_LEN];
	size_t dn = r->output_len < sizeof detail - 1 ? r->output_len : sizeof detail - 1;
	memcpy(detail, r->output ? r->output : "", r->output ? dn : 0);
	detail[r->output ? dn : 0] = '\0';
	/* lines of printable ASCII: the audit is read on terminals */
	for (size_t i = 0; detail[i]; i++)
		if (detail[i] != '\n' && detail[i] != '\t' &&
		    ((unsigned char)detail[i] < 0x20 || (unsigned char)detail[i] >= 0x7f))
			detail[i] = '?';
	hook_result(hc, ok, how, why, detail);
	free(hc);
}

/* The environment of an exec hook: PATH (canaryd's, or a default) and
 * the canary's CANARY_* values; the strings are in <b>, <env> points
 * into it. */
#define HOOK_ENV_N 13
static void hook_env(const canary_rt *rt, const cfg_webhook *wh, const char *type,
                     const eng_event *ev, const char *payload, buf *b, char **env)
{
	const char *path = getenv("PATH");
	size_t off[HOOK_ENV_N];
	int n = 0;
#define PUT(...) (off[n++] = b->len, buf_printf(b, __VA_ARGS__), buf_append(b, "", 1))
	PUT("PATH=%s", path && *path ? path : "/usr/local/bin:/usr/bin:/bin");
	PUT("CANARY_NAME=%s", rt->name);
	PUT("CANARY_NAMESPACE=%s", rt->conf->namespace_ ? rt->conf->namespace_ : "");
	PUT("CANARY_REVISION=%s", rt->st.canary_rev);
	PUT("CANARY_STABLE_REVISION=%s", rt->st.stable_rev);
	PUT("CANARY_WEIGHT=%d", rt->st.weight);
	PUT("CANARY_PHASE=%s", ev ? eng_phase_name(ev->phase) : hook_phase(rt, type));
	PUT("CANARY_HOOK_TYPE=%s", type);
	PUT("CANARY_HOOK_NAME=%s", wh->name ? wh->name : "");
	PUT("CANARY_PAYLOAD=%s", payload);
	if (ev) {
		PUT("CANARY_EVENT_TYPE=%s", ev->type);
		PUT("CANARY_EVENT_MESSAGE=%s", ev->message);
	}
#undef PUT
	for (int i = 0; i < n; i++)
		env[i] = b->p + off[i];
	env[n] = NULL;
}

/* Calls hook <wh> as a hook of <type> (the payload for event <ev>, or
 * Flagger's for the type): posts to its URL or runs its program. <gate>
 * says where the result goes (hook_call). Returns 0, or -1 when the call
 * cannot be made (logged). */
static int post_hook(canary_rt *rt, const cfg_webhook *wh, const char *type,
                     const eng_event *ev, int gate)
{
	hook_call *hc = xcalloc(1, sizeof *hc);
	hc->c = rt->owner;
	snprintf(hc->canary, sizeof hc->canary, "%s", rt->name);
	snprintf(hc->hook, sizeof hc->hook, "%s", wh->name ? wh->name : "");
	snprintf(hc->type, sizeof hc->type, "%s", type);
	hc->gen = rt->rollout_gen;
	hc->gate = gate;
	hc->exec = wh->argv != NULL;
	char *body = hook_payload(rt, wh, type, ev);
	int rc = 0;
	if (wh->argv) {
		buf b = BUF_INIT;
		char *env[HOOK_ENV_N + 1];
		hook_env(rt, wh, type, ev, body, &b, env);
		exec_hooks_run(rt->owner->ex, wh->argv, env, wh->timeout_ms, exec_done, hc);
		buf_release(&b);
	} else {
		hooks_opts o = { .insecure = wh->disable_tls, .retries = wh->retries };
		rc = rt->owner->hk ? hooks_post_ex(rt->owner->hk, wh->url, body, wh->timeout_ms, &o,
		                                   hook_done, hc) : -1;
		if (rc < 0) {
			free(hc);
			log_msg(LOG_ERROR, rt->name, "%s webhook '%s': cannot post to '%s'", type,
			        wh->name ? wh->name : "", wh->url);
		}
	}
	free(body);
	return rc;
}

static int hook_is(const cfg_webhook *wh, const char *type)
{
	return wh->type && strcmp(wh->type, type) == 0 && (wh->url || wh->argv);
}

/* Polls the rollback hooks once an interval (Flagger's scheduler asks
 * them on every run) while a rollout is analysed or waits; the next poll
 * waits for the answers of this one. */
static void poll_rollback_hooks(canary_rt *rt, uint64_t now_mono)
{
	const cfg_canary *cc = rt->conf;
	if (rt->rb_gen != rt->rollout_gen) {
		rt->rb_gen = rt->rollout_gen;
		rt->rb_last[0] = '\0';
		rt->rb_next_ms = 0;
	}
	if (!rollback_polled(&rt->st) || rt->rb_pending > 0 || now_mono < rt->rb_next_ms)
		return;
	rt->rb_next_ms = now_mono + cc->policy.interval_ms;
	for (size_t w = 0; w < cc->n_webhooks; w++)
		if (hook_is(&cc->webhooks[w], "rollback")) {
			rt->rb_pending++;
			if (post_hook(rt, &cc->webhooks[w], "rollback", NULL, HOOK_ROLLBACK_POLL) < 0)
				rt->rb_pending--;
		}
}

/* Flagger's alertMetadata: what a "new revision" alert shows. The
 * strings are in <b> (offsets in <f> until it is complete). */
static size_t alert_fields(const canary_rt *rt, buf *b, notify_field *f)
{
	const eng_policy *p = &rt->conf->policy;
	const char *ns = rt->conf->namespace_;
	size_t off[8], n = 0;
#define PUT(...) (off[n++] = b->len, buf_printf(b, __VA_ARGS__), buf_append(b, "", 1))
	if (rt->conf->target)
		PUT("Deployment/%s%s%s", rt->conf->target, ns ? "." : "", ns ? ns : "");
	else
		PUT("revision %s (stable %s)", rt->st.canary_rev, rt->st.stable_rev);
	PUT("%d", p->threshold);
	PUT("%llus", (unsigned long long)(p->progress_deadline_ms / 1000));
	if (p->step_weight > 0) {
		PUT("Weight step: %d max: %d", p->step_weight, p->max_weight);
	} else if (p->n_step_weights > 0) {
		off[n++] = b->len;
		buf_puts(b, "Weight steps: ");
		for (int i = 0; i < p->n_step_weights; i++)
			buf_printf(b, "%s%d", i ? "," : "", p->step_weights[i]);
		buf_printf(b, " max: %d", p->max_weight);
		buf_append(b, "", 1);
	}
#undef PUT
	static const char *const names[] = { "Target", "Failed checks threshold",
	                                     "Progress deadline", "Traffic routing" };
	for (size_t i = 0; i < n; i++)
		f[i] = (notify_field){ names[i], b->p + off[i] };
	return n;
}

/* Whether every confirm-* gate mutes its waiting alert (Flagger's
 * muteAlert). */
static bool waits_muted(const cfg_canary *cc)
{
	size_t confirm = 0, muted = 0;
	for (size_t w = 0; w < cc->n_webhooks; w++)
		if (cc->webhooks[w].type && !strncmp(cc->webhooks[w].type, "confirm-", 8)) {
			confirm++;
			muted += cc->webhooks[w].mute_alert;
		}
	return confirm > 0 && muted == confirm;
}

/* Sends event <ev> to the canary's alerts whose severity lets it
 * through, if it is one Flagger alerts on. */
static void send_alerts(canary_rt *rt, const eng_event *ev)
{
	const cfg_canary *cc = rt->conf;
	if (!cc->n_alerts || !notify_event_alerts(ev->type) || !rt->owner->hk)
		return;
	if (!strncmp(ev->type, "waiting", 7) && waits_muted(cc))
		return;
	notify_severity sev = notify_event_severity(ev->type, false, !strcmp(ev->actor, "canaryd"));
	notify_canary nc = hook_canary(rt);
	char *runbook = runbook_link(rt, ev->type);
	nc.runbook = runbook;
	buf fb = BUF_INIT;
	notify_field fields[8];
	/* Flagger shows the canary's settings with "New revision detected" */
	size_t nf = !strcmp(ev->type, "rollout-started") ? alert_fields(rt, &fb, fields) : 0;
	for (size_t i = 0; i < cc->n_alerts; i++) {
		const cfg_alert *a = &cc->alerts[i];
		if (!notify_severity_passes((notify_severity)a->severity, sev))
			continue;
		char *body = notify_alert_payload((notify_kind)a->kind, a->username, a->channel, &nc,
		                                  eng_phase_name(ev->phase), ev->type, ev->message,
		                                  fields, nf, sev, util_wall_ms());
		char *url = notify_alert_url((notify_kind)a->kind, a->address);
		char auth[4200];
		const char *hdr[2] = { "Content-Type: application/json", auth };
		if (a->token)
			snprintf(auth, sizeof auth, "Authorization: Bearer %s", a->token);
		hook_call *hc = xcalloc(1, sizeof *hc);
		hc->c = rt->owner;
		hc->alert = true;
		hc->gate = HOOK_NOTIFY;
		snprintf(hc->canary, sizeof hc->canary, "%s", rt->name);
		snprintf(hc->hook, sizeof hc->hook, "%s", a->name ? a->name : "");
		snprintf(hc->type, sizeof hc->type, "%s", notify_kind_names[a->kind]);
		snprintf(hc->provider, sizeof hc->provider, "%s", a->provider);
		if (hooks_request(rt->owner->hk, "POST", url, hdr, a->token ? 2 : 1, body,
		                  ALERT_TIMEOUT_MS, 65536, alert_done, hc) < 0) {
			/* the address is a secret: named by its provider only */
			log_msg(LOG_ERROR, rt->name, "alert '%s': cannot post to provider '%s'",
			        hc->hook, hc->provider);
			free(hc);
		}
		free(url);
		free(body);
	}
	free(runbook);
	buf_release(&fb);
}

/* What follows what the engine did: post-rollout hooks once a rollout
 * ends (promoted or rolled back, as in Flagger), event hooks for every
 * event and alerts for those Flagger alerts on. Gates (pre-rollout,
 * rollout) run before checks instead (start_gates), rollback hooks on
 * their own schedule (poll_rollback_hooks). */
static void run_hooks(canary_rt *rt, const eng_output *out)
{
	const cfg_canary *cc = rt->conf;
	for (int i = 0; i < out->n_hooks; i++) {
		if (out->hooks[i] != ENG_HOOK_ROLLBACK && out->hooks[i] != ENG_HOOK_POST_ROLLOUT)
			continue;
		for (size_t w = 0; w < cc->n_webhooks; w++)
			if (hook_is(&cc->webhooks[w], "post-rollout"))
				post_hook(rt, &cc->webhooks[w], "post-rollout", NULL, HOOK_NOTIFY);
	}
	if (rt->owner->quiet_hooks)
		return;
	for (int e = 0; e < out->n_events; e++) {
		for (size_t w = 0; w < cc->n_webhooks; w++)
			if (hook_is(&cc->webhooks[w], "event"))
				post_hook(rt, &cc->webhooks[w], "event", &out->events[e], HOOK_NOTIFY);
		send_alerts(rt, &out->events[e]);
	}
}

/* ---- persistence, then traffic ---- */

/* The router's answer to the split of <gen> (router.h). An answer older
 * than one already had loses: traffic follows the later split. */
static void applied(void *arg, uint64_t gen, int status, const char *err)
{
	canary_rt *rt = arg;
	/* older than one answered: it lost; or older than the ring remembers */
	if (gen <= rt->done_gen || gen > rt->gen || rt->gen - gen >= APPLY_RING)
		return;
	rt->done_gen = gen;
	int weight = rt->asked[gen % APPLY_RING];
	if (status < 0) {
		if (!rt->apply_err[0])
			log_msg(LOG_ERROR, rt->name, "router '%s' did not apply weight %d: %s; "
			        "traffic stays at weight %d, tried again every %ds",
			        rt->router->ops->name, weight, err ? err : "failed",
			        rt->applied_weight, APPLY_RETRY_MS / 1000);
		snprintf(rt->apply_err, sizeof rt->apply_err, "%s", err ? err : "failed");
		rt->apply_retry_ms = uv_now(rt->owner->loop) + APPLY_RETRY_MS;
		return;
	}
	if (rt->apply_err[0])
		log_msg(LOG_WARN, rt->name, "router '%s' applies splits again (weight %d)",
		        rt->router->ops->name, weight);
	rt->apply_err[0] = '\0';
	rt->applied_gen = gen;
	rt->applied_weight = weight;
}

/* Tells the router what traffic must look like: the members of both
 * endpoint sets, the weight, and whether a rollout runs (then the router
 * reports the canary's readiness; otherwise it is ready). It cannot be
 * refused: what could be refused was refused before the commit
 * (eps_ready), a host name that stops resolving keeps its last answer, and
 * one that has not resolved yet (after a restart) has no member until it
 * does, which the status shows ("hosts"). Each split has the next
 * generation; status shows the weight of the last one the router applied
 * (the built-in proxy: at once). */
static void apply_traffic(canary_rt *rt)
{
	want_names(rt);
	if (!rt->router)
		return;
	/* a rollout waiting for confirm-rollout has not started, and one
	 * rolling back has ended, for who is sent to the canary (match,
	 * affinity, mirror) and whose readiness counts */
	eng_phase ph = rt->st.phase;
	bool live = eng_active(&rt->st) && ph != ENG_WAITING && ph != ENG_ROLLING_BACK;
	router_split s = {
		.generation = ++rt->gen,
		.weight = rt->st.weight,
		.stable_rev = rt->st.stable_rev,
		.canary_rev = rt->st.canary_rev,
		.watch_ready = live && ph != ENG_PROMOTING,
		.rollout = live,
		.rollout_started_ms = rt->st.rollout_started_ms,
	};
	route_member *m[TARGET_COUNT];
	for (int t = 0; t < TARGET_COUNT; t++) {
		m[t] = members_of(rt, &rt->eps[t], &s.n_members[t]);
		s.members[t] = m[t];
	}
	rt->asked[s.generation % APPLY_RING] = s.weight;
	if (!s.watch_ready)
		rt->ready = 1;
	rt->router->ops->apply(rt->router, &s, applied, rt);
	for (int t = 0; t < TARGET_COUNT; t++)
		free(m[t]);
}

/* ---- the database's health ---- */

static uint64_t unsaved_events(const canary_rt *rt)
{
	return (uint64_t)rt->n_unsaved + rt->unsaved_dropped;
}

/* Enters (or stays in) the failing or damaged condition after a write
 * returned <rc> (STORE_RETRY or STORE_DAMAGED) with <dberr>; logs only a
 * change of condition, and schedules the next attempt. */
static void db_failed(ctl *c, int rc, const char *dberr)
{
	struct store_health *h = &c->dbh;
	uint64_t now = uv_now(c->loop);
	if (rc == STORE_DAMAGED) {
		if (h->state == DB_DAMAGED)
			return;
		const char *why;
		store_damaged(c->db, &why);
		snprintf(h->why, sizeof h->why, "%s", why);
		h->state = DB_DAMAGED;
		log_msg(LOG_ERROR, NULL, "%s: the database is damaged or cannot be written any "
		        "more, nothing more is written to it; traffic stays where it is (rollbacks "
		        "and aborts still take effect, unsaved); stop canaryd, move '%s' aside and "
		        "restore a backup or recover it (sqlite3 FILE .recover)",
		        why, store_path(c->db));
		return;
	}
	if (h->state == DB_OK) {
		h->state = DB_FAILING;
		h->since_ms = now;
		h->attempts = 0;
		h->backoff_ms = STORE_RETRY_FIRST_MS;
		snprintf(h->why, sizeof h->why, "%s", dberr);
		log_msg(LOG_ERROR, NULL, "state not saved: %s; retrying from %dms up to every %ds; "
		        "meanwhile traffic stays at its split, rollbacks and aborts still take "
		        "effect (kept in memory until saved), weight increases and promotions wait",
		        dberr, STORE_RETRY_FIRST_MS, STORE_RETRY_MAX_MS / 1000);
	} else if (h->attempts > 0) {
		h->backoff_ms = h->backoff_ms * 2 > STORE_RETRY_MAX_MS ? STORE_RETRY_MAX_MS
		                                                      : h->backoff_ms * 2;
	}
	h->attempts++;
	h->retry_at = now + h->backoff_ms;
}

static void db_saved(ctl *c)
{
	struct store_health *h = &c->dbh;
	if (h->state != DB_FAILING)
		return;
	log_msg(LOG_WARN, NULL, "state saved again after %llu failed attempt%s over %.1fs",
	        (unsigned long long)h->attempts, h->attempts == 1 ? "" : "s",
	        (double)(uv_now(c->loop) - h->since_ms) / 1000.0);
	memset(h, 0, sizeof *h);
}

/* May a write be tried now? Not while backing off, never once damaged (a
 * read elsewhere, e.g. the history, may have found the damage). */
static int db_may_write(ctl *c)
{
	if (c->dbh.state != DB_DAMAGED && store_damaged(c->db, NULL))
		db_failed(c, STORE_DAMAGED, "");
	return c->dbh.state == DB_OK ||
	       (c->dbh.state == DB_FAILING && uv_now(c->loop) >= c->dbh.retry_at);
}

/* Writes rt->st and the endpoint sets with the unsaved events of <rt> and
 * then <events> (stamped now), unless the database may not be tried now
 * (with <now_anyway>, a failing one is tried whatever the backoff). Returns
 * 0 when written (rt is then saved), -1 with <dberr> filled. */
static int save(canary_rt *rt, const eng_event *events, int n_events, int now_anyway,
                char *dberr, size_t errlen)
{
	ctl *c = rt->owner;
	if (now_anyway && c->dbh.state == DB_FAILING)
		c->dbh.retry_at = 0;
	if (!db_may_write(c)) {
		snprintf(dberr, errlen, "%s", c->dbh.why);
		return -1;
	}
	uint64_t now = util_wall_ms();
	int n = rt->n_unsaved + (rt->unsaved_dropped ? 1 : 0) + n_events;
	const eng_event *all = events;
	eng_event *joined = NULL;
	uint64_t *times = NULL;
	if (n > n_events) {
		all = joined = xcalloc((size_t)n, sizeof *joined);
		times = xcalloc((size_t)n, sizeof *times);
		int k = 0;
		if (rt->unsaved_dropped) {
			/* said first: the events kept are the latest ones */
			eng_event *ev = &joined[k];
			snprintf(ev->type, sizeof ev->type, "store");
			ev->phase = rt->st.phase;
			ev->weight = rt->st.weight;
			snprintf(ev->actor, sizeof ev->actor, "canaryd");
			snprintf(ev->message, sizeof ev->message,
			         "%llu events were lost while the database could not be written (%.120s)",
			         (unsigned long long)rt->unsaved_dropped, c->dbh.why);
			times[k++] = rt->unsaved_ms[0];
		}
		for (int i = 0; i < rt->n_unsaved; i++, k++) {
			joined[k] = rt->unsaved_ev[i];
			times[k] = rt->unsaved_ms[i];
		}
		for (int i = 0; i < n_events; i++, k++) {
			joined[k] = events[i];
			times[k] = now;
		}
	}
	store_record rec = { rt->st, epset_join(&rt->eps[0]), epset_join(&rt->eps[1]),
		             epset_join(&rt->prev_stable), { 0 } };
	if (rt->cost.rollout_ms) {
		uint64_t sums[COST_SLOTS][2];
		cost_sums(rt, sums);
		rec.cost.rollout_ms = rt->cost.rollout_ms;
		rec.cost.end_ms = rt->cost.end_ms;
		for (int t = 0; t < COST_SLOTS; t++) {
			rec.cost.requests[t] = sums[t][0];
			rec.cost.errors[t] = sums[t][1];
		}
	}
	int rc = store_commit(c->db, rt->name, &rec, all, times, n, now, dberr, errlen);
	free(rec.stable_eps);
	free(rec.canary_eps);
	free(rec.prev_stable_eps);
	free(joined);
	free(times);
	if (rc < 0) {
		db_failed(c, rc, dberr);
		return -1;
	}
	rt->unsaved = 0;
	rt->n_unsaved = 0;
	rt->unsaved_dropped = 0;
	db_saved(c);
	return 0;
}

/* Keeps <out>'s events of a change applied but not saved, the oldest
 * dropped (and counted) when the queue is full. The caller logs. */
static void keep_unsaved(canary_rt *rt, const eng_output *out)
{
	if (!rt->unsaved_ev) {
		rt->unsaved_ev = xcalloc(UNSAVED_MAX, sizeof *rt->unsaved_ev);
		rt->unsaved_ms = xcalloc(UNSAVED_MAX, sizeof *rt->unsaved_ms);
	}
	rt->unsaved = 1;
	uint64_t now = util_wall_ms();
	for (int i = 0; i < out->n_events; i++) {
		if (rt->n_unsaved == UNSAVED_MAX) {
			memmove(rt->unsaved_ev, rt->unsaved_ev + 1, (UNSAVED_MAX - 1) * sizeof *rt->unsaved_ev);
			memmove(rt->unsaved_ms, rt->unsaved_ms + 1, (UNSAVED_MAX - 1) * sizeof *rt->unsaved_ms);
			rt->n_unsaved--;
			rt->unsaved_dropped++;
		}
		rt->unsaved_ev[rt->n_unsaved] = out->events[i];
		rt->unsaved_ms[rt->n_unsaved++] = now;
	}
}

static json_t *status_json(const canary_rt *rt);

/* An event as the events API gives it (store.c), less its id: for the
 * live views, which see it as it is recorded. */
static json_t *event_json(const canary_rt *rt, const eng_event *ev)
{
	char when[40];
	util_rfc3339(util_wall_ms(), when, sizeof when);
	json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:s, s:s}", "time", when, "canary",
	                      rt->name, "type", ev->type, "phase", eng_phase_name(ev->phase),
	                      "weight", ev->weight, "message", ev->message, "actor", ev->actor);
	if (!o)
		return json_object();
	if (ev->n_metrics > 0) {
		json_t *arr = json_array();
		for (int i = 0; i < ev->n_metrics && i < ENG_MAX_METRICS; i++) {
			const eng_metric_result *m = &ev->metrics[i];
			json_t *mo = json_pack("{s:s, s:b}", "name", m->name, "passed", m->passed);
			if (!mo)
				continue;
			if (m->has_value && isfinite(m->value))
				json_object_set_new(mo, "value", json_real(m->value));
			if (m->has_min)
				json_object_set_new(mo, "min", json_real(m->min));
			if (m->has_max)
				json_object_set_new(mo, "max", json_real(m->max));
			if (m->has_stable && isfinite(m->stable_value))
				json_object_set_new(mo, "stable", json_real(m->stable_value));
			if (m->held)
				json_object_set_new(mo, "held", json_true());
			if (m->reason[0])
				json_object_set_new(mo, "reason", json_string(m->reason));
			json_array_append_new(arr, mo);
		}
		json_object_set_new(o, "metrics", arr);
	}
	if (ev->detail[0])
		json_object_set_new(o, "detail", json_string(ev->detail));
	char *link = runbook_event(ev->type) ? runbook_link(rt, ev->type) : NULL;
	if (link)
		json_object_set_new(o, "runbook", json_string(link));
	free(link);
	return o;
}

/* May a change from <prev> to <next> take effect before it is saved? Only
 * one that sends no more traffic to new code: no promotion, no higher
 * weight, no new rollout (see the head comment). */
static int protects(const eng_state *prev, const eng_state *next, const eng_output *out)
{
	if (out->undo)
		return 1; /* back to the revision that was stable: like a rollback */
	return !out->promote && next->weight <= prev->weight &&
	       strcmp(next->canary_rev, prev->canary_rev) == 0 &&
	       next->rollout_started_ms == prev->rollout_started_ms;
}

/* Writes what is unsaved, when the database may be tried (or, with
 * <force>, at shutdown, whatever the backoff). While failing with nothing
 * unsaved, the retry writes the first canary's state as it stands. */
static void flush_unsaved(ctl *c, int force)
{
	if (c->dbh.state == DB_DAMAGED || store_damaged(c->db, NULL))
		return;
	if (force && c->dbh.state == DB_FAILING)
		c->dbh.retry_at = 0;
	int tried = 0;
	for (size_t i = 0; i < c->n; i++) {
		canary_rt *rt = c->rt[i];
		if (!rt || !rt->unsaved || !db_may_write(c))
			continue;
		char dberr[320];
		save(rt, NULL, 0, 0, dberr, sizeof dberr);
		tried = 1;
	}
	if (!tried && c->dbh.state == DB_FAILING && c->n && c->rt[0] && db_may_write(c)) {
		char dberr[320];
		save(c->rt[0], NULL, 0, 0, dberr, sizeof dberr);
	}
}

/* Persists what the engine just did to rt->st (from <prev>) with <out>'s
 * events, then applies it to traffic. When the database refuses the write,
 * a change that protects users is applied unsaved (0 is returned), any
 * other is undone, state and endpoint sets, and -1 returned with <err>
 * (when not NULL) filled. A caller that waits for the answer (<err> given:
 * an operator's command, a new canary) gets a real attempt even while the
 * database is backing off; the tick's own changes wait for the backoff. */
static int commit(canary_rt *rt, const eng_state *prev, const eng_output *out,
                  char *err, size_t errlen)
{
	if (!out->changed && out->n_events == 0)
		return 0;
	epset saved[TARGET_COUNT] = { rt->eps[0], rt->eps[1] };
	epset saved_prev = rt->prev_stable;
	if (out->promote) {
		/* the canary's endpoints become the stable set; the stable set
		 * is kept for an undo */
		epset_from(&rt->eps[TARGET_STABLE], saved[TARGET_CANARY].ep,
		           saved[TARGET_CANARY].n);
		rt->eps[TARGET_CANARY].ep = NULL;
		rt->eps[TARGET_CANARY].n = 0;
		epset_from(&rt->prev_stable, saved[TARGET_STABLE].ep, saved[TARGET_STABLE].n);
	} else if (out->undo) {
		/* the previous stable set is the stable one again; the promoted
		 * one is the canary's, which gets no traffic */
		epset_from(&rt->eps[TARGET_STABLE], saved_prev.ep, saved_prev.n);
		epset_from(&rt->eps[TARGET_CANARY], saved[TARGET_STABLE].ep, saved[TARGET_STABLE].n);
		rt->prev_stable.ep = NULL;
		rt->prev_stable.n = 0;
	}
	bool swapped = out->promote || out->undo;
	char dberr[320];
	int was_unsaved = rt->unsaved;
	struct cost_run cost_prev = rt->cost;
	cost_follow(rt);   /* before save: the counts are saved with the state */
	if (save(rt, out->events, out->n_events, err != NULL, dberr, sizeof dberr) < 0) {
		if (!protects(prev, &rt->st, out)) {
			rt->cost = cost_prev;
			if (swapped) {
				epset_free(&rt->eps[TARGET_STABLE]);
				epset_free(&rt->eps[TARGET_CANARY]);
				epset_free(&rt->prev_stable);
				rt->eps[0] = saved[0];
				rt->eps[1] = saved[1];
				rt->prev_stable = saved_prev;
			}
			uint64_t next_check = rt->st.next_check_ms;
			rt->st = *prev;
			/* a check made is made: the next one is an interval away, not
			 * on the next tick (which would post the gates and query the
			 * providers again every tick) */
			if (prev->phase == ENG_PROGRESSING && next_check > prev->next_check_ms)
				rt->st.next_check_ms = next_check;
			if (err)
				snprintf(err, errlen, "state not saved: %s", dberr);
			return -1;
		}
		keep_unsaved(rt, out);
	}
	if (swapped) {
		epset_free(&saved[TARGET_STABLE]);
		epset_free(&saved[TARGET_CANARY]);
		epset_free(&saved_prev);
	}
	apply_traffic(rt);
	follow_revisions(rt);
	if (out->promote)
		rt->promotions++;
	for (int i = 0; i < out->n_events; i++) {
		const eng_event *ev = &out->events[i];
		if (strcmp(ev->type, "check") == 0 && ev->n_metrics > 0) {
			/* held ones too: a metric without data shows no value */
			memcpy(rt->last_check, ev->metrics, sizeof ev->metrics);
			rt->n_last_check = ev->n_metrics;
		}
		if (strcmp(ev->type, "check") == 0 && ev->held) {
			/* not made (no data, warm-up): neither result */
		} else if (strcmp(ev->type, "check") == 0) {
			int passed = 1;
			for (int m = 0; m < ev->n_metrics; m++)
				passed &= ev->metrics[m].passed;
			if (passed)
				rt->checks_pass++;
			else
				rt->checks_fail++;
		} else if (strcmp(ev->type, "rollback") == 0) {
			rt->rollbacks++;
		}
		log_event(rt, ev);
		if (rt->owner->sink) {
			json_t *j = event_json(rt, ev);
			rt->owner->sink(rt->owner->sink_arg, rt->name, "audit", j);
			json_decref(j);
		}
	}
	if (rt->owner->sink && (out->n_events || prev->phase != rt->st.phase ||
	                        prev->weight != rt->st.weight)) {
		json_t *j = status_json(rt);
		rt->owner->sink(rt->owner->sink_arg, rt->name, "status", j);
		json_decref(j);
	}
	if (rt->unsaved && !was_unsaved)
		log_msg(LOG_WARN, rt->name, "not saved yet: phase %s, weight %d; status shows what "
		        "traffic does, events wait in memory until the database takes writes",
		        eng_phase_name(rt->st.phase), rt->st.weight);
	run_hooks(rt, out);
	return 0;
}

void ctl_set_event_sink(ctl *c, ctl_event_fn fn, void *arg)
{
	c->sink = fn;
	c->sink_arg = arg;
}

/* ---- the tick ---- */

/* The end of a promotion makes the canary's endpoints the stable set. An
 * endpoint without an address there would leave every request without an
 * upstream, which can happen only after a restart whose canary names do
 * not resolve (a running canary keeps its last answer): the promotion then
 * waits, requests keep going to stable (a target without members gets
 * none), and it completes once they resolve. Returns whether it waits. */
static bool promotion_waits(canary_rt *rt)
{
	char why[512];
	bool first;
	const epset *s = &rt->eps[TARGET_CANARY];
	if (eps_ready(rt, s->ep, s->n, "canary endpoint", why, sizeof why, &first) < 0) {
		if (!rt->promote_wait_logged && !first) {
			log_msg(LOG_WARN, rt->name, "promotion of %s waits: %s; requests keep going to "
			        "%s meanwhile", rt->st.canary_rev, why, rt->st.stable_rev);
			rt->promote_wait_logged = true;
		}
		return true;
	}
	if (rt->promote_wait_logged)
		log_msg(LOG_INFO, rt->name, "promotion of %s: its endpoints resolve now",
		        rt->st.canary_rev);
	rt->promote_wait_logged = false;
	return false;
}

/* Closes the routers of removed canaries that are idle or have had their
 * time, or all of them with <force>. */
static void retire_sweep(ctl *c, uint64_t now_mono, int force)
{
	size_t j = 0;
	for (size_t i = 0; i < c->n_ret; i++) {
		retired *r = &c->ret[i];
		const router_ops *ops = r->r->ops;
		if (force || (ops->inflight(r->r) == 0 && ops->connections(r->r) == 0) ||
		    now_mono - r->since_ms > RETIRE_MAX_MS)
			ops->close(r->r);
		else
			c->ret[j++] = *r;
	}
	c->n_ret = j;
}

/* Puts stable's value, where a reading has it, into the check events of
 * <out> for metrics whose threshold did not use it (absolute thresholds
 * of built-in metrics): the engine judges the canary alone there, but the
 * audit and the dashboard show the canary beside stable. */
static void add_stable_values(eng_output *out, const eng_policy *p, const eng_reading *r)
{
	for (int e = 0; e < out->n_events; e++) {
		eng_event *ev = &out->events[e];
		if (strcmp(ev->type, "check") != 0)
			continue;
		for (int i = 0; i < ev->n_metrics && i < ENG_MAX_METRICS; i++) {
			eng_metric_result *res = &ev->metrics[i];
			for (int k = 0; k < p->n_metrics; k++) {
				if (strcmp(p->metrics[k].name, res->name) != 0)
					continue;
				if (!res->has_stable && r[k].has_stable) {
					res->has_stable = true;
					res->stable_value = r[k].stable_value;
				}
				break;
			}
		}
	}
}

/* Runs a check now, with the webhook gates' results (if any) as extra
 * pseudo-metrics that must equal 1: a failing gate fails the check, as a
 * failing rollout webhook does in Flagger. */
static void do_check(canary_rt *rt)
{
	uint64_t now = util_wall_ms();
	eng_policy *p = xmalloc(sizeof *p);
	*p = rt->conf->policy;
	eng_reading r[ENG_MAX_METRICS];
	memcpy(r, rt->readings, (size_t)p->n_metrics * sizeof r[0]);
	int pre_all_ok = 1, has_pre = 0;
	for (int g = 0; g < rt->n_gates && p->n_metrics < ENG_MAX_METRICS; g++) {
		eng_metric *m = &p->metrics[p->n_metrics];
		memset(m, 0, sizeof *m);
		snprintf(m->name, sizeof m->name, "%s", rt->gates[g].name);
		m->has_min = true;
		m->min = 1;
		eng_reading *rd = &r[p->n_metrics];
		memset(rd, 0, sizeof *rd);
		/* a failed gate has no value to show, only why it failed; and it
		 * fails the check whatever onNoData says: it is an answer */
		rd->has_data = rt->gates[g].ok;
		rd->fails = !rt->gates[g].ok;
		rd->value = 1;
		if (!rt->gates[g].ok)
			snprintf(rd->reason, sizeof rd->reason, "%s", rt->gates[g].reason);
		if (strncmp(m->name, "pre-rollout/", 12) == 0) {
			has_pre = 1;
			pre_all_ok &= rt->gates[g].ok;
		}
		p->n_metrics++;
	}
	if (has_pre && pre_all_ok)
		rt->pre_rollout_ok = 1;
	rt->n_gates = 0;
	eng_output *out = xcalloc(1, sizeof *out);
	eng_state prev = rt->st;
	eng_check(&rt->st, p, now, r, out);
	add_stable_values(out, p, r);
	commit(rt, &prev, out, NULL, 0);
	free(out);
	free(p);
}

/* ---- metrics, each read by its provider ---- */

typedef struct metric_call {
	ctl *c;
	char canary[ENG_NAME_LEN];
	unsigned gen;
	int metric;
	rd_which which;   /* the canary's value, stable's or the baseline */
} metric_call;

static void metric_done(void *arg, int has_data, double value, const char *reason)
{
	metric_call *mc = arg;
	canary_rt *rt = find_rt(mc->c, mc->canary);
	if (rt && rt->rollout_gen == mc->gen && rt->gate_pending > 0) {
		rd_store(&rt->readings[mc->metric], mc->which, has_data, value, reason);
		if (--rt->gate_pending == 0)
			do_check(rt);
	}
	free(mc);
}

/* The first monotonic second the current rollout's checks and judge read
 * (readings.h, rd_judged_from): the rollout's first second past the
 * warm-up, and never before data_from_sec, where the stats begin (a
 * restart moves it to its own start). The warm-up is counted on the wall
 * clock from rollout_started_ms, as the engine counts it, so a restarted
 * daemon does not warm up again; the second it gives may be one late,
 * never early. */
static uint64_t judged_from_sec(canary_rt *rt, uint64_t now_wall, uint64_t now_sec)
{
	const eng_policy *p = &rt->conf->policy;
	if (p->warmup_ms == 0)
		return rt->data_from_sec;
	/* the wall and monotonic clocks tick their seconds at different
	 * moments: computed once, or the start would move by one now and then */
	if (!rt->judged_known || rt->judged_rollout != rt->st.rollout_started_ms ||
	    rt->judged_warmup != p->warmup_ms) {
		uint64_t ago = now_wall > rt->st.rollout_started_ms
		               ? (now_wall - rt->st.rollout_started_ms) / 1000 : 0;
		rt->judged_sec = rd_judged_from(p, now_sec > ago ? now_sec - ago : 0);
		rt->judged_rollout = rt->st.rollout_started_ms;
		rt->judged_warmup = p->warmup_ms;
		rt->judged_known = true;
	}
	return rt->judged_sec > rt->data_from_sec ? rt->judged_sec : rt->data_from_sec;
}

/* Starts the reads of metric <i> for a check made during second <now_sec>:
 * the canary's value, and stable's for a relative threshold and a baseline
 * (readings.h says over which seconds; a query gets the stable revision),
 * each from the metric's provider. Each read counts in rt->gate_pending
 * until it answers, which the builtin provider does before its read
 * returns. */
static void start_metric_reads(canary_rt *rt, int i, uint64_t now, uint64_t now_sec)
{
	const eng_metric *m = &rt->conf->policy.metrics[i];
	const cfg_metric_source *src = &rt->conf->sources[i];
	const provider_ops *ops = provider_of(rt->conf, i);
	eng_reading *r = &rt->readings[i];
	memset(r, 0, sizeof *r);
	snprintf(r->reason, sizeof r->reason, "no answer from the provider");
	provider_env env = { .http = rt->owner->hk, .st = rt->stats, .cc = rt->conf };
	rd_window w[RD_COUNT];
	int n = rd_windows(m, now_sec, judged_from_sec(rt, now, now_sec), w);
	if (ops == &provider_builtin && m->kind != ENG_M_CUSTOM) {
		/* the requests the value rests on: minSamples (engine.h) */
		stats_summary *sum = xmalloc(sizeof *sum);
		stats_query(rt->stats, TARGET_CANARY, w[0].from_sec, w[0].to_sec, sum);
		rd_store_samples(r, sum);
		if (!m->relative) {
			/* stable's value over the canary's seconds, for the audit
			 * and the dashboard only (no threshold reads it): the
			 * proxy has it at no cost; a relative metric reads it below */
			rd_window sw = w[0];
			sw.which = RD_STABLE;
			sw.target = TARGET_STABLE;
			stats_query(rt->stats, TARGET_STABLE, sw.from_sec, sw.to_sec, sum);
			double v = 0;
			char why[96];
			if (rd_value(m->kind, &sw, sum, &v, why, sizeof why))
				rd_store(r, RD_STABLE, true, v, "");
		}
		free(sum);
	}
	for (int k = 0; k < n && ops; k++) {
		char span[32];
		util_format_duration(w[k].span_ms, span, sizeof span);
		provider_window pw = {
			.w = w[k],
			.kind = m->kind,
			.vars = {
				.name = rt->name,
				.namespace_ = rt->conf->namespace_ ? rt->conf->namespace_ : "",
				/* Flagger's model: targetRef, service, ingressRef and
				 * routeRef names (template.h defaults them) */
				.target = rt->conf->target ? rt->conf->target : rt->name,
				.service = rt->conf->service,
				.ingress = rt->conf->ingress,
				.route = rt->conf->route,
				.variables = src->variables,
				.n_variables = src->n_variables,
				.interval = span,
				.revision = w[k].which == RD_CANARY ? rt->st.canary_rev : rt->st.stable_rev,
			},
		};
		metric_call *mc = xcalloc(1, sizeof *mc);
		mc->c = rt->owner;
		snprintf(mc->canary, sizeof mc->canary, "%s", rt->name);
		mc->gen = rt->rollout_gen;
		mc->metric = i;
		mc->which = w[k].which;
		char err[200];
		rt->gate_pending++;
		if (ops->read(&env, src, &pw, metric_done, mc, err, sizeof err) < 0) {
			rt->gate_pending--;
			free(mc);
			if (w[k].which == RD_CANARY)
				snprintf(r->reason, sizeof r->reason, "%.95s", err);
			log_msg(LOG_WARN, rt->name, "metric '%s': %s", m->name, err);
		}
	}
}

/* Starts the gate webhooks a check needs; each counts in rt->gate_pending
 * until it answers. */
static void start_gates(canary_rt *rt)
{
	const cfg_canary *cc = rt->conf;
	rt->n_gates = 0;
	int room = ENG_MAX_METRICS - cc->policy.n_metrics;
	for (size_t w = 0; w < cc->n_webhooks && rt->n_gates < room; w++) {
		const cfg_webhook *wh = &cc->webhooks[w];
		const char *type = NULL;
		if (hook_is(wh, "rollout"))
			type = "rollout";
		else if (hook_is(wh, "pre-rollout") && !rt->pre_rollout_ok)
			type = "pre-rollout";
		if (!type)
			continue;
		struct gate_result *g = &rt->gates[rt->n_gates];
		memset(g, 0, sizeof *g);
		snprintf(g->name, sizeof g->name, "%s/%s", type, wh->name ? wh->name : "");
		snprintf(g->reason, sizeof g->reason, "no answer");
		rt->n_gates++;
		rt->gate_pending++;
		if (post_hook(rt, wh, type, NULL, rt->n_gates - 1) < 0) {
			rt->gate_pending--;
			snprintf(g->reason, sizeof g->reason, "cannot post to '%s'", wh->url ? wh->url : "");
		}
	}
}

/* ---- after the promotion (postPromotion) ---- */

/* The previous stable's counts over the rollout are its baseline: taken
 * as the promotion completes, before the new stable's requests reach the
 * stable stats; those count from the next second. */
static void watch_start(canary_rt *rt, uint64_t now)
{
	uint64_t now_sec = uv_now(rt->owner->loop) / 1000;
	uint64_t from = judged_from_sec(rt, now, now_sec);
	stats_summary *ss = xcalloc(1, sizeof *ss);
	stats_query(rt->stats, TARGET_STABLE, from, now_sec, ss);
	eng_counts old = { .stable_requests = ss->total, .stable_errors = ss->by_class[5],
		           .stable_latency = ss };
	eng_state prev = rt->st;
	eng_watch_start(&rt->st, &rt->conf->policy, now, &old);
	free(ss);
	rt->watch_from_sec = now_sec + 1;
	eng_output *out = xcalloc(1, sizeof *out);
	out->changed = true; /* the baseline is persisted */
	commit(rt, &prev, out, NULL, 0);
	free(out);
}

static void watch_look(canary_rt *rt, uint64_t now)
{
	uint64_t now_sec = uv_now(rt->owner->loop) / 1000;
	if (rt->watch_from_sec < rt->data_from_sec)
		rt->watch_from_sec = rt->data_from_sec; /* a restart: its own start */
	stats_summary *ss = xcalloc(1, sizeof *ss);
	if (now_sec >= rt->watch_from_sec)
		stats_query(rt->stats, TARGET_STABLE, rt->watch_from_sec, now_sec, ss);
	eng_counts c = { .stable_requests = ss->total, .stable_errors = ss->by_class[5],
		         .stable_latency = ss };
	eng_output *out = xcalloc(1, sizeof *out);
	eng_state prev = rt->st;
	eng_watch(&rt->st, &rt->conf->policy, now, &c, out);
	commit(rt, &prev, out, NULL, 0);
	free(out);
	free(ss);
}

/* ---- confirm-* gates ----
 *
 * While the engine holds a move at a confirm-* gate (st.waiting), every
 * webhook of that type is posted each interval, as Flagger polls them; when
 * all have answered, the engine gets one answer: passed when every one
 * answered 2xx, else the first reason. An outcome is audited when it
 * differs from the last one (not every poll of a closed gate). */

static void confirm_finish(canary_rt *rt)
{
	const eng_policy *p = &rt->conf->policy;
	char outcome[sizeof rt->confirm_last];
	snprintf(outcome, sizeof outcome, "%s %s", eng_gate_name(rt->confirm_gate),
	         rt->confirm_ok ? "passed" : rt->confirm_reason);
	eng_output *out = xcalloc(1, sizeof *out);
	eng_state prev = rt->st;
	eng_gate_answer(&rt->st, p, util_wall_ms(), rt->confirm_gate, rt->confirm_ok,
	                rt->confirm_reason, out);
	if (strcmp(outcome, rt->confirm_last) != 0 && out->n_events < ENG_MAX_EVENTS) {
		/* first in the audit, before what the engine did with it */
		memmove(&out->events[1], &out->events[0], (size_t)out->n_events * sizeof out->events[0]);
		eng_event *ev = &out->events[0];
		memset(ev, 0, sizeof *ev);
		snprintf(ev->type, sizeof ev->type, "webhook");
		ev->phase = prev.phase;
		ev->weight = prev.weight;
		snprintf(ev->actor, sizeof ev->actor, "canaryd");
		snprintf(ev->message, sizeof ev->message, "%s webhooks: %s",
		         eng_gate_name(rt->confirm_gate),
		         rt->confirm_ok ? "every one answered 2xx" : rt->confirm_reason);
		out->n_events++;
		out->changed = true;
		snprintf(rt->confirm_last, sizeof rt->confirm_last, "%s", outcome);
	}
	commit(rt, &prev, out, NULL, 0);
	free(out);
}

static void confirm_answer(canary_rt *rt, const hook_call *hc, bool ok, const char *why)
{
	if (rt->confirm_pending <= 0 || hc->gen != rt->confirm_gen ||
	    CONFIRM_GATE(rt->confirm_gate) != hc->gate)
		return; /* a poll of an earlier rollout or gate */
	if (!ok && rt->confirm_ok) {
		rt->confirm_ok = false;
		snprintf(rt->confirm_reason, sizeof rt->confirm_reason, "%s '%s': %s",
		         hc->exec ? "exec hook" : "webhook", hc->hook, why);
	}
	if (--rt->confirm_pending == 0)
		confirm_finish(rt);
}

static void confirm_poll(canary_rt *rt, uint64_t now_mono)
{
	eng_gate g = rt->st.waiting;
	if ((g != ENG_GATE_ROLLOUT && g != ENG_GATE_TRAFFIC && g != ENG_GATE_PROMOTION) ||
	    rt->confirm_pending > 0 || now_mono < rt->confirm_next_mono)
		return;
	const cfg_canary *cc = rt->conf;
	rt->confirm_next_mono = now_mono + cc->policy.interval_ms;
	rt->confirm_gate = g;
	rt->confirm_gen = rt->rollout_gen;
	rt->confirm_ok = true;
	rt->confirm_reason[0] = '\0';
	const char *type = eng_gate_name(g);
	/* held at one while they start, as for a check's gates */
	rt->confirm_pending = 1;
	int posted = 0;
	for (size_t w = 0; w < cc->n_webhooks; w++) {
		const cfg_webhook *wh = &cc->webhooks[w];
		if (!hook_is(wh, type))
			continue;
		posted++;
		rt->confirm_pending++;
		if (post_hook(rt, wh, type, NULL, CONFIRM_GATE(g)) < 0) {
			rt->confirm_pending--;
			if (rt->confirm_ok) {
				rt->confirm_ok = false;
				snprintf(rt->confirm_reason, sizeof rt->confirm_reason,
				         "webhook '%s': cannot post to '%s'", wh->name ? wh->name : "",
				         wh->url);
			}
		}
	}
	if (!posted) {
		/* the configuration no longer has such a webhook (a reload) */
		snprintf(rt->confirm_reason, sizeof rt->confirm_reason, "no %s webhook", type);
	}
	if (--rt->confirm_pending == 0)
		confirm_finish(rt);
}

/* The sequential judge looks on every tick at the counts since the rollout
 * started (the per-second rings, which stats_forget cleared for the canary
 * at the rollout's start; stable's are read from the same second on). */
static void observe(canary_rt *rt, uint64_t now)
{
	uint64_t now_sec = uv_now(rt->owner->loop) / 1000;
	/* past the warm-up: the canary's cold start is not evidence */
	uint64_t from = judged_from_sec(rt, now, now_sec);
	stats_summary *cs = xcalloc(2, sizeof *cs), *ss = cs + 1;
	stats_query(rt->stats, TARGET_CANARY, from, now_sec, cs);
	stats_query(rt->stats, TARGET_STABLE, from, now_sec, ss);
	eng_counts counts = {
		.canary_requests = cs->total, .canary_errors = cs->by_class[5],
		.stable_requests = ss->total, .stable_errors = ss->by_class[5],
		.canary_latency = cs, .stable_latency = ss,
	};
	eng_output *out = xcalloc(1, sizeof *out);
	eng_state prev = rt->st;
	eng_observe(&rt->st, &rt->conf->policy, now, &counts, out);
	commit(rt, &prev, out, NULL, 0);
	free(out);
	free(cs);
}

static void tick_one(ctl *c, canary_rt *rt, uint64_t now, uint64_t now_mono)
{
	const eng_policy *p = &rt->conf->policy;
	eng_output *out = xcalloc(1, sizeof *out);
	if (rt->apply_err[0] && rt->done_gen == rt->gen && now_mono >= rt->apply_retry_ms)
		apply_traffic(rt);   /* the router failed the last split: again */
	eng_state prev = rt->st;
	eng_tick(&rt->st, p, now, rt->ready, out);
	if (out->promote && promotion_waits(rt)) {
		rt->st = prev;   /* held: asked again on the next tick */
	} else {
		bool promoted = out->promote;
		commit(rt, &prev, out, NULL, 0);
		if (promoted && p->post_promotion_ms)
			watch_start(rt, now);
	}
	free(out);
	if (rt->st.watch_until_ms)
		watch_look(rt, now);
	poll_rollback_hooks(rt, now_mono);
	if (p->judge == ENG_JUDGE_SEQUENTIAL &&
	    (rt->st.phase == ENG_PROGRESSING || rt->st.phase == ENG_WAITING_PROMOTION))
		observe(rt, now);
	confirm_poll(rt, now_mono);
	/* a check judges the split in force: while the router has not applied
	 * the last one (a Kubernetes write in flight, an HTTPRoute its gateway
	 * has not accepted, an API that refuses), the check waits, as Flagger's
	 * analysis waits for its routes */
	bool applied_all = rt->done_gen == rt->gen && !rt->apply_err[0];
	/* nor does it judge a Kubernetes canary whose pods are not available
	 * yet: its mesh metrics are not the new revision's (no pods, no
	 * series; or the last pods'), and Flagger's analysis starts only once
	 * the canary is ready; progressDeadlineSeconds bounds the wait. The
	 * built-in proxy's checks read its own requests, failed ones too */
	bool judged = rt->ready || !router_k8s_find(rt->conf->router);
	if (rt->gate_pending == 0 && applied_all && judged && eng_check_due(&rt->st, p, now)) {
		if (eng_warming_up(&rt->st, p, now)) {
			/* nothing is read nor asked: the engine holds the check */
			do_check(rt);
			return;
		}
		/* held at one while they start, so that a read that answers at
		 * once does not run the check before the others have started */
		rt->gate_pending = 1;
		start_gates(rt);
		for (int i = 0; i < p->n_metrics; i++)
			start_metric_reads(rt, i, now, now_mono / 1000);
		if (--rt->gate_pending == 0)
			do_check(rt);
	}
}

/* The tick runs at least every TICK_MS (deadlines, promotions),
 * exactly when the next check is due, so that checks do not drift, and when
 * a failing database is to be tried again. A check that is due but waits
 * for its gates and provider reads is run by their callback: it needs no
 * tick (re-arming at 1 ms for it would spin the loop until they answer). */
static void on_tick(uv_timer_t *t)
{
	ctl *c = t->data;
	uint64_t now = util_wall_ms(), now_mono = uv_now(c->loop);
	flush_unsaved(c, 0);
	for (size_t i = 0; i < c->n; i++) {
		canary_rt *rt = c->rt[i];
		char err[512];
		if (rt->config_rollout_waits && c->dbh.state == DB_OK) {
			/* an operator's rollout since then has the last word */
			rt->config_rollout_waits = 0;
			if (rt->st.rollout_started_ms == rt->config_rollout_over &&
			    maybe_start_config_rollout(c, rt, now, err, sizeof err) < 0)
				log_msg(LOG_ERROR, rt->name, "configured rollout not started: %s", err);
		}
		tick_one(c, rt, now, now_mono);
		series_tick(rt, now, now_mono);
	}
	retire_sweep(c, now_mono, 0);
	uint64_t delay = TICK_MS;
	now = util_wall_ms();
	for (size_t i = 0; i < c->n; i++) {
		const eng_state *st = &c->rt[i]->st;
		if (st->phase != ENG_PROGRESSING)
			continue;
		uint64_t due = st->next_check_ms > now ? st->next_check_ms - now
		                                       : c->rt[i]->gate_pending ? TICK_MS : 1;
		if (due < delay)
			delay = due;
	}
	if (c->dbh.state == DB_FAILING) {
		uint64_t due = c->dbh.retry_at > now_mono ? c->dbh.retry_at - now_mono : 1;
		if (due < delay)
			delay = due;
	}
	uv_timer_start(&c->tick, on_tick, delay, 0);
}

/* ---- building runtimes from the configuration ---- */

/* <r> serves no canary any more: it drains, and retire_sweep closes it. */
static void retire_router(ctl *c, router *r)
{
	if (!r)
		return;
	r->ops->retire(r);
	c->ret = xrealloc(c->ret, (c->n_ret + 1) * sizeof *c->ret);
	c->ret[c->n_ret].r = r;
	c->ret[c->n_ret].since_ms = uv_now(c->loop);
	c->n_ret++;
}

static void rt_free(ctl *c, canary_rt *rt)
{
	retire_router(c, rt->router);
	/* a retired router may still record into the stats: keep them */
	c->graveyard = xrealloc(c->graveyard, (c->n_grave + 1) * sizeof *c->graveyard);
	c->graveyard[c->n_grave++] = rt->stats;
	rsv_table_free(rt->names);
	for (int t = 0; t < TARGET_COUNT; t++)
		epset_free(&rt->eps[t]);
	epset_free(&rt->prev_stable);
	free(rt->unsaved_ev);
	free(rt->unsaved_ms);
	free(rt->series);
	free(rt->name);
	free(rt);
}

/* Starts a rollout of the configuration's canary section when it names a
 * revision that is neither running nor already ended. Returns 0, or -1
 * with <err> filled when the database cannot say whether it ended (then
 * nothing is started: an unreadable answer is not "no"). */
static int maybe_start_config_rollout(ctl *c, canary_rt *rt, uint64_t now, char *err,
                                      size_t errlen)
{
	const cfg_canary *cc = rt->conf;
	if (!cc->canary_rev || cc->n_canary_eps == 0)
		return 0;
	if (strcmp(cc->canary_rev, rt->st.stable_rev) == 0)
		return 0;
	if (eng_active(&rt->st) && strcmp(cc->canary_rev, rt->st.canary_rev) == 0)
		return 0;
	int ended = store_rollout_ended(c->db, rt->name, cc->canary_rev, err, errlen);
	if (ended != 0) {
		if (ended > 0)
			log_msg(LOG_INFO, rt->name,
			        "revision %s from the configuration already ended, not rolling it out again",
			        cc->canary_rev);
		return ended < 0 ? -1 : 0;
	}
	/* a rollout starts only on endpoints requests can reach: it waits for
	 * its host names (on_names_changed calls again) */
	char wait[512];
	bool first;
	if (eps_ready(rt, cc->canary_eps, cc->n_canary_eps, "canary endpoint", wait,
	              sizeof wait, &first) < 0) {
		want_names(rt);
		/* the first lookup is not news: its failure would be */
		if (!rt->rollout_wait_logged && !first) {
			log_msg(LOG_WARN, rt->name, "rollout of %s from the configuration waits: %s",
			        cc->canary_rev, wait);
			rt->rollout_wait_logged = true;
		}
		return 0;
	}
	if (rt->rollout_wait_logged)
		log_msg(LOG_INFO, rt->name, "rollout of %s from the configuration: its endpoints "
		        "resolve now", cc->canary_rev);
	rt->rollout_wait_logged = false;
	eng_output *out = xcalloc(1, sizeof *out);
	eng_state prev = rt->st;
	epset old = rt->eps[TARGET_CANARY];
	epset_from(&rt->eps[TARGET_CANARY], cc->canary_eps, cc->n_canary_eps);
	eng_cmd cmd = { .kind = ENG_CMD_ROLLOUT, .revision = cc->canary_rev, .actor = "config" };
	char why[256];
	if (eng_command(&rt->st, &cc->policy, now, &cmd, out, why, sizeof why) < 0) {
		log_msg(LOG_ERROR, rt->name, "cannot start rollout of %s: %s", cc->canary_rev, why);
		epset_free(&rt->eps[TARGET_CANARY]);
		rt->eps[TARGET_CANARY] = old;
	} else {
		rt->data_from_sec = uv_now(c->loop) / 1000;
		stats_forget(rt->stats, TARGET_CANARY);
		rt->rollout_gen++;
		rt->pre_rollout_ok = 0;
		rt->gate_pending = 0;
		if (commit(rt, &prev, out, why, sizeof why) < 0) {
			epset_free(&rt->eps[TARGET_CANARY]);
			rt->eps[TARGET_CANARY] = old;
			apply_traffic(rt);
			if (!rt->config_rollout_waits)
				log_msg(LOG_WARN, rt->name, "rollout of %s from the configuration waits "
				        "until the database takes writes (%s)", cc->canary_rev, why);
			rt->config_rollout_waits = 1;
			rt->config_rollout_over = rt->st.rollout_started_ms;
		} else {
			rt->config_rollout_waits = 0;
			epset_free(&old);
		}
	}
	free(out);
	return 0;
}

/* Applies the configuration's stable endpoints when they differ from the
 * running ones and the configuration still describes the stable revision.
 * They are applied once every endpoint can get requests: until then the
 * running set stays, in traffic and in the status alike. */
static void sync_config_stable(canary_rt *rt)
{
	const cfg_canary *cc = rt->conf;
	if (!cc->stable_rev || strcmp(cc->stable_rev, rt->st.stable_rev) != 0 ||
	    epset_equal(&rt->eps[TARGET_STABLE], cc->stable_eps, cc->n_stable_eps)) {
		rt->stable_wait_logged = false;
		return;
	}
	char why[512];
	bool first;
	if (eps_ready(rt, cc->stable_eps, cc->n_stable_eps, "stable endpoint", why,
	              sizeof why, &first) < 0) {
		want_names(rt);
		if (!rt->stable_wait_logged && !first) {
			char *now = epset_join(&rt->eps[TARGET_STABLE]);
			log_msg(LOG_WARN, rt->name, "the configuration's stable endpoints wait: %s; "
			        "requests keep going to %s", why, now);
			free(now);
			rt->stable_wait_logged = true;
		}
		return;
	}
	rt->stable_wait_logged = false;
	epset old = rt->eps[TARGET_STABLE];
	epset_from(&rt->eps[TARGET_STABLE], cc->stable_eps, cc->n_stable_eps);
	eng_output *o = xcalloc(1, sizeof *o);
	o->changed = true;
	eng_state prev = rt->st;
	if (commit(rt, &prev, o, NULL, 0) < 0) {
		/* not saved: not applied either (commit logged it) */
		epset_free(&rt->eps[TARGET_STABLE]);
		rt->eps[TARGET_STABLE] = old;
	} else {
		epset_free(&old);
	}
	free(o);
}

/* A host name's addresses or condition changed (its first lookup ended,
 * it started or stopped failing): the router follows, and what the
 * configuration waited for may be applied now, or is logged as waiting. */
static void on_names_changed(void *arg)
{
	canary_rt *rt = arg;
	apply_traffic(rt);
	sync_config_stable(rt);
	char err[512];
	if (maybe_start_config_rollout(rt->owner, rt, util_wall_ms(), err, sizeof err) < 0)
		log_msg(LOG_ERROR, rt->name, "configured rollout not started: %s", err);
}

/* The router's outlier detection reports (router_events): an audit event
 * per ejection and per return of an endpoint of the canary's sets (one
 * that left them, still serving a request in flight, is not audited). A
 * retired router reports nothing, so <rt> is alive. */
static void on_endpoint(void *arg, int target, const char *endpoint, int ejected,
                        const char *reason)
{
	canary_rt *rt = arg;
	int mine = 0;
	for (size_t e = 0; target >= 0 && target < TARGET_COUNT && e < rt->eps[target].n && !mine;
	     e++)
		mine = member_of(endpoint, rt->eps[target].ep[e]);
	if (!mine)
		return;
	eng_output *out = xcalloc(1, sizeof *out);
	eng_event *ev = &out->events[out->n_events++];
	snprintf(ev->type, sizeof ev->type, "%s", ejected ? "ejected" : "readmitted");
	ev->phase = rt->st.phase;
	ev->weight = rt->st.weight;
	snprintf(ev->actor, sizeof ev->actor, "canaryd");
	snprintf(ev->message, sizeof ev->message, "%s endpoint %s %s: %s",
	         stats_target_name(target), endpoint,
	         ejected ? "ejected" : "taken back", reason ? reason : "");
	eng_state prev = rt->st;
	commit(rt, &prev, out, NULL, 0);
	free(out);
}

/* The router's active health checks (spec.healthCheck) found an endpoint
 * of <target> healthy again or not: an audit event "healthy" or
 * "unhealthy" ("endpoint 127.0.0.1:9002 (canary) unhealthy: 3 checks
 * failed: connection refused"). What it means for traffic is the router's
 * (the endpoint gets no requests) and, through its readiness, the
 * engine's (a canary with no healthy endpoint is not ready). */
static void on_health(void *arg, int target, const char *endpoint, bool healthy,
                      const char *reason)
{
	canary_rt *rt = arg;
	eng_output *out = xcalloc(1, sizeof *out);
	eng_event *ev = &out->events[out->n_events++];
	snprintf(ev->type, sizeof ev->type, "%s", healthy ? "healthy" : "unhealthy");
	ev->phase = rt->st.phase;
	ev->weight = rt->st.weight;
	snprintf(ev->actor, sizeof ev->actor, "canaryd");
	snprintf(ev->message, sizeof ev->message, "endpoint %s (%s) %s: %s", endpoint,
	         stats_target_name(target), healthy ? "healthy" : "unhealthy",
	         reason ? reason : "");
	eng_state prev = rt->st;
	commit(rt, &prev, out, NULL, 0);
	free(out);
}

/* The router's word on whether the canary takes requests, while a rollout
 * runs (progressDeadlineSeconds counts while it does not). */
static void on_ready(void *arg, bool ready)
{
	canary_rt *rt = arg;
	rt->ready = ready;
}

static int run_command(canary_rt *rt, const eng_cmd *cmd, epset *neweps, json_t **result,
                       char *err, size_t errlen);

/* The router's word that the workload runs revision <rev> (router.h): a
 * rollout of it, as `canaryctl rollout` without endpoints, by actor
 * "router"; or, when there is no stable revision yet and no rollout ever
 * ran, the stable revision (an audit event "revision" says so). */
static void on_revision(void *arg, const char *rev)
{
	canary_rt *rt = arg;
	/* the last rollout's revision, ended or not, is not rolled out again
	 * (a restart reports the workload's revision anew; Flagger too waits
	 * for the next change after a rollback) */
	if (!rev || !rev[0] || strlen(rev) >= ENG_REV_LEN || !strcmp(rev, rt->st.stable_rev) ||
	    !strcmp(rev, rt->st.canary_rev))
		return;
	char err[512];
	if (!rt->st.stable_rev[0] && !rt->st.canary_rev[0]) {
		eng_output *out = xcalloc(1, sizeof *out);
		eng_state prev = rt->st;
		snprintf(rt->st.stable_rev, sizeof rt->st.stable_rev, "%s", rev);
		out->changed = true;
		eng_event *ev = &out->events[out->n_events++];
		snprintf(ev->type, sizeof ev->type, "revision");
		ev->phase = rt->st.phase;
		ev->weight = rt->st.weight;
		snprintf(ev->actor, sizeof ev->actor, "router");
		snprintf(ev->message, sizeof ev->message, "the workload runs revision %s: the "
		         "stable revision", rev);
		log_msg(LOG_INFO, rt->name, "stable revision %s (reported by router '%s')", rev,
		        rt->router->ops->name);
		if (commit(rt, &prev, out, err, sizeof err) < 0)
			log_msg(LOG_ERROR, rt->name, "cannot take revision %s as stable: %s", rev, err);
		free(out);
		return;
	}
	eng_cmd cmd = { .kind = ENG_CMD_ROLLOUT, .revision = rev, .actor = "router" };
	json_t *result = NULL;
	log_msg(LOG_INFO, rt->name, "router '%s' reports revision %s: rollout",
	        rt->router->ops->name, rev);
	if (run_command(rt, &cmd, NULL, &result, err, sizeof err) != 200)
		log_msg(LOG_ERROR, rt->name, "cannot start the rollout of revision %s: %s", rev, err);
	json_decref(result);
}

/* What a router changed outside canaryd (router.h): an audit event. */
static void on_router_audit(void *arg, const char *type, const char *message)
{
	canary_rt *rt = arg;
	eng_output *out = xcalloc(1, sizeof *out);
	eng_event *ev = &out->events[out->n_events++];
	snprintf(ev->type, sizeof ev->type, "%s", type);
	ev->phase = rt->st.phase;
	ev->weight = rt->st.weight;
	snprintf(ev->actor, sizeof ev->actor, "router");
	snprintf(ev->message, sizeof ev->message, "%s", message);
	eng_state prev = rt->st;
	commit(rt, &prev, out, NULL, 0);
	free(out);
}

/* Opens the router of <cc> for <rt>. Returns 0, or -1 with <err>. */
static int open_router(canary_rt *rt, const cfg_canary *cc, router **out, char *err,
                       size_t errlen)
{
	const router_ops *ops = router_find(cc->router);
	router_events ev = { .endpoint = on_endpoint, .ready = on_ready,
	                     .revision = on_revision, .audit = on_router_audit,
	                     .health = on_health, .arg = rt };
	return ops->open(rt->owner->loop, cc, rt->stats, &ev, out, err, errlen) < 0 ? -1 : 0;
}

/* Creates the runtime of <cc>: state from the database (or new), and its
 * router. Returns NULL with <err> filled. */
static canary_rt *rt_new(ctl *c, const cfg_canary *cc, char *err, size_t errlen)
{
	canary_rt *rt = xcalloc(1, sizeof *rt);
	rt->owner = c;
	rt->name = xstrdup(cc->name);
	rt->conf = cc;
	rt->ready = 1;
	rt->data_from_sec = uv_now(c->loop) / 1000;
	rt->names = rsv_table_new(c->rsv, cc->name, cc->dns_refresh_ms, on_names_changed, rt);
	store_record rec;
	memset(&rec, 0, sizeof rec);
	char dberr[256];
	int found = store_load(c->db, cc->name, &rec, dberr, sizeof dberr);
	if (found < 0) {
		snprintf(err, errlen, "canary '%s': %s", cc->name, dberr);
		rsv_table_free(rt->names);
		free(rt->name);
		free(rt);
		return NULL;
	}
	if (found) {
		rt->st = rec.st;
		epset_split(&rt->eps[TARGET_STABLE], rec.stable_eps);
		epset_split(&rt->eps[TARGET_CANARY], rec.canary_eps);
		if (rec.prev_stable_eps)
			epset_split(&rt->prev_stable, rec.prev_stable_eps);
		for (int t = 0; t < TARGET_COUNT; t++)
			epset_drop_invalid(rt, t);
		/* the configuration may move the stable revision's endpoints */
		if (cc->stable_rev && strcmp(cc->stable_rev, rt->st.stable_rev) == 0 &&
		    !epset_equal(&rt->eps[TARGET_STABLE], cc->stable_eps, cc->n_stable_eps)) {
			epset_free(&rt->eps[TARGET_STABLE]);
			epset_from(&rt->eps[TARGET_STABLE], cc->stable_eps, cc->n_stable_eps);
		}
		if (cc->stable_rev && strcmp(cc->stable_rev, rt->st.stable_rev) != 0)
			log_msg(LOG_INFO, cc->name,
			        "stable revision is %s (from the database), the configuration says %s",
			        rt->st.stable_rev, cc->stable_rev);
		log_msg(LOG_INFO, cc->name, "resumed: phase %s, weight %d, stable %s, canary %s",
		        eng_phase_name(rt->st.phase), rt->st.weight, rt->st.stable_rev,
		        rt->st.canary_rev[0] ? rt->st.canary_rev : "-");
	} else {
		eng_state_init(&rt->st, cc->stable_rev ? cc->stable_rev : "", util_wall_ms());
		epset_from(&rt->eps[TARGET_STABLE], cc->stable_eps, cc->n_stable_eps);
		rt->eps[TARGET_CANARY].ep = NULL;
		rt->eps[TARGET_CANARY].n = 0;
	}
	store_cost saved_cost = rec.cost;
	store_record_release(&rec);
	rt->stats = stats_new();
	rt->series = xcalloc(1, sizeof *rt->series);
	if (found && saved_cost.rollout_ms && saved_cost.rollout_ms == rt->st.rollout_started_ms) {
		/* the counts an earlier canaryd saved; its stats are gone, ours
		 * count from zero */
		rt->cost.rollout_ms = saved_cost.rollout_ms;
		rt->cost.end_ms = saved_cost.end_ms;
		for (int t = 0; t < COST_SLOTS; t++) {
			rt->cost.carried[t][0] = saved_cost.requests[t];
			rt->cost.carried[t][1] = saved_cost.errors[t];
		}
	}
	cost_follow(rt);
	follow_revisions(rt);
	if (!found) {
		/* make the canary visible in status and history from the start */
		eng_output *out = xcalloc(1, sizeof *out);
		out->changed = true;
		eng_state prev = rt->st;
		int rc = commit(rt, &prev, out, err, errlen);
		free(out);
		if (rc < 0)
			goto fail;
	}
	/* the first split before the loop runs: no request sees none */
	if (open_router(rt, cc, &rt->router, err, errlen) < 0)
		goto fail;
	apply_traffic(rt);
	return rt;
fail:
	rsv_table_free(rt->names);
	stats_free(rt->stats);
	free(rt->series);
	for (int t = 0; t < TARGET_COUNT; t++)
		epset_free(&rt->eps[t]);
	free(rt->name);
	free(rt);
	return NULL;
}

/* Whether every canary of <conf> has a router this build drives, that
 * router takes the canary's settings, and its metrics' providers can read
 * them (provider_check). */
static int check_routers(const cfg *conf, char *err, size_t errlen)
{
	for (size_t i = 0; i < conf->n_canaries; i++) {
		const cfg_canary *cc = &conf->canaries[i];
		const router_ops *ops = router_find(cc->router);
		if (!ops) {
			char names[160];
			router_names(names, sizeof names);
			snprintf(err, errlen,
			         "canary '%s': router '%s' cannot be driven by this version (only %s); "
			         "the configuration is valid but cannot run here",
			         cc->name, cc->router ? cc->router : "", names);
			return -1;
		}
		if (ops->check(cc, err, errlen) < 0 || provider_check(cc, err, errlen) < 0)
			return -1;
	}
	return 0;
}

int ctl_new(uv_loop_t *loop, store *db, cfg *conf, ctl **out, char *err,
            size_t errlen)
{
	if (check_routers(conf, err, errlen) < 0) {
		cfg_free(conf);
		return -1;
	}
	ctl *c = xcalloc(1, sizeof *c);
	c->loop = loop;
	c->db = db;
	c->conf = conf;
	const char *why;
	if (store_failing(db, &why))
		db_failed(c, STORE_RETRY, why); /* opened on a full disk */
	c->rsv = rsv_new(loop, RSV_MAX_INFLIGHT);
	c->rt = xcalloc(conf->n_canaries ? conf->n_canaries : 1, sizeof *c->rt);
	for (size_t i = 0; i < conf->n_canaries; i++) {
		canary_rt *rt = rt_new(c, &conf->canaries[i], err, errlen);
		if (rt)
			c->rt[c->n++] = rt;
		if (!rt || maybe_start_config_rollout(c, rt, util_wall_ms(), err, errlen) < 0) {
			for (size_t j = 0; j < c->n; j++)
				rt_free(c, c->rt[j]);
			c->n = 0;
			retire_sweep(c, 0, 1);
			for (size_t g = 0; g < c->n_grave; g++)
				stats_free(c->graveyard[g]);
			free(c->graveyard);
			free(c->ret);
			free(c->rt);
			rsv_free(c->rsv);
			cfg_free(conf);
			free(c);
			return -1;
		}
	}
	c->hk = hooks_new(loop);
	c->ex = exec_hooks_new(loop);
	if (!c->hk)
		log_msg(LOG_ERROR, NULL, "libcurl could not be initialised: webhooks will fail");
	uv_timer_init(loop, &c->tick);
	c->tick.data = c;
	uv_timer_start(&c->tick, on_tick, TICK_MS, 0);
	*out = c;
	return 0;
}

int ctl_reload(ctl *c, cfg *conf, char *err, size_t errlen)
{
	if (check_routers(conf, err, errlen) < 0) {
		cfg_free(conf);
		return -1;
	}
	canary_rt **next = xcalloc(conf->n_canaries ? conf->n_canaries : 1, sizeof *next);
	size_t nn = 0;
	/* first what can fail (a router's new listener, a router of another
	 * kind), so that a failure leaves the running configuration untouched
	 * (router_ops: prepare, then finish or cancel) */
	size_t nc = conf->n_canaries ? conf->n_canaries : 1;
	router **fresh = xcalloc(nc, sizeof *fresh);     /* another kind: a new router */
	bool *prepared = xcalloc(nc, sizeof *prepared);
	for (size_t i = 0; i < conf->n_canaries; i++) {
		const cfg_canary *cc = &conf->canaries[i];
		canary_rt *rt = find_rt(c, cc->name);
		if (!rt)
			continue; /* started below with its runtime */
		int rc;
		if (router_find(cc->router) != rt->router->ops)
			rc = open_router(rt, cc, &fresh[i], err, errlen);
		else if ((rc = rt->router->ops->prepare(rt->router, cc, err, errlen)) == 0)
			prepared[i] = true;
		if (rc < 0) {
			for (size_t j = 0; j < i; j++) {
				if (fresh[j])
					fresh[j]->ops->close(fresh[j]);
				if (prepared[j]) {
					router *r = find_rt(c, conf->canaries[j].name)->router;
					r->ops->cancel(r);
				}
			}
			free(prepared);
			free(fresh);
			free(next);
			cfg_free(conf);
			return -1;
		}
	}
	/* canaries that go away */
	for (size_t i = 0; i < c->n; i++)
		if (!cfg_find(conf, c->rt[i]->name)) {
			log_msg(LOG_INFO, c->rt[i]->name, "removed by the new configuration");
			if (c->rt[i]->unsaved)
				log_msg(LOG_ERROR, c->rt[i]->name, "%llu unsaved events are lost with it",
				        (unsigned long long)unsaved_events(c->rt[i]));
			rt_free(c, c->rt[i]);
			c->rt[i] = NULL;
		}
	uint64_t now = util_wall_ms();
	for (size_t i = 0; i < conf->n_canaries; i++) {
		const cfg_canary *cc = &conf->canaries[i];
		canary_rt *rt = find_rt(c, cc->name);
		if (rt) {
			rt->conf = cc;
			if (fresh[i]) {
				log_msg(LOG_INFO, cc->name, "router '%s' now carries the split",
				        fresh[i]->ops->name);
				retire_router(c, rt->router);
				rt->router = fresh[i];
				apply_traffic(rt);
			} else {
				rt->router->ops->finish(rt->router, cc);
			}
			rsv_table_set_refresh(rt->names, cc->dns_refresh_ms);
			/* new host names are resolved before they get requests */
			sync_config_stable(rt);
		} else {
			char e2[512];
			rt = rt_new(c, cc, e2, sizeof e2);
			if (!rt) {
				log_msg(LOG_ERROR, cc->name, "not started: %s", e2);
				continue;
			}
		}
		next[nn++] = rt;
	}
	/* runtimes not found by name (removed above) are NULL in c->rt */
	free(c->rt);
	c->rt = next;
	c->n = nn;
	cfg_free(c->conf);
	c->conf = conf;
	for (size_t i = 0; i < c->n; i++) {
		char e2[512];
		want_names(c->rt[i]);   /* the configuration's names may have changed */
		if (maybe_start_config_rollout(c, c->rt[i], now, e2, sizeof e2) < 0)
			log_msg(LOG_ERROR, c->rt[i]->name, "configured rollout not started: %s", e2);
	}
	free(prepared);
	free(fresh);
	return 0;
}

/* ---- status ---- */

/* The host names of the endpoint sets and what they resolve to (the
 * addresses requests go to), or NULL when there are none. */
static json_t *hosts_json(const canary_rt *rt)
{
	json_t *arr = NULL;
	rsv_name nm;
	for (size_t i = 0; rsv_table_at(rt->names, i, &nm); i++) {
		bool in_set = false;
		for (int t = 0; t < TARGET_COUNT && !in_set; t++)
			for (size_t e = 0; e < rt->eps[t].n && !in_set; e++) {
				char host[RSV_HOST_LEN];
				in_set = rsv_host_of(rt->eps[t].ep[e], host, sizeof host) &&
				         strcmp(host, nm.host) == 0;
			}
		if (!in_set)
			continue;   /* only wanted by the configuration, not in use */
		json_t *h = json_object();
		json_object_set_new(h, "name", json_string(nm.host));
		json_t *addrs = json_array();
		for (size_t a = 0; a < nm.addrs->n; a++) {
			char ip[RSV_ADDR_LEN];
			rsv_addr_text(&nm.addrs->v[a], ip, sizeof ip);
			json_array_append_new(addrs, json_string(ip));
		}
		json_object_set_new(h, "addresses", addrs);
		if (nm.resolved_ms) {
			char ts[40];
			util_rfc3339(nm.resolved_ms, ts, sizeof ts);
			json_object_set_new(h, "resolvedAt", json_string(ts));
		}
		if (nm.error)
			json_object_set_new(h, "error", json_string(nm.error));
		else if (!nm.looked_up)
			json_object_set_new(h, "error", json_string("not resolved yet"));
		if (!arr)
			arr = json_array();
		json_array_append_new(arr, h);
	}
	return arr;
}

/* The sequential judge's evidence now, for the status: what the operator
 * and the dashboard show beside the weight. */
static json_t *judge_json(const judge_state *js)
{
	judge_summary j;
	judge_summarize(js, &j);
	json_t *e = json_object();
	json_object_set_new(e, "canaryRequests", json_integer((json_int_t)j.canary_n));
	json_object_set_new(e, "stableRequests", json_integer((json_int_t)j.stable_n));
	json_object_set_new(e, "canaryErrorRate", json_real(j.canary_rate));
	json_object_set_new(e, "stableErrorRate", json_real(j.stable_rate));
	json_object_set_new(e, "worseEValue", json_real(j.worse_e));
	json_object_set_new(e, "worseThreshold", json_real(j.worse_threshold));
	json_object_set_new(e, "noWorseEValue", json_real(j.noworse_e));
	json_object_set_new(e, "noWorseThreshold", json_real(j.noworse_threshold));
	json_object_set_new(e, "held", json_boolean(j.held));
	json_object_set_new(e, "holds", json_integer((json_int_t)j.holds));
	json_object_set_new(e, "dispersion", json_real(j.dispersion));
	json_object_set_new(e, "stepCanaryRequests", json_integer((json_int_t)j.step_canary_n));
	return e;
}

static json_t *status_json(const canary_rt *rt)
{
	char ts[40], dur[32];
	util_rfc3339(rt->st.last_transition_ms, ts, sizeof ts);
	const eng_policy *p = &rt->conf->policy;
	json_t *o = json_object();
	json_object_set_new(o, "name", json_string(rt->name));
	json_object_set_new(o, "phase", json_string(eng_phase_name(rt->st.phase)));
	/* what traffic does: the last split the router applied */
	json_object_set_new(o, "canaryWeight", json_integer(rt->applied_weight));
	json_object_set_new(o, "failedChecks", json_integer(rt->st.failed_checks));
	json_object_set_new(o, "iterations", json_integer(rt->st.iterations));
	json_object_set_new(o, "stableRevision", json_string(rt->st.stable_rev));
	json_object_set_new(o, "canaryRevision",
	                    rt->st.canary_rev[0] ? json_string(rt->st.canary_rev) : json_null());
	json_object_set_new(o, "lastTransitionTime", json_string(ts));
	json_object_set_new(o, "message", json_string(rt->st.message));
	json_object_set_new(o, "router", json_string(rt->conf->router ? rt->conf->router : ""));
	json_object_set_new(o, "appliedGeneration", json_integer((json_int_t)rt->applied_gen));
	if (rt->done_gen < rt->gen) {
		/* asked, not answered yet: traffic still follows the applied one */
		json_t *a = json_object();
		json_object_set_new(a, "generation", json_integer((json_int_t)rt->gen));
		json_object_set_new(a, "canaryWeight",
		                    json_integer(rt->asked[rt->gen % APPLY_RING]));
		json_object_set_new(o, "applying", a);
	}
	if (rt->apply_err[0])
		json_object_set_new(o, "routerError", json_string(rt->apply_err));
	if (rt->router)
		rt->router->ops->status(rt->router, o);
	json_object_set_new(o, "stableEndpoints", epset_json(&rt->eps[TARGET_STABLE]));
	json_object_set_new(o, "canaryEndpoints", epset_json(&rt->eps[TARGET_CANARY]));
	json_t *hosts = hosts_json(rt);
	if (hosts)
		json_object_set_new(o, "hosts", hosts);
	json_object_set_new(o, "canaryReady", json_boolean(rt->ready));
	/* status is what traffic does; this says whether the database has it */
	json_object_set_new(o, "stateSaved", json_boolean(!rt->unsaved));
	json_object_set_new(o, "unsavedEvents", json_integer((json_int_t)unsaved_events(rt)));
	json_t *a = json_object();
	util_format_duration(p->interval_ms, dur, sizeof dur);
	json_object_set_new(a, "interval", json_string(dur));
	json_object_set_new(a, "threshold", json_integer(p->threshold));
	json_object_set_new(a, "maxWeight", json_integer(p->max_weight));
	if (p->step_weight)
		json_object_set_new(a, "stepWeight", json_integer(p->step_weight));
	if (p->n_step_weights) {
		json_t *sw = json_array();
		for (int i = 0; i < p->n_step_weights; i++)
			json_array_append_new(sw, json_integer(p->step_weights[i]));
		json_object_set_new(a, "stepWeights", sw);
	}
	json_object_set_new(a, "judge", json_string(p->judge == ENG_JUDGE_SEQUENTIAL ?
	                                            "sequential" : "threshold"));
	json_object_set_new(a, "minSamples", json_integer((json_int_t)p->min_samples));
	json_object_set_new(a, "onNoData",
	                    json_string(p->on_no_data == ENG_NODATA_FAIL ? "fail" : "hold"));
	if (p->warmup_ms) {
		util_format_duration(p->warmup_ms, dur, sizeof dur);
		json_object_set_new(a, "warmup", json_string(dur));
	}
	if (p->max_duration_ms) {
		static const char *const outcome[] = { "pause", "rollback", "promote" };
		util_format_duration(p->max_duration_ms, dur, sizeof dur);
		json_object_set_new(a, "maxDuration", json_string(dur));
		json_object_set_new(a, "onMaxDuration",
		                    json_string(outcome[p->on_max_duration <= ENG_MAXDUR_PROMOTE ?
		                                        p->on_max_duration : 0]));
	}
	if (p->judge == ENG_JUDGE_SEQUENTIAL && rt->st.judge_started && eng_active(&rt->st))
		json_object_set_new(a, "evidence", judge_json(&rt->st.judge));
	if (p->n_steps) {
		json_t *steps = json_array();
		for (int i = 0; i < p->n_steps; i++) {
			const eng_step *sp = &p->steps[i];
			json_t *e = json_object();
			if (sp->weight >= 0) {
				json_object_set_new(e, "setWeight", json_integer(sp->weight));
			} else {
				json_t *pz = json_object();
				if (sp->pause_ms) {
					util_format_duration(sp->pause_ms, dur, sizeof dur);
					json_object_set_new(pz, "duration", json_string(dur));
				}
				json_object_set_new(e, "pause", pz);
			}
			json_array_append_new(steps, e);
		}
		json_object_set_new(a, "steps", steps);
	}
	json_object_set_new(a, "onFailure", json_string(p->on_failure == ENG_ONFAIL_PAUSE ?
	                                                "pause" : "rollback"));
	if (p->has_approval)
		json_object_set_new(a, "approval", json_pack("{s:i}", "above", p->approval_above));
	json_t *gates = json_array();
	static const struct { eng_gate g; size_t off; } gate_flags[] = {
		{ ENG_GATE_ROLLOUT, offsetof(eng_policy, gate_rollout) },
		{ ENG_GATE_TRAFFIC, offsetof(eng_policy, gate_traffic) },
		{ ENG_GATE_PROMOTION, offsetof(eng_policy, gate_promotion) },
	};
	for (size_t i = 0; i < sizeof gate_flags / sizeof gate_flags[0]; i++)
		if (*(const bool *)((const char *)p + gate_flags[i].off))
			json_array_append_new(gates, json_string(eng_gate_name(gate_flags[i].g)));
	if (p->has_approval)
		json_array_append_new(gates, json_string("approval"));
	json_object_set_new(a, "gates", gates);
	json_object_set_new(o, "analysis", a);
	/* where an operator-steered rollout stands */
	if (p->n_steps && rt->st.step >= 0 && eng_active(&rt->st))
		json_object_set_new(o, "currentStep", json_integer(rt->st.step)); /* 0-based */
	if (rt->st.phase == ENG_PAUSED) {
		json_t *pz = json_pack("{s:s}", "by", rt->st.failure_paused ? "onFailure"
		                                      : rt->st.step_paused ? "step"
		                                      : rt->st.manual_weight ? "set-weight"
		                                                             : "operator");
		if (rt->st.pause_until_ms) {
			char until[40];
			util_rfc3339(rt->st.pause_until_ms, until, sizeof until);
			json_object_set_new(pz, "until", json_string(until));
		}
		json_object_set_new(o, "paused", pz);
	}
	if (rt->st.waiting != ENG_GATE_NONE) {
		json_t *g = json_pack("{s:s}", "waitingFor", eng_gate_name(rt->st.waiting));
		if (rt->st.gate_reason[0])
			json_object_set_new(g, "lastAnswer", json_string(rt->st.gate_reason));
		json_object_set_new(o, "gate", g);
	}
	if (p->has_approval && eng_active(&rt->st))
		json_object_set_new(o, "approved", json_boolean(rt->st.approved));
	if (rt->st.phase == ENG_FAILED)
		json_object_set_new(o, "aborted", json_boolean(rt->st.aborted));
	if (rt->conf->has_cost)
		json_object_set_new(o, "cost", cost_json(rt));
	if (rt->st.phase == ENG_SUCCEEDED && rt->st.prev_stable_rev[0] && rt->st.undo_until_ms &&
	    util_wall_ms() < rt->st.undo_until_ms) {
		char until[40];
		util_rfc3339(rt->st.undo_until_ms, until, sizeof until);
		json_object_set_new(o, "undo", json_pack("{s:s, s:s, s:o}", "revision",
		                                         rt->st.prev_stable_rev, "until", until,
		                                         "endpoints", epset_json(&rt->prev_stable)));
	}
	return o;
}

json_t *ctl_status(ctl *c, const char *name)
{
	if (name) {
		canary_rt *rt = find_rt(c, name);
		return rt ? status_json(rt) : NULL;
	}
	json_t *arr = json_array();
	for (size_t i = 0; i < c->n; i++)
		json_array_append_new(arr, status_json(c->rt[i]));
	return arr;
}

/* ---- commands ---- */

/* The rollout's "endpoints": each a valid endpoint (rsv_parse), none twice.
 * Returns 0 with <out> filled, or -1 with <err>. */
static int parse_endpoints(const json_t *arr, epset *out, char *err, size_t errlen)
{
	if (!json_is_array(arr) || json_array_size(arr) == 0) {
		snprintf(err, errlen, "'endpoints' must be a non-empty array of \"HOST:PORT\" strings");
		return -1;
	}
	size_t n = json_array_size(arr);
	out->ep = xcalloc(n, sizeof *out->ep);
	out->n = 0;
	for (size_t i = 0; i < n; i++) {
		const char *s = json_string_value(json_array_get(arr, i));
		char host[RSV_HOST_LEN], why[400];
		int port;
		if (!s) {
			snprintf(err, errlen, "endpoint %zu: not a string", i + 1);
			epset_free(out);
			return -1;
		}
		if (rsv_parse(s, host, sizeof host, &port, NULL, why, sizeof why) == RSV_INVALID) {
			snprintf(err, errlen, "endpoint %zu: %s", i + 1, why);
			epset_free(out);
			return -1;
		}
		for (size_t j = 0; j < out->n; j++)
			if (strcmp(out->ep[j], s) == 0) {
				snprintf(err, errlen, "endpoint %zu: '%s' is given twice", i + 1, s);
				epset_free(out);
				return -1;
			}
		out->ep[out->n++] = xstrdup(s);
	}
	return 0;
}

/* Runs <cmd> on <rt>; for a rollout, <neweps> (taken, or NULL to keep the
 * canary's set) becomes the canary's endpoint set. The new state is
 * committed only when the router can carry it out: a command that gives the
 * canary more traffic, or makes it stable, needs every canary endpoint to
 * have an address now. Returns the HTTP status, with *result or <err>. */
static int run_command(canary_rt *rt, const eng_cmd *cmd, epset *neweps, json_t **result,
                       char *err, size_t errlen)
{
	ctl *c = rt->owner;
	eng_output *out = xcalloc(1, sizeof *out);
	eng_state prev = rt->st;
	epset old = rt->eps[TARGET_CANARY];
	if (neweps)
		rt->eps[TARGET_CANARY] = *neweps;
	int status = 200;
	char note[ENG_MSG_LEN] = "";
	int rc = eng_command(&rt->st, &rt->conf->policy, util_wall_ms(), cmd, out, note,
	                     sizeof note);
	if (rc < 0) {
		snprintf(err, errlen, "%s", note);
		note[0] = '\0';
		status = 409;
	} else if (rc == 1) {
		/* nothing to do (pause when paused): the status says how it is */
	} else if (out->undo &&
	           eps_ready(rt, rt->prev_stable.ep, rt->prev_stable.n, "previous stable endpoint",
	                     err, errlen, NULL) < 0) {
		rt->st = prev;
		status = 409;
	} else if ((cmd->kind == ENG_CMD_ROLLOUT || cmd->kind == ENG_CMD_RETRY ||
	            rt->st.weight > prev.weight || out->promote ||
	            rt->st.phase == ENG_PROMOTING) &&
	           eps_ready(rt, rt->eps[TARGET_CANARY].ep, rt->eps[TARGET_CANARY].n,
	                     "canary endpoint", err, errlen, NULL) < 0) {
		/* refused before anything is saved: the state stays as it was */
		rt->st = prev;
		status = 409;
	} else {
		if (cmd->kind == ENG_CMD_ROLLOUT || cmd->kind == ENG_CMD_RETRY) {
			rt->data_from_sec = uv_now(c->loop) / 1000;
			stats_forget(rt->stats, TARGET_CANARY);
			rt->rollout_gen++;
			rt->pre_rollout_ok = 0;
			rt->gate_pending = 0;
		}
		if (commit(rt, &prev, out, err, errlen) < 0)
			status = 500;
	}
	if (neweps) {
		if (status == 200) {
			epset_free(&old);
		} else {
			epset_free(&rt->eps[TARGET_CANARY]);
			rt->eps[TARGET_CANARY] = old;
		}
		neweps->ep = NULL;
		neweps->n = 0;
	}
	free(out);
	if (status == 200) {
		*result = status_json(rt);
		/* a command with nothing to do (pause when paused) answers 200
		 * too, saying so: pause and resume are idempotent */
		json_object_set_new(*result, "changed", json_boolean(rc == 0));
		if (note[0])
			json_object_set_new(*result, "note", json_string(note));
	}
	return status;
}

/* ---- commands that wait for host names ----
 *
 * A rollout to host names is run once each name has resolved, with those
 * answers (put into the canary's table first, so that the router gets
 * exactly the addresses that were checked), or refused with 422 naming the
 * endpoint and the resolver's error. The admin connection that asked may
 * close meanwhile: it cancels its callback (ctl_call_cancel) and the
 * command completes all the same; a command still waiting when canaryd
 * stops is answered 503 and not run. */

struct ctl_call {
	ctl *c;
	char canary[ENG_NAME_LEN];
	char *revision, *actor;
	epset eps;                    /* the rollout's endpoints, as given */
	struct call_name {
		struct ctl_call *call;
		char host[RSV_HOST_LEN];
		rsv_query *q;             /* in flight, or NULL */
		int status;               /* the lookup's: 0 or a libuv error */
		rsv_addrs addrs;
	} *names;
	size_t n_names, pending;
	uv_timer_t timer;             /* gives up after CALL_RESOLVE_MS */
	ctl_done_fn done;             /* NULL once cancelled */
	void *arg;
	struct ctl_call *prev, *next; /* in c->calls */
};

static void call_closed(uv_handle_t *h)
{
	free(h->data);
}

/* Ends <call>: tells its caller (unless cancelled), then frees it. */
static void call_finish(ctl_call *call, int status, json_t *result, const char *err)
{
	ctl *c = call->c;
	LIST_UNLINK(c->calls, call);
	for (size_t i = 0; i < call->n_names; i++) {
		rsv_cancel(call->names[i].q);
		rsv_addrs_release(&call->names[i].addrs);
	}
	free(call->names);
	epset_free(&call->eps);
	free(call->revision);
	free(call->actor);
	uv_timer_stop(&call->timer);
	uv_close((uv_handle_t *)&call->timer, call_closed);
	ctl_done_fn done = call->done;
	call->done = NULL;
	if (done)
		done(call->arg, status, result, err);
	else
		json_decref(result);
}

/* The endpoint of the call that names <host>, for messages. */
static const char *call_endpoint(const ctl_call *call, const char *host)
{
	for (size_t i = 0; i < call->eps.n; i++) {
		char h[RSV_HOST_LEN];
		if (rsv_host_of(call->eps.ep[i], h, sizeof h) && strcmp(h, host) == 0)
			return call->eps.ep[i];
	}
	return host;
}

/* Every name of <call> has its answer: refuse, or run the command. */
static void call_complete(ctl_call *call)
{
	char err[512] = "";
	for (size_t i = 0; i < call->n_names; i++) {
		const struct call_name *nm = &call->names[i];
		if (nm->status < 0) {
			snprintf(err, sizeof err, "cannot resolve endpoint '%s': %s; the rollout was not "
			         "started", call_endpoint(call, nm->host), uv_strerror(nm->status));
			call_finish(call, 422, NULL, err);
			return;
		}
	}
	canary_rt *rt = find_rt(call->c, call->canary);
	if (!rt) {
		snprintf(err, sizeof err, "no canary named '%s' (removed while its endpoints were "
		         "being resolved)", call->canary);
		call_finish(call, 404, NULL, err);
		return;
	}
	bool changed = false;
	for (size_t i = 0; i < call->n_names; i++)
		changed |= rsv_table_put(rt->names, call->names[i].host, &call->names[i].addrs);
	eng_cmd cmd = { .kind = ENG_CMD_ROLLOUT, .revision = call->revision, .actor = call->actor };
	json_t *res = NULL;
	int st = run_command(rt, &cmd, &call->eps, &res, err, sizeof err);
	if (st != 200 && changed)
		apply_traffic(rt);   /* a name the running sets share has new addresses */
	call_finish(call, st, res, err);
}

static void call_name_done(void *arg, int status, const rsv_addrs *addrs)
{
	struct call_name *nm = arg;
	ctl_call *call = nm->call;
	nm->q = NULL;
	nm->status = status;
	if (status == 0)
		rsv_addrs_copy(&nm->addrs, addrs);
	if (--call->pending == 0)
		call_complete(call);
}

static void call_timeout(uv_timer_t *t)
{
	ctl_call *call = t->data;
	for (size_t i = 0; i < call->n_names; i++) {
		if (!call->names[i].q)
			continue;
		char err[512];
		snprintf(err, sizeof err, "cannot resolve endpoint '%s': no answer within %dms; the "
		         "rollout was not started", call_endpoint(call, call->names[i].host),
		         CALL_RESOLVE_MS);
		call_finish(call, 422, NULL, err);
		return;
	}
}

/* Starts the lookups of the host names in <eps> for a rollout of <rt>.
 * Returns 0 with *out (pending), or an HTTP status with <err> when every
 * lookup failed to start (nothing is then pending). <eps> is taken. */
static int call_start(canary_rt *rt, const char *revision, const char *actor, epset *eps,
                      ctl_done_fn done, void *arg, ctl_call **out, char *err, size_t errlen)
{
	ctl *c = rt->owner;
	ctl_call *call = xcalloc(1, sizeof *call);
	call->c = c;
	snprintf(call->canary, sizeof call->canary, "%s", rt->name);
	call->revision = xstrdup(revision);
	call->actor = xstrdup(actor);
	call->eps = *eps;
	eps->ep = NULL;
	eps->n = 0;
	call->done = done;
	call->arg = arg;
	call->names = xcalloc(call->eps.n, sizeof *call->names);
	for (size_t i = 0; i < call->eps.n; i++) {
		char host[RSV_HOST_LEN];
		if (!rsv_host_of(call->eps.ep[i], host, sizeof host))
			continue;
		bool dup = false;
		for (size_t j = 0; j < call->n_names && !dup; j++)
			dup = strcmp(call->names[j].host, host) == 0;
		if (!dup) {
			call->names[call->n_names].call = call;
			snprintf(call->names[call->n_names].host, RSV_HOST_LEN, "%s", host);
			call->n_names++;
		}
	}
	uv_timer_init(c->loop, &call->timer);
	call->timer.data = call;
	LIST_PUSH(c->calls, call);
	for (size_t i = 0; i < call->n_names; i++) {
		struct call_name *nm = &call->names[i];
		nm->q = rsv_lookup(c->rsv, nm->host, call_name_done, nm, &nm->status);
		if (nm->q)
			call->pending++;
	}
	if (call->pending == 0) {
		/* nothing started: answer now, not through <done> */
		call->done = NULL;
		snprintf(err, errlen, "cannot resolve endpoint '%s': %s; the rollout was not started",
		         call_endpoint(call, call->names[0].host), uv_strerror(call->names[0].status));
		call_finish(call, 422, NULL, err);
		return 422;
	}
	uv_timer_start(&call->timer, call_timeout, CALL_RESOLVE_MS, 0);
	*out = call;
	return 0;
}

void ctl_call_cancel(ctl_call *call)
{
	if (call)
		call->done = NULL;
}

int ctl_command(ctl *c, const char *name, const char *action,
                const json_t *body, const char *actor, json_t **result,
                char *err, size_t errlen, ctl_done_fn done, void *arg,
                ctl_call **pending)
{
	*result = NULL;
	*pending = NULL;
	canary_rt *rt = find_rt(c, name);
	if (!rt) {
		snprintf(err, errlen, "no canary named '%s'", name);
		return 404;
	}
	if (body && !json_is_object(body)) {
		snprintf(err, errlen, "the request body must be a JSON object");
		return 400;
	}
	eng_cmd cmd = { .actor = actor };
	epset neweps = { NULL, 0 };
	int have_eps = 0;
	const json_t *reason = body ? json_object_get(body, "reason") : NULL;
	if (reason && (!json_is_string(reason) || json_string_length(reason) > 200 ||
	               strpbrk(json_string_value(reason), "\r\n"))) {
		snprintf(err, errlen, "'reason' must be one line of text of at most 200 characters");
		return 400;
	}
	cmd.reason = reason ? json_string_value(reason) : NULL;
	if (strcmp(action, "rollout") == 0) {
		cmd.kind = ENG_CMD_ROLLOUT;
		const json_t *rev = body ? json_object_get(body, "revision") : NULL;
		if (!json_is_string(rev) || !json_string_length(rev)) {
			snprintf(err, errlen, "'revision' is required and must be a non-empty string");
			return 400;
		}
		cmd.revision = json_string_value(rev);
		const json_t *eps = body ? json_object_get(body, "endpoints") : NULL;
		if (eps) {
			if (parse_endpoints(eps, &neweps, err, errlen) < 0)
				return 400;
			have_eps = 1;
		} else if (rt->eps[TARGET_CANARY].n == 0) {
			snprintf(err, errlen, "'endpoints' is required: the canary has no endpoints yet");
			return 400;
		}
	} else if (strcmp(action, "promote") == 0) {
		const json_t *full = body ? json_object_get(body, "full") : NULL;
		if (full && !json_is_boolean(full)) {
			snprintf(err, errlen, "'full' must be true or false");
			return 400;
		}
		cmd.kind = json_is_true(full) ? ENG_CMD_PROMOTE_FULL : ENG_CMD_PROMOTE;
	} else if (strcmp(action, "abort") == 0) {
		cmd.kind = ENG_CMD_ABORT;
	} else if (strcmp(action, "pause") == 0) {
		cmd.kind = ENG_CMD_PAUSE;
	} else if (strcmp(action, "resume") == 0) {
		cmd.kind = ENG_CMD_RESUME;
	} else if (strcmp(action, "approve") == 0) {
		cmd.kind = ENG_CMD_APPROVE;
	} else if (strcmp(action, "retry") == 0) {
		cmd.kind = ENG_CMD_RETRY;
	} else if (strcmp(action, "undo") == 0) {
		if (router_k8s_find(rt->conf->router)) {
			/* the primary Deployment's pod template was replaced by the
			 * promotion: the old one is not kept to copy back */
			snprintf(err, errlen, "undo is not available with router '%s': roll out the "
			         "previous revision instead", rt->conf->router);
			return 409;
		}
		cmd.kind = ENG_CMD_UNDO;
	} else if (strcmp(action, "weight") == 0) {
		const json_t *w = body ? json_object_get(body, "weight") : NULL;
		if (!json_is_integer(w) || json_integer_value(w) < 0 || json_integer_value(w) > 100) {
			snprintf(err, errlen, "'weight' must be an integer from 0 to 100");
			return 400;
		}
		cmd.kind = ENG_CMD_SET_WEIGHT;
		cmd.weight = (int)json_integer_value(w);
	} else {
		snprintf(err, errlen, "unknown action '%s' (rollout, promote, abort, pause, resume, "
		         "approve, weight, retry, undo)", action);
		return 404;
	}
	if (have_eps) {
		for (size_t i = 0; i < neweps.n; i++) {
			char host[RSV_HOST_LEN];
			if (rsv_host_of(neweps.ep[i], host, sizeof host))
				return call_start(rt, cmd.revision, actor, &neweps, done, arg, pending, err,
				                  errlen);
		}
	}
	/* numeric endpoints only: no resolver on this path */
	return run_command(rt, &cmd, have_eps ? &neweps : NULL, result, err, errlen);
}

/* ---- alerts ---- */

static int alert_matches(const canary_rt *rt, const json_t *labels)
{
	const char *cn = json_string_value(json_object_get(labels, "canary"));
	if (cn && strcmp(cn, rt->name) == 0)
		return 1;
	const json_t *m = rt->conf->alert_matchers;
	if (!json_is_object(m) || json_object_size(m) == 0)
		return 0;
	const char *key;
	json_t *want;
	json_object_foreach((json_t *)m, key, want) {
		const char *have = json_string_value(json_object_get(labels, key));
		if (!have || !json_is_string(want) || strcmp(have, json_string_value(want)) != 0)
			return 0;
	}
	return 1;
}

int ctl_alerts(ctl *c, const json_t *payload, const char *actor, json_t **result,
               char *err, size_t errlen)
{
	const json_t *alerts = json_object_get(payload, "alerts");
	if (!json_is_object(payload) || !json_is_array(alerts)) {
		snprintf(err, errlen, "not an Alertmanager webhook payload: no 'alerts' array");
		return 400;
	}
	json_t *matched = json_array();
	size_t i;
	json_t *al;
	json_array_foreach(alerts, i, al) {
		const char *status = json_string_value(json_object_get(al, "status"));
		const json_t *labels = json_object_get(al, "labels");
		if (!status || strcmp(status, "firing") != 0 || !json_is_object(labels))
			continue;
		for (size_t k = 0; k < c->n; k++) {
			canary_rt *rt = c->rt[k];
			if (!eng_active(&rt->st) || !alert_matches(rt, labels))
				continue;
			const char *aname = json_string_value(json_object_get(labels, "alertname"));
			const json_t *ann = json_object_get(al, "annotations");
			const char *summary = json_string_value(json_object_get(ann, "summary"));
			char *ltxt = json_dumps(labels, JSON_COMPACT | JSON_SORT_KEYS);
			eng_output *out = xcalloc(1, sizeof *out);
			eng_event *ev = &out->events[out->n_events++];
			snprintf(ev->type, sizeof ev->type, "alert");
			ev->phase = rt->st.phase;
			ev->weight = rt->st.weight;
			snprintf(ev->actor, sizeof ev->actor, "%s", actor);
			if (summary)
				snprintf(ev->message, sizeof ev->message, "alert '%s' firing (%s): %s",
				         aname ? aname : "?", summary, ltxt ? ltxt : "{}");
			else
				snprintf(ev->message, sizeof ev->message, "alert '%s' firing: %s",
				         aname ? aname : "?", ltxt ? ltxt : "{}");
			free(ltxt);
			eng_state prev = rt->st;
			commit(rt, &prev, out, NULL, 0);
			/* an automatic rollback (the alert's), not an operator's abort */
			char why[ENG_MSG_LEN];
			snprintf(why, sizeof why, "alert '%s' firing", aname ? aname : "?");
			eng_cmd cmd = { .kind = ENG_CMD_FAIL, .actor = "alertmanager", .reason = why };
			char e2[256];
			prev = rt->st;
			if (eng_command(&rt->st, &rt->conf->policy, util_wall_ms(), &cmd, out, e2, sizeof e2) == 0)
				commit(rt, &prev, out, NULL, 0);
			free(out);
			json_array_append_new(matched, json_string(rt->name));
		}
	}
	*result = json_object();
	json_object_set_new(*result, "matched", matched);
	return 200;
}

/* ---- metrics ---- */

/* Whether <rt>'s router checks its endpoints' health (spec.healthCheck). */
static bool checks_health(const canary_rt *rt)
{
	return rt->conf->health.enabled && rt->router && rt->router->ops->health_metrics;
}

/* canaryd_endpoint_healthy: one family for every canary whose router
 * checks its endpoints' health (the HELP and TYPE once), none without. */
static void health_metrics(ctl *c, buf *out)
{
	bool any = false;
	for (size_t i = 0; i < c->n && !any; i++)
		any = checks_health(c->rt[i]);
	if (!any)
		return;
	buf_puts(out, "# HELP canaryd_endpoint_healthy 1 while active health checks find the "
	              "endpoint healthy, 0 while it gets no requests for failing them.\n"
	              "# TYPE canaryd_endpoint_healthy gauge\n");
	for (size_t i = 0; i < c->n; i++)
		if (checks_health(c->rt[i]))
			c->rt[i]->router->ops->health_metrics(c->rt[i]->router, c->rt[i]->name, out);
}

/* A label value as the exposition format wants it: backslash, double
 * quote and newline escaped (revisions and metric names come from
 * operators; canary names are already plain). */
static void put_label_value(buf *out, const char *v)
{
	for (; *v; v++) {
		if (*v == '\\' || *v == '"')
			buf_printf(out, "\\%c", *v);
		else if (*v == '\n')
			buf_puts(out, "\\n");
		else
			buf_printf(out, "%c", *v);
	}
}

/* A sample value: Prometheus reads NaN and +Inf/-Inf, not C's inf. */
static void put_value(buf *out, double v)
{
	if (isnan(v))
		buf_puts(out, " NaN\n");
	else if (isinf(v))
		buf_puts(out, v > 0 ? " +Inf\n" : " -Inf\n");
	else
		buf_printf(out, " %.10g\n", v);
}

/* A wall-clock time <ms> as Unix seconds, to the millisecond (a double's
 * %g would round it to the second). */
static void put_seconds(buf *out, uint64_t ms)
{
	buf_printf(out, " %llu.%03llu\n", (unsigned long long)(ms / 1000),
	           (unsigned long long)(ms % 1000));
}

/* Flagger's flagger_canary_status: 0 while a rollout runs, 2 once it
 * failed (or while it rolls back step by step), 1 otherwise (succeeded,
 * or no rollout yet). */
static int status_code(const eng_state *s)
{
	if (s->phase == ENG_FAILED || s->phase == ENG_ROLLING_BACK)
		return 2;
	return eng_active(s) ? 0 : 1;
}

/* How long the current analysis has run, in seconds; once it ended, how
 * long it ran; 0 before the first rollout. */
static double analysis_seconds(const eng_state *s, uint64_t now_ms)
{
	if (!s->rollout_started_ms)
		return 0;
	uint64_t end = eng_active(s) ? now_ms : s->last_transition_ms;
	return end > s->rollout_started_ms ? (double)(end - s->rollout_started_ms) / 1000.0 : 0;
}

/* The last check's result of policy metric <m> of <rt>, NULL when no
 * check has judged it yet. */
static const eng_metric_result *last_result(const canary_rt *rt, const eng_metric *m)
{
	for (int i = 0; i < rt->n_last_check; i++)
		if (strcmp(rt->last_check[i].name, m->name) == 0)
			return &rt->last_check[i];
	return NULL;
}

/* canaryd_canary_metric_analysis and canaryd_canary_metric_threshold: each
 * configured metric's last judged value beside the bounds it is judged
 * against, so that a dashboard draws one against the other. A relative
 * metric's value is what its bounds apply to (the difference from, or the
 * ratio to, stable: eng_metric_result.compared). */
static void analysis_metrics(ctl *c, buf *out)
{
	buf_puts(out, "# HELP canaryd_canary_metric_analysis The value the last check judged "
	              "for each metric against its thresholds (relative: the difference from or "
	              "ratio to stable).\n"
	              "# TYPE canaryd_canary_metric_analysis gauge\n");
	for (size_t i = 0; i < c->n; i++) {
		const canary_rt *rt = c->rt[i];
		const eng_policy *p = &rt->conf->policy;
		for (int k = 0; k < p->n_metrics; k++) {
			const eng_metric_result *r = last_result(rt, &p->metrics[k]);
			if (!r || !r->has_value)
				continue;
			buf_printf(out, "canaryd_canary_metric_analysis{canary=\"%s\",metric=\"", rt->name);
			put_label_value(out, p->metrics[k].name);
			buf_puts(out, "\"}");
			put_value(out, r->relative ? r->compared : r->value);
		}
	}
	buf_puts(out, "# HELP canaryd_canary_metric_threshold Each metric's configured bounds "
	              "(thresholdRange min and max).\n"
	              "# TYPE canaryd_canary_metric_threshold gauge\n");
	for (size_t i = 0; i < c->n; i++) {
		const canary_rt *rt = c->rt[i];
		const eng_policy *p = &rt->conf->policy;
		for (int k = 0; k < p->n_metrics; k++) {
			const eng_metric *m = &p->metrics[k];
			for (int b = 0; b < 2; b++) {
				if (!(b ? m->has_max : m->has_min))
					continue;
				buf_printf(out, "canaryd_canary_metric_threshold{canary=\"%s\",metric=\"",
				           rt->name);
				put_label_value(out, m->name);
				buf_printf(out, "\",bound=\"%s\"}", b ? "max" : "min");
				put_value(out, b ? m->max : m->min);
			}
		}
	}
}

/* Per canary: Flagger's status code, the analysis' duration, when the
 * phase last changed, the failed checks against the threshold, and the
 * revision each target serves (to join with canaryd_requests_total). */
static void canary_metrics(ctl *c, buf *out)
{
	uint64_t now = util_wall_ms();
	buf_puts(out, "# HELP canaryd_canary_status The canary's state as Flagger's "
	              "flagger_canary_status: 0 running, 1 succeeded (or no rollout yet), "
	              "2 failed.\n"
	              "# TYPE canaryd_canary_status gauge\n");
	for (size_t i = 0; i < c->n; i++)
		buf_printf(out, "canaryd_canary_status{canary=\"%s\"} %d\n", c->rt[i]->name,
		           status_code(&c->rt[i]->st));
	buf_puts(out, "# HELP canaryd_canary_duration_seconds How long the current analysis "
	              "has run (the last one, once it ended).\n"
	              "# TYPE canaryd_canary_duration_seconds gauge\n");
	for (size_t i = 0; i < c->n; i++) {
		buf_printf(out, "canaryd_canary_duration_seconds{canary=\"%s\"}", c->rt[i]->name);
		put_value(out, analysis_seconds(&c->rt[i]->st, now));
	}
	buf_puts(out, "# HELP canaryd_canary_last_transition_timestamp_seconds When the "
	              "canary's phase last changed, Unix time.\n"
	              "# TYPE canaryd_canary_last_transition_timestamp_seconds gauge\n");
	for (size_t i = 0; i < c->n; i++) {
		buf_printf(out, "canaryd_canary_last_transition_timestamp_seconds{canary=\"%s\"}",
		           c->rt[i]->name);
		put_seconds(out, c->rt[i]->st.last_transition_ms);
	}
	buf_puts(out, "# HELP canaryd_canary_failed_checks Failed checks in the current rollout.\n"
	              "# TYPE canaryd_canary_failed_checks gauge\n");
	for (size_t i = 0; i < c->n; i++)
		buf_printf(out, "canaryd_canary_failed_checks{canary=\"%s\"} %d\n", c->rt[i]->name,
		           c->rt[i]->st.failed_checks);
	buf_puts(out, "# HELP canaryd_canary_failed_checks_threshold Failed checks that end "
	              "the analysis (analysis.threshold).\n"
	              "# TYPE canaryd_canary_failed_checks_threshold gauge\n");
	for (size_t i = 0; i < c->n; i++)
		buf_printf(out, "canaryd_canary_failed_checks_threshold{canary=\"%s\"} %d\n",
		           c->rt[i]->name, c->rt[i]->conf->policy.threshold);
	buf_puts(out, "# HELP canaryd_canary_revision_info The revision each target serves "
	              "(1); join it with canaryd_requests_total on canary and target.\n"
	              "# TYPE canaryd_canary_revision_info gauge\n");
	for (size_t i = 0; i < c->n; i++) {
		const canary_rt *rt = c->rt[i];
		for (int t = 0; t < 2; t++) {
			const char *rev = t ? rt->st.canary_rev : rt->st.stable_rev;
			if (!rev[0])
				continue;
			buf_printf(out, "canaryd_canary_revision_info{canary=\"%s\",target=\"%s\","
			           "revision=\"", rt->name, t ? "canary" : "stable");
			put_label_value(out, rev);
			buf_puts(out, "\"} 1\n");
		}
	}
}

void ctl_note_reload(ctl *c, int ok)
{
	c->reload_failed = !ok;
	if (ok)
		c->reload_ok_ms = util_wall_ms();
}

void ctl_metrics(ctl *c, buf *out)
{
	buf_printf(out, "# HELP canaryd_build_info The version canaryd was built as (1).\n"
	                "# TYPE canaryd_build_info gauge\n"
	                "canaryd_build_info{version=\"%s\"} 1\n"
	                "# HELP canaryd_canaries Canaries configured.\n"
	                "# TYPE canaryd_canaries gauge\n"
	                "canaryd_canaries %zu\n"
	                "# HELP canaryd_config_last_reload_success 1 when the last configuration "
	                "load (start or SIGHUP) succeeded, 0 when it failed and the running one "
	                "was kept.\n"
	                "# TYPE canaryd_config_last_reload_success gauge\n"
	                "canaryd_config_last_reload_success %d\n"
	                "# HELP canaryd_config_last_reload_success_timestamp_seconds When the "
	                "configuration was last loaded successfully, Unix time.\n"
	                "# TYPE canaryd_config_last_reload_success_timestamp_seconds gauge\n"
	                "canaryd_config_last_reload_success_timestamp_seconds",
	           CANARYD_VERSION, c->n, !c->reload_failed);
	put_seconds(out, c->reload_ok_ms);
	stats_write_prometheus_header(out);
	for (size_t i = 0; i < c->n; i++)
		stats_write_prometheus(c->rt[i]->stats, c->rt[i]->name, out);
	buf_puts(out, "# HELP canaryd_canary_weight Share of new requests sent to the canary, percent.\n"
	              "# TYPE canaryd_canary_weight gauge\n");
	for (size_t i = 0; i < c->n; i++)
		buf_printf(out, "canaryd_canary_weight{canary=\"%s\"} %d\n", c->rt[i]->name,
		           c->rt[i]->applied_weight);
	buf_puts(out, "# HELP canaryd_canary_phase The canary's phase (1 for the current one).\n"
	              "# TYPE canaryd_canary_phase gauge\n");
	for (size_t i = 0; i < c->n; i++)
		for (int p = 0; p < ENG_PHASE_COUNT; p++)
			buf_printf(out, "canaryd_canary_phase{canary=\"%s\",phase=\"%s\"} %d\n",
			           c->rt[i]->name, eng_phase_name((eng_phase)p),
			           c->rt[i]->st.phase == (eng_phase)p);
	buf_puts(out, "# HELP canaryd_checks_total Analysis checks made, by result.\n"
	              "# TYPE canaryd_checks_total counter\n");
	for (size_t i = 0; i < c->n; i++) {
		buf_printf(out, "canaryd_checks_total{canary=\"%s\",result=\"pass\"} %llu\n",
		           c->rt[i]->name, (unsigned long long)c->rt[i]->checks_pass);
		buf_printf(out, "canaryd_checks_total{canary=\"%s\",result=\"fail\"} %llu\n",
		           c->rt[i]->name, (unsigned long long)c->rt[i]->checks_fail);
	}
	buf_puts(out, "# HELP canaryd_rollbacks_total Rollbacks, automatic and manual.\n"
	              "# TYPE canaryd_rollbacks_total counter\n");
	for (size_t i = 0; i < c->n; i++)
		buf_printf(out, "canaryd_rollbacks_total{canary=\"%s\"} %llu\n", c->rt[i]->name,
		           (unsigned long long)c->rt[i]->rollbacks);
	buf_puts(out, "# HELP canaryd_promotions_total Promotions: the canary revision became "
	              "the stable one.\n"
	              "# TYPE canaryd_promotions_total counter\n");
	for (size_t i = 0; i < c->n; i++)
		buf_printf(out, "canaryd_promotions_total{canary=\"%s\"} %llu\n", c->rt[i]->name,
		           (unsigned long long)c->rt[i]->promotions);
	canary_metrics(c, out);
	analysis_metrics(c, out);
	buf_printf(out, "# HELP canaryd_store_ok 1 while the database takes writes, 0 while "
	                "they fail (disk full, a damaged file).\n"
	                "# TYPE canaryd_store_ok gauge\n"
	                "canaryd_store_ok %d\n"
	                "# HELP canaryd_store_errors_total Database reads and writes that failed.\n"
	                "# TYPE canaryd_store_errors_total counter\n"
	                "canaryd_store_errors_total %llu\n"
	                "# HELP canaryd_store_unsaved_events Audit events applied to traffic but "
	                "not yet written to the database.\n"
	                "# TYPE canaryd_store_unsaved_events gauge\n",
	           c->dbh.state == DB_OK && !store_damaged(c->db, NULL),
	           (unsigned long long)store_errors(c->db));
	for (size_t i = 0; i < c->n; i++)
		buf_printf(out, "canaryd_store_unsaved_events{canary=\"%s\"} %llu\n", c->rt[i]->name,
		           (unsigned long long)unsaved_events(c->rt[i]));
	health_metrics(c, out);
}

int ctl_store_health(ctl *c, char *why, size_t n)
{
	const char *damage;
	if (store_damaged(c->db, &damage)) {
		snprintf(why, n, "database damaged, nothing is saved: %s", damage);
		return 1;
	}
	if (c->dbh.state != DB_FAILING)
		return 0;
	uint64_t unsaved = 0;
	for (size_t i = 0; i < c->n; i++)
		unsaved += unsaved_events(c->rt[i]);
	snprintf(why, n, "state not saved for %.1fs (%llu failed attempts, %llu events unsaved): %s",
	         (double)(uv_now(c->loop) - c->dbh.since_ms) / 1000.0,
	         (unsigned long long)c->dbh.attempts, (unsigned long long)unsaved, c->dbh.why);
	return 1;
}

/* ---- shutdown ---- */

void ctl_drain(ctl *c)
{
	c->draining = 1;
	for (size_t i = 0; i < c->n; i++)
		c->rt[i]->router->ops->drain(c->rt[i]->router);
}

size_t ctl_inflight(ctl *c)
{
	size_t n = 0;
	for (size_t i = 0; i < c->n; i++)
		n += c->rt[i]->router->ops->inflight(c->rt[i]->router);
	for (size_t i = 0; i < c->n_ret; i++)
		n += c->ret[i].r->ops->inflight(c->ret[i].r);
	/* a command waiting for its host names is answered before the exit */
	for (const ctl_call *call = c->calls; call; call = call->next)
		n++;
	return n;
}

static void tick_closed(uv_handle_t *h)
{
	ctl *c = h->data;
	for (size_t g = 0; g < c->n_grave; g++)
		stats_free(c->graveyard[g]);
	free(c->graveyard);
	free(c);
}

/* At shutdown: a last try to save what is unsaved, and a word about what
 * is lost when that fails too. */
static void save_at_exit(ctl *c)
{
	flush_unsaved(c, 1);
	/* a running rollout's cost counts since its last save (a check
	 * interval's worth): one write per such canary, so that a restart
	 * loses none of them */
	for (size_t i = 0; i < c->n; i++) {
		canary_rt *rt = c->rt[i];
		char dberr[320];
		if (!rt->unsaved && rt->conf->has_cost && rt->cost.rollout_ms && !rt->cost.end_ms &&
		    c->dbh.state == DB_OK && save(rt, NULL, 0, 1, dberr, sizeof dberr) < 0)
			log_msg(LOG_WARN, rt->name, "the rollout's cost counts since the last save are "
			        "lost: %s", dberr);
	}
	for (size_t i = 0; i < c->n; i++) {
		canary_rt *rt = c->rt[i];
		if (rt->unsaved)
			log_msg(LOG_ERROR, rt->name, "exiting with unsaved state (phase %s, weight %d, "
			        "%llu events): lost; the next start resumes from the last saved state",
			        eng_phase_name(rt->st.phase), rt->st.weight,
			        (unsigned long long)unsaved_events(rt));
	}
}

void ctl_close(ctl *c)
{
	save_at_exit(c);
	uv_timer_stop(&c->tick);
	hooks_free(c->hk, free);
	c->hk = NULL;
	exec_hooks_free(c->ex, free);
	c->ex = NULL;
	while (c->calls)
		call_finish(c->calls, 503, NULL, "canaryd is shutting down; the command was not run");
	for (size_t i = 0; i < c->n; i++)
		rt_free(c, c->rt[i]);
	c->n = 0;
	rsv_free(c->rsv);   /* after the tables, which cancel their lookups */
	c->rsv = NULL;
	retire_sweep(c, 0, 1);
	free(c->ret);
	c->ret = NULL;
	free(c->rt);
	c->rt = NULL;
	cfg_free(c->conf);
	c->conf = NULL;
	free(c->runbook_url);
	c->runbook_url = NULL;
	uv_close((uv_handle_t *)&c->tick, tick_closed);
}
