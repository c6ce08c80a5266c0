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
#include <sys/mman.h>

#include "http.h"
#include "log.h"
#include "util.h"

#define CBUF HTTP_MAX_HEAD         /* client input: a whole head must fit */
#define RBUF 16384                 /* upstream input */
#define HEADBUF (HTTP_MAX_HEAD + 1024) /* a rewritten head: room for added fields */
#define POOL_MAX 1024              /* idle connections kept per endpoint */
#define EP_NAME 300
#define IO_TRIM_MS 5000            /* period of the free request block trim */

typedef struct upconn upconn;
typedef struct cconn cconn;

/* What a client connection needs only while a request is active: the
 * parsed messages, one buffer per direction and the rewritten heads. An
 * idle keep-alive connection holds none (it costs about 1 KB); blocks are
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
	char name[EP_NAME];           /* "HOST:PORT" as configured */
	struct sockaddr_storage addr;
	upconn *idle[POOL_MAX];       /* keep-alive pool, a LIFO stack */
	size_t n_idle;
	/* passive outlier detection */
	int fails;                    /* consecutive failures */
	bool ejected;
	uint64_t ejected_until;       /* uv_now() ms at which it comes back */
} endpoint;

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
	int weight;                   /* canary share 0..100 */
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
	size_t n_clients;
	size_t inflight;
	int max_conns;                /* client connections at most (0: no limit) */
	int outlier_errors;
	uint64_t ejection_ms;
	bool accept_paused;           /* at the limit, a connection is waiting */
	uint64_t limit_logged_ms;
	cconn *clients;
	upconn *ups;
	iobuf *free_io;               /* free list of request blocks */
	size_t n_free_io;
	size_t free_low;              /* fewest free blocks since the last trim */
	uv_timer_t trim;              /* gives unneeded free blocks back */
	char scratch[CBUF];           /* reads of connections without a block */
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
	uv_write_t cw;
	uv_shutdown_t shut;
	int open;                     /* handles not yet closed */
	proxy *p;
	cconn *prev, *next;
	cstate state;
	tmode tm;
	bool closing;
	bool lingering;               /* closing after an answer: input discarded */
	bool advancing;               /* inside c_advance */
	bool reading;
	bool c_eof;                   /* the client finished sending */
	bool cw_pending;
	bool close_after;             /* close once the current response is out */
	size_t cw_body;               /* rbuf bytes in the client write */
	size_t uw_body;               /* cbuf bytes in the upstream write */
	char ip[64];

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
	bool up_dirty;                /* bytes after the response: do not reuse */
	http_body rbody;
	uint64_t rleft;
	http_chunked rck;

	size_t coff, clen;
	size_t roff, rlen;
	size_t reqhead_len, resphead_len;
	iobuf *io;                    /* only while a request is active */
};

static void c_advance(cconn *c);
static void c_advance_loop(cconn *c);
static void resume_accepting(proxy *p);
static void route_configure(proxy *p);
static void c_close(cconn *c);
static void up_close(upconn *up);
static void fail_request(cconn *c, int status);

/* ---- routes and endpoints ---------------------------------------------- */

static void ep_unref(endpoint *ep)
{
	if (ep && --ep->refs == 0)
		free(ep);
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
	free(r->name);
	free(r);
}

void route_release(route *r) { route_unref(r); }

static endpoint *route_find_ep(route *r, const char *name)
{
	for (int t = 0; t < TARGET_COUNT; t++)
		for (size_t i = 0; i < r->set[t].n; i++)
			if (strcmp(r->set[t].v[i]->name, name) == 0)
				return r->set[t].v[i];
	return NULL;
}

/* Resolves "HOST:PORT" (numeric or localhost) into <ss>. */
static int resolve(const char *hp, struct sockaddr_storage *ss, char *err,
                   size_t errlen)
{
	char host[256];
	int port;
	if (util_parse_hostport(hp, host, sizeof host, &port) < 0) {
		snprintf(err, errlen, "invalid address '%s': expected HOST:PORT", hp);
		return -1;
	}
	if (strcmp(host, "localhost") == 0)
		strcpy(host, "127.0.0.1");
	memset(ss, 0, sizeof *ss);
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)ss) == 0)
		return 0;
	if (uv_ip6_addr(host, port, (struct sockaddr_in6 *)ss) == 0)
		return 0;
	snprintf(err, errlen, "invalid address '%s': host is not a numeric address",
	         hp);
	return -1;
}

