#!/usr/bin/python3
"""Drives the test API server with Debian's official python3-kubernetes
client, to keep the server honest: tests/e2e/test_k8s.py runs the same
operations through this and through canaryd's client and compares.

    /usr/bin/python3 tests/k8s/pyk8s.py KUBECONFIG < ops.json > results.json

ops: a JSON list of {"op", "gv", "resource", "name", "ns", "body", ...}:
get, list, create, update, status-update, merge-patch, json-patch, apply,
strategic-patch, delete, discover, watch. Custom resources go through the
typed CustomObjectsApi; what it has no method for (JSON patch, apply,
strategic merge, discovery, the core and apps groups) through the same
client's ApiClient.call_api. Each result: {"ok", "status", "reason",
"message", "object", "warnings"}."""
import json
import sys

from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException


def split_gv(gv):
    return gv.split("/", 1) if "/" in gv else ("", gv)


def warnings_of(headers):
    out = []
    for k, v in (headers or {}).items():
        if k.lower() == "warning":
            out.append(v)
    return out


def result(data, status, headers):
    return {"ok": True, "status": status, "object": data, "warnings": warnings_of(headers)}


def failure(e):
    try:
        st = json.loads(e.body)
    except (TypeError, ValueError):
        st = {}
    return {"ok": False, "status": e.status, "reason": st.get("reason", ""),
            "message": st.get("message", str(e.reason)), "details": st.get("details"),
            "warnings": warnings_of(e.headers)}


def path_of(op, name=True, sub=None):
    group, version = split_gv(op["gv"])
    base = "/apis/%s/%s" % (group, version) if group else "/api/%s" % version
    p = "%s/namespaces/%s/%s" % (base, op["ns"], op["resource"])
    if name and op.get("name"):
        p += "/" + op["name"]
    if sub:
        p += "/" + sub
    return p


def raw(api, op, method, ctype=None, body=None, sub=None, name=True, query=None):
    hdrs = {"Accept": "application/json"}
    if ctype:
        hdrs["Content-Type"] = ctype
    data, status, headers = api.call_api(
        path_of(op, name, sub), method, {}, list((query or {}).items()), hdrs, body=body,
        response_type="object", auth_settings=["BearerToken"], _return_http_data_only=False,
        _preload_content=True)
    return result(data, status, headers)


def run(api, op):
    group, version = split_gv(op["gv"])
    custom = client.CustomObjectsApi(api)
    kind = op["op"]
    q = op.get("query") or {}
    co = group not in ("", "apps")
    if kind == "discover":
        base = "/apis/%s/%s" % (group, version) if group else "/api/%s" % version
        data, status, headers = api.call_api(
            base, "GET", {}, [], {"Accept": "application/json"}, response_type="object",
            auth_settings=["BearerToken"], _return_http_data_only=False, _preload_content=True)
        return result(data, status, headers)
    args = (group, version, op["ns"], op["resource"])
    fm = {"field_manager": q["fieldManager"]} if q.get("fieldManager") else {}
    if kind == "get" and co:
        return result(*custom.get_namespaced_custom_object_with_http_info(*args, op["name"]))
    if kind == "list" and co:
        return result(*custom.list_namespaced_custom_object_with_http_info(
            *args, label_selector=op.get("selector", "")))
    if kind == "create" and co:
        return result(*custom.create_namespaced_custom_object_with_http_info(
            *args, op["body"], **fm))
    if kind == "update" and co:
        return result(*custom.replace_namespaced_custom_object_with_http_info(
            *args, op["name"], op["body"], **fm))
    if kind == "status-update" and co:
        return result(*custom.replace_namespaced_custom_object_status_with_http_info(
            *args, op["name"], op["body"]))
    if kind == "merge-patch" and co:
        return result(*custom.patch_namespaced_custom_object_with_http_info(
            *args, op["name"], op["body"], **fm))
    if kind == "delete" and co:
        return result(*custom.delete_namespaced_custom_object_with_http_info(*args, op["name"]))
    if kind in ("get", "list", "delete"):
        return raw(api, op, {"get": "GET", "list": "GET", "delete": "DELETE"}[kind],
                   name=kind != "list")
    if kind == "create":
        return raw(api, op, "POST", "application/json", op["body"], name=False, query=q)
    if kind in ("update", "status-update"):
        return raw(api, op, "PUT", "application/json", op["body"],
                   sub="status" if kind == "status-update" else None, query=q)
    if kind == "merge-patch":
        return raw(api, op, "PATCH", "application/merge-patch+json", op["body"], query=q)
    if kind == "json-patch":
        return raw(api, op, "PATCH", "application/json-patch+json", op["body"], query=q)
    if kind == "strategic-patch":
        return raw(api, op, "PATCH", "application/strategic-merge-patch+json", op["body"],
                   query=q)
    if kind == "apply":
        query = {"fieldManager": q.get("fieldManager", "pyk8s")}
        query.update(q)
        # a text body: the client sends it as it is (JSON is YAML)
        return raw(api, op, "PATCH", "application/apply-patch+yaml", json.dumps(op["body"]),
                   query=query)
    if kind == "watch":
        w = watch.Watch()
        events = []
        kw = {"timeout_seconds": op.get("timeout", 5), "allow_watch_bookmarks": True}
        if op.get("rv") is not None:
            kw["resource_version"] = op["rv"]
        if op.get("name"):
            kw["field_selector"] = "metadata.name=" + op["name"]
        try:
            for ev in w.stream(custom.list_namespaced_custom_object, *args, **kw):
                o = ev["raw_object"]
                events.append({"type": ev["type"],
                               "name": (o.get("metadata") or {}).get("name"),
                               "rv": (o.get("metadata") or {}).get("resourceVersion")})
                if len(events) >= op.get("events", 1):
                    w.stop()
        except ApiException as e:
            events.append({"type": "EXCEPTION", "status": e.status, "reason": str(e.reason)})
        return {"ok": True, "events": events}
    raise ValueError("unknown op " + kind)


def main():
    config.load_kube_config(config_file=sys.argv[1])
    api = client.ApiClient()
    out = []
    for op in json.load(sys.stdin):
        try:
            out.append(run(api, op))
        except ApiException as e:
            out.append(failure(e))
    json.dump(out, sys.stdout)


if __name__ == "__main__":
    main()
