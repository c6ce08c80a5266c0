/* audit.h - the hash chain of the audit (docs/audit.md) and the UK time of
 * its exports. Pure functions: no database, no clock.
 *
 * Each canary's events form one chain, numbered by <seq> from 1:
 *   hash(e) = lower-case hex SHA-256 of  prev || canonical(e)
 * where prev is the hash of the event before it (lower-case hex, 64
 * characters) or AUDIT_GENESIS for seq 1, and canonical(e) is the JSON
 * object below, keys in this order, no white space:
 *   {"seq":S,"canary":C,"time":T,"type":Y,"phase":P,"weight":W,
 *    "message":M,"actor":A,"metrics":X,"detail":D}
 * S, T (milliseconds since the epoch, UTC) and W are integers; the others
 * are strings, or null where the column is NULL. metrics and detail are the
 * text stored in their columns (a JSON array, free text), hashed as strings
 * so that no re-encoding of their numbers can change a hash. A string is
 * escaped as SQLite's json_quote() escapes it, so that an auditor's
 * json_object() in the sqlite3 shell rebuilds it byte for byte: '"' and
 * '\' get a backslash, 0x08 0x09 0x0a 0x0c 0x0d are \b \t \n \f \r, other
 * bytes below 0x20 are \u00xx (lower-case hex), every other byte as it is.
 *
 * Why seq and not the row id: the id is SQLite's row number, not part of
 * what happened; seq makes deleting or moving a row change the chain. */
#ifndef CANARYD_AUDIT_H
#define CANARYD_AUDIT_H

#include <stdint.h>

#include "util.h"

#define AUDIT_HEX 65 /* 64 hex digits and NUL */
#define AUDIT_GENESIS "0000000000000000000000000000000000000000000000000000000000000000"

/* One event as it is hashed. A NULL string is JSON null. */
typedef struct audit_event {
	int64_t seq;
	const char *canary;
	int64_t time_ms;
	const char *type;
	const char *phase;
	int64_t weight;
	const char *message;
	const char *actor;
	const char *metrics;
	const char *detail;
} audit_event;

/* Appends canonical(<e>) (see above) to <out>. */
void audit_canonical(buf *out, const audit_event *e);

/* Appends <s> (NULL: null) to <out> as a JSON string escaped as above. */
void audit_quote(buf *out, const char *s);

/* Fills <hex> with the hash of <e> chained to <prev> (64 hex digits).
 * Returns 0, or -1 when libcrypto fails (<hex> is then ""). */
int audit_hash(const char *prev, const audit_event *e, char hex[AUDIT_HEX]);

/* Is <ms> (UTC) British Summer Time? The UK rule since 1996: BST from
 * 01:00 UTC on the last Sunday of March to 01:00 UTC on the last Sunday
 * of October (the Summer Time Order 2002, the EU's directive 2000/84/EC). */
int audit_is_bst(int64_t ms);

/* Writes <ms> as Europe/London local time in RFC 3339 with its offset
 * ("2026-07-01T13:00:00.000+01:00") into <out> and returns "BST" or
 * "GMT". Thread-safe: no TZ, no tz database (see audit_is_bst). */
const char *audit_london(int64_t ms, char *out, size_t outlen);

/* Parses an RFC 3339 time ("2026-03-29T01:00:00Z", "...+01:00", with
 * optional fraction) or a date ("2026-03-29", 00:00 UTC) into *ms.
 * Returns 0, or -1 when <s> is neither. */
int audit_parse_time(const char *s, int64_t *ms);

#endif
