/* test_config_keys.c - the datadog and newrelic providers in the
 * configuration: their keys read from files (relative to the
 * configuration's directory, trailing line break trimmed) or environment
 * variables when it loads, every way of getting them wrong reported with
 * the provider, the metric and the file or variable but never the key,
 * Flagger's defaults, and Flagger documents (keys in secretRef) valid but
 * marked as not startable with what to write instead. */
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
#include "util.h"

#define KEY "dd0123456789abcdef"
#define APP "app-9876543210"
#define NRKEY "NRIQ-secretsecret"

static char dir[256];

static void dump(const cfg_errors *e)
{
	for (size_t i = 0; i < e->n; i++)
		print_message("  error: %s\n", e->msg[i]);
}

static void write_file(const char *name, const char *text)
{
	char p[512];
	snprintf(p, sizeof p, "%s/%s", dir, name);
	FILE *f = fopen(p, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

/* A canary with <metrics> (list items at six blanks) and <more> documents
 * after it, written to c.yaml in the test's directory and loaded. */
static int load(const char *metrics, const char *more, cfg **out, cfg_errors *e)
{
	char *text = NULL;
	int n = asprintf(&text,
		"apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: web}\nspec:\n"
		"  router: builtin\n  listen: 127.0.0.1:18080\n"
		"  stable: {revision: v1, endpoints: ['127.0.0.1:19001']}\n"
		"  analysis:\n    interval: 1s\n    threshold: 2\n    maxWeight: 30\n"
		"    stepWeight: 10\n    metrics:\n%s%s", metrics, more ? more : "");
	assert_true(n > 0);
	write_file("c.yaml", text);
	free(text);
	char p[512];
	snprintf(p, sizeof p, "%s/c.yaml", dir);
	*out = NULL;
	return cfg_load(p, out, e);
}

static cfg *must_load(const char *metrics, const char *more)
{
	cfg *c;
	cfg_errors e = { 0 };
	if (load(metrics, more, &c, &e) < 0)
		dump(&e);
	assert_int_equal(e.n, 0);
	assert_non_null(c);
	return c;
}

/* Loads, which must fail with exactly one error containing every string of
 * <want> (NULL-terminated) and none of the keys. */
static void must_fail(const char *metrics, const char *more, const char *const *want)
{
	cfg *c;
	cfg_errors e = { 0 };
	assert_int_equal(load(metrics, more, &c, &e), -1);
	if (e.n != 1)
		dump(&e);
	assert_int_equal(e.n, 1);
	for (const char *const *w = want; *w; w++) {
		if (!strstr(e.msg[0], *w))
			print_message("'%s' not in '%s'\n", *w, e.msg[0]);
		assert_non_null(strstr(e.msg[0], *w));
	}
	assert_null(strstr(e.msg[0], KEY));
	assert_null(strstr(e.msg[0], APP));
	assert_null(strstr(e.msg[0], NRKEY));
	cfg_errors_release(&e);
}

static int setup(void **state)
{
	snprintf(dir, sizeof dir, "/tmp/canaryd-keys-XXXXXX");
	assert_non_null(mkdtemp(dir));
	write_file("api.key", KEY "\n");
	write_file("app.key", APP "\r\n");
	write_file("nr.key", NRKEY);
	write_file("empty.key", "\n");
	write_file("blank.key", "dd01 2345\n");
	write_file("star.key", "dd01*2345\n"); /* '*' is the mask of a scrubbed key */
	setenv("CANARYD_TEST_NR", NRKEY "\n", 1);
	setenv("CANARYD_TEST_EMPTY", "", 1);
	unsetenv("CANARYD_TEST_UNSET");
	return 0;
}

static int teardown(void **state)
{
	static const char *const files[] = { "c.yaml", "api.key", "app.key", "nr.key",
	                                     "empty.key", "blank.key", "star.key" };
	char p[512];
	for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
		snprintf(p, sizeof p, "%s/%s", dir, files[i]);
		unlink(p);
	}
	rmdir(dir);
	return 0;
}

#define DD_METRIC(keys) \
	"      - name: dd-errors\n        query: avg:trace.errors{service:{{ name }}}\n" \
	"        provider: {type: datadog, " keys "}\n        thresholdRange: {max: 1}\n"
#define NR_METRIC(keys) \
	"      - name: nr-errors\n        query: SELECT count(*) / 1 FROM Transaction\n" \
	"        provider: {type: newrelic, " keys "}\n        thresholdRange: {max: 1}\n"

static void test_keys_are_read_from_files_and_the_environment(void **state)
{
	char abs[1024];
	snprintf(abs, sizeof abs, DD_METRIC("apiKeyFile: api.key, applicationKeyFile: '%s/app.key'")
	         NR_METRIC("accountId: '1234567', queryKeyEnv: CANARYD_TEST_NR, timeout: 2s"), dir);
	cfg *c = must_load(abs, NULL);
	const cfg_metric_source *dd = &c->canaries[0].sources[0], *nr = &c->canaries[0].sources[1];
	assert_int_equal(dd->type, CFG_PROVIDER_DATADOG);
	assert_string_equal(dd->key[CFG_KEY_API], KEY);   /* relative to c.yaml, "\n" trimmed */
	assert_string_equal(dd->key[CFG_KEY_APP], APP);   /* "\r\n" trimmed */
	assert_null(dd->key[CFG_KEY_QUERY]);
	assert_string_equal(dd->address, "https://api.datadoghq.com"); /* Flagger's default */
	assert_int_equal(dd->timeout_ms, 5000);                        /* Flagger's */
	assert_null(dd->unread);
	assert_int_equal(nr->type, CFG_PROVIDER_NEWRELIC);
	assert_string_equal(nr->key[CFG_KEY_QUERY], NRKEY);
	assert_string_equal(nr->account_id, "1234567");
	assert_string_equal(nr->address, "https://insights-api.newrelic.com");
	assert_int_equal(nr->timeout_ms, 2000);
	cfg_free(c);

	/* a MetricTemplate of canaryd's, with its own address */
	c = must_load("      - {name: t, templateRef: {name: dd}, thresholdRange: {max: 1}}\n",
	              "---\napiVersion: canaryd/v1\nkind: MetricTemplate\nmetadata: {name: dd}\n"
	              "spec:\n  provider: {type: datadog, address: 'http://127.0.0.1:9/',\n"
	              "    apiKeyFile: api.key, applicationKeyFile: app.key}\n  query: avg:x{*}\n");
	dd = &c->canaries[0].sources[0];
	assert_string_equal(dd->key[CFG_KEY_API], KEY);
	assert_string_equal(dd->key[CFG_KEY_APP], APP);
	assert_string_equal(dd->address, "http://127.0.0.1:9/");
	assert_string_equal(dd->template_name, "dd");
	cfg_free(c);
}

static void test_key_errors_name_provider_metric_and_place(void **state)
{
	must_fail(DD_METRIC("apiKeyFile: nope.key, applicationKeyFile: app.key"), NULL,
	          (const char *const[]){ "c.yaml:16:", "provider.apiKeyFile: cannot read the Datadog "
	          "API key of metric 'dd-errors' from 'nope.key': No such file or directory", NULL });
	must_fail(DD_METRIC("apiKeyFile: empty.key, applicationKeyFile: app.key"), NULL,
	          (const char *const[]){ "'empty.key': the file is empty", NULL });
	must_fail(DD_METRIC("apiKeyFile: blank.key, applicationKeyFile: app.key"), NULL,
	          (const char *const[]){ "'blank.key': the key has a character keys do not have", NULL });
	must_fail(DD_METRIC("apiKeyFile: api.key, applicationKeyFile: star.key"), NULL,
	          (const char *const[]){ "'star.key': the key has a character keys do not have",
	          NULL });
	must_fail(DD_METRIC("apiKeyFile: '.', applicationKeyFile: app.key"), NULL,
	          (const char *const[]){ "from '.': not a regular file", NULL });
	must_fail(DD_METRIC("apiKeyFile: api.key"), NULL,
	          (const char *const[]){ "provider.applicationKeyFile or ", "provider."
	          "applicationKeyEnv: required (the Datadog application key of metric 'dd-errors'",
	          NULL });
	must_fail(DD_METRIC("apiKeyFile: api.key, apiKeyEnv: X, applicationKeyFile: app.key"), NULL,
	          (const char *const[]){ "provider.apiKeyEnv: cannot be used with apiKeyFile", NULL });
	must_fail(NR_METRIC("accountId: '1', queryKeyEnv: CANARYD_TEST_UNSET"), NULL,
	          (const char *const[]){ "provider.queryKeyEnv: the New Relic query key of metric "
	          "'nr-errors' is to come from environment variable 'CANARYD_TEST_UNSET', which is "
	          "not set", NULL });
	must_fail(NR_METRIC("accountId: '1', queryKeyEnv: CANARYD_TEST_EMPTY"), NULL,
	          (const char *const[]){ "'CANARYD_TEST_EMPTY', which is empty", NULL });
	must_fail(NR_METRIC("accountId: '1', queryKeyEnv: 'A-B'"), NULL,
	          (const char *const[]){ "must be an environment variable's name", NULL });
	must_fail(NR_METRIC("queryKeyFile: nr.key"), NULL,
	          (const char *const[]){ "provider.accountId: required", NULL });
	must_fail(NR_METRIC("accountId: '12a', queryKeyFile: nr.key"), NULL,
	          (const char *const[]){ "provider.accountId: must be a New Relic account id", NULL });
	/* a template's message names the template */
	cfg *c;
	cfg_errors e = { 0 };
	assert_int_equal(load("      - {name: t, templateRef: {name: dd}, thresholdRange: {max: 1}}\n",
	                      "---\napiVersion: canaryd/v1\nkind: MetricTemplate\nmetadata: {name: dd}\n"
	                      "spec:\n  provider: {type: datadog, apiKeyFile: no.key,\n"
	                      "    applicationKeyFile: app.key}\n  query: avg:x{*}\n", &c, &e), -1);
	assert_true(e.n >= 1);
	assert_non_null(strstr(e.msg[0], "spec.provider.apiKeyFile: cannot read the Datadog API key "
	                                 "of MetricTemplate 'dd' from 'no.key'"));
	cfg_errors_release(&e);
}

static void test_keys_belong_to_their_type(void **state)
{
	must_fail(DD_METRIC("apiKeyFile: api.key, applicationKeyFile: app.key, queryKeyFile: x"),
	          NULL, (const char *const[]){ "provider.queryKeyFile: only for provider type "
	          "newrelic", NULL });
	must_fail(NR_METRIC("accountId: '1', queryKeyFile: nr.key, apiKeyEnv: X"), NULL,
	          (const char *const[]){ "provider.apiKeyEnv: only for provider type datadog", NULL });
	must_fail("      - name: p\n        query: up\n        provider: {type: prometheus, "
	          "address: 'http://127.0.0.1:9', apiKeyFile: api.key}\n"
	          "        thresholdRange: {max: 1}\n", NULL,
	          (const char *const[]){ "provider.apiKeyFile: only for provider type datadog", NULL });
	must_fail(DD_METRIC("apiKeyFile: api.key, applicationKeyFile: app.key, jsonPath: $.x"), NULL,
	          (const char *const[]){ "provider.jsonPath: only for provider type web", NULL });
	must_fail("      - name: dd\n        provider: {type: datadog, apiKeyFile: api.key, "
	          "applicationKeyFile: app.key}\n        thresholdRange: {max: 1}\n", NULL,
	          (const char *const[]){ "query: required with provider type datadog", NULL });
	must_fail(DD_METRIC("address: 'api.datadoghq.com', apiKeyFile: api.key, "
	          "applicationKeyFile: app.key"), NULL,
	          (const char *const[]){ "provider.address: must be an http:// or https:// URL", NULL });
}

/* Flagger's documents keep the keys in a Kubernetes secret: valid, as
 * Flagger takes them, but refused at start with what to write instead;
 * canaryd's keys are not Flagger's. */
static void test_flagger_documents_name_the_keys_to_use(void **state)
{
	static const char *const tmpl =
		"---\napiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: dd}\n"
		"spec:\n  provider: {type: datadog, address: 'https://api.datadoghq.eu',\n"
		"    secretRef: {name: datadog}}\n  query: avg:x{ns:{{ namespace }}}\n"
		"---\napiVersion: flagger.app/v1beta1\nkind: MetricTemplate\nmetadata: {name: nr}\n"
		"spec:\n  provider: {type: newrelic, secretRef: {name: newrelic}}\n"
		"  query: SELECT count(*) / 1 FROM Metric\n";
	cfg *c = must_load("      - {name: a, templateRef: {name: dd}, thresholdRange: {max: 1}}\n"
	                   "      - {name: b, templateRef: {name: nr}, thresholdRange: {max: 1}}\n",
	                   tmpl);
	const cfg_metric_source *dd = &c->canaries[0].sources[0], *nr = &c->canaries[0].sources[1];
	assert_int_equal(dd->type, CFG_PROVIDER_DATADOG);
	assert_string_equal(dd->address, "https://api.datadoghq.eu");
	assert_string_equal(dd->unread, "secretRef");
	assert_non_null(strstr(dd->unread_why, "provider.apiKeyFile (or apiKeyEnv)"));
	assert_null(dd->key[CFG_KEY_API]);
	assert_int_equal(nr->type, CFG_PROVIDER_NEWRELIC);
	assert_string_equal(nr->address, "https://insights-api.newrelic.com");
	assert_non_null(strstr(nr->unread_why, "provider.accountId and provider.queryKeyFile"));
	/* --check's notes name both templates */
	assert_int_equal(c->n_notes, 2);
	assert_non_null(strstr(c->notes[0], "MetricTemplate 'dd' has provider type 'datadog' "
	                                    "without keys canaryd can read"));
	assert_non_null(strstr(c->notes[1], "MetricTemplate 'nr' has provider type 'newrelic'"));
	cfg_free(c);

	/* canaryd's keys in a Flagger document */
	cfg_errors e = { 0 };
	assert_int_equal(load("      - {name: a, templateRef: {name: dd}, thresholdRange: {max: 1}}\n",
	                      "---\napiVersion: flagger.app/v1beta1\nkind: MetricTemplate\n"
	                      "metadata: {name: dd}\nspec:\n  provider: {type: datadog, "
	                      "apiKeyFile: api.key}\n  query: avg:x{*}\n", &c, &e), -1);
	assert_int_equal(e.n, 1);
	assert_non_null(strstr(e.msg[0], "spec.provider.apiKeyFile: is canaryd's: use apiVersion "
	                                 "canaryd/v1 for this MetricTemplate"));
	cfg_errors_release(&e);

	/* a canaryd document with secretRef too: its keys are read, but the
	 * metric does not start (secretRef would not be acted on) */
	c = must_load(DD_METRIC("apiKeyFile: api.key, applicationKeyFile: app.key, "
	                        "secretRef: {name: dd}"), NULL);
	assert_string_equal(c->canaries[0].sources[0].unread, "secretRef");
	assert_non_null(c->canaries[0].sources[0].unread_why);
	cfg_free(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_keys_are_read_from_files_and_the_environment),
		cmocka_unit_test(test_key_errors_name_provider_metric_and_place),
		cmocka_unit_test(test_keys_belong_to_their_type),
		cmocka_unit_test(test_flagger_documents_name_the_keys_to_use),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
