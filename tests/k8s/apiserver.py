#!/usr/bin/python3
"""A test Kubernetes API server for canaryd's Kubernetes client.

It follows the contract in section 2.3 of the mesh README (shared
data/mesh/README.md), the one canaryd's client follows too, and is kept
honest by driving it with Debian's official python3-kubernetes client as
well (tests/e2e/test_k8s.py): the same operations through both clients must
give the same results. It is not Kubernetes: what it does and does not do is
listed in docs/kubernetes.md.

What it serves, over TLS (a CA the test makes with openssl):
- authentication: bearer tokens (the scheme case-insensitive), tokens that
  the test rotates and revokes, client certificates (CN = user, O = groups);
- RBAC-style authorisation per user: rules of verbs, API groups, resources
  (with subresources) and namespaces; a 403 says what the real one says;
- discovery (/api, /apis, /apis/GROUP, /apis/GROUP/VERSION, /version), with
  API groups that can be uninstalled to play a missing CRD;
- namespaced custom resources from the real CRDs (Istio VirtualService and
  DestinationRule, Gateway API HTTPRoute, SMI TrafficSplit), pruned and
  defaulted by their structural schemas and validated with python3-jsonschema
  (CEL rules are not evaluated), plus Deployments and Services;
- resourceVersion (one counter, as etcd's revision) and generation; status
  subresources; create (201, 409 AlreadyExists), update (422 without
  resourceVersion on custom resources, 409 when stale), merge patch (RFC 7386),
  JSON patch (RFC 6902 with test), server-side apply with field managers and
  conflicts, 415 for strategic merge patch, fieldValidation and dryRun;
- list and watch: chunked newline-delimited events, resume from a
  resourceVersion, bookmarks, 410 Expired for a compacted version (as an
  ERROR event), field and label selectors, timeoutSeconds;
- a gateway controller that writes HTTPRoute parents' Accepted condition;
- faults for tests: delays, resets, garbage, truncated events, conflicts.

It listens on 127.0.0.1 only. A control port (plain HTTP, loopback) takes
JSON commands from the test (see Control.handle). Started as a program it
prints one JSON line {"port": N, "control": M} when it is ready.
"""
import argparse
import copy
import datetime
import json
import os
import re
import socket
import ssl
import struct
import threading
import time
import traceback
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

try:
    import yaml
except ImportError:  # apply bodies are then read as JSON only
    yaml = None
try:
    import jsonschema
except ImportError:  # then only pruning and defaults, no validation
    jsonschema = None

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_CRDS = os.path.abspath(os.path.join(HERE, "..", "..", "..", "shared", "data", "mesh",
                                            "crds"))
MAX_BODY = 8 << 20
MAX_WATCH_S = 600


def now_rfc3339():
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_bool(v):
    """Go's strconv.ParseBool."""
    if v in ("1", "t", "T", "TRUE", "true", "True"):
        return True
    if v in ("0", "f", "F", "FALSE", "false", "False"):
        return False
    raise ValueError(v)


class APIError(Exception):
    """A failure answered as a Status object."""

    def __init__(self, code, reason, message, details=None, headers=None):
        super().__init__(message)
        self.code, self.reason, self.message = code, reason, message
        self.details = details
        self.headers = headers or []

    def status(self):
        st = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
              "message": self.message, "reason": self.reason, "code": self.code}
        if self.details is not None:
            st["details"] = self.details
        return st


def not_served():
    # what the API answers for a path it does not serve (a missing CRD)
    return APIError(404, "NotFound", "the server could not find the requested resource", {})


# ---- resource types ----------------------------------------------------------------


class RType:
    def __init__(self, group, plural, kind, versions, storage, schemas=None, status=True,
                 builtin=False, singular=None, short=()):
        self.group, self.plural, self.kind = group, plural, kind
        self.versions, self.storage = versions, storage
        self.schemas = schemas or {}
        self.status = status
        self.builtin = builtin
        self.singular = singular or kind.lower()
        self.short = list(short)
        self._validators = {}

    def gr(self):
        return self.plural + ("." + self.group if self.group else "")

    def api_version(self, version):
        return self.group + "/" + version if self.group else version

    def validator(self, version):
        if jsonschema is None or version not in self.schemas:
            return None
        if version not in self._validators:
            self._validators[version] = jsonschema.Draft4Validator(self.schemas[version])
        return self._validators[version]


def load_crds(crd_dir):
    """The resource types canaryd writes, from the real CRD files."""
    files = {
        "istio": os.path.join(crd_dir, "istio", "customresourcedefinitions.gen.yaml"),
        "gateway": os.path.join(crd_dir, "gateway-api", "gateway.networking.k8s.io_httproutes.yaml"),
        "smi": os.path.join(crd_dir, "smi", "linkerd-smi_trafficsplit-crd.yaml"),
    }
    wanted = {"virtualservices.networking.istio.io", "destinationrules.networking.istio.io",
              "httproutes.gateway.networking.k8s.io", "trafficsplits.split.smi-spec.io"}
    types = []
    for path in files.values():
        if yaml is None:
            raise SystemExit("apiserver: python3-yaml is needed to read the CRDs")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml: 10x faster
        with open(path) as f:
            for doc in yaml.load_all(f, Loader=loader):
                if not doc or doc.get("kind") != "CustomResourceDefinition":
                    continue
                if doc["metadata"]["name"] not in wanted:
                    continue
                spec = doc["spec"]
                served = [v for v in spec["versions"] if v.get("served")]
                storage = [v["name"] for v in spec["versions"] if v.get("storage")][0]
                schemas = {v["name"]: v["schema"]["openAPIV3Schema"] for v in served
                           if v.get("schema")}
                status = any("status" in (v.get("subresources") or {}) for v in served)
                types.append(RType(spec["group"], spec["names"]["plural"], spec["names"]["kind"],
                                   [v["name"] for v in served], storage, schemas, status,
                                   singular=spec["names"].get("singular"),
                                   short=spec["names"].get("shortNames") or ()))
    types.append(RType("apps", "deployments", "Deployment", ["v1"], "v1", builtin=True,
                       short=("deploy",)))
    types.append(RType("", "services", "Service", ["v1"], "v1", builtin=True, short=("svc",)))
    return types


# ---- schema walking: pruning, defaults ------------------------------------------------


def prune(value, schema, path, unknown):
    """Drops what <schema> does not know (appending the field paths to
    <unknown>) and nulls that are not nullable, and fills in defaults, as a
    structural schema does. Returns the value to keep."""
    if not isinstance(schema, dict):
        return value
    if isinstance(value, dict):
        props = schema.get("properties")
        addl = schema.get("additionalProperties")
        preserve = schema.get("x-kubernetes-preserve-unknown-fields")
        out = {}
        for k, v in value.items():
            p = path + "." + k if path else k
            if props is not None and k in props:
                sub = props[k]
            elif isinstance(addl, dict):
                sub = addl
            elif addl is True or preserve:
                out[k] = v
                continue
            else:
                unknown.append(p)
                continue
            if v is None and not sub.get("nullable"):
                continue
            out[k] = prune(v, sub, p, unknown)
        for k, sub in (props or {}).items():
            if k not in out and isinstance(sub, dict) and "default" in sub:
                out[k] = prune(copy.deepcopy(sub["default"]), sub, path + "." + k if path else k,
                               [])
        return out
    if isinstance(value, list):
        items = schema.get("items")
        if isinstance(items, dict):
            return [prune(v, items, "%s[%d]" % (path, i), unknown) for i, v in enumerate(value)]
    return value


# ---- merge patch, JSON patch ----------------------------------------------------------


