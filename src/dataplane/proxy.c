/* proxy.c - the built-in HTTP/1.1 reverse proxy (see proxy.h).
 *
 * One client connection (cconn) carries one request at a time: pipelined
 * requests wait in its input buffer until the current response is written.
 * Each request is bound to an upstream connection (upconn) taken from the
 * LIFO keep-alive pool of the chosen endpoint or connected afresh. Bytes flow
 * through two fixed buffers per client connection, one per direction, with
 * at most one write in flight per direction: a buffer is refilled only as
 * fast as the other side drains it, which is the back-pressure, and nothing
 * is allocated per request. Heads are rewritten into two more fixed buffers.
 *
 * Every buffer an in-flight write points to belongs to the cconn, so an
 * upconn can be closed at any time (its writes are cancelled, libuv does not
 * touch their bytes again) and returned to the pool only when it has no
 * write in flight. Memory is freed only in close callbacks. */
#include "proxy.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "http.h"
#include "log.h"
#include "resolve.h"
#include "util.h"

#define CBUF HTTP_MAX_HEAD         /* client input: a whole head must fit */
#define RBUF 16384                 /* upstream input */
#define HEADBUF (HTTP_MAX_HEAD + 1024) /* a rewritten head: room for added fields */
#define POOL_MAX 1024              /* idle connections kept per endpoint */
#define EP_NAME ROUTE_NAME_LEN     /* an endpoint's name in logs */
#define IO_TRIM_MS 5000            /* period of the free request block trim */

typedef struct upconn upconn;
typedef struct cconn cconn;
typedef struct worker worker;

/* Counters and flags shared between threads: relaxed atomics (as in
 * stats.c); each has one writer. */
#define LD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)
#define ST(x, v) __atomic_store_n(&(x), (v), __ATOMIC_RELAXED)
#define CNT_ADD(x, d) ST(x, LD(x) + (d))   /* single writer: no locked op */

/* What a client connection needs only while a request is active: the
 * parsed messages, one buffer per direction and the rewritten heads. An
 * idle keep-alive connection holds none (its struct is about 1.1 KB; the
 * benchmark measures 1.7 KiB of RSS per idle connection); blocks are
 * taken from and given back to a small per-loop free list, and mapped
 * separately so that a burst's blocks go back to the system afterwards. */
typedef struct iobuf {
	struct iobuf *next;           /* in the free list */
	http_request req;
	http_response resp;
	char cbuf[CBUF];              /* client input */
	char rbuf[RBUF];              /* upstream input */
	char reqhead[HEADBUF];
	char resphead[HEADBUF];
} iobuf;

/* One upstream address. Referenced by the endpoint sets holding it, by each
 * request using it and by each upstream connection to it (pooled or busy);
 * freed when the last reference goes. */
typedef struct endpoint {
	int refs;
	bool removed;                 /* in no set any more: pool nothing */
	char name[EP_NAME];           /* route_member.name */
	struct sockaddr_storage addr;
	upconn *idle[POOL_MAX];       /* keep-alive pool, a LIFO stack */
	size_t n_idle;
	struct outlier *ol;           /* passive outlier detection state */
} endpoint;

/* The passive outlier detection state of one endpoint. With workers, each
 * worker has its own endpoint objects (their pools belong to its loop) but
 * they all share the main route's record of the endpoint, so that failures
 * seen by any worker add up and one ejection is reported once: every
 * field is an atomic, and the transitions of <ejected> are compare-and-swap,
 * whose winner alone reports. */
typedef struct outlier {
	int refs;                     /* atomic */
	int fails;                    /* consecutive failures */
	int ejected;                  /* 0/1 */
	uint64_t until;               /* uv_now() ms at which it comes back */
} outlier;

/* An endpoint as the main route hands it to a worker. */
typedef struct epinfo {
	char name[EP_NAME];
	struct sockaddr_storage addr;
	outlier *ol;                  /* a reference, or NULL: a new record */
} epinfo;

typedef struct epset {
	endpoint **v;
	size_t n;
	size_t rr;                    /* round-robin position */
} epset;

struct route {
	int refs;
	char *name;
	stats *st;
	epset set[TARGET_COUNT];
	int weight;                   /* canary share 0..100 (atomic) */
	route *src;                   /* a worker's replica: the main route */
	struct proxy **hubs;          /* proxies with workers serving this route */
	size_t n_hubs;
	int eff[TARGET_COUNT];        /* weights the SWRR state was built for */
	int cur[TARGET_COUNT];        /* smooth weighted round-robin state */
	route_observer_fn obs;        /* told of ejections and returns */
	void *obs_arg;
	int outlier_errors;           /* from the proxies' settings (0: never eject) */
	uint64_t ejection_ms;
};

struct proxy {
	uv_loop_t *loop;
	uv_tcp_t listener;
	bool listening;
	bool closing;
	bool draining;
	route *r;
	cfg_timeouts t;
	size_t nobj;                  /* listener + cconns + upconns not yet freed */
	size_t n_clients;             /* atomic: read by the main thread */
	size_t inflight;              /* atomic: read by the main thread */
	int max_conns;                /* client connections at most (0: no limit) */
	int outlier_errors;
	uint64_t ejection_ms;
	bool accept_paused;           /* at the limit, a connection is waiting */
	uint64_t limit_logged_ms;
	cconn *clients;
	upconn *ups;
	uv_idle_t resume;             /* runs the connections that yielded */
	cconn *yielded;               /* those connections (c->yield_next) */
	iobuf *free_io;               /* free list of request blocks */
	size_t n_free_io;
	size_t free_low;              /* fewest free blocks since the last trim */
	uv_timer_t trim;              /* gives unneeded free blocks back */
	char scratch[CBUF];           /* reads of connections without a block */
	worker *w;                    /* the worker this proxy runs in, or NULL */
	/* a proxy with workers (a hub): it serves nothing itself */
	worker *workers;
	int n_workers;
	uv_async_t notify;            /* workers' outlier reports, on the main loop */
	uv_mutex_t nmu;               /* guards notes */
	struct note *notes, **notes_tail;
	route **former;               /* routes replicas may still read (set_route) */
	size_t n_former;
};

struct upconn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	proxy *p;
	endpoint *ep;                 /* holds a reference */
	cconn *c;                     /* the request using it; NULL when pooled */
	upconn *prev, *next;          /* in p->ups */
	bool connected;
	bool closing;
	bool pooled;
	bool reading;
	bool w_pending;
	char idlebuf[64];             /* reads while pooled: anything closes */
};

typedef enum { C_IDLE, C_REQ, C_TUNNEL } cstate;
typedef enum { RS_HEAD, RS_BODY, RS_DONE } rstate;
typedef enum { TM_NONE, TM_IDLE, TM_HEAD } tmode;

struct cconn {
	uv_tcp_t tcp;
	uv_timer_t ctimer;            /* client head / idle */
	uv_timer_t utimer;            /* upstream connect / response */
	uint64_t c_due, c_armed;      /* ctimer's deadline and expiry (lt_set) */
	uint64_t u_due, u_armed;      /* utimer's */
	uv_write_t cw;
	uv_shutdown_t shut;
	int open;                     /* handles not yet closed */
	proxy *p;
	cconn *prev, *next;
	cstate state;
	tmode tm;
	bool closing;
	bool lingering;               /* closing after an answer: input discarded */
	bool advancing;               /* inside h1_advance */
	bool reading;
	bool c_eof;                   /* the client finished sending */
	bool cw_pending;
	bool close_after;             /* close once the current response is out */
	bool yielded;                 /* in p->yielded: h1_advance to go on */
	cconn *yield_next;
	size_t cw_body;               /* rbuf bytes in the client write */
	size_t uw_body;               /* cbuf bytes in the upstream write */
	char ip[64];
	size_t ip_len;

	/* the request */
	route *r;                     /* referenced for the request's duration */
	int target;
	endpoint *ep;                 /* referenced for the request's duration */
	upconn *up;
	uint64_t t0;                  /* uv_hrtime() at the head */
	bool head_sent;
	bool body_done;
	uint64_t body_left;
	http_chunked body_ck;
	uint64_t body_sent;
	bool reused, retried, tried_next;
	bool recorded;
	int status;

	/* the response */
	rstate rs;
	bool resp_started;            /* any byte came back */
	bool resp_head_sent;          /* the final head went to the client */
	bool up_eof;
	bool up_err;                  /* the upstream's end was an error (a reset),
	                                 not a close */
	bool up_dirty;                /* bytes after the response: do not reuse */
	http_body rbody;
	uint64_t rleft;
	http_chunked rck;

	size_t coff, clen;
	size_t roff, rlen;
	size_t reqhead_len, resphead_len;
	iobuf *io;                    /* only while a request is active */
};

static void h1_advance(cconn *c);
static void c_advance_loop(cconn *c);
static void h1_resume_accepting(proxy *p);
static void route_configure(proxy *p);
static void h1_close(cconn *c);
static void up_close(upconn *up);
static void h1_fail(cconn *c, int status);
static void h1_cut(cconn *c, const char *what, int status);
static void worker_poll(worker *w);

/* ---- routes and endpoints ---------------------------------------------- */

static outlier *ol_new(void)
{
	outlier *ol = xcalloc(1, sizeof *ol);
	ol->refs = 1;
	return ol;
}

static outlier *ol_ref(outlier *ol)
{
	__atomic_add_fetch(&ol->refs, 1, __ATOMIC_RELAXED);
	return ol;
}

static void ol_unref(outlier *ol)
{
	if (ol && __atomic_sub_fetch(&ol->refs, 1, __ATOMIC_ACQ_REL) == 0)
		free(ol);
}

static void ep_unref(endpoint *ep)
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

static void route_ref(route *r) { r->refs++; }

static void route_unref(route *r)
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
	free(r->hubs);
	free(r->name);
	free(r);
}

void route_release(route *r) { route_unref(r); }

/* Same member: same name and same address. The name alone would do today
 * (a host name's members carry their address in it), but a pooled
 * connection must never be handed to a member whose address differs. */
static bool same_addr(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return false;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *x = (const void *)a, *y = (const void *)b;
		return x->sin_port == y->sin_port && x->sin_addr.s_addr == y->sin_addr.s_addr;
	}
	const struct sockaddr_in6 *x = (const void *)a, *y = (const void *)b;
	return x->sin6_port == y->sin6_port && x->sin6_scope_id == y->sin6_scope_id &&
	       memcmp(&x->sin6_addr, &y->sin6_addr, sizeof x->sin6_addr) == 0;
}

