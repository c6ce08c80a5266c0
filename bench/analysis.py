#!/usr/bin/env python3
"""bench/analysis.py - issue 10's table: each traffic row run through
`canaryctl simulate` under the sequential judge, the threshold judge,
Flagger's rules and Argo Rollouts' rules, with the outcome shares and the
p50/p95 of the decision time, and the issue's "expects" beside the
canaryd judges' cells, marked met or NOT met.

    python3 bench/analysis.py [--build DIR] [--runs N] [--jobs J] [--json FILE]

bench/analysis.sh is the usual way in (RUNS=20 for a quick look). The
policies are the YAML files in bench/analysis/; a file the configuration
parser refuses (a key it does not know yet) makes its cells say so
instead of a figure. See docs/simulate.md.
"""
import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CONF = os.path.join(HERE, "analysis")
ALPHA = 0.01

JUDGES = ("sequential", "threshold", "flagger", "argo")
TITLES = {"sequential": "sequential judge", "threshold": "threshold judge",
          "flagger": "Flagger's rules", "argo": "Argo's rules"}
# the canaryd judges are held to the expectations; Flagger's and
# Argo's rules are the reference they are compared with
JUDGED = ("sequential", "threshold")


def share(s, key):
    return s[key] / s["runs"] if s["runs"] else 0.0


def rb_at_most(p):
    return lambda s: share(s, "rolledBack") <= p


def rb_at_least(p, within=None):
    def f(s):
        if within is None:
            return share(s, "rolledBack") >= p
        n = sum(1 for r in s["results"] if r["outcome"] == "Failed" and r["decisionSeconds"] <= within)
        return n / s["runs"] >= p
    return f


def outage_ok(at, dur):
    """rolled back in >= 95 %, and never promoted during the outage"""
    def f(s):
        mid = sum(1 for r in s["results"]
                  if r["outcome"] == "Succeeded" and at <= r["decisionSeconds"] <= at + dur)
        return share(s, "rolledBack") >= 0.95 and mid == 0
    return f


def promoted_p50_within(secs):
    def f(s):
        return share(s, "promoted") >= 1 - ALPHA and s["p50DecisionSeconds"] is not None \
            and s["p50DecisionSeconds"] <= secs
    return f


def decided_at_least(p):
    return lambda s: 1 - share(s, "undecided") >= p


# One row per line of the table (the last as two: 1 % and 5 %).
# cfg: the policy file of each judge for this row (default: JUDGE.yaml).
ROWS = [
    dict(name="canary 1.5 % vs stable 0.5 %, a 60 s outage at 20 s shared by both (10 % errors)",
         flags=["--stable-error-rate", "0.5%", "--canary-error-rate", "1.5%",
                "--outage-at", "20s", "--outage-for", "60s", "--outage-error-rate", "10%"],
         expects="rolled back >= 95 %, never promoted mid-outage", check=outage_ok(20, 60)),
    dict(name="both at 1 %, failures in bursts of 50 on one version at a time",
         flags=["--stable-error-rate", "1%", "--canary-error-rate", "1%", "--burst-size", "50"],
         expects="rolled back <= 1 % (alpha)", check=rb_at_most(ALPHA)),
    dict(name="canary 0.8 % vs stable 0.5 %, inside errorMargin 0.5 points",
         flags=["--stable-error-rate", "0.5%", "--canary-error-rate", "0.8%"],
         expects="rolled back <= 1 % (alpha)", check=rb_at_most(ALPHA)),
    dict(name="1 req/s in total, canary failing 10 %",
         flags=["--rps", "1", "--canary-error-rate", "10%", "--limit", "15m"],
         cfg={"sequential": "sequential-lowtraffic.yaml", "threshold": "threshold-lowtraffic.yaml"},
         expects="rolled back >= 95 % within 15 min", check=rb_at_least(0.95, 900)),
    dict(name="p99 x 3 on the canary, median unchanged",
         flags=["--canary-tail-factor", "3", "--limit", "5m"],
         cfg={"sequential": "sequential-p99.yaml"},
         expects="rolled back >= 95 % within 5 min", check=rb_at_least(0.95, 300)),
    dict(name="canary 2x slower for its first 30 s (cold start), warmup 30s",
         flags=["--canary-warmup", "30s", "--canary-warmup-factor", "2"],
         cfg={"sequential": "sequential-warmup.yaml", "threshold": "threshold-warmup.yaml",
              "argo": "argo-warmup.yaml"},
         expects="rolled back <= 1 %", check=rb_at_most(ALPHA)),
    dict(name="1 req/s, healthy canary (windows without data; maxDuration 1h, onMaxDuration promote)",
         flags=["--rps", "1", "--limit", "2h"],
         cfg={"sequential": "sequential-lowtraffic.yaml", "threshold": "threshold-lowtraffic.yaml"},
         expects="rolled back <= 1 % (held, not failed), promoted >= 95 % within 2 h",
         check=lambda s: rb_at_most(ALPHA)(s) and share(s, "promoted") >= 0.95),
    dict(name="A/A at 0.5 %, guard error-rate <= 1 % over 1m (interval 10s, threshold 3)",
         flags=["--stable-error-rate", "0.5%", "--canary-error-rate", "0.5%"],
         cfg={"sequential": "sequential-guards.yaml"},
         expects="rolled back <= 1 % (alpha)", check=rb_at_most(ALPHA)),
    dict(name="A/A at 1 %",
         flags=["--stable-error-rate", "1%", "--canary-error-rate", "1%"],
         expects="promoted >= 99 %, p50 <= 6 min", check=promoted_p50_within(360)),
    dict(name="A/A at 5 %",
         flags=["--stable-error-rate", "5%", "--canary-error-rate", "5%", "--limit", "30m"],
         expects="decided >= 95 % within 30 min, rolled back <= 1 %",
         check=lambda s: decided_at_least(0.95)(s) and rb_at_most(ALPHA)(s)),
]


