/* render.c - the Canary as Flagger reads it, the provider mapping, and
 * what every router shares (render.h, render_int.h).
 *
 * Why descriptors and not "copy the user's JSON": Flagger never sees the
 * file. The API server prunes what the Canary CRD does not declare and
 * fills in its defaults; Flagger decodes the result into Go structs, which
 * drop what the struct lacks, and encodes its objects back with
 * encoding/json, which writes zero values of fields without omitempty
 * (retries.attempts: 0, trafficPolicy.tls.mode: "") and sorts map keys. A
 * copy would keep fields Flagger drops and lose fields Flagger writes. The
 * rows below are the intersection of the Canary CRD (artifacts/flagger/
 * crd.yaml) and the Go types (pkg/apis/istio/v1beta1, pkg/apis/gatewayapi,
 * pkg/apis/flagger/v1beta1) at Flagger v1.44.0, field by field, in Go's
 * declaration order (the order encoding/json writes). */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "render_int.h"

#define MAX_ERRORS 50
#define MAX_NOTES 50
#define PATH_MAX_LEN 512

/* A field of the Go struct that the Canary CRD does not declare at this
 * place (pruned on the way in) but that encoding/json writes when set:
 * StringMatch.suffix in service.match, set only through analysis.match. */
#define RD_GOONLY 8u
/* Declared by the CRD but missing from Flagger's Go struct: decoding
 * drops it (noted). */
#define RD_DROPPED 16u

/* ---- the Go types ---- */

const rd_type rd_str = { .kind = RD_STR };
const rd_type rd_bool = { .kind = RD_BOOL };
const rd_type rd_i32 = { .kind = RD_INT, .min = INT32_MIN, .max = INT32_MAX };
const rd_type rd_u32 = { .kind = RD_INT, .min = 0, .max = UINT32_MAX };
const rd_type rd_int = { .kind = RD_INT, .min = INT64_MIN, .max = INT64_MAX };
static const rd_type t_u64 = { .kind = RD_INT, .min = 0, .max = INT64_MAX };
static const rd_type t_port = { .kind = RD_INT, .min = 1, .max = 65535 };
static const rd_type t_skip = { .kind = RD_SKIP };
const rd_type rd_str_list = { .kind = RD_LIST, .elem = &rd_str };
const rd_type rd_str_map = { .kind = RD_MAP, .elem = &rd_str };
static const rd_type t_u32_map = { .kind = RD_MAP, .elem = &rd_u32 };

/* Counts the members of <v> among <keys>. */
static int count_keys(const json_t *v, const char *const *keys)
{
	int n = 0;
	for (; *keys; keys++)
		n += json_object_get(v, *keys) != NULL;
	return n;
}

static const char *const sm_keys[] = { "exact", "prefix", "suffix", "regex", NULL };

/* The CRD's oneOf: none or one of exact, prefix, regex. */
static const char *check_sm_optional(const json_t *v)
{
	return count_keys(v, sm_keys) > 1 ? "exact, prefix and regex are alternatives: give one" : NULL;
}

/* The CRD's oneOf without the "none" alternative. */
static const char *check_sm_one(const json_t *v)
{
	return count_keys(v, sm_keys) != 1 ? "give exactly one of exact, prefix, suffix, regex" : NULL;
}

static const char *check_sm_one_nosuffix(const json_t *v)
{
	return count_keys(v, sm_keys) != 1 ? "give exactly one of exact, prefix, regex" : NULL;
}

/* istio common/v1alpha1.StringMatch; suffix exists in the Go type only
 * (and in the CRD only under analysis.match[].headers). */
