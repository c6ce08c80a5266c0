/* loadgen.c - an open-loop, rate-limited HTTP/1.1 load generator for the
 * benchmarks (bench/mirror.sh): latency below saturation, which wrk cannot
 * measure.
 *
 *   loadgen [-c CONNECTIONS] [-r RATE] [-d SECONDS] [-w WARMUP_SECONDS]
 *           [-p PATH] [-t TIMEOUT_MS] HOST:PORT
 *
 * Why it exists: wrk is a closed loop (each connection sends its next
 * request when the last one is answered), so it drives a proxy to
 * saturation and a cost per request shows as latency; and when the server
 * stalls, wrk stops sending and the stall is measured once instead of for
 * every request that should have gone meanwhile ("coordinated omission").
 * wrk2 fixes both with a fixed send schedule, but wrk2 is not packaged for
 * Debian, and the benchmarks take their tools from Debian only; this is the
 * part of wrk2 the mirroring figure needs, on libuv.
 *
 * What it does: CONNECTIONS kept-alive connections to HOST:PORT (numeric,
 * loopback in the benchmarks); request i (GET PATH) is due at start +
 * i / RATE exactly, RATE requests a second in total. A due request goes
 * on any connection with no request outstanding, the oldest due first; a
 * request that finds none waits for one, and its latency is still counted
 * from when it was due (as wrk2 does: coordinated omission corrected). The
 * send schedule is kept by a timerfd armed at the next due time (with a
 * 1 ns timer slack), not by libuv's millisecond timers, which would send
 * in bursts and add up to a millisecond to each latency.
 *
 * Latencies go into a log-linear histogram in nanoseconds (HdrHistogram's
 * layout: 64 linear sub-buckets per power of two, each under 1.6 % of its
 * value wide); a percentile is its bucket's upper bound, never below the
 * true value. Requests due in the first WARMUP_SECONDS are sent but not
 * counted. It prints p50/p90/p99/p99.9/max, what was sent, the errors
 * (requests that failed on their connection, were not answered within
 * the timeout or by the end of the run; non-2xx answers apart) and the achieved
 * rate (answers counted / the time from the end of the warm-up to the last
 * answer), then one machine-readable line:
 *   LOADGEN rate=R asked=R sent=N done=N errors=N non2xx=N unsent=N
 *           p50=US p90=US p99=US p999=US max=US
 * (latencies in microseconds). Exit status 0, 1 when no request was
 * answered, 2 on a usage error.
 *
 * Everything is bounded: the run ends at its schedule's end plus TIMEOUT_MS
 * whatever happens (requests not sent by then are "unsent"), a request
 * outstanding for TIMEOUT_MS counts as an error and its connection is
 * replaced, and connections are replaced at most MAX_RECONNECTS times each. */
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>

#include "http.h"
#include "resolve.h"

#define MAX_CONNS 10000
#define MAX_RECONNECTS 100      /* per connection, over the run */
#define RECONNECT_MS 10         /* a failed connection is retried after this */
#define INBUF 16384             /* a response head must fit */
#define SUB_BITS 6              /* 64 sub-buckets per power of two */
#define SUB (1u << SUB_BITS)
#define MAX_EXP 40              /* latencies up to 2^40 ns (18 minutes) */
#define BUCKETS (SUB + (MAX_EXP - SUB_BITS + 1) * SUB)

typedef struct conn {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	uv_timer_t retry;
	int id;
	int open;                   /* handles not yet closed */
	bool connected, closing, busy, in_body;
	int reconnects;
	uint64_t idx;               /* the outstanding request's number */
	uint64_t sent_ns;           /* when it was written (timeouts) */
	http_response resp;
	http_body body;
	uint64_t left;
	http_chunked ck;
	size_t len;
	char buf[INBUF];
} conn;

static struct {
	uv_loop_t *loop;
	struct sockaddr_storage addr;
	const char *target;
	int n_conns;
	double rate;
	double secs, warmup;
	uint64_t timeout_ms;
	char req[1024];
	size_t req_len;
	conn **conns;
	int *idle;                  /* stack of idle connection ids */
	int n_idle;
	uint64_t total;             /* requests on the schedule */
	uint64_t first_measured;    /* the first request after the warm-up */
	uint64_t next;              /* the next request to send */
	uint64_t start_ns, measure_ns, last_done_ns;
	int tfd;
	uv_poll_t tpoll;
	uv_timer_t tick;            /* timeouts, the end */
	bool stopping;
	uint64_t sent, done, errors, non2xx;
	uint64_t hist[BUCKETS];
	uint64_t max_ns;
	char last_error[256];
} G;

