/* notify.c - see notify.h. */
#include "notify.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const char *const sev_names[] = { "info", "warn", "error" };

const char *notify_severity_name(notify_severity s)
{
	return s >= NOTIFY_INFO && s <= NOTIFY_ERROR ? sev_names[s] : "info";
}

int notify_severity_parse(const char *s)
{
	for (int i = 0; s && i < 3; i++)
		if (!strcmp(s, sev_names[i]))
			return i;
	return -1;
}

bool notify_severity_passes(notify_severity alert, notify_severity msg)
{
	if (alert == NOTIFY_INFO)
		return true;
	return msg == alert || (msg == NOTIFY_ERROR && alert == NOTIFY_WARN);
}

/* Audit event types and what they are to Flagger's eyes. The engine's
 * (engine.h) and the controller's; a type not here is info and sends no
 * alert. */
static const struct ev_class {
	const char *type;
	notify_severity sev;      /* when neither failed nor special */
	bool alerts;              /* Flagger sends an alert for it */
} ev_classes[] = {
	{ "rollout-started", NOTIFY_INFO, true },  /* "New revision detected" */
	{ "succeeded", NOTIFY_INFO, true },        /* "promotion finished" */
	{ "rollback", NOTIFY_ERROR, true },        /* see notify_event_severity */
	{ "abort", NOTIFY_WARN, true },
	{ "waiting", NOTIFY_WARN, true },          /* "waiting for approval" */
	{ "failure-paused", NOTIFY_ERROR, true },  /* onFailure: pause */
	{ "undo", NOTIFY_ERROR, true },            /* as a rollback */
	{ "approved", NOTIFY_INFO, true },
	{ "gate", NOTIFY_INFO, false },            /* a gate passed */
	{ "max-duration", NOTIFY_WARN, true },
	{ "not-ready", NOTIFY_WARN, false },
	{ "alert", NOTIFY_WARN, false },
	{ "check", NOTIFY_INFO, false },
	{ "webhook", NOTIFY_INFO, false },
};

static const struct ev_class *ev_class(const char *type)
{
	for (size_t i = 0; type && i < sizeof ev_classes / sizeof ev_classes[0]; i++)
		if (!strcmp(ev_classes[i].type, type))
			return &ev_classes[i];
	return NULL;
}

notify_severity notify_event_severity(const char *type, bool failed, bool automatic)
{
	const struct ev_class *k = ev_class(type);
	if (k && (!strcmp(k->type, "rollback") || !strcmp(k->type, "undo")))
		return automatic ? NOTIFY_ERROR : NOTIFY_WARN;
	if (failed)
		return NOTIFY_WARN;
	return k ? k->sev : NOTIFY_INFO;
}

bool notify_event_alerts(const char *type)
{
	const struct ev_class *k = ev_class(type);
	return k && k->alerts;
}

static json_t *str(const char *s)
{
	/* a string that is not UTF-8 would make jansson return NULL: the
	 * payload must be sent whatever a message holds */
	json_t *j = json_string(s ? s : "");
	return j ? j : json_string("?");
}

static json_t *base_object(const notify_canary *c, const char *phase)
{
	json_t *o = json_object();
	json_object_set_new(o, "name", str(c->name));
	json_object_set_new(o, "namespace", str(c->namespace_));
	json_object_set_new(o, "phase", str(phase));
	json_object_set_new(o, "checksum", str(c->checksum));
	return o;
}

static void extras(json_t *o, const notify_canary *c, const char *type)
{
	json_object_set_new(o, "type", str(type));
	json_object_set_new(o, "canaryWeight", json_integer(c->weight));
	json_object_set_new(o, "stableRevision", str(c->stable_rev));
	json_object_set_new(o, "canaryRevision", str(c->canary_rev));
}

static char *dump(json_t *o)
{
	char *txt = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER);
	json_decref(o);
	return txt ? txt : xstrdup("{}");
}

char *notify_hook_payload(const notify_canary *c, const char *phase, const char *type,
                          const json_t *metadata)
{
	json_t *o = base_object(c, phase);
	if (json_is_object(metadata) && json_object_size(metadata) > 0)
		json_object_set_new(o, "metadata", json_deep_copy(metadata));
	extras(o, c, type);
	return dump(o);
}

char *notify_event_payload(const notify_canary *c, const char *phase, const json_t *metadata,
                           const char *message, const char *event, notify_severity sev,
                           uint64_t wall_ms)
{
	json_t *o = base_object(c, phase);
	json_t *md = json_object();
	char ts[24];
	snprintf(ts, sizeof ts, "%llu", (unsigned long long)wall_ms);
	json_object_set_new(md, "eventMessage", str(message));
	json_object_set_new(md, "eventType", str(sev == NOTIFY_INFO ? "Normal" : "Warning"));
	json_object_set_new(md, "timestamp", str(ts));
	if (json_is_object(metadata)) {
		const char *k;
		json_t *v;
		/* Flagger: the event's keys win over the hook's */
		json_object_foreach((json_t *)metadata, k, v)
			if (!json_object_get(md, k))
				json_object_set(md, k, v);
	}
	json_object_set_new(o, "metadata", md);
	extras(o, c, "event");
	json_object_set_new(o, "event", str(event));
	return dump(o);
}

const char *const notify_kind_names[NOTIFY_KIND_COUNT] = {
	"slack", "msteams", "discord", "generic",
};

int notify_kind_parse(const char *type)
{
	for (int i = 0; type && i < NOTIFY_KIND_COUNT; i++)
		if (!strcmp(type, notify_kind_names[i]))
			return i;
	return -1;
}

