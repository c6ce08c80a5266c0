/* main.c - canaryd: the daemon. Parses flags, loads the configuration,
 * opens the store, and runs the controller, the proxies and the admin API
 * on one libuv loop until SIGTERM. Only this file exits. */
#include <getopt.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "admin.h"
#include "assets.h"
#include "config.h"
#include "controller.h"
#include "log.h"
#include "provider.h"
#include "resolve.h"
#include "router.h"
#include "router_k8s.h"
#include "store.h"
#include "util.h"
#include "version.h"

/* 80 columns at most: a terminal's width, and the man page's */
static const char usage[] =
	"usage: canaryd -c FILE|DIR [-c ...] [--admin ADDR] [--data-dir DIR]\n"
	"               [--log-format text|json] [--log-level debug|info|warn|error]\n"
	"               [--token-file F] [--drain-timeout DUR] [--kubeconfig F]\n"
	"               [--admin-host NAME]... [--admin-max-connections N]\n"
	"               [--admin-head-timeout DUR] [--admin-body-timeout DUR]\n"
	"               [--admin-idle-timeout DUR] [--metrics-server URL]\n"
	"               [--dashboard-time-zone ZONE] [--dashboard-locale LOCALE]\n"
	"               [--runbook-url URL]\n"
	"       canaryd --check -c FILE|DIR [-c ...]\n"
	"\n"
	"  -c, --config FILE|DIR  the YAML configuration (Canary, MetricTemplate and\n"
	"                         AlertProvider documents); a directory gives its *.yaml\n"
	"                         and *.yml files; -c repeated reads several as one\n"
	"      --admin ADDR       admin API and dashboard (default 127.0.0.1:9901); an\n"
	"                         address that is not loopback needs --token-file\n"
	"      --admin-host NAME  also accept requests whose Host is NAME (any port),\n"
	"                         e.g. a reverse proxy's name; repeatable. Always\n"
	"                         accepted: localhost and IP literals (loopback ones on\n"
	"                         a loopback address) with the admin port\n"
	"      --admin-max-connections N\n"
	"                         open admin connections; more get 503 (default 128)\n"
	"      --admin-head-timeout D, --admin-body-timeout D, --admin-idle-timeout D\n"
	"                         a request head must arrive within D (default 10s),\n"
	"                         its body and the response be sent within D (30s), an\n"
	"                         idle keep-alive connection is closed after D (60s)\n"
	"      --dashboard-time-zone ZONE, --dashboard-locale LOCALE\n"
	"                         the dashboard's default time zone (IANA name,\n"
	"                         default Europe/London) and locale (BCP 47 tag,\n"
	"                         default en-GB); each user may change both in it\n"
	"      --data-dir DIR     where canaryd.db (state and audit) lives\n"
	"                         (default ./canaryd-data)\n"
	"      --log-format F     text (default) or json, on stderr\n"
	"      --log-level L      debug, info (default), warn or error\n"
	"      --token-file F     require 'Authorization: Bearer TOKEN' on mutating\n"
	"                         API calls; one token a line, 'NAME TOKEN' or 'TOKEN'\n"
	"      --drain-timeout D  on SIGTERM, how long requests in flight may take\n"
	"                         (default 10s)\n"
	"      --metrics-server URL\n"
	"                         the Prometheus that mesh canaries' built-in metrics\n"
	"                         are read from, with Flagger's queries (Flagger's\n"
	"                         -metrics-server; no default: a mesh canary with\n"
	"                         built-in metrics needs it, or its spec.metricsServer)\n"
	"      --kubeconfig F     the Kubernetes API of the istio, gatewayapi and smi\n"
	"                         routers (default: the pod's service account when in\n"
	"                         a cluster)\n"
	"      --runbook-url URL  the runbook that rollback, abort and undo events and\n"
	"                         alerts link to (with a #section of docs/runbook.md),\n"
	"                         for canaries without spec.runbook (default: no link)\n"
	"      --check            validate the configuration, print every error, exit\n"
	"                         0 or 2\n"
	"\n"
	"signals: SIGHUP reloads the configuration, SIGTERM drains and exits 0\n";

typedef struct reload reload;

#define MAX_CONFIGS 64 /* -c arguments */

