/* judge.h - the sequential judge (analysis.judge: sequential): decides, on
 * every look however often it looks, whether the canary is worse than
 * stable (roll back) or non-inferior with confidence (may advance a step),
 * with the chance of a false rollback bounded by alpha over the whole
 * rollout. Pure: no I/O, no clock, no allocation; the state is plain data
 * (it can be persisted as is) and all work is done on the caller's structs.
 *
 * One judge_state lives for one rollout, not one step: the weight changes
 * between steps but the error rates and latencies being compared do not, and
 * evidence gathered at 10% is still evidence at 20%. The error test
 * conditions on how many requests each target served, so changing weights
 * cannot bias it. judge_step() marks a new step: min_samples counts from
 * there, and a fresh component of evidence starts there (so a canary that
 * breaks only under the higher load is not held back by the good record of
 * earlier steps). Method, guarantees and sources: docs/analysis.md.
 *
 * Typical use by the engine, on every tick of a running rollout:
 *   v1 = judge_errors(&st, cn, c5xx, sn, s5xx, &ev);   (cumulative counts)
 *   v2 = judge_latency(&st, &canary_sum, &stable_sum, &lev);
 *   switch (judge_combine(v1, v2)) { WORSE: roll back;
 *       NONINFERIOR: advance a step, then judge_step(&st); CONTINUE: hold }
 */
#ifndef CANARYD_JUDGE_H
#define CANARYD_JUDGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "hist.h"

#define JUDGE_GRID 12      /* effect sizes mixed over, per test */
#define JUDGE_STARTS 4     /* evidence components kept: rollout start + 3
                            * most recent restarts (steps, ends of holds) */
#define JUDGE_MAX_TERMS 65536 /* a stratum needing a longer exact sum is
                               * skipped (never happens with looks <= 1s) */
#define JUDGE_WINDOW_LOOKS 10 /* looks per evidence window (1 s at the
                               * daemon's 100 ms tick): one window may
                               * multiply the evidence by at most cap */
#define JUDGE_RECENT 5        /* windows behind stable's recent rate */
#define JUDGE_MAX_GUARDS 8

typedef struct judge_params {
	double alpha;          /* P(false rollback) bound over the rollout,
	                        * every test together; (0, 0.5], default 0.01 */
	uint64_t min_samples;  /* canary requests in the current step before
	                        * it may advance; default 100 */
	double margin;         /* error margin in points: the canary is no
	                        * worse while its error rate <= stable's +
	                        * margin (or <= error_ratio x stable's);
	                        * (0, 1), default 0.005 */
	double error_ratio;    /* error margin as a ratio: [1, 100], default
	                        * 1.2; 1 leaves the points margin alone */
	double latency_ratio;  /* latency: canary may be up to this many times
	                        * slower without it counting as worse; >= 1,
	                        * default 1.25; 0 disables the latency test */
	double latency_quantile; /* the latency quantile compared: (0, 1),
	                          * default 0.99 */
} judge_params;

/* Fills <p> with the defaults above. */
void judge_params_defaults(judge_params *p);

/* Checks <p>. Returns 0, or -1 with a message in <err> naming the field,
 * e.g. "alpha must be in (0, 0.5]: 0.9". */
int judge_params_check(const judge_params *p, char *err, size_t errlen);

typedef enum {
	JUDGE_CONTINUE = 0, /* not enough evidence either way: hold */
	JUDGE_WORSE,        /* the canary is worse: roll back (sticky) */
	JUDGE_NONINFERIOR,  /* no worse than the margin with confidence
	                     * 1 - alpha and min_samples canary requests in
	                     * this step: may advance, and may promote */
	JUDGE_ADVANCE,      /* the evidence leans no worse (its e-value >= 1)
	                     * and min_samples canary requests in this step:
	                     * may advance an intermediate step, not promote */
} judge_verdict;

/* "continue", "worse", "noninferior", "advance" */
const char *judge_verdict_name(judge_verdict v);

/* A mixture of likelihood ratios over JUDGE_GRID effect sizes and up to
 * JUDGE_STARTS start points, kept in logs. Each component's product is
 * cut into windows of JUDGE_WINDOW_LOOKS looks, and one window multiplies
 * it by at most e^log_cap. Internal, exposed as plain data. */
typedef struct judge_mix {
	double log_comp[JUDGE_STARTS][JUDGE_GRID]; /* up to the window */
	double log_win[JUDGE_STARTS][JUDGE_GRID];  /* within the window */
	double log_w[JUDGE_STARTS];  /* log weight of each start */
	double log_g[JUDGE_GRID];    /* log weight of each effect size */
	bool active[JUDGE_STARTS];
	double log_cap;              /* per window */
	uint32_t win_looks;          /* looks in the current window */
	double log_e;                /* log of the mixture (the e-value) now */
	double max_log_e;            /* its running maximum */
} judge_mix;

