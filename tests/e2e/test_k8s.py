"""canaryd's Kubernetes client (src/k8s.h, driven by canaryd-k8sctl) against
the test API server (tests/k8s/apiserver.py) over TLS: credentials and their
rotation, every write, conflicts, watches that resume and relist, what the
API says when it refuses, faults, readiness; and the test server itself held
to Debian's official python3-kubernetes client, which must see the same
results. No real cluster runs here: docs/kubernetes.md says what this covers.
"""
import copy
import json
import os
import shutil
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "k8s"))
from harness import BUILD, SLOW, run, tmpdir  # noqa: E402
from fakeapi import FakeAPI, K8sctlStream, b64file, k8sctl, make_pki, pyk8s, write  # noqa: E402

ADMIN = "tok-admin-1"
SA_USER = "system:serviceaccount:test:canaryd"
ISTIO = "networking.istio.io/v1"
GW = "gateway.networking.k8s.io/v1"
_pki = {}


def pki():
    """One PKI for the whole file (openssl takes a moment)."""
    if not _pki:
        d = tmpdir()
        _pki.update(make_pki(d))
        # tmpdir() is removed after each test: keep this one
        import harness
        harness._tmpdirs.remove(d)
    return _pki


class Env:
    """A fresh API server and a kubeconfig for it."""

    def __init__(self, tokens=None, user=None):
        self.dir = tmpdir()
        self.api = FakeAPI(self.dir, pki(), tokens or {ADMIN: "admin", "tok-sa": SA_USER})
        self.kc = self.api.kubeconfig(os.path.join(self.dir, "kubeconfig"),
                                      user=user or {"token": ADMIN})

    def file(self, name, obj):
        path = os.path.join(self.dir, name)
        with open(path, "w") as f:
            json.dump(obj, f)
        return path

    def ctl(self, *args, kc=None, timeout=30, env=None):
        return k8sctl(BUILD, ["--kubeconfig", kc or self.kc] + list(args), timeout=timeout,
                      env=env)

    def one(self, *args, **kw):
        """Runs one operation; returns (exit status, its JSON result)."""
        rc, out, err = self.ctl(*args, **kw)
        assert len(out) == 1, (rc, out, err)
        return rc, out[0]

    def stream(self, *args, kc=None):
        return K8sctlStream(BUILD, ["--kubeconfig", kc or self.kc] + list(args))

    def requests(self, method=None, path=None):
        return [e for e in self.api.log() if (method is None or e["method"] == method) and
                (path is None or path in e["path"])]

    def close(self):
        self.api.stop()


def env(**kw):
    e = Env(**kw)
    _open.append(e)
    return e


_open = []


def vs(name="podinfo", hosts=("podinfo",), weight=10):
    return {"apiVersion": ISTIO, "kind": "VirtualService", "metadata": {"name": name},
            "spec": {"hosts": list(hosts), "gateways": ["mesh"],
                     "http": [{"route": [
                         {"destination": {"host": name + "-primary"}, "weight": 100 - weight},
                         {"destination": {"host": name + "-canary"}, "weight": weight}]}]}}


def route(name="podinfo", weight=10, hostnames=("app.example.com",)):
    return {"apiVersion": GW, "kind": "HTTPRoute", "metadata": {"name": name},
            "spec": {"parentRefs": [{"name": "public", "namespace": "istio-ingress"}],
                     "hostnames": list(hostnames),
                     "rules": [{"backendRefs": [
                         {"name": name + "-primary", "port": 9898, "weight": 100 - weight},
                         {"name": name + "-canary", "port": 9898, "weight": weight}]}]}}


def assert_in(needle, hay):
    assert needle in hay, "%r not in %r" % (needle, hay)


# ---- credentials ------------------------------------------------------------------------


def test_kubeconfig_token_over_tls_writes_and_reads():
    e = env()
    try:
        f = e.file("vs.json", vs())
        rc, r = e.one("create", ISTIO, "virtualservices", "podinfo", "-f", f)
        assert rc == 0 and r["ok"] and r["status"] == 201, r
        assert r["object"]["metadata"]["generation"] == 1
        rc, r = e.one("get", ISTIO, "virtualservices", "podinfo")
        assert rc == 0 and r["object"]["spec"]["hosts"] == ["podinfo"], r
        rc, r = e.one("get", ISTIO, "virtualservices")
        assert [i["metadata"]["name"] for i in r["object"]["items"]] == ["podinfo"], r
        rc, r = e.one("discover", ISTIO, "virtualservices")
        assert rc == 0 and r["ok"], r
        post = e.requests("POST")[0]
        assert post["auth"] == "bearer:" + ADMIN and post["user"] == "admin", post
        # every write is strict and names canaryd as its field manager
        assert post["query"] == {"fieldManager": "canaryd", "fieldValidation": "Strict"}, post
        assert post["ua"] == "canaryd" and post["ctype"] == "application/json", post
        assert all(x["path"].startswith("/apis/networking.istio.io/v1/namespaces/test/")
                   for x in e.requests("GET", "virtualservices")), e.requests()
    finally:
        e.close()


def test_a_server_signed_by_another_ca_is_refused():
    e = env()
    try:
        kc = e.api.kubeconfig(os.path.join(e.dir, "kc-other"), user={"token": ADMIN},
                              ca=pki()["other-ca.crt"])
        rc, r = e.one("get", ISTIO, "virtualservices", "podinfo", kc=kc)
        assert rc == 1 and not r["ok"], r
        assert_in("SSL certificate problem", r["error"])
        assert_in("cannot get virtualservices.networking.istio.io 'podinfo' in namespace 'test'",
                  r["error"])
        assert e.requests() == [], "a request went through: %s" % e.requests()
    finally:
        e.close()


