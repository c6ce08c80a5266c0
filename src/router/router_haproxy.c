/* router_haproxy.c - the "haproxy" router: canaryd drives a HAProxy it does
 * not run, through its runtime API (haproxy_rt.h), following the rules
 * measured on HAProxy 2.6 (../shared/data/mesh/README.md 1.1):
 *
 * - canaryd adds its OWN servers to spec.haproxy.backend, one per endpoint
 *   address, named "cd-<canary>-s<N>" (stable) and "cd-<canary>-c<N>"
 *   (canary); it never touches a server whose name does not start with
 *   "cd-<canary>-";
 * - a split is made in one socket write: new servers added at weight 0
 *   and enabled, then every weight that rises, then every one that falls
 *   (with roundrobin, lowering first gave 64.9 % for 50 % and 299 canary
 *   requests in a row), so that no moment has every server at 0 (HAProxy
 *   answers 503 then); servers that left go to weight 0 and maintenance,
 *   and are deleted once `show stat` shows them without sessions;
 * - before each write the backend's servers are read (`show servers state`),
 *   so the write starts from HAProxy's weights, not from what canaryd last
 *   sent: a restart, a reload or an operator's change is seen and undone;
 * - every second `show info` is read: a new Pid or a smaller Uptime_sec
 *   means HAProxy restarted and lost its runtime servers and weights, so
 *   the split is made again (the state is canaryd's, in SQLite);
 * - requests are counted from HAProxy itself: per server response counters
 *   of `show stat` every second, or, with spec.haproxy.log, each request's
 *   own log line (status and total time) sent by HAProxy to a UDP syslog
 *   address canaryd listens on. show stat has only a moving mean of times
 *   (rtime/ttime over the last 1024 requests), so request-duration (a
 *   p99) is refused without the log: docs/routers.md;
 * - show stat also gives the backend's balance algorithm: one that does
 *   not split requests by weight (a hash) is an error, not a split that
 *   is reported applied and not followed. */
#include "router.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "haproxy_rt.h"
#include "log.h"
#include "util.h"

#define POLL_MS 1000             /* show info (and show stat) this often */
#define ANSWER_TIMEOUT_MS 5000   /* one runtime API batch */
#define MAX_WEIGHT 256           /* HAProxy's per-server maximum */
#define MAX_RECORD 1000000       /* requests counted per server and second at most */
#define LOG_DGRAM 8192           /* a syslog datagram read at most */

/* One of canaryd's servers as the last successful write left it. */
typedef struct hsrv {
	char name[HART_NAME_LEN];
	char host[HART_ADDR_LEN];    /* an IP address as HAProxy prints it */
	int port;
	int target;
	int weight;
} hsrv;

typedef struct pending {
	uint64_t gen;
	router_done_fn done;
	void *arg;
} pending;

/* What the one request in flight is for. */
typedef enum { STEP_IDLE, STEP_READ, STEP_WRITE, STEP_INFO, STEP_STAT, STEP_DEL } step;

typedef struct hap {
	router base;
	uv_loop_t *loop;
	char *name;                  /* the canary's */
	char *api, *backend, *log_addr;
	char prefix[72];             /* "cd-<canary>-": the servers canaryd owns */
	stats *st;
	router_events ev;            /* cleared by retire */
	bool retired;
	/* the split traffic must follow (the last one applied) */
	uint64_t want_gen;
	int weight;
	route_member *members[TARGET_COUNT];
	size_t n_members[TARGET_COUNT];
	bool watching;
	uint64_t want_ns;            /* uv_hrtime() when the wanted split came */
	uint64_t sync_ns;            /* ... that of the split the sync in flight writes */
	double last_apply_ms;        /* from apply to HAProxy's answer to the write, -1 */
	pending *pend;               /* applies not reported yet */
	size_t n_pend;
	/* the runtime API */
	hart_req *req;               /* the one batch in flight */
	step step;
	bool dirty;                  /* the split must be (re)written */
	uint64_t sync_gen;           /* the generation the sync in flight writes */
	hsrv *srv;                   /* canaryd's servers after the last write */
	size_t n_srv;
	hsrv *plan;                  /* ... as the write in flight makes them */
	size_t n_plan;
	char **leaving;              /* in maintenance, to delete once idle */
	size_t n_leaving;
	unsigned next_idx;           /* the next server number */
	bool canary_up;              /* a canary server runs (HAProxy's op state) */
	/* HAProxy's identity, to see restarts */
	bool known;
	long pid;
	uint64_t uptime;
	/* counters of the last show stat, by server */
	hart_stat *last;
	size_t n_last;
	bool have_last;
	uv_timer_t tick;
	uint64_t last_poll_ms;
	char err[400];               /* the last write's error, "" when it worked */
	char poll_err[400];          /* the last poll's (show info, show stat) */
	char algo_err[200];          /* the backend balances ignoring runtime weights */
	uint64_t retry_ms;           /* a failed write is not tried again before */
	uv_udp_t udp;                /* HAProxy's logs, with log_addr */
	bool udp_open;
	char *dgram;
	int closes;
} hap;

