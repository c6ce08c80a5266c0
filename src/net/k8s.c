/* k8s.c - the Kubernetes REST client's transport: requests, the
 * read-modify-write loop, discovery and watches, on httpc (libcurl's multi
 * interface on the libuv loop). The pure parts (paths, Status objects,
 * events, readiness) are in k8s_parse.c, the configuration in
 * k8s_config.c. See k8s.h for the contract.
 *
 * Credentials. A bound service-account token rotates (kubelet rewrites the
 * file well before the old one expires, about hourly): the file is read
 * again when the copy in memory is older than token_reload_ms, and at once
 * when the API answers 401, after which the request is sent once more with
 * the new token. A token that cannot be read again keeps the last good one
 * in use (the file being rewritten is not a reason to stop).
 *
 * Teardown. Nothing is freed inside its own callback (as in Redis and
 * libuv): a request is unlinked before its callback runs and freed after;
 * k8s_free and k8s_watch_stop called from a callback only mark, and the
 * entry point that called the callback finishes the job once it returns.
 * The <depth> counters say whether we are inside a callback.
 *
 * Watches. Events arrive inside libcurl's write callback, where nothing
 * may touch the multi handle; the bytes are kept and handed to the
 * caller from a zero-delay timer (the "pump"), outside libcurl, where the
 * caller may start requests or stop the watch. */
#include "k8s.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpc.h"
#include "util.h"

#define K8S_MAX_INFLIGHT 64      /* requests, watches not counted */
#define K8S_MAX_WATCHES 32
#define K8S_UPSERT_ATTEMPTS 5    /* GET + write rounds before a 409 stands */
#define K8S_WATCH_MARGIN_S 15    /* past timeoutSeconds, the client gives up */
#define K8S_HEALTHY_MS 1000      /* a watch connection this long was not a failure */

static const httpc_api *curl;
#define C (*curl)

typedef struct req req;

/* What a request does when its answer is complete: <status> the HTTP
 * status (0 on a transport error), <terr> the transport error or NULL. */
typedef void (*req_cb)(req *r, int status, const char *terr);

struct k8s {
	uv_loop_t *loop;
	httpc *hc;
	k8s_config cfg;           /* our own copy */
	char *token;              /* what is sent; NULL: anonymous */
	uint64_t token_read_at;   /* loop time of the last read of cfg.token_file */
	req *reqs;                /* in flight, watches' requests included */
	int inflight;             /* not counting watches' */
	k8s_watch *watches;
	int nwatches;
	int depth;                /* inside a caller's callback */
	int free_pending;
};

struct req {
	httpc_xfer x;
	k8s *k;
	req *next;
	char method[8];
	char verb[8];             /* RBAC verb, for messages */
	char url[2048];
	char ctype[48];
	char *body;
	size_t body_len;
	struct curl_slist *headers;
	/* what it is about, copied */
	char group[254], version[64], resource[64], ns[64], name[254];
	int has_name;
	buf in;                   /* the answer's body, up to max_body */
	int too_large;
	int http_status;          /* from the status line (watches need it early) */
	char warnings[1024];
	char errbuf[CURL_ERROR_SIZE];
	int auth_retried;
	int counted;              /* in k->inflight */
	req_cb cb;
	void *cb_arg;
	void (*drop)(void *cb_arg); /* frees cb_arg when cancelled */
	k8s_watch *watch;         /* a watch's request: its body streams */
	uint64_t started;
};

struct k8s_watch {
	k8s *k;
	k8s_watch *next;
	char group[254], version[64], resource[64], ns[64], name[254];
	int has_name;
	k8s_watch_opts opts;
	k8s_watch_fn fn;
	void *arg;
	char rv[128];             /* where we stand; "" before the first list */
	int relist;               /* the next connection lists first */
	req *cur;                 /* the list or watch request running */
	uv_timer_t retry;         /* backoff between connections */
	uv_timer_t pump;          /* hands streamed events to the caller */
	int open_handles;
	buf pending;              /* streamed bytes not yet handed over */
	char stream_err[256];     /* why the stream was cut, from the write callback */
	int gone;                 /* a 410 came: list again */
	int progress;             /* events on this connection */
	int listed;               /* the last connection was a list */
	int after_list;           /* this watch starts from a list's version */
	uint64_t backoff;
	int depth;                /* inside fn */
	int stopping;
	int torn;
};

/* ---- small helpers ---------------------------------------------------- */

static void maybe_free(k8s *k);

static void ref_copy(const k8s_ref *ref, const char *ns, char *group, char *version,
                     char *resource, char *nsout, char *name, int *has_name)
{
	snprintf(group, 254, "%s", ref->group ? ref->group : "");
	snprintf(version, 64, "%s", ref->version ? ref->version : "");
	snprintf(resource, 64, "%s", ref->resource ? ref->resource : "");
	snprintf(nsout, 64, "%s", ns ? ns : "");
	snprintf(name, 254, "%s", ref->name ? ref->name : "");
	*has_name = ref->name != NULL;
}

static k8s_ref req_ref(const req *r)
{
	k8s_ref ref = { r->group, r->version, r->resource, r->ns, r->has_name ? r->name : NULL };
	return ref;
}

/* Percent-encodes <s> into <b> for a query value. */
static void query_escape(buf *b, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~')
			buf_append(b, s, 1);
		else
			buf_printf(b, "%%%02X", c);
	}
}

/* The token to send: re-read from the file when stale or <force>d.
 * Returns it (NULL: anonymous), or NULL with <err> when a token file has
 * never been readable. */
static const char *current_token(k8s *k, int force, char *err, size_t errlen)
{
	if (!k->cfg.token_file)
		return k->token;
	uint64_t now = uv_now(k->loop);
	if (!force && k->token && now - k->token_read_at < k->cfg.token_reload_ms)
		return k->token;
	FILE *f = fopen(k->cfg.token_file, "rb");
	char tok[16384];
	size_t n = 0;
	if (f) {
		n = fread(tok, 1, sizeof tok - 1, f);
		fclose(f);
	}
	tok[n] = '\0';
	while (n && (tok[n - 1] == '\n' || tok[n - 1] == '\r' || tok[n - 1] == ' '))
		tok[--n] = '\0';
	int ok = n > 0 && n < sizeof tok - 1;
	for (size_t i = 0; ok && i < n; i++)
		ok = (unsigned char)tok[i] > 0x20 && (unsigned char)tok[i] < 0x7f;
	if (ok) {
		if (!k->token || strcmp(k->token, tok) != 0) {
			free(k->token);
			k->token = xstrdup(tok);
		}
		k->token_read_at = now;
	} else if (!k->token) {
		snprintf(err, errlen, "cannot read a token from '%s'", k->cfg.token_file);
		return NULL;
	}
	return k->token;
}

