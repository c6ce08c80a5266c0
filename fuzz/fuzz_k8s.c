/* fuzz_k8s.c - libFuzzer target for what the Kubernetes API (or something
 * posing as it) sends canaryd's client, and for kubeconfig files: the
 * parsers of src/k8s_parse.c and src/k8s_config.c.
 *
 * Input: the first byte picks the reader, the second sets an HTTP status
 * and a buffer size; the rest is the answer (or file):
 *   0 an error answer: k8s_parse_status, k8s_error_text
 *   1 a watch stream: split at '\n' as the client splits it, each line
 *     through k8s_parse_event
 *   2 a kubeconfig: k8s_config_kubeconfig_text
 *   3 an object: k8s_deployment_ready, k8s_httproute_ready, k8s_json_subset
 *   4 a Warning header value: k8s_warning_text
 *
 * Invariants (abort() when broken), each checked again here from the
 * input rather than trusted:
 * - every message is one line of printable ASCII within its buffer, and
 *   an error line names what was asked ("cannot VERB ...");
 * - a Status is read only from a JSON object that is one (kind Status, or
 *   code and status Failure), its code what the object says when 0..999;
 * - an event is accepted only when the line is a JSON object without
 *   duplicated keys, with a known type and an object, and a string
 *   resourceVersion (or a Status for ERROR);
 * - a kubeconfig gives an https server and a namespace, or an error and
 *   an empty configuration, never both;
 * - readiness is -1, 0 or 1 with a reason, and the same twice;
 * - any JSON value holds itself (k8s_json_subset is reflexive). */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "k8s.h"
#include "oneline.h"

static void one_line(const char *s, size_t cap)
{
	fuzz_check_line(s, cap, false);
}

static int is_status(const json_t *j)
{
	const char *kind = json_string_value(json_object_get(j, "kind"));
	const char *st = json_string_value(json_object_get(j, "status"));
	if (!json_is_object(j))
		return 0;
	if (kind)
		return strcmp(kind, "Status") == 0;
	return json_is_integer(json_object_get(j, "code")) && st && strcmp(st, "Failure") == 0;
}

static void error_answer(const char *body, size_t n, int status, size_t cap)
{
	k8s_status st;
	json_t *j = json_loadb(body, n, JSON_REJECT_DUPLICATES, NULL);
	int rc = k8s_parse_status(body, n, &st);
	if ((rc == 0) != is_status(j))
		abort();
	if (rc == 0) {
		json_int_t code = json_integer_value(json_object_get(j, "code"));
		int want = json_is_integer(json_object_get(j, "code")) && code >= 0 && code < 1000
		           ? (int)code : 0;
		if (st.code != want)
			abort();
		one_line(st.reason, sizeof st.reason);
		one_line(st.message, sizeof st.message);
		one_line(st.causes, sizeof st.causes);
		one_line(st.details_name, sizeof st.details_name);
	}
	json_decref(j);
	char *out = malloc(cap);
	k8s_ref ref = { "networking.istio.io", "v1", "virtualservices", NULL, "podinfo" };
	k8s_error_text("patch", &ref, "shop", status, body, n, out, cap);
	one_line(out, cap);
	if (cap > 13 && strncmp(out, "cannot patch ", 13) != 0)
		abort();
	free(out);
}

static void watch_stream(const char *body, size_t n)
{
	const char *p = body, *end = body + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break; /* an unfinished event: the client waits for more */
		size_t len = (size_t)(nl - p);
		k8s_event_type t;
		json_t *o = (json_t *)1;
		char err[256];
		err[0] = '\0';
		int rc = k8s_parse_event(p, len, &t, &o, err, sizeof err);
		json_t *j = json_loadb(p, len, JSON_REJECT_DUPLICATES, NULL);
		if (rc == 0) {
			const char *type = json_string_value(json_object_get(j, "type"));
			json_t *obj = json_object_get(j, "object");
			if (!type || !json_is_object(obj) || !json_equal(obj, o))
				abort();
			static const char *const names[] = { "SYNC", "ADDED", "MODIFIED", "DELETED",
			                                     "BOOKMARK", "ERROR" };
			if (t < K8S_EV_ADDED || t > K8S_EV_ERROR || strcmp(names[t], type) != 0)
				abort();
			if (t == K8S_EV_ERROR ? !is_status(obj)
			    : !json_string_length(json_object_get(json_object_get(obj, "metadata"),
			                                          "resourceVersion")))
				abort();
			json_decref(o);
		} else {
			if (o != NULL || !err[0])
				abort();
			one_line(err, sizeof err);
		}
		json_decref(j);
		p = nl + 1;
	}
}

static void kubeconfig(const char *body, size_t n, size_t cap)
{
	k8s_config c;
	char *err = malloc(cap);
	err[0] = '\0';
	int rc = k8s_config_kubeconfig_text(&c, body, n, "/nonexistent/kubeconfig", NULL, err, cap);
	if (rc == 0) {
		if (!c.server || strncmp(c.server, "https://", 8) != 0 || !c.namespace || !c.source)
			abort();
		if (!!c.cert_pem != !!c.key_pem)
			abort();
		k8s_config_release(&c);
	} else {
		if (rc != -1 || c.server || c.token || c.ca_pem || c.namespace)
			abort();
		one_line(err, cap);
	}
	free(err);
}

static void object(const char *body, size_t n, size_t cap)
{
	json_t *j = json_loadb(body, n, JSON_DECODE_ANY, NULL);
	if (!j)
		return;
	char *a = malloc(cap), *b = malloc(cap);
	int d1 = k8s_deployment_ready(j, a, cap), d2 = k8s_deployment_ready(j, b, cap);
	if (d1 < -1 || d1 > 1 || d1 != d2 || strcmp(a, b) != 0)
		abort();
	one_line(a, cap);
	int r1 = k8s_httproute_ready(j, a, cap), r2 = k8s_httproute_ready(j, b, cap);
	if (r1 < -1 || r1 > 1 || r1 != r2 || strcmp(a, b) != 0)
		abort();
	one_line(a, cap);
	if (!k8s_json_subset(j, j))
		abort();
	json_t *copy = json_deep_copy(j);
	if (!k8s_json_subset(j, copy) || !k8s_json_subset(copy, j))
		abort();
	json_decref(copy);
	free(a);
	free(b);
	json_decref(j);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	int which = data[0] % 5;
	int status = 200 + data[1] * 2;              /* 200 .. 710 */
	size_t cap = (size_t)(data[1] % 64) * 16 + 1; /* 1 .. 1009 */
	size_t n = size - 2;
	/* a private copy, NUL-terminated one byte past the end (the kubeconfig
	 * reader takes a length; ASan catches reads beyond it) */
	char *body = malloc(n + 1);
	memcpy(body, data + 2, n);
	body[n] = '\0';
	switch (which) {
	case 0: error_answer(body, n, status, cap); break;
	case 1: watch_stream(body, n); break;
	case 2: kubeconfig(body, n, cap < 64 ? 64 : cap); break;
	case 3: object(body, n, cap); break;
	case 4: {
		char *out = malloc(cap);
		out[0] = '\0';
		if (!memchr(body, '\0', n)) {
			k8s_warning_text(body, out, cap);
			one_line(out, cap);
		}
		free(out);
		break;
	}
	}
	free(body);
	return 0;
}
