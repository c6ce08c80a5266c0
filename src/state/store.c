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

#include "audit.h"
#include "log.h"
#include "util.h"

#define DB_FILE "canaryd.db"
#define SCHEMA_VERSION 4  /* PRAGMA user_version; bump with a migration */

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
	Q_HEAD_GET,
	Q_HEAD_SET,
	Q_AUDIT_ROWS,
	Q_AUDIT_RANGE,
	Q_AUDIT_CANARIES,
	Q_AUDIT_HAS,
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
		" detail, seq, prev_hash, hash) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11,"
		" ?12)",
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
		"SELECT id, time_ms, canary, type, phase, weight, message, actor, metrics, detail,"
		" seq, hash FROM events WHERE canary = ?1 AND id > ?2 ORDER BY id",
	[Q_HEAD_GET] = "SELECT seq, hash FROM audit_heads WHERE canary = ?1",
	[Q_HEAD_SET] = "INSERT OR REPLACE INTO audit_heads(canary, seq, hash) VALUES(?1, ?2, ?3)",
	/* the columns of AUDIT_COLS, in order */
	[Q_AUDIT_ROWS] =
		"SELECT id, seq, time_ms, canary, type, phase, weight, message, actor, metrics,"
		" detail, prev_hash, hash FROM events WHERE canary = ?1 ORDER BY id",
	[Q_AUDIT_RANGE] =
		"SELECT id, seq, time_ms, canary, type, phase, weight, message, actor, metrics,"
		" detail, prev_hash, hash FROM events WHERE canary = ?1 AND time_ms >= ?2"
		" AND time_ms < ?3 ORDER BY id",
	[Q_AUDIT_CANARIES] =
		"SELECT canary FROM audit_heads UNION SELECT DISTINCT canary FROM events"
		" ORDER BY 1",
	[Q_AUDIT_HAS] =
		"SELECT 1 FROM audit_heads WHERE canary = ?1"
		" UNION ALL SELECT 1 FROM events WHERE canary = ?1 LIMIT 1",
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

/* Version 4: the audit's hash chain (audit.h, docs/audit.md): each event's
 * place in its canary's chain and its hash, and each chain's last link,
 * so that deleting the newest events shows too. Existing events are
 * chained in id order by chain_existing(). */
static const char schema_v4[] =
	"ALTER TABLE events ADD COLUMN seq INT;"
	"ALTER TABLE events ADD COLUMN prev_hash TEXT;"
	"ALTER TABLE events ADD COLUMN hash TEXT;"
	"CREATE TABLE IF NOT EXISTS audit_heads ("
	" canary TEXT PRIMARY KEY, seq INT, hash TEXT);";

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

/* One canary's chain while the existing events are chained. */
typedef struct chain_link {
	char *canary;
	int64_t seq;
	char hash[AUDIT_HEX];
} chain_link;

/* Version 4's step: the events written before the chain existed are
 * chained now, per canary in id order (the order they were written in),
 * and each chain's head recorded. Runs inside migrate()'s transaction, so
 * a canaryd killed meanwhile leaves version 3 whole, to be chained again. */
