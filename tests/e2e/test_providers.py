"""Custom metrics from providers: a real Prometheus scraping canaryd's own
/metrics (query, and a Flagger MetricTemplate by templateRef), and a web
metric from a local JSON API."""
import json
import os
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(__file__))
from harness import Canaryd, Load, Upstream, free_port, run  # noqa: E402
from promstack import Prometheus  # noqa: E402

ERROR_RATE = ('100 * sum(rate(canaryd_requests_total{canary="{{ name }}",target="canary",code=~"5.."}[{{ interval }}]))'
              ' / sum(rate(canaryd_requests_total{canary="{{ name }}",target="canary"}[{{ interval }}]))')


def _doc(name, port, stable, metrics_yaml, extra_docs="", interval="2s", threshold=2):
    return """apiVersion: canaryd/v1
kind: Canary
metadata:
  name: %s
spec:
  router: builtin
  listen: 127.0.0.1:%d
  stable: {revision: v1, endpoints: [%s]}
  analysis:
    interval: %s
    threshold: %d
    maxWeight: 30
    stepWeight: 10
    metrics:
%s
%s""" % (name, port, stable, interval, threshold, metrics_yaml, extra_docs)


def test_prometheus_query_rolls_back_a_failing_canary():
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=0.2)
    port, admin = free_port(), free_port()
    prom = Prometheus(["127.0.0.1:%d" % admin])
    metrics = """      - name: canary-error-rate
        query: '%s'
        provider: {type: prometheus, address: %s}
        thresholdRange: {max: 1}
        interval: 10s""" % (ERROR_RATE, prom.url)
    d = Canaryd(_doc("web", port, v1.addr, metrics, threshold=5), admin_port=admin)
    load = Load(port, threads=2, rps_per_thread=60)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("web", "Failed", timeout=60)
    load.stop()
    # the first checks may come before Prometheus has two scrapes of canary
    # traffic ("no data"): they are held (onNoData hold), not counted; by
    # the last one the error rate is there
    checks = [e for e in d.events("web") if e["type"] == "check"
              and not e["message"].startswith("check held")]
    assert len(checks) == 5, checks
    vals = [c["metrics"][0] for c in checks]
    assert vals[-1]["value"] is not None and 10 <= vals[-1]["value"] <= 30, vals
    assert s["canaryWeight"] == 0


def test_template_ref_to_a_flagger_metric_template_and_no_data():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port, admin = free_port(), free_port()
    prom = Prometheus(["127.0.0.1:%d" % admin])
    template = """---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: nothing-here
  namespace: test
spec:
  provider:
    type: prometheus
    address: %s
  query: 'sum(canaryd_no_such_metric{canary="{{ name }}"})'
""" % prom.url
    metrics = """      - name: absent
        templateRef: {name: nothing-here, namespace: test}
        thresholdRange: {max: 1}
        interval: 10s"""
    # onNoData fail, as a Flagger Canary has it (a canaryd one holds)
    d = Canaryd(_doc("web", port, v1.addr, metrics, template, interval="500ms").replace(
        "  analysis:\n", "  analysis:\n    onNoData: fail\n"), admin_port=admin)
    load = Load(port, threads=1, rps_per_thread=20)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    d.wait_phase("web", "Failed", timeout=30)
    load.stop()
    check = [e for e in d.events("web") if e["type"] == "check"][0]
    m = check["metrics"][0]
    assert m["passed"] is False and m["value"] is None and "no sample" in m["reason"], m


def test_web_metric_reads_a_json_api():
    hits = []

    class H(BaseHTTPRequestHandler):
        def log_message(self, *a):
            pass

        def do_GET(self):
            hits.append((self.path, self.headers.get("X-Api-Key")))
            body = json.dumps({"data": {"series": [{"value": 0.2}]}}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    api_port = free_port()
    srv = ThreadingHTTPServer(("127.0.0.1", api_port), H)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    metrics = """      - name: apm-error-rate
        provider:
          type: web
          url: http://127.0.0.1:%d/query?service={{ name }}&rev={{ revision }}
          headers: {X-Api-Key: secret}
          jsonPath: $.data.series[0].value
        thresholdRange: {max: 1}
        interval: 1m""" % api_port
    d = Canaryd(_doc("web", port, v1.addr, metrics, interval="300ms"))
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("web", "Succeeded", timeout=30)
    srv.shutdown()
    assert hits and hits[0] == ("/query?service=web&rev=v2", "secret"), hits[:3]
    check = [e for e in d.events("web") if e["type"] == "check"][0]
    assert abs(check["metrics"][0]["value"] - 0.2) < 1e-9, check


def test_relative_threshold_judges_the_canary_against_stable():
    # both revisions fail 10 %: an absolute 1 % bound would roll back, a
    # bound relative to stable (at most 1 point worse) promotes
    v1, v2 = Upstream("v1", fail_rate=0.1), Upstream("v2", fail_rate=0.1)
    port = free_port()
    metrics = """      - name: error-rate
        thresholdRange: {max: 1, relative: true}
        interval: 1m"""
    d = Canaryd(_doc("web", port, v1.addr, metrics, interval="1s", threshold=1))
    load = Load(port, threads=4, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("web", ("Succeeded", "Failed"), timeout=30)
    load.stop()
    checks = [e for e in d.events("web") if e["type"] == "check"]
    assert s["phase"] == "Succeeded", (s, checks[-1:])
    m = checks[0]["metrics"][0]
    assert m["relative"] is True and 5 <= m["stableValue"] <= 15 and 5 <= m["value"] <= 15, m


if __name__ == "__main__":
    sys.exit(run(globals()))
