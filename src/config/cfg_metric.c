/* cfg_metric.c - what a metric is read from (see config.h): the metrics
 * of spec.analysis, their providers (Prometheus and web) with their
 * queries, and MetricTemplate documents, kept until the whole file is
 * read so that a template may come after the canaries that use it, then
 * resolved into the metrics whose templateRef names them. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cfgload.h"
#include "notify.h"
#include "template.h"
#include "util.h"

static const struct {
	const char *name;
	eng_metric_kind kind;
} builtin_metrics[] = {
	{ "request-success-rate", ENG_M_SUCCESS_RATE },
	{ "request-duration", ENG_M_DURATION },
	{ "error-rate", ENG_M_ERROR_RATE },
};

/* ---- metric sources: provider, query, templateRef ---- */

void cfg_src_release(cfg_metric_source *s)
{
	free(s->address);
	free(s->query);
	free(s->url);
	free(s->method);
	json_decref(s->headers);
	free(s->body);
	free(s->json_path);
	free(s->template_name);
	free(s->type_name);
	free(s->account_id);
	for (int k = 0; k < CFG_KEYS; k++) {
		free(s->key[k]);
		free(s->key_file[k]);
		free(s->key_env[k]);
	}
	for (size_t i = 0; i < s->n_variables; i++) {
		free((char *)s->variables[i].key);
		free((char *)s->variables[i].value);
	}
	free(s->variables);
	memset(s, 0, sizeof *s);
}

static char *dup_or_null(const char *s)
{
	return s ? xstrdup(s) : NULL;
}

static void src_copy(cfg_metric_source *dst, const cfg_metric_source *src)
{
	dst->type = src->type;
	dst->address = dup_or_null(src->address);
	dst->query = dup_or_null(src->query);
	dst->url = dup_or_null(src->url);
	dst->method = dup_or_null(src->method);
	dst->headers = src->headers ? json_deep_copy(src->headers) : NULL;
	dst->body = dup_or_null(src->body);
	dst->json_path = dup_or_null(src->json_path);
	dst->timeout_ms = src->timeout_ms;
	dst->template_name = dup_or_null(src->template_name);
	dst->type_name = dup_or_null(src->type_name);
	dst->unread = src->unread;
	dst->unread_why = src->unread_why;
	dst->account_id = dup_or_null(src->account_id);
	for (int k = 0; k < CFG_KEYS; k++) {
		dst->key[k] = dup_or_null(src->key[k]);
		dst->key_file[k] = dup_or_null(src->key_file[k]);
		dst->key_env[k] = dup_or_null(src->key_env[k]);
	}
	/* templateVariables are the metric's, not the template's: not copied */
}

/* The metric's templateVariables, object <o> (of strings), as the
 * template's {{ variables.KEY }} read them. */
static void set_variables(cfg_metric_source *s, const json_t *o)
{
	s->n_variables = 0;
	s->variables = o && json_object_size(o) ?
		xcalloc(json_object_size(o), sizeof *s->variables) : NULL;
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)o, key, val) {
		s->variables[s->n_variables].key = xstrdup(key);
		s->variables[s->n_variables].value = xstrdup(json_string_value(val) ?
		                                             json_string_value(val) : "");
		s->n_variables++;
	}
}

/* http:// or https:// and a host. */
static bool url_ok(const char *s)
{
	size_t scheme = !strncmp(s, "http://", 7) ? 7 : !strncmp(s, "https://", 8) ? 8 : 0;
	return scheme && s[scheme] && s[scheme] != '/';
}

/* A fixed URL (no template): url_ok, and no blanks or control characters. */
bool cfg_address_ok(const char *s)
{
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p <= 0x20 || *p == 0x7f)
			return false;
	return url_ok(s);
}

/* The JSON paths a web metric can use: "$", then any of .NAME (letters,
 * digits, _ and -, not starting with a digit or -), [INDEX] and ["KEY"] or
 * ['KEY'] (KEY without that quote). No wildcards, filters or slices: the
 * path names exactly one number. */
static bool json_path_ok(const char *s)
{
	if (*s++ != '$')
		return false;
	while (*s) {
		if (*s == '.') {
			s++;
			if (!isalpha((unsigned char)*s) && *s != '_')
				return false;
			while (isalnum((unsigned char)*s) || *s == '_' || *s == '-')
				s++;
		} else if (*s == '[') {
			s++;
			if (isdigit((unsigned char)*s)) {
				while (isdigit((unsigned char)*s))
					s++;
			} else if (*s == '"' || *s == '\'') {
				char q = *s++;
				const char *start = s;
				while (*s && *s != q)
					s++;
				if (!*s || s == start)
					return false;
				s++;
			} else {
				return false;
			}
			if (*s != ']')
				return false;
			s++;
		} else {
			return false;
		}
	}
	return true;
}

/* Checks the template <s>, the value of node <v> at <path>; false when
 * reported (an unknown variable, an unclosed "{{"). */
static bool check_template(doc *d, const char *path, yaml_node_t *v, const char *s)
{
	char msg[256];
	if (tmpl_check(s, msg, sizeof msg) == 0)
		return true;
	cfg_err_at(d->x, v, "%s: %s", path, msg);
	return false;
}

static void h_method(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	static const char *const methods[] = { "GET", "POST" };
	src_in *si = obj;
	cfg_read_one_of(d, path, v, methods, N_OF(methods), &si->s.method);
}

/* RFC 9110 token characters. */
static bool header_name_ok(const char *s, size_t len)
{
	if (!len || strlen(s) != len)
		return false;
	for (; *s; s++)
		if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s))
			return false;
	return true;
}

/* A header value: one line, and a template that renders. */
static bool header_value_ok(doc *d, const char *p, yaml_node_t *pv)
{
	return cfg_controls_ok(d, p, pv, false) && check_template(d, p, pv, cfg_sval(pv));
}

/* A web metric's headers: name -> value template. In a Flagger
 * MetricTemplate the key is Flagger's (name -> list of values for its
 * providers): kept in <raw>, not used. */
static void h_headers(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	src_in *si = obj;
	if (d->x->flagger && d->x->in_template && v->type == YAML_MAPPING_NODE)
		return;
	json_t *o = cfg_read_string_map(d, path, v, "header names", header_name_ok,
	                            "not a valid header name", header_value_ok);
	if (!o)
		return;
	json_decref(si->s.headers);
	si->s.headers = o;
}

/* Rows in the order of the P_ enum below. */
static const field provider_fields[] = {
	{ "type", cfg_h_string, F_BOTH, offsetof(src_in, type), 0, 0 },
	{ "address", cfg_h_string, F_BOTH, offsetof(src_in, s.address), 0, 0 },
	{ "timeout", cfg_h_duration, F_BOTH, offsetof(src_in, s.timeout_ms), 100, 300000 },
	{ "url", cfg_h_string, F_BOTH, offsetof(src_in, s.url), 0, 0 },
	{ "method", h_method, F_BOTH, NOSTORE, 0, 0 },
	{ "headers", h_headers, F_BOTH, NOSTORE, 0, 0 },
	{ "body", cfg_h_text, F_BOTH, offsetof(src_in, s.body), 0, 0 },
	{ "jsonPath", cfg_h_string, F_BOTH, offsetof(src_in, s.json_path), 0, 0 },
	/* Flagger's: valid, but canaryd reads no Kubernetes secrets and always
	 * verifies TLS, so a metric with either does not start (main.c) */
	{ "secretRef", cfg_h_map, F_BOTH, NOSTORE, 0, 0 },
	{ "insecureSkipVerify", cfg_h_bool, F_BOTH, offsetof(src_in, insecure), 0, 0 },
	{ "region", NULL, F_FLAGGER, NOSTORE, 0, 0 },
	/* datadog and newrelic: where their keys are (never the keys), in
	 * the order of CFG_KEY_, a file and a variable each */
	{ "accountId", cfg_h_string, F_BOTH, offsetof(src_in, s.account_id), 0, 0 },
	{ "apiKeyFile", cfg_h_string, F_BOTH, offsetof(src_in, s.key_file[CFG_KEY_API]), 0, 0 },
	{ "apiKeyEnv", cfg_h_string, F_BOTH, offsetof(src_in, s.key_env[CFG_KEY_API]), 0, 0 },
	{ "applicationKeyFile", cfg_h_string, F_BOTH, offsetof(src_in, s.key_file[CFG_KEY_APP]),
	  0, 0 },
	{ "applicationKeyEnv", cfg_h_string, F_BOTH, offsetof(src_in, s.key_env[CFG_KEY_APP]),
	  0, 0 },
	{ "queryKeyFile", cfg_h_string, F_BOTH, offsetof(src_in, s.key_file[CFG_KEY_QUERY]),
	  0, 0 },
	{ "queryKeyEnv", cfg_h_string, F_BOTH, offsetof(src_in, s.key_env[CFG_KEY_QUERY]), 0, 0 },
};
enum { P_TYPE, P_ADDRESS, P_TIMEOUT, P_URL, P_METHOD, P_HEADERS, P_BODY, P_JSONPATH,
       P_SECRETREF, P_INSECURE, P_REGION, P_ACCOUNT, P_KEYS };
