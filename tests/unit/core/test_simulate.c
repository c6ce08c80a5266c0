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
	sim_run_many(s, 50, 1, &sum, NULL, NULL);
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
	sim_run_many(s, 100, 1, &sum, NULL, NULL);
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
/* Half-hour rollouts that never decide run to the limit with every check
 * made. How fast the simulator is, is bench/analysis.sh's to say (it
 * prints its time), not a timed assertion's: the CPU time is printed. */
static void test_half_hour_runs_end_undecided_with_every_check(void **state)
{
	(void)state;
	P.threshold = 1000000;
	add_metric(ENG_M_DURATION, "request-duration", NAN, 500, 30000);
	T.canary_error_rate = 0.20;
	sim *s = new_sim(0);
	struct timespec a, b;
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &a);
	sim_summary sum;
	sim_run_many(s, 50, 1, &sum, NULL, NULL);
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &b);
	double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
	printf("# 50 simulated 30-minute rollouts (threshold judge): %.2f s CPU\n", secs);
	assert_int_equal(sum.undecided, 50);
	assert_int_equal(sum.first.decision_ms, SIM_DEFAULT_LIMIT_MS);
	assert_int_equal(sum.first.checks, 1800);
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
	T.replay_recorded_split = true;
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

/* A recording of stable alone (the canary had no traffic yet) replays at
 * the engine's weights: the canary gets its share of the requests at
 * stable's recorded error rate and latencies (an A/A test). */
static void test_csv_replay_at_the_engines_weight(void **state)
{
	(void)state;
	char text[8192];
	size_t len = 0;
	int fast = stats_bucket_of(40000), slow = stats_bucket_of(400000);
	for (int i = 0; i < 60; i++)
		len += (size_t)snprintf(text + len, sizeof text - len, "%d,200,2,0,0,,%d:196;%d:4,\n", i,
		                        fast, slow);
	sim_data d;
	assert_int_equal(sim_parse_csv("a.csv", text, len, &d, err, sizeof err), 0);
	P.threshold = 1000000; /* stays at 10 %: 20 of 200 req/s */
	P.n_metrics = 0;
	add_metric(ENG_M_SUCCESS_RATE, "request-success-rate", 100.5, NAN, 60000);
	add_metric(ENG_M_DURATION, "request-duration", NAN, 1000, 60000);
	T.data = &d;
	sim *s = new_sim(0);
	sim_result r;
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_UNDECIDED);
	printf("# stable-only recording at weight 10: canary %llu requests, %llu errors\n",
	       (unsigned long long)r.canary_requests, (unsigned long long)r.canary_errors);
	assert_true(r.canary_requests > 1000 && r.canary_requests < 1400);
	assert_true(r.canary_errors > 2 && r.canary_errors < 30); /* 1 %: 12 */
	sim_free(s);
	/* as recorded: the canary had nothing */
	T.replay_recorded_split = true;
	s = new_sim(0);
	sim_run(s, 1, &r);
	assert_int_equal(r.canary_requests, 0);
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
	sim_run_many(s, 200, 1, &sum, NULL, NULL);
	printf("# sequential, 20%% failing canary at 10%% of 200 req/s: median %.1f s, p95 %.1f s\n",
	       sum.median_decision_s, sum.p95_decision_s);
	assert_int_equal(sum.rolled_back, 200);
	/* a window of 50 canary requests, 2.5 s here (docs/analysis.md) */
	assert_true(sum.median_decision_s < 10.0);
	assert_non_null(strstr(sum.first.message, "sequential test: canary error rate"));
	sim_free(s);
}

static void test_sequential_promotes_a_healthy_canary(void **state)
{
	(void)state;
	sequential();
	sim *s = new_sim(0);
	sim_summary sum;
	sim_run_many(s, 100, 1, &sum, NULL, NULL);
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
	sim_run_many(s, 100, 1, &sum, NULL, NULL);
	printf("# sequential, canary 2%% vs stable 0.5%%: %d of 100 rolled back, median %.1f s\n",
	       sum.rolled_back, sum.median_decision_s);
	assert_true(sum.rolled_back >= 90);
	sim_free(s);
}

