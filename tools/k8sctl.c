/* k8sctl.c - canaryd-k8sctl: drives canaryd's Kubernetes client (src/k8s.h)
 * from the command line, so that the end-to-end tests (tests/e2e/
 * test_k8s.py) can hold it to a test API server, and an operator can check
 * what canaryd would see with a kubeconfig or inside a pod.
 *
 * Every result is one JSON line on stdout; the exit status is 0 when every
 * operation succeeded, 1 when one failed, 2 on a usage error. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "k8s.h"
#include "util.h"

static const char usage[] =
	"usage: canaryd-k8sctl (--kubeconfig FILE [--context NAME] | --in-cluster [--sa-dir DIR])\n"
	"                      [--timeout-ms N] [--token-reload-ms N] [--max-body N]\n"
	"                      [--repeat N --every MS] COMMAND ...\n"
	"  get GROUP/VERSION RESOURCE [NAME] [-n NS] [-l SELECTOR]\n"
	"  create|update|apply|merge-patch|json-patch GROUP/VERSION RESOURCE NAME -f FILE\n"
	"         [-n NS] [--status]    (FILE '-' is standard input; --status: update's subresource)\n"
	"  upsert GROUP/VERSION RESOURCE NAME -f FILE [-n NS]\n"
	"         GET, then create, or PUT with the fetched resourceVersion when the file's spec,\n"
	"         labels or annotations are not already in the live object; 409s retried\n"
	"  delete GROUP/VERSION RESOURCE NAME [-n NS]\n"
	"  discover GROUP/VERSION [RESOURCE]\n"
	"  watch GROUP/VERSION RESOURCE [NAME] [-n NS] [--events N] [--seconds S]\n"
	"        [--watch-timeout S] [--backoff-ms MS]\n"
	"  ready deployment|httproute NAME [-n NS] [--seconds S]\n"
	"        (0 s: one GET; else waits on a watch until ready or failed)\n"
	"GROUP/VERSION is 'v1' for the core group. One JSON line per result; exit 0, 1 (a\n"
	"failure) or 2 (usage).\n";

static struct {
	uv_loop_t *loop;
	k8s *k;
	k8s_ref ref;
	char group[256], version[64];
	const char *cmd;
	const char *file;
	const char *selector;
	int status_sub;
	json_t *obj;
	int repeat, every_ms, done_count;
	uv_timer_t timer;         /* --repeat, --seconds */
	int failed;
	/* watch and ready */
	k8s_watch *watch;
	long events_left;
	unsigned seconds;
	k8s_watch_opts wopts;
	int ready_kind;           /* 1 deployment, 2 httproute */
	int finished;
} S;

static void finish(void)
{
	if (S.finished)
		return;
	S.finished = 1;
	if (S.watch)
		k8s_watch_stop(S.watch);
	S.watch = NULL;
	uv_timer_stop(&S.timer);
	uv_close((uv_handle_t *)&S.timer, NULL);
	k8s_free(S.k);
	S.k = NULL;
}

static void print_json(json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
	printf("%s\n", s ? s : "{}");
	fflush(stdout);
	free(s);
	json_decref(j);
}

static void print_result(const k8s_result *res)
{
	json_t *j = json_object();
	json_object_set_new(j, "ok", json_boolean(!res->error));
	json_object_set_new(j, "status", json_integer(res->status));
	json_object_set_new(j, "attempts", json_integer(res->attempts));
	json_object_set_new(j, "written", json_integer(res->written));
	if (res->error)
		json_object_set_new(j, "error", json_string(res->error));
	if (res->reason && res->reason[0])
		json_object_set_new(j, "reason", json_string(res->reason));
	if (res->warnings)
		json_object_set_new(j, "warnings", json_string(res->warnings));
	if (res->object)
		json_object_set(j, "object", res->object);
	print_json(j);
	if (res->error)
		S.failed = 1;
}

static int start_op(void);

static void on_repeat(uv_timer_t *t)
{
	if (start_op() != 0)
		finish();
}

static void op_done(void *arg, const k8s_result *res)
{
	print_result(res);
	if (++S.done_count < S.repeat)
		uv_timer_start(&S.timer, on_repeat, (uint64_t)S.every_ms, 0);
	else
		finish();
}

/* upsert: write the file's object unless the live one already holds its
 * spec, labels and annotations */
