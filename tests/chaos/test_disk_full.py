"""Disk full (issue 8, item 7): the data directory is a small tmpfs in a
private mount namespace, filled up while two rollouts run. canaryd must back
off (bounded wakeups, write attempts and log lines), keep traffic flowing
at its split, hold weight increases, still apply a rollback and an abort
(unsaved, kept in memory), say so in /readyz, /metrics and status, and
write it all once space comes back."""
import os
import re
import signal
import time

from chaoslib import (Canaryd, Load, Namespace, Upstream, canary_yaml, free_port,  # noqa: E402
                      run, tmpdir, wait_until)


def _readyz_is(d, code):
    st, body = d.readyz()
    return (st, body) if st == code else None


def test_disk_full_backs_off_keeps_traffic_and_recovers():
    v1, v2, v2b = Upstream("v1"), Upstream("v2"), Upstream("v2b")
    shop, pay = free_port(), free_port()
    text = (canary_yaml("shop", "127.0.0.1:%d" % shop, [v1.addr], [v2.addr], interval="300ms",
                        threshold=1000, max_weight=90, step_weight=10,
                        metrics=[("request-success-rate", "min: 0", "1m")])
            + "---\n"
            + canary_yaml("pay", "127.0.0.1:%d" % pay, [v1.addr], [v2b.addr], interval="300ms",
                          threshold=3, max_weight=90, step_weight=10,
                          metrics=[("request-success-rate", "min: 99", "2s")])
            # some 8 canary requests a second at 10 %: a 2 s window has 16
            ).replace("  analysis:\n", "  analysis:\n    minSamples: 5\n")
    data = os.path.join(tmpdir(), "data")
    os.mkdir(data)
    ns = Namespace("mount -t tmpfs -o size=4m tmpfs %s" % data)
    d = Canaryd(text, data_dir=data, ns=ns)
    loads = {"shop": Load(shop, threads=2, rps_per_thread=40),
             "pay": Load(pay, threads=2, rps_per_thread=40)}
    wait_until(lambda: all(d.status(n)["canaryWeight"] >= 20 for n in ("shop", "pay")), 20,
               "weight 20 in both rollouts")

    # fill the file system
    ns.sh("dd if=/dev/zero of=%s/fill bs=64k 2>/dev/null || true" % data)
    rc, df = ns.sh("df -k %s | tail -1" % data)
    assert df.split()[3] == "0", df
    st, body = wait_until(lambda: _readyz_is(d, 503), 10, "readyz 503 once the disk is full")
    assert "full" in body, body
    m = d.metrics()
    assert m["canaryd_store_ok"] == 0, m
    errors0 = m["canaryd_store_errors_total"]
    t_full = time.time()

    # a failing canary still rolls back, at once and unsaved
    v2b.stop()
    s = d.wait_phase("pay", "Failed", timeout=10)
    assert s["canaryWeight"] == 0 and s["stateSaved"] is False and s["unsavedEvents"] >= 1, s
    t_rollback = time.time()

    # the healthy one holds its weight: increases wait for the disk
    held = d.status("shop")["canaryWeight"]
    time.sleep(1.5)
    s = d.status("shop")
    assert s["phase"] == "Progressing" and s["canaryWeight"] == held, (held, s)
    for load in loads.values():
        load.stop()
    shop_ok = [code for (t, u, code) in loads["shop"].timeline if t > t_full]
    assert shop_ok and all(200 <= c < 300 for c in shop_ok), loads["shop"].by_status
    assert not loads["shop"].errors, loads["shop"].errors[:3]
    late = [u for (t, u, c) in loads["pay"].timeline if t > t_rollback + 0.1]
    assert late and all(u == "v1" for u in late), late[:20]

    # no traffic: what is left of the wakeups is the loop's own pace
    w0, t0 = d.wakeups(), time.time()
    time.sleep(2.0)
    woke, dt = d.wakeups() - w0, time.time() - t0
    print("  disk full, no traffic: %d wakeups in %.1fs" % (woke, dt))
    assert woke < 100 * dt, woke
    m = d.metrics()
    attempts = m["canaryd_store_errors_total"] - errors0
    elapsed = time.time() - t_full
    print("  %d failed writes in %.1fs of disk full" % (attempts, elapsed))
    assert 1 <= attempts <= 4 + elapsed / 2, attempts   # backoff up to 5s, not per tick
    assert len(d.log_lines("state not saved")) == 1, d.output()

    # an operator's abort goes through too, unsaved
    loads["shop"] = Load(shop, threads=2, rps_per_thread=40)
    t_abort = time.time()
    st, body = d.api("POST", "/api/v1/canaries/shop/abort", {})
    assert st == 200 and body["phase"] == "Failed" and body["stateSaved"] is False, (st, body)
    time.sleep(0.5)

    # space again: everything is written, once, and said once
    ns.sh("rm %s/fill" % data)
    wait_until(lambda: _readyz_is(d, 200), 8, "readyz 200 once there is space")
    loads["shop"].stop()
    late = [u for (t, u, c) in loads["shop"].timeline if t > t_abort + 0.1]
    assert late and all(u == "v1" for u in late), late[:20]
    assert loads["shop"].non2xx() == 0, loads["shop"].by_status
    m = d.metrics()
    assert m["canaryd_store_ok"] == 1, m
    saved = d.log_lines("state saved again after")
    assert len(saved) == 1, d.output()
    n = int(re.search(r"after (\d+) failed attempt", saved[0]).group(1))
    assert n >= 1, saved
    histories = {}
    for name in ("shop", "pay"):
        s = d.status(name)
        assert s["stateSaved"] is True and s["unsavedEvents"] == 0, s
        assert m['canaryd_store_unsaved_events{canary="%s"}' % name] == 0, m
        ev = d.events(name)
        # shop's operator aborted it, pay's failed checks rolled it back
        rollbacks = [e for e in ev if e["type"] == ("abort" if name == "shop" else "rollback")]
        assert len(rollbacks) == 1, rollbacks
        histories[name] = ev
    # held checks (too few requests yet) are not made: not failed ones
    pay_checks = [e for e in histories["pay"] if e["type"] == "check"
                  and not e["message"].startswith("check held")]
    assert sum(1 for e in pay_checks if not all(x["passed"] for x in e["metrics"])) == 3, \
        pay_checks
    assert "aborted by" in [e for e in histories["shop"] if e["type"] == "abort"][0]["message"]

    # and a restart finds it all where it stood
    assert d.stop() == 0, d.output()
    d = Canaryd(text, data_dir=data, ns=ns)
    for name in ("shop", "pay"):
        s = d.status(name)
        assert (s["phase"], s["canaryWeight"]) == ("Failed", 0), s
        assert d.events(name) == histories[name]


