/* upstream.c - canaryd-upstream: a small, fast HTTP/1.1 server on libuv that
 * names itself, used by the demo, the end-to-end tests and the benchmark as
 * the stable and canary instances behind canaryd.
 *
 *   canaryd-upstream --listen 127.0.0.1:9001 --name v1 [--fail-rate 0.2]
 *                    [--fail-status 500] [--latency-ms N] [--body-size N]
 *                    [--seed S]
 *
 * Every response carries "X-Upstream: NAME" and the body "NAME\n" (or
 * --body-size bytes), framed by Content-Length. Connections are kept alive
 * (HTTP/1.1 by default, HTTP/1.0 with "Connection: keep-alive") and
 * pipelined requests are answered in order. Request bodies, Content-Length
 * or chunked, are read and thrown away. Requests are parsed with canaryd's
 * own parser (src/base/http.h), so the tests exercise it from the other side too.
 *
 * Failures are exact rather than random, so tests can assert precise
 * shares: request i (counting from --seed, /healthz excluded) fails when
 * floor((i+1)*rate) > floor(i*rate); a rate of 0.2 fails exactly one
 * request in every five. GET /healthz always answers 200 at once.
 *
 * Responses are built once at start-up and written straight from those
 * buffers, so a request costs no allocation; a connection owns one input
 * buffer. With --latency-ms a connection answers its requests one after
 * the other, each after the delay (pipelined requests thus wait in turn). */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <uv.h>

#include "http.h"
#include "resolve.h"
#include "util.h"

#define IN_INITIAL 4096
#define IN_MAX (HTTP_MAX_HEAD + 16384)   /* a head must fit, plus what follows it */
#define OUT_BATCH 64                     /* buffers gathered into one write */
#define WRITE_HIGH (1u << 20)            /* stop reading above this backlog */
#define LINGER_MS 2000                   /* after our FIN, wait this long for the peer's */
#define PPM 1000000ULL

/* Where a connection stands in the request it is reading. */
typedef enum {
	ST_HEAD,      /* waiting for (more of) a request head */
	ST_BODY_LEN,  /* discarding <body_left> bytes of body */
	ST_BODY_CHUNKED, /* discarding a chunked body */
	ST_WAIT,      /* request complete; response delayed by --latency-ms */
	ST_DONE,      /* last response queued (close); reading only to drain */
} conn_state;

/* How the response speaks about the connection. */
enum { MODE_KEEP11 = 0,   /* HTTP/1.1 keep-alive: nothing to say */
       MODE_KEEP10,       /* HTTP/1.0 keep-alive: "Connection: keep-alive" */
       MODE_CLOSE,        /* "Connection: close", then we close */
       N_MODES };

/* One prebuilt response: a head and, unless it answers HEAD, the body. */
typedef struct response {
	uv_buf_t head;
	bool with_body;
} response;

typedef struct server {
	uv_loop_t *loop;
	uv_tcp_t listener;
	uv_signal_t sig_term, sig_int;
	const char *name;
	const char *listen;
	int fail_status;
	uint64_t rate_ppm;        /* fail rate in millionths */
	uint64_t latency_ms;
	uint64_t counter;         /* requests counted for the fail rate */
	uv_buf_t body;
	response ok[N_MODES][2];  /* [mode][is_head] */
	response fail[N_MODES][2];
	uv_buf_t err400, err431, err505, cont100;
	struct conn *conns;       /* every open connection, to close on SIGTERM */
	bool stopping;
} server;

typedef struct conn {
	uv_tcp_t tcp;
	uv_timer_t timer;         /* --latency-ms delay, then the linger timeout */
	uv_shutdown_t shut_req;
	server *srv;
	struct conn *prev, *next; /* server->conns */
	int refs;                 /* open handles + writes + shutdown in flight */
	char *in;                 /* unparsed input in[off..len) */
	size_t in_len, in_off, in_cap;
	conn_state state;
	uint64_t body_left;
	http_chunked chunked;
	const response *pending;  /* the answer to the request being read */
	bool pending_close;       /* close after <pending> */
	bool pending_delay;       /* answer after --latency-ms */
	uv_buf_t out[OUT_BATCH];  /* gathered for the next write */
	unsigned n_out;
	bool reading, eof, closing, shutting, shut_done;
} conn;

