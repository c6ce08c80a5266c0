/* health.c - active health checks of a route's endpoints (see health.h).
 *
 * One timer per checker starts a round every interval: each member with no
 * check in flight gets one. A check holds a TCP handle and a timer (the
 * timeout) and frees itself once both are closed; it points back at its
 * member's entry until it reports or is detached (the member left, the
 * checker went away), so that nothing is freed under a callback. */
#include "health.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dataplane.h"
#include "list.h"
#include "log.h"
#include "resolve.h"

#define HC_IN 512                     /* a status line must fit in this */

/* ---- the threshold state machine ---- */

bool health_sm_result(health_sm *s, bool ok, int unhealthy, int healthy)
{
	if (ok) {
		s->fails = 0;
		if (s->passes < INT_MAX)
			s->passes++;
		if (!s->healthy && s->passes >= healthy) {
			s->healthy = true;
			return true;
		}
		return false;
	}
	s->passes = 0;
	if (s->fails < INT_MAX)
		s->fails++;
	if (s->healthy && s->fails >= unhealthy) {
		s->healthy = false;
		return true;
	}
	return false;
}

/* "HTTP/1.x SSS[ reason]\r\n": only the status is wanted; the reason
 * phrase may be anything (or nothing), a bare LF ends the line too. */
int health_parse_status(const char *p, size_t len, int *status)
{
	static const char proto[] = "HTTP/1.";
	size_t plen = sizeof proto - 1;
	if (memcmp(p, proto, len < plen ? len : plen) != 0)
		return -1;
	const char *eol = memchr(p, '\n', len);
	if (!eol)
		return len >= HC_IN ? -1 : 0;
	size_t n = (size_t)(eol - p);
	if (n < plen + 5 || p[plen] < '0' || p[plen] > '9' || p[plen + 1] != ' ')
		return -1;
	const char *d = p + plen + 2;
	for (int i = 0; i < 3; i++)
		if (d[i] < '0' || d[i] > '9')
			return -1;
	if (d[0] == '0' || (n > plen + 5 && d[3] != ' ' && d[3] != '\r'))
		return -1;
	*status = (d[0] - '0') * 100 + (d[1] - '0') * 10 + (d[2] - '0');
	return 1;
}

/* ---- the checker ---- */

typedef struct hentry hentry;
typedef struct hcheck hcheck;

/* One member of the route and what its checks found. */
struct hentry {
	char name[ROUTE_NAME_LEN];    /* route_member.name */
	struct sockaddr_storage addr;
	int target;
	bool seen;                    /* in the route at the last sync */
	health_sm sm;
	hcheck *check;                /* in flight, or NULL */
	uint64_t last_ms;             /* wall clock of the last check's end, 0: none */
	char last_error[160];         /* the last failed check's, "" if none */
};

struct hcheck {
	uv_tcp_t tcp;
	uv_connect_t creq;
	uv_write_t wreq;
	uv_timer_t timer;
	health *h;                    /* NULL once detached */
	hentry *e;
	int closes;                   /* handles still to close before free */
	bool done;
	int sync_err;                 /* uv_tcp_connect failed at once: reported
	                               * from the timer, never inside the round */
	bool http;
	char *req;                    /* the request (owned) */
	size_t in_len;
	char in[HC_IN];
};

struct health {
	uv_loop_t *loop;
	route *r;
	cfg_health hc;                /* path owned */
	health_fn fn;
	void *arg;
	hentry **v;
	size_t n;
	uv_timer_t timer;
};

static void hc_copy(cfg_health *dst, const cfg_health *src)
{
	*dst = *src;
	dst->path = src->path ? xstrdup(src->path) : NULL;
}

/* The route's endpoint of <e> (main route, loop thread), or NULL. */
static endpoint *find_ep(route *r, const hentry *e)
{
	for (int t = 0; t < TARGET_COUNT; t++)
		for (size_t i = 0; i < r->set[t].n; i++) {
			endpoint *ep = r->set[t].v[i];
			if (!strcmp(ep->name, e->name) && rsv_addr_cmp(&ep->addr, &e->addr) == 0)
				return ep;
		}
	return NULL;
}

/* Makes the proxy follow <e>'s state: the flag is on the outlier record,
 * which the workers' copies of the endpoint share (workers.c). */
static void set_flag(health *h, const hentry *e)
{
	endpoint *ep = find_ep(h->r, e);
	if (ep)
		ST(ep->ol->unhealthy, e->sm.healthy ? 0 : 1);
}

static void check_closed(uv_handle_t *hd)
{
	hcheck *c = hd->data;
	if (--c->closes == 0) {
		free(c->req);
		free(c);
	}
}

/* Ends check <c> (once): counts it against its member when it is still
 * attached, then reports a change. The report comes last, and nothing of
 * the entry is touched after it: the callee may change the members. */
