"""canaryctl render (issue 9, section 3): the Kubernetes router objects of a
Canary, as Flagger v1.44.0 writes them.

- Golden equality: every object of ../shared/data/mesh/golden/ rendered from
  its input (the golden README's table) and compared as JSON, field for field.
  Where Flagger v1.44.0's code writes something the hand-made golden file
  lacks, the difference is listed in DEVIATIONS with the line of Flagger that
  makes it: the test checks that the golden file still has its value there,
  replaces it with Flagger's, and then requires equality of the whole object.
- Every object rendered for a matrix of Canaries (each router, each feature,
  each phase) is held to the real CRDs (crdcheck.py: defaults, strict schema,
  list types, CEL rules through cel-js).
- The YAML output reads back as the JSON output; errors and notes of the CLI."""
import copy
import json
import os
import subprocess
import sys

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, ROOT, run, sanitizer_reports, tmpdir  # noqa: E402
import crdcheck  # noqa: E402

SHARED = os.environ.get("CANARYD_SHARED", os.path.join(ROOT, "..", "shared"))
FLAGGER = os.path.join(SHARED, "data", "flagger")
GOLDEN = os.path.join(SHARED, "data", "mesh", "golden")
CRDS = os.path.join(SHARED, "data", "mesh", "crds")
INPUTS = os.path.join(os.path.dirname(__file__), "render")
CTL = os.path.join(BUILD, "canaryctl")

ABSENT = object()
FLUX = {"helm.toolkit.fluxcd.io/driftDetection": "disabled",
        "kustomize.toolkit.fluxcd.io/reconcile": "disabled"}
WHY_FLUX = ("pkg/router/istio.go and gateway_api.go call filterMetadata (pkg/router/util.go) on "
            "the apex annotations, which adds Flux's two opt-outs to every VirtualService and HTTPRoute")


def ctl(*args, ok=True):
    r = subprocess.run([CTL] + list(args), capture_output=True, text=True, timeout=60)
    reps = sanitizer_reports(r.stderr)
    assert not reps, "sanitizer report:\n" + r.stderr[-3000:]
    if ok:
        assert r.returncode == 0, (args, r.returncode, r.stderr)
    return r


def render(path, *args):
    """The objects as -o json gives them, after checking that the YAML
    output reads back as the same objects."""
    j = ctl("render", "-f", path, "-o", "json", *args)
    doc = json.loads(j.stdout)
    assert doc["apiVersion"] == "v1" and doc["kind"] == "List", doc
    y = ctl("render", "-f", path, *args)
    assert list(yaml.safe_load_all(y.stdout)) == doc["items"], y.stdout
    return doc["items"]


def pointer(doc, ptr):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in ptr.split("/")[1:]]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    return parent, (int(parts[-1]) if isinstance(parent, list) else parts[-1])


def get_at(doc, ptr):
    parent, key = pointer(doc, ptr)
    try:
        return parent[key]
    except (KeyError, IndexError):
        return ABSENT


def set_at(doc, ptr, value):
    parent, key = pointer(doc, ptr)
    parent[key] = value


def load_golden(name):
    with open(os.path.join(GOLDEN, name)) as f:
        return list(yaml.safe_load_all(f))


