"""The Kubernetes routers (istio, gatewayapi, smi: src/router/router_k8s.c)
driven by canaryd against the test API server (tests/k8s/apiserver.py),
which plays the API, the Deployment controller (driven by the test) and the
Gateway controller (Accepted conditions). Each test runs a real canaryd with
--kubeconfig and follows what it writes: the weights of every step, the
objects validated against the real CRD schemas (crdcheck.py), conflicts,
a missing CRD, 403, token rotation, watches cut with 410, the API down.
No real cluster runs here: docs/kubernetes.md says what this covers.
"""
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "k8s"))
from harness import SLOW, Canaryd, run, tmpdir  # noqa: E402
from fakeapi import FakeAPI, make_pki, write  # noqa: E402
import crdcheck  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
CRDS = os.path.join(os.environ.get("CANARYD_SHARED", os.path.join(ROOT, "..", "shared")),
                    "data", "mesh", "crds")

ADMIN = "tok-admin-1"
SA_USER = "system:serviceaccount:test:canaryd"
NS = "test"
_pki = {}
_open = []


def pki():
    if not _pki:
        d = tmpdir()
        _pki.update(make_pki(d))
        import harness
        harness._tmpdirs.remove(d)
    return _pki


ROUTE_OF = {  # provider -> (group, version, resource, kind) of the route object
    "istio": ("networking.istio.io", "v1beta1", "virtualservices", "VirtualService"),
    "gatewayapi:v1": ("gateway.networking.k8s.io", "v1", "httproutes", "HTTPRoute"),
    "linkerd": ("split.smi-spec.io", "v1alpha1", "trafficsplits", "TrafficSplit"),
    "osm": ("split.smi-spec.io", "v1alpha2", "trafficsplits", "TrafficSplit"),
}


def canary_doc(provider="istio", interval="%dms" % (500 * SLOW), threshold=2, max_weight=30, step=10,
               deadline=60):
    svc = {"port": 9898}
    if provider.startswith("gatewayapi"):
        svc["gatewayRefs"] = [{"name": "public", "namespace": "istio-ingress"}]
        svc["hosts"] = ["app.example.com"]
    doc = {"apiVersion": "flagger.app/v1beta1", "kind": "Canary",
           "metadata": {"name": "podinfo", "namespace": NS},
           "spec": {"provider": provider,
                    "targetRef": {"apiVersion": "apps/v1", "kind": "Deployment",
                                  "name": "podinfo"},
                    "progressDeadlineSeconds": deadline, "service": svc,
                    "analysis": {"interval": interval, "threshold": threshold,
                                 "maxWeight": max_weight, "stepWeight": step}}}
    return json.dumps(doc)  # JSON is YAML


def deployment(image="podinfo:6.0.0"):
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "podinfo", "namespace": NS},
            "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "podinfo"}},
                     "template": {"metadata": {"labels": {"app": "podinfo"}},
                                  "spec": {"containers": [{"name": "podinfo",
                                                           "image": image}]}}}}


