/* test_http.c - the HTTP/1.1 head parsers and the chunked scanner. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static http_request req;
static http_response resp;

static int preq(const char *s)
{
	return http_parse_request(s, strlen(s), &req);
}

static int presp(const char *s, bool is_head)
{
	return http_parse_response(s, strlen(s), is_head, &resp);
}

static bool span_is(const char *p, size_t n, const char *want)
{
	return n == strlen(want) && memcmp(p, want, n) == 0;
}

static void test_request_line_and_headers(void **state)
{
	const char *s = "GET /a/b?c=d HTTP/1.1\r\nHost: example\r\n"
	                "X-Long:   spaced value  \r\nEmpty:\r\n\r\nBODY";
	int rc = preq(s);
	assert_int_equal(rc, (int)(strlen(s) - 4));
	assert_true(span_is(req.method, req.method_len, "GET"));
	assert_true(span_is(req.target, req.target_len, "/a/b?c=d"));
	assert_int_equal(req.minor, 1);
	assert_int_equal(req.n_headers, 3);
	assert_true(span_is(req.headers[0].name, req.headers[0].name_len, "Host"));
	assert_true(span_is(req.headers[1].value, req.headers[1].value_len,
	                    "spaced value"));
	assert_int_equal(req.headers[2].value_len, 0);
	assert_int_equal(req.body, HTTP_BODY_NONE);
	assert_true(req.keep_alive);
	assert_false(req.is_head);
	assert_int_equal(req.head_len, strlen(s) - 4);
}

static void test_request_incomplete_at_every_prefix(void **state)
{
	const char *s = "POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n"
	                "Connection: keep-alive, Upgrade\r\nUpgrade: websocket\r\n\r\n";
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(http_parse_request(s, i, &req), HTTP_INCOMPLETE);
	assert_int_equal(http_parse_request(s, n, &req), (int)n);
	assert_int_equal(req.body, HTTP_BODY_LENGTH);
	assert_int_equal(req.content_length, 5);
}

static void test_response_incomplete_at_every_prefix(void **state)
{
	const char *s = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n";
	size_t n = strlen(s);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(http_parse_response(s, i, false, &resp),
		                 HTTP_INCOMPLETE);
	assert_int_equal(http_parse_response(s, n, false, &resp), (int)n);
}

static void test_leading_empty_line_is_skipped(void **state)
{
	const char *s = "\r\nGET / HTTP/1.1\r\n\r\n";
	assert_int_equal(preq(s), (int)strlen(s));
	assert_true(span_is(req.method, req.method_len, "GET"));
}

static void test_bad_request_lines(void **state)
{
	assert_int_equal(preq("GET  / HTTP/1.1\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1 \r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("G(T / HTTP/1.1\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET /\x01 HTTP/1.1\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / http/1.1\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET /\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\rX\n\r\n"), HTTP_E_BAD);
}

static void test_version_not_1x_is_refused(void **state)
{
	assert_int_equal(preq("GET / HTTP/2.0\r\n\r\n"), HTTP_E_VERSION);
	assert_int_equal(preq("GET / HTTP/1.2\r\n\r\n"), HTTP_E_VERSION);
	assert_int_equal(preq("GET / HTTP/1.0\r\n\r\n"), 18);
	assert_int_equal(req.minor, 0);
	assert_int_equal(presp("HTTP/2.0 200 OK\r\n\r\n", false), HTTP_E_VERSION);
}

static void test_cl_and_te_is_smuggling(void **state)
{
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: 4\r\n"
	                      "Transfer-Encoding: chunked\r\n\r\n"), HTTP_E_SMUGGLE);
	assert_int_equal(preq("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	                      "Content-Length: 4\r\n\r\n"), HTTP_E_SMUGGLE);
}

static void test_differing_content_lengths_are_smuggling(void **state)
{
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: 4\r\n"
	                      "Content-Length: 5\r\n\r\n"), HTTP_E_SMUGGLE);
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: 4, 5\r\n\r\n"),
	                 HTTP_E_SMUGGLE);
}

static void test_identical_content_lengths_are_accepted(void **state)
{
	assert_true(preq("POST / HTTP/1.1\r\nContent-Length: 7\r\n"
	                 "content-length: 7\r\n\r\n") > 0);
	assert_int_equal(req.content_length, 7);
	assert_true(preq("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n") > 0);
	assert_int_equal(req.content_length, 7);
}

static void test_bad_content_length_is_refused(void **state)
{
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: +4\r\n\r\n"),
	                 HTTP_E_BAD);
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: 4x\r\n\r\n"),
	                 HTTP_E_BAD);
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: "
	                      "99999999999999999999999\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length:\r\n\r\n"),
	                 HTTP_E_BAD);
	assert_true(preq("POST / HTTP/1.1\r\nContent-Length: "
	                 "18446744073709551615\r\n\r\n") > 0);
	assert_int_equal(req.content_length, UINT64_MAX);
}

static void test_bad_transfer_encoding_is_smuggling(void **state)
{
	assert_int_equal(preq("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n"),
	                 HTTP_E_SMUGGLE);
	assert_int_equal(preq("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip"
	                      "\r\n\r\n"), HTTP_E_SMUGGLE);
	assert_int_equal(preq("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	                      "Transfer-Encoding: chunked\r\n\r\n"), HTTP_E_SMUGGLE);
	assert_int_equal(preq("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
	                 HTTP_E_SMUGGLE);
	assert_true(preq("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\n\r\n")
	            > 0);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
}

static void test_obs_fold_is_refused(void **state)
{
	assert_int_equal(preq("GET / HTTP/1.1\r\nX-A: a\r\n b\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\n\r\n"), HTTP_E_BAD);
}

static void test_space_before_colon_is_refused(void **state)
{
	assert_int_equal(preq("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\r\n: x\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\r\nNoColon\r\n\r\n"), HTTP_E_BAD);
}

static void test_bare_lf_is_refused(void **state)
{
	assert_int_equal(preq("GET / HTTP/1.1\nHost: x\n\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\r\nHost: x\n\r\n"), HTTP_E_BAD);
	assert_int_equal(presp("HTTP/1.1 200 OK\n\n", false), HTTP_E_BAD);
}

static void test_control_characters_in_values_are_refused(void **state)
{
	const char s[] = "GET / HTTP/1.1\r\nX: a\0b\r\n\r\n";
	assert_int_equal(http_parse_request(s, sizeof s - 1, &req), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\r\nX: a\rb\r\n\r\n"), HTTP_E_BAD);
	assert_true(preq("GET / HTTP/1.1\r\nX: a\tb \xc3\xa9\r\n\r\n") > 0);
}

static void test_too_large_head_is_refused(void **state)
{
	size_t n = HTTP_MAX_HEAD + 10;
	char *s = malloc(n);
	assert_non_null(s);
	memset(s, 'a', n);
	memcpy(s, "GET / HTTP/1.1\r\nX-Big: ", 23);
	assert_int_equal(http_parse_request(s, HTTP_MAX_HEAD - 1, &req),
	                 HTTP_INCOMPLETE);
	assert_int_equal(http_parse_request(s, HTTP_MAX_HEAD, &req),
	                 HTTP_E_TOO_LARGE);
	assert_int_equal(http_parse_request(s, n, &req), HTTP_E_TOO_LARGE);
	/* a head of exactly HTTP_MAX_HEAD bytes fits */
	memcpy(s + HTTP_MAX_HEAD - 4, "\r\n\r\n", 4);
	assert_int_equal(http_parse_request(s, n, &req), HTTP_MAX_HEAD);
	free(s);
}

