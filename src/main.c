/* main.c - canaryd: the daemon. Parses flags, loads the configuration,
 * opens the store, and runs the controller, the proxies and the admin API
 * on one libuv loop until SIGTERM. Only this file exits. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "admin.h"
#include "config.h"
#include "controller.h"
#include "log.h"
#include "store.h"
#include "util.h"

#define CANARYD_VERSION "0.1.0"

static const char usage[] =
	"usage: canaryd -c FILE [--admin ADDR] [--data-dir DIR] [--log-format text|json]\n"
	"               [--log-level debug|info|warn|error] [--token-file F] [--drain-timeout DUR]\n"
	"       canaryd --check -c FILE\n"
	"\n"
	"  -c, --config FILE      the YAML configuration (one or more Canary documents)\n"
	"      --admin ADDR       admin API and dashboard (default 127.0.0.1:9901)\n"
	"      --data-dir DIR     where canaryd.db (state and audit) lives (default ./canaryd-data)\n"
	"      --log-format F     text (default) or json, on stderr\n"
	"      --log-level L      debug, info (default), warn or error\n"
	"      --token-file F     require 'Authorization: Bearer TOKEN' on mutating API calls;\n"
	"                         one token a line, 'NAME TOKEN' or 'TOKEN'\n"
	"      --drain-timeout D  on SIGTERM, how long requests in flight may take (default 10s)\n"
	"      --check            validate the configuration, print every error, exit 0 or 2\n"
	"\n"
	"signals: SIGHUP reloads the configuration, SIGTERM drains and exits 0\n";

typedef struct reload reload;

typedef struct daemon_ctx {
	uv_loop_t *loop;
	const char *config_path;
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
	const char *path;
	cfg *conf;         /* what reload_read loaded, or NULL */
	cfg_errors errs;   /* or why not */
};

static void print_errors(const cfg_errors *e, FILE *f)
{
	for (size_t i = 0; i < e->n; i++)
		fprintf(f, "%s\n", e->msg[i]);
}

static void shutdown_all(daemon_ctx *d)
{
	uv_timer_stop(&d->drain_timer);
	uv_close((uv_handle_t *)&d->drain_timer, NULL);
	uv_close((uv_handle_t *)&d->sig_term, NULL);
	uv_close((uv_handle_t *)&d->sig_int, NULL);
	uv_close((uv_handle_t *)&d->sig_hup, NULL);
	admin_close(d->adm);
	ctl_close(d->c);
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
	cfg_load(r->path, &r->conf, &r->errs);
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
	d->loading = NULL;
	if (status < 0 || d->stopping) {
		cfg_free(r->conf);
	} else if (!r->conf) {
		for (size_t i = 0; i < r->errs.n && i < RELOAD_LOG_ERRORS; i++)
			log_msg(LOG_ERROR, NULL, "reload: %s", r->errs.msg[i]);
		if (r->errs.n > RELOAD_LOG_ERRORS)
			log_msg(LOG_ERROR, NULL, "reload: %zu more errors (canaryd --check -c %s shows "
			        "them all)", r->errs.n - RELOAD_LOG_ERRORS, r->path);
		log_msg(LOG_ERROR, NULL, "reload failed: %zu errors, keeping the running configuration",
		        r->errs.n);
	} else {
		char err[512];
		if (ctl_reload(d->c, r->conf, err, sizeof err) < 0) /* takes r->conf */
			log_msg(LOG_ERROR, NULL, "reload failed: %s; keeping the running configuration",
			        err);
		else
			log_msg(LOG_INFO, NULL, "configuration reloaded from %s", r->path);
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
	r->path = d->config_path;
	r->work.data = r;
	int rc = uv_queue_work(d->loop, &r->work, reload_read, reload_done);
	if (rc < 0) {
		log_msg(LOG_ERROR, NULL, "reload failed: cannot start reading '%s': %s", r->path,
		        uv_strerror(rc));
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

int main(int argc, char **argv)
{
	const char *config = NULL, *admin_addr = "127.0.0.1:9901", *data_dir = "./canaryd-data";
	const char *log_format = NULL, *level_arg = NULL, *token_file = NULL;
	const char *drain = "10s";
	int check = 0;
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "admin", required_argument, NULL, 'a' },
		{ "data-dir", required_argument, NULL, 'd' },
		{ "log-format", required_argument, NULL, 'f' },
		{ "log-level", required_argument, NULL, 'l' },
		{ "token-file", required_argument, NULL, 't' },
		{ "drain-timeout", required_argument, NULL, 'D' },
		{ "check", no_argument, NULL, 'k' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;
	while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'c': config = optarg; break;
		case 'a': admin_addr = optarg; break;
		case 'd': data_dir = optarg; break;
		case 'f': log_format = optarg; break;
		case 'l': level_arg = optarg; break;
		case 't': token_file = optarg; break;
		case 'D': drain = optarg; break;
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
	if (!config) {
		fprintf(stderr, "canaryd: -c FILE is required\n%s", usage);
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

	cfg *conf = NULL;
	cfg_errors errs = { 0 };
	if (cfg_load(config, &conf, &errs) < 0) {
		print_errors(&errs, stderr);
		cfg_errors_release(&errs);
		return 2;
	}
	cfg_errors_release(&errs);
	if (check) {
		printf("%s: ok (%zu canar%s)\n", config, conf->n_canaries, conf->n_canaries == 1 ? "y" : "ies");
		cfg_free(conf);
		return 0;
	}

	signal(SIGPIPE, SIG_IGN);
	char err[512];
	daemon_ctx d;
	memset(&d, 0, sizeof d);
	d.config_path = config;
	d.drain_timeout_ms = drain_ms;
	d.loop = uv_default_loop();
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
	if (admin_start(d.loop, admin_addr, d.c, d.db, token_file, &d.adm, err, sizeof err) < 0) {
		fprintf(stderr, "canaryd: %s\n", err);
		ctl_close(d.c);
		uv_run(d.loop, UV_RUN_DEFAULT);
		store_close(d.db);
		return 1;
	}
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
