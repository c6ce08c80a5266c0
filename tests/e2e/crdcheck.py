"""crdcheck.py - holds Kubernetes objects to the real CustomResourceDefinitions
in ../shared/data/mesh/crds/, as a strict API server would on create
(?fieldValidation=Strict), without a cluster:

1. the CRD's defaults are filled in (structural defaulting), as the server
   does before it validates;
2. the OpenAPI v3 schema of the object's version, with every object that
   declares its properties closed (an unknown field is an error, as with
   fieldValidation=Strict), x-kubernetes-int-or-string and nullable
   honoured, checked by Debian's python3-jsonschema;
3. x-kubernetes-list-type set/map uniqueness;
4. the CEL rules (x-kubernetes-validations) on every value present, with
   @marcbachmann/cel-js under node (installed by the test run into
   build/npm-cel, never committed). Transition rules (those reading
   oldSelf) do not apply on create and are counted apart.
5. metadata as the server checks it for any object: name, namespace, label
   and annotation keys.

What it does not do: the formats (format: duration, hostname... are
ignored here, as jsonschema does without a format checker), and anything a
controller checks after the write (an Istio or Gateway API controller's
own validation)."""
import copy
import json
import os
import re
import shutil
import subprocess

import jsonschema
import yaml

CEL_PACKAGE = "@marcbachmann/cel-js"
CEL_VERSION = "8.0.0"
HERE = os.path.dirname(os.path.abspath(__file__))

DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
QUALIFIED = re.compile(r"^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$")
LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")


# libyaml's loader when python3-yaml has it: it reads the 2.4 MB of CRDs in
# about a second, the pure-Python one in six
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
# crd_dir -> versions, read once per process: nothing here changes them
# (check_schema defaults a copy of the object, never the schema)
_READ = {}


class CRDs:
    """Every version of every CRD under <crd_dir>: (group, kind) -> versions."""

    def __init__(self, crd_dir):
        key = os.path.abspath(crd_dir)
        if key not in _READ:
            _READ[key] = self._read(crd_dir)
        self.versions = _READ[key]

    @staticmethod
    def _read(crd_dir):
        versions = {}
        for root, _, files in os.walk(crd_dir):
            for f in sorted(files):
                if not f.endswith((".yaml", ".yml")):
                    continue
                path = os.path.join(root, f)
                with open(path) as fh:
                    for doc in yaml.load_all(fh, Loader=_LOADER):
                        if not doc or doc.get("kind") != "CustomResourceDefinition":
                            continue
                        spec = doc["spec"]
                        key = (spec["group"], spec["names"]["kind"])
                        for v in spec.get("versions", []):
                            schema = (v.get("schema") or spec.get("validation") or {}).get("openAPIV3Schema")
                            versions.setdefault(key, []).append({
                                "file": os.path.relpath(path, crd_dir), "version": v["name"],
                                "served": bool(v.get("served")), "schema": schema})
        return versions

    def schemas_for(self, obj):
        """The schemas of <obj>'s apiVersion in every CRD file defining it."""
        group, _, version = obj["apiVersion"].rpartition("/")
        return [v for v in self.versions.get((group, obj["kind"]), []) if v["version"] == version]


def to_jsonschema(s):
    """A Kubernetes structural schema as a strict JSON schema."""
    if not isinstance(s, dict):
        return s
    out = {}
    for k, v in s.items():
        if k == "properties":
            out[k] = {n: to_jsonschema(x) for n, x in v.items()}
        elif k in ("items", "not"):
            out[k] = to_jsonschema(v)
        elif k == "additionalProperties":
            out[k] = to_jsonschema(v) if isinstance(v, dict) else v
        elif k in ("oneOf", "anyOf", "allOf"):
            out[k] = [to_jsonschema(x) for x in v]
        elif k in ("type", "required", "enum", "pattern", "minLength", "maxLength", "minItems",
                   "maxItems", "minimum", "maximum", "uniqueItems", "minProperties",
                   "maxProperties", "multipleOf", "exclusiveMinimum", "exclusiveMaximum"):
            out[k] = v
    if s.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
    if s.get("nullable") and "type" in out:
        t = out["type"]
        out["type"] = (t if isinstance(t, list) else [t]) + ["null"]
        if "enum" in out:
            out["enum"] = list(out["enum"]) + [None]
    if (s.get("type") == "object" and not s.get("x-kubernetes-preserve-unknown-fields")
            and "additionalProperties" not in s):
        out["additionalProperties"] = False
    return out


