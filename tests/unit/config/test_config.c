/* test_config.c - the YAML configuration loader: native and Flagger
 * documents, defaults, and every error with its position. Run from the repo
 * root (the Flagger examples are read from ../shared, or $CANARYD_SHARED). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

/* ---- helpers ---- */

static int load(const char *text, cfg **out, cfg_errors *e)
{
	return cfg_load_string("c.yaml", text, strlen(text), out, e);
}

static void dump(const cfg_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		print_message("  error: %s\n", e->msg[i]);
}

/* Asserts that some message starts with <where> ("c.yaml:12:18: ") and
 * contains <what>. */
static void assert_error(const cfg_errors *e, const char *where, const char *what)
{
	for (size_t i = 0; i < e->n; i++)
		if (!strncmp(e->msg[i], where, strlen(where)) && strstr(e->msg[i], what))
			return;
	print_message("no error '%s...%s' among %zu:\n", where, what, e->n);
	dump(e);
	fail();
}

/* Loads <text>, which must fail; returns the errors (release them). */
static cfg_errors must_fail(const char *text)
{
	cfg_errors e = { 0 };
	cfg *c = (cfg *)1;
	assert_int_equal(load(text, &c, &e), -1);
	assert_null(c);
	assert_true(e.n > 0);
	return e;
}

/* Loads <text>, which must succeed. */
static cfg *must_load(const char *text)
{
	cfg_errors e = { 0 };
	cfg *c = NULL;
	int rc = load(text, &c, &e);
	if (rc != 0)
		dump(&e);
	assert_int_equal(rc, 0);
	assert_int_equal(e.n, 0);
	assert_non_null(c);
	cfg_errors_release(&e);
	return c;
}

static const char *shared_dir(void)
{
	const char *s = getenv("CANARYD_SHARED");
	return s && *s ? s : "../shared";
}

static cfg *load_flagger(const char *file, cfg_errors *e, int *rc)
{
	char path[1024];
	snprintf(path, sizeof path, "%s/data/flagger/%s", shared_dir(), file);
	cfg *c = NULL;
	*rc = cfg_load(path, &c, e);
	return c;
}

#define HEAD "apiVersion: canaryd/v1\nkind: Canary\nmetadata:\n  name: web\n"

/* A minimal valid native document; analysis lines can follow. */
#define MINIMAL HEAD \
	"spec:\n" \
	"  listen: 127.0.0.1:8080\n" \
	"  stable:\n" \
	"    revision: v1\n" \
	"    endpoints: [127.0.0.1:9001]\n" \
	"  analysis:\n"

/* A Flagger document in as many lines as MINIMAL, whose key "extra"
 * (Kubernetes would prune it) is read as YAML and kept in <raw> but not
 * checked: it can hold any shape, for the tests of YAML's bounds and
 * types. */
#define FLAGGER_MINIMAL "apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata:\n" \
	"  name: web\n" \
	"spec:\n" \
	"  provider: istio\n" \
	"  targetRef:\n" \
	"    kind: Deployment\n" \
	"    name: web\n" \
	"  analysis:\n"

/* ---- valid documents ---- */

static void test_minimal_document_gets_flagger_defaults(void **state)
{
	cfg *c = must_load(MINIMAL "    stepWeight: 10\n");
	assert_int_equal(c->n_canaries, 1);
	const cfg_canary *k = &c->canaries[0];
	assert_string_equal(k->name, "web");
	assert_false(k->flagger);
	assert_string_equal(k->router, "builtin");
	assert_string_equal(k->listen, "127.0.0.1:8080");
	assert_string_equal(k->stable_rev, "v1");
	assert_int_equal(k->n_stable_eps, 1);
	assert_string_equal(k->stable_eps[0], "127.0.0.1:9001");
	assert_null(k->canary_rev);
	assert_int_equal(k->n_canary_eps, 0);
	assert_null(k->namespace_);
	assert_int_equal(k->policy.interval_ms, 60000);
	assert_int_equal(k->policy.threshold, 1);
	assert_int_equal(k->policy.max_weight, 100);
	assert_int_equal(k->policy.step_weight, 10);
	assert_int_equal(k->policy.n_step_weights, 0);
	assert_int_equal(k->policy.iterations, 0);
	assert_int_equal(k->policy.progress_deadline_ms, 600000);
	assert_int_equal(k->policy.n_metrics, 0);
	assert_int_equal(k->n_webhooks, 0);
	assert_int_equal(k->proxy.timeouts.connect_ms, 5000);
	assert_int_equal(k->proxy.timeouts.response_ms, 30000);
	assert_int_equal(k->proxy.timeouts.client_head_ms, 10000);
	assert_int_equal(k->proxy.timeouts.client_idle_ms, 60000);
	assert_int_equal(k->proxy.workers, 1);
	assert_int_equal(k->proxy.max_connections, 10000);
	assert_int_equal(k->proxy.outlier_errors, 5);
	assert_int_equal(k->proxy.outlier_ejection_ms, 30000);
	assert_int_equal(k->line, 1);
	assert_true(json_is_object(k->raw));
	assert_ptr_equal(cfg_find(c, "web"), k);
	assert_null(cfg_find(c, "nope"));
	cfg_free(c);
}

static const char full_doc[] =
	"apiVersion: canaryd/v1\n"
	"kind: Canary\n"
	"metadata:\n"
	"  name: podinfo\n"
	"  namespace: shop\n"
	"  labels: {team: web}\n"
	"  annotations: {note: \"hi\"}\n"
	"spec:\n"
	"  router: builtin\n"
	"  listen: \"[::1]:8080\"\n"
	"  stable:\n"
	"    revision: v1\n"
	"    endpoints: [127.0.0.1:9001, 127.0.0.1:9003]\n"
	"  canary:\n"
	"    revision: v2\n"
	"    endpoints: [127.0.0.1:9002]\n"
	"  progressDeadlineSeconds: 60\n"
	"  timeouts:\n"
	"    connect: 1s\n"
	"    response: 2500ms\n"
	"    clientHead: 3s\n"
	"    clientIdle: 1m\n"
	"  analysis:\n"
	"    interval: 1s\n"
	"    threshold: 5\n"
	"    maxWeight: 50\n"
	"    stepWeight: 10\n"
	"    mirror: false\n"
	"    stepWeightPromotion: 100\n"
	"    metrics:\n"
	"      - name: request-success-rate\n"
	"        thresholdRange: { min: 99 }\n"
	"        interval: 1m\n"
	"      - name: request-duration\n"
	"        thresholdRange: { max: 500 }\n"
	"        interval: 30s\n"
	"      - name: error-rate\n"
	"        thresholdRange: { min: 0, max: 1.5 }\n"
	"    webhooks:\n"
	"      - name: load-test\n"
	"        type: rollout\n"
	"        url: http://127.0.0.1:9999/load\n"
	"        timeout: 5s\n"
	"        metadata: {cmd: \"hey -z 1m\", retries: 3}\n"
	"      - name: tell\n"
	"        url: https://127.0.0.1:9998/\n";

static void test_full_document_reads_every_field(void **state)
{
	cfg *c = must_load(full_doc);
	const cfg_canary *k = cfg_find(c, "podinfo");
	assert_non_null(k);
	assert_string_equal(k->namespace_, "shop");
	assert_string_equal(k->listen, "[::1]:8080");
	assert_int_equal(k->n_stable_eps, 2);
	assert_string_equal(k->stable_eps[1], "127.0.0.1:9003");
	assert_string_equal(k->canary_rev, "v2");
	assert_int_equal(k->n_canary_eps, 1);
	assert_string_equal(k->canary_eps[0], "127.0.0.1:9002");
	assert_int_equal(k->policy.progress_deadline_ms, 60000);
	assert_int_equal(k->proxy.timeouts.connect_ms, 1000);
	assert_int_equal(k->proxy.timeouts.response_ms, 2500);
	assert_int_equal(k->proxy.timeouts.client_head_ms, 3000);
	assert_int_equal(k->proxy.timeouts.client_idle_ms, 60000);
	const eng_policy *p = &k->policy;
	assert_int_equal(p->interval_ms, 1000);
	assert_int_equal(p->threshold, 5);
	assert_int_equal(p->max_weight, 50);
	assert_int_equal(p->step_weight, 10);
	assert_int_equal(p->n_metrics, 3);
	assert_string_equal(p->metrics[0].name, "request-success-rate");
	assert_int_equal(p->metrics[0].kind, ENG_M_SUCCESS_RATE);
	assert_true(p->metrics[0].has_min);
	assert_false(p->metrics[0].has_max);
	assert_true(p->metrics[0].min == 99.0);
	assert_int_equal(p->metrics[0].window_ms, 60000);
	assert_int_equal(p->metrics[1].kind, ENG_M_DURATION);
	assert_true(p->metrics[1].has_max);
	assert_false(p->metrics[1].has_min);
	assert_true(p->metrics[1].max == 500.0);
	assert_int_equal(p->metrics[1].window_ms, 30000);
	assert_int_equal(p->metrics[2].kind, ENG_M_ERROR_RATE);
	assert_true(p->metrics[2].has_min && p->metrics[2].has_max);
	assert_true(p->metrics[2].max == 1.5);
	assert_int_equal(p->metrics[2].window_ms, 60000); /* default 1m */
	assert_int_equal(k->n_webhooks, 2);
	assert_string_equal(k->webhooks[0].name, "load-test");
	assert_string_equal(k->webhooks[0].type, "rollout");
	assert_string_equal(k->webhooks[0].url, "http://127.0.0.1:9999/load");
	assert_int_equal(k->webhooks[0].timeout_ms, 5000);
	assert_string_equal(json_string_value(json_object_get(k->webhooks[0].metadata, "cmd")),
	                    "hey -z 1m");
	/* metadata values are strings, even when written as numbers */
	assert_string_equal(json_string_value(json_object_get(k->webhooks[0].metadata, "retries")),
	                    "3");
	assert_string_equal(k->webhooks[1].type, "rollout"); /* Flagger's default */
	assert_int_equal(k->webhooks[1].timeout_ms, 10000); /* Flagger's CallWebhook */
	assert_null(k->webhooks[1].metadata);
	cfg_free(c);
}

static void test_step_weights_make_the_last_step_the_max_weight(void **state)
{
	cfg *c = must_load(MINIMAL "    maxWeight: 90\n    stepWeights: [1, 5, 10, 30]\n");
	const eng_policy *p = &c->canaries[0].policy;
	assert_int_equal(p->n_step_weights, 4);
	assert_int_equal(p->step_weights[0], 1);
	assert_int_equal(p->step_weights[3], 30);
	assert_int_equal(p->step_weight, 0);
	assert_int_equal(p->max_weight, 30); /* as in Flagger */
	cfg_free(c);
}

static void test_multiple_documents_and_empty_ones(void **state)
{
	const char *text =
		"---\n"
		"---\n"
		"apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: a}\n"
		"spec:\n  listen: 127.0.0.1:8081\n"
		"  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n"
		"  analysis: {iterations: 3}\n"
		"---\n"
		"# only a comment\n"
		"---\n"
		"apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: b}\n"
		"spec:\n  router: istio\n"
		"  stable: {revision: v1, endpoints: [127.0.0.1:9002]}\n"
		"  analysis: {stepWeight: 20}\n";
	cfg *c = must_load(text);
	assert_int_equal(c->n_canaries, 2);
	assert_string_equal(c->canaries[0].name, "a");
	assert_int_equal(c->canaries[0].line, 2); /* its "---" */
	assert_int_equal(c->canaries[0].policy.iterations, 3);
	assert_string_equal(c->canaries[1].name, "b");
	assert_int_equal(c->canaries[1].line, 12);
	assert_string_equal(c->canaries[1].router, "istio");
	assert_null(c->canaries[1].listen); /* only the builtin router needs one */
	assert_string_equal(c->path, "c.yaml");
	cfg_free(c);
}

static void test_raw_keeps_the_document_as_json_with_yaml_types(void **state)
{
	cfg *c = must_load(FLAGGER_MINIMAL "    stepWeight: 10\n"
	                   "    extra:\n      - headers: {x: {exact: \"1\"}, n: 2, f: 1.5, b: true,"
	                   " s: \"true\", z: ~}\n");
	json_t *raw = c->canaries[0].raw;
	json_t *an = json_object_get(json_object_get(raw, "spec"), "analysis");
	assert_true(json_is_integer(json_object_get(an, "stepWeight")));
	assert_int_equal(json_integer_value(json_object_get(an, "stepWeight")), 10);
	json_t *h = json_object_get(json_array_get(json_object_get(an, "extra"), 0), "headers");
	assert_string_equal(json_string_value(json_object_get(json_object_get(h, "x"), "exact")), "1");
	assert_true(json_is_integer(json_object_get(h, "n")));
	assert_true(json_is_real(json_object_get(h, "f")));
	assert_true(json_is_true(json_object_get(h, "b")));
	assert_true(json_is_string(json_object_get(h, "s")));
	assert_true(json_is_null(json_object_get(h, "z")));
	assert_string_equal(json_string_value(json_object_get(raw, "apiVersion")),
	                    "flagger.app/v1beta1");
	cfg_free(c);
}

