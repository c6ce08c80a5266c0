/* test_cfg_route.c - spec.analysis.match and spec.analysis.sessionAffinity
 * in the configuration (cfg_route.c): compiled for router builtin, each
 * mistake reported at its place, what only the router makes wrong decided
 * by the router (POSIX regexes and sourceLabels for builtin, nothing of
 * either for haproxy), and the mesh routers' documents left as Flagger
 * has them (an RE2 regex is theirs to judge). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define HEAD(router, more) \
	"apiVersion: canaryd/v1\n" \
	"kind: Canary\n" \
	"metadata: {name: web}\n" \
	"spec:\n" \
	"  router: " router "\n" \
	"  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n" \
	more \
	"  analysis:\n" \
	"    interval: 30s\n" \
	"    iterations: 5\n"
#define BUILTIN HEAD("builtin", "  listen: 127.0.0.1:18080\n")
#define HAPROXY HEAD("haproxy", "  haproxy: {runtimeAPI: 'unix:/x.sock', backend: be}\n")
/* spec.listen after analysis: the router's checks wait for the whole spec */
#define BUILTIN_ANALYSIS(a) HEAD("builtin", "") a "  listen: 127.0.0.1:18080\n"

static cfg *load_ok(const char *text)
{
	cfg *c = NULL;
	cfg_errors e = { 0 };
	int rc = cfg_load_string("c.yaml", text, strlen(text), &c, &e);
	for (size_t i = 0; i < e.n; i++)
		print_message("  error: %s\n", e.msg[i]);
	assert_int_equal(rc, 0);
	cfg_errors_release(&e);
	return c;
}

/* Loads <text>, which must fail with a message that is exactly <want>. */
static void expect(const char *text, const char *want)
{
	cfg *c = NULL;
	cfg_errors e = { 0 };
	int rc = cfg_load_string("c.yaml", text, strlen(text), &c, &e);
	if (rc == 0) {
		print_message("loaded, but '%s' was expected:\n%s", want, text);
		cfg_free(c);
	}
	assert_int_equal(rc, -1);
	bool found = false;
	for (size_t i = 0; i < e.n; i++)
		found |= strcmp(e.msg[i], want) == 0;
	if (!found) {
		print_message("no error '%s' among:\n", want);
		for (size_t i = 0; i < e.n; i++)
			print_message("  error: %s\n", e.msg[i]);
	}
	assert_true(found);
	cfg_errors_release(&e);
}

static void test_builtin_compiles_match(void **state)
{
	cfg *c = load_ok(BUILTIN_ANALYSIS(
		"    match:\n"
		"      - headers:\n"
		"          x-canary: {exact: insider}\n"
		"          cookie: {regex: \"^(.*?;)?(canary=always)(;.*)?$\"}\n"
		"      - queryParams:\n"
		"          group: {prefix: beta}\n"));
	const cfg_canary *k = &c->canaries[0];
	assert_int_equal(match_set_entries(k->match), 2);
	static const char t[] = "GET /?group=beta1 HTTP/1.1\r\nHost: a\r\n\r\n";
	static http_request q;
	assert_int_equal(http_parse_request(t, sizeof t - 1, &q), (int)sizeof t - 1);
	assert_true(match_request(k->match, &q));
	assert_null(k->affinity.cookie_name);
	cfg_free(c);
}

static void test_match_mistakes(void **state)
{
	expect(BUILTIN "    match:\n      - headers:\n          x-a: {regex: \"(abc\"}\n",
	       "c.yaml:13:24: spec.analysis.match[0].headers.x-a.regex: regex '(abc' is not a "
	       "POSIX extended regular expression: Unmatched ( or \\( (the built-in proxy "
	       "matches POSIX extended regular expressions, not RE2)");
	/* known once the router is: listen after analysis */
	expect(BUILTIN_ANALYSIS("    match:\n      - headers:\n          x-a: {regex: \"\\\\d+\"}\n"
	                        "      - sourceLabels: {app: web}\n"),
	       "c.yaml:13:9: spec.analysis.match[1].sourceLabels: router builtin cannot match "
	       "source labels (they are Kubernetes pod labels of the client; match headers, "
	       "cookies or query parameters)");
	expect(BUILTIN "    match:\n      - headers:\n          x-a: {exact: a, prefix: b}\n",
	       "c.yaml:13:16: spec.analysis.match[0].headers.x-a: give exactly one of exact, "
	       "prefix, suffix or regex, got 2");
	expect(BUILTIN "    match:\n      - headers:\n          x-a: {}\n",
	       "c.yaml:13:16: spec.analysis.match[0].headers.x-a: give exactly one of exact, "
	       "prefix, suffix or regex, got 0");
	expect(BUILTIN "    match:\n      - queryParams:\n          q: {}\n",
	       "c.yaml:13:14: spec.analysis.match[0].queryParams.q: give one of exact, prefix or "
	       "regex (router builtin)");
	expect(BUILTIN "    match:\n      - queryParams:\n          q: {suffix: a}\n",
	       "c.yaml:13:15: spec.analysis.match[0].queryParams.q.suffix: unknown field; a query "
	       "parameter matches by exact, prefix or regex");
	expect(BUILTIN "    match:\n      - headers:\n          \"a b\": {exact: x}\n",
	       "c.yaml:13:11: spec.analysis.match[0].headers.a b: not a header name (letters, "
	       "digits and !#$%&'*+-.^_`|~)");
	expect(BUILTIN "    match:\n      - {}\n",
	       "c.yaml:12:9: spec.analysis.match[0]: an empty match would match every request; "
	       "give headers or queryParams");
	expect(BUILTIN "    match:\n      - header: {x: {exact: y}}\n",
	       "c.yaml:12:9: spec.analysis.match[0].header: unknown field; did you mean 'headers'?");
	expect(BUILTIN "    match: {headers: {}}\n",
	       "c.yaml:11:12: spec.analysis.match: must be a list of matches ({headers: {NAME: "
	       "{exact: VALUE}}}, ...), got a mapping");
}

