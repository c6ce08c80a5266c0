/* test_log.c - one event is one line whatever it holds (issue 8 item 9):
 * log_msg in both formats, and the escaping that canaryctl's text output
 * shares. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

/* Runs log_msg(LOG_INFO, <canary>, "%s", <msg>) with stderr sent to a
 * temporary file; returns what was written (caller frees). */
static char *capture(const char *canary, const char *msg)
{
	FILE *tmp = tmpfile();
	assert_non_null(tmp);
	fflush(stderr);
	int saved = dup(fileno(stderr));
	assert_true(saved >= 0);
	assert_true(dup2(fileno(tmp), fileno(stderr)) >= 0);
	log_msg(LOG_INFO, canary, "%s", msg);
	fflush(stderr);
	assert_true(dup2(saved, fileno(stderr)) >= 0);
	close(saved);
	off_t n = lseek(fileno(tmp), 0, SEEK_END);
	assert_true(n >= 0);
	char *out = calloc(1, (size_t)n + 1);
	assert_true(pread(fileno(tmp), out, (size_t)n, 0) == n);
	fclose(tmp);
	return out;
}

static size_t count_char(const char *s, char c)
{
	size_t n = 0;
	for (; *s; s++)
		n += *s == c;
	return n;
}

/* The forgery of the issue: a revision with a newline and a fake line. */
static const char forged[] =
	"rollout of v2\n2026-01-01T00:00:00.000Z info web: promoted\rDONE\x1b[2J\x7f";

static void test_text_line_cannot_be_forged(void **state)
{
	assert_int_equal(log_setup("text", "info"), 0);
	char *out = capture("web\nx", forged);
	assert_int_equal(count_char(out, '\n'), 1);
	assert_int_equal(out[strlen(out) - 1], '\n');
	assert_null(strchr(out, '\r'));
	assert_null(strchr(out, '\x1b'));
	assert_null(strchr(out, '\x7f'));
	assert_non_null(strstr(out, " info web\\nx: rollout of v2\\n2026-01-01T00:00:00.000Z info "
	                            "web: promoted\\rDONE\\x1b[2J\\x7f\n"));
	free(out);
}

static void test_json_line_is_one_valid_object(void **state)
{
	assert_int_equal(log_setup("json", "info"), 0);
	/* C1 NEL, U+2028 and a byte that is not UTF-8 on top of the forgery */
	char msg[256];
	snprintf(msg, sizeof msg, "%s \xc2\x85 \xe2\x80\xa8 \xff end", forged);
	char *out = capture("web", msg);
	assert_int_equal(count_char(out, '\n'), 1);
	json_error_t jerr;
	json_t *j = json_loads(out, 0, &jerr);
	assert_non_null(j);
	assert_string_equal(json_string_value(json_object_get(j, "canary")), "web");
	const char *m = json_string_value(json_object_get(j, "msg"));
	assert_non_null(m);
	/* the escapes decode back to the message, the bad byte to U+FFFD */
	assert_non_null(strstr(m, "v2\n2026"));
	assert_non_null(strstr(m, "\xc2\x85 \xe2\x80\xa8 \xef\xbf\xbd end"));
	/* and the line itself holds none of them raw */
	assert_null(strstr(out, "\xc2\x85"));
	assert_null(strstr(out, "\xe2\x80\xa8"));
	assert_null(strchr(out, '\x7f'));
	json_decref(j);
	free(out);
	log_setup("text", NULL);
}

static void test_unsafe_at_finds_each_class(void **state)
{
	static const struct {
		const char *s;
		size_t at;
		unsigned cp;
	} rows[] = {
		{ "plain v1.2-3 ok", 15, 0 },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x90\xa4", 14, 0 }, /* é € 🐤 are fine */
		{ "a\nb", 1, '\n' },
		{ "tab\there", 3, '\t' },
		{ "nul\0x", 3, 0 },
		{ "del\x7f", 3, 0x7f },
		{ "c1 \xc2\x85", 3, 0x85 },
		{ "c1 \xc2\x9b", 3, 0x9b },
		{ "ls \xe2\x80\xa8", 3, 0x2028 },
		{ "ps \xe2\x80\xa9", 3, 0x2029 },
		{ "bad \xff", 4, 0xff },
		{ "overlong \xc0\xaf", 9, 0xc0 },
		{ "surrogate \xed\xa0\x80", 10, 0xed },
		{ "cut \xe2\x82", 4, 0xe2 },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		size_t len = strlen(rows[i].s);
		if (strncmp(rows[i].s, "nul", 3) == 0)
			len = 5;
		unsigned cp = 12345;
		size_t at = log_unsafe_at(rows[i].s, len, &cp);
		assert_int_equal(at, rows[i].at);
		if (at < len)
			assert_int_equal(cp, rows[i].cp);
	}
}

static void test_escape_forms(void **state)
{
	buf b = BUF_INIT;
	static const char in[] = "a\nb\rc\td\x01" "e\x7f" "f\xc2\x85g\xe2\x80\xa9h\xffi\\n";
	log_escape(&b, in, sizeof in - 1);
	assert_string_equal(b.p, "a\\nb\\rc\\td\\x01e\\x7ff\\u0085g\\u2029h\\xffi\\n");
	assert_int_equal(log_unsafe_at(b.p, b.len, NULL), b.len);
	buf_release(&b);
	log_escape_json(&b, in, sizeof in - 1);
	assert_string_equal(b.p, "\"a\\nb\\rc\\td\\u0001e\\u007ff\\u0085g\\u2029h\\ufffdi\\\\n\"");
	buf_release(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_text_line_cannot_be_forged),
		cmocka_unit_test(test_json_line_is_one_valid_object),
		cmocka_unit_test(test_unsafe_at_finds_each_class),
		cmocka_unit_test(test_escape_forms),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