typedef struct write_req {
	uv_write_t req;
	conn *c;
} write_req;

static void conn_process(conn *c);
static void conn_start_reading(conn *c);

/* ---- connection lifetime ---------------------------------------------- */

static void conn_unref(conn *c)
{
	if (--c->refs > 0)
		return;
	if (c->prev)
		c->prev->next = c->next;
	else
		c->srv->conns = c->next;
	if (c->next)
		c->next->prev = c->prev;
	free(c->in);
	free(c);
}

static void on_handle_close(uv_handle_t *h)
{
	conn_unref(h->data);
}

/* Closes both handles; <c> is freed once they and every write are done. */
static void conn_close(conn *c)
{
	if (c->closing)
		return;
	c->closing = true;
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->tcp, on_handle_close);
	uv_close((uv_handle_t *)&c->timer, on_handle_close);
}

static void on_linger(uv_timer_t *t)
{
	conn_close(t->data);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
	conn *c = req->data;
	c->shut_done = true;
	/* the peer has seen everything; wait a little for its FIN so that
	 * closing with unread input does not reset what it has not yet read */
	if (status < 0 || c->eof)
		conn_close(c);
	else if (!c->closing)
		uv_timer_start(&c->timer, on_linger, LINGER_MS, 0);
	conn_unref(c);
}

/* Sends FIN after the queued writes, then closes. */
static void conn_shutdown(conn *c)
{
	if (c->shutting || c->closing)
		return;
	c->shutting = true;
	c->state = ST_DONE;
	c->shut_req.data = c;
	if (uv_shutdown(&c->shut_req, (uv_stream_t *)&c->tcp, on_shutdown) < 0) {
		conn_close(c);
		return;
	}
	c->refs++;
}

/* ---- output ------------------------------------------------------------ */

static void on_write(uv_write_t *req, int status)
{
	write_req *w = (write_req *)req;
	conn *c = w->c;
	free(w);
	if (status < 0) {
		conn_close(c);
	} else if (!c->closing && !c->reading && !c->eof &&
	           c->tcp.write_queue_size < WRITE_HIGH / 4) {
		/* the backlog drained: take more requests */
		conn_process(c);
	}
	conn_unref(c);
}

/* Writes what has been gathered in c->out, in one system call if it can. */
static void conn_flush(conn *c)
{
	if (!c->n_out || c->closing) {
		c->n_out = 0;
		return;
	}
	write_req *w = xmalloc(sizeof *w);
	w->c = c;
	/* the buffers are the server's prebuilt responses: they outlive the write */
	int rc = uv_write(&w->req, (uv_stream_t *)&c->tcp, c->out, c->n_out, on_write);
	c->n_out = 0;
	if (rc < 0) {
		free(w);
		conn_close(c);
		return;
	}
	c->refs++;
}

static void conn_put(conn *c, uv_buf_t b)
{
	if (c->n_out == OUT_BATCH)
		conn_flush(c);
	c->out[c->n_out++] = b;
}

/* Queues the response to the request just read, and closes after it when
 * the request asked to. */
static void conn_respond(conn *c)
{
	const response *r = c->pending;
	conn_put(c, r->head);
	if (r->with_body && c->srv->body.len)
		conn_put(c, c->srv->body);
	c->pending = NULL;
	if (c->pending_close) {
		conn_flush(c);
		conn_shutdown(c);
	} else {
		c->state = ST_HEAD;
	}
}

/* Answers a malformed request and closes. */
static void conn_refuse(conn *c, uv_buf_t resp)
{
	conn_put(c, resp);
	conn_flush(c);
	conn_shutdown(c);
}

/* ---- input ------------------------------------------------------------- */

