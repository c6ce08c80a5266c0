/* httpc.c - see httpc.h. The glue between curl_multi_socket_action and
 * libuv: curl tells which sockets to watch (socket callback) and when to
 * call back (timer callback); libuv tells curl when a socket is ready.
 *
 * libcurl is loaded with dlopen() on the first request rather than linked:
 * with its TLS, LDAP, Kerberos and SSH dependencies it maps about 7 MB of
 * shared libraries into the process, more than the rest of canaryd's idle
 * footprint, and a daemon whose canaries use no webhook, no provider and no
 * Kubernetes router never needs it. It is still Debian's libcurl, called
 * through its API. */
#include "httpc.h"

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static struct {
	int loaded;           /* 1 loaded, -1 failed (see error) */
	char error[256];
	httpc_api api;
} L;

const httpc_api *httpc_load(char *err, size_t errlen)
{
	if (L.loaded) {
		if (L.loaded < 0)
			snprintf(err, errlen, "%s", L.error);
		return L.loaded > 0 ? &L.api : NULL;
	}
	L.loaded = -1;
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(L.error, sizeof L.error, "cannot load libcurl: %s", dlerror());
		snprintf(err, errlen, "%s", L.error);
		return NULL;
	}
	static const struct { const char *name; size_t off; } syms[] = {
#define SYM(f) { "curl_" #f, offsetof(httpc_api, f) }
		SYM(global_init), SYM(multi_init), SYM(multi_setopt), SYM(multi_socket_action),
		SYM(multi_info_read), SYM(multi_add_handle), SYM(multi_remove_handle),
		SYM(multi_assign), SYM(multi_cleanup), SYM(easy_init), SYM(easy_setopt),
		SYM(easy_getinfo), SYM(easy_cleanup), SYM(easy_strerror), SYM(slist_append),
		SYM(slist_free_all),
#undef SYM
	};
	for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
		void *f = dlsym(lib, syms[i].name);
		if (!f) {
			snprintf(L.error, sizeof L.error, "libcurl has no %s", syms[i].name);
			snprintf(err, errlen, "%s", L.error);
			return NULL;
		}
		memcpy((char *)&L.api + syms[i].off, &f, sizeof f);
	}
	if (L.api.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(L.error, sizeof L.error, "libcurl failed to initialise");
		snprintf(err, errlen, "%s", L.error);
		return NULL;
	}
	L.loaded = 1;
	return &L.api;
}

#define C (L.api)

typedef struct sock_ctx {
	uv_poll_t poll;
	curl_socket_t fd;
	httpc *c;
} sock_ctx;

struct httpc {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;        /* curl's timeouts */
	int running;
	int dispatching;         /* inside check_done: httpc_free waits */
	int free_pending;
};

static void really_free(httpc *c);

/* Hands every finished transfer to its owner. */
static void check_done(httpc *c)
{
	CURLMsg *msg;
	int left;
	c->dispatching++;
	while (!c->free_pending && (msg = C.multi_info_read(c->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *e = msg->easy_handle;
		CURLcode result = msg->data.result;
		httpc_xfer *x = NULL;
		C.easy_getinfo(e, CURLINFO_PRIVATE, (char **)&x);
		C.multi_remove_handle(c->multi, e);
		x->running = 0;
		c->running--;
		x->done(x, result);
	}
	if (--c->dispatching == 0 && c->free_pending)
		really_free(c);
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	sock_ctx *s = p->data;
	int flags = 0;
	/* on an error (libuv stops the handle), let curl read and write too:
	 * it then finds and names what happened ("Connection reset by
	 * peer") instead of "select/poll returned error" */
	if (status < 0)
		flags = CURL_CSELECT_ERR | CURL_CSELECT_IN | CURL_CSELECT_OUT;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	int running;
	httpc *c = s->c;
	C.multi_socket_action(c->multi, s->fd, flags, &running);
	check_done(c);
}

static void on_timer(uv_timer_t *t)
{
	httpc *c = t->data;
	int running;
	C.multi_socket_action(c->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(c);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	httpc *c = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&c->timer);
	else
		uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

static void sock_closed(uv_handle_t *hd)
{
	free(hd->data);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	httpc *c = userp;
	sock_ctx *s = sockp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			uv_poll_stop(&s->poll);
			uv_close((uv_handle_t *)&s->poll, sock_closed);
			C.multi_assign(c->multi, fd, NULL);
		}
		return 0;
	}
	if (!s) {
		s = xcalloc(1, sizeof *s);
		s->fd = fd;
		s->c = c;
		if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		C.multi_assign(c->multi, fd, s);
	}
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, on_poll);
	return 0;
}

httpc *httpc_new(uv_loop_t *loop, long max_host_connections, char *err, size_t errlen)
{
	if (!httpc_load(err, errlen))
		return NULL;
	CURLM *multi = C.multi_init();
	if (!multi) {
		snprintf(err, errlen, "curl_multi_init failed");
		return NULL;
	}
	httpc *c = xcalloc(1, sizeof *c);
	c->loop = loop;
	c->multi = multi;
	uv_timer_init(loop, &c->timer);
	c->timer.data = c;
	C.multi_setopt(multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	C.multi_setopt(multi, CURLMOPT_SOCKETDATA, c);
	C.multi_setopt(multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	C.multi_setopt(multi, CURLMOPT_TIMERDATA, c);
	if (max_host_connections > 0)
		C.multi_setopt(multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_host_connections);
	return c;
}

int httpc_add(httpc *c, httpc_xfer *x)
{
	if (c->free_pending || x->running)
		return -1;
	C.easy_setopt(x->easy, CURLOPT_PRIVATE, x);
	if (C.multi_add_handle(c->multi, x->easy) != CURLM_OK)
		return -1;
	x->running = 1;
	c->running++;
	return 0;
}

void httpc_remove(httpc *c, httpc_xfer *x)
{
	if (!x->running)
		return;
	/* removing the handle closes its connection (CURL_POLL_REMOVE) */
	C.multi_remove_handle(c->multi, x->easy);
	x->running = 0;
	c->running--;
}

int httpc_running(const httpc *c)
{
	return c->running;
}

static void timer_closed(uv_handle_t *hd)
{
	free(hd->data);
}

static void really_free(httpc *c)
{
	C.multi_cleanup(c->multi);
	uv_timer_stop(&c->timer);
	uv_close((uv_handle_t *)&c->timer, timer_closed);
}

void httpc_free(httpc *c)
{
	if (!c || c->free_pending)
		return;
	c->free_pending = 1;
	if (c->dispatching == 0)
		really_free(c);
}
