/* admin.c - see admin.h. Keep-alive, one request at a time per connection
 * (pipelined requests wait in the input buffer): scripts that change
 * weights many times a second reuse one connection. Requests are parsed
 * with the proxy's parser (http.h).
 *
 * A connection is in one state at a time, and the state names its timer:
 *   AC_IDLE      nothing of a request yet: before the first one the head
 *                timeout runs (from accept), between requests the idle one;
 *                either closes the connection without a word
 *   AC_HEAD      part of a head: the head timeout, from its first byte (from
 *                accept for the first request); a trickle of bytes does not
 *                restart it; then 408
 *   AC_BODY      the head is complete, the body is not: the body timeout
 *                from the end of the head; then 408
 *   AC_HANDLING  the request is complete and being answered: no timer, the
 *                handler answers (perhaps later, once a lookup completes)
 *   AC_WRITING   the response is being written: the body timeout; a client
 *                that does not read is closed */
#include "admin.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "assets.h"
#include "audit.h"
#include "http.h"
#include "list.h"
#include "log.h"
#include "resolve.h"
#include "util.h"
#include "version.h"

#define ADMIN_MAX_BODY (1 << 20)
#define TOKEN_DIGEST 32 /* SHA-256 */

typedef struct token {
	char *name;
	unsigned char digest[TOKEN_DIGEST];   /* SHA-256 of the secret */
} token;

struct admin {
	uv_loop_t *loop;
	uv_tcp_t listener;
	ctl *c;
	store *db;
	token *tokens;
	size_t n_tokens;
	const char *token_path;  /* while the token file is read, for messages */
	int ready;
	int closing;
	int port;              /* the listener's port, for Host */
	int loopback;          /* the listener is on a loopback address */
	char **hosts;          /* --admin-host names */
	size_t n_hosts;
	uint64_t head_ms, body_ms, idle_ms;
	unsigned max_conns;
	unsigned n_conns;      /* on <conns> */
	size_t buffered;       /* request bytes held over all connections */
	int full_logged;       /* "too many connections" said since the last time below */
	struct aconn *conns;   /* open connections, for admin_close */
	const asset_table *assets; /* the dashboard's files, or NULL */
	char dash_tz[72], dash_locale[40]; /* the dashboard's defaults */
};

typedef enum { AC_IDLE, AC_HEAD, AC_BODY, AC_HANDLING, AC_WRITING, AC_STREAM } aconn_state;

/* Server-Sent Events (GET /api/v1/events/stream): at most this many
 * streams at once, a comment every SSE_PING_MS so that a proxy keeps the
 * connection and a gone client is found, and at most SSE_MAX_PENDING bytes
 * waiting for a client that does not read (then it is closed: a browser
 * reconnects and gets the present state again). */
#define SSE_MAX_STREAMS 32
#define SSE_PING_MS 15000
#define SSE_MAX_PENDING (1u << 20)

typedef struct aconn {
	uv_tcp_t tcp;
	uv_timer_t timer;
	uv_write_t wr;
	admin *a;
	buf in;
	buf out;
	char peer[64];
	aconn_state state;
	int handles;       /* uv handles not yet closed: free at 0 */
	int served;        /* requests answered on this connection */
	int responded;     /* a response is being written */
	int keep;          /* keep the connection after this response */
	int is_head;       /* the request is HEAD: headers only */
	size_t consumed;   /* bytes of <in> that the current request used */
	ctl_call *pending; /* a command waiting for host names: answered later */
	/* AC_STREAM: what waits to be written while a write runs */
	buf sse_pending;
	int sse_writing;
	char sse_canary[64]; /* only this canary's events, or "" for all */
	struct audit_job *job; /* an audit verify or export being read: answered later */
	struct aconn *prev, *next;
} aconn;

/* An audit verify or export runs on libuv's thread pool, on a read-only
 * connection of its own: walking a long history (0.5 s for 100,000 events)
 * must not hold the event loop, which carries the proxy's traffic. */
typedef struct audit_job {
	uv_work_t work;
	aconn *conn;            /* NULL once the connection closed */
	char *path;             /* the database */
	char name[64];          /* the canary, or "" for every canary (verify) */
	int export;             /* export, else verify */
	store_export_format fmt;
	const char *ctype;
	int64_t since, until;
	/* the answer, made on the pool's thread */
	int status;
	json_t *res;            /* verify */
	buf body;               /* export */
	char err[512];
} audit_job;

typedef struct req {
	admin *a;
	aconn *conn;
	const http_request *http;
	char path[HTTP_MAX_HEAD];   /* a target fits: it is part of a head */
	char query[HTTP_MAX_HEAD];
	char host[256];             /* Host's name or address, "" without Host */
	int host_port;              /* Host's port, 0 when it names none */
	const char *body;
	size_t body_len;
} req;

/* Reads land here and are copied into a connection's <in>: an idle
 * connection then holds no buffer at all. */
static char read_slab[65536];

/* ---- responses ---- */

static void conn_closed(uv_handle_t *h)
{
	aconn *cn = h->data;
	if (--cn->handles > 0)
		return;
	buf_release(&cn->in);
	buf_release(&cn->out);
	buf_release(&cn->sse_pending);
	free(cn);
}

static void conn_close(aconn *cn)
{
	if (uv_is_closing((uv_handle_t *)&cn->tcp))
		return;
	admin *a = cn->a;
	ctl_call_cancel(cn->pending);   /* its answer must not reach freed memory */
	cn->pending = NULL;
	if (cn->job)                    /* likewise: the job ends unanswered */
		cn->job->conn = NULL;
	cn->job = NULL;
	LIST_UNLINK(a->conns, cn);
	a->n_conns--;
	a->buffered -= cn->in.len;
	if (a->n_conns < a->max_conns)
		a->full_logged = 0;
	uv_timer_stop(&cn->timer);
	uv_close((uv_handle_t *)&cn->timer, conn_closed);
	uv_close((uv_handle_t *)&cn->tcp, conn_closed);
}

static void on_timeout(uv_timer_t *t);
static void sse_send(aconn *cn, const char *data, size_t len);

/* Enters <st> and arms its timer (none for AC_HANDLING). */
static void conn_enter(aconn *cn, aconn_state st)
{
	admin *a = cn->a;
	uint64_t ms = 0;
	cn->state = st;
	switch (st) {
	case AC_IDLE: ms = cn->served ? a->idle_ms : a->head_ms; break;
	case AC_HEAD: ms = a->head_ms; break;
	case AC_BODY: ms = a->body_ms; break;
	case AC_WRITING: ms = a->body_ms; break;
	case AC_STREAM: ms = SSE_PING_MS; break;
	case AC_HANDLING: break;
	}
	if (ms)
		uv_timer_start(&cn->timer, on_timeout, ms, 0);
	else
		uv_timer_stop(&cn->timer);
}

static void try_request(aconn *cn);
static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b);
static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b);