def test_client_certificate_is_the_identity_and_a_rogue_one_is_refused():
    e = env()
    try:
        p = pki()
        kc = e.api.kubeconfig(os.path.join(e.dir, "kc-cert"), user={
            "client-certificate-data": b64file(p["client.crt"]),
            "client-key-data": b64file(p["client.key"])})
        rc, r = e.one("create", ISTIO, "virtualservices", "podinfo", "-f", e.file("v", vs()),
                      kc=kc)
        assert rc == 0, r
        post = e.requests("POST")[0]
        assert post["auth"] == "cert" and post["user"] == "alice", post
        # files next to the kubeconfig, named relative to it
        kc2 = os.path.join(e.dir, "kc-files")
        e.api.kubeconfig(kc2, user={"client-certificate": os.path.relpath(p["rogue.crt"], e.dir),
                                    "client-key": os.path.relpath(p["rogue.key"], e.dir)})
        rc, r = e.one("get", ISTIO, "virtualservices", "podinfo", kc=kc2)
        assert rc == 1 and not r["ok"], r
        assert "alice" not in [x["user"] for x in e.requests()[1:]]
    finally:
        e.close()


def in_cluster(e, sa, *args, reload_ms=None, stream=False):
    env_vars = {"KUBERNETES_SERVICE_HOST": "127.0.0.1",
                "KUBERNETES_SERVICE_PORT": str(e.api.port)}
    argv = ["--in-cluster", "--sa-dir", sa]
    if reload_ms:
        argv += ["--token-reload-ms", str(reload_ms)]
    argv += list(args)
    if stream:
        return K8sctlStream(BUILD, argv, env=env_vars)
    return k8sctl(BUILD, argv, env=env_vars)


def test_in_cluster_reads_the_rotated_token_again():
    # both tokens valid while the file changes: no 401 at all, the new token
    # in use once the copy in memory is older than the reload interval
    e = env(tokens={"tok-A": SA_USER, "tok-B": SA_USER})
    try:
        e.api.control(op="put", group="networking.istio.io", resource="virtualservices",
                      ns="test", name="podinfo", object=vs())
        sa = e.api.sa_dir(os.path.join(e.dir, "sa"), "tok-A\n")
        s = in_cluster(e, sa, "--repeat", "8", "--every", "250", "get", ISTIO, "virtualservices",
                       "podinfo", reload_ms=300, stream=True)
        try:
            s.wait_for(lambda x: "ok" in x, what="a first answer")
            write(os.path.join(sa, "token"), "tok-B\n")
            rc, err = s.finish(timeout=30)
        finally:
            s.stop()
        assert rc == 0 and len(s.lines) == 8 and all(x["ok"] for x in s.lines), s.lines
        auths = [x["auth"] for x in e.requests("GET")]
        assert auths[0] == "bearer:tok-A" and auths[-1] == "bearer:tok-B", auths
        assert all(x["status"] == 200 for x in e.requests()), e.requests()
    finally:
        e.close()


def test_a_401_rereads_the_token_at_once_and_retries():
    e = env(tokens={"tok-A": SA_USER})
    try:
        e.api.control(op="put", group="networking.istio.io", resource="virtualservices",
                      ns="test", name="podinfo", object=vs())
        sa = e.api.sa_dir(os.path.join(e.dir, "sa"), "tok-A")
        s = in_cluster(e, sa, "--repeat", "4", "--every", "200", "get", ISTIO, "virtualservices",
                       "podinfo", reload_ms=600000, stream=True)
        try:
            s.wait_for(lambda x: "ok" in x, what="a first answer")
            # the file gets the new token (not read: the reload interval is
            # long), then the old one is revoked
            write(os.path.join(sa, "token"), "tok-B")
            e.api.control(op="tokens", tokens={"tok-B": SA_USER})
            rc, err = s.finish(timeout=30)
        finally:
            s.stop()
        assert rc == 0 and len(s.lines) == 4 and all(x["ok"] for x in s.lines), s.lines
        seen = [(x["auth"], x["status"]) for x in e.requests("GET")]
        assert seen[0] == ("bearer:tok-A", 200), seen
        assert ("bearer:tok-A", 401) in seen and seen[-1] == ("bearer:tok-B", 200), seen
        assert sum(1 for x in seen if x[1] == 401) == 1, seen
    finally:
        e.close()


def test_a_refused_token_is_401_with_where_it_came_from():
    e = env(tokens={"tok-good": SA_USER})
    try:
        sa = e.api.sa_dir(os.path.join(e.dir, "sa"), "tok-revoked")
        rc, out, err = in_cluster(e, sa, "get", ISTIO, "virtualservices", "podinfo")
        assert rc == 1 and len(out) == 1, (out, err)
        assert_in("unauthorized (401)", out[0]["error"])
        assert_in("credentials from in-cluster, the token file read again", out[0]["error"])
        # re-read once, not sent again with the same token
        assert len(e.requests()) == 1, e.requests()
        rc, out, err = k8sctl(BUILD, ["--in-cluster", "--sa-dir", sa, "get", ISTIO,
                                      "virtualservices"],
                              env={"KUBERNETES_SERVICE_HOST": ""})
        assert rc == 1 and "KUBERNETES_SERVICE_HOST is not set" in out[0]["error"], out
    finally:
        e.close()


