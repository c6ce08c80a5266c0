/* test_router.c - the router table and the builtin router through its ops:
 * a split applies at once (done before apply returns, with the split's
 * generation), requests follow it, readiness is reported only while
 * watched, a reload to an address in use fails and leaves traffic where
 * it is, and a retired router calls nothing back. End to end, the proxy
 * itself is tested in tests/e2e. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "log.h"
#include "resolve.h"
#include "router.h"
#include "router_k8s.h"

static void test_table(void **state)
{
	assert_ptr_equal(router_find("builtin"), &router_builtin);
	assert_ptr_equal(router_find("haproxy"), &router_haproxy);
	/* the Kubernetes routers, by canaryd's names and by Flagger's providers */
	assert_ptr_equal(router_find("istio"), &router_istio);
	assert_ptr_equal(router_find("gatewayapi"), &router_gatewayapi);
	assert_ptr_equal(router_find("gatewayapi:v1"), &router_gatewayapi);
	assert_ptr_equal(router_find("gatewayapi:v1beta1"), &router_gatewayapi);
	assert_ptr_equal(router_find("smi"), &router_smi);
	assert_ptr_equal(router_find("linkerd"), &router_smi);
	assert_ptr_equal(router_find("osm"), &router_smi);
	assert_ptr_equal(router_find("smi:v1alpha3:linkerd"), &router_smi);
	/* Flagger's own objects canaryd does not render, and kubernetes
	 * (no route object): refused at start */
	assert_null(router_find("appmesh"));
	assert_null(router_find("appmesh:v1beta2"));
	assert_null(router_find("contour"));
	assert_null(router_find("kubernetes"));
	assert_null(router_find(""));
	assert_null(router_find(NULL));
	char names[64];
	router_names(names, sizeof names);
	assert_string_equal(names, "'builtin', 'haproxy', 'istio', 'gatewayapi', 'smi'");
	char err[256] = "";
	cfg_canary cc;
	memset(&cc, 0, sizeof cc);
	cc.name = "web";
	assert_int_equal(router_builtin.check(&cc, err, sizeof err), -1);
	assert_string_equal(err, "canary 'web': router 'builtin' needs spec.listen");
	cc.listen = "127.0.0.1:8080";
	assert_int_equal(router_builtin.check(&cc, err, sizeof err), 0);
}

/* ---- the builtin router on a loop of the test's ---- */

typedef struct fixture {
	uv_loop_t loop;
	uv_tcp_t up;               /* an upstream that accepts (the canary) */
	int up_port;
	cfg *conf;
	stats *st;
	router *r;
	uint64_t done_gen;
	int dones;
	int readies, ready;
} fixture;

static void on_endpoint(void *arg, int target, const char *endpoint, int ejected,
                        const char *reason)
{
}

static void on_ready(void *arg, bool ready)
{
	fixture *f = arg;
	f->readies++;
	f->ready = ready;
}

static void on_done(void *arg, uint64_t gen, int status, const char *err)
{
	fixture *f = arg;
	assert_int_equal(status, 0);
	f->done_gen = gen;
	f->dones++;
}

static void on_up_conn(uv_stream_t *s, int status)
{
	/* accepted by the kernel: enough for a readiness probe */
}

/* A free loopback port (bound and released). */
static int free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t len = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &len);
	close(fd);
	return ntohs(a.sin_port);
}

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	uv_loop_init(&f->loop);
	uv_tcp_init(&f->loop, &f->up);
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_bind(&f->up, (struct sockaddr *)&a, 0);
	uv_listen((uv_stream_t *)&f->up, 16, on_up_conn);
	int len = sizeof a;
	uv_tcp_getsockname(&f->up, (struct sockaddr *)&a, &len);
	f->up_port = ntohs(a.sin_port);
	char text[512];
	snprintf(text, sizeof text,
	         "apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: web}\nspec:\n"
	         "  listen: 127.0.0.1:%d\n"
	         "  stable: {revision: v1, endpoints: [127.0.0.1:%d]}\n"
	         "  analysis: {interval: 1m, threshold: 2, maxWeight: 50, stepWeight: 10}\n",
	         free_port(), f->up_port);
	cfg_errors errs = { 0 };
	if (cfg_load_string("web.yaml", text, strlen(text), &f->conf, &errs) < 0)
		return -1;
	f->st = stats_new();
	router_events ev = { .endpoint = on_endpoint, .ready = on_ready, .arg = f };
	char err[256];
	if (router_builtin.open(&f->loop, &f->conf->canaries[0], f->st, &ev, &f->r, err,
	                        sizeof err) < 0) {
		print_error("open: %s\n", err);
		return -1;
	}
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	if (f->r)
		f->r->ops->close(f->r);
	uv_close((uv_handle_t *)&f->up, NULL);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&f->loop), 0);
	stats_free(f->st);
	cfg_free(f->conf);
	free(f);
	return 0;
}

