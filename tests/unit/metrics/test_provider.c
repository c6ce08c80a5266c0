/* test_provider.c - the providers' table and the builtin provider's reads
 * over the stats, and reading a number out of a provider's answer: what
 * Prometheus and web metric APIs send, and the garbage a broken or hostile
 * one may send instead, which must never pass a check. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "provider.h"

static const char *vector_of(const char *value_json)
{
	static char b[512];
	snprintf(b, sizeof b, "{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
	         "\"result\":[{\"metric\":{\"app\":\"web\"},\"value\":[1733040000.5,%s]}]}}",
	         value_json);
	return b;
}

/* Every byte of <s> is printable ASCII. */
static void assert_one_line(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
			print_message("byte 0x%02x at %zu in '%s'\n", (unsigned char)*p,
			              (size_t)(p - s), s);
			fail();
		}
}

static void assert_prom_value(const char *body, double want)
{
	double v = -1;
	char reason[256] = "";
	int ok = provider_parse_prometheus(body, strlen(body), &v, reason, sizeof reason);
	if (!ok)
		print_message("refused: %s\n", reason);
	assert_int_equal(ok, 1);
	assert_true(v == want);
}

static void assert_prom_refused(const char *body, const char *why)
{
	double v = 0;
	char reason[256] = "";
	assert_int_equal(provider_parse_prometheus(body, strlen(body), &v, reason, sizeof reason), 0);
	if (!strstr(reason, why))
		print_message("reason '%s' lacks '%s'\n", reason, why);
	assert_non_null(strstr(reason, why));
	assert_one_line(reason);
}

static void assert_web_value(const char *body, const char *path, double want)
{
	double v = -1;
	char reason[256] = "";
	int ok = provider_parse_web(body, strlen(body), path, &v, reason, sizeof reason);
	if (!ok)
		print_message("refused: %s\n", reason);
	assert_int_equal(ok, 1);
	assert_true(v == want);
}

static void assert_web_refused(const char *body, const char *path, const char *why)
{
	double v = 0;
	char reason[256] = "";
	assert_int_equal(provider_parse_web(body, strlen(body), path, &v, reason, sizeof reason), 0);
	if (!strstr(reason, why))
		print_message("reason '%s' lacks '%s'\n", reason, why);
	assert_non_null(strstr(reason, why));
	assert_one_line(reason);
}

static void test_prometheus_values_as_prometheus_writes_them(void **state)
{
	assert_prom_value(vector_of("\"0.25\""), 0.25);
	assert_prom_value(vector_of("\"-3\""), -3);
	assert_prom_value(vector_of("\"1e+21\""), 1e21);
	assert_prom_value(vector_of("\"1e-07\""), 1e-7);
	assert_prom_value(vector_of("42"), 42); /* a JSON number too */
	assert_prom_value("{\"status\":\"success\",\"data\":{\"resultType\":\"scalar\","
	                  "\"result\":[1733040000.5,\"7.5\"]}}", 7.5);
}

static void test_prometheus_answers_without_one_sample(void **state)
{
	assert_prom_refused("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\","
	                    "\"result\":[]}}", "query returned no sample");
	assert_prom_refused("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\",\"result\":"
	                    "[{\"value\":[1,\"1\"]},{\"value\":[1,\"2\"]}]}}",
	                    "query returned 2 samples");
	assert_prom_refused("{\"status\":\"success\",\"data\":{\"resultType\":\"matrix\","
	                    "\"result\":[]}}", "query returned a matrix");
	assert_prom_refused("{\"status\":\"error\",\"errorType\":\"bad_data\",\"error\":\"parse "
	                    "error\"}", "query failed: parse error");
	assert_prom_refused("not json", "answer is not JSON");
	assert_prom_refused("{\"status\":\"success\"}", "no data.resultType");
}

/* Prometheus writes NaN and infinities as strings: a division by zero, a
 * histogram_quantile in the +Inf bucket. Neither is a measurement: with
 * thresholdRange {min: 99}, +Inf would pass. */
static void test_prometheus_nan_and_infinities_are_no_data(void **state)
{
	assert_prom_refused(vector_of("\"NaN\""), "value is NaN");
	assert_prom_refused(vector_of("\"+Inf\""), "value is +Inf");
	assert_prom_refused(vector_of("\"-Inf\""), "value is -Inf");
	assert_prom_refused(vector_of("\"1e999\""), "out of range");
}

/* strtod reads much more than a decimal number: hexadecimal, "infinity",
 * leading blanks. Any of those in an answer is garbage, not a value. */