typedef struct daemon_ctx {
	uv_loop_t *loop;
	const char *const *configs; /* the -c arguments, read again by a reload */
	size_t n_configs;
	ctl *c;
	admin *adm;
	store *db;
	uv_signal_t sig_term, sig_int, sig_hup;
	uv_timer_t drain_timer;
	uint64_t drain_deadline;
	uint64_t drain_timeout_ms;
	int stopping;
	reload *loading;   /* the reload being read on the thread pool, or NULL */
	int reload_again;  /* a SIGHUP came during it: read the file once more after */
} daemon_ctx;

/* A reload in progress. Why off the loop: reading and checking a file is
 * bounded (config.h's CFG_MAX_) but can take a good part of a second for a
 * big one, and every proxied request would wait that long; so the file is
 * read and validated on libuv's thread pool (reload_read, which touches
 * only this struct: cfg_load shares no state and logs nothing), and the
 * result applied on the loop (reload_done), where everything else runs. */
struct reload {
	uv_work_t work;
	daemon_ctx *d;
	const char *const *paths;
	size_t n_paths;
	cfg *conf;         /* what reload_read loaded, or NULL */
	cfg_errors errs;   /* or why not */
};

static void print_errors(const cfg_errors *e, FILE *f)
{
	for (size_t i = 0; i < e->n; i++)
		fprintf(f, "%s\n", e->msg[i]);
}

/* The -c arguments, for messages, separated by <sep>: "a.yaml",
 * "a.yaml, conf.d/". */
static void join_paths(const char *const *paths, size_t n, const char *sep, char *out,
                       size_t outlen)
{
	size_t len = 0;
	out[0] = '\0';
	for (size_t i = 0; i < n && len < outlen; i++)
		len += (size_t)snprintf(out + len, outlen - len, "%s%s", i ? sep : "", paths[i]);
}

/* ---- what this build can run ---- */

/* "'prometheus', 'web'": the metric providers canaryd reads (beyond the
 * built-in metrics), from the providers' table. */
static void provider_names(char *out, size_t outlen)
{
	size_t len = 0;
	out[0] = '\0';
	for (int t = 0; t < CFG_PROVIDER_UNSUPPORTED && len < outlen; t++) {
		const provider_ops *ops = provider_by_type((cfg_provider_type)t);
		if (ops && strcmp(ops->name, "builtin"))
			len += (size_t)snprintf(out + len, outlen - len, "%s'%s'", len ? ", " : "",
			                        ops->name);
	}
}

/* Why canary <cc> cannot run in this build, in <why> (one line, naming
 * what works), for <what> 0 (its router) or 1 + i (its metric i): a
 * router it does not drive (a Flagger provider such as appmesh or
 * contour), or a metric from a provider it does not read (a Flagger
 * MetricTemplate of type datadog, cloudwatch, ...). Returns 0 when it
 * can. Such a configuration is valid (Flagger would take it) and passes
 * --check, which notes this; canaryd does not start with it. */
