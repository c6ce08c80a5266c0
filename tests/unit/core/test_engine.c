/* test_engine.c - the rollout engine on a simulated clock: every behaviour of
 * engine.h's contract, one test each. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "stats.h"

#define T0 1700000000000ULL /* a wall clock in ms */
#define INTERVAL 1000ULL

/* The fixture: static because an output is some 30 KB. */
static eng_policy P;
static eng_state S;
static eng_output O;
static uint64_t now;
static char err[256];

/* Policy of SPEC.md's example: stepWeight 10 up to 50, threshold 3, a
 * success-rate floor and a latency ceiling. */
static int setup(void **state)
{
	(void)state;
	eng_policy_defaults(&P);
	P.interval_ms = INTERVAL;
	P.threshold = 3;
	P.max_weight = 50;
	P.step_weight = 10;
	P.progress_deadline_ms = 60 * 1000;
	P.n_metrics = 2;
	snprintf(P.metrics[0].name, sizeof P.metrics[0].name, "request-success-rate");
	P.metrics[0].kind = ENG_M_SUCCESS_RATE;
	P.metrics[0].has_min = true;
	P.metrics[0].min = 99;
	P.metrics[0].window_ms = 60000;
	snprintf(P.metrics[1].name, sizeof P.metrics[1].name, "request-duration");
	P.metrics[1].kind = ENG_M_DURATION;
	P.metrics[1].has_max = true;
	P.metrics[1].max = 500;
	P.metrics[1].window_ms = 30000;
	now = T0;
	eng_state_init(&S, "v1", now);
	memset(&O, 0, sizeof O);
	err[0] = '\0';
	return 0;
}

static int command(eng_cmd_kind kind, const char *rev, int weight, const char *actor)
{
	eng_cmd c = { .kind = kind, .revision = rev, .weight = weight, .actor = actor };
	return eng_command(&S, &P, now, &c, &O, err, sizeof err);
}

static void start(const char *rev)
{
	assert_int_equal(command(ENG_CMD_ROLLOUT, rev, 0, "alice"), 0);
}

/* readings: success rate <sr>, p99 <p99> */
static void readings(eng_reading r[ENG_MAX_METRICS], double sr, double p99)
{
	memset(r, 0, sizeof(eng_reading) * ENG_MAX_METRICS);
	r[0].has_data = true;
	r[0].value = sr;
	r[1].has_data = true;
	r[1].value = p99;
}

/* Waits for the next check (it must be due then, not a ms before) and runs
 * it with the given values. */
static void check_at_due(double sr, double p99)
{
	assert_false(eng_check_due(&S, &P, S.next_check_ms - 1));
	now = S.next_check_ms;
	assert_true(eng_check_due(&S, &P, now));
	eng_reading r[ENG_MAX_METRICS];
	readings(r, sr, p99);
	eng_check(&S, &P, now, r, &O);
}

static void pass(void) { check_at_due(99.9, 120); }
static void fail_sr(void) { check_at_due(80, 120); }

static const eng_event *find_event(const char *type)
{
	for (int i = 0; i < O.n_events; i++)
		if (strcmp(O.events[i].type, type) == 0)
			return &O.events[i];
	return NULL;
}

static bool has_hook(eng_hook h)
{
	for (int i = 0; i < O.n_hooks; i++)
		if (O.hooks[i] == h)
			return true;
	return false;
}

/* ---- starting ---- */

static void test_state_init_is_initialized_at_stable(void **state)
{
	(void)state;
	assert_int_equal(S.phase, ENG_INITIALIZED);
	assert_int_equal(S.weight, 0);
	assert_string_equal(S.stable_rev, "v1");
	assert_string_equal(S.canary_rev, "");
	assert_int_equal(S.last_transition_ms, T0);
	assert_false(eng_active(&S));
}

static void test_policy_defaults_are_flaggers(void **state)
{
	(void)state;
	eng_policy d;
	memset(&d, 0xff, sizeof d);
	eng_policy_defaults(&d);
	assert_int_equal(d.interval_ms, 60000);
	assert_int_equal(d.threshold, 1);
	assert_int_equal(d.max_weight, 100);
	assert_int_equal(d.step_weight, 0);
	assert_int_equal(d.n_step_weights, 0);
	assert_int_equal(d.iterations, 0);
	assert_int_equal(d.progress_deadline_ms, 600000);
	assert_int_equal(d.n_metrics, 0);
}

static void test_rollout_starts_at_first_step(void **state)
{
	(void)state;
	start("v2");
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.weight, 10);
	assert_string_equal(S.canary_rev, "v2");
	assert_string_equal(S.stable_rev, "v1");
	assert_int_equal(S.rollout_started_ms, T0);
	assert_int_equal(S.next_check_ms, T0 + INTERVAL);
	assert_int_equal(S.last_transition_ms, T0);
	assert_true(O.changed);
	assert_int_equal(O.n_events, 2);
	assert_string_equal(O.events[0].type, "rollout-started");
	assert_non_null(strstr(O.events[0].message, "new revision v2 detected"));
	assert_string_equal(O.events[1].type, "weight");
	assert_int_equal(O.events[1].weight, 10);
	assert_int_equal(O.n_hooks, 2);
	assert_int_equal(O.hooks[0], ENG_HOOK_PRE_ROLLOUT);
	assert_int_equal(O.hooks[1], ENG_HOOK_ROLLOUT);
	assert_true(eng_active(&S));
}

static void test_weight_events_carry_before_and_after(void **state)
{
	(void)state;
	start("v2");
	assert_string_equal(O.events[1].message, "advance canary weight 0 -> 10");
	pass();
	const eng_event *w = find_event("weight");
	assert_non_null(w);
	assert_string_equal(w->message, "advance canary weight 10 -> 20");
	assert_int_equal(w->weight, 20);
	assert_int_equal(w->phase, ENG_PROGRESSING);
}

static void test_rollout_of_stable_revision_is_refused(void **state)
{
	(void)state;
	eng_state before = S;
	assert_int_equal(command(ENG_CMD_ROLLOUT, "v1", 0, "alice"), -1);
	assert_string_equal(err, "revision 'v1' is already stable");
	assert_memory_equal(&before, &S, sizeof S);
}

static void test_rollout_of_empty_or_long_revision_is_refused(void **state)
{
	(void)state;
	char longrev[ENG_REV_LEN + 1];
	memset(longrev, 'a', ENG_REV_LEN);
	longrev[ENG_REV_LEN] = '\0';
	assert_int_equal(command(ENG_CMD_ROLLOUT, "", 0, "alice"), -1);
	assert_non_null(strstr(err, "empty"));
	assert_int_equal(command(ENG_CMD_ROLLOUT, NULL, 0, "alice"), -1);
	assert_int_equal(command(ENG_CMD_ROLLOUT, longrev, 0, "alice"), -1);
	assert_non_null(strstr(err, "too long"));
	assert_int_equal(S.phase, ENG_INITIALIZED);
	/* the longest allowed one fits */
	longrev[ENG_REV_LEN - 1] = '\0';
	start(longrev);
	assert_string_equal(S.canary_rev, longrev);
}

static void test_rollout_replaces_running_rollout_and_resets_counts(void **state)
{
	(void)state;
	start("v2");
	pass();
	fail_sr();
	assert_int_equal(S.weight, 20);
	assert_int_equal(S.failed_checks, 1);
	assert_int_equal(S.iterations, 2);
	now += 10;
	start("v3");
	assert_string_equal(S.canary_rev, "v3");
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.weight, 10);
	assert_int_equal(S.failed_checks, 0);
	assert_int_equal(S.iterations, 0);
	assert_int_equal(S.rollout_started_ms, now);
	assert_int_equal(S.last_transition_ms, now);
	assert_int_equal(S.next_check_ms, now + INTERVAL);
	assert_non_null(strstr(O.events[0].message, "replacing the rollout of v2"));
	const eng_event *w = find_event("weight");
	assert_non_null(w);
	assert_non_null(strstr(w->message, "20 -> 10"));
}

/* ---- the analysis ---- */

static void test_passing_checks_climb_to_max_weight_then_promote(void **state)
{
	(void)state;
	start("v2");
	int expect[] = { 20, 30, 40, 50 };
	for (int i = 0; i < 4; i++) {
		pass();
		assert_int_equal(S.phase, ENG_PROGRESSING);
		assert_int_equal(S.weight, expect[i]);
		assert_int_equal(O.n_events, 2);
		assert_string_equal(O.events[0].type, "check");
		assert_string_equal(O.events[1].type, "weight");
	}
	pass();
	assert_int_equal(S.phase, ENG_PROMOTING);
	assert_int_equal(S.weight, 100);
	assert_int_equal(S.last_transition_ms, now);
	assert_int_equal(S.iterations, 5);
	const eng_event *e = find_event("promoting");
	assert_non_null(e);
	assert_int_equal(e->phase, ENG_PROMOTING);
	assert_int_equal(e->weight, 100);
	assert_string_equal(S.stable_rev, "v1");
	assert_false(O.promote);
}

static void test_promoting_becomes_succeeded_after_an_interval(void **state)
{
	(void)state;
	start("v2");
	for (int i = 0; i < 5; i++)
		pass();
	assert_int_equal(S.phase, ENG_PROMOTING);
	uint64_t promoted_at = now;
	now = promoted_at + INTERVAL - 1;
	eng_tick(&S, &P, now, true, &O);
	assert_int_equal(S.phase, ENG_PROMOTING);
	assert_false(O.changed);
	assert_false(O.promote);
	assert_int_equal(O.n_events, 0);
	now = promoted_at + INTERVAL;
	eng_tick(&S, &P, now, true, &O);
	assert_int_equal(S.phase, ENG_SUCCEEDED);
	assert_true(O.promote);
	assert_true(O.changed);
	assert_string_equal(S.stable_rev, "v2");
	assert_int_equal(S.weight, 0);
	assert_int_equal(S.last_transition_ms, now);
	assert_int_equal(O.n_hooks, 1);
	assert_int_equal(O.hooks[0], ENG_HOOK_POST_ROLLOUT);
	assert_non_null(find_event("succeeded"));
	assert_false(eng_active(&S));
	/* a later tick does nothing more */
	now += INTERVAL;
	eng_tick(&S, &P, now, true, &O);
	assert_false(O.changed);
	assert_false(O.promote);
}

static void test_step_weights_are_capped_by_max_weight(void **state)
{
	(void)state;
	P.step_weight = 0;
	int steps[] = { 5, 10, 20, 40, 80 };
	memcpy(P.step_weights, steps, sizeof steps);
	P.n_step_weights = 5;
	P.max_weight = 50;
	start("v2");
	assert_int_equal(S.weight, 5);
	int expect[] = { 10, 20, 40, 50 };
	for (int i = 0; i < 4; i++) {
		pass();
		assert_int_equal(S.weight, expect[i]);
		assert_int_equal(S.phase, ENG_PROGRESSING);
	}
	pass();
	assert_int_equal(S.phase, ENG_PROMOTING);
	assert_int_equal(S.weight, 100);
}

