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
 * started with the rollout gets 3/4 of the mass, later starts (steps, the
 * ends of holds) share the rest. */
#define JUDGE_START_WEIGHT 0.75
/* Shares of alpha: latency 1/5 when judged, guards 1/5 when any; the
 * error test keeps the rest, being the sharper and more common signal. */
#define JUDGE_LATENCY_SHARE 0.2
/* The most one window (JUDGE_WINDOW_LOOKS looks) may multiply a rollback
 * component by: one burst of failures on one version is one piece of
 * evidence, not fifty (docs/analysis.md, "Bursts"). */
#define JUDGE_LOG_CAP 1.6094379124341003 /* ln 5 */
/* Latency's windows are 10 looks and may weigh more: a slow canary is
 * slow on every request, and slowness does not come in the bursts of
 * failures the error test is built to withstand. */
#define JUDGE_LAT_LOG_CAP 3.912023005428146 /* ln 50 */
/* An intermediate step may be taken when the evidence for "no worse than
 * the margin" is at least this (P <= 1/4 of it at the margin itself);
 * promotion needs 1/alpha. */
#define JUDGE_ADVANCE_E 4.0
/* Stable departs from its baseline when its failures over the recent
 * windows exceed mu + Z sqrt(mu) + C, mu what the baseline predicts. */
#define JUDGE_DEPART_Z 4.0
#define JUDGE_DEPART_C 3.0
/* The baseline's prior: as if stable had served this many requests at
 * 0.5 % before the rollout; it keeps the margin on the safe side while
 * stable has served few. */
#define JUDGE_BASE_PRIOR_N 100.0
#define JUDGE_BASE_PRIOR_ERR 0.5
/* A window of the error tests also holds at least this many canary
 * requests, unless it has lasted JUDGE_WINDOW_MAX_LOOKS: a burst of
 * failures on the canary at a low weight then spans at most two windows,
 * while low traffic still gets a window every 10 s. Decided by request
 * counts and looks only, never by outcomes. */
#define JUDGE_WINDOW_CANARY 50
#define JUDGE_WINDOW_MAX_LOOKS 100
/* Prior weight of the dispersion (Pearson's ratio) at 1, in failures'
 * worth of variance: a few odd windows do not temper the test at once. */
#define JUDGE_DISP_PRIOR 10.0
/* Stable requests before its latency quantile is estimated at all, in
 * units of 1/(1 - quantile) (200 for p99). */
#define JUDGE_LAT_MIN_TAIL 2.0

void judge_params_defaults(judge_params *p)
{
	p->alpha = 0.01;
	p->min_samples = 100;
	p->margin = 0.005;
	p->error_ratio = 1.2;
	p->latency_ratio = 1.25;
	p->latency_quantile = 0.99;
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
	if (!(p->error_ratio >= 1 && p->error_ratio <= 100)) {
		snprintf(err, errlen, "error ratio must be in [1, 100]: %g", p->error_ratio);
		return -1;
	}
	if (!(p->latency_ratio == 0 ||
	      (p->latency_ratio >= 1 && p->latency_ratio <= 1000))) {
		snprintf(err, errlen,
		         "latency ratio must be 0 (off) or in [1, 1000]: %g",
		         p->latency_ratio);
		return -1;
	}
	if (!(p->latency_quantile > 0 && p->latency_quantile < 1)) {
		snprintf(err, errlen, "latency quantile must be in (0, 1): %g",
		         p->latency_quantile);
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
	case JUDGE_ADVANCE: return "advance";
	}
	return "unknown";
}

judge_verdict judge_combine(judge_verdict errors, judge_verdict latency)
{
	if (errors == JUDGE_WORSE || latency == JUDGE_WORSE)
		return JUDGE_WORSE;
	return errors;
}

/* ---- the grids ---- */

/* Rollback tests: log odds ratios beyond the null's, sqrt(2)^1 ..
 * sqrt(2)^12, i.e. 1.41x to 64x. Half the mass goes to the five large ones
 * (16x and up): a canary failing that much must go within seconds, while
 * small effects have the whole rollout to accumulate evidence. */
#define ERR_BIG 7
static double err_delta(int j)
{
	return (j + 1) * LN2 / 2;
}

static void err_weights(double *g)
{
	for (int j = 0; j < JUDGE_GRID; j++)
		g[j] = j < ERR_BIG ? 0.5 / ERR_BIG : 0.5 / (JUDGE_GRID - ERR_BIG);
}

/* The error rollback test's weights: component 0 is the plug-in (its
 * effect size is the one the data so far show, fixed before each
 * stratum: Robbins and Siegmund's predictable plug-in), the rest the grid,
 * half of it on the five large effects. The plug-in saves what a grid
 * costs where failures are few (low traffic). */