static int cannot_run(const cfg_canary *cc, int what, char *why, size_t whylen)
{
	char names[256];
	/* Flagger's analysis keys that no router here acts on: promotion in
	 * steps, and pod-count readiness thresholds (canaryd's readiness is
	 * all or nothing: every endpoint, or the whole Deployment, available) */
	const json_t *an = json_object_get(json_object_get(cc->raw, "spec"), "analysis");
	static const char *const unacted[] = { "stepWeightPromotion", "primaryReadyThreshold",
	                                       "canaryReadyThreshold" };
	for (size_t k = 0; what == 0 && k < sizeof unacted / sizeof unacted[0]; k++) {
		const json_t *v = json_object_get(an, unacted[k]);
		/* a threshold of 100 % is what canaryd does anyway */
		if (!v || (k > 0 && json_is_integer(v) && json_integer_value(v) == 100))
			continue;
		snprintf(why, whylen, "canary '%s' (%s:%d): spec.analysis.%s is not acted on by "
		         "canaryd yet (%s)", cc->name, cc->file, cc->line, unacted[k],
		         k == 0 ? "promotion goes to 100% at once" :
		         "a version is ready when all of its endpoints or pods are");
		return -1;
	}
	if (what == 0) {
		const router_ops *ops = router_find(cc->router);
		char err[512];
		if (ops && ops->check(cc, err, sizeof err) < 0) {
			snprintf(why, whylen, "%s (%s:%d)", err, cc->file, cc->line);
			return -1;
		}
		if (ops)
			return 0;
		router_names(names, sizeof names);
		snprintf(why, whylen, "canary '%s' (%s:%d): %s '%s' is not one canaryd drives "
		         "(it drives %s)", cc->name, cc->file, cc->line, cc->flagger ? "provider" :
		         "router", cc->router ? cc->router : "", names);
		return -1;
	}
	const cfg_metric_source *s = &cc->sources[what - 1];
	const char *tmpl = s->template_name;
	if (!provider_of(cc, what - 1)) {
		provider_names(names, sizeof names);
		snprintf(why, whylen, "canary '%s' (%s:%d): metric '%s' reads provider type "
		         "'%s'%s%s%s, which canaryd does not read (it reads the built-in metrics "
		         "and %s)", cc->name, cc->file, cc->line, cc->policy.metrics[what - 1].name,
		         s->type_name ? s->type_name : "?", tmpl ? " (MetricTemplate '" : "",
		         tmpl ? tmpl : "", tmpl ? "')" : "", names);
		return -1;
	}
	if (!s->unread)
		return 0;
	if (s->unread_why) {
		snprintf(why, whylen, "canary '%s' (%s:%d): metric '%s'%s%s%s: %s", cc->name, cc->file,
		         cc->line, cc->policy.metrics[what - 1].name, tmpl ? " (MetricTemplate '" : "",
		         tmpl ? tmpl : "", tmpl ? "')" : "", s->unread_why);
		return -1;
	}
	snprintf(why, whylen, "canary '%s' (%s:%d): metric '%s'%s%s%s: provider.%s is not honoured "
	         "by canaryd (%s)", cc->name, cc->file, cc->line, cc->policy.metrics[what - 1].name,
	         tmpl ? " (MetricTemplate '" : "", tmpl ? tmpl : "", tmpl ? "')" : "", s->unread,
	         !strcmp(s->unread, "secretRef") ?
	         "it reads no Kubernetes secrets: the queries would go without their credentials; "
	         "give an address that needs none" :
	         "it always verifies TLS: give a server whose certificate verifies, and remove "
	         "insecureSkipVerify");
	return -1;
}

/* The first reason a canary of <conf> cannot run, in <why>; 0 when all
 * can. */
static int runnable(const cfg *conf, char *why, size_t whylen)
{
	for (size_t i = 0; i < conf->n_canaries; i++)
		for (int w = 0; w <= conf->canaries[i].policy.n_metrics; w++)
			if (cannot_run(&conf->canaries[i], w, why, whylen) < 0)
				return -1;
	return 0;
}

/* --check: a note for each canary that is valid but will not run here, and
 * for Flagger's alerts, which are checked but not sent. */
static void check_notes(const cfg *conf)
{
	for (size_t i = 0; i < conf->n_notes; i++)
		printf("%s\n", conf->notes[i]);
	for (size_t i = 0; i < conf->n_canaries; i++) {
		const cfg_canary *cc = &conf->canaries[i];
		char why[768];
		for (int w = 0; w <= cc->policy.n_metrics; w++)
			if (cannot_run(cc, w, why, sizeof why) < 0)
				printf("%s:%d:1: note: valid, but canaryd will not start with this "
				       "configuration: %s\n", cc->file, cc->line, why);
		json_t *alerts = json_object_get(json_object_get(json_object_get(cc->raw, "spec"),
		                                                 "analysis"), "alerts");
		if (json_array_size(alerts))
			printf("%s:%d:1: note: canary '%s': spec.analysis.alerts: its AlertProviders are "
			       "found, but canaryd sends no Flagger alerts (its audit, webhooks and "
			       "status say what happens)\n", cc->file, cc->line, cc->name);
	}
}

/* ---- --check: what will happen to host names ---- */

#define CHECK_RESOLVE_MS 5000     /* --check waits this long for all its names */
#define CHECK_NO_ANSWER 1         /* check_name.status: none yet */

typedef struct check_name {
	char host[RSV_HOST_LEN];
	int status;                   /* 0, a libuv error, or CHECK_NO_ANSWER */
	rsv_addrs addrs;
} check_name;

/* Static: a lookup still running when --check gives up stays reachable
 * (the process exits without waiting for it). */
static uv_loop_t check_loop;
static uv_timer_t check_timer;