# Each golden object: (golden file, index) -> (input, canaryctl args, index
# of the rendered object, deviations). A deviation: (JSON pointer, what the
# golden file has there, what Flagger v1.44.0 writes, why).
CASES = {
    ("istio-canary.w10.yaml", 0): (os.path.join(FLAGGER, "istio-canary.yaml"), ["--weight", "10"], 0, []),
    ("istio-canary.w10.yaml", 1): (os.path.join(FLAGGER, "istio-canary.yaml"), ["--weight", "10"], 1, []),
    ("istio-canary.w10.yaml", 2): (os.path.join(FLAGGER, "istio-canary.yaml"), ["--weight", "10"], 2, [
        ("/metadata/annotations", ABSENT, FLUX, WHY_FLUX)]),
    ("istio-abtest.iter.yaml", 0): (os.path.join(FLAGGER, "istio-abtest.yaml"), ["--iteration"], 2, [
        ("/metadata/annotations", ABSENT, FLUX, WHY_FLUX),
        ("/spec/http/1/route/0/weight", 100, 0,
         "IstioRouter.SetRoutes (istio.go) writes the A/B default route as "
         "makeDestination(canary, primaryName, primaryWeight), and runAB calls SetRoutes(0, 100): "
         "weight 0 (Istio sends all of a route with one destination to it; 100 is what Reconcile "
         "writes before the first iteration; Flagger's TestIstioRouter_ABTest asserts 0)")]),
    ("istio-mirror-affinity.yaml", 0): (os.path.join(INPUTS, "istio-mirror.yaml"),
                                        ["--weight", "0", "--mirror"], 2, [
        ("/metadata/annotations", ABSENT, FLUX, WHY_FLUX)]),
    ("istio-mirror-affinity.yaml", 1): (os.path.join(INPUTS, "istio-affinity.yaml"),
                                        ["--weight", "10", "--cookie", "ABCDEFGHIJ"], 2, [
        ("/metadata/annotations", ABSENT, FLUX, WHY_FLUX),
        ("/metadata/name", "podinfo-affinity", "podinfo",
         "the VirtualService is named after the apex Service (reconcileVirtualService uses "
         "apexName), the same apex whose podinfo-primary/-canary the routes name; the golden "
         "file renames it to keep two objects apart in one file")]),
    ("gatewayapi-canary.w10.yaml", 0): (os.path.join(INPUTS, "gatewayapi-canary.yaml"), ["--weight", "10"], 0, [
        ("/metadata/annotations", ABSENT, FLUX, WHY_FLUX),
        ("/spec/parentRefs/0/group", ABSENT, "gateway.networking.k8s.io",
         "the Canary CRD defaults spec.service.gatewayRefs[].group (artifacts/flagger/crd.yaml), "
         "so Flagger reads it set and toV1ParentRefs copies it"),
        ("/spec/parentRefs/0/kind", ABSENT, "Gateway",
         "likewise the Canary CRD's default for gatewayRefs[].kind")]),
    ("gatewayapi-canary.w10.yaml", 1): (os.path.join(INPUTS, "gatewayapi-gamma.yaml"), ["--weight", "10"], 0, [
        ("/metadata/annotations", ABSENT, FLUX, WHY_FLUX),
        ("/metadata/name", "podinfo-mesh", "podinfo",
         "the HTTPRoute is named after the apex Service (gateway_api.go uses apexSvcName), whose "
         "podinfo-primary/-canary its backendRefs name; the golden file renames it")]),
    ("smi.w10.yaml", 0): (os.path.join(FLAGGER, "linkerd-canary.yaml"), ["--weight", "10"], 0, []),
    ("smi.w10.yaml", 1): (os.path.join(FLAGGER, "linkerd-canary.yaml"),
                          ["--weight", "10", "--provider", "osm"], 0, []),
}


def check_golden(name):
    golden = load_golden(name)
    assert golden, name
    for i, want in enumerate(golden):
        assert (name, i) in CASES, "no input for object %d of %s" % (i, name)
        path, args, idx, devs = CASES[(name, i)]
        got = render(path, *args)[idx]
        want = copy.deepcopy(want)
        for ptr, golden_value, flagger_value, why in devs:
            have = get_at(want, ptr)
            assert have == golden_value, ("%s[%d] %s: the golden file now has %r, not %r: drop or "
                                          "update this deviation (%s)" % (name, i, ptr, have,
                                                                          golden_value, why))
            set_at(want, ptr, flagger_value)
        assert got == want, "%s[%d]:\nrendered %s\nexpected %s" % (
            name, i, json.dumps(got, indent=1), json.dumps(want, indent=1))


