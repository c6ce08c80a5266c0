/* fuzz_match.c - libFuzzer target for what the A/B match reads of a
 * request (base/match.c): headers joined across lines, the query string
 * percent-decoded, regexes run on values that are not NUL-terminated, and
 * the Cookie header split into pairs. The input is parsed as a request
 * head; a fixed set of conditions is matched against it. Invariants are
 * checked with abort(). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "match.h"

static match_set *set, *present, *query;

static match_set *build(void)
{
	match_set *m = match_set_new();
	char err[256];
	/* each entry one condition: match_request is then their OR */
	static const struct { match_on on; const char *name; match_op op; const char *v; } c[] = {
		{ MATCH_HEADER, "x-canary", MATCH_EXACT, "insider" },
		{ MATCH_HEADER, "x-user", MATCH_PREFIX, "qa-" },
		{ MATCH_HEADER, "x-email", MATCH_SUFFIX, "@example.com" },
		{ MATCH_HEADER, "cookie", MATCH_REGEX, "^(.*?;)?(canary=always)(;.*)?$" },
		{ MATCH_HEADER, "x-tag", MATCH_REGEX, "(a|b)+,c*" },
		{ MATCH_QUERY, "group", MATCH_EXACT, "beta" },
		{ MATCH_QUERY, "g r", MATCH_PREFIX, "%" },
		{ MATCH_QUERY, "build", MATCH_REGEX, "[0-9]+-rc" },
	};
	for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
		match_set_entry(m);
		if (match_set_add(m, c[i].on, c[i].name, c[i].op, c[i].v, err, sizeof err) < 0)
			abort();
	}
	return m;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!set) {
		char err[256];
		set = build();
		present = match_set_new();   /* prefix "": the header is there */
		if (match_set_add(present, MATCH_HEADER, "x-user", MATCH_PREFIX, "", err,
		                  sizeof err) < 0)
			abort();
		query = match_set_new();     /* prefix "": the parameter is there */
		if (match_set_add(query, MATCH_QUERY, "group", MATCH_PREFIX, "", err, sizeof err) < 0)
			abort();
	}
	/* a private copy so that reads past <size> are caught by ASan */
	char *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	static http_request req;
	if (http_parse_request(buf, size, &req) > 0) {
		bool a = match_request(set, &req);
		if (a != match_request(set, &req))
			abort();
		bool has = http_find_header(req.headers, req.n_headers, "x-user") != NULL;
		if (match_request(present, &req) != has)
			abort();
		(void)match_request(query, &req);
		int k = match_cookie(&req, "canary", 6, "always", 6);
		if (k < 0 || k > 2)
			abort();
		/* a cookie of that name with "always" is one with a value */
		if (k == 2 && match_cookie(&req, "canary", 6, "x", 1) < 1)
			abort();
	}
	free(buf);
	return 0;
}