static void test_step_weights_promote_after_last_entry(void **state)
{
	(void)state;
	P.step_weight = 0;
	P.step_weights[0] = 2;
	P.step_weights[1] = 25;
	P.n_step_weights = 2;
	P.max_weight = 100;
	start("v2");
	assert_int_equal(S.weight, 2);
	pass();
	assert_int_equal(S.weight, 25);
	pass();
	assert_int_equal(S.phase, ENG_PROMOTING);
}

static void test_step_weight_is_capped_at_max_weight(void **state)
{
	(void)state;
	P.step_weight = 30;
	P.max_weight = 50;
	start("v2");
	assert_int_equal(S.weight, 30);
	pass();
	assert_int_equal(S.weight, 50);
	pass();
	assert_int_equal(S.phase, ENG_PROMOTING);
}

static void test_failed_check_holds_weight_and_counts(void **state)
{
	(void)state;
	start("v2");
	pass();
	fail_sr();
	assert_int_equal(S.weight, 20);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.failed_checks, 1);
	assert_int_equal(O.n_events, 1);
	assert_string_equal(O.events[0].type, "check");
	assert_null(find_event("weight"));
	assert_int_equal(S.next_check_ms, now + INTERVAL);
}

static void test_failed_checks_add_up_without_reset_by_passing_checks(void **state)
{
	(void)state;
	start("v2");
	fail_sr();
	pass();
	pass();
	fail_sr();
	assert_int_equal(S.failed_checks, 2);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.weight, 30);
	assert_int_equal(S.iterations, 4);
}

static void test_threshold_th_failure_rolls_back_at_once(void **state)
{
	(void)state;
	start("v2");
	pass();
	fail_sr();
	fail_sr();
	assert_int_equal(S.phase, ENG_PROGRESSING);
	fail_sr();
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(S.weight, 0);
	assert_int_equal(S.failed_checks, 3);
	assert_int_equal(S.last_transition_ms, now);
	assert_true(has_hook(ENG_HOOK_ROLLBACK));
	assert_int_equal(O.n_events, 2);
	assert_string_equal(O.events[0].type, "check");
	assert_string_equal(O.events[1].type, "rollback");
	assert_int_equal(O.events[1].phase, ENG_FAILED);
	assert_int_equal(O.events[1].weight, 0);
	assert_string_equal(O.events[1].actor, "canaryd");
	assert_non_null(strstr(O.events[1].message, "canary failed 3 checks, rolling back: "));
	assert_non_null(strstr(O.events[1].message, "request-success-rate 80.00 < 99"));
	assert_false(eng_active(&S));
	assert_false(eng_check_due(&S, &P, now + 10 * INTERVAL));
}

static void test_threshold_one_rolls_back_on_first_failure(void **state)
{
	(void)state;
	P.threshold = 1;
	start("v2");
	fail_sr();
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(S.weight, 0);
}

static void test_check_message_lists_failing_metrics(void **state)
{
	(void)state;
	start("v2");
	fail_sr();
	assert_string_equal(O.events[0].message,
	                    "check failed (1/3): request-success-rate 80.00 < 99");
	check_at_due(80, 612);
	assert_string_equal(O.events[0].message,
	                    "check failed (2/3): request-success-rate 80.00 < 99; "
	                    "request-duration 612.00 > 500");
	pass();
	assert_string_equal(O.events[0].message, "check passed");
}

static void test_check_event_carries_each_metric_result(void **state)
{
	(void)state;
	start("v2");
	check_at_due(99.5, 612);
	const eng_event *c = find_event("check");
	assert_non_null(c);
	assert_int_equal(c->n_metrics, 2);
	assert_string_equal(c->metrics[0].name, "request-success-rate");
	assert_true(c->metrics[0].has_value);
	assert_true(c->metrics[0].value == 99.5);
	assert_true(c->metrics[0].has_min);
	assert_false(c->metrics[0].has_max);
	assert_true(c->metrics[0].min == 99);
	assert_true(c->metrics[0].passed);
	assert_string_equal(c->metrics[1].name, "request-duration");
	assert_true(c->metrics[1].has_max);
	assert_true(c->metrics[1].max == 500);
	assert_false(c->metrics[1].passed);
	assert_string_equal(c->metrics[1].reason, "612.00 > 500");
}

static void test_no_data_fails_the_check_with_the_readers_reason(void **state)
{
	(void)state;
	P.on_no_data = ENG_NODATA_FAIL;
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	readings(r, 99.9, 100);
	r[0].has_data = false;
	snprintf(r[0].reason, sizeof r[0].reason, "no requests to the canary in the last 1m");
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 1);
	assert_int_equal(S.weight, 10);
	const eng_event *c = find_event("check");
	assert_non_null(c);
	assert_false(c->metrics[0].has_value);
	assert_false(c->metrics[0].passed);
	assert_string_equal(c->metrics[0].reason, "no requests to the canary in the last 1m");
	assert_non_null(strstr(c->message, "no requests to the canary in the last 1m"));
}

static void test_min_bound_is_inclusive(void **state)
{
	(void)state;
	start("v2");
	check_at_due(99.0, 100);
	assert_int_equal(S.failed_checks, 0);
	assert_int_equal(S.weight, 20);
	check_at_due(98.99, 100);
	assert_int_equal(S.failed_checks, 1);
	assert_int_equal(S.weight, 20);
}

static void test_max_bound_is_inclusive(void **state)
{
	(void)state;
	start("v2");
	check_at_due(100, 500);
	assert_int_equal(S.failed_checks, 0);
	check_at_due(100, 500.01);
	assert_int_equal(S.failed_checks, 1);
}

static void test_nan_reading_fails(void **state)
{
	(void)state;
	start("v2");
	check_at_due(NAN, 100);
	assert_int_equal(S.failed_checks, 1);
}

static void test_check_runs_the_rollout_hook(void **state)
{
	(void)state;
	start("v2");
	pass();
	assert_true(has_hook(ENG_HOOK_ROLLOUT));
	assert_false(has_hook(ENG_HOOK_ROLLBACK));
	assert_true(O.changed);
}

static void test_check_not_due_before_the_interval(void **state)
{
	(void)state;
	start("v2");
	assert_false(eng_check_due(&S, &P, T0));
	assert_false(eng_check_due(&S, &P, T0 + INTERVAL - 1));
	assert_true(eng_check_due(&S, &P, T0 + INTERVAL));
	pass();
	assert_false(eng_check_due(&S, &P, now + INTERVAL - 1));
	assert_true(eng_check_due(&S, &P, now + INTERVAL));
}

static void test_check_not_due_and_ignored_when_paused(void **state)
{
	(void)state;
	start("v2");
	assert_int_equal(command(ENG_CMD_PAUSE, NULL, 0, "bob"), 0);
	assert_false(eng_check_due(&S, &P, T0 + 100 * INTERVAL));
	eng_state before = S;
	eng_reading r[ENG_MAX_METRICS];
	readings(r, 10, 10000);
	eng_check(&S, &P, T0 + 100 * INTERVAL, r, &O);
	assert_memory_equal(&before, &S, sizeof S);
	assert_false(O.changed);
	assert_int_equal(O.n_events, 0);
	assert_int_equal(O.n_hooks, 0);
}

static void test_many_failing_metrics_stay_bounded(void **state)
{
	(void)state;
	P.n_metrics = ENG_MAX_METRICS;
	for (int i = 0; i < ENG_MAX_METRICS; i++) {
		snprintf(P.metrics[i].name, sizeof P.metrics[i].name,
		         "a-rather-long-metric-name-number-%02d", i);
		P.metrics[i].has_min = true;
		P.metrics[i].min = 99;
	}
	P.threshold = 1;
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	memset(r, 0, sizeof r);
	for (int i = 0; i < ENG_MAX_METRICS; i++) {
		r[i].has_data = true;
		r[i].value = 1;
	}
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(O.events[0].n_metrics, ENG_MAX_METRICS);
	assert_true(strlen(O.events[0].message) < ENG_MSG_LEN);
	assert_true(strlen(O.events[1].message) < ENG_MSG_LEN);
	assert_true(O.n_events <= ENG_MAX_EVENTS);
	assert_true(O.n_hooks <= ENG_MAX_HOOKS);
}

/* ---- iterations mode (A/B, blue/green) ---- */

static void test_iterations_mode_promotes_after_n_passing_checks(void **state)
{
	(void)state;
	P.step_weight = 0;
	P.max_weight = 100;
	P.iterations = 3;
	start("v2");
	assert_int_equal(S.weight, 0);
	assert_null(find_event("weight"));
	pass();
	fail_sr();
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.weight, 0);
	pass();
	assert_int_equal(S.iterations, 3);
	assert_int_equal(S.phase, ENG_PROMOTING);
	assert_int_equal(S.weight, 100);
}

static void test_iterations_mode_with_fixed_split_uses_max_weight(void **state)
{
	(void)state;
	P.step_weight = 0;
	P.max_weight = 50;
	P.iterations = 2;
	start("v2");
	assert_int_equal(S.weight, 50);
	pass();
	assert_int_equal(S.weight, 50);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	pass();
	assert_int_equal(S.phase, ENG_PROMOTING);
}

/* ---- time: progress deadline ---- */

static void test_progress_deadline_rolls_back(void **state)
{
	(void)state;
	start("v2");
	now += 5;
	eng_tick(&S, &P, now, false, &O);
	assert_int_equal(S.unready_since_ms, now);
	assert_true(O.changed);
	assert_int_equal(O.n_events, 1);
	assert_string_equal(O.events[0].type, "not-ready");
	uint64_t since = now;
	/* "not-ready" is said once */
	now = since + 30000;
	eng_tick(&S, &P, now, false, &O);
	assert_int_equal(O.n_events, 0);
	assert_false(O.changed);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	now = since + 60000 - 1;
	eng_tick(&S, &P, now, false, &O);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	now = since + 60000;
	eng_tick(&S, &P, now, false, &O);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(S.weight, 0);
	assert_true(has_hook(ENG_HOOK_ROLLBACK));
	const eng_event *e = find_event("rollback");
	assert_non_null(e);
	assert_string_equal(e->message, "canary not ready for 60s (progressDeadlineSeconds)");
}

static void test_ready_resets_the_progress_deadline_timer(void **state)
{
	(void)state;
	start("v2");
	eng_tick(&S, &P, now + 1000, false, &O);
	assert_int_equal(S.unready_since_ms, now + 1000);
	eng_tick(&S, &P, now + 50000, true, &O);
	assert_int_equal(S.unready_since_ms, 0);
	assert_true(O.changed);
	/* unready again: the clock starts over */
	eng_tick(&S, &P, now + 55000, false, &O);
	assert_int_equal(S.unready_since_ms, now + 55000);
	eng_tick(&S, &P, now + 65000, false, &O);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	eng_tick(&S, &P, now + 115000, false, &O);
	assert_int_equal(S.phase, ENG_FAILED);
}

