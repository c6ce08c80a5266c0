/* test_simulate.c - the offline simulator: deterministic per seed, the
 * engine's decisions on synthetic and recorded traffic come at the times
 * the policy implies, and it is fast enough for thousands of runs. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "simulate.h"

static eng_policy P;
static sim_traffic T;
static char err[256];

/* Adds metric <kind> <name> with range [min, max] (NAN: none) over <window_ms>. */
static eng_metric *add_metric(eng_metric_kind kind, const char *name, double min, double max,
                              uint64_t window_ms)
{
	eng_metric *m = &P.metrics[P.n_metrics++];
	memset(m, 0, sizeof *m);
	snprintf(m->name, sizeof m->name, "%s", name);
	m->kind = kind;
	m->has_min = !isnan(min);
	m->min = m->has_min ? min : 0;
	m->has_max = !isnan(max);
	m->max = m->has_max ? max : 0;
	m->window_ms = window_ms;
	return m;
}

/* A threshold policy: interval 1s, threshold 3, stepWeight 10 up to 50,
 * request-success-rate >= 99 over 1m; 200 req/s, 0.5% errors on both.
 * Flagger's rules for a check: any request counts, no data fails. */
static int setup(void **state)
{
	(void)state;
	eng_policy_defaults(&P);
	P.min_samples = 1;
	P.on_no_data = ENG_NODATA_FAIL;
	P.interval_ms = 1000;
	P.threshold = 3;
	P.max_weight = 50;
	P.step_weight = 10;
	add_metric(ENG_M_SUCCESS_RATE, "request-success-rate", 99, NAN, 60000);
	sim_traffic_defaults(&T);
	err[0] = '\0';
	return 0;
}

static sim *new_sim(uint64_t limit_ms)
{
	sim *s = sim_new(&P, &T, limit_ms, err, sizeof err);
	assert_non_null(s);
	return s;
}

static void test_same_seed_same_result(void **state)
{
	(void)state;
	T.canary_error_rate = 0.02;
	sim *s = new_sim(0);
	sim_result a, b, c;
	sim_run(s, 42, &a);
	sim_run(s, 7, &c);
	sim_run(s, 42, &b);
	assert_int_equal(a.outcome, b.outcome);
	assert_int_equal(a.decision_ms, b.decision_ms);
	assert_int_equal(a.canary_requests, b.canary_requests);
	assert_int_equal(a.canary_errors, b.canary_errors);
	assert_string_equal(a.message, b.message);
	/* and another seed draws other traffic */
	assert_true(a.canary_requests != c.canary_requests || a.canary_errors != c.canary_errors);
	sim_free(s);
}

static void test_healthy_canary_promotes_in_steps_times_interval(void **state)
{
	(void)state;
	/* an error-rate ceiling that 0.5% errors at 20 req/s passes: the
	 * success-rate floor of 99% would fail on a single error */
	P.n_metrics = 0;
	add_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 5, 30000);
	sim *s = new_sim(0);
	sim_summary sum;
	sim_run_many(s, 50, 1, &sum);
	/* 10% at the start, four checks to 50%, the fifth promotes */
	assert_int_equal(sum.promoted, 50);
	assert_true(sum.median_decision_s >= 5.0 && sum.median_decision_s <= 6.0);
	assert_int_equal(sum.first.final_weight, 100);
	assert_int_equal(sum.first.outcome, SIM_PROMOTED);
	sim_free(s);
}

static void test_failing_canary_rolls_back_at_the_threshold_th_check(void **state)
{
	(void)state;
	T.canary_error_rate = 0.20;
	sim *s = new_sim(0);
	for (uint64_t seed = 1; seed <= 20; seed++) {
		sim_result r;
		sim_run(s, seed, &r);
		assert_int_equal(r.outcome, SIM_ROLLED_BACK);
		assert_int_equal(r.final_weight, 0);
		/* three failed checks at 1, 2, 3 s; one lucky check may pass */
		assert_true(r.decision_ms >= 3000 && r.decision_ms <= 4000);
		assert_non_null(strstr(r.message, "rolling back"));
	}
	sim_summary sum;
	sim_run_many(s, 100, 1, &sum);
	assert_int_equal(sum.rolled_back, 100);
	assert_true(fabs(sum.median_decision_s - 3.0) < 1e-9);
	sim_free(s);
}

