"""The daemon as an operator sees it: --check, start-up errors, SIGHUP,
SIGTERM, the admin API's answers and /metrics."""
import glob
import http.client
import os
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BUILD, ROOT, SLOW, Canaryd, Load, Upstream, canary_yaml, free_port,  # noqa: E402
                     get, run, tmpdir)

CANARYD = os.path.join(BUILD, "canaryd")
SHARED = os.environ.get("CANARYD_SHARED", os.path.join(ROOT, "..", "shared"))


def _write(text):
    p = os.path.join(tmpdir(), "c.yaml")
    with open(p, "w") as f:
        f.write(text)
    return p


def _check(path):
    r = subprocess.run([CANARYD, "--check", "-c", path], capture_output=True, text=True,
                       timeout=30)
    return r.returncode, r.stdout, r.stderr


def test_check_accepts_a_valid_file():
    p = _write(canary_yaml("web", "127.0.0.1:18080", ["127.0.0.1:9001"], canary=["127.0.0.1:9002"]))
    rc, out, err = _check(p)
    assert rc == 0, (rc, out, err)


def test_check_reports_every_error_with_its_position():
    p = _write("""apiVersion: canaryd/v1
kind: Canary
metadata:
  name: web
spec:
  router: builtin
  listen: 127.0.0.1:8080
  stabel:
    revision: v1
  stable:
    revision: v1
    endpoints: [127.0.0.1:9001]
  analysis:
    interval: 1 minute
    threshold: 5
    stepWeight: 200
    metrics:
      - name: request-success-rate
        thresholdRange: { min: 99 }
""")
    rc, out, err = _check(p)
    assert rc == 2, (rc, out, err)
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) >= 3, err
    for l in lines:
        assert re.match(re.escape(p) + r":\d+:\d+: ", l), l
    assert any(":8:3:" in l and "stabel" in l for l in lines), err
    assert any(":14:15:" in l and "interval" in l for l in lines), err
    assert any(":16:17:" in l and "stepWeight" in l for l in lines), err


def test_check_accepts_the_flagger_examples():
    files = [f for f in sorted(glob.glob(os.path.join(SHARED, "data", "flagger", "*.yaml")))
             if not f.endswith("crd.yaml")]
    assert len(files) >= 5, files
    for f in files:
        rc, out, err = _check(f)
        assert rc == 0, (f, rc, err)


def test_what_the_proxy_does_not_do_is_noted_then_refused_at_start():
    # Flagger's promotion in steps and ready thresholds the built-in proxy
    # does not act on are valid configuration (--check notes it) that does
    # not start, rather than running as something else (A/B matches and
    # session affinity: tests/e2e/test_ab.py; mirroring: test_mirror.py)
    base = canary_yaml("web", "127.0.0.1:%d" % free_port(), ["127.0.0.1:9001"],
                       canary=["127.0.0.1:9002"])
    cases = [("    stepWeightPromotion: 20\n", "spec.analysis.stepWeightPromotion is not acted on"),
             ("    canaryReadyThreshold: 50\n",
              "spec.analysis.canaryReadyThreshold is not acted on")]
    # a Flagger provider key canaryd cannot honour
    for key, want in (("secretRef: {name: prom-auth}", "provider.secretRef is not honoured"),
                      ("insecureSkipVerify: true", "provider.insecureSkipVerify is not honoured")):
        cases.append(("    metrics:\n      - name: errs\n        provider: {type: prometheus, "
                      "address: 'http://127.0.0.1:9', %s}\n        query: up\n"
                      "        thresholdRange: {max: 1}\n" % key, want))
    for extra, want in cases:
        if extra.startswith("    metrics:"):
            p = _write(base.replace("    metrics:\n", extra))
        else:
            p = _write(base.replace("  analysis:\n", "  analysis:\n" + extra))
        rc, out, err = _check(p)
        assert rc == 0 and want in out and "will not start" in out, (rc, out, err)
        data = os.path.join(tmpdir(), "data")
        r = subprocess.run([CANARYD, "-c", p, "--data-dir", data, "--admin",
                            "127.0.0.1:%d" % free_port()], capture_output=True, text=True,
                           timeout=30 * SLOW)
        assert r.returncode == 2 and want in r.stderr, (r.returncode, r.stderr)
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
        assert not os.path.exists(data), "a database was made"


def test_bad_config_never_starts():
    p = _write("apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: x}\nspec: {listen: nope}\n")
    r = subprocess.run([CANARYD, "-c", p, "--admin", "127.0.0.1:%d" % free_port(),
                        "--data-dir", tmpdir()], capture_output=True, text=True, timeout=30)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert re.search(r":\d+:\d+: ", r.stderr), r.stderr


def test_sighup_with_a_bad_config_keeps_the_running_one():
    v1 = Upstream("v1")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"))
    with open(d.config_path, "w") as f:
        f.write("apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: web}\nspec: {bogus: 1}\n")
    d.kill(signal.SIGHUP)
    time.sleep(0.5 * SLOW)
    assert d.alive()
    st, hdr, body = get(port)
    assert st == 200 and body == b"v1\n"
    assert "reload failed" in d.output() and "bogus" in d.output(), d.output()


def test_sighup_applies_a_new_config_without_closing_connections():
    v1, v1b = Upstream("v1"), Upstream("v1b")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"))
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    c.request("GET", "/")
    r = c.getresponse()
    assert r.read() == b"v1\n"
    load = Load(port, threads=3, rps_per_thread=100)
    with open(d.config_path, "w") as f:
        f.write(canary_yaml("web", "127.0.0.1:%d" % port, [v1b.addr], interval="1h"))
    d.kill(signal.SIGHUP)
    end = time.time() + 10 * SLOW
    body = b""
    while time.time() < end and body != b"v1b\n":
        c.request("GET", "/")  # the same connection: it must stay open
        body = c.getresponse().read()
        time.sleep(0.05)
    c.close()
    load.stop()
    assert body == b"v1b\n", body
    assert not load.errors and load.non2xx() == 0, (load.errors[:3], load.by_status)
    assert "reloaded" in d.output()