static void test_progress_deadline_applies_while_paused(void **state)
{
	(void)state;
	start("v2");
	assert_int_equal(command(ENG_CMD_PAUSE, NULL, 0, "bob"), 0);
	eng_tick(&S, &P, now, false, &O);
	eng_tick(&S, &P, now + 60000, false, &O);
	assert_int_equal(S.phase, ENG_FAILED);
}

static void test_idle_tick_changes_nothing(void **state)
{
	(void)state;
	eng_state before = S;
	eng_tick(&S, &P, now + 1000000, false, &O);
	assert_false(O.changed);
	assert_memory_equal(&before, &S, sizeof S);
	start("v2");
	before = S;
	eng_tick(&S, &P, now + 10, true, &O);
	assert_false(O.changed);
	assert_int_equal(O.n_events, 0);
	assert_memory_equal(&before, &S, sizeof S);
}

/* ---- commands ---- */

static void test_pause_and_resume(void **state)
{
	(void)state;
	start("v2");
	pass();
	now += 100;
	assert_int_equal(command(ENG_CMD_PAUSE, NULL, 0, "bob"), 0);
	assert_int_equal(S.phase, ENG_PAUSED);
	assert_int_equal(S.weight, 20);
	assert_false(S.manual_weight);
	assert_int_equal(S.last_transition_ms, now);
	assert_string_equal(O.events[0].type, "paused");
	assert_string_equal(O.events[0].actor, "bob");
	now += 5 * INTERVAL;
	assert_int_equal(command(ENG_CMD_RESUME, NULL, 0, "bob"), 0);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.weight, 20);
	assert_int_equal(S.next_check_ms, now + INTERVAL);
	assert_string_equal(O.events[0].type, "resumed");
	pass();
	assert_int_equal(S.weight, 30);
}

static void test_pause_twice_changes_nothing(void **state)
{
	(void)state;
	start("v2");
	assert_int_equal(command(ENG_CMD_PAUSE, NULL, 0, "bob"), 0);
	eng_state before = S;
	assert_int_equal(command(ENG_CMD_PAUSE, NULL, 0, "bob"), 1);
	assert_string_equal(err, "already paused at weight 10");
	assert_memory_equal(&before, &S, sizeof S);
}

static void test_resume_when_not_paused_changes_nothing(void **state)
{
	(void)state;
	start("v2");
	eng_state before = S;
	assert_int_equal(command(ENG_CMD_RESUME, NULL, 0, "bob"), 1);
	assert_string_equal(err, "not paused: already Progressing at weight 10");
	assert_memory_equal(&before, &S, sizeof S);
	assert_int_equal(command(ENG_CMD_ABORT, NULL, 0, "bob"), 0);
	assert_int_equal(command(ENG_CMD_RESUME, NULL, 0, "bob"), -1);
	assert_string_equal(err, "no rollout in progress (phase Failed)");
}

static void test_set_weight_pauses_with_manual_flag(void **state)
{
	(void)state;
	start("v2");
	now += 10;
	assert_int_equal(command(ENG_CMD_SET_WEIGHT, NULL, 35, "carol"), 0);
	assert_int_equal(S.weight, 35);
	assert_int_equal(S.phase, ENG_PAUSED);
	assert_true(S.manual_weight);
	assert_int_equal(O.n_events, 1);
	assert_string_equal(O.events[0].type, "manual");
	assert_string_equal(O.events[0].actor, "carol");
	assert_int_equal(O.events[0].weight, 35);
	assert_non_null(strstr(O.events[0].message, "10 -> 35"));
	assert_false(eng_check_due(&S, &P, now + 100 * INTERVAL));
	/* resume continues from the manual weight to the next step */
	assert_int_equal(command(ENG_CMD_RESUME, NULL, 0, "carol"), 0);
	assert_false(S.manual_weight);
	pass();
	assert_int_equal(S.weight, 45);
}

static void test_set_weight_out_of_range_is_an_error(void **state)
{
	(void)state;
	start("v2");
	eng_state before = S;
	assert_int_equal(command(ENG_CMD_SET_WEIGHT, NULL, 101, "carol"), -1);
	assert_non_null(strstr(err, "weight must be 0..100"));
	assert_int_equal(command(ENG_CMD_SET_WEIGHT, NULL, -1, "carol"), -1);
	assert_memory_equal(&before, &S, sizeof S);
	assert_int_equal(command(ENG_CMD_SET_WEIGHT, NULL, 0, "carol"), 0);
	assert_int_equal(S.weight, 0);
}

static void test_promote_advances_one_step_without_counting_a_check(void **state)
{
	(void)state;
	start("v2");
	now += 10;
	assert_int_equal(command(ENG_CMD_PROMOTE, NULL, 0, "dave"), 0);
	assert_int_equal(S.weight, 20);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.iterations, 0);
	assert_int_equal(S.next_check_ms, now + INTERVAL);
	const eng_event *w = find_event("weight");
	assert_non_null(w);
	assert_string_equal(w->actor, "dave");
	assert_non_null(strstr(w->message, "10 -> 20"));
	assert_null(find_event("check"));
}

static void test_promote_from_pause_continues_progressing(void **state)
{
	(void)state;
	start("v2");
	assert_int_equal(command(ENG_CMD_SET_WEIGHT, NULL, 15, "carol"), 0);
	assert_int_equal(command(ENG_CMD_PROMOTE, NULL, 0, "dave"), 0);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_false(S.manual_weight);
	assert_int_equal(S.weight, 25);
}

static void test_promote_at_the_top_promotes(void **state)
{
	(void)state;
	start("v2");
	for (int i = 0; i < 4; i++)
		pass();
	assert_int_equal(S.weight, 50);
	assert_int_equal(command(ENG_CMD_PROMOTE, NULL, 0, "dave"), 0);
	assert_int_equal(S.phase, ENG_PROMOTING);
	assert_int_equal(S.weight, 100);
	assert_string_equal(find_event("promoting")->actor, "dave");
	assert_int_equal(command(ENG_CMD_PROMOTE, NULL, 0, "dave"), -1);
	assert_non_null(strstr(err, "already promoting"));
}

static void test_promote_full_skips_the_remaining_steps(void **state)
{
	(void)state;
	start("v2");
	now += 10;
	assert_int_equal(command(ENG_CMD_PROMOTE_FULL, NULL, 0, "erin"), 0);
	assert_int_equal(S.phase, ENG_PROMOTING);
	assert_int_equal(S.weight, 100);
	assert_int_equal(S.last_transition_ms, now);
	const eng_event *e = find_event("promoting");
	assert_non_null(e);
	assert_string_equal(e->actor, "erin");
	eng_tick(&S, &P, now + INTERVAL, true, &O);
	assert_int_equal(S.phase, ENG_SUCCEEDED);
	assert_true(O.promote);
	assert_string_equal(S.stable_rev, "v2");
}

static void test_abort_rolls_back(void **state)
{
	(void)state;
	start("v2");
	pass();
	now += 10;
	assert_int_equal(command(ENG_CMD_ABORT, NULL, 0, "frank"), 0);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(S.weight, 0);
	assert_int_equal(S.last_transition_ms, now);
	assert_int_equal(O.n_hooks, 1);
	assert_int_equal(O.hooks[0], ENG_HOOK_ROLLBACK);
	/* an abort, not an automatic rollback */
	assert_null(find_event("rollback"));
	const eng_event *e = find_event("abort");
	assert_non_null(e);
	assert_string_equal(e->actor, "frank");
	assert_non_null(strstr(e->message, "aborted by frank"));
	assert_true(S.aborted);
	assert_string_equal(S.stable_rev, "v1");
}

static void test_abort_while_promoting_rolls_back(void **state)
{
	(void)state;
	start("v2");
	assert_int_equal(command(ENG_CMD_PROMOTE_FULL, NULL, 0, "erin"), 0);
	assert_int_equal(command(ENG_CMD_ABORT, NULL, 0, "frank"), 0);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(S.weight, 0);
	eng_tick(&S, &P, now + 10 * INTERVAL, true, &O);
	assert_false(O.promote);
	assert_string_equal(S.stable_rev, "v1");
}

static void test_abort_when_idle_is_an_error_and_state_untouched(void **state)
{
	(void)state;
	eng_state before = S;
	memset(&O, 0x5a, sizeof O);
	static eng_output obefore;
	obefore = O;
	assert_int_equal(command(ENG_CMD_ABORT, NULL, 0, "frank"), -1);
	assert_string_equal(err, "no rollout in progress (phase Initialized)");
	assert_memory_equal(&before, &S, sizeof S);
	assert_memory_equal(&obefore, &O, sizeof O);
}

static void test_commands_after_success_need_a_rollout(void **state)
{
	(void)state;
	start("v2");
	assert_int_equal(command(ENG_CMD_PROMOTE_FULL, NULL, 0, "erin"), 0);
	eng_tick(&S, &P, now + INTERVAL, true, &O);
	assert_int_equal(S.phase, ENG_SUCCEEDED);
	eng_cmd_kind kinds[] = { ENG_CMD_PROMOTE, ENG_CMD_PROMOTE_FULL, ENG_CMD_ABORT,
		                 ENG_CMD_PAUSE, ENG_CMD_RESUME, ENG_CMD_SET_WEIGHT,
		                 ENG_CMD_APPROVE };
	for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
		err[0] = '\0';
		assert_int_equal(command(kinds[i], NULL, 10, "x"), -1);
		assert_string_equal(err, "no rollout in progress (phase Succeeded)");
	}
	/* v2 is stable now: rolling it out again is refused, v3 starts */
	assert_int_equal(command(ENG_CMD_ROLLOUT, "v2", 0, "alice"), -1);
	start("v3");
	assert_int_equal(S.weight, 10);
}

static void test_approve_passes_a_pending_gate(void **state)
{
	(void)state;
	start("v2");
	assert_int_equal(command(ENG_CMD_APPROVE, NULL, 0, "gina"), -1);
	assert_string_equal(err, "no gate is waiting for approval (phase Progressing)");
	P.has_approval = true;
	P.approval_above = 10;
	pass(); /* 10 -> 20 needs approval */
	assert_int_equal(S.phase, ENG_WAITING_PROMOTION);
	assert_int_equal(S.waiting, ENG_GATE_APPROVAL);
	assert_int_equal(S.weight, 10);
	now += 10;
	assert_int_equal(command(ENG_CMD_APPROVE, NULL, 0, "gina"), 0);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.weight, 20);
	assert_int_equal(S.next_check_ms, now + INTERVAL);
	assert_string_equal(O.events[0].actor, "gina");
	assert_string_equal(O.events[0].type, "approved");
}

static void test_automatic_events_have_actor_canaryd(void **state)
{
	(void)state;
	start("v2");
	assert_string_equal(O.events[0].actor, "alice");
	assert_string_equal(O.events[1].actor, "alice");
	pass();
	assert_int_equal(O.n_events, 2);
	assert_string_equal(O.events[0].actor, "canaryd");
	assert_string_equal(O.events[1].actor, "canaryd");
}

static void test_state_message_follows_the_last_event(void **state)
{
	(void)state;
	start("v2");
	fail_sr();
	assert_string_equal(S.message, O.events[O.n_events - 1].message);
	assert_int_equal(command(ENG_CMD_ABORT, NULL, 0, "frank"), 0);
	assert_non_null(strstr(S.message, "aborted by frank"));
}

