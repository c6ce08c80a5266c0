/* test_ctl_out.c - canaryctl's pure output helpers: edit distance and "did
 * you mean", display width and help wrapping, times and ages, tables, the
 * output formats and when colour is wanted. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl_out.h"

static void test_distance_counts_edits_and_swaps(void **state)
{
	assert_int_equal(out_distance("status", "status"), 0);
	assert_int_equal(out_distance("", "abc"), 3);
	assert_int_equal(out_distance("abc", ""), 3);
	assert_int_equal(out_distance("stauts", "status"), 1);   /* a swap */
	assert_int_equal(out_distance("stats", "status"), 1);    /* a deletion */
	assert_int_equal(out_distance("statuss", "status"), 1);  /* an insertion */
	assert_int_equal(out_distance("statis", "status"), 1);   /* a substitution */
	assert_int_equal(out_distance("kitten", "sitting"), 3);
	assert_int_equal(out_distance("ca", "abc"), 3);          /* OSA, not Damerau */
	/* symmetric */
	assert_int_equal(out_distance("--wacth", "--watch"), out_distance("--watch", "--wacth"));
	/* too long to be a typo: above every bound, and no overflow */
	char a[200];
	memset(a, 'a', sizeof a - 1);
	a[sizeof a - 1] = '\0';
	assert_true(out_distance(a, "a") > 3);
}

static void test_nearest_suggests_only_what_is_near(void **state)
{
	static const char *const cmds[] = { "status", "list", "get", "rollout", "wait", "pause",
	                                    "resume", "approve", "abort", NULL };
	assert_string_equal(out_nearest("stauts", cmds), "status");
	assert_string_equal(out_nearest("lst", cmds), "list");
	assert_string_equal(out_nearest("aprove", cmds), "approve");
	assert_string_equal(out_nearest("rollot", cmds), "rollout");
	/* the exact word is no typo */
	assert_null(out_nearest("status", cmds));
	/* nothing near */
	assert_null(out_nearest("frobnicate", cmds));
	assert_null(out_nearest("xyz", cmds));
	/* short words get one edit only: "gt" is 1 from "get", "qq" nothing */
	assert_string_equal(out_nearest("gt", cmds), "get");
	assert_null(out_nearest("qq", cmds));
	/* a candidate that begins the word, when no edit is near */
	static const char *const opts[] = { "--reason", "--server", NULL };
	assert_string_equal(out_nearest("--reason-text", opts), "--reason");
	assert_string_equal(out_nearest("--serv", opts), "--server");
	assert_null(out_nearest("-", opts));
	static const char *const none[] = { NULL };
	assert_null(out_nearest("status", none));
}

static void test_width_counts_code_points(void **state)
{
	assert_int_equal(out_width(""), 0);
	assert_int_equal(out_width("abc"), 3);
	assert_int_equal(out_width("caf\xc3\xa9"), 4);          /* café */
	assert_int_equal(out_width("\xe2\x86\x92 x"), 3);       /* "→ x" */
}

/* Every line of <s> at most <w> columns. */
static void assert_fits(const char *s, size_t w)
{
	const char *p = s;
	while (*p) {
		size_t l = strcspn(p, "\n");
		char line[512];
		snprintf(line, sizeof line, "%.*s", (int)l, p);
		if (out_width(line) > w)
			print_message("too wide (%zu): '%s'\n", out_width(line), line);
		assert_true(out_width(line) <= w);
		p += l + (p[l] == '\n');
	}
}

