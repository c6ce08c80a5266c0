/* judge.c - see judge.h; the method and its guarantees are in
 * docs/analysis.md. Everything is computed in logs: likelihood ratios of a
 * long rollout reach e^-100000 and must neither underflow to zero nor turn
 * into NaN. */
#include "judge.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#define LN2 0.69314718054994530942
#define PI 3.14159265358979323846

/* Jeffreys' Beta(1/2, 1/2) mixes the binomial confidence sequences: it
 * weighs small error rates, where canaries live, more than a flat prior. */
#define CS_A 0.5
#define CS_B 0.5
#define BISECT_ITERS 48

/* Most canaries that fail, fail from the start: the evidence component
 * started with the rollout gets 3/4 of the mass, the steps share the rest. */
#define JUDGE_START_WEIGHT 0.75
/* The error test gets 4/5 of alpha when latency is judged too: errors are
 * the sharper and more common signal, and a threshold of 1/(0.8 alpha)
 * instead of 1/(0.5 alpha) buys about 0.5 s on a 20% failing canary. */
#define JUDGE_ERRORS_SHARE 0.8

void judge_params_defaults(judge_params *p)
{
	p->alpha = 0.01;
	p->min_samples = 100;
	p->margin = 0.005;
	p->latency_ratio = 1.25;
}

int judge_params_check(const judge_params *p, char *err, size_t errlen)
{
	if (!(p->alpha > 0 && p->alpha <= 0.5)) {
		snprintf(err, errlen, "alpha must be in (0, 0.5]: %g", p->alpha);
		return -1;
	}
	if (!(p->margin > 0 && p->margin < 1)) {
		snprintf(err, errlen, "margin must be in (0, 1): %g", p->margin);
		return -1;
	}
	if (!(p->latency_ratio == 0 ||
	      (p->latency_ratio >= 1 && p->latency_ratio <= 1000))) {
		snprintf(err, errlen,
		         "latency ratio must be 0 (off) or in [1, 1000]: %g",
		         p->latency_ratio);
		return -1;
	}
	return 0;
}

const char *judge_verdict_name(judge_verdict v)
{
	switch (v) {
	case JUDGE_CONTINUE: return "continue";
	case JUDGE_WORSE: return "worse";
	case JUDGE_NONINFERIOR: return "noninferior";
	}
	return "unknown";
}

judge_verdict judge_combine(judge_verdict errors, judge_verdict latency)
{
	if (errors == JUDGE_WORSE || latency == JUDGE_WORSE)
		return JUDGE_WORSE;
	if (errors == JUDGE_NONINFERIOR)
		return JUDGE_NONINFERIOR;
	return JUDGE_CONTINUE;
}

/* ---- the grids ---- */

/* Error test: log odds ratios canary:stable of sqrt(2)^1 .. sqrt(2)^12,
 * i.e. 1.41x to 64x. Half the mass goes to the five large ones (16x and
 * up): a canary failing that much must go within seconds, while small
 * effects have the whole rollout to accumulate evidence. */
#define ERR_BIG 7
static double err_psi(int j)
{
	return (j + 1) * LN2 / 2;
}

/* Latency test: tilts of the ridit score, 0.25 * sqrt(2)^0 .. ^11 (0.25 to
 * 11.3): small tilts find small shifts, large ones find large shifts fast. */
static double lat_lambda(int j)
{
	return 0.25 * exp(j * LN2 / 2);
}

/* ---- the mixture over effect sizes and start points ---- */

static void mix_recompute(judge_mix *m)
{
	double mx = -1e300;
	for (int k = 0; k < JUDGE_STARTS; k++) {
		if (!m->active[k])
			continue;
		for (int j = 0; j < JUDGE_GRID; j++) {
			double x = m->log_w[k] + m->log_g[j] + m->log_comp[k][j];
			if (x > mx)
				mx = x;
		}
	}
	double sum = 0;
	for (int k = 0; k < JUDGE_STARTS; k++) {
		if (!m->active[k])
			continue;
		for (int j = 0; j < JUDGE_GRID; j++)
			sum += exp(m->log_w[k] + m->log_g[j] + m->log_comp[k][j] -
			           mx);
	}
	/* sum >= 1: the maximum term contributes exactly 1 */
	m->log_e = mx + log(sum);
	if (m->log_e > m->max_log_e)
		m->max_log_e = m->log_e;
}

