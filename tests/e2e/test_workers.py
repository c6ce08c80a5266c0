"""The built-in proxy with spec.workers: 2 (two event loops, one thread
each, one SO_REUSEPORT listening socket each): requests are served by
both, the split stays exact to within one request per worker, weight and
endpoint changes reach every worker, /metrics counts every worker's
requests, an ejection is reported once, SIGHUP and SIGTERM drain."""
import http.client
import json
import os
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLOW, Canaryd, Upstream, canary_yaml, free_port, get, run  # noqa: E402

WORKERS = 2
SPEC = "  workers: %d\n" % WORKERS


def _listening_sockets(pid, port):
    """Listening TCP sockets on <port> that process <pid> holds."""
    inodes = set()
    fd_dir = "/proc/%d/fd" % pid
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(os.path.join(fd_dir, fd))
        except OSError:
            continue
        m = re.match(r"socket:\[(\d+)\]", target)
        if m:
            inodes.add(m.group(1))
    n = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as f:
            next(f)
            for line in f:
                cols = line.split()
                local, state, inode = cols[1], cols[3], cols[9]
                if state == "0A" and int(local.split(":")[1], 16) == port and inode in inodes:
                    n += 1
    return n


def _threads(pid):
    return len(os.listdir("/proc/%d/task" % pid))


def _upstreams(port, n):
    """X-Upstream of <n> requests, each on a connection of its own (the
    kernel spreads new connections over the workers)."""
    out = []
    for _ in range(n):
        st, hdr, body = get(port)
        assert st == 200, (st, body)
        out.append(hdr.get("X-Upstream"))
    return out


def _set_weight(d, w):
    st, body = d.api("POST", "/api/v1/canaries/web/weight", {"weight": w})
    assert st == 200, (st, body)


def test_two_workers_listen_and_serve_and_metrics_count_both():
    v1 = Upstream("v1")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h",
                            extra_spec=SPEC))
    assert _listening_sockets(d.p.pid, port) == WORKERS
    one_port = free_port()
    one = Canaryd(canary_yaml("web", "127.0.0.1:%d" % one_port, [v1.addr], interval="1h",
                              extra_spec="  workers: 1\n"))
    assert _listening_sockets(one.p.pid, one_port) == 1
    assert _threads(d.p.pid) >= _threads(one.p.pid) + WORKERS, (
        _threads(d.p.pid), _threads(one.p.pid))
    ups = _upstreams(port, 300)
    assert ups == ["v1"] * 300, set(ups)
    # keep-alive connections too
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    for _ in range(50):
        c.request("GET", "/")
        r = c.getresponse()
        assert r.status == 200 and r.read() == b"v1\n"
    c.close()
    st, text = d.api("GET", "/metrics")
    assert st == 200
    assert 'canaryd_requests_total{canary="web",target="stable",revision="v1",code="200"} 350\n' in text, \
        [l for l in text.splitlines() if "requests_total" in l]


def test_split_is_exact_within_one_request_per_worker_and_follows_weight_changes():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h",
                            extra_spec=SPEC))
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    # each weight differs from the one before: every worker starts a new
    # cycle, so that its own split is exact within one request
    for w in (30, 70, 3, 100, 0):
        _set_weight(d, w)
        n = 400
        ups = _upstreams(port, n)
        canary = ups.count("v2")
        assert ups.count("v1") + canary == n, set(ups)
        assert abs(canary - w * n / 100.0) < WORKERS, (w, canary, n)


def test_endpoint_change_reaches_every_worker_without_closing_connections():
    v1, v1b = Upstream("v1"), Upstream("v1b")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h",
                            extra_spec=SPEC))
    held = []
    for _ in range(8):  # keep-alive connections, over both workers
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/")
        assert c.getresponse().read() == b"v1\n"
        held.append(c)
    with open(d.config_path, "w") as f:
        f.write(canary_yaml("web", "127.0.0.1:%d" % port, [v1b.addr], interval="1h",
                            extra_spec=SPEC))
    d.kill(signal.SIGHUP)
    end = time.time() + 10 * SLOW
    while time.time() < end and "reloaded" not in d.output():
        time.sleep(0.05)
    assert "reloaded" in d.output(), d.output()
    # the change applies to the next request in every worker
    assert _upstreams(port, 200) == ["v1b"] * 200
    for c in held:  # the same connections: they stay open
        c.request("GET", "/")
        assert c.getresponse().read() == b"v1b\n"
        c.close()


def test_one_ejection_is_reported_once():
    v1 = Upstream("v1")
    dead = "127.0.0.1:%d" % free_port()
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [dead, v1.addr], interval="1h",
                            extra_spec=SPEC + "  outlierDetection: {consecutiveErrors: 3, "
                                              "ejectionTime: 60s}\n"))
    # concurrent clients, so that both workers fail on the dead endpoint
    errors = []

    def client():
        try:
            assert _upstreams(port, 60) == ["v1"] * 60
        except AssertionError as e:
            errors.append(e)

    ts = [threading.Thread(target=client) for _ in range(4)]
    for t in ts:
        t.start()
    for t in ts:
        t.join(60 * SLOW)
    assert not errors, errors[:1]
    end = time.time() + 5 * SLOW
    ev = []
    while time.time() < end and not ev:
        ev = [e for e in d.events("web") if e["type"] == "ejected"]
        time.sleep(0.05)
    time.sleep(0.3)
    ev = [e for e in d.events("web") if e["type"] in ("ejected", "readmitted")]
    assert len(ev) == 1 and ev[0]["type"] == "ejected" and dead in ev[0]["message"], ev


def test_sigterm_drains_every_worker():
    slow = Upstream("slow", latency_ms=1500)
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [slow.addr], interval="1h",
                            extra_spec=SPEC))
    results = []

    def call():
        results.append(get(port))

    ts = [threading.Thread(target=call) for _ in range(8)]
    for t in ts:
        t.start()
    time.sleep(0.5)
    d.kill(signal.SIGTERM)
    for t in ts:
        t.join(10 * SLOW)
    rc = d.wait(10)
    assert rc == 0, (rc, d.output())
    assert len(results) == 8, results
    assert all(r[0] == 200 and r[2] == b"slow\n" for r in results), results


if __name__ == "__main__":
    sys.exit(run(globals()))
