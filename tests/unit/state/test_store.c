/* test_store.c - state and audit in SQLite: round trips, ordering, the
 * rollouts table, restarts and failures: damaged, truncated, empty and
 * foreign files refused at open and left as they were, and faults while
 * running (a full disk retried, an I/O error or a corrupt page latched).
 * Each test works in its own directory under /tmp, removed afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

#include "../testdir.h"

typedef struct fixture {
	char dir[64];     /* the mkdtemp directory */
	char data[128];   /* dir/data/sub: the store's DIR, made by store_open */
	store *st;
} fixture;

static int setup(void **state)
{
	fixture *f = calloc(1, sizeof *f);
	snprintf(f->dir, sizeof f->dir, "/tmp/canaryd-test-store-XXXXXX");
	if (!mkdtemp(f->dir))
		return -1;
	snprintf(f->data, sizeof f->data, "%s/data/sub", f->dir);
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

static store *open_ok(fixture *f)
{
	char err[256] = "";
	int rc = store_open(f->data, &f->st, err, sizeof err);
	if (rc != 0)
		print_error("store_open: %s\n", err);
	assert_int_equal(rc, 0);
	assert_non_null(f->st);
	return f->st;
}

static void reopen(fixture *f)
{
	store_close(f->st);
	f->st = NULL;
	open_ok(f);
}

/* A state with every field set to something recognisable. */
static void sample_record(store_record *r, eng_phase phase)
{
	memset(r, 0, sizeof *r);
	r->st.phase = phase;
	r->st.weight = 30;
	r->st.failed_checks = 2;
	r->st.iterations = 7;
	r->st.manual_weight = true;
	snprintf(r->st.stable_rev, sizeof r->st.stable_rev, "v1");
	snprintf(r->st.canary_rev, sizeof r->st.canary_rev, "v2-with-'quote\"");
	r->st.rollout_started_ms = 1764100000123ull;
	r->st.next_check_ms = 1764100060456ull;
	r->st.unready_since_ms = 1764100030789ull;
	r->st.last_transition_ms = 1764100045000ull;
	snprintf(r->st.message, sizeof r->st.message, "advance canary weight 30");
	r->st.breach_since_ms[0] = 1764100050001ull;
	r->st.breach_since_ms[ENG_MAX_METRICS - 1] = 7;
	r->stable_eps = "127.0.0.1:9001,[::1]:9003";
	r->canary_eps = "127.0.0.1:9002";
}

static void sample_event(eng_event *e, const char *type, eng_phase phase, int weight)
{
	memset(e, 0, sizeof *e);
	snprintf(e->type, sizeof e->type, "%s", type);
	e->phase = phase;
	e->weight = weight;
	snprintf(e->message, sizeof e->message, "%s at %d", type, weight);
	snprintf(e->actor, sizeof e->actor, "canaryd");
}

/* A check with a passing success rate (min), a failing duration (max) and
 * a metric that had no data. */
static void sample_check(eng_event *e)
{
	sample_event(e, "check", ENG_PROGRESSING, 30);
	e->n_metrics = 3;
	eng_metric_result *m = e->metrics;
	snprintf(m[0].name, sizeof m[0].name, "request-success-rate");
	m[0].has_value = true;
	m[0].value = 99.5;
	m[0].has_min = true;
	m[0].min = 99;
	m[0].passed = true;
	snprintf(m[1].name, sizeof m[1].name, "request-duration");
	m[1].has_value = true;
	m[1].value = 612.25;
	m[1].has_max = true;
	m[1].max = 500;
	m[1].passed = false;
	snprintf(m[2].name, sizeof m[2].name, "error-rate");
	m[2].has_value = false;
	m[2].has_max = true;
	m[2].max = 1;
	m[2].passed = false;
	snprintf(m[2].reason, sizeof m[2].reason, "no canary requests in the last 60s");
}

static void commit_ok(store *s, const char *name, const store_record *r,
                      const eng_event *ev, int n, uint64_t now_ms)
{
	char err[256] = "";
	int rc = store_commit(s, name, r, ev, NULL, n, now_ms, err, sizeof err);
	if (rc != 0)
		print_error("store_commit: %s\n", err);
	assert_int_equal(rc, 0);
}

static void assert_same_record(const store_record *a, const store_record *b)
{
	assert_int_equal(a->st.phase, b->st.phase);
	assert_int_equal(a->st.weight, b->st.weight);
	assert_int_equal(a->st.failed_checks, b->st.failed_checks);
	assert_int_equal(a->st.iterations, b->st.iterations);
	assert_int_equal(a->st.manual_weight, b->st.manual_weight);
	assert_string_equal(a->st.stable_rev, b->st.stable_rev);
	assert_string_equal(a->st.canary_rev, b->st.canary_rev);
	assert_int_equal(a->st.rollout_started_ms, b->st.rollout_started_ms);
	assert_int_equal(a->st.next_check_ms, b->st.next_check_ms);
	assert_int_equal(a->st.unready_since_ms, b->st.unready_since_ms);
	assert_int_equal(a->st.last_transition_ms, b->st.last_transition_ms);
	assert_string_equal(a->st.message, b->st.message);
	for (int i = 0; i < ENG_MAX_METRICS; i++)
		assert_int_equal(a->st.breach_since_ms[i], b->st.breach_since_ms[i]);
	assert_string_equal(a->stable_eps, b->stable_eps);
	assert_string_equal(a->canary_eps, b->canary_eps);
}

static void test_open_creates_dir_and_db(void **state)
{
	fixture *f = *state;
	struct stat sb;
	assert_int_not_equal(stat(f->data, &sb), 0);
	mode_t old = umask(0); /* so the mode seen is the mode asked for */
	open_ok(f);
	umask(old);
	assert_int_equal(stat(f->data, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0750);
	char parent[128];
	snprintf(parent, sizeof parent, "%s/data", f->dir);
	assert_int_equal(stat(parent, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0750);
	char db[256];
	snprintf(db, sizeof db, "%s/canaryd.db", f->data);
	assert_int_equal(stat(db, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	/* the database is in WAL mode and has a schema version */
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	sqlite3_stmt *q;
	assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA journal_mode", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_string_equal((const char *)sqlite3_column_text(q, 0), "wal");
	sqlite3_finalize(q);
	assert_int_equal(sqlite3_prepare_v2(raw, "PRAGMA user_version", -1, &q, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_step(q), SQLITE_ROW);
	assert_true(sqlite3_column_int(q, 0) >= 1);
	sqlite3_finalize(q);
	sqlite3_close(raw);
}

static void test_open_existing_dir_succeeds(void **state)
{
	fixture *f = *state;
	snprintf(f->data, sizeof f->data, "%s/", f->dir); /* exists, trailing slash */
	open_ok(f);
	char db[256];
	snprintf(db, sizeof db, "%s/canaryd.db", f->dir);
	struct stat sb;
	assert_int_equal(stat(db, &sb), 0);
}

static void test_commit_then_load_round_trips_every_field(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record in, out;
	sample_record(&in, ENG_PAUSED);
	commit_ok(s, "podinfo", &in, NULL, 0, 1000);
	memset(&out, 0, sizeof out);
	char err[256];
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
	assert_same_record(&in, &out);
	store_record_release(&out);
	assert_null(out.stable_eps);

	/* every phase survives, and empty endpoint lists read back as "" */
	for (int p = 0; p < ENG_PHASE_COUNT; p++) {
		sample_record(&in, (eng_phase)p);
		in.st.manual_weight = false;
		in.canary_eps = NULL;
		in.stable_eps = "";
		commit_ok(s, "podinfo", &in, NULL, 0, 2000 + (uint64_t)p);
		assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
		assert_int_equal(out.st.phase, p);
		assert_false(out.st.manual_weight);
		assert_string_equal(out.stable_eps, "");
		assert_string_equal(out.canary_eps, "");
		store_record_release(&out);
	}
}

static void test_load_unknown_canary_returns_zero(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	commit_ok(s, "known", &rec, NULL, 0, 1);
	store_record out;
	memset(&out, 0, sizeof out);
	char err[256];
	assert_int_equal(store_load(s, "unknown", &out, err, sizeof err), 0);
	assert_null(out.stable_eps);
	store_record_release(&out);
}

static void test_events_oldest_first_with_fields(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	eng_event ev[3];
	sample_event(&ev[0], "rollout-started", ENG_PROGRESSING, 0);
	snprintf(ev[0].actor, sizeof ev[0].actor, "127.0.0.1");
	sample_check(&ev[1]);
	sample_event(&ev[2], "weight", ENG_PROGRESSING, 30);
	commit_ok(s, "podinfo", &rec, ev, 3, 1764100000123ull);
	/* another canary's events stay out */
	commit_ok(s, "other", &rec, ev, 1, 1764100000999ull);

	json_t *arr = store_events(s, "podinfo", 0);
	assert_non_null(arr);
	assert_true(json_is_array(arr));
	assert_int_equal(json_array_size(arr), 3);
	json_int_t last_id = 0;
	for (size_t i = 0; i < 3; i++) {
		json_t *o = json_array_get(arr, i);
		json_int_t id = json_integer_value(json_object_get(o, "id"));
		assert_true(id > last_id);
		last_id = id;
		assert_string_equal(json_string_value(json_object_get(o, "time")),
		                    "2025-11-25T19:46:40.123Z");
		assert_string_equal(json_string_value(json_object_get(o, "canary")), "podinfo");
		assert_string_equal(json_string_value(json_object_get(o, "type")), ev[i].type);
		assert_string_equal(json_string_value(json_object_get(o, "phase")), "Progressing");
		assert_int_equal(json_integer_value(json_object_get(o, "weight")), ev[i].weight);
		assert_string_equal(json_string_value(json_object_get(o, "message")), ev[i].message);
		assert_string_equal(json_string_value(json_object_get(o, "actor")), ev[i].actor);
	}
	assert_null(json_object_get(json_array_get(arr, 0), "metrics"));
	assert_null(json_object_get(json_array_get(arr, 2), "metrics"));

	json_t *m = json_object_get(json_array_get(arr, 1), "metrics");
	assert_true(json_is_array(m));
	assert_int_equal(json_array_size(m), 3);
	json_t *m0 = json_array_get(m, 0), *m1 = json_array_get(m, 1), *m2 = json_array_get(m, 2);
	assert_string_equal(json_string_value(json_object_get(m0, "name")), "request-success-rate");
	assert_true(json_number_value(json_object_get(m0, "value")) == 99.5);
	assert_true(json_number_value(json_object_get(m0, "min")) == 99);
	assert_null(json_object_get(m0, "max"));
	assert_true(json_is_true(json_object_get(m0, "passed")));
	assert_null(json_object_get(m0, "reason"));
	assert_true(json_number_value(json_object_get(m1, "value")) == 612.25);
	assert_true(json_number_value(json_object_get(m1, "max")) == 500);
	assert_null(json_object_get(m1, "min"));
	assert_true(json_is_false(json_object_get(m1, "passed")));
	assert_true(json_is_null(json_object_get(m2, "value")));
	assert_true(json_is_false(json_object_get(m2, "passed")));
	assert_string_equal(json_string_value(json_object_get(m2, "reason")),
	                    "no canary requests in the last 60s");
	json_decref(arr);

	arr = store_events(s, "nobody", 0);
	assert_non_null(arr);
	assert_int_equal(json_array_size(arr), 0);
	json_decref(arr);
}

static void test_events_after_id_returns_only_later(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	eng_event ev[4];
	for (int i = 0; i < 4; i++)
		sample_event(&ev[i], "weight", ENG_PROGRESSING, 10 * (i + 1));
	commit_ok(s, "podinfo", &rec, ev, 4, 5000);
	json_t *all = store_events(s, "podinfo", 0);
	assert_int_equal(json_array_size(all), 4);
	json_int_t second = json_integer_value(json_object_get(json_array_get(all, 1), "id"));
	json_decref(all);

	json_t *later = store_events(s, "podinfo", second);
	assert_non_null(later);
	assert_int_equal(json_array_size(later), 2);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(later, 0), "weight")), 30);
	assert_true(json_integer_value(json_object_get(json_array_get(later, 0), "id")) > second);
	json_decref(later);

	later = store_events(s, "podinfo", second + 100);
	assert_int_equal(json_array_size(later), 0);
	json_decref(later);
}

static void test_rollout_ended_after_failed_or_succeeded_only(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	const eng_phase active[] = { ENG_INITIALIZED, ENG_PROGRESSING, ENG_PAUSED,
	                             ENG_WAITING_PROMOTION, ENG_PROMOTING, ENG_WAITING,
	                             ENG_ROLLING_BACK };
	for (size_t i = 0; i < sizeof active / sizeof active[0]; i++) {
		sample_record(&rec, active[i]);
		snprintf(rec.st.canary_rev, sizeof rec.st.canary_rev, "v2");
		commit_ok(s, "podinfo", &rec, NULL, 0, 100 + i);
		assert_int_equal(store_rollout_ended(s, "podinfo", "v2", NULL, 0), 0);
	}
	sample_record(&rec, ENG_FAILED);
	snprintf(rec.st.canary_rev, sizeof rec.st.canary_rev, "v2");
	commit_ok(s, "podinfo", &rec, NULL, 0, 200);
	assert_int_equal(store_rollout_ended(s, "podinfo", "v2", NULL, 0), 1);
	assert_int_equal(store_rollout_ended(s, "podinfo", "v3", NULL, 0), 0);
	assert_int_equal(store_rollout_ended(s, "other", "v2", NULL, 0), 0);

	sample_record(&rec, ENG_PROGRESSING);
	snprintf(rec.st.canary_rev, sizeof rec.st.canary_rev, "v3");
	commit_ok(s, "podinfo", &rec, NULL, 0, 300);
	assert_int_equal(store_rollout_ended(s, "podinfo", "v3", NULL, 0), 0);
	sample_record(&rec, ENG_SUCCEEDED);
	snprintf(rec.st.canary_rev, sizeof rec.st.canary_rev, "v3");
	commit_ok(s, "podinfo", &rec, NULL, 0, 400);
	assert_int_equal(store_rollout_ended(s, "podinfo", "v3", NULL, 0), 1);
	assert_int_equal(store_rollout_ended(s, "podinfo", "v2", NULL, 0), 1);
}

static void test_reopen_keeps_state_events_and_rollouts(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record in;
	sample_record(&in, ENG_FAILED);
	eng_event ev[2];
	sample_check(&ev[0]);
	sample_event(&ev[1], "rollback", ENG_FAILED, 0);
	commit_ok(s, "podinfo", &in, ev, 2, 9000);

	reopen(f); /* as after a restart */
	s = f->st;
	store_record out;
	char err[256];
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
	assert_same_record(&in, &out);
	store_record_release(&out);
	json_t *arr = store_events(s, "podinfo", 0);
	assert_int_equal(json_array_size(arr), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "type")), "rollback");
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "phase")), "Failed");
	assert_int_equal(json_array_size(json_object_get(json_array_get(arr, 0), "metrics")), 3);
	json_decref(arr);
	assert_int_equal(store_rollout_ended(s, "podinfo", in.st.canary_rev, NULL, 0), 1);

	/* and new events go on after the old ones */
	eng_event more;
	sample_event(&more, "manual", ENG_FAILED, 0);
	commit_ok(s, "podinfo", &in, &more, 1, 9500);
	arr = store_events(s, "podinfo", 0);
	assert_int_equal(json_array_size(arr), 3);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 2), "type")), "manual");
	json_decref(arr);
}

