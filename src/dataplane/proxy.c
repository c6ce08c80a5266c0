/* proxy.c - the built-in HTTP/1.1 reverse proxy (see proxy.h): a proxy's
 * listener, its life (start, new settings, drain, close) and the request
 * blocks its connections borrow. The rest of the data plane is in
 * route.c (the split and the endpoints), upstream.c (pools, connects,
 * retries), mux_h1.c (the client connections) and workers.c (several
 * event loops); proxy-t.h has the types they share and the design of
 * the buffers. */
#include "proxy.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>

#include "dataplane.h"
#include "resolve.h"
#include "util.h"

static void route_configure(proxy *p);

/* ---- proxy bookkeeping -------------------------------------------------- */

static void io_unmap(iobuf *io) { munmap(io, sizeof *io); }

void proxy_maybe_free(proxy *p)
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
void proxy_io_take(cconn *c)
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
void proxy_io_give(cconn *c)
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

/* ---- the proxy ---------------------------------------------------------- */

/* Creates a proxy on <loop> listening on <ss> (bound here when <fd> < 0,
 * else the bound socket <fd>, which it then owns). Returns 0 or a negative
 * libuv error; on error the proxy frees itself once <loop> has run its
 * close callbacks. */
int proxy_open(uv_loop_t *loop, const struct sockaddr_storage *ss,
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
	mirror_init(p);
	p->nobj = 5;
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
		uv_close((uv_handle_t *)&p->m_check, listener_closed);
		uv_close((uv_handle_t *)&p->m_kick, listener_closed);
		return rc;
	}
	route_ref(r);
	p->r = r;
	route_configure(p);
	*out = p;
	return 0;
}


int proxy_start(uv_loop_t *loop, const char *listen, route *r,
                const cfg_proxy *pc, proxy **out, char *err, size_t errlen)
{
	*out = NULL;
	struct sockaddr_storage ss;
	if (rsv_numeric(listen, &ss) < 0) {
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
		hub_set_route(p, r);
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
		hub_set_config(p, pc);
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
		hub_drain(p);
		return;
	}
	stop_listening(p);
	for (cconn *c = p->clients, *next; c; c = next) {
		next = c->next;
		if (c->state == C_IDLE && !c->cw_pending && c->clen == c->coff)
			h1_close(c);
	}
	mirror_close_all(p, true);
	/* idle upstream connections are not needed any more */
	for (upconn *up = p->ups, *next; up; up = next) {
		next = up->next;
		if (up->pooled)
			up_close(up);
	}
}

size_t proxy_inflight(const proxy *p)
{
	return p->workers ? hub_inflight(p) : LD(p->inflight);
}

size_t proxy_connections(const proxy *p)
{
	return p->workers ? hub_connections(p) : LD(p->n_clients);
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
	if (!uv_is_closing((uv_handle_t *)&p->m_check)) {
		uv_close((uv_handle_t *)&p->m_check, listener_closed);
		uv_close((uv_handle_t *)&p->m_kick, listener_closed);
	}
	for (cconn *c = p->clients; c; c = c->next)
		h1_close(c);
	for (upconn *up = p->ups; up; up = up->next)
		up_close(up);
	mirror_close_all(p, false);
	proxy_maybe_free(p);
}
