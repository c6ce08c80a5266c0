/* render_gatewayapi.c - the Gateway API HTTPRoute, as Flagger v1.44.0's
 * GatewayAPIRouter (gateway.networking.k8s.io/v1, pkg/router/gateway_api.go)
 * and GatewayAPIV1Beta1Router (v1beta1, gateway_api_v1beta1.go) write it:
 * Reconcile, then SetRoutes.
 *
 * The two differ in what v1beta1 lacks: no timeouts, no CORS filter, no
 * primary session cookie. Where Flagger iterates a Go map (the headers and
 * query parameters of a match) its order changes from call to call; here
 * they come sorted by name. One deliberate departure: an analysis.match
 * that the Gateway API cannot express (a prefix or suffix header match) is
 * an error, where Flagger ignores the error, drops every A/B match and so
 * sends all traffic to the canary during the iterations. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render_int.h"

/* ---- the Go types written (pkg/apis/gatewayapi/v1; v1beta1 writes a subset) ---- */

static const rd_field path_fields[] = {
	{ "type", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "value", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_path_match = { .kind = RD_STRUCT, .fields = path_fields };
static const rd_field kv_match_fields[] = {
	{ "type", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "name", &rd_str, 0, NULL },
	{ "value", &rd_str, 0, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_kv_match = { .kind = RD_STRUCT, .fields = kv_match_fields };
static const rd_type t_kv_match_list = { .kind = RD_LIST, .elem = &t_kv_match };
static const rd_field route_match_fields[] = {
	{ "path", &t_path_match, RD_OMIT | RD_PTR, NULL },
	{ "headers", &t_kv_match_list, RD_OMIT, NULL },
	{ "queryParams", &t_kv_match_list, RD_OMIT, NULL },
	{ "method", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_route_match = { .kind = RD_STRUCT, .fields = route_match_fields };
static const rd_type t_route_match_list = { .kind = RD_LIST, .elem = &t_route_match };
static const rd_field header_fields[] = {
	{ "name", &rd_str, 0, NULL },
	{ "value", &rd_str, 0, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_header = { .kind = RD_STRUCT, .fields = header_fields };
static const rd_type t_header_list = { .kind = RD_LIST, .elem = &t_header };
static const rd_field header_filter_fields[] = {
	{ "set", &t_header_list, RD_OMIT, NULL },
	{ "add", &t_header_list, RD_OMIT, NULL },
	{ "remove", &rd_str_list, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_header_filter = { .kind = RD_STRUCT, .fields = header_filter_fields };
static const rd_field path_mod_fields[] = {
	{ "type", &rd_str, 0, NULL },
	{ "replaceFullPath", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "replacePrefixMatch", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_path_mod = { .kind = RD_STRUCT, .fields = path_mod_fields };
static const rd_field url_rewrite_fields[] = {
	{ "hostname", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "path", &t_path_mod, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_url_rewrite = { .kind = RD_STRUCT, .fields = url_rewrite_fields };
static const rd_field bor_fields[] = {
	{ "group", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "kind", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "name", &rd_str, 0, NULL },
	{ "namespace", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "port", &rd_i32, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_bor = { .kind = RD_STRUCT, .fields = bor_fields };
static const rd_field mirror_fields[] = {
	{ "backendRef", &t_bor, 0, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_mirror = { .kind = RD_STRUCT, .fields = mirror_fields };
static const rd_field cors_fields[] = {
	{ "allowOrigins", &rd_str_list, RD_OMIT, NULL },
	{ "allowCredentials", &rd_bool, RD_OMIT | RD_PTR, NULL },
	{ "allowMethods", &rd_str_list, RD_OMIT, NULL },
	{ "allowHeaders", &rd_str_list, RD_OMIT, NULL },
	{ "exposeHeaders", &rd_str_list, RD_OMIT, NULL },
	{ "maxAge", &rd_i32, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_cors = { .kind = RD_STRUCT, .fields = cors_fields };
static const rd_field filter_fields[] = {
	{ "type", &rd_str, 0, NULL },
	{ "requestHeaderModifier", &t_header_filter, RD_OMIT | RD_PTR, NULL },
	{ "responseHeaderModifier", &t_header_filter, RD_OMIT | RD_PTR, NULL },
	{ "requestMirror", &t_mirror, RD_OMIT | RD_PTR, NULL },
	{ "urlRewrite", &t_url_rewrite, RD_OMIT | RD_PTR, NULL },
	{ "cors", &t_cors, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_filter = { .kind = RD_STRUCT, .fields = filter_fields };
static const rd_type t_filter_list = { .kind = RD_LIST, .elem = &t_filter };
/* HTTPBackendRef: BackendRef (BackendObjectReference and weight) inline */
static const rd_field backend_ref_fields[] = {
	{ "group", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "kind", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "name", &rd_str, 0, NULL },
	{ "namespace", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "port", &rd_i32, RD_OMIT | RD_PTR, NULL },
	{ "weight", &rd_i32, RD_OMIT | RD_PTR, NULL },
	{ "filters", &t_filter_list, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_backend_ref = { .kind = RD_STRUCT, .fields = backend_ref_fields };
static const rd_type t_backend_ref_list = { .kind = RD_LIST, .elem = &t_backend_ref };
static const rd_field timeouts_fields[] = {
	{ "request", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "backendRequest", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_timeouts = { .kind = RD_STRUCT, .fields = timeouts_fields };
static const rd_field rule_fields[] = {
	{ "matches", &t_route_match_list, RD_OMIT, NULL },
	{ "filters", &t_filter_list, RD_OMIT, NULL },
	{ "backendRefs", &t_backend_ref_list, RD_OMIT, NULL },
	{ "timeouts", &t_timeouts, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_rule = { .kind = RD_STRUCT, .fields = rule_fields };
static const rd_type t_rule_list = { .kind = RD_LIST, .elem = &t_rule };
static const rd_type t_parent_list = { .kind = RD_LIST, .elem = &rd_parent_ref };
static const rd_field spec_fields[] = {
	{ "parentRefs", &t_parent_list, RD_OMIT, NULL },
	{ "hostnames", &rd_str_list, RD_OMIT, NULL },
	{ "rules", &t_rule_list, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_spec = { .kind = RD_STRUCT, .fields = spec_fields };

/* ---- building blocks ---- */

static bool is_v1(const rctx *x)
{
	return !strcmp(x->tgt.api_version, "gateway.networking.k8s.io/v1");
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The keys of map <m>, sorted (an array the caller frees). */
static const char **sorted_keys(const json_t *m, size_t *n)
{
	*n = json_object_size(m);
	const char **keys = xcalloc(*n ? *n : 1, sizeof *keys);
	size_t i = 0;
	const char *k;
	json_t *v;
	json_object_foreach((json_t *)m, k, v)
		keys[i++] = k;
	qsort(keys, *n, sizeof *keys, cmp_names);
	return keys;
}

/* Headers or query parameters of an Istio match as Gateway API matches:
 * exact first, then regex; -1 (reported) for anything else. */
static int map_kv(rctx *x, const json_t *m, const char *what, const char *path, json_t *out)
{
	size_t n;
	const char **keys = sorted_keys(m, &n);
	int rc = 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *sm = json_object_get(m, keys[i]);
		const char *exact = gv_str(sm, "exact"), *regex = gv_str(sm, "regex");
		const char *type = *exact ? "Exact" : *regex ? "RegularExpression" : NULL;
		if (!type) {
			buf b = BUF_INIT;
			rc_shown(&b, keys[i]);
			rc_error(x, "%s.%s.%s: the Gateway API matches %s by exact value or regex only",
			         path, what, b.p ? b.p : "", what);
			buf_release(&b);
			rc = -1;
			continue;
		}
		json_array_append_new(out, json_pack("{s:s,s:s,s:s}", "type", type, "name", keys[i],
		                                     "value", *exact ? exact : regex));
	}
	free(keys);
	return rc;
}

/* mapRouteMatches: Istio matches (<list>, at <path>) as HTTPRouteMatches;
 * NULL (reported) when one cannot be expressed. */
static json_t *map_matches(rctx *x, const json_t *list, const char *path)
{
	json_t *out = json_array();
	size_t i;
	json_t *m;
	bool bad = false;
	json_array_foreach(list, i, m) {
		char p[256];
		snprintf(p, sizeof p, "%s[%zu]", path, i);
		json_t *match = json_object();
		const json_t *uri = gv_get(m, "uri");
		if (uri) {
			const char *type = *gv_str(uri, "regex") ? "RegularExpression"
			                 : *gv_str(uri, "exact") ? "Exact"
			                 : *gv_str(uri, "prefix") ? "PathPrefix" : NULL;
			const char *v = *gv_str(uri, "regex") ? gv_str(uri, "regex")
			              : *gv_str(uri, "exact") ? gv_str(uri, "exact") : gv_str(uri, "prefix");
			if (type) {
				json_object_set_new(match, "path", json_pack("{s:s,s:s}", "type", type,
				                                             "value", v));
			} else {
				rc_error(x, "%s.uri: the Gateway API matches a path by exact, prefix or regex "
				         "only", p);
				bad = true;
			}
		}
		const json_t *method = gv_get(m, "method");
		if (method) {
			if (*gv_str(method, "exact")) {
				json_object_set_new(match, "method", json_string(gv_str(method, "exact")));
			} else {
				rc_error(x, "%s.method: the Gateway API matches a method exactly only", p);
				bad = true;
			}
		}
		json_t *hs = json_array(), *qs = json_array();
		if (map_kv(x, gv_get(m, "headers"), "headers", p, hs) < 0 ||
		    map_kv(x, gv_get(m, "queryParams"), "queryParams", p, qs) < 0)
			bad = true;
		if (json_array_size(hs))
			json_object_set(match, "headers", hs);
		if (json_array_size(qs))
			json_object_set(match, "queryParams", qs);
		json_decref(hs);
		json_decref(qs);
		if (json_object_size(match))
			json_array_append(out, match);
		json_decref(match);
	}
	if (bad) {
		json_decref(out);
		return NULL;
	}
	return out;
}

/* mergeMatchConditions of the Gateway API router. New reference. */
static json_t *merge_matches(json_t *analysis, json_t *service)
{
	if (json_array_size(analysis) == 0)
		return json_incref(service);
	if (json_array_size(service) == 0)
		return json_incref(analysis);
	json_t *merged = json_array();
	size_t i, j;
	json_t *a, *s;
	json_array_foreach(analysis, i, a) {
		json_array_foreach(service, j, s) {
			json_t *m = json_deep_copy(s);
			if (json_array_size(json_object_get(a, "headers")))
				json_object_set(m, "headers", json_object_get(a, "headers"));
			if (json_array_size(json_object_get(a, "queryParams")))
				json_object_set(m, "queryParams", json_object_get(a, "queryParams"));
			json_array_append_new(merged, m);
		}
	}
	return merged;
}

/* A header map as a list sorted by name (sortFiltersV1); NULL when empty. */
static json_t *header_list(const json_t *m)
{
	if (json_object_size(m) == 0)
		return NULL;
	size_t n;
	const char **keys = sorted_keys(m, &n);
	json_t *list = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(list, json_pack("{s:s,s:s}", "name", keys[i], "value",
		                                      json_string_value(json_object_get(m, keys[i]))));
	free(keys);
	return list;
}

static json_t *header_filter(const json_t *ops)
{
	json_t *f = json_object();
	json_t *set = header_list(gv_get(ops, "set"));
	json_t *add = header_list(gv_get(ops, "add"));
	if (set)
		json_object_set_new(f, "set", set);
	if (add)
		json_object_set_new(f, "add", add);
	if (gv_len(ops, "remove"))
		json_object_set(f, "remove", gv_get(ops, "remove"));
	return f;
}

/* makeFilters. New reference (an array, maybe empty). */
static json_t *make_filters(rctx *x)
{
	json_t *filters = json_array();
	const json_t *h = gv_get(x->svc, "headers");
	if (gv_get(h, "request"))
		json_array_append_new(filters, json_pack("{s:s,s:o}", "type", "RequestHeaderModifier",
		                      "requestHeaderModifier", header_filter(gv_get(h, "request"))));
	if (gv_get(h, "response"))
		json_array_append_new(filters, json_pack("{s:s,s:o}", "type", "ResponseHeaderModifier",
		                      "responseHeaderModifier", header_filter(gv_get(h, "response"))));
	const json_t *rw = gv_get(x->svc, "rewrite");
	if (rw) {
		json_t *u = json_object();
		if (*gv_str(rw, "authority"))
			json_object_set_new(u, "hostname", json_string(gv_str(rw, "authority")));
		if (*gv_str(rw, "uri")) {
			/* HTTPRewrite.GetType: ReplacePrefixMatch only when asked for */
			bool prefix = !strcmp(gv_str(rw, "type"), "ReplacePrefixMatch");
			json_object_set_new(u, "path", json_pack("{s:s,s:s}", "type",
			                    prefix ? "ReplacePrefixMatch" : "ReplaceFullPath",
			                    prefix ? "replacePrefixMatch" : "replaceFullPath",
			                    gv_str(rw, "uri")));
		}
		json_array_append_new(filters, json_pack("{s:s,s:o}", "type", "URLRewrite",
		                                         "urlRewrite", u));
	}
	size_t i;
	json_t *m;
	json_array_foreach(gv_get(x->svc, "mirror"), i, m)
		json_array_append_new(filters, json_pack("{s:s,s:O}", "type", "RequestMirror",
		                                         "requestMirror", m));
	const json_t *cp = gv_get(x->svc, "corsPolicy");
	if (cp && is_v1(x)) {
		json_t *c = json_object();
		if (gv_len(cp, "allowOrigins"))
			rc_note(x, "spec.service.corsPolicy.allowOrigins: the Gateway API's CORS filter "
			        "takes plain origins only; left out, as Flagger does (use allowOrigin)");
		static const char *const lists[][2] = {
			{ "allowOrigin", "allowOrigins" }, { "allowMethods", "allowMethods" },
			{ "allowHeaders", "allowHeaders" }, { "exposeHeaders", "exposeHeaders" },
		};
		for (size_t k = 0; k < 4; k++)
			if (gv_len(cp, lists[k][0]))
				json_object_set(c, lists[k][1], gv_get(cp, lists[k][0]));
		if (gv_bool(cp, "allowCredentials"))
			json_object_set_new(c, "allowCredentials", json_true());
		const char *ma = gv_str(cp, "maxAge");
		long long ns;
		if (*ma && rc_parse_go_duration(ma, &ns) == 0) {
			long long secs = ns / 1000000000LL; /* int32(d.Seconds()) */
			if (secs > INT32_MAX || secs < INT32_MIN) {
				rc_error(x, "spec.service.corsPolicy.maxAge: more seconds than the Gateway "
				         "API's maxAge holds (an int32)");
				secs = 0;
			}
			json_object_set_new(c, "maxAge", json_integer(secs));
		} else if (*ma) {
			rc_note(x, "spec.service.corsPolicy.maxAge: not a Go duration; left out of the "
			        "CORS filter, as Flagger does");
		}
		json_array_append_new(filters, json_pack("{s:s,s:o}", "type", "CORS", "cors", c));
	} else if (cp) {
		rc_note(x, "spec.service.corsPolicy: not rendered for gatewayapi:v1beta1 (Flagger's "
		        "v1beta1 router has no CORS filter)");
	}
	return filters;
}

static json_t *backend_ref(const rctx *x, const char *name, int weight)
{
	return json_pack("{s:s,s:s,s:s,s:I,s:i}", "group", "", "kind", "Service", "name", name,
	                 "port", (json_int_t)gv_int(x->svc, "port"), "weight", weight);
}

static json_t *two_refs(const rctx *x, int pw, int cw)
{
	return json_pack("[o,o]", backend_ref(x, x->primary, pw), backend_ref(x, x->canary, cw));
}

/* A rule with <matches> (borrowed), the service's filters and timeouts
 * and <refs> (stolen). */
static json_t *rule(rctx *x, json_t *matches, json_t *refs)
{
	json_t *r = json_object();
	json_object_set(r, "matches", matches);
	json_t *f = make_filters(x);
	if (json_array_size(f))
		json_object_set(r, "filters", f);
	json_decref(f);
	json_object_set_new(r, "backendRefs", refs);
	const char *t = gv_str(x->svc, "timeout"), *bt = gv_str(x->svc, "backendTimeout");
	if (is_v1(x) && (*t || *bt)) {
		json_t *to = json_object();
		if (*t)
			json_object_set_new(to, "request", json_string(t));
		if (*bt)
			json_object_set_new(to, "backendRequest", json_string(bt));
		json_object_set_new(r, "timeouts", to);
	}
	return r;
}

static json_t *cookie_match(const char *cookie)
{
	char *re = rc_cookie_regex(cookie);
	json_t *m = json_pack("[{s:[{s:s,s:s,s:s}]}]", "headers", "type", "RegularExpression",
	                      "name", "Cookie", "value", re);
	free(re);
	return m;
}

static json_t *set_cookie_filter(const char *value)
{
	return json_pack("{s:s,s:{s:[{s:s,s:s}]}}", "type", "ResponseHeaderModifier",
	                 "responseHeaderModifier", "add", "name", "Set-Cookie", "value", value);
}

static json_t *find_ref(json_t *r, const char *name)
{
	size_t i;
	json_t *b;
	json_array_foreach(json_object_get(r, "backendRefs"), i, b)
		if (!strcmp(gv_str(b, "name"), name))
			return b;
	return NULL;
}

/* Appends filter <f> (stolen) to the "filters" of <o>, as a new list. */
static void append_filter(json_t *o, json_t *f)
{
	json_t *old = json_object_get(o, "filters");
	json_t *list = old ? json_copy(old) : json_array();
	json_array_append_new(list, f);
	json_object_set_new(o, "filters", list);
}

/* getSessionAffinityRouteRules; <weighted> borrowed, <svc_matches> the
 * service's matches without the default. NULL when reported. */
static json_t *affinity_rules(rctx *x, json_t *weighted, json_t *svc_matches)
{
	const json_t *sa = gv_get(x->an, "sessionAffinity");
	const render_split *s = x->split;
	const char *name = gv_str(sa, "cookieName");
	const char *pname = is_v1(x) ? gv_str(sa, "primaryCookieName") : "";
	json_t *sticky = json_copy(weighted);
	json_t *rules = json_array();
	if (s->weight != 0) {
		char *cookie = rc_status_cookie(name, s->cookie);
		long long max_age = gv_int(sa, "maxAge") ? gv_int(sa, "maxAge") : 86400;
		char *v = rc_build_cookie(sa, cookie, max_age);
		append_filter(find_ref(weighted, x->canary), set_cookie_filter(v));
		free(v);
		json_t *sticky_primary = NULL;
		if (*pname) {
			long long secs;
			if (rc_interval_seconds(x, &secs) < 0) {
				free(cookie);
				json_decref(sticky);
				json_decref(rules);
				return NULL;
			}
			char *pcookie = rc_status_cookie(pname, s->primary_cookie);
			v = rc_build_cookie(sa, pcookie, secs);
			append_filter(find_ref(weighted, x->primary), set_cookie_filter(v));
			free(v);
			sticky_primary = json_copy(weighted);
			json_t *pm = cookie_match(pcookie);
			json_object_set_new(sticky_primary, "matches", merge_matches(pm, svc_matches));
			json_decref(pm);
			json_object_set_new(sticky_primary, "backendRefs", two_refs(x, 100, 0));
			free(pcookie);
		}
		json_t *cm = cookie_match(cookie);
		json_object_set_new(sticky, "matches", merge_matches(cm, svc_matches));
		json_decref(cm);
		json_object_set_new(sticky, "backendRefs", two_refs(x, 0, 100));
		json_array_append_new(rules, sticky);
		if (sticky_primary)
			json_array_append_new(rules, sticky_primary);
		json_array_append(rules, weighted);
		free(cookie);
		return rules;
	}
	if (s->cookie) {
		char *prev = rc_status_cookie(name, s->cookie);
		json_t *cm = cookie_match(prev);
		json_object_set_new(sticky, "matches", merge_matches(cm, svc_matches));
		json_decref(cm);
		buf b = BUF_INIT;
		buf_printf(&b, "%s; Max-Age=-1", prev);
		json_t *rhm = NULL;
		size_t i;
		json_t *f;
		json_array_foreach(json_object_get(sticky, "filters"), i, f)
			if (!strcmp(gv_str(f, "type"), "ResponseHeaderModifier"))
				rhm = f;
		if (rhm) {
			/* Flagger appends a second ResponseHeaderModifier, which
			 * the HTTPRoute CRD refuses ("cannot be repeated"): the
			 * cookie joins the service's filter instead, in a copy */
			json_t *filters = json_deep_copy(json_object_get(sticky, "filters"));
			json_array_foreach(filters, i, f) {
				if (strcmp(gv_str(f, "type"), "ResponseHeaderModifier"))
					continue;
				json_t *mod = json_object_get(f, "responseHeaderModifier");
				json_t *add = json_object_get(mod, "add");
				if (!add) {
					add = json_array();
					json_object_set_new(mod, "add", add);
				}
				json_array_append_new(add, json_pack("{s:s,s:s}", "name", "Set-Cookie",
				                                     "value", b.p));
			}
			json_object_set_new(sticky, "filters", filters);
		} else {
			append_filter(sticky, set_cookie_filter(b.p));
		}
		buf_release(&b);
		free(prev);
	}
	json_array_append_new(rules, sticky);
	json_array_append(rules, weighted);
	return rules;
}

void render_gatewayapi(rctx *x)
{
	const render_split *s = x->split;
	const json_t *refs = gv_get(x->svc, "gatewayRefs");
	if (json_array_size(refs) == 0)
		rc_error(x, "spec.service.gatewayRefs: required with the Gateway API (the Gateways, or "
		         "for GAMMA the Service, that the HTTPRoute attaches to)");
	long long port = gv_int(x->svc, "port");
	if (port < 1 || port > 65535)
		rc_error(x, "spec.service.port: the HTTPRoute's backendRefs need a port from 1 to "
		         "65535, got %lld", port);
	json_t *svc_matches = map_matches(x, gv_get(x->svc, "match"), "spec.service.match");
	json_t *amatches = NULL;
	if (gv_len(x->an, "match"))
		amatches = map_matches(x, gv_get(x->an, "match"), "spec.analysis.match");
	if (json_array_size(x->errors)) {
		json_decref(svc_matches);
		json_decref(amatches);
		return;
	}
	json_t *matches = json_array_size(svc_matches)
	                ? json_incref(svc_matches)
	                : json_pack("[{s:{s:s,s:s}}]", "path", "type", "PathPrefix", "value", "/");

	int w = s->weight, pw = 100 - s->weight;
	json_t *weighted = rule(x, matches, two_refs(x, pw, w));
	if (s->mirror && gv_int(x->an, "iterations") > 0)
		append_filter(weighted, json_pack("{s:s,s:{s:{s:s,s:s,s:s,s:I}}}", "type",
		              "RequestMirror", "requestMirror", "backendRef", "group", "", "kind",
		              "Service", "name", x->canary, "port", (json_int_t)port));
	else if (s->mirror)
		rc_note(x, "mirror: Flagger's Gateway API router mirrors only during blue/green "
		        "iterations (spec.analysis.iterations); not rendered");

	json_t *rules = NULL;
	if (gv_get(x->an, "sessionAffinity"))
		rules = affinity_rules(x, weighted, svc_matches);
	else
		rules = json_pack("[O]", weighted);
	if (rules && amatches) {
		json_t *first = json_array_get(rules, 0);
		json_object_set_new(first, "matches", merge_matches(amatches, matches));
		json_t *one = json_array();
		json_array_append_new(one, backend_ref(x, x->primary, 100));
		json_array_append_new(rules, rule(x, matches, one));
	}
	/* the HTTPRoute CRD: a ReplacePrefixMatch rewrite needs exactly one
	 * PathPrefix match in its rule, which Flagger's A/B product of
	 * matches can break: refused here rather than by the API server */
	size_t ri;
	json_t *r;
	json_array_foreach(rules, ri, r) {
		const json_t *rw = gv_get(x->svc, "rewrite");
		if (!rw || strcmp(gv_str(rw, "type"), "ReplacePrefixMatch") || !*gv_str(rw, "uri"))
			break;
		const json_t *ms = json_object_get(r, "matches");
		const json_t *p = json_object_get(json_array_get(ms, 0), "path");
		if (json_array_size(ms) != 1 || strcmp(gv_str(p, "type"), "PathPrefix")) {
			rc_error(x, "spec.service.rewrite.type ReplacePrefixMatch: the Gateway API allows it "
			         "only in a rule with exactly one PathPrefix match, and rule %zu has %zu "
			         "matches%s", ri, json_array_size(ms),
			         amatches ? " (spec.analysis.match x spec.service.match)" : "");
			json_decref(rules);
			rules = NULL;
			break;
		}
	}
	if (rules) {
		json_t *spec = json_object();
		json_object_set(spec, "parentRefs", (json_t *)refs);
		json_t *hosts = gv_get(x->svc, "hosts");
		if (hosts)
			json_object_set(spec, "hostnames", hosts);
		json_object_set_new(spec, "rules", rules);
		json_t *labels, *annotations;
		rc_apex_metadata(x, &labels, &annotations);
		rc_emit(x, x->tgt.api_version, "HTTPRoute", rc_metadata(x, x->apex, labels, annotations),
		        rd_marshal(spec, &t_spec));
		json_decref(labels);
		json_decref(annotations);
		json_decref(spec);
	}
	json_decref(weighted);
	json_decref(matches);
	json_decref(svc_matches);
	json_decref(amatches);
}
