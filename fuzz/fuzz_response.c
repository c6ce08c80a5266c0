/* fuzz_response.c - libFuzzer target for the response head parser. The
 * first input byte chooses whether the request was HEAD; the rest is parsed
 * as a response, and the bytes after a chunked head are scanned in pieces
 * whose sizes come from the input too. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	bool is_head = data[0] & 1;
	size_t step = (size_t)(data[1] % 32) + 1;
	data += 2;
	size -= 2;
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	static http_response resp;
	int rc = http_parse_response(buf, size, is_head, &resp);
	if (rc > 0) {
		if ((size_t)rc != resp.head_len || (size_t)rc > size ||
		    resp.status < 100 || resp.status > 599 ||
		    resp.reason + resp.reason_len > buf + size ||
		    resp.n_headers > HTTP_MAX_HEADERS)
			abort();
		if ((is_head || resp.status < 200 || resp.status == 204 ||
		     resp.status == 304) && resp.body != HTTP_BODY_NONE)
			abort();
		if (resp.body == HTTP_BODY_UNTIL_CLOSE && resp.keep_alive)
			abort();
		for (size_t i = 0; i < resp.n_headers; i++)
			(void)http_is_hop_by_hop(&resp.headers[i], resp.headers,
			                         resp.n_headers);
		if (resp.body == HTTP_BODY_CHUNKED) {
			http_chunked c;
			http_chunked_init(&c);
			size_t used = (size_t)rc;
			bool done = false;
			while (used < size && !done) {
				size_t k = size - used < step ? size - used : step;
				ssize_t r = http_chunked_scan(&c, buf + used, k, &done);
				if (r < 0)
					break;
				if ((size_t)r > k || ((size_t)r < k && !done))
					abort();
				used += (size_t)r;
			}
		}
	} else if (rc == HTTP_INCOMPLETE && size >= HTTP_MAX_HEAD) {
		abort();
	}
	free(buf);
	return 0;
}
