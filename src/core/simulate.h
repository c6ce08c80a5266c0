/* simulate.h - runs a canary's rollout policy offline: the same engine code
 * (engine.h) the daemon runs, on a simulated clock, against synthetic
 * traffic or recorded per-second counts, to tell how fast and how often it
 * promotes or rolls back. Pure: no I/O, no clock; canaryctl's `simulate`
 * reads the files and prints.
 *
 * Per 100 ms tick (the daemon's TICK_MS) the synthetic traffic is: a
 * Poisson number of requests at <rps>, split between canary and stable by
 * the engine's current weight (binomially), 5xx counts binomial at each
 * version's error rate, latencies lognormal around a median. Counts are
 * kept in per-second slots as the daemon's stats ring keeps them, and the
 * readings are made by the daemon's own code (readings.h: success and
 * error rate over the metric's window of whole seconds including the
 * current one, p99 of the window's log-linear histogram, stable's value
 * for relative metrics, stable's baseline window, which before the
 * rollout's start holds stable's expected traffic). The rollout
 * starts half-way through a second of that ring, so that a check, as in
 * the daemon, sees part of the current second. The
 * engine is driven as the daemon drives it: eng_tick each tick, eng_observe
 * each tick under the sequential judge (with both versions' cumulative
 * latency histograms since the rollout's start, as controller.c's
 * observe() gives them), eng_check when due. Custom metrics (providers)
 * and webhook gates cannot be simulated and are left out.
 *
 * The traffic can change over the rollout (sim_traffic): rates of either
 * version, a shared outage, failures in bursts, the request rate in steps
 * or ramps, a slow warm-up or a slow tail of the canary. A recording
 * (sim_data) is replayed at the engine's weights: each second's requests
 * of both versions are split as the engine's weight splits them, each
 * version at its recorded error rate and latency histogram (or, with
 * replay_recorded_split, each version's requests as recorded).
 * docs/simulate.md has the models in full. */
#ifndef CANARYD_SIMULATE_H
#define CANARYD_SIMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"
#include "hist.h"

#define SIM_TICK_MS 100
#define SIM_DEFAULT_LIMIT_MS (30ULL * 60 * 1000)

/* One recorded second (canaryctl simulate --data CSV). */
typedef struct sim_second {
	uint64_t stable_requests, stable_errors;
	uint64_t canary_requests, canary_errors;
	bool has_p99;
	double canary_p99_ms;
	/* both versions' latency histograms (stable_hist, canary_hist), or
	 * NULL: hist[TARGET_STABLE * STATS_BUCKETS + b] is stable's count in
	 * stats bucket b, hist[TARGET_CANARY * STATS_BUCKETS + b] the canary's */
	uint64_t *hist;
} sim_second;

/* Recorded traffic: rows in second order, second 0 first (gaps are seconds
 * without traffic). */
typedef struct sim_data {
	sim_second *sec;
	size_t n;
} sim_data;

/* The synthetic traffic, or the recording to replay. Times are from the
 * rollout's start. */
typedef struct sim_traffic {
	double rps;                  /* requests per second, both versions: 200 */
	double rps_after;            /* rps_change_at_ms > 0: the rate from then on */
	uint64_t rps_change_at_ms;   /* (a step, or the start of a ramp) */
	uint64_t rps_ramp_ms;        /* > 0: rps moves linearly to rps_after over
	                              * this long from rps_change_at_ms */
	double stable_error_rate;    /* fractions 0..1 of 5xx: 0.005 */
	double canary_error_rate;    /* 0.005 */
	uint64_t change_at_ms;       /* > 0: from then on the canary's rate is */
	double canary_error_rate_after; /* this one */
	uint64_t stable_change_at_ms;   /* > 0: from then on stable's rate is */
	double stable_error_rate_after; /* this one */
	uint64_t outage_at_ms;       /* outage_for_ms > 0: a shared outage: both */
	uint64_t outage_for_ms;      /* versions fail at outage_error_rate in */
	double outage_error_rate;    /* [outage_at_ms, outage_at_ms + outage_for_ms) */
	uint64_t burst_size;         /* > 1: failures come in bursts of this many
	                              * requests of one version (see simulate.c
	                              * "Bursts") at each version's long-run rate */
	double latency_median_ms;    /* stable's median latency: 50 */
	double latency_sigma;        /* lognormal shape (log-space sd): 0.5 */
	double canary_extra_latency_ms; /* added to the canary's median: 0 */
	uint64_t canary_warmup_ms;   /* > 0: for this long the canary's latencies */
	double canary_warmup_factor; /* are this many times slower (2) */
	double canary_tail_factor;   /* > 1: the canary's slowest canary_tail_share */
	double canary_tail_share;    /* of requests are this many times slower: 0.02 */
	const sim_data *data;        /* non-NULL: replay this instead (borrowed) */
	bool replay_recorded_split;  /* replay each version's recorded requests
	                              * as they are, not at the engine's weight */
} sim_traffic;

