/* engine.h - the rollout engine: Flagger's canary analysis as a pure state
 * machine. No sockets, no clock calls, no database, no allocation: time,
 * metric readings and operator commands go in; the new state and an output
 * (audit events, hooks to run, a promotion) come out. The driver persists the
 * new state and events, then applies the state's weight to the router.
 *
 * Semantics are Flagger's (../shared/SPEC.md "Rollout semantics") with one
 * deliberate difference: the rollback happens on the check that makes
 * failed_checks reach <threshold>, not one interval later as in Flagger. */
#ifndef CANARYD_ENGINE_H
#define CANARYD_ENGINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "judge.h"

#define ENG_MAX_METRICS 16
#define ENG_MAX_STEPS 32
#define ENG_MAX_EVENTS 8
#define ENG_MAX_HOOKS 4
#define ENG_NAME_LEN 64
#define ENG_REV_LEN 64
#define ENG_MSG_LEN 256
#define ENG_DETAIL_LEN 1024

typedef enum {
	ENG_INITIALIZED = 0, /* no rollout yet: 100% stable */
	ENG_PROGRESSING,     /* analysis running, weight stepping up */
	ENG_PAUSED,          /* held by pause or set-weight; no checks */
	ENG_WAITING_PROMOTION,/* a confirm-promotion webhook or an approval
	                      * gate holds the next step up; checks go on */
	ENG_PROMOTING,       /* 100% to canary; becomes stable at next tick */
	ENG_SUCCEEDED,       /* canary revision is now stable: 100% stable */
	ENG_FAILED,          /* rolled back: 100% stable */
	ENG_WAITING,         /* a confirm-rollout webhook holds the start: no
	                      * canary traffic, no checks */
	ENG_ROLLING_BACK,    /* a failed canary's weight goes down by
	                      * rollbackStepWeight each interval, then Failed */
	ENG_PHASE_COUNT
} eng_phase;

/* "Initialized", "Progressing", ... as in Flagger's status.phase. */
const char *eng_phase_name(eng_phase p);
/* Inverse of eng_phase_name ("WaitingApproval", its name before version
 * 11 of the state, is WaitingPromotion); -1 when unknown. */
int eng_phase_parse(const char *s);

typedef enum {
	ENG_M_SUCCESS_RATE = 0, /* request-success-rate: % of non-5xx, canary */
	ENG_M_DURATION,         /* request-duration: p99 in ms, canary */
	ENG_M_ERROR_RATE,       /* error-rate: % of 5xx, canary */
	ENG_M_CUSTOM,           /* read from a provider (Prometheus, web) */
} eng_metric_kind;

typedef struct eng_metric {
	char name[ENG_NAME_LEN];
	eng_metric_kind kind;
	bool has_min, has_max;  /* thresholdRange bounds present */
	double min, max;        /* pass when min <= value <= max */
	uint64_t window_ms;     /* the metric's own interval (window) */
	bool relative;          /* bounds apply to the canary's value against
	                         * stable's over the same window: a difference
	                         * in points for rates (success, error), a ratio
	                         * for request-duration and custom metrics */
	uint64_t baseline_window_ms;  /* > 0: a breach counts only when the value
	                               * is also worse than stable's history over
	                               * this longer window */
	uint64_t failure_duration_ms; /* > 0: a breach counts only once it has
	                               * lasted this long */
} eng_metric;

typedef enum {
	ENG_JUDGE_THRESHOLD = 0, /* Flagger's fixed thresholds each interval */
	ENG_JUDGE_SEQUENTIAL,    /* always-valid sequential test (src/judge.h) */
} eng_judge;

/* analysis.onNoData: what a check whose metric has no data (or fewer than
 * minSamples requests behind it) does. */
typedef enum {
	ENG_NODATA_HOLD = 0, /* holds the weight, neither passes nor fails */
	ENG_NODATA_FAIL,     /* fails the check, as in Flagger */
} eng_on_no_data;

/* analysis.onMaxDuration: what happens to a rollout still undecided after
 * maxDuration. */
typedef enum {
	ENG_MAXDUR_PAUSE = 0, /* pause it (the operator decides) */
	ENG_MAXDUR_ROLLBACK,
	ENG_MAXDUR_PROMOTE,
} eng_on_max_duration;

/* analysis.onFailure: what a failed analysis (threshold failed checks, or
 * the sequential judge's "worse") does. */
