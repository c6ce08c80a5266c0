/* test_config_files.c - a configuration of several files or a directory
 * (cfg_load_paths): which files are read and in what order, references
 * across files with Flagger's namespace defaulting, duplicates named in
 * both places, the bounds on files, templateVariables, AlertProviders and
 * Flagger's object names for the query functions. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "../testdir.h"
#include "util.h"

static char dir[64];

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/canaryd-cfgfiles-XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	remove_tree(dir);
	return 0;
}

/* Writes <text> to <name> under the test's directory; returns its path
 * (static: one at a time). */
static const char *put(const char *name, const char *text)
{
	static char p[256];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	char d[256];
	snprintf(d, sizeof d, "%s", p);
	char *slash = strrchr(d, '/');
	*slash = '\0';
	mkdir(d, 0700);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	return p;
}

static void dump(const cfg_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		print_message("  error: %s\n", e->msg[i]);
}

static cfg *must_load(const char *const *paths, size_t n)
{
	cfg_errors e = { 0 };
	cfg *c = NULL;
	int rc = cfg_load_paths(paths, n, &c, &e);
	if (rc != 0)
		dump(&e);
	assert_int_equal(rc, 0);
	cfg_errors_release(&e);
	return c;
}

static cfg_errors must_fail(const char *const *paths, size_t n)
{
	cfg_errors e = { 0 };
	cfg *c = (cfg *)1;
	assert_int_equal(cfg_load_paths(paths, n, &c, &e), -1);
	assert_null(c);
	assert_true(e.n > 0);
	return e;
}

/* The message number <i> is "<dir>/<rest>". */
static void assert_msg(const cfg_errors *e, size_t i, const char *rest)
{
	char want[1024];
	snprintf(want, sizeof want, "%s/%s", dir, rest);
	if (i >= e->n || strcmp(e->msg[i], want)) {
		print_message("want [%zu] %s\n", i, want);
		dump(e);
	}
	assert_true(i < e->n);
	assert_string_equal(e->msg[i], want);
}

/* Asserts that some message of <e> holds <part>. */
static void assert_has(const cfg_errors *e, const char *part)
{
	for (size_t i = 0; i < e->n; i++)
		if (strstr(e->msg[i], part))
			return;
	print_message("no message with '%s'\n", part);
	dump(e);
	fail();
}

#define NATIVE(NAME, PORT) \
	"apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: " NAME "}\n" \
	"spec:\n  listen: 127.0.0.1:" PORT "\n" \
	"  stable: {revision: v1, endpoints: [127.0.0.1:9001]}\n" \
	"  analysis:\n    stepWeight: 10\n    metrics:\n"

#define FLAGGER(NAME, NS) \
	"apiVersion: flagger.app/v1beta1\nkind: Canary\n" \
	"metadata: {name: " NAME ", namespace: " NS "}\n" \
	"spec:\n  provider: istio\n  analysis:\n    stepWeight: 10\n    metrics:\n"

#define TEMPLATE(NAME, NS_LINE, QUERY) \
	"apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\n" \
	"metadata:\n  name: " NAME "\n" NS_LINE \
	"spec:\n  provider: {type: prometheus, address: 'http://127.0.0.1:9090'}\n" \
	"  query: '" QUERY "'\n"

static const char *const BUILTIN = "      - {name: request-success-rate, threshold: 99}\n";

static void test_a_directory_gives_its_yaml_files_sorted(void **state)
{
	char buf1[512];
	snprintf(buf1, sizeof buf1, NATIVE("b", "8082") "%s", BUILTIN);
	put("d/20-b.yml", buf1);
	snprintf(buf1, sizeof buf1, NATIVE("a", "8081") "%s", BUILTIN);
	put("d/10-a.yaml", buf1);
	put("d/.10-a.yaml.swp", "not read {");
	put("d/notes.txt", "not read {");
	put("d/sub/30-c.yaml", "not read: a subdirectory {");
	put("d/sub.yaml/x", "a directory named like a file: not read");
	char d[128];
	snprintf(d, sizeof d, "%s/d", dir);
	const char *paths[] = { d };
	cfg *c = must_load(paths, 1);
	assert_int_equal(c->n_files, 2);
	assert_non_null(strstr(c->files[0], "/d/10-a.yaml"));
	assert_non_null(strstr(c->files[1], "/d/20-b.yml"));
	assert_int_equal(c->n_canaries, 2);
	assert_string_equal(c->canaries[0].name, "a");
	assert_string_equal(c->canaries[0].file, c->files[0]);
	assert_string_equal(c->canaries[1].file, c->files[1]);
	assert_string_equal(c->path, c->files[0]);
	cfg_free(c);

	/* the same file again, by another name: read once */
	char again[256], dotted[256];
	snprintf(again, sizeof again, "%s/d/10-a.yaml", dir);
	snprintf(dotted, sizeof dotted, "%s/d/../d/10-a.yaml", dir);
	const char *three[] = { again, d, dotted };
	c = must_load(three, 3);
	assert_int_equal(c->n_files, 2);
	assert_non_null(strstr(c->files[0], "/d/10-a.yaml"));
	assert_non_null(strstr(c->files[1], "/d/20-b.yml"));
	cfg_free(c);
}