/* ---- pure parts: weights and names (tests/unit/router/test_haproxy.c) ---- */

static unsigned gcd(unsigned a, unsigned b)
{
	while (b) {
		unsigned t = a % b;
		a = b;
		b = t;
	}
	return a;
}

/* Spreads <total> over n servers as evenly as integers allow: the first
 * total % n get one more. */
static void spread(unsigned total, size_t n, int *out)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (int)(total / n + (i < total % n));
}

/* The weights of <ns> stable servers (ws[]) and <nc> canary servers (wc[])
 * for canary share <w> (0..100), each in 0..MAX_WEIGHT, such that the
 * canary's servers together get exactly w % of new requests: the sums are
 * (100-w)*k and w*k (reduced by their common divisor). The smallest k that
 * gives every server of a side the same weight ("(100-w)*k/ns" and
 * "w*k/nc") is taken when it fits in 256; otherwise the largest k that
 * fits, spread so that the servers of a side differ by one at most (an
 * extreme split over many servers, e.g. 1 % over 4 canary servers and 1
 * stable: 99/1/0/0/0, may leave some at 0). A target without servers gets
 * nothing and the other everything. */
static void hap_weights(int w, size_t ns, size_t nc, int *ws, int *wc)
{
	if (nc == 0)
		w = 0;
	else if (ns == 0)
		w = 100;
	unsigned S = (unsigned)(100 - w), C = (unsigned)w, g = gcd(S, C);
	S /= g;
	C /= g;
	/* the smallest k making S*k a multiple of ns and C*k one of nc */
	unsigned ks = S && ns ? (unsigned)ns / gcd(S, (unsigned)ns) : 1;
	unsigned kc = C && nc ? (unsigned)nc / gcd(C, (unsigned)nc) : 1;
	unsigned k = ks / gcd(ks, kc) * kc;
	if ((ns && S * k / ns > MAX_WEIGHT) || (nc && C * k / nc > MAX_WEIGHT)) {
		unsigned a = S ? MAX_WEIGHT * (unsigned)ns / S : UINT32_MAX;
		unsigned b = C ? MAX_WEIGHT * (unsigned)nc / C : UINT32_MAX;
		k = a < b ? a : b;
	}
	spread(S * k, ns, ws);
	spread(C * k, nc, wc);
}

static char target_letter(int t)
{
	return t == TARGET_CANARY ? 'c' : 's';
}

/* The target of canaryd's server <name> ("<prefix>s3" is stable), or -1
 * when the server is not canaryd's (for this canary). */
static int owned_target(const char *prefix, const char *name)
{
	size_t n = strlen(prefix);
	if (strncmp(name, prefix, n) != 0)
		return -1;
	const char *p = name + n;
	if ((p[0] != 's' && p[0] != 'c') || p[1] < '0' || p[1] > '9')
		return -1;
	for (const char *q = p + 1; *q; q++)
		if (*q < '0' || *q > '9')
			return -1;
	return p[0] == 'c' ? TARGET_CANARY : TARGET_STABLE;
}

/* The batch that takes the servers from their weights now <cur> to <next>
 * (n of each, by server <names>): every rise, then every fall, so that the
 * sum of weights never dips below both ends'. Appends to <b>. */
static void hap_order(buf *b, const char *backend, char (*names)[HART_NAME_LEN],
                      const int *cur, const int *next, size_t n)
{
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++)
			if (pass == 0 ? next[i] > cur[i] : next[i] < cur[i])
				buf_printf(b, "%sset weight %s/%s %d", b->len ? "; " : "", backend,
				           names[i], next[i]);
}

/* ---- reports ---- */

/* Sets <slot> (h->err or h->poll_err), logging only a change: a failure
 * that lasts is tried again every second and logged once. */