def test_golden_istio_canary_at_10():
    check_golden("istio-canary.w10.yaml")


def test_golden_istio_abtest_iteration():
    check_golden("istio-abtest.iter.yaml")
    # "DestinationRules as for istio-canary"
    drs = render(os.path.join(FLAGGER, "istio-abtest.yaml"), "--iteration")[:2]
    assert drs == load_golden("istio-canary.w10.yaml")[:2]


def test_golden_istio_mirror_and_session_affinity():
    check_golden("istio-mirror-affinity.yaml")


def test_golden_gatewayapi_gateway_and_gamma_parents():
    check_golden("gatewayapi-canary.w10.yaml")


def test_golden_smi_v1alpha1_and_v1alpha2():
    check_golden("smi.w10.yaml")


def test_every_golden_object_has_a_case():
    files = sorted(f for f in os.listdir(GOLDEN) if f.endswith(".yaml"))
    assert files, GOLDEN
    for f in files:
        for i in range(len(load_golden(f))):
            assert (f, i) in CASES, "golden %s[%d] has no case in test_render.py" % (f, i)


# ---- every feature, every router: the CRDs' schemas and CEL rules ----

ANALYSIS = {"interval": "15s", "threshold": 5, "maxWeight": 50, "stepWeight": 10,
            "metrics": [{"name": "request-success-rate", "thresholdRange": {"min": 99}, "interval": "1m"}]}


def canary(provider, service, analysis=None, **analysis_extra):
    a = copy.deepcopy(analysis or ANALYSIS)
    a.update(analysis_extra)
    if "iterations" in a:
        for k in ("maxWeight", "stepWeight"):
            a.pop(k, None)
    return {"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
            "metadata": {"name": "podinfo", "namespace": "test"},
            "spec": {"provider": provider,
                     "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "podinfo"},
                     "service": service, "analysis": a}}


AB = {"iterations": 10, "match": [{"headers": {"x-canary": {"exact": "insider"}}},
                                  {"headers": {"cookie": {"regex": "^(.*?;)?(canary=always)(;.*)?$"}}}]}
AB_ONE = {"iterations": 10, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}
AFFINITY = {"sessionAffinity": {"cookieName": "flagger-cookie", "maxAge": 3600, "domain": "example.com",
                                "httpOnly": True, "partitioned": True, "path": "/", "sameSite": "Strict",
                                "secure": True, "primaryCookieName": "primary-cookie"}}
PHASES = [["--weight", "0"], ["--weight", "10"], ["--weight", "50"], ["--weight", "100"]]
AFFINITY_PHASES = [["--weight", "10", "--cookie", "abcdefghij", "--primary-cookie", "KLMNOPQRST"],
                   ["--weight", "0", "--cookie", "abcdefghij"], ["--weight", "0"]]

