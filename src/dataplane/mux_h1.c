/* mux_h1.c - the built-in proxy's HTTP/1.1 client connections: a state
 * machine per connection (idle, a request, a tunnel) that reads a request
 * head, rewrites it for the upstream, pumps the bodies both ways with
 * back-pressure, forwards the response and decides what is kept alive;
 * plus accepting connections and their timers. See proxy-t.h for the
 * buffers a connection owns. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include "dataplane.h"
#include "list.h"
#include "log.h"
#include "util.h"

static void c_advance_loop(cconn *c);

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
void h1_up_deadline(cconn *c, uint64_t ms)
{
	lt_set(&c->utimer, ut_fire, &c->u_due, &c->u_armed, ms);
}

/* Sets the client (head/idle/linger) deadline <ms> from now; 0: none. */
static void ct_set(cconn *c, uint64_t ms)
{
	lt_set(&c->ctimer, ct_fire, &c->c_due, &c->c_armed, ms);
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

/* Appends Host value <h> of <n> bytes with "-shadow" after the host name
 * (before a ":PORT"), as Istio's (Envoy's) mirror does, so that the
 * canary, its logs and its metrics can tell a copy from a request. */
static void out_shadow_host(hbuf *o, const char *h, size_t n)
{
	size_t host = n;
	for (size_t i = n; i-- > 0;) {
		if (h[i] == ':') {
			host = i;
			break;
		}
		if (h[i] < '0' || h[i] > '9')
			break;   /* no port; an IPv6 literal ends with ']' */
	}
	out_put(o, h, host);
	out_str(o, "-shadow");
	out_put(o, h + host, n - host);
}

/* Builds the upstream head of the parsed request into <out> (<cap>
 * bytes), its length into *len; with <shadow>, the head of a copy to the
 * canary (mirror.c): Host "NAME-shadow" and X-Canaryd-Mirror: 1. Returns
 * false when it does not fit. */
static bool build_head(cconn *c, char *out, size_t cap, bool shadow, size_t *len)
{
	const http_request *q = &c->io->req;
	hbuf o = { out, 0, cap, false };
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
		if (shadow)
			out_shadow_host(&o, q->authority, q->authority_len);
		else
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
		if (shadow && name_is(h, "host")) {
			out_str(&o, "Host: ");
			out_shadow_host(&o, h->value, h->value_len);
			out_str(&o, "\r\n");
			continue;
		}
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
	if (shadow)
		out_str(&o, "X-Canaryd-Mirror: 1\r\n");
	out_str(&o, "\r\n");
	*len = o.n;
	return !o.over;
}

static bool build_request_head(cconn *c)
{
	return build_head(c, c->io->reqhead, sizeof c->io->reqhead, false, &c->reqhead_len);
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
	/* session affinity (route_pick_request): on the final response */
	if (c->io->setcookie_len && s->status >= 200)
		out_put(&o, c->io->setcookie, c->io->setcookie_len);
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
void h1_fail(cconn *c, int status)
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
	LIST_UNLINK(p->clients, c);
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
	mirror_detach(c);   /* a copy still waiting for body bytes */
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
void h1_close(cconn *c)
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
	int t = route_pick_request(c->r, &c->io->req, c->io->setcookie,
	                           sizeof c->io->setcookie, &c->io->setcookie_len);
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
	mconn *m = LD((c->r->src ? c->r->src : c->r)->mirror) > 0 ? mirror_begin(c) : NULL;
	if (m) {
		size_t n;
		mirror_go(c, m, build_head(c, m->buf, sizeof m->buf, true, &n) ? n : 0);
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
		if (c->mirror && c->state == C_REQ)
			mirror_feed(c, c->io->cbuf + c->coff, k);
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
	if (c->mirror && c->state == C_REQ)
		mirror_feed(c, c->io->cbuf + c->coff, k);   /* written from there */
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
void h1_cut(cconn *c, const char *what, int status)
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
void h1_advance(cconn *c)
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
	LIST_PUSH(p->clients, c);
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
void h1_on_connection(uv_stream_t *server, int status)
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

void h1_resume_accepting(proxy *p)
{
	if (p->accept_paused && p->listening && !p->closing && !at_limit(p)) {
		p->accept_paused = false;
		accept_one(p);
	}
}