static void test_legacy_threshold_is_min_for_success_rate_max_otherwise(void **state)
{
	cfg *c = must_load(MINIMAL "    stepWeight: 10\n    metrics:\n"
	                   "      - {name: request-success-rate, threshold: 99}\n"
	                   "      - {name: request-duration, threshold: 500}\n"
	                   "      - {name: error-rate, threshold: 2}\n");
	const eng_policy *p = &c->canaries[0].policy;
	assert_int_equal(p->n_metrics, 3);
	assert_true(p->metrics[0].has_min && !p->metrics[0].has_max && p->metrics[0].min == 99);
	assert_true(p->metrics[1].has_max && !p->metrics[1].has_min && p->metrics[1].max == 500);
	assert_true(p->metrics[2].has_max && !p->metrics[2].has_min && p->metrics[2].max == 2);
	cfg_free(c);
}

/* ---- errors, each with its position ---- */

static void test_unknown_field_suggests_the_nearest_key(void **state)
{
	cfg_errors e = must_fail(HEAD "spec:\n  stabel:\n    revision: v1\n"
	                         "  listen: 127.0.0.1:8080\n  analysis: {stepWeight: 5}\n");
	assert_error(&e, "c.yaml:6:3: ", "spec.stabel: unknown field; did you mean 'stable'?");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepweight: 5\n");
	assert_error(&e, "c.yaml:11:5: ", "spec.analysis.stepweight: unknown field; did you "
	             "mean 'stepWeight'?");
	cfg_errors_release(&e);
}

static void test_unknown_field_far_from_any_lists_known_fields(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    colour: blue\n");
	assert_error(&e, "c.yaml:12:5: ", "spec.analysis.colour: unknown field; known fields "
	             "here: interval, threshold, maxWeight");
	cfg_errors_release(&e);
}

static void test_bad_integer_names_field_range_and_value(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: ten\n    threshold: 0\n"
	                         "    maxWeight: \"50\"\n");
	assert_error(&e, "c.yaml:11:17: ", "spec.analysis.stepWeight: must be an integer from 1 "
	             "to 100, got 'ten'");
	assert_error(&e, "c.yaml:12:16: ", "spec.analysis.threshold: must be an integer >= 1, "
	             "got '0'");
	assert_error(&e, "c.yaml:13:16: ", "spec.analysis.maxWeight: must be an integer from 1 to "
	             "100, got the string '50'");
	assert_int_equal(e.n, 3);
	cfg_errors_release(&e);
}

static void test_proxy_settings_are_read_and_checked(void **state)
{
	cfg *c = must_load(MINIMAL "    stepWeight: 10\n"
	                   "  workers: 2\n"
	                   "  limits: {maxConnections: 500}\n"
	                   "  outlierDetection: {consecutiveErrors: 3, ejectionTime: 10s}\n");
	const cfg_canary *k = &c->canaries[0];
	assert_int_equal(k->proxy.workers, 2);
	assert_int_equal(k->proxy.max_connections, 500);
	assert_int_equal(k->proxy.outlier_errors, 3);
	assert_int_equal(k->proxy.outlier_ejection_ms, 10000);
	cfg_free(c);
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 10\n"
	                         "  workers: 0\n"
	                         "  limits: {maxConnection: 5}\n");
	assert_error(&e, "c.yaml:", "spec.workers");
	assert_error(&e, "c.yaml:", "maxConnection");
	assert_int_equal(e.n, 2);
	cfg_errors_release(&e);
}

static void test_bad_durations(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    interval: 1 minute\n"
	                         "    metrics:\n      - name: error-rate\n"
	                         "        thresholdRange: {max: 5}\n        interval: 1h\n"
	                         "  timeouts: {connect: 50}\n");
	assert_error(&e, "c.yaml:12:15: ", "spec.analysis.interval: must be a duration from "
	             "100ms to 24h");
	assert_error(&e, "c.yaml:12:15: ", "got '1 minute'");
	assert_error(&e, "c.yaml:16:19: ", "spec.analysis.metrics[0].interval: must be a "
	             "duration from 1s to 30m");
	assert_error(&e, "c.yaml:17:23: ", "spec.timeouts.connect: must be a duration");
	assert_int_equal(e.n, 3);
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n    interval: 50ms\n");
	assert_error(&e, "c.yaml:12:15: ", "got '50ms'");
	cfg_errors_release(&e);
}

static void test_every_error_in_a_file_is_reported(void **state)
{
	cfg_errors e = must_fail(
		"apiVersion: canaryd/v1\n"
		"kind: Canary\n"
		"metadata:\n"
		"  name: web\n"
		"spec:\n"
		"  router: builtin\n"
		"  listen: 127.0.0.1:8080\n"
		"  stabel:\n"
		"    revision: v1\n"
		"  stable:\n"
		"    revision: v1\n"
		"    endpoints: [127.0.0.1:9001]\n"
		"  analysis:\n"
		"    interval: 1 minute\n"
		"    threshold: 5\n"
		"    stepWeight: 200\n"
		"    metrics:\n"
		"      - name: request-latency\n"
		"        thresholdRange: { min: 99 }\n");
	assert_error(&e, "c.yaml:8:3: ", "spec.stabel: unknown field; did you mean 'stable'?");
	assert_error(&e, "c.yaml:14:15: ", "spec.analysis.interval");
	assert_error(&e, "c.yaml:16:17: ", "spec.analysis.stepWeight: must be an integer from 1 "
	             "to 100, got '200'");
	assert_error(&e, "c.yaml:18:15: ", "spec.analysis.metrics[0].name: unknown metric "
	             "'request-latency'; built in: request-success-rate, request-duration, "
	             "error-rate");
	assert_int_equal(e.n, 4);
	cfg_errors_release(&e);
}

static void test_errors_come_in_file_order(void **state)
{
	/* the stepWeight/stepWeights clash is found after the whole analysis
	 * is read, but is listed by where it points */
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    stepWeights: [1, 2]\n"
	                         "    threshold: 0\n");
	assert_int_equal(e.n, 2);
	assert_non_null(strstr(e.msg[0], "c.yaml:12:5: "));
	assert_non_null(strstr(e.msg[1], "c.yaml:13:16: "));
	cfg_errors_release(&e);
}

static void test_template_ref_without_a_template_is_an_error(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    metrics:\n"
	                         "      - name: my-latency\n"
	                         "        templateRef: {name: latency}\n"
	                         "        thresholdRange: {max: 5}\n");
	assert_error(&e, "c.yaml:14:9: ", "spec.analysis.metrics[0].templateRef: no "
	             "MetricTemplate named 'latency' in this file; there are none");
	assert_int_equal(e.n, 1); /* not also "unknown metric" */
	cfg_errors_release(&e);
}

static void test_metric_thresholds_are_checked(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    metrics:\n"
	                         "      - name: request-success-rate\n"
	                         "        thresholdRange: {min: 101}\n"
	                         "      - name: error-rate\n"
	                         "        thresholdRange: {min: 5, max: 2}\n"
	                         "      - name: request-duration\n"
	                         "      - name: request-duration\n"
	                         "        thresholdRange: {}\n"
	                         "      - name: request-duration\n"
	                         "        threshold: 5\n"
	                         "        thresholdRange: {max: 5}\n");
	assert_error(&e, "c.yaml:14:31: ", "spec.analysis.metrics[0].thresholdRange.min: must be "
	             "a number from 0 to 100 (a percentage), got '101'");
	assert_error(&e, "c.yaml:16:9: ", "spec.analysis.metrics[1].thresholdRange: min (5) must "
	             "not be greater than max (2)");
	assert_error(&e, "c.yaml:17:9: ", "spec.analysis.metrics[2]: needs thresholdRange");
	assert_error(&e, "c.yaml:19:9: ", "spec.analysis.metrics[3].thresholdRange: needs min, "
	             "max or both");
	assert_error(&e, "c.yaml:21:9: ", "spec.analysis.metrics[4].threshold: cannot be used "
	             "with thresholdRange");
	assert_int_equal(e.n, 5);
	cfg_errors_release(&e);
}

static void test_step_weight_and_step_weights_together(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    stepWeights: [10, 20]\n");
	assert_error(&e, "c.yaml:12:5: ", "spec.analysis: stepWeight and stepWeights cannot be "
	             "used together");
	cfg_errors_release(&e);
}

static void test_analysis_needs_steps_or_iterations(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    threshold: 2\n");
	assert_error(&e, "c.yaml:10:3: ", "spec.analysis: one of steps, stepWeight, stepWeights or "
	             "iterations is required");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n    iterations: 4\n");
	assert_error(&e, "c.yaml:12:5: ", "spec.analysis.iterations: cannot be used with "
	             "stepWeight or stepWeights");
	cfg_errors_release(&e);
}

/* analysis.mirror: the share the built-in proxy copies, and Flagger's
 * blue/green as the only mode that mirrors */
static void test_mirror_share_and_its_mode(void **state)
{
	cfg *c = must_load(MINIMAL "    iterations: 5\n    mirror: true\n");
	assert_int_equal(c->canaries[0].mirror_weight, 100);
	cfg_free(c);
	c = must_load(MINIMAL "    iterations: 5\n    mirror: true\n    mirrorWeight: 25\n");
	assert_int_equal(c->canaries[0].mirror_weight, 25);
	cfg_free(c);
	c = must_load(MINIMAL "    iterations: 5\n    mirror: false\n");
	assert_int_equal(c->canaries[0].mirror_weight, 0);
	cfg_free(c);
	c = must_load(MINIMAL "    iterations: 5\n    mirror: true\n    maxWeight: 100\n");
	assert_int_equal(c->canaries[0].mirror_weight, 100);
	cfg_free(c);

	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    mirror: true\n");
	assert_error(&e, "c.yaml:12:5: ", "spec.analysis.mirror: needs spec.analysis.iterations "
	             "and no stepWeight or stepWeights");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeights: [5, 10]\n    mirror: true\n");
	assert_error(&e, "c.yaml:12:5: ", "spec.analysis.mirror: needs spec.analysis.iterations");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    iterations: 5\n    maxWeight: 30\n    mirror: true\n");
	assert_error(&e, "c.yaml:12:5: ", "spec.analysis.maxWeight: 30 would send 30% of the "
	             "requests to the canary");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    iterations: 5\n    mirror: true\n    mirrorWeight: 0\n");
	assert_error(&e, "c.yaml:13:19: ", "spec.analysis.mirrorWeight: must be 1 to 100");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    iterations: 5\n    mirrorWeight: 20\n");
	assert_error(&e, "c.yaml:12:5: ", "spec.analysis.mirrorWeight: needs "
	             "spec.analysis.mirror: true");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    iterations: 5\n    mirror: true\n    mirrorWeight: 101\n");
	assert_error(&e, "c.yaml:13:19: ", "spec.analysis.mirrorWeight: must be an integer");
	cfg_errors_release(&e);
	e = must_fail(HEAD "spec:\n  router: haproxy\n  haproxy: {runtimeAPI: 127.0.0.1:9999, "
	              "backend: b}\n  stable:\n    revision: v1\n    endpoints: [127.0.0.1:9001]\n"
	              "  analysis:\n    iterations: 5\n    mirror: true\n");
	assert_error(&e, "c.yaml:11:3: ", "spec.analysis.mirror: router haproxy does not mirror");
	cfg_errors_release(&e);
}

static void test_step_weights_must_ascend_within_bounds(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeights: [5, 5, 0, 150]\n");
	assert_error(&e, "c.yaml:11:22: ", "spec.analysis.stepWeights[1]: steps must be strictly "
	             "ascending");
	assert_error(&e, "c.yaml:11:25: ", "spec.analysis.stepWeights[2]: must be an integer "
	             "from 1 to 100, got '0'");
	assert_error(&e, "c.yaml:11:28: ", "spec.analysis.stepWeights[3]: must be an integer "
	             "from 1 to 100, got '150'");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeights: [1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,"
	              "20,21,22,23,24,25,26,27,28,29,30,31,32,33]\n");
	assert_error(&e, "c.yaml:11:18: ", "spec.analysis.stepWeights: at most 32 steps, got 33");
	cfg_errors_release(&e);
}

static void test_required_fields_are_reported_where_they_belong(void **state)
{
	cfg_errors e = must_fail("apiVersion: canaryd/v1\nkind: Canary\nmetadata:\n  namespace: x\n"
	                         "spec:\n  canary:\n    revision: v2\n");
	assert_error(&e, "c.yaml:3:1: ", "metadata.name: required");
	assert_error(&e, "c.yaml:5:1: ", "spec.analysis: required");
	assert_error(&e, "c.yaml:5:1: ", "spec.stable: required");
	assert_error(&e, "c.yaml:5:1: ", "spec.listen: required with router builtin");
	assert_error(&e, "c.yaml:6:3: ", "spec.canary.endpoints: required");
	assert_int_equal(e.n, 5);
	cfg_errors_release(&e);
	e = must_fail("apiVersion: canaryd/v1\nkind: Canary\n");
	assert_error(&e, "c.yaml:1:1: ", "metadata: required");
	assert_error(&e, "c.yaml:1:1: ", "spec: required");
	cfg_errors_release(&e);
}