/* Starts component <slot> with weight <w> (a share of the total mass 1 never
 * handed out twice: see docs/analysis.md, "Restarts at steps"). */
static void mix_start(judge_mix *m, int slot, double w)
{
	m->active[slot] = true;
	m->log_w[slot] = log(w);
	for (int j = 0; j < JUDGE_GRID; j++)
		m->log_comp[slot][j] = 0;
	mix_recompute(m);
}

/* <g> gives the grid's weights (summing to 1). */
static void mix_init(judge_mix *m, const double *g)
{
	memset(m, 0, sizeof *m);
	for (int j = 0; j < JUDGE_GRID; j++)
		m->log_g[j] = log(g[j]);
	m->max_log_e = -1e300;
	mix_start(m, 0, JUDGE_START_WEIGHT);
}

/* Multiplies every active component by the likelihood ratio of one
 * increment, given per effect size as <loglr>. */
static void mix_add(judge_mix *m, const double *loglr)
{
	for (int k = 0; k < JUDGE_STARTS; k++) {
		if (!m->active[k])
			continue;
		for (int j = 0; j < JUDGE_GRID; j++)
			m->log_comp[k][j] += loglr[j];
	}
	mix_recompute(m);
}

static void fill_evidence(judge_evidence *ev, const judge_mix *m,
                          double alpha)
{
	ev->e_value = exp(m->log_e < 700 ? m->log_e : 700);
	ev->p_value = m->max_log_e <= 0 ? 1 : exp(-m->max_log_e);
	ev->threshold = 1 / alpha;
}

/* ---- init and steps ---- */

/* The latency shift allowing <ratio>: the least k such that multiplying
 * any integer latency by <ratio> moves it up at most k buckets, so that
 * "canary <= ratio x stable" implies "canary bucket - k <= stable bucket". */
static int shift_for_ratio(double ratio)
{
	int k = 0;
	for (int b = 0; b < STATS_BUCKETS - 1; b++) {
		uint64_t lo, hi;
		stats_bucket_bounds(b, &lo, &hi);
		double y = floor((double)(hi - 1) * ratio);
		if (y > 1e18)
			y = 1e18;
		int bb = stats_bucket_of((uint64_t)y);
		if (bb - b > k)
			k = bb - b;
	}
	return k;
}

void judge_init(judge_state *s, const judge_params *p)
{
	memset(s, 0, sizeof *s);
	judge_params d;
	judge_params_defaults(&d);
	s->p = *p;
	/* a bad field falls back to its default rather than to undefined
	 * arithmetic: the config layer reports it with judge_params_check */
	if (!(p->alpha > 0 && p->alpha <= 0.5))
		s->p.alpha = d.alpha;
	if (!(p->margin > 0 && p->margin < 1))
		s->p.margin = d.margin;
	if (!(p->latency_ratio == 0 ||
	      (p->latency_ratio >= 1 && p->latency_ratio <= 1000)))
		s->p.latency_ratio = d.latency_ratio;

	if (s->p.latency_ratio > 0) {
		s->alpha_errors = s->p.alpha * JUDGE_ERRORS_SHARE;
		s->alpha_latency = s->p.alpha * (1 - JUDGE_ERRORS_SHARE);
		s->latency_shift = shift_for_ratio(s->p.latency_ratio);
	} else {
		s->alpha_errors = s->p.alpha;
		s->alpha_latency = 0;
	}
	double g[JUDGE_GRID];
	for (int j = 0; j < JUDGE_GRID; j++)
		g[j] = j < ERR_BIG ? 0.5 / ERR_BIG : 0.5 / (JUDGE_GRID - ERR_BIG);
	mix_init(&s->mix_err, g);
	for (int j = 0; j < JUDGE_GRID; j++)
		g[j] = 1.0 / JUDGE_GRID;
	mix_init(&s->mix_lat, g);
	s->canary_upper = 1;
	s->stable_lower = 0;
}

