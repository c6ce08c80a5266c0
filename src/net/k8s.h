/* k8s.h - a small Kubernetes REST client: what the mesh routers need to
 * write VirtualServices, DestinationRules, HTTPRoutes and TrafficSplits and
 * to watch Deployments and routes, and nothing more. It is asynchronous, on
 * the libuv loop (libcurl's multi interface through httpc), and speaks JSON
 * through jansson.
 *
 * The contract it follows, and that its test API server (tests/k8s/)
 * follows too, is section 2.3 of the mesh README; docs/kubernetes.md says
 * what was tested and that no real cluster ran it.
 *
 * What a caller can rely on:
 * - Every callback is called exactly once per operation that started
 *   (returned 0), on a later turn of the loop, never from inside the call
 *   that started it, and never after k8s_free(). A call that returns -1
 *   started nothing and calls nothing back.
 * - Every answer is bounded: in time (k8s_config.timeout_ms a request; a
 *   watch connection by its timeoutSeconds plus a margin) and in size
 *   (k8s_config.max_body a response or a watch event).
 * - Every error is one line of printable ASCII, git style, naming what was
 *   asked: "cannot update virtualservices.networking.istio.io 'podinfo' in
 *   namespace 'test': conflict (409): ...". What the API says (a Status
 *   object's reason, code, message and causes) is in it, and so is what it
 *   means for canaryd: a 403 names the RBAC rule canaryd needs, a missing
 *   group says which mesh is not installed.
 * - Writes are strict: fieldValidation=Strict is asked on every write, so
 *   that a field the cluster's CRD does not know is an error, not a field
 *   silently dropped (a route that differs from what canaryd meant).
 *   Warning headers the API sends come back with the result.
 * - Bad answers (not JSON, wrong types, truncated, too large, not a Status
 *   where one is due) are errors with a reason, never a crash. */
#ifndef CANARYD_K8S_H
#define CANARYD_K8S_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* ---- configuration ---------------------------------------------------- */

/* Where the API server is and who canaryd is to it. Every string is owned
 * (k8s_config_release frees them). */
typedef struct k8s_config {
	char *server;           /* "https://HOST:PORT" (https only: a token is
	                         * never sent in clear), no trailing '/' */
	char *ca_pem;           /* CA bundle to verify the server (PEM), or NULL
	                         * for the system's CAs */
	char *token;            /* a fixed bearer token, or NULL */
	char *token_file;       /* or a file holding it, re-read every
	                         * token_reload_ms (bound service-account tokens
	                         * rotate) and at once after a 401 */
	char *cert_pem;         /* or a client certificate and its key (PEM) */
	char *key_pem;
	char *namespace;        /* the namespace of a k8s_ref that names none */
	char *source;           /* where this came from, for messages:
	                         * "in-cluster", "kubeconfig '/x' context 'y'" */
	uint64_t token_reload_ms; /* default 60000 */
	uint64_t timeout_ms;    /* one request, connect included; default 30000 */
	size_t max_body;        /* a response or a watch event; default 16 MiB */
} k8s_config;

/* In-cluster configuration: what a pod's service account gives. Every
 * field NULL means the contract's own: host and port from the environment
 * (KUBERNETES_SERVICE_HOST, KUBERNETES_SERVICE_PORT), the files in
 * /var/run/secrets/kubernetes.io/serviceaccount (token, ca.crt, namespace).
 * Tests point <dir> at their own files; nothing else changes the paths. */
typedef struct k8s_incluster {
	const char *host;
	const char *port;
	const char *dir;
} k8s_incluster;

/* Fills <c> (zeroed by the caller) from the pod's service account. The
 * token file must exist and not be empty now (it is read again later); the
 * CA and the namespace are read once. Returns 0, or -1 with <err> ("not
 * running in a cluster: KUBERNETES_SERVICE_HOST is not set", "cannot read
 * '/var/run/.../token': ..."). */
int k8s_config_incluster(k8s_config *c, const k8s_incluster *where, char *err, size_t errlen);

/* Fills <c> (zeroed by the caller) from the kubeconfig file <path>, using
 * <context> or, when NULL, its current-context: the cluster's server and
 * certificate-authority (file, relative to the kubeconfig's folder) or
 * certificate-authority-data; the user's token, tokenFile, or
 * client-certificate(-data) and client-key(-data); the context's namespace
 * (default "default"). Refused with a reason: exec and auth-provider
 * credential plugins, user names and passwords, insecure-skip-tls-verify,
 * proxies, servers that are not https. Returns 0, or -1 with <err> naming
 * the file and what is wrong. */
