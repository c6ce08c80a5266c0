"""Webhooks: gates before checks (pre-rollout, rollout) and notifications
(rollback, post-rollout, event), against a real HTTP receiver."""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from harness import Canaryd, Load, Upstream, canary_yaml, free_port, run  # noqa: E402


class Receiver:
    """Records every POST; answers with the status configured for its path."""

    def __init__(self, statuses):
        self.calls = []
        self.statuses = statuses
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(n) or b"{}")
                rec.calls.append((self.path, body))
                code = rec.statuses.get(self.path, 200)
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.port = free_port()
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def paths(self):
        return [p for p, b in self.calls]


def _hooks_yaml(rec, extra):
    text = "    webhooks:\n"
    for name, typ, path in extra:
        text += ("      - name: %s\n        type: %s\n        url: %s\n        timeout: 2s\n"
                 "        metadata: {cmd: \"hey -z 1m\"}\n" % (name, typ, rec.url(path)))
    return text


def test_failing_rollout_webhook_fails_checks_and_rolls_back():
    rec = Receiver({"/load": 500})
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="300ms",
                            threshold=2, extra_spec=_hooks_yaml(rec, [
                                ("load-test", "rollout", "/load"),
                                ("notify-rollback", "rollback", "/rb"),
                                ("after", "post-rollout", "/post")])))
    load = Load(port, threads=2, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("web", "Failed", timeout=20)
    end = time.time() + 5
    while time.time() < end and not ("/rb" in rec.paths() and "/post" in rec.paths()):
        time.sleep(0.05)
    load.stop()
    rec.srv.shutdown()
    assert s["failedChecks"] == 2, s
    assert rec.paths().count("/load") == 2, rec.paths()
    assert "/rb" in rec.paths() and "/post" in rec.paths(), rec.paths()
    body = dict(rec.calls)["/load"]
    assert body["name"] == "web" and body["metadata"]["cmd"] == "hey -z 1m", body
    checks = [e for e in d.events("web") if e["type"] == "check"]
    gate = [m for m in checks[0]["metrics"] if m["name"] == "rollout/load-test"]
    assert gate and gate[0]["passed"] is False and "500" in gate[0].get("reason", ""), checks[0]
    hooks = [e for e in d.events("web") if e["type"] == "webhook"]
    assert any("notify-rollback" in e["message"] for e in hooks), hooks


def test_passing_gates_let_the_rollout_through_and_events_are_posted():
    rec = Receiver({})
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="300ms",
                            max_weight=20, step_weight=10, extra_spec=_hooks_yaml(rec, [
                                ("conformance", "pre-rollout", "/pre"),
                                ("load-test", "rollout", "/load"),
                                ("events", "event", "/ev")])))
    load = Load(port, threads=2, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    d.wait_phase("web", "Succeeded", timeout=20)
    load.stop()
    time.sleep(0.5)
    rec.srv.shutdown()
    p = rec.paths()
    assert p.count("/pre") == 1, p  # pre-rollout runs until it passes once
    assert p.count("/load") >= 2, p
    evs = [b for path, b in rec.calls if path == "/ev"]
    assert any(b["metadata"]["eventType"] == "succeeded" for b in evs), evs


if __name__ == "__main__":
    sys.exit(run(globals()))
