/* readings.c - see readings.h. */
#include "readings.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* The seconds [from, now] that make a window of <span_ms> ending at <now>,
 * at least one second, the first not before <first>. */
static void span(uint64_t span_ms, uint64_t now_sec, uint64_t first_sec, rd_window *w)
{
	uint64_t secs = span_ms / 1000;
	if (secs < 1)
		secs = 1;
	w->from_sec = now_sec + 1 > secs ? now_sec + 1 - secs : 0;
	if (w->from_sec < first_sec)
		w->from_sec = first_sec;
	w->to_sec = now_sec;
	w->span_ms = span_ms;
}

int rd_windows(const eng_metric *m, uint64_t now_sec, uint64_t first_sec,
               rd_window out[RD_COUNT])
{
	int n = 0;
	out[n].which = RD_CANARY;
	out[n].target = TARGET_CANARY;
	span(m->window_ms, now_sec, first_sec, &out[n++]);
	if (m->relative) {
		out[n] = out[0];
		out[n].which = RD_STABLE;
		out[n++].target = TARGET_STABLE;
	}
	if (m->baseline_window_ms) {
		out[n].which = RD_BASELINE;
		out[n].target = TARGET_STABLE;
		span(m->baseline_window_ms, now_sec, 0, &out[n++]);
	}
	return n;
}

int rd_value(eng_metric_kind kind, const rd_window *w, const stats_summary *sum,
             double *value, char *why, size_t whylen)
{
	unsigned long long secs = (unsigned long long)(w->to_sec - w->from_sec + 1);
	if (sum->total == 0) {
		snprintf(why, whylen, "no %s requests in the last %llus",
		         stats_target_name(w->target), secs);
		return 0;
	}
	if (kind == ENG_M_SUCCESS_RATE) {
		*value = 100.0 * (double)(sum->total - sum->by_class[5]) / (double)sum->total;
		return 1;
	}
	if (kind == ENG_M_ERROR_RATE) {
		*value = 100.0 * (double)sum->by_class[5] / (double)sum->total;
		return 1;
	}
	/* request-duration; -1 when no request of the window has a latency
	 * (a recording without p99s for those seconds) */
	double p99 = stats_quantile_ms(sum, 0.99);
	if (p99 < 0) {
		snprintf(why, whylen, "no %s latencies in the last %llus",
		         stats_target_name(w->target), secs);
		return 0;
	}
	*value = p99;
	return 1;
}

void rd_store(eng_reading *r, rd_which which, bool has_data, double value,
              const char *reason)
{
	if (which == RD_CANARY) {
		r->has_data = has_data;
		r->value = value;
		snprintf(r->reason, sizeof r->reason, "%s", has_data ? "" : reason);
	} else if (which == RD_STABLE) {
		r->has_stable = has_data;
		r->stable_value = value;
	} else {
		r->has_baseline = has_data;
		r->baseline_value = value;
	}
}

uint64_t rd_judged_from(const eng_policy *p, uint64_t first_sec)
{
	return first_sec + (p->warmup_ms + 999) / 1000;
}

void rd_store_samples(eng_reading *r, const stats_summary *canary)
{
	r->has_samples = true;
	r->samples = canary->total;
}

void rd_read_builtin(const eng_policy *p, uint64_t now_sec, uint64_t first_sec,
                     rd_sum_fn sum, void *arg, eng_reading *r)
{
	stats_summary *s = xmalloc(sizeof *s);
	first_sec = rd_judged_from(p, first_sec);
	for (int i = 0; i < p->n_metrics; i++) {
		const eng_metric *m = &p->metrics[i];
		memset(&r[i], 0, sizeof r[i]);
		if (m->kind == ENG_M_CUSTOM)
			continue;
		rd_window w[RD_COUNT];
		int n = rd_windows(m, now_sec, first_sec, w);
		for (int k = 0; k < n; k++) {
			char why[sizeof r[i].reason];
			double v = 0;
			sum(arg, w[k].target, w[k].from_sec, w[k].to_sec, m->kind == ENG_M_DURATION, s);
			int ok = rd_value(m->kind, &w[k], s, &v, why, sizeof why);
			rd_store(&r[i], w[k].which, ok, v, why);
			if (w[k].which == RD_CANARY)
				rd_store_samples(&r[i], s);
		}
	}
	free(s);
}
