/* fuzz_admin.c - libFuzzer target for the admin API's request path: the
 * JSON bodies of the commands (rollout, promote, weight, ...), the
 * Alertmanager payload, the routes and their query strings, the request
 * headers the API checks (Host, Origin, Content-Type, Authorization) and the
 * token file. Each input runs against a fresh daemon built as main.c builds
 * it (store, controller, admin listener) on a temporary data directory, over
 * a real loopback connection, so the whole path from bytes on the socket to
 * the audit is exercised and every input starts from the same state.
 *
 * The input is text, blocks separated by "\n%%\n":
 *   an optional first block "TOKENS\n<token file>", then requests:
 *   METHOD TARGET          (first line; empty: GET /)
 *   Header: value          (any number; Content-Length and
 *   ...                     Transfer-Encoding are dropped, the harness
 *                           frames the body itself)
 *   <blank line>
 *   body
 * The harness adds Host (unless given) and Content-Length.
 *
 * Invariants (abort() when broken): every request gets a well-formed
 * response; never a 500 (a valid request whose handling fails inside is a
 * bug); a JSON response parses, and an error answer is {"error": "..."}
 * with a one-line message; a HEAD answer carries no body; afterwards the
 * status of every canary is consistent (a weight within 0..100, a known
 * phase). Network: see netguard.h; nothing leaves the machine. */
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "netguard.h"

#include "admin.h"
#include "config.h"
#include "controller.h"
#include "http.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define MAX_REQUESTS 16
#define MAX_RESPONSE (4u << 20)
#define MAX_SPINS 20000 /* loop turns per response before calling it a hang */

static uv_loop_t *loop;
static char dir[64];
static char token_path[96];
static int admin_port, proxy_port, dead_port;
static char config_text[2048];

/* stderr as it was at start: run.sh sends fd 2 (the daemon's log) to
 * /dev/null with -close_fd_mask=2, and why an input failed must still
 * show */
static int report_fd = 2;

static void die(const char *what, const char *detail)
{
	dprintf(report_fd, "fuzz_admin: %s%s%.2000s\n", what, detail ? ": " : "",
	        detail ? detail : "");
	abort();
}

/* A loopback port nobody listens on: bound and kept, never listened to,
 * so a connect to it is refused at once and no other process gets it. */
static int hold_port(int listening, int *fd_out)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	socklen_t sl = sizeof sa;
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
		die("cannot bind a loopback port", strerror(errno));
	if (!listening) {
		*fd_out = fd;
	} else {
		close(fd); /* the daemon binds it again right away */
		*fd_out = -1;
	}
	return ntohs(sa.sin_port);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	report_fd = dup(2);
	signal(SIGPIPE, SIG_IGN);
	log_setup(NULL, "debug"); /* run the log formatting too (run.sh sends it to /dev/null) */
	loop = uv_default_loop();
	netguard_selftest(loop);
	snprintf(dir, sizeof dir, "/dev/shm/canaryd-fuzz-XXXXXX");
	if (access("/dev/shm", W_OK) != 0)
		snprintf(dir, sizeof dir, "/tmp/canaryd-fuzz-XXXXXX");
	if (!mkdtemp(dir))
		die("cannot make a data directory", strerror(errno));
	snprintf(token_path, sizeof token_path, "%s/tokens", dir);
	int fd;
	admin_port = hold_port(1, &fd);
	proxy_port = hold_port(1, &fd);
	dead_port = hold_port(0, &fd);
	netguard_allow(admin_port);
	netguard_allow(proxy_port);
	netguard_allow(dead_port);
	snprintf(config_text, sizeof config_text,
	         "apiVersion: canaryd/v1\n"
	         "kind: Canary\n"
	         "metadata: {name: web}\n"
	         "spec:\n"
	         "  router: builtin\n"
	         "  listen: 127.0.0.1:%d\n"
	         "  stable: {revision: v1, endpoints: [127.0.0.1:%d]}\n"
	         "  alerts: {matchers: {service: shop, team: web}}\n"
	         "  analysis:\n"
	         "    interval: 1s\n"
	         "    threshold: 2\n"
	         "    maxWeight: 50\n"
	         "    stepWeights: [5, 20, 50]\n"
	         "    metrics:\n"
	         "      - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}\n"
	         "      - {name: request-duration, thresholdRange: {max: 500}, interval: 30s}\n",
	         proxy_port, dead_port);
	return 0;
}

/* ---- the daemon under test ---- */

