"""End-to-end test harness: real canaryd, canaryctl and upstream processes
on loopback ports, real HTTP clients. Every wait is bounded in time.

A test module defines functions named test_*; `run(globals())` runs them in
order, each with a time limit, and prints one line per test and a closing
'N passed, N failed' line that tests/run.sh adds up."""
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(ROOT, os.environ.get("CANARYD_BUILD", "build"))
TEST_TIMEOUT = int(os.environ.get("CANARYD_TEST_TIMEOUT", "90"))
# sanitizer builds are slower: scale the time allowances
SLOW = float(os.environ.get("CANARYD_SLOW", "1"))

_procs = []
_tmpdirs = []
_servers = []


# tests/run.sh runs several test files at once and gives each its own range
# of ports (CANARYD_PORT_BASE, PORT_SPAN of them, below the kernel's
# ephemeral range): a port picked here and released is then never picked by
# another file meanwhile, as one from the kernel could be
PORT_BASE = int(os.environ.get("CANARYD_PORT_BASE", "0") or 0)
PORT_SPAN = 2000
_port_next = [0]


def free_port():
    """A loopback TCP port nothing listens on now: the next free one of this
    file's range, or one the kernel picks when there is no range."""
    if not PORT_BASE:
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        return p
    for _ in range(PORT_SPAN):
        p = PORT_BASE + _port_next[0] % PORT_SPAN
        _port_next[0] += 1
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", p))
        except OSError:
            continue
        finally:
            s.close()
        return p
    raise AssertionError("no free port in 127.0.0.1:%d-%d" % (PORT_BASE, PORT_BASE + PORT_SPAN - 1))


def wait_port(port, timeout=10.0):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        except OSError:
            time.sleep(0.05)
    raise AssertionError("nothing listening on 127.0.0.1:%d after %.0fs" % (port, timeout))


def tmpdir():
    d = tempfile.mkdtemp(prefix="canaryd-e2e-")
    _tmpdirs.append(d)
    return d


class Proc:
    def __init__(self, args, name, env=None):
        self.name = name
        self.log_path = os.path.join(tmpdir(), name + ".log")
        self.log = open(self.log_path, "wb")
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        if env:
            e.update(env)
        self.p = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT, env=e,
                                  cwd=ROOT, start_new_session=True)
        _procs.append(self)

    def output(self):
        self.log.flush()
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def alive(self):
        return self.p.poll() is None

    def kill(self, sig):
        if self.alive():
            self.p.send_signal(sig)

    def wait(self, timeout):
        return self.p.wait(timeout=timeout * SLOW)

    def stop(self, sig=signal.SIGTERM, timeout=15):
        if self.alive():
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout=timeout * SLOW)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        return self.p.returncode


class Upstream(Proc):
    """canaryd-upstream: answers 'NAME\\n' with header X-Upstream: NAME."""

    def __init__(self, name, fail_rate=0.0, latency_ms=0, extra=()):
        self.port = free_port()
        self.addr = "127.0.0.1:%d" % self.port
        args = [os.path.join(BUILD, "canaryd-upstream"), "--listen", self.addr, "--name", name]
        if fail_rate:
            args += ["--fail-rate", str(fail_rate)]
        if latency_ms:
            args += ["--latency-ms", str(latency_ms)]
        args += list(extra)
        super().__init__(args, "upstream-" + name)
        wait_port(self.port)


def canary_yaml(name, listen, stable, canary=None, interval="1s", threshold=3,
                max_weight=50, step_weight=10, step_weights=None, metrics=None,
                extra_spec="", stable_rev="v1", canary_rev="v2", deadline=None):
    if metrics is None:
        metrics = [("request-success-rate", "min: 99", "1m")]
    lines = [
        "apiVersion: canaryd/v1",
        "kind: Canary",
        "metadata:",
        "  name: %s" % name,
        "spec:",
        "  router: builtin",
        "  listen: %s" % listen,
        "  stable:",
        "    revision: %s" % stable_rev,
        "    endpoints: [%s]" % ", ".join(stable),
    ]
    if canary:
        lines += ["  canary:", "    revision: %s" % canary_rev,
                  "    endpoints: [%s]" % ", ".join(canary)]
    if deadline:
        lines.append("  progressDeadlineSeconds: %d" % deadline)
    lines += ["  analysis:", "    interval: %s" % interval, "    threshold: %d" % threshold,
              "    maxWeight: %d" % max_weight]
    if step_weights:
        lines.append("    stepWeights: [%s]" % ", ".join(str(w) for w in step_weights))
    else:
        lines.append("    stepWeight: %d" % step_weight)
    lines.append("    metrics:")
    for mname, rng, win in metrics:
        lines += ["      - name: %s" % mname, "        thresholdRange: { %s }" % rng,
                  "        interval: %s" % win]
    text = "\n".join(lines) + "\n"
    if extra_spec:
        text += extra_spec
    # run every end-to-end test with N proxy workers (not the default run)
    workers = os.environ.get("CANARYD_TEST_WORKERS")
    if workers and "workers:" not in text:
        text += "  workers: %d\n" % int(workers)
    return text


