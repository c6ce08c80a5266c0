/* render_int.h - what render.c shares with the per-router files
 * (render_istio.c, render_gatewayapi.c, render_smi.c); not a public header.
 *
 * The Canary is decoded once (render.c) into "Go values": JSON trees that
 * hold exactly the fields Flagger's Go structs would have set after reading
 * the Canary from the API server (pruned, defaulted, type-checked), absent
 * fields absent and empty ones kept (Flagger tests some maps for nil, not
 * for emptiness). When a piece of the Canary is copied into an object,
 * rd_marshal writes it as Go's encoding/json would: struct fields in
 * declaration order, omitempty honoured, zero values written for the
 * fields without it, map keys sorted. */
#ifndef CANARYD_RENDER_INT_H
#define CANARYD_RENDER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <jansson.h>

#include "render.h"

/* ---- Go types, as descriptors ---- */

typedef enum {
	RD_STR, RD_BOOL, RD_INT,
	RD_STRUCT,  /* fields[] */
	RD_MAP,     /* map[string]elem */
	RD_LIST,    /* []elem */
	RD_SKIP,    /* a Canary field the routers do not read: not decoded, no note */
} rd_kind;

#define RD_OMIT 1u  /* `json:",omitempty"` */
#define RD_PTR  2u  /* a pointer: written when set, zero or not */
#define RD_REQ  4u  /* the Canary CRD requires it */

typedef struct rd_type rd_type;

typedef struct rd_field {
	const char *name;
	const rd_type *type;
	unsigned flags;
	const char *dflt;           /* the CRD's default (strings only), or NULL */
} rd_field;

struct rd_type {
	rd_kind kind;
	long long min, max;         /* RD_INT: the Go type's range (and the CRD's) */
	const char *const *enums;   /* RD_STR: the CRD's enum, NULL-terminated, or NULL */
	const rd_field *fields;     /* RD_STRUCT: ended by a row with a NULL name */
	const rd_type *elem;        /* RD_MAP, RD_LIST */
	size_t max_items;           /* RD_LIST: the CRD's maxItems, 0 for none */
	/* RD_STRUCT, after decoding: NULL, or why the CRD refuses <v> */
	const char *(*check)(const json_t *v);
	bool quiet;                 /* RD_STRUCT: unknown fields dropped without a note */
};

/* Scalars and containers of them (render.c). */
extern const rd_type rd_str, rd_bool, rd_int, rd_i32, rd_u32, rd_str_list, rd_str_map;

/* The Canary pieces the routers read (render.c). */
extern const rd_type rd_service;          /* spec.service */
extern const rd_type rd_match;            /* istio HTTPMatchRequest (service.match[]) */
extern const rd_type rd_match_list;
extern const rd_type rd_retry, rd_cors, rd_headers, rd_traffic_policy;
extern const rd_type rd_parent_ref;       /* gatewayRefs[] (Gateway API ParentReference) */
extern const rd_type rd_mirror_filter;    /* service.mirror[] (HTTPRequestMirrorFilter) */

/* Writes Go value <v> of type <t> as encoding/json does (new reference). */
json_t *rd_marshal(const json_t *v, const rd_type *t);

/* ---- one rendering ---- */

typedef struct rctx {
	const render_split *split;
	render_target tgt;
	char *apex, *primary, *canary; /* Service names: <apex>, <apex>-primary, <apex>-canary */
	char *ns;                   /* metadata.namespace, or NULL (then left out) */
	json_t *svc;                /* spec.service as a Go value (an object, maybe empty) */
	json_t *an;                 /* spec.analysis: match, mirror, mirrorWeight, iterations,
	                             * interval, sessionAffinity as a Go value */
	json_t *errors, *notes;     /* of the render_result */
	json_t *out;                /* the objects */
} rctx;

void rc_error(rctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void rc_note(rctx *x, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Appends <s> to <b> for a message: control characters and '\\' as \xNN,
 * cut at 80 bytes ("..."), so that a key from the file stays one line. */
void rc_shown(buf *b, const char *s);

/* Members of a Go value, with Go's zero values for absent ones. */
const char *gv_str(const json_t *o, const char *key);   /* "" when absent */
long long gv_int(const json_t *o, const char *key);      /* 0 */
bool gv_bool(const json_t *o, const char *key);          /* false */
size_t gv_len(const json_t *o, const char *key);         /* of a list or map; 0 */
json_t *gv_get(const json_t *o, const char *key);        /* borrowed, or NULL */

/* {"name": N, "namespace": NS} (NS left out when the Canary has none),
 * plus "labels"/"annotations" when given and not empty (new reference). */
json_t *rc_metadata(const rctx *x, const char *name, json_t *labels, json_t *annotations);

/* A new object {"apiVersion": api, "kind": kind, "metadata": meta, "spec": spec}
 * appended to x->out (steals meta and spec). */
void rc_emit(rctx *x, const char *api, const char *kind, json_t *meta, json_t *spec);

/* The apex metadata Flagger writes on a VirtualService or an HTTPRoute:
 * spec.service.apex labels (NULL when none) and annotations plus the two
 * Flux opt-outs of filterMetadata (pkg/router/util.go). New references. */
void rc_apex_metadata(const rctx *x, json_t **labels, json_t **annotations);

/* sessionAffinity's Set-Cookie value for cookie "<name>=<value>" <cookie>
 * with Max-Age <max_age> (SessionAffinity.BuildCookie). malloc'd. */
char *rc_build_cookie(const json_t *affinity, const char *cookie, long long max_age);

/* ".*<key>.*<value>.*" for the cookie "<key>=<value>", with Go's
 * strings.Split semantics (a '=' in the value cuts it). malloc'd. */
char *rc_cookie_regex(const char *cookie);

/* "<name>=<value>" (Flagger's status cookie) for split value <value>. malloc'd. */
char *rc_status_cookie(const char *name, const char *value);

/* Go's time.ParseDuration: 0 with *ns, or -1. */
int rc_parse_go_duration(const char *s, long long *ns);

/* The primary cookie's Max-Age: int(time.ParseDuration(analysis.interval)
 * .Seconds()); -1 (reported) when the interval does not parse, which
 * Flagger reports as "failed to parse canary interval". */
int rc_interval_seconds(rctx *x, long long *secs);

/* The routers. Each appends its objects to x->out or reports errors. */
void render_istio(rctx *x);
void render_gatewayapi(rctx *x);
void render_smi(rctx *x);

#endif
