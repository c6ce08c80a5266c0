/* mirror.c - zero-traffic canaries: copies of the requests routed to
 * stable, sent to a canary endpoint (analysis.mirror; Istio's mirror, as
 * Flagger's blue/green with mirror uses it). The client is answered by
 * stable alone; the canary's answer is read to its end and dropped, and
 * its status and latency are recorded as a canary request, so that the
 * analysis judges the canary on copies while its weight is 0.
 *
 * A copy never holds the client back. Its head and the body bytes taken
 * from the client's request (as they go to stable) are copied into the
 * copy's own buffer (mconn.buf) and written from there as fast as the
 * canary reads: the client's buffers are never shared and its connection
 * never waits. What would make a copy wait is a bound instead, per event
 * loop: at most MIRROR_BUSY_MAX copies and MIRROR_BYTES_MAX unsent bytes in
 * flight (over them a copy is not made), at most MIRROR_BUF unsent bytes
 * per copy (a body that outruns the canary by more is given up); each of
 * these is counted (stats_mirror), none is recorded against the canary.
 * A copy whose client's request ends before its body did (the client went
 * away) is given up too: half a request must not reach the canary.
 *
 * What the canary does wrong counts as it would for a routed request: a
 * connection that cannot be made or is closed before an answer 502, no
 * answer within the response timeout 504, with the timeouts of
 * spec.timeouts, and the failure counts towards outlier detection.
 *
 * A copy costs the proxy two system calls, a write and a read of the
 * answer, whose price is the kernel's (a write on loopback runs the
 * canary's receive path and wakes it): the proxy's own code is a few
 * per cent of it (bench/mirror.sh). What can be chosen is when it is
 * paid: a copy is queued (p->m_q) and sent from a check handle, after
 * the loop turn's work for the clients (the stable request written, any
 * answer relayed), so that its write never stands between a client's
 * request and stable. An idle handle is active meanwhile, so that a copy
 * queued before the poll phase does not wait for the poll's next event
 * (its latency, recorded for the canary, counts from the client's head).
 *
 * Connections to the canary are kept alive between copies (at most
 * MIRROR_IDLE_MAX per loop, each closed after MIRROR_IDLE_MS unused), so
 * that a long mirrored analysis opens no connection per request. Each
 * worker loop has its own (proxy.mirrors), as it has its own pools: there
 * is nothing shared between threads but the route's mirror share, read
 * relaxed, and the stats shard, which this loop alone writes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"
#include "list.h"
#include "log.h"
#include "util.h"

#define MIRROR_LOG_MS 10000   /* a canary failure is logged at most this often */

static void m_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);
static void m_flush(mconn *m);
static bool m_connect(mconn *m);
static void mirror_check_cb(uv_check_t *h);
static void mirror_kick_cb(uv_idle_t *h);

/* ---- life of a mirror connection ---------------------------------------- */

static void m_closed(uv_handle_t *h)
{
	mconn *m = h->data;
	if (--m->open > 0)
		return;
	proxy *p = m->p;
	LIST_UNLINK(p->mirrors, m);
	ep_unref(m->ep);
	free(m);
	p->nobj--;
	proxy_maybe_free(p);
}

/* Counts <n> more unsent bytes of <m> into the loop's total, or fewer. */
static void m_hold(mconn *m, size_t n)
{
	m->held += n;
	m->p->m_bytes += n;
}

static void m_unhold(mconn *m, size_t n)
{
	if (n > m->held)
		n = m->held;
	m->held -= n;
	m->p->m_bytes -= n;
}

/* Takes <m> off the idle stack (it is on it). */
static void idle_remove(mconn *m)
{
	proxy *p = m->p;
	for (size_t i = 0; i < p->n_m_idle; i++) {
		if (p->m_idle[i] == m) {
			memmove(&p->m_idle[i], &p->m_idle[i + 1],
			        (p->n_m_idle - i - 1) * sizeof p->m_idle[0]);
			p->n_m_idle--;
			return;
		}
	}
}

/* Ends the copy <m> carries, if any: it no longer takes body bytes, its
 * route and bytes are let go. */
