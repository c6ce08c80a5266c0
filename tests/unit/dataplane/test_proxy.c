/* test_proxy.c - what the proxy's data plane relies on outside the event
 * loop: stats shards (one per worker thread, merged by readers) and the
 * route's weight and observer interface. The proxy itself is tested end to
 * end (tests/e2e/test_proxy.py). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"
#include "stats.h"

static stats_summary sum; /* large: kept off the stack */

static void test_shard_zero_is_the_stats_itself(void **state)
{
	stats *s = stats_new();
	assert_ptr_equal(stats_shard(s, 0), s);
	stats *s1 = stats_shard(s, 1);
	assert_ptr_not_equal(s1, s);
	assert_ptr_equal(stats_shard(s, 1), s1);   /* created once */
	stats_free(s);
}

static void test_query_sums_every_shard(void **state)
{
	stats *s = stats_new();
	stats_record(s, TARGET_CANARY, 200, 1000, 100);
	stats_record(stats_shard(s, 1), TARGET_CANARY, 500, 1000, 100);
	stats_record(stats_shard(s, 2), TARGET_CANARY, 200, 1000, 101);
	stats_record(stats_shard(s, 2), TARGET_STABLE, 200, 1000, 101);
	stats_query(s, TARGET_CANARY, 100, 101, &sum);
	assert_int_equal(sum.total, 3);
	assert_int_equal(sum.by_class[2], 2);
	assert_int_equal(sum.by_class[5], 1);
	stats_query(s, TARGET_CANARY, 101, 101, &sum);
	assert_int_equal(sum.total, 1);
	stats_free(s);
}

static void test_forget_clears_every_shard(void **state)
{
	stats *s = stats_new();
	stats_record(s, TARGET_CANARY, 200, 1000, 10);
	stats_record(stats_shard(s, 3), TARGET_CANARY, 200, 1000, 10);
	stats_forget(s, TARGET_CANARY);
	stats_query(s, TARGET_CANARY, 0, 20, &sum);
	assert_int_equal(sum.total, 0);
	stats_free(s);
}

static void test_prometheus_merges_shards(void **state)
{
	stats *s = stats_new();
	stats_record(s, TARGET_STABLE, 204, 2000, 5);
	stats_record(stats_shard(s, 1), TARGET_STABLE, 204, 2000, 5);
	stats_record(stats_shard(s, 1), TARGET_STABLE, 204, 2000, 6);
	buf out = BUF_INIT;
	stats_write_prometheus(s, "demo", &out);
	assert_non_null(strstr(out.p, "canaryd_requests_total{canary=\"demo\","
	                              "target=\"stable\",code=\"204\"} 3\n"));
	assert_non_null(strstr(out.p, "canaryd_request_duration_seconds_count{"
	                              "canary=\"demo\",target=\"stable\"} 3\n"));
	assert_non_null(strstr(out.p, "canaryd_request_duration_seconds_sum{"
	                              "canary=\"demo\",target=\"stable\"} 0.006000\n"));
	buf_release(&out);
	stats_free(s);
}

#define WRITES 200000

static void *writer(void *arg)
{
	stats *sh = arg;
	for (uint64_t i = 0; i < WRITES; i++)
		stats_record(sh, TARGET_CANARY, 200, 100, 1000 + i / 50000);
	return NULL;
}

/* One writer thread per shard while the main thread reads: the totals are
 * exact once the writers are done (under TSan/ASan this also shows that
 * reading needs no lock). */
static void test_shards_written_by_threads_while_read(void **state)
{
	stats *s = stats_new();
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		assert_int_equal(pthread_create(&th[i], NULL, writer,
		                                stats_shard(s, i + 1)), 0);
	uint64_t last = 0;
	for (int k = 0; k < 200; k++) {
		stats_query(s, TARGET_CANARY, 1000, 1010, &sum);
		assert_true(sum.total <= 2 * WRITES);
		last = sum.total;
	}
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	stats_query(s, TARGET_CANARY, 1000, 1010, &sum);
	assert_true(last <= sum.total);
	assert_int_equal(sum.total, 2 * WRITES);
	stats_free(s);
}