static void check_deadline(uv_timer_t *t)
{
	uv_stop(t->loop);
}

static void check_done(void *arg, int status, const rsv_addrs *addrs)
{
	check_name *cn = arg;
	cn->status = status;
	if (status == 0)
		rsv_addrs_copy(&cn->addrs, addrs);
}

/* Prints, for each endpoint of <conf> that is a host name, when it is
 * resolved, what happens when that fails, and what it resolves to now
 * (a warning when it does not). Resolving is what the daemon will do, on
 * a loop of our own so that the names are looked up together, within
 * CHECK_RESOLVE_MS in all (a DNS server that does not answer would hold
 * each for the resolver's timeout). Returns how many do not resolve now. */
static size_t check_host_names(const cfg *conf, size_t *n_names, bool *abandoned)
{
	*abandoned = false;
	check_name *names = NULL;
	size_t n = 0;
	for (size_t i = 0; i < conf->n_canaries; i++) {
		const cfg_canary *cc = &conf->canaries[i];
		for (int t = 0; t < 2; t++) {
			char **eps = t ? cc->canary_eps : cc->stable_eps;
			size_t ne = t ? cc->n_canary_eps : cc->n_stable_eps;
			for (size_t e = 0; e < ne; e++) {
				char host[RSV_HOST_LEN];
				if (!rsv_host_of(eps[e], host, sizeof host))
					continue;
				bool seen = false;
				for (size_t k = 0; k < n && !seen; k++)
					seen = strcmp(names[k].host, host) == 0;
				if (seen)
					continue;
				names = xrealloc(names, (n + 1) * sizeof *names);
				memset(&names[n], 0, sizeof names[n]);
				snprintf(names[n].host, sizeof names[n].host, "%s", host);
				n++;
			}
		}
	}
	*n_names = n;
	if (n == 0)
		return 0;
	uv_loop_init(&check_loop);
	rsv *r = rsv_new(&check_loop, 4);   /* libuv's pool: nothing else uses it here */
	for (size_t k = 0; k < n; k++) {
		names[k].status = CHECK_NO_ANSWER;
		rsv_lookup(r, names[k].host, check_done, &names[k], &names[k].status);
	}
	uv_timer_init(&check_loop, &check_timer);
	uv_timer_start(&check_timer, check_deadline, CHECK_RESOLVE_MS, 0);
	uv_unref((uv_handle_t *)&check_timer);   /* the lookups keep the loop running */
	uv_run(&check_loop, UV_RUN_DEFAULT);     /* every answer, or the deadline */
	bool unanswered = false;
	for (size_t k = 0; k < n; k++)
		unanswered |= names[k].status == CHECK_NO_ANSWER;
	rsv_free(r);
	*abandoned = unanswered;
	if (!unanswered) {
		uv_close((uv_handle_t *)&check_timer, NULL);
		uv_run(&check_loop, UV_RUN_DEFAULT);
		uv_loop_close(&check_loop);
	}   /* else lookups still run in the pool: the exit ends them */
	size_t failing = 0;
	for (size_t i = 0; i < conf->n_canaries; i++) {
		const cfg_canary *cc = &conf->canaries[i];
		char every[32], first[32];
		util_format_duration(cc->dns_refresh_ms, every, sizeof every);
		util_format_duration(RSV_RETRY_FIRST_MS, first, sizeof first);
		for (int t = 0; t < 2; t++) {
			char **eps = t ? cc->canary_eps : cc->stable_eps;
			const cfg_pos *pos = t ? cc->canary_eps_pos : cc->stable_eps_pos;
			size_t ne = t ? cc->n_canary_eps : cc->n_stable_eps;
			for (size_t e = 0; e < ne; e++) {
				char host[RSV_HOST_LEN];
				if (!rsv_host_of(eps[e], host, sizeof host))
					continue;
				const check_name *nm = NULL;
				for (size_t k = 0; k < n && !nm; k++)
					if (strcmp(names[k].host, host) == 0)
						nm = &names[k];
				printf("%s:%d:%d: ", cc->file, pos[e].line, pos[e].col);
				if (nm->status == 0) {
					char list[1024] = "";
					rsv_addrs_list(&nm->addrs, 16, list, sizeof list);
					printf("note: canary '%s': %s endpoint '%s' is a host name: it is looked "
					       "up when canaryd starts and every %s (spec.dns.refresh), every "
					       "address it resolves to gets requests, and when a lookup fails "
					       "requests keep going to the addresses of the last answer; it "
					       "resolves now to %s\n", cc->name, t ? "canary" : "stable", eps[e],
					       every, list);
					continue;
				}
				failing++;
				char cause[128];
				if (nm->status == CHECK_NO_ANSWER)
					snprintf(cause, sizeof cause, "no answer within %dms", CHECK_RESOLVE_MS);
				else
					snprintf(cause, sizeof cause, "%s", uv_strerror(nm->status));
				printf("warning: canary '%s': %s endpoint '%s' is a host name that does not "
				       "resolve now (%s): canaryd will start, look it up again after %s, "
				       "doubling up to every %s (spec.dns.refresh), and %s until it resolves\n",
				       cc->name, t ? "canary" : "stable", eps[e], cause,
				       first, every,
				       t ? "not start the configuration's rollout"
				         : "send it no requests");
			}
		}
	}
	for (size_t k = 0; k < n; k++)
		rsv_addrs_release(&names[k].addrs);
	free(names);
	return failing;
}

