"""Operator control (issue 11): staged steps and pauses, confirm-* gates
polled like Flagger's, approval with a reason, abort, retry and undo, on
the built-in proxy with real upstreams, a real webhook receiver and real
clients."""
import json
import os
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLOW, Canaryd, EventStream, Load, Upstream, free_port, get, run  # noqa: E402


class Gate:
    """A confirm-* webhook receiver whose answer the test sets."""

    def __init__(self, status):
        self.status = status
        self.calls = []
        gate = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                gate.calls.append(json.loads(self.rfile.read(n) or b"{}"))
                self.send_response(gate.status)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.port = free_port()
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def url(self):
        return "http://127.0.0.1:%d/gate" % self.port


def _yaml(port, v1, analysis, canary=None):
    text = ("apiVersion: canaryd/v1\nkind: Canary\nmetadata:\n  name: web\nspec:\n"
            "  router: builtin\n  listen: 127.0.0.1:%d\n"
            "  stable:\n    revision: v1\n    endpoints: [%s]\n" % (port, v1.addr))
    if canary:
        text += "  canary:\n    revision: v2\n    endpoints: [%s]\n" % canary.addr
    text += "  analysis:\n    interval: 300ms\n    threshold: 3\n    minSamples: 5\n"
    text += "    metrics:\n      - name: request-success-rate\n" \
            "        thresholdRange: {min: 99}\n        interval: 1m\n"
    return text + "".join("    %s\n" % l for l in analysis)


def _wait(d, pred, what, timeout=20):
    end = time.time() + timeout * SLOW
    s = None
    while time.time() < end:
        s = d.status("web")
        if pred(s):
            return s
        time.sleep(0.05)
    raise AssertionError("%s not reached in %ds; last status %s" % (what, timeout, s))


def test_staged_rollout_with_pauses_an_approval_and_a_confirm_promotion_gate():
    v1, v2 = Upstream("v1"), Upstream("v2")
    gate = Gate(403)
    port = free_port()
    d = Canaryd(_yaml(port, v1, [
        "steps: [10, {pause: {duration: 1s}}, 30, {pause: {}}, 50]",
        "approval: {above: 30}",
        "webhooks:",
        "  - {name: change-board, type: confirm-promotion, url: '%s', timeout: 2s}" % gate.url(),
    ]))
    load = Load(port, threads=2, rps_per_thread=60)
    time.sleep(0.3)
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    s = d.status("web")
    assert s["canaryWeight"] == 10 and s["currentStep"] == 0, s
    # the timed pause ends by itself, 30 is set, then the indefinite pause
    s = _wait(d, lambda s: s.get("paused", {}).get("by") == "step" and s["canaryWeight"] == 30,
              "the indefinite pause at 30")
    time.sleep(0.8)
    assert d.status("web")["phase"] == "Paused"  # it waits, whatever the checks say
    rc, out, err = d.ctl("resume", "web")
    assert rc == 0, (rc, out, err)
    # 50 is above the approval line: WaitingPromotion until approved
    s = _wait(d, lambda s: s["phase"] == "WaitingPromotion", "the approval gate")
    assert s["gate"]["waitingFor"] == "approval" and s["canaryWeight"] == 30, s
    st, body = d.api("POST", "/api/v1/canaries/web/approve", {"reason": "CAB-1234 signed off"})
    assert st == 200, (st, body)
    assert body["canaryWeight"] == 50, body
    # the promotion waits for the webhook, polled each interval, checks going on
    s = _wait(d, lambda s: s.get("gate", {}).get("lastAnswer"), "a confirm-promotion answer")
    assert s["phase"] == "WaitingPromotion" and s["canaryWeight"] == 50, s
    assert "HTTP 403" in s["gate"]["lastAnswer"], s
    polls = len(gate.calls)
    time.sleep(1.0)
    assert len(gate.calls) >= polls + 2, (polls, len(gate.calls))
    assert gate.calls[-1]["type"] == "confirm-promotion" and gate.calls[-1]["name"] == "web", \
        gate.calls[-1]
    gate.status = 200
    s = d.wait_phase("web", "Succeeded", timeout=20)
    load.stop()
    assert s["stableRevision"] == "v2", s
    assert not load.errors, load.errors[:5]
    assert load.non2xx() == 0, load.by_status
    rc, out, err = d.ctl("history", "web")
    assert rc == 0, (rc, out, err)
    print(out)
    ev = d.events("web")
    approved = [e for e in ev if e["type"] == "approved"]
    assert approved and "CAB-1234 signed off" in approved[0]["message"], approved
    assert approved[0]["actor"] != "canaryd", approved
    weights = [e["weight"] for e in ev if e["type"] == "weight"]
    assert weights == [10, 30, 50], weights
    assert any(e["type"] == "webhook" and "HTTP 403" in e["message"] for e in ev), ev