/* Whose rules decide the rollout (canaryctl simulate --rules). */
typedef enum {
	SIM_RULES_CANARYD = 0, /* the policy as canaryd runs it */
	SIM_RULES_FLAGGER,     /* Flagger's: the threshold judge, the interval
	                        * floored at 10 s, a check without data fails,
	                        * the rollback one interval after the threshold-th
	                        * failed check */
	SIM_RULES_ARGO,        /* Argo Rollouts' background AnalysisRun: see
	                        * simulate.c "Argo Rollouts" */
} sim_rules_kind;

typedef struct sim_rules {
	sim_rules_kind kind;
	int failure_limit;           /* argo: abort when failed measurements
	                              * exceed it (failureLimit, default 0) */
	int consecutive_error_limit; /* argo: abort when consecutive measurement
	                              * errors (no data) exceed it (default 4) */
} sim_rules;

/* Fills <t> with the defaults above. */
void sim_traffic_defaults(sim_traffic *t);

typedef enum {
	SIM_PROMOTED = 0,  /* the engine reached Promoting: Succeeded next */
	SIM_ROLLED_BACK,   /* the engine reached Failed */
	SIM_UNDECIDED,     /* neither within the time limit (or the data ran out) */
} sim_outcome;

/* "Succeeded", "Failed", "undecided" */
const char *sim_outcome_name(sim_outcome o);

/* The outcome of one simulated rollout. */
typedef struct sim_result {
	sim_outcome outcome;
	uint64_t decision_ms;  /* from the rollout's start to the decision (or the end) */
	int final_weight;      /* canary weight then: 100 promoted, 0 rolled back */
	int checks;            /* eng_check calls made */
	uint64_t canary_requests, canary_errors; /* served by the canary */
	char message[ENG_MSG_LEN]; /* the engine's message at the end */
} sim_result;

/* Shares over many runs. */
typedef struct sim_summary {
	int runs, promoted, rolled_back, undecided;
	double median_decision_s; /* over the decided runs (p50); -1 when none */
	double p95_decision_s;    /* likewise (nearest rank) */
	sim_result first;         /* the first run, seed <seed> */
} sim_summary;

/* A simulator for policy <p> (copied; custom metrics dropped) and traffic
 * <t> (copied; t->data is borrowed and must outlive the simulator). Holds
 * the per-second slots for <limit_ms> (0: SIM_DEFAULT_LIMIT_MS) of
 * simulated time, reused by every run. Returns NULL with <err> filled when
 * the inputs are unusable (negative or NaN rates, rates above 1, rps <= 0,
 * a limit above 24h). */
typedef struct sim sim;
sim *sim_new(const eng_policy *p, const sim_traffic *t, uint64_t limit_ms,
             char *err, size_t errlen);
void sim_free(sim *s); /* NULL is a no-op */

/* Metrics of the policy the simulation leaves out (custom metrics, and
 * request-duration when replaying a recording without canary_p99_ms): how
 * many, and the name of the i-th. */
int sim_skipped_metrics(const sim *s);
const char *sim_skipped_metric(const sim *s, int i);

/* The <q> quantile (0 < q < 1) of the synthetic latency of target <tg>
 * (TARGET_STABLE or TARGET_CANARY; <warm>: the canary's during its
 * warm-up) in milliseconds, as the upper bound of the stats bucket it falls
 * in; -1 when replaying a recording. */
double sim_latency_quantile_ms(const sim *s, int tg, bool warm, double q);

/* One rollout with random seed <seed>: the same seed gives the same
 * result. */
void sim_run(sim *s, uint64_t seed, sim_result *r);

/* Called with each run's result as it ends (run <i>, its <seed>). */
typedef void (*sim_each_fn)(void *arg, int i, uint64_t seed, const sim_result *r);

/* <runs> rollouts with seeds seed, seed+1, ... summed up in <out>; <each>
 * (when not NULL) is given every run's result, with <arg>. */
void sim_run_many(sim *s, int runs, uint64_t seed, sim_summary *out, sim_each_fn each,
                  void *arg);

/* Sets whose rules (canaryd's, Flagger's or Argo Rollouts': SIM_RULES_*)
 * decide the runs that follow. Returns 0, or -1 with <err> filled and
 * canaryd's rules in force (negative limits; a metric with a relative
 * threshold, a baseline or a failureDuration, which neither tool has;
 * Argo's rules without step weights). */
int sim_set_rules(sim *s, const sim_rules *r, char *err, size_t errlen);

/* Parses recorded traffic: CSV with the columns second, stable_requests,
 * stable_errors, canary_requests, canary_errors and optionally
 * canary_p99_ms (may be empty) and then stable_hist, canary_hist (both or
 * neither): a version's latency histogram over stats' buckets as
 * "BUCKET:COUNT;BUCKET:COUNT..." (buckets 0..STATS_BUCKETS-1 ascending,
 * counts adding up to the version's requests of the second; empty for no
 * requests). An optional header line (any first line starting with a
 * letter), blank lines and '#' comments are skipped; seconds must ascend
 * and start at 0 or later (the first row's second becomes second 0).
 * Returns 0 with <out> filled (sim_data_release frees it), or -1 with
 * "<name>:LINE: message" in <err>. */
int sim_parse_csv(const char *name, const char *text, size_t len, sim_data *out,
                  char *err, size_t errlen);
void sim_data_release(sim_data *d);

#endif
