/* test_render.c - the router objects of a Canary (render.h): a table of
 * features, each row a Canary, a split and one value of the rendered
 * objects as Flagger v1.44.0 writes it (pkg/router/, the file named in
 * the row); the provider mapping; errors and notes; the YAML writer; Go's
 * duration syntax. JSON in the tables uses ' for " to stay readable. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "render_int.h"

/* <s> with ' as ", parsed; aborts the test on bad JSON. */
static json_t *J(const char *s)
{
	char *t = strdup(s);
	for (char *p = t; *p; p++)
		if (*p == '\'')
			*p = '"';
	json_error_t e;
	json_t *j = json_loads(t, JSON_DECODE_ANY, &e);
	if (!j)
		fail_msg("bad JSON in the test: %s: %s", e.text, t);
	free(t);
	return j;
}

/* A Flagger Canary with <provider>, <service> and <analysis> (JSON with ',
 * NULL for a progressive default). */
static json_t *canary(const char *provider, const char *service, const char *analysis)
{
	char text[8192];
	snprintf(text, sizeof text,
	         "{'apiVersion': 'flagger.app/v1beta1', 'kind': 'Canary',"
	         " 'metadata': {'name': 'podinfo', 'namespace': 'test'},"
	         " 'spec': {'provider': '%s', 'targetRef': {'kind': 'Deployment', 'name': 'podinfo'},"
	         " 'service': %s, 'analysis': %s}}",
	         provider, service, analysis ? analysis :
	         "{'interval': '1m', 'threshold': 5, 'maxWeight': 50, 'stepWeight': 10}");
	return J(text);
}

/* The value at "<index>/key/index/..." of <objects>, or NULL. */
static json_t *at(json_t *objects, const char *path)
{
	char *p = strdup(path), *save = NULL;
	json_t *v = objects;
	for (char *tok = strtok_r(p, "/", &save); tok && v; tok = strtok_r(NULL, "/", &save)) {
		if (json_is_array(v)) {
			char *end;
			long i = strtol(tok, &end, 10);
			v = *end ? NULL : json_array_get(v, (size_t)i);
		} else {
			v = json_object_get(v, tok);
		}
	}
	free(p);
	return v;
}

static void dump(const char *what, const json_t *j)
{
	char *s = j ? json_dumps(j, JSON_ENCODE_ANY | JSON_COMPACT) : NULL;
	print_message("%s: %s\n", what, s ? s : "(absent)");
	free(s);
}

typedef struct row {
	const char *what;        /* the behaviour, and where Flagger does it */
	const char *provider;
	const char *service;
	const char *analysis;    /* NULL: progressive */
	int weight;
	bool mirror;
	const char *cookie, *pcookie;
	const char *path;        /* in the rendered objects */
	const char *want;        /* JSON with ', or NULL: absent */
} row;

#define AB "{'interval': '1m', 'threshold': 2, 'iterations': 10, 'match': " \
	"[{'headers': {'x-canary': {'exact': 'yes'}}}, {'sourceLabels': {'app': 'a'}, " \
	"'queryParams': {'q': {'exact': '1'}}}]}"
#define SA(extra) "{'interval': '1m30s', 'threshold': 2, 'stepWeight': 10, 'sessionAffinity': " \
	"{'cookieName': 'c'" extra "}}"
#define GW "'gatewayRefs': [{'name': 'gw', 'namespace': 'ingress'}]"