/* ---- requests --------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *u);
static size_t on_header(char *p, size_t size, size_t n, void *u);
static void xfer_done(httpc_xfer *x, CURLcode result);

static void req_free(req *r)
{
	if (r->x.easy)
		C.easy_cleanup(r->x.easy);
	C.slist_free_all(r->headers);
	free(r->body);
	buf_release(&r->in);
	free(r);
}

static void req_unlink(k8s *k, req *r)
{
	for (req **pp = &k->reqs; *pp; pp = &(*pp)->next)
		if (*pp == r) {
			*pp = r->next;
			break;
		}
	if (r->counted) {
		k->inflight--;
		r->counted = 0;
	}
}

/* (Re)configures r's easy handle with the current token and adds it.
 * Returns 0, or -1 with <err>. */
static int req_send(req *r, int force_token, char *err, size_t errlen)
{
	k8s *k = r->k;
	const char *tok = current_token(k, force_token, err, errlen);
	if (!tok && k->cfg.token_file)
		return -1;
	if (!r->x.easy && !(r->x.easy = C.easy_init())) {
		snprintf(err, errlen, "curl_easy_init failed");
		return -1;
	}
	CURL *e = r->x.easy;
	C.slist_free_all(r->headers);
	r->headers = NULL;
	buf h = BUF_INIT;
	if (tok) {
		buf_printf(&h, "Authorization: Bearer %s", tok);
		r->headers = C.slist_append(r->headers, h.p);
		/* the header holds a secret: do not leave it in freed memory */
		memset(h.p, 0, h.len);
	}
	buf_release(&h);
	r->headers = C.slist_append(r->headers, "Accept: application/json");
	if (r->ctype[0]) {
		char ct[80];
		snprintf(ct, sizeof ct, "Content-Type: %s", r->ctype);
		r->headers = C.slist_append(r->headers, ct);
	}
	/* no "Expect: 100-continue" round trip on large bodies */
	r->headers = C.slist_append(r->headers, "Expect:");
	buf_reset(&r->in);
	r->too_large = 0;
	r->http_status = 0;
	r->warnings[0] = '\0';
	r->errbuf[0] = '\0';
	C.easy_setopt(e, CURLOPT_URL, r->url);
	if (r->body) {
		C.easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
		C.easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	} else {
		C.easy_setopt(e, CURLOPT_HTTPGET, 1L);
	}
	if (strcmp(r->method, "GET") != 0)
		C.easy_setopt(e, CURLOPT_CUSTOMREQUEST, r->method);
	C.easy_setopt(e, CURLOPT_HTTPHEADER, r->headers);
	uint64_t timeout = k->cfg.timeout_ms;
	if (r->watch)
		timeout = ((uint64_t)r->watch->opts.timeout_s + K8S_WATCH_MARGIN_S) * 1000;
	C.easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)timeout);
	C.easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)k->cfg.timeout_ms);
	C.easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	C.easy_setopt(e, CURLOPT_FOLLOWLOCATION, 0L);
	C.easy_setopt(e, CURLOPT_PROTOCOLS_STR, "https");
	/* what the test API server speaks; see docs/kubernetes.md */
	C.easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	C.easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	C.easy_setopt(e, CURLOPT_WRITEDATA, r);
	C.easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	C.easy_setopt(e, CURLOPT_HEADERDATA, r);
	C.easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	C.easy_setopt(e, CURLOPT_USERAGENT, "canaryd");
	if (k->cfg.ca_pem) {
		struct curl_blob ca = { k->cfg.ca_pem, strlen(k->cfg.ca_pem), CURL_BLOB_COPY };
		C.easy_setopt(e, CURLOPT_CAINFO_BLOB, &ca);
		/* the cluster's CA only: not also the system's CA folder */
		C.easy_setopt(e, CURLOPT_CAPATH, (char *)NULL);
	}
	if (k->cfg.cert_pem && k->cfg.key_pem) {
		struct curl_blob cert = { k->cfg.cert_pem, strlen(k->cfg.cert_pem), CURL_BLOB_COPY };
		struct curl_blob key = { k->cfg.key_pem, strlen(k->cfg.key_pem), CURL_BLOB_COPY };
		C.easy_setopt(e, CURLOPT_SSLCERT_BLOB, &cert);
		C.easy_setopt(e, CURLOPT_SSLCERTTYPE, "PEM");
		C.easy_setopt(e, CURLOPT_SSLKEY_BLOB, &key);
		C.easy_setopt(e, CURLOPT_SSLKEYTYPE, "PEM");
	}
	r->x.done = xfer_done;
	r->x.arg = r;
	r->started = uv_now(k->loop);
	if (httpc_add(k->hc, &r->x) != 0) {
		snprintf(err, errlen, "curl refused the request");
		return -1;
	}
	return 0;
}

/* Starts <method> on <path> (below the server) with <query> (may be NULL)
 * and <body> (may be NULL, copied) for <ref> in <ns>. <cb> gets the
 * answer. Returns the request, or NULL with <err> (nothing started). */
static req *req_start(k8s *k, const char *method, const char *verb, const k8s_ref *ref,
                      const char *ns, const char *path, const char *query,
                      const char *ctype, const char *body, req_cb cb, void *cb_arg,
                      k8s_watch *w, char *err, size_t errlen)
{
	if (k->free_pending) {
		snprintf(err, errlen, "the client is closing");
		return NULL;
	}
	if (!w && k->inflight >= K8S_MAX_INFLIGHT) {
		snprintf(err, errlen, "not sent: %d requests to the API are already running",
		         k->inflight);
		return NULL;
	}
	req *r = xcalloc(1, sizeof *r);
	r->k = k;
	snprintf(r->method, sizeof r->method, "%s", method);
	snprintf(r->verb, sizeof r->verb, "%s", verb);
	int n = snprintf(r->url, sizeof r->url, "%s%s%s%s", k->cfg.server, path,
	                 query && query[0] ? "?" : "", query ? query : "");
	if (n < 0 || (size_t)n >= sizeof r->url) {
		free(r);
		snprintf(err, errlen, "URL too long");
		return NULL;
	}
	snprintf(r->ctype, sizeof r->ctype, "%s", ctype ? ctype : "");
	if (body) {
		r->body = xstrdup(body);
		r->body_len = strlen(body);
	}
	ref_copy(ref, ns, r->group, r->version, r->resource, r->ns, r->name, &r->has_name);
	r->cb = cb;
	r->cb_arg = cb_arg;
	r->watch = w;
	if (req_send(r, 0, err, errlen) != 0) {
		req_free(r);
		return NULL;
	}
	r->next = k->reqs;
	k->reqs = r;
	if (!w) {
		r->counted = 1;
		k->inflight++;
	}
	return r;
}

