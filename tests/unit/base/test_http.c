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
	const char *s = "\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
	assert_int_equal(preq(s), (int)strlen(s));
	assert_true(span_is(req.method, req.method_len, "GET"));
}

static void test_bad_request_lines(void **state)
{
	assert_int_equal(preq("GET  / HTTP/1.1\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1 \r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("G(T / HTTP/1.1\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n"), HTTP_E_BAD);
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
	                      "Transfer-Encoding: chunked\r\nHost: h\r\n\r\n"), HTTP_E_SMUGGLE);
	assert_int_equal(preq("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	                      "Content-Length: 4\r\nHost: h\r\n\r\n"), HTTP_E_SMUGGLE);
}

static void test_differing_content_lengths_are_smuggling(void **state)
{
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: 4\r\n"
	                      "Content-Length: 5\r\nHost: h\r\n\r\n"), HTTP_E_SMUGGLE);
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: 4, 5\r\nHost: h\r\n\r\n"),
	                 HTTP_E_SMUGGLE);
}

static void test_identical_content_lengths_are_accepted(void **state)
{
	assert_true(preq("POST / HTTP/1.1\r\nContent-Length: 7\r\n"
	                 "content-length: 7\r\nHost: h\r\n\r\n") > 0);
	assert_int_equal(req.content_length, 7);
	assert_true(preq("POST / HTTP/1.1\r\nContent-Length: 7, 7\r\nHost: h\r\n\r\n") > 0);
	assert_int_equal(req.content_length, 7);
}

static void test_bad_content_length_is_refused(void **state)
{
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: +4\r\nHost: h\r\n\r\n"),
	                 HTTP_E_BAD);
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: 4x\r\nHost: h\r\n\r\n"),
	                 HTTP_E_BAD);
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: "
	                      "99999999999999999999999\r\nHost: h\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length:\r\nHost: h\r\n\r\n"),
	                 HTTP_E_BAD);
	/* the largest length a signed 64-bit next hop reads the same */
	assert_true(preq("POST / HTTP/1.1\r\nContent-Length: "
	                 "9223372036854775807\r\nHost: h\r\n\r\n") > 0);
	assert_int_equal(req.content_length, INT64_MAX);
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: "
	                      "9223372036854775808\r\nHost: h\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("POST / HTTP/1.1\r\nContent-Length: "
	                      "18446744073709551615\r\nHost: h\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(presp("HTTP/1.1 200 OK\r\nContent-Length: "
	                       "9223372036854775808\r\n\r\n", false), HTTP_E_BAD);
}

static void test_bad_transfer_encoding_is_smuggling(void **state)
{
	assert_int_equal(preq("POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\nHost: h\r\n\r\n"),
	                 HTTP_E_SMUGGLE);
	assert_int_equal(preq("POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip"
	                      "\r\nHost: h\r\n\r\n"), HTTP_E_SMUGGLE);
	assert_int_equal(preq("POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n"
	                      "Transfer-Encoding: chunked\r\nHost: h\r\n\r\n"), HTTP_E_SMUGGLE);
	assert_int_equal(preq("POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"),
	                 HTTP_E_SMUGGLE);
	assert_true(preq("POST / HTTP/1.1\r\nTransfer-Encoding: gzip, Chunked\r\nHost: h\r\n\r\n")
	            > 0);
	assert_int_equal(req.body, HTTP_BODY_CHUNKED);
}

static void test_obs_fold_is_refused(void **state)
{
	assert_int_equal(preq("GET / HTTP/1.1\r\nX-A: a\r\n b\r\nHost: h\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\r\nX-A: a\r\n\tb\r\nHost: h\r\n\r\n"), HTTP_E_BAD);
}

static void test_space_before_colon_is_refused(void **state)
{
	assert_int_equal(preq("GET / HTTP/1.1\r\nHost : x\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\r\n: x\r\nHost: h\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\r\nNoColon\r\nHost: h\r\n\r\n"), HTTP_E_BAD);
}

static void test_bare_lf_is_refused(void **state)
{
	assert_int_equal(preq("GET / HTTP/1.1\nHost: x\n\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\r\nHost: x\n\r\n"), HTTP_E_BAD);
	assert_int_equal(presp("HTTP/1.1 200 OK\n\n", false), HTTP_E_BAD);
}

