"""The proxy under abuse: outlier ejection, retries, the connection limit,
huge bodies with flat memory, WebSocket tunnels and 100-continue."""
import http.client
import os
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SLOW, Canaryd, Proc, Upstream, canary_yaml, free_port, get,  # noqa: E402
                     run, tmpdir, wait_port)
from test_proxy import Scripted, raw_client  # noqa: E402

BIG = int(os.environ.get("CANARYD_BIG_BODY", str(1 << 30 if SLOW == 1 else 256 << 20)))


def _rss_kb(pid, field="VmHWM"):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _proxy(stable, extra=""):
    port = free_port()
    d = Canaryd(canary_yaml("px", "127.0.0.1:%d" % port, stable, interval="1h",
                            extra_spec=extra))
    return port, d


def test_dead_endpoint_is_retried_then_ejected_and_audited():
    v1 = Upstream("v1")
    dead = "127.0.0.1:%d" % free_port()
    port, d = _proxy([dead, v1.addr],
                     "  outlierDetection: {consecutiveErrors: 3, ejectionTime: 2s}\n")
    for _ in range(40):
        st, hdr, body = get(port)
        assert st == 200 and body == b"v1\n", (st, body)
    ev = [e for e in d.events("px") if "eject" in e["type"] or "eject" in e["message"]]
    assert ev, d.events("px")
    assert dead in ev[0]["message"], ev[0]


def test_5xx_endpoint_is_ejected_for_a_while():
    good, bad = Upstream("good"), Upstream("bad", fail_rate=1.0)
    port, d = _proxy([good.addr, bad.addr],
                     "  outlierDetection: {consecutiveErrors: 2, ejectionTime: 30s}\n")
    codes = [get(port)[0] for _ in range(40)]
    # the bad endpoint answers 500 until it has failed twice in a row
    assert codes.count(500) <= 2, codes
    assert codes[-20:] == [200] * 20, codes


def test_connection_limit_holds_the_rest_in_the_backlog():
    v1 = Upstream("v1")
    # one worker: with N the limit is split per worker (docs/config.md), and
    # which worker the kernel gives a connection to is not ours to choose
    port, d = _proxy([v1.addr], "  limits: {maxConnections: 4}\n  workers: 1\n")
    held = []
    for _ in range(4):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        c.request("GET", "/")
        assert c.getresponse().read() == b"v1\n"
        held.append(c)
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    s.settimeout(0.5 * SLOW)
    try:
        data = s.recv(100)
    except socket.timeout:
        data = None
    assert data is None, "a fifth connection was served over the limit: %r" % data
    held.pop().close()
    s.settimeout(5)
    data = s.recv(100)
    assert data.startswith(b"HTTP/1.1 200"), data
    s.close()
    for c in held:
        c.close()


def _gen(n, chunk=1 << 20):
    block = b"x" * chunk
    left = n
    while left > 0:
        k = min(left, chunk)
        yield block[:k]
        left -= k