static size_t on_header(char *p, size_t size, size_t n, void *u)
{
	req *r = u;
	size_t len = size * n;
	if (len > 5 && memcmp(p, "HTTP/", 5) == 0) {
		/* a new response (after a 100 Continue, say): start over */
		r->warnings[0] = '\0';
		const char *sp = memchr(p, ' ', len);
		r->http_status = 0;
		if (sp && (size_t)(sp - p) + 4 <= len)
			r->http_status = atoi(sp + 1);
	} else if (len > 8 && strncasecmp(p, "Warning:", 8) == 0) {
		char v[1024];
		size_t m = len - 8 < sizeof v - 1 ? len - 8 : sizeof v - 1;
		memcpy(v, p + 8, m);
		v[m] = '\0';
		v[strcspn(v, "\r\n")] = '\0';
		k8s_warning_text(v, r->warnings, sizeof r->warnings);
	}
	return len;
}

static size_t stream_bytes(req *r, const char *p, size_t len);

static size_t on_body(char *p, size_t size, size_t n, void *u)
{
	req *r = u;
	size_t len = size * n;
	if (r->watch && r->http_status == 200)
		return stream_bytes(r, p, len);
	if (r->in.len + len > r->k->cfg.max_body) {
		r->too_large = 1;
		return 0; /* makes curl fail the transfer */
	}
	buf_append(&r->in, p, len);
	return len;
}

static void xfer_done(httpc_xfer *x, CURLcode result)
{
	req *r = x->arg;
	k8s *k = r->k;
	long code = 0;
	C.easy_getinfo(r->x.easy, CURLINFO_RESPONSE_CODE, &code);
	/* a 401 may be a token that rotated under us: read it again, and if
	 * it changed, send once more */
	if (result == CURLE_OK && code == 401 && !r->auth_retried && k->cfg.token_file) {
		char *before = k->token ? xstrdup(k->token) : NULL;
		char err[256];
		const char *tok = current_token(k, 1, err, sizeof err);
		int changed = tok && (!before || strcmp(before, tok) != 0);
		free(before);
		r->auth_retried = 1;
		if (changed && req_send(r, 0, err, sizeof err) == 0)
			return;
	}
	char terr[CURL_ERROR_SIZE + 256] = "";
	if (r->too_large) {
		snprintf(terr, sizeof terr, "the answer is larger than %zu bytes", k->cfg.max_body);
	} else if (result == CURLE_OPERATION_TIMEDOUT) {
		snprintf(terr, sizeof terr, "no answer from '%s' within %llu ms", k->cfg.server,
		         (unsigned long long)(uv_now(k->loop) - r->started));
	} else if (result != CURLE_OK) {
		snprintf(terr, sizeof terr, "'%s': %s", k->cfg.server,
		         r->errbuf[0] ? r->errbuf : C.easy_strerror(result));
	}
	util_ascii_line(terr);
	/* unlinked before the callback: k8s_free from there must not see it */
	req_unlink(k, r);
	k->depth++;
	r->cb(r, terr[0] ? 0 : (int)code, terr[0] ? terr : NULL);
	k->depth--;
	req_free(r);
	maybe_free(k);
}

/* ---- results ---------------------------------------------------------- */

static void deliver(k8s *k, k8s_done_fn done, void *arg, k8s_result *res)
{
	if (k->free_pending)
		return;
	k->depth++;
	done(arg, res);
	k->depth--;
}

/* The error line for <r>'s answer: a transport error, or what the API
 * said (a Status), in <out>. */
static void answer_error(const req *r, int status, const char *terr, char *out, size_t outlen)
{
	k8s_ref ref = req_ref(r);
	if (terr) {
		char what[600];
		k8s_describe(&ref, r->ns, what, sizeof what);
		snprintf(out, outlen, "cannot %s %s: %s", r->verb, what, terr);
	} else {
		k8s_error_text(r->verb, &ref, r->ns, status, r->in.p ? r->in.p : "", r->in.len,
		               out, outlen);
		if (status == 401) {
			size_t n = strlen(out);
			snprintf(out + n, outlen - n, " (credentials from %s%s)", r->k->cfg.source,
			         r->k->cfg.token_file ? ", the token file read again" : "");
		}
	}
	util_ascii_line(out);
}

/* The answer's body as a JSON object, or NULL with <out> saying why. */
static json_t *answer_object(const req *r, int status, char *out, size_t outlen)
{
	json_error_t je;
	json_t *j = json_loadb(r->in.p ? r->in.p : "", r->in.len, JSON_REJECT_DUPLICATES, &je);
	if (!json_is_object(j)) {
		char what[600];
		k8s_ref ref = req_ref(r);
		k8s_describe(&ref, r->ns, what, sizeof what);
		snprintf(out, outlen, "cannot %s %s: the API answered %d with %s%s", r->verb, what,
		         status, j ? "JSON that is not an object" : "something that is not JSON: ",
		         j ? "" : je.text);
		util_ascii_line(out);
		json_decref(j);
		return NULL;
	}
	return j;
}

static const char *status_reason(const req *r)
{
	static char reason[64];
	k8s_status st;
	reason[0] = '\0';
	if (r->in.len && k8s_parse_status(r->in.p, r->in.len, &st) == 0)
		snprintf(reason, sizeof reason, "%s", st.reason);
	return reason;
}

typedef struct simple_op {
	k8s_done_fn done;
	void *arg;
	int list;                 /* the answer must be a list */
} simple_op;

static void simple_done(req *r, int status, const char *terr)
{
	simple_op *op = r->cb_arg;
	char err[2048] = "";
	k8s_result res = { .status = status, .reason = "", .attempts = 1 };
	json_t *obj = NULL;
	if (terr || status < 200 || status > 299) {
		answer_error(r, status, terr, err, sizeof err);
		if (!terr)
			res.reason = status_reason(r);
	} else if (r->in.len || strcmp(r->method, "DELETE") != 0) {
		obj = answer_object(r, status, err, sizeof err);
		if (obj && op->list && !json_is_array(json_object_get(obj, "items"))) {
			char what[600];
			k8s_ref ref = req_ref(r);
			k8s_describe(&ref, r->ns, what, sizeof what);
			snprintf(err, sizeof err, "cannot list %s: the answer has no items array", what);
			json_decref(obj);
			obj = NULL;
		}
	}
	res.error = err[0] ? err : NULL;
	res.object = obj;
	res.warnings = r->warnings[0] ? r->warnings : NULL;
	deliver(r->k, op->done, op->arg, &res);
	json_decref(obj);
	free(op);
}

/* ---- operations ------------------------------------------------------- */

static const char *ns_of(const k8s *k, const k8s_ref *ref)
{
	return ref->ns && ref->ns[0] ? ref->ns : k->cfg.namespace;
}

