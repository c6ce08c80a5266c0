/* test_provider_saas.c - the datadog and newrelic providers' answers, as
 * their APIs document them and as Flagger v1.44.0 reads them (the first
 * point of the first Datadog series; New Relic's one results[0].result),
 * their error bodies and empty results, the garbage a broken server may
 * send instead, and the scrubbing of a key echoed back into a reason. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"

typedef int (*parse_fn)(int status, const char *body, size_t len, double *value,
                        char *reason, size_t rlen);

static void assert_printable(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
			print_message("byte 0x%02x at %zu in '%s'\n", (unsigned char)*p,
			              (size_t)(p - s), s);
			fail();
		}
}

static void assert_value(parse_fn f, const char *body, double want)
{
	double v = -1;
	char reason[256] = "";
	int ok = f(200, body, strlen(body), &v, reason, sizeof reason);
	if (!ok)
		print_message("no value from %s: %s\n", body, reason);
	assert_int_equal(ok, 1);
	assert_true(v == want);
}

/* No value from <body> answered with <status>, and a reason holding <want>. */
static void assert_reason(parse_fn f, int status, const char *body, const char *want)
{
	double v = 12345;
	char reason[256] = "";
	int ok = f(status, body, strlen(body), &v, reason, sizeof reason);
	if (ok || !strstr(reason, want))
		print_message("%s -> ok %d, reason '%s' (want '%s')\n", body, ok, reason, want);
	assert_int_equal(ok, 0);
	assert_non_null(strstr(reason, want));
	assert_true(v == 12345); /* untouched */
	assert_printable(reason);
}

/* Datadog's documented answer (GET /api/v1/query), trimmed. */
#define DD_OK(points) \
	"{\"status\":\"ok\",\"res_type\":\"time_series\",\"query\":\"avg:x{*}\"," \
	"\"from_date\":1577232000000,\"to_date\":1577404800000,\"message\":\"\"," \
	"\"series\":[{\"metric\":\"x\",\"display_name\":\"x\",\"interval\":60," \
	"\"length\":3,\"scope\":\"*\",\"expression\":\"avg:x{*}\",\"pointlist\":" points "}]}"

static void test_datadog_reads_the_first_point_of_the_first_series(void **state)
{
	/* Flagger's own test's answer: the oldest point, not the newest */
	assert_value(provider_parse_datadog, DD_OK("[[1577232000000,1.11111],"
	             "[1577318400000,56294.46758591842],[1577404800000,29325.102158814265]]"),
	             1.11111);
	assert_value(provider_parse_datadog, "{\"series\": [{\"pointlist\": [[1, 0]]}]}", 0);
	assert_value(provider_parse_datadog, "{\"series\": [{\"pointlist\": [[1, -2.5e3]]}]}",
	             -2500);
	/* several series: the first, as Flagger */
	assert_value(provider_parse_datadog, "{\"series\": [{\"pointlist\": [[1, 7]]},"
	             "{\"pointlist\": [[1, 8]]}]}", 7);
}

static void test_datadog_error_bodies_and_empty_results(void **state)
{
	/* the documented error bodies, with their statuses */
	assert_reason(provider_parse_datadog, 403, "{\"errors\": [\"Forbidden\"]}",
	              "answered HTTP 403: Forbidden");
	assert_reason(provider_parse_datadog, 400, "{\"errors\": [\"Error parsing query: "
	              "unable to parse avg:x{: Rule 'scope_expr' didn't match\"]}",
	              "answered HTTP 400: Error parsing query");
	assert_reason(provider_parse_datadog, 429, "{\"errors\": [\"Rate limit exceeded\"]}",
	              "HTTP 429: Rate limit exceeded");
	assert_reason(provider_parse_datadog, 500, "<html>oops</html>", "answered HTTP 500");
	assert_reason(provider_parse_datadog, 204, "", "answered HTTP 204");
	/* a query answer whose status is not ok */
	assert_reason(provider_parse_datadog, 200, "{\"status\":\"error\",\"error\":\"bad "
	              "metric\",\"series\":[]}", "query failed: bad metric");
	assert_reason(provider_parse_datadog, 200, "{\"errors\": [\"x\"], \"series\": "
	              "[{\"pointlist\": [[1, 2]]}]}", "query failed: x");
	/* no data, as Flagger's ErrNoValuesFound */
	assert_reason(provider_parse_datadog, 200, DD_OK("[]"), "series[0] has no points");
	assert_reason(provider_parse_datadog, 200, "{\"status\":\"ok\",\"series\":[]}",
	              "query returned no series");
	assert_reason(provider_parse_datadog, 200, "{\"status\":\"ok\"}", "answer has no series");
	assert_reason(provider_parse_datadog, 200, "{\"series\":[{}]}", "has no pointlist");
	/* an empty bucket: Flagger would read 0 */
	assert_reason(provider_parse_datadog, 200, DD_OK("[[1577232000000,null],[2,3]]"),
	              "first point has no value (null)");
}