void judge_step(judge_state *s)
{
	s->steps++;
	s->step_canary_n = 0;
	s->cs_fresh = false;
	/* the k-th step gets (1 - w0) * 6/(pi^2 k^2): all steps together get
	 * what the rollout's start did not, however many steps there are */
	double k = (double)s->steps;
	double w = (1 - JUDGE_START_WEIGHT) * 6 / (PI * PI * k * k);
	int slot = 1 + (int)((s->steps - 1) % (JUDGE_STARTS - 1));
	mix_start(&s->mix_err, slot, w);
	mix_start(&s->mix_lat, slot, w);
}

/* ---- errors: Fisher's conditional test, sequentially ---- */

/* Log likelihood ratio, for each odds ratio e^psi_j against 1, of
 * <ec> canary failures among <f> failures in a stratum of <nc> canary and
 * <ns> stable requests: the noncentral hypergeometric against the central
 * one. False when the stratum carries no information (or is too large to
 * sum, counted in <skipped>). */
static bool fisher_loglr(double nc, double ns, double ec, double f,
                         double *out, uint64_t *skipped)
{
	double kmin = f > ns ? f - ns : 0;
	double kmax = nc < f ? nc : f;
	if (kmax <= kmin)
		return false;
	if (kmax - kmin + 1 > JUDGE_MAX_TERMS) {
		(*skipped)++;
		return false;
	}
	/* online log-sum-exp of a_k + psi k, a_k the log hypergeometric
	 * weight relative to k = kmin, for psi = 0 and each grid point */
	double m0 = 0, s0 = 1, m[JUDGE_GRID], sm[JUDGE_GRID], psi[JUDGE_GRID];
	for (int j = 0; j < JUDGE_GRID; j++) {
		psi[j] = err_psi(j);
		m[j] = psi[j] * kmin;
		sm[j] = 1;
	}
	double a = 0;
	for (double k = kmin; k < kmax; k++) {
		a += log((nc - k) * (f - k)) - log((k + 1) * (ns - f + k + 1));
		if (a > m0) {
			s0 = s0 * exp(m0 - a) + 1;
			m0 = a;
		} else {
			s0 += exp(a - m0);
		}
		for (int j = 0; j < JUDGE_GRID; j++) {
			double x = a + psi[j] * (k + 1);
			if (x > m[j]) {
				sm[j] = sm[j] * exp(m[j] - x) + 1;
				m[j] = x;
			} else {
				sm[j] += exp(x - m[j]);
			}
		}
	}
	double lse0 = m0 + log(s0);
	for (int j = 0; j < JUDGE_GRID; j++)
		out[j] = psi[j] * ec - (m[j] + log(sm[j]) - lse0);
	return true;
}

/* The beta-binomial mixture martingale for a rate p after x failures in n
 * requests, log M(p) = <lb> - x log p - (n - x) log(1 - p), where <lb> is
 * the log of the marginal likelihood ratio constant B(x+a, n-x+b)/B(a, b):
 * large when p is implausible. */
static double binom_mix_lb(double x, double n)
{
	return lgamma(x + CS_A) + lgamma(n - x + CS_B) - lgamma(n + CS_A + CS_B) -
	       (lgamma(CS_A) + lgamma(CS_B) - lgamma(CS_A + CS_B));
}

static double binom_mix_log(double lb, double x, double n, double p)
{
	return lb - x * log(p) - (n - x) * log1p(-p);
}

/* Upper end of the confidence sequence {p : M(p) < e^c}, an interval
 * around x/n because log M is convex in p. */
static double cs_upper(double x, double n, double c)
{
	if (n <= 0 || x >= n)
		return 1;
	double lb = binom_mix_lb(x, n);
	double lo = x / n, hi = 1;
	for (int i = 0; i < BISECT_ITERS; i++) {
		double mid = (lo + hi) / 2;
		if (binom_mix_log(lb, x, n, mid) < c)
			lo = mid;
		else
			hi = mid;
	}
	return hi;
}

