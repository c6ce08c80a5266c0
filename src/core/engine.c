/* engine.c - see engine.h. Everything here works on the caller's structs
 * only: no allocation, no clock, no I/O, so a rollout can be replayed and
 * tested with a simulated clock. */
/* engine.h uses size_t without including <stddef.h> (reported) */
#include <stddef.h>

#include "engine.h"
#include "hist.h"
#include "util.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define AUTO_ACTOR "canaryd"

static const char *const phase_names[ENG_PHASE_COUNT] = {
	[ENG_INITIALIZED] = "Initialized",
	[ENG_PROGRESSING] = "Progressing",
	[ENG_PAUSED] = "Paused",
	[ENG_WAITING_PROMOTION] = "WaitingPromotion",
	[ENG_WAITING] = "Waiting",
	[ENG_ROLLING_BACK] = "RollingBack",
	[ENG_PROMOTING] = "Promoting",
	[ENG_SUCCEEDED] = "Succeeded",
	[ENG_FAILED] = "Failed",
};

const char *eng_phase_name(eng_phase p)
{
	if ((int)p < 0 || p >= ENG_PHASE_COUNT)
		return "Unknown";
	return phase_names[p];
}

int eng_phase_parse(const char *s)
{
	if (!s)
		return -1;
	for (int i = 0; i < ENG_PHASE_COUNT; i++)
		if (strcmp(s, phase_names[i]) == 0)
			return i;
	if (strcmp(s, "WaitingApproval") == 0)
		return ENG_WAITING_PROMOTION; /* its name in states saved before */
	return -1;
}

const char *eng_gate_name(eng_gate g)
{
	static const char *const names[ENG_GATE_COUNT] = {
		[ENG_GATE_NONE] = "",
		[ENG_GATE_ROLLOUT] = "confirm-rollout",
		[ENG_GATE_TRAFFIC] = "confirm-traffic-increase",
		[ENG_GATE_PROMOTION] = "confirm-promotion",
		[ENG_GATE_APPROVAL] = "approval",
	};
	return (int)g >= 0 && g < ENG_GATE_COUNT ? names[g] : "";
}

void eng_policy_defaults(eng_policy *p)
{
	memset(p, 0, sizeof *p);
	p->interval_ms = 60 * 1000;
	p->threshold = 1;
	p->max_weight = 100;
	p->step_weight = 0;
	p->progress_deadline_ms = 600 * 1000;
	p->judge = ENG_JUDGE_THRESHOLD;
	judge_params jp;
	judge_params_defaults(&jp);
	p->alpha = jp.alpha;
	p->min_samples = jp.min_samples;
	p->judge_margin = jp.margin;
	p->judge_latency_ratio = jp.latency_ratio;
	p->undo_window_ms = 3600 * 1000;
}

/* ---- small helpers ---- */

/* Copies <src> into <dst> of <n> bytes, truncating; <dst> always ends. */
static void copy_str(char *dst, size_t n, const char *src)
{
	if (n == 0)
		return;
	size_t i = 0;
	if (src)
		for (; i + 1 < n && src[i]; i++)
			dst[i] = src[i];
	dst[i] = '\0';
}

/* vsnprintf into a fixed buffer: messages are bounded, truncation is fine
 * (and not an error) for an audit line. */
static void vfmt(char *dst, size_t n, const char *fmt, va_list ap)
{
	if (n == 0)
		return;
	if (vsnprintf(dst, n, fmt, ap) < 0)
		dst[0] = '\0';
}

