/* store.h - state and audit in SQLite (WAL) at DIR/canaryd.db.
 *
 * One row of state per canary (the engine state plus the endpoint sets) and
 * an append-only table of audit events. store_commit writes a canary's new
 * state and the events that explain it in one transaction, before the
 * driver applies the state to traffic. A canaryd killed with -9 and started
 * again finds every canary where it stood and its history whole. */
#ifndef CANARYD_STORE_H
#define CANARYD_STORE_H

#include <stdint.h>
#include <jansson.h>
#include "engine.h"

typedef struct store store;

/* What is persisted for one canary. Endpoint lists are comma-separated
 * "HOST:PORT" strings (owned by the caller; store_load allocates them and
 * the caller frees them with store_record_release). */
typedef struct store_record {
	eng_state st;
	char *stable_eps;
	char *canary_eps;
} store_record;

void store_record_release(store_record *r);

/* Opens (creating <dir> and the schema if needed) DIR/canaryd.db. Returns
 * 0, or -1 with <err> filled ("cannot open database
 * './canaryd-data/canaryd.db': unable to open database file"). */
int store_open(const char *dir, store **out, char *err, size_t errlen);
void store_close(store *s);  /* NULL is a no-op */

/* Writes <rec> as the state of canary <name> and appends <events> (each
 * stamped with <now_ms>, wall clock) atomically. When rec->st.phase is
 * Succeeded or Failed, the rollout of rec->st.canary_rev is recorded as
 * ended with that outcome. Returns 0, or -1 with <err> filled. */
int store_commit(store *s, const char *name, const store_record *rec,
                 const eng_event *events, int n_events, uint64_t now_ms,
                 char *err, size_t errlen);

/* Loads the state of <name>: 1 found (rec filled), 0 none, -1 error. */
int store_load(store *s, const char *name, store_record *rec,
               char *err, size_t errlen);

/* 1 when a rollout of <revision> of <name> has already ended (Succeeded or
 * Failed), 0 when not, -1 on error. */
int store_rollout_ended(store *s, const char *name, const char *revision);

/* The audit events of <name>, oldest first, as a JSON array of objects
 * {id, time (RFC 3339 UTC), canary, type, phase, weight, message, actor,
 * metrics: [{name, value, min|max, passed, reason?}] (checks only)}; NULL on
 * error. <after_id> > 0 returns only later events. Caller owns the result. */
json_t *store_events(store *s, const char *name, int64_t after_id);

#endif