static const row rows[] = {
	/* ---- Istio: weights, names, hosts, gateways, ports (istio.go) ---- */
	{ "DestinationRule canary first, host = name", "istio", "{'port': 80}", NULL, 10, 0, 0, 0,
	  "0/spec", "{'host': 'podinfo-canary'}" },
	{ "DestinationRule primary second", "istio", "{'port': 80}", NULL, 10, 0, 0, 0,
	  "1/metadata", "{'name': 'podinfo-primary', 'namespace': 'test'}" },
	{ "trafficPolicy on both DestinationRules", "istio",
	  "{'port': 80, 'trafficPolicy': {'tls': {'mode': 'DISABLE'}}}", NULL, 10, 0, 0, 0,
	  "1/spec/trafficPolicy", "{'tls': {'mode': 'DISABLE'}}" },
	{ "tls.mode has no omitempty: an empty tls writes mode ''", "istio",
	  "{'port': 80, 'trafficPolicy': {'tls': {}}}", NULL, 10, 0, 0, 0,
	  "0/spec/trafficPolicy/tls", "{'mode': ''}" },
	{ "httpCookie.ttl and name have no omitempty", "istio",
	  "{'port': 80, 'trafficPolicy': {'loadBalancer': {'consistentHash': {'httpCookie': {'path': '/'}}}}}",
	  NULL, 10, 0, 0, 0, "0/spec/trafficPolicy/loadBalancer/consistentHash/httpCookie",
	  "{'name': '', 'path': '/', 'ttl': ''}" },
	{ "a pointer field set to 0 is written (consecutive5xxErrors)", "istio",
	  "{'port': 80, 'trafficPolicy': {'outlierDetection': {'consecutive5xxErrors': 0, 'consecutiveErrors': 0}}}",
	  NULL, 10, 0, 0, 0, "0/spec/trafficPolicy/outlierDetection", "{'consecutive5xxErrors': 0}" },
	{ "a CRD field that Flagger's Go type lacks is neither read nor written", "istio",
	  "{'port': 80, 'trafficPolicy': {'loadBalancer': {'consistentHash': {'httpHeaderName': 'x', 'httpQueryParameterName': 'q'}}}}",
	  NULL, 10, 0, 0, 0, "1/spec/trafficPolicy/loadBalancer/consistentHash", "{'httpHeaderName': 'x'}" },
	{ "weights 100-w / w, the 0 written", "istio", "{'port': 80}", NULL, 0, 0, 0, 0,
	  "2/spec/http/0/route", "[{'destination': {'host': 'podinfo-primary'}, 'weight': 100},"
	  " {'destination': {'host': 'podinfo-canary'}, 'weight': 0}]" },
	{ "weight 35", "istio", "{'port': 80}", NULL, 35, 0, 0, 0, "2/spec/http/0/route/0/weight", "65" },
	{ "apex = service.name", "istio", "{'name': 'shop', 'port': 80}", NULL, 10, 0, 0, 0,
	  "2/spec/http/0/route/1/destination/host", "'shop-canary'" },
	{ "hosts = service.hosts + apex", "istio", "{'port': 80, 'hosts': ['a.example.com']}", NULL, 10,
	  0, 0, 0, "2/spec/hosts", "['a.example.com', 'podinfo']" },
	{ "'*' keeps the apex out of hosts", "istio", "{'port': 80, 'hosts': ['*']}", NULL, 10, 0, 0, 0,
	  "2/spec/hosts", "['*']" },
	{ "no gateways: mesh", "istio", "{'port': 80}", NULL, 10, 0, 0, 0, "2/spec/gateways", "['mesh']" },
	{ "gateways kept, mesh not added", "istio", "{'port': 80, 'gateways': ['ns/gw']}", NULL, 10, 0, 0,
	  0, "2/spec/gateways", "['ns/gw']" },
	{ "portDiscovery and a gateway first: destination port", "istio",
	  "{'port': 8080, 'portDiscovery': true, 'gateways': ['ns/gw', 'mesh']}", NULL, 10, 0, 0, 0,
	  "2/spec/http/0/route/0/destination/port", "{'number': 8080}" },
	{ "portDiscovery with mesh first: no port", "istio",
	  "{'port': 8080, 'portDiscovery': true, 'gateways': ['mesh', 'ns/gw']}", NULL, 10, 0, 0, 0,
	  "2/spec/http/0/route/0/destination/port", NULL },
	{ "delegation: hosts [] written, gateways left out", "istio",
	  "{'port': 80, 'delegation': true}", NULL, 10, 0, 0, 0, "2/spec",
	  "{'hosts': [], 'http': [{'route': [{'destination': {'host': 'podinfo-primary'}, 'weight': 90},"
	  " {'destination': {'host': 'podinfo-canary'}, 'weight': 10}]}]}" },
	{ "delegation with portDiscovery: port", "istio", "{'port': 80, 'delegation': true, 'portDiscovery': true}",
	  NULL, 10, 0, 0, 0, "2/spec/http/0/route/1/destination/port/number", "80" },
	{ "the route's options, in Go's field order", "istio",
	  "{'port': 80, 'match': [{'uri': {'prefix': '/'}}], 'rewrite': {'uri': '/v2', 'authority': 'a', 'type': 'ReplacePrefixMatch'},"
	  " 'timeout': '5s', 'retries': {'retryOn': '5xx'}, 'corsPolicy': {'allowOrigins': [{'exact': 'https://a'}], 'maxAge': '1h'},"
	  " 'headers': {'request': {'set': {'b': '2', 'a': '1'}}}}", NULL, 10, 0, 0, 0, "2/spec/http/0",
	  "{'match': [{'uri': {'prefix': '/'}}], 'route': [{'destination': {'host': 'podinfo-primary'}, 'weight': 90},"
	  " {'destination': {'host': 'podinfo-canary'}, 'weight': 10}], 'rewrite': {'uri': '/v2', 'authority': 'a'},"
	  " 'timeout': '5s', 'retries': {'attempts': 0, 'retryOn': '5xx'},"
	  " 'corsPolicy': {'allowOrigins': [{'exact': 'https://a'}], 'maxAge': '1h'},"
	  " 'headers': {'request': {'set': {'a': '1', 'b': '2'}}}}" },
	{ "apex labels and annotations, with Flux's opt-outs (util.go filterMetadata)", "istio",
	  "{'port': 80, 'apex': {'labels': {'team': 'a'}, 'annotations': {'x': 'y'}}}", NULL, 10, 0, 0, 0,
	  "2/metadata", "{'name': 'podinfo', 'namespace': 'test', 'labels': {'team': 'a'}, 'annotations':"
	  " {'helm.toolkit.fluxcd.io/driftDetection': 'disabled', 'kustomize.toolkit.fluxcd.io/reconcile': 'disabled', 'x': 'y'}}" },
	{ "appProtocol tcp: a tcp route with match ports, no http", "istio",
	  "{'port': 9000, 'appProtocol': 'TCP', 'match': [{'port': 9000}, {'uri': {'prefix': '/'}}]}", NULL, 30,
	  0, 0, 0, "2/spec", "{'hosts': ['podinfo'], 'gateways': ['mesh'], 'tcp': [{'match': [{'port': 9000}, {}],"
	  " 'route': [{'destination': {'host': 'podinfo-primary'}, 'weight': 70}, {'destination': {'host': 'podinfo-canary'}, 'weight': 30}]}]}" },
	/* ---- Istio: mirror, A/B, session affinity ---- */
	{ "mirror: http[0].mirror to the canary", "istio", "{'port': 80}", NULL, 0, 1, 0, 0,
	  "2/spec/http/0/mirror", "{'host': 'podinfo-canary'}" },
	{ "mirror without mirrorWeight: no percentage", "istio", "{'port': 80}", NULL, 0, 1, 0, 0,
	  "2/spec/http/0/mirrorPercentage", NULL },
	{ "mirrorWeight: mirrorPercentage", "istio", "{'port': 80}",
	  "{'interval': '1m', 'threshold': 1, 'stepWeight': 5, 'mirror': true, 'mirrorWeight': 25}", 0, 1, 0, 0,
	  "2/spec/http/0/mirrorPercentage", "{'value': 25}" },
	{ "A/B: analysis matches laid over each service match", "istio",
	  "{'port': 80, 'match': [{'uri': {'prefix': '/'}, 'headers': {'h': {'exact': 'svc'}}}]}", AB, 100, 0, 0, 0,
	  "2/spec/http/0/match", "[{'uri': {'prefix': '/'}, 'headers': {'x-canary': {'exact': 'yes'}}},"
	  " {'uri': {'prefix': '/'}, 'headers': {'h': {'exact': 'svc'}}, 'sourceLabels': {'app': 'a'}}]" },
	{ "A/B without a service match: the analysis matches as they are", "istio", "{'port': 80}", AB, 100,
	  0, 0, 0, "2/spec/http/0/match/1", "{'sourceLabels': {'app': 'a'}, 'queryParams': {'q': {'exact': '1'}}}" },
	{ "A/B: the default route at the primary's weight (SetRoutes)", "istio", "{'port': 80}", AB, 100,
	  0, 0, 0, "2/spec/http/1/route", "[{'destination': {'host': 'podinfo-primary'}, 'weight': 0}]" },
	{ "A/B at rest", "istio", "{'port': 80}", AB, 0, 0, 0, 0, "2/spec/http/0/route/1/weight", "0" },
	{ "affinity: the sticky route first", "istio", "{'port': 80}", SA(""), 10, 0, "AbC", 0,
	  "2/spec/http/0", "{'match': [{'headers': {'Cookie': {'regex': '.*c.*AbC.*'}}}], 'route':"
	  " [{'destination': {'host': 'podinfo-primary'}, 'weight': 0}, {'destination': {'host': 'podinfo-canary'}, 'weight': 100}]}" },
	{ "affinity: Set-Cookie on the weighted canary destination, default Max-Age", "istio",
	  "{'port': 80}", SA(""), 10, 0, "AbC", 0, "2/spec/http/1/route/1/headers",
	  "{'response': {'add': {'Set-Cookie': 'c=AbC; Max-Age=86400'}}}" },
	{ "affinity: every cookie attribute, in BuildCookie's order", "istio", "{'port': 80}",
	  SA(", 'maxAge': 60, 'secure': true, 'sameSite': 'Lax', 'path': '/p', 'partitioned': true, 'httpOnly': true, 'domain': 'd'"),
	  10, 0, "x", 0, "2/spec/http/1/route/1/headers/response/add/Set-Cookie",
	  "'c=x; Max-Age=60; Domain=d; HttpOnly; Partitioned; Path=/p; SameSite=Lax; Secure'" },
	{ "affinity: the sticky match laid over the service match", "istio",
	  "{'port': 80, 'match': [{'uri': {'prefix': '/a'}}, {'uri': {'prefix': '/b'}}]}", SA(""), 10, 0, "v", 0,
	  "2/spec/http/0/match", "[{'uri': {'prefix': '/a'}, 'headers': {'Cookie': {'regex': '.*c.*v.*'}}},"
	  " {'uri': {'prefix': '/b'}, 'headers': {'Cookie': {'regex': '.*c.*v.*'}}}]" },
	{ "affinity: a primary cookie, Max-Age the analysis interval", "istio", "{'port': 80}",
	  SA(", 'primaryCookieName': 'p'"), 10, 0, "v", "w", "2/spec/http/2/route/0/headers/response/add/Set-Cookie",
	  "'p=w; Max-Age=90'" },
	{ "affinity: the sticky primary route second", "istio", "{'port': 80}",
	  SA(", 'primaryCookieName': 'p'"), 10, 0, "v", "w", "2/spec/http/1/route",
	  "[{'destination': {'host': 'podinfo-primary'}, 'weight': 100}, {'destination': {'host': 'podinfo-canary'}, 'weight': 0}]" },
	{ "affinity at weight 0: the ended run's cookie expired on the sticky route", "istio", "{'port': 80}",
	  SA(""), 0, 0, "old", 0, "2/spec/http/0/headers", "{'response': {'add': {'Set-Cookie': 'c=old; Max-Age=-1'}}}" },
	{ "... whose route keeps the weights (0 to the canary)", "istio", "{'port': 80}", SA(""), 0, 0,
	  "old", 0, "2/spec/http/0/route/1/weight", "0" },
	{ "... and with service headers, the shared Headers pointer: the weighted route too", "istio",
	  "{'port': 80, 'headers': {'response': {'set': {'a': '1'}}}}", SA(""), 0, 0, "old", 0,
	  "2/spec/http/1/headers/response", "{'set': {'a': '1'}, 'add': {'Set-Cookie': 'c=old; Max-Age=-1'}}" },
	{ "affinity at weight 0 without a cookie: the weighted route twice", "istio", "{'port': 80}",
	  SA(""), 0, 0, 0, 0, "2/spec/http/0",
	  "{'route': [{'destination': {'host': 'podinfo-primary'}, 'weight': 100}, {'destination': {'host': 'podinfo-canary'}, 'weight': 0}]}" },
	{ "mirror lands on the first route, the sticky one", "istio", "{'port': 80}", SA(""), 10, 1, "v", 0,
	  "2/spec/http/0/mirror/host", "'podinfo-canary'" },

	/* ---- Gateway API (gateway_api.go, gateway_api_v1beta1.go) ---- */
	{ "parentRefs with the Canary CRD's defaults", "gatewayapi:v1", "{'port': 80, " GW "}", NULL, 10, 0,
	  0, 0, "0/spec/parentRefs", "[{'group': 'gateway.networking.k8s.io', 'kind': 'Gateway', 'namespace': 'ingress', 'name': 'gw'}]" },
	{ "parentRefs copied with sectionName and port", "gatewayapi:v1",
	  "{'port': 80, 'gatewayRefs': [{'group': 'core', 'kind': 'Service', 'name': 's', 'sectionName': 'x', 'port': 8}]}",
	  NULL, 10, 0, 0, 0, "0/spec/parentRefs/0", "{'group': 'core', 'kind': 'Service', 'name': 's', 'sectionName': 'x', 'port': 8}" },
	{ "one rule: default match PathPrefix /, two backendRefs", "gatewayapi:v1", "{'port': 80, " GW "}", NULL,
	  25, 0, 0, 0, "0/spec/rules", "[{'matches': [{'path': {'type': 'PathPrefix', 'value': '/'}}], 'backendRefs':"
	  " [{'group': '', 'kind': 'Service', 'name': 'podinfo-primary', 'port': 80, 'weight': 75},"
	  " {'group': '', 'kind': 'Service', 'name': 'podinfo-canary', 'port': 80, 'weight': 25}]}]" },
	{ "hostnames = service.hosts", "gatewayapi:v1", "{'port': 80, 'hosts': ['a', 'b'], " GW "}", NULL, 10,
	  0, 0, 0, "0/spec/hostnames", "['a', 'b']" },
	{ "matches: uri regex before exact before prefix; method; headers exact before regex, sorted", "gatewayapi:v1",
	  "{'port': 80, " GW ", 'match': [{'uri': {'regex': '^/r'}, 'method': {'exact': 'PUT'},"
	  " 'headers': {'z': {'regex': 'z'}, 'a': {'exact': 'a'}}, 'queryParams': {'q': {'regex': '1'}}}]}", NULL,
	  10, 0, 0, 0, "0/spec/rules/0/matches", "[{'path': {'type': 'RegularExpression', 'value': '^/r'}, 'headers':"
	  " [{'type': 'Exact', 'name': 'a', 'value': 'a'}, {'type': 'RegularExpression', 'name': 'z', 'value': 'z'}],"
	  " 'queryParams': [{'type': 'RegularExpression', 'name': 'q', 'value': '1'}], 'method': 'PUT'}]" },
	{ "filters: request, response, rewrite, mirror, CORS; headers sorted", "gatewayapi:v1",
	  "{'port': 80, " GW ", 'headers': {'request': {'add': {'b': '2', 'a': '1'}, 'remove': ['r']}, 'response': {'set': {'s': '1'}}},"
	  " 'rewrite': {'uri': '/new', 'authority': 'h'}, 'mirror': [{'backendRef': {'name': 'shadow', 'port': 81}}],"
	  " 'corsPolicy': {'allowOrigin': ['https://a'], 'allowOrigins': [{'exact': 'x'}], 'allowCredentials': true, 'maxAge': '1h30m'}}",
	  NULL, 10, 0, 0, 0, "0/spec/rules/0/filters",
	  "[{'type': 'RequestHeaderModifier', 'requestHeaderModifier': {'add': [{'name': 'a', 'value': '1'}, {'name': 'b', 'value': '2'}], 'remove': ['r']}},"
	  " {'type': 'ResponseHeaderModifier', 'responseHeaderModifier': {'set': [{'name': 's', 'value': '1'}]}},"
	  " {'type': 'URLRewrite', 'urlRewrite': {'hostname': 'h', 'path': {'type': 'ReplaceFullPath', 'replaceFullPath': '/new'}}},"
	  " {'type': 'RequestMirror', 'requestMirror': {'backendRef': {'group': '', 'kind': 'Service', 'name': 'shadow', 'port': 81}}},"
	  " {'type': 'CORS', 'cors': {'allowOrigins': ['https://a'], 'allowCredentials': true, 'maxAge': 5400}}]" },
	{ "rewrite type ReplacePrefixMatch", "gatewayapi:v1",
	  "{'port': 80, " GW ", 'rewrite': {'uri': '/v2', 'type': 'ReplacePrefixMatch'}}", NULL, 10, 0, 0, 0,
	  "0/spec/rules/0/filters/0/urlRewrite", "{'path': {'type': 'ReplacePrefixMatch', 'replacePrefixMatch': '/v2'}}" },
	{ "timeouts from timeout and backendTimeout", "gatewayapi:v1",
	  "{'port': 80, " GW ", 'timeout': '30s', 'backendTimeout': '5s'}", NULL, 10, 0, 0, 0,
	  "0/spec/rules/0/timeouts", "{'request': '30s', 'backendRequest': '5s'}" },
	{ "v1beta1: no timeouts", "gatewayapi:v1beta1", "{'port': 80, " GW ", 'timeout': '30s'}", NULL, 10,
	  0, 0, 0, "0/spec/rules/0/timeouts", NULL },
	{ "v1beta1: no CORS filter", "gatewayapi:v1beta1", "{'port': 80, " GW ", 'corsPolicy': {'allowOrigin': ['a']}}",
	  NULL, 10, 0, 0, 0, "0/spec/rules/0/filters", NULL },
	{ "v1beta1: the apiVersion", "gatewayapi:v1beta1", "{'port': 80, " GW "}", NULL, 10, 0, 0, 0,
	  "0/apiVersion", "'gateway.networking.k8s.io/v1beta1'" },
	{ "A/B: rule 0 analysis x service matches", "gatewayapi:v1", "{'port': 80, " GW "}", AB, 100, 0, 0, 0,
	  "0/spec/rules/0/matches", "[{'path': {'type': 'PathPrefix', 'value': '/'}, 'headers': [{'type': 'Exact', 'name': 'x-canary', 'value': 'yes'}]},"
	  " {'path': {'type': 'PathPrefix', 'value': '/'}, 'queryParams': [{'type': 'Exact', 'name': 'q', 'value': '1'}]}]" },
	{ "A/B: rule 1 the primary at 100 (initialPrimaryWeight)", "gatewayapi:v1", "{'port': 80, " GW "}", AB,
	  100, 0, 0, 0, "0/spec/rules/1/backendRefs", "[{'group': '', 'kind': 'Service', 'name': 'podinfo-primary', 'port': 80, 'weight': 100}]" },
	{ "blue/green mirror: a RequestMirror filter to the canary", "gatewayapi:v1", "{'port': 80, " GW "}",
	  "{'interval': '1m', 'threshold': 1, 'iterations': 3, 'mirror': true}", 0, 1, 0, 0, "0/spec/rules/0/filters",
	  "[{'type': 'RequestMirror', 'requestMirror': {'backendRef': {'group': '', 'kind': 'Service', 'name': 'podinfo-canary', 'port': 80}}}]" },
	{ "mirror without iterations: none (SetRoutes' condition)", "gatewayapi:v1", "{'port': 80, " GW "}", NULL,
	  0, 1, 0, 0, "0/spec/rules/0/filters", NULL },
	{ "affinity v1: a Cookie regex sticky rule", "gatewayapi:v1", "{'port': 80, " GW "}", SA(""), 10, 0, "v",
	  0, "0/spec/rules/0/matches", "[{'headers': [{'type': 'RegularExpression', 'name': 'Cookie', 'value': '.*c.*v.*'}]}]" },
	{ "affinity v1: Set-Cookie on the weighted canary backendRef", "gatewayapi:v1", "{'port': 80, " GW "}",
	  SA(""), 10, 0, "v", 0, "0/spec/rules/1/backendRefs/1/filters",
	  "[{'type': 'ResponseHeaderModifier', 'responseHeaderModifier': {'add': [{'name': 'Set-Cookie', 'value': 'c=v; Max-Age=86400'}]}}]" },
	{ "affinity v1: three rules with a primary cookie", "gatewayapi:v1", "{'port': 80, " GW "}",
	  SA(", 'primaryCookieName': 'p'"), 10, 0, "v", "w", "0/spec/rules/2/backendRefs/0/filters/0/responseHeaderModifier/add/0/value",
	  "'p=w; Max-Age=90'" },
	{ "affinity v1beta1: no primary cookie rule", "gatewayapi:v1beta1", "{'port': 80, " GW "}",
	  SA(", 'primaryCookieName': 'p'"), 10, 0, "v", "w", "0/spec/rules/2", NULL },
	{ "affinity at weight 0: the expired cookie as a rule filter", "gatewayapi:v1", "{'port': 80, " GW "}",
	  SA(""), 0, 0, "old", 0, "0/spec/rules/0/filters",
	  "[{'type': 'ResponseHeaderModifier', 'responseHeaderModifier': {'add': [{'name': 'Set-Cookie', 'value': 'c=old; Max-Age=-1'}]}}]" },
	{ "... joining the service's ResponseHeaderModifier (one allowed per rule)", "gatewayapi:v1",
	  "{'port': 80, " GW ", 'headers': {'response': {'add': {'a': '1'}}}}", SA(""), 0, 0, "old", 0,
	  "0/spec/rules/0/filters", "[{'type': 'ResponseHeaderModifier', 'responseHeaderModifier': {'add':"
	  " [{'name': 'a', 'value': '1'}, {'name': 'Set-Cookie', 'value': 'c=old; Max-Age=-1'}]}}]" },
	{ "... leaving the weighted rule's filter as it was", "gatewayapi:v1",
	  "{'port': 80, " GW ", 'headers': {'response': {'add': {'a': '1'}}}}", SA(""), 0, 0, "old", 0,
	  "0/spec/rules/1/filters/0/responseHeaderModifier/add", "[{'name': 'a', 'value': '1'}]" },
	{ "HTTPRoute apex metadata", "gatewayapi:v1", "{'port': 80, " GW ", 'apex': {'labels': {'l': 'v'}}}",
	  NULL, 10, 0, 0, 0, "0/metadata/labels", "{'l': 'v'}" },

	/* ---- SMI (smi.go, smi_v1alpha2.go, smi_v1alpha3.go) ---- */
	{ "v1alpha1: Quantity weights as strings, canary first", "linkerd", "{'port': 80}", NULL, 15, 0, 0,
	  0, "0/spec", "{'service': 'podinfo', 'backends': [{'service': 'podinfo-canary', 'weight': '15'},"
	  " {'service': 'podinfo-primary', 'weight': '85'}]}" },
	{ "v1alpha2: integers", "osm", "{'port': 80}", NULL, 15, 0, 0, 0, "0/spec/backends/1/weight", "85" },
	{ "service = hosts[0]", "smi:v1alpha3:x", "{'port': 80, 'hosts': ['h.svc', 'i']}", NULL, 15, 0, 0, 0,
	  "0/spec/service", "'h.svc'" },
	{ "no annotation unless the mesh is istio", "smi:v1alpha2:linkerd", "{'port': 80, 'gateways': ['g']}",
	  NULL, 15, 0, 0, 0, "0/metadata/annotations", NULL },
	{ "mesh istio: the gateways annotation, json.Marshal escapes", "smi:v1alpha2:istio",
	  "{'port': 80, 'gateways': ['mesh', 'a<b>&c']}", NULL, 15, 0, 0, 0, "0/metadata/annotations",
	  "{'VirtualService.v1alpha3.networking.istio.io/spec.gateways': '[\\'mesh\\',\\'a\\\\u003cb\\\\u003e\\\\u0026c\\']'}" },
};