static void test_control_characters_in_values_are_refused(void **state)
{
	const char s[] = "GET / HTTP/1.1\r\nX: a\0b\r\nHost: h\r\n\r\n";
	assert_int_equal(http_parse_request(s, sizeof s - 1, &req), HTTP_E_BAD);
	assert_int_equal(preq("GET / HTTP/1.1\r\nX: a\rb\r\nHost: h\r\n\r\n"), HTTP_E_BAD);
	assert_true(preq("GET / HTTP/1.1\r\nX: a\tb \xc3\xa9\r\nHost: h\r\n\r\n") > 0);
}

static void test_too_large_head_is_refused(void **state)
{
	size_t n = HTTP_MAX_HEAD + 10;
	char *s = malloc(n);
	assert_non_null(s);
	memset(s, 'a', n);
	memcpy(s, "GET / HTTP/1.1\r\nHost: h\r\nX-Big: ", 32);
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
	size_t k = (size_t)snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 1; i < HTTP_MAX_HEADERS; i++)
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
	assert_true(preq("GET / HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
	assert_true(req.keep_alive);
	assert_true(preq("GET / HTTP/1.1\r\nConnection: foo, CLOSE\r\nHost: h\r\n\r\n") > 0);
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
	                 "Upgrade: websocket\r\nExpect: 100-Continue\r\nHost: h\r\n\r\n") > 0);
	assert_true(req.upgrade);
	assert_true(req.expect_continue);
	assert_true(preq("GET /ws HTTP/1.1\r\nUpgrade: websocket\r\nHost: h\r\n\r\n") > 0);
	assert_false(req.upgrade);
	assert_false(req.expect_continue);
	assert_true(preq("HEAD / HTTP/1.1\r\nHost: h\r\n\r\n") > 0);
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
	const char *after = "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
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
	/* the largest size: 2^60 - 1, a huge chunk */
	http_chunked c;
	http_chunked_init(&c);
	const char *big = "fffffffffffffff\r\nabc";
	assert_int_equal(http_chunked_scan(&c, big, strlen(big), &done),
	                 (ssize_t)strlen(big));
	assert_false(done);
	assert_true(c.remaining == (UINT64_C(1) << 60) - 1 - 3);
	/* 2^60 and more are refused, however they are split: a next hop
	 * with a signed or shorter size must not read another size */
	static const char *const over[] = {
		"1000000000000000\r\n", "ffffffffffffffff\r\n",
		"10000000000000000\r\n", "11111111111111111\r\n",
	};
	for (size_t i = 0; i < sizeof over / sizeof over[0]; i++) {
		assert_int_equal(scan_pieces(over[i], strlen(over[i]), 64, &done), -1);
		assert_int_equal(scan_pieces(over[i], strlen(over[i]), 1, &done), -1);
	}
	/* leading zeros do not count against the bound */
	const char *zeros = "00000000000000000000003\r\nabc\r\n0\r\n\r\n";
	assert_int_equal(scan_pieces(zeros, strlen(zeros), 1, &done),
	                 (ssize_t)strlen(zeros));
	assert_true(done);
}

/* RFC 9112 3.2: Host is required in HTTP/1.1, once, and must be
 * uri-host [":" port] (RFC 9110 7.2); HTTP/1.0 may go without. */
