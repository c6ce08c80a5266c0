/* test_health_config.c - spec.healthCheck in the configuration: its
 * defaults, every key read, and each way of getting it wrong reported at
 * its position (a path that is not one, a timeout longer than the
 * interval, thresholds out of range, a misspelt key, a router that does
 * not run the checks). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

/* A canary whose spec ends with <more> (keys at two blanks). */
static int load(const char *router, const char *more, cfg **out, cfg_errors *e)
{
	char text[2048];
	snprintf(text, sizeof text,
	         "apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: web}\nspec:\n"
	         "  router: %s\n%s"
	         "  stable: {revision: v1, endpoints: ['127.0.0.1:19001']}\n"
	         "  analysis: {interval: 1s, stepWeight: 10}\n%s", router,
	         !strcmp(router, "builtin") ? "  listen: 127.0.0.1:18080\n"
	         : "  haproxy: {runtimeAPI: 'unix:/run/haproxy.sock', backend: app}\n", more);
	*out = NULL;
	return cfg_load_string("c.yaml", text, strlen(text), out, e);
}

static const cfg_health *must_load(const char *more, cfg **c)
{
	cfg_errors e = { 0 };
	int rc = load("builtin", more, c, &e);
	for (size_t i = 0; i < e.n; i++)
		print_message("  error: %s\n", e.msg[i]);
	assert_int_equal(rc, 0);
	cfg_errors_release(&e);
	return &(*c)->canaries[0].health;
}

/* <more> must fail with a message starting with <where> and holding <what>. */
static void must_fail(const char *router, const char *more, const char *where,
                      const char *what)
{
	cfg_errors e = { 0 };
	cfg *c;
	assert_int_equal(load(router, more, &c, &e), -1);
	assert_null(c);
	bool found = false;
	for (size_t i = 0; i < e.n && !found; i++)
		found = !strncmp(e.msg[i], where, strlen(where)) && strstr(e.msg[i], what);
	if (!found)
		for (size_t i = 0; i < e.n; i++)
			print_message("  error: %s\n", e.msg[i]);
	assert_true(found);
	cfg_errors_release(&e);
}

static void test_off_without_the_key(void **state)
{
	cfg *c;
	const cfg_health *h = must_load("", &c);
	assert_int_equal(h->enabled, 0);
	cfg_free(c);
}

static void test_defaults_are_envoys_and_haproxys(void **state)
{
	cfg *c;
	const cfg_health *h = must_load("  healthCheck: {}\n", &c);
	assert_int_equal(h->enabled, 1);
	assert_null(h->path);                      /* a TCP connect check */
	assert_int_equal(h->interval_ms, 5000);
	assert_int_equal(h->timeout_ms, 1000);
	assert_int_equal(h->unhealthy_threshold, 3);
	assert_int_equal(h->healthy_threshold, 2);
	cfg_free(c);
}

static void test_every_key_is_read(void **state)
{
	cfg *c;
	const cfg_health *h = must_load("  healthCheck:\n    path: /healthz?deep=1\n"
	                                "    interval: 2s\n    timeout: 500ms\n"
	                                "    unhealthyThreshold: 5\n    healthyThreshold: 1\n", &c);
	assert_string_equal(h->path, "/healthz?deep=1");
	assert_int_equal(h->interval_ms, 2000);
	assert_int_equal(h->timeout_ms, 500);
	assert_int_equal(h->unhealthy_threshold, 5);
	assert_int_equal(h->healthy_threshold, 1);
	cfg_free(c);
}

static void test_a_short_interval_shortens_the_default_timeout(void **state)
{
	cfg *c;
	const cfg_health *h = must_load("  healthCheck: {interval: 100ms}\n", &c);
	assert_int_equal(h->timeout_ms, 100);
	cfg_free(c);
}

static void test_bad_values_are_refused_where_they_are(void **state)
{
	must_fail("builtin", "  healthCheck: {path: healthz}\n", "c.yaml:9:23: ",
	          "spec.healthCheck.path: must be a path starting with '/'");
	must_fail("builtin", "  healthCheck: {path: '/a b'}\n", "c.yaml:9:23: ",
	          "without spaces");
	must_fail("builtin", "  healthCheck: {interval: 1s, timeout: 2s}\n", "c.yaml:9:40: ",
	          "spec.healthCheck.timeout: must be at most spec.healthCheck.interval (2s is "
	          "longer than 1s");
	must_fail("builtin", "  healthCheck: {interval: 10ms}\n", "c.yaml:9:27: ",
	          "spec.healthCheck.interval");
	must_fail("builtin", "  healthCheck: {unhealthyThreshold: 0}\n", "c.yaml:9:37: ",
	          "spec.healthCheck.unhealthyThreshold");
	must_fail("builtin", "  healthCheck: {healthyThreshold: 1001}\n", "c.yaml:9:35: ",
	          "spec.healthCheck.healthyThreshold");
	must_fail("builtin", "  healthCheck: {pth: /}\n", "c.yaml:9:17: ",
	          "did you mean 'path'?");
	must_fail("builtin", "  healthCheck: 5s\n", "c.yaml:9:16: ", "spec.healthCheck");
}

static void test_only_the_builtin_router_runs_them(void **state)
{
	must_fail("haproxy", "  healthCheck: {path: /healthz}\n", "c.yaml:9:3: ",
	          "spec.healthCheck: only with router builtin (with router 'haproxy'");
	must_fail("istio", "  healthCheck: {}\n", "c.yaml:9:3: ",
	          "spec.healthCheck: only with router builtin (router 'istio'");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_off_without_the_key),
		cmocka_unit_test(test_defaults_are_envoys_and_haproxys),
		cmocka_unit_test(test_every_key_is_read),
		cmocka_unit_test(test_a_short_interval_shortens_the_default_timeout),
		cmocka_unit_test(test_bad_values_are_refused_where_they_are),
		cmocka_unit_test(test_only_the_builtin_router_runs_them),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
