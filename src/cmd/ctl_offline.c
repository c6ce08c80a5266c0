/* ctl_offline.c - canaryctl's offline commands: simulate, render and query
 * read a configuration file and never call canaryd's admin API. */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <uv.h>

#include "config.h"
#include "ctl_cmd.h"
#include "hooks.h"
#include "provider.h"
#include "readings.h"
#include "render.h"
#include "simulate.h"
#include "util.h"

/* ---- simulate (offline) ------------------------------------------------ */

/* Parses an error rate: a fraction ("0.005") or a percentage ("0.5%").
 * Returns 0 with *p in 0..1, or -1. */
static int parse_rate(const char *s, double *p)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno)
		return -1;
	bool pct = *end == '%';
	if (pct)
		end++;
	if (*end || !(v >= 0))
		return -1;
	if (pct)
		v /= 100;
	if (v > 1)
		return -1;
	*p = v;
	return 0;
}

/* Parses a number in [lo, hi]. */
static int parse_num(const char *s, double lo, double hi, double *v)
{
	char *end;
	errno = 0;
	double x = strtod(s, &end);
	if (end == s || *end || errno || !(x >= lo && x <= hi))
		return -1;
	*v = x;
	return 0;
}

/* Reads all of <path> (malloc'd, NUL-terminated) or NULL with <err>. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
		return NULL;
	}
	buf b = BUF_INIT;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "cannot read '%s': read error", path);
		buf_release(&b);
		return NULL;
	}
	buf_append(&b, "", 0);
	*len = b.len;
	return b.p ? b.p : xstrdup("");
}

/* "steps 10, 20, .. 50" and the rest of the policy in one line. */
static void describe_policy(const eng_policy *p, char *out, size_t outlen)
{
	char iv[32];
	util_format_duration(p->interval_ms, iv, sizeof iv);
	int n = snprintf(out, outlen, "interval %s, threshold %d, ", iv, p->threshold);
	if (n < 0 || (size_t)n >= outlen)
		return;
	if (p->n_step_weights > 0)
		n += snprintf(out + n, outlen - (size_t)n, "%d step weights up to %d",
		              p->n_step_weights, p->step_weights[p->n_step_weights - 1]);
	else if (p->step_weight > 0)
		n += snprintf(out + n, outlen - (size_t)n, "step weight %d up to %d", p->step_weight,
		              p->max_weight);
	else
		n += snprintf(out + n, outlen - (size_t)n, "%d iterations", p->iterations);
	if (n < 0 || (size_t)n >= outlen)
		return;
	if (p->judge == ENG_JUDGE_SEQUENTIAL)
		snprintf(out + n, outlen - (size_t)n, ", sequential judge (alpha %g, min samples %llu)",
		         p->alpha, (unsigned long long)p->min_samples);
	else
		snprintf(out + n, outlen - (size_t)n, ", threshold judge");
}

/* Loads <file> (offline commands; a directory gives its YAML files, as
 * canaryd -c DIR) and finds the canary <name>, or the only one when
 * <name> is NULL. Returns it, with *conf to free, or NULL
 * after saying why on stderr (every configuration error, or which names
 * there are to choose from). */
static const cfg_canary *load_canary(const char *file, const char *name, cfg **conf)
{
	cfg_errors errs = { NULL, 0, 0 };
	*conf = NULL;
	if (cfg_load_paths(&file, 1, conf, &errs) < 0) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		if (errs.n == 0)
			fprintf(stderr, "canaryctl: cannot load '%s'\n", file);
		cfg_errors_release(&errs);
		return NULL;
	}
	cfg_errors_release(&errs);
	const cfg_canary *cc = NULL;
	if (name) {
		cc = cfg_find(*conf, name);
		if (!cc)
			fprintf(stderr, "canaryctl: no canary '%s' in '%s'\n", name, file);
	} else if ((*conf)->n_canaries == 1) {
		cc = &(*conf)->canaries[0];
	} else {
		fprintf(stderr, "canaryctl: '%s' defines %zu canaries, name one:", file,
		        (*conf)->n_canaries);
		for (size_t i = 0; i < (*conf)->n_canaries; i++)
			fprintf(stderr, " %s", (*conf)->canaries[i].name);
		fputc('\n', stderr);
	}
	if (!cc) {
		cfg_free(*conf);
		*conf = NULL;
	}
	return cc;
}