static void check_end(hcheck *c, bool ok, const char *why)
{
	if (c->done)
		return;
	c->done = true;
	uv_close((uv_handle_t *)&c->tcp, check_closed);
	uv_close((uv_handle_t *)&c->timer, check_closed);
	health *h = c->h;
	hentry *e = c->e;
	if (!h)
		return;
	e->check = NULL;
	e->last_ms = util_wall_ms();
	if (!ok)
		snprintf(e->last_error, sizeof e->last_error, "%s", why);
	if (!health_sm_result(&e->sm, ok, h->hc.unhealthy_threshold, h->hc.healthy_threshold))
		return;
	set_flag(h, e);
	char reason[224];
	if (e->sm.healthy)
		snprintf(reason, sizeof reason, "%d checks passed", e->sm.passes);
	else
		snprintf(reason, sizeof reason, "%d checks failed: %s", e->sm.fails, why);
	log_msg(e->sm.healthy ? LOG_INFO : LOG_WARN, h->r->name, "endpoint %s (%s) %s: %s",
	        e->name, stats_target_name(e->target), e->sm.healthy ? "healthy" : "unhealthy",
	        reason);
	char name[ROUTE_NAME_LEN];
	memcpy(name, e->name, sizeof name);
	int target = e->target;
	bool healthy = e->sm.healthy;
	if (h->fn)
		h->fn(h->arg, target, name, healthy, reason);
}

static void check_timeout(uv_timer_t *t)
{
	hcheck *c = t->data;
	if (c->sync_err) {
		check_end(c, false, uv_strerror(c->sync_err));
		return;
	}
	char why[64], d[32];
	util_format_duration(c->h ? c->h->hc.timeout_ms : 0, d, sizeof d);
	snprintf(why, sizeof why, "no answer within %s", d);
	check_end(c, false, why);
}

static void check_alloc(uv_handle_t *hd, size_t suggested, uv_buf_t *b)
{
	hcheck *c = hd->data;
	b->base = c->in + c->in_len;
	b->len = sizeof c->in - c->in_len;
}

static void check_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *b)
{
	hcheck *c = s->data;
	if (c->done)
		return;
	if (nread < 0) {
		char why[96];
		if (nread == UV_EOF)
			snprintf(why, sizeof why, "connection closed before the status line");
		else
			snprintf(why, sizeof why, "%s", uv_strerror((int)nread));
		check_end(c, false, why);
		return;
	}
	c->in_len += (size_t)nread;
	int status;
	int rc = health_parse_status(c->in, c->in_len, &status);
	if (rc == 0)
		return;
	if (rc < 0) {
		check_end(c, false, "not an HTTP/1.x response");
		return;
	}
	char why[32];
	snprintf(why, sizeof why, "status %d", status);
	check_end(c, status >= 200 && status < 400, why);
}

static void check_written(uv_write_t *w, int status)
{
	hcheck *c = w->data;
	if (status < 0 && status != UV_ECANCELED)
		check_end(c, false, uv_strerror(status));
}

static void check_connected(uv_connect_t *req, int status)
{
	hcheck *c = req->data;
	if (status == UV_ECANCELED || c->done)
		return;
	if (status < 0) {
		check_end(c, false, uv_strerror(status));
		return;
	}
	if (!c->http) {
		check_end(c, true, "connected");
		return;
	}
	uv_buf_t b = uv_buf_init(c->req, (unsigned)strlen(c->req));
	int rc = uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, check_written);
	if (rc == 0)
		rc = uv_read_start((uv_stream_t *)&c->tcp, check_alloc, check_read);
	if (rc < 0)
		check_end(c, false, uv_strerror(rc));
}

/* The Host of <e>'s requests: the endpoint as the operator wrote it (a
 * host name's member is "NAME:PORT (ADDRESS)"), as a client would send. */
static void host_of(const hentry *e, char *out, size_t n)
{
	const char *sp = strstr(e->name, " (");
	size_t l = sp ? (size_t)(sp - e->name) : strlen(e->name);
	snprintf(out, n, "%.*s", (int)l, e->name);
}

static void check_start(health *h, hentry *e)
{
	hcheck *c = xcalloc(1, sizeof *c);
	c->h = h;
	c->e = e;
	c->http = h->hc.path != NULL;
	if (c->http) {
		char host[ROUTE_NAME_LEN];
		host_of(e, host, sizeof host);
		buf b = BUF_INIT;
		buf_printf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: canaryd-health\r\n"
		           "Connection: close\r\n\r\n", h->hc.path, host);
		c->req = b.p;
	}
	uv_tcp_init(h->loop, &c->tcp);
	uv_timer_init(h->loop, &c->timer);
	c->closes = 2;
	c->tcp.data = c->timer.data = c->creq.data = c->wreq.data = c;
	e->check = c;
	int rc = uv_tcp_connect(&c->creq, &c->tcp, (const struct sockaddr *)&e->addr,
	                        check_connected);
	if (rc < 0) {
		c->sync_err = rc;
		uv_timer_start(&c->timer, check_timeout, 0, 0);
		return;
	}
	uv_timer_start(&c->timer, check_timeout, h->hc.timeout_ms, 0);
}

/* <c> will not report: its member left or the checker goes away. */
static void check_detach(hcheck *c)
{
	if (!c)
		return;
	c->h = NULL;
	c->e = NULL;
	if (!c->done) {
		c->done = true;
		uv_close((uv_handle_t *)&c->tcp, check_closed);
		uv_close((uv_handle_t *)&c->timer, check_closed);
	}
}