static void fmt(char *dst, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void fmt(char *dst, size_t n, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vfmt(dst, n, f, ap);
	va_end(ap);
}

/* Appends to the NUL-terminated <dst> of <n> bytes, truncating. */
static void append(char *dst, size_t n, const char *f, ...) __attribute__((format(printf, 3, 4)));
static void append(char *dst, size_t n, const char *f, ...)
{
	size_t len = strnlen(dst, n);
	if (len + 1 >= n)
		return;
	va_list ap;
	va_start(ap, f);
	vfmt(dst + len, n - len, f, ap);
	va_end(ap);
}

/* "60s" for whole seconds (progressDeadlineSeconds reads best so), else
 * seconds with 2 decimals. */
static void fmt_secs(char *dst, size_t n, uint64_t ms)
{
	if (ms % 1000 == 0)
		fmt(dst, n, "%llus", (unsigned long long)(ms / 1000));
	else
		fmt(dst, n, "%.2fs", (double)ms / 1000.0);
}

/* Records an event of <type> with the state's current phase and weight (the
 * state after the event) and its message, which also becomes the state's
 * message. An output that is full drops the event (a call makes at most
 * three; the bound is defensive). Returns the event or NULL when dropped. */
static eng_event *emit(eng_output *out, eng_state *s, const char *type,
                       const char *actor, const char *f, ...)
	__attribute__((format(printf, 5, 6)));
static eng_event *emit(eng_output *out, eng_state *s, const char *type,
                       const char *actor, const char *f, ...)
{
	va_list ap;
	va_start(ap, f);
	vfmt(s->message, sizeof s->message, f, ap);
	va_end(ap);
	out->changed = true;
	if (out->n_events >= ENG_MAX_EVENTS)
		return NULL;
	eng_event *ev = &out->events[out->n_events++];
	memset(ev, 0, sizeof *ev);
	copy_str(ev->type, sizeof ev->type, type);
	ev->phase = s->phase;
	ev->weight = s->weight;
	copy_str(ev->message, sizeof ev->message, s->message);
	copy_str(ev->actor, sizeof ev->actor, actor);
	return ev;
}

static void add_hook(eng_output *out, eng_hook h)
{
	if (out->n_hooks < ENG_MAX_HOOKS)
		out->hooks[out->n_hooks++] = h;
}

/* A phase change stamps the transition time; staying put does not. */
static void set_phase(eng_state *s, eng_phase ph, uint64_t now_ms)
{
	if (s->phase != ph) {
		s->phase = ph;
		s->last_transition_ms = now_ms;
	}
}

static int max_weight(const eng_policy *p)
{
	if (p->max_weight <= 0 || p->max_weight > 100)
		return 100;
	return p->max_weight;
}

/* A/B testing and blue/green: a number of iterations instead of steps. */
static bool iterations_mode(const eng_policy *p)
{
	return p->iterations > 0 && p->step_weight <= 0 && p->n_step_weights <= 0;
}

/* The weight one step above <w>, or -1 when <w> is at the top (max_weight,
 * or the last stepWeights entry when that is lower). Without any step
 * setting the single step is max_weight, so a rollout always terminates. */
static int next_step(const eng_policy *p, int w)
{
	int top = max_weight(p);
	if (p->n_step_weights > 0) {
		int n = p->n_step_weights < ENG_MAX_STEPS ? p->n_step_weights : ENG_MAX_STEPS;
		for (int i = 0; i < n; i++) {
			if (p->step_weights[i] > w) {
				int v = p->step_weights[i] < top ? p->step_weights[i] : top;
				return v > w ? v : -1;
			}
		}
		return -1;
	}
	if (w >= top)
		return -1;
	if (p->step_weight > 0)
		return w + p->step_weight < top ? w + p->step_weight : top;
	return top;
}

/* The weight a rollout without analysis.steps starts at. In iterations
 * mode the canary gets max_weight only when that is an explicit split
 * below 100 (A/B with a fixed share); otherwise it gets no weighted
 * traffic during the analysis. */
static int first_weight(const eng_policy *p)
{
	if (iterations_mode(p))
		return max_weight(p) < 100 ? max_weight(p) : 0;
	int w = next_step(p, 0);
	return w < 0 ? 0 : w;
}

/* Everything that ends or hands over a rollout clears the transient
 * per-rollout flags. */
static void leave_analysis(eng_state *s)
{
	s->manual_weight = false;
	s->unready_since_ms = 0;
	memset(s->breach_since_ms, 0, sizeof s->breach_since_ms);
	s->step_paused = false;
	s->pause_until_ms = 0;
	s->failure_paused = false;
	s->waiting = ENG_GATE_NONE;
	s->gate_ok = 0;
	s->gate_reason[0] = '\0';
}

static void start_promoting(eng_state *s, uint64_t now_ms, eng_output *out,
                            const char *actor, const char *why)
{
	leave_analysis(s);
	s->weight = 100;
	set_phase(s, ENG_PROMOTING, now_ms);
	s->last_transition_ms = now_ms;
	emit(out, s, "promoting", actor, "%s, promoting %s: 100%% to canary",
	     why, s->canary_rev);
}

static void rollback(eng_state *s, uint64_t now_ms, eng_output *out,
                     const char *actor, const char *why)
{
	leave_analysis(s);
	s->weight = 0;
	set_phase(s, ENG_FAILED, now_ms);
	add_hook(out, ENG_HOOK_ROLLBACK);
	emit(out, s, "rollback", actor, "%s", why);
}

/* A rollback by rollbackStepWeight: the weight goes down a step now and
 * each interval after (eng_tick), the rollback hooks run at 0. */
static void rollback_gradually(eng_state *s, const eng_policy *p, uint64_t now_ms,
                               eng_output *out, const char *why)
{
	int step = p->rollback_step_weight;
	if (step <= 0 || s->weight <= step) {
		rollback(s, now_ms, out, AUTO_ACTOR, why);
		return;
	}
	leave_analysis(s);
	int before = s->weight;
	s->weight -= step;
	s->next_check_ms = now_ms + p->interval_ms;
	set_phase(s, ENG_ROLLING_BACK, now_ms);
	char d[32];
	fmt_secs(d, sizeof d, p->interval_ms);
	emit(out, s, "rollback", AUTO_ACTOR, "%s; rolling back gradually (rollbackStepWeight): "
	     "canary weight %d -> %d, then down by %d every %s", why, before, s->weight, step, d);
}

/* A failed analysis: rolled back (at once, or by rollbackStepWeight), or
 * under onFailure: pause held at its weight for the operator (abort,
 * resume or promote), with why. */
static void analysis_failed(eng_state *s, const eng_policy *p, uint64_t now_ms,
                            eng_output *out, const char *why)
{
	if (p->on_failure != ENG_ONFAIL_PAUSE) {
		rollback_gradually(s, p, now_ms, out, why);
		return;
	}
	s->manual_weight = false;
	s->step_paused = false;
	s->pause_until_ms = 0;
	s->waiting = ENG_GATE_NONE;
	s->failure_paused = true;
	set_phase(s, ENG_PAUSED, now_ms);
	emit(out, s, "failure-paused", AUTO_ACTOR, "%s; paused at weight %d instead of rolling back "
	     "(onFailure: pause): abort, resume or promote", why, s->weight);
}

/* ---- steps and gates ---- */

typedef enum { MOVE_WEIGHT, MOVE_PAUSE, MOVE_PROMOTE } move_kind;

/* The analysis' next move from where <s> stands: to a weight (*weight), a
 * pause step (*pause_ms), or the promotion. */
static move_kind next_move(const eng_state *s, const eng_policy *p, int *weight,
                           uint64_t *pause_ms)
{
	if (p->n_steps > 0) {
		int i = s->step + 1 > 0 ? s->step + 1 : 0;
		if (i >= p->n_steps || i >= ENG_MAX_STEPS)
			return MOVE_PROMOTE;
		if (p->steps[i].weight < 0) {
			*pause_ms = p->steps[i].pause_ms;
			return MOVE_PAUSE;
		}
		*weight = p->steps[i].weight;
		return MOVE_WEIGHT;
	}
	int next = iterations_mode(p) ? -1 : next_step(p, s->weight);
	if (next < 0)
		return MOVE_PROMOTE;
	*weight = next;
	return MOVE_WEIGHT;
}

/* The gate that holds a move, or ENG_GATE_NONE. Only moves that send the
 * canary more traffic are gated: a pause, or a step down, never waits. */
static eng_gate gate_of(const eng_state *s, const eng_policy *p, move_kind mk, int w)
{
	if (mk == MOVE_PAUSE || (mk == MOVE_WEIGHT && w <= s->weight))
		return ENG_GATE_NONE;
	int to = mk == MOVE_PROMOTE ? 100 : w;
	if (p->has_approval && to > p->approval_above && !s->approved)
		return ENG_GATE_APPROVAL;
	if (mk == MOVE_PROMOTE && p->gate_promotion && !(s->gate_ok & (1u << ENG_GATE_PROMOTION)))
		return ENG_GATE_PROMOTION;
	if (mk == MOVE_WEIGHT && p->gate_traffic && !(s->gate_ok & (1u << ENG_GATE_TRAFFIC)))
		return ENG_GATE_TRAFFIC;
	return ENG_GATE_NONE;
}

/* Holds the move at gate <g>: an event when the wait begins (not on every
 * look that finds it still closed). */
static void wait_at(eng_state *s, const eng_policy *p, uint64_t now_ms, eng_output *out,
                    eng_gate g, move_kind mk, int w, const char *why)
{
	if (s->waiting == g)
		return;
	s->waiting = g;
	s->gate_reason[0] = '\0';
	out->changed = true;
	char move[48];
	if (mk == MOVE_PROMOTE)
		fmt(move, sizeof move, "promoting");
	else
		fmt(move, sizeof move, "canary weight %d -> %d", s->weight, w);
	if (g == ENG_GATE_APPROVAL) {
		set_phase(s, ENG_WAITING_PROMOTION, now_ms);
		emit(out, s, "waiting", AUTO_ACTOR, "%s; waiting for approval before %s (analysis."
		     "approval: above %d%%): canaryctl approve", why, move, p->approval_above);
	} else if (g == ENG_GATE_PROMOTION) {
		set_phase(s, ENG_WAITING_PROMOTION, now_ms);
		emit(out, s, "waiting", AUTO_ACTOR, "%s; waiting for the confirm-promotion webhooks "
		     "before %s", why, move);
	} else {
		emit(out, s, "waiting", AUTO_ACTOR, "%s; waiting for the %s webhooks before %s", why,
		     eng_gate_name(g), move);
	}
}

/* The analysis passed where it stands (a check, the judge, a pause that
 * ended, a gate that opened, or an operator: <manual> passes every gate):
 * the next move, unless a gate holds it. <why> says what passed (the
 * promotion's message), <suffix> ends a weight event's message. */
static void advance(eng_state *s, const eng_policy *p, uint64_t now_ms, eng_output *out,
                    const char *actor, const char *why, const char *suffix, bool manual)
{
	int w = 0;
	uint64_t pause_ms = 0;
	move_kind mk = next_move(s, p, &w, &pause_ms);
	eng_gate g = manual ? ENG_GATE_NONE : gate_of(s, p, mk, w);
	if (g != ENG_GATE_NONE) {
		wait_at(s, p, now_ms, out, g, mk, w, why);
		return;
	}
	/* an answer opens its gate for one move */
	if (mk == MOVE_PROMOTE)
		s->gate_ok &= ~(1u << ENG_GATE_PROMOTION);
	else if (mk == MOVE_WEIGHT && w > s->weight)
		s->gate_ok &= ~(1u << ENG_GATE_TRAFFIC);
	s->waiting = ENG_GATE_NONE;
	s->gate_reason[0] = '\0';
	s->step_paused = false;
	s->pause_until_ms = 0;
	if (mk == MOVE_PROMOTE) {
		start_promoting(s, now_ms, out, actor, why);
		return;
	}
	int n = p->n_steps;
	if (n > 0)
		s->step = s->step + 1 > 0 ? s->step + 1 : 0;
	if (mk == MOVE_PAUSE) {
		s->step_paused = true;
		s->pause_until_ms = pause_ms ? now_ms + pause_ms : 0;
		s->manual_weight = false;
		set_phase(s, ENG_PAUSED, now_ms);
		char d[32];
		fmt_secs(d, sizeof d, pause_ms);
		if (pause_ms)
			emit(out, s, "paused", actor, "step %d/%d: pause for %s at weight %d", s->step + 1,
			     n, d, s->weight);
		else
			emit(out, s, "paused", actor, "step %d/%d: pause at weight %d until resumed, "
			     "approved or promoted", s->step + 1, n, s->weight);
		return;
	}
	int before = s->weight;
	s->weight = w;
	set_phase(s, ENG_PROGRESSING, now_ms);
	if (n > 0)
		emit(out, s, "weight", actor, "step %d/%d: canary weight %d -> %d%s", s->step + 1, n,
		     before, w, suffix);
	else
		emit(out, s, "weight", actor, "%s canary weight %d -> %d%s",
		     w >= before ? "advance" : "lower", before, w, suffix);
}

/* One step up from a passed check: the next move (in iterations mode,
 * which has no steps, the promotion). */
static void step_up(eng_state *s, const eng_policy *p, uint64_t now_ms,
                    eng_output *out, const char *actor, const char *why,
                    const char *suffix)
{
	advance(s, p, now_ms, out, actor, why, suffix, false);
}

/* The analysis of a rollout begins (at once, or once its confirm-rollout
 * gate opened): the first weight, the pre-rollout and rollout hooks. */
static void begin_analysis(eng_state *s, const eng_policy *p, uint64_t now_ms,
                           eng_output *out, const char *actor)
{
	s->rollout_started_ms = now_ms;
	s->next_check_ms = now_ms + p->interval_ms;
	s->waiting = ENG_GATE_NONE;
	s->gate_reason[0] = '\0';
	set_phase(s, ENG_PROGRESSING, now_ms);
	s->last_transition_ms = now_ms;
	add_hook(out, ENG_HOOK_PRE_ROLLOUT);
	add_hook(out, ENG_HOOK_ROLLOUT);
	if (p->n_steps > 0) {
		s->step = -1;
		advance(s, p, now_ms, out, actor, "analysis started", "", false);
		return;
	}
	int before = s->weight;
	int w = first_weight(p);
	if (w > before && !iterations_mode(p)) {
		/* the first step up is a step up like the others */
		advance(s, p, now_ms, out, actor, "analysis started", "", false);
		return;
	}
	s->weight = w;
	if (s->weight != before)
		emit(out, s, "weight", actor, "%s canary weight %d -> %d",
		     s->weight > before ? "advance" : "lower", before, s->weight);
}

/* ---- state ---- */

void eng_state_init(eng_state *s, const char *stable_rev, uint64_t now_ms)
{
	memset(s, 0, sizeof *s);
	s->phase = ENG_INITIALIZED;
	s->step = -1;
	copy_str(s->stable_rev, sizeof s->stable_rev, stable_rev);
	s->last_transition_ms = now_ms;
	fmt(s->message, sizeof s->message, "stable revision %s, no rollout yet",
	    s->stable_rev[0] ? s->stable_rev : "-");
}

void eng_output_clear(eng_output *o)
{
	o->n_events = 0;
	o->n_hooks = 0;
	o->promote = false;
	o->changed = false;
}

bool eng_active(const eng_state *s)
{
	return s->phase == ENG_PROGRESSING || s->phase == ENG_PAUSED ||
	       s->phase == ENG_WAITING_PROMOTION || s->phase == ENG_WAITING ||
	       s->phase == ENG_PROMOTING || s->phase == ENG_ROLLING_BACK;
}

/* A rollout that is still being analysed (not yet handed over). */
static bool analysing(const eng_state *s)
{
	return s->phase == ENG_PROGRESSING || s->phase == ENG_PAUSED ||
	       s->phase == ENG_WAITING_PROMOTION;
}

/* Checks are made, and the judge looks, while the analysis runs: also
 * while a gate holds its next move (automatic rollback stays on). */
static bool judging(const eng_state *s)
{
	return s->phase == ENG_PROGRESSING || s->phase == ENG_WAITING_PROMOTION;
}

bool eng_check_due(const eng_state *s, const eng_policy *p, uint64_t now_ms)
{
	/* a first step held by confirm-traffic-increase leaves the canary
	 * without traffic: nothing to check (a Flagger document's onNoData
	 * fail would roll back a canary that never served) */
	if (s->weight == 0 && s->waiting == ENG_GATE_TRAFFIC)
		return false;
	return judging(s) && now_ms >= s->next_check_ms;
}

/* ---- the analysis ---- */

/* Rates are compared by difference, everything else by ratio. */
static bool rate_kind(eng_metric_kind k)
{
	return k == ENG_M_SUCCESS_RATE || k == ENG_M_ERROR_RATE;
}

/* value / stable for a relative metric: 0 / 0 is no change, x / 0 an
 * unbounded one in the sign of x. */
static double ratio(double value, double stable)
{
	if (stable == 0)
		return value == 0 ? 1.0 : value > 0 ? INFINITY : -INFINITY;
	return value / stable;
}

/* Whether <x> (the value or what a relative metric compares) breaches the
 * range of <m>: 1 above max, -1 below min, 0 in range. Written so that NaN
 * breaches. */
static int breach_side(const eng_metric *m, double x)
{
	if (m->has_min && !(x >= m->min))
		return -1;
	if (m->has_max && !(x <= m->max))
		return 1;
	return 0;
}

/* "3.10 < 99" or, relative, "3.10 vs stable 0.50: +2.60 > +1" or
 * "812.00 vs stable 400.00: x2.03 > x1.5". */
static void describe_breach(const eng_metric *m, const eng_metric_result *res,
                            int side, char *dst, size_t n)
{
	const char *op = side > 0 ? ">" : "<";
	double bound = side > 0 ? m->max : m->min;
	if (!m->relative)
		fmt(dst, n, "%.2f %s %g", res->value, op, bound);
	else if (rate_kind(m->kind))
		fmt(dst, n, "%.2f vs stable %.2f: %+.2f %s %+g", res->value, res->stable_value,
		    res->compared, op, bound);
	else
		fmt(dst, n, "%.2f vs stable %.2f: x%.2f %s x%g", res->value, res->stable_value,
		    res->compared, op, bound);
}

/* Judges reading <r> (NULL: no reading) of metric <m> at <now_ms> under
 * policy <p> into <res>, keeping the metric's breach clock <since>
 * (engine.h, "Judging one metric"). */
static void judge(const eng_policy *p, const eng_metric *m, const eng_reading *r,
                  uint64_t now_ms, uint64_t *since, eng_metric_result *res)
{
	memset(res, 0, sizeof *res);
	copy_str(res->name, sizeof res->name, m->name);
	res->has_min = m->has_min;
	res->has_max = m->has_max;
	res->min = m->min;
	res->max = m->max;
	res->relative = m->relative;
	bool hold = p->on_no_data == ENG_NODATA_HOLD;
	if (!r || !r->has_data) {
		copy_str(res->reason, sizeof res->reason,
		         r && r->reason[0] ? r->reason : "no data");
		res->held = hold && !(r && r->fails);
		return;
	}
	res->has_value = true;
	res->value = r->value;
	res->has_baseline = m->baseline_window_ms > 0 && r->has_baseline;
	res->baseline_value = res->has_baseline ? r->baseline_value : 0;
	double x = r->value;
	if (m->relative && r->has_stable) {
		res->has_stable = true;
		res->stable_value = r->stable_value;
		x = rate_kind(m->kind) ? r->value - r->stable_value : ratio(r->value, r->stable_value);
		res->compared = x;
	}
	if (r->has_samples && r->samples < p->min_samples) {
		/* a rate over 12 requests moves 8 points with one of them: it
		 * says nothing either way, so it is shown but does not count */
		fmt(res->reason, sizeof res->reason, "not enough data (%llu of %llu requests)",
		    (unsigned long long)r->samples, (unsigned long long)p->min_samples);
		res->held = hold;
		return;
	}
	if (m->relative && !r->has_stable) {
		copy_str(res->reason, sizeof res->reason, "no stable data to compare with");
		return;
	}
	int side = breach_side(m, x);
	if (side == 0) {
		*since = 0;
		res->passed = true;
		return;
	}
	char what[96];
	describe_breach(m, res, side, what, sizeof what);
	if (res->has_baseline) {
		bool worse = side > 0 ? r->value > r->baseline_value : r->value < r->baseline_value;
		if (!worse) {
			/* the service as a whole is like this: not the canary's doing */
			*since = 0;
			res->passed = true;
			fmt(res->reason, sizeof res->reason, "%s, but stable's baseline is %.2f",
			    what, r->baseline_value);
			return;
		}
	}
	if (m->failure_duration_ms > 0) {
		/* 0 means no breach: a clock at the epoch still starts one */
		if (*since == 0 || *since > now_ms)
			*since = now_ms ? now_ms : 1;
		uint64_t lasted = now_ms - *since;
		if (lasted < m->failure_duration_ms) {
			char a[32], b[32];
			fmt_secs(a, sizeof a, lasted);
			fmt_secs(b, sizeof b, m->failure_duration_ms);
			res->passed = true;
			res->pending = true;
			fmt(res->reason, sizeof res->reason, "breach for %s of %s: %s", a, b, what);
			return;
		}
		char a[32];
		fmt_secs(a, sizeof a, lasted);
		fmt(res->reason, sizeof res->reason, "%s for %s", what, a);
		return;
	}
	copy_str(res->reason, sizeof res->reason, what);
}

static bool sequential_guard(const eng_policy *p, int i);

bool eng_warming_up(const eng_state *s, const eng_policy *p, uint64_t now_ms)
{
	return p->warmup_ms > 0 && eng_active(s) &&
	       now_ms < s->rollout_started_ms + p->warmup_ms;
}

void eng_check(eng_state *s, const eng_policy *p, uint64_t now_ms,
               const eng_reading *readings, eng_output *out)
{
	eng_output_clear(out);
	if (!judging(s))
		return;
	if (eng_warming_up(s, p, now_ms)) {
		/* a canary's first seconds (cold caches, JIT, connection pools)
		 * are not what it will be: nothing is judged, nothing counts */
		char a[32], b[32];
		fmt_secs(a, sizeof a, now_ms > s->rollout_started_ms ? now_ms - s->rollout_started_ms : 0);
		fmt_secs(b, sizeof b, p->warmup_ms);
		s->next_check_ms = now_ms + p->interval_ms;
		eng_event *ev = emit(out, s, "check", AUTO_ACTOR,
		                     "check held at weight %d: warming up, %s of %s", s->weight, a, b);
		if (ev)
			ev->held = true;
		return;
	}
	add_hook(out, ENG_HOOK_ROLLOUT);
	int n = p->n_metrics < 0 ? 0 : p->n_metrics;
	if (n > ENG_MAX_METRICS)
		n = ENG_MAX_METRICS;
	eng_metric_result res[ENG_MAX_METRICS];
	int failed = 0, noted = 0, pending = 0, held = 0;
	char why[ENG_MSG_LEN] = "", notes[ENG_MSG_LEN] = "", holds[ENG_MSG_LEN] = "";
	for (int i = 0; i < n; i++) {
		if (p->judge == ENG_JUDGE_SEQUENTIAL && sequential_guard(p, i)) {
			/* tested on every tick by eng_observe, with its share of
			 * alpha, not against a window each interval */
			memset(&res[i], 0, sizeof res[i]);
			copy_str(res[i].name, sizeof res[i].name, p->metrics[i].name);
			res[i].passed = true;
			continue;
		}
		judge(p, &p->metrics[i], readings ? &readings[i] : NULL, now_ms,
		      &s->breach_since_ms[i], &res[i]);
		if (res[i].held) {
			bool few = res[i].has_value; /* has a value, on too few requests */
			append(holds, sizeof holds, "%s%s has %s%s", held ? "; " : "", res[i].name,
			       few ? "" : "no data: ", res[i].reason);
			held++;
		} else if (!res[i].passed) {
			append(why, sizeof why, "%s%s %s", failed ? "; " : "", res[i].name,
			       res[i].reason);
			failed++;
		} else if (res[i].reason[0]) {
			/* a breach forgiven (baseline) or not yet counted (pending) */
			append(notes, sizeof notes, "%s%s %s", noted ? "; " : "", res[i].name,
			       res[i].reason);
			noted++;
			pending += res[i].pending;
		}
	}
	s->next_check_ms = now_ms + p->interval_ms;
	/* a held check was not made: it does not count as an iteration */
	if (failed || !held)
		s->iterations++;
	int threshold = p->threshold > 0 ? p->threshold : 1;
	eng_event *ev;
	if (failed) {
		s->failed_checks++;
		ev = emit(out, s, "check", AUTO_ACTOR, "check failed (%d/%d): %s",
		          s->failed_checks, threshold, why);
	} else if (held) {
		ev = emit(out, s, "check", AUTO_ACTOR, "check held at weight %d: %s%s%s", s->weight,
		          holds, noted ? "; " : "", notes);
		if (ev)
			ev->held = true;
	} else {
		ev = pending ? emit(out, s, "check", AUTO_ACTOR,
		                    "check passed, holding weight %d (%s)", s->weight, notes)
		     : noted ? emit(out, s, "check", AUTO_ACTOR, "check passed (%s)", notes)
		             : emit(out, s, "check", AUTO_ACTOR, "check passed");
	}
	if (ev) {
		memcpy(ev->metrics, res, (size_t)n * sizeof res[0]);
		ev->n_metrics = n;
	}
	if (failed) {
		if (s->failed_checks >= threshold) {
			char msg[ENG_MSG_LEN];
			fmt(msg, sizeof msg, "canary failed %d checks, rolling back: %s",
			    s->failed_checks, why);
			analysis_failed(s, p, now_ms, out, msg);
		}
		return;
	}
	/* a breach that has not lasted failureDuration yet is not a failure,
	 * but no reason to send the canary more traffic either; nor is a
	 * metric that cannot say yet */
	if (pending || held)
		return;
	/* under the sequential judge the metrics are guards: the judge alone
	 * decides when there is enough evidence to step up */
	if (p->judge == ENG_JUDGE_SEQUENTIAL)
		return;
	if (iterations_mode(p)) {
		if (s->iterations >= p->iterations) {
			char msg[ENG_MSG_LEN];
			fmt(msg, sizeof msg, "canary analysis passed %d iterations", s->iterations);
			start_promoting(s, now_ms, out, AUTO_ACTOR, msg);
		}
		return;
	}
	step_up(s, p, now_ms, out, AUTO_ACTOR, "canary analysis completed", "");
}

/* ---- time ---- */

/* Does the evidence so far lean towards a worse canary? Under the
 * sequential judge: a rollback test's e-value above 1; under the
 * threshold judge: a failed check in this rollout. Says how in <why>. */
static bool leans_worse(const eng_state *s, const eng_policy *p, char *why, size_t n)
{
	if (p->judge == ENG_JUDGE_SEQUENTIAL) {
		if (!s->judge_started)
			return false;
		judge_summary j;
		judge_summarize(&s->judge, &j);
		if (j.lean_worse_e <= 1)
			return false;
		fmt(why, n, "the evidence on %s leans towards a worse canary (e = %.2g)",
		    j.lean_worse_test, j.lean_worse_e);
		return true;
	}
	if (s->failed_checks == 0)
		return false;
	fmt(why, n, "%d check%s failed in this rollout", s->failed_checks,
	    s->failed_checks == 1 ? "" : "s");
	return true;
}

/* maxDuration (engine.h, eng_tick): ends an analysis that has been running
 * (Progressing) since last_transition_ms for max_duration_ms. */
static void max_duration(eng_state *s, const eng_policy *p, uint64_t now_ms, eng_output *out)
{
	if (p->max_duration_ms == 0 || s->phase != ENG_PROGRESSING ||
	    now_ms < s->last_transition_ms || now_ms - s->last_transition_ms < p->max_duration_ms)
		return;
	char d[32], msg[ENG_MSG_LEN];
	util_format_duration(p->max_duration_ms, d, sizeof d);
	switch (p->on_max_duration) {
	case ENG_MAXDUR_ROLLBACK:
		fmt(msg, sizeof msg, "analysis undecided after %s (maxDuration): rolling back to %s",
		    d, s->stable_rev[0] ? s->stable_rev : "the stable revision");
		rollback_gradually(s, p, now_ms, out, msg);
		break;
	case ENG_MAXDUR_PROMOTE: {
		/* undecided is not the same as leaning worse: a canary whose
		 * evidence leans towards worse (a rollback e-value above 1, or
		 * a failed check) is paused for the operator, not promoted */
		char lean[ENG_MSG_LEN];
		if (leans_worse(s, p, lean, sizeof lean)) {
			s->manual_weight = false;
			set_phase(s, ENG_PAUSED, now_ms);
			emit(out, s, "max-duration", AUTO_ACTOR,
			     "analysis undecided after %s (maxDuration), but %s: paused at weight %d "
			     "instead of promoting; resume, promote or abort", d, lean, s->weight);
			break;
		}
		fmt(msg, sizeof msg, "analysis undecided after %s (maxDuration)", d);
		/* the promotion's own gates (approval, confirm-promotion) hold */
		eng_gate g = gate_of(s, p, MOVE_PROMOTE, 100);
		if (g != ENG_GATE_NONE)
			wait_at(s, p, now_ms, out, g, MOVE_PROMOTE, 100, msg);
		else
			start_promoting(s, now_ms, out, AUTO_ACTOR, msg);
		break;
	}
	default:
		/* the operator decides: resume (another maxDuration), promote or
		 * abort; the event reaches them through the event webhooks */
		s->manual_weight = false;
		set_phase(s, ENG_PAUSED, now_ms);
		emit(out, s, "max-duration", AUTO_ACTOR,
		     "analysis undecided after %s (maxDuration): paused at weight %d, "
		     "resume, promote or abort", d, s->weight);
		break;
	}
}

void eng_tick(eng_state *s, const eng_policy *p, uint64_t now_ms,
              bool canary_ready, eng_output *out)
{
	eng_output_clear(out);
	if (s->phase == ENG_PROMOTING) {
		if (now_ms < s->last_transition_ms + p->interval_ms)
			return;
		/* the replaced stable may come back (undo) for undo_window_ms */
		copy_str(s->prev_stable_rev, sizeof s->prev_stable_rev, s->stable_rev);
		s->undo_until_ms = p->undo_window_ms ? now_ms + p->undo_window_ms : 0;
		copy_str(s->stable_rev, sizeof s->stable_rev, s->canary_rev);
		/* the driver moves the canary's endpoints into the stable set, so
		 * the (now empty) canary set gets nothing */
		s->weight = 0;
		leave_analysis(s);
		set_phase(s, ENG_SUCCEEDED, now_ms);
		out->promote = true;
		add_hook(out, ENG_HOOK_POST_ROLLOUT);
		emit(out, s, "succeeded", AUTO_ACTOR,
		     "promotion completed, %s is now the stable revision", s->stable_rev);
		return;
	}
	if (s->phase == ENG_ROLLING_BACK) {
		if (now_ms < s->next_check_ms)
			return;
		int step = p->rollback_step_weight > 0 ? p->rollback_step_weight : 100;
		if (s->weight <= step) {
			s->weight = 0;
			set_phase(s, ENG_FAILED, now_ms);
			add_hook(out, ENG_HOOK_ROLLBACK);
			emit(out, s, "weight", AUTO_ACTOR, "rollback complete: 100%% to %s",
			     s->stable_rev[0] ? s->stable_rev : "stable");
			return;
		}
		int before = s->weight;
		s->weight -= step;
		s->next_check_ms = now_ms + p->interval_ms;
		emit(out, s, "weight", AUTO_ACTOR, "rolling back: canary weight %d -> %d", before,
		     s->weight);
		return;
	}
	if (!analysing(s))
		return;
	if (s->phase == ENG_PAUSED && s->step_paused && s->pause_until_ms &&
	    now_ms >= s->pause_until_ms) {
		char d[32], why[ENG_MSG_LEN];
		fmt_secs(d, sizeof d, p->steps[s->step >= 0 && s->step < ENG_MAX_STEPS ? s->step : 0]
		                          .pause_ms);
		fmt(why, sizeof why, "step %d/%d: pause of %s ended", s->step + 1, p->n_steps, d);
		s->step_paused = false;
		s->pause_until_ms = 0;
		s->next_check_ms = now_ms + p->interval_ms;
		set_phase(s, ENG_PROGRESSING, now_ms);
		emit(out, s, "resumed", AUTO_ACTOR, "%s at weight %d", why, s->weight);
		advance(s, p, now_ms, out, AUTO_ACTOR, why, "", false);
		return;
	}
	if (canary_ready) {
		if (s->unready_since_ms != 0) {
			s->unready_since_ms = 0;
			out->changed = true;
		}
		max_duration(s, p, now_ms, out);
		return;
	}
	char dl[32];
	fmt_secs(dl, sizeof dl, p->progress_deadline_ms);
	if (s->unready_since_ms == 0) {
		/* 0 means ready: a clock at the epoch still marks unreadiness */
		s->unready_since_ms = now_ms ? now_ms : 1;
		emit(out, s, "not-ready", AUTO_ACTOR,
		     "canary %s not ready, rolling back in %s unless it becomes ready",
		     s->canary_rev, dl);
	}
	if (now_ms >= s->unready_since_ms &&
	    now_ms - s->unready_since_ms >= p->progress_deadline_ms) {
		char msg[ENG_MSG_LEN];
		fmt(msg, sizeof msg, "canary not ready for %s (progressDeadlineSeconds)", dl);
		rollback(s, now_ms, out, AUTO_ACTOR, msg);
		return;
	}
	max_duration(s, p, now_ms, out);
}

/* ---- operator commands ---- */

static int fail(char *err, size_t errlen, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *f, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, f);
		vfmt(err, errlen, f, ap);
		va_end(ap);
	}
	return -1;
}