static void set_error(hap *h, char *slot, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void set_error(hap *h, char *slot, const char *fmt, ...)
{
	char e[sizeof h->err];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(e, sizeof e, fmt, ap);
	va_end(ap);
	util_ascii_line(e);
	if (strcmp(e, slot) != 0)
		log_msg(LOG_ERROR, h->name, "router 'haproxy': %s", e);
	snprintf(slot, sizeof h->err, "%s", e);
}

static void clear_error(hap *h, char *slot)
{
	if (slot[0])
		log_msg(LOG_INFO, h->name, "router 'haproxy': haproxy '%s' answers again", h->api);
	slot[0] = '\0';
}

/* Reports the applies up to <gen> (all of them with an error). */
static void report(hap *h, uint64_t gen, int status)
{
	size_t j = 0, n = 0;
	pending *out = xcalloc(h->n_pend ? h->n_pend : 1, sizeof *out);
	for (size_t i = 0; i < h->n_pend; i++)
		if (status < 0 || h->pend[i].gen <= gen)
			out[n++] = h->pend[i];
		else
			h->pend[j++] = h->pend[i];
	h->n_pend = j;
	for (size_t i = 0; i < n; i++)
		out[i].done(out[i].arg, out[i].gen, status, status < 0 ? h->err : NULL);
	free(out);
}

static void report_ready(hap *h)
{
	if (h->watching && h->ev.ready)
		h->ev.ready(h->ev.arg, h->canary_up && !h->err[0] && !h->poll_err[0] &&
		            !h->algo_err[0]);
}

/* ---- the batches ---- */

static void kick(hap *h);
static void on_answer(void *arg, int status, const char *ans, size_t len, const char *err);

static void send_batch(hap *h, step s, const char *cmds)
{
	h->step = s;
	h->req = hart_send(h->loop, h->api, cmds, ANSWER_TIMEOUT_MS, on_answer, h);
}

static void member_host(const route_member *m, char *host, size_t hostlen, int *port)
{
	host[0] = '\0';
	if (m->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)&m->addr;
		uv_ip6_name(a, host, hostlen);
		*port = ntohs(a->sin6_port);
	} else {
		const struct sockaddr_in *a = (const struct sockaddr_in *)&m->addr;
		uv_ip4_name(a, host, hostlen);
		*port = ntohs(a->sin_port);
	}
}

static bool name_taken(const hart_server *live, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(live[i].name, name) == 0)
			return true;
	return false;
}

/* From the backend's servers <live>, the one write that makes the split
 * wanted now: into <b>, with h->plan the servers it leaves. */