static void test_change_at_turns_a_healthy_canary_bad(void **state)
{
	(void)state;
	P.n_metrics = 0;
	add_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 5, 5000);
	P.step_weight = 1; /* 50 steps: 50 s to promote */
	T.change_at_ms = 20000;
	T.canary_error_rate_after = 0.5;
	sim *s = new_sim(0);
	sim_result r;
	sim_run(s, 3, &r);
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_true(r.decision_ms > 20000 && r.decision_ms <= 25000);
	sim_free(s);
}

static void test_slow_canary_fails_the_duration_metric(void **state)
{
	(void)state;
	P.n_metrics = 0;
	add_metric(ENG_M_DURATION, "request-duration", NAN, 500, 30000);
	sim *s = new_sim(0);
	sim_result r;
	sim_run(s, 1, &r);
	/* lognormal around 50 ms, sigma 0.5: p99 about 160 ms */
	assert_int_equal(r.outcome, SIM_PROMOTED);
	sim_free(s);
	T.canary_extra_latency_ms = 400; /* p99 about 1.4 s */
	s = new_sim(0);
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_int_equal(r.decision_ms, 3000);
	assert_non_null(strstr(r.message, "request-duration"));
	sim_free(s);
}

static void test_relative_metric_compares_with_stable(void **state)
{
	(void)state;
	P.n_metrics = 0;
	eng_metric *m = add_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 3, 30000);
	m->relative = true;
	/* both at 8%: far above an absolute 3, but no worse than stable */
	T.stable_error_rate = T.canary_error_rate = 0.08;
	T.rps = 2000;
	sim *s = new_sim(0);
	sim_result r;
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_PROMOTED);
	sim_free(s);
	T.canary_error_rate = 0.20;
	s = new_sim(0);
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_non_null(strstr(r.message, "vs stable"));
	sim_free(s);
}

static void test_undecided_at_the_time_limit(void **state)
{
	(void)state;
	P.threshold = 1000000;
	T.canary_error_rate = 0.20;
	sim *s = new_sim(60000);
	sim_result r;
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_UNDECIDED);
	assert_int_equal(r.decision_ms, 60000);
	assert_int_equal(r.final_weight, 10);
	assert_int_equal(r.checks, 60);
	sim_free(s);
}

static void test_custom_metrics_are_left_out(void **state)
{
	(void)state;
	add_metric(ENG_M_CUSTOM, "queue-depth", NAN, 10, 60000);
	P.metrics[0] = P.metrics[1];
	P.n_metrics = 1;
	sim *s = new_sim(0);
	assert_int_equal(sim_skipped_metrics(s), 1);
	assert_string_equal(sim_skipped_metric(s, 0), "queue-depth");
	assert_null(sim_skipped_metric(s, 1));
	sim_result r;
	sim_run(s, 1, &r);
	/* nothing left to fail: promoted in steps x interval */
	assert_int_equal(r.outcome, SIM_PROMOTED);
	assert_int_equal(r.decision_ms, 5000);
	sim_free(s);
}

static void test_bad_traffic_is_refused(void **state)
{
	(void)state;
	T.canary_error_rate = 1.5;
	assert_null(sim_new(&P, &T, 0, err, sizeof err));
	assert_non_null(strstr(err, "error rates"));
	sim_traffic_defaults(&T);
	T.rps = 0;
	assert_null(sim_new(&P, &T, 0, err, sizeof err));
	assert_non_null(strstr(err, "requests per second"));
	sim_traffic_defaults(&T);
	T.stable_error_rate = NAN;
	assert_null(sim_new(&P, &T, 0, err, sizeof err));
	sim_traffic_defaults(&T);
	assert_null(sim_new(&P, &T, 25ULL * 3600 * 1000, err, sizeof err));
	assert_non_null(strstr(err, "24h"));
}