static endpoint *route_find_ep(route *r, const char *name,
                               const struct sockaddr_storage *addr)
{
	for (int t = 0; t < TARGET_COUNT; t++)
		for (size_t i = 0; i < r->set[t].n; i++) {
			endpoint *ep = r->set[t].v[i];
			if (strcmp(ep->name, name) == 0 && same_addr(&ep->addr, addr))
				return ep;
		}
	return NULL;
}

/* Replaces the set of <target> by v[0..n). An endpoint that stays keeps
 * its object and pool (possibly moving from one target to the other on
 * promotion). A given outlier record (a replica's) replaces the
 * endpoint's; without one, a new endpoint gets a fresh record. */
static void route_replace(route *r, int target, const epinfo *in, size_t n)
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

/* Parses a numeric "HOST:PORT" (an IP address or localhost: what a
 * listener binds to) into <ss>. */
static int resolve(const char *hp, struct sockaddr_storage *ss, char *err,
                   size_t errlen)
{
	char host[RSV_HOST_LEN];
	int port;
	rsv_kind k = rsv_parse(hp, host, sizeof host, &port, ss, err, errlen);
	if (k == RSV_NUMERIC)
		return 0;
	if (k == RSV_NAME)
		snprintf(err, errlen, "invalid address '%s': host is not a numeric address", hp);
	return -1;
}

static void hub_publish(struct proxy *hub);

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

/* Picks the target of the next request by smooth weighted round-robin over
 * (100-w, w) (nginx's algorithm: over any <total> consecutive picks each
 * target gets exactly its weight). A target without endpoints weighs 0; if
 * both weigh 0, any target with endpoints. Returns -1 when there is none.
 * With workers, each worker's replica keeps its own state: the split is
 * exact per worker, so over all workers it is exact to within one request
 * per worker (N requests for N workers) at any moment. */
static int route_pick(route *r)
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

/* The next endpoint of <target> round-robin, skipping ejected ones and
 * <avoid> while another is available; when every endpoint is out, any of
 * them (a request never fails for lack of endpoints). NULL only when the
 * set is empty. */
