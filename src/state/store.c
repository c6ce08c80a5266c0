/* store.c - see store.h. One connection, every statement prepared at open
 * and reset after each use. WAL with synchronous=NORMAL: a committed
 * transaction survives the process being killed (the WAL is written before
 * COMMIT returns); only a power loss may lose the last few commits, and
 * never leaves the database half-written. */
#include "store.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define DB_FILE "canaryd.db"
#define SCHEMA_VERSION 3  /* PRAGMA user_version; bump with a migration */

/* The statements, prepared once at open. */
enum {
	Q_BEGIN = 0,
	Q_COMMIT,
	Q_ROLLBACK,
	Q_UPSERT_CANARY,
	Q_INSERT_EVENT,
	Q_END_ROLLOUT,
	Q_LOAD_CANARY,
	Q_ROLLOUT_ENDED,
	Q_EVENTS,
	Q_COUNT
};

static const char *const sql_text[Q_COUNT] = {
	[Q_BEGIN] = "BEGIN IMMEDIATE",
	[Q_COMMIT] = "COMMIT",
	[Q_ROLLBACK] = "ROLLBACK",
	[Q_UPSERT_CANARY] =
		"INSERT INTO canaries(name, phase, weight, failed_checks, iterations,"
		" manual_weight, stable_rev, canary_rev, rollout_started_ms,"
		" next_check_ms, unready_since_ms, last_transition_ms, message,"
		" stable_eps, canary_eps, updated_ms, breach_since, flow)"
		" VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,"
		" ?18)"
		" ON CONFLICT(name) DO UPDATE SET phase = excluded.phase,"
		" weight = excluded.weight, failed_checks = excluded.failed_checks,"
		" iterations = excluded.iterations, manual_weight = excluded.manual_weight,"
		" stable_rev = excluded.stable_rev, canary_rev = excluded.canary_rev,"
		" rollout_started_ms = excluded.rollout_started_ms,"
		" next_check_ms = excluded.next_check_ms,"
		" unready_since_ms = excluded.unready_since_ms,"
		" last_transition_ms = excluded.last_transition_ms,"
		" message = excluded.message, stable_eps = excluded.stable_eps,"
		" canary_eps = excluded.canary_eps, updated_ms = excluded.updated_ms,"
		" breach_since = excluded.breach_since, flow = excluded.flow",
	[Q_INSERT_EVENT] =
		"INSERT INTO events(time_ms, canary, type, phase, weight, message, actor, metrics,"
		" detail) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
	[Q_END_ROLLOUT] =
		"INSERT OR REPLACE INTO rollouts(canary, revision, outcome, ended_ms)"
		" VALUES(?1, ?2, ?3, ?4)",
	[Q_LOAD_CANARY] =
		"SELECT phase, weight, failed_checks, iterations, manual_weight,"
		" stable_rev, canary_rev, rollout_started_ms, next_check_ms,"
		" unready_since_ms, last_transition_ms, message, stable_eps, canary_eps,"
		" breach_since, flow FROM canaries WHERE name = ?1",
	[Q_ROLLOUT_ENDED] =
		"SELECT 1 FROM rollouts WHERE canary = ?1 AND revision = ?2",
	[Q_EVENTS] =
		"SELECT id, time_ms, canary, type, phase, weight, message, actor, metrics, detail"
		" FROM events WHERE canary = ?1 AND id > ?2 ORDER BY id",
};

/* Version 1. Later versions add their steps after it in migrate(). */
static const char schema_v1[] =
	"CREATE TABLE IF NOT EXISTS canaries ("
	" name TEXT PRIMARY KEY, phase TEXT, weight INT, failed_checks INT,"
	" iterations INT, manual_weight INT, stable_rev TEXT, canary_rev TEXT,"
	" rollout_started_ms INT, next_check_ms INT, unready_since_ms INT,"
	" last_transition_ms INT, message TEXT, stable_eps TEXT, canary_eps TEXT,"
	" updated_ms INT);"
	"CREATE TABLE IF NOT EXISTS events ("
	" id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INT, canary TEXT,"
	" type TEXT, phase TEXT, weight INT, message TEXT, actor TEXT,"
	" metrics TEXT /* JSON array, or NULL */);"
	"CREATE INDEX IF NOT EXISTS events_canary_id ON events(canary, id);"
	"CREATE TABLE IF NOT EXISTS rollouts ("
	" canary TEXT, revision TEXT, outcome TEXT, ended_ms INT,"
	" PRIMARY KEY(canary, revision));";

/* Version 2: when each metric's current breach began (failureDuration),
 * a JSON array of ENG_MAX_METRICS milliseconds. */
static const char schema_v2[] =
	"ALTER TABLE canaries ADD COLUMN breach_since TEXT;";

/* Version 3: where an operator-steered rollout stands (issue 11): its
 * step, pause, gate and approval, and what an undo brings back; a JSON
 * object (store_flow_json), so that later fields need no migration. */
static const char schema_v3[] =
	"ALTER TABLE canaries ADD COLUMN flow TEXT;"
	"ALTER TABLE events ADD COLUMN detail TEXT;";