static bool is_healthz(const http_request *r)
{
	static const char p[] = "/healthz";
	size_t l = sizeof p - 1;
	return r->target_len >= l && memcmp(r->target, p, l) == 0 &&
	       (r->target_len == l || r->target[l] == '?');
}

/* True when the next counted request is one of the failing share. */
static bool next_fails(server *s)
{
	uint64_t i = s->counter++;
	return ((i + 1) * s->rate_ppm) / PPM > (i * s->rate_ppm) / PPM;
}

static void on_delay(uv_timer_t *t)
{
	conn *c = t->data;
	conn_respond(c);
	if (!c->closing && !c->shutting)
		conn_process(c);
}

/* The request (head and body) has been read: answer now or after the delay. */
static void request_done(conn *c)
{
	if (c->pending_delay) {
		c->state = ST_WAIT;
		uv_timer_start(&c->timer, on_delay, c->srv->latency_ms, 0);
	} else {
		conn_respond(c);
	}
}

/* Reads a new request head at in[off..len). Returns false when more input
 * is needed or the connection is done. */
static bool take_head(conn *c)
{
	server *s = c->srv;
	size_t avail = c->in_len - c->in_off;
	if (!avail)
		return false;
	http_request req;
	int r = http_parse_request(c->in + c->in_off, avail, &req);
	if (r == HTTP_INCOMPLETE) {
		if (avail >= HTTP_MAX_HEAD)
			conn_refuse(c, s->err431);
		return false;
	}
	if (r < 0) {
		conn_refuse(c, r == HTTP_E_TOO_LARGE ? s->err431
		               : r == HTTP_E_VERSION ? s->err505 : s->err400);
		return false;
	}
	c->in_off += (size_t)r;
	bool health = is_healthz(&req);
	int mode = !req.keep_alive ? MODE_CLOSE : req.minor == 0 ? MODE_KEEP10 : MODE_KEEP11;
	bool fails = !health && next_fails(s);
	c->pending = fails ? &s->fail[mode][req.is_head] : &s->ok[mode][req.is_head];
	c->pending_close = !req.keep_alive;
	if (req.expect_continue && req.body != HTTP_BODY_NONE)
		conn_put(c, s->cont100);
	c->pending_delay = s->latency_ms > 0 && !health;
	switch (req.body) {
	case HTTP_BODY_LENGTH:
		if (req.content_length > 0) {
			/* the delay starts once the body is in */
			c->state = ST_BODY_LEN;
			c->body_left = req.content_length;
			return true;
		}
		break;
	case HTTP_BODY_CHUNKED:
		c->state = ST_BODY_CHUNKED;
		http_chunked_init(&c->chunked);
		return true;
	default:
		break;
	}
	request_done(c);
	return true;
}

/* Parses and answers whatever complete requests sit in the input buffer,
 * then flushes the answers and decides whether to keep reading. */
