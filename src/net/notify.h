/* notify.h - what canaryd sends to webhooks and alert providers: Flagger's
 * payloads, built by pure functions (no I/O, no clock: the time is an
 * argument), so that each shape is checked by a unit test against
 * Flagger's source (pkg/controller/webhook.go, pkg/notifier/ at
 * fluxcd/flagger 15bd6ad5).
 *
 * Severities follow Flagger's: an event is info, warn or error
 * (notify_event_severity); Flagger's event webhooks call warn and error
 * "Warning" and info "Normal" (Kubernetes event types); an alert of
 * severity S gets the messages notify_severity_passes lets through. */
#ifndef CANARYD_NOTIFY_H
#define CANARYD_NOTIFY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <jansson.h>

typedef enum { NOTIFY_INFO = 0, NOTIFY_WARN, NOTIFY_ERROR } notify_severity;

/* "info", "warn", "error"; and back (-1 when unknown). */
const char *notify_severity_name(notify_severity s);
int notify_severity_parse(const char *s);

/* Flagger's filter (pkg/controller/events.go, alert()): an alert of
 * severity info gets every message, warn gets warn and error, error only
 * error. */
bool notify_severity_passes(notify_severity alert, notify_severity msg);

/* The severity of an audit event of <type> ("check", "rollback", ...,
 * engine.h's and the controller's), with <failed> for a check or a hook
 * result that did not pass and <automatic> when canaryd itself acted (the
 * actor is "canaryd"): an automatic rollback is an error, a rollback an
 * operator or a webhook asked for a warning (Flagger: "Rolling back manual
 * webhook invoked" is warn, "Failed checks threshold reached" error); a
 * failed check, a canary not ready, an undecided analysis, a firing alert
 * or a wait for approval a warning; the rest info. */
notify_severity notify_event_severity(const char *type, bool failed, bool automatic);

/* Whether an audit event of <type> is one Flagger sends alerts for (a
 * rollout started, succeeded, rolled back, is waiting for approval, or
 * is undecided): alert providers get only these, as Flagger's do; the
 * event webhooks get every event. */
bool notify_event_alerts(const char *type);

/* The canary as payloads show it; strings are never NULL ("" for none). */
typedef struct notify_canary {
	const char *name;
	const char *namespace_;
	const char *checksum;      /* Flagger's hash of the canary's spec;
	                            * canaryd's: the canary revision */
	int weight;
	const char *stable_rev;
	const char *canary_rev;
	const char *runbook;       /* the runbook's URL for this event (an
	                            * alert's "Runbook"), NULL or "" for none */
} notify_canary;

/* Flagger's CanaryWebhookPayload for a hook of <type> at phase <phase>:
 * {"name", "namespace", "phase", "checksum", "metadata"} (metadata: the
 * hook's, omitted when NULL or empty, as Flagger's omitempty), and
 * canaryd's "type", "canaryWeight", "stableRevision", "canaryRevision".
 * Returns a malloc'd compact JSON text. */
char *notify_hook_payload(const notify_canary *c, const char *phase, const char *type,
                          const json_t *metadata);

/* Flagger's event webhook payload (CallEventWebhook): as above with
 * type "event" and metadata {"eventMessage": <message>, "eventType":
 * "Normal" for info or "Warning", "timestamp": <wall_ms> as a decimal
 * string of Unix milliseconds}, to which the hook's <metadata> adds the
 * keys not already there; plus canaryd's "event": the audit event's type.
 * Returns a malloc'd compact JSON text. */
char *notify_event_payload(const notify_canary *c, const char *phase, const json_t *metadata,
                           const char *message, const char *event, notify_severity sev,
                           uint64_t wall_ms);

/* The alert providers canaryd sends to. */
typedef enum {
	NOTIFY_SLACK = 0, NOTIFY_MSTEAMS, NOTIFY_DISCORD, NOTIFY_GENERIC, NOTIFY_KIND_COUNT
} notify_kind;

/* The kind of an AlertProvider's spec.type, or -1: Flagger's rocket and
 * gchat, and any other, are not sent (notify_kinds_text names those that
 * are). */
int notify_kind_parse(const char *type);
extern const char *const notify_kind_names[NOTIFY_KIND_COUNT];
#define NOTIFY_KINDS_TEXT "slack, msteams, discord and generic"

/* A name and value shown with an alert (Flagger's notifier.Field). */
typedef struct notify_field {
	const char *name, *value;
} notify_field;

/* The body of an alert to a provider of kind <k>, as Flagger's notifier
 * posts it:
 * - slack and discord: {"channel", "username", "icon_url": "",
 *   "icon_emoji": ":rocket:", "attachments": [{"color": "good" or
 *   "danger" for error, "author_name": "NAME.NAMESPACE", "text":
 *   <message>, "mrkdwn_in": ["text"], "fields": [{"title", "value",
 *   "short": false}]}]};
 * - msteams: a MessageCard {"@type": "MessageCard", "@context":
 *   "http://schema.org/extensions", "themeColor": "0076D7" or "FF0000"
 *   for error, "summary": "NAME.NAMESPACE", "sections": [{"activityTitle":
 *   <message>, "activitySubtitle": "NAME.NAMESPACE", "facts": [{"name",
 *   "value"}]}]};
 * - generic (canaryd's): {"name", "namespace", "message", "severity",
 *   "event", "phase", "canaryWeight", "stableRevision", "canaryRevision",
 *   "fields": [{"name", "value"}], "timestamp": <wall_ms>}.
 * With c->runbook, the alert carries it: a last field "Runbook" (slack,
 * discord, msteams) and "runbook": URL (generic).
 * NAME.NAMESPACE is the name alone without a namespace. <username> and
 * <channel> are the provider's (Flagger's defaults "flagger" and
 * "general" when NULL). Returns a malloc'd compact JSON text. */
char *notify_alert_payload(notify_kind k, const char *username, const char *channel,
                           const notify_canary *c, const char *phase, const char *event,
                           const char *message, const notify_field *fields, size_t n_fields,
                           notify_severity sev, uint64_t wall_ms);

/* Where an alert to <address> of kind <k> is posted: Discord's Slack
 * compatible endpoint (<address>/slack, unless it ends so already, as
 * Flagger's NewDiscord), else <address>. malloc'd. */
char *notify_alert_url(notify_kind k, const char *address);

#endif
