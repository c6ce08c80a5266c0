/* canaryctl.c - the command-line client of canaryd's admin API
 * (../shared/SPEC.md "Programs" and "Admin API").
 *
 * Commands are rows of a table (name, usage, help, handler), as HAProxy's
 * CLI keywords are: `canaryctl help` prints the table, and a handler gets
 * the arguments after its name. Every handler returns the process exit code:
 * 0 success, 1 the operation (or the rollout) failed, 2 bad usage or bad
 * input, 3 timeout. Only main() exits. */
#include <ctype.h>
#include <math.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>
#include <jansson.h>

#include "config.h"
#include "ctl_cmd.h"
#include "hooks.h"
#include "log.h"
#include "provider.h"
#include "render.h"
#include "simulate.h"
#include "util.h"

#define DEFAULT_SERVER "http://127.0.0.1:9901"
#define REQUEST_TIMEOUT_MS 10000
#define WAIT_POLL_MS 200
#define WAIT_DEFAULT_TIMEOUT "10m"

/* The answer to one API call. */
typedef struct reply {
	long status;    /* HTTP status */
	buf body;       /* response body, caller releases */
} reply;

static const command commands[];

/* ---- output helpers ---------------------------------------------------- */

static void print_usage(FILE *f)
{
	fputs("usage: canaryctl [--server URL] [--token-file F] COMMAND [ARGS]\n"
	      "\n"
	      "  --server URL      admin API of canaryd (default $CANARYD_SERVER, else " DEFAULT_SERVER ")\n"
	      "  --token-file F    send the token in F as 'Authorization: Bearer TOKEN'\n"
	      "\n"
	      "commands:\n", f);
	for (const command *c = commands; c->name; c++) {
		char left[128];
		snprintf(left, sizeof left, "%s %s", c->name, c->usage);
		if (strlen(left) <= 50)
			fprintf(f, "  %-50s %s\n", left, c->help);
		else
			fprintf(f, "  %s\n  %-50s %s\n", left, "", c->help);
	}
	fputs("\nexit codes: 0 success, 1 the operation or the rollout failed, "
	      "2 bad usage or input, 3 timeout\n", f);
}

/* Reports a usage error of <cmd> (NULL: of canaryctl itself) and returns 2. */
int usage_error(const command *cmd, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("canaryctl: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	if (cmd)
		fprintf(stderr, "usage: canaryctl %s %s\n", cmd->name, cmd->usage);
	else
		print_usage(stderr);
	return EXIT_USAGE;
}

void print_json(const json_t *j)
{
	char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY | JSON_REAL_PRECISION(12));
	if (s) {
		fputs(s, stdout);
		fputc('\n', stdout);
		free(s);
	}
}

/* A string member of <o>, or <dflt> when absent, null or not a string. */
static const char *jstr(const json_t *o, const char *key, const char *dflt)
{
	const char *s = json_string_value(json_object_get(o, key));
	return s ? s : dflt;
}

static long long jint(const json_t *o, const char *key)
{
	const json_t *v = json_object_get(o, key);
	if (json_is_integer(v))
		return json_integer_value(v);
	if (json_is_real(v))
		return (long long)json_real_value(v);
	return 0;
}

/* Escapes, in place, every string value in <j> (at any depth) as
 * log_escape() does, before it is printed as text: what the server sends
 * (a revision, an alert's name, an upstream's error) must not move the
 * cursor, clear the screen or start a line that looks like another event.
 * Not for -o json, whose encoder escapes them itself. */
static void escape_strings(json_t *j)
{
	if (json_is_string(j)) {
		const char *s = json_string_value(j);
		size_t len = json_string_length(j);
		if (log_unsafe_at(s, len, NULL) == len)
			return;
		buf b = BUF_INIT;
		log_escape(&b, s, len);
		json_string_set(j, b.p);
		buf_release(&b);
	} else if (json_is_array(j)) {
		size_t i;
		json_t *v;
		json_array_foreach(j, i, v)
			escape_strings(v);
	} else if (json_is_object(j)) {
		const char *k;
		json_t *v;
		json_object_foreach(j, k, v)
			escape_strings(v);
	}
}

