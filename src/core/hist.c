/* hist.c - see hist.h. */
#include "hist.h"

#include <stdint.h>

#define SUB_COUNT (1u << STATS_SUB_BITS)

/* The exponent of the last bucket must leave room to shift. */
_Static_assert(STATS_BUCKETS / (1 << STATS_SUB_BITS) + STATS_SUB_BITS < 63,
               "STATS_BUCKETS too large for 64-bit latencies");
_Static_assert(STATS_BUCKETS > (1 << STATS_SUB_BITS),
               "STATS_BUCKETS must exceed the exact range");

const char *stats_target_name(int target)
{
	return target == TARGET_CANARY ? "canary" : "stable";
}

int stats_bucket_of(uint64_t latency_us)
{
	if (latency_us < SUB_COUNT)
		return (int)latency_us;
	int e = 63 - __builtin_clzll(latency_us); /* 2^e <= v < 2^(e+1) */
	int shift = e - STATS_SUB_BITS;
	/* v >> shift lies in [SUB_COUNT, 2*SUB_COUNT): its low bits pick the
	 * sub-bucket, and each exponent above the exact range adds SUB_COUNT. */
	uint64_t b = (uint64_t)shift * SUB_COUNT + (latency_us >> shift);
	if (b >= STATS_BUCKETS)
		return STATS_BUCKETS - 1;
	return (int)b;
}

/* Bounds of <bucket> as if the scale went on: the last bucket's nominal
 * width, used to interpolate inside it. */
static void nominal_bounds(int bucket, uint64_t *lo, uint64_t *hi)
{
	if (bucket < (int)SUB_COUNT) {
		*lo = (uint64_t)bucket;
		*hi = (uint64_t)bucket + 1;
		return;
	}
	int shift = bucket / (int)SUB_COUNT - 1;
	uint64_t m = (uint64_t)(bucket % (int)SUB_COUNT) + SUB_COUNT;
	*lo = m << shift;
	*hi = (m + 1) << shift;
}

void stats_bucket_bounds(int bucket, uint64_t *lo_us, uint64_t *hi_us)
{
	if (bucket < 0)
		bucket = 0;
	if (bucket >= STATS_BUCKETS)
		bucket = STATS_BUCKETS - 1;
	nominal_bounds(bucket, lo_us, hi_us);
	if (bucket == STATS_BUCKETS - 1)
		*hi_us = UINT64_MAX; /* catches everything larger */
}

int stats_quantile_bucket(const uint64_t *hist, double q, uint64_t *rank_out,
                          uint64_t *below_out)
{
	uint64_t n = 0;
	for (int b = 0; b < STATS_BUCKETS; b++)
		n += hist[b];
	if (n == 0)
		return -1;
	if (!(q > 0)) /* also NaN */
		q = 0;
	if (q > 1)
		q = 1;
	double r = q * (double)n;
	uint64_t rank = (uint64_t)r;
	if ((double)rank < r)
		rank++;
	if (rank < 1)
		rank = 1;
	if (rank > n)
		rank = n;

	uint64_t below = 0;
	int b = 0;
	for (; b < STATS_BUCKETS - 1; b++) {
		if (below + hist[b] >= rank)
			break;
		below += hist[b];
	}
	if (rank_out)
		*rank_out = rank;
	if (below_out)
		*below_out = below;
	return b;
}

double stats_quantile_ms(const stats_summary *sum, double q)
{
	uint64_t rank, below;
	int b = stats_quantile_bucket(sum->hist, q, &rank, &below);
	if (b < 0)
		return -1;
	uint64_t lo, hi;
	nominal_bounds(b, &lo, &hi);
	if (hi - lo == 1)
		return (double)lo / 1000.0; /* exact bucket */
	/* the rank-th of the bucket's k values, spread evenly over [lo, hi):
	 * the midpoint of its share, so one lone value reads mid-bucket */
	double k = (double)sum->hist[b];
	double frac = ((double)(rank - below) - 0.5) / k;
	return ((double)lo + frac * (double)(hi - lo)) / 1000.0;
}

