"""A Flagger user's files, unchanged: canaryd -c DIR and -c repeated read
one configuration from several files (MetricTemplates and AlertProviders
found across them), a reload re-reads the same set, Flagger's template
functions and templateVariables reach a real Prometheus query, every
document of Flagger's docs and e2e tests passes --check, and what canaryd
cannot drive or read is refused at start with one line."""
import os
import re
import signal
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BUILD, ROOT, SLOW, Canaryd, Load, Upstream, free_port, run,  # noqa: E402
                     tmpdir)
from promstack import Prometheus  # noqa: E402

CORPUS = os.path.join(ROOT, "tests", "data", "flagger-docs")


def canaryd(*args, timeout=30):
    r = subprocess.run([os.path.join(BUILD, "canaryd")] + list(args), capture_output=True,
                       text=True, timeout=timeout * SLOW, cwd=ROOT)
    return r.returncode, r.stdout, r.stderr


def write(d, name, text):
    p = os.path.join(d, name)
    os.makedirs(os.path.dirname(p), exist_ok=True)
    with open(p, "w") as f:
        f.write(text)
    return p


def native(name, port, stable="127.0.0.1:9001", metrics="", interval="500ms", threshold=2):
    return """apiVersion: canaryd/v1
kind: Canary
metadata:
  name: %s
spec:
  listen: 127.0.0.1:%d
  stable: {revision: v1, endpoints: [%s]}
  analysis:
    interval: %s
    threshold: %d
    maxWeight: 30
    stepWeight: 10
    metrics:
%s""" % (name, port, stable, interval, threshold, metrics or """      - name: request-success-rate
        thresholdRange: {min: 99}
        interval: 1m
""")


def flagger_canary(name, provider="istio", metrics="", namespace="test"):
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
    interval: 1m
    threshold: 5
    maxWeight: 50
    stepWeight: 10
    metrics:
%s""" % (name, namespace, provider, name, metrics or """      - name: request-success-rate
        thresholdRange: {min: 99}
        interval: 1m
""")


def template(name, query, provider="type: prometheus, address: 'http://127.0.0.1:9090'",
             namespace="test"):
    return """apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: %s
  namespace: %s
spec:
  provider: {%s}
  query: '%s'
""" % (name, namespace, provider, query)


LATENCY_REF = """      - name: latency
        templateRef: {name: latency, namespace: istio-system}
        templateVariables: {reporter: destination}
        thresholdRange: {max: 500}
        interval: 1m
"""


def test_a_directory_and_repeated_c_read_one_configuration():
    d = tmpdir()
    write(d, "conf/10-canary.yaml", flagger_canary("podinfo", metrics=LATENCY_REF))
    write(d, "conf/20-templates.yml",
          template("latency", 'histogram_quantile(0.99, sum(rate(x{reporter="{{ variables.'
                   'reporter }}",ns="{{ namespace }}",svc="{{ service }}"}[{{ interval }}]))'
                   ' by (le))', namespace="istio-system"))
    write(d, "conf/README.md", "not YAML: not read\n")
    write(d, "conf/.#10-canary.yaml", "an editor's lock file: not read {\n")
    write(d, "conf/old/30-canary.yaml", "a subdirectory: not read {\n")
    conf = os.path.join(d, "conf")
    rc, out, err = canaryd("--check", "-c", conf)
    assert rc == 0, (out, err)
    assert out.strip().endswith("%s: ok (1 canary, 2 files)" % conf), out
    # the same files named one by one, and a file named twice is read once
    files = [os.path.join(conf, f) for f in ("10-canary.yaml", "20-templates.yml")]
    rc, out2, err = canaryd("--check", "-c", files[0], "-c", files[1], "-c", conf)
    assert rc == 0 and "ok (1 canary, 2 files)" in out2, (out2, err)
    # canaryctl's offline commands read a directory too
    r = subprocess.run([os.path.join(BUILD, "canaryctl"), "render", "-f", conf, "podinfo",
                        "--weight", "10", "-o", "json"], capture_output=True, text=True,
                       timeout=30 * SLOW)
    assert r.returncode == 0 and '"VirtualService"' in r.stdout, (r.stdout[:500], r.stderr)
    # one file alone: the template is in the other
    rc, out, err = canaryd("--check", "-c", files[0])
    assert rc == 2, (out, err)
    assert err.strip() == ("%s:17:9: spec.analysis.metrics[0].templateRef: no MetricTemplate "
                           "named 'latency' in namespace 'istio-system' in this file; there "
                           "are none" % files[0]), err


def test_errors_name_the_file_and_both_places_of_a_duplicate():
    d = tmpdir()
    a = write(d, "a.yaml", native("web", free_port()))
    b = write(d, "b.yaml", "# another team's file\n" + native("web", free_port()))
    c = write(d, "c.yaml", flagger_canary("api", metrics="""      - name: errors
        templateRef: {name: error-rate}
        thresholdRange: {max: 1}
