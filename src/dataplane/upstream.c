/* upstream.c - upstream connections of the built-in proxy: the LIFO
 * keep-alive pool of each endpoint, connecting (once more to another
 * endpoint of the same target when a connect fails), and what a failure
 * of the upstream means for the request (sent again only when that is
 * safe, else 502 or 504). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"
#include "list.h"
#include "log.h"
#include "util.h"

/* ---- upstream connections ---------------------------------------------- */

static void up_closed(uv_handle_t *h)
{
	upconn *up = h->data;
	proxy *p = up->p;
	LIST_UNLINK(p->ups, up);
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
void up_close(upconn *up)
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

void up_start_reading(upconn *up)
{
	if (up->reading || up->closing || !up->connected)
		return;
	if (uv_read_start((uv_stream_t *)&up->tcp, up_alloc, up_read) == 0)
		up->reading = true;
}

/* Puts <up> into its endpoint's pool, or closes it when the pool is full,
 * the endpoint left the route or the proxy is going away. */
void pool_put(upconn *up)
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
	LIST_PUSH(p->ups, up);
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
void up_acquire(cconn *c)
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
bool up_idempotent(const http_request *q)
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
void up_failed(cconn *c)
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
	    (unread || (c->body_sent == 0 && up_idempotent(&c->io->req)))) {
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

void up_timeout(uv_timer_t *t)
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

void up_write_cb(uv_write_t *w, int status)
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
