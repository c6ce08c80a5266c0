"""The admin API under attack (issue 8 items 6 and 9): stalled and
excess connections, long heads, HEAD, cross-site requests from a browser,
DNS rebinding, tokens, and control characters that would forge log lines.
Raw sockets where a well-behaved client library would hide the case."""
import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SLOW, BUILD, Canaryd, Upstream, canary_yaml, cleanup, free_port,  # noqa: E402
                     run, tmpdir)


def _rss_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def _daemon(extra=(), rollout=True):
    """canaryd with canary 'web' (v1), and when <rollout> a rollout of v2
    that stays at weight 10 (the interval is an hour)."""
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr],
                            canary=[v2.addr] if rollout else None, interval="1h"),
                extra=extra)
    d.v1, d.v2 = v1, v2
    return d


def _connect(d, timeout=5.0):
    s = socket.create_connection(("127.0.0.1", d.admin_port), timeout)
    s.settimeout(timeout * SLOW)
    return s


def _host(d):
    return b"Host: 127.0.0.1:%d\r\n" % d.admin_port


def _read_until_close(s, limit=10.0):
    """Everything the server sends until it closes (or <limit> seconds)."""
    out = b""
    end = time.time() + limit * SLOW
    s.settimeout(0.2)
    while time.time() < end:
        try:
            chunk = s.recv(65536)
        except socket.timeout:
            continue
        except ConnectionResetError:
            return out, True
        if not chunk:
            return out, True
        out += chunk
    return out, False


def _read_response(s):
    """One response (head and Content-Length body) from <s>: (status,
    headers lower-cased, body, bytes read past it)."""
    data = b""
    end = time.time() + 10 * SLOW
    while b"\r\n\r\n" not in data and time.time() < end:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    hdrs = {}
    for ln in lines[1:]:
        k, _, v = ln.partition(":")
        hdrs[k.strip().lower()] = v.strip()
    n = int(hdrs.get("content-length", "0"))
    while len(rest) < n and time.time() < end:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    return status, hdrs, rest[:n], rest[n:]


def _raw(d, payload, limit=5.0):
    """Sends <payload> on a new connection; returns (status, headers, body)."""
    s = _connect(d)
    s.sendall(payload)
    st, hdrs, body, _ = _read_response(s)
    s.close()
    return st, hdrs, body


def _post(d, path, body, ctype="application/json", extra=b""):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    ct = b"Content-Type: %s\r\n" % ctype.encode() if ctype else b""
    return _raw(d, b"POST %s HTTP/1.1\r\n%s%s%sContent-Length: %d\r\nConnection: close\r\n\r\n%s"
                % (path.encode(), _host(d), ct, extra, len(data), data))


def _snapshot(d):
    return d.status("web"), d.events("web")


# ---- timeouts, the connection cap, memory ----------------------------------

def test_stalled_head_gets_408_after_the_default_head_timeout():
    d = _daemon(rollout=False)
    partial = _connect(d)
    partial.sendall(b"GET /api/v1/canaries HTTP/1.1\r\n" + _host(d) + b"X-Slow: ")
    silent = _connect(d)
    t0 = time.time()
    out, closed = _read_until_close(partial, limit=20)
    assert closed and out.startswith(b"HTTP/1.1 408 "), (closed, out[:200])
    assert b"request head not received within 10s" in out, out
    out, closed = _read_until_close(silent, limit=5)
    assert closed and out == b"", (closed, out)
    assert time.time() - t0 >= 9, "closed before the 10s head timeout"
    partial.close()
    silent.close()