/* A round: every member without a check in flight gets one. Starting a
 * check reports nothing (a connect that fails at once reports from its
 * timer), so the members cannot change during the loop. */
static void round_cb(uv_timer_t *t)
{
	health *h = t->data;
	for (size_t i = 0; i < h->n; i++)
		if (!h->v[i]->check)
			check_start(h, h->v[i]);
}

health *health_new(uv_loop_t *loop, route *r, const cfg_health *hc, health_fn fn, void *arg)
{
	health *h = xcalloc(1, sizeof *h);
	h->loop = loop;
	route_ref(r);
	h->r = r;
	hc_copy(&h->hc, hc);
	h->fn = fn;
	h->arg = arg;
	uv_timer_init(loop, &h->timer);
	h->timer.data = h;
	health_sync(h);
	uv_timer_start(&h->timer, round_cb, 0, h->hc.interval_ms);
	return h;
}

void health_configure(health *h, const cfg_health *hc)
{
	uint64_t was = h->hc.interval_ms;
	free(h->hc.path);
	hc_copy(&h->hc, hc);
	if (was != h->hc.interval_ms)
		uv_timer_start(&h->timer, round_cb, h->hc.interval_ms, h->hc.interval_ms);
}

static hentry *find_entry(health *h, const endpoint *ep)
{
	for (size_t i = 0; i < h->n; i++)
		if (!strcmp(h->v[i]->name, ep->name) && rsv_addr_cmp(&h->v[i]->addr, &ep->addr) == 0)
			return h->v[i];
	return NULL;
}

void health_sync(health *h)
{
	for (size_t i = 0; i < h->n; i++)
		h->v[i]->seen = false;
	for (int t = 0; t < TARGET_COUNT; t++)
		for (size_t i = 0; i < h->r->set[t].n; i++) {
			endpoint *ep = h->r->set[t].v[i];
			hentry *e = find_entry(h, ep);
			if (!e) {
				e = xcalloc(1, sizeof *e);
				memcpy(e->name, ep->name, sizeof e->name);
				e->addr = ep->addr;
				e->sm = (health_sm)HEALTH_SM_INIT;
				h->v = xrealloc(h->v, (h->n + 1) * sizeof *h->v);
				h->v[h->n++] = e;
			}
			e->seen = true;
			e->target = t;
			/* a new endpoint object (a member that left and came back)
			 * has a fresh record: the flag follows the state again */
			ST(ep->ol->unhealthy, e->sm.healthy ? 0 : 1);
		}
	size_t j = 0;
	for (size_t i = 0; i < h->n; i++) {
		hentry *e = h->v[i];
		if (e->seen) {
			h->v[j++] = e;
			continue;
		}
		check_detach(e->check);
		free(e);
	}
	h->n = j;
}

bool health_ready(const health *h, int target)
{
	for (size_t i = 0; i < h->n; i++)
		if (h->v[i]->target == target && h->v[i]->sm.healthy)
			return true;
	return false;
}

json_t *health_json(const health *h)
{
	json_t *a = json_array();
	for (size_t i = 0; i < h->n; i++) {
		const hentry *e = h->v[i];
		json_t *o = json_object();
		json_object_set_new(o, "endpoint", json_string(e->name));
		json_object_set_new(o, "target", json_string(stats_target_name(e->target)));
		json_object_set_new(o, "healthy", json_boolean(e->sm.healthy));
		json_object_set_new(o, "consecutiveFailures", json_integer(e->sm.fails));
		if (e->last_ms) {
			char ts[40];
			util_rfc3339(e->last_ms, ts, sizeof ts);
			json_object_set_new(o, "lastCheck", json_string(ts));
		} else {
			json_object_set_new(o, "lastCheck", json_null());
		}
		json_object_set_new(o, "lastError",
		                    e->last_error[0] ? json_string(e->last_error) : json_null());
		json_array_append_new(a, o);
	}
	return a;
}

/* Label values need no escaping: canary names are DNS labels, member
 * names host names, addresses, ports, blanks and parentheses. */
void health_prometheus(const health *h, const char *canary, buf *out)
{
	for (size_t i = 0; i < h->n; i++)
		buf_printf(out, "canaryd_endpoint_healthy{canary=\"%s\",target=\"%s\","
		           "endpoint=\"%s\"} %d\n", canary, stats_target_name(h->v[i]->target),
		           h->v[i]->name, h->v[i]->sm.healthy ? 1 : 0);
}

static void health_closed(uv_handle_t *hd)
{
	free(hd->data);
}

void health_free(health *h)
{
	if (!h)
		return;
	for (size_t i = 0; i < h->n; i++) {
		hentry *e = h->v[i];
		check_detach(e->check);
		e->sm.healthy = true;
		set_flag(h, e);
		free(e);
	}
	free(h->v);
	free(h->hc.path);
	route_unref(h->r);
	uv_close((uv_handle_t *)&h->timer, health_closed);
}
