/* resolve.h - host names of upstream endpoints, looked up off the event loop.
 *
 * An endpoint is "HOST:PORT". A HOST that is an IP address (IPv4, or IPv6 in
 * brackets) or "localhost" (127.0.0.1) is numeric: it is never looked up and
 * behaves exactly as it did before host names were supported. Any other HOST
 * is a host name. Names are looked up with getaddrinfo(3) on libuv's thread
 * pool (uv_getaddrinfo), so /etc/hosts, DNS and whatever nsswitch.conf says
 * apply, and the loop never waits for an answer.
 *
 * Two layers:
 * - rsv_lookup: one lookup. Lookups queue so that at most RSV_MAX_INFLIGHT
 *   run at once: a DNS server that never answers holds a pool thread for as
 *   long as the C library waits (about 10 s per name with glibc's defaults),
 *   and the pool's other threads must stay free for the rest of the daemon
 *   (the configuration reload runs there too).
 * - rsv_table: the names one canary uses, kept resolved. A name is looked
 *   up when it is added and again every refresh interval; while it has
 *   never resolved it is retried sooner (1 s, doubling up to the interval).
 *   When a lookup fails the last good answer is kept. The owner is told
 *   when a name's addresses or its condition (resolving, failing) change,
 *   and the condition is logged when it changes, never on every try. */
#ifndef CANARYD_RESOLVE_H
#define CANARYD_RESOLVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define RSV_HOST_LEN 256         /* a host name is at most 253 characters */
#define RSV_ADDR_LEN 48          /* an address as text, INET6_ADDRSTRLEN + 2 */
#define RSV_MAX_ADDRS 64         /* addresses kept of one answer */
#define RSV_MAX_INFLIGHT 2       /* lookups running at once in the daemon */
#define RSV_RETRY_FIRST_MS 1000  /* first retry of a name that never resolved */

/* ---- endpoints ---- */

typedef enum {
	RSV_INVALID = -1,        /* not HOST:PORT, or HOST is neither */
	RSV_NUMERIC = 0,         /* an IP address or localhost */
	RSV_NAME = 1,            /* a host name: to be looked up */
} rsv_kind;

/* Classifies endpoint <ep> ("HOST:PORT"). Fills <host> (without brackets)
 * and *port in every case but RSV_INVALID, and *addr (port included) for
 * RSV_NUMERIC; <addr> may be NULL. For RSV_INVALID, <err> says why, naming
 * <ep>. A host name must be valid (rsv_valid_name). */
rsv_kind rsv_parse(const char *ep, char *host, size_t hostlen, int *port,
                   struct sockaddr_storage *addr, char *err, size_t errlen);

/* The address of a numeric "HOST:PORT" (an IP address, in brackets for
 * IPv6, or localhost: what a listener binds to, what a route's member
 * is) into <addr>. Returns 0, or -1 when <hp> is not HOST:PORT or its
 * host is a name (or not an address in brackets). */
int rsv_numeric(const char *hp, struct sockaddr_storage *addr);

/* Whether endpoint <ep> names a host to be looked up (rsv_parse says
 * RSV_NAME); fills <host> (RSV_HOST_LEN bytes) when it does. */
bool rsv_host_of(const char *ep, char *host, size_t hostlen);

/* Is <host> a host name getaddrinfo may be asked about: at most 253
 * characters, dot-separated labels of 1 to 63 letters, digits, '-' or '_'
 * (not starting or ending with '-'), an optional final dot, and a last
 * label that is not all digits (so that "10.0.0.256" is not taken for a
 * name)? */
bool rsv_valid_name(const char *host);

/* ---- answers ---- */

/* The addresses of one answer: AF_INET and AF_INET6 only, sorted and
 * without duplicates (DNS servers rotate the order of their answers; a new
 * order is not a change), port 0 (the endpoint gives the port). */
typedef struct rsv_addrs {
	struct sockaddr_storage *v;
	size_t n;
} rsv_addrs;

void rsv_addrs_release(rsv_addrs *a);            /* back to { NULL, 0 } */
void rsv_addrs_copy(rsv_addrs *dst, const rsv_addrs *src); /* dst is overwritten */
bool rsv_addrs_equal(const rsv_addrs *a, const rsv_addrs *b);
/* Sorts and deduplicates <a> in place. */
void rsv_addrs_normalize(rsv_addrs *a);

/* Orders two AF_INET or AF_INET6 addresses: by family, address bytes,
 * IPv6 scope, then port. 0 means the same address and port: a pooled
 * connection to one may serve the other. */