/* ---- the histogram ------------------------------------------------------- */

static unsigned bucket_of(uint64_t v)
{
	if (v < SUB)
		return (unsigned)v;
	unsigned e = 63u - (unsigned)__builtin_clzll(v);   /* v's top bit, >= SUB_BITS */
	if (e > MAX_EXP)
		return BUCKETS - 1;
	unsigned sub = (unsigned)(v >> (e - SUB_BITS)) & (SUB - 1);
	return SUB + (e - SUB_BITS) * SUB + sub;
}

/* The largest value bucket <b> holds. */
static uint64_t bucket_top(unsigned b)
{
	if (b < SUB)
		return b;
	unsigned e = (b - SUB) / SUB + SUB_BITS, sub = (b - SUB) % SUB;
	return (((uint64_t)(SUB + sub) + 1) << (e - SUB_BITS)) - 1;
}

static void record_ns(uint64_t ns)
{
	G.hist[bucket_of(ns)]++;
	if (ns > G.max_ns)
		G.max_ns = ns;
}

/* The <q> quantile (0..1) in nanoseconds: the top of the bucket that holds
 * the ceil(q n)-th smallest latency; 0 when none was counted. */
static uint64_t quantile_ns(double q)
{
	uint64_t n = 0;
	for (unsigned b = 0; b < BUCKETS; b++)
		n += G.hist[b];
	if (n == 0)
		return 0;
	uint64_t rank = (uint64_t)ceil(q * (double)n), run = 0;
	if (rank < 1)
		rank = 1;
	for (unsigned b = 0; b < BUCKETS; b++) {
		run += G.hist[b];
		if (run >= rank)
			return bucket_top(b) < G.max_ns ? bucket_top(b) : G.max_ns;
	}
	return G.max_ns;
}

/* ---- the schedule ------------------------------------------------------ */

static uint64_t due_ns(uint64_t i)
{
	return G.start_ns + (uint64_t)((double)i * 1e9 / G.rate);
}

static void conn_start(conn *c);
static void dispatch(void);

static void set_error(const char *fmt, const char *what)
{
	snprintf(G.last_error, sizeof G.last_error, fmt, G.target, what);
}

/* Arms the timerfd at the next request's due time (CLOCK_MONOTONIC, which
 * uv_hrtime reads too). */
static void arm(uint64_t at_ns)
{
	struct itimerspec its = { { 0, 0 }, { (time_t)(at_ns / 1000000000u),
	                                      (long)(at_ns % 1000000000u) } };
	if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
		its.it_value.tv_nsec = 1;   /* 0 would disarm it */
	timerfd_settime(G.tfd, TFD_TIMER_ABSTIME, &its, NULL);
}

static void conn_drop(conn *c, const char *fmt, const char *why);

static void on_write(uv_write_t *w, int status)
{
	conn *c = w->data;
	if (status < 0 && status != UV_ECANCELED)
		conn_drop(c, "cannot write to '%s': %s", uv_strerror(status));
}

/* Sends request G.next on idle connection <c>. */
static void send_on(conn *c)
{
	c->busy = true;
	c->idx = G.next++;
	c->sent_ns = uv_hrtime();
	c->len = 0;
	c->in_body = false;
	G.sent++;
	uv_buf_t b = uv_buf_init(G.req, (unsigned)G.req_len);
	int n = uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
	if (n == UV_EAGAIN)
		n = 0;
	if (n >= 0 && (size_t)n < G.req_len) {
		b = uv_buf_init(G.req + n, (unsigned)(G.req_len - (size_t)n));
		n = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write);
	}
	if (n < 0)
		conn_drop(c, "cannot write to '%s': %s", uv_strerror(n));   /* counts it */
}

/* Sends every due request an idle connection can take, then arms the timer
 * for the next one (or leaves the rest to the next answer). */
static void dispatch(void)
{
	if (G.stopping)
		return;
	uint64_t now = uv_hrtime();
	/* bounded: each turn sends one request or stops */
	while (G.next < G.total && G.n_idle > 0 && due_ns(G.next) <= now)
		send_on(G.conns[G.idle[--G.n_idle]]);
	if (G.next < G.total && (G.n_idle > 0 || due_ns(G.next) > now))
		arm(due_ns(G.next));
}

static void on_timerfd(uv_poll_t *h, int status, int events)
{
	uint64_t expirations;
	if (read(G.tfd, &expirations, sizeof expirations) < 0 && errno != EAGAIN)
		return;
	dispatch();
}