/* Starts one request whose answer goes straight to <done>. */
static int simple(k8s *k, const char *method, const char *verb, const k8s_ref *ref,
                  const char *sub, const char *query, const char *ctype, const json_t *body,
                  int list, k8s_done_fn done, void *arg, char *err, size_t errlen)
{
	char path[1024];
	const char *ns = ns_of(k, ref);
	if (k8s_path(ref, ns, sub, path, sizeof path, err, errlen) != 0)
		return -1;
	char *text = NULL;
	if (body && !(text = json_dumps(body, JSON_COMPACT))) {
		snprintf(err, errlen, "cannot serialise the object");
		return -1;
	}
	simple_op *op = xcalloc(1, sizeof *op);
	op->done = done;
	op->arg = arg;
	op->list = list;
	req *r = req_start(k, method, verb, ref, ns, path, query, ctype, text, simple_done, op,
	                   NULL, err, errlen);
	free(text);
	if (!r) {
		free(op);
		return -1;
	}
	r->drop = free;
	return 0;
}

#define WRITE_QUERY "fieldManager=canaryd&fieldValidation=Strict"

int k8s_get(k8s *k, const k8s_ref *ref, const char *label_selector,
            k8s_done_fn done, void *arg, char *err, size_t errlen)
{
	buf q = BUF_INIT;
	if (label_selector && label_selector[0] && !ref->name) {
		buf_puts(&q, "labelSelector=");
		query_escape(&q, label_selector);
	}
	int rc = simple(k, "GET", ref->name ? "get" : "list", ref, NULL, q.p, NULL, NULL,
	                !ref->name, done, arg, err, errlen);
	buf_release(&q);
	return rc;
}

/* metadata.<key> of <obj> as a string, or NULL. */
static const char *meta_str(const json_t *obj, const char *key)
{
	return json_string_value(json_object_get(json_object_get(obj, "metadata"), key));
}

int k8s_create(k8s *k, const k8s_ref *ref, const json_t *obj,
               k8s_done_fn done, void *arg, char *err, size_t errlen)
{
	const char *name = meta_str(obj, "name");
	if (!json_is_object(obj) || !name) {
		snprintf(err, errlen, "the object to create has no metadata.name");
		return -1;
	}
	if (ref->name && strcmp(ref->name, name) != 0) {
		snprintf(err, errlen, "the object is named '%.100s', not '%.100s'", name, ref->name);
		util_ascii_line(err);
		return -1;
	}
	k8s_ref coll = *ref;
	coll.name = NULL;
	char path[1024];
	const char *ns = ns_of(k, ref);
	k8s_ref named_ref = *ref;
	named_ref.name = name;
	if (k8s_path(&named_ref, ns, NULL, path, sizeof path, err, errlen) != 0)
		return -1;
	return simple(k, "POST", "create", &coll, NULL, WRITE_QUERY, "application/json", obj, 0,
	              done, arg, err, errlen);
}

/* <ref> names an object and <obj> (if given) is an object of that name. */
static int check_named(const k8s_ref *ref, const json_t *obj, char *err, size_t errlen)
{
	if (!ref->name) {
		snprintf(err, errlen, "no object name given");
		return -1;
	}
	if (obj) {
		const char *name = meta_str(obj, "name");
		if (!json_is_object(obj) || (name && strcmp(name, ref->name) != 0)) {
			snprintf(err, errlen, "the object is not one named '%.100s'", ref->name);
			util_ascii_line(err);
			return -1;
		}
	}
	return 0;
}

int k8s_update(k8s *k, const k8s_ref *ref, const json_t *obj, const char *subresource,
               k8s_done_fn done, void *arg, char *err, size_t errlen)
{
	if (check_named(ref, obj, err, errlen) != 0)
		return -1;
	const char *rv = meta_str(obj, "resourceVersion");
	if (!rv || !rv[0]) {
		snprintf(err, errlen, "the object has no metadata.resourceVersion (an update without "
		         "one would overwrite whatever is there)");
		return -1;
	}
	return simple(k, "PUT", "update", ref, subresource, WRITE_QUERY, "application/json", obj,
	              0, done, arg, err, errlen);
}

int k8s_apply(k8s *k, const k8s_ref *ref, const json_t *obj,
              k8s_done_fn done, void *arg, char *err, size_t errlen)
{
	if (check_named(ref, obj, err, errlen) != 0)
		return -1;
	if (!json_string_value(json_object_get(obj, "apiVersion")) ||
	    !json_string_value(json_object_get(obj, "kind"))) {
		snprintf(err, errlen, "an applied object needs apiVersion and kind");
		return -1;
	}
	return simple(k, "PATCH", "patch", ref, NULL, WRITE_QUERY "&force=true",
	              "application/apply-patch+yaml", obj, 0, done, arg, err, errlen);
}

int k8s_merge_patch(k8s *k, const k8s_ref *ref, const json_t *patch,
                    k8s_done_fn done, void *arg, char *err, size_t errlen)
{
	if (check_named(ref, NULL, err, errlen) != 0)
		return -1;
	if (!json_is_object(patch)) {
		snprintf(err, errlen, "a merge patch is a JSON object");
		return -1;
	}
	return simple(k, "PATCH", "patch", ref, NULL, WRITE_QUERY, "application/merge-patch+json",
	              patch, 0, done, arg, err, errlen);
}

int k8s_json_patch(k8s *k, const k8s_ref *ref, const json_t *ops,
                   k8s_done_fn done, void *arg, char *err, size_t errlen)
{
	if (check_named(ref, NULL, err, errlen) != 0)
		return -1;
	if (!json_is_array(ops)) {
		snprintf(err, errlen, "a JSON patch is an array of operations");
		return -1;
	}
	return simple(k, "PATCH", "patch", ref, NULL, WRITE_QUERY, "application/json-patch+json",
	              ops, 0, done, arg, err, errlen);
}

int k8s_delete(k8s *k, const k8s_ref *ref, k8s_done_fn done, void *arg, char *err,
               size_t errlen)
{
	if (check_named(ref, NULL, err, errlen) != 0)
		return -1;
	return simple(k, "DELETE", "delete", ref, NULL, NULL, NULL, NULL, 0, done, arg, err, errlen);
}

/* ---- upsert: GET, then create or PUT with the fetched resourceVersion -- */

typedef struct upsert_op {
	k8s *k;
	char group[254], version[64], resource[64], ns[64], name[254];
	int has_name;
	k8s_mutate_fn mutate;
	void *marg;
	k8s_done_fn done;
	void *arg;
	int attempts;
	json_t *live;             /* what the last GET found, or NULL */
} upsert_op;

static void upsert_free(void *p)
{
	upsert_op *op = p;
	json_decref(op->live);
	free(op);
}

static k8s_ref upsert_ref(const upsert_op *op)
{
	k8s_ref ref = { op->group, op->version, op->resource, op->ns, op->name };
	return ref;
}

