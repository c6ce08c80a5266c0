"""The datadog and newrelic providers against local HTTP servers that answer
as the Datadog (GET /api/v1/query) and New Relic Insights (GET
/v1/accounts/ID/query) APIs document: the requests canaryd sends (path,
parameters, key headers), the value it reads (Flagger's choice), each
documented error body, empty results, and broken or slow servers as no
data with a reason; the keys, read from a file and from the environment,
never appear in canaryd's log, its audit events, its status or `canaryctl
query`'s output."""
import json
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BUILD, SLOW, Canaryd, Load, Upstream, free_port, run,  # noqa: E402
                     sanitizer_reports, tmpdir)

DD_API_KEY = "ddapi0123456789abcdef0123456789ab"
DD_APP_KEY = "ddapp0123456789abcdef0123456789abcdef0123"
NR_KEY = "NRIQ-query0123456789abcdefghij"
KEYS = (DD_API_KEY, DD_APP_KEY, NR_KEY)
ENV = {"CANARYD_TEST_DD_APP": DD_APP_KEY + "\n", "CANARYD_TEST_NR_KEY": NR_KEY}


class Api:
    """A local API server: records each request (path, parameters, headers)
    and answers with what answer(path, params, headers) returns:
    (status, body bytes), or (status, body, extra) where extra may hold
    "delay" (seconds before answering) and "length" (a Content-Length to
    declare, then the connection is closed: a truncated body)."""

    def __init__(self, answer):
        self.requests = []
        self.answer = answer
        api = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                u = urlsplit(self.path)
                params = parse_qs(u.query, keep_blank_values=True)
                headers = {k.lower(): v for k, v in self.headers.items()}
                api.requests.append((u.path, params, headers, time.time()))
                a = api.answer(u.path, params, headers)
                status, body = a[0], a[1]
                extra = a[2] if len(a) > 2 else {}
                if extra.get("delay"):
                    time.sleep(extra["delay"])
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(extra.get("length", len(body))))
                    self.end_headers()
                    self.wfile.write(body)
                except OSError:
                    pass  # canaryd gave up first (a timeout)
                if "length" in extra:
                    self.close_connection = True

        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()

    def stop(self):
        self.srv.shutdown()
        self.srv.server_close()


def _keyfile(d, name, text):
    p = os.path.join(d, name)
    with open(p, "w") as f:
        f.write(text)
    os.chmod(p, 0o600)
    return p


def _doc(port, stable, metrics_yaml, extra_docs="", interval="300ms", threshold=2):
    return """apiVersion: canaryd/v1
kind: Canary
metadata:
  name: shop
spec:
  router: builtin
  listen: 127.0.0.1:%d
  stable: {revision: v1, endpoints: [%s]}
  analysis:
    # a check whose provider gives no data fails, as in Flagger (canaryd's
    # default holds it): the failing-API test counts on it
    onNoData: fail
    interval: %s
    threshold: %d
    maxWeight: 20
    stepWeight: 10
    metrics:
%s
%s""" % (port, stable, interval, threshold, metrics_yaml, extra_docs)


def _dd_metrics(api, extra=""):
    """A datadog metric by templateRef to a canaryd MetricTemplate: the API
    key from a file (relative to the configuration), the application key
    from the environment."""
    metrics = """      - name: dd-error-rate
        templateRef: {name: dd-errors}
        thresholdRange: {max: 1}
        interval: 1m"""
    template = """---
apiVersion: canaryd/v1
kind: MetricTemplate
metadata:
  name: dd-errors
spec:
  provider:
    type: datadog
    address: %s
    apiKeyFile: dd-api.key
    applicationKeyEnv: CANARYD_TEST_DD_APP%s
  query: |
    sum:trace.http.request.errors{service:{{ name }},version:{{ revision }}}.as_count()
""" % (api.url, extra)
    return metrics, template


def _nr_metrics(api, extra=""):
    return """      - name: nr-error-rate
        provider:
          type: newrelic
          address: %s
          accountId: "1234567"
          queryKeyEnv: CANARYD_TEST_NR_KEY%s
        query: "SELECT filter(count(*), WHERE error IS true) * 100 / count(*) FROM Transaction WHERE appName = '{{ name }}' AND version = '{{ revision }}'"
        thresholdRange: {max: 1}
        interval: 30s""" % (api.url, extra), ""


