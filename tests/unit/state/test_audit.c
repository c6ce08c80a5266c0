/* test_audit.c - the audit's hash chain (audit.h, docs/audit.md): the
 * canonical form byte for byte (a golden hash, and SQLite's json_quote for
 * every ASCII byte, as the auditor's sqlite3 check needs), Europe/London on
 * both sides of both clock changes and against the system's tz database,
 * and the chain in a real store: intact, then altered, deleted, moved and
 * swapped rows each named, and a version 3 database chained at open. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "audit.h"
#include "store.h"

#include "../testdir.h"

/* ---- the canonical form ---- */

static void test_canonical_form_and_hash_are_the_documented_ones(void **state)
{
	(void)state;
	audit_event e = {
		.seq = 1, .canary = "shop", .time_ms = 1774745999999LL, .type = "check",
		.phase = "Progressing", .weight = 10, .message = "a \"q\" \\ \n\x01 \xc3\xa9",
		.actor = "canaryd", .metrics = "[{\"name\":\"x\",\"value\":1.5}]", .detail = NULL,
	};
	buf b = BUF_INIT;
	audit_canonical(&b, &e);
	assert_string_equal(b.p, "{\"seq\":1,\"canary\":\"shop\",\"time\":1774745999999,"
	                         "\"type\":\"check\",\"phase\":\"Progressing\",\"weight\":10,"
	                         "\"message\":\"a \\\"q\\\" \\\\ \\n\\u0001 \xc3\xa9\","
	                         "\"actor\":\"canaryd\","
	                         "\"metrics\":\"[{\\\"name\\\":\\\"x\\\",\\\"value\\\":1.5}]\","
	                         "\"detail\":null}");
	buf_release(&b);
	/* computed apart: python3 hashlib.sha256(("0"*64 + canonical).encode()) */
	char h[AUDIT_HEX];
	assert_int_equal(audit_hash(AUDIT_GENESIS, &e, h), 0);
	assert_string_equal(h, "bdd8520bc7c6715953cba12f7dbd4a2b1b363e46f8e86df5adafd05e2d540df1");
	/* every field is in the hash */
	char h2[AUDIT_HEX];
	audit_event f = e;
	f.seq = 2;
	assert_int_equal(audit_hash(AUDIT_GENESIS, &f, h2), 0);
	assert_string_not_equal(h, h2);
	f = e;
	f.detail = "";
	audit_hash(AUDIT_GENESIS, &f, h2);
	assert_string_not_equal(h, h2); /* "" is not null */
	f = e;
	f.time_ms++;
	audit_hash(AUDIT_GENESIS, &f, h2);
	assert_string_not_equal(h, h2);
	audit_hash("1000000000000000000000000000000000000000000000000000000000000000", &e, h2);
	assert_string_not_equal(h, h2);
}

/* The auditor rebuilds the canonical form with the sqlite3 shell's
 * json_object(): its escaping must be SQLite's, byte for byte. */
static void test_strings_are_escaped_as_sqlite_json_quote_does(void **state)
{
	(void)state;
	sqlite3 *db;
	assert_int_equal(sqlite3_open(":memory:", &db), SQLITE_OK);
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(db, "SELECT json_quote(?1)", -1, &q, NULL), SQLITE_OK);
	char s[64];
	for (int c = 1; c < 0x80 + 6; c++) {
		if (c < 0x80)
			snprintf(s, sizeof s, "a%cb%c", c, c);
		else /* UTF-8: é, €, 😀, U+2028, U+2029, U+FEFF */
			snprintf(s, sizeof s, "%s", (const char *[]){ "\xc3\xa9", "\xe2\x82\xac",
			                                              "\xf0\x9f\x98\x80", "\xe2\x80\xa8",
			                                              "\xe2\x80\xa9", "\xef\xbb\xbf" }[c - 0x80]);
		sqlite3_bind_text(q, 1, s, -1, SQLITE_STATIC);
		assert_int_equal(sqlite3_step(q), SQLITE_ROW);
		buf b = BUF_INIT;
		audit_quote(&b, s);
		assert_string_equal(b.p, (const char *)sqlite3_column_text(q, 0));
		buf_release(&b);
		sqlite3_reset(q);
	}
	sqlite3_finalize(q);
	sqlite3_close(db);
	buf b = BUF_INIT;
	audit_quote(&b, NULL);
	assert_string_equal(b.p, "null");
	buf_release(&b);
}