/* Checks that <cmd> can apply to <s> at <now_ms>, without touching
 * anything, so that a refused command leaves state and output as they
 * were. Returns 0, -1 (refused, <err>) or 1 (nothing to do, <err> says
 * why: pause and resume are idempotent). */
static int validate(const eng_state *s, const eng_policy *p, uint64_t now_ms,
                    const eng_cmd *cmd, char *err, size_t errlen)
{
	const char *ph = eng_phase_name(s->phase);
	switch (cmd->kind) {
	case ENG_CMD_ROLLOUT: {
		const char *rev = cmd->revision;
		if (!rev || !rev[0])
			return fail(err, errlen, "revision must not be empty");
		if (strlen(rev) >= ENG_REV_LEN)
			return fail(err, errlen, "revision '%.20s...' is too long (at most %d characters)",
			            rev, ENG_REV_LEN - 1);
		if (strcmp(rev, s->stable_rev) == 0)
			return fail(err, errlen, "revision '%s' is already stable", rev);
		return 0;
	}
	case ENG_CMD_RETRY:
		if (s->phase != ENG_FAILED || !s->canary_rev[0])
			return fail(err, errlen, "nothing to retry: the last rollout did not fail "
			            "(phase %s)", ph);
		if (strcmp(s->canary_rev, s->stable_rev) == 0)
			return fail(err, errlen, "revision '%s' is stable now: nothing to retry",
			            s->canary_rev);
		return 0;
	case ENG_CMD_UNDO:
		if (s->phase != ENG_SUCCEEDED || !s->prev_stable_rev[0])
			return fail(err, errlen, "nothing to undo: no promotion is the last thing that "
			            "happened (phase %s)", ph);
		if (s->undo_until_ms == 0 || now_ms >= s->undo_until_ms)
			return fail(err, errlen, "the undo window of the promotion of '%s' has passed "
			            "(analysis.undoWindow); roll out '%s' again instead", s->stable_rev,
			            s->prev_stable_rev);
		return 0;
	case ENG_CMD_SET_WEIGHT:
		if (cmd->weight < 0 || cmd->weight > 100)
			return fail(err, errlen, "weight must be 0..100, not %d", cmd->weight);
		break;
	case ENG_CMD_PROMOTE:
	case ENG_CMD_PROMOTE_FULL:
	case ENG_CMD_ABORT:
	case ENG_CMD_FAIL:
	case ENG_CMD_PAUSE:
	case ENG_CMD_RESUME:
	case ENG_CMD_APPROVE:
		break;
	default:
		return fail(err, errlen, "unknown command %d", (int)cmd->kind);
	}
	if (!eng_active(s))
		return fail(err, errlen, "no rollout in progress (phase %s)", ph);
	if (s->phase == ENG_ROLLING_BACK && cmd->kind != ENG_CMD_ABORT && cmd->kind != ENG_CMD_FAIL)
		return fail(err, errlen, "revision '%s' is rolling back (weight %d, down by "
		            "rollbackStepWeight each interval): abort sends 100%% to stable now",
		            s->canary_rev, s->weight);
	switch (cmd->kind) {
	case ENG_CMD_PROMOTE:
	case ENG_CMD_PROMOTE_FULL:
		if (s->phase == ENG_PROMOTING)
			return fail(err, errlen, "revision '%s' is already promoting", s->canary_rev);
		break;
	case ENG_CMD_PAUSE:
		if (s->phase == ENG_PAUSED && !(s->step_paused && s->pause_until_ms)) {
			fail(err, errlen, "already paused at weight %d", s->weight);
			return 1;
		}
		if (s->phase == ENG_PROMOTING)
			return fail(err, errlen, "cannot pause: revision '%s' is promoting", s->canary_rev);
		if (s->phase == ENG_WAITING)
			return fail(err, errlen, "cannot pause: the rollout waits for its "
			            "confirm-rollout webhooks; abort it, or approve it to start");
		break;
	case ENG_CMD_RESUME:
		if (s->phase == ENG_PROGRESSING || s->phase == ENG_WAITING_PROMOTION ||
		    s->phase == ENG_WAITING) {
			fail(err, errlen, "not paused: already %s at weight %d", ph, s->weight);
			return 1;
		}
		if (s->phase != ENG_PAUSED)
			return fail(err, errlen, "not paused (phase %s)", ph);
		break;
	case ENG_CMD_SET_WEIGHT:
		if (s->phase == ENG_PROMOTING)
			return fail(err, errlen, "cannot set the weight: revision '%s' is promoting",
			            s->canary_rev);
		break;
	case ENG_CMD_APPROVE:
		if (s->waiting == ENG_GATE_NONE && !(s->phase == ENG_PAUSED && s->step_paused))
			return fail(err, errlen, "no gate is waiting for approval (phase %s)", ph);
		break;
	default:
		break;
	}
	(void)p;
	return 0;
}

