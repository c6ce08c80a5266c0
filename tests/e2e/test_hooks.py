"""Webhooks: gates before checks (pre-rollout, rollout), rollback hooks
polled as Flagger's, notifications (post-rollout, event), against a real
HTTP receiver; and exec hooks, real programs."""
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
                if isinstance(code, list):  # one answer a call, the last kept
                    code = code.pop(0) if len(code) > 1 else code[0]
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
    for name, typ, path, *more in extra:
        text += ("      - name: %s\n        type: %s\n        url: %s\n        timeout: 2s\n"
                 "        metadata: {cmd: \"hey -z 1m\"}\n" % (name, typ, rec.url(path)))
        text += "".join("        %s\n" % m for m in more)
    return text


def _wait(pred, timeout=5):
    end = time.time() + timeout
    while time.time() < end and not pred():
        time.sleep(0.05)
    return pred()


def test_failing_rollout_webhook_fails_checks_and_rolls_back():
    # 204 is a 2xx, but Flagger fails a hook on "r.StatusCode > 202"; a
    # rollback hook that does not answer 2xx signals no rollback
    rec = Receiver({"/load": 204, "/rb": 404})
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="300ms",
                            threshold=2, extra_spec=_hooks_yaml(rec, [
                                ("load-test", "rollout", "/load"),
                                ("manual-rollback", "rollback", "/rb"),
                                ("after", "post-rollout", "/post")])))
    load = Load(port, threads=2, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("web", "Failed", timeout=20)
    _wait(lambda: "/post" in rec.paths())
    load.stop()
    rec.srv.shutdown()
    assert s["failedChecks"] == 2, s
    assert rec.paths().count("/load") == 2, rec.paths()
    assert "/post" in rec.paths(), rec.paths()
    body = dict(rec.calls)["/load"]
    assert body["name"] == "web" and body["metadata"]["cmd"] == "hey -z 1m", body
    assert body["phase"] == "Progressing" and body["checksum"] == "v2", body
    # post-rollout after a rollback: phase Failed, as Flagger's
    assert dict(rec.calls)["/post"]["phase"] == "Failed", rec.calls
    # the rollback hook was polled while the rollout ran, and not after
    rb = [b for p, b in rec.calls if p == "/rb"]
    assert rb and all(b["phase"] == "Progressing" for b in rb), rb
    checks = [e for e in d.events("web") if e["type"] == "check"]
    gate = [m for m in checks[0]["metrics"] if m["name"] == "rollout/load-test"]
    assert gate and gate[0]["passed"] is False and "204" in gate[0].get("reason", ""), checks[0]
    hooks = [e["message"] for e in d.events("web") if e["type"] == "webhook"]
    assert any("'manual-rollback' is not signalling a rollback: answered HTTP 404" in m
               for m in hooks), hooks
    assert sum("not signalling" in m for m in hooks) == 1, hooks  # audited once
    assert any("post-rollout webhook 'after' answered 200" in m for m in hooks), hooks


def test_rollback_hook_that_answers_2xx_rolls_back():
    # Flagger's rollback hook: "rollback canary analysis if webhook
    # returns HTTP 200"
    rec = Receiver({"/rb": 404})
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="300ms",
                            max_weight=50, step_weight=5, extra_spec=_hooks_yaml(rec, [
                                ("manual-rollback", "rollback", "/rb")])))
    load = Load(port, threads=2, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    assert _wait(lambda: rec.paths().count("/rb") >= 2)
    assert d.status("web")["phase"] == "Progressing"
    rec.statuses["/rb"] = 202
    s = d.wait_phase("web", "Failed", timeout=10)
    load.stop()
    rec.srv.shutdown()
    assert s["failedChecks"] == 0, s
    evs = d.events("web")
    rb = [e for e in evs if e["type"] == "rollback"]
    assert rb and rb[0]["actor"] == "rollback hook 'manual-rollback'", rb
    assert any(e["type"] == "webhook" and "rollback webhook 'manual-rollback' answered 202"
               in e["message"] for e in evs), evs


def test_passing_gates_let_the_rollout_through_and_events_are_posted():
    # Flagger's retries: a 503 is posted again (after 1 s), and passes
    rec = Receiver({"/pre": [503, 200]})
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    # one step of 50 %: the check has its 100 requests in about 2 s
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="300ms",
                            max_weight=50, step_weight=50, extra_spec=_hooks_yaml(rec, [
                                ("conformance", "pre-rollout", "/pre", "retries: 1"),
                                ("load-test", "rollout", "/load"),
                                ("events", "event", "/ev")])))
    load = Load(port, threads=2, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("web", "Succeeded", timeout=20)
    load.stop()
    assert s["failedChecks"] == 0, s
    _wait(lambda: any(b.get("event") == "succeeded" for p, b in rec.calls if p == "/ev"))
    rec.srv.shutdown()
    p = rec.paths()
    assert p.count("/pre") == 2, p  # the 503, then a pass: never again
    assert p.count("/load") >= 2, p
    evs = [b for path, b in rec.calls if path == "/ev"]
    done = [b for b in evs if b.get("event") == "succeeded"]
    assert done, evs
    md = done[0]["metadata"]
    # Flagger's CallEventWebhook: a Kubernetes event type, Unix ms, the
    # hook's metadata beside
    assert md["eventType"] == "Normal" and md["timestamp"].isdigit(), md
    assert abs(int(md["timestamp"]) / 1000 - time.time()) < 60, md
    assert md["cmd"] == "hey -z 1m" and "eventMessage" in md, md
    assert done[0]["phase"] == "Succeeded", done[0]
    # the results of event hooks are audited, and not posted again
    assert all(b.get("event") != "webhook" or "event webhook" not in
               b["metadata"]["eventMessage"] for b in evs), evs


def _exec_yaml(hooks):
    text = "    webhooks:\n"
    for name, typ, argv, timeout in hooks:
        text += ("      - name: %s\n        type: %s\n        exec:\n"
                 "          command: [%s]\n          timeout: %s\n"
                 % (name, typ, ", ".join(json.dumps(a) for a in argv), timeout))
    return text


def test_exec_hooks_get_the_canary_in_their_environment_and_time_out():
    tmp = os.path.join(os.environ.get("TMPDIR", "/tmp"), "canaryd-exec-%d" % os.getpid())
    os.makedirs(tmp, exist_ok=True)
    envfile = os.path.join(tmp, "env")
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="300ms",
                            threshold=2, extra_spec=_exec_yaml([
                                # a gate whose program fails: the check fails
                                ("smoke", "rollout", ["/bin/sh", "-c", "echo smoke broke; exit 3"],
                                 "5s"),
                                # a rollback hook that hangs: timed out, no rollback
                                ("slow", "rollback", ["/bin/sleep", "30"], "200ms"),
                                ("scale-down", "post-rollout",
                                 ["/bin/sh", "-c", "env > %s; echo scaled; seq 1 150; "
                                  "printf 'bell\\007 done'" % envfile], "5s")])))
    load = Load(port, threads=2, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("web", "Failed", timeout=20)
    load.stop()
    assert _wait(lambda: any("post-rollout exec hook 'scale-down'" in e["message"]
                             for e in d.events("web")))
    assert s["failedChecks"] == 2, s
    env = dict(l.split("=", 1) for l in open(envfile).read().splitlines() if "=" in l)
    assert env["CANARY_NAME"] == "web" and env["CANARY_REVISION"] == "v2", env
    assert env["CANARY_STABLE_REVISION"] == "v1" and env["CANARY_PHASE"] == "Failed", env
    assert env["CANARY_HOOK_TYPE"] == "post-rollout" and env["CANARY_WEIGHT"] == "0", env
    assert env["PATH"] and json.loads(env["CANARY_PAYLOAD"])["phase"] == "Failed", env
    assert "HOME" not in env, env  # only what canaryd gives
    evs = d.events("web")
    checks = [e for e in evs if e["type"] == "check"]
    gate = [m for m in checks[0]["metrics"] if m["name"] == "rollout/smoke"]
    assert gate and "exited 3: smoke broke" in gate[0].get("reason", ""), checks[0]
    msgs = [e["message"] for e in evs if e["type"] == "webhook"]
    assert any("rollback exec hook 'slow' is not signalling a rollback: timed out" in m
               for m in msgs), msgs
    assert any("post-rollout exec hook 'scale-down' exited 0" in m and "scaled" in m
               for m in msgs), msgs
    # the program's output is kept in the audit, as lines of plain text
    done = [e for e in evs if "post-rollout exec hook 'scale-down' exited 0" in e["message"]]
    detail = done[0].get("detail", "")
    assert detail.startswith("scaled\n1\n2\n") and "\n150\n" in detail, done[0]
    assert detail.endswith("bell? done"), detail[-40:]
    rb = [e for e in evs if e["type"] == "rollback"]
    assert rb and rb[0]["actor"] == "canaryd", rb  # the failed checks, not the hook


if __name__ == "__main__":
    sys.exit(run(globals()))
