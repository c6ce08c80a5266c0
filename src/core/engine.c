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
	[ENG_WAITING_APPROVAL] = "WaitingApproval",
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
	return -1;
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

/* The weight a new rollout starts at. In iterations mode the canary gets
 * max_weight only when that is an explicit split below 100 (A/B with a
 * fixed share); otherwise it gets no weighted traffic during the analysis. */
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

/* One step up from a passed check or a promote command: the next weight,
 * or Promoting from the top (and at once in iterations mode, which has no
 * steps). <suffix> ends the weight event's message. */
static void step_up(eng_state *s, const eng_policy *p, uint64_t now_ms,
                    eng_output *out, const char *actor, const char *why,
                    const char *suffix)
{
	int next = iterations_mode(p) ? -1 : next_step(p, s->weight);
	if (next < 0) {
		start_promoting(s, now_ms, out, actor, why);
		return;
	}
	int before = s->weight;
	s->weight = next;
	set_phase(s, ENG_PROGRESSING, now_ms);
	emit(out, s, "weight", actor, "advance canary weight %d -> %d%s", before, next,
	     suffix);
}

/* ---- state ---- */

void eng_state_init(eng_state *s, const char *stable_rev, uint64_t now_ms)
{
	memset(s, 0, sizeof *s);
	s->phase = ENG_INITIALIZED;
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
	       s->phase == ENG_WAITING_APPROVAL || s->phase == ENG_PROMOTING;
}

/* A rollout that is still being analysed (not yet handed over). */
static bool analysing(const eng_state *s)
{
	return s->phase == ENG_PROGRESSING || s->phase == ENG_PAUSED ||
	       s->phase == ENG_WAITING_APPROVAL;
}

bool eng_check_due(const eng_state *s, const eng_policy *p, uint64_t now_ms)
{
	return s->phase == ENG_PROGRESSING && now_ms >= s->next_check_ms;
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
	if (s->phase != ENG_PROGRESSING)
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
			rollback(s, now_ms, out, AUTO_ACTOR, msg);
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
		rollback(s, now_ms, out, AUTO_ACTOR, msg);
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
	if (!analysing(s))
		return;
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

/* Checks that <cmd> can apply to <s>, without touching anything, so that a
 * refused command leaves state and output as they were. */
static int validate(const eng_state *s, const eng_cmd *cmd, char *err, size_t errlen)
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
	case ENG_CMD_SET_WEIGHT:
		if (cmd->weight < 0 || cmd->weight > 100)
			return fail(err, errlen, "weight must be 0..100, not %d", cmd->weight);
		break;
	case ENG_CMD_PROMOTE:
	case ENG_CMD_PROMOTE_FULL:
	case ENG_CMD_ABORT:
	case ENG_CMD_PAUSE:
	case ENG_CMD_RESUME:
	case ENG_CMD_APPROVE:
		break;
	default:
		return fail(err, errlen, "unknown command %d", (int)cmd->kind);
	}
	if (!eng_active(s))
		return fail(err, errlen, "no rollout in progress (phase %s)", ph);
	switch (cmd->kind) {
	case ENG_CMD_PROMOTE:
	case ENG_CMD_PROMOTE_FULL:
		if (s->phase == ENG_PROMOTING)
			return fail(err, errlen, "revision '%s' is already promoting", s->canary_rev);
		break;
	case ENG_CMD_PAUSE:
		if (s->phase == ENG_PAUSED)
			return fail(err, errlen, "already paused");
		if (s->phase == ENG_PROMOTING)
			return fail(err, errlen, "cannot pause: revision '%s' is promoting", s->canary_rev);
		break;
	case ENG_CMD_RESUME:
		if (s->phase != ENG_PAUSED)
			return fail(err, errlen, "not paused (phase %s)", ph);
		break;
	case ENG_CMD_SET_WEIGHT:
		if (s->phase == ENG_PROMOTING)
			return fail(err, errlen, "cannot set the weight: revision '%s' is promoting",
			            s->canary_rev);
		break;
	case ENG_CMD_APPROVE:
		if (s->phase != ENG_WAITING_APPROVAL)
			return fail(err, errlen, "no approval pending (phase %s)", ph);
		break;
	default:
		break;
	}
	return 0;
}