typedef enum {
	ENG_ONFAIL_ROLLBACK = 0, /* 100% to stable at once (Flagger's) */
	ENG_ONFAIL_PAUSE,        /* hold the weight, paused, for the operator */
} eng_on_failure;

/* One entry of analysis.steps (Argo Rollouts' model): a weight to set, or
 * a pause. */
typedef struct eng_step {
	int weight;            /* setWeight 0..100, or -1 for a pause */
	uint64_t pause_ms;     /* a pause's duration; 0: until resumed */
} eng_step;

/* What a rollout waits for before its next move (eng_state.waiting). */
typedef enum {
	ENG_GATE_NONE = 0,
	ENG_GATE_ROLLOUT,      /* confirm-rollout webhooks: phase Waiting */
	ENG_GATE_TRAFFIC,      /* confirm-traffic-increase: Progressing, held */
	ENG_GATE_PROMOTION,    /* confirm-promotion: WaitingPromotion */
	ENG_GATE_APPROVAL,     /* analysis.approval: WaitingPromotion until
	                        * an operator approves */
	ENG_GATE_COUNT
} eng_gate;

/* "confirm-rollout", "confirm-traffic-increase", "confirm-promotion",
 * "approval", or "" for ENG_GATE_NONE. */
const char *eng_gate_name(eng_gate g);

/* The analysis policy of one canary (spec.analysis), with defaults applied. */
typedef struct eng_policy {
	uint64_t interval_ms;            /* between checks; default 60s, >= 100ms */
	int threshold;                   /* failed checks before rollback; default 1 */
	int max_weight;                  /* default 100 */
	int step_weight;                 /* 0 when step_weights is used */
	int step_weights[ENG_MAX_STEPS]; /* ascending, each 1..100 */
	int n_step_weights;
	int iterations;                  /* >0 without steps: A/B / blue-green */
	uint64_t progress_deadline_ms;   /* default 600s */
	eng_metric metrics[ENG_MAX_METRICS];
	int n_metrics;
	eng_judge judge;                 /* analysis.judge, default threshold */
	double alpha;                    /* sequential: false rollback bound, 0.01 */
	uint64_t min_samples;            /* sequential: canary requests before a step,
	                                  * 100; and for every check: a reading
	                                  * resting on fewer canary requests
	                                  * (eng_reading.samples) is no data */
	double judge_margin;             /* sequential: canary error rate may exceed
	                                  * stable's by less than this (a fraction)
	                                  * to advance; 0.005 (judge.h's margin) */
	double judge_latency_ratio;      /* sequential: canary latency may be this
	                                  * many times stable's; 1.25; 0 turns the
	                                  * latency test off */
	double judge_error_ratio;        /* sequential: canary error rate may be this
	                                  * many times stable's (a margin that
	                                  * scales with the base rate) */
	double judge_latency_quantile;   /* sequential: the latency quantile
	                                  * compared (0.99) */
	uint64_t warmup_ms;              /* analysis.warmup: no check is made in a
	                                  * rollout's first warmup_ms (eng_check
	                                  * holds it), and the readings' windows
	                                  * start after it (readings.h); 0: none */
	uint64_t max_duration_ms;        /* analysis.maxDuration: an analysis still
	                                  * undecided after this long ends by
	                                  * on_max_duration (eng_tick); 0: never */
	eng_on_max_duration on_max_duration; /* how it ends */
	eng_on_no_data on_no_data;       /* a check without data holds or fails */
	/* analysis.steps: when n_steps > 0 they replace stepWeight(s): each
	 * setWeight holds until the analysis passes at that weight, each
	 * pause holds the phase Paused (for pause_ms, or until resumed,
	 * approved or promoted); past the last step the canary promotes */
	eng_step steps[ENG_MAX_STEPS];
	int n_steps;
	/* gates: webhooks of these types exist (the driver polls them while
	 * the rollout waits, eng_gate_answer), and analysis.approval */
	bool gate_rollout, gate_traffic, gate_promotion;
	bool has_approval;
	int approval_above;              /* a step to a weight above this (or
	                                  * the promotion) needs approval */
	eng_on_failure on_failure;
	int rollback_step_weight;        /* > 0: a failed analysis lowers the
	                                  * weight by this each interval
	                                  * (RollingBack) instead of at once, so
	                                  * that a cold stable takes the load in
	                                  * steps; 0: at once */
	uint64_t post_promotion_ms;      /* analysis.postPromotion.window: after
	                                  * a promotion the new stable is judged
	                                  * this long against the previous
	                                  * stable's baseline, and undone when
	                                  * worse (eng_watch); 0: not */
	uint64_t undo_window_ms;         /* after a promotion, eng_command's
	                                  * UNDO may bring back the previous
	                                  * stable for this long; 0: never */
} eng_policy;