struct store {
	sqlite3 *db;
	char *path;              /* DIR/canaryd.db, for messages */
	sqlite3_stmt *q[Q_COUNT];
	char last_err[256];      /* SQLite's message of the last failed step */
	int last_rc;             /* and its extended result code */
	int last_errno;          /* the system's last errno, meaningful for
	                          * I/O, open and full-disk failures */
	uint64_t errors;         /* failed SQLite calls since open */
	int damaged;             /* nothing more is written: see store.h */
	char damage[320];        /* what was found, with the path */
	int failing;             /* the last write failed and may work later */
	char failing_why[320];
};

/* ---- faults ---- */

/* What to tell an operator whose database is damaged. The sqlite3 shell's
 * .recover needs a build with the dbpage table (Debian 12's has none: its
 * .dump then shows what is readable). */
#define DAMAGE_ADVICE \
	"refusing to start rather than take it for no state: move it aside (with " \
	"any -wal and -shm file beside it), then restore a backup or recover what " \
	"is readable with 'sqlite3 OLD .recover | sqlite3 %s' (or .dump)"

/* Is <rc> (extended) with system errno <e> damage rather than a write that
 * may work later? A full disk or quota may empty again and a lock is let go;
 * a corrupt page, an I/O error (a read-only remount, a failing disk) or a
 * file that became read-only, was moved or cannot be reopened stays. */
static int is_damage(int rc, int e)
{
	switch (rc & 0xff) {
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
	case SQLITE_READONLY:
	case SQLITE_CANTOPEN:
	case SQLITE_PERM:
		return 1;
	case SQLITE_IOERR:
		/* a full file system sometimes surfaces as an I/O error */
		return rc != SQLITE_IOERR_NOMEM && e != ENOSPC && e != EDQUOT;
	default:
		return 0;
	}
}

/* From now on nothing is written into the file, because of <what>. */
static void latch_damage(store *s, const char *what)
{
	if (s->damaged)
		return;
	s->damaged = 1;
	snprintf(s->damage, sizeof s->damage, "database '%s': %s", s->path, what);
	/* the last connection checkpoints the WAL into the file when it
	 * closes: a damaged file must not be written, not even then */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
}

/* Keeps the last failure of the connection (after a failed call, before
 * anything else touches it), counts it, and latches damage. Returns
 * STORE_DAMAGED or STORE_RETRY. */
static int note_fault(store *s)
{
	s->last_rc = sqlite3_extended_errcode(s->db);
	s->last_errno = sqlite3_system_errno(s->db);
	snprintf(s->last_err, sizeof s->last_err, "%s", sqlite3_errmsg(s->db));
	s->errors++;
	if (is_damage(s->last_rc, s->last_errno))
		latch_damage(s, s->last_err);
	return s->damaged ? STORE_DAMAGED : STORE_RETRY;
}

/* SQLite goes on writing into a database file that was deleted or renamed
 * while open (and its WAL with it): every later commit would be lost at the
 * next start without a word. One stat per commit finds it. */
static int file_moved(store *s)
{
	int moved = 0;
	if (sqlite3_file_control(s->db, "main", SQLITE_FCNTL_HAS_MOVED, &moved) != SQLITE_OK)
		return 0;
	if (moved) {
		s->errors++;
		snprintf(s->last_err, sizeof s->last_err,
		         "the file was moved or deleted while canaryd ran");
		latch_damage(s, s->last_err);
	}
	return moved;
}

/* ---- opening ---- */

/* Fills <err> for the failure to make <part>, a prefix of <dir>. */
static void dir_error(char *err, size_t errlen, const char *dir, const char *part,
                      int e)
{
	if (strcmp(part, dir) == 0)
		snprintf(err, errlen, "cannot create directory '%s': %s", dir, strerror(e));
	else if (e == ENOTDIR)
		snprintf(err, errlen, "cannot create directory '%s': '%s' is not a directory",
		         dir, part);
	else
		snprintf(err, errlen, "cannot create directory '%s': '%s': %s", dir, part,
		         strerror(e));
}

/* mkdir -p <dir> with mode 0750 for what it creates. Returns 0, or -1 with
 * <err> naming <dir> and the part of it that could not be made. */
static int make_dirs(const char *dir, char *err, size_t errlen)
{
	char *p = xstrdup(dir);
	size_t n = strlen(p);
	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	int rc = 0;
	/* each prefix ending before a '/', then the whole path */
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s != '\0')
			continue;
		char c = *s;
		*s = '\0';
		struct stat sb;
		if (mkdir(p, 0750) < 0) {
			int e = errno;
			if (e == EEXIST && (stat(p, &sb) < 0 || !S_ISDIR(sb.st_mode)))
				e = ENOTDIR;
			if (e != EEXIST) {
				char *part = xstrdup(p);
				*s = c;
				dir_error(err, errlen, p, part, e);
				free(part);
				rc = -1;
				break;
			}
		}
		*s = c;
		if (c == '\0')
			break;
	}
	free(p);
	return rc;
}

