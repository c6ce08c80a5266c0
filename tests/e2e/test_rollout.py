"""Rollouts end to end: canaryd in front of real upstreams, real clients."""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (SLOW, Canaryd, Load, Upstream, canary_yaml, free_port, get,  # noqa: E402
                     run)


def _analysis(text, *lines):
    """<text> (canary_yaml's) with <lines> added to each spec.analysis."""
    extra = "".join("    %s\n" % l for l in lines)
    return text.replace("  analysis:\n", "  analysis:\n" + extra)


def _setup(name="web", **kw):
    v1, v2 = Upstream("v1"), Upstream(kw.pop("canary_name", "v2"), fail_rate=kw.pop("fail_rate", 0))
    port = free_port()
    d = Canaryd(canary_yaml(name, "127.0.0.1:%d" % port, [v1.addr], **kw))
    return v1, v2, port, d


def test_no_rollout_sends_everything_to_stable():
    v1, v2, port, d = _setup()
    for _ in range(20):
        st, hdr, body = get(port)
        assert st == 200 and body == b"v1\n", (st, body)
    s = d.status("web")
    assert s["phase"] == "Initialized" and s["canaryWeight"] == 0, s


def test_healthy_canary_is_promoted_and_no_request_fails():
    v1, v2, port, d = _setup(interval="300ms", threshold=2, max_weight=50, step_weight=25)
    load = Load(port, threads=4, rps_per_thread=60)
    time.sleep(0.3)
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    rc, out, err = d.ctl("wait", "web", "--timeout", "60s")
    done = time.time()
    assert rc == 0, (rc, out, err)
    time.sleep(0.5)
    load.stop()
    assert not load.errors, load.errors[:5]
    assert load.non2xx() == 0, load.by_status
    assert load.by_upstream.get("v2", 0) > 0, load.by_upstream
    late = [u for (t, u, s) in load.timeline if t > done + 0.05]
    assert late and all(u == "v2" for u in late), late[:20]
    s = d.status("web")
    assert s["phase"] == "Succeeded" and s["stableRevision"] == "v2", s
    types = [e["type"] for e in d.events("web")]
    for t in ("rollout-started", "weight", "check", "promoting", "succeeded"):
        assert t in types, (t, types)
    weights = [e["weight"] for e in d.events("web") if e["type"] == "weight"]
    assert weights[:2] == [25, 50], weights


def test_failing_canary_is_rolled_back_within_threshold_times_interval():
    # 20 canary requests a second: minSamples 10 lets the first check count
    # (the default 100 would hold the checks of the first 5 s)
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=0.2)
    port = free_port()
    d = Canaryd(_analysis(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1s",
                                      threshold=3, max_weight=50, step_weight=10),
                          "minSamples: 10"))
    load = Load(port, threads=4, rps_per_thread=50)
    time.sleep(0.3)
    t0 = time.time()
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    s = d.wait_phase("web", "Failed", timeout=20)
    elapsed = time.time() - t0
    failed_at = time.time()
    time.sleep(1.0)
    load.stop()
    print("  rollout -> Failed in %.2fs" % elapsed)
    assert elapsed <= (3 * 1 + 1) * SLOW, elapsed
    assert s["canaryWeight"] == 0 and s["failedChecks"] == 3, s
    # after the rollback no new request reaches the canary
    late = [u for (t, u, st) in load.timeline if t > failed_at]
    assert late and all(u == "v1" for u in late), late[:20]
    assert not load.errors, load.errors[:5]
    ev = d.events("web")
    checks = [e for e in ev if e["type"] == "check"]
    assert len(checks) == 3, checks
    m = checks[0]["metrics"][0]
    assert m["name"] == "request-success-rate" and m["min"] == 99 and m["passed"] is False, m
    assert 70 <= m["value"] <= 90, m
    assert ev[-1]["type"] == "rollback" and ev[-1]["phase"] == "Failed", ev[-1]
    rc, out, err = d.ctl("wait", "web", "--timeout", "5s")
    assert rc == 1, (rc, out, err)