static void test_feature_table(void **state)
{
	int bad = 0;
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		const row *r = &rows[i];
		json_t *doc = canary(r->provider, r->service, r->analysis);
		render_opts o = { .split = { .weight = r->weight, .mirror = r->mirror,
		                             .cookie = r->cookie, .primary_cookie = r->pcookie } };
		render_result res;
		if (render_canary(doc, &o, &res) < 0) {
			print_message("row %zu (%s): refused\n", i, r->what);
			dump("errors", res.errors);
			bad++;
		} else {
			json_t *got = at(res.objects, r->path);
			json_t *want = r->want ? J(r->want) : NULL;
			if (!(got == NULL && want == NULL) && !(got && want && json_equal(got, want))) {
				print_message("row %zu (%s), %s:\n", i, r->what, r->path);
				dump("  want", want);
				dump("  got ", got);
				bad++;
			}
			json_decref(want);
		}
		render_result_release(&res);
		json_decref(doc);
	}
	assert_int_equal(bad, 0);
}

/* Every weight: the two weights of each weighted route add up to 100. */
static void test_weights_add_up_to_100_at_every_step(void **state)
{
	const char *providers[] = { "istio", "gatewayapi:v1", "linkerd", "osm" };
	for (size_t p = 0; p < 4; p++) {
		json_t *doc = canary(providers[p], "{'port': 80, " GW "}", NULL);
		for (int w = 0; w <= 100; w++) {
			render_opts o = { .split = { .weight = w } };
			render_result r;
			assert_int_equal(render_canary(doc, &o, &r), 0);
			json_t *obj = json_array_get(r.objects, json_array_size(r.objects) - 1);
			json_t *list = p == 0 ? at(obj, "spec/http/0/route") : p == 1 ? at(obj, "spec/rules/0/backendRefs")
			             : at(obj, "spec/backends");
			assert_int_equal(json_array_size(list), 2);
			long long sum = 0, canary_w = -1;
			for (size_t i = 0; i < 2; i++) {
				json_t *wv = json_object_get(json_array_get(list, i), "weight");
				long long v = json_is_string(wv) ? atoll(json_string_value(wv)) : json_integer_value(wv);
				sum += v;
				if (i == (p >= 2 ? 0 : 1)) /* SMI lists the canary first */
					canary_w = v;
			}
			assert_int_equal(sum, 100);
			assert_int_equal(canary_w, w);
			render_result_release(&r);
		}
		json_decref(doc);
	}
}

