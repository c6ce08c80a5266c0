/* cfgload.h - what the files of a configuration load call of each other;
 * included by nothing outside src/config/ (config.h is the interface).
 * The contracts are written at each definition. */
#ifndef CANARYD_CFGLOAD_H
#define CANARYD_CFGLOAD_H

#include <jansson.h>
#include <stdarg.h>
#include <yaml.h>

#include "config-t.h"
#include "util.h"

/* cfg_yaml.c: composing, scalars, messages */
int cfg_compose(ctx *x, yaml_parser_t *p, yaml_document_t *doc, const char *text, size_t len);
json_t *cfg_to_json(ctx *x, yaml_node_t *n, buf *path, int depth);
yaml_node_t *cfg_node_at(ctx *x, int i);
void cfg_offset_pos(const char *text, size_t len, size_t off, size_t *line, size_t *col);
bool cfg_is_scalar(const yaml_node_t *n);
bool cfg_is_plain(const yaml_node_t *n);
bool cfg_is_null(const yaml_node_t *n);
const char *cfg_sval(const yaml_node_t *n);
int cfg_bool_value(const char *s);
bool cfg_looks_decimal(const char *s);
bool cfg_looks_float(const char *s);
const char *cfg_describe(const yaml_node_t *n, char *out, size_t len);
/* "got" in messages: GOT(node), with a char got_[64] in scope */
#define GOT(n) cfg_describe((n), got_, sizeof got_)
void cfg_join(char *out, const char *path, const char *key);
void cfg_join_index(char *out, const char *path, size_t i);
void cfg_grow(void *p, size_t n, size_t *cap, size_t size);
void cfg_errs_push(ctx *x, size_t line, size_t col, char *msg);
bool cfg_errs_full(const ctx *x);
void cfg_errs_sort(ctx *x);
char *cfg_escape_controls(char *s);
void cfg_err_at(ctx *x, const yaml_node_t *n, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void cfg_err_stop(ctx *x, size_t line, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void cfg_err_pos(ctx *x, size_t line, size_t col, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* cfg_walk.c: the row walker, value readers, shared handlers */
bool cfg_walk_map(doc *d, const char *path, yaml_node_t *map, const field *t, size_t n,
                  void *obj, slot *seen);
void *cfg_at(void *obj, const field *f);
bool cfg_controls_ok(doc *d, const char *path, yaml_node_t *v, bool text);
int cfg_read_string(doc *d, const char *path, yaml_node_t *v, char **out);
int cfg_read_int(doc *d, const char *path, yaml_node_t *v, long long lo, long long hi,
                 int *out);
int cfg_read_number(doc *d, const char *path, yaml_node_t *v, double lo, double hi,
                    const char *what, double *out);
int cfg_read_hostport(doc *d, const char *path, yaml_node_t *v, const char *example,
                      char **out);
int cfg_read_one_of(doc *d, const char *path, yaml_node_t *v, const char *const *w,
                    size_t n, char **out);
json_t *cfg_read_string_map(doc *d, const char *path, yaml_node_t *v, const char *names,
                            bool (*name_ok)(const char *, size_t), const char *bad_name,
                            bool (*value_ok)(doc *, const char *, yaml_node_t *));
bool cfg_line_value_ok(doc *d, const char *p, yaml_node_t *pv);
void cfg_h_int(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
               void *obj);
void cfg_h_duration(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj);
void cfg_h_string(doc *d, const field *f, const char *path, yaml_node_t *k,
                  yaml_node_t *v, void *obj);
void cfg_h_text(doc *d, const field *f, const char *path, yaml_node_t *k,
                yaml_node_t *v, void *obj);
void cfg_h_bool(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                void *obj);
void cfg_h_list(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                void *obj);
void cfg_h_map(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
               void *obj);
void cfg_h_string_map(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj);
void cfg_h_text_map(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj);

/* cfg_canary.c: Canary documents */
extern const field cfg_metadata_fields[4];
bool cfg_load_document(ctx *x, yaml_document_t *ydoc, yaml_node_t *root, cfg *out);
void cfg_canary_release(cfg_canary *c);

/* cfg_health.c: spec.healthCheck */
void cfg_h_health(doc *d, const field *f, const char *path, yaml_node_t *k,
                  yaml_node_t *v, void *obj);
void cfg_health_router_check(doc *d, yaml_node_t *key, const char *router);
/* cfg_route.c: analysis.match and analysis.sessionAffinity */
void cfg_h_match(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                 void *obj);
void cfg_h_affinity(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj);
void cfg_route_finish(doc *d);
void cfg_route_release(cfg_canary *c);

/* cfg_metric.c: metrics, providers, MetricTemplate documents */
void cfg_h_metrics(doc *d, const field *f, const char *path, yaml_node_t *k,
                   yaml_node_t *v, void *obj);
bool cfg_address_ok(const char *s);
void cfg_src_release(cfg_metric_source *s);
void cfg_h_alerts(doc *d, const field *f, const char *path, yaml_node_t *k,
                  yaml_node_t *v, void *obj);

/* cfg_steps.c: analysis.steps, approval, onFailure (into an eng_policy) */
void cfg_h_steps(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                 void *obj);
void cfg_h_approval(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj);
void cfg_h_on_failure(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj);
void cfg_h_post_promotion(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj);
void cfg_load_template(ctx *x, yaml_node_t *root, int line, bool alert);
/* Frees what <a> holds (cfg_alert of config.h). */
void cfg_alert_release(cfg_alert *a);
void cfg_resolve_templates(ctx *x, cfg *c, bool complete);

#endif