class Canaryd(Proc):
    """canaryd on <config_text> (or the file <config_path>), its admin API on a
    free loopback port. <prefix> is a command that execs canaryd in another
    setting (a mount namespace: tests/e2e/test_dns.py, tests/chaos/; a
    faked clock: tests/e2e/test_dashboard.py), <env> more environment."""

    def __init__(self, config_text=None, config_path=None, data_dir=None, admin_port=None,
                 extra=(), wait=True, prefix=(), env=None):
        d = tmpdir()
        if config_path is None:
            config_path = os.path.join(d, "canary.yaml")
            with open(config_path, "w") as f:
                f.write(config_text)
        self.config_path = config_path
        self.data_dir = data_dir or os.path.join(d, "data")
        self.admin_port = admin_port or free_port()
        self.server = "http://127.0.0.1:%d" % self.admin_port
        args = list(prefix) + [os.path.join(BUILD, "canaryd"), "-c", config_path,
                               "--admin", "127.0.0.1:%d" % self.admin_port,
                               "--data-dir", self.data_dir]
        args += list(extra)
        super().__init__(args, "canaryd", env=env)
        if wait:
            self.wait_ready()

    def wait_ready(self, timeout=10):
        end = time.time() + timeout * SLOW
        while time.time() < end:
            if not self.alive():
                raise AssertionError("canaryd exited %s:\n%s" % (self.p.returncode, self.output()))
            try:
                with urllib.request.urlopen(self.server + "/healthz", timeout=1) as r:
                    if r.status == 200:
                        return
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.05)
        raise AssertionError("canaryd not healthy after %ds:\n%s" % (timeout, self.output()))

    def api(self, method, path, body=None, token=None):
        """Returns (status, decoded JSON or text)."""
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.server + path, data=data, method=method)
        if data is not None:
            req.add_header("Content-Type", "application/json")
        if token:
            req.add_header("Authorization", "Bearer " + token)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                raw, status, ctype = r.read(), r.status, r.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            raw, status, ctype = e.read(), e.code, e.headers.get("Content-Type", "")
        if "json" in ctype:
            return status, json.loads(raw)
        return status, raw.decode("utf-8", "replace")

    def status(self, name):
        st, body = self.api("GET", "/api/v1/canaries/" + name)
        assert st == 200, (st, body)
        return body

    def events(self, name):
        st, body = self.api("GET", "/api/v1/canaries/%s/events" % name)
        assert st == 200, (st, body)
        return body

    def wait_phase(self, name, phases, timeout=30):
        if isinstance(phases, str):
            phases = (phases,)
        end = time.time() + timeout * SLOW
        last = None
        while time.time() < end:
            last = self.status(name)
            if last["phase"] in phases:
                return last
            time.sleep(0.05)
        raise AssertionError("phase %s not reached in %ds; last status %s" % (phases, timeout, last))

    def ctl(self, *args, token_file=None, timeout=60):
        cmd = [os.path.join(BUILD, "canaryctl"), "--server", self.server]
        if token_file:
            cmd += ["--token-file", token_file]
        cmd += list(args)
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout * SLOW)
        return r.returncode, r.stdout, r.stderr


class Load:
    """Steady HTTP/1.1 keep-alive load from <threads> clients, each sending
    at most <rps_per_thread> requests a second, until stop(). Counts
    responses by status and by the X-Upstream header, and errors."""

    def __init__(self, port, threads=4, rps_per_thread=50, path="/"):
        self.port, self.path = port, path
        self.lock = threading.Lock()
        self.by_status, self.by_upstream, self.errors = {}, {}, []
        self.timeline = []  # (request start time, upstream, status)
        self.running = True
        self.interval = 1.0 / rps_per_thread if rps_per_thread else 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]
        for t in self.threads:
            t.start()

    def _run(self):
        conn = None
        deadline = time.time() + 600  # hard bound
        while self.running and time.time() < deadline:
            t0 = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
                conn.request("GET", self.path)
                r = conn.getresponse()
                r.read()
                up = r.getheader("X-Upstream", "-")
                with self.lock:
                    self.by_status[r.status] = self.by_status.get(r.status, 0) + 1
                    self.by_upstream[up] = self.by_upstream.get(up, 0) + 1
                    self.timeline.append((t0, up, r.status))
                if r.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every failure is counted
                with self.lock:
                    self.errors.append(repr(e))
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.01)
            dt = time.time() - t0
            if self.interval > dt:
                time.sleep(self.interval - dt)
        if conn:
            conn.close()

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(15)
        return self

    def total(self):
        with self.lock:
            return sum(self.by_status.values())

    def non2xx(self):
        with self.lock:
            return sum(n for s, n in self.by_status.items() if not 200 <= s < 300)