/* A duration option: 0 when absent; -1 after a usage error. */
static int opt_duration(const command *cmd, const char *flag, const char *v, bool zero_ok,
                        uint64_t *ms)
{
	*ms = 0;
	if (!v)
		return 0;
	if (util_parse_duration(v, ms) < 0 || (!zero_ok && *ms == 0) || *ms > 24ULL * 3600 * 1000) {
		usage_error(cmd, "%s '%s' is not a duration %s 24h (like 90s, 5m)", flag, v,
		            zero_ok ? "up to" : "above 0 and at most");
		return -1;
	}
	return 0;
}

/* A rate option (fraction or percentage); -1 after a usage error. */
static int opt_rate(const command *cmd, const char *flag, const char *v, double *p)
{
	if (v && parse_rate(v, p) < 0) {
		usage_error(cmd, "%s '%s' is not a fraction (0.005) or a percentage (0.5%%)", flag, v);
		return -1;
	}
	return 0;
}

/* A number option in [lo, hi] (whole when <whole>); -1 after a usage error. */
static int opt_num(const command *cmd, const char *flag, const char *v, double lo, double hi,
                   bool whole, double *x)
{
	double t;
	if (v && (parse_num(v, lo, hi, &t) < 0 || (whole && t != floor(t)))) {
		usage_error(cmd, "%s '%s' is not a %s from %.10g to %.10g", flag, v,
		            whole ? "whole number" : "number", lo, hi);
		return -1;
	}
	if (v)
		*x = t;
	return 0;
}

/* sim_each_fn for -o json: prints each run's result as an element of
 * "results" as it ends, so that a million runs need no memory for them. */
static void print_result_json(void *arg, int i, uint64_t seed, const sim_result *r)
{
	(void)arg;
	json_t *o = json_pack("{s:I, s:s, s:f, s:i, s:i, s:I, s:I, s:s}", "seed", (json_int_t)seed,
	                 "outcome", sim_outcome_name(r->outcome),
	                 "decisionSeconds", (double)r->decision_ms / 1000.0,
	                 "finalWeight", r->final_weight, "checks", r->checks,
	                 "canaryRequests", (json_int_t)r->canary_requests,
	                 "canaryErrors", (json_int_t)r->canary_errors, "message", r->message);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
	printf("%s    %s", i ? ",\n" : "", text ? text : "null");
	free(text);
	json_decref(o);
}