static void test_names_revisions_and_endpoints_are_checked(void **state)
{
	cfg_errors e = must_fail(
		"apiVersion: canaryd/v1\nkind: Canary\nmetadata:\n  name: Web_1\n"
		"spec:\n  router: nginx\n  listen: localhost\n"
		"  stable: {revision: v1, endpoints: [127.0.0.1:9001, \"127.0.0.1:0\", "
		"127.0.0.1:9001]}\n"
		"  canary: {revision: v1, endpoints: []}\n"
		"  analysis: {stepWeight: 5}\n");
	assert_error(&e, "c.yaml:4:9: ", "metadata.name: must be 1 to 63 lower case letters, "
	             "digits or '-'");
	assert_error(&e, "c.yaml:6:11: ", "spec.router: must be one of builtin, haproxy, istio, "
	             "gatewayapi, smi, got 'nginx'");
	assert_error(&e, "c.yaml:7:11: ", "spec.listen: must be HOST:PORT");
	assert_error(&e, "c.yaml:8:54: ", "spec.stable.endpoints[1]: must be HOST:PORT");
	assert_error(&e, "c.yaml:8:69: ", "spec.stable.endpoints[2]: duplicate endpoint "
	             "'127.0.0.1:9001'");
	assert_error(&e, "c.yaml:9:37: ", "spec.canary.endpoints: must be a non-empty list");
	assert_error(&e, "c.yaml:9:22: ", "spec.canary.revision: must differ from "
	             "spec.stable.revision ('v1')");
	assert_int_equal(e.n, 7);
	cfg_errors_release(&e);
}

static void test_webhooks_are_checked(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    webhooks:\n"
	                         "      - name: a\n        type: pre-rollot\n"
	                         "        url: ftp://x\n"
	                         "      - type: rollback\n"
	                         "      - {name: b, url: \"http://\"}\n");
	assert_error(&e, "c.yaml:14:15: ", "spec.analysis.webhooks[0].type: must be one of "
	             "pre-rollout, rollout, confirm-rollout");
	assert_error(&e, "c.yaml:15:14: ", "spec.analysis.webhooks[0].url: must be an http:// or "
	             "https:// URL, got 'ftp://x'");
	assert_error(&e, "c.yaml:16:9: ", "spec.analysis.webhooks[1].name: required");
	assert_error(&e, "c.yaml:16:9: ", "spec.analysis.webhooks[1].url: required");
	assert_error(&e, "c.yaml:17:24: ", "spec.analysis.webhooks[2].url: must be an http:// or "
	             "https:// URL, got 'http://'");
	assert_int_equal(e.n, 5);
	cfg_errors_release(&e);
}

static void test_exec_hooks_are_read_and_checked(void **state)
{
	cfg *c = must_load(MINIMAL "    stepWeight: 5\n    webhooks:\n"
	                   "      - name: scale-down\n        type: post-rollout\n"
	                   "        exec: {command: [/usr/local/bin/scale, --to, \"0\"], "
	                   "timeout: 30s}\n"
	                   "      - {name: smoke, exec: {command: [/bin/true]}, timeout: 3s}\n"
	                   "      - {name: up, url: \"https://x.test/\", retries: 2, "
	                   "disableTLS: true, muteAlert: true, type: confirm-promotion}\n");
	const cfg_canary *k = &c->canaries[0];
	assert_int_equal(k->n_webhooks, 3);
	assert_null(k->webhooks[0].url);
	assert_string_equal(k->webhooks[0].argv[0], "/usr/local/bin/scale");
	assert_string_equal(k->webhooks[0].argv[2], "0");
	assert_null(k->webhooks[0].argv[3]);
	assert_int_equal(k->webhooks[0].timeout_ms, 30000);
	assert_int_equal(k->webhooks[1].timeout_ms, 3000); /* the hook's, without exec's */
	assert_string_equal(k->webhooks[1].type, "rollout");
	assert_int_equal(k->webhooks[2].retries, 2);
	assert_true(k->webhooks[2].disable_tls);
	assert_true(k->webhooks[2].mute_alert);
	cfg_free(c);

	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    webhooks:\n"
	                         "      - {name: a, url: \"http://x.test/\", exec: {command: [/bin/true]}}\n"
	                         "      - {name: b, exec: {command: [scale]}}\n"
	                         "      - {name: c, exec: {command: []}}\n"
	                         "      - {name: d, exec: {timeout: 1s}}\n"
	                         "      - {name: e, exec: {command: [/bin/true]}, retries: 1}\n");
	assert_error(&e, "c.yaml:13:", "spec.analysis.webhooks[0].exec: cannot be used with url");
	assert_error(&e, "c.yaml:14:", "spec.analysis.webhooks[1].exec.command[0]: must be an "
	             "absolute path");
	assert_error(&e, "c.yaml:15:", "spec.analysis.webhooks[2].exec.command: must be a "
	             "non-empty list");
	assert_error(&e, "c.yaml:16:", "spec.analysis.webhooks[3].exec.command: required");
	assert_error(&e, "c.yaml:17:", "spec.analysis.webhooks[4].retries: only for a URL hook");
	assert_int_equal(e.n, 5);
	cfg_errors_release(&e);

	/* Flagger would prune the key and post nowhere: refused, saying why */
	e = must_fail("apiVersion: flagger.app/v1beta1\nkind: Canary\nmetadata: {name: p}\n"
	              "spec:\n  analysis:\n    webhooks:\n"
	              "      - {name: a, exec: {command: [/bin/true]}}\n");
	assert_error(&e, "c.yaml:7:", "spec.analysis.webhooks[0].exec: is canaryd's");
	cfg_errors_release(&e);
}

static void test_kind_and_api_version_must_be_known(void **state)
{
	cfg_errors e = must_fail("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n");
	assert_error(&e, "c.yaml:2:7: ", "kind must be Canary, MetricTemplate or AlertProvider, got "
	             "'Deployment'");
	assert_error(&e, "c.yaml:1:13: ", "apiVersion: must be canaryd/v1 or flagger.app/v1beta1, "
	             "got 'apps/v1'");
	assert_int_equal(e.n, 2);
	cfg_errors_release(&e);
	e = must_fail("- just\n- a list\n");
	assert_error(&e, "c.yaml:1:1: ", "document must be a mapping (a Canary), got a list");
	cfg_errors_release(&e);
}

static void test_duplicate_names_and_listen_addresses(void **state)
{
	const char *doc =
		"---\napiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: %s}\n"
		"spec:\n  listen: %s\n  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n"
		"  analysis: {stepWeight: 5}\n";
	char text[2048];
	char a[512], b[512], c3[512];
	snprintf(a, sizeof a, doc, "web", "127.0.0.1:8080");
	snprintf(b, sizeof b, doc, "web", "127.0.0.1:8081");
	snprintf(c3, sizeof c3, doc, "api", "0.0.0.0:8080");
	snprintf(text, sizeof text, "%s%s%s", a, b, c3);
	cfg_errors e = must_fail(text);
	assert_error(&e, "c.yaml:12:18: ", "metadata.name: duplicate canary name 'web' (also the "
	             "document at line 1)");
	assert_error(&e, "c.yaml:22:11: ", "spec.listen: address '0.0.0.0:8080' is already used "
	             "by canary 'web' (line 1)");
	assert_int_equal(e.n, 2);
	cfg_errors_release(&e);
	/* a third copy clashes with two: named once, with the first */
	snprintf(text, sizeof text, "%s%s%s", a, a, a);
	e = must_fail(text);
	assert_error(&e, "c.yaml:20:18: ", "metadata.name: duplicate canary name 'web' (also the "
	             "document at line 1)");
	assert_error(&e, "c.yaml:22:11: ", "spec.listen: address '127.0.0.1:8080' is already used "
	             "by canary 'web' (line 1)");
	assert_int_equal(e.n, 4);
	cfg_errors_release(&e);
}

static void test_duplicate_keys_are_errors(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    stepWeight: 6\n");
	assert_error(&e, "c.yaml:12:5: ", "spec.analysis.stepWeight: duplicate key");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
}

static void test_yaml_syntax_error_has_a_position(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: [5\n    threshold: 2\n");
	assert_true(e.n >= 1);
	assert_error(&e, "c.yaml:12:", "YAML syntax error: ");
	cfg_errors_release(&e);
	e = must_fail("a: 1\n\tb: 2\n");
	assert_error(&e, "c.yaml:2:", "YAML syntax error");
	cfg_errors_release(&e);
	/* invalid UTF-8: the reader reports an offset, turned into a position */
	e = must_fail("a: 1\nb: \xff\n");
	assert_error(&e, "c.yaml:2:4: ", "YAML syntax error");
	cfg_errors_release(&e);
}

static void test_errors_before_a_syntax_error_are_kept(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 500\n---\nkey: [\n");
	assert_error(&e, "c.yaml:11:17: ", "stepWeight");
	assert_error(&e, "c.yaml:", "YAML syntax error");
	assert_int_equal(e.n, 2);
	cfg_errors_release(&e);
}

static void test_no_canary_in_the_file(void **state)
{
	/* like every message, with a position (1:1: about the whole file) */
	cfg_errors e = must_fail("# nothing here\n---\n...\n");
	assert_error(&e, "c.yaml:1:1: ", "no Canary documents");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
	e = must_fail("");
	assert_error(&e, "c.yaml:1:1: ", "no Canary documents");
	cfg_errors_release(&e);
}

static void test_missing_file_cannot_be_read(void **state)
{
	cfg_errors e = { 0 };
	cfg *c = (cfg *)1;
	assert_int_equal(cfg_load("no/such/canary.yaml", &c, &e), -1);
	assert_null(c);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.msg[0], "no/such/canary.yaml:1:1: cannot read: No such file or "
	                    "directory");
	cfg_errors_release(&e);
	assert_int_equal(e.n, 0);
	assert_null(e.msg);
}

static void test_errors_are_appended_to_earlier_ones(void **state)
{
	cfg_errors e = { 0 };
	cfg *c = NULL;
	assert_int_equal(cfg_load("no/such/a.yaml", &c, &e), -1);
	assert_int_equal(load(MINIMAL "    stepWeight: 0\n", &c, &e), -1);
	assert_int_equal(e.n, 2);
	assert_non_null(strstr(e.msg[0], "no/such/a.yaml"));
	assert_non_null(strstr(e.msg[1], "stepWeight"));
	/* and a good load after errors succeeds and adds none */
	assert_int_equal(load(MINIMAL "    stepWeight: 1\n", &c, &e), 0);
	assert_int_equal(e.n, 2);
	cfg_free(c);
	cfg_errors_release(&e);
}

static void test_alias_expansion_is_bounded(void **state)
{
	/* each level repeats the one before ten times: 10^6 values */
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n"
	                         "    match:\n"
	                         "      - &a [1,1,1,1,1,1,1,1,1,1]\n"
	                         "      - &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
	                         "      - &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
	                         "      - &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
	                         "      - &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
	                         "      - &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n");
	assert_error(&e, "c.yaml:", "more than 100000 values in the file, counting each use of "
	             "an alias");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
	/* a node that contains itself */
	e = must_fail(MINIMAL "    stepWeight: 5\n    match: &x [*x]\n");
	assert_error(&e, "c.yaml:12:12: ", "nested more than 64 levels deep");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
}

/* ---- Flagger documents ---- */

static void test_flagger_examples_load(void **state)
{
	static const char *files[] = { "istio-canary.yaml", "istio-abtest.yaml",
	                               "kuma-canary.yaml", "linkerd-canary.yaml",
	                               "linkerd-canary-steps.yaml" };
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		cfg_errors e = { 0 };
		int rc;
		cfg *c = load_flagger(files[i], &e, &rc);
		if (rc != 0) {
			print_message("%s:\n", files[i]);
			dump(&e);
		}
		assert_int_equal(rc, 0);
		assert_int_equal(c->n_canaries, 1);
		const cfg_canary *k = &c->canaries[0];
		assert_true(k->flagger);
		assert_string_equal(k->name, "podinfo");
		assert_string_equal(k->namespace_, "test");
		assert_null(k->listen);
		assert_null(k->stable_rev);
		assert_null(k->stable_eps);
		assert_int_equal(k->n_stable_eps, 0);
		assert_int_equal(k->policy.interval_ms, 15000);
		assert_int_equal(k->policy.n_metrics, 2);
		assert_int_equal(k->n_webhooks, 2);
		/* the Kubernetes-only fields are kept for the mesh routers */
		assert_non_null(json_object_get(json_object_get(k->raw, "spec"), "targetRef"));
		cfg_free(c);
		cfg_errors_release(&e);
	}
}