def test_sigterm_lets_requests_in_flight_finish_and_exits_0():
    slow = Upstream("slow", latency_ms=1500)
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [slow.addr], interval="1h"))
    result = {}

    def call():
        result["r"] = get(port)

    import threading
    t = threading.Thread(target=call)
    t.start()
    time.sleep(0.4)
    d.kill(signal.SIGTERM)
    t.join(10)
    rc = d.wait(10)
    assert rc == 0, (rc, d.output())
    assert result["r"][0] == 200 and result["r"][2] == b"slow\n", result


def test_api_errors_are_json_4xx():
    v1 = Upstream("v1")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"))
    st, body = d.api("GET", "/api/v1/canaries/nosuch")
    assert st == 404 and "nosuch" in body["error"], (st, body)
    st, body = d.api("POST", "/api/v1/canaries/web/weight", {"weight": "ten"})
    assert st == 400 and "weight" in body["error"], (st, body)
    st, body = d.api("POST", "/api/v1/canaries/web/explode", {})
    assert st == 404 and "error" in body
    st, body = d.api("POST", "/api/v1/canaries/web/promote", {})
    assert st == 409 and "error" in body, (st, body)
    st, body = d.api("POST", "/api/v1/canaries/web/rollout", {"revision": "v2", "endpoints": ["nope"]})
    assert st == 400 and "nope" in body["error"], (st, body)
    st, body = d.api("DELETE", "/api/v1/canaries/web")
    assert st == 405, (st, body)
    c = http.client.HTTPConnection("127.0.0.1", d.admin_port, timeout=5)
    c.request("POST", "/api/v1/canaries/web/pause", body=b"{not json", headers={"Content-Type": "application/json"})
    r = c.getresponse()
    assert r.status == 400 and b"error" in r.read()
    c.close()
    assert d.alive()


def test_token_file_guards_mutating_calls_and_names_the_actor():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    tok = os.path.join(tmpdir(), "tokens")
    with open(tok, "w") as f:
        f.write("# operators\nalice s3cret-a\n")
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"),
                extra=["--token-file", tok])
    st, body = d.api("POST", "/api/v1/canaries/web/rollout", {"revision": "v2", "endpoints": [v2.addr]})
    assert st == 401, (st, body)
    st, body = d.api("POST", "/api/v1/canaries/web/rollout", {"revision": "v2", "endpoints": [v2.addr]},
                     token="wrong")
    assert st == 401, (st, body)
    ctok = os.path.join(tmpdir(), "ctl-token")
    with open(ctok, "w") as f:
        f.write("s3cret-a\n")
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr, token_file=ctok)
    assert rc == 0, (rc, out, err)
    st, body = d.api("GET", "/api/v1/canaries/web")
    assert st == 200 and body["canaryRevision"] == "v2"
    ev = [e for e in d.events("web") if e["type"] == "rollout-started"]
    assert ev and ev[-1]["actor"] == "alice", ev


def test_metrics_health_and_dashboard():
    v1 = Upstream("v1")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"))
    for _ in range(7):
        get(port)
    st, text = d.api("GET", "/metrics")
    assert st == 200
    assert 'canaryd_requests_total{canary="web",target="stable",revision="v1",code="200"} 7' in text, text
    for name in ("canaryd_request_duration_seconds_bucket", "canaryd_request_duration_seconds_sum",
                 "canaryd_request_duration_seconds_count", "canaryd_canary_weight",
                 "canaryd_canary_phase", "canaryd_checks_total", "canaryd_rollbacks_total"):
        assert name in text, name
    assert 'canaryd_canary_phase{canary="web",phase="Initialized"} 1' in text
    assert d.api("GET", "/healthz")[0] == 200
    assert d.api("GET", "/readyz")[0] == 200
    st, html = d.api("GET", "/")
    assert st == 200 and "<html" in html and "/assets/app.js" in html


def test_log_format_json_has_utc_lines():
    v1 = Upstream("v1")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"),
                extra=["--log-format", "json"])
    d.stop()
    import json
    lines = [l for l in d.output().splitlines() if l.startswith("{")]
    assert lines, d.output()
    for l in lines:
        o = json.loads(l)
        assert o["time"].endswith("Z") and o["level"] and o["msg"], o


def test_canaryctl_simulate_runs_offline():
    ctl = os.path.join(BUILD, "canaryctl")
    ex = os.path.join(ROOT, "docs", "examples", "threshold.yaml")
    r = subprocess.run([ctl, "--server", "http://127.0.0.1:1", "simulate", "-f", ex, "--rps", "200",
                        "--stable-error-rate", "0.5%", "--canary-error-rate", "20%", "--runs", "20",
                        "-o", "json"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r
    import json
    out = json.loads(r.stdout)
    assert out["runs"] == 20 and out["rolledBack"] == 20 and out["promoted"] == 0, out
    assert 2 <= out["medianDecisionSeconds"] <= 4, out
    r = subprocess.run([ctl, "simulate", "-f", ex, "--canary-error-rate", "lots"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "lots" in r.stderr, r
    p = _write("apiVersion: canaryd/v1\nkind: Canary\n")
    r = subprocess.run([ctl, "simulate", "-f", p], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and re.search(r":\d+:\d+: ", r.stderr), r


if __name__ == "__main__":
    sys.exit(run(globals()))
