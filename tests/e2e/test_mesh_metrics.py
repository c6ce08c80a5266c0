"""The built-in metrics of mesh canaries, read as Flagger reads them: a real
Prometheus scrapes a test exporter that serves the series Istio's, Linkerd's
and OSM's proxies and an application's own histogram (Gateway API canaries)
emit, with their labels, and with decoys the queries must not count;
`canaryctl query` renders Flagger's query for each metric and reads it from
that Prometheus, and the values are checked against what the exporter
served. The counters grow at rates the test sets, and change when it says.

No mesh router runs here (no Kubernetes API server): what is read is the
canary's metric through the same provider the daemon's checks use."""
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, SLOW, Proc, free_port, run, tmpdir  # noqa: E402
from promstack import Prometheus  # noqa: E402


class Counter:
    """A counter growing at <rate> per second from when it was made; the
    rate can be changed, the value never goes back."""

    def __init__(self, rate):
        self.base, self.since, self.rate = 0.0, time.time(), float(rate)

    def value(self, now):
        return self.base + self.rate * (now - self.since)

    def set_rate(self, rate):
        now = time.time()
        self.base, self.since, self.rate = self.value(now), now, float(rate)


class Exporter:
    """Serves /metrics: series (name, labels, Counter) in Prometheus's text
    format, as a mesh's proxies export them."""

    def __init__(self):
        self.series = []
        self.lock = threading.Lock()
        exp = self

        class H(BaseHTTPRequestHandler):
            def do_GET(self):
                body = exp.text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *a):
                pass

        self.port = free_port()
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()
        self.addr = "127.0.0.1:%d" % self.port

    def add(self, name, labels, rate):
        c = Counter(rate)
        with self.lock:
            self.series.append((name, labels, c))
        return c

    def histogram(self, name, labels, bounds, upper, rate):
        """Buckets <bounds> (le, ascending) of requests that all take
        between the bound below <upper> and <upper>, at <rate> a second."""
        out = []
        for le in list(bounds) + ["+Inf"]:
            full = le == "+Inf" or float(le) >= float(upper)
            out.append(self.add(name + "_bucket", dict(labels, le=le), rate if full else 0))
        return out

    def text(self):
        now = time.time()
        lines = []
        with self.lock:
            for name, labels, c in self.series:
                ls = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
                lines.append("%s{%s} %.6f" % (name, ls, c.value(now)))
        return "\n".join(lines) + "\n"

    def close(self):
        self.srv.shutdown()
        self.srv.server_close()


def flagger_canary(name, provider, target, metrics, namespace="test"):
    return """apiVersion: flagger.app/v1beta1
kind: Canary
metadata:
  name: %s
  namespace: %s
spec:
  provider: %s
  targetRef: {apiVersion: apps/v1, kind: Deployment, name: %s}
  service: {port: 9898}
  analysis:
    interval: 15s
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
%s
---
""" % (name, namespace, provider, target, metrics)


BUILTIN3 = """    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: %(iv)s
    - name: request-duration
      thresholdRange: {max: 500}
      interval: %(iv)s
    - name: error-rate
      thresholdRange: {max: 1%(rel)s}
      interval: %(iv)s"""


def istio(exp, ns, workload, ok, err, reporter="destination"):
    lab = {"reporter": reporter, "destination_workload_namespace": ns,
           "destination_workload": workload, "destination_service_name": workload,
           "source_workload": "loadtester", "request_protocol": "http"}
    return (exp.add("istio_requests_total", dict(lab, response_code="200"), ok),
            exp.add("istio_requests_total", dict(lab, response_code="500"), err),
            exp.histogram("istio_request_duration_milliseconds", lab,
                          ["5", "10", "25", "50", "100", "250", "500", "1000"], "250", ok + err))


def query(conf, name, server, *extra):
    r = subprocess.run([os.path.join(BUILD, "canaryctl"), "query", "-f", conf, name,
                        "--metrics-server", server, "-o", "json"] + list(extra),
                       capture_output=True, text=True, timeout=30 * SLOW)
    return r.returncode, (json.loads(r.stdout) if r.stdout else None), r.stderr


def values(doc):
    """{(metric, of): value or reason}"""
    return {(r["metric"], r["of"]): r.get("value", r.get("reason")) for r in doc["reads"]}


