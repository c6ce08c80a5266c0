/* test_controller.c - the controller through the router interface, with a
 * router of the test's own that applies a split only when the test says
 * so (as a Kubernetes write or a HAProxy command may answer later): each
 * split carries the next generation, status shows what traffic does (the
 * last split applied), a late answer loses, a failed split is said and
 * tried again, and a retired router is never called back. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "controller.h"
#include "log.h"
#include "provider.h"
#include "router.h"

#include "../testdir.h"

/* ---- a router that answers when told ---- */

#define MAX_APPLIES 16

typedef struct fake {
	router base;
	router_events ev;
	struct {
		uint64_t gen;
		int weight;
		size_t n_canary;
		bool watch_ready;
		router_done_fn done;
		void *arg;
	} applies[MAX_APPLIES];
	int n_applies;
	bool retired;
	stats *st;            /* the canary's stats, as the router records them */
} fake;

static fake *the_fake;   /* the one opened last */
static int opens, closes;

static int f_check(const cfg_canary *cc, char *err, size_t errlen) { return 0; }

static const router_ops fake_ops;

static int f_open(uv_loop_t *loop, const cfg_canary *cc, stats *st, const router_events *ev,
                  router **out, char *err, size_t errlen)
{
	fake *f = calloc(1, sizeof *f);
	f->base.ops = &fake_ops;
	f->ev = *ev;
	f->st = st;
	the_fake = f;
	opens++;
	*out = &f->base;
	return 0;
}

static void f_apply(router *r, const router_split *s, router_done_fn done, void *arg)
{
	fake *f = (fake *)r;
	assert_true(f->n_applies < MAX_APPLIES);
	assert_false(f->retired);
	f->applies[f->n_applies].gen = s->generation;
	f->applies[f->n_applies].weight = s->weight;
	f->applies[f->n_applies].n_canary = s->n_members[TARGET_CANARY];
	f->applies[f->n_applies].watch_ready = s->watch_ready;
	f->applies[f->n_applies].done = done;
	f->applies[f->n_applies].arg = arg;
	f->n_applies++;
}

static int f_prepare(router *r, const cfg_canary *cc, char *err, size_t errlen) { return 0; }
static void f_finish(router *r, const cfg_canary *cc) {}
static void f_cancel(router *r) {}
static void f_status(router *r, json_t *o) {}
static size_t f_zero(router *r) { return 0; }
static void f_drain(router *r) {}

static void f_retire(router *r)
{
	((fake *)r)->retired = true;
}

static void f_close(router *r)
{
	fake *f = (fake *)r;
	closes++;
	if (f == the_fake)
		the_fake = NULL;
	free(f);
}

static const router_ops fake_ops = {
	.name = "haproxy",   /* a spec.router the configuration takes */
	.check = f_check, .open = f_open, .apply = f_apply, .prepare = f_prepare,
	.finish = f_finish, .cancel = f_cancel, .status = f_status, .inflight = f_zero,
	.connections = f_zero, .drain = f_drain, .retire = f_retire, .close = f_close,
};

/* The same, standing in for a Kubernetes router */
static const router_ops fake_mesh_ops = {
	.name = "istio",
	.check = f_check, .open = f_open, .apply = f_apply, .prepare = f_prepare,
	.finish = f_finish, .cancel = f_cancel, .status = f_status, .inflight = f_zero,
	.connections = f_zero, .drain = f_drain, .retire = f_retire, .close = f_close,
};

/* Answers the apply of generation <gen> (it must have been asked). */
static void answer(uint64_t gen, int status, const char *err)
{
	assert_non_null(the_fake);
	for (int i = 0; i < the_fake->n_applies; i++)
		if (the_fake->applies[i].gen == gen) {
			the_fake->applies[i].done(the_fake->applies[i].arg, gen, status, err);
			return;
		}
	fail_msg("generation %llu was never asked", (unsigned long long)gen);
}

static uint64_t last_gen(void)
{
	return the_fake->applies[the_fake->n_applies - 1].gen;
}

/* ---- the fixture: a controller over a fresh database ---- */

typedef struct fixture {
	char dir[64];
	uv_loop_t loop;
	store *db;
	ctl *c;
} fixture;