/* ---- traffic shapes ---- */

/* A rollout that never advances nor decides: the canary stays at 10 %. */
static void stay_at_ten(void)
{
	P.threshold = 1000000;
	P.n_metrics = 0;
	add_metric(ENG_M_SUCCESS_RATE, "request-success-rate", 100.5, NAN, 60000);
}

/* Mean and standard deviation of the canary's errors over <runs> runs. */
static void canary_errors(sim *s, int runs, double *mean, double *sd, double *rate)
{
	double sum = 0, sq = 0, req = 0;
	for (int i = 0; i < runs; i++) {
		sim_result r;
		sim_run(s, (uint64_t)i + 1, &r);
		sum += (double)r.canary_errors;
		sq += (double)r.canary_errors * (double)r.canary_errors;
		req += (double)r.canary_requests;
	}
	*mean = sum / runs;
	*sd = sqrt(sq / runs - *mean * *mean);
	*rate = sum / req;
}

static void test_bursts_keep_the_rate_and_clump_the_failures(void **state)
{
	(void)state;
	stay_at_ten();
	T.canary_error_rate = 0.05;
	double m0, sd0, r0, m1, sd1, r1;
	sim *s = new_sim(600000);
	canary_errors(s, 40, &m0, &sd0, &r0);
	sim_free(s);
	T.burst_size = 50;
	s = new_sim(600000);
	canary_errors(s, 40, &m1, &sd1, &r1);
	sim_free(s);
	printf("# canary 5%%: %.4f without bursts (sd %.1f), %.4f in bursts of 50 (sd %.1f)\n", r0,
	       sd0, r1, sd1);
	/* the same long-run rate; 12000 requests a run, 40 runs */
	assert_true(fabs(r0 - 0.05) < 0.004);
	assert_true(fabs(r1 - 0.05) < 0.01);
	/* clumps of 50 spread the count about sqrt(50) times wider */
	assert_true(sd1 > 3 * sd0);
}

static void test_tail_factor_moves_p99_and_not_the_median(void **state)
{
	(void)state;
	T.canary_tail_factor = 3;
	sim *s = new_sim(0);
	double s50 = sim_latency_quantile_ms(s, 0, false, 0.5);
	double c50 = sim_latency_quantile_ms(s, 1, false, 0.5);
	double s99 = sim_latency_quantile_ms(s, 0, false, 0.99);
	double c99 = sim_latency_quantile_ms(s, 1, false, 0.99);
	double s95 = sim_latency_quantile_ms(s, 0, false, 0.95);
	double c95 = sim_latency_quantile_ms(s, 1, false, 0.95);
	printf("# tail x3: p50 %.1f/%.1f ms, p95 %.1f/%.1f, p99 %.1f/%.1f (stable/canary)\n", s50,
	       c50, s95, c95, s99, c99);
	assert_true(c50 == s50 && c95 == s95);
	/* within the buckets' resolution */
	assert_true(c99 / s99 > 2.7 && c99 / s99 < 3.3);
	sim_free(s);
}

static void test_warmup_slows_the_canary_for_its_first_seconds(void **state)
{
	(void)state;
	T.canary_warmup_ms = 30000;
	T.canary_warmup_factor = 3;
	sim *s = new_sim(0);
	double w50 = sim_latency_quantile_ms(s, 1, true, 0.5), c50 = sim_latency_quantile_ms(s, 1, false, 0.5);
	assert_true(w50 / c50 > 2.7 && w50 / c50 < 3.3);
	sim_free(s);
	/* p99 160 ms, 480 during the warm-up: a 320 ms limit over 5 s */
	P.n_metrics = 0;
	add_metric(ENG_M_DURATION, "request-duration", NAN, 320, 5000);
	s = new_sim(0);
	sim_summary sum;
	sim_run_many(s, 20, 1, &sum, NULL, NULL);
	assert_int_equal(sum.rolled_back, 20);
	assert_true(sum.p95_decision_s < 30);
	sim_free(s);
	T.canary_warmup_ms = 0;
	s = new_sim(0);
	sim_run_many(s, 20, 1, &sum, NULL, NULL);
	assert_int_equal(sum.promoted, 20);
	sim_free(s);
}

