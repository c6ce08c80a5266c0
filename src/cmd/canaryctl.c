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

enum { EXIT_OK = 0, EXIT_FAILED = 1, EXIT_USAGE = 2, EXIT_TIMEOUT = 3 };

/* The connection to the admin API, shared by every command. */
typedef struct client {
	char *server;   /* base URL without a trailing '/', owned */
	char *token;    /* bearer token or NULL, owned */
	CURL *curl;     /* reused so keep-alive spares a connect per poll */
} client;

/* The answer to one API call. */
typedef struct reply {
	long status;    /* HTTP status */
	buf body;       /* response body, caller releases */
} reply;

typedef struct command {
	const char *name;
	const char *usage;   /* arguments after the name */
	const char *help;
	int (*run)(client *cl, const struct command *cmd, int argc, char **argv);
} command;

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
static int usage_error(const command *cmd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static int usage_error(const command *cmd, const char *fmt, ...)
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

static void print_json(const json_t *j)
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

/* One option of a command: a flag (<val> NULL) or an option with a value,
 * given as "--name VALUE" or "--name=VALUE". */
typedef struct option {
	const char *name;     /* "--full", "-o" */
	const char *alias;    /* another spelling or NULL */
	const char **val;     /* where the value goes (options with a value) */
	bool *flag;           /* where true goes (flags) */
} option;

/* Splits <argv> into options (per <opts>, NULL-terminated by name) and at
 * most <max_pos> positional arguments into <pos>. Returns the number of
 * positional arguments, or -1 after reporting a usage error. */
static int parse_args(const command *cmd, int argc, char **argv,
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
static int output_json(const command *cmd, const char *o)
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


/* ---- simulate (offline) ------------------------------------------------ */

/* Parses an error rate: a fraction ("0.005") or a percentage ("0.5%").
 * Returns 0 with *p in 0..1, or -1. */
static int parse_rate(const char *s, double *p)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (end == s || errno)
		return -1;
	bool pct = *end == '%';
	if (pct)
		end++;
	if (*end || !(v >= 0))
		return -1;
	if (pct)
		v /= 100;
	if (v > 1)
		return -1;
	*p = v;
	return 0;
}

/* Parses a number in [lo, hi]. */
static int parse_num(const char *s, double lo, double hi, double *v)
{
	char *end;
	errno = 0;
	double x = strtod(s, &end);
	if (end == s || *end || errno || !(x >= lo && x <= hi))
		return -1;
	*v = x;
	return 0;
}

/* Reads all of <path> (malloc'd, NUL-terminated) or NULL with <err>. */
static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		snprintf(err, errlen, "cannot read '%s': %s", path, strerror(errno));
		return NULL;
	}
	buf b = BUF_INIT;
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		buf_append(&b, chunk, n);
	int bad = ferror(f);
	fclose(f);
	if (bad) {
		snprintf(err, errlen, "cannot read '%s': read error", path);
		buf_release(&b);
		return NULL;
	}
	buf_append(&b, "", 0);
	*len = b.len;
	return b.p ? b.p : xstrdup("");
}

/* "steps 10, 20, .. 50" and the rest of the policy in one line. */
static void describe_policy(const eng_policy *p, char *out, size_t outlen)
{
	char iv[32];
	util_format_duration(p->interval_ms, iv, sizeof iv);
	int n = snprintf(out, outlen, "interval %s, threshold %d, ", iv, p->threshold);
	if (n < 0 || (size_t)n >= outlen)
		return;
	if (p->n_step_weights > 0)
		n += snprintf(out + n, outlen - (size_t)n, "%d step weights up to %d",
		              p->n_step_weights, p->step_weights[p->n_step_weights - 1]);
	else if (p->step_weight > 0)
		n += snprintf(out + n, outlen - (size_t)n, "step weight %d up to %d", p->step_weight,
		              p->max_weight);
	else
		n += snprintf(out + n, outlen - (size_t)n, "%d iterations", p->iterations);
	if (n < 0 || (size_t)n >= outlen)
		return;
	if (p->judge == ENG_JUDGE_SEQUENTIAL)
		snprintf(out + n, outlen - (size_t)n, ", sequential judge (alpha %g, min samples %llu)",
		         p->alpha, (unsigned long long)p->min_samples);
	else
		snprintf(out + n, outlen - (size_t)n, ", threshold judge");
}

/* Loads <file> (offline commands; a directory gives its YAML files, as
 * canaryd -c DIR) and finds the canary <name>, or the only one when
 * <name> is NULL. Returns it, with *conf to free, or NULL
 * after saying why on stderr (every configuration error, or which names
 * there are to choose from). */
