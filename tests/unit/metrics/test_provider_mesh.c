/* test_provider_mesh.c - the mesh provider: which of Flagger's queries a
 * canary gets, the query text equal to what Flagger v1.44.0 sends byte for
 * byte (Flagger's own tests' expected strings, and Flagger's example
 * Canaries in tests/data/mesh-metrics/), and the checks that keep a mesh
 * canary that cannot be measured from starting. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "provider.h"

static cfg *load(const char *yaml)
{
	cfg *c = NULL;
	cfg_errors e = { NULL, 0, 0 };
	if (cfg_load_string("t.yaml", yaml, strlen(yaml), &c, &e) < 0) {
		for (size_t i = 0; i < e.n; i++)
			print_message("%s\n", e.msg[i]);
		fail();
	}
	cfg_errors_release(&e);
	return c;
}

/* A Flagger Canary with <provider> ("" for none), in <ns> (NULL: none), of
 * a target of kind <kind>, with the two built-in metrics and error-rate. */
static cfg *flagger_canary(const char *provider, const char *ns, const char *kind)
{
	char y[2048];
	snprintf(y, sizeof y,
	         "apiVersion: flagger.app/v1beta1\n"
	         "kind: Canary\n"
	         "metadata:\n"
	         "  name: podinfo\n"
	         "%s%s%s"
	         "spec:\n"
	         "%s%s%s"
	         "  targetRef:\n"
	         "    apiVersion: apps/v1\n"
	         "    kind: %s\n"
	         "    name: podinfo\n"
	         "  service:\n"
	         "    port: 9898\n"
	         "  analysis:\n"
	         "    interval: 15s\n"
	         "    threshold: 5\n"
	         "    stepWeight: 10\n"
	         "    metrics:\n"
	         "    - name: request-success-rate\n"
	         "      thresholdRange: {min: 99}\n"
	         "      interval: 1m\n"
	         "    - name: request-duration\n"
	         "      thresholdRange: {max: 500}\n"
	         "      interval: 1m\n"
	         "    - name: error-rate\n"
	         "      thresholdRange: {max: 1}\n"
	         "      interval: 1m\n",
	         ns ? "  namespace: " : "", ns ? ns : "", ns ? "\n" : "",
	         *provider ? "  provider: " : "", provider, *provider ? "\n" : "", kind);
	return load(y);
}

static void assert_query(const cfg_canary *cc, eng_metric_kind kind, int stable,
                         const char *interval, const char *want)
{
	buf b = BUF_INIT;
	char err[256] = "";
	int rc = mesh_query(cc, kind, stable, interval, &b, err, sizeof err);
	if (rc < 0)
		print_message("refused: %s\n", err);
	assert_int_equal(rc, 0);
	if (strcmp(b.p, want) != 0)
		print_message("got  '%s'\nwant '%s'\n", b.p, want);
	assert_string_equal(b.p, want);
	buf_release(&b);
}

/* Flagger's own tests (pkg/metrics/observers/<name>_test.go, v1.44.0)
 * assert the query their Prometheus receives for podinfo in namespace
 * default over 1m: these strings are copied from them. */