def merge_patch(target, patch):
    """RFC 7386."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    if not isinstance(target, dict):
        target = {}
    out = dict(target)
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def _pointer(p):
    if p == "":
        return []
    if not p.startswith("/"):
        raise ValueError("JSON pointer '%s' does not start with '/'" % p)
    return [t.replace("~1", "/").replace("~0", "~") for t in p[1:].split("/")]


def _walk(doc, toks):
    cur = doc
    for t in toks:
        if isinstance(cur, dict):
            if t not in cur:
                raise ValueError("path does not exist: %s" % t)
            cur = cur[t]
        elif isinstance(cur, list):
            if not t.isdigit() or int(t) >= len(cur):
                raise ValueError("index out of range: %s" % t)
            cur = cur[int(t)]
        else:
            raise ValueError("cannot descend into a scalar at %s" % t)
    return cur


def _add(doc, toks, value):
    if not toks:
        return value
    parent = _walk(doc, toks[:-1])
    last = toks[-1]
    if isinstance(parent, dict):
        parent[last] = value
    elif isinstance(parent, list):
        if last == "-":
            parent.append(value)
        elif last.isdigit() and int(last) <= len(parent):
            parent.insert(int(last), value)
        else:
            raise ValueError("index out of range: %s" % last)
    else:
        raise ValueError("cannot add into a scalar")
    return doc


def _remove(doc, toks):
    if not toks:
        raise ValueError("cannot remove the whole document")
    parent = _walk(doc, toks[:-1])
    last = toks[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise ValueError("path does not exist: %s" % last)
        return parent.pop(last)
    if isinstance(parent, list) and last.isdigit() and int(last) < len(parent):
        return parent.pop(int(last))
    raise ValueError("path does not exist: %s" % last)


def json_patch(doc, ops):
    """RFC 6902. Raises ValueError (a failed test says 'test failed')."""
    if not isinstance(ops, list):
        raise ValueError("a JSON patch is a list of operations")
    doc = copy.deepcopy(doc)
    for i, op in enumerate(ops):
        if not isinstance(op, dict) or not isinstance(op.get("op"), str) or \
                not isinstance(op.get("path"), str):
            raise ValueError("operation %d is malformed" % i)
        kind, toks = op["op"], _pointer(op["path"])
        if kind in ("add", "replace", "test") and "value" not in op:
            raise ValueError("operation %d (%s) has no value" % (i, kind))
        if kind == "add":
            doc = _add(doc, toks, copy.deepcopy(op["value"]))
        elif kind == "remove":
            _remove(doc, toks)
        elif kind == "replace":
            _walk(doc, toks)
            if not toks:
                doc = copy.deepcopy(op["value"])
            else:
                _remove(doc, toks)
                doc = _add(doc, toks, copy.deepcopy(op["value"]))
        elif kind in ("move", "copy"):
            frm = _pointer(op.get("from", ""))
            v = _walk(doc, frm)
            if kind == "move":
                _remove(doc, frm)
            doc = _add(doc, toks, copy.deepcopy(v))
        elif kind == "test":
            have = _walk(doc, toks)
            if have != op["value"]:
                raise ValueError("test failed: %s is %s, not %s" % (
                    op["path"], json.dumps(have), json.dumps(op["value"])))
        else:
            raise ValueError("unknown operation '%s'" % kind)
    return doc


# ---- field ownership (server-side apply) -----------------------------------------------


def leaves(obj, subresource=None):
    """{path tuple: value} of the fields a manager can own. Lists are atomic
    (VirtualService http and HTTPRoute rules are atomic lists in their CRDs);
    maps are granular. metadata: only labels and annotations."""
    out = {}

    def walk(v, path):
        if isinstance(v, dict) and v:
            for k, x in v.items():
                walk(x, path + (k,))
        else:
            out[path] = v

    for k, v in (obj or {}).items():
        if k in ("apiVersion", "kind"):
            continue
        if k == "metadata":
            for mk in ("labels", "annotations"):
                if isinstance(v, dict) and isinstance(v.get(mk), dict):
                    walk(v[mk], ("metadata", mk))
            continue
        if (k == "status") != (subresource == "status"):
            continue
        walk(v, (k,))
    return out


def fields_v1(paths):
    root = {}
    for p in sorted(paths):
        cur = root
        for k in p:
            cur = cur.setdefault("f:" + k, {})
    return root


def path_text(p):
    return "." + ".".join(p)


def set_path(obj, path, value):
    cur = obj
    for k in path[:-1]:
        if not isinstance(cur.get(k), dict):
            cur[k] = {}
        cur = cur[k]
    cur[path[-1]] = copy.deepcopy(value)


def del_path(obj, path):
    stack = []
    cur = obj
    for k in path[:-1]:
        if not isinstance(cur, dict) or k not in cur:
            return
        stack.append((cur, k))
        cur = cur[k]
    if isinstance(cur, dict):
        cur.pop(path[-1], None)
    # drop maps the removal emptied
    for parent, k in reversed(stack):
        if parent[k] == {}:
            del parent[k]


def overlaps(p, q):
    n = min(len(p), len(q))
    return p[:n] == q[:n]


# ---- the store -------------------------------------------------------------------------


class Store:
    def __init__(self, types):
        self.types = types
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.objects = {}      # (group, plural, ns, name) -> object
        self.owners = {}       # key -> {(manager, operation, subresource, apiVersion): set}
        self.rv = 100
        self.events = []       # (rv, type, key, object)
        self.compacted = 0     # versions below are gone: 410
        self.history = 10000   # events kept
        self.namespaces = {"default", "test", "other", "kube-system"}
        self.closing = False

    def bump(self):
        self.rv += 1
        return self.rv

    def emit(self, etype, key, obj):
        self.events.append((int(obj["metadata"]["resourceVersion"]), etype, key,
                            copy.deepcopy(obj)))
        if len(self.events) > self.history:
            drop = len(self.events) - self.history
            self.compacted = max(self.compacted, self.events[drop - 1][0] + 1)
            del self.events[:drop]
        self.cond.notify_all()

    def managed_fields(self, key):
        out = []
        entries = sorted(self.owners.get(key, {}).items(),
                         key=lambda kv: tuple(x or "" for x in kv[0]))
        for (mgr, op, sub, av), paths in entries:
            if not paths:
                continue
            e = {"manager": mgr, "operation": op, "apiVersion": av, "time": now_rfc3339(),
                 "fieldsType": "FieldsV1", "fieldsV1": fields_v1(paths)}
            if sub:
                e["subresource"] = sub
            out.append(e)
        return out

    def record_update(self, key, old, new, manager, av, sub=None):
        """An Update operation by <manager>: it owns what it changed."""
        lo, ln = leaves(old, sub), leaves(new, sub)
        changed = {p for p, v in ln.items() if p not in lo or lo[p] != v}
        removed = set(lo) - set(ln)
        own = self.owners.setdefault(key, {})
        for ent in own.values():
            ent -= {q for q in ent if any(overlaps(q, p) for p in changed | removed)}
        own.setdefault((manager, "Update", sub, av), set()).update(changed)


# ---- the server ------------------------------------------------------------------------


class Fake:
    """State the control port changes."""

    def __init__(self, types, tokens=None):
        self.types = {(t.group, t.plural): t for t in types}
        self.store = Store(types)
        self.installed = {t.group for t in types}
        self.tokens = dict(tokens or {})          # token -> user
        self.rules = {}                           # user -> list of rules, or absent: all
        self.groups_of = {}                       # user -> groups
        self.faults = []
        self.log = []
        self.bookmark_s = 1.0
        self.gateway = {"mode": "accept", "delay": 0.05, "reason": "NotAllowedByListeners"}
        # the Deployment controller: "manual" (the test says when a rollout
        # is available: the "rollout" control op) or "auto" (every new
        # generation is available after the delay)
        self.deployments = {"mode": "manual", "delay": 0.05}
        self.watch_conns = []                     # open watch streams (handlers)
        self.lock = threading.Lock()

    def rollout_deployment(self, ns, name, available=None, deadline=False, generation=None):
        """Writes the status the Deployment controller would once <available>
        replicas (default spec.replicas) of the current generation are
        available, or once its progress deadline passed; observes the
        current generation (only <generation>'s, when given: else nothing)."""
        st = self.store
        key = ("apps", "deployments", ns, name)
        with st.lock:
            old = st.objects.get(key)
            if old is None:
                if generation is not None:
                    return None
                raise ValueError("no deployment %s/%s" % (ns, name))
            gen = old["metadata"].get("generation", 1)
            if generation is not None and gen != generation:
                return None
            new = copy.deepcopy(old)
            want = (new.get("spec") or {}).get("replicas", 1)
            avail = want if available is None else min(int(available), want)
            ok = avail >= want and not deadline
            prog = {"type": "Progressing", "status": "False" if deadline else "True",
                    "reason": "ProgressDeadlineExceeded" if deadline else
                    ("NewReplicaSetAvailable" if ok else "ReplicaSetUpdated"),
                    "message": "ReplicaSet has timed out progressing." if deadline
                    else "ReplicaSet is progressing."}
            new["status"] = {
                "observedGeneration": gen, "replicas": want, "updatedReplicas": want,
                "readyReplicas": avail, "availableReplicas": avail,
                "unavailableReplicas": want - avail,
                "conditions": [
                    {"type": "Available", "status": "True" if ok else "False",
                     "reason": "MinimumReplicasAvailable" if ok else "MinimumReplicasUnavailable",
                     "message": "Deployment has %d of %d replicas available." % (avail, want)},
                    prog]}
            new["metadata"]["resourceVersion"] = str(st.bump())
            st.record_update(key, old, new, "deployment-controller", "apps/v1", "status")
            new["metadata"]["managedFields"] = st.managed_fields(key)
            st.objects[key] = new
            st.emit("MODIFIED", key, new)
            return new

    # faults
    def take_fault(self, method, path, query):
        with self.lock:
            for f in self.faults:
                if f.get("times", 1) <= 0:
                    continue
                if f.get("method") and f["method"] != method:
                    continue
                if f.get("path") and not re.search(f["path"], path):
                    continue
                if f.get("watch") is not None and f["watch"] != ("watch" in query):
                    continue
                f["times"] = f.get("times", 1) - 1
                return dict(f)
        return None


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60
    server_version = "fake-apiserver"

    def log_message(self, *a):
        pass

    @property
    def fake(self):
        return self.server.fake

    # -- plumbing
    def send_json(self, code, obj, headers=()):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        for k, v in headers:
            self.send_header(k, v)
        if getattr(self, "_warn", None):
            self.send_header("Warning", '299 - "%s"' % self._warn)
        self.end_headers()
        self.wfile.write(body)
        self._status = code

    def send_error_status(self, e):
        self.send_json(e.code, e.status(), e.headers)

    def reset(self):
        """Ends the connection with a TCP reset, no answer."""
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                       struct.pack("ii", 1, 0))
        except OSError:
            pass
        self.close_connection = True
        try:
            self.connection.close()
        except OSError:
            pass
        self._status = "reset"

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n > MAX_BODY:
            raise APIError(413, "RequestEntityTooLarge", "the request is too large")
        return self.rfile.read(n) if n else b""

    def authenticate(self):
        h = self.headers.get("Authorization")
        if h:
            parts = h.split(" ", 1)
            if len(parts) == 2 and parts[0].lower() == "bearer":
                tok = parts[1].strip()
                user = self.fake.tokens.get(tok)
                self._auth = "bearer:" + tok
                if user:
                    return user
            raise APIError(401, "Unauthorized", "Unauthorized")
        try:
            cert = self.connection.getpeercert()
        except (AttributeError, ValueError):
            cert = None
        if cert:
            subj = dict(x[0] for x in cert.get("subject", ()))
            self._auth = "cert"
            cn = subj.get("commonName")
            if cn:
                return cn
        raise APIError(401, "Unauthorized", "Unauthorized")

    def authorize(self, user, verb, rtype, ns, name, sub):
        rules = self.fake.rules.get(user)
        if rules is None:
            return
        resource = rtype.plural + ("/" + sub if sub else "")
        for r in rules:
            if not any(v in ("*", verb) for v in r.get("verbs", [])):
                continue
            if not any(g in ("*", rtype.group) for g in r.get("apiGroups", [])):
                continue
            if not any(x in ("*", resource) for x in r.get("resources", [])):
                continue
            if r.get("namespaces") and not any(n in ("*", ns) for n in r["namespaces"]):
                continue
            if r.get("resourceNames") and name not in r["resourceNames"]:
                continue
            return
        what = rtype.gr() + (' "%s"' % name if name else "")
        msg = ('%s is forbidden: User "%s" cannot %s resource "%s" in API group "%s" in the '
               'namespace "%s"' % (what, user, verb, resource, rtype.group, ns))
        details = {"group": rtype.group, "kind": rtype.plural}
        if name:
            details["name"] = name
        raise APIError(403, "Forbidden", msg, details)

    # -- entry points
    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_PATCH(self):
        self.dispatch("PATCH")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def dispatch(self, method):
        self._status = None
        self._warn = None
        self._watch_fault = None
        self._auth = "none"
        self._user = None
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        entry = {"method": method, "path": url.path, "query": query,
                 "ctype": self.headers.get("Content-Type", ""),
                 "ua": self.headers.get("User-Agent", ""), "time": time.time(), "status": None,
                 "user": None, "auth": "none"}
        # logged now, completed at the end: a watch runs for long
        with self.fake.lock:
            self.fake.log.append(entry)
        try:
            body = self.read_body() if method in ("POST", "PUT", "PATCH") else b""
            if body:
                # what was written, for tests that follow a sequence of writes
                try:
                    entry["body"] = json.loads(body)
                except ValueError:
                    entry["body"] = body[:4096].decode("utf-8", "replace")
            fault = self.fake.take_fault(method, url.path, query)
            if fault and self.apply_fault(fault, url.path, query):
                return
            user = self.authenticate()
            self._user = user
            self.route(method, url.path, query, body, user)
        except APIError as e:
            self.send_error_status(e)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError):
            self.close_connection = True
            self._status = "client gone"
        except Exception as e:  # a bug here: say so, as a 500, and in the log
            traceback.print_exc()
            self.send_error_status(APIError(500, "InternalError", "fake apiserver: %s: %s" % (
                type(e).__name__, e)))
        finally:
            with self.fake.lock:
                entry.update({"status": self._status, "user": self._user, "auth": self._auth})

    def apply_fault(self, f, path, query):
        """Acts out <f>. Returns True when the request is answered (or cut)."""
        action = f.get("action")
        self._warn = f.get("warning")
        if f.get("delay"):
            time.sleep(float(f["delay"]))
        if action == "reset":
            self.reset()
            return True
        if action == "garbage":
            body = f.get("body", "this is not JSON {").encode()
            self.send_response(int(f.get("status", 200)))
            self.send_header("Content-Type", f.get("ctype", "application/json"))
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self._status = "garbage"
            return True
        if action == "big":
            n = int(f.get("bytes", 1 << 20))
            body = b'{"kind":"Status","message":"' + b"x" * n + b'"}'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            self._status = "big"
            return True
        if action == "truncate" and "watch" not in query:
            body = b'{"kind":"VirtualService","metadata":{"name":"x"'
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body) + 100))
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
            self.reset()
            return True
        if action == "conflict":
            self.concurrent_write(path)
            return False
        if action in ("truncate", "garbage_event", "drop_after"):
            self._watch_fault = f
            return False
        return False

    def concurrent_write(self, path):
        """Another writer changes the object at <path> (a PUT's target)."""
        m = re.match(r"^/apis?/(?:([^/]+)/)?([^/]+)/namespaces/([^/]+)/([^/]+)/([^/]+)", path)
        if not m:
            return
        group, _v, ns, plural, name = m.groups()
        if path.startswith("/api/"):
            group = ""
        st = self.fake.store
        with st.lock:
            key = (group or "", plural, ns, name)
            obj = st.objects.get(key)
            if not obj:
                return
            old = copy.deepcopy(obj)
            ann = obj["metadata"].setdefault("annotations", {})
            ann["fake.canaryd.io/other-writer"] = str(int(ann.get(
                "fake.canaryd.io/other-writer", "0")) + 1)
            obj["metadata"]["resourceVersion"] = str(st.bump())
            st.record_update(key, old, obj, "other-writer", obj.get("apiVersion", ""))
            obj["metadata"]["managedFields"] = st.managed_fields(key)
            st.emit("MODIFIED", key, obj)

    # -- routing
    def route(self, method, path, query, body, user):
        parts = [p for p in path.split("/") if p]
        if method == "GET" and path in ("/version", "/version/"):
            return self.send_json(200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fake"})
        if method == "GET" and parts == ["api"]:
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"]})
        if method == "GET" and parts == ["apis"]:
            return self.send_json(200, self.group_list())
        if parts[:1] == ["api"] and len(parts) >= 2:
            group, version, rest = "", parts[1], parts[2:]
        elif parts[:1] == ["apis"] and len(parts) >= 2:
            group = parts[1]
            if group not in self.fake.installed:
                raise not_served()
            if len(parts) == 2:
                if method != "GET":
                    raise not_served()
                return self.send_json(200, self.group_doc(group))
            version, rest = parts[2], parts[3:]
        else:
            raise not_served()
        if group != "" and group not in self.fake.installed:
            raise not_served()
        if not rest:
            if method != "GET":
                raise not_served()
            return self.send_json(200, self.resource_list(group, version))
        if len(rest) < 3 or rest[0] != "namespaces":
            raise not_served()
        ns, plural = rest[1], rest[2]
        name = rest[3] if len(rest) > 3 else None
        sub = rest[4] if len(rest) > 4 else None
        if len(rest) > 5:
            raise not_served()
        rtype = self.fake.types.get((group, plural))
        if not rtype or version not in rtype.versions or \
                (sub and (sub != "status" or not rtype.status)):
            raise not_served()
        watch = False
        if "watch" in query:
            try:
                watch = parse_bool(query["watch"])
            except ValueError:
                raise APIError(400, "BadRequest", 'invalid value for watch: "%s"' % query["watch"])
        verb = {"GET": "watch" if watch else ("get" if name else "list"), "POST": "create",
                "PUT": "update", "PATCH": "patch",
                "DELETE": "delete" if name else "deletecollection"}[method]
        self.authorize(user, verb, rtype, ns, name, sub)
        if method == "POST" and name:
            raise APIError(405, "MethodNotAllowed", "the server does not allow this method on the "
                           "requested resource")
        if method in ("PUT", "PATCH", "DELETE") and not name:
            raise APIError(405, "MethodNotAllowed", "the server does not allow this method on the "
                           "requested resource")
        ctx = Ctx(self, rtype, version, ns, name, sub, query, user)
        if method == "GET":
            if watch:
                return self.watch(ctx)
            if name:
                return self.send_json(200, ctx.out(ctx.get_or_404()))
            return self.send_json(200, ctx.list())
        if ns not in self.fake.store.namespaces:
            raise APIError(404, "NotFound", 'namespaces "%s" not found' % ns,
                           {"name": ns, "kind": "namespaces"})
        if method == "DELETE":
            return self.send_json(200, ctx.delete())
        code, obj, warns = ctx.write(method, body, self.headers.get("Content-Type", ""))
        hdrs = [("Warning", '299 - "%s"' % w.replace("\\", "\\\\").replace('"', '\\"'))
                for w in warns]
        return self.send_json(code, obj, hdrs)

    def group_list(self):
        groups = {}
        for (g, _p), t in self.fake.types.items():
            if g and g in self.fake.installed:
                groups.setdefault(g, t)
        return {"kind": "APIGroupList", "apiVersion": "v1",
                "groups": [self.group_doc(g) for g in sorted(groups)]}

    def group_doc(self, group):
        ts = [t for (g, _p), t in self.fake.types.items() if g == group]
        versions = []
        for t in ts:
            for v in t.versions:
                if v not in versions:
                    versions.append(v)
        pref = ts[0].storage
        return {"kind": "APIGroup", "apiVersion": "v1", "name": group,
                "versions": [{"groupVersion": group + "/" + v, "version": v} for v in versions],
                "preferredVersion": {"groupVersion": group + "/" + pref, "version": pref}}

    def resource_list(self, group, version):
        ts = [t for (g, _p), t in self.fake.types.items() if g == group and version in t.versions]
        if not ts:
            raise not_served()
        res = []
        verbs = ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"]
        for t in ts:
            res.append({"name": t.plural, "singularName": t.singular, "namespaced": True,
                        "kind": t.kind, "verbs": verbs, "shortNames": t.short})
            if t.status:
                res.append({"name": t.plural + "/status", "singularName": "", "namespaced": True,
                            "kind": t.kind, "verbs": ["get", "patch", "update"]})
        return {"kind": "APIResourceList", "apiVersion": "v1",
                "groupVersion": (group + "/" if group else "") + version, "resources": res}

    # -- watch
    def watch(self, ctx):
        st = self.fake.store
        q = ctx.query
        rv = q.get("resourceVersion", "")
        try:
            bookmarks = parse_bool(q["allowWatchBookmarks"]) if "allowWatchBookmarks" in q \
                else False
            timeout = min(int(q.get("timeoutSeconds") or MAX_WATCH_S), MAX_WATCH_S)
            start_rv = int(rv) if rv not in ("", "0") else None
        except ValueError:
            raise APIError(400, "BadRequest", "invalid watch parameters")
        match = ctx.matcher()
        fault = getattr(self, "_watch_fault", None)
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        self._status = 200
        self.close_connection = True
        sent = 0
        conn = {"handler": self, "expire": False, "drop": False}
        with self.fake.lock:
            self.fake.watch_conns.append(conn)

        def chunk(data):
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

        def event(etype, obj):
            nonlocal sent
            line = json.dumps({"type": etype, "object": obj}).encode() + b"\n"
            if fault and fault.get("action") == "truncate" and sent >= int(fault.get("after", 0)):
                # half an event, then the connection closes (no last chunk)
                chunk(line[: len(line) // 2])
                raise _Cut(close=True)
            if fault and fault.get("action") == "garbage_event" and \
                    sent >= int(fault.get("after", 0)):
                chunk(fault.get("body", "{not json").encode() + b"\n")
                raise _Cut(close=True)
            chunk(line)
            sent += 1
            if fault and fault.get("action") == "drop_after" and sent >= int(fault.get("after", 1)):
                raise _Cut()

        def expired(msg):
            event("ERROR", {"kind": "Status", "apiVersion": "v1", "metadata": {},
                            "status": "Failure", "message": msg, "reason": "Expired",
                            "code": 410})

        end = time.time() + timeout
        try:
            with st.lock:
                if start_rv is not None and start_rv < st.compacted:
                    expired("too old resource version: %d (%d)" % (start_rv, st.compacted))
                    raise _Cut(clean=True)
                if start_rv is None:
                    initial = [copy.deepcopy(o) for k, o in sorted(st.objects.items())
                               if match(k, o)]
                    last = st.rv
                else:
                    initial = []
                    last = start_rv
            for o in initial:
                event("ADDED", ctx.out(o))
            next_bm = time.time() + self.fake.bookmark_s
            while time.time() < end:
                batch = []
                with st.lock:
                    if conn["expire"]:
                        conn["expire"] = False
                        batch = "expire"
                    elif conn["drop"]:
                        batch = "drop"
                    else:
                        batch = [e for e in st.events if e[0] > last and match(e[2], e[3])]
                        newest = st.rv
                        if not batch:
                            wait = min(end, next_bm) - time.time()
                            if wait > 0:
                                st.cond.wait(min(wait, 0.5))
                            continue_loop = True
                        else:
                            continue_loop = False
                if batch == "expire":
                    expired("too old resource version: %d (%d)" % (last, st.compacted))
                    raise _Cut(clean=True)
                if batch == "drop":
                    raise _Cut()
                for e in batch:
                    event(e[1], ctx.out(e[3]))
                    last = e[0]
                if not batch and continue_loop and bookmarks and time.time() >= next_bm:
                    last = max(last, newest)
                    event("BOOKMARK", {"kind": ctx.rtype.kind,
                                       "apiVersion": ctx.rtype.api_version(ctx.version),
                                       "metadata": {"resourceVersion": str(last),
                                                    "annotations": {
                                                        "k8s.io/initial-events-end": "true"}}})
                    next_bm = time.time() + self.fake.bookmark_s
                if st.closing:
                    break
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except _Cut as c:
            if c.clean:
                self.wfile.write(b"0\r\n\r\n")
                self.wfile.flush()
            elif c.close:
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
            else:
                self.reset()
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            pass
        finally:
            with self.fake.lock:
                if conn in self.fake.watch_conns:
                    self.fake.watch_conns.remove(conn)


class _Cut(Exception):
    """Ends a watch stream: <clean> with its last chunk, <close> without
    (a FIN), else with a reset."""

    def __init__(self, clean=False, close=False):
        super().__init__()
        self.clean, self.close = clean, close


class Ctx:
    """One request on a resource: what it names and the operations on it."""

    def __init__(self, h, rtype, version, ns, name, sub, query, user):
        self.h, self.rtype, self.version = h, rtype, version
        self.ns, self.name, self.sub, self.query, self.user = ns, name, sub, query, user
        self.st = h.fake.store
        self.key = (rtype.group, rtype.plural, ns, name)

    def out(self, obj):
        o = copy.deepcopy(obj)
        o["apiVersion"] = self.rtype.api_version(self.version)
        o["kind"] = self.rtype.kind
        return o

    def not_found(self):
        return APIError(404, "NotFound", '%s "%s" not found' % (self.rtype.gr(), self.name),
                        {"name": self.name, "group": self.rtype.group,
                         "kind": self.rtype.plural})

    def get_or_404(self):
        with self.st.lock:
            o = self.st.objects.get(self.key)
            if o is None:
                raise self.not_found()
            return copy.deepcopy(o)

    def matcher(self):
        fsel = self.query.get("fieldSelector", "")
        lsel = self.query.get("labelSelector", "")
        want_name = None
        for term in filter(None, fsel.split(",")):
            k, _, v = term.partition("=")
            if k == "metadata.name":
                want_name = v.lstrip("=")
            elif k == "metadata.namespace":
                if v.lstrip("=") != self.ns:
                    want_name = "\0none"
            else:
                raise APIError(400, "BadRequest", 'field label not supported: %s' % k)
        terms = []
        for term in filter(None, lsel.split(",")):
            if "!=" in term:
                k, v = term.split("!=", 1)
                terms.append((k.strip(), "!=", v.strip()))
            elif "=" in term:
                k, v = term.split("=", 1)
                terms.append((k.strip(), "=", v.strip().lstrip("=")))
            else:
                terms.append((term.strip(), "exists", None))
        g, p, ns = self.rtype.group, self.rtype.plural, self.ns

        def match(key, obj):
            if key[0] != g or key[1] != p or key[2] != ns:
                return False
            if want_name is not None and key[3] != want_name:
                return False
            labels = (obj.get("metadata") or {}).get("labels") or {}
            for k, op, v in terms:
                if op == "=" and labels.get(k) != v:
                    return False
                if op == "!=" and labels.get(k) == v:
                    return False
                if op == "exists" and k not in labels:
                    return False
            return True
        return match

    def list(self):
        match = self.matcher()
        with self.st.lock:
            items = [self.out(o) for k, o in sorted(self.st.objects.items()) if match(k, o)]
            rv = str(self.st.rv)
        for i in items:
            del i["apiVersion"], i["kind"]
        return {"kind": self.rtype.kind + "List", "apiVersion": self.rtype.api_version(self.version),
                "metadata": {"resourceVersion": rv}, "items": items}

    def delete(self):
        with self.st.lock:
            o = self.st.objects.pop(self.key, None)
            if o is None:
                raise self.not_found()
            self.st.owners.pop(self.key, None)
            o = copy.deepcopy(o)
            o["metadata"]["resourceVersion"] = str(self.st.bump())
            self.st.emit("DELETED", self.key, o)
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success",
                "details": {"name": self.name, "group": self.rtype.group,
                            "kind": self.rtype.plural, "uid": o["metadata"].get("uid", "")}}

    # -- writes
    def decode(self, body, ctype):
        try:
            if ctype == "application/apply-patch+yaml":
                if yaml is not None:
                    return yaml.safe_load(body.decode("utf-8"))
                return json.loads(body)
            return json.loads(body)
        except (ValueError, UnicodeDecodeError) as e:
            raise APIError(400, "BadRequest", "the body of the request was in an unknown format: "
                           "%s" % str(e).splitlines()[0])
        except Exception as e:  # yaml errors
            raise APIError(400, "BadRequest", "error decoding YAML: %s" % str(e).splitlines()[0])

    def validation_mode(self):
        v = self.query.get("fieldValidation", "Warn")
        if v not in ("Ignore", "Warn", "Strict"):
            raise APIError(400, "BadRequest", 'fieldValidation must be one of "Ignore", "Warn" or '
                           '"Strict", not "%s"' % v)
        return v

    def check_identity(self, obj):
        if not isinstance(obj, dict):
            raise APIError(400, "BadRequest", "the object is not a JSON object")
        meta = obj.get("metadata")
        if meta is None:
            meta = obj["metadata"] = {}
        if not isinstance(meta, dict):
            raise APIError(400, "BadRequest", "metadata is not an object")
        kind = obj.get("kind")
        if kind is not None and kind != self.rtype.kind:
            raise APIError(400, "BadRequest", 'the kind in the data (%s) does not match the '
                           'expected kind (%s)' % (kind, self.rtype.kind))
        av = obj.get("apiVersion")
        if av is not None and av not in [self.rtype.api_version(v) for v in self.rtype.versions]:
            raise APIError(400, "BadRequest", "the API version in the data (%s) does not match the "
                           "expected API version (%s)" % (av, self.rtype.api_version(self.version)))
        if meta.get("namespace") not in (None, self.ns):
            raise APIError(400, "BadRequest", "the namespace of the provided object does not match "
                           "the namespace sent on the request")
        name = meta.get("name")
        if self.name is not None and name is not None and name != self.name:
            raise APIError(400, "BadRequest", "the name of the object (%s) does not match the name "
                           "on the URL (%s)" % (name, self.name))
        if self.name is None and not name:
            raise APIError(422, "Invalid", "%s.%s \"\" is invalid: metadata.name: Required value: "
                           "name or generateName is required" % (self.rtype.kind, self.rtype.group),
                           {"kind": self.rtype.kind, "group": self.rtype.group,
                            "causes": [{"reason": "FieldValueRequired", "field": "metadata.name",
                                        "message": "Required value: name or generateName is "
                                                   "required"}]})
        if name is not None and not re.match(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$", str(name)):
            raise APIError(422, "Invalid", '%s.%s "%s" is invalid: metadata.name: Invalid value' % (
                self.rtype.kind, self.rtype.group, name), {
                "name": name, "kind": self.rtype.kind, "group": self.rtype.group,
                "causes": [{"reason": "FieldValueInvalid", "field": "metadata.name",
                            "message": "Invalid value: a lowercase RFC 1123 subdomain"}]})

    def shape(self, obj, mode):
        """Prunes, defaults and validates <obj> by the schema. Returns
        (obj, warnings)."""
        schema = self.rtype.schemas.get(self.version)
        warnings = []
        if schema:
            unknown = []
            meta = obj.get("metadata")
            body = {k: v for k, v in obj.items() if k not in ("metadata", "apiVersion", "kind")}
            props = {k: v for k, v in (schema.get("properties") or {}).items()
                     if k not in ("metadata", "apiVersion", "kind")}
            pruned = prune(body, dict(schema, properties=props), "", unknown)
            if unknown and mode == "Strict":
                raise APIError(400, "BadRequest", "strict decoding error: " + ", ".join(
                    'unknown field "%s"' % u for u in unknown))
            if mode == "Warn":
                warnings = ['unknown field "%s"' % u for u in unknown]
            obj = dict(pruned, metadata=meta, apiVersion=obj.get("apiVersion"),
                       kind=obj.get("kind"))
            v = self.rtype.validator(self.version)
            if v is not None:
                check = {k: x for k, x in obj.items() if k not in ("metadata",)}
                check["metadata"] = {}
                check["apiVersion"] = self.rtype.api_version(self.version)
                check["kind"] = self.rtype.kind
                errs = sorted(v.iter_errors(check), key=lambda e: list(e.absolute_path))
                if errs:
                    causes = []
                    for e in errs[:20]:
                        field = ""
                        for p in e.absolute_path:
                            field += "[%d]" % p if isinstance(p, int) else ("." if field else "") + p
                        causes.append({"reason": "FieldValueInvalid", "field": field,
                                       "message": "Invalid value: %s: %s" % (
                                           json.dumps(e.instance)[:80], e.message[:300])})
                    name = obj["metadata"].get("name", "")
                    msg = '%s.%s "%s" is invalid: %s' % (
                        self.rtype.kind, self.rtype.group, name,
                        causes[0]["field"] + ": " + causes[0]["message"] if len(causes) == 1 else
                        "[" + ", ".join(c["field"] + ": " + c["message"] for c in causes) + "]")
                    raise APIError(422, "Invalid", msg, {"name": name, "group": self.rtype.group,
                                                         "kind": self.rtype.kind,
                                                         "causes": causes})
        return obj, warnings

    def write(self, method, body, ctype):
        """POST, PUT and PATCH. Returns (code, object, warnings)."""
        mode = self.validation_mode()
        dry = self.query.get("dryRun")
        if dry not in (None, "All"):
            raise APIError(400, "BadRequest", 'dryRun must be "All"')
        ctype = ctype.split(";")[0].strip().lower()
        if method == "PATCH":
            if ctype == "application/strategic-merge-patch+json":
                raise APIError(415, "UnsupportedMediaType", "the body of the request was in an "
                               "unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, "
                               "application/apply-patch+yaml")
            if ctype not in ("application/json-patch+json", "application/merge-patch+json",
                             "application/apply-patch+yaml"):
                raise APIError(415, "UnsupportedMediaType", "the body of the request was in an "
                               "unknown format - accepted media types include: "
                               "application/json-patch+json, application/merge-patch+json, "
                               "application/apply-patch+yaml")
        elif ctype not in ("application/json", ""):
            raise APIError(415, "UnsupportedMediaType", 'the body of the request was in an unknown '
                           'format - accepted media types include: application/json, '
                           'application/yaml, application/vnd.kubernetes.protobuf')
        doc = self.decode(body, ctype)
        manager = self.query.get("fieldManager") or (self.h.headers.get("User-Agent") or
                                                     "unknown").split("/")[0]
        if ctype == "application/apply-patch+yaml":
            return self.apply(doc, mode, dry)
        with self.st.lock:
            old = self.st.objects.get(self.key) if self.name else None
            if method == "POST":
                self.check_identity(doc)
                self.name = doc["metadata"]["name"]
                self.key = (self.rtype.group, self.rtype.plural, self.ns, self.name)
                if doc["metadata"].get("resourceVersion"):
                    raise APIError(400, "BadRequest", "resourceVersion should not be set on "
                                   "objects to be created")
                if self.key in self.st.objects:
                    raise APIError(409, "AlreadyExists", '%s "%s" already exists' % (
                        self.rtype.gr(), self.name), {"name": self.name, "group": self.rtype.group,
                                                      "kind": self.rtype.plural})
                new, warns = self.shape(doc, mode)
                return self.store(None, new, manager, dry, 201, warns)
            if old is None:
                raise self.not_found()
            if method == "PUT":
                self.check_identity(doc)
                rv = doc["metadata"].get("resourceVersion")
                if not rv and not self.rtype.builtin:
                    raise APIError(422, "Invalid", '%s.%s "%s" is invalid: metadata.resourceVersion:'
                                   ' Invalid value: 0x0: must be specified for an update' % (
                                       self.rtype.kind, self.rtype.group, self.name),
                                   {"name": self.name, "group": self.rtype.group,
                                    "kind": self.rtype.kind,
                                    "causes": [{"reason": "FieldValueInvalid",
                                                "field": "metadata.resourceVersion",
                                                "message": "Invalid value: 0x0: must be specified "
                                                           "for an update"}]})
                new = doc
            else:
                live = self.out(old)
                try:
                    if ctype == "application/merge-patch+json":
                        if not isinstance(doc, dict):
                            raise ValueError("a merge patch is a JSON object")
                        new = merge_patch(live, doc)
                    else:
                        new = json_patch(live, doc)
                except ValueError as e:
                    raise APIError(422, "Invalid", "the server rejected our request due to an error "
                                   "in our request: %s" % e, {"name": self.name,
                                                             "group": self.rtype.group,
                                                             "kind": self.rtype.kind})
                self.check_identity(new)
                rv = doc["metadata"].get("resourceVersion") if isinstance(doc, dict) and \
                    isinstance(doc.get("metadata"), dict) else None
            if rv and rv != old["metadata"]["resourceVersion"]:
                raise APIError(409, "Conflict", 'Operation cannot be fulfilled on %s "%s": the '
                               'object has been modified; please apply your changes to the latest '
                               'version and try again' % (self.rtype.gr(), self.name),
                               {"name": self.name, "group": self.rtype.group,
                                "kind": self.rtype.plural})
            new, warns = self.shape(new, mode)
            return self.store(old, new, manager, dry, 200, warns)

    def store(self, old, new, manager, dry, code, warns, apply_paths=None, owners_changed=False):
        """Saves <new> over <old> (None: a create). Holds the lock."""
        st = self.st
        new = copy.deepcopy(new)
        meta = new["metadata"]
        av = self.rtype.api_version(self.version)
        if self.sub == "status":
            # only the status changes; the rest is the live object's
            merged = copy.deepcopy(old)
            if "status" in new:
                merged["status"] = new["status"]
            else:
                merged.pop("status", None)
            new, meta = merged, merged["metadata"]
        else:
            if self.rtype.status:
                # a write to the main resource keeps the status
                if old is not None and "status" in old:
                    new["status"] = copy.deepcopy(old["status"])
                else:
                    new.pop("status", None)
            for k in ("uid", "creationTimestamp", "generation", "managedFields"):
                meta.pop(k, None)
            if old is not None:
                for k in ("uid", "creationTimestamp", "generation"):
                    if k in old["metadata"]:
                        meta[k] = old["metadata"][k]
            else:
                meta["uid"] = str(uuid.uuid4())
                meta["creationTimestamp"] = now_rfc3339()
                meta["generation"] = 1
            meta["name"] = self.name
            meta["namespace"] = self.ns

        def spec_of(o):
            return {k: v for k, v in (o or {}).items()
                    if k not in ("metadata", "status", "apiVersion", "kind")}
        if old is not None and spec_of(old) != spec_of(new):
            meta["generation"] = old["metadata"].get("generation", 1) + 1
        new["apiVersion"] = self.rtype.api_version(self.rtype.storage)
        new["kind"] = self.rtype.kind
        if old is not None and self.unchanged(old, new) and not owners_changed:
            # a no-op write keeps the resourceVersion and sends no event
            return code, self.out(old), warns
        if dry == "All":
            meta["resourceVersion"] = old["metadata"]["resourceVersion"] if old else ""
            return code, self.out(new), warns
        meta["resourceVersion"] = str(st.bump())
        if apply_paths is not None:
            pass  # the caller recorded ownership
        else:
            st.record_update(self.key, old, new, manager, av, self.sub)
        meta["managedFields"] = st.managed_fields(self.key)
        st.objects[self.key] = new
        st.emit("ADDED" if old is None else "MODIFIED", self.key, new)
        self.after_write(new)
        return code, self.out(new), warns

    @staticmethod
    def unchanged(old, new):
        def strip(o):
            o = copy.deepcopy(o)
            for k in ("resourceVersion", "managedFields"):
                o["metadata"].pop(k, None)
            return o
        return strip(old) == strip(new)

    def after_write(self, obj):
        """The gateway controller: accepts (or rejects) an HTTPRoute's new
        generation for each of its parents, after a delay. The Deployment
        controller in "auto" mode: a Deployment's new generation is
        available after a delay."""
        if self.rtype.plural == "deployments" and self.sub != "status":
            dep = dict(self.h.fake.deployments)
            if dep.get("mode") == "auto":
                fake, ns, name = self.h.fake, self.key[2], self.key[3]
                gen = obj["metadata"].get("generation", 1)
                t = threading.Timer(float(dep.get("delay", 0)),
                                    lambda: fake.rollout_deployment(ns, name, generation=gen))
                t.daemon = True
                t.start()
            return
        if self.rtype.plural != "httproutes" or self.sub == "status":
            return
        gw = dict(self.h.fake.gateway)
        if gw.get("mode") not in ("accept", "reject"):
            return
        gen = obj["metadata"].get("generation", 1)
        key = self.key
        st = self.st

        def act():
            with st.lock:
                o = st.objects.get(key)
                if o is None or o["metadata"].get("generation") != gen:
                    return
                old = copy.deepcopy(o)
                parents = []
                for ref in (o.get("spec") or {}).get("parentRefs") or []:
                    pr = {"group": ref.get("group", "gateway.networking.k8s.io"),
                          "kind": ref.get("kind", "Gateway"),
                          "namespace": ref.get("namespace", key[2]), "name": ref.get("name")}
                    for k in ("sectionName", "port"):
                        if k in ref:
                            pr[k] = ref[k]
                    ok = gw["mode"] == "accept"
                    parents.append({
                        "parentRef": pr, "controllerName": "example.net/fake-gateway-controller",
                        "conditions": [
                            {"type": "Accepted", "status": "True" if ok else "False",
                             "reason": "Accepted" if ok else gw.get("reason"),
                             "message": "Route is accepted" if ok else "no listener allows it",
                             "observedGeneration": gen, "lastTransitionTime": now_rfc3339()},
                            {"type": "ResolvedRefs", "status": "True", "reason": "ResolvedRefs",
                             "message": "", "observedGeneration": gen,
                             "lastTransitionTime": now_rfc3339()}]})
                o["status"] = {"parents": parents}
                o["metadata"]["resourceVersion"] = str(st.bump())
                st.record_update(key, old, o, "fake-gateway-controller",
                                 o.get("apiVersion", ""), "status")
                o["metadata"]["managedFields"] = st.managed_fields(key)
                st.emit("MODIFIED", key, o)
        t = threading.Timer(float(gw.get("delay", 0)), act)
        t.daemon = True
        t.start()

    def apply(self, doc, mode, dry):
        """Server-side apply."""
        manager = self.query.get("fieldManager")
        if not manager:
            raise APIError(400, "BadRequest", "PatchOptions.meta.k8s.io \"\" is invalid: "
                           "fieldManager: Required value: is required for apply patch")
        try:
            force = parse_bool(self.query["force"]) if "force" in self.query else False
        except ValueError:
            raise APIError(400, "BadRequest", 'invalid value for force: "%s"' % self.query["force"])
        if not isinstance(doc, dict) or not doc.get("apiVersion") or not doc.get("kind"):
            raise APIError(400, "BadRequest", "invalid object: apply needs apiVersion and kind")
        self.check_identity(doc)
        doc, warns = self.shape(doc, mode)
        av = self.rtype.api_version(self.version)
        with self.st.lock:
            old = self.st.objects.get(self.key)
            applied = leaves(doc, self.sub)
            own = self.st.owners.setdefault(self.key, {}) if not dry else \
                copy.deepcopy(self.st.owners.get(self.key, {}))
            owners_before = copy.deepcopy(own)
            live = leaves(old, self.sub) if old else {}
            mine = (manager, "Apply", self.sub, av)
            conflicts = {}
            # a field canaryd sets to what is already there is shared, not
            # taken; one it sets to something else is taken (with force) or
            # a conflict (without) when another manager owns it
            differing = [p for p, v in applied.items()
                         if not (p in live and live[p] == v) and
                         any(overlaps(p, q) for q in live)]
            for p in differing:
                for ent, paths in own.items():
                    if ent[0] == manager:
                        continue
                    if any(overlaps(p, q) for q in paths):
                        conflicts.setdefault((ent[0], ent[3]), []).append(p)
            if conflicts and not force:
                n = sum(len(v) for v in conflicts.values())
                parts = []
                for (mgr, mav), ps in sorted(conflicts.items()):
                    if len(ps) == 1:
                        parts.append('conflict with "%s" using %s: %s' % (mgr, mav, path_text(ps[0])))
                    else:
                        parts.append('conflicts with "%s" using %s:\n%s' % (
                            mgr, mav, "\n".join("- " + path_text(p) for p in sorted(ps))))
                raise APIError(409, "Conflict", "Apply failed with %d conflict%s: %s" % (
                    n, "" if n == 1 else "s", "\n".join(parts)),
                    {"name": self.name, "group": self.rtype.group, "kind": self.rtype.plural,
                     "causes": [{"reason": "FieldManagerConflict", "field": path_text(p),
                                 "message": 'conflict with "%s" using %s' % (mgr, mav)}
                                for (mgr, mav), ps in sorted(conflicts.items()) for p in ps]})
            new = copy.deepcopy(old) if old else {"metadata": {}}
            # what this manager applied before and applies no more: removed,
            # unless someone else owns it too
            before = own.get(mine, set())
            for p in before - set(applied):
                if not any(p in paths for ent, paths in own.items() if ent != mine):
                    del_path(new, p)
            for p, v in applied.items():
                # a map replaced by a scalar or the other way round
                for q in list(leaves(new, self.sub)):
                    if q != p and overlaps(p, q) and len(q) > len(p):
                        del_path(new, q)
                set_path(new, p, v)
            # forced: the others lose what they owned and canaryd set differently
            for ent, paths in own.items():
                if ent != mine:
                    paths -= {q for q in paths if any(overlaps(q, p) for p in differing)}
            own[mine] = set(applied)
            new["apiVersion"] = doc["apiVersion"]
            new["kind"] = doc["kind"]
            new["metadata"]["name"] = self.name
            if dry == "All":
                new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"] if old else ""
                return (200 if old else 201), self.out(new), warns
            return self.store(old, new, manager, dry, 200 if old else 201, warns, apply_paths=True,
                              owners_changed=own != owners_before)


class TLSServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, addr, ctx, fake):
        super().__init__(addr, Handler)
        self.ctx = ctx
        self.fake = fake

    def finish_request(self, request, client_address):
        # the TLS handshake in the connection's own thread, not the accept loop
        try:
            request.settimeout(10)
            tls = self.ctx.wrap_socket(request, server_side=True)
            tls.settimeout(Handler.timeout)
        except (ssl.SSLError, OSError):
            try:
                request.close()
            except OSError:
                pass
            return
        try:
            Handler(tls, client_address, self)
        except (ssl.SSLError, OSError):
            pass
        finally:
            try:
                tls.close()
            except OSError:
                pass

    def shutdown_request(self, request):
        try:
            request.close()
        except OSError:
            pass


class Control(BaseHTTPRequestHandler):
    """The test's side door: POST / with a JSON command, GET /log."""
    protocol_version = "HTTP/1.1"

    def log_message(self, *a):
        pass

    def reply(self, code, obj):
        body = json.dumps(obj).encode()
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        fake = self.server.fake
        if self.path.startswith("/log"):
            with fake.lock:
                return self.reply(200, list(fake.log))
        self.reply(404, {"error": "no such path"})

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        try:
            cmd = json.loads(self.rfile.read(n) or b"{}")
            self.reply(200, self.handle_cmd(self.server.fake, cmd) or {"ok": True})
        except Exception as e:  # the test sees why
            self.reply(400, {"error": "%s: %s" % (type(e).__name__, e)})

    @staticmethod
    def handle_cmd(fake, cmd):
        op = cmd["op"]
        st = fake.store
        if op == "tokens":            # {"tokens": {token: user}} replaces them all
            fake.tokens = dict(cmd["tokens"])
        elif op == "rules":           # {"user": U, "rules": [...] or null}
            if cmd.get("rules") is None:
                fake.rules.pop(cmd["user"], None)
            else:
                fake.rules[cmd["user"]] = cmd["rules"]
        elif op == "uninstall":
            fake.installed.discard(cmd["group"])
        elif op == "install":
            fake.installed.add(cmd["group"])
        elif op == "fault":           # {"fault": {...}}
            with fake.lock:
                fake.faults.append(dict(cmd["fault"]))
        elif op == "clear_faults":
            with fake.lock:
                fake.faults = []
        elif op == "clear_log":
            with fake.lock:
                fake.log = []
        elif op == "bookmarks":
            fake.bookmark_s = float(cmd["seconds"])
        elif op == "gateway":         # {"mode": accept|reject|off, "delay": s}
            fake.gateway = dict(fake.gateway, **{k: v for k, v in cmd.items() if k != "op"})
        elif op == "compact":         # versions below the current one: 410
            with st.lock:
                st.compacted = st.rv
                st.events = [e for e in st.events if e[0] >= st.compacted]
        elif op in ("expire_watches", "drop_watches"):
            with st.lock:
                with fake.lock:
                    for c in fake.watch_conns:
                        c["expire" if op == "expire_watches" else "drop"] = True
                st.cond.notify_all()
            return {"ok": True, "watches": len(fake.watch_conns)}
        elif op == "watches":
            with fake.lock:
                return {"watches": len(fake.watch_conns)}
        elif op == "namespace":
            st.namespaces.add(cmd["name"])
        elif op == "get":             # the stored object, as stored
            with st.lock:
                return {"object": st.objects.get((cmd["group"], cmd["resource"], cmd["ns"],
                                                  cmd["name"]))}
        elif op in ("put", "status"):  # writes around the API (a controller's part)
            rtype = fake.types[(cmd["group"], cmd["resource"])]
            key = (cmd["group"], cmd["resource"], cmd["ns"], cmd["name"])
            with st.lock:
                old = st.objects.get(key)
                if op == "status":
                    new = copy.deepcopy(old)
                    new["status"] = cmd["status"]
                else:
                    new = copy.deepcopy(cmd["object"])
                    new.setdefault("metadata", {})
                    new["metadata"].update({"name": cmd["name"], "namespace": cmd["ns"]})
                    if old:
                        for k in ("uid", "creationTimestamp", "generation"):
                            new["metadata"][k] = old["metadata"].get(k)
                        if cmd.get("generation"):
                            new["metadata"]["generation"] = cmd["generation"]
                    else:
                        new["metadata"].update({"uid": str(uuid.uuid4()), "generation":
                                                cmd.get("generation", 1),
                                                "creationTimestamp": now_rfc3339()})
                new["apiVersion"] = rtype.api_version(rtype.storage)
                new["kind"] = rtype.kind
                new["metadata"]["resourceVersion"] = str(st.bump())
                st.record_update(key, old, new, cmd.get("manager", "test-controller"),
                                 new["apiVersion"], "status" if op == "status" else None)
                new["metadata"]["managedFields"] = st.managed_fields(key)
                st.objects[key] = new
                st.emit("MODIFIED" if old else "ADDED", key, new)
                return {"object": new}
        elif op == "rollout":
            # the Deployment controller, driven by the test: {"ns", "name",
            # "available": N (default spec.replicas), "deadline": bool}
            return {"object": fake.rollout_deployment(cmd["ns"], cmd["name"],
                                                      cmd.get("available"),
                                                      cmd.get("deadline", False))}
        elif op == "deployments":     # {"mode": "auto"|"manual", "delay": s}
            fake.deployments = dict(fake.deployments,
                                    **{k: v for k, v in cmd.items() if k != "op"})
        elif op == "rv":
            with st.lock:
                return {"rv": st.rv, "compacted": st.compacted}
        else:
            raise ValueError("unknown op '%s'" % op)
        return None


class ControlServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, addr, fake):
        super().__init__(addr, Control)
        self.fake = fake


def make_context(cert, key, ca):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    if ca:
        ctx.load_verify_locations(ca)
        ctx.verify_mode = ssl.CERT_OPTIONAL
    return ctx


def serve(cert, key, ca, tokens, crd_dir=DEFAULT_CRDS, port=0, control_port=0):
    """Starts the server and its control port in threads. Returns (fake,
    server, control)."""
    fake = Fake(load_crds(crd_dir), tokens)
    srv = TLSServer(("127.0.0.1", port), make_context(cert, key, ca), fake)
    ctl = ControlServer(("127.0.0.1", control_port), fake)
    for s in (srv, ctl):
        threading.Thread(target=s.serve_forever, daemon=True).start()
    return fake, srv, ctl


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cert", required=True)
    ap.add_argument("--key", required=True)
    ap.add_argument("--ca", help="CA for client certificates")
    ap.add_argument("--token", action="append", default=[], metavar="TOKEN=USER")
    ap.add_argument("--crds", default=DEFAULT_CRDS)
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--control-port", type=int, default=0)
    a = ap.parse_args()
    tokens = dict(t.split("=", 1) for t in a.token)
    fake, srv, ctl = serve(a.cert, a.key, a.ca, tokens, a.crds, a.port, a.control_port)
    print(json.dumps({"port": srv.server_address[1], "control": ctl.server_address[1],
                      "jsonschema": jsonschema is not None, "yaml": yaml is not None}), flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.store.closing = True


if __name__ == "__main__":
    main()