static const char *const CONFIG =
	"apiVersion: canaryd/v1\n"
	"kind: Canary\n"
	"metadata: {name: web}\n"
	"spec:\n"
	"  router: haproxy\n"
	"  haproxy: {runtimeAPI: unix:/tmp/canaryd-test.sock, backend: be}\n"
	"  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n"
	"  analysis: {interval: 1m, threshold: 2, maxWeight: 50, stepWeight: 10}\n";

static const char *config_text = CONFIG;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/canaryd-test-ctl-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	uv_loop_init(&f->loop);
	char err[512] = "";
	if (store_open(f->dir, &f->db, err, sizeof err) < 0) {
		print_error("store_open: %s\n", err);
		return -1;
	}
	cfg *conf = NULL;
	cfg_errors errs = { 0 };
	if (cfg_load_string("web.yaml", config_text, strlen(config_text), &conf, &errs) < 0) {
		print_error("config: %s\n", errs.msg[0]);
		return -1;
	}
	the_fake = NULL;
	opens = closes = 0;
	if (ctl_new(&f->loop, f->db, conf, &f->c, err, sizeof err) < 0) {
		print_error("ctl_new: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	ctl_close(f->c);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	store_close(f->db);
	remove_tree(f->dir);
	free(f);
	return 0;
}

static json_t *status(fixture *f)
{
	return ctl_status(f->c, "web");
}

static json_int_t weight_of(fixture *f)
{
	json_t *s = status(f);
	json_int_t w = json_integer_value(json_object_get(s, "canaryWeight"));
	json_decref(s);
	return w;
}

/* Runs an operator command that must be accepted. */
static void command(fixture *f, const char *action, const char *body_json)
{
	json_t *body = body_json ? json_loads(body_json, 0, NULL) : NULL;
	json_t *res = NULL;
	char err[512] = "";
	ctl_call *pending = NULL;
	int st = ctl_command(f->c, "web", action, body, "test", &res, err, sizeof err, NULL,
	                     NULL, &pending);
	if (st != 200)
		print_error("%s: %d %s\n", action, st, err);
	assert_int_equal(st, 200);
	assert_null(pending);
	json_decref(res);
	json_decref(body);
}

/* ---- the tests ---- */

/* Until the router answers, status shows the split traffic follows and
 * the one being applied; once it answers, the new one. */
static void test_status_shows_what_is_applied(void **state)
{
	fixture *f = *state;
	assert_int_equal(opens, 1);
	assert_int_equal(the_fake->n_applies, 1);        /* the first split, at start */
	assert_int_equal(the_fake->applies[0].gen, 1);
	answer(1, 0, NULL);
	command(f, "rollout", "{\"revision\": \"v2\", \"endpoints\": [\"127.0.0.1:9002\"]}");
	assert_int_equal(the_fake->applies[the_fake->n_applies - 1].n_canary, 1);
	assert_true(the_fake->applies[the_fake->n_applies - 1].watch_ready);
	int first = the_fake->applies[the_fake->n_applies - 1].weight; /* the first step */
	assert_int_equal(first, 10);
	assert_int_equal(weight_of(f), 0);               /* not applied yet */
	answer(last_gen(), 0, NULL);
	assert_int_equal(weight_of(f), first);
	command(f, "weight", "{\"weight\": 30}");
	uint64_t g = last_gen();
	assert_int_equal(the_fake->applies[the_fake->n_applies - 1].weight, 30);

	json_t *s = status(f);
	assert_int_equal(json_integer_value(json_object_get(s, "canaryWeight")), first);
	assert_int_equal(json_integer_value(json_object_get(s, "appliedGeneration")), g - 1);
	json_t *a = json_object_get(s, "applying");
	assert_non_null(a);
	assert_int_equal(json_integer_value(json_object_get(a, "generation")), g);
	assert_int_equal(json_integer_value(json_object_get(a, "canaryWeight")), 30);
	json_decref(s);

	answer(g, 0, NULL);
	s = status(f);
	assert_int_equal(json_integer_value(json_object_get(s, "canaryWeight")), 30);
	assert_int_equal(json_integer_value(json_object_get(s, "appliedGeneration")), g);
	assert_null(json_object_get(s, "applying"));
	assert_null(json_object_get(s, "routerError"));
	json_decref(s);
}

/* Two splits in flight, answered in the other order: the older one's
 * answer comes last and loses. */
static void test_a_late_apply_loses(void **state)
{
	fixture *f = *state;
	answer(1, 0, NULL);
	command(f, "rollout", "{\"revision\": \"v2\", \"endpoints\": [\"127.0.0.1:9002\"]}");
	answer(last_gen(), 0, NULL);
	command(f, "weight", "{\"weight\": 20}");
	uint64_t older = last_gen();
	command(f, "weight", "{\"weight\": 40}");
	uint64_t newer = last_gen();
	assert_int_equal(newer, older + 1);
	answer(newer, 0, NULL);
	assert_int_equal(weight_of(f), 40);
	answer(older, 0, NULL);                          /* late */
	assert_int_equal(weight_of(f), 40);
	json_t *s = status(f);
	assert_int_equal(json_integer_value(json_object_get(s, "appliedGeneration")), newer);
	json_decref(s);
	/* a rollback goes through the same way */
	command(f, "abort", NULL);
	assert_int_equal(the_fake->applies[the_fake->n_applies - 1].weight, 0);
	assert_false(the_fake->applies[the_fake->n_applies - 1].watch_ready);
	assert_int_equal(weight_of(f), 40);              /* not applied yet */
	answer(last_gen(), 0, NULL);
	assert_int_equal(weight_of(f), 0);
}

/* A split the router fails is said in status and tried again (a new
 * generation) by the tick; traffic meanwhile is what the router last
 * applied. */
static void test_a_failed_apply_is_said_and_retried(void **state)
{
	fixture *f = *state;
	answer(1, 0, NULL);
	command(f, "rollout", "{\"revision\": \"v2\", \"endpoints\": [\"127.0.0.1:9002\"]}");
	answer(last_gen(), 0, NULL);
	command(f, "weight", "{\"weight\": 25}");
	uint64_t g = last_gen();
	answer(g, -1, "cannot reach '127.0.0.1:1': connection refused");
	json_t *s = status(f);
	assert_int_equal(json_integer_value(json_object_get(s, "canaryWeight")), 10);
	assert_string_equal(json_string_value(json_object_get(s, "routerError")),
	                    "cannot reach '127.0.0.1:1': connection refused");
	assert_null(json_object_get(s, "applying"));
	json_decref(s);
	/* the tick asks again, once APPLY_RETRY_MS (1 s) has passed */
	int before = the_fake->n_applies;
	for (int i = 0; i < 250 && the_fake->n_applies == before; i++) {
		usleep(20000);
		uv_run(&f->loop, UV_RUN_NOWAIT);
	}
	assert_true(the_fake->n_applies > before);
	assert_true(last_gen() > g);
	assert_int_equal(the_fake->applies[the_fake->n_applies - 1].weight, 25);
	answer(last_gen(), 0, NULL);
	s = status(f);
	assert_int_equal(json_integer_value(json_object_get(s, "canaryWeight")), 25);
	assert_null(json_object_get(s, "routerError"));
	json_decref(s);
}

/* A canary removed by a reload retires its router: no split reaches it
 * any more, and it is closed once idle. */
static void test_a_removed_canary_retires_its_router(void **state)
{
	fixture *f = *state;
	answer(1, 0, NULL);
	fake *old = the_fake;
	static const char *const other =
		"apiVersion: canaryd/v1\n"
		"kind: Canary\n"
		"metadata: {name: shop}\n"
		"spec:\n"
		"  router: haproxy\n"
		"  haproxy: {runtimeAPI: unix:/tmp/canaryd-test.sock, backend: be}\n"
		"  stable: {revision: v1, endpoints: [127.0.0.1:9003]}\n"
		"  analysis: {interval: 1m, threshold: 2, maxWeight: 50, stepWeight: 10}\n";
	cfg *conf = NULL;
	cfg_errors errs = { 0 };
	assert_int_equal(cfg_load_string("shop.yaml", other, strlen(other), &conf, &errs), 0);
	char err[512];
	assert_int_equal(ctl_reload(f->c, conf, err, sizeof err), 0);
	assert_true(old->retired);
	assert_false(ctl_has(f->c, "web"));
	assert_int_equal(opens, 2);                      /* shop's */
	assert_ptr_not_equal(the_fake, old);
	assert_int_equal(old->n_applies, 1);             /* nothing since it retired */
	/* idle: closed by the next tick */
	for (int i = 0; i < 250 && closes == 0; i++) {
		usleep(20000);
		uv_run(&f->loop, UV_RUN_NOWAIT);
	}
	assert_int_equal(closes, 1);
	assert_non_null(the_fake);                       /* shop's is open */
}

/* A Flagger canary routed by Istio: canaryd does not see its requests. */
static const char *const mesh =
	"apiVersion: flagger.app/v1beta1\n"
	"kind: Canary\n"
	"metadata: {name: podinfo, namespace: test}\n"
	"spec:\n"
	"  provider: istio\n"
	"  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo}\n"
	"  analysis:\n"
	"    interval: 1m\n"
	"    stepWeight: 10\n"
	"    metrics:\n"
	"    - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}\n";

/* A mesh canary's built-in metrics are read from Prometheus: without one
 * (--metrics-server, spec.metricsServer) it is refused when the
 * configuration is applied, at start and on reload, in one line, and the
 * running configuration stays. */
static void test_a_mesh_canary_needs_a_prometheus(void **state)
{
	fixture *f = *state;
	const char *want = "canary 'podinfo': metric 'request-success-rate' is read from "
	                   "Prometheus with Flagger's istio query: start canaryd with "
	                   "--metrics-server URL (or set spec.metricsServer)";
	char err[512];
	cfg *conf = NULL;
	cfg_errors errs = { 0 };
	provider_set_metrics_server(NULL);
	assert_int_equal(cfg_load_string("m.yaml", mesh, strlen(mesh), &conf, &errs), 0);
	assert_int_equal(ctl_reload(f->c, conf, err, sizeof err), -1);
	assert_string_equal(err, want);
	assert_true(ctl_has(f->c, "web"));
	assert_false(ctl_has(f->c, "podinfo"));

	uv_loop_t loop;
	uv_loop_init(&loop);
	ctl *c = NULL;
	assert_int_equal(cfg_load_string("m.yaml", mesh, strlen(mesh), &conf, &errs), 0);
	assert_int_equal(ctl_new(&loop, f->db, conf, &c, err, sizeof err), -1);
	assert_string_equal(err, want);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);

	provider_set_metrics_server("http://127.0.0.1:9090");
	assert_int_equal(cfg_load_string("m.yaml", mesh, strlen(mesh), &conf, &errs), 0);
	int rc = ctl_reload(f->c, conf, err, sizeof err);
	if (rc < 0)
		print_message("%s\n", err);
	assert_int_equal(rc, 0);
	assert_true(ctl_has(f->c, "podinfo"));
	provider_set_metrics_server(NULL);
}

