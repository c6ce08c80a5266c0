/* k8s_parse.c - the pure half of the Kubernetes client (see k8s.h): paths,
 * Status objects, error lines, watch events, Warning headers and the
 * readiness of Deployments and HTTPRoutes. No I/O and no clock, so that
 * everything the API can send is unit tested and fuzzed (fuzz/fuzz_k8s.c)
 * without a server.
 *
 * Everything read from an answer goes through one rule: a field of the
 * wrong type is treated as absent or reported, never trusted. A text from
 * the API that reaches an error line is cut to size and made one line of
 * printable ASCII (util_ascii_line), since it ends in logs, the audit and
 * terminals. */
#include "k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

/* ---- names and paths -------------------------------------------------- */

/* DNS-1123 label (<max> 63) or subdomain (dots allowed, <max> 253):
 * lower-case letters, digits, '-' (and '.'), alphanumeric at both ends. */
static int dns_name(const char *s, size_t max, int dots)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		int alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
		if (alnum)
			continue;
		if (i == 0 || i == n - 1)
			return 0;
		if (c != '-' && !(dots && c == '.'))
			return 0;
		if (c == '.' && (s[i - 1] == '.' || s[i - 1] == '-' || s[i + 1] == '-'))
			return 0;
	}
	return 1;
}

/* A resource, version or subresource: lower-case letters and digits. */
static int plain_word(const char *s, size_t max)
{
	size_t n = s ? strlen(s) : 0;
	if (n == 0 || n > max)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9')))
			return 0;
	return 1;
}

int k8s_path(const k8s_ref *ref, const char *ns, const char *subresource,
             char *out, size_t outlen, char *err, size_t errlen)
{
	const char *group = ref->group ? ref->group : "";
	if (group[0] && !dns_name(group, 253, 1)) {
		snprintf(err, errlen, "bad API group '%.80s'", group);
		return -1;
	}
	if (!plain_word(ref->version, 63)) {
		snprintf(err, errlen, "bad API version '%.80s'", ref->version ? ref->version : "");
		return -1;
	}
	if (!plain_word(ref->resource, 63)) {
		snprintf(err, errlen, "bad resource '%.80s'", ref->resource ? ref->resource : "");
		return -1;
	}
	if (!dns_name(ns, 63, 0)) {
		snprintf(err, errlen, "bad namespace '%.80s'", ns ? ns : "");
		return -1;
	}
	if (ref->name && !dns_name(ref->name, 253, 1)) {
		snprintf(err, errlen, "bad object name '%.80s'", ref->name);
		return -1;
	}
	if (subresource && (!ref->name || !plain_word(subresource, 63))) {
		snprintf(err, errlen, "bad subresource '%.80s'", subresource);
		return -1;
	}
	int n;
	if (group[0])
		n = snprintf(out, outlen, "/apis/%s/%s/namespaces/%s/%s", group, ref->version, ns,
		             ref->resource);
	else
		n = snprintf(out, outlen, "/api/%s/namespaces/%s/%s", ref->version, ns, ref->resource);
	if (n > 0 && (size_t)n < outlen && ref->name)
		n += snprintf(out + n, outlen - (size_t)n, "/%s", ref->name);
	if (n > 0 && (size_t)n < outlen && subresource)
		n += snprintf(out + n, outlen - (size_t)n, "/%s", subresource);
	if (n < 0 || (size_t)n >= outlen) {
		snprintf(err, errlen, "path too long");
		return -1;
	}
	return 0;
}

const char *k8s_group_product(const char *group)
{
	static const struct { const char *suffix; const char *product; } rows[] = {
		{ "istio.io", "Istio" },
		{ "gateway.networking.k8s.io", "Gateway API" },
		{ "smi-spec.io", "SMI" },
	};
	if (!group)
		return NULL;
	size_t n = strlen(group);
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		size_t m = strlen(rows[i].suffix);
		if (n >= m && strcmp(group + n - m, rows[i].suffix) == 0 &&
		    (n == m || group[n - m - 1] == '.'))
			return rows[i].product;
	}
	return NULL;
}

/* ---- Status ----------------------------------------------------------- */

/* Copies the string <s> (may be NULL) into <out>, one line of printable
 * ASCII, cut to size. */
static void copy_line(char *out, size_t outlen, const char *s)
{
	snprintf(out, outlen, "%s", s ? s : "");
	util_ascii_line(out);
}