static void upsert_finish(upsert_op *op, int status, const char *error, const char *reason,
                          json_t *obj, int written, const char *warnings)
{
	k8s_result res = { .status = status, .error = error, .object = obj,
	                   .reason = reason ? reason : "", .warnings = warnings,
	                   .attempts = op->attempts, .written = written };
	deliver(op->k, op->done, op->arg, &res);
	upsert_free(op);
}

static void upsert_got(req *r, int status, const char *terr);
static void upsert_wrote(req *r, int status, const char *terr);

static void upsert_step(upsert_op *op)
{
	char err[512], path[1024];
	k8s_ref ref = upsert_ref(op);
	op->attempts++;
	json_decref(op->live);
	op->live = NULL;
	if (k8s_path(&ref, op->ns, NULL, path, sizeof path, err, sizeof err) != 0) {
		upsert_finish(op, 0, err, NULL, NULL, 0, NULL);
		return;
	}
	req *r = req_start(op->k, "GET", "get", &ref, op->ns, path, NULL, NULL, NULL, upsert_got,
	                   op, NULL, err, sizeof err);
	if (!r) {
		char msg[1200], what[600];
		k8s_describe(&ref, op->ns, what, sizeof what);
		snprintf(msg, sizeof msg, "cannot get %s: %s", what, err);
		upsert_finish(op, 0, msg, NULL, NULL, 0, NULL);
		return;
	}
	r->drop = upsert_free;
}

static void upsert_got(req *r, int status, const char *terr)
{
	upsert_op *op = r->cb_arg;
	k8s *k = op->k;
	char err[2048] = "";
	k8s_status st;
	int absent = !terr && status == 404 && r->in.len &&
	             k8s_parse_status(r->in.p, r->in.len, &st) == 0 && st.details_name[0];
	if (!absent && (terr || status != 200)) {
		answer_error(r, status, terr, err, sizeof err);
		upsert_finish(op, status, err, terr ? NULL : status_reason(r), NULL, 0, r->warnings);
		return;
	}
	if (!absent && !(op->live = answer_object(r, status, err, sizeof err))) {
		upsert_finish(op, status, err, NULL, NULL, 0, NULL);
		return;
	}
	json_t *want = NULL;
	char why[512] = "";
	k->depth++;
	int rc = op->mutate(op->marg, op->live, &want, why, sizeof why);
	k->depth--;
	if (k->free_pending) {
		json_decref(want);
		upsert_free(op);
		return;
	}
	k8s_ref ref = upsert_ref(op);
	char what[600];
	k8s_describe(&ref, op->ns, what, sizeof what);
	if (rc < 0 || (rc > 0 && !json_is_object(want))) {
		snprintf(err, sizeof err, "cannot write %s: %s", what, why[0] ? why : "nothing to write");
		util_ascii_line(err);
		json_decref(want);
		upsert_finish(op, 0, err, NULL, NULL, 0, NULL);
		return;
	}
	if (rc == 0) {
		json_decref(want);
		upsert_finish(op, status, NULL, NULL, op->live, 0, r->warnings[0] ? r->warnings : NULL);
		return;
	}
	/* the write carries the version just read, whatever mutate wrote: a
	 * concurrent change makes it a 409, never a lost update */
	json_t *meta = json_object_get(want, "metadata");
	if (!json_is_object(meta)) {
		meta = json_object();
		json_object_set_new(want, "metadata", meta);
	}
	json_object_set_new(meta, "name", json_string(op->name));
	if (op->live)
		json_object_set(meta, "resourceVersion",
		                json_object_get(json_object_get(op->live, "metadata"),
		                                "resourceVersion"));
	else
		json_object_del(meta, "resourceVersion");
	char path[1024];
	k8s_ref coll = ref;
	if (!op->live)
		coll.name = NULL;
	char *text = json_dumps(want, JSON_COMPACT);
	json_decref(want);
	req *w = NULL;
	if (text && k8s_path(&coll, op->ns, NULL, path, sizeof path, err, sizeof err) == 0)
		w = req_start(k, op->live ? "PUT" : "POST", op->live ? "update" : "create", &ref,
		              op->ns, path, WRITE_QUERY, "application/json", text, upsert_wrote, op,
		              NULL, err, sizeof err);
	free(text);
	if (!w) {
		char msg[1024];
		snprintf(msg, sizeof msg, "cannot write %s: %.400s", what, err[0] ? err : "serialising");
		upsert_finish(op, 0, msg, NULL, NULL, 0, NULL);
		return;
	}
	w->drop = upsert_free;
}

static void upsert_wrote(req *r, int status, const char *terr)
{
	upsert_op *op = r->cb_arg;
	char err[2048] = "";
	if (!terr && status == 409 && op->attempts < K8S_UPSERT_ATTEMPTS) {
		/* changed (PUT) or created (POST) by someone else since our GET */
		upsert_step(op);
		return;
	}
	if (terr || status < 200 || status > 299) {
		answer_error(r, status, terr, err, sizeof err);
		if (status == 409) {
			size_t n = strlen(err);
			snprintf(err + n, sizeof err - n, " (after %d attempts, each from a fresh GET)",
			         op->attempts);
		}
		upsert_finish(op, status, err, terr ? NULL : status_reason(r), NULL, 0,
		              r->warnings[0] ? r->warnings : NULL);
		return;
	}
	json_t *obj = answer_object(r, status, err, sizeof err);
	upsert_finish(op, status, obj ? NULL : err, NULL, obj, 1, r->warnings[0] ? r->warnings : NULL);
	json_decref(obj);
}

int k8s_upsert(k8s *k, const k8s_ref *ref, k8s_mutate_fn mutate, void *mutate_arg,
               k8s_done_fn done, void *arg, char *err, size_t errlen)
{
	char path[1024];
	const char *ns = ns_of(k, ref);
	if (check_named(ref, NULL, err, errlen) != 0 ||
	    k8s_path(ref, ns, NULL, path, sizeof path, err, errlen) != 0)
		return -1;
	upsert_op *op = xcalloc(1, sizeof *op);
	op->k = k;
	ref_copy(ref, ns, op->group, op->version, op->resource, op->ns, op->name, &op->has_name);
	op->mutate = mutate;
	op->marg = mutate_arg;
	op->done = done;
	op->arg = arg;
	op->attempts = 1;
	k8s_ref r2 = upsert_ref(op);
	req *r = req_start(k, "GET", "get", &r2, ns, path, NULL, NULL, NULL, upsert_got, op, NULL,
	                   err, errlen);
	if (!r) {
		free(op);
		return -1;
	}
	r->drop = upsert_free;
	return 0;
}

/* ---- discovery -------------------------------------------------------- */

typedef struct discover_op {
	k8s_done_fn done;
	void *arg;
	char resource[64];
} discover_op;

