/* canaryctl.c - the command-line client of canaryd's admin API
 * (../shared/SPEC.md "Programs", "Exit codes of canaryctl", "Admin API").
 *
 * Commands are rows of a table (name, usage, brief, help, flags, handler),
 * as HAProxy's CLI keywords are: `canaryctl help` prints the table, the
 * shell completion scripts are generated from it, and a handler gets the
 * arguments after its name. Every handler returns the process exit code
 * (ctl_cmd.h): 0 success, 1 the operation (or the rollout) failed, 2 bad
 * usage or bad input, 3 timeout, 4 canaryd unreachable or the token
 * refused, so that a pipeline tells "rolled back" from "could not ask".
 * Only main() exits.
 *
 * What is printed for a person is in ctl_view.c (tables, details, event
 * lines) and ctl_out.c (formats, colour, help text); the offline commands
 * are in ctl_offline.c. */
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "ctl_cmd.h"
#include "ctl_out.h"
#include "ctl_view.h"
#include "log.h"
#include "util.h"
#include "version.h"

#define DEFAULT_SERVER "http://127.0.0.1:9901"
#define REQUEST_TIMEOUT_MS 10000
#define VERSION_TIMEOUT_MS 3000
#define WATCH_DEFAULT_INTERVAL "500ms"
#define WAIT_DEFAULT_TIMEOUT "10m"
#define WATCH_DEFAULT_TIMEOUT "1h"
#define WATCH_RECENT_EVENTS 5     /* events in the live block */
#define WATCH_KEPT_EVENTS 64      /* events kept for it (a window, not all) */
#define WATCH_BACKLOG_EVENTS 50   /* past events `wait` prints when it starts */
#define AUDIT_EXPORT_TIMEOUT_MS 120000  /* a long history is a big answer */

/* The answer to one API call. */
typedef struct reply {
	long status;    /* HTTP status */
	buf body;       /* response body, caller releases */
} reply;

static const command commands[];

/* ---- help -------------------------------------------------------------- */

static void print_usage(FILE *f)
{
	buf b = BUF_INIT;
	buf_puts(&b, "usage: canaryctl [--server URL] [--token-file F] [--no-color] COMMAND [ARGS]\n"
	             "\n");
	static const char *const globals[][2] = {
		{ "--server URL", "the admin API of canaryd (default $CANARYD_SERVER, else "
		                  DEFAULT_SERVER ")" },
		{ "--token-file F", "send the first token of F as 'Authorization: Bearer TOKEN'" },
		{ "--no-color", "no colour (nor with NO_COLOR set, nor when the output is not a "
		                "terminal)" },
	};
	for (size_t i = 0; i < sizeof globals / sizeof globals[0]; i++) {
		buf_printf(&b, "  %-16s ", globals[i][0]);
		out_wrap(&b, globals[i][1], 19, 19, OUT_HELP_WIDTH);
	}
	buf_puts(&b, "\ncommands:\n");
	for (const command *c = commands; c->name; c++) {
		buf_printf(&b, "  %-12s ", c->name);
		out_wrap(&b, c->brief, 15, 15, OUT_HELP_WIDTH);
	}
	buf_puts(&b, "\n");
	out_wrap(&b, "'canaryctl help COMMAND' (or COMMAND --help) shows the arguments of "
	         "COMMAND; 'man canaryctl' the whole story.", 0, 0, OUT_HELP_WIDTH);
	buf_puts(&b, "\n");
	out_wrap(&b, "exit codes: 0 success (wait: Succeeded), 1 the operation or the rollout "
	         "failed (rolled back), 2 bad usage or bad input, 3 timeout, 4 canaryd "
	         "unreachable or the token refused", 0, 0, OUT_HELP_WIDTH);
	fwrite(b.p, 1, b.len, f);
	buf_release(&b);
}