/* ---- HTTP -------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	buf_append((buf *)ud, p, size * n);
	return size * n;
}

/* Calls METHOD <method> on <path> (starting with '/') with the JSON <body>
 * (NULL: none), waiting at most <timeout_ms>. Fills <r> (the caller releases
 * r->body) and returns 0 whenever the server answered, whatever the status;
 * returns -1 with <err> filled when it could not be reached. */
static int api_call(client *cl, const char *method, const char *path,
                    const json_t *body, long timeout_ms, reply *r,
                    char *err, size_t errlen)
{
	char url[2048];
	snprintf(url, sizeof url, "%s%s", cl->server, path);
	char *payload = body ? json_dumps(body, JSON_COMPACT) : NULL;
	struct curl_slist *hdrs = NULL;
	char auth[1024];
	if (cl->token) {
		snprintf(auth, sizeof auth, "Authorization: Bearer %s", cl->token);
		hdrs = curl_slist_append(hdrs, auth);
	}
	if (payload)
		hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
	hdrs = curl_slist_append(hdrs, "Accept: application/json");
	/* no 100-continue round trip for small bodies */
	hdrs = curl_slist_append(hdrs, "Expect:");

	CURL *c = cl->curl;
	curl_easy_reset(c);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms > 0 ? timeout_ms : 1L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "canaryctl");
	/* an http_proxy in the environment must not capture a local daemon */
	curl_easy_setopt(c, CURLOPT_NOPROXY, "127.0.0.1,localhost,::1");
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &r->body);
	if (strcmp(method, "POST") == 0) {
		curl_easy_setopt(c, CURLOPT_POST, 1L);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, payload ? payload : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)(payload ? strlen(payload) : 0));
	}
	r->status = 0;
	CURLcode rc = curl_easy_perform(c);
	curl_slist_free_all(hdrs);
	free(payload);
	if (rc != CURLE_OK) {
		if (rc == CURLE_OPERATION_TIMEDOUT)
			snprintf(err, errlen, "no answer from '%s' within %ld ms", cl->server, timeout_ms);
		else
			snprintf(err, errlen, "cannot connect to '%s': %s", cl->server, curl_easy_strerror(rc));
		return -1;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	return 0;
}

/* The exit code for an API error status: bad input is 2, the rest 1. */
static int status_exit(long status)
{
	return status == 400 || status == 422 ? EXIT_USAGE : EXIT_FAILED;
}

/* Prints the API's error for a non-2xx reply <r> and returns the exit code. */
static int report_api_error(const client *cl, const reply *r)
{
	json_t *j = r->body.len ? json_loadb(r->body.p, r->body.len, 0, NULL) : NULL;
	escape_strings(j);
	const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
	if (msg)
		fprintf(stderr, "canaryctl: %s\n", msg);
	else
		fprintf(stderr, "canaryctl: '%s' answered HTTP %ld\n", cl->server, r->status);
	json_decref(j);
	return status_exit(r->status);
}

/* Makes a call and decodes its JSON answer into *out (caller decrefs).
 * Returns 0, or the exit code after printing why it failed. */
static int api_json(client *cl, const char *method, const char *path,
                    const json_t *body, json_t **out)
{
	reply r = { 0, BUF_INIT };
	char err[512];
	*out = NULL;
	if (api_call(cl, method, path, body, REQUEST_TIMEOUT_MS, &r, err, sizeof err) < 0) {
		fprintf(stderr, "canaryctl: %s\n", err);
		buf_release(&r.body);
		return EXIT_FAILED;
	}
	int rc = 0;
	if (r.status < 200 || r.status > 299) {
		rc = report_api_error(cl, &r);
	} else {
		json_error_t jerr;
		*out = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, &jerr);
		if (!*out) {
			fprintf(stderr, "canaryctl: '%s' answered with invalid JSON: %s\n",
			        cl->server, jerr.text);
			rc = EXIT_FAILED;
		}
	}
	buf_release(&r.body);
	return rc;
}

