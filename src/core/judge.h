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
                            * most recent steps */
#define JUDGE_MAX_TERMS 65536 /* an increment needing a longer exact sum is
                               * skipped (never happens with looks <= 1s) */

typedef struct judge_params {
	double alpha;          /* P(false rollback) bound over the rollout,
	                        * errors and latency together; (0, 0.5],
	                        * default 0.01 */
	uint64_t min_samples;  /* canary requests in the current step before
	                        * NONINFERIOR; default 100 */
	double margin;         /* non-inferiority margin: canary error rate -
	                        * stable error rate must be below this with
	                        * confidence 1-alpha; (0, 1), default 0.005 */
	double latency_ratio;  /* latency: canary may be up to this many times
	                        * slower without it counting as worse; >= 1,
	                        * default 1.25; 0 disables the latency test
	                        * (then errors get all of alpha) */
} judge_params;

/* Fills <p> with the defaults above. */
void judge_params_defaults(judge_params *p);

/* Checks <p>. Returns 0, or -1 with a message in <err> naming the field,
 * e.g. "alpha must be in (0, 0.5]: 0.9". */
int judge_params_check(const judge_params *p, char *err, size_t errlen);

typedef enum {
	JUDGE_CONTINUE = 0, /* not enough evidence either way: hold */
	JUDGE_WORSE,        /* the canary is worse: roll back (sticky) */
	JUDGE_NONINFERIOR,  /* non-inferior with confidence and min_samples
	                     * canary requests seen in this step: may advance */
} judge_verdict;

/* "continue", "worse", "noninferior" */
const char *judge_verdict_name(judge_verdict v);

/* A mixture of likelihood ratios over JUDGE_GRID effect sizes and up to
 * JUDGE_STARTS start points, kept in logs. Internal, exposed as plain data. */
typedef struct judge_mix {
	double log_comp[JUDGE_STARTS][JUDGE_GRID]; /* log LR product since start */
	double log_w[JUDGE_STARTS];  /* log weight of each start */
	double log_g[JUDGE_GRID];    /* log weight of each effect size */
	bool active[JUDGE_STARTS];
	double log_e;                /* log of the mixture (the e-value) now */
	double max_log_e;            /* its running maximum */
} judge_mix;

typedef struct judge_state {
	judge_params p;            /* copied by judge_init */
	double alpha_errors;       /* alpha spent on the error test */
	double alpha_latency;      /* and on the latency test (0: disabled) */
	int latency_shift;         /* canary buckets shifted down by this many
	                            * to allow latency_ratio (see docs) */
	uint32_t steps;            /* judge_step calls so far */
	/* errors */
	uint64_t last_n[TARGET_COUNT], last_err[TARGET_COUNT]; /* at last look */
	bool seen_errors;          /* a first look has set last_* */
	uint64_t n[TARGET_COUNT], err[TARGET_COUNT]; /* summed increments */
	uint64_t step_canary_n;    /* canary requests since the step started */
	judge_mix mix_err;
	double canary_upper;       /* running confidence bounds (intersected) */
	double stable_lower;
	uint64_t cs_at_n;          /* canary n when they were last refreshed */
	bool cs_fresh;             /* refreshed in this step */
	bool err_worse;
	/* latency */
	uint64_t last_hist[TARGET_COUNT][STATS_BUCKETS];
	bool seen_latency;
	uint64_t lat_n[TARGET_COUNT];
	judge_mix mix_lat;
	bool lat_worse;
	/* bookkeeping */
	uint64_t resets;           /* looks where a counter went down */
	uint64_t skipped;          /* increments too large to sum exactly */
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
	double diff_upper;    /* confidence bound: canary - stable rate < this
	                       * (1 until first computed; refined only once
	                       * min_samples are reached, frozen below margin) */
	uint64_t step_canary_n;
} judge_evidence;

/* Starts the judge for a new rollout with <p> (copied; must pass
 * judge_params_check, otherwise the defaults are used for bad fields). */
void judge_init(judge_state *s, const judge_params *p);

/* Marks the start of a new step (the weight changed): min_samples counts
 * from here and a fresh evidence component starts here. */
void judge_step(judge_state *s);

/* One look at the error counts: <canary_n> requests of which <canary_err>
 * failed, and the same for stable, cumulative since the rollout started
 * (the first look's values are its increment; later looks use the
 * increments since the previous one). A
 * count that goes down (counters reset) makes this look a new origin and
 * its increment is skipped; err > n is clamped to n. Returns WORSE once
 * the e-value reaches 1/alpha_errors (and forever after), NONINFERIOR when
 * the upper confidence bound of canary-stable error rate is below margin
 * and the step has min_samples canary requests, else CONTINUE. Fills <ev>
 * when not NULL. */
judge_verdict judge_errors(judge_state *s, uint64_t canary_n,
                           uint64_t canary_err, uint64_t stable_n,
                           uint64_t stable_err, judge_evidence *ev);

/* One look at the latency histograms, cumulative since the rollout started
 * as for judge_errors (e.g. stats_query from the rollout's first second to
 * now; a bucket that goes down makes this look a new origin). Returns
 * WORSE once the canary's latencies (allowing latency_ratio) rank above
 * stable's with e-value >= 1/alpha_latency (sticky), else CONTINUE; never
 * NONINFERIOR. Always CONTINUE when the latency test is disabled. Fills
 * <ev> when not NULL (rates and diff_upper 0). */
judge_verdict judge_latency(judge_state *s, const stats_summary *canary,
                            const stats_summary *stable, judge_evidence *ev);

/* The verdict of a look from both tests: WORSE if either is WORSE,
 * NONINFERIOR if errors are NONINFERIOR and latency is not WORSE, else
 * CONTINUE. */
judge_verdict judge_combine(judge_verdict errors, judge_verdict latency);

#endif
