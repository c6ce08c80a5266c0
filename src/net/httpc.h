/* httpc.h - libcurl's multi interface driven by a libuv loop: the glue the
 * webhooks and metric providers (hooks.c) and the Kubernetes client (k8s.c)
 * run their HTTP on, so that a slow server never blocks the proxy or the
 * analysis.
 *
 * libcurl is loaded with dlopen() on first use rather than linked (see
 * httpc.c for the figure), so its functions are called through the table
 * httpc_load() returns. A caller configures a CURL easy handle itself,
 * embeds an httpc_xfer in its own request and hands it to httpc_add(); the
 * transfer ends through the xfer's <done>. httpc owns no request memory:
 * bounds, queues and timeouts per request are the caller's business. */
#ifndef CANARYD_HTTPC_H
#define CANARYD_HTTPC_H

#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

/* The libcurl functions canaryd calls. */
typedef struct httpc_api {
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
} httpc_api;

/* Loads libcurl once per process (later calls return the first answer).
 * Returns the function table, or NULL with <err> saying why ("cannot load
 * libcurl: ..."). */
const httpc_api *httpc_load(char *err, size_t errlen);

typedef struct httpc httpc;
typedef struct httpc_xfer httpc_xfer;

/* Called once when the transfer of <x> ends, its easy handle already out
 * of the multi handle (the caller may clean it up or add it again):
 * <result> is CURLE_OK or why it failed. Never called for a transfer
 * removed with httpc_remove() or still running at httpc_free(). May call
 * httpc_add, httpc_remove and httpc_free. */
typedef void (*httpc_done_fn)(httpc_xfer *x, CURLcode result);

/* One transfer, embedded in the caller's request (httpc keeps a pointer to
 * it while it runs: CURLOPT_PRIVATE is httpc's). */
struct httpc_xfer {
	CURL *easy;            /* set up by the caller */
	httpc_done_fn done;
	void *arg;             /* the caller's, untouched */
	int running;           /* httpc's: in the multi handle */
};

/* A multi handle on <loop>. <max_host_connections> caps the connections
 * open to one host (the rest wait in curl), 0 for no cap. Returns NULL
 * with <err> when libcurl cannot be loaded or initialised. */
httpc *httpc_new(uv_loop_t *loop, long max_host_connections, char *err, size_t errlen);

/* Starts <x> (x->easy configured, x->done set). Returns 0, or -1 when curl
 * refuses it (<done> is then not called). */
int httpc_add(httpc *c, httpc_xfer *x);

/* Stops <x> if it is running; its <done> is not called. Removing the
 * handle closes its connection unless curl can keep it. Safe to call for a
 * transfer that already ended. Not from inside a libcurl callback (a write
 * or header function): end the transfer from there by returning an error
 * instead. */
void httpc_remove(httpc *c, httpc_xfer *x);

/* Transfers still running. */
int httpc_running(const httpc *c);

/* Frees <c> once its timer is closed. Every transfer must have ended or
 * been removed. May be called from a <done> callback: <c> then goes once
 * that dispatch returns. httpc_free(NULL) does nothing. */
void httpc_free(httpc *c);

#endif