static int exec(store *s, const char *sql, char *err, size_t errlen)
{
	char *msg = NULL;
	if (sqlite3_exec(s->db, sql, NULL, NULL, &msg) != SQLITE_OK) {
		snprintf(err, errlen, "database '%s': %s", s->path,
		         msg ? msg : sqlite3_errmsg(s->db));
		sqlite3_free(msg);
		return -1;
	}
	return 0;
}

/* Fills <err> for a database that cannot be written, with the reason the
 * system gives for the file when it gives one. */
static void readonly_error(store *s, const char *sqlite_msg, char *err, size_t errlen)
{
	const char *why = sqlite_msg;
	if (access(s->path, W_OK) < 0)
		why = strerror(errno);
	snprintf(err, errlen, "cannot write to database '%s': %s; canaryd writes its state "
	         "before it changes traffic and will not start on a database it cannot write",
	         s->path, why);
}

/* Reads the schema version into *version, and refuses one that is newer
 * than ours, or none in an existing (not <fresh>) file. Reads only. */
static int read_version(store *s, int fresh, int *version, char *err, size_t errlen)
{
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
		return -1;
	}
	*version = 0;
	int rc = sqlite3_step(st);
	if (rc == SQLITE_ROW)
		*version = sqlite3_column_int(st, 0);
	sqlite3_finalize(st);
	if (rc != SQLITE_ROW) {
		snprintf(err, errlen, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
		return -1;
	}
	if (*version > SCHEMA_VERSION) {
		snprintf(err, errlen,
		         "database '%s' has schema version %d, newer than this canaryd's %d",
		         s->path, *version, SCHEMA_VERSION);
		return -1;
	}
	if (*version == 0 && !fresh) {
		/* create_db writes the schema before the file gets its name */
		snprintf(err, errlen, "database '%s' holds no canaryd schema (user_version 0): "
		         "it is another program's, or lost its content; canaryd will not "
		         "start on it; move it aside (a new one is then created)", s->path);
		return -1;
	}
	return 0;
}

/* Brings the schema from <version> to SCHEMA_VERSION in one transaction,
 * in a <fresh> database (create_db) or an existing one. An existing file
 * takes a write here even when its schema is current (the version is
 * written again): a database that cannot be written is refused at start,
 * not at the first change of traffic. */
static int migrate(store *s, int fresh, int version, char *err, size_t errlen)
{
	if (exec(s, "BEGIN IMMEDIATE", err, errlen) < 0) {
		if (!fresh && (sqlite3_extended_errcode(s->db) & 0xff) == SQLITE_READONLY)
			readonly_error(s, sqlite3_errmsg(s->db), err, errlen);
		return -1;
	}
	char setv[64];
	snprintf(setv, sizeof setv, "PRAGMA user_version = %d", SCHEMA_VERSION);
	if ((version < 1 && exec(s, schema_v1, err, errlen) < 0) ||
	    (version < 2 && exec(s, schema_v2, err, errlen) < 0) ||
	    (version < 3 && exec(s, schema_v3, err, errlen) < 0) ||
	    exec(s, setv, err, errlen) < 0 || exec(s, "COMMIT", err, errlen) < 0) {
		note_fault(s); /* before ROLLBACK resets the connection's error */
		int code = s->last_rc & 0xff;
		if (!fresh && (code == SQLITE_READONLY || code == SQLITE_IOERR ||
		               code == SQLITE_CANTOPEN || code == SQLITE_PERM))
			readonly_error(s, s->last_err, err, errlen);
		sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
		return -1;
	}
	return 0;
}

/* Removes <path>; a file that is not there is fine. */
static int remove_file(const char *path)
{
	return unlink(path) == 0 || errno == ENOENT ? 0 : -1;
}

/* fsync of <path> (a file or a directory), so that a rename is durable. */
static int sync_path(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int rc = fsync(fd);
	close(fd);
	return rc;
}

static int open_db(const char *path, int flags, sqlite3 **db, char *err, size_t errlen,
                   const char *what)
{
	int rc = sqlite3_open_v2(path, db, flags, NULL);
	if (rc != SQLITE_OK) {
		snprintf(err, errlen, "%s '%s': %s", what, path,
		         *db ? sqlite3_errmsg(*db) : sqlite3_errstr(rc));
		sqlite3_close(*db);
		*db = NULL;
		return -1;
	}
	sqlite3_busy_timeout(*db, 5000);
	return 0;
}

/* Creates the database at s->path: built whole as PATH.new (schema, WAL
 * mode), synced, then renamed into place. A canaryd killed meanwhile leaves
 * no database, or a complete one, never an empty file that the next start
 * could not tell from a truncated one. <dir> is the directory. */