static endpoint *ep_pick(route *r, int target, uint64_t now, endpoint *avoid)
{
	epset *s = &r->set[target];
	if (s->n == 0)
		return NULL;
	for (size_t i = 0; i < s->n; i++) {
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
static void ep_failed(route *r, int target, endpoint *ep, uint64_t now,
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
static void ep_succeeded(route *r, int target, endpoint *ep)
{
	if (!ep)
		return;
	outlier *ol = ep->ol;
	if (LD(ol->fails))
		ST(ol->fails, 0);
	if (__atomic_load_n(&ol->ejected, __ATOMIC_ACQUIRE) && ol_flip(ol, 1))
		route_notify(r, target, ep, 0, "answered while ejected");
}

/* ---- proxy bookkeeping -------------------------------------------------- */

static void io_unmap(iobuf *io) { munmap(io, sizeof *io); }

static void proxy_maybe_free(proxy *p)
{
	if (!p->closing || p->nobj > 0)
		return;
	route_unref(p->r);
	while (p->free_io) {
		iobuf *io = p->free_io;
		p->free_io = io->next;
		io_unmap(io);
	}
	free(p);
}

static void listener_closed(uv_handle_t *h)
{
	proxy *p = h->data;
	p->nobj--;
	proxy_maybe_free(p);
}

static void stop_listening(proxy *p)
{
	if (!p->listening)
		return;
	p->listening = false;
	uv_close((uv_handle_t *)&p->listener, listener_closed);
	uv_close((uv_handle_t *)&p->trim, listener_closed);
}

/* Gives <c> a request block (it has none). */
static void proxy_io_take(cconn *c)
{
	proxy *p = c->p;
	iobuf *io = p->free_io;
	if (io) {
		p->free_io = io->next;
		p->n_free_io--;
		if (p->n_free_io < p->free_low)
			p->free_low = p->n_free_io;
	} else {
		io = mmap(NULL, sizeof *io, PROT_READ | PROT_WRITE,
		          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		if (io == MAP_FAILED) {
			/* as xmalloc: the daemon does not run degraded */
			fprintf(stderr, "canaryd: out of memory (request buffers)\n");
			abort();
		}
	}
	c->io = io;
}

/* Returns <c>'s request block (if any) to the free list. */
static void proxy_io_give(cconn *c)
{
	iobuf *io = c->io;
	if (!io)
		return;
	c->io = NULL;
	proxy *p = c->p;
	if (p->closing) {
		io_unmap(io);
		return;
	}
	io->next = p->free_io;
	p->free_io = io;
	p->n_free_io++;
}

/* Every IO_TRIM_MS, the blocks that stayed free the whole period (the
 * fewest free seen) are unmapped: a burst's blocks go back to the system
 * within two periods, while a steady load keeps its blocks, so that it
 * does not pay mmap, munmap and page faults per request. */
static void trim_cb(uv_timer_t *t)
{
	proxy *p = t->data;
	size_t n = p->free_low;
	while (n-- > 0 && p->free_io) {
		iobuf *io = p->free_io;
		p->free_io = io->next;
		p->n_free_io--;
		io_unmap(io);
	}
	p->free_low = p->n_free_io;
}

/* Connection timers are re-armed lazily: setting a deadline only records
 * it, unless the libuv timer is not armed or would fire later than it;
 * when the timer fires before the deadline it re-arms itself for the rest.
 * Stopping clears the deadline and leaves the timer to fire once for
 * nothing. A request then costs no timer-heap operation in the usual case
 * (each request moved every deadline, before, with a start or a stop). */
static void lt_set(uv_timer_t *t, uv_timer_cb fire, uint64_t *due,
                   uint64_t *armed, uint64_t ms)
{
	if (ms == 0) {
		*due = 0;
		return;
	}
	*due = uv_now(t->loop) + ms;
	if (*armed && *armed <= *due)
		return;
	uv_timer_start(t, fire, ms, 0);
	*armed = *due;
}

/* In a timer's callback: whether its deadline has come (else it re-arms
 * the timer for the rest, if there is a deadline). */
static bool lt_due(uv_timer_t *t, uv_timer_cb fire, uint64_t *due,
                   uint64_t *armed)
{
	*armed = 0;
	if (*due == 0)
		return false;
	uint64_t now = uv_now(t->loop);
	if (now < *due) {
		uv_timer_start(t, fire, *due - now, 0);
		*armed = *due;
		return false;
	}
	*due = 0;
	return true;
}

static void up_timeout(uv_timer_t *t);
static void c_timer_cb(uv_timer_t *t);

static void ut_fire(uv_timer_t *t)
{
	cconn *c = t->data;
	if (lt_due(t, ut_fire, &c->u_due, &c->u_armed))
		up_timeout(t);
}

/* The client timer: head or idle, or the end of a lingering close. */
static void ct_fire(uv_timer_t *t)
{
	cconn *c = t->data;
	if (!lt_due(t, ct_fire, &c->c_due, &c->c_armed))
		return;
	if (c->lingering)
		h1_close(c);
	else
		c_timer_cb(t);
}

/* Sets the upstream (connect/response) deadline <ms> from now; 0: none. */
static void h1_up_deadline(cconn *c, uint64_t ms)
{
	lt_set(&c->utimer, ut_fire, &c->u_due, &c->u_armed, ms);
}

/* Sets the client (head/idle/linger) deadline <ms> from now; 0: none. */
static void ct_set(cconn *c, uint64_t ms)
{
	lt_set(&c->ctimer, ct_fire, &c->c_due, &c->c_armed, ms);
}

/* ---- upstream connections ---------------------------------------------- */

static void up_closed(uv_handle_t *h)
{
	upconn *up = h->data;
	proxy *p = up->p;
	if (up->prev)
		up->prev->next = up->next;
	else
		p->ups = up->next;
	if (up->next)
		up->next->prev = up->prev;
	ep_unref(up->ep);
	free(up);
	p->nobj--;
	proxy_maybe_free(p);
}

static void pool_remove(upconn *up)
{
	endpoint *ep = up->ep;
	for (size_t i = 0; i < ep->n_idle; i++) {
		if (ep->idle[i] == up) {
			memmove(&ep->idle[i], &ep->idle[i + 1],
			        (ep->n_idle - i - 1) * sizeof ep->idle[0]);
			ep->n_idle--;
			break;
		}
	}
	up->pooled = false;
}

/* Detaches <up> from its request and closes it. */
static void up_close(upconn *up)
{
	if (up->closing)
		return;
	up->closing = true;
	if (up->pooled)
		pool_remove(up);
	if (up->c) {
		up->c->up = NULL;
		up->c->uw_body = 0;
		up->c = NULL;
	}
	uv_close((uv_handle_t *)&up->tcp, up_closed);
}

static void up_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	upconn *up = h->data;
	cconn *c = up->c;
	if (!c) {
		*b = uv_buf_init(up->idlebuf, sizeof up->idlebuf);
		return;
	}
	*b = uv_buf_init(c->io->rbuf + c->rlen, (unsigned)(RBUF - c->rlen));
}

static void up_timeout(uv_timer_t *t);

static void up_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	upconn *up = s->data;
	cconn *c = up->c;
	if (nread == 0 || nread == UV_ENOBUFS)
		return;
	if (!c) {
		/* a pooled connection that talks or closes is of no use */
		up_close(up);
		return;
	}
	if (nread > 0) {
		c->rlen += (size_t)nread;
		c->resp_started = true;
		if (c->state == C_REQ && c->rs != RS_DONE)
			h1_up_deadline(c, c->p->t.response_ms);
	} else {
		c->up_eof = true;
		c->up_err = nread != UV_EOF;
		if (up->reading) {
			uv_read_stop(s);
			up->reading = false;
		}
	}
	h1_advance(c);
}

static void up_start_reading(upconn *up)
{
	if (up->reading || up->closing || !up->connected)
		return;
	if (uv_read_start((uv_stream_t *)&up->tcp, up_alloc, up_read) == 0)
		up->reading = true;
}

/* Puts <up> into its endpoint's pool, or closes it when the pool is full,
 * the endpoint left the route or the proxy is going away. */
static void pool_put(upconn *up)
{
	endpoint *ep = up->ep;
	if (up->c) {
		up->c->up = NULL;
		up->c = NULL;
	}
	if (ep->removed || up->p->closing || up->p->draining ||
	    ep->n_idle == POOL_MAX) {
		up_close(up);
		return;
	}
	ep->idle[ep->n_idle++] = up;
	up->pooled = true;
	up_start_reading(up);
}

static upconn *pool_take(endpoint *ep, proxy *p)
{
	for (size_t i = ep->n_idle; i-- > 0;) {
		upconn *up = ep->idle[i];
		if (up->p == p) {
			pool_remove(up);
			return up;
		}
	}
	return NULL;
}

/* ---- client side helpers ------------------------------------------------ */

/* A bounded appender for rewritten heads. */
typedef struct hbuf {
	char *p;
	size_t n, cap;
	bool over;
} hbuf;

static void out_put(hbuf *o, const char *s, size_t n)
{
	if (o->over || n > o->cap - o->n) {
		o->over = true;
		return;
	}
	memcpy(o->p + o->n, s, n);
	o->n += n;
}

/* Inlined: the length of a literal is then a constant, no strlen. */
static inline __attribute__((always_inline)) void out_str(hbuf *o,
                                                          const char *s)
{
	out_put(o, s, strlen(s));
}

/* Whether <h> is named <name>. */
static inline __attribute__((always_inline)) bool name_is(const http_header *h,
                                                          const char *name)
{
	return http_ieq(h->name, h->name_len, name);
}

/* Appends "Content-Length: <n>\r\n". */
static void out_content_length(hbuf *o, uint64_t n)
{
	char num[24];
	int k = snprintf(num, sizeof num, "%" PRIu64, n);
	out_str(o, "Content-Length: ");
	out_put(o, num, (size_t)k);
	out_str(o, "\r\n");
}

static void c_write(cconn *c, uv_buf_t *b, unsigned n, size_t body);

/* Appends the absolute-form target of <q> in origin-form: RFC 9112 3.2.2
 * has the authority replace the Host field (the caller writes it), and
 * the next hop then sees one authority only, the one we took, where with
 * both it could pick the other. An empty path is "/" (3.2.1), or "*" in
 * an OPTIONS (3.2.4). */
static void out_origin_form(hbuf *o, const http_request *q)
{
	if (q->path_len > 0 && q->path[0] == '/') {
		out_put(o, q->path, q->path_len);
		return;
	}
	if (q->path_len == 0 && q->method_len == 7 &&
	    memcmp(q->method, "OPTIONS", 7) == 0) {
		out_str(o, "*");
		return;
	}
	out_str(o, "/");
	out_put(o, q->path, q->path_len);
}

/* Appends the protocols the Upgrade fields of <q> offer, but HTTP/2 (see
 * http_parse_request), as one list: nothing that would open an h2c
 * tunnel past us reaches the upstream. */
static void out_upgrade(hbuf *o, const http_request *q)
{
	bool first = true;
	for (size_t i = 0; i < q->n_headers; i++) {
		const http_header *h = &q->headers[i];
		if (!name_is(h, "upgrade"))
			continue;
		const char *pos = h->value, *e;
		size_t elen;
		while (http_list_next(&pos, h->value + h->value_len, &e, &elen)) {
			if (http_upgrade_is_h2(e, elen))
				continue;
			if (!first)
				out_str(o, ", ");
			out_put(o, e, elen);
			first = false;
		}
	}
}

/* Builds the upstream head of the parsed request. Returns false when it
 * does not fit. */
static bool build_request_head(cconn *c)
{
	const http_request *q = &c->io->req;
	hbuf o = { c->io->reqhead, 0, sizeof c->io->reqhead, false };
	bool absolute = q->form == HTTP_FORM_ABSOLUTE;
	out_put(&o, q->method, q->method_len);
	out_str(&o, " ");
	if (absolute)
		out_origin_form(&o, q);
	else
		out_put(&o, q->target, q->target_len);
	out_str(&o, q->minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
	if (absolute) {
		out_str(&o, "Host: ");
		out_put(&o, q->authority, q->authority_len);
		out_str(&o, "\r\n");
	}
	bool xff = false, xfp = false;
	for (size_t i = 0; i < q->n_headers; i++) {
		const http_header *h = &q->headers[i];
		if (http_is_hop_by_hop(h, q->headers, q->conn_names ? q->n_headers : 0))
			continue;
		/* a repeated Content-Length goes as one field: the next hop
		 * may refuse a list or take another element */
		if (q->cl_rewrite && name_is(h, "content-length"))
			continue;
		if (absolute && name_is(h, "host"))
			continue;   /* the target's authority went instead */
		if (name_is(h, "x-forwarded-for")) {
			xff = true;
			continue;
		}
		if (name_is(h, "x-forwarded-proto"))
			xfp = true;   /* set by a TLS terminator in front: keep it */
		out_put(&o, h->name, h->name_len);
		out_str(&o, ": ");
		out_put(&o, h->value, h->value_len);
		out_str(&o, "\r\n");
	}
	out_str(&o, "X-Forwarded-For: ");
	if (xff) {
		for (size_t i = 0; i < q->n_headers; i++) {
			const http_header *h = &q->headers[i];
			if (!name_is(h, "x-forwarded-for") || h->value_len == 0)
				continue;
			out_put(&o, h->value, h->value_len);
			out_str(&o, ", ");
		}
	}
	out_put(&o, c->ip, c->ip_len);
	out_str(&o, "\r\n");
	if (q->cl_rewrite)
		out_content_length(&o, q->content_length);
	if (!xfp)
		out_str(&o, "X-Forwarded-Proto: http\r\n");
	if (q->upgrade) {
		out_str(&o, "Connection: Upgrade\r\nUpgrade: ");
		out_upgrade(&o, q);
		out_str(&o, "\r\n");
	} else if (q->minor == 0) {
		/* a 1.0 request goes upstream as 1.0 so that the answer is one
		 * a 1.0 client can read (no chunked body) */
		out_str(&o, "Connection: keep-alive\r\n");
	}
	out_str(&o, "\r\n");
	c->reqhead_len = o.n;
	return !o.over;
}

/* Builds the client head of the parsed response; <conn> is the Connection
 * field to add (or NULL). */
static bool build_response_head(cconn *c, const char *conn, bool keep_upgrade)
{
	const http_response *s = &c->io->resp;
	hbuf o = { c->io->resphead, 0, sizeof c->io->resphead, false };
	char line[13] = "HTTP/1.1 000 ";   /* status is 100..999 (parsed) */
	line[9] = (char)('0' + s->status / 100 % 10);
	line[10] = (char)('0' + s->status / 10 % 10);
	line[11] = (char)('0' + s->status % 10);
	out_put(&o, line, sizeof line);
	if (s->reason_len)
		out_put(&o, s->reason, s->reason_len);
	else
		out_str(&o, http_reason(s->status));
	out_str(&o, "\r\n");
	for (size_t i = 0; i < s->n_headers; i++) {
		const http_header *h = &s->headers[i];
		bool up = keep_upgrade && name_is(h, "upgrade");
		if (!up && http_is_hop_by_hop(h, s->headers, s->conn_names ? s->n_headers : 0))
			continue;
		/* RFC 9112 6.3: a Content-Length that Transfer-Encoding
		 * overrides is removed before forwarding (with both, a next
		 * hop that goes by the length would read the body's tail as
		 * another response); a repeated one goes as one field; a
		 * 1xx or 204 has neither (the flags are rarely set: the
		 * names are compared only then) */
		if ((s->cl_drop || s->te_drop) &&
		    ((s->cl_drop && name_is(h, "content-length")) ||
		     (s->te_drop && name_is(h, "transfer-encoding"))))
			continue;
		out_put(&o, h->name, h->name_len);
		out_str(&o, ": ");
		out_put(&o, h->value, h->value_len);
		out_str(&o, "\r\n");
	}
	if (s->cl_emit)
		out_content_length(&o, s->content_length);
	if (conn) {
		out_str(&o, "Connection: ");
		out_str(&o, conn);
		out_str(&o, "\r\n");
	}
	out_str(&o, "\r\n");
	c->resphead_len = o.n;
	return !o.over;
}

/* Sends a response made by the proxy itself and marks the response done.
 * Keeps the connection when the request was read whole and the client
 * wants it. */
static void send_error(cconn *c, int status, bool must_close)
{
	const char *reason = http_reason(status);
	bool keep = !must_close && c->state == C_REQ && c->body_done &&
	            c->io->req.keep_alive && !c->p->draining;
	char body[64];
	int blen = snprintf(body, sizeof body, "%d %s\n", status, reason);
	int n = snprintf(c->io->resphead, sizeof c->io->resphead,
	                 "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\n"
	                 "Content-Length: %d\r\n%s\r\n%s", status, reason, blen,
	                 keep ? (c->io->req.minor == 0 ? "Connection: keep-alive\r\n" : "")
	                      : "Connection: close\r\n",
	                 (c->state == C_REQ && c->io->req.is_head) ? "" : body);
	if (!keep)
		c->close_after = true;
	c->resphead_len = (size_t)n;
	uv_buf_t b = uv_buf_init(c->io->resphead, (unsigned)n);
	c_write(c, &b, 1, 0);
}

static void record(cconn *c)
{
	if (c->recorded || !c->r)
		return;
	c->recorded = true;
	uint64_t us = (uv_hrtime() - c->t0) / 1000;
	stats_record(c->r->st, c->target, c->status, us,
	             uv_now(c->p->loop) / 1000);
}

/* Ends the request with a response of the proxy's own (502, 504, ...). */
static void h1_fail(cconn *c, int status)
{
	if (c->up)
		up_close(c->up);
	c->u_due = 0;
	c->status = status;
	c->rs = RS_DONE;
	c->resp_head_sent = true;
	record(c);
	if (c->cw_pending) {
		/* an interim (1xx) head is still being written: the error
		 * follows it */
		c->close_after = true;
		h1_close(c);
		return;
	}
	send_error(c, status, false);
}

/* ---- upstream connect and failures -------------------------------------- */

static void up_connected(uv_connect_t *req, int status);
static void connect_failed(cconn *c, const char *why);

/* Connects a fresh upstream connection for <c> to c->ep. */
static void connect_new(cconn *c)
{
	proxy *p = c->p;
	upconn *up = xcalloc(1, sizeof *up);
	up->p = p;
	up->ep = c->ep;
	up->ep->refs++;
	uv_tcp_init(p->loop, &up->tcp);
	up->tcp.data = up;
	up->creq.data = up;
	up->wreq.data = up;
	up->next = p->ups;
	if (p->ups)
		p->ups->prev = up;
	p->ups = up;
	p->nobj++;
	up->c = c;
	c->up = up;
	c->reused = false;
	int rc = uv_tcp_connect(&up->creq, &up->tcp,
	                        (const struct sockaddr *)&c->ep->addr, up_connected);
	if (rc < 0) {
		up_close(up);
		connect_failed(c, uv_strerror(rc));
		return;
	}
	h1_up_deadline(c, p->t.connect_ms);
}

/* The connection to c->ep could not be established (<why>): counted
 * against the endpoint, and the request, which nothing was sent of, goes
 * once to another endpoint of the same target. c->up is closed. */
static void connect_failed(cconn *c, const char *why)
{
	log_msg(LOG_WARN, c->r->name, "cannot connect to upstream '%s': %s",
	        c->ep->name, why);
	c->u_due = 0;
	uint64_t now = uv_now(c->p->loop);
	ep_failed(c->r, c->target, c->ep, now, why);
	endpoint *next = NULL;
	if (!c->tried_next) {
		c->tried_next = true;
		next = ep_pick(c->r, c->target, now, c->ep);
	}
	if (next && next != c->ep) {
		next->refs++;
		ep_unref(c->ep);
		c->ep = next;
		c->head_sent = false;
		connect_new(c);
		return;
	}
	h1_fail(c, 502);
}

/* Takes a pooled connection to c->ep or connects a new one. */
static void up_acquire(cconn *c)
{
	upconn *up = pool_take(c->ep, c->p);
	if (!up) {
		connect_new(c);
		return;
	}
	up->c = c;
	c->up = up;
	c->reused = true;
	up_start_reading(up);
}

static void up_connected(uv_connect_t *req, int status)
{
	upconn *up = req->data;
	cconn *c = up->c;
	if (up->closing || !c)
		return;
	if (status < 0) {
		up_close(up);
		connect_failed(c, uv_strerror(status));
		return;
	}
	up->connected = true;
	uv_tcp_nodelay(&up->tcp, 1);
	c->u_due = 0;
	up_start_reading(up);
	h1_advance(c);
}

/* Whether the request's method is idempotent (RFC 9110 9.2.2): sending
 * it twice has the effect of sending it once. Methods are case-sensitive. */
static bool req_idempotent(const http_request *q)
{
	static const char *const idem[] = {
		"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE",
	};
	for (size_t i = 0; i < sizeof idem / sizeof idem[0]; i++)
		if (q->method_len == strlen(idem[i]) &&
		    memcmp(q->method, idem[i], q->method_len) == 0)
			return true;
	return false;
}

/* The upstream connection failed or closed before the response was
 * complete. */
static void up_failed(cconn *c)
{
	if (c->rs == RS_DONE) {
		/* answered already (say, early, before the whole body) */
		if (c->up)
			up_close(c->up);
		c->close_after = true;
		return;
	}
	if (c->resp_head_sent || c->rs != RS_HEAD) {
		h1_cut(c, "failed mid-response", 502);
		return;
	}
	bool no_reply = !c->resp_started;
	if (c->up)
		up_close(c->up);
	c->up_eof = c->up_err = false;
	c->roff = c->rlen = 0;
	/* the keep-alive race: the upstream closed a pooled connection as
	 * the request went out. It is sent again, on a new connection, only
	 * when that is safe: when no byte of it was written (the upstream
	 * provably never read it), or when its method is idempotent and no
	 * body byte was consumed (they could not be sent again). Otherwise
	 * the upstream may have acted on it, and a second copy could, say,
	 * place an order twice: 502, as nginx does for a non-idempotent
	 * request (proxy_next_upstream). */
	bool unread = !c->head_sent;
	if (c->reused && no_reply && !c->retried &&
	    (unread || (c->body_sent == 0 && req_idempotent(&c->io->req)))) {
		c->retried = true;
		c->head_sent = false;
		connect_new(c);
		return;
	}
	log_msg(LOG_WARN, c->r->name, "upstream '%s' closed before responding",
	        c->ep->name);
	ep_failed(c->r, c->target, c->ep, uv_now(c->p->loop),
	          "closed before responding");
	h1_fail(c, 502);
}

static void up_timeout(uv_timer_t *t)
{
	cconn *c = t->data;
	if (c->closing || c->state != C_REQ)
		return;
	if (c->up && !c->up->connected) {
		up_close(c->up);
		connect_failed(c, "connect timed out");
	} else if (!c->resp_head_sent) {
		log_msg(LOG_WARN, c->r->name, "upstream '%s' timed out",
		        c->ep ? c->ep->name : "?");
		ep_failed(c->r, c->target, c->ep, uv_now(c->p->loop),
		          "response timed out");
		h1_fail(c, 504);
	} else if (c->cw_pending) {
		/* the client does not read what came (back-pressure stopped
		 * reading the upstream): its fault, not the endpoint's */
		h1_close(c);
	} else {
		h1_cut(c, "timed out mid-response", 504);
	}
}

static void up_write_cb(uv_write_t *w, int status)
{
	upconn *up = w->data;
	up->w_pending = false;
	cconn *c = up->c;
	if (!c || up->closing)
		return;
	if (status < 0) {
		if (c->state == C_TUNNEL)
			h1_close(c);
		else
			up_failed(c);
		return;
	}
	c->coff += c->uw_body;
	c->uw_body = 0;
	if (c->state == C_REQ && c->rs != RS_DONE)
		h1_up_deadline(c, c->p->t.response_ms);
	h1_advance(c);
}

/* ---- the client connection ---------------------------------------------- */

static void c_closed(uv_handle_t *h)
{
	cconn *c = h->data;
	if (--c->open > 0)
		return;
	proxy *p = c->p;
	for (cconn **y = &p->yielded; c->yielded && *y; y = &(*y)->yield_next) {
		if (*y == c) {
			*y = c->yield_next;
			break;
		}
	}
	if (c->prev)
		c->prev->next = c->next;
	else
		p->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	proxy_io_give(c);
	free(c);
	p->nobj--;
	h1_resume_accepting(p);
	proxy_maybe_free(p);
}

/* Releases what the current request holds. */
static void req_release(cconn *c)
{
	if (c->state != C_IDLE)
		CNT_ADD(c->p->inflight, -1);
	c->state = C_IDLE;
	ep_unref(c->ep);
	c->ep = NULL;
	route_unref(c->r);
	c->r = NULL;
}

/* Closes the client connection. When a response is in progress (its head
 * went out, its end did not), the close is a reset (RST): a clean close
 * would end a close-delimited body as if it were complete, and a client
 * or a cache in front would keep the truncated response; a reset is an
 * error to every client. */
static void h1_close(cconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	bool cut = c->state == C_REQ && c->resp_head_sent && c->rs != RS_DONE;
	if (c->up)
		up_close(c->up);
	req_release(c);
	CNT_ADD(c->p->n_clients, -1);
	/* uv_tcp_close_reset refuses a handle being shut down (lingering:
	 * its response was complete) */
	if (!cut || uv_tcp_close_reset(&c->tcp, c_closed) < 0)
		uv_close((uv_handle_t *)&c->tcp, c_closed);
	uv_close((uv_handle_t *)&c->ctimer, c_closed);
	uv_close((uv_handle_t *)&c->utimer, c_closed);
}

static void c_write_cb(uv_write_t *w, int status)
{
	cconn *c = w->data;
	c->cw_pending = false;
	if (c->closing)
		return;
	if (status < 0) {
		h1_close(c);
		return;
	}
	c->roff += c->cw_body;
	c->cw_body = 0;
	/* a slow client is not an idle upstream */
	if (c->state == C_REQ && c->rs != RS_DONE && c->up && c->up->connected)
		h1_up_deadline(c, c->p->t.response_ms);
	h1_advance(c);
}

/* Writes what it can of b[0..n) at once and returns how many bytes are
 * left, with rest[] pointing at them; < 0 on a write error. A write that
 * completes at once costs libuv no request, callback or epoll_ctl.
 * It calls send()/sendmsg() itself rather than uv_try_write(), which
 * uses write()/writev() (libuv serves pipes and ttys too): on a socket
 * those go through the file layer first (fdget_pos, rw_verify_area, the
 * security hook, sock_write_iter), about 2 % of the proxy's CPU time
 * under load (bench/README.md). Writing past libuv is safe only while
 * its write queue for the stream is empty, as uv_try_write requires. */
static ssize_t try_write(uv_stream_t *s, const uv_buf_t *b, unsigned n,
                         uv_buf_t *rest, unsigned *m)
{
	ssize_t rc = 0;
	uv_os_fd_t fd;
	if (uv_stream_get_write_queue_size(s) == 0 &&
	    uv_fileno((uv_handle_t *)s, &fd) == 0) {
		for (int tries = 0; tries < 2; tries++) {
			if (n == 1) {
				rc = send(fd, b[0].base, b[0].len,
				          MSG_NOSIGNAL | MSG_DONTWAIT);
			} else {
				struct iovec iov[4];
				unsigned k = n < 4 ? n : 4;
				for (unsigned i = 0; i < k; i++)
					iov[i] = (struct iovec){ b[i].base, b[i].len };
				struct msghdr mh = { .msg_iov = iov, .msg_iovlen = k };
				rc = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
			}
			if (rc >= 0 || errno != EINTR)
				break;
		}
		if (rc < 0) {
			if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
				return -errno;   /* libuv's codes are -errno here */
			rc = 0;
		}
	}
	size_t skip = (size_t)rc, left = 0;
	*m = 0;
	for (unsigned i = 0; i < n; i++) {
		if (skip >= b[i].len) {
			skip -= b[i].len;
			continue;
		}
		rest[(*m)++] = uv_buf_init(b[i].base + skip,
		                           (unsigned)(b[i].len - skip));
		left += b[i].len - skip;
		skip = 0;
	}
	return (ssize_t)left;
}

/* Writes to the client; <body> bytes of them are rbuf[roff..], consumed
 * when written. Outside h1_advance, a write done at once advances the
 * connection, as its callback would. */
static void c_write(cconn *c, uv_buf_t *b, unsigned n, size_t body)
{
	uv_buf_t rest[2];
	unsigned m;
	ssize_t left = try_write((uv_stream_t *)&c->tcp, b, n, rest, &m);
	if (left < 0) {
		h1_close(c);
		return;
	}
	if (left == 0) {
		c->roff += body;
		if (c->state == C_REQ && c->rs != RS_DONE && c->up &&
		    c->up->connected)
			h1_up_deadline(c, c->p->t.response_ms);
		if (!c->advancing)
			h1_advance(c);
		return;
	}
	c->cw.data = c;
	int rc = uv_write(&c->cw, (uv_stream_t *)&c->tcp, rest, m, c_write_cb);
	if (rc < 0) {
		h1_close(c);
		return;
	}
	c->cw_pending = true;
	c->cw_body = body;
}

static void c_timer_cb(uv_timer_t *t)
{
	cconn *c = t->data;
	if (c->closing || c->state != C_IDLE || c->cw_pending || c->lingering)
		return;
	if (c->close_after) {
		h1_close(c);   /* answered already: no unsolicited 408 */
		return;
	}
	if (c->tm == TM_HEAD) {
		send_error(c, 408, true);
		return;
	}
	h1_close(c);
}

/* Starts a request whose head of <head_len> bytes is at cbuf[coff]. */
static void start_request(cconn *c, size_t head_len)
{
	proxy *p = c->p;
	c->state = C_REQ;
	CNT_ADD(p->inflight, 1);
	c->t0 = uv_hrtime();
	if (p->w)
		worker_poll(p->w);   /* an endpoint change for this request */
	c->r = p->r;
	route_ref(c->r);
	c->status = 0;
	c->recorded = false;
	c->head_sent = false;
	c->body_sent = 0;
	c->reused = c->retried = c->tried_next = false;
	c->rs = RS_HEAD;
	c->resp_started = c->resp_head_sent = false;
	c->up_eof = c->up_err = c->up_dirty = false;
	c->roff = c->rlen = 0;
	c->body_done = c->io->req.body == HTTP_BODY_NONE;
	c->body_left = c->io->req.content_length;
	http_chunked_init(&c->body_ck);
	int t = route_pick(c->r);
	c->target = t < 0 ? TARGET_STABLE : t;
	c->ep = t < 0 ? NULL : ep_pick(c->r, t, uv_now(p->loop), NULL);
	if (c->ep)
		c->ep->refs++;
	bool fits = build_request_head(c);
	c->coff += head_len;
	if (!fits) {
		c->recorded = true;   /* the client's fault, not the target's */
		c->status = 431;
		c->rs = RS_DONE;
		c->resp_head_sent = true;
		send_error(c, 431, true);
		return;
	}
	if (!c->ep) {
		log_msg(LOG_WARN, c->r->name, "no upstream endpoint to route to");
		h1_fail(c, 502);
		return;
	}
	up_acquire(c);
}

/* Ends the current request after its response was written whole. */
static void finish_request(cconn *c)
{
	record(c);
	c->u_due = 0;
	upconn *up = c->up;
	if (up) {
		bool reuse = c->io->resp.keep_alive && c->body_done && !up->w_pending &&
		             !c->up_eof && !c->up_dirty && c->roff == c->rlen &&
		             c->rbody != HTTP_BODY_UNTIL_CLOSE;
		if (reuse)
			pool_put(up);
		else
			up_close(up);
	}
	if (!c->body_done)
		c->close_after = true;   /* the rest of the body is unread */
	c->roff = c->rlen = 0;
	req_release(c);
}

/* Body bytes of the request available at cbuf[coff..]; advances the
 * framing state past them. Returns -1 on malformed chunked framing. */
static ssize_t req_body_take(cconn *c)
{
	size_t avail = c->clen - c->coff;
	if (c->body_done || avail == 0)
		return 0;
	if (c->io->req.body == HTTP_BODY_LENGTH) {
		size_t k = avail;
		if ((uint64_t)k > c->body_left)
			k = (size_t)c->body_left;
		c->body_left -= k;
		if (c->body_left == 0)
			c->body_done = true;
		return (ssize_t)k;
	}
	bool done = false;
	ssize_t k = http_chunked_scan(&c->body_ck, c->io->cbuf + c->coff, avail, &done);
	if (k >= 0 && done)
		c->body_done = true;
	return k;
}

/* Sends what can be sent to the upstream: the head, then body bytes (in a
 * tunnel, everything). Returns true on progress. */
static bool req_pump(cconn *c)
{
	upconn *up = c->up;
	if (!up || !up->connected || up->w_pending || up->closing)
		return false;
	uv_buf_t b[2];
	unsigned n = 0;
	if (c->state == C_REQ && !c->head_sent)
		b[n++] = uv_buf_init(c->io->reqhead, (unsigned)c->reqhead_len);
	size_t k = 0;
	/* the body framing state before this write: a write that fails at
	 * once consumed nothing, and a retry must find the body as it was */
	uint64_t body_left = c->body_left;
	bool body_done = c->body_done;
	http_chunked body_ck = c->body_ck;
	if (c->state == C_TUNNEL) {
		k = c->clen - c->coff;
	} else if (c->head_sent || n) {
		ssize_t r = req_body_take(c);
		if (r < 0) {
			if (!c->resp_head_sent && !c->cw_pending && c->rs == RS_HEAD) {
				c->close_after = true;
				c->recorded = true;
				c->status = 400;
				c->rs = RS_DONE;
				c->resp_head_sent = true;
				up_close(up);
				send_error(c, 400, true);
			} else {
				h1_close(c);
			}
			return false;
		}
		k = (size_t)r;
	}
	if (k)
		b[n++] = uv_buf_init(c->io->cbuf + c->coff, (unsigned)k);
	if (n == 0)
		return false;
	uv_buf_t rest[2];
	unsigned m = 0;
	ssize_t left = try_write((uv_stream_t *)&up->tcp, b, n, rest, &m);
	if (left == 0) {
		c->coff += k;
		c->head_sent = true;
		c->body_sent += k;
		if (c->state == C_REQ && c->rs != RS_DONE)
			h1_up_deadline(c, c->p->t.response_ms);
		return true;
	}
	int rc = left < 0 ? (int)left
	       : uv_write(&up->wreq, (uv_stream_t *)&up->tcp, rest, m, up_write_cb);
	if (rc < 0) {
		if (c->state == C_TUNNEL) {
			h1_close(c);
		} else if (left >= 0 && (size_t)left < b[0].len + (n > 1 ? b[1].len : 0)) {
			/* part of it went out: the upstream may have read it */
			c->head_sent = true;
			c->body_sent += k;
			up_failed(c);
		} else {
			c->body_left = body_left;
			c->body_done = body_done;
			c->body_ck = body_ck;
			up_failed(c);
		}
		return true;
	}
	up->w_pending = true;
	c->uw_body = k;
	c->head_sent = true;
	c->body_sent += k;
	if (c->state == C_REQ && c->rs != RS_DONE)
		h1_up_deadline(c, c->p->t.response_ms);
	return true;
}

/* Response body bytes at rbuf[roff..]; marks the response done at its
 * end. Returns -1 on malformed chunked framing. */
static ssize_t resp_body_take(cconn *c)
{
	size_t avail = c->rlen - c->roff;
	size_t k = 0;
	switch (c->rbody) {
	case HTTP_BODY_NONE:
		c->rs = RS_DONE;
		break;
	case HTTP_BODY_LENGTH:
		k = avail;
		if ((uint64_t)k > c->rleft)
			k = (size_t)c->rleft;
		c->rleft -= k;
		if (c->rleft == 0)
			c->rs = RS_DONE;
		break;
	case HTTP_BODY_CHUNKED: {
		bool done = false;
		ssize_t r = http_chunked_scan(&c->rck, c->io->rbuf + c->roff, avail, &done);
		if (r < 0)
			return -1;
		k = (size_t)r;
		if (done)
			c->rs = RS_DONE;
		break;
	}
	case HTTP_BODY_UNTIL_CLOSE:
		k = avail;
		break;
	}
	if (c->rs == RS_DONE && k < avail)
		c->up_dirty = true;
	return (ssize_t)k;
}

/* The upstream sent <what>, which cannot be forwarded: counted against
 * the endpoint, and the client gets a 502 (before any byte of the final
 * response went to it). */
static void bad_response(cconn *c, const char *what)
{
	log_msg(LOG_WARN, c->r->name, "upstream '%s' sent %s", c->ep->name, what);
	ep_failed(c->r, c->target, c->ep, uv_now(c->p->loop), what);
	h1_fail(c, 502);
}

/* A response whose head went to the client cannot go on (<what>): the
 * client's connection is reset (h1_close), so that a response without a
 * length of its own does not look complete. The request counts as the
 * failure it is, <status> (502, or 504 for a timeout), whatever status
 * its head said: the analysis must see a target that dies mid-response. */
static void h1_cut(cconn *c, const char *what, int status)
{
	log_msg(LOG_WARN, c->r->name, "upstream '%s' %s: response cut",
	        c->ep ? c->ep->name : "?", what);
	ep_failed(c->r, c->target, c->ep, uv_now(c->p->loop), what);
	c->status = status;
	record(c);
	h1_close(c);
}

/* Handles a complete response head at rbuf[roff..] of <len> bytes. */
static void on_response_head(cconn *c, size_t len)
{
	const http_response *s = &c->io->resp;
	c->roff += len;
	if (s->status < 200 && s->status != 101) {
		/* interim: forwarded (not to 1.0 clients), then the final one */
		if (c->io->req.minor == 0)
			return;
		if (!build_response_head(c, NULL, false)) {
			h1_fail(c, 502);
			return;
		}
		uv_buf_t b = uv_buf_init(c->io->resphead, (unsigned)c->resphead_len);
		c_write(c, &b, 1, 0);
		return;
	}
	if (s->status == 101) {
		if (!c->io->req.upgrade || !build_response_head(c, "Upgrade", true)) {
			h1_fail(c, 502);
			return;
		}
		c->status = 101;
		c->resp_head_sent = true;
		c->rs = RS_DONE;
		record(c);
		c->u_due = 0;
		c->state = C_TUNNEL;
		uv_buf_t b[2];
		b[0] = uv_buf_init(c->io->resphead, (unsigned)c->resphead_len);
		size_t k = c->rlen - c->roff;
		b[1] = uv_buf_init(c->io->rbuf + c->roff, (unsigned)k);
		c_write(c, b, k ? 2 : 1, k);
		return;
	}
	/* RFC 9112 6.1: no Transfer-Encoding in an answer to HTTP/1.0 (the
	 * proxy forwards a 1.0 request as 1.0): the client could not decode
	 * the body, nor tell where a chunked one ends */
	if (s->has_te && s->body != HTTP_BODY_NONE && c->io->req.minor == 0) {
		bad_response(c, "a Transfer-Encoding in an answer to HTTP/1.0");
		return;
	}
	c->status = s->status;
	if (s->status >= 500) {
		char why[32];
		snprintf(why, sizeof why, "HTTP %d", s->status);
		ep_failed(c->r, c->target, c->ep, uv_now(c->p->loop), why);
	} else {
		ep_succeeded(c->r, c->target, c->ep);
	}
	c->rbody = s->body;
	c->rleft = s->content_length;
	http_chunked_init(&c->rck);
	/* a client that half-closed may still have pipelined requests
	 * waiting: it keeps the connection until the buffer is empty */
	bool keep = c->io->req.keep_alive && s->body != HTTP_BODY_UNTIL_CLOSE &&
	            !c->p->draining && c->body_done;
	const char *conn = keep ? (c->io->req.minor == 0 ? "keep-alive" : NULL) : "close";
	if (!keep)
		c->close_after = true;
	if (!build_response_head(c, conn, false)) {
		h1_fail(c, 502);
		return;
	}
	c->rs = RS_BODY;
	ssize_t k = resp_body_take(c);
	if (k < 0) {
		bad_response(c, "an invalid chunked body");
		return;
	}
	c->resp_head_sent = true;
	uv_buf_t b[2];
	/* a small body goes out in the head's buffer: one plain send(), no
	 * iovec array for the kernel to import (the body's bytes count as
	 * written once the write completes, as from rbuf) */
	if (k > 0 && (size_t)k <= 512 &&
	    c->resphead_len + (size_t)k <= sizeof c->io->resphead) {
		memcpy(c->io->resphead + c->resphead_len, c->io->rbuf + c->roff,
		       (size_t)k);
		b[0] = uv_buf_init(c->io->resphead,
		                   (unsigned)(c->resphead_len + (size_t)k));
		c_write(c, b, 1, (size_t)k);
		return;
	}
	b[0] = uv_buf_init(c->io->resphead, (unsigned)c->resphead_len);
	b[1] = uv_buf_init(c->io->rbuf + c->roff, (unsigned)k);
	c_write(c, b, k ? 2 : 1, (size_t)k);
}

/* Moves the response on. Returns true on progress. */
static bool resp_pump(cconn *c)
{
	if (c->cw_pending || c->rs == RS_DONE)
		return false;
	size_t avail = c->rlen - c->roff;
	if (c->rs == RS_HEAD) {
		if (avail == 0) {
			if (c->up_eof) {
				up_failed(c);
				return true;
			}
			return false;
		}
		int rc = http_parse_response(c->io->rbuf + c->roff, avail, c->io->req.is_head,
		                             &c->io->resp);
		if (rc == HTTP_INCOMPLETE) {
			if (c->up_eof) {
				log_msg(LOG_WARN, c->r->name, "upstream '%s' sent a "
				        "truncated response head", c->ep->name);
				h1_fail(c, 502);
				return true;
			}
			return false;
		}
		if (rc < 0) {
			bad_response(c, "an invalid response head");
			return true;
		}
		on_response_head(c, (size_t)rc);
		return true;
	}
	ssize_t k = resp_body_take(c);
	if (k < 0) {
		h1_cut(c, "sent an invalid chunked body", 502);
		return false;
	}
	if (k > 0) {
		uv_buf_t b = uv_buf_init(c->io->rbuf + c->roff, (unsigned)k);
		c_write(c, &b, 1, (size_t)k);
		return true;
	}
	if (c->rs == RS_DONE)
		return true;
	if (c->up_eof) {
		/* a close ends a close-delimited body; a reset cuts it */
		if (c->rbody == HTTP_BODY_UNTIL_CLOSE && !c->up_err) {
			c->rs = RS_DONE;
			return true;
		}
		h1_cut(c, c->up_err ? "reset the connection mid-response"
		                          : "closed the connection mid-response", 502);
	}
	return false;
}

static void shutdown_cb(uv_shutdown_t *req, int status)
{
	(void)req;
	(void)status;
}

#define LINGER_MS 2000

/* Closes the connection after its last response: the write side is shut
 * down at once, and what the client still sends is read and dropped for a
 * moment, so that closing with unread input does not reset the connection
 * before the client has read the response (as nginx's lingering close). */
static void c_linger(cconn *c)
{
	if (c->c_eof || c->lingering) {
		if (c->c_eof)
			h1_close(c);
		return;
	}
	c->lingering = true;
	c->tm = TM_NONE;
	c->coff = c->clen = 0;
	proxy_io_give(c);
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, shutdown_cb) < 0) {
		h1_close(c);
		return;
	}
	ct_set(c, LINGER_MS);
}

/* Tries to parse and start the next request. Returns true on progress. */
static bool try_head(cconn *c)
{
	if (c->cw_pending || c->lingering)
		return false;
	if (c->close_after) {
		c_linger(c);
		return false;
	}
	size_t avail = c->clen - c->coff;
	if (avail == 0) {
		if (c->c_eof || c->p->draining)
			h1_close(c);
		return false;
	}
	int rc = http_parse_request(c->io->cbuf + c->coff, avail, &c->io->req);
	if (rc == HTTP_INCOMPLETE) {
		if (c->c_eof)
			h1_close(c);
		return false;
	}
	if (rc < 0) {
		/* nothing after a malformed head can be trusted to start a
		 * request: the answer says Connection: close, the input is
		 * dropped, and the next turn (at once, or once the answer is
		 * written) closes (c_linger) */
		int status = rc == HTTP_E_TOO_LARGE ? 431
		           : rc == HTTP_E_VERSION ? 505
		           : rc == HTTP_E_CODING ? 501 : 400;
		c->coff = c->clen;
		send_error(c, status, true);
		return true;
	}
	if (c->io->req.form == HTTP_FORM_AUTHORITY) {
		/* CONNECT: a reverse proxy opens no tunnels (RFC 9110 15.6.2:
		 * a method no resource here supports); what the client sends
		 * next is the tunnel's, never a request */
		c->coff = c->clen;
		send_error(c, 501, true);
		return true;
	}
	start_request(c, (size_t)rc);
	return true;
}

static void c_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	cconn *c = h->data;
	if (c->io && !c->lingering)
		*b = uv_buf_init(c->io->cbuf + c->clen, (unsigned)(CBUF - c->clen));
	else
		*b = uv_buf_init(c->p->scratch, sizeof c->p->scratch);
}

