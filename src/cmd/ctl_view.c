/* ctl_view.c - canaryctl's views of the admin API's JSON (ctl_view.h). */
#include "ctl_view.h"

#include <math.h>
#include <string.h>

#include "ctl_out.h"
#include "log.h"

void view_escape(json_t *j)
{
	if (json_is_string(j)) {
		const char *s = json_string_value(j);
		size_t len = json_string_length(j);
		if (log_unsafe_at(s, len, NULL) == len)
			return;
		buf b = BUF_INIT;
		log_escape(&b, s, len);
		json_string_set(j, b.p);
		buf_release(&b);
	} else if (json_is_array(j)) {
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v)
			view_escape(v);
	} else if (json_is_object(j)) {
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v)
			view_escape(v);
	}
}

const char *view_str(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

long long view_int(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v) && isfinite(json_real_value(v)))
		return (long long)json_real_value(v);
	return 0;
}

void view_revisions(const json_t *st, char *out, size_t outlen)
{
	const char *stable = view_str(st, "stableRevision", "");
	const char *canary = view_str(st, "canaryRevision", NULL);
	/* after a promotion the canary revision is the stable one */
	if (canary && *canary && strcmp(canary, stable) != 0)
		snprintf(out, outlen, "%s->%s", *stable ? stable : "-", canary);
	else
		snprintf(out, outlen, "%s", *stable ? stable : "-");
}

void view_status_table(FILE *f, const json_t *arr, bool color)
{
	static const char *const head[] = { "NAME", "PHASE", "WEIGHT", "FAILED", "REVISIONS",
	                                     "MESSAGE" };
	out_table t;
	out_table_init(&t, 6, head);
	size_t i;
	json_t *st;
	json_array_foreach(arr, i, st) {
		char w[24], fc[24], rev[256];
		snprintf(w, sizeof w, "%lld", view_int(st, "canaryWeight"));
		snprintf(fc, sizeof fc, "%lld", view_int(st, "failedChecks"));
		view_revisions(st, rev, sizeof rev);
		const char *phase = view_str(st, "phase", "-");
		const char *row[] = { view_str(st, "name", "-"), phase, w, fc, rev,
		                      view_str(st, "message", "") };
		out_color col[6] = { OUT_PLAIN, out_phase_color(phase) };
		out_table_add(&t, row, col);
	}
	out_table_print(&t, f, color);
	out_table_release(&t);
}

/* The age of the last transition of <st>, or "-". */
static void transition_age(const json_t *st, uint64_t now_ms, char *out, size_t outlen)
{
	uint64_t at;
	if (out_parse_time(view_str(st, "lastTransitionTime", NULL), &at) < 0) {
		snprintf(out, outlen, "-");
		return;
	}
	out_age(now_ms > at ? now_ms - at : 0, out, outlen);
}

void view_list_table(FILE *f, const json_t *arr, bool color, uint64_t now_ms)
{
	static const char *const head[] = { "NAME", "PHASE", "WEIGHT", "STABLE", "CANARY", "FAILED",
	                                     "AGE" };
	out_table t;
	out_table_init(&t, 7, head);
	size_t i;
	json_t *st;
	json_array_foreach(arr, i, st) {
		char w[24], fc[24], age[32];
		snprintf(w, sizeof w, "%lld", view_int(st, "canaryWeight"));
		snprintf(fc, sizeof fc, "%lld", view_int(st, "failedChecks"));
		transition_age(st, now_ms, age, sizeof age);
		const char *stable = view_str(st, "stableRevision", "");
		const char *canary = view_str(st, "canaryRevision", "");
		const char *phase = view_str(st, "phase", "-");
		const char *row[] = { view_str(st, "name", "-"), phase, w, *stable ? stable : "-",
		                      *canary ? canary : "-", fc, age };
		out_color col[7] = { OUT_PLAIN, out_phase_color(phase) };
		out_table_add(&t, row, col);
	}
	out_table_print(&t, f, color);
	out_table_release(&t);
}