int rsv_addr_cmp(const struct sockaddr_storage *a, const struct sockaddr_storage *b);

/* "127.0.0.5" or "::1" (no port) into <out> (RSV_ADDR_LEN). */
void rsv_addr_text(const struct sockaddr_storage *ss, char *out, size_t outlen);
/* <ss> with <port> set (AF_INET or AF_INET6). */
void rsv_addr_set_port(struct sockaddr_storage *ss, int port);
/* Appends "A, B, C" (at most <max> addresses, then ", ...") to <out>. */
void rsv_addrs_list(const rsv_addrs *a, size_t max, char *out, size_t outlen);

/* ---- lookups ---- */

typedef struct rsv rsv;
typedef struct rsv_query rsv_query;

/* The answer to a lookup, on the loop: <status> 0 with <addrs> (valid during
 * the call only), or a negative libuv error (UV_EAI_NONAME, UV_EAI_AGAIN,
 * ...; uv_strerror names it) and <addrs> NULL. */
typedef void (*rsv_done_fn)(void *arg, int status, const rsv_addrs *addrs);

/* The lookup queue of <loop> (which must outlive it): at most <max_inflight>
 * lookups run at once (RSV_MAX_INFLIGHT in the daemon, where libuv's pool
 * is shared; more where nothing else needs it). */
rsv *rsv_new(uv_loop_t *loop, int max_inflight);

/* Frees <r>. Queued lookups are dropped and running ones abandoned: no
 * callback of either is called. NULL is a no-op. */
void rsv_free(rsv *r);

/* Looks <host> up. Returns a handle; <done>(<arg>, ...) is called once,
 * later, on the loop, unless rsv_cancel is called first. Returns NULL with
 * *status (a negative libuv error) when the lookup cannot even start; the
 * callback is then never called. */
rsv_query *rsv_lookup(rsv *r, const char *host, rsv_done_fn done, void *arg,
                      int *status);

/* <done> of <q> will not be called; <q> must not be used after this. */
void rsv_cancel(rsv_query *q);

/* ---- tables: names kept resolved ---- */

typedef struct rsv_table rsv_table;

/* Told, on the loop, that a name's addresses changed, that its first
 * lookup ended, or that it started or stopped failing. The table may be
 * used during the call, not freed. */
typedef void (*rsv_change_fn)(void *arg);

/* A new table that looks names up with <r> (must outlive it) every
 * <refresh_ms>. <owner> (copied) prefixes its log lines (the canary). */
rsv_table *rsv_table_new(rsv *r, const char *owner, uint64_t refresh_ms,
                         rsv_change_fn fn, void *arg);

/* Frees <t> (lookups in flight are cancelled; its timer closes on the
 * loop). NULL is a no-op. */
void rsv_table_free(rsv_table *t);

void rsv_table_set_refresh(rsv_table *t, uint64_t refresh_ms);

/* Mark and sweep: rsv_table_unmark forgets which names are in use,
 * rsv_table_want marks <host> as used (adding it and starting its first
 * lookup when it is new), rsv_table_sweep drops the names left unmarked. */
void rsv_table_unmark(rsv_table *t);
void rsv_table_want(rsv_table *t, const char *host);
void rsv_table_sweep(rsv_table *t);

/* Records an answer for <host> got outside the table (the lookups an
 * operator's command makes before it is applied), as a lookup of the table
 * would, except that the owner is not called back: the name is added and
 * marked when new, and its next refresh is a full interval away. Returns
 * whether its addresses changed (the caller applies them). */
bool rsv_table_put(rsv_table *t, const char *host, const rsv_addrs *a);

/* What the table knows of one name. */
typedef struct rsv_name {
	const char *host;
	const rsv_addrs *addrs;   /* the last good answer; n == 0: never resolved */
	const char *error;        /* why the last lookup failed, NULL if it did not */
	uint64_t resolved_ms;     /* wall clock of the last good answer, 0: never */
	bool looked_up;           /* at least one lookup finished */
} rsv_name;

/* Fills <out> for <host>: 1, or 0 when the table does not know it. The
 * pointers stay valid until the table next changes (a lookup finishes, a
 * put, a sweep). */
int rsv_table_find(const rsv_table *t, const char *host, rsv_name *out);

/* The names of <t>, one after the other: <i> from 0 while it returns 1. */
int rsv_table_at(const rsv_table *t, size_t i, rsv_name *out);

#endif
