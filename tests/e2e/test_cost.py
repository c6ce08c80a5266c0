"""spec.cost and spec.runbook with real traffic (issue 12): a rollout of a
failing canary is rolled back; status's "cost" counts what the proxy
served in the rollout (the same requests the clients saw), with the
formulas of docs/config.md; the rollback
event links the runbook's section; canaryd_requests_total counts the
canary's requests under its revision."""
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BUILD, SLOW, Canaryd, Load, Upstream, canary_yaml, free_port,  # noqa: E402
                     run)

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
RUNBOOK = "https://wiki.example/canaryd"


def _anchors():
    with open(os.path.join(ROOT, "docs", "runbook.md")) as f:
        return {re.sub(r"[^a-z0-9 -]", "", l[3:].strip().lower()).replace(" ", "-")
                for l in f if l.startswith("## ")}


def test_cost_of_a_rolled_back_rollout():
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=0.5)
    port = free_port()
    text = canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], canary=[v2.addr],
                       interval="1s", threshold=1, step_weight=50, max_weight=50,
                       metrics=[("error-rate", "max: 1", "1m")],
                       extra_spec="  cost: {currency: GBP, perMillionRequests: 0.40, "
                                  "canaryHourly: 0.12, failedRequest: 0.002}\n"
                                  "  runbook: %s\n" % RUNBOOK)
    d = Canaryd(text)
    load = Load(port, threads=2, rps_per_thread=100)
    try:
        d.wait_phase("web", "Failed", timeout=10)
        time.sleep(0.2)   # requests at the canary when it ended have finished
    finally:
        load.stop()
    c = d.status("web")["cost"]
    assert c["currency"] == "GBP" and c["perMillionRequests"] == 0.4, c
    assert c["since"].endswith("Z"), c
    served_v2 = load.by_upstream.get("v2", 0)
    # every canary request the clients got, and the failed half of them;
    # the counts stop at the rollback, so a request of each load thread
    # still at the canary then is the clients' and not the rollout's
    assert 0 < served_v2 - 2 <= c["canaryRequests"] <= served_v2, (c, load.by_upstream)
    assert abs(c["canaryFailedRequests"] - c["canaryRequests"] / 2) <= 3, (c, served_v2)
    assert c["failedRequests"] == c["canaryFailedRequests"], c   # stable never failed
    assert c["canaryRequests"] < c["requests"] <= load.total(), (c, load.total())
    assert 0 < c["canaryHours"] < 20 / 3600 * SLOW, c
    assert abs(c["runningCost"] - (0.12 * c["canaryHours"] + 0.4 * c["canaryRequests"] / 1e6)) \
        < 1e-9, c
    assert abs(c["failedRequestsCost"] - 0.002 * c["canaryFailedRequests"]) < 1e-9, c
    full = c["requests"] * c["canaryFailedRequests"] / c["canaryRequests"]
    assert abs(c["fullRolloutFailedRequests"] - full) < 1e-6, c
    saved = max(0.0, 0.002 * (full - c["failedRequests"]))
    assert c["savedByRollback"] is not None and abs(c["savedByRollback"] - saved) < 1e-9, c

    rb = [e for e in d.events("web") if e["type"] == "rollback"]
    assert len(rb) == 1 and rb[0]["runbook"] == RUNBOOK + "#canary-rolled-back", rb
    # every section canaryd links to is one the runbook has
    with open(os.path.join(ROOT, "src", "control", "controller.c")) as f:
        src = f.read()
    table = src[src.index("runbook_anchor(const char *type)"):]
    linked = set(re.findall(r'\{ "[a-z-]+", "([a-z-]+)" \}', table[:table.index("};")]))
    assert "canary-rolled-back" in linked and linked <= _anchors(), (linked, _anchors())
    assert all("runbook" not in e for e in d.events("web") if e["type"] == "check")

    code, m = d.api("GET", "/metrics")
    got = re.search(r'^canaryd_requests_total\{canary="web",target="canary",revision="v2",'
                    r'code="500"\} (\d+)$', m, re.M)
    assert got and 0 <= int(got.group(1)) - c["canaryFailedRequests"] <= 2, \
        (c, [l for l in m.splitlines() if "requests_total" in l])
    # (a restart keeps these counts: tests/unit/control/test_controller.c)

    # --runbook-url takes a link only
    r = subprocess.run([os.path.join(BUILD, "canaryd"), "--runbook-url", "ftp://x", "-c", "x"],
                       capture_output=True, text=True, timeout=10)
    assert r.returncode == 2 and "--runbook-url" in r.stderr, (r.returncode, r.stderr)


if __name__ == "__main__":
    sys.exit(run(globals()))
