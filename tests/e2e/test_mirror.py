"""Zero-traffic canaries (analysis.mirror) on the built-in proxy: while a
rollout is analysed, copies of the requests routed to stable go to the
canary, with Host NAME-shadow and X-Canaryd-Mirror: 1; clients see stable's
answers only, and none fails or waits because the canary is slow, failing,
dead or not reading; the canary's answers to the copies are what the
analysis judges (it rolls back a failing canary at weight 0), and the
copies the proxy's bounds kept from being made are counted."""
import hashlib
import http.client
import os
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLOW, Canaryd, Load, Upstream, free_port, get, run  # noqa: E402


class Recorder:
    """A canary that records what reaches it (method, Host, the mirror
    marker, a digest of the body) and answers <status> after <latency_ms>."""

    def __init__(self, status=200, latency_ms=0):
        self.lock = threading.Lock()
        self.seen = []
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _body(self):
                n = self.headers.get("Content-Length")
                if n is not None:
                    return self.rfile.read(int(n))
                if "chunked" not in self.headers.get("Transfer-Encoding", ""):
                    return b""
                out = b""
                for _ in range(100000):   # bounded: chunks of a test body
                    size = int(self.rfile.readline().split(b";")[0], 16)
                    if size == 0:
                        while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                            pass
                        return out
                    out += self.rfile.read(size)
                    self.rfile.readline()
                return out

            def _any(self):
                body = self._body()
                with rec.lock:
                    rec.seen.append((self.command, self.headers.get("Host"),
                                     self.headers.get("X-Canaryd-Mirror"),
                                     hashlib.sha256(body).hexdigest()))
                if latency_ms:
                    time.sleep(latency_ms / 1000.0)
                self.send_response(status)
                self.send_header("Content-Length", "7")
                self.end_headers()
                self.wfile.write(b"canary\n")

            do_GET = do_POST = do_PUT = do_DELETE = _any

        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.daemon_threads = True
        self.srv.handle_error = lambda *a: None   # canaryd closing copies it sent
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def count(self):
        with self.lock:
            return len(self.seen)

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def mirror_yaml(listen, stable, canary, extra_analysis="", extra_spec=""):
    return ("apiVersion: canaryd/v1\nkind: Canary\nmetadata:\n  name: shop\nspec:\n"
            "  router: builtin\n  listen: %s\n"
            "  stable:\n    revision: v1\n    endpoints: [%s]\n"
            "  canary:\n    revision: v2\n    endpoints: [%s]\n"
            "  timeouts: { response: 20s }\n%s"
            "  analysis:\n    interval: 500ms\n    threshold: 2\n    iterations: 50\n"
            "    mirror: true\n    minSamples: 10\n%s"
            "    metrics:\n      - name: request-success-rate\n"
            "        thresholdRange: { min: 99 }\n        interval: 1m\n"
            % (listen, stable, canary, extra_spec, extra_analysis))


def metric(d, pattern):
    """The sum of /metrics samples whose line matches <pattern>."""
    st, text = d.api("GET", "/metrics")
    assert st == 200, st
    return sum(int(float(l.rsplit(" ", 1)[1])) for l in text.splitlines()
               if not l.startswith("#") and re.search(pattern, l))


def wait_for(what, fn, timeout=10):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("not so after %ds: %s" % (timeout, what))


def test_failing_slow_canary_is_judged_on_copies_and_clients_see_stable_only():
    stable = Upstream("v1")
    canary = Recorder(status=500, latency_ms=150)
    port = free_port()
    d = Canaryd(mirror_yaml("127.0.0.1:%d" % port, stable.addr, canary.addr,
                            extra_spec="  workers: 2\n"))
    try:
        # bodies are copied whole: one larger than a copy's buffer, sent at
        # a pace the canary keeps up with (streamed through the buffer),
        # and a chunked one
        big = os.urandom(320 * 1024)

        def paced():
            for i in range(0, len(big), 16384):
                time.sleep(0.01)
                yield big[i:i + 16384]
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("POST", "/upload", body=paced(), headers={"Content-Length": str(len(big))})
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"v1\n"
        c.close()
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("PUT", "/chunked", body=iter([b"abc", b"defgh"]),
                  headers={"Transfer-Encoding": "chunked"}, encode_chunked=True)
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"v1\n"
        c.close()
        # (before the load: two copies are too few for a check to count)
        load = Load(port, threads=4, rps_per_thread=40)
        s = d.wait_phase("shop", "Failed", timeout=20)
        load.stop()
        assert "request-success-rate" in s["message"], s
        # every client got stable's answer, none failed
        assert load.errors == [], load.errors[:3]
        assert set(load.by_upstream) == {"v1"}, load.by_upstream
        assert set(load.by_status) == {200}, load.by_status
        # the canary never had a weight: it was judged on the copies
        evs = d.events("shop")
        assert not [e for e in evs if e["type"] == "weight"], evs
        assert all(e["weight"] == 0 for e in evs), evs
        assert s["canaryWeight"] == 0, s
        # copies carry the shadow Host and the marker; the bodies arrived
        wait_for("copies answered", lambda: metric(d, r'canaryd_requests_total\{canary="shop",'
                 r'target="canary",revision="[^"]*",code="500"\}') == canary.count() > 0)
        with canary.lock:
            seen = list(canary.seen)
        assert all(h == "127.0.0.1-shadow:%d" % port for _, h, _, _ in seen), seen[:3]
        assert all(m == "1" for _, _, m, _ in seen), seen[:3]
        digests = {x[3] for x in seen}
        assert hashlib.sha256(big).hexdigest() in digests
        assert hashlib.sha256(b"abcdefgh").hexdigest() in digests
        assert {"GET", "POST", "PUT"} <= {x[0] for x in seen}
        sent = metric(d, r'canaryd_mirror_requests_total\{canary="shop",result="sent"\}')
        assert sent == len(seen), (sent, len(seen))
        # no stable request was counted as the canary's, or lost
        assert metric(d, r'target="stable",revision="[^"]*",code="200"') == load.total() + 2
        # once rolled back, nothing more is copied
        n = canary.count()
        for _ in range(20):
            assert get(port)[0] == 200
        time.sleep(0.3)
        assert canary.count() == n, (canary.count(), n)
    finally:
        canary.close()