int k8s_status_from_json(const json_t *j, k8s_status *st)
{
	if (!json_is_object(j))
		return -1;
	const char *kind = json_string_value(json_object_get(j, "kind"));
	const json_t *code = json_object_get(j, "code");
	const char *status = json_string_value(json_object_get(j, "status"));
	int is_status = kind ? strcmp(kind, "Status") == 0
	                     : json_is_integer(code) && status && strcmp(status, "Failure") == 0;
	if (!is_status)
		return -1;
	memset(st, 0, sizeof *st);
	if (json_is_integer(code) && json_integer_value(code) >= 0 &&
	    json_integer_value(code) < 1000)
		st->code = (int)json_integer_value(code);
	copy_line(st->reason, sizeof st->reason, json_string_value(json_object_get(j, "reason")));
	copy_line(st->message, sizeof st->message,
	          json_string_value(json_object_get(j, "message")));
	const json_t *details = json_object_get(j, "details");
	copy_line(st->details_name, sizeof st->details_name,
	          json_string_value(json_object_get(details, "name")));
	copy_line(st->details_kind, sizeof st->details_kind,
	          json_string_value(json_object_get(details, "kind")));
	const json_t *causes = json_object_get(details, "causes");
	size_t i, used = 0;
	const json_t *c;
	json_array_foreach(causes, i, c) {
		const char *field = json_string_value(json_object_get(c, "field"));
		const char *msg = json_string_value(json_object_get(c, "message"));
		const char *why = json_string_value(json_object_get(c, "reason"));
		if (!field && !msg && !why)
			continue;
		if (used >= sizeof st->causes - 1)
			break;
		int n = snprintf(st->causes + used, sizeof st->causes - used, "%s%s%s%s%s%s%s",
		                 used ? "; " : "", field ? field : "", field ? ": " : "",
		                 msg ? msg : "", why ? " (" : "", why ? why : "", why ? ")" : "");
		if (n < 0)
			break;
		used += (size_t)n;
		if (used >= sizeof st->causes)
			used = sizeof st->causes - 1;
	}
	util_ascii_line(st->causes);
	return 0;
}

int k8s_parse_status(const char *body, size_t len, k8s_status *st)
{
	json_t *j = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
	int rc = k8s_status_from_json(j, st);
	json_decref(j);
	return rc;
}

void k8s_describe(const k8s_ref *ref, const char *ns, char *out, size_t outlen)
{
	const char *group = ref->group ? ref->group : "";
	int n = snprintf(out, outlen, "%.63s%s%.253s", ref->resource ? ref->resource : "?",
	                 group[0] ? "." : "", group);
	if (n > 0 && (size_t)n < outlen && ref->name)
		n += snprintf(out + n, outlen - (size_t)n, " '%.253s'", ref->name);
	if (n > 0 && (size_t)n < outlen)
		snprintf(out + n, outlen - (size_t)n, " in namespace '%.63s'", ns ? ns : "");
	util_ascii_line(out);
}

/* "AlreadyExists" -> "already exists": a Status reason as words. */
static void reason_words(const char *reason, char *out, size_t outlen)
{
	size_t k = 0;
	for (size_t i = 0; reason[i] && k + 2 < outlen; i++) {
		char c = reason[i];
		if (c >= 'A' && c <= 'Z') {
			if (i > 0)
				out[k++] = ' ';
			c = (char)(c - 'A' + 'a');
		}
		out[k++] = c;
	}
	out[k] = '\0';
}

void k8s_error_text(const char *verb, const k8s_ref *ref, const char *ns, int status,
                    const char *body, size_t len, char *out, size_t outlen)
{
	const char *group = ref->group ? ref->group : "";
	char what[600];
	k8s_describe(ref, ns, what, sizeof what);

	k8s_status st;
	if (k8s_parse_status(body, len, &st) != 0) {
		char peek[101];
		size_t m = len < sizeof peek - 1 ? len : sizeof peek - 1;
		memcpy(peek, body ? body : "", m);
		peek[m] = '\0';
		util_ascii_line(peek);
		if (m == 0)
			snprintf(out, outlen, "cannot %s %s: the API answered %d with an empty body",
			         verb, what, status);
		else
			snprintf(out, outlen, "cannot %s %s: the API answered %d with something that "
			         "is not a Status: '%s%s'", verb, what, status, peek,
			         len > m ? "..." : "");
		return;
	}
	char words[80];
	reason_words(st.reason[0] ? st.reason : "Failure", words, sizeof words);
	if (status == 403) {
		snprintf(out, outlen, "cannot %s %s: forbidden (403): %s; canaryd needs an RBAC rule "
		         "{apiGroups: [\"%s\"], resources: [\"%s\"], verbs: [\"%s\"]} in a Role bound "
		         "to its service account in namespace '%s'", verb, what, st.message, group,
		         ref->resource ? ref->resource : "", verb, ns ? ns : "");
	} else if (status == 404 && !st.details_name[0]) {
		/* the API does not serve the path at all (a missing CRD): the
		 * object's own 404 names it in details */
		const char *product = k8s_group_product(group);
		if (product)
			snprintf(out, outlen, "cannot %s %s: %s is not installed (no %s/%s %s in the API)",
			         verb, what, product, group, ref->version ? ref->version : "",
			         ref->resource ? ref->resource : "");
		else
			snprintf(out, outlen, "cannot %s %s: the API does not serve %s%s%s %s (404): %s",
			         verb, what, group, group[0] ? "/" : "",
			         ref->version ? ref->version : "", ref->resource ? ref->resource : "",
			         st.message);
	} else if (st.causes[0] && !strstr(st.message, st.causes)) {
		snprintf(out, outlen, "cannot %s %s: %s (%d): %s; causes: %s", verb, what, words,
		         status, st.message, st.causes);
	} else {
		snprintf(out, outlen, "cannot %s %s: %s (%d): %s", verb, what, words, status,
		         st.message);
	}
	util_ascii_line(out);
}

