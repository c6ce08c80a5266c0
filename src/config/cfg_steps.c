/* cfg_steps.c - how an operator steers a rollout (issue 11): the
 * analysis.steps ladder (Argo Rollouts' setWeight and pause steps in a
 * canaryd/v1 or Flagger document), analysis.approval and
 * analysis.onFailure. Checked against the rest of the analysis in
 * cfg_steps_check, once every key has been read. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgload.h"

/* One steps[] entry: an integer (setWeight shorthand, so that the seed's
 * ladder reads "steps: [2, 5, 10, 20, 30, 50]"), {setWeight: N}, or
 * {pause: {}} / {pause: {duration: 10m}}. */
typedef struct step_in {
	int weight;
	bool has_weight;
	uint64_t pause_ms;
	bool has_pause;
} step_in;

static void h_set_weight(doc *d, const field *f, const char *path, yaml_node_t *k,
                         yaml_node_t *v, void *obj)
{
	step_in *s = obj;
	if (cfg_read_int(d, path, v, 0, 100, &s->weight) == 0)
		s->has_weight = true;
}

static const field pause_fields[] = {
	{ "duration", cfg_h_duration, F_BOTH, offsetof(step_in, pause_ms), 1, 30LL * 86400000 },
};

static void h_pause(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj)
{
	step_in *s = obj;
	char got_[64];
	/* "pause: {}" and a bare "pause:" (null) both wait until resumed */
	if (v->type == YAML_SCALAR_NODE && v->data.scalar.length == 0) {
		s->has_pause = true;
		return;
	}
	if (v->type != YAML_MAPPING_NODE) {
		cfg_err_at(d->x, v, "%s: must be a map such as {duration: 10m}, or {} to wait until "
		           "resumed, got %s", path, GOT(v));
		return;
	}
	slot seen[N_OF(pause_fields)];
	if (cfg_walk_map(d, path, v, pause_fields, N_OF(pause_fields), s, seen))
		s->has_pause = true;
}

static const field step_fields[] = {
	{ "setWeight", h_set_weight, F_BOTH, NOSTORE, 0, 0 },
	{ "pause", h_pause, F_BOTH, NOSTORE, 0, 0 },
};

void cfg_h_steps(doc *d, const field *f, const char *path, yaml_node_t *k, yaml_node_t *v,
                 void *obj)
{
	char got_[64];
	eng_policy *p = obj;
	if (v->type != YAML_SEQUENCE_NODE || v->data.sequence.items.top == v->data.sequence.items.start) {
		cfg_err_at(d->x, v, "%s: must be a non-empty list of steps ({setWeight: 10}, "
		           "{pause: {duration: 10m}}, {pause: {}}, or a weight), got %s", path,
		           v->type == YAML_SEQUENCE_NODE ? "an empty list" : GOT(v));
		return;
	}
	size_t n = (size_t)(v->data.sequence.items.top - v->data.sequence.items.start);
	if (n > ENG_MAX_STEPS) {
		cfg_err_at(d->x, v, "%s: at most %d steps, got %zu", path, ENG_MAX_STEPS, n);
		return;
	}
	bool ok = true, any_weight = false;
	for (size_t i = 0; i < n; i++) {
		yaml_node_t *e = cfg_node_at(d->x, v->data.sequence.items.start[i]);
		char ip[PATH_LEN];
		cfg_join_index(ip, path, i);
		step_in s = { 0 };
		if (!e) {
			ok = false;
			continue;
		}
		if (e->type == YAML_SCALAR_NODE) {
			if (cfg_read_int(d, ip, e, 0, 100, &s.weight) < 0) {
				ok = false;
				continue;
			}
			s.has_weight = true;
		} else if (e->type == YAML_MAPPING_NODE) {
			slot seen[N_OF(step_fields)];
			if (!cfg_walk_map(d, ip, e, step_fields, N_OF(step_fields), &s, seen)) {
				ok = false;
				continue;
			}
			if (seen[0].key && seen[1].key) {
				cfg_err_at(d->x, e, "%s: a step is either setWeight or pause, not both", ip);
				ok = false;
				continue;
			}
			if (!seen[0].key && !seen[1].key) {
				cfg_err_at(d->x, e, "%s: needs setWeight or pause", ip);
				ok = false;
				continue;
			}
		} else {
			cfg_err_at(d->x, e, "%s: must be {setWeight: N}, {pause: ...} or a weight, got %s",
			           ip, GOT(e));
			ok = false;
			continue;
		}
		if (!s.has_weight && !s.has_pause) {
			ok = false;
			continue;
		}
		p->steps[i].weight = s.has_weight ? s.weight : -1;
		p->steps[i].pause_ms = s.has_pause ? s.pause_ms : 0;
		any_weight |= s.has_weight && s.weight > 0;
	}
	if (ok && !any_weight) {
		cfg_err_at(d->x, v, "%s: no step gives the canary any traffic (a setWeight above 0): "
		           "it would be promoted without having served a request", path);
		ok = false;
	}
	if (ok)
		p->n_steps = (int)n;
}

static const field approval_fields[] = {
	{ "above", cfg_h_int, F_BOTH, offsetof(eng_policy, approval_above), 0, 99 },
};

void cfg_h_approval(doc *d, const field *f, const char *path, yaml_node_t *k,
                    yaml_node_t *v, void *obj)
{
	eng_policy *p = obj;
	char got_[64];
	if (v->type != YAML_MAPPING_NODE) {
		cfg_err_at(d->x, v, "%s: must be a map such as {above: 20} (a step to a weight "
		           "above 20%%, or the promotion, waits for canaryctl approve), got %s", path,
		           GOT(v));
		return;
	}
	slot seen[N_OF(approval_fields)];
	if (!cfg_walk_map(d, path, v, approval_fields, N_OF(approval_fields), p, seen))
		return;
	if (!seen[0].key) {
		cfg_err_at(d->x, v, "%s.above: required (the weight past which a human approves; "
		           "0 approves the first step)", path);
		return;
	}
	p->has_approval = true;
}

void cfg_h_on_failure(doc *d, const field *f, const char *path, yaml_node_t *k,
                      yaml_node_t *v, void *obj)
{
	static const char *const ways[] = { "rollback", "pause" };
	eng_policy *p = obj;
	char *s;
	if (cfg_read_one_of(d, path, v, ways, N_OF(ways), &s) < 0)
		return;
	p->on_failure = strcmp(s, "pause") == 0 ? ENG_ONFAIL_PAUSE : ENG_ONFAIL_ROLLBACK;
	free(s);
}

static const field post_promotion_fields[] = {
	{ "window", cfg_h_duration, F_BOTH, offsetof(eng_policy, post_promotion_ms), 1000,
	  7LL * 86400000 },
};

/* analysis.postPromotion: {window: 10m}: the new stable is judged this
 * long after its promotion, against the previous stable's baseline. */
void cfg_h_post_promotion(doc *d, const field *f, const char *path, yaml_node_t *k,
                          yaml_node_t *v, void *obj)
{
	eng_policy *p = obj;
	char got_[64];
	if (v->type != YAML_MAPPING_NODE) {
		cfg_err_at(d->x, v, "%s: must be a map such as {window: 10m}, got %s", path, GOT(v));
		return;
	}
	slot seen[N_OF(post_promotion_fields)];
	if (cfg_walk_map(d, path, v, post_promotion_fields, N_OF(post_promotion_fields), p, seen) &&
	    !seen[0].key)
		cfg_err_at(d->x, v, "%s.window: required (how long the new stable is judged after "
		           "its promotion, such as 10m)", path);
}