static void test_flagger_analysis_means_what_flagger_means(void **state)
{
	cfg_errors e = { 0 };
	int rc;
	cfg *c = load_flagger("istio-canary.yaml", &e, &rc);
	assert_int_equal(rc, 0);
	const cfg_canary *k = &c->canaries[0];
	assert_string_equal(k->router, "istio");
	assert_int_equal(k->policy.threshold, 10);
	assert_int_equal(k->policy.max_weight, 50);
	assert_int_equal(k->policy.step_weight, 5);
	assert_int_equal(k->policy.progress_deadline_ms, 600000);
	assert_true(k->policy.metrics[0].has_min && k->policy.metrics[0].min == 99);
	assert_true(k->policy.metrics[1].has_max && k->policy.metrics[1].max == 500);
	assert_int_equal(k->policy.metrics[1].window_ms, 30000);
	assert_string_equal(k->webhooks[0].type, "pre-rollout");
	assert_int_equal(k->webhooks[0].timeout_ms, 15000);
	assert_string_equal(json_string_value(json_object_get(k->webhooks[0].metadata, "type")),
	                    "bash");
	cfg_free(c);

	c = load_flagger("kuma-canary.yaml", &e, &rc);
	assert_int_equal(rc, 0);
	k = &c->canaries[0];
	assert_string_equal(k->router, "istio"); /* no provider: Flagger's default */
	assert_int_equal(k->policy.progress_deadline_ms, 60000);
	assert_true(k->policy.metrics[0].has_min && k->policy.metrics[0].min == 99);
	assert_true(k->policy.metrics[1].has_max && k->policy.metrics[1].max == 500);
	assert_string_equal(k->webhooks[1].type, "rollout");
	assert_int_equal(k->webhooks[1].timeout_ms, 10000); /* Flagger's CallWebhook */
	cfg_free(c);

	c = load_flagger("linkerd-canary-steps.yaml", &e, &rc);
	assert_int_equal(rc, 0);
	k = &c->canaries[0];
	assert_string_equal(k->router, "linkerd");
	assert_int_equal(k->policy.n_step_weights, 11);
	assert_int_equal(k->policy.max_weight, 55);
	cfg_free(c);

	c = load_flagger("istio-abtest.yaml", &e, &rc);
	assert_int_equal(rc, 0);
	k = &c->canaries[0];
	assert_int_equal(k->policy.iterations, 10);
	assert_int_equal(k->policy.step_weight, 0);
	assert_true(json_is_array(json_object_get(
		json_object_get(json_object_get(k->raw, "spec"), "analysis"), "match")));
	cfg_free(c);
	assert_int_equal(e.n, 0);
	cfg_errors_release(&e);
}

static void test_the_crd_is_not_a_canary(void **state)
{
	cfg_errors e = { 0 };
	int rc;
	cfg *c = load_flagger("crd.yaml", &e, &rc);
	assert_int_equal(rc, -1);
	assert_null(c);
	assert_error(&e, "", "crd.yaml:2:7: kind must be Canary, MetricTemplate or AlertProvider, got "
	             "'CustomResourceDefinition'");
	cfg_errors_release(&e);
}

#define FLAGGER_HEAD "apiVersion: flagger.app/v1beta1\nkind: Canary\n" \
	"metadata:\n  name: podinfo\n  uid: 1234\n"

static void test_flagger_ignores_unknown_fields_but_checks_known_ones(void **state)
{
	cfg *c = must_load(FLAGGER_HEAD "spec:\n  provider: kubernetes\n"
	                   "  whatever: {a: 1}\n  analysis:\n    interval: 1m\n"
	                   "    someNewField: true\n"
	                   "    webhooks:\n      - {name: a, url: http://x.test/, retries: 3}\n"
	                   "status:\n  phase: Succeeded\n");
	const cfg_canary *k = &c->canaries[0];
	assert_string_equal(k->router, "kubernetes");
	assert_int_equal(k->policy.iterations, 10); /* kubernetes: blue/green */
	cfg_free(c);

	/* Flagger: iterations win over steps */
	c = must_load(FLAGGER_HEAD "spec:\n  analysis: {iterations: 4, stepWeight: 10}\n");
	assert_int_equal(c->canaries[0].policy.iterations, 4);
	assert_int_equal(c->canaries[0].policy.step_weight, 0);
	cfg_free(c);

	cfg_errors e = must_fail(FLAGGER_HEAD "spec:\n  analysis:\n    stepWeight: 101\n"
	                         "    metrics:\n      - {name: request-success-rate, query: up}\n"
	                         "  listen: nope\n");
	assert_error(&e, "c.yaml:8:17: ", "spec.analysis.stepWeight: must be an integer from 1 "
	             "to 100");
	assert_error(&e, "c.yaml:10:38: ", "spec.analysis.metrics[0]: query needs "
	             "provider.address");
	assert_error(&e, "c.yaml:10:9: ", "spec.analysis.metrics[0]: needs thresholdRange");
	assert_int_equal(e.n, 3); /* listen is not a Flagger field: ignored */
	cfg_errors_release(&e);

	e = must_fail(FLAGGER_HEAD "spec:\n  targetRef: {name: x}\n");
	assert_error(&e, "c.yaml:6:1: ", "spec.analysis: required");
	cfg_errors_release(&e);
}

/* ---- custom metrics, templates and the analysis extensions ---- */

#define METRICS MINIMAL "    stepWeight: 5\n    metrics:\n" /* metrics from line 13 */

static void test_prometheus_metric_is_custom_with_its_source(void **state)
{
	cfg *c = must_load(METRICS
		"      - name: request-success-rate\n"
		"        query: sum(rate(x{app=\"{{ name }}\"}[{{ interval }}]))\n"
		"        provider: {type: prometheus, address: 'http://127.0.0.1:9090', timeout: 2s}\n"
		"        thresholdRange: {min: 0.5, max: 200}\n"
		"        interval: 30s\n"
		"      - name: error-rate\n"
		"        thresholdRange: {max: 1}\n");
	const cfg_canary *k = &c->canaries[0];
	assert_int_equal(k->policy.n_metrics, 2);
	const eng_metric *m = &k->policy.metrics[0];
	/* a source makes it custom, whatever its name */
	assert_int_equal(m->kind, ENG_M_CUSTOM);
	assert_string_equal(m->name, "request-success-rate");
	assert_true(m->has_min && m->min == 0.5);
	assert_true(m->has_max && m->max == 200); /* no percentage bound for custom */
	assert_int_equal(m->window_ms, 30000);
	const cfg_metric_source *s = &k->sources[0];
	assert_int_equal(s->type, CFG_PROVIDER_PROMETHEUS);
	assert_string_equal(s->address, "http://127.0.0.1:9090");
	assert_string_equal(s->query, "sum(rate(x{app=\"{{ name }}\"}[{{ interval }}]))");
	assert_int_equal(s->timeout_ms, 2000);
	assert_null(s->url);
	assert_null(s->method);
	assert_null(s->template_name);
	assert_int_equal(k->policy.metrics[1].kind, ENG_M_ERROR_RATE);
	assert_int_equal(k->sources[1].type, CFG_PROVIDER_NONE);
	assert_null(k->sources[1].query);
	cfg_free(c);

	c = must_load(METRICS "      - name: up\n        query: up\n"
	              "        provider: {type: prometheus, address: 'https://prom.test:9090/'}\n"
	              "        threshold: 1\n");
	assert_int_equal(c->canaries[0].sources[0].timeout_ms, 10000); /* default */
	assert_true(c->canaries[0].policy.metrics[0].has_max); /* threshold: a maximum */
	cfg_free(c);
}

static void test_web_metric_reads_every_field(void **state)
{
	cfg *c = must_load(METRICS
		"      - name: queue-depth\n"
		"        provider:\n"
		"          type: web\n"
		"          url: 'http://127.0.0.1:9100/q?app={{ name }}&rev={{ revision }}'\n"
		"          method: POST\n"
		"          headers: {Authorization: Bearer x, X-Rev: '{{ revision }}'}\n"
		"          body: '{\"app\": \"{{ name }}\", \"é\": 1}'\n"
		"          jsonPath: '$.data[0][\"value\"]'\n"
		"          timeout: 500ms\n"
		"        thresholdRange: {max: 10}\n"
		"      - name: jobs\n"
		"        provider: {type: web, url: 'https://127.0.0.1/j', jsonPath: $.jobs.pending}\n"
		"        threshold: 3\n");
	const cfg_canary *k = &c->canaries[0];
	const cfg_metric_source *s = &k->sources[0];
	assert_int_equal(k->policy.metrics[0].kind, ENG_M_CUSTOM);
	assert_int_equal(s->type, CFG_PROVIDER_WEB);
	assert_string_equal(s->url, "http://127.0.0.1:9100/q?app={{ name }}&rev={{ revision }}");
	assert_string_equal(s->method, "POST");
	assert_int_equal(json_object_size(s->headers), 2);
	assert_string_equal(json_string_value(json_object_get(s->headers, "Authorization")),
	                    "Bearer x");
	assert_string_equal(json_string_value(json_object_get(s->headers, "X-Rev")),
	                    "{{ revision }}");
	assert_string_equal(s->body, "{\"app\": \"{{ name }}\", \"é\": 1}");
	assert_string_equal(s->json_path, "$.data[0][\"value\"]");
	assert_int_equal(s->timeout_ms, 500);
	assert_null(s->address);
	assert_null(s->query);
	s = &k->sources[1];
	assert_int_equal(s->type, CFG_PROVIDER_WEB);
	assert_string_equal(s->method, "GET"); /* default */
	assert_null(s->headers);
	assert_null(s->body);
	assert_int_equal(s->timeout_ms, 10000);
	assert_string_equal(s->json_path, "$.jobs.pending");
	cfg_free(c);
}

#define FLAGGER_TEMPLATE(NAME) \
	"apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata:\n" \
	"  name: " NAME "\n  namespace: test\n" \
	"spec:\n  provider:\n    type: prometheus\n    address: http://127.0.0.1:9090\n" \
	"    secretRef: {name: prom-auth}\n    insecureSkipVerify: true\n" \
	"  query: histogram_quantile(0.99, sum(rate(x{namespace=\"{{ namespace }}\"}" \
	"[{{ interval }}])) by (le))\n"

#define LATENCY_QUERY "histogram_quantile(0.99, sum(rate(x{namespace=\"{{ namespace }}\"}" \
	"[{{ interval }}])) by (le))"

static void test_template_ref_to_a_metric_template_before_or_after(void **state)
{
	cfg *c = must_load(FLAGGER_TEMPLATE("latency") "---\n" METRICS
		"      - name: p99\n"
		"        templateRef: {name: latency, namespace: test}\n"
		"        thresholdRange: {max: 500}\n"
		"      - name: jobs\n"
		"        templateRef: {name: jobs}\n"
		"        thresholdRange: {max: 3}\n"
		"---\n"
		"apiVersion: canaryd/v1\nkind: MetricTemplate\nmetadata: {name: jobs}\n"
		"spec:\n  provider: {type: web, url: 'http://127.0.0.1:9/j', jsonPath: $.n}\n");
	assert_int_equal(c->n_canaries, 1);
	const cfg_canary *k = &c->canaries[0];
	assert_int_equal(k->policy.n_metrics, 2);
	assert_int_equal(k->policy.metrics[0].kind, ENG_M_CUSTOM);
	const cfg_metric_source *s = &k->sources[0];
	assert_int_equal(s->type, CFG_PROVIDER_PROMETHEUS);
	assert_string_equal(s->template_name, "latency");
	assert_string_equal(s->address, "http://127.0.0.1:9090");
	assert_string_equal(s->query, LATENCY_QUERY);
	assert_int_equal(s->timeout_ms, 10000);
	s = &k->sources[1];
	assert_int_equal(s->type, CFG_PROVIDER_WEB);
	assert_string_equal(s->template_name, "jobs");
	assert_string_equal(s->url, "http://127.0.0.1:9/j");
	assert_string_equal(s->json_path, "$.n");
	assert_string_equal(s->method, "GET");
	cfg_free(c);
}

static void test_flagger_canary_uses_a_template_after_it(void **state)
{
	cfg *c = must_load(FLAGGER_HEAD "  namespace: test\nspec:\n  analysis:\n"
		"    stepWeight: 10\n    metrics:\n"
		"      - name: latency\n        templateRef: {name: latency}\n"
		"        thresholdRange: {max: 500}\n        interval: 1m\n"
		"---\n" FLAGGER_TEMPLATE("latency"));
	const cfg_canary *k = &c->canaries[0];
	assert_true(k->flagger);
	assert_int_equal(k->policy.metrics[0].kind, ENG_M_CUSTOM);
	assert_string_equal(k->sources[0].template_name, "latency");
	assert_string_equal(k->sources[0].query, LATENCY_QUERY);
	cfg_free(c);
}

static void test_each_canary_owns_its_copy_of_a_template(void **state)
{
	cfg *c = must_load(FLAGGER_TEMPLATE("latency")
		"---\napiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: a}\n"
		"spec:\n  listen: 127.0.0.1:8080\n  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n"
		"  analysis:\n    stepWeight: 5\n"
		"    metrics: [{name: l, templateRef: {name: latency}, threshold: 5}]\n"
		"---\napiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: b}\n"
		"spec:\n  listen: 127.0.0.1:8081\n  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n"
		"  analysis:\n    stepWeight: 5\n"
		"    metrics: [{name: l, templateRef: {name: latency}, threshold: 5}]\n");
	assert_int_equal(c->n_canaries, 2);
	const cfg_metric_source *a = &c->canaries[0].sources[0], *b = &c->canaries[1].sources[0];
	assert_string_equal(a->query, LATENCY_QUERY);
	assert_string_equal(b->query, LATENCY_QUERY);
	assert_ptr_not_equal(a->query, b->query);
	assert_ptr_not_equal(a->address, b->address);
	assert_ptr_not_equal(a->template_name, b->template_name);
	cfg_free(c); /* under ASan: no double free, no leak */
}

