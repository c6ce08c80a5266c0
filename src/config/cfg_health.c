/* cfg_health.c - spec.healthCheck: active health checks of every stable
 * and canary endpoint by the built-in proxy (src/dataplane/health.h).
 *
 * Defaults are those of Envoy's and HAProxy's practice: a check every 5s,
 * 1s to answer, 3 failures in a row take an endpoint out, 2 passes in a
 * row bring it back. Without a path the check is a TCP connect, as
 * HAProxy's plain "check"; with one, an HTTP/1.1 GET of it, 2xx or 3xx
 * passing (HAProxy's "option httpchk" and Envoy's default expected
 * statuses are 2xx; 3xx passes too because a health path that redirects
 * to a login page is alive, and canaryd never follows the redirect). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cfgload.h"

/* An origin-form path (RFC 9112 3.2.1) that can be written into a request
 * line as it is: '/' first, then visible ASCII, no space, at most 1024
 * bytes. Anything else would be a different request from the one the
 * operator wrote, or a broken one. */
static void h_path(doc *d, const field *f, const char *path, yaml_node_t *k,
                   yaml_node_t *v, void *obj)
{
	char got_[64];
	cfg_health *h = obj;
	char *s;
	if (cfg_read_string(d, path, v, &s) < 0)
		return;
	size_t n = strlen(s);
	bool ok = n > 0 && n <= 1024 && s[0] == '/';
	for (size_t i = 0; ok && i < n; i++)
		ok = s[i] > 0x20 && s[i] < 0x7f;
	if (!ok) {
		cfg_err_at(d->x, v, "%s: must be a path starting with '/', of at most 1024 visible "
		       "ASCII characters without spaces (such as /healthz), got %s", path, GOT(v));
		free(s);
		return;
	}
	free(h->path);
	h->path = s;
}

static const field health_fields[] = {
	{ "path", h_path, F_NATIVE, NOSTORE, 0, 0 },
	{ "interval", cfg_h_duration, F_NATIVE, offsetof(cfg_health, interval_ms), 100, 86400000 },
	{ "timeout", cfg_h_duration, F_NATIVE, offsetof(cfg_health, timeout_ms), 1, 86400000 },
	{ "unhealthyThreshold", cfg_h_int, F_NATIVE, offsetof(cfg_health, unhealthy_threshold), 1,
	  1000 },
	{ "healthyThreshold", cfg_h_int, F_NATIVE, offsetof(cfg_health, healthy_threshold), 1,
	  1000 },
};
enum { HC_PATH, HC_INTERVAL, HC_TIMEOUT };

/* spec.healthCheck: a mapping, every key optional ({} checks with the
 * defaults, by TCP connect). A timeout longer than the interval is
 * refused: an endpoint has one check at a time, so the interval would
 * silently stretch to the timeout. Without a timeout, 1s or the interval
 * when it is shorter. */
void cfg_h_health(doc *d, const field *f, const char *path, yaml_node_t *k,
                  yaml_node_t *v, void *obj)
{
	cfg_health *h = &d->c->health;
	free(h->path);
	memset(h, 0, sizeof *h);
	h->interval_ms = 5000;
	h->timeout_ms = 0;
	h->unhealthy_threshold = 3;
	h->healthy_threshold = 2;
	slot seen[N_OF(health_fields)];
	if (!cfg_walk_map(d, path, v, health_fields, N_OF(health_fields), h, seen))
		return;
	if (!seen[HC_TIMEOUT].key) {
		h->timeout_ms = h->interval_ms < 1000 ? h->interval_ms : 1000;
	} else if (h->timeout_ms > h->interval_ms) {
		char a[32], b[32];
		util_format_duration(h->timeout_ms, a, sizeof a);
		util_format_duration(h->interval_ms, b, sizeof b);
		cfg_err_at(d->x, seen[HC_TIMEOUT].val, "%s.timeout: must be at most %s.interval (%s "
		       "is longer than %s: an endpoint is checked once at a time)", path, path, a, b);
	}
	h->enabled = 1;
}

/* The checks are the built-in proxy's: another router would accept the
 * key and route to endpoints it never checks, so it is refused there.
 * HAProxy runs checks of its own ("check", "option httpchk"), which the
 * runtime API canaryd drives it through cannot give a path to. */
void cfg_health_router_check(doc *d, yaml_node_t *key, const char *router)
{
	if (!router || !strcmp(router, "builtin"))
		return;
	if (!strcmp(router, "haproxy"))
		cfg_err_at(d->x, key, "spec.healthCheck: only with router builtin (with router "
		       "'haproxy', health checks are HAProxy's own, which canaryd does not "
		       "configure)");
	else
		cfg_err_at(d->x, key, "spec.healthCheck: only with router builtin (router '%s' "
		       "routes to what the platform reports ready: use its readiness probes)",
		       router);
}