def test_body_and_idle_timeouts():
    d = _daemon(extra=["--admin-head-timeout", "1s", "--admin-body-timeout", "1s",
                       "--admin-idle-timeout", "1s"], rollout=False)
    body = _connect(d)
    body.sendall(b"POST /api/v1/alertmanager HTTP/1.1\r\n" + _host(d) +
                 b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"al")
    idle = _connect(d)
    idle.sendall(b"GET /healthz HTTP/1.1\r\n" + _host(d) + b"\r\n")
    st, _, b, _ = _read_response(idle)
    assert st == 200 and b == b"ok\n", (st, b)
    # a trickle of bytes does not keep a head alive past its timeout
    trickle = _connect(d)
    trickle.sendall(b"GET / HTTP/1.1\r\n")
    t0 = time.time()
    for _ in range(int(3 * SLOW / 0.3) + 1):
        try:
            trickle.sendall(b"X: y\r\n")
        except OSError:
            break
        time.sleep(0.3)
    out, closed = _read_until_close(trickle)
    assert closed and out.startswith(b"HTTP/1.1 408 "), out[:100]
    assert time.time() - t0 < 3 * SLOW + 2
    out, closed = _read_until_close(body)
    assert closed and out.startswith(b"HTTP/1.1 408 "), out[:100]
    assert b"request body not received within 1s" in out, out
    out, closed = _read_until_close(idle)
    assert closed and out == b"", out
    for s in (body, idle, trickle):
        s.close()


def test_connection_cap_refuses_with_503_and_frees_on_close():
    d = _daemon(rollout=False)
    held = [_connect(d) for _ in range(128)]
    # the listener accepts in arrival order: these 128 come first
    s = _connect(d)
    refused, closed = _read_until_close(s, limit=5)
    s.close()
    assert closed and refused.startswith(b"HTTP/1.1 503 "), refused
    assert b"too many connections" in refused, refused
    held.pop().close()
    ok = False
    for _ in range(50):
        st, _, body = _raw(d, b"GET /healthz HTTP/1.1\r\n" + _host(d) + b"Connection: close\r\n\r\n")
        if st == 200:
            ok = True
            break
        time.sleep(0.05)
    assert ok, "no connection accepted after one closed"
    for s in held:
        s.close()
    assert "refusing more" in d.output(), d.output()


def test_stalled_bodies_hold_bounded_memory():
    # ASan keeps freed memory in quarantine (256 MB by default), which
    # counts in RSS and is not the server's doing: keep it small here
    old = os.environ.get("ASAN_OPTIONS")
    os.environ["ASAN_OPTIONS"] = (old + ":" if old else "") + "quarantine_size_mb=4"
    try:
        d = _daemon(rollout=False)
    finally:
        if old is None:
            del os.environ["ASAN_OPTIONS"]
        else:
            os.environ["ASAN_OPTIONS"] = old
    pid = d.p.pid
    base = _rss_kb(pid, "VmRSS")
    socks = []
    chunk = b"x" * (600 * 1024)
    for _ in range(200):
        s = _connect(d)
        s.sendall(b"POST /api/v1/alertmanager HTTP/1.1\r\n" + _host(d) +
                  b"Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n")
        try:
            s.sendall(chunk)
        except OSError:
            pass  # refused: the server closed it
        socks.append(s)
    time.sleep(1)
    grown_mb = (_rss_kb(pid, "VmHWM") - base) / 1024.0
    # 200 x 600 KiB held would be 120 MB; the budget is 8 MiB of requests
    assert grown_mb < 48, "RSS grew by %.0f MB" % grown_mb
    st, _, body = _raw(d, b"GET /healthz HTTP/1.1\r\n" + _host(d) + b"Connection: close\r\n\r\n")
    assert st in (200, 503), st
    for s in socks:
        s.close()
    st, _, body = _raw(d, b"GET /healthz HTTP/1.1\r\n" + _host(d) + b"Connection: close\r\n\r\n")
    assert st == 200, st


# ---- long heads, HEAD -------------------------------------------------------

def test_long_cookie_query_and_eighteen_endpoints():
    d = _daemon(rollout=False)
    st, _, body = _raw(d, b"GET /api/v1/canaries HTTP/1.1\r\n" + _host(d) +
                       b"Cookie: session=" + b"c" * 700 + b"\r\nConnection: close\r\n\r\n")
    assert st == 200 and json.loads(body)[0]["name"] == "web", (st, body[:200])
    st, _, body = _raw(d, b"GET /api/v1/canaries/web/events?after=0&pad=" + b"p" * 3000 +
                       b" HTTP/1.1\r\n" + _host(d) + b"Connection: close\r\n\r\n")
    assert st == 200 and isinstance(json.loads(body), list), (st, body[:200])
    ups = [d.v2] + [Upstream("v2-%d" % i) for i in range(17)]
    eps = ",".join(u.addr for u in ups)
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", eps)
    assert rc == 0, (rc, out, err)
    assert d.status("web")["canaryRevision"] == "v2"