static void test_unknown_template_ref_names_the_templates_there_are(void **state)
{
	cfg_errors e = must_fail(
		"apiVersion: canaryd/v1\nkind: MetricTemplate\nmetadata: {name: a}\n"
		"spec: {provider: {type: prometheus, address: 'http://127.0.0.1:9090'}, query: up}\n"
		"---\n" METRICS
		"      - name: x\n"
		"        thresholdRange: {max: 1}\n"
		"        templateRef:\n          name: x\n"
		"---\n"
		"apiVersion: canaryd/v1\nkind: MetricTemplate\nmetadata: {name: b}\n"
		"spec: {provider: {type: web, url: 'http://127.0.0.1:9/', jsonPath: $.v}}\n");
	/* the canary starts at line 6, its metrics at line 18 */
	assert_error(&e, "c.yaml:20:9: ", "spec.analysis.metrics[0].templateRef: no "
	             "MetricTemplate named 'x' in this file; there are: a, b");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
	/* with 900 templates, the message names ten: it stays one short line */
	buf b = BUF_INIT;
	buf_puts(&b, METRICS "      - name: x\n        thresholdRange: {max: 1}\n"
	         "        templateRef: {name: x, namespace: n}\n");
	for (int i = 0; i < 900; i++)
		buf_printf(&b, "---\napiVersion: canaryd/v1\nkind: MetricTemplate\n"
		           "metadata: {name: t%d, namespace: n%d}\n"
		           "spec: {provider: {type: prometheus, address: 'http://h:1'}, query: up}\n",
		           i, i);
	e = must_fail(b.p);
	assert_error(&e, "c.yaml:15:9: ", "no MetricTemplate named 'x' in namespace 'n' in this "
	             "file; there are: t0 (namespace n0), t1 (namespace n1), t2 (namespace n2), ");
	assert_error(&e, "c.yaml:15:9: ", ", t9 (namespace n9) and 890 more");
	assert_int_equal(e.n, 1);
	assert_true(strlen(e.msg[0]) < 512);
	cfg_errors_release(&e);
	buf_release(&b);
}

/* Flagger's provider types that canaryd does not read are valid (a
 * Flagger user's files pass --check); canaryd refuses to start with a
 * metric that needs one (cmd/main.c), and --check says so. */
static void test_flaggers_other_provider_types_are_valid_but_unsupported(void **state)
{
	cfg *c = must_load(
		"apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: dd}\n"
		"spec:\n  provider: {type: graphite, address: 'http://graphite:8080',\n"
		"    secretRef: {name: dd}}\n  query: avg:x{ns:{{ namespace }}}\n"
		"---\n"
		"apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: cw}\n"
		"spec:\n  provider: {type: cloudwatch, region: ap-northeast-1}\n  query: '[]'\n"
		"---\n" METRICS "      - {name: a, templateRef: {name: dd}, threshold: 1}\n"
		"      - {name: b, templateRef: {name: cw}, threshold: 1}\n"
		"      - name: c\n        query: q\n"
		"        provider: {type: dynatrace}\n        threshold: 1\n");
	const cfg_canary *k = &c->canaries[0];
	assert_int_equal(k->policy.n_metrics, 3);
	static const char *const types[] = { "graphite", "cloudwatch", "dynatrace" };
	for (int i = 0; i < 3; i++) {
		assert_int_equal(k->sources[i].type, CFG_PROVIDER_UNSUPPORTED);
		assert_string_equal(k->sources[i].type_name, types[i]);
	}
	assert_string_equal(k->sources[0].query, "avg:x{ns:{{ namespace }}}");
	cfg_free(c);

	/* the query is still a template Flagger renders: checked */
	cfg_errors e = must_fail(
		"apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: dd}\n"
		"spec:\n  provider: {type: graphite}\n  query: avg:x{ {{ nmae }} }\n---\n"
		METRICS "      - {name: a, templateRef: {name: dd}, threshold: 1}\n");
	assert_error(&e, "c.yaml:6:10: ", "spec.query: unknown variable {{ nmae }}");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);

	e = must_fail(METRICS "      - name: x\n        query: q\n"
	              "        provider: {type: graphyte, address: 'http://127.0.0.1:1'}\n"
	              "        threshold: 1\n");
	assert_error(&e, "c.yaml:15:26: ", "provider.type: must be prometheus, web, datadog or "
	             "newrelic (or one of Flagger's types canaryd does not read, influxdb, "
	             "externalmetrics");
	assert_error(&e, "c.yaml:15:26: ", "got 'graphyte'");
	cfg_errors_release(&e);

	/* web is canaryd's: not in a Flagger MetricTemplate */
	e = must_fail("apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: w}\n"
	              "spec:\n  provider: {type: web, url: 'http://127.0.0.1:9/', jsonPath: $.v}\n"
	              "---\n" METRICS "      - {name: x, templateRef: {name: w}, threshold: 1}\n");
	assert_error(&e, "c.yaml:5:20: ", "spec.provider.type: provider type 'web' is canaryd's");
	assert_int_equal(e.n, 1); /* the template exists: the ref is not also reported */
	cfg_errors_release(&e);
}

static void test_template_variables_are_checked_at_load(void **state)
{
	cfg_errors e = must_fail(
		"apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: t}\n"
		"spec:\n  provider: {type: prometheus, address: 'http://127.0.0.1:9090'}\n"
		"  query: up{app=\"{{ nmae }}\"}\n"
		"---\n" METRICS
		"      - name: x\n        query: 'up{a=\"{{ name }\"}'\n"
		"        provider: {type: prometheus, address: 'http://127.0.0.1:9090'}\n"
		"        threshold: 1\n"
		"      - name: y\n        threshold: 1\n"
		"        provider:\n          type: web\n          jsonPath: $.v\n"
		"          url: 'http://127.0.0.1:9/{{ revison }}'\n"
		"          headers: {X-A: '{{ x }}'}\n");
	assert_error(&e, "c.yaml:6:10: ", "spec.query: unknown variable {{ nmae }} at character "
	             "9; known: name, namespace, target, service, ingress, route, interval, "
	             "revision, variables.KEY, printf, print");
	/* the canary starts at line 8, its metrics at line 20 */
	assert_error(&e, "c.yaml:21:16: ", "spec.analysis.metrics[0].query: unclosed {{");
	assert_error(&e, "c.yaml:29:16: ", "spec.analysis.metrics[1].provider.url: unknown "
	             "variable {{ revison }}");
	assert_error(&e, "c.yaml:30:26: ", "spec.analysis.metrics[1].provider.headers.X-A: "
	             "unknown variable {{ x }}");
	assert_int_equal(e.n, 4);
	cfg_errors_release(&e);
}

static void test_query_without_a_provider_needs_an_address(void **state)
{
	cfg_errors e = must_fail(METRICS "      - name: x\n        query: up\n"
	                         "        thresholdRange: {max: 1}\n");
	assert_error(&e, "c.yaml:14:9: ", "spec.analysis.metrics[0]: query needs "
	             "provider.address");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
}

static void test_provider_keys_are_checked_by_type(void **state)
{
	cfg_errors e = must_fail(METRICS
		"      - name: a\n        threshold: 1\n"                                   /* 13 */
		"        provider: {type: prometheus}\n"                                    /* 15 */
		"      - name: b\n        threshold: 1\n        query: up\n"              /* 16 */
		"        provider: {type: prometheus, address: '127.0.0.1:9090', url: 'http://x/'}\n"
		"      - name: c\n        threshold: 1\n"                                   /* 20 */
		"        provider: {type: web, jsonPath: 'data.value', method: PUT, body: b}\n"
		"      - name: d\n        threshold: 1\n        query: up\n"              /* 23 */
		"        provider: {url: 'http://127.0.0.1/'}\n"                           /* 26 */
		"      - name: e\n        threshold: 1\n        query: up\n"              /* 27 */
		"        provider: {type: web, url: 'ftp://x/', jsonPath: $.v, address: 'http://a/'}\n"
		"      - name: f\n        threshold: 1\n"                                   /* 31 */
		"        provider: {type: web, url: 'http://127.0.0.1/', body: x, jsonPath: '$.a[x]'}\n"
		"      - name: g\n        threshold: 1\n        templateRef: {namespace: x}\n"
		"        query: up\n");                                                     /* 34 */
	assert_error(&e, "c.yaml:15:9: ", "metrics[0].provider.address: required (the Prometheus "
	             "server");
	assert_error(&e, "c.yaml:13:9: ", "metrics[0].query: required with provider type "
	             "prometheus");
	assert_error(&e, "c.yaml:19:47: ", "metrics[1].provider.address: must be an http:// or "
	             "https:// URL");
	assert_error(&e, "c.yaml:19:65: ", "metrics[1].provider.url: only for provider type web");
	assert_error(&e, "c.yaml:22:9: ", "metrics[2].provider.url: required");
	assert_error(&e, "c.yaml:22:41: ", "metrics[2].provider.jsonPath: must be a path like "
	             "$.data.value");
	assert_error(&e, "c.yaml:22:63: ", "metrics[2].provider.method: must be one of GET, POST, "
	             "got 'PUT'");
	assert_error(&e, "c.yaml:26:9: ", "metrics[3].provider.type: required (prometheus, web, datadog "
	             "or newrelic)");
	assert_error(&e, "c.yaml:30:36: ", "metrics[4].provider.url: must be an http:// or "
	             "https:// URL");
	assert_error(&e, "c.yaml:30:63: ", "metrics[4].provider.address: only for provider type "
	             "prometheus");
	assert_error(&e, "c.yaml:29:9: ", "metrics[4].query: cannot be used with provider type web");
	assert_error(&e, "c.yaml:33:57: ", "metrics[5].provider.body: needs method POST");
	assert_error(&e, "c.yaml:33:76: ", "metrics[5].provider.jsonPath: must be a path");
	assert_error(&e, "c.yaml:36:9: ", "metrics[6].templateRef: cannot be used with query or "
	             "provider");
	assert_error(&e, "c.yaml:36:9: ", "metrics[6].templateRef.name: required");
	assert_int_equal(e.n, 15);
	cfg_errors_release(&e);
}

static void test_duplicate_metric_templates_are_errors(void **state)
{
	cfg_errors e = must_fail(
		"apiVersion: canaryd/v1\nkind: MetricTemplate\nmetadata: {name: t}\n"
		"spec: {provider: {type: prometheus, address: 'http://127.0.0.1:9090'}, query: up}\n"
		"---\n"
		"apiVersion: canaryd/v1\nkind: MetricTemplate\nmetadata: {name: t}\n"
		"spec: {provider: {type: prometheus, address: 'http://127.0.0.1:9090'}, query: up}\n"
		"---\n" MINIMAL "    stepWeight: 5\n");
	assert_error(&e, "c.yaml:8:18: ", "metadata.name: duplicate MetricTemplate name 't' (also "
	             "the document at line 1)");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
}

static void test_relative_baseline_and_failure_duration_are_read(void **state)
{
	cfg *c = must_load(METRICS
		"      - name: request-success-rate\n"
		"        thresholdRange: {min: -1, relative: true}\n"
		"        interval: 1m\n"
		"        baseline: {window: 1h}\n"
		"        failureDuration: 2m\n"
		"      - name: request-duration\n"
		"        thresholdRange: {max: 1.5, relative: true}\n"
		"      - name: error-rate\n"
		"        thresholdRange: {max: 2, relative: false}\n");
	const eng_policy *p = &c->canaries[0].policy;
	assert_true(p->metrics[0].relative);
	assert_true(p->metrics[0].has_min && p->metrics[0].min == -1);
	assert_int_equal(p->metrics[0].baseline_window_ms, 3600000);
	assert_int_equal(p->metrics[0].failure_duration_ms, 120000);
	assert_true(p->metrics[1].relative);
	assert_true(p->metrics[1].max == 1.5);
	assert_int_equal(p->metrics[1].baseline_window_ms, 0);  /* default: none */
	assert_int_equal(p->metrics[1].failure_duration_ms, 0); /* default: at once */
	assert_false(p->metrics[2].relative);
	cfg_free(c);
}

static void test_relative_baseline_and_failure_duration_are_checked(void **state)
{
	cfg_errors e = must_fail(METRICS
		"      - name: request-success-rate\n"                              /* 13 */
		"        thresholdRange: {min: -101, relative: true}\n"
		"        interval: 2m\n"
		"        baseline: {window: 1m}\n"
		"        failureDuration: 500ms\n"
		"      - name: request-duration\n"                                  /* 18 */
		"        thresholdRange: {max: -1, relative: true}\n"
		"        baseline: {window: 30s}\n"
		"        failureDuration: 2h\n"
		"      - name: error-rate\n"                                        /* 22 */
		"        thresholdRange: {max: 1, relative: yes}\n"
		"        baseline: {}\n");
	assert_error(&e, "c.yaml:14:31: ", "metrics[0].thresholdRange.min: must be a number from "
	             "-100 to 100 (a difference in percentage points");
	assert_error(&e, "c.yaml:16:28: ", "metrics[0].baseline.window: must be longer than the "
	             "metric's interval (2m)");
	assert_error(&e, "c.yaml:17:26: ", "metrics[0].failureDuration: must be a duration from "
	             "1s to 1h");
	assert_error(&e, "c.yaml:23:44: ", "metrics[2].thresholdRange.relative: must be true or "
	             "false, got 'yes'");
	assert_error(&e, "c.yaml:19:31: ", "metrics[1].thresholdRange.max: must be a number >= 0 "
	             "(a ratio to stable's)");
	assert_error(&e, "c.yaml:20:28: ", "metrics[1].baseline.window: must be a duration from "
	             "1m to 24h");
	assert_error(&e, "c.yaml:21:26: ", "metrics[1].failureDuration: must be a duration");
	assert_error(&e, "c.yaml:24:9: ", "metrics[2].baseline.window: required");
	assert_int_equal(e.n, 8);
	cfg_errors_release(&e);
}

