/* http.c - HTTP/1.1 message-head parsing and body framing (see http.h).
 *
 * The head parsers work line by line on the caller's buffer and re-parse from
 * the start on each call: heads are bounded by HTTP_MAX_HEAD, so the cost is
 * small, and a stateless parser cannot get out of step with the buffer.
 * Anything RFC 9112 lets a recipient refuse is refused: bare LF, obs-fold,
 * whitespace before a colon, control characters, ambiguous framing. */
#include "http.h"

#include <string.h>

/* tchar of RFC 9110 5.6.2: "!#$%&'*+-.^_`|~" plus DIGIT and ALPHA; a
 * table, since every byte of every header name is checked. */
static const bool tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1, ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1, ['^'] = 1, ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1,
	['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

static inline bool is_tchar(unsigned char ch) { return tchar[ch]; }

static bool is_digit(unsigned char ch) { return ch >= '0' && ch <= '9'; }
static bool is_blank(unsigned char ch) { return ch == ' ' || ch == '\t'; }

/* Finds the end of the line starting at <p> (within <end>): returns the
 * position of its CR (the line is p..cr, CRLF follows), NULL when the line
 * is not complete yet, and sets *bad for a bare LF or a CR not followed by
 * LF. */
static const char *line_end(const char *p, const char *end, bool *bad)
{
	for (const char *q = p; q < end; q++) {
		if (*q == '\n') {
			*bad = true;
			return NULL;
		}
		if (*q == '\r') {
			if (q + 1 == end)
				return NULL;
			if (q[1] != '\n') {
				*bad = true;
				return NULL;
			}
			return q;
		}
	}
	return NULL;
}

bool http_list_next(const char **pos, const char *end, const char **e,
                    size_t *elen)
{
	const char *p = *pos;
	while (p < end) {
		while (p < end && (is_blank((unsigned char)*p) || *p == ','))
			p++;
		if (p >= end)
			break;
		const char *s = p;
		while (p < end && *p != ',')
			p++;
		const char *t = p;
		while (t > s && is_blank((unsigned char)t[-1]))
			t--;
		*pos = p;
		*e = s;
		*elen = (size_t)(t - s);
		return true;
	}
	*pos = end;
	return false;
}

/* Parses the header lines starting at <p>. Fills hs/n and returns the
 * position after the blank line, or NULL with *rc set (INCOMPLETE or an
 * error). */
static const char *parse_headers(const char *p, const char *end,
                                 http_header *hs, size_t *n, int *rc)
{
	*n = 0;
	for (;;) {
		bool bad = false;
		/* memchr finds the LF in a few wide steps; a CR anywhere else
		 * in the line is refused below (not a tchar in the name, a
		 * control character in the value). line_end says why an
		 * incomplete line is incomplete or bad. */
		const char *lf = memchr(p, '\n', (size_t)(end - p));
		const char *cr = NULL;
		if (lf && lf > p && lf[-1] == '\r')
			cr = lf - 1;
		else if (lf)
			bad = true;   /* a bare LF */
		else
			cr = line_end(p, end, &bad);
		if (!cr) {
			/* an incomplete line may already show it is bad */
			*rc = bad ? HTTP_E_BAD : HTTP_INCOMPLETE;
			if (!bad && p < end && is_blank((unsigned char)*p))
				*rc = HTTP_E_BAD;   /* obs-fold */
			return NULL;
		}
		if (cr == p)
			return cr + 2;   /* the blank line ending the head */
		if (is_blank((unsigned char)*p)) {
			*rc = HTTP_E_BAD;   /* obs-fold or whitespace before a name */
			return NULL;
		}
		const char *q = p;
		while (q < cr && is_tchar((unsigned char)*q))
			q++;
		if (q == p || q == cr || *q != ':') {
			*rc = HTTP_E_BAD;   /* empty name, no colon, space before colon */
			return NULL;
		}
		if (*n == HTTP_MAX_HEADERS) {
			*rc = HTTP_E_TOO_LARGE;
			return NULL;
		}
		http_header *h = &hs[(*n)++];
		h->name = p;
		h->name_len = (size_t)(q - p);
		const char *v = q + 1;
		for (const char *s = v; s < cr; s++) {
			unsigned char ch = (unsigned char)*s;
			if ((ch < 0x20 && ch != '\t') || ch == 0x7f) {
				*rc = HTTP_E_BAD;
				return NULL;
			}
		}
		while (v < cr && is_blank((unsigned char)*v))
			v++;
		const char *ve = cr;
		while (ve > v && is_blank((unsigned char)ve[-1]))
			ve--;
		h->value = v;
		h->value_len = (size_t)(ve - v);
		p = cr + 2;
	}
}

/* Framing facts shared by requests and responses. */
typedef struct framing {
	bool has_cl, has_te, te_chunked, conn_close, conn_keep_alive, conn_upgrade;
	bool te_unknown;   /* a transfer coding not in known_coding() */
	bool conn_names;   /* Connection lists more than keep-alive/upgrade */
	bool cl_many;      /* Content-Length given more than once (same value) */
	uint64_t cl;
	size_t n_host;     /* Host field lines */
	const http_header *host;
} framing;

/* The largest Content-Length taken: INT64_MAX, so that a next hop that
 * reads it into a signed 64-bit number (an off_t) sees the same length. */
#define HTTP_MAX_CL ((uint64_t)INT64_MAX)

/* Whether the transfer coding c[0..n) is one RFC 9112 7 registers (with
 * the x- aliases of 7.2), other than chunked. Not "identity": RFC 7230
 * removed it, and next hops read it their own ways (as no coding at all,
 * or the list by its first member), so a body we frame as chunked is not
 * always one to them. */
static bool known_coding(const char *c, size_t n)
{
	return http_ieq(c, n, "gzip") || http_ieq(c, n, "deflate") ||
	       http_ieq(c, n, "compress") || http_ieq(c, n, "x-gzip") ||
	       http_ieq(c, n, "x-compress");
}

/* Reads the Content-Length value [p, end): one length or a list of them,
 * "1*DIGIT *(OWS "," OWS 1*DIGIT)" (RFC 9110 8.6 lets a recipient take a
 * list of equal lengths: two fields folded into one); an empty member is
 * refused, since next hops disagree on it (one skips it, one takes the
 * field as invalid, one as 0). Returns 0 or an HTTP_E_* code. */
static int read_content_length(const char *p, const char *end, framing *f)
{
	for (;;) {
		while (p < end && is_blank((unsigned char)*p))
			p++;
		const char *d = p;
		uint64_t v = 0;
		for (; p < end && is_digit((unsigned char)*p); p++) {
			unsigned ch = (unsigned char)*p - '0';
			if (v > (HTTP_MAX_CL - ch) / 10)
				return HTTP_E_BAD;
			v = v * 10 + ch;
		}
		if (p == d)
			return HTTP_E_BAD;   /* empty, or not a digit */
		if (f->has_cl && v != f->cl)
			return HTTP_E_SMUGGLE;
		f->cl_many = f->has_cl;
		f->has_cl = true;
		f->cl = v;
		while (p < end && is_blank((unsigned char)*p))
			p++;
		if (p == end)
			return 0;
		if (*p++ != ',')
			return HTTP_E_BAD;
	}
}

/* Reads Content-Length, Transfer-Encoding, Connection and Host. Returns 0
 * or an HTTP_E_* code. */
static int read_framing(const http_header *hs, size_t n, framing *f)
{
	memset(f, 0, sizeof *f);
	size_t n_chunked = 0;
	for (size_t i = 0; i < n; i++) {
		const http_header *h = &hs[i];
		const char *pos = h->value, *end = h->value + h->value_len, *e;
		size_t elen;
		if (http_ieq(h->name, h->name_len, "content-length")) {
			int rc = read_content_length(pos, end, f);
			if (rc < 0)
				return rc;
		} else if (http_ieq(h->name, h->name_len, "transfer-encoding")) {
			bool any = false;
			while (http_list_next(&pos, end, &e, &elen)) {
				any = true;
				/* a coding may carry parameters: "gzip;q=1" */
				size_t tl = 0;
				while (tl < elen && e[tl] != ';' &&
				       !is_blank((unsigned char)e[tl]))
					tl++;
				f->te_chunked = http_ieq(e, tl, "chunked") && tl == elen;
				if (f->te_chunked)
					n_chunked++;
				else if (!known_coding(e, tl))
					f->te_unknown = true;
			}
			if (!any)
				return HTTP_E_BAD;
			f->has_te = true;
		} else if (http_ieq(h->name, h->name_len, "connection")) {
			while (http_list_next(&pos, end, &e, &elen)) {
				if (http_ieq(e, elen, "keep-alive")) {
					f->conn_keep_alive = true;
				} else if (http_ieq(e, elen, "upgrade")) {
					f->conn_upgrade = true;
				} else {
					f->conn_names = true;   /* "close" names a field too */
					if (http_ieq(e, elen, "close"))
						f->conn_close = true;
				}
			}
		} else if (http_ieq(h->name, h->name_len, "host")) {
			f->n_host++;
			f->host = h;
		}
	}
	/* chunked applied twice, or not last, is ambiguous framing */
	if (f->has_te && (n_chunked > 1 || (n_chunked == 1 && !f->te_chunked)))
		return HTTP_E_SMUGGLE;
	return 0;
}

static int hexval(unsigned char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

/* The characters of a reg-name (RFC 3986 3.2.2): unreserved and
 * sub-delims, but for the comma (see valid_host); '%' is checked apart. */
static const bool regname_char[256] = {
	['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
	['-'] = 1, ['.'] = 1, ['_'] = 1, ['~'] = 1,
	['!'] = 1, ['$'] = 1, ['&'] = 1, ['\''] = 1, ['('] = 1, [')'] = 1,
	['*'] = 1, ['+'] = 1, [';'] = 1, ['='] = 1,
};

/* Whether p[0..n) is reg-name characters and pct-encodings; with <colon>,
 * ':' too (in an IPvFuture). */
static bool regname_chars(const char *p, size_t n, bool colon)
{
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)p[i];
		if (ch == '%') {
			if (n - i < 3 || hexval((unsigned char)p[i + 1]) < 0 ||
			    hexval((unsigned char)p[i + 2]) < 0)
				return false;
			i += 2;
		} else if (!regname_char[ch] && !(colon && ch == ':')) {
			return false;
		}
	}
	return true;
}

/* Whether v[0..n) is a valid Host value, uri-host [":" port] (RFC 9110
 * 7.2, RFC 3986 3.2.2), where uri-host is an IP-literal in brackets, or a
 * reg-name (an IPv4 address is one too). Empty is valid: RFC 9110 7.2 asks
 * for an empty Host when the target has no authority. Refused although
 * RFC 3986 allows it in a reg-name: the comma, since Host is a singleton
 * and "a, b" or "a,b" is what two Host lines folded into one look like,
 * which the next hop may split or not. Inside the brackets, an IPv6
 * address is checked for its characters (HEXDIG, ':', '.'), not its
 * shape; an IPvFuture for its syntax. */
static bool valid_host(const char *v, size_t n)
{
	size_t i = 0;
	if (n > 0 && v[0] == '[') {
		const char *close = memchr(v, ']', n);
		if (!close)
			return false;
		const char *a = v + 1;
		size_t alen = (size_t)(close - a);
		if (alen > 0 && (a[0] == 'v' || a[0] == 'V')) {
			/* IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ) */
			size_t k = 1;
			while (k < alen && hexval((unsigned char)a[k]) >= 0)
				k++;
			if (k == 1 || k >= alen || a[k] != '.' || k + 1 == alen ||
			    !regname_chars(a + k + 1, alen - k - 1, true))
				return false;
			for (size_t j = k + 1; j < alen; j++)
				if (a[j] == '%')
					return false;   /* not in IPvFuture */
		} else {
			bool colon = false;
			for (size_t k = 0; k < alen; k++) {
				unsigned char ch = (unsigned char)a[k];
				if (ch == ':')
					colon = true;
				else if (ch != '.' && hexval(ch) < 0)
					return false;
			}
			if (!colon)
				return false;
		}
		i = (size_t)(close - v) + 1;
	} else {
		while (i < n && v[i] != ':')
			i++;
		if (!regname_chars(v, i, false))
			return false;
	}
	if (i == n)
		return true;
	if (v[i] != ':')
		return false;
	for (i++; i < n; i++)   /* port = *DIGIT */
		if (!is_digit((unsigned char)v[i]))
			return false;
	return true;
}

/* Parses "HTTP/d.d" at p[0..8). Returns the minor version (0 or 1),
 * HTTP_E_VERSION for another well-formed version, HTTP_E_BAD otherwise. */
static int parse_version(const char *p)
{
	if (memcmp(p, "HTTP/", 5) != 0 || !is_digit((unsigned char)p[5]) ||
	    p[6] != '.' || !is_digit((unsigned char)p[7]))
		return HTTP_E_BAD;
	if (p[5] != '1' || (p[7] != '0' && p[7] != '1'))
		return HTTP_E_VERSION;
	return p[7] - '0';
}

/* For a version of another length: HTTP_E_VERSION when it is still
 * "HTTP/" 1*DIGIT "." 1*DIGIT ("HTTP/1.10"), HTTP_E_BAD otherwise. */
static int odd_version(const char *p, const char *end)
{
	if (end - p < 8 || memcmp(p, "HTTP/", 5) != 0)
		return HTTP_E_BAD;
	p += 5;
	const char *d = p;
	while (p < end && is_digit((unsigned char)*p))
		p++;
	if (p == d || p == end || *p != '.')
		return HTTP_E_BAD;
	d = ++p;
	while (p < end && is_digit((unsigned char)*p))
		p++;
	return (p == d || p != end) ? HTTP_E_BAD : HTTP_E_VERSION;
}

/* Reads the form of a request-target that is not plainly origin-form
 * (it does not start with '/', or the method is CONNECT): RFC 9112 3.2.
 * Another form where the method does not take it is a 400: a next hop
 * could route "x:80" or "*" as a path, or as a host, where we do not. Of
 * absolute-forms only http and https are taken (a reverse proxy serves
 * nothing else), their authority without userinfo (RFC 9110 4.2.4: an
 * error) and not empty (4.2.1). Returns 0 or HTTP_E_BAD. */
static int read_target(http_request *req)
{
	const char *t = req->target;
	size_t n = req->target_len;
	if (req->method_len == 7 && memcmp(req->method, "CONNECT", 7) == 0) {
		/* authority-form = uri-host ":" port; reg-name has no ':' */
		const char *c = t[0] == '[' ? memchr(t, ']', n) : t;
		c = c ? memchr(c, ':', n - (size_t)(c - t)) : NULL;
		if (!c || c + 1 == t + n || !valid_host(t, n))
			return HTTP_E_BAD;
		req->form = HTTP_FORM_AUTHORITY;
		return 0;
	}
	if (n == 1 && t[0] == '*') {
		if (req->method_len != 7 || memcmp(req->method, "OPTIONS", 7) != 0)
			return HTTP_E_BAD;
		req->form = HTTP_FORM_ASTERISK;
		return 0;
	}
	if (t[0] == '/')
		return 0;
	size_t s;
	if (n > 7 && http_ieq(t, 7, "http://"))
		s = 7;
	else if (n > 8 && http_ieq(t, 8, "https://"))
		s = 8;
	else
		return HTTP_E_BAD;
	const char *a = t + s, *end = t + n, *q = a;
	while (q < end && *q != '/' && *q != '?' && *q != '#')
		q++;
	if (q == a || memchr(a, '@', (size_t)(q - a)) ||
	    !valid_host(a, (size_t)(q - a)))
		return HTTP_E_BAD;
	req->form = HTTP_FORM_ABSOLUTE;
	req->authority = a;
	req->authority_len = (size_t)(q - a);
	req->path = q;
	req->path_len = (size_t)(end - q);
	return 0;
}

bool http_upgrade_is_h2(const char *e, size_t elen)
{
	const char *slash = memchr(e, '/', elen);
	size_t n = slash ? (size_t)(slash - e) : elen;
	return http_ieq(e, n, "h2c") || http_ieq(e, n, "h2");
}

/* Whether the Upgrade fields of <req> offer a protocol other than HTTP/2;
 * sets req->upgrade_h2 when they offer HTTP/2. Run only for a request
 * whose Connection has "upgrade". */
static bool upgrade_offered(http_request *req)
{
	bool other = false;
	for (size_t i = 0; i < req->n_headers; i++) {
		const http_header *h = &req->headers[i];
		if (!http_ieq(h->name, h->name_len, "upgrade"))
			continue;
		const char *pos = h->value, *e;
		size_t elen;
		while (http_list_next(&pos, h->value + h->value_len, &e, &elen)) {
			if (http_upgrade_is_h2(e, elen))
				req->upgrade_h2 = true;
			else
				other = true;
		}
	}
	return other;
}

/* Common tail: a head that is not complete yet is an error once it cannot
 * fit. */
static int incomplete(size_t len)
{
	return len >= HTTP_MAX_HEAD ? HTTP_E_TOO_LARGE : HTTP_INCOMPLETE;
}

int http_parse_request(const char *buf, size_t len, http_request *req)
{
	memset(req, 0, offsetof(http_request, headers));
	req->n_headers = 0;
	req->body = HTTP_BODY_NONE;
	req->content_length = 0;
	req->keep_alive = req->upgrade = req->expect_continue = req->is_head = false;
	req->cl_rewrite = false;
	req->head_len = 0;

	size_t lim = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
	const char *p = buf, *end = buf + lim;
	/* RFC 9112 2.2: ignore empty lines before the request line (some
	 * clients send an extra CRLF after a body) */
	for (int i = 0; i < 4 && end - p >= 2 && p[0] == '\r' && p[1] == '\n'; i++)
		p += 2;

	bool bad = false;
	const char *cr = line_end(p, end, &bad);
	if (!cr) {
		if (bad)
			return HTTP_E_BAD;
		/* refuse early what cannot become a request line */
		for (const char *q = p; q < end; q++) {
			unsigned char ch = (unsigned char)*q;
			if (ch != ' ' && ch != '\r' && (ch < 0x21 || ch == 0x7f))
				return HTTP_E_BAD;
		}
		return incomplete(len);
	}
	const char *q = p;
	while (q < cr && is_tchar((unsigned char)*q))
		q++;
	if (q == p || q == cr || *q != ' ')
		return HTTP_E_BAD;
	req->method = p;
	req->method_len = (size_t)(q - p);
	const char *t = ++q;
	while (q < cr && (unsigned char)*q > 0x20 && (unsigned char)*q < 0x7f)
		q++;
	if (q == t || q == cr || *q != ' ')
		return HTTP_E_BAD;
	req->target = t;
	req->target_len = (size_t)(q - t);
	q++;
	if (cr - q != 8)
		return odd_version(q, cr);
	int minor = parse_version(q);
	if (minor < 0)
		return minor;
	req->minor = minor;
	/* origin-form is the common case: one byte and a length tell it */
	if (t[0] != '/' || req->method_len == 7) {
		int rc = read_target(req);
		if (rc < 0)
			return rc;
	}

	int rc = 0;
	const char *after = parse_headers(cr + 2, end, req->headers,
	                                  &req->n_headers, &rc);
	if (!after)
		return rc == HTTP_INCOMPLETE ? incomplete(len) : rc;

	framing f;
	rc = read_framing(req->headers, req->n_headers, &f);
	if (rc < 0)
		return rc;
	if (f.has_te && (f.has_cl || !f.te_chunked || minor == 0))
		return HTTP_E_SMUGGLE;
	if (f.te_unknown)
		return HTTP_E_CODING;
	/* RFC 9112 3.2: a 400 for an HTTP/1.1 request without Host, for more
	 * than one Host (even equal ones) and for an invalid one: a hop in
	 * front and the upstream could each take another Host from it (for
	 * virtual hosts, caches, access rules) */
	if (f.n_host > 1 || (f.n_host == 0 && minor == 1) ||
	    (f.host && !valid_host(f.host->value, f.host->value_len)))
		return HTTP_E_BAD;
	if (f.has_te) {
		req->body = HTTP_BODY_CHUNKED;
	} else if (f.has_cl && f.cl > 0) {
		req->body = HTTP_BODY_LENGTH;
		req->content_length = f.cl;
	}
	req->cl_rewrite = f.cl_many;
	req->keep_alive = minor == 1 ? !f.conn_close
	                             : (f.conn_keep_alive && !f.conn_close);
	req->conn_names = f.conn_names;
	req->upgrade = f.conn_upgrade && upgrade_offered(req);
	const http_header *ex = http_find_header(req->headers, req->n_headers,
	                                         "expect");
	req->expect_continue = ex && http_ieq(ex->value, ex->value_len, "100-continue");
	req->is_head = req->method_len == 4 && memcmp(req->method, "HEAD", 4) == 0;
	req->head_len = (size_t)(after - buf);
	return (int)req->head_len;
}

int http_parse_response(const char *buf, size_t len, bool req_is_head,
                        http_response *resp)
{
	resp->status = 0;
	resp->minor = 0;
	resp->reason = NULL;
	resp->reason_len = 0;
	resp->n_headers = 0;
	resp->body = HTTP_BODY_NONE;
	resp->content_length = 0;
	resp->has_te = resp->cl_drop = resp->cl_emit = resp->te_drop = false;
	resp->keep_alive = false;
	resp->head_len = 0;

	size_t lim = len < HTTP_MAX_HEAD ? len : HTTP_MAX_HEAD;
	const char *p = buf, *end = buf + lim;
	bool bad = false;
	const char *cr = line_end(p, end, &bad);
	if (!cr) {
		if (bad)
			return HTTP_E_BAD;
		size_t n = (size_t)(end - p) < 5 ? (size_t)(end - p) : 5;
		if (memcmp(p, "HTTP/", n) != 0)
			return HTTP_E_BAD;
		return incomplete(len);
	}
	/* status-line = HTTP-version SP 3DIGIT SP [reason]; the SP after the
	 * code is tolerated when the reason is absent */
	if (cr - p < 12 || p[8] != ' ')
		return HTTP_E_BAD;
	int minor = parse_version(p);
	if (minor < 0)
		return minor;
	const char *s = p + 9;
	if (!is_digit((unsigned char)s[0]) || !is_digit((unsigned char)s[1]) ||
	    !is_digit((unsigned char)s[2]))
		return HTTP_E_BAD;
	int status = (s[0] - '0') * 100 + (s[1] - '0') * 10 + (s[2] - '0');
	if (status < 100 || status > 599)
		return HTTP_E_BAD;
	const char *r = s + 3;
	if (r < cr && *r != ' ')
		return HTTP_E_BAD;
	if (r < cr)
		r++;
	for (const char *k = r; k < cr; k++) {
		unsigned char ch = (unsigned char)*k;
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return HTTP_E_BAD;
	}
	resp->status = status;
	resp->minor = minor;
	resp->reason = r;
	resp->reason_len = (size_t)(cr - r);

	int rc = 0;
	const char *after = parse_headers(cr + 2, end, resp->headers,
	                                  &resp->n_headers, &rc);
	if (!after)
		return rc == HTTP_INCOMPLETE ? incomplete(len) : rc;
	framing f;
	rc = read_framing(resp->headers, resp->n_headers, &f);
	if (rc < 0)
		return rc;
	resp->keep_alive = minor == 1 ? !f.conn_close
	                              : (f.conn_keep_alive && !f.conn_close);
	resp->conn_names = f.conn_names;
	resp->has_te = f.has_te;
	/* RFC 9112 6.3: Transfer-Encoding overrides Content-Length; an
	 * intermediary that forwards such a message removes Content-Length
	 * first, and the connection is not to be trusted afterwards (the
	 * sender and we may disagree on where the message ended) */
	if (f.has_te && f.has_cl) {
		resp->cl_drop = true;
		resp->keep_alive = false;
	} else if (f.has_cl) {
		resp->content_length = f.cl;
		resp->cl_drop = resp->cl_emit = f.cl_many;
	}
	/* RFC 9110 8.6, RFC 9112 6.1: a 1xx or 204 has no Content-Length or
	 * Transfer-Encoding; one that came with them goes without, lest a
	 * next hop that believes them read the next response as a body
	 * (to HEAD and in a 304 they describe the resource: kept) */
	if (status < 200 || status == 204) {
		resp->cl_drop = resp->te_drop = true;
		resp->cl_emit = false;
	}
	if (req_is_head || status < 200 || status == 204 || status == 304) {
		resp->body = HTTP_BODY_NONE;
	} else if (f.has_te) {
		/* rule 4: a coding other than chunked last is read until close */
		resp->body = f.te_chunked ? HTTP_BODY_CHUNKED : HTTP_BODY_UNTIL_CLOSE;
	} else if (f.has_cl) {
		resp->body = f.cl > 0 ? HTTP_BODY_LENGTH : HTTP_BODY_NONE;
	} else {
		resp->body = HTTP_BODY_UNTIL_CLOSE;
	}
	if (resp->body == HTTP_BODY_UNTIL_CLOSE)
		resp->keep_alive = false;
	resp->head_len = (size_t)(after - buf);
	return (int)resp->head_len;
}

const http_header *http_find_header(const http_header *h, size_t n,
                                    const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (http_ieq(h[i].name, h[i].name_len, name))
			return &h[i];
	return NULL;
}

bool http_is_hop_by_hop(const http_header *h, const http_header *all, size_t n)
{
	/* the fixed hop-by-hop fields, told apart by length first: this runs
	 * for every header of every message */
	const char *nm = h->name;
	size_t nl = h->name_len;
	switch (nl) {
	case 2:
		if (http_ieq(nm, nl, "te"))
			return true;
		break;
	case 7:
		if (http_ieq(nm, nl, "trailer") || http_ieq(nm, nl, "upgrade"))
			return true;
		break;
	case 10:
		if (http_ieq(nm, nl, "connection") || http_ieq(nm, nl, "keep-alive"))
			return true;
		break;
	case 16:
	case 18:
	case 19:
		if (http_ieq(nm, nl, "proxy-connection") ||
		    http_ieq(nm, nl, "proxy-authenticate") ||
		    http_ieq(nm, nl, "proxy-authorization"))
			return true;
		break;
	default:
		break;
	}
	if (n == 0)
		return false;
	/* a Connection header must not strip the framing headers: that
	 * would desynchronise the proxy and the next hop */
	if (http_ieq(h->name, h->name_len, "transfer-encoding") ||
	    http_ieq(h->name, h->name_len, "content-length") ||
	    http_ieq(h->name, h->name_len, "host"))
		return false;
	for (size_t i = 0; i < n; i++) {
		if (!http_ieq(all[i].name, all[i].name_len, "connection"))
			continue;
		const char *pos = all[i].value, *end = all[i].value + all[i].value_len;
		const char *e;
		size_t elen;
		while (http_list_next(&pos, end, &e, &elen))
			if (http_ieqn(e, elen, h->name, h->name_len))
				return true;
	}
	return false;
}

/* Chunked scanner states. */
enum {
	CK_SIZE0,      /* first hex digit of a chunk-size */
	CK_SIZE,       /* more hex digits */
	CK_SIZE_BWS,   /* blanks after the size: ';' or the CR must follow */
	CK_EXT_NAME0,  /* after ';': BWS, then the first tchar of a name */
	CK_EXT_NAME,   /* in an extension's name */
	CK_EXT_AFTER_NAME, /* blanks after a name: '=', ';' or CR */
	CK_EXT_VAL0,   /* after '=': BWS, then a token or a quoted-string */
	CK_EXT_VAL,    /* in a token value */
	CK_EXT_QUOTED, /* in a quoted-string value */
	CK_EXT_QPAIR,  /* after a backslash in a quoted-string */
	CK_EXT_AFTER_VAL, /* after a value: blanks, then ';' or CR */
	CK_SIZE_LF,    /* LF ending the size line */
	CK_DATA,       /* chunk data, <remaining> bytes */
	CK_DATA_CR,    /* CR after the data */
	CK_DATA_LF,    /* LF after the data */
	CK_TRAILER,    /* start of a trailer line (or the final CRLF) */
	CK_TR_NAME,    /* in a trailer field's name */
	CK_TR_VALUE,   /* in a trailer field's value, up to its CR */
	CK_TRAILER_LF, /* LF ending a trailer line */
	CK_END_LF,     /* LF of the final empty line */
	CK_DONE,
};

#define CK_MAX_LINE 4096          /* bound on a chunk-size or trailer line */
#define CK_MAX_TRAILERS HTTP_MAX_HEAD /* bound on all trailer bytes */

/* Fields refused in trailers (see http.h), lower case; tr_names has a bit
 * for each. */
static const char *const tr_forbidden[] = {
	"content-length", "transfer-encoding", "trailer", "host", "connection",
	"keep-alive", "proxy-connection", "te", "upgrade", "content-encoding",
	"content-type", "content-range",
};
#define TR_FORBIDDEN (sizeof tr_forbidden / sizeof tr_forbidden[0])
_Static_assert(TR_FORBIDDEN <= 16, "tr_names has 16 bits");

static unsigned char lower(unsigned char ch)
{
	return ch >= 'A' && ch <= 'Z' ? (unsigned char)(ch + 32) : ch;
}

/* Narrows c->tr_names to the forbidden names whose byte <i> is <ch>. A name
 * is matched a byte at a time, as it arrives: a trailer line may be split
 * across reads, and nothing of it is kept. */
static void tr_names_step(http_chunked *c, size_t i, unsigned char ch)
{
	ch = lower(ch);
	for (unsigned k = 0; c->tr_names >> k; k++)
		if (((c->tr_names >> k) & 1) && tr_forbidden[k][i] != (char)ch)
			c->tr_names &= (uint16_t)~(1u << k);
}

/* Whether the name that ended at its <len>-th byte is a forbidden one. */
static bool tr_names_hit(const http_chunked *c, size_t len)
{
	for (unsigned k = 0; c->tr_names >> k; k++)
		if (((c->tr_names >> k) & 1) && tr_forbidden[k][len] == '\0')
			return true;
	return false;
}

void http_chunked_init(http_chunked *c)
{
	c->state = CK_SIZE0;
	c->tr_names = 0;
	c->remaining = 0;
	c->line_len = 0;
}

/* qdtext and the second byte of a quoted-pair (RFC 9110 5.6.4): HTAB, SP,
 * VCHAR, obs-text; qdtext excludes '"' and '\\', the caller's business. */
static bool is_qchar(unsigned char ch)
{
	return ch == '\t' || (ch >= 0x20 && ch != 0x7f);
}

/* One byte of a chunk-size line, from CK_SIZE0 up to its CR. Returns the
 * next state, or -1 when the line cannot be a chunk-size [chunk-ext]. */
static int size_line_byte(http_chunked *c, unsigned char ch)
{
	int st = c->state;
	if (++c->line_len > CK_MAX_LINE)
		return -1;
	if (st == CK_SIZE0 || st == CK_SIZE) {
		int v = hexval(ch);
		if (v >= 0) {
			/* below 2^60 after the shift; leading zeros are free */
			if (c->remaining >> 56)
				return -1;
			c->remaining = (c->remaining << 4) | (uint64_t)v;
			return CK_SIZE;
		}
		if (st == CK_SIZE0)
			return -1;
	}
	if (ch == '\r' && st != CK_EXT_NAME0 && st != CK_EXT_VAL0 &&
	    st != CK_EXT_QUOTED && st != CK_EXT_QPAIR)
		return CK_SIZE_LF;
	switch (st) {
	case CK_SIZE:
	case CK_SIZE_BWS:
		if (is_blank(ch))
			return CK_SIZE_BWS;
		return ch == ';' ? CK_EXT_NAME0 : -1;
	case CK_EXT_NAME0:
		if (is_blank(ch))
			return CK_EXT_NAME0;
		return is_tchar(ch) ? CK_EXT_NAME : -1;
	case CK_EXT_NAME:
	case CK_EXT_AFTER_NAME:
		if (st == CK_EXT_NAME && is_tchar(ch))
			return CK_EXT_NAME;
		if (is_blank(ch))
			return CK_EXT_AFTER_NAME;
		if (ch == '=')
			return CK_EXT_VAL0;
		return ch == ';' ? CK_EXT_NAME0 : -1;
	case CK_EXT_VAL0:
		if (is_blank(ch))
			return CK_EXT_VAL0;
		if (ch == '"')
			return CK_EXT_QUOTED;
		return is_tchar(ch) ? CK_EXT_VAL : -1;
	case CK_EXT_VAL:
	case CK_EXT_AFTER_VAL:
		if (st == CK_EXT_VAL && is_tchar(ch))
			return CK_EXT_VAL;
		if (is_blank(ch))
			return CK_EXT_AFTER_VAL;
		return ch == ';' ? CK_EXT_NAME0 : -1;
	case CK_EXT_QUOTED:
		if (ch == '"')
			return CK_EXT_AFTER_VAL;
		if (ch == '\\')
			return CK_EXT_QPAIR;
		return is_qchar(ch) ? CK_EXT_QUOTED : -1;
	case CK_EXT_QPAIR:
		return is_qchar(ch) ? CK_EXT_QUOTED : -1;
	default:
		return -1;
	}
}

/* One byte of the trailer section, from CK_TRAILER up to CK_DONE. Returns
 * the next state, or -1 when it is not a field line or the final CRLF. */
static int trailer_byte(http_chunked *c, unsigned char ch)
{
	int st = c->state;
	if (++c->remaining > CK_MAX_TRAILERS)
		return -1;
	if (st != CK_TRAILER && ++c->line_len > CK_MAX_LINE)
		return -1;
	switch (st) {
	case CK_TRAILER:
		c->line_len = 1;
		if (ch == '\r')
			return CK_END_LF;
		/* a blank first is obs-fold, a bare LF or any non-tchar is no
		 * field line */
		if (!is_tchar(ch))
			return -1;
		c->tr_names = (uint16_t)((1u << TR_FORBIDDEN) - 1);
		tr_names_step(c, 0, ch);
		return CK_TR_NAME;
	case CK_TR_NAME:
		/* line_len counts this byte: the name has line_len - 1 */
		if (is_tchar(ch)) {
			if (c->tr_names)
				tr_names_step(c, c->line_len - 1, ch);
			return CK_TR_NAME;
		}
		if (ch != ':' || (c->tr_names && tr_names_hit(c, c->line_len - 1)))
			return -1;
		return CK_TR_VALUE;
	case CK_TR_VALUE:
		if (ch == '\r')
			return CK_TRAILER_LF;
		/* field-value: VCHAR, obs-text, SP, HTAB */
		return (ch < 0x20 && ch != '\t') || ch == 0x7f ? -1 : CK_TR_VALUE;
	case CK_TRAILER_LF:
		return ch == '\n' ? CK_TRAILER : -1;
	case CK_END_LF:
		return ch == '\n' ? CK_DONE : -1;
	default:
		return -1;
	}
}

ssize_t http_chunked_scan(http_chunked *c, const char *p, size_t n, bool *done)
{
	size_t i = 0;
	*done = c->state == CK_DONE;
	while (i < n && c->state != CK_DONE) {
		unsigned char ch = (unsigned char)p[i];
		int next;
		switch (c->state) {
		case CK_SIZE_LF:
			if (ch != '\n')
				return -1;
			i++;
			c->line_len = 0;
			/* the last-chunk starts the trailers, which <remaining>
			 * then counts */
			c->state = c->remaining == 0 ? CK_TRAILER : CK_DATA;
			break;
		case CK_DATA: {
			size_t take = n - i;
			if ((uint64_t)take > c->remaining)
				take = (size_t)c->remaining;
			c->remaining -= take;
			i += take;
			if (c->remaining == 0)
				c->state = CK_DATA_CR;
			break;
		}
		case CK_DATA_CR:
			if (ch != '\r')
				return -1;
			c->state = CK_DATA_LF;
			i++;
			break;
		case CK_DATA_LF:
			if (ch != '\n')
				return -1;
			c->state = CK_SIZE0;
			c->line_len = 0;
			c->remaining = 0;
			i++;
			break;
		case CK_TRAILER:
		case CK_TR_NAME:
		case CK_TR_VALUE:
		case CK_TRAILER_LF:
		case CK_END_LF:
			next = trailer_byte(c, ch);
			if (next < 0)
				return -1;
			c->state = next;
			if (next == CK_DONE)
				c->remaining = 0;
			i++;
			break;
		default:
			next = size_line_byte(c, ch);
			if (next < 0)
				return -1;
			c->state = next;
			i++;
			break;
		}
	}
	*done = c->state == CK_DONE;
	return (ssize_t)i;
}

const char *http_reason(int status)
{
	switch (status) {
	case 100: return "Continue";
	case 101: return "Switching Protocols";
	case 200: return "OK";
	case 201: return "Created";
	case 202: return "Accepted";
	case 204: return "No Content";
	case 206: return "Partial Content";
	case 301: return "Moved Permanently";
	case 302: return "Found";
	case 303: return "See Other";
	case 304: return "Not Modified";
	case 307: return "Temporary Redirect";
	case 308: return "Permanent Redirect";
	case 400: return "Bad Request";
	case 401: return "Unauthorized";
	case 403: return "Forbidden";
	case 404: return "Not Found";
	case 405: return "Method Not Allowed";
	case 408: return "Request Timeout";
	case 409: return "Conflict";
	case 411: return "Length Required";
	case 413: return "Content Too Large";
	case 414: return "URI Too Long";
	case 415: return "Unsupported Media Type";
	case 417: return "Expectation Failed";
	case 426: return "Upgrade Required";
	case 429: return "Too Many Requests";
	case 431: return "Request Header Fields Too Large";
	case 500: return "Internal Server Error";
	case 501: return "Not Implemented";
	case 502: return "Bad Gateway";
	case 503: return "Service Unavailable";
	case 504: return "Gateway Timeout";
	case 505: return "HTTP Version Not Supported";
	default: return "";
	}
}
