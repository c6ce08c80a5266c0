/* render_smi.c - SMI's TrafficSplit, as Flagger v1.44.0's SmiRouter
 * (split.smi-spec.io/v1alpha1, pkg/router/smi.go), Smiv1alpha2Router and
 * Smiv1alpha3Router write it: one split of the apex Service between the
 * canary and the primary, canary first. v1alpha1's weight is a
 * resource.Quantity, which Go writes as a JSON string ("10"); v1alpha2 and
 * v1alpha3 write integers. No match, mirror, retries or timeouts: SMI has
 * none, and a note says so when the Canary asks for them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "render_int.h"

/* Go's json.Marshal of a []string: HTML-safe escapes (<, >, & as \u003c
 * ...), \u2028 and \u2029 escaped, short escapes for \b \f \n \r \t. */
static void go_json_strings(buf *b, const json_t *list)
{
	static const char hex[] = "0123456789abcdef";
	buf_puts(b, "[");
	size_t i;
	json_t *v;
	json_array_foreach(list, i, v) {
		const unsigned char *s = (const unsigned char *)json_string_value(v);
		size_t n = json_string_length(v);
		buf_puts(b, i ? ",\"" : "\"");
		for (size_t k = 0; k < n; k++) {
			unsigned char c = s[k];
			const char *esc = c == '"' ? "\\\"" : c == '\\' ? "\\\\" : c == '\n' ? "\\n"
			                : c == '\r' ? "\\r" : c == '\t' ? "\\t" : c == '\b' ? "\\b"
			                : c == '\f' ? "\\f" : NULL;
			if (esc) {
				buf_puts(b, esc);
			} else if (c < 0x20 || c == '<' || c == '>' || c == '&') {
				char u[7] = { '\\', 'u', '0', '0', hex[c >> 4], hex[c & 15], 0 };
				buf_puts(b, u);
			} else if (c == 0xe2 && k + 2 < n && s[k + 1] == 0x80 &&
			           (s[k + 2] == 0xa8 || s[k + 2] == 0xa9)) {
				buf_puts(b, s[k + 2] == 0xa8 ? "\\u2028" : "\\u2029");
				k += 2;
			} else {
				buf_append(b, &s[k], 1);
			}
		}
		buf_puts(b, "\"");
	}
	buf_puts(b, "]");
}

static json_t *backend(const rctx *x, const char *service, int weight)
{
	json_t *b = json_object();
	json_object_set_new(b, "service", json_string(service));
	if (!strcmp(x->tgt.api_version, "split.smi-spec.io/v1alpha1")) {
		char q[16]; /* resource.NewQuantity(w, DecimalExponent).String() */
		snprintf(q, sizeof q, "%d", weight);
		json_object_set_new(b, "weight", json_string(q));
	} else {
		json_object_set_new(b, "weight", json_integer(weight));
	}
	return b;
}

void render_smi(rctx *x)
{
	const render_split *s = x->split;
	const json_t *hosts = gv_get(x->svc, "hosts");
	const char *host = json_array_size(hosts) ? json_string_value(json_array_get(hosts, 0))
	                                          : x->apex;
	json_t *spec = json_object();
	/* v1alpha1 and v1alpha2 omit an empty service; v1alpha3 always writes it */
	if (*host || !strcmp(x->tgt.api_version, "split.smi-spec.io/v1alpha3"))
		json_object_set_new(spec, "service", json_string(host));
	json_object_set_new(spec, "backends", json_pack("[o,o]", backend(x, x->canary, s->weight),
	                                                 backend(x, x->primary, 100 - s->weight)));

	json_t *annotations = NULL;
	const json_t *gw = gv_get(x->svc, "gateways");
	if (!strcmp(x->tgt.mesh, "istio") && json_array_size(gw)) {
		buf b = BUF_INIT;
		go_json_strings(&b, gw);
		annotations = json_pack("{s:s}", "VirtualService.v1alpha3.networking.istio.io/spec.gateways",
		                        b.p);
		buf_release(&b);
	}
	rc_emit(x, x->tgt.api_version, "TrafficSplit", rc_metadata(x, x->apex, NULL, annotations),
	        spec);
	json_decref(annotations);

	if (s->mirror || gv_len(x->an, "match") || gv_get(x->an, "sessionAffinity"))
		rc_note(x, "SMI's TrafficSplit has no mirror, A/B match or session affinity; Flagger's "
		        "SMI router renders none, and neither does canaryd");
}