"""))
    rc, out, err = canaryd("--check", "-c", d)
    assert rc == 2, (out, err)
    lines = err.strip().split("\n")
    assert lines == [
        "%s:5:9: metadata.name: duplicate canary name 'web' (also the document at %s:1)" % (b, a),
        "%s:17:9: spec.analysis.metrics[0].templateRef: no MetricTemplate named 'error-rate' "
        "in namespace 'test' (the canary's) in the 3 files; there are none" % c,
    ], lines
    # a template in the canary's namespace, in another file, resolves it
    write(d, "t.yaml", template("error-rate", 'sum(x{app="{{ target }}"})'))
    os.remove(b)
    rc, out, err = canaryd("--check", "-c", d)
    assert rc == 0 and "ok (2 canaries, 3 files)" in out, (out, err)
    # but not one in another namespace, and the message says which were seen
    write(d, "t.yaml", template("error-rate", 'sum(x{app="{{ target }}"})', namespace="prod"))
    rc, out, err = canaryd("--check", "-c", d)
    assert rc == 2 and "there are: error-rate (namespace prod)" in err, err


def test_an_empty_or_missing_directory_is_an_error():
    d = tmpdir()
    write(d, "notes.txt", "x\n")
    rc, out, err = canaryd("--check", "-c", d)
    assert rc == 2 and err.strip() == ("%s:1:1: no configuration files in this directory (it "
                                       "reads the *.yaml and *.yml files in it, not those of "
                                       "its subdirectories)" % d), err
    rc, out, err = canaryd("--check", "-c", os.path.join(d, "nope"))
    assert rc == 2 and "nope:1:1: cannot read: No such file or directory" in err, err


def test_reload_reads_the_directory_again():
    v1 = Upstream("v1")
    d = tmpdir()
    conf = os.path.join(d, "conf")
    write(d, "conf/a.yaml", native("alpha", free_port(), v1.addr))
    cd = Canaryd(config_path=conf)
    names = lambda: sorted(c["name"] for c in cd.api("GET", "/api/v1/canaries")[1])  # noqa: E731
    assert names() == ["alpha"]
    # a new file in the directory: a reload starts its canary
    write(d, "conf/b.yaml", native("beta", free_port(), v1.addr))
    cd.kill(signal.SIGHUP)
    end = time.time() + 10 * SLOW
    while names() != ["alpha", "beta"] and time.time() < end:
        time.sleep(0.05)
    assert names() == ["alpha", "beta"], cd.output()
    # a file with an error: the reload is refused, both canaries stay
    write(d, "conf/c.yaml", native("gamma", free_port(), v1.addr).replace("stepWeight: 10",
                                                                          "stepWeight: 0"))
    cd.kill(signal.SIGHUP)
    end = time.time() + 10 * SLOW
    while "reload failed" not in cd.output() and time.time() < end:
        time.sleep(0.05)
    assert re.search(r"reload: .*conf/c\.yaml:\d+:\d+: spec\.analysis\.stepWeight", cd.output()), \
        cd.output()
    assert names() == ["alpha", "beta"]
    # a canary canaryd cannot drive: refused, the running ones stay
    write(d, "conf/c.yaml", flagger_canary("gamma", provider="contour"))
    cd.kill(signal.SIGHUP)
    end = time.time() + 10 * SLOW
    while cd.output().count("reload failed") < 2 and time.time() < end:
        time.sleep(0.05)
    assert "reload failed: canary 'gamma'" in cd.output() and "provider 'contour' is not one " \
        "canaryd drives" in cd.output(), cd.output()
    assert names() == ["alpha", "beta"]


def test_template_functions_and_variables_reach_prometheus():
    """A native canary's metric names a Flagger MetricTemplate in another
    file whose query uses {{ variables.code }} (from the metric's
    templateVariables), printf and {{ interval }}: Prometheus (scraping
    canaryd's own request counters) answers the rendered query with the
    canary's error rate, which rolls it back."""
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=0.2)
    port, admin = free_port(), free_port()
    prom = Prometheus(["127.0.0.1:%d" % admin])
    d = tmpdir()
    query = ('100 * sum(rate(canaryd_requests_total{canary="{{ name }}",target="canary",'
             'code=~"{{ variables.code }}"}[{{ interval }}])) / sum(rate(canaryd_requests_total'
             '{canary="{{ printf "%s" name }}",target="canary"}[{{ interval }}]))')
    write(d, "conf/templates.yaml", """apiVersion: flagger.app/v1beta1
kind: MetricTemplate
metadata:
  name: error-rate
  namespace: shop
spec:
  provider:
    type: prometheus
    address: %s
  query: |
    %s
""" % (prom.url, query))
    write(d, "conf/web.yaml", native("web", port, v1.addr, """      - name: errors-by-code
        templateRef: {name: error-rate, namespace: shop}
        templateVariables: {code: "5.."}
        thresholdRange: {max: 1}
        interval: 10s
""", interval="2s", threshold=5))
    cd = Canaryd(config_path=os.path.join(d, "conf"), admin_port=admin)
    load = Load(port, threads=2, rps_per_thread=60)
    assert cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    cd.wait_phase("web", "Failed", timeout=60)
    load.stop()
    # the first checks may come before Prometheus has two scrapes of canary
    # traffic: held (onNoData hold), not counted
    checks = [e for e in cd.events("web") if e["type"] == "check"
              and not e["message"].startswith("check held")]
    last = checks[-1]["metrics"][0]
    # 20 % of the canary's requests fail with a 5xx: the query with the
    # variable substituted measures it
    assert len(checks) == 5, checks
    assert last["value"] is not None and 10 <= last["value"] <= 30, checks


