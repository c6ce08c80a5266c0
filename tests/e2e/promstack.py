"""A real Prometheus and Alertmanager (Debian packages), started on loopback
ports in a temporary directory for one test and stopped after it."""
import json
import os
import time
import urllib.request

from harness import SLOW, Proc, free_port, tmpdir, wait_port


class Prometheus(Proc):
    """Scrapes <targets> ("HOST:PORT" serving /metrics) every second and
    evaluates <rules> (YAML text of rule groups) every second, sending alerts
    to <alertmanager> ("HOST:PORT") when given."""

    def __init__(self, targets, rules=None, alertmanager=None):
        d = tmpdir()
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        cfg = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s",
               "scrape_configs:", "  - job_name: canaryd", "    static_configs:",
               "      - targets: [%s]" % ", ".join("'%s'" % t for t in targets)]
        if rules:
            with open(os.path.join(d, "rules.yml"), "w") as f:
                f.write(rules)
            cfg += ["rule_files: ['%s']" % os.path.join(d, "rules.yml")]
        if alertmanager:
            cfg += ["alerting:", "  alertmanagers:", "    - static_configs:",
                    "        - targets: ['%s']" % alertmanager]
        with open(os.path.join(d, "prometheus.yml"), "w") as f:
            f.write("\n".join(cfg) + "\n")
        super().__init__(["prometheus", "--config.file", os.path.join(d, "prometheus.yml"),
                          "--storage.tsdb.path", os.path.join(d, "data"),
                          "--web.listen-address", "127.0.0.1:%d" % self.port,
                          "--log.level", "warn"], "prometheus")
        wait_port(self.port, 30)

    def query(self, q):
        u = self.url + "/api/v1/query?query=" + urllib.request.quote(q)
        with urllib.request.urlopen(u, timeout=5) as r:
            return json.load(r)

    def wait_value(self, q, pred, timeout=30):
        end = time.time() + timeout * SLOW
        last = None
        while time.time() < end:
            try:
                last = self.query(q)
                res = last["data"]["result"]
                if res and pred(float(res[0]["value"][1])):
                    return float(res[0]["value"][1])
            except OSError:
                pass
            time.sleep(0.3)
        raise AssertionError("query %s never satisfied the condition; last %s" % (q, last))


class Alertmanager(Proc):
    """Sends every alert to <webhook_url> at once (group_wait 0s)."""

    def __init__(self, webhook_url):
        d = tmpdir()
        self.port = free_port()
        cfg = """route:
  receiver: canaryd
  group_by: ['alertname', 'canary']
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: canaryd
    webhook_configs:
      - url: '%s'
        send_resolved: false
""" % webhook_url
        with open(os.path.join(d, "alertmanager.yml"), "w") as f:
            f.write(cfg)
        super().__init__(["prometheus-alertmanager", "--config.file", os.path.join(d, "alertmanager.yml"),
                          "--storage.path", os.path.join(d, "data"),
                          "--web.listen-address", "127.0.0.1:%d" % self.port,
                          "--cluster.listen-address=", "--log.level", "warn"], "alertmanager")
        wait_port(self.port, 30)
        self.addr = "127.0.0.1:%d" % self.port