int route_set_endpoints(route *r, int target, char *const *eps, size_t n,
                        char *err, size_t errlen)
{
	if (target < 0 || target >= TARGET_COUNT) {
		snprintf(err, errlen, "invalid target %d", target);
		return -1;
	}
	struct sockaddr_storage *addrs = xcalloc(n ? n : 1, sizeof *addrs);
	for (size_t i = 0; i < n; i++) {
		if (strlen(eps[i]) >= EP_NAME) {
			snprintf(err, errlen, "invalid address '%.40s...': too long", eps[i]);
			free(addrs);
			return -1;
		}
		if (resolve(eps[i], &addrs[i], err, errlen) < 0) {
			free(addrs);
			return -1;
		}
	}
	endpoint **v = xcalloc(n ? n : 1, sizeof *v);
	for (size_t i = 0; i < n; i++) {
		/* keep the endpoint (and its pool) when it stays, possibly
		 * moving from one target to the other on promotion */
		endpoint *ep = route_find_ep(r, eps[i]);
		if (!ep) {
			ep = xcalloc(1, sizeof *ep);
			snprintf(ep->name, sizeof ep->name, "%s", eps[i]);
			ep->addr = addrs[i];
		}
		ep->refs++;
		v[i] = ep;
	}
	free(addrs);
	epset old = r->set[target];
	r->set[target].v = v;
	r->set[target].n = n;
	r->set[target].rr = 0;
	for (size_t i = 0; i < old.n; i++) {
		if (!route_find_ep(r, old.v[i]->name))
			ep_retire(old.v[i]);
		ep_unref(old.v[i]);
	}
	free(old.v);
	return 0;
}

void route_set_weight(route *r, int canary_weight)
{
	if (canary_weight < 0)
		canary_weight = 0;
	if (canary_weight > 100)
		canary_weight = 100;
	r->weight = canary_weight;
}

int route_weight(const route *r) { return r->weight; }

/* Picks the target of the next request by smooth weighted round-robin over
 * (100-w, w) (nginx's algorithm: over any <total> consecutive picks each
 * target gets exactly its weight). A target without endpoints weighs 0; if
 * both weigh 0, any target with endpoints. Returns -1 when there is none. */
