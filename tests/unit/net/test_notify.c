/* test_notify.c - Flagger's webhook and alert payloads, key by key as
 * Flagger's Go structs marshal them (pkg/controller/webhook.go,
 * pkg/notifier/{slack,teams,discord}.go), and its severity filter. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "notify.h"

static const notify_canary podinfo = {
	.name = "podinfo", .namespace_ = "test", .checksum = "v2", .weight = 10,
	.stable_rev = "v1", .canary_rev = "v2",
};

/* Parses <txt> (freed) and returns the object. */
static json_t *parse(char *txt)
{
	json_error_t e;
	json_t *o = json_loads(txt, 0, &e);
	assert_non_null(o);
	free(txt);
	return o;
}

static const char *s(const json_t *o, const char *path)
{
	/* "a.b.c" */
	char buf[128];
	strncpy(buf, path, sizeof buf - 1);
	buf[sizeof buf - 1] = '\0';
	const json_t *cur = o;
	for (char *p = strtok(buf, "."); p && cur; p = strtok(NULL, "."))
		cur = json_object_get(cur, p);
	return json_string_value(cur);
}

static void test_hook_payload_has_flaggers_keys(void **state)
{
	json_t *md = json_pack("{s:s}", "cmd", "hey -z 1m");
	json_t *o = parse(notify_hook_payload(&podinfo, "Progressing", "pre-rollout", md));
	assert_string_equal(s(o, "name"), "podinfo");
	assert_string_equal(s(o, "namespace"), "test");
	assert_string_equal(s(o, "phase"), "Progressing");
	assert_string_equal(s(o, "checksum"), "v2");
	assert_string_equal(s(o, "metadata.cmd"), "hey -z 1m");
	assert_string_equal(s(o, "type"), "pre-rollout");
	assert_int_equal(json_integer_value(json_object_get(o, "canaryWeight")), 10);
	json_decref(o);
	json_decref(md);
}

/* Flagger's Metadata is `json:"metadata,omitempty"`: absent when empty */
static void test_hook_payload_omits_empty_metadata(void **state)
{
	json_t *o = parse(notify_hook_payload(&podinfo, "Progressing", "rollout", NULL));
	assert_null(json_object_get(o, "metadata"));
	json_decref(o);
	json_t *empty = json_object();
	o = parse(notify_hook_payload(&podinfo, "Progressing", "rollout", empty));
	assert_null(json_object_get(o, "metadata"));
	json_decref(o);
	json_decref(empty);
}

/* CallEventWebhook: eventType is a Kubernetes event type, the timestamp
 * Unix milliseconds as a string, and the event's keys win */
static void test_event_payload_is_flaggers(void **state)
{
	json_t *md = json_pack("{s:s, s:s}", "eventType", "mine", "team", "payments");
	json_t *o = parse(notify_event_payload(&podinfo, "Failed", md, "rolled back", "rollback",
	                                       NOTIFY_ERROR, 1700000000123ULL));
	assert_string_equal(s(o, "metadata.eventMessage"), "rolled back");
	assert_string_equal(s(o, "metadata.eventType"), "Warning");
	assert_string_equal(s(o, "metadata.timestamp"), "1700000000123");
	assert_string_equal(s(o, "metadata.team"), "payments");
	assert_string_equal(s(o, "phase"), "Failed");
	assert_string_equal(s(o, "event"), "rollback");
	json_decref(o);
	o = parse(notify_event_payload(&podinfo, "Progressing", NULL, "weight 20", "weight",
	                               NOTIFY_INFO, 1));
	assert_string_equal(s(o, "metadata.eventType"), "Normal");
	json_decref(o);
	json_decref(md);
}

static void test_severity_filter_is_flaggers(void **state)
{
	/* info gets everything */
	assert_true(notify_severity_passes(NOTIFY_INFO, NOTIFY_INFO));
	assert_true(notify_severity_passes(NOTIFY_INFO, NOTIFY_WARN));
	assert_true(notify_severity_passes(NOTIFY_INFO, NOTIFY_ERROR));
	/* warn: warnings and errors */
	assert_false(notify_severity_passes(NOTIFY_WARN, NOTIFY_INFO));
	assert_true(notify_severity_passes(NOTIFY_WARN, NOTIFY_WARN));
	assert_true(notify_severity_passes(NOTIFY_WARN, NOTIFY_ERROR));
	/* error: errors only */
	assert_false(notify_severity_passes(NOTIFY_ERROR, NOTIFY_INFO));
	assert_false(notify_severity_passes(NOTIFY_ERROR, NOTIFY_WARN));
	assert_true(notify_severity_passes(NOTIFY_ERROR, NOTIFY_ERROR));
	assert_int_equal(notify_severity_parse("warn"), NOTIFY_WARN);
	assert_int_equal(notify_severity_parse("critical"), -1);
}

