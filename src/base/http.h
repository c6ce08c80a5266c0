/* http.h - HTTP/1.1 message-head parsing and body framing, zero-copy.
 *
 * Written by hand, as HAProxy and nginx do, because the proxy needs what
 * general parsers hide: the exact bytes of the head to forward, strict
 * refusal of ambiguous framing (request smuggling), and a chunked-body
 * scanner that finds the end of a body without decoding or copying it, so
 * bodies stream through untouched. Fuzzed (fuzz/fuzz_request.c,
 * fuzz/fuzz_response.c).
 *
 * The parser works on a contiguous buffer holding the start of a message.
 * All pointers in the results point into that buffer. */
#ifndef CANARYD_HTTP_H
#define CANARYD_HTTP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/types.h>

#define HTTP_MAX_HEADERS 100
#define HTTP_MAX_HEAD 16384   /* a larger head is refused with 431 */

/* Results of the head parsers (negative: the message is refused). */
enum {
	HTTP_INCOMPLETE = 0,    /* more bytes needed */
	HTTP_E_BAD = -1,        /* malformed (a Host missing, repeated or
	                           invalid too): 400 (or 502 for a response) */
	HTTP_E_TOO_LARGE = -2,  /* head over HTTP_MAX_HEAD or too many headers: 431 */
	HTTP_E_SMUGGLE = -3,    /* CL+TE, differing CLs, bad TE: 400 */
	HTTP_E_VERSION = -4,    /* not HTTP/1.x: 505 */
	HTTP_E_CODING = -5,     /* a transfer coding we do not know: 501 */
};

/* The form of a request-target (RFC 9112 3.2), each allowed only where the
 * RFC has it: a target of another form, or of a form the method does not
 * take, is refused (HTTP_E_BAD). */
typedef enum {
	HTTP_FORM_ORIGIN = 0,  /* "/path?query": any method but CONNECT */
	HTTP_FORM_ABSOLUTE,    /* "http://authority/path": any method but
	                          CONNECT; http or https only */
	HTTP_FORM_AUTHORITY,   /* "host:port": CONNECT, and only it */
	HTTP_FORM_ASTERISK,    /* "*": OPTIONS, and only it */
} http_form;

/* Whether a[0..alen) and b[0..blen) are equal but for ASCII case. */
static inline bool http_ieqn(const char *a, size_t alen, const char *b,
                             size_t blen)
{
	if (alen != blen)
		return false;
	for (size_t i = 0; i < alen; i++) {
		unsigned char x = (unsigned char)a[i], y = (unsigned char)b[i];
		if (x >= 'A' && x <= 'Z')
			x = (unsigned char)(x + 32);
		if (y >= 'A' && y <= 'Z')
			y = (unsigned char)(y + 32);
		if (x != y)
			return false;
	}
	return true;
}

/* The same against a string <b>; always inlined, so that the length of a
 * literal is a constant and most header names are told apart by their
 * length alone (it runs for every header of every message). */
static inline __attribute__((always_inline)) bool http_ieq(const char *a,
                                                           size_t alen,
                                                           const char *b)
{
	return http_ieqn(a, alen, b, strlen(b));
}

typedef struct http_header {
	const char *name;
	size_t name_len;
	const char *value;   /* leading/trailing blanks trimmed */
	size_t value_len;
} http_header;

/* Body framing of a message. */
typedef enum {
	HTTP_BODY_NONE = 0,   /* no body (or Content-Length: 0) */
	HTTP_BODY_LENGTH,     /* content_length bytes */
	HTTP_BODY_CHUNKED,    /* Transfer-Encoding: chunked */
	HTTP_BODY_UNTIL_CLOSE,/* response only: read until the upstream closes */
} http_body;

typedef struct http_request {
	const char *method;
	size_t method_len;
	const char *target;
	size_t target_len;
	int minor;                 /* HTTP/1.<minor>: 0 or 1 */
	http_form form;
	const char *authority;     /* absolute-form: the target's host[:port] */
	size_t authority_len;
	const char *path;          /* absolute-form: what follows the authority
	                              ("/p?q", "?q" or empty) */
	size_t path_len;
	bool upgrade_h2;           /* Upgrade offered h2c or h2: not forwarded */
	http_header headers[HTTP_MAX_HEADERS];
	size_t n_headers;
	http_body body;
	uint64_t content_length;   /* when body == HTTP_BODY_LENGTH */
	bool cl_rewrite;           /* Content-Length was repeated ("5, 5"):
	                              forward one "Content-Length: <content_length>"
	                              in place of the received fields */
	bool keep_alive;           /* per version and Connection */
	bool conn_names;           /* Connection names fields beyond keep-alive/upgrade */
	bool upgrade;              /* Connection: upgrade + an Upgrade header
	                              offering a protocol other than HTTP/2 */
	bool expect_continue;      /* Expect: 100-continue */
	bool is_head;              /* method HEAD */
	size_t head_len;           /* bytes of the head including the blank line */
} http_request;

typedef struct http_response {
	int status;
	int minor;
	const char *reason;
	size_t reason_len;
	http_header headers[HTTP_MAX_HEADERS];
	size_t n_headers;
	http_body body;
	uint64_t content_length;   /* the Content-Length when there is one and
	                              no Transfer-Encoding */
	bool has_te;               /* Transfer-Encoding is present */
	bool cl_drop;              /* forward none of the received Content-Length
	                              fields (they are repeated, or overridden by
	                              Transfer-Encoding: RFC 9112 6.3) */
	bool cl_emit;              /* with cl_drop: forward one "Content-Length:
	                              <content_length>" in their place */
	bool te_drop;              /* forward no Transfer-Encoding field (a 1xx
	                              or 204 must have none: RFC 9112 6.1) */
	bool keep_alive;
	bool conn_names;           /* Connection names fields beyond keep-alive/upgrade */
	size_t head_len;
} http_response;