def test_head_answers_have_the_get_headers_and_no_body():
    d = _daemon(rollout=False)
    for path in (b"/api/v1/canaries", b"/", b"/metrics", b"/nope"):
        s = _connect(d)
        s.sendall(b"GET " + path + b" HTTP/1.1\r\n" + _host(d) + b"\r\n")
        gst, ghdr, gbody, _ = _read_response(s)
        # HEAD then GET on one connection: a body after the HEAD answer
        # would be read as the start of the next response
        s.sendall(b"HEAD " + path + b" HTTP/1.1\r\n" + _host(d) + b"\r\n")
        s.sendall(b"GET /healthz HTTP/1.1\r\n" + _host(d) + b"Connection: close\r\n\r\n")
        data, closed = _read_until_close(s)
        s.close()
        assert closed
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 %d " % gst), head
        assert (b"Content-Length: %d" % len(gbody)) in head, (head, len(gbody))
        assert rest.startswith(b"HTTP/1.1 200 "), (path, rest[:80])
        assert rest.endswith(b"\r\n\r\nok\n"), rest


# ---- cross-site requests, Host, tokens --------------------------------------

def test_cross_site_posts_without_json_type_are_415_and_change_nothing():
    d = _daemon()
    d.wait_phase("web", "Progressing")
    before = _snapshot(d)
    cases = [
        ("/api/v1/canaries/web/abort", b"{}", "text/plain"),
        ("/api/v1/canaries/web/abort", b"", None),
        ("/api/v1/canaries/web/rollout",
         b"revision=v9&endpoints=127.0.0.1%3A" + str(free_port()).encode(),
         "application/x-www-form-urlencoded"),
        ("/api/v1/canaries/web/promote", b"------x\r\n", "multipart/form-data; boundary=----x"),
        ("/api/v1/canaries/web/abort", b"{}", "application/jsonp"),
        ("/api/v1/alertmanager", json.dumps({"alerts": [{"status": "firing", "labels": {
            "canary": "web", "alertname": "x"}}]}).encode(), "text/plain"),
    ]
    for path, body, ctype in cases:
        st, _, out = _post(d, path, body, ctype)
        assert st == 415, (path, ctype, st, out)
        assert b"application/json" in out, out
    assert _snapshot(d) == before
    # with parameters and in any case it is JSON
    st, _, out = _post(d, "/api/v1/canaries/web/pause", {}, "Application/JSON; charset=utf-8")
    assert st == 200, (st, out)


def test_foreign_origin_is_403_own_origin_passes():
    d = _daemon()
    d.wait_phase("web", "Progressing")
    before = _snapshot(d)
    for origin in (b"http://evil.example", b"null", b"http://127.0.0.1:%d.evil.example" % d.admin_port,
                   b"http://127.0.0.1:%d" % (d.admin_port + 1), b"http://localhost:%d" % d.admin_port):
        st, _, out = _post(d, "/api/v1/canaries/web/abort", {}, extra=b"Origin: " + origin + b"\r\n")
        assert st == 403, (origin, st, out)
    assert _snapshot(d) == before
    st, _, out = _post(d, "/api/v1/canaries/web/pause", {},
                       extra=b"Origin: http://127.0.0.1:%d\r\n" % d.admin_port)
    assert st == 200 and json.loads(out)["phase"] == "Paused", (st, out)


