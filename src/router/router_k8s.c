/* router_k8s.c - the Kubernetes routers: "istio" (VirtualService and two
 * DestinationRules), "gatewayapi" (HTTPRoute) and "smi" (TrafficSplit), and
 * the Flagger providers that map onto them (istio, linkerd, osm,
 * smi:VERSION:MESH, gatewayapi:v1, gatewayapi:v1beta1, gatewayapi).
 *
 * An apply renders the objects Flagger v1.44.0 would hold for that split
 * (render.h) and writes them one after the other as Flagger does: GET; on
 * 404 create; else PUT the desired spec with the fetched resourceVersion,
 * only when the live object does not already hold it (k8s_upsert: a 409
 * starts again from the GET). The split is reported done once the API
 * accepted the last write: what canaryd then says is what the cluster
 * holds. A failure (the mesh not installed, a 403 with the RBAC rule, the
 * API down) is reported as the apply's error, one line; the controller
 * tries the split again later, and a later split supersedes one that has
 * not started.
 *
 * Applies run one at a time per canary: a split that arrives while one is
 * being written waits, and one that waits is replaced by a newer one (the
 * replaced split is answered with the newer one's outcome, after it: the
 * controller ignores an answer older than one it had).
 *
 * Readiness (router_events.ready, while a split with watch_ready is in
 * force) comes from watches, which resume and relist on 410 (k8s.h): the
 * canary workload (spec.targetRef, a Deployment) must be available
 * (k8s_deployment_ready), and for an HTTPRoute every parent must have
 * Accepted its current generation (k8s_httproute_ready), as Flagger's
 * GetRoutes waits for before trusting a route.
 *
 * One Kubernetes client serves every mesh canary of the daemon: made when
 * the first opens (from --kubeconfig, or the pod's service account), freed
 * when the last closes. */
#include "router_k8s.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "k8s.h"
#include "log.h"
#include "render.h"
#include "util.h"

#define MAX_WAITING 64        /* replaced splits kept for their answer */

/* ---- the client every mesh router shares ---- */

static const char *kubeconfig_path;
static k8s *shared;               /* NULL until the first mesh router opens */
static char shared_source[256];   /* where its configuration came from */
static size_t shared_refs;        /* open routers (not closed) */

typedef struct kroute kroute;
static kroute *zombies;           /* closed, waiting for an operation's answer */

void router_k8s_kubeconfig(const char *path)
{
	kubeconfig_path = path;
}

/* Takes a reference on the shared client, making it on <loop> the first
 * time. Returns it, or NULL with <err>. */
static k8s *client_get(uv_loop_t *loop, char *err, size_t errlen)
{
	if (shared) {
		shared_refs++;
		return shared;
	}
	k8s_config c;
	memset(&c, 0, sizeof c);
	char why[1024];
	int rc;
	if (kubeconfig_path) {
		rc = k8s_config_kubeconfig(&c, kubeconfig_path, NULL, why, sizeof why);
	} else if (getenv("KUBERNETES_SERVICE_HOST")) {
		k8s_incluster where = { NULL, NULL, NULL };
		rc = k8s_config_incluster(&c, &where, why, sizeof why);
	} else {
		snprintf(err, errlen, "no Kubernetes API to write to: give --kubeconfig FILE, or run "
		         "in a cluster (KUBERNETES_SERVICE_HOST is not set)");
		return NULL;
	}
	if (rc < 0) {
		snprintf(err, errlen, "%s", why);
		k8s_config_release(&c);
		return NULL;
	}
	shared = k8s_new(loop, &c, why, sizeof why);
	snprintf(shared_source, sizeof shared_source, "%s", c.source ? c.source : "");
	k8s_config_release(&c);
	if (!shared) {
		snprintf(err, errlen, "%s", why);
		return NULL;
	}
	shared_refs = 1;
	return shared;
}

static void zombies_free(void);

/* Drops a reference; the last one frees the client, which ends every
 * operation still in flight without its callback. */
static void client_put(void)
{
	if (!shared || --shared_refs > 0)
		return;
	k8s_free(shared);
	shared = NULL;
	zombies_free();
}

/* ---- the router ---- */

/* A split waiting to be written, or replaced by a newer one. */
typedef struct waiting {
	uint64_t generation;
	router_done_fn done;
	void *arg;
} waiting;

