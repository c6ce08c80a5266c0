"""Chaos: metric providers (Prometheus, web) and webhook receivers that
misbehave. They hang, reset the connection, answer bytes that are not
HTTP, redirect to themselves, trickle a body, send a huge one, or answer
200 with garbage: invalid JSON, wrong types, NaN, infinities, numbers
that are not numbers, duplicated keys, error texts that would forge a log
line. Whatever they do, the check that depends on them fails with the
reason in the audit event (a check never passes on garbage), hooks time
out as configured, canaryd keeps running, and the proxy keeps answering
its clients meanwhile (measured)."""
import json
import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from harness import SLOW, Canaryd, Load, Upstream, free_port, run  # noqa: E402


def _vector(value):
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"app": "web"}, "value": [1733040000.5, value]}]}})


# what a 200 answer carries, by the first segment of the path
BODIES = {
    "notjson": "<html>502 Bad Gateway</html>",
    "empty": "",
    "nan": _vector("NaN"),
    "inf": _vector("+Inf"),
    "neginf": _vector("-Inf"),
    "hex": _vector("0x10"),
    "bool": _vector(True),
    "twosamples": json.dumps({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {}, "value": [1, "1"]}, {"metric": {}, "value": [1, "2"]}]}}),
    "wrongtypes": json.dumps({"status": 1, "data": "x"}),
    "dupkeys": '{"status":"error","status":"success","data":{"resultType":"scalar","result":[1,"50"]}}',
    "forge": json.dumps({"status": "error", "errorType": "bad_data",
                         "error": "boom\nFORGED-LINE level=error msg=\"rollout approved\"\x1b[2J"}),
    "ok": _vector("100"),
    "webhex": json.dumps({"value": "0x10"}),
    "webinf": json.dumps({"value": "Infinity"}),
    "webok": json.dumps({"value": 100}),
}


class Receiver:
    """A raw HTTP server whose behaviour is chosen by the first segment of
    the request path; it counts connections open at once."""

    def __init__(self):
        self.port = free_port()
        self.lock = threading.Lock()
        self.open = 0
        self.max_open = 0
        self.requests = []
        self.stopping = threading.Event()
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(256)
        self.sock.settimeout(0.2)
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path):
        return "http://127.0.0.1:%d%s" % (self.port, path)

    def stop(self):
        self.stopping.set()
        self.sock.close()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        with self.lock:
            self.open += 1
            self.max_open = max(self.max_open, self.open)
        try:
            c.settimeout(30)
            self._one(c)
        except OSError:
            pass
        finally:
            with self.lock:
                self.open -= 1
            c.close()

    def _read_request(self, c):
        data = b""
        while b"\r\n\r\n" not in data and len(data) < 65536:
            d = c.recv(65536)
            if not d:
                return None
            data += d
        head, _, body = data.partition(b"\r\n\r\n")
        n = 0
        for line in head.split(b"\r\n")[1:]:
            k, _, v = line.partition(b":")
            if k.strip().lower() == b"content-length":
                n = int(v.strip())
        while len(body) < n:
            d = c.recv(65536)
            if not d:
                break
            body += d
        return head.split(b"\r\n")[0].decode("latin-1")

    def _one(self, c):
        line = self._read_request(c)
        if line is None:
            return
        path = line.split(" ")[1]
        with self.lock:
            self.requests.append(path)
        kind = path.split("/")[1].split("?")[0]
        if kind == "hang":  # never answers, until the test ends
            self.stopping.wait(120)
        elif kind == "reset":
            c.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        elif kind == "garbage":
            c.sendall(b"\x00\x01\x02\xff not HTTP at all\r\n\r\n\x1b[2J")
        elif kind == "redirect":  # to itself, forever
            c.sendall(b"HTTP/1.1 302 Found\r\nLocation: " + path.encode() +
                      b"\r\nContent-Length: 0\r\n\r\n")
        elif kind == "status500":
            c.sendall(b"HTTP/1.1 500 Internal Server Error\r\nContent-Length: 2\r\n\r\nno")
        elif kind == "slow":  # slowloris: a byte every 300 ms
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 200\r\n\r\n")
            for _ in range(200):
                if self.stopping.wait(0.3):
                    break
                c.sendall(b" ")
        elif kind == "huge":  # 5 MiB of a valid-looking number
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % (5 << 20))
            chunk = b"1" * 65536
            for _ in range(80):
                c.sendall(chunk)
        else:
            body = BODIES.get(kind, "{}").encode()
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                      b"Content-Length: %d\r\n\r\n" % len(body) + body)