/* Fills <p> with Flagger's defaults (interval 60s, threshold 1, maxWeight
 * 100, stepWeight 0, progressDeadline 600s, no metrics) and the sequential
 * judge's (judge threshold, alpha 0.01, min_samples 100, margin 0.005,
 * latency ratio 1.25), and canaryd's for checks: on_no_data hold, no
 * warm-up, no maxDuration. Flagger's own check rules are min_samples 1
 * and on_no_data fail (what the configuration gives a Flagger document
 * under the threshold judge). */
void eng_policy_defaults(eng_policy *p);

/* The persisted state of one canary. Plain data: it is stored as is. */
typedef struct eng_state {
	eng_phase phase;
	int weight;               /* canary share of new requests, 0..100 */
	int failed_checks;        /* add up over the rollout; reset by a new one */
	int iterations;           /* checks made in this rollout */
	bool manual_weight;       /* Paused by set-weight (vs. by pause) */
	char stable_rev[ENG_REV_LEN];
	char canary_rev[ENG_REV_LEN]; /* revision of the current/last rollout */
	uint64_t rollout_started_ms;  /* start of the current rollout */
	uint64_t next_check_ms;       /* when the next check is due */
	uint64_t unready_since_ms;    /* 0 while the canary is ready */
	uint64_t last_transition_ms;  /* last phase change */
	char message[ENG_MSG_LEN];    /* why the last transition happened */
	/* failureDuration: when the current unbroken breach of metrics[i]
	 * began (0: none). Cleared by a check in range, a new rollout, a
	 * resume and the end of the analysis. Persist it with the rest: a
	 * restart that forgot it would restart every breach's clock. */
	uint64_t breach_since_ms[ENG_MAX_METRICS];
	/* The sequential judge's evidence for this rollout (eng_observe). Not
	 * needed across restarts: when judge_started is false (a new rollout,
	 * or a state loaded without these fields) the next eng_observe starts
	 * the judge afresh from the counts it is given. eng_observe updates
	 * <judge> on every call without setting out->changed, so a store that
	 * does keep it must write it on its own schedule. */
	bool judge_started;
	int judge_weight;          /* the weight whose step the judge counts */
	bool judge_held;           /* the judge holds: stable is off its
	                            * baseline (an event marks each change) */
	int judge_guard_metric[JUDGE_MAX_GUARDS]; /* policy metric of guard i */
	judge_state judge;
	/* analysis.steps: the index of the step the rollout is at (-1: none
	 * yet); paused by a pause step (until pause_until_ms, 0: until
	 * resumed) */
	int step;
	bool step_paused;
	uint64_t pause_until_ms;
	bool failure_paused;      /* paused by onFailure: pause */
	/* gates */
	eng_gate waiting;         /* what the next move waits for */
	unsigned gate_ok;         /* 1u << gate: a webhook answer that passed,
	                           * not used yet (not persisted: asked again) */
	char gate_reason[128];    /* the last answer that did not pass */
	bool approved;            /* analysis.approval given in this rollout */
	bool aborted;             /* the rollout ended by an operator's abort */
	/* undo: the stable revision a promotion replaced, until when */
	char prev_stable_rev[ENG_REV_LEN];
	uint64_t undo_until_ms;
	/* postPromotion: judged until watch_until_ms (0: not watching), the
	 * previous stable's baseline (error rate, latency quantile in ms) */
	uint64_t watch_until_ms;
	double watch_base_rate, watch_base_ms;
} eng_state;

/* Initial state: Initialized, weight 0, <stable_rev>, no canary. */
void eng_state_init(eng_state *s, const char *stable_rev, uint64_t now_ms);

/* A metric reading for one check, in the order of policy->metrics. */
typedef struct eng_reading {
	bool has_data;        /* false: no data in the window (the check holds
	                       * or fails, by policy->on_no_data) */
	bool fails;           /* with !has_data: the reading is a failure, not
	                       * a lack of data (a webhook gate that did not
	                       * pass): the check fails whatever on_no_data */
	double value;         /* percent or milliseconds, per kind */
	char reason[96];      /* why there is no data, when !has_data */
	bool has_stable;      /* relative metrics: stable's value, same window */
	double stable_value;
	bool has_baseline;    /* baseline metrics: stable's value, long window */
	double baseline_value;
	bool has_samples;     /* the canary requests the value rests on are */
	uint64_t samples;     /* known (built-in metrics): this many; fewer
	                       * than policy->min_samples is no data */
} eng_reading;