ISTIO_FULL = {
    "name": "podinfo", "port": 80, "targetPort": 9898, "portDiscovery": True,
    "gateways": ["istio-system/public-gateway", "mesh"], "hosts": ["app.example.com"],
    "match": [{"uri": {"prefix": "/api"}, "method": {"exact": "GET"},
               "headers": {"x-user": {"exact": "a"}}, "queryParams": {"q": {"regex": "^a"}}},
              {"uri": {"exact": "/"}}],
    "rewrite": {"uri": "/v2", "authority": "b.example.com"},
    "timeout": "30s",
    "retries": {"attempts": 3, "perTryTimeout": "1s", "retryOn": "gateway-error,connect-failure"},
    "corsPolicy": {"allowOrigins": [{"exact": "https://a.example.com"}], "allowMethods": ["GET", "POST"],
                   "allowHeaders": ["x-a"], "exposeHeaders": ["x-b"], "maxAge": "24h",
                   "allowCredentials": True},
    "headers": {"request": {"set": {"x-a": "1"}, "add": {"x-b": "2"}, "remove": ["x-c"]},
                "response": {"set": {"x-d": "3"}, "remove": ["x-e"]}},
    "trafficPolicy": {"tls": {"mode": "ISTIO_MUTUAL"}, "loadBalancer": {"simple": "LEAST_REQUEST", "warmupDurationSecs": "30s"},
                      "connectionPool": {"http": {"http1MaxPendingRequests": 100, "idleTimeout": "30s",
                                                  "h2UpgradePolicy": "UPGRADE", "maxRetries": 3}},
                      "outlierDetection": {"consecutive5xxErrors": 5, "interval": "10s",
                                           "baseEjectionTime": "30s", "maxEjectionPercent": 50}},
    "apex": {"labels": {"team": "shop"}, "annotations": {"example.com/owner": "shop"}},
}
ISTIO_SERVICES = {
    "full": ISTIO_FULL,
    "mesh": {"port": 80},
    "delegate": {"port": 80, "portDiscovery": True, "delegation": True},
    "tcp": {"port": 9000, "appProtocol": "TCP", "match": [{"port": 9000}], "portDiscovery": True,
            "gateways": ["istio-system/tcp-gateway"], "hosts": ["*"]},
    "hash": {"port": 80, "trafficPolicy": {"loadBalancer": {"consistentHash": {
        "httpCookie": {"name": "user", "ttl": "0s"}, "minimumRingSize": 1024}}}},
}
GATEWAY_FULL = {
    "port": 9898, "hosts": ["www.example.com"],
    "gatewayRefs": [{"name": "gateway", "namespace": "istio-ingress", "sectionName": "https"}],
    "match": [{"uri": {"prefix": "/api"}, "method": {"exact": "GET"},
               "headers": {"x-user": {"exact": "a"}, "x-b": {"regex": "^b"}},
               "queryParams": {"q": {"exact": "1"}}},
              {"uri": {"regex": "^/v[0-9]+/"}}, {"uri": {"exact": "/"}}],
    "headers": {"request": {"set": {"x-a": "1", "x-0": "0"}, "add": {"x-b": "2"}, "remove": ["x-c"]},
                "response": {"add": {"x-d": "3"}}},
    "rewrite": {"uri": "/", "authority": "b.example.com"},
    "mirror": [{"backendRef": {"name": "shadow", "port": 9898}}],
    "corsPolicy": {"allowOrigin": ["https://a.example.com"], "allowMethods": ["GET"],
                   "allowHeaders": ["x-a"], "exposeHeaders": ["x-b"], "maxAge": "24h",
                   "allowCredentials": True},
    "timeout": "30s", "backendTimeout": "10s",
    "apex": {"labels": {"team": "shop"}},
}
GATEWAY_SERVICES = {
    "full": GATEWAY_FULL,
    "prefix-rewrite": {"port": 9898, "gatewayRefs": [{"name": "gw", "port": 443}],
                       "rewrite": {"uri": "/v2", "type": "ReplacePrefixMatch"},
                       "match": [{"uri": {"prefix": "/v1"}}]},
    "gamma": {"port": 9898, "timeout": "5s",
              "gatewayRefs": [{"name": "podinfo", "namespace": "test", "group": "core",
                               "kind": "Service", "port": 9898}]},
}


