/* test_util.c - the small parsers every outside value goes through:
 * durations (config, flags, templates' {{ interval }}), HOST:PORT, canary
 * names, URL escaping and token files. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

static void assert_duration(const char *s, uint64_t want)
{
	uint64_t ms = 12345;
	if (util_parse_duration(s, &ms) != 0)
		print_message("'%s' refused\n", s);
	assert_int_equal(util_parse_duration(s, &ms), 0);
	assert_int_equal(ms, want);
}

static void assert_not_duration(const char *s)
{
	uint64_t ms = 0;
	if (util_parse_duration(s, &ms) == 0)
		print_message("'%s' read as %llu ms\n", s, (unsigned long long)ms);
	assert_int_equal(util_parse_duration(s, &ms), -1);
}

static void test_durations_as_go_and_prometheus_write_them(void **state)
{
	assert_duration("0", 0);
	assert_duration("500ms", 500);
	assert_duration("2s", 2000);
	assert_duration("1m", 60000);
	assert_duration("1h30m", 5400000);
	assert_duration("1.5s", 1500);
	assert_duration(".5s", 500);
	assert_duration("1.s", 1000);
	assert_duration("1d", 86400000);
	assert_duration("1s250ms", 1250);
	assert_duration("1000us", 1);
}

/* The number before a unit is digits with an optional fraction. strtod
 * alone took hexadecimal, exponents and signs: "0x10s" was 16 seconds,
 * "1e3ms" one second. */