static void test_too_many_headers_is_refused(void **state)
{
	char s[4096];
	size_t k = (size_t)snprintf(s, sizeof s, "GET / HTTP/1.1\r\n");
	for (int i = 0; i < HTTP_MAX_HEADERS; i++)
		k += (size_t)snprintf(s + k, sizeof s - k, "H%d: v\r\n", i);
	k += (size_t)snprintf(s + k, sizeof s - k, "\r\n");
	assert_int_equal(http_parse_request(s, k, &req), (int)k);
	assert_int_equal(req.n_headers, HTTP_MAX_HEADERS);
	k -= 2;
	k += (size_t)snprintf(s + k, sizeof s - k, "One-More: v\r\n\r\n");
	assert_int_equal(http_parse_request(s, k, &req), HTTP_E_TOO_LARGE);
}

static void test_keep_alive_http11(void **state)
{
	assert_true(preq("GET / HTTP/1.1\r\n\r\n") > 0);
	assert_true(req.keep_alive);
	assert_true(preq("GET / HTTP/1.1\r\nConnection: foo, CLOSE\r\n\r\n") > 0);
	assert_false(req.keep_alive);
}

static void test_keep_alive_http10(void **state)
{
	assert_true(preq("GET / HTTP/1.0\r\n\r\n") > 0);
	assert_false(req.keep_alive);
	assert_true(preq("GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n") > 0);
	assert_true(req.keep_alive);
	assert_true(preq("GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n") > 0);
	assert_false(req.keep_alive);
}