static void m_release(mconn *m)
{
	if (m->c) {
		m->c->mirror = NULL;
		m->c = NULL;
	}
	if (m->state == M_SEND) {
		m->p->m_busy--;
		route_unref(m->r);
		m->r = NULL;
	}
	m_unhold(m, m->held);
	m->state = M_DONE;
}

/* ---- the send queue ------------------------------------------------------ */

/* Queues <m> to be sent (or connected) in this loop turn's check phase. */
static void m_queue(mconn *m)
{
	proxy *p = m->p;
	if (m->queued)
		return;
	m->queued = true;
	m->q_next = NULL;
	if (p->m_q_tail)
		p->m_q_tail->q_next = m;
	else
		p->m_q = m;
	p->m_q_tail = m;
	if (!uv_is_active((uv_handle_t *)&p->m_check)) {
		uv_check_start(&p->m_check, mirror_check_cb);
		/* a copy queued before the poll phase (a write callback, a
		 * timer, a resumed connection) must not wait for the poll's
		 * next event: an active idle handle makes it not block */
		uv_idle_start(&p->m_kick, mirror_kick_cb);
	}
}

/* Takes <m> off the queue (it is on it). */
static void m_dequeue(mconn *m)
{
	proxy *p = m->p;
	mconn *prev = NULL;
	for (mconn *q = p->m_q; q; prev = q, q = q->q_next) {
		if (q != m)
			continue;
		if (prev)
			prev->q_next = m->q_next;
		else
			p->m_q = m->q_next;
		if (p->m_q_tail == m)
			p->m_q_tail = prev;
		break;
	}
	m->queued = false;
	m->q_next = NULL;
}

/* The check phase: every queued copy is connected or written, oldest
 * first. A copy that fails here is closed, which takes it off the queue
 * (m_close), so the queue is popped before each one is handled. */
static void mirror_check_cb(uv_check_t *h)
{
	proxy *p = h->data;
	/* bounded: a copy is queued once, and nothing here queues one */
	while (p->m_q) {
		mconn *m = p->m_q;
		m_dequeue(m);
		if (m->closing || m->state != M_SEND)
			continue;
		if (m->connected)
			m_flush(m);
		else if (!m->connecting)
			m_connect(m);
	}
	uv_check_stop(h);
	uv_idle_stop(&p->m_kick);
}

static void mirror_kick_cb(uv_idle_t *h)
{
	(void)h;   /* it only keeps the poll from blocking; m_check sends */
}

void mirror_init(proxy *p)
{
	uv_check_init(p->loop, &p->m_check);
	uv_idle_init(p->loop, &p->m_kick);
	p->m_check.data = p->m_kick.data = p;
	/* they never keep the loop alive: the copies' handles do */
	uv_unref((uv_handle_t *)&p->m_check);
	uv_unref((uv_handle_t *)&p->m_kick);
}

/* Closes <m> (whatever it carries is dropped, nothing recorded); freed in
 * the close callbacks. */
static void m_close(mconn *m)
{
	if (m->closing)
		return;
	if (m->state == M_IDLE)
		idle_remove(m);
	if (m->queued)
		m_dequeue(m);
	m_release(m);
	m->closing = true;
	uv_close((uv_handle_t *)&m->tcp, m_closed);
	uv_close((uv_handle_t *)&m->timer, m_closed);
}

static void m_timer_cb(uv_timer_t *t);

static void m_deadline(mconn *m, uint64_t ms)
{
	if (ms)
		uv_timer_start(&m->timer, m_timer_cb, ms, 0);
	else
		uv_timer_stop(&m->timer);
}

static mconn *m_new(proxy *p, endpoint *ep)
{
	mconn *m = xmalloc(sizeof *m);
	/* the buffers need no zeroing: only what was written is read */
	memset(m, 0, offsetof(mconn, rbuf));
	m->p = p;
	m->ep = ep;
	ep->refs++;
	uv_tcp_init(p->loop, &m->tcp);
	uv_timer_init(p->loop, &m->timer);
	m->tcp.data = m->timer.data = m->creq.data = m->wreq.data = m;
	m->open = 2;
	m->state = M_IDLE;
	LIST_PUSH(p->mirrors, m);
	p->nobj++;
	return m;
}