static void test_host_rules(void **state)
{
	static const struct { const char *head; int ok; } cases[] = {
		{ "GET / HTTP/1.1\r\n\r\n", 0 },                       /* missing */
		{ "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 0 },   /* two */
		{ "GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n", 0 },   /* two equal */
		{ "GET / HTTP/1.0\r\nHost: a\r\nHost: a\r\n\r\n", 0 },   /* 1.0 too */
		{ "GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 0 },         /* a list */
		{ "GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 0 },          /* space */
		{ "GET / HTTP/1.1\r\nHost: a\tb\r\n\r\n", 0 },         /* tab */
		{ "GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", 0 },        /* control */
		{ "GET / HTTP/1.1\r\nHost: a\x7f\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: h\xc3\xa9\r\n\r\n", 0 },    /* not ASCII */
		{ "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 0 },       /* userinfo */
		{ "GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 0 },          /* a path */
		{ "GET / HTTP/1.1\r\nHost: a?b\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a#b\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a\\b\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: \"a\"\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a:80x\r\n\r\n", 0 },        /* bad port */
		{ "GET / HTTP/1.1\r\nHost: a:80:81\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a%2\r\n\r\n", 0 },          /* short %XX */
		{ "GET / HTTP/1.1\r\nHost: a%zz\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 0 },         /* unclosed */
		{ "GET / HTTP/1.1\r\nHost: [zz::1]\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: [127.0.0.1]\r\n\r\n", 0 },  /* no ':' */
		{ "GET / HTTP/1.1\r\nHost: [::1]x\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: [v1.]\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: [v.a]\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: a]\r\n\r\n", 0 },
		{ "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: Example.COM:8080\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: 127.0.0.1:80\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: [fe80::1%25eth0]\r\n\r\n", 0 }, /* '%' */
		{ "GET / HTTP/1.1\r\nHost: [v1.fe80::a+en1]\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: my_host-1.internal~x\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: a%20b!$&'()*+;=\r\n\r\n", 1 },
		{ "GET / HTTP/1.1\r\nHost: a:\r\n\r\n", 1 },          /* empty port */
		{ "GET / HTTP/1.1\r\nHost:\r\n\r\n", 1 },             /* no authority */
		{ "GET / HTTP/1.1\r\nHost:   h  \r\n\r\n", 1 },       /* OWS trimmed */
		{ "GET / HTTP/1.0\r\n\r\n", 1 },                       /* 1.0: optional */
		{ "GET / HTTP/1.0\r\nHost: a b\r\n\r\n", 0 },          /* but valid */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		int rc = preq(cases[i].head);
		if (cases[i].ok)
			assert_int_equal(rc, (int)strlen(cases[i].head));
		else
			assert_int_equal(rc, HTTP_E_BAD);
	}
}

/* A repeated Content-Length with one value is taken, and forwarded as one
 * field (cl_rewrite); a single one as it is. */
static void test_repeated_content_length_is_rewritten(void **state)
{
	assert_true(preq("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\n") > 0);
	assert_false(req.cl_rewrite);
	assert_true(preq("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n") > 0);
	assert_true(req.cl_rewrite);
	assert_int_equal(req.content_length, 3);
	assert_true(preq("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
	                 "Content-Length: 3\r\n\r\n") > 0);
	assert_true(req.cl_rewrite);
	assert_true(presp("HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n", false) > 0);
	assert_false(resp.cl_drop);
	assert_false(resp.cl_emit);
	assert_true(presp("HTTP/1.1 200 OK\r\nContent-Length: 3,3\r\n\r\n", false) > 0);
	assert_true(resp.cl_drop);
	assert_true(resp.cl_emit);
	assert_int_equal(resp.content_length, 3);
	assert_int_equal(resp.body, HTTP_BODY_LENGTH);
	assert_true(resp.keep_alive);
	/* to HEAD: no body, the length still goes to the client as one field */
	assert_true(presp("HTTP/1.1 200 OK\r\nContent-Length: 9\r\n"
	                  "Content-Length: 9\r\n\r\n", true) > 0);
	assert_int_equal(resp.body, HTTP_BODY_NONE);
	assert_true(resp.cl_emit);
	assert_int_equal(resp.content_length, 9);
}

/* RFC 9112 6.3: in a response Transfer-Encoding overrides Content-Length,
 * which is not forwarded (cl_drop) and the connection not reused; a
 * coding other than chunked last is read until close. */
static void test_response_te_overrides_cl(void **state)
{
	assert_true(presp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	                  "Transfer-Encoding: chunked\r\n\r\n", false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_CHUNKED);
	assert_true(resp.has_te);
	assert_true(resp.cl_drop);
	assert_false(resp.cl_emit);
	assert_false(resp.keep_alive);
	assert_true(presp("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n"
	                  "Content-Length: 5\r\n\r\n", false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_UNTIL_CLOSE);
	assert_true(resp.cl_drop);
	assert_false(resp.cl_emit);
	assert_false(resp.keep_alive);
	/* to HEAD, the same fields: nothing to read, still no reuse */
	assert_true(presp("HTTP/1.1 200 OK\r\nContent-Length: 5\r\n"
	                  "Transfer-Encoding: chunked\r\n\r\n", true) > 0);
	assert_int_equal(resp.body, HTTP_BODY_NONE);
	assert_true(resp.cl_drop);
	assert_false(resp.keep_alive);
	assert_true(presp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	                  false) > 0);
	assert_true(resp.has_te);
	assert_false(resp.cl_drop);
	assert_true(resp.keep_alive);
	assert_int_equal(presp("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n"
	                       "Content-Length: 1, 2\r\n\r\n", false), HTTP_E_SMUGGLE);
}

/* RFC 9110 8.6, RFC 9112 6.1: a 1xx or 204 goes without Content-Length
 * and Transfer-Encoding; to HEAD and in a 304 they stay. */
static void test_no_framing_fields_in_1xx_and_204(void **state)
{
	static const char *const none[] = {
		"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n"
		"Transfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 100 Continue\r\nTransfer-Encoding: chunked\r\n\r\n",
	};
	for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
		assert_true(presp(none[i], false) > 0);
		assert_int_equal(resp.body, HTTP_BODY_NONE);
		assert_true(resp.cl_drop);
		assert_false(resp.cl_emit);
		assert_true(resp.te_drop);
	}
	assert_true(presp("HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n",
	                  false) > 0);
	assert_false(resp.cl_drop || resp.te_drop);
	assert_true(presp("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
	                  true) > 0);
	assert_int_equal(resp.body, HTTP_BODY_NONE);
	assert_false(resp.cl_drop || resp.te_drop);
}

/* RFC 9112 7.1: chunk-size [chunk-ext] CRLF, and nothing else. */
static void test_chunk_size_line_grammar(void **state)
{
	static const struct { const char *body; bool ok; } cases[] = {
		{ "5 6\r\nhello\r\n0\r\n\r\n", false },
		{ "5\t6\r\nhello\r\n0\r\n\r\n", false },
		{ "0x5\r\nhello\r\n0\r\n\r\n", false },
		{ "-5\r\nhello\r\n0\r\n\r\n", false },
		{ "+5\r\nhello\r\n0\r\n\r\n", false },
		{ " 5\r\nhello\r\n0\r\n\r\n", false },
		{ "5;\r\nhello\r\n0\r\n\r\n", false },          /* no name */
		{ "5;=x\r\nhello\r\n0\r\n\r\n", false },
		{ "5;a=\r\nhello\r\n0\r\n\r\n", false },        /* no value */
		{ "5;a b\r\nhello\r\n0\r\n\r\n", false },
		{ "5;a=b c\r\nhello\r\n0\r\n\r\n", false },
		{ "5;a=\"b\r\nhello\r\n0\r\n\r\n", false },     /* unclosed */
		{ "5;a=\"b\"c\r\nhello\r\n0\r\n\r\n", false },
		{ "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n", false },
		{ "5;a@b\r\nhello\r\n0\r\n\r\n", false },
		{ "5\r\nhello\r\n0 1\r\n\r\n", false },         /* last-chunk too */
		{ "5\r\nhello\r\n0;\r\n\r\n", false },
		{ "5\r\nhello\r\n0\r\n\r\n", true },
		{ "5 \r\nhello\r\n0\t\r\n\r\n", true },        /* trailing blanks */
		{ "5;a\r\nhello\r\n0\r\n\r\n", true },
		{ "5 ; a = b ; c\r\nhello\r\n0;last\r\n\r\n", true },
		{ "5;a=\"b c;\\\"d\\\\\";e=f\r\nhello\r\n0\r\n\r\n", true },
		{ "5;a=\"\xc3\xa9\"\r\nhello\r\n0\r\n\r\n", true },
		{ "00005\r\nhello\r\n0\r\n\r\n", true },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *b = cases[i].body;
		size_t n = strlen(b);
		bool done;
		ssize_t want = cases[i].ok ? (ssize_t)n : -1;
		assert_int_equal(scan_pieces(b, n, 64, &done), want);
		assert_int_equal(scan_pieces(b, n, 1, &done), want);
		if (cases[i].ok)
			assert_true(done);
	}
	/* NUL in an extension (strlen would stop at it) */
	static const char nul[] = "5;a\0b\r\nhello\r\n0\r\n\r\n";
	bool done;
	assert_int_equal(scan_pieces(nul, sizeof nul - 1, 64, &done), -1);
}

/* Trailer lines are field lines: token ":" field-value, nothing else. */
static void test_trailers_are_field_lines(void **state)
{
	static const struct { const char *body; bool ok; } cases[] = {
		{ "0\r\nX: a\x01b\r\n\r\n", false },      /* control character */
		{ "0\r\nX: a\x7f\r\n\r\n", false },
		{ "0\r\nNo Colon\r\n\r\n", false },
		{ "0\r\nNoColon\r\n\r\n", false },
		{ "0\r\n: x\r\n\r\n", false },              /* empty name */
		{ "0\r\nX : y\r\n\r\n", false },            /* blank before ':' */
		{ "0\r\nX(y): z\r\n\r\n", false },          /* not a token */
		{ "0\r\nX: a\r\n b\r\n\r\n", false },      /* obs-fold */
		{ "0\r\nX: a\rb\r\n\r\n", false },          /* bare CR */
		{ "0\r\nX: a\nb\r\n\r\n", false },          /* bare LF */
		{ "0\r\n\x80: a\r\n\r\n", false },
		{ "0\r\nX:y\r\n\r\n", true },
		{ "0\r\nX-A: a b\t\xc3\xa9\r\nX-B:\r\n\r\n", true },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		const char *b = cases[i].body;
		size_t n = strlen(b);
		bool done;
		ssize_t want = cases[i].ok ? (ssize_t)n : -1;
		assert_int_equal(scan_pieces(b, n, 64, &done), want);
		assert_int_equal(scan_pieces(b, n, 1, &done), want);
	}
	/* bounded: one line, and all of them */
	static char big[2 * HTTP_MAX_HEAD];
	size_t k = (size_t)snprintf(big, sizeof big, "0\r\nX: ");
	memset(big + k, 'a', 5000);
	memcpy(big + k + 5000, "\r\n\r\n", 4);
	bool done;
	assert_int_equal(scan_pieces(big, k + 5004, 512, &done), -1);
	k = (size_t)snprintf(big, sizeof big, "0\r\n");
	while (k < HTTP_MAX_HEAD + 100)
		k += (size_t)snprintf(big + k, sizeof big - k, "X-Trailer: %04zu\r\n", k);
	k += (size_t)snprintf(big + k, sizeof big - k, "\r\n");
	assert_int_equal(scan_pieces(big, k, 512, &done), -1);
}

/* RFC 9112 6.1: a request's codings before chunked must be ones a next
 * hop reads as we do; "identity" and unknown ones are a 501 (after the
 * smuggling checks: chunked not last is still a 400). A response's go
 * through, framed as chunked when it is last. */
static void test_unknown_transfer_codings_are_refused(void **state)
{
	static const char *const bad[] = {
		"identity, chunked", "foo, chunked", "gzip, identity, chunked",
		"gzip2, chunked", "trailers, chunked", "\"gzip\", chunked",
	};
	char s[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: h\r\n"
		         "Transfer-Encoding: %s\r\n\r\n", bad[i]);
		assert_int_equal(preq(s), HTTP_E_CODING);
	}
	assert_int_equal(preq("POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: identity\r\n"
	                      "Transfer-Encoding: chunked\r\n\r\n"), HTTP_E_CODING);
	assert_int_equal(preq("POST / HTTP/1.1\r\nHost: h\r\n"
	                      "Transfer-Encoding: foo\r\n\r\n"), HTTP_E_SMUGGLE);
	static const char *const good[] = {
		"gzip, chunked", "x-gzip, deflate, chunked", "COMPRESS, X-Compress, chunked",
		"gzip;level=1, chunked", ", chunked", "chunked",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: h\r\n"
		         "Transfer-Encoding: %s\r\n\r\n", good[i]);
		assert_int_equal(preq(s), (int)strlen(s));
		assert_int_equal(req.body, HTTP_BODY_CHUNKED);
	}
	assert_true(presp("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity, chunked\r\n\r\n",
	                  false) > 0);
	assert_int_equal(resp.body, HTTP_BODY_CHUNKED);
}

/* A Content-Length list may repeat one length, never hold an empty
 * member: next hops skip it, refuse it or read it as 0. */
static void test_content_length_empty_members_are_refused(void **state)
{
	static const char *const bad[] = {
		",5", "5,", ", 5", "5 ,", "5,,5", "5, ,5", ",", " , ", "5, 5,",
	};
	char s[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: h\r\n"
		         "Content-Length: %s\r\n\r\n", bad[i]);
		assert_int_equal(preq(s), HTTP_E_BAD);
		snprintf(s, sizeof s, "HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\n", bad[i]);
		assert_int_equal(presp(s, false), HTTP_E_BAD);
	}
	static const char *const good[] = { "5", "5,5", "5 , 5", "\t5\t,\t5", "005, 5" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		snprintf(s, sizeof s, "POST / HTTP/1.1\r\nHost: h\r\n"
		         "Content-Length: %s\r\n\r\n", good[i]);
		assert_int_equal(preq(s), (int)strlen(s));
		assert_int_equal(req.content_length, 5);
		assert_int_equal(req.cl_rewrite, strchr(good[i], ',') != NULL);
	}
}

/* RFC 9110 6.5.1: framing, routing, connection and content-format fields
 * are refused in trailers, however the name is cased or split. */
static void test_framing_fields_in_trailers_are_refused(void **state)
{
	static const char *const bad[] = {
		"Content-Length: 50", "content-length:5", "Transfer-Encoding: chunked",
		"Trailer: X", "HOST: evil", "Connection: close", "Keep-Alive: 5",
		"Proxy-Connection: x", "TE: trailers", "te:x", "Upgrade: h2c",
		"Content-Encoding: gzip", "Content-Type: text/plain",
		"Content-Range: bytes 0-1/2", "X-Ok: 1\r\nHost: evil",
	};
	char s[256];
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int n = snprintf(s, sizeof s, "5\r\nhello\r\n0\r\n%s\r\n\r\n", bad[i]);
		bool done;
		assert_int_equal(scan_pieces(s, (size_t)n, 64, &done), -1);
		assert_int_equal(scan_pieces(s, (size_t)n, 1, &done), -1);
	}
	/* names that begin or end like a forbidden one are other fields */
	static const char *const good[] = {
		"Content-Lengthy: 1", "Content: 1", "Hosts: a", "Hos: a", "X-Host: a",
		"T: 1", "TEX: 1", "Trailers: 1", "Trailer-One: a", "Content-MD5: x",
		"Upgrade-Insecure-Requests: 1", "Connection-Id: 3", "grpc-status: 0",
	};
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
		int n = snprintf(s, sizeof s, "5\r\nhello\r\n0\r\n%s\r\n\r\n", good[i]);
		bool done;
		assert_int_equal(scan_pieces(s, (size_t)n, 64, &done), n);
		assert_true(done);
		assert_int_equal(scan_pieces(s, (size_t)n, 1, &done), n);
		assert_true(done);
	}
}