/* 1000 rollouts that run the full 30 minutes (failing checks that never
 * reach the threshold) with a latency metric: the worst case for speed. */
static void test_thousand_half_hour_runs_are_fast(void **state)
{
	(void)state;
	P.threshold = 1000000;
	add_metric(ENG_M_DURATION, "request-duration", NAN, 500, 30000);
	T.canary_error_rate = 0.20;
	sim *s = new_sim(0);
	/* CPU time: a machine busy with other work must not fail the test */
	struct timespec a, b, wa, wb;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	clock_gettime(CLOCK_MONOTONIC, &wa);
	sim_summary sum;
	sim_run_many(s, 1000, 1, &sum);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	clock_gettime(CLOCK_MONOTONIC, &wb);
	double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	double wall = (double)(wb.tv_sec - wa.tv_sec) + (double)(wb.tv_nsec - wa.tv_nsec) / 1e9;
	printf("# 1000 simulated 30-minute rollouts (threshold judge): %.2f s CPU, %.2f s wall\n",
	       secs, wall);
	assert_int_equal(sum.undecided, 1000);
	assert_int_equal(sum.first.decision_ms, SIM_DEFAULT_LIMIT_MS);
	assert_int_equal(sum.first.checks, 1800);
	assert_true(secs < 60);
	sim_free(s);
}

/* ---- recorded traffic ---- */

static const char CSV[] =
	"second,stable_requests,stable_errors,canary_requests,canary_errors,canary_p99_ms\n"
	"# healthy for three seconds, then the canary fails\n"
	"100,180,1,20,0,120\n"
	"101,180,0,20,0,130\r\n"
	"102,180,1,20,0,125\n"
	"\n"
	"103,180,1,20,8,900\n"
	"104,180,0,20,9,950\n"
	"105,180,1,20,7,990\n"
	"106,180,1,20,9,990\n"
	"107,180,0,20,8,990\n"
	"108,180,1,20,9,990\n"
	"109,180,0,20,9,990\n";

static void test_csv_parses_rows_from_second_zero(void **state)
{
	(void)state;
	sim_data d;
	assert_int_equal(sim_parse_csv("rec.csv", CSV, sizeof CSV - 1, &d, err, sizeof err), 0);
	assert_int_equal(d.n, 10);
	assert_int_equal(d.sec[0].stable_requests, 180);
	assert_int_equal(d.sec[1].canary_requests, 20);
	assert_true(d.sec[1].has_p99);
	assert_true(fabs(d.sec[1].canary_p99_ms - 130) < 1e-9);
	assert_int_equal(d.sec[4].canary_errors, 9);
	sim_data_release(&d);
	assert_null(d.sec);
}

static void test_csv_gaps_are_seconds_without_traffic(void **state)
{
	(void)state;
	static const char gap[] = "0,10,0,1,0\n3,10,0,1,0\n";
	sim_data d;
	assert_int_equal(sim_parse_csv("g.csv", gap, sizeof gap - 1, &d, err, sizeof err), 0);
	assert_int_equal(d.n, 4);
	assert_int_equal(d.sec[1].stable_requests, 0);
	assert_false(d.sec[0].has_p99);
	sim_data_release(&d);
}