static void test_upgrade_and_expect_flags(void **state)
{
	assert_true(preq("GET /ws HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n"
	                 "Upgrade: websocket\r\nExpect: 100-Continue\r\n\r\n") > 0);
	assert_true(req.upgrade);
	assert_true(req.expect_continue);
	assert_true(preq("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\n\r\n") > 0);
	assert_false(req.upgrade);
	assert_false(req.expect_continue);
	assert_true(preq("HEAD / HTTP/1.1\r\n\r\n") > 0);
	assert_true(req.is_head);
}

static void test_response_status_line(void **state)
{
	assert_true(presp("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n",
	                  false) > 0);
	assert_int_equal(resp.status, 404);
	assert_true(span_is(resp.reason, resp.reason_len, "Not Found"));
	assert_int_equal(resp.body, HTTP_BODY_NONE);
	assert_true(presp("HTTP/1.1 200\r\nContent-Length: 0\r\n\r\n", false) > 0);
	assert_int_equal(resp.reason_len, 0);
	assert_int_equal(presp("HTTP/1.1 99 X\r\n\r\n", false), HTTP_E_BAD);
	assert_int_equal(presp("HTTP/1.1 600 X\r\n\r\n", false), HTTP_E_BAD);
	assert_int_equal(presp("HTTP/1.1 2000 X\r\n\r\n", false), HTTP_E_BAD);
	assert_int_equal(presp("XTTP/1.1 200 OK\r\n\r\n", false), HTTP_E_BAD);
	assert_int_equal(presp("XT", false), HTTP_E_BAD);
}