static void test_a_directory_without_yaml_files_is_an_error(void **state)
{
	put("e/readme.txt", "x");
	char d[128];
	snprintf(d, sizeof d, "%s/e", dir);
	const char *paths[] = { d };
	cfg_errors e = must_fail(paths, 1);
	assert_int_equal(e.n, 1);
	assert_msg(&e, 0, "e:1:1: no configuration files in this directory (it reads the *.yaml "
	           "and *.yml files in it, not those of its subdirectories)");
	cfg_errors_release(&e);
}

/* Each message names its file; the files in the order read, each top to
 * bottom; a duplicate names both places. */
static void test_messages_name_their_file_and_both_places(void **state)
{
	char t[512];
	snprintf(t, sizeof t, NATIVE("web", "8080") "%s", BUILTIN);
	put("m/1.yaml", t);
	snprintf(t, sizeof t, "\n" NATIVE("web", "8080") "      - {name: nope}\n");
	put("m/2.yaml", t);
	char d[128];
	snprintf(d, sizeof d, "%s/m", dir);
	const char *paths[] = { d };
	cfg_errors e = must_fail(paths, 1);
	char w[512];
	snprintf(w, sizeof w, "m/2.yaml:4:18: metadata.name: duplicate canary name 'web' (also the "
	         "document at %s/m/1.yaml:1)", dir);
	assert_msg(&e, 0, w);
	snprintf(w, sizeof w, "m/2.yaml:6:11: spec.listen: address '127.0.0.1:8080' is already used "
	         "by canary 'web' (%s/m/1.yaml:1)", dir);
	assert_msg(&e, 1, w);
	assert_msg(&e, 2, "m/2.yaml:11:16: spec.analysis.metrics[0].name: unknown metric 'nope'; "
	           "built in: request-success-rate, request-duration, error-rate (any other needs "
	           "a provider and query, or a templateRef)");
	assert_int_equal(e.n, 3);
	cfg_errors_release(&e);
}

/* As Flagger looks a template up: the templateRef's namespace, or else
 * the canary's; a document without one is in whatever namespace it is
 * applied to, which matches any. */
static void test_template_refs_across_files_with_flaggers_namespaces(void **state)
{
	put("n/canary.yaml", FLAGGER("podinfo", "test")
	    "      - {name: a, templateRef: {name: latency}, threshold: 1}\n"
	    "      - {name: b, templateRef: {name: latency, namespace: istio-system}, threshold: 1}\n"
	    "      - {name: c, templateRef: {name: anywhere}, threshold: 1}\n");
	put("n/t1.yaml", TEMPLATE("latency", "  namespace: test\n", "test_q")
	    "---\n" TEMPLATE("latency", "  namespace: istio-system\n", "istio_q"));
	put("n/t2.yaml", TEMPLATE("anywhere", "", "any_q"));
	char d[128];
	snprintf(d, sizeof d, "%s/n", dir);
	const char *paths[] = { d };
	cfg *c = must_load(paths, 1);
	const cfg_canary *k = &c->canaries[0];
	assert_string_equal(k->sources[0].query, "test_q");
	assert_string_equal(k->sources[1].query, "istio_q");
	assert_string_equal(k->sources[2].query, "any_q");
	cfg_free(c);

	/* a template only in another namespace is not the canary's */
	put("n/t1.yaml", TEMPLATE("latency", "  namespace: prod\n", "prod_q"));
	cfg_errors e = must_fail(paths, 1);
	assert_msg(&e, 0, "n/canary.yaml:9:19: spec.analysis.metrics[0].templateRef: no "
	           "MetricTemplate named 'latency' in namespace 'test' (the canary's) in the 3 "
	           "files; there are: latency (namespace prod), anywhere");
	assert_msg(&e, 1, "n/canary.yaml:10:19: spec.analysis.metrics[1].templateRef: no "
	           "MetricTemplate named 'latency' in namespace 'istio-system' in the 3 files; "
	           "there are: latency (namespace prod), anywhere");
	assert_int_equal(e.n, 2);
	cfg_errors_release(&e);

	/* two templates of one name and namespace, in two files */
	put("n/t1.yaml", TEMPLATE("anywhere", "", "other_q"));
	e = must_fail(paths, 1);
	char w[512];
	snprintf(w, sizeof w, "n/t2.yaml:4:9: metadata.name: duplicate MetricTemplate name "
	         "'anywhere' (also the document at %s/n/t1.yaml:1)", dir);
	assert_msg(&e, e.n - 1, w);
	cfg_errors_release(&e);
}