def wait_read(conf, name, server, pred, timeout=40):
    end = time.time() + timeout * SLOW
    last = None
    while time.time() < end:
        rc, doc, err = query(conf, name, server)
        last = (rc, doc, err)
        if rc == 0 and pred(values(doc)):
            return doc
        time.sleep(0.5)
    raise AssertionError("canaryctl query %s never satisfied the condition; last %s" % (name, last))


def near(v, want, tol=0.01):
    return isinstance(v, float) and abs(v - want) <= tol


def test_flagger_queries_read_what_the_meshes_serve():
    exp = Exporter()
    try:
        # Istio: the canary's workload at 99 %; stable (the primary) at 100 %;
        # decoys a query that lost a label would count: the source-side
        # reports, another namespace
        istio(exp, "test", "podinfo", 99, 1)
        istio(exp, "test", "podinfo-primary", 50, 0)
        istio(exp, "test", "podinfo", 100, 100, reporter="source")
        istio(exp, "other", "podinfo", 100, 100)
        # Linkerd: inbound responses of the deployment, classified; the
        # outbound ones are the decoy
        lab = {"namespace": "test", "deployment": "backend", "direction": "inbound",
               "pod": "backend-5d8f9c7b4-x2x7q", "status_code": "200"}
        exp.add("response_total", dict(lab, classification="success"), 95)
        exp.add("response_total", dict(lab, classification="failure", status_code="503"), 5)
        exp.add("response_total", dict(lab, direction="outbound", classification="failure"), 100)
        exp.add("response_total", dict(lab, direction="outbound", classification="success"), 100)
        exp.histogram("response_latency_ms", lab, ["10", "25", "50", "100"], "50", 100)
        # the Gateway API: the application's own histogram, in seconds, its
        # pods found by name; the primary's pods must not match
        lab = {"kubernetes_namespace": "test", "kubernetes_pod_name": "frontend-7d9f8b6c5d-abcde"}
        exp.add("http_request_duration_seconds_count", dict(lab, status="200"), 90)
        exp.add("http_request_duration_seconds_count", dict(lab, status="503"), 10)
        exp.histogram("http_request_duration_seconds", lab, ["0.05", "0.1", "0.25", "0.5"], "0.25", 100)
        exp.add("http_request_duration_seconds_count",
                dict(lab, kubernetes_pod_name="frontend-primary-7d9f8b6c5d-x1y2z", status="503"), 100)
        # OSM
        lab = {"destination_namespace": "test", "destination_kind": "Deployment",
               "destination_name": "cart", "source_name": "loadtester"}
        exp.add("osm_request_total", dict(lab, response_code="200"), 80)
        exp.add("osm_request_total", dict(lab, response_code="500"), 20)
        exp.histogram("osm_request_duration_ms", lab, ["5", "10", "25"], "10", 100)

        prom = Prometheus([exp.addr])
        conf = os.path.join(tmpdir(), "canaries.yaml")
        with open(conf, "w") as f:
            f.write(flagger_canary("shop", "istio", "podinfo", BUILTIN3 % {"iv": "1m", "rel": ", relative: true"}))
            f.write(flagger_canary("backend", "linkerd", "backend", BUILTIN3 % {"iv": "1m", "rel": ""}))
            f.write(flagger_canary("frontend", "gatewayapi:v1", "frontend", BUILTIN3 % {"iv": "1m", "rel": ""}))
            f.write(flagger_canary("cart", "osm", "cart", BUILTIN3 % {"iv": "1m", "rel": ""}))
        # the first value needs two scrapes; after that, each is exact
        # (every series grows linearly, and each metric is a ratio of rates
        # or a quantile inside one bucket); request-duration is in whole
        # milliseconds, as Flagger keeps it
        want = {
            "shop": {("request-success-rate", "canary"): 99, ("request-duration", "canary"): 248,
                     ("error-rate", "canary"): 1, ("error-rate", "stable"): 0},
            "backend": {("request-success-rate", "canary"): 95, ("request-duration", "canary"): 49,
                        ("error-rate", "canary"): 5},
            "frontend": {("request-success-rate", "canary"): 90, ("request-duration", "canary"): 248,
                         ("error-rate", "canary"): 10},
            "cart": {("request-success-rate", "canary"): 80, ("request-duration", "canary"): 9,
                     ("error-rate", "canary"): 20},
        }
        docs = {}
        for name, w in want.items():
            doc = docs[name] = wait_read(conf, name, prom.url,
                            lambda v, w=w: all(near(v.get(k), x) for k, x in w.items()))
            assert doc["metricsServer"] == prom.url
            assert set(values(doc)) == set(w), (name, values(doc))
            assert all(r["provider"] == "mesh" and r["query"] for r in doc["reads"]), doc
            # what canaryctl sent is what Prometheus computes: the query,
            # asked of Prometheus directly, gives the same value
            sr = [r for r in doc["reads"] if r["metric"] == "request-success-rate"][0]
            direct = float(prom.query(sr["query"])["data"]["result"][0]["value"][1])
            assert abs(direct - sr["value"]) < 0.5, (direct, sr)
        # stable's value is the primary's: the same query on <target>-primary
        st = [r for r in docs["shop"]["reads"] if r["of"] == "stable"][0]
        assert 'destination_workload=~"podinfo-primary"' in st["query"], st
    finally:
        exp.close()