static void test_a_shared_outage_fails_both_versions(void **state)
{
	(void)state;
	T.stable_error_rate = T.canary_error_rate = 0;
	T.outage_at_ms = 2000;
	T.outage_for_ms = 10000;
	T.outage_error_rate = 0.5;
	sim *s = new_sim(0);
	sim_result r;
	sim_run(s, 1, &r);
	/* the absolute metric fails from the outage on */
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_true(r.decision_ms >= 2000 && r.decision_ms <= 6000);
	assert_true(r.canary_errors > 0);
	sim_free(s);
	/* at most 20 points worse than stable: both fail alike, no rollback */
	P.n_metrics = 0;
	eng_metric *m = add_metric(ENG_M_SUCCESS_RATE, "request-success-rate", -20, NAN, 60000);
	m->relative = true;
	s = new_sim(0);
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_PROMOTED);
	sim_free(s);
}

static void test_stable_change_moves_stable_only(void **state)
{
	(void)state;
	P.n_metrics = 0;
	eng_metric *m = add_metric(ENG_M_SUCCESS_RATE, "request-success-rate", -15, NAN, 5000);
	m->relative = true;
	T.canary_error_rate = 0.30;
	sim *s = new_sim(0);
	sim_result r;
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	sim_free(s);
	/* stable as bad as the canary from 100 ms on: the canary is no worse */
	T.stable_change_at_ms = 100;
	T.stable_error_rate_after = 0.30;
	s = new_sim(0);
	sim_summary sum;
	sim_run_many(s, 10, 1, &sum, NULL, NULL);
	assert_true(sum.promoted >= 9);
	sim_free(s);
}

static void test_rps_steps_ramps_and_low_traffic(void **state)
{
	(void)state;
	stay_at_ten();
	sim_result r;
	sim *s = new_sim(60000);
	sim_run(s, 1, &r);
	assert_true(r.canary_requests > 1000 && r.canary_requests < 1400); /* 10 % of 200/s */
	sim_free(s);
	T.rps_change_at_ms = 1000;
	T.rps_after = 1;
	s = new_sim(60000);
	sim_run(s, 1, &r);
	assert_true(r.canary_requests < 80);
	sim_free(s);
	/* a ramp from 1 to 201 req/s over the minute: 101 on average */
	T.rps = 1;
	T.rps_change_at_ms = 100;
	T.rps_after = 201;
	T.rps_ramp_ms = 60000;
	s = new_sim(60000);
	sim_run(s, 1, &r);
	assert_true(r.canary_requests > 450 && r.canary_requests < 750);
	sim_free(s);
	/* 1 req/s: Poisson counts of 0.1 a tick, 360 canary requests an hour */
	T.rps_change_at_ms = T.rps_ramp_ms = 0;
	s = new_sim(3600000);
	sim_run(s, 1, &r);
	printf("# 1 req/s for an hour at 10%%: %llu canary requests\n",
	       (unsigned long long)r.canary_requests);
	assert_true(r.canary_requests > 270 && r.canary_requests < 460);
	sim_free(s);
}

static void test_bad_shapes_are_refused(void **state)
{
	(void)state;
	T.canary_tail_factor = 0.5;
	assert_null(sim_new(&P, &T, 0, err, sizeof err));
	assert_non_null(strstr(err, "tail factor"));
	T.canary_tail_factor = 3;
	T.canary_tail_share = 0.6;
	assert_null(sim_new(&P, &T, 0, err, sizeof err));
	T.canary_tail_share = 0.02;
	T.outage_error_rate = 1.5;
	assert_null(sim_new(&P, &T, 0, err, sizeof err));
	T.outage_error_rate = 1;
	T.rps_change_at_ms = 1000;
	T.rps_after = 0;
	assert_null(sim_new(&P, &T, 0, err, sizeof err));
	assert_non_null(strstr(err, "after the change"));
}

/* The daemon gives the sequential judge both latency histograms on every
 * tick, with or without a request-duration metric (controller.c
 * observe()): a canary three times slower is the judge's to catch. */