static void test_route_weight_is_clamped(void **state)
{
	stats *s = stats_new();
	route *r = route_new("demo", s);
	assert_int_equal(route_weight(r), 0);
	route_set_weight(r, 35);
	assert_int_equal(route_weight(r), 35);
	route_set_weight(r, 140);
	assert_int_equal(route_weight(r), 100);
	route_set_weight(r, -3);
	assert_int_equal(route_weight(r), 0);
	route_release(r);
	stats_free(s);
}

static void test_route_mirror_is_off_until_set_and_clamped(void **state)
{
	stats *s = stats_new();
	route *r = route_new("demo", s);
	assert_int_equal(route_mirror(r), 0);
	route_set_mirror(r, 25);
	assert_int_equal(route_mirror(r), 25);
	assert_int_equal(route_weight(r), 0);   /* copies are not a weight */
	route_set_mirror(r, 101);
	assert_int_equal(route_mirror(r), 100);
	route_set_mirror(r, -1);
	assert_int_equal(route_mirror(r), 0);
	route_release(r);
	stats_free(s);
}

/* The fates of copies add up over shards; /metrics shows them only once
 * there was any (a canary without mirror has no such series). */
static void test_mirror_counts_merge_shards_and_show_once_used(void **state)
{
	stats *s = stats_new();
	buf out = BUF_INIT;
	stats_write_prometheus(s, "demo", &out);
	assert_null(strstr(out.p, "canaryd_mirror_requests_total"));
	buf_release(&out);
	stats_mirror(s, STATS_MIRROR_SENT);
	stats_mirror(stats_shard(s, 1), STATS_MIRROR_SENT);
	stats_mirror(stats_shard(s, 2), STATS_MIRROR_SLOW);
	stats_mirror(s, STATS_MIRROR_COUNT);   /* out of range: ignored */
	uint64_t m[STATS_MIRROR_COUNT];
	stats_mirror_totals(s, m);
	assert_int_equal(m[STATS_MIRROR_SENT], 2);
	assert_int_equal(m[STATS_MIRROR_SLOW], 1);
	assert_int_equal(m[STATS_MIRROR_LIMIT] + m[STATS_MIRROR_CLIENT], 0);
	out = (buf)BUF_INIT;
	stats_write_prometheus(s, "demo", &out);
	assert_non_null(strstr(out.p, "canaryd_mirror_requests_total{canary=\"demo\","
	                              "result=\"sent\"} 2\n"));
	assert_non_null(strstr(out.p, "canaryd_mirror_requests_total{canary=\"demo\","
	                              "result=\"slow\"} 1\n"));
	assert_non_null(strstr(out.p, "canaryd_mirror_requests_total{canary=\"demo\","
	                              "result=\"limit\"} 0\n"));
	buf_release(&out);
	stats_free(s);
}

static void test_route_refuses_a_bad_endpoint_and_stays_unchanged(void **state)
{
	stats *s = stats_new();
	route *r = route_new("demo", s);
	char err[200];
	char *good[] = { "127.0.0.1:9001" };
	char *bad[] = { "127.0.0.1:9002", "nohost" };
	assert_int_equal(route_set_endpoints(r, TARGET_STABLE, good, 1, err,
	                                     sizeof err), 0);
	assert_int_equal(route_set_endpoints(r, TARGET_STABLE, bad, 2, err,
	                                     sizeof err), -1);
	assert_non_null(strstr(err, "nohost"));
	route_release(r);
	stats_free(s);
}

/* ---- the route's members (host names: tests/e2e/test_dns.py) ---- */

static route_member member(const char *name, const char *ip, int port)
{
	route_member m;
	memset(&m, 0, sizeof m);
	snprintf(m.name, sizeof m.name, "%s", name);
	uv_ip4_addr(ip, port, (struct sockaddr_in *)&m.addr);
	return m;
}