def test_kubeconfig_features_canaryd_cannot_honour_are_refused():
    e = env()
    try:
        cases = [
            ({"exec": {"command": "aws"}}, None, "exec credential plugins are not supported"),
            ({"token": ADMIN}, {"insecure-skip-tls-verify": True},
             "insecure-skip-tls-verify is not supported"),
            ({"username": "u", "password": "p"}, None, "user names and passwords"),
            ({"token": ADMIN}, {"server": "http://127.0.0.1:1"}, "is not an https:// URL"),
        ]
        for i, (user, cluster, want) in enumerate(cases):
            kc = e.api.kubeconfig(os.path.join(e.dir, "kc%d" % i), user=user,
                                  extra_cluster=cluster)
            rc, r = e.one("get", ISTIO, "virtualservices", kc=kc)
            assert rc == 1 and want in r["error"], (want, r)
            assert_in("kubeconfig '%s'" % kc, r["error"])
        assert e.requests() == []
    finally:
        e.close()


# ---- writes -----------------------------------------------------------------------------


def test_upsert_creates_then_writes_nothing_when_the_live_object_holds_it():
    e = env()
    try:
        f = e.file("r.json", route())
        rc, r = e.one("upsert", GW, "httproutes", "podinfo", "-f", f)
        assert rc == 0 and r["written"] == 1 and r["status"] == 201, r
        live = r["object"]
        # the API filled in defaults canaryd did not send
        assert live["spec"]["parentRefs"][0]["group"] == "gateway.networking.k8s.io", live
        assert live["spec"]["rules"][0]["matches"] == [
            {"path": {"type": "PathPrefix", "value": "/"}}], live
        rc, r = e.one("upsert", GW, "httproutes", "podinfo", "-f", f)
        assert rc == 0 and r["written"] == 0, r
        assert [x["method"] for x in e.requests(path="httproutes")] == ["GET", "POST", "GET"]
        # a new weight: one PUT with the fetched resourceVersion
        rc, r = e.one("upsert", GW, "httproutes", "podinfo", "-f", e.file("r2", route(weight=20)))
        assert rc == 0 and r["written"] == 1 and r["status"] == 200, r
        assert r["object"]["metadata"]["generation"] == 2, r
        put = e.requests("PUT")[0]
        assert put["status"] == 200
    finally:
        e.close()


def test_conflicts_are_retried_from_a_fresh_get_and_bounded():
    e = env()
    try:
        e.one("create", ISTIO, "virtualservices", "podinfo", "-f", e.file("v", vs()))
        # another writer changes the object between canaryd's GET and PUT, twice
        e.api.control(op="fault", fault={"method": "PUT", "path": "virtualservices/podinfo",
                                         "action": "conflict", "times": 2})
        rc, r = e.one("upsert", ISTIO, "virtualservices", "podinfo", "-f",
                      e.file("v20", vs(weight=20)))
        assert rc == 0 and r["ok"] and r["attempts"] == 3 and r["written"] == 1, r
        assert r["object"]["spec"]["http"][0]["route"][1]["weight"] == 20
        seq = [(x["method"], x["status"]) for x in e.requests(path="virtualservices/podinfo")]
        assert seq == [("GET", 200), ("PUT", 409), ("GET", 200), ("PUT", 409), ("GET", 200),
                       ("PUT", 200)], seq
        e.api.control(op="clear_log")
        e.api.control(op="fault", fault={"method": "PUT", "path": "virtualservices/podinfo",
                                         "action": "conflict", "times": 50})
        rc, r = e.one("upsert", ISTIO, "virtualservices", "podinfo", "-f",
                      e.file("v30", vs(weight=30)))
        assert rc == 1 and r["status"] == 409 and r["reason"] == "Conflict", r
        assert_in("conflict (409): Operation cannot be fulfilled on "
                  "virtualservices.networking.istio.io \"podinfo\"", r["error"])
        assert_in("after 5 attempts, each from a fresh GET", r["error"])
        assert len(e.requests("PUT")) == 5, e.requests()
    finally:
        e.close()


def test_stale_and_unconditional_updates_are_refused():
    e = env()
    try:
        rc, r = e.one("create", ISTIO, "virtualservices", "podinfo", "-f", e.file("v", vs()))
        old = r["object"]
        e.one("merge-patch", ISTIO, "virtualservices", "podinfo", "-f",
              e.file("p", {"spec": {"hosts": ["podinfo", "podinfo.test"]}}))
        rc, r = e.one("update", ISTIO, "virtualservices", "podinfo", "-f", e.file("old", old))
        assert rc == 1 and r["status"] == 409, r
        assert_in("the object has been modified", r["error"])
        no_rv = copy.deepcopy(old)
        del no_rv["metadata"]["resourceVersion"]
        rc, r = e.one("update", ISTIO, "virtualservices", "podinfo", "-f", e.file("n", no_rv))
        assert rc == 1 and "has no metadata.resourceVersion" in r["error"], r
        # what the API says to a client that sends one anyway
        res = pyk8s(e.kc, [{"op": "update", "gv": ISTIO, "resource": "virtualservices",
                            "ns": "test", "name": "podinfo", "body": no_rv}])[0]
        assert res["status"] == 422 and "must be specified for an update" in res["message"], res
    finally:
        e.close()