def rules_flags(judge):
    if judge == "flagger":
        return ["--rules", "flagger"]
    if judge == "argo":
        # failureLimit 3 as in Argo's docs (docs/features/analysis.md, background
        # analysis); consecutiveErrorLimit its default, 4
        return ["--rules", "argo", "--failure-limit", "3", "--consecutive-error-limit", "4"]
    return []


def run_cell(ctl, row, judge, runs, seed):
    cfg = os.path.join(CONF, row.get("cfg", {}).get(judge, judge + ".yaml"))
    cmd = [ctl, "simulate", "-f", cfg, "--runs", str(runs), "--seed", str(seed), "-o", "json"]
    cmd += row["flags"] + rules_flags(judge)
    t0 = time.monotonic()
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=3600)
    took = time.monotonic() - t0
    if p.returncode != 0:
        err = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[0]
        return {"error": err, "cmd": cmd, "seconds": took}
    s = json.loads(p.stdout)
    s["cmd"] = cmd
    s["seconds"] = took
    return s


def fmt_s(x):
    return "-" if x is None else ("%.0f s" % x if x >= 10 else "%.1f s" % x)


def cell(s, row, judge):
    if "error" in s:
        msg = s["error"]
        if "unknown field" in msg:
            msg = "config refused: " + msg.split(": ")[1] + " (" + msg.split("spec.analysis.")[-1].split(":")[0] + " not known yet)"
        return "n/a: " + msg.replace("|", "/")
    text = "RB %.1f %% / P %.1f %% / U %.1f %%, p50 %s, p95 %s" % (
        100 * share(s, "rolledBack"), 100 * share(s, "promoted"), 100 * share(s, "undecided"),
        fmt_s(s["p50DecisionSeconds"]), fmt_s(s["p95DecisionSeconds"]))
    if judge in JUDGED:
        text += " **met**" if row["check"](s) else " **NOT met**"
    return text


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.environ.get("BUILD", os.path.join(ROOT, "build")))
    ap.add_argument("--runs", type=int, default=int(os.environ.get("RUNS", "400")))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--jobs", type=int, default=int(os.environ.get("JOBS", "2")))
    ap.add_argument("--json", help="also write every cell's summary here")
    a = ap.parse_args()
    if a.runs < 1:
        ap.error("--runs must be at least 1")
    ctl = os.path.join(a.build, "canaryctl")
    if not os.access(ctl, os.X_OK):
        sys.exit("bench/analysis.py: no '%s': build first (make)" % ctl)
    t0 = time.monotonic()
    work = [(i, j) for i in range(len(ROWS)) for j in JUDGES]
    with ThreadPoolExecutor(max_workers=max(1, a.jobs)) as ex:
        res = list(ex.map(lambda w: run_cell(ctl, ROWS[w[0]], w[1], a.runs, a.seed), work))
    out = {w: r for w, r in zip(work, res)}
    took = time.monotonic() - t0
    print("# Issue 10's table: %d runs a cell, seeds %d..%d, %.0f s on %d jobs" %
          (a.runs, a.seed, a.seed + a.runs - 1, took, a.jobs))
    print()
    print("RB rolled back, P promoted, U undecided; p50/p95 of the decision time over the")
    print("decided runs; met / NOT met against the expectation (canaryd's judges only).")
    print()
    print("| traffic | expects | " + " | ".join(TITLES[j] for j in JUDGES) + " |")
    print("| --- | --- | " + " | ".join("---" for _ in JUDGES) + " |")
    missed = 0
    for i, row in enumerate(ROWS):
        cells = []
        for j in JUDGES:
            s = out[(i, j)]
            cells.append(cell(s, row, j))
            if j in JUDGED and "error" not in s and not row["check"](s):
                missed += 1
        print("| %s | %s | %s |" % (row["name"], row["expects"], " | ".join(cells)))
    print()
    print("Commands: canaryctl simulate -f bench/analysis/<judge>.yaml --runs %d -o json "
          "<row's flags> [--rules flagger|argo]; the row flags:" % a.runs)
    for row in ROWS:
        print("- %s: %s" % (row["name"], " ".join(row["flags"])))
    if a.json:
        with open(a.json, "w") as f:
            json.dump([{"row": ROWS[i]["name"], "judge": j, "cmd": out[(i, j)].get("cmd"),
                        "summary": {k: v for k, v in out[(i, j)].items() if k not in ("results", "cmd")}}
                       for (i, j) in work], f, indent=1)
    bad = [out[w] for w in work if "error" in out[w] and "unknown field" not in out[w]["error"]]
    for b in bad:
        print("error: %s: %s" % (" ".join(b["cmd"]), b["error"]), file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