static void on_written(uv_write_t *w, int status)
{
	aconn *cn = w->data;
	if (status < 0 || !cn->keep || cn->a->closing) {
		conn_close(cn);
		return;
	}
	/* drop the request just answered; the next one may already be here */
	memmove(cn->in.p, cn->in.p + cn->consumed, cn->in.len - cn->consumed);
	cn->in.len -= cn->consumed;
	cn->a->buffered -= cn->consumed;
	cn->in.p[cn->in.len] = '\0';
	cn->consumed = 0;
	cn->responded = 0;
	cn->served++;
	/* an idle connection keeps no memory (a response may have been large) */
	buf_release(&cn->out);
	if (cn->in.len == 0)
		buf_release(&cn->in);
	conn_enter(cn, cn->in.len ? AC_HEAD : AC_IDLE);
	uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
	if (cn->in.len)
		try_request(cn);
}

/* Answers the current request with header lines <headers> ("Name:
 * value\r\n" each) besides Content-Type (none when <ctype> is NULL) and
 * Content-Length (none for 304, which has no body: RFC 9110 §15.4.5). A
 * response to HEAD carries the headers, Content-Length included, of the
 * GET's but no body (RFC 9110 §9.3.2). */
static void respond_with(aconn *cn, int status, const char *ctype, const char *headers,
                         const void *body, size_t len)
{
	if (cn->responded)
		return;
	cn->responded = 1;
	buf_reset(&cn->out);
	buf_printf(&cn->out, "HTTP/1.1 %d %s\r\n", status, http_reason(status));
	if (ctype)
		buf_printf(&cn->out, "Content-Type: %s\r\n", ctype);
	if (status != 304)
		buf_printf(&cn->out, "Content-Length: %zu\r\n", len);
	buf_printf(&cn->out, "%sX-Content-Type-Options: nosniff\r\n%s\r\n", headers,
	           cn->keep ? "" : "Connection: close\r\n");
	if (!cn->is_head && status != 304)
		buf_append(&cn->out, body, len);
	uv_buf_t b = uv_buf_init(cn->out.p, (unsigned)cn->out.len);
	cn->wr.data = cn;
	uv_read_stop((uv_stream_t *)&cn->tcp);
	conn_enter(cn, AC_WRITING);
	if (uv_write(&cn->wr, (uv_stream_t *)&cn->tcp, &b, 1, on_written) != 0)
		conn_close(cn);
}

/* Answers the current request: every API answer is fresh each time. */
static void respond(aconn *cn, int status, const char *ctype, const char *body, size_t len)
{
	respond_with(cn, status, ctype, "Cache-Control: no-store\r\n", body, len);
}

static void respond_json(aconn *cn, int status, json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT);
	json_decref(j);
	if (!s) {
		respond(cn, 500, "application/json", "{\"error\":\"cannot encode\"}", 25);
		return;
	}
	size_t n = strlen(s);
	char *t = xmalloc(n + 2);
	memcpy(t, s, n);
	t[n] = '\n';
	respond(cn, status, "application/json", t, n + 1);
	free(t);
	free(s);
}

/* <msg> may quote what a client sent (a Host, an Origin), which need not
 * be UTF-8, and JSON strings must be: such a message goes out with every
 * byte that is not printable ASCII as '?', never as an empty object. */
static void respond_error(aconn *cn, int status, const char *msg)
{
	json_t *j = json_object();
	json_t *s = json_string(msg);
	if (!s) {
		char *copy = xstrdup(msg);
		s = json_string(util_ascii_line(copy));
		free(copy);
	}
	json_object_set_new(j, "error", s);
	respond_json(cn, status, j);
}

/* ---- Server-Sent Events ---- */

static void sse_kick(aconn *cn);

static void on_sse_written(uv_write_t *w, int status)
{
	aconn *cn = w->data;
	cn->sse_writing = 0;
	buf_reset(&cn->out);
	if (status < 0 || cn->a->closing) {
		conn_close(cn);
		return;
	}
	sse_kick(cn);
}

/* Writes what waits, one write at a time: <out> is being written while
 * <sse_pending> gathers what comes meanwhile. */
static void sse_kick(aconn *cn)
{
	if (cn->sse_writing || cn->sse_pending.len == 0 || uv_is_closing((uv_handle_t *)&cn->tcp))
		return;
	buf t = cn->out;
	cn->out = cn->sse_pending;
	cn->sse_pending = t;
	buf_reset(&cn->sse_pending);
	uv_buf_t b = uv_buf_init(cn->out.p, (unsigned)cn->out.len);
	cn->wr.data = cn;
	cn->sse_writing = 1;
	if (uv_write(&cn->wr, (uv_stream_t *)&cn->tcp, &b, 1, on_sse_written) != 0) {
		cn->sse_writing = 0;
		conn_close(cn);
	}
}

static void sse_send(aconn *cn, const char *data, size_t len)
{
	if (cn->sse_pending.len + len > SSE_MAX_PENDING) {
		/* it does not read: it would hold memory without bound */
		log_msg(LOG_WARN, NULL, "admin: event stream to %s closed: the client does not read "
		        "(%u bytes waiting)", cn->peer, (unsigned)cn->sse_pending.len);
		conn_close(cn);
		return;
	}
	buf_append(&cn->sse_pending, data, len);
	sse_kick(cn);
}

/* One event in the stream's format: "event: TYPE\ndata: JSON\n\n" (the
 * JSON is one line: JSON_COMPACT escapes every newline). */
static void sse_event(aconn *cn, const char *type, const json_t *data)
{
	char *j = json_dumps(data, JSON_COMPACT);
	if (!j)
		return;
	buf b = BUF_INIT;
	buf_printf(&b, "event: %s\ndata: %s\n\n", type, j);
	sse_send(cn, b.p, b.len);
	buf_release(&b);
	free(j);
}

void admin_publish(admin *a, const char *canary, const char *type, const json_t *data)
{
	aconn *next;
	for (aconn *cn = a->conns; cn; cn = next) {
		next = cn->next; /* sse_send may close it */
		if (cn->state != AC_STREAM || uv_is_closing((uv_handle_t *)&cn->tcp))
			continue;
		if (cn->sse_canary[0] && (!canary || strcmp(cn->sse_canary, canary) != 0))
			continue;
		sse_event(cn, type, data);
	}
}

/* A timer of conn_enter() ran out: see the states at the top. */
static void on_timeout(uv_timer_t *t)
{
	aconn *cn = t->data;
	char msg[128], d[32];
	switch (cn->state) {
	case AC_HEAD:
	case AC_BODY:
		util_format_duration(cn->state == AC_HEAD ? cn->a->head_ms : cn->a->body_ms, d, sizeof d);
		snprintf(msg, sizeof msg, "request %s not received within %s",
		         cn->state == AC_HEAD ? "head" : "body", d);
		cn->keep = 0;
		respond_error(cn, 408, msg);
		break;
	case AC_IDLE:
	case AC_WRITING:
		conn_close(cn);
		break;
	case AC_STREAM:
		sse_send(cn, ": ping\n\n", 8);
		conn_enter(cn, AC_STREAM);
		break;
	case AC_HANDLING:
		break;
	}
}

/* ---- handlers ---- */