static void c_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	cconn *c = s->data;
	if (nread == 0 || nread == UV_ENOBUFS)
		return;
	if (c->lingering) {
		if (nread < 0)
			h1_close(c);
		return;
	}
	if (nread > 0) {
		if (b->base == c->p->scratch) {
			/* the first bytes after an idle time (clen is 0) */
			proxy_io_take(c);
			memcpy(c->io->cbuf, b->base, (size_t)nread);
		}
		c->clen += (size_t)nread;
	} else if (nread == UV_EOF) {
		c->c_eof = true;
		uv_read_stop(s);
		c->reading = false;
		if (c->state == C_TUNNEL || (c->state == C_REQ && !c->body_done &&
		                             c->clen == c->coff)) {
			h1_close(c);
			return;
		}
	} else {
		h1_close(c);
		return;
	}
	h1_advance(c);
}

/* Sets reading and timers from the state: reading stops when a buffer is
 * full (back-pressure) and buffers are compacted when no write uses them. */
static void c_update_io(cconn *c)
{
	if (c->closing)
		return;
	if (c->lingering) {
		if (!c->reading &&
		    uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read) == 0)
			c->reading = true;
		return;
	}
	if (c->coff > 0 && c->uw_body == 0) {
		if (c->clen > c->coff)
			memmove(c->io->cbuf, c->io->cbuf + c->coff, c->clen - c->coff);
		c->clen -= c->coff;
		c->coff = 0;
	}
	if (c->io && c->state == C_IDLE && !c->cw_pending && c->clen == 0 &&
	    !c->up)
		proxy_io_give(c);   /* idle: the connection keeps no buffers */
	bool want = !c->c_eof && c->clen < CBUF;
	if (want && !c->reading) {
		if (uv_read_start((uv_stream_t *)&c->tcp, c_alloc, c_read) == 0)
			c->reading = true;
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
	tmode tm = TM_NONE;
	if (c->state == C_IDLE && !c->cw_pending)
		tm = c->clen > c->coff ? TM_HEAD : TM_IDLE;
	if (tm != c->tm) {
		c->tm = tm;
		if (tm == TM_NONE)
			c->c_due = 0;
		else
			ct_set(c, tm == TM_HEAD
			            ? c->p->t.client_head_ms : c->p->t.client_idle_ms);
	}
	upconn *up = c->up;
	if (up && !up->closing && up->connected) {
		if (c->roff > 0 && !c->cw_pending) {
			memmove(c->io->rbuf, c->io->rbuf + c->roff, c->rlen - c->roff);
			c->rlen -= c->roff;
			c->roff = 0;
		}
		bool uwant = !c->up_eof && c->rlen < RBUF;
		if (uwant && !up->reading) {
			up_start_reading(up);
		} else if (!uwant && up->reading) {
			uv_read_stop((uv_stream_t *)&up->tcp);
			up->reading = false;
		}
	}
}