def test_errors_quoting_bytes_that_are_not_utf8_keep_their_message():
    # an Origin may hold obs-text; the 403 quotes it, and JSON must be UTF-8
    d = _daemon(rollout=False)
    st, _, out = _post(d, "/api/v1/canaries/web/pause", {},
                       extra=b"Origin: http://\xffevil.example\xfe\r\n")
    assert st == 403, (st, out)
    msg = json.loads(out)["error"]
    assert "evil.example" in msg and msg.isprintable(), msg


def _get_with(d, host_lines, version=b"1.1"):
    return _raw(d, b"GET /api/v1/canaries HTTP/" + version + b"\r\n" + host_lines +
                b"Connection: close\r\n\r\n")[0]


def test_host_must_name_this_api():
    d = _daemon(rollout=False)
    p = d.admin_port

    def get(host_lines, version=b"1.1"):
        return _get_with(d, host_lines, version)

    for ok in (b"127.0.0.1:%d" % p, b"localhost:%d" % p, b"LOCALHOST:%d" % p,
               b"127.0.0.2:%d" % p, b"[::1]:%d" % p):
        assert get(b"Host: " + ok + b"\r\n") == 200, ok
    for bad in (b"evil.example:%d" % p, b"evil.example", b"127.0.0.1:%d" % (p + 1),
                b"localhost", b"10.1.2.3:%d" % p, b"127.0.0.1.nip.io:%d" % p):
        assert get(b"Host: " + bad + b"\r\n") == 403, bad
    # a rebinding page mutating too
    st, _, out = _raw(d, b"POST /api/v1/canaries/web/pause HTTP/1.1\r\nHost: evil.example:%d\r\n"
                      b"Content-Type: application/json\r\nContent-Length: 2\r\n\r\n{}" % p)
    assert st == 403, (st, out)
    assert get(b"") == 400
    assert get(b"Host: 127.0.0.1:%d\r\nHost: evil.example\r\n" % p) == 400
    assert get(b"Host: a b\r\n") == 400
    assert get(b"", b"1.0") == 200


def test_admin_host_names_more_hosts():
    d = _daemon(extra=["--admin-host", "canary.example", "--admin-host", "ops.example"],
                rollout=False)
    for ok in (b"canary.example", b"canary.example:443", b"OPS.example:8080",
               b"127.0.0.1:%d" % d.admin_port):
        assert _get_with(d, b"Host: " + ok + b"\r\n") == 200, ok
    for bad in (b"evil.example", b"canary.example.evil.example"):
        assert _get_with(d, b"Host: " + bad + b"\r\n") == 403, bad
    # a page served under an allowed name is same-origin with it
    st, _, out = _raw(d, b"POST /api/v1/canaries/web/pause HTTP/1.1\r\nHost: canary.example\r\n"
                      b"Origin: https://canary.example\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 2\r\n\r\n{}")
    assert st == 409, (st, out)  # allowed through; nothing to pause


def test_non_loopback_admin_address_needs_a_token():
    cfg = os.path.join(tmpdir(), "c.yaml")
    with open(cfg, "w") as f:
        f.write(canary_yaml("web", "127.0.0.1:%d" % free_port(), ["127.0.0.1:%d" % free_port()],
                            interval="1h"))
    # documentation addresses: nothing here can bind them, so no test ever
    # listens beyond loopback, whatever canaryd does
    for addr in ("192.0.2.1:%d" % free_port(), "[2001:db8::1]:%d" % free_port()):
        r = subprocess.run([os.path.join(BUILD, "canaryd"), "-c", cfg, "--admin", addr,
                            "--data-dir", os.path.join(tmpdir(), "d")],
                           capture_output=True, text=True, timeout=20 * SLOW)
        assert r.returncode == 2, (addr, r.returncode, r.stderr)
        assert "is not a loopback address" in r.stderr and "--token-file" in r.stderr, r.stderr
    tok = os.path.join(tmpdir(), "tokens")
    with open(tok, "w") as f:
        f.write("ops s3cr3t-t0ken\n")
    r = subprocess.run([os.path.join(BUILD, "canaryd"), "-c", cfg, "--admin", "192.0.2.1:%d" % free_port(),
                        "--token-file", tok, "--data-dir", os.path.join(tmpdir(), "d")],
                       capture_output=True, text=True, timeout=20 * SLOW)
    assert r.returncode == 1 and "cannot listen on '192.0.2.1:" in r.stderr, (r.returncode, r.stderr)


