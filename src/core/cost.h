/* cost.h - what a rollout cost and what a rollback saved, from the rates
 * of spec.cost and the request counts of the rollout (docs/config.md,
 * spec.cost, gives the formulas and their assumptions). Pure arithmetic:
 * no clock, no I/O. */
#ifndef CANARYD_COST_H
#define CANARYD_COST_H

#include <stdbool.h>
#include <stdint.h>

/* spec.cost: the rates, each >= 0, in <currency> (ISO 4217, 3 capitals). */
typedef struct cost_rates {
	char currency[4];
	double per_million;     /* perMillionRequests: per million canary requests */
	double hourly;          /* canaryHourly: per hour the canary runs */
	double failed;          /* failedRequest: per failed request served */
} cost_rates;

/* A rollout's counts, since it started. */
typedef struct cost_counts {
	double hours;               /* the canary's running time */
	uint64_t canary_requests;   /* answers of the canary, copies included */
	uint64_t canary_failed;     /* 5xx answers of the canary, copies included */
	uint64_t copies_failed;     /* of canary_failed: 5xx answers to mirrored
	                             * copies, which no user got */
	uint64_t all_requests;      /* users' requests: stable's and the canary's,
	                             * copies left out */
	uint64_t all_failed;        /* 5xx answers users got, of both */
	bool rolled_back;           /* the rollout ended in a rollback or abort */
} cost_counts;

typedef struct cost_result {
	double running;             /* hourly x hours + per_million x canary_requests / 1e6 */
	double failed_cost;         /* failed x (canary_failed - copies_failed) */
	/* after a rollback with canary requests to take a rate from: */
	bool has_saved;
	double full_failed;         /* all_requests x canary_failed / canary_requests */
	double saved;               /* failed x max(0, full_failed - all_failed) */
} cost_result;

/* Fills <out> from <r> and <c>. */
void cost_compute(const cost_rates *r, const cost_counts *c, cost_result *out);

#endif