/* Runs the connection's state machine until it waits for an event. */
static void h1_advance(cconn *c)
{
	bool outer = !c->advancing;
	c->advancing = true;
	c_advance_loop(c);
	if (outer)
		c->advancing = false;
}

/* Runs the connections that yielded in c_advance_loop, once per loop turn
 * while there are any (an idle handle makes the loop poll without
 * waiting meanwhile). */
static void resume_cb(uv_idle_t *h)
{
	proxy *p = h->data;
	cconn *c = p->yielded;
	p->yielded = NULL;
	uv_idle_stop(h);
	/* none of them can be freed meanwhile: memory is freed only in
	 * close callbacks, which do not run inside this one */
	while (c) {
		cconn *next = c->yield_next;
		c->yielded = false;
		c->yield_next = NULL;
		if (!c->closing)
			h1_advance(c);
		c = next;
	}
}

/* Queues <c> to go on at the next loop turn. */
static void c_yield(cconn *c)
{
	proxy *p = c->p;
	if (c->yielded || p->closing)
		return;
	c->yielded = true;
	c->yield_next = p->yielded;
	p->yielded = c;
	uv_idle_start(&p->resume, resume_cb);
}

/* Each turn of the loop consumes input or changes the state; the bound
 * keeps one connection from holding the event loop for long (say, an
 * upstream's 16 KB of 1xx heads to forward one by one, or pipelined
 * requests answered by the proxy itself). A connection that reaches it
 * still making progress yields (c_yield) and goes on at the next loop
 * turn: it must never wait for an event that already came. */