def test_tokens_wrong_of_any_length_are_refused():
    tok = os.path.join(tmpdir(), "tokens")
    with open(tok, "w") as f:
        f.write("# ops team\nalice 0123456789abcdef\nbob fedcba9876543210\n")
    d = _daemon(extra=["--token-file", tok])
    d.wait_phase("web", "Progressing")
    before = _snapshot(d)
    for bad in (b"0123456789abcdeX", b"0123456789abcde", b"0123456789abcdef0", b"", b"x" * 300):
        st, _, out = _post(d, "/api/v1/canaries/web/abort", {},
                           extra=b"Authorization: Bearer " + bad + b"\r\n")
        assert st == 401, (bad, st, out)
    st, _, out = _post(d, "/api/v1/canaries/web/abort", {})
    assert st == 401, (st, out)
    assert _snapshot(d) == before
    st, _, out = _post(d, "/api/v1/canaries/web/pause", {},
                       extra=b"Authorization: Bearer fedcba9876543210\r\n")
    assert st == 200, (st, out)
    assert d.events("web")[-1]["actor"] == "bob", d.events("web")[-1]


# ---- control characters (item 9) --------------------------------------------

FORGED = "2026-01-01T00:00:00.000Z info web: promoted v9 FORGED"


def test_control_characters_in_actions_are_400_naming_the_field():
    d = _daemon()
    d.wait_phase("web", "Progressing")
    before = _snapshot(d)
    ep = d.v2.addr
    cases = [
        ({"revision": "v3\n" + FORGED, "endpoints": [ep]}, "'revision'"),
        ({"revision": "v3\r", "endpoints": [ep]}, "'revision'"),
        ({"revision": "v3", "endpoints": [ep, ep + "\n" + FORGED]}, "'endpoints[1]'"),
        ({"revision": "v3\u0085", "endpoints": [ep]}, "'revision'"),
        ({"revision": "v3\u2028", "endpoints": [ep]}, "'revision'"),
        ({"revision": "v3\x1b[2J", "endpoints": [ep]}, "'revision'"),
        ({"revision": "v3\x7f", "endpoints": [ep]}, "'revision'"),
    ]
    for body, field in cases:
        st, _, out = _post(d, "/api/v1/canaries/web/rollout", body)
        assert st == 400, (body, st, out)
        assert field in json.loads(out)["error"], out
    st, _, out = _post(d, "/api/v1/canaries/web/abort", {"reason": "bad\n" + FORGED})
    assert st == 400 and "'reason'" in json.loads(out)["error"], (st, out)
    assert _snapshot(d) == before
    d.stop()
    assert "FORGED" not in d.output(), d.output()
    # printable text beyond ASCII is fine
    d2 = _daemon(rollout=False)
    st, _, out = _post(d2, "/api/v1/canaries/web/rollout",
                       {"revision": "v2-café", "endpoints": [d2.v2.addr]})
    assert st == 200, (st, out)


def test_alert_names_with_newlines_stay_on_one_line_everywhere():
    d = _daemon(extra=["--log-format", "text"])
    d.wait_phase("web", "Progressing")
    st, body = d.api("POST", "/api/v1/alertmanager", {"alerts": [{
        "status": "firing", "labels": {"canary": "web", "alertname": "Down\n" + FORGED + "\x1b[2J"},
        "annotations": {"summary": "line one\nline two"}}]})
    assert st == 200 and body["matched"] == ["web"], (st, body)
    d.wait_phase("web", "Failed")
    rc, out, err = d.ctl("history", "web")
    assert rc == 0, (rc, err)
    assert "\x1b" not in out, out
    lines = [ln for ln in out.splitlines() if "FORGED" in ln]
    assert lines and all("alert 'Down\\n2026" in ln for ln in lines), out
    rc, out, err = d.ctl("history", "web", "-o", "json")
    ev = [e for e in json.loads(out) if e["type"] == "alert"]
    assert ev and ("Down\n" + FORGED) in ev[0]["message"], ev
    rc, out, err = d.ctl("status", "web")
    assert rc == 0 and len(out.strip().splitlines()) == 2, out
    d.stop()
    log = d.output()
    assert not any(ln.startswith(FORGED[:24]) for ln in log.splitlines()), log
    assert "alert 'Down\\n2026-01-01T00:00:00.000Z info web: promoted v9 FORGED\\x1b[2J'" in log, log


