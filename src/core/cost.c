/* cost.c - see cost.h. */
#include "cost.h"

#include <string.h>

void cost_compute(const cost_rates *r, const cost_counts *c, cost_result *out)
{
	memset(out, 0, sizeof *out);
	out->running = r->hourly * c->hours + r->per_million * (double)c->canary_requests / 1e6;
	uint64_t served = c->canary_failed > c->copies_failed ? c->canary_failed - c->copies_failed : 0;
	out->failed_cost = r->failed * (double)served;
	/* a rollout rolled back before the canary answered anything gives no
	 * error rate to extrapolate from: no saving is claimed */
	if (!c->rolled_back || c->canary_requests == 0)
		return;
	out->has_saved = true;
	out->full_failed = (double)c->all_requests * (double)c->canary_failed /
	                   (double)c->canary_requests;
	double avoided = out->full_failed - (double)c->all_failed;
	out->saved = avoided > 0 ? r->failed * avoided : 0;
}