/* ---- Europe/London ---- */

static int64_t utc_ms(const char *s)
{
	int64_t ms = -1;
	assert_int_equal(audit_parse_time(s, &ms), 0);
	return ms;
}

static void assert_london(const char *utc, const char *local, const char *zone)
{
	char out[64];
	const char *z = audit_london(utc_ms(utc), out, sizeof out);
	assert_string_equal(out, local);
	assert_string_equal(z, zone);
}

static void test_london_time_on_both_sides_of_both_clock_changes(void **state)
{
	(void)state;
	/* 2026: 29 March and 25 October */
	assert_london("2026-03-29T00:59:59.999Z", "2026-03-29T00:59:59.999+00:00", "GMT");
	assert_london("2026-03-29T01:00:00Z", "2026-03-29T02:00:00.000+01:00", "BST");
	assert_london("2026-10-25T00:59:59.999Z", "2026-10-25T01:59:59.999+01:00", "BST");
	assert_london("2026-10-25T01:00:00Z", "2026-10-25T01:00:00.000+00:00", "GMT");
	/* 2027: 28 March and 31 October (the last day of the month) */
	assert_london("2027-03-28T00:59:59.999Z", "2027-03-28T00:59:59.999+00:00", "GMT");
	assert_london("2027-03-28T01:00:00Z", "2027-03-28T02:00:00.000+01:00", "BST");
	assert_london("2027-10-31T00:59:59.999Z", "2027-10-31T01:59:59.999+01:00", "BST");
	assert_london("2027-10-31T01:00:00Z", "2027-10-31T01:00:00.000+00:00", "GMT");
	/* the Sunday before is not the last one */
	assert_london("2026-03-22T12:00:00Z", "2026-03-22T12:00:00.000+00:00", "GMT");
	/* a local day other than the UTC day */
	assert_london("2026-06-30T23:30:00Z", "2026-07-01T00:30:00.000+01:00", "BST");
	assert_london("2026-12-31T23:59:59.999Z", "2026-12-31T23:59:59.999+00:00", "GMT");
	assert_london("2024-02-29T12:00:00Z", "2024-02-29T12:00:00.000+00:00", "GMT");
}

/* The rule against the tz database, every hour from 1996 to 2037 and the
 * minutes around each change, where the system has one. */
static void test_london_rule_agrees_with_the_tz_database(void **state)
{
	(void)state;
	if (access("/usr/share/zoneinfo/Europe/London", R_OK) != 0) {
		print_message("no tz database: skipped\n");
		skip();
	}
	char *old = getenv("TZ") ? strdup(getenv("TZ")) : NULL;
	setenv("TZ", "Europe/London", 1);
	tzset();
	int checked = 0;
	for (time_t t = 820454400; t < 2114380800; t += 3600) { /* 1996-01-01 to 2037 */
		for (int d = -60; d <= 60; d += 60) {
			time_t u = t + d;
			struct tm tm;
			localtime_r(&u, &tm);
			int bst = audit_is_bst((int64_t)u * 1000);
			if (bst != (tm.tm_isdst > 0))
				fail_msg("at %lld: the rule says %s, the tz database %s", (long long)u,
				         bst ? "BST" : "GMT", tm.tm_zone);
			checked++;
		}
	}
	assert_true(checked > 300000);
	if (old) {
		setenv("TZ", old, 1);
		free(old);
	} else {
		unsetenv("TZ");
	}
	tzset();
}