static void conn_process(conn *c)
{
	server *s = c->srv;
	bool more = true;
	while (more && !c->closing && !c->shutting) {
		size_t avail = c->in_len - c->in_off;
		switch (c->state) {
		case ST_HEAD:
			more = take_head(c);
			break;
		case ST_BODY_LEN: {
			size_t n = avail < c->body_left ? avail : (size_t)c->body_left;
			c->in_off += n;
			c->body_left -= n;
			if (c->body_left == 0)
				request_done(c);
			else
				more = false;
			break;
		}
		case ST_BODY_CHUNKED: {
			bool done = false;
			ssize_t n = avail ? http_chunked_scan(&c->chunked, c->in + c->in_off, avail, &done) : 0;
			if (n < 0) {
				conn_refuse(c, s->err400);
				more = false;
				break;
			}
			c->in_off += (size_t)n;
			if (done)
				request_done(c);
			else
				more = false;
			break;
		}
		case ST_WAIT:
		case ST_DONE:
			more = false;
			break;
		}
	}
	/* keep the unparsed bytes at the front of the buffer */
	if (c->in_off) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->in_off = 0;
	}
	conn_flush(c);
	if (c->closing)
		return;
	if (c->eof) {
		/* the peer sent all it will: answer what is pending, then close */
		if (c->state != ST_WAIT)
			conn_shutdown(c);
		return;
	}
	/* read on unless the buffer is full while a delayed answer holds the
	 * queue, or the peer does not read its answers */
	bool full = c->in_len == IN_MAX && c->state != ST_DONE;
	bool backlog = c->tcp.write_queue_size >= WRITE_HIGH;
	bool want = !full && !backlog;
	if (want && !c->reading) {
		conn_start_reading(c);
	} else if (!want && c->reading) {
		uv_read_stop((uv_stream_t *)&c->tcp);
		c->reading = false;
	}
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	conn *c = h->data;
	if (c->state == ST_DONE) {
		/* draining after the last answer: read over what is there */
		c->in_len = 0;
		c->in_off = 0;
	}
	if (c->in_cap - c->in_len < 1024 && c->in_cap < IN_MAX) {
		size_t cap = c->in_cap * 2 > IN_MAX ? IN_MAX : c->in_cap * 2;
		c->in = xrealloc(c->in, cap);
		c->in_cap = cap;
	}
	*b = uv_buf_init(c->in + c->in_len, (unsigned)(c->in_cap - c->in_len));
}

static void on_read(uv_stream_t *st, ssize_t n, const uv_buf_t *b)
{
	conn *c = st->data;
	if (n == 0)
		return;
	if (n < 0) {
		if (n != UV_EOF || c->shut_done) {
			/* ECONNRESET and friends, or the FIN we lingered for */
			conn_close(c);
			return;
		}
		c->eof = true;
		uv_read_stop(st);
		c->reading = false;
		conn_process(c);
		return;
	}
	if (c->state == ST_DONE)
		return;   /* input after "Connection: close" is ignored */
	c->in_len += (size_t)n;
	conn_process(c);
}

static void conn_start_reading(conn *c)
{
	if (uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) < 0)
		conn_close(c);
	else
		c->reading = true;
}

static void on_connection(uv_stream_t *ls, int status)
{
	server *s = ls->data;
	if (status < 0) {
		fprintf(stderr, "canaryd-upstream %s: cannot accept: %s\n", s->name, uv_strerror(status));
		return;
	}
	conn *c = xcalloc(1, sizeof *c);
	c->srv = s;
	uv_tcp_init(s->loop, &c->tcp);
	uv_timer_init(s->loop, &c->timer);
	c->tcp.data = c;
	c->timer.data = c;
	c->refs = 2;
	c->next = s->conns;
	if (s->conns)
		s->conns->prev = c;
	s->conns = c;
	if (uv_accept(ls, (uv_stream_t *)&c->tcp) < 0) {
		conn_close(c);
		return;
	}
	uv_tcp_nodelay(&c->tcp, 1);
	c->in_cap = IN_INITIAL;
	c->in = xmalloc(c->in_cap);
	conn_start_reading(c);
}

/* ---- start-up ---------------------------------------------------------- */

static void on_signal(uv_signal_t *sig, int signum)
{
	server *s = sig->data;
	if (s->stopping)
		return;
	s->stopping = true;
	uv_close((uv_handle_t *)&s->listener, NULL);
	uv_close((uv_handle_t *)&s->sig_term, NULL);
	uv_close((uv_handle_t *)&s->sig_int, NULL);
	for (conn *c = s->conns; c; c = c->next)
		conn_close(c);
}

static uv_buf_t make_buf(buf *b)
{
	uv_buf_t u = uv_buf_init(b->p, (unsigned)b->len);
	*b = (buf)BUF_INIT;   /* the server owns the memory now */
	return u;
}

static uv_buf_t make_head(const server *s, int status, int mode, size_t content_length)
{
	static const char *conn_hdr[N_MODES] = { "", "Connection: keep-alive\r\n",
	                                         "Connection: close\r\n" };
	buf b = BUF_INIT;
	buf_printf(&b, "HTTP/1.1 %d %s\r\nX-Upstream: %s\r\nContent-Type: text/plain\r\n"
	           "Content-Length: %zu\r\n%s\r\n",
	           status, http_reason(status), s->name, content_length, conn_hdr[mode]);
	return make_buf(&b);
}