static void test_phase_name_and_parse_round_trip(void **state)
{
	(void)state;
	const char *names[] = { "Initialized", "Progressing", "Paused", "WaitingPromotion",
		                "Promoting", "Succeeded", "Failed", "Waiting", "RollingBack" };
	assert_int_equal(sizeof names / sizeof names[0], ENG_PHASE_COUNT);
	for (int i = 0; i < ENG_PHASE_COUNT; i++) {
		assert_string_equal(eng_phase_name((eng_phase)i), names[i]);
		assert_int_equal(eng_phase_parse(names[i]), i);
	}
	assert_int_equal(eng_phase_parse("WaitingApproval"), ENG_WAITING_PROMOTION);
	assert_int_equal(eng_phase_parse("progressing"), -1);
	assert_int_equal(eng_phase_parse(""), -1);
	assert_int_equal(eng_phase_parse(NULL), -1);
}

static void test_eng_active_phases(void **state)
{
	(void)state;
	bool expect[ENG_PHASE_COUNT] = {
		[ENG_PROGRESSING] = true, [ENG_PAUSED] = true,
		[ENG_WAITING_PROMOTION] = true, [ENG_PROMOTING] = true, [ENG_WAITING] = true,
		[ENG_ROLLING_BACK] = true,
	};
	for (int i = 0; i < ENG_PHASE_COUNT; i++) {
		S.phase = (eng_phase)i;
		assert_int_equal(eng_active(&S), expect[i]);
	}
}


/* ---- relative thresholds, baseline, failureDuration ---- */

/* One metric, metrics[0], of <kind> with range [min, max] (NAN: none). */
static void one_metric(eng_metric_kind kind, const char *name, double min, double max)
{
	P.n_metrics = 1;
	eng_metric *m = &P.metrics[0];
	memset(m, 0, sizeof *m);
	snprintf(m->name, sizeof m->name, "%s", name);
	m->kind = kind;
	m->window_ms = 60000;
	m->has_min = !isnan(min);
	m->min = m->has_min ? min : 0;
	m->has_max = !isnan(max);
	m->max = m->has_max ? max : 0;
}

/* The next check with one reading: canary <v>, stable <sv> (NAN: none),
 * baseline <bv> (NAN: none). */
static void check_one(double v, double sv, double bv)
{
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	memset(r, 0, sizeof r);
	r[0].has_data = true;
	r[0].value = v;
	r[0].has_stable = !isnan(sv);
	r[0].stable_value = isnan(sv) ? 0 : sv;
	r[0].has_baseline = !isnan(bv);
	r[0].baseline_value = isnan(bv) ? 0 : bv;
	eng_check(&S, &P, now, r, &O);
}

static const eng_metric_result *check_result(void)
{
	const eng_event *ev = find_event("check");
	assert_non_null(ev);
	assert_int_equal(ev->n_metrics, 1);
	return &ev->metrics[0];
}

static void test_relative_rate_compares_the_difference_in_points(void **state)
{
	(void)state;
	one_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 1);
	P.metrics[0].relative = true;
	start("v2");
	check_one(3.10, 2.50, NAN); /* +0.60 points: within +1 although 3.10 > 1 */
	assert_true(check_result()->passed);
	assert_true(check_result()->relative);
	assert_true(fabs(check_result()->compared - 0.60) < 1e-9);
	assert_int_equal(S.failed_checks, 0);
	check_one(3.10, 0.50, NAN);
	const eng_metric_result *m = check_result();
	assert_false(m->passed);
	assert_true(m->has_stable);
	assert_true(fabs(m->stable_value - 0.50) < 1e-9);
	assert_string_equal(m->reason, "3.10 vs stable 0.50: +2.60 > +1");
	assert_int_equal(S.failed_checks, 1);
	assert_non_null(strstr(S.message, "error-rate 3.10 vs stable 0.50: +2.60 > +1"));
}

static void test_relative_success_rate_min_is_a_drop_in_points(void **state)
{
	(void)state;
	one_metric(ENG_M_SUCCESS_RATE, "request-success-rate", -1, NAN);
	P.metrics[0].relative = true;
	start("v2");
	check_one(97.5, 98.0, NAN);
	assert_true(check_result()->passed);
	check_one(96.0, 98.0, NAN);
	assert_false(check_result()->passed);
	assert_string_equal(check_result()->reason, "96.00 vs stable 98.00: -2.00 < -1");
}

static void test_relative_duration_compares_the_ratio(void **state)
{
	(void)state;
	one_metric(ENG_M_DURATION, "request-duration", NAN, 1.5);
	P.metrics[0].relative = true;
	start("v2");
	check_one(580, 400, NAN); /* x1.45 */
	assert_true(check_result()->passed);
	check_one(812, 400, NAN); /* x2.03 */
	assert_false(check_result()->passed);
	assert_true(fabs(check_result()->compared - 2.03) < 1e-9);
	assert_string_equal(check_result()->reason, "812.00 vs stable 400.00: x2.03 > x1.5");
}

static void test_relative_custom_ratio_against_zero_stable(void **state)
{
	(void)state;
	one_metric(ENG_M_CUSTOM, "queue-depth", NAN, 2);
	P.metrics[0].relative = true;
	start("v2");
	check_one(0, 0, NAN); /* 0 / 0: no change */
	assert_true(check_result()->passed);
	check_one(5, 0, NAN); /* unbounded growth */
	assert_false(check_result()->passed);
}

static void test_relative_without_stable_data_fails(void **state)
{
	(void)state;
	one_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 1);
	P.metrics[0].relative = true;
	start("v2");
	check_one(0.0, NAN, NAN);
	assert_false(check_result()->passed);
	assert_string_equal(check_result()->reason, "no stable data to compare with");
	assert_int_equal(S.failed_checks, 1);
}

static void test_baseline_forgives_a_breach_stable_also_has(void **state)
{
	(void)state;
	one_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 1);
	P.metrics[0].baseline_window_ms = 3600 * 1000;
	start("v2");
	check_one(3.0, NAN, 4.0); /* breach, but stable's hour is worse */
	assert_true(check_result()->passed);
	assert_true(check_result()->has_baseline);
	assert_non_null(strstr(check_result()->reason, "baseline is 4.00"));
	assert_non_null(strstr(find_event("check")->message, "check passed (error-rate 3.00 > 1"));
	assert_int_equal(S.failed_checks, 0);
	check_one(5.0, NAN, 4.0); /* worse than stable's hour */
	assert_false(check_result()->passed);
	assert_int_equal(S.failed_checks, 1);
}

static void test_baseline_of_a_min_breach_is_the_lower_side(void **state)
{
	(void)state;
	one_metric(ENG_M_SUCCESS_RATE, "request-success-rate", 99, NAN);
	P.metrics[0].baseline_window_ms = 3600 * 1000;
	start("v2");
	check_one(98.0, NAN, 97.0); /* below 99, but above stable's 97 */
	assert_true(check_result()->passed);
	check_one(96.0, NAN, 97.0);
	assert_false(check_result()->passed);
}

static void test_baseline_without_data_counts_the_breach(void **state)
{
	(void)state;
	one_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 1);
	P.metrics[0].baseline_window_ms = 3600 * 1000;
	start("v2");
	check_one(3.0, NAN, NAN);
	assert_false(check_result()->passed);
	assert_int_equal(S.failed_checks, 1);
}

static void test_baseline_ignored_when_not_configured(void **state)
{
	(void)state;
	one_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 1);
	start("v2");
	check_one(3.0, NAN, 4.0); /* a baseline reading without the setting */
	assert_false(check_result()->passed);
}

static void test_failure_duration_holds_a_breach_until_it_lasts(void **state)
{
	(void)state;
	one_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 1);
	P.metrics[0].failure_duration_ms = 30000;
	P.threshold = 1;
	start("v2");
	int w = S.weight;
	check_one(3.0, NAN, NAN); /* breach starts */
	assert_true(check_result()->passed);
	assert_true(check_result()->pending);
	assert_int_equal(S.breach_since_ms[0], now);
	assert_string_equal(check_result()->reason, "breach for 0s of 30s: 3.00 > 1");
	/* a pending breach holds the weight: it neither fails nor steps up */
	assert_int_equal(S.weight, w);
	uint64_t began = now;
	for (int i = 0; i < 3; i++)
		check_one(3.0, NAN, NAN);
	assert_string_equal(check_result()->reason, "breach for 3s of 30s: 3.00 > 1");
	assert_int_equal(S.breach_since_ms[0], began);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	while (now + INTERVAL < began + 30000)
		check_one(3.0, NAN, NAN);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	check_one(3.0, NAN, NAN); /* 30 s */
	assert_int_equal(now - began, 30000);
	assert_false(check_result()->passed);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_non_null(strstr(S.message, "3.00 > 1 for 30s"));
}

static void test_failure_duration_clock_resets_on_a_passing_check(void **state)
{
	(void)state;
	one_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 1);
	P.metrics[0].failure_duration_ms = 5000;
	P.step_weight = 1; /* room for many passing checks */
	start("v2");
	for (int i = 0; i < 4; i++)
		check_one(3.0, NAN, NAN);
	assert_true(S.breach_since_ms[0] != 0);
	check_one(0.5, NAN, NAN);
	assert_int_equal(S.breach_since_ms[0], 0);
	for (int i = 0; i < 5; i++) {
		check_one(3.0, NAN, NAN);
		assert_true(check_result()->passed);
	}
	check_one(3.0, NAN, NAN);
	assert_false(check_result()->passed);
	assert_int_equal(S.failed_checks, 1);
}

static void test_failure_duration_does_not_delay_no_data(void **state)
{
	(void)state;
	one_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 1);
	P.metrics[0].failure_duration_ms = 30000;
	P.on_no_data = ENG_NODATA_FAIL;
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	memset(r, 0, sizeof r);
	eng_check(&S, &P, now, r, &O);
	assert_false(check_result()->passed);
	assert_int_equal(S.failed_checks, 1);
}

static void test_breach_clocks_reset_by_a_new_rollout(void **state)
{
	(void)state;
	one_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 1);
	P.metrics[0].failure_duration_ms = 30000;
	start("v2");
	check_one(3.0, NAN, NAN);
	assert_true(S.breach_since_ms[0] != 0);
	start("v3");
	assert_int_equal(S.breach_since_ms[0], 0);
}


/* ---- no data, too few requests, warm-up, maxDuration ---- */

static void test_no_data_holds_the_check_under_on_no_data_hold(void **state)
{
	(void)state;
	assert_int_equal(P.on_no_data, ENG_NODATA_HOLD);
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	readings(r, 99.9, 100);
	r[0].has_data = false;
	snprintf(r[0].reason, sizeof r[0].reason, "no canary requests in the last 60s");
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 0);
	assert_int_equal(S.weight, 10);
	assert_int_equal(S.iterations, 0);
	assert_int_equal(S.next_check_ms, now + INTERVAL);
	const eng_event *c = find_event("check");
	assert_non_null(c);
	assert_string_equal(c->message, "check held at weight 10: request-success-rate has no "
	                    "data: no canary requests in the last 60s");
	assert_true(c->held);
	assert_true(c->metrics[0].held);
	assert_false(c->metrics[0].passed);
	assert_false(c->metrics[1].held);
	assert_true(c->metrics[1].passed);
	assert_null(find_event("weight"));
	/* once the data is there the check counts again */
	check_at_due(99.9, 100);
	assert_int_equal(S.weight, 20);
	assert_int_equal(S.iterations, 1);
}

