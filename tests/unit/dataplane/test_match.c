/* test_match.c - A/B matching (base/match.c) on parsed requests, and the
 * route's decision with match rules and session affinity
 * (route_pick_request): each rule in its order, the cookies a response
 * gets, and what an ended rollout leaves of them. The same through real
 * processes: tests/e2e/test_ab.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"
#include "match.h"

static http_request req;   /* large: kept off the stack */
static char text[8192];

/* Parses "GET <target> HTTP/1.1" with Host and the header lines <hdrs>
 * ("Name: value\r\n"...) into <req>. */
static const http_request *parse(const char *target, const char *hdrs)
{
	int n = snprintf(text, sizeof text, "GET %s HTTP/1.1\r\nHost: a\r\n%s\r\n", target,
	                 hdrs ? hdrs : "");
	assert_true(n > 0 && (size_t)n < sizeof text);
	assert_int_equal(http_parse_request(text, (size_t)n, &req), n);
	return &req;
}

static match_set *one(match_on on, const char *name, match_op op, const char *value)
{
	match_set *m = match_set_new();
	char err[200];
	assert_int_equal(match_set_add(m, on, name, op, value, err, sizeof err), 0);
	return m;
}

static void test_header_ops(void **state)
{
	match_set *m = one(MATCH_HEADER, "x-canary", MATCH_EXACT, "insider");
	assert_true(match_request(m, parse("/", "X-Canary: insider\r\n")));
	assert_true(match_request(m, parse("/", "x-canary:   insider  \r\n")));
	assert_false(match_request(m, parse("/", "X-Canary: Insider\r\n")));
	assert_false(match_request(m, parse("/", "X-Canary: insider2\r\n")));
	assert_false(match_request(m, parse("/", "X-Canar: insider\r\n")));
	assert_false(match_request(m, parse("/", NULL)));
	match_set_unref(m);

	m = one(MATCH_HEADER, "x-user", MATCH_PREFIX, "qa-");
	assert_true(match_request(m, parse("/", "X-User: qa-\r\n")));
	assert_true(match_request(m, parse("/", "X-User: qa-anna\r\n")));
	assert_false(match_request(m, parse("/", "X-User: q\r\n")));
	assert_false(match_request(m, parse("/", "X-User: aqa-\r\n")));
	match_set_unref(m);

	m = one(MATCH_HEADER, "x-email", MATCH_SUFFIX, "@example.com");
	assert_true(match_request(m, parse("/", "X-Email: a@example.com\r\n")));
	assert_false(match_request(m, parse("/", "X-Email: a@example.com.evil\r\n")));
	assert_false(match_request(m, parse("/", "X-Email: example.com\r\n")));
	match_set_unref(m);

	/* a header on several lines: matched on them joined by "," */
	m = one(MATCH_HEADER, "x-tag", MATCH_EXACT, "a,b");
	assert_true(match_request(m, parse("/", "X-Tag: a\r\nX-Tag: b\r\n")));
	assert_false(match_request(m, parse("/", "X-Tag: a\r\n")));
	match_set_unref(m);
}

/* Flagger's documented cookie match, and a regex matches whole values */
static void test_regex_is_full_match_posix(void **state)
{
	match_set *m = one(MATCH_HEADER, "cookie", MATCH_REGEX, "^(.*?;)?(canary=always)(;.*)?$");
	assert_true(match_request(m, parse("/", "Cookie: canary=always\r\n")));
	assert_true(match_request(m, parse("/", "Cookie: a=1;canary=always\r\n")));
	assert_true(match_request(m, parse("/", "Cookie: a=1;canary=always;b=2\r\n")));
	assert_false(match_request(m, parse("/", "Cookie: canary=never\r\n")));
	assert_false(match_request(m, parse("/", "Cookie: xcanary=always\r\n")));
	match_set_unref(m);

	m = one(MATCH_HEADER, "user-agent", MATCH_REGEX, ".*Firefox.*|curl/.*");
	assert_true(match_request(m, parse("/", "User-Agent: Mozilla Firefox 99\r\n")));
	assert_true(match_request(m, parse("/", "User-Agent: curl/8.0\r\n")));
	/* without the anchors, "curl/" inside would match the search */
	assert_false(match_request(m, parse("/", "User-Agent: notcurl/8.0\r\n")));
	match_set_unref(m);

	m = match_set_new();
	char err[300];
	assert_int_equal(match_set_add(m, MATCH_HEADER, "x", MATCH_REGEX, "(abc", err, sizeof err),
	                 -1);
	assert_non_null(strstr(err, "regex '(abc' is not a POSIX extended regular expression"));
	assert_int_equal(match_set_add(m, MATCH_QUERY, "q", MATCH_SUFFIX, "a", err, sizeof err), -1);
	assert_int_equal(match_set_add(m, MATCH_QUERY, "", MATCH_EXACT, "a", err, sizeof err), -1);
	assert_int_equal(match_set_entries(m), 0);
	assert_false(match_request(m, parse("/", "X: abc\r\n")));
	match_set_unref(m);
}