static void test_the_document_is_not_modified(void **state)
{
	/* the weight-0 affinity path mutates the decoded headers, as Flagger
	 * mutates its Canary: never the caller's document */
	json_t *doc = canary("istio", "{'port': 80, 'headers': {'response': {'set': {'a': '1'}}}}", SA(""));
	json_t *copy = json_deep_copy(doc);
	render_opts o = { .split = { .weight = 0, .cookie = "old" } };
	render_result r, r2;
	assert_int_equal(render_canary(doc, &o, &r), 0);
	assert_true(json_equal(doc, copy));
	assert_int_equal(render_canary(doc, &o, &r2), 0);
	assert_true(json_equal(r.objects, r2.objects));
	render_result_release(&r);
	render_result_release(&r2);
	json_decref(doc);
	json_decref(copy);
}

typedef struct bad_row {
	const char *provider, *service, *analysis;
	int weight;
	const char *cookie;
	const char *want;    /* in one of the errors */
	const char *pcookie;
} bad_row;

static const bad_row bad_rows[] = {
	{ "istio", "{'port': 80}", NULL, 101, 0, "weight: must be from 0 to 100, got 101", NULL },
	{ "istio", "{'port': 80}", NULL, -1, 0, "weight: must be from 0 to 100, got -1", NULL },
	{ "istio", "{'port': 'x'}", NULL, 1, 0, "spec.service.port: must be an integer, got a string", NULL },
	{ "istio", "{'port': 3000000000}", NULL, 1, 0, "spec.service.port: must be an integer from -2147483648 to 2147483647", NULL },
	{ "istio", "{'name': 'x'}", NULL, 1, 0, "spec.service.port: required", NULL },
	{ "istio", "{'port': 80, 'match': [{'uri': {'exact': 'a', 'regex': 'b'}}]}", NULL, 1, 0,
	  "spec.service.match[0].uri: exact, prefix and regex are alternatives", NULL },
	{ "istio", "{'port': 80, 'match': [null]}", NULL, 1, 0, "spec.service.match[0]: must not be null", NULL },
	{ "istio", "{'port': 80, 'trafficPolicy': {'loadBalancer': {'simple': 'FAST'}}}", NULL, 1, 0,
	  "spec.service.trafficPolicy.loadBalancer.simple: must be one of ROUND_ROBIN", NULL },
	{ "istio", "{'port': 80}", "{'interval': '1m', 'threshold': 1, 'match': [{'headers': {'a': {}}}]}", 1, 0,
	  "spec.analysis.match[0].headers.a: give exactly one of exact, prefix, suffix, regex", NULL },
	{ "istio", "{'port': 80}", SA(""), 10, 0, "the canary cookie's value is needed at weight 10", NULL },
	{ "istio", "{'port': 80}", SA(", 'primaryCookieName': 'p'"), 10, "v", "the primary cookie's value is needed", NULL },
	{ "istio", "{'port': 80}", "{'interval': 'soon', 'threshold': 1, 'stepWeight': 5, 'sessionAffinity': "
	  "{'cookieName': 'c', 'primaryCookieName': 'p'}}", 10, "v", "spec.analysis.interval: 'soon' is not a Go duration",
	  "w" },
	{ "istio", "{'port': 80}", "{'interval': '1m', 'threshold': 1, 'sessionAffinity': {'maxAge': 5}}", 0, 0,
	  "spec.analysis.sessionAffinity.cookieName: required", NULL },
	{ "istio", "{'port': 80, 'gateways': ['g'], 'delegation': true}", NULL, 1, 0, "a delegate VirtualService", NULL },
	{ "gatewayapi:v1", "{'port': 80}", NULL, 1, 0, "spec.service.gatewayRefs: required", NULL },
	{ "gatewayapi:v1", "{'port': 0, " GW "}", NULL, 1, 0, "need a port from 1 to 65535, got 0", NULL },
	{ "gatewayapi:v1", "{'port': 80, " GW ", 'match': [{'uri': {'prefix': ''}}]}", NULL, 1, 0,
	  "spec.service.match[0].uri: the Gateway API matches a path by exact, prefix or regex only", NULL },
	{ "gatewayapi:v1", "{'port': 80, " GW ", 'match': [{'method': {'prefix': 'G'}}]}", NULL, 1, 0,
	  "spec.service.match[0].method: the Gateway API matches a method exactly only", NULL },
	{ "gatewayapi:v1", "{'port': 80, 'gatewayRefs': [{'namespace': 'n'}]}", NULL, 1, 0,
	  "spec.service.gatewayRefs[0].name: required", NULL },
	{ "gatewayapi:v1", "{'port': 80, " GW ", 'mirror': [{'backendRef': {'name': 's'}}]}", NULL, 1, 0,
	  "spec.service.mirror[0].backendRef: must have port for Service reference", NULL },
	{ "gatewayapi:v1", "{'port': 80, 'gatewayRefs': ['gw']}", NULL, 1, 0, "spec.service.gatewayRefs[0]: must be a mapping", NULL },
	{ "gatewayapi:v1", "{'port': 80, " GW ", 'rewrite': {'uri': '/v2', 'type': 'ReplacePrefixMatch'}}", AB, 100, 0,
	  "ReplacePrefixMatch: the Gateway API allows it only in a rule with exactly one PathPrefix match, and rule 0 has 2 matches", NULL },
	{ "kuma", "{'port': 80}", NULL, 1, 0, "provider 'kuma' is Flagger's but canaryd does not render it", NULL },
	{ "appmesh:v1beta2", "{'port': 80}", NULL, 1, 0, "provider 'appmesh:v1beta2' is Flagger's", NULL },
	{ "kubernetes", "{'port': 80}", NULL, 1, 0, "no route object to render", NULL },
	{ "smi:v2", "{'port': 80}", NULL, 1, 0, "unknown provider 'smi:v2'", NULL },
};