static void test_affinity(void **state)
{
	cfg *c = load_ok(BUILTIN "    sessionAffinity:\n      cookieName: flagger-cookie\n");
	const cfg_affinity *a = &c->canaries[0].affinity;
	assert_string_equal(a->cookie_name, "flagger-cookie");
	assert_int_equal(a->max_age, 86400);   /* Flagger's default */
	assert_null(a->primary_cookie_name);
	cfg_free(c);

	c = load_ok(BUILTIN "    sessionAffinity: {cookieName: c, maxAge: 0, domain: example.com,"
	            " path: /app, sameSite: Lax, httpOnly: true, secure: true, partitioned: true,"
	            " primaryCookieName: p}\n");
	a = &c->canaries[0].affinity;
	assert_int_equal(a->max_age, 86400);   /* 0 is the default, as GetMaxAge */
	assert_string_equal(a->domain, "example.com");
	assert_string_equal(a->path, "/app");
	assert_string_equal(a->same_site, "Lax");
	assert_true(a->http_only && a->secure && a->partitioned);
	assert_string_equal(a->primary_cookie_name, "p");
	cfg_free(c);

	expect(BUILTIN "    sessionAffinity: {maxAge: 60}\n",
	       "c.yaml:11:5: spec.analysis.sessionAffinity.cookieName: required (the cookie that "
	       "keeps a client on the canary)");
	expect(BUILTIN "    sessionAffinity: {cookieName: \"a;b\"}\n",
	       "c.yaml:11:35: spec.analysis.sessionAffinity.cookieName: must be a cookie name (1 "
	       "to 127 letters, digits and !#$%&'*+-.^_`|~), got 'a;b'");
	expect(BUILTIN "    sessionAffinity: {cookieName: a, primaryCookieName: a}\n",
	       "c.yaml:11:5: spec.analysis.sessionAffinity.primaryCookieName: must differ from "
	       "cookieName ('a')");
	expect(BUILTIN "    sessionAffinity: {cookieName: a, sameSite: lax}\n",
	       "c.yaml:11:48: spec.analysis.sessionAffinity.sameSite: must be one of Strict, Lax, "
	       "None, got 'lax'");
	expect(BUILTIN "    sessionAffinity: {cookieName: a, path: \"/a; Secure\"}\n",
	       "c.yaml:11:44: spec.analysis.sessionAffinity.path: must be 1 to 128 characters "
	       "without ';' or spaces, got '/a; Secure'");
	expect(BUILTIN "    sessionAffinity: {cookieName: a, maxAge: -1}\n",
	       "c.yaml:11:46: spec.analysis.sessionAffinity.maxAge: must be an integer >= 0, got '-1'");
}

static void test_haproxy_refuses_both(void **state)
{
	expect(HAPROXY "    match:\n      - headers:\n          x-a: {exact: b}\n",
	       "c.yaml:11:5: spec.analysis.match: router haproxy cannot route by header, cookie or "
	       "query parameter (canaryd sets server weights only); use router builtin, istio or "
	       "gatewayapi");
	expect(HAPROXY "    sessionAffinity: {cookieName: a}\n",
	       "c.yaml:11:5: spec.analysis.sessionAffinity: router haproxy cannot pin a client by "
	       "cookie (canaryd sets server weights only); use router builtin, istio or gatewayapi");
}

/* Istio's regexes are RE2 and its matches may have sourceLabels: a mesh
 * router's document is not judged by what the built-in proxy can do */
static void test_mesh_documents_are_left_to_their_router(void **state)
{
	cfg *c = load_ok("apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: pod}\n"
	                 "spec:\n  provider: istio\n  analysis:\n    interval: 1m\n"
	                 "    iterations: 10\n    match:\n"
	                 "      - headers:\n          user-agent: {regex: \"(?i).*firefox.*\"}\n"
	                 "      - sourceLabels: {app: web}\n"
	                 "      - queryParams: {q: {}}\n"
	                 "    sessionAffinity: {cookieName: c}\n");
	assert_null(c->canaries[0].match);
	assert_string_equal(c->canaries[0].affinity.cookie_name, "c");
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_builtin_compiles_match),
		cmocka_unit_test(test_match_mistakes),
		cmocka_unit_test(test_affinity),
		cmocka_unit_test(test_haproxy_refuses_both),
		cmocka_unit_test(test_mesh_documents_are_left_to_their_router),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