def test_patches_apply_and_delete():
    e = env()
    try:
        e.one("create", ISTIO, "virtualservices", "podinfo", "-f", e.file("v", vs()))
        # a JSON patch whose test holds
        ops = [{"op": "test", "path": "/spec/http/0/route/1/destination/host",
                "value": "podinfo-canary"},
               {"op": "replace", "path": "/spec/http/0/route/0/weight", "value": 70},
               {"op": "replace", "path": "/spec/http/0/route/1/weight", "value": 30}]
        rc, r = e.one("json-patch", ISTIO, "virtualservices", "podinfo", "-f", e.file("j", ops))
        assert rc == 0 and [x["weight"] for x in r["object"]["spec"]["http"][0]["route"]] == \
            [70, 30], r
        assert e.requests("PATCH")[0]["ctype"] == "application/json-patch+json"
        # one whose test fails: 422, nothing changed
        ops[0]["value"] = "somebody-else"
        rc, r = e.one("json-patch", ISTIO, "virtualservices", "podinfo", "-f", e.file("j2", ops))
        assert rc == 1 and r["status"] == 422 and "test failed" in r["error"], r
        # server-side apply: canaryd's field manager, forced
        rc, r = e.one("apply", ISTIO, "virtualservices", "podinfo", "-f",
                      e.file("a", vs(weight=40)))
        assert rc == 0 and r["object"]["spec"]["http"][0]["route"][1]["weight"] == 40, r
        applied = e.requests("PATCH")[-1]
        assert applied["ctype"] == "application/apply-patch+yaml"
        assert applied["query"] == {"fieldManager": "canaryd", "fieldValidation": "Strict",
                                    "force": "true"}, applied
        mf = {(m["manager"], m["operation"]) for m in r["object"]["metadata"]["managedFields"]}
        assert ("canaryd", "Apply") in mf, mf
        rc, r = e.one("delete", ISTIO, "virtualservices", "podinfo")
        assert rc == 0, r
        rc, r = e.one("get", ISTIO, "virtualservices", "podinfo")
        assert rc == 1 and r["status"] == 404 and r["reason"] == "NotFound", r
        assert_in("not found (404): virtualservices.networking.istio.io \"podinfo\" not found",
                  r["error"])
    finally:
        e.close()


def test_apply_takes_fields_from_another_manager_only_with_force():
    e = env()
    try:
        # an operator edited the hostnames with kubectl edit
        created = pyk8s(e.kc, [{"op": "create", "gv": GW, "resource": "httproutes", "ns": "test",
                                "body": route(hostnames=["edited.example.com"]),
                                "query": {"fieldManager": "kubectl-edit"}}])[0]
        assert created["status"] == 201, created
        # without force, the API names the conflict (the test server's
        # contract, seen through python3-kubernetes)
        res = pyk8s(e.kc, [{"op": "apply", "gv": GW, "resource": "httproutes", "ns": "test",
                            "name": "podinfo", "body": route(),
                            "query": {"fieldManager": "canaryd"}}])[0]
        assert res["status"] == 409, res
        assert res["message"] == ('Apply failed with 1 conflict: conflict with "kubectl-edit" '
                                  'using gateway.networking.k8s.io/v1: .spec.hostnames'), res
        res = pyk8s(e.kc, [{"op": "apply", "gv": GW, "resource": "httproutes", "ns": "test",
                            "name": "podinfo", "body": route(), "query": {"fieldManager": ""}}])[0]
        assert res["status"] == 400 and "fieldManager" in res["message"], res
        # canaryd forces: the route is what canaryd says, and its fields are canaryd's
        rc, r = e.one("apply", GW, "httproutes", "podinfo", "-f", e.file("r", route()))
        assert rc == 0 and r["object"]["spec"]["hostnames"] == ["app.example.com"], r
        owners = {m["manager"]: m["fieldsV1"] for m in r["object"]["metadata"]["managedFields"]}
        assert "f:hostnames" in owners["canaryd"]["f:spec"], owners
        assert "f:hostnames" not in owners.get("kubectl-edit", {}).get("f:spec", {}), owners
    finally:
        e.close()


def test_what_the_api_refuses_comes_back_as_it_said_it():
    e = env()
    try:
        # an unknown field: canaryd asks for strict validation, so it is an error
        bad = route()
        bad["spec"]["bogus"] = 1
        rc, r = e.one("create", GW, "httproutes", "podinfo", "-f", e.file("b", bad))
        assert rc == 1 and r["status"] == 400, r
        assert_in('strict decoding error: unknown field "spec.bogus"', r["error"])
        # a client that does not ask gets the field dropped and a warning
        res = pyk8s(e.kc, [{"op": "create", "gv": GW, "resource": "httproutes", "ns": "test",
                            "body": bad}])[0]
        assert res["status"] == 201 and "bogus" not in res["object"]["spec"], res
        assert res["warnings"] == ['299 - "unknown field \\"spec.bogus\\""'], res
        # an invalid value: 422 with its causes
        inv = route(name="other")
        inv["spec"]["rules"][0]["backendRefs"][0]["weight"] = -5
        rc, r = e.one("create", GW, "httproutes", "other", "-f", e.file("i", inv))
        assert rc == 1 and r["status"] == 422 and r["reason"] == "Invalid", r
        assert_in("invalid (422): HTTPRoute.gateway.networking.k8s.io \"other\" is invalid", r["error"])
        assert_in("spec.rules[0].backendRefs[0].weight", r["error"])
        # a warning on a success reaches the caller
        e.api.control(op="fault", fault={"method": "GET", "warning": "v1 is deprecated"})
        rc, r = e.one("get", GW, "httproutes", "podinfo")
        assert rc == 0 and r["warnings"] == "v1 is deprecated", r
        # strategic merge patch: no such thing for custom resources
        res = pyk8s(e.kc, [{"op": "strategic-patch", "gv": GW, "resource": "httproutes",
                            "ns": "test", "name": "podinfo", "body": {"spec": {}}}])[0]
        assert res["status"] == 415, res
        # a namespace that does not exist is not a missing CRD
        rc, r = e.one("create", GW, "httproutes", "podinfo", "-n", "nope", "-f",
                      e.file("r", route()))
        assert rc == 1 and r["status"] == 404 and 'namespaces "nope" not found' in r["error"], r
        assert "not installed" not in r["error"]
    finally:
        e.close()