/* "/api/v1/canaries/NAME[/SUFFIX]" with NAME escaped. */
static void canary_path(client *cl, const char *name, const char *suffix,
                        char *out, size_t outlen)
{
	buf esc = BUF_INIT;
	buf_puts(&esc, "");
	buf_url_escape(&esc, name);
	snprintf(out, outlen, "/api/v1/canaries/%s%s%s", esc.p, suffix ? "/" : "",
	         suffix ? suffix : "");
	buf_release(&esc);
}

/* ---- argument parsing -------------------------------------------------- */

/* Splits <argv> into options (per <opts>, NULL-terminated by name) and at
 * most <max_pos> positional arguments into <pos>. Returns the number of
 * positional arguments, or -1 after reporting a usage error. */
int parse_args(const command *cmd, int argc, char **argv,
                      const option *opts, const char **pos, int max_pos)
{
	int n = 0;
	bool only_pos = false;
	for (int i = 0; i < argc; i++) {
		const char *a = argv[i];
		if (!only_pos && strcmp(a, "--") == 0) {
			only_pos = true;
			continue;
		}
		/* "-5" is a (bad) number, not an option */
		if (!only_pos && a[0] == '-' && a[1] && !isdigit((unsigned char)a[1])) {
			const option *o = NULL;
			const char *inl = NULL;
			for (const option *p = opts; p && p->name; p++) {
				const char *names[2] = { p->name, p->alias };
				for (int k = 0; k < 2 && !o; k++) {
					size_t l = names[k] ? strlen(names[k]) : 0;
					if (!l || strncmp(a, names[k], l) != 0)
						continue;
					if (a[l] == '\0') {
						o = p;
					} else if (a[l] == '=' && p->val) {
						o = p;
						inl = a + l + 1;
					}
				}
				if (o)
					break;
			}
			if (!o) {
				usage_error(cmd, "unknown option '%s' for '%s'", a, cmd->name);
				return -1;
			}
			if (o->flag) {
				*o->flag = true;
			} else if (inl) {
				*o->val = inl;
			} else if (i + 1 < argc) {
				*o->val = argv[++i];
			} else {
				usage_error(cmd, "option '%s' needs a value", a);
				return -1;
			}
			continue;
		}
		if (n >= max_pos) {
			usage_error(cmd, "unexpected argument '%s'", a);
			return -1;
		}
		pos[n++] = a;
	}
	return n;
}

/* Checks an "-o" value. Returns 1 for json, 0 for text, -1 after a usage
 * error. */
int output_json(const command *cmd, const char *o)
{
	if (!o || strcmp(o, "text") == 0)
		return 0;
	if (strcmp(o, "json") == 0)
		return 1;
	usage_error(cmd, "output format '%s' is not one of json, text", o);
	return -1;
}

/* ---- rendering --------------------------------------------------------- */

static void format_revisions(const json_t *st, char *out, size_t outlen)
{
	const char *stable = jstr(st, "stableRevision", "-");
	const char *canary = jstr(st, "canaryRevision", NULL);
	/* after a promotion the canary revision is the stable one */
	if (canary && *canary && strcmp(canary, stable) != 0)
		snprintf(out, outlen, "%s->%s", *stable ? stable : "-", canary);
	else
		snprintf(out, outlen, "%s", *stable ? stable : "-");
}

/* Prints the status table of <arr> (objects as the API gives them). */
static void print_status_table(const json_t *arr)
{
	int wname = 4, wrev = 9;
	size_t i;
	json_t *st;
	json_array_foreach(arr, i, st) {
		char rev[256];
		int l = (int)strlen(jstr(st, "name", ""));
		if (l > wname)
			wname = l;
		format_revisions(st, rev, sizeof rev);
		if ((int)strlen(rev) > wrev)
			wrev = (int)strlen(rev);
	}
	printf("%-*s  %-15s  %6s  %6s  %-*s  %s\n", wname, "NAME", "PHASE", "WEIGHT",
	       "FAILED", wrev, "REVISIONS", "MESSAGE");
	json_array_foreach(arr, i, st) {
		char rev[256];
		format_revisions(st, rev, sizeof rev);
		printf("%-*s  %-15s  %6lld  %6lld  %-*s  %s\n", wname, jstr(st, "name", ""),
		       jstr(st, "phase", "-"), jint(st, "canaryWeight"),
		       jint(st, "failedChecks"), wrev, rev, jstr(st, "message", ""));
	}
}

