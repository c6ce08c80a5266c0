/* store.h - state and audit in SQLite (WAL) at DIR/canaryd.db.
 *
 * One row of state per canary (the engine state plus the endpoint sets) and
 * an append-only table of audit events. store_commit writes a canary's new
 * state and the events that explain it in one transaction, before the
 * driver applies the state to traffic. A canaryd killed with -9 and started
 * again finds every canary where it stood and its history whole.
 *
 * Unreadable state is never taken for no state. A database file that
 * exists must be whole: store_open creates a new one under a temporary name
 * and renames it into place once its schema is written, so an existing file
 * that is empty, holds no canaryd schema, fails PRAGMA quick_check or cannot
 * be written is refused, naming the file and what to do, and is left as it
 * was. quick_check reads the whole file once, so its cost follows the
 * history's size: for one million events (198 MB), 0.3 s with the file in
 * the page cache and 3.8 s from a cold virtual disk (52 MB/s) on an idle
 * 2-core machine, about four times that with the machine loaded
 * (tests/chaos/quick_check_cost.py). A start is rare; starting on a damaged
 * file is what the check prevents.
 *
 * Failures while running come in two kinds. STORE_RETRY: the write did not
 * happen but may later (disk full, quota, the file locked by another
 * process). STORE_DAMAGED: the file is damaged or cannot be written any more
 * (SQLITE_CORRUPT, SQLITE_NOTADB, SQLITE_IOERR, read-only, moved or
 * deleted under us); from then on the store writes nothing more into it,
 * not even the checkpoint at close, and every store_commit fails at once.
 * A read that finds damage latches the same way. */
#ifndef CANARYD_STORE_H
#define CANARYD_STORE_H

#include <stdint.h>
#include <jansson.h>
#include "engine.h"
#include "util.h"

typedef struct store store;

/* What is persisted for one canary. Endpoint lists are comma-separated
 * "HOST:PORT" strings (owned by the caller; store_load allocates them and
 * the caller frees them with store_record_release). */
typedef struct store_record {
	eng_state st;
	char *stable_eps;
	char *canary_eps;
	char *prev_stable_eps; /* the endpoints an undo brings back, or NULL */
	/* the counts of the rollout's cost (spec.cost), by target */
	struct store_cost {
		uint64_t rollout_ms;   /* rollout_started_ms they are of; 0: none */
		uint64_t end_ms;       /* when it ended, 0 while it runs */
		uint64_t requests[3], errors[3]; /* [stable, canary, copies: the
		                                  * canary's answers to mirrored
		                                  * copies]; errors: 5xx */
	} cost;
} store_record;
typedef struct store_cost store_cost;

void store_record_release(store_record *r);

/* What a failed store_commit returns. */
enum {
	STORE_RETRY = -1,   /* not written; the same write may work later */
	STORE_DAMAGED = -2, /* not written, and nothing ever will be: the file
	                     * is damaged or cannot be written any more */
};

/* Opens DIR/canaryd.db, creating <dir> and a new database when there is
 * none. An existing file is checked (PRAGMA quick_check) and must take a
 * write, except for lack of space: on a full disk the store opens on what
 * the file holds with store_failing() true, so that canaryd serves on it.
 * Returns 0, or -1 with <err> filled: what is wrong, with the file's path,
 * and for damage what to do ("database './canaryd-data/canaryd.db' is
 * damaged (...); refusing to start ..."). A refused file is left byte for
 * byte as it was. */
int store_open(const char *dir, store **out, char *err, size_t errlen);
void store_close(store *s);  /* NULL is a no-op */

/* Opens the database at <path> (store_path() of the writer) read-only, for
 * reads on another thread than the writer's: the audit's verify and export
 * (SQLite WAL lets it read while the writer commits). Only the reading
 * functions may be called on it. Returns 0, or -1 with <err> filled. */
int store_open_reader(const char *path, store **out, char *err, size_t errlen);

