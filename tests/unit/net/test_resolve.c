/* test_resolve.c - endpoints as numeric addresses or host names, answers
 * as sets (order and duplicates do not matter), the lookup queue and the
 * table's bookkeeping. What a changing /etc/hosts does to traffic is tested
 * end to end in a private mount namespace (tests/e2e/test_dns.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>

#include "resolve.h"

static rsv_kind parse(const char *ep, char *host, int *port, struct sockaddr_storage *ss)
{
	char err[400];
	return rsv_parse(ep, host, RSV_HOST_LEN, port, ss, err, sizeof err);
}

static void test_numeric_endpoints_are_never_names(void **state)
{
	char host[RSV_HOST_LEN], ip[RSV_ADDR_LEN];
	int port;
	struct sockaddr_storage ss;
	assert_int_equal(parse("127.0.0.1:9001", host, &port, &ss), RSV_NUMERIC);
	assert_int_equal(port, 9001);
	assert_int_equal(ss.ss_family, AF_INET);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 9001);
	assert_int_equal(parse("[::1]:80", host, &port, &ss), RSV_NUMERIC);
	assert_int_equal(ss.ss_family, AF_INET6);
	/* localhost is 127.0.0.1, without a lookup, as before host names */
	assert_int_equal(parse("localhost:8080", host, &port, &ss), RSV_NUMERIC);
	rsv_addr_text(&ss, ip, sizeof ip);
	assert_string_equal(ip, "127.0.0.1");
}

static void test_host_names_are_names(void **state)
{
	char host[RSV_HOST_LEN];
	int port;
	assert_int_equal(parse("app.internal:9001", host, &port, NULL), RSV_NAME);
	assert_string_equal(host, "app.internal");
	assert_int_equal(port, 9001);
	assert_int_equal(parse("web:80", host, &port, NULL), RSV_NAME);
	assert_int_equal(parse("my_service-2.svc.cluster.local.:80", host, &port, NULL), RSV_NAME);
	assert_int_equal(parse("123.example:80", host, &port, NULL), RSV_NAME);
}

static void test_invalid_endpoints_say_why(void **state)
{
	const char *bad[] = {
		"app.internal",        /* no port */
		"app.internal:0",
		"app.internal:70000",
		"10.0.0.256:80",       /* not an address, and not a name either */
		"1.2.3:80",
		"-app.internal:80",
		"app-.internal:80",
		"app..internal:80",
		"app internal:80",
		"app/internal:80",
		"[app.internal]:80",
		"[::1%eth0:80",
	};
	char long_label[80], long_name[300];
	memset(long_label, 'a', 64);
	strcpy(long_label + 64, ".x:80");
	memset(long_name, 0, sizeof long_name);
	for (int i = 0; i < 64; i++)
		memcpy(long_name + i * 4, "abc.", 4);
	strcpy(long_name + 256, "x:80");
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		char host[RSV_HOST_LEN], err[400] = "";
		int port;
		if (rsv_parse(bad[i], host, sizeof host, &port, NULL, err, sizeof err) != RSV_INVALID)
			fail_msg("'%s' was accepted", bad[i]);
		assert_non_null(strstr(err, bad[i]));
	}
	char host[RSV_HOST_LEN], err[400];
	int port;
	assert_int_equal(rsv_parse(long_label, host, sizeof host, &port, NULL, err, sizeof err),
	                 RSV_INVALID);
	assert_int_equal(rsv_parse(long_name, host, sizeof host, &port, NULL, err, sizeof err),
	                 RSV_INVALID);
}

static struct sockaddr_storage v4(const char *ip)
{
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	uv_ip4_addr(ip, 0, (struct sockaddr_in *)&ss);
	return ss;
}

/* DNS servers rotate the order of their answers: a new order, or a
 * repeated address, is not a change that should touch the route. */
/* The shorthands the proxy's listener, the admin API, the controller and
 * canaryd --check use instead of classifying an endpoint themselves. */