static void append_number(buf *b, const json_t *v)
{
	if (json_is_integer(v))
		buf_printf(b, "%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		buf_printf(b, "%g", json_real_value(v));
}

/* A compact value for a person: strings bare, numbers as %g, objects as
 * "key value, key value", arrays as "a, b". */
static void append_compact(buf *b, const json_t *v)
{
	if (json_is_string(v)) {
		buf_puts(b, json_string_value(v));
	} else if (json_is_number(v)) {
		append_number(b, v);
	} else if (json_is_boolean(v)) {
		buf_puts(b, json_is_true(v) ? "true" : "false");
	} else if (json_is_array(v)) {
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m) {
			if (i)
				buf_puts(b, ", ");
			append_compact(b, m);
		}
	} else if (json_is_object(v)) {
		const char *k;
		json_t *m;
		bool first = true;
		json_object_foreach((json_t *)v, k, m) {
			buf_printf(b, "%s%s ", first ? "" : ", ", k);
			append_compact(b, m);
			first = false;
		}
	} else {
		buf_puts(b, "-");
	}
}

/* "name=value [min..max] pass" for one metric of a check, with the
 * verdict coloured. */
static void append_metric(buf *b, const json_t *m, bool color)
{
	const json_t *v = json_object_get(m, "value");
	buf_printf(b, "%s=", view_str(m, "name", "?"));
	if (json_is_number(v))
		append_number(b, v);
	else
		buf_puts(b, "n/a");
	const json_t *sv = json_object_get(m, "stable");
	if (json_is_number(sv)) {
		buf_puts(b, " (stable ");
		append_number(b, sv);
		buf_puts(b, ")");
	}
	buf_puts(b, " [");
	append_number(b, json_object_get(m, "min"));
	buf_puts(b, "..");
	append_number(b, json_object_get(m, "max"));
	buf_puts(b, "] ");
	const char *verdict;
	out_color c;
	if (json_is_true(json_object_get(m, "held"))) {
		verdict = "held";
		c = OUT_YELLOW;
	} else if (json_is_true(json_object_get(m, "passed"))) {
		verdict = "pass";
		c = OUT_GREEN;
	} else {
		verdict = "FAIL";
		c = OUT_RED;
	}
	buf_printf(b, "%s%s%s", out_sgr(color, c), verdict, out_sgr_end(color, c));
	const char *reason = view_str(m, "reason", NULL);
	if (reason && *reason)
		buf_printf(b, " (%s)", reason);
}

static void append_event_head(buf *b, const json_t *ev, bool color)
{
	const char *phase = view_str(ev, "phase", "-");
	out_color c = out_phase_color(phase);
	buf_printf(b, "%s %s %s%s%s weight=%lld actor=%s %s", view_str(ev, "time", "-"),
	           view_str(ev, "type", "-"), out_sgr(color, c), phase, out_sgr_end(color, c),
	           view_int(ev, "weight"), view_str(ev, "actor", "-"), view_str(ev, "message", ""));
}

void view_event_line(buf *b, const json_t *ev, bool color)
{
	append_event_head(b, ev, color);
	size_t k;
	json_t *m;
	json_array_foreach(json_object_get(ev, "metrics"), k, m) {
		buf_puts(b, k ? ", " : ": ");
		append_metric(b, m, color);
	}
	buf_puts(b, "\n");
}

void view_events(FILE *f, const json_t *arr, bool color)
{
	size_t i;
	json_t *ev;
	buf b = BUF_INIT;
	json_array_foreach(arr, i, ev) {
		buf_reset(&b);
		append_event_head(&b, ev, color);
		buf_puts(&b, "\n");
		size_t k;
		json_t *m;
		json_array_foreach(json_object_get(ev, "metrics"), k, m) {
			buf_puts(&b, "    ");
			append_metric(&b, m, color);
			buf_puts(&b, "\n");
		}
		fwrite(b.p, 1, b.len, f);
	}
	buf_release(&b);
}

/* The first member of <keys> (NULL-terminated) found in <st>, then in its
 * "analysis": the lead fields of a newer canaryd may sit at either level. */