class StaticServer:
    """Serves the files of <directory> on a free loopback port from a thread
    (for a browser test's own pages), counting requests by path in
    .requests. Closed at cleanup()."""

    def __init__(self, directory):
        import functools
        import http.server
        counts = self.requests = {}

        class Handler(http.server.SimpleHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                counts[self.path] = counts.get(self.path, 0) + 1
                super().do_GET()

        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.httpd = http.server.ThreadingHTTPServer(
            ("127.0.0.1", self.port), functools.partial(Handler, directory=directory))
        self.httpd.daemon_threads = True
        threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()
        _servers.append(self)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def get(port, path="/", headers=None, method="GET", body=None):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    c.close()
    return r.status, dict(r.getheaders()), data


def raw_exchange(port, payload, timeout=5.0, until_close=True):
    """Sends raw bytes, returns everything read until close or timeout."""
    s = socket.create_connection(("127.0.0.1", port), timeout)
    s.sendall(payload)
    out = b""
    end = time.time() + timeout * SLOW
    s.settimeout(0.5)
    while time.time() < end:
        try:
            d = s.recv(65536)
        except socket.timeout:
            if not until_close:
                break
            continue
        if not d:
            break
        out += d
    s.close()
    return out


def cleanup():
    for p in reversed(_procs):
        try:
            p.stop(signal.SIGKILL if not p.alive() else signal.SIGTERM, timeout=10)
        except Exception:  # noqa: BLE001
            pass
    del _procs[:]
    for srv in _servers:
        srv.close()
    del _servers[:]
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)
    del _tmpdirs[:]


class EventStream:
    """GET /api/v1/events/stream of canaryd <d> (with <query>, such as
    "?canary=web"), read event by event; every read is bounded by the
    socket's timeout."""

    def __init__(self, d, query="", timeout=15):
        self.s = socket.create_connection(("127.0.0.1", d.admin_port), timeout=timeout * SLOW)
        self.s.sendall(("GET /api/v1/events/stream%s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                        % (query, d.admin_port)).encode())
        self.buf = b""
        head = self._until(b"\r\n\r\n")
        self.status = int(head.split()[1])
        self.head = head.decode()

    def _until(self, sep):
        while sep not in self.buf:
            chunk = self.s.recv(65536)
            if not chunk:
                raise AssertionError("stream closed; got %r" % self.buf[-300:])
            self.buf += chunk
        part, self.buf = self.buf.split(sep, 1)
        return part

    def next(self):
        """(type, data) of the next event; comments and retry are skipped."""
        while True:
            block = self._until(b"\n\n").decode()
            typ, data = None, None
            for ln in block.split("\n"):
                if ln.startswith("event: "):
                    typ = ln[7:]
                elif ln.startswith("data: "):
                    data = json.loads(ln[6:])
            if typ:
                return typ, data

    def close(self):
        self.s.close()


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout("test took longer than %ds" % int(TEST_TIMEOUT * SLOW))


def sanitizer_reports(procs_output):
    return [l for l in procs_output.splitlines()
            if "ERROR: AddressSanitizer" in l or "runtime error:" in l or "ERROR: LeakSanitizer" in l
            or "WARNING: ThreadSanitizer" in l]


def run(namespace):
    tests = [(n, f) for n, f in namespace.items() if n.startswith("test_") and callable(f)]
    only = os.environ.get("CANARYD_TEST_ONLY")
    passed = failed = 0
    signal.signal(signal.SIGALRM, _alarm)
    for name, fn in tests:
        if only and only not in name:
            continue
        t0 = time.time()
        err = None
        signal.alarm(int(TEST_TIMEOUT * SLOW))
        try:
            fn()
        except Exception:  # noqa: BLE001
            err = traceback.format_exc()
        finally:
            signal.alarm(0)
        # a sanitizer report in any process fails the test too
        for p in list(_procs):
            try:
                p.stop()
            except Exception:  # noqa: BLE001
                pass
            reps = sanitizer_reports(p.output())
            if reps and err is None:
                err = "%s: sanitizer report:\n%s\n%s" % (p.name, "\n".join(reps[:5]), p.output()[-4000:])
        logs = {p.name: p.output()[-3000:] for p in _procs}
        cleanup()
        dt = time.time() - t0
        if err is None:
            passed += 1
            print("PASS %s (%.1fs)" % (name, dt), flush=True)
        else:
            failed += 1
            print("FAIL %s (%.1fs)\n%s" % (name, dt, err), flush=True)
            for pn, lg in logs.items():
                print("--- %s log (tail) ---\n%s" % (pn, lg), flush=True)
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0