/* The promoted revision is the canary that failed now: 100% back to the
 * previous stable (the driver swaps the endpoint sets back, out->undo). */
static void undo(eng_state *s, uint64_t now_ms, eng_output *out, const char *actor,
                 const char *why)
{
	char bad[ENG_REV_LEN];
	copy_str(bad, sizeof bad, s->stable_rev);
	copy_str(s->stable_rev, sizeof s->stable_rev, s->prev_stable_rev);
	copy_str(s->canary_rev, sizeof s->canary_rev, bad);
	s->prev_stable_rev[0] = '\0';
	s->undo_until_ms = 0;
	s->watch_until_ms = 0;
	s->weight = 0;
	leave_analysis(s);
	set_phase(s, ENG_FAILED, now_ms);
	out->undo = true;
	add_hook(out, ENG_HOOK_ROLLBACK);
	emit(out, s, "undo", actor, "promotion of %s %s: 100%% back to %s", bad, why,
	     s->stable_rev);
}

/* " (reason: ...)" for an audit message, or "" without a reason. */
static void reason_suffix(char *dst, size_t n, const char *reason)
{
	if (reason && reason[0])
		fmt(dst, n, " (reason: %s)", reason);
	else
		dst[0] = '\0';
}

static void cmd_rollout(eng_state *s, const eng_policy *p, uint64_t now_ms,
                        const char *rev, eng_output *out, const char *actor, const char *how)
{
	char old[ENG_REV_LEN] = "";
	if (eng_active(s))
		copy_str(old, sizeof old, s->canary_rev);
	copy_str(s->canary_rev, sizeof s->canary_rev, rev);
	leave_analysis(s);
	s->failed_checks = 0;
	s->iterations = 0;
	s->rollout_started_ms = now_ms;
	s->judge_started = false;
	s->judge_held = false;
	s->step = -1;
	s->approved = false;
	s->aborted = false;
	s->prev_stable_rev[0] = '\0';
	s->undo_until_ms = 0;
	s->watch_until_ms = 0;
	s->next_check_ms = now_ms + p->interval_ms;
	/* a replaced rollout is a new transition even though the phase stays */
	s->phase = p->gate_rollout ? ENG_WAITING : ENG_PROGRESSING;
	s->last_transition_ms = now_ms;
	if (how)
		emit(out, s, "rollout-started", actor, "%s, starting canary analysis of %s again",
		     how, rev);
	else if (old[0])
		emit(out, s, "rollout-started", actor,
		     "new revision %s detected, starting canary analysis (replacing the rollout of %s)",
		     rev, old);
	else
		emit(out, s, "rollout-started", actor,
		     "new revision %s detected, starting canary analysis", rev);
	if (p->gate_rollout) {
		/* Flagger's confirm-rollout: nothing starts, the canary gets no
		 * traffic, until its webhooks pass (or an operator approves) */
		int before = s->weight;
		s->weight = 0;
		s->waiting = ENG_GATE_ROLLOUT;
		set_phase(s, ENG_WAITING, now_ms);
		emit(out, s, "waiting", AUTO_ACTOR, "waiting for the confirm-rollout webhooks before "
		     "starting the analysis of %s%s", rev, before ? ", canary weight -> 0" : "");
		return;
	}
	begin_analysis(s, p, now_ms, out, actor);
}

