/* simulate.c - see simulate.h. Speed matters (a thousand half-hour rollouts
 * in seconds), so nothing is done per request that can be done per tick:
 * request and error counts are drawn as Poisson and binomial variates, a
 * latency is a lookup in a quantile table of the lognormal, and windows are
 * read from per-second prefix sums instead of summing slots. */
#include "simulate.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "readings.h"
#include "util.h"

#define T0_MS 1000000000ULL  /* the simulated wall clock at the rollout's start */
#define TICKS_PER_SEC (1000 / SIM_TICK_MS)
#define LAT_TABLE 4096        /* quantile slices of the latency distribution */
#define LAT_EXACT_MAX 512     /* more requests in a tick: expected bucket counts */
#define MAX_LIMIT_MS (24ULL * 3600 * 1000)
/* Where in a second of the stats ring the rollout starts. The daemon's
 * checks fall anywhere in a second; at a second's very start a 1-second
 * window would always be empty, so the simulation takes the middle. */
#define PHASE_MS 500

/* ---- random numbers: xoshiro256** seeded by splitmix64 ---- */

typedef struct rng {
	uint64_t s[4];
} rng;

static uint64_t splitmix64(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static void rng_seed(rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t rng_next(rng *r)
{
	uint64_t *s = r->s;
	uint64_t out = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return out;
}

/* Uniform in [0, 1). */
static inline double rng_uniform(rng *r)
{
	return (double)(rng_next(r) >> 11) * 0x1.0p-53;
}

/* Standard normal (Marsaglia's polar method; the spare is dropped: normals
 * are only needed for the large-count approximations, which are rare). */
static double rng_normal(rng *r)
{
	for (;;) {
		double u = 2 * rng_uniform(r) - 1, v = 2 * rng_uniform(r) - 1;
		double q = u * u + v * v;
		if (q > 0 && q < 1)
			return u * sqrt(-2 * log(q) / q);
	}
}

/* Rounds a normal approximation with mean <m> and variance <var> into
 * [0, n]. */
static uint64_t normal_count(rng *r, double m, double var, uint64_t n)
{
	double x = floor(m + sqrt(var) * rng_normal(r) + 0.5);
	if (x < 0)
		return 0;
	if (x > (double)n)
		return n;
	return (uint64_t)x;
}

/* A Poisson rate prepared for drawing: exp(-lambda) is computed once. */
typedef struct prate {
	double lambda, e;
} prate;

static void prate_init(prate *pr, double lambda)
{
	pr->lambda = lambda > 0 ? lambda : 0;
	pr->e = exp(-pr->lambda);
}

/* Poisson: exact by inversion below 30, normal beyond (where the skew is
 * small enough not to matter for request counts). */
static uint64_t poisson(rng *r, const prate *pr)
{
	double lambda = pr->lambda;
	if (!(lambda > 0))
		return 0;
	if (lambda >= 30)
		return normal_count(r, lambda, lambda, UINT64_MAX);
	double u = rng_uniform(r), p = pr->e;
	uint64_t x = 0;
	while (u > p && x < 1000) {
		u -= p;
		x++;
		p *= lambda / (double)x;
	}
	return x;
}

#define BRATE_POW 64

/* A binomial probability prepared for drawing: the smaller of p and 1 - p,
 * and its complement's powers for small n, so that a draw costs no pow(). */
typedef struct brate {
	double p;        /* <= 0.5 */
	bool flip;       /* drawn for 1 - p: the count is n minus the draw */
	double lq;       /* log(1 - p) */
	double qn[BRATE_POW]; /* (1 - p)^n */
} brate;

static void brate_init(brate *b, double p)
{
	if (!(p > 0))
		p = 0;
	if (p > 1)
		p = 1;
	b->flip = p > 0.5;
	b->p = b->flip ? 1 - p : p;
	b->lq = log1p(-b->p);
	double f = 1;
	for (int n = 0; n < BRATE_POW; n++, f *= 1 - b->p)
		b->qn[n] = f;
}

/* Binomial(<n>, <b>): exact by inversion while the mean is below 30,
 * normal beyond. */
static uint64_t binomial(rng *r, uint64_t n, const brate *b)
{
	double p = b->p;
	if (n == 0 || !(p > 0))
		return b->flip ? n : 0;
	double mean = (double)n * p;
	uint64_t x = 0;
	if (mean >= 30) {
		x = normal_count(r, mean, mean * (1 - p), n);
	} else {
		double q = 1 - p, s = p / q, a = ((double)n + 1) * s;
		double f = n < BRATE_POW ? b->qn[n] : exp((double)n * b->lq), u = rng_uniform(r);
		while (u > f && x < n) {
			u -= f;
			x++;
			f *= a / (double)x - s;
		}
	}
	return b->flip ? n - x : x;
}

/* ---- the simulator ---- */

/* One version's latency distribution, as stats' buckets. */
typedef struct latency_model {
	uint8_t table[LAT_TABLE];      /* bucket of quantile (i + 0.5) / LAT_TABLE */
	double p[STATS_BUCKETS];       /* probability of each bucket */
} latency_model;

struct sim {
	eng_policy pol;          /* custom metrics removed; as the rules make it */
	eng_policy pol0;         /* the same under canaryd's rules */
	sim_traffic tr;
	uint64_t limit_ms;
	char skipped[ENG_MAX_METRICS][ENG_NAME_LEN];
	int n_skipped;
	bool latency;            /* keep histograms: a duration metric needs them */
	size_t nsec;             /* seconds the prefix rows can hold */
	/* per target: counts since the rollout (the running sums), and the same
	 * as they stood at the end of each finished second */
	stats_summary run[TARGET_COUNT];
	uint64_t *row_total[TARGET_COUNT], *row_err[TARGET_COUNT];
	uint64_t *row_hist[TARGET_COUNT];  /* nsec x STATS_BUCKETS, or NULL */
	size_t rows_done;        /* rows 0 .. rows_done-1 are written */
	latency_model lat[TARGET_COUNT];
	latency_model lat_warm;  /* the canary's during its warm-up */
	prate per_tick;          /* requests per tick (the rate before any change) */
	brate err_stable, err_canary, err_canary_after, err_stable_after, err_outage;
	uint64_t burst_left[TARGET_COUNT]; /* requests of the current burst to come */
	sim_rules rules;
	int argo_steps[ENG_MAX_STEPS + 1];  /* Argo: the setWeight steps */
	int n_argo_steps;
	brate split[101];        /* canary share by weight */
	rng rng;
	eng_state st;
	eng_output out;
};

void sim_traffic_defaults(sim_traffic *t)
{
	memset(t, 0, sizeof *t);
	t->rps = 200;
	t->stable_error_rate = 0.005;
	t->canary_error_rate = 0.005;
	t->canary_error_rate_after = 0.005;
	t->stable_error_rate_after = 0.005;
	t->rps_after = 200;
	t->latency_median_ms = 50;
	t->latency_sigma = 0.5;
	t->canary_warmup_factor = 2;
	t->canary_tail_factor = 1;
	t->canary_tail_share = 0.02;
}

const char *sim_outcome_name(sim_outcome o)
{
	switch (o) {
	case SIM_PROMOTED:
		return "Succeeded";
	case SIM_ROLLED_BACK:
		return "Failed";
	default:
		return "undecided";
	}
}

static int fail(char *err, size_t errlen, const char *f, ...) __attribute__((format(printf, 3, 4)));
static int fail(char *err, size_t errlen, const char *f, ...)
{
	if (err && errlen) {
		va_list ap;
		va_start(ap, f);
		vsnprintf(err, errlen, f, ap);
		va_end(ap);
	}
	return -1;
}

static double normal_cdf(double x)
{
	return 0.5 * erfc(-x / M_SQRT2);
}

/* P(latency < x us) of a lognormal with log-median <mu> and log-space sd
 * <sigma>. */
static double lognormal_cdf(double x, double mu, double sigma)
{
	if (!(x > 0))
		return 0;
	if (sigma > 0)
		return normal_cdf((log(x) - mu) / sigma);
	return x > exp(mu) ? 1.0 : 0.0;
}

/* Lognormal latency with <median_ms> and log-space sd <sigma>, all of it
 * <scale> times slower (warm-up), and its slowest <tail_share> (0: none)
 * <tail_factor> times slower again, bucketed as stats buckets them.
 *
 * The tail model: a request at quantile u of the lognormal takes
 * Q(u) for u <= 1 - tail_share and tail_factor * Q(u) above, so that the
 * order of requests is kept and every quantile above 1 - tail_share (p99
 * when the share is 2 %) is exactly tail_factor times the lognormal's,
 * every one below (the median) unchanged:
 *   P(L < x) = min(F(x), 1 - s) + max(0, F(x / tail_factor) - (1 - s)). */
static void latency_model_init(latency_model *m, double median_ms, double sigma, double scale,
                               double tail_share, double tail_factor)
{
	double mu = log(median_ms > 0.001 ? median_ms * 1000.0 : 1.0); /* in us */
	mu += log(scale > 0 ? scale : 1.0);
	bool tail = tail_share > 0 && tail_factor > 1;
	double keep = 1 - tail_share;
	double below = 0, cum[STATS_BUCKETS];
	for (int b = 0; b < STATS_BUCKETS; b++) {
		uint64_t lo, hi;
		stats_bucket_bounds(b, &lo, &hi);
		double chi;
		if (b == STATS_BUCKETS - 1 || hi == UINT64_MAX) {
			chi = 1.0;
		} else if (tail) {
			double f = lognormal_cdf((double)hi, mu, sigma);
			double ft = lognormal_cdf((double)hi / tail_factor, mu, sigma);
			chi = (f < keep ? f : keep) + (ft > keep ? ft - keep : 0);
		} else {
			chi = lognormal_cdf((double)hi, mu, sigma);
		}
		m->p[b] = chi - below > 0 ? chi - below : 0;
		below = chi > below ? chi : below;
		cum[b] = below;
	}
	int b = 0;
	for (int i = 0; i < LAT_TABLE; i++) {
		double u = ((double)i + 0.5) / LAT_TABLE;
		while (b < STATS_BUCKETS - 1 && cum[b] < u)
			b++;
		m->table[i] = (uint8_t)b;
	}
}

static bool bad_rate(double p)
{
	return !(p >= 0 && p <= 1);
}

sim *sim_new(const eng_policy *p, const sim_traffic *t, uint64_t limit_ms,
             char *err, size_t errlen)
{
	if (!t->data) {
		if (!(t->rps > 0) || t->rps > 1e7) {
			fail(err, errlen, "requests per second must be above 0 and at most 10000000, not %g", t->rps);
			return NULL;
		}
		if (t->rps_change_at_ms && (!(t->rps_after > 0) || t->rps_after > 1e7)) {
			fail(err, errlen, "requests per second after the change must be above 0 and at most 10000000, not %g",
			     t->rps_after);
			return NULL;
		}
		if (bad_rate(t->stable_error_rate) || bad_rate(t->canary_error_rate) ||
		    bad_rate(t->canary_error_rate_after) || bad_rate(t->stable_error_rate_after) ||
		    bad_rate(t->outage_error_rate)) {
			fail(err, errlen, "error rates must be fractions from 0 to 1");
			return NULL;
		}
		if (!(t->latency_median_ms > 0) || !(t->latency_sigma >= 0) ||
		    !(t->canary_extra_latency_ms + t->latency_median_ms > 0)) {
			fail(err, errlen, "latencies must be above 0 ms");
			return NULL;
		}
		if (!(t->canary_warmup_factor > 0 && t->canary_warmup_factor <= 1000)) {
			fail(err, errlen, "the warm-up factor must be above 0 and at most 1000, not %g",
			     t->canary_warmup_factor);
			return NULL;
		}
		if (!(t->canary_tail_factor >= 1 && t->canary_tail_factor <= 1000) ||
		    !(t->canary_tail_share > 0 && t->canary_tail_share < 0.5)) {
			fail(err, errlen, "the tail factor must be from 1 to 1000 and the tail share "
			     "above 0 and below 0.5");
			return NULL;
		}
		if (t->burst_size > 1000000) {
			fail(err, errlen, "a burst must be at most 1000000 requests, not %llu",
			     (unsigned long long)t->burst_size);
			return NULL;
		}
	}
	if (limit_ms == 0)
		limit_ms = SIM_DEFAULT_LIMIT_MS;
	if (limit_ms > MAX_LIMIT_MS) {
		fail(err, errlen, "time limit must be at most 24h");
		return NULL;
	}
	sim *s = xcalloc(1, sizeof *s);
	s->tr = *t;
	s->limit_ms = limit_ms;
	s->pol = *p;
	s->pol.n_metrics = 0;
	int n = p->n_metrics < ENG_MAX_METRICS ? p->n_metrics : ENG_MAX_METRICS;
	/* does the recording have latencies at all? */
	bool p99s = false, hists = false;
	for (size_t i = 0; t->data && i < t->data->n; i++) {
		p99s = p99s || t->data->sec[i].has_p99 || t->data->sec[i].hist;
		hists = hists || t->data->sec[i].hist;
	}
	for (int i = 0; i < n; i++) {
		const eng_metric *m = &p->metrics[i];
		if (m->kind == ENG_M_CUSTOM || (m->kind == ENG_M_DURATION && t->data && !p99s)) {
			snprintf(s->skipped[s->n_skipped++], ENG_NAME_LEN, "%s", m->name);
			continue;
		}
		if (m->kind == ENG_M_DURATION)
			s->latency = true;
		s->pol.metrics[s->pol.n_metrics++] = *m;
	}
	s->pol0 = s->pol;
	/* The daemon gives the sequential judge both histograms on every
	 * tick (controller.c observe()): so does the simulation, unless a
	 * recording has no latencies to give. */
	if (p->judge == ENG_JUDGE_SEQUENTIAL && (!t->data || hists))
		s->latency = true;
	s->nsec = (size_t)((limit_ms + PHASE_MS) / 1000) + 2;
	for (int tg = 0; tg < TARGET_COUNT; tg++) {
		s->row_total[tg] = xcalloc(s->nsec, sizeof(uint64_t));
		s->row_err[tg] = xcalloc(s->nsec, sizeof(uint64_t));
		if (s->latency)
			s->row_hist[tg] = xcalloc(s->nsec * STATS_BUCKETS, sizeof(uint64_t));
	}
	for (int w = 0; w <= 100; w++)
		brate_init(&s->split[w], w / 100.0);
	if (!t->data) {
		prate_init(&s->per_tick, t->rps * SIM_TICK_MS / 1000.0);
		brate_init(&s->err_stable, t->stable_error_rate);
		brate_init(&s->err_canary, t->canary_error_rate);
		brate_init(&s->err_canary_after, t->canary_error_rate_after);
		brate_init(&s->err_stable_after, t->stable_error_rate_after);
		brate_init(&s->err_outage, t->outage_error_rate);
		double cmed = t->latency_median_ms + t->canary_extra_latency_ms;
		double share = t->canary_tail_factor > 1 ? t->canary_tail_share : 0;
		latency_model_init(&s->lat[TARGET_STABLE], t->latency_median_ms, t->latency_sigma, 1, 0, 1);
		latency_model_init(&s->lat[TARGET_CANARY], cmed, t->latency_sigma, 1, share,
		                   t->canary_tail_factor);
		latency_model_init(&s->lat_warm, cmed, t->latency_sigma, t->canary_warmup_factor, share,
		                   t->canary_tail_factor);
	}
	return s;
}

void sim_free(sim *s)
{
	if (!s)
		return;
	for (int tg = 0; tg < TARGET_COUNT; tg++) {
		free(s->row_total[tg]);
		free(s->row_err[tg]);
		free(s->row_hist[tg]);
	}
	free(s);
}

int sim_skipped_metrics(const sim *s)
{
	return s->n_skipped;
}

const char *sim_skipped_metric(const sim *s, int i)
{
	return i >= 0 && i < s->n_skipped ? s->skipped[i] : NULL;
}

double sim_latency_quantile_ms(const sim *s, int tg, bool warm, double q)
{
	if (s->tr.data || tg < 0 || tg >= TARGET_COUNT)
		return -1;
	const latency_model *m = tg == TARGET_CANARY && warm ? &s->lat_warm : &s->lat[tg];
	double cum = 0;
	for (int b = 0; b < STATS_BUCKETS; b++) {
		cum += m->p[b];
		if (cum >= q || b == STATS_BUCKETS - 1) {
			uint64_t lo, hi;
			stats_bucket_bounds(b, &lo, &hi);
			return (double)hi / 1000.0;
		}
	}
	return -1;
}

/* Writes the rows of the finished seconds before <sec>. */
static void finish_seconds(sim *s, size_t sec)
{
	if (sec > s->nsec)
		sec = s->nsec;
	for (; s->rows_done < sec; s->rows_done++) {
		size_t i = s->rows_done;
		for (int tg = 0; tg < TARGET_COUNT; tg++) {
			s->row_total[tg][i] = s->run[tg].total;
			s->row_err[tg][i] = s->run[tg].by_class[5];
			if (s->latency)
				memcpy(&s->row_hist[tg][i * STATS_BUCKETS], s->run[tg].hist,
				       sizeof s->run[tg].hist);
		}
	}
}

/* Adds <n> requests of <tg> with <errors> 5xx among them, their latencies
 * drawn from model <m> (NULL: the target's). */
static void add_requests(sim *s, int tg, uint64_t n, uint64_t errors, const latency_model *lm)
{
	stats_summary *r = &s->run[tg];
	r->total += n;
	r->by_class[5] += errors;
	r->by_class[2] += n - errors;
	if (!s->latency || n == 0)
		return;
	const latency_model *m = lm ? lm : &s->lat[tg];
	if (n <= LAT_EXACT_MAX) {
		for (uint64_t i = 0; i < n; i++)
			r->hist[m->table[rng_next(&s->rng) >> (64 - 12)]]++;
		return;
	}
	/* many requests: the expected count per bucket, rounded at random so
	 * that rare buckets still get their share over time */
	for (int b = 0; b < STATS_BUCKETS; b++) {
		if (m->p[b] <= 0)
			continue;
		double x = (double)n * m->p[b];
		uint64_t k = (uint64_t)x;
		if (rng_uniform(&s->rng) < x - (double)k)
			k++;
		r->hist[b] += k;
	}
}

_Static_assert(LAT_TABLE == 1 << 12, "the latency lookup takes 12 random bits");

/* Cumulative sums of <tg> through second <sec> (a second not finished yet
 * is the running sum: nothing later has been counted). */
static uint64_t cum_total(const sim *s, int tg, size_t sec)
{
	return sec < s->rows_done ? s->row_total[tg][sec] : s->run[tg].total;
}

static uint64_t cum_err(const sim *s, int tg, size_t sec)
{
	return sec < s->rows_done ? s->row_err[tg][sec] : s->run[tg].by_class[5];
}

static const uint64_t *cum_hist(const sim *s, int tg, size_t sec)
{
	return sec < s->rows_done ? &s->row_hist[tg][sec * STATS_BUCKETS] : s->run[tg].hist;
}

/* Simulated second <i> (0: the one the rollout starts in) is second
 * SEC0 + i for the readings, so that a baseline window can reach back
 * before the rollout as the daemon's does: stable's seconds before SEC0
 * hold its expected traffic (synthetic traffic only; a recording has none
 * before its first second). SEC0 exceeds the longest baseline window. */
#define SEC0 (2ULL * 86400)

/* rd_sum_fn over the simulation: the difference of two cumulative rows,
 * plus stable's expected traffic for the seconds before the rollout. */
static void sim_sum(void *arg, int tg, uint64_t from, uint64_t to, bool hist,
                    stats_summary *out)
{
	const sim *s = arg;
	memset(out, 0, sizeof *out);
	uint64_t pre_secs = 0;
	if (from < SEC0) {
		pre_secs = SEC0 - from;
		from = SEC0;
	}
	if (to < from)
		return;
	size_t f = (size_t)(from - SEC0), t = (size_t)(to - SEC0);
	out->total = cum_total(s, tg, t) - (f ? cum_total(s, tg, f - 1) : 0);
	out->by_class[5] = cum_err(s, tg, t) - (f ? cum_err(s, tg, f - 1) : 0);
	double pre_n = 0;
	if (pre_secs && tg == TARGET_STABLE && !s->tr.data) {
		pre_n = s->tr.rps * (double)pre_secs;
		out->total += (uint64_t)pre_n;
		out->by_class[5] += (uint64_t)(pre_n * s->tr.stable_error_rate);
	}
	if (!hist || !s->latency)
		return;
	const uint64_t *hi = cum_hist(s, tg, t), *lo = f ? cum_hist(s, tg, f - 1) : NULL;
	for (int b = 0; b < STATS_BUCKETS; b++) {
		out->hist[b] = hi[b] - (lo ? lo[b] : 0);
		if (pre_n > 0)
			out->hist[b] += (uint64_t)(pre_n * s->lat[TARGET_STABLE].p[b]);
	}
}

/* The request rate at <t_ms>: rps, then (rps_change_at_ms) rps_after, as
 * a step or a linear ramp over rps_ramp_ms. */
static double rps_at(const sim_traffic *t, uint64_t t_ms)
{
	if (!t->rps_change_at_ms || t_ms < t->rps_change_at_ms)
		return t->rps;
	uint64_t in = t_ms - t->rps_change_at_ms;
	if (t->rps_ramp_ms && in < t->rps_ramp_ms)
		return t->rps + (t->rps_after - t->rps) * (double)in / (double)t->rps_ramp_ms;
	return t->rps_after;
}

/* Bursts. With burst_size B > 1 a version's failures come B at a time: a
 * request of it outside a burst starts one with probability
 * q = p / (B (1 - p) + p), and the burst makes it and the version's next
 * B - 1 requests fail. Starts are thus a Poisson (Bernoulli) process in the
 * version's requests, the share of bursts that falls on a version is its
 * share of the failures, and its long-run error rate is exactly p: B
 * failures after on average (1 - q) / q good requests, B q / (1 - q + B q)
 * = p. A burst that has begun goes on across a change of rate. Returns how
 * many of <n> requests of <tg> fail at rate <p>. */
static uint64_t burst_errors(sim *s, int tg, uint64_t n, double p)
{
	uint64_t B = s->tr.burst_size, left = n, errors = 0;
	double q = p >= 1 ? 1 : p / ((double)B * (1 - p) + p);
	/* each pass ends a burst's share of the tick or starts a burst, so it
	 * runs at most 2 n + 1 times */
	while (left > 0) {
		uint64_t *b = &s->burst_left[tg];
		if (*b > 0) {
			uint64_t k = *b < left ? *b : left;
			errors += k;
			left -= k;
			*b -= k;
			continue;
		}
		if (!(q > 0))
			break;
		/* good requests before the next start: geometric */
		double g = q >= 1 ? 0 : floor(log1p(-rng_uniform(&s->rng)) / log1p(-q));
		if (g >= (double)left)
			break;
		left -= (uint64_t)g;
		*b = B;
	}
	return errors;
}

/* One version's errors among <n> requests at <t_ms>: the outage's rate
 * during the shared outage, else the version's own (bursts or binomial). */
static uint64_t synth_errors(sim *s, int tg, uint64_t n, uint64_t t_ms)
{
	const sim_traffic *t = &s->tr;
	if (t->outage_for_ms && t_ms >= t->outage_at_ms && t_ms - t->outage_at_ms < t->outage_for_ms)
		return binomial(&s->rng, n, &s->err_outage);
	bool after;
	const brate *b;
	double p;
	if (tg == TARGET_CANARY) {
		after = t->change_at_ms && t_ms >= t->change_at_ms;
		b = after ? &s->err_canary_after : &s->err_canary;
		p = after ? t->canary_error_rate_after : t->canary_error_rate;
	} else {
		after = t->stable_change_at_ms && t_ms >= t->stable_change_at_ms;
		b = after ? &s->err_stable_after : &s->err_stable;
		p = after ? t->stable_error_rate_after : t->stable_error_rate;
	}
	if (t->burst_size > 1)
		return burst_errors(s, tg, n, p);
	return binomial(&s->rng, n, b);
}

/* One tick of synthetic traffic starting at <t_ms>. */
static void synth_tick(sim *s, uint64_t t_ms)
{
	const sim_traffic *t = &s->tr;
	prate changed;
	const prate *pr = &s->per_tick;
	if (t->rps_change_at_ms && t_ms >= t->rps_change_at_ms) {
		prate_init(&changed, rps_at(t, t_ms) * SIM_TICK_MS / 1000.0);
		pr = &changed;
	}
	uint64_t n = poisson(&s->rng, pr);
	int w = s->st.weight < 0 ? 0 : s->st.weight > 100 ? 100 : s->st.weight;
	uint64_t nc = binomial(&s->rng, n, &s->split[w]);
	uint64_t ns = n - nc;
	uint64_t es = synth_errors(s, TARGET_STABLE, ns, t_ms);
	uint64_t ec = synth_errors(s, TARGET_CANARY, nc, t_ms);
	add_requests(s, TARGET_STABLE, ns, es, NULL);
	add_requests(s, TARGET_CANARY, nc, ec,
	             t_ms < t->canary_warmup_ms ? &s->lat_warm : NULL);
}

/* The share of a recorded second's <count> that falls in tick <j> of it. */
static uint64_t tick_share(uint64_t count, int j)
{
	return count * (uint64_t)(j + 1) / TICKS_PER_SEC - count * (uint64_t)j / TICKS_PER_SEC;
}

/* One tick of recorded traffic: a tenth of the second's counts, and a
 * tenth of its recorded histograms, or without them the canary's requests
 * at the second's p99 (so that a window's p99 is the request-weighted 99th
 * percentile of the recorded ones). */
/* Adds <k> latencies drawn from recorded histogram <h> (of <total>
 * requests) to <out>: one at a time for few, else the expected count per
 * bucket rounded at random. */
static void draw_hist(sim *s, uint64_t *out, const uint64_t *h, uint64_t total, uint64_t k)
{
	if (!total || !k)
		return;
	if (k > LAT_EXACT_MAX) {
		for (int b = 0; b < STATS_BUCKETS; b++) {
			double x = (double)k * (double)h[b] / (double)total;
			uint64_t n = (uint64_t)x;
			if (rng_uniform(&s->rng) < x - (double)n)
				n++;
			out[b] += n;
		}
		return;
	}
	for (uint64_t i = 0; i < k; i++) {
		uint64_t r = (uint64_t)(rng_uniform(&s->rng) * (double)total);
		int b = 0;
		for (; b < STATS_BUCKETS - 1 && r >= h[b]; b++)
			r -= h[b];
		out[b]++;
	}
}

/* One tick of a recorded second replayed at the engine's weight: a tenth
 * of the second's requests of both versions, split between them as the
 * engine's weight splits them; each version's errors at its recorded
 * error rate of the second and latencies drawn from its recorded
 * histogram (a version without requests that second borrows the other's:
 * a recording made before the canary had traffic replays as A/A). Without
 * histograms, the canary's requests take the second's canary_p99_ms. */
static void replay_tick_at_weight(sim *s, const sim_second *d, int j)
{
	uint64_t n = tick_share(d->stable_requests + d->canary_requests, j);
	int w = s->st.weight < 0 ? 0 : s->st.weight > 100 ? 100 : s->st.weight;
	uint64_t nc = binomial(&s->rng, n, &s->split[w]), ns = n - nc;
	const uint64_t req[TARGET_COUNT] = { d->stable_requests, d->canary_requests };
	const uint64_t errs[TARGET_COUNT] = { d->stable_errors, d->canary_errors };
	const uint64_t k[TARGET_COUNT] = { ns, nc };
	for (int tg = 0; tg < TARGET_COUNT; tg++) {
		int src = req[tg] ? tg : 1 - tg;
		brate er;
		brate_init(&er, req[src] ? (double)errs[src] / (double)req[src] : 0);
		uint64_t e = binomial(&s->rng, k[tg], &er);
		bool lat = s->latency;
		s->latency = false;
		add_requests(s, tg, k[tg], e, NULL);
		s->latency = lat;
		if (!lat)
			continue;
		if (d->hist)
			draw_hist(s, s->run[tg].hist, &d->hist[src * STATS_BUCKETS], req[src], k[tg]);
		else if (tg == TARGET_CANARY && d->has_p99 && k[tg] > 0)
			s->run[tg].hist[stats_bucket_of((uint64_t)(d->canary_p99_ms * 1000.0))] += k[tg];
	}
}

static void replay_tick(sim *s, size_t sec, int j)
{
	const sim_second *d = &s->tr.data->sec[sec];
	if (!s->tr.replay_recorded_split) {
		replay_tick_at_weight(s, d, j);
		return;
	}
	uint64_t ns = tick_share(d->stable_requests, j), es = tick_share(d->stable_errors, j);
	uint64_t nc = tick_share(d->canary_requests, j), ec = tick_share(d->canary_errors, j);
	if (es > ns)
		es = ns;
	if (ec > nc)
		ec = nc;
	bool lat = s->latency;
	s->latency = false; /* counts only: the recording has no latencies to draw */
	add_requests(s, TARGET_STABLE, ns, es, NULL);
	add_requests(s, TARGET_CANARY, nc, ec, NULL);
	s->latency = lat;
	if (!lat)
		return;
	if (d->hist) {
		/* the recorded buckets, a tenth of each per tick */
		for (int tg = 0; tg < TARGET_COUNT; tg++)
			for (int b = 0; b < STATS_BUCKETS; b++)
				s->run[tg].hist[b] += tick_share(d->hist[tg * STATS_BUCKETS + b], j);
	} else if (d->has_p99 && nc > 0) {
		s->run[TARGET_CANARY].hist[stats_bucket_of((uint64_t)(d->canary_p99_ms * 1000.0))] += nc;
	}
}

/* One tick of traffic from <t>, synthetic or replayed, into the
 * per-second slots (the seconds before it closed first); returns the time
 * after it. Both rule sets' loops run on it. */
static uint64_t traffic_tick(sim *s, uint64_t t)
{
	finish_seconds(s, (size_t)((t + PHASE_MS) / 1000));
	if (s->tr.data)
		replay_tick(s, (size_t)(t / 1000), (int)(t % 1000 / SIM_TICK_MS));
	else
		synth_tick(s, t);
	return t + SIM_TICK_MS;
}

/* Has the engine decided? Fills <r> when it has. */
static bool decided(const sim *s, uint64_t t_ms, sim_result *r)
{
	const eng_state *st = &s->st;
	if (st->phase == ENG_PROMOTING || st->phase == ENG_SUCCEEDED)
		r->outcome = SIM_PROMOTED;
	else if (st->phase == ENG_FAILED)
		r->outcome = SIM_ROLLED_BACK;
	else if (st->phase == ENG_PAUSED)
		/* only maxDuration pauses a simulated rollout (no operator):
		 * it ends undecided, at that time */
		r->outcome = SIM_UNDECIDED;
	else
		return false;
	r->decision_ms = t_ms;
	return true;
}

static void argo_run(sim *s, uint64_t limit, sim_result *r);

void sim_run(sim *s, uint64_t seed, sim_result *r)
{
	memset(r, 0, sizeof *r);
	rng_seed(&s->rng, seed);
	memset(s->run, 0, sizeof s->run);
	memset(s->burst_left, 0, sizeof s->burst_left);
	s->rows_done = 0;
	eng_state_init(&s->st, "stable", T0_MS);
	eng_cmd cmd = { .kind = ENG_CMD_ROLLOUT, .revision = "canary", .actor = "simulate" };
	char err[128];
	if (eng_command(&s->st, &s->pol, T0_MS, &cmd, &s->out, err, sizeof err) < 0) {
		r->outcome = SIM_UNDECIDED;
		snprintf(r->message, sizeof r->message, "%s", err);
		return;
	}
	uint64_t limit = s->limit_ms;
	if (s->tr.data && (uint64_t)s->tr.data->n * 1000 < limit)
		limit = (uint64_t)s->tr.data->n * 1000;
	if (s->rules.kind == SIM_RULES_ARGO) {
		argo_run(s, limit, r);
		return;
	}
	bool seq = s->pol.judge == ENG_JUDGE_SEQUENTIAL;
	eng_reading readings[ENG_MAX_METRICS];
	uint64_t t = 0;
	bool done = false;
	while (!done && t < limit) {
		t = traffic_tick(s, t);
		uint64_t now = T0_MS + t;
		eng_tick(&s->st, &s->pol, now, true, &s->out);
		if ((done = decided(s, t, r)))
			break;
		if (seq) {
			eng_counts c = {
				.canary_requests = s->run[TARGET_CANARY].total,
				.canary_errors = s->run[TARGET_CANARY].by_class[5],
				.stable_requests = s->run[TARGET_STABLE].total,
				.stable_errors = s->run[TARGET_STABLE].by_class[5],
				.canary_latency = s->latency ? &s->run[TARGET_CANARY] : NULL,
				.stable_latency = s->latency ? &s->run[TARGET_STABLE] : NULL,
			};
			eng_observe(&s->st, &s->pol, now, &c, &s->out);
			if ((done = decided(s, t, r)))
				break;
		}
		if (eng_check_due(&s->st, &s->pol, now)) {
			rd_read_builtin(&s->pol, SEC0 + (t + PHASE_MS) / 1000, SEC0, sim_sum, s,
			                readings);
			eng_check(&s->st, &s->pol, now, readings, &s->out);
			r->checks++;
			done = decided(s, t, r);
		}
	}
	if (!done) {
		r->outcome = SIM_UNDECIDED;
		r->decision_ms = t;
	}
	/* Flagger rolls back on the scheduler's next run after the check that
	 * made failedChecks reach the threshold (scheduler.go, "check if the
	 * number of failed checks reached the threshold"), an interval later
	 * than canaryd does */
	if (done && s->rules.kind == SIM_RULES_FLAGGER && r->outcome == SIM_ROLLED_BACK &&
	    s->st.failed_checks >= s->pol.threshold)
		r->decision_ms += s->pol.interval_ms;
	r->final_weight = s->st.weight;
	r->canary_requests = s->run[TARGET_CANARY].total;
	r->canary_errors = s->run[TARGET_CANARY].by_class[5];
	snprintf(r->message, sizeof r->message, "%s", s->st.message);
}

/* ---- other tools' rules ---- */

int sim_set_rules(sim *s, const sim_rules *r, char *err, size_t errlen)
{
	if (r->failure_limit < 0 || r->consecutive_error_limit < 0)
		return fail(err, errlen, "failure and consecutive error limits must be 0 or more");
	s->pol = s->pol0;
	s->rules.kind = SIM_RULES_CANARYD;
	if (r->kind != SIM_RULES_CANARYD) {
		const char *who = r->kind == SIM_RULES_FLAGGER ? "flagger" : "argo";
		for (int i = 0; i < s->pol.n_metrics; i++) {
			const eng_metric *m = &s->pol.metrics[i];
			if (m->relative || m->baseline_window_ms || m->failure_duration_ms)
				return fail(err, errlen, "%s's rules have no relative thresholds, baselines or "
				            "failureDuration: metric '%s' uses one", who, m->name);
		}
		/* neither judges on a sequential test, waits out a warm-up of its
		 * own or ends an analysis after maxDuration */
		s->pol.judge = ENG_JUDGE_THRESHOLD;
		s->pol.warmup_ms = 0;
		s->pol.max_duration_ms = 0;
	}
	if (r->kind == SIM_RULES_FLAGGER) {
		/* GetAnalysisInterval: "if interval < 10*time.Second { return
		 * time.Second * 10 }"; a metric without data fails the check
		 * ("Halt advancement no values found" counts a failed check) */
		if (s->pol.interval_ms < 10000)
			s->pol.interval_ms = 10000;
		s->pol.on_no_data = ENG_NODATA_FAIL;
	} else if (r->kind == SIM_RULES_ARGO) {
		s->n_argo_steps = 0;
		if (s->pol.n_step_weights > 0) {
			for (int i = 0; i < s->pol.n_step_weights; i++)
				s->argo_steps[s->n_argo_steps++] = s->pol.step_weights[i];
		} else if (s->pol.step_weight > 0) {
			for (int w = s->pol.step_weight; s->n_argo_steps < ENG_MAX_STEPS; w += s->pol.step_weight) {
				s->argo_steps[s->n_argo_steps++] = w < s->pol.max_weight ? w : s->pol.max_weight;
				if (w >= s->pol.max_weight)
					break;
			}
		}
		if (s->n_argo_steps == 0) {
			s->pol = s->pol0;
			return fail(err, errlen, "argo's rules need step weights (stepWeight or stepWeights)");
		}
	}
	s->rules = *r;
	return 0;
}

/* An Argo measurement of metric <m> from reading <rd>: the value against
 * its thresholdRange as a successCondition (no failureCondition, so never
 * Inconclusive), an Error when the window has no data (a Prometheus query
 * whose result is empty makes "result[0]" an evaluation error). */
typedef enum { ARGO_OK = 0, ARGO_FAILED, ARGO_ERROR } argo_phase;

static argo_phase argo_measure(const eng_metric *m, const eng_reading *rd)
{
	if (!rd->has_data)
		return ARGO_ERROR;
	if ((m->has_min && rd->value < m->min) || (m->has_max && rd->value > m->max))
		return ARGO_FAILED;
	return ARGO_OK;
}

/* Argo Rollouts: a canary with steps "setWeight: w, pause: interval" for
 * each step weight, then promoted, and a background AnalysisRun started
 * with the rollout whose metrics are measured every interval (the first
 * at analysis.warmup as Argo's initialDelay, else one interval in). Steps
 * do not wait for measurements; a metric's counters are Argo's
 * (analysis.go: Successful and Failed and Inconclusive reset
 * ConsecutiveError, Error adds to it), and the rollout aborts when
 * Failed > failureLimit or ConsecutiveError > consecutiveErrorLimit
 * (assessMetricFailureInconclusiveOrError). */
static void argo_run(sim *s, uint64_t limit, sim_result *r)
{
	int failed[ENG_MAX_METRICS] = { 0 }, cerr[ENG_MAX_METRICS] = { 0 };
	eng_reading readings[ENG_MAX_METRICS];
	uint64_t iv = s->pol.interval_ms ? s->pol.interval_ms : 1000;
	uint64_t next_measure = s->pol.warmup_ms ? s->pol.warmup_ms : iv;
	int step = 0;
	s->st.weight = s->argo_steps[0];
	uint64_t t = 0;
	while (t < limit) {
		t = traffic_tick(s, t);
		if (t >= next_measure) {
			next_measure += iv;
			rd_read_builtin(&s->pol, SEC0 + (t + PHASE_MS) / 1000, SEC0, sim_sum, s, readings);
			r->checks++;
			for (int i = 0; i < s->pol.n_metrics; i++) {
				argo_phase ph = argo_measure(&s->pol.metrics[i], &readings[i]);
				if (ph == ARGO_ERROR) {
					cerr[i]++;
				} else {
					cerr[i] = 0;
					failed[i] += ph == ARGO_FAILED;
				}
				if (failed[i] > s->rules.failure_limit ||
				    cerr[i] > s->rules.consecutive_error_limit) {
					r->outcome = SIM_ROLLED_BACK;
					r->decision_ms = t;
					snprintf(r->message, sizeof r->message,
					         failed[i] > s->rules.failure_limit
					         ? "metric '%s': failed (%d) > failureLimit (%d)"
					         : "metric '%s': consecutiveErrors (%d) > consecutiveErrorLimit (%d)",
					         s->pol.metrics[i].name,
					         failed[i] > s->rules.failure_limit ? failed[i] : cerr[i],
					         failed[i] > s->rules.failure_limit ? s->rules.failure_limit
					                                            : s->rules.consecutive_error_limit);
					s->st.weight = 0;
					goto out;
				}
			}
		}
		if (t >= (uint64_t)(step + 1) * iv) {
			if (++step >= s->n_argo_steps) {
				r->outcome = SIM_PROMOTED;
				r->decision_ms = t;
				s->st.weight = 100;
				snprintf(r->message, sizeof r->message, "all %d steps completed", s->n_argo_steps);
				goto out;
			}
			s->st.weight = s->argo_steps[step];
		}
	}
	r->outcome = SIM_UNDECIDED;
	r->decision_ms = t;
	snprintf(r->message, sizeof r->message, "undecided at step %d of %d", step + 1, s->n_argo_steps);
out:
	r->final_weight = s->st.weight;
	r->canary_requests = s->run[TARGET_CANARY].total;
	r->canary_errors = s->run[TARGET_CANARY].by_class[5];
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* The <q> quantile (nearest rank) of the sorted <v> of <n>. */
static double nearest_rank(const double *v, int n, double q)
{
	int k = (int)ceil(q * n);
	if (k < 1)
		k = 1;
	if (k > n)
		k = n;
	return v[k - 1];
}

void sim_run_many(sim *s, int runs, uint64_t seed, sim_summary *out, sim_each_fn each,
                  void *arg)
{
	memset(out, 0, sizeof *out);
	out->median_decision_s = out->p95_decision_s = -1;
	if (runs < 1)
		return;
	double *secs = xcalloc((size_t)runs, sizeof *secs);
	int n = 0;
	for (int i = 0; i < runs; i++) {
		sim_result r;
		sim_run(s, seed + (uint64_t)i, &r);
		if (i == 0)
			out->first = r;
		if (each)
			each(arg, i, seed + (uint64_t)i, &r);
		out->runs++;
		if (r.outcome == SIM_PROMOTED)
			out->promoted++;
		else if (r.outcome == SIM_ROLLED_BACK)
			out->rolled_back++;
		else
			out->undecided++;
		if (r.outcome != SIM_UNDECIDED)
			secs[n++] = (double)r.decision_ms / 1000.0;
	}
	if (n > 0) {
		qsort(secs, (size_t)n, sizeof *secs, cmp_double);
		out->median_decision_s = n % 2 ? secs[n / 2] : (secs[n / 2 - 1] + secs[n / 2]) / 2;
		out->p95_decision_s = nearest_rank(secs, n, 0.95);
	}
	free(secs);
}

/* ---- recorded traffic ---- */

/* Parses a non-negative integer field at *p (spaces around allowed),
 * leaving *p after it and its separator. */
static int csv_uint(const char **p, const char *end, uint64_t *v)
{
	const char *q = *p;
	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	if (q >= end || !isdigit((unsigned char)*q))
		return -1;
	uint64_t x = 0;
	while (q < end && isdigit((unsigned char)*q)) {
		if (x > (UINT64_MAX - 9) / 10)
			return -1;
		x = x * 10 + (uint64_t)(*q++ - '0');
	}
	while (q < end && (*q == ' ' || *q == '\t'))
		q++;
	if (q < end && *q != ',')
		return -1;
	*p = q < end ? q + 1 : q;
	*v = x;
	return 0;
}

static int csv_double(const char **p, const char *end, double *v)
{
	char tmp[64];
	const char *q = *p;
	size_t l = 0;
	while (q < end && *q != ',' && l + 1 < sizeof tmp)
		tmp[l++] = *q++;
	tmp[l] = '\0';
	if (q < end && *q != ',')
		return -1;
	/* a decimal number: strtod alone also reads "0x10", "+5" and "nan" */
	if (strspn(tmp, " \t0123456789.eE+-") != l || !isdigit((unsigned char)tmp[strspn(tmp, " \t")]))
		return -1;
	char *e;
	errno = 0;
	double x = strtod(tmp, &e);
	if (e == tmp) /* no number, before the blanks after it are skipped */
		return -1;
	while (*e == ' ' || *e == '\t')
		e++;
	if (*e || errno || !(x >= 0) || isinf(x))
		return -1;
	*p = q < end ? q + 1 : q;
	*v = x;
	return 0;
}

/* Parses a histogram column at *p up to the next ',' or <end>:
 * "BUCKET:COUNT;..." with ascending buckets, into h[0..STATS_BUCKETS),
 * its total in *total. Leaves *p after the column and its separator.
 * Returns 0, or -1 with what is wrong in <why>. */
static int csv_hist(const char **p, const char *end, uint64_t *h, uint64_t *total,
                    const char **why)
{
	const char *q = *p;
	const char *c = memchr(q, ',', (size_t)(end - q));
	const char *fe = c ? c : end;
	int last = -1;
	*total = 0;
	while (q < fe && (*q == ' ' || *q == '	'))
		q++;
	while (q < fe) {
		uint64_t b = 0, n = 0;
		int digits = 0;
		for (; q < fe && isdigit((unsigned char)*q) && digits < 4; q++, digits++)
			b = b * 10 + (uint64_t)(*q - '0');
		if (!digits || q >= fe || *q != ':') {
			*why = "is not BUCKET:COUNT;...";
			return -1;
		}
		if (b >= STATS_BUCKETS || (int)b <= last) {
			*why = "has a bucket out of order or above the last one";
			return -1;
		}
		q++;
		digits = 0;
		for (; q < fe && isdigit((unsigned char)*q); q++, digits++) {
			if (n > (UINT64_MAX - 9) / 10)
				break;
			n = n * 10 + (uint64_t)(*q - '0');
		}
		if (!digits || (q < fe && isdigit((unsigned char)*q))) {
			*why = "is not BUCKET:COUNT;...";
			return -1;
		}
		if (*total > UINT64_MAX - n) {
			*why = "counts more requests than can be";
			return -1;
		}
		h[b] = n;
		*total += n;
		last = (int)b;
		while (q < fe && (*q == ' ' || *q == '	'))
			q++;
		if (q < fe) {
			if (*q != ';') {
				*why = "is not BUCKET:COUNT;...";
				return -1;
			}
			q++;
			if (q >= fe) { /* a trailing ';' */
				*why = "is not BUCKET:COUNT;...";
				return -1;
			}
		}
	}
	*p = c ? c + 1 : end;
	return 0;
}

/* Are the characters of [p, e) blanks only? */
static bool blank(const char *p, const char *e)
{
	for (; p < e; p++)
		if (*p != ' ' && *p != '\t')
			return false;
	return true;
}

int sim_parse_csv(const char *name, const char *text, size_t len, sim_data *out,
                  char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	const char *p = text, *end = text + len;
	size_t cap = 0;
	uint64_t first = 0, last = 0;
	bool any = false;
	int line = 0;
	static const char *const cols[] = { "second", "stable_requests", "stable_errors",
	                                    "canary_requests", "canary_errors" };
	while (p < end) {
		line++;
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		const char *le = eol;
		if (le > p && le[-1] == '\r')
			le--;
		const char *q = p;
		p = eol < end ? eol + 1 : end;
		while (q < le && (*q == ' ' || *q == '\t'))
			q++;
		if (q == le || *q == '#')
			continue;
		if (line == 1 && isalpha((unsigned char)*q))
			continue; /* the header */
		uint64_t v[5];
		for (int i = 0; i < 5; i++) {
			if (csv_uint(&q, le, &v[i]) < 0) {
				fail(err, errlen, "%s:%d: %s is not a non-negative integer", name, line, cols[i]);
				goto bad;
			}
			if (i < 4 && q >= le) {
				fail(err, errlen, "%s:%d: expected at least 5 columns: second, stable_requests, "
				     "stable_errors, canary_requests, canary_errors[, canary_p99_ms]", name, line);
				goto bad;
			}
		}
		double p99 = 0;
		bool has_p99 = false;
		uint64_t *hist = NULL;
		if (q < le) {
			const char *c = memchr(q, ',', (size_t)(le - q));
			if (c && blank(q, c)) {
				q = c + 1; /* canary_p99_ms left empty before the histograms */
			} else if (csv_double(&q, le, &p99) < 0) {
				fail(err, errlen, "%s:%d: canary_p99_ms is not a number of milliseconds", name, line);
				goto bad;
			} else {
				has_p99 = true;
			}
		}
		if (q < le) {
			/* stable_hist, canary_hist */
			hist = xcalloc(TARGET_COUNT * STATS_BUCKETS, sizeof *hist);
			static const char *const hcols[] = { "stable_hist", "canary_hist" };
			for (int tg = 0; tg < TARGET_COUNT; tg++) {
				uint64_t total;
				const char *why = "is missing";
				bool more = memchr(q, ',', (size_t)(le - q)) != NULL;
				if ((tg == 0 && !more) || (tg == 1 && more) ||
				    csv_hist(&q, le, &hist[tg * STATS_BUCKETS], &total, &why) < 0) {
					if (tg == 1 && more)
						why = "is followed by more columns (there are at most 8)";
					fail(err, errlen, "%s:%d: %s %s", name, line, hcols[tg], why);
					free(hist);
					goto bad;
				}
				uint64_t want = tg == TARGET_STABLE ? v[1] : v[3];
				if (total != want) {
					fail(err, errlen, "%s:%d: %s counts %llu requests, not the %llu of %s",
					     name, line, hcols[tg], (unsigned long long)total,
					     (unsigned long long)want, tg == TARGET_STABLE ? "stable_requests"
					                                                   : "canary_requests");
					free(hist);
					goto bad;
				}
			}
		}
		if (v[2] > v[1] || v[4] > v[3]) {
			fail(err, errlen, "%s:%d: more errors than requests", name, line);
			free(hist);
			goto bad;
		}
		if (!any) {
			first = v[0];
		} else if (v[0] <= last) {
			fail(err, errlen, "%s:%d: second %llu does not come after %llu", name, line,
			     (unsigned long long)v[0], (unsigned long long)last);
			free(hist);
			goto bad;
		}
		if (v[0] - first >= MAX_LIMIT_MS / 1000) {
			fail(err, errlen, "%s:%d: second %llu is more than 24h after the first", name, line,
			     (unsigned long long)v[0]);
			free(hist);
			goto bad;
		}
		size_t idx = (size_t)(v[0] - first);
		if (idx >= cap) {
			size_t ncap = cap ? cap * 2 : 256;
			while (ncap <= idx)
				ncap *= 2;
			out->sec = xrealloc(out->sec, ncap * sizeof *out->sec);
			memset(out->sec + cap, 0, (ncap - cap) * sizeof *out->sec);
			cap = ncap;
		}
		sim_second *d = &out->sec[idx];
		d->stable_requests = v[1];
		d->stable_errors = v[2];
		d->canary_requests = v[3];
		d->canary_errors = v[4];
		d->has_p99 = has_p99;
		d->canary_p99_ms = p99;
		d->hist = hist;
		out->n = idx + 1;
		last = v[0];
		any = true;
	}
	if (!any) {
		fail(err, errlen, "%s: no data rows", name);
		goto bad;
	}
	return 0;
bad:
	sim_data_release(out);
	return -1;
}

void sim_data_release(sim_data *d)
{
	for (size_t i = 0; d->sec && i < d->n; i++)
		free(d->sec[i].hist);
	free(d->sec);
	d->sec = NULL;
	d->n = 0;
}
