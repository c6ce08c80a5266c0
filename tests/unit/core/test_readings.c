/* test_readings.c - the built-in metrics' windows and values, which the
 * daemon (from its stats rings) and simulate (from its sums) both read
 * through readings.h: which seconds a check reads, what a window is worth,
 * and what it says when it has nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "readings.h"

static eng_metric metric(eng_metric_kind kind, uint64_t window_ms, bool relative,
                         uint64_t baseline_ms)
{
	eng_metric m;
	memset(&m, 0, sizeof m);
	m.kind = kind;
	m.window_ms = window_ms;
	m.relative = relative;
	m.baseline_window_ms = baseline_ms;
	return m;
}

/* The canary's window never starts before the rollout; stable's, for a
 * relative threshold, is the same seconds; the baseline reaches back. */
static void test_windows(void **state)
{
	rd_window w[RD_COUNT];
	eng_metric m = metric(ENG_M_ERROR_RATE, 60000, true, 1800000);
	assert_int_equal(rd_windows(&m, 1000, 990, w), 3);
	assert_int_equal(w[0].which, RD_CANARY);
	assert_int_equal(w[0].target, TARGET_CANARY);
	assert_int_equal(w[0].from_sec, 990);      /* not 941: the rollout began at 990 */
	assert_int_equal(w[0].to_sec, 1000);
	assert_int_equal(w[0].span_ms, 60000);
	assert_int_equal(w[1].which, RD_STABLE);
	assert_int_equal(w[1].target, TARGET_STABLE);
	assert_int_equal(w[1].from_sec, 990);
	assert_int_equal(w[1].to_sec, 1000);
	assert_int_equal(w[2].which, RD_BASELINE);
	assert_int_equal(w[2].target, TARGET_STABLE);
	assert_int_equal(w[2].from_sec, 0);        /* 1800 s back from second 1000 */
	assert_int_equal(w[2].span_ms, 1800000);
	assert_int_equal(rd_windows(&m, 5000, 990, w), 3);
	assert_int_equal(w[0].from_sec, 4941);     /* the last 60 s, this one included */
	assert_int_equal(w[2].from_sec, 3201);

	m = metric(ENG_M_SUCCESS_RATE, 500, false, 0); /* under a second: one second */
	assert_int_equal(rd_windows(&m, 7, 0, w), 1);
	assert_int_equal(w[0].from_sec, 7);
	assert_int_equal(w[0].to_sec, 7);
}

static void test_values(void **state)
{
	stats_summary s;
	memset(&s, 0, sizeof s);
	rd_window w = { RD_CANARY, TARGET_CANARY, 100, 159, 60000 };
	double v = -5;
	char why[96] = "";
	assert_int_equal(rd_value(ENG_M_SUCCESS_RATE, &w, &s, &v, why, sizeof why), 0);
	assert_string_equal(why, "no canary requests in the last 60s");
	assert_true(v == -5);
	s.total = 200;
	s.by_class[2] = 195;
	s.by_class[5] = 5;
	assert_int_equal(rd_value(ENG_M_SUCCESS_RATE, &w, &s, &v, why, sizeof why), 1);
	assert_true(v == 97.5);
	assert_int_equal(rd_value(ENG_M_ERROR_RATE, &w, &s, &v, why, sizeof why), 1);
	assert_true(v == 2.5);
	/* requests but no latencies (a recording without p99s there): no
	 * value, where the daemon's copy read a p99 of -1 ms, which passed
	 * any maximum */
	rd_window st = { RD_BASELINE, TARGET_STABLE, 1, 30, 30000 };
	assert_int_equal(rd_value(ENG_M_DURATION, &st, &s, &v, why, sizeof why), 0);
	assert_string_equal(why, "no stable latencies in the last 30s");
	s.hist[stats_bucket_of(20000)] = 200;      /* all at 20 ms */
	assert_int_equal(rd_value(ENG_M_DURATION, &st, &s, &v, why, sizeof why), 1);
	assert_true(v > 19 && v < 25);
}

static void test_store_keeps_the_canary_reason(void **state)
{
	eng_reading r;
	memset(&r, 0, sizeof r);
	rd_store(&r, RD_CANARY, false, 0, "no canary requests in the last 5s");
	rd_store(&r, RD_STABLE, false, 0, "no stable requests in the last 5s");
	rd_store(&r, RD_BASELINE, true, 1.5, "");
	assert_false(r.has_data);
	assert_string_equal(r.reason, "no canary requests in the last 5s");
	assert_false(r.has_stable);
	assert_true(r.has_baseline);
	assert_true(r.baseline_value == 1.5);
	rd_store(&r, RD_CANARY, true, 99.5, "ignored");
	assert_true(r.has_data);
	assert_string_equal(r.reason, "");
	assert_true(r.value == 99.5);
}