/* One sequential test of a canary-only rate against a fixed bound (a
 * guard: error-rate <= 1 %, request-duration p99 <= 500 ms). */
typedef struct judge_guard {
	double bound;              /* the null: the canary's rate <= bound */
	double alpha;              /* its share of alpha */
	uint64_t last_n, last_x;   /* at the last look */
	bool seen;
	bool origin;               /* the next look is an origin (warm-up) */
	uint64_t n, x;             /* requests, and those beyond the bound */
	judge_mix mix;
	bool worse;
} judge_guard;

typedef struct judge_state {
	judge_params p;            /* copied by judge_init */
	double alpha_errors;       /* alpha spent on the error test */
	double alpha_latency;      /* and on the latency test (0: disabled) */
	double alpha_guards;       /* and on the guards together */
	int latency_shift;         /* canary buckets shifted down by this many
	                            * to allow latency_ratio (see docs) */
	uint32_t steps;            /* judge_step calls so far */
	uint32_t starts;           /* evidence components started after the
	                            * rollout's (steps and ends of holds) */
	uint64_t looks;            /* judge_errors calls */
	/* errors */
	uint64_t last_n[TARGET_COUNT], last_err[TARGET_COUNT]; /* at last look */
	bool seen_errors;          /* a first look has set last_* */
	uint64_t n[TARGET_COUNT], err[TARGET_COUNT]; /* summed increments */
	uint64_t step_canary_n;    /* canary requests since the step started */
	uint64_t open_n[TARGET_COUNT], open_err[TARGET_COUNT]; /* the stratum
	                            * being gathered (until both targets served) */
	uint64_t base_n, base_err; /* stable's counts outside holds: its baseline */
	uint64_t cbase_n, cbase_err; /* the canary's outside holds */
	uint32_t base_windows;     /* windows in the baseline */
	uint64_t recent_n[JUDGE_RECENT], recent_err[JUDGE_RECENT]; /* stable,
	                            * per window, the last JUDGE_RECENT windows */
	uint64_t win_n, win_err;   /* stable in the current window */
	uint64_t win_canary_n;     /* canary requests in the current window */
	uint32_t win_err_looks;    /* and its looks */
	uint64_t wo_n[TARGET_COUNT], wo_err[TARGET_COUNT]; /* the current
	                            * window, outside holds: dispersion */
	double disp_num, disp_den; /* Pearson's statistic of the windows */
	double dispersion;         /* its ratio, >= 1: the tempering */
	bool held;                 /* stable departs from its baseline now */
	bool surge;                /* this look's failures surge on both */
	bool win_held;             /* a look of the current window was held */
	uint64_t holds;            /* holds begun */
	double psi0;               /* the margin as a log odds ratio, last used */
	judge_mix mix_err;         /* "worse than the margin" (rollback) */
	judge_mix mix_ni;          /* "no worse than the margin" (advance) */
	double canary_upper;       /* running confidence bounds (intersected) */
	double stable_lower;
	uint64_t cs_at_n;          /* canary n when they were last refreshed */
	bool cs_fresh;             /* refreshed in this step */
	bool err_worse;
	/* latency */
	uint64_t last_hist[TARGET_COUNT][STATS_BUCKETS];
	bool seen_latency;
	uint64_t lat_n[TARGET_COUNT];
	uint64_t lat_open[TARGET_COUNT][STATS_BUCKETS]; /* the open stratum */
	uint64_t stable_hist[STATS_BUCKETS]; /* stable's, summed: its quantile */
	int lat_bucket;            /* stable's quantile bucket, last used (-1) */
	uint64_t lat_exceed[TARGET_COUNT]; /* beyond it, summed over strata */
	uint64_t lat_looks;
	judge_mix mix_lat;         /* the quantile's tail (exceedances) */
	judge_mix mix_rank;        /* the whole distribution (ridits) */
	bool lat_worse;
	/* guards */
	int n_guards;
	judge_guard guards[JUDGE_MAX_GUARDS];
	/* bookkeeping */
	uint64_t resets;           /* looks where a counter went down */
	uint64_t skipped;          /* strata too large to sum exactly */
} judge_state;