typedef struct daemon_ {
	store *db;
	ctl *c;
	admin *adm;
} daemon_;

static void remove_data(void)
{
	static const char *const files[] = { "canaryd.db", "canaryd.db-wal", "canaryd.db-shm",
	                                     "canaryd.db-journal", "tokens" };
	char p[160];
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, files[i]);
		unlink(p);
	}
}

/* A fresh database is the empty one store_open made on the first input,
 * copied back: creating the schema each time would cost more than the
 * rest of an input. */
static buf pristine_db;

static void fresh_data(void)
{
	char p[160];
	remove_data();
	snprintf(p, sizeof p, "%s/canaryd.db", dir);
	if (!pristine_db.len) {
		store *s;
		char err[512];
		if (store_open(dir, &s, err, sizeof err) < 0)
			die("store_open", err);
		store_close(s);
		FILE *f = fopen(p, "rb");
		char tmp[8192];
		size_t n;
		while (f && (n = fread(tmp, 1, sizeof tmp, f)) > 0)
			buf_append(&pristine_db, tmp, n);
		if (!f || !pristine_db.len)
			die("cannot read the new database back", p);
		fclose(f);
		remove_data();
	}
	FILE *f = fopen(p, "wb");
	if (!f || fwrite(pristine_db.p, 1, pristine_db.len, f) != pristine_db.len || fclose(f) != 0)
		die("cannot write the database", p);
}

/* Starts store, controller and admin API as main.c does. Returns 0, or -1
 * when admin_start refused the token file (a valid outcome). */
static int daemon_start(daemon_ *d, const char *tokens, size_t tokens_len)
{
	char err[512];
	memset(d, 0, sizeof *d);
	fresh_data();
	if (store_open(dir, &d->db, err, sizeof err) < 0)
		die("store_open", err);
	cfg *conf = NULL;
	cfg_errors errs = { 0 };
	if (cfg_load_string("fuzz.yaml", config_text, strlen(config_text), &conf, &errs) < 0)
		die("the fixed configuration does not load", errs.n ? errs.msg[0] : "");
	cfg_errors_release(&errs);
	if (ctl_new(loop, d->db, conf, &d->c, err, sizeof err) < 0)
		die("ctl_new", err);
	const char *tf = NULL;
	if (tokens) {
		FILE *f = fopen(token_path, "w");
		if (!f || fwrite(tokens, 1, tokens_len, f) != tokens_len || fclose(f) != 0)
			die("cannot write the token file", strerror(errno));
		tf = token_path;
	}
	char addr[32];
	snprintf(addr, sizeof addr, "127.0.0.1:%d", admin_port);
	err[0] = '\0';
	admin_opts o;
	admin_opts_init(&o);
	o.addr = addr;
	o.token_file = tf;
	int rc = admin_start(loop, &o, d->c, d->db, &d->adm, err, sizeof err);
	if (rc < 0) {
		/* only the token file may be refused, and with a message */
		if (!tf || !err[0] || strchr(err, '\n'))
			die("admin_start failed", err);
		d->adm = NULL;
		return -1;
	}
	return 0;
}

static void daemon_stop(daemon_ *d)
{
	if (d->adm)
		admin_close(d->adm);
	ctl_close(d->c);
	/* every handle closes within a few turns; bounded all the same */
	for (int i = 0; i < 1000 && uv_run(loop, UV_RUN_NOWAIT); i++)
		;
	if (uv_loop_alive(loop))
		uv_run(loop, UV_RUN_DEFAULT);
	store_close(d->db);
}

/* ---- the client ---- */

static int client_connect(void)
{
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	struct sockaddr_in sa = { .sin_family = AF_INET, .sin_port = htons((uint16_t)admin_port) };
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (fd < 0 || (connect(fd, (struct sockaddr *)&sa, sizeof sa) != 0 && errno != EINPROGRESS))
		die("cannot connect to the admin API", strerror(errno));
	return fd;
}

/* Turns the loop once, waiting at most a few ms for the daemon (its loop's
 * backend fd) or for the client's socket <fd> to have something to do. */
static void spin(int fd)
{
	struct pollfd p[2] = { { .fd = uv_backend_fd(loop), .events = POLLIN },
	                       { .fd = fd, .events = POLLIN } };
	uv_run(loop, UV_RUN_NOWAIT);
	poll(p, 2, 5);
	uv_run(loop, UV_RUN_NOWAIT);
}

/* Closes the client's side with a reset, so that the many short
 * connections of a run leave no TIME_WAIT behind on the machine. */