/* Prints <j> in <fmt> (json or yaml). Returns the exit code. */
static int print_as(const json_t *j, out_format fmt)
{
	char err[256];
	if (out_print(stdout, j, fmt, err, sizeof err) < 0) {
		fprintf(stderr, "canaryctl: %s\n", err);
		return EXIT_FAILED;
	}
	return EXIT_OK;
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
	curl_easy_setopt(c, CURLOPT_USERAGENT, "canaryctl/" CANARYD_VERSION);
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

/* The exit code for an API error status: a refused token (401, 403) is
 * 4 as an unreachable canaryd is, for neither says anything of the
 * rollout; bad input (400, 404: no such canary, 422) is 2; the rest (a
 * conflict with the canary's state, a server error) is 1. */
static int status_exit(long status)
{
	if (status == 401 || status == 403)
		return EXIT_UNREACHABLE;
	if (status == 400 || status == 404 || status == 422)
		return EXIT_USAGE;
	return EXIT_FAILED;
}

/* Prints the API's error for a non-2xx reply <r> and returns the exit code. */
static int report_api_error(const client *cl, const reply *r)
{
	json_t *j = r->body.len ? json_loadb(r->body.p, r->body.len, 0, NULL) : NULL;
	view_escape(j);
	const char *msg = j ? json_string_value(json_object_get(j, "error")) : NULL;
	if (msg)
		fprintf(stderr, "canaryctl: %s\n", msg);
	else
		fprintf(stderr, "canaryctl: '%s' answered HTTP %ld\n", cl->server, r->status);
	if (r->status == 401 || r->status == 403)
		fprintf(stderr, "canaryctl: '%s' refused the request (HTTP %ld): check --token-file\n",
		        cl->server, r->status);
	json_decref(j);
	return status_exit(r->status);
}

/* Makes a call waiting at most <timeout_ms> and decodes its JSON answer
 * into *out (caller decrefs). Returns 0, or the exit code after printing
 * why it failed. */
static int api_json_within(client *cl, const char *method, const char *path,
                           const json_t *body, long timeout_ms, json_t **out)
{
	reply r = { 0, BUF_INIT };
	char err[512];
	*out = NULL;
	if (api_call(cl, method, path, body, timeout_ms, &r, err, sizeof err) < 0) {
		fprintf(stderr, "canaryctl: %s\n", err);
		buf_release(&r.body);
		return EXIT_UNREACHABLE;
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

static int api_json(client *cl, const char *method, const char *path, const json_t *body,
                    json_t **out)
{
	return api_json_within(cl, method, path, body, REQUEST_TIMEOUT_MS, out);
}

/* "/api/v1/canaries/NAME[/SUFFIX]" with NAME escaped. */
static void canary_path(const char *name, const char *suffix, char *out, size_t outlen)
{
	buf esc = BUF_INIT;
	buf_puts(&esc, "");
	buf_url_escape(&esc, name);
	snprintf(out, outlen, "/api/v1/canaries/%s%s%s", esc.p, suffix ? "/" : "",
	         suffix ? suffix : "");
	buf_release(&esc);
}

/* After a 404 for <name>: the nearest canary canaryd has, if any is near,
 * as a hint on stderr (a typo in a pipeline's canary name). */
static void suggest_canary(client *cl, const char *name)
{
	reply r = { 0, BUF_INIT };
	char err[256];
	if (api_call(cl, "GET", "/api/v1/canaries", NULL, VERSION_TIMEOUT_MS, &r, err,
	             sizeof err) == 0 && r.status == 200) {
		json_t *arr = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, NULL);
		size_t n = json_array_size(arr);
		const char **names = xcalloc(n + 1, sizeof *names);
		for (size_t i = 0; i < n; i++)
			names[i] = view_str(json_array_get(arr, i), "name", "");
		const char *near = out_nearest(name, names);
		if (near && util_valid_name(near))
			fprintf(stderr, "canaryctl: did you mean '%s'?\n", near);
		free(names);
		json_decref(arr);
	}
	buf_release(&r.body);
}

/* GET of the canary <name> (<suffix>: NULL or "events"), with a "did you
 * mean" on a 404. */
static int get_canary(client *cl, const char *name, const char *suffix, json_t **out)
{
	char path[512];
	canary_path(name, suffix, path, sizeof path);
	int rc = api_json(cl, "GET", path, NULL, out);
	if (rc == EXIT_USAGE && util_valid_name(name))
		suggest_canary(cl, name);
	return rc;
}

/* ---- argument parsing -------------------------------------------------- */

/* Checks an "-o" value of the commands with json and yaml. Returns 0 with
 * *f, or -1 after a usage error. */
static int output_format(const command *cmd, const char *o, out_format *f)
{
	if (out_parse_format(o, f) == 0)
		return 0;
	usage_error(cmd, "output format '%s' is not one of json, yaml, text", o);
	return -1;
}

/* A duration option <v> of <flag> (NULL: <dflt>) at least <min_ms>.
 * Returns 0 with *ms, or -1 after a usage error. */
static int duration_arg(const command *cmd, const char *flag, const char *v, const char *dflt,
                        uint64_t min_ms, uint64_t *ms)
{
	if (!v)
		v = dflt;
	if (util_parse_duration(v, ms) < 0 || *ms < min_ms || *ms > 366ULL * 86400 * 1000) {
		char m[32];
		util_format_duration(min_ms, m, sizeof m);
		usage_error(cmd, "%s '%s' is not a duration of at least %s (like 30s, 5m)", flag, v, m);
		return -1;
	}
	return 0;
}

/* ---- wait, status, status --watch -------------------------------------- */

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { (time_t)(ms / 1000), (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* What `wait` and `status --watch` follow, and what they have shown. */
typedef struct watch {
	client *cl;
	const char *name;       /* NULL: every canary (status --watch) */
	bool live;              /* a terminal: redraw one block in place */
	long long after;        /* the id of the last event seen */
	bool seen_events;       /* the first read of the events is done */
	json_t *events;         /* the last WATCH_KEPT_EVENTS events, for the block */
	json_t *shown;          /* plain lines of every canary: name -> "phase weight" */
	size_t drawn_rows;      /* terminal rows of the block on screen */
	buf last_block;         /* the block on screen, not redrawn when equal */
} watch;

/* The columns of the terminal on stdout (80 when it does not say). */
static size_t term_cols(void)
{
	struct winsize ws;
	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0)
		return ws.ws_col;
	return 80;
}

/* The terminal rows <text> takes at <cols> columns: a line wider than the
 * terminal wraps. Colour escapes take no column. */
static size_t rows_of(const char *text, size_t cols)
{
	size_t rows = 0, col = 0;
	for (const char *p = text; *p; p++) {
		if (*p == '\033') {
			while (*p && *p != 'm')
				p++;
			if (!*p)
				break;
			continue;
		}
		if (*p == '\n') {
			rows += col == 0 ? 1 : (col + cols - 1) / cols;
			col = 0;
		} else if (((unsigned char)*p & 0xC0) != 0x80) {
			col++;
		}
	}
	if (col)
		rows += (col + cols - 1) / cols;
	return rows;
}

/* Replaces the block on screen with <b>. */
static void redraw(watch *w, const buf *b)
{
	if (w->last_block.len == b->len && b->len && memcmp(w->last_block.p, b->p, b->len) == 0)
		return;
	if (w->drawn_rows)
		printf("\033[%zuA\r\033[J", w->drawn_rows);
	fwrite(b->p, 1, b->len, stdout);
	fflush(stdout);
	w->drawn_rows = rows_of(b->p ? b->p : "", term_cols());
	buf_reset(&w->last_block);
	buf_append(&w->last_block, b->p, b->len);
}

/* Takes the new events <arr> of the canary: prints them as lines (not a
 * terminal) and keeps the last ones for the block. On the first read,
 * the lines start at the last rollout's start: a pipeline's log shows the
 * rollout it waits for, not the canary's whole past. */
static void watch_events(watch *w, json_t *arr)
{
	size_t n = json_array_size(arr), from = 0;
	if (!w->seen_events) {
		from = n;
		for (size_t i = n; i-- > 0;)
			if (strcmp(view_str(json_array_get(arr, i), "type", ""), "rollout-started") == 0) {
				from = i;
				break;
			}
		/* a rollout that sits for days (a mirrored canary) has thousands:
		 * the last ones, and where the rest are */
		if (!w->live && n - from > WATCH_BACKLOG_EVENTS) {
			printf("(%zu earlier events of this rollout: canaryctl history %s)\n",
			       n - from - WATCH_BACKLOG_EVENTS, w->name);
			from = n - WATCH_BACKLOG_EVENTS;
		}
		w->seen_events = true;
	}
	buf b = BUF_INIT;
	for (size_t i = 0; i < n; i++) {
		json_t *ev = json_array_get(arr, i);
		long long id = view_int(ev, "id");
		if (id > w->after)
			w->after = id;
		json_array_append(w->events, ev);
		if (!w->live && i >= from)
			view_event_line(&b, ev, w->cl->color);
	}
	while (json_array_size(w->events) > WATCH_KEPT_EVENTS)
		json_array_remove(w->events, 0);
	if (b.len) {
		fwrite(b.p, 1, b.len, stdout);
		fflush(stdout);
	}
	buf_release(&b);
}

/* Not a terminal, every canary: a line for each canary whose phase or
 * weight changed since the last poll. */
static void watch_lines(watch *w, const json_t *arr)
{
	size_t i;
	json_t *st;
	json_array_foreach(arr, i, st) {
		char now[128], ts[40];
		const char *name = view_str(st, "name", "-");
		snprintf(now, sizeof now, "%s %lld %lld", view_str(st, "phase", "-"),
		         view_int(st, "canaryWeight"), view_int(st, "failedChecks"));
		const char *was = view_str(w->shown, name, NULL);
		if (was && strcmp(was, now) == 0)
			continue;
		json_object_set_new(w->shown, name, json_string(now));
		util_rfc3339(util_wall_ms(), ts, sizeof ts);
		printf("%s %s %s weight=%lld failed=%lld %s\n", ts, name, view_str(st, "phase", "-"),
		       view_int(st, "canaryWeight"), view_int(st, "failedChecks"),
		       view_str(st, "message", ""));
	}
	fflush(stdout);
}

/* The live block: one canary in detail, or the table of every canary. */
static void watch_draw(watch *w, const json_t *st, const char *footer)
{
	buf b = BUF_INIT;
	if (w->name) {
		view_detail(&b, st, w->events, WATCH_RECENT_EVENTS, w->cl->color, util_wall_ms());
	} else {
		char *text = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&text, &len);
		if (f) {
			view_status_table(f, st, w->cl->color);
			fclose(f);
			buf_append(&b, text, len);
			free(text);
		}
	}
	if (footer)
		buf_printf(&b, "%s%s%s\n", out_sgr(w->cl->color, OUT_DIM), footer,
		           out_sgr_end(w->cl->color, OUT_DIM));
	redraw(w, &b);
	buf_release(&b);
}

/* One poll: the status of what is watched into *st, and the new events.
 * Returns 0, -1 when canaryd could not be reached (<err>), or an exit
 * code after printing the API's error. */
static int watch_poll(watch *w, long timeout_ms, json_t **st, char *err, size_t errlen)
{
	char path[512];
	if (w->name)
		canary_path(w->name, NULL, path, sizeof path);
	else
		snprintf(path, sizeof path, "/api/v1/canaries");
	reply r = { 0, BUF_INIT };
	*st = NULL;
	if (api_call(w->cl, "GET", path, NULL, timeout_ms, &r, err, errlen) < 0) {
		buf_release(&r.body);
		return -1;
	}
	if (r.status != 200) {
		int rc = report_api_error(w->cl, &r);
		buf_release(&r.body);
		return rc;
	}
	*st = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, NULL);
	buf_release(&r.body);
	if (!*st) {
		fprintf(stderr, "canaryctl: '%s' answered with invalid JSON\n", w->cl->server);
		return EXIT_FAILED;
	}
	view_escape(*st);
	if (!w->name)
		return 0;
	char q[64];
	snprintf(q, sizeof q, "events?after=%lld", w->after);
	canary_path(w->name, q, path, sizeof path);
	buf_reset(&r.body);
	if (api_call(w->cl, "GET", path, NULL, timeout_ms, &r, err, errlen) == 0 &&
	    r.status == 200) {
		json_t *arr = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, NULL);
		view_escape(arr);
		watch_events(w, arr);
		json_decref(arr);
	}
	buf_release(&r.body);
	return 0;
}