/* RFC 9112 3.2: each target form only with the methods that take it; an
 * absolute-form's authority (valid, no userinfo, not empty) wins over
 * Host and is handed out with what follows it. */
static void test_request_target_forms(void **state)
{
	static const struct { const char *line; int form; } cases[] = {
		{ "GET /a?b", HTTP_FORM_ORIGIN },
		{ "OPTIONS /a", HTTP_FORM_ORIGIN },
		{ "OPTIONS *", HTTP_FORM_ASTERISK },
		{ "CONNECT x:443", HTTP_FORM_AUTHORITY },
		{ "CONNECT [::1]:443", HTTP_FORM_AUTHORITY },
		{ "GET http://x/abs", HTTP_FORM_ABSOLUTE },
		{ "GET HTTPS://x", HTTP_FORM_ABSOLUTE },
		{ "GET *", -1 }, { "POST *", -1 }, { "OPTIONS **", -1 },
		{ "GET x:80", -1 }, { "GET x", -1 }, { "PUT localhost:80/a", -1 },
		{ "CONNECT /", -1 }, { "CONNECT x", -1 }, { "CONNECT x:", -1 },
		{ "CONNECT u@x:443", -1 }, { "CONNECT http://x/", -1 },
		{ "CONNECT [::1]", -1 }, { "CONNECT *", -1 },
		{ "GET http://u:p@x/abs", -1 }, { "GET http://@x/", -1 },
		{ "GET http:///abs", -1 }, { "GET http://", -1 }, { "GET http:/x/", -1 },
		{ "GET http://a,b/", -1 }, { "GET ftp://x/", -1 }, { "GET ws://x/", -1 },
		{ "GET urn:x", -1 }, { "get x:80", -1 },
	};
	char s[256];
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		snprintf(s, sizeof s, "%s HTTP/1.1\r\nHost: h\r\n\r\n", cases[i].line);
		int rc = preq(s);
		if (cases[i].form < 0) {
			assert_int_equal(rc, HTTP_E_BAD);
			continue;
		}
		assert_int_equal(rc, (int)strlen(s));
		assert_int_equal(req.form, cases[i].form);
	}
	static const struct { const char *target, *auth, *path; } abs[] = {
		{ "http://evil/abs", "evil", "/abs" },
		{ "Http://X:8080?q=1", "X:8080", "?q=1" },
		{ "https://[::1]:80/a/b?c", "[::1]:80", "/a/b?c" },
		{ "http://x#f", "x", "#f" },
		{ "http://x", "x", "" },
	};
	for (size_t i = 0; i < sizeof abs / sizeof abs[0]; i++) {
		snprintf(s, sizeof s, "GET %s HTTP/1.1\r\nHost: other\r\n\r\n", abs[i].target);
		assert_int_equal(preq(s), (int)strlen(s));
		assert_int_equal(req.form, HTTP_FORM_ABSOLUTE);
		assert_true(span_is(req.authority, req.authority_len, abs[i].auth));
		assert_true(span_is(req.path, req.path_len, abs[i].path));
		assert_true(span_is(req.target, req.target_len, abs[i].target));
	}
	/* the Host field is still checked, and needed in HTTP/1.1 */
	assert_int_equal(preq("GET http://x/ HTTP/1.1\r\n\r\n"), HTTP_E_BAD);
	assert_int_equal(preq("GET http://x/ HTTP/1.1\r\nHost: a b\r\n\r\n"), HTTP_E_BAD);
	assert_true(preq("GET http://x/ HTTP/1.0\r\n\r\n") > 0);
	/* the version is judged before the target */
	assert_int_equal(preq("GET * HTTP/2.0\r\n\r\n"), HTTP_E_VERSION);
}