def matrix():
    """(label, Canary, [args...]) for every router, feature and phase."""
    out = []
    for sname, svc in ISTIO_SERVICES.items():
        for aname, extra in (("progressive", {}), ("ab", AB), ("affinity", AFFINITY),
                             ("mirror", {"mirror": True, "mirrorWeight": 50}),
                             ("bluegreen", {"iterations": 5, "mirror": True})):
            phases = AFFINITY_PHASES if aname == "affinity" else PHASES
            if aname == "ab":
                phases = [["--iteration"], ["--weight", "0"]]
            if aname == "bluegreen":
                phases = [["--iteration"], ["--weight", "100"]]
            if aname == "mirror":
                phases = [["--weight", "0", "--mirror"], ["--weight", "20"]]
            out.append(("istio/%s/%s" % (sname, aname), canary("istio", svc, **extra), phases))
    for provider in ("gatewayapi:v1", "gatewayapi:v1beta1"):
        for sname, svc in GATEWAY_SERVICES.items():
            # a ReplacePrefixMatch rewrite allows one match per rule: one A/B match
            ab = AB_ONE if sname == "prefix-rewrite" else AB
            for aname, extra in (("progressive", {}), ("ab", ab), ("affinity", AFFINITY),
                                 ("bluegreen", {"iterations": 5, "mirror": True})):
                phases = AFFINITY_PHASES if aname == "affinity" else PHASES
                if aname in ("ab", "bluegreen"):
                    phases = [["--iteration"], ["--weight", "0"]]
                out.append(("%s/%s/%s" % (provider, sname, aname), canary(provider, svc, **extra), phases))
    for provider in ("linkerd", "osm", "smi:v1alpha1:linkerd", "smi:v1alpha2:istio", "smi:v1alpha3:osm"):
        svc = {"port": 80, "hosts": ["podinfo.test.svc.cluster.local"], "gateways": ["mesh", "gw<1>&"]}
        out.append(("%s" % provider, canary(provider, svc), PHASES))
    return out


CEL_SEEN = {}  # (path with [] for indices, rule) -> [times evaluated, rewritten]


def validate_matrix(prefix):
    d = tmpdir()
    report = crdcheck.Report(crdcheck.CRDs(CRDS), crdcheck.Cel(ROOT))
    kinds = {}
    n = 0
    for label, doc, phases in matrix():
        if not label.startswith(prefix):
            continue
        path = os.path.join(d, label.replace("/", "_").replace(":", "_") + ".yaml")
        with open(path, "w") as f:
            json.dump(doc, f)
        for args in phases:
            for i, obj in enumerate(render(path, *args)):
                report.add("%s %s #%d" % (label, " ".join(args), i), obj)
                kinds[obj["kind"] + " " + obj["apiVersion"]] = kinds.get(obj["kind"] + " " + obj["apiVersion"], 0) + 1
                n += 1
    stats = report.finish()
    for (path, rule), v in stats.items():
        CEL_SEEN.setdefault((path, rule), [0, False])
        CEL_SEEN[(path, rule)][0] += v[0]
        CEL_SEEN[(path, rule)][1] = CEL_SEEN[(path, rule)][1] or v[2]
    evaluated = sum(v[0] for v in stats.values())
    print("  %s: %d objects %s, %d distinct CEL rules evaluated %d times, %d transition rules "
          "(oldSelf) not applicable on create; schemas: %s" % (
              prefix, n, kinds, len(stats), evaluated, report.transition, report.schemas_used), flush=True)
    assert n > 0
    assert not report.errors, "\n".join("%s: %s" % e for e in report.errors[:40])
    return stats


def test_istio_objects_pass_the_crd_schemas_and_cel_rules():
    stats = validate_matrix("istio")
    assert stats, "no CEL rule was evaluated"


def test_gatewayapi_objects_pass_the_crd_schemas_and_cel_rules():
    stats = validate_matrix("gatewayapi")
    assert len(stats) >= 10, stats


def test_smi_objects_pass_the_crd_schemas():
    validate_matrix("linkerd")
    validate_matrix("osm")
    validate_matrix("smi:")


