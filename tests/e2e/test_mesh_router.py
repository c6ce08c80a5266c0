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
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "k8s"))
from harness import BUILD, SLOW, Canaryd, free_port, run, tmpdir  # noqa: E402
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
    "smi:v1alpha2:osm": ("split.smi-spec.io", "v1alpha2", "trafficsplits", "TrafficSplit"),
}


def canary_doc(provider="istio", interval="%dms" % (250 * SLOW), threshold=2, max_weight=30, step=10,
               deadline=60, analysis=None):
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
    if analysis:  # iterations instead of steps (A/B testing, blue/green)
        a = doc["spec"]["analysis"]
        del a["maxWeight"], a["stepWeight"]
        a.update(analysis)
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
        _cleanup(keep_pki=True)  # the previous test's server is done with
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
    _written.extend(e.writes())
    return e, d


_written = []  # what the full rollouts wrote, checked at the end in one batch


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
    return n


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


def started(e, d, s0):
    """Waits until the rollout of the new template has started."""
    return wait_for("rollout started", lambda: (lambda s: s if s["canaryRevision"] and
                                                s["canaryRevision"] != s0["stableRevision"]
                                                else None)(d.status("podinfo")))


def route_weights(e):
    g, _v, r, _k = e.route_ref()
    return distinct(weights_of(w["body"]) for w in e.writes(r))


def test_rollback_when_the_canary_never_becomes_available():
    e = Env("istio", deadline=1, interval="%dms" % (2000 * SLOW))
    d = e.start()
    s0 = initialized(e, d)
    # the new pods never become available: the Deployment controller waits
    e.api.control(op="deployments", mode="manual")
    e.set_image("podinfo:6.1.0-broken")
    started(e, d, s0)
    s = d.wait_phase("podinfo", "Failed", timeout=30)
    s = wait_for("rollback applied", lambda: (lambda s: s if "applying" not in s and
                                              e.deploy("podinfo")["spec"]["replicas"] == 0
                                              else None)(d.status("podinfo")))
    assert s["stableRevision"] == s0["stableRevision"] and s["canaryWeight"] == 0, s
    assert weights_of(e.route()) == (100, 0), e.route()
    # the primary kept the stable template: nothing was promoted
    p = e.deploy("podinfo-primary")
    assert image_of(p) == "podinfo:6.0.0", p
    assert p["metadata"]["annotations"]["canaryd.io/revision"] == s0["stableRevision"], p
    assert s["kubernetes"]["workload"]["available"] is False, s
    # the same template is not rolled out again (after a restart either)
    d.stop()
    d = Canaryd(e.doc, extra=["--kubeconfig", e.kc], data_dir=d.data_dir)
    time.sleep(1.5 * SLOW)
    s = d.status("podinfo")
    assert s["phase"] == "Failed", s


def test_abort_rolls_back_and_scales_the_canary_to_zero():
    e = Env("linkerd", interval="%dms" % (2000 * SLOW))
    d = e.start()
    s0 = initialized(e, d)
    e.set_image("podinfo:6.1.0")
    started(e, d, s0)
    wait_for("first step", lambda: weights_of(e.route()) == (90, 10))
    rc, out, err = d.ctl("abort", "podinfo")
    assert rc == 0, (rc, out, err)
    wait_for("rolled back", lambda: weights_of(e.route()) == (100, 0) and
             e.deploy("podinfo")["spec"]["replicas"] == 0)
    assert image_of(e.deploy("podinfo-primary")) == "podinfo:6.0.0"


def test_a_conflicting_writer_is_retried_from_a_fresh_get():
    e = Env("istio")
    # every PUT of the VirtualService meets another writer twice first
    e.api.control(op="fault", fault={"action": "conflict", "method": "PUT",
                                     "path": "virtualservices/podinfo$", "times": 6})
    d = e.start()
    s0 = initialized(e, d)
    e.set_image("podinfo:6.1.0")
    d.wait_phase("podinfo", "Succeeded", timeout=30)
    wait_for("promotion applied", lambda: applied(d) and weights_of(e.route()) == (100, 0))
    puts = [x for x in e.api.log() if x["method"] == "PUT" and
            x["path"].endswith("virtualservices/podinfo")]
    assert [x["status"] for x in puts].count(409) == 6, [x["status"] for x in puts]
    assert route_weights(e) == [(100, 0), (90, 10), (80, 20), (70, 30), (100, 0)], \
        route_weights(e)
    # the other writer's annotation is kept: canaryd writes the spec
    vs = e.route()
    assert "fake.canaryd.io/other-writer" in vs["metadata"]["annotations"], vs
    assert "routerError" not in d.status("podinfo")


