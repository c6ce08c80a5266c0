/* cfg_route.c - spec.analysis.match (A/B tests) and
 * spec.analysis.sessionAffinity, Flagger's keys for what a request is
 * routed by besides the weight.
 *
 * Both are read for every router, as Flagger's CRD has them: a match is a
 * list of Istio HTTPMatchRequests of which Flagger keeps headers,
 * queryParams and sourceLabels, each header or parameter compared by
 * exactly one of exact, prefix, suffix (headers only) or regex. The
 * Kubernetes routers render them from <raw>; the built-in proxy gets them
 * compiled (cfg_canary.match, base/match.h) and affinity as cfg_affinity.
 * What only the router makes wrong is decided once spec is read
 * (cfg_route_finish): the built-in proxy matches regexes as POSIX extended
 * ones, which Istio's RE2 patterns need not be, and cannot see source
 * labels; HAProxy's router can do neither match nor affinity. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgload.h"

#define DOMAIN_MAX 128   /* Domain and Path attributes, so that the cookie
                          * lines fit the proxy's response head */

/* Keeps <msg> about node <at> for cfg_route_finish, which reports it when
 * the router turns out to be one that needs it. Takes <msg>. */
static void defer(doc *d, yaml_node_t *at, char *msg)
{
	d->route_defer = xrealloc(d->route_defer, (d->n_route_defer + 1) * sizeof *d->route_defer);
	d->route_defer[d->n_route_defer].at = at;
	d->route_defer[d->n_route_defer].msg = msg;
	d->n_route_defer++;
}

/* ---- match ---- */

static const char *const ops_header[] = { "exact", "prefix", "suffix", "regex" };
static const char *const ops_query[] = { "exact", "prefix", "regex" };

/* One StringMatch {exact|prefix|suffix|regex: V} at <path> for <name>,
 * added to <m> (when not NULL). */
static void read_string_match(doc *d, const char *path, yaml_node_t *v, match_on on,
                              const char *name, match_set *m)
{
	char got_[64];
	const char *const *ops = on == MATCH_HEADER ? ops_header : ops_query;
	size_t n_ops = on == MATCH_HEADER ? N_OF(ops_header) : N_OF(ops_query);
	const char *alts = on == MATCH_HEADER ? "exact, prefix, suffix or regex"
	                                      : "exact, prefix or regex";
	if (v->type != YAML_MAPPING_NODE) {
		cfg_err_at(d->x, v, "%s: must be a mapping with one of %s, got %s", path, alts,
		           GOT(v));
		return;
	}
	int op = -1, count = 0;
	yaml_node_t *val = NULL;
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *pk = cfg_node_at(d->x, pr->key), *pv = cfg_node_at(d->x, pr->value);
		if (!cfg_is_scalar(pk) || !pv)
			continue;
		size_t i = 0;
		while (i < n_ops && strcmp(ops[i], cfg_sval(pk)))
			i++;
		char p[PATH_LEN];
		cfg_join(p, path, cfg_sval(pk));
		if (i == n_ops) {
			if (!d->x->flagger)
				cfg_err_at(d->x, pk, "%s: unknown field; a %s matches by %s", p,
				           on == MATCH_HEADER ? "header" : "query parameter", alts);
			continue;
		}
		count++;
		op = (int)i;
		val = pv;
		char *s;
		if (cfg_read_string(d, p, pv, &s) == 0)
			free(s);
		else
			op = -2;
	}
	if (count == 0 && on == MATCH_QUERY) {
		/* Flagger's CRD lets a query parameter have none (it is the
		 * mesh's to read); the built-in proxy needs one */
		buf b = BUF_INIT;
		buf_printf(&b, "%s: give one of %s (router builtin)", path, alts);
		defer(d, v, b.p);
		return;
	}
	if (count != 1) {
		cfg_err_at(d->x, v, "%s: give exactly one of %s, got %d", path, alts, count);
		return;
	}
	if (op < 0 || !m)
		return;
	/* the index in ops_query is the same op but for regex */
	match_op mop = on == MATCH_QUERY && op == 2 ? MATCH_REGEX : (match_op)op;
	char err[400];
	if (match_set_add(m, on, name, mop, cfg_sval(val), err, sizeof err) < 0) {
		char vp[PATH_LEN];
		cfg_join(vp, path, ops[op]);
		buf b = BUF_INIT;
		buf_printf(&b, "%s: %s (the built-in proxy matches POSIX extended regular "
		           "expressions, not RE2)", vp, err);
		defer(d, val, b.p);
	}
}

static bool header_name_ok(const char *s)
{
	/* an RFC 9110 token, as a field name is */
	return match_cookie_name_ok(s);
}