/* h2c smuggling: an HTTP/2 offer in Upgrade is taken as absent; with no
 * other protocol offered the request is no upgrade at all. */
static void test_h2_upgrade_is_not_offered(void **state)
{
	assert_true(preq("GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, HTTP2-Settings\r\n"
	                 "Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAAP__\r\n\r\n") > 0);
	assert_false(req.upgrade);
	assert_true(req.upgrade_h2);
	assert_true(req.keep_alive);
	static const char *const none[] = { "h2c", "H2C/1.0", "h2", "h2c, h2", " , h2c" };
	static const char *const other[] = { "websocket, h2c", "h2c, websocket",
	                                     "h2c/2, foo/1" };
	char s[256];
	for (size_t i = 0; i < sizeof none / sizeof none[0]; i++) {
		snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
		         "Upgrade: %s\r\n\r\n", none[i]);
		assert_true(preq(s) > 0);
		assert_false(req.upgrade);
		assert_true(req.upgrade_h2);
	}
	for (size_t i = 0; i < sizeof other / sizeof other[0]; i++) {
		snprintf(s, sizeof s, "GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
		         "Upgrade: %s\r\n\r\n", other[i]);
		assert_true(preq(s) > 0);
		assert_true(req.upgrade);
		assert_true(req.upgrade_h2);
	}
	/* a second Upgrade line counts too */
	assert_true(preq("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
	                 "Upgrade: h2c\r\nUpgrade: websocket\r\n\r\n") > 0);
	assert_true(req.upgrade);
	assert_true(preq("GET / HTTP/1.1\r\nHost: h\r\nConnection: upgrade\r\n"
	                 "Upgrade: websocket\r\n\r\n") > 0);
	assert_true(req.upgrade);
	assert_false(req.upgrade_h2);
	assert_true(http_upgrade_is_h2("h2c/1", 5));
	assert_true(http_upgrade_is_h2("H2", 2));
	assert_false(http_upgrade_is_h2("h2cx", 4));
	assert_false(http_upgrade_is_h2("h", 1));
	assert_false(http_upgrade_is_h2("websocket", 9));
}