static void test_parse_time_takes_rfc3339_and_dates_only(void **state)
{
	(void)state;
	assert_int_equal(utc_ms("1970-01-01T00:00:00Z"), 0);
	assert_int_equal(utc_ms("2026-03-29T02:00:00+01:00"), utc_ms("2026-03-29T01:00:00Z"));
	assert_int_equal(utc_ms("2026-03-29T01:00:00.5Z"), utc_ms("2026-03-29T01:00:00Z") + 500);
	assert_int_equal(utc_ms("2026-03-29T01:00:00.123456Z"),
	                 utc_ms("2026-03-29T01:00:00Z") + 123);
	assert_int_equal(utc_ms("2026-03-29"), utc_ms("2026-03-29T00:00:00Z"));
	assert_int_equal(utc_ms("2026-03-29t00:00:00-05:30"), utc_ms("2026-03-29T05:30:00Z"));
	static const char *const bad[] = {
		"", "2026", "2026-3-29", "2026-03-29T01:00:00", "2026-03-29T01:00Z",
		"2026-02-29", "2026-13-01", "2026-04-31", "2026-03-29T24:00:00Z",
		"2026-03-29T01:00:00.Z", "2026-03-29T01:00:00Z junk", "2026-03-29T01:00:00+0100",
		"yesterday", "2026-03-29T01:00:60Z",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t ms;
		if (audit_parse_time(bad[i], &ms) == 0)
			fail_msg("'%s' was taken", bad[i]);
	}
	assert_int_equal(audit_parse_time(NULL, &(int64_t){ 0 }), -1);
}

/* ---- the chain in a store ---- */

typedef struct fixture {
	char dir[64];
	char db[128];
	store *st;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/canaryd-test-audit-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->db, sizeof f->db, "%s/canaryd.db", f->dir);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	fixture *f = *state;
	store_close(f->st);
	remove_tree(f->dir);
	free(f);
	return 0;
}

static void open_store(fixture *f)
{
	char err[512] = "";
	store_close(f->st);
	f->st = NULL;
	if (store_open(f->dir, &f->st, err, sizeof err) != 0)
		fail_msg("store_open: %s", err);
}

/* <n> events of <name>, one commit each, the i-th at time 1000 + i. */
static void write_events(fixture *f, const char *name, int n)
{
	store_record rec;
	memset(&rec, 0, sizeof rec);
	rec.st.phase = ENG_PROGRESSING;
	rec.stable_eps = "127.0.0.1:1";
	rec.canary_eps = "127.0.0.1:2";
	for (int i = 0; i < n; i++) {
		eng_event ev;
		memset(&ev, 0, sizeof ev);
		snprintf(ev.type, sizeof ev.type, "%s", i % 2 ? "check" : "transition");
		ev.phase = ENG_PROGRESSING;
		ev.weight = i;
		snprintf(ev.message, sizeof ev.message, "event %d of %s", i, name);
		snprintf(ev.actor, sizeof ev.actor, "canaryd");
		if (i == 2)
			snprintf(ev.detail, sizeof ev.detail, "hook said \"no\"\n");
		char err[256];
		assert_int_equal(store_commit(f->st, name, &rec, &ev, NULL, 1, 1000 + (uint64_t)i,
		                              err, sizeof err), 0);
	}
}

/* verify of <name>: intact (1/0) and the message. */
static int verify(fixture *f, const char *name, char *msg, size_t msglen, const char **problem)
{
	json_t *res = NULL;
	char err[256];
	assert_int_equal(store_audit_verify(f->st, name, &res, err, sizeof err), 0);
	snprintf(msg, msglen, "%s", json_string_value(json_object_get(res, "message")));
	static char prob[32];
	snprintf(prob, sizeof prob, "%s",
	         json_string_value(json_object_get(json_object_get(res, "firstBad"), "problem"))
	         ? json_string_value(json_object_get(json_object_get(res, "firstBad"), "problem"))
	         : "");
	if (problem)
		*problem = prob;
	int intact = json_is_true(json_object_get(res, "intact"));
	json_decref(res);
	return intact;
}