static int route_pick(route *r)
{
	int w[TARGET_COUNT];
	w[TARGET_STABLE] = r->set[TARGET_STABLE].n ? 100 - r->weight : 0;
	w[TARGET_CANARY] = r->set[TARGET_CANARY].n ? r->weight : 0;
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

/* Brings <ep> back when its ejection time is over. Returns whether it is
 * (still) out. */
static bool ep_out(route *r, int target, endpoint *ep, uint64_t now)
{
	if (!ep->ejected)
		return false;
	if (now < ep->ejected_until)
		return true;
	ep->ejected = false;
	ep->fails = 0;
	route_notify(r, target, ep, 0, "ejection time over");
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
	if (ep->ejected) {
		/* picked while every endpoint was out, and failed again */
		ep->ejected_until = now + r->ejection_ms;
		return;
	}
	if (++ep->fails < r->outlier_errors)
		return;
	ep->ejected = true;
	ep->ejected_until = now + r->ejection_ms;
	char reason[160];
	snprintf(reason, sizeof reason, "%d consecutive failures: %s", ep->fails,
	         why);
	route_notify(r, target, ep, 1, reason);
}

/* A response below 500 from <ep>. */
static void ep_succeeded(route *r, int target, endpoint *ep)
{
	if (!ep)
		return;
	ep->fails = 0;
	if (ep->ejected) {
		ep->ejected = false;
		route_notify(r, target, ep, 0, "answered while ejected");
	}
}

/* ---- proxy bookkeeping -------------------------------------------------- */

static void io_unmap(iobuf *io) { munmap(io, sizeof *io); }

static void maybe_free(proxy *p)
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
	maybe_free(p);
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
static void io_take(cconn *c)
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
static void io_give(cconn *c)
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

static void timer_start(uv_timer_t *t, uv_timer_cb cb, uint64_t ms)
{
	if (ms == 0)
		uv_timer_stop(t);
	else
		uv_timer_start(t, cb, ms, 0);
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
	maybe_free(p);
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

static void up_timer_cb(uv_timer_t *t);

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
			timer_start(&c->utimer, up_timer_cb, c->p->t.response_ms);
	} else {
		c->up_eof = true;
		if (up->reading) {
			uv_read_stop(s);
			up->reading = false;
		}
	}
	c_advance(c);
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

static void out_str(hbuf *o, const char *s) { out_put(o, s, strlen(s)); }

static bool name_is(const http_header *h, const char *name)
{
	return http_find_header(h, 1, name) != NULL;
}

static void c_write(cconn *c, uv_buf_t *b, unsigned n, size_t body);

/* Builds the upstream head of the parsed request. Returns false when it
 * does not fit. */
static bool build_request_head(cconn *c)
{
	const http_request *q = &c->io->req;
	hbuf o = { c->io->reqhead, 0, sizeof c->io->reqhead, false };
	out_put(&o, q->method, q->method_len);
	out_str(&o, " ");
	out_put(&o, q->target, q->target_len);
	out_str(&o, q->minor == 0 ? " HTTP/1.0\r\n" : " HTTP/1.1\r\n");
	bool xff = false, xfp = false;
	for (size_t i = 0; i < q->n_headers; i++) {
		const http_header *h = &q->headers[i];
		if (http_is_hop_by_hop(h, q->headers, q->n_headers))
			continue;
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
	out_str(&o, c->ip);
	out_str(&o, "\r\n");
	if (!xfp)
		out_str(&o, "X-Forwarded-Proto: http\r\n");
	if (q->upgrade) {
		const http_header *u = http_find_header(q->headers, q->n_headers,
		                                        "upgrade");
		out_str(&o, "Connection: Upgrade\r\nUpgrade: ");
		out_put(&o, u->value, u->value_len);
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
	char line[32];
	snprintf(line, sizeof line, "HTTP/1.1 %03d ", s->status);
	out_str(&o, line);
	if (s->reason_len)
		out_put(&o, s->reason, s->reason_len);
	else
		out_str(&o, http_reason(s->status));
	out_str(&o, "\r\n");
	for (size_t i = 0; i < s->n_headers; i++) {
		const http_header *h = &s->headers[i];
		bool up = keep_upgrade && name_is(h, "upgrade");
		if (!up && http_is_hop_by_hop(h, s->headers, s->n_headers))
			continue;
		out_put(&o, h->name, h->name_len);
		out_str(&o, ": ");
		out_put(&o, h->value, h->value_len);
		out_str(&o, "\r\n");
	}
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
static void fail_request(cconn *c, int status)
{
	if (c->up)
		up_close(c->up);
	uv_timer_stop(&c->utimer);
	c->status = status;
	c->rs = RS_DONE;
	c->resp_head_sent = true;
	record(c);
	if (c->cw_pending) {
		/* an interim (1xx) head is still being written: the error
		 * follows it */
		c->close_after = true;
		c_close(c);
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
	timer_start(&c->utimer, up_timer_cb, p->t.connect_ms);
}

/* The connection to c->ep could not be established (<why>): counted
 * against the endpoint, and the request, which nothing was sent of, goes
 * once to another endpoint of the same target. c->up is closed. */
static void connect_failed(cconn *c, const char *why)
{
	log_msg(LOG_WARN, c->r->name, "cannot connect to upstream '%s': %s",
	        c->ep->name, why);
	uv_timer_stop(&c->utimer);
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
	fail_request(c, 502);
}

/* Takes a pooled connection to c->ep or connects a new one. */
static void acquire_upstream(cconn *c)
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
	uv_timer_stop(&c->utimer);
	up_start_reading(up);
	c_advance(c);
}

/* The upstream connection failed or closed before the response was
 * complete. */
static void upstream_failed(cconn *c)
{
	if (c->rs == RS_DONE) {
		/* answered already (say, early, before the whole body) */
		if (c->up)
			up_close(c->up);
		c->close_after = true;
		return;
	}
	if (c->resp_head_sent || c->rs != RS_HEAD) {
		c_close(c);   /* the client sees a truncated response */
		return;
	}
	bool no_reply = !c->resp_started;
	if (c->up)
		up_close(c->up);
	c->up_eof = false;
	c->roff = c->rlen = 0;
	/* the keep-alive race: the upstream closed a pooled connection as
	 * the request went out; nothing was consumed, so send it again */
	if (c->reused && no_reply && c->body_sent == 0 && !c->retried) {
		c->retried = true;
		c->head_sent = false;
		connect_new(c);
		return;
	}
	log_msg(LOG_WARN, c->r->name, "upstream '%s' closed before responding",
	        c->ep->name);
	ep_failed(c->r, c->target, c->ep, uv_now(c->p->loop),
	          "closed before responding");
	fail_request(c, 502);
}

static void up_timer_cb(uv_timer_t *t)
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
		fail_request(c, 504);
	} else {
		c_close(c);
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
			c_close(c);
		else
			upstream_failed(c);
		return;
	}
	c->coff += c->uw_body;
	c->uw_body = 0;
	if (c->state == C_REQ && c->rs != RS_DONE)
		timer_start(&c->utimer, up_timer_cb, c->p->t.response_ms);
	c_advance(c);
}

/* ---- the client connection ---------------------------------------------- */

static void c_closed(uv_handle_t *h)
{
	cconn *c = h->data;
	if (--c->open > 0)
		return;
	proxy *p = c->p;
	if (c->prev)
		c->prev->next = c->next;
	else
		p->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	io_give(c);
	free(c);
	p->nobj--;
	resume_accepting(p);
	maybe_free(p);
}

/* Releases what the current request holds. */
static void req_release(cconn *c)
{
	if (c->state != C_IDLE)
		c->p->inflight--;
	c->state = C_IDLE;
	ep_unref(c->ep);
	c->ep = NULL;
	route_unref(c->r);
	c->r = NULL;
}

static void c_close(cconn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	if (c->up)
		up_close(c->up);
	req_release(c);
	c->p->n_clients--;
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
		c_close(c);
		return;
	}
	c->roff += c->cw_body;
	c->cw_body = 0;
	/* a slow client is not an idle upstream */
	if (c->state == C_REQ && c->rs != RS_DONE && c->up && c->up->connected)
		timer_start(&c->utimer, up_timer_cb, c->p->t.response_ms);
	c_advance(c);
}

/* Writes to the client; <body> bytes of them are rbuf[roff..], consumed
 * when the write completes. */
/* Writes what it can of b[0..n) at once and returns how many bytes are
 * left, with rest[] pointing at them; < 0 on a write error. A write that
 * completes at once costs libuv no request, callback or epoll_ctl. */
static ssize_t try_write(uv_stream_t *s, const uv_buf_t *b, unsigned n,
                         uv_buf_t *rest, unsigned *m)
{
	int rc = uv_try_write(s, b, n);
	if (rc == UV_EAGAIN || rc == UV_ENOSYS)
		rc = 0;
	else if (rc < 0)
		return rc;
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
 * when written. Outside c_advance, a write done at once advances the
 * connection, as its callback would. */
static void c_write(cconn *c, uv_buf_t *b, unsigned n, size_t body)
{
	uv_buf_t rest[2];
	unsigned m;
	ssize_t left = try_write((uv_stream_t *)&c->tcp, b, n, rest, &m);
	if (left < 0) {
		c_close(c);
		return;
	}
	if (left == 0) {
		c->roff += body;
		if (c->state == C_REQ && c->rs != RS_DONE && c->up &&
		    c->up->connected)
			timer_start(&c->utimer, up_timer_cb, c->p->t.response_ms);
		if (!c->advancing)
			c_advance(c);
		return;
	}
	c->cw.data = c;
	int rc = uv_write(&c->cw, (uv_stream_t *)&c->tcp, rest, m, c_write_cb);
	if (rc < 0) {
		c_close(c);
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
	if (c->tm == TM_HEAD) {
		send_error(c, 408, true);
		return;
	}
	c_close(c);
}

/* Starts a request whose head of <head_len> bytes is at cbuf[coff]. */
static void start_request(cconn *c, size_t head_len)
{
	proxy *p = c->p;
	c->state = C_REQ;
	p->inflight++;
	c->t0 = uv_hrtime();
	c->r = p->r;
	route_ref(c->r);
	c->status = 0;
	c->recorded = false;
	c->head_sent = false;
	c->body_sent = 0;
	c->reused = c->retried = c->tried_next = false;
	c->rs = RS_HEAD;
	c->resp_started = c->resp_head_sent = false;
	c->up_eof = c->up_dirty = false;
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
		fail_request(c, 502);
		return;
	}
	acquire_upstream(c);
}

/* Ends the current request after its response was written whole. */
static void finish_request(cconn *c)
{
	record(c);
	uv_timer_stop(&c->utimer);
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
				c_close(c);
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
			timer_start(&c->utimer, up_timer_cb, c->p->t.response_ms);
		return true;
	}
	int rc = left < 0 ? (int)left
	       : uv_write(&up->wreq, (uv_stream_t *)&up->tcp, rest, m, up_write_cb);
	if (rc < 0) {
		if (c->state == C_TUNNEL)
			c_close(c);
		else
			upstream_failed(c);
		return true;
	}
	up->w_pending = true;
	c->uw_body = k;
	c->head_sent = true;
	c->body_sent += k;
	if (c->state == C_REQ && c->rs != RS_DONE)
		timer_start(&c->utimer, up_timer_cb, c->p->t.response_ms);
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
			fail_request(c, 502);
			return;
		}
		uv_buf_t b = uv_buf_init(c->io->resphead, (unsigned)c->resphead_len);
		c_write(c, &b, 1, 0);
		return;
	}
	if (s->status == 101) {
		if (!c->io->req.upgrade || !build_response_head(c, "Upgrade", true)) {
			fail_request(c, 502);
			return;
		}
		c->status = 101;
		c->resp_head_sent = true;
		c->rs = RS_DONE;
		record(c);
		uv_timer_stop(&c->utimer);
		c->state = C_TUNNEL;
		uv_buf_t b[2];
		b[0] = uv_buf_init(c->io->resphead, (unsigned)c->resphead_len);
		size_t k = c->rlen - c->roff;
		b[1] = uv_buf_init(c->io->rbuf + c->roff, (unsigned)k);
		c_write(c, b, k ? 2 : 1, k);
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
		fail_request(c, 502);
		return;
	}
	c->resp_head_sent = true;
	c->rs = RS_BODY;
	ssize_t k = resp_body_take(c);
	if (k < 0) {
		c_close(c);
		return;
	}
	uv_buf_t b[2];
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
				upstream_failed(c);
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
				fail_request(c, 502);
				return true;
			}
			return false;
		}
		if (rc < 0) {
			log_msg(LOG_WARN, c->r->name, "upstream '%s' sent an invalid "
			        "response head", c->ep->name);
			ep_failed(c->r, c->target, c->ep, uv_now(c->p->loop),
			          "invalid response head");
			fail_request(c, 502);
			return true;
		}
		on_response_head(c, (size_t)rc);
		return true;
	}
	ssize_t k = resp_body_take(c);
	if (k < 0) {
		c_close(c);
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
		if (c->rbody == HTTP_BODY_UNTIL_CLOSE) {
			c->rs = RS_DONE;
			return true;
		}
		c_close(c);   /* truncated body */
	}
	return false;
}