/* Flagger's missingkey=error, found by --check: a key the query uses that
 * the metric's templateVariables does not give. */
static void test_template_variables_are_checked_against_each_metric(void **state)
{
	put("v/t.yaml", TEMPLATE("dir", "", "x{direction=\"{{ variables.direction }}\"}"));
	put("v/c.yaml", FLAGGER("podinfo", "test")
	    "      - name: good\n        templateRef: {name: dir}\n"
	    "        templateVariables: {direction: inbound}\n        threshold: 1\n"
	    "      - name: bad\n        templateRef: {name: dir}\n"
	    "        templateVariables: {direktion: inbound}\n        threshold: 1\n");
	char d[128];
	snprintf(d, sizeof d, "%s/v", dir);
	const char *paths[] = { d };
	cfg_errors e = must_fail(paths, 1);
	char w[512];
	snprintf(w, sizeof w, "v/c.yaml:14:9: spec.analysis.metrics[1].templateRef: MetricTemplate "
	         "'dir' (%s/v/t.yaml:1) spec.query: {{ variables.direction }} at character 14: the "
	         "metric's templateVariables has no key 'direction'", dir);
	assert_msg(&e, 0, w);
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);

	put("v/c.yaml", FLAGGER("podinfo", "test")
	    "      - name: good\n        templateRef: {name: dir}\n"
	    "        templateVariables: {direction: inbound, unused: x}\n        threshold: 1\n");
	cfg *c = must_load(paths, 1);
	const cfg_metric_source *s = &c->canaries[0].sources[0];
	assert_int_equal(s->n_variables, 2);
	assert_string_equal(s->variables[0].key, "direction");
	assert_string_equal(s->variables[0].value, "inbound");
	cfg_free(c);

	/* an inline query too */
	put("v/t.yaml", "");
	put("v/c.yaml", NATIVE("web", "8080")
	    "      - name: q\n        query: 'x{a=\"{{ variables.a }}\"}'\n"
	    "        provider: {type: prometheus, address: 'http://127.0.0.1:9090'}\n"
	    "        threshold: 1\n");
	e = must_fail(paths, 1);
	assert_msg(&e, 0, "v/c.yaml:11:16: spec.analysis.metrics[0].query: {{ variables.a }} at "
	           "character 6: the metric's templateVariables has no key 'a'");
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
}

/* A Flagger MetricTemplate may lack a query (Kubernetes takes it); a
 * metric that uses it cannot be measured. */
static void test_a_template_without_a_query(void **state)
{
	put("q/t.yaml", "apiVersion: flagger.app/v1beta1\nkind: MetricTemplate\n"
	    "metadata: {name: noq}\n"
	    "spec:\n  provider: {type: prometheus, address: 'http://127.0.0.1:9090', "
	    "secretRef: {name: s}}\n");
	char t[512];
	snprintf(t, sizeof t, NATIVE("web", "8080") "%s", BUILTIN);
	put("q/c.yaml", t);
	char d[128];
	snprintf(d, sizeof d, "%s/q", dir);
	const char *paths[] = { d };
	cfg_free(must_load(paths, 1));
	put("q/c.yaml", NATIVE("web", "8080")
	    "      - {name: x, templateRef: {name: noq}, threshold: 1}\n");
	cfg_errors e = must_fail(paths, 1);
	char w[512];
	snprintf(w, sizeof w, "q/c.yaml:10:19: spec.analysis.metrics[0].templateRef: "
	         "MetricTemplate 'noq' (%s/q/t.yaml:1) has no spec.query, so there is nothing to "
	         "ask its provider", dir);
	assert_msg(&e, 0, w);
	cfg_errors_release(&e);
}