def apply_defaults(v, s):
    """Structural defaulting, in place."""
    if not isinstance(s, dict):
        return
    if isinstance(v, dict):
        props = s.get("properties") or {}
        for n, ps in props.items():
            if n not in v and isinstance(ps, dict) and "default" in ps:
                v[n] = copy.deepcopy(ps["default"])
        for n, x in v.items():
            if n in props:
                apply_defaults(x, props[n])
            elif isinstance(s.get("additionalProperties"), dict):
                apply_defaults(x, s["additionalProperties"])
    elif isinstance(v, list) and isinstance(s.get("items"), dict):
        for x in v:
            apply_defaults(x, s["items"])


def _walk(v, s, path, visit):
    """Calls visit(value, schema, path) on <v> and every value below it that
    the schema describes."""
    if not isinstance(s, dict):
        return
    visit(v, s, path)
    if isinstance(v, dict):
        props = s.get("properties") or {}
        for n, x in v.items():
            if n in props:
                _walk(x, props[n], path + "." + n, visit)
            elif isinstance(s.get("additionalProperties"), dict):
                _walk(x, s["additionalProperties"], path + "[%r]" % n, visit)
    elif isinstance(v, list) and isinstance(s.get("items"), dict):
        for i, x in enumerate(v):
            _walk(x, s["items"], "%s[%d]" % (path, i), visit)


def check_metadata(meta):
    errs = []
    if not isinstance(meta, dict):
        return ["metadata: not a mapping"]
    for k in meta:
        if k not in ("name", "namespace", "labels", "annotations"):
            errs.append("metadata.%s: not expected in a rendered object" % k)
    name = meta.get("name")
    if not isinstance(name, str) or len(name) > 253 or not DNS_SUBDOMAIN.match(name):
        errs.append("metadata.name %r: not a DNS-1123 subdomain" % (name,))
    ns = meta.get("namespace")
    if ns is not None and (not isinstance(ns, str) or len(ns) > 63 or not DNS_LABEL.match(ns)):
        errs.append("metadata.namespace %r: not a DNS-1123 label" % (ns,))
    for what in ("labels", "annotations"):
        m = meta.get(what)
        if m is None:
            continue
        if not isinstance(m, dict):
            errs.append("metadata.%s: not a mapping" % what)
            continue
        for k, val in m.items():
            # the server lower-cases an annotation key before checking it
            prefix, _, name_part = (k.lower() if what == "annotations" else k).rpartition("/")
            if (prefix and (len(prefix) > 253 or not DNS_SUBDOMAIN.match(prefix))) or \
                    len(name_part) > 63 or not QUALIFIED.match(name_part):
                errs.append("metadata.%s: key %r is not a qualified name" % (what, k))
            if not isinstance(val, str):
                errs.append("metadata.%s[%r]: not a string" % (what, k))
            elif what == "labels" and (len(val) > 63 or not LABEL_VALUE.match(val)):
                errs.append("metadata.labels[%r]: value %r is not a label value" % (k, val))
    return errs


def check_schema(obj, schema):
    """Defaulting, OpenAPI schema (strict), list types, metadata. Returns
    (the defaulted object, [errors], [(path, rule dict, self)] CEL checks,
    number of transition rules skipped)."""
    o = copy.deepcopy(obj)
    apply_defaults(o, schema)
    js = to_jsonschema(schema)
    js.setdefault("properties", {})
    for k, t in (("apiVersion", "string"), ("kind", "string"), ("metadata", "object")):
        js["properties"].setdefault(k, {"type": t})
    js["properties"]["metadata"] = {"type": "object"}
    js["additionalProperties"] = False
    errs = ["%s: %s" % ("/".join(str(p) for p in e.absolute_path) or "(root)", e.message)
            for e in jsonschema.Draft7Validator(js).iter_errors(o)]
    errs += check_metadata(o.get("metadata"))
    cel, transition = [], [0]

    def visit(v, s, path):
        lt = s.get("x-kubernetes-list-type")
        if isinstance(v, list) and lt == "set":
            seen = [json.dumps(x, sort_keys=True) for x in v]
            if len(set(seen)) != len(seen):
                errs.append("%s: duplicate items in a set list" % path)
        if isinstance(v, list) and lt == "map":
            keys = s.get("x-kubernetes-list-map-keys") or []
            seen = [tuple(json.dumps(x.get(k), sort_keys=True) for k in keys) for x in v
                    if isinstance(x, dict)]
            if len(set(seen)) != len(seen):
                errs.append("%s: duplicate %s in a map list" % (path, "/".join(keys)))
        for rule in s.get("x-kubernetes-validations") or []:
            if re.search(r"\boldSelf\b", rule["rule"]):
                transition[0] += 1
            else:
                cel.append((path, rule, v))

    _walk(o, schema, "", visit)
    return o, errs, cel, transition[0]