#define ERR_PLUG_WEIGHT 0.4
static void err_plug_weights(double *g)
{
	g[0] = ERR_PLUG_WEIGHT;
	for (int j = 1; j < JUDGE_GRID; j++)
		g[j] = (1 - ERR_PLUG_WEIGHT) / 2 /
		       (j < ERR_BIG ? ERR_BIG - 1 : JUDGE_GRID - ERR_BIG);
}

/* Non-inferiority: alternatives below the margin's log odds ratio psi0,
 * at psi0 - c_j psi0. c = 1 (the canary exactly as good as stable) gets
 * the most mass; c > 1 is a canary better than stable. */
static const double ni_c[JUDGE_GRID] = {
	0.25, 0.5, 0.75, 1, 1.25, 1.5, 1.75, 2, 2.5, 3, 4, 6
};
static const double ni_g[JUDGE_GRID] = {
	0.03, 0.06, 0.1, 0.35, 0.1, 0.08, 0.06, 0.06, 0.05, 0.04, 0.04, 0.03
};

/* ---- the mixture over effect sizes, start points and windows ---- */

static double comp_log(const judge_mix *m, int k, int j)
{
	double w = m->log_win[k][j];
	return m->log_comp[k][j] + (w < m->log_cap ? w : m->log_cap);
}

static void mix_recompute(judge_mix *m)
{
	double mx = -1e300;
	for (int k = 0; k < JUDGE_STARTS; k++) {
		if (!m->active[k])
			continue;
		for (int j = 0; j < JUDGE_GRID; j++) {
			double x = m->log_w[k] + m->log_g[j] + comp_log(m, k, j);
			if (x > mx)
				mx = x;
		}
	}
	double sum = 0;
	for (int k = 0; k < JUDGE_STARTS; k++) {
		if (!m->active[k])
			continue;
		for (int j = 0; j < JUDGE_GRID; j++)
			sum += exp(m->log_w[k] + m->log_g[j] + comp_log(m, k, j) - mx);
	}
	/* sum >= 1: the maximum term contributes exactly 1 */
	m->log_e = mx + log(sum);
	if (m->log_e > m->max_log_e)
		m->max_log_e = m->log_e;
}

/* Starts component <slot> with weight <w> (a share of the total mass 1 never
 * handed out twice: see docs/analysis.md, "Restarts"). */
static void mix_start(judge_mix *m, int slot, double w)
{
	m->active[slot] = true;
	m->log_w[slot] = log(w);
	for (int j = 0; j < JUDGE_GRID; j++)
		m->log_comp[slot][j] = m->log_win[slot][j] = 0;
	mix_recompute(m);
}

/* <g> gives the grid's weights (summing to 1). */
static void mix_init(judge_mix *m, const double *g, double log_cap)
{
	memset(m, 0, sizeof *m);
	for (int j = 0; j < JUDGE_GRID; j++)
		m->log_g[j] = log(g[j]);
	m->log_cap = log_cap;
	m->max_log_e = -1e300;
	mix_start(m, 0, JUDGE_START_WEIGHT);
}

/* Multiplies every active component's window by the likelihood ratio of
 * one stratum, given per effect size as <loglr>. Within a window the
 * product W_t is a (super)martingale, so min(W_t, cap) is a supermartingale
 * too, and so is the product of capped windows: the cap never costs the
 * guarantee, it only spends less of the evidence. */
static void mix_add(judge_mix *m, const double *loglr)
{
	for (int k = 0; k < JUDGE_STARTS; k++) {
		if (!m->active[k])
			continue;
		for (int j = 0; j < JUDGE_GRID; j++)
			m->log_win[k][j] += loglr[j];
	}
	mix_recompute(m);
}

/* Counts a look; every JUDGE_WINDOW_LOOKS looks the window closes into the
 * product. Returns true when it did. */
static bool mix_look(judge_mix *m, bool may_close)
{
	if (m->win_looks < JUDGE_WINDOW_LOOKS)
		m->win_looks++;
	if (m->win_looks < JUDGE_WINDOW_LOOKS || !may_close)
		return false;
	m->win_looks = 0;
	for (int k = 0; k < JUDGE_STARTS; k++)
		for (int j = 0; j < JUDGE_GRID; j++) {
			double w = m->log_win[k][j];
			m->log_comp[k][j] += w < m->log_cap ? w : m->log_cap;
			m->log_win[k][j] = 0;
		}
	mix_recompute(m);
	return true;
}

static void fill_evidence(judge_evidence *ev, const judge_mix *m,
                          double alpha)
{
	ev->e_value = exp(m->log_e < 700 ? m->log_e : 700);
	ev->p_value = m->max_log_e <= 0 ? 1 : exp(-m->max_log_e);
	ev->threshold = 1 / alpha;
}