static void test_hop_by_hop_headers(void **state)
{
	assert_true(preq("GET / HTTP/1.1\r\nConnection: X-Secret, keep-alive\r\n"
	                 "Keep-Alive: 5\r\nX-Secret: s\r\nX-Public: p\r\n"
	                 "Transfer-Encoding: chunked\r\nTE: trailers\r\n"
	                 "Proxy-Authorization: b\r\nUpgrade: h2c\r\nHost: h\r\n\r\n") > 0);
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
	                 "Upgrade: ws\r\nKeep-Alive: 5\r\nX-A: a\r\nHost: h\r\n\r\n") > 0);
	assert_false(req.conn_names);
	assert_true(http_is_hop_by_hop(&req.headers[0], req.headers, 0));
	assert_true(http_is_hop_by_hop(&req.headers[1], req.headers, 0));
	assert_true(http_is_hop_by_hop(&req.headers[2], req.headers, 0));
	assert_false(http_is_hop_by_hop(&req.headers[3], req.headers, 0));
	assert_true(preq("GET / HTTP/1.1\r\nConnection: close\r\nClose: x\r\nHost: h\r\n\r\n") > 0);
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
	                 "Connectiom: 1\r\nHost: h\r\n\r\n") > 0);
	for (size_t i = 0; i < req.n_headers; i++)
		assert_false(http_is_hop_by_hop(&req.headers[i], req.headers, 0));
}