def test_a_route_edited_by_hand_is_written_back():
    e = Env("gatewayapi:v1")
    d = e.start()
    initialized(e, d)
    rt = e.route()
    rt["spec"]["rules"][0]["backendRefs"][1]["weight"] = 50
    rt["metadata"].pop("managedFields", None)
    e.api.control(op="put", group="gateway.networking.k8s.io", resource="httproutes", ns=NS,
                  name="podinfo", object=rt)
    wait_for("written back", lambda: weights_of(e.route()) == (100, 0))
    assert "changed outside canaryd" in d.output()


def test_missing_crd_is_reported_then_healed():
    e = Env("istio")
    e.api.control(op="uninstall", group="networking.istio.io")
    d = e.start()
    s = wait_for("router error", lambda: (lambda s: s if "routerError" in s else None)(
        d.status("podinfo")))
    assert s["routerError"] == ("Istio is not installed (no networking.istio.io/v1beta1 in "
                                "the API)"), s
    assert s["appliedGeneration"] == 0 and s["canaryWeight"] == 0, s
    e.api.control(op="install", group="networking.istio.io")
    s = wait_for("healed", lambda: applied(d))
    assert weights_of(e.route()) == (100, 0), e.route()


def test_forbidden_names_the_rbac_rule_then_heals():
    e = Env("gatewayapi:v1", user={"token": "tok-sa"})
    e.api.control(op="rules", user=SA_USER, rules=[
        {"verbs": ["get", "list", "watch"], "apiGroups": ["*"], "resources": ["*"]},
        {"verbs": ["create", "update"], "apiGroups": ["", "apps"], "resources": ["*"]}])
    d = e.start()
    s = wait_for("router error", lambda: (lambda s: s if "routerError" in s else None)(
        d.status("podinfo")))
    err = s["routerError"]
    assert "forbidden (403)" in err, err
    assert ('canaryd needs an RBAC rule {apiGroups: ["gateway.networking.k8s.io"], resources: '
            '["httproutes"], verbs: ["create"]}') in err, err
    e.api.control(op="rules", user=SA_USER, rules=None)
    wait_for("healed", lambda: applied(d) and weights_of(e.route()) == (100, 0))


def test_token_rotation_mid_rollout():
    e = Env("istio", tokens={"tok-A": SA_USER, "tok-B": SA_USER},
            interval="%dms" % (600 * SLOW))
    tok = os.path.join(e.dir, "token")
    write(tok, "tok-A\n")
    e.kc = e.api.kubeconfig(os.path.join(e.dir, "kc-file"), user={"tokenFile": tok})
    d = e.start()
    s0 = initialized(e, d)
    e.set_image("podinfo:6.1.0")
    started(e, d, s0)
    wait_for("first step", lambda: weights_of(e.route()) == (90, 10))
    # the token rotates and the old one is revoked at once: a 401, the file
    # read again, the request made again
    write(tok, "tok-B\n")
    e.api.control(op="tokens", tokens={"tok-B": SA_USER})
    d.wait_phase("podinfo", "Succeeded", timeout=30)
    wait_for("promotion applied", lambda: applied(d) and weights_of(e.route()) == (100, 0))
    assert route_weights(e) == [(100, 0), (90, 10), (80, 20), (70, 30), (100, 0)], \
        route_weights(e)
    auths = [x["auth"] for x in e.api.log() if x["method"] == "PUT"]
    assert auths[-1] == "bearer:tok-B", auths


