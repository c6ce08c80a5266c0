/* admin.c - see admin.h. Keep-alive, one request at a time per connection
 * (pipelined requests wait in the input buffer): scripts that change
 * weights many times a second reuse one connection. Requests are parsed
 * with the proxy's parser (http.h). */
#include "admin.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "util.h"

#define ADMIN_MAX_BODY (1 << 20)

typedef struct token {
	char *name;
	char *secret;
} token;

struct admin {
	uv_loop_t *loop;
	uv_tcp_t listener;
	ctl *c;
	store *db;
	token *tokens;
	size_t n_tokens;
	int ready;
	int closing;
	struct aconn *conns;   /* open connections, for admin_close */
};

typedef struct aconn {
	uv_tcp_t tcp;
	uv_write_t wr;
	admin *a;
	buf in;
	buf out;
	char peer[64];
	int responded;     /* a response is being written */
	int keep;          /* keep the connection after this response */
	size_t consumed;   /* bytes of <in> that the current request used */
	ctl_call *pending; /* a command waiting for host names: answered later */
	struct aconn *prev, *next;
} aconn;

typedef struct req {
	admin *a;
	aconn *conn;
	const http_request *http;
	char path[512];
	char query[512];
	const char *body;
	size_t body_len;
} req;

/* ---- responses ---- */

static void conn_closed(uv_handle_t *h)
{
	aconn *cn = h->data;
	buf_release(&cn->in);
	buf_release(&cn->out);
	free(cn);
}

static void conn_close(aconn *cn)
{
	if (uv_is_closing((uv_handle_t *)&cn->tcp))
		return;
	admin *a = cn->a;
	ctl_call_cancel(cn->pending);   /* its answer must not reach freed memory */
	cn->pending = NULL;
	if (cn->prev)
		cn->prev->next = cn->next;
	else
		a->conns = cn->next;
	if (cn->next)
		cn->next->prev = cn->prev;
	uv_close((uv_handle_t *)&cn->tcp, conn_closed);
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
	cn->in.p[cn->in.len] = '\0';
	cn->consumed = 0;
	cn->responded = 0;
	uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
	if (cn->in.len)
		try_request(cn);
}