int eng_command(eng_state *s, const eng_policy *p, uint64_t now_ms,
                const eng_cmd *cmd, eng_output *out, char *err, size_t errlen)
{
	if (!cmd)
		return fail(err, errlen, "no command");
	int v = validate(s, p, now_ms, cmd, err, errlen);
	if (v != 0)
		return v;
	const char *actor = cmd->actor && cmd->actor[0] ? cmd->actor : "unknown";
	eng_output_clear(out);
	out->changed = true;
	char text[ENG_MSG_LEN], why[ENG_MSG_LEN], rs[ENG_MSG_LEN];
	reason_suffix(rs, sizeof rs, cmd->reason);
	switch (cmd->kind) {
	case ENG_CMD_ROLLOUT:
		cmd_rollout(s, p, now_ms, cmd->revision, out, actor, NULL);
		break;
	case ENG_CMD_RETRY: {
		char rev[ENG_REV_LEN], how[ENG_MSG_LEN];
		copy_str(rev, sizeof rev, s->canary_rev);
		fmt(how, sizeof how, "retry by %s%s", actor, rs);
		cmd_rollout(s, p, now_ms, rev, out, actor, how);
		break;
	}
	case ENG_CMD_UNDO:
		s->aborted = true;
		fmt(why, sizeof why, "undone by %s%s", actor, rs);
		undo(s, now_ms, out, actor, why);
		break;
	case ENG_CMD_PROMOTE:
		/* passes the current pause or gate: the next move, whatever
		 * the gates say */
		s->manual_weight = false;
		s->failure_paused = false;
		s->next_check_ms = now_ms + p->interval_ms;
		if (s->phase == ENG_WAITING) {
			emit(out, s, "manual", actor, "promoted by %s%s: confirm-rollout passed by hand",
			     actor, rs);
			begin_analysis(s, p, now_ms, out, actor);
			break;
		}
		fmt(text, sizeof text, " (promoted by %s%s)", actor, rs);
		fmt(why, sizeof why, "promoted by %s%s at the last step", actor, rs);
		advance(s, p, now_ms, out, actor, why, text, true);
		break;
	case ENG_CMD_PROMOTE_FULL:
		fmt(text, sizeof text, "full promotion by %s%s, skipping the remaining steps", actor,
		    rs);
		start_promoting(s, now_ms, out, actor, text);
		break;
	case ENG_CMD_ABORT:
		s->aborted = true;
		leave_analysis(s);
		s->weight = 0;
		set_phase(s, ENG_FAILED, now_ms);
		add_hook(out, ENG_HOOK_ROLLBACK);
		emit(out, s, "abort", actor, "aborted by %s%s, rolling back to %s", actor, rs,
		     s->stable_rev[0] ? s->stable_rev : "the stable revision");
		break;
	case ENG_CMD_FAIL:
		fmt(text, sizeof text, "%s: rolling back to %s", cmd->reason ? cmd->reason : actor,
		    s->stable_rev[0] ? s->stable_rev : "the stable revision");
		rollback(s, now_ms, out, actor, text);
		break;
	case ENG_CMD_PAUSE:
		s->manual_weight = false;
		if (s->phase == ENG_PAUSED) {
			/* a timed pause step becomes an operator's pause */
			s->pause_until_ms = 0;
			emit(out, s, "paused", actor, "paused by %s%s at weight %d: the step's pause "
			     "now waits for resume", actor, rs, s->weight);
			break;
		}
		s->waiting = ENG_GATE_NONE;
		set_phase(s, ENG_PAUSED, now_ms);
		emit(out, s, "paused", actor, "paused by %s%s at weight %d", actor, rs, s->weight);
		break;
	case ENG_CMD_RESUME:
		s->manual_weight = false;
		/* no checks were made while paused: a breach is not known to have
		 * lasted through the pause */
		memset(s->breach_since_ms, 0, sizeof s->breach_since_ms);
		s->next_check_ms = now_ms + p->interval_ms;
		if (s->failure_paused) {
			/* the operator overrules the failure: the judge starts afresh
			 * (its verdict stands for the evidence it had) */
			s->failure_paused = false;
			s->judge_started = false;
		}
		set_phase(s, ENG_PROGRESSING, now_ms);
		emit(out, s, "resumed", actor, "resumed by %s%s at weight %d", actor, rs, s->weight);
		if (s->step_paused) {
			fmt(why, sizeof why, "step %d/%d: pause ended by %s", s->step + 1, p->n_steps,
			    actor);
			advance(s, p, now_ms, out, actor, why, "", false);
		}
		break;
	case ENG_CMD_SET_WEIGHT: {
		int before = s->weight;
		s->weight = cmd->weight;
		s->manual_weight = true;
		s->waiting = ENG_GATE_NONE;
		set_phase(s, ENG_PAUSED, now_ms);
		emit(out, s, "manual", actor, "canary weight set %d -> %d by %s%s, analysis paused",
		     before, s->weight, actor, rs);
		break;
	}
	case ENG_CMD_APPROVE: {
		eng_gate g = s->waiting;
		if (g == ENG_GATE_APPROVAL)
			fmt(why, sizeof why, "approved by %s%s", actor, rs);
		else if (g == ENG_GATE_NONE)
			fmt(why, sizeof why, "step %d/%d: pause ended, approved by %s%s", s->step + 1,
			    p->n_steps, actor, rs);
		else
			fmt(why, sizeof why, "%s gate passed by hand, approved by %s%s",
			    eng_gate_name(g), actor, rs);
		emit(out, s, "approved", actor, "%s at weight %d", why, s->weight);
		s->next_check_ms = now_ms + p->interval_ms;
		if (g == ENG_GATE_ROLLOUT) {
			begin_analysis(s, p, now_ms, out, actor);
			break;
		}
		if (g == ENG_GATE_APPROVAL)
			s->approved = true;
		else if (g != ENG_GATE_NONE)
			s->gate_ok |= 1u << g;
		s->waiting = ENG_GATE_NONE;
		s->step_paused = false;
		s->pause_until_ms = 0;
		set_phase(s, ENG_PROGRESSING, now_ms);
		advance(s, p, now_ms, out, actor, why, "", false);
		break;
	}
	}
	return 0;
}