static int create_db(store *s, const char *dir, char *err, size_t errlen)
{
	size_t n = strlen(s->path) + 16;
	char *tmp = xmalloc(n), *side = xmalloc(n);
	snprintf(tmp, n, "%s.new", s->path);
	int rc = -1;
	/* what a killed creation left */
	static const char *const sides[] = { "", "-journal", "-wal", "-shm" };
	for (size_t i = 0; i < sizeof sides / sizeof sides[0]; i++) {
		snprintf(side, n, "%s%s", tmp, sides[i]);
		if (remove_file(side) < 0) {
			snprintf(err, errlen, "cannot create database '%s': cannot remove '%s': %s",
			         s->path, side, strerror(errno));
			goto out;
		}
	}
	/* the audit is for the operator's eyes only: the file is made 0600
	 * here, and SQLite gives its -wal and -shm files the database's mode */
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
	if (open_db(tmp, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, &s->db, err, errlen,
	            "cannot create database") < 0) {
		/* SQLite's "unable to open database file" does not say why */
		if (access(dir, W_OK) < 0)
			snprintf(err, errlen, "cannot create database '%s': directory '%s': %s",
			         s->path, dir, strerror(errno));
		goto out;
	}
	char *mode = NULL;
	if (migrate(s, 1, 0, err, errlen) < 0 ||
	    sqlite3_exec(s->db, "PRAGMA journal_mode = WAL", NULL, NULL, &mode) != SQLITE_OK) {
		if (mode)
			snprintf(err, errlen, "cannot create database '%s': %s", tmp, mode);
		sqlite3_free(mode);
		sqlite3_close(s->db);
		s->db = NULL;
		remove_file(tmp);
		goto out;
	}
	/* closing the only connection checkpoints the WAL into the file and
	 * removes the WAL: the file alone is the database */
	if (sqlite3_close(s->db) != SQLITE_OK) {
		snprintf(err, errlen, "cannot create database '%s': %s", tmp, sqlite3_errmsg(s->db));
		sqlite3_close_v2(s->db);
		s->db = NULL;
		goto out;
	}
	s->db = NULL;
	if (sync_path(tmp) < 0 || rename(tmp, s->path) < 0 || sync_path(dir) < 0) {
		snprintf(err, errlen, "cannot create database '%s': %s", s->path, strerror(errno));
		remove_file(tmp);
		goto out;
	}
	rc = 0;
out:
	free(tmp);
	free(side);
	return rc;
}

/* Fills <err> for a database whose reading found damage. */
static void damaged_error(store *s, const char *found, char *err, size_t errlen)
{
	snprintf(err, errlen, "database '%s' is damaged (%.300s); " DAMAGE_ADVICE,
	         s->path, found, s->path);
}

/* Appends to <found> the problems of one quick_check answer (lines; the
 * "*** in database main ***" heading left out), up to three in all. */
static void add_problems(buf *found, int *n, const char *answer)
{
	while (answer && *answer && *n < 3) {
		size_t len = strcspn(answer, "\n");
		if (len && strncmp(answer, "***", 3) != 0 && strncmp(answer, "ok", len) != 0) {
			buf_printf(found, "%s%.*s", *n ? "; " : "", (int)len, answer);
			(*n)++;
		}
		answer += len + (answer[len] == '\n');
	}
}

/* PRAGMA quick_check over the whole file (see store.h for its cost).
 * Returns 0 when the file is sound, or -1 with <err> saying what is wrong. */
static int check_db(store *s, char *err, size_t errlen)
{
	sqlite3_stmt *st = NULL;
	int rc = sqlite3_prepare_v2(s->db, "PRAGMA quick_check(3)", -1, &st, NULL);
	buf found = BUF_INIT;
	buf_puts(&found, "");
	int problems = 0;
	if (rc == SQLITE_OK)
		while ((rc = sqlite3_step(st)) == SQLITE_ROW)
			add_problems(&found, &problems, (const char *)sqlite3_column_text(st, 0));
	int ret = 0;
	if (rc != SQLITE_DONE) {
		note_fault(s);
		int code = s->last_rc & 0xff;
		if (code == SQLITE_CORRUPT || code == SQLITE_NOTADB)
			damaged_error(s, s->last_err, err, errlen);
		else if (s->last_errno && (code == SQLITE_IOERR || code == SQLITE_CANTOPEN ||
		                           code == SQLITE_FULL))
			/* e.g. no room for the WAL's index on a full disk (the errno
			 * of other failures may be an older call's) */
			snprintf(err, errlen, "cannot read database '%s': %s (%s)", s->path,
			         s->last_err, strerror(s->last_errno));
		else
			snprintf(err, errlen, "cannot read database '%s': %s", s->path, s->last_err);
		ret = -1;
	} else if (problems) {
		damaged_error(s, found.p, err, errlen);
		ret = -1;
	}
	sqlite3_finalize(st);
	buf_release(&found);
	return ret;
}