/* SHA-256 of s[0..len) into <out>. */
static void token_digest(const char *s, size_t len, unsigned char out[TOKEN_DIGEST])
{
	unsigned int n = 0;
	if (EVP_Digest(s, len, out, &n, EVP_sha256(), NULL) != 1 || n != TOKEN_DIGEST)
		memset(out, 0, TOKEN_DIGEST); /* matches no token: see authorize */
}

/* Who is asking: the token's name when tokens are configured (and checked
 * here), else the client's address. Returns NULL after answering 401.
 *
 * The presented token is compared with every configured one as SHA-256
 * digests with CRYPTO_memcmp, and the loop does not stop at a match: the
 * time taken tells neither how many leading bytes were right nor the
 * token's length (memcmp and a length check first told both). */
static const char *authorize(req *r, int mutating)
{
	admin *a = r->a;
	if (a->n_tokens == 0 || !mutating)
		return r->conn->peer;
	const http_header *h = http_find_header(r->http->headers, r->http->n_headers, "Authorization");
	if (h && h->value_len > 7 && strncasecmp(h->value, "Bearer ", 7) == 0) {
		unsigned char d[TOKEN_DIGEST];
		static const unsigned char zero[TOKEN_DIGEST];
		token_digest(h->value + 7, h->value_len - 7, d);
		const char *who = NULL;
		for (size_t i = 0; i < a->n_tokens; i++)
			if (CRYPTO_memcmp(d, a->tokens[i].digest, TOKEN_DIGEST) == 0 && !who)
				who = a->tokens[i].name;
		if (who && CRYPTO_memcmp(d, zero, TOKEN_DIGEST) != 0)
			return who;
	}
	respond_error(r->conn, 401, h ? "invalid token" : "this call needs 'Authorization: Bearer TOKEN'");
	return NULL;
}

/* Finds the first string in <j> (an action's body: its values, its keys,
 * in arrays and objects at any depth) that log_unsafe_at() objects to, and
 * names it in <field> ("revision", "endpoints[2]"). Returns 1 with *cp set
 * when there is one, else 0. */
static int find_unsafe(const json_t *j, const char *at, char *field, size_t fieldlen, unsigned *cp)
{
	char sub[256];
	if (json_is_string(j)) {
		size_t len = json_string_length(j);
		if (log_unsafe_at(json_string_value(j), len, cp) == len)
			return 0;
		snprintf(field, fieldlen, "%s", at);
		return 1;
	}
	if (json_is_array(j)) {
		size_t i;
		const json_t *v;
		json_array_foreach(j, i, v) {
			snprintf(sub, sizeof sub, "%s[%zu]", at, i);
			if (find_unsafe(v, sub, field, fieldlen, cp))
				return 1;
		}
		return 0;
	}
	if (json_is_object(j)) {
		const char *k;
		const json_t *v;
		json_object_foreach((json_t *)j, k, v) {
			size_t kl = strlen(k);
			if (log_unsafe_at(k, kl, cp) < kl) {
				snprintf(field, fieldlen, "%s%sa key", at, *at ? " " : "");
				return 1;
			}
			snprintf(sub, sizeof sub, "%s%s%s", at, *at ? "." : "", k);
			if (find_unsafe(v, sub, field, fieldlen, cp))
				return 1;
		}
	}
	return 0;
}

static void h_list(req *r, const char *name, const char *action)
{
	respond_json(r->conn, 200, ctl_status(r->a->c, NULL));
}

/* 404 for a canary <name> that is not there (nor, where the caller
 * asked, in the audit). */
static void respond_no_canary(aconn *cn, const char *name)
{
	char msg[128];
	snprintf(msg, sizeof msg, "no canary named '%.64s'", name);
	respond_error(cn, 404, msg);
}

static void h_get(req *r, const char *name, const char *action)
{
	json_t *j = ctl_status(r->a->c, name);
	if (!j) {
		respond_no_canary(r->conn, name);
		return;
	}
	respond_json(r->conn, 200, j);
}

static void h_events(req *r, const char *name, const char *action)
{
	if (!ctl_has(r->a->c, name)) {
		respond_no_canary(r->conn, name);
		return;
	}
	long long after = 0;
	const char *q = strstr(r->query, "after=");
	if (q) {
		char *end;
		after = strtoll(q + 6, &end, 10);
		if (end == q + 6 || after < 0 || (*end && *end != '&')) {
			respond_error(r->conn, 400, "'after' must be an event id");
			return;
		}
	}
	json_t *ev = store_events(r->a->db, name, after);
	if (!ev) {
		respond_error(r->conn, 500, "cannot read the audit events");
		return;
	}
	ctl_event_links(r->a->c, name, ev);
	respond_json(r->conn, 200, ev);
}

/* GET /api/v1/events/stream[?canary=NAME]: Server-Sent Events. First the
 * present, a "status" event per canary (nothing of the history: a client
 * that wants it asks /events once), then every new audit event ("audit")
 * and every change of a canary's phase or weight ("status") as it happens.
 * The connection is the stream's until either side closes it. */
static void h_stream(req *r, const char *name, const char *action)
{
	aconn *cn = r->conn;
	char want[64] = "";
	const char *q = strstr(r->query, "canary=");
	if (q) {
		size_t n = strcspn(q + 7, "&");
		if (n == 0 || n >= sizeof want) {
			respond_error(cn, 400, "'canary' must name a canary");
			return;
		}
		memcpy(want, q + 7, n);
		want[n] = '\0';
		if (!ctl_has(r->a->c, want)) {
			respond_no_canary(cn, want);
			return;
		}
	}
	unsigned streams = 0;
	for (aconn *c = r->a->conns; c; c = c->next)
		streams += c->state == AC_STREAM;
	if (streams >= SSE_MAX_STREAMS) {
		respond_error(cn, 503, "too many event streams open; retry later");
		return;
	}
	if (cn->is_head) {
		respond(cn, 200, "text/event-stream", "", 0);
		return;
	}
	cn->responded = 1;
	cn->keep = 0;
	snprintf(cn->sse_canary, sizeof cn->sse_canary, "%s", want);
	buf_reset(&cn->sse_pending);
	buf_puts(&cn->sse_pending, "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
	         "Cache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\n"
	         "Connection: close\r\n\r\nretry: 2000\n\n");
	conn_enter(cn, AC_STREAM);
	json_t *all = ctl_status(r->a->c, want[0] ? want : NULL);
	if (json_is_array(all)) {
		size_t i;
		json_t *st;
		json_array_foreach(all, i, st)
			sse_event(cn, "status", st);
	} else if (json_is_object(all)) {
		sse_event(cn, "status", all);
	}
	json_decref(all);
	/* read on, to see the client go */
	uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
	sse_kick(cn);
}

/* The value of query parameter <key> in <query> (up to '&'), copied into
 * <out>, percent-decoded. Returns 1 found, 0 absent, -1 too long or bad. */