static void shutdown_all(daemon_ctx *d)
{
	uv_timer_stop(&d->drain_timer);
	uv_close((uv_handle_t *)&d->drain_timer, NULL);
	uv_close((uv_handle_t *)&d->sig_term, NULL);
	uv_close((uv_handle_t *)&d->sig_int, NULL);
	uv_close((uv_handle_t *)&d->sig_hup, NULL);
	ctl_set_event_sink(d->c, NULL, NULL); /* the admin API goes first */
	admin_close(d->adm);
	ctl_close(d->c);
}

/* The controller's live events, to the admin API's event streams. */
static void publish(void *arg, const char *canary, const char *type, const json_t *data)
{
	admin_publish(arg, canary, type, data);
}

static void on_drain_timer(uv_timer_t *t)
{
	daemon_ctx *d = t->data;
	size_t n = ctl_inflight(d->c);
	if (n == 0 || uv_now(d->loop) >= d->drain_deadline) {
		if (n)
			log_msg(LOG_WARN, NULL, "drain timeout: closing %zu requests in flight", n);
		else
			log_msg(LOG_INFO, NULL, "drained, exiting");
		shutdown_all(d);
	}
}

static void on_stop_signal(uv_signal_t *s, int signum)
{
	daemon_ctx *d = s->data;
	if (d->stopping)
		return;
	d->stopping = 1;
	/* a reload not started yet is dropped; one being read finishes on its
	 * thread (it is bounded) and is then discarded by reload_done */
	d->reload_again = 0;
	if (d->loading)
		uv_cancel((uv_req_t *)&d->loading->work);
	log_msg(LOG_INFO, NULL, "%s: draining (up to %llums)", signum == SIGTERM ? "SIGTERM" : "SIGINT",
	        (unsigned long long)d->drain_timeout_ms);
	admin_set_ready(d->adm, 0);
	ctl_drain(d->c);
	d->drain_deadline = uv_now(d->loop) + d->drain_timeout_ms;
	uv_timer_start(&d->drain_timer, on_drain_timer, 0, 50);
}

/* On the thread pool: reads and validates the file, nothing else. */
static void reload_read(uv_work_t *w)
{
	reload *r = w->data;
	cfg_load_paths(r->paths, r->n_paths, &r->conf, &r->errs);
}

/* At most this many of a failed reload's errors are logged; --check shows
 * them all. */
#define RELOAD_LOG_ERRORS 20

static void reload_start(daemon_ctx *d);

/* On the loop: applies what reload_read loaded, or logs why not, then
 * starts the one more reload that SIGHUPs during this one asked for. */