static void plan_write(hap *h, const hart_server *live, size_t n_live, buf *b)
{
	size_t want = h->n_members[TARGET_STABLE] + h->n_members[TARGET_CANARY];
	bool *used = xcalloc(n_live ? n_live : 1, sizeof *used);
	free(h->plan);
	h->plan = xcalloc(want ? want : 1, sizeof *h->plan);
	h->n_plan = 0;
	int *cur = xcalloc(want ? want : 1, sizeof *cur);
	int *next = xcalloc(want ? want : 1, sizeof *next);
	char (*names)[HART_NAME_LEN] = xcalloc(want ? want : 1, HART_NAME_LEN);
	buf adds = BUF_INIT, tail = BUF_INIT;
	/* the numbers go on from the highest seen, so that a name is not
	 * reused while HAProxy may still count requests under it */
	for (size_t i = 0; i < n_live; i++)
		if (owned_target(h->prefix, live[i].name) >= 0) {
			unsigned v = (unsigned)strtoul(live[i].name + strlen(h->prefix) + 1, NULL, 10);
			if (v >= h->next_idx && v < 1000000)
				h->next_idx = v + 1;
		}
	/* the servers: one per address (two names of one host may share one) */
	for (int t = 0; t < TARGET_COUNT; t++)
		for (size_t k = 0; k < h->n_members[t]; k++) {
			hsrv *s = &h->plan[h->n_plan];
			member_host(&h->members[t][k], s->host, sizeof s->host, &s->port);
			s->target = t;
			bool dup = false;
			for (size_t j = 0; j < h->n_plan; j++)
				if (h->plan[j].target == t && h->plan[j].port == s->port &&
				    !strcmp(h->plan[j].host, s->host))
					dup = true;
			if (!dup)
				h->n_plan++;
		}
	size_t n_of[TARGET_COUNT] = { 0, 0 };
	for (size_t i = 0; i < h->n_plan; i++)
		n_of[h->plan[i].target]++;
	int *wt[TARGET_COUNT];
	for (int t = 0; t < TARGET_COUNT; t++)
		wt[t] = xcalloc(n_of[t] ? n_of[t] : 1, sizeof(int));
	hap_weights(h->weight, n_of[TARGET_STABLE], n_of[TARGET_CANARY], wt[TARGET_STABLE],
	            wt[TARGET_CANARY]);
	size_t planned = h->n_plan, at[TARGET_COUNT] = { 0, 0 };
	h->n_plan = 0;
	for (size_t p = 0; p < planned; p++) {
		hsrv *s = &h->plan[h->n_plan];
		*s = h->plan[p];
		int t = s->target;
		s->weight = wt[t][at[t]++];
		ssize_t found = -1;
		for (size_t i = 0; i < n_live && found < 0; i++)
			if (!used[i] && owned_target(h->prefix, live[i].name) == t &&
			    live[i].port == s->port && !strcmp(live[i].addr, s->host))
				found = (ssize_t)i;
		if (found >= 0) {
			used[found] = true;
			/* wanted again before it was deleted: it stays */
			for (size_t j = 0; j < h->n_leaving; j++)
				if (!strcmp(h->leaving[j], live[found].name)) {
					free(h->leaving[j]);
					h->leaving[j--] = h->leaving[--h->n_leaving];
				}
			snprintf(s->name, sizeof s->name, "%s", live[found].name);
			cur[h->n_plan] = live[found].uweight;
			if (live[found].admin_state & HART_ADMIN_FMAINT)
				buf_printf(&adds, "%sset server %s/%s state ready",
				           adds.len ? "; " : "", h->backend, s->name);
		} else {
			do
				snprintf(s->name, sizeof s->name, "%s%c%u", h->prefix,
				         target_letter(t), h->next_idx++);
			while (name_taken(live, n_live, s->name));
			const char *l = strchr(s->host, ':') ? "[" : "";
			const char *r = *l ? "]" : "";
			buf_printf(&adds, "%sadd server %s/%s %s%s%s:%d weight 0; enable server %s/%s",
			           adds.len ? "; " : "", h->backend, s->name, l, s->host, r,
			           s->port, h->backend, s->name);
			cur[h->n_plan] = 0;
		}
		next[h->n_plan] = s->weight;
		memcpy(names[h->n_plan], s->name, HART_NAME_LEN);
		h->n_plan++;
	}
	for (int t = 0; t < TARGET_COUNT; t++)
		free(wt[t]);
	/* canaryd's servers that left: weight 0 with the other falls, then
	 * maintenance (new requests stop; those in flight finish) */
	for (size_t i = 0; i < n_live; i++) {
		if (used[i] || owned_target(h->prefix, live[i].name) < 0)
			continue;
		if (live[i].uweight > 0)
			buf_printf(&tail, "%sset weight %s/%s 0", tail.len ? "; " : "", h->backend,
			           live[i].name);
		if (!(live[i].admin_state & HART_ADMIN_FMAINT))
			buf_printf(&tail, "%sset server %s/%s state maint", tail.len ? "; " : "",
			           h->backend, live[i].name);
		bool listed = false;
		for (size_t j = 0; j < h->n_leaving; j++)
			listed |= !strcmp(h->leaving[j], live[i].name);
		if (!listed) {
			h->leaving = xrealloc(h->leaving, (h->n_leaving + 1) * sizeof *h->leaving);
			h->leaving[h->n_leaving++] = xstrdup(live[i].name);
		}
	}
	buf_puts(b, adds.len ? adds.p : "");
	buf weights = BUF_INIT;
	hap_order(&weights, h->backend, names, cur, next, h->n_plan);
	if (weights.len)
		buf_printf(b, "%s%s", b->len ? "; " : "", weights.p);
	if (tail.len)
		buf_printf(b, "%s%s", b->len ? "; " : "", tail.p);
	h->canary_up = false;
	for (size_t i = 0; i < h->n_plan; i++)
		if (h->plan[i].target == TARGET_CANARY) {
			h->canary_up = true;   /* enabled by this write if it was not */
			for (size_t j = 0; j < n_live; j++)
				if (!strcmp(live[j].name, h->plan[i].name) && live[j].op_state == 0 &&
				    !(live[j].admin_state & HART_ADMIN_FMAINT))
					h->canary_up = false;   /* HAProxy's checks say it is down */
		}
	buf_release(&weights);
	buf_release(&adds);
	buf_release(&tail);
	free(used);
	free(cur);
	free(next);
	free(names);
}

/* The leaving servers that `show stat` shows without sessions: deleted in
 * one batch. HAProxy refuses to delete a server with connections anyway
 * ("Server still has connections attached to it"); it is tried again on
 * the next poll. */
static void delete_idle(hap *h, const hart_stat *rows, size_t n)
{
	buf b = BUF_INIT;
	size_t j = 0;
	for (size_t i = 0; i < h->n_leaving; i++) {
		const hart_stat *r = NULL;
		for (size_t k = 0; k < n; k++)
			if (!strcmp(rows[k].name, h->leaving[i]))
				r = &rows[k];
		if (!r) {   /* gone already (a restart, an operator) */
			free(h->leaving[i]);
			continue;
		}
		if (r->scur == 0)
			buf_printf(&b, "%sdel server %s/%s", b.len ? "; " : "", h->backend,
			           h->leaving[i]);
		h->leaving[j++] = h->leaving[i];
	}
	h->n_leaving = j;
	if (b.len)
		send_batch(h, STEP_DEL, b.p);
	buf_release(&b);
}

/* Counts the requests HAProxy answered since the last show stat into the
 * canary's stats, by target, from each server's counter deltas. */
