"""Active health checks (spec.healthCheck) with real upstreams: an endpoint
that fails its checks gets no requests and is audited, a killed one is
found out and taken back once it answers again, every endpoint of a
target failing routes to them anyway (panic), and a canary with no
healthy endpoint for progressDeadlineSeconds rolls back."""
import os
import signal
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SLOW, Canaryd, Proc, Upstream, canary_yaml, free_port, get,  # noqa: E402
                     run, wait_port, BUILD)

# fast checks: 100 ms apart, out after 2 failures, back after 1 pass; no
# passive outlier detection, so that only the active checks take anything out
FAST = ("  healthCheck: {path: /, interval: 100ms, timeout: 100ms, unhealthyThreshold: 2, "
        "healthyThreshold: 1}\n  outlierDetection: {consecutiveErrors: 0}\n")


def _wait_event(d, name, etype, needle, timeout=10):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        ev = [e for e in d.events(name) if e["type"] == etype and needle in e["message"]]
        if ev:
            return ev[0]
        time.sleep(0.05)
    raise AssertionError("no %s event about %s in %s" % (etype, needle, d.events(name)))


def _health(d, name, ep):
    for h in d.status(name).get("endpointHealth", []):
        if h["endpoint"] == ep:
            return h
    raise AssertionError("no health of %s in %s" % (ep, d.status(name)))


def _metrics(d):
    with urllib.request.urlopen(d.server + "/metrics", timeout=5) as r:
        return r.read().decode()


def _canary_at_100(good, bad):
    """A canary 'hc' whose rollout runs with both canary endpoints, all
    requests sent to the canary (set-weight)."""
    v1 = Upstream("v1")
    port = free_port()
    d = Canaryd(canary_yaml("hc", "127.0.0.1:%d" % port, [v1.addr], canary=[good, bad],
                            interval="1h", extra_spec=FAST))
    rc, out, err = d.ctl("set-weight", "hc", "100")
    assert rc == 0, (rc, out, err)
    return port, d


def test_failing_endpoint_gets_no_traffic_and_is_audited():
    good, bad = Upstream("good"), Upstream("bad", fail_rate=1.0)
    port, d = _canary_at_100(good.addr, bad.addr)
    ev = _wait_event(d, "hc", "unhealthy", bad.addr)
    assert ev["message"] == "endpoint %s (canary) unhealthy: 2 checks failed: status 500" % \
        bad.addr, ev
    assert ev["actor"] == "canaryd", ev
    # no request reaches it now: every answer is the good endpoint's
    seen = [get(port)[1].get("X-Upstream") for _ in range(30)]
    assert seen == ["good"] * 30, seen
    h = _health(d, "hc", bad.addr)
    assert h["healthy"] is False and h["target"] == "canary", h
    assert h["lastError"] == "status 500" and h["consecutiveFailures"] >= 2, h
    assert h["lastCheck"].endswith("Z"), h
    assert _health(d, "hc", good.addr)["healthy"] is True
    m = _metrics(d)
    assert 'canaryd_endpoint_healthy{canary="hc",target="canary",endpoint="%s"} 0' % bad.addr \
        in m, m
    assert 'canaryd_endpoint_healthy{canary="hc",target="canary",endpoint="%s"} 1' % good.addr \
        in m, m
    assert m.count("# TYPE canaryd_endpoint_healthy gauge") == 1, m
    assert "unhealthy: 2 checks failed: status 500" in d.output()


def test_killed_endpoint_is_taken_out_and_back():
    good, gone = Upstream("good"), Upstream("gone")
    port, d = _canary_at_100(good.addr, gone.addr)
    gone.stop()
    ev = _wait_event(d, "hc", "unhealthy", gone.addr)
    assert ev["message"].endswith("2 checks failed: connection refused"), ev
    # nothing tries it any more: no connect failure is logged from now on
    before = d.output().count("cannot connect to upstream '%s'" % gone.addr)
    for _ in range(20):
        st, hdr, _body = get(port)
        assert st == 200 and hdr.get("X-Upstream") == "good", (st, hdr)
    assert d.output().count("cannot connect to upstream '%s'" % gone.addr) == before
    # the same address answers again: healthy after one pass, requests go to it
    back = Proc([os.path.join(BUILD, "canaryd-upstream"), "--listen", gone.addr, "--name",
                 "back"], "upstream-back")
    wait_port(int(gone.addr.rsplit(":", 1)[1]))
    ev = _wait_event(d, "hc", "healthy", gone.addr)
    assert ev["message"] == "endpoint %s (canary) healthy: 1 checks passed" % gone.addr, ev
    seen = {get(port)[1].get("X-Upstream") for _ in range(10)}
    assert seen == {"good", "back"}, seen
    assert _health(d, "hc", gone.addr)["healthy"] is True
    back.stop()


def test_every_endpoint_unhealthy_routes_anyway():
    # Envoy's panic mode: both stable endpoints fail the check (status
    # 500) yet still get the requests, whose 500s are theirs, not canaryd's
    a, b = Upstream("a", fail_rate=1.0), Upstream("b", fail_rate=1.0)
    port = free_port()
    d = Canaryd(canary_yaml("hc", "127.0.0.1:%d" % port, [a.addr, b.addr], interval="1h",
                            extra_spec=FAST))
    _wait_event(d, "hc", "unhealthy", a.addr)
    _wait_event(d, "hc", "unhealthy", b.addr)
    seen = set()
    for _ in range(10):
        st, hdr, _body = get(port)
        assert st == 500, st
        seen.add(hdr.get("X-Upstream"))
    assert seen == {"a", "b"}, seen


def test_reload_without_checks_gives_every_endpoint_requests_again():
    good, bad = Upstream("good"), Upstream("bad", fail_rate=1.0)
    port, d = _canary_at_100(good.addr, bad.addr)
    _wait_event(d, "hc", "unhealthy", bad.addr)
    with open(d.config_path) as f:
        text = f.read()
    with open(d.config_path, "w") as f:
        f.write(text.replace(FAST, "  outlierDetection: {consecutiveErrors: 0}\n"))
    d.kill(signal.SIGHUP)
    end = time.time() + 10 * SLOW
    while time.time() < end and "reloaded" not in d.output():
        time.sleep(0.05)
    assert "reloaded" in d.output(), d.output()
    assert "endpointHealth" not in d.status("hc")
    seen = {get(port)[1].get("X-Upstream") for _ in range(10)}
    assert seen == {"good", "bad"}, seen


def test_canary_without_healthy_endpoint_rolls_back_at_the_deadline():
    # the canary accepts connections (the readiness probe alone would call
    # it ready) but fails its health path: not ready, rolled back after
    # progressDeadlineSeconds; no traffic, so no check decides before that
    v1, sick = Upstream("v1"), Upstream("sick", fail_rate=1.0)
    port = free_port()
    d = Canaryd(canary_yaml("hc", "127.0.0.1:%d" % port, [v1.addr], canary=[sick.addr],
                            interval="200ms", deadline=1, extra_spec=FAST))
    _wait_event(d, "hc", "unhealthy", sick.addr)
    st = d.wait_phase("hc", "Failed", timeout=10)
    assert "not ready" in st["message"], st
    types = [e["type"] for e in d.events("hc")]
    assert types.index("unhealthy") < types.index("not-ready") < types.index("rollback"), types


if __name__ == "__main__":
    run(globals())