/* ---- init and restarts ---- */

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
	if (!(p->error_ratio >= 1 && p->error_ratio <= 100))
		s->p.error_ratio = d.error_ratio;
	if (!(p->latency_ratio == 0 ||
	      (p->latency_ratio >= 1 && p->latency_ratio <= 1000)))
		s->p.latency_ratio = d.latency_ratio;
	if (!(p->latency_quantile > 0 && p->latency_quantile < 1))
		s->p.latency_quantile = d.latency_quantile;

	s->alpha_errors = s->p.alpha;
	if (s->p.latency_ratio > 0) {
		s->alpha_latency = s->p.alpha * JUDGE_LATENCY_SHARE;
		s->alpha_errors -= s->alpha_latency;
		s->latency_shift = shift_for_ratio(s->p.latency_ratio);
	}
	double g[JUDGE_GRID];
	err_plug_weights(g);
	mix_init(&s->mix_err, g, JUDGE_LOG_CAP);
	err_weights(g);
	for (int j = 0; j < JUDGE_GRID; j++)
		g[j] = 1.0 / JUDGE_GRID;
	mix_init(&s->mix_lat, g, JUDGE_LAT_LOG_CAP);
	mix_init(&s->mix_rank, g, JUDGE_LAT_LOG_CAP);
	mix_init(&s->mix_ni, ni_g, JUDGE_LOG_CAP);
	/* non-inferiority is one test over the whole rollout: no restarts */
	s->mix_ni.log_w[0] = 0;
	mix_recompute(&s->mix_ni);
	s->canary_upper = 1;
	s->stable_lower = 0;
	s->lat_bucket = -1;
	s->dispersion = 1;
}

int judge_add_guard(judge_state *s, double bound)
{
	if (s->n_guards >= JUDGE_MAX_GUARDS || !(bound > 0 && bound < 1))
		return -1;
	if (s->n_guards == 0) {
		s->alpha_guards = s->p.alpha * JUDGE_GUARDS_SHARE;
		s->alpha_errors -= s->alpha_guards;
	}
	int i = s->n_guards++;
	judge_guard *g = &s->guards[i];
	memset(g, 0, sizeof *g);
	g->bound = bound;
	double w[JUDGE_GRID];
	err_weights(w);
	mix_init(&g->mix, w, JUDGE_LOG_CAP);
	for (int k = 0; k < s->n_guards; k++)
		s->guards[k].alpha = s->alpha_guards / s->n_guards;
	return i;
}

/* A fresh component of every rollback test from here: the k-th gets
 * (1 - w0) * 6/(pi^2 k^2), so that all together get what the rollout's
 * start did not, however many there are. */
static void restart(judge_state *s)
{
	s->starts++;
	double k = (double)s->starts;
	double w = (1 - JUDGE_START_WEIGHT) * 6 / (PI * PI * k * k);
	int slot = 1 + (int)((s->starts - 1) % (JUDGE_STARTS - 1));
	mix_start(&s->mix_err, slot, w);
	mix_start(&s->mix_lat, slot, w);
	mix_start(&s->mix_rank, slot, w);
	for (int i = 0; i < s->n_guards; i++)
		mix_start(&s->guards[i].mix, slot, w);
}