static void discover_done(req *r, int status, const char *terr)
{
	discover_op *op = r->cb_arg;
	char err[2048] = "";
	const char *product = k8s_group_product(r->group);
	char gv[320];
	snprintf(gv, sizeof gv, "%s%s%s", r->group, r->group[0] ? "/" : "", r->version);
	json_t *obj = NULL;
	k8s_result res = { .status = status, .reason = "", .attempts = 1 };
	if (!terr && status == 404) {
		if (product)
			snprintf(err, sizeof err, "%s is not installed (no %s in the API)", product, gv);
		else
			snprintf(err, sizeof err, "the API does not serve %s", gv);
		res.reason = "NotFound";
	} else if (terr || status != 200) {
		char what[600];
		k8s_status st;
		snprintf(what, sizeof what, "%s", terr ? terr : "");
		if (!terr && r->in.len && k8s_parse_status(r->in.p, r->in.len, &st) == 0)
			snprintf(what, sizeof what, "%.60s (%d): %.500s", st.reason, status,
			         st.message);
		else if (!terr)
			snprintf(what, sizeof what, "the API answered %d", status);
		snprintf(err, sizeof err, "cannot discover %s: %s", gv, what);
	} else if ((obj = answer_object(r, status, err, sizeof err))) {
		const json_t *list = json_object_get(obj, "resources");
		int found = !op->resource[0];
		size_t i;
		const json_t *e;
		if (!json_is_array(list)) {
			snprintf(err, sizeof err, "cannot discover %s: the answer has no resources list", gv);
		} else {
			json_array_foreach(list, i, e) {
				const char *n = json_string_value(json_object_get(e, "name"));
				if (n && strcmp(n, op->resource) == 0)
					found = 1;
			}
			if (!found && product)
				snprintf(err, sizeof err, "%s is installed but serves no %s in %s (is its CRD "
				         "installed?)", product, op->resource, gv);
			else if (!found)
				snprintf(err, sizeof err, "the API serves no %s in %s", op->resource, gv);
		}
	}
	util_ascii_line(err);
	res.error = err[0] ? err : NULL;
	res.object = res.error ? NULL : obj;
	res.warnings = r->warnings[0] ? r->warnings : NULL;
	deliver(r->k, op->done, op->arg, &res);
	json_decref(obj);
	free(op);
}

int k8s_discover(k8s *k, const char *group, const char *version, const char *resource,
                 k8s_done_fn done, void *arg, char *err, size_t errlen)
{
	/* the names are checked as a path would be */
	k8s_ref ref = { group, version, resource ? resource : "x", "x", NULL };
	char path[1024];
	if (k8s_path(&ref, "x", NULL, path, sizeof path, err, errlen) != 0)
		return -1;
	if (group && group[0])
		snprintf(path, sizeof path, "/apis/%s/%s", group, version);
	else
		snprintf(path, sizeof path, "/api/%s", version);
	discover_op *op = xcalloc(1, sizeof *op);
	op->done = done;
	op->arg = arg;
	snprintf(op->resource, sizeof op->resource, "%s", resource ? resource : "");
	ref.resource = resource ? resource : "";
	req *r = req_start(k, "GET", "get", &ref, "", path, NULL, NULL, NULL, discover_done, op,
	                   NULL, err, errlen);
	if (!r) {
		free(op);
		return -1;
	}
	r->drop = free;
	return 0;
}

/* ---- watches ---------------------------------------------------------- */

static void watch_connect(k8s_watch *w);
static void watch_teardown(k8s_watch *w);
static void on_pump(uv_timer_t *t);
static void on_retry(uv_timer_t *t);

static k8s_ref watch_ref(const k8s_watch *w)
{
	k8s_ref ref = { w->group, w->version, w->resource, w->ns, w->has_name ? w->name : NULL };
	return ref;
}

/* Hands <ev> to the caller. Returns 0, or -1 when the watch was stopped
 * from the callback (the caller then must not go on). */
static int emit(k8s_watch *w, k8s_event_type type, json_t *obj, const char *error)
{
	if (w->stopping || w->k->free_pending)
		return -1;
	k8s_event ev = { type, obj, error, w->rv };
	w->depth++;
	w->k->depth++;
	w->fn(w->arg, &ev);
	w->k->depth--;
	w->depth--;
	return w->stopping || w->k->free_pending ? -1 : 0;
}

