/* hooks.c - see hooks.h. The transfers run on httpc (libcurl's multi
 * interface on the libuv loop, libcurl loaded on the first request: see
 * httpc.c); what is here is what a webhook needs on top of it.
 *
 * A receiver that hangs must cost a bounded amount. Without a bound, an
 * event webhook whose receiver never answers held one socket per audit
 * event until its timeout (up to an hour): 77 sockets after 4 s at a 100
 * ms interval, and in time every descriptor the proxy needs to accept
 * clients. So, per receiver (scheme, host and port of the URL):
 * - at most HOOKS_CONNS_PER_HOST connections (curl queues the rest);
 * - at most HOOKS_QUEUE_PER_HOST requests running or queued; one more is
 *   not sent, and its callback says so ("not sent: ..."), on the next
 *   turn of the loop like any other end;
 * - every request ends by its own timeout counted from when it was asked
 *   for, queued or not (curl counts only from the connect): the sweep
 *   timer ends the late ones. */
#include "hooks.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpc.h"
#include "log.h"
#include "util.h"

/* libcurl's functions, through httpc's table (set by ensure_httpc before
 * any request exists) */
static const httpc_api *curl;
#define C (*curl)

#define HOOKS_CONNS_PER_HOST 8
#define HOOKS_QUEUE_PER_HOST 64 /* above what one check asks of one host:
                                 * 16 metrics, 3 reads each */

typedef struct hook_req {
	httpc_xfer x;            /* x.arg is the hook_req */
	CURL *easy;
	char host[128];          /* "scheme://host:port", what the bounds count */
	uint64_t deadline;       /* loop time by which it ends, answered or not */
	uint64_t timeout_ms;
	int in_curl;             /* added to the multi handle (else refused) */
	hooks *h;
	char refused[192];       /* why it was not sent, when !in_curl */
	struct curl_slist *headers;
	char *body;
	hooks_done_fn done;      /* one of done and resp is set */
	hooks_resp_fn resp;
	void *arg;
	buf in;                  /* the response body, up to max_body */
	size_t max_body;
	int too_large;
	bool insecure;           /* disableTLS: no certificate check */
	int retries_left;        /* hooks_opts.retries not made yet */
	uint64_t retry_wait_ms;  /* before the next one */
	bool waiting;            /* between two attempts: <deadline> is when
	                          * the next starts */
	uint64_t started;
	char errbuf[CURL_ERROR_SIZE];
	struct hook_req *next;
} hook_req;

struct hooks {
	uv_loop_t *loop;
	httpc *hc;               /* made on the first request */
	uv_timer_t sweep;        /* our deadlines, and refusals' callbacks */
	hook_req *reqs;
	int running;
	int closing;
	int load_error_logged;
};

static void arm_sweep(hooks *h);

/* Ends <r>, already unlinked from h->reqs: calls its callback with
 * <status> or <err>, then frees it. */
static void finish(hooks *h, hook_req *r, int status, const char *err)
{
	h->running--;
	uint64_t elapsed = uv_now(h->loop) - r->started;
	char msg[CURL_ERROR_SIZE + 64];
	if (r->too_large)
		snprintf(msg, sizeof msg, "response larger than %zu bytes", r->max_body);
	else
		snprintf(msg, sizeof msg, "%s", err ? err : "");
	/* curl's messages may quote the peer: one line of plain text */
	util_ascii_line(msg);
	err = err || r->too_large ? msg : NULL;
	if (r->done)
		r->done(r->arg, err ? 0 : status, err, elapsed);
	else
		r->resp(r->arg, err ? 0 : status, err, err ? "" : (r->in.p ? r->in.p : ""),
		        err ? 0 : r->in.len, elapsed);
	if (r->easy)
		C.easy_cleanup(r->easy);
	C.slist_free_all(r->headers);
	buf_release(&r->in);
	free(r->body);
	free(r);
}