def test_dead_canary_counts_as_502_and_costs_clients_nothing():
    stable = Upstream("v1")
    dead = "127.0.0.1:%d" % free_port()   # nothing listens there
    port = free_port()
    d = Canaryd(mirror_yaml("127.0.0.1:%d" % port, stable.addr, dead,
                            extra_analysis="    mirrorWeight: 50\n",
                            extra_spec="  cost: {currency: GBP, perMillionRequests: 0.40, "
                                       "canaryHourly: 0.12, failedRequest: 0.002}\n"))
    load = Load(port, threads=2, rps_per_thread=50)
    wait_for("copies failed", lambda: metric(
        d, r'canaryd_requests_total\{canary="shop",target="canary",revision="[^"]*",code="502"\}') >= 20)
    load.stop()
    assert load.errors == [] and set(load.by_status) == {200}, (load.errors[:3], load.by_status)
    # mirrorWeight 50: every other request routed to stable is copied
    sent = metric(d, r'canaryd_mirror_requests_total\{canary="shop",result="sent"\}')
    assert abs(sent - load.total() / 2) <= 2, (sent, load.total())   # 1 per worker
    s = d.status("shop")
    assert s["mirror"]["weight"] == 50 and s["mirror"]["sent"] == sent, s
    # spec.cost: the canary's failures were copies' only, which no user
    # got: none is a failure served, nor costs one, nor counts as a user's
    # request
    k = s["cost"]
    assert k["canaryFailedRequests"] >= 20, k
    assert k["mirroredFailedRequests"] == k["canaryFailedRequests"] == k["mirroredRequests"], k
    assert k["failedRequestsServed"] == 0 and k["failedRequestsCost"] == 0, k
    # (copies counted as users' requests would make it about 1.5 times)
    assert 0 < k["requests"] <= metric(d, r'target="stable",revision="[^"]*",code="200"') \
        and k["failedRequests"] == 0, k


def test_bounds_skip_copies_and_count_them():
    stable = Upstream("v1")
    # a canary that accepts connections (the kernel does) and never reads
    hole = socket.socket()
    hole.bind(("127.0.0.1", 0))
    hole.listen(1024)
    port = free_port()
    d = Canaryd(mirror_yaml("127.0.0.1:%d" % port, stable.addr,
                            "127.0.0.1:%d" % hole.getsockname()[1]))
    try:
        d.ctl("pause", "shop")   # no check may end the rollout meanwhile
        # a client that goes away mid-body: its copy is given up
        s = socket.create_connection(("127.0.0.1", port))
        s.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n0123456789")
        time.sleep(0.3 * SLOW)   # the head went to stable, and its copy
        s.close()
        wait_for("client counted", lambda: metric(d, r'result="client"') == 1)
        # a body the canary does not read: given up once it outruns a
        # copy's buffer, the client is answered all the same
        st, _, body = get(port, "/big", method="POST", body=b"x" * (24 << 20))
        assert st == 200 and body == b"v1\n", (st, body)
        assert metric(d, r'result="slow"') == 1
        # copies in flight are bounded: past the bound, none is made
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        for _ in range(300):
            c.request("GET", "/")
            r = c.getresponse()
            assert r.status == 200 and r.read() == b"v1\n"
        c.close()
        limit = metric(d, r'result="limit"')
        assert limit >= 300 - 256, limit
        assert d.status("shop")["mirror"]["skipped"] == limit + 2
    finally:
        hole.close()


if __name__ == "__main__":
    sys.exit(run(globals()))