static const char istio_sr[] = " sum( rate( istio_requests_total{ reporter=\"destination\", destination_workload_namespace=\"default\", destination_workload=~\"podinfo\", response_code!~\"5.*\" }[1m] ) ) / sum( rate( istio_requests_total{ reporter=\"destination\", destination_workload_namespace=\"default\", destination_workload=~\"podinfo\" }[1m] ) ) * 100";
static const char istio_du[] = " histogram_quantile( 0.99, sum( rate( istio_request_duration_milliseconds_bucket{ reporter=\"destination\", destination_workload_namespace=\"default\", destination_workload=~\"podinfo\" }[1m] ) ) by (le) )";
static const char linkerd_sr[] = " sum( rate( response_total{ namespace=\"default\", deployment=~\"podinfo\", classification!=\"failure\", direction=\"inbound\" }[1m] ) ) / sum( rate( response_total{ namespace=\"default\", deployment=~\"podinfo\", direction=\"inbound\" }[1m] ) ) * 100";
static const char linkerd_du[] = " histogram_quantile( 0.99, sum( rate( response_latency_ms_bucket{ namespace=\"default\", deployment=~\"podinfo\", direction=\"inbound\" }[1m] ) ) by (le) )";
static const char osm_sr[] = " sum( rate( osm_request_total{ destination_namespace=\"default\", destination_kind=\"Deployment\", destination_name=\"podinfo\", response_code!~\"5.*\" }[1m] ) ) / sum( rate( osm_request_total{ destination_namespace=\"default\", destination_kind=\"Deployment\", destination_name=\"podinfo\" }[1m] ) ) * 100";
static const char osm_du[] = " histogram_quantile( 0.99, sum( rate( osm_request_duration_ms_bucket{ destination_namespace=\"default\", destination_kind=\"Deployment\", destination_name=\"podinfo\" }[1m] ) ) by (le) )";
static const char http_sr[] = " sum( rate( http_request_duration_seconds_count{ kubernetes_namespace=\"default\", kubernetes_pod_name=~\"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\", status!~\"5.*\" }[1m] ) ) / sum( rate( http_request_duration_seconds_count{ kubernetes_namespace=\"default\", kubernetes_pod_name=~\"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\" }[1m] ) ) * 100";
static const char http_du[] = " histogram_quantile( 0.99, sum( rate( http_request_duration_seconds_bucket{ kubernetes_namespace=\"default\", kubernetes_pod_name=~\"podinfo-[0-9a-zA-Z]+(-[0-9a-zA-Z]+)\" }[1m] ) ) by (le) )";

