/* test_haproxy_config.c - spec.haproxy: required with router haproxy and
 * refused with any other, spec.listen refused with it, and each of its
 * keys checked (runtimeAPI, backend, log). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define HEAD \
	"apiVersion: canaryd/v1\n" \
	"kind: Canary\n" \
	"metadata: {name: web}\n" \
	"spec:\n" \
	"  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n" \
	"  analysis: {interval: 1m, stepWeight: 10}\n"

/* Loads <text>; with <want> NULL it must load, else fail with a message
 * containing <want>. */
static void expect(const char *text, const char *want)
{
	cfg *c = NULL;
	cfg_errors e = { 0 };
	int rc = cfg_load_string("c.yaml", text, strlen(text), &c, &e);
	if (!want) {
		for (size_t i = 0; i < e.n; i++)
			print_message("  error: %s\n", e.msg[i]);
		assert_int_equal(rc, 0);
		cfg_free(c);
		cfg_errors_release(&e);
		return;
	}
	assert_int_equal(rc, -1);
	bool found = false;
	for (size_t i = 0; i < e.n; i++)
		found |= strstr(e.msg[i], want) != NULL;
	if (!found) {
		print_message("no error with '%s' among:\n", want);
		for (size_t i = 0; i < e.n; i++)
			print_message("  error: %s\n", e.msg[i]);
	}
	assert_true(found);
	cfg_errors_release(&e);
}

static void test_loads(void **state)
{
	const char *t = HEAD "  router: haproxy\n"
		"  haproxy: {runtimeAPI: 'unix:/run/haproxy/admin.sock', backend: app_be.1, "
		"log: '127.0.0.1:5140'}\n";
	cfg *c = NULL;
	cfg_errors e = { 0 };
	assert_int_equal(cfg_load_string("c.yaml", t, strlen(t), &c, &e), 0);
	assert_string_equal(c->canaries[0].haproxy_api, "unix:/run/haproxy/admin.sock");
	assert_string_equal(c->canaries[0].haproxy_backend, "app_be.1");
	assert_string_equal(c->canaries[0].haproxy_log, "127.0.0.1:5140");
	assert_null(c->canaries[0].listen);
	cfg_free(c);
	expect(HEAD "  router: haproxy\n  haproxy: {runtimeAPI: '127.0.0.1:9999', backend: be}\n",
	       NULL);
	expect(HEAD "  router: haproxy\n  haproxy: {runtimeAPI: '[::1]:9999', backend: be}\n",
	       NULL);
}

static void test_required_and_refused(void **state)
{
	expect(HEAD "  router: haproxy\n", "spec.haproxy: required with router haproxy");
	expect(HEAD "  router: haproxy\n  haproxy: {backend: be}\n",
	       "spec.haproxy.runtimeAPI: required");
	expect(HEAD "  router: haproxy\n  haproxy: {runtimeAPI: 'unix:/x.sock'}\n",
	       "spec.haproxy.backend: required");
	expect(HEAD "  listen: 127.0.0.1:8080\n"
	       "  haproxy: {runtimeAPI: 'unix:/x.sock', backend: be}\n",
	       "spec.haproxy: only with router haproxy (the router is 'builtin')");
	expect(HEAD "  router: haproxy\n  listen: 127.0.0.1:8080\n"
	       "  haproxy: {runtimeAPI: 'unix:/x.sock', backend: be}\n",
	       "spec.listen: not with router haproxy");
	expect(HEAD "  router: haproxy\n"
	       "  haproxy: {runtimeAPI: 'unix:/x.sock', backend: be, weight: 3}\n",
	       "weight");
}

static void test_bad_values(void **state)
{
	expect(HEAD "  router: haproxy\n  haproxy: {runtimeAPI: 'unix:x.sock', backend: be}\n",
	       "needs an absolute path");
	expect(HEAD "  router: haproxy\n  haproxy: {runtimeAPI: 'haproxy.local:9999', backend: be}\n",
	       "must be unix:/path/to/socket or an IP address");
	expect(HEAD "  router: haproxy\n  haproxy: {runtimeAPI: 'unix:/x.sock', backend: 'a b'}\n",
	       "must be a HAProxy backend name");
	expect(HEAD "  router: haproxy\n  haproxy: {runtimeAPI: 'unix:/x.sock', backend: 'be;x'}\n",
	       "must be a HAProxy backend name");
	expect(HEAD "  router: haproxy\n"
	       "  haproxy: {runtimeAPI: 'unix:/x.sock', backend: be, log: 'logs.local:514'}\n",
	       "spec.haproxy.log: must be an IP address");
	expect(HEAD "  router: haproxy\n"
	       "  haproxy: {runtimeAPI: 'unix:/x.sock', backend: be, log: '127.0.0.1'}\n",
	       "spec.haproxy.log: must be HOST:PORT");
	char path[200];
	memset(path, 'a', 150);
	path[150] = '\0';
	char t[1024];
	snprintf(t, sizeof t, HEAD "  router: haproxy\n"
	         "  haproxy: {runtimeAPI: 'unix:/%s', backend: be}\n", path);
	expect(t, "longer than a unix socket path");
}

/* show stat has no p99: request-duration needs the request logs */
static void test_duration_needs_log(void **state)
{
	const char *base = "apiVersion: canaryd/v1\n"
		"kind: Canary\n"
		"metadata: {name: web}\n"
		"spec:\n"
		"  router: haproxy\n"
		"  haproxy: {runtimeAPI: 'unix:/x.sock', backend: be%s}\n"
		"  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n"
		"  analysis:\n"
		"    interval: 1m\n"
		"    stepWeight: 10\n"
		"%s";
	char t[1024];
	const char *dur = "    metrics:\n"
		"      - {name: request-success-rate, thresholdRange: {min: 99}, interval: 1m}\n";
	snprintf(t, sizeof t, base, "", dur);
	expect(t, NULL);
	dur = "    metrics:\n"
		"      - {name: request-duration, thresholdRange: {max: 500}, interval: 1m}\n";
	snprintf(t, sizeof t, base, "", dur);
	expect(t, "c.yaml:6:3: spec.analysis.metrics[0] 'request-duration': request-duration with "
	       "router haproxy needs spec.haproxy.log");
	snprintf(t, sizeof t, base, ", log: '127.0.0.1:5140'", dur);
	expect(t, NULL);
	snprintf(t, sizeof t, base, "", "    judge: sequential\n");
	expect(t, "latency test with router haproxy needs spec.haproxy.log");
	snprintf(t, sizeof t, base, "", "    judge: sequential\n    latencyRatio: 0\n");
	expect(t, NULL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_loads),
		cmocka_unit_test(test_required_and_refused),
		cmocka_unit_test(test_bad_values),
		cmocka_unit_test(test_duration_needs_log),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
