/* haproxy_rt.c - see haproxy_rt.h. One request is one connection: HAProxy's
 * non-interactive mode runs the line's commands and closes, so the end of
 * the answer is the end of the stream and no prompt has to be parsed. */
#include "haproxy_rt.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "util.h"

#define READ_CHUNK 65536

struct hart_req {
	uv_loop_t *loop;
	union {
		uv_handle_t h;
		uv_stream_t st;
		uv_pipe_t pipe;
		uv_tcp_t tcp;
	} s;
	bool s_open;                 /* s was initialised (needs a close) */
	uv_connect_t conn;
	uv_write_t wr;
	uv_timer_t timer;
	char *addr;
	char *cmds;                  /* with its '\n' */
	buf ans;
	char *rbuf;
	hart_done_fn done;           /* NULL once cancelled */
	void *arg;
	int closes;                  /* handles still open */
	bool ended;
	char err[320];               /* an error found before connecting */
};

/* ---- addresses ---- */

int hart_addr_check(const char *addr, char *err, size_t errlen)
{
	if (strncmp(addr, "unix:", 5) == 0) {
		const char *p = addr + 5;
		if (p[0] != '/') {
			snprintf(err, errlen, "runtime API '%s': a unix socket needs an absolute path "
			         "(unix:/run/haproxy/admin.sock)", addr);
			return -1;
		}
		if (strlen(p) >= sizeof(((struct sockaddr_un *)0)->sun_path)) {
			snprintf(err, errlen, "runtime API '%s': the path is longer than a unix socket "
			         "path may be (%zu bytes)", addr,
			         sizeof(((struct sockaddr_un *)0)->sun_path) - 1);
			return -1;
		}
		return 0;
	}
	char host[256];
	int port;
	struct sockaddr_in6 a6;
	struct sockaddr_in a4;
	if (util_parse_hostport(addr, host, sizeof host, &port) < 0 ||
	    (strcmp(host, "localhost") != 0 && uv_ip4_addr(host, port, &a4) != 0 &&
	     uv_ip6_addr(host, port, &a6) != 0)) {
		snprintf(err, errlen, "runtime API '%s': must be unix:/path/to/socket or an IP "
		         "address and port such as 127.0.0.1:9999", addr);
		return -1;
	}
	return 0;
}

/* ---- the client ---- */

static void req_closed(uv_handle_t *h)
{
	hart_req *q = h->data;
	if (--q->closes > 0)
		return;
	buf_release(&q->ans);
	free(q->rbuf);
	free(q->addr);
	free(q->cmds);
	free(q);
}

/* Ends <q> once: closes its handles, then reports (the memory stays until
 * the close callbacks, so <done> may do anything but touch <q>). */
static void finish(hart_req *q, int status, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void finish(hart_req *q, int status, const char *fmt, ...)
{
	if (q->ended)
		return;
	q->ended = true;
	char err[400] = "";
	if (fmt) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, sizeof err, fmt, ap);
		va_end(ap);
		util_ascii_line(err);
	}
	uv_timer_stop(&q->timer);
	uv_close((uv_handle_t *)&q->timer, req_closed);
	if (q->s_open)
		uv_close(&q->s.h, req_closed);
	hart_done_fn done = q->done;
	q->done = NULL;
	if (done)
		done(q->arg, status, q->ans.p ? q->ans.p : "", q->ans.len, status < 0 ? err : NULL);
}

static void on_timeout(uv_timer_t *t)
{
	hart_req *q = t->data;
	if (q->err[0])   /* the address was refused before anything started */
		finish(q, UV_EINVAL, "%s", q->err);
	else
		finish(q, UV_ETIMEDOUT, "haproxy runtime API '%s': no complete answer in time",
		       q->addr);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *b)
{
	hart_req *q = h->data;
	(void)hint;
	if (!q->rbuf)
		q->rbuf = xmalloc(READ_CHUNK);
	*b = uv_buf_init(q->rbuf, READ_CHUNK);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *b)
{
	hart_req *q = st->data;
	if (nread == UV_EOF) {
		finish(q, 0, NULL);
		return;
	}
	if (nread < 0) {
		finish(q, (int)nread, "haproxy runtime API '%s': reading the answer: %s", q->addr,
		       uv_strerror((int)nread));
		return;
	}
	if (q->ans.len + (size_t)nread > HART_MAX_ANSWER) {
		finish(q, UV_ENOBUFS, "haproxy runtime API '%s': answer longer than %u bytes",
		       q->addr, HART_MAX_ANSWER);
		return;
	}
	buf_append(&q->ans, b->base, (size_t)nread);
}