static void test_query_params(void **state)
{
	match_set *m = one(MATCH_QUERY, "group", MATCH_EXACT, "beta");
	assert_true(match_request(m, parse("/?group=beta", NULL)));
	assert_true(match_request(m, parse("/list?a=1&group=beta&b", NULL)));
	assert_true(match_request(m, parse("/list?gr%6Fup=be%74a", NULL)));
	assert_true(match_request(m, parse("http://a/list?group=beta", NULL)));
	assert_false(match_request(m, parse("/list?group=beta2", NULL)));
	assert_false(match_request(m, parse("/list?groups=beta", NULL)));
	assert_false(match_request(m, parse("/list?group=alpha&group=beta", NULL)));
	assert_false(match_request(m, parse("/group=beta", NULL)));
	assert_false(match_request(m, parse("/list?group=be%", NULL)));
	match_set_unref(m);

	m = one(MATCH_QUERY, "debug", MATCH_EXACT, "");
	assert_true(match_request(m, parse("/?debug", NULL)));
	assert_true(match_request(m, parse("/?debug=", NULL)));
	assert_false(match_request(m, parse("/?debug=1", NULL)));
	match_set_unref(m);

	m = one(MATCH_QUERY, "build", MATCH_REGEX, "[0-9]+-rc");
	assert_true(match_request(m, parse("/?build=42-rc", NULL)));
	assert_false(match_request(m, parse("/?build=42-rc1", NULL)));
	match_set_unref(m);
}

/* entries are ORed, the conditions of one entry ANDed */
static void test_entries_or_conditions_and(void **state)
{
	match_set *m = match_set_new();
	char err[200];
	match_set_entry(m);
	assert_int_equal(match_set_add(m, MATCH_HEADER, "x-a", MATCH_EXACT, "1", err, sizeof err), 0);
	assert_int_equal(match_set_add(m, MATCH_HEADER, "x-b", MATCH_EXACT, "2", err, sizeof err), 0);
	match_set_entry(m);
	assert_int_equal(match_set_add(m, MATCH_QUERY, "q", MATCH_PREFIX, "z", err, sizeof err), 0);
	assert_int_equal(match_set_entries(m), 2);
	assert_true(match_request(m, parse("/", "X-A: 1\r\nX-B: 2\r\n")));
	assert_false(match_request(m, parse("/", "X-A: 1\r\n")));
	assert_false(match_request(m, parse("/", "X-B: 2\r\n")));
	assert_true(match_request(m, parse("/?q=zz", NULL)));
	assert_true(match_request(m, parse("/?q=zz", "X-A: 1\r\n")));
	assert_false(match_request(m, parse("/?q=az", "X-A: 1\r\n")));
	assert_false(match_request(NULL, parse("/?q=zz", NULL)));
	match_set_unref(m);
}