static void test_numeric_and_host_shorthands(void **state)
{
	struct sockaddr_storage ss;
	char ip[RSV_ADDR_LEN], host[RSV_HOST_LEN];
	assert_int_equal(rsv_numeric("127.0.0.1:8080", &ss), 0);
	assert_int_equal(ntohs(((struct sockaddr_in *)&ss)->sin_port), 8080);
	assert_int_equal(rsv_numeric("localhost:1", &ss), 0);
	rsv_addr_text(&ss, ip, sizeof ip);
	assert_string_equal(ip, "127.0.0.1");
	assert_int_equal(rsv_numeric("[::1]:9901", &ss), 0);
	assert_int_equal(ss.ss_family, AF_INET6);
	static const char *const not_numeric[] = {
		"app.internal:80", "::1:80", "[1.2.3.4]:80", "127.0.0.1", "127.0.0.1:0", "",
	};
	for (size_t i = 0; i < sizeof not_numeric / sizeof not_numeric[0]; i++)
		assert_int_equal(rsv_numeric(not_numeric[i], &ss), -1);

	assert_true(rsv_host_of("app.internal:9001", host, sizeof host));
	assert_string_equal(host, "app.internal");
	assert_false(rsv_host_of("127.0.0.1:9001", host, sizeof host));
	assert_false(rsv_host_of("localhost:9001", host, sizeof host));
	assert_false(rsv_host_of("app.internal", host, sizeof host));
	assert_false(rsv_host_of("bad name:80", host, sizeof host));
}

/* The same address is the same port too: the proxy hands a pooled
 * connection only to a member that compares equal. */
static void test_addresses_compare_with_their_port(void **state)
{
	struct sockaddr_storage a, b;
	assert_int_equal(rsv_numeric("127.0.0.1:80", &a), 0);
	assert_int_equal(rsv_numeric("127.0.0.1:80", &b), 0);
	assert_int_equal(rsv_addr_cmp(&a, &b), 0);
	assert_int_equal(rsv_numeric("127.0.0.1:81", &b), 0);
	assert_true(rsv_addr_cmp(&a, &b) < 0);
	assert_true(rsv_addr_cmp(&b, &a) > 0);
	assert_int_equal(rsv_numeric("127.0.0.2:80", &b), 0);
	assert_true(rsv_addr_cmp(&a, &b) < 0);
	assert_int_equal(rsv_numeric("[::1]:80", &b), 0);
	assert_true(rsv_addr_cmp(&a, &b) != 0);   /* another family */
	assert_int_equal(rsv_numeric("[::1]:80", &a), 0);
	assert_int_equal(rsv_addr_cmp(&a, &b), 0);
	((struct sockaddr_in6 *)&b)->sin6_scope_id = 2;
	assert_true(rsv_addr_cmp(&a, &b) < 0);    /* another interface */
}

static void test_answers_compare_as_sets(void **state)
{
	struct sockaddr_storage a1[] = { v4("10.0.0.2"), v4("10.0.0.1"), v4("10.0.0.2") };
	struct sockaddr_storage a2[] = { v4("10.0.0.1"), v4("10.0.0.2") };
	rsv_addrs x = { a1, 3 }, y = { a2, 2 };
	rsv_addrs_normalize(&x);
	rsv_addrs_normalize(&y);
	assert_int_equal(x.n, 2);
	assert_true(rsv_addrs_equal(&x, &y));
	char list[128] = "";
	rsv_addrs_list(&x, 8, list, sizeof list);
	assert_string_equal(list, "10.0.0.1, 10.0.0.2");
	a2[1] = v4("10.0.0.3");
	assert_false(rsv_addrs_equal(&x, &y));
}

static int answers, last_status;
static char last_first[RSV_ADDR_LEN];

static void on_done(void *arg, int status, const rsv_addrs *a)
{
	answers++;
	last_status = status;
	last_first[0] = '\0';
	if (status == 0) {
		assert_non_null(a);
		assert_true(a->n > 0);
		rsv_addr_text(&a->v[0], last_first, sizeof last_first);
	}
}

static void run_until(uv_loop_t *loop, int *count, int want)
{
	uint64_t end = uv_now(loop) + 10000;
	while (*count < want && uv_now(loop) < end)
		uv_run(loop, UV_RUN_ONCE);
}

/* An address given as a name is answered without a server: the lookup
 * path itself (queue, thread pool, answer) works. */