static void unlink_req(hooks *h, hook_req *r)
{
	for (hook_req **pp = &h->reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
}

/* Whether an attempt that ended with <result> and <code> is made again
 * (go-retryablehttp's DefaultRetryPolicy). */
static bool retriable(CURLcode result, long code)
{
	if (result != CURLE_OK)
		return result != CURLE_UNSUPPORTED_PROTOCOL && result != CURLE_URL_MALFORMAT &&
		       result != CURLE_PEER_FAILED_VERIFICATION && result != CURLE_WRITE_ERROR;
	return code == 429 || code == 0 || (code >= 500 && code != 501);
}

/* Puts <r> (in h->reqs, not in curl) to wait for its next attempt. */
static void wait_retry(hooks *h, hook_req *r)
{
	r->retries_left--;
	r->waiting = true;
	r->deadline = uv_now(h->loop) + r->retry_wait_ms;
	r->retry_wait_ms = r->retry_wait_ms * 2 > HOOKS_RETRY_MAX_MS ? HOOKS_RETRY_MAX_MS
	                                                             : r->retry_wait_ms * 2;
	buf_reset(&r->in);
	r->too_large = 0;
	r->errbuf[0] = '\0';
}

static void xfer_done(httpc_xfer *x, CURLcode result)
{
	hook_req *r = x->arg;
	hooks *h = r->h;
	long code = 0;
	C.easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &code);
	if (r->retries_left > 0 && !r->too_large && retriable(result, code)) {
		wait_retry(h, r);
		arm_sweep(h);
		return;
	}
	const char *err = NULL;
	if (result != CURLE_OK)
		err = r->errbuf[0] ? r->errbuf : C.easy_strerror(result);
	/* unlink before the callback: it may post again */
	unlink_req(h, r);
	finish(h, r, (int)code, err);
	arm_sweep(h);
}

/* Ends every request past its deadline, and every refused one. One at a
 * time, from the head of the list again after each: a callback may post. */
static void on_sweep(uv_timer_t *t)
{
	hooks *h = t->data;
	for (;;) {
		uint64_t now = uv_now(h->loop);
		hook_req *r = h->reqs;
		while (r && r->deadline > now)
			r = r->next;
		if (!r)
			break;
		if (r->waiting) {
			/* the next attempt: the whole timeout again */
			r->waiting = false;
			r->deadline = now + r->timeout_ms;
			if (httpc_add(h->hc, &r->x) == 0)
				continue;
			snprintf(r->refused, sizeof r->refused, "cannot make the request again");
			r->in_curl = 0;
		} else if (r->in_curl && r->retries_left > 0) {
			httpc_remove(h->hc, &r->x);
			wait_retry(h, r);
			continue;
		}
		unlink_req(h, r);
		char err[256];
		if (!r->in_curl) {
			snprintf(err, sizeof err, "%s", r->refused);
		} else {
			/* removing the handle closes its connection */
			httpc_remove(h->hc, &r->x);
			snprintf(err, sizeof err, "timed out after %llu ms",
			         (unsigned long long)r->timeout_ms);
		}
		finish(h, r, 0, err);
	}
	arm_sweep(h);
}

/* Sets the sweep timer to the earliest deadline (the list is short: it
 * is bounded per receiver). */
static void arm_sweep(hooks *h)
{
	if (h->closing)
		return;
	uint64_t first = UINT64_MAX, now = uv_now(h->loop);
	for (hook_req *r = h->reqs; r; r = r->next)
		if (r->deadline < first)
			first = r->deadline;
	if (first == UINT64_MAX)
		uv_timer_stop(&h->sweep);
	else
		uv_timer_start(&h->sweep, on_sweep, first > now ? first - now : 0, 0);
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
	uv_timer_init(loop, &h->sweep);
	h->sweep.data = h;
	return h;
}

/* The transfers' driver, made (and libcurl loaded) on the first request.
 * Returns 0, or -1 after logging why once. */
static int ensure_httpc(hooks *h)
{
	if (h->hc)
		return 0;
	char err[256] = "";
	h->hc = httpc_new(h->loop, HOOKS_CONNS_PER_HOST, err, sizeof err);
	if (!h->hc) {
		if (!h->load_error_logged)
			log_msg(LOG_ERROR, NULL, "webhooks and metric providers cannot run: %s", err);
		h->load_error_logged = 1;
		return -1;
	}
	curl = httpc_load(err, sizeof err);
	return 0;
}

