/* hooks.h - webhooks: HTTP POSTs with a JSON body, made with libcurl's
 * multi interface driven by the libuv loop, so that a slow receiver never
 * blocks the proxy or the analysis. */
#ifndef CANARYD_HOOKS_H
#define CANARYD_HOOKS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct hooks hooks;

/* Called once per post when it ends: <status> is the HTTP status, or 0 when
 * no response came (then <error> says why); <elapsed_ms> how long it took.
 * Not called for posts still running when hooks_free is called. */
typedef void (*hooks_done_fn)(void *arg, int status, const char *error,
                              uint64_t elapsed_ms);

/* Returns NULL when libcurl cannot be initialised. */
hooks *hooks_new(uv_loop_t *loop);

/* Starts a POST of <json> (copied) to <url> with Content-Type
 * application/json, failing <timeout_ms> after this call whether it got a
 * connection or not ("timed out after N ms"). Redirects are not followed.
 * Per receiver (scheme, host and port) at most 8 connections are open and
 * 64 requests running or waiting; one more is not sent and ends, like any
 * other, through <done> with an error ("not sent: 64 requests to
 * 'http://host:port' are already waiting for an answer"). Errors are one
 * line of printable ASCII. Returns 0, or -1 when the request cannot be
 * started (<done> is then not called). */
int hooks_post(hooks *h, const char *url, const char *json,
               uint64_t timeout_ms, hooks_done_fn done, void *arg);

/* A webhook's options (Flagger's CanaryWebhook). */
typedef struct hooks_opts {
	bool insecure;     /* disableTLS: an https receiver's certificate and
	                    * name are not checked */
	int retries;       /* retries: a post that fails to connect, times out
	                    * or gets 429 or a 5xx other than 501 is made again
	                    * up to this many times, HOOKS_RETRY_MIN_MS after,
	                    * doubling up to HOOKS_RETRY_MAX_MS (Flagger's
	                    * go-retryablehttp); each attempt has the whole
	                    * timeout; <done> is called once, for the last */
} hooks_opts;
#define HOOKS_RETRY_MIN_MS 1000
#define HOOKS_RETRY_MAX_MS 30000

/* As hooks_post, with <o> (NULL: none). */
int hooks_post_ex(hooks *h, const char *url, const char *json, uint64_t timeout_ms,
                  const hooks_opts *o, hooks_done_fn done, void *arg);

/* Called once per request when it ends, as hooks_done_fn, with the
 * response body (NUL-terminated, <body_len> bytes; empty on error). */
typedef void (*hooks_resp_fn)(void *arg, int status, const char *error,
                              const char *body, size_t body_len,
                              uint64_t elapsed_ms);

/* Starts an HTTP request: <method> "GET" or "POST", <headers> "Name: value"
 * lines (<n_headers> of them, copied), <body> (copied; NULL for none). The
 * response body is kept up to <max_body> bytes; a longer one fails the
 * request ("response larger than N bytes"). Same returns as hooks_post. */
int hooks_request(hooks *h, const char *method, const char *url,
                  const char *const *headers, size_t n_headers,
                  const char *body, uint64_t timeout_ms, size_t max_body,
                  hooks_resp_fn done, void *arg);

/* Posts still running. */
int hooks_running(const hooks *h);

/* Cancels every running post (their <done> is not called, their <arg> is
 * passed to <drop> so that it can be freed) and frees <h> once its handles
 * are closed. */
void hooks_free(hooks *h, void (*drop)(void *arg));

#endif