def test_watch_410_mid_rollout_relists_and_follows_the_template():
    e = Env("smi:v1alpha2:osm", interval="%dms" % (500 * SLOW))
    d = e.start()
    s0 = initialized(e, d)
    e.set_image("podinfo:6.1.0")
    s1 = started(e, d, s0)
    # history compacted and every watch ended: they resume from a version
    # that is gone (410) and must list again
    e.api.control(op="compact")
    e.api.control(op="expire_watches")
    d.wait_phase("podinfo", "Succeeded", timeout=30)
    wait_for("promoted", lambda: applied(d) and e.deploy("podinfo")["spec"]["replicas"] == 0)
    # the relisted watch still sees the next template
    e.set_image("podinfo:6.2.0")
    s2 = wait_for("next rollout", lambda: (lambda s: s if s["canaryRevision"] not in
                                           (s1["canaryRevision"],) and s["canaryRevision"]
                                           else None)(d.status("podinfo")))
    assert s2["stableRevision"] == s1["canaryRevision"], s2
    log = e.api.log()
    relists = [x for x in log if x["method"] == "GET" and "deployments" in x["path"] and
               "watch" not in x["query"]]
    assert len(relists) >= 2, relists


def test_api_down_then_back_status_follows_the_api():
    e = Env("istio", interval="%dms" % (1500 * SLOW))
    d = e.start()
    s0 = initialized(e, d)
    e.set_image("podinfo:6.1.0")
    started(e, d, s0)
    wait_for("first step", lambda: weights_of(e.route()) == (90, 10) and applied(d))
    # the API goes down: every request is cut
    e.api.control(op="fault", fault={"action": "reset", "times": 100000})
    s = wait_for("router error", lambda: (lambda s: s if "routerError" in s else None)(
        d.status("podinfo")))
    # status says what traffic does: the split the API last took (and the
    # one being applied, while a retry is in flight); the analysis waits
    assert s["canaryWeight"] == 10 and s.get("applying", {"canaryWeight": 20})[
        "canaryWeight"] == 20, s
    assert "cannot" in s["routerError"], s
    time.sleep(1.0 * SLOW)
    s = d.status("podinfo")
    assert s["canaryWeight"] == 10 and s["phase"] == "Progressing", s
    e.api.control(op="clear_faults")
    d.wait_phase("podinfo", "Succeeded", timeout=40)
    wait_for("promotion applied", lambda: applied(d) and weights_of(e.route()) == (100, 0))
    ws = route_weights(e)
    assert ws[:2] == [(100, 0), (90, 10)] and ws[-1] == (100, 0), ws
    assert all(w[1] in (0, 10, 20, 30) for w in ws), ws


def test_httproute_not_accepted_holds_the_step():
    e = Env("gatewayapi:v1", interval="%dms" % (300 * SLOW))
    d = e.start()
    s0 = initialized(e, d)
    # the gateway stops reading routes: a new generation is never Accepted
    e.api.control(op="gateway", mode="off")
    e.set_image("podinfo:6.1.0")
    started(e, d, s0)
    wait_for("first step", lambda: weights_of(e.route()) == (90, 10))
    time.sleep(1.5 * SLOW)
    s = d.status("podinfo")
    assert s["phase"] == "Progressing" and weights_of(e.route()) == (90, 10), s
    assert s["kubernetes"]["route"]["accepted"] is False and not s["canaryReady"], s
    e.api.control(op="gateway", mode="accept")
    # the next write is Accepted: a status for the current generation
    g = e.route()
    g["metadata"].pop("managedFields", None)
    e.api.control(op="status", group="gateway.networking.k8s.io", resource="httproutes", ns=NS,
                  name="podinfo", status={"parents": [{
                      "parentRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                    "namespace": "istio-ingress", "name": "public"},
                      "controllerName": "example.net/fake-gateway-controller",
                      "conditions": [{"type": "Accepted", "status": "True",
                                      "reason": "Accepted", "message": "",
                                      "observedGeneration": g["metadata"]["generation"],
                                      "lastTransitionTime": "2026-01-01T00:00:00Z"}]}]})
    d.wait_phase("podinfo", "Succeeded", timeout=30)
    assert route_weights(e) == [(100, 0), (90, 10), (80, 20), (70, 30), (100, 0)], \
        route_weights(e)