static void test_datadog_garbage_is_no_data(void **state)
{
	static const struct {
		const char *body, *want;
	} c[] = {
		{ "", "not JSON" },
		{ "{\"series\": [{\"pointlist\": [[1, 2]]}", "not JSON" }, /* truncated */
		{ "[1,2]", "not a JSON object" },
		{ "{\"series\": [{\"pointlist\": [[1, NaN]]}]}", "not JSON" },
		{ "{\"series\": [{\"pointlist\": [[1, 1e999]]}]}", "not JSON" },
		{ "{\"series\": [{\"pointlist\": [[1, \"5\"]]}]}", "not a number" },
		{ "{\"series\": [{\"pointlist\": [[1, true]]}]}", "not a number" },
		{ "{\"series\": [{\"pointlist\": [[1]]}]}", "not a [time, value] pair" },
		{ "{\"series\": [{\"pointlist\": [[1, 2, 3]]}]}", "not a [time, value] pair" },
		{ "{\"series\": [{\"pointlist\": [5]}]}", "not a [time, value] pair" },
		{ "{\"series\": {\"pointlist\": [[1, 2]]}}", "answer has no series" },
		{ "{\"series\": [{\"pointlist\": [[1, 2]]}], \"series\": []}", "duplicate" },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
		assert_reason(provider_parse_datadog, 200, c[i].body, c[i].want);
}

static void test_newrelic_reads_the_one_result(void **state)
{
	/* Flagger's own test's answer, and a fuller one as the API sends it */
	assert_value(provider_parse_newrelic, "{\"results\":[{\"result\": 1.111110}]}", 1.11111);
	assert_value(provider_parse_newrelic, "{\"results\":[{\"result\":0.25}],\"metadata\":"
	             "{\"eventTypes\":[\"Metric\"],\"contents\":[{\"function\":\"alias\","
	             "\"alias\":\"result\"}],\"beginTime\":\"2026-01-01T00:00:00Z\"}}", 0.25);
	assert_value(provider_parse_newrelic, "{\"results\":[{\"result\":0}]}", 0);
}

static void test_newrelic_error_bodies_and_empty_results(void **state)
{
	assert_reason(provider_parse_newrelic, 400, "{\"error\": \"NRQL Syntax Error: Error at "
	              "line 1 position 8, unexpected 'FROM'\"}",
	              "answered HTTP 400: NRQL Syntax Error");
	assert_reason(provider_parse_newrelic, 401, "{\"error\": \"Invalid query key\"}",
	              "answered HTTP 401: Invalid query key");
	assert_reason(provider_parse_newrelic, 403, "{\"error\": {\"message\": \"nope\"}}",
	              "answered HTTP 403: nope");
	assert_reason(provider_parse_newrelic, 503, "Service Unavailable", "answered HTTP 503");
	assert_reason(provider_parse_newrelic, 200, "{\"error\": \"boom\"}", "query failed: boom");
	/* no data, as Flagger's ErrNoValuesFound */
	assert_reason(provider_parse_newrelic, 200, "{\"results\": []}", "no results");
	assert_reason(provider_parse_newrelic, 200, "{\"results\": [{\"result\": null}]}",
	              "results[0].result is null");
	assert_reason(provider_parse_newrelic, 200, "{\"results\": [{\"result\": 1}, "
	              "{\"result\": 2}]}", "query returned 2 results; it must return one");
	/* a row named after its function: the query must be an expression */
	assert_reason(provider_parse_newrelic, 200, "{\"results\": [{\"count\": 5}]}",
	              "results[0] has no 'result' (it has 'count')");
	assert_reason(provider_parse_newrelic, 200, "{\"results\": [{}]}",
	              "results[0] has no 'result'");
}

static void test_newrelic_garbage_is_no_data(void **state)
{
	static const struct {
		const char *body, *want;
	} c[] = {
		{ "", "not JSON" },
		{ "{\"results\":[{\"result\": 1", "not JSON" },
		{ "7", "not JSON" },
		{ "[]", "not a JSON object" },
		{ "{\"results\":[{\"result\": NaN}]}", "not JSON" },
		{ "{\"results\":[{\"result\": -1e400}]}", "not JSON" },
		{ "{\"results\":[{\"result\": \"0.5\"}]}", "not a number" },
		{ "{\"results\":[{\"result\": [1]}]}", "not a number" },
		{ "{\"results\":[5]}", "results[0] is not an object" },
		{ "{\"results\":{}}", "answer has no results" },
		{ "{\"results\":[{\"result\": 1, \"result\": 2}]}", "duplicate" },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++)
		assert_reason(provider_parse_newrelic, 200, c[i].body, c[i].want);
}

/* What a server sends is quoted in a reason: made one printable line, and
 * cut to the buffer. */
static void test_reasons_are_one_line_and_fit(void **state)
{
	const char *body = "{\"errors\": [\"line one\\nline two\\u0007\\u00e9\"]}";
	assert_reason(provider_parse_datadog, 400, body, "HTTP 400: line one");
	assert_reason(provider_parse_newrelic, 400, "{\"error\": \"a\\r\\nb\"}", "HTTP 400: a");
	char small[8];
	double v;
	assert_int_equal(provider_parse_datadog(403, body, strlen(body), &v, small, sizeof small),
	                 0);
	assert_int_equal(strlen(small), sizeof small - 1);
	assert_int_equal(provider_parse_newrelic(200, "", 0, &v, small, 1), 0);
	assert_string_equal(small, "");
}

static void test_a_key_echoed_back_is_scrubbed(void **state)
{
	char s[128] = "HTTP 403: key abc123 is invalid (abc123abc123)";
	provider_redact(s, "abc123");
	assert_string_equal(s, "HTTP 403: key ****** is invalid (************)");
	provider_redact(s, NULL);
	provider_redact(s, "");
	assert_string_equal(s, "HTTP 403: key ****** is invalid (************)");
	/* a reason cut inside the key: its start is masked too */
	char cut[64] = "HTTP 401: bad key abc1";
	provider_redact(cut, "abc123");
	assert_string_equal(cut, "HTTP 401: bad key ****");
	char word[64] = "HTTP 401: abc";   /* too short to tell from a word */
	provider_redact(word, "abc123");
	assert_string_equal(word, "HTTP 401: abc");
	/* through the parser: a long error cut inside an echoed key */
	char body[512], reason[256];
	double v;
	snprintf(body, sizeof body, "{\"errors\": [\"%0140d key 0123456789abcdefghij\"]}", 0);
	provider_parse_datadog(403, body, strlen(body), &v, reason, sizeof reason);
	assert_non_null(strstr(reason, " key 01234")); /* the parser cut it... */
	assert_null(strstr(reason, "0123456789abcdefghij"));
	provider_redact(reason, "0123456789abcdefghij");
	assert_null(strstr(reason, " key 0123")); /* ...and what is left of it is masked */
	assert_non_null(strstr(reason, " key ****"));
}

static void test_the_table_has_both(void **state)
{
	assert_ptr_equal(provider_by_type(CFG_PROVIDER_DATADOG), &provider_datadog);
	assert_ptr_equal(provider_by_type(CFG_PROVIDER_NEWRELIC), &provider_newrelic);
	assert_string_equal(provider_datadog.name, "datadog");
	assert_string_equal(provider_newrelic.name, "newrelic");
	assert_null(provider_by_type(CFG_PROVIDER_UNSUPPORTED));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_datadog_reads_the_first_point_of_the_first_series),
		cmocka_unit_test(test_datadog_error_bodies_and_empty_results),
		cmocka_unit_test(test_datadog_garbage_is_no_data),
		cmocka_unit_test(test_newrelic_reads_the_one_result),
		cmocka_unit_test(test_newrelic_error_bodies_and_empty_results),
		cmocka_unit_test(test_newrelic_garbage_is_no_data),
		cmocka_unit_test(test_reasons_are_one_line_and_fit),
		cmocka_unit_test(test_a_key_echoed_back_is_scrubbed),
		cmocka_unit_test(test_the_table_has_both),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
