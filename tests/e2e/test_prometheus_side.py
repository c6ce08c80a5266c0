"""The Prometheus side: the shipped rules pass promtool (syntax and their
unit tests) and link to sections of docs/runbook.md that exist, a real
Prometheus loads them with canaryd as a target and fires on a rollback,
the Grafana dashboard asks only for series canaryd exposes, and the
metrics a Flagger user expects carry the right values through a
rollback, a promotion and a refused reload."""
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ROOT, SLOW, BUILD, Canaryd, Load, Upstream, canary_yaml,  # noqa: E402
                     free_port, run, tmpdir)
from promstack import Prometheus  # noqa: E402

RULES = os.path.join(ROOT, "deploy", "prometheus", "rules.yaml")
RULES_TEST = os.path.join(ROOT, "deploy", "prometheus", "rules_test.yaml")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "canaryd.json")
RUNBOOK = os.path.join(ROOT, "docs", "runbook.md")
UNIT = os.path.join(ROOT, "deploy", "systemd", "canaryd.service")


def samples(text):
    """{(name, frozenset(labels)): value} of a text exposition."""
    out = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        m = re.match(r'([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})? (\S+)$', line)
        assert m, "not an exposition line: %r" % line
        labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', m.group(2) or ""))
        out[(m.group(1), labels)] = float(m.group(3))
    return out


def value(s, name, **labels):
    want = frozenset(labels.items())
    found = [v for (n, ls), v in s.items() if n == name and want <= ls]
    assert len(found) == 1, "%s%s: %d series in %s" % (name, labels, len(found),
                                                        sorted(k for k in s if k[0] == name))
    return found[0]


def metrics(d):
    st, text = d.api("GET", "/metrics")
    assert st == 200, (st, text)
    return text


def github_anchor(heading):
    """GitHub's anchor for a Markdown heading."""
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


# PromQL words that are not metric names
PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
                "unless", "bool", "offset", "inf", "nan"}


def expr_metric_names(expr):
    """The metric names a PromQL expression reads (not functions, label
    names, strings, durations or Grafana variables)."""
    e = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)           # strings
    e = re.sub(r"\{[^}]*\}", "", e)                         # label matchers
    e = re.sub(r"\[[^\]]*\]", "", e)                        # ranges
    e = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", e)
    e = re.sub(r"\$\w+", " ", e)                            # Grafana variables
    names = set()
    for m in re.finditer(r"(?<![\w.])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\()?", e):
        word, call = m.group(1), m.group(2)
        if call or word.lower() in PROMQL_WORDS:
            continue
        names.add(word)
    return names


def start_promtool():
    """promtool's syntax check and the rules' unit tests, started in the
    background (they overlap the live test's wait for Prometheus'
    first scrape); finish_promtool waits for them."""
    return [subprocess.Popen(["promtool", "check", "rules", RULES], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True),
            subprocess.Popen(["promtool", "test", "rules", RULES_TEST], stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)]


def finish_promtool(procs):
    for p in procs:
        out, _ = p.communicate(timeout=30 * SLOW)
        assert p.returncode == 0, "%s:\n%s" % (" ".join(p.args), out)


def test_alerts_link_to_runbook_sections():
    with open(RUNBOOK) as f:
        anchors = {github_anchor(m.group(1)) for m in re.finditer(r"^#+ (.*)$", f.read(), re.M)}
    with open(RULES) as f:
        groups = yaml.safe_load(f)["groups"]
    alerts = [r for g in groups for r in g["rules"] if "alert" in r]
    assert len(alerts) >= 6, alerts
    for a in alerts:
        url = a.get("annotations", {}).get("runbook_url", "")
        assert url.startswith("docs/runbook.md#"), (a["alert"], url)
        assert url.split("#", 1)[1] in anchors, (a["alert"], url, sorted(anchors))
    # and an expression that names a series canaryd does not have is caught
    assert expr_metric_names('sum by (canary) (rate(canaryd_requests_total{code=~"5.."}[1m]))'
                             ' / on (canary) canaryd_nope') == {"canaryd_requests_total",
                                                                "canaryd_nope"}