static void test_cookies(void **state)
{
	const http_request *q = parse("/", "Cookie: a=1; ab=xyz;c=\"q\"\r\nCookie: d=4\r\n");
	assert_int_equal(match_cookie(q, "ab", 2, "xyz", 3), 2);
	assert_int_equal(match_cookie(q, "ab", 2, "xy", 2), 1);
	assert_int_equal(match_cookie(q, "c", 1, "q", 1), 2);
	assert_int_equal(match_cookie(q, "d", 1, "4", 1), 2);
	assert_int_equal(match_cookie(q, "b", 1, "xyz", 3), 0);
	assert_int_equal(match_cookie(q, "a=1", 3, "", 0), 0);
	assert_true(match_cookie_name_ok("flagger-cookie"));
	assert_false(match_cookie_name_ok("a b"));
	assert_false(match_cookie_name_ok("a;b"));
	assert_false(match_cookie_name_ok(""));
}

/* ---- the route's decision ---- */

static route *ab_route(match_set *m, const cfg_affinity *a)
{
	route *r = route_new("shop", NULL);
	char *st[] = { "127.0.0.1:9001" }, *ca[] = { "127.0.0.1:9002" };
	char err[200];
	assert_int_equal(route_set_endpoints(r, TARGET_STABLE, st, 1, err, sizeof err), 0);
	assert_int_equal(route_set_endpoints(r, TARGET_CANARY, ca, 1, err, sizeof err), 0);
	route_set_rules(r, m, a, 60000);
	return r;
}

static char sc[SETCOOKIE_MAX];
static size_t sclen;

static int pick(route *r, const char *target, const char *hdrs)
{
	return route_pick_request(r, parse(target, hdrs), sc, sizeof sc, &sclen);
}

static void test_match_only_while_a_rollout_is_active(void **state)
{
	match_set *m = one(MATCH_HEADER, "x-canary", MATCH_EXACT, "1");
	route *r = ab_route(m, NULL);
	match_set_unref(m);   /* the route keeps its own reference */
	route_set_weight(r, 0);
	/* no rollout: nothing to the canary */
	assert_int_equal(pick(r, "/", "X-Canary: 1\r\n"), TARGET_STABLE);
	route_set_rollout(r, 42);
	for (int i = 0; i < 10; i++) {
		assert_int_equal(pick(r, "/", "X-Canary: 1\r\n"), TARGET_CANARY);
		assert_int_equal(sclen, 0);
		assert_int_equal(pick(r, "/", NULL), TARGET_STABLE);
	}
	/* the rest by weight, exactly */
	route_set_weight(r, 30);
	int canary = 0;
	for (int i = 0; i < 100; i++)
		canary += pick(r, "/", "X-Canary: 0\r\n") == TARGET_CANARY;
	assert_int_equal(canary, 30);
	/* a canary without endpoints gets nothing */
	route_set_endpoints(r, TARGET_CANARY, NULL, 0, NULL, 0);
	assert_int_equal(pick(r, "/", "X-Canary: 1\r\n"), TARGET_STABLE);
	route_set_rollout(r, 0);
	route_release(r);
}

/* The Set-Cookie value of the first line of sc that sets <name>. */
static char *cookie_set(const char *name, char *out, size_t len)
{
	char want[160];
	snprintf(want, sizeof want, "Set-Cookie: %s=", name);
	const char *p = strstr(sc, want);
	if (!p || (size_t)(p - sc) >= sclen)
		return NULL;
	const char *e = strstr(p, "\r\n");
	snprintf(out, len, "%.*s", (int)(e - p - 12), p + 12);
	return out;
}