static int query_param(const char *query, const char *key, char *out, size_t outlen)
{
	size_t kl = strlen(key);
	for (const char *p = query; p && *p; p = strchr(p, '&') ? strchr(p, '&') + 1 : NULL) {
		if (strncmp(p, key, kl) != 0 || p[kl] != '=')
			continue;
		const char *v = p + kl + 1;
		size_t n = 0;
		for (; *v && *v != '&'; v++) {
			int c = (unsigned char)*v;
			if (c == '%') {
				if (!isxdigit((unsigned char)v[1]) || !isxdigit((unsigned char)v[2]))
					return -1;
				char hex[3] = { v[1], v[2], '\0' };
				c = (int)strtol(hex, NULL, 16);
				v += 2;
			} else if (c == '+') {
				c = ' ';
			}
			if (n + 1 >= outlen || c == 0)
				return -1;
			out[n++] = (char)c;
		}
		out[n] = '\0';
		return 1;
	}
	return 0;
}

/* A canary the audit may be asked about: configured now, or with events
 * in the database (a canary removed from the configuration keeps its
 * audit). Answers 404 and returns 0 otherwise. */
static int audit_known(req *r, const char *name)
{
	if (ctl_has(r->a->c, name) || store_audit_has(r->a->db, name))
		return 1;
	respond_no_canary(r->conn, name);
	return 0;
}

/* verify of every canary the audit holds: {intact, canaries: [...]} */
static int verify_all(store *rd, json_t **out, char *err, size_t errlen)
{
	json_t *names = store_audit_canaries(rd);
	if (!names) {
		snprintf(err, errlen, "cannot read the audit from '%s'", store_path(rd));
		return -1;
	}
	json_t *all = json_array();
	int intact = 1;
	size_t i;
	json_t *v;
	json_array_foreach(names, i, v) {
		json_t *res;
		if (store_audit_verify(rd, json_string_value(v), &res, err, errlen) < 0) {
			json_decref(all);
			json_decref(names);
			return -1;
		}
		intact = intact && json_is_true(json_object_get(res, "intact"));
		json_array_append_new(all, res);
	}
	json_decref(names);
	*out = json_pack("{s:b, s:o}", "intact", intact, "canaries", all);
	return 0;
}

/* On the pool's thread: touches nothing but <job>. */
static void audit_job_run(uv_work_t *w)
{
	audit_job *job = w->data;
	store *rd;
	job->status = 500;
	if (store_open_reader(job->path, &rd, job->err, sizeof job->err) < 0)
		return;
	int rc;
	if (job->export)
		rc = store_audit_export(rd, job->name, job->fmt, job->since, job->until, &job->body,
		                        job->err, sizeof job->err);
	else if (job->name[0])
		rc = store_audit_verify(rd, job->name, &job->res, job->err, sizeof job->err);
	else
		rc = verify_all(rd, &job->res, job->err, sizeof job->err);
	store_close(rd);
	if (rc == 0)
		job->status = 200;
}

static void audit_job_done(uv_work_t *w, int status)
{
	audit_job *job = w->data;
	aconn *cn = job->conn;
	if (cn) {
		cn->job = NULL;
		if (job->status != 200)
			respond_error(cn, 500, job->err);
		else if (job->export)
			respond(cn, 200, job->ctype, job->body.p ? job->body.p : "", job->body.len);
		else
			respond_json(cn, 200, json_incref(job->res));
	}
	json_decref(job->res);
	buf_release(&job->body);
	free(job->path);
	free(job);
}

/* Starts <job> for the request <r>; its answer comes from audit_job_done. */
static void audit_job_start(req *r, audit_job *job)
{
	job->conn = r->conn;
	job->path = xstrdup(store_path(r->a->db));
	job->work.data = job;
	if (uv_queue_work(r->a->loop, &job->work, audit_job_run, audit_job_done) != 0) {
		free(job->path);
		free(job);
		respond_error(r->conn, 500, "cannot start reading the audit");
		return;
	}
	/* nothing more is read meanwhile, as for a command that waits */
	r->conn->job = job;
	uv_read_stop((uv_stream_t *)&r->conn->tcp);
}

/* GET /api/v1/canaries/NAME/audit/verify: the chain walked (200 whether
 * intact or not: "intact" says). */
static void h_audit_verify(req *r, const char *name, const char *action)
{
	if (!audit_known(r, name))
		return;
	audit_job *job = xcalloc(1, sizeof *job);
	snprintf(job->name, sizeof job->name, "%s", name);
	audit_job_start(r, job);
}

/* GET /api/v1/audit/verify: every canary the audit holds, configured or
 * not: {intact, canaries: [the answer of each]}. */
static void h_audit_verify_all(req *r, const char *name, const char *action)
{
	audit_job_start(r, xcalloc(1, sizeof(audit_job)));
}

/* GET /api/v1/canaries/NAME/audit/export?format=json|ndjson|csv&since=T&until=T:
 * T is RFC 3339 (or a date, 00:00 UTC); since is inclusive, until not. */
static void h_audit_export(req *r, const char *name, const char *action)
{
	if (!audit_known(r, name))
		return;
	static const struct {
		const char *name, *ctype;
		store_export_format fmt;
	} formats[] = {
		{ "json", "application/json", STORE_EXPORT_JSON },
		{ "ndjson", "application/x-ndjson", STORE_EXPORT_NDJSON },
		{ "csv", "text/csv; charset=utf-8; header=present", STORE_EXPORT_CSV },
	};
	char v[128], msg[256];
	int k = query_param(r->query, "format", v, sizeof v);
	size_t f = 0;
	if (k < 0 || (k == 1 && strcmp(v, "json") != 0)) {
		for (f = 1; f < sizeof formats / sizeof formats[0]; f++)
			if (k == 1 && strcmp(v, formats[f].name) == 0)
				break;
		if (f == sizeof formats / sizeof formats[0]) {
			respond_error(r->conn, 400, "'format' must be one of json, ndjson, csv");
			return;
		}
	}
	int64_t bound[2] = { 0, INT64_MAX };
	static const char *const keys[2] = { "since", "until" };
	for (int b = 0; b < 2; b++) {
		k = query_param(r->query, keys[b], v, sizeof v);
		if (k < 0 || (k == 1 && audit_parse_time(v, &bound[b]) < 0)) {
			snprintf(msg, sizeof msg, "'%s' must be an RFC 3339 time with its zone "
			         "(2026-03-29T01:00:00Z, 2026-03-29T02:00:00+01:00) or a date "
			         "(2026-03-29)", keys[b]);
			respond_error(r->conn, 400, msg);
			return;
		}
	}
	if (bound[0] > bound[1]) {
		respond_error(r->conn, 400, "'since' is after 'until'");
		return;
	}
	audit_job *job = xcalloc(1, sizeof *job);
	snprintf(job->name, sizeof job->name, "%s", name);
	job->export = 1;
	job->fmt = formats[f].fmt;
	job->ctype = formats[f].ctype;
	job->since = bound[0];
	job->until = bound[1];
	buf_puts(&job->body, "");
	audit_job_start(r, job);
}

/* The end of a command that waited (ctl_command returned 0). */
static void action_done(void *arg, int status, json_t *res, const char *err)
{
	aconn *cn = arg;
	cn->pending = NULL;
	if (status == 200)
		respond_json(cn, 200, res);
	else
		respond_error(cn, status, err);
}