static void test_second_commit_updates_state_and_appends_events(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	eng_event ev;
	sample_event(&ev, "weight", ENG_PROGRESSING, 30);
	commit_ok(s, "podinfo", &rec, &ev, 1, 1000);

	rec.st.weight = 40;
	rec.st.iterations = 8;
	rec.st.manual_weight = false;
	snprintf(rec.st.message, sizeof rec.st.message, "advance canary weight 40");
	rec.canary_eps = "127.0.0.1:9005";
	eng_event ev2[2];
	sample_check(&ev2[0]);
	sample_event(&ev2[1], "weight", ENG_PROGRESSING, 40);
	commit_ok(s, "podinfo", &rec, ev2, 2, 2000);

	store_record out;
	char err[256];
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
	assert_same_record(&rec, &out);
	store_record_release(&out);
	json_t *arr = store_events(s, "podinfo", 0);
	assert_int_equal(json_array_size(arr), 3);
	assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0), "weight")), 30);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "type")), "check");
	assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 2), "weight")), 40);
	json_decref(arr);
}

static void test_open_under_regular_file_fails_naming_path(void **state)
{
	fixture *f = *state;
	char file[128];
	snprintf(file, sizeof file, "%s/plain", f->dir);
	FILE *fp = fopen(file, "w");
	assert_non_null(fp);
	fclose(fp);
	snprintf(f->data, sizeof f->data, "%s/plain/data", f->dir);
	char err[256] = "";
	store *s = (store *)&err; /* must be reset to NULL */
	assert_int_equal(store_open(f->data, &s, err, sizeof err), -1);
	assert_null(s);
	assert_non_null(strstr(err, f->data));
	assert_non_null(strstr(err, file));
	assert_non_null(strstr(err, "cannot create directory"));

	/* DIR itself a regular file */
	char err2[256] = "";
	assert_int_equal(store_open(file, &s, err2, sizeof err2), -1);
	assert_non_null(strstr(err2, file));
}