static int mutate(void *arg, const json_t *live, json_t **out, char *err, size_t errlen)
{
	if (live) {
		const json_t *dm = json_object_get(S.obj, "metadata");
		const json_t *lm = json_object_get(live, "metadata");
		if (k8s_json_subset(json_object_get(S.obj, "spec"), json_object_get(live, "spec")) &&
		    k8s_json_subset(json_object_get(dm, "labels"), json_object_get(lm, "labels")) &&
		    k8s_json_subset(json_object_get(dm, "annotations"),
		                    json_object_get(lm, "annotations")))
			return 0;
	}
	*out = json_deep_copy(S.obj);
	return 1;
}

static void ready_check(const json_t *obj)
{
	char why[1024];
	int r = S.ready_kind == 1 ? k8s_deployment_ready(obj, why, sizeof why)
	                          : k8s_httproute_ready(obj, why, sizeof why);
	if (r == 0 && S.seconds && !S.finished)
		return; /* keep waiting */
	json_t *j = json_object();
	json_object_set_new(j, "ready", json_integer(r));
	json_object_set_new(j, "why", json_string(why));
	print_json(j);
	if (r != 1)
		S.failed = 1;
	finish();
}

static void ready_got(void *arg, const k8s_result *res)
{
	if (res->error) {
		print_result(res);
		finish();
		return;
	}
	ready_check(res->object);
}

static const char *ev_names[] = { "SYNC", "ADDED", "MODIFIED", "DELETED", "BOOKMARK", "ERROR" };

static void on_event(void *arg, const k8s_event *ev)
{
	if (S.ready_kind) {
		if (ev->type == K8S_EV_SYNC) {
			const json_t *items = json_object_get(ev->object, "items");
			if (json_array_size(items) == 1)
				ready_check(json_array_get(items, 0));
		} else if (ev->type == K8S_EV_ADDED || ev->type == K8S_EV_MODIFIED) {
			ready_check(ev->object);
		}
		return;
	}
	json_t *j = json_object();
	json_object_set_new(j, "event", json_string(ev_names[ev->type]));
	json_object_set_new(j, "rv", json_string(ev->resource_version));
	if (ev->type == K8S_EV_ERROR)
		json_object_set_new(j, "error", json_string(ev->error));
	if (ev->type == K8S_EV_SYNC) {
		json_t *names = json_array();
		size_t i;
		json_t *it;
		json_array_foreach(json_object_get(ev->object, "items"), i, it)
			json_array_append(names, json_object_get(json_object_get(it, "metadata"), "name"));
		json_object_set_new(j, "names", names);
	} else if (ev->object) {
		const json_t *m = json_object_get(ev->object, "metadata");
		if (json_object_get(m, "name"))
			json_object_set(j, "name", json_object_get(m, "name"));
		if (ev->type != K8S_EV_BOOKMARK)
			json_object_set(j, "object", ev->object);
	}
	print_json(j);
	if (S.events_left > 0 && --S.events_left == 0)
		finish();
}

static void on_deadline(uv_timer_t *t)
{
	if (S.ready_kind) {
		json_t *j = json_object();
		json_object_set_new(j, "ready", json_integer(0));
		json_object_set_new(j, "why", json_string("not ready within the time given"));
		print_json(j);
		S.failed = 1;
	}
	finish();
}