static void test_response_without_body(void **state)
{
	const char *cl = "Content-Length: 10\r\n\r\n";
	char s[256];
	snprintf(s, sizeof s, "HTTP/1.1 200 OK\r\n%s", cl);
	assert_true(presp(s, true) > 0);
	assert_int_equal(resp.body, HTTP_BODY_NONE);
	snprintf(s, sizeof s, "HTTP/1.1 100 Continue\r\n%s", cl);
	assert_true(presp(s, false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_NONE);
	snprintf(s, sizeof s, "HTTP/1.1 204 No Content\r\n%s", cl);
	assert_true(presp(s, false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_NONE);
	snprintf(s, sizeof s, "HTTP/1.1 304 Not Modified\r\n%s", cl);
	assert_true(presp(s, false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_NONE);
	assert_true(resp.keep_alive);
}

static void test_response_framing(void **state)
{
	assert_true(presp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	                  false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_CHUNKED);
	assert_true(resp.keep_alive);
	assert_true(presp("HTTP/1.1 200 OK\r\nContent-Length: 42\r\n\r\n", false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_LENGTH);
	assert_int_equal(resp.content_length, 42);
	assert_true(presp("HTTP/1.1 200 OK\r\n\r\n", false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_UNTIL_CLOSE);
	assert_false(resp.keep_alive);
	assert_true(presp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n",
	                  false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_UNTIL_CLOSE);
	assert_true(presp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
	                  "Transfer-Encoding: chunked\r\n\r\n", false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_CHUNKED);
	assert_false(resp.keep_alive);
	assert_int_equal(presp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
	                       "Content-Length: 2\r\n\r\n", false), HTTP_E_SMUGGLE);
	assert_true(presp("HTTP/1.0 200 OK\r\nContent-Length: 1\r\n\r\n", false) > 0);
	assert_false(resp.keep_alive);
}

/* Feeds <s> to a fresh scanner in pieces of <step> bytes; returns the body
 * length consumed or -1 on error, *done as reported at the end. */
static ssize_t scan_pieces(const char *s, size_t n, size_t step, bool *done)
{
	http_chunked c;
	http_chunked_init(&c);
	size_t used = 0;
	*done = false;
	while (used < n && !*done) {
		size_t k = n - used < step ? n - used : step;
		ssize_t r = http_chunked_scan(&c, s + used, k, done);
		if (r < 0)
			return -1;
		assert_true((size_t)r <= k);
		if ((size_t)r < k)
			assert_true(*done);
		used += (size_t)r;
	}
	return (ssize_t)used;
}

static const char chunked_body[] =
	"5\r\nhello\r\n"
	"1a;name=value;x=\"q\"\r\nabcdefghijklmnopqrstuvwxyz\r\n"
	"A \r\n0123456789\r\n"
	"0\r\nTrailer-One: a\r\nTrailer-Two: b\r\n\r\n";

static void test_chunked_whole(void **state)
{
	const char *after = "GET /next HTTP/1.1\r\n\r\n";
	char s[512];
	snprintf(s, sizeof s, "%s%s", chunked_body, after);
	bool done;
	ssize_t r = scan_pieces(s, strlen(s), strlen(s), &done);
	assert_true(done);
	assert_int_equal(r, (ssize_t)strlen(chunked_body));
}

static void test_chunked_byte_by_byte(void **state)
{
	size_t n = strlen(chunked_body);
	bool done;
	ssize_t r = scan_pieces(chunked_body, n, 1, &done);
	assert_true(done);
	assert_int_equal(r, (ssize_t)n);
	/* every prefix leaves the scanner waiting */
	r = scan_pieces(chunked_body, n - 1, 1, &done);
	assert_false(done);
	assert_int_equal(r, (ssize_t)n - 1);
}

static void test_chunked_done_is_sticky(void **state)
{
	http_chunked c;
	http_chunked_init(&c);
	bool done = false;
	assert_int_equal(http_chunked_scan(&c, "0\r\n\r\nXYZ", 8, &done), 5);
	assert_true(done);
	assert_int_equal(http_chunked_scan(&c, "XYZ", 3, &done), 0);
	assert_true(done);
}

static void test_chunked_malformed(void **state)
{
	static const char *const bad[] = {
		"x\r\n",                       /* not hex */
		"\r\n",                        /* no size */
		"5\r\nhelloX\r\n",             /* no CRLF after data */
		"5\r\nhello\n",                /* bare LF after data */
		"5\nhello\r\n",                /* bare LF after size */
		"5g\r\n",                      /* garbage after size */
		"11111111111111111\r\n",       /* 17 hex digits */
		"0\r\nTrailer\n\r\n",          /* bare LF in a trailer */
		"0\r\n folded\r\n\r\n",        /* obs-fold trailer */
		"0\r\n\rX",                    /* CR without LF at the end */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		bool done;
		assert_int_equal(scan_pieces(bad[i], strlen(bad[i]), 64, &done), -1);
		assert_int_equal(scan_pieces(bad[i], strlen(bad[i]), 1, &done), -1);
	}
}

static void test_chunked_line_bounds(void **state)
{
	char s[8192];
	memset(s, 'x', sizeof s);
	memcpy(s, "1;", 2);
	bool done;
	assert_int_equal(scan_pieces(s, sizeof s, 100, &done), -1);
	/* sixteen hex digits fit 64 bits: no overflow, a huge chunk */
	http_chunked c;
	http_chunked_init(&c);
	const char *big = "ffffffffffffffff\r\nabc";
	assert_int_equal(http_chunked_scan(&c, big, strlen(big), &done),
	                 (ssize_t)strlen(big));
	assert_false(done);
	assert_true(c.remaining == UINT64_MAX - 3);
}

static void test_hop_by_hop_headers(void **state)
{
	assert_true(preq("GET / HTTP/1.1\r\nConnection: X-Secret, keep-alive\r\n"
	                 "Keep-Alive: 5\r\nX-Secret: s\r\nX-Public: p\r\n"
	                 "Transfer-Encoding: chunked\r\nTE: trailers\r\n"
	                 "Proxy-Authorization: b\r\nUpgrade: h2c\r\n\r\n") > 0);
	const http_header *h = req.headers;
	size_t n = req.n_headers;
	assert_true(http_is_hop_by_hop(&h[0], h, n));   /* Connection */
	assert_true(http_is_hop_by_hop(&h[1], h, n));   /* Keep-Alive */
	assert_true(http_is_hop_by_hop(&h[2], h, n));   /* listed in Connection */
	assert_false(http_is_hop_by_hop(&h[3], h, n));  /* X-Public */
	assert_false(http_is_hop_by_hop(&h[4], h, n));  /* Transfer-Encoding kept */
	assert_true(http_is_hop_by_hop(&h[5], h, n));   /* TE */
	assert_true(http_is_hop_by_hop(&h[6], h, n));
	assert_true(http_is_hop_by_hop(&h[7], h, n));
}

/* conn_names says whether the Connection header names fields beyond
 * keep-alive/upgrade; the proxy scans the headers for named fields only
 * then (n = 0 otherwise), and the fixed hop-by-hop fields go either way. */
static void test_connection_names_flag(void **state)
{
	assert_true(preq("GET / HTTP/1.1\r\nConnection: keep-alive, Upgrade\r\n"
	                 "Upgrade: ws\r\nKeep-Alive: 5\r\nX-A: a\r\n\r\n") > 0);
	assert_false(req.conn_names);
	assert_true(http_is_hop_by_hop(&req.headers[0], req.headers, 0));
	assert_true(http_is_hop_by_hop(&req.headers[1], req.headers, 0));
	assert_true(http_is_hop_by_hop(&req.headers[2], req.headers, 0));
	assert_false(http_is_hop_by_hop(&req.headers[3], req.headers, 0));
	assert_true(preq("GET / HTTP/1.1\r\nConnection: close\r\nClose: x\r\n\r\n") > 0);
	assert_true(req.conn_names);   /* "close" names a field as well */
	assert_true(http_is_hop_by_hop(&req.headers[1], req.headers, req.n_headers));
	assert_true(preq("GET / HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
	assert_false(req.conn_names);
	assert_true(presp("HTTP/1.1 200 OK\r\nConnection: keep-alive, X-Hop\r\n"
	                  "X-Hop: 1\r\nContent-Length: 0\r\n\r\n", false) > 0);
	assert_true(resp.conn_names);
	assert_true(presp("HTTP/1.1 200 OK\r\nConnection: keep-alive\r\n"
	                  "Content-Length: 0\r\n\r\n", false) > 0);
	assert_false(resp.conn_names);
	/* same-length names that are not hop-by-hop */
	assert_true(preq("GET / HTTP/1.1\r\nTX: 1\r\nTrailed: 1\r\n"
	                 "Connectiom: 1\r\n\r\n") > 0);
	for (size_t i = 0; i < req.n_headers; i++)
		assert_false(http_is_hop_by_hop(&req.headers[i], req.headers, 0));
}

/* Header lines are found by their LF; a CR anywhere else in a line, a
 * bare LF, or a line still incomplete must come out as before. */
static void test_header_line_ends(void **state)
{
	static const struct { const char *head; int want; } cases[] = {
		{ "GET / HTTP/1.1\r\nX\r: a\r\n\r\n", HTTP_E_BAD },   /* CR in a name */
		{ "GET / HTTP/1.1\r\n\rX: a\r\n\r\n", HTTP_E_BAD },   /* CR first */
		{ "GET / HTTP/1.1\r\nX: a\r\r\n\r\n", HTTP_E_BAD },   /* CR in a value */
		{ "GET / HTTP/1.1\r\n\nX: a\r\n\r\n", HTTP_E_BAD },   /* bare LF first */
		{ "GET / HTTP/1.1\r\nX: a\rb", HTTP_E_BAD },            /* incomplete, bare CR */
		{ "GET / HTTP/1.1\r\nX: ab", HTTP_INCOMPLETE },
		{ "GET / HTTP/1.1\r\nX: ab\r", HTTP_INCOMPLETE },
		{ "GET / HTTP/1.1\r\nX: ab\r\n", HTTP_INCOMPLETE },
		{ "GET / HTTP/1.1\r\nX: ab\r\n\r", HTTP_INCOMPLETE },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(preq(cases[i].head), cases[i].want);
	assert_true(preq("GET / HTTP/1.1\r\nX: ab\r\n\r\n") > 0);
	assert_int_equal((int)req.n_headers, 1);
	assert_int_equal((int)req.headers[0].value_len, 2);
}

static void test_connection_cannot_strip_framing(void **state)
{
	assert_true(preq("POST / HTTP/1.1\r\nConnection: Content-Length, host\r\n"
	                 "Content-Length: 3\r\nHost: h\r\n\r\n") > 0);
	assert_false(http_is_hop_by_hop(&req.headers[1], req.headers, req.n_headers));
	assert_false(http_is_hop_by_hop(&req.headers[2], req.headers, req.n_headers));
}

static void test_find_header_is_case_insensitive(void **state)
{
	assert_true(preq("GET / HTTP/1.1\r\nhOsT: a\r\nHost: b\r\n\r\n") > 0);
	const http_header *h = http_find_header(req.headers, req.n_headers, "HOST");
	assert_non_null(h);
	assert_true(span_is(h->value, h->value_len, "a"));
	assert_null(http_find_header(req.headers, req.n_headers, "Hos"));
}

static void test_reason_phrases(void **state)
{
	assert_string_equal(http_reason(502), "Bad Gateway");
	assert_string_equal(http_reason(504), "Gateway Timeout");
	assert_string_equal(http_reason(431), "Request Header Fields Too Large");
	assert_string_equal(http_reason(299), "");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_line_and_headers),
		cmocka_unit_test(test_request_incomplete_at_every_prefix),
		cmocka_unit_test(test_response_incomplete_at_every_prefix),
		cmocka_unit_test(test_leading_empty_line_is_skipped),
		cmocka_unit_test(test_bad_request_lines),
		cmocka_unit_test(test_version_not_1x_is_refused),
		cmocka_unit_test(test_cl_and_te_is_smuggling),
		cmocka_unit_test(test_differing_content_lengths_are_smuggling),
		cmocka_unit_test(test_identical_content_lengths_are_accepted),
		cmocka_unit_test(test_bad_content_length_is_refused),
		cmocka_unit_test(test_bad_transfer_encoding_is_smuggling),
		cmocka_unit_test(test_obs_fold_is_refused),
		cmocka_unit_test(test_space_before_colon_is_refused),
		cmocka_unit_test(test_bare_lf_is_refused),
		cmocka_unit_test(test_control_characters_in_values_are_refused),
		cmocka_unit_test(test_too_large_head_is_refused),
		cmocka_unit_test(test_too_many_headers_is_refused),
		cmocka_unit_test(test_keep_alive_http11),
		cmocka_unit_test(test_keep_alive_http10),
		cmocka_unit_test(test_upgrade_and_expect_flags),
		cmocka_unit_test(test_response_status_line),
		cmocka_unit_test(test_response_without_body),
		cmocka_unit_test(test_response_framing),
		cmocka_unit_test(test_chunked_whole),
		cmocka_unit_test(test_chunked_byte_by_byte),
		cmocka_unit_test(test_chunked_done_is_sticky),
		cmocka_unit_test(test_chunked_malformed),
		cmocka_unit_test(test_chunked_line_bounds),
		cmocka_unit_test(test_hop_by_hop_headers),
		cmocka_unit_test(test_connection_names_flag),
		cmocka_unit_test(test_header_line_ends),
		cmocka_unit_test(test_connection_cannot_strip_framing),
		cmocka_unit_test(test_find_header_is_case_insensitive),
		cmocka_unit_test(test_reason_phrases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