/* A kept-alive connection to <ep>, the last one pooled, or NULL. */
static mconn *idle_take(proxy *p, endpoint *ep)
{
	for (size_t i = p->n_m_idle; i-- > 0;) {
		mconn *m = p->m_idle[i];
		if (m->ep == ep) {
			idle_remove(m);
			m->reused = true;
			return m;
		}
	}
	return NULL;
}

/* Keeps <m>, whose copy is over, for the next copy to its endpoint, or
 * closes it. Reading goes on: a pooled connection that talks or closes
 * is closed (m_read). */
static void idle_put(mconn *m)
{
	proxy *p = m->p;
	m_release(m);
	if (m->ep->removed || p->closing || p->draining || p->n_m_idle == MIRROR_IDLE_MAX) {
		m_close(m);
		return;
	}
	m->state = M_IDLE;
	p->m_idle[p->n_m_idle++] = m;
	m_deadline(m, MIRROR_IDLE_MS);
}

void mirror_close_all(proxy *p, bool idle_only)
{
	for (mconn *m = p->mirrors, *next; m; m = next) {
		next = m->next;
		if (!idle_only || m->state == M_IDLE)
			m_close(m);
	}
}

/* ---- the copy's outcome -------------------------------------------------- */

/* Records the copy's outcome: the canary answered <status> (or the proxy
 * stands in for it with 502/504), counted as a canary request. */
static void m_record(mconn *m, int status)
{
	uint64_t us = (uv_hrtime() - m->t0) / 1000;
	stats_record(m->r->st, TARGET_CANARY, status, us, uv_now(m->p->loop) / 1000);
	stats_copy_answered(m->r->st, status);
	stats_mirror(m->r->st, STATS_MIRROR_SENT);
}

/* The canary failed the copy (<why>): recorded as <status>, counted against
 * the endpoint, and the connection closed. */
static void m_fail(mconn *m, int status, const char *why)
{
	proxy *p = m->p;
	uint64_t now = uv_now(p->loop);
	/* at most one line per MIRROR_LOG_MS: a dead canary under load would
	 * write one per request, and /metrics and status count them all */
	if (p->m_logged_ms == 0 || now - p->m_logged_ms >= MIRROR_LOG_MS) {
		p->m_logged_ms = now;
		log_msg(LOG_WARN, m->r->name, "mirror to canary '%s': %s", m->ep->name, why);
	}
	ep_failed(m->r, TARGET_CANARY, m->ep, now, why);
	m_record(m, status);
	m_close(m);
}

/* The copy gave up for a bound of ours, <why>: nothing recorded for the
 * canary; the connection (which may carry half a request) is closed. */
static void m_give_up(mconn *m, stats_mirror_result why)
{
	if (m->state == M_SEND)
		stats_mirror(m->r->st, why);
	m_close(m);
}

/* The answer ended; <dirty>: bytes came after it, or its end was a close. */
static void m_done(mconn *m, bool dirty)
{
	int status = m->resp.status;
	if (status >= 500) {
		char why[32];
		snprintf(why, sizeof why, "HTTP %d", status);
		ep_failed(m->r, TARGET_CANARY, m->ep, uv_now(m->p->loop), why);
	} else {
		ep_succeeded(m->r, TARGET_CANARY, m->ep);
	}
	m_record(m, status);
	/* an early answer (before the whole copy went) leaves the rest of the
	 * copy unsent: that connection cannot carry another */
	bool reuse = !dirty && m->resp.keep_alive && status != 101 && m->body_done &&
	             !m->c && !m->w_pending && m->woff == m->wlen &&
	             m->rbody != HTTP_BODY_UNTIL_CLOSE;
	if (reuse)
		idle_put(m);
	else
		m_close(m);
}

/* A copy of <m>'s request on a fresh connection, not connected yet; <m>
 * is closed. For the keep-alive race: the canary closed the kept-alive
 * connection as the copy went out. */