/* ---- connections --------------------------------------------------------- */

static void retry_cb(uv_timer_t *t)
{
	conn_start(t->data);
}

static void conn_closed(uv_handle_t *h)
{
	conn *c = h->data;
	c->closing = false;
	c->connected = false;
	if (G.stopping)
		return;
	/* replaced, a bounded number of times */
	if (++c->reconnects > MAX_RECONNECTS)
		return;
	uv_timer_start(&c->retry, retry_cb, RECONNECT_MS, 0);
}

/* Closes <c> (its outstanding request, if any, counted as an error) and
 * replaces it after RECONNECT_MS. */
static void conn_drop(conn *c, const char *fmt, const char *why)
{
	if (c->closing)
		return;
	if (c->busy) {
		G.errors++;
		c->busy = false;
	} else if (c->connected) {
		for (int i = 0; i < G.n_idle; i++) {
			if (G.idle[i] == c->id) {
				G.idle[i] = G.idle[--G.n_idle];
				break;
			}
		}
	}
	if (fmt)
		set_error(fmt, why);
	c->closing = true;
	uv_close((uv_handle_t *)&c->tcp, conn_closed);
}

/* The answer to <c>'s request ended. */
static void answered(conn *c, bool keep)
{
	uint64_t now = uv_hrtime();
	c->busy = false;
	G.done++;
	if (c->resp.status < 200 || c->resp.status > 299)
		G.non2xx++;
	if (c->idx >= G.first_measured) {
		record_ns(now - due_ns(c->idx));
		G.last_done_ns = now;
	}
	if (!keep) {
		conn_drop(c, NULL, NULL);
		return;
	}
	G.idle[G.n_idle++] = c->id;
	dispatch();
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	conn *c = h->data;
	if (c->busy && !c->in_body)
		*b = uv_buf_init(c->buf + c->len, (unsigned)(sizeof c->buf - c->len));
	else
		*b = uv_buf_init(c->buf, sizeof c->buf);   /* body bytes: dropped */
}

/* Body bytes p[0..n) of the answer. */
static void body(conn *c, const char *p, size_t n)
{
	bool done = false;
	size_t k = n;
	switch (c->body) {
	case HTTP_BODY_NONE:
		done = true;
		k = 0;
		break;
	case HTTP_BODY_LENGTH:
		k = (uint64_t)n > c->left ? (size_t)c->left : n;
		c->left -= k;
		done = c->left == 0;
		break;
	case HTTP_BODY_CHUNKED: {
		ssize_t r = http_chunked_scan(&c->ck, p, n, &done);
		if (r < 0) {
			conn_drop(c, "'%s' sent an invalid chunked body%s", "");
			return;
		}
		k = (size_t)r;
		break;
	}
	case HTTP_BODY_UNTIL_CLOSE:
		return;   /* ends at the close */
	}
	if (!done)
		return;
	if (k < n) {
		conn_drop(c, "'%s' sent bytes after a response%s", "");
		return;
	}
	answered(c, c->resp.keep_alive);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	conn *c = s->data;
	if (nread == 0 || c->closing)
		return;
	if (nread < 0) {
		if (c->busy && c->in_body && c->body == HTTP_BODY_UNTIL_CLOSE && nread == UV_EOF)
			answered(c, false);
		else
			conn_drop(c, c->busy ? "'%s' closed the connection: %s" : NULL,
			          uv_strerror((int)nread));
		return;
	}
	if (!c->busy) {
		conn_drop(c, "'%s' sent bytes nobody asked for%s", "");
		return;
	}
	if (c->in_body) {
		body(c, b->base, (size_t)nread);
		return;
	}
	c->len += (size_t)nread;
	/* bounded: a 1xx head is skipped, each one shortens buf */
	for (int turn = 0; turn < 16; turn++) {
		int rc = http_parse_response(c->buf, c->len, false, &c->resp);
		if (rc == HTTP_INCOMPLETE) {
			if (c->len == sizeof c->buf)
				conn_drop(c, "'%s' sent a response head too large%s", "");
			return;
		}
		if (rc < 0) {
			conn_drop(c, "'%s' sent an invalid response head%s", "");
			return;
		}
		size_t rest = c->len - (size_t)rc;
		if (c->resp.status < 200) {
			memmove(c->buf, c->buf + rc, rest);
			c->len = rest;
			if (rest == 0)
				return;
			continue;
		}
		c->in_body = true;
		c->body = c->resp.body;
		c->left = c->resp.content_length;
		http_chunked_init(&c->ck);
		body(c, c->buf + rc, rest);
		return;
	}
	conn_drop(c, "'%s' sent too many interim responses%s", "");
}