/* A split of <weight> with the canary at <canary> (a numeric endpoint). */
static void apply(fixture *f, uint64_t gen, int weight, const char *canary, bool watch)
{
	route_member m;
	memset(&m, 0, sizeof m);
	snprintf(m.name, sizeof m.name, "%s", canary);
	assert_int_equal(rsv_numeric(canary, &m.addr), 0);
	router_split s = {
		.generation = gen, .weight = weight, .stable_rev = "v1", .canary_rev = "v2",
		.members = { NULL, &m }, .n_members = { 0, 1 }, .watch_ready = watch,
	};
	f->r->ops->apply(f->r, &s, on_done, f);
}

static void stop_cb(uv_timer_t *t)
{
	uv_stop(t->loop);
}

/* Runs the loop for <ms>. */
static void run_for(fixture *f, uint64_t ms)
{
	uv_timer_t t;
	uv_timer_init(&f->loop, &t);
	uv_timer_start(&t, stop_cb, ms, 0);
	uv_run(&f->loop, UV_RUN_DEFAULT);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&f->loop, UV_RUN_NOWAIT);
}

static void run_until(fixture *f, int *what, int want)
{
	for (int i = 0; i < 300 && *what < want; i++)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_true(*what >= want);
}

static void test_apply_is_done_at_once(void **state)
{
	fixture *f = *state;
	char up[32];
	snprintf(up, sizeof up, "127.0.0.1:%d", f->up_port);
	apply(f, 7, 30, up, false);
	assert_int_equal(f->dones, 1);                   /* before apply returned */
	assert_int_equal(f->done_gen, 7);
	json_t *o = json_object();
	f->r->ops->status(f->r, o);
	assert_string_equal(json_string_value(json_object_get(o, "listen")),
	                    f->conf->canaries[0].listen);
	json_decref(o);
	assert_int_equal(f->r->ops->inflight(f->r), 0);
	assert_int_equal(f->r->ops->connections(f->r), 0);
}

/* While watched, readiness rounds say whether a canary address answers;
 * unwatched, nothing is said. */
static void test_readiness_only_while_watched(void **state)
{
	fixture *f = *state;
	char up[32], dead[32];
	snprintf(up, sizeof up, "127.0.0.1:%d", f->up_port);
	snprintf(dead, sizeof dead, "127.0.0.1:%d", free_port());
	apply(f, 1, 10, up, true);
	run_until(f, &f->readies, 1);
	assert_int_equal(f->ready, 1);
	apply(f, 2, 10, dead, true);
	int seen = f->readies;
	for (int i = 0; i < 300 && (f->readies == seen || f->ready); i++)
		uv_run(&f->loop, UV_RUN_ONCE);
	assert_int_equal(f->ready, 0);                   /* a round with no answer */
	apply(f, 3, 0, dead, false);
	seen = f->readies;
	run_for(f, 1500);                                /* a round would have run */
	assert_int_equal(f->readies, seen);
}

/* A reload to an address in use fails at prepare, and cancel leaves the
 * router as it was; a reload to a free one moves the listener. */
static void test_reload_prepare_finish_cancel(void **state)
{
	fixture *f = *state;
	cfg_canary cc = f->conf->canaries[0];
	char busy[32], other[32], err[256] = "";
	snprintf(busy, sizeof busy, "127.0.0.1:%d", f->up_port);
	cc.listen = busy;
	assert_true(f->r->ops->prepare(f->r, &cc, err, sizeof err) < 0);
	assert_non_null(strstr(err, "cannot listen on"));
	f->r->ops->cancel(f->r);
	snprintf(other, sizeof other, "127.0.0.1:%d", free_port());
	cc.listen = other;
	assert_int_equal(f->r->ops->prepare(f->r, &cc, err, sizeof err), 0);
	f->r->ops->finish(f->r, &cc);
	json_t *o = json_object();
	f->r->ops->status(f->r, o);
	assert_string_equal(json_string_value(json_object_get(o, "listen")), other);
	json_decref(o);
}

/* Retired: no readiness report, even with a round in flight. */
static void test_retired_calls_nothing_back(void **state)
{
	fixture *f = *state;
	char up[32];
	snprintf(up, sizeof up, "127.0.0.1:%d", f->up_port);
	apply(f, 1, 10, up, true);
	f->r->ops->retire(f->r);
	int seen = f->readies;
	run_for(f, 300);
	assert_int_equal(f->readies, seen);
}

int main(void)
{
	log_setup(NULL, "error");
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_table),
		cmocka_unit_test_setup_teardown(test_apply_is_done_at_once, setup, teardown),
		cmocka_unit_test_setup_teardown(test_readiness_only_while_watched, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reload_prepare_finish_cancel, setup, teardown),
		cmocka_unit_test_setup_teardown(test_retired_calls_nothing_back, setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