static void print_number(const json_t *v)
{
	if (json_is_integer(v))
		printf("%lld", (long long)json_integer_value(v));
	else if (json_is_real(v))
		printf("%g", json_real_value(v));
}

/* One line per event, and under a check event one line per metric. */
static void print_events(const json_t *arr)
{
	size_t i;
	json_t *ev;
	json_array_foreach(arr, i, ev) {
		printf("%s %s %s weight=%lld actor=%s %s\n", jstr(ev, "time", "-"),
		       jstr(ev, "type", "-"), jstr(ev, "phase", "-"), jint(ev, "weight"),
		       jstr(ev, "actor", "-"), jstr(ev, "message", ""));
		const json_t *ms = json_object_get(ev, "metrics");
		size_t k;
		json_t *m;
		json_array_foreach(ms, k, m) {
			const json_t *v = json_object_get(m, "value");
			printf("    %s=", jstr(m, "name", "?"));
			if (json_is_number(v))
				print_number(v);
			else
				fputs("n/a", stdout);
			fputs(" [", stdout);
			print_number(json_object_get(m, "min"));
			fputs("..", stdout);
			print_number(json_object_get(m, "max"));
			printf("] %s", json_is_true(json_object_get(m, "held")) ? "held"
			               : json_is_true(json_object_get(m, "passed")) ? "pass" : "FAIL");
			const char *reason = jstr(m, "reason", NULL);
			if (reason && *reason)
				printf(" (%s)", reason);
			fputc('\n', stdout);
		}
	}
}

/* ---- commands ---------------------------------------------------------- */

static int cmd_help(client *cl, const command *cmd, int argc, char **argv)
{
	if (argc > 0) {
		for (const command *c = commands; c->name; c++) {
			if (strcmp(c->name, argv[0]) == 0) {
				printf("usage: canaryctl %s %s\n\n  %s\n", c->name, c->usage, c->help);
				return EXIT_OK;
			}
		}
		return usage_error(NULL, "unknown command '%s'", argv[0]);
	}
	print_usage(stdout);
	return EXIT_OK;
}

static int cmd_status(client *cl, const command *cmd, int argc, char **argv)
{
	const char *out = NULL, *pos[1];
	const option opts[] = { { "-o", "--output", &out, NULL }, { NULL, NULL, NULL, NULL } };
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	int as_json = output_json(cmd, out);
	if (as_json < 0)
		return EXIT_USAGE;
	char path[512];
	if (n == 1)
		canary_path(cl, pos[0], NULL, path, sizeof path);
	else
		snprintf(path, sizeof path, "/api/v1/canaries");
	json_t *j;
	int rc = api_json(cl, "GET", path, NULL, &j);
	if (rc)
		return rc;
	if (!as_json)
		escape_strings(j);
	if (as_json) {
		print_json(j);
	} else if (json_is_array(j)) {
		print_status_table(j);
	} else {
		json_t *arr = json_array();
		json_array_append(arr, j);
		print_status_table(arr);
		json_decref(arr);
	}
	json_decref(j);
	return EXIT_OK;
}

/* Posts <body> (stolen; may be NULL) to the <action> of <name> and prints
 * what the canary now is. */
static int post_action(client *cl, const char *name, const char *action,
                       json_t *body, const char *done)
{
	char path[512];
	canary_path(cl, name, action, path, sizeof path);
	json_t *j;
	int rc = api_json(cl, "POST", path, body, &j);
	json_decref(body);
	if (rc)
		return rc;
	escape_strings(j);
	printf("%s: %s (phase %s, canary weight %lld)\n", name, done,
	       jstr(j, "phase", "-"), jint(j, "canaryWeight"));
	json_decref(j);
	return EXIT_OK;
}

/* Parses the single NAME argument of the plain actions. */
static int name_only(const command *cmd, int argc, char **argv, const char **name)
{
	const char *pos[1];
	int n = parse_args(cmd, argc, argv, NULL, pos, 1);
	if (n < 0)
		return -1;
	if (n == 0) {
		usage_error(cmd, "'%s' needs the name of a canary", cmd->name);
		return -1;
	}
	*name = pos[0];
	return 0;
}

