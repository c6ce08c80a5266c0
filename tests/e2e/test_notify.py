"""Alerts (Flagger's AlertProviders): Slack, Microsoft Teams, Discord and a
generic JSON webhook, each a real HTTP receiver on loopback, with Flagger's
payload shapes and severity filter, and every send in the audit."""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from harness import Canaryd, Upstream, canary_yaml, free_port, run, tmpdir  # noqa: E402


class Receiver:
    """Records every POST (path, headers, JSON body); answers 200, or 500
    on /gate for revision v2."""

    def __init__(self):
        self.calls = []
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                rec.calls.append((self.path, dict(self.headers), body))
                fail = self.path == "/gate" and body.get("checksum") == "v2"
                self.send_response(500 if fail else 200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.port = free_port()
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def bodies(self, path):
        return [b for p, h, b in self.calls if p == path]


def _wait(pred, timeout=5):
    end = time.time() + timeout
    while time.time() < end and not pred():
        time.sleep(0.05)
    return pred()


def test_alerts_reach_each_provider_in_its_shape_filtered_by_severity():
    rec = Receiver()
    d0 = tmpdir()
    # the address of a canaryd/v1 provider comes from a file or the
    # environment, never the configuration
    with open(os.path.join(d0, "teams-url"), "w") as f:
        f.write(rec.url("/teams") + "\n")
    os.environ["CANARYD_TEST_GENERIC_URL"] = rec.url("/generic")
    os.environ["CANARYD_TEST_GENERIC_TOKEN"] = "s3cr3t-token"
    providers = """---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata: {name: chat}
spec: {type: slack, channel: on-call, username: canary-bot, address: "%s"}
---
apiVersion: canaryd/v1
kind: AlertProvider
metadata: {name: teams}
spec: {type: msteams, addressFile: teams-url}
---
apiVersion: flagger.app/v1beta1
kind: AlertProvider
metadata: {name: disc}
spec: {type: discord, address: "%s"}
---
apiVersion: canaryd/v1
kind: AlertProvider
metadata: {name: generic}
spec: {type: generic, addressEnv: CANARYD_TEST_GENERIC_URL, tokenEnv: CANARYD_TEST_GENERIC_TOKEN}
""" % (rec.url("/slack"), rec.url("/discord"))
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    text = canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="200ms", threshold=1,
                       extra_spec=(
                           "    webhooks:\n"
                           "      - {name: gate, type: rollout, url: \"%s\"}\n"
                           "    alerts:\n"
                           "      - {name: all, severity: info, providerRef: {name: chat}}\n"
                           "      - {name: warnings, severity: warn, providerRef: {name: teams}}\n"
                           "      - {name: errors, severity: error, providerRef: {name: disc}}\n"
                           "      - {name: hook, providerRef: {name: generic}}\n"
                           % rec.url("/gate")))
    path = os.path.join(d0, "canary.yaml")
    with open(path, "w") as f:
        f.write(text + providers)
    d = Canaryd(config_path=path)
    # 1: the rollout gate fails, threshold 1: an automatic rollback (error)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    d.wait_phase("web", "Failed", timeout=10)
    assert _wait(lambda: len(rec.bodies("/discord/slack")) >= 1 and len(rec.bodies("/teams")) >= 1
                 and len(rec.bodies("/slack")) >= 2 and len(rec.bodies("/generic")) >= 2)
    # 2: an operator's abort is a warning, not an error (v3 passes its gate,
    # and with no traffic its checks hold)
    assert d.ctl("rollout", "web", "--revision", "v3", "--endpoints", v2.addr)[0] == 0
    assert d.ctl("abort", "web")[0] == 0
    assert _wait(lambda: len(rec.bodies("/teams")) >= 2 and len(rec.bodies("/slack")) >= 4)
    time.sleep(0.3)  # anything more would be a bug
    rec.srv.shutdown()

    slack = rec.bodies("/slack")
    # info gets every alert: started, rolled back, started, aborted
    assert len(slack) == 4, slack
    s0 = slack[0]
    assert s0["channel"] == "on-call" and s0["username"] == "canary-bot", s0
    assert s0["icon_emoji"] == ":rocket:" and s0["icon_url"] == "", s0
    a = s0["attachments"][0]
    assert a["color"] == "good" and a["author_name"] == "web" and a["mrkdwn_in"] == ["text"], a
    assert "v2" in a["text"], a
    titles = [f["title"] for f in a["fields"]]
    assert titles == ["Target", "Failed checks threshold", "Progress deadline",
                      "Traffic routing"], a["fields"]
    assert a["fields"][3]["value"] == "Weight step: 10 max: 50", a["fields"]
    rb = slack[1]["attachments"][0]
    assert rb["color"] == "danger" and rb["fields"] == [], rb
    assert slack[3]["attachments"][0]["color"] == "good", slack[3]  # a warning

    teams = rec.bodies("/teams")
    # warn: the automatic rollback (error) and the abort (warn)
    assert len(teams) == 2, teams
    t0 = teams[0]
    assert t0["@type"] == "MessageCard" and t0["@context"] == "http://schema.org/extensions", t0
    assert t0["themeColor"] == "FF0000" and t0["summary"] == "web", t0
    assert t0["sections"][0]["activitySubtitle"] == "web", t0
    assert teams[1]["themeColor"] == "0076D7", teams[1]

    # error: the automatic rollback only; Discord's Slack-compatible path
    disc = rec.bodies("/discord/slack")
    assert len(disc) == 1, disc
    assert disc[0]["channel"] == "general" and disc[0]["username"] == "flagger", disc
    assert disc[0]["attachments"][0]["color"] == "danger", disc

    gen = [(h, b) for p, h, b in rec.calls if p == "/generic"]
    assert len(gen) == 4, gen
    h, g = gen[1]
    assert h.get("Authorization") == "Bearer s3cr3t-token", h
    assert g["name"] == "web" and g["severity"] == "error" and g["event"] == "rollback", g
    assert g["phase"] == "Failed" and g["canaryRevision"] == "v2", g
    assert [b["severity"] for h, b in gen] == ["info", "error", "info", "warn"], gen

    evs = d.events("web")
    sent = [e["message"] for e in evs if e["type"] == "notification"]
    assert sum("alert 'all' to slack provider 'chat' sent: answered 200" in m
               for m in sent) == 4, sent
    assert sum("alert 'errors' to discord provider 'disc' sent" in m for m in sent) == 1, sent
    # the address is a secret: never in the audit
    assert not any(str(rec.port) in e["message"] for e in evs if e["type"] == "notification")


if __name__ == "__main__":
    sys.exit(run(globals()))
