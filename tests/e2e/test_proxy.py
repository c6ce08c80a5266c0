"""The built-in proxy's HTTP/1.1 framing, with real clients and an upstream
that echoes what it received (a Python server in this process)."""
import http.client
import json
import os
import socket
import sys
import struct
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SLOW, Canaryd, Upstream, canary_yaml, free_port, get,  # noqa: E402
                     raw_exchange, run)


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


def _chunked_end(buf, i):
    """Where the chunked body starting at buf[i] ends (after its trailers),
    or None while it is incomplete."""
    while True:
        j = buf.find(b"\r\n", i)
        if j < 0:
            return None
        size = int(buf[i:j].split(b";")[0].strip() or b"0", 16)
        i = j + 2
        if size == 0:
            break
        if len(buf) < i + size + 2:
            return None
        i += size + 2
    while True:   # trailer lines up to the empty one
        j = buf.find(b"\r\n", i)
        if j < 0:
            return None
        if j == i:
            return j + 2
        i = j + 2


class ScriptedConn:
    """One connection accepted by a Scripted upstream: reads requests from
    it and records every byte received (in .got)."""

    def __init__(self, sock):
        self.sock = sock
        self.sock.settimeout(0.2)
        self.got = b""
        self.buf = b""
        self.eof = False

    def _fill(self, deadline):
        while time.time() < deadline:
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                d = b""
            if not d:
                self.eof = True
                return False
            self.got += d
            self.buf += d
            return True
        return False

    def request(self, timeout=5.0):
        """The next request (head and Content-Length or chunked body), or
        None at EOF or after <timeout>."""
        deadline = time.time() + timeout * SLOW
        while b"\r\n\r\n" not in self.buf:
            if self.eof or not self._fill(deadline):
                return None
        i = self.buf.index(b"\r\n\r\n") + 4
        head = self.buf[:i]
        if b"\ntransfer-encoding: chunked" in head.lower():
            while _chunked_end(self.buf, i) is None:
                if self.eof or not self._fill(deadline):
                    return None
            end = _chunked_end(self.buf, i)
        else:
            n = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    n = int(line.split(b":")[1].split(b",")[0])
            while len(self.buf) < i + n:
                if self.eof or not self._fill(deadline):
                    return None
            end = i + n
        req, self.buf = self.buf[:end], self.buf[end:]
        return req

    def send(self, data):
        self.sock.sendall(data)

    def closed_by_peer(self, timeout=5.0):
        """Whether the proxy closes this connection within <timeout>
        (anything it sends meanwhile is recorded)."""
        deadline = time.time() + timeout * SLOW
        while not self.eof and self._fill(deadline):
            pass
        return self.eof

    def close(self):
        self.sock.close()

    def reset(self):
        """Closes with an RST (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()


class Scripted:
    """A raw upstream on a free loopback port: each accepted connection is
    handed to <script>(conn, index) in a thread of its own; every byte it
    received stays in conns[i].got."""

    def __init__(self, script):
        self.script = script
        self.lsock = socket.socket()
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(64)
        self.lsock.settimeout(0.2)
        self.addr = "127.0.0.1:%d" % self.lsock.getsockname()[1]
        self.conns = []
        self.running = True
        self.errors = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        deadline = time.time() + 300
        while self.running and time.time() < deadline:
            try:
                s, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            c = ScriptedConn(s)
            self.conns.append(c)
            threading.Thread(target=self._serve, args=(c, len(self.conns) - 1),
                             daemon=True).start()

    def _serve(self, c, i):
        try:
            self.script(c, i)
        except Exception as e:  # noqa: BLE001 - reported by the test
            self.errors.append(repr(e))

    def received(self):
        return b"".join(c.got for c in self.conns)

    def mark(self):
        """A mark for received_since(): how much each connection has got."""
        return [len(c.got) for c in list(self.conns)]

    def received_since(self, mark):
        """What arrived after <mark>, connection by connection: a request
        may go over an older kept-alive connection than the one before it."""
        conns = list(self.conns)
        return b"".join(c.got[mark[i] if i < len(mark) else 0:]
                        for i, c in enumerate(conns))

    def stop(self):
        self.running = False
        self.lsock.close()
        for c in self.conns:
            try:
                c.close()
            except OSError:
                pass


def raw_client(port, payload, timeout=5.0, until=None):
    """Sends <payload> and reads until the proxy closes, <until> (bytes)
    arrives, or <timeout>. Returns (bytes read, how): how is "eof" (a
    clean close), "reset" or "timeout"."""
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(payload)
    out, how = b"", "timeout"
    end = time.time() + timeout * SLOW
    s.settimeout(0.2)
    try:
        while time.time() < end:
            if until is not None and until in out:
                break
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            if not d:
                how = "eof"
                break
            out += d
    except ConnectionResetError:
        how = "reset"
    s.close()
    return out, how


def head_of(resp):
    """The header lines of a response (lower-cased names), in order."""
    lines = resp.split(b"\r\n\r\n", 1)[0].split(b"\r\n")[1:]
    return [(l.split(b":", 1)[0].strip().lower(), l.split(b":", 1)[1].strip()) for l in lines]


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


# ---- framing edge cases: a raw client, a scripted upstream, and what each
# ---- of them saw

def _wait(cond, timeout=5.0):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _answer_all(answers):
    """A script answering each request whose target contains a key of
    <answers> (a dict, bytes -> bytes) with its value, in order of keys;
    others with a 2-byte 200."""
    def script(c, i):
        while True:
            req = c.request()
            if req is None:
                return
            target = req.split(b" ", 2)[1]
            for key, out in answers.items():
                if key in target:
                    c.send(out)
                    break
            else:
                c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    return script


def test_response_with_cl_and_te_reaches_the_client_without_cl():
    # RFC 9112 6.3: the Content-Length is removed, the chunked body is
    # forwarded as it is and the upstream connection is not reused
    up = Scripted(_answer_all({
        b"/both": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
                  b"5\r\nhello\r\n0\r\n\r\n"}))
    port, d = _proxy(up.addr)
    out, how = raw_client(port, b"GET /both HTTP/1.1\r\nHost: x\r\n\r\n"
                                b"GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert how == "eof", (how, out)
    assert out == (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
                   b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"), out
    assert _wait(lambda: len(up.conns) == 2 and up.conns[0].eof), [c.got for c in up.conns]
    assert up.conns[0].got.count(b"HTTP/1.1\r\n") == 1 and b"GET /both " in up.conns[0].got
    assert b"GET /after " in up.conns[1].got
    up.stop()


def test_response_te_other_than_chunked_is_read_until_close():
    # RFC 9112 6.3 rule 4: read until the upstream closes; the client gets
    # no Content-Length and a closed connection as the end of the body
    body = bytes(range(256)) * 40

    def script(c, i):
        if c.request() is not None:
            c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nContent-Length: 4\r\n\r\n" + body)
            c.close()
    up = Scripted(script)
    port, d = _proxy(up.addr)
    out, how = raw_client(port, b"GET /gz HTTP/1.1\r\nHost: x\r\n\r\n"
                                b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n")
    assert how == "eof", (how, out[:300])
    head, _, got = out.partition(b"\r\n\r\n")
    assert head == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\nConnection: close", head
    assert got == body, len(got)
    assert len(up.conns) == 1 and b"/next" not in up.received()
    up.stop()


def test_1xx_and_204_go_without_framing_fields():
    # RFC 9110 8.6, RFC 9112 6.1: none in a 1xx or 204; a next hop that
    # believed them would read the next response as a body
    up = Scripted(_answer_all({
        b"/204te": b"HTTP/1.1 204 No Content\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"/204cl": b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\nX-A: 1\r\n\r\n",
        b"/103": b"HTTP/1.1 103 Early Hints\r\nContent-Length: 5\r\nLink: </a>\r\n\r\n"
                 b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
        b"/304": b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\n\r\n"}))
    port, d = _proxy(up.addr)
    req = b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p for p in (b"/204te", b"/204cl", b"/103"))
    out, how = raw_client(port, req + b"GET /304 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out == (b"HTTP/1.1 204 No Content\r\n\r\n"
                   b"HTTP/1.1 204 No Content\r\nX-A: 1\r\n\r\n"
                   b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n"
                   b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
                   b"HTTP/1.1 304 Not Modified\r\nContent-Length: 5\r\nConnection: close\r\n\r\n"), out
    up.stop()


def test_response_with_differing_cls_is_a_502():
    up = Scripted(_answer_all({
        b"/two": b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        b"/list": b"HTTP/1.1 200 OK\r\nContent-Length: 3, 4\r\n\r\nabcd"}))
    port, d = _proxy(up.addr)
    for path in (b"/two", b"/list"):
        out, how = raw_client(port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 502 ") and b"abc" not in out, (path, out)
    # the connections the bad answers came on are closed, not reused
    assert _wait(lambda: len(up.conns) == 2 and all(c.eof for c in up.conns)), len(up.conns)
    up.stop()


def test_repeated_content_length_is_forwarded_once():
    up = Scripted(_answer_all({b"/r": b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\n"
                                     b"Content-Length: 2\r\n\r\nok"}))
    port, d = _proxy(up.addr)
    out, how = raw_client(port, b"POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 5, 5\r\n"
                                b"Content-Length: 5\r\nConnection: close\r\n\r\nhello")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", out
    got = up.received()
    assert got.lower().count(b"content-length") == 1 and b"\r\nContent-Length: 5\r\n" in got, got
    assert got.endswith(b"\r\n\r\nhello"), got
    up.stop()


def test_close_delimited_response_is_never_made_to_look_complete():
    # a close-delimited body ends where the upstream closes; when it is cut
    # by a reset or a timeout instead, the client must see its connection
    # reset, never the clean close that would mean "complete"
    go = threading.Event()

    def script(c, i):
        if c.request() is None:
            return
        c.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\npartial")
        go.wait(10 * SLOW)
        if i == 0:
            c.reset()
        elif i == 1:
            c.close()   # a clean end: complete
        else:
            time.sleep(5 * SLOW)   # silent: the response timeout
    up = Scripted(script)
    port, d = _proxy(up.addr, timeouts="  timeouts:\n    response: 1s\n")
    for i, want in enumerate(("reset", "eof", "reset")):
        go.clear()
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.sendall(b"GET /cut HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5 * SLOW)
        out = b""
        while b"partial" not in out:
            d_ = s.recv(4096)
            assert d_, out
            out += d_
        go.set()
        how = "timeout"
        try:
            while True:
                d_ = s.recv(4096)
                if not d_:
                    how = "eof"
                    break
                out += d_
        except ConnectionResetError:
            how = "reset"
        except socket.timeout:
            pass
        s.close()
        assert how == want, (i, how, out)
        assert b"Connection: close" in out, out
    up.stop()


def test_cut_responses_count_as_failures():
    # a response cut after its head went out is a failed request in the
    # stats the analysis reads, whatever its head said
    def script(c, i):
        if c.request() is None:
            return
        if i == 0:
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            time.sleep(0.2)
            c.reset()
        elif i == 1:
            c.send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n")
            time.sleep(0.2)
            c.send(b"5 6\r\n")
            c.closed_by_peer()
        elif i == 2:
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial")
            c.closed_by_peer()   # silent: the response timeout
        else:
            c.send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            c.closed_by_peer()
    up = Scripted(script)
    port, d = _proxy(up.addr, timeouts="  timeouts:\n    response: 1s\n")
    for i in range(4):
        out, how = raw_client(port, b"GET /%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % i)
        assert how == ("eof" if i == 3 else "reset"), (i, how, out)
    with urllib.request.urlopen(d.server + "/metrics", timeout=5) as r:
        m = r.read().decode()
    counts = {l.split('code="')[1].split('"')[0]: l.split()[-1]
              for l in m.splitlines() if l.startswith("canaryd_requests_total{")}
    assert counts == {"502": "2", "504": "1", "200": "1"}, counts
    up.stop()


def test_error_answers_close_the_connection_at_once():
    # after an error answer to a malformed request the proxy says
    # Connection: close and closes: no later 408, and the bytes that
    # follow are never read as a request (nothing reaches the upstream)
    up = Scripted(_answer_all({}))
    port, d = _proxy(up.addr, timeouts="  timeouts:\n    clientHead: 1s\n")
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    cases = [
        (b"GET / HTTP/1.1\r\n\r\n", b"400"),                        # no Host
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", b"400"),   # two, equal
        (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: a\x01\r\n\r\n", b"400"),
        (b"GET / HTTP/1.0\r\nHost: a/b\r\n\r\n", b"400"),
        (b"GARBAGE\r\n\r\n", b"400"),
        (b"GET / HTTP/2.0\r\nHost: a\r\n\r\n", b"505"),
        (b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n", b"431"),
    ]
    for payload, code in cases:
        out, how = raw_client(port, payload + smuggled, timeout=4)
        assert out.startswith(b"HTTP/1.1 " + code + b" "), (payload[:50], out)
        assert out.count(b"HTTP/1.1 ") == 1, (payload[:50], out)
        assert (b"connection", b"close") in head_of(out), (payload[:50], out)
        assert how == "eof", (payload[:50], how, out)
    assert up.received() == b"", up.received()
    # HTTP/1.0 may go without Host
    out, how = raw_client(port, b"GET /ten HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok"), out
    assert b"GET /ten HTTP/1.0\r\n" in up.received()
    up.stop()


def test_bad_chunked_request_bodies_are_refused_and_not_forwarded():
    up = Scripted(_answer_all({}))
    port, d = _proxy(up.addr)
    head = b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    for body in (b"5 6\r\nhello\r\n0\r\n\r\n",              # junk after the size
                 b"5;\r\nhello\r\n0\r\n\r\n",                 # an empty extension
                 b"1000000000000000\r\nhello\r\n0\r\n\r\n",   # 2^60
                 b"5\r\nhello\r\n0\r\nBad Trailer: 1\r\n\r\n",
                 b"5\r\nhello\r\n0\r\nX: a\x01b\r\n\r\n",
                 # RFC 9110 6.5.1: framing and routing fields, never in trailers
                 b"5\r\nhello\r\n0\r\nContent-Length: 50\r\n\r\n",
                 b"5\r\nhello\r\n0\r\nX-Ok: 1\r\ntransfer-encoding: chunked\r\n\r\n",
                 b"5\r\nhello\r\n0\r\nHost: evil\r\n\r\n"):
        n = len(up.conns)
        out, how = raw_client(port, head + body + smuggled, timeout=4)
        assert out.startswith(b"HTTP/1.1 400 ") and out.count(b"HTTP/1.1 ") == 1, (body, out)
        assert (b"connection", b"close") in head_of(out) and how == "eof", (body, how, out)
        # the upstream connection (if any) is closed, and never saw the
        # bad line nor what follows
        assert _wait(lambda: all(c.eof for c in up.conns[n:])), body
        got = up.received()
        assert b"/smuggled" not in got and b"Bad Trailer" not in got and b"\x01" not in got, got
        assert b"Content-Length: 50" not in got and b"evil" not in got, got
        assert b"transfer-encoding: chunked" not in got, got
    # a valid trailer goes through as it is
    body = b"5;ext=\"a b\"\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n"
    out, how = raw_client(port, head.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n") + body)
    assert out.startswith(b"HTTP/1.1 200 "), out
    assert up.received().endswith(b"\r\n\r\n" + body), up.received()[-200:]
    up.stop()


def test_bad_chunked_responses_are_never_made_complete():
    # a bad chunk-size line or trailer in a response: when the head has
    # gone to the client, its connection is reset (it got the good chunk
    # before); when nothing has, it gets a 502. Either way no byte of
    # the bad line, and the upstream connection is closed.
    bad = [b"5 6\r\nworld\r\n0\r\n\r\n",
           b"5;a=\r\nworld\r\n0\r\n\r\n",
           b"0\r\nNo Colon\r\n\r\n",
           b"0\r\nX: a\x7f\r\n\r\n",
           b"0\r\nContent-Length: 50\r\n\r\n"]   # RFC 9110 6.5.1
    head = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    go = threading.Event()

    def script(c, i):
        if c.request() is None:
            return
        if i < len(bad):   # the head and a good chunk, then the bad line
            c.send(head + b"5\r\nhello\r\n")
            go.wait(10 * SLOW)
            c.send(bad[i])
        elif i < 2 * len(bad):   # the bad line at once
            c.send(head + bad[i - len(bad)])
        else:
            c.send(head + b"5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n")
        c.closed_by_peer()
    up = Scripted(script)
    port, d = _proxy(up.addr)
    for i in range(len(bad)):
        go.clear()
        s = socket.create_connection(("127.0.0.1", port), 5)
        s.sendall(b"GET /late HTTP/1.1\r\nHost: x\r\n\r\n")
        s.settimeout(5 * SLOW)
        out = b""
        while b"hello\r\n" not in out:
            d_ = s.recv(4096)
            assert d_, out
            out += d_
        go.set()
        how = "timeout"
        try:
            while True:
                d_ = s.recv(4096)
                if not d_:
                    how = "eof"
                    break
                out += d_
        except ConnectionResetError:
            how = "reset"
        except socket.timeout:
            pass
        s.close()
        assert how == "reset", (bad[i], how, out)
        assert out == head + b"5\r\nhello\r\n", (bad[i], out)
    for b_ in bad:
        out, how = raw_client(port, b"GET /at-once HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        # one send on loopback arrives as one read: a 502; split, a reset
        assert (out.startswith(b"HTTP/1.1 502 ") or how == "reset") and b"world" not in out, (b_, how, out)
        assert b"No Colon" not in out and b"\x7f" not in out, (b_, out)
        assert b"Content-Length: 50" not in out, (b_, out)
    assert _wait(lambda: len(up.conns) == 2 * len(bad) and all(c.eof for c in up.conns)), \
        [c.eof for c in up.conns]
    out, how = raw_client(port, b"GET /good HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.endswith(b"\r\n\r\n5\r\nhello\r\n0\r\nX-Sum: 1\r\n\r\n") and how == "eof", out
    up.stop()


def test_requests_a_next_hop_could_read_otherwise_are_refused():
    # each of these is framed or routed one way by us and may be another
    # way by the upstream: refused with Connection: close, nothing of it
    # (nor of what follows) sent upstream
    up = Scripted(_answer_all({}))
    port, d = _proxy(up.addr)
    smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    chunked = b"5\r\nhello\r\n0\r\n\r\n"

    def post(field, body):
        return b"POST / HTTP/1.1\r\nHost: x\r\n" + field + b"\r\n\r\n" + body
    cases = [
        # RFC 9112 6.1: a coding a next hop may skip, then chunked
        (post(b"Transfer-Encoding: identity, chunked", chunked), b"501"),
        (post(b"Transfer-Encoding: foo, chunked", chunked), b"501"),
        (post(b"Transfer-Encoding: identity\r\nTransfer-Encoding: chunked", chunked), b"501"),
        # RFC 9110 8.6: empty members of a Content-Length list
        (post(b"Content-Length: ,5", b"hello"), b"400"),
        (post(b"Content-Length: 5,", b"hello"), b"400"),
        # RFC 9112 3.2.3, 3.2.4: authority- and asterisk-form only for
        # CONNECT and OPTIONS; CONNECT opens no tunnel here
        (b"GET * HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"GET x:80 HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"CONNECT x:443 HTTP/1.1\r\nHost: x:443\r\n\r\n", b"501"),
        # RFC 9110 4.2.4, 4.2.1: userinfo or no host in an http URI
        (b"GET http://u:p@x/abs HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
        (b"GET http:///abs HTTP/1.1\r\nHost: x\r\n\r\n", b"400"),
    ]
    for payload, code in cases:
        out, how = raw_client(port, payload + smuggled, timeout=4)
        assert out.startswith(b"HTTP/1.1 " + code + b" "), (payload[:60], out)
        assert out.count(b"HTTP/1.1 ") == 1, (payload[:60], out)
        assert (b"connection", b"close") in head_of(out) and how == "eof", (payload[:60], how, out)
    assert up.received() == b"", up.received()
    # known codings before chunked go through as they are
    out, how = raw_client(port, post(b"Transfer-Encoding: gzip, chunked\r\nConnection: close",
                                     chunked))
    assert out.startswith(b"HTTP/1.1 200 "), out
    assert b"Transfer-Encoding: gzip, chunked\r\n" in up.received(), up.received()
    up.stop()


def test_absolute_form_goes_upstream_in_origin_form_with_its_authority():
    # RFC 9112 3.2.2: the target's authority wins over Host; the upstream
    # gets the path in origin-form and Host set from the target, so that
    # it cannot pick the other one
    up = Scripted(_answer_all({}))
    port, d = _proxy(up.addr)
    cases = [
        (b"GET http://evil:81/abs?q=1 HTTP/1.1\r\nHost: x\r\n",
         b"GET /abs?q=1 HTTP/1.1\r\nHost: evil:81\r\n"),
        (b"GET HTTPS://x?q HTTP/1.1\r\nHost: x\r\n", b"GET /?q HTTP/1.1\r\nHost: x\r\n"),
        (b"OPTIONS http://x HTTP/1.1\r\nHost: x\r\n", b"OPTIONS * HTTP/1.1\r\nHost: x\r\n"),
        (b"GET http://[::1]:8/ HTTP/1.0\r\n", b"GET / HTTP/1.0\r\nHost: [::1]:8\r\n"),
    ]
    for head, want in cases:
        mark = up.mark()
        out, how = raw_client(port, head + b"Connection: close\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 200 ") and out.endswith(b"ok"), (head, out)
        got = up.received_since(mark)
        assert got.startswith(want), (head, got)
        assert got.lower().count(b"\r\nhost:") == 1, (head, got)
    up.stop()


def test_h2c_upgrade_is_served_as_http11():
    # h2c smuggling: an HTTP/2 upgrade would hand the client a channel
    # past the proxy. h2c is taken out of Upgrade (and the request served
    # as plain HTTP/1.1 when nothing else is offered); a 101 the upstream
    # sends anyway is a 502, never a tunnel
    switch = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
    up = Scripted(_answer_all({b"/switch": switch}))
    port, d = _proxy(up.addr)
    h2c = (b"Host: x\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
           b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n")
    out, how = raw_client(port, b"GET /plain HTTP/1.1\r\n" + h2c + b"\r\n", until=b"ok")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok", out
    got = up.received()
    assert b"GET /plain HTTP/1.1\r\n" in got, got
    for field in (b"upgrade", b"http2-settings"):
        assert field not in got.lower(), (field, got)
    out, how = raw_client(port, b"GET /switch HTTP/1.1\r\n" + h2c + b"\r\n",
                          until=b"Bad Gateway\n")
    assert out.startswith(b"HTTP/1.1 502 ") and b" 101 " not in out, out
    # another protocol offered with h2c goes on alone
    out, how = raw_client(port, b"GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\n"
                                b"Upgrade: h2c, websocket\r\n\r\n", until=b"ok")
    # the upstream's record interleaves its connections (with several
    # workers the request may go out on any of them): find the /ws head
    got = up.received()
    head = got[got.index(b"GET /ws HTTP/1.1\r\n"):]
    head = head[:head.index(b"\r\n\r\n") + 4]
    assert b"\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n" in head, head
    up.stop()


def test_interim_responses_never_stall_the_final_one():
    # any number of 1xx: forwarded as they come to HTTP/1.1 clients, never
    # to HTTP/1.0 ones, and the final response follows at once
    hint = b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n"
    final = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    up = Scripted(_answer_all({b"/hints": hint * 300 + final,
                               b"/trickle": hint * 70}))
    port, d = _proxy(up.addr, timeouts="  timeouts:\n    response: 3s\n")
    out, how = raw_client(port, b"GET /hints HTTP/1.1\r\nHost: x\r\n\r\n", until=b"\r\n\r\nok")
    assert out.count(b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>; rel=preload\r\n\r\n") == 300, out[-300:]
    assert out.endswith(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"), out[-300:]
    out, how = raw_client(port, b"GET /hints HTTP/1.0\r\n\r\n")
    assert out == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok", out
    # interim answers alone, no final one: a 504 at the response timeout
    out, how = raw_client(port, b"GET /trickle HTTP/1.1\r\nHost: x\r\n\r\n", timeout=10,
                          until=b"504 Gateway Timeout\n")
    assert out.count(b" 103 ") == 70 and b"HTTP/1.1 504 " in out, out[-300:]
    up.stop()


def test_chunked_response_to_an_http10_client_is_a_502():
    # RFC 9112 6.1: no Transfer-Encoding in a response to HTTP/1.0 (which
    # is how the proxy forwards it): the client could not read it
    up = Scripted(_answer_all({b"/": b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                     b"5\r\nhello\r\n0\r\n\r\n"}))
    port, d = _proxy(up.addr)
    out, how = raw_client(port, b"GET / HTTP/1.0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 502 ") and b"hello" not in out, out
    assert b"GET / HTTP/1.0\r\n" in up.received()
    out, how = raw_client(port, b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert out.endswith(b"5\r\nhello\r\n0\r\n\r\n"), out
    up.stop()


if __name__ == "__main__":
    sys.exit(run(globals()))