static void count_stat(hap *h, const hart_stat *rows, size_t n)
{
	uint64_t now = uv_now(h->loop) / 1000;
	for (size_t i = 0; i < n && h->have_last; i++) {
		int t = owned_target(h->prefix, rows[i].name);
		if (t < 0)
			continue;
		const hart_stat *p = NULL;
		for (size_t k = 0; k < h->n_last; k++)
			if (!strcmp(h->last[k].name, rows[i].name))
				p = &h->last[k];
		for (int c = 0; c < 6; c++) {
			/* a new server, or counters reset by a restart, start at 0 */
			uint64_t d = p && rows[i].hrsp[c] >= p->hrsp[c] ? rows[i].hrsp[c] - p->hrsp[c]
			                                              : rows[i].hrsp[c];
			if (d > MAX_RECORD)
				d = MAX_RECORD;
			int code = c == 0 ? 0 : c * 100;
			/* show stat has no per-request time: its mean, which is why
			 * request-duration needs spec.haproxy.log (h_check) */
			for (uint64_t k = 0; k < d; k++)
				stats_record(h->st, t, code, rows[i].ttime_ms * 1000, now);
		}
	}
	free(h->last);
	h->last = xmalloc((n ? n : 1) * sizeof *h->last);
	if (n)
		memcpy(h->last, rows, n * sizeof *rows);
	h->n_last = n;
	h->have_last = true;
}

/* Reports the applies waiting with <why>, as a failed write does. */
static void report_error(hap *h, const char *why)
{
	char keep[sizeof h->err];
	snprintf(keep, sizeof keep, "%s", h->err);
	snprintf(h->err, sizeof h->err, "%s", why);
	report(h, 0, -1);
	snprintf(h->err, sizeof h->err, "%s", keep);
	report_ready(h);
}

/* With balance static-rr, first or a hash, HAProxy ignores weights set at
 * run time (README 1.1): every split would be "applied" and not followed.
 * Said as an error until the backend's algorithm changes, then the split
 * is written again. */
static void check_algo(hap *h, const char *ans, size_t len)
{
	char algo[64];
	if (hart_stat_algo(ans, len, h->backend, algo, sizeof algo) < 0)
		return;
	bool ok = !strcmp(algo, "roundrobin") || !strcmp(algo, "leastconn") ||
	          !strcmp(algo, "random");
	if (!ok && !h->algo_err[0]) {
		snprintf(h->algo_err, sizeof h->algo_err, "haproxy '%s', backend '%s': balance '%s' "
		         "ignores weights set at run time (use balance roundrobin)", h->api,
		         h->backend, algo);
		log_msg(LOG_ERROR, h->name, "router 'haproxy': %s", h->algo_err);
		report_error(h, h->algo_err);
	} else if (ok && h->algo_err[0]) {
		log_msg(LOG_INFO, h->name, "router 'haproxy': backend '%s' balances with '%s' now",
		        h->backend, algo);
		h->algo_err[0] = '\0';
		h->dirty = true;   /* report the split as applied */
		h->want_ns = uv_hrtime();
	}
}

static void sync_failed(hap *h)
{
	report(h, 0, -1);
	report_ready(h);
	/* not again at once: a missing socket fails at once, every time */
	h->retry_ms = uv_now(h->loop) + POLL_MS;
}