static void test_sequential_judge_gets_the_histograms(void **state)
{
	(void)state;
	sequential();
	P.n_metrics = 0;
	T.canary_extra_latency_ms = 100;
	sim *s = new_sim(0);
	sim_summary sum;
	sim_run_many(s, 20, 1, &sum, NULL, NULL);
	printf("# sequential, no duration metric, canary median 150 vs 50 ms: %d of 20 rolled back\n",
	       sum.rolled_back);
	assert_true(sum.rolled_back >= 19);
	sim_free(s);
}

/* ---- Flagger's and Argo's rules ---- */

static void test_flagger_rules_floor_the_interval(void **state)
{
	(void)state;
	T.canary_error_rate = 0.20;
	sim *s = new_sim(0);
	sim_rules fr = { .kind = SIM_RULES_FLAGGER };
	assert_int_equal(sim_set_rules(s, &fr, err, sizeof err), 0);
	sim_result r;
	sim_run(s, 1, &r);
	/* checks at 10, 20, 30 s; the rollback on the loop after the third */
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_int_equal(r.checks, 3);
	assert_int_equal(r.decision_ms, 40000);
	/* and back to canaryd's: checks every second, rolled back at the third */
	sim_rules cr = { .kind = SIM_RULES_CANARYD };
	assert_int_equal(sim_set_rules(s, &cr, err, sizeof err), 0);
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_true(r.decision_ms <= 5000);
	sim_free(s);
	/* a relative metric is canaryd's own */
	P.metrics[0].relative = true;
	s = new_sim(0);
	assert_int_equal(sim_set_rules(s, &fr, err, sizeof err), -1);
	assert_non_null(strstr(err, "request-success-rate"));
	sim_free(s);
}

static void test_argo_rules_count_failures_and_errors(void **state)
{
	(void)state;
	sim_rules ar = { .kind = SIM_RULES_ARGO, .failure_limit = 2, .consecutive_error_limit = 4 };
	sim *s = new_sim(0);
	assert_int_equal(sim_set_rules(s, &ar, err, sizeof err), 0);
	sim_result r;
	sim_run(s, 1, &r);
	/* setWeight 10..50, a 1 s pause each: promoted after 5 s */
	assert_int_equal(r.outcome, SIM_PROMOTED);
	assert_int_equal(r.decision_ms, 5000);
	sim_free(s);
	/* the third failed measurement exceeds failureLimit 2 */
	T.canary_error_rate = 0.20;
	s = new_sim(0);
	assert_int_equal(sim_set_rules(s, &ar, err, sizeof err), 0);
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_int_equal(r.decision_ms, 3000);
	assert_non_null(strstr(r.message, "failed (3) > failureLimit (2)"));
	sim_free(s);
	/* no traffic: every measurement is an error, the fifth exceeds 4; the
	 * steps went on meanwhile (Argo's background analysis does not gate
	 * them), so a longer analysis needs more steps than it has: 10 */
	T.rps = 0.001;
	P.step_weight = 5;
	s = new_sim(0);
	assert_int_equal(sim_set_rules(s, &ar, err, sizeof err), 0);
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_int_equal(r.decision_ms, 5000);
	assert_non_null(strstr(r.message, "consecutiveErrors (5) > consecutiveErrorLimit (4)"));
	sim_free(s);
	/* iterations, no steps: not a canary in Argo's sense */
	P.step_weight = 0;
	P.iterations = 5;
	s = new_sim(0);
	assert_int_equal(sim_set_rules(s, &ar, err, sizeof err), -1);
	sim_free(s);
}

/* ---- recorded latency histograms ---- */