/* Runs <sql> on the file as another program would, store closed. */
static void tamper(fixture *f, const char *sql)
{
	store_close(f->st);
	f->st = NULL;
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(f->db, &raw), SQLITE_OK);
	char *e = NULL;
	if (sqlite3_exec(raw, sql, NULL, NULL, &e) != SQLITE_OK)
		fail_msg("%s: %s", sql, e);
	sqlite3_close(raw);
	open_store(f);
}

static void test_chain_is_intact_per_canary_and_names_each_tampering(void **state)
{
	fixture *f = *state;
	open_store(f);
	write_events(f, "shop", 6);  /* ids 1..6 */
	write_events(f, "cart", 3);  /* ids 7..9: its own chain */
	char msg[512];
	const char *prob;
	assert_true(verify(f, "shop", msg, sizeof msg, NULL));
	assert_non_null(strstr(msg, "6 events, head "));
	assert_true(verify(f, "cart", msg, sizeof msg, NULL));
	assert_true(verify(f, "none", msg, sizeof msg, NULL));
	assert_true(store_audit_has(f->st, "shop"));
	assert_false(store_audit_has(f->st, "none"));
	json_t *names = store_audit_canaries(f->st);
	assert_int_equal(json_array_size(names), 2);
	assert_string_equal(json_string_value(json_array_get(names, 0)), "cart");
	json_decref(names);

	/* one byte of a message */
	tamper(f, "UPDATE events SET message = 'event 3 of shoq' WHERE id = 4");
	assert_false(verify(f, "shop", msg, sizeof msg, &prob));
	assert_string_equal(prob, "altered");
	assert_string_equal(msg, "event id 4 (seq 4) was altered: its content does not give its hash");
	assert_true(verify(f, "cart", msg, sizeof msg, NULL));
	tamper(f, "UPDATE events SET message = 'event 3 of shop' WHERE id = 4");
	assert_true(verify(f, "shop", msg, sizeof msg, NULL));

	/* a detail, a weight, a time, a NULL made "" */
	static const char *const alter[] = {
		"UPDATE events SET detail = 'hook said yes' WHERE id = 3",
		"UPDATE events SET weight = 99 WHERE id = 3",
		"UPDATE events SET time_ms = time_ms + 1 WHERE id = 3",
		"UPDATE events SET metrics = '' WHERE id = 3",
	};
	for (size_t i = 0; i < sizeof alter / sizeof alter[0]; i++) {
		tamper(f, "CREATE TABLE keep AS SELECT * FROM events WHERE id = 3");
		tamper(f, alter[i]);
		assert_false(verify(f, "shop", msg, sizeof msg, &prob));
		assert_string_equal(prob, "altered");
		tamper(f, "DELETE FROM events WHERE id = 3; INSERT INTO events SELECT * FROM keep;"
		          " DROP TABLE keep");
		assert_true(verify(f, "shop", msg, sizeof msg, NULL));
	}

	/* a hash recomputed for an altered row alone breaks the next link */
	char h[AUDIT_HEX];
	audit_event e = { .seq = 6, .canary = "shop", .time_ms = 1005, .type = "check",
	                  .phase = "Progressing", .weight = 5, .message = "forged", .metrics = "[]",
	                  .actor = "canaryd" };
	assert_int_equal(audit_hash(AUDIT_GENESIS, &e, h), 0);
	char sql[512];
	snprintf(sql, sizeof sql, "CREATE TABLE keep AS SELECT * FROM events WHERE id = 6;"
	         "UPDATE events SET message = 'forged', prev_hash = '%s', hash = '%s' WHERE id = 6",
	         AUDIT_GENESIS, h);
	tamper(f, sql);
	assert_false(verify(f, "shop", msg, sizeof msg, &prob));
	assert_string_equal(msg, "event id 6 (seq 6) was altered: its prev_hash is not the hash "
	                         "of seq 5");
	tamper(f, "DELETE FROM events WHERE id = 6; INSERT INTO events SELECT * FROM keep;"
	          " DROP TABLE keep");

	/* a row deleted, the newest row deleted */
	tamper(f, "CREATE TABLE keep AS SELECT * FROM events WHERE id IN (3, 6);"
	          "DELETE FROM events WHERE id = 3");
	assert_false(verify(f, "shop", msg, sizeof msg, &prob));
	assert_string_equal(prob, "missing");
	assert_string_equal(msg, "event seq 3 is missing (deleted) before event id 4 (seq 4)");
	tamper(f, "INSERT INTO events SELECT * FROM keep WHERE id = 3; DELETE FROM events WHERE id = 6");
	assert_false(verify(f, "shop", msg, sizeof msg, &prob));
	assert_string_equal(msg, "event seq 6, the newest, is missing (deleted)");
	tamper(f, "INSERT INTO events SELECT * FROM keep WHERE id = 6; DROP TABLE keep");
	assert_true(verify(f, "shop", msg, sizeof msg, NULL));

	/* two rows moved whole: ids kept, everything else swapped */
	tamper(f, "CREATE TABLE keep AS SELECT * FROM events WHERE id IN (2, 5);"
	          "UPDATE events SET id = -2 WHERE id = 2; UPDATE events SET id = 2 WHERE id = 5;"
	          "UPDATE events SET id = 5 WHERE id = -2");
	assert_false(verify(f, "shop", msg, sizeof msg, &prob));
	assert_string_equal(prob, "reordered");
	assert_string_equal(msg, "event id 2 (seq 5) is out of order: seq 2 comes first: events "
	                         "were reordered");
	tamper(f, "DELETE FROM events WHERE id IN (2, 5); INSERT INTO events SELECT * FROM keep;"
	       " DROP TABLE keep");
	assert_true(verify(f, "shop", msg, sizeof msg, NULL));

	/* two rows' contents swapped under their seq and hashes */
#define COLS "time_ms, type, phase, weight, message, actor, metrics, detail"
#define PAYLOAD "(" COLS ")"
	tamper(f, "CREATE TABLE keep AS SELECT * FROM events WHERE id IN (2, 5);"
	          "UPDATE events SET " PAYLOAD " = (SELECT " COLS " FROM keep WHERE id = 5)"
	          " WHERE id = 2;"
	          "UPDATE events SET " PAYLOAD " = (SELECT " COLS " FROM keep WHERE id = 2)"
	          " WHERE id = 5");
	assert_false(verify(f, "shop", msg, sizeof msg, &prob));
	assert_string_equal(prob, "reordered");
	assert_string_equal(msg, "event id 2 (seq 2) holds the content of seq 5 (event id 5): "
	                         "events were reordered");
}