def _yaml(port, stable, metrics="", webhooks="", interval="500ms", threshold=1,
          max_weight=50, step=10):
    # onNoData fail: a reading that is no value fails its check, so that a
    # misbehaving receiver shows as a failed rollout (hold would wait)
    text = """apiVersion: canaryd/v1
kind: Canary
metadata:
  name: web
spec:
  router: builtin
  listen: 127.0.0.1:%d
  stable: {revision: v1, endpoints: [%s]}
  analysis:
    interval: %s
    threshold: %d
    maxWeight: %d
    stepWeight: %d
    onNoData: fail
    metrics:
      - name: request-success-rate
        thresholdRange: {min: 0}
        interval: 1m
%s""" % (port, stable, interval, threshold, max_weight, step, metrics)
    if webhooks:
        text += "    webhooks:\n" + webhooks
    return text


def _prom_metric(name, rec, kind, rng="min: 0", timeout="1s"):
    return ("      - name: %s\n        query: up\n"
            "        provider: {type: prometheus, address: '%s', timeout: %s}\n"
            "        thresholdRange: {%s}\n        interval: 1m\n"
            % (name, rec.url("/" + kind), timeout, rng))


def _web_metric(name, rec, kind, rng="min: 0", timeout="1s"):
    return ("      - name: %s\n"
            "        provider: {type: web, url: '%s', jsonPath: $.value, timeout: %s}\n"
            "        thresholdRange: {%s}\n        interval: 1m\n"
            % (name, rec.url("/" + kind), timeout, rng))


def _hook(name, typ, url, timeout="1s"):
    return ("      - name: %s\n        type: %s\n        url: '%s'\n        timeout: %s\n"
            % (name, typ, url, timeout))


def _printable(s):
    return all(0x20 <= ord(ch) < 0x7f for ch in s)


def _first_check(d):
    checks = [e for e in d.events("web") if e["type"] == "check"]
    assert checks, d.events("web")
    return checks[0]


def _served_throughout(load, since, until, window=0.5):
    """Every <window> seconds between <since> and <until> some request that
    started then got an answer: the proxy never stood still."""
    with load.lock:
        starts = sorted(t for t, _, _ in load.timeline)
    gaps = []
    t = since
    while t + window <= until:
        if not any(t <= s < t + window for s in starts):
            gaps.append(round(t - since, 2))
        t += window
    return gaps


def test_prometheus_that_misbehaves_never_passes_a_check():
    # thresholdRange {min: 0}: any number read out of the garbage would pass
    rec = Receiver()
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    kinds = ["hang", "reset", "garbage", "redirect", "slow", "huge", "notjson", "empty",
             "nan", "inf", "hex", "bool", "twosamples", "wrongtypes"]
    metrics = "".join(_prom_metric("m-" + k, rec, k) for k in kinds)
    metrics += _prom_metric("m-ok", rec, "ok")
    d = Canaryd(_yaml(port, v1.addr, metrics))
    load = Load(port, threads=2, rps_per_thread=50)
    t0 = time.time()
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("web", ("Failed", "Succeeded"), timeout=30)
    t1 = time.time()
    load.stop()
    rec.stop()
    assert s["phase"] == "Failed", s
    check = _first_check(d)
    by_name = {m["name"]: m for m in check["metrics"]}
    assert by_name["m-ok"]["passed"] is True and by_name["m-ok"]["value"] == 100, by_name["m-ok"]
    want = {
        "hang": "timed out", "reset": "did not answer", "garbage": "did not answer",
        "redirect": "answered HTTP 302", "slow": "timed out", "huge": "larger than",
        "notjson": "not JSON", "empty": "not JSON", "nan": "value is NaN",
        "inf": "value is +Inf", "hex": "not a number",
        "bool": "not a number", "twosamples": "2 samples", "wrongtypes": "query failed",
    }
    for k, why in want.items():
        m = by_name["m-" + k]
        assert m["passed"] is False and m["value"] is None, m
        assert why in m.get("reason", ""), (k, m)
        assert _printable(m["reason"]), m
    assert d.alive()
    # the proxy answered every request while the providers hung and trickled
    assert load.errors == [] and load.non2xx() == 0, (load.errors[:3], load.by_status)
    gaps = _served_throughout(load, t0 + 0.2, t1 - 0.2)
    print("    proxy during the hanging check: %d requests in %.1fs, 0 errors, gaps %s"
          % (load.total(), t1 - t0, gaps))
    assert gaps == [], gaps