def test_confirm_promotion_to_a_closed_port_holds_until_aborted():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    closed = free_port()
    d = Canaryd(_yaml(port, v1, [
        "stepWeight: 50",
        "maxWeight: 50",
        "webhooks:",
        "  - {name: cab, type: confirm-promotion, url: 'http://127.0.0.1:%d/', timeout: 1s}"
        % closed,
    ]))
    load = Load(port, threads=2, rps_per_thread=60)
    time.sleep(0.3)
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    s = _wait(d, lambda s: s.get("gate", {}).get("lastAnswer"), "a confirm-promotion answer")
    assert s["phase"] == "WaitingPromotion" and s["canaryWeight"] == 50, s
    assert "port %d" % closed in s["gate"]["lastAnswer"], s
    time.sleep(1.0)
    s = d.status("web")
    assert s["phase"] == "WaitingPromotion" and s["canaryWeight"] == 50, s
    # pause and resume are idempotent; an abort is recorded as one
    st, body = d.api("POST", "/api/v1/canaries/web/pause", {})
    assert st == 200 and body["phase"] == "Paused", (st, body)
    st, body = d.api("POST", "/api/v1/canaries/web/pause", {})
    assert st == 200 and "already paused" in body.get("note", ""), (st, body)
    assert body["changed"] is False, body
    st, body = d.api("POST", "/api/v1/canaries/web/abort", {"reason": "INC-42: bad latency"})
    assert st == 200 and body["phase"] == "Failed" and body["aborted"] is True, (st, body)
    load.stop()
    ev = d.events("web")
    assert [e["type"] for e in ev].count("abort") == 1, ev
    assert not any(e["type"] == "rollback" for e in ev), ev
    assert "INC-42: bad latency" in [e for e in ev if e["type"] == "abort"][0]["message"]
    for _ in range(20):
        st, hdr, body = get(port)
        assert st == 200 and body == b"v1\n", (st, body)
    # retry starts the same revision again
    st, body = d.api("POST", "/api/v1/canaries/web/retry", {})
    assert st == 200 and body["phase"] == "Progressing" and body["canaryRevision"] == "v2", body


def test_undo_after_a_promotion_returns_to_the_previous_stable_at_once():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(_yaml(port, v1, ["stepWeight: 50", "undoWindow: 1h"]))
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    st, body = d.api("POST", "/api/v1/canaries/web/promote", {"full": True})
    assert st == 200, (st, body)
    s = d.wait_phase("web", "Succeeded", timeout=10)
    assert s["undo"]["revision"] == "v1" and s["undo"]["endpoints"] == [v1.addr], s
    for _ in range(10):
        assert get(port)[2] == b"v2\n"
    load = Load(port, threads=2, rps_per_thread=100)
    time.sleep(0.5)
    t0 = time.time()
    st, body = d.api("POST", "/api/v1/canaries/web/undo", {"reason": "p99 doubled"})
    t_ok = time.time()
    assert st == 200, (st, body)
    assert body["phase"] == "Failed" and body["stableRevision"] == "v1", body
    time.sleep(0.5)
    load.stop()
    # every request sent after the answer went to the previous stable
    late = [u for (t, u, s) in load.timeline if t > t_ok]
    assert late and all(u == "v1" for u in late), late[:20]
    first_v1 = min(t for (t, u, s) in load.timeline if t > t0 and u == "v1")
    print("  undo answered in %.1f ms; first request on v1 %.1f ms after the call"
          % ((t_ok - t0) * 1000, (first_v1 - t0) * 1000))
    assert not load.errors and load.non2xx() == 0, (load.errors[:5], load.by_status)
    ev = d.events("web")
    assert ev[-1]["type"] == "undo" and "p99 doubled" in ev[-1]["message"], ev[-1]
    # once only
    st, body = d.api("POST", "/api/v1/canaries/web/undo", {})
    assert st == 409 and "nothing to undo" in body["error"], (st, body)
    # a restart keeps the state: v1 stable, v2 failed
    d.stop()
    d2 = Canaryd(config_path=d.config_path, data_dir=d.data_dir)
    s = d2.status("web")
    assert s["stableRevision"] == "v1" and s["phase"] == "Failed", s
    assert get(port)[2] == b"v1\n"