static void cmd_rollout(eng_state *s, const eng_policy *p, uint64_t now_ms,
                        const char *rev, eng_output *out, const char *actor)
{
	char old[ENG_REV_LEN] = "";
	if (eng_active(s))
		copy_str(old, sizeof old, s->canary_rev);
	int before = s->weight;
	copy_str(s->canary_rev, sizeof s->canary_rev, rev);
	s->failed_checks = 0;
	s->iterations = 0;
	s->manual_weight = false;
	s->rollout_started_ms = now_ms;
	s->unready_since_ms = 0;
	memset(s->breach_since_ms, 0, sizeof s->breach_since_ms);
	s->judge_started = false;
	s->next_check_ms = now_ms + p->interval_ms;
	s->phase = ENG_PROGRESSING;
	/* a replaced rollout is a new transition even though the phase stays */
	s->last_transition_ms = now_ms;
	if (old[0])
		emit(out, s, "rollout-started", actor,
		     "new revision %s detected, starting canary analysis (replacing the rollout of %s)",
		     rev, old);
	else
		emit(out, s, "rollout-started", actor,
		     "new revision %s detected, starting canary analysis", rev);
	s->weight = first_weight(p);
	if (s->weight != before)
		emit(out, s, "weight", actor, "%s canary weight %d -> %d",
		     s->weight > before ? "advance" : "lower", before, s->weight);
	add_hook(out, ENG_HOOK_PRE_ROLLOUT);
	add_hook(out, ENG_HOOK_ROLLOUT);
}

int eng_command(eng_state *s, const eng_policy *p, uint64_t now_ms,
                const eng_cmd *cmd, eng_output *out, char *err, size_t errlen)
{
	if (!cmd)
		return fail(err, errlen, "no command");
	if (validate(s, cmd, err, errlen) < 0)
		return -1;
	const char *actor = cmd->actor && cmd->actor[0] ? cmd->actor : "unknown";
	eng_output_clear(out);
	out->changed = true;
	char text[ENG_MSG_LEN];
	switch (cmd->kind) {
	case ENG_CMD_ROLLOUT:
		cmd_rollout(s, p, now_ms, cmd->revision, out, actor);
		break;
	case ENG_CMD_PROMOTE:
		s->manual_weight = false;
		s->next_check_ms = now_ms + p->interval_ms;
		fmt(text, sizeof text, " (promoted by %s)", actor);
		{
			char why[ENG_MSG_LEN];
			fmt(why, sizeof why, "promoted by %s at the last step", actor);
			step_up(s, p, now_ms, out, actor, why, text);
		}
		break;
	case ENG_CMD_PROMOTE_FULL:
		fmt(text, sizeof text, "full promotion by %s, skipping the remaining steps", actor);
		start_promoting(s, now_ms, out, actor, text);
		break;
	case ENG_CMD_ABORT:
		fmt(text, sizeof text, "aborted by %s, rolling back to %s", actor,
		    s->stable_rev[0] ? s->stable_rev : "the stable revision");
		rollback(s, now_ms, out, actor, text);
		break;
	case ENG_CMD_PAUSE:
		s->manual_weight = false;
		set_phase(s, ENG_PAUSED, now_ms);
		emit(out, s, "paused", actor, "paused by %s at weight %d", actor, s->weight);
		break;
	case ENG_CMD_RESUME:
		s->manual_weight = false;
		/* no checks were made while paused: a breach is not known to have
		 * lasted through the pause */
		memset(s->breach_since_ms, 0, sizeof s->breach_since_ms);
		s->next_check_ms = now_ms + p->interval_ms;
		set_phase(s, ENG_PROGRESSING, now_ms);
		emit(out, s, "resumed", actor, "resumed by %s at weight %d", actor, s->weight);
		break;
	case ENG_CMD_SET_WEIGHT: {
		int before = s->weight;
		s->weight = cmd->weight;
		s->manual_weight = true;
		set_phase(s, ENG_PAUSED, now_ms);
		emit(out, s, "manual", actor, "canary weight set %d -> %d by %s, analysis paused",
		     before, s->weight, actor);
		break;
	}
	case ENG_CMD_APPROVE:
		s->next_check_ms = now_ms + p->interval_ms;
		set_phase(s, ENG_PROGRESSING, now_ms);
		emit(out, s, "resumed", actor, "approved by %s at weight %d", actor, s->weight);
		break;
	}
	return 0;
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
	if (p->judge != ENG_JUDGE_SEQUENTIAL || s->phase != ENG_PROGRESSING || !c)
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
		rollback(s, now_ms, out, AUTO_ACTOR, msg);
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
	bool last = iterations_mode(p) || next_step(p, s->weight) < 0;
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
	s->next_check_ms = now_ms + p->interval_ms;
	step_up(s, p, now_ms, out, AUTO_ACTOR, msg, suffix);
	if (s->phase == ENG_PROGRESSING) {
		judge_step(&s->judge);
		s->judge_weight = s->weight;
	}
}