int cmd_simulate(client *cl, const command *cmd, int argc, char **argv)
{
	(void)cl;
	const char *file = NULL, *rps = NULL, *ser = NULL, *cer = NULL, *clat = NULL;
	const char *lat = NULL, *runs_s = NULL, *seed_s = NULL, *data = NULL, *change = NULL;
	const char *after = NULL, *limit_s = NULL, *out = NULL, *pos[1];
	const char *safter = NULL, *schange = NULL, *oat = NULL, *ofor = NULL, *orate = NULL;
	const char *rafter = NULL, *rchange = NULL, *rramp = NULL, *burst = NULL;
	const char *warm = NULL, *warmf = NULL, *tailf = NULL, *tails = NULL;
	const char *rules_s = NULL, *flim = NULL, *celim = NULL, *replay = NULL;
	const option opts[] = {
		{ "-f", "--file", &file, NULL },
		{ "--rps", NULL, &rps, NULL },
		{ "--rps-after", NULL, &rafter, NULL },
		{ "--rps-change-at", NULL, &rchange, NULL },
		{ "--rps-ramp", NULL, &rramp, NULL },
		{ "--stable-error-rate", NULL, &ser, NULL },
		{ "--stable-error-rate-after", NULL, &safter, NULL },
		{ "--stable-change-at", NULL, &schange, NULL },
		{ "--canary-error-rate-after", NULL, &after, NULL },
		{ "--canary-error-rate", NULL, &cer, NULL },
		{ "--outage-at", NULL, &oat, NULL },
		{ "--outage-for", NULL, &ofor, NULL },
		{ "--outage-error-rate", NULL, &orate, NULL },
		{ "--burst-size", NULL, &burst, NULL },
		{ "--canary-latency-ms", NULL, &clat, NULL },
		{ "--latency-ms", NULL, &lat, NULL },
		{ "--canary-warmup", NULL, &warm, NULL },
		{ "--canary-warmup-factor", NULL, &warmf, NULL },
		{ "--canary-tail-factor", NULL, &tailf, NULL },
		{ "--canary-tail-share", NULL, &tails, NULL },
		{ "--rules", NULL, &rules_s, NULL },
		{ "--failure-limit", NULL, &flim, NULL },
		{ "--consecutive-error-limit", NULL, &celim, NULL },
		{ "--runs", NULL, &runs_s, NULL },
		{ "--seed", NULL, &seed_s, NULL },
		{ "--data", NULL, &data, NULL },
		{ "--replay", NULL, &replay, NULL },
		{ "--change-at", NULL, &change, NULL },
		{ "--limit", NULL, &limit_s, NULL },
		{ "-o", "--output", &out, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	int as_json = output_json(cmd, out);
	if (as_json < 0)
		return EXIT_USAGE;
	if (!file)
		return usage_error(cmd, "'simulate' needs the configuration: -f FILE");

	sim_traffic tr;
	sim_traffic_defaults(&tr);
	double v;
	if (rps) {
		if (parse_num(rps, 0.001, 1e7, &v) < 0)
			return usage_error(cmd, "--rps '%s' is not a rate above 0 and at most 10000000", rps);
		tr.rps = v;
	}
	if (opt_rate(cmd, "--stable-error-rate", ser, &tr.stable_error_rate) < 0 ||
	    opt_rate(cmd, "--canary-error-rate", cer, &tr.canary_error_rate) < 0)
		return EXIT_USAGE;
	if (clat) {
		if (parse_num(clat, -1e6, 1e6, &v) < 0)
			return usage_error(cmd, "--canary-latency-ms '%s' is not a number of milliseconds", clat);
		tr.canary_extra_latency_ms = v;
	}
	if (lat) {
		if (parse_num(lat, 0.001, 1e6, &v) < 0)
			return usage_error(cmd, "--latency-ms '%s' is not a number of milliseconds above 0", lat);
		tr.latency_median_ms = v;
	}
	if ((change == NULL) != (after == NULL))
		return usage_error(cmd, "--change-at DUR and --canary-error-rate-after P go together");
	if (opt_duration(cmd, "--change-at", change, false, &tr.change_at_ms) < 0 ||
	    opt_rate(cmd, "--canary-error-rate-after", after, &tr.canary_error_rate_after) < 0)
		return EXIT_USAGE;
	if ((schange == NULL) != (safter == NULL))
		return usage_error(cmd, "--stable-change-at DUR and --stable-error-rate-after P go together");
	if (opt_duration(cmd, "--stable-change-at", schange, false, &tr.stable_change_at_ms) < 0 ||
	    opt_rate(cmd, "--stable-error-rate-after", safter, &tr.stable_error_rate_after) < 0)
		return EXIT_USAGE;
	if (!ofor && (oat || orate))
		return usage_error(cmd, "--outage-at and --outage-error-rate need --outage-for DUR");
	if (opt_duration(cmd, "--outage-at", oat, true, &tr.outage_at_ms) < 0 ||
	    opt_duration(cmd, "--outage-for", ofor, false, &tr.outage_for_ms) < 0)
		return EXIT_USAGE;
	tr.outage_error_rate = 1;
	if (opt_rate(cmd, "--outage-error-rate", orate, &tr.outage_error_rate) < 0)
		return EXIT_USAGE;
	if ((rchange == NULL) != (rafter == NULL))
		return usage_error(cmd, "--rps-change-at DUR and --rps-after N go together");
	if (rramp && !rchange)
		return usage_error(cmd, "--rps-ramp DUR needs --rps-change-at DUR and --rps-after N");
	if (opt_duration(cmd, "--rps-change-at", rchange, false, &tr.rps_change_at_ms) < 0 ||
	    opt_duration(cmd, "--rps-ramp", rramp, false, &tr.rps_ramp_ms) < 0 ||
	    opt_num(cmd, "--rps-after", rafter, 0.001, 1e7, false, &tr.rps_after) < 0)
		return EXIT_USAGE;
	double x = 0;
	if (opt_num(cmd, "--burst-size", burst, 1, 1000000, true, &x) < 0)
		return EXIT_USAGE;
	tr.burst_size = (uint64_t)x;
	if (warmf && !warm)
		return usage_error(cmd, "--canary-warmup-factor X needs --canary-warmup DUR");
	if (tails && !tailf)
		return usage_error(cmd, "--canary-tail-share P needs --canary-tail-factor X");
	if (opt_duration(cmd, "--canary-warmup", warm, false, &tr.canary_warmup_ms) < 0 ||
	    opt_num(cmd, "--canary-warmup-factor", warmf, 0.01, 1000, false, &tr.canary_warmup_factor) < 0 ||
	    opt_num(cmd, "--canary-tail-factor", tailf, 1, 1000, false, &tr.canary_tail_factor) < 0 ||
	    opt_rate(cmd, "--canary-tail-share", tails, &tr.canary_tail_share) < 0)
		return EXIT_USAGE;
	if (tails && !(tr.canary_tail_share > 0 && tr.canary_tail_share < 0.5))
		return usage_error(cmd, "--canary-tail-share '%s' is not a share above 0 and below 50%%", tails);
	sim_rules rules = { .kind = SIM_RULES_CANARYD, .failure_limit = 0, .consecutive_error_limit = 4 };
	if (rules_s) {
		if (strcmp(rules_s, "canaryd") == 0)
			rules.kind = SIM_RULES_CANARYD;
		else if (strcmp(rules_s, "flagger") == 0)
			rules.kind = SIM_RULES_FLAGGER;
		else if (strcmp(rules_s, "argo") == 0)
			rules.kind = SIM_RULES_ARGO;
		else
			return usage_error(cmd, "--rules '%s' is not canaryd, flagger or argo", rules_s);
	}
	if ((flim || celim) && rules.kind != SIM_RULES_ARGO)
		return usage_error(cmd, "--failure-limit and --consecutive-error-limit go with --rules argo");
	x = rules.failure_limit;
	if (opt_num(cmd, "--failure-limit", flim, 0, 1000000, true, &x) < 0)
		return EXIT_USAGE;
	rules.failure_limit = (int)x;
	x = rules.consecutive_error_limit;
	if (opt_num(cmd, "--consecutive-error-limit", celim, 0, 1000000, true, &x) < 0)
		return EXIT_USAGE;
	rules.consecutive_error_limit = (int)x;
	if (replay && !data)
		return usage_error(cmd, "--replay goes with --data CSV");
	if (replay && strcmp(replay, "weights") != 0 && strcmp(replay, "recorded") != 0)
		return usage_error(cmd, "--replay '%s' is not weights or recorded", replay);
	tr.replay_recorded_split = replay && strcmp(replay, "recorded") == 0;
	int runs = 1;
	if (runs_s) {
		if (parse_num(runs_s, 1, 1000000, &v) < 0 || v != floor(v))
			return usage_error(cmd, "--runs '%s' is not a whole number from 1 to 1000000", runs_s);
		runs = (int)v;
	}
	uint64_t seed = 1;
	if (seed_s) {
		char *end;
		errno = 0;
		unsigned long long sx = strtoull(seed_s, &end, 10);
		if (end == seed_s || *end || errno || seed_s[0] == '-')
			return usage_error(cmd, "--seed '%s' is not a non-negative integer", seed_s);
		seed = sx;
	}
	uint64_t limit = SIM_DEFAULT_LIMIT_MS;
	if (limit_s && (util_parse_duration(limit_s, &limit) < 0 || limit == 0 ||
	                limit > 24ULL * 3600 * 1000))
		return usage_error(cmd, "--limit '%s' is not a duration from 100ms to 24h", limit_s);

	cfg *conf = NULL;
	const cfg_canary *cc = load_canary(file, n == 1 ? pos[0] : NULL, &conf);
	if (!cc)
		return EXIT_USAGE;

	char err[512];
	sim_data rec = { NULL, 0 };
	if (data) {
		size_t len;
		char *text = read_file(data, &len, err, sizeof err);
		if (!text || sim_parse_csv(data, text, len, &rec, err, sizeof err) < 0) {
			free(text);
			fprintf(stderr, "canaryctl: %s\n", err);
			cfg_free(conf);
			return EXIT_USAGE;
		}
		free(text);
		tr.data = &rec;
	}
	sim *s = sim_new(&cc->policy, &tr, limit, err, sizeof err);
	if (!s || sim_set_rules(s, &rules, err, sizeof err) < 0) {
		fprintf(stderr, "canaryctl: %s\n", err);
		sim_free(s);
		sim_data_release(&rec);
		cfg_free(conf);
		return EXIT_USAGE;
	}
	for (int i = 0; i < sim_skipped_metrics(s); i++)
		fprintf(stderr, "canaryctl: note: metric '%s' cannot be simulated and is left out\n",
		        sim_skipped_metric(s, i));
	sim_summary sum;
	if (as_json)
		fputs("{\n  \"results\": [\n", stdout);
	sim_run_many(s, runs, seed, &sum, as_json ? print_result_json : NULL, NULL);
	sim_free(s);

	if (as_json) {
		json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i}", "rules",
		                      rules.kind == SIM_RULES_FLAGGER ? "flagger"
		                      : rules.kind == SIM_RULES_ARGO ? "argo" : "canaryd",
		                      "runs", sum.runs, "promoted", sum.promoted,
		                      "rolledBack", sum.rolled_back, "undecided", sum.undecided);
		json_object_set_new(o, "medianDecisionSeconds",
		                    sum.median_decision_s < 0 ? json_null() : json_real(sum.median_decision_s));
		json_object_set_new(o, "p50DecisionSeconds",
		                    sum.median_decision_s < 0 ? json_null() : json_real(sum.median_decision_s));
		json_object_set_new(o, "p95DecisionSeconds",
		                    sum.p95_decision_s < 0 ? json_null() : json_real(sum.p95_decision_s));
		if (runs == 1) {
			json_object_set_new(o, "outcome", json_string(sim_outcome_name(sum.first.outcome)));
			json_object_set_new(o, "decisionSeconds", json_real((double)sum.first.decision_ms / 1000.0));
			json_object_set_new(o, "finalWeight", json_integer(sum.first.final_weight));
			json_object_set_new(o, "message", json_string(sum.first.message));
		}
		/* 10 digits: 1.4, not 1.3999999999999999; the summary's members
		 * follow "results" in the object opened above */
		char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
		printf("\n  ],%s\n", text && text[0] == '{' ? text + 1 : "\n}");
		free(text);
		json_decref(o);
	} else {
		char pol[256];
		describe_policy(&cc->policy, pol, sizeof pol);
		printf("canary %s: %s\n", cc->name, pol);
		if (data)
			printf("traffic: replay of '%s' (%zu s) %s\n", data, rec.n,
			       tr.replay_recorded_split ? "as recorded" : "at the engine's weights");
		else
			printf("traffic: %g req/s, stable %.2f%% errors, canary %.2f%% errors, "
			       "median latency %g ms, canary's %g ms\n", tr.rps, 100 * tr.stable_error_rate,
			       100 * tr.canary_error_rate, tr.latency_median_ms,
			       tr.latency_median_ms + tr.canary_extra_latency_ms);
		if (change)
			printf("  from %s on the canary's error rate is %.2f%%\n", change,
			       100 * tr.canary_error_rate_after);
		if (schange)
			printf("  from %s on stable's error rate is %.2f%%\n", schange,
			       100 * tr.stable_error_rate_after);
		if (ofor)
			printf("  a shared outage at %s for %s: both versions fail %.2f%%\n", oat ? oat : "0s",
			       ofor, 100 * tr.outage_error_rate);
		if (rchange)
			printf("  from %s on %g req/s%s%s\n", rchange, tr.rps_after, rramp ? ", ramped over " : "",
			       rramp ? rramp : "");
		if (tr.burst_size > 1)
			printf("  failures in bursts of %llu requests of one version\n",
			       (unsigned long long)tr.burst_size);
		if (warm)
			printf("  the canary %g times slower for its first %s\n", tr.canary_warmup_factor, warm);
		if (tailf)
			printf("  the canary's slowest %g%% of requests %g times slower\n",
			       100 * tr.canary_tail_share, tr.canary_tail_factor);
		if (rules.kind == SIM_RULES_FLAGGER)
			printf("rules: Flagger's (interval at least 10s, no data fails a check, rollback an "
			       "interval after the threshold-th failed check)\n");
		else if (rules.kind == SIM_RULES_ARGO)
			printf("rules: Argo Rollouts' (a step each interval, failureLimit %d, "
			       "consecutiveErrorLimit %d)\n", rules.failure_limit, rules.consecutive_error_limit);
		if (runs == 1) {
			const sim_result *r = &sum.first;
			printf("%s after %.1fs at canary weight %d (checks: %d; canary served %llu requests, %llu errors)\n",
			       r->outcome == SIM_UNDECIDED ? "undecided" : sim_outcome_name(r->outcome),
			       (double)r->decision_ms / 1000.0, r->final_weight, r->checks,
			       (unsigned long long)r->canary_requests, (unsigned long long)r->canary_errors);
			printf("  %s\n", r->message);
		} else {
			printf("%d runs (seeds %llu..%llu): %d promoted (%.1f%%), %d rolled back (%.1f%%), "
			       "%d undecided (%.1f%%)\n", sum.runs, (unsigned long long)seed,
			       (unsigned long long)(seed + (uint64_t)runs - 1),
			       sum.promoted, 100.0 * sum.promoted / sum.runs, sum.rolled_back,
			       100.0 * sum.rolled_back / sum.runs, sum.undecided,
			       100.0 * sum.undecided / sum.runs);
			if (sum.median_decision_s >= 0)
				printf("  time to decision: median %.1fs, p95 %.1fs\n", sum.median_decision_s,
				       sum.p95_decision_s);
		}
	}
	sim_data_release(&rec);
	cfg_free(conf);
	return EXIT_OK;
}