/* Follows <name> (NULL: every canary) every <interval_ms> for at most
 * <timeout_ms>. With <until_end>, returns as the rollout ends: 0
 * Succeeded, 1 Failed; at the timeout 3. <watching> (status --watch):
 * 0 at the end and at the timeout alike. The first
 * call must reach canaryd (4 if not); later failures (a canaryd
 * restarting) are retried until the timeout, since a restarted canaryd
 * resumes its rollouts. */
static int follow(client *cl, const char *name, uint64_t interval_ms, uint64_t timeout_ms,
                  bool until_end, bool watching)
{
	watch w = { .cl = cl, .name = name, .live = cl->tty, .events = json_array(),
	            .shown = json_object(), .last_block = BUF_INIT };
	uint64_t deadline = util_mono_ms() + timeout_ms;
	bool reached = false, warned = false;
	char last_phase[64] = "unknown", err[512] = "", tmo[32];
	long long last_weight = 0;
	int rc = -1;
	util_format_duration(timeout_ms, tmo, sizeof tmo);
	while (rc < 0) {
		uint64_t now = util_mono_ms();
		long left = now < deadline ? (long)(deadline - now) : 0;
		long per_call = left < REQUEST_TIMEOUT_MS ? (left > 100 ? left : 100) : REQUEST_TIMEOUT_MS;
		json_t *st = NULL;
		int prc = watch_poll(&w, per_call, &st, err, sizeof err);
		if (prc < 0 && !reached) {
			fprintf(stderr, "canaryctl: %s\n", err);
			rc = EXIT_UNREACHABLE;
			break;
		} else if (prc < 0) {
			if (!warned)
				fprintf(stderr, "canaryctl: %s; retrying\n", err);
			warned = true;
		} else if (prc > 0) {
			rc = prc;
			break;
		} else {
			reached = true;
			warned = false;
			const char *phase = name ? view_str(st, "phase", "unknown") : "";
			snprintf(last_phase, sizeof last_phase, "%s", phase);
			last_weight = name ? view_int(st, "canaryWeight") : 0;
			bool ended = strcmp(phase, "Succeeded") == 0 || strcmp(phase, "Failed") == 0;
			if (w.live) {
				char footer[160];
				snprintf(footer, sizeof footer, "%s: every %lldms for up to %s",
				         until_end ? "waiting" : "watching", (long long)interval_ms, tmo);
				watch_draw(&w, st, until_end && ended ? NULL : footer);
			} else if (!name) {
				watch_lines(&w, st);
			}
			if (until_end && ended) {
				char rev[256];
				view_revisions(st, rev, sizeof rev);
				printf("%s %s %s: %s\n", view_str(st, "name", name), phase, rev,
				       view_str(st, "message", ""));
				/* watching, the end is what was watched, whichever it is */
				rc = watching || strcmp(phase, "Succeeded") == 0 ? EXIT_OK : EXIT_FAILED;
			}
		}
		json_decref(st);
		if (rc >= 0)
			break;
		now = util_mono_ms();
		if (now >= deadline) {
			if (watching) {
				rc = EXIT_OK;
				break;
			}
			fprintf(stderr, "canaryctl: timed out after %s waiting for '%s' (phase %s, "
			        "canary weight %lld)%s%s\n", tmo, name ? name : "every canary", last_phase,
			        last_weight, warned ? ": " : "", warned ? err : "");
			rc = EXIT_TIMEOUT;
			break;
		}
		sleep_ms(deadline - now < interval_ms ? deadline - now : interval_ms);
	}
	fflush(stdout);
	json_decref(w.events);
	json_decref(w.shown);
	buf_release(&w.last_block);
	return rc;
}