# ---- A/B testing and blue/green with mirror: Flagger's routes per phase ----

AB = {"iterations": 2, "match": [{"headers": {"x-canary": {"exact": "insider"}}}]}


def rendered_spec(e, d, *split):
    """The route object's spec `canaryctl render` gives for the document."""
    r = subprocess.run([os.path.join(BUILD, "canaryctl"), "render", "-f", d.config_path,
                        "-o", "json"] + list(split), capture_output=True, text=True,
                       timeout=30 * SLOW)
    assert r.returncode == 0, r
    kind = e.route_ref()[3]
    return [o for o in json.loads(r.stdout)["items"] if o["kind"] == kind][0]["spec"]


def route_specs(e):
    """The route's specs as written, in order, repeats folded."""
    return distinct(w["body"]["spec"] for w in e.writes(e.route_ref()[2]))


def iterations_rollout(provider, analysis):
    """A rollout of a new template through its iterations to promotion:
    the route is what `canaryctl render` gives when idle (--weight 0), at
    each iteration (--iteration), and after the promotion (idle again)."""
    e = Env(provider, analysis=analysis)
    d = e.start()
    s0 = initialized(e, d)
    idle, it = rendered_spec(e, d, "--weight", "0"), rendered_spec(e, d, "--iteration")
    assert idle != it
    e.set_image("podinfo:6.1.0")
    rev = started(e, d, s0)["canaryRevision"]
    d.wait_phase("podinfo", "Succeeded", timeout=30)
    s = wait_for("promotion applied", lambda: (lambda s: s if "applying" not in s and
                                               e.deploy("podinfo")["spec"]["replicas"] == 0
                                               else None)(d.status("podinfo")))
    assert s["stableRevision"] == rev and "routerError" not in s, s
    assert image_of(e.deploy("podinfo-primary")) == "podinfo:6.1.0"
    assert route_specs(e) == [idle, it, idle], route_specs(e)
    # the primary had the new template before the route went back to it
    log = [w for w in e.writes() if w["method"] == "PUT"]
    promote = [i for i, w in enumerate(log) if w["body"]["kind"] == "Deployment" and
               w["body"]["metadata"]["name"] == "podinfo-primary"]
    back = [i for i, w in enumerate(log) if w["body"]["kind"] == e.route_ref()[3]]
    assert promote and back and promote[-1] < back[-1], (promote, back)
    _written.extend(e.writes())
    return e, d, it


def test_istio_ab_test_routes_the_match_to_the_canary_then_promotes():
    e, d, it = iterations_rollout("istio", AB)
    # during the iterations: the matched requests all to the canary, the
    # rest to the primary (Flagger's runAB); after: the match to the primary
    assert it["http"][0]["match"] == [{"headers": {"x-canary": {"exact": "insider"}}}], it
    assert weights_of(e.route()) == (100, 0) and e.route()["spec"]["http"][1]["route"] == [
        {"destination": {"host": "podinfo-primary"}, "weight": 100}], e.route()
    msgs = [x.get("message", "") for x in d.events("podinfo") if x["type"] == "router-write"]
    assert any("canary weight 100 on the A/B match" in m for m in msgs), msgs


def test_gatewayapi_ab_test_routes_the_match_to_the_canary_then_promotes():
    e, d, it = iterations_rollout("gatewayapi:v1", AB)
    assert [b["weight"] for b in it["rules"][0]["backendRefs"]] == [0, 100], it
    assert weights_of(e.route()) == (100, 0), e.route()


def test_istio_blue_green_mirrors_during_the_iterations_only():
    e, d, it = iterations_rollout("istio", {"iterations": 2, "mirror": True,
                                            "mirrorWeight": 50})
    assert it["http"][0]["mirror"] == {"host": "podinfo-canary"}, it
    assert it["http"][0]["mirrorPercentage"] == {"value": 50}, it
    assert "mirror" not in e.route()["spec"]["http"][0], e.route()


