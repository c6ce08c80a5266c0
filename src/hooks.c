/* hooks.c - see hooks.h. The glue between curl_multi_socket_action and
 * libuv: curl tells which sockets to watch (socket callback) and when to
 * call back (timer callback); libuv tells curl when a socket is ready.
 *
 * libcurl is loaded with dlopen() on the first request rather than linked:
 * with its TLS, LDAP, Kerberos and SSH dependencies it maps about 7 MB of
 * shared libraries into the process, more than the rest of canaryd's idle
 * footprint, and a daemon whose canaries use no webhook and no provider
 * never needs it. It is still Debian's libcurl, called through its API. */
#include "hooks.h"

#include <curl/curl.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "util.h"

/* The libcurl functions used here, resolved once by curl_load(). */
static struct curl_api {
	int loaded;           /* 1 loaded, -1 failed (see error) */
	char error[256];
	CURLcode (*global_init)(long);
	CURLM *(*multi_init)(void);
	CURLMcode (*multi_setopt)(CURLM *, CURLMoption, ...);
	CURLMcode (*multi_socket_action)(CURLM *, curl_socket_t, int, int *);
	CURLMsg *(*multi_info_read)(CURLM *, int *);
	CURLMcode (*multi_add_handle)(CURLM *, CURL *);
	CURLMcode (*multi_remove_handle)(CURLM *, CURL *);
	CURLMcode (*multi_assign)(CURLM *, curl_socket_t, void *);
	CURLMcode (*multi_cleanup)(CURLM *);
	CURL *(*easy_init)(void);
	CURLcode (*easy_setopt)(CURL *, CURLoption, ...);
	CURLcode (*easy_getinfo)(CURL *, CURLINFO, ...);
	void (*easy_cleanup)(CURL *);
	const char *(*easy_strerror)(CURLcode);
	struct curl_slist *(*slist_append)(struct curl_slist *, const char *);
	void (*slist_free_all)(struct curl_slist *);
} C;

/* Loads libcurl once. Returns 0, or -1 with C.error saying why. */
static int curl_load(void)
{
	if (C.loaded)
		return C.loaded > 0 ? 0 : -1;
	C.loaded = -1;
	void *lib = dlopen("libcurl.so.4", RTLD_NOW | RTLD_LOCAL);
	if (!lib) {
		snprintf(C.error, sizeof C.error, "cannot load libcurl: %s", dlerror());
		return -1;
	}
	static const struct { const char *name; size_t off; } syms[] = {
#define SYM(f) { "curl_" #f, offsetof(struct curl_api, f) }
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
			snprintf(C.error, sizeof C.error, "libcurl has no %s", syms[i].name);
			return -1;
		}
		memcpy((char *)&C + syms[i].off, &f, sizeof f);
	}
	if (C.global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		snprintf(C.error, sizeof C.error, "libcurl failed to initialise");
		return -1;
	}
	C.loaded = 1;
	return 0;
}

typedef struct hook_req {
	CURL *easy;
	struct curl_slist *headers;
	char *body;
	hooks_done_fn done;      /* one of done and resp is set */
	hooks_resp_fn resp;
	void *arg;
	buf in;                  /* the response body, up to max_body */
	size_t max_body;
	int too_large;
	uint64_t started;
	char errbuf[CURL_ERROR_SIZE];
	struct hook_req *next;
} hook_req;

typedef struct sock_ctx {
	uv_poll_t poll;
	curl_socket_t fd;
	hooks *h;
} sock_ctx;

struct hooks {
	uv_loop_t *loop;
	CURLM *multi;
	uv_timer_t timer;
	hook_req *reqs;
	int running;
	int closing;
	int load_error_logged;
};