int store_open(const char *dir, store **out, char *err, size_t errlen)
{
	*out = NULL;
	if (!dir || !*dir)
		dir = ".";
	if (make_dirs(dir, err, errlen) < 0)
		return -1;
	store *s = xcalloc(1, sizeof *s);
	size_t n = strlen(dir) + sizeof DB_FILE + 1;
	s->path = xmalloc(n);
	snprintf(s->path, n, "%s/%s", dir, DB_FILE);

	struct stat sb;
	if (stat(s->path, &sb) < 0) {
		if (errno != ENOENT) {
			snprintf(err, errlen, "cannot open database '%s': %s", s->path, strerror(errno));
			goto fail;
		}
		/* the state may be in a log whose database was moved away */
		char wal[PATH_MAX];
		snprintf(wal, sizeof wal, "%s-wal", s->path);
		if (stat(wal, &sb) == 0 && sb.st_size > 0) {
			snprintf(err, errlen, "database '%s' is missing but its write-ahead log '%s' "
			         "is not: the database was moved or deleted without it; put the "
			         "database back, or move the log aside to start with no state",
			         s->path, wal);
			goto fail;
		}
		if (create_db(s, dir, err, errlen) < 0)
			goto fail;
	} else if (!S_ISREG(sb.st_mode)) {
		snprintf(err, errlen, "cannot open database '%s': not a regular file", s->path);
		goto fail;
	} else if (sb.st_size == 0) {
		/* create_db never leaves an empty file: this one lost its content */
		snprintf(err, errlen, "database '%s' is empty (0 bytes), which a database made "
		         "by canaryd never is: it was truncated; " DAMAGE_ADVICE,
		         s->path, s->path);
		goto fail;
	}

	/* never SQLITE_OPEN_CREATE here: a file removed since the stat must
	 * not come back empty */
	if (open_db(s->path, SQLITE_OPEN_READWRITE, &s->db, err, errlen,
	            "cannot open database") < 0)
		goto fail;
	/* until the file is known to be sound, closing must not write into it */
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1, (int *)NULL);
	if (sqlite3_db_readonly(s->db, "main") == 1) {
		/* SQLite falls back to reading a file it may not write */
		readonly_error(s, "opened read-only", err, errlen);
		goto fail;
	}
	int version;
	if (check_db(s, err, errlen) < 0 || read_version(s, 0, &version, err, errlen) < 0)
		goto fail;

	/* journal_mode answers with the mode in force: a database that cannot
	 * use WAL (some network file systems) says so instead of failing */
	sqlite3_stmt *st;
	if (sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL) != SQLITE_OK) {
		snprintf(err, errlen, "cannot open database '%s': %s", s->path,
		         sqlite3_errmsg(s->db));
		goto fail;
	}
	int rc = sqlite3_step(st);
	const char *mode = rc == SQLITE_ROW ? (const char *)sqlite3_column_text(st, 0) : NULL;
	if (!mode || strcmp(mode, "wal") != 0) {
		snprintf(err, errlen, "cannot open database '%s': %s", s->path,
		         mode ? "write-ahead logging is not available" : sqlite3_errmsg(s->db));
		sqlite3_finalize(st);
		goto fail;
	}
	sqlite3_finalize(st);
	if (exec(s, "PRAGMA synchronous = NORMAL", err, errlen) < 0)
		goto fail;
	if (migrate(s, 0, version, err, errlen) < 0) {
		/* a full disk may empty again: on a current schema canaryd can
		 * serve traffic on the state the file holds and retry its writes
		 * (store_failing), rather than take the proxy down with it */
		if (version != SCHEMA_VERSION || (s->last_rc & 0xff) != SQLITE_FULL)
			goto fail;
		s->failing = 1;
		snprintf(s->failing_why, sizeof s->failing_why, "cannot write to '%s': %s",
		         s->path, s->last_err);
		log_msg(LOG_WARN, NULL, "%s: starting on the state it holds; changes wait until "
		        "it takes writes", s->failing_why);
	}
	sqlite3_db_config(s->db, SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0, (int *)NULL);
	for (int i = 0; i < Q_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
		                       &s->q[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
			goto fail;
		}
	}
	*out = s;
	return 0;
fail:
	store_close(s);
	return -1;
}

void store_close(store *s)
{
	if (!s)
		return;
	for (int i = 0; i < Q_COUNT; i++)
		sqlite3_finalize(s->q[i]);
	sqlite3_close(s->db);
	free(s->path);
	free(s);
}

void store_record_release(store_record *r)
{
	if (!r)
		return;
	free(r->stable_eps);
	free(r->canary_eps);
	free(r->prev_stable_eps);
	r->stable_eps = NULL;
	r->canary_eps = NULL;
	r->prev_stable_eps = NULL;
}

/* ---- writing ---- */

/* Steps <st> once, which must finish (SQLITE_DONE), and resets it. A
 * failure is noted (note_fault) before resetting and rolling back may
 * replace SQLite's message. */
static int step_done(store *s, sqlite3_stmt *st)
{
	int rc = sqlite3_step(st);
	if (rc != SQLITE_DONE)
		note_fault(s);
	sqlite3_reset(st);
	sqlite3_clear_bindings(st);
	return rc == SQLITE_DONE ? 0 : -1;
}

static void bind_text(sqlite3_stmt *st, int i, const char *v)
{
	if (v)
		sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
	else
		sqlite3_bind_null(st, i);
}

/* The metrics of a check event as a JSON array string (malloc'd), or NULL
 * for events that carry none. */