def test_ab_test_rolled_back_sends_the_match_back_to_the_primary():
    e = Env("istio", interval="%dms" % (2000 * SLOW), analysis=AB)
    d = e.start()
    s0 = initialized(e, d)
    idle, it = rendered_spec(e, d, "--weight", "0"), rendered_spec(e, d, "--iteration")
    e.set_image("podinfo:6.1.0")
    started(e, d, s0)
    wait_for("A/B route", lambda: e.route()["spec"] == it)
    rc, out, err = d.ctl("abort", "podinfo")
    assert rc == 0, (rc, out, err)
    wait_for("rolled back", lambda: e.route()["spec"] == idle and
             e.deploy("podinfo")["spec"]["replicas"] == 0)
    assert image_of(e.deploy("podinfo-primary")) == "podinfo:6.0.0"
    assert route_specs(e) == [idle, it, idle], route_specs(e)


def test_reload_to_another_mesh_and_a_refused_one():
    e = Env("istio")
    d = e.start()
    initialized(e, d)
    # the same Canary on Linkerd: another router kind, opened on reload
    with open(d.config_path, "w") as f:
        f.write(canary_doc("linkerd"))
    d.kill(signal.SIGHUP)
    wait_for("TrafficSplit written", lambda: e.obj("split.smi-spec.io", "trafficsplits",
                                                   "podinfo"))
    s = wait_for("applied", lambda: applied(d))
    assert s["router"] == "linkerd", s
    assert weights_of(e.obj("split.smi-spec.io", "trafficsplits", "podinfo")) == (100, 0)
    # a Canary the router cannot drive: the running configuration stays
    doc = json.loads(canary_doc("linkerd"))
    doc["spec"]["analysis"]["mirror"] = True
    with open(d.config_path, "w") as f:
        f.write(json.dumps(doc))
    d.kill(signal.SIGHUP)
    wait_for("refused", lambda: "spec.analysis.mirror" in d.output())
    assert d.status("podinfo")["router"] == "linkerd"