typedef struct eng_metric_result {
	char name[ENG_NAME_LEN];
	bool has_value;
	double value;         /* the canary's own value */
	bool has_min, has_max;
	double min, max;
	bool passed;
	char reason[96];
	/* relative metrics: stable's value and what [min, max] was applied to
	 * (value - stable_value for rates, value / stable_value otherwise) */
	bool relative;
	bool has_stable;
	double stable_value;
	double compared;
	/* baseline metrics: stable's value over the baseline window */
	bool has_baseline;
	double baseline_value;
	/* failureDuration: out of range, but not for long enough yet to fail */
	bool pending;
	/* no data (or fewer than min_samples requests) under onNoData hold:
	 * neither passed nor failed */
	bool held;
} eng_metric_result;

/* An audit event produced by the engine. type is one of: "rollout-started",
 * "weight", "check", "paused", "resumed", "promoting", "succeeded",
 * "rollback", "manual", "not-ready", "max-duration", "waiting" (a gate
 * holds the next move), "gate" (a gate's webhooks passed), "approved",
 * "abort", "undo", "failure-paused" (onFailure: pause). */
typedef struct eng_event {
	char type[24];
	eng_phase phase;      /* phase after the event */
	int weight;           /* weight after the event */
	char message[ENG_MSG_LEN];
	char actor[ENG_NAME_LEN];   /* "canaryd" for automatic, else who */
	bool held;            /* a check held unmade (no data, warm-up): neither
	                       * passed nor failed */
	eng_metric_result metrics[ENG_MAX_METRICS]; /* checks only */
	int n_metrics;
	char detail[ENG_DETAIL_LEN]; /* the driver's: a hook program's output
	                              * (its start), "" for none */
} eng_event;

typedef enum {
	ENG_HOOK_PRE_ROLLOUT = 0,
	ENG_HOOK_ROLLOUT,
	ENG_HOOK_POST_ROLLOUT,
	ENG_HOOK_ROLLBACK,
} eng_hook;

typedef struct eng_output {
	eng_event events[ENG_MAX_EVENTS];
	int n_events;
	eng_hook hooks[ENG_MAX_HOOKS]; /* to run, in order */
	int n_hooks;
	bool promote;   /* the canary's endpoints become the stable ones now */
	bool undo;      /* the previous stable's endpoints become the stable
	                 * ones again, the (promoted) stable's the canary's */
	bool changed;   /* the state changed and must be persisted */
} eng_output;

/* Clears <o> (call before each engine call, or let the call do it: every
 * engine call starts by clearing its output). */
void eng_output_clear(eng_output *o);

/* True when a check is due at <now>: phase Progressing and now >=
 * next_check_ms. The driver then reads every metric and calls eng_check
 * (during the warm-up, eng_warming_up, it may call it without readings). */
bool eng_check_due(const eng_state *s, const eng_policy *p, uint64_t now_ms);

/* True while the rollout's warm-up (policy->warmup_ms from
 * rollout_started_ms) lasts at <now>: a check then is held unmade, so the
 * driver need not read any metric for it. */
bool eng_warming_up(const eng_state *s, const eng_policy *p, uint64_t now_ms);

/* One analysis check with readings[i] for p->metrics[i]. A metric out of
 * its range fails the check (subject to the metric's relative,
 * baseline_window_ms and failure_duration_ms settings: see "Judging one
 * metric" below); a metric with no data, or with fewer than min_samples
 * canary requests behind it, fails it under onNoData fail and is held
 * under onNoData hold. A check with no failing metric but a held one is
 * held: a "check" event says why ("check held at weight 10: error-rate
 * has no data: no canary requests in the last 60s"), the weight stays,
 * failed_checks and iterations do not count it. During the warm-up
 * (eng_warming_up) the check is held the same way without judging any
 * reading ("check held: warming up, 12s of 30s"; <readings> may be NULL).
 * A failing check holds the
 * weight and counts; the threshold-th failure rolls back (weight 0, phase
 * Failed, rollback hook). A passing check raises the weight to the next step
 * (capped at max_weight); a passing check at max_weight promotes (phase
 * Promoting, weight 100). In iterations mode (no steps), a passing check
 * counts and the iterations-th one promotes. Under the sequential judge the
 * metrics are guards only: a passing check holds the weight, and the judge
 * (eng_observe) steps up. Schedules the next check at now + interval. Does
 * nothing unless phase is Progressing. */