/* Header lines are found by their LF; a CR anywhere else in a line, a
 * bare LF, or a line still incomplete must come out as before. */
static void test_header_line_ends(void **state)
{
	static const struct { const char *head; int want; } cases[] = {
		{ "GET / HTTP/1.1\r\nX\r: a\r\nHost: h\r\n\r\n", HTTP_E_BAD },   /* CR in a name */
		{ "GET / HTTP/1.1\r\n\rX: a\r\nHost: h\r\n\r\n", HTTP_E_BAD },   /* CR first */
		{ "GET / HTTP/1.1\r\nX: a\r\r\nHost: h\r\n\r\n", HTTP_E_BAD },   /* CR in a value */
		{ "GET / HTTP/1.1\r\n\nX: a\r\nHost: h\r\n\r\n", HTTP_E_BAD },   /* bare LF first */
		{ "GET / HTTP/1.1\r\nX: a\rb", HTTP_E_BAD },            /* incomplete, bare CR */
		{ "GET / HTTP/1.1\r\nX: ab", HTTP_INCOMPLETE },
		{ "GET / HTTP/1.1\r\nX: ab\r", HTTP_INCOMPLETE },
		{ "GET / HTTP/1.1\r\nX: ab\r\n", HTTP_INCOMPLETE },
		{ "GET / HTTP/1.1\r\nX: ab\r\n\r", HTTP_INCOMPLETE },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
		assert_int_equal(preq(cases[i].head), cases[i].want);
	assert_true(preq("GET / HTTP/1.1\r\nX: ab\r\nHost: h\r\n\r\n") > 0);
	assert_int_equal((int)req.n_headers, 2);
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
	assert_true(preq("GET / HTTP/1.1\r\nHost: h\r\nx-tAg: a\r\nX-Tag: b\r\n\r\n") > 0);
	const http_header *h = http_find_header(req.headers, req.n_headers, "X-TAG");
	assert_non_null(h);
	assert_true(span_is(h->value, h->value_len, "a"));
	assert_null(http_find_header(req.headers, req.n_headers, "X-Ta"));
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
		cmocka_unit_test(test_host_rules),
		cmocka_unit_test(test_repeated_content_length_is_rewritten),
		cmocka_unit_test(test_response_te_overrides_cl),
		cmocka_unit_test(test_no_framing_fields_in_1xx_and_204),
		cmocka_unit_test(test_chunk_size_line_grammar),
		cmocka_unit_test(test_trailers_are_field_lines),
		cmocka_unit_test(test_unknown_transfer_codings_are_refused),
		cmocka_unit_test(test_content_length_empty_members_are_refused),
		cmocka_unit_test(test_framing_fields_in_trailers_are_refused),
		cmocka_unit_test(test_request_target_forms),
		cmocka_unit_test(test_h2_upgrade_is_not_offered),
		cmocka_unit_test(test_hop_by_hop_headers),
		cmocka_unit_test(test_connection_names_flag),
		cmocka_unit_test(test_header_line_ends),
		cmocka_unit_test(test_connection_cannot_strip_framing),
		cmocka_unit_test(test_find_header_is_case_insensitive),
		cmocka_unit_test(test_reason_phrases),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