def test_cel_rules_coverage():
    """Which CEL rules of the CRDs the matrix evaluated, and which it never
    reached (their field is never rendered). With CANARYD_CEL_REPORT=FILE,
    writes the lists there (docs/routers.md quotes them)."""
    crds = crdcheck.CRDs(CRDS)
    lines = []
    for group, kind, version in (("networking.istio.io", "VirtualService", "v1beta1"),
                                 ("networking.istio.io", "DestinationRule", "v1beta1"),
                                 ("gateway.networking.k8s.io", "HTTPRoute", "v1"),
                                 ("gateway.networking.k8s.io", "HTTPRoute", "v1beta1")):
        rules = crdcheck.all_rules(crds, group, kind, version)
        seen = {(p.replace("[]", "").replace("{}", ""), r) for (p, r) in CEL_SEEN}
        done = [(p, r) for p, r, tr in rules if (p.replace("[]", "").replace("{}", ""), r) in seen]
        rewritten = [k for k, v in CEL_SEEN.items() if v[1]]
        trans = [(p, r) for p, r, tr in rules if tr]
        left = [(p, r) for p, r, tr in rules if not tr and (p, r) not in done]
        lines.append("%s %s: %d rules; %d evaluated on rendered objects, %d never reached, "
                     "%d transition rules (oldSelf: not applicable on create)" % (
                         kind, version, len(rules), len(done), len(left), len(trans)))
        for p, r in left:
            lines.append("  not reached: %s: %s" % (p or "(root)", r))
    lines.append("evaluated after the has(e[i].f) -> 'f' in e[i] rewrite: %d rules" % len(
        {r for (_, r), v in CEL_SEEN.items() if v[1]}))
    print("\n".join("  " + l for l in lines), flush=True)
    out = os.environ.get("CANARYD_CEL_REPORT")
    if out:
        with open(out, "w") as f:
            f.write("\n".join(lines) + "\n")
    assert CEL_SEEN, "run the matrix tests first"


def test_the_validator_refuses_what_the_api_server_refuses():
    """crdcheck itself: an unknown field, a bad enum, a CEL rule broken and a
    duplicate in a map list are each caught (so a pass above means something)."""
    crds = crdcheck.CRDs(CRDS)
    report = crdcheck.Report(crds, crdcheck.Cel(ROOT))
    good = render(os.path.join(INPUTS, "gatewayapi-canary.yaml"), "--weight", "10")[0]
    report.add("good", good)
    assert not report.errors and report.finish() and not report.errors, report.errors
    bad = []
    b = copy.deepcopy(good)
    b["spec"]["rules"][0]["backendRefs"][0]["weigth"] = 1
    bad.append(("unknown field", b, "weigth"))
    b = copy.deepcopy(good)
    b["spec"]["rules"][0]["matches"][0]["path"]["type"] = "Prefix"
    bad.append(("enum", b, "Prefix"))
    b = copy.deepcopy(good)
    b["spec"]["rules"][0]["matches"][0]["path"]["value"] = "no-slash"
    bad.append(("CEL", b, "CEL rule failed"))
    b = copy.deepcopy(good)
    b["spec"]["rules"][0]["backendRefs"][0]["weight"] = 1000001
    bad.append(("maximum", b, "1000001"))
    b = copy.deepcopy(good)
    b["spec"]["rules"][0]["filters"] = [{"type": "URLRewrite"}]
    bad.append(("CEL filter", b, "CEL rule failed"))
    istio = render(os.path.join(FLAGGER, "istio-canary.yaml"), "--weight", "10")
    b = copy.deepcopy(istio[2])
    b["spec"]["http"][0]["timeout"] = "fast"
    bad.append(("istio CEL duration", b, "CEL rule"))
    b = copy.deepcopy(istio[0])
    b["spec"]["trafficPolicy"]["tls"]["mode"] = "OFF"
    bad.append(("istio enum", b, "OFF"))
    smi = render(os.path.join(FLAGGER, "linkerd-canary.yaml"), "--weight", "10")[0]
    b = copy.deepcopy(smi)
    b["spec"]["backends"][0]["weight"] = [10]
    bad.append(("smi type", b, "weight"))
    for what, obj, needle in bad:
        r = crdcheck.Report(crds, crdcheck.Cel(ROOT))
        r.add(what, obj)
        r.finish()
        msgs = " | ".join(m for _, m in r.errors)
        assert needle in msgs, "%s: not caught (%s)" % (what, msgs or "no error")


# ---- the CLI ----