class Cel:
    """The CEL evaluator: cel-js under node, installed on first use."""

    def __init__(self, root):
        self.dir = os.path.join(root, "build", "npm-cel")

    def ensure(self):
        pkg = os.path.join(self.dir, "node_modules", "@marcbachmann", "cel-js", "package.json")
        have = None
        if os.path.exists(pkg):
            with open(pkg) as f:
                have = json.load(f).get("version")
        if have != CEL_VERSION:
            if not shutil.which("node") or not shutil.which("npm"):
                raise RuntimeError("node and npm are needed for the CEL rules "
                                   "(sh scripts/setup.sh test installs them)")
            os.makedirs(self.dir, exist_ok=True)
            r = subprocess.run(["npm", "install", "--prefix", self.dir, "--no-audit", "--no-fund",
                                "--loglevel=error", "%s@%s" % (CEL_PACKAGE, CEL_VERSION)],
                               capture_output=True, text=True, timeout=300)
            if r.returncode != 0:
                raise RuntimeError("npm install %s@%s failed: %s" % (CEL_PACKAGE, CEL_VERSION,
                                                                     r.stderr[-2000:]))
        # ES modules resolve node_modules from the script's own folder
        shutil.copy(os.path.join(HERE, "render_cel.mjs"), os.path.join(self.dir, "render_cel.mjs"))

    def run(self, checks):
        """checks: [(rule string, self)] -> [(True|False|None, error)]"""
        if not checks:
            return []
        self.ensure()
        payload = {"checks": [{"id": i, "rule": r, "self": v} for i, (r, v) in enumerate(checks)]}
        r = subprocess.run(["node", os.path.join(self.dir, "render_cel.mjs")],
                           input=json.dumps(payload), capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError("CEL evaluator failed: %s" % r.stderr[-2000:])
        res = sorted(json.loads(r.stdout), key=lambda x: x["id"])
        return [(x["result"], x.get("error"), bool(x.get("rewritten"))) for x in res]


class Report:
    """Validates many objects; CEL rules run in one batch at the end."""

    def __init__(self, crds, cel):
        self.crds, self.cel = crds, cel
        self.errors = []          # (label, message)
        self.pending = []         # (label, path, rule, self)
        self.schemas_used = {}    # "file kind version" -> count
        self.transition = 0

    def add(self, label, obj):
        schemas = self.crds.schemas_for(obj)
        if not schemas:
            self.errors.append((label, "no CRD defines %s %s" % (obj.get("apiVersion"), obj.get("kind"))))
            return
        for sv in schemas:
            key = "%s %s %s%s" % (sv["file"], obj["kind"], sv["version"], "" if sv["served"] else " (not served)")
            self.schemas_used[key] = self.schemas_used.get(key, 0) + 1
            _, errs, cel, tr = check_schema(obj, sv["schema"])
            self.transition += tr
            self.errors += [("%s [%s]" % (label, key), e) for e in errs]
            self.pending += [("%s [%s]" % (label, key), p, rule, v) for p, rule, v in cel]

    def finish(self):
        """Runs the CEL rules. Returns {(path, rule): [evaluated, passed, rewritten]}
        and fills errors."""
        results = self.cel.run([(rule["rule"], v) for _, _, rule, v in self.pending])
        stats = {}
        for (label, path, rule, _), (ok, err, rewritten) in zip(self.pending, results):
            st = stats.setdefault((re.sub(r"\[\d+\]", "[]", path), rule["rule"]), [0, 0, False])
            st[0] += 1
            st[2] = st[2] or rewritten
            if ok is True:
                st[1] += 1
            elif ok is False:
                self.errors.append((label, "%s: CEL rule failed: %s (%s)" % (path or "(root)", rule["rule"],
                                                                              rule.get("message", ""))))
            else:
                self.errors.append((label, "%s: CEL rule not evaluated: %s: %s" % (path or "(root)",
                                                                                   rule["rule"], err)))
        self.pending = []
        return stats


def all_rules(crds, group, kind, version):
    """Every CEL rule of a CRD version: [(path, rule, is_transition)]."""
    out = []
    for sv in crds.versions.get((group, kind), []):
        if sv["version"] != version:
            continue

        def walk(s, path):
            if not isinstance(s, dict):
                return
            for r in s.get("x-kubernetes-validations") or []:
                out.append((path, r["rule"], bool(re.search(r"\boldSelf\b", r["rule"]))))
            for n, x in (s.get("properties") or {}).items():
                walk(x, path + "." + n)
            if isinstance(s.get("items"), dict):
                walk(s["items"], path + "[]")
            if isinstance(s.get("additionalProperties"), dict):
                walk(s["additionalProperties"], path + "{}")
        walk(sv["schema"], "")
        break
    return out