static const rd_field sm_fields[] = {
	{ "exact", &rd_str, RD_OMIT, NULL },
	{ "prefix", &rd_str, RD_OMIT, NULL },
	{ "suffix", &rd_str, RD_OMIT | RD_GOONLY, NULL },
	{ "regex", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_field sm_fields_suffix[] = {
	{ "exact", &rd_str, RD_OMIT, NULL },
	{ "prefix", &rd_str, RD_OMIT, NULL },
	{ "suffix", &rd_str, RD_OMIT, NULL },
	{ "regex", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_sm = { .kind = RD_STRUCT, .fields = sm_fields, .check = check_sm_optional };
static const rd_type t_sm_map = { .kind = RD_MAP, .elem = &t_sm };
static const rd_type t_sm_suffix = { .kind = RD_STRUCT, .fields = sm_fields_suffix,
                                     .check = check_sm_one };
static const rd_type t_sm_suffix_map = { .kind = RD_MAP, .elem = &t_sm_suffix };
static const rd_type t_sm_cors = { .kind = RD_STRUCT, .fields = sm_fields,
                                   .check = check_sm_one_nosuffix };
static const rd_type t_sm_cors_list = { .kind = RD_LIST, .elem = &t_sm_cors };

/* istio v1beta1.HTTPMatchRequest (spec.service.match[]) */
static const rd_field match_fields[] = {
	{ "name", &rd_str, RD_OMIT, NULL },
	{ "uri", &t_sm, RD_OMIT | RD_PTR, NULL },
	{ "scheme", &t_sm, RD_OMIT | RD_PTR, NULL },
	{ "method", &t_sm, RD_OMIT | RD_PTR, NULL },
	{ "authority", &t_sm, RD_OMIT | RD_PTR, NULL },
	{ "headers", &t_sm_map, RD_OMIT, NULL },
	{ "port", &rd_u32, RD_OMIT, NULL },
	{ "sourceLabels", &rd_str_map, RD_OMIT, NULL },
	{ "gateways", &rd_str_list, RD_OMIT, NULL },
	{ "queryParams", &t_sm_map, RD_OMIT, NULL },
	{ "ignoreUriCase", &rd_bool, RD_OMIT, NULL },
	{ "withoutHeaders", &t_sm_map, RD_OMIT, NULL },
	{ "sourceNamespace", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
const rd_type rd_match = { .kind = RD_STRUCT, .fields = match_fields };
const rd_type rd_match_list = { .kind = RD_LIST, .elem = &rd_match };

/* spec.analysis.match[]: the same Go type, of which the CRD keeps three
 * fields (headers may use suffix here) */
static const rd_field amatch_fields[] = {
	{ "headers", &t_sm_suffix_map, RD_OMIT, NULL },
	{ "sourceLabels", &rd_str_map, RD_OMIT, NULL },
	{ "queryParams", &t_sm_map, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_amatch = { .kind = RD_STRUCT, .fields = amatch_fields };
static const rd_type t_amatch_list = { .kind = RD_LIST, .elem = &t_amatch };

/* istio v1beta1.HTTPRetry: attempts has no omitempty */
static const rd_field retry_fields[] = {
	{ "attempts", &rd_i32, 0, NULL },
	{ "perTryTimeout", &rd_str, RD_OMIT, NULL },
	{ "retryOn", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
const rd_type rd_retry = { .kind = RD_STRUCT, .fields = retry_fields };

/* flagger v1beta1.HTTPRewrite */
static const rd_field rewrite_fields[] = {
	{ "uri", &rd_str, RD_OMIT, NULL },
	{ "authority", &rd_str, RD_OMIT, NULL },
	{ "type", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_rewrite = { .kind = RD_STRUCT, .fields = rewrite_fields };

/* istio v1beta1.Headers, HeaderOperations */
static const rd_field hops_fields[] = {
	{ "set", &rd_str_map, RD_OMIT, NULL },
	{ "add", &rd_str_map, RD_OMIT, NULL },
	{ "remove", &rd_str_list, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_hops = { .kind = RD_STRUCT, .fields = hops_fields };
static const rd_field headers_fields[] = {
	{ "request", &t_hops, RD_OMIT | RD_PTR, NULL },
	{ "response", &t_hops, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
const rd_type rd_headers = { .kind = RD_STRUCT, .fields = headers_fields };

/* istio v1beta1.CorsPolicy */
static const rd_field cors_fields[] = {
	{ "allowOrigin", &rd_str_list, RD_OMIT, NULL },
	{ "allowOrigins", &t_sm_cors_list, RD_OMIT, NULL },
	{ "allowMethods", &rd_str_list, RD_OMIT, NULL },
	{ "allowHeaders", &rd_str_list, RD_OMIT, NULL },
	{ "exposeHeaders", &rd_str_list, RD_OMIT, NULL },
	{ "maxAge", &rd_str, RD_OMIT, NULL },
	{ "allowCredentials", &rd_bool, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
const rd_type rd_cors = { .kind = RD_STRUCT, .fields = cors_fields };

/* istio v1beta1.TrafficPolicy (DestinationRule), as far as the Canary CRD
 * declares it: no connectionPool.tcp, no portLevelSettings */
static const char *const lb_simple[] = { "ROUND_ROBIN", "LEAST_CONN", "RANDOM", "PASSTHROUGH",
                                         "LEAST_REQUEST", NULL };
static const char *const h2_policies[] = { "DEFAULT", "DO_NOT_UPGRADE", "UPGRADE", NULL };
static const char *const tls_modes[] = { "DISABLE", "SIMPLE", "MUTUAL", "ISTIO_MUTUAL", NULL };
static const rd_type t_lb_simple = { .kind = RD_STR, .enums = lb_simple };
static const rd_type t_h2 = { .kind = RD_STR, .enums = h2_policies };
static const rd_type t_tls_mode = { .kind = RD_STR, .enums = tls_modes };

static const rd_field cookie_fields[] = {
	{ "name", &rd_str, 0, NULL },
	{ "path", &rd_str, RD_OMIT, NULL },
	{ "ttl", &rd_str, 0, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_http_cookie = { .kind = RD_STRUCT, .fields = cookie_fields };
static const rd_field chash_fields[] = {
	{ "httpHeaderName", &rd_str, RD_OMIT, NULL },
	{ "httpCookie", &t_http_cookie, RD_OMIT | RD_PTR, NULL },
	{ "useSourceIp", &rd_bool, RD_OMIT, NULL },
	{ "minimumRingSize", &t_u64, RD_OMIT, NULL },
	{ "httpQueryParameterName", &rd_str, RD_DROPPED, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_chash = { .kind = RD_STRUCT, .fields = chash_fields };
static const rd_field distribute_fields[] = {
	{ "from", &rd_str, RD_OMIT, NULL },
	{ "to", &t_u32_map, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_distribute = { .kind = RD_STRUCT, .fields = distribute_fields };
static const rd_type t_distribute_list = { .kind = RD_LIST, .elem = &t_distribute };
static const rd_field failover_fields[] = {
	{ "from", &rd_str, RD_OMIT, NULL },
	{ "to", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_failover = { .kind = RD_STRUCT, .fields = failover_fields };
static const rd_type t_failover_list = { .kind = RD_LIST, .elem = &t_failover };
static const rd_field locality_fields[] = {
	{ "distribute", &t_distribute_list, RD_OMIT, NULL },
	{ "failover", &t_failover_list, RD_OMIT, NULL },
	{ "enabled", &rd_bool, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_locality = { .kind = RD_STRUCT, .fields = locality_fields };
static const rd_field lb_fields[] = {
	{ "simple", &t_lb_simple, RD_OMIT, NULL },
	{ "consistentHash", &t_chash, RD_OMIT | RD_PTR, NULL },
	{ "localityLbSetting", &t_locality, RD_OMIT | RD_PTR, NULL },
	{ "warmupDurationSecs", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_lb = { .kind = RD_STRUCT, .fields = lb_fields };
static const rd_field http_settings_fields[] = {
	{ "h2UpgradePolicy", &t_h2, RD_OMIT, NULL },
	{ "http1MaxPendingRequests", &rd_i32, RD_OMIT, NULL },
	{ "http2MaxRequests", &rd_i32, RD_OMIT, NULL },
	{ "maxRequestsPerConnection", &rd_i32, RD_OMIT, NULL },
	{ "maxRetries", &rd_i32, RD_OMIT, NULL },
	{ "idleTimeout", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_http_settings = { .kind = RD_STRUCT, .fields = http_settings_fields };
static const rd_field pool_fields[] = {
	{ "http", &t_http_settings, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_pool = { .kind = RD_STRUCT, .fields = pool_fields };
static const rd_field outlier_fields[] = {
	{ "consecutiveErrors", &rd_i32, RD_OMIT, NULL },
	{ "consecutiveGatewayErrors", &rd_u32, RD_OMIT | RD_PTR, NULL },
	{ "consecutive5xxErrors", &rd_u32, RD_OMIT | RD_PTR, NULL },
	{ "splitExternalLocalOriginErrors", &rd_bool, RD_OMIT, NULL },
	{ "consecutiveLocalOriginFailures", &rd_u32, RD_OMIT | RD_PTR, NULL },
	{ "interval", &rd_str, RD_OMIT, NULL },
	{ "baseEjectionTime", &rd_str, RD_OMIT, NULL },
	{ "maxEjectionPercent", &rd_i32, RD_OMIT, NULL },
	{ "minHealthPercent", &rd_i32, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_outlier = { .kind = RD_STRUCT, .fields = outlier_fields };
static const rd_field tls_fields[] = {
	{ "mode", &t_tls_mode, 0, NULL },
	{ "clientCertificate", &rd_str, RD_OMIT, NULL },
	{ "privateKey", &rd_str, RD_OMIT, NULL },
	{ "caCertificates", &rd_str, RD_OMIT, NULL },
	{ "subjectAltNames", &rd_str_list, RD_OMIT, NULL },
	{ "sni", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_tls = { .kind = RD_STRUCT, .fields = tls_fields };
static const rd_field policy_fields[] = {
	{ "loadBalancer", &t_lb, RD_OMIT | RD_PTR, NULL },
	{ "connectionPool", &t_pool, RD_OMIT | RD_PTR, NULL },
	{ "outlierDetection", &t_outlier, RD_OMIT | RD_PTR, NULL },
	{ "tls", &t_tls, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
const rd_type rd_traffic_policy = { .kind = RD_STRUCT, .fields = policy_fields };

/* gatewayapi v1beta1.ParentReference, with the Canary CRD's defaults */
static const rd_field parent_fields[] = {
	{ "group", &rd_str, RD_OMIT | RD_PTR, "gateway.networking.k8s.io" },
	{ "kind", &rd_str, RD_OMIT | RD_PTR, "Gateway" },
	{ "namespace", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "name", &rd_str, RD_REQ, NULL },
	{ "sectionName", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "port", &t_port, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
const rd_type rd_parent_ref = { .kind = RD_STRUCT, .fields = parent_fields };
static const rd_type t_parent_list = { .kind = RD_LIST, .elem = &rd_parent_ref, .max_items = 32 };

/* The CRD's rule on a mirror's backendRef. */
static const char *check_backend(const json_t *v)
{
	const char *g = json_string_value(json_object_get(v, "group"));
	const char *k = json_string_value(json_object_get(v, "kind"));
	if (g && k && !*g && !strcmp(k, "Service") && !json_object_get(v, "port"))
		return "must have port for Service reference";
	return NULL;
}

/* gatewayapi v1beta1.BackendObjectReference, HTTPRequestMirrorFilter */
static const rd_field backend_fields[] = {
	{ "group", &rd_str, RD_OMIT | RD_PTR, "" },
	{ "kind", &rd_str, RD_OMIT | RD_PTR, "Service" },
	{ "name", &rd_str, RD_REQ, NULL },
	{ "namespace", &rd_str, RD_OMIT | RD_PTR, NULL },
	{ "port", &t_port, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_backend = { .kind = RD_STRUCT, .fields = backend_fields,
                                   .check = check_backend };
static const rd_field mirror_fields[] = {
	{ "backendRef", &t_backend, RD_REQ, NULL },
	{ NULL, NULL, 0, NULL },
};
const rd_type rd_mirror_filter = { .kind = RD_STRUCT, .fields = mirror_fields };
static const rd_type t_mirror_list = { .kind = RD_LIST, .elem = &rd_mirror_filter };

/* flagger v1beta1.CustomMetadata */
static const rd_field meta_fields[] = {
	{ "labels", &rd_str_map, RD_OMIT, NULL },
	{ "annotations", &rd_str_map, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_custom_meta = { .kind = RD_STRUCT, .fields = meta_fields };

/* flagger v1beta1.CanaryService: what the routers read, and the rest of
 * the CRD's fields skipped without a note */
static const rd_field service_fields[] = {
	{ "name", &rd_str, RD_OMIT, NULL },
	{ "port", &rd_i32, RD_REQ, NULL },
	{ "portName", &t_skip, 0, NULL },
	{ "targetPort", &t_skip, 0, NULL },
	{ "appProtocol", &rd_str, RD_OMIT, NULL },
	{ "trafficDistribution", &t_skip, 0, NULL },
	{ "portDiscovery", &rd_bool, 0, NULL },
	{ "headless", &t_skip, 0, NULL },
	{ "timeout", &rd_str, RD_OMIT, NULL },
	{ "backendTimeout", &rd_str, RD_OMIT, NULL },
	{ "gateways", &rd_str_list, RD_OMIT, NULL },
	{ "gatewayRefs", &t_parent_list, RD_OMIT, NULL },
	{ "hosts", &rd_str_list, RD_OMIT, NULL },
	{ "delegation", &rd_bool, RD_OMIT, NULL },
	{ "trafficPolicy", &rd_traffic_policy, RD_OMIT | RD_PTR, NULL },
	{ "match", &rd_match_list, RD_OMIT, NULL },
	{ "rewrite", &t_rewrite, RD_OMIT | RD_PTR, NULL },
	{ "retries", &rd_retry, RD_OMIT | RD_PTR, NULL },
	{ "headers", &rd_headers, RD_OMIT | RD_PTR, NULL },
	{ "mirror", &t_mirror_list, RD_OMIT, NULL },
	{ "corsPolicy", &rd_cors, RD_OMIT | RD_PTR, NULL },
	{ "meshName", &t_skip, 0, NULL },
	{ "backends", &t_skip, 0, NULL },
	{ "apex", &t_custom_meta, RD_OMIT | RD_PTR, NULL },
	{ "primary", &t_skip, 0, NULL },
	{ "canary", &t_skip, 0, NULL },
	{ "unmanagedMetadata", &t_skip, 0, NULL },
	{ NULL, NULL, 0, NULL },
};
const rd_type rd_service = { .kind = RD_STRUCT, .fields = service_fields };

/* flagger v1beta1.SessionAffinity */
static const char *const same_site[] = { "Strict", "Lax", "None", NULL };
static const rd_type t_same_site = { .kind = RD_STR, .enums = same_site };
static const rd_field affinity_fields[] = {
	{ "cookieName", &rd_str, RD_OMIT | RD_REQ, NULL },
	{ "domain", &rd_str, RD_OMIT, NULL },
	{ "httpOnly", &rd_bool, RD_OMIT, NULL },
	{ "maxAge", &rd_int, RD_OMIT, NULL },
	{ "partitioned", &rd_bool, RD_OMIT, NULL },
	{ "path", &rd_str, RD_OMIT, NULL },
	{ "sameSite", &t_same_site, RD_OMIT, NULL },
	{ "secure", &rd_bool, RD_OMIT, NULL },
	{ "primaryCookieName", &rd_str, RD_OMIT, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_affinity = { .kind = RD_STRUCT, .fields = affinity_fields };

/* flagger v1beta1.CanaryAnalysis: the fields the routers read; the rest is
 * the config loader's (config.c) and is skipped quietly */
static const rd_field analysis_fields[] = {
	{ "interval", &rd_str, 0, NULL },
	{ "iterations", &rd_int, RD_OMIT, NULL },
	{ "mirror", &rd_bool, RD_OMIT, NULL },
	{ "mirrorWeight", &rd_int, RD_OMIT, NULL },
	{ "match", &t_amatch_list, RD_OMIT, NULL },
	{ "sessionAffinity", &t_affinity, RD_OMIT | RD_PTR, NULL },
	{ NULL, NULL, 0, NULL },
};
static const rd_type t_analysis = { .kind = RD_STRUCT, .fields = analysis_fields, .quiet = true };

/* ---- messages ---- */

/* Appends the message <fmt> to <arr>, up to <max> of them and then one
 * line saying that the rest of the <what> are not shown. */
static void add_message(json_t *arr, size_t max, const char *what, const char *fmt,
                        va_list ap)
{
	size_t n = json_array_size(arr);
	if (n > max)
		return;
	char msg[1024];
	if (n == max)
		snprintf(msg, sizeof msg, "more than %zu %s; the rest are not shown", max, what);
	else
		vsnprintf(msg, sizeof msg, fmt, ap);
	json_array_append_new(arr, json_string(msg));
}

void rc_error(rctx *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_message(x->errors, MAX_ERRORS, "errors", fmt, ap);
	va_end(ap);
}

void rc_note(rctx *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	add_message(x->notes, MAX_NOTES, "notes", fmt, ap);
	va_end(ap);
}

void rc_shown(buf *b, const char *s)
{
	buf_puts(b, ""); /* b->p is a string even for "" */
	size_t i = 0;
	for (; s[i] && i < 80; i++) {
		unsigned char c = (unsigned char)s[i];
		unsigned char next = (unsigned char)s[i + 1];
		if (c < 0x20 || c == 0x7f || c == '\\') {
			buf_printf(b, "\\x%02x", c);
		} else if (c == 0xc2 && next >= 0x80 && next <= 0x9f) {
			buf_printf(b, "\\x%02x", next); /* C1, as UTF-8 */
			i++;
		} else {
			/* never cut inside a UTF-8 sequence */
			if (i >= 76 && c >= 0xc0)
				break;
			buf_append(b, &s[i], 1);
		}
	}
	if (s[i])
		buf_puts(b, "...");
}

/* "<path>.<key>" (or "<path>[i]") into <out>, escaped. */
static void join_key(char *out, const char *path, const char *key)
{
	buf b = BUF_INIT;
	buf_puts(&b, path);
	buf_puts(&b, ".");
	rc_shown(&b, key);
	snprintf(out, PATH_MAX_LEN, "%s", b.p);
	buf_release(&b);
}

static const char *type_name(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT: return "a mapping";
	case JSON_ARRAY: return "a list";
	case JSON_STRING: return "a string";
	case JSON_INTEGER: return "an integer";
	case JSON_REAL: return "a number";
	case JSON_TRUE:
	case JSON_FALSE: return "a boolean";
	default: return "null";
	}
}

/* ---- decoding: the Canary as the API server hands it to Flagger ---- */

static json_t *decode(rctx *x, const json_t *in, const rd_type *t, const char *path);

static json_t *decode_int(rctx *x, const json_t *in, const rd_type *t, const char *path)
{
	long long v;
	if (json_is_integer(in)) {
		v = json_integer_value(in);
	} else if (json_is_real(in)) {
		/* the API server stores a number as float64 and serves 80.0 as
		 * 80, which Go then reads into an int; 80.5 fails that read */
		double d = json_real_value(in);
		if (d != (double)(long long)d || d < -9.2e18 || d > 9.2e18) {
			rc_error(x, "%s: must be a whole number, got %g", path, d);
			return NULL;
		}
		v = (long long)d;
	} else {
		rc_error(x, "%s: must be an integer, got %s", path, type_name(in));
		return NULL;
	}
	if (v < t->min || v > t->max) {
		rc_error(x, "%s: must be an integer from %lld to %lld, got %lld", path, t->min,
		         t->max, v);
		return NULL;
	}
	return json_integer(v);
}

static json_t *decode_str(rctx *x, const json_t *in, const rd_type *t, const char *path)
{
	if (!json_is_string(in)) {
		rc_error(x, "%s: must be a string, got %s", path, type_name(in));
		return NULL;
	}
	if (t->enums) {
		const char *s = json_string_value(in);
		const char *const *e = t->enums;
		while (*e && strcmp(*e, s))
			e++;
		if (!*e) {
			buf b = BUF_INIT;
			for (e = t->enums; *e; e++)
				buf_printf(&b, "%s%s", e == t->enums ? "" : ", ", *e);
			buf_puts(&b, ", got '");
			rc_shown(&b, s);
			rc_error(x, "%s: must be one of %s'", path, b.p);
			buf_release(&b);
			return NULL;
		}
	}
	return json_incref((json_t *)in);
}

static json_t *decode_struct(rctx *x, const json_t *in, const rd_type *t, const char *path)
{
	if (!json_is_object(in)) {
		rc_error(x, "%s: must be a mapping, got %s", path, type_name(in));
		return NULL;
	}
	json_t *out = json_object();
	const char *k;
	json_t *v;
	char p[PATH_MAX_LEN];
	json_object_foreach((json_t *)in, k, v) {
		const rd_field *f = t->fields;
		while (f->name && strcmp(f->name, k))
			f++;
		join_key(p, path, k);
		if (!f->name || (f->flags & RD_GOONLY)) {
			if (!t->quiet)
				rc_note(x, "%s: not a field of Flagger's Canary here; left out (Kubernetes "
				        "prunes it)", p);
			continue;
		}
		if (f->flags & RD_DROPPED) {
			rc_note(x, "%s: Flagger v1.44.0 reads no such field (its Go type lacks it); "
			        "left out", p);
			continue;
		}
		if (f->type->kind == RD_SKIP)
			continue;
		json_t *d = decode(x, v, f->type, p);
		if (d)
			json_object_set_new(out, f->name, d);
	}
	for (const rd_field *f = t->fields; f->name; f++) {
		const json_t *given = json_object_get(in, f->name);
		if (json_object_get(out, f->name) || (given && !json_is_null(given)))
			continue; /* read, or reported already */
		if (f->dflt) {
			json_object_set_new(out, f->name, json_string(f->dflt));
		} else if (f->flags & RD_REQ) {
			join_key(p, path, f->name);
			rc_error(x, "%s: required", p);
		}
	}
	const char *why = t->check ? t->check(out) : NULL;
	if (why) {
		rc_error(x, "%s: %s", path, why);
		json_decref(out);
		return NULL;
	}
	return out;
}

static json_t *decode(rctx *x, const json_t *in, const rd_type *t, const char *path)
{
	char p[PATH_MAX_LEN];
	if (!in || json_is_null(in))
		return NULL; /* the API server prunes nulls: absent */
	switch (t->kind) {
	case RD_STR:
		return decode_str(x, in, t, path);
	case RD_BOOL:
		if (!json_is_boolean(in)) {
			rc_error(x, "%s: must be true or false, got %s", path, type_name(in));
			return NULL;
		}
		return json_incref((json_t *)in);
	case RD_INT:
		return decode_int(x, in, t, path);
	case RD_STRUCT:
		return decode_struct(x, in, t, path);
	case RD_MAP: {
		if (!json_is_object(in)) {
			rc_error(x, "%s: must be a mapping, got %s", path, type_name(in));
			return NULL;
		}
		json_t *out = json_object();
		const char *k;
		json_t *v;
		json_object_foreach((json_t *)in, k, v) {
			join_key(p, path, k);
			json_t *d = decode(x, v, t->elem, p);
			if (d)
				json_object_set_new(out, k, d);
		}
		return out;
	}
	case RD_LIST: {
		if (!json_is_array(in)) {
			rc_error(x, "%s: must be a list, got %s", path, type_name(in));
			return NULL;
		}
		if (t->max_items && json_array_size(in) > t->max_items) {
			rc_error(x, "%s: at most %zu items, got %zu", path, t->max_items,
			         json_array_size(in));
			return NULL;
		}
		json_t *out = json_array();
		size_t i;
		json_t *v;
		json_array_foreach(in, i, v) {
			snprintf(p, sizeof p, "%s[%zu]", path, i);
			if (json_is_null(v)) {
				rc_error(x, "%s: must not be null", p);
				continue;
			}
			json_t *d = decode(x, v, t->elem, p);
			if (d)
				json_array_append_new(out, d);
		}
		return out;
	}
	case RD_SKIP:
		return NULL;
	}
	return NULL;
}

/* ---- marshalling: Go's encoding/json ---- */

static json_t *zero_value(const rd_type *t)
{
	switch (t->kind) {
	case RD_STR: return json_string("");
	case RD_BOOL: return json_false();
	case RD_INT: return json_integer(0);
	case RD_STRUCT: return rd_marshal(NULL, t);
	default: return json_null(); /* a nil map or slice */
	}
}

/* encoding/json's isEmptyValue for the kinds a Go value holds here */
static bool is_empty(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_STRING: return json_string_length(v) == 0;
	case JSON_INTEGER: return json_integer_value(v) == 0;
	case JSON_FALSE: return true;
	case JSON_ARRAY: return json_array_size(v) == 0;
	case JSON_OBJECT: return false; /* a struct is never empty */
	default: return false;
	}
}

static int cmp_keys(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

json_t *rd_marshal(const json_t *v, const rd_type *t)
{
	switch (t->kind) {
	case RD_STRUCT: {
		json_t *out = json_object();
		for (const rd_field *f = t->fields; f->name; f++) {
			const json_t *fv = json_object_get(v, f->name);
			if (f->flags & RD_DROPPED)
				continue; /* not a field of the Go type */
			if (fv) {
				bool empty = f->type->kind == RD_MAP ? json_object_size(fv) == 0 : is_empty(fv);
				if ((f->flags & RD_OMIT) && !(f->flags & RD_PTR) && empty)
					continue;
				json_object_set_new(out, f->name, rd_marshal(fv, f->type));
			} else if (f->flags & RD_OMIT) {
				continue;
			} else if (f->flags & RD_PTR) {
				json_object_set_new(out, f->name, json_null());
			} else {
				json_object_set_new(out, f->name, zero_value(f->type));
			}
		}
		return out;
	}
	case RD_MAP: {
		if (!v)
			return json_null();
		size_t n = json_object_size(v), i = 0;
		const char **keys = xcalloc(n ? n : 1, sizeof *keys);
		const char *k;
		json_t *e;
		json_object_foreach((json_t *)v, k, e)
			keys[i++] = k;
		qsort(keys, n, sizeof *keys, cmp_keys);
		json_t *out = json_object();
		for (i = 0; i < n; i++)
			json_object_set_new(out, keys[i], rd_marshal(json_object_get(v, keys[i]), t->elem));
		free(keys);
		return out;
	}
	case RD_LIST: {
		if (!v)
			return json_null();
		json_t *out = json_array();
		size_t i;
		json_t *e;
		json_array_foreach(v, i, e)
			json_array_append_new(out, rd_marshal(e, t->elem));
		return out;
	}
	default:
		return v ? json_incref((json_t *)v) : zero_value(t);
	}
}

/* ---- Go values ---- */

json_t *gv_get(const json_t *o, const char *key)
{
	return json_object_get(o, key);
}

const char *gv_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : "";
}

long long gv_int(const json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

bool gv_bool(const json_t *o, const char *key)
{
	return json_is_true(json_object_get(o, key));
}

size_t gv_len(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	return json_is_array(v) ? json_array_size(v) : json_object_size(v);
}

/* ---- objects ---- */

json_t *rc_metadata(const rctx *x, const char *name, json_t *labels, json_t *annotations)
{
	json_t *m = json_object();
	json_object_set_new(m, "name", json_string(name));
	if (x->ns)
		json_object_set_new(m, "namespace", json_string(x->ns));
	if (labels && json_object_size(labels))
		json_object_set(m, "labels", labels);
	if (annotations && json_object_size(annotations))
		json_object_set(m, "annotations", annotations);
	return m;
}

void rc_emit(rctx *x, const char *api, const char *kind, json_t *meta, json_t *spec)
{
	json_t *o = json_object();
	json_object_set_new(o, "apiVersion", json_string(api));
	json_object_set_new(o, "kind", json_string(kind));
	json_object_set_new(o, "metadata", meta);
	json_object_set_new(o, "spec", spec);
	json_array_append_new(x->out, o);
}

void rc_apex_metadata(const rctx *x, json_t **labels, json_t **annotations)
{
	const json_t *apex = gv_get(x->svc, "apex");
	json_t *l = gv_get(apex, "labels");
	*labels = l ? rd_marshal(l, &rd_str_map) : NULL;
	json_t *a = gv_get(apex, "annotations");
	json_t *ann = a ? json_deep_copy(a) : json_object();
	/* filterMetadata: Flux must not revert what Flagger manages */
	json_object_set_new(ann, "kustomize.toolkit.fluxcd.io/reconcile", json_string("disabled"));
	json_object_set_new(ann, "helm.toolkit.fluxcd.io/driftDetection", json_string("disabled"));
	*annotations = rd_marshal(ann, &rd_str_map);
	json_decref(ann);
}

/* ---- cookies and durations ---- */

char *rc_status_cookie(const char *name, const char *value)
{
	buf b = BUF_INIT;
	buf_printf(&b, "%s=%s", name, value);
	return b.p;
}

char *rc_build_cookie(const json_t *sa, const char *cookie, long long max_age)
{
	buf b = BUF_INIT;
	buf_printf(&b, "%s; Max-Age=%lld", cookie, max_age);
	if (*gv_str(sa, "domain"))
		buf_printf(&b, "; Domain=%s", gv_str(sa, "domain"));
	if (gv_bool(sa, "httpOnly"))
		buf_puts(&b, "; HttpOnly");
	if (gv_bool(sa, "partitioned"))
		buf_puts(&b, "; Partitioned");
	if (*gv_str(sa, "path"))
		buf_printf(&b, "; Path=%s", gv_str(sa, "path"));
	if (*gv_str(sa, "sameSite"))
		buf_printf(&b, "; SameSite=%s", gv_str(sa, "sameSite"));
	if (gv_bool(sa, "secure"))
		buf_puts(&b, "; Secure");
	return b.p;
}

char *rc_cookie_regex(const char *cookie)
{
	/* strings.Split(cookie, "=")[0] and [1] */
	const char *eq = strchr(cookie, '=');
	size_t klen = eq ? (size_t)(eq - cookie) : strlen(cookie);
	const char *val = eq ? eq + 1 : "";
	const char *eq2 = strchr(val, '=');
	size_t vlen = eq2 ? (size_t)(eq2 - val) : strlen(val);
	buf b = BUF_INIT;
	buf_printf(&b, ".*%.*s.*%.*s.*", (int)klen, cookie, (int)vlen, val);
	return b.p;
}

int rc_parse_go_duration(const char *s, long long *out)
{
	/* time.ParseDuration: [-+]?([0-9]*(\.[0-9]*)?[a-z]+)+, or "0" */
	static const struct { const char *unit; long long ns; } units[] = {
		{ "ns", 1LL }, { "us", 1000LL }, { "\xc2\xb5s", 1000LL }, { "\xce\xbcs", 1000LL },
		{ "ms", 1000000LL }, { "s", 1000000000LL }, { "m", 60000000000LL },
		{ "h", 3600000000000LL },
	};
	bool neg = false;
	if (*s == '-' || *s == '+')
		neg = *s++ == '-';
	if (!strcmp(s, "0")) {
		*out = 0;
		return 0;
	}
	if (!*s)
		return -1;
	double total = 0;
	while (*s) {
		if (!(isdigit((unsigned char)*s) || *s == '.'))
			return -1;
		double whole = 0, frac = 0, scale = 1;
		bool digits = false;
		while (isdigit((unsigned char)*s)) {
			whole = whole * 10 + (*s++ - '0');
			digits = true;
			if (whole > 1e19)
				return -1;
		}
		if (*s == '.') {
			s++;
			while (isdigit((unsigned char)*s)) {
				if (scale < 1e18) {
					scale *= 10;
					frac = frac * 10 + (*s - '0');
				}
				s++;
				digits = true;
			}
		}
		if (!digits)
			return -1;
		const char *u = s;
		while (*s && *s != '.' && !isdigit((unsigned char)*s))
			s++;
		size_t ulen = (size_t)(s - u);
		long long unit = 0;
		for (size_t i = 0; i < sizeof units / sizeof units[0]; i++)
			if (strlen(units[i].unit) == ulen && !memcmp(units[i].unit, u, ulen))
				unit = units[i].ns;
		if (!unit)
			return -1; /* missing or unknown unit */
		total += (whole + frac / scale) * (double)unit;
		if (total > 9.223372036854775807e18)
			return -1; /* overflows int64 nanoseconds */
	}
	*out = (long long)total * (neg ? -1 : 1);
	return 0;
}

int rc_interval_seconds(rctx *x, long long *secs)
{
	long long ns;
	const char *iv = gv_str(x->an, "interval");
	if (rc_parse_go_duration(iv, &ns) < 0) {
		buf b = BUF_INIT;
		rc_shown(&b, iv);
		rc_error(x, "spec.analysis.interval: '%s' is not a Go duration (sessionAffinity."
		         "primaryCookieName sets the primary cookie's Max-Age from it)", b.p ? b.p : "");
		buf_release(&b);
		return -1;
	}
	*secs = ns / 1000000000LL; /* int(d.Seconds()): towards zero */
	return 0;
}

/* ---- providers ---- */

static const char ROUTERS[] = "istio, gatewayapi (gatewayapi:v1, gatewayapi:v1beta1), "
                              "smi (linkerd, osm, smi:v1alpha1|v1alpha2|v1alpha3[:MESH])";

int render_target_of(const char *provider, render_target *t, char *note, size_t notelen,
                     char *err, size_t errlen)
{
	static const char *const theirs[] = { "appmesh", "contour", "gloo", "nginx", "skipper",
	                                      "traefik", "apisix", "kuma", "knative", NULL };
	memset(t, 0, sizeof *t);
	note[0] = '\0';
	const char *p = provider && *provider ? provider : "istio";
	if (!strcmp(p, "istio")) {
		t->router = RENDER_ISTIO;
		t->api_version = "networking.istio.io/v1beta1";
		return 0;
	}
	if (!strcmp(p, "gatewayapi") || !strcmp(p, "gatewayapi:v1")) {
		t->router = RENDER_GATEWAYAPI;
		t->api_version = "gateway.networking.k8s.io/v1";
		if (!strcmp(p, "gatewayapi"))
			snprintf(note, notelen, "provider 'gatewayapi' read as gatewayapi:v1 (HTTPRoute "
			         "gateway.networking.k8s.io/v1); Flagger itself knows no bare "
			         "'gatewayapi' and would fall back to istio");
		return 0;
	}
	if (!strcmp(p, "gatewayapi:v1beta1")) {
		t->router = RENDER_GATEWAYAPI;
		t->api_version = "gateway.networking.k8s.io/v1beta1";
		return 0;
	}
	if (!strcmp(p, "linkerd") || !strcmp(p, "osm")) {
		t->router = RENDER_SMI;
		t->api_version = p[0] == 'l' ? "split.smi-spec.io/v1alpha1" : "split.smi-spec.io/v1alpha2";
		snprintf(t->mesh, sizeof t->mesh, "%s", p);
		return 0;
	}
	if (!strcmp(p, "smi")) {
		t->router = RENDER_SMI;
		t->api_version = "split.smi-spec.io/v1alpha2";
		snprintf(note, notelen, "router 'smi' read as smi:v1alpha2 (TrafficSplit split."
		         "smi-spec.io/v1alpha2, integer weights); say smi:v1alpha1 for Linkerd's "
		         "string weights");
		return 0;
	}
	static const char *const smi[] = { "v1alpha1", "v1alpha2", "v1alpha3" };
	static const char *const smi_api[] = { "split.smi-spec.io/v1alpha1",
	                                       "split.smi-spec.io/v1alpha2",
	                                       "split.smi-spec.io/v1alpha3" };
	if (!strncmp(p, "smi:", 4)) {
		for (int i = 0; i < 3; i++) {
			size_t l = strlen(smi[i]);
			if (strncmp(p + 4, smi[i], l) || (p[4 + l] && p[4 + l] != ':'))
				continue;
			const char *mesh = p[4 + l] ? p + 5 + l : p; /* strings.TrimPrefix */
			if (strlen(mesh) >= sizeof t->mesh) {
				buf b = BUF_INIT;
				rc_shown(&b, p);
				snprintf(err, errlen, "provider '%s': the mesh name is longer than %zu "
				         "characters", b.p, sizeof t->mesh - 1);
				buf_release(&b);
				return -1;
			}
			t->router = RENDER_SMI;
			t->api_version = smi_api[i];
			snprintf(t->mesh, sizeof t->mesh, "%s", mesh);
			return 0;
		}
	}
	if (!strcmp(p, "kubernetes")) {
		snprintf(err, errlen, "provider 'kubernetes' switches Services only (blue/green): it "
		         "has no route object to render; the routers canaryd renders: %s", ROUTERS);
		return -1;
	}
	for (const char *const *o = theirs; *o; o++) {
		size_t l = strlen(*o);
		if (!strncmp(p, *o, l) && (!p[l] || p[l] == ':')) {
			buf b = BUF_INIT;
			rc_shown(&b, p);
			snprintf(err, errlen, "provider '%s' is Flagger's but canaryd does not render "
			         "it; the routers canaryd renders: %s", b.p, ROUTERS);
			buf_release(&b);
			return -1;
		}
	}
	buf b = BUF_INIT;
	rc_shown(&b, p);
	snprintf(err, errlen, "unknown provider '%s'; the routers canaryd renders: %s", b.p, ROUTERS);
	buf_release(&b);
	return -1;
}

/* ---- the rendering ---- */

/* Kubernetes Service names (RFC 1035 labels), short enough that
 * "<name>-primary" still is one. */
static bool service_name_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 - strlen("-primary") || !islower((unsigned char)s[0]) ||
	    s[n - 1] == '-')
		return false;
	for (; *s; s++)
		if (!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-')
			return false;
	return true;
}

/* RFC 1123 label (a namespace). */
static bool namespace_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63 || !isalnum((unsigned char)s[0]) || s[n - 1] == '-')
		return false;
	for (; *s; s++)
		if ((!islower((unsigned char)*s) && !isdigit((unsigned char)*s) && *s != '-'))
			return false;
	return true;
}

/* A cookie value fit for a regex and a Set-Cookie header as Flagger makes
 * them: Flagger draws 10 letters; letters and digits are accepted. */
static bool cookie_value_ok(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 64)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s))
			return false;
	return true;
}

static const char *doc_provider(rctx *x, const json_t *doc)
{
	const json_t *spec = json_object_get(doc, "spec");
	const char *api = json_string_value(json_object_get(doc, "apiVersion"));
	bool native = api && !strcmp(api, "canaryd/v1");
	const char *key = native ? "router" : "provider";
	const json_t *p = json_object_get(spec, key);
	if (p && !json_is_string(p)) {
		rc_error(x, "spec.%s: must be a string, got %s", key, type_name(p));
		return NULL;
	}
	if (!p)
		return native ? "builtin" : "istio"; /* Flagger's default -mesh-provider */
	return json_string_value(p);
}

int render_canary(const json_t *doc, const render_opts *o, render_result *r)
{
	memset(r, 0, sizeof *r);
	rctx x;
	memset(&x, 0, sizeof x);
	x.split = &o->split;
	x.errors = json_array();
	x.notes = json_array();
	x.out = json_array();
	r->errors = x.errors;
	r->notes = x.notes;

	if (!json_is_object(doc)) {
		rc_error(&x, "the document must be a mapping (a Canary), got %s", type_name(doc));
		json_decref(x.out);
		return -1;
	}
	const char *api = json_string_value(json_object_get(doc, "apiVersion"));
	bool native = api && !strcmp(api, "canaryd/v1");
	const char *provider = o->provider ? o->provider : doc_provider(&x, doc);
	if (provider && native && !o->provider &&
	    (!strcmp(provider, "builtin") || !strcmp(provider, "haproxy"))) {
		rc_error(&x, "spec.router: '%s' has no Kubernetes objects to render; the routers "
		         "canaryd renders: %s", provider[0] == 'b' ? "builtin" : "haproxy", ROUTERS);
		provider = NULL;
	}
	char note[512], err[512];
	if (provider) {
		if (render_target_of(provider, &x.tgt, note, sizeof note, err, sizeof err) < 0)
			rc_error(&x, "%s", err);
		else if (note[0])
			rc_note(&x, "%s", note);
	}
	r->target = x.tgt;

	const json_t *meta = json_object_get(doc, "metadata");
	const json_t *spec = json_object_get(doc, "spec");
	if (spec && !json_is_object(spec))
		rc_error(&x, "spec: must be a mapping, got %s", type_name(spec));
	const json_t *ns = json_object_get(meta, "namespace");
	if (ns && !json_is_null(ns)) {
		if (!json_is_string(ns) || !namespace_ok(json_string_value(ns)))
			rc_error(&x, "metadata.namespace: must be a namespace name (lower-case letters, "
			         "digits and '-', at most 63)");
		else
			x.ns = xstrdup(json_string_value(ns));
	}
	x.svc = decode(&x, json_object_get(spec, "service"), &rd_service, "spec.service");
	if (!x.svc)
		x.svc = json_object();
	x.an = decode(&x, json_object_get(spec, "analysis"), &t_analysis, "spec.analysis");
	if (!x.an)
		x.an = json_object();

	/* GetServiceNames: the apex is service.name, else targetRef.name (a
	 * canaryd/v1 document has neither: its own name) */
	const char *apex = gv_str(x.svc, "name");
	const char *from = "spec.service.name";
	if (!*apex) {
		const json_t *tn = json_object_get(json_object_get(spec, "targetRef"), "name");
		if (tn && !json_is_string(tn))
			rc_error(&x, "spec.targetRef.name: must be a string, got %s", type_name(tn));
		apex = json_is_string(tn) ? json_string_value(tn) : "";
		from = "spec.targetRef.name";
	}
	if (!*apex && native) {
		apex = json_is_string(json_object_get(meta, "name")) ?
		       json_string_value(json_object_get(meta, "name")) : "";
		from = "metadata.name";
	}
	if (!*apex) {
		rc_error(&x, "spec.targetRef.name: required (the Services are named after "
		         "spec.service.name, else spec.targetRef.name)");
	} else if (!service_name_ok(apex)) {
		buf b = BUF_INIT;
		rc_shown(&b, apex);
		rc_error(&x, "%s: '%s' cannot name the Services (lower-case letters, digits and '-', "
		         "starting with a letter, at most 55 so that '<name>-primary' fits in 63)",
		         from, b.p);
		buf_release(&b);
	} else {
		buf b = BUF_INIT;
		x.apex = xstrdup(apex);
		buf_printf(&b, "%s-primary", apex);
		x.primary = b.p;
		b = (buf)BUF_INIT;
		buf_printf(&b, "%s-canary", apex);
		x.canary = b.p;
	}

	const render_split *s = &o->split;
	if (s->weight < 0 || s->weight > 100)
		rc_error(&x, "weight: must be from 0 to 100, got %d", s->weight);
	const json_t *sa = gv_get(x.an, "sessionAffinity");
	if (sa && x.tgt.router != RENDER_SMI) {
		if (s->cookie && !cookie_value_ok(s->cookie))
			rc_error(&x, "cookie value: must be 1 to 64 letters or digits (Flagger draws 10 "
			         "letters)");
		if (s->primary_cookie && !cookie_value_ok(s->primary_cookie))
			rc_error(&x, "primary cookie value: must be 1 to 64 letters or digits (Flagger "
			         "draws 10 letters)");
		if (s->weight > 0 && !s->cookie)
			rc_error(&x, "spec.analysis.sessionAffinity: the canary cookie's value is needed "
			         "at weight %d (Flagger keeps it in status.sessionAffinityCookie)",
			         s->weight);
		if (s->weight > 0 && *gv_str(sa, "primaryCookieName") && !s->primary_cookie)
			rc_error(&x, "spec.analysis.sessionAffinity.primaryCookieName: the primary "
			         "cookie's value is needed at weight %d", s->weight);
	}

	if (json_array_size(x.errors) == 0) {
		switch (x.tgt.router) {
		case RENDER_ISTIO: render_istio(&x); break;
		case RENDER_GATEWAYAPI: render_gatewayapi(&x); break;
		case RENDER_SMI: render_smi(&x); break;
		}
	}
	free(x.apex);
	free(x.primary);
	free(x.canary);
	free(x.ns);
	json_decref(x.svc);
	json_decref(x.an);
	if (json_array_size(x.errors)) {
		json_decref(x.out);
		return -1;
	}
	r->objects = x.out;
	return 0;
}

void render_result_release(render_result *r)
{
	json_decref(r->objects);
	json_decref(r->errors);
	json_decref(r->notes);
	memset(r, 0, sizeof *r);
}

/* ---- YAML ---- */

/* Would a YAML 1.1 (PyYAML, Go's yaml.v2) or 1.2 reader take plain <s>
 * for something other than a string? Errs on the side of quoting: a
 * quoted string is the same string to every reader. */
static bool ambiguous(const char *s, size_t len)
{
	static const char *const words[] = { "null", "~", "true", "false", "yes", "no", "y", "n",
	                                     "on", "off", "=", "<<", NULL };
	if (len == 0)
		return true;
	for (const char *const *w = words; *w; w++)
		if (strlen(*w) == len && !strncasecmp(*w, s, len))
			return true;
	/* .inf, -.Inf, .NaN */
	const char *t = s;
	if (*t == '-' || *t == '+')
		t++;
	if (!strcasecmp(t, ".inf") || !strcasecmp(t, ".nan"))
		return true;
	/* numbers of any base, with _ and sexagesimal ':', and dates and
	 * YAML 1.1 timestamps ("2026-01-02T03:04:05.6Z", "2026-01-02 03:04:05
	 * +1"): a leading digit (after a sign or a '.') and only such
	 * characters */
	if (*t == '.')
		t++;
	if (!isdigit((unsigned char)*t))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!strchr("0123456789abcdefABCDEFxXoO_.:+-tTzZ \t", s[i]))
			return false;
	return true;
}

static int emit(yaml_emitter_t *e, yaml_event_t *ev, char *err, size_t errlen)
{
	if (yaml_emitter_emit(e, ev))
		return 0;
	snprintf(err, errlen, "cannot write YAML: %s", e->problem ? e->problem : "emitter error");
	return -1;
}

static int emit_scalar(yaml_emitter_t *e, const char *s, size_t len, bool is_string,
                       char *err, size_t errlen)
{
	yaml_event_t ev;
	yaml_scalar_style_t style = is_string && ambiguous(s, len) ? YAML_SINGLE_QUOTED_SCALAR_STYLE
	                                                           : YAML_ANY_SCALAR_STYLE;
	yaml_scalar_event_initialize(&ev, NULL, NULL, (yaml_char_t *)s, (int)len, 1, 1, style);
	return emit(e, &ev, err, errlen);
}

static int emit_value(yaml_emitter_t *e, const json_t *v, char *err, size_t errlen)
{
	yaml_event_t ev;
	char num[64];
	switch (json_typeof(v)) {
	case JSON_OBJECT: {
		yaml_mapping_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_MAPPING_STYLE);
		if (emit(e, &ev, err, errlen) < 0)
			return -1;
		const char *k;
		json_t *m;
		json_object_foreach((json_t *)v, k, m) {
			if (emit_scalar(e, k, strlen(k), true, err, errlen) < 0 ||
			    emit_value(e, m, err, errlen) < 0)
				return -1;
		}
		yaml_mapping_end_event_initialize(&ev);
		return emit(e, &ev, err, errlen);
	}
	case JSON_ARRAY: {
		yaml_sequence_start_event_initialize(&ev, NULL, NULL, 1, YAML_BLOCK_SEQUENCE_STYLE);
		if (emit(e, &ev, err, errlen) < 0)
			return -1;
		size_t i;
		json_t *m;
		json_array_foreach(v, i, m)
			if (emit_value(e, m, err, errlen) < 0)
				return -1;
		yaml_sequence_end_event_initialize(&ev);
		return emit(e, &ev, err, errlen);
	}
	case JSON_STRING:
		return emit_scalar(e, json_string_value(v), json_string_length(v), true, err, errlen);
	case JSON_INTEGER:
		snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return emit_scalar(e, num, strlen(num), false, err, errlen);
	case JSON_REAL:
		snprintf(num, sizeof num, "%.17g", json_real_value(v));
		return emit_scalar(e, num, strlen(num), false, err, errlen);
	case JSON_TRUE:
		return emit_scalar(e, "true", 4, false, err, errlen);
	case JSON_FALSE:
		return emit_scalar(e, "false", 5, false, err, errlen);
	default:
		return emit_scalar(e, "null", 4, false, err, errlen);
	}
}

static int on_write(void *data, unsigned char *p, size_t n)
{
	buf_append((buf *)data, p, n);
	return 1;
}

int render_yaml(const json_t *objects, buf *out, char *err, size_t errlen)
{
	yaml_emitter_t e;
	yaml_event_t ev;
	if (!yaml_emitter_initialize(&e)) {
		snprintf(err, errlen, "cannot write YAML: out of memory");
		return -1;
	}
	buf tmp = BUF_INIT;
	yaml_emitter_set_output(&e, on_write, &tmp);
	yaml_emitter_set_unicode(&e, 1);
	yaml_emitter_set_width(&e, -1);
	yaml_emitter_set_indent(&e, 2);
	int rc = 0;
	yaml_stream_start_event_initialize(&ev, YAML_UTF8_ENCODING);
	rc = emit(&e, &ev, err, errlen);
	size_t i;
	json_t *o;
	json_array_foreach(objects, i, o) {
		if (rc < 0)
			break;
		yaml_document_start_event_initialize(&ev, NULL, NULL, NULL, i == 0);
		rc = emit(&e, &ev, err, errlen);
		if (rc == 0)
			rc = emit_value(&e, o, err, errlen);
		if (rc == 0) {
			yaml_document_end_event_initialize(&ev, 1);
			rc = emit(&e, &ev, err, errlen);
		}
	}
	if (rc == 0) {
		yaml_stream_end_event_initialize(&ev);
		rc = emit(&e, &ev, err, errlen);
	}
	yaml_emitter_delete(&e);
	if (rc == 0 && tmp.len)
		buf_append(out, tmp.p, tmp.len);
	buf_release(&tmp);
	return rc;
}