static void test_csv_errors_name_the_line(void **state)
{
	(void)state;
	sim_data d;
	static const char bad1[] = "0,10,0,1,0\n1,10,x,1,0\n";
	assert_int_equal(sim_parse_csv("a.csv", bad1, sizeof bad1 - 1, &d, err, sizeof err), -1);
	assert_string_equal(err, "a.csv:2: stable_errors is not a non-negative integer");
	static const char bad2[] = "5,10,0,1,0\n5,10,0,1,0\n";
	assert_int_equal(sim_parse_csv("a.csv", bad2, sizeof bad2 - 1, &d, err, sizeof err), -1);
	assert_string_equal(err, "a.csv:2: second 5 does not come after 5");
	static const char bad3[] = "0,10,11,1,0\n";
	assert_int_equal(sim_parse_csv("a.csv", bad3, sizeof bad3 - 1, &d, err, sizeof err), -1);
	assert_string_equal(err, "a.csv:1: more errors than requests");
	static const char bad4[] = "0,10,1\n";
	assert_int_equal(sim_parse_csv("a.csv", bad4, sizeof bad4 - 1, &d, err, sizeof err), -1);
	assert_non_null(strstr(err, "a.csv:1: expected at least 5 columns"));
	static const char bad5[] = "0,10,1,1,0,fast\n";
	assert_int_equal(sim_parse_csv("a.csv", bad5, sizeof bad5 - 1, &d, err, sizeof err), -1);
	assert_non_null(strstr(err, "a.csv:1: canary_p99_ms"));
	/* strtod alone would read these as 16 and 16 ms */
	static const char *const bad6[] = { "0,10,1,1,0,0x10\n", "0,10,1,1,0,0x1p4\n",
	                                    "0,10,1,1,0, \n" /* was read as 0 ms */,
	                                    "0,10,1,1,0,+5\n" };
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(sim_parse_csv("a.csv", bad6[i], strlen(bad6[i]), &d, err, sizeof err), -1);
		assert_non_null(strstr(err, "a.csv:1: canary_p99_ms"));
	}
	static const char empty[] = "second,stable_requests\n# nothing\n";
	assert_int_equal(sim_parse_csv("a.csv", empty, sizeof empty - 1, &d, err, sizeof err), -1);
	assert_string_equal(err, "a.csv: no data rows");
}

static void test_csv_replay_rolls_back_after_the_failure_starts(void **state)
{
	(void)state;
	sim_data d;
	assert_int_equal(sim_parse_csv("rec.csv", CSV, sizeof CSV - 1, &d, err, sizeof err), 0);
	P.n_metrics = 0;
	add_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 5, 2000);
	P.step_weight = 5; /* 10 steps: no promotion within the recording */
	T.data = &d;
	sim *s = new_sim(0);
	sim_result r;
	sim_run(s, 1, &r);
	/* seconds 3, 4 and 5 fail: rolled back at the check at 6 s */
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_int_equal(r.decision_ms, 6000);
	assert_int_equal(r.canary_requests, 120);
	sim_free(s);
	sim_data_release(&d);
}

static void test_csv_replay_p99_feeds_the_duration_metric(void **state)
{
	(void)state;
	sim_data d;
	assert_int_equal(sim_parse_csv("rec.csv", CSV, sizeof CSV - 1, &d, err, sizeof err), 0);
	P.n_metrics = 0;
	add_metric(ENG_M_DURATION, "request-duration", NAN, 500, 1000);
	P.step_weight = 5;
	T.data = &d;
	sim *s = new_sim(0);
	sim_result r;
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_int_equal(r.decision_ms, 6000);
	assert_non_null(strstr(r.message, "request-duration"));
	sim_free(s);
	sim_data_release(&d);
}

static void test_csv_replay_ends_undecided_with_the_data(void **state)
{
	(void)state;
	static const char ok[] = "0,180,0,20,0\n1,180,0,20,0\n";
	sim_data d;
	assert_int_equal(sim_parse_csv("ok.csv", ok, sizeof ok - 1, &d, err, sizeof err), 0);
	T.data = &d;
	sim *s = new_sim(0);
	sim_result r;
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_UNDECIDED);
	assert_int_equal(r.decision_ms, 2000);
	assert_int_equal(r.final_weight, 30);
	sim_free(s);
	sim_data_release(&d);
}



static void test_csv_replay_without_p99_leaves_out_the_duration_metric(void **state)
{
	(void)state;
	static const char ok[] = "0,180,0,20,0\n1,180,0,20,0\n";
	sim_data d;
	assert_int_equal(sim_parse_csv("ok.csv", ok, sizeof ok - 1, &d, err, sizeof err), 0);
	add_metric(ENG_M_DURATION, "request-duration", NAN, 500, 30000);
	T.data = &d;
	sim *s = new_sim(0);
	assert_int_equal(sim_skipped_metrics(s), 1);
	assert_string_equal(sim_skipped_metric(s, 0), "request-duration");
	sim_free(s);
	sim_data_release(&d);
}

