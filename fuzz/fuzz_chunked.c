/* fuzz_chunked.c - libFuzzer target for the chunked body scanner
 * (http_chunked_scan), the one piece of the parser that sees bytes as the
 * network splits them. The input's first byte says how many split sizes
 * follow (0-7), each one byte (a piece of 1-256 bytes, used in turn); the
 * rest is the body.
 *
 * Invariants (abort() when broken):
 * - the split does not matter: scanned whole, in the input's pieces and
 *   byte by byte, the body is refused by all three or ends at the same
 *   byte in all three, and a piece is consumed whole unless the body ends
 *   inside it;
 * - never more lenient than RFC 9112 section 7.1 where leniency lets two
 *   hops frame the same bytes differently: when the scanner says the body
 *   ended after L bytes, a strict reading (reference() below) of those L
 *   bytes is a complete chunked body of exactly L bytes; and when it is
 *   still waiting for more, the strict reading has not seen an end either
 *   (else the scanner would hang a connection on a finished body).
 * The scanner may be stricter than the reference (its bounds on line
 * lengths and trailer size). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

typedef struct outcome {
	ssize_t used;   /* bytes that belong to the body, -1 refused */
	bool done;
} outcome;

static outcome scan(const char *p, size_t n, const uint8_t *sizes, size_t n_sizes)
{
	http_chunked c;
	http_chunked_init(&c);
	outcome o = { 0, false };
	size_t used = 0;
	for (size_t k = 0; used < n && !o.done; k++) {
		size_t step = n_sizes ? (size_t)sizes[k % n_sizes] + 1 : n - used;
		if (step > n - used)
			step = n - used;
		ssize_t r = http_chunked_scan(&c, p + used, step, &o.done);
		if (r < 0) {
			o.used = -1;
			return o;
		}
		if ((size_t)r > step || ((size_t)r < step && !o.done))
			abort(); /* a piece is consumed whole unless the body ended in it */
		used += (size_t)r;
	}
	o.used = (ssize_t)used;
	return o;
}

/* ---- the strict reading ---- */

enum { REF_BAD = -1, REF_MORE = 0 };

static bool is_hex(unsigned char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* Reads a line ending in CRLF from p[*i..n): returns 1 with *i past the
 * CRLF and the line's length in *len, 0 when incomplete, -1 when the line
 * holds a bare CR, a bare LF or a NUL. */
static int line(const char *p, size_t n, size_t *i, size_t *len)
{
	for (size_t k = *i; k < n; k++) {
		if (p[k] == '\n' || p[k] == '\0')
			return -1;
		if (p[k] == '\r') {
			if (k + 1 == n)
				return 0;
			if (p[k + 1] != '\n')
				return -1;
			*len = k - *i;
			*i = k + 2;
			return 1;
		}
	}
	return 0;
}

/* A chunk-size line: 1*HEXDIG, optional blanks, then nothing or ";" and
 * extension text without control characters. (RFC 9112 wants the text
 * after ';' to be token[=token/quoted-string]; that part cannot change
 * where a chunk ends, so any printable text is let through here.) Sets
 * *size; false when malformed or larger than 64 bits. */
static bool size_line(const char *s, size_t len, uint64_t *size)
{
	size_t k = 0;
	uint64_t v = 0;
	while (k < len && is_hex((unsigned char)s[k])) {
		if (v >> 60)
			return false;
		char c = s[k];
		v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
		k++;
	}
	if (k == 0)
		return false;
	while (k < len && (s[k] == ' ' || s[k] == '\t'))
		k++;
	if (k < len) {
		if (s[k] != ';')
			return false;
		for (k++; k < len; k++) {
			unsigned char c = (unsigned char)s[k];
			if ((c < 0x20 && c != '\t') || c == 0x7f)
				return false;
		}
	}
	*size = v;
	return true;
}

/* Returns the length of the complete chunked body at the start of p[0..n),
 * REF_MORE when what is there is valid but unfinished, REF_BAD when not
 * valid. Trailer lines: any line that does not start with a blank (no
 * obs-fold) and holds no CR, LF or NUL; the proxy may validate or drop
 * them further. */
static ssize_t reference(const char *p, size_t n)
{
	size_t i = 0, len;
	for (;;) {
		size_t start = i;
		int r = line(p, n, &i, &len);
		if (r <= 0)
			return r < 0 ? REF_BAD : REF_MORE;
		uint64_t size;
		if (!size_line(p + start, len, &size))
			return REF_BAD;
		if (size == 0)
			break;
		if (size > n - i)
			return REF_MORE;
		i += (size_t)size;
		if (i + 2 > n)
			return i < n && p[i] != '\r' ? REF_BAD : REF_MORE;
		if (p[i] != '\r' || p[i + 1] != '\n')
			return REF_BAD;
		i += 2;
	}
	for (;;) {
		size_t start = i;
		int r = line(p, n, &i, &len);
		if (r <= 0)
			return r < 0 ? REF_BAD : REF_MORE;
		if (len == 0)
			return (ssize_t)i;
		if (p[start] == ' ' || p[start] == '\t')
			return REF_BAD;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	size_t n_sizes = data[0] % 8;
	if (size < 1 + n_sizes)
		return 0;
	const uint8_t *sizes = data + 1;
	size_t n = size - 1 - n_sizes;
	/* a private copy so that reads past the end are caught by ASan */
	char *p = malloc(n ? n : 1);
	if (!p)
		return 0;
	memcpy(p, data + 1 + n_sizes, n);

	outcome whole = scan(p, n, NULL, 0);
	outcome pieces = scan(p, n, sizes, n_sizes);
	static const uint8_t one[] = { 0 };
	outcome bytes = scan(p, n, one, 1);
	if (whole.used != pieces.used || whole.used != bytes.used ||
	    whole.done != pieces.done || whole.done != bytes.done)
		abort(); /* the split changed the framing */

	ssize_t ref = reference(p, n);
	if (whole.used >= 0 && whole.done && ref != whole.used)
		abort(); /* ended where a strict reading does not */
	if (whole.used >= 0 && !whole.done && ref > 0)
		abort(); /* still waiting on a body that has ended */
	free(p);
	return 0;
}