static int emit_error(k8s_watch *w, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int emit_error(k8s_watch *w, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	util_ascii_line(msg);
	return emit(w, K8S_EV_ERROR, NULL, msg);
}

/* Called by libcurl with body bytes of a 200 watch answer: kept for the
 * pump. Returns <len>, or 0 to cut the stream (an event too large). */
static size_t stream_bytes(req *r, const char *p, size_t len)
{
	k8s_watch *w = r->watch;
	size_t max = r->k->cfg.max_body;
	buf_append(&w->pending, p, len);
	const char *nl = memrchr(w->pending.p, '\n', w->pending.len);
	size_t tail = nl ? w->pending.len - (size_t)(nl + 1 - w->pending.p) : w->pending.len;
	if (tail > max || w->pending.len > 4 * max) {
		snprintf(w->stream_err, sizeof w->stream_err, "a watch event larger than %zu bytes",
		         max);
		return 0;
	}
	if (nl && !uv_is_active((uv_handle_t *)&w->pump))
		uv_timer_start(&w->pump, on_pump, 0, 0);
	return len;
}

/* Hands the complete lines in w->pending to the caller. Returns 0, or -1
 * when the stream must be cut (w->stream_err or w->gone says why) or the
 * watch was stopped. */
static int pump_lines(k8s_watch *w)
{
	size_t off = 0;
	int rc = 0;
	while (rc == 0 && off < w->pending.len) {
		char *start = w->pending.p + off;
		char *nl = memchr(start, '\n', w->pending.len - off);
		if (!nl)
			break;
		size_t len = (size_t)(nl - start);
		off += len + 1;
		if (len == 0 || (len == 1 && start[0] == '\r'))
			continue;
		k8s_event_type type;
		json_t *obj;
		char err[512];
		if (k8s_parse_event(start, len, &type, &obj, err, sizeof err) != 0) {
			snprintf(w->stream_err, sizeof w->stream_err, "%.250s", err);
			rc = -1;
			break;
		}
		if (type == K8S_EV_ERROR) {
			k8s_status st;
			k8s_status_from_json(obj, &st);
			json_decref(obj);
			if (st.code == 410) {
				w->gone = 1;
			} else {
				snprintf(w->stream_err, sizeof w->stream_err, "the API sent an ERROR event: "
				         "%.40s (%d): %.160s", st.reason, st.code, st.message);
			}
			rc = -1;
			break;
		}
		const char *rv = meta_str(obj, "resourceVersion");
		snprintf(w->rv, sizeof w->rv, "%s", rv);
		util_ascii_line(w->rv);
		w->progress++;
		if (emit(w, type, obj, NULL) != 0)
			rc = -1;
		json_decref(obj);
	}
	if (w->torn)
		return -1;
	/* keep the unfinished line */
	if (off >= w->pending.len) {
		buf_reset(&w->pending);
	} else if (off > 0) {
		memmove(w->pending.p, w->pending.p + off, w->pending.len - off);
		w->pending.len -= off;
		w->pending.p[w->pending.len] = '\0';
	}
	return rc;
}

/* Schedules the next connection: now, or after the backoff. <healthy>
 * resets the backoff (a list is not healthy by itself: only a watch that
 * delivers or lasts is, so that a server refusing every watch is not
 * listed again and again at the shortest backoff). */
static void watch_again(k8s_watch *w, int healthy, int now)
{
	if (healthy)
		w->backoff = w->opts.backoff_min_ms;
	if (now) {
		watch_connect(w);
		return;
	}
	uv_timer_start(&w->retry, on_retry, w->backoff, 0);
	w->backoff = w->backoff * 2 > w->opts.backoff_max_ms ? w->opts.backoff_max_ms
	                                                    : w->backoff * 2;
}

/* The API said the version is too old (410): list again. From a version
 * its own list just gave, that is the server's failure, not history moving
 * on: say so and back off. */
static void watch_gone(k8s_watch *w, int healthy)
{
	w->relist = 1;
	if (w->after_list && !w->progress) {
		if (emit_error(w, "watch of %s%s%s in namespace '%s': the API answered 410 (too old) "
		               "to the resourceVersion its own list gave (%s); listing again after "
		               "%llu ms", w->resource, w->group[0] ? "." : "", w->group, w->ns, w->rv,
		               (unsigned long long)w->backoff) == 0)
			watch_again(w, 0, 0);
		return;
	}
	watch_again(w, healthy, healthy);
}

static void on_pump(uv_timer_t *t)
{
	k8s_watch *w = t->data;
	k8s *k = w->k;
	k->depth++;
	int rc = pump_lines(w);
	k->depth--;
	if (!w->torn && (w->stopping || k->free_pending)) {
		watch_teardown(w);
	} else if (rc != 0 && !w->torn && w->cur) {
		/* cut the stream here, outside libcurl, and go on as its end */
		req *r = w->cur;
		httpc_remove(k->hc, &r->x);
		req_unlink(k, r);
		w->cur = NULL;
		int healthy = w->progress > 0;
		req_free(r);
		k->depth++;
		if (w->gone) {
			watch_gone(w, healthy);
		} else if (emit_error(w, "watch of %s%s%s: %s", w->resource, w->group[0] ? "." : "",
		                      w->group, w->stream_err) == 0) {
			watch_again(w, healthy, 0);
		}
		k->depth--;
		if (!w->torn && (w->stopping || k->free_pending))
			watch_teardown(w);
	}
	maybe_free(k);
}

static void stream_done(req *r, int status, const char *terr)
{
	k8s_watch *w = r->cb_arg;
	k8s *k = w->k;
	w->cur = NULL;
	uint64_t lasted = uv_now(k->loop) - r->started;
	/* the whole lines that came before an error are events all the same */
	int rc = r->http_status == 200 ? pump_lines(w) : 0;
	if (w->stopping || k->free_pending) {
		watch_teardown(w);
		return;
	}
	int healthy = w->progress > 0 || lasted >= K8S_HEALTHY_MS;
	char what[700];
	snprintf(what, sizeof what, "watch of %s%s%s in namespace '%s'", w->resource,
	         w->group[0] ? "." : "", w->group, w->ns);
	int again = 0;
	if (w->gone || (!terr && status == 410)) {
		watch_gone(w, healthy);
	} else if (rc != 0 || w->stream_err[0]) {
		again = emit_error(w, "%s: %s", what, w->stream_err) == 0;
	} else if (r->http_status == 200 && w->pending.len) {
		again = emit_error(w, "%s: the connection ended inside an event (%zu bytes without an "
		                   "end of line)%s%s", what, w->pending.len, terr ? ": " : "",
		                   terr ? terr : "") == 0;
	} else if (terr) {
		again = emit_error(w, "%s: %s", what, terr) == 0;
	} else if (status != 200) {
		char err[2048];
		answer_error(r, status, NULL, err, sizeof err);
		again = emit_error(w, "%s", err) == 0;
	} else {
		/* the server ended it (timeoutSeconds): resume from w->rv */
		watch_again(w, healthy, healthy);
	}
	if (again)
		watch_again(w, healthy, 0);
	if (!w->torn && (w->stopping || k->free_pending))
		watch_teardown(w);
}

static void list_done(req *r, int status, const char *terr)
{
	k8s_watch *w = r->cb_arg;
	w->cur = NULL;
	char err[2048] = "";
	json_t *list = NULL;
	if (terr || status != 200) {
		answer_error(r, status, terr, err, sizeof err);
	} else if ((list = answer_object(r, status, err, sizeof err))) {
		const char *rv = meta_str(list, "resourceVersion");
		if (!json_is_array(json_object_get(list, "items")) || !rv || !rv[0]) {
			char what[600];
			k8s_ref ref = req_ref(r);
			k8s_describe(&ref, r->ns, what, sizeof what);
			snprintf(err, sizeof err, "cannot list %s: the answer has no items array or no "
			         "metadata.resourceVersion", what);
		} else {
			snprintf(w->rv, sizeof w->rv, "%s", rv);
			util_ascii_line(w->rv);
		}
	}
	if (err[0]) {
		json_decref(list);
		if (emit(w, K8S_EV_ERROR, NULL, err) == 0)
			watch_again(w, 0, 0);
	} else {
		w->relist = 0;
		w->listed = 1;
		int rc = emit(w, K8S_EV_SYNC, list, NULL);
		json_decref(list);
		if (rc == 0)
			watch_again(w, 0, 1);
	}
	if (!w->torn && (w->stopping || w->k->free_pending))
		watch_teardown(w);
}

static void watch_connect(k8s_watch *w)
{
	k8s *k = w->k;
	k8s_ref ref = watch_ref(w);
	k8s_ref coll = ref;
	coll.name = NULL;
	char path[1024], err[512];
	buf q = BUF_INIT;
	if (w->has_name) {
		buf_puts(&q, "fieldSelector=");
		buf b = BUF_INIT;
		buf_printf(&b, "metadata.name=%s", w->name);
		query_escape(&q, b.p);
		buf_release(&b);
	}
	int list = w->relist || !w->rv[0];
	if (!list) {
		buf_printf(&q, "%swatch=1&allowWatchBookmarks=true&timeoutSeconds=%u&resourceVersion=",
		           q.len ? "&" : "", w->opts.timeout_s);
		query_escape(&q, w->rv);
	}
	w->gone = 0;
	w->progress = 0;
	w->after_list = !list && w->listed;
	w->listed = 0;
	w->stream_err[0] = '\0';
	buf_reset(&w->pending);
	req *r = NULL;
	if (k8s_path(&coll, w->ns, NULL, path, sizeof path, err, sizeof err) == 0)
		r = req_start(k, "GET", list ? "list" : "watch", &ref, w->ns, path, q.p, NULL, NULL,
		              list ? list_done : stream_done, w, list ? NULL : w, err, sizeof err);
	buf_release(&q);
	if (!r) {
		if (emit_error(w, "cannot %s %s%s%s: %s", list ? "list" : "watch", w->resource,
		               w->group[0] ? "." : "", w->group, err) == 0)
			watch_again(w, 0, 0);
		return;
	}
	w->cur = r;
}

static void on_retry(uv_timer_t *t)
{
	k8s_watch *w = t->data;
	k8s *k = w->k;
	k->depth++;
	watch_connect(w);
	k->depth--;
	if (!w->torn && (w->stopping || k->free_pending))
		watch_teardown(w);
	maybe_free(k);
}

static void watch_closed(uv_handle_t *h)
{
	k8s_watch *w = h->data;
	if (--w->open_handles == 0) {
		buf_release(&w->pending);
		free(w);
	}
}

/* Ends <w> for good: its request, its timers; freed once they close. */
static void watch_teardown(k8s_watch *w)
{
	if (w->torn)
		return;
	w->torn = 1;
	k8s *k = w->k;
	if (w->cur) {
		httpc_remove(k->hc, &w->cur->x);
		req_unlink(k, w->cur);
		req_free(w->cur);
		w->cur = NULL;
	}
	for (k8s_watch **pp = &k->watches; *pp; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	k->nwatches--;
	uv_timer_stop(&w->retry);
	uv_timer_stop(&w->pump);
	uv_close((uv_handle_t *)&w->retry, watch_closed);
	uv_close((uv_handle_t *)&w->pump, watch_closed);
}

k8s_watch *k8s_watch_start(k8s *k, const k8s_ref *ref, const k8s_watch_opts *opts,
                           k8s_watch_fn fn, void *arg, char *err, size_t errlen)
{
	char path[1024];
	const char *ns = ns_of(k, ref);
	if (k8s_path(ref, ns, NULL, path, sizeof path, err, errlen) != 0)
		return NULL;
	if (k->free_pending || k->nwatches >= K8S_MAX_WATCHES) {
		snprintf(err, errlen, "too many watches (%d)", K8S_MAX_WATCHES);
		return NULL;
	}
	k8s_watch *w = xcalloc(1, sizeof *w);
	w->k = k;
	ref_copy(ref, ns, w->group, w->version, w->resource, w->ns, w->name, &w->has_name);
	if (opts)
		w->opts = *opts;
	if (!w->opts.timeout_s)
		w->opts.timeout_s = 300;
	if (!w->opts.backoff_min_ms)
		w->opts.backoff_min_ms = 200;
	if (!w->opts.backoff_max_ms)
		w->opts.backoff_max_ms = 30000;
	if (w->opts.backoff_max_ms < w->opts.backoff_min_ms)
		w->opts.backoff_max_ms = w->opts.backoff_min_ms;
	w->backoff = w->opts.backoff_min_ms;
	w->fn = fn;
	w->arg = arg;
	uv_timer_init(k->loop, &w->retry);
	uv_timer_init(k->loop, &w->pump);
	w->retry.data = w;
	w->pump.data = w;
	w->open_handles = 2;
	w->next = k->watches;
	k->watches = w;
	k->nwatches++;
	/* the first connection from the loop, as every later one: no event
	 * can reach <fn> before this returns */
	uv_timer_start(&w->retry, on_retry, 0, 0);
	return w;
}

void k8s_watch_stop(k8s_watch *w)
{
	if (!w || w->stopping)
		return;
	w->stopping = 1;
	if (w->depth == 0)
		watch_teardown(w);
}

/* ---- the client ------------------------------------------------------- */

k8s *k8s_new(uv_loop_t *loop, const k8s_config *cfg, char *err, size_t errlen)
{
	if (!cfg->server || strncmp(cfg->server, "https://", 8) != 0) {
		snprintf(err, errlen, "no https:// server in the configuration");
		return NULL;
	}
	k8s_ref probe = { "", "v1", "x", NULL, NULL };
	char path[256];
	if (k8s_path(&probe, cfg->namespace, NULL, path, sizeof path, err, errlen) != 0)
		return NULL;
	if (!!cfg->cert_pem != !!cfg->key_pem) {
		snprintf(err, errlen, "a client certificate needs its key");
		return NULL;
	}
	if (!(curl = httpc_load(err, errlen)))
		return NULL;
	httpc *hc = httpc_new(loop, 0, err, errlen);
	if (!hc)
		return NULL;
	k8s *k = xcalloc(1, sizeof *k);
	k->loop = loop;
	k->hc = hc;
#define DUP(f) k->cfg.f = cfg->f ? xstrdup(cfg->f) : NULL
	DUP(server);
	DUP(ca_pem);
	DUP(token);
	DUP(token_file);
	DUP(cert_pem);
	DUP(key_pem);
	DUP(namespace);
	DUP(source);
#undef DUP
	if (!k->cfg.source)
		k->cfg.source = xstrdup("the configuration");
	k->cfg.token_reload_ms = cfg->token_reload_ms ? cfg->token_reload_ms : 60000;
	k->cfg.timeout_ms = cfg->timeout_ms ? cfg->timeout_ms : 30000;
	k->cfg.max_body = cfg->max_body ? cfg->max_body : 16u << 20;
	if (k->cfg.token && !k->cfg.token_file)
		k->token = xstrdup(k->cfg.token);
	return k;
}

static void really_free(k8s *k)
{
	httpc_free(k->hc);
	if (k->token)
		memset(k->token, 0, strlen(k->token));
	free(k->token);
	k8s_config_release(&k->cfg);
	free(k);
}

static void maybe_free(k8s *k)
{
	if (k->free_pending && k->depth == 0)
		really_free(k);
}

void k8s_free(k8s *k)
{
	if (!k || k->free_pending)
		return;
	k->free_pending = 1;
	/* a watch inside its own callback is torn down once it returns */
	for (k8s_watch *w = k->watches, *next; w; w = next) {
		next = w->next;
		k8s_watch_stop(w);
	}
	req *r = k->reqs;
	while (r) {
		req *next = r->next;
		if (!r->watch) {
			httpc_remove(k->hc, &r->x);
			req_unlink(k, r);
			if (r->drop)
				r->drop(r->cb_arg);
			req_free(r);
		}
		r = next;
	}
	maybe_free(k);
}
