/* resolve.c - see resolve.h. */
#include "resolve.h"

#include <ctype.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "list.h"
#include "log.h"
#include "util.h"

/* ---- endpoints ---- */

bool rsv_valid_name(const char *host)
{
	size_t n = strlen(host);
	if (n && host[n - 1] == '.')
		n--;   /* the root: "app.internal." is fully qualified */
	if (n == 0 || n > 253)
		return false;
	size_t label = 0;
	bool all_digits = true;
	for (size_t i = 0; i <= n; i++) {
		char ch = i < n ? host[i] : '.';
		if (ch == '.') {
			if (label == 0 || label > 63 || host[i - 1] == '-')
				return false;
			label = 0;
			if (i < n)
				all_digits = true;
			continue;
		}
		if (!isalnum((unsigned char)ch) && ch != '-' && ch != '_')
			return false;
		if (label == 0 && ch == '-')
			return false;
		all_digits &= isdigit((unsigned char)ch) != 0;
		label++;
	}
	return !all_digits;
}

rsv_kind rsv_parse(const char *ep, char *host, size_t hostlen, int *port,
                   struct sockaddr_storage *addr, char *err, size_t errlen)
{
	if (util_parse_hostport(ep, host, hostlen, port) < 0) {
		snprintf(err, errlen, "'%s' is not HOST:PORT with a port from 1 to 65535", ep);
		return RSV_INVALID;
	}
	struct sockaddr_storage ss;
	memset(&ss, 0, sizeof ss);
	const char *ip = strcmp(host, "localhost") == 0 ? "127.0.0.1" : host;
	if (ep[0] == '[' ? uv_ip6_addr(ip, *port, (struct sockaddr_in6 *)&ss) == 0
	                 : uv_ip4_addr(ip, *port, (struct sockaddr_in *)&ss) == 0) {
		if (addr)
			*addr = ss;
		return RSV_NUMERIC;
	}
	if (ep[0] == '[') {
		snprintf(err, errlen, "'%s': '%s' in brackets is not an IPv6 address", ep, host);
		return RSV_INVALID;
	}
	/* uv_ip6_addr takes "fe80::1%eth0"; a name never has a '%' or ':' */
	if (!rsv_valid_name(host)) {
		snprintf(err, errlen, "'%s': '%s' is neither an IP address nor a valid host name",
		         ep, host);
		return RSV_INVALID;
	}
	return RSV_NAME;
}

int rsv_numeric(const char *hp, struct sockaddr_storage *addr)
{
	char host[RSV_HOST_LEN], why[400];
	int port;
	return rsv_parse(hp, host, sizeof host, &port, addr, why, sizeof why) == RSV_NUMERIC ? 0
	                                                                                 : -1;
}

bool rsv_host_of(const char *ep, char *host, size_t hostlen)
{
	char why[400];
	int port;
	return rsv_parse(ep, host, hostlen, &port, NULL, why, sizeof why) == RSV_NAME;
}

/* ---- answers ---- */

void rsv_addrs_release(rsv_addrs *a)
{
	free(a->v);
	a->v = NULL;
	a->n = 0;
}

void rsv_addrs_copy(rsv_addrs *dst, const rsv_addrs *src)
{
	dst->n = src->n;
	dst->v = xcalloc(src->n ? src->n : 1, sizeof *dst->v);
	if (src->n)
		memcpy(dst->v, src->v, src->n * sizeof *src->v);
}

int rsv_addr_cmp(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (a->ss_family != b->ss_family)
		return a->ss_family < b->ss_family ? -1 : 1;
	int c;
	in_port_t pa, pb;
	if (a->ss_family == AF_INET) {
		const struct sockaddr_in *a4 = (const void *)a, *b4 = (const void *)b;
		c = memcmp(&a4->sin_addr, &b4->sin_addr, sizeof a4->sin_addr);
		pa = a4->sin_port, pb = b4->sin_port;
	} else {
		const struct sockaddr_in6 *a6 = (const void *)a, *b6 = (const void *)b;
		c = memcmp(&a6->sin6_addr, &b6->sin6_addr, sizeof a6->sin6_addr);
		if (!c && a6->sin6_scope_id != b6->sin6_scope_id)
			c = a6->sin6_scope_id < b6->sin6_scope_id ? -1 : 1;
		pa = a6->sin6_port, pb = b6->sin6_port;
	}
	if (c)
		return c;
	pa = ntohs(pa), pb = ntohs(pb);
	return pa < pb ? -1 : pa > pb;
}