/* Flagger's "NAME.NAMESPACE" (workload and namespace). */
static char *who(const notify_canary *c)
{
	buf b = BUF_INIT;
	buf_puts(&b, c->name ? c->name : "");
	if (c->namespace_ && c->namespace_[0])
		buf_printf(&b, ".%s", c->namespace_);
	return b.p;
}

static json_t *slack_body(const char *username, const char *channel, const char *whom,
                          const char *message, const notify_field *fields, size_t n,
                          notify_severity sev)
{
	json_t *o = json_object();
	json_object_set_new(o, "channel", str(channel ? channel : "general"));
	json_object_set_new(o, "username", str(username ? username : "flagger"));
	json_object_set_new(o, "icon_url", str(""));
	json_object_set_new(o, "icon_emoji", str(":rocket:"));
	json_t *a = json_object();
	json_object_set_new(a, "color", str(sev == NOTIFY_ERROR ? "danger" : "good"));
	json_object_set_new(a, "author_name", str(whom));
	json_object_set_new(a, "text", str(message));
	json_t *md = json_array();
	json_array_append_new(md, str("text"));
	json_object_set_new(a, "mrkdwn_in", md);
	json_t *fs = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_object();
		json_object_set_new(f, "title", str(fields[i].name));
		json_object_set_new(f, "value", str(fields[i].value));
		json_object_set_new(f, "short", json_false());
		json_array_append_new(fs, f);
	}
	json_object_set_new(a, "fields", fs);
	json_t *as = json_array();
	json_array_append_new(as, a);
	json_object_set_new(o, "attachments", as);
	return o;
}

static json_t *teams_body(const char *whom, const char *message, const notify_field *fields,
                          size_t n, notify_severity sev)
{
	json_t *o = json_object();
	json_object_set_new(o, "@type", str("MessageCard"));
	json_object_set_new(o, "@context", str("http://schema.org/extensions"));
	json_object_set_new(o, "themeColor", str(sev == NOTIFY_ERROR ? "FF0000" : "0076D7"));
	json_object_set_new(o, "summary", str(whom));
	json_t *s = json_object();
	json_object_set_new(s, "activityTitle", str(message));
	json_object_set_new(s, "activitySubtitle", str(whom));
	json_t *fs = json_array();
	for (size_t i = 0; i < n; i++) {
		json_t *f = json_object();
		json_object_set_new(f, "name", str(fields[i].name));
		json_object_set_new(f, "value", str(fields[i].value));
		json_array_append_new(fs, f);
	}
	json_object_set_new(s, "facts", fs);
	json_t *ss = json_array();
	json_array_append_new(ss, s);
	json_object_set_new(o, "sections", ss);
	return o;
}

char *notify_alert_payload(notify_kind k, const char *username, const char *channel,
                           const notify_canary *c, const char *phase, const char *event,
                           const char *message, const notify_field *fields, size_t n_fields,
                           notify_severity sev, uint64_t wall_ms)
{
	char *whom = who(c);
	json_t *o;
	/* the runbook as the last field: what on-call reads first is what
	 * happened, then where to go */
	notify_field *withrb = NULL;
	bool rb = c->runbook && c->runbook[0];
	if (rb && k != NOTIFY_GENERIC) {
		withrb = xcalloc(n_fields + 1, sizeof *withrb);
		for (size_t i = 0; i < n_fields; i++)
			withrb[i] = fields[i];
		withrb[n_fields] = (notify_field){ "Runbook", c->runbook };
		fields = withrb;
		n_fields++;
	}
	if (k == NOTIFY_SLACK || k == NOTIFY_DISCORD) {
		o = slack_body(username, channel, whom, message, fields, n_fields, sev);
	} else if (k == NOTIFY_MSTEAMS) {
		o = teams_body(whom, message, fields, n_fields, sev);
	} else {
		o = json_object();
		json_object_set_new(o, "name", str(c->name));
		json_object_set_new(o, "namespace", str(c->namespace_));
		json_object_set_new(o, "message", str(message));
		json_object_set_new(o, "severity", str(notify_severity_name(sev)));
		json_object_set_new(o, "event", str(event));
		json_object_set_new(o, "phase", str(phase));
		json_object_set_new(o, "canaryWeight", json_integer(c->weight));
		json_object_set_new(o, "stableRevision", str(c->stable_rev));
		json_object_set_new(o, "canaryRevision", str(c->canary_rev));
		json_t *fs = json_array();
		for (size_t i = 0; i < n_fields; i++) {
			json_t *f = json_object();
			json_object_set_new(f, "name", str(fields[i].name));
			json_object_set_new(f, "value", str(fields[i].value));
			json_array_append_new(fs, f);
		}
		json_object_set_new(o, "fields", fs);
		if (rb)
			json_object_set_new(o, "runbook", str(c->runbook));
		json_object_set_new(o, "timestamp", json_integer((json_int_t)wall_ms));
	}
	free(withrb);
	free(whom);
	return dump(o);
}

char *notify_alert_url(notify_kind k, const char *address)
{
	if (k != NOTIFY_DISCORD)
		return xstrdup(address);
	/* Go's path.Join(u.Path, "slack") on the path, the query left as is */
	size_t plen = strcspn(address, "?#");
	const char *scheme_end = strstr(address, "://");
	size_t keep = plen;
	size_t host_end = scheme_end ? (size_t)(scheme_end - address) + 3 : 0;
	while (keep > host_end && address[keep - 1] == '/')
		keep--;
	if (keep >= 6 && !strncmp(address + keep - 6, "/slack", 6))
		return xstrdup(address);
	buf b = BUF_INIT;
	buf_append(&b, address, keep);
	buf_puts(&b, "/slack");
	buf_puts(&b, address + plen);
	return b.p;
}