void eng_gate_answer(eng_state *s, const eng_policy *p, uint64_t now_ms, eng_gate g,
                     bool ok, const char *reason, eng_output *out)
{
	eng_output_clear(out);
	if (g == ENG_GATE_NONE || g == ENG_GATE_APPROVAL || s->waiting != g)
		return;
	if (!ok) {
		char r[sizeof s->gate_reason];
		copy_str(r, sizeof r, reason && reason[0] ? reason : "did not pass");
		if (strcmp(r, s->gate_reason) != 0) {
			/* what it waits on, in the status: a gate that cannot be
			 * reached is a state, not a silent pass */
			copy_str(s->gate_reason, sizeof s->gate_reason, r);
			fmt(s->message, sizeof s->message, "waiting for the %s webhooks: %s",
			    eng_gate_name(g), r);
			out->changed = true;
		}
		return;
	}
	char why[ENG_MSG_LEN];
	fmt(why, sizeof why, "%s webhooks passed", eng_gate_name(g));
	s->gate_reason[0] = '\0';
	if (g == ENG_GATE_ROLLOUT) {
		emit(out, s, "gate", AUTO_ACTOR, "%s", why);
		begin_analysis(s, p, now_ms, out, AUTO_ACTOR);
		return;
	}
	s->gate_ok |= 1u << g;
	s->waiting = ENG_GATE_NONE;
	if (s->phase == ENG_WAITING_PROMOTION)
		set_phase(s, ENG_PROGRESSING, now_ms);
	int before = s->weight;
	advance(s, p, now_ms, out, AUTO_ACTOR, why, " (" "gate passed)", false);
	if (s->weight != before) {
		s->next_check_ms = now_ms + p->interval_ms;
		if (s->judge_started) {
			judge_step(&s->judge);
			s->judge_weight = s->weight;
		}
	}
}