/* Whether the exposition <m> has the line <line> (with its newline). */
static void has_line(const buf *m, const char *line)
{
	char want[512];
	snprintf(want, sizeof want, "\n%s\n", line);
	if (!strstr(m->p, want))
		fail_msg("no line '%s' in:\n%s", line, m->p);
}

/* /metrics: Flagger's status code through a rollout and its abort, a
 * revision with a quote and a backslash escaped as the exposition format
 * wants, the threshold, and a refused reload. */
static void test_metrics_follow_the_rollout(void **state)
{
	fixture *f = *state;
	answer(1, 0, NULL);
	buf m = BUF_INIT;
	ctl_metrics(f->c, &m);
	has_line(&m, "canaryd_canary_status{canary=\"web\"} 1");
	has_line(&m, "canaryd_canary_duration_seconds{canary=\"web\"} 0");
	has_line(&m, "canaryd_canary_failed_checks_threshold{canary=\"web\"} 2");
	has_line(&m, "canaryd_canary_revision_info{canary=\"web\",target=\"stable\",revision=\"v1\"} 1");
	has_line(&m, "canaryd_config_last_reload_success 1");

	command(f, "rollout", "{\"revision\": \"v\\\"2\\\\x\", \"endpoints\": [\"127.0.0.1:9002\"]}");
	buf_reset(&m);
	ctl_metrics(f->c, &m);
	has_line(&m, "canaryd_canary_status{canary=\"web\"} 0");
	has_line(&m, "canaryd_canary_revision_info{canary=\"web\",target=\"canary\","
	             "revision=\"v\\\"2\\\\x\"} 1");

	command(f, "abort", "{\"reason\": \"bad\"}");
	ctl_note_reload(f->c, 0);
	buf_reset(&m);
	ctl_metrics(f->c, &m);
	has_line(&m, "canaryd_canary_status{canary=\"web\"} 2");
	has_line(&m, "canaryd_canary_phase{canary=\"web\",phase=\"Failed\"} 1");
	has_line(&m, "canaryd_config_last_reload_success 0");
	has_line(&m, "canaryd_promotions_total{canary=\"web\"} 0");
	buf_release(&m);
}