static void test_wrap_fits_the_width_and_keeps_every_word(void **state)
{
	const char *text = "Block until the rollout of NAME ends: exit 0 Succeeded, 1 Failed "
	                   "(rolled back), 3 after --timeout, 4 canaryd unreachable. On a terminal "
	                   "it shows each step and check live in one block.";
	buf b = BUF_INIT;
	buf_puts(&b, "  ");
	out_wrap(&b, text, 2, 2, 80);
	assert_fits(b.p, 80);
	/* the words, in order, nothing lost or added */
	char *flat = strdup(b.p);
	for (char *p = flat; *p; p++)
		if (*p == '\n')
			*p = ' ';
	char *w1 = flat, *w2 = (char *)text;
	for (;;) {
		while (*w1 == ' ')
			w1++;
		while (*w2 == ' ')
			w2++;
		size_t l1 = strcspn(w1, " "), l2 = strcspn(w2, " ");
		assert_int_equal(l1, l2);
		assert_memory_equal(w1, w2, l1);
		if (!l1)
			break;
		w1 += l1;
		w2 += l2;
	}
	free(flat);
	/* continuation lines are indented */
	assert_non_null(strstr(b.p, "\n  "));
	assert_int_equal(b.p[b.len - 1], '\n');
	/* a word wider than the room is alone on its line, unbroken */
	buf_reset(&b);
	out_wrap(&b, "a 0123456789012345678901234567890123456789 b", 0, 4, 20);
	assert_string_equal(b.p, "a\n    0123456789012345678901234567890123456789\n    b\n");
	/* starting at column 70 of an 80-column line */
	buf_reset(&b);
	out_wrap(&b, "one two three", 70, 8, 80);
	assert_string_equal(b.p, "one two\n        three\n");
	buf_release(&b);
}

static void test_times_and_ages(void **state)
{
	uint64_t ms;
	assert_int_equal(out_parse_time("1970-01-01T00:00:00Z", &ms), 0);
	assert_int_equal(ms, 0);
	assert_int_equal(out_parse_time("2026-01-02T03:04:05.678Z", &ms), 0);
	assert_int_equal(ms, 1767323045678ULL);
	assert_int_equal(out_parse_time("2026-01-02T03:04:05.6Z", &ms), 0);
	assert_int_equal(ms % 1000, 600);
	assert_int_equal(out_parse_time("2026-01-02T03:04:05.123456Z", &ms), 0);
	assert_int_equal(ms % 1000, 123);
	assert_int_equal(out_parse_time("2026-01-02T03:04:05+00:00", &ms), 0);
	assert_int_equal(out_parse_time("2026-01-02T03:04:05+02:00", &ms), -1);
	assert_int_equal(out_parse_time("2026-01-02T03:04:05.Z", &ms), -1);
	assert_int_equal(out_parse_time("2026-01-02", &ms), -1);
	assert_int_equal(out_parse_time("", &ms), -1);
	assert_int_equal(out_parse_time(NULL, &ms), -1);
	char a[16];
	out_age(0, a, sizeof a);
	assert_string_equal(a, "0s");
	out_age(119999, a, sizeof a);
	assert_string_equal(a, "119s");
	out_age(120000, a, sizeof a);
	assert_string_equal(a, "2m");
	out_age(7200000, a, sizeof a);
	assert_string_equal(a, "2h");
	out_age(3ULL * 86400000, a, sizeof a);
	assert_string_equal(a, "3d");
}

/* What <fn> wrote to a FILE, as a malloc'd string. */
static char *captured(void (*fn)(FILE *, void *), void *arg)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	fn(f, arg);
	fclose(f);
	return text;
}

static void print_table(FILE *f, void *arg)
{
	out_table_print(arg, f, false);
}

static void print_table_color(FILE *f, void *arg)
{
	out_table_print(arg, f, true);
}

static void test_table_columns_fit_their_widest_cell(void **state)
{
	static const char *const head[] = { "NAME", "PHASE", "MESSAGE" };
	out_table t;
	out_table_init(&t, 3, head);
	const char *r1[] = { "podinfo", "Progressing", "advance 10 -> 20" };
	const char *r2[] = { "caf\xc3\xa9", NULL, "" };
	out_color c2[] = { OUT_PLAIN, OUT_RED, OUT_PLAIN };
	out_table_add(&t, r1, NULL);
	out_table_add(&t, r2, c2);
	char *s = captured(print_table, &t);
	assert_string_equal(s, "NAME     PHASE        MESSAGE\n"
	                       "podinfo  Progressing  advance 10 -> 20\n"
	                       "caf\xc3\xa9     -            \n");
	free(s);
	/* in colour: the escapes around the cell, the padding unchanged */
	s = captured(print_table_color, &t);
	assert_non_null(strstr(s, "\033[1mNAME\033[0m     "));
	assert_non_null(strstr(s, "\033[31m-\033[0m            "));
	free(s);
	out_table_release(&t);
}

