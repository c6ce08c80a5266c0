/* util.h - small helpers shared by every module: growable buffers, durations,
 * host:port parsing and clocks. Nothing here allocates behind the caller's
 * back except buf_*, whose memory the caller releases with buf_release(). */
#ifndef CANARYD_UTIL_H
#define CANARYD_UTIL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

/* A growable byte buffer. Zero-initialise (BUF_INIT) before use. <p> is
 * always NUL-terminated once anything has been appended. */
typedef struct buf {
	char *p;     /* bytes, NUL-terminated */
	size_t len;  /* bytes used, not counting the NUL */
	size_t cap;  /* bytes allocated */
} buf;
#define BUF_INIT { NULL, 0, 0 }

void buf_append(buf *b, const void *data, size_t n);
void buf_puts(buf *b, const char *s);
void buf_printf(buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_vprintf(buf *b, const char *fmt, va_list ap);
void buf_reset(buf *b);   /* len = 0, keeps memory */
void buf_release(buf *b); /* frees memory, back to BUF_INIT */

/* Replaces every byte of <s> that is not printable ASCII (control
 * characters, DEL, and bytes of multi-byte characters, which a cut may
 * have split) with '?', so that text from outside, such as a receiver's
 * error message, stays one line of plain text wherever it goes: the audit,
 * logs, terminals. Returns <s>. */
char *util_ascii_line(char *s);

/* Parses a Go/Prometheus duration ("500ms", "2s", "1m", "1h30m", "1.5s",
 * "0") into milliseconds. Units: ns us µs ms s m h d (Prometheus' "d" = 24h).
 * Returns 0, or -1 when <s> is not a duration or is not a whole number of
 * milliseconds larger than zero ("0" is accepted and gives 0). */
int util_parse_duration(const char *s, uint64_t *ms);

/* Formats <ms> back into a Go-style duration of whole units ("1m30s",
 * "250ms", "1s500ms"), which util_parse_duration, Go and PromQL all read
 * back as exactly <ms>. */
void util_format_duration(uint64_t ms, char *out, size_t outlen);

/* Splits "HOST:PORT" ("127.0.0.1:8080", "[::1]:8080", "localhost:80") into
 * <host> (without brackets) and <port> (1..65535). HOST is a name or an
 * IPv4 address (letters, digits, '.', '-', '_') or an IPv6 address in
 * brackets (with an optional %zone). Returns 0 or -1. */
int util_parse_hostport(const char *s, char *host, size_t hostlen, int *port);

/* Whether <s> is a canary's (or a MetricTemplate's) name: Kubernetes' DNS
 * label, [a-z0-9]([-a-z0-9]*[a-z0-9])?, 1 to 63 characters. Names go into
 * API paths, PromQL and log lines, and these need no escaping anywhere. */
int util_valid_name(const char *s);

/* Appends <s> percent-encoded for a URL's path segment or query component:
 * every byte but the unreserved A-Z a-z 0-9 - . _ ~ (RFC 3986 2.3) as %XX
 * with upper-case hex digits. */
void buf_url_escape(buf *b, const char *s);

/* Reads the token file <path>: one token a line, "NAME TOKEN" or "TOKEN"
 * (whose name is "token"), blanks around them trimmed, blank lines and
 * lines starting with '#' skipped. Calls <fn>(<arg>, name, secret, line)
 * for each token in order until it returns nonzero (<fn> may fill <err>
 * and return -1 to refuse the file, or return 1 to stop reading: that is
 * then the return value). Returns 0 once every line is read; -1 with
 * <err> filled when the file cannot be read ("cannot read token file
 * 'F': why"), when a line has more than a name and a token
 * ("F:LINE: expected 'NAME TOKEN' or 'TOKEN'"), or when it holds no token
 * ("token file 'F' holds no token"). The buffer that held the secrets is
 * wiped before the call returns. Used by canaryd (every token, each with
 * its name) and canaryctl (the first one). */
int util_read_tokens(const char *path,
                     int (*fn)(void *arg, const char *name, const char *secret, int line,
                               char *err, size_t errlen),
                     void *arg, char *err, size_t errlen);

/* Milliseconds on a monotonic clock (for timers and rings). */
uint64_t util_mono_ms(void);
/* Milliseconds since the Unix epoch (for persisted times and the audit). */
uint64_t util_wall_ms(void);
/* RFC 3339 UTC with milliseconds: "2026-11-25T20:43:57.123Z". out >= 32. */
void util_rfc3339(uint64_t wall_ms, char *out, size_t outlen);

/* strdup that aborts on out of memory (the daemon does not run degraded
 * when malloc fails). Likewise xmalloc/xcalloc/xrealloc. */
char *xstrdup(const char *s);
void *xmalloc(size_t n);
void *xcalloc(size_t n, size_t m);
void *xrealloc(void *p, size_t n);

#endif