static void on_connect(uv_connect_t *req, int status)
{
	conn *c = req->data;
	if (c->closing || G.stopping)
		return;
	if (status < 0) {
		conn_drop(c, "cannot connect to '%s': %s", uv_strerror(status));
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0) {
		conn_drop(c, "cannot read from '%s'%s", "");
		return;
	}
	c->connected = true;
	G.idle[G.n_idle++] = c->id;
	dispatch();
}

static void conn_start(conn *c)
{
	uv_tcp_init(G.loop, &c->tcp);
	c->tcp.data = c;
	c->creq.data = c;
	c->wreq.data = c;
	int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&G.addr, on_connect);
	if (rc < 0)
		conn_drop(c, "cannot connect to '%s': %s", uv_strerror(rc));
}

/* ---- the run ------------------------------------------------------------- */

static void stop(void)
{
	if (G.stopping)
		return;
	G.stopping = true;
	uv_poll_stop(&G.tpoll);
	uv_close((uv_handle_t *)&G.tpoll, NULL);
	uv_close((uv_handle_t *)&G.tick, NULL);
	for (int i = 0; i < G.n_conns; i++) {
		conn *c = G.conns[i];
		uv_close((uv_handle_t *)&c->retry, NULL);
		if (!c->closing && !uv_is_closing((uv_handle_t *)&c->tcp)) {
			if (c->busy) {
				G.errors++;   /* not answered by the end */
				c->busy = false;
			}
			uv_close((uv_handle_t *)&c->tcp, NULL);
		}
	}
}

/* Every 10 ms: requests outstanding for the timeout fail; the run ends when
 * the schedule is done and answered, or at its end plus the timeout. */
static void tick_cb(uv_timer_t *t)
{
	uint64_t now = uv_hrtime();
	for (int i = 0; i < G.n_conns; i++) {
		conn *c = G.conns[i];
		if (c->busy && !c->closing && now - c->sent_ns >= G.timeout_ms * 1000000u)
			conn_drop(c, "'%s' did not answer within the timeout%s", "");
	}
	bool idle = true;
	for (int i = 0; i < G.n_conns && idle; i++)
		idle = !G.conns[i]->busy;
	uint64_t end = due_ns(G.total);
	if ((G.next == G.total && idle) || now >= end + G.timeout_ms * 1000000u)
		stop();
}

static void usage(void)
{
	fprintf(stderr, "usage: loadgen [-c CONNECTIONS] [-r RATE] [-d SECONDS] [-w WARMUP_SECONDS]\n"
	                "               [-p PATH] [-t TIMEOUT_MS] HOST:PORT\n");
	exit(2);
}

/* A number in [lo, hi] from option <opt>'s <s>, or exits 2. */
static double number(const char *opt, const char *s, double lo, double hi)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v >= lo && v <= hi)) {
		fprintf(stderr, "loadgen: %s '%s' is not a number in [%g, %g]\n", opt, s, lo, hi);
		exit(2);
	}
	return v;
}

