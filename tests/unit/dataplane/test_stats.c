/* test_stats.c - latency buckets, the ring of seconds, quantiles and the
 * Prometheus exposition. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stats.h"

static stats_summary sum; /* large: kept off the stack */

/* Walks values from 0 to 2^40 in small steps at first, then in growing
 * ones, and checks each lies in its bucket and buckets never go down. */
static void test_bucket_of_lies_within_bounds_and_is_monotonic(void **state)
{
	int prev = -1;
	uint64_t v = 0;
	for (int i = 0; i < 200000 && v < (1ull << 40); i++) {
		int b = stats_bucket_of(v);
		assert_true(b >= 0 && b < STATS_BUCKETS);
		assert_true(b >= prev);
		uint64_t lo, hi;
		stats_bucket_bounds(b, &lo, &hi);
		assert_true(lo <= v);
		assert_true(v < hi);
		prev = b;
		v += v < 5000 ? 1 : v / 997;
	}
	assert_int_equal(stats_bucket_of(UINT64_MAX), STATS_BUCKETS - 1);
}

static void test_buckets_are_contiguous(void **state)
{
	uint64_t plo, phi;
	stats_bucket_bounds(0, &plo, &phi);
	assert_int_equal(plo, 0);
	for (int b = 1; b < STATS_BUCKETS; b++) {
		uint64_t lo, hi;
		stats_bucket_bounds(b, &lo, &hi);
		assert_int_equal(lo, phi); /* no gap, no overlap */
		assert_true(hi > lo);
		assert_int_equal(stats_bucket_of(lo), b);
		assert_int_equal(stats_bucket_of(lo - 1), b - 1);
		phi = hi;
	}
}

static void test_values_below_sub_range_are_exact(void **state)
{
	for (uint64_t v = 0; v < (1u << STATS_SUB_BITS); v++) {
		uint64_t lo, hi;
		stats_bucket_bounds(stats_bucket_of(v), &lo, &hi);
		assert_int_equal(lo, v);
		assert_int_equal(hi, v + 1);
	}
}

static void test_relative_width_is_bounded_above_linear_range(void **state)
{
	for (int b = 1 << STATS_SUB_BITS; b < STATS_BUCKETS - 1; b++) {
		uint64_t lo, hi;
		stats_bucket_bounds(b, &lo, &hi);
		double rel = (double)(hi - lo) / (double)lo;
		assert_true(rel <= 1.0 / (1 << STATS_SUB_BITS) + 1e-12);
	}
}

static void test_top_bucket_covers_268_seconds_and_catches_all(void **state)
{
	uint64_t lo, hi;
	stats_bucket_bounds(STATS_BUCKETS - 2, &lo, &hi);
	assert_true(hi >= (1ull << 28) - (1ull << 28) / (1 << STATS_SUB_BITS));
	assert_true(stats_bucket_of((1ull << 28) - 1) >= STATS_BUCKETS - 2);
	assert_int_equal(stats_bucket_of(1ull << 35), STATS_BUCKETS - 1);
	stats_bucket_bounds(STATS_BUCKETS - 1, &lo, &hi);
	assert_int_equal(hi, UINT64_MAX);
}

static void test_quantiles_of_uniform_1_to_1000_ms(void **state)
{
	stats *s = stats_new();
	for (int ms = 1; ms <= 1000; ms++)
		stats_record(s, TARGET_CANARY, 200, (uint64_t)ms * 1000, 100);
	stats_query(s, TARGET_CANARY, 100, 100, &sum);
	assert_int_equal(sum.total, 1000);
	double p50 = stats_quantile_ms(&sum, 0.5);
	double p99 = stats_quantile_ms(&sum, 0.99);
	double p0 = stats_quantile_ms(&sum, 0.0);
	double p100 = stats_quantile_ms(&sum, 1.0);
	assert_true(fabs(p50 - 500) <= 500 * 0.13);
	assert_true(fabs(p99 - 990) <= 990 * 0.13);
	assert_true(fabs(p0 - 1) <= 1 * 0.26);
	assert_true(p0 < p50 && p50 < p99 && p99 <= p100);
	assert_true(p100 <= 1000 * 1.26);
	stats_free(s);
}