def _config(metrics_and_template, port=None, stable="127.0.0.1:1", **kw):
    """Writes the configuration and the API key file into a directory of
    their own; returns the configuration's path."""
    d = tmpdir()
    _keyfile(d, "dd-api.key", DD_API_KEY + "\n")
    metrics, template = metrics_and_template
    p = os.path.join(d, "canary.yaml")
    with open(p, "w") as f:
        f.write(_doc(port or free_port(), stable, metrics, template, **kw))
    return p


def _start(config_path, admin_port=None):
    os.environ.update(ENV)  # canaryd inherits the test's environment
    return Canaryd(config_path=config_path, admin_port=admin_port)


def _query(config_path, *args):
    """canaryctl query on <config_path> (no daemon needed): (rc, output)."""
    env = dict(os.environ)
    env.update(ENV)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    r = subprocess.run([os.path.join(BUILD, "canaryctl"), "query", "-f", config_path] +
                       list(args), capture_output=True, text=True, timeout=60 * SLOW, env=env)
    out = r.stdout + r.stderr
    assert not sanitizer_reports(out), out
    return r.returncode, out


def _assert_no_key(where, text):
    for k in KEYS:
        assert k not in text, "%s holds a key: %s" % (where, text[:2000])


def _dd_series(*points):
    """Datadog's documented answer with one series of <points>."""
    return json.dumps({
        "status": "ok", "res_type": "time_series", "resp_version": 1,
        "query": "sum:trace.http.request.errors{service:shop}.as_count()",
        "from_date": 1700000000000, "to_date": 1700000600000, "group_by": [], "message": "",
        "series": [{"metric": "trace.http.request.errors", "display_name": "trace.http.request.errors",
                    "interval": 60, "length": len(points), "aggr": "sum", "scope": "service:shop",
                    "expression": "sum:trace.http.request.errors{service:shop}.as_count()",
                    "unit": None, "start": 1700000000000, "end": 1700000600000,
                    "pointlist": [list(p) for p in points]}],
    }).encode()


