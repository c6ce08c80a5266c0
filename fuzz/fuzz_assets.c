/* fuzz_assets.c - libFuzzer target for what the dashboard's file server
 * reads of a request (api/assets.c): the Accept-Encoding value with its
 * q-values, the If-None-Match list of entity-tags, and the file name of
 * GET /assets/NAME, none of them NUL-terminated. fuzz_admin runs the API
 * without the embedded files (they are linked into canaryd only), so this
 * target gives assets_respond its own table. The input is split at its
 * first two '\n' bytes into Accept-Encoding, If-None-Match and the name;
 * invariants are checked with abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "assets.h"

static const unsigned char page[] = "<!doctype html><title>t</title>";
static const unsigned char page_gz[] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3 };
static const unsigned char js[] = "let a = 1;\nlet b = 2;\nlet c = a + b;\n";
static const unsigned char js_gz[] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3, 1 };
static const asset_file files[] = {
	{ "index.html", "text/html; charset=utf-8", "\"sha256-aa\"", "\"sha256-aa-gz\"",
	  page, sizeof page - 1, page_gz, sizeof page_gz },
	{ "app.js", "text/javascript; charset=utf-8", "\"sha256-bb\"", "\"sha256-bb-gz\"",
	  js, sizeof js - 1, js_gz, sizeof js_gz },
};
static const asset_table table = { files, 2, "index.html" };

/* The next part of [*p, end): up to '\n' (NULL with *n 0 when absent:
 * a header not sent). */
static const char *part(const uint8_t **p, const uint8_t *end, size_t *n)
{
	if (*p > end) {
		*n = 0;
		return NULL;
	}
	const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
	const uint8_t *stop = nl ? nl : end;
	const char *s = (const char *)*p;
	*n = (size_t)(stop - *p);
	*p = stop + 1;
	return s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data, *end = data + size;
	size_t ae_len, inm_len, name_len;
	const char *ae = part(&p, end, &ae_len);
	const char *inm = part(&p, end, &inm_len);
	const char *name = part(&p, end, &name_len);
	/* values are copied to exactly their length: a read past one is
	 * ASan's to see */
	char *ae_c = ae ? malloc(ae_len ? ae_len : 1) : NULL;
	char *inm_c = inm ? malloc(inm_len ? inm_len : 1) : NULL;
	char *name_c = malloc(name_len + 1);
	if ((ae && !ae_c) || (inm && !inm_c) || !name_c)
		abort();
	if (ae)
		memcpy(ae_c, ae, ae_len);
	if (inm)
		memcpy(inm_c, inm, inm_len);
	if (name)
		memcpy(name_c, name, name_len);
	name_c[name ? name_len : 0] = '\0';

	int gz = assets_accepts_gzip(ae_c, ae_len);
	if (gz != 0 && gz != 1)
		abort();
	for (size_t i = 0; i < table.n; i++) {
		int m = assets_etag_matches(inm_c, inm_len, files[i].etag);
		if (m != 0 && m != 1)
			abort();
	}
	asset_response r;
	assets_respond(&table, name_c, inm_c, inm_len, ae_c, ae_len, &r);
	if (r.status != 200 && r.status != 304 && r.status != 404)
		abort();
	if (memchr(r.headers, '\0', sizeof r.headers) == NULL)
		abort();
	/* each header line ends in CRLF and holds no other CR or LF: nothing
	 * of the request's values may split a header */
	for (const char *h = r.headers; *h;) {
		const char *crlf = strstr(h, "\r\n");
		if (!crlf || strcspn(h, "\r\n") != (size_t)(crlf - h))
			abort();
		h = crlf + 2;
	}
	if (r.status == 200) {
		const asset_file *f = NULL;
		for (size_t i = 0; i < table.n; i++)
			if (r.body == files[i].data || r.body == files[i].gz)
				f = &files[i];
		if (!f || (r.body == f->data && r.len != f->len) || (r.body == f->gz && r.len != f->gz_len))
			abort();
		/* gzip bytes only to a client that accepts them */
		if (r.body == f->gz && !gz)
			abort();
	} else if (r.status == 304 && r.body) {
		abort();
	}
	free(ae_c);
	free(inm_c);
	free(name_c);
	return 0;
}