static void respond(aconn *cn, int status, const char *ctype, const char *body, size_t len)
{
	if (cn->responded)
		return;
	cn->responded = 1;
	buf_reset(&cn->out);
	buf_printf(&cn->out,
	           "HTTP/1.1 %d %s\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
	           "Cache-Control: no-store\r\n%s\r\n",
	           status, http_reason(status), ctype, len,
	           cn->keep ? "" : "Connection: close\r\n");
	buf_append(&cn->out, body, len);
	uv_buf_t b = uv_buf_init(cn->out.p, (unsigned)cn->out.len);
	cn->wr.data = cn;
	uv_read_stop((uv_stream_t *)&cn->tcp);
	if (uv_write(&cn->wr, (uv_stream_t *)&cn->tcp, &b, 1, on_written) != 0)
		conn_close(cn);
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

static void respond_error(aconn *cn, int status, const char *msg)
{
	json_t *j = json_object();
	json_object_set_new(j, "error", json_string(msg));
	respond_json(cn, status, j);
}

/* ---- handlers ---- */

static int valid_name(const char *s)
{
	if (!*s || strlen(s) > 63)
		return 0;
	for (; *s; s++)
		if (!(islower((unsigned char)*s) || isdigit((unsigned char)*s) || *s == '-'))
			return 0;
	return 1;
}

/* Who is asking: the token's name when tokens are configured (and checked
 * here), else the client's address. Returns NULL after answering 401. */
static const char *authorize(req *r, int mutating)
{
	admin *a = r->a;
	if (a->n_tokens == 0 || !mutating)
		return r->conn->peer;
	const http_header *h = http_find_header(r->http->headers, r->http->n_headers, "Authorization");
	if (h && h->value_len > 7 && strncasecmp(h->value, "Bearer ", 7) == 0) {
		const char *v = h->value + 7;
		size_t vl = h->value_len - 7;
		for (size_t i = 0; i < a->n_tokens; i++)
			if (strlen(a->tokens[i].secret) == vl && memcmp(a->tokens[i].secret, v, vl) == 0)
				return a->tokens[i].name;
	}
	respond_error(r->conn, 401, h ? "invalid token" : "this call needs 'Authorization: Bearer TOKEN'");
	return NULL;
}

static void h_list(req *r, const char *name, const char *action)
{
	respond_json(r->conn, 200, ctl_status(r->a->c, NULL));
}

static void h_get(req *r, const char *name, const char *action)
{
	json_t *j = ctl_status(r->a->c, name);
	if (!j) {
		char msg[128];
		snprintf(msg, sizeof msg, "no canary named '%s'", name);
		respond_error(r->conn, 404, msg);
		return;
	}
	respond_json(r->conn, 200, j);
}

static void h_events(req *r, const char *name, const char *action)
{
	if (!ctl_has(r->a->c, name)) {
		char msg[128];
		snprintf(msg, sizeof msg, "no canary named '%s'", name);
		respond_error(r->conn, 404, msg);
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
	respond_json(r->conn, 200, ev);
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

static void h_healthz(req *r, const char *name, const char *action)
{
	respond(r->conn, 200, "text/plain", "ok\n", 3);
}

static void h_readyz(req *r, const char *name, const char *action)
{
	if (r->a->ready)
		respond(r->conn, 200, "text/plain", "ready\n", 6);
	else
		respond(r->conn, 503, "text/plain", "draining\n", 9);
}

extern const char admin_dashboard_html[];

static void h_dashboard(req *r, const char *name, const char *action)
{
	respond(r->conn, 200, "text/html; charset=utf-8", admin_dashboard_html,
	        strlen(admin_dashboard_html));
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
	{ "POST", "/api/v1/canaries/*/+", h_action, "rollout, promote, abort, pause, resume, approve, weight" },
	{ "POST", "/api/v1/alertmanager", h_alertmanager, "Alertmanager webhook: firing alerts fail matching rollouts" },
	{ "GET", "/metrics", h_metrics, "Prometheus text exposition" },
	{ "GET", "/healthz", h_healthz, "liveness" },
	{ "GET", "/readyz", h_readyz, "readiness" },
	{ "GET", "/", h_dashboard, "the dashboard" },
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

static void dispatch(req *r)
{
	const http_request *h = r->http;
	size_t pl = strcspn(h->target, "?");
	if (pl >= sizeof r->path || h->target_len >= sizeof r->path + sizeof r->query) {
		respond_error(r->conn, 414, "request target too long");
		return;
	}
	if (pl > h->target_len)
		pl = h->target_len;
	memcpy(r->path, h->target, pl);
	r->path[pl] = '\0';
	size_t ql = h->target_len > pl + 1 ? h->target_len - pl - 1 : 0;
	if (ql >= sizeof r->query)
		ql = sizeof r->query - 1;
	memcpy(r->query, h->target + pl + (ql ? 1 : 0), ql);
	r->query[ql] = '\0';
	size_t len = strlen(r->path);
	if (len > 1 && r->path[len - 1] == '/')
		r->path[len - 1] = '\0';

	char name[64], action[64];
	int path_matched = 0;
	for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
		if (!match(routes[i].pattern, r->path, name, action))
			continue;
		path_matched = 1;
		int is_head = h->method_len == 4 && memcmp(h->method, "HEAD", 4) == 0;
		if (strlen(routes[i].method) != h->method_len ||
		    memcmp(routes[i].method, h->method, h->method_len) != 0) {
			if (!(is_head && strcmp(routes[i].method, "GET") == 0))
				continue;
		}
		if (name[0] && !valid_name(name)) {
			respond_error(r->conn, 404, "canary names are lower-case letters, digits and '-'");
			return;
		}
		routes[i].fn(r, name, action);
		return;
	}
	if (path_matched) {
		respond_error(r->conn, 405, "method not allowed");
		return;
	}
	char msg[600];
	snprintf(msg, sizeof msg, "no such path '%s'", r->path);
	respond_error(r->conn, 404, msg);
}

/* ---- connections ---- */

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	static char slab[65536];
	*b = uv_buf_init(slab, sizeof slab);
}

static void try_request(aconn *cn)
{
	http_request *hr = xcalloc(1, sizeof *hr);
	int rc = http_parse_request(cn->in.p, cn->in.len, hr);
	if (rc == HTTP_INCOMPLETE) {
		free(hr);
		return;
	}
	cn->keep = 0; /* errors below close the connection */
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
		return;
	}
	cn->keep = hr->keep_alive && !hr->upgrade;
	cn->consumed = hr->head_len + (size_t)body_len;
	req r;
	memset(&r, 0, sizeof r);
	r.a = cn->a;
	r.conn = cn;
	r.http = hr;
	r.body = cn->in.p + hr->head_len;
	r.body_len = (size_t)body_len;
	dispatch(&r);
	free(hr);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	aconn *cn = s->data;
	if (nread < 0) {
		conn_close(cn);
		return;
	}
	if (nread == 0 || cn->responded)
		return;
	if (cn->in.len + (size_t)nread > ADMIN_MAX_BODY + HTTP_MAX_HEAD) {
		respond_error(cn, 413, "request too large");
		return;
	}
	buf_append(&cn->in, b->base, (size_t)nread);
	try_request(cn);
}

static void on_connection(uv_stream_t *server, int status)
{
	admin *a = server->data;
	if (status < 0)
		return;
	aconn *cn = xcalloc(1, sizeof *cn);
	cn->a = a;
	uv_tcp_init(a->loop, &cn->tcp);
	cn->tcp.data = cn;
	cn->next = a->conns;
	if (a->conns)
		a->conns->prev = cn;
	a->conns = cn;
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
	uv_read_start((uv_stream_t *)&cn->tcp, on_alloc, on_read);
}

/* ---- lifecycle ---- */

static void free_tokens(admin *a)
{
	for (size_t i = 0; i < a->n_tokens; i++) {
		free(a->tokens[i].name);
		free(a->tokens[i].secret);
	}
	free(a->tokens);
	a->tokens = NULL;
	a->n_tokens = 0;
}

static int load_tokens(admin *a, const char *path, char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		snprintf(err, errlen, "cannot read token file '%s': %m", path);
		return -1;
	}
	char line[1024];
	int lineno = 0;
	while (fgets(line, sizeof line, f)) {
		lineno++;
		char *p = line;
		while (isspace((unsigned char)*p))
			p++;
		size_t l = strlen(p);
		while (l && isspace((unsigned char)p[l - 1]))
			p[--l] = '\0';
		if (!*p || *p == '#')
			continue;
		char *sp = strpbrk(p, " \t");
		const char *nm = "token", *sec = p;
		if (sp) {
			*sp = '\0';
			nm = p;
			sec = sp + 1;
			while (isspace((unsigned char)*sec))
				sec++;
			if (strpbrk(sec, " \t")) {
				snprintf(err, errlen, "%s:%d: expected 'NAME TOKEN' or 'TOKEN'", path, lineno);
				fclose(f);
				return -1;
			}
		}
		a->tokens = xrealloc(a->tokens, (a->n_tokens + 1) * sizeof *a->tokens);
		a->tokens[a->n_tokens].name = xstrdup(nm);
		a->tokens[a->n_tokens].secret = xstrdup(sec);
		a->n_tokens++;
	}
	fclose(f);
	if (a->n_tokens == 0) {
		snprintf(err, errlen, "token file '%s' holds no token", path);
		return -1;
	}
	return 0;
}