static void h_action(req *r, const char *name, const char *action)
{
	const char *actor = authorize(r, 1);
	if (!actor)
		return;
	json_t *body = NULL;
	if (r->body_len) {
		json_error_t jerr;
		body = json_loadb(r->body, r->body_len, 0, &jerr);
		if (!body) {
			char msg[256];
			snprintf(msg, sizeof msg, "request body is not JSON: %s (line %d, column %d)",
			         jerr.text, jerr.line, jerr.column);
			respond_error(r->conn, 400, msg);
			return;
		}
		/* revisions, endpoints and reasons reach the logs, the audit and
		 * terminals: refuse what could forge a line there (issue 8 item 9) */
		char field[128];
		unsigned cp;
		if (find_unsafe(body, "", field, sizeof field, &cp)) {
			char msg[256];
			snprintf(msg, sizeof msg, "'%s' holds a control character (U+%04X): "
			         "names, revisions and reasons must be printable text", field, cp);
			json_decref(body);
			respond_error(r->conn, 400, msg);
			return;
		}
	}
	char err[512] = "";
	json_t *res = NULL;
	ctl_call *pending = NULL;
	int st = ctl_command(r->a->c, name, action, body, actor, &res, err, sizeof err,
	                     action_done, r->conn, &pending);
	json_decref(body);
	if (st == 0) {
		/* the command waits for host name lookups: action_done answers.
		 * Nothing more is read meanwhile (a pipelined request would be
		 * parsed again before this one is consumed); a close cancels. */
		r->conn->pending = pending;
		uv_read_stop((uv_stream_t *)&r->conn->tcp);
		return;
	}
	if (st == 200)
		respond_json(r->conn, 200, res);
	else
		respond_error(r->conn, st, err);
}

static void h_alertmanager(req *r, const char *name, const char *action)
{
	const char *actor = authorize(r, 1);
	if (!actor)
		return;
	json_error_t jerr;
	json_t *body = json_loadb(r->body, r->body_len, 0, &jerr);
	if (!body) {
		char msg[256];
		snprintf(msg, sizeof msg, "request body is not JSON: %s", jerr.text);
		respond_error(r->conn, 400, msg);
		return;
	}
	char err[256];
	json_t *res = NULL;
	int st = ctl_alerts(r->a->c, body, "alertmanager", &res, err, sizeof err);
	json_decref(body);
	if (st == 200)
		respond_json(r->conn, 200, res);
	else
		respond_error(r->conn, st, err);
}

static void h_metrics(req *r, const char *name, const char *action)
{
	buf b = BUF_INIT;
	ctl_metrics(r->a->c, &b);
	respond(r->conn, 200, "text/plain; version=0.0.4; charset=utf-8", b.p ? b.p : "", b.len);
	buf_release(&b);
}

/* GET /api/v1/version: what `canaryctl version` shows beside its own. */
static void h_version(req *r, const char *name, const char *action)
{
	respond_json(r->conn, 200, json_pack("{s:s, s:s}", "name", "canaryd", "version",
	                                     CANARYD_VERSION));
}

/* GET /api/v1/canaries/NAME/series[?since=MS]: the dashboard's 5-second
 * samples of the last 30 minutes, those after <since> (epoch ms) only. */
static void h_series(req *r, const char *name, const char *action)
{
	char v[32];
	uint64_t since = 0;
	int k = query_param(r->query, "since", v, sizeof v);
	if (k != 0) {
		/* digits only, at most 19 of them: no sign, no overflow */
		size_t n = k > 0 ? strspn(v, "0123456789") : 0;
		if (n == 0 || n > 19 || v[n]) {
			respond_error(r->conn, 400, "'since' must be a time in epoch milliseconds");
			return;
		}
		since = strtoull(v, NULL, 10);
	}
	json_t *j = ctl_series(r->a->c, name, since);
	if (!j) {
		respond_no_canary(r->conn, name);
		return;
	}
	respond_json(r->conn, 200, j);
}

static void h_healthz(req *r, const char *name, const char *action)
{
	respond(r->conn, 200, "text/plain", "ok\n", 3);
}

/* Not ready while draining, or while the database cannot be written: the
 * proxies still serve, but rollouts hold and changes go unsaved. */
static void h_readyz(req *r, const char *name, const char *action)
{
	char why[512];
	if (!r->a->ready) {
		respond(r->conn, 503, "text/plain", "draining\n", 9);
	} else if (ctl_store_health(r->a->c, why, sizeof why - 1)) {
		size_t n = strlen(why);
		why[n++] = '\n';
		respond(r->conn, 503, "text/plain", why, n);
	} else {
		respond(r->conn, 200, "text/plain", "ready\n", 6);
	}
}

/* GET / and GET /assets/NAME: the dashboard's embedded files (assets.h). */
static void h_asset(req *r, const char *name, const char *action)
{
	const http_header *inm = http_find_header(r->http->headers, r->http->n_headers,
	                                          "If-None-Match");
	const http_header *ae = http_find_header(r->http->headers, r->http->n_headers,
	                                         "Accept-Encoding");
	asset_response res;
	assets_respond(r->a->assets, action, inm ? inm->value : NULL, inm ? inm->value_len : 0,
	               ae ? ae->value : NULL, ae ? ae->value_len : 0, &res);
	if (res.status == 404) {
		char msg[128];
		snprintf(msg, sizeof msg, r->a->assets ? "no dashboard file '%.63s'"
		         : "this canaryd was built without the dashboard", action);
		respond_error(r->conn, 404, msg);
		return;
	}
	respond_with(r->conn, res.status, res.ctype, res.headers, res.body, res.len);
}

/* GET /api/v1/dashboard: the page's default zone and locale (the
 * --dashboard-* flags; a user may override them in the page). */
static void h_dashboard_settings(req *r, const char *name, const char *action)
{
	respond_json(r->conn, 200, json_pack("{s:s, s:s}", "timeZone", r->a->dash_tz,
	                                     "locale", r->a->dash_locale));
}