static void test_open_unopenable_db_fails_naming_db(void **state)
{
	fixture *f = *state;
	/* canaryd.db is a directory: SQLite cannot open it */
	snprintf(f->data, sizeof f->data, "%s", f->dir);
	char db[256];
	snprintf(db, sizeof db, "%s/canaryd.db", f->dir);
	assert_int_equal(mkdir(db, 0700), 0);
	char err[256] = "";
	store *s = NULL;
	assert_int_equal(store_open(f->data, &s, err, sizeof err), -1);
	assert_null(s);
	assert_non_null(strstr(err, db));
	assert_non_null(strstr(err, "cannot open database"));
}

static void test_failed_commit_rolls_back_and_reports(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	commit_ok(s, "podinfo", &rec, NULL, 0, 1000);

	/* break the events table behind the store's back */
	char db[256];
	snprintf(db, sizeof db, "%s/canaryd.db", f->data);
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "DROP TABLE events", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);

	store_record next = rec;
	next.st.weight = 90;
	next.st.phase = ENG_FAILED;
	eng_event ev;
	sample_event(&ev, "rollback", ENG_FAILED, 0);
	char err[256] = "";
	assert_int_equal(store_commit(s, "podinfo", &next, &ev, NULL, 1, 2000, err, sizeof err), STORE_RETRY);
	assert_non_null(strstr(err, "podinfo"));
	assert_non_null(strstr(err, "events"));

	/* nothing of the failed transaction was kept */
	store_record out;
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
	assert_int_equal(out.st.weight, 30);
	assert_int_equal(out.st.phase, ENG_PROGRESSING);
	store_record_release(&out);
	assert_int_equal(store_rollout_ended(s, "podinfo", rec.st.canary_rev, NULL, 0), 0);
	/* and the store still takes commits that do not touch events */
	commit_ok(s, "podinfo", &next, NULL, 0, 3000);
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
	assert_int_equal(out.st.weight, 90);
	store_record_release(&out);
}