static void test_no_data_holds_forever_without_rolling_back(void **state)
{
	(void)state;
	start("v2");
	eng_reading r[ENG_MAX_METRICS];
	memset(r, 0, sizeof r);
	for (int i = 0; i < 50; i++) {
		now = S.next_check_ms;
		eng_check(&S, &P, now, r, &O);
	}
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.failed_checks, 0);
	assert_int_equal(S.weight, 10);
}

static void test_too_few_samples_hold_the_check(void **state)
{
	(void)state;
	P.min_samples = 100;
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	readings(r, 91.0, 100); /* 1 failure in 12 requests: not evidence */
	r[0].has_samples = true;
	r[0].samples = 12;
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 0);
	assert_int_equal(S.weight, 10);
	const eng_event *c = find_event("check");
	assert_non_null(c);
	assert_true(c->metrics[0].held);
	assert_true(c->metrics[0].has_value);
	assert_true(fabs(c->metrics[0].value - 91.0) < 1e-9);
	assert_string_equal(c->metrics[0].reason, "not enough data (12 of 100 requests)");
	assert_string_equal(c->message, "check held at weight 10: request-success-rate has not "
	                    "enough data (12 of 100 requests)");
}

static void test_too_few_samples_still_show_the_comparison(void **state)
{
	(void)state;
	one_metric(ENG_M_ERROR_RATE, "error-rate", NAN, 1);
	P.metrics[0].relative = true;
	P.min_samples = 100;
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	memset(r, 0, sizeof r);
	r[0].has_data = true;
	r[0].value = 10;
	r[0].has_stable = true;
	r[0].stable_value = 9.5;
	r[0].has_samples = true;
	r[0].samples = 20;
	eng_check(&S, &P, now, r, &O);
	const eng_metric_result *m = check_result();
	assert_true(m->held);
	assert_true(m->has_stable);
	assert_true(m->stable_value == 9.5);
	assert_true(fabs(m->compared - 0.5) < 1e-9);
	/* without stable's value either, it is still too little to judge */
	r[0].has_stable = false;
	now = S.next_check_ms;
	eng_check(&S, &P, now, r, &O);
	assert_true(check_result()->held);
	assert_int_equal(S.failed_checks, 0);
}

static void test_min_samples_reached_counts_either_way(void **state)
{
	(void)state;
	P.min_samples = 100;
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	readings(r, 99.5, 100);
	r[0].has_samples = true;
	r[0].samples = 100;
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.weight, 20);
	now = S.next_check_ms;
	readings(r, 90, 100);
	r[0].has_samples = true;
	r[0].samples = 100;
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 1);
}

static void test_too_few_samples_fail_under_on_no_data_fail(void **state)
{
	(void)state;
	P.min_samples = 100;
	P.on_no_data = ENG_NODATA_FAIL;
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	readings(r, 100, 100);
	r[0].has_samples = true;
	r[0].samples = 12;
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 1);
	const eng_event *c = find_event("check");
	assert_false(c->metrics[0].held);
	assert_false(c->metrics[0].passed);
	assert_string_equal(c->metrics[0].reason, "not enough data (12 of 100 requests)");
}

static void test_min_samples_of_one_counts_any_request(void **state)
{
	(void)state;
	P.min_samples = 1; /* a Flagger document's: any request counts */
	P.on_no_data = ENG_NODATA_FAIL;
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	readings(r, 0, 100);
	r[0].has_samples = true;
	r[0].samples = 1;
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 1);
	assert_string_equal(find_event("check")->metrics[0].reason, "0.00 < 99");
}

static void test_a_failing_metric_fails_a_check_with_a_held_one(void **state)
{
	(void)state;
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	readings(r, 99.9, 900);
	r[0].has_data = false;
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 1);
	assert_int_equal(S.iterations, 1);
	assert_false(find_event("check")->held);
	assert_non_null(strstr(find_event("check")->message, "check failed (1/3): request-duration"));
}

static void test_a_failed_reading_fails_whatever_on_no_data(void **state)
{
	(void)state;
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	readings(r, 99.9, 100);
	r[1].has_data = false;
	r[1].fails = true; /* a webhook gate that said no */
	snprintf(r[1].reason, sizeof r[1].reason, "webhook answered 500");
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 1);
	assert_false(find_event("check")->metrics[1].held);
}

static void test_custom_metric_without_data_holds(void **state)
{
	(void)state;
	one_metric(ENG_M_CUSTOM, "apdex", 0.9, NAN);
	start("v2");
	now = S.next_check_ms;
	eng_reading r[ENG_MAX_METRICS];
	memset(r, 0, sizeof r);
	snprintf(r[0].reason, sizeof r[0].reason, "query returned no sample");
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 0);
	assert_true(check_result()->held);
	assert_string_equal(find_event("check")->message, "check held at weight 10: apdex has "
	                    "no data: query returned no sample");
	P.on_no_data = ENG_NODATA_FAIL;
	now = S.next_check_ms;
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 1);
}

static void test_held_checks_are_not_iterations(void **state)
{
	(void)state;
	P.step_weight = 0;
	P.max_weight = 100;
	P.iterations = 2;
	start("v2");
	eng_reading r[ENG_MAX_METRICS];
	memset(r, 0, sizeof r);
	for (int i = 0; i < 3; i++) {
		now = S.next_check_ms;
		eng_check(&S, &P, now, r, &O);
	}
	assert_int_equal(S.iterations, 0);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	check_at_due(99.9, 100);
	check_at_due(99.9, 100);
	assert_int_equal(S.phase, ENG_PROMOTING);
}

static void test_warmup_holds_the_checks_it_covers(void **state)
{
	(void)state;
	P.warmup_ms = 30000;
	start("v2");
	assert_true(eng_warming_up(&S, &P, now));
	eng_reading r[ENG_MAX_METRICS];
	readings(r, 50, 5000); /* a cold canary: would fail every check */
	int checks = 0;
	while (S.next_check_ms < T0 + 30000) {
		now = S.next_check_ms;
		assert_true(eng_check_due(&S, &P, now));
		eng_check(&S, &P, now, checks % 2 ? r : NULL, &O);
		checks++;
		assert_int_equal(O.n_events, 1);
		assert_int_equal(O.events[0].n_metrics, 0);
		assert_true(O.events[0].held);
	}
	assert_int_equal(checks, 29);
	assert_string_equal(O.events[0].message, "check held at weight 10: warming up, 29s of 30s");
	assert_int_equal(S.failed_checks, 0);
	assert_int_equal(S.iterations, 0);
	assert_int_equal(S.weight, 10);
	/* the first check after the warm-up is made */
	now = S.next_check_ms;
	assert_false(eng_warming_up(&S, &P, now));
	eng_check(&S, &P, now, r, &O);
	assert_int_equal(S.failed_checks, 1);
}

static void test_warmup_starts_again_with_a_new_rollout(void **state)
{
	(void)state;
	P.warmup_ms = 5000;
	start("v2");
	now += 6000;
	assert_false(eng_warming_up(&S, &P, now));
	start("v3");
	assert_true(eng_warming_up(&S, &P, now + 4999));
	assert_false(eng_warming_up(&S, &P, now + 5000));
	P.warmup_ms = 0;
	assert_false(eng_warming_up(&S, &P, now));
}

/* Ticks every 100 ms from now to <until> (a ready canary), stopping at the
 * first tick that changes anything. */
static void tick_until(uint64_t until)
{
	while (now < until) {
		now += 100;
		eng_tick(&S, &P, now, true, &O);
		if (O.changed)
			return;
	}
}

static void test_max_duration_pauses_and_notifies(void **state)
{
	(void)state;
	P.max_duration_ms = 2 * 3600 * 1000;
	start("v2");
	pass();
	tick_until(T0 + 2 * 3600 * 1000 - 100);
	assert_false(O.changed);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	now = T0 + 2 * 3600 * 1000;
	eng_tick(&S, &P, now, true, &O);
	assert_int_equal(S.phase, ENG_PAUSED);
	assert_int_equal(S.weight, 20);
	const eng_event *e = find_event("max-duration");
	assert_non_null(e);
	assert_string_equal(e->actor, "canaryd");
	assert_int_equal(e->phase, ENG_PAUSED);
	assert_string_equal(e->message, "analysis undecided after 2h (maxDuration): paused at "
	                    "weight 20, resume, promote or abort");
	assert_false(eng_check_due(&S, &P, now + 10 * INTERVAL));
	/* a resume starts a whole maxDuration again */
	now += 3600 * 1000;
	assert_int_equal(command(ENG_CMD_RESUME, NULL, 0, "bob"), 0);
	uint64_t resumed = now;
	tick_until(resumed + 2 * 3600 * 1000 - 100);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	tick_until(resumed + 2 * 3600 * 1000);
	assert_int_equal(S.phase, ENG_PAUSED);
}

static void test_max_duration_rolls_back(void **state)
{
	(void)state;
	P.max_duration_ms = 2000;
	P.on_max_duration = ENG_MAXDUR_ROLLBACK;
	start("v2");
	tick_until(T0 + 5000);
	assert_int_equal(now, T0 + 2000);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(S.weight, 0);
	assert_true(has_hook(ENG_HOOK_ROLLBACK));
	assert_string_equal(find_event("rollback")->message,
	                    "analysis undecided after 2s (maxDuration): rolling back to v1");
}

static void test_max_duration_promotes(void **state)
{
	(void)state;
	P.max_duration_ms = 2000;
	P.on_max_duration = ENG_MAXDUR_PROMOTE;
	start("v2");
	tick_until(T0 + 5000);
	assert_int_equal(S.phase, ENG_PROMOTING);
	assert_int_equal(S.weight, 100);
	assert_string_equal(find_event("promoting")->message,
	                    "analysis undecided after 2s (maxDuration), promoting v2: 100% to canary");
	tick_until(now + 5000);
	assert_int_equal(S.phase, ENG_SUCCEEDED);
	assert_true(O.promote);
}

static void test_max_duration_does_not_count_a_pause(void **state)
{
	(void)state;
	P.max_duration_ms = 10000;
	P.on_max_duration = ENG_MAXDUR_ROLLBACK;
	start("v2");
	now += 5000;
	assert_int_equal(command(ENG_CMD_PAUSE, NULL, 0, "bob"), 0);
	tick_until(T0 + 60000);
	assert_int_equal(S.phase, ENG_PAUSED); /* paused: the clock does not end it */
	assert_int_equal(command(ENG_CMD_RESUME, NULL, 0, "bob"), 0);
	uint64_t resumed = now;
	tick_until(resumed + 9900);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	tick_until(resumed + 10000);
	assert_int_equal(S.phase, ENG_FAILED);
}

