/* config-t.h - the types of a configuration load in progress, shared by
 * the files of src/config/ and included by nothing outside it (config.h is
 * the interface): the load's context, the tables of known keys and what a
 * handler is given. Types only; the functions the files share are in
 * cfgload.h, which includes this one. */
#ifndef CANARYD_CONFIG_T_H
#define CANARYD_CONFIG_T_H

#include <stdbool.h>
#include <stddef.h>
#include <yaml.h>

#include "config.h"

#define API_NATIVE "canaryd/v1"
#define API_FLAGGER "flagger.app/v1beta1"

#define NOSTORE ((size_t)-1)
#define PATH_LEN 256

/* ---- the load in progress ---- */

/* A MetricTemplate or AlertProvider document, kept until every file is
 * read because the canaries that use it may come before it, or in
 * another file. */
typedef struct tmpl_def {
	char *name, *namespace_;
	bool alert;              /* an AlertProvider (no source) */
	cfg_metric_source src;   /* query and provider (template_name unset) */
	bool has_query;          /* spec.query was given (Flagger's may lack it) */
	cfg_alert ap;            /* an AlertProvider's kind, address, token,
	                          * channel and username (name unset) */
	char *ap_why;            /* why no alert can be sent to it, or NULL */
	bool ok;                 /* read without errors */
	const char *file;        /* the file (ctx.name) and its index */
	size_t file_idx;
	int line;                /* where the document starts */
} tmpl_def;

/* A metric's templateRef, or an alert's providerRef, resolved once every
 * document is read. */
typedef struct tmpl_ref {
	bool alert;              /* a providerRef */
	size_t canary;           /* index in cfg.canaries */
	int metric;              /* index in policy.metrics; -1: the metric had errors */
	char *name, *namespace_;
	const char *file;        /* where the ref is */
	size_t file_idx;
	size_t line, col;        /* of the templateRef key */
	char path[PATH_LEN];
} tmpl_ref;

typedef struct ctx {
	const char *name;      /* file name for messages: the file being read */
	size_t file;           /* its index in the load (messages sort by it) */
	cfg_errors *errs;
	yaml_document_t *doc;
	bool flagger;          /* the document being read is Flagger's */
	/* the CFG_MAX_ budgets, for the whole file */
	size_t documents;      /* documents begun */
	size_t composed;       /* node and alias events composed */
	size_t values, text;   /* JSON values made and bytes of their keys and
	                        * scalars, each use of an alias counted again */
	bool too_big;          /* a bound was crossed (reported): stop reading */
	/* where each message added by this load points (1-based), to sort them
	 * by position at the end; past CFG_MAX_ERRORS they are counted only */
	struct errpos { size_t file, line, col, seq; char *msg; } *pos;
	size_t n_pos, pos_cap;
	size_t dropped;        /* messages past CFG_MAX_ERRORS */
	size_t drop_line, drop_col; /* where the first of them was */
	size_t drop_file;      /* and in which file (index, name) */
	const char *drop_name;
	bool stopping;         /* the message being added ends the reading: never
	                        * left out */
	bool in_template;      /* reading a MetricTemplate, not a Canary */
	size_t canary;         /* index the canary being read will have */
	tmpl_def *defs;
	size_t n_defs, defs_cap;
	tmpl_ref *refs;
	size_t n_refs, refs_cap;
	size_t canaries_cap;   /* of cfg.canaries */
} ctx;

/* ---- tables of known keys ---- */

enum { F_NATIVE = 1, F_FLAGGER = 2, F_BOTH = 3 };

typedef struct doc doc;
typedef struct field field;

/* A handler reads the value <val> of key <key> at <path> into <obj>. */
typedef void (*field_fn)(doc *d, const field *f, const char *path, yaml_node_t *key,
                         yaml_node_t *val, void *obj);

struct field {
	const char *key;
	field_fn fn;
	int docs;          /* F_NATIVE, F_FLAGGER or F_BOTH: who knows the key */
	size_t off;        /* where in <obj> the value goes, or NOSTORE */
	long long lo, hi;  /* bounds for integers (and durations, in ms) */
};

/* A key that was present: its key and value nodes. */
typedef struct slot {
	yaml_node_t *key, *val;
} slot;

/* A provider mapping as read, before its type says which keys it needs. */
typedef struct src_in {
	cfg_metric_source s;
	char *type;
	bool insecure;       /* insecureSkipVerify: true */
} src_in;

/* What is read from one metric before it becomes an eng_metric: the checks
 * that depend on several keys (thresholds need the metric's kind) run after
 * the whole mapping is read. */
typedef struct metric_in {
	eng_metric m;
	double rmin, rmax;   /* thresholdRange */
	double thr;          /* threshold (Flagger's deprecated form) */
	src_in src;          /* provider and query, for custom metrics */
	char *query;
	char *ref_name, *ref_ns; /* templateRef */
	yaml_node_t *ref_key;
	json_t *variables;   /* templateVariables: an object of strings, or NULL */
} metric_in;

struct doc {
	ctx *x;
	cfg_canary *c;
	yaml_node_t *name_val, *listen_val, *stable_rev_val, *canary_rev_val;
	yaml_node_t *no_strategy; /* analysis key, when it has no steps nor iterations */
	/* analysis.match and sessionAffinity (cfg_route.c): what only the
	 * router, known once spec is read, makes an error */
	yaml_node_t *match_key, *affinity_key;
	struct route_defer { yaml_node_t *at; char *msg; } *route_defer;
	size_t n_route_defer;
};


#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* Rows of the metadata and top-level tables that other tables' readers
 * look at (cfg_canary.c). */
enum { M_NAME = 0 };
enum { T_API, T_KIND, T_METADATA, T_SPEC };

#endif