static const cfg_canary *load_canary(const char *file, const char *name, cfg **conf)
{
	cfg_errors errs = { NULL, 0, 0 };
	*conf = NULL;
	if (cfg_load_paths(&file, 1, conf, &errs) < 0) {
		for (size_t i = 0; i < errs.n; i++)
			fprintf(stderr, "%s\n", errs.msg[i]);
		if (errs.n == 0)
			fprintf(stderr, "canaryctl: cannot load '%s'\n", file);
		cfg_errors_release(&errs);
		return NULL;
	}
	cfg_errors_release(&errs);
	const cfg_canary *cc = NULL;
	if (name) {
		cc = cfg_find(*conf, name);
		if (!cc)
			fprintf(stderr, "canaryctl: no canary '%s' in '%s'\n", name, file);
	} else if ((*conf)->n_canaries == 1) {
		cc = &(*conf)->canaries[0];
	} else {
		fprintf(stderr, "canaryctl: '%s' defines %zu canaries, name one:", file,
		        (*conf)->n_canaries);
		for (size_t i = 0; i < (*conf)->n_canaries; i++)
			fprintf(stderr, " %s", (*conf)->canaries[i].name);
		fputc('\n', stderr);
	}
	if (!cc) {
		cfg_free(*conf);
		*conf = NULL;
	}
	return cc;
}

/* A duration option: 0 when absent; -1 after a usage error. */
static int opt_duration(const command *cmd, const char *flag, const char *v, bool zero_ok,
                        uint64_t *ms)
{
	*ms = 0;
	if (!v)
		return 0;
	if (util_parse_duration(v, ms) < 0 || (!zero_ok && *ms == 0) || *ms > 24ULL * 3600 * 1000) {
		usage_error(cmd, "%s '%s' is not a duration %s 24h (like 90s, 5m)", flag, v,
		            zero_ok ? "up to" : "above 0 and at most");
		return -1;
	}
	return 0;
}

/* A rate option (fraction or percentage); -1 after a usage error. */
static int opt_rate(const command *cmd, const char *flag, const char *v, double *p)
{
	if (v && parse_rate(v, p) < 0) {
		usage_error(cmd, "%s '%s' is not a fraction (0.005) or a percentage (0.5%%)", flag, v);
		return -1;
	}
	return 0;
}

/* A number option in [lo, hi] (whole when <whole>); -1 after a usage error. */
static int opt_num(const command *cmd, const char *flag, const char *v, double lo, double hi,
                   bool whole, double *x)
{
	double t;
	if (v && (parse_num(v, lo, hi, &t) < 0 || (whole && t != floor(t)))) {
		usage_error(cmd, "%s '%s' is not a %s from %.10g to %.10g", flag, v,
		            whole ? "whole number" : "number", lo, hi);
		return -1;
	}
	if (v)
		*x = t;
	return 0;
}

/* sim_each_fn for -o json: prints each run's result as an element of
 * "results" as it ends, so that a million runs need no memory for them. */
static void print_result_json(void *arg, int i, uint64_t seed, const sim_result *r)
{
	(void)arg;
	json_t *o = json_pack("{s:I, s:s, s:f, s:i, s:i, s:I, s:I, s:s}", "seed", (json_int_t)seed,
	                 "outcome", sim_outcome_name(r->outcome),
	                 "decisionSeconds", (double)r->decision_ms / 1000.0,
	                 "finalWeight", r->final_weight, "checks", r->checks,
	                 "canaryRequests", (json_int_t)r->canary_requests,
	                 "canaryErrors", (json_int_t)r->canary_errors, "message", r->message);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6)) : NULL;
	printf("%s    %s", i ? ",\n" : "", text ? text : "null");
	free(text);
	json_decref(o);
}

