/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "util.h"

static int log_json;
static log_level log_min = LOG_INFO;
static const char *const level_names[] = { "debug", "info", "warn", "error" };

int log_setup(const char *format, const char *level)
{
	if (format) {
		if (strcmp(format, "text") == 0)
			log_json = 0;
		else if (strcmp(format, "json") == 0)
			log_json = 1;
		else
			return -1;
	}
	if (level) {
		int found = -1;
		for (int i = 0; i < 4; i++)
			if (strcmp(level, level_names[i]) == 0)
				found = i;
		if (found < 0)
			return -1;
		log_min = (log_level)found;
	}
	return 0;
}

static void json_str(buf *b, const char *s)
{
	buf_puts(b, "\"");
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", c);
		else if (c < 0x20)
			buf_printf(b, "\\u%04x", c);
		else
			buf_append(b, s, 1);
	}
	buf_puts(b, "\"");
}

void log_msg(log_level lvl, const char *canary, const char *fmt, ...)
{
	if (lvl < log_min)
		return;
	char ts[40], msg[2048];
	util_rfc3339(util_wall_ms(), ts, sizeof ts);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	buf b = BUF_INIT;
	if (log_json) {
		buf_printf(&b, "{\"time\":\"%s\",\"level\":\"%s\"", ts, level_names[lvl]);
		if (canary) {
			buf_puts(&b, ",\"canary\":");
			json_str(&b, canary);
		}
		buf_puts(&b, ",\"msg\":");
		json_str(&b, msg);
		buf_puts(&b, "}\n");
	} else {
		buf_printf(&b, "%s %s %s%s%s\n", ts, level_names[lvl],
		           canary ? canary : "", canary ? ": " : "", msg);
	}
	fwrite(b.p, 1, b.len, stderr);
	buf_release(&b);
}