static void test_judge_alpha_and_min_samples_defaults(void **state)
{
	cfg *c = must_load(MINIMAL "    stepWeight: 5\n");
	const eng_policy *p = &c->canaries[0].policy;
	assert_int_equal(p->judge, ENG_JUDGE_THRESHOLD);
	assert_true(p->alpha == 0.01);
	assert_int_equal(p->min_samples, 100);
	assert_null(c->canaries[0].alert_matchers);
	cfg_free(c);
	c = must_load(FLAGGER_HEAD "spec:\n  analysis: {stepWeight: 10}\n");
	p = &c->canaries[0].policy;
	assert_int_equal(p->judge, ENG_JUDGE_THRESHOLD);
	assert_true(p->alpha == 0.01);
	/* Flagger counts a check on any request: minSamples does not apply */
	assert_int_equal(p->min_samples, 1);
	cfg_free(c);
	c = must_load(FLAGGER_HEAD "spec:\n  analysis: {stepWeight: 10, judge: sequential}\n");
	assert_int_equal(c->canaries[0].policy.min_samples, 100);
	assert_int_equal(c->canaries[0].policy.on_no_data, ENG_NODATA_HOLD);
	cfg_free(c);
	c = must_load(FLAGGER_HEAD "spec:\n  analysis: {stepWeight: 10, minSamples: 20}\n");
	assert_int_equal(c->canaries[0].policy.min_samples, 20);
	cfg_free(c);
}

static void test_no_data_warmup_and_max_duration_defaults(void **state)
{
	cfg *c = must_load(MINIMAL "    stepWeight: 5\n");
	const eng_policy *p = &c->canaries[0].policy;
	assert_int_equal(p->on_no_data, ENG_NODATA_HOLD);
	assert_int_equal(p->warmup_ms, 0);
	assert_int_equal(p->max_duration_ms, 0);
	assert_int_equal(p->on_max_duration, ENG_MAXDUR_PAUSE);
	cfg_free(c);
	/* a Flagger document fails a check without data, as Flagger does */
	c = must_load(FLAGGER_HEAD "spec:\n  analysis: {stepWeight: 10}\n");
	p = &c->canaries[0].policy;
	assert_int_equal(p->on_no_data, ENG_NODATA_FAIL);
	assert_int_equal(p->warmup_ms, 0);
	assert_int_equal(p->max_duration_ms, 0);
	cfg_free(c);
}

static void test_no_data_warmup_and_max_duration_are_read(void **state)
{
	cfg *c = must_load(MINIMAL "    stepWeight: 5\n    onNoData: fail\n    warmup: 30s\n"
	                   "    maxDuration: 2h\n    onMaxDuration: rollback\n");
	const eng_policy *p = &c->canaries[0].policy;
	assert_int_equal(p->on_no_data, ENG_NODATA_FAIL);
	assert_int_equal(p->warmup_ms, 30000);
	assert_int_equal(p->max_duration_ms, 2 * 3600 * 1000);
	assert_int_equal(p->on_max_duration, ENG_MAXDUR_ROLLBACK);
	cfg_free(c);
	c = must_load(MINIMAL "    stepWeight: 5\n    maxDuration: 10m\n    onMaxDuration: promote\n");
	assert_int_equal(c->canaries[0].policy.on_max_duration, ENG_MAXDUR_PROMOTE);
	cfg_free(c);
	c = must_load(FLAGGER_HEAD "spec:\n  analysis: {stepWeight: 10, onNoData: hold, "
	              "maxDuration: 1h, onMaxDuration: pause}\n");
	p = &c->canaries[0].policy;
	assert_int_equal(p->on_no_data, ENG_NODATA_HOLD);
	assert_int_equal(p->max_duration_ms, 3600 * 1000);
	assert_int_equal(p->on_max_duration, ENG_MAXDUR_PAUSE);
	cfg_free(c);
}

static void test_no_data_warmup_and_max_duration_are_checked(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    onNoData: skip\n"
	                         "    warmup: soon\n    maxDuration: -1s\n"
	                         "    onMaxDuration: abort\n");
	assert_error(&e, "c.yaml:12:15: ", "spec.analysis.onNoData: must be one of hold, fail, "
	             "got 'skip'");
	assert_error(&e, "c.yaml:13:13: ", "spec.analysis.warmup: must be a duration from 0s to 24h");
	assert_error(&e, "c.yaml:14:18: ", "spec.analysis.maxDuration: must be a duration from 0s "
	             "to 720h");
	assert_error(&e, "c.yaml:15:20: ", "spec.analysis.onMaxDuration: must be one of pause, "
	             "rollback, promote, got 'abort'");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n    onMaxDuration: promote\n");
	assert_error(&e, "c.yaml:12:5: ", "spec.analysis.onMaxDuration: needs "
	             "spec.analysis.maxDuration");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n    warmup: 1m\n    maxDuration: 30s\n");
	assert_error(&e, "c.yaml:13:5: ", "spec.analysis.maxDuration: must be longer than "
	             "spec.analysis.warmup (30s is not longer than 1m");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
}

static void test_judge_alpha_and_min_samples_are_read(void **state)
{
	cfg *c = must_load(MINIMAL "    stepWeight: 5\n    judge: sequential\n    alpha: 0.05\n"
	                   "    minSamples: 500\n    errorMargin: 1\n    latencyRatio: 1.5\n");
	const eng_policy *p = &c->canaries[0].policy;
	assert_int_equal(p->judge, ENG_JUDGE_SEQUENTIAL);
	assert_true(p->alpha == 0.05);
	assert_int_equal(p->min_samples, 500);
	assert_true(p->judge_margin == 0.01);
	assert_true(p->judge_latency_ratio == 1.5);
	cfg_free(c);
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    judge: sequential\n"
	                         "    errorMargin: 0\n    latencyRatio: 0.5\n");
	assert_error(&e, "c.yaml:13:18: ", "spec.analysis.errorMargin: must be a number from 0.01 to 50");
	assert_error(&e, "c.yaml:14:19: ", "spec.analysis.latencyRatio: must be 0 (off) or at least 1");
	assert_int_equal(e.n, 2);
	cfg_errors_release(&e);
	c = must_load(MINIMAL "    stepWeight: 5\n    judge: threshold\n    minSamples: 1\n");
	assert_int_equal(c->canaries[0].policy.judge, ENG_JUDGE_THRESHOLD);
	assert_int_equal(c->canaries[0].policy.min_samples, 1);
	cfg_free(c);
}

static void test_judge_alpha_and_min_samples_are_checked(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    judge: bayes\n    alpha: 0.5\n"
	                         "    minSamples: 0\n");
	/* judge: bayes leaves the threshold judge, which refuses alpha too */
	assert_error(&e, "c.yaml:12:12: ", "spec.analysis.judge: must be one of threshold, "
	             "sequential, got 'bayes'");
	assert_error(&e, "c.yaml:13:12: ", "spec.analysis.alpha: must be a number greater than 0 "
	             "and less than 0.5");
	assert_error(&e, "c.yaml:14:17: ", "spec.analysis.minSamples: must be an integer >= 1, "
	             "got '0'");
	assert_int_equal(e.n, 4);
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n    alpha: 0\n");
	assert_error(&e, "c.yaml:12:12: ", "spec.analysis.alpha: must be a number greater than 0");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n    alpha: '0.1'\n");
	assert_error(&e, "c.yaml:12:12: ", "got the string '0.1'");
	cfg_errors_release(&e);
}

static void test_sequential_keys_are_refused_under_the_threshold_judge(void **state)
{
	/* accepted and ignored, they let a user believe a margin guards the
	 * rollout when the metrics' thresholds alone decide it */
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    alpha: 0.05\n"
	                         "    errorMargin: 1\n    errorRatio: 2\n    latencyRatio: 1.5\n"
	                         "    latencyQuantile: 95\n");
	assert_error(&e, "c.yaml:12:5: ", "spec.analysis.alpha: only with judge: sequential");
	assert_error(&e, "c.yaml:13:5: ", "spec.analysis.errorMargin: only with judge: sequential");
	assert_error(&e, "c.yaml:14:5: ", "spec.analysis.errorRatio: only with judge: sequential");
	assert_error(&e, "c.yaml:15:5: ", "spec.analysis.latencyRatio: only with judge: sequential");
	assert_error(&e, "c.yaml:16:5: ", "spec.analysis.latencyQuantile: only with judge: "
	             "sequential");
	assert_int_equal(e.n, 5);
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n    judge: threshold\n    errorMargin: 1\n");
	assert_error(&e, "c.yaml:13:5: ", "set spec.analysis.judge: sequential, or remove it");
	cfg_errors_release(&e);
	cfg *c = must_load(MINIMAL "    stepWeight: 5\n    judge: sequential\n    errorMargin: 1\n"
	                   "    errorRatio: 2\n");
	cfg_free(c);
}

static void test_steps_approval_and_on_failure_are_read(void **state)
{
	cfg *c = must_load(MINIMAL "    steps: [2, {setWeight: 5}, {pause: {}}, "
	                   "{pause: {duration: 10m}}, 50]\n    approval: {above: 20}\n"
	                   "    onFailure: pause\n    undoWindow: 2h\n    rollbackStepWeight: 10\n"
	                   "    postPromotion: {window: 10m}\n"
	                   "    webhooks:\n      - {name: ok, type: confirm-promotion, "
	                   "url: 'http://127.0.0.1:1/'}\n");
	const eng_policy *p = &c->canaries[0].policy;
	assert_int_equal(p->n_steps, 5);
	assert_int_equal(p->steps[0].weight, 2);
	assert_int_equal(p->steps[1].weight, 5);
	assert_int_equal(p->steps[2].weight, -1);
	assert_int_equal(p->steps[2].pause_ms, 0);
	assert_int_equal(p->steps[3].weight, -1);
	assert_int_equal(p->steps[3].pause_ms, 600000);
	assert_int_equal(p->steps[4].weight, 50);
	assert_true(p->has_approval);
	assert_int_equal(p->approval_above, 20);
	assert_int_equal(p->on_failure, ENG_ONFAIL_PAUSE);
	assert_int_equal(p->undo_window_ms, 7200000);
	assert_int_equal(p->rollback_step_weight, 10);
	assert_int_equal(p->post_promotion_ms, 600000);
	assert_true(p->gate_promotion);
	assert_false(p->gate_rollout);
	assert_false(p->gate_traffic);
	cfg_free(c);
}

static void test_steps_are_checked(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    steps: [2, {setWeight: 5, pause: {}}, "
	                         "{pause: 10m}, {}, 101]\n");
	assert_error(&e, "", "spec.analysis.steps[1]: a step is either setWeight or pause, not "
	             "both");
	assert_error(&e, "", "spec.analysis.steps[2].pause: must be a map such as "
	             "{duration: 10m}");
	assert_error(&e, "", "spec.analysis.steps[3]: needs setWeight or pause");
	assert_error(&e, "", "spec.analysis.steps[4]: must be an integer from 0 to 100");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    steps: [{pause: {}}, 0]\n");
	assert_error(&e, "", "no step gives the canary any traffic");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n    steps: [5, 10]\n");
	assert_error(&e, "", "spec.analysis.stepWeight: cannot be used with spec.analysis.steps");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n    approval: {}\n    onFailure: retry\n");
	assert_error(&e, "", "spec.analysis.approval.above: required");
	assert_error(&e, "", "spec.analysis.onFailure: must be one of rollback, pause");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n    postPromotion: {window: 2h}\n");
	assert_error(&e, "", "postPromotion.window: longer than spec.analysis.undoWindow");
	cfg_errors_release(&e);
}

/* spec.cost and spec.runbook (canaryd/v1): read into the canary; a rate
 * left out is 0; no cost, no runbook without them. */
static void test_cost_and_runbook_are_read(void **state)
{
	cfg *c = must_load(MINIMAL "    stepWeight: 5\n"
	                   "  cost: {currency: GBP, perMillionRequests: 0.40, canaryHourly: 0.12}\n"
	                   "  runbook: https://wiki.example/canaryd\n");
	const cfg_canary *k = &c->canaries[0];
	assert_true(k->has_cost);
	assert_string_equal(k->cost.currency, "GBP");
	assert_float_equal(k->cost.per_million, 0.40, 1e-12);
	assert_float_equal(k->cost.hourly, 0.12, 1e-12);
	assert_float_equal(k->cost.failed, 0, 0);
	assert_string_equal(k->runbook, "https://wiki.example/canaryd");
	cfg_free(c);
	c = must_load(MINIMAL "    stepWeight: 5\n");
	assert_false(c->canaries[0].has_cost);
	assert_null(c->canaries[0].runbook);
	cfg_free(c);
}