def test_json_log_lines_stay_valid_json():
    d = _daemon(extra=["--log-format", "json"])
    d.wait_phase("web", "Progressing")
    st, body = d.api("POST", "/api/v1/alertmanager", {"alerts": [{
        "status": "firing", "labels": {"canary": "web", "alertname": "A\n\u2028\x7f\"\\"}}]})
    assert st == 200, (st, body)
    d.wait_phase("web", "Failed")
    d.stop()
    n = 0
    for ln in d.output().splitlines():
        if not ln.strip():
            continue
        obj = json.loads(ln)
        n += 1
        if "alert 'A" in obj["msg"]:
            assert "A\n\u2028\x7f\"\\" in obj["msg"], obj
            assert "\u2028" not in ln and "\x7f" not in ln, ln
    assert n >= 3


# ---- canaryctl and the dashboard keep working -------------------------------

def test_canaryctl_actions_send_json():
    d = _daemon()
    d.wait_phase("web", "Progressing")
    for args, phase in ((("pause", "web"), "Paused"), (("resume", "web"), "Progressing"),
                        (("set-weight", "web", "30"), None), (("promote", "web"), None),
                        (("abort", "web"), "Failed")):
        rc, out, err = d.ctl(*args)
        assert rc == 0, (args, rc, out, err)
        if phase:
            assert d.status("web")["phase"] == phase, (args, d.status("web"))
    # the dashboard is served; its controls POST JSON, which the guards above
    # cover (and need a token when there is a token file: test_dashboard.py)
    st, body = d.api("GET", "/")
    assert st == 200 and '<script src="/assets/app.js"' in body, body[:300]
    st, js = d.api("GET", "/assets/app.js")
    assert st == 200 and "fetch(" in js and "'Content-Type': 'application/json'" in js


def measure_rss(n, shape):
    """Not a test: canaryd's RSS with <n> stalled admin connections, each
    holding a partial head ("head") or 600 KiB of a 1 MiB body ("body").
    CANARYD_BUILD=build python3 tests/e2e/test_admin.py --rss 1000 body"""
    d = _daemon(rollout=False)
    base = _rss_kb(d.p.pid, "VmRSS")
    socks = []
    for _ in range(n):
        s = _connect(d)
        try:
            if shape == "head":
                s.sendall(b"GET /api/v1/canaries HTTP/1.1\r\n" + _host(d) + b"X-Pad: " + b"a" * 8000)
            else:
                s.sendall(b"POST /api/v1/alertmanager HTTP/1.1\r\n" + _host(d) +
                          b"Content-Type: application/json\r\nContent-Length: 1048576\r\n\r\n")
                s.sendall(b"x" * (600 * 1024))
        except OSError:
            pass
        socks.append(s)
    time.sleep(3)
    now, peak = _rss_kb(d.p.pid, "VmRSS"), _rss_kb(d.p.pid, "VmHWM")
    held = refused = 0
    for s in socks:
        s.settimeout(0.02)
        try:
            got = s.recv(64)
            refused += got.startswith(b"HTTP/1.1 503")
        except socket.timeout:
            held += 1
        except OSError:
            pass
        s.close()
    print("%d stalled (%s): RSS %d MB before, %d MB with them (peak %d MB); %d held open, "
          "%d refused with 503" % (n, shape, base // 1024, now // 1024, peak // 1024, held, refused))


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--rss":
        try:
            measure_rss(int(sys.argv[2]), sys.argv[3])
        finally:
            cleanup()
        sys.exit(0)
    sys.exit(run(globals()))