void judge_step(judge_state *s)
{
	s->steps++;
	s->step_canary_n = 0;
	s->cs_fresh = false;
	restart(s);
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

/* ---- errors: Fisher's conditional test, sequentially ---- */

/* log sum_k C(nc, k) C(ns, f - k) e^(psi_i k), relative to the k = kmin
 * term, for each of <npsi> values <psi>: the normalisers of the
 * noncentral hypergeometric. False when the stratum carries no
 * information (x is fixed by its margins) or is too large to sum (counted
 * in <skipped>). */
static bool fisher_lse(double nc, double ns, double f, const double *psi, int npsi,
                       double *lse, uint64_t *skipped)
{
	double kmin = f > ns ? f - ns : 0;
	double kmax = nc < f ? nc : f;
	if (kmax <= kmin)
		return false;
	if (kmax - kmin + 1 > JUDGE_MAX_TERMS) {
		(*skipped)++;
		return false;
	}
	double m[2 * JUDGE_GRID + 1], sm[2 * JUDGE_GRID + 1];
	for (int j = 0; j < npsi; j++) {
		m[j] = psi[j] * kmin;
		sm[j] = 1;
	}
	/* online log-sum-exp of a_k + psi k, a_k the log hypergeometric
	 * weight relative to k = kmin, by the ratio of successive terms */
	double a = 0;
	for (double k = kmin; k < kmax; k++) {
		a += log((nc - k) * (f - k)) - log((k + 1) * (ns - f + k + 1));
		for (int j = 0; j < npsi; j++) {
			double x = a + psi[j] * (k + 1);
			if (x > m[j]) {
				sm[j] = sm[j] * exp(m[j] - x) + 1;
				m[j] = x;
			} else {
				sm[j] += exp(x - m[j]);
			}
		}
	}
	for (int j = 0; j < npsi; j++)
		lse[j] = m[j] + log(sm[j]);
	return true;
}

/* For a stratum (canary <nc> requests, <x> failed; stable <ns>; <f>
 * failures in all) and the null's log odds ratio <psi0>: the log
 * likelihood ratios of psi0 + delta_j against psi0 (rollback, <up>) and
 * of psi0 - c_j psi0 against psi0 (non-inferiority, <down>; NULL to skip).
 * By monotone likelihood ratio each has conditional mean <= 1 whenever the
 * true log odds ratio is on the null's side of psi0. */
static bool fisher_loglr(double nc, double ns, double x, double f, double psi0, double plug,
                         double *up, double *down, uint64_t *skipped)
{
	double psi[2 * JUDGE_GRID + 1], lse[2 * JUDGE_GRID + 1];
	int n = 0;
	psi[n++] = psi0;
	for (int j = 0; j < JUDGE_GRID; j++)
		psi[n++] = psi0 + (j == 0 && plug > 0 ? plug : err_delta(j));
	if (down)
		for (int j = 0; j < JUDGE_GRID; j++)
			psi[n++] = psi0 - ni_c[j] * psi0;
	if (!fisher_lse(nc, ns, f, psi, n, lse, skipped))
		return false;
	for (int j = 0; j < JUDGE_GRID; j++)
		up[j] = (psi[1 + j] - psi0) * x - (lse[1 + j] - lse[0]);
	if (down)
		for (int j = 0; j < JUDGE_GRID; j++)
			down[j] = (psi[1 + JUDGE_GRID + j] - psi0) * x -
			          (lse[1 + JUDGE_GRID + j] - lse[0]);
	return true;
}

static double logit(double p)
{
	return log(p) - log1p(-p);
}

/* Stable's baseline error rate: its failures outside holds, with a small
 * prior that errs low (a low baseline makes the margin, in odds, wider). */
static double baseline_rate(const judge_state *s)
{
	return ((double)s->base_err + JUDGE_BASE_PRIOR_ERR) /
	       ((double)s->base_n + JUDGE_BASE_PRIOR_N);
}

/* The margin as a log odds ratio at baseline rate <b>: the canary is no
 * worse while its rate is at most max(b + margin, b x ratio). */
static double margin_rate(const judge_state *s, double b)
{
	double r = b + s->p.margin;
	if (b * s->p.error_ratio > r)
		r = b * s->p.error_ratio;
	return r < 0.999 ? r : 0.999;
}

static double margin_psi(const judge_state *s, double b)
{
	if (b < 1e-9)
		b = 1e-9;
	if (b > 0.99)
		b = 0.99;
	double r = margin_rate(s, b);
	double psi = logit(r) - logit(b);
	return psi > 0 ? psi : 0;
}

/* The plug-in's effect size beyond the margin: the log odds ratio the
 * closed windows outside holds show, minus psi0, kept within the grid's
 * range. It depends on the past only. */
static double plug_delta(const judge_state *s)
{
	double pc = ((double)s->cbase_err + 0.5) / ((double)s->cbase_n + 1);
	double ps = ((double)s->base_err + 0.5) / ((double)s->base_n + 1);
	double d = logit(pc) - logit(ps) - s->psi0;
	double lo = err_delta(0), hi = err_delta(JUDGE_GRID - 1);
	return d < lo ? lo : d > hi ? hi : d;
}

/* Does stable depart from its baseline over its recent windows? Decided
 * before this look's counts are in: it depends on the past only. */
static bool departs(const judge_state *s)
{
	/* a baseline is learnt first, from the rollout's first windows */
	if (s->base_windows < JUDGE_RECENT)
		return false;
	uint64_t n = s->win_n, e = s->win_err;
	for (int i = 0; i < JUDGE_RECENT; i++) {
		n += s->recent_n[i];
		e += s->recent_err[i];
	}
	if (n == 0)
		return false;
	double mu = baseline_rate(s) * (double)n;
	return (double)e > mu + JUDGE_DEPART_Z * sqrt(mu) + JUDGE_DEPART_C;
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

static void copy_hist(judge_state *s, const stats_summary *canary,
                      const stats_summary *stable)
{
	for (int b = 0; b < STATS_BUCKETS; b++) {
		s->last_hist[TARGET_CANARY][b] = canary->hist[b];
		s->last_hist[TARGET_STABLE][b] = stable->hist[b];
	}
	s->seen_latency = true;
}

void judge_origin(judge_state *s, uint64_t canary_n, uint64_t canary_err,
                  uint64_t stable_n, uint64_t stable_err,
                  const stats_summary *canary, const stats_summary *stable)
{
	s->last_n[TARGET_CANARY] = canary_n;
	s->last_err[TARGET_CANARY] = canary_err > canary_n ? canary_n : canary_err;
	s->last_n[TARGET_STABLE] = stable_n;
	s->last_err[TARGET_STABLE] = stable_err > stable_n ? stable_n : stable_err;
	s->seen_errors = true;
	if (canary && stable)
		copy_hist(s, canary, stable);
	for (int i = 0; i < s->n_guards; i++)
		s->guards[i].origin = true; /* their next look is an origin */
}

/* The confidence-sequence route to non-inferiority (valid for constant
 * rates): canary's upper bound - stable's lower bound < margin, each at
 * alpha/4. It is the route when failures are too rare for the conditional
 * test (a stable without failures). */
static bool cs_noninferior(judge_state *s)
{
	/* outside holds: an incident shared by both is no evidence */
	uint64_t cn = s->cbase_n;
	if (cn == 0)
		return false;
	/* the bounds are intersected over looks, so once below the margin
	 * they stay there and need no more work; and they move slowly, so
	 * they are refreshed when the data has grown by 1/64 since the last
	 * refresh (or at a step's min_samples) */
	if (s->canary_upper - s->stable_lower >= s->p.margin &&
	    (cn >= s->cs_at_n + s->cs_at_n / 64 + 1 || !s->cs_fresh)) {
		s->cs_at_n = cn;
		s->cs_fresh = true;
		double c = log(4 / s->p.alpha);
		double u = cs_upper((double)s->cbase_err, (double)cn, c);
		double l = cs_lower((double)s->base_err, (double)s->base_n, c);
		if (u < s->canary_upper)
			s->canary_upper = u;
		if (l > s->stable_lower)
			s->stable_lower = l;
	}
	return s->canary_upper - s->stable_lower < s->p.margin;
}

/* Adds the window that just closed to Pearson's statistic of how the
 * failures split between the targets, against the split the odds ratio
 * seen so far predicts: about 1 when failures are independent, large when
 * they come in bursts on one target at a time. Its ratio tempers the test
 * (docs/analysis.md, "Bursts"). */
static void window_dispersion(judge_state *s)
{
	double nc = (double)s->wo_n[TARGET_CANARY], ns = (double)s->wo_n[TARGET_STABLE];
	double x = (double)s->wo_err[TARGET_CANARY], f = x + (double)s->wo_err[TARGET_STABLE];
	memset(s->wo_n, 0, sizeof s->wo_n);
	memset(s->wo_err, 0, sizeof s->wo_err);
	if (f <= 0 || nc <= 0 || ns <= 0)
		return;
	/* the odds ratio of the rollout so far, smoothed */
	double pc = ((double)s->err[TARGET_CANARY] + 0.5) / ((double)s->n[TARGET_CANARY] + 1);
	double ps = ((double)s->err[TARGET_STABLE] + 0.5) / ((double)s->n[TARGET_STABLE] + 1);
	double odds = nc / ns * (pc / (1 - pc)) / (ps / (1 - ps));
	double rho = odds / (1 + odds);
	double dev = x - rho * f;
	s->disp_num += dev * dev;
	s->disp_den += rho * (1 - rho) * f;
	double d = (s->disp_num + JUDGE_DISP_PRIOR) / (s->disp_den + JUDGE_DISP_PRIOR);
	s->dispersion = d > 1 ? d : 1;
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
	s->looks++;
	if (reset) {
		s->resets++;
		dnc = dec = dns = des = 0;
	}
	s->n[TARGET_CANARY] += dnc;
	s->err[TARGET_CANARY] += dec;
	s->n[TARGET_STABLE] += dns;
	s->err[TARGET_STABLE] += des;
	s->step_canary_n += dnc;

	/* a hold is decided on the past alone, so leaving a look out of the
	 * tests because of it is a predictable choice: the guarantee stands */
	bool held = departs(s);
	if (held && !s->held)
		s->holds++;
	else if (!held && s->held)
		restart(s); /* fresh evidence after the incident */
	s->held = held;

	if (!held) {
		s->open_n[TARGET_CANARY] += dnc;
		s->open_err[TARGET_CANARY] += dec;
		s->open_n[TARGET_STABLE] += dns;
		s->open_err[TARGET_STABLE] += des;
	}
	s->surge = false;
	/* a stratum closes once both targets have served: when that happens
	 * depends on request counts only, never on outcomes */
	if (s->open_n[TARGET_CANARY] > 0 && s->open_n[TARGET_STABLE] > 0) {
		double f = (double)s->open_err[TARGET_CANARY] +
		           (double)s->open_err[TARGET_STABLE];
		s->psi0 = margin_psi(s, baseline_rate(s));
		double up[JUDGE_GRID], down[JUDGE_GRID];
		if (f > 0 && fisher_loglr((double)s->open_n[TARGET_CANARY],
		                          (double)s->open_n[TARGET_STABLE],
		                          (double)s->open_err[TARGET_CANARY], f, s->psi0,
		                          plug_delta(s), up,
		                          s->psi0 > 0 ? down : NULL, &s->skipped)) {
			/* tempered: LR^(1/D) with D >= 1 fixed by the past
			 * still has mean <= 1 (Jensen) */
			for (int j = 0; j < JUDGE_GRID; j++) {
				up[j] /= s->dispersion;
				down[j] /= s->dispersion;
			}
			mix_add(&s->mix_err, up);
			/* non-inferiority, but not from a stratum whose failures
			 * surge on the whole service (an incident's first look,
			 * before the hold sees it): chosen by the stratum's
			 * margins, so the test stays valid */
			double mu = baseline_rate(s) * ((double)s->open_n[TARGET_CANARY] +
			                                (double)s->open_n[TARGET_STABLE]);
			bool surge = f > mu + JUDGE_DEPART_Z * sqrt(mu) + JUDGE_DEPART_C;
			if (s->psi0 > 0 && !surge)
				mix_add(&s->mix_ni, down);
			if (surge)
				s->surge = true;
		}
		memset(s->open_n, 0, sizeof s->open_n);
		memset(s->open_err, 0, sizeof s->open_err);
	}
	/* stable's counts: the baseline outside holds, the recent windows
	 * always (they tell when the hold ends) */
	if (!held) {
		s->wo_n[TARGET_CANARY] += dnc;
		s->wo_err[TARGET_CANARY] += dec;
		s->wo_n[TARGET_STABLE] += dns;
		s->wo_err[TARGET_STABLE] += des;
	}
	s->win_held |= held;
	s->win_n += dns;
	s->win_err += des;
	s->win_canary_n += dnc;
	s->win_err_looks++;
	bool may_close = s->win_canary_n >= JUDGE_WINDOW_CANARY ||
	                 s->win_err_looks >= JUDGE_WINDOW_MAX_LOOKS;
	mix_look(&s->mix_ni, may_close);
	if (mix_look(&s->mix_err, may_close)) {
		s->win_canary_n = 0;
		s->win_err_looks = 0;
		memmove(s->recent_n + 1, s->recent_n, (JUDGE_RECENT - 1) * sizeof s->recent_n[0]);
		memmove(s->recent_err + 1, s->recent_err,
		        (JUDGE_RECENT - 1) * sizeof s->recent_err[0]);
		s->recent_n[0] = s->win_n;
		s->recent_err[0] = s->win_err;
		s->win_n = s->win_err = 0;
		/* the baseline takes a window once it has closed without a
		 * hold: an incident's first looks, before the hold sees them,
		 * never raise the baseline it is measured against */
		if (!s->win_held) {
			s->base_windows++;
			s->base_n += s->wo_n[TARGET_STABLE];
			s->base_err += s->wo_err[TARGET_STABLE];
			s->cbase_n += s->wo_n[TARGET_CANARY];
			s->cbase_err += s->wo_err[TARGET_CANARY];
		}
		s->win_held = false;
		window_dispersion(s);
	}
	if (s->mix_err.log_e >= -log(s->alpha_errors))
		s->err_worse = true;

	judge_verdict v = JUDGE_CONTINUE;
	if (s->err_worse) {
		v = JUDGE_WORSE;
	} else if (!held && !s->surge && s->step_canary_n >= s->p.min_samples) {
		/* two routes to non-inferiority, alpha/2 each */
		if (s->mix_ni.log_e >= log(2 / s->p.alpha) || cs_noninferior(s))
			v = JUDGE_NONINFERIOR;
		else if (s->mix_ni.log_e >= log(JUDGE_ADVANCE_E))
			v = JUDGE_ADVANCE;
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
		ev->ni_e_value = exp(s->mix_ni.log_e < 700 ? s->mix_ni.log_e : 700);
		ev->baseline_rate = baseline_rate(s);
		ev->margin_rate = margin_rate(s, ev->baseline_rate);
		uint64_t rn = s->win_n, re = s->win_err;
		for (int i = 0; i < JUDGE_RECENT; i++) {
			rn += s->recent_n[i];
			re += s->recent_err[i];
		}
		ev->recent_rate = rn ? (double)re / (double)rn : 0;
		ev->held = held;
		ev->diff_upper = s->canary_upper - s->stable_lower;
		ev->step_canary_n = s->step_canary_n;
	}
	return v;
}

/* ---- latency: the quantile, by a conditional test of exceedances ---- */

/* The bucket of stable's <q> quantile in <h>, or -1 with too few
 * requests to tell. */
static int quantile_bucket(const uint64_t *h, double q)
{
	double n = 0;
	for (int b = 0; b < STATS_BUCKETS; b++)
		n += (double)h[b];
	if (n < JUDGE_LAT_MIN_TAIL / (1 - q))
		return -1;
	return stats_quantile_bucket(h, q, NULL, NULL);
}

/* Latency test: tilts of the ridit score, 0.25 * sqrt(2)^0 .. ^11 (0.25 to
 * 11.3): small tilts find small shifts, large ones find large shifts fast. */
static double lat_lambda(int j)
{
	return 0.25 * exp(j * LN2 / 2);
}

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

/* The latency test's thresholds: stable's quantile bucket, and 3 and 6
 * buckets above it (about 2x and 4x slower): a canary whose tail alone is
 * slower is seen far more sharply beyond stable's tail than at it. */
static const int lat_offset[3] = { 0, 3, 6 };
/* and the effect sizes tried at each (indices into err_delta) */
static const int lat_delta[4] = { 1, 3, 6, 9 };

/* The log likelihood ratios of the open latency stratum (<nc> canary and
 * <ns> stable requests) for each (threshold, effect size) component:
 * stable beyond bucket qb + o, the canary beyond that bucket shifted up by
 * latency_ratio. If canary <= ratio x stable in distribution, the canary's
 * share beyond its threshold cannot exceed stable's beyond its own, so
 * each is Fisher's conditional test of a log odds ratio <= 0. False when
 * no component had information. */
static bool lat_loglr(judge_state *s, int qb, double nc, double ns, double *out)
{
	bool any = false;
	for (int t = 0; t < 3; t++) {
		uint64_t x = 0, y = 0;
		for (int b = qb + lat_offset[t]; b < STATS_BUCKETS; b++)
			y += s->lat_open[TARGET_STABLE][b];
		for (int b = qb + lat_offset[t] + s->latency_shift; b < STATS_BUCKETS; b++)
			x += s->lat_open[TARGET_CANARY][b];
		if (t == 0) {
			s->lat_exceed[TARGET_CANARY] += x;
			s->lat_exceed[TARGET_STABLE] += y;
		}
		double up[JUDGE_GRID];
		bool ok = x + y > 0 &&
		          fisher_loglr(nc, ns, (double)x, (double)(x + y), 0, 0, up, NULL,
		                       &s->skipped);
		for (int d = 0; d < 4; d++)
			out[t * 4 + d] = ok ? up[lat_delta[d]] : 0;
		any |= ok;
	}
	return any;
}

judge_verdict judge_latency(judge_state *s, const stats_summary *canary,
                            const stats_summary *stable, judge_evidence *ev)
{
	if (s->alpha_latency > 0 && canary && stable) {
		const stats_summary *sum[TARGET_COUNT];
		sum[TARGET_CANARY] = canary;
		sum[TARGET_STABLE] = stable;
		uint64_t d[TARGET_COUNT][STATS_BUCKETS];
		uint64_t n[TARGET_COUNT] = { 0, 0 };
		bool reset = false;
		for (int t = 0; t < TARGET_COUNT; t++)
			for (int b = 0; b < STATS_BUCKETS; b++) {
				uint64_t prev = s->seen_latency ? s->last_hist[t][b] : 0;
				uint64_t cur = sum[t]->hist[b];
				if (cur < prev)
					reset = true;
				d[t][b] = cur >= prev ? cur - prev : 0;
				n[t] += d[t][b];
				s->last_hist[t][b] = cur;
			}
		s->seen_latency = true;
		if (reset) {
			s->resets++;
		} else {
			for (int t = 0; t < TARGET_COUNT; t++) {
				s->lat_n[t] += n[t];
				for (int b = 0; b < STATS_BUCKETS; b++)
					s->lat_open[t][b] += d[t][b];
			}
		}
		uint64_t on[TARGET_COUNT] = { 0, 0 };
		for (int t = 0; t < TARGET_COUNT; t++)
			for (int b = 0; b < STATS_BUCKETS; b++)
				on[t] += s->lat_open[t][b];
		if (on[TARGET_CANARY] > 0 && on[TARGET_STABLE] > 0) {
			/* the threshold comes from stable's earlier strata only */
			int qb = quantile_bucket(s->stable_hist, s->p.latency_quantile);
			s->lat_bucket = qb;
			if (qb >= 0) {
				double up[JUDGE_GRID];
				if (lat_loglr(s, qb, (double)on[TARGET_CANARY],
				              (double)on[TARGET_STABLE], up))
					mix_add(&s->mix_lat, up);
			}
			/* and the whole distribution's ranks: a slower canary
			 * (canary bucket - shift against stable's) */
			double cs[STATS_BUCKETS] = { 0 }, ss[STATS_BUCKETS];
			int k = s->latency_shift;
			for (int b = 0; b < STATS_BUCKETS; b++) {
				cs[b - k > 0 ? b - k : 0] += (double)s->lat_open[TARGET_CANARY][b];
				ss[b] = (double)s->lat_open[TARGET_STABLE][b];
			}
			double rl[JUDGE_GRID];
			ridit_loglr(cs, ss, (double)on[TARGET_CANARY],
			            (double)(on[TARGET_CANARY] + on[TARGET_STABLE]), rl);
			mix_add(&s->mix_rank, rl);
			for (int b = 0; b < STATS_BUCKETS; b++)
				s->stable_hist[b] += s->lat_open[TARGET_STABLE][b];
			memset(s->lat_open, 0, sizeof s->lat_open);
		}
		mix_look(&s->mix_lat, true);
		mix_look(&s->mix_rank, true);
		/* two tests, the tail's and the ranks', alpha_latency/2 each */
		if (s->mix_lat.log_e >= -log(s->alpha_latency / 2) ||
		    s->mix_rank.log_e >= -log(s->alpha_latency / 2))
			s->lat_worse = true;
	}
	if (ev) {
		memset(ev, 0, sizeof *ev);
		const judge_mix *m = s->mix_rank.max_log_e > s->mix_lat.max_log_e ?
			&s->mix_rank : &s->mix_lat;
		fill_evidence(ev, m, s->alpha_latency > 0 ? s->alpha_latency / 2 : 1);
		ev->canary_n = s->lat_n[TARGET_CANARY];
		ev->stable_n = s->lat_n[TARGET_STABLE];
		ev->step_canary_n = s->step_canary_n;
		ev->canary_exceed = s->lat_n[TARGET_CANARY] ?
			(double)s->lat_exceed[TARGET_CANARY] / (double)s->lat_n[TARGET_CANARY] : 0;
		ev->stable_exceed = s->lat_n[TARGET_STABLE] ?
			(double)s->lat_exceed[TARGET_STABLE] / (double)s->lat_n[TARGET_STABLE] : 0;
		if (s->lat_bucket >= 0) {
			uint64_t lo, hi;
			stats_bucket_bounds(s->lat_bucket, &lo, &hi);
			ev->threshold_ms = (double)lo / 1000.0;
		}
	}
	return s->lat_worse ? JUDGE_WORSE : JUDGE_CONTINUE;
}

/* ---- guards: a canary-only rate against a fixed bound ---- */

judge_verdict judge_guard_look(judge_state *s, int gi, uint64_t n, uint64_t x,
                               double *e_value)
{
	if (gi < 0 || gi >= s->n_guards)
		return JUDGE_CONTINUE;
	judge_guard *g = &s->guards[gi];
	if (x > n)
		x = n;
	uint64_t dn = 0, dx = 0;
	if (g->seen && n >= g->last_n && x >= g->last_x) {
		dn = n - g->last_n;
		dx = x - g->last_x;
		if (dx > dn)
			dx = dn;
	} else if (g->seen) {
		s->resets++;
	}
	if (!g->seen) {
		dn = n; /* the first look is its increment */
		dx = x;
	}
	if (g->origin)
		dn = dx = 0;
	g->seen = true;
	g->origin = false;
	g->last_n = n;
	g->last_x = x;
	/* a whole service off its baseline is not the canary's doing */
	if (!s->held && dn > 0) {
		g->n += dn;
		g->x += dx;
		double b = g->bound, lb = logit(b), lr[JUDGE_GRID];
		for (int j = 0; j < JUDGE_GRID; j++) {
			double lq = lb + err_delta(j);
			/* log q/b and log (1-q)/(1-b), q = logistic(lq) */
			double lq1 = -log1p(exp(-lq)), lb1 = -log1p(exp(-lb));
			double lq0 = -log1p(exp(lq)), lb0 = -log1p(exp(lb));
			lr[j] = (double)dx * (lq1 - lb1) + (double)(dn - dx) * (lq0 - lb0);
		}
		mix_add(&g->mix, lr);
	}
	mix_look(&g->mix, true);
	if (g->mix.log_e >= -log(g->alpha))
		g->worse = true;
	if (e_value)
		*e_value = exp(g->mix.log_e < 700 ? g->mix.log_e : 700);
	return g->worse ? JUDGE_WORSE : JUDGE_CONTINUE;
}

static double capped_exp(double log_e)
{
	return exp(log_e < 700 ? log_e : 700);
}

void judge_summarize(const judge_state *s, judge_summary *o)
{
	memset(o, 0, sizeof *o);
	o->canary_n = s->n[TARGET_CANARY];
	o->stable_n = s->n[TARGET_STABLE];
	o->canary_rate = o->canary_n ? (double)s->err[TARGET_CANARY] / (double)o->canary_n : 0;
	o->stable_rate = o->stable_n ? (double)s->err[TARGET_STABLE] / (double)o->stable_n : 0;
	o->worse_e = capped_exp(s->mix_err.log_e);
	o->worse_threshold = 1 / s->alpha_errors;
	o->noworse_e = capped_exp(s->mix_ni.log_e);
	o->noworse_threshold = 2 / s->p.alpha;
	double e = s->mix_err.log_e;
	o->lean_worse_test = "the error rate";
	if (s->alpha_latency > 0 && s->mix_lat.log_e > e) {
		e = s->mix_lat.log_e;
		o->lean_worse_test = "the latency tail";
	}
	if (s->alpha_latency > 0 && s->mix_rank.log_e > e) {
		e = s->mix_rank.log_e;
		o->lean_worse_test = "the latency";
	}
	for (int i = 0; i < s->n_guards; i++)
		if (s->guards[i].mix.log_e > e) {
			e = s->guards[i].mix.log_e;
			o->lean_worse_test = "a guard";
		}
	o->lean_worse_e = capped_exp(e);
	o->held = s->held;
	o->holds = s->holds;
	o->dispersion = s->dispersion;
	o->step_canary_n = s->step_canary_n;
}