static void test_affinity_cookies(void **state)
{
	cfg_affinity a = { .cookie_name = "ab", .max_age = 7200, .path = "/", .secure = true,
	                   .primary_cookie_name = "pab" };
	route *r = ab_route(NULL, &a);
	route_set_weight(r, 50);
	route_set_rollout(r, 0x1234);
	char set[400], canary[64] = "", primary[64] = "";
	int n[2] = { 0, 0 };
	for (int i = 0; i < 10; i++) {
		memset(sc, 0, sizeof sc);
		int t = pick(r, "/", NULL);
		n[t]++;
		if (t == TARGET_CANARY) {
			assert_non_null(cookie_set("ab", set, sizeof set));
			assert_null(cookie_set("pab", set + 200, 200));
			assert_string_equal(set, "ab=0000000000001234; Max-Age=7200; Path=/; Secure");
			snprintf(canary, sizeof canary, "Cookie: x=1; ab=0000000000001234\r\n");
		} else {
			assert_non_null(cookie_set("pab", set, sizeof set));
			assert_null(cookie_set("ab", set + 200, 200));
			assert_non_null(strstr(set, "; Max-Age=60; Path=/; Secure"));
			snprintf(primary, sizeof primary, "Cookie: %.*s\r\n",
			         (int)(strchr(set, ';') - set), set);
		}
	}
	assert_int_equal(n[0], 5);
	assert_int_equal(n[1], 5);
	/* pinned, and no new cookie */
	for (int i = 0; i < 10; i++) {
		assert_int_equal(pick(r, "/", canary), TARGET_CANARY);
		assert_int_equal(sclen, 0);
		assert_int_equal(pick(r, "/", primary), TARGET_STABLE);
		assert_int_equal(sclen, 0);
	}
	/* the canary without endpoints for a moment: stable, the cookie kept */
	char *ca[] = { "127.0.0.1:9002" };
	route_set_endpoints(r, TARGET_CANARY, NULL, 0, NULL, 0);
	assert_int_equal(pick(r, "/", canary), TARGET_STABLE);
	assert_int_equal(sclen, 0);
	route_set_endpoints(r, TARGET_CANARY, ca, 1, NULL, 0);
	assert_int_equal(pick(r, "/", canary), TARGET_CANARY);
	/* the rollout ends: the cookie pins nothing, and is deleted */
	route_set_rollout(r, 0);
	route_set_weight(r, 0);
	assert_int_equal(pick(r, "/", canary), TARGET_STABLE);
	assert_non_null(cookie_set("ab", set, sizeof set));
	assert_string_equal(set, "ab=; Max-Age=0; Path=/; Secure");
	assert_int_equal(pick(r, "/", primary), TARGET_STABLE);
	assert_int_equal(sclen, 0);
	/* another rollout: the old cookie is stale, it goes by weight */
	route_set_rollout(r, 0x9999);
	route_set_weight(r, 50);
	n[0] = n[1] = 0;
	for (int i = 0; i < 10; i++)
		n[pick(r, "/", canary)]++;
	assert_int_equal(n[0], 5);
	route_release(r);
}

/* Rules changed while worker threads match with the old ones: each thread
 * holds its own reference (as a replica does), so that none is freed under
 * it. Run under ThreadSanitizer by make test-tsan. */
typedef struct job {
	match_set *m;                 /* the thread's reference */
	int hits;
} job;

static void *matcher(void *arg)
{
	job *j = arg;
	match_set *m = j->m;
	http_request *q = calloc(1, sizeof *q);
	static const char t[] = "GET / HTTP/1.1\r\nHost: a\r\nX-A: a1\r\n\r\n";
	assert_int_equal(http_parse_request(t, sizeof t - 1, q), (int)sizeof t - 1);
	int hits = 0;
	for (int i = 0; i < 2000; i++)
		hits += match_request(m, q);
	free(q);
	match_set_unref(m);
	j->hits = hits;
	return NULL;
}

static void test_threads_share_a_set(void **state)
{
	match_set *m = one(MATCH_HEADER, "x-a", MATCH_REGEX, "a[0-9]");
	pthread_t th[4];
	job jobs[4];
	for (int i = 0; i < 4; i++) {
		jobs[i].m = match_set_ref(m);
		assert_int_equal(pthread_create(&th[i], NULL, matcher, &jobs[i]), 0);
	}
	match_set_unref(m);   /* the threads' references keep it */
	for (int i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(jobs[i].hits, 2000);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_header_ops),
		cmocka_unit_test(test_regex_is_full_match_posix),
		cmocka_unit_test(test_query_params),
		cmocka_unit_test(test_entries_or_conditions_and),
		cmocka_unit_test(test_cookies),
		cmocka_unit_test(test_match_only_while_a_rollout_is_active),
		cmocka_unit_test(test_affinity_cookies),
		cmocka_unit_test(test_threads_share_a_set),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