static void test_only_plain_decimal_numbers_are_values(void **state)
{
	static const char *const bad[] = { "\"0x10\"", "\"0x1p4\"", "\" 5\"", "\"5 \"",
	                                   "\"infinity\"", "\"nan(1)\"", "\"\"", "\"1.5abc\"",
	                                   "\"1,5\"", "\"--1\"", "\"+5\"", "\".\"", "\"1e\"",
	                                   "true", "null", "{}", "[1]" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		double v = 0;
		char reason[256] = "";
		const char *body = vector_of(bad[i]);
		if (provider_parse_prometheus(body, strlen(body), &v, reason, sizeof reason) != 0) {
			print_message("%s was read as %g\n", bad[i], v);
			fail();
		}
		assert_non_null(strstr(reason, "not a number"));
	}
}

/* Two readers of {"status": "error", ..., "status": "success"} disagree
 * on what it says; such an answer is refused rather than guessed at. */
static void test_duplicated_keys_are_refused(void **state)
{
	assert_prom_refused("{\"status\":\"error\",\"status\":\"success\",\"data\":{\"resultType\":"
	                    "\"scalar\",\"result\":[1,\"1\"]}}", "duplicate");
	assert_web_refused("{\"v\":1,\"v\":200}", "$.v", "duplicate");
}

/* A receiver's text goes to the audit, the log and terminals: a newline
 * in it would forge a log line, an escape sequence would drive a terminal. */
static void test_reasons_are_one_line_of_plain_text(void **state)
{
	assert_prom_refused("{\"status\":\"error\",\"error\":\"boom\\nlevel=error msg=forged"
	                    "\\u001b[2J\\u00e9\"}", "query failed: boom?level=error msg=forged?[2J?");
	assert_prom_refused("{\"status\":\"success\",\"data\":{\"resultType\":\"vector\x01\x1b\","
	                    "\"result\":[]}}", "");
	assert_prom_refused("\x01\x02\x1b[31m not json \n\n", "answer is not JSON");
	assert_web_refused("{\"v\": \"\\u0007\\r\\nforged\"}", "$.v", "value '???forged' is not a number");
}

static void test_reason_fits_a_small_buffer(void **state)
{
	char reason[8];
	double v;
	const char *body = "{\"status\":\"error\",\"error\":\"a long message from the server\"}";
	assert_int_equal(provider_parse_prometheus(body, strlen(body), &v, reason, sizeof reason), 0);
	assert_int_equal(strlen(reason), sizeof reason - 1);
}

static void test_web_paths(void **state)
{
	const char *body = "{\"data\":{\"series\":[{\"value\":0.2},{\"value\":\"3.5\"}]},"
	                   "\"a b\":{\"c'd\":[7]}}";
	assert_web_value(body, "$.data.series[0].value", 0.2);
	assert_web_value(body, "$.data.series[1].value", 3.5);
	assert_web_value(body, "$['a b'][\"c'd\"][0]", 7);
	assert_web_refused(body, "$.data.series[2].value", "nothing at $.data.series[2].value");
	assert_web_refused(body, "$.data", "not a number");
	assert_web_refused(body, "$..x", "bad jsonPath");
}

/* The default jsonPath "$" names the whole answer: an API that answers
 * with a bare number must work with it. */
static void test_web_answer_may_be_a_bare_number(void **state)
{
	assert_web_value("0.5", "$", 0.5);
	assert_web_value("\"12\"", "$", 12);
	assert_web_refused("\"+Inf\"", "$", "value is +Inf");
	assert_web_refused("", "$", "answer is not JSON");
}

/* Each source type has its provider: a table, which the controller asks
 * instead of looking at the type itself; a built-in metric's provider is
 * chosen by the canary's router. */
static void test_table(void **state)
{
	cfg_canary cc;
	memset(&cc, 0, sizeof cc);
	cc.name = "web";
	cc.router = "builtin";
	cc.policy.n_metrics = 2;
	cc.policy.metrics[0].kind = ENG_M_SUCCESS_RATE;
	cc.policy.metrics[1].kind = ENG_M_CUSTOM;
	cfg_metric_source *src = &cc.sources[1];
	assert_ptr_equal(provider_of(&cc, 0), &provider_builtin);   /* no provider key */
	assert_string_equal(provider_of(&cc, 0)->name, "builtin");
	src->type = CFG_PROVIDER_PROMETHEUS;
	assert_ptr_equal(provider_of(&cc, 1), &provider_prometheus);
	src->type = CFG_PROVIDER_WEB;
	assert_ptr_equal(provider_of(&cc, 1), &provider_web);
	src->type = (cfg_provider_type)99;
	assert_null(provider_of(&cc, 1));
	assert_null(provider_of(&cc, 2));   /* no such metric */
	/* behind a mesh the built-in metrics come from its Prometheus; a
	 * custom metric keeps its own provider */
	src->type = CFG_PROVIDER_PROMETHEUS;
	const char *mesh[] = { "istio", "gatewayapi", "smi" };
	for (size_t i = 0; i < 3; i++) {
		cc.router = (char *)mesh[i];
		assert_ptr_equal(provider_of(&cc, 0), &provider_mesh);
		assert_ptr_equal(provider_of(&cc, 1), &provider_prometheus);
	}
	cc.router = "haproxy";   /* HAProxy's own counters, in the stats */
	assert_ptr_equal(provider_of(&cc, 0), &provider_builtin);
	cc.router = "builtin";
	cc.flagger = 1;          /* every Flagger provider is a Kubernetes one */
	assert_ptr_equal(provider_of(&cc, 0), &provider_mesh);
}