static void test_lookup_answers_on_the_loop(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	rsv *r = rsv_new(&loop, RSV_MAX_INFLIGHT);
	answers = 0;
	int st = 0;
	assert_non_null(rsv_lookup(r, "127.0.0.9", on_done, NULL, &st));
	assert_int_equal(answers, 0);   /* never from inside rsv_lookup */
	run_until(&loop, &answers, 1);
	assert_int_equal(answers, 1);
	assert_int_equal(last_status, 0);
	assert_string_equal(last_first, "127.0.0.9");
	rsv_free(r);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* More lookups than may run at once all get their answer; a cancelled
 * one, queued or running, gets none. */
static void test_queue_runs_everything_and_cancel_silences(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	rsv *r = rsv_new(&loop, RSV_MAX_INFLIGHT);
	answers = 0;
	int st = 0;
	enum { N = RSV_MAX_INFLIGHT * 3 };
	rsv_query *q[N];
	for (int i = 0; i < N; i++) {
		char ip[32];
		snprintf(ip, sizeof ip, "127.0.1.%d", i + 1);
		q[i] = rsv_lookup(r, ip, on_done, NULL, &st);
		assert_non_null(q[i]);
	}
	rsv_cancel(q[0]);       /* running */
	rsv_cancel(q[N - 1]);   /* queued */
	run_until(&loop, &answers, N - 2);
	uv_run(&loop, UV_RUN_DEFAULT);   /* the cancelled ones end too */
	assert_int_equal(answers, N - 2);
	rsv_free(r);
	assert_int_equal(uv_loop_close(&loop), 0);
}

/* Freeing the queue with lookups in flight calls none of them back and
 * leaks nothing once they end (LeakSanitizer checks the latter). */
static void test_free_abandons_lookups(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	rsv *r = rsv_new(&loop, RSV_MAX_INFLIGHT);
	answers = 0;
	int st = 0;
	for (int i = 0; i < RSV_MAX_INFLIGHT + 2; i++)
		assert_non_null(rsv_lookup(r, "127.0.0.1", on_done, NULL, &st));
	rsv_free(r);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(answers, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static int changes;
static void on_change(void *arg) { changes++; }

/* A table looks a wanted name up (here an address, so that no server is
 * needed), tells its owner once, keeps it while wanted and drops it when
 * swept; an answer put from outside counts as one, and the same answer
 * again is no change. */
static void test_table_resolves_wanted_names(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	rsv *r = rsv_new(&loop, RSV_MAX_INFLIGHT);
	rsv_table *t = rsv_table_new(r, "demo", 60000, on_change, NULL);
	changes = 0;
	rsv_name nm;
	rsv_table_unmark(t);
	rsv_table_want(t, "127.0.0.7");
	rsv_table_sweep(t);
	assert_int_equal(rsv_table_find(t, "127.0.0.7", &nm), 1);
	assert_false(nm.looked_up);
	assert_int_equal(nm.addrs->n, 0);
	assert_int_equal(changes, 0);   /* never from inside want */
	run_until(&loop, &changes, 1);
	assert_int_equal(changes, 1);
	assert_int_equal(rsv_table_find(t, "127.0.0.7", &nm), 1);
	assert_true(nm.looked_up);
	assert_null(nm.error);
	assert_int_equal(nm.addrs->n, 1);

	struct sockaddr_storage a[] = { v4("10.1.0.1"), v4("10.1.0.2") };
	rsv_addrs two = { a, 2 };
	assert_true(rsv_table_put(t, "svc.internal", &two));
	assert_false(rsv_table_put(t, "svc.internal", &two));
	assert_int_equal(rsv_table_find(t, "svc.internal", &nm), 1);
	assert_int_equal(nm.addrs->n, 2);
	assert_int_equal(changes, 1);   /* put does not call back */

	rsv_table_unmark(t);
	rsv_table_want(t, "svc.internal");
	rsv_table_sweep(t);
	assert_int_equal(rsv_table_find(t, "127.0.0.7", &nm), 0);
	assert_int_equal(rsv_table_at(t, 0, &nm), 1);
	assert_string_equal(nm.host, "svc.internal");
	assert_int_equal(rsv_table_at(t, 1, &nm), 0);
	rsv_table_free(t);
	rsv_free(r);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_numeric_endpoints_are_never_names),
		cmocka_unit_test(test_host_names_are_names),
		cmocka_unit_test(test_invalid_endpoints_say_why),
		cmocka_unit_test(test_numeric_and_host_shorthands),
		cmocka_unit_test(test_addresses_compare_with_their_port),
		cmocka_unit_test(test_answers_compare_as_sets),
		cmocka_unit_test(test_lookup_answers_on_the_loop),
		cmocka_unit_test(test_queue_runs_everything_and_cancel_silences),
		cmocka_unit_test(test_free_abandons_lookups),
		cmocka_unit_test(test_table_resolves_wanted_names),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