static void test_max_duration_ends_the_sequential_judge_too(void **state)
{
	(void)state;
	P.judge = ENG_JUDGE_SEQUENTIAL;
	P.max_duration_ms = 1000;
	start("v2");
	tick_until(T0 + 1000);
	assert_int_equal(S.phase, ENG_PAUSED);
	assert_int_equal(command(ENG_CMD_RESUME, NULL, 0, "bob"), 0);
	tick_until(now + 1000);
	assert_int_equal(S.phase, ENG_PAUSED);
}

static void test_max_duration_zero_never_ends(void **state)
{
	(void)state;
	start("v2");
	tick_until(T0 + 48ULL * 3600 * 1000);
	assert_false(O.changed);
	assert_int_equal(S.phase, ENG_PROGRESSING);
}


/* ---- the sequential judge (eng_observe), 100 ms ticks ---- */

/* Cumulative traffic fed to eng_observe. */
static eng_counts C;
static stats_summary CL, SL; /* latency histograms */

/* The sequential policy: stepWeights 10, 20, 50, no fixed metrics. */
static void sequential(void)
{
	P.judge = ENG_JUDGE_SEQUENTIAL;
	P.alpha = 0.01;
	P.min_samples = 100;
	P.n_metrics = 0;
	P.step_weight = 0;
	P.n_step_weights = 3;
	P.step_weights[0] = 10;
	P.step_weights[1] = 20;
	P.step_weights[2] = 50;
	P.max_weight = 50;
	memset(&C, 0, sizeof C);
}

/* One tick: <rps> requests a second split by the weight, the canary's
 * <cper> and stable's <sper> errors per 1000 requests (spread evenly, so
 * the run is deterministic). */
static void observe_tick(double rps, int cper, int sper)
{
	uint64_t n = (uint64_t)(rps / 10);
	uint64_t nc = n * (uint64_t)S.weight / 100, ns = n - nc;
	uint64_t c0 = C.canary_requests, s0 = C.stable_requests;
	C.canary_requests += nc;
	C.stable_requests += ns;
	C.canary_errors += C.canary_requests * (uint64_t)cper / 1000 - c0 * (uint64_t)cper / 1000;
	C.stable_errors += C.stable_requests * (uint64_t)sper / 1000 - s0 * (uint64_t)sper / 1000;
	now += 100;
	eng_observe(&S, &P, now, &C, &O);
}

/* Ticks until the phase leaves Progressing or <max_ticks> pass; returns
 * the ticks run. */
static int observe_until_decided(double rps, int cper, int sper, int max_ticks)
{
	int i = 0;
	while (i < max_ticks && S.phase == ENG_PROGRESSING) {
		observe_tick(rps, cper, sper);
		i++;
	}
	return i;
}

static void test_observe_does_nothing_under_the_threshold_judge(void **state)
{
	(void)state;
	start("v2");
	C = (eng_counts){ .canary_requests = 1000, .canary_errors = 900, .stable_requests = 1000 };
	now += 100;
	eng_observe(&S, &P, now, &C, &O);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(O.n_events, 0);
	assert_false(S.judge_started);
}

static void test_sequential_rolls_back_a_failing_canary_at_once(void **state)
{
	(void)state;
	sequential();
	start("v2");
	assert_int_equal(S.weight, 10);
	/* 20% errors on 10% of 200 req/s: 2 canary requests a tick */
	int ticks = observe_until_decided(200, 200, 5, 100);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(S.weight, 0);
	assert_true(ticks <= 150); /* windows of 50 canary requests: 2.5 s here */
	const eng_event *ev = find_event("rollback");
	assert_non_null(ev);
	assert_non_null(strstr(ev->message, "sequential test: canary error rate "));
	assert_non_null(strstr(ev->message, "vs stable 0."));
	assert_non_null(strstr(ev->message, "p "));
	assert_true(has_hook(ENG_HOOK_ROLLBACK));
	assert_true(O.changed);
}

static void test_sequential_steps_up_a_healthy_canary_after_min_samples(void **state)
{
	(void)state;
	sequential();
	P.min_samples = 50;
	start("v2");
	/* no errors anywhere: 10 canary requests a tick at 10% of 1000 req/s */
	int ticks = 0;
	while (S.weight == 10 && ticks < 6000) {
		observe_tick(1000, 0, 0);
		ticks++;
	}
	assert_int_equal(S.weight, 20);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_true(ticks >= 5); /* min_samples: 50 canary requests */
	const eng_event *ev = find_event("weight");
	assert_non_null(ev);
	assert_non_null(strstr(ev->message, "advance canary weight 10 -> 20 (sequential test:"));
	assert_true(O.changed);
	/* the next step counts its own min_samples: 20 a tick, 50 needs 3 */
	observe_tick(1000, 0, 0);
	observe_tick(1000, 0, 0);
	assert_int_equal(S.weight, 20);
	int more = 0;
	while (S.weight == 20 && more < 6000) {
		observe_tick(1000, 0, 0);
		more++;
	}
	assert_int_equal(S.weight, 50);
	while (S.phase == ENG_PROGRESSING && more < 12000) {
		observe_tick(1000, 0, 0);
		more++;
	}
	assert_int_equal(S.phase, ENG_PROMOTING);
	assert_int_equal(S.weight, 100);
	assert_non_null(find_event("promoting"));
}

static void test_sequential_holds_without_evidence(void **state)
{
	(void)state;
	sequential();
	P.min_samples = 1000000; /* never enough for a step */
	start("v2");
	for (int i = 0; i < 50; i++) {
		observe_tick(200, 5, 5);
		assert_int_equal(O.n_events, 0);
		assert_false(O.changed);
	}
	assert_int_equal(S.weight, 10);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_true(S.judge_started);
}

static void test_sequential_ignores_paused_rollouts(void **state)
{
	(void)state;
	sequential();
	start("v2");
	assert_int_equal(command(ENG_CMD_PAUSE, NULL, 0, "alice"), 0);
	for (int i = 0; i < 50; i++)
		observe_tick(200, 500, 0);
	assert_int_equal(S.phase, ENG_PAUSED);
	assert_int_equal(O.n_events, 0);
}

/* Under the sequential judge a built-in metric with a fixed threshold is
 * a sequential guard: eng_check passes it (it never counts a failed
 * check), and eng_observe rolls back once the canary's share of requests
 * slower than the bound is shown above 1 % (p99 <= 500 ms). */
static void test_sequential_checks_are_guards_tested_on_every_tick(void **state)
{
	(void)state;
	sequential();
	P.judge_latency_ratio = 0; /* only the guard judges latency */
	P.n_metrics = 1;
	P.metrics[0].kind = ENG_M_DURATION;
	snprintf(P.metrics[0].name, sizeof P.metrics[0].name, "request-duration");
	P.metrics[0].has_max = true;
	P.metrics[0].max = 500;
	P.metrics[0].has_min = false;
	start("v2");
	check_one(900, NAN, NAN);
	assert_true(check_result()->passed);
	assert_int_equal(S.failed_checks, 0);
	/* every canary request takes 900 ms, stable's 100 ms */
	static stats_summary ch, sh;
	memset(&ch, 0, sizeof ch);
	memset(&sh, 0, sizeof sh);
	C.canary_latency = &ch;
	C.stable_latency = &sh;
	int ticks = 0;
	while (ticks < 600 && S.phase == ENG_PROGRESSING) {
		observe_tick(200, 0, 0);
		ch.hist[stats_bucket_of(900000)] = C.canary_requests;
		sh.hist[stats_bucket_of(100000)] = C.stable_requests;
		ticks++;
	}
	C.canary_latency = C.stable_latency = NULL;
	assert_int_equal(S.phase, ENG_FAILED);
	const eng_event *ev = find_event("rollback");
	assert_non_null(ev);
	assert_non_null(strstr(ev->message, "sequential guard request-duration"));
}

/* A shared incident: both versions fail half their requests for 10 s.
 * The judge holds (an event says why), neither advances nor rolls back,
 * and resumes when stable is back (another event). */
static void test_sequential_holds_while_stable_departs(void **state)
{
	(void)state;
	sequential();
	start("v2");
	/* the baseline is learnt from the first windows (5 of 2.5 s here) */
	for (int i = 0; i < 300; i++)
		observe_tick(200, 0, 0);
	int w = S.weight;
	bool held = false, resumed = false;
	for (int i = 0; i < 100; i++) {
		observe_tick(200, 500, 500);
		const eng_event *ev = find_event("check");
		if (ev && strstr(ev->message, "holding weight") &&
		    strstr(ev->message, "departs from its baseline"))
			held = true;
		assert_int_equal(S.phase, ENG_PROGRESSING);
	}
	assert_true(held);
	assert_true(S.judge_held);
	assert_int_equal(S.weight, w);
	for (int i = 0; i < 200 && !resumed; i++) {
		observe_tick(200, 0, 0);
		const eng_event *ev = find_event("check");
		resumed = ev && strstr(ev->message, "judging resumes");
	}
	assert_true(resumed);
	assert_int_equal(S.phase, ENG_PROGRESSING);
}

/* The canary's warm-up (analysis.warmup) is not judged: failing half its
 * requests for its first 30 s does not roll it back. */
static void test_sequential_warmup_is_not_judged(void **state)
{
	(void)state;
	sequential();
	P.warmup_ms = 30000;
	start("v2");
	for (int i = 0; i < 300; i++)
		observe_tick(200, 500, 0);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	for (int i = 0; i < 600 && S.phase == ENG_PROGRESSING; i++)
		observe_tick(200, 0, 0);
	assert_int_not_equal(S.phase, ENG_FAILED);
	/* without it, the same canary goes */
	sequential();
	P.warmup_ms = 0;
	start("v2");
	observe_until_decided(200, 500, 0, 300);
	assert_int_equal(S.phase, ENG_FAILED);
}

/* onMaxDuration: promote does not promote a canary whose evidence leans
 * worse: a failed check (threshold judge) or a rollback e-value above 1
 * (sequential judge) pauses it for the operator instead. */
static void test_max_duration_promote_pauses_a_canary_leaning_worse(void **state)
{
	(void)state;
	P.max_duration_ms = 2000;
	P.on_max_duration = ENG_MAXDUR_PROMOTE;
	P.threshold = 5;
	start("v2");
	check_one(90, NAN, NAN); /* success rate 90 % < 99: one failed check */
	assert_int_equal(S.failed_checks, 1);
	tick_until(T0 + 5000);
	assert_int_equal(S.phase, ENG_PAUSED);
	const eng_event *ev = find_event("max-duration");
	assert_non_null(ev);
	assert_non_null(strstr(ev->message, "1 check failed in this rollout"));
	assert_non_null(strstr(ev->message, "instead of promoting"));
	/* the sequential judge: a canary failing 3 % against 0.5 %, too
	 * little traffic to decide */
	sequential();
	P.max_duration_ms = 30000;
	P.on_max_duration = ENG_MAXDUR_PROMOTE;
	start("v2");
	for (int i = 0; i < 290; i++)
		observe_tick(100, 30, 5);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_true(S.judge.mix_err.log_e > 0);
	tick_until(now + 2000);
	assert_int_equal(S.phase, ENG_PAUSED);
	ev = find_event("max-duration");
	assert_non_null(ev);
	assert_non_null(strstr(ev->message, "leans towards a worse canary"));
}

