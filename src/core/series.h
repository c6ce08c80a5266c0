/* series.h - a canary's recent history for the dashboard: one sample per
 * 5-second bucket (weight, phase, and per target the requests, 5xx
 * errors and latency quantiles of those 5 seconds), the last 30 minutes
 * of them in a fixed ring. The controller fills it from the per-second
 * stats rings (stats.h) as each bucket ends; the admin API and the event
 * stream read it. Pure: no clock, no I/O, no allocation (the ring is part
 * of the struct, 34,576 bytes per canary), so nothing grows with time. */
#ifndef CANARYD_SERIES_H
#define CANARYD_SERIES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

#define SERIES_STEP_SEC 5                       /* one sample per 5 seconds */
#define SERIES_SPAN_MS (30ull * 60 * 1000)      /* 30 minutes of them */
#define SERIES_LEN (SERIES_SPAN_MS / 1000 / SERIES_STEP_SEC) /* 360 */

/* One target's 5 seconds. A quantile is -1 when the bucket had no
 * latency (no requests). */
typedef struct series_side {
	uint64_t requests;
	uint64_t errors;        /* 5xx answers (the proxy's own 502/504 too) */
	double p50, p95, p99;   /* milliseconds */
} series_side;

typedef struct series_sample {
	uint64_t t_ms;          /* wall clock, ms: the end of the bucket */
	int weight;             /* the canary weight traffic followed then */
	int phase;              /* eng_phase */
	series_side side[TARGET_COUNT];
} series_sample;

typedef struct series {
	series_sample s[SERIES_LEN];
	size_t head;            /* where the next sample goes */
	size_t n;               /* samples held, <= SERIES_LEN */
} series;

/* Empties <r>. (A zeroed series is empty too.) */
void series_clear(series *r);

/* The side of a bucket from <sum>, the stats of its seconds. */
void series_side_from(series_side *out, const stats_summary *sum);

/* The 5xx share of <s> in percent; false (no rate) when it had no
 * requests. */
bool series_error_rate(const series_side *s, double *pct);

/* Appends <smp> as the newest sample, dropping the oldest when full. A
 * sample not later than the newest one (a clock stepped back) replaces
 * nothing and is dropped: the samples stay in time order. Returns 1
 * appended, 0 dropped. */
int series_push(series *r, const series_sample *smp);

/* The samples a reader at <now_ms> is given: those with t_ms > <since_ms>
 * and within SERIES_SPAN_MS of <now_ms>, oldest first. Returns their
 * count and puts the position of the first (for series_at) in *first. */
size_t series_select(const series *r, uint64_t since_ms, uint64_t now_ms, size_t *first);

/* The <i>-th oldest sample held (i < r->n). */
const series_sample *series_at(const series *r, size_t i);

#endif
