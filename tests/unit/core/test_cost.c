/* test_cost.c - spec.cost's arithmetic (cost.h; docs/config.md gives the
 * formulas): running cost, failed requests' cost, and what a rollback
 * saved against a full rollout at the canary's error rate. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cost.h"

static const cost_rates gbp = { "GBP", 0.40, 0.12, 0.002 };

/* The rates: 15 minutes and 12,345 canary requests of which 12
 * failed, still running: no saving to speak of. */
static void test_running_rollout(void **state)
{
	cost_counts c = { .hours = 0.25, .canary_requests = 12345, .canary_failed = 12,
	                  .all_requests = 123450, .all_failed = 20 };
	cost_result r;
	cost_compute(&gbp, &c, &r);
	assert_float_equal(r.running, 0.12 * 0.25 + 0.40 * 12345 / 1e6, 1e-12);
	assert_float_equal(r.running, 0.034938, 1e-9);
	assert_float_equal(r.failed_cost, 0.024, 1e-12);
	assert_false(r.has_saved);
}

/* Rolled back: a full rollout would have served every request at the
 * canary's error rate, 100,000 x 50/1,000 = 5,000 failures; 60 were
 * served (50 by the canary, 10 by stable): 4,940 avoided. */
static void test_rollback_saves(void **state)
{
	cost_counts c = { .hours = 0.1, .canary_requests = 1000, .canary_failed = 50,
	                  .all_requests = 100000, .all_failed = 60, .rolled_back = true };
	cost_result r;
	cost_compute(&gbp, &c, &r);
	assert_true(r.has_saved);
	assert_float_equal(r.full_failed, 5000, 1e-9);
	assert_float_equal(r.saved, 0.002 * 4940, 1e-9);
	assert_float_equal(r.failed_cost, 0.1, 1e-12);
}

/* A canary no worse than what users got: nothing saved, never a negative
 * saving; and no canary request at all gives no rate, so no claim. */
static void test_saving_floored_and_needs_a_rate(void **state)
{
	cost_counts c = { .canary_requests = 100, .canary_failed = 0, .all_requests = 1000,
	                  .all_failed = 7, .rolled_back = true };
	cost_result r;
	cost_compute(&gbp, &c, &r);
	assert_true(r.has_saved);
	assert_float_equal(r.full_failed, 0, 1e-12);
	assert_float_equal(r.saved, 0, 1e-12);

	cost_counts none = { .hours = 2, .all_requests = 500, .all_failed = 3,
	                     .rolled_back = true };
	cost_compute(&gbp, &none, &r);
	assert_false(r.has_saved);
	assert_float_equal(r.running, 0.24, 1e-12);
	assert_float_equal(r.failed_cost, 0, 1e-12);
}

/* A mirrored canary: 400 answers, 40 failed, 30 of those to copies no
 * user got. Failures served: 10; the canary's rate (40/400) is what a
 * full rollout is judged at, over the users' requests only. */
static void test_copies_are_not_failures_served(void **state)
{
	cost_counts c = { .hours = 1, .canary_requests = 400, .canary_failed = 40,
	                  .copies_failed = 30, .all_requests = 1000, .all_failed = 12,
	                  .rolled_back = true };
	cost_result r;
	cost_compute(&gbp, &c, &r);
	assert_float_equal(r.failed_cost, 0.002 * 10, 1e-12);
	assert_float_equal(r.running, 0.12 + 0.40 * 400 / 1e6, 1e-12);
	assert_float_equal(r.full_failed, 100, 1e-9);
	assert_float_equal(r.saved, 0.002 * 88, 1e-9);
}

/* Rates of zero cost nothing; large counts stay exact enough. */
static void test_zero_rates_and_large_counts(void **state)
{
	const cost_rates zero = { "EUR", 0, 0, 0 };
	cost_counts c = { .hours = 1e6, .canary_requests = 4000000000000ull,
	                  .canary_failed = 1000000000ull, .all_requests = 8000000000000ull,
	                  .all_failed = 1000000000ull, .rolled_back = true };
	cost_result r;
	cost_compute(&zero, &c, &r);
	assert_float_equal(r.running, 0, 0);
	assert_float_equal(r.saved, 0, 0);
	assert_float_equal(r.full_failed, 2e9, 1);
	cost_compute(&gbp, &c, &r);
	assert_float_equal(r.running, 0.12e6 + 0.40 * 4e6, 1e-6);
	assert_float_equal(r.saved, 0.002 * 1e9, 1e-3);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_running_rollout),
		cmocka_unit_test(test_rollback_saves),
		cmocka_unit_test(test_saving_floored_and_needs_a_rate),
		cmocka_unit_test(test_copies_are_not_failures_served),
		cmocka_unit_test(test_zero_rates_and_large_counts),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