static void test_sequential_restarts_with_a_new_rollout(void **state)
{
	(void)state;
	sequential();
	P.min_samples = 1000000;
	start("v2");
	for (int i = 0; i < 10; i++)
		observe_tick(200, 0, 0);
	assert_true(S.judge_started);
	assert_true(S.judge.n[TARGET_CANARY] > 0);
	start("v3");
	assert_false(S.judge_started);
	memset(&C, 0, sizeof C);
	observe_tick(200, 0, 0);
	assert_true(S.judge_started);
	assert_int_equal(S.judge.n[TARGET_CANARY], 2);
}

static void test_sequential_survives_counts_that_restart(void **state)
{
	(void)state;
	sequential();
	start("v2");
	for (int i = 0; i < 5; i++)
		observe_tick(200, 0, 5);
	/* a restarted daemon counts from zero again, and the canary fails */
	memset(&C, 0, sizeof C);
	int ticks = observe_until_decided(200, 300, 5, 200);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_true(ticks < 200);
}

static void test_sequential_rolls_back_a_slow_canary(void **state)
{
	(void)state;
	sequential();
	P.judge_latency_ratio = 1.25;
	start("v2");
	memset(&CL, 0, sizeof CL);
	memset(&SL, 0, sizeof SL);
	C.canary_latency = &CL;
	C.stable_latency = &SL;
	int fast = stats_bucket_of(50000), slow = stats_bucket_of(400000);
	int i = 0;
	for (; i < 100 && S.phase == ENG_PROGRESSING; i++) {
		/* 20 canary requests at 400 ms, 180 stable at 50 ms a tick (some
		 * spread so that the ranks are not all ties) */
		for (int k = 0; k < 20; k++)
			CL.hist[slow + k % 3]++;
		for (int k = 0; k < 180; k++)
			SL.hist[fast + k % 3]++;
		CL.total += 20;
		SL.total += 180;
		C.canary_requests += 20;
		C.stable_requests += 180;
		now += 100;
		eng_observe(&S, &P, now, &C, &O);
	}
	assert_int_equal(S.phase, ENG_FAILED);
	const eng_event *ev = find_event("rollback");
	assert_non_null(ev);
	assert_non_null(strstr(ev->message, "sequential test: canary latency p99"));
}

#define T(f) cmocka_unit_test_setup(f, setup)


/* ---- steps, gates, onFailure, retry, undo (issue 11) ---- */

static void set_steps(const char *spec)
{
	/* "2 5 p0 10 p5000 20": weights, and pauses of N ms (0: until resumed) */
	P.n_steps = 0;
	P.step_weight = 0;
	for (const char *c = spec; *c && P.n_steps < ENG_MAX_STEPS;) {
		while (*c == ' ')
			c++;
		if (!*c)
			break;
		eng_step *st = &P.steps[P.n_steps++];
		if (*c == 'p') {
			st->weight = -1;
			st->pause_ms = strtoull(c + 1, (char **)&c, 10);
		} else {
			st->weight = (int)strtol(c, (char **)&c, 10);
			st->pause_ms = 0;
		}
	}
}

static void tick(void)
{
	eng_tick(&S, &P, now, true, &O);
}

static void test_steps_set_weights_and_pause_until_resumed(void **state)
{
	(void)state;
	set_steps("2 5 p0 10");
	start("v2");
	assert_int_equal(S.weight, 2);
	assert_int_equal(S.step, 0);
	assert_non_null(strstr(find_event("weight")->message, "step 1/4: canary weight 0 -> 2"));
	pass();
	assert_int_equal(S.weight, 5);
	pass(); /* the pause step */
	assert_int_equal(S.phase, ENG_PAUSED);
	assert_true(S.step_paused);
	assert_int_equal(S.weight, 5);
	assert_non_null(strstr(S.message, "until resumed"));
	now += 3600 * 1000; /* an indefinite pause waits, ticks or not */
	tick();
	assert_int_equal(S.phase, ENG_PAUSED);
	assert_int_equal(command(ENG_CMD_RESUME, NULL, 0, "ops"), 0);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.weight, 10);
	assert_int_equal(S.step, 3);
	pass(); /* past the last step: promotion */
	assert_int_equal(S.phase, ENG_PROMOTING);
}

static void test_timed_pause_ends_by_itself_and_approve_ends_one(void **state)
{
	(void)state;
	set_steps("10 p5000 20 p0 30");
	start("v2");
	pass();
	assert_int_equal(S.phase, ENG_PAUSED);
	assert_int_equal(S.pause_until_ms, now + 5000);
	now += 4999;
	tick();
	assert_int_equal(S.phase, ENG_PAUSED);
	now += 1;
	tick();
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.weight, 20);
	assert_non_null(find_event("resumed"));
	pass();
	assert_int_equal(S.phase, ENG_PAUSED);
	assert_int_equal(command(ENG_CMD_APPROVE, NULL, 0, "lead"), 0);
	assert_int_equal(S.weight, 30);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	/* pause during a timed pause makes it the operator's */
	set_steps("10 p5000 20");
	start("v3");
	pass();
	assert_int_equal(command(ENG_CMD_PAUSE, NULL, 0, "ops"), 0);
	assert_int_equal(S.pause_until_ms, 0);
	now += 10000;
	tick();
	assert_int_equal(S.phase, ENG_PAUSED);
}

static void test_confirm_rollout_waits_with_no_traffic(void **state)
{
	(void)state;
	P.gate_rollout = true;
	start("v2");
	assert_int_equal(S.phase, ENG_WAITING);
	assert_int_equal(S.weight, 0);
	assert_int_equal(S.waiting, ENG_GATE_ROLLOUT);
	assert_int_equal(O.n_hooks, 0); /* pre-rollout waits too */
	assert_false(eng_check_due(&S, &P, now + 10 * INTERVAL));
	eng_gate_answer(&S, &P, now, ENG_GATE_ROLLOUT, false,
	                "cannot connect to '127.0.0.1:1': connection refused", &O);
	assert_int_equal(S.phase, ENG_WAITING);
	assert_non_null(strstr(S.message, "connection refused"));
	assert_true(O.changed);
	eng_gate_answer(&S, &P, now, ENG_GATE_ROLLOUT, false,
	                "cannot connect to '127.0.0.1:1': connection refused", &O);
	assert_false(O.changed); /* the same answer again: nothing new */
	eng_gate_answer(&S, &P, now, ENG_GATE_PROMOTION, true, NULL, &O); /* not waited for */
	assert_int_equal(S.phase, ENG_WAITING);
	now += 5;
	eng_gate_answer(&S, &P, now, ENG_GATE_ROLLOUT, true, NULL, &O);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_int_equal(S.weight, 10);
	assert_true(has_hook(ENG_HOOK_PRE_ROLLOUT));
	assert_int_equal(S.rollout_started_ms, now);
}

static void test_confirm_traffic_increase_and_promotion_hold_until_passed(void **state)
{
	(void)state;
	P.gate_traffic = true;
	P.gate_promotion = true;
	P.max_weight = 20;
	start("v2");
	/* the first step up waits too */
	assert_int_equal(S.weight, 0);
	assert_int_equal(S.waiting, ENG_GATE_TRAFFIC);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_false(eng_check_due(&S, &P, now + 10 * INTERVAL)); /* no traffic to check */
	eng_gate_answer(&S, &P, now, ENG_GATE_TRAFFIC, true, NULL, &O);
	assert_int_equal(S.weight, 10);
	assert_int_equal(S.waiting, ENG_GATE_NONE);
	pass(); /* the answer was used: the next step asks again */
	assert_int_equal(S.weight, 10);
	assert_int_equal(S.waiting, ENG_GATE_TRAFFIC);
	eng_gate_answer(&S, &P, now, ENG_GATE_TRAFFIC, true, NULL, &O);
	assert_int_equal(S.weight, 20);
	pass();
	assert_int_equal(S.phase, ENG_WAITING_PROMOTION);
	assert_int_equal(S.waiting, ENG_GATE_PROMOTION);
	/* checks go on while it waits, and a failing canary is rolled back */
	assert_true(eng_check_due(&S, &P, S.next_check_ms));
	fail_sr();
	fail_sr();
	fail_sr();
	assert_int_equal(S.phase, ENG_FAILED);
}

static void test_approval_above_a_weight(void **state)
{
	(void)state;
	P.has_approval = true;
	P.approval_above = 20;
	P.max_weight = 40;
	start("v2");
	pass();
	assert_int_equal(S.weight, 20);
	pass();
	assert_int_equal(S.phase, ENG_WAITING_PROMOTION);
	assert_int_equal(S.weight, 20);
	pass(); /* still waiting: no event for every look */
	assert_null(find_event("waiting"));
	eng_cmd c = { .kind = ENG_CMD_APPROVE, .actor = "alice", .reason = "CAB-1234 signed off" };
	assert_int_equal(eng_command(&S, &P, now, &c, &O, err, sizeof err), 0);
	assert_int_equal(S.weight, 30);
	assert_non_null(strstr(O.events[0].message, "approved by alice (reason: "
	                                             "CAB-1234 signed off)"));
	pass();
	assert_int_equal(S.weight, 40);
	pass(); /* approved once for the rollout */
	assert_int_equal(S.phase, ENG_PROMOTING);
	/* a new rollout needs a new approval */
	tick();
	start("v3");
	pass();
	pass();
	assert_int_equal(S.phase, ENG_WAITING_PROMOTION);
}

static void test_on_failure_pause_holds_the_weight(void **state)
{
	(void)state;
	P.on_failure = ENG_ONFAIL_PAUSE;
	start("v2");
	pass();
	fail_sr();
	fail_sr();
	fail_sr();
	assert_int_equal(S.phase, ENG_PAUSED);
	assert_int_equal(S.weight, 20);
	assert_false(has_hook(ENG_HOOK_ROLLBACK));
	assert_non_null(strstr(S.message, "onFailure: pause"));
	assert_int_equal(command(ENG_CMD_ABORT, NULL, 0, "ops"), 0);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(S.weight, 0);
}

static void test_retry_restarts_a_failed_rollout(void **state)
{
	(void)state;
	assert_int_equal(command(ENG_CMD_RETRY, NULL, 0, "ops"), -1);
	start("v2");
	fail_sr();
	fail_sr();
	fail_sr();
	assert_int_equal(S.phase, ENG_FAILED);
	now += 100;
	assert_int_equal(command(ENG_CMD_RETRY, NULL, 0, "ops"), 0);
	assert_int_equal(S.phase, ENG_PROGRESSING);
	assert_string_equal(S.canary_rev, "v2");
	assert_int_equal(S.failed_checks, 0);
	assert_int_equal(S.weight, 10);
	assert_non_null(strstr(O.events[0].message, "retry by ops"));
}