static int cmd_rollout(client *cl, const command *cmd, int argc, char **argv)
{
	const char *rev = NULL, *eps = NULL, *pos[1];
	const option opts[] = {
		{ "--revision", NULL, &rev, NULL },
		{ "--endpoints", NULL, &eps, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	if (n == 0)
		return usage_error(cmd, "'rollout' needs the name of a canary");
	if (!rev || !*rev)
		return usage_error(cmd, "'rollout' needs --revision REV");
	if (!eps || !*eps)
		return usage_error(cmd, "'rollout' needs --endpoints HOST:PORT[,...]");
	json_t *arr = json_array();
	const char *p = eps;
	for (;;) {
		size_t l = strcspn(p, ",");
		char ep[512], host[256];
		int port;
		if (l == 0 || l >= sizeof ep) {
			json_decref(arr);
			return usage_error(cmd, "endpoints '%s': expected HOST:PORT[,...]", eps);
		}
		memcpy(ep, p, l);
		ep[l] = '\0';
		if (util_parse_hostport(ep, host, sizeof host, &port) < 0) {
			json_decref(arr);
			return usage_error(cmd, "endpoint '%s' is not HOST:PORT", ep);
		}
		json_array_append_new(arr, json_string(ep));
		if (!p[l])
			break;
		p += l + 1;
	}
	json_t *body = json_pack("{s:s, s:o}", "revision", rev, "endpoints", arr);
	char done[300];
	snprintf(done, sizeof done, "rollout of revision '%s' started", rev);
	return post_action(cl, pos[0], "rollout", body, done);
}

static int cmd_promote(client *cl, const command *cmd, int argc, char **argv)
{
	bool full = false;
	const char *pos[1];
	const option opts[] = { { "--full", NULL, NULL, &full }, { NULL, NULL, NULL, NULL } };
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	if (n == 0)
		return usage_error(cmd, "'promote' needs the name of a canary");
	return post_action(cl, pos[0], "promote", json_pack("{s:b}", "full", full),
	                   full ? "promoted in full" : "promoted past the current step");
}

static int cmd_simple(client *cl, const command *cmd, int argc, char **argv)
{
	const char *name;
	if (name_only(cmd, argc, argv, &name) < 0)
		return EXIT_USAGE;
	const char *done = strcmp(cmd->name, "abort") == 0   ? "aborted, all traffic to stable"
	                   : strcmp(cmd->name, "pause") == 0 ? "paused"
	                   : strcmp(cmd->name, "resume") == 0 ? "resumed"
	                                                      : "approved";
	return post_action(cl, name, cmd->name, json_object(), done);
}

static int cmd_set_weight(client *cl, const command *cmd, int argc, char **argv)
{
	const char *pos[2];
	int n = parse_args(cmd, argc, argv, NULL, pos, 2);
	if (n < 0)
		return EXIT_USAGE;
	if (n < 2)
		return usage_error(cmd, "'set-weight' needs a canary name and a percentage");
	const char *s = pos[1];
	size_t l = strlen(s);
	if (l > 0 && s[l - 1] == '%')
		l--;
	int w = 0;
	bool ok = l > 0 && l <= 3;
	for (size_t i = 0; ok && i < l; i++) {
		if (!isdigit((unsigned char)s[i]))
			ok = false;
		else
			w = w * 10 + (s[i] - '0');
	}
	if (!ok || w > 100)
		return usage_error(cmd, "weight '%s' is not an integer from 0 to 100", s);
	char done[64];
	snprintf(done, sizeof done, "canary weight set to %d, analysis paused", w);
	return post_action(cl, pos[0], "weight", json_pack("{s:i}", "weight", w), done);
}

static int cmd_history(client *cl, const command *cmd, int argc, char **argv)
{
	const char *out = NULL, *pos[1];
	const option opts[] = { { "-o", "--output", &out, NULL }, { NULL, NULL, NULL, NULL } };
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	if (n == 0)
		return usage_error(cmd, "'history' needs the name of a canary");
	int as_json = output_json(cmd, out);
	if (as_json < 0)
		return EXIT_USAGE;
	char path[512];
	canary_path(cl, pos[0], "events", path, sizeof path);
	json_t *j;
	int rc = api_json(cl, "GET", path, NULL, &j);
	if (rc)
		return rc;
	if (as_json) {
		print_json(j);
	} else {
		escape_strings(j);
		print_events(j);
	}
	json_decref(j);
	return EXIT_OK;
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Polls the status of NAME until its phase is Succeeded (0) or Failed (1),
 * or --timeout passes (3). The first call must reach the server; later
 * connection failures (a canaryd restarting) are retried until the timeout,
 * since a restarted canaryd resumes its rollouts. */
static int cmd_wait(client *cl, const command *cmd, int argc, char **argv)
{
	const char *tmo = WAIT_DEFAULT_TIMEOUT, *pos[1];
	const option opts[] = { { "--timeout", NULL, &tmo, NULL }, { NULL, NULL, NULL, NULL } };
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	if (n == 0)
		return usage_error(cmd, "'wait' needs the name of a canary");
	uint64_t timeout_ms;
	if (util_parse_duration(tmo, &timeout_ms) < 0)
		return usage_error(cmd, "timeout '%s' is not a duration (like 30s, 5m)", tmo);
	char path[512];
	canary_path(cl, pos[0], NULL, path, sizeof path);
	uint64_t deadline = util_mono_ms() + timeout_ms;
	bool reached = false, warned = false;
	char last_phase[64] = "unknown";
	long long last_weight = 0;
	for (;;) {
		uint64_t now = util_mono_ms();
		long left = now < deadline ? (long)(deadline - now) : 0;
		long per_call = left < REQUEST_TIMEOUT_MS ? (left > 100 ? left : 100) : REQUEST_TIMEOUT_MS;
		reply r = { 0, BUF_INIT };
		char err[512];
		if (api_call(cl, "GET", path, NULL, per_call, &r, err, sizeof err) < 0) {
			buf_release(&r.body);
			if (!reached) {
				fprintf(stderr, "canaryctl: %s\n", err);
				return EXIT_FAILED;
			}
			if (!warned) {
				fprintf(stderr, "canaryctl: %s; retrying\n", err);
				warned = true;
			}
		} else if (r.status < 200 || r.status > 299) {
			int rc = report_api_error(cl, &r);
			buf_release(&r.body);
			return rc;
		} else {
			reached = true;
			json_t *st = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, NULL);
			buf_release(&r.body);
			if (!st) {
				fprintf(stderr, "canaryctl: '%s' answered with invalid JSON\n", cl->server);
				return EXIT_FAILED;
			}
			escape_strings(st);
			const char *phase = jstr(st, "phase", "unknown");
			snprintf(last_phase, sizeof last_phase, "%s", phase);
			last_weight = jint(st, "canaryWeight");
			int done = strcmp(phase, "Succeeded") == 0 ? EXIT_OK
			           : strcmp(phase, "Failed") == 0  ? EXIT_FAILED
			                                           : -1;
			if (done >= 0) {
				char rev[256];
				format_revisions(st, rev, sizeof rev);
				printf("%s %s %s: %s\n", jstr(st, "name", pos[0]), phase, rev,
				       jstr(st, "message", ""));
				json_decref(st);
				return done;
			}
			json_decref(st);
		}
		now = util_mono_ms();
		if (now >= deadline) {
			char d[32];
			util_format_duration(timeout_ms, d, sizeof d);
			fprintf(stderr, "canaryctl: timed out after %s waiting for '%s' (phase %s, canary weight %lld)\n",
			        d, pos[0], last_phase, last_weight);
			return EXIT_TIMEOUT;
		}
		uint64_t nap = deadline - now < WAIT_POLL_MS ? deadline - now : WAIT_POLL_MS;
		sleep_ms(nap);
	}
}


static const command commands[] = {
	{ "status", "[NAME] [-o json]",
	  "one line per canary: phase, canary weight, failed checks, revisions (or the API's JSON)", cmd_status },
	{ "rollout", "NAME --revision REV --endpoints HOST:PORT[,...]",
	  "start a new canary of NAME with these endpoints", cmd_rollout },
	{ "wait", "NAME [--timeout DUR]",
	  "block until the rollout ends: exit 0 Succeeded, 1 Failed, 3 timeout (default " WAIT_DEFAULT_TIMEOUT ")", cmd_wait },
	{ "promote", "NAME [--full]",
	  "pass the current gate or pause; --full promotes now, skipping the remaining steps", cmd_promote },
	{ "abort", "NAME", "manual rollback: 100% to stable now", cmd_simple },
	{ "pause", "NAME", "hold the analysis at the current weight", cmd_simple },
	{ "resume", "NAME", "continue the analysis", cmd_simple },
	{ "set-weight", "NAME PERCENT",
	  "manual traffic override (0..100); the analysis is paused while it holds", cmd_set_weight },
	{ "approve", "NAME", "approve a pending manual gate", cmd_simple },
	{ "history", "NAME [-o json]", "the audit events of NAME, oldest first", cmd_history },
	{ "simulate", "-f FILE|DIR [NAME] [--rps N] [--rps-change-at DUR --rps-after N [--rps-ramp DUR]] "
	  "[--stable-error-rate P] [--canary-error-rate P] [--change-at DUR --canary-error-rate-after P] "
	  "[--stable-change-at DUR --stable-error-rate-after P] "
	  "[--outage-at DUR --outage-for DUR --outage-error-rate P] [--burst-size N] "
	  "[--latency-ms MS] [--canary-latency-ms MS] [--canary-warmup DUR [--canary-warmup-factor X]] "
	  "[--canary-tail-factor X [--canary-tail-share P]] "
	  "[--rules canaryd|flagger|argo [--failure-limit N] [--consecutive-error-limit N]] "
	  "[--data CSV [--replay weights|recorded]] [--runs N] [--seed S] [--limit DUR] [-o json]",
	  "offline: run NAME's rollout policy against synthetic (or --data recorded) traffic and "
	  "report the outcome and time to decision; rates as fractions (0.005) or percentages (0.5%); "
	  "times from the rollout's start; --canary-latency-ms is the canary's extra median latency "
	  "over --latency-ms (50); --burst-size N: each version's failures come N requests at a time "
	  "at its long-run rate; --outage-*: both versions fail at P (default 100%) for DUR; "
	  "--canary-warmup: the canary X (2) times slower for DUR; --canary-tail-factor: its slowest "
	  "P (2%) of requests X times slower (p99 x X, median unchanged); --rules: Flagger's or Argo "
	  "Rollouts' rules on the same traffic (failureLimit 0, consecutiveErrorLimit 4); "
	  "--replay: the recording's requests split at the engine's weight (default) or as recorded; "
	  "defaults 200 req/s, 0.5% errors, 1 run, seed 1, --limit 30m (see docs/simulate.md)", cmd_simulate },
	{ "render", "-f FILE|DIR [NAME] (--weight W | --iteration) [--mirror] [--cookie V] "
	  "[--primary-cookie V] [--provider P] [-o yaml|json]",
	  "offline: print the Kubernetes router objects of NAME (Istio, Gateway API, SMI) as "
	  "Flagger v1.44.0 renders them at canary weight W, or at an A/B or blue/green "
	  "iteration; --mirror: the mirror step; --cookie: the session-affinity cookie value; "
	  "--provider overrides spec.provider (see docs/routers.md)", cmd_render },
	{ "query", "-f FILE [NAME] [--metrics-server URL] [-o json]",
	  "offline: read each metric of NAME now, as canaryd would (its provider, query and "
	  "windows), and print the query as sent and the value (the canary's; stable's too "
	  "for a relative threshold or a baseline): exit 0 when every value was read, 1 when "
	  "one was not", cmd_query },
	{ "help", "[COMMAND]", "this help, or the usage of COMMAND", cmd_help },
	{ NULL, NULL, NULL, NULL },
};

/* ---- main -------------------------------------------------------------- */

static int first_token(void *arg, const char *name, const char *secret, int line,
                       char *err, size_t errlen)
{
	*(char **)arg = xstrdup(secret);
	return 1;   /* the first one is enough */
}

/* Reads the token from <path>: the first of the file (the daemon's token
 * file format, util_read_tokens). Returns a malloc'd token, or NULL with
 * <err> filled. */
static char *read_token(const char *path, char *err, size_t errlen)
{
	char *tok = NULL;
	if (util_read_tokens(path, first_token, &tok, err, errlen) < 0)
		return NULL;
	return tok;
}

/* "host:port" becomes "http://host:port"; trailing slashes go. */
static char *normalise_server(const char *s)
{
	buf b = BUF_INIT;
	if (!strstr(s, "://"))
		buf_puts(&b, "http://");
	buf_puts(&b, s);
	while (b.len > 0 && b.p[b.len - 1] == '/')
		b.p[--b.len] = '\0';
	return b.p;
}

static int run(char **rest, int nrest, const char *server, const char *token_file);

int main(int argc, char **argv)
{
	const char *server = getenv("CANARYD_SERVER");
	const char *token_file = NULL;
	if (!server || !*server)
		server = DEFAULT_SERVER;

	/* --server and --token-file may come anywhere before "--", as kubectl's
	 * global flags do; what is left is the command and its arguments */
	char **rest = xcalloc((size_t)argc + 1, sizeof *rest);
	int nrest = 0;
	bool dashdash = false;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		const char **dst = NULL;
		size_t l = 0;
		if (dashdash) {
			rest[nrest++] = argv[i];
			continue;
		}
		if (strcmp(a, "--") == 0) {
			dashdash = true;
			rest[nrest++] = argv[i];
			continue;
		}
		if (strncmp(a, "--server", 8) == 0 && (a[8] == '\0' || a[8] == '=')) {
			dst = &server;
			l = 8;
		} else if (strncmp(a, "--token-file", 12) == 0 && (a[12] == '\0' || a[12] == '=')) {
			dst = &token_file;
			l = 12;
		} else {
			rest[nrest++] = argv[i];
			continue;
		}
		if (a[l] == '=') {
			*dst = a + l + 1;
		} else if (i + 1 < argc) {
			*dst = argv[++i];
		} else {
			free(rest);
			return usage_error(NULL, "option '%s' needs a value", a);
		}
		if (!**dst) {
			free(rest);
			return usage_error(NULL, "option '%.*s' needs a value", (int)l, a);
		}
	}
	int rc = run(rest, nrest, server, token_file);
	free(rest);
	return rc;
}

/* Runs the command rest[0] with its arguments. */
static int run(char **rest, int nrest, const char *server, const char *token_file)
{
	if (nrest == 0)
		return usage_error(NULL, "no command given");
	if (strcmp(rest[0], "-h") == 0 || strcmp(rest[0], "--help") == 0) {
		print_usage(stdout);
		return EXIT_OK;
	}
	if (rest[0][0] == '-')
		return usage_error(NULL, "unknown option '%s'", rest[0]);
	const command *cmd = NULL;
	for (const command *c = commands; c->name; c++)
		if (strcmp(c->name, rest[0]) == 0)
			cmd = c;
	if (!cmd)
		return usage_error(NULL, "unknown command '%s'", rest[0]);
	/* "canaryctl CMD --help" is help, not a request */
	for (int k = 1; k < nrest; k++) {
		if (strcmp(rest[k], "--") == 0)
			break;
		if (strcmp(rest[k], "--help") == 0 || strcmp(rest[k], "-h") == 0) {
			printf("usage: canaryctl %s %s\n\n  %s\n", cmd->name, cmd->usage, cmd->help);
			return EXIT_OK;
		}
	}

	client cl = { NULL, NULL, NULL };
	char err[512];
	if (token_file) {
		cl.token = read_token(token_file, err, sizeof err);
		if (!cl.token) {
			fprintf(stderr, "canaryctl: %s\n", err);
			return EXIT_USAGE;
		}
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK || !(cl.curl = curl_easy_init())) {
		fprintf(stderr, "canaryctl: cannot initialise libcurl\n");
		free(cl.token);
		return EXIT_FAILED;
	}
	cl.server = normalise_server(server);
	int rc = cmd->run(&cl, cmd, nrest - 1, rest + 1);
	fflush(stdout);
	curl_easy_cleanup(cl.curl);
	curl_global_cleanup();
	free(cl.server);
	free(cl.token);
	return rc;
}