#define P_KEY_FILE(k) (P_KEYS + 2 * (k))
#define P_KEY_ENV(k) (P_KEYS + 2 * (k) + 1)

/* Flagger's provider types that canaryd does not speak. */
static const char *const flagger_providers[] = {
	"influxdb", "externalmetrics", "stackdriver", "cloudwatch", "graphite", "dynatrace",
	"keptn", "splunk",
};

/* The types canaryd reads with keys: Flagger's defaults and what a
 * provider of each needs. */
static const struct keyed {
	const char *type;
	const char *title;          /* in messages */
	cfg_provider_type t;
	const char *address;        /* Flagger's default address */
	int keys[2], n_keys;        /* CFG_KEY_ it needs */
	const char *why;            /* cfg_metric_source.unread_why */
} keyed_providers[] = {
	{ "datadog", "Datadog", CFG_PROVIDER_DATADOG, "https://api.datadoghq.com",
	  { CFG_KEY_API, CFG_KEY_APP }, 2,
	  "canaryd reads no Kubernetes secrets (Flagger's secretRef): give the Datadog keys in a "
	  "MetricTemplate of apiVersion " API_NATIVE ", with provider.apiKeyFile (or apiKeyEnv) "
	  "and provider.applicationKeyFile (or applicationKeyEnv)" },
	{ "newrelic", "New Relic", CFG_PROVIDER_NEWRELIC, "https://insights-api.newrelic.com",
	  { CFG_KEY_QUERY }, 1,
	  "canaryd reads no Kubernetes secrets (Flagger's secretRef): give the New Relic account "
	  "and key in a MetricTemplate of apiVersion " API_NATIVE ", with provider.accountId "
	  "and provider.queryKeyFile (or queryKeyEnv)" },
};

/* What each key is called in messages, by CFG_KEY_. */
static const char *const key_titles[CFG_KEYS] = { "API key", "application key", "query key" };

#define KEY_MAX 4096 /* a key longer than this is not one (a wrong file) */

/* Whether <k> (<n> bytes) is made of the characters keys are made of:
 * letters, digits and - _ . ~ + / = (Datadog's are hex digits, New
 * Relic's letters, digits and '-'; base64 at most). It goes in a header
 * as it is, and a reason that echoes it can be masked with '*'
 * (provider_redact) without the mask making a key again. */
static bool key_chars_ok(const char *k, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)k[i]) && !strchr("-_.~+/=", k[i]))
			return false;
	return true;
}

/* Reads the key in file <path> (relative to the directory of <cfgfile>,
 * the configuration file that names it) into *out: the whole file, its
 * trailing line breaks trimmed. Returns 0, or -1 with <why> (which never
 * holds the file's content). */