/* ---- the dashboard's data: cost, runbook links, revisions, series ---- */

static const char *const COST_CONFIG =
	"apiVersion: canaryd/v1\n"
	"kind: Canary\n"
	"metadata: {name: web}\n"
	"spec:\n"
	"  router: haproxy\n"
	"  haproxy: {runtimeAPI: unix:/tmp/canaryd-test.sock, backend: be}\n"
	"  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n"
	"  analysis: {interval: 1m, threshold: 2, maxWeight: 50, stepWeight: 10}\n"
	"  cost: {currency: GBP, perMillionRequests: 0.40, canaryHourly: 0.12, "
	"failedRequest: 0.002}\n"
	"  runbook: https://wiki.example/canaryd\n";

static int setup_cost(void **state)
{
	config_text = COST_CONFIG;
	int rc = setup(state);
	config_text = CONFIG;
	return rc;
}

/* Records <n> requests answered <status> for <target> (as the router does). */
static void record(int target, int n, int status)
{
	for (int i = 0; i < n; i++)
		stats_record(the_fake->st, target, status, 1000, 1);
}

static json_t *cost_of(fixture *f)
{
	json_t *s = status(f);
	json_t *c = json_incref(json_object_get(s, "cost"));
	json_decref(s);
	assert_non_null(c);
	return c;
}