/* ---- the sequential judge ---- */

/* docs/examples/sequential.yaml: stepWeights 10, 20, 30, 50, a p99 guard. */
static void sequential(void)
{
	P.judge = ENG_JUDGE_SEQUENTIAL;
	P.alpha = 0.01;
	P.min_samples = 100;
	P.on_no_data = ENG_NODATA_HOLD;
	P.step_weight = 0;
	P.n_step_weights = 4;
	P.step_weights[0] = 10;
	P.step_weights[1] = 20;
	P.step_weights[2] = 30;
	P.step_weights[3] = 50;
	P.n_metrics = 0;
	add_metric(ENG_M_DURATION, "request-duration", NAN, 500, 30000);
}

static void test_sequential_rolls_back_a_failing_canary_within_seconds(void **state)
{
	(void)state;
	sequential();
	T.canary_error_rate = 0.20;
	sim *s = new_sim(0);
	sim_summary sum;
	sim_run_many(s, 200, 1, &sum);
	printf("# sequential, 20%% failing canary at 10%% of 200 req/s: median %.1f s, p95 %.1f s\n",
	       sum.median_decision_s, sum.p95_decision_s);
	assert_int_equal(sum.rolled_back, 200);
	assert_true(sum.median_decision_s < 2.0);
	assert_non_null(strstr(sum.first.message, "sequential test: canary error rate"));
	sim_free(s);
}

static void test_sequential_promotes_a_healthy_canary(void **state)
{
	(void)state;
	sequential();
	sim *s = new_sim(0);
	sim_summary sum;
	sim_run_many(s, 100, 1, &sum);
	printf("# sequential, healthy canary: %d of 100 promoted, median %.1f s\n", sum.promoted,
	       sum.median_decision_s);
	/* alpha 0.01 bounds the false rollbacks; 3 of 100 would be very unlikely */
	assert_true(sum.rolled_back <= 3);
	assert_true(sum.promoted >= 97);
	sim_free(s);
}

static void test_sequential_rolls_back_a_slightly_worse_canary(void **state)
{
	(void)state;
	sequential();
	T.canary_error_rate = 0.02;
	sim *s = new_sim(0);
	sim_summary sum;
	sim_run_many(s, 100, 1, &sum);
	printf("# sequential, canary 2%% vs stable 0.5%%: %d of 100 rolled back, median %.1f s\n",
	       sum.rolled_back, sum.median_decision_s);
	assert_true(sum.rolled_back >= 90);
	sim_free(s);
}

#define TS(f) cmocka_unit_test_setup(f, setup)

int main(void)
{
	const struct CMUnitTest tests[] = {
		TS(test_same_seed_same_result),
		TS(test_healthy_canary_promotes_in_steps_times_interval),
		TS(test_failing_canary_rolls_back_at_the_threshold_th_check),
		TS(test_change_at_turns_a_healthy_canary_bad),
		TS(test_slow_canary_fails_the_duration_metric),
		TS(test_relative_metric_compares_with_stable),
		TS(test_undecided_at_the_time_limit),
		TS(test_custom_metrics_are_left_out),
		TS(test_bad_traffic_is_refused),
		TS(test_thousand_half_hour_runs_are_fast),
		TS(test_csv_parses_rows_from_second_zero),
		TS(test_csv_gaps_are_seconds_without_traffic),
		TS(test_csv_errors_name_the_line),
		TS(test_csv_replay_rolls_back_after_the_failure_starts),
		TS(test_csv_replay_p99_feeds_the_duration_metric),
		TS(test_csv_replay_ends_undecided_with_the_data),
		TS(test_csv_replay_without_p99_leaves_out_the_duration_metric),
		TS(test_sequential_rolls_back_a_failing_canary_within_seconds),
		TS(test_sequential_promotes_a_healthy_canary),
		TS(test_sequential_rolls_back_a_slightly_worse_canary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