/* headers or queryParams of one match entry: a mapping of names to
 * StringMatches. */
static void read_conds(doc *d, const char *path, yaml_node_t *v, match_on on, match_set *m)
{
	char got_[64];
	if (v->type != YAML_MAPPING_NODE) {
		cfg_err_at(d->x, v, "%s: must be a mapping of %s to {exact|prefix|%sregex: VALUE}, "
		           "got %s", path, on == MATCH_HEADER ? "header names" : "parameter names",
		           on == MATCH_HEADER ? "suffix|" : "", GOT(v));
		return;
	}
	for (yaml_node_pair_t *pr = v->data.mapping.pairs.start; pr < v->data.mapping.pairs.top;
	     pr++) {
		yaml_node_t *pk = cfg_node_at(d->x, pr->key), *pv = cfg_node_at(d->x, pr->value);
		if (!cfg_is_scalar(pk) || !pv)
			continue;
		char p[PATH_LEN];
		cfg_join(p, path, cfg_sval(pk));
		if (!cfg_controls_ok(d, p, pk, false))
			continue;
		if (on == MATCH_HEADER && !header_name_ok(cfg_sval(pk))) {
			cfg_err_at(d->x, pk, "%s: not a header name (letters, digits and "
			           "!#$%%&'*+-.^_`|~)", p);
			continue;
		}
		if (on == MATCH_QUERY && !*cfg_sval(pk)) {
			cfg_err_at(d->x, pk, "%s: a query parameter name cannot be empty", p);
			continue;
		}
		read_string_match(d, p, pv, on, cfg_sval(pk), m);
	}
}

typedef struct entry_in {
	match_set *m;
} entry_in;

static void h_m_headers(doc *d, const field *f, const char *path, yaml_node_t *k,
                        yaml_node_t *v, void *obj)
{
	read_conds(d, path, v, MATCH_HEADER, ((entry_in *)obj)->m);
}

static void h_m_query(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	read_conds(d, path, v, MATCH_QUERY, ((entry_in *)obj)->m);
}

static void h_m_labels(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	cfg_h_string_map(d, f, path, k, v, obj);
	buf b = BUF_INIT;
	buf_printf(&b, "%s: router builtin cannot match source labels (they are Kubernetes "
	           "pod labels of the client; match headers, cookies or query parameters)",
	           path);
	defer(d, k, b.p);
}

static const field entry_fields[] = {
	{ "headers", h_m_headers, F_BOTH, NOSTORE, 0, 0 },
	{ "queryParams", h_m_query, F_BOTH, NOSTORE, 0, 0 },
	{ "sourceLabels", h_m_labels, F_BOTH, NOSTORE, 0, 0 },
};

/* spec.analysis.match: a list of entries, ORed. */
void cfg_h_match(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                 void *obj)
{
	char got_[64];
	d->match_key = k;
	if (v->type != YAML_SEQUENCE_NODE) {
		cfg_err_at(d->x, v, "%s: must be a list of matches ({headers: {NAME: {exact: "
		           "VALUE}}}, ...), got %s", path, GOT(v));
		return;
	}
	match_set *m = match_set_new();
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		if (!e)
			continue;
		char ip[PATH_LEN];
		cfg_join_index(ip, path, i);
		match_set_entry(m);
		entry_in in = { m };
		slot seen[N_OF(entry_fields)];
		if (!cfg_walk_map(d, ip, e, entry_fields, N_OF(entry_fields), &in, seen))
			continue;
		if (!seen[0].key && !seen[1].key && !seen[2].key)
			/* Istio matches every request with an empty entry: that
			 * would send everything to the canary */
			cfg_err_at(d->x, e, "%s: an empty match would match every request; give "
			           "headers or queryParams", ip);
	}
	match_set_unref(d->c->match);
	d->c->match = m;
}

/* ---- sessionAffinity ---- */

static void h_cookie_name(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj)
{
	char got_[64];
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (!match_cookie_name_ok(s) || strlen(s) >= MATCH_COOKIE_NAME_MAX) {
		cfg_err_at(d->x, v, "%s: must be a cookie name (1 to %d letters, digits and "
		           "!#$%%&'*+-.^_`|~), got %s", path, MATCH_COOKIE_NAME_MAX - 1, GOT(v));
		free(s);
		return;
	}
	char **to = cfg_at(obj, f);
	free(*to);
	*to = s;
}