static void on_write(uv_write_t *w, int status)
{
	hart_req *q = w->data;
	if (status < 0 && status != UV_ECANCELED)
		finish(q, status, "haproxy runtime API '%s': sending the commands: %s", q->addr,
		       uv_strerror(status));
}

static void on_connect(uv_connect_t *c, int status)
{
	hart_req *q = c->data;
	if (status == UV_ECANCELED || q->ended)
		return;
	if (status < 0) {
		finish(q, status, "cannot connect to haproxy runtime API '%s': %s", q->addr,
		       uv_strerror(status));
		return;
	}
	uv_buf_t b = uv_buf_init(q->cmds, (unsigned)strlen(q->cmds));
	int rc = uv_write(&q->wr, &q->s.st, &b, 1, on_write);
	if (rc == 0)
		rc = uv_read_start(&q->s.st, on_alloc, on_read);
	if (rc < 0)
		finish(q, rc, "haproxy runtime API '%s': %s", q->addr, uv_strerror(rc));
}

/* Starts the connection; returns 0 or a libuv error with q->err set. */
static int start_connect(hart_req *q)
{
	if (hart_addr_check(q->addr, q->err, sizeof q->err) < 0)
		return UV_EINVAL;
	int rc;
	if (strncmp(q->addr, "unix:", 5) == 0) {
		uv_pipe_init(q->loop, &q->s.pipe, 0);
		q->s_open = true;
		q->closes++;
		q->s.h.data = q;
		uv_pipe_connect(&q->conn, &q->s.pipe, q->addr + 5, on_connect);
		return 0;
	}
	char host[256];
	int port;
	util_parse_hostport(q->addr, host, sizeof host, &port);
	struct sockaddr_storage ss;
	if (strcmp(host, "localhost") == 0)
		snprintf(host, sizeof host, "127.0.0.1");
	if (uv_ip4_addr(host, port, (struct sockaddr_in *)&ss) != 0)
		uv_ip6_addr(host, port, (struct sockaddr_in6 *)&ss);
	uv_tcp_init(q->loop, &q->s.tcp);
	q->s_open = true;
	q->closes++;
	q->s.h.data = q;
	rc = uv_tcp_connect(&q->conn, &q->s.tcp, (const struct sockaddr *)&ss, on_connect);
	if (rc < 0)
		snprintf(q->err, sizeof q->err, "cannot connect to haproxy runtime API '%s': %s",
		         q->addr, uv_strerror(rc));
	return rc;
}

hart_req *hart_send(uv_loop_t *loop, const char *addr, const char *cmds, uint64_t timeout_ms,
                    hart_done_fn done, void *arg)
{
	hart_req *q = xcalloc(1, sizeof *q);
	q->loop = loop;
	q->addr = xstrdup(addr);
	size_t n = strlen(cmds);
	q->cmds = xmalloc(n + 2);
	memcpy(q->cmds, cmds, n);
	memcpy(q->cmds + n, "\n", 2);
	q->done = done;
	q->arg = arg;
	q->conn.data = q->wr.data = q;
	uv_timer_init(loop, &q->timer);
	q->timer.data = q;
	q->closes = 1;
	if (start_connect(q) < 0) {
		if (!q->err[0])
			snprintf(q->err, sizeof q->err, "haproxy runtime API '%s': cannot connect", addr);
		/* reported from the loop, never from inside hart_send */
		uv_timer_start(&q->timer, on_timeout, 0, 0);
		return q;
	}
	uv_timer_start(&q->timer, on_timeout, timeout_ms, 0);
	return q;
}