static void test_close_null_is_noop(void **state)
{
	store_close(NULL);
	store_record_release(NULL);
	store_record r;
	memset(&r, 0, sizeof r);
	store_record_release(&r);
	assert_null(r.stable_eps);
}

/* ---- files refused at open ---- */

/* The whole of <path> (malloc'd, *len set), or NULL when it cannot be read. */
static unsigned char *slurp(const char *path, size_t *len)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return NULL;
	unsigned char *p = NULL;
	size_t cap = 0, n = 0;
	for (;;) {
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			p = realloc(p, cap);
		}
		size_t got = fread(p + n, 1, cap - n, fp);
		n += got;
		if (got == 0)
			break;
	}
	fclose(fp);
	*len = n;
	return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
	FILE *fp = fopen(path, "wb");
	assert_non_null(fp);
	assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
}

static void db_path(const fixture *f, char *out, size_t n)
{
	snprintf(out, n, "%s/canaryd.db", f->data);
}

/* The database: a rollout at weight 40 with eight events, written
 * and closed cleanly (the WAL checkpointed into the file). */
static void make_rollout_db(fixture *f)
{
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	rec.st.weight = 40;
	eng_event ev[8];
	sample_event(&ev[0], "rollout-started", ENG_PROGRESSING, 0);
	for (int i = 1; i < 8; i++)
		sample_check(&ev[i]);
	for (int i = 0; i < 8; i++)
		commit_ok(s, "podinfo", &rec, &ev[i], 1, 1000 + (uint64_t)i);
	store_close(s);
	f->st = NULL;
}

/* Overwrites pages [first, last] (1-based, 4096 bytes) of <path> with a
 * fixed pseudo-random pattern, as a disk that returns garbage would. */
static void garble_pages(const char *path, int first, int last)
{
	int fd = open(path, O_WRONLY);
	assert_true(fd >= 0);
	unsigned char page[4096];
	uint32_t x = 2463534242u;
	for (int pg = first; pg <= last; pg++) {
		for (size_t i = 0; i < sizeof page; i++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			page[i] = (unsigned char)x;
		}
		assert_int_equal(pwrite(fd, page, sizeof page, (off_t)(pg - 1) * 4096), (ssize_t)sizeof page);
	}
	close(fd);
}

static off_t file_size(const char *path)
{
	struct stat sb;
	assert_int_equal(stat(path, &sb), 0);
	return sb.st_size;
}

/* store_open must refuse the store's database as it is now, with <want>
 * in the message with the path, and leave the file byte for byte. */
static void assert_refused_unchanged(fixture *f, const char *want)
{
	char db[256];
	db_path(f, db, sizeof db);
	size_t n0, n1;
	unsigned char *before = slurp(db, &n0);
	assert_non_null(before);
	char err[1024] = "";
	store *s = (store *)&err; /* must be reset to NULL */
	assert_int_equal(store_open(f->data, &s, err, sizeof err), -1);
	assert_null(s);
	if (!strstr(err, want))
		print_error("message without '%s': %s\n", want, err);
	assert_non_null(strstr(err, want));
	assert_non_null(strstr(err, db));
	unsigned char *after = slurp(db, &n1);
	assert_non_null(after);
	assert_int_equal(n0, n1);
	assert_memory_equal(before, after, n0);
	/* and it stays refused: nothing was "repaired" on the way */
	char err2[1024] = "";
	assert_int_equal(store_open(f->data, &s, err2, sizeof err2), -1);
	assert_string_equal(err, err2);
	free(before);
	free(after);
}

