/* readings.h - the built-in metrics' readings over their windows, computed
 * by one code for the daemon (the builtin metrics provider, from the
 * per-second stats rings) and for simulate (from its per-second sums), so
 * that a policy simulated offline is judged on the numbers the daemon
 * would read. Pure: no clock, no I/O; the sums come from a callback.
 *
 * A check made during second <now> reads each metric over windows of whole
 * seconds, <now> included (the current second counts as far as it went):
 * - the canary's value: the metric's interval, but never a second before
 *   the rollout's first (a new rollout is not judged by the requests of
 *   the canary before it);
 * - stable's value over the same seconds, for a relative threshold;
 * - stable's baseline: the metric's baseline.window, which reaches back
 *   before the rollout (stable's long history is the point).
 * A window's value: request-success-rate is the share of responses below
 * 500, error-rate the share of 5xx (both in percent), request-duration
 * the 99th percentile of the latency buckets in milliseconds. A window
 * without requests (or, for request-duration, without latencies) has no
 * value, and says so ("no canary requests in the last 60s"). */
#ifndef CANARYD_READINGS_H
#define CANARYD_READINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "hist.h"

/* Which of a metric's values a window gives. */
typedef enum { RD_CANARY = 0, RD_STABLE, RD_BASELINE, RD_COUNT } rd_which;

/* One window of one metric. */
typedef struct rd_window {
	rd_which which;
	int target;                /* TARGET_CANARY for RD_CANARY, else TARGET_STABLE */
	uint64_t from_sec, to_sec; /* seconds, both included */
	uint64_t span_ms;          /* the interval or baseline window it stands for,
	                            * for providers given a duration ({{ interval }}) */
} rd_window;

/* The windows metric <m> is read over in a check made during second
 * <now_sec> of a rollout whose first second is <first_sec>: the canary's,
 * then stable's (a relative threshold only), then the baseline (a
 * baseline window only). Fills out[0..n) and returns n, 1 to 3. */
int rd_windows(const eng_metric *m, uint64_t now_sec, uint64_t first_sec,
               rd_window out[RD_COUNT]);

/* The value of built-in metric <kind> (not ENG_M_CUSTOM) from <sum>, the
 * sums of window <w>: 1 with *value, or 0 with <why> filled (the window
 * had no requests, or no latencies for request-duration). */
int rd_value(eng_metric_kind kind, const rd_window *w, const stats_summary *sum,
             double *value, char *why, size_t whylen);

/* Puts the outcome of window <which>'s read into <r>: the canary's value,
 * or when there is none <reason> (only the canary's reason is kept: it is
 * what the check says); stable's value; the baseline. */
void rd_store(eng_reading *r, rd_which which, bool has_data, double value,
              const char *reason);

/* Sums <target>'s requests of seconds [from_sec, to_sec] into <out>, which
 * is zeroed first; the latency buckets only when <hist> (request-duration:
 * the others need the counts only, and a simulation runs many checks). */
typedef void (*rd_sum_fn)(void *arg, int target, uint64_t from_sec, uint64_t to_sec,
                          bool hist, stats_summary *out);

/* The first second a rollout's checks may read, for a rollout whose first
 * second is <first_sec>: that one, or with a warm-up (policy->warmup_ms)
 * the first second after it, counted in whole seconds (30s: first_sec +
 * 30). A check's windows start there, so that a check made 35 s into a
 * rollout with a 30 s warm-up reads its last 5 s only, however long its
 * window, not the canary's cold start. */
uint64_t rd_judged_from(const eng_policy *p, uint64_t first_sec);

/* Puts into <r> how many canary requests the value of a built-in metric
 * rests on: <canary>, the sums of its canary window (the engine holds a
 * check on fewer than policy->min_samples). */
void rd_store_samples(eng_reading *r, const stats_summary *canary);

/* Every built-in metric of <p> read at <now_sec> (as rd_windows, from
 * rd_judged_from(p, first_sec), <first_sec> the rollout's first second)
 * into r[i], with the canary requests behind it (rd_store_samples); r[i]
 * of a custom metric is zeroed and left to its provider. */
void rd_read_builtin(const eng_policy *p, uint64_t now_sec, uint64_t first_sec,
                     rd_sum_fn sum, void *arg, eng_reading *r);

#endif
