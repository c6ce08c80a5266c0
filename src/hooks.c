/* hooks.c - see hooks.h. The glue between curl_multi_socket_action and
 * libuv: curl tells which sockets to watch (socket callback) and when to
 * call back (timer callback); libuv tells curl when a socket is ready. */
#include "hooks.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

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
};

static void check_done(hooks *h)
{
	CURLMsg *msg;
	int left;
	while ((msg = curl_multi_info_read(h->multi, &left))) {
		if (msg->msg != CURLMSG_DONE)
			continue;
		CURL *e = msg->easy_handle;
		hook_req *r = NULL;
		curl_easy_getinfo(e, CURLINFO_PRIVATE, (char **)&r);
		long code = 0;
		curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
		const char *err = NULL;
		if (msg->data.result != CURLE_OK)
			err = r->errbuf[0] ? r->errbuf : curl_easy_strerror(msg->data.result);
		curl_multi_remove_handle(h->multi, e);
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
		curl_easy_cleanup(e);
		curl_slist_free_all(r->headers);
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
	curl_multi_socket_action(h->multi, s->fd, flags, &running);
	check_done(h);
}

static void on_timer(uv_timer_t *t)
{
	hooks *h = t->data;
	int running;
	curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
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
			curl_multi_assign(h->multi, fd, NULL);
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
		curl_multi_assign(h->multi, fd, s);
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
	static int global_done;
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
			return NULL;
		global_done = 1;
	}
	hooks *h = xcalloc(1, sizeof *h);
	h->loop = loop;
	h->multi = curl_multi_init();
	if (!h->multi) {
		free(h);
		return NULL;
	}
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, socket_cb);
	curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, timer_cb);
	curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
	return h;
}

static int start(hooks *h, hook_req *r, const char *method, const char *url,
                 const char *const *headers, size_t n_headers, const char *body,
                 uint64_t timeout_ms)
{
	r->easy = curl_easy_init();
	if (!r->easy) {
		free(r);
		return -1;
	}
	r->started = uv_now(h->loop);
	for (size_t i = 0; i < n_headers; i++)
		r->headers = curl_slist_append(r->headers, headers[i]);
	CURL *e = r->easy;
	curl_easy_setopt(e, CURLOPT_URL, url);
	if (strcmp(method, "POST") == 0) {
		r->body = xstrdup(body ? body : "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	} else {
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)(timeout_ms ? timeout_ms : 60000));
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_USERAGENT, "canaryd");
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		curl_slist_free_all(r->headers);
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
		curl_multi_remove_handle(h->multi, r->easy);
		curl_easy_cleanup(r->easy);
		curl_slist_free_all(r->headers);
		buf_release(&r->in);
		free(r->body);
		if (drop)
			drop(r->arg);
		free(r);
	}
	curl_multi_cleanup(h->multi);
	uv_timer_stop(&h->timer);
	uv_close((uv_handle_t *)&h->timer, timer_closed);
}