/* The routes. <pattern> segments: "*" is the canary name, "+" an action. */
typedef void (*handler_fn)(req *, const char *, const char *);
static const struct route_row {
	const char *method;
	const char *pattern;
	handler_fn fn;
	const char *help;
} routes[] = {
	{ "GET", "/api/v1/canaries", h_list, "status of every canary" },
	{ "GET", "/api/v1/canaries/*", h_get, "status of one canary" },
	{ "GET", "/api/v1/canaries/*/events", h_events, "audit events, oldest first (?after=ID)" },
	{ "GET", "/api/v1/canaries/*/series", h_series,
	  "5-second samples of weight, errors and latency, the last 30 minutes (?since=MS)" },
	{ "GET", "/api/v1/events/stream", h_stream,
	  "Server-Sent Events: every canary's status, then each audit event and status change "
	  "(?canary=NAME)" },
	{ "GET", "/api/v1/canaries/*/audit/verify", h_audit_verify, "the audit's hash chain checked" },
	{ "GET", "/api/v1/canaries/*/audit/export", h_audit_export,
	  "the audit exported (?format=json|ndjson|csv&since=T&until=T)" },
	{ "GET", "/api/v1/audit/verify", h_audit_verify_all, "every canary's audit chain checked" },
	{ "POST", "/api/v1/canaries/*/+", h_action, "rollout, promote, abort, pause, resume, approve, weight, retry, undo" },
	{ "POST", "/api/v1/alertmanager", h_alertmanager, "Alertmanager webhook: firing alerts fail matching rollouts" },
	{ "GET", "/api/v1/version", h_version, "the version of canaryd" },
	{ "GET", "/metrics", h_metrics, "Prometheus text exposition" },
	{ "GET", "/healthz", h_healthz, "liveness" },
	{ "GET", "/readyz", h_readyz, "readiness" },
	{ "GET", "/api/v1/dashboard", h_dashboard_settings, "the dashboard's time zone and locale" },
	{ "GET", "/", h_asset, "the dashboard" },
	{ "GET", "/assets/+", h_asset, "the dashboard's files" },
};

/* Matches <path> against <pattern>; fills <name>/<action>. */
static int match(const char *pattern, const char *path, char *name, char *action)
{
	name[0] = action[0] = '\0';
	while (*pattern && *path) {
		if (*pattern == '*' || *pattern == '+') {
			char *dst = *pattern == '*' ? name : action;
			size_t n = strcspn(path, "/");
			if (n == 0 || n > 63)
				return 0;
			memcpy(dst, path, n);
			dst[n] = '\0';
			path += n;
			pattern++;
			continue;
		}
		if (*pattern != *path)
			return 0;
		pattern++;
		path++;
	}
	return *pattern == '\0' && *path == '\0';
}

/* The headers named <name>: the first, and their count in *n. */
static const http_header *find_all(const http_request *h, const char *name, size_t *n)
{
	const http_header *first = NULL;
	*n = 0;
	for (size_t i = 0; i < h->n_headers; i++) {
		if (!http_ieq(h->headers[i].name, h->headers[i].name_len, name))
			continue;
		if (!first)
			first = &h->headers[i];
		(*n)++;
	}
	return first;
}

/* Splits an authority s[0..len), "NAME", "NAME:PORT", "[V6]" or
 * "[V6]:PORT", into <host> (without brackets) and *port (0 when it names
 * none). Returns 0, or -1 when it is none of those. */
static int split_authority(const char *s, size_t len, char *host, size_t hostlen, int *port)
{
	const char *hs = s, *he, *rest;
	if (len && s[0] == '[') {
		const char *rb = memchr(s, ']', len);
		if (!rb)
			return -1;
		hs = s + 1;
		he = rb;
		rest = rb + 1;
	} else {
		const char *colon = memchr(s, ':', len);
		he = rest = colon ? colon : s + len;
	}
	size_t hl = (size_t)(he - hs), rl = (size_t)(s + len - rest);
	if (hl == 0 || hl >= hostlen)
		return -1;
	for (size_t i = 0; i < hl; i++)
		if (!(isalnum((unsigned char)hs[i]) || (hs[i] && strchr(".-_:%", hs[i]))))
			return -1;
	*port = 0;
	if (rl) {
		if (rest[0] != ':' || rl < 2 || rl > 6)
			return -1;
		for (size_t i = 1; i < rl; i++) {
			if (!isdigit((unsigned char)rest[i]))
				return -1;
			*port = *port * 10 + (rest[i] - '0');
		}
		if (*port < 1 || *port > 65535)
			return -1;
	}
	memcpy(host, hs, hl);
	host[hl] = '\0';
	return 0;
}

/* Whether <host> (an IP literal or a name) is an address of this API, as
 * admin.h says. <port> 0: none was given, which means 80. */
static int host_accepted(const admin *a, const char *host, int port)
{
	for (size_t i = 0; i < a->n_hosts; i++)
		if (strcasecmp(host, a->hosts[i]) == 0)
			return 1;
	if ((port ? port : 80) != a->port)
		return 0;
	if (strcasecmp(host, "localhost") == 0)
		return 1;
	unsigned char ip[16];
	if (inet_pton(AF_INET, host, ip) == 1)
		return !a->loopback || ip[0] == 127;
	if (inet_pton(AF_INET6, host, ip) == 1) {
		static const unsigned char one[16] = { [15] = 1 };
		static const unsigned char v4mapped[12] = { [10] = 0xff, [11] = 0xff };
		return !a->loopback || memcmp(ip, one, 16) == 0 ||
		       (memcmp(ip, v4mapped, 12) == 0 && ip[12] == 127);
	}
	return 0;
}

/* Checks Host (every request) and fills r->host and r->host_port.
 * Returns 0, or -1 after answering 400 or 403. */
static int check_host(req *r)
{
	size_t n;
	const http_header *h = find_all(r->http, "Host", &n);
	if (n == 0 && r->http->minor == 0)
		return 0; /* HTTP/1.0 has no Host; a browser always sends one */
	if (n != 1 || split_authority(h->value, h->value_len, r->host, sizeof r->host,
	                              &r->host_port) < 0) {
		respond_error(r->conn, 400, n == 0 ? "HTTP/1.1 request without Host"
		                            : n > 1 ? "request with more than one Host"
		                                    : "malformed Host");
		return -1;
	}
	if (!host_accepted(r->a, r->host, r->host_port)) {
		char msg[400];
		snprintf(msg, sizeof msg, "host '%.*s' is not an address of this admin API "
		         "(name it with --admin-host)", (int)h->value_len, h->value);
		respond_error(r->conn, 403, msg);
		return -1;
	}
	return 0;
}

/* A mutating call must come from this API's own origin when it names one:
 * Origin's host and port equal Host's (an absent port is the scheme's).
 * Returns 0, or -1 after answering 403. */
static int check_origin(req *r)
{
	size_t n;
	const http_header *o = find_all(r->http, "Origin", &n);
	if (n == 0)
		return 0; /* not a browser, or a same-origin GET-like request */
	char host[256];
	int port = -1, dflt = 0;
	if (n == 1 && o->value_len > 7 && strncasecmp(o->value, "http://", 7) == 0)
		dflt = 80;
	else if (n == 1 && o->value_len > 8 && strncasecmp(o->value, "https://", 8) == 0)
		dflt = 443;
	if (dflt) {
		size_t skip = dflt == 80 ? 7 : 8;
		if (split_authority(o->value + skip, o->value_len - skip, host, sizeof host, &port) < 0)
			port = -1;
	}
	if (port >= 0 && r->host[0] && strcasecmp(host, r->host) == 0 &&
	    (port ? port : dflt) == (r->host_port ? r->host_port : dflt))
		return 0;
	char msg[400];
	snprintf(msg, sizeof msg, "origin '%.*s' may not change this admin API: only its own "
	         "pages and clients that send no Origin may", n ? (int)o->value_len : 0,
	         n ? o->value : "");
	respond_error(r->conn, 403, msg);
	return -1;
}