def write(doc):
    d = tmpdir()
    p = os.path.join(d, "canary.yaml")
    with open(p, "w") as f:
        if isinstance(doc, str):
            f.write(doc)
        else:
            json.dump(doc, f)
    return p


def test_yaml_output_keeps_strings_that_look_like_other_things():
    tricky = ["10", "true", "True", "yes", "on", "off", "null", "~", "", "0x1F", "1e3", "-.inf",
              ".NaN", "2026-01-02", "12:30", "1_000", "0o17", "- a", ": b", "#c", "a: b", "'q'",
              "\"d\"", "[e]", "{f}", "&g", "*h", "!i", "%j", "@k", "`l", "multi\nline", " lead",
              "trail ", "tab\there", "caf\u00e9", "\u2028"]
    ann = {"example.com/k%d" % i: v for i, v in enumerate(tricky)}
    svc = {"port": 80, "apex": {"annotations": ann}, "hosts": ["a.example.com"]}
    p = write(canary("istio", svc))
    vs = render(p, "--weight", "10")[2]  # render() compares YAML and JSON
    for k, v in ann.items():
        assert vs["metadata"]["annotations"][k] == v, (k, v)


def test_render_is_deterministic():
    p = os.path.join(INPUTS, "istio-affinity.yaml")
    a = ctl("render", "-f", p, "--weight", "30", "--cookie", "Q", "-o", "json").stdout
    b = ctl("render", "-f", p, "--weight", "30", "--cookie", "Q", "-o", "json").stdout
    assert a == b


def test_a_missing_cookie_is_drawn_at_random_and_said():
    r = ctl("render", "-f", os.path.join(INPUTS, "istio-affinity.yaml"), "--weight", "10", "-o", "json")
    assert "drawn at random" in r.stderr, r.stderr
    vs = json.loads(r.stdout)["items"][2]
    regex = vs["spec"]["http"][0]["match"][0]["headers"]["Cookie"]["regex"]
    value = regex[len(".*flagger-cookie.*"):-2]
    assert len(value) == 10 and value.isalpha(), regex
    assert "flagger-cookie=%s; Max-Age=21600" % value == \
        vs["spec"]["http"][1]["route"][1]["headers"]["response"]["add"]["Set-Cookie"]


def test_errors_are_clear_and_exit_2():
    istio = os.path.join(FLAGGER, "istio-canary.yaml")
    cases = [
        ((istio,), "needs the traffic split"),
        ((istio, "--weight", "101"), "not a whole number from 0 to 100"),
        ((istio, "--weight", "10", "--iteration"), "needs the traffic split"),
        ((istio, "--iteration"), "has no analysis.iterations"),
        ((istio, "--weight", "10", "-o", "xml"), "not one of yaml, json"),
        ((istio, "--weight", "10", "--provider", "kuma"),
         "provider 'kuma' is Flagger's but canaryd does not render it; the routers canaryd renders: istio"),
        ((istio, "--weight", "10", "--provider", "kubernetes"), "no route object"),
        ((istio, "--weight", "10", "--provider", "isito"), "unknown provider 'isito'"),
        ((istio, "--weight", "10", "--provider", "gatewayapi:v1"), "spec.service.gatewayRefs: required"),
        ((os.path.join(INPUTS, "istio-affinity.yaml"), "--weight", "10", "--cookie", "a;b"),
         "cookie value: must be 1 to 64 letters or digits"),
    ]
    for args, want in cases:
        r = ctl("render", "-f", *args, ok=False)
        assert r.returncode == 2, (args, r.returncode, r.stdout, r.stderr)
        assert want in r.stderr, (args, r.stderr)
        assert r.stdout == "", (args, r.stdout)