void hart_cancel(hart_req *q)
{
	if (!q || q->ended)
		return;
	q->done = NULL;
	finish(q, UV_ECANCELED, NULL);
}

/* ---- readers ---- */

/* The next line of [*p, end): sets *line and *llen (without "\n" or a
 * trailing "\r"), advances *p; false at the end. */
static bool next_line(const char **p, const char *end, const char **line, size_t *llen)
{
	if (*p >= end)
		return false;
	const char *s = *p;
	const char *nl = memchr(s, '\n', (size_t)(end - s));
	const char *e = nl ? nl : end;
	*p = nl ? nl + 1 : end;
	*line = s;
	*llen = (size_t)(e - s);
	if (*llen && s[*llen - 1] == '\r')
		(*llen)--;
	return true;
}

static bool blank(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isspace((unsigned char)s[i]))
			return false;
	return true;
}

/* Copies a line of HAProxy's into <err> as one printable line. */
static void quote_line(char *err, size_t errlen, const char *s, size_t n)
{
	if (!errlen)
		return;
	if (n >= errlen)
		n = errlen - 1;
	memcpy(err, s, n);
	err[n] = '\0';
	/* a NUL inside would cut the line short: show it as the rest are */
	for (size_t i = 0; i < n; i++)
		if (err[i] == '\0')
			err[i] = '?';
	util_ascii_line(err);
}

int hart_answer_ok(const char *ans, size_t len, char *err, size_t errlen)
{
	static const char *const ok[] = { "New server registered.", "Server deleted." };
	const char *p = ans, *end = ans + len, *l;
	size_t n;
	while (next_line(&p, end, &l, &n)) {
		if (blank(l, n))
			continue;
		bool good = false;
		for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
			if (n == strlen(ok[i]) && memcmp(l, ok[i], n) == 0)
				good = true;
		if (!good) {
			quote_line(err, errlen, l, n);
			return -1;
		}
	}
	return 0;
}

/* A whole decimal number in [s, s+n) into *v, at most <max>, written as
 * HAProxy writes numbers: digits only, no leading zero. */
static bool read_u64(const char *s, size_t n, uint64_t max, uint64_t *v)
{
	if (n == 0 || n > 20 || (n > 1 && s[0] == '0'))
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		unsigned d = (unsigned)(s[i] - '0');
		if (d > max || x > (max - d) / 10)
			return false;
		x = x * 10 + d;
	}
	*v = x;
	return true;
}

static void first_line_err(const char *ans, size_t len, const char *what, char *err,
                           size_t errlen)
{
	const char *p = ans, *end = ans + len, *l;
	size_t n;
	while (next_line(&p, end, &l, &n))
		if (!blank(l, n)) {
			char line[200];
			quote_line(line, sizeof line, l, n);
			snprintf(err, errlen, "%s: haproxy answered '%s'", what, line);
			return;
		}
	snprintf(err, errlen, "%s: haproxy answered nothing", what);
}

int hart_parse_info(const char *ans, size_t len, hart_info *out, char *err, size_t errlen)
{
	const char *p = ans, *end = ans + len, *l;
	size_t n;
	bool have_pid = false, have_up = false;
	while (next_line(&p, end, &l, &n)) {
		uint64_t v;
		if (n > 5 && memcmp(l, "Pid: ", 5) == 0 && read_u64(l + 5, n - 5, INT32_MAX, &v)) {
			out->pid = (long)v;
			have_pid = true;
		} else if (n > 12 && memcmp(l, "Uptime_sec: ", 12) == 0 &&
		           read_u64(l + 12, n - 12, UINT64_MAX, &v)) {
			out->uptime_sec = v;
			have_up = true;
		}
	}
	if (have_pid && have_up)
		return 0;
	first_line_err(ans, len, "show info", err, errlen);
	return -1;
}

/* Splits [s, s+n) at each <sep> into at most <max> fields (pointers into
 * <s> and lengths); returns how many there were, or max + 1 when more. */