/* For qsort: rsv_addr_cmp (an answer's addresses all have port 0). */
static int addr_cmp(const void *pa, const void *pb)
{
	return rsv_addr_cmp(pa, pb);
}

bool rsv_addrs_equal(const rsv_addrs *a, const rsv_addrs *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (addr_cmp(&a->v[i], &b->v[i]) != 0)
			return false;
	return true;
}

void rsv_addrs_normalize(rsv_addrs *a)
{
	if (a->n < 2)
		return;
	qsort(a->v, a->n, sizeof *a->v, addr_cmp);
	size_t j = 1;
	for (size_t i = 1; i < a->n; i++)
		if (addr_cmp(&a->v[i], &a->v[j - 1]) != 0)
			a->v[j++] = a->v[i];
	a->n = j;
}

void rsv_addr_text(const struct sockaddr_storage *ss, char *out, size_t outlen)
{
	char ip[RSV_ADDR_LEN] = "?";
	if (ss->ss_family == AF_INET)
		uv_ip4_name((const struct sockaddr_in *)ss, ip, sizeof ip);
	else if (ss->ss_family == AF_INET6)
		uv_ip6_name((const struct sockaddr_in6 *)ss, ip, sizeof ip);
	snprintf(out, outlen, "%s", ip);
}

void rsv_addr_set_port(struct sockaddr_storage *ss, int port)
{
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons((uint16_t)port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons((uint16_t)port);
}

void rsv_addrs_list(const rsv_addrs *a, size_t max, char *out, size_t outlen)
{
	size_t len = strlen(out);
	for (size_t i = 0; i < a->n && len + 1 < outlen; i++) {
		if (i == max) {
			snprintf(out + len, outlen - len, ", ... (%zu in all)", a->n);
			return;
		}
		char ip[RSV_ADDR_LEN];
		rsv_addr_text(&a->v[i], ip, sizeof ip);
		snprintf(out + len, outlen - len, "%s%s", i ? ", " : "", ip);
		len = strlen(out);
	}
}

/* The answer of getaddrinfo as rsv_addrs (at most RSV_MAX_ADDRS). */
static void addrs_from(rsv_addrs *a, const struct addrinfo *ai)
{
	size_t n = 0;
	for (const struct addrinfo *p = ai; p; p = p->ai_next)
		n++;
	a->v = xcalloc(n ? n : 1, sizeof *a->v);
	a->n = 0;
	for (const struct addrinfo *p = ai; p && a->n < RSV_MAX_ADDRS; p = p->ai_next) {
		if ((p->ai_family != AF_INET && p->ai_family != AF_INET6) ||
		    p->ai_addrlen > sizeof *a->v)
			continue;
		memset(&a->v[a->n], 0, sizeof a->v[a->n]);
		memcpy(&a->v[a->n], p->ai_addr, p->ai_addrlen);
		rsv_addr_set_port(&a->v[a->n], 0);
		a->n++;
	}
	rsv_addrs_normalize(a);
}

/* ---- lookups ---- */

typedef enum { Q_QUEUED, Q_RUNNING } qstate;

struct rsv_query {
	uv_getaddrinfo_t req;
	rsv *r;                       /* NULL once abandoned by rsv_free */
	qstate state;
	rsv_done_fn done;             /* NULL once cancelled */
	void *arg;
	char host[RSV_HOST_LEN];
	rsv_query *prev, *next;       /* in r->queued or r->running */
};

struct rsv {
	uv_loop_t *loop;
	rsv_query *queued, *queued_tail;
	rsv_query *running;
	int n_running;
	int max_running;
};

rsv *rsv_new(uv_loop_t *loop, int max_inflight)
{
	rsv *r = xcalloc(1, sizeof *r);
	r->loop = loop;
	r->max_running = max_inflight > 0 ? max_inflight : 1;
	return r;
}

static void on_answer(uv_getaddrinfo_t *req, int status, struct addrinfo *ai);

/* Starts <q> on the pool. Returns 0, or a negative libuv error (<q> is
 * then not linked anywhere). */
static int start(rsv *r, rsv_query *q)
{
	struct addrinfo hints;
	memset(&hints, 0, sizeof hints);
	/* no AI_ADDRCONFIG: on a machine whose only interface is loopback it
	 * would hide every IPv4 answer, 127.0.0.x included */
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	q->req.data = q;
	int rc = uv_getaddrinfo(r->loop, &q->req, on_answer, q->host, NULL, &hints);
	if (rc < 0)
		return rc;
	q->state = Q_RUNNING;
	q->r = r;
	LIST_PUSH(r->running, q);
	r->n_running++;
	return 0;
}

/* Starts queued lookups while there is room. One that cannot start is
 * answered with its error now: this runs in another lookup's callback,
 * never in the caller of rsv_lookup. */
static void pump(rsv *r)
{
	while (r->queued && r->n_running < r->max_running) {
		rsv_query *q = r->queued;
		r->queued = q->next;
		if (!r->queued)
			r->queued_tail = NULL;
		q->next = NULL;
		int rc = start(r, q);
		if (rc < 0) {
			if (q->done)
				q->done(q->arg, rc, NULL);
			free(q);
		}
	}
}

static void on_answer(uv_getaddrinfo_t *req, int status, struct addrinfo *ai)
{
	rsv_query *q = req->data;
	rsv *r = q->r;
	if (r) {
		LIST_UNLINK(r->running, q);
		r->n_running--;
	}
	if (q->done && status != UV_EAI_CANCELED) {
		if (status == 0) {
			rsv_addrs a;
			addrs_from(&a, ai);
			if (a.n)
				q->done(q->arg, 0, &a);
			else
				q->done(q->arg, UV_EAI_NODATA, NULL);
			rsv_addrs_release(&a);
		} else {
			q->done(q->arg, status, NULL);
		}
	}
	uv_freeaddrinfo(ai);
	free(q);
	if (r)
		pump(r);
}

rsv_query *rsv_lookup(rsv *r, const char *host, rsv_done_fn done, void *arg,
                      int *status)
{
	rsv_query *q = xcalloc(1, sizeof *q);
	q->r = r;
	q->done = done;
	q->arg = arg;
	snprintf(q->host, sizeof q->host, "%s", host);
	if (r->n_running < r->max_running) {
		int rc = start(r, q);
		if (rc < 0) {
			free(q);
			*status = rc;
			return NULL;
		}
		return q;
	}
	q->state = Q_QUEUED;
	if (r->queued_tail)
		r->queued_tail->next = q;
	else
		r->queued = q;
	r->queued_tail = q;
	return q;
}

void rsv_cancel(rsv_query *q)
{
	if (!q)
		return;
	q->done = NULL;
	if (q->state == Q_RUNNING) {
		/* freed by on_answer, at once (UV_EAI_CANCELED) when the pool
		 * had not started it yet */
		uv_cancel((uv_req_t *)&q->req);
		return;
	}
	rsv *r = q->r;
	rsv_query **pp = &r->queued, *prev = NULL;
	while (*pp && *pp != q) {
		prev = *pp;
		pp = &(*pp)->next;
	}
	if (*pp) {
		*pp = q->next;
		if (r->queued_tail == q)
			r->queued_tail = prev;
	}
	free(q);
}

void rsv_free(rsv *r)
{
	if (!r)
		return;
	while (r->queued) {
		rsv_query *q = r->queued;
		r->queued = q->next;
		free(q);
	}
	/* running lookups cannot be taken back from the pool: they finish on
	 * their own, and on_answer frees them */
	while (r->running) {
		rsv_query *q = r->running;
		LIST_UNLINK(r->running, q);
		q->r = NULL;
		q->done = NULL;
		uv_cancel((uv_req_t *)&q->req);
	}
	free(r);
}

/* ---- tables ---- */

typedef struct entry {
	char host[RSV_HOST_LEN];
	rsv_addrs last;               /* the last good answer (n == 0: never) */
	char err[128];                /* the last lookup's error, "" if none */
	uint64_t resolved_ms;         /* wall clock of the last good answer */
	uint64_t due;                 /* uv_now() of the next lookup */
	uint64_t retry_ms;            /* current retry delay while never resolved */
	rsv_query *q;                 /* the lookup in flight */
	struct rsv_table *t;
	bool used;                    /* mark of rsv_table_sweep */
	bool failing;                 /* the last lookup failed: a logged condition */
	bool looked_up;               /* a lookup finished */
	struct entry *next;
} entry;

struct rsv_table {
	rsv *r;
	char *owner;
	uint64_t refresh_ms;
	rsv_change_fn fn;
	void *arg;
	entry *names;
	uv_timer_t timer;             /* the next due lookup */
	bool timer_on;
};

static void arm(rsv_table *t);

rsv_table *rsv_table_new(rsv *r, const char *owner, uint64_t refresh_ms,
                         rsv_change_fn fn, void *arg)
{
	rsv_table *t = xcalloc(1, sizeof *t);
	t->r = r;
	t->owner = xstrdup(owner ? owner : "");
	t->refresh_ms = refresh_ms ? refresh_ms : 1000;
	t->fn = fn;
	t->arg = arg;
	uv_timer_init(r->loop, &t->timer);
	t->timer.data = t;
	return t;
}

static void entry_free(entry *e)
{
	rsv_cancel(e->q);
	rsv_addrs_release(&e->last);
	free(e);
}

static void table_closed(uv_handle_t *h)
{
	rsv_table *t = h->data;
	free(t->owner);
	free(t);
}

void rsv_table_free(rsv_table *t)
{
	if (!t)
		return;
	while (t->names) {
		entry *e = t->names;
		t->names = e->next;
		entry_free(e);
	}
	uv_timer_stop(&t->timer);
	uv_close((uv_handle_t *)&t->timer, table_closed);
}

void rsv_table_set_refresh(rsv_table *t, uint64_t refresh_ms)
{
	if (!refresh_ms || refresh_ms == t->refresh_ms)
		return;
	t->refresh_ms = refresh_ms;
	/* a shorter interval applies now, not after the longer one ends */
	uint64_t now = uv_now(t->r->loop);
	for (entry *e = t->names; e; e = e->next)
		if (e->last.n && !e->failing && e->due > now + refresh_ms)
			e->due = now + refresh_ms;
	arm(t);
}

static entry *find(const rsv_table *t, const char *host)
{
	for (entry *e = t->names; e; e = e->next)
		if (strcmp(e->host, host) == 0)
			return e;
	return NULL;
}

static entry *add(rsv_table *t, const char *host)
{
	entry *e = xcalloc(1, sizeof *e);
	snprintf(e->host, sizeof e->host, "%s", host);
	e->t = t;
	e->due = uv_now(t->r->loop);
	e->next = t->names;
	t->names = e;
	return e;
}

/* A good answer <a> for <e>: logged when the condition or the addresses
 * change. Returns whether the addresses changed. */
static bool take_answer(rsv_table *t, entry *e, const rsv_addrs *a)
{
	char now_txt[512] = "";
	rsv_addrs_list(a, 8, now_txt, sizeof now_txt);
	bool changed = !rsv_addrs_equal(&e->last, a);
	if (e->failing && e->last.n && !changed)
		log_msg(LOG_INFO, t->owner, "host name '%s' resolves again: %s", e->host, now_txt);
	else if (!e->last.n)
		log_msg(LOG_INFO, t->owner, "host name '%s' resolves to %s", e->host, now_txt);
	else if (changed) {
		char was[512] = "";
		rsv_addrs_list(&e->last, 8, was, sizeof was);
		log_msg(LOG_INFO, t->owner, "host name '%s' now resolves to %s (was %s)", e->host,
		        now_txt, was);
	}
	if (changed) {
		rsv_addrs_release(&e->last);
		rsv_addrs_copy(&e->last, a);
	}
	e->err[0] = '\0';
	e->failing = false;
	e->looked_up = true;
	e->retry_ms = 0;
	e->resolved_ms = util_wall_ms();
	e->due = uv_now(t->r->loop) + t->refresh_ms;
	return changed;
}

/* A failed lookup of <e>: the last good answer stays. Returns whether
 * this is news to the owner (the first failure after answers, or the
 * first lookup of the name). */
static bool take_failure(rsv_table *t, entry *e, int status)
{
	snprintf(e->err, sizeof e->err, "%s", uv_strerror(status));
	uint64_t now = uv_now(t->r->loop);
	char every[32];
	util_format_duration(t->refresh_ms, every, sizeof every);
	bool news = !e->failing || !e->looked_up;
	if (e->last.n) {
		e->due = now + t->refresh_ms;
		if (!e->failing) {
			char last[512] = "";
			rsv_addrs_list(&e->last, 8, last, sizeof last);
			log_msg(LOG_WARN, t->owner, "host name '%s' does not resolve any more: %s; "
			        "requests keep going to the addresses it last resolved to (%s), "
			        "looked up again every %s", e->host, e->err, last, every);
		}
	} else {
		/* never resolved: nothing to serve on, so try again sooner */
		e->retry_ms = e->retry_ms ? e->retry_ms * 2 : RSV_RETRY_FIRST_MS;
		if (e->retry_ms > t->refresh_ms)
			e->retry_ms = t->refresh_ms;
		e->due = now + e->retry_ms;
		if (!e->failing) {
			char first[32];
			util_format_duration(RSV_RETRY_FIRST_MS, first, sizeof first);
			log_msg(LOG_WARN, t->owner, "host name '%s' does not resolve: %s; its endpoints "
			        "get no requests until it does (looked up again after %s, doubling "
			        "up to every %s)", e->host, e->err, first, every);
		}
	}
	e->failing = true;
	e->looked_up = true;
	return news;
}

static void entry_answer(void *arg, int status, const rsv_addrs *a)
{
	entry *e = arg;
	rsv_table *t = e->t;
	e->q = NULL;
	bool news = !e->looked_up || e->failing;   /* a first answer, or a recovery */
	if (status == 0)
		news |= take_answer(t, e, a);
	else
		news = take_failure(t, e, status);
	arm(t);
	/* <e> is not touched after this: the owner may sweep it */
	if (news && t->fn)
		t->fn(t->arg);
}

static void lookup_entry(rsv_table *t, entry *e)
{
	int status = 0;
	e->q = rsv_lookup(t->r, e->host, entry_answer, e, &status);
	if (!e->q)
		take_failure(t, e, status);   /* told at the next change */
}

static void on_timer(uv_timer_t *tm)
{
	rsv_table *t = tm->data;
	t->timer_on = false;
	uint64_t now = uv_now(t->r->loop);
	for (entry *e = t->names; e; e = e->next)
		if (!e->q && e->due <= now)
			lookup_entry(t, e);
	arm(t);
}

/* Arms the timer for the earliest lookup due (names with a lookup in
 * flight are rescheduled when it ends). */
static void arm(rsv_table *t)
{
	uint64_t next = UINT64_MAX;
	for (entry *e = t->names; e; e = e->next)
		if (!e->q && e->due < next)
			next = e->due;
	if (next == UINT64_MAX) {
		uv_timer_stop(&t->timer);
		t->timer_on = false;
		return;
	}
	uint64_t now = uv_now(t->r->loop);
	uv_timer_start(&t->timer, on_timer, next > now ? next - now : 0, 0);
	t->timer_on = true;
}

void rsv_table_unmark(rsv_table *t)
{
	for (entry *e = t->names; e; e = e->next)
		e->used = false;
}

void rsv_table_want(rsv_table *t, const char *host)
{
	entry *e = find(t, host);
	if (!e) {
		e = add(t, host);
		/* the first lookup starts from the timer, not here: the caller may
		 * be in the middle of changing what it wants */
		arm(t);
	}
	e->used = true;
}

void rsv_table_sweep(rsv_table *t)
{
	entry **pp = &t->names;
	while (*pp) {
		entry *e = *pp;
		if (e->used) {
			pp = &e->next;
			continue;
		}
		*pp = e->next;
		entry_free(e);
	}
	arm(t);
}

bool rsv_table_put(rsv_table *t, const char *host, const rsv_addrs *a)
{
	entry *e = find(t, host);
	if (!e)
		e = add(t, host);
	e->used = true;
	if (e->q) {
		/* this answer is newer than the one in flight */
		rsv_cancel(e->q);
		e->q = NULL;
	}
	bool changed = take_answer(t, e, a);
	arm(t);
	return changed;
}

static void fill(const entry *e, rsv_name *out)
{
	out->host = e->host;
	out->addrs = &e->last;
	out->error = e->err[0] ? e->err : NULL;
	out->resolved_ms = e->resolved_ms;
	out->looked_up = e->looked_up;
}

int rsv_table_find(const rsv_table *t, const char *host, rsv_name *out)
{
	const entry *e = find(t, host);
	if (!e)
		return 0;
	fill(e, out);
	return 1;
}

int rsv_table_at(const rsv_table *t, size_t i, rsv_name *out)
{
	const entry *e = t->names;
	while (e && i--)
		e = e->next;
	if (!e)
		return 0;
	fill(e, out);
	return 1;
}
