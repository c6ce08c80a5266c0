/* test_health.c - active health checks (health.h): the threshold state
 * machine, the status line reader, the proxy's endpoint choice with
 * unhealthy endpoints (skipped; all of them: panic), and a checker on a
 * real loop against a listening port and a closed one. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "dataplane.h"
#include "health.h"

/* ---- the state machine ---- */

static void test_sm_goes_out_on_the_nth_consecutive_failure(void **state)
{
	health_sm s = HEALTH_SM_INIT;
	assert_true(s.healthy);
	assert_false(health_sm_result(&s, false, 3, 2));
	assert_false(health_sm_result(&s, false, 3, 2));
	assert_true(s.healthy);
	assert_true(health_sm_result(&s, false, 3, 2));   /* the third: out */
	assert_false(s.healthy);
	assert_int_equal(s.fails, 3);
	assert_false(health_sm_result(&s, false, 3, 2));  /* reported once */
	assert_false(s.healthy);
}

static void test_sm_a_pass_resets_the_failures(void **state)
{
	health_sm s = HEALTH_SM_INIT;
	for (int round = 0; round < 10; round++) {
		assert_false(health_sm_result(&s, false, 3, 2));
		assert_false(health_sm_result(&s, false, 3, 2));
		assert_false(health_sm_result(&s, true, 3, 2));
	}
	assert_true(s.healthy);
	assert_int_equal(s.fails, 0);
}

static void test_sm_comes_back_after_consecutive_passes(void **state)
{
	health_sm s = HEALTH_SM_INIT;
	assert_true(health_sm_result(&s, false, 1, 3));   /* threshold 1: at once */
	assert_false(s.healthy);
	assert_false(health_sm_result(&s, true, 1, 3));
	assert_false(health_sm_result(&s, true, 1, 3));
	assert_false(health_sm_result(&s, false, 1, 3));  /* interrupted: from 0 */
	assert_false(health_sm_result(&s, true, 1, 3));
	assert_false(health_sm_result(&s, true, 1, 3));
	assert_false(s.healthy);
	assert_true(health_sm_result(&s, true, 1, 3));
	assert_true(s.healthy);
	assert_int_equal(s.passes, 3);
	assert_false(health_sm_result(&s, true, 1, 3));
}

static void test_sm_counts_saturate(void **state)
{
	health_sm s = { .healthy = false, .fails = INT32_MAX, .passes = 0 };
	assert_false(health_sm_result(&s, false, 3, 2));
	assert_int_equal(s.fails, INT32_MAX);
	s = (health_sm){ .healthy = true, .fails = 0, .passes = INT32_MAX };
	assert_false(health_sm_result(&s, true, 3, 2));
	assert_int_equal(s.passes, INT32_MAX);
}

/* ---- the status line ---- */

static int parse(const char *s, int *status)
{
	*status = -1;
	return health_parse_status(s, strlen(s), status);
}

static void test_status_line(void **state)
{
	int st;
	assert_int_equal(parse("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", &st), 1);
	assert_int_equal(st, 200);
	assert_int_equal(parse("HTTP/1.0 503 Service Unavailable\r\n", &st), 1);
	assert_int_equal(st, 503);
	assert_int_equal(parse("HTTP/1.1 302\r\n", &st), 1);      /* no reason phrase */
	assert_int_equal(st, 302);
	assert_int_equal(parse("HTTP/1.1 204 \n", &st), 1);       /* a bare LF */
	assert_int_equal(st, 204);
	/* not complete yet */
	assert_int_equal(parse("", &st), 0);
	assert_int_equal(parse("HTT", &st), 0);
	assert_int_equal(parse("HTTP/1.1 200 O", &st), 0);
	/* not HTTP/1.x */
	assert_int_equal(parse("SSH-2.0-OpenSSH\r\n", &st), -1);
	assert_int_equal(parse("HTTP/2 200\r\n", &st), -1);
	assert_int_equal(parse("HTTP/1.1 20x OK\r\n", &st), -1);
	assert_int_equal(parse("HTTP/1.1 2000 OK\r\n", &st), -1);
	assert_int_equal(parse("HTTP/1.1 099 OK\r\n", &st), -1);
	assert_int_equal(parse("HTTP/1.1  200 OK\r\n", &st), -1);
	assert_int_equal(parse("HTTP/1.1 20\r\n", &st), -1);
	assert_int_equal(st, -1);
	/* a line longer than the buffer never completes */
	char big[600];
	memset(big, 'x', sizeof big);
	memcpy(big, "HTTP/1.1 200 ", 13);
	assert_int_equal(health_parse_status(big, sizeof big, &st), -1);
}