/* A mutating call's body must be declared JSON, which a page of another
 * site cannot send without a CORS preflight (that this API never grants);
 * text/plain and forms it can. Returns 0, or -1 after answering 415. */
static int check_json_type(req *r)
{
	const http_header *h = http_find_header(r->http->headers, r->http->n_headers, "Content-Type");
	size_t l = 0;
	if (h) {
		while (l < h->value_len && h->value[l] != ';' && h->value[l] != ' ' && h->value[l] != '\t')
			l++;
		if (http_ieq(h->value, l, "application/json")) {
			while (l < h->value_len && (h->value[l] == ' ' || h->value[l] == '\t'))
				l++;
			if (l == h->value_len || h->value[l] == ';')
				return 0;
		}
	}
	respond_error(r->conn, 415, "mutating calls need 'Content-Type: application/json' "
	              "and a JSON body");
	return -1;
}

static void dispatch(req *r)
{
	const http_request *h = r->http;
	if (check_host(r) < 0)
		return;
	/* h->target is not NUL-terminated: it is followed by the rest of the head */
	const char *q = memchr(h->target, '?', h->target_len);
	size_t pl = q ? (size_t)(q - h->target) : h->target_len;
	size_t ql = q ? h->target_len - pl - 1 : 0;
	if (pl >= sizeof r->path || ql >= sizeof r->query) {
		respond_error(r->conn, 414, "request target too long");
		return;
	}
	memcpy(r->path, h->target, pl);
	r->path[pl] = '\0';
	memcpy(r->query, q ? q + 1 : "", ql);
	r->query[ql] = '\0';
	if (pl > 1 && r->path[pl - 1] == '/')
		r->path[pl - 1] = '\0';

	char name[64], action[64];
	int path_matched = 0;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!match(routes[i].pattern, r->path, name, action))
			continue;
		path_matched = 1;
		if (strlen(routes[i].method) != h->method_len ||
		    memcmp(routes[i].method, h->method, h->method_len) != 0) {
			if (!(h->is_head && strcmp(routes[i].method, "GET") == 0))
				continue;
		}
		if (name[0] && !util_valid_name(name)) {
			respond_error(r->conn, 404, "canary names are lower-case letters, digits and '-'");
			return;
		}
		if (strcmp(routes[i].method, "GET") != 0 &&
		    (check_origin(r) < 0 || check_json_type(r) < 0))
			return;
		routes[i].fn(r, name, action);
		return;
	}
	if (path_matched) {
		respond_error(r->conn, 405, "method not allowed");
		return;
	}
	char msg[600];
	snprintf(msg, sizeof msg, "no such path '%.500s'", r->path);
	respond_error(r->conn, 404, msg);
}

/* ---- connections ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	*b = uv_buf_init(read_slab, sizeof read_slab);
}

/* Parses what <in> holds; answers when a request is complete, or moves to
 * the state that waits for the rest. */
static void try_request(aconn *cn)
{
	http_request *hr = xcalloc(1, sizeof *hr);
	int rc = http_parse_request(cn->in.p, cn->in.len, hr);
	if (rc == HTTP_INCOMPLETE) {
		free(hr);
		return;
	}
	cn->keep = 0; /* errors below close the connection */
	cn->is_head = rc > 0 && hr->is_head;
	if (rc < 0) {
		free(hr);
		if (rc == HTTP_E_TOO_LARGE)
			respond_error(cn, 431, "request head too large");
		else if (rc == HTTP_E_VERSION)
			respond_error(cn, 505, "HTTP version not supported");
		else
			respond_error(cn, 400, "malformed HTTP request");
		return;
	}
	if (hr->body == HTTP_BODY_CHUNKED) {
		free(hr);
		respond_error(cn, 411, "send the body with Content-Length");
		return;
	}
	uint64_t body_len = hr->body == HTTP_BODY_LENGTH ? hr->content_length : 0;
	if (body_len > ADMIN_MAX_BODY) {
		free(hr);
		respond_error(cn, 413, "request body larger than 1 MiB");
		return;
	}
	if (cn->in.len < hr->head_len + body_len) {
		free(hr);
		if (cn->state != AC_BODY)
			conn_enter(cn, AC_BODY);
		return;
	}
	conn_enter(cn, AC_HANDLING);
	cn->keep = hr->keep_alive && !hr->upgrade;
	cn->consumed = hr->head_len + (size_t)body_len;
	req *r = xcalloc(1, sizeof *r); /* 32 KiB: not on the stack */
	r->a = cn->a;
	r->conn = cn;
	r->http = hr;
	r->body = cn->in.p + hr->head_len;
	r->body_len = (size_t)body_len;
	dispatch(r);
	free(r);
	free(hr);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	aconn *cn = s->data;
	admin *a = cn->a;
	if (nread < 0) {
		conn_close(cn);
		return;
	}
	if (nread == 0 || cn->responded || cn->state == AC_STREAM)
		return; /* a stream's client has nothing more to say */
	if (cn->in.len + (size_t)nread > ADMIN_MAX_BODY + HTTP_MAX_HEAD) {
		cn->keep = 0;
		respond_error(cn, 413, "request too large");
		return;
	}
	/* many connections each holding most of a 1 MiB body would hold any
	 * amount of memory: past the budget, the one that asks for more goes */
	if (a->buffered + (size_t)nread > ADMIN_MAX_BUFFERED) {
		cn->keep = 0;
		respond_error(cn, 503, "admin API busy: too many request bytes in flight, retry");
		return;
	}
	buf_append(&cn->in, b->base, (size_t)nread);
	a->buffered += (size_t)nread;
	if (cn->state == AC_IDLE) {
		/* the first request's head timeout runs from accept */
		if (cn->served)
			conn_enter(cn, AC_HEAD);
		else
			cn->state = AC_HEAD;
	}
	if (cn->state == AC_HEAD || cn->state == AC_BODY)
		try_request(cn);
}

static void reject_closed(uv_handle_t *h)
{
	free(h);
}

/* Over max_conns: accepts the connection and closes it at once with a 503,
 * so that it holds nothing and the client learns why (a client whose
 * request is still on its way sees a reset instead). */
static void reject(admin *a, uv_stream_t *server)
{
	static const char body[] = "{\"error\":\"too many connections to the admin API\"}\n";
	char busy[256];
	int n = snprintf(busy, sizeof busy,
	                 "HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
	                 "Content-Length: %zu\r\nConnection: close\r\n\r\n%s",
	                 sizeof body - 1, body);
	uv_tcp_t *t = xcalloc(1, sizeof *t);
	uv_tcp_init(a->loop, t);
	if (uv_accept(server, (uv_stream_t *)t) == 0) {
		/* what the client already sent must not make close() a reset */
		uv_os_fd_t fd;
		if (uv_fileno((uv_handle_t *)t, &fd) == 0)
			for (int i = 0; i < 4 && recv(fd, read_slab, sizeof read_slab, MSG_DONTWAIT) > 0; i++)
				;
		uv_buf_t b = uv_buf_init(busy, (unsigned)n);
		uv_try_write((uv_stream_t *)t, &b, 1);
	}
	uv_close((uv_handle_t *)t, reject_closed);
	if (!a->full_logged) {
		log_msg(LOG_WARN, NULL, "admin API: %u connections open, refusing more until one closes",
		        a->n_conns);
		a->full_logged = 1;
	}
}