static void test_quantile_of_single_value_is_within_its_bucket(void **state)
{
	stats *s = stats_new();
	for (int i = 0; i < 50; i++)
		stats_record(s, TARGET_STABLE, 200, 300000, 7);
	stats_query(s, TARGET_STABLE, 0, 10, &sum);
	uint64_t lo, hi;
	stats_bucket_bounds(stats_bucket_of(300000), &lo, &hi);
	double q = stats_quantile_ms(&sum, 0.99);
	assert_true(q >= lo / 1000.0 && q < hi / 1000.0);
	assert_true(fabs(q - 300) <= 300 * 0.13);
	stats_free(s);
}

static void test_quantile_of_bimodal_picks_the_tail(void **state)
{
	stats *s = stats_new();
	for (int i = 0; i < 980; i++)
		stats_record(s, TARGET_CANARY, 200, 10000, 5);   /* 10 ms */
	for (int i = 0; i < 20; i++)
		stats_record(s, TARGET_CANARY, 200, 2000000, 5); /* 2 s */
	stats_query(s, TARGET_CANARY, 5, 5, &sum);
	assert_true(fabs(stats_quantile_ms(&sum, 0.5) - 10) <= 10 * 0.13);
	assert_true(fabs(stats_quantile_ms(&sum, 0.98) - 10) <= 10 * 0.13);
	assert_true(fabs(stats_quantile_ms(&sum, 0.99) - 2000) <= 2000 * 0.13);
	stats_free(s);
}

static void test_empty_quantile_is_minus_one(void **state)
{
	stats *s = stats_new();
	stats_query(s, TARGET_CANARY, 0, 3000, &sum);
	assert_int_equal(sum.total, 0);
	assert_true(stats_quantile_ms(&sum, 0.99) == -1);
	/* data on the other target does not count */
	stats_record(s, TARGET_STABLE, 200, 1000, 10);
	stats_query(s, TARGET_CANARY, 0, 3000, &sum);
	assert_true(stats_quantile_ms(&sum, 0.5) == -1);
	stats_free(s);
}

static void test_window_includes_exactly_its_seconds(void **state)
{
	stats *s = stats_new();
	/* second t gets t requests */
	for (uint64_t t = 1000; t < 1010; t++)
		for (uint64_t i = 0; i < t - 999; i++)
			stats_record(s, TARGET_CANARY, 200, 1000, t);
	stats_query(s, TARGET_CANARY, 1003, 1005, &sum);
	assert_int_equal(sum.total, 4 + 5 + 6);
	stats_query(s, TARGET_CANARY, 1000, 1000, &sum);
	assert_int_equal(sum.total, 1);
	stats_query(s, TARGET_CANARY, 1009, 1009 + STATS_SLOTS - 1, &sum);
	assert_int_equal(sum.total, 10);
	/* a window longer than the ring starts STATS_SLOTS - 1 before its end */
	stats_query(s, TARGET_CANARY, 1009, 1009 + STATS_SLOTS, &sum);
	assert_int_equal(sum.total, 0);
	stats_query(s, TARGET_CANARY, 0, 999, &sum);
	assert_int_equal(sum.total, 0);
	stats_query(s, TARGET_CANARY, 1006, 1005, &sum); /* empty window */
	assert_int_equal(sum.total, 0);
	stats_query(s, TARGET_CANARY, 0, 1009, &sum);
	assert_int_equal(sum.total, 55);
	uint64_t h = 0;
	for (int b = 0; b < STATS_BUCKETS; b++)
		h += sum.hist[b];
	assert_int_equal(h, 55);
	stats_free(s);
}

static void test_second_zero_is_a_real_second(void **state)
{
	stats *s = stats_new();
	stats_query(s, TARGET_STABLE, 0, 0, &sum);
	assert_int_equal(sum.total, 0);
	stats_record(s, TARGET_STABLE, 200, 10, 0);
	stats_query(s, TARGET_STABLE, 0, 0, &sum);
	assert_int_equal(sum.total, 1);
	stats_free(s);
}