static int start_op(void)
{
	char err[512] = "";
	int rc;
	const char *c = S.cmd;
	if (!strcmp(c, "get"))
		rc = k8s_get(S.k, &S.ref, S.selector, op_done, NULL, err, sizeof err);
	else if (!strcmp(c, "create"))
		rc = k8s_create(S.k, &S.ref, S.obj, op_done, NULL, err, sizeof err);
	else if (!strcmp(c, "update"))
		rc = k8s_update(S.k, &S.ref, S.obj, S.status_sub ? "status" : NULL, op_done, NULL, err,
		                sizeof err);
	else if (!strcmp(c, "apply"))
		rc = k8s_apply(S.k, &S.ref, S.obj, op_done, NULL, err, sizeof err);
	else if (!strcmp(c, "merge-patch"))
		rc = k8s_merge_patch(S.k, &S.ref, S.obj, op_done, NULL, err, sizeof err);
	else if (!strcmp(c, "json-patch"))
		rc = k8s_json_patch(S.k, &S.ref, S.obj, op_done, NULL, err, sizeof err);
	else if (!strcmp(c, "delete"))
		rc = k8s_delete(S.k, &S.ref, op_done, NULL, err, sizeof err);
	else if (!strcmp(c, "upsert"))
		rc = k8s_upsert(S.k, &S.ref, mutate, NULL, op_done, NULL, err, sizeof err);
	else if (!strcmp(c, "discover"))
		rc = k8s_discover(S.k, S.group, S.version, S.ref.resource, op_done, NULL, err,
		                  sizeof err);
	else if (!strcmp(c, "watch") || !strcmp(c, "ready")) {
		if (!strcmp(c, "ready") && !S.seconds) {
			rc = k8s_get(S.k, &S.ref, NULL, ready_got, NULL, err, sizeof err);
		} else {
			S.watch = k8s_watch_start(S.k, &S.ref, &S.wopts, on_event, NULL, err, sizeof err);
			rc = S.watch ? 0 : -1;
			if (S.watch && S.seconds)
				uv_timer_start(&S.timer, on_deadline, (uint64_t)S.seconds * 1000, 0);
		}
	} else {
		fprintf(stderr, "canaryd-k8sctl: unknown command '%s'\n%s", c, usage);
		exit(2);
	}
	if (rc != 0) {
		json_t *j = json_object();
		json_object_set_new(j, "ok", json_false());
		json_object_set_new(j, "error", json_string(err));
		print_json(j);
		S.failed = 1;
	}
	return rc;
}

static json_t *read_obj(const char *file)
{
	json_error_t je;
	json_t *j = strcmp(file, "-") == 0 ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &je)
	                                   : json_load_file(file, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		fprintf(stderr, "canaryd-k8sctl: '%s': %s\n", file, je.text);
		exit(2);
	}
	return j;
}