void eng_check(eng_state *s, const eng_policy *p, uint64_t now_ms,
               const eng_reading *readings, eng_output *out);

/* Judging one metric, in this order:
 * - no data (has_data false), or a reading that knows its canary requests
 *   (has_samples) and has fewer than policy->min_samples ("not enough
 *   data (12 of 100 requests)"): held under onNoData hold, unless the
 *   reading itself fails (fails true); otherwise fails with the reader's
 *   reason, at once (failureDuration does not apply: the check cannot be
 *   made). Either way the breach clock is left as it was.
 * - relative: [min, max] applies to value - stable_value for success and
 *   error rates (percentage points) and to value / stable_value for
 *   request-duration and custom metrics (0 / 0 is 1, x / 0 is +-infinity);
 *   without stable data (has_stable false) the metric fails with "no stable
 *   data to compare with". Otherwise value itself is compared.
 * - baseline (baseline_window_ms > 0): a breach of max counts only when
 *   value > baseline_value, a breach of min only when value <
 *   baseline_value (the canary is worse than stable's long history, not
 *   just the whole service having a bad minute); with no baseline data
 *   (has_baseline false) the breach counts.
 * - failureDuration (failure_duration_ms > 0): a counted breach fails only
 *   once it has lasted failure_duration_ms without a passing check in
 *   between (the first breaching check starts the clock in
 *   s->breach_since_ms[i], a check in range stops it, a check without data
 *   leaves it); until then the metric passes, marked pending, with reason
 *   "breach for 4s of 30s: ...", and a check whose only trouble is pending
 *   breaches holds the weight: it neither counts as failed nor steps up. */

struct stats_summary; /* stats.h: a latency histogram */

/* What the sequential judge sees: cumulative counts since the rollout
 * started, or since its warm-up ended (the daemon's stats_forget at the
 * rollout's start makes its per-second rings start there too; the judge
 * takes the first look after the warm-up as its origin either way). */
typedef struct eng_counts {
	uint64_t canary_requests, canary_errors; /* errors: 5xx responses */
	uint64_t stable_requests, stable_errors;
	/* latency histograms over the same span, or NULL when not kept */
	const struct stats_summary *canary_latency, *stable_latency;
} eng_counts;

/* The sequential judge (policy->judge == ENG_JUDGE_SEQUENTIAL; otherwise
 * it does nothing): <c> holds the counts since the rollout started, at
 * <now_ms>; call it on every tick (any other phase than Progressing, it
 * does nothing). Runs judge.h's tests of canary against stable, errors
 * always and latency when both histograms are given, with one judge_state
 * per rollout (s->judge, started at the first call of a rollout) and a new
 * judge step whenever the weight differs from the step it was counting:
 * - worse (the error test, the latency tests or a guard): rolls back at
 *   once ("rollback" event, rollback hook), the evidence in the message
 *   ("sequential test: canary error rate 19.8% vs stable 0.5% (...), above
 *   the margin 1.00%, p = 0.0021 < 0.008, rolling back");
 * - no worse than the margin with confidence (NONINFERIOR), and
 *   min_samples canary requests in this step: steps up, or promotes at the
 *   top, as a passing check does ("weight" or "promoting" event with the
 *   evidence); leaning no worse (ADVANCE): steps up, but never promotes;
 * - stable departing from its baseline: holds, with a "check" event when
 *   the hold begins and another when judging resumes (s->judge_held);
 * - otherwise: nothing (out->changed stays false).
 * Before rollout start + policy->warmup_ms each call only moves the
 * judge's origin. The counts may restart from zero (a restarted daemon):
 * the judge then takes the new counts as a new origin. Built-in metrics
 * with fixed thresholds are the judge's guards (tested here, on every
 * call; eng_check passes them); config.c refuses any other metric under
 * this judge. */
void eng_observe(eng_state *s, const eng_policy *p, uint64_t now_ms,
                 const eng_counts *c, eng_output *out);