static int chain_existing(store *s, char *err, size_t errlen)
{
	sqlite3_stmt *rd = NULL, *up = NULL, *hd = NULL;
	chain_link *links = NULL;
	err[0] = '\0';
	size_t n_links = 0;
	int ok = sqlite3_prepare_v2(s->db,
	                            "SELECT id, canary, time_ms, type, phase, weight, message,"
	                            " actor, metrics, detail FROM events ORDER BY id",
	                            -1, &rd, NULL) == SQLITE_OK &&
	         sqlite3_prepare_v2(s->db,
	                            "UPDATE events SET seq = ?1, prev_hash = ?2, hash = ?3"
	                            " WHERE id = ?4", -1, &up, NULL) == SQLITE_OK &&
	         sqlite3_prepare_v2(s->db,
	                            "INSERT OR REPLACE INTO audit_heads(canary, seq, hash)"
	                            " VALUES(?1, ?2, ?3)", -1, &hd, NULL) == SQLITE_OK;
	int rc = SQLITE_ROW;
	/* updating columns of the row a rowid scan stands on leaves the scan's
	 * order as it was: every row is visited once */
	while (ok && (rc = sqlite3_step(rd)) == SQLITE_ROW) {
		const char *canary = (const char *)sqlite3_column_text(rd, 1);
		if (!canary)
			canary = "";
		size_t i = 0;
		while (i < n_links && strcmp(links[i].canary, canary) != 0)
			i++;
		if (i == n_links) {
			links = xrealloc(links, (n_links + 1) * sizeof *links);
			links[i].canary = xstrdup(canary);
			links[i].seq = 0;
			snprintf(links[i].hash, sizeof links[i].hash, "%s", AUDIT_GENESIS);
			n_links++;
		}
		audit_event e = {
			.seq = links[i].seq + 1,
			.canary = canary,
			.time_ms = sqlite3_column_int64(rd, 2),
			.type = (const char *)sqlite3_column_text(rd, 3),
			.phase = (const char *)sqlite3_column_text(rd, 4),
			.weight = sqlite3_column_int64(rd, 5),
			.message = (const char *)sqlite3_column_text(rd, 6),
			.actor = (const char *)sqlite3_column_text(rd, 7),
			.metrics = (const char *)sqlite3_column_text(rd, 8),
			.detail = (const char *)sqlite3_column_text(rd, 9),
		};
		char hash[AUDIT_HEX];
		if (audit_hash(links[i].hash, &e, hash) < 0) {
			snprintf(err, errlen, "database '%s': cannot compute SHA-256 (libcrypto)",
			         s->path);
			ok = 0;
			break;
		}
		sqlite3_bind_int64(up, 1, e.seq);
		sqlite3_bind_text(up, 2, links[i].hash, -1, SQLITE_TRANSIENT);
		sqlite3_bind_text(up, 3, hash, -1, SQLITE_TRANSIENT);
		sqlite3_bind_int64(up, 4, sqlite3_column_int64(rd, 0));
		ok = sqlite3_step(up) == SQLITE_DONE;
		sqlite3_reset(up);
		links[i].seq = e.seq;
		memcpy(links[i].hash, hash, sizeof hash);
	}
	if (ok && rc != SQLITE_DONE)
		ok = 0;
	for (size_t i = 0; ok && i < n_links; i++) {
		sqlite3_bind_text(hd, 1, links[i].canary, -1, SQLITE_STATIC);
		sqlite3_bind_int64(hd, 2, links[i].seq);
		sqlite3_bind_text(hd, 3, links[i].hash, -1, SQLITE_STATIC);
		ok = sqlite3_step(hd) == SQLITE_DONE;
		sqlite3_reset(hd);
	}
	if (!ok && !err[0])
		snprintf(err, errlen, "database '%s': cannot chain the audit events: %s", s->path,
		         sqlite3_errmsg(s->db));
	sqlite3_finalize(rd);
	sqlite3_finalize(up);
	sqlite3_finalize(hd);
	for (size_t i = 0; i < n_links; i++)
		free(links[i].canary);
	free(links);
	return ok ? 0 : -1;
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
	    (version < 4 && (exec(s, schema_v4, err, errlen) < 0 ||
	                     chain_existing(s, err, errlen) < 0)) ||
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

/* Prepares every statement of sql_text for <s>: 0, or -1 with <err>. */
static int prepare_all(store *s, char *err, size_t errlen)
{
	for (int i = 0; i < Q_COUNT; i++) {
		if (sqlite3_prepare_v3(s->db, sql_text[i], -1, SQLITE_PREPARE_PERSISTENT,
		                       &s->q[i], NULL) != SQLITE_OK) {
			snprintf(err, errlen, "database '%s': %s", s->path, sqlite3_errmsg(s->db));
			return -1;
		}
	}
	return 0;
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
	if (prepare_all(s, err, errlen) < 0)
		goto fail;
	*out = s;
	return 0;
fail:
	store_close(s);
	return -1;
}

int store_open_reader(const char *path, store **out, char *err, size_t errlen)
{
	*out = NULL;
	store *s = xcalloc(1, sizeof *s);
	s->path = xstrdup(path);
	/* never SQLITE_OPEN_CREATE: only the writer makes the file */
	if (open_db(s->path, SQLITE_OPEN_READONLY, &s->db, err, errlen,
	            "cannot open database") < 0)
		goto fail;
	if (prepare_all(s, err, errlen) < 0)
		goto fail;
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
		/* stable's value over the same window, whenever canaryd has it
		 * (relative thresholds, and built-in metrics whatever their
		 * threshold); "stableValue" below is the relative threshold's */
		if (m->has_stable && isfinite(m->stable_value))
			json_object_set_new(o, "stable", json_real(m->stable_value));
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
	if (fl && rec->cost.rollout_ms) {
		const store_cost *k = &rec->cost;
		json_object_set_new(fl, "cost", json_pack("{s:I, s:I, s:[I,I], s:[I,I], s:[I,I]}",
		                    "rollout", (json_int_t)k->rollout_ms, "end", (json_int_t)k->end_ms,
		                    "requests", (json_int_t)k->requests[0], (json_int_t)k->requests[1],
		                    "errors", (json_int_t)k->errors[0], (json_int_t)k->errors[1],
		                    "copies", (json_int_t)k->requests[2], (json_int_t)k->errors[2]));
	}
	char *flow = fl ? json_dumps(fl, JSON_COMPACT) : NULL;
	json_decref(fl);
	bind_text(q, 18, flow ? flow : "{}");
	int rc = step_done(s, q);
	free(flow);
	buf_release(&b);
	return rc;
}

/* Reads the head of <name>'s chain into *seq and <hash> (0 and
 * AUDIT_GENESIS for none). Returns 0, or -1 (noted) on a failed read. */
static int head_get(store *s, const char *name, int64_t *seq, char hash[AUDIT_HEX])
{
	sqlite3_stmt *q = s->q[Q_HEAD_GET];
	bind_text(q, 1, name);
	int rc = sqlite3_step(q);
	*seq = 0;
	snprintf(hash, AUDIT_HEX, "%s", AUDIT_GENESIS);
	if (rc == SQLITE_ROW) {
		*seq = sqlite3_column_int64(q, 0);
		const char *h = (const char *)sqlite3_column_text(q, 1);
		snprintf(hash, AUDIT_HEX, "%s", h ? h : "");
	} else if (rc != SQLITE_DONE) {
		note_fault(s);
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Appends <ev> to the chain of <name>: its hash is computed from the head
 * read in the same transaction, and the head moves to it, so a commit
 * either adds the event, its link and the new head, or nothing. */
static int write_event(store *s, const char *name, const eng_event *ev,
                       uint64_t now_ms)
{
	int64_t seq;
	char prev[AUDIT_HEX], hash[AUDIT_HEX];
	if (head_get(s, name, &seq, prev) < 0)
		return -1;
	char *metrics = metrics_json(ev);
	audit_event ae = {
		.seq = seq + 1,
		.canary = name,
		.time_ms = (int64_t)now_ms,
		.type = ev->type,
		.phase = eng_phase_name(ev->phase),
		.weight = ev->weight,
		.message = ev->message,
		.actor = ev->actor,
		.metrics = metrics,
		.detail = ev->detail[0] ? ev->detail : NULL,
	};
	if (audit_hash(prev, &ae, hash) < 0) {
		free(metrics);
		s->errors++;
		snprintf(s->last_err, sizeof s->last_err, "cannot compute SHA-256 (libcrypto)");
		return -1;
	}
	sqlite3_stmt *q = s->q[Q_INSERT_EVENT];
	sqlite3_bind_int64(q, 1, ae.time_ms);
	bind_text(q, 2, name);
	bind_text(q, 3, ae.type);
	bind_text(q, 4, ae.phase);
	sqlite3_bind_int64(q, 5, ae.weight);
	bind_text(q, 6, ae.message);
	bind_text(q, 7, ae.actor);
	bind_text(q, 8, ae.metrics);
	bind_text(q, 9, ae.detail);
	sqlite3_bind_int64(q, 10, ae.seq);
	bind_text(q, 11, prev);
	bind_text(q, 12, hash);
	int rc = step_done(s, q);
	free(metrics);
	if (rc < 0)
		return -1;
	q = s->q[Q_HEAD_SET];
	bind_text(q, 1, name);
	sqlite3_bind_int64(q, 2, ae.seq);
	bind_text(q, 3, hash);
	return step_done(s, q);
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
	/* the cost's counts: all of them or none (a part would be wrong) */
	json_int_t ro, en, rq[2], er[2];
	json_t *k = json_object_get(o, "cost");
	if (k && json_unpack(k, "{s:I, s:I, s:[I,I], s:[I,I]}", "rollout", &ro, "end", &en,
	                     "requests", &rq[0], &rq[1], "errors", &er[0], &er[1]) == 0 &&
	    ro > 0 && en >= 0 && rq[0] >= 0 && rq[1] >= 0 && er[0] >= 0 && er[1] >= 0) {
		rec->cost.rollout_ms = (uint64_t)ro;
		rec->cost.end_ms = (uint64_t)en;
		for (int t = 0; t < 2; t++) {
			rec->cost.requests[t] = (uint64_t)rq[t];
			rec->cost.errors[t] = (uint64_t)er[t];
		}
		/* "copies" came later: a state saved before it had none */
		json_int_t cn, ce;
		if (json_unpack(json_object_get(k, "copies"), "[I,I]", &cn, &ce) == 0 && cn >= 0 &&
		    ce >= 0 && ce <= cn) {
			rec->cost.requests[2] = (uint64_t)cn;
			rec->cost.errors[2] = (uint64_t)ce;
		}
	}
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
		json_object_set_new(o, "seq", json_integer(sqlite3_column_int64(q, 10)));
		json_object_set_new(o, "hash", col_string(q, 11));
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

/* ---- the audit chain ---- */

/* One row of Q_AUDIT_ROWS / Q_AUDIT_RANGE; its strings live until the
 * statement steps again. */
typedef struct audit_row {
	int64_t id;
	audit_event e;
	const char *prev;
	const char *hash;
} audit_row;

static void read_audit_row(sqlite3_stmt *q, audit_row *r)
{
	r->id = sqlite3_column_int64(q, 0);
	r->e.seq = sqlite3_column_int64(q, 1);
	r->e.time_ms = sqlite3_column_int64(q, 2);
	r->e.canary = (const char *)sqlite3_column_text(q, 3);
	r->e.type = (const char *)sqlite3_column_text(q, 4);
	r->e.phase = (const char *)sqlite3_column_text(q, 5);
	r->e.weight = sqlite3_column_int64(q, 6);
	r->e.message = (const char *)sqlite3_column_text(q, 7);
	r->e.actor = (const char *)sqlite3_column_text(q, 8);
	r->e.metrics = (const char *)sqlite3_column_text(q, 9);
	r->e.detail = (const char *)sqlite3_column_text(q, 10);
	r->prev = (const char *)sqlite3_column_text(q, 11);
	r->hash = (const char *)sqlite3_column_text(q, 12);
}

/* Does <e>, placed at <seq> after <prev>, hash to <hash>? */
static int links_to(audit_event e, int64_t seq, const char *prev, const char *hash)
{
	char h[AUDIT_HEX];
	e.seq = seq;
	return prev && hash && audit_hash(prev, &e, h) == 0 && strcmp(h, hash) == 0;
}

static int audit_verify(store *s, const char *name, json_t **out, char *err, size_t errlen);

/* What the first pass of verify keeps of a row. */
typedef struct vrow {
	int64_t id, seq;
	int sound;              /* its content, seq and prev_hash give its hash */
	char prev[AUDIT_HEX], hash[AUDIT_HEX];
} vrow;

static json_t *verify_result(const char *name, int64_t n, const vrow *last, json_t *bad,
                             const char *msg)
{
	json_t *o = json_pack("{s:s, s:b, s:I, s:s}", "canary", name, "intact", bad == NULL,
	                      "events", (json_int_t)n, "message", msg);
	if (last)
		json_object_set_new(o, "head", json_pack("{s:I, s:s}", "seq", (json_int_t)last->seq,
		                                         "hash", last->hash));
	if (bad)
		json_object_set_new(o, "firstBad", bad);
	return o;
}

static json_t *bad_event(const char *problem, int64_t id, int64_t seq)
{
	json_t *o = json_pack("{s:s}", "problem", problem);
	if (id > 0)
		json_object_set_new(o, "id", json_integer(id));
	json_object_set_new(o, "seq", json_integer(seq));
	return o;
}

/* Row <i>'s content failed its hash: does it hold another row's content
 * (rows swapped)? Returns that row's index, or -1. Re-reads the rows: this
 * runs once, at the first broken link. */
static ssize_t content_of(store *s, const char *name, const vrow *rows, size_t n, size_t i)
{
	sqlite3_stmt *q = s->q[Q_AUDIT_ROWS];
	bind_text(q, 1, name);
	ssize_t found = -1;
	for (size_t k = 0; sqlite3_step(q) == SQLITE_ROW; k++) {
		if (k != i)
			continue;
		audit_row r;
		read_audit_row(q, &r);
		for (size_t j = 0; j < n && found < 0; j++)
			if (j != i && links_to(r.e, rows[j].seq, rows[j].prev, rows[j].hash))
				found = (ssize_t)j;
		break;
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return found;
}

int store_audit_verify(store *s, const char *name, json_t **out, char *err, size_t errlen)
{
	/* the rows and the head from one snapshot: on a reader connection a
	 * commit between the two reads would look like a deleted event */
	int own = sqlite3_get_autocommit(s->db) && sqlite3_exec(s->db, "BEGIN", NULL, NULL,
	                                                       NULL) == SQLITE_OK;
	int rc = audit_verify(s, name, out, err, errlen);
	if (own)
		sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
	return rc;
}

static int audit_verify(store *s, const char *name, json_t **out, char *err, size_t errlen)
{
	*out = NULL;
	/* pass 1: each row alone */
	sqlite3_stmt *q = s->q[Q_AUDIT_ROWS];
	bind_text(q, 1, name);
	vrow *rows = NULL;
	size_t n = 0, cap = 0;
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		audit_row r;
		read_audit_row(q, &r);
		if (n == cap) {
			cap = cap ? cap * 2 : 256;
			rows = xrealloc(rows, cap * sizeof *rows);
		}
		vrow *v = &rows[n++];
		v->id = r.id;
		v->seq = sqlite3_column_type(q, 1) == SQLITE_INTEGER ? r.e.seq : -1;
		snprintf(v->prev, sizeof v->prev, "%s", r.prev ? r.prev : "");
		snprintf(v->hash, sizeof v->hash, "%s", r.hash ? r.hash : "");
		v->sound = v->seq > 0 && links_to(r.e, r.e.seq, r.prev, r.hash);
	}
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (rc != SQLITE_DONE) {
		note_fault(s);
		snprintf(err, errlen, "cannot read the audit of canary '%s' from '%s': %s", name,
		         s->path, s->last_err);
		free(rows);
		return -1;
	}
	int64_t head_seq;
	char head[AUDIT_HEX];
	if (head_get(s, name, &head_seq, head) < 0) {
		snprintf(err, errlen, "cannot read the audit of canary '%s' from '%s': %s", name,
		         s->path, s->last_err);
		free(rows);
		return -1;
	}

	/* pass 2: the chain, in the order the rows were written */
	char msg[512];
	json_t *bad = NULL;
	const char *prev = AUDIT_GENESIS;
	int64_t expect = 1;
	size_t i;
	for (i = 0; i < n && !bad; i++) {
		vrow *v = &rows[i];
		if (!v->sound) {
			ssize_t j = content_of(s, name, rows, n, i);
			if (j >= 0) {
				snprintf(msg, sizeof msg, "event id %lld (seq %lld) holds the content of "
				         "seq %lld (event id %lld): events were reordered",
				         (long long)v->id, (long long)v->seq, (long long)rows[j].seq,
				         (long long)rows[j].id);
				bad = bad_event("reordered", v->id, v->seq);
			} else {
				snprintf(msg, sizeof msg, "event id %lld (seq %lld) was altered: its content "
				         "does not give its hash", (long long)v->id, (long long)v->seq);
				bad = bad_event("altered", v->id, v->seq);
			}
		} else if (v->seq != expect) {
			int later = 0;
			for (size_t k = i + 1; k < n && !later; k++)
				later = rows[k].seq == expect;
			if (later || v->seq < expect) {
				snprintf(msg, sizeof msg, "event id %lld (seq %lld) is out of order: seq "
				         "%lld comes first: events were reordered", (long long)v->id,
				         (long long)v->seq, (long long)expect);
				bad = bad_event("reordered", v->id, v->seq);
			} else {
				if (v->seq == expect + 1)
					snprintf(msg, sizeof msg, "event seq %lld is missing (deleted) before "
					         "event id %lld (seq %lld)", (long long)expect,
					         (long long)v->id, (long long)v->seq);
				else
					snprintf(msg, sizeof msg, "events seq %lld to %lld are missing "
					         "(deleted) before event id %lld (seq %lld)", (long long)expect,
					         (long long)v->seq - 1, (long long)v->id, (long long)v->seq);
				bad = bad_event("missing", 0, expect);
			}
		} else if (strcmp(v->prev, prev) != 0) {
			snprintf(msg, sizeof msg, "event id %lld (seq %lld) was altered: its prev_hash "
			         "is not the hash of seq %lld", (long long)v->id, (long long)v->seq,
			         (long long)v->seq - 1);
			bad = bad_event("altered", v->id, v->seq);
		} else {
			prev = v->hash;
			expect = v->seq + 1;
		}
	}
	const vrow *last = i > 0 && !bad ? &rows[i - 1] : NULL;
	int64_t last_seq = last ? last->seq : 0;
	if (!bad && head_seq > last_seq) {
		if (head_seq == last_seq + 1)
			snprintf(msg, sizeof msg, "event seq %lld, the newest, is missing (deleted)",
			         (long long)head_seq);
		else
			snprintf(msg, sizeof msg, "events seq %lld to %lld, the newest, are missing "
			         "(deleted)", (long long)last_seq + 1, (long long)head_seq);
		bad = bad_event("missing", 0, last_seq + 1);
	} else if (!bad && last && (head_seq != last_seq || strcmp(head, last->hash) != 0)) {
		snprintf(msg, sizeof msg, "the chain's head (seq %lld) does not match its newest "
		         "event id %lld (seq %lld): the head or the events were altered",
		         (long long)head_seq, (long long)last->id, (long long)last_seq);
		bad = bad_event("altered", last->id, last_seq);
	} else if (!bad) {
		snprintf(msg, sizeof msg, "%zu events%s%s", n, last ? ", head " : "",
		         last ? last->hash : "");
	}
	*out = verify_result(name, (int64_t)n, last, bad, msg);
	free(rows);
	return 0;
}

json_t *store_audit_canaries(store *s)
{
	sqlite3_stmt *q = s->q[Q_AUDIT_CANARIES];
	json_t *arr = json_array();
	int rc;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW)
		json_array_append_new(arr, col_string(q, 0));
	if (rc != SQLITE_DONE) {
		note_fault(s);
		log_msg(LOG_ERROR, NULL, "cannot read the audit's canaries from '%s': %s", s->path,
		        s->last_err);
		json_decref(arr);
		arr = NULL;
	}
	sqlite3_reset(q);
	return arr;
}

int store_audit_has(store *s, const char *name)
{
	sqlite3_stmt *q = s->q[Q_AUDIT_HAS];
	bind_text(q, 1, name);
	int rc = sqlite3_step(q);
	if (rc != SQLITE_ROW && rc != SQLITE_DONE)
		note_fault(s);
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	return rc == SQLITE_ROW;
}

/* <v> as a JSON string, or null; text that is not UTF-8 (a row altered by
 * hand) goes out with its other bytes as '?' rather than be dropped. */
static json_t *text_or_null(const char *v)
{
	if (!v)
		return json_null();
	json_t *j = json_string(v);
	if (!j) {
		char *copy = xstrdup(v);
		j = json_string(util_ascii_line(copy));
		free(copy);
	}
	return j;
}

/* An exported event: everything hashed, with the times readable. */
static json_t *export_object(const audit_row *r)
{
	char utc[40], london[48];
	util_rfc3339((uint64_t)r->e.time_ms, utc, sizeof utc);
	const char *zone = audit_london(r->e.time_ms, london, sizeof london);
	json_t *o = json_object();
	json_object_set_new(o, "id", json_integer(r->id));
	json_object_set_new(o, "seq", json_integer(r->e.seq));
	json_object_set_new(o, "time", json_string(utc));
	json_object_set_new(o, "timeMs", json_integer(r->e.time_ms));
	json_object_set_new(o, "timeLondon", json_string(london));
	json_object_set_new(o, "zoneLondon", json_string(zone));
	json_object_set_new(o, "canary", text_or_null(r->e.canary));
	json_object_set_new(o, "type", text_or_null(r->e.type));
	json_object_set_new(o, "phase", text_or_null(r->e.phase));
	json_object_set_new(o, "weight", json_integer(r->e.weight));
	json_object_set_new(o, "message", text_or_null(r->e.message));
	json_object_set_new(o, "actor", text_or_null(r->e.actor));
	json_object_set_new(o, "metrics", text_or_null(r->e.metrics));
	json_object_set_new(o, "detail", text_or_null(r->e.detail));
	json_object_set_new(o, "prevHash", text_or_null(r->prev));
	json_object_set_new(o, "hash", text_or_null(r->hash));
	return o;
}

/* One CSV field (RFC 4180): quoted when it holds a comma, a quote or a
 * line break. NULL is an empty field. */
static void csv_field(buf *b, const char *v, int last)
{
	if (v && v[strcspn(v, ",\"\r\n")]) {
		buf_puts(b, "\"");
		for (const char *p = v; *p; p++)
			buf_puts(b, *p == '"' ? "\"\"" : (char[]){ *p, '\0' });
		buf_puts(b, "\"");
	} else if (v) {
		buf_puts(b, v);
	}
	buf_puts(b, last ? "\r\n" : ",");
}

#define CSV_HEADER "id,seq,time_utc,time_ms,time_london,zone_london,canary,type,phase,weight," \
	"message,actor,metrics,detail,prev_hash,hash\r\n"

static void export_csv_row(buf *b, const audit_row *r)
{
	char utc[40], london[48];
	util_rfc3339((uint64_t)r->e.time_ms, utc, sizeof utc);
	const char *zone = audit_london(r->e.time_ms, london, sizeof london);
	buf_printf(b, "%lld,%lld,%s,%lld,%s,%s,", (long long)r->id, (long long)r->e.seq, utc,
	           (long long)r->e.time_ms, london, zone);
	char weight[24];
	snprintf(weight, sizeof weight, "%lld", (long long)r->e.weight);
	csv_field(b, r->e.canary, 0);
	csv_field(b, r->e.type, 0);
	csv_field(b, r->e.phase, 0);
	csv_field(b, weight, 0);
	csv_field(b, r->e.message, 0);
	csv_field(b, r->e.actor, 0);
	csv_field(b, r->e.metrics, 0);
	csv_field(b, r->e.detail, 0);
	csv_field(b, r->prev, 0);
	csv_field(b, r->hash, 1);
}

int store_audit_export(store *s, const char *name, store_export_format fmt,
                       int64_t since_ms, int64_t until_ms, buf *out, char *err,
                       size_t errlen)
{
	sqlite3_stmt *q = s->q[Q_AUDIT_RANGE];
	bind_text(q, 1, name);
	sqlite3_bind_int64(q, 2, since_ms);
	sqlite3_bind_int64(q, 3, until_ms);
	if (fmt == STORE_EXPORT_CSV)
		buf_puts(out, CSV_HEADER);
	else if (fmt == STORE_EXPORT_JSON)
		buf_puts(out, "[");
	int rc;
	size_t n = 0;
	while ((rc = sqlite3_step(q)) == SQLITE_ROW) {
		audit_row r;
		read_audit_row(q, &r);
		if (fmt == STORE_EXPORT_CSV) {
			export_csv_row(out, &r);
		} else {
			json_t *o = export_object(&r);
			char *line = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
			json_decref(o);
			if (fmt == STORE_EXPORT_JSON && n)
				buf_puts(out, ",\n");
			buf_puts(out, line ? line : "{}");
			if (fmt == STORE_EXPORT_NDJSON)
				buf_puts(out, "\n");
			free(line);
		}
		n++;
	}
	if (fmt == STORE_EXPORT_JSON)
		buf_puts(out, "]\n");
	sqlite3_reset(q);
	sqlite3_clear_bindings(q);
	if (rc != SQLITE_DONE) {
		note_fault(s);
		snprintf(err, errlen, "cannot read the audit of canary '%s' from '%s': %s", name,
		         s->path, s->last_err);
		return -1;
	}
	return 0;
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
