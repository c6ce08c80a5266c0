/* assets.c - see assets.h. */
#include "assets.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Served with every file: see assets.h. 'self' alone for scripts, styles
 * and connections (the API and its event stream are this origin); images
 * from data: URLs are none of ours but harmless, and are not needed:
 * left out. */
#define ASSETS_CSP "Content-Security-Policy: default-src 'self'; script-src 'self'; " \
	"style-src 'self'; img-src 'self'; connect-src 'self'; object-src 'none'; " \
	"base-uri 'none'; form-action 'none'; frame-ancestors 'none'\r\n"
#define ASSETS_COMMON "Cache-Control: no-cache\r\nVary: Accept-Encoding\r\n" \
	"Referrer-Policy: no-referrer\r\n"

/* Skips optional whitespace (OWS) of s[*i..len). */
static void skip_ows(const char *s, size_t len, size_t *i)
{
	while (*i < len && (s[*i] == ' ' || s[*i] == '\t'))
		(*i)++;
}

/* The q of the parameters s[i..end) of one Accept-Encoding member (after
 * its coding): 1000 when none is given, else the value in thousandths
 * (RFC 9110 §12.4.2: "0", "0.5", "1.000"); a malformed q counts as 0, so
 * that a client is never sent what it may not have asked for. */
static int member_q(const char *s, size_t i, size_t end)
{
	while (i < end) {
		skip_ows(s, end, &i);
		if (i < end && s[i] == ';')
			i++;
		skip_ows(s, end, &i);
		size_t ps = i;
		while (i < end && s[i] != ';')
			i++;
		size_t pe = i;
		while (pe > ps && (s[pe - 1] == ' ' || s[pe - 1] == '\t'))
			pe--;
		if (pe - ps < 2 || (s[ps] != 'q' && s[ps] != 'Q'))
			continue;
		size_t k = ps + 1;
		skip_ows(s, pe, &k);
		if (k >= pe || s[k] != '=')
			continue;
		k++;
		skip_ows(s, pe, &k);
		if (k >= pe || (s[k] != '0' && s[k] != '1'))
			return 0;
		int q = (s[k] - '0') * 1000, scale = 100;
		k++;
		if (k < pe && s[k] == '.') {
			for (k++; k < pe && isdigit((unsigned char)s[k]) && scale; k++, scale /= 10)
				q += (s[k] - '0') * scale;
		}
		if (k != pe || q > 1000)
			return 0;
		return q;
	}
	return 1000;
}

int assets_accepts_gzip(const char *ae, size_t len)
{
	if (!ae)
		return 0;
	int gzip_q = -1, star_q = -1;
	size_t i = 0;
	while (i < len) {
		size_t end = i;
		while (end < len && ae[end] != ',')
			end++;
		size_t k = i;
		skip_ows(ae, end, &k);
		size_t cs = k;
		while (k < end && ae[k] != ';' && ae[k] != ' ' && ae[k] != '\t')
			k++;
		size_t cl = k - cs;
		int q = member_q(ae, k, end);
		if ((cl == 4 && strncasecmp(ae + cs, "gzip", 4) == 0) ||
		    (cl == 6 && strncasecmp(ae + cs, "x-gzip", 6) == 0))
			gzip_q = q;
		else if (cl == 1 && ae[cs] == '*')
			star_q = q;
		i = end + 1;
	}
	/* a coding named outright wins over "*" */
	return gzip_q >= 0 ? gzip_q > 0 : star_q > 0;
}

int assets_etag_matches(const char *inm, size_t len, const char *etag)
{
	if (!inm)
		return 0;
	size_t el = strlen(etag);
	size_t i = 0;
	while (i < len) {
		skip_ows(inm, len, &i);
		if (i < len && inm[i] == '*')
			return 1;
		if (i + 2 <= len && inm[i] == 'W' && inm[i + 1] == '/')
			i += 2;
		size_t s = i;
		if (i < len && inm[i] == '"') {
			const char *q = memchr(inm + i + 1, '"', len - i - 1);
			i = q ? (size_t)(q - inm) + 1 : len;
		}
		if (i - s == el && memcmp(inm + s, etag, el) == 0)
			return 1;
		while (i < len && inm[i] != ',')
			i++;
		i++;
	}
	return 0;
}

void assets_respond(const asset_table *t, const char *name, const char *inm, size_t inm_len,
                    const char *ae, size_t ae_len, asset_response *out)
{
	memset(out, 0, sizeof *out);
	out->status = 404;
	if (!t)
		return;
	if (!name || !*name)
		name = t->index;
	const asset_file *f = NULL;
	for (size_t i = 0; i < t->n && !f; i++)
		if (strcmp(t->files[i].name, name) == 0)
			f = &t->files[i];
	if (!f)
		return;
	int gz = f->gz && f->gz_len < f->len && assets_accepts_gzip(ae, ae_len);
	const char *etag = gz ? f->etag_gz : f->etag;
	/* either representation's tag names the same file: a client that
	 * cached the identity bytes and now accepts gzip need not fetch again */
	int fresh = assets_etag_matches(inm, inm_len, f->etag) ||
	            assets_etag_matches(inm, inm_len, f->etag_gz);
	snprintf(out->headers, sizeof out->headers, "ETag: %s\r\n" ASSETS_COMMON "%s%s", etag,
	         fresh ? "" : ASSETS_CSP, !fresh && gz ? "Content-Encoding: gzip\r\n" : "");
	if (fresh) {
		out->status = 304;
		return;
	}
	out->status = 200;
	out->ctype = f->ctype;
	out->body = gz ? f->gz : f->data;
	out->len = gz ? f->gz_len : f->len;
}

int assets_check_time_zone(const char *tz, char *err, size_t errlen)
{
	size_t n = strlen(tz);
	const char *why = NULL;
	if (n == 0 || n > 64)
		why = "it must be 1 to 64 characters";
	else if (tz[0] == '/' || tz[0] == '-' || tz[n - 1] == '/' || strstr(tz, "//"))
		why = "it must not start with '/' or '-', end with '/' or hold '//'";
	for (size_t i = 0; i < n && !why; i++)
		if (!isalnum((unsigned char)tz[i]) && !strchr("_+/-", tz[i]))
			why = "only letters, digits and _ + / - are allowed";
	if (!why)
		return 0;
	snprintf(err, errlen, "--dashboard-time-zone '%.80s' is not an IANA time zone name such "
	         "as Europe/London or UTC: %s", tz, why);
	return -1;
}

int assets_check_locale(const char *locale, char *err, size_t errlen)
{
	size_t n = strlen(locale);
	const char *why = NULL;
	if (n == 0 || n > 35)
		why = "it must be 1 to 35 characters";
	size_t part = 0, idx = 0;
	for (size_t i = 0; i <= n && !why; i++) {
		char c = locale[i];
		if (c == '-' || c == '\0') {
			if (part == 0 || part > 8)
				why = "each part between hyphens must be 1 to 8 letters or digits";
			else if (idx == 0 && part < 2)
				why = "the language must be 2 to 8 letters";
			part = 0;
			idx++;
		} else if (!isalnum((unsigned char)c)) {
			why = "only letters, digits and hyphens are allowed";
		} else if (idx == 0 && !isalpha((unsigned char)c)) {
			why = "the language must be 2 to 8 letters";
		} else {
			part++;
		}
	}
	if (!why)
		return 0;
	snprintf(err, errlen, "--dashboard-locale '%.80s' is not a BCP 47 language tag such as "
	         "en-GB: %s", locale, why);
	return -1;
}