/* A database of version 3 (no chain) is chained at open, each canary's
 * events in id order, and new events go on from there. */
static void test_version_3_events_are_chained_at_open(void **state)
{
	fixture *f = *state;
	open_store(f);
	write_events(f, "shop", 3);
	write_events(f, "cart", 2);
	write_events(f, "shop", 2);
	store_close(f->st);
	f->st = NULL;
	/* back to version 3 as it was: no chain columns, no heads */
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(f->db, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw,
	        "CREATE TABLE ev3 AS SELECT id, time_ms, canary, type, phase, weight, message,"
	        " actor, metrics, detail FROM events; DROP TABLE events; DROP TABLE audit_heads;"
	        "CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INT,"
	        " canary TEXT, type TEXT, phase TEXT, weight INT, message TEXT, actor TEXT,"
	        " metrics TEXT, detail TEXT); INSERT INTO events SELECT * FROM ev3; DROP TABLE ev3;"
	        "CREATE INDEX events_canary_id ON events(canary, id); PRAGMA user_version = 3",
	        NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	open_store(f);
	char msg[512];
	assert_true(verify(f, "shop", msg, sizeof msg, NULL));
	assert_non_null(strstr(msg, "5 events"));
	assert_true(verify(f, "cart", msg, sizeof msg, NULL));
	assert_non_null(strstr(msg, "2 events"));
	write_events(f, "shop", 1);
	assert_true(verify(f, "shop", msg, sizeof msg, NULL));
	assert_non_null(strstr(msg, "6 events"));
	json_t *ev = store_events(f->st, "shop", 0);
	assert_int_equal(json_array_size(ev), 6);
	for (size_t i = 0; i < 6; i++)
		assert_int_equal(json_integer_value(json_object_get(json_array_get(ev, i), "seq")),
		                 (json_int_t)i + 1);
	json_decref(ev);
}

static void test_export_formats_and_time_range(void **state)
{
	fixture *f = *state;
	open_store(f);
	write_events(f, "shop", 4); /* times 1000..1003 */
	buf b = BUF_INIT;
	char err[256];
	assert_int_equal(store_audit_export(f->st, "shop", STORE_EXPORT_JSON, 1001, 1003, &b, err,
	                                    sizeof err), 0);
	json_t *j = json_loads(b.p, 0, NULL);
	assert_int_equal(json_array_size(j), 2);
	json_t *e = json_array_get(j, 1);
	assert_int_equal(json_integer_value(json_object_get(e, "seq")), 3);
	assert_string_equal(json_string_value(json_object_get(e, "time")), "1970-01-01T00:00:01.002Z");
	assert_string_equal(json_string_value(json_object_get(e, "timeLondon")),
	                    "1970-01-01T00:00:01.002+00:00");
	assert_string_equal(json_string_value(json_object_get(e, "zoneLondon")), "GMT");
	assert_string_equal(json_string_value(json_object_get(e, "detail")), "hook said \"no\"\n");
	assert_int_equal(strlen(json_string_value(json_object_get(e, "hash"))), 64);
	json_decref(j);
	buf_reset(&b);
	assert_int_equal(store_audit_export(f->st, "shop", STORE_EXPORT_CSV, 0, INT64_MAX, &b, err,
	                                    sizeof err), 0);
	assert_non_null(strstr(b.p, "id,seq,time_utc,time_ms,time_london,zone_london,canary,"));
	/* the detail's quotes doubled, its line break kept inside quotes */
	assert_non_null(strstr(b.p, ",\"hook said \"\"no\"\"\n\","));
	int lines = 0;
	for (const char *p = b.p; (p = strstr(p, "\r\n")); p += 2)
		lines++;
	assert_int_equal(lines, 5);
	buf_reset(&b);
	assert_int_equal(store_audit_export(f->st, "shop", STORE_EXPORT_NDJSON, 0, INT64_MAX, &b,
	                                    err, sizeof err), 0);
	int n = 0;
	for (char *line = strtok(b.p, "\n"); line; line = strtok(NULL, "\n"), n++) {
		json_t *o = json_loads(line, 0, NULL);
		assert_non_null(o);
		json_decref(o);
	}
	assert_int_equal(n, 4);
	buf_release(&b);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_canonical_form_and_hash_are_the_documented_ones),
		cmocka_unit_test(test_strings_are_escaped_as_sqlite_json_quote_does),
		cmocka_unit_test(test_london_time_on_both_sides_of_both_clock_changes),
		cmocka_unit_test(test_london_rule_agrees_with_the_tz_database),
		cmocka_unit_test(test_parse_time_takes_rfc3339_and_dates_only),
		T(test_chain_is_intact_per_canary_and_names_each_tampering),
		T(test_version_3_events_are_chained_at_open),
		T(test_export_formats_and_time_range),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