static double num(const json_t *o, const char *k)
{
	const json_t *v = json_object_get(o, k);
	if (!json_is_number(v))
		fail_msg("'%s' is not a number", k);
	return json_number_value(v);
}

/* The cost counts only the rollout's requests (those before it are not
 * its), survives a restart (saved with the state), and after an abort
 * says what the rollback saved: 1,100 requests at the canary's 50% would
 * have failed 550, users got 52. */
static void test_cost_of_a_rollout(void **state)
{
	fixture *f = *state;
	answer(1, 0, NULL);
	record(TARGET_STABLE, 500, 200);   /* before the rollout */
	json_t *c = cost_of(f);
	assert_true(json_is_null(json_object_get(c, "since")));
	assert_int_equal(num(c, "canaryRequests"), 0);
	json_decref(c);

	command(f, "rollout", "{\"revision\": \"v2\", \"endpoints\": [\"127.0.0.1:9002\"]}");
	record(TARGET_STABLE, 900, 200);
	record(TARGET_STABLE, 2, 503);
	record(TARGET_CANARY, 50, 200);
	record(TARGET_CANARY, 30, 500);
	c = cost_of(f);
	assert_string_equal(json_string_value(json_object_get(c, "currency")), "GBP");
	assert_true(json_is_string(json_object_get(c, "since")));
	assert_int_equal(num(c, "canaryRequests"), 80);
	assert_int_equal(num(c, "canaryFailedRequests"), 30);
	assert_int_equal(num(c, "requests"), 982);
	assert_float_equal(num(c, "failedRequestsCost"), 0.06, 1e-9);
	assert_float_equal(num(c, "runningCost"),
	                   0.12 * num(c, "canaryHours") + 0.40 * 80 / 1e6, 1e-9);
	assert_true(json_is_null(json_object_get(c, "savedByRollback")));
	json_decref(c);

	/* a restart: the counts come back from the database, the new
	 * process's stats count from zero */
	ctl_close(f->c);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	cfg *conf = NULL;
	cfg_errors errs = { 0 };
	char err[512];
	assert_int_equal(cfg_load_string("web.yaml", COST_CONFIG, strlen(COST_CONFIG), &conf,
	                                 &errs), 0);
	assert_int_equal(ctl_new(&f->loop, f->db, conf, &f->c, err, sizeof err), 0);
	answer(last_gen(), 0, NULL);
	c = cost_of(f);
	assert_int_equal(num(c, "canaryRequests"), 80);
	assert_int_equal(num(c, "canaryFailedRequests"), 30);
	json_decref(c);
	record(TARGET_STABLE, 18, 200);
	record(TARGET_CANARY, 20, 500);
	command(f, "abort", "{\"reason\": \"errors\"}");
	record(TARGET_CANARY, 7, 500);    /* after the end: not the rollout's */
	c = cost_of(f);
	assert_int_equal(num(c, "canaryRequests"), 100);
	assert_int_equal(num(c, "canaryFailedRequests"), 50);
	assert_int_equal(num(c, "requests"), 1020);
	assert_int_equal(num(c, "failedRequests"), 52);
	assert_float_equal(num(c, "fullRolloutFailedRequests"), 510, 1e-9);
	assert_float_equal(num(c, "savedByRollback"), 0.002 * (510 - 52), 1e-9);
	double h = num(c, "canaryHours");
	json_decref(c);
	c = cost_of(f);   /* ended: the hours stop */
	assert_float_equal(num(c, "canaryHours"), h, 0);
	json_decref(c);
}

