/* k8s_config.c - where the API server is and who canaryd is to it: from a
 * pod's service account (in-cluster) or from a kubeconfig file. See k8s.h.
 *
 * A kubeconfig holds more than canaryd can honour (credential plugins,
 * impersonation, proxies, skipping TLS verification). Each of those is
 * refused by name rather than ignored: a client that quietly connects as
 * someone else, or without checking whom it talks to, is worse than one
 * that does not start. Keys canaryd has no use for and that change nothing
 * about the connection (preferences, extensions) are ignored, as kubectl
 * ignores what it does not know. */
#include "k8s.h"

#include <errno.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "util.h"

#define K8S_MAX_FILE (1 << 20)  /* a kubeconfig, a CA bundle, a token */
#define YAML_MAX_DEPTH 32

/* Reads the file <path> whole (at most K8S_MAX_FILE bytes) into *<out>
 * (NUL-terminated, *<len> bytes). Returns 0, or -1 with <err>. */
static int read_file(const char *path, char **out, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
		return -1;
	}
	buf b = BUF_INIT;
	char chunk[8192];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
		if (b.len + n > K8S_MAX_FILE) {
			fclose(f);
			buf_release(&b);
			snprintf(err, errlen, "cannot read '%s': larger than %d bytes", path, K8S_MAX_FILE);
			return -1;
		}
		buf_append(&b, chunk, n);
	}
	int failed = ferror(f);
	fclose(f);
	if (failed) {
		buf_release(&b);
		snprintf(err, errlen, "cannot read '%s': read error", path);
		return -1;
	}
	if (!b.p)
		b.p = xstrdup("");
	*out = b.p;
	*len = b.len;
	return 0;
}

/* Strips trailing blanks and newlines in place (tokens and namespaces
 * are files that end with one). */