int k8s_warning_text(const char *v, char *out, size_t outlen)
{
	/* warn-code SP warn-agent SP quoted warn-text [SP quoted warn-date] */
	const char *p = v;
	while (*p == ' ' || *p == '\t')
		p++;
	if (!(p[0] >= '0' && p[0] <= '9' && p[1] >= '0' && p[1] <= '9' && p[2] >= '0' &&
	      p[2] <= '9' && p[3] == ' '))
		return 0;
	p += 4;
	while (*p && *p != ' ')
		p++;
	if (*p++ != ' ' || *p++ != '"')
		return 0;
	size_t k = strlen(out);
	if (k && k + 2 < outlen) {
		out[k++] = ';';
		out[k++] = ' ';
	}
	for (; *p && *p != '"'; p++) {
		if (*p == '\\' && p[1])
			p++;
		if (k + 1 < outlen)
			out[k++] = *p;
	}
	if (k < outlen)
		out[k] = '\0';
	util_ascii_line(out);
	return 1;
}

/* ---- watch events ----------------------------------------------------- */

int k8s_parse_event(const char *line, size_t len, k8s_event_type *type, json_t **object,
                    char *err, size_t errlen)
{
	*object = NULL;
	json_error_t je;
	json_t *j = json_loadb(line, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		snprintf(err, errlen, "event is not JSON: %s", je.text);
		util_ascii_line(err);
		return -1;
	}
	const char *t = json_string_value(json_object_get(j, "type"));
	json_t *obj = json_object_get(j, "object");
	static const struct { const char *name; k8s_event_type type; } types[] = {
		{ "ADDED", K8S_EV_ADDED }, { "MODIFIED", K8S_EV_MODIFIED },
		{ "DELETED", K8S_EV_DELETED }, { "BOOKMARK", K8S_EV_BOOKMARK },
		{ "ERROR", K8S_EV_ERROR },
	};
	int found = -1;
	for (size_t i = 0; t && i < sizeof types / sizeof types[0]; i++)
		if (strcmp(t, types[i].name) == 0)
			found = (int)i;
	if (!json_is_object(j) || found < 0) {
		snprintf(err, errlen, "event has no known type%s%.40s%s", t ? " ('" : "", t ? t : "",
		         t ? "')" : "");
		util_ascii_line(err);
		json_decref(j);
		return -1;
	}
	if (!json_is_object(obj)) {
		snprintf(err, errlen, "%s event has no object", t);
		json_decref(j);
		return -1;
	}
	k8s_status st;
	if (types[found].type == K8S_EV_ERROR) {
		if (k8s_status_from_json(obj, &st) != 0) {
			snprintf(err, errlen, "ERROR event whose object is not a Status");
			json_decref(j);
			return -1;
		}
	} else {
		const char *rv = json_string_value(
			json_object_get(json_object_get(obj, "metadata"), "resourceVersion"));
		if (!rv || !rv[0]) {
			snprintf(err, errlen, "%s event has no metadata.resourceVersion", t);
			json_decref(j);
			return -1;
		}
	}
	*type = types[found].type;
	*object = json_incref(obj);
	json_decref(j);
	return 0;
}

/* ---- comparing ------------------------------------------------------- */