static void test_old_slots_not_counted_after_wrap(void **state)
{
	stats *s = stats_new();
	uint64_t t = 500;
	stats_record(s, TARGET_CANARY, 500, 1000, t);
	stats_record(s, TARGET_CANARY, 200, 1000, t + 1);
	/* the query window reaches back over t but the ring no longer holds it */
	uint64_t now = t + STATS_SLOTS + 5;
	stats_query(s, TARGET_CANARY, 0, now, &sum);
	assert_int_equal(sum.total, 0);
	/* a slot reused for a new second starts from zero */
	stats_record(s, TARGET_CANARY, 200, 1000, t + STATS_SLOTS);
	stats_query(s, TARGET_CANARY, t + STATS_SLOTS, t + STATS_SLOTS, &sum);
	assert_int_equal(sum.total, 1);
	assert_int_equal(sum.by_class[5], 0);
	assert_int_equal(sum.by_class[2], 1);
	/* a record older than the ring holds does not land in a newer slot */
	stats_record(s, TARGET_CANARY, 500, 1000, t);
	stats_query(s, TARGET_CANARY, t + STATS_SLOTS, t + STATS_SLOTS, &sum);
	assert_int_equal(sum.total, 1);
	assert_int_equal(sum.by_class[5], 0);
	stats_free(s);
}

static void test_window_is_clamped_to_ring_length(void **state)
{
	stats *s = stats_new();
	for (uint64_t t = 10000; t < 10000 + STATS_SLOTS; t++)
		stats_record(s, TARGET_STABLE, 200, 1000, t);
	uint64_t last = 10000 + STATS_SLOTS - 1;
	stats_query(s, TARGET_STABLE, 0, last, &sum);
	assert_int_equal(sum.total, STATS_SLOTS);
	stats_query(s, TARGET_STABLE, 0, last + 1, &sum);
	assert_int_equal(sum.total, STATS_SLOTS - 1);
	stats_free(s);
}

static void test_counts_by_status_class(void **state)
{
	stats *s = stats_new();
	int codes[] = { 100, 101, 200, 204, 299, 301, 304, 404, 429, 499, 500, 503, 599 };
	for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++)
		stats_record(s, TARGET_CANARY, codes[i], 1000, 42);
	/* outside 100..599: counted as 502 */
	stats_record(s, TARGET_CANARY, 0, 1000, 42);
	stats_record(s, TARGET_CANARY, 99, 1000, 42);
	stats_record(s, TARGET_CANARY, 600, 1000, 42);
	stats_record(s, TARGET_CANARY, -1, 1000, 42);
	stats_query(s, TARGET_CANARY, 42, 42, &sum);
	assert_int_equal(sum.total, 17);
	assert_int_equal(sum.by_class[1], 2);
	assert_int_equal(sum.by_class[2], 3);
	assert_int_equal(sum.by_class[3], 2);
	assert_int_equal(sum.by_class[4], 3);
	assert_int_equal(sum.by_class[5], 3 + 4);
	stats_query(s, TARGET_STABLE, 42, 42, &sum);
	assert_int_equal(sum.total, 0);
	stats_free(s);
}

/* Every non-comment line of <text> is `name{labels} value`, with a metric
 * name, quoted label values and a number. Returns the sample count or -1. */
static int parse_exposition(const char *text)
{
	int n = 0;
	const char *p = text;
	while (*p) {
		const char *eol = strchr(p, '\n');
		if (!eol)
			return -1; /* every line ends in a newline */
		if (*p == '#') {
			if (strncmp(p, "# HELP ", 7) != 0 && strncmp(p, "# TYPE ", 7) != 0)
				return -1;
			p = eol + 1;
			continue;
		}
		const char *q = p;
		if (!(isalpha((unsigned char)*q) || *q == '_' || *q == ':'))
			return -1;
		while (isalnum((unsigned char)*q) || *q == '_' || *q == ':')
			q++;
		if (*q++ != '{')
			return -1;
		while (*q != '}') {
			if (!(isalpha((unsigned char)*q) || *q == '_'))
				return -1;
			while (isalnum((unsigned char)*q) || *q == '_')
				q++;
			if (*q++ != '=' || *q++ != '"')
				return -1;
			while (*q != '"') {
				if (q >= eol)
					return -1;
				if (*q == '\\') {
					q++;
					if (*q != '\\' && *q != '"' && *q != 'n')
						return -1;
				}
				q++;
			}
			q++;
			if (*q == ',')
				q++;
			else if (*q != '}')
				return -1;
		}
		q++;
		if (*q++ != ' ')
			return -1;
		char *end;
		if (strncmp(q, "+Inf", 4) == 0)
			end = (char *)q + 4;
		else
			strtod(q, &end);
		if (end == q || end != eol)
			return -1;
		n++;
		p = eol + 1;
	}
	return n;
}