static void test_event_severities(void **state)
{
	assert_int_equal(notify_event_severity("rollback", false, true), NOTIFY_ERROR);
	assert_int_equal(notify_event_severity("rollback", false, false), NOTIFY_WARN);
	assert_int_equal(notify_event_severity("check", true, true), NOTIFY_WARN);
	assert_int_equal(notify_event_severity("check", false, true), NOTIFY_INFO);
	assert_int_equal(notify_event_severity("succeeded", false, true), NOTIFY_INFO);
	assert_int_equal(notify_event_severity("max-duration", false, true), NOTIFY_WARN);
	assert_true(notify_event_alerts("rollout-started"));
	assert_true(notify_event_alerts("succeeded"));
	assert_true(notify_event_alerts("rollback"));
	assert_false(notify_event_alerts("weight"));
	assert_false(notify_event_alerts("check"));
}

static const notify_field fields[] = {
	{ "Target", "Deployment/podinfo.test" },
	{ "Failed checks threshold", "5" },
};

static void test_slack_payload(void **state)
{
	json_t *o = parse(notify_alert_payload(NOTIFY_SLACK, "bot", "on-call", &podinfo,
	                                       "Failed", "rollback", "rolled back", fields, 2,
	                                       NOTIFY_ERROR, 1));
	assert_string_equal(s(o, "channel"), "on-call");
	assert_string_equal(s(o, "username"), "bot");
	assert_string_equal(s(o, "icon_emoji"), ":rocket:");
	assert_string_equal(s(o, "icon_url"), "");
	json_t *a = json_array_get(json_object_get(o, "attachments"), 0);
	assert_string_equal(s(a, "color"), "danger");
	assert_string_equal(s(a, "author_name"), "podinfo.test");
	assert_string_equal(s(a, "text"), "rolled back");
	assert_string_equal(json_string_value(json_array_get(json_object_get(a, "mrkdwn_in"), 0)),
	                    "text");
	json_t *f = json_array_get(json_object_get(a, "fields"), 1);
	assert_string_equal(s(f, "title"), "Failed checks threshold");
	assert_string_equal(s(f, "value"), "5");
	assert_true(json_is_false(json_object_get(f, "short")));
	json_decref(o);
	/* Flagger's defaults, and "good" below error */
	o = parse(notify_alert_payload(NOTIFY_DISCORD, NULL, NULL, &podinfo, "Succeeded",
	                               "succeeded", "promoted", NULL, 0, NOTIFY_WARN, 1));
	assert_string_equal(s(o, "channel"), "general");
	assert_string_equal(s(o, "username"), "flagger");
	a = json_array_get(json_object_get(o, "attachments"), 0);
	assert_string_equal(s(a, "color"), "good");
	assert_int_equal(json_array_size(json_object_get(a, "fields")), 0);
	json_decref(o);
}

static void test_msteams_payload(void **state)
{
	json_t *o = parse(notify_alert_payload(NOTIFY_MSTEAMS, "bot", "c", &podinfo, "Failed",
	                                       "rollback", "rolled back", fields, 2,
	                                       NOTIFY_ERROR, 1));
	assert_string_equal(s(o, "@type"), "MessageCard");
	assert_string_equal(s(o, "@context"), "http://schema.org/extensions");
	assert_string_equal(s(o, "themeColor"), "FF0000");
	assert_string_equal(s(o, "summary"), "podinfo.test");
	json_t *sec = json_array_get(json_object_get(o, "sections"), 0);
	assert_string_equal(s(sec, "activityTitle"), "rolled back");
	assert_string_equal(s(sec, "activitySubtitle"), "podinfo.test");
	json_t *f = json_array_get(json_object_get(sec, "facts"), 0);
	assert_string_equal(s(f, "name"), "Target");
	assert_string_equal(s(f, "value"), "Deployment/podinfo.test");
	json_decref(o);
	o = parse(notify_alert_payload(NOTIFY_MSTEAMS, NULL, NULL, &podinfo, "Progressing",
	                               "rollout-started", "started", NULL, 0, NOTIFY_INFO, 1));
	assert_string_equal(s(o, "themeColor"), "0076D7");
	json_decref(o);
}

static void test_generic_payload(void **state)
{
	notify_canary bare = podinfo;
	bare.namespace_ = "";
	json_t *o = parse(notify_alert_payload(NOTIFY_GENERIC, NULL, NULL, &bare, "Failed",
	                                       "rollback", "rolled back", fields, 1, NOTIFY_WARN,
	                                       42));
	assert_string_equal(s(o, "name"), "podinfo");
	assert_string_equal(s(o, "message"), "rolled back");
	assert_string_equal(s(o, "severity"), "warn");
	assert_string_equal(s(o, "event"), "rollback");
	assert_string_equal(s(o, "canaryRevision"), "v2");
	assert_int_equal(json_integer_value(json_object_get(o, "timestamp")), 42);
	assert_int_equal(json_array_size(json_object_get(o, "fields")), 1);
	json_decref(o);
	/* no namespace: the name alone */
	o = parse(notify_alert_payload(NOTIFY_SLACK, NULL, NULL, &bare, "", "", "m", NULL, 0,
	                               NOTIFY_INFO, 1));
	assert_string_equal(s(json_array_get(json_object_get(o, "attachments"), 0), "author_name"),
	                    "podinfo");
	json_decref(o);
}

