"""Zero loss: under full wrk load with healthy upstreams, weight changes
as fast as 1000 a second for 10 s (at least 1000 of them, however busy the
machine is), a SIGHUP reload in the middle, then a rollback: not one
non-2xx response and not one socket error at the client."""
import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import SLOW, Canaryd, Upstream, canary_yaml, free_port, run  # noqa: E402

CHANGES_PER_S = 1000
SECONDS = 10
MIN_CHANGES = 1000  # what must be made while wrk runs, on a loaded machine too


def _wrk_summary(out):
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    total = re.search(r"(\d+) requests in", out)
    return (int(total.group(1)) if total else 0,
            int(non2xx.group(1)) if non2xx else 0,
            sum(int(x) for x in sock.groups()) if sock else 0)


def test_weight_storm_reload_and_rollback_lose_nothing():
    v1, v1b, v2 = Upstream("v1"), Upstream("v1b"), Upstream("v2")
    port = free_port()
    text = canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h")
    d = Canaryd(text)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    duration = SECONDS + 4
    wrk = subprocess.Popen(["wrk", "-t1", "-c50", "-d%ds" % duration, "--timeout", "5s",
                            "http://127.0.0.1:%d/" % port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    time.sleep(1.0)
    done = {"changes": 0, "bad": []}

    def storm():
        c = http.client.HTTPConnection("127.0.0.1", d.admin_port, timeout=10)
        t0 = time.time()
        for i in range(CHANGES_PER_S * SECONDS):
            due = t0 + i / CHANGES_PER_S
            wait = due - time.time()
            if wait > 0:
                time.sleep(wait)
            if time.time() - t0 > SECONDS:
                break  # the storm ends while wrk still runs
            c.request("POST", "/api/v1/canaries/web/weight", body=json.dumps({"weight": i % 101}),
                      headers={"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            if r.status != 200:
                done["bad"].append(r.status)
            done["changes"] += 1
        done["seconds"] = time.time() - t0
        c.close()

    t = threading.Thread(target=storm)
    t.start()
    time.sleep(SECONDS / 2)
    # reload in the middle: a second stable endpoint
    with open(d.config_path, "w") as f:
        f.write(canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr, v1b.addr], interval="1h"))
    d.kill(signal.SIGHUP)
    t.join(SECONDS * 4 * SLOW)
    rc, out, err = d.ctl("abort", "web")
    assert rc == 0, (rc, out, err)
    out, _ = wrk.communicate(timeout=duration + 30)
    total, non2xx, sockerr = _wrk_summary(out)
    print("  wrk: %d requests, %d non-2xx, %d socket errors; %d weight changes in %.1fs" % (
        total, non2xx, sockerr, done["changes"], done.get("seconds", 0)))
    assert total > 1000, out
    assert non2xx == 0 and sockerr == 0, out
    assert not done["bad"], done["bad"][:5]
    # a busy machine makes fewer changes a second (each is a round trip to
    # the admin API), never fewer than MIN_CHANGES; all made under load
    assert done["changes"] >= MIN_CHANGES, done
    assert "reloaded" in d.output(), d.output()[-2000:]
    s = d.status("web")
    assert s["phase"] == "Failed" and s["canaryWeight"] == 0, s
    assert s["stableEndpoints"] == [v1.addr, v1b.addr], s


if __name__ == "__main__":
    sys.exit(run(globals()))
