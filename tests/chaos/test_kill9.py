"""kill -9 during writes, in a loop, with traffic and two rollouts running:
every restart's history must begin with the previous one's, unchanged (no
event lost or rewritten: same digest), hold no event twice (each weight
step once, one rollout start), and the state must resume where it stood.
Half the kills land at a random moment, half inside a write: strace kills
canaryd on entering its K-th pwrite64 (SQLite writing WAL frames), so that
a transaction is cut after some of its frames."""
import os
import random
import signal
import time

from chaoslib import (Canaryd, Load, Strace, Upstream, canary_yaml, digest, free_port,  # noqa: E402
                      run, tmpdir, wait_until)

KILLS = 20
CANARIES = ("shop", "pay")


def _check_history(name, prev, now):
    """<now> must extend <prev> (same events, same order, same fields) and
    hold each step once."""
    assert len(now) >= len(prev), (name, len(prev), len(now))
    assert digest(now[:len(prev)]) == digest(prev), (
        name, "history rewritten", [e for e, p in zip(now, prev) if e != p][:3])
    ids = [e["id"] for e in now]
    assert ids == sorted(set(ids)), (name, "ids not unique and increasing", ids)
    starts = [e for e in now if e["type"] == "rollout-started"]
    assert len(starts) == 1, (name, starts)
    weights = [e["weight"] for e in now if e["type"] == "weight"]
    assert weights == sorted(set(weights)), (name, "a step twice", weights)


def _state_matches_history(d, name):
    """The restored state is the one the last event describes (read again
    if a check slipped in between the two reads)."""
    for _ in range(5):
        s = d.status(name)
        ev = d.events(name)
        s2 = d.status(name)
        if s == s2:
            last = ev[-1]
            assert (s["phase"], s["canaryWeight"]) == (last["phase"], last["weight"]), (s, last)
            return s
    raise AssertionError("%s: status kept moving" % name)


def test_kill_9_in_a_loop_loses_and_duplicates_nothing():
    v1, v2 = Upstream("v1"), Upstream("v2")
    ports = {n: free_port() for n in CANARIES}
    text = "---\n".join(
        canary_yaml(n, "127.0.0.1:%d" % ports[n], [v1.addr], [v2.addr], interval="300ms",
                    threshold=1000, max_weight=99, step_weight=1,
                    metrics=[("request-success-rate", "min: 0", "1m")])
        for n in CANARIES)
    config = os.path.join(tmpdir(), "canary.yaml")
    with open(config, "w") as f:
        f.write(text)
    data = os.path.join(tmpdir(), "data")
    loads = [Load(ports[n], threads=2, rps_per_thread=40) for n in CANARIES]
    rnd = random.Random(int(os.environ.get("CANARYD_CHAOS_SEED", "9")))
    prev = {n: [] for n in CANARIES}
    before = {n: 0 for n in CANARIES}
    mid_write = 0
    digests = []
    try:
        for i in range(KILLS):
            d = Canaryd(config_path=config, data_dir=data)
            for n in CANARIES:
                s = _state_matches_history(d, n)
                assert s["phase"] == "Progressing", (i, n, s)
                assert s["canaryWeight"] >= before[n], (i, n, "went back", before[n], s)
                now = d.events(n)
                _check_history(n, prev[n], now)
                prev[n] = now
            digests.append(digest(prev["shop"])[:12])
            time.sleep(rnd.uniform(0.2, 0.8))
            for n in CANARIES:
                before[n] = d.status(n)["canaryWeight"]
            if i % 2:
                d.stop(signal.SIGKILL)
            else:
                tracer = Strace(d.p.pid, "pwrite64", "signal=SIGKILL:when=%d" % rnd.randint(1, 8))
                try:
                    d.wait(5)
                    mid_write += 1
                except Exception:  # noqa: BLE001 - no write came: kill it anyway
                    d.stop(signal.SIGKILL)
                tracer.detach()
            assert d.p.returncode == -signal.SIGKILL, (i, d.p.returncode, d.output()[-2000:])
        d = Canaryd(config_path=config, data_dir=data)
        for n in CANARIES:
            _state_matches_history(d, n)
            _check_history(n, prev[n], d.events(n))
        d.stop()
    finally:
        for load in loads:
            load.stop()
    print("  %d kills (%d inside a write); shop's history: %d events, digests %s"
          % (KILLS, mid_write, len(prev["shop"]), " ".join(digests[-3:])))
    assert mid_write >= KILLS // 4, mid_write


if __name__ == "__main__":
    raise SystemExit(run(globals()))