static void test_open_refuses_garbled_pages_leaving_the_file(void **state)
{
	fixture *f = *state;
	make_rollout_db(f);
	char db[256];
	db_path(f, db, sizeof db);
	int pages = (int)(file_size(db) / 4096);
	assert_true(pages >= 4);
	garble_pages(db, 2, pages);
	assert_refused_unchanged(f, "is damaged");
	char err[1024] = "";
	store *s = NULL;
	assert_int_equal(store_open(f->data, &s, err, sizeof err), -1);
	/* what to do: move it aside, restore or recover */
	assert_non_null(strstr(err, "aside"));
	assert_non_null(strstr(err, "backup"));
	assert_non_null(strstr(err, ".recover"));
}

static void test_open_refuses_one_garbled_page(void **state)
{
	fixture *f = *state;
	make_rollout_db(f);
	char db[256];
	db_path(f, db, sizeof db);
	int pages = (int)(file_size(db) / 4096);
	garble_pages(db, pages, pages); /* the last page only */
	assert_refused_unchanged(f, "is damaged");
}

static void test_open_refuses_truncated_file(void **state)
{
	fixture *f = *state;
	make_rollout_db(f);
	char db[256];
	db_path(f, db, sizeof db);
	off_t size = file_size(db);
	/* on a page boundary, and in the middle of a page */
	assert_int_equal(truncate(db, size - 4096), 0);
	assert_refused_unchanged(f, "is damaged");
	assert_int_equal(truncate(db, 4096 + 1000), 0);
	assert_refused_unchanged(f, "is damaged");
	assert_int_equal(truncate(db, 60), 0); /* not even a whole header */
	assert_refused_unchanged(f, "is damaged");
}

static void test_open_refuses_a_file_that_is_not_a_database(void **state)
{
	fixture *f = *state;
	open_ok(f);
	store_close(f->st);
	f->st = NULL;
	char db[256];
	db_path(f, db, sizeof db);
	static const char text[] = "apiVersion: canaryd/v1\nkind: Canary\n"
	                            "# a configuration copied over the database\n";
	write_file(db, text, sizeof text - 1);
	assert_refused_unchanged(f, "not a database");
}

static void test_open_refuses_empty_file(void **state)
{
	fixture *f = *state;
	make_rollout_db(f);
	char db[256];
	db_path(f, db, sizeof db);
	assert_int_equal(truncate(db, 0), 0);
	assert_refused_unchanged(f, "is empty");
	assert_int_equal(file_size(db), 0);
}

static void test_open_refuses_a_database_without_canaryd_schema(void **state)
{
	fixture *f = *state;
	open_ok(f);
	store_close(f->st);
	f->st = NULL;
	char db[256];
	db_path(f, db, sizeof db);
	unlink(db);
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "CREATE TABLE notes(x); INSERT INTO notes VALUES(1)",
	                              NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);
	assert_refused_unchanged(f, "no canaryd schema");
}

static void test_open_refuses_a_log_without_its_database(void **state)
{
	fixture *f = *state;
	char db[256], wal[300];
	db_path(f, db, sizeof db);
	snprintf(wal, sizeof wal, "%s-wal", db);
	/* a commit in the WAL, as canaryd killed before a checkpoint leaves it */
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	commit_ok(s, "podinfo", &rec, NULL, 0, 1);
	size_t n;
	unsigned char *log = slurp(wal, &n);
	assert_non_null(log);
	assert_true(n > 0);
	store_close(s);
	f->st = NULL;
	/* the database moved away, its log left behind */
	unlink(db);
	write_file(wal, log, n);
	char err[1024] = "";
	assert_int_equal(store_open(f->data, &s, err, sizeof err), -1);
	assert_non_null(strstr(err, "write-ahead log"));
	assert_non_null(strstr(err, wal));
	struct stat sb;
	assert_int_not_equal(stat(db, &sb), 0); /* no new, empty database */
	size_t n2;
	unsigned char *still = slurp(wal, &n2);
	assert_int_equal(n, n2);
	assert_memory_equal(log, still, n);
	free(log);
	free(still);
}

