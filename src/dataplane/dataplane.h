/* dataplane.h - what the files of the built-in proxy call of each other;
 * included by nothing outside src/dataplane/ (proxy.h is the data plane's
 * interface). The contracts are written at each definition. */
#ifndef CANARYD_DATAPLANE_H
#define CANARYD_DATAPLANE_H

#include "proxy-t.h"

/* route.c: routes, endpoints and outlier records */
outlier *ol_ref(outlier *ol);
void ol_unref(outlier *ol);                    /* NULL is a no-op */
void ep_unref(endpoint *ep);                   /* NULL is a no-op */
void route_ref(route *r);
void route_unref(route *r);                    /* NULL is a no-op */
void route_replace(route *r, int target, const epinfo *in, size_t n);
int route_pick(route *r);
int route_pick_request(route *r, const http_request *q, char *sc, size_t cap, size_t *sclen);
route_ab *route_ab_ref(route_ab *ab);
void route_ab_unref(route_ab *ab);             /* NULL is a no-op */
endpoint *ep_pick(route *r, int target, uint64_t now, endpoint *avoid);
void ep_failed(route *r, int target, endpoint *ep, uint64_t now, const char *why);
void ep_succeeded(route *r, int target, endpoint *ep);

/* upstream.c: upstream connections */
void up_acquire(cconn *c);
void up_close(upconn *up);
void up_start_reading(upconn *up);
void pool_put(upconn *up);
void up_failed(cconn *c);
void up_timeout(uv_timer_t *t);
void up_write_cb(uv_write_t *w, int status);
bool up_idempotent(const http_request *q);

/* mux_h1.c: client connections */
void h1_on_connection(uv_stream_t *server, int status);
void h1_resume_accepting(proxy *p);
void h1_advance(cconn *c);
void h1_close(cconn *c);
void h1_fail(cconn *c, int status);
void h1_cut(cconn *c, const char *what, int status);
void h1_up_deadline(cconn *c, uint64_t ms);

/* mirror.c: copies of requests to the canary */
mconn *mirror_begin(cconn *c);
void mirror_go(cconn *c, mconn *m, size_t head_len);
void mirror_feed(cconn *c, const char *b, size_t n);
void mirror_detach(cconn *c);
void mirror_close_all(proxy *p, bool idle_only);
void mirror_init(proxy *p);

/* proxy.c: a proxy's life and its request blocks */
int proxy_open(uv_loop_t *loop, const struct sockaddr_storage *ss, int fd, route *r,
               const cfg_proxy *pc, proxy **out);
void proxy_maybe_free(proxy *p);
void proxy_io_take(cconn *c);
void proxy_io_give(cconn *c);

/* workers.c: a proxy with several event loops (a hub) */
int hub_start(uv_loop_t *loop, const struct sockaddr_storage *ss, const char *listen,
              route *r, const cfg_proxy *pc, proxy **out, char *err, size_t errlen);
void hub_publish(proxy *hub);
void hub_set_route(proxy *hub, route *r);
void hub_set_config(proxy *hub, const cfg_proxy *pc);
void hub_drain(proxy *hub);
size_t hub_inflight(const proxy *hub);
size_t hub_connections(const proxy *hub);
void hub_close(proxy *hub);
void worker_poll(worker *w);

#endif