static char *metrics_json(const eng_event *ev)
{
	if (ev->n_metrics <= 0 && strcmp(ev->type, "check") != 0)
		return NULL;
	json_t *arr = json_array();
	for (int i = 0; i < ev->n_metrics && i < ENG_MAX_METRICS; i++) {
		const eng_metric_result *m = &ev->metrics[i];
		json_t *o = json_object();
		json_object_set_new(o, "name", json_string(m->name));
		/* json_real refuses NaN and infinities: those read as no value */
		json_object_set_new(o, "value", m->has_value && isfinite(m->value)
		                                ? json_real(m->value) : json_null());
		if (m->has_min)
			json_object_set_new(o, "min", json_real(m->min));
		if (m->has_max)
			json_object_set_new(o, "max", json_real(m->max));
		json_object_set_new(o, "passed", json_boolean(m->passed));
		if (m->relative) {
			json_object_set_new(o, "relative", json_true());
			json_object_set_new(o, "stableValue", m->has_stable && isfinite(m->stable_value)
			                                      ? json_real(m->stable_value) : json_null());
			if (m->has_stable && isfinite(m->compared))
				json_object_set_new(o, "compared", json_real(m->compared));
		}
		if (m->has_baseline && isfinite(m->baseline_value))
			json_object_set_new(o, "baselineValue", json_real(m->baseline_value));
		if (m->pending)
			json_object_set_new(o, "pending", json_true());
		if (m->held)
			json_object_set_new(o, "held", json_true());
		if (m->reason[0])
			json_object_set_new(o, "reason", json_string(m->reason));
		json_array_append_new(arr, o);
	}
	char *s = json_dumps(arr, JSON_COMPACT);
	json_decref(arr);
	return s;
}

static int write_state(store *s, const char *name, const store_record *rec,
                       uint64_t now_ms)
{
	const eng_state *st = &rec->st;
	sqlite3_stmt *q = s->q[Q_UPSERT_CANARY];
	bind_text(q, 1, name);
	bind_text(q, 2, eng_phase_name(st->phase));
	sqlite3_bind_int(q, 3, st->weight);
	sqlite3_bind_int(q, 4, st->failed_checks);
	sqlite3_bind_int(q, 5, st->iterations);
	sqlite3_bind_int(q, 6, st->manual_weight ? 1 : 0);
	bind_text(q, 7, st->stable_rev);
	bind_text(q, 8, st->canary_rev);
	sqlite3_bind_int64(q, 9, (sqlite3_int64)st->rollout_started_ms);
	sqlite3_bind_int64(q, 10, (sqlite3_int64)st->next_check_ms);
	sqlite3_bind_int64(q, 11, (sqlite3_int64)st->unready_since_ms);
	sqlite3_bind_int64(q, 12, (sqlite3_int64)st->last_transition_ms);
	bind_text(q, 13, st->message);
	bind_text(q, 14, rec->stable_eps ? rec->stable_eps : "");
	bind_text(q, 15, rec->canary_eps ? rec->canary_eps : "");
	sqlite3_bind_int64(q, 16, (sqlite3_int64)now_ms);
	buf b = BUF_INIT;
	buf_puts(&b, "[");
	for (int i = 0; i < ENG_MAX_METRICS; i++)
		buf_printf(&b, "%s%llu", i ? "," : "", (unsigned long long)st->breach_since_ms[i]);
	buf_puts(&b, "]");
	bind_text(q, 17, b.p);
	json_t *fl = json_pack("{s:i, s:b, s:I, s:b, s:s, s:b, s:b, s:s, s:I, s:s, s:I, s:f, s:f}",
	                       "step", st->step, "stepPaused", st->step_paused,
	                       "pauseUntil", (json_int_t)st->pause_until_ms,
	                       "failurePaused", st->failure_paused,
	                       "waiting", eng_gate_name(st->waiting),
	                       "approved", st->approved, "aborted", st->aborted,
	                       "prevStableRevision", st->prev_stable_rev,
	                       "undoUntil", (json_int_t)st->undo_until_ms,
	                       "prevStableEndpoints",
	                       rec->prev_stable_eps ? rec->prev_stable_eps : "",
	                       "watchUntil", (json_int_t)st->watch_until_ms,
	                       "watchBaseRate", st->watch_base_rate,
	                       "watchBaseMs", st->watch_base_ms);
	char *flow = fl ? json_dumps(fl, JSON_COMPACT) : NULL;
	json_decref(fl);
	bind_text(q, 18, flow ? flow : "{}");
	int rc = step_done(s, q);
	free(flow);
	buf_release(&b);
	return rc;
}

static int write_event(store *s, const char *name, const eng_event *ev,
                       uint64_t now_ms)
{
	sqlite3_stmt *q = s->q[Q_INSERT_EVENT];
	char *metrics = metrics_json(ev);
	sqlite3_bind_int64(q, 1, (sqlite3_int64)now_ms);
	bind_text(q, 2, name);
	bind_text(q, 3, ev->type);
	bind_text(q, 4, eng_phase_name(ev->phase));
	sqlite3_bind_int(q, 5, ev->weight);
	bind_text(q, 6, ev->message);
	bind_text(q, 7, ev->actor);
	bind_text(q, 8, metrics);
	if (ev->detail[0])
		bind_text(q, 9, ev->detail);
	else
		sqlite3_bind_null(q, 9);
	int rc = step_done(s, q);
	free(metrics);
	return rc;
}