def test_systemd_unit_is_valid_and_hardened():
    with open(UNIT) as f:
        text = f.read()
    keys = {}
    for line in text.splitlines():
        if "=" in line and not line.startswith("#"):
            k, v = line.split("=", 1)
            keys.setdefault(k.strip(), []).append(v.strip())
    for k, v in (("DynamicUser", "yes"), ("NoNewPrivileges", "yes"),
                 ("ProtectSystem", "strict"), ("ProtectHome", "yes"), ("PrivateTmp", "yes"),
                 ("StateDirectory", "canaryd"), ("SystemCallFilter", "@system-service"),
                 ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX AF_NETLINK"),
                 ("ExecReload", "/bin/kill -HUP $MAINPID")):
        assert v in keys.get(k, []), (k, keys.get(k))
    # canaryd's own flags: what the unit runs must parse
    start = keys["ExecStart"][0].split()
    assert start[0] == "/usr/local/bin/canaryd", start
    assert "/var/lib/canaryd" in start and "--data-dir" in start, start
    if not shutil.which("systemd-analyze"):
        print("  systemd-analyze not installed: static checks only")
        return
    # verify wants the programs to exist: point it at this build's
    d = tmpdir()
    unit = os.path.join(d, "canaryd.service")
    with open(unit, "w") as f:
        f.write(text.replace("/usr/local/bin/canaryd", os.path.join(BUILD, "canaryd")))
    r = subprocess.run(["systemd-analyze", "verify", "--man=no", unit], capture_output=True,
                       text=True, timeout=30 * SLOW)
    assert r.returncode == 0 and not r.stderr.strip(), r.stdout + r.stderr


def rollout_config(port_bad, port_good, v1, v1b):
    bad = canary_yaml("shop", "127.0.0.1:%d" % port_bad, [v1.addr], interval="200ms",
                      threshold=2, step_weight=20, max_weight=40,
                      metrics=[("request-success-rate", "min: 99", "10s")])
    bad = bad.replace("  analysis:\n", "  analysis:\n    minSamples: 5\n")
    good = canary_yaml("cart", "127.0.0.1:%d" % port_good, [v1b.addr], interval="300ms")
    return bad + "---\n" + good