static void test_csv_histograms_parse_and_replay(void **state)
{
	(void)state;
	char text[4096];
	size_t len = 0;
	int fast = stats_bucket_of(40000), slow = stats_bucket_of(900000);
	len += (size_t)snprintf(text + len, sizeof text - len,
	                        "second,stable_requests,stable_errors,canary_requests,canary_errors,"
	                        "canary_p99_ms,stable_hist,canary_hist\n");
	for (int i = 0; i < 20; i++)
		len += (size_t)snprintf(text + len, sizeof text - len, "%d,180,0,20,0,,%d:170;%d:10,%d:20\n",
		                        i, fast, slow, i < 3 ? fast : slow);
	sim_data d;
	assert_int_equal(sim_parse_csv("h.csv", text, len, &d, err, sizeof err), 0);
	assert_int_equal(d.n, 20);
	assert_non_null(d.sec[0].hist);
	assert_false(d.sec[0].has_p99);
	assert_int_equal(d.sec[0].hist[TARGET_STABLE * STATS_BUCKETS + fast], 170);
	assert_int_equal(d.sec[0].hist[TARGET_STABLE * STATS_BUCKETS + slow], 10);
	assert_int_equal(d.sec[0].hist[TARGET_CANARY * STATS_BUCKETS + fast], 20);
	/* the canary all slow from second 3: a 500 ms p99 limit over 1 s */
	P.n_metrics = 0;
	add_metric(ENG_M_DURATION, "request-duration", NAN, 500, 1000);
	T.data = &d;
	sim *s = new_sim(0);
	assert_int_equal(sim_skipped_metrics(s), 0);
	sim_result r;
	sim_run(s, 1, &r);
	assert_int_equal(r.outcome, SIM_ROLLED_BACK);
	assert_true(r.decision_ms >= 3000 && r.decision_ms <= 7000);
	sim_free(s);
	sim_data_release(&d);

	static const char *const bad[] = {
		"0,10,0,1,0,,0:10\n",           /* stable_hist without canary_hist */
		"0,10,0,1,0,,0:9,0:1\n",        /* 9 of 10 requests */
		"0,10,0,1,0,,0:5;0:5,0:1\n",    /* bucket 0 twice */
		"0,10,0,1,0,,0:10,999:1\n",     /* no such bucket */
		"0,10,0,1,0,,0:10,0:1,x\n",     /* a ninth column */
		"0,10,0,1,0,,0:10;,0:1\n",      /* a trailing ';' */
		"0,10,0,1,0,,0=10,0:1\n",
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		assert_int_equal(sim_parse_csv("h.csv", bad[i], strlen(bad[i]), &d, err, sizeof err), -1);
		assert_non_null(strstr(err, "h.csv:1: "));
		assert_non_null(strstr(err, "_hist"));
		assert_null(d.sec);
	}
	/* no requests: empty histograms */
	static const char empty[] = "0,0,0,0,0,,,\n1,1,0,0,0,12.5,3:1,\n";
	assert_int_equal(sim_parse_csv("h.csv", empty, sizeof empty - 1, &d, err, sizeof err), 0);
	assert_non_null(d.sec[1].hist);
	assert_true(d.sec[1].has_p99);
	sim_data_release(&d);
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
		TS(test_half_hour_runs_end_undecided_with_every_check),
		TS(test_csv_parses_rows_from_second_zero),
		TS(test_csv_gaps_are_seconds_without_traffic),
		TS(test_csv_errors_name_the_line),
		TS(test_csv_replay_rolls_back_after_the_failure_starts),
		TS(test_csv_replay_at_the_engines_weight),
		TS(test_csv_replay_p99_feeds_the_duration_metric),
		TS(test_csv_replay_ends_undecided_with_the_data),
		TS(test_csv_replay_without_p99_leaves_out_the_duration_metric),
		TS(test_sequential_rolls_back_a_failing_canary_within_seconds),
		TS(test_sequential_promotes_a_healthy_canary),
		TS(test_sequential_rolls_back_a_slightly_worse_canary),
		TS(test_bursts_keep_the_rate_and_clump_the_failures),
		TS(test_tail_factor_moves_p99_and_not_the_median),
		TS(test_warmup_slows_the_canary_for_its_first_seconds),
		TS(test_a_shared_outage_fails_both_versions),
		TS(test_stable_change_moves_stable_only),
		TS(test_rps_steps_ramps_and_low_traffic),
		TS(test_bad_shapes_are_refused),
		TS(test_sequential_judge_gets_the_histograms),
		TS(test_flagger_rules_floor_the_interval),
		TS(test_argo_rules_count_failures_and_errors),
		TS(test_csv_histograms_parse_and_replay),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