int k8s_json_subset(const json_t *desired, const json_t *live)
{
	if (!desired)
		return 1; /* nothing desired */
	if (json_is_object(desired)) {
		if (!json_is_object(live))
			return 0;
		const char *key;
		const json_t *v;
		json_object_foreach((json_t *)desired, key, v)
			if (!k8s_json_subset(v, json_object_get(live, key)))
				return 0;
		return 1;
	}
	if (json_is_array(desired)) {
		if (!json_is_array(live) || json_array_size(desired) != json_array_size(live))
			return 0;
		for (size_t i = 0; i < json_array_size(desired); i++)
			if (!k8s_json_subset(json_array_get(desired, i), json_array_get(live, i)))
				return 0;
		return 1;
	}
	if (json_is_integer(desired) && json_is_integer(live))
		return json_integer_value(desired) == json_integer_value(live);
	if (json_is_number(desired) && json_is_number(live))
		return json_number_value(desired) == json_number_value(live);
	return live != NULL && json_equal(desired, live);
}

/* ---- readiness -------------------------------------------------------- */

/* The integer at <key> of <o>: 1 with *v, 0 when absent or null (*v =
 * <def>), -1 when of another type. */
static int get_int(const json_t *o, const char *key, long long def, long long *v)
{
	const json_t *x = json_object_get(o, key);
	*v = def;
	if (!x || json_is_null(x))
		return 0;
	if (!json_is_integer(x))
		return -1;
	*v = json_integer_value(x);
	return 1;
}

/* The condition of <type> in the array <conds>, or NULL. */
static const json_t *condition(const json_t *conds, const char *type)
{
	size_t i;
	const json_t *c;
	json_array_foreach(conds, i, c) {
		const char *t = json_string_value(json_object_get(c, "type"));
		if (t && strcmp(t, type) == 0)
			return c;
	}
	return NULL;
}

static const char *str_or(const json_t *o, const char *key, const char *def)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : def;
}

int k8s_deployment_ready(const json_t *d, char *why, size_t whylen)
{
	const json_t *meta = json_object_get(d, "metadata");
	const json_t *spec = json_object_get(d, "spec");
	const json_t *status = json_object_get(d, "status");
	const char *name = str_or(meta, "name", "?");
	long long gen, observed, want, updated, replicas, available;
	if (!json_is_object(d) || !json_is_object(meta)) {
		snprintf(why, whylen, "not a Deployment object");
		return 0;
	}
	const char *kind = json_string_value(json_object_get(d, "kind"));
	if (kind && strcmp(kind, "Deployment") != 0) {
		snprintf(why, whylen, "'%.100s' is a %.60s, not a Deployment", name, kind);
		util_ascii_line(why);
		return 0;
	}
	if (get_int(meta, "generation", 0, &gen) < 0 ||
	    get_int(status, "observedGeneration", 0, &observed) < 0 ||
	    get_int(spec, "replicas", 1, &want) < 0 ||
	    get_int(status, "updatedReplicas", 0, &updated) < 0 ||
	    get_int(status, "replicas", 0, &replicas) < 0 ||
	    get_int(status, "availableReplicas", 0, &available) < 0 ||
	    (json_object_get(status, "conditions") &&
	     !json_is_array(json_object_get(status, "conditions")))) {
		snprintf(why, whylen, "deployment '%.100s' has a status field of the wrong type", name);
		util_ascii_line(why);
		return 0;
	}
	if (observed < gen) {
		snprintf(why, whylen, "deployment '%.100s': waiting for the controller to observe "
		         "generation %lld (it has seen %lld)", name, gen, observed);
		util_ascii_line(why);
		return 0;
	}
	const json_t *conds = json_object_get(status, "conditions");
	const json_t *progressing = condition(conds, "Progressing");
	const char *preason = str_or(progressing, "reason", "");
	if (strcmp(preason, "ProgressDeadlineExceeded") == 0) {
		snprintf(why, whylen, "deployment '%.100s' exceeded its progress deadline: %.300s",
		         name, str_or(progressing, "message", ""));
		util_ascii_line(why);
		return -1;
	}
	if (updated < want) {
		snprintf(why, whylen, "deployment '%.100s': %lld of %lld new replicas have been "
		         "updated", name, updated, want);
	} else if (replicas > updated) {
		snprintf(why, whylen, "deployment '%.100s': %lld old replicas are pending termination",
		         name, replicas - updated);
	} else if (available < updated) {
		snprintf(why, whylen, "deployment '%.100s': %lld of %lld updated replicas are "
		         "available", name, available, updated);
	} else {
		const json_t *avail = condition(conds, "Available");
		const char *st = str_or(avail, "status", "True");
		if (strcmp(st, "True") != 0) {
			snprintf(why, whylen, "deployment '%.100s' is not Available: %.60s: %.300s", name,
			         str_or(avail, "reason", ""), str_or(avail, "message", ""));
		} else {
			snprintf(why, whylen, "deployment '%.100s' is available", name);
			util_ascii_line(why);
			return 1;
		}
	}
	util_ascii_line(why);
	return 0;
}