static int key_from_file(const char *cfgfile, const char *path, char **out, char *why,
                         size_t whylen, bool url)
{
	buf full = BUF_INIT;
	const char *slash = strrchr(cfgfile, '/');
	if (path[0] != '/' && slash)
		buf_append(&full, cfgfile, (size_t)(slash - cfgfile) + 1);
	buf_puts(&full, path);
	/* O_NONBLOCK: a FIFO named by mistake must not hang the load */
	int fd = open(full.p, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	buf_release(&full);
	struct stat st;
	if (fd < 0) {
		snprintf(why, whylen, "%s", strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		snprintf(why, whylen, "not a regular file");
		close(fd);
		return -1;
	}
	char *k = xmalloc(KEY_MAX + 2);
	size_t n = 0;
	ssize_t r;
	while (n < KEY_MAX + 1 && (r = read(fd, k + n, KEY_MAX + 1 - n)) != 0) {
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			snprintf(why, whylen, "%s", strerror(errno));
			close(fd);
			free(k);
			return -1;
		}
		n += (size_t)r;
	}
	close(fd);
	while (n && (k[n - 1] == '\n' || k[n - 1] == '\r'))
		n--;
	k[n] = '\0';
	if (n > KEY_MAX)
		snprintf(why, whylen, "larger than %d bytes: not a key", KEY_MAX);
	else if (!n)
		snprintf(why, whylen, "the file is empty");
	else if (url && !cfg_address_ok(k))
		snprintf(why, whylen, "the file does not hold an http:// or https:// URL (one line; "
		         "a trailing line break is trimmed)");
	else if (!url && !key_chars_ok(k, n))
		snprintf(why, whylen, "the key has a character keys do not have (letters, digits "
		         "and - _ . ~ + / =; a trailing line break is trimmed)");
	else {
		*out = k;
		return 0;
	}
	free(k);
	return -1;
}

/* Reads key <k> of a <kp> provider into si->s.key[k]: from the file or
 * the environment variable its keys <ps> name (exactly one of them),
 * checked as a header value. <whose> names the metric or MetricTemplate
 * in messages; a message names where the key was to come from, never
 * the key. */
static void read_key(doc *d, const char *ppath, yaml_node_t *pk, const slot *ps, src_in *si,
                     const struct keyed *kp, int k, const char *whose)
{
	const slot *f = &ps[P_KEY_FILE(k)], *e = &ps[P_KEY_ENV(k)];
	const char *fk = provider_fields[P_KEY_FILE(k)].key, *ek = provider_fields[P_KEY_ENV(k)].key;
	char p[PATH_LEN], why[256];
	if (!f->key && !e->key) {
		cfg_err_at(d->x, pk, "%s.%s or %s.%s: required (the %s %s of %s, read from a file or "
		           "an environment variable; it is never written in the configuration)", ppath,
		           fk, ppath, ek, kp->title, key_titles[k], whose);
		return;
	}
	if (f->key && e->key) {
		cfg_join(p, ppath, ek);
		cfg_err_at(d->x, e->key, "%s: cannot be used with %s (the key is read from one place)",
		           p, fk);
		return;
	}
	if (f->key) {
		cfg_join(p, ppath, fk);
		if (!si->s.key_file[k])
			return; /* reported by cfg_read_string */
		if (key_from_file(d->x->name, si->s.key_file[k], &si->s.key[k], why, sizeof why,
		                  false) < 0)
			cfg_err_at(d->x, f->val, "%s: cannot read the %s %s of %s from '%s': %s", p,
			           kp->title, key_titles[k], whose, si->s.key_file[k], why);
		return;
	}
	cfg_join(p, ppath, ek);
	const char *name = si->s.key_env[k];
	if (!name)
		return;
	bool name_ok = isalpha((unsigned char)*name) || *name == '_';
	for (const char *c = name; *c; c++)
		name_ok = name_ok && (isalnum((unsigned char)*c) || *c == '_');
	const char *v = name_ok ? getenv(name) : NULL;
	size_t n = v ? strlen(v) : 0;
	while (n && (v[n - 1] == '\n' || v[n - 1] == '\r'))
		n--;
	if (!name_ok)
		cfg_err_at(d->x, e->val, "%s: must be an environment variable's name (letters, digits "
		           "and '_', not starting with a digit), got '%.64s'", p, name);
	else if (!v)
		cfg_err_at(d->x, e->val, "%s: the %s %s of %s is to come from environment variable "
		           "'%s', which is not set", p, kp->title, key_titles[k], whose, name);
	else if (!n)
		cfg_err_at(d->x, e->val, "%s: the %s %s of %s is to come from environment variable "
		           "'%s', which is empty", p, kp->title, key_titles[k], whose, name);
	else if (n > KEY_MAX || !key_chars_ok(v, n))
		cfg_err_at(d->x, e->val, "%s: environment variable '%s' does not hold a %s %s: it is "
		           "longer than %d bytes or has a character keys do not have (letters, digits "
		           "and - _ . ~ + / =)", p, name, kp->title, key_titles[k], KEY_MAX);
	else {
		si->s.key[k] = xmalloc(n + 1);
		memcpy(si->s.key[k], v, n);
		si->s.key[k][n] = '\0';
	}
}

/* Finishes a datadog or newrelic provider (<kp>) read into <si>, as
 * finish_source does. A Flagger document is read as Flagger reads it,
 * its keys in a Kubernetes secret (secretRef) that canaryd cannot read:
 * valid, but a metric that uses it does not start, and the message says
 * what to write instead. A canaryd document names where its keys are. */
static void finish_keyed(doc *d, const char *ppath, yaml_node_t *pk, const slot *ps,
                         src_in *si, const struct keyed *kp, yaml_node_t *qk,
                         yaml_node_t *qv, const char *qpath, yaml_node_t *qwhere,
                         const char *whose)
{
	char got_[64];
	char p[PATH_LEN];
	bool flagger = d->x->flagger;
	si->s.type = kp->t;
	static const int web_only[] = { P_URL, P_METHOD, P_HEADERS, P_BODY, P_JSONPATH };
	for (size_t i = 0; i < N_OF(web_only); i++) {
		int r = web_only[i];
		if (!ps[r].key || (r == P_HEADERS && flagger && d->x->in_template))
			continue;
		cfg_join(p, ppath, provider_fields[r].key);
		cfg_err_at(d->x, ps[r].key, "%s: only for provider type web", p);
	}
	/* the keys of the other keyed type, and all of them in a Flagger document */
	for (int r = P_ACCOUNT; r < (int)N_OF(provider_fields); r++) {
		if (!ps[r].key)
			continue;
		int k = r == P_ACCOUNT ? CFG_KEY_QUERY : (r - P_KEYS) / 2;
		bool mine = k == kp->keys[0] || (kp->n_keys > 1 && k == kp->keys[1]);
		cfg_join(p, ppath, provider_fields[r].key);
		if (flagger)
			cfg_err_at(d->x, ps[r].key, "%s: is canaryd's: use apiVersion " API_NATIVE " for "
			           "this %s (Flagger reads its keys from secretRef)", p,
			           d->x->in_template ? "MetricTemplate" : "Canary");
		else if (!mine)
			cfg_err_at(d->x, ps[r].key, "%s: only for provider type %s", p,
			           kp->t == CFG_PROVIDER_DATADOG ? "newrelic" : "datadog");
	}
	if (!ps[P_ADDRESS].key)
		si->s.address = xstrdup(kp->address);
	else if (si->s.address && !cfg_address_ok(si->s.address))
		cfg_err_at(d->x, ps[P_ADDRESS].val, "%s.address: must be an http:// or https:// URL "
		           "such as %s, got %s", ppath, kp->address, GOT(ps[P_ADDRESS].val));
	if (!ps[P_TIMEOUT].key)
		si->s.timeout_ms = 5000; /* Flagger's, fixed there */
	if (!qk && !(flagger && d->x->in_template))
		cfg_err_at(d->x, qwhere, "%s: required with provider type %s (the %s query)", qpath,
		           kp->type, kp->t == CFG_PROVIDER_DATADOG ? "Datadog metrics" : "NRQL");
	else if (si->s.query)
		check_template(d, qpath, qv, si->s.query);
	if (flagger || si->s.unread) {
		/* Flagger's keys are in its secretRef; a canaryd document with
		 * secretRef or insecureSkipVerify is refused at start as any */
		si->s.unread = si->s.unread ? si->s.unread : "secretRef";
		si->s.unread_why = !strcmp(si->s.unread, "secretRef") ? kp->why : NULL;
		if (flagger)
			return;
	}
	for (int i = 0; i < kp->n_keys; i++)
		read_key(d, ppath, pk, ps, si, kp, kp->keys[i], whose);
	if (kp->t != CFG_PROVIDER_NEWRELIC)
		return;
	const char *a = si->s.account_id;
	if (!ps[P_ACCOUNT].key) {
		cfg_err_at(d->x, pk, "%s.accountId: required (the New Relic account the query "
		           "reads, such as 1234567)", ppath);
	} else if (a) {
		size_t n = strspn(a, "0123456789");
		if (!n || a[n] || n > 20) {
			cfg_join(p, ppath, "accountId");
			cfg_err_at(d->x, ps[P_ACCOUNT].val, "%s: must be a New Relic account id (digits), "
			           "got %s", p, GOT(ps[P_ACCOUNT].val));
		}
	}
}

/* Checks a provider read into <si> (key <pk> at <ppath>, its keys in <ps>)
 * together with its query (<query>, taken; key <qk> and value <qv> at
 * <qpath>, or NULL when absent, in which case a missing query is reported
 * at <qwhere>) and fills si->s. Returns true when all is well. */
static bool finish_source(doc *d, const char *ppath, yaml_node_t *pk, const slot *ps,
                          src_in *si, char *query, const char *qpath, yaml_node_t *qk,
                          yaml_node_t *qv, yaml_node_t *qwhere, const char *whose)
{
	char got_[64];
	char p[PATH_LEN];
	size_t e0 = d->x->errs->n;
	si->s.query = query;
	si->s.unread = ps[P_SECRETREF].key ? "secretRef" : si->insecure ? "insecureSkipVerify" : NULL;
	if (!ps[P_TYPE].key) {
		cfg_err_at(d->x, pk, "%s.type: required (prometheus, web, datadog or newrelic)", ppath);
		return false;
	}
	if (!si->type)
		return false; /* reported by cfg_read_string */
	cfg_join(p, ppath, "type");
	bool prom = !strcmp(si->type, "prometheus"), web = !strcmp(si->type, "web");
	for (size_t i = 0; i < N_OF(keyed_providers); i++) {
		if (strcmp(si->type, keyed_providers[i].type))
			continue;
		finish_keyed(d, ppath, pk, ps, si, &keyed_providers[i], qk, qv, qpath, qwhere, whose);
		return d->x->errs->n == e0;
	}
	if (!prom && !web) {
		size_t i = 0;
		while (i < N_OF(flagger_providers) && strcmp(flagger_providers[i], si->type))
			i++;
		if (i == N_OF(flagger_providers)) {
			buf b = BUF_INIT;
			for (size_t j = 0; j < N_OF(flagger_providers); j++)
				buf_printf(&b, ", %s", flagger_providers[j]);
			cfg_err_at(d->x, ps[P_TYPE].val, "%s: must be prometheus, web, datadog or newrelic "
			       "(or one of Flagger's types canaryd does not read%s), got %s", p, b.p,
			       GOT(ps[P_TYPE].val));
			buf_release(&b);
			return false;
		}
		/* Flagger's: the document is valid, as Flagger would take it, but
		 * canaryd cannot read its values, so it does not start with a
		 * metric that needs it (said by --check, refused at start). Its
		 * keys are that provider's, not canaryd's: only the query's
		 * template is checked, since Flagger renders every query. */
		si->s.type = CFG_PROVIDER_UNSUPPORTED;
		si->s.type_name = xstrdup(si->type);
		if (query)
			check_template(d, qpath, qv, query);
		return d->x->errs->n == e0;
	}
	if (web && d->x->flagger && d->x->in_template) {
		cfg_err_at(d->x, ps[P_TYPE].val, "%s: provider type 'web' is canaryd's: use apiVersion "
		       API_NATIVE " for this MetricTemplate", p);
		return false;
	}
	for (int r = P_ACCOUNT; r < (int)N_OF(provider_fields); r++) {
		if (!ps[r].key)
			continue;
		bool nr = r == P_ACCOUNT || r == P_KEY_FILE(CFG_KEY_QUERY) || r == P_KEY_ENV(CFG_KEY_QUERY);
		cfg_join(p, ppath, provider_fields[r].key);
		cfg_err_at(d->x, ps[r].key, "%s: only for provider type %s", p,
		           nr ? "newrelic" : "datadog");
	}
	if (prom) {
		si->s.type = CFG_PROVIDER_PROMETHEUS;
		static const int web_only[] = { P_URL, P_METHOD, P_HEADERS, P_BODY, P_JSONPATH };
		for (size_t i = 0; i < N_OF(web_only); i++) {
			int r = web_only[i];
			if (!ps[r].key || (r == P_HEADERS && d->x->flagger && d->x->in_template))
				continue;
			cfg_join(p, ppath, provider_fields[r].key);
			cfg_err_at(d->x, ps[r].key, "%s: only for provider type web", p);
		}
		if (!ps[P_ADDRESS].key)
			cfg_err_at(d->x, pk, "%s.address: required (the Prometheus server, such as "
			       "http://127.0.0.1:9090)", ppath);
		else if (si->s.address && !cfg_address_ok(si->s.address))
			cfg_err_at(d->x, ps[P_ADDRESS].val, "%s.address: must be an http:// or https:// "
			       "URL such as http://127.0.0.1:9090, got %s", ppath,
			       GOT(ps[P_ADDRESS].val));
		if (!qk && !(d->x->flagger && d->x->in_template))
			cfg_err_at(d->x, qwhere, "%s: required with provider type prometheus (the PromQL "
			       "query)", qpath);
		else if (query)
			check_template(d, qpath, qv, query);
		return d->x->errs->n == e0;
	}
	si->s.type = CFG_PROVIDER_WEB;
	if (ps[P_ADDRESS].key) {
		cfg_join(p, ppath, "address");
		cfg_err_at(d->x, ps[P_ADDRESS].key, "%s: only for provider type prometheus (a web "
		       "metric has url)", p);
	}
	if (qk)
		cfg_err_at(d->x, qk, "%s: cannot be used with provider type web (url and jsonPath say "
		       "where the value is)", qpath);
	if (!ps[P_URL].key)
		cfg_err_at(d->x, pk, "%s.url: required (where the value is fetched from)", ppath);
	else if (si->s.url) {
		cfg_join(p, ppath, "url");
		if (!url_ok(si->s.url) || strpbrk(si->s.url, "\r\n"))
			cfg_err_at(d->x, ps[P_URL].val, "%s: must be an http:// or https:// URL, got %s", p,
			       GOT(ps[P_URL].val));
		else
			check_template(d, p, ps[P_URL].val, si->s.url);
	}
	if (!ps[P_JSONPATH].key)
		cfg_err_at(d->x, pk, "%s.jsonPath: required (where the number is in the response, "
		       "such as $.data.value)", ppath);
	else if (si->s.json_path && !json_path_ok(si->s.json_path)) {
		cfg_join(p, ppath, "jsonPath");
		cfg_err_at(d->x, ps[P_JSONPATH].val, "%s: must be a path like $.data.value, "
		       "$.result[0].value or $.x[\"y\"], got %s", p, GOT(ps[P_JSONPATH].val));
	}
	if (!ps[P_METHOD].key)
		si->s.method = xstrdup("GET");
	if (si->s.body) {
		cfg_join(p, ppath, "body");
		if (si->s.method && !strcmp(si->s.method, "GET"))
			cfg_err_at(d->x, ps[P_BODY].key, "%s: needs method POST", p);
		else
			check_template(d, p, ps[P_BODY].val, si->s.body);
	}
	return d->x->errs->n == e0;
}

/* Checks that each {{ variables.KEY }} of template <t> (the value of node
 * <v> at <path>; NULL: none) is one of the metric's templateVariables
 * <vars>: Flagger's missingkey=error, found by --check rather than at
 * each query. <where> says where the template is when it is not at <v>.
 * A syntax error is reported by check_template, not here. */
static void check_vars(ctx *x, const yaml_node_t *v, size_t line, size_t col,
                       const char *path, const char *where, const char *t, const json_t *vars)
{
	char msg[256];
	if (!t || tmpl_check(t, NULL, 0) < 0)
		return;
	cfg_metric_source tmp;
	memset(&tmp, 0, sizeof tmp);
	set_variables(&tmp, vars);
	tmpl_vars tv = { .variables = tmp.variables, .n_variables = tmp.n_variables };
	buf b = BUF_INIT;
	if (tmpl_render(t, &tv, TMPL_RAW, &b, msg, sizeof msg) < 0) {
		if (v)
			cfg_err_at(x, v, "%s: %s%s", path, where, msg);
		else
			cfg_err_pos(x, line, col, "%s: %s%s", path, where, msg);
	}
	buf_release(&b);
	cfg_src_release(&tmp);
}

/* ---- metrics ---- */

static void h_metric_name(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj)
{
	metric_in *mi = obj;
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (strlen(s) >= sizeof mi->m.name) /* cut, it would be another name */
		cfg_err_at(d->x, v, "%s: must be at most %zu characters, got %zu", path,
		       sizeof mi->m.name - 1, strlen(s));
	else
		snprintf(mi->m.name, sizeof mi->m.name, "%s", s);
	free(s);
}

static void h_number(doc *d, const field *f, const char *path, yaml_node_t *k,
                     yaml_node_t *v, void *obj)
{
	double n;
	/* bounds depend on the metric's kind: checked once it is known */
	if (cfg_read_number(d, path, v, -INFINITY, INFINITY, "", &n) == 0)
		*(double *)cfg_at(obj, f) = n;
}

static void h_ref_name(doc *d, const field *f, const char *path, yaml_node_t *k,
                       yaml_node_t *v, void *obj)
{
	char got_[64];
	metric_in *mi = obj;
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	if (!util_valid_name(s)) {
		cfg_err_at(d->x, v, "%s: must be a MetricTemplate's name (lower case letters, digits "
		       "or '-'), got %s", path, GOT(v));
		free(s);
		return;
	}
	mi->ref_name = s;
}

static const field ref_fields[] = {
	{ "name", h_ref_name, F_BOTH, NOSTORE, 0, 0 },
	{ "namespace", cfg_h_string, F_BOTH, offsetof(metric_in, ref_ns), 0, 0 },
};

static const field range_fields[] = {
	{ "min", h_number, F_BOTH, offsetof(metric_in, rmin), 0, 0 },
	{ "max", h_number, F_BOTH, offsetof(metric_in, rmax), 0, 0 },
	{ "relative", cfg_h_bool, F_BOTH, offsetof(metric_in, m.relative), 0, 0 },
};
enum { R_MIN, R_MAX };

static const field baseline_fields[] = {
	{ "window", cfg_h_duration, F_BOTH, offsetof(metric_in, m.baseline_window_ms), 60000,
	  86400000 },
};

static const field metric_fields[] = {
	{ "name", h_metric_name, F_BOTH, NOSTORE, 0, 0 },
	{ "thresholdRange", NULL, F_BOTH, NOSTORE, 0, 0 },   /* read by read_metric */
	{ "threshold", h_number, F_BOTH, offsetof(metric_in, thr), 0, 0 },
	{ "interval", cfg_h_duration, F_BOTH, offsetof(metric_in, m.window_ms), 1000, 30 * 60000 },
	{ "query", cfg_h_text, F_BOTH, offsetof(metric_in, query), 0, 0 },
	{ "templateRef", NULL, F_BOTH, NOSTORE, 0, 0 },      /* read by read_source */
	{ "provider", NULL, F_BOTH, NOSTORE, 0, 0 },         /* read by read_source */
	{ "baseline", NULL, F_BOTH, NOSTORE, 0, 0 },         /* read by read_metric */
	{ "failureDuration", cfg_h_duration, F_BOTH, offsetof(metric_in, m.failure_duration_ms),
	  1000, 3600000 },
	{ "templateVariables", cfg_h_string_map, F_BOTH, offsetof(metric_in, variables), 0, 0 },
};
enum { MT_NAME, MT_RANGE, MT_THRESHOLD, MT_INTERVAL, MT_QUERY, MT_TEMPLATE, MT_PROVIDER,
       MT_BASELINE };

/* Checks bound <val> (at node <n>, path <path>) for a metric of kind <kind>,
 * absolute or <relative> to stable's value. */
static bool bound_ok(doc *d, const char *path, yaml_node_t *n, eng_metric_kind kind,
                     bool relative, double val)
{
	char got_[64];
	if (kind == ENG_M_CUSTOM)
		return true; /* the provider's unit, whatever it is */
	if (kind == ENG_M_DURATION) {
		if (val >= 0)
			return true;
		cfg_err_at(d->x, n, "%s: must be a number >= 0 (%s), got %s", path,
		       relative ? "a ratio to stable's" : "milliseconds", GOT(n));
		return false;
	}
	if (relative) {
		if (val >= -100 && val <= 100)
			return true;
		cfg_err_at(d->x, n, "%s: must be a number from -100 to 100 (a difference in "
		       "percentage points from stable's), got %s", path, GOT(n));
		return false;
	}
	if (val >= 0 && val <= 100)
		return true;
	cfg_err_at(d->x, n, "%s: must be a number from 0 to 100 (a percentage), got %s", path,
	       GOT(n));
	return false;
}

/* Reads where a custom metric's value comes from: a templateRef, or a
 * provider with its query. Returns true when the metric has a source (read
 * into <mi>, errors reported), false for a built-in metric. */
static bool read_source(doc *d, const char *path, yaml_node_t *v, const slot *seen,
                        metric_in *mi)
{
	char p[PATH_LEN], qp[PATH_LEN];
	const slot *q = &seen[MT_QUERY], *pr = &seen[MT_PROVIDER], *t = &seen[MT_TEMPLATE];
	cfg_join(qp, path, "query");
	if (t->key) {
		cfg_join(p, path, "templateRef");
		if (q->key || pr->key)
			cfg_err_at(d->x, t->key, "%s: cannot be used with query or provider (the "
			       "MetricTemplate has them)", p);
		slot rs[N_OF(ref_fields)];
		if (cfg_walk_map(d, p, t->val, ref_fields, N_OF(ref_fields), mi, rs) && !rs[0].key)
			cfg_err_at(d->x, t->key, "%s.name: required (the MetricTemplate's metadata.name)",
			       p);
		mi->ref_key = t->key;
		return true;
	}
	if (pr->key) {
		cfg_join(p, path, "provider");
		slot ps[N_OF(provider_fields)];
		mi->src.s.timeout_ms = 10000;
		if (cfg_walk_map(d, p, pr->val, provider_fields, N_OF(provider_fields), &mi->src, ps)) {
			char *query = mi->query;
			mi->query = NULL;
			char whose[128];
			snprintf(whose, sizeof whose, "metric '%s'", mi->m.name);
			if (finish_source(d, p, pr->key, ps, &mi->src, query, qp, q->key, q->val, v,
			                  whose)) {
				const cfg_metric_source *s = &mi->src.s;
				char sp[PATH_LEN];
				check_vars(d->x, q->val, 0, 0, qp, "", s->query, mi->variables);
				cfg_join(sp, p, "url");
				check_vars(d->x, ps[P_URL].val, 0, 0, sp, "", s->url, mi->variables);
				cfg_join(sp, p, "body");
				check_vars(d->x, ps[P_BODY].val, 0, 0, sp, "", s->body, mi->variables);
				const char *hk;
				json_t *hv;
				json_object_foreach(s->headers, hk, hv) {
					cfg_join(sp, p, "headers");
					check_vars(d->x, ps[P_HEADERS].val, 0, 0, sp, "", json_string_value(hv),
					           mi->variables);
				}
			}
		}
		return true;
	}
	if (q->key) {
		cfg_err_at(d->x, q->key, "%s: query needs provider.address (canaryd has no mesh "
		       "Prometheus to default to): add provider: {type: prometheus, address: "
		       "http://HOST:PORT}, or use a templateRef", path);
		return true;
	}
	return false;
}

/* Reads metric mapping <v> at <path>; returns true when it is valid, in
 * <mi>->m (and, for a custom metric, mi->src or mi->ref_name). */
static bool read_metric(doc *d, const char *path, yaml_node_t *v, metric_in *mi)
{
	slot seen[N_OF(metric_fields)];
	slot rseen[N_OF(range_fields)] = { { 0 } };
	size_t errs0 = d->x->errs->n;
	memset(mi, 0, sizeof *mi);
	mi->m.window_ms = 60000;
	if (!cfg_walk_map(d, path, v, metric_fields, N_OF(metric_fields), mi, seen))
		return false;
	char p[PATH_LEN], rp[PATH_LEN];
	cfg_join(rp, path, "thresholdRange");
	if (seen[MT_RANGE].key)
		cfg_walk_map(d, rp, seen[MT_RANGE].val, range_fields, N_OF(range_fields), mi, rseen);
	if (seen[MT_BASELINE].key) {
		slot bseen[N_OF(baseline_fields)];
		char bp[PATH_LEN];
		cfg_join(bp, path, "baseline");
		cfg_join(p, bp, "window");
		if (cfg_walk_map(d, bp, seen[MT_BASELINE].val, baseline_fields, N_OF(baseline_fields),
		             mi, bseen)) {
			if (!bseen[0].key) {
				cfg_err_at(d->x, seen[MT_BASELINE].key, "%s: required (how far back stable's "
				       "history is read, such as 1h)", p);
			} else if (mi->m.baseline_window_ms &&
			           mi->m.baseline_window_ms <= mi->m.window_ms) {
				char a[32];
				util_format_duration(mi->m.window_ms, a, sizeof a);
				cfg_err_at(d->x, bseen[0].val, "%s: must be longer than the metric's "
				       "interval (%s)", p, a);
			}
		}
	}
	bool custom = read_source(d, path, v, seen, mi);
	if (!seen[MT_NAME].key) {
		if (custom)
			cfg_err_at(d->x, v, "%s.name: required (the metric's name)", path);
		else
			cfg_err_at(d->x, v, "%s.name: required (one of request-success-rate, "
			       "request-duration, error-rate)", path);
		return false;
	}
	if (custom) {
		mi->m.kind = ENG_M_CUSTOM;
	} else {
		size_t kind = 0;
		while (kind < N_OF(builtin_metrics) && strcmp(builtin_metrics[kind].name, mi->m.name))
			kind++;
		if (kind == N_OF(builtin_metrics)) {
			if (mi->m.name[0]) {
				cfg_join(p, path, "name");
				cfg_err_at(d->x, seen[MT_NAME].val, "%s: unknown metric '%s'; built in: "
				       "request-success-rate, request-duration, error-rate (any other "
				       "needs a provider and query, or a templateRef)", p, mi->m.name);
			}
			return false;
		}
		mi->m.kind = builtin_metrics[kind].kind;
	}
	bool rel = mi->m.relative;
	bool has_range = seen[MT_RANGE].key && seen[MT_RANGE].val->type == YAML_MAPPING_NODE;
	if (seen[MT_RANGE].key && seen[MT_THRESHOLD].key && !d->x->flagger) {
		cfg_join(p, path, "threshold");
		cfg_err_at(d->x, seen[MT_THRESHOLD].key, "%s: cannot be used with thresholdRange "
		       "(threshold is Flagger's deprecated form of it)", p);
	} else if (has_range) {
		if (!rseen[R_MIN].key && !rseen[R_MAX].key)
			cfg_err_at(d->x, seen[MT_RANGE].key, "%s: needs min, max or both", rp);
		if (rseen[R_MIN].key) {
			cfg_join(p, rp, "min");
			mi->m.has_min = bound_ok(d, p, rseen[R_MIN].val, mi->m.kind, rel, mi->rmin);
			mi->m.min = mi->rmin;
		}
		if (rseen[R_MAX].key) {
			cfg_join(p, rp, "max");
			mi->m.has_max = bound_ok(d, p, rseen[R_MAX].val, mi->m.kind, rel, mi->rmax);
			mi->m.max = mi->rmax;
		}
		if (mi->m.has_min && mi->m.has_max && mi->m.min > mi->m.max)
			cfg_err_at(d->x, seen[MT_RANGE].key, "%s: min (%g) must not be greater than "
			       "max (%g)", rp, mi->m.min, mi->m.max);
	} else if (seen[MT_THRESHOLD].key) {
		/* Flagger: a minimum for the success rate, a maximum otherwise */
		cfg_join(p, path, "threshold");
		bool ok = bound_ok(d, p, seen[MT_THRESHOLD].val, mi->m.kind, false, mi->thr);
		if (mi->m.kind == ENG_M_SUCCESS_RATE) {
			mi->m.has_min = ok;
			mi->m.min = mi->thr;
		} else {
			mi->m.has_max = ok;
			mi->m.max = mi->thr;
		}
	} else if (!seen[MT_RANGE].key) {
		cfg_err_at(d->x, v, "%s: needs thresholdRange (min, max or both) or threshold", path);
	}
	return d->x->errs->n == errs0;
}

static void metric_in_release(metric_in *mi)
{
	cfg_src_release(&mi->src.s);
	free(mi->src.type);
	free(mi->query);
	free(mi->ref_name);
	free(mi->ref_ns);
	json_decref(mi->variables);
	memset(mi, 0, sizeof *mi);
}

/* Keeps a reference to a MetricTemplate (<alert> false, for metric
 * <metric>) or an AlertProvider by <name> (taken) and <ns> (taken, may be
 * NULL), whose key <key> is at <path>.<what>, to be resolved when every
 * file is read. */
static void add_ref(ctx *x, bool alert, int metric, char *name, char *ns, yaml_node_t *key,
                    const char *path, const char *what)
{
	cfg_grow(&x->refs, x->n_refs, &x->refs_cap, sizeof *x->refs);
	tmpl_ref *r = &x->refs[x->n_refs++];
	memset(r, 0, sizeof *r);
	r->alert = alert;
	r->canary = x->canary;
	r->metric = metric;
	r->name = name;
	r->namespace_ = ns;
	r->file = x->name;
	r->file_idx = x->file;
	r->line = key->start_mark.line + 1;
	r->col = key->start_mark.column + 1;
	cfg_join(r->path, path, what);
}

void cfg_h_metrics(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	char got_[64];
	eng_policy *p = obj;
	if (v->type != YAML_SEQUENCE_NODE) {
		cfg_err_at(d->x, v, "%s: must be a list of metrics, got %s", path, GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > ENG_MAX_METRICS) {
		cfg_err_at(d->x, k, "%s: at most %d metrics, got %zu", path, ENG_MAX_METRICS, n);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		if (!e)
			continue;
		char ip[PATH_LEN];
		cfg_join_index(ip, path, i);
		metric_in mi;
		int idx = -1;
		if (read_metric(d, ip, e, &mi)) {
			idx = p->n_metrics++;
			p->metrics[idx] = mi.m;
			d->c->sources[idx] = mi.src.s; /* taken */
			memset(&mi.src.s, 0, sizeof mi.src.s);
			set_variables(&d->c->sources[idx], mi.variables);
		}
		if (mi.ref_name && mi.ref_key) {
			add_ref(d->x, false, idx, mi.ref_name, mi.ref_ns, mi.ref_key, ip, "templateRef");
			mi.ref_name = mi.ref_ns = NULL; /* taken */
		}
		metric_in_release(&mi);
	}
}

/* ---- Flagger's alerts ---- */

static const char *const severities[] = { "info", "warn", "error" };

typedef struct alert_in {
	char *name, *severity, *ref_name, *ref_ns;
	yaml_node_t *ref_key;
} alert_in;

static void h_alert_severity(doc *d, const field *f, const char *path, yaml_node_t *k,
                             yaml_node_t *v, void *obj)
{
	alert_in *a = obj;
	cfg_read_one_of(d, path, v, severities, N_OF(severities), &a->severity);
}

static const field alert_ref_fields[] = {
	{ "name", cfg_h_string, F_BOTH, offsetof(alert_in, ref_name), 0, 0 },
	{ "namespace", cfg_h_string, F_BOTH, offsetof(alert_in, ref_ns), 0, 0 },
};

static void h_alert_ref(doc *d, const field *f, const char *path, yaml_node_t *k,
                        yaml_node_t *v, void *obj)
{
	alert_in *a = obj;
	slot seen[N_OF(alert_ref_fields)];
	if (cfg_walk_map(d, path, v, alert_ref_fields, N_OF(alert_ref_fields), a, seen) &&
	    !seen[0].key)
		cfg_err_at(d->x, k, "%s.name: required (the AlertProvider's metadata.name)", path);
	a->ref_key = k;
}

static const field alert_fields[] = {
	{ "name", cfg_h_string, F_BOTH, offsetof(alert_in, name), 0, 0 },
	{ "severity", h_alert_severity, F_BOTH, NOSTORE, 0, 0 },
	{ "providerRef", h_alert_ref, F_BOTH, NOSTORE, 0, 0 },
};

/* Flagger's spec.analysis.alerts: each names an AlertProvider (in any of
 * the files), resolved once every file is read (cfg_resolve_templates),
 * and is sent the events Flagger alerts on at its severity or above. */
void cfg_h_alerts(doc *d, const field *f, const char *path, yaml_node_t *k,
                  yaml_node_t *v, void *obj)
{
	char got_[64];
	cfg_canary *c = d->c;
	if (v->type != YAML_SEQUENCE_NODE) {
		cfg_err_at(d->x, v, "%s: must be a list of alerts, got %s", path, GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (c->alerts)
		return; /* a duplicate key, reported by cfg_to_json */
	c->alerts = xcalloc(n ? n : 1, sizeof *c->alerts);
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		if (!e)
			continue;
		char ip[PATH_LEN];
		cfg_join_index(ip, path, i);
		alert_in a;
		memset(&a, 0, sizeof a);
		slot seen[N_OF(alert_fields)];
		if (cfg_walk_map(d, ip, e, alert_fields, N_OF(alert_fields), &a, seen) &&
		    !seen[2].key)
			cfg_err_at(d->x, e, "%s.providerRef: required (the AlertProvider to notify)", ip);
		size_t idx = c->n_alerts++;
		cfg_alert *ca = &c->alerts[idx];
		ca->name = a.name ? a.name : xstrdup("");
		ca->severity = a.severity ? notify_severity_parse(a.severity) : NOTIFY_INFO;
		if (ca->severity < 0)
			ca->severity = NOTIFY_INFO; /* reported */
		ca->kind = -1;
		if (a.ref_name && a.ref_key) {
			add_ref(d->x, true, (int)idx, a.ref_name, a.ref_ns, a.ref_key, ip, "providerRef");
			a.ref_name = a.ref_ns = NULL;
		}
		free(a.severity);
		free(a.ref_name);
		free(a.ref_ns);
	}
}

void cfg_alert_release(cfg_alert *a)
{
	free(a->name);
	free(a->provider);
	free(a->address);
	free(a->token);
	free(a->channel);
	free(a->username);
	memset(a, 0, sizeof *a);
}

/* ---- MetricTemplate and AlertProvider documents ---- */

static const field tmpl_top_fields[] = {
	{ "apiVersion", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "kind", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "metadata", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "spec", NULL, F_BOTH, NOSTORE, 0, 0 },
};

static const field tmpl_spec_fields[] = {
	{ "provider", NULL, F_BOTH, NOSTORE, 0, 0 },
	{ "query", cfg_h_text, F_BOTH, 0, 0, 0 }, /* into a char * */
};

/* An AlertProvider's spec: Flagger's keys, and canaryd's for where the
 * address and a token are (canaryd/v1 only: Flagger's are in secretRef,
 * a Kubernetes secret canaryd cannot read). */
typedef struct ap_in {
	char *type, *channel, *username, *address, *proxy;
	char *address_file, *address_env, *token_file, *token_env;
} ap_in;

static const field alert_spec_fields[] = {
	{ "type", cfg_h_string, F_BOTH, offsetof(ap_in, type), 0, 0 },
	{ "channel", cfg_h_string, F_BOTH, offsetof(ap_in, channel), 0, 0 },
	{ "username", cfg_h_string, F_BOTH, offsetof(ap_in, username), 0, 0 },
	{ "address", cfg_h_string, F_BOTH, offsetof(ap_in, address), 0, 0 },
	{ "proxy", cfg_h_string, F_BOTH, offsetof(ap_in, proxy), 0, 0 },
	{ "secretRef", cfg_h_map, F_BOTH, NOSTORE, 0, 0 },
	{ "addressFile", cfg_h_string, F_BOTH, offsetof(ap_in, address_file), 0, 0 },
	{ "addressEnv", cfg_h_string, F_BOTH, offsetof(ap_in, address_env), 0, 0 },
	{ "tokenFile", cfg_h_string, F_BOTH, offsetof(ap_in, token_file), 0, 0 },
	{ "tokenEnv", cfg_h_string, F_BOTH, offsetof(ap_in, token_env), 0, 0 },
};
enum { AP_TYPE, AP_CHANNEL, AP_USERNAME, AP_ADDRESS, AP_PROXY, AP_SECRET, AP_ADDR_FILE,
       AP_ADDR_ENV, AP_TOKEN_FILE, AP_TOKEN_ENV };

/* Reads a secret (an address when <url>, else a token) of an
 * AlertProvider from the file or the environment variable its keys
 * <fs> and <es> name; the message names where, never the value. */
static char *ap_secret(doc *d, const slot *fs, const slot *es, const char *file,
                       const char *env, bool url)
{
	const char *what = url ? "address" : "token";
	char why[256];
	if (fs->key && es->key) {
		cfg_err_at(d->x, es->key, "spec.%s: cannot be used with spec.%s (the %s is read from "
		           "one place)", cfg_sval(es->key), cfg_sval(fs->key), what);
		return NULL;
	}
	if (fs->key && file) {
		char *out = NULL;
		if (key_from_file(d->x->name, file, &out, why, sizeof why, url) < 0)
			cfg_err_at(d->x, fs->val, "spec.%s: cannot read the %s from '%s': %s",
			           cfg_sval(fs->key), what, file, why);
		return out;
	}
	if (!es->key || !env)
		return NULL;
	const char *v = getenv(env);
	size_t n = v ? strlen(v) : 0;
	while (n && (v[n - 1] == '\n' || v[n - 1] == '\r'))
		n--;
	char *out = v ? xmalloc(n + 1) : NULL;
	if (out) {
		memcpy(out, v, n);
		out[n] = '\0';
	}
	if (!v || !n)
		cfg_err_at(d->x, es->val, "spec.%s: the %s is to come from environment variable '%s', "
		           "which is %s", cfg_sval(es->key), what, env, v ? "empty" : "not set");
	else if (url ? !cfg_address_ok(out) : (n > KEY_MAX || !key_chars_ok(out, n)))
		cfg_err_at(d->x, es->val, "spec.%s: environment variable '%s' does not hold %s", 
		           cfg_sval(es->key), env, url ? "an http:// or https:// URL"
		           : "a token (letters, digits and - _ . ~ + / =)");
	else
		return out;
	free(out);
	return NULL;
}

/* Reads an AlertProvider's spec <v> into <t>: what an alert that uses it
 * is sent with, or (t->ap_why) why none can be: a type canaryd does not
 * send, an address canaryd cannot read (Flagger's secretRef), a proxy,
 * or no address at all. Those are valid in a Flagger document, as Flagger
 * would take it; a canary whose alert uses it is not (cfg_resolve_templates). */
static void read_alert_provider(doc *d, yaml_node_t *sk, yaml_node_t *v, tmpl_def *t)
{
	ap_in a;
	memset(&a, 0, sizeof a);
	slot ss[N_OF(alert_spec_fields)];
	char why[512] = "";
	bool flagger = d->x->flagger;
	if (!cfg_walk_map(d, "spec", v, alert_spec_fields, N_OF(alert_spec_fields), &a, ss))
		goto out;
	if (!ss[AP_TYPE].key) {
		cfg_err_at(d->x, sk, "spec.type: required (" NOTIFY_KINDS_TEXT ")");
		goto out;
	}
	for (int r = AP_ADDR_FILE; r <= AP_TOKEN_ENV && flagger; r++)
		if (ss[r].key)
			cfg_err_at(d->x, ss[r].key, "spec.%s: is canaryd's: use apiVersion " API_NATIVE
			           " for this AlertProvider (Flagger reads the address from secretRef)",
			           alert_spec_fields[r].key);
	if (!flagger && ss[AP_SECRET].key)
		cfg_err_at(d->x, ss[AP_SECRET].key, "spec.secretRef: canaryd reads no Kubernetes "
		           "secrets: give spec.addressFile or spec.addressEnv (and tokenFile or "
		           "tokenEnv)");
	if (a.address && !cfg_address_ok(a.address))
		cfg_err_at(d->x, ss[AP_ADDRESS].val, "spec.address: must be an http:// or https:// "
		           "URL, got '%.100s'", a.address);
	t->ap.kind = notify_kind_parse(a.type);
	t->ap.channel = a.channel;
	t->ap.username = a.username;
	a.channel = a.username = NULL;
	if (!flagger) {
		char *addr = ap_secret(d, &ss[AP_ADDR_FILE], &ss[AP_ADDR_ENV], a.address_file,
		                       a.address_env, true);
		if (addr) {
			free(a.address);
			a.address = addr;
		}
		t->ap.token = ap_secret(d, &ss[AP_TOKEN_FILE], &ss[AP_TOKEN_ENV], a.token_file,
		                        a.token_env, false);
	}
	if (t->ap.kind < 0)
		snprintf(why, sizeof why, "its type '%.40s' is not one canaryd sends (it sends "
		         NOTIFY_KINDS_TEXT ")", a.type);
	else if (flagger && ss[AP_SECRET].key)
		snprintf(why, sizeof why, "its address is in the Kubernetes secret of spec.secretRef, "
		         "which canaryd cannot read: give it in an AlertProvider of apiVersion "
		         API_NATIVE " with spec.addressFile or spec.addressEnv");
	else if (ss[AP_PROXY].key)
		snprintf(why, sizeof why, "canaryd sends no alert through a proxy (spec.proxy)");
	else if (!a.address)
		snprintf(why, sizeof why, "it has no address (spec.address%s)",
		         flagger ? "" : ", addressFile or addressEnv");
	else
		t->ap.address = a.address, a.address = NULL;
	if (why[0])
		t->ap_why = xstrdup(why);
out:
	free(a.type);
	free(a.channel);
	free(a.username);
	free(a.address);
	free(a.proxy);
	free(a.address_file);
	free(a.address_env);
	free(a.token_file);
	free(a.token_env);
}

/* Reads MetricTemplate (or, with <alert>, AlertProvider) document <root>
 * (starting at line <line>) into x->defs, for the references resolved
 * once every file is read. */
void cfg_load_template(ctx *x, yaml_node_t *root, int line, bool alert)
{
	const char *kind = alert ? "AlertProvider" : "MetricTemplate";
	cfg_canary meta;
	memset(&meta, 0, sizeof meta);
	doc d = { .x = x, .c = &meta };
	size_t e0 = x->errs->n;
	x->in_template = true;
	slot seen[N_OF(tmpl_top_fields)];
	cfg_walk_map(&d, "", root, tmpl_top_fields, N_OF(tmpl_top_fields), NULL, seen);
	if (!seen[T_METADATA].key) {
		cfg_err_at(x, root, "metadata: required (with the %s's name)", kind);
	} else {
		slot ms[N_OF(cfg_metadata_fields)];
		if (cfg_walk_map(&d, "metadata", seen[T_METADATA].val, cfg_metadata_fields,
		             N_OF(cfg_metadata_fields), &meta, ms) && !ms[M_NAME].key)
			cfg_err_at(x, seen[T_METADATA].key, "metadata.name: required (what a %s names)",
			       alert ? "providerRef.name" : "metric's templateRef.name");
	}
	src_in si;
	memset(&si, 0, sizeof si);
	si.s.timeout_ms = 10000;
	tmpl_def ap; /* an AlertProvider's: ap and ap_why */
	memset(&ap, 0, sizeof ap);
	ap.ap.kind = -1;
	char *query = NULL;
	bool has_query = false;
	if (!seen[T_SPEC].key) {
		cfg_err_at(x, root, "spec: required (%s)", alert ? "its type" : "provider and query");
	} else if (alert) {
		read_alert_provider(&d, seen[T_SPEC].key, seen[T_SPEC].val, &ap);
	} else {
		slot ss[N_OF(tmpl_spec_fields)];
		if (cfg_walk_map(&d, "spec", seen[T_SPEC].val, tmpl_spec_fields, N_OF(tmpl_spec_fields),
		             &query, ss)) {
			slot ps[N_OF(provider_fields)];
			has_query = ss[1].key != NULL;
			if (!ss[0].key)
				cfg_err_at(x, seen[T_SPEC].key, "spec.provider: required (type and address)");
			else if (cfg_walk_map(&d, "spec.provider", ss[0].val, provider_fields,
			                  N_OF(provider_fields), &si, ps)) {
				char whose[160];
				snprintf(whose, sizeof whose, "MetricTemplate '%.100s'",
				         meta.name ? meta.name : "?");
				finish_source(&d, "spec.provider", ss[0].key, ps, &si, query, "spec.query",
				              ss[1].key, ss[1].val, seen[T_SPEC].key, whose);
				query = NULL; /* taken */
			}
		}
	}
	free(query);
	free(si.type);
	x->in_template = false;
	if (!meta.name) {
		cfg_src_release(&si.s);
		cfg_alert_release(&ap.ap);
		free(ap.ap_why);
		cfg_canary_release(&meta);
		return;
	}
	for (size_t i = 0; i < x->n_defs; i++) {
		const tmpl_def *o = &x->defs[i];
		bool same_ns = !o->namespace_ == !meta.namespace_ &&
		               (!o->namespace_ || !strcmp(o->namespace_, meta.namespace_));
		if (o->alert == alert && !strcmp(o->name, meta.name) && same_ns) {
			if (o->file_idx == x->file)
				cfg_err_at(x, d.name_val, "metadata.name: duplicate %s name '%s' (also the "
				       "document at line %d)", kind, meta.name, o->line);
			else
				cfg_err_at(x, d.name_val, "metadata.name: duplicate %s name '%s' (also the "
				       "document at %s:%d)", kind, meta.name, o->file, o->line);
			break;
		}
	}
	cfg_grow(&x->defs, x->n_defs, &x->defs_cap, sizeof *x->defs);
	x->defs[x->n_defs++] = (tmpl_def){ .name = meta.name, .namespace_ = meta.namespace_,
	                                   .alert = alert, .src = si.s, .has_query = has_query,
	                                   .ok = x->errs->n == e0, .file = x->name,
	                                   .file_idx = x->file, .line = line,
	                                   .ap = ap.ap, .ap_why = ap.ap_why };
	meta.name = meta.namespace_ = NULL; /* taken */
	cfg_canary_release(&meta);
}

/* The document a reference names: same kind and name, and the namespace
 * as Flagger looks it up: the reference's, or else the canary's
 * (<canary_ns>); a document or canary that says no namespace is in the
 * one kubectl applies it to, which canaryd cannot know, so it matches
 * any. */
static const tmpl_def *find_template(const ctx *x, const tmpl_ref *r, const char *canary_ns)
{
	const char *ns = r->namespace_ ? r->namespace_ : canary_ns;
	for (size_t i = 0; i < x->n_defs; i++) {
		const tmpl_def *t = &x->defs[i];
		if (t->alert == r->alert && !strcmp(t->name, r->name) &&
		    (!ns || !t->namespace_ || !strcmp(ns, t->namespace_)))
			return t;
	}
	return NULL;
}

/* Gives each templateRef its template's source and checks each
 * providerRef, or reports them (unless a file could not be read to its
 * end: the document may be past the syntax error). Frees x->refs and
 * x->defs. */
void cfg_resolve_templates(ctx *x, cfg *c, bool complete)
{
	for (size_t i = 0; i < x->n_refs; i++) {
		tmpl_ref *r = &x->refs[i];
		cfg_canary *cc = r->canary < c->n_canaries ? &c->canaries[r->canary] : NULL;
		const tmpl_def *t = find_template(x, r, cc ? cc->namespace_ : NULL);
		const char *kind = r->alert ? "AlertProvider" : "MetricTemplate";
		x->file = r->file_idx;
		x->name = r->file;
		if (!t && complete) {
			buf b = BUF_INIT; /* the first ten: a message stays a line */
			size_t shown = 0, all = 0;
			for (size_t j = 0; j < x->n_defs; j++) {
				if (x->defs[j].alert != r->alert)
					continue;
				if (all++ >= 10)
					continue;
				buf_printf(&b, "%s%s", shown++ ? ", " : "", x->defs[j].name);
				if (x->defs[j].namespace_)
					buf_printf(&b, " (namespace %.64s)", x->defs[j].namespace_);
			}
			if (all > 10)
				buf_printf(&b, " and %zu more", all - 10);
			char ns[160] = "", where[64] = "this file";
			const char *rns = r->namespace_ ? r->namespace_ : cc ? cc->namespace_ : NULL;
			if (rns)
				snprintf(ns, sizeof ns, " in namespace '%.64s'%s", rns,
				         r->namespace_ ? "" : " (the canary's)");
			if (c->n_files > 1)
				snprintf(where, sizeof where, "the %zu files", c->n_files);
			cfg_err_pos(x, r->line, r->col, "%s: no %s named '%s'%s in %s; %s%s", r->path,
			            kind, r->name, ns, where, b.len ? "there are: " : "there are none",
			            b.len ? b.p : "");
			buf_release(&b);
		} else if (t && r->alert && t->ok && r->metric >= 0 && cc &&
		           (size_t)r->metric < cc->n_alerts) {
			if (t->ap_why) {
				cfg_err_pos(x, r->line, r->col, "%s: AlertProvider '%s' (%s:%d) cannot be "
				            "sent to: %s", r->path, t->name, t->file, t->line, t->ap_why);
			} else {
				cfg_alert *a = &cc->alerts[r->metric];
				a->provider = xstrdup(t->name);
				a->kind = t->ap.kind;
				a->address = dup_or_null(t->ap.address);
				a->token = dup_or_null(t->ap.token);
				a->channel = dup_or_null(t->ap.channel);
				a->username = dup_or_null(t->ap.username);
			}
		} else if (t && !r->alert && t->ok && !t->has_query &&
		           (t->src.type == CFG_PROVIDER_PROMETHEUS || t->src.type == CFG_PROVIDER_DATADOG ||
		            t->src.type == CFG_PROVIDER_NEWRELIC)) {
			cfg_err_pos(x, r->line, r->col, "%s: MetricTemplate '%s' (%s:%d) has no "
			            "spec.query, so there is nothing to ask its provider", r->path, t->name,
			            t->file, t->line);
		} else if (t && !r->alert && t->ok && r->metric >= 0 && cc) {
			cfg_metric_source *s = &cc->sources[r->metric];
			/* the metric's templateVariables stay; the rest is the template's */
			tmpl_kv *vars = s->variables;
			size_t nv = s->n_variables;
			s->variables = NULL;
			s->n_variables = 0;
			cfg_src_release(s);
			src_copy(s, &t->src);
			s->template_name = xstrdup(t->name);
			s->variables = vars;
			s->n_variables = nv;
			json_t *o = json_object();
			for (size_t j = 0; j < nv; j++)
				json_object_set_new(o, vars[j].key, json_string(vars[j].value));
			char where[PATH_LEN + 64];
			snprintf(where, sizeof where, "MetricTemplate '%s' (%s:%d) spec.query: ", t->name,
			         t->file, t->line);
			check_vars(x, NULL, r->line, r->col, r->path, where, s->query, o);
			json_decref(o);
		}
		free(r->name);
		free(r->namespace_);
	}
	free(x->refs);
	x->refs = NULL;
	x->n_refs = x->refs_cap = 0;
	size_t notes_cap = 0;
	for (size_t i = 0; i < x->n_defs; i++) {
		const tmpl_def *t = &x->defs[i];
		if (t->ok && t->src.type == CFG_PROVIDER_UNSUPPORTED) {
			buf b = BUF_INIT;
			buf_printf(&b, "%s:%d:1: note: MetricTemplate '%s' has provider type '%s', which "
			           "canaryd does not read: canaryd will not start with a metric that uses "
			           "it", t->file, t->line, t->name, t->src.type_name);
			cfg_grow(&c->notes, c->n_notes, &notes_cap, sizeof *c->notes);
			c->notes[c->n_notes++] = cfg_escape_controls(b.p);
		} else if (t->ok && t->src.unread_why) {
			buf b = BUF_INIT;
			buf_printf(&b, "%s:%d:1: note: MetricTemplate '%s' has provider type '%s' without "
			           "keys canaryd can read: canaryd will not start with a metric that uses "
			           "it (%s)", t->file, t->line, t->name,
			           t->src.type == CFG_PROVIDER_DATADOG ? "datadog" : "newrelic",
			           t->src.unread_why);
			cfg_grow(&c->notes, c->n_notes, &notes_cap, sizeof *c->notes);
			c->notes[c->n_notes++] = cfg_escape_controls(b.p);
		}
	}
	for (size_t i = 0; i < x->n_defs; i++) {
		free(x->defs[i].name);
		free(x->defs[i].namespace_);
		cfg_src_release(&x->defs[i].src);
		cfg_alert_release(&x->defs[i].ap);
		free(x->defs[i].ap_why);
	}
	free(x->defs);
	x->defs = NULL;
	x->n_defs = x->defs_cap = 0;
}