static double cs_lower(double x, double n, double c)
{
	if (n <= 0 || x <= 0)
		return 0;
	double lb = binom_mix_lb(x, n);
	double lo = 0, hi = x / n;
	for (int i = 0; i < BISECT_ITERS; i++) {
		double mid = (lo + hi) / 2;
		if (binom_mix_log(lb, x, n, mid) < c)
			hi = mid;
		else
			lo = mid;
	}
	return lo;
}

/* Increment of one target's counters since the last look; a counter that
 * went down restarts the origin and yields nothing. */
static void err_increment(judge_state *s, int t, uint64_t n, uint64_t e,
                          uint64_t *dn, uint64_t *de, bool *reset)
{
	if (e > n)
		e = n;
	uint64_t ln = s->seen_errors ? s->last_n[t] : 0;
	uint64_t le = s->seen_errors ? s->last_err[t] : 0;
	if (n < ln || e < le) {
		*dn = *de = 0;
		*reset = true;
	} else {
		*dn = n - ln;
		*de = e - le;
		if (*de > *dn) /* torn read of two counters */
			*de = *dn;
	}
	s->last_n[t] = n;
	s->last_err[t] = e;
}

judge_verdict judge_errors(judge_state *s, uint64_t canary_n,
                           uint64_t canary_err, uint64_t stable_n,
                           uint64_t stable_err, judge_evidence *ev)
{
	uint64_t dnc, dec, dns, des;
	bool reset = false;
	err_increment(s, TARGET_CANARY, canary_n, canary_err, &dnc, &dec, &reset);
	err_increment(s, TARGET_STABLE, stable_n, stable_err, &dns, &des, &reset);
	s->seen_errors = true;
	if (reset)
		s->resets++;
	s->n[TARGET_CANARY] += dnc;
	s->err[TARGET_CANARY] += dec;
	s->n[TARGET_STABLE] += dns;
	s->err[TARGET_STABLE] += des;
	s->step_canary_n += dnc;

	double f = (double)dec + (double)des;
	if (dnc > 0 && dns > 0 && f > 0) {
		double loglr[JUDGE_GRID];
		if (fisher_loglr((double)dnc, (double)dns, (double)dec, f, loglr,
		                 &s->skipped))
			mix_add(&s->mix_err, loglr);
	}
	if (s->mix_err.log_e >= -log(s->alpha_errors))
		s->err_worse = true;

	judge_verdict v = JUDGE_CONTINUE;
	if (s->err_worse) {
		v = JUDGE_WORSE;
	} else if (s->step_canary_n >= s->p.min_samples &&
	           s->n[TARGET_CANARY] > 0) {
		/* the bounds are intersected over looks, so once below the
		 * margin they stay there and need no more work; and they move
		 * slowly, so they are refreshed when the data has grown by
		 * 1/64 since the last refresh (or at a step's min_samples) */
		uint64_t cn = s->n[TARGET_CANARY];
		if (s->canary_upper - s->stable_lower >= s->p.margin &&
		    (cn >= s->cs_at_n + s->cs_at_n / 64 + 1 || !s->cs_fresh)) {
			s->cs_at_n = cn;
			s->cs_fresh = true;
			double c = log(2 / s->p.alpha);
			double u = cs_upper((double)s->err[TARGET_CANARY],
			                    (double)s->n[TARGET_CANARY], c);
			double l = cs_lower((double)s->err[TARGET_STABLE],
			                    (double)s->n[TARGET_STABLE], c);
			if (u < s->canary_upper)
				s->canary_upper = u;
			if (l > s->stable_lower)
				s->stable_lower = l;
		}
		if (s->canary_upper - s->stable_lower < s->p.margin)
			v = JUDGE_NONINFERIOR;
	}

	if (ev) {
		memset(ev, 0, sizeof *ev);
		fill_evidence(ev, &s->mix_err, s->alpha_errors);
		ev->canary_n = s->n[TARGET_CANARY];
		ev->stable_n = s->n[TARGET_STABLE];
		ev->canary_rate = ev->canary_n ?
			(double)s->err[TARGET_CANARY] / (double)ev->canary_n : 0;
		ev->stable_rate = ev->stable_n ?
			(double)s->err[TARGET_STABLE] / (double)ev->stable_n : 0;
		ev->diff_upper = s->canary_upper - s->stable_lower;
		ev->step_canary_n = s->step_canary_n;
	}
	return v;
}