def test_web_metric_garbage_never_passes_a_check():
    rec = Receiver()
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    metrics = (_web_metric("w-hex", rec, "webhex", "min: 10") +
               _web_metric("w-inf", rec, "webinf", "min: 10") +
               _web_metric("w-dup", rec, "dupkeys", "min: 10") +
               _web_metric("w-hang", rec, "hang", "min: 10") +
               _web_metric("w-ok", rec, "webok", "min: 10"))
    d = Canaryd(_yaml(port, v1.addr, metrics))
    load = Load(port, threads=1, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("web", ("Failed", "Succeeded"), timeout=30)
    load.stop()
    rec.stop()
    assert s["phase"] == "Failed", s
    by_name = {m["name"]: m for m in _first_check(d)["metrics"]}
    assert by_name["w-ok"]["passed"] is True, by_name
    for k, why in (("w-hex", "is not a number"), ("w-inf", "is not a number"),
                   ("w-dup", "duplicate"), ("w-hang", "timed out")):
        assert by_name[k]["passed"] is False and why in by_name[k].get("reason", ""), by_name[k]


def test_an_error_text_cannot_forge_a_log_line():
    rec = Receiver()
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(_yaml(port, v1.addr, _prom_metric("m-forge", rec, "forge")))
    load = Load(port, threads=1, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    d.wait_phase("web", "Failed", timeout=30)
    load.stop()
    rec.stop()
    m = _first_check(d)["metrics"][1]
    assert "query failed: boom" in m["reason"] and _printable(m["reason"]), m
    out = d.output()
    assert "FORGED-LINE" in out, out[-2000:]  # the text is logged, on its line
    assert not any(l.startswith("FORGED-LINE") for l in out.splitlines()), out[-2000:]
    assert "\x1b" not in out


def test_webhook_receivers_that_misbehave_fail_their_gates_in_time():
    rec = Receiver()
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    kinds = ["hang", "reset", "garbage", "redirect", "slow", "huge", "status500"]
    hooks = "".join(_hook("g-" + k, "rollout", rec.url("/" + k)) for k in kinds)
    hooks += _hook("g-ok", "rollout", rec.url("/ok"))
    hooks += _hook("rb-hang", "post-rollout", rec.url("/hang"), timeout="1500ms")
    d = Canaryd(_yaml(port, v1.addr, webhooks=hooks))
    load = Load(port, threads=2, rps_per_thread=50)
    t0 = time.time()
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("web", ("Failed", "Succeeded"), timeout=30)
    # the post-rollout notification times out after its own 1.5 s
    end = time.time() + 10 * SLOW
    hook_events = []
    while time.time() < end and not hook_events:
        hook_events = [e for e in d.events("web") if e["type"] == "webhook"]
        time.sleep(0.1)
    t1 = time.time()
    load.stop()
    rec.stop()
    assert s["phase"] == "Failed", s
    gates = {m["name"]: m for m in _first_check(d)["metrics"]}
    assert gates["rollout/g-ok"]["passed"] is True, gates
    want = {"hang": "timed out", "reset": "reset", "garbage": "", "redirect": "HTTP 302",
            "slow": "timed out", "huge": "larger than 65536", "status500": "HTTP 500"}
    for k, why in want.items():
        g = gates["rollout/g-" + k]
        assert g["passed"] is False and why in g.get("reason", "") and g["reason"], g
        assert _printable(g["reason"]), g
    assert hook_events, d.events("web")
    msg = hook_events[0]["message"]
    assert "post-rollout webhook 'rb-hang' failed after" in msg and "timed out" in msg, msg
    ms = int(msg.split("failed after ")[1].split("ms")[0])
    assert 1500 <= ms < 1500 + 5000 * SLOW, msg
    assert d.alive()
    assert load.errors == [] and load.non2xx() == 0, (load.errors[:3], load.by_status)
    gaps = _served_throughout(load, t0 + 0.2, t1 - 0.2)
    print("    proxy while hooks hung: %d requests in %.1fs, 0 errors, gaps %s"
          % (load.total(), t1 - t0, gaps))
    assert gaps == [], gaps


def test_a_hanging_event_receiver_does_not_pile_up_connections():
    # an event webhook is posted for every audit event; its receiver hangs
    # and the timeout is long: requests to it must not pile up without
    # bound (each would hold a socket, until the process runs out of them)
    rec = Receiver()
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    hooks = _hook("events", "event", rec.url("/hang"), timeout="60s")
    d = Canaryd(_yaml(port, v1.addr, webhooks=hooks, interval="100ms", threshold=100,
                      max_weight=90, step=1))
    load = Load(port, threads=2, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    # until well past what may wait for one receiver (64)
    end = time.time() + 20 * SLOW
    events = []
    while time.time() < end and len(events) < 90:
        time.sleep(0.2)
        events = d.events("web")
    with rec.lock:
        most = rec.max_open
    load.stop()
    print("    %d audit events, at most %d connections open to the hanging receiver"
          % (len(events), most))
    assert len(events) >= 90, len(events)
    assert most <= 8, most
    # what was not sent is said in the audit, not silently dropped
    dropped = [e for e in events if e["type"] == "webhook" and "not sent" in e["message"]]
    rec.stop()
    assert dropped, [e["message"] for e in events if e["type"] == "webhook"][:3]
    assert "event webhook 'events' failed after 0ms: not sent: 64 requests to " \
        "'http://127.0.0.1:%d' are already waiting" % rec.port in dropped[0]["message"], dropped[0]
    assert load.errors == [] and load.non2xx() == 0, (load.errors[:3], load.by_status)


if __name__ == "__main__":
    sys.exit(run(globals()))
