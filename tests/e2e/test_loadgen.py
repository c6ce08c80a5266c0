"""bench/loadgen, the open-loop load generator of bench/mirror.sh, against a
real upstream: it sends at the rate asked, on its schedule, and counts a
request's latency from when it was due, so that a server slower than the
schedule shows as latency (coordinated omission corrected) instead of as a
lower rate with good latencies."""
import os
import re
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, SLOW, Upstream, run  # noqa: E402

LOADGEN = os.path.join(BUILD, "bench", "loadgen")


def loadgen(*args):
    p = subprocess.run([LOADGEN] + list(args), capture_output=True, text=True,
                       timeout=30 * SLOW)
    m = re.search(r"^LOADGEN (.*)$", p.stdout, re.M)
    fields = dict(kv.split("=") for kv in m.group(1).split()) if m else {}
    return p.returncode, {k: float(v) for k, v in fields.items()}, p.stdout + p.stderr


def test_sends_at_the_rate_asked_and_orders_percentiles():
    up = Upstream("v1")
    rc, f, out = loadgen("-c", "4", "-r", "500", "-d", "2", "-w", "0.2", up.addr)
    assert rc == 0, out
    assert abs(f["rate"] - 500) <= 25, out   # +-5 %
    assert f["sent"] == 1100 and f["done"] == 1100 and f["unsent"] == 0, out
    assert f["errors"] == 0 and f["non2xx"] == 0, out
    assert 0 < f["p50"] <= f["p90"] <= f["p99"] <= f["p999"] <= f["max"], out


def test_a_server_behind_schedule_shows_as_latency():
    # one connection, answers 100 ms late: 10 a second can be answered, 50
    # are asked for; each waiting request's latency counts from its due
    # time, so the late ones see far more than the server's 100 ms
    up = Upstream("slow", latency_ms=100)
    rc, f, out = loadgen("-c", "1", "-r", "50", "-d", "1", "-t", "1000", up.addr)
    assert rc == 0, out
    assert f["errors"] <= 1, out   # the one outstanding at the end
    assert f["unsent"] > 0 and f["rate"] < 50, out
    assert f["max"] >= 500000, out   # us: the last answered waited long
    assert f["p50"] >= 100000, out


def test_bad_arguments_are_refused():
    rc, _, out = loadgen("-r", "fast", "127.0.0.1:1")
    assert rc == 2 and "-r 'fast' is not a number" in out, out
    rc, _, out = loadgen("example.com:80")
    assert rc == 2 and "'example.com:80' is not a numeric HOST:PORT" in out, out


if __name__ == "__main__":
    sys.exit(run(globals()))