static void reload_done(uv_work_t *w, int status)
{
	reload *r = w->data;
	daemon_ctx *d = r->d;
	char paths[1024], args[1024], why[768];
	join_paths(r->paths, r->n_paths, ", ", paths, sizeof paths);
	join_paths(r->paths, r->n_paths, " -c ", args, sizeof args);
	d->loading = NULL;
	if (status < 0 || d->stopping) {
		cfg_free(r->conf);
	} else if (!r->conf) {
		ctl_note_reload(d->c, 0);
		for (size_t i = 0; i < r->errs.n && i < RELOAD_LOG_ERRORS; i++)
			log_msg(LOG_ERROR, NULL, "reload: %s", r->errs.msg[i]);
		if (r->errs.n > RELOAD_LOG_ERRORS)
			log_msg(LOG_ERROR, NULL, "reload: %zu more errors (canaryd --check -c %s shows "
			        "them all)", r->errs.n - RELOAD_LOG_ERRORS, args);
		log_msg(LOG_ERROR, NULL, "reload failed: %zu errors, keeping the running configuration",
		        r->errs.n);
	} else if (runnable(r->conf, why, sizeof why) < 0) {
		log_msg(LOG_ERROR, NULL, "reload failed: %s; keeping the running configuration", why);
		ctl_note_reload(d->c, 0);
		cfg_free(r->conf);
	} else {
		char err[512];
		int rc = ctl_reload(d->c, r->conf, err, sizeof err); /* takes r->conf */
		if (rc < 0)
			log_msg(LOG_ERROR, NULL, "reload failed: %s; keeping the running configuration",
			        err);
		else
			log_msg(LOG_INFO, NULL, "configuration reloaded from %s", paths);
		ctl_note_reload(d->c, rc == 0);
	}
	cfg_errors_release(&r->errs);
	free(r);
	if (d->reload_again && !d->stopping) {
		d->reload_again = 0;
		reload_start(d);
	}
}

static void reload_start(daemon_ctx *d)
{
	reload *r = xcalloc(1, sizeof *r);
	r->d = d;
	r->paths = d->configs;
	r->n_paths = d->n_configs;
	r->work.data = r;
	int rc = uv_queue_work(d->loop, &r->work, reload_read, reload_done);
	if (rc < 0) {
		log_msg(LOG_ERROR, NULL, "reload failed: cannot start reading the configuration: %s",
		        uv_strerror(rc));
		ctl_note_reload(d->c, 0);
		free(r);
		return;
	}
	d->loading = r;
}

/* SIGHUP: reads the configuration again, off the loop. Signals that come
 * while a reload is being read make one more reload after it, so the file
 * as it is after the last signal is always read, and a storm of signals
 * costs two reads, not one each. */
static void on_hup(uv_signal_t *s, int signum)
{
	daemon_ctx *d = s->data;
	if (d->stopping)
		return;
	if (d->loading) {
		d->reload_again = 1;
		return;
	}
	reload_start(d);
}

/* --runbook-url: a link put in events and chat messages as it is */
static int runbook_url_ok(const char *u)
{
	if (strncmp(u, "http://", 7) != 0 && strncmp(u, "https://", 8) != 0)
		return 0;
	size_t skip = u[4] == 's' ? 8 : 7;
	if (!u[skip] || u[skip] == '/')
		return 0;   /* no host */
	for (const unsigned char *p = (const unsigned char *)u; *p; p++)
		if (*p <= 0x20 || *p == 0x7f)
			return 0;
	return 1;
}