/* Each bad value of spec.cost and spec.runbook where it is. */
static void test_cost_and_runbook_are_checked(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n"
	                         "  cost: {currency: gbp, perMillionRequests: -1, canaryHourly: abc,"
	                         " failedRequest: .inf, other: 1}\n"
	                         "  runbook: ftp://wiki.example/\n");
	assert_error(&e, "c.yaml:12:20: ", "spec.cost.currency: must be an ISO 4217 currency code "
	             "of 3 capital letters, such as GBP, got 'gbp'");
	assert_error(&e, "c.yaml:12:45: ", "spec.cost.perMillionRequests: must be a number >= 0, "
	             "got '-1'");
	assert_error(&e, "c.yaml:12:63: ", "spec.cost.canaryHourly: must be a number >= 0");
	assert_error(&e, "c.yaml:12:83: ", "spec.cost.failedRequest: must be a number >= 0");
	assert_error(&e, "c.yaml:12:89: ", "spec.cost.other: unknown field");
	assert_error(&e, "c.yaml:13:12: ", "spec.runbook: must be an http:// or https:// URL");
	assert_int_equal(e.n, 6);
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n  cost: {canaryHourly: 1}\n");
	assert_error(&e, "c.yaml:12:3: ", "spec.cost.currency: required");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n  cost: {currency: GBPX}\n  runbook: [x]\n");
	assert_error(&e, "c.yaml:12:20: ", "spec.cost.currency: must be an ISO 4217");
	assert_error(&e, "c.yaml:13:12: ", "spec.runbook: must be an http:// or https:// URL");
	cfg_errors_release(&e);
}

static void test_alert_matchers_are_read(void **state)
{
	cfg *c = must_load(MINIMAL "    stepWeight: 5\n"
	                   "  alerts:\n    matchers: {severity: critical, team_1: payments, code: 500}\n");
	const json_t *m = c->canaries[0].alert_matchers;
	assert_true(json_is_object(m));
	assert_int_equal(json_object_size(m), 3);
	assert_string_equal(json_string_value(json_object_get(m, "severity")), "critical");
	assert_string_equal(json_string_value(json_object_get(m, "team_1")), "payments");
	assert_string_equal(json_string_value(json_object_get(m, "code")), "500");
	cfg_free(c);
	c = must_load(MINIMAL "    stepWeight: 5\n  alerts: {}\n");
	assert_null(c->canaries[0].alert_matchers); /* only canary=NAME alerts */
	cfg_free(c);
}

static void test_alert_matchers_are_checked(void **state)
{
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n"
	                         "  alerts:\n    matchers: {1x: a, a-b: c, ok: [1], n: ~}\n"
	                         "    other: 1\n");
	assert_error(&e, "c.yaml:13:16: ", "spec.alerts.matchers.1x: not a label name");
	assert_error(&e, "c.yaml:13:23: ", "spec.alerts.matchers.a-b: not a label name");
	assert_error(&e, "c.yaml:13:35: ", "spec.alerts.matchers.ok: must be a string, got a list");
	assert_error(&e, "c.yaml:13:43: ", "spec.alerts.matchers.n: must be a string");
	assert_error(&e, "c.yaml:14:5: ", "spec.alerts.other: unknown field");
	assert_int_equal(e.n, 5);
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: 5\n  alerts: {matchers: {}}\n");
	assert_error(&e, "c.yaml:12:22: ", "spec.alerts.matchers: needs at least one label");
	cfg_errors_release(&e);
}

/* ---- bounds: no file makes a load slow or big (issue 8) ---- */

/* <n> copies of <s> after <head>, then <tail> (free the result). */
static char *repeat(const char *head, const char *s, size_t n, const char *tail)
{
	buf b = BUF_INIT;
	buf_puts(&b, head);
	for (size_t i = 0; i < n; i++)
		buf_puts(&b, s);
	buf_puts(&b, tail);
	return b.p;
}

/* Asserts that no message is longer than <max> bytes or holds a control
 * character: each is one short line, whatever the file held. */
static void assert_messages_are_lines(const cfg_errors *e, size_t max)
{
	for (size_t i = 0; i < e->n; i++) {
		assert_true(strlen(e->msg[i]) <= max);
		for (const unsigned char *p = (const unsigned char *)e->msg[i]; *p; p++)
			assert_true(*p >= 0x20 && *p != 0x7f);
	}
}

static void test_deep_nesting_stops_reading_where_it_crosses_the_bound(void **state)
{
	/* the report: a valid canary then 100,000 '[' took 13 s; reading now
	 * stops at the 65th, at line 13 column 65, without a syntax error from
	 * what comes after */
	char *text = repeat(MINIMAL "    stepWeight: 5\n---\n", "[", 100000, "\n");
	cfg_errors e = must_fail(text);
	assert_error(&e, "c.yaml:13:65: ", "nested more than 64 levels deep");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
	free(text);
	/* flow mappings, and block nesting likewise */
	text = repeat(MINIMAL "    stepWeight: 5\n---\n", "{a: ", 100000, "\n");
	e = must_fail(text);
	assert_error(&e, "c.yaml:13:257: ", "nested more than 64 levels deep");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
	free(text);
	text = repeat(MINIMAL "    stepWeight: 5\n---\n", "- ", 100000, "x\n");
	e = must_fail(text);
	assert_error(&e, "c.yaml:13:129: ", "nested more than 64 levels deep");
	cfg_errors_release(&e);
	free(text);
	/* 64 levels are read: root, spec, analysis and 61 lists in match */
	char *open = repeat("", "[", 61, ""), *close = repeat("", "]", 61, "\n");
	char *ok = repeat(FLAGGER_MINIMAL "    stepWeight: 5\n    extra: ", open, 1, close);
	cfg *c = must_load(ok);
	cfg_free(c);
	free(ok);
	ok = repeat(FLAGGER_MINIMAL "    stepWeight: 5\n    extra: [", open, 1, "]");
	char *bad = repeat(ok, close, 1, "");
	e = must_fail(bad);
	assert_error(&e, "c.yaml:12:73: ", "nested more than 64 levels deep");
	cfg_errors_release(&e);
	free(bad);
	free(ok);
	free(open);
	free(close);
}

static void test_file_size_is_bounded(void **state)
{
	/* a valid file of exactly CFG_MAX_BYTES is read; one byte more is not,
	 * reported where the bound is crossed */
	const char *doc = MINIMAL "    stepWeight: 5\n";
	size_t pad = CFG_MAX_BYTES - strlen(doc) - 1;
	char *text = xmalloc(CFG_MAX_BYTES + 2);
	memcpy(text, doc, strlen(doc));
	memset(text + strlen(doc), '#', pad);
	text[CFG_MAX_BYTES - 1] = '\n';
	text[CFG_MAX_BYTES] = '\0';
	cfg *c = must_load(text);
	cfg_free(c);
	text[CFG_MAX_BYTES] = '#';
	text[CFG_MAX_BYTES + 1] = '\0';
	cfg_errors e = must_fail(text);
	assert_error(&e, "c.yaml:13:1: ", "file too large: more than 4 MiB");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
	free(text);
}

static void test_documents_are_bounded(void **state)
{
	char *text = repeat(MINIMAL "    stepWeight: 5\n", "---\n", CFG_MAX_DOCUMENTS - 1, "");
	cfg *c = must_load(text);
	cfg_free(c);
	free(text);
	text = repeat(MINIMAL "    stepWeight: 5\n", "---\n", 100000, "");
	cfg_errors e = must_fail(text);
	assert_error(&e, "c.yaml:1011:1: ", "more than 1000 documents in the file");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
	free(text);
}

static void test_values_are_bounded_with_or_without_aliases(void **state)
{
	/* 100,001 values in one list: composing stops at the one too many */
	char *text = repeat(FLAGGER_MINIMAL "    stepWeight: 5\n    extra: [", "1,", CFG_MAX_VALUES,
	                    "1]\n");
	cfg_errors e = must_fail(text);
	assert_error(&e, "c.yaml:12:", "more than 100000 values in the file");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
	free(text);
	/* the bound is the file's, not each document's */
	text = repeat("", "---\nk: [" "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
	              "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,"
	              "1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]\n", 1000, "");
	e = must_fail(text);
	assert_error(&e, "c.yaml:", "more than 100000 values in the file");
	cfg_errors_release(&e);
	free(text);
	/* a 1 MiB string used 17 times is 17 MiB of text */
	char *big = xmalloc((1u << 20) + 1);
	memset(big, 'x', 1u << 20);
	big[1u << 20] = '\0';
	char *head = repeat(FLAGGER_MINIMAL "    stepWeight: 5\n    mirror: false\n    extra:\n      - &s ",
	                    big, 1, "\n");
	text = repeat(head, "      - *s\n", 16, "");
	e = must_fail(text);
	assert_error(&e, "c.yaml:", "more than 16 MiB of keys and values in the file");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
	free(text);
	text = repeat(head, "      - *s\n", 14, ""); /* 15 MiB */
	cfg *c = must_load(text);
	cfg_free(c);
	free(text);
	free(head);
	free(big);
}

static void test_anchors_and_aliases_are_composed_as_yaml_says(void **state)
{
	/* an alias is the anchored node again, wherever it is used */
	cfg *c = must_load(HEAD "spec:\n  listen: 127.0.0.1:8080\n"
	                   "  stable: {revision: v1,\n"
	                   "           endpoints: &eps [127.0.0.1:9001, 127.0.0.1:9011]}\n"
	                   "  canary: {revision: v2, endpoints: *eps}\n"
	                   "  analysis: {stepWeight: &w 7, maxWeight: *w}\n");
	assert_int_equal(c->canaries[0].n_canary_eps, 2);
	assert_string_equal(c->canaries[0].canary_eps[1], "127.0.0.1:9011");
	assert_int_equal(c->canaries[0].policy.step_weight, 7);
	assert_int_equal(c->canaries[0].policy.max_weight, 7);
	cfg_free(c);
	cfg_errors e = must_fail(MINIMAL "    stepWeight: *nowhere\n");
	assert_error(&e, "c.yaml:11:17: ", "YAML syntax error: found undefined alias 'nowhere'");
	cfg_errors_release(&e);
	e = must_fail(MINIMAL "    stepWeight: &a 5\n    maxWeight: &a 6\n");
	assert_error(&e, "c.yaml:12:16: ", "YAML syntax error: found duplicate anchor 'a' (first "
	             "at line 11)");
	cfg_errors_release(&e);
	/* anchors are a document's own */
	e = must_fail(MINIMAL "    stepWeight: &a 5\n---\n" MINIMAL "    stepWeight: *a\n");
	assert_error(&e, "c.yaml:23:17: ", "found undefined alias 'a'");
	cfg_errors_release(&e);
	/* many anchors are read (libyaml's loader searched a list for each) */
	char *text = repeat(MINIMAL "    stepWeight: 5\n    sessionAffinity:\n", "", 0, "");
	buf b = BUF_INIT;
	buf_puts(&b, text);
	for (int i = 0; i < 20000; i++)
		buf_printf(&b, "      k%d: &a%d [*a%d]\n", i, i, i ? i - 1 : 0);
	free(text);
	e = must_fail(b.p); /* a0 contains itself: found by the depth bound */
	assert_error(&e, "c.yaml:13:", "nested more than 64 levels deep");
	cfg_errors_release(&e);
	buf_release(&b);
}

static void test_too_many_errors_are_cut_with_a_count(void **state)
{
	char *text = repeat(MINIMAL "    stepWeight: 5\n    webhooks:\n", "      - {}\n", 1500, "");
	cfg_errors e = must_fail(text);
	/* 3000 errors (name and url required): the first 1000, and a count */
	assert_int_equal(e.n, CFG_MAX_ERRORS + 1);
	assert_error(&e, "c.yaml:513:9: ", "too many errors: 2000 more not shown (fix these "
	             "first)");
	cfg_errors_release(&e);
	free(text);
}

static void test_messages_are_short_lines_whatever_the_file_holds(void **state)
{
	/* a 1 MiB key above a duplicate key: the path in the message is cut */
	char *key = repeat("", "k", 1u << 20, "");
	char *text = repeat(MINIMAL "    stepWeight: 5\n    sessionAffinity:\n      ? ", key, 1,
	                    "\n      : {a: 1, a: 2}\n");
	cfg_errors e = must_fail(text);
	assert_error(&e, "c.yaml:14:16: ", "spec.analysis.sessionAffinity.kkkk");
	assert_error(&e, "c.yaml:14:16: ", "duplicate key");
	assert_messages_are_lines(&e, 512);
	cfg_errors_release(&e);
	free(text);
	free(key);
	/* control characters in keys and in the file name are escaped */
	e = (cfg_errors){ 0 };
	cfg *c = NULL;
	const char *bad = MINIMAL "    stepWeight: 5\n    \"a\\e[31mb\\nc\\u0085\": 1\n";
	assert_int_equal(cfg_load_string("x\x1b.yaml", bad, strlen(bad), &c, &e), -1);
	assert_int_equal(e.n, 1);
	assert_string_equal(e.msg[0], "x\\x1b.yaml:12:5: spec.analysis.a\\x1b[31mb\\x0ac\\x85: "
	                    "unknown field; known fields here: interval, threshold, maxWeight, "
	                    "stepWeight, stepWeights, iterations, metrics, webhooks, match, mirror, "
	                    "mirrorWeight, primaryReadyThreshold, canaryReadyThreshold, alerts, "
	                    "sessionAffinity, stepWeightPromotion, judge, alpha, minSamples, "
	                    "errorMargin, latencyRatio, errorRatio, latencyQuantile, warmup, "
	                    "maxDuration, onMaxDuration, onNoData, steps, approval, onFailure, "
	                    "rollbackStepWeight, postPromotion, undoWindow");
	assert_messages_are_lines(&e, 1024);
	cfg_errors_release(&e);
}

/* ---- files that are not configurations ---- */