/* Builds every response the server can send. */
static void build_responses(server *s, size_t body_size, bool body_size_set)
{
	buf b = BUF_INIT;
	if (!body_size_set) {
		buf_printf(&b, "%s\n", s->name);
	} else {
		/* the name repeated, cut to size, ending in a newline */
		size_t nl = strlen(s->name) + 1;
		for (size_t i = 0; i < body_size; i++) {
			char ch = (i % nl == nl - 1) ? '\n' : s->name[i % nl];
			if (i == body_size - 1)
				ch = '\n';
			buf_append(&b, &ch, 1);
		}
	}
	size_t len = b.len;
	s->body = b.len ? make_buf(&b) : uv_buf_init(NULL, 0);
	for (int m = 0; m < N_MODES; m++) {
		for (int h = 0; h < 2; h++) {
			s->ok[m][h].head = make_head(s, 200, m, len);
			s->ok[m][h].with_body = !h;
			s->fail[m][h].head = make_head(s, s->fail_status, m, len);
			s->fail[m][h].with_body = !h;
		}
	}
	static const int errs[3] = { 400, 431, 505 };
	uv_buf_t *dst[3] = { &s->err400, &s->err431, &s->err505 };
	for (int i = 0; i < 3; i++) {
		buf e = BUF_INIT;
		buf_printf(&e, "HTTP/1.1 %d %s\r\nX-Upstream: %s\r\nContent-Length: 0\r\n"
		           "Connection: close\r\n\r\n", errs[i], http_reason(errs[i]), s->name);
		*dst[i] = make_buf(&e);
	}
	buf cont = BUF_INIT;
	buf_puts(&cont, "HTTP/1.1 100 Continue\r\n\r\n");
	s->cont100 = make_buf(&cont);
}

static void free_responses(server *s)
{
	free(s->body.base);
	for (int m = 0; m < N_MODES; m++) {
		for (int h = 0; h < 2; h++) {
			free(s->ok[m][h].head.base);
			free(s->fail[m][h].head.base);
		}
	}
	free(s->err400.base);
	free(s->err431.base);
	free(s->err505.base);
	free(s->cont100.base);
}

static const char usage[] =
	"usage: canaryd-upstream --listen HOST:PORT [--name NAME] [--fail-rate R]\n"
	"                        [--fail-status CODE] [--latency-ms N] [--body-size N] [--seed S]\n"
	"\n"
	"  --listen HOST:PORT  where to listen (loopback)\n"
	"  --name NAME         sent as 'X-Upstream: NAME' and as the body 'NAME\\n' (default upstream)\n"
	"  --fail-rate R       share of requests (0..1) answered with --fail-status, exactly:\n"
	"                      request i fails when floor((i+1)*R) > floor(i*R)\n"
	"  --fail-status CODE  status of the failing share, 400..599 (default 500)\n"
	"  --latency-ms N      delay every answer by N ms (not /healthz)\n"
	"  --body-size N       answer N bytes of body instead of 'NAME\\n'\n"
	"  --seed S            start the request count at S (shifts which requests fail)\n";

static int bad_usage(const char *fmt, const char *arg)
{
	fputs("canaryd-upstream: ", stderr);
	fprintf(stderr, fmt, arg);
	fputc('\n', stderr);
	fputs(usage, stderr);
	return 2;
}

/* Parses a whole number in [lo, hi]. Returns 0 or -1. */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	errno = 0;
	if (!*s || *s == '-')
		return -1;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -1;
	*out = v;
	return 0;
}

/* Lifts the open-file limit to its maximum: wrk -c1000 needs the files. */
static void raise_nofile(void)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