static int n_sunk;
static json_t *sunk[16];

static void sink(void *arg, const char *canary, const char *type, const json_t *data)
{
	if (strcmp(type, "audit") == 0 && n_sunk < 16)
		sunk[n_sunk++] = json_deep_copy(data);
}

static const char *runbook_of(const json_t *ev)
{
	return json_string_value(json_object_get(ev, "runbook"));
}

/* Rollback-like events link the runbook's section: spec.runbook first,
 * else --runbook-url, else nothing; in the live event and in the events
 * API's (ctl_event_links); other events link nothing. */
static void test_runbook_links(void **state)
{
	fixture *f = *state;
	answer(1, 0, NULL);
	n_sunk = 0;
	ctl_set_event_sink(f->c, sink, NULL);
	command(f, "rollout", "{\"revision\": \"v2\", \"endpoints\": [\"127.0.0.1:9002\"]}");
	command(f, "abort", "{\"reason\": \"bad\"}");
	ctl_set_event_sink(f->c, NULL, NULL);
	int aborts = 0;
	for (int i = 0; i < n_sunk; i++) {
		const char *type = json_string_value(json_object_get(sunk[i], "type"));
		if (!strcmp(type, "abort")) {
			aborts++;
			assert_non_null(runbook_of(sunk[i]));
			assert_string_equal(runbook_of(sunk[i]),
			                    "https://wiki.example/canaryd#canary-rolled-back");
		} else {
			assert_null(runbook_of(sunk[i]));
		}
		json_decref(sunk[i]);
	}
	assert_int_equal(aborts, 1);

	/* the daemon's default does not override the canary's own */
	ctl_set_runbook_url(f->c, "https://other.example/rb");
	json_t *evs = json_pack("[{s:s}, {s:s}, {s:s}]", "type", "undo", "type", "check",
	                        "type", "failure-paused");
	ctl_event_links(f->c, "web", evs);
	assert_string_equal(runbook_of(json_array_get(evs, 0)),
	                    "https://wiki.example/canaryd#undoing-a-promotion");
	assert_null(runbook_of(json_array_get(evs, 1)));
	assert_string_equal(runbook_of(json_array_get(evs, 2)),
	                    "https://wiki.example/canaryd#canary-paused-by-failed-checks");
	json_decref(evs);
}

/* Without spec.runbook, --runbook-url; without either, no link. */
static void test_runbook_default(void **state)
{
	fixture *f = *state;
	json_t *evs = json_pack("[{s:s}]", "type", "rollback");
	ctl_event_links(f->c, "web", evs);
	assert_null(runbook_of(json_array_get(evs, 0)));
	ctl_set_runbook_url(f->c, "https://rb.example/page#ours");
	ctl_event_links(f->c, "web", evs);
	/* a URL with its own fragment is kept as it is */
	assert_string_equal(runbook_of(json_array_get(evs, 0)), "https://rb.example/page#ours");
	json_decref(evs);
	evs = json_pack("[{s:s}]", "type", "rollback");
	ctl_set_runbook_url(f->c, "https://rb.example/page");
	ctl_event_links(f->c, "web", evs);
	assert_string_equal(runbook_of(json_array_get(evs, 0)),
	                    "https://rb.example/page#canary-rolled-back");
	json_decref(evs);
	ctl_set_runbook_url(f->c, NULL);
}