int k8s_config_kubeconfig(k8s_config *c, const char *path, const char *context,
                          char *err, size_t errlen);

/* The same from kubeconfig text <text> (<len> bytes) as read from the file
 * <path> (relative file names are taken from its folder). */
int k8s_config_kubeconfig_text(k8s_config *c, const char *text, size_t len,
                               const char *path, const char *context,
                               char *err, size_t errlen);

/* Frees what <c> holds; <c> is zeroed. */
void k8s_config_release(k8s_config *c);

/* ---- what an operation is about -------------------------------------- */

/* A resource: group ("" for the core group), version, plural resource
 * name, namespace (NULL: the configuration's) and object name (NULL for
 * a collection). Names are checked before anything is sent: DNS-1123 for
 * objects and namespaces, lower-case letters and digits for resources. */
typedef struct k8s_ref {
	const char *group;
	const char *version;
	const char *resource;
	const char *ns;
	const char *name;
} k8s_ref;

/* The outcome of an operation, valid only during the callback. */
typedef struct k8s_result {
	int status;              /* HTTP status of the last answer, 0 if none */
	const char *error;       /* NULL on success, else one line */
	json_t *object;          /* on success: the object (or list, or APIResourceList)
	                          * the API answered; NULL after a DELETE without
	                          * body. Borrowed: json_incref to keep it */
	const char *reason;      /* the Status reason on failure ("Conflict",
	                          * "Forbidden", ...), "" if none */
	const char *warnings;    /* Warning headers' texts, "; "-joined, or NULL */
	int attempts;            /* requests made (k8s_upsert retries) */
	int written;             /* k8s_upsert: 0 when nothing differed */
} k8s_result;

typedef void (*k8s_done_fn)(void *arg, const k8s_result *res);

typedef struct k8s k8s;

/* A client for <cfg> (copied) on <loop>. Returns NULL with <err> when
 * <cfg> is incomplete or libcurl cannot be loaded. */
k8s *k8s_new(uv_loop_t *loop, const k8s_config *cfg, char *err, size_t errlen);

/* Ends every operation and watch (their callbacks are not called) and frees
 * <k> once its handles are closed. May be called from a callback of <k>.
 * k8s_free(NULL) does nothing. */
void k8s_free(k8s *k);

/* ---- operations ------------------------------------------------------- */
/* Each returns 0 (the callback will be called) or -1 with <err> (a bad
 * name, a missing object name, too many requests in flight: 64). */

/* GET the object <ref>, or the list of the collection <ref> (name NULL)
 * with an optional <label_selector>. */
int k8s_get(k8s *k, const k8s_ref *ref, const char *label_selector,
            k8s_done_fn done, void *arg, char *err, size_t errlen);

/* POST <obj> to the collection of <ref>; <ref>'s name, when set, must be
 * the object's metadata.name. 201 on success; 409 AlreadyExists. */
int k8s_create(k8s *k, const k8s_ref *ref, const json_t *obj,
               k8s_done_fn done, void *arg, char *err, size_t errlen);

/* PUT <obj> to <ref>. <obj> must carry metadata.resourceVersion (custom
 * resources refuse an unconditional update): a stale one is a 409. With
 * <subresource> "status", writes only the status. */
int k8s_update(k8s *k, const k8s_ref *ref, const json_t *obj, const char *subresource,
               k8s_done_fn done, void *arg, char *err, size_t errlen);

/* Server-side apply of <obj> (PATCH application/apply-patch+yaml, JSON
 * being YAML) as field manager "canaryd", with force: canaryd takes the
 * fields it sets from any other manager. Creates the object if absent. */
int k8s_apply(k8s *k, const k8s_ref *ref, const json_t *obj,
              k8s_done_fn done, void *arg, char *err, size_t errlen);

/* PATCH <ref> with an RFC 7386 merge patch (lists are replaced whole). */
int k8s_merge_patch(k8s *k, const k8s_ref *ref, const json_t *patch,
                    k8s_done_fn done, void *arg, char *err, size_t errlen);

/* PATCH <ref> with an RFC 6902 JSON patch: an array of operations; "test"
 * operations make it optimistic (a failed test is a 422). */
int k8s_json_patch(k8s *k, const k8s_ref *ref, const json_t *ops,
                   k8s_done_fn done, void *arg, char *err, size_t errlen);

