/* render_istio.c - Istio's DestinationRules and VirtualService, as Flagger
 * v1.44.0's IstioRouter writes them (pkg/router/istio.go: Reconcile, then
 * SetRoutes).
 *
 * The objects are built as Go values whose sharing follows Go's: a struct
 * copy is a shallow json_copy, a pointer or a map is the same json_t. That
 * matters once: at weight 0 with an expired session cookie, Flagger adds the
 * Set-Cookie to the sticky route's Headers, which is the same pointer as
 * spec.service.headers when the Canary has headers, so the weighted route
 * (and every route built after it in that call) gets it too. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "render_int.h"

/* ---- the Go types written (pkg/apis/istio/v1beta1) ---- */

static const rd_field port_fields[] = {
	{ "number", &rd_u32, RD_OMIT, NULL },
	{ "name", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_port_selector = { .kind = RD_STRUCT, .fields = port_fields };
static const rd_field dest_fields[] = {
	{ "host", &rd_str, 0, NULL },
	{ "subset", &rd_str, RD_OMIT, NULL },
	{ "port", &t_port_selector, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_destination = { .kind = RD_STRUCT, .fields = dest_fields };
static const rd_field route_dest_fields[] = {
	{ "destination", &t_destination, 0, NULL },
	{ "weight", &rd_int, 0, NULL },
	{ "headers", &rd_headers, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_route_dest = { .kind = RD_STRUCT, .fields = route_dest_fields };
static const rd_type t_route_dest_list = { .kind = RD_LIST, .elem = &t_route_dest };
static const rd_field rewrite_fields[] = {
	{ "uri", &rd_str, RD_OMIT, NULL },
	{ "authority", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_rewrite = { .kind = RD_STRUCT, .fields = rewrite_fields };
/* Percent.Value is a float64; Flagger sets it from an int, which Go writes
 * without a fraction, as json_integer prints */
static const rd_field percent_fields[] = {
	{ "value", &rd_int, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_percent = { .kind = RD_STRUCT, .fields = percent_fields };
static const rd_field http_route_fields[] = {
	{ "name", &rd_str, RD_OMIT, NULL },
	{ "match", &rd_match_list, RD_OMIT, NULL },
	{ "route", &t_route_dest_list, RD_OMIT, NULL },
	{ "rewrite", &t_rewrite, RD_OMIT | RD_PTR, NULL },
	{ "timeout", &rd_str, RD_OMIT, NULL },
	{ "retries", &rd_retry, RD_OMIT | RD_PTR, NULL },
	{ "mirror", &t_destination, RD_OMIT | RD_PTR, NULL },
	{ "mirrorPercentage", &t_percent, RD_OMIT | RD_PTR, NULL },
	{ "corsPolicy", &rd_cors, RD_OMIT | RD_PTR, NULL },
	{ "headers", &rd_headers, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_http_route = { .kind = RD_STRUCT, .fields = http_route_fields };
static const rd_type t_http_list = { .kind = RD_LIST, .elem = &t_http_route };
static const rd_field l4_fields[] = {
	{ "destinationSubnet", &rd_str, RD_OMIT, NULL },
	{ "port", &rd_int, RD_OMIT, NULL },
	{ "sourceSubnet", &rd_str, RD_OMIT, NULL },
	{ "sourceLabel", &rd_str_map, RD_OMIT, NULL },
	{ "gateways", &rd_str_list, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_l4 = { .kind = RD_STRUCT, .fields = l4_fields };
static const rd_type t_l4_list = { .kind = RD_LIST, .elem = &t_l4 };
static const rd_field tcp_fields[] = {
	{ "match", &t_l4_list, RD_OMIT, NULL },
	{ "route", &t_route_dest_list, 0, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_tcp_route = { .kind = RD_STRUCT, .fields = tcp_fields };
static const rd_type t_tcp_list = { .kind = RD_LIST, .elem = &t_tcp_route };
static const rd_field vs_fields[] = {
	{ "hosts", &rd_str_list, 0, NULL },
	{ "gateways", &rd_str_list, RD_OMIT, NULL },
	{ "http", &t_http_list, RD_OMIT, NULL },
	{ "tcp", &t_tcp_list, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_vs_spec = { .kind = RD_STRUCT, .fields = vs_fields };
static const rd_field dr_fields[] = {
	{ "host", &rd_str, 0, NULL },
	{ "trafficPolicy", &rd_traffic_policy, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_dr_spec = { .kind = RD_STRUCT, .fields = dr_fields };

/* ---- building blocks ---- */

/* makeDestination: the Service port only when portDiscovery and either the
 * first gateway is not "mesh" or the VirtualService is a delegate */
static json_t *destination(const rctx *x, const char *host, int weight)
{
	json_t *d = json_object();
	json_object_set_new(d, "host", json_string(host));
	const json_t *gw = gv_get(x->svc, "gateways");
	const char *first = json_string_value(json_array_get(gw, 0));
	if (gv_bool(x->svc, "portDiscovery") &&
	    ((first && strcmp(first, "mesh")) || gv_bool(x->svc, "delegation"))) {
		json_t *port = json_object();
		/* uint32(Service.Port): an int32, so a negative port wraps */
		uint32_t n = (uint32_t)(int32_t)gv_int(x->svc, "port");
		json_object_set_new(port, "number", json_integer(n));
		json_object_set_new(d, "port", port);
	}
	json_t *rd = json_object();
	json_object_set_new(rd, "destination", d);
	json_object_set_new(rd, "weight", json_integer(weight));
	return rd;
}

/* An HTTPRoute with the service's rewrite, timeout, retries, CORS and
 * headers (<headers>: the current spec.service.headers, shared) and <match>
 * (borrowed, may be NULL), <route> (stolen). */
static json_t *http_route(const rctx *x, json_t *match, json_t *route)
{
	json_t *r = json_object();
	if (match)
		json_object_set(r, "match", match);
	json_object_set_new(r, "route", route);
	const json_t *rw = gv_get(x->svc, "rewrite");
	if (rw) { /* GetIstioRewrite: uri and authority, not type */
		json_t *o = json_object();
		json_object_set_new(o, "uri", json_string(gv_str(rw, "uri")));
		json_object_set_new(o, "authority", json_string(gv_str(rw, "authority")));
		json_object_set_new(r, "rewrite", o);
	}
	static const char *const shared[] = { "timeout", "retries", "corsPolicy", "headers", NULL };
	for (const char *const *k = shared; *k; k++) {
		json_t *v = gv_get(x->svc, *k);
		if (v)
			json_object_set(r, *k, v);
	}
	return r;
}

static json_t *two_way(const rctx *x, int primary_w, int canary_w)
{
	json_t *route = json_array();
	json_array_append_new(route, destination(x, x->primary, primary_w));
	json_array_append_new(route, destination(x, x->canary, canary_w));
	return route;
}

/* mergeMatchConditions: each of <canary> laid over a deep copy of each of
 * <defaults>, replacing its headers and sourceLabels when set (even set
 * empty); <canary> itself when there are no defaults. New reference. */
static json_t *merge_matches(json_t *canary, const json_t *defaults)
{
	if (json_array_size(defaults) == 0)
		return json_incref(canary);
	json_t *merged = json_array();
	size_t i, j;
	json_t *c, *d;
	json_array_foreach(canary, i, c) {
		json_array_foreach(defaults, j, d) {
			json_t *m = json_deep_copy(d);
			json_t *h = json_object_get(c, "headers");
			json_t *sl = json_object_get(c, "sourceLabels");
			if (h)
				json_object_set(m, "headers", h);
			if (sl)
				json_object_set(m, "sourceLabels", sl);
			json_array_append_new(merged, m);
		}
	}
	return merged;
}

/* [{headers: {Cookie: {regex: ".*<name>.*<value>.*"}}}] */
static json_t *cookie_match(const char *cookie)
{
	char *re = rc_cookie_regex(cookie);
	json_t *list = json_pack("[{s:{s:{s:s}}}]", "headers", "Cookie", "regex", re);
	free(re);
	return list;
}

/* {"response": {"add": {"Set-Cookie": <value>}}} */
static json_t *set_cookie_headers(const char *value)
{
	return json_pack("{s:{s:{s:s}}}", "response", "add", "Set-Cookie", value);
}

static json_t *find_dest(json_t *route_value, const char *host)
{
	size_t i;
	json_t *d;
	json_array_foreach(json_object_get(route_value, "route"), i, d)
		if (!strcmp(gv_str(json_object_get(d, "destination"), "host"), host))
			return d;
	return NULL;
}

/* getSessionAffinityRouteRules. <weighted> is borrowed. Returns the new
 * http list, or NULL (reported). */
static json_t *affinity_routes(rctx *x, json_t *weighted)
{
	const json_t *sa = gv_get(x->an, "sessionAffinity");
	const render_split *s = x->split;
	const char *name = gv_str(sa, "cookieName");
	const char *pname = gv_str(sa, "primaryCookieName");
	json_t *svc_match = gv_get(x->svc, "match");
	json_t *sticky = json_copy(weighted); /* stickyCanaryRoute := *weightedRoute */
	json_t *list = json_array();

	if (s->weight != 0) {
		char *cookie = rc_status_cookie(name, s->cookie);
		long long max_age = gv_int(sa, "maxAge") ? gv_int(sa, "maxAge") : 86400; /* GetMaxAge */
		char *v = rc_build_cookie(sa, cookie, max_age);
		json_object_set_new(find_dest(weighted, x->canary), "headers", set_cookie_headers(v));
		free(v);
		json_t *sticky_primary = NULL;
		if (*pname) {
			long long secs;
			if (rc_interval_seconds(x, &secs) < 0) {
				free(cookie);
				json_decref(sticky);
				json_decref(list);
				return NULL;
			}
			char *pcookie = rc_status_cookie(pname, s->primary_cookie);
			v = rc_build_cookie(sa, pcookie, secs);
			json_object_set_new(find_dest(weighted, x->primary), "headers", set_cookie_headers(v));
			free(v);
			sticky_primary = json_copy(weighted);
			json_t *pm = cookie_match(pcookie);
			json_object_set_new(sticky_primary, "match", merge_matches(pm, svc_match));
			json_decref(pm);
			json_object_set_new(sticky_primary, "route", two_way(x, 100, 0));
			free(pcookie);
		}
		json_t *cm = cookie_match(cookie);
		json_object_set_new(sticky, "match", merge_matches(cm, svc_match));
		json_decref(cm);
		json_object_set_new(sticky, "route", two_way(x, 0, 100));
		json_array_append_new(list, sticky);
		if (sticky_primary)
			json_array_append_new(list, sticky_primary);
		json_array_append(list, weighted);
		free(cookie);
		return list;
	}
	/* weight 0: the cookie of the run that ended is expired */
	if (s->cookie) {
		char *prev = rc_status_cookie(name, s->cookie);
		json_t *cm = cookie_match(prev);
		json_object_set_new(sticky, "match", merge_matches(cm, svc_match));
		json_decref(cm);
		json_t *h = json_object_get(sticky, "headers");
		if (!h) {
			h = json_pack("{s:{s:{}}}", "response", "add");
			json_object_set_new(sticky, "headers", h);
		} else if (!json_object_get(h, "response")) {
			json_object_set_new(h, "response", json_pack("{s:{}}", "add"));
		} else if (!json_object_get(json_object_get(h, "response"), "add")) {
			json_object_set_new(json_object_get(h, "response"), "add", json_object());
		}
		buf b = BUF_INIT;
		buf_printf(&b, "%s; Max-Age=-1", prev);
		json_object_set_new(json_object_get(json_object_get(h, "response"), "add"), "Set-Cookie",
		                    json_string(b.p));
		buf_release(&b);
		free(prev);
	}
	json_array_append_new(list, sticky);
	json_array_append(list, weighted);
	return list;
}

/* ---- the objects ---- */

static void destination_rule(rctx *x, const char *name)
{
	json_t *spec = json_object();
	json_object_set_new(spec, "host", json_string(name));
	json_t *tp = gv_get(x->svc, "trafficPolicy");
	if (tp)
		json_object_set(spec, "trafficPolicy", tp);
	rc_emit(x, x->tgt.api_version, "DestinationRule", rc_metadata(x, name, NULL, NULL),
	        rd_marshal(spec, &t_dr_spec));
	json_decref(spec);
}

static bool list_has(const json_t *list, const char *a, const char *b)
{
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v) {
		const char *s = json_string_value(v);
		if (!strcmp(s, a) || (b && !strcmp(s, b)))
			return true;
	}
	return false;
}

void render_istio(rctx *x)
{
	const render_split *s = x->split;
	const json_t *svc_hosts = gv_get(x->svc, "hosts");
	const json_t *svc_gateways = gv_get(x->svc, "gateways");
	bool delegation = gv_bool(x->svc, "delegation");
	if (delegation && (json_array_size(svc_hosts) || json_array_size(svc_gateways))) {
		rc_error(x, "spec.service.delegation: a delegate VirtualService cannot have hosts or "
		         "gateways; remove spec.service.hosts and spec.service.gateways");
		return;
	}
	destination_rule(x, x->canary);
	destination_rule(x, x->primary);

	json_t *spec = json_object();
	json_t *hosts = svc_hosts ? json_copy((json_t *)svc_hosts) : json_array();
	if (!list_has(hosts, x->apex, "*"))
		json_array_append_new(hosts, json_string(x->apex));
	json_t *gateways = svc_gateways ? json_copy((json_t *)svc_gateways) : json_array();
	if (!list_has(gateways, "mesh", NULL) && json_array_size(svc_gateways) == 0)
		json_array_append_new(gateways, json_string("mesh"));
	if (delegation) {
		json_array_clear(hosts);
		json_array_clear(gateways);
	}
	json_object_set_new(spec, "hosts", hosts);
	json_object_set_new(spec, "gateways", gateways);

	int w = s->weight, pw = 100 - s->weight;
	json_t *svc_match = gv_get(x->svc, "match");
	if (!strcasecmp(gv_str(x->svc, "appProtocol"), "tcp")) {
		/* SetRoutes returns after writing the tcp route: no A/B, mirror
		 * or session affinity for TCP */
		json_t *tcp = json_object();
		if (json_array_size(svc_match)) {
			json_t *l4 = json_array();
			size_t i;
			json_t *m;
			json_array_foreach(svc_match, i, m)
				json_array_append_new(l4, json_pack("{s:I}", "port",
				                                    (json_int_t)gv_int(m, "port")));
			json_object_set_new(tcp, "match", l4);
		}
		json_object_set_new(tcp, "route", two_way(x, pw, w));
		json_object_set_new(spec, "tcp", json_pack("[o]", tcp));
		if (json_array_size(gv_get(x->an, "match")) || s->mirror || gv_get(x->an, "sessionAffinity"))
			rc_note(x, "spec.service.appProtocol tcp: Flagger's TCP route has no A/B match, "
			        "mirror or session affinity; none is rendered");
	} else {
		json_t *weighted = http_route(x, svc_match, two_way(x, pw, w));
		json_t *http = NULL;
		if (gv_get(x->an, "sessionAffinity")) {
			http = affinity_routes(x, weighted);
			if (!http) {
				json_decref(weighted);
				json_decref(spec);
				return;
			}
		} else {
			http = json_pack("[O]", weighted);
		}
		if (s->mirror) {
			json_t *first = json_array_get(http, 0);
			json_object_set_new(first, "mirror", json_pack("{s:s}", "host", x->canary));
			long long mw = gv_int(x->an, "mirrorWeight");
			if (mw > 0)
				json_object_set_new(first, "mirrorPercentage", json_pack("{s:I}", "value",
				                                                         (json_int_t)mw));
		}
		json_t *amatch = gv_get(x->an, "match");
		if (json_array_size(amatch)) {
			/* A/B: the merged matches get the split, the service's own
			 * match the primary alone, at the primary's weight (at an
			 * iteration that is 0: Istio sends all of a route with one
			 * destination to it, whatever its weight) */
			json_decref(http);
			http = json_array();
			json_t *merged = merge_matches(amatch, svc_match);
			json_array_append_new(http, http_route(x, merged, two_way(x, pw, w)));
			json_decref(merged);
			json_t *one = json_array();
			json_array_append_new(one, destination(x, x->primary, pw));
			json_array_append_new(http, http_route(x, svc_match, one));
		}
		json_decref(weighted);
		json_object_set_new(spec, "http", http);
	}

	json_t *labels, *annotations;
	rc_apex_metadata(x, &labels, &annotations);
	rc_emit(x, x->tgt.api_version, "VirtualService", rc_metadata(x, x->apex, labels, annotations),
	        rd_marshal(spec, &t_vs_spec));
	json_decref(labels);
	json_decref(annotations);
	json_decref(spec);
}