def test_kill_9_mid_rollout_resumes_where_it_stood():
    v1, v2, port, d = _setup(interval="2s", threshold=2, max_weight=60, step_weight=20)
    load = Load(port, threads=2, rps_per_thread=40)
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    # wait for the first passing check to raise the weight to 40, then kill
    # at once, well before the next check
    end = time.time() + 20 * SLOW
    while time.time() < end:
        s = d.status("web")
        if s["canaryWeight"] >= 40:
            break
        time.sleep(0.05)
    before = d.status("web")
    events_before = d.events("web")
    d.stop(signal.SIGKILL)
    assert before["phase"] == "Progressing" and before["canaryWeight"] == 40, before
    d2 = Canaryd(config_path=d.config_path, data_dir=d.data_dir, admin_port=d.admin_port)
    after = d2.status("web")
    assert after["phase"] == "Progressing", after
    assert after["canaryWeight"] == 40 and after["canaryRevision"] == "v2", after
    assert after["failedChecks"] == before["failedChecks"], (before, after)
    ev = d2.events("web")
    assert ev[:len(events_before)] == events_before, "history changed across the restart"
    rc, out, err = d2.ctl("wait", "web", "--timeout", "60s")
    assert rc == 0, (rc, out, err, d2.status("web"))
    load.stop()
    assert d2.status("web")["stableRevision"] == "v2"


def test_config_canary_section_starts_a_rollout_once():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    text = canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], canary=[v2.addr],
                       interval="200ms", threshold=1, max_weight=20, step_weight=20)
    d = Canaryd(text)
    load = Load(port, threads=2, rps_per_thread=50)
    s = d.wait_phase("web", "Succeeded", timeout=30)
    load.stop()
    assert load.non2xx() == 0 and not load.errors, (load.by_status, load.errors[:3])
    assert s["stableRevision"] == "v2", s
    n_events = len(d.events("web"))
    d.stop()
    # the same configuration again: v2 already ended, no new rollout, and
    # the promoted revision stays stable
    d2 = Canaryd(config_path=d.config_path, data_dir=d.data_dir)
    time.sleep(0.5)
    s = d2.status("web")
    assert s["phase"] == "Succeeded" and s["stableRevision"] == "v2", s
    assert len(d2.events("web")) == n_events
    assert get(port)[2] == b"v2\n"


def test_set_weight_splits_exactly():
    v1, v2, port, d = _setup(interval="1h")
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, err
    rc, out, err = d.ctl("set-weight", "web", "30")
    assert rc == 0, (rc, out, err)
    s = d.status("web")
    assert s["phase"] == "Paused" and s["canaryWeight"] == 30, s
    counts = {}
    for _ in range(200):
        st, hdr, body = get(port)
        counts[body] = counts.get(body, 0) + 1
    assert counts == {b"v1\n": 140, b"v2\n": 60}, counts


def test_operator_commands_and_exit_codes():
    v1, v2, port, d = _setup(interval="1h", max_weight=30, step_weight=10)
    rc, out, err = d.ctl("promote", "web")
    assert rc == 1 and "no rollout" in err, (rc, out, err)
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, err
    assert d.status("web")["canaryWeight"] == 10
    rc, out, err = d.ctl("promote", "web")
    assert rc == 0 and d.status("web")["canaryWeight"] == 20, (rc, err)
    rc, out, err = d.ctl("pause", "web")
    assert rc == 0 and d.status("web")["phase"] == "Paused"
    rc, out, err = d.ctl("resume", "web")
    assert rc == 0 and d.status("web")["phase"] == "Progressing"
    rc, out, err = d.ctl("wait", "web", "--timeout", "1s")
    assert rc == 3, (rc, out, err)
    rc, out, err = d.ctl("set-weight", "web", "101")
    assert rc == 2, (rc, out, err)
    rc, out, err = d.ctl("status", "web", "-o", "json")
    assert rc == 0, err
    s = json.loads(out)
    for k in ("name", "phase", "canaryWeight", "failedChecks", "iterations", "stableRevision",
              "canaryRevision", "lastTransitionTime", "message"):
        assert k in s, (k, s)
    assert s["lastTransitionTime"].endswith("Z")
    rc, out, err = d.ctl("status")
    assert rc == 0 and "web" in out and "Progressing" in out, out
    rc, out, err = d.ctl("abort", "web")
    assert rc == 0, err
    s = d.status("web")
    assert s["phase"] == "Failed" and s["canaryWeight"] == 0, s
    rc, out, err = d.ctl("history", "web", "-o", "json")
    assert rc == 0, err
    ev = json.loads(out)
    assert [e["id"] for e in ev] == sorted(e["id"] for e in ev)
    manual = [e for e in ev if e["actor"] not in ("canaryd", "config")]
    assert manual and all(e["actor"] == "127.0.0.1" for e in manual), manual
    assert ev[-1]["type"] == "abort" and "aborted by" in ev[-1]["message"], ev[-1]
    rc, out, err = d.ctl("history", "web")
    assert rc == 0 and "abort" in out, out
    # no such canary is bad input (2), not a rollout that failed (1)
    rc, out, err = d.ctl("promote", "nosuch")
    assert rc == 2 and "nosuch" in err, (rc, err)
    for st, hdr, body in (get(port) for _ in range(10)):
        assert body == b"v1\n"