def test_a_canary_flagger_would_not_accept_is_refused_with_its_path():
    cases = [
        ({"port": "80"}, "spec.service.port: must be an integer, got a string"),
        ({"port": 80.5}, "spec.service.port: must be a whole number, got 80.5"),
        ({"port": 80, "match": [{"uri": {"exact": "/", "prefix": "/"}}]},
         "spec.service.match[0].uri: exact, prefix and regex are alternatives"),
        ({"port": 80, "trafficPolicy": {"tls": {"mode": "OFF"}}},
         "spec.service.trafficPolicy.tls.mode: must be one of DISABLE, SIMPLE, MUTUAL, ISTIO_MUTUAL, got 'OFF'"),
        ({"port": 80, "retries": {"attempts": 1 << 40}}, "spec.service.retries.attempts: must be an integer from"),
        ({"port": 80, "hosts": "a"}, "spec.service.hosts: must be a list, got a string"),
        ({"port": 80, "delegation": True, "hosts": ["a"]}, "spec.service.delegation: a delegate VirtualService"),
        ({"name": "Bad_Name", "port": 80}, "spec.service.name: 'Bad_Name' cannot name the Services"),
    ]
    for svc, want in cases:
        r = ctl("render", "-f", write(canary("istio", svc)), "--weight", "10", ok=False)
        assert r.returncode == 2 and want in r.stderr, (svc, r.stderr)
    # the Gateway API cannot express a prefix header match: an error, not
    # Flagger's silent "all traffic to the canary"
    ab = canary("gatewayapi:v1", {"port": 80, "gatewayRefs": [{"name": "gw"}]}, iterations=5,
                match=[{"headers": {"x-a": {"prefix": "b"}}}])
    r = ctl("render", "-f", write(ab), "--iteration", ok=False)
    assert r.returncode == 2 and "spec.analysis.match[0].headers.x-a: the Gateway API matches headers by " \
        "exact value or regex only" in r.stderr, r.stderr
    # A/B multiplies the matches of a rule, which a ReplacePrefixMatch
    # rewrite does not allow: an error, not an object the API server refuses
    svc = copy.deepcopy(GATEWAY_SERVICES["prefix-rewrite"])
    r = ctl("render", "-f", write(canary("gatewayapi:v1", svc, **AB)), "--iteration", ok=False)
    assert r.returncode == 2 and "exactly one PathPrefix match, and rule 0 has 2 matches" in r.stderr, r.stderr


def test_notes_say_what_was_read_differently():
    svc = {"port": 80, "gatewayRefs": [{"name": "gw"}], "typo": 1, "match": [{"uri": {"prefix": "/", "suffix": "x"}}]}
    r = ctl("render", "-f", write(canary("gatewayapi", svc)), "--weight", "10", "-o", "json")
    assert "provider 'gatewayapi' read as gatewayapi:v1" in r.stderr, r.stderr
    assert "spec.service.typo: not a field of Flagger's Canary here; left out" in r.stderr, r.stderr
    assert "spec.service.match[0].uri.suffix: not a field" in r.stderr, r.stderr
    route = json.loads(r.stdout)["items"][0]
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]


def test_a_native_document_renders_under_its_own_name():
    doc = """apiVersion: canaryd/v1
kind: Canary
metadata:
  name: shop
spec:
  router: smi
  stable: {revision: v1, endpoints: [127.0.0.1:9001]}
  analysis: {interval: 1s, threshold: 2, stepWeight: 10, maxWeight: 50}
"""
    r = ctl("render", "-f", write(doc), "--weight", "20", "-o", "json")
    ts = json.loads(r.stdout)["items"][0]
    assert ts["metadata"] == {"name": "shop"} and ts["apiVersion"] == "split.smi-spec.io/v1alpha2", ts
    assert ts["spec"] == {"service": "shop", "backends": [{"service": "shop-canary", "weight": 20},
                                                          {"service": "shop-primary", "weight": 80}]}
    assert "read as smi:v1alpha2" in r.stderr
    r = ctl("render", "-f", write(doc.replace("router: smi", "router: builtin\n  listen: 127.0.0.1:8080")),
            "--weight", "20", ok=False)
    assert r.returncode == 2 and "spec.router: 'builtin' has no Kubernetes objects" in r.stderr, r.stderr


run(globals())