/* Time passing: Promoting becomes Succeeded (promote=true, weight 0, the
 * canary revision becomes stable) once an interval has passed since the
 * promotion; a rollout whose canary has been unready (<canary_ready> false)
 * for progress_deadline_ms rolls back. Call at least once per interval.
 *
 * maxDuration (policy->max_duration_ms > 0): an analysis that has run
 * Progressing for max_duration_ms without being decided ends by
 * on_max_duration, with why in the message ("analysis undecided after 2h
 * (maxDuration): ..."): pause (phase Paused, a "max-duration" event, the
 * weight kept: the operator decides), rollback (as a failed analysis:
 * "rollback" event, rollback hook) or promote (Promoting, as a passing
 * last step). Both judges. The clock runs from when the analysis last
 * began to run: the rollout's start, or an operator's resume, approval or
 * promotion out of Paused or WaitingApproval (last_transition_ms, as
 * stepping up within Progressing does not change the phase). So time
 * Paused or WaitingApproval does not count, and a rollout resumed after
 * a max-duration pause gets a whole maxDuration again; nothing beyond the
 * persisted state is needed across a restart. */
void eng_tick(eng_state *s, const eng_policy *p, uint64_t now_ms,
              bool canary_ready, eng_output *out);

typedef enum {
	ENG_CMD_ROLLOUT = 0, /* start a rollout of <revision> (replaces any) */
	ENG_CMD_PROMOTE,     /* pass the gate/pause: advance one step now */
	ENG_CMD_PROMOTE_FULL,/* skip remaining steps: Promoting now */
	ENG_CMD_ABORT,       /* rollback now */
	ENG_CMD_PAUSE,
	ENG_CMD_RESUME,
	ENG_CMD_SET_WEIGHT,  /* manual weight; analysis paused while it holds */
	ENG_CMD_APPROVE,     /* pass the gate the rollout waits for */
	ENG_CMD_RETRY,       /* start the failed rollout of canary_rev again */
	ENG_CMD_UNDO,        /* after a promotion, within the undo window:
	                      * the previous stable again, at once */
	ENG_CMD_FAIL,        /* an automatic rollback decided outside the
	                      * analysis (a firing alert: reason names it) */
} eng_cmd_kind;

typedef struct eng_cmd {
	eng_cmd_kind kind;
	const char *revision; /* ROLLOUT */
	int weight;           /* SET_WEIGHT, 0..100 */
	const char *actor;    /* who: API client address or token name */
	const char *reason;   /* why, in the audit (may be NULL) */
} eng_cmd;

/* Applies an operator command. Returns 0; 1 when there is nothing to do
 * (pause when paused, resume when not paused: <err> says so, the state
 * and <out> stay as they were: commands are idempotent); or -1 with a
 * message in <err> (e.g. "no rollout in progress", "weight must be
 * 0..100") and the state untouched. */
int eng_command(eng_state *s, const eng_policy *p, uint64_t now_ms,
                const eng_cmd *cmd, eng_output *out, char *err, size_t errlen);

/* After a promotion (phase Succeeded, just completed: call it with the
 * promote output), with policy->post_promotion_ms > 0 and an undo
 * possible: starts judging the new stable against <old>, the previous
 * stable's counts (stable_*) over the rollout: its error rate and its
 * latency_quantile. Two sequential one-sample tests (judge.h guards,
 * sharing policy->alpha): the new stable's error rate above max(base +
 * margin, base x errorRatio), and its share of requests slower than
 * latencyRatio x the base quantile above 1 - quantile. */
void eng_watch_start(eng_state *s, const eng_policy *p, uint64_t now_ms,
                     const eng_counts *old);

/* One look at the new stable's counts since the promotion (stable_* of
 * <c>; cumulative), while watching: a test that shows it worse undoes
 * the promotion at once ("undo" event, out->undo, rollback hooks), as
 * eng_command's UNDO does; the window's end stops watching ("succeeded"
 * event). No control group runs beside it: an incident of a dependency
 * during the window looks like the new revision's fault (docs). */
void eng_watch(eng_state *s, const eng_policy *p, uint64_t now_ms, const eng_counts *c,
               eng_output *out);

/* The answer of the webhooks of gate <g> (all of them passed: <ok>; else
 * <reason>, one line), polled by the driver each interval while
 * s->waiting is <g>. An answer for another gate than the one waited for
 * is ignored. A pass moves on at once: the rollout starts (confirm-
 * rollout), steps up or promotes, unless another gate holds that move. */
void eng_gate_answer(eng_state *s, const eng_policy *p, uint64_t now_ms, eng_gate g,
                     bool ok, const char *reason, eng_output *out);

/* Is a rollout running (Progressing, Paused, Waiting, WaitingPromotion,
 * Promoting)? */
bool eng_active(const eng_state *s);

#endif