static mconn *m_retry(mconn *m)
{
	proxy *p = m->p;
	mconn *n = m_new(p, m->ep);
	memcpy(n->buf, m->buf, m->wlen);
	n->state = M_SEND;
	n->r = m->r;
	route_ref(n->r);
	p->m_busy++;
	n->t0 = m->t0;
	n->wlen = m->wlen;
	m_hold(n, n->wlen);
	n->whole = n->body_done = true;
	n->idempotent = m->idempotent;
	n->is_head = m->is_head;
	n->retried = true;
	n->rs = RS_HEAD;
	m_close(m);
	return n;
}

static void m_connected(uv_connect_t *req, int status);

/* Connects <m> to its endpoint; false when it failed at once (recorded,
 * closed). */
static bool m_connect(mconn *m)
{
	m->connecting = true;
	int rc = uv_tcp_connect(&m->creq, &m->tcp, (const struct sockaddr *)&m->ep->addr,
	                        m_connected);
	if (rc < 0) {
		m_fail(m, 502, uv_strerror(rc));
		return false;
	}
	m_deadline(m, m->p->t.connect_ms);
	return true;
}

/* The connection closed or failed (<err>: a reset) before the answer
 * ended. */
static void m_eof(mconn *m, bool err)
{
	if (m->rs == RS_BODY && m->rbody == HTTP_BODY_UNTIL_CLOSE && !err) {
		m_done(m, true);
		return;
	}
	if (m->rs == RS_BODY) {
		m_fail(m, 502, err ? "reset the connection mid-response"
		                   : "closed the connection mid-response");
		return;
	}
	/* sent again only when it is whole in the buffer and safe, as a
	 * routed request would be (upstream.c up_failed) */
	if (m->reused && !m->resp_started && !m->retried && m->whole && m->body_done &&
	    (m->woff == 0 || m->idempotent)) {
		m_connect(m_retry(m));
		return;
	}
	m_fail(m, 502, "closed before responding");
}

/* ---- the answer ---------------------------------------------------------- */

/* Body bytes p[0..n) of the answer: scanned for its end, dropped. */
static void m_body(mconn *m, const char *p, size_t n)
{
	bool done = false;
	size_t k = 0;
	switch (m->rbody) {
	case HTTP_BODY_NONE:
		done = true;
		break;
	case HTTP_BODY_LENGTH:
		k = (uint64_t)n > m->rleft ? (size_t)m->rleft : n;
		m->rleft -= k;
		done = m->rleft == 0;
		break;
	case HTTP_BODY_CHUNKED: {
		ssize_t r = http_chunked_scan(&m->rck, p, n, &done);
		if (r < 0) {
			m_fail(m, 502, "sent an invalid chunked body");
			return;
		}
		k = (size_t)r;
		break;
	}
	case HTTP_BODY_UNTIL_CLOSE:
		return;
	}
	if (done)
		m_done(m, k < n);
}

/* Parses what rbuf holds of the answer's head; interim (1xx) heads are
 * skipped. */
static void m_head(mconn *m)
{
	for (int turn = 0; turn < HTTP_MAX_HEAD; turn++) {
		int rc = http_parse_response(m->rbuf, m->rlen, m->is_head, &m->resp);
		if (rc == HTTP_INCOMPLETE) {
			if (m->rlen == sizeof m->rbuf)
				m_fail(m, 502, "sent a response head too large");
			return;
		}
		if (rc < 0) {
			m_fail(m, 502, "sent an invalid response head");
			return;
		}
		size_t rest = m->rlen - (size_t)rc;
		if (m->resp.status < 200 && m->resp.status != 101) {
			memmove(m->rbuf, m->rbuf + rc, rest);
			m->rlen = rest;
			if (rest == 0)
				return;
			continue;
		}
		m->rs = RS_BODY;
		m->rbody = m->resp.status == 101 ? HTTP_BODY_NONE : m->resp.body;
		m->rleft = m->resp.content_length;
		http_chunked_init(&m->rck);
		m->rlen = 0;
		/* rbuf is not written again before m_body returns */
		m_body(m, m->rbuf + rc, rest);
		return;
	}
}