def test_restart_on_a_full_disk_serves_and_the_configured_rollout_waits():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    data = os.path.join(tmpdir(), "data")
    os.mkdir(data)
    ns = Namespace("mount -t tmpfs -o size=4m tmpfs %s" % data)
    stable_only = canary_yaml("shop", "127.0.0.1:%d" % port, [v1.addr])
    new_revision = canary_yaml("shop", "127.0.0.1:%d" % port, [v1.addr], [v2.addr],
                               interval="300ms", threshold=100, max_weight=50, step_weight=10)
    fill, free = ("dd if=/dev/zero of=%s/fill bs=64k 2>/dev/null || true" % data,
                  "rm %s/fill" % data)
    d = Canaryd(stable_only, data_dir=data, ns=ns)
    assert d.stop() == 0
    # after a clean stop SQLite has no room left even to read (its WAL
    # index): refused, saying why
    ns.sh(fill)
    d = Canaryd(stable_only, data_dir=data, ns=ns, wait=False)
    assert d.exit_code() == 1, d.output()
    assert "No space left on device" in d.output(), d.output()
    ns.sh(free)
    # after a crash (the WAL and its index still there) it serves on the
    # state it holds, and the configured rollout waits for space
    d = Canaryd(stable_only, data_dir=data, ns=ns)
    d.stop(signal.SIGKILL)
    ns.sh(fill)
    d = Canaryd(new_revision, data_dir=data, ns=ns)
    load = Load(port, threads=2, rps_per_thread=40)
    st, body = d.readyz()
    assert st == 503 and "full" in body, (st, body)
    assert d.log_lines("rollout of v2 from the configuration waits"), d.output()
    time.sleep(1.0)
    s = d.status("shop")
    assert s["phase"] == "Initialized" and s["canaryWeight"] == 0, s
    ns.sh(free)
    d.wait_phase("shop", "Progressing", timeout=8)
    wait_until(lambda: _readyz_is(d, 200), 8, "readyz 200")
    load.stop()
    assert load.non2xx() == 0 and not load.errors, (load.by_status, load.errors[:3])
    assert set(load.by_upstream) <= {"v1", "v2"}, load.by_upstream
    assert [e["type"] for e in d.events("shop")].count("rollout-started") == 1


def test_an_operator_is_answered_at_once_when_space_is_back():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    data = os.path.join(tmpdir(), "data")
    os.mkdir(data)
    ns = Namespace("mount -t tmpfs -o size=4m tmpfs %s" % data)
    d = Canaryd(canary_yaml("shop", "127.0.0.1:%d" % port, [v1.addr]), data_dir=data, ns=ns)
    d.stop(signal.SIGKILL)  # the WAL and its index stay: see above
    ns.sh("dd if=/dev/zero of=%s/fill bs=64k 2>/dev/null || true" % data)
    text = canary_yaml("shop", "127.0.0.1:%d" % port, [v1.addr], [v2.addr], interval="300ms",
                       threshold=100, max_weight=50, step_weight=10)
    d = Canaryd(text, data_dir=data, ns=ns)
    # while full, a rollout is refused: it would send traffic to new code
    rollout = {"revision": "v3", "endpoints": [v2.addr]}
    st, body = d.api("POST", "/api/v1/canaries/shop/rollout", rollout)
    assert st >= 500 and "full" in body["error"], (st, body)
    time.sleep(3.0)  # the backoff grows past a second
    ns.sh("rm %s/fill" % data)
    # the operator's call tries the disk now, not at the next retry
    st, body = d.api("POST", "/api/v1/canaries/shop/rollout", rollout)
    assert st == 200 and body["canaryRevision"] == "v3" and body["stateSaved"], (st, body)
    # and the configured rollout that waited does not replace it
    time.sleep(1.0)
    s = d.status("shop")
    assert s["canaryRevision"] == "v3", s
    starts = [e for e in d.events("shop") if e["type"] == "rollout-started"]
    assert len(starts) == 1 and "v3" in starts[0]["message"], starts


if __name__ == "__main__":
    raise SystemExit(run(globals()))