typedef struct answer {
	int calls, has_data;
	double value;
	char reason[128];
} answer;

static void on_answer(void *arg, int has_data, double value, const char *reason)
{
	answer *a = arg;
	a->calls++;
	a->has_data = has_data;
	a->value = value;
	snprintf(a->reason, sizeof a->reason, "%s", reason);
}

/* The builtin provider answers before its read returns, from the stats,
 * over the window's seconds only. */
static void test_builtin_reads_the_stats(void **state)
{
	stats *st = stats_new();
	for (int i = 0; i < 99; i++)
		stats_record(st, TARGET_CANARY, 200, 1000, 100);
	stats_record(st, TARGET_CANARY, 503, 1000, 100);
	for (int i = 0; i < 10; i++)
		stats_record(st, TARGET_CANARY, 500, 1000, 90);   /* before the window */
	provider_env env = { .http = NULL, .st = st };
	cfg_metric_source src;
	memset(&src, 0, sizeof src);
	provider_window w;
	memset(&w, 0, sizeof w);
	w.w = (rd_window){ RD_CANARY, TARGET_CANARY, 95, 100, 6000 };
	w.kind = ENG_M_SUCCESS_RATE;
	answer a = { 0 };
	char err[128];
	assert_int_equal(provider_builtin.read(&env, &src, &w, on_answer, &a, err, sizeof err), 0);
	assert_int_equal(a.calls, 1);
	assert_int_equal(a.has_data, 1);
	assert_true(a.value == 99.0);
	w.kind = ENG_M_ERROR_RATE;
	w.w.from_sec = 80;                                      /* now with the 10 5xx */
	assert_int_equal(provider_builtin.read(&env, &src, &w, on_answer, &a, err, sizeof err), 0);
	assert_true(fabs(a.value - 100.0 * 11 / 110) < 1e-9);
	w.w = (rd_window){ RD_STABLE, TARGET_STABLE, 95, 100, 6000 };
	assert_int_equal(provider_builtin.read(&env, &src, &w, on_answer, &a, err, sizeof err), 0);
	assert_int_equal(a.has_data, 0);
	assert_string_equal(a.reason, "no stable requests in the last 6s");
	w.kind = ENG_M_CUSTOM;                                  /* not a built-in metric */
	assert_int_equal(provider_builtin.read(&env, &src, &w, on_answer, &a, err, sizeof err), -1);
	assert_int_equal(a.calls, 3);
	stats_free(st);
}

/* Without an HTTP client (libcurl failed), an HTTP provider says so and
 * does not call back. */
static void test_http_providers_need_a_client(void **state)
{
	provider_env env = { NULL, NULL, NULL };
	cfg_metric_source src;
	memset(&src, 0, sizeof src);
	src.type = CFG_PROVIDER_PROMETHEUS;
	src.query = "up";
	src.address = "http://127.0.0.1:9";
	provider_window w;
	memset(&w, 0, sizeof w);
	answer a = { 0 };
	char err[128] = "";
	assert_int_equal(provider_prometheus.read(&env, &src, &w, on_answer, &a, err, sizeof err), -1);
	assert_string_equal(err, "no HTTP client (libcurl failed to initialise)");
	assert_int_equal(provider_web.read(&env, &src, &w, on_answer, &a, err, sizeof err), -1);
	assert_int_equal(a.calls, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test(test_builtin_reads_the_stats),
		cmocka_unit_test(test_http_providers_need_a_client),
		cmocka_unit_test(test_prometheus_values_as_prometheus_writes_them),
		cmocka_unit_test(test_prometheus_answers_without_one_sample),
		cmocka_unit_test(test_prometheus_nan_and_infinities_are_no_data),
		cmocka_unit_test(test_only_plain_decimal_numbers_are_values),
		cmocka_unit_test(test_duplicated_keys_are_refused),
		cmocka_unit_test(test_reasons_are_one_line_of_plain_text),
		cmocka_unit_test(test_reason_fits_a_small_buffer),
		cmocka_unit_test(test_web_paths),
		cmocka_unit_test(test_web_answer_may_be_a_bare_number),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