def test_datadog_rollout_sends_flaggers_request_and_reads_the_first_point():
    def answer(path, params, headers):
        # the oldest point is Flagger's value; the newest (incomplete) is not
        return 200, _dd_series((1700000000000.0, 0.25), (1700000060000.0, 7.0),
                               (1700000120000.0, None))
    api = Api(answer)
    v1, v2 = Upstream("v1"), Upstream("v2")
    port, admin = free_port(), free_port()
    cfgp = _config(_dd_metrics(api), port=port, stable=v1.addr)
    d = _start(cfgp, admin)
    t0 = int(time.time())
    assert d.ctl("rollout", "shop", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("shop", ("Succeeded", "Failed"), timeout=30)
    assert s["phase"] == "Succeeded", s
    t1 = int(time.time()) + 1
    assert api.requests, "no request reached the API"
    for path, params, headers, at in api.requests:
        assert path == "/api/v1/query", path
        assert sorted(params) == ["from", "query", "to"], params
        assert params["query"] == ["sum:trace.http.request.errors{service:shop,version:v2}"
                                   ".as_count()\n"], params["query"]
        frm, to = int(params["from"][0]), int(params["to"][0])
        assert t0 - 1 <= to <= t1 and to - frm == 600, (frm, to)  # 10 x the 1m interval
        assert headers["dd-api-key"] == DD_API_KEY, headers    # the file's, "\n" trimmed
        assert headers["dd-application-key"] == DD_APP_KEY, headers  # the variable's
    checks = [e for e in d.events("shop") if e["type"] == "check"]
    assert checks and all(c["metrics"][0]["value"] == 0.25 for c in checks), checks
    api.stop()


def test_datadog_errors_and_empty_answers_are_no_data_with_a_reason():
    big = b'{"series": [{"pointlist": [[1, 0.5]]}], "pad": "' + b"x" * (5 << 20) + b'"}'
    cases = [
        # (status, body, extra), what the reason says
        ((403, b'{"errors": ["Forbidden"]}'), "Datadog at '%s': answered HTTP 403: Forbidden"),
        ((400, b'{"errors": ["Error parsing query: unable to parse sum:x{: Rule \'scope_expr\' '
               b'didn\'t match"]}'), "answered HTTP 400: Error parsing query: unable to parse"),
        ((429, b'{"errors": ["Rate limit of 300 requests in 3600 seconds reached."]}'),
         "answered HTTP 429: Rate limit of 300 requests"),
        ((500, b"<html><body>Internal Server Error</body></html>"), "answered HTTP 500"),
        ((200, b'{"status": "error", "error": "Query parse error: bad metric", "series": []}'),
         "query failed: Query parse error: bad metric"),
        ((200, b'{"status": "ok", "res_type": "time_series", "series": []}'),
         "query returned no series"),
        ((200, _dd_series()), "series[0] has no points"),
        ((200, _dd_series((1700000000000.0, None), (1700000060000.0, 3.0))),
         "series[0]'s first point has no value (null)"),
        ((200, b'{"series": [{"pointlist": [[1700000000000.0, NaN]]}]}'), "answer is not JSON"),
        ((200, b'{"series": [{"pointlist": [[1700000000000.0, 1e999]]}]}'), "answer is not JSON"),
        ((200, b'{"series": [{"pointlist": [[1700000000000.0, "0.5"]]}]}'),
         "first point's value is not a number"),
        ((200, b"Service Temporarily Unavailable"), "answer is not JSON"),
        ((200, b'{"series": [{"pointlist": [[1, 0.5]]}]}', {"length": 200}), "did not answer"),
        ((200, big), "did not answer"),
        ((200, b'{"series": [{"pointlist": [[1, 0.5]]}]}', {"delay": 3}), "did not answer"),
        # a server that echoes a key back: scrubbed
        ((401, ('{"errors": ["API key %s is not valid"]}' % DD_API_KEY).encode()),
         "answered HTTP 401: API key " + "*" * len(DD_API_KEY) + " is not valid"),
    ]
    current = [None]
    api = Api(lambda path, params, headers: current[0])
    cfgp = _config(_dd_metrics(api, "\n    timeout: 1s"))
    for answer, want in cases:
        current[0] = answer
        rc, out = _query(cfgp)
        if "%s" in want:
            want = want % api.url
        assert rc == 1 and want in out, (answer[0], answer[1][:100], want, rc, out)
        assert "dd-error-rate (datadog, over 1m)" in out, out
        _assert_no_key("canaryctl query", out)
    # the query as sent is shown, without the keys
    current[0] = (200, _dd_series((1.0, 0.5)))
    rc, out = _query(cfgp)
    assert rc == 0 and "canary value: 0.5\n" in out, out
    assert ("canary query: GET %s/api/v1/query?from=" % api.url) in out, out
    assert "&query=sum%3Atrace.http.request.errors%7Bservice%3Ashop%2Cversion%3A" in out, out
    # Flagger's window is int64(10 * interval.Seconds()): 15 s for 1500ms
    with open(cfgp) as f:
        text = f.read()
    with open(cfgp, "w") as f:
        f.write(text.replace("interval: 1m", "interval: 1500ms"))
    del api.requests[:]
    rc, out = _query(cfgp)
    params = api.requests[0][1]
    assert rc == 0 and int(params["to"][0]) - int(params["from"][0]) == 15, (params, out)
    rc, out = _query(cfgp, "-o", "json")
    read = json.loads(out)["reads"][0]
    assert read["provider"] == "datadog" and read["value"] == 0.5, read
    assert read["query"].startswith("GET %s/api/v1/query?from=" % api.url), read
    _assert_no_key("canaryctl query -o json", out)
    api.stop()


def test_a_failing_api_fails_the_rollout_and_no_key_leaks():
    """A Datadog that refuses the keys, echoing one back: each check has no
    data, with the reason in its audit event, and the rollout is rolled
    back; no key in the log, the events or the status."""
    api = Api(lambda path, params, headers: (
        403, ('{"errors": ["Forbidden: key %s"]}' % headers.get("dd-api-key")).encode()))
    v1, v2 = Upstream("v1"), Upstream("v2")
    port, admin = free_port(), free_port()
    cfgp = _config(_dd_metrics(api), port=port, stable=v1.addr)
    d = _start(cfgp, admin)
    assert d.ctl("rollout", "shop", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("shop", ("Succeeded", "Failed"), timeout=30)
    assert s["phase"] == "Failed", s
    events = d.events("shop")
    checks = [e for e in events if e["type"] == "check"]
    m = checks[0]["metrics"][0]
    assert m["value"] is None and m["passed"] is False, m
    assert "Datadog at '%s': answered HTTP 403: Forbidden: key ***" % api.url in m["reason"], m
    assert api.requests and all(h["dd-api-key"] == DD_API_KEY for _, _, h, _ in api.requests)
    _assert_no_key("the audit events", json.dumps(events))
    _assert_no_key("the status", json.dumps(d.status("shop")))
    st, metrics = d.api("GET", "/metrics")
    _assert_no_key("/metrics", str(metrics))
    d.stop()
    _assert_no_key("canaryd's log", d.output())
    api.stop()


def test_newrelic_rollout_sends_nrql_and_reads_the_one_result():
    def answer(path, params, headers):
        return 200, json.dumps({
            "results": [{"result": 0.5}],
            "performanceStats": {"inspectedCount": 1200, "wallClockTime": 12},
            "metadata": {"eventTypes": ["Transaction"], "contents": [
                {"function": "alias", "alias": "result"}],
                "beginTime": "2026-12-01T10:00:00Z", "endTime": "2026-12-01T10:00:30Z"},
        }).encode()
    api = Api(answer)
    v1, v2 = Upstream("v1"), Upstream("v2")
    port, admin = free_port(), free_port()
    cfgp = _config(_nr_metrics(api), port=port, stable=v1.addr)
    d = _start(cfgp, admin)
    assert d.ctl("rollout", "shop", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("shop", ("Succeeded", "Failed"), timeout=30)
    assert s["phase"] == "Succeeded", s
    assert api.requests
    for path, params, headers, at in api.requests:
        assert path == "/v1/accounts/1234567/query", path
        assert list(params) == ["nrql"], params
        assert params["nrql"] == ["SELECT filter(count(*), WHERE error IS true) * 100 / count(*) "
                                  "FROM Transaction WHERE appName = 'shop' AND version = 'v2' "
                                  "SINCE 30 seconds ago"], params
        assert headers["x-query-key"] == NR_KEY, headers
    checks = [e for e in d.events("shop") if e["type"] == "check"]
    assert checks and all(c["metrics"][0]["value"] == 0.5 for c in checks), checks
    d.stop()
    _assert_no_key("canaryd's log", d.output())
    api.stop()


def test_newrelic_errors_and_empty_answers_are_no_data_with_a_reason():
    cases = [
        ((400, b'{"error": "NRQL Syntax Error: Error at line 1 position 8, unexpected \'FROM\'"}'),
         "New Relic at '%s': answered HTTP 400: NRQL Syntax Error: Error at line 1"),
        ((401, b'{"error": "Unauthorized: invalid query key"}'),
         "answered HTTP 401: Unauthorized: invalid query key"),
        ((503, b"upstream connect error"), "answered HTTP 503"),
        ((200, b'{"results": [], "metadata": {}}'), "query returned no results"),
        ((200, b'{"results": [{"result": null}]}'), "results[0].result is null"),
        ((200, b'{"results": [{"count": 42}]}'), "results[0] has no 'result' (it has 'count')"),
        ((200, b'{"results": [{"result": 1}, {"result": 2}]}'), "query returned 2 results"),
        ((200, b'{"results": [{"result": NaN}]}'), "answer is not JSON"),
        ((200, b'{"results": [{"result": "0.5"}]}'), "results[0].result is not a number"),
        ((200, b'{"results": [{"result": 0.5}]', {"length": 100}), "did not answer"),
        ((200, b'{"results": [{"result": 0.5}]}', {"delay": 3}), "did not answer"),
        ((403, ('{"error": "key %s revoked"}' % NR_KEY).encode()),
         "answered HTTP 403: key " + "*" * len(NR_KEY) + " revoked"),
    ]
    current = [None]
    api = Api(lambda path, params, headers: current[0])
    cfgp = _config(_nr_metrics(api, "\n          timeout: 1s"))
    for answer, want in cases:
        current[0] = answer
        rc, out = _query(cfgp)
        if "%s" in want:
            want = want % api.url
        assert rc == 1 and want in out, (answer[0], answer[1][:100], want, rc, out)
        _assert_no_key("canaryctl query", out)
    current[0] = (200, b'{"results": [{"result": 0.125}]}')
    rc, out = _query(cfgp)
    assert rc == 0 and "canary value: 0.125\n" in out, out
    assert ("canary query: GET %s/v1/accounts/1234567/query?nrql=SELECT%%20filter" % api.url) in out
    assert "SINCE%2030%20seconds%20ago" in out, out
    _assert_no_key("canaryctl query", out)
    api.stop()


def test_missing_keys_are_config_errors_naming_the_place():
    api = Api(lambda path, params, headers: (200, b"{}"))
    cfgp = _config(_dd_metrics(api))
    os.remove(os.path.join(os.path.dirname(cfgp), "dd-api.key"))
    r = subprocess.run([os.path.join(BUILD, "canaryd"), "--check", "-c", cfgp],
                       capture_output=True, text=True, timeout=30, env=dict(os.environ, **ENV))
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert ("spec.provider.apiKeyFile: cannot read the Datadog API key of MetricTemplate "
            "'dd-errors' from 'dd-api.key': No such file or directory") in r.stderr, r.stderr
    _keyfile(os.path.dirname(cfgp), "dd-api.key", DD_API_KEY + "\n")
    env = {k: v for k, v in os.environ.items() if k != "CANARYD_TEST_DD_APP"}
    r = subprocess.run([os.path.join(BUILD, "canaryd"), "--check", "-c", cfgp],
                       capture_output=True, text=True, timeout=30, env=env)
    assert r.returncode == 2 and ("spec.provider.applicationKeyEnv: the Datadog application key "
                                  "of MetricTemplate 'dd-errors' is to come from environment "
                                  "variable 'CANARYD_TEST_DD_APP', which is not set") in r.stderr, r
    r = subprocess.run([os.path.join(BUILD, "canaryd"), "--check", "-c", cfgp],
                       capture_output=True, text=True, timeout=30, env=dict(os.environ, **ENV))
    assert r.returncode == 0, (r.stdout, r.stderr)
    _assert_no_key("--check", r.stdout + r.stderr)
    api.stop()


def test_a_flagger_template_with_secret_ref_says_which_keys_to_use():
    d = tmpdir()
    p = os.path.join(d, "c.yaml")
    with open(p, "w") as f:
        f.write(_doc(free_port(), "127.0.0.1:1", """      - name: nr
        templateRef: {name: newrelic-error-rate}
        thresholdRange: {max: 5}""", """---
apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: newrelic-error-rate
spec:
  provider:
    type: newrelic
    secretRef:
      name: newrelic
  query: |
    SELECT filter(sum(nginx_ingress_controller_requests), WHERE status >= '500') /
        sum(nginx_ingress_controller_requests) * 100
    FROM Metric WHERE ingress = '{{ ingress }}' AND namespace = '{{ namespace }}'
"""))
    r = subprocess.run([os.path.join(BUILD, "canaryd"), "--check", "-c", p],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, (r.stdout, r.stderr)
    assert "note: MetricTemplate 'newrelic-error-rate' has provider type 'newrelic' without keys" \
        in r.stdout, r.stdout
    r = subprocess.run([os.path.join(BUILD, "canaryd"), "-c", p, "--data-dir",
                        os.path.join(d, "data"), "--admin", "127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=30)
    lines = r.stderr.strip().split("\n")
    assert r.returncode == 2 and len(lines) == 1, (r.returncode, r.stderr)
    assert lines[0] == (
        "canaryd: canary 'shop' (%s:1): metric 'nr' (MetricTemplate 'newrelic-error-rate'): "
        "canaryd reads no Kubernetes secrets (Flagger's secretRef): give the New Relic account "
        "and key in a MetricTemplate of apiVersion canaryd/v1, with provider.accountId and "
        "provider.queryKeyFile (or queryKeyEnv)" % p), lines


if __name__ == "__main__":
    sys.exit(run(globals()))