static void test_only_decimal_digits_before_a_unit(void **state)
{
	static const char *const bad[] = { "0x10s", "0x1p4s", "1e3ms", "1E3ms", "+1s", "-1s",
	                                   "1.5e1s", ".s", "s", "1", "1 s", " 1s", "1s ",
	                                   "infs", "nans", "1.2.3s", "0.0001ms", "" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_not_duration(bad[i]);
}

/* What util_format_duration writes must read back as the same duration,
 * in Go and in PromQL ({{ interval }} lands in a range selector, where
 * Prometheus takes [0-9]+ units only: no fraction, no exponent). It wrote
 * "%.3gs": 1234 ms became "1.23s" (1230 ms), 100500 ms "1e+02s". */
static void test_formatted_durations_read_back_exactly(void **state)
{
	static const struct { uint64_t ms; const char *want; } cases[] = {
		{ 0, "0s" },          { 250, "250ms" },     { 1000, "1s" },
		{ 1234, "1s234ms" },  { 61500, "1m1s500ms" }, { 90000, "1m30s" },
		{ 100500, "1m40s500ms" }, { 3600000, "1h" }, { 5400001, "1h30m1ms" },
		{ 86400000, "24h" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char out[40];
		util_format_duration(cases[i].ms, out, sizeof out);
		assert_string_equal(out, cases[i].want);
		assert_duration(out, cases[i].ms);
	}
	for (uint64_t ms = 1; ms < 200000; ms = ms * 3 + 7) {
		char out[40];
		util_format_duration(ms, out, sizeof out);
		assert_null(strpbrk(out, ".e+"));
		assert_duration(out, ms);
	}
}

static void assert_hostport(const char *s, const char *host, int port)
{
	char h[64] = "";
	int p = 0;
	if (util_parse_hostport(s, h, sizeof h, &p) != 0)
		print_message("'%s' refused\n", s);
	assert_int_equal(util_parse_hostport(s, h, sizeof h, &p), 0);
	assert_string_equal(h, host);
	assert_int_equal(p, port);
}

static void test_host_and_port(void **state)
{
	assert_hostport("127.0.0.1:8080", "127.0.0.1", 8080);
	assert_hostport("[::1]:9", "::1", 9);
	assert_hostport("[fe80::1%eth0]:80", "fe80::1%eth0", 80);
	assert_hostport("localhost:65535", "localhost", 65535);
	assert_hostport("app.internal:9001", "app.internal", 9001);
	assert_hostport("my_svc-1.ns.svc:1", "my_svc-1.ns.svc", 1);
}

/* A host is a name or an address: control characters, blanks and URL or
 * header syntax in it would go on to logs, status and Host headers. */
static void test_host_is_a_name_or_an_address(void **state)
{
	static const char *const bad[] = {
		"a b:80", "a\nb:80", "a\x01:80", "a/b:80", "user@host:80", "h?x:80", "h#x:80",
		"h,i:80", "h\"i:80", "caf\xc3\xa9:80", "[::1\n]:80", "[a b]:80", "[]:80", "[::1]",
		":80", "h:", "h:0", "h:65536", "h:+80", "h:8 0", "::1:80", "h:80x",
	};
	char h[64];
	int p;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		if (util_parse_hostport(bad[i], h, sizeof h, &p) == 0)
			print_message("'%s' accepted as host '%s' port %d\n", bad[i], h, p);
		assert_int_equal(util_parse_hostport(bad[i], h, sizeof h, &p), -1);
	}
}

/* Canary names: Kubernetes' DNS label, for the configuration and the API
 * alike (the API had a looser copy that took "-a" and "a-"). */
static void test_names_are_dns_labels(void **state)
{
	static const char *const good[] = { "a", "shop", "web-2", "0", "a-b-c",
	                                    "123456789012345678901234567890123456789012345678901234567890123" };
	static const char *const bad[] = { "", "-a", "a-", "A", "a_b", "a.b", "a b", "caf\xc3\xa9",
	                                   "1234567890123456789012345678901234567890123456789012345678901234" };
	for (size_t i = 0; i < sizeof good / sizeof good[0]; i++)
		assert_true(util_valid_name(good[i]));
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		assert_false(util_valid_name(bad[i]));
}

/* One escaping for URLs: the query of a Prometheus read, {{ }} values in a
 * web metric's URL, and canaryctl's paths. */
static void test_url_escape_keeps_only_unreserved(void **state)
{
	buf b = BUF_INIT;
	buf_puts(&b, "q=");
	buf_url_escape(&b, "sum(rate(x{a=\"b c\"}[1m])) / 2~._-\xc3\xa9");
	assert_string_equal(b.p, "q=sum%28rate%28x%7Ba%3D%22b%20c%22%7D%5B1m%5D%29%29%20%2F%202~._-%C3%A9");
	buf_release(&b);
	buf_puts(&b, "");
	buf_url_escape(&b, "");
	assert_string_equal(b.p, "");
	buf_release(&b);
}

/* A token file as canaryd and canaryctl read it. */
typedef struct seen_tokens {
	char names[4][32], secrets[4][32];
	int lines[4];
	int n, stop_after;
} seen_tokens;

static int collect(void *arg, const char *name, const char *secret, int line, char *err,
                   size_t errlen)
{
	seen_tokens *s = arg;
	snprintf(s->names[s->n], sizeof s->names[0], "%s", name);
	snprintf(s->secrets[s->n], sizeof s->secrets[0], "%s", secret);
	s->lines[s->n] = line;
	s->n++;
	return s->n == s->stop_after ? 1 : 0;
}

static const char *write_file(const char *text)
{
	static char path[] = "/tmp/canaryd-test-tokens-XXXXXX";
	snprintf(path, sizeof path, "%s", "/tmp/canaryd-test-tokens-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static void test_token_files(void **state)
{
	char err[256];
	seen_tokens s = { .stop_after = 0 };
	const char *p = write_file("# tokens\n\n  alice  s3cret \nbare\t\n\tbob\tt0k\n");
	assert_int_equal(util_read_tokens(p, collect, &s, err, sizeof err), 0);
	assert_int_equal(s.n, 3);
	assert_string_equal(s.names[0], "alice");
	assert_string_equal(s.secrets[0], "s3cret");
	assert_int_equal(s.lines[0], 3);
	assert_string_equal(s.names[1], "token");
	assert_string_equal(s.secrets[1], "bare");
	assert_string_equal(s.names[2], "bob");
	assert_string_equal(s.secrets[2], "t0k");
	/* canaryctl stops at the first */
	memset(&s, 0, sizeof s);
	s.stop_after = 1;
	assert_int_equal(util_read_tokens(p, collect, &s, err, sizeof err), 1);
	assert_int_equal(s.n, 1);
	unlink(p);

	memset(&s, 0, sizeof s);
	p = write_file("a b c\n");
	assert_int_equal(util_read_tokens(p, collect, &s, err, sizeof err), -1);
	assert_non_null(strstr(err, ":1: expected 'NAME TOKEN' or 'TOKEN'"));
	assert_int_equal(s.n, 0);
	unlink(p);

	p = write_file("# nothing\n\n");
	assert_int_equal(util_read_tokens(p, collect, &s, err, sizeof err), -1);
	assert_non_null(strstr(err, "holds no token"));
	unlink(p);

	assert_int_equal(util_read_tokens("/nonexistent/tokens", collect, &s, err, sizeof err), -1);
	assert_non_null(strstr(err, "cannot read token file '/nonexistent/tokens': No such file"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_durations_as_go_and_prometheus_write_them),
		cmocka_unit_test(test_only_decimal_digits_before_a_unit),
		cmocka_unit_test(test_formatted_durations_read_back_exactly),
		cmocka_unit_test(test_host_and_port),
		cmocka_unit_test(test_host_is_a_name_or_an_address),
		cmocka_unit_test(test_names_are_dns_labels),
		cmocka_unit_test(test_url_escape_keeps_only_unreserved),
		cmocka_unit_test(test_token_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
