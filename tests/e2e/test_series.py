"""The dashboard's server data with real traffic (issue 12): the 5-second
series of a canary at GET /api/v1/canaries/NAME/series and as SSE
"sample" events, the same numbers the proxy counted; and stable's value
beside the canary's in each check event, with the audit's hash chain
still verifying."""
import os
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLOW, Canaryd, EventStream, Load, Upstream, canary_yaml, free_port, run  # noqa: E402


SIDE_KEYS = {"requests", "errors", "errorRate", "p50", "p95", "p99"}


def _check_side(side, what):
    assert set(side) == SIDE_KEYS, (what, side)
    if side["requests"] == 0:
        assert side["errorRate"] is None and side["p99"] is None, (what, side)
        return
    assert abs(side["errorRate"] - 100.0 * side["errors"] / side["requests"]) < 1e-9, side
    assert 0 <= side["p50"] <= side["p95"] <= side["p99"] < 10000, (what, side)


def test_series_and_samples_follow_real_traffic():
    # the canary fails one request in five; every check fails (error-rate
    # max 1) but the threshold is far: the rollout stays at weight 50
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=0.2)
    port = free_port()
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], canary=[v2.addr],
                            interval="1s", threshold=1000, step_weight=50, max_weight=50,
                            metrics=[("error-rate", "max: 1", "1m")]))
    stream = EventStream(d)
    load = Load(port, threads=2, rps_per_thread=100)
    try:
        # the first bucket with canary requests, within two buckets
        end = time.time() + 12 * SLOW
        sample = None
        while time.time() < end:
            typ, data = stream.next()
            if typ == "sample" and data["sample"]["canary"]["requests"] > 0:
                sample = data
                break
        assert sample, "no sample with canary requests"
        # a bucket may end before the first check (1 s after the rollout
        # began): the check events are read once one has come, with the
        # traffic it judges still flowing
        end = time.time() + 10 * SLOW
        checks = []
        while not checks and time.time() < end:
            checks = [e for e in d.events("web") if e["type"] == "check" and e.get("metrics")]
            time.sleep(0.1)
    finally:
        load.stop()
    assert sample["canary"] == "web", sample
    smp = sample["sample"]
    assert set(smp) == {"t", "weight", "phase", "canary", "stable"}, smp
    assert smp["weight"] == 50 and smp["phase"] == "Progressing", smp
    assert abs(smp["t"] - time.time() * 1000) < 15000 * SLOW, smp
    assert smp["t"] % 5000 < 1000, smp   # buckets end on 5-second marks
    _check_side(smp["canary"], "canary")
    _check_side(smp["stable"], "stable")
    assert smp["canary"]["errors"] > 0 and smp["stable"]["errors"] == 0, smp
    # 100 rps each way at most over 5 s: at most 1000 requests in a bucket
    total = smp["canary"]["requests"] + smp["stable"]["requests"]
    assert 0 < total <= 1000 + 50, smp

    code, ser = d.api("GET", "/api/v1/canaries/web/series")
    assert code == 200, (code, ser)
    assert ser["canary"] == "web" and ser["step"] == "5s" and ser["available"] is True, ser
    ts = [s["t"] for s in ser["samples"]]
    assert ts == sorted(set(ts)) and smp["t"] in ts, ts
    assert ser["samples"][ts.index(smp["t"])] == smp, (ser, smp)
    code, later = d.api("GET", "/api/v1/canaries/web/series?since=%d" % smp["t"])
    assert code == 200 and all(s["t"] > smp["t"] for s in later["samples"]), later
    code, later = d.api("GET", "/api/v1/canaries/web/series?since=%d" % (ts[0] - 1))
    assert [s["t"] for s in later["samples"]] == ts[:len(later["samples"])], later
    for bad in ("abc", "-5", "1e3", "99999999999999999999"):
        code, body = d.api("GET", "/api/v1/canaries/web/series?since=" + bad)
        assert code == 400 and "since" in body["error"], (bad, code, body)
    code, body = d.api("GET", "/api/v1/canaries/nosuch/series")
    assert code == 404, (code, body)

    # each check's metric carries stable's value over the same window
    assert checks, d.events("web")
    m = checks[-1]["metrics"][0]
    assert m["name"] == "error-rate" and m["value"] > 1 and m["stable"] == 0, m
    rc, out, err = d.ctl("history", "web")
    assert rc == 0 and "(stable 0)" in out, (rc, out, err)
    rc, out, err = d.ctl("audit", "verify", "web")
    assert rc == 0, (rc, out, err)


if __name__ == "__main__":
    sys.exit(run(globals()))