static void rstrip(char *s)
{
	size_t n = strlen(s);
	while (n && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
}

/* A token is sent in a header: printable ASCII, no blanks. */
static int token_ok(const char *t)
{
	if (!t[0])
		return 0;
	for (const char *p = t; *p; p++)
		if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
			return 0;
	return 1;
}

void k8s_config_release(k8s_config *c)
{
	free(c->server);
	free(c->ca_pem);
	free(c->token);
	free(c->token_file);
	free(c->cert_pem);
	free(c->key_pem);
	free(c->namespace);
	free(c->source);
	memset(c, 0, sizeof *c);
}

/* ---- in-cluster ------------------------------------------------------- */

int k8s_config_incluster(k8s_config *c, const k8s_incluster *where, char *err, size_t errlen)
{
	static const k8s_incluster none;
	if (!where)
		where = &none;
	const char *host = where->host ? where->host : getenv("KUBERNETES_SERVICE_HOST");
	const char *port = where->port ? where->port : getenv("KUBERNETES_SERVICE_PORT");
	const char *dir = where->dir ? where->dir : "/var/run/secrets/kubernetes.io/serviceaccount";
	if (!host || !host[0]) {
		snprintf(err, errlen, "not running in a cluster: KUBERNETES_SERVICE_HOST is not set");
		return -1;
	}
	if (!port || !port[0]) {
		snprintf(err, errlen, "not running in a cluster: KUBERNETES_SERVICE_PORT is not set");
		return -1;
	}
	char hostport[300];
	int v6 = strchr(host, ':') != NULL;
	snprintf(hostport, sizeof hostport, "%s%s%s:%s", v6 ? "[" : "", host, v6 ? "]" : "", port);
	char h[256];
	int p;
	if (strlen(hostport) >= sizeof hostport - 1 ||
	    util_parse_hostport(hostport, h, sizeof h, &p) != 0) {
		snprintf(err, errlen, "bad KUBERNETES_SERVICE_HOST/PORT '%.200s'", hostport);
		util_ascii_line(err);
		return -1;
	}
	memset(c, 0, sizeof *c);
	buf path = BUF_INIT;
	char *text = NULL;
	size_t len;
	buf_printf(&path, "%s/token", dir);
	if (read_file(path.p, &text, &len, err, errlen) != 0)
		goto fail;
	rstrip(text);
	if (!token_ok(text)) {
		snprintf(err, errlen, "'%s' holds no token", path.p);
		free(text);
		goto fail;
	}
	free(text);
	c->token_file = xstrdup(path.p);
	buf_reset(&path);
	buf_printf(&path, "%s/ca.crt", dir);
	if (read_file(path.p, &c->ca_pem, &len, err, errlen) != 0)
		goto fail;
	buf_reset(&path);
	buf_printf(&path, "%s/namespace", dir);
	if (read_file(path.p, &c->namespace, &len, err, errlen) != 0)
		goto fail;
	rstrip(c->namespace);
	char server[320];
	snprintf(server, sizeof server, "https://%s", hostport);
	c->server = xstrdup(server);
	c->source = xstrdup("in-cluster");
	buf_release(&path);
	return 0;
fail:
	buf_release(&path);
	k8s_config_release(c);
	return -1;
}

/* ---- YAML to JSON ----------------------------------------------------- */

/* Reads one YAML node from <p> into a jansson value: mappings to objects,
 * sequences to arrays, scalars to strings (kubeconfig's values are strings
 * but for one boolean, read by the caller). Anchors, aliases and
 * duplicated keys are refused, as the Go decoder kubectl uses refuses
 * duplicates. Returns the value, or NULL with <err>. */
static json_t *yaml_node(yaml_parser_t *p, yaml_event_t *ev, int depth, char *err, size_t errlen)
{
	if (depth > YAML_MAX_DEPTH) {
		snprintf(err, errlen, "line %zu: nested deeper than %d", ev->start_mark.line + 1,
		         YAML_MAX_DEPTH);
		return NULL;
	}
	if (ev->type == YAML_ALIAS_EVENT ||
	    (ev->type == YAML_SCALAR_EVENT && ev->data.scalar.anchor) ||
	    (ev->type == YAML_MAPPING_START_EVENT && ev->data.mapping_start.anchor) ||
	    (ev->type == YAML_SEQUENCE_START_EVENT && ev->data.sequence_start.anchor)) {
		snprintf(err, errlen, "line %zu: anchors and aliases are not supported",
		         ev->start_mark.line + 1);
		return NULL;
	}
	if (ev->type == YAML_SCALAR_EVENT) {
		const char *v = (const char *)ev->data.scalar.value;
		size_t n = ev->data.scalar.length;
		int plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		if (plain && (n == 0 || (n == 1 && v[0] == '~') || (n == 4 && !memcmp(v, "null", 4))))
			return json_null();
		json_t *s = json_stringn(v, n);
		if (!s)
			snprintf(err, errlen, "line %zu: a value that is not UTF-8",
			         ev->start_mark.line + 1);
		return s;
	}
	int mapping = ev->type == YAML_MAPPING_START_EVENT;
	if (!mapping && ev->type != YAML_SEQUENCE_START_EVENT) {
		snprintf(err, errlen, "line %zu: unexpected YAML", ev->start_mark.line + 1);
		return NULL;
	}
	json_t *out = mapping ? json_object() : json_array();
	for (;;) {
		yaml_event_t key;
		if (!yaml_parser_parse(p, &key)) {
			snprintf(err, errlen, "line %zu: %s", p->problem_mark.line + 1,
			         p->problem ? p->problem : "bad YAML");
			json_decref(out);
			return NULL;
		}
		if (key.type == YAML_MAPPING_END_EVENT || key.type == YAML_SEQUENCE_END_EVENT) {
			yaml_event_delete(&key);
			return out;
		}
		if (!mapping) {
			json_t *item = yaml_node(p, &key, depth + 1, err, errlen);
			yaml_event_delete(&key);
			if (!item) {
				json_decref(out);
				return NULL;
			}
			json_array_append_new(out, item);
			continue;
		}
		if (key.type != YAML_SCALAR_EVENT) {
			snprintf(err, errlen, "line %zu: a key that is not a plain string",
			         key.start_mark.line + 1);
			yaml_event_delete(&key);
			json_decref(out);
			return NULL;
		}
		char *k = strndup((const char *)key.data.scalar.value, key.data.scalar.length);
		size_t kline = key.start_mark.line + 1;
		int dup = json_object_get(out, k) != NULL || strlen(k) != key.data.scalar.length;
		yaml_event_delete(&key);
		yaml_event_t val;
		if (!yaml_parser_parse(p, &val)) {
			snprintf(err, errlen, "line %zu: %s", p->problem_mark.line + 1,
			         p->problem ? p->problem : "bad YAML");
			free(k);
			json_decref(out);
			return NULL;
		}
		json_t *v = dup ? NULL : yaml_node(p, &val, depth + 1, err, errlen);
		yaml_event_delete(&val);
		if (dup)
			snprintf(err, errlen, "line %zu: key '%.100s' appears twice", kline, k);
		if (!v || json_object_set_new(out, k, v) != 0) {
			if (v && !dup)
				snprintf(err, errlen, "line %zu: a key that is not UTF-8", kline);
			free(k);
			json_decref(out);
			return NULL;
		}
		free(k);
	}
}

/* The one document of <text> as JSON, or NULL with <err>. */
static json_t *yaml_to_json(const char *text, size_t len, char *err, size_t errlen)
{
	yaml_parser_t p;
	yaml_event_t ev;
	json_t *doc = NULL;
	int docs = 0;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			snprintf(err, errlen, "line %zu: %s", p.problem_mark.line + 1,
			         p.problem ? p.problem : "bad YAML");
			json_decref(doc);
			doc = NULL;
			break;
		}
		yaml_event_type_t t = ev.type;
		if (t == YAML_STREAM_END_EVENT) {
			yaml_event_delete(&ev);
			if (!docs)
				snprintf(err, errlen, "empty file");
			break;
		}
		if (t == YAML_DOCUMENT_START_EVENT && ++docs > 1) {
			snprintf(err, errlen, "line %zu: more than one YAML document",
			         ev.start_mark.line + 1);
			yaml_event_delete(&ev);
			json_decref(doc);
			doc = NULL;
			break;
		}
		if (t == YAML_SCALAR_EVENT || t == YAML_MAPPING_START_EVENT ||
		    t == YAML_SEQUENCE_START_EVENT || t == YAML_ALIAS_EVENT) {
			doc = yaml_node(&p, &ev, 0, err, errlen);
			if (!doc) {
				yaml_event_delete(&ev);
				break;
			}
		}
		yaml_event_delete(&ev);
	}
	yaml_parser_delete(&p);
	if (doc && !json_is_object(doc)) {
		snprintf(err, errlen, "not a mapping");
		json_decref(doc);
		doc = NULL;
	}
	return doc;
}