def test_promote_full_skips_the_steps():
    v1, v2, port, d = _setup(interval="300ms", max_weight=50, step_weight=5)
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, err
    rc, out, err = d.ctl("promote", "web", "--full")
    assert rc == 0, err
    s = d.wait_phase("web", "Succeeded", timeout=10)
    assert s["stableRevision"] == "v2", s
    st, hdr, body = get(port)
    assert body == b"v2\n"


def test_new_rollout_replaces_a_running_one():
    v1, v2, port, d = _setup(interval="1h", max_weight=50, step_weight=10)
    v3 = Upstream("v3")
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    assert d.ctl("set-weight", "web", "50")[0] == 0
    assert d.ctl("rollout", "web", "--revision", "v3", "--endpoints", v3.addr)[0] == 0
    s = d.status("web")
    assert s["canaryRevision"] == "v3" and s["canaryWeight"] == 10, s
    assert s["failedChecks"] == 0 and s["phase"] == "Progressing", s
    seen = set(get(port)[2] for _ in range(50))
    assert seen == {b"v1\n", b"v3\n"}, seen


def test_unreachable_canary_rolls_back_after_progress_deadline():
    v1 = Upstream("v1")
    port = free_port()
    dead = "127.0.0.1:%d" % free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h",
                            deadline=2))
    t0 = time.time()
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", dead)[0] == 0
    s = d.wait_phase("web", "Failed", timeout=15)
    assert time.time() - t0 >= 1.9, "rolled back before the deadline"
    assert "not ready" in s["message"], s


def test_sequential_judge_rolls_back_a_failing_canary_in_seconds():
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=0.2)
    port = free_port()
    text = canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1m", threshold=5,
                       step_weights=[10, 20, 50],
                       metrics=[("request-duration", "max: 500", "1m")])
    text = text.replace("    threshold: 5\n", "    threshold: 5\n    judge: sequential\n    alpha: 0.01\n")
    d = Canaryd(text)
    load = Load(port, threads=4, rps_per_thread=50)  # 200 req/s, 10 % to the canary
    time.sleep(0.5)
    t0 = time.time()
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    # the judge's evidence is in the status while it runs
    ev = None
    for _ in range(100):
        st = d.status("web")
        ev = st.get("analysis", {}).get("evidence")
        if ev or st["phase"] == "Failed":
            break
        time.sleep(0.05)
    assert st["analysis"]["judge"] == "sequential", st["analysis"]
    assert ev, st["analysis"]
    assert ev["worseThreshold"] > 100 and ev["noWorseThreshold"] == 200, ev
    assert ev["canaryRequests"] >= 0 and ev["held"] is False, ev
    s = d.wait_phase("web", "Failed", timeout=20)
    dt = time.time() - t0
    load.stop()
    print("  sequential judge: rollout -> Failed in %.2fs" % dt)
    ev = d.events("web")
    assert ev[-1]["type"] == "rollback" and "sequential" in ev[-1]["message"], ev[-1]
    assert [e for e in ev if e["type"] == "check"] == [], "the 1m interval check never ran"
    # windows of 50 canary requests, at most x5 each: ~2.5 s apiece here
    # (docs/analysis.md, "Bursts")
    assert dt < 15 * SLOW, dt


def _wait(what, pred, timeout=10):
    end = time.time() + timeout * SLOW
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.05)
    raise AssertionError("timed out waiting for " + what)