static size_t split(const char *s, size_t n, char sep, const char **f, size_t *fl, size_t max)
{
	size_t k = 0;
	const char *e = s + n;
	for (;;) {
		const char *c = memchr(s, sep, (size_t)(e - s));
		const char *fe = c ? c : e;
		if (k == max)
			return max + 1;
		f[k] = s;
		fl[k] = (size_t)(fe - s);
		k++;
		if (!c)
			return k;
		s = c + 1;
	}
}

static int column(const char **f, const size_t *fl, size_t nf, const char *name)
{
	size_t n = strlen(name);
	for (size_t i = 0; i < nf; i++)
		if (fl[i] == n && memcmp(f[i], name, n) == 0)
			return (int)i;
	return -1;
}

static bool copy_field(char *dst, size_t dstlen, const char *s, size_t n)
{
	if (n == 0 || n >= dstlen || memchr(s, '\0', n))
		return false;
	memcpy(dst, s, n);
	dst[n] = '\0';
	return true;
}

/* A server name or address as HAProxy writes them: letters, digits and
 * "-_.:" (IPv6 addresses, and a zone after '%'). */
static bool copy_name(char *dst, size_t dstlen, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)s[i]) && !strchr("-_.:%", s[i]))
			return false;
	return copy_field(dst, dstlen, s, n);
}

#define MAX_COLS 256

enum { SV_BE, SV_NAME, SV_ADDR, SV_OP, SV_ADMIN, SV_UWEIGHT, SV_PORT, SV_N };

int hart_parse_servers(const char *ans, size_t len, const char *backend, hart_server **out,
                       size_t *n, char *err, size_t errlen)
{
	static const char *const names[SV_N] = { "be_name", "srv_name", "srv_addr",
		"srv_op_state", "srv_admin_state", "srv_uweight", "srv_port" };
	*out = NULL;
	*n = 0;
	const char *p = ans, *end = ans + len, *l;
	size_t ll;
	/* the version line: HAProxy's error messages stand there instead */
	if (!next_line(&p, end, &l, &ll) || ll != 1 || l[0] != '1') {
		first_line_err(ans, len, "show servers state", err, errlen);
		return -1;
	}
	const char *f[MAX_COLS + 1];
	size_t fl[MAX_COLS + 1];
	if (!next_line(&p, end, &l, &ll) || ll < 2 || l[0] != '#' || l[1] != ' ') {
		snprintf(err, errlen, "show servers state: no header line after the version");
		return -1;
	}
	size_t nf = split(l + 2, ll - 2, ' ', f, fl, MAX_COLS);
	int col[SV_N];
	int maxcol = 0;
	for (int i = 0; i < SV_N; i++) {
		if (nf > MAX_COLS || (col[i] = column(f, fl, nf, names[i])) < 0) {
			snprintf(err, errlen, "show servers state: no column '%s' in the header",
			         names[i]);
			return -1;
		}
		if (col[i] > maxcol)
			maxcol = col[i];
	}
	size_t cap = 0;
	hart_server *v = NULL;
	size_t k = 0;
	int row = 0;
	while (next_line(&p, end, &l, &ll)) {
		row++;
		if (blank(l, ll))
			continue;
		size_t nr = split(l, ll, ' ', f, fl, MAX_COLS);
		if (nr > MAX_COLS || (int)nr <= maxcol)
			goto bad;
		if (fl[col[SV_BE]] != strlen(backend) ||
		    memcmp(f[col[SV_BE]], backend, fl[col[SV_BE]]) != 0)
			continue;
		if (k == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof *v);
		}
		hart_server *s = &v[k];
		memset(s, 0, sizeof *s);
		uint64_t x;
		if (!copy_name(s->name, sizeof s->name, f[col[SV_NAME]], fl[col[SV_NAME]]) ||
		    !copy_name(s->addr, sizeof s->addr, f[col[SV_ADDR]], fl[col[SV_ADDR]]))
			goto bad;
		if (!read_u64(f[col[SV_PORT]], fl[col[SV_PORT]], 65535, &x))
			goto bad;
		s->port = (int)x;
		if (!read_u64(f[col[SV_UWEIGHT]], fl[col[SV_UWEIGHT]], 256, &x))
			goto bad;
		s->uweight = (int)x;
		if (!read_u64(f[col[SV_ADMIN]], fl[col[SV_ADMIN]], 0xffff, &x))
			goto bad;
		s->admin_state = (int)x;
		if (!read_u64(f[col[SV_OP]], fl[col[SV_OP]], 3, &x))
			goto bad;
		s->op_state = (int)x;
		k++;
	}
	*out = v;
	*n = k;
	return 0;