/* ---- kubeconfig ------------------------------------------------------- */

/* The entry named <name> in the list <key> of <doc> ("clusters",
 * "users", "contexts"), and its inner object (<inner>: "cluster", ...). */
static const json_t *named(const json_t *doc, const char *key, const char *inner,
                           const char *name, char *err, size_t errlen)
{
	const json_t *list = json_object_get(doc, key);
	if (list && !json_is_array(list) && !json_is_null(list)) {
		snprintf(err, errlen, "'%s' is not a list", key);
		return NULL;
	}
	size_t i;
	const json_t *e;
	json_array_foreach(list, i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));
		if (n && strcmp(n, name) == 0) {
			const json_t *o = json_object_get(e, inner);
			if (!json_is_object(o)) {
				snprintf(err, errlen, "%s '%.100s' has no '%s' mapping", inner, name, inner);
				return NULL;
			}
			return o;
		}
	}
	snprintf(err, errlen, "no %s named '%.100s' in '%s'", inner, name, key);
	return NULL;
}

/* The string at <key> of <o>: 1 with *v, 0 when absent or empty, -1 when
 * not a string. */
static int get_str(const json_t *o, const char *key, const char **v)
{
	const json_t *x = json_object_get(o, key);
	*v = NULL;
	if (!x || json_is_null(x))
		return 0;
	if (!json_is_string(x))
		return -1;
	*v = json_string_value(x);
	return (*v)[0] ? 1 : 0;
}

/* Decodes base64 <in> (blanks ignored) into a new NUL-terminated string.
 * Returns NULL when <in> is not base64. */
