/* test_judge.c - the sequential judge: its false-rollback share under equal
 * rates, its speed and power against bad canaries, the latency rank test,
 * and the edge cases (no data, resets, min_samples, huge counts).
 * Simulated traffic comes from a seeded xorshift generator, so every run
 * sees the same numbers; the shares are printed for docs/analysis.md. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "judge.h"

/* ---- deterministic randomness ---- */

typedef struct rng { uint64_t s; } rng;

static void rng_seed(rng *r, uint64_t seed)
{
	r->s = seed * 0x9E3779B97F4A7C15ull + 0x2545F4914F6CDD1Dull;
	if (r->s == 0)
		r->s = 1;
}

/* xorshift64* (Vigna) */
static uint64_t rng_next(rng *r)
{
	r->s ^= r->s >> 12;
	r->s ^= r->s << 25;
	r->s ^= r->s >> 27;
	return r->s * 0x2545F4914F6CDD1Dull;
}

static double rng_unif(rng *r) /* in [0, 1) */
{
	return (double)(rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

/* Binomial(n, p) by inversion: n is small (a 100 ms tick) here. */
static uint64_t rng_binom(rng *r, uint64_t n, double p)
{
	if (p <= 0 || n == 0)
		return 0;
	if (p >= 1)
		return n;
	double u = rng_unif(r);
	double pk = pow(1 - p, (double)n), cdf = pk;
	uint64_t k = 0;
	while (u > cdf && k < n) {
		pk *= (double)(n - k) / (double)(k + 1) * p / (1 - p);
		k++;
		cdf += pk;
	}
	return k;
}

static double rng_normal(rng *r)
{
	double u1 = rng_unif(r), u2 = rng_unif(r);
	if (u1 < 1e-300)
		u1 = 1e-300;
	return sqrt(-2 * log(u1)) * cos(2 * M_PI * u2);
}

/* ---- simulated rollouts ---- */

#define TICKS_PER_SEC 10
#define RPS_TICK 20 /* 200 req/s: 20 requests per 100 ms tick */

typedef struct err_sim {
	double weight;        /* canary share of requests */
	double canary_p, stable_p;
	int seconds;
	int step_every_s;     /* > 0: weight += 0.1 (to 0.5) and judge_step */
	double latency_ratio; /* judge parameter (0: errors get all of alpha) */
} err_sim;

/* Runs one simulated rollout; returns the tick at which the judge said
 * WORSE, or -1. */
static int run_errors(const err_sim *sim, uint64_t seed)
{
	rng r;
	rng_seed(&r, seed);
	judge_params p;
	judge_params_defaults(&p);
	p.latency_ratio = sim->latency_ratio;
	judge_state st;
	judge_init(&st, &p);
	uint64_t cn = 0, ce = 0, sn = 0, se = 0;
	double w = sim->weight;
	int ticks = sim->seconds * TICKS_PER_SEC;
	for (int t = 0; t < ticks; t++) {
		if (sim->step_every_s > 0 && t > 0 &&
		    t % (sim->step_every_s * TICKS_PER_SEC) == 0 && w < 0.45) {
			w += 0.1;
			judge_step(&st);
		}
		uint64_t nc = rng_binom(&r, RPS_TICK, w);
		uint64_t ns = RPS_TICK - nc;
		cn += nc;
		sn += ns;
		ce += rng_binom(&r, nc, sim->canary_p);
		se += rng_binom(&r, ns, sim->stable_p);
		judge_evidence ev;
		judge_verdict v = judge_errors(&st, cn, ce, sn, se, &ev);
		assert_false(isnan(ev.p_value) || isnan(ev.e_value) ||
		             isnan(ev.diff_upper));
		if (v == JUDGE_WORSE)
			return t;
	}
	return -1;
}

typedef struct share {
	int runs, worse;
	double median_s; /* median time to WORSE among those that did */
} share;

static int cmp_int(const void *a, const void *b)
{
	return *(const int *)a - *(const int *)b;
}

#define MAX_RUNS 200

static share run_many(const err_sim *sim, int runs, uint64_t seed0)
{
	static int when[MAX_RUNS];
	share sh = { runs, 0, -1 };
	for (int i = 0; i < runs && i < MAX_RUNS; i++) {
		int t = run_errors(sim, seed0 + (uint64_t)i);
		if (t >= 0)
			when[sh.worse++] = t;
	}
	if (sh.worse > 0) {
		qsort(when, (size_t)sh.worse, sizeof when[0], cmp_int);
		sh.median_s = (when[sh.worse / 2] + 1) / (double)TICKS_PER_SEC;
	}
	return sh;
}

/* ---- the targets of issue 4 ---- */

/* 0.5% vs 0.5%, 20 req/s canary and 180 req/s stable, a look every 100 ms
 * for 30 minutes: Ville's inequality bounds the false-rollback share by
 * alpha; 200 runs allow a little sampling noise above it. */
static void test_equal_error_rates_rarely_roll_back(void **state)
{
	err_sim sim = { 0.1, 0.005, 0.005, 1800, 0, 0 };
	share sh = run_many(&sim, 200, 1000);
	printf("[judge] equal 0.5%%/0.5%%, 30 min, 100 ms looks: false rollback "
	       "%d/%d = %.1f%% (alpha 1%%)\n", sh.worse, sh.runs,
	       100.0 * sh.worse / sh.runs);
	assert_true(sh.worse <= 4);
}

/* The same with the weight stepping 10% -> 50% every 5 minutes and a fresh
 * evidence component at each step: restarts must not spend more than
 * alpha. */
static void test_equal_error_rates_with_steps_rarely_roll_back(void **state)
{
	err_sim sim = { 0.1, 0.005, 0.005, 1800, 300, 0 };
	share sh = run_many(&sim, 100, 5000);
	printf("[judge] equal 0.5%%/0.5%%, steps 10..50%%: false rollback "
	       "%d/%d = %.1f%%\n", sh.worse, sh.runs,
	       100.0 * sh.worse / sh.runs);
	assert_true(sh.worse <= 3);
}

/* A canary failing 20% at 10% of 200 req/s is rolled back within seconds.
 * Not within 2 s any more (issue 4's target): a window of the error test
 * holds 50 canary requests, 2.5 s here, and weighs at most 5, so that a
 * burst of failures on one version is one piece of evidence (issue 10). */
static void test_canary_failing_20_percent_rolls_back_within_seconds(void **state)
{
	err_sim sim = { 0.1, 0.20, 0.005, 30, 0, 1.25 };
	static int when[MAX_RUNS];
	int within2 = 0, worse = 0;
	for (int i = 0; i < 200; i++) {
		int t = run_errors(&sim, 2000 + (uint64_t)i);
		if (t >= 0)
			when[worse++] = t;
		if (t >= 0 && t < 2 * TICKS_PER_SEC)
			within2++;
	}
	qsort(when, (size_t)worse, sizeof when[0], cmp_int);
	printf("[judge] canary 20%% vs 0.5%% at 20 req/s: rolled back within 2 s "
	       "in %d/200, median %.1f s, slowest %.1f s\n", within2,
	       worse ? (when[worse / 2] + 1) / 10.0 : -1,
	       worse ? (when[worse - 1] + 1) / 10.0 : -1);
	assert_int_equal(worse, 200);
	assert_true(when[worse / 2] < 10 * TICKS_PER_SEC);
	assert_true(when[worse - 1] < 15 * TICKS_PER_SEC);
}

static void test_canary_at_2_percent_rolls_back_in_30_minutes(void **state)
{
	err_sim sim = { 0.1, 0.02, 0.005, 1800, 0, 1.25 };
	share sh = run_many(&sim, 200, 3000);
	printf("[judge] canary 2%% vs 0.5%%: rolled back in %d/200 = %.1f%% of "
	       "30-minute rollouts, median %.1f s\n", sh.worse,
	       100.0 * sh.worse / sh.runs, sh.median_s);
	assert_true(sh.worse >= 190);
}

/* ---- latency ---- */

/* One latency run: lognormal latencies (median 50 ms, sigma 0.5) with the
 * canary's scaled by <canary_scale>; returns the WORSE tick or -1. */
static int run_latency(double canary_scale, int seconds, uint64_t seed)
{
	static stats_summary cs, ss;
	memset(&cs, 0, sizeof cs);
	memset(&ss, 0, sizeof ss);
	rng r;
	rng_seed(&r, seed);
	judge_params p;
	judge_params_defaults(&p);
	judge_state st;
	judge_init(&st, &p);
	for (int t = 0; t < seconds * TICKS_PER_SEC; t++) {
		for (int i = 0; i < RPS_TICK; i++) {
			bool canary = rng_unif(&r) < 0.1;
			double ms = 50 * exp(0.5 * rng_normal(&r)) *
			            (canary ? canary_scale : 1);
			int b = stats_bucket_of((uint64_t)(ms * 1000));
			stats_summary *sum = canary ? &cs : &ss;
			sum->hist[b]++;
			sum->total++;
		}
		judge_evidence ev;
		judge_verdict v = judge_latency(&st, &cs, &ss, &ev);
		assert_false(isnan(ev.p_value) || isnan(ev.e_value));
		if (v == JUDGE_WORSE)
			return t;
	}
	return -1;
}

static void test_latency_twice_slower_rolls_back_quickly(void **state)
{
	int fast = 0, worse = 0;
	for (int i = 0; i < 100; i++) {
		int t = run_latency(2.0, 30, 4000 + (uint64_t)i);
		worse += t >= 0;
		fast += t >= 0 && t < 5 * TICKS_PER_SEC;
	}
	printf("[judge] latency canary 2x slower (ratio 1.25): rolled back in "
	       "%d/100, within 5 s in %d/100\n", worse, fast);
	assert_int_equal(worse, 100);
	assert_true(fast >= 90);
}

static void test_latency_identical_rarely_rolls_back(void **state)
{
	int worse = 0, worse_fast_canary = 0;
	for (int i = 0; i < 100; i++)
		worse += run_latency(1.0, 300, 6000 + (uint64_t)i) >= 0;
	for (int i = 0; i < 30; i++)
		worse_fast_canary += run_latency(0.8, 300, 7000 + (uint64_t)i) >= 0;
	/* a canary 1.2x slower is inside latency_ratio 1.25: not worse */
	int worse_tolerated = 0;
	for (int i = 0; i < 30; i++)
		worse_tolerated += run_latency(1.2, 300, 8000 + (uint64_t)i) >= 0;
	printf("[judge] latency identical, 5 min: false rollback %d/100; canary "
	       "0.8x: %d/30; canary 1.2x (within ratio): %d/30\n", worse,
	       worse_fast_canary, worse_tolerated);
	assert_true(worse <= 3);
	assert_true(worse_fast_canary <= 1);
	assert_true(worse_tolerated <= 1);
}

/* The shift keeps "canary <= ratio x stable" from ever looking slower:
 * multiplying a latency by the ratio moves it up at most shift buckets. */
static void test_latency_shift_covers_ratio(void **state)
{
	const double ratios[] = { 1.0, 1.1, 1.25, 1.5, 2.0, 3.0 };
	for (size_t i = 0; i < sizeof ratios / sizeof ratios[0]; i++) {
		judge_params p;
		judge_params_defaults(&p);
		p.latency_ratio = ratios[i];
		judge_state st;
		judge_init(&st, &p);
		int k = st.latency_shift;
		for (uint64_t y = 0; y < (1ull << 26); y += y < 5000 ? 1 : y / 311) {
			uint64_t ry = (uint64_t)floor((double)y * ratios[i]);
			assert_true(stats_bucket_of(ry) - k <= stats_bucket_of(y));
		}
		if (ratios[i] == 1.0)
			assert_int_equal(k, 0);
		if (ratios[i] == 2.0)
			assert_true(k >= 4 && k <= 5);
	}
}

static void test_latency_disabled_always_continues(void **state)
{
	static stats_summary cs, ss;
	memset(&cs, 0, sizeof cs);
	memset(&ss, 0, sizeof ss);
	judge_params p;
	judge_params_defaults(&p);
	p.latency_ratio = 0;
	judge_state st;
	judge_init(&st, &p);
	assert_true(st.alpha_errors == p.alpha);
	for (int t = 1; t <= 100; t++) {
		cs.hist[100] += 10;  /* canary: seconds */
		ss.hist[40] += 90;   /* stable: milliseconds */
		assert_int_equal(judge_latency(&st, &cs, &ss, NULL), JUDGE_CONTINUE);
	}
}

static void test_latency_reset_is_skipped_not_double_counted(void **state)
{
	static stats_summary cs, ss;
	memset(&cs, 0, sizeof cs);
	memset(&ss, 0, sizeof ss);
	judge_params p;
	judge_params_defaults(&p);
	judge_state st;
	judge_init(&st, &p);
	cs.hist[60] = 50;
	ss.hist[60] = 450;
	judge_latency(&st, &cs, &ss, NULL);
	judge_evidence ev;
	/* the canary's counters restart: that look is a new origin */
	cs.hist[60] = 0;
	cs.hist[90] = 5;
	ss.hist[60] = 500;
	assert_int_equal(judge_latency(&st, &cs, &ss, &ev), JUDGE_CONTINUE);
	assert_int_equal(st.resets, 1);
	assert_int_equal(ev.canary_n, 50);
	assert_int_equal(ev.stable_n, 450);
	cs.hist[90] = 7;
	ss.hist[60] = 520;
	judge_latency(&st, &cs, &ss, &ev);
	assert_int_equal(ev.canary_n, 52);
	assert_int_equal(ev.stable_n, 470);
}

/* ---- the exact statistic and the edge cases ---- */

/* One stratum of 1 canary and 1 stable request with the canary's one
 * failure: P_psi(x = 1) = e^psi / (e^psi + 1), and the null is the
 * margin's log odds ratio psi0 at the baseline's prior (0.5 %: the margin
 * rate is max(0.5 % + 0.5 points, 0.5 % x 1.2) = 1 %). The e-value is the
 * start's weight 3/4 times the weighted average of the likelihood ratios
 * of psi0 + delta_j against psi0 (4/10 on the plug-in, 3/10 on the 6
 * other small deltas, 3/10 on the 5 large). */
static void test_error_evalue_of_one_stratum_is_exact(void **state)
{
	judge_params p;
	judge_params_defaults(&p);
	judge_state st;
	judge_init(&st, &p);
	judge_evidence ev;
	judge_errors(&st, 1, 1, 1, 0, &ev);
	double b = 0.5 / 100, psi0 = log(0.01 / 0.99) - log(b / (1 - b));
	double p0 = exp(psi0) / (exp(psi0) + 1), want = 0;
	for (int j = 0; j < JUDGE_GRID; j++) {
		/* component 0 is the plug-in: with no closed window yet its
		 * effect is the grid's smallest */
		double e = exp(psi0 + (j + 1) * log(2) / 2);
		double g = j == 0 ? 0.4 : j < 7 ? 0.3 / 6 : 0.3 / 5;
		want += e / (e + 1) / p0 * g;
	}
	want = 0.75 * want;
	assert_true(fabs(ev.e_value - want) < 1e-9 * want);
	assert_true(fabs(ev.p_value - (want > 1 ? 1 / want : 1)) < 1e-9);
	assert_true(fabs(ev.threshold - 1 / (p.alpha * 0.8)) < 1e-9);
}

static void test_zero_counts_continue_without_nan(void **state)
{
	static stats_summary empty;
	judge_params p;
	judge_params_defaults(&p);
	p.min_samples = 0;
	judge_state st;
	judge_init(&st, &p);
	judge_evidence ev;
	for (int i = 0; i < 50; i++) {
		assert_int_equal(judge_errors(&st, 0, 0, 0, 0, &ev), JUDGE_CONTINUE);
		assert_true(ev.p_value == 1);
		assert_false(isnan(ev.e_value) || isnan(ev.diff_upper));
		assert_true(ev.canary_rate == 0 && ev.stable_rate == 0);
		assert_int_equal(judge_latency(&st, &empty, &empty, &ev),
		                 JUDGE_CONTINUE);
		assert_true(ev.p_value == 1);
	}
}

/* Without stable traffic there is nothing to compare with: even a canary
 * failing every request is not judged worse by the comparison. */
static void test_one_sided_traffic_gives_no_evidence(void **state)
{
	judge_params p;
	judge_params_defaults(&p);
	judge_state st;
	judge_init(&st, &p);
	judge_evidence ev;
	for (uint64_t t = 1; t <= 100; t++)
		assert_int_equal(judge_errors(&st, 10 * t, 10 * t, 0, 0, &ev),
		                 JUDGE_CONTINUE);
	assert_true(ev.p_value == 1);
	assert_true(ev.canary_rate == 1);
}

static void test_noninferior_waits_for_min_samples_in_each_step(void **state)
{
	judge_params p;
	judge_params_defaults(&p);
	p.min_samples = 1000;
	p.margin = 0.05;
	judge_state st;
	judge_init(&st, &p);
	uint64_t cn = 0, sn = 0;
	judge_verdict v = JUDGE_CONTINUE;
	/* a perfect canary, 100 requests a look */
	while (cn < 900) {
		cn += 100;
		sn += 900;
		v = judge_errors(&st, cn, 0, sn, 0, NULL);
		assert_int_equal(v, JUDGE_CONTINUE);
	}
	cn += 100;
	sn += 900;
	assert_int_equal(judge_errors(&st, cn, 0, sn, 0, NULL), JUDGE_NONINFERIOR);
	judge_step(&st);
	cn += 500;
	sn += 500;
	judge_evidence ev;
	assert_int_equal(judge_errors(&st, cn, 0, sn, 0, &ev), JUDGE_CONTINUE);
	assert_int_equal(ev.step_canary_n, 500);
	cn += 500;
	sn += 500;
	assert_int_equal(judge_errors(&st, cn, 0, sn, 0, &ev), JUDGE_NONINFERIOR);
	assert_true(ev.diff_upper < 0.05);
}

/* Non-inferiority needs confidence: equal 1% error rates with a margin of
 * 0.5 points take thousands of canary requests, never just min_samples. */
static void test_noninferior_needs_enough_data_for_the_margin(void **state)
{
	judge_params p;
	judge_params_defaults(&p);
	p.min_samples = 100;
	p.margin = 0.005;
	judge_state st;
	judge_init(&st, &p);
	uint64_t cn = 0, sn = 0;
	int first = -1;
	for (int t = 1; t <= 2000 && first < 0; t++) {
		cn += 100;
		sn += 900;
		judge_verdict v = judge_errors(&st, cn, cn / 100, sn, sn / 100, NULL);
		if (v == JUDGE_NONINFERIOR)
			first = t;
	}
	printf("[judge] 1%%/1%% with margin 0.5 points: non-inferior after %d "
	       "canary requests\n", first * 100);
	assert_true(first > 10);
	/* a canary clearly worse than the margin never becomes non-inferior */
	judge_init(&st, &p);
	cn = sn = 0;
	for (int t = 1; t <= 2000; t++) {
		cn += 100;
		sn += 900;
		judge_verdict v = judge_errors(&st, cn, cn / 50, sn, sn / 100, NULL);
		assert_int_not_equal(v, JUDGE_NONINFERIOR);
	}
}

static void test_counter_reset_is_skipped_not_double_counted(void **state)
{
	judge_params p;
	judge_params_defaults(&p);
	judge_state st;
	judge_init(&st, &p);
	judge_evidence ev;
	judge_errors(&st, 1000, 10, 9000, 90, &ev);
	/* the canary's counters restart from zero */
	judge_errors(&st, 10, 5, 9100, 91, &ev);
	assert_int_equal(st.resets, 1);
	/* the whole look is skipped: half a stratum is not one */
	assert_int_equal(ev.canary_n, 1000);
	assert_int_equal(ev.stable_n, 9000);
	judge_errors(&st, 30, 5, 9300, 93, &ev);
	assert_int_equal(ev.canary_n, 1020);
	assert_true(fabs(ev.canary_rate - 10.0 / 1020) < 1e-12);
}

static void test_errors_above_requests_are_clamped(void **state)
{
	judge_params p;
	judge_params_defaults(&p);
	judge_state st;
	judge_init(&st, &p);
	judge_evidence ev;
	judge_errors(&st, 10, 50, 100, 0, &ev);
	assert_true(ev.canary_rate == 1);
	judge_errors(&st, 20, 20, 200, 1, &ev);
	assert_true(ev.canary_rate == 1);
	assert_false(isnan(ev.e_value));
}

static void test_huge_counts_stay_finite(void **state)
{
	judge_params p;
	judge_params_defaults(&p);
	judge_state st;
	judge_init(&st, &p);
	judge_evidence ev;
	/* too large a first increment to sum exactly: skipped, not wrong */
	judge_errors(&st, 1ull << 40, 1ull << 39, 1ull << 41, 1ull << 30, &ev);
	assert_int_equal(st.skipped, 1);
	assert_false(isnan(ev.e_value) || isinf(ev.e_value));
	/* large but summable ones: overwhelming evidence, finite numbers (a
	 * window weighs at most 5: several are needed) */
	judge_init(&st, &p);
	judge_verdict v = JUDGE_CONTINUE;
	for (uint64_t i = 1; i <= 200 && v != JUDGE_WORSE; i++)
		v = judge_errors(&st, 400 * i, 200 * i, 4000 * i, 20 * i, &ev);
	assert_int_equal(v, JUDGE_WORSE);
	assert_false(isnan(ev.e_value) || isinf(ev.e_value));
	assert_true(ev.p_value >= 0 && ev.p_value < 1e-2);
	assert_false(isnan(ev.p_value));
	/* every request failing on both sides: no information, no NaN */
	judge_init(&st, &p);
	v = judge_errors(&st, 100, 100, 900, 900, &ev);
	assert_int_equal(v, JUDGE_CONTINUE);
	assert_false(isnan(ev.e_value));
}

static void test_worse_is_sticky(void **state)
{
	judge_params p;
	judge_params_defaults(&p);
	judge_state st;
	judge_init(&st, &p);
	judge_verdict v = JUDGE_CONTINUE;
	uint64_t i;
	for (i = 1; i <= 200 && v != JUDGE_WORSE; i++)
		v = judge_errors(&st, 100 * i, 50 * i, 900 * i, 5 * i, NULL);
	assert_int_equal(v, JUDGE_WORSE);
	/* a long good stretch afterwards does not undo a rollback verdict */
	assert_int_equal(judge_errors(&st, 100000 + 100 * i, 50 * i, 900000 + 900 * i,
	                              4500 + 5 * i, NULL),
	                 JUDGE_WORSE);
	judge_step(&st);
	assert_int_equal(judge_errors(&st, 200000, 500, 1800000, 9000, NULL),
	                 JUDGE_WORSE);
}

/* A canary that breaks only after the step to a higher weight is caught
 * by the component started at that step, not held back by the long good
 * record before it. */
static void test_breakage_after_a_step_is_caught_quickly(void **state)
{
	rng r;
	rng_seed(&r, 77);
	judge_params p;
	judge_params_defaults(&p);
	judge_state st;
	judge_init(&st, &p);
	uint64_t cn = 0, ce = 0, sn = 0, se = 0;
	int t, broke = 600 * TICKS_PER_SEC;
	for (t = 0; t < 700 * TICKS_PER_SEC; t++) {
		if (t == broke)
			judge_step(&st);
		uint64_t nc = rng_binom(&r, RPS_TICK, t < broke ? 0.1 : 0.2);
		cn += nc;
		sn += RPS_TICK - nc;
		ce += rng_binom(&r, nc, t < broke ? 0.005 : 0.2);
		se += rng_binom(&r, RPS_TICK - nc, 0.005);
		judge_verdict v = judge_errors(&st, cn, ce, sn, se, NULL);
		if (v == JUDGE_WORSE)
			break;
		assert_true(t >= broke || v != JUDGE_WORSE);
	}
	printf("[judge] canary breaks (20%%) after 10 good minutes, at a step: "
	       "rolled back %.1f s later\n", (t - broke + 1) / 10.0);
	assert_true(t >= broke);
	assert_true(t < broke + 5 * TICKS_PER_SEC);
}

static void test_params_check_names_the_field(void **state)
{
	char err[128];
	judge_params p;
	judge_params_defaults(&p);
	assert_int_equal(judge_params_check(&p, err, sizeof err), 0);
	p.alpha = 0.9;
	assert_int_equal(judge_params_check(&p, err, sizeof err), -1);
	assert_non_null(strstr(err, "alpha"));
	judge_params_defaults(&p);
	p.margin = 0;
	assert_int_equal(judge_params_check(&p, err, sizeof err), -1);
	assert_non_null(strstr(err, "margin"));
	judge_params_defaults(&p);
	p.latency_ratio = 0.5;
	assert_int_equal(judge_params_check(&p, err, sizeof err), -1);
	assert_non_null(strstr(err, "latency"));
	/* judge_init falls back to defaults instead of NaN arithmetic */
	p.alpha = NAN;
	judge_state st;
	judge_init(&st, &p);
	assert_true(st.p.alpha == 0.01);
	assert_true(st.p.latency_ratio == 1.25);
}

static void test_combine_and_names(void **state)
{
	assert_int_equal(judge_combine(JUDGE_WORSE, JUDGE_CONTINUE), JUDGE_WORSE);
	assert_int_equal(judge_combine(JUDGE_NONINFERIOR, JUDGE_WORSE), JUDGE_WORSE);
	assert_int_equal(judge_combine(JUDGE_NONINFERIOR, JUDGE_CONTINUE),
	                 JUDGE_NONINFERIOR);
	assert_int_equal(judge_combine(JUDGE_CONTINUE, JUDGE_CONTINUE),
	                 JUDGE_CONTINUE);
	assert_string_equal(judge_verdict_name(JUDGE_WORSE), "worse");
	assert_string_equal(judge_verdict_name(JUDGE_NONINFERIOR), "noninferior");
	assert_string_equal(judge_verdict_name(JUDGE_CONTINUE), "continue");
}

/* ---- whole rollouts on traffic that is not kind (issue 10) ---- */

/* A rollout at weights 10, 20, 30, 40, 50 %, stepped as the engine steps
 * (ADVANCE below the top, NONINFERIOR to promote), on Poisson traffic with
 * optional bursts, a shared outage, latency shapes and a guard. */
typedef struct scn {
	double rps, canary_p, stable_p;
	int seconds;
	int burst;             /* > 0: failures come as the next <burst>
	                        * requests of one version, picked by its share
	                        * of the expected failures */
	double outage_at, outage_for, outage_p; /* both versions fail at p */
	double tail_share, tail_factor;  /* canary: this share of requests at
	                                  * tail_factor x stable's p99 */
	double slow_for, slow_factor;    /* canary: this much slower at first */
	double guard;          /* > 0: a guard on the canary's error rate */
} scn;

enum { SCN_PROMOTED, SCN_ROLLED_BACK, SCN_UNDECIDED };

static uint64_t rng_poisson(rng *r, double m)
{
	if (m <= 0)
		return 0;
	if (m > 30) {
		double x = m + sqrt(m) * rng_normal(r);
		return x < 0 ? 0 : (uint64_t)(x + 0.5);
	}
	double l = exp(-m), p = 1;
	uint64_t k = 0;
	do {
		k++;
		p *= rng_unif(r);
	} while (p > l && k < 1000);
	return k - 1;
}

static void add_latency(rng *r, stats_summary *h, uint64_t n, double factor, double tail_share,
                        double tail_factor)
{
	for (uint64_t i = 0; i < n; i++) {
		double ms = 50 * exp(0.5 * rng_normal(r)) * factor;
		if (tail_share > 0 && rng_unif(r) < tail_share)
			ms = 50 * exp(0.5 * 2.326) * tail_factor * exp(0.1 * rng_normal(r));
		h->hist[stats_bucket_of((uint64_t)(ms * 1000))]++;
	}
}

/* Runs one rollout; returns its outcome and the decision's second in *at. */
static int run_scn(const scn *c, uint64_t seed, double *at, judge_state *st)
{
	rng r;
	rng_seed(&r, seed);
	judge_params p;
	judge_params_defaults(&p);
	judge_init(st, &p);
	int g = c->guard > 0 ? judge_add_guard(st, c->guard) : -1;
	static stats_summary ch, sh;
	memset(&ch, 0, sizeof ch);
	memset(&sh, 0, sizeof sh);
	static const int weights[] = { 10, 20, 30, 40, 50 };
	int wi = 0, burst_left = 0, burst_canary = 0;
	uint64_t cn = 0, ce = 0, sn = 0, se = 0;
	for (int t = 1; t <= c->seconds * TICKS_PER_SEC; t++) {
		double sec = t / (double)TICKS_PER_SEC;
		uint64_t n = rng_poisson(&r, c->rps / TICKS_PER_SEC);
		uint64_t nc = rng_binom(&r, n, weights[wi] / 100.0), ns = n - nc;
		double pc = c->canary_p, ps = c->stable_p;
		if (c->outage_for > 0 && sec >= c->outage_at && sec < c->outage_at + c->outage_for)
			pc = ps = c->outage_p;
		uint64_t xc, xs;
		if (c->burst > 0) {
			double fc = (double)nc * pc, fs = (double)ns * ps;
			if (burst_left == 0 && rng_unif(&r) < (fc + fs) / c->burst) {
				burst_left = c->burst;
				burst_canary = rng_unif(&r) * (fc + fs) < fc;
			}
			uint64_t m = burst_canary ? nc : ns;
			uint64_t k = m < (uint64_t)burst_left ? m : (uint64_t)burst_left;
			burst_left -= (int)k;
			xc = burst_canary ? k : 0;
			xs = burst_canary ? 0 : k;
		} else {
			xc = rng_binom(&r, nc, pc);
			xs = rng_binom(&r, ns, ps);
		}
		cn += nc;
		ce += xc;
		sn += ns;
		se += xs;
		add_latency(&r, &ch, nc, sec < c->slow_for ? c->slow_factor : 1, c->tail_share,
		            c->tail_factor);
		add_latency(&r, &sh, ns, 1, 0, 0);
		judge_verdict v = judge_errors(st, cn, ce, sn, se, NULL);
		v = judge_combine(v, judge_latency(st, &ch, &sh, NULL));
		if (g >= 0 && judge_guard_look(st, g, cn, ce, NULL) == JUDGE_WORSE)
			v = JUDGE_WORSE;
		*at = sec;
		if (v == JUDGE_WORSE)
			return SCN_ROLLED_BACK;
		if (v == JUDGE_NONINFERIOR || (v == JUDGE_ADVANCE && wi < 4)) {
			if (wi == 4)
				return SCN_PROMOTED;
			wi++;
			judge_step(st);
		}
	}
	return SCN_UNDECIDED;
}

typedef struct scn_share {
	int runs, outcome[3];
	double median_s;  /* of the decided runs */
	double within;    /* share decided as <want> within <by> seconds */
} scn_share;

static int cmp_dbl(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

static scn_share run_scns(const scn *c, int runs, int want, double by, const char *what)
{
	static double when[MAX_RUNS];
	static judge_state st;
	scn_share sh = { .runs = runs };
	int nd = 0, ok = 0;
	for (int i = 0; i < runs; i++) {
		double at = 0;
		int o = run_scn(c, 7000 + (uint64_t)i, &at, &st);
		sh.outcome[o]++;
		if (o != SCN_UNDECIDED)
			when[nd++] = at;
		if (o == want && at <= by)
			ok++;
	}
	qsort(when, (size_t)nd, sizeof when[0], cmp_dbl);
	sh.median_s = nd ? when[nd / 2] : -1;
	sh.within = (double)ok / runs;
	printf("[judge] %s: promoted %d, rolled back %d, undecided %d of %d; median %.1f s; "
	       "%s within %.0f s: %.1f%%\n", what, sh.outcome[SCN_PROMOTED],
	       sh.outcome[SCN_ROLLED_BACK], sh.outcome[SCN_UNDECIDED], runs, sh.median_s,
	       want == SCN_PROMOTED ? "promoted" : "rolled back", by, 100 * sh.within);
	return sh;
}

/* A canary inside the margin (0.8 % vs 0.5 %: within 0.5 points) is not
 * rolled back: the margin is in the rollback test's null. */
static void test_canary_inside_the_margin_is_not_rolled_back(void **state)
{
	scn c = { .rps = 200, .canary_p = 0.008, .stable_p = 0.005, .seconds = 1800 };
	scn_share sh = run_scns(&c, 60, SCN_PROMOTED, 1800, "0.8% vs 0.5%, margin 0.5 points");
	assert_true(sh.outcome[SCN_ROLLED_BACK] <= 1);
}

/* Failures in bursts of 50 on one version at a time, both at 1 %: one
 * burst is one piece of evidence, not fifty. */
static void test_bursts_on_one_version_rarely_roll_back(void **state)
{
	scn c = { .rps = 200, .canary_p = 0.01, .stable_p = 0.01, .seconds = 1800, .burst = 50 };
	scn_share sh = run_scns(&c, 100, SCN_PROMOTED, 1800, "1%/1% in bursts of 50");
	assert_true(sh.outcome[SCN_ROLLED_BACK] <= 3);
}

/* A 60 s outage shared by both versions: the canary that is worse (1.5 %
 * vs 0.5 %) is still rolled back, and never promoted. */
static void test_shared_outage_holds_and_the_worse_canary_goes(void **state)
{
	scn c = { .rps = 200, .canary_p = 0.015, .stable_p = 0.005, .seconds = 1800,
	          .outage_at = 120, .outage_for = 60, .outage_p = 0.5 };
	scn_share sh = run_scns(&c, 40, SCN_ROLLED_BACK, 1800, "1.5% vs 0.5%, 60 s shared outage");
	assert_int_equal(sh.outcome[SCN_PROMOTED], 0);
	assert_true(sh.outcome[SCN_ROLLED_BACK] >= 38);
	/* and during it, the judge holds */
	judge_state st;
	double at;
	c.seconds = 150;
	run_scn(&c, 1, &at, &st);
	assert_true(st.held);
	assert_true(st.holds >= 1);
}

/* 1 req/s in all: strata close once both versions have served, so a
 * canary failing 10 % is still caught (docs/analysis.md: what 15 minutes
 * of this traffic allow). */
static void test_low_traffic_still_gives_evidence(void **state)
{
	scn c = { .rps = 1, .canary_p = 0.10, .stable_p = 0.005, .seconds = 3600 };
	scn_share sh = run_scns(&c, 60, SCN_ROLLED_BACK, 900, "1 req/s, canary 10% vs 0.5%");
	assert_true(sh.within >= 0.4);
	assert_true(sh.outcome[SCN_ROLLED_BACK] >= 57);
}

/* p99 x 3 on the canary, median unchanged: the quantile test sees it. */
static void test_tail_only_slowdown_is_caught(void **state)
{
	scn c = { .rps = 200, .canary_p = 0.005, .stable_p = 0.005, .seconds = 300,
	          .tail_share = 0.02, .tail_factor = 3 };
	scn_share sh = run_scns(&c, 60, SCN_ROLLED_BACK, 300, "p99 x3, median unchanged");
	assert_true(sh.within >= 0.95);
}

/* A guard (error rate <= 1 %) under the judge, A/A at 0.5 %: a
 * sequential test with its share of alpha, not a naive threshold. */
static void test_guard_keeps_the_promise(void **state)
{
	scn c = { .rps = 200, .canary_p = 0.005, .stable_p = 0.005, .seconds = 1800,
	          .guard = 0.01 };
	scn_share sh = run_scns(&c, 100, SCN_PROMOTED, 1800, "A/A 0.5% with a 1% guard");
	assert_true(sh.outcome[SCN_ROLLED_BACK] <= 2);
	/* and a canary failing 3 % is caught by it */
	judge_state st;
	judge_params p;
	judge_params_defaults(&p);
	judge_init(&st, &p);
	int g = judge_add_guard(&st, 0.01);
	assert_int_equal(g, 0);
	assert_true(st.alpha_errors < p.alpha * 0.8);
	judge_verdict v = JUDGE_CONTINUE;
	uint64_t i;
	for (i = 1; i <= 3000 && v != JUDGE_WORSE; i++)
		v = judge_guard_look(&st, g, 20 * i, 20 * i * 3 / 100, NULL);
	assert_int_equal(v, JUDGE_WORSE);
}

/* Warm-up: judge_origin moves the origin, so what the canary did before
 * is not evidence. */
static void test_origin_discards_the_warm_up(void **state)
{
	judge_params p;
	judge_params_defaults(&p);
	judge_state st;
	judge_init(&st, &p);
	/* 30 s of a canary failing half its requests, then origin */
	judge_origin(&st, 300, 150, 2700, 13, NULL, NULL);
	judge_evidence ev;
	for (uint64_t i = 1; i <= 600; i++)
		assert_int_not_equal(judge_errors(&st, 300 + 2 * i, 150, 2700 + 18 * i,
		                                  13 + i / 11, &ev), JUDGE_WORSE);
	assert_int_equal(ev.canary_n, 1200);
}


int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_equal_error_rates_rarely_roll_back),
		cmocka_unit_test(test_equal_error_rates_with_steps_rarely_roll_back),
		cmocka_unit_test(test_canary_failing_20_percent_rolls_back_within_seconds),
		cmocka_unit_test(test_canary_at_2_percent_rolls_back_in_30_minutes),
		cmocka_unit_test(test_latency_twice_slower_rolls_back_quickly),
		cmocka_unit_test(test_latency_identical_rarely_rolls_back),
		cmocka_unit_test(test_latency_shift_covers_ratio),
		cmocka_unit_test(test_latency_disabled_always_continues),
		cmocka_unit_test(test_latency_reset_is_skipped_not_double_counted),
		cmocka_unit_test(test_error_evalue_of_one_stratum_is_exact),
		cmocka_unit_test(test_zero_counts_continue_without_nan),
		cmocka_unit_test(test_one_sided_traffic_gives_no_evidence),
		cmocka_unit_test(test_noninferior_waits_for_min_samples_in_each_step),
		cmocka_unit_test(test_noninferior_needs_enough_data_for_the_margin),
		cmocka_unit_test(test_counter_reset_is_skipped_not_double_counted),
		cmocka_unit_test(test_errors_above_requests_are_clamped),
		cmocka_unit_test(test_huge_counts_stay_finite),
		cmocka_unit_test(test_worse_is_sticky),
		cmocka_unit_test(test_breakage_after_a_step_is_caught_quickly),
		cmocka_unit_test(test_canary_inside_the_margin_is_not_rolled_back),
		cmocka_unit_test(test_bursts_on_one_version_rarely_roll_back),
		cmocka_unit_test(test_shared_outage_holds_and_the_worse_canary_goes),
		cmocka_unit_test(test_low_traffic_still_gives_evidence),
		cmocka_unit_test(test_tail_only_slowdown_is_caught),
		cmocka_unit_test(test_guard_keeps_the_promise),
		cmocka_unit_test(test_origin_discards_the_warm_up),
		cmocka_unit_test(test_params_check_names_the_field),
		cmocka_unit_test(test_combine_and_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