/* "scheme://host:port" of <url> (its authority without user info), lower
 * case, for counting requests per receiver. */
static void host_key(const char *url, char *out, size_t outlen)
{
	const char *p = strstr(url, "://");
	p = p ? p + 3 : url;
	size_t n = strcspn(p, "/?#");
	const char *at = memchr(p, '@', n);
	size_t start = at ? (size_t)(at + 1 - url) : (size_t)(p - url);
	size_t end = (size_t)(p - url) + n;
	size_t k = 0;
	for (size_t i = 0; i < (size_t)(p - url) && k + 1 < outlen; i++)
		out[k++] = (char)tolower((unsigned char)url[i]);
	for (size_t i = start; i < end && k + 1 < outlen; i++)
		out[k++] = (char)tolower((unsigned char)url[i]);
	out[k] = '\0';
}

static int start(hooks *h, hook_req *r, const char *method, const char *url,
                 const char *const *headers, size_t n_headers, const char *body,
                 uint64_t timeout_ms)
{
	if (ensure_httpc(h) < 0) {
		free(r);
		return -1;
	}
	r->started = uv_now(h->loop);
	r->timeout_ms = timeout_ms ? timeout_ms : 60000;
	host_key(url, r->host, sizeof r->host);
	int same = 0;
	for (hook_req *o = h->reqs; o; o = o->next)
		same += o->in_curl && strcmp(o->host, r->host) == 0;
	if (same >= HOOKS_QUEUE_PER_HOST) {
		/* refused, but ended like any other request: on the sweep */
		snprintf(r->refused, sizeof r->refused, "not sent: %d requests to '%.100s' are "
		         "already waiting for an answer", same, r->host);
		r->deadline = r->started;
		r->next = h->reqs;
		h->reqs = r;
		h->running++;
		arm_sweep(h);
		return 0;
	}
	r->easy = C.easy_init();
	if (!r->easy) {
		free(r);
		return -1;
	}
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
	C.easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms);
	C.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	C.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	C.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	C.easy_setopt(e, CURLOPT_WRITEFUNCTION, collect);
	C.easy_setopt(e, CURLOPT_WRITEDATA, r);
	C.easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	C.easy_setopt(e, CURLOPT_USERAGENT, "canaryd");
	if (r->insecure) {
		C.easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 0L);
		C.easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	r->x.easy = e;
	r->x.done = xfer_done;
	r->x.arg = r;
	r->h = h;
	if (httpc_add(h->hc, &r->x) != 0) {
		C.easy_cleanup(e);
		C.slist_free_all(r->headers);
		free(r->body);
		free(r);
		return -1;
	}
	r->in_curl = 1;
	r->deadline = r->started + r->timeout_ms;
	r->next = h->reqs;
	h->reqs = r;
	h->running++;
	arm_sweep(h);
	return 0;
}

int hooks_post(hooks *h, const char *url, const char *json,
               uint64_t timeout_ms, hooks_done_fn done, void *arg)
{
	return hooks_post_ex(h, url, json, timeout_ms, NULL, done, arg);
}

int hooks_post_ex(hooks *h, const char *url, const char *json, uint64_t timeout_ms,
                  const hooks_opts *o, hooks_done_fn done, void *arg)
{
	if (h->closing)
		return -1;
	hook_req *r = xcalloc(1, sizeof *r);
	if (o) {
		r->insecure = o->insecure;
		r->retries_left = o->retries;
	}
	r->retry_wait_ms = HOOKS_RETRY_MIN_MS;
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

static void sweep_closed(uv_handle_t *hd)
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
		/* removing the handle makes curl close its socket */
		if (r->in_curl) {
			httpc_remove(h->hc, &r->x);
			C.easy_cleanup(r->easy);
		}
		C.slist_free_all(r->headers);
		buf_release(&r->in);
		free(r->body);
		if (drop)
			drop(r->arg);
		free(r);
	}
	httpc_free(h->hc);
	uv_timer_stop(&h->sweep);
	uv_close((uv_handle_t *)&h->sweep, sweep_closed);
}