class Env:
    """A test API server with the workload, and canaryd writing to it."""

    def __init__(self, provider="istio", tokens=None, user=None, available=True, **kw):
        self.dir = tmpdir()
        self.provider = provider
        self.api = FakeAPI(self.dir, pki(), tokens or {ADMIN: "admin", "tok-sa": SA_USER})
        _open.append(self)
        self.kc = self.api.kubeconfig(os.path.join(self.dir, "kubeconfig"),
                                      user=user or {"token": ADMIN})
        self.api.control(op="put", group="apps", resource="deployments", ns=NS, name="podinfo",
                         object=deployment())
        # what canaryd writes to Deployments becomes available on its own;
        # the test's own changes when it says so (rollout())
        self.api.control(op="deployments", mode="auto", delay=0.05)
        if available:
            self.rollout()
        self.doc = canary_doc(provider, **kw)
        self.d = None

    def start(self, wait=True):
        self.d = Canaryd(self.doc, extra=["--kubeconfig", self.kc], wait=wait)
        return self.d

    def rollout(self, **kw):
        """The Deployment controller: the workload's current generation is
        available (or as <kw> says)."""
        self.api.control(op="rollout", ns=NS, name="podinfo", **kw)

    def set_image(self, image):
        """A user updates the target's pod template (a new generation)."""
        old = self.deploy("podinfo")
        new = deployment(image)
        new["spec"]["replicas"] = old["spec"]["replicas"]
        self.api.control(op="put", group="apps", resource="deployments", ns=NS, name="podinfo",
                         object=new, generation=old["metadata"]["generation"] + 1)

    def deploy(self, name):
        return self.obj("apps", "deployments", name)

    def route_ref(self):
        return ROUTE_OF[self.provider]

    def obj(self, group, resource, name):
        return self.api.control(op="get", group=group, resource=resource, ns=NS,
                                name=name)["object"]

    def route(self):
        g, _v, r, _k = self.route_ref()
        return self.obj(g, r, "podinfo")

    def writes(self, resource=None):
        """The bodies canaryd wrote (POST, PUT), in order."""
        return [e for e in self.api.log() if e["method"] in ("POST", "PUT") and
                (resource is None or "/" + resource in e["path"]) and
                isinstance(e.get("body"), dict) and e.get("status") in (200, 201)]

    def close(self):
        self.api.stop()


def weights_of(obj):
    """(primary, canary) weights of a route object, whatever its kind."""
    k = obj["kind"]
    if k == "VirtualService":
        r = obj["spec"]["http"][0]["route"]
        return (r[0]["weight"], r[1]["weight"])
    if k == "HTTPRoute":
        b = obj["spec"]["rules"][0]["backendRefs"]
        return (b[0]["weight"], b[1]["weight"])
    b = {x["service"]: int(x["weight"]) for x in obj["spec"]["backends"]}
    return (b["podinfo-primary"], b["podinfo-canary"])


def wait_for(what, fn, timeout=20):
    end = time.time() + timeout * SLOW
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("%s: not within %ds (last %r)" % (what, timeout, last))


def applied(d):
    """The status once the router answered every split it was given."""
    s = d.status("podinfo")
    return s if "applying" not in s and "routerError" not in s else None


def distinct(seq):
    out = []
    for x in seq:
        if not out or out[-1] != x:
            out.append(x)
    return out


def image_of(dep):
    return dep["spec"]["template"]["spec"]["containers"][0]["image"]


def initialized(e, d):
    """canaryd took the workload's revision as stable, made the primary and
    the Services, routes 100 % to the primary and scaled the target to 0."""
    s = wait_for("initialised", lambda: (lambda s: s if s["stableRevision"] and
                                         "applying" not in s and "routerError" not in s and
                                         e.deploy("podinfo")["spec"]["replicas"] == 0
                                         else None)(d.status("podinfo")))
    assert s["canaryWeight"] == 0 and s["phase"] == "Initialized", s
    assert s["kubernetes"]["workload"]["revision"] == s["stableRevision"], s
    assert s["kubernetes"]["primary"]["revision"] == s["stableRevision"], s
    p = e.deploy("podinfo-primary")
    assert image_of(p) == "podinfo:6.0.0", p
    assert p["spec"]["selector"]["matchLabels"] == {"app": "podinfo-primary"}, p
    for name, sel in (("podinfo", "podinfo-primary"), ("podinfo-primary", "podinfo-primary"),
                      ("podinfo-canary", "podinfo")):
        svc = e.obj("", "services", name)
        assert svc["spec"]["selector"] == {"app": sel}, svc
        assert svc["spec"]["ports"][0]["port"] == 9898, svc
    assert weights_of(e.route()) == (100, 0), e.route()
    for o in s["kubernetes"]["objects"]:
        assert int(o["resourceVersion"]) > 0 and o["generation"] >= 1, o
    return s