static char *b64_decode(const char *in)
{
	size_t n = strlen(in);
	char *clean = xmalloc(n + 1);
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (in[i] != ' ' && in[i] != '\n' && in[i] != '\r' && in[i] != '\t')
			clean[k++] = in[i];
	clean[k] = '\0';
	if (k == 0 || k % 4 != 0 || k > INT_MAX) {
		free(clean);
		return NULL;
	}
	for (size_t i = 0; i < k; i++) {
		char c = clean[i];
		int ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		         c == '+' || c == '/' || (c == '=' && i >= k - 2);
		if (!ok || (i == k - 2 && c == '=' && clean[k - 1] != '=')) {
			free(clean);
			return NULL;
		}
	}
	char *out = xmalloc(k / 4 * 3 + 1);
	int m = EVP_DecodeBlock((unsigned char *)out, (const unsigned char *)clean, (int)k);
	if (m < 0) {
		free(clean);
		free(out);
		return NULL;
	}
	/* EVP_DecodeBlock counts the padding as zero bytes */
	m -= (clean[k - 1] == '=') + (clean[k - 2] == '=');
	free(clean);
	out[m] = '\0';
	if (strlen(out) != (size_t)m) { /* PEM has no NUL */
		free(out);
		return NULL;
	}
	return out;
}

/* <file> relative to the kubeconfig's folder (as kubectl resolves it). */
static void resolve_path(const char *kubeconfig, const char *file, buf *out)
{
	buf_reset(out);
	const char *slash = strrchr(kubeconfig, '/');
	if (file[0] == '/' || !slash)
		buf_puts(out, file);
	else
		buf_printf(out, "%.*s/%s", (int)(slash - kubeconfig), kubeconfig, file);
}

/* The PEM of <o>'s <key>-data (base64) or <key> (a file): 1 with *out,
 * 0 when neither is set, -1 with <err>. The data wins, as in kubectl. */
static int pem_field(const json_t *o, const char *key, const char *what, const char *path,
                     char **out, char *err, size_t errlen)
{
	char dkey[64];
	snprintf(dkey, sizeof dkey, "%s-data", key);
	const char *data, *file;
	int hd = get_str(o, dkey, &data), hf = get_str(o, key, &file);
	if (hd < 0 || hf < 0) {
		snprintf(err, errlen, "%s: '%s' is not a string", what, hd < 0 ? dkey : key);
		return -1;
	}
	if (hd > 0) {
		*out = b64_decode(data);
		if (!*out) {
			snprintf(err, errlen, "%s: '%s' is not base64", what, dkey);
			return -1;
		}
		return 1;
	}
	if (hf > 0) {
		buf p = BUF_INIT;
		size_t len;
		resolve_path(path, file, &p);
		int rc = read_file(p.p, out, &len, err, errlen);
		buf_release(&p);
		return rc == 0 ? 1 : -1;
	}
	return 0;
}

static int truthy(const json_t *v)
{
	const char *s = json_string_value(v);
	return s && (!strcmp(s, "true") || !strcmp(s, "True") || !strcmp(s, "TRUE"));
}