static void test_refusals_name_the_field(void **state)
{
	int bad = 0;
	for (size_t i = 0; i < sizeof bad_rows / sizeof bad_rows[0]; i++) {
		const bad_row *b = &bad_rows[i];
		json_t *doc = canary(b->provider, b->service, b->analysis);
		render_opts o = { .split = { .weight = b->weight, .cookie = b->cookie,
		                             .primary_cookie = b->pcookie } };
		render_result r;
		int rc = render_canary(doc, &o, &r);
		bool found = false;
		size_t k;
		json_t *m;
		json_array_foreach(r.errors, k, m)
			found = found || strstr(json_string_value(m), b->want);
		if (rc != -1 || r.objects || !found) {
			print_message("bad row %zu: rc %d, want '%s'\n", i, rc, b->want);
			dump("  errors", r.errors);
			bad++;
		}
		render_result_release(&r);
		json_decref(doc);
	}
	assert_int_equal(bad, 0);
}

/* A required field of the wrong type is one error, not also "required". */
static void test_one_error_per_problem(void **state)
{
	json_t *doc = canary("gatewayapi:v1", "{'port': 'x', 'gatewayRefs': [{'name': 5}]}", NULL);
	render_opts o = { .split = { .weight = 10 } };
	render_result r;
	assert_int_equal(render_canary(doc, &o, &r), -1);
	dump("errors", r.errors);
	assert_int_equal(json_array_size(r.errors), 2);
	assert_string_equal(json_string_value(json_array_get(r.errors, 0)),
	                    "spec.service.port: must be an integer, got a string");
	assert_string_equal(json_string_value(json_array_get(r.errors, 1)),
	                    "spec.service.gatewayRefs[0].name: must be a string, got an integer");
	render_result_release(&r);
	json_decref(doc);
}

