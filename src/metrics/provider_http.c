/* provider_http.c - the providers read over HTTP, on the hooks client
 * (libcurl driven by the loop): "prometheus", an instant query that must
 * return one sample, and "web", any JSON API with the number at a JSON
 * path (Argo Rollouts' web metric). Each read renders its query or request
 * from the metric's template with the window's variables ({{ interval }}
 * is the window's span, {{ revision }} the canary's or stable's), and
 * answers once, later, on the loop. */
#include "provider.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define PROVIDER_MAX_BODY (4u << 20) /* an answer larger than this is an error */

typedef struct prov_read {
	provider_fn done;
	void *arg;
	int web;
	char *json_path;
	char what[160];    /* "Prometheus at 'URL'" / "web metric 'URL'" for messages */
} prov_read;

static void on_answer(void *arg, int status, const char *error, const char *body,
                      size_t body_len, uint64_t elapsed_ms)
{
	prov_read *r = arg;
	char reason[256];
	double value = 0;
	int ok = 0;
	if (error) {
		provider_no_value(reason, sizeof reason, "%s did not answer: %s", r->what, error);
	} else if (status < 200 || status >= 300) {
		provider_no_value(reason, sizeof reason, "%s answered HTTP %d", r->what, status);
	} else if (!r->web) {
		ok = provider_parse_prometheus(body, body_len, &value, reason, sizeof reason);
	} else {
		ok = provider_parse_web(body, body_len, r->json_path, &value, reason, sizeof reason);
	}
	r->done(r->arg, ok, value, ok ? "" : reason);
	free(r->json_path);
	free(r);
}

static prov_read *read_new(const provider_env *env, provider_fn done, void *arg, char *err,
                           size_t errlen)
{
	if (!env->http) {
		snprintf(err, errlen, "no HTTP client (libcurl failed to initialise)");
		return NULL;
	}
	prov_read *r = xcalloc(1, sizeof *r);
	r->done = done;
	r->arg = arg;
	return r;
}

/* The PromQL of <src> for window <w>, as prometheus_read sends it. */
static int prometheus_describe(const provider_env *env, const cfg_metric_source *src,
                               const provider_window *w, buf *out, char *err, size_t errlen)
{
	return tmpl_render(src->query, &w->vars, TMPL_PROMQL, out, err, errlen);
}

/* "METHOD URL" of <src> for window <w>, as web_read sends it. */
static int web_describe(const provider_env *env, const cfg_metric_source *src,
                        const provider_window *w, buf *out, char *err, size_t errlen)
{
	buf_printf(out, "%s ", src->method && !strcmp(src->method, "POST") ? "POST" : "GET");
	return tmpl_render(src->url, &w->vars, TMPL_URL, out, err, errlen);
}

static int prometheus_read(const provider_env *env, const cfg_metric_source *src,
                           const provider_window *w, provider_fn done, void *arg, char *err,
                           size_t errlen)
{
	prov_read *r = read_new(env, done, arg, err, errlen);
	if (!r)
		return -1;
	buf url = BUF_INIT, q = BUF_INIT;
	int rc = -1;
	if (tmpl_render(src->query, &w->vars, TMPL_PROMQL, &q, err, errlen) < 0)
		goto out;
	const char *a = src->address;
	size_t al = strlen(a);
	while (al && a[al - 1] == '/')
		al--;
	buf_append(&url, a, al);
	buf_puts(&url, "/api/v1/query?query=");
	buf_url_escape(&url, q.p);
	snprintf(r->what, sizeof r->what, "Prometheus at '%.120s'", src->address);
	rc = hooks_request(env->http, "GET", url.p, NULL, 0, NULL, src->timeout_ms,
	                   PROVIDER_MAX_BODY, on_answer, r);
	if (rc < 0)
		snprintf(err, errlen, "cannot start the request to %s", r->what);
out:
	buf_release(&url);
	buf_release(&q);
	if (rc < 0)
		free(r);
	return rc;
}

static int web_read(const provider_env *env, const cfg_metric_source *src,
                    const provider_window *w, provider_fn done, void *arg, char *err,
                    size_t errlen)
{
	prov_read *r = read_new(env, done, arg, err, errlen);
	if (!r)
		return -1;
	buf url = BUF_INIT, body = BUF_INIT;
	const char *hdrs[32];
	buf hbuf[32];
	size_t nh = 0;
	int rc = -1;
	r->web = 1;
	r->json_path = xstrdup(src->json_path ? src->json_path : "$");
	if (tmpl_render(src->url, &w->vars, TMPL_URL, &url, err, errlen) < 0)
		goto out;
	if (src->body && tmpl_render(src->body, &w->vars, TMPL_JSON, &body, err, errlen) < 0)
		goto out;
	const char *key;
	json_t *val;
	json_object_foreach(src->headers, key, val) {
		if (nh == 32)
			break;
		hbuf[nh] = (buf)BUF_INIT;
		buf_printf(&hbuf[nh], "%s: ", key);
		if (tmpl_render(json_string_value(val) ? json_string_value(val) : "", &w->vars,
		                TMPL_PROMQL, &hbuf[nh], err, errlen) < 0) {
			buf_release(&hbuf[nh]);
			goto out;
		}
		hdrs[nh] = hbuf[nh].p;
		nh++;
	}
	snprintf(r->what, sizeof r->what, "web metric '%.120s'", url.p);
	rc = hooks_request(env->http, src->method && !strcmp(src->method, "POST") ? "POST" : "GET",
	                   url.p, hdrs, nh, body.p, src->timeout_ms, PROVIDER_MAX_BODY,
	                   on_answer, r);
	if (rc < 0)
		snprintf(err, errlen, "cannot start the request to %s", r->what);
out:
	for (size_t i = 0; i < nh; i++)
		buf_release(&hbuf[i]);
	buf_release(&url);
	buf_release(&body);
	if (rc < 0) {
		free(r->json_path);
		free(r);
	}
	return rc;
}

const provider_ops provider_prometheus = {
	.name = "prometheus",
	.read = prometheus_read,
	.describe = prometheus_describe,
};

const provider_ops provider_web = {
	.name = "web",
	.read = web_read,
	.describe = web_describe,
};