#define ADVANCE_TURNS 64

static void c_advance_loop(cconn *c)
{
	bool progress = false;
	for (int turn = 0; turn < ADVANCE_TURNS && !c->closing; turn++) {
		progress = false;
		switch (c->state) {
		case C_IDLE:
			progress = try_head(c);
			break;
		case C_REQ:
			if (c->c_eof && !c->body_done && c->coff == c->clen &&
			    c->uw_body == 0) {
				h1_close(c);   /* the client gave up mid-body */
				break;
			}
			progress = req_pump(c);
			if (!c->closing && c->state == C_REQ)
				progress |= resp_pump(c);
			if (!c->closing && c->state == C_REQ && c->rs == RS_DONE &&
			    !c->cw_pending) {
				finish_request(c);
				progress = true;
			}
			break;
		case C_TUNNEL:
			progress = req_pump(c);
			if (!c->closing && !c->cw_pending && c->rlen > c->roff) {
				size_t k = c->rlen - c->roff;
				uv_buf_t b = uv_buf_init(c->io->rbuf + c->roff, (unsigned)k);
				c_write(c, &b, 1, k);
				progress = true;
			}
			if (!c->closing && c->up_eof && !c->cw_pending &&
			    c->rlen == c->roff) {
				h1_close(c);
			} else if (!c->closing && !c->up) {
				h1_close(c);
			}
			break;
		}
		if (!progress)
			break;
	}
	if (progress && !c->closing)
		c_yield(c);
	c_update_io(c);
}

