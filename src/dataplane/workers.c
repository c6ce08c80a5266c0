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

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <errno.h>
#include <unistd.h>
#include <sys/socket.h>

#include "dataplane.h"
#include "util.h"

typedef struct snapshot {
	epinfo *v[TARGET_COUNT];
	size_t n[TARGET_COUNT];
	route *src;                   /* the route to follow */
	stats *st;                    /* the worker's shard of its stats */
	route_ab *ab;                 /* its request rules (a reference), or NULL */
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

static void snapshot_free(snapshot *sn)
{
	if (!sn)
		return;
	for (int t = 0; t < TARGET_COUNT; t++) {
		for (size_t i = 0; i < sn->n[t]; i++)
			ol_unref(sn->v[t][i].ol);
		free(sn->v[t]);
	}
	route_ab_unref(sn->ab);
	free(sn);
}

/* The endpoint sets of <r> as a worker needs them (main thread). */
static snapshot *snapshot_of(route *r, stats *st)
{
	snapshot *sn = xcalloc(1, sizeof *sn);
	sn->src = r;
	sn->st = st;
	sn->ab = route_ab_ref(r->ab);
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
	route_ab_unref(rep->ab);   /* the worker's own reference: no one else's */
	rep->ab = sn->ab;
	sn->ab = NULL;
	for (int t = 0; t < TARGET_COUNT; t++)
		route_replace(rep, t, sn->v[t], sn->n[t]);
	snapshot_free(sn);
}

/* Applies a posted snapshot, if any (worker thread). A relaxed load when
 * there is none; the mutex orders the snapshot's contents. */
void worker_poll(worker *w)
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
void hub_publish(proxy *hub)
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

int hub_start(uv_loop_t *loop, const struct sockaddr_storage *ss,
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
void hub_close(proxy *hub)
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


void hub_set_route(proxy *hub, route *r)
{
	/* the replicas may read the old route's weight until they
	 * apply the new snapshot: it is kept until the close */
	hub_detach(hub);
	hub->former = realloc(hub->former, (hub->n_former + 1) * sizeof *hub->former);
	if (!hub->former) {
		fprintf(stderr, "canaryd: out of memory (route)\n");
		abort();
	}
	hub->former[hub->n_former++] = hub->r;
	hub_attach(hub, r);
	hub_publish(hub);
}

void hub_set_config(proxy *hub, const cfg_proxy *pc)
{
	cfg_proxy wc = worker_cfg(pc, hub->n_workers);
	for (int i = 0; i < hub->n_workers; i++)
		worker_post(&hub->workers[i], NULL, &wc, false, false);
}

void hub_drain(proxy *hub)
{
	for (int i = 0; i < hub->n_workers; i++)
		worker_post(&hub->workers[i], NULL, NULL, true, false);
}

size_t hub_inflight(const proxy *hub)
{
	size_t n = 0;
	for (int i = 0; i < hub->n_workers; i++)
		n += LD(hub->workers[i].p->inflight);
	return n;
}

size_t hub_connections(const proxy *hub)
{
	size_t n = 0;
	for (int i = 0; i < hub->n_workers; i++)
		n += LD(hub->workers[i].p->n_clients);
	return n;
}