static void test_undo_within_the_window(void **state)
{
	(void)state;
	P.undo_window_ms = 60000;
	start("v2");
	assert_int_equal(command(ENG_CMD_PROMOTE_FULL, NULL, 0, "ops"), 0);
	now += INTERVAL;
	tick();
	assert_int_equal(S.phase, ENG_SUCCEEDED);
	assert_string_equal(S.stable_rev, "v2");
	assert_string_equal(S.prev_stable_rev, "v1");
	now += 1000;
	eng_cmd c = { .kind = ENG_CMD_UNDO, .actor = "ops", .reason = "p99 doubled" };
	assert_int_equal(eng_command(&S, &P, now, &c, &O, err, sizeof err), 0);
	assert_true(O.undo);
	assert_string_equal(S.stable_rev, "v1");
	assert_string_equal(S.canary_rev, "v2");
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(S.weight, 0);
	assert_string_equal(O.events[0].type, "undo");
	/* once only */
	assert_int_equal(eng_command(&S, &P, now, &c, &O, err, sizeof err), -1);
	/* and not after the window */
	start("v3");
	assert_int_equal(command(ENG_CMD_PROMOTE_FULL, NULL, 0, "ops"), 0);
	now += INTERVAL;
	tick();
	now += 60000;
	assert_int_equal(eng_command(&S, &P, now, &c, &O, err, sizeof err), -1);
	assert_non_null(strstr(err, "undo window"));
}


static void test_rollback_step_weight_lowers_the_weight_each_interval(void **state)
{
	(void)state;
	P.rollback_step_weight = 20;
	start("v2");
	pass();
	pass();
	pass();
	pass();
	assert_int_equal(S.weight, 50);
	fail_sr();
	fail_sr();
	fail_sr();
	assert_int_equal(S.phase, ENG_ROLLING_BACK);
	assert_int_equal(S.weight, 30);
	assert_false(has_hook(ENG_HOOK_ROLLBACK));
	assert_true(eng_active(&S));
	assert_false(eng_check_due(&S, &P, now + 10 * INTERVAL));
	assert_int_equal(command(ENG_CMD_PAUSE, NULL, 0, "ops"), -1);
	now += INTERVAL - 1;
	tick();
	assert_int_equal(S.weight, 30);
	now += 1;
	tick();
	assert_int_equal(S.weight, 10);
	now += INTERVAL;
	tick();
	assert_int_equal(S.weight, 0);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_true(has_hook(ENG_HOOK_ROLLBACK));
	/* abort skips the rest */
	start("v3");
	pass();
	fail_sr();
	fail_sr();
	fail_sr();
	assert_int_equal(S.phase, ENG_FAILED); /* 20 <= step: at once */
	P.rollback_step_weight = 5;
	start("v4");
	pass();
	fail_sr();
	fail_sr();
	fail_sr();
	assert_int_equal(S.phase, ENG_ROLLING_BACK);
	assert_int_equal(command(ENG_CMD_ABORT, NULL, 0, "ops"), 0);
	assert_int_equal(S.phase, ENG_FAILED);
	assert_int_equal(S.weight, 0);
}


static void test_post_promotion_undoes_a_worse_new_stable(void **state)
{
	(void)state;
	P.post_promotion_ms = 60000;
	start("v2");
	assert_int_equal(command(ENG_CMD_PROMOTE_FULL, NULL, 0, "ops"), 0);
	now += INTERVAL;
	tick();
	assert_int_equal(S.phase, ENG_SUCCEEDED);
	eng_counts old = { .stable_requests = 10000, .stable_errors = 50 };
	eng_watch_start(&S, &P, now, &old);
	assert_int_equal(S.watch_until_ms, now + 60000);
	/* 0.5 % as before: nothing happens, then the window ends */
	eng_counts c = { 0 };
	for (int i = 1; i <= 60; i++) {
		now += 1000;
		c.stable_requests = 200ULL * (uint64_t)i;
		c.stable_errors = (uint64_t)i;
		eng_watch(&S, &P, now, &c, &O);
		assert_int_equal(S.phase, ENG_SUCCEEDED);
	}
	assert_int_equal(S.watch_until_ms, 0);
	assert_non_null(strstr(O.events[0].message, "post-promotion analysis passed"));
	/* a new stable failing 10 %: undone within seconds */
	start("v3");
	assert_int_equal(command(ENG_CMD_PROMOTE_FULL, NULL, 0, "ops"), 0);
	now += INTERVAL;
	tick();
	eng_watch_start(&S, &P, now, &old);
	int t = 0;
	memset(&c, 0, sizeof c);
	/* looked at every 100 ms, as the daemon's tick does */
	while (S.phase == ENG_SUCCEEDED && t < 600) {
		now += 100;
		t++;
		c.stable_requests += 20;
		c.stable_errors += 2;
		eng_watch(&S, &P, now, &c, &O);
	}
	assert_int_equal(S.phase, ENG_FAILED);
	assert_true(t <= 100); /* within 10 s at 200 requests a second */
	assert_true(O.undo);
	assert_string_equal(S.stable_rev, "v2");
	assert_string_equal(O.events[0].type, "undo");
	assert_non_null(strstr(O.events[0].message, "post-promotion analysis"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_state_init_is_initialized_at_stable),
		T(test_policy_defaults_are_flaggers),
		T(test_rollout_starts_at_first_step),
		T(test_weight_events_carry_before_and_after),
		T(test_rollout_of_stable_revision_is_refused),
		T(test_rollout_of_empty_or_long_revision_is_refused),
		T(test_rollout_replaces_running_rollout_and_resets_counts),
		T(test_passing_checks_climb_to_max_weight_then_promote),
		T(test_promoting_becomes_succeeded_after_an_interval),
		T(test_step_weights_are_capped_by_max_weight),
		T(test_step_weights_promote_after_last_entry),
		T(test_step_weight_is_capped_at_max_weight),
		T(test_failed_check_holds_weight_and_counts),
		T(test_failed_checks_add_up_without_reset_by_passing_checks),
		T(test_threshold_th_failure_rolls_back_at_once),
		T(test_threshold_one_rolls_back_on_first_failure),
		T(test_check_message_lists_failing_metrics),
		T(test_check_event_carries_each_metric_result),
		T(test_no_data_fails_the_check_with_the_readers_reason),
		T(test_no_data_holds_the_check_under_on_no_data_hold),
		T(test_no_data_holds_forever_without_rolling_back),
		T(test_too_few_samples_hold_the_check),
		T(test_too_few_samples_still_show_the_comparison),
		T(test_min_samples_reached_counts_either_way),
		T(test_too_few_samples_fail_under_on_no_data_fail),
		T(test_min_samples_of_one_counts_any_request),
		T(test_a_failing_metric_fails_a_check_with_a_held_one),
		T(test_a_failed_reading_fails_whatever_on_no_data),
		T(test_custom_metric_without_data_holds),
		T(test_held_checks_are_not_iterations),
		T(test_warmup_holds_the_checks_it_covers),
		T(test_warmup_starts_again_with_a_new_rollout),
		T(test_max_duration_pauses_and_notifies),
		T(test_max_duration_rolls_back),
		T(test_max_duration_promotes),
		T(test_max_duration_promote_pauses_a_canary_leaning_worse),
		T(test_max_duration_does_not_count_a_pause),
		T(test_max_duration_ends_the_sequential_judge_too),
		T(test_max_duration_zero_never_ends),
		T(test_min_bound_is_inclusive),
		T(test_max_bound_is_inclusive),
		T(test_nan_reading_fails),
		T(test_check_runs_the_rollout_hook),
		T(test_check_not_due_before_the_interval),
		T(test_check_not_due_and_ignored_when_paused),
		T(test_many_failing_metrics_stay_bounded),
		T(test_iterations_mode_promotes_after_n_passing_checks),
		T(test_iterations_mode_with_fixed_split_uses_max_weight),
		T(test_progress_deadline_rolls_back),
		T(test_ready_resets_the_progress_deadline_timer),
		T(test_progress_deadline_applies_while_paused),
		T(test_idle_tick_changes_nothing),
		T(test_pause_and_resume),
		T(test_pause_twice_changes_nothing),
		T(test_steps_set_weights_and_pause_until_resumed),
		T(test_timed_pause_ends_by_itself_and_approve_ends_one),
		T(test_confirm_rollout_waits_with_no_traffic),
		T(test_confirm_traffic_increase_and_promotion_hold_until_passed),
		T(test_approval_above_a_weight),
		T(test_on_failure_pause_holds_the_weight),
		T(test_retry_restarts_a_failed_rollout),
		T(test_undo_within_the_window),
		T(test_rollback_step_weight_lowers_the_weight_each_interval),
		T(test_post_promotion_undoes_a_worse_new_stable),
		T(test_resume_when_not_paused_changes_nothing),
		T(test_set_weight_pauses_with_manual_flag),
		T(test_set_weight_out_of_range_is_an_error),
		T(test_promote_advances_one_step_without_counting_a_check),
		T(test_promote_from_pause_continues_progressing),
		T(test_promote_at_the_top_promotes),
		T(test_promote_full_skips_the_remaining_steps),
		T(test_abort_rolls_back),
		T(test_abort_while_promoting_rolls_back),
		T(test_abort_when_idle_is_an_error_and_state_untouched),
		T(test_commands_after_success_need_a_rollout),
		T(test_approve_passes_a_pending_gate),
		T(test_automatic_events_have_actor_canaryd),
		T(test_state_message_follows_the_last_event),
		T(test_phase_name_and_parse_round_trip),
		T(test_eng_active_phases),
		T(test_relative_rate_compares_the_difference_in_points),
		T(test_relative_success_rate_min_is_a_drop_in_points),
		T(test_relative_duration_compares_the_ratio),
		T(test_relative_custom_ratio_against_zero_stable),
		T(test_relative_without_stable_data_fails),
		T(test_baseline_forgives_a_breach_stable_also_has),
		T(test_baseline_of_a_min_breach_is_the_lower_side),
		T(test_baseline_without_data_counts_the_breach),
		T(test_baseline_ignored_when_not_configured),
		T(test_failure_duration_holds_a_breach_until_it_lasts),
		T(test_failure_duration_clock_resets_on_a_passing_check),
		T(test_failure_duration_does_not_delay_no_data),
		T(test_breach_clocks_reset_by_a_new_rollout),
		T(test_observe_does_nothing_under_the_threshold_judge),
		T(test_sequential_rolls_back_a_failing_canary_at_once),
		T(test_sequential_steps_up_a_healthy_canary_after_min_samples),
		T(test_sequential_holds_without_evidence),
		T(test_sequential_ignores_paused_rollouts),
		T(test_sequential_checks_are_guards_tested_on_every_tick),
		T(test_sequential_holds_while_stable_departs),
		T(test_sequential_warmup_is_not_judged),
		T(test_sequential_restarts_with_a_new_rollout),
		T(test_sequential_survives_counts_that_restart),
		T(test_sequential_rolls_back_a_slow_canary),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
