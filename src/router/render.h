/* render.h - the Kubernetes router objects Flagger v1.44.0 writes for a
 * Canary (fluxcd/flagger 15bd6ad, pkg/router/istio.go, gateway_api.go,
 * gateway_api_v1beta1.go, smi*.go), rendered by canaryd: Istio's two
 * DestinationRules and VirtualService, the Gateway API's HTTPRoute (v1 or
 * v1beta1) and SMI's TrafficSplit (v1alpha1, v1alpha2, v1alpha3).
 *
 * A pure layer: a Canary document (JSON, as cfg_canary.raw holds it) and a
 * split in, JSON objects out. No I/O, no clock, no randomness: the
 * session-affinity cookie values, which Flagger draws at random, are inputs.
 *
 * What "as Flagger renders" means here, in this order:
 * 1. The Canary is read as the Kubernetes API serves it to Flagger: fields
 *    Flagger's Canary CRD does not declare are dropped (pruned; each one
 *    becomes a note), its defaults are filled in (gatewayRefs[].group
 *    gateway.networking.k8s.io and kind Gateway, mirror[].backendRef.group ""
 *    and kind Service), and its type, enum and one-of rules are errors, as
 *    the API server would refuse such a Canary.
 * 2. Reconcile (create) then SetRoutes(100 - weight, weight, mirror) run on
 *    that Canary; the objects are what the cluster holds afterwards, in the
 *    order Flagger creates them, with Go's encoding/json rules (omitempty,
 *    zero values of fields without it, map keys sorted).
 * 3. Flagger's quirks are kept (docs/routers.md lists them) except where
 *    Flagger would silently route differently from what the Canary says: a
 *    Gateway API analysis.match that cannot be expressed is an error here,
 *    where Flagger drops every A/B match and sends all traffic to the
 *    canary.
 * Left out, as the API server ignores them on create: status and the
 * metadata a server fills in (uid, resourceVersion, creationTimestamp). */
#ifndef CANARYD_RENDER_H
#define CANARYD_RENDER_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "util.h"

typedef enum {
	RENDER_ISTIO = 1,   /* networking.istio.io/v1beta1 */
	RENDER_GATEWAYAPI,  /* gateway.networking.k8s.io/v1 or v1beta1 */
	RENDER_SMI,         /* split.smi-spec.io/v1alpha1, v1alpha2 or v1alpha3 */
} render_router;

/* Which objects a provider gets (Flagger's pkg/router/factory.go). */
typedef struct render_target {
	render_router router;
	const char *api_version;  /* of the route object, e.g. "split.smi-spec.io/v1alpha1" */
	char mesh[64];            /* SMI: the target mesh ("linkerd", "osm", the
	                           * MESH of smi:VERSION:MESH); its only effect:
	                           * "istio" adds the gateways annotation */
} render_target;

/* Maps a Flagger spec.provider (or a canaryd spec.router: istio, gatewayapi,
 * smi) to <t>, as Flagger's factory does: istio -> Istio; linkerd -> SMI
 * v1alpha1; osm -> SMI v1alpha2; smi:v1alpha1|2|3[:MESH] -> that version;
 * gatewayapi:v1beta1* -> HTTPRoute v1beta1, gatewayapi:v1* -> v1. canaryd's
 * own readings, each with a <note> (else note[0] is NUL): a bare gatewayapi
 * is v1 (Flagger knows no bare gatewayapi and falls back to Istio); a bare
 * smi is v1alpha2; a provider Flagger does not know is Istio, as in Flagger.
 * The providers Flagger drives with objects canaryd does not render
 * (appmesh, contour, gloo, nginx, skipper, traefik, apisix, kuma, knative)
 * and kubernetes (no route object) return -1 with <err> naming the routers
 * that work. */
int render_target_of(const char *provider, render_target *t, char *note, size_t notelen,
                     char *err, size_t errlen);

/* What the traffic must look like: Flagger's SetRoutes(100 - weight,
 * weight, mirror) with its session-affinity state. */
typedef struct render_split {
	int weight;                 /* the canary's share, 0..100; the primary gets the rest */
	bool mirror;                /* mirror the primary's requests to the canary (Istio;
	                             * the Gateway API only with analysis.iterations) */
	const char *cookie;         /* analysis.sessionAffinity: the canary cookie's value
	                             * (Flagger: 10 random letters in status.sessionAffinityCookie),
	                             * needed when weight > 0; at weight 0 it is the value of the
	                             * run that ended, whose cookie the routes expire; NULL: none */
	const char *primary_cookie; /* the primary cookie's value, needed with
	                             * sessionAffinity.primaryCookieName and weight > 0 */
} render_split;

typedef struct render_opts {
	const char *provider;       /* NULL: the document's spec.provider (Flagger,
	                             * default istio) or spec.router (canaryd/v1) */
	render_split split;
} render_opts;

typedef struct render_result {
	json_t *objects;            /* array of Kubernetes objects, in creation order */
	json_t *errors;             /* array of strings ("spec.service.port: ..."), empty on success */
	json_t *notes;              /* array of strings: what was read differently from
	                             * the document (a pruned field, a provider read as ...) */
	render_target target;
} render_result;

/* Renders the router objects of the Canary document <doc> for <o>.
 * Returns 0 with r->objects set, or -1 with every problem found in
 * r->errors (r->objects is then NULL). Either way r->notes is set and the
 * caller releases <r> with render_result_release. <doc> is not modified;
 * any JSON value is accepted (a non-object is an error, not a crash). */
int render_canary(const json_t *doc, const render_opts *o, render_result *r);

void render_result_release(render_result *r);

/* Appends <objects> (an array of JSON objects) to <out> as a YAML stream,
 * one document per object, through libyaml's emitter: block style, keys
 * in their JSON order, a string quoted whenever a YAML 1.1 or 1.2 reader
 * would otherwise take it for something else ("10", "true", "null", "~",
 * "1e3", "0x1F", "2026-01-02"...), so that it reads back as the same JSON.
 * Returns 0, or -1 with <err> (a value that is not valid UTF-8). */
int render_yaml(const json_t *objects, buf *out, char *err, size_t errlen);

#endif