int main(int argc, char **argv)
{
	const char *kubeconfig = NULL, *context = NULL, *sa_dir = NULL, *ns = NULL;
	int incluster = 0;
	long timeout_ms = 0, reload_ms = 0, max_body = 0;
	S.repeat = 1;
	enum { O_KC = 256, O_CTX, O_IN, O_SA, O_TMO, O_RELOAD, O_MAXB, O_REP, O_EVERY, O_STATUS,
	       O_EVENTS, O_SECONDS, O_WTMO, O_BACKOFF };
	static const struct option opts[] = {
		{ "kubeconfig", required_argument, 0, O_KC },
		{ "context", required_argument, 0, O_CTX },
		{ "in-cluster", no_argument, 0, O_IN },
		{ "sa-dir", required_argument, 0, O_SA },
		{ "timeout-ms", required_argument, 0, O_TMO },
		{ "token-reload-ms", required_argument, 0, O_RELOAD },
		{ "max-body", required_argument, 0, O_MAXB },
		{ "repeat", required_argument, 0, O_REP },
		{ "every", required_argument, 0, O_EVERY },
		{ "status", no_argument, 0, O_STATUS },
		{ "events", required_argument, 0, O_EVENTS },
		{ "seconds", required_argument, 0, O_SECONDS },
		{ "watch-timeout", required_argument, 0, O_WTMO },
		{ "backoff-ms", required_argument, 0, O_BACKOFF },
		{ "help", no_argument, 0, 'h' },
		{ 0, 0, 0, 0 },
	};
	int o;
	while ((o = getopt_long(argc, argv, "+n:l:f:h", opts, NULL)) != -1) {
		switch (o) {
		case O_KC: kubeconfig = optarg; break;
		case O_CTX: context = optarg; break;
		case O_IN: incluster = 1; break;
		case O_SA: sa_dir = optarg; break;
		case O_TMO: timeout_ms = atol(optarg); break;
		case O_RELOAD: reload_ms = atol(optarg); break;
		case O_MAXB: max_body = atol(optarg); break;
		case O_REP: S.repeat = atoi(optarg); break;
		case O_EVERY: S.every_ms = atoi(optarg); break;
		case O_STATUS: S.status_sub = 1; break;
		case O_EVENTS: S.events_left = atol(optarg); break;
		case O_SECONDS: S.seconds = (unsigned)atoi(optarg); break;
		case O_WTMO: S.wopts.timeout_s = (unsigned)atoi(optarg); break;
		case O_BACKOFF: S.wopts.backoff_min_ms = (uint64_t)atol(optarg); break;
		case 'n': ns = optarg; break;
		case 'l': S.selector = optarg; break;
		case 'f': S.file = optarg; break;
		case 'h': fputs(usage, stdout); return 0;
		default: fputs(usage, stderr); return 2;
		}
	}
	/* options may also follow the command's words */
	char *words[4];
	int nw = 0;
	while (optind < argc) {
		if (argv[optind][0] == '-' && argv[optind][1]) {
			if ((o = getopt_long(argc, argv, "+n:l:f:h", opts, NULL)) == -1)
				break;
			switch (o) {
			case 'n': ns = optarg; break;
			case 'l': S.selector = optarg; break;
			case 'f': S.file = optarg; break;
			case O_STATUS: S.status_sub = 1; break;
			case O_EVENTS: S.events_left = atol(optarg); break;
			case O_SECONDS: S.seconds = (unsigned)atoi(optarg); break;
			case O_WTMO: S.wopts.timeout_s = (unsigned)atoi(optarg); break;
			case O_BACKOFF: S.wopts.backoff_min_ms = (uint64_t)atol(optarg); break;
			default: fputs(usage, stderr); return 2;
			}
			continue;
		}
		if (nw == 4) {
			fputs(usage, stderr);
			return 2;
		}
		words[nw++] = argv[optind++];
	}
	if (nw < 2 || (!kubeconfig == !incluster) || S.repeat < 1) {
		fputs(usage, stderr);
		return 2;
	}
	S.cmd = words[0];
	const char *gv = words[1];
	const char *slash = strchr(gv, '/');
	if (slash) {
		snprintf(S.group, sizeof S.group, "%.*s", (int)(slash - gv), gv);
		snprintf(S.version, sizeof S.version, "%s", slash + 1);
	} else {
		snprintf(S.version, sizeof S.version, "%s", gv);
	}
	S.ref.group = S.group;
	S.ref.version = S.version;
	S.ref.resource = nw > 2 ? words[2] : NULL;
	S.ref.name = nw > 3 ? words[3] : NULL;
	S.ref.ns = ns;
	if (!strcmp(S.cmd, "ready")) {
		/* ready KIND NAME */
		if (nw != 3 || (strcmp(words[1], "deployment") && strcmp(words[1], "httproute"))) {
			fputs(usage, stderr);
			return 2;
		}
		S.ready_kind = !strcmp(words[1], "deployment") ? 1 : 2;
		static const k8s_ref dep = { "apps", "v1", "deployments", NULL, NULL };
		static const k8s_ref hr = { "gateway.networking.k8s.io", "v1", "httproutes", NULL, NULL };
		S.ref = S.ready_kind == 1 ? dep : hr;
		S.ref.name = words[2];
		S.ref.ns = ns;
	}
	int needs_file = !strcmp(S.cmd, "create") || !strcmp(S.cmd, "update") ||
	                 !strcmp(S.cmd, "apply") || !strcmp(S.cmd, "merge-patch") ||
	                 !strcmp(S.cmd, "json-patch") || !strcmp(S.cmd, "upsert");
	if (needs_file) {
		if (!S.file) {
			fprintf(stderr, "canaryd-k8sctl: %s needs -f FILE\n", S.cmd);
			return 2;
		}
		S.obj = read_obj(S.file);
	}

	char err[1024];
	k8s_config cfg;
	int rc;
	if (incluster) {
		k8s_incluster where = { NULL, NULL, sa_dir };
		rc = k8s_config_incluster(&cfg, &where, err, sizeof err);
	} else {
		rc = k8s_config_kubeconfig(&cfg, kubeconfig, context, err, sizeof err);
	}
	if (rc != 0) {
		json_t *j = json_object();
		json_object_set_new(j, "ok", json_false());
		json_object_set_new(j, "error", json_string(err));
		print_json(j);
		return 1;
	}
	cfg.timeout_ms = (uint64_t)timeout_ms;
	cfg.token_reload_ms = (uint64_t)reload_ms;
	cfg.max_body = (size_t)max_body;
	S.loop = uv_default_loop();
	S.k = k8s_new(S.loop, &cfg, err, sizeof err);
	k8s_config_release(&cfg);
	if (!S.k) {
		fprintf(stderr, "canaryd-k8sctl: %s\n", err);
		return 1;
	}
	uv_timer_init(S.loop, &S.timer);
	if (start_op() != 0)
		finish();
	uv_run(S.loop, UV_RUN_DEFAULT);
	uv_loop_close(S.loop);
	json_decref(S.obj);
	return S.failed ? 1 : 0;
}