def test_check_without_canary_traffic_is_held_not_failed():
    # no client at all: every check's window is empty. A canaryd document
    # holds the weight (onNoData hold) and says why; with onNoData fail, as
    # a Flagger document has it, the first check fails and rolls back
    v1, v2 = Upstream("v1"), Upstream("v2")
    port, port2 = free_port(), free_port()
    held = canary_yaml("held", "127.0.0.1:%d" % port, [v1.addr], interval="200ms", threshold=1)
    failed = _analysis(canary_yaml("failed", "127.0.0.1:%d" % port2, [v1.addr],
                                   interval="200ms", threshold=1), "onNoData: fail")
    d = Canaryd(held + "---\n" + failed)
    for name in ("held", "failed"):
        assert d.ctl("rollout", name, "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("failed", "Failed", timeout=10)
    assert "no canary requests in the last" in s["message"], s
    checks = _wait("5 held checks", lambda: (lambda c: c if len(c) >= 5 else None)(
        [e for e in d.events("held") if e["type"] == "check"]))
    s = d.status("held")
    assert s["phase"] == "Progressing" and s["failedChecks"] == 0, s
    assert s["canaryWeight"] == 10, s
    for c in checks:
        assert c["message"].startswith("check held at weight 10: request-success-rate has no "
                                       "data: no canary requests in the last"), c
        m = c["metrics"][0]
        assert m["held"] is True and m["passed"] is False and m["value"] is None, m
    rc, out, err = d.ctl("history", "held")
    assert rc == 0 and "request-success-rate=n/a [99..] held" in out, out
    # a held check is not made: it counts neither as passed nor as failed
    st, text = d.api("GET", "/metrics")
    for result in ("pass", "fail"):
        assert 'canaryd_checks_total{canary="held",result="%s"} 0\n' % result in text, text


def test_max_duration_ends_an_undecided_rollout_by_its_outcome():
    # three canaries without traffic, so never decided: after maxDuration
    # 2s each ends as its onMaxDuration says
    v1, v2 = Upstream("v1"), Upstream("v2")
    docs, ports = [], {}
    for how in ("pause", "rollback", "promote"):
        ports[how] = free_port()
        docs.append(_analysis(canary_yaml(how, "127.0.0.1:%d" % ports[how], [v1.addr],
                                          interval="200ms", threshold=1),
                              "maxDuration: 2s", "onMaxDuration: " + how))
    d = Canaryd("---\n".join(docs))
    t0 = time.time()
    for how in ports:
        assert d.ctl("rollout", how, "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    s = d.wait_phase("pause", "Paused", timeout=10)
    assert time.time() - t0 >= 1.9, "ended before maxDuration"
    assert s["canaryWeight"] == 10, s
    ev = d.events("pause")[-1]
    assert ev["type"] == "max-duration" and ev["message"].startswith(
        "analysis undecided after 2s (maxDuration): paused at weight 10"), ev
    s = d.wait_phase("rollback", "Failed", timeout=10)
    ev = d.events("rollback")[-1]
    assert ev["type"] == "rollback" and "(maxDuration): rolling back to v1" in ev["message"], ev
    assert get(ports["rollback"])[2] == b"v1\n"
    s = d.wait_phase("promote", "Succeeded", timeout=10)
    assert s["stableRevision"] == "v2", s
    types = [(e["type"], e["message"]) for e in d.events("promote")]
    assert ("promoting", "analysis undecided after 2s (maxDuration), promoting v2: 100% to "
            "canary") in types, types
    assert get(ports["promote"])[2] == b"v2\n"
    # a resume gives the paused one another 2 s of analysis
    assert d.ctl("resume", "pause")[0] == 0
    assert d.status("pause")["phase"] == "Progressing"
    d.wait_phase("pause", "Paused", timeout=10)


def test_warmup_holds_the_first_checks():
    # a failing canary under a 1.5 s warm-up: the checks due in it are
    # held unmade, the first one after it fails and rolls back
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=0.5)
    port = free_port()
    d = Canaryd(_analysis(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="200ms",
                                      threshold=1), "warmup: 1500ms", "minSamples: 5"))
    load = Load(port, threads=2, rps_per_thread=50)
    t0 = time.time()
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    d.wait_phase("web", "Failed", timeout=10)
    assert time.time() - t0 >= 1.4, "judged during the warm-up"
    load.stop()
    checks = [e for e in d.events("web") if e["type"] == "check"]
    warm = [c for c in checks if "warming up" in c["message"]]
    assert len(warm) >= 3 and all(c["metrics"] == [] for c in warm), checks
    assert warm[0]["message"].startswith("check held at weight 10: warming up, 0."), warm[0]
    assert checks[-1]["message"].startswith("check failed (1/1)"), checks[-1]


if __name__ == "__main__":
    sys.exit(run(globals()))
