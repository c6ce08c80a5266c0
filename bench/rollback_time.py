"""Measures the time from `canaryctl rollout` to phase Failed for a canary
that fails 20 % of its requests (200 requests/s of steady traffic, 10 % to
the canary), RUNS times, with real processes on loopback, under the
threshold judge (interval 1s, threshold 3, request-success-rate >= 99) or
the sequential judge (alpha 0.01).
Usage: python3 bench/rollback_time.py [BUILD_DIR] [RUNS] [threshold|sequential]"""
import os
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "e2e"))
os.environ.setdefault("CANARYD_BUILD", sys.argv[1] if len(sys.argv) > 1 else "build")
import harness  # noqa: E402

runs = int(sys.argv[2]) if len(sys.argv) > 2 else 5
judge = sys.argv[3] if len(sys.argv) > 3 else "threshold"
times = []
try:
    for i in range(runs):
        v1, v2 = harness.Upstream("v1"), harness.Upstream("v2", fail_rate=0.2)
        port = harness.free_port()
        text = harness.canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr],
                                   interval="1s", threshold=3, max_weight=50, step_weight=10)
        if judge == "sequential":
            text = text.replace("    threshold: 3\n", "    threshold: 3\n    judge: sequential\n")
        d = harness.Canaryd(text)
        load = harness.Load(port, threads=4, rps_per_thread=50)
        time.sleep(1.0)
        t0 = time.time()
        rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
        assert rc == 0, err
        r = subprocess.run([os.path.join(harness.BUILD, "canaryctl"), "--server", d.server,
                            "wait", "web", "--timeout", "30s"], capture_output=True)
        dt = time.time() - t0
        load.stop()
        assert r.returncode == 1, r
        times.append(dt)
        print("run %d: rollout -> Failed in %.2f s (%d requests, %d to the canary)" % (
            i + 1, dt, load.total(), load.by_upstream.get("v2", 0)), flush=True)
        harness.cleanup()
finally:
    harness.cleanup()
print("rollout -> Failed (%s judge, 20%% errors at 10%% of 200 req/s): median %.2f s, min %.2f s, max %.2f s over %d runs"
      % (judge, statistics.median(times), min(times), max(times), len(times)))