static int write_rollout_end(store *s, const char *name, const eng_state *st,
                             uint64_t now_ms)
{
	if (st->phase != ENG_SUCCEEDED && st->phase != ENG_FAILED)
		return 0;
	if (!st->canary_rev[0])
		return 0; /* nothing was rolled out */
	sqlite3_stmt *q = s->q[Q_END_ROLLOUT];
	bind_text(q, 1, name);
	bind_text(q, 2, st->canary_rev);
	bind_text(q, 3, eng_phase_name(st->phase));
	sqlite3_bind_int64(q, 4, (sqlite3_int64)now_ms);
	return step_done(s, q);
}

int store_commit(store *s, const char *name, const store_record *rec,
                 const eng_event *events, const uint64_t *event_ms, int n_events,
                 uint64_t now_ms, char *err, size_t errlen)
{
	if (s->damaged || file_moved(s)) {
		snprintf(err, errlen, "cannot write canary '%s': %s (nothing more is written "
		         "to it)", name, s->damage);
		return STORE_DAMAGED;
	}
	int ok = step_done(s, s->q[Q_BEGIN]) == 0;
	ok = ok && write_state(s, name, rec, now_ms) == 0;
	for (int i = 0; ok && i < n_events; i++)
		ok = write_event(s, name, &events[i], event_ms ? event_ms[i] : now_ms) == 0;
	ok = ok && write_rollout_end(s, name, &rec->st, now_ms) == 0;
	ok = ok && step_done(s, s->q[Q_COMMIT]) == 0;
	if (ok) {
		s->failing = 0;
		return 0;
	}
	snprintf(err, errlen, "cannot write canary '%s' to '%s': %s", name, s->path,
	         s->last_err);
	s->failing = 1;
	snprintf(s->failing_why, sizeof s->failing_why, "%s", err);
	/* the rollback's own failure must not hide the first one, nor count */
	if (!sqlite3_get_autocommit(s->db)) {
		sqlite3_step(s->q[Q_ROLLBACK]);
		sqlite3_reset(s->q[Q_ROLLBACK]);
	}
	return s->damaged ? STORE_DAMAGED : STORE_RETRY;
}

/* ---- reading ---- */

static void copy_col(char *dst, size_t n, sqlite3_stmt *q, int col)
{
	const char *v = (const char *)sqlite3_column_text(q, col);
	snprintf(dst, n, "%s", v ? v : "");
}

static char *dup_col(sqlite3_stmt *q, int col)
{
	const char *v = (const char *)sqlite3_column_text(q, col);
	return xstrdup(v ? v : "");
}

/* The flow column (write_state): a state saved before version 3, or a
 * field missing, reads as a rollout at no step with nothing pending. */
static void load_flow(store_record *rec, const char *text)
{
	eng_state *st = &rec->st;
	st->step = -1;
	json_t *o = text ? json_loads(text, 0, NULL) : NULL;
	if (!json_is_object(o)) {
		json_decref(o);
		return;
	}
	json_t *v;
	if (json_is_integer(v = json_object_get(o, "step")) && json_integer_value(v) >= -1 &&
	    json_integer_value(v) < ENG_MAX_STEPS)
		st->step = (int)json_integer_value(v);
	st->step_paused = json_is_true(json_object_get(o, "stepPaused"));
	if (json_is_integer(v = json_object_get(o, "pauseUntil")) && json_integer_value(v) > 0)
		st->pause_until_ms = (uint64_t)json_integer_value(v);
	st->failure_paused = json_is_true(json_object_get(o, "failurePaused"));
	const char *w = json_string_value(json_object_get(o, "waiting"));
	for (int g = 1; w && w[0] && g < ENG_GATE_COUNT; g++)
		if (strcmp(w, eng_gate_name((eng_gate)g)) == 0)
			st->waiting = (eng_gate)g;
	st->approved = json_is_true(json_object_get(o, "approved"));
	st->aborted = json_is_true(json_object_get(o, "aborted"));
	const char *prev = json_string_value(json_object_get(o, "prevStableRevision"));
	if (prev)
		snprintf(st->prev_stable_rev, sizeof st->prev_stable_rev, "%s", prev);
	if (json_is_integer(v = json_object_get(o, "undoUntil")) && json_integer_value(v) > 0)
		st->undo_until_ms = (uint64_t)json_integer_value(v);
	if (json_is_integer(v = json_object_get(o, "watchUntil")) && json_integer_value(v) > 0)
		st->watch_until_ms = (uint64_t)json_integer_value(v);
	if (json_is_number(v = json_object_get(o, "watchBaseRate")) && json_number_value(v) >= 0 &&
	    json_number_value(v) < 1)
		st->watch_base_rate = json_number_value(v);
	if (json_is_number(v = json_object_get(o, "watchBaseMs")) && json_number_value(v) >= 0)
		st->watch_base_ms = json_number_value(v);
	const char *pe = json_string_value(json_object_get(o, "prevStableEndpoints"));
	if (pe && pe[0])
		rec->prev_stable_eps = strdup(pe);
	json_decref(o);
}