class NginxFiles(Proc):
    """nginx serving a sparse file of BIG bytes at /download (the upload
    goes to canaryd-upstream, which reads and discards bodies)."""

    def __init__(self):
        root = tmpdir()
        with open(os.path.join(root, "download"), "wb") as f:
            f.truncate(BIG)
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        conf = os.path.join(root, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""user root; daemon off; master_process off; worker_processes 1;
error_log %(r)s/error.log; pid %(r)s/nginx.pid;
events { worker_connections 64; }
http { access_log off; client_body_temp_path %(r)s; proxy_temp_path %(r)s;
  fastcgi_temp_path %(r)s; uwsgi_temp_path %(r)s; scgi_temp_path %(r)s;
  server { listen %(a)s; root %(r)s; location / { } } }
""" % {"r": root, "a": self.addr})
        super().__init__(["nginx", "-c", conf, "-p", root], "nginx-files")
        wait_port(self.port)


def test_huge_upload_and_download_pass_with_flat_memory():
    up = Upstream("v1")
    files = NginxFiles()
    port = free_port()
    d = Canaryd(canary_yaml("px", "127.0.0.1:%d" % port, [up.addr], interval="1h"))
    dl_port = free_port()
    d2 = Canaryd(canary_yaml("dl", "127.0.0.1:%d" % dl_port, [files.addr], interval="1h"))
    before = _rss_kb(d.p.pid)
    # upload: streamed with Content-Length, the upstream discards it
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    c.request("POST", "/upload", body=_gen(BIG), headers={"Content-Length": str(BIG)})
    r = c.getresponse()
    assert r.status == 200 and r.read() == b"v1\n", r.status
    c.close()
    before_dl = _rss_kb(d2.p.pid)
    # download through a slow reader
    c = http.client.HTTPConnection("127.0.0.1", dl_port, timeout=60)
    c.request("GET", "/download")
    r = c.getresponse()
    got = 0
    t0 = time.time()
    while True:
        chunk = r.read(1 << 20)
        if not chunk:
            break
        got += len(chunk)
        if got < (64 << 20):
            time.sleep(0.001)
    c.close()
    assert got == BIG, got
    after = _rss_kb(d.p.pid)
    after_dl = _rss_kb(d2.p.pid)
    print("  %d MiB each way; canaryd peak RSS: upload %d -> %d KiB, download %d -> %d KiB (%.1fs)" % (
        BIG >> 20, before, after, before_dl, after_dl, time.time() - t0))
    assert after - before < 32 * 1024, (before, after)
    assert after_dl - before_dl < 32 * 1024, (before_dl, after_dl)


def test_websocket_upgrade_is_tunnelled():
    # an upstream that accepts the upgrade and then echoes raw bytes
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(4)
    up_addr = "127.0.0.1:%d" % lsock.getsockname()[1]

    def serve():
        conn, _ = lsock.accept()
        conn.settimeout(10)
        head = b""
        while b"\r\n\r\n" not in head:
            head += conn.recv(4096)
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                     b"Connection: Upgrade\r\n\r\n")
        while True:
            data = conn.recv(4096)
            if not data:
                break
            conn.sendall(data.upper())
        conn.close()

    threading.Thread(target=serve, daemon=True).start()
    port, d = _proxy([up_addr])
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
    head = b""
    while b"\r\n\r\n" not in head:
        head += s.recv(4096)
    assert head.startswith(b"HTTP/1.1 101"), head
    for word in (b"hello", b"tunnel"):
        s.sendall(word)
        got = b""
        while len(got) < len(word):
            got += s.recv(100)
        assert got == word.upper(), got
    s.close()
    lsock.close()


def test_expect_100_continue():
    v1 = Upstream("v1")
    port, d = _proxy([v1.addr])
    path = os.path.join(tmpdir(), "body")
    with open(path, "wb") as f:
        f.write(b"y" * 200000)
    r = subprocess.run(["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "-H", "Expect: 100-continue",
                        "--data-binary", "@" + path, "http://127.0.0.1:%d/" % port],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 0 and r.stdout.endswith("\n200") and r.stdout.startswith("v1"), r


def test_client_that_stops_reading_does_not_count_against_the_endpoint():
    # the response stalls because the client does not read it (back-pressure
    # stops reading the upstream): at the response timeout the client's
    # connection goes, and the endpoint is not blamed (not ejected)
    up = Upstream("big", extra=["--body-size", str(32 << 20)])
    port, d = _proxy([up.addr], "  timeouts: {response: 1s}\n"
                                "  outlierDetection: {consecutiveErrors: 1, ejectionTime: 30s}\n")
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    s.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
    time.sleep(3 * SLOW)   # never read: the proxy's write to it stalls
    s.close()
    st, hdr, body = get(port)
    assert st == 200 and len(body) == 32 << 20, st
    out = d.output()
    assert "ejected" not in out and "mid-response" not in out, out[-2000:]


# ---- resending a request: only when it is safe (issue 8 item 5) ---------

def _race_upstream():
    """An upstream that answers the first request of its first connection
    (keep-alive), then reads the next request on it and closes without an
    answer, as a server closing an idle connection just as a request
    comes; every later connection is answered. Counts what it received
    (Scripted.received)."""
    def script(c, i):
        while True:
            req = c.request()
            if req is None:
                return
            if i == 0 and b"/warm " not in req:
                c.close()
                return
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    return Scripted(script)


def _warm_then(port, req):
    """On one client connection (so that, with workers too, both go
    through the same pool): a GET /warm, which leaves its upstream
    connection pooled, then <req> (which closes). Returns what <req> got."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.settimeout(5 * SLOW)
    s.sendall(b"GET /warm HTTP/1.1\r\nHost: x\r\n\r\n")
    out = b""
    while not out.endswith(b"\r\n\r\nok"):
        d_ = s.recv(4096)
        assert d_, out
        out += d_
    s.sendall(req)
    out = b""
    try:
        while True:
            d_ = s.recv(4096)
            if not d_:
                break
            out += d_
    except socket.timeout:
        pass
    s.close()
    return out


def test_non_idempotent_request_is_not_resent_after_keepalive_race():
    for req, what in ((b"POST /order HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"POST /order "),
                      (b"POST /order HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                       b"POST /order "),
                      (b"PATCH /item HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"PATCH /item "),
                      # idempotent, but its body was sent and is gone
                      (b"PUT /item HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nabc",
                       b"PUT /item ")):
        up = _race_upstream()
        port, d = _proxy([up.addr])
        out = _warm_then(port, req)
        assert out.startswith(b"HTTP/1.1 502 "), (req, out)
        assert up.received().count(what) == 1, (req, up.received())
        assert len(up.conns) == 1, (req, len(up.conns))
        d.stop()
        up.stop()


def test_idempotent_request_is_resent_on_a_new_connection_after_keepalive_race():
    for req, what in ((b"GET /page HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"GET /page "),
                      (b"DELETE /item HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", b"DELETE /item ")):
        up = _race_upstream()
        port, d = _proxy([up.addr])
        out = _warm_then(port, req)
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok"), (req, out)
        assert up.received().count(what) == 2, (req, up.received())
        assert len(up.conns) == 2 and what in up.conns[1].got, (req, len(up.conns))
        d.stop()
        up.stop()


def test_post_whose_connect_failed_goes_to_another_endpoint():
    # nothing was sent: the request goes once to another endpoint
    def script(c, i):
        while True:
            req = c.request()
            if req is None:
                return
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    up = Scripted(script)
    dead = "127.0.0.1:%d" % free_port()
    port, d = _proxy([dead, up.addr])
    for i in range(4):
        out, how = raw_client(port, b"POST /pay/%d HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                                    b"Connection: close\r\n\r\nabc" % i)
        assert out.startswith(b"HTTP/1.1 200 "), (i, out)
    assert "cannot connect to upstream '%s'" % dead in d.output(), d.output()
    got = up.received()
    for i in range(4):
        assert got.count(b"POST /pay/%d " % i) == 1, got
    assert got.count(b"\r\n\r\nabc") == 4, got
    up.stop()


if __name__ == "__main__":
    sys.exit(run(globals()))
