/* test_k8s.c - the Kubernetes client's pure half (kubeconfig and
 * in-cluster configuration, paths, Status objects and the error lines made
 * of them, watch events, Warning headers, readiness, comparing desired and
 * live objects) and its teardown from inside its own callbacks. What the
 * client does on the wire is in tests/e2e/test_k8s.py. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "k8s.h"

/* Every byte of <s> is printable ASCII. */
static void assert_one_line(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p < 0x20 || (unsigned char)*p >= 0x7f) {
			print_message("byte 0x%02x at %zu in '%s'\n", (unsigned char)*p,
			              (size_t)(p - s), s);
			fail();
		}
}

static void assert_has(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		print_message("'%s'\n  lacks '%s'\n", hay, needle);
	assert_non_null(strstr(hay, needle));
}

/* ---- kubeconfig ------------------------------------------------------- */

/* "hello" as PEM would not matter: the client takes the bytes as given */
#define CA_B64 "LS0tLS1CRUdJTiBDRVJUSUZJQ0FURS0tLS0tCmFiYwotLS0tLUVORCBDRVJUSUZJQ0FURS0tLS0tCg=="

static const char kc_good[] =
	"apiVersion: v1\n"
	"kind: Config\n"
	"current-context: prod\n"
	"preferences: {colors: true}\n"
	"clusters:\n"
	"- name: prod-cluster\n"
	"  cluster:\n"
	"    server: https://10.0.0.1:6443/\n"
	"    certificate-authority-data: " CA_B64 "\n"
	"- name: dev-cluster\n"
	"  cluster:\n"
	"    server: https://127.0.0.1:6443\n"
	"    certificate-authority: certs/dev-ca.crt\n"
	"users:\n"
	"- name: ops\n"
	"  user:\n"
	"    token: abc.def-ghi\n"
	"- name: files\n"
	"  user:\n"
	"    tokenFile: tok\n"
	"contexts:\n"
	"- name: prod\n"
	"  context: {cluster: prod-cluster, user: ops, namespace: shop}\n"
	"- name: dev\n"
	"  context: {cluster: dev-cluster, user: files}\n";

static int load_text(k8s_config *c, const char *text, const char *ctx, char *err, size_t n)
{
	return k8s_config_kubeconfig_text(c, text, strlen(text), "/etc/kube/config", ctx, err, n);
}

static void kubeconfig_current_context(void **state)
{
	k8s_config c;
	char err[512] = "";
	assert_int_equal(load_text(&c, kc_good, NULL, err, sizeof err), 0);
	assert_string_equal(c.server, "https://10.0.0.1:6443");   /* trailing '/' gone */
	assert_string_equal(c.token, "abc.def-ghi");
	assert_null(c.token_file);
	assert_string_equal(c.namespace, "shop");
	assert_string_equal(c.ca_pem, "-----BEGIN CERTIFICATE-----\nabc\n-----END CERTIFICATE-----\n");
	assert_string_equal(c.source, "kubeconfig '/etc/kube/config' context 'prod'");
	k8s_config_release(&c);
	assert_null(c.server);
}