/* A fake source: every second has 10 stable requests (1 a 5xx) and 4
 * canary requests (none failing); the calls are recorded. */
typedef struct calls {
	int n;
	int target[8];
	uint64_t from[8], to[8];
	bool hist[8];
} calls;

static void fake_sum(void *arg, int target, uint64_t from, uint64_t to, bool hist,
                     stats_summary *out)
{
	calls *c = arg;
	memset(out, 0, sizeof *out);
	c->target[c->n] = target;
	c->from[c->n] = from;
	c->to[c->n] = to;
	c->hist[c->n++] = hist;
	uint64_t secs = to - from + 1;
	if (target == TARGET_STABLE) {
		out->total = 10 * secs;
		out->by_class[5] = secs;
	} else {
		out->total = 4 * secs;
	}
	out->by_class[2] = out->total - out->by_class[5];
	if (hist)
		out->hist[stats_bucket_of(1000)] = out->total;
}

static void test_read_builtin(void **state)
{
	eng_policy p;
	memset(&p, 0, sizeof p);
	p.n_metrics = 3;
	p.metrics[0] = metric(ENG_M_ERROR_RATE, 10000, true, 60000);
	p.metrics[1] = metric(ENG_M_CUSTOM, 10000, true, 60000);
	p.metrics[2] = metric(ENG_M_DURATION, 5000, false, 0);
	eng_reading r[3];
	memset(r, 0x55, sizeof r);
	calls c = { 0 };
	rd_read_builtin(&p, 100, 95, fake_sum, &c, r);
	assert_int_equal(c.n, 4);                  /* 3 windows + 1: none for the custom one */
	assert_int_equal(c.target[0], TARGET_CANARY);
	assert_int_equal(c.from[0], 95);
	assert_int_equal(c.to[0], 100);
	assert_false(c.hist[0]);                   /* a rate needs no buckets */
	assert_int_equal(c.target[1], TARGET_STABLE);
	assert_int_equal(c.from[1], 95);
	assert_int_equal(c.from[2], 41);           /* baseline: 60 s back */
	assert_true(c.hist[3]);
	assert_true(r[0].has_data && r[0].value == 0);
	assert_true(r[0].has_stable && r[0].stable_value == 10);
	assert_true(r[0].has_baseline && r[0].baseline_value == 10);
	assert_false(r[1].has_data);               /* zeroed: its provider fills it */
	assert_false(r[1].has_stable);
	assert_string_equal(r[1].reason, "");
	assert_true(r[2].has_data && r[2].value > 0.9 && r[2].value < 1.3);
	/* the canary requests each value rests on: 4 a second */
	assert_true(r[0].has_samples);
	assert_int_equal(r[0].samples, 24);
	assert_false(r[1].has_samples);
	assert_true(r[2].has_samples);
	assert_int_equal(r[2].samples, 20);
}

/* A warm-up moves the windows' start past it: 35 s into a rollout with a
 * 30 s warm-up a 1m window reads the last 5 s (and a bit), the baseline
 * still its whole span. */
static void test_read_builtin_skips_the_warmup(void **state)
{
	eng_policy p;
	memset(&p, 0, sizeof p);
	p.n_metrics = 1;
	p.metrics[0] = metric(ENG_M_ERROR_RATE, 60000, true, 600000);
	p.warmup_ms = 30000;
	assert_int_equal(rd_judged_from(&p, 1000), 1030);
	p.warmup_ms = 1;
	assert_int_equal(rd_judged_from(&p, 1000), 1001);
	p.warmup_ms = 0;
	assert_int_equal(rd_judged_from(&p, 1000), 1000);
	p.warmup_ms = 30000;
	eng_reading r[1];
	calls c = { 0 };
	rd_read_builtin(&p, 1035, 1000, fake_sum, &c, r);
	assert_int_equal(c.n, 3);
	assert_int_equal(c.from[0], 1030);
	assert_int_equal(c.to[0], 1035);
	assert_int_equal(c.from[1], 1030);
	assert_int_equal(c.from[2], 1035 + 1 - 600);
	assert_int_equal(r[0].samples, 24);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_windows),
		cmocka_unit_test(test_values),
		cmocka_unit_test(test_store_keeps_the_canary_reason),
		cmocka_unit_test(test_read_builtin),
		cmocka_unit_test(test_read_builtin_skips_the_warmup),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