def test_post_promotion_analysis_undoes_a_bad_release_by_itself():
    # v2 passes a short rollout on light traffic, then serves 100 % and fails
    # 10 % of it: the post-promotion watch undoes the promotion
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=0.1)
    port = free_port()
    d = Canaryd(_yaml(port, v1, ["stepWeight: 50", "postPromotion: {window: 1m}"]))
    load = Load(port, threads=2, rps_per_thread=100)
    time.sleep(1.0)  # the previous stable's baseline
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    st, body = d.api("POST", "/api/v1/canaries/web/promote", {"full": True})
    assert st == 200, (st, body)
    d.wait_phase("web", "Succeeded", timeout=10)
    t0 = time.time()
    s = d.wait_phase("web", "Failed", timeout=30)
    print("  post-promotion undo %.1f s after the promotion" % (time.time() - t0))
    time.sleep(0.5)
    load.stop()
    assert s["stableRevision"] == "v1" and s["canaryRevision"] == "v2", s
    ev = d.events("web")
    undo = [e for e in ev if e["type"] == "undo"]
    assert undo and undo[0]["actor"] == "canaryd", undo
    assert "post-promotion analysis" in undo[0]["message"], undo
    late = [u for (t, u, st_) in load.timeline if t > time.time() - 0.3]
    assert late and all(u == "v1" for u in late), late[:10]


def test_event_stream_shows_the_present_then_each_event_as_it_happens():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(_yaml(port, v1, ["stepWeight: 50", "maxWeight: 50"]))
    st = EventStream(d, timeout=10)
    assert st.status == 200 and "text/event-stream" in st.head, st.head
    typ, data = st.next()  # the present first, no history
    assert typ == "status" and data["name"] == "web" and data["phase"] == "Initialized", data
    lat = []
    for action, body, want in (("rollout", {"revision": "v2", "endpoints": [v2.addr]},
                                "rollout-started"),
                               ("pause", {}, "paused"), ("abort", {"reason": "x"}, "abort")):
        t0 = time.time()
        code, _ = d.api("POST", "/api/v1/canaries/web/" + action, body)
        assert code == 200, (action, code)
        seen = []
        while True:
            typ, data = st.next()
            seen.append((typ, data.get("type"), data.get("phase")))
            if typ == "audit" and data["type"] == want:
                lat.append(time.time() - t0)
                break
        typ, data = st.next()
        while typ != "status":
            typ, data = st.next()
        assert data["name"] == "web", data
    assert data["phase"] == "Failed" and data["aborted"] is True, data
    print("  API call -> its audit event on the stream: %s ms"
          % ", ".join("%.1f" % (x * 1000) for x in lat))
    # one canary's stream, and a canary that does not exist
    code, body = d.api("GET", "/api/v1/events/stream?canary=nosuch")
    assert code == 404 and "nosuch" in body["error"], (code, body)
    st2 = EventStream(d, "?canary=web", timeout=10)
    assert st2.next()[1]["name"] == "web"


if __name__ == "__main__":
    run(globals())