static void client_close(int fd)
{
	struct linger lg = { .l_onoff = 1, .l_linger = 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
	close(fd);
}

/* Sends all of <b> on <fd>; returns -1 if the daemon closed first. */
static int send_all(int fd, const buf *b)
{
	size_t off = 0;
	for (int spins = 0; off < b->len; spins++) {
		if (spins > MAX_SPINS)
			die("the admin API does not read the request", NULL);
		ssize_t n = send(fd, b->p + off, b->len - off, MSG_NOSIGNAL);
		if (n > 0) {
			off += (size_t)n;
			continue;
		}
		if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != ENOTCONN)
			return -1;
		spin(fd);
	}
	return 0;
}

typedef struct response {
	buf raw;
	int status;
	int closed;       /* the daemon closed the connection */
	size_t head_len;
	size_t body_off, body_len;
	char ctype[64];
} response;

/* Reads one final response (1xx interim ones are skipped). Returns 0 with
 * <r> filled, or -1 when the daemon closed the connection without any. */
static int read_response(int fd, bool is_head, response *r)
{
	char tmp[65536];
	static http_response hr;
	size_t start = 0;
	for (int spins = 0;; spins++) {
		if (spins > MAX_SPINS)
			die("no response from the admin API (hang)", NULL);
		ssize_t n = recv(fd, tmp, sizeof tmp, MSG_DONTWAIT);
		if (n > 0) {
			buf_append(&r->raw, tmp, (size_t)n);
			if (r->raw.len > MAX_RESPONSE)
				die("response larger than 4 MiB", NULL);
		} else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK)) {
			r->closed = 1;
		}
		if (r->raw.len > start) {
			int rc = http_parse_response(r->raw.p + start, r->raw.len - start, is_head, &hr);
			if (rc < 0)
				die("malformed response", r->raw.p + start);
			if (rc > 0 && hr.status < 200) {
				start += (size_t)rc; /* interim: the final one follows */
				continue;
			}
			if (rc > 0) {
				size_t need = hr.body == HTTP_BODY_LENGTH ? (size_t)hr.content_length : 0;
				if (hr.body == HTTP_BODY_CHUNKED || hr.body == HTTP_BODY_UNTIL_CLOSE) {
					/* a stream (server-sent events): the head is enough */
					r->closed = 1;
					need = 0;
				}
				if (r->raw.len - start - (size_t)rc >= need) {
					r->status = hr.status;
					r->head_len = start + (size_t)rc;
					r->body_off = r->head_len;
					r->body_len = need;
					const http_header *ct = http_find_header(hr.headers, hr.n_headers,
					                                         "Content-Type");
					if (ct)
						snprintf(r->ctype, sizeof r->ctype, "%.*s", (int)ct->value_len,
						         ct->value);
					if (!hr.keep_alive)
						r->closed = 1;
					if (r->raw.len > r->body_off + r->body_len && !r->closed)
						die("bytes after the response's body (a HEAD answer with a body?)",
						    r->raw.p + r->body_off + r->body_len);
					return 0;
				}
			}
		}
		if (r->closed)
			return r->raw.len ? (die("connection closed inside a response", r->raw.p), -1) : -1;
		spin(fd);
	}
}

/* The checks every response must pass. */
static void check_response(const response *r, bool is_head)
{
	if (r->status < 200 || r->status > 599)
		die("status out of range", r->raw.p);
	if (r->status == 500)
		die("500 for a request the daemon should have judged", r->raw.p);
	if (is_head)
		return;
	if (strncmp(r->ctype, "application/json", 16) == 0 && r->body_len) {
		json_error_t jerr;
		json_t *j = json_loadb(r->raw.p + r->body_off, r->body_len, 0, &jerr);
		if (!j)
			die("a JSON response does not parse", jerr.text);
		if (r->status >= 400) {
			const char *e = json_string_value(json_object_get(j, "error"));
			if (!e || !*e || strpbrk(e, "\r\n"))
				die("an error answer without a one-line 'error'", r->raw.p);
		}
		json_decref(j);
	}
}

/* ---- one input ---- */

static const char *block_end(const char *p, const char *end)
{
	static const char sep[] = "\n%%\n";
	const char *q = memmem(p, (size_t)(end - p), sep, sizeof sep - 1);
	return q ? q : end;
}

static bool drop_header(const char *line, size_t len)
{
	static const char *const names[] = { "content-length:", "transfer-encoding:" };
	for (size_t i = 0; i < 2; i++) {
		size_t n = strlen(names[i]);
		if (len >= n && http_ieqn(line, n, names[i], n))
			return true;
	}
	return false;
}