def test_rules_pass_promtool_and_fire_and_metrics_hold_through_a_rollout():
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=0.5)
    v1b, v2b = Upstream("v1b"), Upstream("v2b")
    port, port2, admin = free_port(), free_port(), free_port()
    t_start = time.time()
    tools = start_promtool()
    # Prometheus first: it scrapes a new target only some 5 s after it starts
    with open(RULES) as f:
        prom = Prometheus(["127.0.0.1:%d" % admin], rules=f.read())
    d = Canaryd(rollout_config(port, port2, v1, v1b), admin_port=admin)
    load = Load(port, threads=2, rps_per_thread=50)
    try:
        s = samples(metrics(d))
        r = subprocess.run([os.path.join(BUILD, "canaryd"), "--version"], capture_output=True,
                           text=True, timeout=10)
        version = re.search(r"\d+\.\d+\.\d+\S*", r.stdout + r.stderr).group(0)
        assert value(s, "canaryd_build_info", version=version) == 1
        assert value(s, "canaryd_canaries") == 2
        assert value(s, "canaryd_canary_status", canary="shop") == 1   # no rollout yet
        assert value(s, "canaryd_canary_duration_seconds", canary="shop") == 0
        assert value(s, "canaryd_canary_metric_threshold", canary="shop",
                     metric="request-success-rate", bound="min") == 99
        assert value(s, "canaryd_canary_revision_info", canary="shop", target="stable",
                     revision="v1") == 1

        assert d.ctl("rollout", "shop", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
        st = d.wait_phase("shop", "Progressing", timeout=10)
        s = samples(metrics(d))
        assert value(s, "canaryd_canary_status", canary="shop") == 0
        assert value(s, "canaryd_canary_revision_info", canary="shop", target="canary",
                     revision="v2") == 1
        assert value(s, "canaryd_canary_failed_checks_threshold", canary="shop") == 2

        st = d.wait_phase("shop", "Failed", timeout=20)
        text = metrics(d)
        s = samples(text)
        assert value(s, "canaryd_canary_status", canary="shop") == 2
        assert value(s, "canaryd_canary_weight", canary="shop") == st["canaryWeight"] == 0
        assert value(s, "canaryd_rollbacks_total", canary="shop") == 1
        assert value(s, "canaryd_checks_total", canary="shop", result="fail") >= 2
        assert value(s, "canaryd_canary_failed_checks", canary="shop") == st["failedChecks"] == 2
        rate = value(s, "canaryd_canary_metric_analysis", canary="shop",
                     metric="request-success-rate")
        assert 5 < rate < 99, rate   # half the canary's answers are 500s
        ev = [e for e in d.events("shop") if e["type"] == "check"][-1]
        assert abs(ev["metrics"][0]["value"] - rate) < 0.01, (ev, rate)
        # the analysis' duration: from the rollout to the rollback, frozen
        dur = value(s, "canaryd_canary_duration_seconds", canary="shop")
        assert 0.2 <= dur < 20, dur
        time.sleep(0.3)
        assert value(samples(metrics(d)), "canaryd_canary_duration_seconds", canary="shop") == dur

        # the exposition passes Prometheus' own lint
        r = subprocess.run(["promtool", "check", "metrics"], input=text, capture_output=True,
                           text=True, timeout=30 * SLOW)
        assert r.returncode == 0 and not (r.stdout + r.stderr).strip(), r.stdout + r.stderr

        # every series the dashboard asks for is there
        with open(DASHBOARD) as f:
            dash = json.load(f)
        exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
        exprs += [a["expr"] for a in dash["annotations"]["list"] if "expr" in a]
        assert len(exprs) >= 15, exprs
        have = {n for n, _ in s}
        for e in exprs:
            names = expr_metric_names(e)
            assert names, e
            for n in names:
                assert n in have, "dashboard expression %r reads %r, not in /metrics" % (e, n)

        # a promotion
        assert d.ctl("rollout", "cart", "--revision", "v2", "--endpoints", v2b.addr)[0] == 0
        assert d.ctl("promote", "cart", "--full")[0] == 0
        d.wait_phase("cart", "Succeeded", timeout=10)
        s = samples(metrics(d))
        assert value(s, "canaryd_promotions_total", canary="cart") == 1
        assert value(s, "canaryd_promotions_total", canary="shop") == 0
        assert value(s, "canaryd_canary_status", canary="cart") == 1
        assert value(s, "canaryd_canary_revision_info", canary="cart", target="stable",
                     revision="v2") == 1

        check_reload_metrics(d)
        finish_promtool(tools)

        # the shipped rule fires in a real Prometheus on the real series
        prom.wait_value('ALERTS{alertname="CanaryRolledBack",canary="shop",alertstate="firing"}',
                        lambda v: v == 1, timeout=15)
        res = prom.query('ALERTS{alertname="CanaryRolledBack",canary="cart"}')["data"]["result"]
        assert res == [], res
        print("  metrics checked %.1fs after canaryd started" % (time.time() - t_start))
    finally:
        load.stop()
        prom.stop()


def check_reload_metrics(d):
    """A SIGHUP with a configuration canaryd refuses shows 0 and keeps the
    time of the last good load; a good one shows 1 and a later time."""
    s = samples(metrics(d))
    assert value(s, "canaryd_config_last_reload_success") == 1
    t0 = value(s, "canaryd_config_last_reload_success_timestamp_seconds")
    assert abs(t0 - time.time()) < 60, t0
    with open(d.config_path) as f:
        good = f.read()
    with open(d.config_path, "w") as f:
        f.write(good.replace("threshold: 2", "threshold: many"))
    d.kill(signal.SIGHUP)
    end = time.time() + 10 * SLOW
    while value(samples(metrics(d)), "canaryd_config_last_reload_success") != 0:
        assert time.time() < end, "a refused reload still shows success"
        time.sleep(0.05)
    s = samples(metrics(d))
    assert value(s, "canaryd_config_last_reload_success_timestamp_seconds") == t0
    time.sleep(0.01)
    with open(d.config_path, "w") as f:
        f.write(good)
    d.kill(signal.SIGHUP)
    end = time.time() + 10 * SLOW
    while value(samples(metrics(d)), "canaryd_config_last_reload_success") != 1:
        assert time.time() < end, "a good reload does not show success"
        time.sleep(0.05)
    t1 = value(samples(metrics(d)), "canaryd_config_last_reload_success_timestamp_seconds")
    assert t1 > t0, (t0, t1)


if __name__ == "__main__":
    sys.exit(run(globals()))