static void listener_closed(uv_handle_t *h)
{
	free(h->data);
}

int admin_start(uv_loop_t *loop, const char *addr, ctl *c, store *db,
                const char *token_file, admin **out, char *err, size_t errlen)
{
	char host[256];
	int port;
	struct sockaddr_storage ss;
	if (util_parse_hostport(addr, host, sizeof host, &port) < 0) {
		snprintf(err, errlen, "admin address '%s' is not HOST:PORT", addr);
		return -1;
	}
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof host, "127.0.0.1");
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0 &&
	    uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss) != 0) {
		snprintf(err, errlen, "admin address '%s': not a numeric IP address", addr);
		return -1;
	}
	admin *a = xcalloc(1, sizeof *a);
	a->loop = loop;
	a->c = c;
	a->db = db;
	a->ready = 1;
	if (token_file && load_tokens(a, token_file, err, errlen) < 0) {
		free_tokens(a);
		free(a);
		return -1;
	}
	uv_tcp_init(loop, &a->listener);
	a->listener.data = a;
	int rc = uv_tcp_bind(&a->listener, (struct sockaddr *)&ss, 0);
	if (rc == 0)
		rc = uv_listen((uv_stream_t *)&a->listener, 128, on_connection);
	if (rc != 0) {
		snprintf(err, errlen, "cannot listen on '%s': %s", addr, uv_strerror(rc));
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
	while (a->conns)
		conn_close(a->conns);
	free_tokens(a);
	uv_close((uv_handle_t *)&a->listener, listener_closed);
}
