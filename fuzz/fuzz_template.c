/* fuzz_template.c - libFuzzer target for the query templates of custom
 * metrics (template.c): a PromQL query, a URL or a JSON body with
 * {{ variables }} whose values come from names, revisions and windows.
 *
 * Input: the first byte is ignored but for bit 0 (a NULL namespace); then,
 * separated by NUL bytes, the template and the values of name, namespace,
 * target, interval and revision (missing ones are NULL).
 *
 * Invariants (abort() when broken):
 * - tmpl_check accepts exactly the templates that render in TMPL_RAW,
 *   but for a {{ variables.KEY }} (none is given here);
 *   a template it refuses renders in no mode;
 * - a refused render leaves the buffer as it was and says why in one
 *   line of printable ASCII;
 * - TMPL_URL writes each value percent-encoded (compared with the same
 *   template rendered raw with values encoded here), never fails on a
 *   value;
 * - TMPL_PROMQL writes values as they are, and accepts a value exactly
 *   when it has only letters, digits and _ . : / - ;
 * - TMPL_JSON: every value rendered inside a JSON string reads back as
 *   itself (so no value can end the string), or the render is refused. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "oneline.h"
#include "template.h"

static const char *const names[5] = { "name", "namespace", "target", "interval", "revision" };

static const char *value(const tmpl_vars *v, int i)
{
	const char *s = i == 0 ? v->name : i == 1 ? v->namespace_ : i == 2 ? v->target
	              : i == 3 ? v->interval : v->revision;
	return s ? s : "";
}

static void set_value(tmpl_vars *v, int i, const char *s)
{
	if (i == 0)
		v->name = s;
	else if (i == 1)
		v->namespace_ = s;
	else if (i == 2)
		v->target = s;
	else if (i == 3)
		v->interval = s;
	else
		v->revision = s;
}

static void check_err(const char *err)
{
	if (!err[0])
		abort();
	fuzz_check_line(err, SIZE_MAX, true);
}

/* Renders; on failure checks the buffer and the message. */
static int render(const char *t, const tmpl_vars *v, tmpl_escape mode, buf *out)
{
	char err[200];
	buf_reset(out);
	buf_puts(out, "pre|");
	int rc = tmpl_render(t, v, mode, out, err, sizeof err);
	if (rc != 0 && rc != -1)
		abort();
	if (rc < 0) {
		if (out->len != 4 || strcmp(out->p, "pre|") != 0)
			abort();
		check_err(err);
	} else if (out->len < 4 || memcmp(out->p, "pre|", 4) != 0 || strlen(out->p) != out->len) {
		abort();
	}
	return rc;
}

static void url_encode(buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			buf_append(b, s, 1);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			buf_append(b, e, 3);
		}
	}
}

static bool promql_safe(const char *s)
{
	for (; *s; s++)
		if (!strchr("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.:/-", *s))
			return false;
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	/* NUL-terminated pieces in a private copy */
	char *copy = malloc(size + 1);
	memcpy(copy, data + 1, size - 1);
	copy[size - 1] = '\0';
	const char *piece[6] = { NULL };
	size_t np = 0;
	for (char *p = copy; np < 6 && p <= copy + size - 1; p += strlen(p) + 1)
		piece[np++] = p;
	const char *t = piece[0];
	tmpl_vars v = { 0 };
	for (int i = 0; i < 5; i++)
		set_value(&v, i, piece[i + 1]);
	if (data[0] & 1)
		v.namespace_ = NULL;

	buf raw = BUF_INIT, out = BUF_INIT, expect = BUF_INIT;
	char err[200];
	int checked = tmpl_check(t, err, sizeof err);
	if (checked < 0)
		check_err(err);
	int rc_raw = render(t, &v, TMPL_RAW, &raw);
	if (checked == 0 && rc_raw < 0) {
		/* the one failure that depends on the values: a variables.KEY
		 * that the metric's templateVariables (none here) lacks */
		buf_reset(&out);
		if (tmpl_render(t, &v, TMPL_RAW, &out, err, sizeof err) == 0 ||
		    !strstr(err, "templateVariables has no key"))
			abort();
		goto done;
	}
	if (checked != rc_raw)
		abort(); /* check and render disagree on the syntax */

	/* URL: the raw rendering of the same template with encoded values */
	int rc = render(t, &v, TMPL_URL, &out);
	if (rc != checked)
		abort();
	if (rc == 0) {
		buf enc[5] = { BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT, BUF_INIT };
		tmpl_vars ev = { 0 };
		for (int i = 0; i < 5; i++) {
			url_encode(&enc[i], value(&v, i));
			buf_puts(&enc[i], "");
			set_value(&ev, i, enc[i].p);
		}
		if (render(t, &ev, TMPL_RAW, &expect) != 0 || strcmp(expect.p, out.p) != 0)
			abort();
		for (int i = 0; i < 5; i++)
			buf_release(&enc[i]);
	}

	/* PROMQL: as is, exactly when every value the template uses is safe;
	 * a value is used when two different values of it render differently */
	rc = render(t, &v, TMPL_PROMQL, &out);
	bool want = checked == 0;
	for (int i = 0; i < 5 && checked == 0; i++) {
		char one[32];
		snprintf(one, sizeof one, "<{{ %s }}>", names[i]);
		bool safe = promql_safe(value(&v, i));
		if ((render(one, &v, TMPL_PROMQL, &expect) == 0) != safe)
			abort(); /* a value let through or refused against the rule */
		tmpl_vars a = v, b = v;
		set_value(&a, i, "\x01");
		set_value(&b, i, "\x02");
		render(t, &a, TMPL_RAW, &expect);
		render(t, &b, TMPL_RAW, &out);
		if (strcmp(expect.p, out.p) != 0 && !safe)
			want = false;
	}
	if ((rc == 0) != want)
		abort();
	if (rc == 0 && (render(t, &v, TMPL_PROMQL, &out) != 0 || strcmp(out.p, raw.p) != 0))
		abort();

	/* JSON: each value inside a string reads back as itself */
	rc = render(t, &v, TMPL_JSON, &out);
	if (checked < 0 && rc == 0)
		abort();
	const char *all = "[\"{{ name }}\", \"{{ namespace }}\", \"{{ target }}\", "
	                  "\"{{ interval }}\", \"{{ revision }}\"]";
	if (render(all, &v, TMPL_JSON, &out) == 0) {
		json_error_t jerr;
		json_t *arr = json_loadb(out.p + 4, out.len - 4, 0, &jerr);
		if (!arr || json_array_size(arr) != 5)
			abort(); /* a value broke out of its string */
		for (int i = 0; i < 5; i++) {
			const json_t *s = json_array_get(arr, (size_t)i);
			if (!json_is_string(s) || json_string_length(s) != strlen(value(&v, i)) ||
			    memcmp(json_string_value(s), value(&v, i), json_string_length(s)) != 0)
				abort();
		}
		json_decref(arr);
	}

done:
	buf_release(&raw);
	buf_release(&out);
	buf_release(&expect);
	free(copy);
	return 0;
}
