#!/usr/bin/env python3
"""Gathers the Canary, MetricTemplate and AlertProvider documents of
Flagger's documentation, e2e tests and examples into this directory, as
test inputs for canaryd --check (see README.md). Run it from a checkout of
github.com/fluxcd/flagger:

    python3 gather.py /path/to/flagger COMMIT

Sources: YAML blocks of docs/gitbook/**.md, here-documents of test/**.sh,
and artifacts/examples, kustomize and charts YAML (Helm templates and the
CRDs left out). Each document is copied unchanged, its source named in a
comment before it. Documents of one source go to one file, a second file
when a name comes again (a tutorial shows the same canary changed); the
MetricTemplates and AlertProviders of a source go to their own file, so
that each file of canaries is checked with the templates it refers to,
as they would be in the cluster. Fragments (a document without
metadata.name, a schema with empty values, a Canary without the
spec.analysis Flagger's CRD requires) and documents of API versions
Flagger no longer serves are listed in skipped.txt, with why."""
import os
import re
import sys

import yaml

KINDS = ("Canary", "MetricTemplate", "AlertProvider")


def blocks(rel, text):
    """(first line, text) of each YAML block of a file."""
    lines = text.split("\n")
    if rel.endswith(".md"):
        i = 0
        while i < len(lines):
            if re.match(r"^\s*```", lines[i]):
                j = i + 1
                while j < len(lines) and not re.match(r"^\s*```", lines[j]):
                    j += 1
                body = lines[i + 1:j]
                ind = min((len(l) - len(l.lstrip()) for l in body if l.strip()), default=0)
                yield i + 2, "\n".join(l[ind:] for l in body)
                i = j + 1
            else:
                i += 1
    elif rel.endswith(".sh"):
        i = 0
        while i < len(lines):
            m = re.search(r"<<-?\s*['\"]?(\w+)['\"]?", lines[i])
            if m:
                j = i + 1
                while j < len(lines) and lines[j].strip() != m.group(1):
                    j += 1
                yield i + 2, "\n".join(lines[i + 1:j])
                i = j + 1
            else:
                i += 1
    else:
        yield 1, text


def documents(src):
    """{source: [(line, kind, name, text)]} and the skipped fragments."""
    out, skipped = {}, []
    for root, dirs, files in os.walk(src):
        dirs.sort()
        for f in sorted(files):
            p = os.path.join(root, f)
            rel = os.path.relpath(p, src)
            top = rel.split(os.sep)[0]
            if top not in ("docs", "test", "artifacts", "kustomize", "charts"):
                continue
            if not re.search(r"\.(md|sh|ya?ml)$", f) or "crd" in f or "/templates/" in p:
                continue
            for line, body in blocks(rel, open(p, encoding="utf-8").read()):
                if not re.search(r"kind:\s*(Canary|MetricTemplate|AlertProvider)\b", body):
                    continue
                off = 0
                for part in re.split(r"(?m)^---\s*$", body):
                    here = line + off
                    off += part.count("\n") + 1
                    try:
                        d = yaml.safe_load(part)
                    except yaml.YAMLError:
                        d = None
                    if not isinstance(d, dict) or d.get("kind") not in KINDS or \
                            not str(d.get("apiVersion", "")).startswith("flagger.app/"):
                        continue
                    name = (d.get("metadata") or {}).get("name")
                    spec = d.get("spec") or {}
                    empty = d.get("kind") == "MetricTemplate" and \
                        not (spec.get("provider") or {}).get("type")
                    why = None
                    if not name:
                        why = "no metadata.name"
                    elif empty:
                        why = "a schema: provider.type empty"
                    elif d["apiVersion"] != "flagger.app/v1beta1":
                        why = "apiVersion %s, which Flagger's CRD no longer serves " \
                              "(canaryd refuses it, naming flagger.app/v1beta1)" % d["apiVersion"]
                    elif d["kind"] == "Canary" and "analysis" not in spec and \
                            "canaryAnalysis" not in spec:
                        why = "no spec.analysis, which Flagger's CRD requires (a fragment " \
                              "showing other spec keys)"
                    if why:
                        skipped.append("%s:%d %s '%s': %s" % (rel, here, d.get("kind"),
                                                              name or "", why))
                        continue
                    text = part.strip("\n")
                    # a block's first document may start with a comment line
                    out.setdefault(rel, []).append((here, d["kind"], name, text))
    return out, skipped


def main():
    src, commit = sys.argv[1], sys.argv[2]
    here = os.path.dirname(os.path.abspath(__file__))
    for f in os.listdir(here):
        if f.endswith(".yaml") or f == "skipped.txt":
            os.remove(os.path.join(here, f))
    docs, skipped = documents(src)
    counts = {}
    for rel, items in sorted(docs.items()):
        flat = re.sub(r"[^A-Za-z0-9]+", "-", os.path.splitext(rel)[0]).strip("-")
        groups = {"canaries": [], "templates": []}
        for line, kind, name, text in items:
            g = groups["canaries" if kind == "Canary" else "templates"]
            for taken in g:
                if (kind, name) not in taken[0]:
                    break
            else:
                taken = (set(), [])
                g.append(taken)
            taken[0].add((kind, name))
            taken[1].append("# fluxcd/flagger@%s %s:%d\n%s" % (commit[:12], rel, line, text))
            counts[kind] = counts.get(kind, 0) + 1
        for what, g in groups.items():
            for i, (_, texts) in enumerate(g):
                fn = "%s.%s-%d.yaml" % (flat, what, i + 1)
                with open(os.path.join(here, fn), "w") as f:
                    f.write("\n---\n".join(texts) + "\n")
    with open(os.path.join(here, "skipped.txt"), "w") as f:
        f.write("".join(s + "\n" for s in skipped))
    print(counts, "skipped", len(skipped))


if __name__ == "__main__":
    main()