int main(int argc, char **argv)
{
	const char *configs[MAX_CONFIGS];
	size_t n_configs = 0;
	const char *admin_addr = "127.0.0.1:9901", *data_dir = "./canaryd-data";
	const char *log_format = NULL, *level_arg = NULL, *token_file = NULL;
	const char *drain = "10s", *metrics_server = NULL;
	const char *kubeconfig = NULL;
	const char *runbook_url = NULL;
	const char *admin_durs[3] = { NULL, NULL, NULL }; /* head, body, idle */
	const char *max_conns = NULL;
	const char *dash_tz = "Europe/London", *dash_locale = "en-GB";
	const char *admin_hosts[16];
	size_t n_admin_hosts = 0;
	int check = 0;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "admin", required_argument, NULL, 'a' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "log-format", required_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "token-file", required_argument, NULL, 't' },
		{ "drain-timeout", required_argument, NULL, 'D' },
		{ "kubeconfig", required_argument, NULL, 'K' },
		{ "admin-host", required_argument, NULL, 'H' },
		{ "admin-max-connections", required_argument, NULL, 'M' },
		{ "admin-head-timeout", required_argument, NULL, '1' },
		{ "admin-body-timeout", required_argument, NULL, '2' },
		{ "admin-idle-timeout", required_argument, NULL, '3' },
		{ "metrics-server", required_argument, NULL, 'P' },
		{ "dashboard-time-zone", required_argument, NULL, 'Z' },
		{ "dashboard-locale", required_argument, NULL, 'L' },
		{ "runbook-url", required_argument, NULL, 'R' },
		{ "check", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			if (n_configs == MAX_CONFIGS) {
				fprintf(stderr, "canaryd: at most %d -c arguments (name a directory for more "
				        "files)\n", MAX_CONFIGS);
				return 2;
			}
			configs[n_configs++] = optarg;
			break;
		case 'a': admin_addr = optarg; break;
		case 'd': data_dir = optarg; break;
		case 'f': log_format = optarg; break;
		case 'l': level_arg = optarg; break;
		case 't': token_file = optarg; break;
		case 'D': drain = optarg; break;
		case 'K': kubeconfig = optarg; break;
		case 'H':
			if (n_admin_hosts == sizeof admin_hosts / sizeof admin_hosts[0]) {
				fprintf(stderr, "canaryd: at most %zu --admin-host names\n", n_admin_hosts);
				return 2;
			}
			admin_hosts[n_admin_hosts++] = optarg;
			break;
		case 'M': max_conns = optarg; break;
		case '1': case '2': case '3': admin_durs[ch - '1'] = optarg; break;
		case 'P': metrics_server = optarg; break;
		case 'Z': dash_tz = optarg; break;
		case 'L': dash_locale = optarg; break;
		case 'R': runbook_url = optarg; break;
		case 'k': check = 1; break;
		case 'h': fputs(usage, stdout); return 0;
		case 'V': puts("canaryd " CANARYD_VERSION); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "canaryd: unexpected argument '%s'\n%s", argv[optind], usage);
		return 2;
	}
	if (!n_configs) {
		fprintf(stderr, "canaryd: -c FILE|DIR is required\n%s", usage);
		return 2;
	}
	if (runbook_url && !runbook_url_ok(runbook_url)) {
		fprintf(stderr, "canaryd: --runbook-url: must be an http:// or https:// URL without "
		        "spaces, got '%s'\n", runbook_url);
		return 2;
	}
	if (log_setup(log_format, level_arg) < 0) {
		fprintf(stderr, "canaryd: --log-format is text or json, --log-level is debug, info, warn or error\n");
		return 2;
	}
	uint64_t drain_ms;
	if (util_parse_duration(drain, &drain_ms) < 0) {
		fprintf(stderr, "canaryd: --drain-timeout '%s' is not a duration (e.g. 10s)\n", drain);
		return 2;
	}
	admin_opts aopts;
	admin_opts_init(&aopts);
	aopts.addr = admin_addr;
	aopts.token_file = token_file;
	aopts.hosts = admin_hosts;
	aopts.n_hosts = n_admin_hosts;
	aopts.assets = &assets_embedded;
	char err[1024];
	if (assets_check_time_zone(dash_tz, err, sizeof err) < 0 ||
	    assets_check_locale(dash_locale, err, sizeof err) < 0) {
		fprintf(stderr, "canaryd: %s\n", err);
		return 2;
	}
	aopts.dashboard_time_zone = dash_tz;
	aopts.dashboard_locale = dash_locale;
	static const char *const dur_flags[3] = { "head", "body", "idle" };
	uint64_t *durs[3] = { &aopts.head_timeout_ms, &aopts.body_timeout_ms, &aopts.idle_timeout_ms };
	for (int i = 0; i < 3; i++) {
		if (admin_durs[i] && (util_parse_duration(admin_durs[i], durs[i]) < 0 || *durs[i] < 100 ||
		                      *durs[i] > 24ULL * 3600 * 1000)) {
			fprintf(stderr, "canaryd: --admin-%s-timeout '%s' is not a duration from 100ms to 24h\n",
			        dur_flags[i], admin_durs[i]);
			return 2;
		}
	}
	if (max_conns) {
		char *end;
		unsigned long n = strtoul(max_conns, &end, 10);
		if (end == max_conns || *end || max_conns[0] == '-' || n < 1 || n > 100000) {
			fprintf(stderr, "canaryd: --admin-max-connections '%s' is not a number from 1 to 100000\n",
			        max_conns);
			return 2;
		}
		aopts.max_conns = (unsigned)n;
	}
	if (metrics_server && !provider_url_ok(metrics_server)) {
		fprintf(stderr, "canaryd: --metrics-server '%.200s' is not an http:// or https:// URL "
		        "such as http://127.0.0.1:9090\n", metrics_server);
		return 2;
	}
	provider_set_metrics_server(metrics_server);
	if (!check && admin_check_addr(admin_addr, token_file != NULL, err, sizeof err) < 0) {
		fprintf(stderr, "canaryd: %s\n", err);
		return 2;
	}

	cfg *conf = NULL;
	cfg_errors errs = { 0 };
	if (cfg_load_paths(configs, n_configs, &conf, &errs) < 0) {
		print_errors(&errs, stderr);
		cfg_errors_release(&errs);
		return 2;
	}
	cfg_errors_release(&errs);
	char paths[1024], files[64] = "";
	join_paths(configs, n_configs, ", ", paths, sizeof paths);
	if (conf->n_files > 1)
		snprintf(files, sizeof files, ", %zu files", conf->n_files);
	if (check) {
		size_t n_names = 0;
		bool abandoned;
		check_notes(conf);
		size_t failing = check_host_names(conf, &n_names, &abandoned);
		if (n_names)
			printf("%s: ok (%zu canar%s%s, %zu host name%s, %zu not resolving now)\n", paths,
			       conf->n_canaries, conf->n_canaries == 1 ? "y" : "ies", files, n_names,
			       n_names == 1 ? "" : "s", failing);
		else
			printf("%s: ok (%zu canar%s%s)\n", paths, conf->n_canaries,
			       conf->n_canaries == 1 ? "y" : "ies", files);
		cfg_free(conf);
		if (abandoned) {
			/* a lookup still waits for a DNS server in libuv's pool, and
			 * libuv's destructor would join that thread at exit(): the
			 * answer is given, so leave without waiting for it */
			fflush(stdout);
			_exit(0);
		}
		return 0;
	}

	/* before anything is opened (the database is not even created): a
	 * configuration this build cannot run is refused as a bad one is */
	if (runnable(conf, err, sizeof err) < 0) {
		fprintf(stderr, "canaryd: %s\n", err);
		cfg_free(conf);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	daemon_ctx d;
	memset(&d, 0, sizeof d);
	d.configs = configs;
	d.n_configs = n_configs;
	d.drain_timeout_ms = drain_ms;
	d.loop = uv_default_loop();
	router_k8s_kubeconfig(kubeconfig);
	if (store_open(data_dir, &d.db, err, sizeof err) < 0) {
		fprintf(stderr, "canaryd: %s\n", err);
		cfg_free(conf);
		return 1;
	}
	if (ctl_new(d.loop, d.db, conf, &d.c, err, sizeof err) < 0) {
		fprintf(stderr, "canaryd: %s\n", err);
		uv_run(d.loop, UV_RUN_NOWAIT);
		store_close(d.db);
		return 1;
	}
	ctl_note_reload(d.c, 1);
	ctl_set_runbook_url(d.c, runbook_url);
	if (admin_start(d.loop, &aopts, d.c, d.db, &d.adm, err, sizeof err) < 0) {
		fprintf(stderr, "canaryd: %s\n", err);
		ctl_close(d.c);
		uv_run(d.loop, UV_RUN_DEFAULT);
		store_close(d.db);
		return 1;
	}
	ctl_set_event_sink(d.c, publish, d.adm);
	log_msg(LOG_INFO, NULL, "canaryd %s: admin API on http://%s, data in %s", CANARYD_VERSION,
	        admin_addr, data_dir);
	uv_timer_init(d.loop, &d.drain_timer);
	d.drain_timer.data = &d;
	uv_signal_init(d.loop, &d.sig_term);
	uv_signal_init(d.loop, &d.sig_int);
	uv_signal_init(d.loop, &d.sig_hup);
	d.sig_term.data = d.sig_int.data = d.sig_hup.data = &d;
	uv_signal_start(&d.sig_term, on_stop_signal, SIGTERM);
	uv_signal_start(&d.sig_int, on_stop_signal, SIGINT);
	uv_signal_start(&d.sig_hup, on_hup, SIGHUP);

	uv_run(d.loop, UV_RUN_DEFAULT);
	store_close(d.db);
	uv_loop_close(d.loop);
	return 0;
}
