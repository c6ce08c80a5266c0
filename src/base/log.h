/* log.h - one line per event on stderr, text or JSON, UTC timestamps.
 *
 * One event is always one line: whatever a message or a canary name holds
 * (a revision or an alert name a client sent, an upstream's error text),
 * the characters that would end a line or rewrite a terminal are escaped,
 * so no input can forge a log line (issue 8 item 9). The same escaping
 * serves canaryctl's text output. */
#ifndef CANARYD_LOG_H
#define CANARYD_LOG_H

#include <stddef.h>

#include "util.h"

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* <format> is "text" or "json", <level> one of debug|info|warn|error.
 * NULL keeps the default (text, info). Returns 0, or -1 on an unknown value. */
int log_setup(const char *format, const char *level);

/* Writes one line: time, level, the canary it is about (or NULL), message.
 * text: "2026-11-25T20:43:57.123Z info podinfo: weight 10 -> 20"
 * json: {"time":"…","level":"info","canary":"podinfo","msg":"weight 10 -> 20"}
 * The canary and the message are escaped as log_escape() (text) or
 * log_escape_json() (json) do. */
void log_msg(log_level lvl, const char *canary, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* The first character of s[0..len) that must not reach a line of text as
 * it is: a C0 control (U+0000..U+001F, so also tab and newline), DEL, a C1
 * control (U+0080..U+009F: U+0085 is a line break to some readers, U+009B
 * a terminal's CSI), U+2028 or U+2029 (line and paragraph separators), or
 * a byte that is not part of valid UTF-8. Returns its offset, or <len>
 * when there is none; *cp (if not NULL) gets its code point, or the byte
 * for invalid UTF-8. */
size_t log_unsafe_at(const char *s, size_t len, unsigned *cp);

/* Appends s[0..len) to <b> with each character log_unsafe_at() finds
 * escaped: "\n", "\r", "\t", "\xNN" for the other C0 controls, DEL and
 * bytes that are not UTF-8, "\uNNNN" for C1 controls and U+2028/U+2029.
 * Backslashes are kept as they are. The result is one line of valid UTF-8. */
void log_escape(buf *b, const char *s, size_t len);

/* Appends s[0..len) as a JSON string, quotes included: valid JSON
 * whatever the bytes are (a byte that is not UTF-8 becomes U+FFFD), with
 * every control character, U+2028 and U+2029 as an escape. */
void log_escape_json(buf *b, const char *s, size_t len);

#endif
