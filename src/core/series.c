/* series.c - see series.h. */
#include "series.h"

void series_clear(series *r)
{
	r->head = 0;
	r->n = 0;
}

void series_side_from(series_side *out, const stats_summary *sum)
{
	out->requests = sum->total;
	out->errors = sum->by_class[5];
	out->p50 = stats_quantile_ms(sum, 0.50);
	out->p95 = stats_quantile_ms(sum, 0.95);
	out->p99 = stats_quantile_ms(sum, 0.99);
}

bool series_error_rate(const series_side *s, double *pct)
{
	if (s->requests == 0)
		return false;
	*pct = 100.0 * (double)s->errors / (double)s->requests;
	return true;
}

const series_sample *series_at(const series *r, size_t i)
{
	/* the oldest sits at head once the ring is full, at 0 before */
	size_t oldest = r->n == SERIES_LEN ? r->head : 0;
	return &r->s[(oldest + i) % SERIES_LEN];
}

int series_push(series *r, const series_sample *smp)
{
	if (r->n > 0 && smp->t_ms <= series_at(r, r->n - 1)->t_ms)
		return 0;
	r->s[r->head] = *smp;
	r->head = (r->head + 1) % SERIES_LEN;
	if (r->n < SERIES_LEN)
		r->n++;
	return 1;
}

size_t series_select(const series *r, uint64_t since_ms, uint64_t now_ms, size_t *first)
{
	uint64_t from = now_ms > SERIES_SPAN_MS ? now_ms - SERIES_SPAN_MS : 0;
	if (since_ms > from)
		from = since_ms;
	/* in time order: the first after <from> by binary search */
	size_t lo = 0, hi = r->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (series_at(r, mid)->t_ms > from)
			hi = mid;
		else
			lo = mid + 1;
	}
	*first = lo;
	return r->n - lo;
}