static int cmd_wait(client *cl, const command *cmd, int argc, char **argv)
{
	const char *tmo = NULL, *iv = NULL, *pos[1];
	const option opts[] = {
		{ "--timeout", NULL, &tmo, NULL },
		{ "--interval", NULL, &iv, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	if (n == 0)
		return usage_error(cmd, "'wait' needs the name of a canary");
	uint64_t timeout_ms, interval_ms;
	if (duration_arg(cmd, "--timeout", tmo, WAIT_DEFAULT_TIMEOUT, 1, &timeout_ms) < 0 ||
	    duration_arg(cmd, "--interval", iv, WATCH_DEFAULT_INTERVAL, 50, &interval_ms) < 0)
		return EXIT_USAGE;
	return follow(cl, pos[0], interval_ms, timeout_ms, true, false);
}

static int cmd_status(client *cl, const command *cmd, int argc, char **argv)
{
	const char *out = NULL, *tmo = NULL, *iv = NULL, *pos[1];
	bool watch_flag = false;
	const option opts[] = {
		{ "-o", "--output", &out, NULL },
		{ "--watch", "-w", NULL, &watch_flag },
		{ "--timeout", NULL, &tmo, NULL },
		{ "--interval", NULL, &iv, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	out_format fmt;
	if (n < 0 || output_format(cmd, out, &fmt) < 0)
		return EXIT_USAGE;
	if (watch_flag) {
		if (fmt != OUT_TEXT)
			return usage_error(cmd, "--watch shows text: it does not go with -o %s", out);
		uint64_t timeout_ms, interval_ms;
		if (duration_arg(cmd, "--timeout", tmo, WATCH_DEFAULT_TIMEOUT, 1, &timeout_ms) < 0 ||
		    duration_arg(cmd, "--interval", iv, WATCH_DEFAULT_INTERVAL, 50, &interval_ms) < 0)
			return EXIT_USAGE;
		return follow(cl, n == 1 ? pos[0] : NULL, interval_ms, timeout_ms, n == 1, true);
	}
	if (tmo || iv)
		return usage_error(cmd, "--timeout and --interval go with --watch");
	json_t *j;
	int rc;
	if (n == 1) {
		rc = get_canary(cl, pos[0], NULL, &j);
	} else {
		rc = api_json(cl, "GET", "/api/v1/canaries", NULL, &j);
	}
	if (rc)
		return rc;
	if (fmt != OUT_TEXT) {
		rc = print_as(j, fmt);
	} else {
		view_escape(j);
		if (json_is_array(j)) {
			view_status_table(stdout, j, cl->color);
		} else {
			json_t *arr = json_array();
			json_array_append(arr, j);
			view_status_table(stdout, arr, cl->color);
			json_decref(arr);
		}
	}
	json_decref(j);
	return rc;
}

/* ---- commands ---------------------------------------------------------- */

static const command *find_command(const char *name)
{
	for (const command *c = commands; c->name; c++)
		if (strcmp(c->name, name) == 0)
			return c;
	return NULL;
}

/* "unknown command 'X'", with the nearest command when one is near. */
static int unknown_command(const char *name)
{
	const char *names[64];
	size_t n = 0;
	for (const command *c = commands; c->name && n < 63; c++)
		names[n++] = c->name;
	names[n] = NULL;
	const char *near = out_nearest(name, names);
	if (near)
		return usage_error(NULL, "unknown command '%s'; did you mean '%s'?", name, near);
	return usage_error(NULL, "unknown command '%s'", name);
}

static int cmd_help(client *cl, const command *cmd, int argc, char **argv)
{
	if (argc > 0) {
		const command *c = find_command(argv[0]);
		if (!c)
			return unknown_command(argv[0]);
		print_command_help(stdout, c);
		return EXIT_OK;
	}
	print_usage(stdout);
	return EXIT_OK;
}

static int cmd_version(client *cl, const command *cmd, int argc, char **argv)
{
	const char *out = NULL, *pos[1];
	const option opts[] = { { "-o", "--output", &out, NULL }, { NULL, NULL, NULL, NULL } };
	out_format fmt;
	if (parse_args(cmd, argc, argv, opts, pos, 0) < 0 || output_format(cmd, out, &fmt) < 0)
		return EXIT_USAGE;
	/* canaryd's version is extra: an unreachable one is said, not an error,
	 * and the call is short so that `version` never hangs */
	reply r = { 0, BUF_INIT };
	char err[512] = "";
	json_t *v = NULL;
	if (api_call(cl, "GET", "/api/v1/version", NULL, VERSION_TIMEOUT_MS, &r, err,
	             sizeof err) == 0) {
		if (r.status == 200)
			v = json_loadb(r.body.p ? r.body.p : "", r.body.len, 0, NULL);
		else
			snprintf(err, sizeof err, "'%s' answered HTTP %ld to /api/v1/version", cl->server,
			         r.status);
	}
	buf_release(&r.body);
	const char *dv = view_str(v, "version", NULL);
	if (v && !dv)
		snprintf(err, sizeof err, "'%s' gave no version", cl->server);
	int rc = EXIT_OK;
	if (fmt != OUT_TEXT) {
		json_t *o = json_pack("{s:s, s:s?, s:s}", "canaryctl", CANARYD_VERSION, "canaryd", dv,
		                      "server", cl->server);
		rc = print_as(o, fmt);
		json_decref(o);
	} else {
		printf("canaryctl %s\n", CANARYD_VERSION);
		if (dv) {
			json_t *s = json_string(dv);
			view_escape(s);
			printf("canaryd %s (%s)\n", json_string_value(s), cl->server);
			json_decref(s);
		}
	}
	if (!dv)
		fprintf(stderr, "canaryctl: canaryd's version unknown: %s\n", err);
	json_decref(v);
	return rc;
}

static int cmd_list(client *cl, const command *cmd, int argc, char **argv)
{
	const char *out = NULL, *pos[1];
	const option opts[] = { { "-o", "--output", &out, NULL }, { NULL, NULL, NULL, NULL } };
	if (parse_args(cmd, argc, argv, opts, pos, 0) < 0)
		return EXIT_USAGE;
	/* -o name: one name a line, for scripts and the shell completion */
	bool names = out && strcmp(out, "name") == 0;
	out_format fmt = OUT_TEXT;
	if (!names && out_parse_format(out, &fmt) < 0)
		return usage_error(cmd, "output format '%s' is not one of json, yaml, name, text", out);
	json_t *j;
	int rc = api_json(cl, "GET", "/api/v1/canaries", NULL, &j);
	if (rc)
		return rc;
	if (fmt != OUT_TEXT) {
		rc = print_as(j, fmt);
	} else {
		view_escape(j);
		if (names) {
			size_t i;
			json_t *st;
			json_array_foreach(j, i, st)
				printf("%s\n", view_str(st, "name", "-"));
		} else {
			view_list_table(stdout, j, cl->color, util_wall_ms());
		}
	}
	json_decref(j);
	return rc;
}

static int cmd_history(client *cl, const command *cmd, int argc, char **argv)
{
	const char *out = NULL, *pos[1];
	const option opts[] = { { "-o", "--output", &out, NULL }, { NULL, NULL, NULL, NULL } };
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	out_format fmt;
	if (n < 0 || output_format(cmd, out, &fmt) < 0)
		return EXIT_USAGE;
	if (n == 0)
		return usage_error(cmd, "'history' needs the name of a canary");
	json_t *j;
	int rc = get_canary(cl, pos[0], "events", &j);
	if (rc)
		return rc;
	if (fmt != OUT_TEXT) {
		rc = print_as(j, fmt);
	} else {
		view_escape(j);
		view_events(stdout, j, cl->color);
	}
	json_decref(j);
	return rc;
}

/* A --since/--until value: a duration ("2h": that long ago) becomes an RFC
 * 3339 time; anything else goes to canaryd as it is, which checks it. */
static void audit_time_param(buf *q, const char *key, const char *v)
{
	uint64_t ago;
	char when[40];
	if (util_parse_duration(v, &ago) == 0) {
		uint64_t now = util_wall_ms();
		util_rfc3339(ago < now ? now - ago : 0, when, sizeof when);
		v = when;
	}
	buf_printf(q, "&%s=", key);
	buf_url_escape(q, v);
}

/* audit verify [NAME]: exit 0 every chain intact, 1 one is not. */
static int audit_verify(client *cl, const char *name, bool json)
{
	json_t *j;
	int rc;
	if (name) {
		char path[512];
		canary_path(name, "audit/verify", path, sizeof path);
		rc = api_json(cl, "GET", path, NULL, &j);
		if (rc == EXIT_USAGE && util_valid_name(name))
			suggest_canary(cl, name);
	} else {
		rc = api_json(cl, "GET", "/api/v1/audit/verify", NULL, &j);
	}
	if (rc)
		return rc;
	json_t *each = name ? json_pack("[O]", j) : json_incref(json_object_get(j, "canaries"));
	int intact = 1;
	size_t i;
	json_t *v;
	json_array_foreach(each, i, v)
		intact = intact && json_is_true(json_object_get(v, "intact"));
	if (json) {
		print_json(j);
	} else {
		view_escape(each);
		if (json_array_size(each) == 0)
			printf("the audit holds no events\n");
		json_array_foreach(each, i, v)
			printf("%s: %s: %s\n", view_str(v, "canary", "-"),
			       json_is_true(json_object_get(v, "intact")) ? "intact" : "BROKEN",
			       view_str(v, "message", ""));
	}
	json_decref(each);
	json_decref(j);
	return intact ? EXIT_OK : EXIT_FAILED;
}

/* audit export NAME: the answer's bytes as they are, on stdout. */
static int audit_export(client *cl, const command *cmd, const char *name, const char *format,
                        const char *since, const char *until)
{
	if (format && strcmp(format, "json") != 0 && strcmp(format, "ndjson") != 0 &&
	    strcmp(format, "csv") != 0)
		return usage_error(cmd, "format '%s' is not one of json, ndjson, csv", format);
	buf q = BUF_INIT;
	char path[512];
	canary_path(name, "audit/export", path, sizeof path);
	buf_printf(&q, "%s?format=%s", path, format ? format : "json");
	if (since)
		audit_time_param(&q, "since", since);
	if (until)
		audit_time_param(&q, "until", until);
	reply r = { 0, BUF_INIT };
	char err[512];
	int rc = EXIT_OK;
	if (api_call(cl, "GET", q.p, NULL, AUDIT_EXPORT_TIMEOUT_MS, &r, err, sizeof err) < 0) {
		fprintf(stderr, "canaryctl: %s\n", err);
		rc = EXIT_UNREACHABLE;
	} else if (r.status < 200 || r.status > 299) {
		rc = report_api_error(cl, &r);
		if (rc == EXIT_USAGE && r.status == 404 && util_valid_name(name))
			suggest_canary(cl, name);
	} else if (r.body.len && fwrite(r.body.p, 1, r.body.len, stdout) != r.body.len) {
		fprintf(stderr, "canaryctl: cannot write the export: %s\n", strerror(errno));
		rc = EXIT_FAILED;
	}
	buf_release(&r.body);
	buf_release(&q);
	return rc;
}

static int cmd_audit(client *cl, const command *cmd, int argc, char **argv)
{
	const char *out = NULL, *format = NULL, *since = NULL, *until = NULL, *pos[2];
	const option opts[] = {
		{ "-o", "--output", &out, NULL },
		{ "--format", NULL, &format, NULL },
		{ "--since", NULL, &since, NULL },
		{ "--until", NULL, &until, NULL },
		{ NULL, NULL, NULL, NULL },
	};
	int n = parse_args(cmd, argc, argv, opts, pos, 2);
	if (n < 0)
		return EXIT_USAGE;
	if (n == 0)
		return usage_error(cmd, "'audit' needs 'verify' or 'export'");
	if (strcmp(pos[0], "verify") == 0) {
		if (format || since || until)
			return usage_error(cmd, "--format, --since and --until are for 'audit export'");
		int json = output_json(cmd, out);
		if (json < 0)
			return EXIT_USAGE;
		return audit_verify(cl, n > 1 ? pos[1] : NULL, json == 1);
	}
	if (strcmp(pos[0], "export") == 0) {
		if (out)
			return usage_error(cmd, "'audit export' takes --format, not -o");
		if (n < 2)
			return usage_error(cmd, "'audit export' needs the name of a canary");
		return audit_export(cl, cmd, pos[1], format, since, until);
	}
	static const char *const subs[] = { "verify", "export", NULL };
	const char *near = out_nearest(pos[0], subs);
	if (near)
		return usage_error(cmd, "no audit command '%s'; did you mean '%s'?", pos[0], near);
	return usage_error(cmd, "no audit command '%s' (verify, export)", pos[0]);
}

static int cmd_get(client *cl, const command *cmd, int argc, char **argv)
{
	const char *out = NULL, *pos[1];
	const option opts[] = { { "-o", "--output", &out, NULL }, { NULL, NULL, NULL, NULL } };
	int n = parse_args(cmd, argc, argv, opts, pos, 1);
	out_format fmt;
	if (n < 0 || output_format(cmd, out, &fmt) < 0)
		return EXIT_USAGE;
	if (n == 0)
		return usage_error(cmd, "'get' needs the name of a canary");
	json_t *st, *ev;
	int rc = get_canary(cl, pos[0], NULL, &st);
	if (rc)
		return rc;
	rc = get_canary(cl, pos[0], "events", &ev);
	if (rc) {
		json_decref(st);
		return rc;
	}
	if (fmt != OUT_TEXT) {
		/* the status object as the API gives it, and the last check */
		json_t *chk = json_null();
		for (size_t i = json_array_size(ev); i-- > 0;) {
			json_t *e = json_array_get(ev, i);
			if (strcmp(view_str(e, "type", ""), "check") == 0) {
				chk = json_incref(e);
				break;
			}
		}
		json_object_set_new(st, "lastCheck", chk);
		rc = print_as(st, fmt);
	} else {
		view_escape(st);
		view_escape(ev);
		buf b = BUF_INIT;
		view_detail(&b, st, ev, 10, cl->color, util_wall_ms());
		fwrite(b.p, 1, b.len, stdout);
		buf_release(&b);
	}
	json_decref(st);
	json_decref(ev);
	return rc;
}

/* Posts <body> (stolen; may be NULL) to the <action> of <name> and prints
 * what the canary now is. */
static int post_action(client *cl, const char *name, const char *action, json_t *body,
                       const char *done)
{
	char path[512];
	canary_path(name, action, path, sizeof path);
	json_t *j;
	int rc = api_json(cl, "POST", path, body, &j);
	json_decref(body);
	if (rc == EXIT_USAGE && util_valid_name(name))
		suggest_canary(cl, name);
	if (rc)
		return rc;
	view_escape(j);
	printf("%s: %s (phase %s, canary weight %lld)\n", name, done, view_str(j, "phase", "-"),
	       view_int(j, "canaryWeight"));
	json_decref(j);
	return EXIT_OK;
}

/* Parses NAME and, for the actions with one, --reason TEXT. */
static int name_reason(const command *cmd, int argc, char **argv, const char **name,
                       const char **reason)
{
	const char *pos[1];
	const option with_reason[] = { { "--reason", NULL, reason, NULL },
	                               { NULL, NULL, NULL, NULL } };
	int n = parse_args(cmd, argc, argv, reason ? with_reason : NULL, pos, 1);
	if (n < 0)
		return -1;
	if (n == 0) {
		usage_error(cmd, "'%s' needs the name of a canary", cmd->name);
		return -1;
	}
	if (reason && *reason && !**reason) {
		usage_error(cmd, "--reason needs a text");
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
	json_t *body = json_pack("{s:s}", "revision", rev);
	if (eps) {
		json_t *arr = json_array();
		const char *p = eps;
		for (;;) {
			size_t l = strcspn(p, ",");
			char ep[512], host[256];
			int port;
			if (l == 0 || l >= sizeof ep) {
				json_decref(arr);
				json_decref(body);
				return usage_error(cmd, "endpoints '%s': expected HOST:PORT[,...]", eps);
			}
			memcpy(ep, p, l);
			ep[l] = '\0';
			if (util_parse_hostport(ep, host, sizeof host, &port) < 0) {
				json_decref(arr);
				json_decref(body);
				return usage_error(cmd, "endpoint '%s' is not HOST:PORT", ep);
			}
			json_array_append_new(arr, json_string(ep));
			if (!p[l])
				break;
			p += l + 1;
		}
		json_object_set_new(body, "endpoints", arr);
	}
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

/* approve, abort, retry, undo (each with --reason): a POST of the action. */
static int cmd_action(client *cl, const command *cmd, int argc, char **argv)
{
	static const struct {
		const char *action;
		bool reason;
		const char *done;
	} rows[] = {
		{ "approve", true, "approved" },
		{ "abort", true, "aborted, all traffic to stable" },
		{ "retry", true, "rollout started again" },
		{ "undo", true, "undone, all traffic back to the previous stable" },
	};
	for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
		if (strcmp(rows[i].action, cmd->name) != 0)
			continue;
		const char *name, *reason = NULL;
		if (name_reason(cmd, argc, argv, &name, rows[i].reason ? &reason : NULL) < 0)
			return EXIT_USAGE;
		json_t *body = json_object();
		if (reason)
			json_object_set_new(body, "reason", json_string(reason));
		return post_action(cl, name, cmd->name, body, rows[i].done);
	}
	return usage_error(cmd, "no action '%s'", cmd->name);
}

/* pause and resume are idempotent from the user's view: pausing a paused
 * canary says so and succeeds. canaryd answers such a call with 200 and
 * the status; whether it changed anything is its "changed" member when it
 * has one, else what the phase was just before the call. */
static int cmd_pause_resume(client *cl, const command *cmd, int argc, char **argv)
{
	const char *name;
	if (name_reason(cmd, argc, argv, &name, NULL) < 0)
		return EXIT_USAGE;
	bool pause = strcmp(cmd->name, "pause") == 0;
	json_t *before;
	int rc = get_canary(cl, name, NULL, &before);
	if (rc)
		return rc;
	bool was_paused = strcmp(view_str(before, "phase", ""), "Paused") == 0;
	json_decref(before);
	char path[512];
	canary_path(name, cmd->name, path, sizeof path);
	json_t *j;
	json_t *body = json_object();
	rc = api_json(cl, "POST", path, body, &j);
	json_decref(body);
	if (rc)
		return rc;
	view_escape(j);
	const json_t *changed = json_object_get(j, "changed");
	bool already = json_is_boolean(changed) ? json_is_false(changed) : was_paused == pause;
	const char *phase = view_str(j, "phase", "-");
	long long w = view_int(j, "canaryWeight");
	if (already && pause)
		printf("%s is already paused (canary weight %lld)\n", name, w);
	else if (already)
		printf("%s is not paused: nothing to resume (phase %s, canary weight %lld)\n", name,
		       phase, w);
	else
		printf("%s: %s (phase %s, canary weight %lld)\n", name, pause ? "paused" : "resumed",
		       phase, w);
	json_decref(j);
	return EXIT_OK;
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
		if (s[i] < '0' || s[i] > '9')
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

static int cmd_completion(client *cl, const command *cmd, int argc, char **argv)
{
	const char *pos[1];
	int n = parse_args(cmd, argc, argv, NULL, pos, 1);
	if (n < 0)
		return EXIT_USAGE;
	if (n == 0)
		return usage_error(cmd, "'completion' needs a shell: bash or zsh");
	buf b = BUF_INIT;
	const char *shells[] = { "bash", "zsh", NULL };
	if (strcmp(pos[0], "bash") == 0) {
		completion_bash(&b, commands, global_flags);
	} else if (strcmp(pos[0], "zsh") == 0) {
		completion_zsh(&b, commands, global_flags);
	} else {
		const char *near = out_nearest(pos[0], shells);
		return usage_error(cmd, "no completion for the shell '%s'%s%s%s (bash, zsh)", pos[0],
		                   near ? "; did you mean '" : "", near ? near : "", near ? "'?" : "");
	}
	fwrite(b.p, 1, b.len, stdout);
	buf_release(&b);
	return EXIT_OK;
}

/* The commands: name, usage, brief (for `canaryctl help`), help (for
 * `canaryctl help NAME`, wrapped to 80 columns), options (for the shell
 * completion), handler. */
static const command commands[] = {
	{ "status", "[NAME] [-o json|yaml] [--watch [--interval DUR] [--timeout DUR]]",
	  "one line per canary: phase, weight, failed checks, revisions",
	  "One line per canary (or NAME): phase, canary weight, failed checks, revisions, "
	  "message; -o json|yaml: the API's status objects. --watch follows it live: on a "
	  "terminal one block redrawn in place (with NAME: its steps, gates and last check, "
	  "each metric's value against its threshold), else a line per event (NAME) or per "
	  "change of a canary; it polls every --interval (500ms) and stops when NAME's "
	  "rollout ends or after --timeout (1h), exit 0.",
	  "-o --output --watch -w --interval --timeout", cmd_status },
	{ "list", "[-o json|yaml|name]", "the canaries, one a line",
	  "The canaries, one a line: name, phase, canary weight, stable and canary revisions, "
	  "failed checks, and the age of the last transition. -o name prints only the names.",
	  "-o --output", cmd_list },
	{ "get", "NAME [-o json|yaml]", "one canary in detail: steps, gates, last checks",
	  "One canary in detail: phase, revisions, weights and steps (the current one marked), "
	  "gates and approval, the sequential judge's evidence, the last check with each "
	  "metric's value against its threshold, and the last events. -o json|yaml: the "
	  "status object with the last check event as \"lastCheck\".",
	  "-o --output", cmd_get },
	{ "rollout", "NAME --revision REV [--endpoints HOST:PORT[,...]]",
	  "start a new canary of NAME",
	  "Start a new canary of NAME at revision REV, on these endpoints (host names or "
	  "addresses; default: the canary's endpoints it has).",
	  "--revision --endpoints", cmd_rollout },
	{ "wait", "NAME [--timeout DUR] [--interval DUR]", "block until the rollout of NAME ends",
	  "Block until the rollout of NAME ends: exit 0 Succeeded, 1 Failed (rolled back), "
	  "3 after --timeout (default " WAIT_DEFAULT_TIMEOUT "), 4 canaryd unreachable. On a "
	  "terminal it shows each step and check live in one block; else a line per event, "
	  "from the start of the rollout. It polls every --interval (500ms).",
	  "--timeout --interval", cmd_wait },
	{ "promote", "NAME [--full]", "pass the current gate or pause",
	  "Pass the current gate or pause; --full promotes now, skipping the remaining steps.",
	  "--full", cmd_promote },
	{ "approve", "NAME [--reason TEXT]", "pass a pending approval gate",
	  "Pass the pending approval gate of NAME by hand, audited with you as the actor and "
	  "the reason.",
	  "--reason", cmd_action },
	{ "abort", "NAME [--reason TEXT]", "manual rollback: 100% to stable now",
	  "Manual rollback: 100% of the traffic to stable now, recorded as an abort (not as "
	  "an automatic rollback), with the reason.",
	  "--reason", cmd_action },
	{ "retry", "NAME [--reason TEXT]", "start the failed rollout of NAME again",
	  "Start the failed rollout of NAME again, with the same revision and endpoints, "
	  "audited with you as the actor and the reason.",
	  "--reason", cmd_action },
	{ "undo", "NAME [--reason TEXT]", "100% back to the previous stable now",
	  "After a promotion, within the undo window: send 100% of the traffic back to the "
	  "previous stable revision now, audited with you as the actor and the reason.",
	  "--reason", cmd_action },
	{ "pause", "NAME", "hold the analysis at the current weight",
	  "Hold the analysis at the current weight. Pausing a paused canary says so and "
	  "succeeds.",
	  "", cmd_pause_resume },
	{ "resume", "NAME", "continue the analysis",
	  "Continue the analysis. Resuming a canary that is not paused says so and succeeds.",
	  "", cmd_pause_resume },
	{ "set-weight", "NAME PERCENT", "manual traffic override (0..100)",
	  "Manual traffic override (0..100); the analysis is paused while it holds.",
	  "", cmd_set_weight },
	{ "history", "NAME [-o json|yaml]", "the audit events of NAME, oldest first",
	  "The audit events of NAME, oldest first; under a check, each metric's value, its "
	  "range and pass, FAIL or held.",
	  "-o --output", cmd_history },
	{ "audit", "verify [NAME] [-o json] | export NAME [--format json|ndjson|csv] "
	  "[--since T] [--until T]",
	  "check the audit's hash chain, or export it",
	  "verify: walk the hash chain of NAME's audit (of every canary without NAME) and "
	  "name the first event altered, missing or reordered: exit 0 intact, 1 not. "
	  "export: NAME's events with their hashes, times in UTC and in Europe/London (GMT "
	  "or BST), as json (default), ndjson or csv; --since (inclusive) and --until "
	  "(exclusive) take RFC 3339 times (2026-03-29T01:00:00Z), dates (UTC) or durations "
	  "ago (2h). See docs/audit.md.",
	  "-o --output --format --since --until", cmd_audit },
	{ "simulate", "-f FILE|DIR [NAME] [--rps N] [--rps-change-at DUR --rps-after N [--rps-ramp DUR]] "
	  "[--stable-error-rate P] [--canary-error-rate P] [--change-at DUR --canary-error-rate-after P] "
	  "[--stable-change-at DUR --stable-error-rate-after P] "
	  "[--outage-at DUR --outage-for DUR --outage-error-rate P] [--burst-size N] "
	  "[--latency-ms MS] [--canary-latency-ms MS] [--canary-warmup DUR [--canary-warmup-factor X]] "
	  "[--canary-tail-factor X [--canary-tail-share P]] "
	  "[--rules canaryd|flagger|argo [--failure-limit N] [--consecutive-error-limit N]] "
	  "[--data CSV [--replay weights|recorded]] [--runs N] [--seed S] [--limit DUR] [-o json]",
	  "offline: run a rollout policy against synthetic traffic",
	  "Offline: run NAME's rollout policy against synthetic (or --data recorded) traffic and "
	  "report the outcome and time to decision; rates as fractions (0.005) or percentages (0.5%); "
	  "times from the rollout's start; --canary-latency-ms is the canary's extra median latency "
	  "over --latency-ms (50); --burst-size N: each version's failures come N requests at a time "
	  "at its long-run rate; --outage-*: both versions fail at P (default 100%) for DUR; "
	  "--canary-warmup: the canary X (2) times slower for DUR; --canary-tail-factor: its slowest "
	  "P (2%) of requests X times slower (p99 x X, median unchanged); --rules: Flagger's or Argo "
	  "Rollouts' rules on the same traffic (failureLimit 0, consecutiveErrorLimit 4); "
	  "--replay: the recording's requests split at the engine's weight (default) or as recorded; "
	  "defaults 200 req/s, 0.5% errors, 1 run, seed 1, --limit 30m (see docs/simulate.md)",
	  "-f --file --rps --rps-after --rps-change-at --rps-ramp --stable-error-rate "
	  "--stable-error-rate-after --stable-change-at --canary-error-rate --canary-error-rate-after "
	  "--outage-at --outage-for --outage-error-rate --burst-size --canary-latency-ms --latency-ms "
	  "--canary-warmup --canary-warmup-factor --canary-tail-factor --canary-tail-share --rules "
	  "--failure-limit --consecutive-error-limit --runs --seed --data --replay --change-at "
	  "--limit -o --output", cmd_simulate },
	{ "render", "-f FILE|DIR [NAME] (--weight W | --iteration) [--mirror] [--cookie V] "
	  "[--primary-cookie V] [--provider P] [-o yaml|json]",
	  "offline: print the Kubernetes router objects",
	  "Offline: print the Kubernetes router objects of NAME (Istio, Gateway API, SMI) as "
	  "Flagger v1.44.0 renders them at canary weight W, or at an A/B or blue/green "
	  "iteration; --mirror: the mirror step; --cookie: the session-affinity cookie value; "
	  "--provider overrides spec.provider (see docs/routers.md)",
	  "-f --file --weight --iteration --mirror --cookie --primary-cookie --provider -o --output",
	  cmd_render },
	{ "query", "-f FILE [NAME] [--metrics-server URL] [-o json]",
	  "offline: read each metric now, as canaryd would",
	  "Offline: read each metric of NAME now, as canaryd would (its provider, query and "
	  "windows), and print the query as sent and the value (the canary's; stable's too "
	  "for a relative threshold or a baseline): exit 0 when every value was read, 1 when "
	  "one was not",
	  "-f --file --metrics-server -o --output", cmd_query },
	{ "version", "[-o json|yaml]", "the versions of canaryctl and canaryd",
	  "The version of canaryctl and, when it answers, of canaryd (GET /api/v1/version).",
	  "-o --output", cmd_version },
	{ "completion", "bash|zsh", "print the shell completion script",
	  "Print the completion script of bash or zsh: 'source <(canaryctl completion bash)', "
	  "or install it as completions/ of the source tree has it.",
	  "", cmd_completion },
	{ "help", "[COMMAND]", "this help, or the usage of COMMAND",
	  "This help, or the usage of COMMAND.", "", cmd_help },
	{ NULL, NULL, NULL, NULL, NULL, NULL },
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

static int run(char **rest, int nrest, const char *server, const char *token_file,
               bool no_color);

int main(int argc, char **argv)
{
	const char *server = getenv("CANARYD_SERVER");
	const char *token_file = NULL;
	bool no_color = false;
	if (!server || !*server)
		server = DEFAULT_SERVER;

	/* --server, --token-file and --no-color may come anywhere before "--",
	 * as kubectl's global flags do; what is left is the command and its
	 * arguments */
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
		if (strcmp(a, "--no-color") == 0) {
			no_color = true;
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
	int rc = run(rest, nrest, server, token_file, no_color);
	free(rest);
	return rc;
}

/* Runs the command rest[0] with its arguments. */
static int run(char **rest, int nrest, const char *server, const char *token_file,
               bool no_color)
{
	if (nrest == 0)
		return usage_error(NULL, "no command given");
	if (strcmp(rest[0], "-h") == 0 || strcmp(rest[0], "--help") == 0) {
		print_usage(stdout);
		return EXIT_OK;
	}
	if (strcmp(rest[0], "--version") == 0) {
		printf("canaryctl %s\n", CANARYD_VERSION);
		return EXIT_OK;
	}
	if (rest[0][0] == '-') {
		const char *near = out_nearest(rest[0], global_flags);
		if (near)
			return usage_error(NULL, "unknown option '%s'; did you mean '%s'?", rest[0], near);
		return usage_error(NULL, "unknown option '%s'", rest[0]);
	}
	const command *cmd = find_command(rest[0]);
	if (!cmd)
		return unknown_command(rest[0]);
	/* "canaryctl CMD --help" is help, not a request */
	for (int k = 1; k < nrest; k++) {
		if (strcmp(rest[k], "--") == 0)
			break;
		if (strcmp(rest[k], "--help") == 0 || strcmp(rest[k], "-h") == 0) {
			print_command_help(stdout, cmd);
			return EXIT_OK;
		}
	}

	client cl = { NULL, NULL, NULL, false, false };
	cl.tty = isatty(STDOUT_FILENO) == 1;
	cl.color = out_color_wanted(STDOUT_FILENO, no_color);
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