/* One object a split writes, as the API last answered for it. */
typedef struct kobj {
	char api_version[128];
	char kind[64];
	char name[254];
	char ns[64];
	char resource_version[64];
	json_int_t generation;
} kobj;

struct kroute {
	router base;
	uv_loop_t *loop;
	char *name;                   /* the canary's */
	json_t *doc;                  /* its document (cfg_canary.raw, a reference) */
	char *provider;               /* cc->router */
	render_target target;
	k8s *k;
	router_events ev;             /* cleared by retire */
	bool retired, closed;
	int ops;                      /* k8s operations in flight (each holds <kr>) */
	kroute *next_zombie;

	/* the split being written */
	bool busy;
	uint64_t gen;
	int weight;
	router_done_fn done;
	void *done_arg;
	json_t *objects;              /* rendered, in creation order */
	size_t at;                    /* the one being written */
	json_t *writing;              /* objects[at] */
	bool discovered;              /* the route's API group is served */
	/* the splits that arrived meanwhile: the last is written next, the
	 * others are answered with its outcome */
	waiting wait[MAX_WAITING];
	size_t n_wait;
	router_split next;            /* the last one's split (no members) */
	char next_stable[ENG_REV_LEN], next_canary[ENG_REV_LEN];

	/* what status shows */
	kobj *objs;
	size_t n_objs;
	char last_err[512];

	/* readiness */
	bool watch_ready;
	char target_name[254];        /* spec.targetRef.name, "" when none */
	char ns[64];                  /* metadata.namespace, "" for the client's */
	k8s_watch *w_deploy, *w_route;
	int deploy_ok, route_ok;      /* 1 ready, 0 not yet, -1 failed */
	char deploy_why[512], route_why[512];
};

static void kr_free(kroute *kr)
{
	json_decref(kr->doc);
	json_decref(kr->objects);
	free(kr->objs);
	free(kr->provider);
	free(kr->name);
	free(kr);
}

static void zombies_free(void)
{
	while (zombies) {
		kroute *kr = zombies;
		zombies = kr->next_zombie;
		kr_free(kr);
	}
}

static const router_ops *ops_of(render_router r)
{
	switch (r) {
	case RENDER_ISTIO: return &router_istio;
	case RENDER_GATEWAYAPI: return &router_gatewayapi;
	case RENDER_SMI: return &router_smi;
	}
	return NULL;
}

const router_ops *router_k8s_find(const char *provider)
{
	render_target t;
	char note[256], err[512];
	if (!provider || !*provider || !strcmp(provider, "builtin") || !strcmp(provider, "haproxy"))
		return NULL;
	if (render_target_of(provider, &t, note, sizeof note, err, sizeof err) < 0)
		return NULL;
	return ops_of(t.router);
}

/* The plural resource name of an object's kind (the ones render.h writes). */
static const char *resource_of(const char *kind)
{
	static const char *const map[][2] = {
		{ "VirtualService", "virtualservices" }, { "DestinationRule", "destinationrules" },
		{ "HTTPRoute", "httproutes" }, { "TrafficSplit", "trafficsplits" },
		{ "Service", "services" }, { "Deployment", "deployments" },
	};
	for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
		if (kind && !strcmp(map[i][0], kind))
			return map[i][1];
	return NULL;
}

/* Splits "group/version" (or "v1") into <group> and <version>. */
static void split_api(const char *api, char *group, size_t gl, char *version, size_t vl)
{
	const char *slash = strchr(api, '/');
	if (slash) {
		snprintf(group, gl, "%.*s", (int)(slash - api), api);
		snprintf(version, vl, "%s", slash + 1);
	} else {
		group[0] = '\0';
		snprintf(version, vl, "%s", api);
	}
}

/* Renders the objects of <cc>'s document for weight <w>, or returns NULL
 * with every error in <err>. <cookie> is the session-affinity value. */