static void linger_timer_cb(uv_timer_t *t)
{
	c_close(t->data);
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
			c_close(c);
		return;
	}
	c->lingering = true;
	c->tm = TM_NONE;
	c->coff = c->clen = 0;
	io_give(c);
	if (uv_shutdown(&c->shut, (uv_stream_t *)&c->tcp, shutdown_cb) < 0) {
		c_close(c);
		return;
	}
	uv_timer_start(&c->ctimer, linger_timer_cb, LINGER_MS, 0);
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
			c_close(c);
		return false;
	}
	int rc = http_parse_request(c->io->cbuf + c->coff, avail, &c->io->req);
	if (rc == HTTP_INCOMPLETE) {
		if (c->c_eof)
			c_close(c);
		return false;
	}
	if (rc < 0) {
		int status = rc == HTTP_E_TOO_LARGE ? 431
		           : rc == HTTP_E_VERSION ? 505 : 400;
		send_error(c, status, true);
		return false;
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
			c_close(c);
		return;
	}
	if (nread > 0) {
		if (b->base == c->p->scratch) {
			/* the first bytes after an idle time (clen is 0) */
			io_take(c);
			memcpy(c->io->cbuf, b->base, (size_t)nread);
		}
		c->clen += (size_t)nread;
	} else if (nread == UV_EOF) {
		c->c_eof = true;
		uv_read_stop(s);
		c->reading = false;
		if (c->state == C_TUNNEL || (c->state == C_REQ && !c->body_done &&
		                             c->clen == c->coff)) {
			c_close(c);
			return;
		}
	} else {
		c_close(c);
		return;
	}
	c_advance(c);
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
		io_give(c);   /* idle: the connection keeps no buffers */
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
			uv_timer_stop(&c->ctimer);
		else
			timer_start(&c->ctimer, c_timer_cb, tm == TM_HEAD
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
static void c_advance(cconn *c)
{
	bool outer = !c->advancing;
	c->advancing = true;
	c_advance_loop(c);
	if (outer)
		c->advancing = false;
}

static void c_advance_loop(cconn *c)
{
	for (int guard = 0; guard < 64 && !c->closing; guard++) {
		bool progress = false;
		switch (c->state) {
		case C_IDLE:
			progress = try_head(c);
			break;
		case C_REQ:
			if (c->c_eof && !c->body_done && c->coff == c->clen &&
			    c->uw_body == 0) {
				c_close(c);   /* the client gave up mid-body */
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
				c_close(c);
			} else if (!c->closing && !c->up) {
				c_close(c);
			}
			break;
		}
		if (!progress)
			break;
	}
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
	p->n_clients++;
	if (uv_accept(server, (uv_stream_t *)&c->tcp) < 0) {
		c_close(c);
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
	c_advance(c);
}

static bool at_limit(const proxy *p)
{
	return p->max_conns > 0 && p->n_clients >= (size_t)p->max_conns;
}

/* At the connection limit the connection is left unaccepted: libuv then
 * stops polling the listener (the kernel's backlog keeps the rest waiting)
 * until uv_accept is called, which resume_accepting does once a client
 * connection has closed. */
static void on_connection(uv_stream_t *server, int status)
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

static void resume_accepting(proxy *p)
{
	if (p->accept_paused && p->listening && !p->closing && !at_limit(p)) {
		p->accept_paused = false;
		accept_one(p);
	}
}

/* ---- the proxy ---------------------------------------------------------- */

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
	p->nobj = 2;
	int rc = uv_tcp_bind(&p->listener, (const struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&p->listener, 1024, on_connection);
	if (rc < 0) {
		snprintf(err, errlen, "cannot listen on '%s': %s", listen,
		         uv_strerror(rc));
		p->closing = true;
		stop_listening(p);   /* frees p in the close callback */
		return rc;
	}
	route_ref(r);
	p->r = r;
	route_configure(p);
	*out = p;
	return 0;
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
	route_ref(r);
	route_unref(p->r);
	p->r = r;
	route_configure(p);
}

void proxy_set_config(proxy *p, const cfg_proxy *pc)
{
	p->t = pc->timeouts;
	p->max_conns = pc->max_connections;
	p->outlier_errors = pc->outlier_errors;
	p->ejection_ms = pc->outlier_ejection_ms;
	route_configure(p);
	resume_accepting(p);
}

void proxy_drain(proxy *p)
{
	p->draining = true;
	stop_listening(p);
	for (cconn *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (c->state == C_IDLE && !c->cw_pending && c->clen == c->coff)
			c_close(c);
	}
	/* idle upstream connections are not needed any more */
	for (upconn *up = p->ups, *next; up; up = next) {
		next = up->next;
		if (up->pooled)
			up_close(up);
	}
}

size_t proxy_inflight(const proxy *p) { return p->inflight; }

size_t proxy_connections(const proxy *p) { return p->n_clients; }

void proxy_close(proxy *p)
{
	p->closing = true;
	p->draining = true;
	stop_listening(p);
	for (cconn *c = p->clients; c; c = c->next)
		c_close(c);
	for (upconn *up = p->ups; up; up = up->next)
		up_close(up);
	maybe_free(p);
}