static void test_new_database_is_made_whole_then_named(void **state)
{
	fixture *f = *state;
	/* what a creation killed half-way leaves is not taken for anything */
	char parent[128], junk[300];
	snprintf(parent, sizeof parent, "%s/data", f->dir);
	assert_int_equal(mkdir(parent, 0700), 0);
	assert_int_equal(mkdir(f->data, 0700), 0);
	snprintf(junk, sizeof junk, "%s/canaryd.db.new", f->data);
	write_file(junk, "half a database", 15);
	open_ok(f);
	struct stat sb;
	assert_int_not_equal(stat(junk, &sb), 0);
	char db[256];
	db_path(f, db, sizeof db);
	assert_true(file_size(db) > 0);
	/* readable by canaryd's user only, whatever the umask, and so are the
	 * WAL and shared-memory files SQLite makes beside it */
	assert_int_equal(stat(db, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	char err[256];
	assert_int_equal(store_commit(f->st, "app", &rec, NULL, NULL, 0, 1000, err, sizeof err), 0);
	char wal[300];
	snprintf(wal, sizeof wal, "%s-wal", db);
	assert_int_equal(stat(wal, &sb), 0);
	assert_int_equal(sb.st_mode & 0777, 0600);
	/* and the new file is a canaryd database at once: open again */
	reopen(f);
}

/* A child that commits and exits without closing: the commit is only in
 * the WAL, as after kill -9. The check at open reads it through the WAL. */
static void test_open_after_a_kill_checks_and_keeps_the_wal(void **state)
{
	fixture *f = *state;
	open_ok(f);
	store_close(f->st);
	f->st = NULL;
	pid_t pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		store *s;
		char err[256];
		if (store_open(f->data, &s, err, sizeof err) < 0)
			_exit(2);
		store_record rec;
		sample_record(&rec, ENG_PROGRESSING);
		rec.st.weight = 40;
		eng_event ev;
		sample_event(&ev, "weight", ENG_PROGRESSING, 40);
		_exit(store_commit(s, "podinfo", &rec, &ev, NULL, 1, 5, err, sizeof err) == 0 ? 0 : 3);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	store *s = open_ok(f);
	store_record out;
	char err[256];
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
	assert_int_equal(out.st.weight, 40);
	store_record_release(&out);
	json_t *arr = store_events(s, "podinfo", 0);
	assert_int_equal(json_array_size(arr), 1);
	json_decref(arr);
}

/* ---- faults while running ---- */

/* A VFS over the default one that fails writes to the database and its
 * WAL with <fault> (an SQLite result code) while it is set, and counts the
 * writes that went through. */
static struct fault_vfs {
	sqlite3_vfs vfs;
	sqlite3_vfs *real;
	int fault;
	int writes;
} fv;

typedef struct fv_file {
	sqlite3_file base;
	int watched;          /* the main database or its WAL */
	sqlite3_file real[];  /* the real VFS's file, szOsFile bytes */
} fv_file;

#define REAL(f) (((fv_file *)(f))->real)
static int fv_close(sqlite3_file *f) { return REAL(f)->pMethods->xClose(REAL(f)); }
static int fv_read(sqlite3_file *f, void *b, int n, sqlite3_int64 o)
{ return REAL(f)->pMethods->xRead(REAL(f), b, n, o); }
static int fv_write(sqlite3_file *f, const void *b, int n, sqlite3_int64 o)
{
	if (((fv_file *)f)->watched) {
		if (fv.fault)
			return fv.fault;
		fv.writes++;
	}
	return REAL(f)->pMethods->xWrite(REAL(f), b, n, o);
}
static int fv_truncate(sqlite3_file *f, sqlite3_int64 n)
{ return REAL(f)->pMethods->xTruncate(REAL(f), n); }
static int fv_sync(sqlite3_file *f, int fl) { return REAL(f)->pMethods->xSync(REAL(f), fl); }
static int fv_size(sqlite3_file *f, sqlite3_int64 *n)
{ return REAL(f)->pMethods->xFileSize(REAL(f), n); }
static int fv_lock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xLock(REAL(f), l); }
static int fv_unlock(sqlite3_file *f, int l) { return REAL(f)->pMethods->xUnlock(REAL(f), l); }
static int fv_check(sqlite3_file *f, int *r)
{ return REAL(f)->pMethods->xCheckReservedLock(REAL(f), r); }
static int fv_fcntl(sqlite3_file *f, int op, void *a)
{ return REAL(f)->pMethods->xFileControl(REAL(f), op, a); }
static int fv_sector(sqlite3_file *f) { return REAL(f)->pMethods->xSectorSize(REAL(f)); }
static int fv_dev(sqlite3_file *f) { return REAL(f)->pMethods->xDeviceCharacteristics(REAL(f)); }
static int fv_shmmap(sqlite3_file *f, int i, int sz, int ext, void volatile **p)
{ return REAL(f)->pMethods->xShmMap(REAL(f), i, sz, ext, p); }
static int fv_shmlock(sqlite3_file *f, int o, int n, int fl)
{ return REAL(f)->pMethods->xShmLock(REAL(f), o, n, fl); }
static void fv_shmbarrier(sqlite3_file *f) { REAL(f)->pMethods->xShmBarrier(REAL(f)); }
static int fv_shmunmap(sqlite3_file *f, int del)
{ return REAL(f)->pMethods->xShmUnmap(REAL(f), del); }
static int fv_fetch(sqlite3_file *f, sqlite3_int64 o, int n, void **p)
{ return REAL(f)->pMethods->xFetch(REAL(f), o, n, p); }
static int fv_unfetch(sqlite3_file *f, sqlite3_int64 o, void *p)
{ return REAL(f)->pMethods->xUnfetch(REAL(f), o, p); }

static const sqlite3_io_methods fv_methods = {
	3, fv_close, fv_read, fv_write, fv_truncate, fv_sync, fv_size, fv_lock, fv_unlock,
	fv_check, fv_fcntl, fv_sector, fv_dev, fv_shmmap, fv_shmlock, fv_shmbarrier,
	fv_shmunmap, fv_fetch, fv_unfetch,
};

static int fv_open(sqlite3_vfs *v, const char *name, sqlite3_file *f, int flags, int *out)
{
	fv_file *ff = (fv_file *)f;
	ff->base.pMethods = NULL;
	ff->watched = (flags & (SQLITE_OPEN_MAIN_DB | SQLITE_OPEN_WAL)) != 0;
	int rc = fv.real->xOpen(fv.real, name, ff->real, flags, out);
	if (rc == SQLITE_OK)
		ff->base.pMethods = &fv_methods;
	return rc;
}

static int fv_delete(sqlite3_vfs *v, const char *n, int s) { return fv.real->xDelete(fv.real, n, s); }
static int fv_access(sqlite3_vfs *v, const char *n, int fl, int *r)
{ return fv.real->xAccess(fv.real, n, fl, r); }
static int fv_full(sqlite3_vfs *v, const char *n, int len, char *out)
{ return fv.real->xFullPathname(fv.real, n, len, out); }
static int fv_random(sqlite3_vfs *v, int n, char *out) { return fv.real->xRandomness(fv.real, n, out); }
static int fv_sleep(sqlite3_vfs *v, int us) { return fv.real->xSleep(fv.real, us); }
static int fv_time(sqlite3_vfs *v, double *t) { return fv.real->xCurrentTime(fv.real, t); }
static int fv_lasterr(sqlite3_vfs *v, int n, char *b) { return fv.real->xGetLastError(fv.real, n, b); }
static int fv_time64(sqlite3_vfs *v, sqlite3_int64 *t) { return fv.real->xCurrentTimeInt64(fv.real, t); }

/* The fixture with the fault VFS as the default (for the stores opened in
 * the test); removed again after the store is closed, even when the test
 * fails half-way. */
static int setup_fault(void **state)
{
	if (setup(state) < 0)
		return -1;
	memset(&fv, 0, sizeof fv);
	fv.real = sqlite3_vfs_find(NULL);
	if (!fv.real)
		return -1;
	fv.vfs.iVersion = 2;
	fv.vfs.szOsFile = (int)sizeof(fv_file) + fv.real->szOsFile;
	fv.vfs.mxPathname = fv.real->mxPathname;
	fv.vfs.zName = "canaryd-test-fault";
	fv.vfs.xOpen = fv_open;
	fv.vfs.xDelete = fv_delete;
	fv.vfs.xAccess = fv_access;
	fv.vfs.xFullPathname = fv_full;
	fv.vfs.xRandomness = fv_random;
	fv.vfs.xSleep = fv_sleep;
	fv.vfs.xCurrentTime = fv_time;
	fv.vfs.xGetLastError = fv_lasterr;
	fv.vfs.xCurrentTimeInt64 = fv_time64;
	return sqlite3_vfs_register(&fv.vfs, 1) == SQLITE_OK ? 0 : -1;
}

static int teardown_fault(void **state)
{
	fixture *f = *state;
	store_close(f->st);
	f->st = NULL;
	sqlite3_vfs_unregister(&fv.vfs);
	return teardown(state);
}

static void test_full_disk_is_retried_and_not_latched(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	commit_ok(s, "podinfo", &rec, NULL, 0, 1);
	uint64_t errors = store_errors(s);

	fv.fault = SQLITE_FULL;
	store_record next = rec;
	next.st.weight = 50;
	eng_event ev;
	sample_event(&ev, "weight", ENG_PROGRESSING, 50);
	char err[512] = "";
	assert_int_equal(store_commit(s, "podinfo", &next, &ev, NULL, 1, 2, err, sizeof err),
	                 STORE_RETRY);
	assert_non_null(strstr(err, "full"));
	assert_non_null(strstr(err, "podinfo"));
	assert_false(store_damaged(s, NULL));
	assert_true(store_errors(s) > errors);
	store_record out;
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
	assert_int_equal(out.st.weight, 30); /* nothing of it kept */
	store_record_release(&out);

	/* space again: the same write goes through */
	fv.fault = 0;
	commit_ok(s, "podinfo", &next, &ev, 1, 3);
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
	assert_int_equal(out.st.weight, 50);
	store_record_release(&out);
	json_t *arr = store_events(s, "podinfo", 0);
	assert_int_equal(json_array_size(arr), 1);
	json_decref(arr);
}

static void test_io_error_latches_and_nothing_more_is_written(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	commit_ok(s, "podinfo", &rec, NULL, 0, 1);

	fv.fault = SQLITE_IOERR_WRITE; /* what EROFS or EIO on a write gives */
	eng_event ev;
	sample_event(&ev, "rollback", ENG_FAILED, 0);
	rec.st.phase = ENG_FAILED;
	char err[512] = "";
	assert_int_equal(store_commit(s, "podinfo", &rec, &ev, NULL, 1, 2, err, sizeof err),
	                 STORE_DAMAGED);
	const char *why = NULL;
	assert_true(store_damaged(s, &why));
	char db[256];
	db_path(f, db, sizeof db);
	assert_non_null(strstr(why, db));
	assert_non_null(strstr(why, "I/O error"));

	/* the file works again, the store does not touch it any more */
	fv.fault = 0;
	fv.writes = 0;
	assert_int_equal(store_commit(s, "podinfo", &rec, &ev, NULL, 1, 3, err, sizeof err),
	                 STORE_DAMAGED);
	assert_non_null(strstr(err, "nothing more is written"));
	store_close(s); /* no checkpoint either */
	f->st = NULL;
	assert_int_equal(fv.writes, 0);
}

/* A restart while the disk is full: the file is sound and holds the state,
 * only the write at open fails. The store opens on it, says it is failing,
 * and works again once a write goes through; an I/O error is refused. */
static void test_open_on_a_full_disk_serves_what_it_holds(void **state)
{
	fixture *f = *state;
	make_rollout_db(f);
	fv.fault = SQLITE_FULL;
	store *s = open_ok(f);
	const char *why = NULL;
	assert_true(store_failing(s, &why));
	assert_non_null(strstr(why, "full"));
	assert_false(store_damaged(s, NULL));
	store_record out;
	char err[512] = "";
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
	assert_int_equal(out.st.weight, 40);
	assert_int_equal(store_commit(s, "podinfo", &out, NULL, NULL, 0, 9, err, sizeof err),
	                 STORE_RETRY);
	fv.fault = 0;
	commit_ok(s, "podinfo", &out, NULL, 0, 10);
	assert_false(store_failing(s, NULL));
	store_record_release(&out);
	store_close(s);
	f->st = NULL;

	fv.fault = SQLITE_IOERR_WRITE;
	s = NULL;
	assert_int_equal(store_open(f->data, &s, err, sizeof err), -1);
	assert_null(s);
	assert_non_null(strstr(err, "cannot write to database"));
	fv.fault = 0;
}

/* Pages garbled under a running store, found by the next write that reads
 * them: damage, latched; reads answer an error, never "nothing". */
static void test_corruption_found_while_running_latches(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	snprintf(rec.st.canary_rev, sizeof rec.st.canary_rev, "v2");
	eng_event ev[8];
	for (int i = 0; i < 8; i++)
		sample_check(&ev[i]);
	for (int i = 0; i < 20; i++)
		commit_ok(s, "podinfo", &rec, ev, 8, 1000 + (uint64_t)i);
	char db[256];
	db_path(f, db, sizeof db);
	/* everything into the file, then garble all but the header page */
	sqlite3 *raw;
	assert_int_equal(sqlite3_open(db, &raw), SQLITE_OK);
	assert_int_equal(sqlite3_exec(raw, "PRAGMA wal_checkpoint(TRUNCATE)", NULL, NULL, NULL),
	                 SQLITE_OK);
	int pages = (int)(file_size(db) / 4096);
	assert_true(pages > 4);
	garble_pages(db, 2, pages);
	/* another writer: the store's cached pages are stale and read again */
	assert_int_equal(sqlite3_exec(raw, "PRAGMA user_version = 2", NULL, NULL, NULL), SQLITE_OK);
	sqlite3_close(raw);

	char err[512] = "";
	store_record out;
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), -1);
	assert_non_null(strstr(err, "malformed"));
	assert_true(store_damaged(s, NULL));
	assert_int_equal(store_rollout_ended(s, "podinfo", "v2", err, sizeof err), -1);
	assert_non_null(strstr(err, "podinfo"));
	assert_null(store_events(s, "podinfo", 0));

	size_t n0, n1;
	unsigned char *before = slurp(db, &n0);
	assert_int_equal(store_commit(s, "podinfo", &rec, ev, NULL, 1, 9, err, sizeof err),
	                 STORE_DAMAGED);
	store_close(s);
	f->st = NULL;
	unsigned char *after = slurp(db, &n1);
	assert_int_equal(n0, n1);
	assert_memory_equal(before, after, n0);
	free(before);
	free(after);
}