/* Domain and Path: one line without ';' (which would end the attribute). */
static void h_cookie_attr(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj)
{
	char got_[64];
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (!*s || strlen(s) > DOMAIN_MAX || strchr(s, ';') || strchr(s, ' ')) {
		cfg_err_at(d->x, v, "%s: must be 1 to %d characters without ';' or spaces, got %s",
		           path, DOMAIN_MAX, GOT(v));
		free(s);
		return;
	}
	char **to = cfg_at(obj, f);
	free(*to);
	*to = s;
}

static void h_same_site(doc *d, const field *f, const char *path, yaml_node_t *k,
                        yaml_node_t *v, void *obj)
{
	static const char *const ways[] = { "Strict", "Lax", "None" };
	cfg_affinity *a = obj;
	char *s;
	if (cfg_read_one_of(d, path, v, ways, N_OF(ways), &s) == 0) {
		free(a->same_site);
		a->same_site = s;
	}
}

static void h_max_age(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	cfg_affinity *a = obj;
	int n;
	/* Flagger's GetMaxAge: 0 (or none) is a day */
	if (cfg_read_int(d, path, v, 0, INT_MAX, &n) == 0)
		a->max_age = n ? n : 86400;
}

static const field affinity_fields[] = {
	{ "cookieName", h_cookie_name, F_BOTH, offsetof(cfg_affinity, cookie_name), 0, 0 },
	{ "maxAge", h_max_age, F_BOTH, NOSTORE, 0, 0 },
	{ "domain", h_cookie_attr, F_BOTH, offsetof(cfg_affinity, domain), 0, 0 },
	{ "path", h_cookie_attr, F_BOTH, offsetof(cfg_affinity, path), 0, 0 },
	{ "sameSite", h_same_site, F_BOTH, NOSTORE, 0, 0 },
	{ "httpOnly", cfg_h_bool, F_BOTH, offsetof(cfg_affinity, http_only), 0, 0 },
	{ "secure", cfg_h_bool, F_BOTH, offsetof(cfg_affinity, secure), 0, 0 },
	{ "partitioned", cfg_h_bool, F_BOTH, offsetof(cfg_affinity, partitioned), 0, 0 },
	{ "primaryCookieName", h_cookie_name, F_BOTH,
	  offsetof(cfg_affinity, primary_cookie_name), 0, 0 },
};
enum { AF_COOKIE };

void cfg_h_affinity(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj)
{
	cfg_affinity *a = &d->c->affinity;
	d->affinity_key = k;
	a->max_age = 86400;
	slot seen[N_OF(affinity_fields)];
	if (!cfg_walk_map(d, path, v, affinity_fields, N_OF(affinity_fields), a, seen))
		return;
	if (!seen[AF_COOKIE].key)
		cfg_err_at(d->x, k, "%s.cookieName: required (the cookie that keeps a client on "
		           "the canary)", path);
	if (a->cookie_name && a->primary_cookie_name &&
	    !strcmp(a->cookie_name, a->primary_cookie_name))
		cfg_err_at(d->x, k, "%s.primaryCookieName: must differ from cookieName ('%s')",
		           path, a->cookie_name);
}

/* ---- once the router is known ---- */

/* Called once spec is read, whatever it held: reports what the router
 * makes an error, and keeps the compiled match only for the built-in
 * proxy. */
void cfg_route_finish(doc *d)
{
	cfg_canary *c = d->c;
	const char *router = c->router ? c->router : d->x->flagger ? "istio" : "builtin";
	bool builtin = !strcmp(router, "builtin");
	for (size_t i = 0; i < d->n_route_defer; i++) {
		if (builtin)
			cfg_err_at(d->x, d->route_defer[i].at, "%s", d->route_defer[i].msg);
		free(d->route_defer[i].msg);
	}
	free(d->route_defer);
	d->route_defer = NULL;
	d->n_route_defer = 0;
	if (!strcmp(router, "haproxy")) {
		if (d->match_key)
			cfg_err_at(d->x, d->match_key, "spec.analysis.match: router haproxy cannot "
			           "route by header, cookie or query parameter (canaryd sets server "
			           "weights only); use router builtin, istio or gatewayapi");
		if (d->affinity_key)
			cfg_err_at(d->x, d->affinity_key, "spec.analysis.sessionAffinity: router haproxy "
			           "cannot pin a client by cookie (canaryd sets server weights only); "
			           "use router builtin, istio or gatewayapi");
	}
	if (!builtin) {
		match_set_unref(c->match);
		c->match = NULL;
	}
}

void cfg_route_release(cfg_canary *c)
{
	match_set_unref(c->match);
	c->match = NULL;
	cfg_affinity *a = &c->affinity;
	free(a->cookie_name);
	free(a->domain);
	free(a->path);
	free(a->same_site);
	free(a->primary_cookie_name);
	memset(a, 0, sizeof *a);
}