/* ---- latency: a sequential rank-sum (ridit) test ---- */

/* Log likelihood-ratio bound, for each tilt lambda_j, of a stratum whose
 * canary histogram (already shifted) is <c> and stable's <st>: e^(lambda W)
 * over the with-replacement moment generating function of the pooled
 * ridits to the power n_c (Hoeffding 1963, Theorem 4), W the sum of the
 * canary's ridits. */
static void ridit_loglr(const double *c, const double *st, double nc,
                        double ntot, double *out)
{
	double lam[JUDGE_GRID], mgf[JUDGE_GRID];
	for (int j = 0; j < JUDGE_GRID; j++) {
		lam[j] = lat_lambda(j);
		mgf[j] = 0;
	}
	double below = 0, w = 0;
	for (int b = 0; b < STATS_BUCKETS; b++) {
		double t = c[b] + st[b];
		if (t == 0)
			continue;
		double u = (below + t / 2) / ntot; /* ridit: mid-rank / N */
		below += t;
		w += c[b] * u;
		for (int j = 0; j < JUDGE_GRID; j++)
			mgf[j] += t * exp(lam[j] * u);
	}
	for (int j = 0; j < JUDGE_GRID; j++)
		out[j] = lam[j] * w - nc * log(mgf[j] / ntot);
}

judge_verdict judge_latency(judge_state *s, const stats_summary *canary,
                            const stats_summary *stable, judge_evidence *ev)
{
	if (s->alpha_latency > 0 && canary && stable) {
		const stats_summary *sum[TARGET_COUNT];
		sum[TARGET_CANARY] = canary;
		sum[TARGET_STABLE] = stable;
		double d[TARGET_COUNT][STATS_BUCKETS];
		double n[TARGET_COUNT] = { 0, 0 };
		bool reset = false;
		for (int t = 0; t < TARGET_COUNT; t++)
			for (int b = 0; b < STATS_BUCKETS; b++) {
				uint64_t prev = s->seen_latency ? s->last_hist[t][b] : 0;
				uint64_t cur = sum[t]->hist[b];
				if (cur < prev)
					reset = true;
				d[t][b] = cur >= prev ? (double)(cur - prev) : 0;
				n[t] += d[t][b];
				s->last_hist[t][b] = cur;
			}
		s->seen_latency = true;
		if (reset) {
			s->resets++;
		} else {
			for (int t = 0; t < TARGET_COUNT; t++)
				s->lat_n[t] += (uint64_t)n[t];
			if (n[TARGET_CANARY] > 0 && n[TARGET_STABLE] > 0) {
				/* compare canary bucket - shift with stable's bucket */
				double cs[STATS_BUCKETS] = { 0 };
				int k = s->latency_shift;
				for (int b = 0; b < STATS_BUCKETS; b++)
					cs[b - k > 0 ? b - k : 0] += d[TARGET_CANARY][b];
				double loglr[JUDGE_GRID];
				ridit_loglr(cs, d[TARGET_STABLE], n[TARGET_CANARY],
				            n[TARGET_CANARY] + n[TARGET_STABLE], loglr);
				mix_add(&s->mix_lat, loglr);
			}
			if (s->mix_lat.log_e >= -log(s->alpha_latency))
				s->lat_worse = true;
		}
	}
	if (ev) {
		memset(ev, 0, sizeof *ev);
		fill_evidence(ev, &s->mix_lat,
		              s->alpha_latency > 0 ? s->alpha_latency : 1);
		ev->canary_n = s->lat_n[TARGET_CANARY];
		ev->stable_n = s->lat_n[TARGET_STABLE];
		ev->step_canary_n = s->step_canary_n;
	}
	return s->lat_worse ? JUDGE_WORSE : JUDGE_CONTINUE;
}