static void test_any_json_is_refused_cleanly(void **state)
{
	const char *docs[] = { "null", "[]", "'x'", "{}", "{'spec': 1}", "{'spec': {'service': []}}",
	                       "{'spec': {'targetRef': {'name': 7}}}", "{'metadata': {'namespace': 'Bad'}, 'spec': {}}" };
	for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
		json_t *doc = J(docs[i]);
		render_opts o = { .split = { .weight = 10 } };
		render_result r;
		assert_int_equal(render_canary(doc, &o, &r), -1);
		assert_null(r.objects);
		assert_true(json_array_size(r.errors) > 0);
		render_result_release(&r);
		json_decref(doc);
	}
}

static void test_providers_map_as_flaggers_factory(void **state)
{
	static const struct { const char *p; render_router r; const char *api; const char *mesh; bool note; } ok[] = {
		{ NULL, RENDER_ISTIO, "networking.istio.io/v1beta1", "", false },
		{ "istio", RENDER_ISTIO, "networking.istio.io/v1beta1", "", false },
		{ "linkerd", RENDER_SMI, "split.smi-spec.io/v1alpha1", "linkerd", false },
		{ "osm", RENDER_SMI, "split.smi-spec.io/v1alpha2", "osm", false },
		{ "smi:v1alpha1", RENDER_SMI, "split.smi-spec.io/v1alpha1", "smi:v1alpha1", false },
		{ "smi:v1alpha2:istio", RENDER_SMI, "split.smi-spec.io/v1alpha2", "istio", false },
		{ "smi:v1alpha3:osm", RENDER_SMI, "split.smi-spec.io/v1alpha3", "osm", false },
		{ "smi", RENDER_SMI, "split.smi-spec.io/v1alpha2", "", true },
		{ "gatewayapi:v1", RENDER_GATEWAYAPI, "gateway.networking.k8s.io/v1", "", false },
		{ "gatewayapi:v1beta1", RENDER_GATEWAYAPI, "gateway.networking.k8s.io/v1beta1", "", false },
		{ "gatewayapi", RENDER_GATEWAYAPI, "gateway.networking.k8s.io/v1", "", true },
	};
	char note[256], err[256];
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		render_target t;
		assert_int_equal(render_target_of(ok[i].p, &t, note, sizeof note, err, sizeof err), 0);
		assert_int_equal(t.router, ok[i].r);
		assert_string_equal(t.api_version, ok[i].api);
		assert_string_equal(t.mesh, ok[i].mesh);
		assert_int_equal(note[0] != '\0', ok[i].note);
	}
	const char *refused[] = { "appmesh", "appmesh:v1beta2", "contour", "gloo", "gloo:x", "nginx",
	                          "skipper", "traefik", "apisix", "kuma", "knative", "kubernetes",
	                          "gatewayapi:v2", "smi:v1alpha4", "isito", "" "x\n" };
	for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
		render_target t;
		assert_int_equal(render_target_of(refused[i], &t, note, sizeof note, err, sizeof err), -1);
		assert_non_null(strstr(err, "istio, gatewayapi"));
		assert_null(strchr(err, '\n'));
	}
	/* what the file says is quoted without its control characters, C1 too */
	render_target t;
	assert_int_equal(render_target_of("gloo:\xc2\x85\x1b[2J", &t, note, sizeof note, err, sizeof err), -1);
	assert_null(strstr(err, "\xc2\x85"));
	assert_null(strchr(err, 0x1b));
	assert_non_null(strstr(err, "gloo:\\x85\\x1b[2J"));
}