static void kubeconfig_named_context_and_relative_files(void **state)
{
	k8s_config c;
	char err[512] = "";
	/* the CA file is read (relative to the kubeconfig's folder): absent here */
	assert_int_equal(load_text(&c, kc_good, "dev", err, sizeof err), -1);
	assert_has(err, "kubeconfig '/etc/kube/config': ");
	assert_has(err, "cannot read '/etc/kube/certs/dev-ca.crt'");
	assert_null(c.server);

	char dir[] = "/tmp/canaryd-k8s-XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256], sub[256];
	snprintf(sub, sizeof sub, "%s/certs", dir);
	mkdir(sub, 0700);
	snprintf(path, sizeof path, "%s/certs/dev-ca.crt", dir);
	FILE *f = fopen(path, "w");
	fputs("PEM", f);
	fclose(f);
	snprintf(path, sizeof path, "%s/config", dir);
	f = fopen(path, "w");
	fputs(kc_good, f);
	fclose(f);
	assert_int_equal(k8s_config_kubeconfig(&c, path, "dev", err, sizeof err), 0);
	assert_string_equal(c.ca_pem, "PEM");
	char tok[300];
	snprintf(tok, sizeof tok, "%s/tok", dir);
	assert_string_equal(c.token_file, tok);
	assert_string_equal(c.namespace, "default");
	k8s_config_release(&c);
	snprintf(path, sizeof path, "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

/* <user> and <cluster_extra> spliced into a one-context kubeconfig. */
static int load_with(const char *user, const char *cluster_extra, char *err, size_t n)
{
	char text[4096];
	snprintf(text, sizeof text,
	         "current-context: c\n"
	         "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1'%s}}]\n"
	         "users: [{name: u, user: {%s}}]\n"
	         "contexts: [{name: c, context: {cluster: k, user: u}}]\n",
	         cluster_extra, user);
	k8s_config c;
	int rc = load_text(&c, text, NULL, err, n);
	if (rc == 0)
		k8s_config_release(&c);
	else
		assert_one_line(err);
	return rc;
}

static void kubeconfig_refuses_what_canaryd_cannot_honour(void **state)
{
	static const struct { const char *user, *cluster, *want; } rows[] = {
		{ "exec: {command: aws}", "", "exec credential plugins are not supported" },
		{ "auth-provider: {name: gcp}", "", "auth-provider plugins are not supported" },
		{ "username: a, password: b", "", "user names and passwords are not supported" },
		{ "token: t, as: admin", "", "impersonation is not supported" },
		{ "token: t", ", insecure-skip-tls-verify: true", "insecure-skip-tls-verify is not" },
		{ "token: t", ", proxy-url: 'http://p:3128'", "proxy-url is not supported" },
		{ "token: t", ", tls-server-name: api", "tls-server-name is not supported" },
		{ "token: t, tokenFile: /x", "", "has both token and tokenFile" },
		{ "token: 'a b'", "", "token holds blanks or control characters" },
		{ "client-certificate-data: " CA_B64, "", "has a client certificate without its key" },
		{ "client-key-data: " CA_B64, "", "has a client key without its certificate" },
		{ "client-certificate-data: '!!!notbase64', client-key-data: " CA_B64, "",
		  "'client-certificate-data' is not base64" },
		{ "token: [a, b]", "", "token or tokenFile is not a string" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		char err[512] = "";
		assert_int_equal(load_with(rows[i].user, rows[i].cluster, err, sizeof err), -1);
		assert_has(err, rows[i].want);
	}
	char err[512] = "";
	assert_int_equal(load_with("token: t", ", insecure-skip-tls-verify: false", err, sizeof err), 0);
	assert_int_equal(load_with("client-certificate-data: " CA_B64 ", client-key-data: " CA_B64,
	                           "", err, sizeof err), 0);
}

static void kubeconfig_refuses_bad_files(void **state)
{
	static const struct { const char *text, *want; } rows[] = {
		{ "", "empty file" },
		{ "- a\n- b\n", "not a mapping" },
		{ "current-context: c\n", "no context named 'c' in 'contexts'" },
		{ "clusters: []\n", "no current-context" },
		{ "a: 1\na: 2\n", "key 'a' appears twice" },
		{ "x: &anchor {a: 1}\ny: *anchor\n", "anchors and aliases are not supported" },
		{ "a: [1, 2\n", "line " },
		{ "a: 1\n---\nb: 2\n", "more than one YAML document" },
		{ "current-context: c\ncontexts: [{name: c, context: {user: u}}]\n", "names no cluster" },
		{ "current-context: c\ncontexts: 3\n", "'contexts' is not a list" },
		{ "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
		  "clusters: [{name: k, cluster: {server: 'http://127.0.0.1:80'}}]\n",
		  "is not an https:// URL" },
		{ "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
		  "clusters: [{name: k, cluster: {}}]\n", "cluster 'k' has no server" },
		{ "current-context: c\ncontexts: [{name: c, context: {cluster: k}}]\n"
		  "clusters: [{name: k}]\n", "cluster 'k' has no 'cluster' mapping" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		k8s_config c;
		char err[512] = "";
		assert_int_equal(load_text(&c, rows[i].text, NULL, err, sizeof err), -1);
		assert_has(err, rows[i].want);
		assert_one_line(err);
		assert_null(c.server);
	}
	/* deep nesting is bounded, not a stack overflow */
	char deep[4096] = "a: ";
	for (int i = 0; i < 1000; i++)
		strcat(deep, "[");
	k8s_config c;
	char err[512] = "";
	assert_int_equal(load_text(&c, deep, NULL, err, sizeof err), -1);
	assert_has(err, "nested deeper than 32");
	/* a user without a context's user is anonymous: allowed */
	assert_int_equal(load_text(&c, "current-context: c\ncontexts: [{name: c, context: "
	                           "{cluster: k}}]\nclusters: [{name: k, cluster: {server: "
	                           "'https://h:1'}}]\n", NULL, err, sizeof err), 0);
	assert_null(c.token);
	assert_null(c.cert_pem);
	k8s_config_release(&c);
}

/* ---- in-cluster ------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text)
{
	char path[300];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static void incluster_reads_the_service_account(void **state)
{
	char dir[] = "/tmp/canaryd-sa-XXXXXX";
	assert_non_null(mkdtemp(dir));
	k8s_config c;
	char err[512] = "";
	k8s_incluster where = { "10.96.0.1", "443", dir };
	assert_int_equal(k8s_config_incluster(&c, &where, err, sizeof err), -1);
	assert_has(err, "/token");
	write_file(dir, "token", "\n");
	assert_int_equal(k8s_config_incluster(&c, &where, err, sizeof err), -1);
	assert_has(err, "holds no token");
	write_file(dir, "token", "eyJhbGciOi.x.y\n");
	write_file(dir, "ca.crt", "CA PEM");
	write_file(dir, "namespace", "shop\n");
	assert_int_equal(k8s_config_incluster(&c, &where, err, sizeof err), 0);
	assert_string_equal(c.server, "https://10.96.0.1:443");
	assert_string_equal(c.namespace, "shop");
	assert_string_equal(c.ca_pem, "CA PEM");
	assert_null(c.token);   /* read by the client, again and again */
	assert_has(c.token_file, "/token");
	assert_string_equal(c.source, "in-cluster");
	k8s_config_release(&c);

	k8s_incluster v6 = { "fd00::1", "6443", dir };
	assert_int_equal(k8s_config_incluster(&c, &v6, err, sizeof err), 0);
	assert_string_equal(c.server, "https://[fd00::1]:6443");
	k8s_config_release(&c);
	k8s_incluster bad = { "10.96.0.1", "99999", dir };
	assert_int_equal(k8s_config_incluster(&c, &bad, err, sizeof err), -1);
	assert_has(err, "bad KUBERNETES_SERVICE_HOST/PORT");

	/* the environment is the contract when the struct names nothing */
	unsetenv("KUBERNETES_SERVICE_HOST");
	k8s_incluster envd = { NULL, NULL, dir };
	assert_int_equal(k8s_config_incluster(&c, &envd, err, sizeof err), -1);
	assert_string_equal(err, "not running in a cluster: KUBERNETES_SERVICE_HOST is not set");
	setenv("KUBERNETES_SERVICE_HOST", "127.0.0.1", 1);
	setenv("KUBERNETES_SERVICE_PORT", "6443", 1);
	assert_int_equal(k8s_config_incluster(&c, &envd, err, sizeof err), 0);
	assert_string_equal(c.server, "https://127.0.0.1:6443");
	k8s_config_release(&c);
	unsetenv("KUBERNETES_SERVICE_HOST");
	unsetenv("KUBERNETES_SERVICE_PORT");
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

/* ---- paths ------------------------------------------------------------ */

static void paths_are_built_from_checked_names(void **state)
{
	char out[512], err[256];
	k8s_ref vs = { "networking.istio.io", "v1", "virtualservices", NULL, "podinfo" };
	assert_int_equal(k8s_path(&vs, "test", NULL, out, sizeof out, err, sizeof err), 0);
	assert_string_equal(out, "/apis/networking.istio.io/v1/namespaces/test/virtualservices/podinfo");
	k8s_ref svc = { "", "v1", "services", NULL, NULL };
	assert_int_equal(k8s_path(&svc, "test", NULL, out, sizeof out, err, sizeof err), 0);
	assert_string_equal(out, "/api/v1/namespaces/test/services");
	k8s_ref dep = { "apps", "v1", "deployments", NULL, "web.v2" };
	assert_int_equal(k8s_path(&dep, "test", "status", out, sizeof out, err, sizeof err), 0);
	assert_string_equal(out, "/apis/apps/v1/namespaces/test/deployments/web.v2/status");

	static const struct { k8s_ref ref; const char *ns, *sub, *want; } bad[] = {
		{ { "x", "v1", "r", NULL, "../etc" }, "t", NULL, "bad object name '../etc'" },
		{ { "x", "v1", "r", NULL, "a/b" }, "t", NULL, "bad object name" },
		{ { "x", "v1", "r", NULL, "A" }, "t", NULL, "bad object name" },
		{ { "x", "v1", "r", NULL, "a?b=c" }, "t", NULL, "bad object name" },
		{ { "x", "v1", "r", NULL, "-a" }, "t", NULL, "bad object name" },
		{ { "x", "v1", "r", NULL, "a..b" }, "t", NULL, "bad object name" },
		{ { "x", "v1", "r", NULL, "a" }, "a.b", NULL, "bad namespace 'a.b'" },
		{ { "x", "v1", "r", NULL, "a" }, "", NULL, "bad namespace ''" },
		{ { "x/y", "v1", "r", NULL, "a" }, "t", NULL, "bad API group" },
		{ { "x", "v1/../", "r", NULL, "a" }, "t", NULL, "bad API version" },
		{ { "x", "v1", "R", NULL, "a" }, "t", NULL, "bad resource 'R'" },
		{ { "x", "v1", "r", NULL, NULL }, "t", "status", "bad subresource" },
		{ { "x", "v1", "r", NULL, "a" }, "t", "st/x", "bad subresource" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		err[0] = '\0';
		assert_int_equal(k8s_path(&bad[i].ref, bad[i].ns, bad[i].sub, out, sizeof out, err,
		                          sizeof err), -1);
		assert_has(err, bad[i].want);
	}
	char name[300];
	memset(name, 'a', 254);
	name[254] = '\0';
	k8s_ref longname = { "x", "v1", "r", NULL, name };
	assert_int_equal(k8s_path(&longname, "t", NULL, out, sizeof out, err, sizeof err), -1);
	name[253] = '\0';
	assert_int_equal(k8s_path(&longname, "t", NULL, out, sizeof out, err, sizeof err), 0);
	char tiny[16];
	assert_int_equal(k8s_path(&vs, "test", NULL, tiny, sizeof tiny, err, sizeof err), -1);
	assert_string_equal(err, "path too long");
}

/* ---- Status and error lines ------------------------------------------- */

static void status_objects_are_read_and_garbage_is_not_one(void **state)
{
	k8s_status st;
	const char *s = "{\"kind\":\"Status\",\"apiVersion\":\"v1\",\"status\":\"Failure\","
	                "\"message\":\"HTTPRoute \\\"x\\\" is invalid\",\"reason\":\"Invalid\","
	                "\"details\":{\"name\":\"x\",\"kind\":\"HTTPRoute\",\"causes\":["
	                "{\"reason\":\"FieldValueInvalid\",\"message\":\"must be >= 0\","
	                "\"field\":\"spec.rules[0].backendRefs[0].weight\"},"
	                "{\"message\":\"line\\nbreak\"}]},\"code\":422}";
	assert_int_equal(k8s_parse_status(s, strlen(s), &st), 0);
	assert_int_equal(st.code, 422);
	assert_string_equal(st.reason, "Invalid");
	assert_string_equal(st.message, "HTTPRoute \"x\" is invalid");
	assert_string_equal(st.details_name, "x");
	assert_string_equal(st.causes, "spec.rules[0].backendRefs[0].weight: must be >= 0 "
	                               "(FieldValueInvalid); line?break");
	/* without kind, the shape of one */
	s = "{\"status\":\"Failure\",\"code\":500,\"message\":\"boom\"}";
	assert_int_equal(k8s_parse_status(s, strlen(s), &st), 0);
	assert_int_equal(st.code, 500);
	static const char *const not_status[] = {
		"", "garbage", "[]", "{\"kind\":\"VirtualService\"}", "{\"code\":500}",
		"{\"kind\":\"Status\",\"kind\":\"Status\"}",   /* duplicated keys */
		"{\"status\":\"Failure\",\"code\":\"500\"}",
	};
	for (size_t i = 0; i < sizeof not_status / sizeof not_status[0]; i++)
		assert_int_equal(k8s_parse_status(not_status[i], strlen(not_status[i]), &st), -1);
	/* wrong types inside a Status are left out, not trusted */
	s = "{\"kind\":\"Status\",\"code\":4040,\"message\":7,\"reason\":[],\"details\":{"
	    "\"causes\":{\"a\":1}}}";
	assert_int_equal(k8s_parse_status(s, strlen(s), &st), 0);
	assert_int_equal(st.code, 0);
	assert_string_equal(st.message, "");
	assert_string_equal(st.causes, "");
}

static void error_lines_say_what_the_api_said_and_what_it_means(void **state)
{
	char out[2048];
	k8s_ref vs = { "networking.istio.io", "v1", "virtualservices", NULL, "podinfo" };
	const char *forbidden =
		"{\"kind\":\"Status\",\"status\":\"Failure\",\"reason\":\"Forbidden\",\"code\":403,"
		"\"message\":\"virtualservices.networking.istio.io \\\"podinfo\\\" is forbidden: User "
		"\\\"system:serviceaccount:shop:canaryd\\\" cannot patch resource \\\"virtualservices\\\" "
		"in API group \\\"networking.istio.io\\\" in the namespace \\\"shop\\\"\","
		"\"details\":{\"name\":\"podinfo\",\"group\":\"networking.istio.io\",\"kind\":"
		"\"virtualservices\"}}";
	k8s_error_text("patch", &vs, "shop", 403, forbidden, strlen(forbidden), out, sizeof out);
	assert_string_equal(out,
		"cannot patch virtualservices.networking.istio.io 'podinfo' in namespace 'shop': "
		"forbidden (403): virtualservices.networking.istio.io \"podinfo\" is forbidden: User "
		"\"system:serviceaccount:shop:canaryd\" cannot patch resource \"virtualservices\" in API "
		"group \"networking.istio.io\" in the namespace \"shop\"; canaryd needs an RBAC rule "
		"{apiGroups: [\"networking.istio.io\"], resources: [\"virtualservices\"], verbs: "
		"[\"patch\"]} in a Role bound to its service account in namespace 'shop'");

	/* a path the API does not serve: the mesh is not installed */
	const char *nf = "{\"kind\":\"Status\",\"status\":\"Failure\",\"message\":\"the server could "
	                 "not find the requested resource\",\"reason\":\"NotFound\",\"details\":{},"
	                 "\"code\":404}";
	k8s_error_text("get", &vs, "shop", 404, nf, strlen(nf), out, sizeof out);
	assert_string_equal(out, "cannot get virtualservices.networking.istio.io 'podinfo' in "
	                         "namespace 'shop': Istio is not installed (no networking.istio.io/v1 "
	                         "virtualservices in the API)");
	k8s_ref ts = { "split.smi-spec.io", "v1alpha2", "trafficsplits", NULL, "p" };
	k8s_error_text("get", &ts, "shop", 404, nf, strlen(nf), out, sizeof out);
	assert_has(out, "SMI is not installed (no split.smi-spec.io/v1alpha2 trafficsplits");
	k8s_ref dep = { "apps", "v1", "deployments", NULL, "p" };
	k8s_error_text("get", &dep, "shop", 404, nf, strlen(nf), out, sizeof out);
	assert_has(out, "the API does not serve apps/v1 deployments (404)");
	/* the object itself missing is only "not found" */
	const char *gone = "{\"kind\":\"Status\",\"reason\":\"NotFound\",\"code\":404,\"message\":"
	                   "\"virtualservices.networking.istio.io \\\"podinfo\\\" not found\","
	                   "\"details\":{\"name\":\"podinfo\"}}";
	k8s_error_text("get", &vs, "shop", 404, gone, strlen(gone), out, sizeof out);
	assert_has(out, "'shop': not found (404): virtualservices.networking.istio.io \"podinfo\"");
	assert_null(strstr(out, "installed"));

	/* 422: the causes come along when the message does not hold them */
	const char *inv = "{\"kind\":\"Status\",\"reason\":\"Invalid\",\"code\":422,\"message\":"
	                  "\"HTTPRoute \\\"p\\\" is invalid\",\"details\":{\"causes\":[{\"field\":"
	                  "\"spec.hostnames[0]\",\"message\":\"bad host\",\"reason\":"
	                  "\"FieldValueInvalid\"}]}}";
	k8s_ref hr = { "gateway.networking.k8s.io", "v1", "httproutes", NULL, "p" };
	k8s_error_text("create", &hr, "shop", 422, inv, strlen(inv), out, sizeof out);
	assert_string_equal(out, "cannot create httproutes.gateway.networking.k8s.io 'p' in "
	                         "namespace 'shop': invalid (422): HTTPRoute \"p\" is invalid; causes: "
	                         "spec.hostnames[0]: bad host (FieldValueInvalid)");
	const char *conflict = "{\"kind\":\"Status\",\"reason\":\"AlreadyExists\",\"code\":409,"
	                       "\"message\":\"x exists\"}";
	k8s_error_text("create", &hr, "shop", 409, conflict, strlen(conflict), out, sizeof out);
	assert_has(out, ": already exists (409): x exists");

	/* not a Status: quoted, cut, one line */
	const char *html = "<html>\n<body>502 Bad Gateway</body>\n</html>";
	k8s_error_text("list", &hr, "shop", 502, html, strlen(html), out, sizeof out);
	assert_string_equal(out, "cannot list httproutes.gateway.networking.k8s.io 'p' in namespace "
	                         "'shop': the API answered 502 with something that is not a Status: "
	                         "'<html>?<body>502 Bad Gateway</body>?</html>'");
	char big[3000];
	memset(big, 'x', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	k8s_error_text("get", &hr, "shop", 500, big, strlen(big), out, sizeof out);
	assert_has(out, "xxx...'");
	assert_true(strlen(out) < 300);
	k8s_error_text("get", &hr, "shop", 503, "", 0, out, sizeof out);
	assert_has(out, "the API answered 503 with an empty body");
	/* a hostile message cannot break the line */
	const char *evil = "{\"kind\":\"Status\",\"code\":500,\"reason\":\"X\\u001b[2J\",\"message\":"
	                   "\"a\\r\\nfake: line\\u2028\"}";
	k8s_error_text("get", &hr, "shop", 500, evil, strlen(evil), out, sizeof out);
	assert_one_line(out);
	char tiny[40];
	k8s_error_text("patch", &vs, "shop", 403, forbidden, strlen(forbidden), tiny, sizeof tiny);
	assert_int_equal(strlen(tiny), sizeof tiny - 1);
}

static void warning_headers_give_their_text(void **state)
{
	char out[256] = "";
	assert_int_equal(k8s_warning_text(" 299 - \"unknown field \\\"spec.x\\\"\"", out, sizeof out), 1);
	assert_string_equal(out, "unknown field \"spec.x\"");
	assert_int_equal(k8s_warning_text("299 - \"v1beta1 is deprecated\" \"Sat, 1 Jan 2000\"", out,
	                                  sizeof out), 1);
	assert_string_equal(out, "unknown field \"spec.x\"; v1beta1 is deprecated");
	assert_int_equal(k8s_warning_text("no warning", out, sizeof out), 0);
	assert_int_equal(k8s_warning_text("299 -", out, sizeof out), 0);
	assert_int_equal(k8s_warning_text("29 - \"x\"", out, sizeof out), 0);
	char small[12] = "";
	assert_int_equal(k8s_warning_text("299 - \"a very long warning text\"", small, sizeof small), 1);
	assert_string_equal(small, "a very long");
	char ctl[64] = "";
	k8s_warning_text("299 - \"a\x1b[31mb\"", ctl, sizeof ctl);
	assert_one_line(ctl);
}

/* ---- watch events ----------------------------------------------------- */

static void watch_events_are_checked(void **state)
{
	k8s_event_type t;
	json_t *o;
	char err[256];
	const char *added = "{\"type\":\"ADDED\",\"object\":{\"kind\":\"HTTPRoute\",\"metadata\":"
	                    "{\"name\":\"p\",\"resourceVersion\":\"17\"}}}";
	assert_int_equal(k8s_parse_event(added, strlen(added), &t, &o, err, sizeof err), 0);
	assert_int_equal(t, K8S_EV_ADDED);
	assert_string_equal(json_string_value(json_object_get(json_object_get(o, "metadata"), "name")),
	                    "p");
	json_decref(o);
	const char *bm = "{\"type\":\"BOOKMARK\",\"object\":{\"kind\":\"HTTPRoute\",\"metadata\":"
	                 "{\"resourceVersion\":\"20\"}}}";
	assert_int_equal(k8s_parse_event(bm, strlen(bm), &t, &o, err, sizeof err), 0);
	assert_int_equal(t, K8S_EV_BOOKMARK);
	json_decref(o);
	const char *gone = "{\"type\":\"ERROR\",\"object\":{\"kind\":\"Status\",\"code\":410,"
	                   "\"reason\":\"Expired\",\"message\":\"too old resource version: 5 (9)\"}}";
	assert_int_equal(k8s_parse_event(gone, strlen(gone), &t, &o, err, sizeof err), 0);
	assert_int_equal(t, K8S_EV_ERROR);
	k8s_status st;
	assert_int_equal(k8s_status_from_json(o, &st), 0);
	assert_int_equal(st.code, 410);
	json_decref(o);

	static const struct { const char *line, *want; } bad[] = {
		{ "", "event is not JSON" },
		{ "{\"type\":\"ADDED\",\"object\":{\"metadata\":{\"resourceVersion\":\"1\"}}",
		  "event is not JSON" },                              /* truncated */
		{ "[1]", "event has no known type" },
		{ "{\"type\":\"RENAMED\",\"object\":{}}", "event has no known type ('RENAMED')" },
		{ "{\"type\":7,\"object\":{}}", "event has no known type" },
		{ "{\"type\":\"ADDED\"}", "ADDED event has no object" },
		{ "{\"type\":\"ADDED\",\"object\":[]}", "ADDED event has no object" },
		{ "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{}}}",
		  "MODIFIED event has no metadata.resourceVersion" },
		{ "{\"type\":\"MODIFIED\",\"object\":{\"metadata\":{\"resourceVersion\":5}}}",
		  "has no metadata.resourceVersion" },
		{ "{\"type\":\"BOOKMARK\",\"object\":{\"metadata\":{\"resourceVersion\":\"\"}}}",
		  "has no metadata.resourceVersion" },
		{ "{\"type\":\"ERROR\",\"object\":{\"kind\":\"HTTPRoute\"}}",
		  "ERROR event whose object is not a Status" },
		{ "{\"type\":\"ADDED\",\"type\":\"DELETED\",\"object\":{}}", "event is not JSON" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		o = (json_t *)1;
		err[0] = '\0';
		assert_int_equal(k8s_parse_event(bad[i].line, strlen(bad[i].line), &t, &o, err,
		                                 sizeof err), -1);
		assert_null(o);
		assert_has(err, bad[i].want);
		assert_one_line(err);
	}
}

/* ---- readiness -------------------------------------------------------- */

static int dep_ready(const char *json, char *why, size_t n)
{
	json_t *j = json_loads(json, 0, NULL);
	assert_non_null(j);
	int r = k8s_deployment_ready(j, why, n);
	json_decref(j);
	assert_one_line(why);
	return r;
}

static void deployment_readiness(void **state)
{
	char why[512];
	static const struct { const char *json; int want; const char *why; } rows[] = {
		{ "{\"metadata\":{\"name\":\"w\",\"generation\":3},\"status\":{\"observedGeneration\":2}}",
		  0, "waiting for the controller to observe generation 3 (it has seen 2)" },
		{ "{\"metadata\":{\"name\":\"w\",\"generation\":3},\"spec\":{\"replicas\":3},\"status\":"
		  "{\"observedGeneration\":3,\"updatedReplicas\":1}}",
		  0, "1 of 3 new replicas have been updated" },
		{ "{\"metadata\":{\"name\":\"w\"},\"spec\":{\"replicas\":2},\"status\":{\"replicas\":3,"
		  "\"updatedReplicas\":2}}", 0, "1 old replicas are pending termination" },
		{ "{\"metadata\":{\"name\":\"w\"},\"spec\":{\"replicas\":2},\"status\":{\"replicas\":2,"
		  "\"updatedReplicas\":2,\"availableReplicas\":1}}",
		  0, "1 of 2 updated replicas are available" },
		{ "{\"metadata\":{\"name\":\"w\"},\"spec\":{\"replicas\":2},\"status\":{\"replicas\":2,"
		  "\"updatedReplicas\":2,\"availableReplicas\":2,\"conditions\":[{\"type\":\"Available\","
		  "\"status\":\"False\",\"reason\":\"MinimumReplicasUnavailable\",\"message\":\"m\"}]}}",
		  0, "is not Available: MinimumReplicasUnavailable: m" },
		{ "{\"metadata\":{\"name\":\"w\",\"generation\":2},\"spec\":{\"replicas\":2},\"status\":{"
		  "\"observedGeneration\":2,\"replicas\":2,\"updatedReplicas\":2,\"availableReplicas\":2,"
		  "\"conditions\":[{\"type\":\"Available\",\"status\":\"True\"}]}}",
		  1, "deployment 'w' is available" },
		{ "{\"metadata\":{\"name\":\"w\"},\"status\":{\"conditions\":[{\"type\":\"Progressing\","
		  "\"status\":\"False\",\"reason\":\"ProgressDeadlineExceeded\",\"message\":\"timed out\"}]}}",
		  -1, "exceeded its progress deadline: timed out" },
		{ "{\"metadata\":{\"name\":\"w\"},\"spec\":{\"replicas\":0}}", 1, "available" },
		/* wrong types are not trusted */
		{ "{\"metadata\":{\"name\":\"w\"},\"status\":{\"updatedReplicas\":\"2\"}}",
		  0, "has a status field of the wrong type" },
		{ "{\"metadata\":{\"name\":\"w\"},\"status\":{\"conditions\":{}}}",
		  0, "has a status field of the wrong type" },
		{ "{\"metadata\":{\"name\":\"w\",\"generation\":1.5}}", 0, "wrong type" },
		{ "{\"kind\":\"StatefulSet\",\"metadata\":{\"name\":\"w\"}}", 0, "not a Deployment" },
		{ "[]", 0, "not a Deployment object" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		int r = dep_ready(rows[i].json, why, sizeof why);
		if (r != rows[i].want)
			print_message("row %zu: %d, %s\n", i, r, why);
		assert_int_equal(r, rows[i].want);
		assert_has(why, rows[i].why);
	}
}

static int route_ready(const char *json, char *why, size_t n)
{
	json_error_t je;
	json_t *j = json_loads(json, 0, &je);
	if (!j)
		print_message("%s\n", je.text);
	assert_non_null(j);
	int r = k8s_httproute_ready(j, why, n);
	json_decref(j);
	assert_one_line(why);
	return r;
}

#define ROUTE(gen, refs, parents) \
	"{\"metadata\":{\"name\":\"p\",\"namespace\":\"shop\",\"generation\":" #gen "}," \
	"\"spec\":{\"parentRefs\":" refs "},\"status\":{\"parents\":" parents "}}"
#define GW_REF "{\"name\":\"gw\",\"namespace\":\"infra\"}"
#define SVC_REF "{\"group\":\"\",\"kind\":\"Service\",\"name\":\"p\"}"
#define ACCEPTED(ref, st, og) \
	"{\"parentRef\":" ref ",\"controllerName\":\"c\",\"conditions\":[{\"type\":\"Accepted\"," \
	"\"status\":\"" st "\",\"reason\":\"R\",\"message\":\"M\",\"observedGeneration\":" #og "}]}"
#define GW_REF_FULL "{\"group\":\"gateway.networking.k8s.io\",\"kind\":\"Gateway\"," \
	"\"name\":\"gw\",\"namespace\":\"infra\"}"
#define SVC_REF_FULL "{\"group\":\"\",\"kind\":\"Service\",\"name\":\"p\",\"namespace\":\"shop\"}"

static void httproute_readiness(void **state)
{
	char why[512];
	static const struct { const char *json; int want; const char *why; } rows[] = {
		/* the API's defaults make the status ref match the spec ref */
		{ ROUTE(2, "[" GW_REF "]", "[" ACCEPTED(GW_REF_FULL, "True", 2) "]"), 1,
		  "accepted by its parents at generation 2" },
		{ ROUTE(3, "[" GW_REF "]", "[" ACCEPTED(GW_REF_FULL, "True", 2) "]"), 0,
		  "parent Gateway 'infra/gw' has seen generation 2, the route is at 3" },
		{ ROUTE(2, "[" GW_REF "]", "[" ACCEPTED(GW_REF_FULL, "False", 2) "]"), -1,
		  "did not accept generation 2: R: M" },
		{ ROUTE(2, "[" GW_REF "]", "[]"), 0, "has not reported status yet" },
		{ ROUTE(2, "[" GW_REF "]", "null"), 0, "has not reported status yet" },
		/* GAMMA: a Service parent, and both kinds at once */
		{ ROUTE(1, "[" GW_REF "," SVC_REF "]", "[" ACCEPTED(GW_REF_FULL, "True", 1) ","
		  ACCEPTED(SVC_REF_FULL, "True", 1) "]"), 1, "accepted" },
		{ ROUTE(1, "[" GW_REF "," SVC_REF "]", "[" ACCEPTED(GW_REF_FULL, "True", 1) "]"), 0,
		  "parent Service 'shop/p' has not reported status yet" },
		/* a status for another section of the gateway is not this one's */
		{ ROUTE(1, "[{\"name\":\"gw\",\"namespace\":\"infra\",\"sectionName\":\"https\"}]",
		  "[" ACCEPTED(GW_REF_FULL, "True", 1) "]"), 0, "has not reported status yet" },
		{ ROUTE(1, "[" GW_REF "]", "[{\"parentRef\":" GW_REF_FULL ",\"conditions\":[]}]"), 0,
		  "has no Accepted condition yet" },
		{ ROUTE(1, "[]", "[]"), 0, "has no spec.parentRefs" },
		{ ROUTE(1, "[{\"namespace\":\"x\"}]", "[]"), 0, "spec.parentRefs[0] is malformed" },
		{ ROUTE(1, "[" GW_REF "]", "[" ACCEPTED(GW_REF_FULL, "True", "1") "]"), 0,
		  "has seen generation" },
		{ "{\"metadata\":{\"generation\":\"1\"}}", 0, "not an HTTPRoute object" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		int r = route_ready(rows[i].json, why, sizeof why);
		if (r != rows[i].want)
			print_message("row %zu: %d, %s\n", i, r, why);
		assert_int_equal(r, rows[i].want);
		assert_has(why, rows[i].why);
	}
}

/* ---- comparing desired and live --------------------------------------- */

static int subset(const char *d, const char *l)
{
	json_t *dj = json_loads(d, JSON_DECODE_ANY, NULL), *lj = json_loads(l, JSON_DECODE_ANY, NULL);
	assert_non_null(dj);
	assert_non_null(lj);
	int r = k8s_json_subset(dj, lj);
	json_decref(dj);
	json_decref(lj);
	return r;
}

static void desired_is_found_in_live_despite_defaults(void **state)
{
	/* what the API adds (defaults) does not make them differ */
	assert_int_equal(subset("{\"rules\":[{\"backendRefs\":[{\"name\":\"a\",\"weight\":90}]}]}",
	                        "{\"rules\":[{\"backendRefs\":[{\"group\":\"\",\"kind\":\"Service\","
	                        "\"name\":\"a\",\"weight\":90}],\"matches\":[{\"path\":{}}]}]}"), 1);
	/* a weight that differs does */
	assert_int_equal(subset("{\"rules\":[{\"backendRefs\":[{\"name\":\"a\",\"weight\":80}]}]}",
	                        "{\"rules\":[{\"backendRefs\":[{\"name\":\"a\",\"weight\":90}]}]}"), 0);
	/* so does a list of another length, or in another order */
	assert_int_equal(subset("[1,2]", "[1,2,3]"), 0);
	assert_int_equal(subset("[1,2]", "[2,1]"), 0);
	assert_int_equal(subset("{\"a\":1}", "{}"), 0);
	assert_int_equal(subset("{\"a\":null}", "{\"a\":null}"), 1);
	assert_int_equal(subset("{\"a\":null}", "{}"), 0);
	assert_int_equal(subset("1", "1.0"), 1);
	assert_int_equal(subset("\"1\"", "1"), 0);
	assert_int_equal(subset("9007199254740993", "9007199254740992"), 0);
	assert_int_equal(k8s_json_subset(NULL, NULL), 1);
	json_t *o = json_object();
	assert_int_equal(k8s_json_subset(o, NULL), 0);
	json_decref(o);
}

/* ---- teardown from callbacks ------------------------------------------ */

/* A port on loopback where nothing listens: every request fails at once. */
static int closed_port(void)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	uv_tcp_t t;
	uv_tcp_init(&loop, &t);
	struct sockaddr_in a;
	uv_ip4_addr("127.0.0.1", 0, &a);
	uv_tcp_bind(&t, (struct sockaddr *)&a, 0);
	struct sockaddr_storage ss;
	int len = sizeof ss;
	uv_tcp_getsockname(&t, (struct sockaddr *)&ss, &len);
	int port = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	uv_close((uv_handle_t *)&t, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	return port;
}

static k8s *client(uv_loop_t *loop)
{
	char server[64], err[256];
	snprintf(server, sizeof server, "https://127.0.0.1:%d", closed_port());
	k8s_config cfg = { .server = server, .token = "t", .namespace = "test",
	                   .timeout_ms = 2000 };
	k8s *k = k8s_new(loop, &cfg, err, sizeof err);
	if (!k)
		print_message("%s\n", err);
	assert_non_null(k);
	return k;
}

struct calls { int n; k8s *k; char error[1024]; int free_in_cb; };

static void done_cb(void *arg, const k8s_result *res)
{
	struct calls *c = arg;
	c->n++;
	snprintf(c->error, sizeof c->error, "%s", res->error ? res->error : "");
	if (c->free_in_cb)
		k8s_free(c->k);
}

static void free_from_a_callback_is_safe(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	k8s *k = client(&loop);
	struct calls a = { 0, k, "", 1 }, b = { 0, k, "", 0 };
	char err[256];
	k8s_ref ref = { "networking.istio.io", "v1", "virtualservices", NULL, "p" };
	assert_int_equal(k8s_get(k, &ref, NULL, done_cb, &a, err, sizeof err), 0);
	assert_int_equal(k8s_get(k, &ref, NULL, done_cb, &b, err, sizeof err), 0);
	/* never from inside the call */
	assert_int_equal(a.n + b.n, 0);
	uv_run(&loop, UV_RUN_DEFAULT);
	/* the first to end freed the client: the other is never called */
	assert_int_equal(a.n + b.n, 1);
	struct calls *first = a.n ? &a : &b;
	assert_has(first->error, "cannot get virtualservices.networking.istio.io 'p' in namespace "
	                         "'test': 'https://127.0.0.1:");
	assert_int_equal(uv_loop_close(&loop), 0);
}

static int events;
static void stop_on_error(void *arg, const k8s_event *ev)
{
	k8s_watch **w = arg;
	events++;
	assert_int_equal(ev->type, K8S_EV_ERROR);
	assert_has(ev->error, "cannot list httproutes.gateway.networking.k8s.io in namespace 'test'");
	k8s_watch_stop(*w);
}

static void free_on_error(void *arg, const k8s_event *ev)
{
	events++;
	k8s_free(arg);
}

static void watch_stop_and_free_from_its_callback(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	k8s *k = client(&loop);
	char err[256];
	k8s_ref ref = { "gateway.networking.k8s.io", "v1", "httproutes", NULL, NULL };
	k8s_watch *w = NULL;
	events = 0;
	w = k8s_watch_start(k, &ref, NULL, stop_on_error, &w, err, sizeof err);
	assert_non_null(w);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(events, 1);
	/* the client is still usable; a second watch frees it from its callback */
	events = 0;
	assert_non_null(k8s_watch_start(k, &ref, NULL, free_on_error, k, err, sizeof err));
	assert_non_null(k8s_watch_start(k, &ref, NULL, free_on_error, k, err, sizeof err));
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(events, 1);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void free_with_everything_running(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	k8s *k = client(&loop);
	char err[256];
	struct calls a = { 0 };
	k8s_ref ref = { "gateway.networking.k8s.io", "v1", "httproutes", NULL, "p" };
	assert_int_equal(k8s_get(k, &ref, NULL, done_cb, &a, err, sizeof err), 0);
	assert_int_equal(k8s_upsert(k, &ref, NULL, NULL, done_cb, &a, err, sizeof err), 0);
	events = 0;
	assert_non_null(k8s_watch_start(k, &ref, NULL, free_on_error, NULL, err, sizeof err));
	k8s_free(k);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(a.n, 0);
	assert_int_equal(events, 0);
	assert_int_equal(uv_loop_close(&loop), 0);
}

static void refusals_start_nothing(void **state)
{
	uv_loop_t loop;
	uv_loop_init(&loop);
	k8s *k = client(&loop);
	char err[256] = "";
	struct calls a = { 0 };
	k8s_ref bad = { "x", "v1", "r", NULL, "../etc/passwd" };
	assert_int_equal(k8s_get(k, &bad, NULL, done_cb, &a, err, sizeof err), -1);
	assert_has(err, "bad object name");
	k8s_ref coll = { "x", "v1", "r", NULL, NULL };
	assert_int_equal(k8s_delete(k, &coll, done_cb, &a, err, sizeof err), -1);
	assert_string_equal(err, "no object name given");
	json_t *o = json_loads("{\"metadata\":{\"name\":\"a\"}}", 0, NULL);
	k8s_ref named = { "x", "v1", "r", NULL, "a" };
	assert_int_equal(k8s_update(k, &named, o, NULL, done_cb, &a, err, sizeof err), -1);
	assert_has(err, "has no metadata.resourceVersion");
	assert_int_equal(k8s_apply(k, &named, o, done_cb, &a, err, sizeof err), -1);
	assert_has(err, "needs apiVersion and kind");
	k8s_ref other = { "x", "v1", "r", NULL, "b" };
	assert_int_equal(k8s_create(k, &other, o, done_cb, &a, err, sizeof err), -1);
	assert_has(err, "the object is named 'a', not 'b'");
	json_t *arr = json_array();
	assert_int_equal(k8s_merge_patch(k, &named, arr, done_cb, &a, err, sizeof err), -1);
	assert_string_equal(err, "a merge patch is a JSON object");
	json_decref(arr);
	json_decref(o);
	/* at most 64 requests in flight */
	int started = 0;
	for (int i = 0; i < 100; i++)
		started += k8s_get(k, &named, NULL, done_cb, &a, err, sizeof err) == 0;
	assert_int_equal(started, 64);
	assert_has(err, "not sent: 64 requests to the API are already running");
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(a.n, 64);
	k8s_free(k);
	uv_run(&loop, UV_RUN_DEFAULT);
	assert_int_equal(uv_loop_close(&loop), 0);

	k8s_config http = { .server = "http://127.0.0.1:1", .namespace = "test" };
	assert_null(k8s_new(&loop, &http, err, sizeof err));
	assert_has(err, "no https:// server");
	k8s_config badns = { .server = "https://127.0.0.1:1", .namespace = "Not_A_Label" };
	assert_null(k8s_new(&loop, &badns, err, sizeof err));
	assert_has(err, "bad namespace");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(kubeconfig_current_context),
		cmocka_unit_test(kubeconfig_named_context_and_relative_files),
		cmocka_unit_test(kubeconfig_refuses_what_canaryd_cannot_honour),
		cmocka_unit_test(kubeconfig_refuses_bad_files),
		cmocka_unit_test(incluster_reads_the_service_account),
		cmocka_unit_test(paths_are_built_from_checked_names),
		cmocka_unit_test(status_objects_are_read_and_garbage_is_not_one),
		cmocka_unit_test(error_lines_say_what_the_api_said_and_what_it_means),
		cmocka_unit_test(warning_headers_give_their_text),
		cmocka_unit_test(watch_events_are_checked),
		cmocka_unit_test(deployment_readiness),
		cmocka_unit_test(httproute_readiness),
		cmocka_unit_test(desired_is_found_in_live_despite_defaults),
		cmocka_unit_test(free_from_a_callback_is_safe),
		cmocka_unit_test(watch_stop_and_free_from_its_callback),
		cmocka_unit_test(free_with_everything_running),
		cmocka_unit_test(refusals_start_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