/* Accepts the connection libuv holds for the listener. */
static void accept_one(proxy *p)
{
	uv_stream_t *server = (uv_stream_t *)&p->listener;
	cconn *c = xcalloc(1, sizeof *c);
	c->p = p;
	uv_tcp_init(p->loop, &c->tcp);
	uv_timer_init(p->loop, &c->ctimer);
	uv_timer_init(p->loop, &c->utimer);
	c->tcp.data = c->ctimer.data = c->utimer.data = c;
	c->open = 3;
	c->next = p->clients;
	if (p->clients)
		p->clients->prev = c;
	p->clients = c;
	p->nobj++;
	CNT_ADD(p->n_clients, 1);
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		h1_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	struct sockaddr_storage ss;
	int len = sizeof ss;
	strcpy(c->ip, "unknown");
	if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) == 0) {
		if (ss.ss_family == AF_INET)
			uv_ip4_name((struct sockaddr_in *)&ss, c->ip, sizeof c->ip);
		else if (ss.ss_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)&ss, c->ip, sizeof c->ip);
	}
	c->ip_len = strlen(c->ip);
	h1_advance(c);
}

static bool at_limit(const proxy *p)
{
	return p->max_conns > 0 && p->n_clients >= (size_t)p->max_conns;
}

/* At the connection limit the connection is left unaccepted: libuv then
 * stops polling the listener (the kernel's backlog keeps the rest waiting)
 * until uv_accept is called, which h1_resume_accepting does once a client
 * connection has closed. */
static void h1_on_connection(uv_stream_t *server, int status)
{
	proxy *p = server->data;
	if (status < 0 || p->closing || !p->listening)
		return;
	if (at_limit(p)) {
		uint64_t now = uv_now(p->loop);
		if (!p->accept_paused && now - p->limit_logged_ms >= 10000) {
			p->limit_logged_ms = now;   /* at most one line per 10 s */
			log_msg(LOG_WARN, p->r->name, "%d client connections open: "
			        "not accepting more until one closes", p->max_conns);
		}
		p->accept_paused = true;
		return;
	}
	accept_one(p);
}

static void h1_resume_accepting(proxy *p)
{
	if (p->accept_paused && p->listening && !p->closing && !at_limit(p)) {
		p->accept_paused = false;
		accept_one(p);
	}
}

/* ---- the proxy ---------------------------------------------------------- */

/* A listening socket of its own for a worker: every worker binds the same
 * address with SO_REUSEPORT, and the kernel spreads new connections over
 * them, so that workers share no accept queue and no lock. Returns the
 * descriptor, or a negative libuv error code. */
static int reuseport_socket(const struct sockaddr_storage *ss)
{
	int fd = socket(ss->ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	int one = 1;
	socklen_t len = ss->ss_family == AF_INET6 ? sizeof(struct sockaddr_in6)
	                                          : sizeof(struct sockaddr_in);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
	    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one) < 0 ||
	    bind(fd, (const struct sockaddr *)ss, len) < 0) {
		int e = errno;
		close(fd);
		return -e;
	}
	return fd;
}

/* Creates a proxy on <loop> listening on <ss> (bound here when <fd> < 0,
 * else the bound socket <fd>, which it then owns). Returns 0 or a negative
 * libuv error; on error the proxy frees itself once <loop> has run its
 * close callbacks. */
static int proxy_open(uv_loop_t *loop, const struct sockaddr_storage *ss,
                      int fd, route *r, const cfg_proxy *pc, proxy **out)
{
	proxy *p = xcalloc(1, sizeof *p);
	p->loop = loop;
	p->t = pc->timeouts;
	p->max_conns = pc->max_connections;
	p->outlier_errors = pc->outlier_errors;
	p->ejection_ms = pc->outlier_ejection_ms;
	uv_tcp_init(loop, &p->listener);
	p->listener.data = p;
	p->listening = true;
	uv_timer_init(loop, &p->trim);
	p->trim.data = p;
	uv_timer_start(&p->trim, trim_cb, IO_TRIM_MS, IO_TRIM_MS);
	uv_unref((uv_handle_t *)&p->trim);
	uv_idle_init(loop, &p->resume);
	p->resume.data = p;
	p->nobj = 3;
	int rc;
	if (fd >= 0) {
		rc = uv_tcp_open(&p->listener, fd);
		if (rc < 0)
			close(fd);
	} else {
		rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)ss, 0);
	}
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&p->listener, 1024, h1_on_connection);
	if (rc < 0) {
		p->closing = true;
		stop_listening(p);   /* frees p in the close callbacks */
		uv_close((uv_handle_t *)&p->resume, listener_closed);
		return rc;
	}
	route_ref(r);
	p->r = r;
	route_configure(p);
	*out = p;
	return 0;
}

/* ---- workers -------------------------------------------------------------
 *
 * With spec.workers N > 1, proxy_start returns a hub that serves nothing
 * itself: N threads each run a loop of their own with an ordinary proxy
 * (its own listening socket, connections, pools and request blocks) bound
 * to a replica of the route. The main loop keeps the route: a weight is
 * one atomic int the replicas read at each pick; an endpoint change is a
 * snapshot posted in each worker's mailbox (a mutex taken on the control
 * path only) with a sequence number each worker compares, relaxed, before
 * each pick, plus a wake-up so that a quiet worker applies it too. Each
 * worker records into its own stats shard. Ejections are decided on the
 * shared outlier records and reported to the main loop through an async
 * handle, so that the route's observer runs on the main loop as before. */

typedef struct snapshot {
	epinfo *v[TARGET_COUNT];
	size_t n[TARGET_COUNT];
	route *src;                   /* the route to follow */
	stats *st;                    /* the worker's shard of its stats */
} snapshot;

typedef struct note {
	struct note *next;
	int target;
	int ejected;
	char ep[EP_NAME];
	char reason[160];
} note;

struct worker {
	proxy *hub;
	int index;                    /* 0..N-1; its stats shard is index + 1 */
	uv_loop_t loop;
	uv_thread_t thread;
	bool started;
	uv_async_t wake;              /* on the worker's loop */
	proxy *p;                     /* the worker's proxy (its thread's) */
	bool stopped;                 /* worker thread only */
	unsigned applied;             /* worker thread only: snapshot applied */
	unsigned seq;                 /* atomic: snapshots posted */
	uv_mutex_t mu;                /* guards what follows */
	snapshot *snap;               /* the latest snapshot not yet applied */
	bool has_cfg, drain, stop;
	cfg_proxy cfg;
};

static void snapshot_free(snapshot *sn)
{
	if (!sn)
		return;
	for (int t = 0; t < TARGET_COUNT; t++) {
		for (size_t i = 0; i < sn->n[t]; i++)
			ol_unref(sn->v[t][i].ol);
		free(sn->v[t]);
	}
	free(sn);
}

/* The endpoint sets of <r> as a worker needs them (main thread). */
static snapshot *snapshot_of(route *r, stats *st)
{
	snapshot *sn = xcalloc(1, sizeof *sn);
	sn->src = r;
	sn->st = st;
	for (int t = 0; t < TARGET_COUNT; t++) {
		sn->n[t] = r->set[t].n;
		sn->v[t] = xcalloc(sn->n[t] ? sn->n[t] : 1, sizeof *sn->v[t]);
		for (size_t i = 0; i < sn->n[t]; i++) {
			endpoint *ep = r->set[t].v[i];
			memcpy(sn->v[t][i].name, ep->name, sizeof ep->name);
			sn->v[t][i].addr = ep->addr;
			sn->v[t][i].ol = ol_ref(ep->ol);
		}
	}
	return sn;
}

/* Applies <sn> to the replica <rep> (its loop's thread) and frees it. */
static void snapshot_apply(route *rep, snapshot *sn)
{
	rep->src = sn->src;
	rep->st = sn->st;
	for (int t = 0; t < TARGET_COUNT; t++)
		route_replace(rep, t, sn->v[t], sn->n[t]);
	snapshot_free(sn);
}

/* Applies a posted snapshot, if any (worker thread). A relaxed load when
 * there is none; the mutex orders the snapshot's contents. */
static void worker_poll(worker *w)
{
	if (LD(w->seq) == w->applied || w->stopped)
		return;
	uv_mutex_lock(&w->mu);
	snapshot *sn = w->snap;
	w->snap = NULL;
	w->applied = LD(w->seq);
	uv_mutex_unlock(&w->mu);
	if (sn)
		snapshot_apply(w->p->r, sn);
}

static void worker_wake(uv_async_t *a)
{
	worker *w = a->data;
	worker_poll(w);
	uv_mutex_lock(&w->mu);
	bool has_cfg = w->has_cfg, drain = w->drain, stop = w->stop;
	cfg_proxy pc = w->cfg;
	w->has_cfg = w->drain = false;
	uv_mutex_unlock(&w->mu);
	if (w->stopped)
		return;
	if (has_cfg)
		proxy_set_config(w->p, &pc);
	if (drain)
		proxy_drain(w->p);
	if (stop) {
		w->stopped = true;
		proxy_close(w->p);   /* frees it once its handles are closed */
		uv_close((uv_handle_t *)&w->wake, NULL);
	}
}

static void worker_main(void *arg)
{
	worker *w = arg;
	uv_run(&w->loop, UV_RUN_DEFAULT);
}

