"""End to end: router haproxy against real HAProxy 2.6 processes (Debian
`haproxy`), each started here on free loopback ports with a configuration
in a temporary directory (no master-worker, stats socket in that directory),
and wrk for load. What docs/routers.md promises: exact splits, rollback
that keeps requests in flight, no error across weight changes under load,
restarts healed, foreign servers untouched, endpoints swapped at run time,
the built-in metrics read from HAProxy, and clear errors from a bad socket."""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BUILD, SLOW, Canaryd, Proc, Upstream, free_port, get, run,  # noqa: E402
                     tmpdir, wait_port)

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
WRK = shutil.which("wrk")


class HAProxy(Proc):
    """haproxy -db on a config written to <d> (kept for a restart): frontend
    on <port>, backend 'be' with <servers> ("server NAME ADDR weight W"
    lines), stats socket <d>/admin.sock at level admin; logs in httplog
    format to 127.0.0.1:<log_port> when given."""

    def __init__(self, servers=(), d=None, port=None, log_port=None, level="admin",
                 balance="roundrobin"):
        self.dir = d or tmpdir()
        self.port = port or free_port()
        self.sock = os.path.join(self.dir, "admin.sock")
        self.servers_cfg, self.log_port, self.level = list(servers), log_port, level
        self.balance = balance
        cfg = os.path.join(self.dir, "haproxy.cfg")
        lines = ["global",
                 "    stats socket %s mode 600 level %s" % (self.sock, level),
                 "    maxconn 2000"]
        if log_port:
            lines.append("    log 127.0.0.1:%d len 2048 local0 info" % log_port)
        lines += ["defaults", "    mode http", "    timeout connect 2s",
                  "    timeout client 30s", "    timeout server 30s",
                  "    option http-keep-alive"]
        if log_port:
            lines += ["    log global", "    option httplog"]
        lines += ["frontend fe", "    bind 127.0.0.1:%d" % self.port,
                  "    default_backend be", "backend be", "    balance " + balance]
        lines += ["    " + s for s in self.servers_cfg]
        with open(cfg, "w") as f:
            f.write("\n".join(lines) + "\n")
        if os.path.exists(self.sock):
            os.unlink(self.sock)
        super().__init__([HAPROXY, "-db", "-f", cfg], "haproxy")
        end = time.time() + 10 * SLOW
        while not os.path.exists(self.sock) and time.time() < end:
            time.sleep(0.02)
        wait_port(self.port)

    def restart(self):
        """Stops this HAProxy and starts another on the same files and port."""
        self.stop()
        return HAProxy(self.servers_cfg, d=self.dir, port=self.port, log_port=self.log_port,
                       level=self.level, balance=self.balance)

    def cmd(self, line):
        s = socket.socket(socket.AF_UNIX)
        s.settimeout(5)
        s.connect(self.sock)
        s.sendall((line + "\n").encode())
        out = b""
        while True:
            d = s.recv(65536)
            if not d:
                break
            out += d
        s.close()
        return out.decode()

    def servers(self):
        """{name: (addr:port, weight, admin_state)} of backend 'be'."""
        out = {}
        lines = self.cmd("show servers state be").splitlines()
        for l in lines[2:]:
            f = l.split()
            if len(f) > 18:
                out[f[3]] = ("%s:%s" % (f[4], f[18]), int(f[7]), int(f[6]))
        return out


def hap_yaml(name, api, stable, canary=None, step_weights=(10, 20), interval="1s",
             metrics=None, log=None, threshold=2, extra=""):
    if metrics is None:
        metrics = [("request-success-rate", "min: 99", "5s")]
    lines = ["apiVersion: canaryd/v1", "kind: Canary", "metadata:", "  name: %s" % name,
             "spec:", "  router: haproxy", "  haproxy:", "    runtimeAPI: %s" % api,
             "    backend: be"]
    if log:
        lines.append("    log: %s" % log)
    lines += ["  stable:", "    revision: v1", "    endpoints: [%s]" % ", ".join(stable)]
    if canary:
        lines += ["  canary:", "    revision: v2", "    endpoints: [%s]" % ", ".join(canary)]
    lines += ["  analysis:", "    interval: %s" % interval, "    threshold: %d" % threshold,
              "    stepWeights: [%s]" % ", ".join(str(w) for w in step_weights),
              "    metrics:"]
    for m, rng, win in metrics:
        lines += ["      - name: %s" % m, "        thresholdRange: { %s }" % rng,
                  "        interval: %s" % win]
    return "\n".join(lines) + "\n" + extra