static const json_t *find_field(const json_t *st, const char *const *keys)
{
	const json_t *an = json_object_get(st, "analysis");
	for (const char *const *k = keys; *k; k++) {
		const json_t *v = json_object_get(st, *k);
		if (!v)
			v = json_object_get(an, *k);
		if (v && !json_is_null(v))
			return v;
	}
	return NULL;
}

/* One step of analysis.steps as a person reads it. */
static void append_step(buf *b, const json_t *step)
{
	const json_t *sw = json_object_get(step, "setWeight");
	const json_t *pause = json_object_get(step, "pause");
	if (json_is_number(sw)) {
		buf_puts(b, "setWeight ");
		append_number(b, sw);
	} else if (pause) {
		const json_t *d = json_object_get(pause, "duration");
		if (json_is_string(d) || json_is_number(d)) {
			buf_puts(b, "pause ");
			append_compact(b, d);
		} else {
			buf_puts(b, "pause until resumed or approved");
		}
	} else {
		append_compact(b, step);
	}
}

/* The weights the canary goes through: analysis.steps when the status has
 * them (with the current step marked), else stepWeights, else stepWeight
 * up to maxWeight (the current weight marked). */
static void append_steps(buf *b, const json_t *st, bool color)
{
	const json_t *an = json_object_get(st, "analysis");
	const json_t *steps = json_object_get(an, "steps");
	if (!json_is_array(steps))
		steps = json_object_get(st, "steps");
	long long weight = view_int(st, "canaryWeight");
	if (json_is_array(steps) && json_array_size(steps) > 0) {
		static const char *const cur_keys[] = { "currentStep", "currentStepIndex", "stepIndex",
		                                        "step", NULL };
		const json_t *cur = find_field(st, cur_keys);
		long long ci = json_is_integer(cur) ? json_integer_value(cur) : -1;
		buf_puts(b, "Steps:\n");
		size_t i;
		json_t *s;
		json_array_foreach(steps, i, s) {
			bool here = (long long)i == ci;
			buf_printf(b, "  %s%2zu. ", here ? "> " : "  ", i + 1);
			if (here)
				buf_puts(b, out_sgr(color, OUT_BOLD));
			append_step(b, s);
			if (here)
				buf_printf(b, "%s  <- now", out_sgr_end(color, OUT_BOLD));
			buf_puts(b, "\n");
		}
		return;
	}
	const json_t *sws = json_object_get(an, "stepWeights");
	long long sw = view_int(an, "stepWeight"), max = view_int(an, "maxWeight");
	long long ws[64];
	size_t n = 0;
	if (json_is_array(sws)) {
		size_t i;
		json_t *w;
		json_array_foreach(sws, i, w)
			if (json_is_integer(w) && n < 64)
				ws[n++] = json_integer_value(w);
	} else if (sw > 0 && max > 0) {
		for (long long w = sw; w <= max && n < 64; w += sw)
			ws[n++] = w;
	}
	if (n == 0)
		return;
	buf_puts(b, "Weights:       ");
	for (size_t i = 0; i < n; i++) {
		bool here = ws[i] == weight;
		buf_printf(b, "%s%s%lld%s%s", i ? " " : "", here ? out_sgr(color, OUT_BOLD) : "",
		           ws[i], here ? "*" : "", here ? out_sgr_end(color, OUT_BOLD) : "");
	}
	buf_puts(b, "  (* now; then promotion)\n");
}

/* The sequential judge's evidence: the rates, and each e-value beside the
 * threshold that decides. */
static void append_evidence(buf *b, const json_t *e)
{
	buf_printf(b, "Judge:         canary %lld requests, %.3g%% errors; stable %lld, %.3g%%\n",
	           view_int(e, "canaryRequests"),
	           100 * json_number_value(json_object_get(e, "canaryErrorRate")),
	           view_int(e, "stableRequests"),
	           100 * json_number_value(json_object_get(e, "stableErrorRate")));
	buf_printf(b, "               worse: e-value %.3g of %.3g; no worse: %.3g of %.3g%s\n",
	           json_number_value(json_object_get(e, "worseEValue")),
	           json_number_value(json_object_get(e, "worseThreshold")),
	           json_number_value(json_object_get(e, "noWorseEValue")),
	           json_number_value(json_object_get(e, "noWorseThreshold")),
	           json_is_true(json_object_get(e, "held")) ? " (holding)" : "");
}