def test_forbidden_says_which_rbac_rule_canaryd_needs():
    e = env(user={"token": "tok-sa"})
    try:
        e.api.control(op="rules", user=SA_USER, rules=[
            {"verbs": ["get", "list", "watch"], "apiGroups": ["networking.istio.io"],
             "resources": ["virtualservices"], "namespaces": ["test"]}])
        rc, r = e.one("get", ISTIO, "virtualservices")
        assert rc == 0, r
        rc, r = e.one("upsert", ISTIO, "virtualservices", "podinfo", "-f", e.file("v", vs()))
        assert rc == 1 and r["status"] == 403 and r["reason"] == "Forbidden", r
        # (a create is refused on the collection: the API names no object)
        assert_in('forbidden (403): virtualservices.networking.istio.io is forbidden: '
                  'User "system:serviceaccount:test:canaryd" cannot create resource '
                  '"virtualservices" in API group "networking.istio.io" in the namespace "test"',
                  r["error"])
        assert_in('canaryd needs an RBAC rule {apiGroups: ["networking.istio.io"], resources: '
                  '["virtualservices"], verbs: ["create"]} in a Role bound to its service '
                  "account in namespace 'test'", r["error"])
        # the same refusal, seen by python3-kubernetes
        res = pyk8s(e.kc, [{"op": "create", "gv": ISTIO, "resource": "virtualservices",
                            "ns": "test", "body": vs()}])[0]
        assert res["status"] == 403 and res["message"] in r["error"], res
        rc, r = e.one("get", ISTIO, "virtualservices", "-n", "other")
        assert rc == 1 and 'verbs: ["list"]' in r["error"] and "namespace 'other'" in r["error"], r
    finally:
        e.close()


def test_a_missing_crd_says_which_mesh_is_not_installed():
    e = env()
    try:
        e.api.control(op="uninstall", group="networking.istio.io")
        rc, r = e.one("discover", ISTIO, "virtualservices")
        assert rc == 1 and r["error"] == \
            "Istio is not installed (no networking.istio.io/v1 in the API)", r
        rc, r = e.one("upsert", ISTIO, "virtualservices", "podinfo", "-f", e.file("v", vs()))
        assert rc == 1, r
        assert_in("Istio is not installed (no networking.istio.io/v1 virtualservices in the API)",
                  r["error"])
        rc, r = e.one("discover", "split.smi-spec.io/v1alpha3", "trafficsplits")
        assert rc == 1 and r["error"] == \
            "SMI is not installed (no split.smi-spec.io/v1alpha3 in the API)", r
        rc, r = e.one("discover", "split.smi-spec.io/v1alpha2", "trafficsplits")
        assert rc == 0, r
        rc, r = e.one("discover", GW, "grpcroutes")
        assert rc == 1 and r["error"] == ("Gateway API is installed but serves no grpcroutes in "
                                          "gateway.networking.k8s.io/v1 (is its CRD "
                                          "installed?)"), r
        res = pyk8s(e.kc, [{"op": "discover", "gv": ISTIO}])[0]
        assert res["status"] == 404, res
    finally:
        e.close()


# ---- watches ----------------------------------------------------------------------------


def put_route(e, name, weight=10, ns="test"):
    return e.api.control(op="put", group="gateway.networking.k8s.io", resource="httproutes",
                         ns=ns, name=name, object=route(name, weight))["object"]


def test_watch_lists_then_streams_with_bookmarks_and_resumes():
    e = env()
    try:
        e.api.control(op="bookmarks", seconds=0.3)
        put_route(e, "a")
        s = e.stream("watch", GW, "httproutes", "--watch-timeout", "2", "--seconds", "12")
        try:
            sync = s.wait_for(lambda x: x["event"] == "SYNC", what="the list")
            assert sync["names"] == ["a"], sync
            put_route(e, "b")
            added = s.wait_for(lambda x: x["event"] == "ADDED", what="b added")
            assert added["name"] == "b"
            bm = s.wait_for(lambda x: x["event"] == "BOOKMARK", what="a bookmark")
            # the server ends each connection after 2 s: canaryd resumes from
            # where it stood, without listing again
            time.sleep(3)
            put_route(e, "a", weight=30)
            s.wait_for(lambda x: x["event"] == "MODIFIED" and x["name"] == "a", timeout=15,
                       what="a change after a resume")
        finally:
            s.stop()
        assert sum(1 for x in s.lines if x["event"] == "SYNC") == 1, s.lines
        assert not [x for x in s.lines if x["event"] == "ERROR"], s.lines
        watches = [x for x in e.requests("GET", "httproutes") if "watch" in x["query"]]
        assert len(watches) >= 2, watches
        assert all(w["query"]["allowWatchBookmarks"] == "true" for w in watches)
        # each resume starts from the last version seen (an event or a bookmark)
        assert int(watches[1]["query"]["resourceVersion"]) >= int(bm["rv"]), (watches, bm)
    finally:
        e.close()