static void test_unknown_fields_are_notes_not_errors(void **state)
{
	json_t *doc = canary("istio", "{'port': 80, 'portName': 'http', 'weird': 1, 'match': [{'uri': {'suffix': 'x'}}]}",
	                     "{'interval': '1m', 'threshold': 1, 'stepWeight': 5, 'metrics': [], 'judge': 'sequential'}");
	render_opts o = { .split = { .weight = 10 } };
	render_result r;
	assert_int_equal(render_canary(doc, &o, &r), 0);
	assert_int_equal(json_array_size(r.notes), 2); /* weird, suffix; not portName, not analysis */
	assert_non_null(strstr(json_string_value(json_array_get(r.notes, 0)), "spec.service.weird"));
	assert_non_null(strstr(json_string_value(json_array_get(r.notes, 1)), "spec.service.match[0].uri.suffix"));
	/* the pruned suffix leaves an empty StringMatch */
	json_t *want = J("{'uri': {}}");
	assert_true(json_equal(at(r.objects, "2/spec/http/0/match/0"), want));
	json_decref(want);
	render_result_release(&r);
	json_decref(doc);
}

static void test_yaml_quotes_what_would_read_as_another_type(void **state)
{
	json_t *objs = J("[{'a': '10', 'b': 'true', 'c': '', 'd': '1e3', 'e': '30s', 'f': 10, 'g': null, "
	                 "'h': 'no', 'i': '2026-01-02', 'j': '~', 'k': [1.5, false], 'l': 'x: y'}, {'m': 'n'}]");
	buf b = BUF_INIT;
	char err[128];
	assert_int_equal(render_yaml(objs, &b, err, sizeof err), 0);
	assert_string_equal(b.p, "a: '10'\nb: 'true'\nc: ''\nd: '1e3'\ne: 30s\nf: 10\ng: null\nh: 'no'\n"
	                         "i: '2026-01-02'\nj: '~'\nk:\n- 1.5\n- false\nl: 'x: y'\n---\nm: 'n'\n");
	buf_release(&b);
	json_decref(objs);
}