/* The last check event of <events> (or NULL). */
static const json_t *last_check(const json_t *events)
{
	for (size_t i = json_array_size(events); i-- > 0;) {
		const json_t *ev = json_array_get(events, i);
		if (strcmp(view_str(ev, "type", ""), "check") == 0)
			return ev;
	}
	return NULL;
}

void view_detail(buf *b, const json_t *st, const json_t *events, int recent, bool color,
                 uint64_t now_ms)
{
	const char *phase = view_str(st, "phase", "-");
	out_color pc = out_phase_color(phase);
	char age[32];
	transition_age(st, now_ms, age, sizeof age);
	buf_printf(b, "Name:          %s\n", view_str(st, "name", "-"));
	buf_printf(b, "Phase:         %s%s%s (for %s)\n", out_sgr(color, pc), phase,
	           out_sgr_end(color, pc), age);
	const char *msg = view_str(st, "message", "");
	if (*msg)
		buf_printf(b, "Message:       %s\n", msg);
	const char *stable = view_str(st, "stableRevision", "");
	const char *canary = view_str(st, "canaryRevision", "");
	buf_printf(b, "Revisions:     stable %s, canary %s\n", *stable ? stable : "-",
	           *canary ? canary : "-");
	buf_printf(b, "Canary weight: %lld\n", view_int(st, "canaryWeight"));
	const json_t *an = json_object_get(st, "analysis");
	buf_printf(b, "Failed checks: %lld", view_int(st, "failedChecks"));
	if (json_is_integer(json_object_get(an, "threshold")))
		buf_printf(b, " (rollback at %lld)", view_int(an, "threshold"));
	buf_printf(b, ", iterations %lld\n", view_int(st, "iterations"));
	if (json_is_object(an)) {
		buf_printf(b, "Analysis:      every %s, %s judge", view_str(an, "interval", "-"),
		           view_str(an, "judge", "threshold"));
		if (json_is_integer(json_object_get(an, "maxWeight")))
			buf_printf(b, ", max weight %lld", view_int(an, "maxWeight"));
		buf_puts(b, "\n");
	}
	append_steps(b, st, color);

	/* gates and approval: whatever of them this canaryd reports */
	static const char *const gate_keys[] = { "gate", "gates", "webhooks", NULL };
	static const char *const appr_keys[] = { "approval", NULL };
	const json_t *gate = find_field(st, gate_keys);
	const json_t *appr = find_field(st, appr_keys);
	if (gate) {
		buf_puts(b, "Gate:          ");
		append_compact(b, gate);
		buf_puts(b, "\n");
	}
	if (appr) {
		buf_puts(b, "Approval:      ");
		append_compact(b, appr);
		buf_puts(b, "\n");
	}
	const json_t *ev = json_object_get(an, "evidence");
	if (json_is_object(ev))
		append_evidence(b, ev);
	const char *rerr = view_str(st, "routerError", NULL);
	if (rerr && *rerr)
		buf_printf(b, "Router error:  %s%s%s\n", out_sgr(color, OUT_RED), rerr,
		           out_sgr_end(color, OUT_RED));

	const json_t *chk = last_check(events);
	if (chk) {
		buf_printf(b, "Last check:    %s, weight %lld\n", view_str(chk, "time", "-"),
		           view_int(chk, "weight"));
		size_t k;
		json_t *m;
		json_array_foreach(json_object_get(chk, "metrics"), k, m) {
			buf_puts(b, "  ");
			append_metric(b, m, color);
			buf_puts(b, "\n");
		}
	}
	size_t n = json_array_size(events);
	if (recent > 0 && n > 0) {
		buf_puts(b, "Events:\n");
		size_t from = n > (size_t)recent ? n - (size_t)recent : 0;
		for (size_t i = from; i < n; i++) {
			const json_t *e = json_array_get(events, i);
			buf_printf(b, "  %s %s %s\n", view_str(e, "time", "-"), view_str(e, "type", "-"),
			           view_str(e, "message", ""));
		}
	}
}