def wait_applied(cd, name, weight, timeout=10):
    """Until the router reports <weight> applied (nothing pending)."""
    end = time.time() + timeout * SLOW
    st = None
    while time.time() < end:
        st = cd.status(name)
        if st["canaryWeight"] == weight and "applying" not in st and "routerError" not in st:
            return st
        time.sleep(0.01)
    raise AssertionError("weight %d not applied in %ds: %s" % (weight, timeout, st))


def wait_for(what, fn, timeout=10, every=0.05):
    end = time.time() + timeout * SLOW
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(every)
    raise AssertionError("%s: not within %ds (last %r)" % (what, timeout, last))


def sample(port, n):
    """<n> requests over one keep-alive connection: (canary share %, longest
    canary run, statuses that were not 200)."""
    import http.client
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    can = run_len = longest = bad = 0
    for _ in range(n):
        c.request("GET", "/")
        r = c.getresponse()
        r.read()
        if r.status != 200:
            bad += 1
        if r.getheader("X-Upstream", "") == "canary":
            can += 1
            run_len += 1
            longest = max(longest, run_len)
        else:
            run_len = 0
    c.close()
    return 100.0 * can / n, longest, bad


def upstream_of(headers):
    return {k.lower(): v for k, v in headers.items()}.get("x-upstream")


class Traffic:
    """<n> threads of sequential requests to <port> until stop(); counts
    statuses and errors."""

    def __init__(self, port, n=2):
        self.port, self.running, self.codes, self.errors = port, True, {}, 0
        self.lock = threading.Lock()
        self.end = time.time() + 120
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(n)]
        for t in self.threads:
            t.start()

    def _run(self):
        while self.running and time.time() < self.end:
            try:
                st = get(self.port)[0]
                with self.lock:
                    self.codes[st] = self.codes.get(st, 0) + 1
            except OSError:
                with self.lock:
                    self.errors += 1
                time.sleep(0.01)

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(15)
        return self


def setup(n_stable=1, n_canary=1, log=False, own=True, **kw):
    st = [Upstream("stable") for _ in range(n_stable)]
    ca = [Upstream("canary") for _ in range(n_canary)]
    other = Upstream("own")
    servers = []
    if own:
        # the user's own server (weight 0: no traffic) and one named like
        # another canary's: canaryd must leave both alone
        servers = ["server own %s weight 0" % other.addr,
                   "server cd-other-s0 %s weight 0" % other.addr]
    log_port = free_port() if log else None
    hp = HAProxy(servers, log_port=log_port)
    cd = Canaryd(hap_yaml("web", "unix:" + hp.sock, [u.addr for u in st],
                          [u.addr for u in ca] if kw.pop("with_canary", False) else None,
                          log="127.0.0.1:%d" % log_port if log else None, **kw))
    return st, ca, other, hp, cd


# ---- the tests ----

def test_split_follows_every_step():
    st, ca, other, hp, cd = setup(n_stable=1, n_canary=1)
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", ca[0].addr)
    assert rc == 0, (rc, out, err)
    cd.wait_phase("web", ("Progressing",))
    print("  step  expected %  measured %  longest canary run  (1000 requests each)")
    rows = []
    for w in (0, 5, 10, 25, 33, 50, 60, 75, 90, 100, 10, 0):
        rc, out, err = cd.ctl("set-weight", "web", str(w))
        assert rc == 0, (rc, out, err)
        wait_applied(cd, "web", w)
        share, longest, bad = sample(hp.port, 1000)
        rows.append((w, share, longest, bad))
        print("  %4d  %10d  %10.1f  %18d" % (w, w, share, longest), flush=True)
    for w, share, longest, bad in rows:
        assert bad == 0, rows
        assert abs(share - w) <= 1.0, ("split off by more than 1 point", rows)
    s = hp.servers()
    assert s["own"][1] == 0 and s["cd-other-s0"][1] == 0, s
    st_ = cd.status("web")
    assert [x["name"] for x in st_["haproxy"]["servers"]] == ["cd-web-s0", "cd-web-c1"] or \
        len(st_["haproxy"]["servers"]) == 2, st_