int main(int argc, char **argv)
{
	G.n_conns = 10;
	G.rate = 1000;
	G.secs = 5;
	G.warmup = 0;
	G.timeout_ms = 2000;
	const char *path = "/";
	int i = 1;
	for (; i < argc && argv[i][0] == '-'; i++) {
		const char *o = argv[i];
		if (i + 1 >= argc || o[1] == 0 || o[2] != 0)
			usage();
		const char *v = argv[++i];
		switch (o[1]) {
		case 'c': G.n_conns = (int)number(o, v, 1, MAX_CONNS); break;
		case 'r': G.rate = number(o, v, 1, 10e6); break;
		case 'd': G.secs = number(o, v, 0.1, 86400); break;
		case 'w': G.warmup = number(o, v, 0, 3600); break;
		case 't': G.timeout_ms = (uint64_t)number(o, v, 1, 3600e3); break;
		case 'p': path = v; break;
		default: usage();
		}
	}
	if (i + 1 != argc)
		usage();
	G.target = argv[i];
	if (path[0] != '/' || strpbrk(path, " \r\n")) {
		fprintf(stderr, "loadgen: path '%s' is not an origin-form target\n", path);
		return 2;
	}
	if (rsv_numeric(G.target, &G.addr) < 0) {
		fprintf(stderr, "loadgen: '%s' is not a numeric HOST:PORT\n", G.target);
		return 2;
	}
	int n = snprintf(G.req, sizeof G.req, "GET %s HTTP/1.1\r\nHost: %s\r\n"
	                 "User-Agent: canaryd-loadgen\r\n\r\n", path, G.target);
	if (n < 0 || (size_t)n >= sizeof G.req) {
		fprintf(stderr, "loadgen: path '%s' is too long\n", path);
		return 2;
	}
	G.req_len = (size_t)n;
	double total = G.rate * (G.warmup + G.secs);
	if (total > 1e10) {
		fprintf(stderr, "loadgen: %.0f requests is too many for one run\n", total);
		return 2;
	}
	G.total = (uint64_t)total;
	G.first_measured = (uint64_t)(G.rate * G.warmup);
	/* the send schedule is kept to the microsecond: the kernel may
	 * otherwise wake the timer 50 us late (the default timer slack) */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
	G.tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (G.tfd < 0) {
		perror("loadgen: timerfd_create");
		return 1;
	}

	G.loop = uv_default_loop();
	G.conns = calloc((size_t)G.n_conns, sizeof *G.conns);
	G.idle = calloc((size_t)G.n_conns, sizeof *G.idle);
	if (!G.conns || !G.idle) {
		fprintf(stderr, "loadgen: out of memory\n");
		return 1;
	}
	uv_poll_init(G.loop, &G.tpoll, G.tfd);
	uv_poll_start(&G.tpoll, UV_READABLE, on_timerfd);
	uv_timer_init(G.loop, &G.tick);
	uv_timer_start(&G.tick, tick_cb, 10, 10);
	/* the schedule starts once the connections had a moment to open */
	G.start_ns = uv_hrtime() + 50000000u;
	G.measure_ns = due_ns(G.first_measured);
	G.last_done_ns = G.measure_ns;
	for (int k = 0; k < G.n_conns; k++) {
		conn *c = calloc(1, sizeof *c);
		if (!c) {
			fprintf(stderr, "loadgen: out of memory\n");
			return 1;
		}
		c->id = k;
		uv_timer_init(G.loop, &c->retry);
		c->retry.data = c;
		G.conns[k] = c;
		conn_start(c);
	}
	arm(G.start_ns);
	uv_run(G.loop, UV_RUN_DEFAULT);

	uint64_t measured = 0;
	for (unsigned b = 0; b < BUCKETS; b++)
		measured += G.hist[b];
	double span = (double)(G.last_done_ns - G.measure_ns) / 1e9;
	/* the span is at least the window asked: answers that came early do
	 * not make the rate higher than was sent */
	if (span < G.secs)
		span = G.secs;
	double achieved = (double)measured / span;
	uint64_t unsent = G.total - G.next;
	printf("loadgen: %s, %d connections, %.0f req/s asked for %.1f s (+%.1f s warm-up)\n",
	       G.target, G.n_conns, G.rate, G.secs, G.warmup);
	printf("  latency from each request's due time (ms): p50 %.3f  p90 %.3f  p99 %.3f  "
	       "p99.9 %.3f  max %.3f\n", quantile_ns(0.5) / 1e6, quantile_ns(0.9) / 1e6,
	       quantile_ns(0.99) / 1e6, quantile_ns(0.999) / 1e6, G.max_ns / 1e6);
	printf("  sent %" PRIu64 ", answered %" PRIu64 " (%" PRIu64 " not 2xx), errors %" PRIu64
	       ", unsent %" PRIu64 "; achieved %.1f req/s\n", G.sent, G.done, G.non2xx, G.errors,
	       unsent, achieved);
	if (G.last_error[0])
		printf("  last error: %s\n", G.last_error);
	printf("LOADGEN rate=%.1f asked=%.1f sent=%" PRIu64 " done=%" PRIu64 " errors=%" PRIu64
	       " non2xx=%" PRIu64 " unsent=%" PRIu64 " p50=%" PRIu64 " p90=%" PRIu64
	       " p99=%" PRIu64 " p999=%" PRIu64 " max=%" PRIu64 "\n", achieved, G.rate, G.sent,
	       G.done, G.errors, G.non2xx, unsent, quantile_ns(0.5) / 1000, quantile_ns(0.9) / 1000,
	       quantile_ns(0.99) / 1000, quantile_ns(0.999) / 1000, G.max_ns / 1000);
	for (int k = 0; k < G.n_conns; k++)
		free(G.conns[k]);
	free(G.conns);
	free(G.idle);
	close(G.tfd);
	return G.done > 0 ? 0 : 1;
}