/* Builds the HTTP request of block p[0..end). Sets *is_head. */
static void build_request(const char *p, const char *end, buf *out, bool *is_head)
{
	const char *nl = memchr(p, '\n', (size_t)(end - p));
	const char *l1e = nl ? nl : end;
	if (l1e == p)
		buf_puts(out, "GET /");
	else
		buf_append(out, p, (size_t)(l1e - p));
	*is_head = (size_t)(l1e - p) >= 5 && memcmp(p, "HEAD ", 5) == 0;
	buf_puts(out, " HTTP/1.1\r\n");
	p = nl ? nl + 1 : end;
	bool host = false;
	while (p < end) {
		nl = memchr(p, '\n', (size_t)(end - p));
		const char *le = nl ? nl : end;
		if (le == p) {          /* the blank line: the body follows */
			p = nl ? nl + 1 : end;
			break;
		}
		if (!drop_header(p, (size_t)(le - p))) {
			if ((size_t)(le - p) >= 5 && http_ieqn(p, 5, "host:", 5))
				host = true;
			buf_append(out, p, (size_t)(le - p));
			buf_puts(out, "\r\n");
		}
		p = nl ? nl + 1 : end;
	}
	if (!host)
		buf_printf(out, "Host: 127.0.0.1:%d\r\n", admin_port);
	buf_printf(out, "Content-Length: %zu\r\n\r\n", (size_t)(end - p));
	buf_append(out, p, (size_t)(end - p));
}

/* One request on the keep-alive connection *fd (opened when -1; closed
 * and set to -1 when the daemon said it closes). The daemon must answer
 * every complete request it reads. */
static void exchange(int *fd, const buf *req, bool is_head, response *r)
{
	if (*fd < 0)
		*fd = client_connect();
	if (send_all(*fd, req) < 0 || read_response(*fd, is_head, r) < 0)
		die("the admin API closed the connection without answering", req->p);
	check_response(r, is_head);
	if (r->closed) {
		client_close(*fd);
		*fd = -1;
	}
}

/* After the requests: what the API says about every canary must hang
 * together. */
static void check_state(int *fd)
{
	buf req = BUF_INIT;
	buf_printf(&req, "GET /api/v1/canaries HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", admin_port);
	response r = { BUF_INIT, 0, 0, 0, 0, 0, "" };
	exchange(fd, &req, false, &r);
	if (r.status != 200)
		die("GET /api/v1/canaries failed", r.raw.p);
	json_t *all = json_loadb(r.raw.p + r.body_off, r.body_len, 0, NULL);
	static const char *const phases[] = { "Initialized", "Progressing", "Paused", "Waiting",
	                                      "WaitingPromotion", "Promoting", "Succeeded",
	                                      "Failed" };
	size_t i;
	json_t *st;
	json_array_foreach(all, i, st) {
		json_int_t w = json_integer_value(json_object_get(st, "canaryWeight"));
		const char *ph = json_string_value(json_object_get(st, "phase"));
		bool known = false;
		for (size_t k = 0; ph && k < sizeof phases / sizeof phases[0]; k++)
			known |= strcmp(ph, phases[k]) == 0;
		if (w < 0 || w > 100 || !known)
			die("inconsistent status", r.raw.p);
	}
	json_decref(all);
	buf_release(&r.raw);
	buf_release(&req);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data, *end = p + size;
	const char *tokens = NULL;
	size_t tokens_len = 0;
	if (size >= 7 && memcmp(p, "TOKENS\n", 7) == 0) {
		const char *be = block_end(p + 7, end);
		tokens = p + 7;
		tokens_len = (size_t)(be - tokens);
		p = be < end ? be + 4 : end;
	}
	daemon_ d;
	if (daemon_start(&d, tokens, tokens_len) == 0) {
		int fd = -1;
		for (int n = 0; p < end && n < MAX_REQUESTS; n++) {
			const char *be = block_end(p, end);
			buf req = BUF_INIT;
			bool is_head;
			build_request(p, be, &req, &is_head);
			response r = { BUF_INIT, 0, 0, 0, 0, 0, "" };
			exchange(&fd, &req, is_head, &r);
			buf_release(&r.raw);
			buf_release(&req);
			p = be < end ? be + 4 : end;
		}
		check_state(&fd);
		if (fd >= 0)
			client_close(fd);
	}
	daemon_stop(&d);
	return 0;
}