/* The totals of a target over every shard (the cost's counts), and the
 * revision label: a new revision's series counts from zero, the
 * histogram keeps counting (it has no revision label), and a revision
 * set again to the same one changes nothing. */
static void test_totals_and_revisions_span_shards(void **state)
{
	stats *s = stats_new();
	stats *w1 = stats_shard(s, 1);
	stats_record(s, TARGET_CANARY, 200, 1000, 1);
	stats_record(w1, TARGET_CANARY, 503, 1000, 1);
	stats_record(w1, TARGET_CANARY, 500, 1000, 2);
	stats_record(w1, TARGET_CANARY, 404, 1000, 2);
	uint64_t n, e;
	stats_totals(s, TARGET_CANARY, &n, &e);
	assert_int_equal(n, 4);
	assert_int_equal(e, 2);
	stats_totals(s, TARGET_STABLE, &n, &e);
	assert_int_equal(n + e, 0);

	stats_set_revision(s, TARGET_CANARY, "v2");
	stats_record(w1, TARGET_CANARY, 500, 1000, 3);
	stats_set_revision(s, TARGET_CANARY, "v2");   /* the same: no new start */
	buf b = BUF_INIT;
	stats_write_prometheus(s, "web", &b);
	assert_non_null(strstr(b.p, "canaryd_requests_total{canary=\"web\",target=\"canary\","
	                            "revision=\"v2\",code=\"500\"} 1\n"));
	assert_null(strstr(b.p, "code=\"503\""));
	assert_null(strstr(b.p, "code=\"200\""));
	assert_non_null(strstr(b.p, "canaryd_request_duration_seconds_count{canary=\"web\","
	                            "target=\"canary\"} 5\n"));
	stats_totals(s, TARGET_CANARY, &n, &e);   /* the totals do not restart */
	assert_int_equal(n, 5);
	assert_int_equal(e, 3);
	buf_release(&b);
	stats_free(s);
}