int main(int argc, char **argv)
{
	server s;
	memset(&s, 0, sizeof s);
	s.name = "upstream";
	s.fail_status = 500;
	uint64_t body_size = 0;
	bool body_size_set = false;
	double rate = 0;

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
			fputs(usage, stdout);
			return 0;
		}
		const char *v = NULL;
		const char *eq = strchr(a, '=');
		char opt[64];
		if (a[0] == '-' && a[1] == '-' && eq && (size_t)(eq - a) < sizeof opt) {
			snprintf(opt, sizeof opt, "%.*s", (int)(eq - a), a);
			v = eq + 1;
		} else {
			snprintf(opt, sizeof opt, "%s", a);
			if (i + 1 < argc)
				v = argv[i + 1], i++;
		}
		if (!v)
			return bad_usage("option '%s' needs a value", a);
		uint64_t n;
		if (strcmp(opt, "--listen") == 0) {
			s.listen = v;
		} else if (strcmp(opt, "--name") == 0) {
			if (!*v || strpbrk(v, "\r\n"))
				return bad_usage("name '%s' must be one non-empty line", v);
			s.name = v;
		} else if (strcmp(opt, "--fail-rate") == 0) {
			char *end;
			rate = strtod(v, &end);
			if (!*v || *end || !(rate >= 0 && rate <= 1))
				return bad_usage("fail rate '%s' is not a number from 0 to 1", v);
		} else if (strcmp(opt, "--fail-status") == 0) {
			if (parse_u64(v, 400, 599, &n) < 0)
				return bad_usage("fail status '%s' is not a status from 400 to 599", v);
			s.fail_status = (int)n;
		} else if (strcmp(opt, "--latency-ms") == 0) {
			if (parse_u64(v, 0, 3600000, &s.latency_ms) < 0)
				return bad_usage("latency '%s' is not a number of milliseconds", v);
		} else if (strcmp(opt, "--body-size") == 0) {
			if (parse_u64(v, 0, 64u << 20, &body_size) < 0)
				return bad_usage("body size '%s' is not a number of bytes up to 64 MiB", v);
			body_size_set = true;
		} else if (strcmp(opt, "--seed") == 0) {
			if (parse_u64(v, 0, UINT32_MAX, &s.counter) < 0)
				return bad_usage("seed '%s' is not a whole number", v);
		} else {
			return bad_usage("unknown option '%s'", a);
		}
	}
	if (!s.listen)
		return bad_usage("%s", "--listen HOST:PORT is required");
	s.rate_ppm = (uint64_t)llround(rate * (double)PPM);

	struct sockaddr_storage sa;
	if (rsv_numeric(s.listen, &sa) < 0)
		return bad_usage("listen address '%s' is not a numeric HOST:PORT", s.listen);

	signal(SIGPIPE, SIG_IGN);
	raise_nofile();
	s.loop = uv_default_loop();
	build_responses(&s, (size_t)body_size, body_size_set);
	uv_tcp_init(s.loop, &s.listener);
	s.listener.data = &s;
	int rc = uv_tcp_bind(&s.listener, (const struct sockaddr *)&sa, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&s.listener, 4096, on_connection);
	if (rc < 0) {
		fprintf(stderr, "canaryd-upstream: cannot listen on '%s': %s\n", s.listen, uv_strerror(rc));
		uv_close((uv_handle_t *)&s.listener, NULL);
		uv_run(s.loop, UV_RUN_DEFAULT);
		uv_loop_close(s.loop);
		free_responses(&s);
		return 1;
	}
	uv_signal_init(s.loop, &s.sig_term);
	uv_signal_init(s.loop, &s.sig_int);
	s.sig_term.data = s.sig_int.data = &s;
	uv_signal_start(&s.sig_term, on_signal, SIGTERM);
	uv_signal_start(&s.sig_int, on_signal, SIGINT);
	fprintf(stderr, "canaryd-upstream %s listening on %s\n", s.name, s.listen);

	uv_run(s.loop, UV_RUN_DEFAULT);
	uv_loop_close(s.loop);
	free_responses(&s);
	return 0;
}
