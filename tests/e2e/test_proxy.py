"""The built-in proxy's HTTP/1.1 framing, with real clients and an upstream
that echoes what it received (a Python server in this process)."""
import http.client
import json
import os
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from harness import (Canaryd, Upstream, canary_yaml, free_port, get, raw_exchange,  # noqa: E402
                     run)


class Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def _body(self):
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0], 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        n = int(self.headers.get("Content-Length", "0"))
        return self.rfile.read(n) if n else b""

    def _reply(self):
        body = self._body()
        if self.path.startswith("/chunked"):
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (b"hello ", b"chunked ", b"world"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.startswith("/bytes/"):
            # head and body in one write, so that the proxy reads them
            # together (as from nginx)
            n = int(self.path.split("/")[2])
            hop = b"Connection: keep-alive, X-Hop\r\nX-Hop: 1\r\n" if "hop" in self.path else b""
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n" % (n, hop)
                             + _pattern(n))
            return
        if self.path.startswith("/status/"):
            code = int(self.path.split("/")[2])
            self.send_response(code)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        out = json.dumps({"method": self.command, "path": self.path,
                          "headers": {k.lower(): v for k, v in self.headers.items()},
                          "body": body.decode("latin-1")}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.send_header("X-Upstream", "echo")
        self.send_header("Keep-Alive", "timeout=5")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(out)

    do_GET = do_POST = do_PUT = do_HEAD = do_DELETE = _reply


def _pattern(n):
    return bytes((i * 7 + i // 251) & 0xFF for i in range(n))


def _echo_server():
    port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", port), Echo)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv, "127.0.0.1:%d" % port


def _proxy(stable_addr, timeouts=""):
    port = free_port()
    d = Canaryd(canary_yaml("px", "127.0.0.1:%d" % port, [stable_addr], interval="1h",
                            extra_spec=timeouts))
    return port, d


def test_forwarded_headers_added_and_hop_by_hop_removed():
    srv, addr = _echo_server()
    port, d = _proxy(addr)
    st, hdr, body = get(port, "/a?b=c", headers={"Connection": "keep-alive, X-Secret",
                                                 "X-Secret": "1", "Keep-Alive": "300",
                                                 "X-Forwarded-For": "10.1.1.1",
                                                 "Proxy-Authorization": "x"})
    srv.shutdown()
    assert st == 200, st
    seen = json.loads(body)
    h = seen["headers"]
    assert seen["path"] == "/a?b=c"
    assert h["x-forwarded-for"] == "10.1.1.1, 127.0.0.1", h
    assert h["x-forwarded-proto"] == "http", h
    for hop in ("x-secret", "keep-alive", "proxy-authorization"):
        assert hop not in h, (hop, h)
    assert "keep-alive" not in {k.lower() for k in hdr}, hdr


def test_response_bodies_of_every_size_arrive_whole():
    # small bodies travel in the head's buffer (one send), larger ones as
    # a second buffer: both sides of the 512-byte line, on one connection
    srv, addr = _echo_server()
    port, d = _proxy(addr)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for n in (0, 1, 3, 200, 511, 512, 513, 4096, 16000, 70000):
        for path in ("/bytes/%d" % n, "/bytes/%d/hop" % n):
            c.request("GET", path)
            r = c.getresponse()
            got = r.read()
            assert r.status == 200, (path, r.status)
            assert got == _pattern(n), (path, len(got))
            names = {k.lower() for k in r.headers}
            assert "x-hop" not in names and "keep-alive" not in names, (path, names)
    c.close()
    srv.shutdown()


def test_post_body_and_chunked_upload_stream_through():
    srv, addr = _echo_server()
    port, d = _proxy(addr)
    big = b"x" * 300000
    st, hdr, body = get(port, "/up", method="POST", body=big,
                        headers={"Content-Length": str(len(big))})
    assert st == 200 and json.loads(body)["body"] == big.decode(), st
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("POST", "/chunk", body=iter([b"abc", b"defg", b"h" * 70000]),
              encode_chunked=True, headers={"Transfer-Encoding": "chunked"})
    r = c.getresponse()
    got = json.loads(r.read())
    c.close()
    srv.shutdown()
    assert r.status == 200 and got["body"] == "abcdefg" + "h" * 70000, r.status


def test_chunked_response_and_head_and_204():
    srv, addr = _echo_server()
    port, d = _proxy(addr)
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/chunked")
    r = c.getresponse()
    assert r.read() == b"hello chunked world"
    c.request("HEAD", "/x")
    r = c.getresponse()
    assert r.status == 200 and r.read() == b""
    c.request("GET", "/status/204")
    r = c.getresponse()
    assert r.status == 204 and r.read() == b""
    c.request("GET", "/status/304")
    r = c.getresponse()
    assert r.status == 304 and r.read() == b""
    c.request("GET", "/again")
    r = c.getresponse()
    assert r.status == 200 and json.loads(r.read())["path"] == "/again"
    c.close()
    srv.shutdown()


def test_pipelined_requests_are_answered_in_order():
    v1 = Upstream("v1")
    port, d = _proxy(v1.addr)
    req = b"".join(b"GET /%d HTTP/1.1\r\nHost: x\r\n\r\n" % i for i in range(5))
    req += b"GET /last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    out = raw_exchange(port, req)
    assert out.count(b"HTTP/1.1 200") == 6, out[:500]
    assert out.count(b"v1\n") == 6


def test_502_when_no_upstream_connection_can_be_made():
    port, d = _proxy("127.0.0.1:%d" % free_port())
    st, hdr, body = get(port)
    assert st == 502, (st, body)
    st, hdr, body = get(port)
    assert st == 502


def test_504_on_upstream_timeout():
    slow = Upstream("slow", latency_ms=3000)
    port, d = _proxy(slow.addr, timeouts="  timeouts:\n    response: 500ms\n")
    t0 = time.time()
    st, hdr, body = get(port)
    assert st == 504, (st, body)
    assert time.time() - t0 < 2.5


def test_malformed_and_smuggling_requests_are_refused():
    v1 = Upstream("v1")
    port, d = _proxy(v1.addr)
    cases = {
        b"GARBAGE\r\n\r\n": b"400",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n": b"400",
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello": b"400",
        b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n": b"431",
        b"GET / HTTP/1.1\r\nHost x\r\n\r\n": b"400",
    }
    for payload, code in cases.items():
        out = raw_exchange(port, payload)
        assert out.startswith(b"HTTP/1.1 " + code), (payload[:60], out[:200])
    st, hdr, body = get(port)
    assert st == 200


def test_connection_close_and_http10():
    v1 = Upstream("v1")
    port, d = _proxy(v1.addr)
    out = raw_exchange(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200") and out.endswith(b"v1\n"), out
    out = raw_exchange(port, b"GET / HTTP/1.0\r\n\r\n")
    assert b" 200 " in out.split(b"\r\n")[0] and out.endswith(b"v1\n"), out


if __name__ == "__main__":
    sys.exit(run(globals()))
