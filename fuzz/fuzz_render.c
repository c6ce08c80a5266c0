/* fuzz_render.c - libFuzzer target for the router renderers (render.h):
 * any Canary JSON, any split, any provider.
 *
 * Input: byte 0 is the weight (0..127: above 100 must be refused); byte 1
 * holds the mirror flag (bit 0), whether a canary cookie (bit 1) and a
 * primary cookie (bit 2) are given, and the provider (bits 3..5: the
 * document's own, istio, gatewayapi:v1, gatewayapi:v1beta1, linkerd, osm,
 * smi:v1alpha3:istio, kuma); the rest is the Canary as JSON.
 *
 * Invariants (abort() when broken):
 * - objects or errors, never both, never neither; every error and note is
 *   one line of text without control characters;
 * - a weight over 100 and provider kuma are refused;
 * - every object has apiVersion, kind, metadata.name and a spec, and its
 *   JSON reads back as itself;
 * - weights: each two-way split adds up to 100, a lone destination of an
 *   Istio route carries the primary's share, a lone HTTPRoute backend 100
 *   (the A/B default route); one route or rule has exactly (100 - w, w)
 *   (SMI: canary w first, primary 100 - w), v1alpha1 as decimal strings;
 * - rendering is pure: the document is not modified and a second
 *   rendering is equal;
 * - the YAML of the objects parses back with libyaml to the end. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <yaml.h>

#include "render.h"

static const char *const providers[8] = { NULL, "istio", "gatewayapi:v1", "gatewayapi:v1beta1",
                                          "linkerd", "osm", "smi:v1alpha3:istio", "kuma" };

static void check_lines(const json_t *list)
{
	size_t i;
	json_t *m;
	if (!json_is_array(list))
		abort();
	json_array_foreach(list, i, m) {
		const char *s = json_string_value(m);
		if (!s || !*s)
			abort();
		for (const unsigned char *p = (const unsigned char *)s; *p; p++)
			if (*p < 0x20 || *p == 0x7f || (p[0] == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f))
				abort();
	}
}

static long long weight_of(const json_t *v)
{
	if (json_is_integer(v))
		return json_integer_value(v);
	const char *s = json_string_value(v);
	if (!s || !*s || strlen(s) > 3)
		abort();
	for (const char *p = s; *p; p++)
		if (*p < '0' || *p > '9')
			abort();
	return atoll(s);
}

/* Checks every list of weighted entries <routes> (each entry has
 * <key>[...] of destinations with a "weight"); returns whether one of them
 * is exactly (first, second). */
static bool check_pairs(const json_t *list, const char *key, int lone, long long first,
                        long long second)
{
	bool seen = false;
	size_t i;
	json_t *r;
	json_array_foreach(list, i, r) {
		const json_t *ds = json_object_get(r, key);
		size_t n = json_array_size(ds);
		if (n == 1) {
			if (weight_of(json_object_get(json_array_get(ds, 0), "weight")) != lone)
				abort();
		} else if (n == 2) {
			long long a = weight_of(json_object_get(json_array_get(ds, 0), "weight"));
			long long b = weight_of(json_object_get(json_array_get(ds, 1), "weight"));
			if (a < 0 || b < 0 || a + b != 100)
				abort();
			seen = seen || (a == first && b == second);
		} else {
			abort();
		}
	}
	return seen;
}

static void check_objects(const json_t *objs, int w)
{
	size_t i;
	json_t *o;
	bool split = false;
	if (!json_is_array(objs) || json_array_size(objs) == 0)
		abort();
	json_array_foreach(objs, i, o) {
		const char *kind = json_string_value(json_object_get(o, "kind"));
		const json_t *spec = json_object_get(o, "spec");
		if (!json_is_string(json_object_get(o, "apiVersion")) || !kind || !json_is_object(spec) ||
		    !json_is_string(json_object_get(json_object_get(o, "metadata"), "name")))
			abort();
		char *text = json_dumps(o, JSON_COMPACT);
		json_t *back = text ? json_loads(text, 0, NULL) : NULL;
		if (!back || !json_equal(back, o))
			abort();
		json_decref(back);
		free(text);
		if (!strcmp(kind, "VirtualService")) {
			const json_t *http = json_object_get(spec, "http");
			const json_t *tcp = json_object_get(spec, "tcp");
			split = check_pairs(http, "route", 100 - w, 100 - w, w) ||
			        check_pairs(tcp, "route", 100 - w, 100 - w, w);
		} else if (!strcmp(kind, "HTTPRoute")) {
			split = check_pairs(json_object_get(spec, "rules"), "backendRefs", 100, 100 - w, w);
		} else if (!strcmp(kind, "TrafficSplit")) {
			json_t *wrap = json_pack("[{s:O}]", "backends", json_object_get(spec, "backends"));
			split = check_pairs(wrap, "backends", -1, w, 100 - w);
			json_decref(wrap);
		}
	}
	if (!split)
		abort();
}

static void check_yaml(const json_t *objs)
{
	buf b = BUF_INIT;
	char err[200];
	if (render_yaml(objs, &b, err, sizeof err) < 0 || !b.len)
		abort();
	yaml_parser_t p;
	yaml_event_t ev;
	yaml_parser_initialize(&p);
	yaml_parser_set_input_string(&p, (const unsigned char *)b.p, b.len);
	size_t docs = 0;
	for (;;) {
		if (!yaml_parser_parse(&p, &ev))
			abort(); /* what we wrote does not parse */
		yaml_event_type_t t = ev.type;
		docs += t == YAML_DOCUMENT_START_EVENT;
		yaml_event_delete(&ev);
		if (t == YAML_STREAM_END_EVENT)
			break;
	}
	yaml_parser_delete(&p);
	if (docs != json_array_size(objs))
		abort();
	buf_release(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 2)
		return 0;
	json_t *doc = json_loadb((const char *)data + 2, size - 2, JSON_DECODE_ANY, NULL);
	if (!doc)
		return 0;
	json_t *before = json_deep_copy(doc);
	int w = data[0] & 0x7f;
	int pidx = (data[1] >> 3) & 7;
	render_opts o = { .provider = providers[pidx],
	                  .split = { .weight = w, .mirror = data[1] & 1,
	                             .cookie = (data[1] & 2) ? "AbCdEfGhIj" : NULL,
	                             .primary_cookie = (data[1] & 4) ? "KlMnOpQrSt" : NULL } };
	render_result r, r2;
	int rc = render_canary(doc, &o, &r);
	check_lines(r.errors);
	check_lines(r.notes);
	if (rc == 0) {
		if (json_array_size(r.errors) || w > 100 || pidx == 7)
			abort();
		check_objects(r.objects, w);
		check_yaml(r.objects);
	} else if (rc != -1 || r.objects || !json_array_size(r.errors)) {
		abort();
	}
	if (!json_equal(doc, before))
		abort(); /* the document was modified */
	int rc2 = render_canary(doc, &o, &r2);
	if (rc2 != rc || (rc == 0 && !json_equal(r.objects, r2.objects)) ||
	    !json_equal(r.errors, r2.errors) || !json_equal(r.notes, r2.notes))
		abort(); /* not pure */
	render_result_release(&r);
	render_result_release(&r2);
	json_decref(doc);
	json_decref(before);
	return 0;
}