bad:
	free(v);
	snprintf(err, errlen, "show servers state: server row %d is not what HAProxy 2.6 writes",
	         row);
	return -1;
}

enum { ST_PX, ST_SV, ST_SCUR, ST_1, ST_2, ST_3, ST_4, ST_5, ST_OTHER, ST_RTIME, ST_TTIME, ST_N };

int hart_parse_stat(const char *ans, size_t len, const char *backend, hart_stat **out,
                    size_t *n, char *err, size_t errlen)
{
	static const char *const names[ST_N] = { "pxname", "svname", "scur", "hrsp_1xx",
		"hrsp_2xx", "hrsp_3xx", "hrsp_4xx", "hrsp_5xx", "hrsp_other", "rtime", "ttime" };
	*out = NULL;
	*n = 0;
	const char *p = ans, *end = ans + len, *l;
	size_t ll;
	if (!next_line(&p, end, &l, &ll) || ll < 2 || l[0] != '#' || l[1] != ' ') {
		first_line_err(ans, len, "show stat", err, errlen);
		return -1;
	}
	const char *f[MAX_COLS + 1];
	size_t fl[MAX_COLS + 1];
	size_t nf = split(l + 2, ll - 2, ',', f, fl, MAX_COLS);
	int col[ST_N];
	int maxcol = 0;
	for (int i = 0; i < ST_N; i++) {
		if (nf > MAX_COLS || (col[i] = column(f, fl, nf, names[i])) < 0) {
			snprintf(err, errlen, "show stat: no column '%s' in the header", names[i]);
			return -1;
		}
		if (col[i] > maxcol)
			maxcol = col[i];
	}
	size_t cap = 0, k = 0;
	hart_stat *v = NULL;
	int row = 0;
	while (next_line(&p, end, &l, &ll)) {
		row++;
		if (blank(l, ll))
			continue;
		size_t nr = split(l, ll, ',', f, fl, MAX_COLS);
		if (nr > MAX_COLS || (int)nr <= maxcol)
			goto bad;
		if (fl[col[ST_PX]] != strlen(backend) ||
		    memcmp(f[col[ST_PX]], backend, fl[col[ST_PX]]) != 0)
			continue;
		const char *sv = f[col[ST_SV]];
		size_t svl = fl[col[ST_SV]];
		if ((svl == 8 && memcmp(sv, "FRONTEND", 8) == 0) ||
		    (svl == 7 && memcmp(sv, "BACKEND", 7) == 0))
			continue;
		if (k == cap) {
			cap = cap ? cap * 2 : 16;
			v = xrealloc(v, cap * sizeof *v);
		}
		hart_stat *s = &v[k];
		memset(s, 0, sizeof *s);
		if (!copy_name(s->name, sizeof s->name, sv, svl))
			goto bad;
		/* an empty counter is one HAProxy does not keep (a TCP backend) */
		static const int num[] = { ST_SCUR, ST_OTHER, ST_1, ST_2, ST_3, ST_4, ST_5,
		                           ST_RTIME, ST_TTIME };
		uint64_t *dst[] = { &s->scur, &s->hrsp[0], &s->hrsp[1], &s->hrsp[2], &s->hrsp[3],
		                    &s->hrsp[4], &s->hrsp[5], &s->rtime_ms, &s->ttime_ms };
		for (size_t i = 0; i < sizeof num / sizeof num[0]; i++) {
			int c = col[num[i]];
			if (fl[c] == 0)
				*dst[i] = 0;
			else if (!read_u64(f[c], fl[c], UINT64_MAX, dst[i]))
				goto bad;
		}
		k++;
	}
	*out = v;
	*n = k;
	return 0;
bad:
	free(v);
	snprintf(err, errlen, "show stat: row %d of backend '%s' is not what HAProxy 2.6 writes",
	         row, backend);
	return -1;
}