static json_t *render_for(const json_t *doc, const char *provider, int w, const char *cookie,
                          char *err, size_t errlen, json_t **notes)
{
	render_opts o = { .provider = provider,
	                  .split = { .weight = w, .cookie = cookie, .primary_cookie = cookie } };
	render_result r;
	json_t *objs = NULL;
	if (render_canary(doc, &o, &r) == 0) {
		objs = json_incref(r.objects);
	} else {
		size_t n = 0, i;
		json_t *e;
		err[0] = '\0';
		json_array_foreach(r.errors, i, e)
			n += (size_t)snprintf(err + (n < errlen ? n : errlen), n < errlen ? errlen - n : 0,
			                      "%s%s", i ? "; " : "", json_string_value(e));
	}
	if (notes)
		*notes = json_incref(r.notes);
	render_result_release(&r);
	return objs;
}

/* Session affinity needs a cookie value while the canary has weight
 * (Flagger draws 10 random letters per rollout and keeps them in the
 * Canary's status). canaryd derives them from the canary and its revision:
 * the same rollout keeps its value across restarts, a new one gets a new
 * value. */
static void cookie_of(const char *name, const char *rev, char out[11])
{
	uint64_t h = 1469598103934665603ULL;
	for (const char *p = name; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	h = (h ^ 0xff) * 1099511628211ULL;
	for (const char *p = rev ? rev : ""; *p; p++)
		h = (h ^ (unsigned char)*p) * 1099511628211ULL;
	for (int i = 0; i < 10; i++) {
		out[i] = (char)('a' + h % 26);
		h = h / 26 ^ (h << 7);
	}
	out[10] = '\0';
}

static int k_check(const cfg_canary *cc, char *err, size_t errlen)
{
	char why[2048];
	json_t *objs = render_for(cc->raw, cc->router, 0, "aaaaaaaaaa", why, sizeof why, NULL);
	if (!objs) {
		snprintf(err, errlen, "canary '%s': router '%s' cannot render its objects: %s",
		         cc->name, cc->router, why);
		return -1;
	}
	json_decref(objs);
	return 0;
}

/* ---- readiness ---- */

static void report_ready(kroute *kr)
{
	if (!kr->watch_ready || kr->retired || !kr->ev.ready)
		return;
	bool ok = (!kr->target_name[0] || kr->deploy_ok == 1) &&
	          (!kr->w_route || kr->route_ok == 1);
	kr->ev.ready(kr->ev.arg, ok);
}

/* The state of the one object a watch of <name> knows from <ev>: the
 * object, or NULL when it is gone or not there. */
static const json_t *watched(const k8s_event *ev, const char *name)
{
	if (ev->type == K8S_EV_DELETED)
		return NULL;
	if (ev->type != K8S_EV_SYNC)
		return ev->object;
	const json_t *items = json_object_get(ev->object, "items");
	size_t i;
	const json_t *it;
	json_array_foreach(items, i, it) {
		const char *n = json_string_value(json_object_get(json_object_get(it, "metadata"),
		                                                  "name"));
		if (n && !strcmp(n, name))
			return it;
	}
	return NULL;
}

static void on_deploy(void *arg, const k8s_event *ev)
{
	kroute *kr = arg;
	if (ev->type == K8S_EV_BOOKMARK || ev->type == K8S_EV_ERROR)
		return; /* the watch goes on: what is known stays true */
	const json_t *d = watched(ev, kr->target_name);
	if (!d) {
		kr->deploy_ok = 0;
		snprintf(kr->deploy_why, sizeof kr->deploy_why, "Deployment '%s' does not exist",
		         kr->target_name);
	} else {
		kr->deploy_ok = k8s_deployment_ready(d, kr->deploy_why, sizeof kr->deploy_why);
		if (kr->deploy_ok == 1)
			kr->deploy_why[0] = '\0';
	}
	report_ready(kr);
}

static void on_route(void *arg, const k8s_event *ev)
{
	kroute *kr = arg;
	if (ev->type == K8S_EV_BOOKMARK || ev->type == K8S_EV_ERROR)
		return;
	const char *apex = kr->n_objs ? kr->objs[kr->n_objs - 1].name : kr->name;
	const json_t *o = watched(ev, apex);
	if (!o) {
		kr->route_ok = 0;
		snprintf(kr->route_why, sizeof kr->route_why, "HTTPRoute '%s' does not exist", apex);
	} else {
		kr->route_ok = k8s_httproute_ready(o, kr->route_why, sizeof kr->route_why);
		if (kr->route_ok == 1)
			kr->route_why[0] = '\0';
	}
	report_ready(kr);
}

static void watches_stop(kroute *kr)
{
	if (kr->w_deploy)
		k8s_watch_stop(kr->w_deploy);
	if (kr->w_route)
		k8s_watch_stop(kr->w_route);
	kr->w_deploy = kr->w_route = NULL;
}

/* Reads the names readiness watches from the document, and starts the
 * watches. The route's name is the apex, the last object rendered. */
static void watches_start(kroute *kr, const char *apex)
{
	const json_t *spec = json_object_get(kr->doc, "spec");
	const char *t = json_string_value(json_object_get(json_object_get(spec, "targetRef"), "name"));
	const char *ns = json_string_value(json_object_get(json_object_get(kr->doc, "metadata"),
	                                                   "namespace"));
	snprintf(kr->target_name, sizeof kr->target_name, "%s", t ? t : "");
	snprintf(kr->ns, sizeof kr->ns, "%s", ns ? ns : "");
	kr->deploy_ok = kr->route_ok = 0;
	char err[512];
	if (kr->target_name[0]) {
		k8s_ref ref = { "apps", "v1", "deployments", kr->ns[0] ? kr->ns : NULL, kr->target_name };
		kr->w_deploy = k8s_watch_start(kr->k, &ref, NULL, on_deploy, kr, err, sizeof err);
		if (!kr->w_deploy)
			log_msg(LOG_ERROR, kr->name, "cannot watch the canary's Deployment: %s", err);
	}
	if (kr->target.router == RENDER_GATEWAYAPI && apex) {
		char group[128], version[64];
		split_api(kr->target.api_version, group, sizeof group, version, sizeof version);
		k8s_ref ref = { group, version, "httproutes", kr->ns[0] ? kr->ns : NULL, apex };
		kr->w_route = k8s_watch_start(kr->k, &ref, NULL, on_route, kr, err, sizeof err);
		if (!kr->w_route)
			log_msg(LOG_ERROR, kr->name, "cannot watch the HTTPRoute: %s", err);
	}
}

/* ---- applying a split ---- */

static void write_next(kroute *kr);
static void start_split(kroute *kr);

/* An operation's answer came: returns whether <kr> still wants it (else it
 * was closed meanwhile and is freed once nothing is in flight). */
static bool op_back(kroute *kr)
{
	kr->ops--;
	if (!kr->closed)
		return true;
	if (kr->ops == 0) {
		/* unlink from the zombies and free */
		for (kroute **p = &zombies; *p; p = &(*p)->next_zombie)
			if (*p == kr) {
				*p = kr->next_zombie;
				break;
			}
		kr_free(kr);
	}
	return false;
}

/* The split being written ends with <status> (and <err>): it is answered,
 * then the splits it replaced, then the next one starts. */
static void split_end(kroute *kr, int status, const char *err)
{
	json_decref(kr->objects);
	kr->objects = NULL;
	kr->writing = NULL;
	kr->busy = false;
	if (status < 0)
		snprintf(kr->last_err, sizeof kr->last_err, "%s", err ? err : "failed");
	else
		kr->last_err[0] = '\0';
	if (!kr->retired && kr->done)
		kr->done(kr->done_arg, kr->gen, status, err);
	kr->done = NULL;
	if (kr->n_wait == 0 || kr->retired)
		return;
	/* all but the last waiting split were replaced: they get this outcome,
	 * after the answer above (which the controller keeps) */
	waiting last = kr->wait[kr->n_wait - 1];
	for (size_t i = 0; i + 1 < kr->n_wait; i++)
		if (!kr->retired && kr->wait[i].done)
			kr->wait[i].done(kr->wait[i].arg, kr->wait[i].generation, status, err);
	kr->n_wait = 0;
	kr->gen = last.generation;
	kr->done = last.done;
	kr->done_arg = last.arg;
	kr->weight = kr->next.weight;
	start_split(kr);
}

/* Remembers what the API answered for the object just written. */
static void note_object(kroute *kr, const json_t *obj)
{
	const json_t *m = json_object_get(obj, "metadata");
	const char *name = json_string_value(json_object_get(m, "name"));
	const char *kind = json_string_value(json_object_get(obj, "kind"));
	const char *api = json_string_value(json_object_get(obj, "apiVersion"));
	if (!name || !kind)
		return;
	kobj *o = NULL;
	for (size_t i = 0; i < kr->n_objs; i++)
		if (!strcmp(kr->objs[i].name, name) && !strcmp(kr->objs[i].kind, kind))
			o = &kr->objs[i];
	if (!o) {
		kr->objs = xrealloc(kr->objs, (kr->n_objs + 1) * sizeof *kr->objs);
		o = &kr->objs[kr->n_objs++];
		memset(o, 0, sizeof *o);
		snprintf(o->name, sizeof o->name, "%s", name);
		snprintf(o->kind, sizeof o->kind, "%s", kind);
	}
	const char *ns = json_string_value(json_object_get(m, "namespace"));
	const char *rv = json_string_value(json_object_get(m, "resourceVersion"));
	snprintf(o->api_version, sizeof o->api_version, "%s", api ? api : "");
	snprintf(o->ns, sizeof o->ns, "%s", ns ? ns : "");
	snprintf(o->resource_version, sizeof o->resource_version, "%s", rv ? rv : "");
	o->generation = json_integer_value(json_object_get(m, "generation"));
}

/* Flagger's write decision: nothing when the live object already holds
 * the desired spec, labels and annotations (compared ignoring what the API
 * fills in); else the live object with the desired spec and its metadata
 * laid over (k8s_upsert sets the resourceVersion it fetched). */
static int mutate(void *arg, const json_t *live, json_t **out, char *err, size_t errlen)
{
	kroute *kr = arg;
	const json_t *want = kr->writing;
	(void)err;
	(void)errlen;
	if (!live) {
		*out = json_deep_copy(want);
		return 1;
	}
	const json_t *wm = json_object_get(want, "metadata");
	const json_t *lm = json_object_get(live, "metadata");
	if (k8s_json_subset(json_object_get(want, "spec"), json_object_get(live, "spec")) &&
	    k8s_json_subset(json_object_get(wm, "labels"), json_object_get(lm, "labels")) &&
	    k8s_json_subset(json_object_get(wm, "annotations"), json_object_get(lm, "annotations")))
		return 0;
	json_t *o = json_deep_copy(live);
	json_object_del(o, "status");
	json_t *om = json_object_get(o, "metadata");
	json_object_del(om, "managedFields");
	const char *keys[] = { "labels", "annotations" };
	for (int i = 0; i < 2; i++) {
		const json_t *w = json_object_get(wm, keys[i]);
		if (!json_is_object(w))
			continue;
		json_t *l = json_object_get(om, keys[i]);
		if (!json_is_object(l)) {
			l = json_object();
			json_object_set_new(om, keys[i], l);
		}
		json_object_update(l, (json_t *)w);
	}
	json_object_set(o, "spec", json_object_get(want, "spec"));
	*out = o;
	return 1;
}

static void on_written(void *arg, const k8s_result *res)
{
	kroute *kr = arg;
	if (!op_back(kr))
		return;
	if (res->error) {
		split_end(kr, -1, res->error);
		return;
	}
	note_object(kr, res->object);
	if (res->written)
		log_msg(LOG_INFO, kr->name, "router '%s': wrote %s '%s' (resourceVersion %s, "
		        "weight %d)%s%s", kr->base.ops->name,
		        kr->objs[kr->n_objs - 1].kind, kr->objs[kr->n_objs - 1].name,
		        kr->objs[kr->n_objs - 1].resource_version, kr->weight,
		        res->warnings ? ": " : "", res->warnings ? res->warnings : "");
	kr->at++;
	write_next(kr);
}

static void write_next(kroute *kr)
{
	if (kr->at >= json_array_size(kr->objects)) {
		split_end(kr, 0, NULL);
		return;
	}
	kr->writing = json_array_get(kr->objects, kr->at);
	const char *api = json_string_value(json_object_get(kr->writing, "apiVersion"));
	const char *kind = json_string_value(json_object_get(kr->writing, "kind"));
	const json_t *m = json_object_get(kr->writing, "metadata");
	const char *name = json_string_value(json_object_get(m, "name"));
	const char *ns = json_string_value(json_object_get(m, "namespace"));
	const char *res = resource_of(kind);
	char group[128], version[64], err[1024];
	if (!api || !name || !res) {
		snprintf(err, sizeof err, "cannot write a rendered %s: no apiVersion, name or known "
		         "kind", kind ? kind : "object");
		split_end(kr, -1, err);
		return;
	}
	split_api(api, group, sizeof group, version, sizeof version);
	k8s_ref ref = { group, version, res, ns, name };
	if (k8s_upsert(kr->k, &ref, mutate, kr, on_written, kr, err, sizeof err) < 0) {
		split_end(kr, -1, err);
		return;
	}
	kr->ops++;
}

static void on_discovered(void *arg, const k8s_result *res)
{
	kroute *kr = arg;
	if (!op_back(kr))
		return;
	if (res->error) {
		split_end(kr, -1, res->error);
		return;
	}
	kr->discovered = true;
	write_next(kr);
}

/* Renders the split in kr->gen/weight and starts writing it. */
static void start_split(kroute *kr)
{
	char err[2048], cookie[11];
	kr->busy = true;
	cookie_of(kr->name, kr->next_canary, cookie);
	kr->objects = render_for(kr->doc, kr->provider, kr->weight, cookie, err, sizeof err, NULL);
	if (!kr->objects) {
		split_end(kr, -1, err);
		return;
	}
	kr->at = 0;
	if (kr->discovered) {
		write_next(kr);
		return;
	}
	/* the route's API first: "Istio is not installed" says more than a 404
	 * on the object's path */
	const json_t *last = json_array_get(kr->objects, json_array_size(kr->objects) - 1);
	const char *api = json_string_value(json_object_get(last, "apiVersion"));
	const char *res = resource_of(json_string_value(json_object_get(last, "kind")));
	char group[128], version[64];
	split_api(api ? api : kr->target.api_version, group, sizeof group, version, sizeof version);
	if (k8s_discover(kr->k, group, version, res, on_discovered, kr, err, sizeof err) < 0) {
		split_end(kr, -1, err);
		return;
	}
	kr->ops++;
}

static void k_apply(router *r, const router_split *s, router_done_fn done, void *arg)
{
	kroute *kr = (kroute *)r;
	bool was = kr->watch_ready;
	kr->watch_ready = s->watch_ready;
	snprintf(kr->next_stable, sizeof kr->next_stable, "%s", s->stable_rev ? s->stable_rev : "");
	snprintf(kr->next_canary, sizeof kr->next_canary, "%s", s->canary_rev ? s->canary_rev : "");
	kr->next.weight = s->weight;
	if (kr->busy) {
		if (kr->n_wait == MAX_WAITING) {
			/* the oldest replaced split gets its answer now: a failure, which
			 * the controller ignores once a later one is answered */
			waiting *o = &kr->wait[0];
			if (o->done)
				o->done(o->arg, o->generation, -1, "replaced by a later split");
			memmove(kr->wait, kr->wait + 1, (MAX_WAITING - 1) * sizeof *kr->wait);
			kr->n_wait--;
		}
		kr->wait[kr->n_wait++] = (waiting){ s->generation, done, arg };
	} else {
		kr->gen = s->generation;
		kr->weight = s->weight;
		kr->done = done;
		kr->done_arg = arg;
		start_split(kr);
	}
	if (s->watch_ready && !was)
		report_ready(kr); /* what the watches know already */
}

/* ---- the ops ---- */

static int k_open(uv_loop_t *loop, const cfg_canary *cc, stats *st, const router_events *ev,
                  router **out, char *err, size_t errlen)
{
	(void)st; /* traffic does not pass through canaryd */
	render_target t;
	char note[512], why[1024];
	if (render_target_of(cc->router, &t, note, sizeof note, why, sizeof why) < 0) {
		snprintf(err, errlen, "canary '%s': %s", cc->name, why);
		return -1;
	}
	k8s *k = client_get(loop, why, sizeof why);
	if (!k) {
		snprintf(err, errlen, "canary '%s': router '%s': %s", cc->name, cc->router, why);
		return -1;
	}
	kroute *kr = xcalloc(1, sizeof *kr);
	kr->base.ops = ops_of(t.router);
	kr->loop = loop;
	kr->name = xstrdup(cc->name);
	kr->doc = json_incref(cc->raw);
	kr->provider = xstrdup(cc->router);
	kr->target = t;
	kr->k = k;
	kr->ev = *ev;
	if (note[0])
		log_msg(LOG_WARN, cc->name, "%s", note);
	log_msg(LOG_INFO, cc->name, "router '%s' writes %s through the Kubernetes API (%s)",
	        kr->base.ops->name, t.api_version, shared_source);
	json_t *objs = render_for(kr->doc, kr->provider, 0, "aaaaaaaaaa", why, sizeof why, NULL);
	const json_t *last = json_array_get(objs, json_array_size(objs) - 1);
	const char *apex = json_string_value(json_object_get(json_object_get(last, "metadata"),
	                                                     "name"));
	watches_start(kr, apex);
	json_decref(objs);
	*out = &kr->base;
	return 0;
}

static int k_prepare(router *r, const cfg_canary *cc, char *err, size_t errlen)
{
	(void)r;
	return k_check(cc, err, errlen);
}

static void k_finish(router *r, const cfg_canary *cc)
{
	kroute *kr = (kroute *)r;
	json_decref(kr->doc);
	kr->doc = json_incref(cc->raw);
	free(kr->provider);
	kr->provider = xstrdup(cc->router);
	render_target_of(cc->router, &kr->target, (char[256]){ 0 }, 256, (char[256]){ 0 }, 256);
	kr->discovered = false;
	/* the workload or the route may have another name now */
	watches_stop(kr);
	char why[1024];
	json_t *objs = render_for(kr->doc, kr->provider, 0, "aaaaaaaaaa", why, sizeof why, NULL);
	const json_t *last = json_array_get(objs, json_array_size(objs) - 1);
	watches_start(kr, json_string_value(json_object_get(json_object_get(last, "metadata"),
	                                                    "name")));
	json_decref(objs);
}

static void k_cancel(router *r)
{
	(void)r;
}

static void k_status(router *r, json_t *o)
{
	kroute *kr = (kroute *)r;
	json_t *k = json_object();
	json_object_set_new(k, "api", json_string(shared_source));
	json_t *arr = json_array();
	for (size_t i = 0; i < kr->n_objs; i++) {
		const kobj *x = &kr->objs[i];
		json_t *e = json_pack("{s:s,s:s,s:s,s:s,s:I}", "apiVersion", x->api_version,
		                      "kind", x->kind, "name", x->name,
		                      "resourceVersion", x->resource_version,
		                      "generation", (json_int_t)x->generation);
		if (x->ns[0])
			json_object_set_new(e, "namespace", json_string(x->ns));
		json_array_append_new(arr, e);
	}
	json_object_set_new(k, "objects", arr);
	if (kr->target_name[0]) {
		json_t *w = json_pack("{s:s,s:b}", "name", kr->target_name, "available",
		                      kr->deploy_ok == 1);
		if (kr->deploy_why[0])
			json_object_set_new(w, "waitingFor", json_string(kr->deploy_why));
		json_object_set_new(k, "workload", w);
	}
	if (kr->w_route) {
		json_t *w = json_pack("{s:b}", "accepted", kr->route_ok == 1);
		if (kr->route_why[0])
			json_object_set_new(w, "waitingFor", json_string(kr->route_why));
		json_object_set_new(k, "route", w);
	}
	json_object_set_new(o, "kubernetes", k);
}

static size_t k_zero(router *r)
{
	(void)r;
	return 0;
}

static void k_drain(router *r)
{
	(void)r;
}

static void k_retire(router *r)
{
	kroute *kr = (kroute *)r;
	kr->retired = true;
	memset(&kr->ev, 0, sizeof kr->ev);
	watches_stop(kr);
}

static void k_close(router *r)
{
	kroute *kr = (kroute *)r;
	k_retire(r);
	kr->closed = true;
	if (kr->ops > 0) {
		/* an answer will come (or the client goes, with its last user) */
		kr->next_zombie = zombies;
		zombies = kr;
	} else {
		kr_free(kr);
	}
	client_put();
}

#define K8S_OPS(NAME) {                                                         \
	.name = NAME, .check = k_check, .open = k_open, .apply = k_apply,       \
	.prepare = k_prepare, .finish = k_finish, .cancel = k_cancel,           \
	.status = k_status, .inflight = k_zero, .connections = k_zero,          \
	.drain = k_drain, .retire = k_retire, .close = k_close,                 \
}

const router_ops router_istio = K8S_OPS("istio");
const router_ops router_gatewayapi = K8S_OPS("gatewayapi");
const router_ops router_smi = K8S_OPS("smi");