static void test_alert_providers_are_found_across_files(void **state)
{
	put("a/p.yaml", "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\n"
	    "metadata: {name: on-call, namespace: flagger}\n"
	    "spec: {type: slack, channel: on-call-alerts, secretRef: {name: s}}\n");
	put("a/c.yaml", "apiVersion: flagger.app/v1beta1\nkind: Canary\n"
	    "metadata: {name: podinfo, namespace: test}\n"
	    "spec:\n  analysis:\n    stepWeight: 10\n    alerts:\n"
	    "      - {name: a, severity: error, providerRef: {name: on-call, namespace: flagger}}\n"
	    "      - {name: b, severity: warn, providerRef: {name: on-call}}\n"
	    "      - {name: c, severity: loud, providerRef: {name: other, namespace: flagger}}\n");
	char d[128];
	snprintf(d, sizeof d, "%s/a", dir);
	const char *paths[] = { d };
	cfg_errors e = must_fail(paths, 1);
	/* found, but Flagger's address is in a secret canaryd cannot read */
	assert_has(&e, "a/c.yaml:8:36: spec.analysis.alerts[0].providerRef: AlertProvider "
	           "'on-call' (");
	assert_has(&e, "cannot be sent to: its address is in the Kubernetes secret of "
	           "spec.secretRef, which canaryd cannot read: give it in an AlertProvider of "
	           "apiVersion canaryd/v1 with spec.addressFile or spec.addressEnv");
	assert_msg(&e, 1, "a/c.yaml:9:35: spec.analysis.alerts[1].providerRef: no AlertProvider "
	           "named 'on-call' in namespace 'test' (the canary's) in the 2 files; there are: "
	           "on-call (namespace flagger)");
	assert_msg(&e, 2, "a/c.yaml:10:29: spec.analysis.alerts[2].severity: must be one of info, "
	           "warn, error, got 'loud'");
	assert_msg(&e, 3, "a/c.yaml:10:35: spec.analysis.alerts[2].providerRef: no AlertProvider "
	           "named 'other' in namespace 'flagger' in the 2 files; there are: on-call "
	           "(namespace flagger)");
	assert_int_equal(e.n, 4);
	cfg_errors_release(&e);

	/* a canaryd/v1 AlertProvider reads its address and token from a file
	 * or the environment */
	put("a/url", "http://127.0.0.1:9/hooks/T000\n");
	setenv("CANARYD_TEST_ALERT_TOKEN", "tok-123", 1);
	put("a/p.yaml", "apiVersion: canaryd/v1\nkind: AlertProvider\n"
	    "metadata: {name: on-call, namespace: flagger}\n"
	    "spec: {type: msteams, addressFile: url, tokenEnv: CANARYD_TEST_ALERT_TOKEN}\n");
	put("a/c.yaml", "apiVersion: flagger.app/v1beta1\nkind: Canary\n"
	    "metadata: {name: podinfo, namespace: flagger}\n"
	    "spec:\n  analysis:\n    stepWeight: 10\n    alerts:\n"
	    "      - {name: a, severity: warn, providerRef: {name: on-call}}\n");
	cfg *c = must_load(paths, 1);
	const cfg_canary *k = &c->canaries[0];
	assert_int_equal(k->n_alerts, 1);
	assert_string_equal(k->alerts[0].address, "http://127.0.0.1:9/hooks/T000");
	assert_string_equal(k->alerts[0].token, "tok-123");
	assert_int_equal(k->alerts[0].kind, 1); /* msteams */
	assert_int_equal(k->alerts[0].severity, 1); /* warn */
	assert_string_equal(k->alerts[0].provider, "on-call");
	cfg_free(c);

	/* what canaryd does not send is refused where an alert uses it */
	put("a/p.yaml", "apiVersion: flagger.app/v1beta1\nkind: AlertProvider\n"
	    "metadata: {name: on-call, namespace: flagger}\n"
	    "spec: {type: rocket, address: \"https://chat.test/hooks/x\"}\n");
	e = must_fail(paths, 1);
	assert_has(&e, "cannot be sent to: its type 'rocket' is not one canaryd sends (it sends "
	           "slack, msteams, discord and generic)");
	cfg_errors_release(&e);
	put("a/p.yaml", "apiVersion: canaryd/v1\nkind: AlertProvider\nmetadata: {name: on-call}\n"
	    "spec: {type: slack, addressEnv: CANARYD_TEST_NOT_SET_ANYWHERE, secretRef: {name: s}}\n");
	e = must_fail(paths, 1);
	assert_has(&e, "a/p.yaml:4:33: spec.addressEnv: the address is to come from environment "
	           "variable 'CANARYD_TEST_NOT_SET_ANYWHERE', which is not set");
	assert_has(&e, "spec.secretRef: canaryd reads no Kubernetes secrets");
	cfg_errors_release(&e);
	unsetenv("CANARYD_TEST_ALERT_TOKEN");
}