/* Every address of a host name is a member of its own, and what the route
 * reports is exactly what it was given: the status and the readiness
 * probes read it. */
static void test_route_members_are_what_was_set(void **state)
{
	stats *s = stats_new();
	route *r = route_new("demo", s);
	route_member in[3] = {
		member("app.internal:9001 (127.0.0.5)", "127.0.0.5", 9001),
		member("app.internal:9001 (127.0.0.6)", "127.0.0.6", 9001),
		member("127.0.0.1:9002", "127.0.0.1", 9002),
	};
	route_set_members(r, TARGET_CANARY, in, 3);
	route_member out[4];
	assert_int_equal(route_members(r, TARGET_CANARY, out, 4), 3);
	for (int i = 0; i < 3; i++) {
		assert_string_equal(out[i].name, in[i].name);
		assert_memory_equal(&out[i].addr, &in[i].addr, sizeof(struct sockaddr_in));
	}
	assert_int_equal(route_members(r, TARGET_STABLE, out, 4), 0);
	/* fewer than there are: the count is still the whole */
	assert_int_equal(route_members(r, TARGET_CANARY, out, 1), 3);
	/* promotion: the canary's members become stable's, canary none */
	route_set_members(r, TARGET_STABLE, in, 3);
	route_set_members(r, TARGET_CANARY, NULL, 0);
	assert_int_equal(route_members(r, TARGET_STABLE, out, 4), 3);
	assert_int_equal(route_members(r, TARGET_CANARY, out, 4), 0);
	route_release(r);
	stats_free(s);
}

/* The same name with another address is another member (a name that moved
 * must not inherit the pooled connections to its old address). */
static void test_route_member_is_name_and_address(void **state)
{
	stats *s = stats_new();
	route *r = route_new("demo", s);
	route_member a = member("svc:80", "127.0.0.5", 80);
	route_member b = member("svc:80", "127.0.0.6", 80);
	route_member both[2] = { a, b };
	route_set_members(r, TARGET_STABLE, both, 2);
	route_member out[2];
	assert_int_equal(route_members(r, TARGET_STABLE, out, 2), 2);
	assert_memory_equal(&out[1].addr, &b.addr, sizeof(struct sockaddr_in));
	route_release(r);
	stats_free(s);
}

/* route_set_endpoints takes numeric endpoints only: a host name must be
 * resolved first, and is refused with the route left as it was. */
static void test_route_set_endpoints_refuses_a_host_name(void **state)
{
	stats *s = stats_new();
	route *r = route_new("demo", s);
	char err[200];
	char *good[] = { "127.0.0.1:9001", "[::1]:9001", "localhost:9002" };
	char *name[] = { "127.0.0.1:9003", "app.internal:9001" };
	assert_int_equal(route_set_endpoints(r, TARGET_STABLE, good, 3, err, sizeof err), 0);
	assert_int_equal(route_set_endpoints(r, TARGET_STABLE, name, 2, err, sizeof err), -1);
	assert_non_null(strstr(err, "app.internal:9001"));
	route_member out[3];
	assert_int_equal(route_members(r, TARGET_STABLE, out, 3), 3);
	assert_string_equal(out[2].name, "localhost:9002");
	route_release(r);
	stats_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_shard_zero_is_the_stats_itself),
		cmocka_unit_test(test_query_sums_every_shard),
		cmocka_unit_test(test_forget_clears_every_shard),
		cmocka_unit_test(test_prometheus_merges_shards),
		cmocka_unit_test(test_shards_written_by_threads_while_read),
		cmocka_unit_test(test_route_weight_is_clamped),
		cmocka_unit_test(test_route_mirror_is_off_until_set_and_clamped),
		cmocka_unit_test(test_mirror_counts_merge_shards_and_show_once_used),
		cmocka_unit_test(test_route_refuses_a_bad_endpoint_and_stays_unchanged),
		cmocka_unit_test(test_route_members_are_what_was_set),
		cmocka_unit_test(test_route_member_is_name_and_address),
		cmocka_unit_test(test_route_set_endpoints_refuses_a_host_name),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