static void on_answer(void *arg, int status, const char *ans, size_t len, const char *err)
{
	hap *h = arg;
	step s = h->step;
	h->req = NULL;
	h->step = STEP_IDLE;
	if (status < 0) {
		bool sync = s == STEP_READ || s == STEP_WRITE;
		set_error(h, sync ? h->err : h->poll_err, "%s", err);
		if (sync)
			sync_failed(h);
		else
			report_ready(h);
		kick(h);
		return;
	}
	char e[300];
	switch (s) {
	case STEP_READ: {
		hart_server *live;
		size_t n;
		if (hart_parse_servers(ans, len, h->backend, &live, &n, e, sizeof e) < 0) {
			set_error(h, h->err, "haproxy '%s', backend '%s': %s", h->api, h->backend, e);
			sync_failed(h);
			break;
		}
		buf b = BUF_INIT;
		plan_write(h, live, n, &b);
		free(live);
		if (b.len) {
			send_batch(h, STEP_WRITE, b.p);
			buf_release(&b);
			return;
		}
		buf_release(&b);
		s = STEP_WRITE;   /* nothing to change: done as if written */
		ans = "";
		len = 0;
	}
	/* fall through */
	case STEP_WRITE:
		if (hart_answer_ok(ans, len, e, sizeof e) < 0) {
			set_error(h, h->err, "haproxy '%s', backend '%s': %s%s", h->api, h->backend, e,
			          strstr(e, "Permission denied") ? " (the stats socket needs "
			          "'level admin')" : "");
			sync_failed(h);
			break;
		}
		clear_error(h, h->err);
		free(h->srv);
		h->srv = h->plan;
		h->n_srv = h->n_plan;
		h->plan = NULL;
		h->n_plan = 0;
		if (h->sync_gen == h->want_gen)
			h->dirty = false;
		h->last_apply_ms = (double)(uv_hrtime() - h->sync_ns) / 1e6;
		if (h->algo_err[0]) {
			/* written, but HAProxy does not split by it */
			report_error(h, h->algo_err);
			break;
		}
		report(h, h->sync_gen, 0);
		report_ready(h);
		break;
	case STEP_INFO: {
		hart_info in;
		if (hart_parse_info(ans, len, &in, e, sizeof e) < 0) {
			set_error(h, h->poll_err, "haproxy '%s': %s", h->api, e);
			report_ready(h);
			break;
		}
		if (h->known && (in.pid != h->pid || in.uptime_sec < h->uptime)) {
			log_msg(LOG_WARN, h->name, "router 'haproxy': haproxy '%s' restarted (pid %ld, "
			        "was %ld): its servers and weights are set again", h->api, in.pid,
			        h->pid);
			h->dirty = true;
			h->want_ns = uv_hrtime();   /* the re-assertion is timed from here */
			h->have_last = false;
		}
		h->known = true;
		h->pid = in.pid;
		h->uptime = in.uptime_sec;
		if (h->dirty)
			break;
		/* the backend's rows only: a big configuration's whole show stat
		 * is megabytes a second */
		char cmd[HART_NAME_LEN + 32];
		snprintf(cmd, sizeof cmd, "show stat %s -1 -1", h->backend);
		send_batch(h, STEP_STAT, cmd);
		return;
	}
	case STEP_STAT: {
		hart_stat *rows;
		size_t n;
		if (hart_parse_stat(ans, len, h->backend, &rows, &n, e, sizeof e) < 0) {
			set_error(h, h->poll_err, "haproxy '%s': %s", h->api, e);
			report_ready(h);
			break;
		}
		clear_error(h, h->poll_err);
		check_algo(h, ans, len);
		if (!h->log_addr)
			count_stat(h, rows, n);
		report_ready(h);
		delete_idle(h, rows, n);
		free(rows);
		if (h->req)
			return;
		break;
	}
	case STEP_DEL:
		/* "Server still has connections": the next poll tries again */
		if (hart_answer_ok(ans, len, e, sizeof e) < 0)
			log_msg(LOG_DEBUG, h->name, "router 'haproxy': del server: %s", e);
		break;
	case STEP_IDLE:
		break;
	}
	kick(h);
}

/* Starts the next batch when none is in flight: the split first, then the
 * poll when it is due. */
static void kick(hap *h)
{
	if (h->req || h->retired)
		return;
	uint64_t now = uv_now(h->loop);
	if (h->dirty && h->want_gen && now >= h->retry_ms) {
		h->sync_gen = h->want_gen;
		h->sync_ns = h->want_ns;
		char cmd[HART_NAME_LEN + 32];
		snprintf(cmd, sizeof cmd, "show servers state %s", h->backend);
		send_batch(h, STEP_READ, cmd);
		return;
	}
	if (now - h->last_poll_ms >= POLL_MS) {
		h->last_poll_ms = now;
		send_batch(h, STEP_INFO, "show info");
	}
}

static void tick_cb(uv_timer_t *t)
{
	hap *h = t->data;
	/* a failed write is tried again here, without waiting for the
	 * controller's next apply */
	kick(h);
}

/* ---- HAProxy's request logs (spec.haproxy.log) ---- */

static void log_alloc(uv_handle_t *hd, size_t hint, uv_buf_t *b)
{
	hap *h = hd->data;
	(void)hint;
	*b = uv_buf_init(h->dgram, LOG_DGRAM);
}

static void log_recv(uv_udp_t *u, ssize_t nread, const uv_buf_t *b,
                     const struct sockaddr *from, unsigned flags)
{
	hap *h = u->data;
	(void)from;
	hart_log l;
	if (nread <= 0 || (flags & UV_UDP_PARTIAL) || h->retired ||
	    hart_parse_log(b->base, (size_t)nread, &l) < 0 || strcmp(l.backend, h->backend) != 0)
		return;
	int t = owned_target(h->prefix, l.server);
	/* a request the client gave up on before an answer says nothing of
	 * the server */
	if (t < 0 || l.status < 0 || l.total_ms < 0)
		return;
	stats_record(h->st, t, l.status, (uint64_t)l.total_ms * 1000, uv_now(h->loop) / 1000);
}