static void test_formats_and_yaml_that_reads_back(void **state)
{
	out_format f;
	assert_int_equal(out_parse_format(NULL, &f), 0);
	assert_int_equal(f, OUT_TEXT);
	assert_int_equal(out_parse_format("yaml", &f), 0);
	assert_int_equal(f, OUT_YAML);
	assert_int_equal(out_parse_format("yml", &f), 0);
	assert_int_equal(out_parse_format("json", &f), 0);
	assert_int_equal(f, OUT_JSON);
	assert_int_equal(out_parse_format("xml", &f), -1);
	assert_int_equal(out_parse_format("", &f), -1);

	/* strings a YAML reader would take for something else stay quoted:
	 * numbers, booleans, and the API's timestamps */
	json_t *j = json_pack("{s:s, s:s, s:s, s:s, s:i, s:b}", "rev", "10", "canary", "1e3",
	                      "flag", "yes", "time", "2026-01-02T03:04:05.678Z", "weight", 20,
	                      "ok", 1);
	char *text = NULL;
	size_t len = 0;
	char err[128];
	FILE *m = open_memstream(&text, &len);
	assert_int_equal(out_print(m, j, OUT_YAML, err, sizeof err), 0);
	fclose(m);
	assert_non_null(strstr(text, "rev: '10'\n"));
	assert_non_null(strstr(text, "canary: '1e3'\n"));
	assert_non_null(strstr(text, "flag: 'yes'\n"));
	assert_non_null(strstr(text, "time: '2026-01-02T03:04:05.678Z'\n"));
	assert_non_null(strstr(text, "weight: 20\n"));
	assert_non_null(strstr(text, "ok: true\n"));
	free(text);
	/* text is not a format out_print writes */
	m = open_memstream(&text, &len);
	assert_int_equal(out_print(m, j, OUT_TEXT, err, sizeof err), -1);
	fclose(m);
	free(text);
	json_decref(j);
}

static void test_colour_only_on_a_terminal_and_never_with_no_color(void **state)
{
	/* a memstream's descriptor is no terminal; /dev/null is none either */
	FILE *f = fopen("/dev/null", "w");
	assert_false(out_color_wanted(fileno(f), false));
	fclose(f);
	setenv("NO_COLOR", "1", 1);
	assert_false(out_color_wanted(1, false));
	unsetenv("NO_COLOR");
	assert_false(out_color_wanted(1, true));
	assert_string_equal(out_sgr(false, OUT_RED), "");
	assert_string_equal(out_sgr_end(false, OUT_RED), "");
	assert_string_equal(out_sgr(true, OUT_PLAIN), "");
	assert_string_equal(out_sgr(true, OUT_RED), "\033[31m");
	assert_string_equal(out_sgr_end(true, OUT_RED), "\033[0m");
	assert_int_equal(out_phase_color("Succeeded"), OUT_GREEN);
	assert_int_equal(out_phase_color("Failed"), OUT_RED);
	assert_int_equal(out_phase_color("WaitingPromotion"), OUT_YELLOW);
	assert_int_equal(out_phase_color("SomethingNew"), OUT_PLAIN);
	assert_int_equal(out_phase_color(NULL), OUT_PLAIN);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_distance_counts_edits_and_swaps),
		cmocka_unit_test(test_nearest_suggests_only_what_is_near),
		cmocka_unit_test(test_width_counts_code_points),
		cmocka_unit_test(test_wrap_fits_the_width_and_keeps_every_word),
		cmocka_unit_test(test_times_and_ages),
		cmocka_unit_test(test_table_columns_fit_their_widest_cell),
		cmocka_unit_test(test_formats_and_yaml_that_reads_back),
		cmocka_unit_test(test_colour_only_on_a_terminal_and_never_with_no_color),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
