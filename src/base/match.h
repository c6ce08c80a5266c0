/* match.h - request matching for A/B tests (Flagger's analysis.match, the
 * subset of Istio's HTTPMatchRequest that Flagger documents) and the
 * cookies of session affinity, on a request parsed by http.c.
 *
 * A match set is a list of entries, ORed; an entry is a list of
 * conditions, ANDed, as in Istio. A condition looks at one request header
 * or one query parameter and compares its value by exact, prefix, suffix
 * (headers only, as Flagger's CRD) or regex, as Envoy does it:
 * - a header name is compared without case; a header that is absent fails
 *   every condition on it; a header sent on several lines is matched on
 *   its lines joined by "," (Envoy joins them so);
 * - a query parameter is compared after percent-decoding its name and
 *   value ('+' stays a '+'); the first one of that name counts; "?k" has
 *   the value "";
 * - a regex must match the whole value (Envoy's safe_regex is a full
 *   match), and is a POSIX extended regular expression (regcomp with
 *   REG_EXTENDED), not RE2: no \d, no (?i), no lazy quantifiers (glibc
 *   takes "*?" as "*" made optional, so Flagger's documented cookie regex
 *   "^(.*?;)?(canary=always)(;.*)?$" matches as it does under RE2).
 *
 * Why it lives in base/ and not in the data plane: the configuration
 * compiles the rules when it is loaded (a regex that does not compile is
 * a configuration error at its line), and config/ may not include the
 * data plane's headers. A set is immutable once built and reference
 * counted (atomically): the proxy's worker threads all match with the same
 * set. Nothing is allocated per request. glibc's regexec takes the
 * pattern's lock, so two workers running one regex at the same moment take
 * turns (for microseconds), and a regex condition copies the value it
 * reads onto the stack; exact, prefix and suffix conditions take no lock
 * and copy nothing but a header sent on several lines or a query value
 * (percent-decoded). */
#ifndef CANARYD_MATCH_H
#define CANARYD_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "http.h"

typedef enum { MATCH_EXACT, MATCH_PREFIX, MATCH_SUFFIX, MATCH_REGEX } match_op;
typedef enum { MATCH_HEADER, MATCH_QUERY } match_on;

typedef struct match_set match_set;

/* A new, empty set (one reference): it matches nothing until an entry is
 * added. */
match_set *match_set_new(void);

/* Starts a new entry of <m>, ORed with those before it; the conditions
 * added next belong to it. An entry without conditions matches every
 * request (as an empty HTTPMatchRequest does in Istio). */
void match_set_entry(match_set *m);

/* Adds a condition to the current entry of <m> (one is started when there
 * is none): the header or query parameter <name> compared to <value> by
 * <op>. Returns 0, or -1 with <err> filled, the set unchanged: an empty
 * name, a suffix on a query parameter, or a regex that does not compile
 * ("regex '(abc': Unmatched ( or \(" as regerror says). */
int match_set_add(match_set *m, match_on on, const char *name, match_op op,
                  const char *value, char *err, size_t errlen);

/* Entries in <m>. */
size_t match_set_entries(const match_set *m);

/* Whether request <q> (parsed by http_parse_request) matches one entry of
 * <m>. Thread-safe for a set no longer being built; allocates nothing. A
 * NULL set matches nothing. */
bool match_request(const match_set *m, const http_request *q);

match_set *match_set_ref(match_set *m);
void match_set_unref(match_set *m);            /* NULL is a no-op */

/* Looks for a cookie named <name> in the Cookie header lines of <q> (RFC
 * 6265 4.2.1: "a=b; c=d", blanks around each pair ignored). Returns 2 when
 * one of that name has the value <want>, 1 when one has it with another
 * value, 0 when none has it. */
int match_cookie(const http_request *q, const char *name, size_t nlen,
                 const char *want, size_t wlen);

/* Whether <s> is a cookie name as RFC 6265 allows it (an RFC 9110 token,
 * as a header name is). */
#define MATCH_COOKIE_NAME_MAX 128     /* a cookie name's room, NUL included */
bool match_cookie_name_ok(const char *s);

#endif
