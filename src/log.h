/* log.h - one line per event on stderr, text or JSON, UTC timestamps. */
#ifndef CANARYD_LOG_H
#define CANARYD_LOG_H

typedef enum { LOG_DEBUG = 0, LOG_INFO, LOG_WARN, LOG_ERROR } log_level;

/* <format> is "text" or "json", <level> one of debug|info|warn|error.
 * NULL keeps the default (text, info). Returns 0, or -1 on an unknown value. */
int log_setup(const char *format, const char *level);

/* Writes one line: time, level, the canary it is about (or NULL), message.
 * text: "2026-11-25T20:43:57.123Z info podinfo: weight 10 -> 20"
 * json: {"time":"…","level":"info","canary":"podinfo","msg":"weight 10 -> 20"} */
void log_msg(log_level lvl, const char *canary, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
