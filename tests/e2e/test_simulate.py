"""canaryctl simulate's traffic shapes and rules as a user gives them on the
command line, its JSON, and bench/analysis.sh in its quick mode (so that
the table of issue 10 cannot rot)."""
import json
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, ROOT, SLOW, run, tmpdir  # noqa: E402

CTL = os.path.join(BUILD, "canaryctl")
BENCH = os.path.join(ROOT, "bench", "analysis")


def sim(*args, timeout=120):
    return subprocess.run([CTL, "simulate"] + list(args), capture_output=True, text=True,
                          timeout=timeout * SLOW)


def sim_json(*args):
    r = sim(*args, "-o", "json")
    assert r.returncode == 0, r
    return json.loads(r.stdout)


def test_json_has_every_run_and_the_decision_time_quantiles():
    out = sim_json("-f", os.path.join(BENCH, "threshold.yaml"), "--canary-error-rate", "20%",
                   "--runs", "7", "--seed", "3")
    assert out["rules"] == "canaryd" and out["runs"] == 7 and out["rolledBack"] == 7, out
    assert out["p50DecisionSeconds"] == out["medianDecisionSeconds"], out
    assert out["p95DecisionSeconds"] >= out["p50DecisionSeconds"], out
    res = out["results"]
    assert [r["seed"] for r in res] == list(range(3, 10)), res
    for r in res:
        assert set(r) == {"seed", "outcome", "decisionSeconds", "finalWeight", "checks",
                          "canaryRequests", "canaryErrors", "message"}, r
        assert r["outcome"] == "Failed" and r["finalWeight"] == 0 and r["canaryErrors"] > 0, r
    # the same seed draws the same traffic
    again = sim_json("-f", os.path.join(BENCH, "threshold.yaml"), "--canary-error-rate", "20%",
                     "--runs", "1", "--seed", "5")
    assert again["results"][0] == res[2], (again, res[2])


def test_shapes_and_rules_on_the_command_line():
    seq = os.path.join(BENCH, "sequential.yaml")
    # text output names every shape
    r = sim("-f", seq, "--burst-size", "50", "--outage-at", "20s", "--outage-for", "1m",
            "--outage-error-rate", "10%", "--stable-change-at", "2m", "--stable-error-rate-after", "1%",
            "--rps-change-at", "1m", "--rps-after", "20", "--rps-ramp", "30s",
            "--canary-warmup", "30s", "--canary-warmup-factor", "2", "--canary-tail-factor", "3",
            "--canary-tail-share", "1%", "--limit", "5m")
    assert r.returncode == 0, r
    for s in ("bursts of 50", "shared outage at 20s for 1m: both versions fail 10.00%",
              "stable's error rate is 1.00%", "20 req/s, ramped over 30s",
              "2 times slower for its first 30s", "slowest 1% of requests 3 times slower"):
        assert s in r.stdout, (s, r.stdout)
    # Flagger's rules: a 1 s interval becomes 10 s, the rollback one loop later
    out = sim_json("-f", os.path.join(BENCH, "threshold.yaml"), "--rules", "flagger",
                   "--canary-error-rate", "20%")
    assert out["rules"] == "flagger" and out["outcome"] == "Failed", out
    assert out["decisionSeconds"] == 40 and out["results"][0]["checks"] == 3, out
    # Argo's: failureLimit 1 aborts on the second failed measurement
    out = sim_json("-f", os.path.join(BENCH, "argo.yaml"), "--rules", "argo", "--failure-limit", "1",
                   "--canary-error-rate", "20%")
    assert out["outcome"] == "Failed" and out["decisionSeconds"] == 20, out
    assert "failed (2) > failureLimit (1)" in out["message"], out
    # no traffic: consecutive errors
    out = sim_json("-f", os.path.join(BENCH, "argo.yaml"), "--rules", "argo",
                   "--consecutive-error-limit", "1", "--rps", "0.001")
    assert out["outcome"] == "Failed" and out["decisionSeconds"] == 20, out
    assert "consecutiveErrors (2) > consecutiveErrorLimit (1)" in out["message"], out