def test_a_410_mid_stream_makes_it_list_again():
    e = env()
    try:
        put_route(e, "a")
        s = e.stream("watch", GW, "httproutes", "--seconds", "15")
        try:
            s.wait_for(lambda x: x["event"] == "SYNC")
            deadline = time.time() + 10 * SLOW
            while e.api.control(op="watches")["watches"] == 0 and time.time() < deadline:
                time.sleep(0.05)
            put_route(e, "b")
            s.wait_for(lambda x: x["event"] == "ADDED" and x["name"] == "b")
            e.api.control(op="compact")
            e.api.control(op="expire_watches")
            second = s.wait_for(lambda x: x["event"] == "SYNC" and x is not s.lines[0],
                                what="a second list")
            assert sorted(second["names"]) == ["a", "b"], second
            put_route(e, "c")
            s.wait_for(lambda x: x["event"] == "ADDED" and x["name"] == "c",
                       what="events after the relist")
        finally:
            s.stop()
        assert not [x for x in s.lines if x["event"] == "ERROR"], s.lines
    finally:
        e.close()


def test_a_410_on_resume_makes_it_list_again():
    e = env()
    try:
        e.api.control(op="bookmarks", seconds=3600)  # no bookmark moves it on
        put_route(e, "a")
        s = e.stream("watch", GW, "httproutes", "a", "--seconds", "15")
        try:
            s.wait_for(lambda x: x["event"] == "SYNC")
            deadline = time.time() + 10 * SLOW
            while e.api.control(op="watches")["watches"] == 0 and time.time() < deadline:
                time.sleep(0.05)
            # changes the watch (of 'a' only) does not see, then history is gone
            put_route(e, "b")
            put_route(e, "b", weight=20)
            e.api.control(op="compact")
            e.api.control(op="drop_watches")
            s.wait_for(lambda x: x["event"] == "SYNC" and x is not s.lines[0],
                       what="a list after the 410")
        finally:
            s.stop()
        watches = [x for x in e.requests("GET", "httproutes") if "watch" in x["query"]]
        assert watches[0]["query"]["fieldSelector"] == "metadata.name=a", watches
        errs = [x for x in s.lines if x["event"] == "ERROR"]
        # the dropped connection is reported; the 410 is not an error, it is a relist
        assert all("answered 410" not in x["error"] for x in errs), errs
    finally:
        e.close()


def test_broken_watch_streams_are_reported_and_recovered():
    e = env()
    try:
        put_route(e, "a")
        e.api.control(op="fault", fault={"path": "httproutes", "watch": True,
                                         "action": "truncate", "after": 1, "times": 1})
        e.api.control(op="fault", fault={"path": "httproutes", "watch": True,
                                         "action": "garbage_event", "body": "{\"type\": 12",
                                         "after": 0, "times": 1})
        s = e.stream("watch", GW, "httproutes", "--backoff-ms", "50", "--seconds", "20")
        try:
            s.wait_for(lambda x: x["event"] == "SYNC")
            put_route(e, "b")
            put_route(e, "c")
            s.wait_for(lambda x: x["event"] == "ERROR" and "ended inside an event" in x["error"],
                       what="the truncated event reported")
            s.wait_for(lambda x: x["event"] == "ERROR" and "event is not JSON" in x["error"],
                       what="the garbage reported")
            put_route(e, "d")
            s.wait_for(lambda x: x["event"] == "ADDED" and x["name"] == "d",
                       what="events after the faults")
        finally:
            s.stop()
        names = [x.get("name") for x in s.lines if x["event"] == "ADDED"]
        assert "b" in names and "c" in names, s.lines
    finally:
        e.close()


def test_a_server_that_expires_every_watch_is_not_listed_in_a_loop():
    # every watch gets 410 at once, even from the version the list just gave:
    # canaryd says so and backs off, instead of listing a few times a second
    e = env()
    try:
        gone = json.dumps({"kind": "Status", "apiVersion": "v1", "metadata": {},
                           "status": "Failure", "reason": "Expired", "code": 410,
                           "message": "too old resource version"})
        e.api.control(op="fault", fault={"path": "httproutes", "watch": True, "action": "garbage",
                                         "status": 410, "body": gone, "times": 1000})
        s = e.stream("watch", GW, "httproutes", "--backoff-ms", "100", "--seconds", "4")
        try:
            rc, _ = s.finish(timeout=20)
        finally:
            s.stop()
        lists = [x for x in e.requests("GET", "httproutes") if "watch" not in x["query"]]
        # backoff from 100 ms doubling: 100+200+400+800+1600 ms fill the 4 s
        # with at most 6 lists; listing again at once would make dozens
        assert 2 <= len(lists) <= 7, (len(lists), s.lines)
        errs = [x for x in s.lines if x["event"] == "ERROR"]
        assert errs and all("the API answered 410 (too old) to the resourceVersion its own "
                            "list gave" in x["error"] for x in errs), s.lines
    finally:
        e.close()


# ---- faults on requests -----------------------------------------------------------------


