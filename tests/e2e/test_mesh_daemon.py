"""A mesh canary's built-in metrics read by the DAEMON's checks during a
real rollout: canaryd with --kubeconfig (the test API server,
tests/k8s/apiserver.py, playing the Deployment controller) and
--metrics-server (a real Prometheus scraping a test exporter of Istio's
or Linkerd's series). The analysis is Flagger's example:
request-success-rate (min 99) and request-duration (max 500 ms) over 1m.

Flagger's istio queries select reporter="destination",
destination_workload_namespace = the Canary's namespace, and
destination_workload = the target's name for the canary, <target>-primary
for stable; its linkerd ones direction="inbound", namespace and deployment
(src/metrics/provider_mesh.c). The exporter serves the canary workload's
series at rates the test sets, so each check's value is known: a ratio of
rates, or a quantile inside one bucket.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLOW, Canaryd, run  # noqa: E402
from promstack import Prometheus  # noqa: E402
import test_mesh_metrics as mm  # noqa: E402
import test_mesh_router as mr  # noqa: E402

BUILTIN = [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"},
           {"name": "request-duration", "thresholdRange": {"max": 500}, "interval": "1m"}]


def linkerd(exp, ns, workload, ok, err, direction="inbound"):
    """The series Linkerd's proxies export for <workload>'s pods: responses
    classified, and their latency (the same buckets as mm.istio's)."""
    lab = {"namespace": ns, "deployment": workload, "direction": direction,
           "pod": workload + "-5d8f9c7b4-x2x7q", "status_code": "200"}
    return (exp.add("response_total", dict(lab, classification="success"), ok),
            exp.add("response_total", dict(lab, classification="failure", status_code="503"), err),
            exp.histogram("response_latency_ms", lab,
                          ["5", "10", "25", "50", "100", "250", "500", "1000"], "250", ok + err))


SERIES = {"istio": (mm.istio, "istio_requests_total{destination_workload=\"podinfo\"}",
                    {"reporter": "source"}),
          "linkerd": (linkerd, "response_total{deployment=\"podinfo\"}",
                      {"direction": "outbound"})}


class Mesh:
    """The test API server with the workload, an exporter of <provider>'s
    series for the canary (podinfo) and the primary, a Prometheus scraping
    it, and canaryd reading its checks from that Prometheus."""

    def __init__(self, ok, err, threshold, interval_ms=600, deadline=60, namespaced=True,
                 provider="istio"):
        self.exp = mm.Exporter()
        series, scraped, other_side = SERIES[provider]
        # the canary's workload, and the primary's (healthy); decoys the
        # query must not count: the other side's reports (Istio's source
        # reporter, Linkerd's outbound), another namespace (Kubernetes's
        # "default")
        self.canary = series(self.exp, mr.NS, "podinfo", ok, err)
        series(self.exp, mr.NS, "podinfo-primary", 100, 0)
        series(self.exp, mr.NS, "podinfo", 0, 100, **other_side)
        series(self.exp, "default", "podinfo", 0, 100)
        self.prom = Prometheus([self.exp.addr])
        self.e = mr.Env(provider, interval="%dms" % (interval_ms * SLOW), threshold=threshold,
                        max_weight=30, step=10, deadline=deadline)
        doc = json.loads(self.e.doc)
        doc["spec"]["analysis"]["metrics"] = BUILTIN
        if not namespaced:
            del doc["metadata"]["namespace"]
        self.e.doc = json.dumps(doc)
        # the first check must not come before Prometheus has two scrapes
        # of the canary's series (that would be "no value", a failed check)
        self.prom.wait_value("sum(rate(%s[1m]))" % scraped, lambda v: v > 0)
        self.d = Canaryd(self.e.doc, extra=["--kubeconfig", self.e.kc,
                                            "--metrics-server", self.prom.url])
        self.s0 = mr.initialized(self.e, self.d)

    def start_rollout(self):
        self.e.set_image("podinfo:6.1.0")
        return mr.started(self.e, self.d, self.s0)

    def checks(self):
        return [x for x in self.d.events("podinfo") if x["type"] == "check"]

    def close(self):
        self.exp.close()
        self.prom.stop()


def passed(check):
    return all(m["passed"] for m in check["metrics"])


def by_name(check):
    return {m["name"]: m for m in check["metrics"]}


def rolled_back(m, s0):
    s = m.d.wait_phase("podinfo", "Failed", timeout=40)
    s = mr.wait_for("rollback applied", lambda: (lambda s: s if "applying" not in s and
                                                 m.e.deploy("podinfo")["spec"]["replicas"] == 0
                                                 else None)(m.d.status("podinfo")))
    assert s["stableRevision"] == s0["stableRevision"] and s["canaryWeight"] == 0, s
    # what traffic does: the VirtualService, read from the API server,
    # routes everything to the primary again
    assert mr.weights_of(m.e.route()) == (100, 0), m.e.route()
    assert mr.image_of(m.e.deploy("podinfo-primary")) == "podinfo:6.0.0"
    return s


def test_healthy_canary_is_promoted_step_by_step_on_the_mesh_metrics():
    # 199 of 200 requests a second succeed: 99.5 %; every request takes
    # between 100 and 250 ms, so the 99th percentile is 248.5 (248 whole ms).
    # The Canary names no namespace: as kubectl applies it, it is in the
    # kubeconfig context's ("test"), where the router writes its objects;
    # the queries select that namespace too, not "default", whose podinfo
    # fails every request
    m = Mesh(199, 1, threshold=1, namespaced=False)
    try:
        s1 = m.start_rollout()
        s = m.d.wait_phase("podinfo", ("Succeeded", "Failed"), timeout=40)
        assert s["phase"] == "Succeeded", (s, m.checks())
        mr.wait_for("promotion applied", lambda: mr.applied(m.d) and
                    mr.weights_of(m.e.route()) == (100, 0))
        s = m.d.status("podinfo")
        assert s["stableRevision"] == s1["canaryRevision"], s
        assert mr.route_weights(m.e) == [(100, 0), (90, 10), (80, 20), (70, 30), (100, 0)], \
            mr.route_weights(m.e)
        assert mr.image_of(m.e.deploy("podinfo-primary")) == "podinfo:6.1.0"
        assert m.e.route()["metadata"]["namespace"] == mr.NS
        checks = m.checks()
        # one passing check per step (10, 20, 30), and the values are what
        # the exporter serves for the canary workload, not the decoys
        assert len(checks) >= 3, checks
        for c in checks:
            ms = by_name(c)
            assert set(ms) == {"request-success-rate", "request-duration"}, c
            sr, du = ms["request-success-rate"], ms["request-duration"]
            assert sr["passed"] is True and abs(sr["value"] - 99.5) <= 0.01, c
            assert du["passed"] is True and du["value"] == 248, c
    finally:
        m.close()


def test_failing_canary_is_rolled_back_and_the_audit_names_the_metric():
    # the canary workload answers 5xx to 1 request in 10: 90 %
    threshold = 2
    m = Mesh(90, 10, threshold=threshold)
    try:
        m.start_rollout()
        rolled_back(m, m.s0)
        ws = mr.route_weights(m.e)
        assert ws[0] == (100, 0) and ws[-1] == (100, 0) and (90, 10) in ws, ws
        assert all(w[1] in (0, 10) for w in ws), ws  # it never went past the first step
        checks = m.checks()
        failed = [c for c in checks if not passed(c)]
        assert len(failed) == threshold, checks
        for c in failed:
            sr = by_name(c)["request-success-rate"]
            assert sr["passed"] is False and abs(sr["value"] - 90) <= 0.01, c
            assert by_name(c)["request-duration"]["value"] == 248, c
        assert [c["message"] for c in failed] == [
            "check failed (%d/%d): request-success-rate 90.00 < 99" % (i + 1, threshold)
            for i in range(threshold)], failed
        # the rollback's own audit entry says which metric, at what value
        rb = [x for x in m.d.events("podinfo") if x["type"] == "rollback"]
        assert [x["message"] for x in rb] == [
            "canary failed %d checks, rolling back: request-success-rate 90.00 < 99"
            % threshold], rb
    finally:
        m.close()


def test_checks_wait_for_the_canary_to_be_ready():
    # Flagger's analysis starts once the canary Deployment is available:
    # until then its metrics are not the new revision's (no pods: no
    # series, or the last revision's), so a check would judge nothing
    # On Linkerd: its series, and a TrafficSplit
    m = Mesh(199, 1, threshold=2, interval_ms=300, provider="linkerd")
    try:
        # the new pods do not become available until the test says so
        m.e.api.control(op="deployments", mode="manual")
        m.start_rollout()
        mr.wait_for("canary scaled up", lambda: m.e.deploy("podinfo")["spec"]["replicas"] == 2)
        time.sleep(1.5 * SLOW)  # five analysis intervals
        s = m.d.status("podinfo")
        assert s["phase"] == "Progressing" and not s["canaryReady"], s
        assert m.checks() == [], m.checks()
        assert s["canaryWeight"] <= 10, s
        # the Deployment controller makes them available (and what canaryd
        # writes from now on, the primary's new template): the analysis runs
        m.e.api.control(op="deployments", mode="auto", delay=0.05)
        m.e.rollout()
        m.d.wait_phase("podinfo", "Succeeded", timeout=40)
        mr.wait_for("promotion applied", lambda: mr.applied(m.d) and
                    mr.weights_of(m.e.route()) == (100, 0))
        checks = m.checks()
        assert len(checks) >= 3, checks
        for c in checks:
            ms = by_name(c)
            assert abs(ms["request-success-rate"]["value"] - 99.5) <= 0.01, c
            assert ms["request-duration"]["value"] == 248 and passed(c), c
        assert mr.route_weights(m.e) == [(100, 0), (90, 10), (80, 20), (70, 30), (100, 0)], \
            mr.route_weights(m.e)
    finally:
        m.close()


def test_prometheus_stopped_mid_rollout_fails_the_checks_without_a_crash():
    threshold = 2
    m = Mesh(199, 1, threshold=threshold)
    try:
        m.start_rollout()
        mr.wait_for("first check passed", lambda: any(passed(c) for c in m.checks()),
                    timeout=30)
        url = m.prom.url
        m.prom.stop()
        rolled_back(m, m.s0)
        assert m.d.alive(), m.d.output()
        failed = [c for c in m.checks() if not passed(c)]
        assert len(failed) == threshold, m.checks()
        for c in failed:
            for x in c["metrics"]:
                assert x["passed"] is False and x["value"] is None, c
                assert ("Prometheus at '%s' did not answer" % url) in x["reason"], c
        # the daemon still answers, and says why the rollout failed
        assert m.d.api("GET", "/healthz")[0] == 200
    finally:
        m.close()


if __name__ == "__main__":
    try:
        sys.exit(run(globals()))
    finally:
        mr._cleanup()
