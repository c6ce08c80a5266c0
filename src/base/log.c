/* log.c - see log.h. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

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

/* Decodes the UTF-8 sequence at s[0..len). Returns its length (1..4) with
 * *cp set, or 0 when s[0] does not start a valid sequence: overlong forms,
 * surrogates and code points above U+10FFFF are invalid (RFC 3629). */
static size_t utf8_next(const unsigned char *s, size_t len, unsigned *cp)
{
	unsigned c = s[0];
	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	size_t n;
	unsigned min;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2, min = 0x80, c &= 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3, min = 0x800, c &= 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4, min = 0x10000, c &= 0x07;
	} else {
		return 0;
	}
	if (len < n)
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
		return 0;
	*cp = c;
	return n;
}

static int unsafe_cp(unsigned cp)
{
	return cp < 0x20 || cp == 0x7f || (cp >= 0x80 && cp <= 0x9f) || cp == 0x2028 ||
	       cp == 0x2029;
}

size_t log_unsafe_at(const char *s, size_t len, unsigned *cp)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		unsigned c;
		size_t n = utf8_next(u + i, len - i, &c);
		if (n == 0 || unsafe_cp(c)) {
			if (cp)
				*cp = n ? c : u[i];
			return i;
		}
		i += n;
	}
	return len;
}

void log_escape(buf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < len) {
		size_t safe = log_unsafe_at(s + i, len - i, NULL);
		buf_append(b, s + i, safe);
		i += safe;
		if (i == len)
			break;
		unsigned c;
		size_t n = utf8_next(u + i, len - i, &c);
		if (n == 0) {
			buf_printf(b, "\\x%02x", u[i]);
			i++;
			continue;
		}
		if (c == '\n')
			buf_puts(b, "\\n");
		else if (c == '\r')
			buf_puts(b, "\\r");
		else if (c == '\t')
			buf_puts(b, "\\t");
		else if (c < 0x80)
			buf_printf(b, "\\x%02x", c);
		else
			buf_printf(b, "\\u%04x", c);
		i += n;
	}
}

void log_escape_json(buf *b, const char *s, size_t len)
{
	const unsigned char *u = (const unsigned char *)s;
	buf_puts(b, "\"");
	size_t i = 0;
	while (i < len) {
		unsigned c;
		size_t n = utf8_next(u + i, len - i, &c);
		if (n == 0) {
			buf_puts(b, "\\ufffd");
			i++;
			continue;
		}
		if (c == '"' || c == '\\')
			buf_printf(b, "\\%c", (char)c);
		else if (c == '\n')
			buf_puts(b, "\\n");
		else if (c == '\r')
			buf_puts(b, "\\r");
		else if (c == '\t')
			buf_puts(b, "\\t");
		else if (unsafe_cp(c))
			buf_printf(b, "\\u%04x", c);
		else
			buf_append(b, s + i, n);
		i += n;
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
			log_escape_json(&b, canary, strlen(canary));
		}
		buf_puts(&b, ",\"msg\":");
		log_escape_json(&b, msg, strlen(msg));
		buf_puts(&b, "}\n");
	} else {
		buf_printf(&b, "%s %s ", ts, level_names[lvl]);
		if (canary) {
			log_escape(&b, canary, strlen(canary));
			buf_puts(&b, ": ");
		}
		log_escape(&b, msg, strlen(msg));
		buf_puts(&b, "\n");
	}
	fwrite(b.p, 1, b.len, stderr);
	buf_release(&b);
}