/* ---- the endpoint choice ---- */

static route *three(stats **st)
{
	*st = stats_new();
	route *r = route_new("t", *st);
	char *eps[] = { "127.0.0.1:1", "127.0.0.1:2", "127.0.0.1:3" };
	char err[128];
	assert_int_equal(route_set_endpoints(r, TARGET_STABLE, eps, 3, err, sizeof err), 0);
	return r;
}

static void test_pick_skips_unhealthy_endpoints(void **state)
{
	stats *st;
	route *r = three(&st);
	endpoint *sick = r->set[TARGET_STABLE].v[1];
	sick->ol->unhealthy = 1;
	int n[3] = { 0 };
	for (int i = 0; i < 30; i++) {
		endpoint *ep = ep_pick(r, TARGET_STABLE, 0, NULL);
		for (int k = 0; k < 3; k++)
			n[k] += ep == r->set[TARGET_STABLE].v[k];
	}
	assert_int_equal(n[1], 0);
	assert_int_equal(n[0], 15);
	assert_int_equal(n[2], 15);
	/* one healthy endpoint left: it gets every request */
	r->set[TARGET_STABLE].v[2]->ol->unhealthy = 1;
	for (int i = 0; i < 6; i++)
		assert_ptr_equal(ep_pick(r, TARGET_STABLE, 0, NULL), r->set[TARGET_STABLE].v[0]);
	/* healthy again: picked again */
	sick->ol->unhealthy = 0;
	r->set[TARGET_STABLE].v[2]->ol->unhealthy = 0;
	int seen1 = 0;
	for (int i = 0; i < 6; i++)
		seen1 += ep_pick(r, TARGET_STABLE, 0, NULL) == sick;
	assert_int_equal(seen1, 2);
	route_release(r);
	stats_free(st);
}

static void test_pick_routes_anyway_when_all_are_unhealthy(void **state)
{
	stats *st;
	route *r = three(&st);
	for (int k = 0; k < 3; k++)
		r->set[TARGET_STABLE].v[k]->ol->unhealthy = 1;
	int n[3] = { 0 };
	for (int i = 0; i < 30; i++) {
		endpoint *ep = ep_pick(r, TARGET_STABLE, 0, NULL);
		assert_non_null(ep);
		for (int k = 0; k < 3; k++)
			n[k] += ep == r->set[TARGET_STABLE].v[k];
	}
	assert_int_equal(n[0], 10);
	assert_int_equal(n[1], 10);
	assert_int_equal(n[2], 10);
	/* and a retry goes to another one of them */
	endpoint *first = r->set[TARGET_STABLE].v[0];
	assert_ptr_not_equal(ep_pick(r, TARGET_STABLE, 0, first), first);
	route_release(r);
	stats_free(st);
}

/* ---- a checker on a real loop ---- */

typedef struct seen {
	int reports;
	int target;
	bool healthy;
	char endpoint[ROUTE_NAME_LEN];
	char reason[256];
	uv_loop_t *loop;
} seen;

static void on_change(void *arg, int target, const char *ep_name, bool healthy,
                      const char *reason)
{
	seen *s = arg;
	s->reports++;
	s->target = target;
	s->healthy = healthy;
	snprintf(s->endpoint, sizeof s->endpoint, "%s", ep_name);
	snprintf(s->reason, sizeof s->reason, "%s", reason);
	uv_stop(s->loop);
}

static void guard_cb(uv_timer_t *t) { uv_stop(t->loop); }

/* A loopback port: listening (a TCP connect check passes; the kernel
 * accepts without an accept()), or closed again (refused). */
static int port_of(bool listening, int *fd_out)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(0x7f000001) };
	assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
	socklen_t l = sizeof a;
	getsockname(fd, (struct sockaddr *)&a, &l);
	if (listening)
		assert_int_equal(listen(fd, 16), 0);
	else
		close(fd);
	*fd_out = listening ? fd : -1;
	return ntohs(a.sin_port);
}