/* Writes <rec> as the state of canary <name> and appends <events>
 * atomically. Event i is stamped with event_ms[i] (wall clock), or with
 * <now_ms> when <event_ms> is NULL. When rec->st.phase is Succeeded or
 * Failed, the rollout of rec->st.canary_rev is recorded as ended with that
 * outcome. Returns 0, or STORE_RETRY or STORE_DAMAGED with <err> filled;
 * nothing of a failed call is kept. Once the store is damaged it returns
 * STORE_DAMAGED without touching the file. */
int store_commit(store *s, const char *name, const store_record *rec,
                 const eng_event *events, const uint64_t *event_ms, int n_events,
                 uint64_t now_ms, char *err, size_t errlen);

/* Loads the state of <name>: 1 found (rec filled), 0 none, -1 error with
 * <err> filled. An error is never "none": the caller must not go on as if
 * the canary had no state. */
int store_load(store *s, const char *name, store_record *rec,
               char *err, size_t errlen);

/* 1 when a rollout of <revision> of <name> has already ended (Succeeded or
 * Failed), 0 when not, -1 with <err> filled when it cannot be read. */
int store_rollout_ended(store *s, const char *name, const char *revision,
                        char *err, size_t errlen);

/* The audit events of <name>, oldest first, as a JSON array of objects
 * {id, time (RFC 3339 UTC), canary, type, phase, weight, message, actor,
 * metrics: [{name, value, min|max, passed, reason?}] (checks only), detail?,
 * seq and hash (its place in the audit's chain)}; NULL on
 * error. <after_id> > 0 returns only later events. Caller owns the result. */
json_t *store_events(store *s, const char *name, int64_t after_id);

/* The audit's hash chain (audit.h, docs/audit.md). */

/* Walks the chain of <name> in the order its events were written and
 * fills *out with {canary, intact, events, message, head: {seq, hash}
 * (when intact), firstBad: {problem: altered|missing|reordered, id?, seq}
 * (when not)}: the first event altered, missing (deleted, also the
 * newest ones, by the chain's head) or reordered. A canary with no events
 * is intact. Returns 0 (whatever the chain holds), or -1 with <err>
 * filled when the database cannot be read. Caller owns *out. */
int store_audit_verify(store *s, const char *name, json_t **out, char *err, size_t errlen);

/* The names of every canary the audit holds events of, sorted (also those
 * no longer configured); NULL on error. Caller owns the result. */
json_t *store_audit_canaries(store *s);

/* Non-zero when the audit holds a chain or events of <name> (an index
 * lookup, not a scan); 0 also when it cannot be read. */
int store_audit_has(store *s, const char *name);

typedef enum {
	STORE_EXPORT_JSON,   /* one JSON array */
	STORE_EXPORT_NDJSON, /* a JSON object a line */
	STORE_EXPORT_CSV,    /* RFC 4180, a header line, CRLF */
} store_export_format;

/* Appends to <out> the events of <name> with since_ms <= time < until_ms
 * (UTC, milliseconds), in id order, in <fmt>: id, seq, the time in UTC
 * (RFC 3339) and in milliseconds, in Europe/London with its offset and
 * GMT or BST, canary, type, phase, weight, message, actor, metrics and
 * detail as stored (the text that is hashed), prev_hash and hash. Returns
 * 0, or -1 with <err> filled. */
int store_audit_export(store *s, const char *name, store_export_format fmt,
                       int64_t since_ms, int64_t until_ms, buf *out, char *err,
                       size_t errlen);

/* Non-zero once a read or a write found the file damaged or unwritable
 * (see the head comment); *why (when <why> is not NULL) is then what was
 * found, e.g. "database '/var/lib/canaryd/canaryd.db': disk I/O error". */
int store_damaged(const store *s, const char **why);

/* Non-zero while the last write failed with STORE_RETRY (or the disk was
 * full at open) and none has worked since; *why is the failure. */
int store_failing(const store *s, const char **why);

/* SQLite calls of this store that failed since it was opened (reads and
 * writes; a commit counts once). */
uint64_t store_errors(const store *s);

/* DIR/canaryd.db, for messages. */
const char *store_path(const store *s);

#endif