def test_bad_flags_are_usage_errors():
    seq = os.path.join(BENCH, "sequential.yaml")
    for args, want in [
        (["--burst-size", "0"], "--burst-size '0'"),
        (["--burst-size", "2.5"], "--burst-size '2.5'"),
        (["--outage-at", "10s"], "need --outage-for"),
        (["--outage-for", "0s"], "--outage-for '0s'"),
        (["--outage-for", "10s", "--outage-error-rate", "150%"], "--outage-error-rate '150%'"),
        (["--stable-change-at", "10s"], "go together"),
        (["--rps-after", "5"], "go together"),
        (["--rps-ramp", "10s"], "needs --rps-change-at"),
        (["--canary-warmup-factor", "2"], "needs --canary-warmup"),
        (["--canary-tail-factor", "0.5"], "--canary-tail-factor '0.5'"),
        (["--canary-tail-factor", "3", "--canary-tail-share", "60%"], "--canary-tail-share '60%'"),
        (["--rules", "spinnaker"], "--rules 'spinnaker'"),
        (["--failure-limit", "2"], "go with --rules argo"),
        (["--rules", "argo", "--failure-limit", "-1"], "--failure-limit"),
    ]:
        r = sim("-f", seq, *args)
        assert r.returncode == 2 and want in r.stderr, (args, r)


def test_csv_with_histograms_replays():
    d = tmpdir()
    p = os.path.join(d, "rec.csv")
    with open(p, "w") as f:
        f.write("second,stable_requests,stable_errors,canary_requests,canary_errors,"
                "canary_p99_ms,stable_hist,canary_hist\n")
        for i in range(40):
            f.write("%d,180,1,20,%d,,40:170;60:10,%s\n" % (i, 0 if i < 2 else 10,
                                                          "40:20" if i < 2 else "40:10;90:10"))
    out = sim_json("-f", os.path.join(BENCH, "threshold.yaml"), "--data", p)
    assert out["outcome"] == "Failed", out
    assert out["results"][0]["canaryRequests"] > 40, out  # 10 % of 200 req/s and more
    rec = sim_json("-f", os.path.join(BENCH, "threshold.yaml"), "--data", p, "--replay", "recorded")
    assert rec["outcome"] == "Failed" and rec["results"][0]["canaryRequests"] < \
        out["results"][0]["canaryRequests"], (rec, out)
    r = sim("-f", os.path.join(BENCH, "threshold.yaml"), "--replay", "recorded")
    assert r.returncode == 2 and "--replay goes with --data" in r.stderr, r
    with open(p, "a") as f:
        f.write("40,10,0,1,0,,40:9,40:1\n")
    r = sim("-f", os.path.join(BENCH, "threshold.yaml"), "--data", p)
    assert r.returncode == 2 and re.search(r"rec\.csv:42: stable_hist counts 9 requests", r.stderr), r


def test_bench_analysis_quick_mode():
    env = dict(os.environ, RUNS="3", JOBS="2", BUILD=BUILD)
    r = subprocess.run(["sh", os.path.join(ROOT, "bench", "analysis.sh")], capture_output=True,
                       text=True, timeout=300 * SLOW, env=env, cwd=ROOT)
    assert r.returncode == 0, r
    rows = [l for l in r.stdout.splitlines() if l.startswith("| ") and not l.startswith("| traffic")
            and not l.startswith("| ---")]
    assert len(rows) == 10, r.stdout
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert len(cells) == 6, row
        for c in cells[2:]:
            # a figure, or a policy file the parser does not take yet
            assert re.match(r"RB \d+\.\d % / P \d+\.\d % / U \d+\.\d %, p50 ", c) or \
                c.startswith("n/a: config refused"), (c, row)
        for c in cells[2:4]:
            assert c.startswith("n/a") or c.endswith("**met**") or c.endswith("**NOT met**"), c


if __name__ == "__main__":
    sys.exit(run(globals()))