/* DELETE <ref>. A 404 is an error (reason "NotFound"): the caller decides. */
int k8s_delete(k8s *k, const k8s_ref *ref,
               k8s_done_fn done, void *arg, char *err, size_t errlen);

/* Decides what to write, given the object <live> as it is (NULL when it
 * does not exist). Returns 1 with *<out> (a new reference: the whole
 * object to write), 0 when nothing needs writing, -1 with <err> to give
 * up (the error is reported through the done callback). */
typedef int (*k8s_mutate_fn)(void *arg, const json_t *live, json_t **out,
                             char *err, size_t errlen);

/* Flagger's write, made safe against concurrent writers: GET <ref>; on 404
 * create what <mutate> returns; else PUT it with the fetched
 * metadata.resourceVersion (set here, whatever <mutate> wrote). A 409 (the
 * object changed between the GET and the PUT, or someone created it first)
 * starts again from the GET, with a fresh <live>: at most 5 attempts in
 * all, then the 409 is the error. <done>'s result has the object written
 * (or <live> when <mutate> said 0), <attempts> and <written>. */
int k8s_upsert(k8s *k, const k8s_ref *ref, k8s_mutate_fn mutate, void *mutate_arg,
               k8s_done_fn done, void *arg, char *err, size_t errlen);

/* Asks the API whether it serves <group>/<version> and, if <resource> is
 * not NULL, that resource (GET /apis/GROUP/VERSION). Success: res->object
 * is the APIResourceList. A 404 or a missing resource is an error that
 * says which mesh is not installed: "Istio is not installed (no
 * networking.istio.io/v1 in the API)". */
int k8s_discover(k8s *k, const char *group, const char *version, const char *resource,
                 k8s_done_fn done, void *arg, char *err, size_t errlen);

/* ---- watch ------------------------------------------------------------ */

typedef enum {
	K8S_EV_SYNC = 0,   /* a (re)list: object is the whole List; replace
	                    * what you know with its items */
	K8S_EV_ADDED,
	K8S_EV_MODIFIED,
	K8S_EV_DELETED,
	K8S_EV_BOOKMARK,   /* only the resourceVersion moved (object has just
	                    * kind, apiVersion and metadata.resourceVersion) */
	K8S_EV_ERROR,      /* the watch failed and is being restarted: error
	                    * says why; object is NULL */
} k8s_event_type;

/* One event, valid only during the callback. */
typedef struct k8s_event {
	k8s_event_type type;
	json_t *object;            /* borrowed */
	const char *error;         /* K8S_EV_ERROR only */
	const char *resource_version; /* where the watch now stands */
} k8s_event;

typedef void (*k8s_watch_fn)(void *arg, const k8s_event *ev);

typedef struct k8s_watch k8s_watch;

/* Watch options; zero means the default. */
typedef struct k8s_watch_opts {
	unsigned timeout_s;        /* per watch connection (timeoutSeconds, the
	                            * server ends it then; canaryd gives up 15 s
	                            * later): default 300 */
	uint64_t backoff_min_ms;   /* after a failure: default 200, doubling */
	uint64_t backoff_max_ms;   /* up to: default 30000 */
} k8s_watch_opts;

/* Watches the collection <ref> (one object when <ref> has a name, through
 * fieldSelector=metadata.name=NAME): first a list (K8S_EV_SYNC), then the
 * events from the list's resourceVersion, with bookmarks. When a
 * connection ends it resumes from the last resourceVersion seen; when the
 * API says that version is too old (410 Gone, as an ERROR event or as the
 * answer), it lists again (a new K8S_EV_SYNC) and watches from there. A
 * failure (refused, reset, garbage, a truncated event, an HTTP error) is
 * reported as K8S_EV_ERROR and retried after a backoff. It runs until
 * k8s_watch_stop() or k8s_free(). Returns NULL with <err> on bad names or
 * too many watches (32). */
k8s_watch *k8s_watch_start(k8s *k, const k8s_ref *ref, const k8s_watch_opts *opts,
                           k8s_watch_fn fn, void *arg, char *err, size_t errlen);

/* Stops <w>: no callback after this returns (also when called from <w>'s
 * own callback). */
void k8s_watch_stop(k8s_watch *w);

/* ---- pure helpers (k8s_parse.c: no I/O, fuzzed) ----------------------- */

