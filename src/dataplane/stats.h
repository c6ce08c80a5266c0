/* stats.h - per-canary request metrics kept for analysis and /metrics.
 * Each target (stable, canary) has a ring of 1-second slots covering
 * STATS_SLOTS seconds; a slot holds counts by status class and a log-linear
 * latency histogram, so any window from 1 s to 30 m is read by summing slots,
 * never by touching individual requests, and percentiles come from buckets.
 * Cumulative counters by exact status code and a Prometheus histogram are
 * kept beside the ring for /metrics. Recording allocates nothing. */
#ifndef CANARYD_STATS_H
#define CANARYD_STATS_H

#include <stdint.h>
#include "hist.h"
#include "util.h"

#define STATS_SLOTS 2048       /* ring length in seconds (> 30 minutes) */

typedef struct stats stats;

stats *stats_new(void);
void stats_free(stats *s);  /* NULL is a no-op; frees the shards too */

/* Shard <i> of <s> (0 is <s> itself), created on first use: a proxy worker
 * thread records into its own shard, so that recording takes no lock;
 * stats_query, stats_forget and stats_write_prometheus cover every shard.
 * Call from the thread that owns <s>, before handing the shard to its
 * writer. A shard has one writer at a time. At most 64 extra shards (a
 * larger <i> shares the last one: do not). */
stats *stats_shard(stats *s, int i);

/* Forgets the per-second history of <target> (not its /metrics totals):
 * a new rollout's canary must not be judged by the previous canary's
 * requests counted in the same seconds. */
void stats_forget(stats *s, int target);

/* Records one finished request of <target>: HTTP <status> (100..599; the
 * proxy's own 502/504 count against the target they were meant for; any
 * other value is counted as 502) and <latency_us>, at monotonic second
 * <now_sec>. */
void stats_record(stats *s, int target, int status, uint64_t latency_us,
                  uint64_t now_sec);

/* What became of a request the proxy was to copy to the canary (mirror):
 * sent (its answer is recorded as a canary request, stats_record), or not
 * made or given up because of a bound of the proxy's (never the canary's
 * fault: nothing is recorded for the canary then). */
typedef enum {
	STATS_MIRROR_SENT,     /* copied; the canary's answer (or failure) recorded */
	STATS_MIRROR_LIMIT,    /* too many copies or bytes in flight already */
	STATS_MIRROR_SLOW,     /* the body outran what a copy holds unsent */
	STATS_MIRROR_CLIENT,   /* the client's request ended before its body did */
	STATS_MIRROR_COUNT
} stats_mirror_result;

/* Counts one copy's fate <r> (one writer per shard, as stats_record). */
void stats_mirror(stats *s, stats_mirror_result r);
/* A copy the canary answered <status> (or the proxy stood in for with
 * 502/504), besides its stats_record as a canary request: so that what
 * the canary answered users is told apart from what it answered copies
 * (spec.cost: failures served to users). One writer per shard. */
void stats_copy_answered(stats *s, int status);
/* Of every shard: the copies answered, and how many of them 5xx (as
 * stats_totals counts them). */
void stats_copy_totals(const stats *s, uint64_t *requests, uint64_t *errors);

/* The counts of every shard of <s>, by stats_mirror_result. */
void stats_mirror_totals(const stats *s, uint64_t out[STATS_MIRROR_COUNT]);
/* "sent", "limit", "slow", "client" (the result label of /metrics). */
const char *stats_mirror_name(stats_mirror_result r);

/* Sums the slots of <target> for seconds in [from_sec, to_sec] inclusive
 * (clamped to what the ring still holds) into <out>. */
void stats_query(const stats *s, int target, uint64_t from_sec,
                 uint64_t to_sec, stats_summary *out);

/* The requests of <target> recorded since stats_new, over every shard,
 * into *requests, and how many of them were answered 5xx into *errors
 * (the cumulative counters of /metrics: a rollout's cost is their
 * difference from its start). */
void stats_totals(const stats *s, int target, uint64_t *requests, uint64_t *errors);

#define STATS_REV_LEN 64

/* The revision <target> serves from now on ("" for none): the revision
 * label of canaryd_requests_total. A revision other than the one before
 * starts its series from zero (the counts until now are the previous
 * revision's), so a series counts one revision's requests only, and at
 * most one series per target and code is written. Longer revisions are
 * cut at STATS_REV_LEN - 1 bytes. Main thread only (as /metrics). */
void stats_set_revision(stats *s, int target, const char *rev);

/* Appends the Prometheus text exposition of <s> for canary <name>:
 * canaryd_requests_total{canary,target,revision,code} (no revision label
 * while stats_set_revision gave none) and
 * canaryd_request_duration_seconds_{bucket,sum,count}{canary,target[,le]},
 * and once any request was to be mirrored,
 * canaryd_mirror_requests_total{canary,result}.
 * The # HELP/# TYPE lines are written by stats_write_prometheus_header, once
 * per exposition, before the first canary. */
void stats_write_prometheus_header(buf *out);
void stats_write_prometheus(const stats *s, const char *name, buf *out);

#endif