static void test_only_regular_files_are_read(void **state)
{
	/* a FIFO blocked open(2) for ever and /dev/zero never ended: the
	 * daemon's reload thread, and SIGTERM with it, would wait. The alarm
	 * turns a hang into a failure. */
	char fifo[] = "/tmp/canaryd-test-fifo-XXXXXX";
	int fd = mkstemp(fifo);
	assert_true(fd >= 0);
	close(fd);
	unlink(fifo);
	assert_int_equal(mkfifo(fifo, 0600), 0);
	alarm(10);
	static const char *const paths[] = { NULL, "/dev/zero", "/dev/null", "." };
	for (size_t i = 0; i < sizeof paths / sizeof paths[0]; i++) {
		const char *p = paths[i] ? paths[i] : fifo;
		cfg_errors e = { 0 };
		cfg *c = (cfg *)1;
		assert_int_equal(cfg_load(p, &c, &e), -1);
		assert_null(c);
		assert_int_equal(e.n, 1);
		char want[128];
		snprintf(want, sizeof want, "%s:1:1: cannot read: not a regular file", p);
		assert_string_equal(e.msg[0], want);
		cfg_errors_release(&e);
	}
	alarm(0);
	unlink(fifo);
}

/* ---- control characters (issue 8, log injection) ---- */

static void test_control_characters_are_refused_in_one_line_strings(void **state)
{
	cfg_errors e = must_fail(HEAD "  namespace: \"a\\rb\"\n"
		"  labels: {\"t\\tier\": x, app: \"\\x7f\"}\n"
		"spec:\n  listen: \"127.0.0.1:8080\"\n"
		"  stable: {revision: \"v1\\n2026 info web: promoted\", endpoints: [\"\\x01h:9001\"]}\n"
		"  analysis:\n    stepWeight: 5\n"
		"    metrics:\n"
		"      - name: \"rate\\u009b31m\"\n"
		"        provider: {type: web, url: \"http://x/\\t\", jsonPath: \"$.a\\e\",\n"
		"                   headers: {X-A: \"a\\tb\"}}\n"
		"        thresholdRange: {min: 1}\n"
		"    webhooks:\n"
		"      - {name: \"hook\\e[2J\", url: \"http://h/\\x0b\", type: event}\n"
		"  alerts: {matchers: {team: \"a\\nb\"}}\n");
	assert_error(&e, "c.yaml:5:14: ", "metadata.namespace: must not contain control "
	             "characters, found \\x0d at character 2");
	assert_error(&e, "c.yaml:6:12: ", "metadata.labels.t\\x09ier: must not contain control "
	             "characters, found \\x09 at character 2");
	assert_error(&e, "c.yaml:6:30: ", "metadata.labels.app: must not contain control "
	             "characters, found \\x7f at character 1");
	assert_error(&e, "c.yaml:9:22: ", "spec.stable.revision: must not contain control "
	             "characters, found \\x0a at character 3");
	assert_error(&e, "c.yaml:9:65: ", "spec.stable.endpoints[0]: must not contain control "
	             "characters, found \\x01 at character 1");
	assert_error(&e, "c.yaml:13:15: ", "spec.analysis.metrics[0].name: must not contain "
	             "control characters, found \\x9b at character 5");
	assert_error(&e, "c.yaml:14:36: ", "spec.analysis.metrics[0].provider.url: must not "
	             "contain control characters, found \\x09 at character 10");
	assert_error(&e, "c.yaml:14:61: ", "spec.analysis.metrics[0].provider.jsonPath: must not "
	             "contain control characters, found \\x1b at character 4");
	assert_error(&e, "c.yaml:15:35: ", "spec.analysis.metrics[0].provider.headers.X-A: must "
	             "not contain control characters, found \\x09 at character 2");
	assert_error(&e, "c.yaml:18:16: ", "spec.analysis.webhooks[0].name: must not contain "
	             "control characters, found \\x1b at character 5");
	assert_error(&e, "c.yaml:18:34: ", "spec.analysis.webhooks[0].url: must not contain "
	             "control characters, found \\x0b at character 10");
	assert_error(&e, "c.yaml:19:29: ", "spec.alerts.matchers.team: must not contain control "
	             "characters, found \\x0a at character 2");
	assert_int_equal(e.n, 12);
	assert_messages_are_lines(&e, 512);
	cfg_errors_release(&e);
	/* a webhook URL is a URL: no blanks either */
	e = must_fail(MINIMAL "    stepWeight: 5\n    webhooks: [{name: a, url: 'http://h/a b'}]\n");
	assert_error(&e, "c.yaml:12:31: ", "spec.analysis.webhooks[0].url: must be an http:// or "
	             "https:// URL, got 'http://h/a b'");
	cfg_errors_release(&e);
}

static void test_text_may_span_lines_but_has_no_other_controls(void **state)
{
	cfg *c = must_load("apiVersion: canaryd/v1\nkind: Canary\nmetadata:\n  name: web\n"
		"  annotations: {note: \"line one\\n\\tline two\\r\\n\"}\n"
		"spec:\n  listen: 127.0.0.1:8080\n"
		"  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n"
		"  analysis:\n    stepWeight: 5\n"
		"    metrics:\n"
		"      - name: q\n"
		"        query: |\n          sum(rate(x[1m]))\n          /\tsum(rate(y[1m]))\n"
		"        provider: {type: prometheus, address: 'http://127.0.0.1:9090'}\n"
		"        thresholdRange: {min: 1}\n"
		"      - name: w\n"
		"        provider: {type: web, url: 'http://x/', jsonPath: $.a, method: POST,\n"
		"                   body: \"{\\n  \\\"a\\\": 1\\n}\"}\n"
		"        thresholdRange: {min: 1}\n"
		"    webhooks: [{name: h, url: 'http://h/', metadata: {cmd: \"a\\nb\"}}]\n");
	assert_string_equal(c->canaries[0].sources[0].query,
	                    "sum(rate(x[1m]))\n/\tsum(rate(y[1m]))\n");
	assert_string_equal(c->canaries[0].sources[1].body, "{\n  \"a\": 1\n}");
	cfg_free(c);
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    metrics:\n"
		"      - name: q\n        query: \"a\\eb\"\n"
		"        provider: {type: prometheus, address: 'http://127.0.0.1:9090'}\n"
		"        thresholdRange: {min: 1}\n");
	assert_error(&e, "c.yaml:14:16: ", "spec.analysis.metrics[0].query: must not contain "
	             "control characters other than tabs and line breaks, found \\x1b at "
	             "character 2");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
}

static void test_nul_is_refused_in_every_value(void **state)
{
	/* C strings end at NUL: "1s\0 whatever" was read as 1s, a name with a
	 * NUL as what came before it */
	cfg_errors e = must_fail(MINIMAL "    stepWeight: 5\n    interval: \"1s\\0 whatever\"\n"
	                         "    \"judge\\0x\": threshold\n");
	assert_error(&e, "c.yaml:12:15: ", "value contains a NUL character (\\0)");
	assert_error(&e, "c.yaml:13:5: ", "value contains a NUL character");
	cfg_errors_release(&e);
}

static void test_metric_names_are_not_cut(void **state)
{
	char *text = repeat(METRICS "      - name: ", "x", 64, "\n"
	                    "        provider: {type: web, url: 'http://x/', jsonPath: $.a}\n"
	                    "        thresholdRange: {min: 1}\n");
	cfg_errors e = must_fail(text);
	assert_error(&e, "c.yaml:13:15: ", "spec.analysis.metrics[0].name: must be at most 63 "
	             "characters, got 64");
	cfg_errors_release(&e);
	free(text);
}

static void test_release_and_free_accept_empty_values(void **state)
{
	cfg_errors e = { 0 };
	cfg_errors_release(&e);
	cfg_free(NULL);
	assert_null(cfg_find(NULL, "x"));
	assert_int_equal(e.n, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_document_gets_flagger_defaults),
		cmocka_unit_test(test_full_document_reads_every_field),
		cmocka_unit_test(test_step_weights_make_the_last_step_the_max_weight),
		cmocka_unit_test(test_multiple_documents_and_empty_ones),
		cmocka_unit_test(test_raw_keeps_the_document_as_json_with_yaml_types),
		cmocka_unit_test(test_legacy_threshold_is_min_for_success_rate_max_otherwise),
		cmocka_unit_test(test_unknown_field_suggests_the_nearest_key),
		cmocka_unit_test(test_unknown_field_far_from_any_lists_known_fields),
		cmocka_unit_test(test_bad_integer_names_field_range_and_value),
		cmocka_unit_test(test_bad_durations),
		cmocka_unit_test(test_proxy_settings_are_read_and_checked),
		cmocka_unit_test(test_every_error_in_a_file_is_reported),
		cmocka_unit_test(test_errors_come_in_file_order),
		cmocka_unit_test(test_template_ref_without_a_template_is_an_error),
		cmocka_unit_test(test_metric_thresholds_are_checked),
		cmocka_unit_test(test_step_weight_and_step_weights_together),
		cmocka_unit_test(test_analysis_needs_steps_or_iterations),
		cmocka_unit_test(test_mirror_share_and_its_mode),
		cmocka_unit_test(test_step_weights_must_ascend_within_bounds),
		cmocka_unit_test(test_required_fields_are_reported_where_they_belong),
		cmocka_unit_test(test_names_revisions_and_endpoints_are_checked),
		cmocka_unit_test(test_webhooks_are_checked),
		cmocka_unit_test(test_exec_hooks_are_read_and_checked),
		cmocka_unit_test(test_kind_and_api_version_must_be_known),
		cmocka_unit_test(test_duplicate_names_and_listen_addresses),
		cmocka_unit_test(test_duplicate_keys_are_errors),
		cmocka_unit_test(test_yaml_syntax_error_has_a_position),
		cmocka_unit_test(test_errors_before_a_syntax_error_are_kept),
		cmocka_unit_test(test_no_canary_in_the_file),
		cmocka_unit_test(test_missing_file_cannot_be_read),
		cmocka_unit_test(test_errors_are_appended_to_earlier_ones),
		cmocka_unit_test(test_alias_expansion_is_bounded),
		cmocka_unit_test(test_flagger_examples_load),
		cmocka_unit_test(test_flagger_analysis_means_what_flagger_means),
		cmocka_unit_test(test_the_crd_is_not_a_canary),
		cmocka_unit_test(test_flagger_ignores_unknown_fields_but_checks_known_ones),
		cmocka_unit_test(test_prometheus_metric_is_custom_with_its_source),
		cmocka_unit_test(test_web_metric_reads_every_field),
		cmocka_unit_test(test_template_ref_to_a_metric_template_before_or_after),
		cmocka_unit_test(test_flagger_canary_uses_a_template_after_it),
		cmocka_unit_test(test_each_canary_owns_its_copy_of_a_template),
		cmocka_unit_test(test_unknown_template_ref_names_the_templates_there_are),
		cmocka_unit_test(test_flaggers_other_provider_types_are_valid_but_unsupported),
		cmocka_unit_test(test_template_variables_are_checked_at_load),
		cmocka_unit_test(test_query_without_a_provider_needs_an_address),
		cmocka_unit_test(test_provider_keys_are_checked_by_type),
		cmocka_unit_test(test_duplicate_metric_templates_are_errors),
		cmocka_unit_test(test_relative_baseline_and_failure_duration_are_read),
		cmocka_unit_test(test_relative_baseline_and_failure_duration_are_checked),
		cmocka_unit_test(test_judge_alpha_and_min_samples_defaults),
		cmocka_unit_test(test_no_data_warmup_and_max_duration_defaults),
		cmocka_unit_test(test_no_data_warmup_and_max_duration_are_read),
		cmocka_unit_test(test_no_data_warmup_and_max_duration_are_checked),
		cmocka_unit_test(test_judge_alpha_and_min_samples_are_read),
		cmocka_unit_test(test_judge_alpha_and_min_samples_are_checked),
		cmocka_unit_test(test_sequential_keys_are_refused_under_the_threshold_judge),
		cmocka_unit_test(test_steps_approval_and_on_failure_are_read),
		cmocka_unit_test(test_steps_are_checked),
		cmocka_unit_test(test_cost_and_runbook_are_read),
		cmocka_unit_test(test_cost_and_runbook_are_checked),
		cmocka_unit_test(test_alert_matchers_are_read),
		cmocka_unit_test(test_alert_matchers_are_checked),
		cmocka_unit_test(test_deep_nesting_stops_reading_where_it_crosses_the_bound),
		cmocka_unit_test(test_file_size_is_bounded),
		cmocka_unit_test(test_documents_are_bounded),
		cmocka_unit_test(test_values_are_bounded_with_or_without_aliases),
		cmocka_unit_test(test_anchors_and_aliases_are_composed_as_yaml_says),
		cmocka_unit_test(test_too_many_errors_are_cut_with_a_count),
		cmocka_unit_test(test_messages_are_short_lines_whatever_the_file_holds),
		cmocka_unit_test(test_only_regular_files_are_read),
		cmocka_unit_test(test_control_characters_are_refused_in_one_line_strings),
		cmocka_unit_test(test_text_may_span_lines_but_has_no_other_controls),
		cmocka_unit_test(test_nul_is_refused_in_every_value),
		cmocka_unit_test(test_metric_names_are_not_cut),
		cmocka_unit_test(test_release_and_free_accept_empty_values),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