int k8s_config_kubeconfig_text(k8s_config *c, const char *text, size_t len,
                               const char *path, const char *context,
                               char *err, size_t errlen)
{
	char why[512] = "";
	memset(c, 0, sizeof *c);
	json_t *doc = yaml_to_json(text, len, why, sizeof why);
	const json_t *ctx = NULL, *cluster = NULL, *user = NULL;
	const char *s, *cluster_name = NULL, *user_name = NULL;
	if (!doc)
		goto fail;
	if (!context) {
		if (get_str(doc, "current-context", &context) <= 0) {
			snprintf(why, sizeof why, "no current-context (and no context given)");
			goto fail;
		}
	}
	if (!(ctx = named(doc, "contexts", "context", context, why, sizeof why)))
		goto fail;
	if (get_str(ctx, "cluster", &cluster_name) <= 0 || get_str(ctx, "user", &user_name) < 0) {
		snprintf(why, sizeof why, "context '%.100s' names no cluster", context);
		goto fail;
	}
	if (!(cluster = named(doc, "clusters", "cluster", cluster_name, why, sizeof why)))
		goto fail;

	/* the cluster */
	char what[200];
	snprintf(what, sizeof what, "cluster '%.100s'", cluster_name);
	if (get_str(cluster, "server", &s) <= 0) {
		snprintf(why, sizeof why, "%s has no server", what);
		goto fail;
	}
	if (strncmp(s, "https://", 8) != 0 || strlen(s) <= 8 || strpbrk(s, " \t\r\n\"\\")) {
		snprintf(why, sizeof why, "%s: server '%.200s' is not an https:// URL (canaryd sends "
		         "its credentials only over TLS)", what, s);
		goto fail;
	}
	c->server = xstrdup(s);
	for (size_t n = strlen(c->server); n > 8 && c->server[n - 1] == '/'; n--)
		c->server[n - 1] = '\0';
	if (truthy(json_object_get(cluster, "insecure-skip-tls-verify"))) {
		snprintf(why, sizeof why, "%s: insecure-skip-tls-verify is not supported (canaryd "
		         "always verifies the server: give certificate-authority)", what);
		goto fail;
	}
	static const char *const cluster_refused[] = { "proxy-url", "tls-server-name" };
	for (size_t i = 0; i < sizeof cluster_refused / sizeof cluster_refused[0]; i++)
		if (get_str(cluster, cluster_refused[i], &s) != 0) {
			snprintf(why, sizeof why, "%s: %s is not supported", what, cluster_refused[i]);
			goto fail;
		}
	if (pem_field(cluster, "certificate-authority", what, path, &c->ca_pem, why,
	              sizeof why) < 0)
		goto fail;

	/* the user: no user is anonymous */
	if (user_name) {
		if (!(user = named(doc, "users", "user", user_name, why, sizeof why)))
			goto fail;
		snprintf(what, sizeof what, "user '%.100s'", user_name);
		static const char *const user_refused[][2] = {
			{ "exec", "exec credential plugins are not supported (give a token, a tokenFile "
			          "or a client certificate)" },
			{ "auth-provider", "auth-provider plugins are not supported (give a token, a "
			                   "tokenFile or a client certificate)" },
			{ "username", "user names and passwords are not supported" },
			{ "password", "user names and passwords are not supported" },
			{ "as", "impersonation is not supported" },
			{ "as-uid", "impersonation is not supported" },
			{ "as-groups", "impersonation is not supported" },
			{ "as-user-extra", "impersonation is not supported" },
		};
		for (size_t i = 0; i < sizeof user_refused / sizeof user_refused[0]; i++) {
			const json_t *v = json_object_get(user, user_refused[i][0]);
			if (v && !json_is_null(v)) {
				snprintf(why, sizeof why, "%s: %s", what, user_refused[i][1]);
				goto fail;
			}
		}
		const char *tok, *tokfile;
		int ht = get_str(user, "token", &tok), hf = get_str(user, "tokenFile", &tokfile);
		if (ht < 0 || hf < 0) {
			snprintf(why, sizeof why, "%s: token or tokenFile is not a string", what);
			goto fail;
		}
		if (ht > 0 && hf > 0) {
			snprintf(why, sizeof why, "%s has both token and tokenFile: keep one", what);
			goto fail;
		}
		if (ht > 0) {
			if (!token_ok(tok)) {
				snprintf(why, sizeof why, "%s: token holds blanks or control characters",
				         what);
				goto fail;
			}
			c->token = xstrdup(tok);
		}
		if (hf > 0) {
			buf p = BUF_INIT;
			resolve_path(path, tokfile, &p);
			c->token_file = p.p;
		}
		int hc = pem_field(user, "client-certificate", what, path, &c->cert_pem, why,
		                   sizeof why);
		if (hc < 0)
			goto fail;
		int hk = pem_field(user, "client-key", what, path, &c->key_pem, why, sizeof why);
		if (hk < 0)
			goto fail;
		if (hc != hk) {
			snprintf(why, sizeof why, "%s has a client %s without its %s", what,
			         hc ? "certificate" : "key", hc ? "key" : "certificate");
			goto fail;
		}
	}
	int hn = get_str(ctx, "namespace", &s);
	if (hn < 0) {
		snprintf(why, sizeof why, "context '%.100s': namespace is not a string", context);
		goto fail;
	}
	c->namespace = xstrdup(hn > 0 ? s : "default");
	buf src = BUF_INIT;
	buf_printf(&src, "kubeconfig '%s' context '%s'", path, context);
	c->source = src.p;
	json_decref(doc);
	return 0;
fail:
	snprintf(err, errlen, "kubeconfig '%s': %s", path, why);
	util_ascii_line(err);
	json_decref(doc);
	k8s_config_release(c);
	return -1;
}

int k8s_config_kubeconfig(k8s_config *c, const char *path, const char *context,
                          char *err, size_t errlen)
{
	char *text;
	size_t len;
	memset(c, 0, sizeof *c);
	if (read_file(path, &text, &len, err, errlen) != 0)
		return -1;
	int rc = k8s_config_kubeconfig_text(c, text, len, path, context, err, errlen);
	free(text);
	return rc;
}