def test_values_follow_the_traffic_and_no_traffic_is_no_value():
    exp = Exporter()
    try:
        ok, bad, _ = istio(exp, "test", "podinfo", 100, 0)
        # a workload whose counters exist but do not grow (no requests)
        istio(exp, "test", "idle", 0, 0)
        prom = Prometheus([exp.addr])
        conf = os.path.join(tmpdir(), "canaries.yaml")
        m = """    - name: request-success-rate
      thresholdRange: {min: 99}
      interval: 10s"""
        with open(conf, "w") as f:
            f.write(flagger_canary("shop", "istio", "podinfo", m))
            f.write(flagger_canary("idle", "istio", "idle", m))
            f.write(flagger_canary("gone", "istio", "nothing-serves-this", m))
        wait_read(conf, "shop", prom.url, lambda v: near(v[("request-success-rate", "canary")], 100))
        # the canary starts failing half its requests: within the metric's
        # 10s window the value follows
        ok.set_rate(50)
        bad.set_rate(50)
        wait_read(conf, "shop", prom.url, lambda v: near(v[("request-success-rate", "canary")], 50))
        # no requests: 0/0 is NaN, which Flagger too reads as no value; no
        # series at all: no sample. Either way the check cannot pass: exit 1
        rc, doc, _ = query(conf, "idle", prom.url)
        assert rc == 1 and "NaN" in values(doc)[("request-success-rate", "canary")], doc
        rc, doc, _ = query(conf, "gone", prom.url)
        assert rc == 1 and values(doc)[("request-success-rate", "canary")] == "query returned no sample", doc
    finally:
        exp.close()


def test_refusals():
    conf = os.path.join(tmpdir(), "c.yaml")
    with open(conf, "w") as f:
        f.write(flagger_canary("shop", "istio", "podinfo", BUILTIN3 % {"iv": "1m", "rel": ""}))
    ctl = os.path.join(BUILD, "canaryctl")
    # no Prometheus: refused, in one line saying what to give
    r = subprocess.run([ctl, "query", "-f", conf], capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 2 and r.stdout == "", r
    assert r.stderr == ("canaryctl: canary 'shop': metric 'request-success-rate' is read from "
                        "Prometheus with Flagger's istio query: start canaryd with --metrics-server "
                        "URL (or set spec.metricsServer)\n"), r.stderr
    # a Prometheus that is not there: no value, exit 1, the reason says so
    dead = "http://127.0.0.1:%d" % free_port()
    rc, doc, _ = query(conf, "shop", dead)
    assert rc == 1 and "did not answer" in values(doc)[("request-success-rate", "canary")], doc
    for bad in ("127.0.0.1:9090", "http://", "ftp://x"):
        r = subprocess.run([ctl, "query", "-f", conf, "--metrics-server", bad],
                           capture_output=True, text=True, timeout=30 * SLOW)
        assert r.returncode == 2 and "is not an http:// or https:// URL" in r.stderr, r
        p = Proc([os.path.join(BUILD, "canaryd"), "-c", conf, "--metrics-server", bad,
                  "--data-dir", tmpdir()], "canaryd")
        assert p.wait(10) == 2, p.output()
        assert "--metrics-server '%s' is not an http:// or https:// URL" % bad in p.output(), p.output()


if __name__ == "__main__":
    sys.exit(run(globals()))