static int log_open(hap *h, char *err, size_t errlen)
{
	char host[256];
	int port;
	struct sockaddr_storage ss;
	util_parse_hostport(h->log_addr, host, sizeof host, &port);
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
		snprintf(err, errlen, "spec.haproxy.log '%s': not an IP address", h->log_addr);
		return -1;
	}
	uv_udp_init(h->loop, &h->udp);
	h->udp.data = h;
	h->udp_open = true;
	h->closes++;
	int rc = uv_udp_bind(&h->udp, (const struct sockaddr *)&ss, 0);
	if (rc == 0) {
		/* a burst of log lines must wait in the kernel, not be dropped */
		int sz = 4 << 20;
		uv_recv_buffer_size((uv_handle_t *)&h->udp, &sz);
		rc = uv_udp_recv_start(&h->udp, log_alloc, log_recv);
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen for haproxy's logs on '%s': %s", h->log_addr,
		         uv_strerror(rc));
		return -1;
	}
	h->dgram = xmalloc(LOG_DGRAM);
	return 0;
}

/* ---- the ops ---- */

static int h_check(const cfg_canary *cc, char *err, size_t errlen)
{
	if (!cc->haproxy_api || !cc->haproxy_backend) {
		snprintf(err, errlen, "canary '%s': router 'haproxy' needs spec.haproxy.runtimeAPI "
		         "and spec.haproxy.backend", cc->name);
		return -1;
	}
	if (hart_addr_check(cc->haproxy_api, err, errlen) < 0)
		return -1;
	if (strlen(cc->name) + 16 > HART_NAME_LEN) {
		snprintf(err, errlen, "canary '%s': name too long for haproxy server names",
		         cc->name);
		return -1;
	}
	if (cc->haproxy_log)
		return 0;
	/* show stat keeps a moving mean of times, not a distribution: a p99
	 * made of it would be a mean under another name */
	for (int i = 0; i < cc->policy.n_metrics; i++)
		if (cc->policy.metrics[i].kind == ENG_M_DURATION) {
			snprintf(err, errlen, "canary '%s': metric '%s' (request-duration, a p99) "
			         "needs spec.haproxy.log with router 'haproxy': HAProxy's show stat has "
			         "only a moving mean of response times", cc->name,
			         cc->policy.metrics[i].name);
			return -1;
		}
	if (cc->policy.judge == ENG_JUDGE_SEQUENTIAL && cc->policy.judge_latency_ratio > 0) {
		snprintf(err, errlen, "canary '%s': the sequential judge's latency test needs "
		         "spec.haproxy.log with router 'haproxy' (or spec.analysis.latencyRatio: 0)",
		         cc->name);
		return -1;
	}
	return 0;
}

static void hap_free(hap *h)
{
	for (int t = 0; t < TARGET_COUNT; t++)
		free(h->members[t]);
	for (size_t i = 0; i < h->n_leaving; i++)
		free(h->leaving[i]);
	free(h->leaving);
	free(h->pend);
	free(h->srv);
	free(h->plan);
	free(h->last);
	free(h->dgram);
	free(h->name);
	free(h->api);
	free(h->backend);
	free(h->log_addr);
	free(h);
}

static void h_closed(uv_handle_t *hd)
{
	hap *h = hd->data;
	if (--h->closes == 0)
		hap_free(h);
}

static int h_open(uv_loop_t *loop, const cfg_canary *cc, stats *st, const router_events *ev,
                  router **out, char *err, size_t errlen)
{
	if (h_check(cc, err, errlen) < 0)
		return -1;
	hap *h = xcalloc(1, sizeof *h);
	h->base.ops = &router_haproxy;
	h->loop = loop;
	h->name = xstrdup(cc->name);
	h->api = xstrdup(cc->haproxy_api);
	h->backend = xstrdup(cc->haproxy_backend);
	h->log_addr = cc->haproxy_log ? xstrdup(cc->haproxy_log) : NULL;
	snprintf(h->prefix, sizeof h->prefix, "cd-%s-", cc->name);
	h->st = st;
	h->ev = *ev;
	uv_timer_init(loop, &h->tick);
	h->tick.data = h;
	h->closes = 1;
	h->last_apply_ms = -1;
	if (h->log_addr && log_open(h, err, errlen) < 0) {
		if (h->udp_open)
			uv_close((uv_handle_t *)&h->udp, h_closed);
		uv_close((uv_handle_t *)&h->tick, h_closed);
		return -1;
	}
	uv_timer_start(&h->tick, tick_cb, POLL_MS, POLL_MS);
	log_msg(LOG_INFO, cc->name, "router 'haproxy': backend '%s' through '%s'%s%s", h->backend,
	        h->api, h->log_addr ? ", request logs on " : "", h->log_addr ? h->log_addr : "");
	*out = &h->base;
	return 0;
}