def _corpus_runs():
    """(file, the -c arguments that check it) for each corpus file."""
    files = sorted(f for f in os.listdir(CORPUS) if f.endswith(".yaml"))
    host = os.path.join(tmpdir(), "host.yaml")
    with open(host, "w") as f:
        f.write(native("host", 18080))
    runs = []
    for f in files:
        src = f.split(".")[0]
        if ".canaries-" in f:
            # the templates of its source, and for test/X the ones test-utils.sh applies
            utils = re.sub(r"^(test-[a-z]+-).*", r"\1test-utils", src) if src.startswith("test-") \
                else None
            tm = [t for t in files if ".templates-1." in t and t.split(".")[0] in (src, utils)]
            args = [f] + tm
        else:
            args = [f, host]
        runs.append((f, sum((["-c", a if os.path.isabs(a) else os.path.join(CORPUS, a)]
                              for a in args), [])))
    return runs


def test_every_flagger_document_passes_check():
    counts = {}
    for f in os.listdir(CORPUS):
        if f.endswith(".yaml"):
            for doc in yaml.safe_load_all(open(os.path.join(CORPUS, f))):
                counts[doc["kind"]] = counts.get(doc["kind"], 0) + 1
    assert counts == {"Canary": 66, "MetricTemplate": 36, "AlertProvider": 1}, counts
    notes, failed = [], []
    for f, args in _corpus_runs():
        rc, out, err = canaryd("--check", *args)
        if rc != 0:
            failed.append((f, err))
        notes += [l for l in out.split("\n") if "canaryd will not start" in l]
    assert not failed, failed[:3]
    print("  %d Canaries, %d MetricTemplates, %d AlertProvider: all pass --check; %d notes "
          "of what canaryd will not start with" % (counts["Canary"], counts["MetricTemplate"],
                                                   counts["AlertProvider"], len(notes)))
    # the providers canaryd does not drive and the metric providers it
    # does not read are among the notes (Flagger 1.44's docs have no App
    # Mesh canary left, and its Kuma ones name no provider: Flagger's
    # -mesh-provider flag says it; the refusal test below has both)
    for p in ("contour", "gloo", "nginx", "skipper", "traefik", "apisix", "knative"):
        assert any("provider '%s' is not one canaryd drives" % p in n for n in notes), p
    # (the CloudWatch one is in an old API version: skipped.txt)
    for t in ("graphite", "dynatrace", "influxdb", "stackdriver", "splunk", "keptn"):
        assert any("provider type '%s', which canaryd does not read" % t in n for n in notes), t
    # datadog and newrelic are read, but their keys are in a Kubernetes
    # secret: the note says where canaryd takes them from instead
    for t, key in (("datadog", "provider.apiKeyFile"), ("newrelic", "provider.queryKeyFile")):
        assert any("provider type '%s' without keys canaryd can read" % t in n and key in n
                   for n in notes), t
    # the skipped ones are listed with why, and the old API versions refused clearly
    skipped = open(os.path.join(CORPUS, "skipped.txt")).read().strip().split("\n")
    assert len(skipped) == 18, skipped
    d = tmpdir()
    old = write(d, "old.yaml", flagger_canary("app").replace("v1beta1", "v1alpha3"))
    rc, out, err = canaryd("--check", "-c", old)
    assert rc == 2 and "apiVersion: 'flagger.app/v1alpha3' is an API version Flagger no " \
        "longer serves" in err, err