static void test_prometheus_text_has_expected_lines_and_parses(void **state)
{
	stats *s = stats_new();
	stats_record(s, TARGET_STABLE, 200, 3000, 1);    /* 3 ms */
	stats_record(s, TARGET_STABLE, 200, 70000, 1);   /* 70 ms */
	stats_record(s, TARGET_STABLE, 503, 20000000, 2);/* 20 s */
	stats_record(s, TARGET_CANARY, 404, 5000, 2);    /* exactly 5 ms */
	buf b = BUF_INIT;
	stats_write_prometheus_header(&b);
	stats_write_prometheus(s, "podinfo", &b);
	const char *t = b.p;
	assert_non_null(strstr(t, "# TYPE canaryd_requests_total counter\n"));
	assert_non_null(strstr(t, "# TYPE canaryd_request_duration_seconds histogram\n"));
	assert_non_null(strstr(t, "# HELP canaryd_requests_total "));
	assert_non_null(strstr(t, "# HELP canaryd_request_duration_seconds "));
	assert_non_null(strstr(t, "canaryd_requests_total{canary=\"podinfo\",target=\"stable\",code=\"200\"} 2\n"));
	assert_non_null(strstr(t, "canaryd_requests_total{canary=\"podinfo\",target=\"stable\",code=\"503\"} 1\n"));
	assert_non_null(strstr(t, "canaryd_requests_total{canary=\"podinfo\",target=\"canary\",code=\"404\"} 1\n"));
	assert_null(strstr(t, "code=\"500\""));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_bucket{canary=\"podinfo\",target=\"stable\",le=\"0.005\"} 1\n"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_bucket{canary=\"podinfo\",target=\"stable\",le=\"0.05\"} 1\n"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_bucket{canary=\"podinfo\",target=\"stable\",le=\"0.1\"} 2\n"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_bucket{canary=\"podinfo\",target=\"stable\",le=\"10\"} 2\n"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_bucket{canary=\"podinfo\",target=\"stable\",le=\"+Inf\"} 3\n"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_sum{canary=\"podinfo\",target=\"stable\"} 20.073000\n"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_count{canary=\"podinfo\",target=\"stable\"} 3\n"));
	/* le is inclusive: 5 ms is in the 0.005 bucket */
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_bucket{canary=\"podinfo\",target=\"canary\",le=\"0.005\"} 1\n"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_count{canary=\"podinfo\",target=\"canary\"} 1\n"));
	/* 12 bucket lines + sum + count per target, 3 code lines */
	assert_int_equal(parse_exposition(t), 2 * 14 + 3);
	buf_release(&b);
	stats_free(s);
}

static void test_prometheus_writes_both_histograms_when_empty(void **state)
{
	stats *s = stats_new();
	buf b = BUF_INIT;
	stats_write_prometheus(s, "idle", &b);
	const char *t = b.p;
	assert_non_null(t);
	assert_null(strstr(t, "canaryd_requests_total"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_bucket{canary=\"idle\",target=\"stable\",le=\"+Inf\"} 0\n"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_bucket{canary=\"idle\",target=\"canary\",le=\"+Inf\"} 0\n"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_sum{canary=\"idle\",target=\"canary\"} 0.000000\n"));
	assert_non_null(strstr(t, "canaryd_request_duration_seconds_count{canary=\"idle\",target=\"stable\"} 0\n"));
	assert_int_equal(parse_exposition(t), 2 * 14);
	buf_release(&b);
	stats_free(s);
}

static void test_prometheus_escapes_label_values(void **state)
{
	stats *s = stats_new();
	stats_record(s, TARGET_CANARY, 200, 1000, 1);
	buf b = BUF_INIT;
	stats_write_prometheus(s, "a\\b\"c\nd", &b);
	assert_non_null(strstr(b.p, "canaryd_requests_total{canary=\"a\\\\b\\\"c\\nd\",target=\"canary\",code=\"200\"} 1\n"));
	assert_null(strstr(b.p, "c\nd"));
	assert_int_equal(parse_exposition(b.p), 2 * 14 + 1);
	buf_release(&b);
	stats_free(s);
}

static void test_target_names(void **state)
{
	assert_string_equal(stats_target_name(TARGET_STABLE), "stable");
	assert_string_equal(stats_target_name(TARGET_CANARY), "canary");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_bucket_of_lies_within_bounds_and_is_monotonic),
		cmocka_unit_test(test_buckets_are_contiguous),
		cmocka_unit_test(test_values_below_sub_range_are_exact),
		cmocka_unit_test(test_relative_width_is_bounded_above_linear_range),
		cmocka_unit_test(test_top_bucket_covers_268_seconds_and_catches_all),
		cmocka_unit_test(test_quantiles_of_uniform_1_to_1000_ms),
		cmocka_unit_test(test_quantile_of_single_value_is_within_its_bucket),
		cmocka_unit_test(test_quantile_of_bimodal_picks_the_tail),
		cmocka_unit_test(test_empty_quantile_is_minus_one),
		cmocka_unit_test(test_window_includes_exactly_its_seconds),
		cmocka_unit_test(test_second_zero_is_a_real_second),
		cmocka_unit_test(test_old_slots_not_counted_after_wrap),
		cmocka_unit_test(test_window_is_clamped_to_ring_length),
		cmocka_unit_test(test_counts_by_status_class),
		cmocka_unit_test(test_prometheus_text_has_expected_lines_and_parses),
		cmocka_unit_test(test_prometheus_writes_both_histograms_when_empty),
		cmocka_unit_test(test_prometheus_escapes_label_values),
		cmocka_unit_test(test_target_names),
		cmocka_unit_test(test_totals_and_revisions_span_shards),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