static void check_done(hooks *h)
{
	CURLMsg *msg;
	int left;
	while ((msg = C.multi_info_read(h->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *e = msg->easy_handle;
		hook_req *r = NULL;
		C.easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
		long code = 0;
		C.easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
		const char *err = NULL;
		if (msg->data.result != CURLE_OK)
			err = r->errbuf[0] ? r->errbuf : C.easy_strerror(msg->data.result);
		C.multi_remove_handle(h->multi, e);
		/* unlink before the callback: it may post again */
		for (hook_req **pp = &h->reqs; *pp; pp = &(*pp)->next)
			if (*pp == r) {
				*pp = r->next;
				break;
			}
		h->running--;
		uint64_t elapsed = uv_now(h->loop) - r->started;
		char toolarge[64];
		if (r->too_large) {
			snprintf(toolarge, sizeof toolarge, "response larger than %zu bytes", r->max_body);
			err = toolarge;
		}
		if (r->done)
			r->done(r->arg, err ? 0 : (int)code, err, elapsed);
		else
			r->resp(r->arg, err ? 0 : (int)code, err, err ? "" : (r->in.p ? r->in.p : ""),
			        err ? 0 : r->in.len, elapsed);
		C.easy_cleanup(e);
		C.slist_free_all(r->headers);
		buf_release(&r->in);
		free(r->body);
		free(r);
	}
}

static void on_poll(uv_poll_t *p, int status, int events)
{
	sock_ctx *s = p->data;
	int flags = 0;
	if (status < 0)
		flags = CURL_CSELECT_ERR;
	if (events & UV_READABLE)
		flags |= CURL_CSELECT_IN;
	if (events & UV_WRITABLE)
		flags |= CURL_CSELECT_OUT;
	int running;
	hooks *h = s->h;
	C.multi_socket_action(h->multi, s->fd, flags, &running);
	check_done(h);
}

static void on_timer(uv_timer_t *t)
{
	hooks *h = t->data;
	int running;
	C.multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
	check_done(h);
}

static int timer_cb(CURLM *m, long timeout_ms, void *userp)
{
	hooks *h = userp;
	if (timeout_ms < 0)
		uv_timer_stop(&h->timer);
	else
		uv_timer_start(&h->timer, on_timer, (uint64_t)timeout_ms, 0);
	return 0;
}

static void sock_closed(uv_handle_t *hd)
{
	free(hd->data);
}

static int socket_cb(CURL *e, curl_socket_t fd, int what, void *userp, void *sockp)
{
	hooks *h = userp;
	sock_ctx *s = sockp;
	if (what == CURL_POLL_REMOVE) {
		if (s) {
			uv_poll_stop(&s->poll);
			uv_close((uv_handle_t *)&s->poll, sock_closed);
			C.multi_assign(h->multi, fd, NULL);
		}
		return 0;
	}
	if (!s) {
		s = xcalloc(1, sizeof *s);
		s->fd = fd;
		s->h = h;
		if (uv_poll_init_socket(h->loop, &s->poll, fd) != 0) {
			free(s);
			return -1;
		}
		s->poll.data = s;
		C.multi_assign(h->multi, fd, s);
	}
	int ev = 0;
	if (what & CURL_POLL_IN)
		ev |= UV_READABLE;
	if (what & CURL_POLL_OUT)
		ev |= UV_WRITABLE;
	uv_poll_start(&s->poll, ev, on_poll);
	return 0;
}

static size_t collect(char *p, size_t size, size_t n, void *u)
{
	hook_req *r = u;
	size_t len = size * n;
	if (r->in.len + len > r->max_body) {
		r->too_large = 1;
		return 0; /* makes curl fail the transfer */
	}
	buf_append(&r->in, p, len);
	return len;
}

hooks *hooks_new(uv_loop_t *loop)
{
	hooks *h = xcalloc(1, sizeof *h);
	h->loop = loop;
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	return h;
}

/* The multi handle, made (and libcurl loaded) on the first request.
 * Returns 0, or -1 after logging why once. */
static int ensure_multi(hooks *h)
{
	if (h->multi)
		return 0;
	if (curl_load() == 0)
		h->multi = C.multi_init();
	if (!h->multi) {
		if (!h->load_error_logged)
			log_msg(LOG_ERROR, NULL, "webhooks and metric providers cannot run: %s",
			        C.error[0] ? C.error : "curl_multi_init failed");
		h->load_error_logged = 1;
		return -1;
	}
	C.multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	C.multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	C.multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	C.multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return 0;
}

static int start(hooks *h, hook_req *r, const char *method, const char *url,
                 const char *const *headers, size_t n_headers, const char *body,
                 uint64_t timeout_ms)
{
	if (ensure_multi(h) < 0) {
		free(r);
		return -1;
	}
	r->easy = C.easy_init();
	if (!r->easy) {
		free(r);
		return -1;
	}
	r->started = uv_now(h->loop);
	for (size_t i = 0; i < n_headers; i++)
		r->headers = C.slist_append(r->headers, headers[i]);
	CURL *e = r->easy;
	C.easy_setopt(e, CURLOPT_URL, url);
	if (strcmp(method, "POST") == 0) {
		r->body = xstrdup(body ? body : "");
		C.easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	} else {
		C.easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	C.easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	C.easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 60000));
	C.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	C.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	C.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	C.easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	C.easy_setopt(e, CURLOPT_WRITEDATA, r);
	C.easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	C.easy_setopt(e, CURLOPT_PRIVATE, r);
	C.easy_setopt(e, CURLOPT_USERAGENT, "canaryd");
	if (C.multi_add_handle(h->multi, e) != CURLM_OK) {
		C.easy_cleanup(e);
		C.slist_free_all(r->headers);
		free(r->body);
		free(r);
		return -1;
	}
	r->next = h->reqs;
	h->reqs = r;
	h->running++;
	return 0;
}

int hooks_post(hooks *h, const char *url, const char *json,
               uint64_t timeout_ms, hooks_done_fn done, void *arg)
{
	if (h->closing)
		return -1;
	hook_req *r = xcalloc(1, sizeof *r);
	r->done = done;
	r->arg = arg;
	r->max_body = 65536; /* the answer is not used: just bound it */
	static const char *const json_hdr[] = { "Content-Type: application/json" };
	return start(h, r, "POST", url, json_hdr, 1, json, timeout_ms);
}

int hooks_request(hooks *h, const char *method, const char *url,
                  const char *const *headers, size_t n_headers,
                  const char *body, uint64_t timeout_ms, size_t max_body,
                  hooks_resp_fn done, void *arg)
{
	if (h->closing)
		return -1;
	hook_req *r = xcalloc(1, sizeof *r);
	r->resp = done;
	r->arg = arg;
	r->max_body = max_body;
	return start(h, r, method, url, headers, n_headers, body, timeout_ms);
}

int hooks_running(const hooks *h)
{
	return h->running;
}

static void timer_closed(uv_handle_t *hd)
{
	free(hd->data);
}

void hooks_free(hooks *h, void (*drop)(void *arg))
{
	if (!h)
		return;
	h->closing = 1;
	while (h->reqs) {
		hook_req *r = h->reqs;
		h->reqs = r->next;
		/* removing the handle makes curl close its socket (CURL_POLL_REMOVE) */
		C.multi_remove_handle(h->multi, r->easy);
		C.easy_cleanup(r->easy);
		C.slist_free_all(r->headers);
		buf_release(&r->in);
		free(r->body);
		if (drop)
			drop(r->arg);
		free(r);
	}
	if (h->multi)
		C.multi_cleanup(h->multi);
	uv_timer_stop(&h->timer);
	uv_close((uv_handle_t *)&h->timer, timer_closed);
}