/* What a look saw, for audit messages and the dashboard. */
typedef struct judge_evidence {
	double p_value;       /* always-valid p-value for "canary is worse"
	                       * (1/running max of the e-value, capped at 1) */
	double e_value;       /* the mixture e-value now (>= 1/alpha_test
	                       * means worse) */
	double threshold;     /* 1/alpha of this test */
	uint64_t canary_n, stable_n; /* requests counted since rollout start */
	/* errors only (0 for latency): */
	double canary_rate, stable_rate; /* error rates since rollout start */
	double ni_e_value;    /* e-value for "no worse than the margin" */
	double margin_rate;   /* the rate the canary may reach at stable's
	                       * baseline: max(base + margin, base x ratio) */
	double baseline_rate; /* stable's rate outside holds */
	double recent_rate;   /* stable's rate over its last windows */
	bool held;            /* stable departs from its baseline: no advance */
	double diff_upper;    /* confidence bound: canary - stable rate < this */
	uint64_t step_canary_n;
	/* latency only: */
	double canary_exceed, stable_exceed; /* shares beyond the threshold */
	double threshold_ms;  /* stable's quantile bucket's lower edge */
} judge_evidence;

/* Starts the judge for a new rollout with <p> (copied; must pass
 * judge_params_check, otherwise the defaults are used for bad fields). */
void judge_init(judge_state *s, const judge_params *p);

/* The share of alpha that the guards (all of them together) get. */
#define JUDGE_GUARDS_SHARE 0.2

/* Adds a guard to a judge just started: a sequential test that the
 * canary's rate of <what> (failures, or requests slower than a bound) is
 * at most <bound> in (0, 1). The guards share alpha_guards equally, taken
 * from the error test's share. Returns its index, or -1 when full or the
 * bound is out of range. */
int judge_add_guard(judge_state *s, double bound);

/* Marks the start of a new step (the weight changed): min_samples counts
 * from here and a fresh evidence component starts here. */
void judge_step(judge_state *s);

/* Takes the counts as the origin of what follows without judging them
 * (the canary's warm-up): the next look's increments start from here. */
void judge_origin(judge_state *s, uint64_t canary_n, uint64_t canary_err,
                  uint64_t stable_n, uint64_t stable_err,
                  const stats_summary *canary, const stats_summary *stable);

/* One look at the error counts: <canary_n> requests of which <canary_err>
 * failed, and the same for stable, cumulative since the rollout started
 * (the first look's values are its increment; later looks use the
 * increments since the previous one). A count that goes down (counters
 * reset) makes this look a new origin and its increment is skipped; err >
 * n is clamped to n. Returns WORSE once the rollback e-value reaches
 * 1/alpha_errors (and forever after); NONINFERIOR or ADVANCE (see the
 * enum) when not held; else CONTINUE. Fills <ev> when not NULL. */
judge_verdict judge_errors(judge_state *s, uint64_t canary_n,
                           uint64_t canary_err, uint64_t stable_n,
                           uint64_t stable_err, judge_evidence *ev);

/* One look at the latency histograms, cumulative since the rollout started
 * as for judge_errors (a bucket that goes down makes this look a new
 * origin). Returns WORSE once the canary's share of requests beyond
 * latency_ratio x stable's latency_quantile is larger than stable's share
 * beyond its quantile, with e-value >= 1/alpha_latency (sticky), else
 * CONTINUE; never NONINFERIOR. Always CONTINUE when the latency test is
 * disabled. Fills <ev> when not NULL. */
judge_verdict judge_latency(judge_state *s, const stats_summary *canary,
                            const stats_summary *stable, judge_evidence *ev);

/* One look at guard <g>: <n> canary requests of which <x> are beyond its
 * bound, cumulative as for judge_errors. Returns WORSE once the canary's
 * rate is shown above the bound with e-value >= 1/alpha (sticky), else
 * CONTINUE. <e_value> gets the e-value when not NULL. */
judge_verdict judge_guard_look(judge_state *s, int g, uint64_t n, uint64_t x,
                               double *e_value);

/* What a judge has seen and how its evidence stands, for the status and
 * for decisions outside the judge (maxDuration's promote): plain numbers,
 * finite (e-values past e^700 are capped there). */
typedef struct judge_summary {
	uint64_t canary_n, stable_n;       /* requests judged since the origin */
	double canary_rate, stable_rate;   /* their error rates (0 with none) */
	double worse_e, worse_threshold;   /* the error test's rollback e-value
	                                    * and the 1/alpha_errors it needs */
	double noworse_e, noworse_threshold; /* non-inferiority's, and 2/alpha */
	double lean_worse_e;               /* the largest worse-leaning e-value
	                                    * of every test (errors, latency
	                                    * tail and ranks, guards) */
	const char *lean_worse_test;       /* which: "the error rate", "the
	                                    * latency tail", "the latency",
	                                    * "a guard" */
	bool held;                         /* stable is off its baseline */
	uint64_t holds;
	double dispersion;
	uint64_t step_canary_n;            /* canary requests in this step */
} judge_summary;

void judge_summarize(const judge_state *s, judge_summary *out);

/* The verdict of a look from both tests: WORSE if either is WORSE, else
 * the errors' verdict. */
judge_verdict judge_combine(judge_verdict errors, judge_verdict latency);

#endif