static void m_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	(void)hint;
	mconn *m = h->data;
	if (m->state == M_SEND && m->rs == RS_HEAD)
		*b = uv_buf_init(m->rbuf + m->rlen, (unsigned)(sizeof m->rbuf - m->rlen));
	else
		*b = uv_buf_init(m->rbuf, sizeof m->rbuf);   /* dropped */
}

static void m_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	mconn *m = s->data;
	if (nread == 0 || m->closing)
		return;
	if (m->state != M_SEND) {
		m_close(m);   /* pooled: talking or closing ends it */
		return;
	}
	if (nread < 0) {
		m_eof(m, nread != UV_EOF);
		return;
	}
	m->resp_started = true;
	m_deadline(m, m->p->t.response_ms);
	if (m->rs == RS_HEAD) {
		m->rlen += (size_t)nread;
		m_head(m);
	} else {
		m_body(m, b->base, (size_t)nread);
	}
}

/* ---- sending the copy ---------------------------------------------------- */

static void m_sent(mconn *m, size_t n)
{
	m->woff += n;
	m_unhold(m, n);
}

static void m_write_cb(uv_write_t *w, int status)
{
	mconn *m = w->data;
	m->w_pending = false;
	if (m->closing || m->state != M_SEND)
		return;
	if (status < 0) {
		m_eof(m, true);
		return;
	}
	m_sent(m, m->wpend);
	m->wpend = 0;
	m_deadline(m, m->p->t.response_ms);
	m_flush(m);
}

/* Writes what the copy has unsent, if it can. */
static void m_flush(mconn *m)
{
	if (!m->connected || m->w_pending || m->closing || m->state != M_SEND ||
	    m->woff == m->wlen)
		return;
	uv_buf_t b = uv_buf_init(m->buf + m->woff, (unsigned)(m->wlen - m->woff));
	int n = uv_try_write((uv_stream_t *)&m->tcp, &b, 1);
	if (n == UV_EAGAIN)
		n = 0;
	if (n < 0) {
		m_eof(m, true);
		return;
	}
	m_sent(m, (size_t)n);
	if (m->woff == m->wlen)
		return;
	b = uv_buf_init(m->buf + m->woff, (unsigned)(m->wlen - m->woff));
	if (uv_write(&m->wreq, (uv_stream_t *)&m->tcp, &b, 1, m_write_cb) < 0) {
		m_eof(m, true);
		return;
	}
	m->w_pending = true;
	m->wpend = b.len;
}

static void m_connected(uv_connect_t *req, int status)
{
	mconn *m = req->data;
	if (m->closing || status == UV_ECANCELED)
		return;
	if (status < 0) {
		char why[128];
		snprintf(why, sizeof why, "cannot connect: %s", uv_strerror(status));
		m_fail(m, 502, why);
		return;
	}
	m->connected = true;
	uv_tcp_nodelay(&m->tcp, 1);
	if (uv_read_start((uv_stream_t *)&m->tcp, m_alloc, m_read) < 0) {
		m_fail(m, 502, "cannot read");
		return;
	}
	m_deadline(m, m->p->t.response_ms);
	m_flush(m);
}

static void m_timer_cb(uv_timer_t *t)
{
	mconn *m = t->data;
	if (m->closing)
		return;
	if (m->state != M_SEND)
		m_close(m);   /* idle for MIRROR_IDLE_MS */
	else if (!m->connected)
		m_fail(m, 502, "connect timed out");
	else if (m->rs == RS_HEAD)
		m_fail(m, 504, "response timed out");
	else
		m_fail(m, 504, "timed out mid-response");
}

/* ---- what the client connection calls ------------------------------------ */

/* Whether the request <c> starts (its target picked) is to be copied; if
 * so, a connection for the copy, whose head the caller builds into its
 * buf (MIRROR_BUF bytes) and hands to mirror_go. A copy is made of
 * requests routed to stable (mirror share of them, exactly over every
 * 100), but not of upgrades (a tunnel cannot be copied); NULL for the
 * rest, and when a bound would be crossed (counted). */