/* an alert with a runbook links it: a last field for people's chat
 * tools, a key of its own for programs; none without one */
static void test_alert_carries_the_runbook(void **state)
{
	notify_canary rb = podinfo;
	rb.runbook = "https://wiki.example/runbook#canary-rolled-back";
	json_t *o = parse(notify_alert_payload(NOTIFY_GENERIC, NULL, NULL, &rb, "Failed",
	                                       "rollback", "rolled back", fields, 1, NOTIFY_ERROR,
	                                       42));
	assert_string_equal(s(o, "runbook"), rb.runbook);
	assert_int_equal(json_array_size(json_object_get(o, "fields")), 1);
	json_decref(o);
	o = parse(notify_alert_payload(NOTIFY_SLACK, NULL, NULL, &rb, "Failed", "rollback",
	                               "rolled back", fields, 1, NOTIFY_ERROR, 42));
	json_t *fs = json_object_get(json_array_get(json_object_get(o, "attachments"), 0),
	                             "fields");
	assert_int_equal(json_array_size(fs), 2);
	assert_string_equal(s(json_array_get(fs, 1), "title"), "Runbook");
	assert_string_equal(s(json_array_get(fs, 1), "value"), rb.runbook);
	json_decref(o);
	o = parse(notify_alert_payload(NOTIFY_MSTEAMS, NULL, NULL, &rb, "Failed", "rollback",
	                               "rolled back", NULL, 0, NOTIFY_ERROR, 42));
	json_t *facts = json_object_get(json_array_get(json_object_get(o, "sections"), 0),
	                                "facts");
	assert_int_equal(json_array_size(facts), 1);
	assert_string_equal(s(json_array_get(facts, 0), "name"), "Runbook");
	assert_string_equal(s(json_array_get(facts, 0), "value"), rb.runbook);
	json_decref(o);
	o = parse(notify_alert_payload(NOTIFY_GENERIC, NULL, NULL, &podinfo, "Failed", "rollback",
	                               "rolled back", NULL, 0, NOTIFY_ERROR, 42));
	assert_null(json_object_get(o, "runbook"));
	json_decref(o);
}

/* a message that is not UTF-8 still makes a payload */
static void test_bad_utf8_still_sends(void **state)
{
	json_t *o = parse(notify_alert_payload(NOTIFY_GENERIC, NULL, NULL, &podinfo, "", "",
	                                       "bad \xff byte", NULL, 0, NOTIFY_INFO, 1));
	assert_non_null(s(o, "message"));
	json_decref(o);
}

static void test_discord_url_gets_slack_suffix(void **state)
{
	char *u = notify_alert_url(NOTIFY_DISCORD, "https://discord.com/api/webhooks/1/abc");
	assert_string_equal(u, "https://discord.com/api/webhooks/1/abc/slack");
	free(u);
	u = notify_alert_url(NOTIFY_DISCORD, "https://discord.com/api/webhooks/1/abc/slack");
	assert_string_equal(u, "https://discord.com/api/webhooks/1/abc/slack");
	free(u);
	u = notify_alert_url(NOTIFY_DISCORD, "http://127.0.0.1:9/hook/?wait=true");
	assert_string_equal(u, "http://127.0.0.1:9/hook/slack?wait=true");
	free(u);
	u = notify_alert_url(NOTIFY_SLACK, "http://127.0.0.1:9/hook/");
	assert_string_equal(u, "http://127.0.0.1:9/hook/");
	free(u);
	assert_int_equal(notify_kind_parse("msteams"), NOTIFY_MSTEAMS);
	assert_int_equal(notify_kind_parse("rocket"), -1);
	assert_int_equal(notify_kind_parse("gchat"), -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hook_payload_has_flaggers_keys),
		cmocka_unit_test(test_hook_payload_omits_empty_metadata),
		cmocka_unit_test(test_event_payload_is_flaggers),
		cmocka_unit_test(test_severity_filter_is_flaggers),
		cmocka_unit_test(test_event_severities),
		cmocka_unit_test(test_slack_payload),
		cmocka_unit_test(test_msteams_payload),
		cmocka_unit_test(test_generic_payload),
		cmocka_unit_test(test_alert_carries_the_runbook),
		cmocka_unit_test(test_bad_utf8_still_sends),
		cmocka_unit_test(test_discord_url_gets_slack_suffix),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