static int cmd_simulate(client *cl, const command *cmd, int argc, char **argv)
{
	(void)cl;
	const char *file = NULL, *rps = NULL, *ser = NULL, *cer = NULL, *clat = NULL;
	const char *lat = NULL, *runs_s = NULL, *seed_s = NULL, *data = NULL, *change = NULL;
	const char *after = NULL, *limit_s = NULL, *out = NULL, *pos[1];
	const char *safter = NULL, *schange = NULL, *oat = NULL, *ofor = NULL, *orate = NULL;
	const char *rafter = NULL, *rchange = NULL, *rramp = NULL, *burst = NULL;
	const char *warm = NULL, *warmf = NULL, *tailf = NULL, *tails = NULL;
	const char *rules_s = NULL, *flim = NULL, *celim = NULL, *replay = NULL;
	const option opts[] = {
		{ "-f", "--file", &file, NULL },
		{ "--rps", NULL, &rps, NULL },
		{ "--rps-after", NULL, &rafter, NULL },
		{ "--rps-change-at", NULL, &rchange, NULL },
		{ "--rps-ramp", NULL, &rramp, NULL },
		{ "--stable-error-rate", NULL, &ser, NULL },
		{ "--stable-error-rate-after", NULL, &safter, NULL },
		{ "--stable-change-at", NULL, &schange, NULL },
		{ "--canary-error-rate-after", NULL, &after, NULL },
		{ "--canary-error-rate", NULL, &cer, NULL },
		{ "--outage-at", NULL, &oat, NULL },
		{ "--outage-for", NULL, &ofor, NULL },
		{ "--outage-error-rate", NULL, &orate, NULL },
		{ "--burst-size", NULL, &burst, NULL },
		{ "--canary-latency-ms", NULL, &clat, NULL },
		{ "--latency-ms", NULL, &lat, NULL },
		{ "--canary-warmup", NULL, &warm, NULL },
		{ "--canary-warmup-factor", NULL, &warmf, NULL },
		{ "--canary-tail-factor", NULL, &tailf, NULL },
		{ "--canary-tail-share", NULL, &tails, NULL },
		{ "--rules", NULL, &rules_s, NULL },
		{ "--failure-limit", NULL, &flim, NULL },
		{ "--consecutive-error-limit", NULL, &celim, NULL },
		{ "--runs", NULL, &runs_s, NULL },
		{ "--seed", NULL, &seed_s, NULL },
		{ "--data", NULL, &data, NULL },
		{ "--replay", NULL, &replay, NULL },
		{ "--change-at", NULL, &change, NULL },
		{ "--limit", NULL, &limit_s, NULL },
		{ "-o", "--output", &out, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	int as_json = output_json(cmd, out);
	if (as_json < 0)
		return EXIT_USAGE;
	if (!file)
		return usage_error(cmd, "'simulate' needs the configuration: -f FILE");

	sim_traffic tr;
	sim_traffic_defaults(&tr);
	double v;
	if (rps) {
		if (parse_num(rps, 0.001, 1e7, &v) < 0)
			return usage_error(cmd, "--rps '%s' is not a rate above 0 and at most 10000000", rps);
		tr.rps = v;
	}
	if (opt_rate(cmd, "--stable-error-rate", ser, &tr.stable_error_rate) < 0 ||
	    opt_rate(cmd, "--canary-error-rate", cer, &tr.canary_error_rate) < 0)
		return EXIT_USAGE;
	if (clat) {
		if (parse_num(clat, -1e6, 1e6, &v) < 0)
			return usage_error(cmd, "--canary-latency-ms '%s' is not a number of milliseconds", clat);
		tr.canary_extra_latency_ms = v;
	}
	if (lat) {
		if (parse_num(lat, 0.001, 1e6, &v) < 0)
			return usage_error(cmd, "--latency-ms '%s' is not a number of milliseconds above 0", lat);
		tr.latency_median_ms = v;
	}
	if ((change == NULL) != (after == NULL))
		return usage_error(cmd, "--change-at DUR and --canary-error-rate-after P go together");
	if (opt_duration(cmd, "--change-at", change, false, &tr.change_at_ms) < 0 ||
	    opt_rate(cmd, "--canary-error-rate-after", after, &tr.canary_error_rate_after) < 0)
		return EXIT_USAGE;
	if ((schange == NULL) != (safter == NULL))
		return usage_error(cmd, "--stable-change-at DUR and --stable-error-rate-after P go together");
	if (opt_duration(cmd, "--stable-change-at", schange, false, &tr.stable_change_at_ms) < 0 ||
	    opt_rate(cmd, "--stable-error-rate-after", safter, &tr.stable_error_rate_after) < 0)
		return EXIT_USAGE;
	if (!ofor && (oat || orate))
		return usage_error(cmd, "--outage-at and --outage-error-rate need --outage-for DUR");
	if (opt_duration(cmd, "--outage-at", oat, true, &tr.outage_at_ms) < 0 ||
	    opt_duration(cmd, "--outage-for", ofor, false, &tr.outage_for_ms) < 0)
		return EXIT_USAGE;
	tr.outage_error_rate = 1;
	if (opt_rate(cmd, "--outage-error-rate", orate, &tr.outage_error_rate) < 0)
		return EXIT_USAGE;
	if ((rchange == NULL) != (rafter == NULL))
		return usage_error(cmd, "--rps-change-at DUR and --rps-after N go together");
	if (rramp && !rchange)
		return usage_error(cmd, "--rps-ramp DUR needs --rps-change-at DUR and --rps-after N");
	if (opt_duration(cmd, "--rps-change-at", rchange, false, &tr.rps_change_at_ms) < 0 ||
	    opt_duration(cmd, "--rps-ramp", rramp, false, &tr.rps_ramp_ms) < 0 ||
	    opt_num(cmd, "--rps-after", rafter, 0.001, 1e7, false, &tr.rps_after) < 0)
		return EXIT_USAGE;
	double x = 0;
	if (opt_num(cmd, "--burst-size", burst, 1, 1000000, true, &x) < 0)
		return EXIT_USAGE;
	tr.burst_size = (uint64_t)x;
	if (warmf && !warm)
		return usage_error(cmd, "--canary-warmup-factor X needs --canary-warmup DUR");
	if (tails && !tailf)
		return usage_error(cmd, "--canary-tail-share P needs --canary-tail-factor X");
	if (opt_duration(cmd, "--canary-warmup", warm, false, &tr.canary_warmup_ms) < 0 ||
	    opt_num(cmd, "--canary-warmup-factor", warmf, 0.01, 1000, false, &tr.canary_warmup_factor) < 0 ||
	    opt_num(cmd, "--canary-tail-factor", tailf, 1, 1000, false, &tr.canary_tail_factor) < 0 ||
	    opt_rate(cmd, "--canary-tail-share", tails, &tr.canary_tail_share) < 0)
		return EXIT_USAGE;
	if (tails && !(tr.canary_tail_share > 0 && tr.canary_tail_share < 0.5))
		return usage_error(cmd, "--canary-tail-share '%s' is not a share above 0 and below 50%%", tails);
	sim_rules rules = { .kind = SIM_RULES_CANARYD, .failure_limit = 0, .consecutive_error_limit = 4 };
	if (rules_s) {
		if (strcmp(rules_s, "canaryd") == 0)
			rules.kind = SIM_RULES_CANARYD;
		else if (strcmp(rules_s, "flagger") == 0)
			rules.kind = SIM_RULES_FLAGGER;
		else if (strcmp(rules_s, "argo") == 0)
			rules.kind = SIM_RULES_ARGO;
		else
			return usage_error(cmd, "--rules '%s' is not canaryd, flagger or argo", rules_s);
	}
	if ((flim || celim) && rules.kind != SIM_RULES_ARGO)
		return usage_error(cmd, "--failure-limit and --consecutive-error-limit go with --rules argo");
	x = rules.failure_limit;
	if (opt_num(cmd, "--failure-limit", flim, 0, 1000000, true, &x) < 0)
		return EXIT_USAGE;
	rules.failure_limit = (int)x;
	x = rules.consecutive_error_limit;
	if (opt_num(cmd, "--consecutive-error-limit", celim, 0, 1000000, true, &x) < 0)
		return EXIT_USAGE;
	rules.consecutive_error_limit = (int)x;
	if (replay && !data)
		return usage_error(cmd, "--replay goes with --data CSV");
	if (replay && strcmp(replay, "weights") != 0 && strcmp(replay, "recorded") != 0)
		return usage_error(cmd, "--replay '%s' is not weights or recorded", replay);
	tr.replay_recorded_split = replay && strcmp(replay, "recorded") == 0;
	int runs = 1;
	if (runs_s) {
		if (parse_num(runs_s, 1, 1000000, &v) < 0 || v != floor(v))
			return usage_error(cmd, "--runs '%s' is not a whole number from 1 to 1000000", runs_s);
		runs = (int)v;
	}
	uint64_t seed = 1;
	if (seed_s) {
		char *end;
		errno = 0;
		unsigned long long sx = strtoull(seed_s, &end, 10);
		if (end == seed_s || *end || errno || seed_s[0] == '-')
			return usage_error(cmd, "--seed '%s' is not a non-negative integer", seed_s);
		seed = sx;
	}
	uint64_t limit = SIM_DEFAULT_LIMIT_MS;
	if (limit_s && (util_parse_duration(limit_s, &limit) < 0 || limit == 0 ||
	                limit > 24ULL * 3600 * 1000))
		return usage_error(cmd, "--limit '%s' is not a duration from 100ms to 24h", limit_s);

	cfg *conf = NULL;
	const cfg_canary *cc = load_canary(file, n == 1 ? pos[0] : NULL, &conf);
	if (!cc)
		return EXIT_USAGE;

	char err[512];
	sim_data rec = { NULL, 0 };
	if (data) {
		size_t len;
		char *text = read_file(data, &len, err, sizeof err);
		if (!text || sim_parse_csv(data, text, len, &rec, err, sizeof err) < 0) {
			free(text);
			fprintf(stderr, "canaryctl: %s\n", err);
			cfg_free(conf);
			return EXIT_USAGE;
		}
		free(text);
		tr.data = &rec;
	}
	sim *s = sim_new(&cc->policy, &tr, limit, err, sizeof err);
	if (!s || sim_set_rules(s, &rules, err, sizeof err) < 0) {
		fprintf(stderr, "canaryctl: %s\n", err);
		sim_free(s);
		sim_data_release(&rec);
		cfg_free(conf);
		return EXIT_USAGE;
	}
	for (int i = 0; i < sim_skipped_metrics(s); i++)
		fprintf(stderr, "canaryctl: note: metric '%s' cannot be simulated and is left out\n",
		        sim_skipped_metric(s, i));
	sim_summary sum;
	if (as_json)
		fputs("{\n  \"results\": [\n", stdout);
	sim_run_many(s, runs, seed, &sum, as_json ? print_result_json : NULL, NULL);
	sim_free(s);

	if (as_json) {
		json_t *o = json_pack("{s:s, s:i, s:i, s:i, s:i}", "rules",
		                      rules.kind == SIM_RULES_FLAGGER ? "flagger"
		                      : rules.kind == SIM_RULES_ARGO ? "argo" : "canaryd",
		                      "runs", sum.runs, "promoted", sum.promoted,
		                      "rolledBack", sum.rolled_back, "undecided", sum.undecided);
		json_object_set_new(o, "medianDecisionSeconds",
		                    sum.median_decision_s < 0 ? json_null() : json_real(sum.median_decision_s));
		json_object_set_new(o, "p50DecisionSeconds",
		                    sum.median_decision_s < 0 ? json_null() : json_real(sum.median_decision_s));
		json_object_set_new(o, "p95DecisionSeconds",
		                    sum.p95_decision_s < 0 ? json_null() : json_real(sum.p95_decision_s));
		if (runs == 1) {
			json_object_set_new(o, "outcome", json_string(sim_outcome_name(sum.first.outcome)));
			json_object_set_new(o, "decisionSeconds", json_real((double)sum.first.decision_ms / 1000.0));
			json_object_set_new(o, "finalWeight", json_integer(sum.first.final_weight));
			json_object_set_new(o, "message", json_string(sum.first.message));
		}
		/* 10 digits: 1.4, not 1.3999999999999999; the summary's members
		 * follow "results" in the object opened above */
		char *text = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
		printf("\n  ],%s\n", text && text[0] == '{' ? text + 1 : "\n}");
		free(text);
		json_decref(o);
	} else {
		char pol[256];
		describe_policy(&cc->policy, pol, sizeof pol);
		printf("canary %s: %s\n", cc->name, pol);
		if (data)
			printf("traffic: replay of '%s' (%zu s) %s\n", data, rec.n,
			       tr.replay_recorded_split ? "as recorded" : "at the engine's weights");
		else
			printf("traffic: %g req/s, stable %.2f%% errors, canary %.2f%% errors, "
			       "median latency %g ms, canary's %g ms\n", tr.rps, 100 * tr.stable_error_rate,
			       100 * tr.canary_error_rate, tr.latency_median_ms,
			       tr.latency_median_ms + tr.canary_extra_latency_ms);
		if (change)
			printf("  from %s on the canary's error rate is %.2f%%\n", change,
			       100 * tr.canary_error_rate_after);
		if (schange)
			printf("  from %s on stable's error rate is %.2f%%\n", schange,
			       100 * tr.stable_error_rate_after);
		if (ofor)
			printf("  a shared outage at %s for %s: both versions fail %.2f%%\n", oat ? oat : "0s",
			       ofor, 100 * tr.outage_error_rate);
		if (rchange)
			printf("  from %s on %g req/s%s%s\n", rchange, tr.rps_after, rramp ? ", ramped over " : "",
			       rramp ? rramp : "");
		if (tr.burst_size > 1)
			printf("  failures in bursts of %llu requests of one version\n",
			       (unsigned long long)tr.burst_size);
		if (warm)
			printf("  the canary %g times slower for its first %s\n", tr.canary_warmup_factor, warm);
		if (tailf)
			printf("  the canary's slowest %g%% of requests %g times slower\n",
			       100 * tr.canary_tail_share, tr.canary_tail_factor);
		if (rules.kind == SIM_RULES_FLAGGER)
			printf("rules: Flagger's (interval at least 10s, no data fails a check, rollback an "
			       "interval after the threshold-th failed check)\n");
		else if (rules.kind == SIM_RULES_ARGO)
			printf("rules: Argo Rollouts' (a step each interval, failureLimit %d, "
			       "consecutiveErrorLimit %d)\n", rules.failure_limit, rules.consecutive_error_limit);
		if (runs == 1) {
			const sim_result *r = &sum.first;
			printf("%s after %.1fs at canary weight %d (checks: %d; canary served %llu requests, %llu errors)\n",
			       r->outcome == SIM_UNDECIDED ? "undecided" : sim_outcome_name(r->outcome),
			       (double)r->decision_ms / 1000.0, r->final_weight, r->checks,
			       (unsigned long long)r->canary_requests, (unsigned long long)r->canary_errors);
			printf("  %s\n", r->message);
		} else {
			printf("%d runs (seeds %llu..%llu): %d promoted (%.1f%%), %d rolled back (%.1f%%), "
			       "%d undecided (%.1f%%)\n", sum.runs, (unsigned long long)seed,
			       (unsigned long long)(seed + (uint64_t)runs - 1),
			       sum.promoted, 100.0 * sum.promoted / sum.runs, sum.rolled_back,
			       100.0 * sum.rolled_back / sum.runs, sum.undecided,
			       100.0 * sum.undecided / sum.runs);
			if (sum.median_decision_s >= 0)
				printf("  time to decision: median %.1fs, p95 %.1fs\n", sum.median_decision_s,
				       sum.p95_decision_s);
		}
	}
	sim_data_release(&rec);
	cfg_free(conf);
	return EXIT_OK;
}

/* ---- render (offline) -------------------------------------------------- */

/* Ten random letters, as Flagger draws a session-affinity cookie value
 * (randSeq); the renderer itself is pure and takes the value as input. */
static void random_cookie(char out[11])
{
	static const char letters[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
	unsigned char r[10] = { 0 };
	FILE *f = fopen("/dev/urandom", "rb");
	size_t got = f ? fread(r, 1, sizeof r, f) : 0;
	if (f)
		fclose(f);
	for (size_t i = 0; i < 10; i++) {
		unsigned v = i < got ? r[i] : (unsigned)rand();
		out[i] = letters[v % 52];
	}
	out[10] = '\0';
}

static int cmd_render(client *cl, const command *cmd, int argc, char **argv)
{
	const char *file = NULL, *weight_s = NULL, *out = NULL, *cookie = NULL, *pcookie = NULL;
	const char *provider = NULL, *pos[1];
	bool iteration = false, mirror = false;
	const option opts[] = {
		{ "-f", "--file", &file, NULL },
		{ "--weight", NULL, &weight_s, NULL },
		{ "--iteration", NULL, NULL, &iteration },
		{ "--mirror", NULL, NULL, &mirror },
		{ "--cookie", NULL, &cookie, NULL },
		{ "--primary-cookie", NULL, &pcookie, NULL },
		{ "--provider", NULL, &provider, NULL },
		{ "-o", "--output", &out, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	bool as_json = false;
	if (out && strcmp(out, "json") == 0)
		as_json = true;
	else if (out && strcmp(out, "yaml") != 0)
		return usage_error(cmd, "output format '%s' is not one of yaml, json", out);
	if (!file)
		return usage_error(cmd, "'render' needs the configuration: -f FILE");
	if (!weight_s == !iteration)
		return usage_error(cmd, "'render' needs the traffic split: --weight W (0..100) or "
		                   "--iteration");
	render_opts ro = { .provider = provider };
	if (weight_s) {
		double v;
		if (parse_num(weight_s, 0, 100, &v) < 0 || v != floor(v))
			return usage_error(cmd, "--weight '%s' is not a whole number from 0 to 100", weight_s);
		ro.split.weight = (int)v;
	}

	cfg *conf = NULL;
	const cfg_canary *cc = load_canary(file, n == 1 ? pos[0] : NULL, &conf);
	if (!cc)
		return EXIT_USAGE;

	/* an iteration of blue/green (routes as they were, mirrored with
	 * analysis.mirror) or of A/B testing (the matched requests to the
	 * canary): what Flagger's runBlueGreen and runAB set */
	const json_t *an = json_object_get(json_object_get(cc->raw, "spec"), "analysis");
	if (iteration) {
		if (cc->policy.iterations <= 0) {
			fprintf(stderr, "canaryctl: --iteration: '%s' has no analysis.iterations (it shifts "
			        "weight in steps: use --weight)\n", cc->name);
			cfg_free(conf);
			return EXIT_USAGE;
		}
		if (json_array_size(json_object_get(an, "match"))) {
			ro.split.weight = 100;
		} else {
			ro.split.weight = 0;
			mirror = mirror || json_is_true(json_object_get(an, "mirror"));
		}
	}
	ro.split.mirror = mirror;

	/* a session-affinity run without --cookie: drawn here, as Flagger does */
	const json_t *sa = json_object_get(an, "sessionAffinity");
	char drawn[11], pdrawn[11];
	if (json_is_object(sa) && ro.split.weight > 0) {
		if (!cookie) {
			random_cookie(drawn);
			cookie = drawn;
			fprintf(stderr, "canaryctl: note: session-affinity cookie value '%s' drawn at random "
			        "(Flagger keeps its own in status.sessionAffinityCookie); --cookie sets it\n",
			        cookie);
		}
		if (!pcookie && json_is_string(json_object_get(sa, "primaryCookieName"))) {
			random_cookie(pdrawn);
			pcookie = pdrawn;
			fprintf(stderr, "canaryctl: note: primary cookie value '%s' drawn at random; "
			        "--primary-cookie sets it\n", pcookie);
		}
	}
	ro.split.cookie = cookie;
	ro.split.primary_cookie = pcookie;

	render_result r;
	int rc = render_canary(cc->raw, &ro, &r);
	size_t i;
	json_t *m;
	json_array_foreach(r.notes, i, m)
		fprintf(stderr, "canaryctl: note: %s: %s\n", cc->name, json_string_value(m));
	if (rc < 0) {
		json_array_foreach(r.errors, i, m)
			fprintf(stderr, "canaryctl: %s: %s\n", cc->name, json_string_value(m));
		render_result_release(&r);
		cfg_free(conf);
		return EXIT_USAGE;
	}
	if (as_json) {
		/* one document a reader and `kubectl apply -f -` both take */
		json_t *list = json_pack("{s:s,s:s,s:O}", "apiVersion", "v1", "kind", "List", "items",
		                         r.objects);
		print_json(list);
		json_decref(list);
	} else {
		buf b = BUF_INIT;
		char err[256];
		if (render_yaml(r.objects, &b, err, sizeof err) < 0) {
			fprintf(stderr, "canaryctl: %s\n", err);
			rc = -1;
		} else if (b.len) {
			fwrite(b.p, 1, b.len, stdout);
		}
		buf_release(&b);
	}
	render_result_release(&r);
	cfg_free(conf);
	return rc < 0 ? EXIT_FAILED : EXIT_OK;
}

/* ---- query: each metric as the daemon would read it, now ------------- */

/* One read of one window of one metric. */
typedef struct query_read {
	int metric;
	rd_which which;
	char interval[32];
	buf request;        /* the query or "METHOD URL" as sent */
	int has_data;
	double value;
	char reason[256];
} query_read;

static void query_done(void *arg, int has_data, double value, const char *reason)
{
	query_read *q = arg;
	q->has_data = has_data;
	q->value = value;
	snprintf(q->reason, sizeof q->reason, "%s", has_data ? "" : reason);
}

static const char *const which_names[RD_COUNT] = { "canary", "stable", "baseline" };

/* Reads every window of every metric of <cc> through its provider, as the
 * controller's check does (the same windows, variables and providers), on
 * a loop of its own. Fills <reads> (at most RD_COUNT per metric) and
 * returns how many, or -1 with <err>. */
static int query_reads(const cfg_canary *cc, uv_loop_t *loop, hooks *h, query_read *reads,
                       char *err, size_t errlen)
{
	int n = 0;
	provider_env env = { .http = h, .st = NULL, .cc = cc };
	for (int i = 0; i < cc->policy.n_metrics; i++) {
		const eng_metric *m = &cc->policy.metrics[i];
		const provider_ops *ops = provider_of(cc, i);
		rd_window w[RD_COUNT];
		/* the windows' seconds do not matter to a provider that queries:
		 * only their spans do */
		int nw = rd_windows(m, 1000000, 0, w);
		for (int k = 0; k < nw; k++) {
			query_read *q = &reads[n++];
			memset(q, 0, sizeof *q);
			q->metric = i;
			q->which = w[k].which;
			util_format_duration(w[k].span_ms, q->interval, sizeof q->interval);
			const char *rev = w[k].which == RD_CANARY ? cc->canary_rev : cc->stable_rev;
			provider_window pw = {
				.w = w[k],
				.kind = m->kind,
				.vars = {
					.name = cc->name,
					.namespace_ = cc->namespace_ ? cc->namespace_ : "",
					.target = cc->name,
					.interval = q->interval,
					.revision = rev ? rev : "",
				},
			};
			if (!ops->describe) {
				snprintf(q->reason, sizeof q->reason, "read from canaryd's own proxy, not "
				         "queried (canaryctl history %s shows its checks)", cc->name);
				continue;
			}
			char e[256];
			if (ops->describe(&env, &cc->sources[i], &pw, &q->request, e, sizeof e) < 0 ||
			    ops->read(&env, &cc->sources[i], &pw, query_done, q, e, sizeof e) < 0) {
				snprintf(err, errlen, "metric '%s': %s", m->name, e);
				return -1;
			}
		}
	}
	/* each read ends within its provider's timeout (at most 5 min) */
	uv_run(loop, UV_RUN_DEFAULT);
	return n;
}

static int cmd_query(client *cl, const command *cmd, int argc, char **argv)
{
	const char *file = NULL, *server = NULL, *out = NULL, *pos[1];
	const option opts[] = {
		{ "-f", "--file", &file, NULL },
		{ "--metrics-server", NULL, &server, NULL },
		{ "-o", "--output", &out, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int np = parse_args(cmd, argc, argv, opts, pos, 1);
	if (np < 0)
		return EXIT_USAGE;
	int as_json = output_json(cmd, out);
	if (as_json < 0)
		return EXIT_USAGE;
	if (!file)
		return usage_error(cmd, "'query' needs the configuration: -f FILE");
	if (server && !provider_url_ok(server))
		return usage_error(cmd, "--metrics-server '%.200s' is not an http:// or https:// URL "
		                   "such as http://127.0.0.1:9090", server);
	cfg *conf = NULL;
	const cfg_canary *cc = load_canary(file, np == 1 ? pos[0] : NULL, &conf);
	if (!cc)
		return EXIT_USAGE;
	provider_set_metrics_server(server);
	char err[512];
	if (provider_check(cc, err, sizeof err) < 0) {
		fprintf(stderr, "canaryctl: %s\n", err);
		provider_set_metrics_server(NULL);
		cfg_free(conf);
		return EXIT_USAGE;
	}
	uv_loop_t loop;
	uv_loop_init(&loop);
	hooks *h = hooks_new(&loop);
	query_read *reads = xcalloc((size_t)cc->policy.n_metrics * RD_COUNT + 1, sizeof *reads);
	int n = h ? query_reads(cc, &loop, h, reads, err, sizeof err) : -1;
	if (!h)
		snprintf(err, sizeof err, "cannot initialise libcurl");
	int rc = n < 0 ? EXIT_FAILED : EXIT_OK;
	if (n < 0)
		fprintf(stderr, "canaryctl: %s: %s\n", cc->name, err);
	const char *ms = provider_is_mesh(cc) ? mesh_server(cc) : NULL;
	json_t *metrics = json_array();
	for (int r = 0; r < n; r++) {
		const query_read *q = &reads[r];
		const eng_metric *m = &cc->policy.metrics[q->metric];
		const provider_ops *ops = provider_of(cc, q->metric);
		if (!ops->describe)
			; /* the proxy's stats: nothing failed */
		else if (!q->has_data)
			rc = EXIT_FAILED;
		if (as_json) {
			json_t *o = json_pack("{s:s,s:s,s:s,s:s}", "metric", m->name, "of",
			                      which_names[q->which], "provider", ops->name,
			                      "interval", q->interval);
			if (q->request.p)
				json_object_set_new(o, "query", json_string(q->request.p));
			if (q->has_data)
				json_object_set_new(o, "value", json_real(q->value));
			else
				json_object_set_new(o, "reason", json_string(q->reason));
			json_array_append_new(metrics, o);
			continue;
		}
		if (q->which == RD_CANARY)
			printf("%s (%s, over %s)\n", m->name, ops->name, q->interval);
		if (q->request.p) /* -o json has it as sent, with Flagger's leading blank */
			printf("  %s query: %s\n", which_names[q->which],
			       q->request.p + strspn(q->request.p, " "));
		if (q->has_data)
			printf("  %s value: %.6g\n", which_names[q->which], q->value);
		else
			printf("  %s: %s\n", which_names[q->which], q->reason);
	}
	if (as_json) {
		json_t *o = json_pack("{s:s,s:s?,s:o}", "canary", cc->name, "metricsServer", ms,
		                      "reads", metrics);
		print_json(o);
		json_decref(o);
	} else {
		json_decref(metrics);
	}
	for (int r = 0; r < n; r++)
		buf_release(&reads[r].request);
	free(reads);
	hooks_free(h, NULL);
	uv_run(&loop, UV_RUN_DEFAULT);
	uv_loop_close(&loop);
	provider_set_metrics_server(NULL);
	cfg_free(conf);
	return rc;
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