def test_several_endpoints_scaled():
    st, ca, other, hp, cd = setup(n_stable=3, n_canary=2)
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints",
                          ",".join(u.addr for u in ca))
    assert rc == 0, (rc, out, err)
    cd.wait_phase("web", ("Progressing",))
    for w in (10, 37, 50):
        cd.ctl("set-weight", "web", str(w))
        wait_applied(cd, "web", w)
        share, longest, bad = sample(hp.port, 1000)
        print("  3 stable + 2 canary servers, weight %d: %.1f %%" % (w, share), flush=True)
        assert bad == 0 and abs(share - w) <= 1.0, (w, share)
    ours = {n: v for n, v in hp.servers().items() if n.startswith("cd-web-")}
    assert len(ours) == 5, ours


def test_rollback_keeps_slow_request():
    st = Upstream("stable")
    ca = Upstream("canary", latency_ms=2000)
    hp = HAProxy()
    cd = Canaryd(hap_yaml("web", "unix:" + hp.sock, [st.addr], step_weights=(50,),
                          interval="1h"))
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", ca.addr)
    assert rc == 0, (rc, out, err)
    cd.wait_phase("web", ("Progressing",))
    cd.ctl("set-weight", "web", "100")
    wait_applied(cd, "web", 100)
    res = {}

    def slow():
        res["slow"] = get(hp.port)

    t = threading.Thread(target=slow)
    t.start()
    time.sleep(0.5)   # the slow request is in flight on the canary
    t0 = time.time()
    rc, out, err = cd.ctl("abort", "web")
    assert rc == 0, (rc, out, err)
    wait_applied(cd, "web", 0)
    status, headers, body = get(hp.port)
    t1 = time.time()
    assert status == 200 and upstream_of(headers) == "stable", (status, headers)
    t.join(10)
    assert res["slow"][0] == 200 and upstream_of(res["slow"][1]) == "canary", res
    print("  abort to the first request answered by stable: %.1f ms" % ((t1 - t0) * 1000))