/* ---- render (offline) -------------------------------------------------- */

/* Ten random letters, as Flagger draws a session-affinity cookie value
 * (randSeq); the renderer itself is pure and takes the value as input. */
static void random_cookie(char out[11])
{
	static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	unsigned char r[10] = { 0 };
	FILE *f = fopen("/dev/urandom", "rb");
	size_t got = f ? fread(r, 1, sizeof r, f) : 0;
	if (f)
		fclose(f);
	for (size_t i = 0; i < 10; i++) {
		unsigned v = i < got ? r[i] : (unsigned)rand();
		out[i] = letters[v % 52];
	}
	out[10] = '\0';
}

int cmd_render(client *cl, const command *cmd, int argc, char **argv)
{
	const char *file = NULL, *weight_s = NULL, *out = NULL, *cookie = NULL, *pcookie = NULL;
	const char *provider = NULL, *pos[1];
	bool iteration = false, mirror = false;
	const option opts[] = {
		{ "-f", "--file", &file, NULL },
		{ "--weight", NULL, &weight_s, NULL },
		{ "--iteration", NULL, NULL, &iteration },
		{ "--mirror", NULL, NULL, &mirror },
		{ "--cookie", NULL, &cookie, NULL },
		{ "--primary-cookie", NULL, &pcookie, NULL },
		{ "--provider", NULL, &provider, NULL },
		{ "-o", "--output", &out, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	bool as_json = false;
	if (out && strcmp(out, "json") == 0)
		as_json = true;
	else if (out && strcmp(out, "yaml") != 0)
		return usage_error(cmd, "output format '%s' is not one of yaml, json", out);
	if (!file)
		return usage_error(cmd, "'render' needs the configuration: -f FILE");
	if (!weight_s == !iteration)
		return usage_error(cmd, "'render' needs the traffic split: --weight W (0..100) or "
		                   "--iteration");
	render_opts ro = { .provider = provider };
	if (weight_s) {
		double v;
		if (parse_num(weight_s, 0, 100, &v) < 0 || v != floor(v))
			return usage_error(cmd, "--weight '%s' is not a whole number from 0 to 100", weight_s);
		ro.split.weight = (int)v;
	}

	cfg *conf = NULL;
	const cfg_canary *cc = load_canary(file, n == 1 ? pos[0] : NULL, &conf);
	if (!cc)
		return EXIT_USAGE;

	/* an iteration of blue/green (routes as they were, mirrored with
	 * analysis.mirror) or of A/B testing (the matched requests to the
	 * canary): what Flagger's runBlueGreen and runAB set */
	const json_t *an = json_object_get(json_object_get(cc->raw, "spec"), "analysis");
	if (iteration) {
		if (cc->policy.iterations <= 0) {
			fprintf(stderr, "canaryctl: --iteration: '%s' has no analysis.iterations (it shifts "
			        "weight in steps: use --weight)\n", cc->name);
			cfg_free(conf);
			return EXIT_USAGE;
		}
		if (json_array_size(json_object_get(an, "match"))) {
			ro.split.weight = 100;
		} else {
			ro.split.weight = 0;
			mirror = mirror || json_is_true(json_object_get(an, "mirror"));
		}
	}
	ro.split.mirror = mirror;

	/* a session-affinity run without --cookie: drawn here, as Flagger does */
	const json_t *sa = json_object_get(an, "sessionAffinity");
	char drawn[11], pdrawn[11];
	if (json_is_object(sa) && ro.split.weight > 0) {
		if (!cookie) {
			random_cookie(drawn);
			cookie = drawn;
			fprintf(stderr, "canaryctl: note: session-affinity cookie value '%s' drawn at random "
			        "(Flagger keeps its own in status.sessionAffinityCookie); --cookie sets it\n",
			        cookie);
		}
		if (!pcookie && json_is_string(json_object_get(sa, "primaryCookieName"))) {
			random_cookie(pdrawn);
			pcookie = pdrawn;
			fprintf(stderr, "canaryctl: note: primary cookie value '%s' drawn at random; "
			        "--primary-cookie sets it\n", pcookie);
		}
	}
	ro.split.cookie = cookie;
	ro.split.primary_cookie = pcookie;

	render_result r;
	int rc = render_canary(cc->raw, &ro, &r);
	size_t i;
	json_t *m;
	json_array_foreach(r.notes, i, m)
		fprintf(stderr, "canaryctl: note: %s: %s\n", cc->name, json_string_value(m));
	if (rc < 0) {
		json_array_foreach(r.errors, i, m)
			fprintf(stderr, "canaryctl: %s: %s\n", cc->name, json_string_value(m));
		render_result_release(&r);
		cfg_free(conf);
		return EXIT_USAGE;
	}
	if (as_json) {
		/* one document a reader and `kubectl apply -f -` both take */
		json_t *list = json_pack("{s:s,s:s,s:O}", "apiVersion", "v1", "kind", "List", "items",
		                         r.objects);
		print_json(list);
		json_decref(list);
	} else {
		buf b = BUF_INIT;
		char err[256];
		if (render_yaml(r.objects, &b, err, sizeof err) < 0) {
			fprintf(stderr, "canaryctl: %s\n", err);
			rc = -1;
		} else if (b.len) {
			fwrite(b.p, 1, b.len, stdout);
		}
		buf_release(&b);
	}
	render_result_release(&r);
	cfg_free(conf);
	return rc < 0 ? EXIT_FAILED : EXIT_OK;
}

/* ---- query: each metric as the daemon would read it, now ------------- */

/* One read of one window of one metric. */
typedef struct query_read {
	int metric;
	rd_which which;
	char interval[32];
	buf request;        /* the query or "METHOD URL" as sent */
	int has_data;
	double value;
	char reason[256];
} query_read;

static void query_done(void *arg, int has_data, double value, const char *reason)
{
	query_read *q = arg;
	q->has_data = has_data;
	q->value = value;
	snprintf(q->reason, sizeof q->reason, "%s", has_data ? "" : reason);
}

static const char *const which_names[RD_COUNT] = { "canary", "stable", "baseline" };

/* Reads every window of every metric of <cc> through its provider, as the
 * controller's check does (the same windows, variables and providers), on
 * a loop of its own. Fills <reads> (at most RD_COUNT per metric) and
 * returns how many, or -1 with <err>. */
static int query_reads(const cfg_canary *cc, uv_loop_t *loop, hooks *h, query_read *reads,
                       char *err, size_t errlen)
{
	int n = 0;
	provider_env env = { .http = h, .st = NULL, .cc = cc };
	for (int i = 0; i < cc->policy.n_metrics; i++) {
		const eng_metric *m = &cc->policy.metrics[i];
		const provider_ops *ops = provider_of(cc, i);
		rd_window w[RD_COUNT];
		/* the windows' seconds do not matter to a provider that queries:
		 * only their spans do */
		int nw = rd_windows(m, 1000000, 0, w);
		for (int k = 0; k < nw; k++) {
			query_read *q = &reads[n++];
			memset(q, 0, sizeof *q);
			q->metric = i;
			q->which = w[k].which;
			util_format_duration(w[k].span_ms, q->interval, sizeof q->interval);
			const char *rev = w[k].which == RD_CANARY ? cc->canary_rev : cc->stable_rev;
			provider_window pw = {
				.w = w[k],
				.kind = m->kind,
				.vars = {
					.name = cc->name,
					.namespace_ = cc->namespace_ ? cc->namespace_ : "",
					.target = cc->name,
					.interval = q->interval,
					.revision = rev ? rev : "",
				},
			};
			if (!ops->describe) {
				snprintf(q->reason, sizeof q->reason, "read from canaryd's own proxy, not "
				         "queried (canaryctl history %s shows its checks)", cc->name);
				continue;
			}
			char e[256];
			if (ops->describe(&env, &cc->sources[i], &pw, &q->request, e, sizeof e) < 0 ||
			    ops->read(&env, &cc->sources[i], &pw, query_done, q, e, sizeof e) < 0) {
				snprintf(err, errlen, "metric '%s': %s", m->name, e);
				return -1;
			}
		}
	}
	/* each read ends within its provider's timeout (at most 5 min) */
	uv_run(loop, UV_RUN_DEFAULT);
	return n;
}

int cmd_query(client *cl, const command *cmd, int argc, char **argv)
{
	const char *file = NULL, *server = NULL, *out = NULL, *pos[1];
	const option opts[] = {
		{ "-f", "--file", &file, NULL },
		{ "--metrics-server", NULL, &server, NULL },
		{ "-o", "--output", &out, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int np = parse_args(cmd, argc, argv, opts, pos, 1);
	if (np < 0)
		return EXIT_USAGE;
	int as_json = output_json(cmd, out);
	if (as_json < 0)
		return EXIT_USAGE;
	if (!file)
		return usage_error(cmd, "'query' needs the configuration: -f FILE");
	if (server && !provider_url_ok(server))
		return usage_error(cmd, "--metrics-server '%.200s' is not an http:// or https:// URL "
		                   "such as http://127.0.0.1:9090", server);
	cfg *conf = NULL;
	const cfg_canary *cc = load_canary(file, np == 1 ? pos[0] : NULL, &conf);
	if (!cc)
		return EXIT_USAGE;
	provider_set_metrics_server(server);
	char err[512];
	if (provider_check(cc, err, sizeof err) < 0) {
		fprintf(stderr, "canaryctl: %s\n", err);
		provider_set_metrics_server(NULL);
		cfg_free(conf);
		return EXIT_USAGE;
	}
	uv_loop_t loop;
	uv_loop_init(&loop);
	hooks *h = hooks_new(&loop);
	query_read *reads = xcalloc((size_t)cc->policy.n_metrics * RD_COUNT + 1, sizeof *reads);
	int n = h ? query_reads(cc, &loop, h, reads, err, sizeof err) : -1;
	if (!h)
		snprintf(err, sizeof err, "cannot initialise libcurl");
	int rc = n < 0 ? EXIT_FAILED : EXIT_OK;
	if (n < 0)
		fprintf(stderr, "canaryctl: %s: %s\n", cc->name, err);
	const char *ms = provider_is_mesh(cc) ? mesh_server(cc) : NULL;
	json_t *metrics = json_array();
	for (int r = 0; r < n; r++) {
		const query_read *q = &reads[r];
		const eng_metric *m = &cc->policy.metrics[q->metric];
		const provider_ops *ops = provider_of(cc, q->metric);
		if (!ops->describe)
			; /* the proxy's stats: nothing failed */
		else if (!q->has_data)
			rc = EXIT_FAILED;
		if (as_json) {
			json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "metric", m->name, "of",
			                      which_names[q->which], "provider", ops->name,
			                      "interval", q->interval);
			if (q->request.p)
				json_object_set_new(o, "query", json_string(q->request.p));
			if (q->has_data)
				json_object_set_new(o, "value", json_real(q->value));
			else
				json_object_set_new(o, "reason", json_string(q->reason));
			json_array_append_new(metrics, o);
			continue;
		}
		if (q->which == RD_CANARY)
			printf("%s (%s, over %s)\n", m->name, ops->name, q->interval);
		if (q->request.p) /* -o json has it as sent, with Flagger's leading blank */
			printf("  %s query: %s\n", which_names[q->which],
			       q->request.p + strspn(q->request.p, " "));
		if (q->has_data)
			printf("  %s value: %.6g\n", which_names[q->which], q->value);
		else
			printf("  %s: %s\n", which_names[q->which], q->reason);
	}
	if (as_json) {
		json_t *o = json_pack("{s:s,s:s?,s:o}", "canary", cc->name, "metricsServer", ms,
		                      "reads", metrics);
		print_json(o);
		json_decref(o);
	} else {
		json_decref(metrics);
	}
	for (int r = 0; r < n; r++)
		buf_release(&reads[r].request);
	free(reads);
	hooks_free(h, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	provider_set_metrics_server(NULL);
	cfg_free(conf);
	return rc;
}
