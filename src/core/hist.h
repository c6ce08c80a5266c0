/* hist.h - the latency histogram's bucket maths and a window's sums, shared
 * by the request stats (stats.h), the judge, the engine and the simulator.
 * Pure: no clock, no I/O. Latencies are bucketed log-linearly in
 * microseconds, so that a percentile of any window is read from bucket
 * counts, never from individual requests. (The names keep the stats_
 * prefix they had in stats.h, where they came from.) */
#ifndef CANARYD_HIST_H
#define CANARYD_HIST_H

#include <stdint.h>

/* 4 linear sub-buckets per power of two (bucket width <= 25% of its value):
 * 8 sub-buckets would need 208 buckets to reach 2^28 us, 3.4 MB of ring per
 * canary; 4 need 108 (4 exact + 26 powers x 4) and keep it at 1.9 MB. */
#define STATS_SUB_BITS 2
#define STATS_BUCKETS 108      /* log-linear buckets, microseconds up to 2^28 us */

typedef enum { TARGET_STABLE = 0, TARGET_CANARY = 1, TARGET_COUNT = 2 } stats_target;

/* "stable" / "canary" */
const char *stats_target_name(int target);

/* Sum over a window of whole seconds. */
typedef struct stats_summary {
	uint64_t total;
	uint64_t by_class[6];         /* [1]=1xx .. [5]=5xx, [0] unused */
	uint64_t hist[STATS_BUCKETS]; /* latency buckets */
} stats_summary;

/* The <q> quantile (0..1) of the summary's latency in milliseconds, linearly
 * interpolated inside its bucket; -1 when the summary is empty. */
double stats_quantile_ms(const stats_summary *sum, double q);

/* The bucket of the <q> quantile (0..1) of latency buckets <hist>
 * (STATS_BUCKETS of them): the first whose running count reaches the
 * quantile's rank, ceil(q n) and at least 1; -1 when they are empty.
 * <rank_out> and <below_out> (either NULL) get that rank and the count in
 * the buckets below it. */
int stats_quantile_bucket(const uint64_t *hist, double q, uint64_t *rank_out,
                          uint64_t *below_out);

/* Bucket index for a latency, and a bucket's bounds [lo, hi) in us. */
int stats_bucket_of(uint64_t latency_us);
void stats_bucket_bounds(int bucket, uint64_t *lo_us, uint64_t *hi_us);

#endif