/* A Status object, as the API sends for every failure. */
typedef struct k8s_status {
	int code;                  /* its "code", 0 if none */
	char reason[64];           /* "NotFound", "Conflict", ... or "" */
	char message[1024];        /* one line, printable ASCII */
	char causes[1024];         /* details.causes as "field: message
	                            * (reason); ...", one line, or "" */
	char details_name[256];    /* details.name, "" if none */
	char details_kind[128];    /* details.kind, "" if none */
} k8s_status;

/* Reads <body> as a Status object (kind "Status", or an object with a
 * numeric "code" and a "status" of "Failure"). Returns 0, or -1 when it is
 * not one (<st> then holds nothing). */
int k8s_parse_status(const char *body, size_t len, k8s_status *st);
int k8s_status_from_json(const json_t *j, k8s_status *st);

/* Parses one line of a watch stream (without its '\n') into <type> and
 * *<object> (a new reference). An ERROR event's object must be a Status;
 * any other must be an object with metadata.resourceVersion, a string.
 * Returns 0, or -1 with <err> ("event is not JSON: ...", "event has no
 * type", ...). */
int k8s_parse_event(const char *line, size_t len, k8s_event_type *type, json_t **object,
                    char *err, size_t errlen);

/* Deployment readiness, as kubectl rollout status and Flagger judge it
 * (status.observedGeneration, the Progressing and Available conditions,
 * updated and available replicas). Returns 1 ready, 0 not yet (<why> says
 * what it waits for), -1 failed for good (its progress deadline exceeded;
 * <why> says so). Wrong types read as "not yet", with <why> naming the
 * field. */
int k8s_deployment_ready(const json_t *deploy, char *why, size_t whylen);

/* HTTPRoute readiness: every spec.parentRefs entry has a status.parents
 * entry for it (compared with the API's defaults: group
 * gateway.networking.k8s.io, kind Gateway, the route's namespace) whose
 * Accepted condition is True with observedGeneration >= the route's
 * metadata.generation. Stricter than Flagger, which passes a parent that
 * has not reported yet: until the gateway has read the route, traffic does
 * not follow it. Returns 1, 0 with <why>, or -1 when a parent rejected the
 * current generation (Accepted False, <why> has its reason and message). */
int k8s_httproute_ready(const json_t *route, char *why, size_t whylen);

/* The path of <ref> (with <subresource>, may be NULL) below the server:
 * "/apis/GROUP/VERSION/namespaces/NS/RESOURCE[/NAME[/SUB]]", or "/api/v1/..."
 * for the core group. <ns> must be set. Returns 0, or -1 with <err> naming
 * the bad part. */
int k8s_path(const k8s_ref *ref, const char *ns, const char *subresource,
             char *out, size_t outlen, char *err, size_t errlen);

/* The human name of the mesh or API an API group belongs to, for "X is not
 * installed": "Istio", "Gateway API", "SMI", or <group> itself. */
const char *k8s_group_product(const char *group);

/* Whether the live object's part <live> already holds everything the
 * desired part <desired> says (NULL desires nothing): objects key by key (keys only in <live>,
 * such as the API's defaults, are ignored), arrays of the same length item
 * by item, scalars equal (an integer and a real of the same value are
 * equal). Returns 1 or 0. So a writer that compares before writing does
 * not rewrite an object only because the API filled in defaults (mesh
 * README 2.3: what comes back differs from what was sent). */
int k8s_json_subset(const json_t *desired, const json_t *live);

/* "virtualservices.networking.istio.io 'podinfo' in namespace 'test'":
 * what <ref> names, for messages (one line, cut to <outlen>). */
void k8s_describe(const k8s_ref *ref, const char *ns, char *out, size_t outlen);

/* Builds the error line for a failed request: <verb> (RBAC verb: get,
 * list, watch, create, update, patch, delete), what <ref> names in <ns>,
 * the HTTP <status>, and the answer <body> (a Status, or anything else).
 * A 403 adds the RBAC rule canaryd needs; a 404 without details (the API
 * does not serve the path) says which mesh is not installed. */
void k8s_error_text(const char *verb, const k8s_ref *ref, const char *ns, int status,
                    const char *body, size_t len, char *out, size_t outlen);

/* Appends the Warning header value <v> ('299 - "text"', RFC 7234) to <out>
 * as its text, "; "-separated, up to <outlen>. Returns 1 if it was a
 * warning, 0 if not. */
int k8s_warning_text(const char *v, char *out, size_t outlen);

#endif