static void on_connection(uv_stream_t *server, int status)
{
	admin *a = server->data;
	if (status < 0 || a->closing)
		return;
	if (a->n_conns >= a->max_conns) {
		reject(a, server);
		return;
	}
	aconn *cn = xcalloc(1, sizeof *cn);
	cn->a = a;
	uv_tcp_init(a->loop, &cn->tcp);
	uv_timer_init(a->loop, &cn->timer);
	cn->tcp.data = cn->timer.data = cn;
	cn->handles = 2;
	LIST_PUSH(a->conns, cn);
	a->n_conns++;
	if (uv_accept(server, (uv_stream_t *)&cn->tcp) != 0) {
		conn_close(cn);
		return;
	}
	struct sockaddr_storage ss;
	int sl = sizeof ss;
	snprintf(cn->peer, sizeof cn->peer, "unknown");
	if (uv_tcp_getpeername(&cn->tcp, (struct sockaddr *)&ss, &sl) == 0) {
		char ip[64] = "";
		if (ss.ss_family == AF_INET6)
			uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof ip);
		else
			uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof ip);
		snprintf(cn->peer, sizeof cn->peer, "%s", ip);
	}
	conn_enter(cn, AC_IDLE);
	uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
}

/* ---- lifecycle ---- */

static void free_tokens(admin *a)
{
	for (size_t i = 0; i < a->n_tokens; i++)
		free(a->tokens[i].name);
	free(a->tokens);
	a->tokens = NULL;
	a->n_tokens = 0;
}

/* One token of the file: only the secret's digest is kept. */
static int add_token(void *arg, const char *name, const char *secret, int line, char *err,
                     size_t errlen)
{
	admin *a = arg;
	/* the name is the actor in the audit and the logs */
	if (log_unsafe_at(name, strlen(name), NULL) < strlen(name)) {
		snprintf(err, errlen, "%s:%d: the token's name holds a control character",
		         a->token_path, line);
		return -1;
	}
	a->tokens = xrealloc(a->tokens, (a->n_tokens + 1) * sizeof *a->tokens);
	token *t = &a->tokens[a->n_tokens++];
	t->name = xstrdup(name);
	token_digest(secret, strlen(secret), t->digest);
	return 0;
}

/* Reads the token file (admin.h); keeps only each secret's digest. */
static int load_tokens(admin *a, const char *path, char *err, size_t errlen)
{
	a->token_path = path;
	int rc = util_read_tokens(path, add_token, a, err, errlen);
	a->token_path = NULL;
	return rc;
}

static void listener_closed(uv_handle_t *h)
{
	admin *a = h->data;
	for (size_t i = 0; i < a->n_hosts; i++)
		free(a->hosts[i]);
	free(a->hosts);
	free(a);
}

void admin_opts_init(admin_opts *o)
{
	memset(o, 0, sizeof *o);
	o->addr = "127.0.0.1:9901";
	o->head_timeout_ms = 10000;
	o->body_timeout_ms = 30000;
	o->idle_timeout_ms = 60000;
	o->max_conns = 128;
	o->dashboard_time_zone = "Europe/London";
	o->dashboard_locale = "en-GB";
}

/* Parses <addr> into <ss>; sets *loopback. Returns 0 or -1 with <err>. */
static int parse_addr(const char *addr, struct sockaddr_storage *ss, int *port, int *loopback,
                      char *err, size_t errlen)
{
	char host[256];
	if (util_parse_hostport(addr, host, sizeof host, port) < 0) {
		snprintf(err, errlen, "admin address '%s' is not HOST:PORT", addr);
		return -1;
	}
	if (rsv_numeric(addr, ss) < 0) {
		snprintf(err, errlen, "admin address '%s': not a numeric IP address", addr);
		return -1;
	}
	const struct sockaddr_in *v4 = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *v6 = (const struct sockaddr_in6 *)ss;
	if (ss->ss_family == AF_INET)
		*loopback = (ntohl(v4->sin_addr.s_addr) >> 24) == 127;
	else
		*loopback = IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr) ||
		            (IN6_IS_ADDR_V4MAPPED(&v6->sin6_addr) && v6->sin6_addr.s6_addr[12] == 127);
	return 0;
}

int admin_check_addr(const char *addr, int has_token, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int port, loopback;
	if (parse_addr(addr, &ss, &port, &loopback, err, errlen) < 0)
		return -1;
	if (!loopback && !has_token) {
		snprintf(err, errlen, "admin address '%s' is not a loopback address: anyone who "
		         "reaches it could change rollouts; give --token-file, or listen on "
		         "127.0.0.1", addr);
		return -1;
	}
	return 0;
}

int admin_start(uv_loop_t *loop, const admin_opts *o, ctl *c, store *db,
                admin **out, char *err, size_t errlen)
{
	struct sockaddr_storage ss;
	int port, loopback;
	if (parse_addr(o->addr, &ss, &port, &loopback, err, errlen) < 0)
		return -1;
	admin *a = xcalloc(1, sizeof *a);
	a->loop = loop;
	a->c = c;
	a->db = db;
	a->ready = 1;
	a->port = port;
	a->loopback = loopback;
	a->head_ms = o->head_timeout_ms;
	a->body_ms = o->body_timeout_ms;
	a->idle_ms = o->idle_timeout_ms;
	a->max_conns = o->max_conns ? o->max_conns : 1;
	a->assets = o->assets;
	snprintf(a->dash_tz, sizeof a->dash_tz, "%s", o->dashboard_time_zone);
	snprintf(a->dash_locale, sizeof a->dash_locale, "%s", o->dashboard_locale);
	if (o->n_hosts) {
		a->hosts = xcalloc(o->n_hosts, sizeof *a->hosts);
		for (size_t i = 0; i < o->n_hosts; i++)
			a->hosts[i] = xstrdup(o->hosts[i]);
		a->n_hosts = o->n_hosts;
	}
	uv_tcp_init(loop, &a->listener);
	a->listener.data = a;
	int rc = 0;
	if (o->token_file && load_tokens(a, o->token_file, err, errlen) < 0)
		rc = -1;
	if (rc == 0) {
		rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0);
		if (rc == 0)
			rc = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
		if (rc != 0)
			snprintf(err, errlen, "cannot listen on '%s': %s", o->addr, uv_strerror(rc));
	}
	if (rc != 0) {
		free_tokens(a);
		a->closing = 1;
		uv_close((uv_handle_t *)&a->listener, listener_closed);
		return -1;
	}
	*out = a;
	return 0;
}

void admin_set_ready(admin *a, int ready)
{
	a->ready = ready;
}

void admin_close(admin *a)
{
	a->closing = 1;
	while (a->conns)
		conn_close(a->conns);
	free_tokens(a);
	uv_close((uv_handle_t *)&a->listener, listener_closed);
}