static void test_checker_takes_a_refusing_endpoint_out(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	int lfd, dfd;
	int live = port_of(true, &lfd), dead = port_of(false, &dfd);
	char a[32], b[32];
	snprintf(a, sizeof a, "127.0.0.1:%d", live);
	snprintf(b, sizeof b, "127.0.0.1:%d", dead);
	char *eps[] = { a, b };
	stats *st = stats_new();
	route *r = route_new("t", st);
	char err[128];
	assert_int_equal(route_set_endpoints(r, TARGET_CANARY, eps, 2, err, sizeof err), 0);
	cfg_health hc = { .enabled = 1, .interval_ms = 100, .timeout_ms = 100,
	                  .unhealthy_threshold = 2, .healthy_threshold = 1 };
	seen s = { .loop = &loop };
	health *h = health_new(&loop, r, &hc, on_change, &s);
	assert_true(health_ready(h, TARGET_CANARY));   /* new endpoints start healthy */
	uv_timer_t guard;
	uv_timer_init(&loop, &guard);
	uv_timer_start(&guard, guard_cb, 5000, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(s.reports, 1);
	assert_string_equal(s.endpoint, b);
	assert_int_equal(s.target, TARGET_CANARY);
	assert_false(s.healthy);
	assert_string_equal(s.reason, "2 checks failed: connection refused");
	assert_int_equal(r->set[TARGET_CANARY].v[1]->ol->unhealthy, 1);
	assert_int_equal(r->set[TARGET_CANARY].v[0]->ol->unhealthy, 0);
	assert_true(health_ready(h, TARGET_CANARY));
	assert_false(health_ready(h, TARGET_STABLE));   /* none there */
	for (int i = 0; i < 4; i++)
		assert_ptr_equal(ep_pick(r, TARGET_CANARY, 0, NULL), r->set[TARGET_CANARY].v[0]);
	json_t *j = health_json(h);
	assert_int_equal(json_array_size(j), 2);
	json_t *e1 = json_array_get(j, 1);
	assert_string_equal(json_string_value(json_object_get(e1, "endpoint")), b);
	assert_true(json_is_false(json_object_get(e1, "healthy")));
	assert_string_equal(json_string_value(json_object_get(e1, "lastError")),
	                    "connection refused");
	json_decref(j);
	buf m = BUF_INIT;
	buf_puts(&m, "");
	health_prometheus(h, "web", &m);
	char want[160];
	snprintf(want, sizeof want, "canaryd_endpoint_healthy{canary=\"web\",target=\"canary\","
	         "endpoint=\"%s\"} 0\n", b);
	assert_non_null(strstr(m.p, want));
	buf_release(&m);

	/* the dead endpoint leaves the set: forgotten; the live one stays */
	assert_int_equal(route_set_endpoints(r, TARGET_CANARY, eps, 1, err, sizeof err), 0);
	health_sync(h);
	assert_true(health_ready(h, TARGET_CANARY));
	/* it comes back: a fresh endpoint, healthy until checked again */
	assert_int_equal(route_set_endpoints(r, TARGET_CANARY, eps, 2, err, sizeof err), 0);
	health_sync(h);
	assert_int_equal(r->set[TARGET_CANARY].v[1]->ol->unhealthy, 0);
	s.reports = 0;
	uv_timer_start(&guard, guard_cb, 5000, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(s.reports, 1);
	assert_false(s.healthy);
	assert_int_equal(r->set[TARGET_CANARY].v[1]->ol->unhealthy, 1);

	/* no checks any more: every endpoint gets requests again */
	health_free(h);
	assert_int_equal(r->set[TARGET_CANARY].v[1]->ol->unhealthy, 0);
	uv_close((uv_handle_t *)&guard, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
	route_release(r);
	stats_free(st);
	close(lfd);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sm_goes_out_on_the_nth_consecutive_failure),
		cmocka_unit_test(test_sm_a_pass_resets_the_failures),
		cmocka_unit_test(test_sm_comes_back_after_consecutive_passes),
		cmocka_unit_test(test_sm_counts_saturate),
		cmocka_unit_test(test_status_line),
		cmocka_unit_test(test_pick_skips_unhealthy_endpoints),
		cmocka_unit_test(test_pick_routes_anyway_when_all_are_unhealthy),
		cmocka_unit_test(test_checker_takes_a_refusing_endpoint_out),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