/* Posts to <w> (main thread) under its mutex and wakes it up. */
static void worker_post(worker *w, snapshot *sn, const cfg_proxy *pc,
                        bool drain, bool stop)
{
	uv_mutex_lock(&w->mu);
	if (sn) {
		snapshot_free(w->snap);   /* superseded */
		w->snap = sn;
		ST(w->seq, LD(w->seq) + 1);
	}
	if (pc) {
		w->cfg = *pc;
		w->has_cfg = true;
	}
	w->drain |= drain;
	w->stop |= stop;
	uv_mutex_unlock(&w->mu);
	uv_async_send(&w->wake);
}

/* A worker's share of the connection limit. */
static cfg_proxy worker_cfg(const cfg_proxy *pc, int n)
{
	cfg_proxy c = *pc;
	if (c.max_connections > 0)
		c.max_connections = (c.max_connections + n - 1) / n;
	return c;
}

/* Called by a worker's replica (worker thread): queued for the main loop. */
static void worker_observer(void *arg, int target, const char *endpoint_name,
                            int ejected, const char *reason)
{
	worker *w = arg;
	proxy *hub = w->hub;
	note *n = xcalloc(1, sizeof *n);
	n->target = target;
	n->ejected = ejected;
	snprintf(n->ep, sizeof n->ep, "%s", endpoint_name);
	snprintf(n->reason, sizeof n->reason, "%s", reason);
	uv_mutex_lock(&hub->nmu);
	*hub->notes_tail = n;
	hub->notes_tail = &n->next;
	uv_mutex_unlock(&hub->nmu);
	uv_async_send(&hub->notify);
}

/* Tells the route's observer what the workers reported (main loop). */
static void hub_deliver(proxy *hub)
{
	uv_mutex_lock(&hub->nmu);
	note *n = hub->notes;
	hub->notes = NULL;
	hub->notes_tail = &hub->notes;
	uv_mutex_unlock(&hub->nmu);
	while (n) {
		note *next = n->next;
		if (hub->r->obs)
			hub->r->obs(hub->r->obs_arg, n->target, n->ep, n->ejected,
			            n->reason);
		free(n);
		n = next;
	}
}

static void hub_notify_cb(uv_async_t *a) { hub_deliver(a->data); }

/* Sends every worker the route's current endpoint sets (main thread). */
static void hub_publish(proxy *hub)
{
	for (int i = 0; i < hub->n_workers; i++) {
		worker *w = &hub->workers[i];
		if (w->started)
			worker_post(w, snapshot_of(hub->r, stats_shard(hub->r->st, i + 1)),
			            NULL, false, false);
	}
}

static void hub_attach(proxy *hub, route *r)
{
	route_ref(r);
	hub->r = r;
	r->hubs = realloc(r->hubs, (r->n_hubs + 1) * sizeof *r->hubs);
	if (!r->hubs) {
		fprintf(stderr, "canaryd: out of memory (route)\n");
		abort();
	}
	r->hubs[r->n_hubs++] = hub;
}

static void hub_detach(proxy *hub)
{
	route *r = hub->r;
	for (size_t i = 0; i < r->n_hubs; i++) {
		if (r->hubs[i] == hub) {
			r->hubs[i] = r->hubs[--r->n_hubs];
			break;
		}
	}
}

/* Runs a worker's loop on this thread until its handles are closed (its
 * thread was never started) and frees what it holds. */
static void worker_discard(worker *w)
{
	if (w->p && !w->stopped)
		proxy_close(w->p);
	w->stopped = true;
	uv_close((uv_handle_t *)&w->wake, NULL);
	uv_run(&w->loop, UV_RUN_DEFAULT);
	uv_loop_close(&w->loop);
	uv_mutex_destroy(&w->mu);
}

static void hub_closed(uv_handle_t *h)
{
	proxy *hub = h->data;
	hub_detach(hub);
	route_unref(hub->r);
	for (size_t i = 0; i < hub->n_former; i++)
		route_unref(hub->former[i]);
	free(hub->former);
	uv_mutex_destroy(&hub->nmu);
	free(hub->workers);
	free(hub);
}

static int hub_start(uv_loop_t *loop, const struct sockaddr_storage *ss,
                     const char *listen, route *r, const cfg_proxy *pc,
                     proxy **out, char *err, size_t errlen)
{
	int n = pc->workers;
	proxy *hub = xcalloc(1, sizeof *hub);
	hub->loop = loop;
	hub->n_workers = n;
	hub->workers = xcalloc((size_t)n, sizeof *hub->workers);
	uv_mutex_init(&hub->nmu);
	hub->notes_tail = &hub->notes;
	cfg_proxy wc = worker_cfg(pc, n);
	int rc = 0, made = 0;
	for (; made < n; made++) {
		worker *w = &hub->workers[made];
		w->hub = hub;
		w->index = made;
		uv_loop_init(&w->loop);
		uv_mutex_init(&w->mu);
		uv_async_init(&w->loop, &w->wake, worker_wake);
		w->wake.data = w;
		route *rep = route_new(r->name, NULL);
		rep->obs = worker_observer;
		rep->obs_arg = w;
		/* on this thread: the worker's loop does not run yet */
		snapshot_apply(rep, snapshot_of(r, stats_shard(r->st, made + 1)));
		int fd = reuseport_socket(ss);
		rc = fd < 0 ? fd : proxy_open(&w->loop, ss, fd, rep, &wc, &w->p);
		route_unref(rep);   /* the worker's proxy holds it */
		if (rc < 0) {
			w->p = NULL;
			worker_discard(w);
			break;
		}
		w->p->w = w;
	}
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on '%s': %s", listen,
		         uv_strerror(rc));
		while (made-- > 0)
			worker_discard(&hub->workers[made]);
		uv_mutex_destroy(&hub->nmu);
		free(hub->workers);
		free(hub);
		return rc;
	}
	hub_attach(hub, r);
	uv_async_init(loop, &hub->notify, hub_notify_cb);
	hub->notify.data = hub;
	uv_unref((uv_handle_t *)&hub->notify);
	for (int i = 0; i < n; i++) {
		worker *w = &hub->workers[i];
		if (uv_thread_create(&w->thread, worker_main, w) != 0) {
			fprintf(stderr, "canaryd: cannot start a proxy worker thread\n");
			abort();   /* as out of memory */
		}
		w->started = true;
	}
	*out = hub;
	return 0;
}

/* Stops every worker, waits for its thread and frees the hub. */
static void hub_close(proxy *hub)
{
	hub->closing = true;
	for (int i = 0; i < hub->n_workers; i++)
		worker_post(&hub->workers[i], NULL, NULL, true, true);
	for (int i = 0; i < hub->n_workers; i++) {
		worker *w = &hub->workers[i];
		uv_thread_join(&w->thread);
		uv_loop_close(&w->loop);
		snapshot_free(w->snap);
		uv_mutex_destroy(&w->mu);
	}
	hub_deliver(hub);
	uv_close((uv_handle_t *)&hub->notify, hub_closed);
}

int proxy_start(uv_loop_t *loop, const char *listen, route *r,
                const cfg_proxy *pc, proxy **out, char *err, size_t errlen)
{
	*out = NULL;
	struct sockaddr_storage ss;
	char why[256];
	if (resolve(listen, &ss, why, sizeof why) < 0) {
		snprintf(err, errlen, "cannot listen on '%s': %s", listen,
		         "not a numeric HOST:PORT");
		return UV_EINVAL;
	}
	if (pc->workers > 1)
		return hub_start(loop, &ss, listen, r, pc, out, err, errlen);
	int rc = proxy_open(loop, &ss, -1, r, pc, out);
	if (rc < 0)
		snprintf(err, errlen, "cannot listen on '%s': %s", listen,
		         uv_strerror(rc));
	return rc;
}

/* The route's outlier settings are those of the proxy serving it last
 * configured (one proxy per route in practice). */
static void route_configure(proxy *p)
{
	p->r->outlier_errors = p->outlier_errors;
	p->r->ejection_ms = p->ejection_ms;
}

void proxy_set_route(proxy *p, route *r)
{
	if (r == p->r)
		return;
	if (p->workers) {
		/* the replicas may read the old route's weight until they
		 * apply the new snapshot: it is kept until the close */
		hub_detach(p);
		p->former = realloc(p->former, (p->n_former + 1) * sizeof *p->former);
		if (!p->former) {
			fprintf(stderr, "canaryd: out of memory (route)\n");
			abort();
		}
		p->former[p->n_former++] = p->r;
		hub_attach(p, r);
		hub_publish(p);
		return;
	}
	route_ref(r);
	route_unref(p->r);
	p->r = r;
	route_configure(p);
}

void proxy_set_config(proxy *p, const cfg_proxy *pc)
{
	if (p->workers) {
		cfg_proxy wc = worker_cfg(pc, p->n_workers);
		for (int i = 0; i < p->n_workers; i++)
			worker_post(&p->workers[i], NULL, &wc, false, false);
		return;
	}
	p->t = pc->timeouts;
	p->max_conns = pc->max_connections;
	p->outlier_errors = pc->outlier_errors;
	p->ejection_ms = pc->outlier_ejection_ms;
	route_configure(p);
	h1_resume_accepting(p);
}

void proxy_drain(proxy *p)
{
	p->draining = true;
	if (p->workers) {
		for (int i = 0; i < p->n_workers; i++)
			worker_post(&p->workers[i], NULL, NULL, true, false);
		return;
	}
	stop_listening(p);
	for (cconn *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (c->state == C_IDLE && !c->cw_pending && c->clen == c->coff)
			h1_close(c);
	}
	/* idle upstream connections are not needed any more */
	for (upconn *up = p->ups, *next; up; up = next) {
		next = up->next;
		if (up->pooled)
			up_close(up);
	}
}

size_t proxy_inflight(const proxy *p)
{
	if (!p->workers)
		return LD(p->inflight);
	size_t n = 0;
	for (int i = 0; i < p->n_workers; i++)
		n += LD(p->workers[i].p->inflight);
	return n;
}

size_t proxy_connections(const proxy *p)
{
	if (!p->workers)
		return LD(p->n_clients);
	size_t n = 0;
	for (int i = 0; i < p->n_workers; i++)
		n += LD(p->workers[i].p->n_clients);
	return n;
}

void proxy_close(proxy *p)
{
	if (p->workers) {
		hub_close(p);
		return;
	}
	p->closing = true;
	p->draining = true;
	stop_listening(p);
	if (!uv_is_closing((uv_handle_t *)&p->resume))
		uv_close((uv_handle_t *)&p->resume, listener_closed);
	for (cconn *c = p->clients; c; c = c->next)
		h1_close(c);
	for (upconn *up = p->ups; up; up = up->next)
		up_close(up);
	proxy_maybe_free(p);
}