def test_without_an_api_a_mesh_canary_is_refused_at_start():
    d = tmpdir()
    path = os.path.join(d, "c.yaml")
    with open(path, "w") as f:
        f.write(canary_doc("istio"))
    env = dict(os.environ)
    env.pop("KUBERNETES_SERVICE_HOST", None)
    r = subprocess.run([os.path.join(BUILD, "canaryd"), "-c", path, "--data-dir",
                        os.path.join(d, "data"), "--admin", "127.0.0.1:%d" % free_port()],
                       capture_output=True, text=True, timeout=30 * SLOW, env=env)
    assert r.returncode == 1, r
    assert r.stderr.strip().splitlines()[-1] == (
        "canaryd: canary 'podinfo': router 'istio': no Kubernetes API to write to: give "
        "--kubeconfig FILE, or run in a cluster (KUBERNETES_SERVICE_HOST is not set)"), r.stderr
    r = subprocess.run([os.path.join(BUILD, "canaryd"), "--check", "-c", path],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 0, r


def test_what_a_mesh_router_cannot_drive_is_refused_at_start():
    e = Env("istio")
    d = tmpdir()
    native = ("apiVersion: canaryd/v1\nkind: Canary\nmetadata: {name: web}\nspec:\n"
              "  router: istio\n  stable: {revision: v1, endpoints: ['127.0.0.1:9001']}\n"
              "  analysis: {interval: 1s, threshold: 1, stepWeight: 10}\n")
    doc = json.loads(canary_doc("istio"))
    doc["spec"]["targetRef"]["kind"] = "DaemonSet"
    # A/B and mirror where the routes cannot carry them as Flagger does
    ab_smi = canary_doc("linkerd", analysis=AB)
    ab_steps = json.loads(canary_doc("istio"))
    ab_steps["spec"]["analysis"]["match"] = AB["match"]
    mirror_steps = json.loads(canary_doc("istio"))
    mirror_steps["spec"]["analysis"]["mirror"] = True
    ab_mirror = canary_doc("istio", analysis=dict(AB, mirror=True))
    for text, want in ((ab_smi, "canaryd: canary 'podinfo': spec.analysis.match: router "
                        "'linkerd' cannot run an A/B test: an SMI TrafficSplit has weights "
                        "only (use istio or gatewayapi)"),
                       (json.dumps(ab_steps), "canaryd: canary 'podinfo': spec.analysis.match: "
                        "router 'istio' runs A/B tests during analysis.iterations only"),
                       (json.dumps(mirror_steps), "canaryd: canary 'podinfo': "
                        "spec.analysis.mirror: router 'istio' mirrors traffic during "
                        "analysis.iterations only"),
                       (ab_mirror, "canaryd: canary 'podinfo': spec.analysis.mirror: router "
                        "'istio' does not mirror an A/B test"),
                       (native, "canaryd: canary 'web': router 'istio' drives Kubernetes "
                        "workloads: it needs a Flagger Canary (apiVersion flagger.app/v1beta1) "
                        "whose spec.targetRef names the Deployment"),
                       (json.dumps(doc), "canaryd: canary 'podinfo': spec.targetRef.kind "
                        "'DaemonSet': router 'istio' drives Deployments only (Flagger also "
                        "drives DaemonSets and Services)")):
        path = os.path.join(d, "c.yaml")
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([os.path.join(BUILD, "canaryd"), "-c", path, "--kubeconfig", e.kc,
                            "--data-dir", os.path.join(d, "data"), "--admin",
                            "127.0.0.1:%d" % free_port()],
                           capture_output=True, text=True, timeout=30 * SLOW)
        # refused before anything opens (exit 2), naming where the canary is
        assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith(want), r.stderr
        assert not os.path.exists(os.path.join(d, "data")), "a database was made"


def test_providers_map_onto_the_routers():
    """Flagger's providers: which router drives each, and which are refused."""
    d = tmpdir()
    cases = {"istio": "istio", "linkerd": "smi", "osm": "smi", "smi:v1alpha1:linkerd": "smi",
             "gatewayapi:v1": "gatewayapi", "gatewayapi:v1beta1": "gatewayapi",
             "gatewayapi": "gatewayapi", "kubernetes": None, "appmesh": None, "contour": None}
    kc = os.path.join(d, "kc")
    with open(kc, "w") as f:  # a server that is never reached
        json.dump({"apiVersion": "v1", "kind": "Config", "current-context": "x",
                   "clusters": [{"name": "x", "cluster": {"server": "https://127.0.0.1:9"}}],
                   "users": [{"name": "x", "user": {"token": "t"}}],
                   "contexts": [{"name": "x", "context": {"cluster": "x", "user": "x"}}]}, f)
    for provider, router in cases.items():
        path = os.path.join(d, "c.yaml")
        with open(path, "w") as f:
            f.write(canary_doc(provider))
        c = Canaryd(config_path=path, extra=["--kubeconfig", kc], wait=False)
        if router is None:
            rc = c.p.wait(30 * SLOW)
            out = c.output()
            # refused before anything opens, in one line naming what works
            assert rc == 2, (provider, out)
            assert ("'%s' is not one canaryd drives" % provider in out and
                    "'builtin', 'haproxy', 'istio', 'gatewayapi', 'smi'" in out), out
            assert len(out.strip().splitlines()) == 1, out
            continue
        c.wait_ready()
        s = c.status("podinfo")
        assert s["router"] == provider and "kubernetes" in s, (provider, s)
        if provider == "gatewayapi":
            assert "read as gatewayapi:v1" in c.output(), c.output()
        c.stop()


def test_every_object_written_passes_the_crd_schemas_and_cel_rules():
    if not _written:  # run alone
        full_rollout("gatewayapi:v1")
    kinds = {w["body"]["kind"] + " " + w["body"]["apiVersion"] for w in _written}
    n = check_crds(_written)
    print("  %d route objects written, validated: %s" % (n, sorted(kinds)), flush=True)


def _cleanup(keep_pki=False):
    while _open:
        try:
            _open.pop().close()
        except Exception:  # noqa: BLE001
            pass
    if _pki and not keep_pki:
        shutil.rmtree(os.path.dirname(_pki["ca.crt"]), ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(run(globals()))
    finally:
        _cleanup()