/* An operator who moves or deletes the database of a running canaryd:
 * SQLite would go on writing into the unlinked file. */
static void test_moved_database_latches_and_is_left_alone(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_PROGRESSING);
	commit_ok(s, "podinfo", &rec, NULL, 0, 1);
	char db[256], moved[300];
	db_path(f, db, sizeof db);
	snprintf(moved, sizeof moved, "%s/moved.db", f->dir);
	assert_int_equal(rename(db, moved), 0);
	size_t n0, n1;
	unsigned char *before = slurp(moved, &n0);

	eng_event ev;
	sample_event(&ev, "rollback", ENG_FAILED, 0);
	rec.st.phase = ENG_FAILED;
	char err[512] = "";
	assert_int_equal(store_commit(s, "podinfo", &rec, &ev, NULL, 1, 2, err, sizeof err),
	                 STORE_DAMAGED);
	assert_non_null(strstr(err, "moved or deleted"));
	const char *why;
	assert_true(store_damaged(s, &why));
	assert_non_null(strstr(why, db));
	store_close(s);
	f->st = NULL;
	unsigned char *after = slurp(moved, &n1);
	assert_int_equal(n0, n1);
	assert_memory_equal(before, after, n0);
	free(before);
	free(after);
}

static void test_events_keep_their_own_times(void **state)
{
	fixture *f = *state;
	store *s = open_ok(f);
	store_record rec;
	sample_record(&rec, ENG_FAILED);
	eng_event ev[2];
	sample_event(&ev[0], "check", ENG_PROGRESSING, 30);
	sample_event(&ev[1], "rollback", ENG_FAILED, 0);
	const uint64_t at[2] = { 1764100000123ull, 1764100001456ull };
	char err[256] = "";
	assert_int_equal(store_commit(s, "podinfo", &rec, ev, at, 2, 1764100009999ull, err,
	                              sizeof err), 0);
	json_t *arr = store_events(s, "podinfo", 0);
	assert_int_equal(json_array_size(arr), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 0), "time")),
	                    "2025-11-25T19:46:40.123Z");
	assert_string_equal(json_string_value(json_object_get(json_array_get(arr, 1), "time")),
	                    "2025-11-25T19:46:41.456Z");
	json_decref(arr);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
