/* test_store.c - state and audit in SQLite: round trips, ordering, the
 * rollouts table, restarts and failures. Each test works in its own
 * directory under /tmp, removed afterwards. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "store.h"

typedef struct fixture {
	char dir[64];     /* the mkdtemp directory */
	char data[128];   /* dir/data/sub: the store's DIR, made by store_open */
	store *st;
} fixture;

/* Removes <path> and everything under it (two levels are enough here, but
 * it recurses anyway). */
static void remove_tree(const char *path)
{
	DIR *d = opendir(path);
	if (d) {
		struct dirent *e;
		while ((e = readdir(d)) != NULL) {
			if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
				continue;
			char sub[512];
			snprintf(sub, sizeof sub, "%s/%s", path, e->d_name);
			struct stat sb;
			if (lstat(sub, &sb) == 0 && S_ISDIR(sb.st_mode))
				remove_tree(sub);
			else
				unlink(sub);
		}
		closedir(d);
		rmdir(path);
	} else {
		unlink(path);
	}
}

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
	int rc = store_commit(s, name, r, ev, n, now_ms, err, sizeof err);
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
	                             ENG_WAITING_APPROVAL, ENG_PROMOTING };
	for (size_t i = 0; i < sizeof active / sizeof active[0]; i++) {
		sample_record(&rec, active[i]);
		snprintf(rec.st.canary_rev, sizeof rec.st.canary_rev, "v2");
		commit_ok(s, "podinfo", &rec, NULL, 0, 100 + i);
		assert_int_equal(store_rollout_ended(s, "podinfo", "v2"), 0);
	}
	sample_record(&rec, ENG_FAILED);
	snprintf(rec.st.canary_rev, sizeof rec.st.canary_rev, "v2");
	commit_ok(s, "podinfo", &rec, NULL, 0, 200);
	assert_int_equal(store_rollout_ended(s, "podinfo", "v2"), 1);
	assert_int_equal(store_rollout_ended(s, "podinfo", "v3"), 0);
	assert_int_equal(store_rollout_ended(s, "other", "v2"), 0);

	sample_record(&rec, ENG_PROGRESSING);
	snprintf(rec.st.canary_rev, sizeof rec.st.canary_rev, "v3");
	commit_ok(s, "podinfo", &rec, NULL, 0, 300);
	assert_int_equal(store_rollout_ended(s, "podinfo", "v3"), 0);
	sample_record(&rec, ENG_SUCCEEDED);
	snprintf(rec.st.canary_rev, sizeof rec.st.canary_rev, "v3");
	commit_ok(s, "podinfo", &rec, NULL, 0, 400);
	assert_int_equal(store_rollout_ended(s, "podinfo", "v3"), 1);
	assert_int_equal(store_rollout_ended(s, "podinfo", "v2"), 1);
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
	assert_int_equal(store_rollout_ended(s, "podinfo", in.st.canary_rev), 1);

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
	assert_int_equal(store_commit(s, "podinfo", &next, &ev, 1, 2000, err, sizeof err), -1);
	assert_non_null(strstr(err, "podinfo"));
	assert_non_null(strstr(err, "events"));

	/* nothing of the failed transaction was kept */
	store_record out;
	assert_int_equal(store_load(s, "podinfo", &out, err, sizeof err), 1);
	assert_int_equal(out.st.weight, 30);
	assert_int_equal(out.st.phase, ENG_PROGRESSING);
	store_record_release(&out);
	assert_int_equal(store_rollout_ended(s, "podinfo", rec.st.canary_rev), 0);
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

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

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
		cmocka_unit_test(test_close_null_is_noop),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