/* canaryd_requests_total carries the revision each target serves, and a
 * new revision's series counts from zero: the old canary's requests are
 * not the new one's. */
static void test_requests_by_revision(void **state)
{
	fixture *f = *state;
	answer(1, 0, NULL);
	record(TARGET_STABLE, 3, 200);
	command(f, "rollout", "{\"revision\": \"v2\", \"endpoints\": [\"127.0.0.1:9002\"]}");
	record(TARGET_CANARY, 2, 503);
	buf m = BUF_INIT;
	ctl_metrics(f->c, &m);
	has_line(&m, "canaryd_requests_total{canary=\"web\",target=\"stable\",revision=\"v1\","
	             "code=\"200\"} 3");
	has_line(&m, "canaryd_requests_total{canary=\"web\",target=\"canary\",revision=\"v2\","
	             "code=\"503\"} 2");
	command(f, "abort", "{\"reason\": \"bad\"}");
	command(f, "rollout", "{\"revision\": \"v3\", \"endpoints\": [\"127.0.0.1:9003\"]}");
	record(TARGET_CANARY, 1, 200);
	buf_reset(&m);
	ctl_metrics(f->c, &m);
	assert_null(strstr(m.p, "revision=\"v2\""));
	assert_null(strstr(m.p, "code=\"503\""));
	has_line(&m, "canaryd_requests_total{canary=\"web\",target=\"canary\",revision=\"v3\","
	             "code=\"200\"} 1");
	has_line(&m, "canaryd_requests_total{canary=\"web\",target=\"stable\",revision=\"v1\","
	             "code=\"200\"} 3");
	buf_release(&m);
}

/* The series: known canaries only; one routed by a Kubernetes router
 * says it is not available and why. */
static void test_series_availability(void **state)
{
	fixture *f = *state;
	assert_null(ctl_series(f->c, "nope", 0));
	json_t *j = ctl_series(f->c, "web", 0);
	assert_true(json_is_true(json_object_get(j, "available")));
	assert_string_equal(json_string_value(json_object_get(j, "step")), "5s");
	assert_true(json_is_array(json_object_get(j, "samples")));
	json_decref(j);

	char err[512];
	cfg *conf = NULL;
	cfg_errors errs = { 0 };
	provider_set_metrics_server("http://127.0.0.1:9090");
	assert_int_equal(cfg_load_string("m.yaml", mesh, strlen(mesh), &conf, &errs), 0);
	assert_int_equal(ctl_reload(f->c, conf, err, sizeof err), 0);
	provider_set_metrics_server(NULL);
	j = ctl_series(f->c, "podinfo", 0);
	assert_non_null(j);
	assert_true(json_is_false(json_object_get(j, "available")));
	assert_non_null(strstr(json_string_value(json_object_get(j, "reason")), "'istio'"));
	assert_int_equal(json_array_size(json_object_get(j, "samples")), 0);
	json_decref(j);
}

int main(void)
{
	log_setup(NULL, "error");
	router_register(&fake_ops);
	router_register(&fake_mesh_ops);
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_status_shows_what_is_applied, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_late_apply_loses, setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_failed_apply_is_said_and_retried, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_a_removed_canary_retires_its_router, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_a_mesh_canary_needs_a_prometheus, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_metrics_follow_the_rollout, setup, teardown),
		cmocka_unit_test_setup_teardown(test_cost_of_a_rollout, setup_cost, teardown),
		cmocka_unit_test_setup_teardown(test_runbook_links, setup_cost, teardown),
		cmocka_unit_test_setup_teardown(test_runbook_default, setup, teardown),
		cmocka_unit_test_setup_teardown(test_requests_by_revision, setup, teardown),
		cmocka_unit_test_setup_teardown(test_series_availability, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
