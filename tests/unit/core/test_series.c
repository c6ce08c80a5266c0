/* test_series.c - the dashboard's ring of 5-second samples (series.h):
 * samples kept in time order, the oldest dropped when full and nothing
 * else growing, a reader given those after <since> within 30 minutes, and
 * a bucket's side from the stats sums (no rate, no quantile when it had
 * no requests). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "series.h"

static series_sample at(uint64_t t_ms, int weight)
{
	series_sample s;
	memset(&s, 0, sizeof s);
	s.t_ms = t_ms;
	s.weight = weight;
	return s;
}

/* Pushed in order, read back oldest first; a sample not later than the
 * newest is dropped (a clock stepped back) and changes nothing. */
static void test_keeps_time_order(void **state)
{
	series *r = calloc(1, sizeof *r);
	series_sample s = at(5000, 10);
	assert_int_equal(series_push(r, &s), 1);
	s = at(10000, 20);
	assert_int_equal(series_push(r, &s), 1);
	s = at(10000, 99);
	assert_int_equal(series_push(r, &s), 0);
	s = at(7000, 99);
	assert_int_equal(series_push(r, &s), 0);
	assert_int_equal(r->n, 2);
	assert_int_equal(series_at(r, 0)->t_ms, 5000);
	assert_int_equal(series_at(r, 1)->t_ms, 10000);
	assert_int_equal(series_at(r, 1)->weight, 20);
	series_clear(r);
	assert_int_equal(r->n, 0);
	free(r);
}

/* A day of samples: the ring holds the last SERIES_LEN (30 minutes at
 * 5 s), oldest first, and its size never changes. */
static void test_wraps_at_thirty_minutes(void **state)
{
	assert_int_equal(SERIES_LEN, 360);
	series *r = calloc(1, sizeof *r);
	const uint64_t n = 24 * 3600 / SERIES_STEP_SEC;
	for (uint64_t i = 1; i <= n; i++) {
		series_sample s = at(i * 5000, (int)(i % 101));
		assert_int_equal(series_push(r, &s), 1);
		assert_true(r->n <= SERIES_LEN);
	}
	assert_int_equal(r->n, SERIES_LEN);
	assert_int_equal(series_at(r, 0)->t_ms, (n - SERIES_LEN + 1) * 5000);
	assert_int_equal(series_at(r, SERIES_LEN - 1)->t_ms, n * 5000);
	for (size_t i = 1; i < r->n; i++)
		assert_int_equal(series_at(r, i)->t_ms - series_at(r, i - 1)->t_ms, 5000);
	free(r);
}

/* since: only samples after it; and never older than 30 minutes before
 * the reader's now (a canary idle for an hour has no stale chart) */
static void test_select(void **state)
{
	series *r = calloc(1, sizeof *r);
	for (uint64_t i = 1; i <= 10; i++) {
		series_sample s = at(i * 5000, 0);
		series_push(r, &s);
	}
	size_t first, n;
	n = series_select(r, 0, 50000, &first);
	assert_int_equal(n, 10);
	assert_int_equal(first, 0);
	n = series_select(r, 25000, 50000, &first);   /* t > since, not >= */
	assert_int_equal(n, 5);
	assert_int_equal(series_at(r, first)->t_ms, 30000);
	n = series_select(r, 50000, 50000, &first);
	assert_int_equal(n, 0);
	n = series_select(r, 99999999, 50000, &first);
	assert_int_equal(n, 0);
	/* now is 30 minutes and 20 s after t=0: samples at 20 s and before
	 * are too old */
	n = series_select(r, 0, SERIES_SPAN_MS + 20000, &first);
	assert_int_equal(n, 6);
	assert_int_equal(series_at(r, first)->t_ms, 25000);
	/* wrapped: the search works across the ring's end */
	for (uint64_t i = 11; i <= SERIES_LEN + 100; i++) {
		series_sample s = at(i * 5000, 0);
		series_push(r, &s);
	}
	uint64_t newest = (SERIES_LEN + 100) * 5000ull;
	n = series_select(r, newest - 15000, newest, &first);
	assert_int_equal(n, 3);
	assert_int_equal(series_at(r, first)->t_ms, newest - 10000);
	n = series_select(r, 0, newest, &first);
	assert_int_equal(n, SERIES_LEN);
	free(r);
}

/* A bucket's side: requests, 5xx, and the quantiles of its latency
 * buckets; a bucket without requests has no rate and no quantiles. */
static void test_side_from_sums(void **state)
{
	stats_summary sum;
	memset(&sum, 0, sizeof sum);
	series_side sd;
	double rate = 123;
	series_side_from(&sd, &sum);
	assert_int_equal(sd.requests, 0);
	assert_false(series_error_rate(&sd, &rate));
	assert_true(sd.p50 < 0 && sd.p95 < 0 && sd.p99 < 0);

	sum.total = 200;
	sum.by_class[2] = 190;
	sum.by_class[5] = 10;
	sum.hist[stats_bucket_of(2000)] = 100;    /* 2 ms */
	sum.hist[stats_bucket_of(40000)] = 100;   /* 40 ms */
	series_side_from(&sd, &sum);
	assert_int_equal(sd.requests, 200);
	assert_int_equal(sd.errors, 10);
	assert_true(series_error_rate(&sd, &rate));
	assert_float_equal(rate, 5.0, 1e-9);
	assert_true(sd.p50 >= 1.5 && sd.p50 <= 2.5);
	assert_true(sd.p95 >= 30 && sd.p95 <= 50);
	assert_true(sd.p99 >= sd.p95);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keeps_time_order),
		cmocka_unit_test(test_wraps_at_thirty_minutes),
		cmocka_unit_test(test_select),
		cmocka_unit_test(test_side_from_sums),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