/* ---- the sequential judge ---- */

/* The judge's parameters from the policy; judge_init replaces bad ones
 * with its defaults. */
static void judge_params_of(const eng_policy *p, judge_params *jp)
{
	judge_params_defaults(jp);
	if (p->alpha > 0)
		jp->alpha = p->alpha;
	jp->min_samples = p->min_samples;
	if (p->judge_margin > 0)
		jp->margin = p->judge_margin;
	if (p->judge_error_ratio > 0)
		jp->error_ratio = p->judge_error_ratio;
	jp->latency_ratio = p->judge_latency_ratio;
	if (p->judge_latency_quantile > 0)
		jp->latency_quantile = p->judge_latency_quantile;
}

/* "p = 0.0021" or, below what the e-value can show, "p < 1e-06". */
static void fmt_p(char *dst, size_t n, double pv)
{
	if (pv < 1e-6)
		fmt(dst, n, "p < 1e-06");
	else
		fmt(dst, n, "p = %.2g", pv);
}

/* The rate a guard bounds, from a built-in metric's fixed threshold (a
 * share of the canary's requests: failed, or slower than the bound), or
 * -1 when the metric is not a guard the judge can test (config.c refuses
 * those under the sequential judge). */
static double guard_bound(const eng_metric *m, double quantile)
{
	if (m->relative || m->baseline_window_ms || m->failure_duration_ms)
		return -1;
	switch (m->kind) {
	case ENG_M_ERROR_RATE:
		return m->has_max && !m->has_min ? m->max / 100 : -1;
	case ENG_M_SUCCESS_RATE:
		return m->has_min && !m->has_max ? 1 - m->min / 100 : -1;
	case ENG_M_DURATION:
		return m->has_max && !m->has_min && m->max > 0 ? 1 - quantile : -1;
	case ENG_M_CUSTOM:
		break;
	}
	return -1;
}

static bool sequential_guard(const eng_policy *p, int i)
{
	double b = guard_bound(&p->metrics[i], p->judge_latency_quantile > 0 ?
	                                           p->judge_latency_quantile : 0.99);
	return b > 0 && b < 1;
}

/* What guard metric <m> counts as beyond its bound in <c>: failures, or
 * canary requests whose whole bucket is slower than the bound (so a
 * bucket straddling it is never counted against the canary). */
static uint64_t guard_count(const eng_metric *m, const eng_counts *c)
{
	if (m->kind != ENG_M_DURATION)
		return c->canary_errors;
	if (!c->canary_latency)
		return 0;
	uint64_t x = 0;
	double bound_us = m->max * 1000;
	for (int b = 0; b < STATS_BUCKETS; b++) {
		uint64_t lo, hi;
		stats_bucket_bounds(b, &lo, &hi);
		if ((double)lo >= bound_us)
			x += c->canary_latency->hist[b];
	}
	return x;
}

static void judge_start(eng_state *s, const eng_policy *p)
{
	judge_params jp;
	judge_params_of(p, &jp);
	judge_init(&s->judge, &jp);
	s->judge_started = true;
	s->judge_weight = s->weight;
	s->judge_held = false;
	int n = p->n_metrics < ENG_MAX_METRICS ? p->n_metrics : ENG_MAX_METRICS;
	for (int i = 0; i < n; i++) {
		double b = guard_bound(&p->metrics[i], s->judge.p.latency_quantile);
		if (b > 0 && b < 1) {
			int g = judge_add_guard(&s->judge, b);
			if (g >= 0)
				s->judge_guard_metric[g] = i;
		}
	}
}