#define TF(fn) cmocka_unit_test_setup_teardown(fn, setup_fault, teardown_fault)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(test_open_creates_dir_and_db),
		T(test_open_existing_dir_succeeds),
		T(test_commit_then_load_round_trips_every_field),
		T(test_load_unknown_canary_returns_zero),
		T(test_events_oldest_first_with_fields),
		T(test_events_after_id_returns_only_later),
		T(test_rollout_ended_after_failed_or_succeeded_only),
		T(test_reopen_keeps_state_events_and_rollouts),
		T(test_second_commit_updates_state_and_appends_events),
		T(test_open_under_regular_file_fails_naming_path),
		T(test_open_unopenable_db_fails_naming_db),
		T(test_failed_commit_rolls_back_and_reports),
		T(test_open_refuses_garbled_pages_leaving_the_file),
		T(test_open_refuses_one_garbled_page),
		T(test_open_refuses_truncated_file),
		T(test_open_refuses_a_file_that_is_not_a_database),
		T(test_open_refuses_empty_file),
		T(test_open_refuses_a_database_without_canaryd_schema),
		T(test_open_refuses_a_log_without_its_database),
		T(test_new_database_is_made_whole_then_named),
		T(test_open_after_a_kill_checks_and_keeps_the_wal),
		TF(test_full_disk_is_retried_and_not_latched),
		TF(test_io_error_latches_and_nothing_more_is_written),
		TF(test_open_on_a_full_disk_serves_what_it_holds),
		T(test_corruption_found_while_running_latches),
		T(test_moved_database_latches_and_is_left_alone),
		T(test_events_keep_their_own_times),
		cmocka_unit_test(test_close_null_is_noop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
