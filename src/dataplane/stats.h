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

/* Sums the slots of <target> for seconds in [from_sec, to_sec] inclusive
 * (clamped to what the ring still holds) into <out>. */
void stats_query(const stats *s, int target, uint64_t from_sec,
                 uint64_t to_sec, stats_summary *out);

/* Appends the Prometheus text exposition of <s> for canary <name>:
 * canaryd_requests_total{canary,target,code} and
 * canaryd_request_duration_seconds_{bucket,sum,count}{canary,target[,le]}.
 * The # HELP/# TYPE lines are written by stats_write_prometheus_header, once
 * per exposition, before the first canary. */
void stats_write_prometheus_header(buf *out);
void stats_write_prometheus(const stats *s, const char *name, buf *out);

#endif
