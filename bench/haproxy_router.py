#!/usr/bin/env python3
"""router haproxy, measured: the split table (canary share over 1000
requests at each weight, as tests/e2e/test_haproxy.py checks it) and the
time from a rollback decision to HAProxy applying it, on a real HAProxy
started here (loopback ports, files in a temporary directory, stopped on
exit). Light: a few thousand sequential requests, no load generator.

    make all && python3 bench/haproxy_router.py [ROUNDS]

The rollback is timed three ways, ROUNDS times (default 20): with the
canary at 100 %,
  apply->ack   canaryd's own figure: from the router's apply to HAProxy's
               answer to the write (status .haproxy.lastApplyMs);
  abort->next  from sending `POST .../abort` to the admin API to the first
               request answered by stable, a client sending requests back
               to back on one kept-alive connection (so it includes the
               admin API, the controller's commit to SQLite and a request);
  audit->next  from the rollback's audit time (its `time`, wall clock, ms)
               to that first stable answer."""
import datetime
import os
import statistics
import sys
import threading
import time
import http.client

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
os.environ.setdefault("CANARYD_BUILD", "build")
import harness  # noqa: E402
from test_haproxy import HAProxy, hap_yaml, sample, upstream_of, wait_applied  # noqa: E402


def parse_time(s):
    return datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()


def rollback_once(cd, hp, ca_addr, rev):
    rc, out, err = cd.ctl("rollout", "web", "--revision", rev, "--endpoints", ca_addr)
    assert rc == 0, (rc, out, err)
    cd.wait_phase("web", ("Progressing",))
    s, body = cd.api("POST", "/api/v1/canaries/web/weight", {"weight": 100})
    assert s == 200, body
    wait_applied(cd, "web", 100)
    seen = []          # (end time, upstream)
    stop = [False]

    def client():
        c = http.client.HTTPConnection("127.0.0.1", hp.port, timeout=10)
        end = time.time() + 20
        while not stop[0] and time.time() < end:
            c.request("GET", "/")
            r = c.getresponse()
            r.read()
            seen.append((time.time(), upstream_of(dict(r.getheaders()))))
        c.close()
    t = threading.Thread(target=client)
    t.start()
    time.sleep(0.2)
    t0 = time.time()
    s, body = cd.api("POST", "/api/v1/canaries/web/abort", {})
    assert s == 200, body
    wait_applied(cd, "web", 0)
    time.sleep(0.1)
    stop[0] = True
    t.join(20)
    first = next(te for te, up in seen if te > t0 and up == "stable")
    ack = cd.status("web")["haproxy"]["lastApplyMs"]
    rb = [e for e in cd.events("web") if e["type"] == "rollback"][-1]
    return ack, (first - t0) * 1000, (first - parse_time(rb["time"])) * 1000


def main():
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    try:
        st = harness.Upstream("stable")
        ca = harness.Upstream("canary")
        hp = HAProxy()
        cd = harness.Canaryd(hap_yaml("web", "unix:" + hp.sock, [st.addr], step_weights=(50,),
                                      interval="1h"))
        rc, out, err = cd.ctl("rollout", "web", "--revision", "v2", "--endpoints", ca.addr)
        assert rc == 0, (rc, out, err)
        cd.wait_phase("web", ("Progressing",))
        print("split: HAProxy 2.6 roundrobin, 1 stable + 1 canary server, 1000 requests a step")
        print("| step | expected % | measured % | longest canary run |")
        print("| ---: | ---: | ---: | ---: |")
        for w in (0, 1, 5, 10, 20, 25, 33, 50, 60, 75, 90, 99, 100, 50, 10, 0):
            s, body = cd.api("POST", "/api/v1/canaries/web/weight", {"weight": w})
            assert s == 200, body
            wait_applied(cd, "web", w)
            share, longest, bad = sample(hp.port, 1000)
            assert bad == 0
            print("| %d | %d | %.1f | %d |" % (w, w, share, longest), flush=True)
        acks, nexts, audits = [], [], []
        for i in range(rounds):
            a, n, au = rollback_once(cd, hp, ca.addr, "v%d" % (i + 3))
            acks.append(a)
            nexts.append(n)
            audits.append(au)
        def row(name, v):
            v = sorted(v)
            print("| %s | %.2f | %.2f | %.2f |" % (name, statistics.median(v),
                                                 v[int(len(v) * 0.9) - 1], v[-1]))
        print("\nrollback, %d rounds (ms)" % rounds)
        print("| measure | median | p90 | max |")
        print("| --- | ---: | ---: | ---: |")
        row("apply->ack (router to HAProxy's answer)", acks)
        row("abort->next (API call to first stable answer)", nexts)
        row("audit->next (rollback audit time to first stable answer)", audits)
    finally:
        harness.cleanup()


if __name__ == "__main__":
    main()
