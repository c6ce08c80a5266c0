/* fuzz_request.c - libFuzzer target for the request head parser and the
 * chunked scanner. The input is parsed as a request head; the bytes after
 * the head are scanned as a chunked body, whole and then byte by byte, and
 * the two runs must agree. Invariants are checked with abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

static void check_spans(const char *buf, size_t len, const http_request *r)
{
	const char *end = buf + len;
	if (r->method < buf || r->method + r->method_len > end ||
	    r->target < buf || r->target + r->target_len > end ||
	    r->head_len > len || r->n_headers > HTTP_MAX_HEADERS)
		abort();
	for (size_t i = 0; i < r->n_headers; i++) {
		const http_header *h = &r->headers[i];
		if (h->name < buf || h->name + h->name_len > buf + r->head_len ||
		    h->value < buf || h->value + h->value_len > buf + r->head_len ||
		    h->name_len == 0)
			abort();
		for (size_t k = 0; k < h->value_len; k++)
			if (h->value[k] == '\r' || h->value[k] == '\n' || h->value[k] == 0)
				abort();
		(void)http_is_hop_by_hop(h, r->headers, r->n_headers);
	}
}

static ssize_t scan(const char *p, size_t n, size_t step, bool *done)
{
	http_chunked c;
	http_chunked_init(&c);
	size_t used = 0;
	*done = false;
	while (used < n && !*done) {
		size_t k = n - used < step ? n - used : step;
		ssize_t r = http_chunked_scan(&c, p + used, k, done);
		if (r < 0)
			return -1;
		if ((size_t)r > k || ((size_t)r < k && !*done))
			abort();
		used += (size_t)r;
	}
	return (ssize_t)used;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a private copy so that reads past <size> are caught by ASan */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	static http_request req;
	int rc = http_parse_request(buf, size, &req);
	if (rc > 0) {
		if ((size_t)rc != req.head_len)
			abort();
		check_spans(buf, size, &req);
		if (req.body == HTTP_BODY_LENGTH && req.content_length == 0)
			abort();
		/* the same head must parse the same at its exact length */
		static http_request again;
		if (http_parse_request(buf, (size_t)rc, &again) != rc)
			abort();
		/* and be incomplete at any shorter length */
		if (rc > 1 && http_parse_request(buf, (size_t)rc - 1, &again) > 0)
			abort();
		const char *body = buf + rc;
		size_t blen = size - (size_t)rc;
		bool d1, d2;
		ssize_t a = scan(body, blen, blen ? blen : 1, &d1);
		ssize_t b = scan(body, blen, 1, &d2);
		if (a != b || (a >= 0 && d1 != d2))
			abort();
	} else if (rc == HTTP_INCOMPLETE && size >= HTTP_MAX_HEAD) {
		abort();
	}
	free(buf);
	return 0;
}