static void h_apply(router *r, const router_split *s, router_done_fn done, void *arg)
{
	hap *h = (hap *)r;
	h->want_gen = s->generation;
	h->want_ns = uv_hrtime();
	h->weight = s->weight;
	for (int t = 0; t < TARGET_COUNT; t++) {
		free(h->members[t]);
		h->n_members[t] = s->n_members[t];
		h->members[t] = xmalloc((s->n_members[t] ? s->n_members[t] : 1) * sizeof(route_member));
		if (s->n_members[t])
			memcpy(h->members[t], s->members[t], s->n_members[t] * sizeof(route_member));
	}
	h->watching = s->watch_ready;
	h->pend = xrealloc(h->pend, (h->n_pend + 1) * sizeof *h->pend);
	h->pend[h->n_pend++] = (pending){ s->generation, done, arg };
	h->dirty = true;
	h->retry_ms = 0;   /* a new split is tried at once */
	kick(h);
}

/* The HAProxy a canary drives is where its servers are: moving them is a
 * restart, not a reload (the old backend would keep canaryd's servers). */
static int h_prepare(router *r, const cfg_canary *cc, char *err, size_t errlen)
{
	hap *h = (hap *)r;
	if (strcmp(h->api, cc->haproxy_api) != 0 || strcmp(h->backend, cc->haproxy_backend) != 0 ||
	    (h->log_addr == NULL) != (cc->haproxy_log == NULL) ||
	    (h->log_addr && strcmp(h->log_addr, cc->haproxy_log) != 0)) {
		snprintf(err, errlen, "canary '%s': spec.haproxy changed; a reload cannot move "
		         "canaryd's servers to another haproxy, backend or log address: restart "
		         "canaryd", cc->name);
		return -1;
	}
	return 0;
}

static void h_finish(router *r, const cfg_canary *cc)
{
	(void)r;
	(void)cc;
}

static void h_cancel(router *r)
{
	(void)r;
}

static void h_status(router *r, json_t *o)
{
	hap *h = (hap *)r;
	json_t *x = json_object();
	json_object_set_new(x, "runtimeAPI", json_string(h->api));
	json_object_set_new(x, "backend", json_string(h->backend));
	if (h->log_addr)
		json_object_set_new(x, "log", json_string(h->log_addr));
	if (h->known)
		json_object_set_new(x, "pid", json_integer(h->pid));
	json_t *a = json_array();
	for (size_t i = 0; i < h->n_srv; i++) {
		char addr[HART_ADDR_LEN + 16];
		snprintf(addr, sizeof addr, strchr(h->srv[i].host, ':') ? "[%s]:%d" : "%s:%d",
		         h->srv[i].host, h->srv[i].port);
		json_array_append_new(a, json_pack("{s:s, s:s, s:s, s:i}", "name", h->srv[i].name,
		                                   "target", h->srv[i].target == TARGET_CANARY
		                                   ? "canary" : "stable", "address", addr,
		                                   "weight", h->srv[i].weight));
	}
	json_object_set_new(x, "servers", a);
	/* from the apply to HAProxy's answer to the write, for the last split
	 * written (retries included; a restart healed: from when it was seen) */
	if (h->last_apply_ms >= 0)
		json_object_set_new(x, "lastApplyMs", json_real(h->last_apply_ms));
	json_t *l = json_array();
	for (size_t i = 0; i < h->n_leaving; i++)
		json_array_append_new(l, json_string(h->leaving[i]));
	json_object_set_new(x, "draining", l);
	const char *e = h->err[0] ? h->err : h->algo_err[0] ? h->algo_err : h->poll_err;
	if (e[0])
		json_object_set_new(x, "error", json_string(e));
	json_object_set_new(o, "haproxy", x);
}

static size_t h_zero(router *r)
{
	(void)r;   /* HAProxy holds the requests and connections */
	return 0;
}

static void h_drain(router *r)
{
	(void)r;   /* HAProxy keeps serving: canaryd's servers stay as they are */
}

static void h_retire(router *r)
{
	hap *h = (hap *)r;
	h->retired = true;
	memset(&h->ev, 0, sizeof h->ev);
	free(h->pend);
	h->pend = NULL;
	h->n_pend = 0;
	hart_cancel(h->req);
	h->req = NULL;
}

static void h_close(router *r)
{
	hap *h = (hap *)r;
	h_retire(r);
	uv_timer_stop(&h->tick);
	if (h->udp_open)
		uv_close((uv_handle_t *)&h->udp, h_closed);
	uv_close((uv_handle_t *)&h->tick, h_closed);
}

const router_ops router_haproxy = {
	.name = "haproxy",
	.check = h_check,
	.open = h_open,
	.apply = h_apply,
	.prepare = h_prepare,
	.finish = h_finish,
	.cancel = h_cancel,
	.status = h_status,
	.inflight = h_zero,
	.connections = h_zero,
	.drain = h_drain,
	.retire = h_retire,
	.close = h_close,
};