def test_what_canaryd_cannot_drive_or_read_is_refused_at_start():
    d = tmpdir()
    for provider in ("appmesh", "appmesh:v1beta2", "contour", "gloo", "nginx", "skipper",
                     "traefik", "apisix", "kuma", "knative"):
        p = write(d, "c.yaml", flagger_canary("podinfo", provider=provider))
        rc, out, err = canaryd("--check", "-c", p)
        assert rc == 0 and "note: valid, but canaryd will not start" in out, (provider, out)
        data = os.path.join(d, "data")
        rc, out, err = canaryd("-c", p, "--data-dir", data, "--admin",
                               "127.0.0.1:%d" % free_port())
        lines = err.strip().split("\n")
        assert rc == 2 and len(lines) == 1, (provider, rc, err)
        assert lines[0].startswith("canaryd: canary 'podinfo' (%s:1): provider '%s' is not one "
                                   "canaryd drives (it drives " % (p, provider)), lines
        assert "'builtin'" in lines[0], lines
        assert not os.path.exists(data), "refused before anything is opened"
    # a metric from a provider type canaryd does not read
    p = write(d, "c.yaml", native("web", free_port(), metrics="""      - name: apm
        templateRef: {name: dd}
        thresholdRange: {max: 1}
---
""" + template("dd", "avg:trace.errors{service:{{ name }}}", provider="type: graphite, "
                    "address: 'http://graphite:8080', secretRef: {name: dd}")))
    rc, out, err = canaryd("--check", "-c", p)
    assert rc == 0 and "metric 'apm' reads provider type 'graphite'" in out, (out, err)
    rc, out, err = canaryd("-c", p, "--data-dir", os.path.join(d, "data"), "--admin",
                           "127.0.0.1:%d" % free_port())
    lines = err.strip().split("\n")
    assert rc == 2 and len(lines) == 1 and lines[0].startswith(
        "canaryd: canary 'web' (%s:1): metric 'apm' reads provider type 'graphite' "
        "(MetricTemplate 'dd'), which canaryd does not read (it reads the built-in metrics "
        "and " % p), err
    assert "'prometheus'" in lines[0] and "'web'" in lines[0], lines


if __name__ == "__main__":
    sys.exit(run(globals()))
