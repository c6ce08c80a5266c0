/* admin.h - the admin API and dashboard: JSON over HTTP/1.1 on the same
 * event loop as the proxy (../shared/SPEC.md "Admin API").
 *
 * Who may call it. Whoever reaches the admin address can read every
 * canary's status; with a token file, only a holder of a token can change
 * anything. A browser on the same machine reaches a loopback address too,
 * on behalf of any web page it shows, so every request must also prove it
 * is not a page's doing (issue 8 item 6):
 *   - Host names this API: an IP literal of the listener's kind (loopback
 *     literals on a loopback listener) or "localhost", with the listener's
 *     port, or a name given with --admin-host (any port). This defeats DNS
 *     rebinding, where a page's own name is pointed at 127.0.0.1. HTTP/1.1
 *     without Host, or with two, is 400; a foreign Host is 403.
 *   - A mutating call (POST) needs "Content-Type: application/json" (415
 *     otherwise): a page can send text/plain or a form across sites
 *     without asking, but not JSON. And an Origin, if present, must be
 *     this API's own origin (403 otherwise).
 *   - A non-loopback address needs a token file (admin_check_addr), and a
 *     token is compared in constant time, as SHA-256 digests with
 *     CRYPTO_memcmp, so neither its bytes nor its length leak.
 *   - A client cannot hold resources: a request head must arrive within
 *     the head timeout, its body (and then the response) within the body
 *     timeout, an idle keep-alive connection is closed after the idle
 *     timeout, at most max_conns connections are open (the next ones get
 *     503 and are closed) and request bytes buffered over all of them are
 *     bounded (ADMIN_MAX_BUFFERED).
 *   - Names, revisions, reasons and every other string in an action's body
 *     are refused (400, naming the field) when they hold a character
 *     log_unsafe_at() finds: control characters must not reach the logs,
 *     the audit or a terminal as they are. */
#ifndef CANARYD_ADMIN_H
#define CANARYD_ADMIN_H

#include <stdint.h>
#include <uv.h>

#include "controller.h"
#include "store.h"

typedef struct admin admin;

#define ADMIN_MAX_BUFFERED (8u << 20) /* request bytes over all connections */

/* How the admin API listens; admin_opts_init() fills in the defaults. */
typedef struct admin_opts {
	const char *addr;           /* HOST:PORT; HOST an IP literal or localhost */
	const char *token_file;     /* NULL: mutating calls need no token */
	const char *const *hosts;   /* more names accepted in Host (--admin-host) */
	size_t n_hosts;
	uint64_t head_timeout_ms;   /* accept (or first byte) to the end of a head: 10s */
	uint64_t body_timeout_ms;   /* end of the head to the end of the body, and
	                             * start to end of writing the response: 30s */
	uint64_t idle_timeout_ms;   /* keep-alive connection without a request: 60s */
	unsigned max_conns;         /* open connections: 128 */
	const struct asset_table *assets; /* the dashboard's files (assets.h); NULL: none */
	const char *dashboard_time_zone;  /* GET /api/v1/dashboard: Europe/London */
	const char *dashboard_locale;     /* and en-GB; checked by assets_check_* */
} admin_opts;

/* Fills <o> with the defaults above and addr 127.0.0.1:9901, no assets. */
void admin_opts_init(admin_opts *o);

/* Checks <addr> before anything starts: HOST:PORT with HOST an IP literal
 * or "localhost", and a loopback one unless <has_token>. Returns 0, or -1
 * with <err> filled ("admin address '0.0.0.0:9901' is not a loopback
 * address: ..."); canaryd then exits 2. */
int admin_check_addr(const char *addr, int has_token, char *err, size_t errlen);

/* Starts listening on o->addr. The token file (o->token_file) holds one
 * token a line, "NAME TOKEN" or just "TOKEN" (named "token"); blank lines
 * and lines starting with '#' are skipped. When it is given, every mutating
 * call needs "Authorization: Bearer TOKEN" and the token's name is the
 * actor in the audit. <o> and what it points to are copied. Returns 0, or
 * -1 with <err> filled (nothing started). */
int admin_start(uv_loop_t *loop, const admin_opts *o, ctl *c, store *db,
                admin **out, char *err, size_t errlen);

/* /readyz answers 503 once not ready (draining). */
void admin_set_ready(admin *a, int ready);

/* Sends event <type> ("audit", "status") with <data> to every event
 * stream (GET /api/v1/events/stream) that follows <canary>. */
void admin_publish(admin *a, const char *canary, const char *type, const json_t *data);

/* Closes the listener and every connection; frees <a> once closed. */
void admin_close(admin *a);

#endif