/* {{ target }}, {{ service }}, {{ ingress }} and {{ route }} come from
 * Flagger's object references. */
static void test_flagger_object_names_are_read(void **state)
{
	put("o/c.yaml", "apiVersion: flagger.app/v1beta1\nkind: Canary\n"
	    "metadata: {name: podinfo, namespace: test}\n"
	    "spec:\n  provider: nginx\n"
	    "  targetRef: {apiVersion: apps/v1, kind: Deployment, name: podinfo-deploy}\n"
	    "  service: {name: podinfo-svc, port: 9898}\n"
	    "  ingressRef: {apiVersion: networking.k8s.io/v1, kind: Ingress, name: podinfo-ing}\n"
	    "  routeRef: {name: podinfo-route}\n"
	    "  analysis:\n    stepWeight: 10\n");
	char p[256];
	snprintf(p, sizeof p, "%s/o/c.yaml", dir);
	const char *paths[] = { p };
	cfg *c = must_load(paths, 1);
	const cfg_canary *k = &c->canaries[0];
	assert_string_equal(k->target, "podinfo-deploy");
	assert_string_equal(k->service, "podinfo-svc");
	assert_string_equal(k->ingress, "podinfo-ing");
	assert_string_equal(k->route, "podinfo-route");
	cfg_free(c);
}

static void test_the_number_of_files_is_bounded(void **state)
{
	char t[512];
	snprintf(t, sizeof t, NATIVE("web", "8080") "%s", BUILTIN);
	put("many/000.yaml", t);
	for (int i = 1; i <= CFG_MAX_FILES; i++) {
		char n[64];
		snprintf(n, sizeof n, "many/%03d.yaml", i);
		put(n, "# nothing\n");
	}
	char d[128];
	snprintf(d, sizeof d, "%s/many", dir);
	const char *paths[] = { d };
	cfg_errors e = must_fail(paths, 1);
	char w[256];
	snprintf(w, sizeof w, "many/%03d.yaml:1:1: more than %d configuration files (the files "
	         "named with -c and those of the directories named)", CFG_MAX_FILES, CFG_MAX_FILES);
	assert_msg(&e, 0, w);
	assert_int_equal(e.n, 1);
	cfg_errors_release(&e);
}

static void test_an_old_flagger_api_version_names_the_one_served(void **state)
{
	char p[256];
	snprintf(p, sizeof p, "%s", put("old.yaml", "apiVersion: flagger.app/v1alpha3\n"
	                                "kind: Canary\nmetadata: {name: app}\nspec: {}\n"));
	const char *paths[] = { p };
	cfg_errors e = must_fail(paths, 1);
	assert_msg(&e, 0, "old.yaml:1:13: apiVersion: 'flagger.app/v1alpha3' is an API version "
	           "Flagger no longer serves (its CRD serves flagger.app/v1beta1 only): use "
	           "flagger.app/v1beta1");
	cfg_errors_release(&e);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_a_directory_gives_its_yaml_files_sorted, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_a_directory_without_yaml_files_is_an_error, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_messages_name_their_file_and_both_places, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_template_refs_across_files_with_flaggers_namespaces,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_template_variables_are_checked_against_each_metric,
		                                setup, teardown),
		cmocka_unit_test_setup_teardown(test_a_template_without_a_query, setup, teardown),
		cmocka_unit_test_setup_teardown(test_alert_providers_are_found_across_files, setup,
		                                teardown),
		cmocka_unit_test_setup_teardown(test_flagger_object_names_are_read, setup, teardown),
		cmocka_unit_test_setup_teardown(test_the_number_of_files_is_bounded, setup, teardown),
		cmocka_unit_test_setup_teardown(test_an_old_flagger_api_version_names_the_one_served,
		                                setup, teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
