/* haproxy_rt.h - a client of HAProxy's runtime API (the "stats socket"),
 * and readers of its answers. The client speaks HAProxy's non-interactive
 * mode: one connection per batch of commands (';'-separated, one write),
 * the answer read until HAProxy closes, bounded in size and time. It runs
 * on a libuv loop: a unix socket ("unix:/path") through uv_pipe, an
 * address ("127.0.0.1:9999", "[::1]:9999") through uv_tcp.
 *
 * The readers are pure (no I/O, no allocation they do not hand back) and
 * take any bytes: a socket may answer anything, a garbage answer is an
 * error, never a crash (fuzz/fuzz_haproxy.c). Measured answer formats
 * (HAProxy 2.6) are written at each reader. */
#ifndef CANARYD_HAPROXY_RT_H
#define CANARYD_HAPROXY_RT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HART_MAX_ANSWER (16u << 20) /* bytes: show stat of 10k servers is ~6 MB */
#define HART_NAME_LEN 128           /* a server or backend name, with its NUL */
#define HART_ADDR_LEN 64            /* an address as HAProxy prints it */

/* ---- the client ---- */

typedef struct hart_req hart_req;

/* The end of a batch: <status> 0 with the whole <answer> (<len> bytes,
 * NUL-terminated), or a negative libuv error with <err> (one line naming
 * the socket). Called exactly once, on the loop, never from hart_send
 * itself and never after hart_cancel. */
typedef void (*hart_done_fn)(void *arg, int status, const char *answer, size_t len,
                             const char *err);

/* Whether <addr> is a runtime API address: "unix:/absolute/path", or
 * "HOST:PORT" with HOST an IP address or localhost. Returns 0, or -1 with
 * <err>. */
int hart_addr_check(const char *addr, char *err, size_t errlen);

/* Sends <cmds> (one line, several commands ';'-separated) to <addr> in one
 * connection and one write, and reads the answer until HAProxy closes the
 * connection, at most HART_MAX_ANSWER bytes, within <timeout_ms> from the
 * start. Returns the request, to cancel it until <done> is called; an
 * invalid <addr> is reported through <done> too, as a failed connect is. */
hart_req *hart_send(uv_loop_t *loop, const char *addr, const char *cmds, uint64_t timeout_ms,
                    hart_done_fn done, void *arg);

/* Stops <q>: its <done> is not called; its memory goes once libuv has
 * closed its handles. */
void hart_cancel(hart_req *q);

/* ---- readers of answers ---- */

/* Whether a batch of commands that print nothing on success (set weight,
 * enable server, set server ... state) or a known line ("New server
 * registered.", "Server deleted.") succeeded: every non-blank line of
 * <ans> must be one of those. Returns 0, or -1 with the first other line
 * in <err> (printable, cut to fit), e.g. "No such server.". */
int hart_answer_ok(const char *ans, size_t len, char *err, size_t errlen);

/* From `show info`: "Pid: 1234" and "Uptime_sec: 17" lines. */
typedef struct hart_info {
	long pid;
	uint64_t uptime_sec;
} hart_info;

/* Returns 0 with <out>, or -1 with <err> when <ans> has no numeric Pid or
 * Uptime_sec line (HAProxy answered something else). */
int hart_parse_info(const char *ans, size_t len, hart_info *out, char *err, size_t errlen);

/* One server of `show servers state BACKEND` (format version 1: a "1"
 * line, a "# be_id be_name srv_id srv_name srv_addr ..." header, then one
 * space-separated row per server; the columns are found by the header's
 * names, so that a later version's added columns do not matter). */
typedef struct hart_server {
	char name[HART_NAME_LEN];
	char addr[HART_ADDR_LEN];  /* "127.0.0.1" */
	int port;
	int uweight;               /* the weight set at run time, 0..256 */
	int admin_state;           /* bit 0x01: forced maintenance (HAProxy's SRV_ADMF_FMAINT) */
	int op_state;              /* 0 stopped, 1 starting, 2 running, 3 stopping */
} hart_server;

#define HART_ADMIN_FMAINT 0x01

/* Reads the servers of <backend> into *out (free() it; NULL when none) and
 * *n. Returns 0, or -1 with <err>: HAProxy's own one-line answer when it
 * gave one ("Can't find backend."), else what is wrong with the table. */
int hart_parse_servers(const char *ans, size_t len, const char *backend, hart_server **out,
                       size_t *n, char *err, size_t errlen);

/* One server row of `show stat` (CSV whose first line is "# pxname,svname,
 * ..."; columns by name): the cumulative responses by class and the
 * sessions in progress. */
typedef struct hart_stat {
	char name[HART_NAME_LEN];
	uint64_t scur;             /* current sessions */
	uint64_t hrsp[6];          /* [0] other, [1]..[5] = 1xx..5xx */
	uint64_t rtime_ms, ttime_ms; /* HAProxy's moving averages (last 1024 requests) */
} hart_stat;

/* Reads the server rows of <backend> (not FRONTEND or BACKEND) into *out
 * (free() it) and *n. Returns 0, or -1 with <err> when <ans> is not a
 * show stat table (no header with pxname, svname and the hrsp_ columns). */
int hart_parse_stat(const char *ans, size_t len, const char *backend, hart_stat **out,
                    size_t *n, char *err, size_t errlen);

/* The balance algorithm of <backend> from a `show stat` answer (column
 * "algo" of its BACKEND row: "roundrobin", "static-rr", "source", ...)
 * into <algo>. Returns 0, or -1 when the answer has no such row. */
int hart_stat_algo(const char *ans, size_t len, const char *backend, char *algo,
                   size_t algolen);

/* One request as HAProxy logs it with `option httplog` to a syslog
 * address (RFC 3164 or 5424 header; the HTTP log format after the
 * "haproxy[PID]: " tag, or a log-format starting the same way):
 *   <134>Dec  1 12:00:00 haproxy[99]: 127.0.0.1:5555 [01/Dec/2026:12:00:00.123]
 *   fe be/srv 0/0/0/12/12 200 123 - - ---- 1/1/0/0/0 0/0 "GET / HTTP/1.1"
 * The timers are TR/Tw/Tc/Tr/Ta in milliseconds, -1 for a phase that did
 * not happen; <total_ms> is Ta (the whole request, as canaryd's proxy
 * measures it). */
typedef struct hart_log {
	char backend[HART_NAME_LEN];
	char server[HART_NAME_LEN];
	int status;                /* the HTTP status sent to the client, or -1 */
	int64_t total_ms;          /* Ta, or -1 when the request was aborted */
} hart_log;

/* Reads one syslog datagram. Returns 0 with <out>, or -1 when it is not an
 * HTTP log line of that shape (a TCP log, a startup message, garbage). */
int hart_parse_log(const char *msg, size_t len, hart_log *out);

#endif