/* A parentRef with the API's defaults filled in, for comparison. */
typedef struct parent_key {
	const char *group, *kind, *ns, *name, *section;
	long long port; /* 0 when unset */
} parent_key;

static int parent_key_of(const json_t *ref, const char *route_ns, parent_key *k)
{
	if (!json_is_object(ref))
		return -1;
	const json_t *g = json_object_get(ref, "group");
	k->group = g ? json_string_value(g) : "gateway.networking.k8s.io";
	k->kind = str_or(ref, "kind", "Gateway");
	k->ns = str_or(ref, "namespace", route_ns);
	k->name = json_string_value(json_object_get(ref, "name"));
	k->section = str_or(ref, "sectionName", "");
	if (!k->group || !k->name || get_int(ref, "port", 0, &k->port) < 0)
		return -1;
	return 0;
}

static int same_parent(const parent_key *a, const parent_key *b)
{
	return strcmp(a->group, b->group) == 0 && strcmp(a->kind, b->kind) == 0 &&
	       strcmp(a->ns, b->ns) == 0 && strcmp(a->name, b->name) == 0 &&
	       strcmp(a->section, b->section) == 0 && a->port == b->port;
}

int k8s_httproute_ready(const json_t *route, char *why, size_t whylen)
{
	const json_t *meta = json_object_get(route, "metadata");
	const char *name = str_or(meta, "name", "?");
	const char *ns = str_or(meta, "namespace", "default");
	long long gen;
	const json_t *refs = json_object_get(json_object_get(route, "spec"), "parentRefs");
	const json_t *parents = json_object_get(json_object_get(route, "status"), "parents");
	if (!json_is_object(route) || get_int(meta, "generation", 0, &gen) < 0) {
		snprintf(why, whylen, "not an HTTPRoute object");
		return 0;
	}
	if (!json_is_array(refs) || json_array_size(refs) == 0) {
		snprintf(why, whylen, "httproute '%.100s' has no spec.parentRefs", name);
		util_ascii_line(why);
		return 0;
	}
	size_t i, j;
	const json_t *ref, *p;
	json_array_foreach(refs, i, ref) {
		parent_key want;
		if (parent_key_of(ref, ns, &want) != 0) {
			snprintf(why, whylen, "httproute '%.100s': spec.parentRefs[%zu] is malformed",
			         name, i);
			util_ascii_line(why);
			return 0;
		}
		int seen = 0;
		json_array_foreach(parents, j, p) {
			parent_key got;
			if (parent_key_of(json_object_get(p, "parentRef"), ns, &got) != 0 ||
			    !same_parent(&want, &got))
				continue;
			seen = 1;
			const json_t *conds = json_object_get(p, "conditions");
			const json_t *acc = condition(conds, "Accepted");
			long long og;
			if (!acc) {
				snprintf(why, whylen, "httproute '%.100s': parent %.60s '%.60s/%.100s' has no "
				         "Accepted condition yet", name, want.kind, want.ns, want.name);
				util_ascii_line(why);
				return 0;
			}
			if (get_int(acc, "observedGeneration", 0, &og) < 0 || og < gen) {
				snprintf(why, whylen, "httproute '%.100s': parent %.60s '%.60s/%.100s' has "
				         "seen generation %lld, the route is at %lld", name, want.kind,
				         want.ns, want.name, og, gen);
				util_ascii_line(why);
				return 0;
			}
			const char *st = str_or(acc, "status", "");
			if (strcmp(st, "True") != 0) {
				snprintf(why, whylen, "httproute '%.100s': parent %.60s '%.60s/%.100s' did not "
				         "accept generation %lld: %.60s: %.300s", name, want.kind, want.ns,
				         want.name, gen, str_or(acc, "reason", ""), str_or(acc, "message", ""));
				util_ascii_line(why);
				return -1;
			}
		}
		if (!seen) {
			snprintf(why, whylen, "httproute '%.100s': parent %.60s '%.60s/%.100s' has not "
			         "reported status yet", name, want.kind, want.ns, want.name);
			util_ascii_line(why);
			return 0;
		}
	}
	snprintf(why, whylen, "httproute '%.100s' is accepted by its parents at generation %lld",
	         name, gen);
	util_ascii_line(why);
	return 1;
}