def full_rollout(provider):
    e = Env(provider)
    d = e.start()
    s0 = initialized(e, d)
    e.set_image("podinfo:6.1.0")
    s = wait_for("rollout started", lambda: (lambda s: s if s["canaryRevision"] and
                                             s["canaryRevision"] != s0["stableRevision"]
                                             else None)(d.status("podinfo")))
    rev = s["canaryRevision"]
    s = d.wait_phase("podinfo", "Succeeded", timeout=30)
    s = wait_for("promotion applied", lambda: (lambda s: s if "applying" not in s and
                                               e.deploy("podinfo")["spec"]["replicas"] == 0
                                               else None)(d.status("podinfo")))
    assert s["canaryWeight"] == 0 and s["stableRevision"] == rev, s
    assert "routerError" not in s, s
    # the primary runs the promoted template; the target is scaled to zero
    assert image_of(e.deploy("podinfo-primary")) == "podinfo:6.1.0"
    assert e.deploy("podinfo-primary")["metadata"]["annotations"]["canaryd.io/revision"] == rev
    g, _v, r, _k = e.route_ref()
    ws = distinct(weights_of(w["body"]) for w in e.writes(r))
    assert ws == [(100, 0), (90, 10), (80, 20), (70, 30), (100, 0)], ws
    # the primary had the new template before the route went back to it
    log = [w for w in e.writes() if w["method"] == "PUT"]
    promote = [i for i, w in enumerate(log) if w["body"]["kind"] == "Deployment" and
               w["body"]["metadata"]["name"] == "podinfo-primary"]
    back = [i for i, w in enumerate(log) if w["body"]["kind"] == e.route_ref()[3] and
            weights_of(w["body"]) == (100, 0)]
    assert promote and back and promote[-1] < back[-1], (promote, back)
    types = [(x["type"], x.get("actor")) for x in d.events("podinfo")]
    assert ("revision", "router") in types and ("router-write", "router") in types, types
    check_crds(e.writes())
    return e, d


def check_crds(writes):
    """Every route object written is what the real CRDs accept (schemas and
    CEL rules, crdcheck.py), as sent less what the server filled in."""
    report = crdcheck.Report(crdcheck.CRDs(CRDS), crdcheck.Cel(ROOT))
    n = 0
    for i, w in enumerate(writes):
        b = w["body"]
        assert "kind" in b, w
        if b["kind"] not in ("VirtualService", "DestinationRule", "HTTPRoute", "TrafficSplit"):
            continue
        m = {k: v for k, v in b["metadata"].items() if k in ("name", "namespace", "labels",
                                                             "annotations")}
        report.add("%s #%d" % (b["kind"], i), {"apiVersion": b["apiVersion"], "kind": b["kind"],
                                               "metadata": m, "spec": b["spec"]})
        n += 1
    report.finish()
    assert n > 0 and not report.errors, report.errors[:20]


def test_istio_full_rollout_writes_every_step():
    e, d = full_rollout("istio")
    # the two DestinationRules are there, written once (nothing in them moves)
    drs = e.writes("destinationrules")
    assert sorted(w["body"]["metadata"]["name"] for w in drs) == \
        ["podinfo-canary", "podinfo-primary"], drs


def test_gatewayapi_full_rollout_writes_every_step():
    full_rollout("gatewayapi:v1")


def test_linkerd_full_rollout_writes_string_weights():
    e, d = full_rollout("linkerd")
    tsw = e.writes("trafficsplits")[-1]["body"]
    assert all(isinstance(b["weight"], str) for b in tsw["spec"]["backends"]), tsw


def test_osm_full_rollout():
    full_rollout("osm")


def _cleanup():
    while _open:
        try:
            _open.pop().close()
        except Exception:  # noqa: BLE001
            pass
    if _pki:
        shutil.rmtree(os.path.dirname(_pki["ca.crt"]), ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(run(globals()))
    finally:
        _cleanup()
