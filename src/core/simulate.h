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
 * each tick under the sequential judge, eng_check when due. Custom metrics
 * (providers) and webhook gates cannot be simulated and are left out. */
#ifndef CANARYD_SIMULATE_H
#define CANARYD_SIMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine.h"

#define SIM_TICK_MS 100
#define SIM_DEFAULT_LIMIT_MS (30ULL * 60 * 1000)

/* One recorded second (canaryctl simulate --data CSV). */
typedef struct sim_second {
	uint64_t stable_requests, stable_errors;
	uint64_t canary_requests, canary_errors;
	bool has_p99;
	double canary_p99_ms;
} sim_second;

/* Recorded traffic: rows in second order, second 0 first (gaps are seconds
 * without traffic). */
typedef struct sim_data {
	sim_second *sec;
	size_t n;
} sim_data;

/* The synthetic traffic, or the recording to replay. */
typedef struct sim_traffic {
	double rps;                  /* requests per second, both versions: 200 */
	double stable_error_rate;    /* fractions 0..1 of 5xx: 0.005 */
	double canary_error_rate;    /* 0.005 */
	uint64_t change_at_ms;       /* > 0: from then on the canary's rate is */
	double canary_error_rate_after; /* this one */
	double latency_median_ms;    /* stable's median latency: 50 */
	double latency_sigma;        /* lognormal shape (log-space sd): 0.5 */
	double canary_extra_latency_ms; /* added to the canary's median: 0 */
	const sim_data *data;        /* non-NULL: replay this instead (borrowed) */
} sim_traffic;

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
	double median_decision_s; /* over the decided runs; -1 when none */
	double p95_decision_s;    /* likewise */
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

/* One rollout with random seed <seed>: the same seed gives the same
 * result. */
void sim_run(sim *s, uint64_t seed, sim_result *r);

/* <runs> rollouts with seeds seed, seed+1, ... summed up in <out>. */
void sim_run_many(sim *s, int runs, uint64_t seed, sim_summary *out);

/* Parses recorded traffic: CSV with the columns second, stable_requests,
 * stable_errors, canary_requests, canary_errors and optionally
 * canary_p99_ms; an optional header line (any first line starting with a
 * letter), blank lines and '#' comments are skipped; seconds must ascend
 * and start at 0 or later (the first row's second becomes second 0).
 * Returns 0 with <out> filled (sim_data_release frees it), or -1 with
 * "<name>:LINE: message" in <err>. */
int sim_parse_csv(const char *name, const char *text, size_t len, sim_data *out,
                  char *err, size_t errlen);
void sim_data_release(sim_data *d);

#endif