/* Parses a request head from buf[0..len). Returns head_len (> 0) when the
 * head is complete, HTTP_INCOMPLETE when more bytes are needed (and len <
 * HTTP_MAX_HEAD), or a negative HTTP_E_* code. Besides framing, it refuses
 * (HTTP_E_BAD) what RFC 9112 3.2 makes a 400: an HTTP/1.1 request without
 * Host, any request with more than one Host field line, and a Host whose
 * value is not uri-host [":" port] (RFC 9110 7.2); an HTTP/1.0 request may
 * have no Host. A Content-Length must fit a signed 64-bit number, so that
 * no next hop that reads it as one sees another length, and be one number
 * or a list of equal ones ("5, 5", RFC 9110 8.6) without empty members
 * (",5" and "5," are not what folded fields look like, and next hops read
 * them differently).
 *
 * Transfer-Encoding must have chunked last and once (else HTTP_E_SMUGGLE);
 * a coding before it other than gzip, deflate, compress (x-gzip,
 * x-compress) is HTTP_E_CODING, a 501 (RFC 9112 6.1): "identity" (no
 * longer a coding) or an unknown one may be skipped by a next hop, which
 * then reads the body as if it had no Transfer-Encoding at all.
 *
 * The target must have a form its method takes (see http_form), else
 * HTTP_E_BAD. An absolute-form target sets <authority> and <path>: its
 * authority must be a valid Host, not empty (RFC 9110 4.2.1) and without
 * userinfo (an error in an http URI, 4.2.4); it wins over the Host field
 * (RFC 9112 3.2.2), which must still be valid.
 *
 * Upgrade: an "h2c" or "h2" token (any version) is taken as absent, so
 * that no HTTP/2 connection is ever tunnelled past us (h2c smuggling);
 * <upgrade_h2> says one was there, and <upgrade> is set only when another
 * protocol is offered: with none, the request is plain HTTP/1.1. */
int http_parse_request(const char *buf, size_t len, http_request *req);

/* Parses a response head. <req_is_head> and the status decide framing: a
 * response to HEAD, 1xx, 204 and 304 have no body. Same returns. */
int http_parse_response(const char *buf, size_t len, bool req_is_head,
                        http_response *resp);

/* Case-insensitive header lookup; NULL when absent (the first one). */
const http_header *http_find_header(const http_header *h, size_t n,
                                    const char *name);

/* Iterates over the comma-separated elements of a list value [*pos, end),
 * each trimmed of blanks; empty elements are skipped. Sets *e and *elen and
 * advances *pos; returns false at the end. */
bool http_list_next(const char **pos, const char *end, const char **e,
                    size_t *elen);

/* Whether the Upgrade element e[0..elen) offers HTTP/2 ("h2c", "h2", with
 * any "/version"): such an offer is never forwarded. */
bool http_upgrade_is_h2(const char *e, size_t elen);

/* True for hop-by-hop headers (Connection, Keep-Alive, Proxy-Connection,
 * TE, Trailer, Upgrade, Proxy-Authenticate, Proxy-Authorization) and for
 * any header named in the message's Connection header. Transfer-Encoding is
 * hop-by-hop too but the proxy keeps it, since it forwards chunked bodies
 * as they are. */
bool http_is_hop_by_hop(const http_header *h, const http_header *all, size_t n);

/* Incremental scanner of a chunked body (including trailers): it consumes
 * bytes without copying and tells when the body ends. It accepts exactly
 * RFC 9112 7.1: a chunk-size line is 1*HEXDIG, then chunk-ext (BWS ";"
 * BWS token [BWS "=" BWS (token / quoted-string)], any number of them),
 * then CRLF; blanks alone between the size and the CRLF are tolerated (as
 * HAProxy does), anything else ("5 6", "0x5", "5;") is refused. A size
 * must be below 2^60, so that every next hop reads the same size (nginx
 * and HAProxy refuse larger ones too). A trailer line must be a valid
 * field line (token ":" field-value, no obs-fold), or the body is refused
 * (the proxy answers 400 to a request, cuts a response); so is a trailer
 * field that RFC 9110 6.5.1 keeps out of trailers and that a next hop
 * merging trailers into the header section would act on: framing
 * (Content-Length, Transfer-Encoding, Trailer), routing (Host), the
 * connection (Connection, Keep-Alive, Proxy-Connection, TE, Upgrade) and
 * the content's format (Content-Encoding, Content-Type, Content-Range).
 * Refused rather than dropped: bodies stream through byte for byte,
 * without a copy, and dropping lines would mean rewriting the body's
 * tail; a valid sender never produces such a trailer, so the refusal
 * costs no real traffic.
 * Valid trailers go through as received: the framing was decided before
 * them. Lines are bounded (4096 bytes) and so are all trailers together
 * (HTTP_MAX_HEAD). */
typedef struct http_chunked {
	int state;
	uint16_t tr_names;    /* in a trailer's name: the forbidden names it
	                         may still be (a bit each) */
	uint64_t remaining;   /* bytes left in the current chunk's data; in the
	                         trailers, their bytes so far */
	size_t line_len;      /* guards chunk-size and trailer line lengths */
} http_chunked;

void http_chunked_init(http_chunked *c);
/* Scans p[0..n). Returns the number of bytes that belong to the body (<= n;
 * less than n only when the body ended inside p), or -1 when the framing is
 * malformed. Sets *done when the final chunk and trailers have been seen. */
ssize_t http_chunked_scan(http_chunked *c, const char *p, size_t n, bool *done);

/* The standard reason phrase of <status> ("Bad Gateway"), "" if unknown. */
const char *http_reason(int status);

#endif