mconn *mirror_begin(cconn *c)
{
	route *r = c->r;
	proxy *p = c->p;
	int share = LD((r->src ? r->src : r)->mirror);
	if (share <= 0 || p->closing) {
		p->m_acc = 0;
		return NULL;
	}
	if (c->target != TARGET_STABLE || c->io->req.upgrade || r->set[TARGET_CANARY].n == 0)
		return NULL;
	p->m_acc += share;
	if (p->m_acc < 100)
		return NULL;
	p->m_acc -= 100;
	if (p->m_busy >= MIRROR_BUSY_MAX || p->m_bytes >= MIRROR_BYTES_MAX) {
		stats_mirror(r->st, STATS_MIRROR_LIMIT);
		return NULL;
	}
	endpoint *ep = ep_pick(r, TARGET_CANARY, uv_now(p->loop), NULL);
	mconn *m = idle_take(p, ep);
	if (!m)
		m = m_new(p, ep);
	return m;
}

/* Starts the copy <m> (mirror_begin's) of <c>'s request, whose head is
 * buf[0..head_len), or gives it up when <head_len> is 0 (the head does
 * not fit). The body bytes follow through mirror_feed. */
void mirror_go(cconn *c, mconn *m, size_t head_len)
{
	proxy *p = m->p;
	if (head_len == 0 || p->m_bytes + head_len > MIRROR_BYTES_MAX) {
		stats_mirror(c->r->st, STATS_MIRROR_LIMIT);
		if (m->connected)
			idle_put(m);
		else
			m_close(m);
		return;
	}
	m->state = M_SEND;
	m->r = c->r;
	route_ref(m->r);
	p->m_busy++;
	m->t0 = c->t0;
	m->woff = m->wpend = 0;
	m->wlen = head_len;
	m_hold(m, head_len);
	m->whole = true;
	m->retried = false;
	m->resp_started = false;
	m->is_head = c->io->req.is_head;
	m->idempotent = up_idempotent(&c->io->req);
	m->rs = RS_HEAD;
	m->rlen = 0;
	m->body_done = c->body_done;
	if (!m->body_done) {
		m->c = c;
		c->mirror = m;
	}
	if (m->connected)
		m_deadline(m, p->t.response_ms);
	m_queue(m);
}

/* Copies <n> body bytes <b> of <c>'s request, which have just gone to
 * stable (c->body_done says whether they were the last), into its copy.
 * The copy is given up when they do not fit in what it may hold unsent. */
void mirror_feed(cconn *c, const char *b, size_t n)
{
	mconn *m = c->mirror;
	if (!m)
		return;
	proxy *p = m->p;
	if (n > MIRROR_BUF - m->wlen && !m->w_pending && m->woff > 0) {
		/* room from what was written: the copy is no longer whole */
		memmove(m->buf, m->buf + m->woff, m->wlen - m->woff);
		m->wlen -= m->woff;
		m->woff = 0;
		m->whole = false;
	}
	if (n > MIRROR_BUF - m->wlen || p->m_bytes + n > MIRROR_BYTES_MAX) {
		m_give_up(m, n > MIRROR_BUF - m->wlen ? STATS_MIRROR_SLOW : STATS_MIRROR_LIMIT);
		return;
	}
	memcpy(m->buf + m->wlen, b, n);
	m->wlen += n;
	m_hold(m, n);
	if (c->body_done) {
		m->body_done = true;
		m->c = NULL;
		c->mirror = NULL;
	}
	if (m->connected && !m->w_pending) {
		m_deadline(m, p->t.response_ms);
		m_queue(m);   /* else the connect or write callback sends it */
	}
}

/* <c>'s request ends: a copy still waiting for body bytes will not get
 * them, and is given up. */
void mirror_detach(cconn *c)
{
	mconn *m = c->mirror;
	if (!m)
		return;
	c->mirror = NULL;
	m->c = NULL;
	m_give_up(m, STATS_MIRROR_CLIENT);
}