def test_faults_on_requests_are_clear_errors():
    e = env()
    try:
        e.one("create", ISTIO, "virtualservices", "podinfo", "-f", e.file("v", vs()))
        cases = [
            ({"action": "garbage"}, "the API answered 200 with something that is not JSON"),
            ({"action": "garbage", "body": "[1,2]"}, "the API answered 200 with JSON that is not "
                                                     "an object"),
            ({"action": "garbage", "status": 502, "ctype": "text/html",
              "body": "<html>bad gateway</html>"},
             "the API answered 502 with something that is not a Status: '<html>bad gateway"),
            ({"action": "reset"}, "'https://127.0.0.1:%d': " % e.api.port),
            ({"action": "truncate"}, "'https://127.0.0.1:%d': " % e.api.port),
            ({"action": "big", "bytes": 5000}, "the answer is larger than 4096 bytes"),
            ({"delay": 3}, "no answer from 'https://127.0.0.1:%d' within" % e.api.port),
        ]
        for fault, want in cases:
            fault = dict(fault, method="GET", path="virtualservices/podinfo")
            e.api.control(op="fault", fault=fault)
            rc, r = e.one("--timeout-ms", "1000", "--max-body", "4096", "get", ISTIO,
                          "virtualservices", "podinfo")
            assert rc == 1 and want in r["error"], (fault, r)
            assert r["error"].startswith("cannot get virtualservices.networking.istio.io "
                                         "'podinfo' in namespace 'test': "), r
        # a list whose items are not a list
        e.api.control(op="fault", fault={"method": "GET", "path": "virtualservices$",
                                         "action": "garbage", "body": '{"items": 3}'})
        rc, r = e.one("get", ISTIO, "virtualservices")
        assert rc == 1 and "the answer has no items array" in r["error"], r
        rc, r = e.one("get", ISTIO, "virtualservices", "podinfo")
        assert rc == 0, r
    finally:
        e.close()


# ---- readiness --------------------------------------------------------------------------


def deployment(gen, status):
    return {"metadata": {"name": "podinfo"}, "spec": {"replicas": 2}, "status": status}


def test_deployment_readiness_follows_its_status():
    e = env()
    try:
        e.api.control(op="put", group="apps", resource="deployments", ns="test", name="podinfo",
                      object=deployment(2, {"observedGeneration": 1}), generation=2)
        rc, r = e.one("ready", "deployment", "podinfo")
        assert rc == 1 and r["ready"] == 0, r
        assert_in("waiting for the controller to observe generation 2", r["why"])
        s = e.stream("ready", "deployment", "podinfo", "--seconds", "15")
        try:
            time.sleep(0.3)
            e.api.control(op="status", group="apps", resource="deployments", ns="test",
                          name="podinfo", status={"observedGeneration": 2, "replicas": 2,
                                                  "updatedReplicas": 1, "availableReplicas": 1})
            time.sleep(0.3)
            e.api.control(op="status", group="apps", resource="deployments", ns="test",
                          name="podinfo", status={
                              "observedGeneration": 2, "replicas": 2, "updatedReplicas": 2,
                              "availableReplicas": 2, "conditions": [
                                  {"type": "Available", "status": "True"},
                                  {"type": "Progressing", "status": "True",
                                   "reason": "NewReplicaSetAvailable"}]})
            done = s.wait_for(lambda x: "ready" in x, what="readiness")
            rc, _ = s.finish()
        finally:
            s.stop()
        assert done["ready"] == 1 and rc == 0, done
        e.api.control(op="status", group="apps", resource="deployments", ns="test",
                      name="podinfo", status={
                          "observedGeneration": 2, "conditions": [
                              {"type": "Progressing", "status": "False",
                               "reason": "ProgressDeadlineExceeded",
                               "message": "ReplicaSet \"podinfo-7d\" has timed out progressing."}]})
        rc, r = e.one("ready", "deployment", "podinfo")
        assert rc == 1 and r["ready"] == -1 and "exceeded its progress deadline" in r["why"], r
    finally:
        e.close()


def test_httproute_readiness_waits_for_its_parents_at_the_current_generation():
    e = env()
    try:
        e.api.control(op="gateway", mode="off")
        e.one("create", GW, "httproutes", "podinfo", "-f", e.file("r", route()))
        rc, r = e.one("ready", "httproute", "podinfo")
        assert rc == 1 and r["ready"] == 0 and "has not reported status yet" in r["why"], r
        e.api.control(op="gateway", mode="accept", delay=0.5)
        rc, r = e.one("merge-patch", GW, "httproutes", "podinfo", "-f",
                      e.file("p", {"spec": {"hostnames": ["b.example.com"]}}))
        assert r["object"]["metadata"]["generation"] == 2, r
        rc, r = e.one("ready", "httproute", "podinfo", "--seconds", "10")
        assert rc == 0 and r["ready"] == 1 and "generation 2" in r["why"], r
        # a new generation: the old acceptance does not count
        e.api.control(op="gateway", mode="off")
        e.one("merge-patch", GW, "httproutes", "podinfo", "-f",
              e.file("p3", {"spec": {"hostnames": ["c.example.com"]}}))
        rc, r = e.one("ready", "httproute", "podinfo")
        assert r["ready"] == 0 and "has seen generation 2, the route is at 3" in r["why"], r
        e.api.control(op="gateway", mode="reject", delay=0.1)
        e.one("merge-patch", GW, "httproutes", "podinfo", "-f",
              e.file("p4", {"spec": {"hostnames": ["d.example.com"]}}))
        rc, r = e.one("ready", "httproute", "podinfo", "--seconds", "10")
        assert rc == 1 and r["ready"] == -1, r
        assert_in("did not accept generation 4: NotAllowedByListeners", r["why"])
    finally:
        e.close()