/* Each provider gets its observer's queries, equal to Flagger's. */
static void test_queries_equal_flaggers(void **state)
{
	static const struct {
		const char *provider, *sr, *du, *observer;
	} rows[] = {
		{ "istio", istio_sr, istio_du, "istio" },
		{ "", istio_sr, istio_du, "istio" },          /* Flagger's default */
		{ "linkerd", linkerd_sr, linkerd_du, "linkerd" },
		{ "osm", osm_sr, osm_du, "osm" },
		{ "gatewayapi:v1", http_sr, http_du, "http" },
		{ "gatewayapi:v1beta1", http_sr, http_du, "http" },
		{ "kubernetes", http_sr, http_du, "http" },
		{ "smi:v1alpha1:linkerd", linkerd_sr, linkerd_du, "linkerd" },
		{ "smi:v1alpha2:osm", osm_sr, osm_du, "osm" },
		{ "smi:v1alpha3:istio", istio_sr, istio_du, "istio" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		cfg *c = flagger_canary(rows[i].provider, "default", "Deployment");
		const cfg_canary *cc = &c->canaries[0];
		print_message("provider '%s'\n", rows[i].provider);
		assert_ptr_equal(provider_of(cc, 0), &provider_mesh);
		assert_ptr_equal(provider_of(cc, 1), &provider_mesh);
		assert_ptr_equal(provider_of(cc, 2), &provider_mesh);
		assert_query(cc, ENG_M_SUCCESS_RATE, 0, "1m", rows[i].sr);
		assert_query(cc, ENG_M_DURATION, 0, "1m", rows[i].du);
		/* error-rate: the complement of the same query, Prometheus's sum */
		char want[1024];
		snprintf(want, sizeof want, "100 - (%s)", rows[i].sr);
		assert_query(cc, ENG_M_ERROR_RATE, 0, "1m", want);
		char err[128];
		const mesh_observer *ob = mesh_observer_for(rows[i].provider[0] ? rows[i].provider :
		                                            "istio", 0, err, sizeof err);
		assert_non_null(ob);
		assert_string_equal(ob->name, rows[i].observer);
		cfg_free(c);
	}
}

/* Flagger's example Canaries as they are (tests/data/mesh-metrics/): in
 * namespace test, request-success-rate over 1m and request-duration over
 * 30s. */
static void test_example_canaries(void **state)
{
	static const struct {
		const char *file, *sr, *du;
	} rows[] = {
		{ "tests/data/mesh-metrics/istio-canary.yaml",
		  " sum( rate( istio_requests_total{ reporter=\"destination\", destination_workload_namespace=\"test\", destination_workload=~\"podinfo\", response_code!~\"5.*\" }[1m] ) ) / sum( rate( istio_requests_total{ reporter=\"destination\", destination_workload_namespace=\"test\", destination_workload=~\"podinfo\" }[1m] ) ) * 100",
		  " histogram_quantile( 0.99, sum( rate( istio_request_duration_milliseconds_bucket{ reporter=\"destination\", destination_workload_namespace=\"test\", destination_workload=~\"podinfo\" }[30s] ) ) by (le) )" },
		{ "tests/data/mesh-metrics/linkerd-canary.yaml",
		  " sum( rate( response_total{ namespace=\"test\", deployment=~\"podinfo\", classification!=\"failure\", direction=\"inbound\" }[1m] ) ) / sum( rate( response_total{ namespace=\"test\", deployment=~\"podinfo\", direction=\"inbound\" }[1m] ) ) * 100",
		  " histogram_quantile( 0.99, sum( rate( response_latency_ms_bucket{ namespace=\"test\", deployment=~\"podinfo\", direction=\"inbound\" }[30s] ) ) by (le) )" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		cfg *c = NULL;
		cfg_errors e = { NULL, 0, 0 };
		assert_int_equal(cfg_load(rows[i].file, &c, &e), 0);
		const cfg_canary *cc = &c->canaries[0];
		assert_int_equal(cc->policy.n_metrics, 2);
		for (int m = 0; m < 2; m++) {
			/* the interval as the controller gives it: the metric's window */
			char iv[32];
			util_format_duration(cc->policy.metrics[m].window_ms, iv, sizeof iv);
			assert_ptr_equal(provider_of(cc, m), &provider_mesh);
			assert_query(cc, cc->policy.metrics[m].kind, 0, iv, m == 0 ? rows[i].sr : rows[i].du);
		}
		cfg_free(c);
	}
}

/* Stable's value (a relative threshold, a baseline) is the same query on
 * the primary workload, where Flagger runs the stable version. */
static void test_stable_is_the_primary(void **state)
{
	cfg *c = flagger_canary("istio", "shop", "Deployment");
	assert_query(&c->canaries[0], ENG_M_DURATION, 1, "1h",
	             " histogram_quantile( 0.99, sum( rate( istio_request_duration_milliseconds_bucket{ reporter=\"destination\", destination_workload_namespace=\"shop\", destination_workload=~\"podinfo-primary\" }[1h] ) ) by (le) )");
	cfg_free(c);
}

/* What Flagger does with a target of kind Service: ":service" is added
 * to the provider before the observer is chosen, so only the prefix-matched
 * providers (gatewayapi) keep theirs and the others read Istio's series.
 * A document without a namespace is in "default", as kubectl applies it. */
static void test_service_target_and_default_namespace(void **state)
{
	cfg *c = flagger_canary("linkerd", NULL, "Service");
	assert_query(&c->canaries[0], ENG_M_SUCCESS_RATE, 0, "1m", istio_sr);
	cfg_free(c);
	c = flagger_canary("gatewayapi:v1", NULL, "Service");
	assert_query(&c->canaries[0], ENG_M_DURATION, 0, "1m", http_du);
	cfg_free(c);
}

/* The units: request-duration in milliseconds, which the pods' own
 * histogram (http) has in seconds. */
static void test_observer_table(void **state)
{
	char err[256];
	assert_true(mesh_observer_for("istio", 0, err, sizeof err)->duration_to_ms == 1);
	assert_true(mesh_observer_for("linkerd", 0, err, sizeof err)->duration_to_ms == 1);
	assert_true(mesh_observer_for("osm", 0, err, sizeof err)->duration_to_ms == 1);
	assert_true(mesh_observer_for("gatewayapi:v1", 0, err, sizeof err)->duration_to_ms == 1000);
	/* unknown to Flagger: Istio's, as Flagger's factory */
	assert_string_equal(mesh_observer_for("something", 0, err, sizeof err)->name, "istio");
	/* providers whose queries canaryd does not have, and an SMI provider
	 * that names no mesh: refused, naming what to do */
	const char *refused[] = { "appmesh", "appmesh:v1beta2", "contour", "gloo:v1", "nginx",
	                          "skipper", "traefik", "kuma", "apisix", "knative", "smi",
	                          "smi:v1alpha2", "smi:v1alpha2:consul" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		err[0] = '\0';
		assert_null(mesh_observer_for(refused[i], 0, err, sizeof err));
		assert_non_null(strstr(err, refused[i]));
		assert_non_null(strstr(err, "query"));
	}
}

/* A mesh canary whose metrics cannot be read does not start: no
 * Prometheus, a bad spec.metricsServer, the sequential judge (it counts
 * canaryd's own proxy's requests), a target no query can name safely. */
static void test_check(void **state)
{
	char err[512];
	cfg *c = flagger_canary("istio", "test", "Deployment");
	cfg_canary *cc = &c->canaries[0];
	provider_set_metrics_server(NULL);
	assert_null(mesh_server(cc));
	assert_int_equal(provider_check(cc, err, sizeof err), -1);
	assert_string_equal(err, "canary 'podinfo': metric 'request-success-rate' is read from "
	                    "Prometheus with Flagger's istio query: start canaryd with "
	                    "--metrics-server URL (or set spec.metricsServer)");
	provider_set_metrics_server("http://127.0.0.1:9090");
	assert_string_equal(mesh_server(cc), "http://127.0.0.1:9090");
	assert_int_equal(provider_check(cc, err, sizeof err), 0);

	/* the canary's own spec.metricsServer wins, as in Flagger */
	json_object_set_new(json_object_get(cc->raw, "spec"), "metricsServer",
	                    json_string("https://prom.example:9090/prometheus"));
	assert_string_equal(mesh_server(cc), "https://prom.example:9090/prometheus");
	assert_int_equal(provider_check(cc, err, sizeof err), 0);
	const char *bad[] = { "prom:9090", "http://", "http:// x", "ftp://p" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		json_object_set_new(json_object_get(cc->raw, "spec"), "metricsServer",
		                    json_string(bad[i]));
		assert_int_equal(provider_check(cc, err, sizeof err), -1);
		assert_non_null(strstr(err, "spec.metricsServer must be an http:// or https:// URL"));
	}
	json_object_del(json_object_get(cc->raw, "spec"), "metricsServer");

	cc->policy.judge = ENG_JUDGE_SEQUENTIAL;
	assert_int_equal(provider_check(cc, err, sizeof err), -1);
	assert_non_null(strstr(err, "sequential judge"));
	cc->policy.judge = ENG_JUDGE_THRESHOLD;

	json_object_set_new(json_object_get(json_object_get(cc->raw, "spec"), "targetRef"), "name",
	                    json_string("x\"} or vector(1"));
	assert_int_equal(provider_check(cc, err, sizeof err), -1);
	assert_non_null(strstr(err, "unsafe value for {{ target }}"));

	/* a target longer than any buffer is named whole */
	char longname[240];
	memset(longname, 'a', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	json_object_set_new(json_object_get(json_object_get(cc->raw, "spec"), "targetRef"), "name",
	                    json_string(longname));
	assert_int_equal(provider_check(cc, err, sizeof err), 0);
	buf b = BUF_INIT;
	assert_int_equal(mesh_query(cc, ENG_M_SUCCESS_RATE, 1, "1m", &b, err, sizeof err), 0);
	char sel[300];
	snprintf(sel, sizeof sel, "destination_workload=~\"%s-primary\"", longname);
	assert_non_null(strstr(b.p, sel));
	buf_release(&b);
	/* an empty spec.metricsServer is unset, as in Flagger */
	json_object_set_new(json_object_get(cc->raw, "spec"), "metricsServer", json_string(""));
	assert_string_equal(mesh_server(cc), "http://127.0.0.1:9090");
	assert_int_equal(provider_check(cc, err, sizeof err), 0);
	cfg_free(c);

	/* what the query needs is said before where to send it: a canaryd
	 * router smi names no mesh, whatever the Prometheus */
	provider_set_metrics_server(NULL);
	c = load("apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: web}\n"
	         "spec:\n  router: smi\n  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n"
	         "  analysis:\n    interval: 1s\n    stepWeight: 10\n    metrics:\n"
	         "    - name: request-duration\n      thresholdRange: {max: 500}\n");
	assert_ptr_equal(provider_of(&c->canaries[0], 0), &provider_mesh);
	assert_int_equal(provider_check(&c->canaries[0], err, sizeof err), -1);
	assert_string_equal(err, "canary 'web': metric 'request-duration': provider 'smi' does not "
	                    "say which mesh's metrics to read: use smi:VERSION:linkerd, "
	                    "smi:VERSION:osm or smi:VERSION:istio (or provider linkerd or osm), or "
	                    "give the metric a query");
	cfg_free(c);
	provider_set_metrics_server("http://127.0.0.1:9090");

	c = flagger_canary("contour", "test", "Deployment");
	assert_int_equal(provider_check(&c->canaries[0], err, sizeof err), -1);
	assert_non_null(strstr(err, "no Flagger queries for provider 'contour'"));
	cfg_free(c);
	provider_set_metrics_server(NULL);
}

/* The builtin router's canary keeps reading its own proxy's stats: no
 * Prometheus needed. */
static void test_builtin_canary_needs_no_prometheus(void **state)
{
	cfg *c = load("apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: web}\n"
	              "spec:\n  listen: 127.0.0.1:8080\n  stable: {revision: v1, endpoints: "
	              "[127.0.0.1:9001]}\n  analysis:\n    interval: 1s\n    stepWeight: 10\n"
	              "    metrics:\n    - name: request-success-rate\n      thresholdRange: "
	              "{min: 99}\n");
	char err[256];
	provider_set_metrics_server(NULL);
	assert_ptr_equal(provider_of(&c->canaries[0], 0), &provider_builtin);
	assert_int_equal(provider_check(&c->canaries[0], err, sizeof err), 0);
	cfg_free(c);
}

static void test_url_rules(void **state)
{
	assert_true(provider_url_ok("http://127.0.0.1:9090"));
	assert_true(provider_url_ok("https://prometheus.monitoring:9090/prom/"));
	assert_false(provider_url_ok("127.0.0.1:9090"));
	assert_false(provider_url_ok("http:///x"));
	assert_false(provider_url_ok("http://a b"));
	assert_false(provider_url_ok("http://a\nb"));
	char *big = calloc(1, 3000);
	memcpy(big, "http://", 7);
	memset(big + 7, 'a', 2900);
	assert_false(provider_url_ok(big));
	free(big);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_queries_equal_flaggers),
		cmocka_unit_test(test_example_canaries),
		cmocka_unit_test(test_stable_is_the_primary),
		cmocka_unit_test(test_service_target_and_default_namespace),
		cmocka_unit_test(test_observer_table),
		cmocka_unit_test(test_check),
		cmocka_unit_test(test_builtin_canary_needs_no_prometheus),
		cmocka_unit_test(test_url_rules),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