static void test_go_durations(void **state)
{
	static const struct { const char *s; long long ns; } ok[] = {
		{ "0", 0 }, { "1s", 1000000000LL }, { "1m30s", 90000000000LL }, { "1.5h", 5400000000000LL },
		{ "300ms", 300000000LL }, { "-2s", -2000000000LL }, { "+1m", 60000000000LL }, { ".5s", 500000000LL },
		{ "1.s", 1000000000LL }, { "2h45m", 9900000000000LL }, { "10us", 10000LL }, { "10\xc2\xb5s", 10000LL },
		{ "7ns", 7 },
	};
	for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
		long long ns = -1;
		assert_int_equal(rc_parse_go_duration(ok[i].s, &ns), 0);
		assert_true(ns == ok[i].ns);
	}
	const char *bad[] = { "", "1", "1d", "s", ".s", "1.2.3s", "1s2", "-", "9999999999h", "1 s" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		long long ns;
		assert_int_equal(rc_parse_go_duration(bad[i], &ns), -1);
	}
}

static void test_cookie_regex_splits_as_go(void **state)
{
	char *r = rc_cookie_regex("name=val");
	assert_string_equal(r, ".*name.*val.*");
	free(r);
	r = rc_cookie_regex("a=b=c"); /* strings.Split(...)[1] stops at the next '=' */
	assert_string_equal(r, ".*a.*b.*");
	free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_feature_table),
		cmocka_unit_test(test_weights_add_up_to_100_at_every_step),
		cmocka_unit_test(test_the_document_is_not_modified),
		cmocka_unit_test(test_refusals_name_the_field),
		cmocka_unit_test(test_one_error_per_problem),
		cmocka_unit_test(test_any_json_is_refused_cleanly),
		cmocka_unit_test(test_providers_map_as_flaggers_factory),
		cmocka_unit_test(test_unknown_fields_are_notes_not_errors),
		cmocka_unit_test(test_yaml_quotes_what_would_read_as_another_type),
		cmocka_unit_test(test_go_durations),
		cmocka_unit_test(test_cookie_regex_splits_as_go),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
