/* proxy-t.h - the built-in proxy's types, shared by the files of the data
 * plane (proxy.c, route.c, upstream.c, mux_h1.c, workers.c) and included
 * by nothing outside it. Types only, as HAProxy's -t.h headers: the
 * prototypes the files share are in dataplane.h, which includes this one.
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
#ifndef CANARYD_PROXY_T_H
#define CANARYD_PROXY_T_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "http.h"
#include "match.h"
#include "proxy.h"

#define SETCOOKIE_MAX 1280         /* the Set-Cookie lines affinity adds to a response */
#define CBUF HTTP_MAX_HEAD         /* client input: a whole head must fit */
#define RBUF 16384                 /* upstream input */
#define HEADBUF (HTTP_MAX_HEAD + 1024 + SETCOOKIE_MAX) /* a rewritten head: room for
                                 * added fields and affinity cookies */
#define POOL_MAX 1024              /* idle connections kept per endpoint */
#define EP_NAME ROUTE_NAME_LEN     /* an endpoint's name in logs */
#define IO_TRIM_MS 5000            /* period of the free request block trim */
/* Mirroring's bounds, per event loop (mirror.c): a copy that would cross
 * one is not made (or given up), and counted; none ever waits. */
#define MIRROR_BUF 65536           /* a copy's head and unsent body bytes */
#define MIRROR_BUSY_MAX 256        /* copies in flight */
#define MIRROR_BYTES_MAX (4u << 20) /* unsent bytes of all copies */
#define MIRROR_IDLE_MAX 64         /* keep-alive connections to the canary */
#define MIRROR_IDLE_MS 10000       /* an idle one is closed after this */

typedef struct upconn upconn;
typedef struct cconn cconn;
typedef struct mconn mconn;
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
	size_t setcookie_len;         /* the Set-Cookie lines route_pick_request */
	char setcookie[SETCOOKIE_MAX];/* chose for this request's response */
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
	int unhealthy;                /* 0/1: active health checks failed (health.c,
	                               * the main loop writes it, workers read it) */
} outlier;

/* An endpoint as the main route hands it to a worker. */
typedef struct epinfo {
	char name[EP_NAME];
	struct sockaddr_storage addr;
	outlier *ol;                  /* a reference, or NULL: a new record */
} epinfo;

/* A route's request rules: the A/B match (analysis.match) and session
 * affinity (analysis.sessionAffinity). Immutable once made; the main route
 * and each worker's replica hold a reference (atomic), a replica taking
 * the main route's rules with its endpoint snapshot, so that a reload
 * never changes rules under a worker that is matching with them. */
typedef struct route_ab {
	int refs;                     /* atomic */
	match_set *match;             /* NULL: no A/B match */
	char cookie[ROUTE_COOKIE_LEN];/* cookieName, "" without affinity */
	size_t cookie_len;
	long long max_age;            /* its Max-Age, seconds */
	char pcookie[ROUTE_COOKIE_LEN]; /* primaryCookieName, or "" */
	size_t pcookie_len;
	long long pmax_age;           /* the analysis interval, seconds */
	char attrs[ROUTE_ATTRS_LEN];  /* "; Domain=d; HttpOnly; Path=/..." */
} route_ab;

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
	int mirror;                   /* % of stable's requests copied to the
	                                 canary, 0..100 (atomic; mirror.c) */
	uint64_t rollout;             /* the rollout's identity while one is active
	                               * (phase Progressing .. Promoting), 0
	                               * when none (atomic) */
	route_ab *ab;                 /* request rules (this loop's), or NULL */
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
	size_t nobj;                  /* listener, timers + cconns, upconns and
	                                 mconns not yet freed */
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
	/* mirroring (mirror.c): this loop's copies to the canary */
	mconn *mirrors;               /* every mirror connection not yet freed */
	mconn *m_idle[MIRROR_IDLE_MAX]; /* keep-alive mirror connections, LIFO */
	size_t n_m_idle;
	size_t m_busy;                /* copies in flight */
	size_t m_bytes;               /* bytes they hold, not yet written */
	int m_acc;                    /* share accumulator: exact mirrorWeight */
	uv_check_t m_check;           /* sends the queued copies, after the turn's
	                                 client work (mirror.c) */
	uv_idle_t m_kick;             /* active while copies are queued: the poll
	                                 does not block before m_check runs */
	mconn *m_q, *m_q_tail;        /* copies with bytes to send or a connection
	                                 to open, oldest first (m->q_next) */
	uint64_t m_logged_ms;         /* when a canary failure was last logged */
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
	mconn *mirror;                /* its copy to the canary, while the copy
	                                 still takes body bytes from it */
};

/* A connection to a canary endpoint that carries copies of requests
 * (mirror.c), one at a time, kept alive between them. A copy owns its
 * bytes: the head and the body bytes taken from the client's request are
 * copied into <buf> as the request goes to stable, and written from there
 * as fast as the canary reads, so the client's connection never waits on
 * the canary; the answer is parsed for its status and end, then dropped. */
typedef enum { M_IDLE, M_SEND, M_DONE } mstate;

struct mconn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	uv_timer_t timer;             /* connect, response, or idle deadline */
	proxy *p;
	endpoint *ep;                 /* holds a reference */
	route *r;                     /* the copy's route, referenced while busy */
	cconn *c;                     /* the request its body comes from, or NULL */
	mconn *prev, *next;           /* in p->mirrors */
	mconn *q_next;                /* in p->m_q, when <queued> */
	bool queued;
	int open;                     /* handles not yet closed */
	mstate state;                 /* M_IDLE: pooled, or new and unused */
	bool connected, closing, w_pending;
	bool connecting;              /* the connect was started */
	bool reused;                  /* the copy went on a kept-alive connection */
	bool retried;                 /* sent again after the keep-alive race */
	bool whole;                   /* buf still holds the whole copy from 0 */
	bool body_done;               /* every body byte is in buf */
	bool idempotent;
	bool is_head;                 /* a HEAD: the answer has no body */
	bool resp_started;
	uint64_t t0;                  /* uv_hrtime() of the client's request head */
	size_t woff, wlen, wpend;     /* buf[woff..wlen) unsent, wpend of it in flight */
	size_t held;                  /* bytes counted in p->m_bytes */
	size_t rlen;                  /* rbuf bytes (a head being read) */
	rstate rs;
	http_body rbody;
	uint64_t rleft;
	http_chunked rck;
	http_response resp;
	char rbuf[HTTP_MAX_HEAD];     /* the answer's head; its body is dropped */
	char buf[MIRROR_BUF];
};

typedef struct snapshot snapshot; /* workers.c */

#endif
