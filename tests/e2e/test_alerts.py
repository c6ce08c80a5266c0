"""Alert-triggered rollback: a real Prometheus rule on canaryd's own
/metrics fires, a real Alertmanager posts it to canaryd, and the rollout
fails at once with the alert in the audit."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import Canaryd, Load, Upstream, canary_yaml, free_port, run  # noqa: E402
from promstack import Alertmanager, Prometheus  # noqa: E402

RULES = """groups:
  - name: canary
    rules:
      - alert: CanaryServerErrors
        expr: sum by (canary) (rate(canaryd_requests_total{target="canary",code=~"5.."}[5s])) > 0
        labels: {severity: critical}
        annotations: {summary: "the canary answers 5xx"}
"""


def test_firing_alert_fails_the_rollout_at_once():
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=0.05)
    port = free_port()
    # an analysis that alone would take an hour to decide
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h",
                            threshold=100))
    am = Alertmanager(d.server + "/api/v1/alertmanager")
    prom = Prometheus(["127.0.0.1:%d" % d.admin_port], rules=RULES, alertmanager=am.addr)
    load = Load(port, threads=2, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    t0 = time.time()
    s = d.wait_phase("web", "Failed", timeout=60)
    dt = time.time() - t0
    load.stop()
    print("  rollout -> Failed by alert in %.1fs" % dt)
    ev = d.events("web")
    alert = [e for e in ev if e["type"] == "alert"]
    assert alert and "CanaryServerErrors" in alert[0]["message"], ev[-3:]
    assert alert[0]["actor"] == "alertmanager"
    assert '"canary":"web"' in alert[0]["message"], alert[0]
    assert ev[-1]["type"] == "rollback" and ev[-1]["actor"] == "alertmanager", ev[-1]
    assert s["canaryWeight"] == 0
    prom.stop()
    am.stop()


def test_alert_payload_errors_and_non_matching_alerts():
    v1 = Upstream("v1")
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"))
    st, body = d.api("POST", "/api/v1/alertmanager", {"version": "4"})
    assert st == 400 and "alerts" in body["error"], (st, body)
    st, body = d.api("POST", "/api/v1/alertmanager",
                     {"alerts": [{"status": "firing", "labels": {"canary": "other"}}]})
    assert st == 200 and body["matched"] == [], (st, body)


def test_config_matchers_select_the_canary():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    text = canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h",
                       extra_spec="  alerts:\n    matchers: {service: shop, severity: critical}\n")
    d = Canaryd(text)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    # one label short: no match
    st, body = d.api("POST", "/api/v1/alertmanager", {"alerts": [
        {"status": "firing", "labels": {"alertname": "Slow", "service": "shop"}}]})
    assert st == 200 and body["matched"] == [], body
    assert d.status("web")["phase"] == "Progressing"
    # resolved alerts never fail a rollout
    st, body = d.api("POST", "/api/v1/alertmanager", {"alerts": [
        {"status": "resolved", "labels": {"alertname": "Slow", "service": "shop", "severity": "critical"}}]})
    assert st == 200 and body["matched"] == [], body
    st, body = d.api("POST", "/api/v1/alertmanager", {"status": "firing", "alerts": [
        {"status": "firing", "labels": {"alertname": "Slow", "service": "shop", "severity": "critical"},
         "annotations": {"summary": "p99 over 2s"}}]})
    assert st == 200 and body["matched"] == ["web"], body
    s = d.status("web")
    assert s["phase"] == "Failed", s
    alert = [e for e in d.events("web") if e["type"] == "alert"][0]
    assert "Slow" in alert["message"] and "p99 over 2s" in alert["message"], alert


if __name__ == "__main__":
    sys.exit(run(globals()))