def test_no_errors_across_1000_weight_changes():
    if not WRK:
        raise AssertionError("wrk is not installed (scripts/setup.sh test)")
    st, ca, other, hp, cd = setup()
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", ca[0].addr)
    assert rc == 0
    cd.wait_phase("web", ("Progressing",))
    wrk = subprocess.Popen([WRK, "-t1", "-c8", "-d60s", "--latency",
                            "http://127.0.0.1:%d/" % hp.port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    weights = [0, 100, 50, 1, 99, 10, 90, 0, 100, 30]
    t0 = time.time()
    try:
        for i in range(1000):
            w = weights[i % len(weights)]
            s, body = cd.api("POST", "/api/v1/canaries/web/weight", {"weight": w})
            assert s == 200, (s, body)
            wait_applied(cd, "web", w)
    finally:
        dt = time.time() - t0
        wrk.send_signal(signal.SIGINT)
        out = wrk.communicate(timeout=30)[0]
    print("  1000 weight changes in %.1fs under wrk -t1 -c8" % dt)
    m = re.search(r"(\d+) requests in", out)
    assert m and int(m.group(1)) > 1000, out
    assert "Non-2xx" not in out and "Socket errors" not in out, out
    print("  wrk: %s requests, no non-2xx, no socket errors" % m.group(1))


def test_restart_is_healed():
    st, ca, other, hp, cd = setup(step_weights=(10, 20, 30, 40, 50), interval="1s",
                                  threshold=5)
    tr = Traffic(hp.port)
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", ca[0].addr)
    assert rc == 0
    cd.wait_phase("web", ("Progressing",))
    wait_for("weight 20", lambda: cd.status("web")["canaryWeight"] >= 20, timeout=15)
    pid1 = cd.status("web")["haproxy"].get("pid")
    hp = hp.restart()
    tr.port = hp.port
    # the new HAProxy has only its own servers, until canaryd sees the new pid
    def healed():
        s = hp.servers()
        ours = [n for n in s if n.startswith("cd-web-")]
        return len(ours) == 2 and all(s[n][1] > 0 for n in ours) and s
    s = wait_for("servers and weights re-asserted", healed, timeout=10)
    assert s["own"][1] == 0, s
    # healed by the next split's write (it reads the backend first) or by
    # the restart seen in show info, whichever comes first; both happen
    wait_for("new pid seen", lambda: cd.status("web")["haproxy"].get("pid") not in (None, pid1),
             timeout=5)
    st_ = cd.wait_phase("web", ("Succeeded",), timeout=40)
    tr.stop()
    assert "restarted" in cd.output(), cd.output()[-2000:]
    # promoted: the canary's endpoint is the stable one now
    share, longest, bad = sample(hp.port, 200)
    assert bad == 0 and share == 100.0, (share, bad)
    ours = {n: v for n, v in hp.servers().items() if n.startswith("cd-web-")}
    assert [v[0] for n, v in ours.items() if v[1] > 0] == [ca[0].addr], ours
    # a restart while nothing else changes: healed by show info's new pid
    # alone (no split is applied meanwhile)
    gen = cd.status("web")["appliedGeneration"]
    hp = hp.restart()

    def healed_again():
        s = hp.servers()
        return [s[n][0] for n in s if n.startswith("cd-web-") and s[n][1] > 0] == [ca[0].addr]
    wait_for("re-asserted after a restart alone", healed_again, timeout=10)
    assert cd.status("web")["appliedGeneration"] == gen
    assert cd.output().count("restarted (pid") >= 2, cd.output()[-3000:]
    share, longest, bad = sample(hp.port, 100)
    assert bad == 0 and share == 100.0, (share, bad)


def test_canaryd_restart_keeps_its_servers():
    st, ca, other, hp, cd = setup()
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", ca[0].addr)
    assert rc == 0
    cd.wait_phase("web", ("Progressing",))
    cd.ctl("set-weight", "web", "30")
    wait_applied(cd, "web", 30)
    before = hp.servers()
    tr = Traffic(hp.port)
    cd.stop()
    # HAProxy keeps serving the last split while canaryd is away
    time.sleep(0.3)
    cd2 = Canaryd(config_path=cd.config_path, data_dir=cd.data_dir)
    wait_applied(cd2, "web", 30)
    tr.stop()
    after = hp.servers()
    assert before == after, (before, after)   # the same servers, nothing moved
    assert tr.errors == 0 and set(tr.codes) == {200}, (tr.errors, tr.codes)
    share, longest, bad = sample(hp.port, 1000)
    assert bad == 0 and abs(share - 30) <= 1, share


def test_endpoints_swapped_at_run_time():
    st, ca, other, hp, cd = setup(n_canary=2)
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", ca[0].addr)
    assert rc == 0
    cd.wait_phase("web", ("Progressing",))
    cd.ctl("set-weight", "web", "50")
    wait_applied(cd, "web", 50)
    first = {n: v for n, v in hp.servers().items() if n.startswith("cd-web-c")}
    assert [v[0] for v in first.values()] == [ca[0].addr], first
    # a new rollout with the other canary endpoint: a new server, the old one
    # drained (maintenance) then deleted
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v3", "--endpoints", ca[1].addr)
    assert rc == 0, (rc, out, err)
    cd.ctl("set-weight", "web", "50")
    wait_applied(cd, "web", 50)

    def swapped():
        c = {n: v for n, v in hp.servers().items() if n.startswith("cd-web-c")}
        return [v[0] for v in c.values()] == [ca[1].addr] and c
    c = wait_for("old canary server deleted", swapped, timeout=10)
    assert not set(c) & set(first), (c, first)
    share, longest, bad = sample(hp.port, 400)
    assert bad == 0 and abs(share - 50) <= 1, share
    s = hp.servers()
    assert "own" in s and "cd-other-s0" in s, s


def test_bad_canary_rolled_back_by_haproxy_metrics():
    st = Upstream("stable")
    ca = Upstream("canary", fail_rate=0.5)
    hp = HAProxy()
    cd = Canaryd(hap_yaml("web", "unix:" + hp.sock, [st.addr], step_weights=(50, 60),
                          interval="1s", threshold=2,
                          metrics=[("request-success-rate", "min: 99", "2s")]))
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", ca.addr)
    assert rc == 0
    stop = time.time() + 30 * SLOW

    def traffic():
        while time.time() < stop:
            try:
                get(hp.port)
            except OSError:
                time.sleep(0.01)
    threads = [threading.Thread(target=traffic, daemon=True) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        s = cd.wait_phase("web", ("Failed",), timeout=25)
    finally:
        stop = 0
    ev = [e for e in cd.events("web") if e["type"] == "check"]
    assert ev, cd.events("web")
    # the rollback's split is written after the decision is saved
    wait_applied(cd, "web", 0)


def test_request_duration_from_haproxy_logs():
    st = Upstream("stable")
    ca = Upstream("canary", latency_ms=300)
    lp = free_port()
    hp = HAProxy(log_port=lp)
    cd = Canaryd(hap_yaml("web", "unix:" + hp.sock, [st.addr], step_weights=(50, 60),
                          interval="1s", threshold=2, log="127.0.0.1:%d" % lp,
                          metrics=[("request-duration", "max: 200", "2s")]).replace(
        # some 16 canary requests in a 2 s window: enough here
        "  analysis:\n", "  analysis:\n    minSamples: 5\n"))
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", ca.addr)
    assert rc == 0
    stop = time.time() + 30 * SLOW

    def traffic():
        while time.time() < stop:
            try:
                get(hp.port)
            except OSError:
                time.sleep(0.01)
    threads = [threading.Thread(target=traffic, daemon=True) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        cd.wait_phase("web", ("Failed",), timeout=25)
    finally:
        stop = 0
    checks = [e for e in cd.events("web") if e["type"] == "check"]
    text = json.dumps(checks)
    assert "request-duration" in text, text
    vals = [float(v) for v in re.findall(r'"value": ([0-9.]+)', text)]
    assert any(300 <= v < 1000 for v in vals), text


def test_request_duration_refused_without_log():
    d = tmpdir()
    path = os.path.join(d, "c.yaml")
    with open(path, "w") as f:
        f.write(hap_yaml("web", "unix:/nonexistent/admin.sock", ["127.0.0.1:9"],
                         metrics=[("request-duration", "max: 500", "1m")]))
    admin = free_port()
    p = subprocess.run([os.path.join(BUILD, "canaryd"), "-c", path, "--admin",
                        "127.0.0.1:%d" % admin, "--data-dir", os.path.join(d, "data")],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode != 0, p
    assert "needs spec.haproxy.log" in p.stderr + p.stdout, p
    p = subprocess.run([os.path.join(BUILD, "canaryd"), "--check", "-c", path],
                       capture_output=True, text=True, timeout=20)
    assert p.returncode == 2 and "c.yaml:7:3: spec.analysis.metrics[0] 'request-duration': " \
        "request-duration with router haproxy needs spec.haproxy.log" in p.stderr, p


def test_bad_runtime_api_answers():
    st = Upstream("stable")
    d = tmpdir()
    # socket missing
    cd = Canaryd(hap_yaml("web", "unix:%s/none.sock" % d, [st.addr]))
    e = wait_for("routerError", lambda: cd.status("web").get("routerError"), timeout=10)
    print("  routerError: %s" % e)
    assert "cannot connect to haproxy runtime API" in e and "no such file" in e, e
    assert "\n" not in e
    cd.stop()
    # unknown backend
    hp = HAProxy()
    cd = Canaryd(hap_yaml("web", "unix:" + hp.sock, [st.addr]).replace("backend: be",
                                                                       "backend: nope"))
    e = wait_for("routerError", lambda: cd.status("web").get("routerError"), timeout=10)
    print("  routerError: %s" % e)
    assert "backend 'nope'" in e and "Can't find backend" in e, e
    cd.stop()
    # balance static-rr: HAProxy refuses canaryd's servers itself
    hp3 = HAProxy(balance="static-rr")
    cd = Canaryd(hap_yaml("web", "unix:" + hp3.sock, [st.addr]))
    e = wait_for("routerError", lambda: cd.status("web").get("routerError"), timeout=10)
    print("  routerError: %s" % e)
    assert "dynamic load balancing" in e, e
    cd.stop()
    # a hash: servers can be added, but requests are not split by weight
    hp4 = HAProxy(balance="source\n    hash-type consistent")
    cd = Canaryd(hap_yaml("web", "unix:" + hp4.sock, [st.addr]))
    e = wait_for("haproxy.error", lambda: cd.status("web")["haproxy"].get("error"), timeout=10)
    print("  haproxy.error: %s" % e)
    assert "balance 'source' ignores weights set at run time" in e, e
    # a split asked now is reported as not applied
    rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", st.addr)
    assert rc == 0, (rc, out, err)
    e = wait_for("routerError", lambda: cd.status("web").get("routerError"), timeout=10)
    assert "'source'" in e, e
    cd.stop()
    # a socket at level user: every change is refused
    hp2 = HAProxy(level="user")
    cd = Canaryd(hap_yaml("web", "unix:" + hp2.sock, [st.addr]))
    e = wait_for("routerError", lambda: cd.status("web").get("routerError"), timeout=10)
    print("  routerError: %s" % e)
    assert "ermission denied" in e or "Unknown command" in e or "not allowed" in e, e
    cd.stop()
    # permission on the socket file (mode 600, root's): canaryd as nobody
    setpriv = shutil.which("setpriv")
    if os.geteuid() == 0 and setpriv:
        pd = tmpdir()
        os.chmod(pd, 0o777)
        os.chmod(hp.dir, 0o755)
        cfg = os.path.join(pd, "c.yaml")
        with open(cfg, "w") as f:
            f.write(hap_yaml("web", "unix:" + hp.sock, [st.addr]))
        os.chmod(cfg, 0o644)
        cd = Canaryd(config_path=cfg, data_dir=os.path.join(pd, "data"),
                     prefix=[setpriv, "--reuid=65534", "--regid=65534", "--clear-groups"])
        e = wait_for("routerError", lambda: cd.status("web").get("routerError"), timeout=10)
        print("  routerError: %s" % e)
        assert "permission denied" in e, e
        cd.stop()
    # garbage: a server that answers anything to anything
    gport = free_port()
    srv = socket.socket()
    srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    srv.bind(("127.0.0.1", gport))
    srv.listen(16)
    running = [True]
    accepted = [0]

    def garbage():
        srv.settimeout(0.2)
        while running[0] and accepted[0] < 5000:
            try:
                c, _ = srv.accept()
            except socket.timeout:
                continue
            accepted[0] += 1
            try:
                c.recv(4096)
                c.sendall(b"\x00\xff garbage\r\n1\n# x y\n" + os.urandom(64))
            except OSError:
                pass
            c.close()
    t = threading.Thread(target=garbage, daemon=True)
    t.start()
    cd = Canaryd(hap_yaml("web", "127.0.0.1:%d" % gport, [st.addr]))
    e = wait_for("routerError", lambda: cd.status("web").get("routerError"), timeout=10)
    print("  routerError: %s" % e)
    assert "show servers state" in e and "\n" not in e, e
    # a failed write is tried again each second, not at once (a split, a
    # show info and a show stat a second at most)
    n0 = accepted[0]
    time.sleep(2)
    tries = accepted[0] - n0
    print("  connections to a garbage runtime API in 2s: %d" % tries)
    assert tries <= 10, tries
    assert cd.alive()
    cd.stop()
    running[0] = False
    t.join(5)
    srv.close()


if __name__ == "__main__":
    sys.exit(run(globals()))