int store_load(store *s, const char *name, store_record *rec,
               char *err, size_t errlen)
{
	sqlite3_stmt *q = s->q[Q_LOAD_CANARY];
	bind_text(q, 1, name);
	int rc = sqlite3_step(q);
	int ret = 0;
	if (rc == SQLITE_ROW) {
		const char *ph = (const char *)sqlite3_column_text(q, 0);
		int phase = eng_phase_parse(ph);
		if (phase < 0) {
			snprintf(err, errlen, "canary '%s' in '%s' has an unknown phase '%s'",
			         name, s->path, ph ? ph : "");
			ret = -1;
		} else {
			memset(rec, 0, sizeof *rec);
			eng_state *st = &rec->st;
			st->phase = (eng_phase)phase;
			st->weight = sqlite3_column_int(q, 1);
			st->failed_checks = sqlite3_column_int(q, 2);
			st->iterations = sqlite3_column_int(q, 3);
			st->manual_weight = sqlite3_column_int(q, 4) != 0;
			copy_col(st->stable_rev, sizeof st->stable_rev, q, 5);
			copy_col(st->canary_rev, sizeof st->canary_rev, q, 6);
			st->rollout_started_ms = (uint64_t)sqlite3_column_int64(q, 7);
			st->next_check_ms = (uint64_t)sqlite3_column_int64(q, 8);
			st->unready_since_ms = (uint64_t)sqlite3_column_int64(q, 9);
			st->last_transition_ms = (uint64_t)sqlite3_column_int64(q, 10);
			copy_col(st->message, sizeof st->message, q, 11);
			rec->stable_eps = dup_col(q, 12);
			rec->canary_eps = dup_col(q, 13);
			const char *bs = (const char *)sqlite3_column_text(q, 14);
			json_t *arr = bs ? json_loads(bs, 0, NULL) : NULL;
			for (int i = 0; i < ENG_MAX_METRICS && i < (int)json_array_size(arr); i++)
				st->breach_since_ms[i] = (uint64_t)json_integer_value(json_array_get(arr, i));
			json_decref(arr);
			load_flow(rec, (const char *)sqlite3_column_text(q, 15));
			ret = 1;
		}
	} else if (rc != SQLITE_DONE) {
		note_fault(s);
		snprintf(err, errlen, "cannot read canary '%s' from '%s': %s", name,
		         s->path, s->last_err);
		ret = -1;
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return ret;
}

int store_rollout_ended(store *s, const char *name, const char *revision,
                        char *err, size_t errlen)
{
	sqlite3_stmt *q = s->q[Q_ROLLOUT_ENDED];
	bind_text(q, 1, name);
	bind_text(q, 2, revision);
	int rc = sqlite3_step(q);
	int ret = rc == SQLITE_ROW ? 1 : rc == SQLITE_DONE ? 0 : -1;
	if (ret < 0) {
		note_fault(s);
		snprintf(err, errlen, "cannot read the rollouts of canary '%s' from '%s': %s",
		         name, s->path, s->last_err);
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return ret;
}

static json_t *col_string(sqlite3_stmt *q, int col)
{
	const char *v = (const char *)sqlite3_column_text(q, col);
	return json_string(v ? v : "");
}

json_t *store_events(store *s, const char *name, int64_t after_id)
{
	sqlite3_stmt *q = s->q[Q_EVENTS];
	bind_text(q, 1, name);
	sqlite3_bind_int64(q, 2, after_id > 0 ? after_id : 0);
	json_t *arr = json_array();
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		json_t *o = json_object();
		char when[40];
		util_rfc3339((uint64_t)sqlite3_column_int64(q, 1), when, sizeof when);
		json_object_set_new(o, "id", json_integer(sqlite3_column_int64(q, 0)));
		json_object_set_new(o, "time", json_string(when));
		json_object_set_new(o, "canary", col_string(q, 2));
		json_object_set_new(o, "type", col_string(q, 3));
		json_object_set_new(o, "phase", col_string(q, 4));
		json_object_set_new(o, "weight", json_integer(sqlite3_column_int(q, 5)));
		json_object_set_new(o, "message", col_string(q, 6));
		json_object_set_new(o, "actor", col_string(q, 7));
		const char *m = (const char *)sqlite3_column_text(q, 8);
		if (m) {
			json_error_t jerr;
			json_t *metrics = json_loads(m, 0, &jerr);
			if (metrics)
				json_object_set_new(o, "metrics", metrics);
			else
				log_msg(LOG_WARN, name, "event %lld in '%s' has unreadable metrics: %s",
				        (long long)sqlite3_column_int64(q, 0), s->path, jerr.text);
		}
		if (sqlite3_column_type(q, 9) == SQLITE_TEXT)
			json_object_set_new(o, "detail", col_string(q, 9));
		json_array_append_new(arr, o);
	}
	if (rc != SQLITE_DONE) {
		note_fault(s);
		log_msg(LOG_ERROR, name, "cannot read events from '%s': %s", s->path, s->last_err);
		json_decref(arr);
		arr = NULL;
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return arr;
}

int store_damaged(const store *s, const char **why)
{
	if (why)
		*why = s->damaged ? s->damage : "";
	return s->damaged;
}

int store_failing(const store *s, const char **why)
{
	if (why)
		*why = s->failing ? s->failing_why : "";
	return s->failing && !s->damaged;
}

uint64_t store_errors(const store *s)
{
	return s->errors;
}

const char *store_path(const store *s)
{
	return s->path;
}