int hart_stat_algo(const char *ans, size_t len, const char *backend, char *algo,
                   size_t algolen)
{
	const char *p = ans, *end = ans + len, *l;
	size_t ll;
	if (!next_line(&p, end, &l, &ll) || ll < 2 || l[0] != '#' || l[1] != ' ')
		return -1;
	const char *f[MAX_COLS + 1];
	size_t fl[MAX_COLS + 1];
	size_t nf = split(l + 2, ll - 2, ',', f, fl, MAX_COLS);
	int px, sv, al;
	if (nf > MAX_COLS || (px = column(f, fl, nf, "pxname")) < 0 ||
	    (sv = column(f, fl, nf, "svname")) < 0 || (al = column(f, fl, nf, "algo")) < 0)
		return -1;
	while (next_line(&p, end, &l, &ll)) {
		size_t nr = split(l, ll, ',', f, fl, MAX_COLS);
		if (nr > MAX_COLS || (int)nr <= px || (int)nr <= sv || (int)nr <= al)
			continue;
		if (fl[px] == strlen(backend) && !memcmp(f[px], backend, fl[px]) && fl[sv] == 7 &&
		    !memcmp(f[sv], "BACKEND", 7))
			return copy_name(algo, algolen, f[al], fl[al]) ? 0 : -1;
	}
	return -1;
}

/* A signed decimal (a leading '+' allowed: HAProxy marks times logged
 * before the end with it) in [s, s+n). */
static bool read_i64(const char *s, size_t n, int64_t *v)
{
	uint64_t x;
	bool neg = false;
	if (n && (s[0] == '+' || s[0] == '-')) {
		neg = s[0] == '-';
		s++;
		n--;
	}
	if (!read_u64(s, n, INT64_MAX, &x) || (neg && x == 0))
		return false;
	*v = neg ? -(int64_t)x : (int64_t)x;
	return true;
}

int hart_parse_log(const char *msg, size_t len, hart_log *out)
{
	memset(out, 0, sizeof *out);
	/* the accept date: "[01/Dec/2026:12:00:00.123] " */
	const char *end = msg + len, *p = msg;
	for (;;) {
		const char *b = memchr(p, '[', (size_t)(end - p));
		if (!b || end - b < 4)
			return -1;
		if (b > msg && b[-1] == ' ' && isdigit((unsigned char)b[1]) &&
		    isdigit((unsigned char)b[2]) && b[3] == '/') {
			const char *c = memchr(b, ']', (size_t)(end - b));
			if (!c || c + 1 >= end || c[1] != ' ')
				return -1;
			p = c + 2;
			break;
		}
		p = b + 1;
	}
	/* frontend, backend/server, TR/Tw/Tc/Tr/Ta, status */
	const char *f[5];
	size_t fl[5], k = 0;
	while (k < 4) {
		while (p < end && *p == ' ')
			p++;
		const char *s = p;
		while (p < end && *p != ' ')
			p++;
		if (p == s)
			return -1;
		f[k] = s;
		fl[k] = (size_t)(p - s);
		k++;
	}
	const char *slash = memchr(f[1], '/', fl[1]);
	if (!slash || !copy_field(out->backend, sizeof out->backend, f[1], (size_t)(slash - f[1])) ||
	    !copy_field(out->server, sizeof out->server, slash + 1,
	                fl[1] - (size_t)(slash - f[1]) - 1))
		return -1;
	const char *t[6];
	size_t tl[6];
	if (split(f[2], fl[2], '/', t, tl, 5) != 5)
		return -1;
	int64_t ta, st;
	if (!read_i64(t[4], tl[4], &ta) || ta < -1)
		return -1;
	for (int i = 0; i < 4; i++) {
		int64_t x;
		if (!read_i64(t[i], tl[i], &x) || x < -1)
			return -1;
	}
	if (!read_i64(f[3], fl[3], &st) || (st != -1 && (st < 100 || st > 999)))
		return -1;
	out->total_ms = ta;
	out->status = (int)st;
	return 0;
}