# ---- the test server, held to python3-kubernetes ----------------------------------------


VOLATILE = ("uid", "creationTimestamp", "resourceVersion", "namespace")


def normal(x):
    """A result without what differs between two runs (ids, times, versions,
    namespaces, the messages that name them)."""
    x = copy.deepcopy(x)
    obj = x.get("object")
    if isinstance(obj, dict):
        for it in [obj] + list(obj.get("items") or []):
            m = it.get("metadata") or {}
            for k in VOLATILE:
                m.pop(k, None)
            for f in m.get("managedFields") or []:
                f.pop("time", None)
        obj.get("metadata", {}).pop("resourceVersion", None)
    return {"ok": x["ok"], "status": x.get("status"), "reason": x.get("reason") or "",
            "object": obj if x["ok"] else None}


def test_both_clients_see_the_same_results():
    e = env()
    try:
        q = {"fieldManager": "canaryd", "fieldValidation": "Strict"}
        steps = [
            ("create", "podinfo", vs(), None),
            ("get", "podinfo", None, None),
            ("merge-patch", "podinfo", {"spec": {"hosts": ["podinfo", "podinfo.test"]}}, None),
            ("json-patch", "podinfo", [{"op": "test", "path": "/spec/gateways/0",
                                        "value": "mesh"},
                                       {"op": "replace", "path": "/spec/http/0/route/1/weight",
                                        "value": 25}], None),
            ("json-patch", "podinfo", [{"op": "test", "path": "/spec/gateways/0",
                                        "value": "nope"}], None),
            ("create", "podinfo", vs(), None),
            ("apply", "podinfo", vs(weight=50), {"fieldManager": "canaryd",
                                                 "fieldValidation": "Strict", "force": "true"}),
            ("get", "missing", None, None),
            ("list", None, None, None),
            ("delete", "podinfo", None, None),
            ("get", "podinfo", None, None),
        ]
        ours, theirs = [], []
        for op, name, body, query in steps:
            args = [op if op != "list" else "get", ISTIO, "virtualservices"]
            if name:
                args.append(name)
            if body is not None:
                args += ["-f", e.file("b.json", body)]
            rc, out, err = e.ctl(*(args + ["-n", "test"]))
            ours.append(out[0])
            pyop = {"op": op, "gv": ISTIO, "resource": "virtualservices", "ns": "other",
                    "name": name, "body": body, "query": query or q}
            theirs.append(pyk8s(e.kc, [pyop])[0])
        for (op, name, _b, _q), a, b in zip(steps, ours, theirs):
            na, nb = normal(a), normal(b)
            if op == "delete":
                na["object"] = nb["object"] = None  # a Status either way
            assert na == nb, "%s %s:\ncanaryd:           %s\npython3-kubernetes: %s" % (
                op, name, json.dumps(na, sort_keys=True), json.dumps(nb, sort_keys=True))
        # and watches from the same point see the same events
        mine = e.stream("watch", ISTIO, "virtualservices", "-n", "test", "--events", "3",
                        "--seconds", "10")
        try:
            mine.wait_for(lambda x: x["event"] == "SYNC")
            rv = e.api.control(op="rv")["rv"]
            for ns in ("test", "other"):
                e.api.control(op="put", group="networking.istio.io", resource="virtualservices",
                              ns=ns, name="w", object=vs("w"))
                e.api.control(op="put", group="networking.istio.io", resource="virtualservices",
                              ns=ns, name="w", object=vs("w", weight=40))
            rc, _ = mine.finish()
        finally:
            mine.stop()
        res = pyk8s(e.kc, [{"op": "watch", "gv": ISTIO, "resource": "virtualservices",
                            "ns": "other", "rv": str(rv), "events": 2, "timeout": 5}])[0]
        assert rc == 0, mine.lines
        assert [(x["event"], x.get("name")) for x in mine.lines[1:]] == \
            [(x["type"], x["name"]) for x in res["events"]] == [("ADDED", "w"), ("MODIFIED", "w")], \
            (mine.lines, res)
    finally:
        e.close()


def test_status_subresource_and_generation():
    e = env()
    try:
        e.api.control(op="gateway", mode="off")
        rc, r = e.one("create", GW, "httproutes", "podinfo", "-f", e.file("r", route()))
        live = r["object"]
        st = copy.deepcopy(live)
        st["status"] = {"parents": []}
        rc, r = e.one("update", GW, "httproutes", "podinfo", "--status", "-f", e.file("s", st))
        assert rc == 0 and r["object"]["status"] == {"parents": []}, r
        assert r["object"]["metadata"]["generation"] == 1, r
        # a spec write keeps the status and moves the generation
        rc, r = e.one("merge-patch", GW, "httproutes", "podinfo", "-f",
                      e.file("p", {"spec": {"hostnames": ["x.example.com"]}, "status": None}))
        assert rc == 0 and r["object"]["metadata"]["generation"] == 2, r
        assert "status" in r["object"], r
        res = pyk8s(e.kc, [{"op": "status-update", "gv": GW, "resource": "httproutes",
                            "ns": "test", "name": "podinfo",
                            "body": dict(r["object"], status={"parents": [], "x": 1})}])[0]
        # the status schema has no 'x': dropped with a warning
        assert res["status"] == 200 and res["object"]["metadata"]["generation"] == 2, res
    finally:
        e.close()


def _cleanup_envs():
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
        _cleanup_envs()