void eng_observe(eng_state *s, const eng_policy *p, uint64_t now_ms,
                 const eng_counts *c, eng_output *out)
{
	eng_output_clear(out);
	if (p->judge != ENG_JUDGE_SEQUENTIAL || !judging(s) || !c)
		return;
	if (!s->judge_started) {
		judge_start(s, p);
	} else if (s->judge_weight != s->weight) {
		/* stepped up by a check, a command or this judge: min_samples
		 * counts afresh from here */
		judge_step(&s->judge);
		s->judge_weight = s->weight;
	}
	/* the canary's warm-up is not evidence either way: each look moves
	 * the origin, and judging starts from where the warm-up ended */
	if (p->warmup_ms && now_ms < s->rollout_started_ms + p->warmup_ms) {
		judge_origin(&s->judge, c->canary_requests, c->canary_errors,
		             c->stable_requests, c->stable_errors, c->canary_latency,
		             c->stable_latency);
		for (int g = 0; g < s->judge.n_guards; g++) {
			const eng_metric *m = &p->metrics[s->judge_guard_metric[g]];
			judge_guard_look(&s->judge, g, c->canary_requests, guard_count(m, c), NULL);
		}
		return;
	}
	judge_evidence ev, lev;
	judge_verdict ve = judge_errors(&s->judge, c->canary_requests, c->canary_errors,
	                                c->stable_requests, c->stable_errors, &ev);
	judge_verdict vl = JUDGE_CONTINUE;
	if (c->canary_latency && c->stable_latency)
		vl = judge_latency(&s->judge, c->canary_latency, c->stable_latency, &lev);
	int worse_guard = -1;
	double guard_e = 0;
	for (int g = 0; g < s->judge.n_guards; g++) {
		const eng_metric *m = &p->metrics[s->judge_guard_metric[g]];
		double e;
		if (judge_guard_look(&s->judge, g, c->canary_requests, guard_count(m, c), &e) ==
		        JUDGE_WORSE &&
		    worse_guard < 0) {
			worse_guard = g;
			guard_e = e;
		}
	}
	judge_verdict v = judge_combine(ve, vl);
	if (worse_guard >= 0)
		v = JUDGE_WORSE;
	char pv[32], msg[ENG_MSG_LEN];
	if (v == JUDGE_WORSE) {
		if (ve == JUDGE_WORSE) {
			fmt_p(pv, sizeof pv, ev.p_value);
			fmt(msg, sizeof msg,
			    "sequential test: canary error rate %.2f%% vs stable %.2f%% "
			    "(%llu vs %llu requests), above the margin %.2f%%, %s < %g, rolling back",
			    100 * ev.canary_rate, 100 * ev.stable_rate,
			    (unsigned long long)ev.canary_n, (unsigned long long)ev.stable_n,
			    100 * ev.margin_rate, pv, s->judge.alpha_errors);
		} else if (vl == JUDGE_WORSE) {
			fmt_p(pv, sizeof pv, lev.p_value);
			fmt(msg, sizeof msg,
			    "sequential test: canary latency p%g %.1f ms vs stable %.1f ms: "
			    "%.2f%% of canary requests beyond x%g stable's, %.2f%% of stable's "
			    "(%llu vs %llu requests), %s < %g, rolling back",
			    100 * s->judge.p.latency_quantile,
			    stats_quantile_ms(c->canary_latency, s->judge.p.latency_quantile),
			    stats_quantile_ms(c->stable_latency, s->judge.p.latency_quantile),
			    100 * lev.canary_exceed, s->judge.p.latency_ratio, 100 * lev.stable_exceed,
			    (unsigned long long)lev.canary_n, (unsigned long long)lev.stable_n, pv,
			    s->judge.alpha_latency);
		} else {
			const judge_guard *g = &s->judge.guards[worse_guard];
			fmt(msg, sizeof msg,
			    "sequential guard %s: %.2f%% of canary requests beyond its threshold, "
			    "more than %.2f%% (%llu requests), p <= %.2g < %g, rolling back",
			    p->metrics[s->judge_guard_metric[worse_guard]].name,
			    g->n ? 100.0 * (double)g->x / (double)g->n : 0, 100 * g->bound,
			    (unsigned long long)g->n, guard_e > 1 ? 1 / guard_e : 1, g->alpha);
		}
		analysis_failed(s, p, now_ms, out, msg);
		return;
	}
	if (ev.held != s->judge_held) {
		s->judge_held = ev.held;
		out->changed = true;
		if (ev.held)
			emit(out, s, "check", AUTO_ACTOR,
			     "holding weight %d: stable's error rate %.2f%% over its last seconds "
			     "departs from its baseline %.2f%%; the judge waits for it to return",
			     s->weight, 100 * ev.recent_rate, 100 * ev.baseline_rate);
		else
			emit(out, s, "check", AUTO_ACTOR,
			     "stable's error rate is back to its baseline %.2f%%: judging resumes",
			     100 * ev.baseline_rate);
	}
	if (v != JUDGE_NONINFERIOR && v != JUDGE_ADVANCE)
		return;
	int next_w = 0;
	uint64_t pause_ms = 0;
	bool last = next_move(s, p, &next_w, &pause_ms) == MOVE_PROMOTE;
	if (v == JUDGE_ADVANCE && last)
		return; /* promotion needs the confidence of NONINFERIOR */
	if (v == JUDGE_NONINFERIOR)
		fmt(msg, sizeof msg,
		    "sequential test: canary error rate %.2f%% vs stable %.2f%%, within the "
		    "margin %.2f%% with %g%% confidence after %llu canary requests in this step",
		    100 * ev.canary_rate, 100 * ev.stable_rate, 100 * ev.margin_rate,
		    100 * (1 - s->judge.p.alpha), (unsigned long long)ev.step_canary_n);
	else
		fmt(msg, sizeof msg,
		    "sequential test: canary error rate %.2f%% vs stable %.2f%%, leaning within "
		    "the margin %.2f%% (e = %.1f) after %llu canary requests in this step",
		    100 * ev.canary_rate, 100 * ev.stable_rate, 100 * ev.margin_rate,
		    ev.ni_e_value, (unsigned long long)ev.step_canary_n);
	char suffix[ENG_MSG_LEN];
	fmt(suffix, sizeof suffix, " (%s)", msg);
	int before = s->weight, before_step = s->step;
	step_up(s, p, now_ms, out, AUTO_ACTOR, msg, suffix);
	if (s->weight != before || s->step != before_step) {
		/* moved (not held at a gate): the checks and the judge count
		 * this step afresh */
		s->next_check_ms = now_ms + p->interval_ms;
		judge_step(&s->judge);
		s->judge_weight = s->weight;
	}
}

/* ---- after the promotion ---- */

/* Requests in <h> whose whole bucket is slower than <bound_ms>. */
static uint64_t slower_than(const stats_summary *h, double bound_ms)
{
	uint64_t x = 0;
	for (int b = 0; h && b < STATS_BUCKETS; b++) {
		uint64_t lo, hi;
		stats_bucket_bounds(b, &lo, &hi);
		if ((double)lo >= bound_ms * 1000)
			x += h->hist[b];
	}
	return x;
}

/* The watch's two tests from the persisted baseline (again after a
 * restart, which does not keep the judge: the evidence starts afresh). */
static void watch_tests(eng_state *s, const eng_policy *p)
{
	judge_params jp;
	judge_params_of(p, &jp);
	/* the two tests are the whole promise here: give them all of alpha */
	jp.alpha = p->alpha / JUDGE_GUARDS_SHARE < 0.49 ? p->alpha / JUDGE_GUARDS_SHARE : 0.49;
	judge_init(&s->judge, &jp);
	s->judge_started = false; /* not the analysis' judge */
	double bound = s->watch_base_rate + jp.margin;
	if (s->watch_base_rate * jp.error_ratio > bound)
		bound = s->watch_base_rate * jp.error_ratio;
	judge_add_guard(&s->judge, bound < 0.99 ? bound : 0.99);
	if (s->watch_base_ms > 0 && jp.latency_ratio > 0)
		judge_add_guard(&s->judge, 1 - jp.latency_quantile);
}

void eng_watch_start(eng_state *s, const eng_policy *p, uint64_t now_ms,
                     const eng_counts *old)
{
	if (p->post_promotion_ms == 0 || s->phase != ENG_SUCCEEDED || !s->prev_stable_rev[0] ||
	    !old)
		return;
	double n = (double)old->stable_requests;
	/* a baseline from few requests leans on a prior rate of 0.5 % */
	s->watch_base_rate = ((double)old->stable_errors + 0.5) / (n + 100);
	judge_params jp;
	judge_params_of(p, &jp);
	s->watch_base_ms = old->stable_latency && old->stable_latency->total
	                   ? stats_quantile_ms(old->stable_latency, jp.latency_quantile) : 0;
	s->watch_until_ms = now_ms + p->post_promotion_ms;
	watch_tests(s, p);
}

void eng_watch(eng_state *s, const eng_policy *p, uint64_t now_ms, const eng_counts *c,
               eng_output *out)
{
	eng_output_clear(out);
	if (s->watch_until_ms == 0 || s->phase != ENG_SUCCEEDED || !c)
		return;
	if (s->judge.n_guards == 0 || s->judge_started)
		watch_tests(s, p); /* restarted: the judge is not kept */
	char d[32];
	util_format_duration(p->post_promotion_ms, d, sizeof d);
	double e = 0;
	if (judge_guard_look(&s->judge, 0, c->stable_requests, c->stable_errors, &e) ==
	    JUDGE_WORSE) {
		const judge_guard *g = &s->judge.guards[0];
		char why[ENG_MSG_LEN];
		fmt(why, sizeof why, "undone by the post-promotion analysis: error rate %.2f%% "
		    "(%llu requests), above %.2f%% (the previous stable's %.2f%% and the margin), "
		    "p <= %.2g < %g", g->n ? 100.0 * (double)g->x / (double)g->n : 0,
		    (unsigned long long)g->n, 100 * g->bound, 100 * s->watch_base_rate,
		    e > 1 ? 1 / e : 1, g->alpha);
		undo(s, now_ms, out, AUTO_ACTOR, why);
		return;
	}
	if (s->judge.n_guards > 1) {
		double ratio = s->judge.p.latency_ratio;
		uint64_t slow = slower_than(c->stable_latency, ratio * s->watch_base_ms);
		if (judge_guard_look(&s->judge, 1, c->stable_requests, slow, &e) == JUDGE_WORSE) {
			const judge_guard *g = &s->judge.guards[1];
			char why[ENG_MSG_LEN];
			fmt(why, sizeof why, "undone by the post-promotion analysis: %.2f%% of "
			    "requests slower than %.1f ms (x%g the previous stable's p%g), more than "
			    "%.2f%% (%llu requests), p <= %.2g < %g",
			    g->n ? 100.0 * (double)g->x / (double)g->n : 0, ratio * s->watch_base_ms,
			    ratio, 100 * s->judge.p.latency_quantile, 100 * g->bound,
			    (unsigned long long)g->n, e > 1 ? 1 / e : 1, g->alpha);
			undo(s, now_ms, out, AUTO_ACTOR, why);
			return;
		}
	}
	if (now_ms >= s->watch_until_ms) {
		s->watch_until_ms = 0;
		emit(out, s, "succeeded", AUTO_ACTOR, "post-promotion analysis passed after %s: %s "
		     "stays stable", d, s->stable_rev);
	}
}
