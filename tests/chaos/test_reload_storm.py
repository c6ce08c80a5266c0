"""SIGHUP under load: a storm of reloads, some of files that are invalid,
huge or hostile, loses no request and ends on the last valid configuration;
and reading a file never stalls the proxied traffic, because it is read and
checked off the event loop (issue 8, item 10).

Each test prints what it measured (reloads applied and refused, the longest
request during a reload) as 'figure:' lines."""
import os
import signal
import subprocess
import sys
import threading
import time
import http.client

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "e2e"))
from harness import (BUILD, SLOW, Canaryd, Upstream, canary_yaml, free_port,  # noqa: E402
                     get, run, tmpdir, wait_port)

# the configuration that CFG_MAX_ bounds refuse, and others that are wrong
BRACKETS = 100000


class TimedLoad:
    """HTTP/1.1 keep-alive clients that record, for every request, when it
    started and ended, its status and the X-Upstream that answered, or the
    error. No pacing: each client sends its next request when the last one
    is answered, so a stalled loop shows as one long request per client."""

    def __init__(self, port, clients=4):
        self.port = port
        self.lock = threading.Lock()
        self.done = []    # (start, end, status, upstream)
        self.errors = []  # (start, end, error)
        self.running = True
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for t in self.threads:
            t.start()

    def _run(self):
        conn = None
        deadline = time.time() + 300  # hard bound
        while self.running and time.time() < deadline:
            t0 = time.time()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                conn.request("GET", "/")
                r = conn.getresponse()
                r.read()
                with self.lock:
                    self.done.append((t0, time.time(), r.status, r.getheader("X-Upstream", "-")))
                if (r.getheader("Connection") or "").lower() == "close":
                    conn.close()
                    conn = None
            except Exception as e:  # noqa: BLE001 - every failure is counted
                with self.lock:
                    self.errors.append((t0, time.time(), repr(e)))
                if conn:
                    conn.close()
                conn = None
                time.sleep(0.01)
            time.sleep(0.002)  # keeps a plain build from taking both cores
        if conn:
            conn.close()

    def stop(self):
        self.running = False
        for t in self.threads:
            t.join(40)
        return self

    def longest(self, since, until):
        """The longest request, answered or failed (a client times out after
        30 s), that was in flight at some time in [since, until]."""
        with self.lock:
            spans = [e - s for s, e, _, _ in self.done if e >= since and s <= until]
            spans += [e - s for s, e, _ in self.errors if e >= since and s <= until]
        return max(spans) if spans else 0.0

    def count(self):
        with self.lock:
            return len(self.done)


def write(path, text):
    """Replaces <path> at once, as an editor or a deploy tool would."""
    tmp = path + ".new"
    with open(tmp, "w") as f:
        f.write(text)
    os.rename(tmp, path)


def config(listen, stable, extra=""):
    return canary_yaml("shop", listen, [stable.addr], interval="1s") + extra


def wait_upstream(port, name, timeout=10):
    end = time.time() + timeout * SLOW
    last = None
    while time.time() < end:
        _, h, _ = get(port)
        last = h.get("X-Upstream")
        if last == name:
            return
        time.sleep(0.05)
    raise AssertionError("traffic never went to %s (last: %s)" % (name, last))


def hostile_configs(listen, good):
    """Files a reload must refuse: (name, text, what the log must say)."""
    valid = config(listen, good)
    return [
        ("syntax", valid + "    stepWeight: [5\n", "YAML syntax error"),
        ("unknown-key", valid + "  listne: 127.0.0.1:1\n", "did you mean 'listen'?"),
        ("brackets", valid + "---\n" + "[" * BRACKETS + "\n", "nested more than 64 levels"),
        ("flow-maps", valid + "---\n" + "{a: " * 20000 + "\n", "nested more than 64 levels"),
        ("too-large", valid + "#" * (4 << 20) + "\n", "file too large"),
        ("documents", valid + "---\n" * 2000, "more than 1000 documents"),
        ("billion-laughs", valid + "---\na: &a [x,x,x,x,x,x,x,x,x,x]\n" + "".join(
            "%s: &%s [%s]\n" % (c, c, ",".join(["*" + p] * 10))
            for p, c in zip("abcdefg", "bcdefgh")), "more than 100000 values"),
        ("control-char", valid.replace("revision: v1", 'revision: "v1\\n2026 info shop: promoted"'),
         "must not contain control characters, found \\x0a"),
        ("empty", "", "no Canary documents"),
        ("many-errors", valid.replace("endpoints: [%s]" % good.addr,
                                      "endpoints: [%s]" % ", ".join(["x"] * 30)),
         "reload: 10 more errors (canaryd --check -c "),
        ("binary", "\x00\xff\xfe" * 1000, "control characters are not allowed"),
    ]


def test_sighup_storm_under_load_loses_nothing_and_ends_on_the_last_valid_config():
    ups = {n: Upstream(n) for n in ("a", "b", "final")}
    port = free_port()
    listen = "127.0.0.1:%d" % port
    d = Canaryd(config(listen, ups["a"]))
    wait_port(port)
    bad = hostile_configs(listen, ups["b"])
    load = TimedLoad(port)
    time.sleep(0.3)
    # 50 SIGHUPs in 5 s: valid files (a, b) and refused ones in turn
    sent = 0
    t0 = time.time()
    for i in range(49):
        if i % 3 == 2:
            _, text, _ = bad[(i // 3) % len(bad)]
        else:
            text = config(listen, ups["a" if i % 2 else "b"])
        write(d.config_path, text)
        d.kill(signal.SIGHUP)
        sent += 1
        time.sleep(max(0.0, t0 + (i + 1) * 0.1 - time.time()))
    write(d.config_path, config(listen, ups["final"]))
    d.kill(signal.SIGHUP)
    sent += 1
    storm = time.time() - t0
    wait_upstream(port, "final")
    time.sleep(0.3)
    load.stop()
    assert d.alive(), d.output()[-3000:]
    assert not load.errors, "%d failed requests: %s" % (len(load.errors), load.errors[:5])
    statuses = {}
    for _, _, st, _ in load.done:
        statuses[st] = statuses.get(st, 0) + 1
    assert set(statuses) == {200}, statuses
    # what traffic does is what status says
    st = d.status("shop")
    assert st["stableEndpoints"] == [ups["final"].addr], st
    # later requests all go to the last valid configuration
    for _ in range(20):
        _, h, _ = get(port)
        assert h.get("X-Upstream") == "final", h
    out = d.output()
    applied = out.count("configuration reloaded from")
    refused = out.count("reload failed:")
    assert applied >= 2 and refused >= 1, out[-3000:]
    # coalesced: never more reads than signals (which files were read
    # depends on timing: test_each_hostile_config_is_refused reads each)
    assert applied + refused <= sent, (applied, refused, sent)
    assert "\n2026 info shop: promoted" not in out  # no forged line
    print("figure: %d SIGHUPs in %.1fs, %d requests, 0 failed; %d reloads applied, %d refused,"
          " %d coalesced; longest request %.0f ms" % (
              sent, storm, load.count(), applied, refused, sent - applied - refused,
              1000 * load.longest(t0, time.time())), flush=True)


def test_each_hostile_config_is_refused_and_traffic_goes_on():
    """One reload at a time: each file is refused for its reason, with a
    position, and the running configuration keeps serving every request."""
    ups = {n: Upstream(n) for n in ("a", "b")}
    port = free_port()
    listen = "127.0.0.1:%d" % port
    d = Canaryd(config(listen, ups["a"]))
    wait_port(port)
    load = TimedLoad(port)
    for name, text, reason in hostile_configs(listen, ups["b"]):
        n = d.output().count("reload failed:")
        write(d.config_path, text)
        d.kill(signal.SIGHUP)
        end = time.time() + 10 * SLOW
        while d.output().count("reload failed:") == n and time.time() < end:
            time.sleep(0.02)
        out = d.output()
        assert out.count("reload failed:") == n + 1, "%s: not refused:\n%s" % (name, out[-2000:])
        assert reason in out, "%s: no '%s' in the log:\n%s" % (name, reason, out[-2000:])
        _, h, _ = get(port)
        assert h.get("X-Upstream") == "a", (name, h)
    load.stop()
    out = d.output()
    assert "configuration reloaded" not in out, out[-2000:]
    assert "\n2026 info shop: promoted" not in out  # no forged line
    # every logged error has FILE:LINE:COL
    for line in out.splitlines():
        if " reload: " in line and " more errors (" not in line:
            assert (" reload: %s:" % d.config_path) in line, line
            rest = line.split(" reload: %s:" % d.config_path, 1)[1]
            ln, col = rest.split(":")[:2]
            assert ln.isdigit() and col.isdigit(), line
    assert not load.errors, load.errors[:5]
    assert {st for _, _, st, _ in load.done} == {200}


def test_reloading_100000_brackets_does_not_stall_traffic():
    """The report: a valid canary then 100,000 '[' stalled every proxied
    request for 12 s on SIGHUP. It is refused at the 65th '[' now, and read
    off the loop anyway."""
    up = Upstream("a")
    port = free_port()
    listen = "127.0.0.1:%d" % port
    d = Canaryd(config(listen, up))
    wait_port(port)
    load = TimedLoad(port)
    time.sleep(0.5)
    before = load.longest(0, time.time())
    write(d.config_path, config(listen, up) + "---\n" + "[" * BRACKETS + "\n")
    t0 = time.time()
    d.kill(signal.SIGHUP)
    end = time.time() + 40 * SLOW  # long enough to see the old stall end
    while "reload failed" not in d.output() and time.time() < end:
        time.sleep(0.02)
    t1 = time.time()
    time.sleep(0.5)
    load.stop()  # requests held up by a stall finish first
    longest = load.longest(t0, time.time())
    # generous: the stall this replaces was 12 s
    assert longest < 2.0 * SLOW, "a request took %.2fs during the reload" % longest
    out = d.output()
    assert "nested more than 64 levels deep" in out, out[-2000:]
    assert not load.errors, load.errors[:5]
    assert load.count() > 0
    print("figure: 100,000 brackets: reload refused in %.0f ms; longest request during it "
          "%.0f ms (before it %.0f ms)" % (1000 * (t1 - t0), 1000 * longest, 1000 * before),
          flush=True)


def big_valid_config(listen, up, values):
    """A valid canary made slow to read: <values> keys and values in
    metadata.labels (checked, kept), within CFG_MAX_VALUES."""
    labels = ",".join("l%d: x" % i for i in range(values // 2))
    return config(listen, up).replace("  name: shop\n", "  name: shop\n  labels: {%s}\n" % labels, 1)


def test_reading_a_big_config_never_holds_up_requests():
    """A file that takes a good part of a second to read and check is read
    on the thread pool: no request waits for it. The bound is calibrated
    on this machine: half the time `canaryd --check` takes for the same
    file, which is what a reload read on the loop would stall every request
    for."""
    ups = {n: Upstream(n) for n in ("a", "b")}
    port = free_port()
    listen = "127.0.0.1:%d" % port
    d = Canaryd(config(listen, ups["a"]))
    wait_port(port)
    path = os.path.join(tmpdir(), "big.yaml")
    texts = [big_valid_config(listen, ups[n], 95000) for n in ("b", "a")]
    write(path, texts[0])
    t = time.time()
    r = subprocess.run([os.path.join(BUILD, "canaryd"), "--check", "-c", path],
                       capture_output=True, text=True, timeout=60 * SLOW)
    check = time.time() - t
    assert r.returncode == 0, r.stdout + r.stderr
    load = TimedLoad(port)
    time.sleep(0.5)
    t0 = time.time()
    for i in range(4):
        write(d.config_path, texts[i % 2])
        n = d.output().count("configuration reloaded from")
        d.kill(signal.SIGHUP)
        end = time.time() + 30 * SLOW
        while d.output().count("configuration reloaded from") == n and time.time() < end:
            time.sleep(0.01)
        assert d.output().count("configuration reloaded from") == n + 1, d.output()[-2000:]
    t1 = time.time()
    wait_upstream(port, "a")
    load.stop()
    longest = load.longest(t0, t1)
    assert not load.errors, load.errors[:5]
    print("figure: 4 reloads of a %d KB file of 95,000 values: %.0f ms each (--check: %.0f ms);"
          " longest request during them %.0f ms" % (
              len(texts[0]) // 1024, 1000 * (t1 - t0) / 4, 1000 * check, 1000 * longest),
          flush=True)
    if check >= 0.2:  # else the machine is too fast for the difference to show
        assert longest < check / 2, ("a request took %.0f ms during a reload; reading the "
                                     "file takes %.0f ms" % (1000 * longest, 1000 * check))


def test_sighups_during_a_reload_make_one_more_after_it():
    """Ten SIGHUPs while a big file is being read, then a change and one
    more: two reads in all, and the second reads the file as the last
    signal left it."""
    ups = {n: Upstream(n) for n in ("a", "b")}
    port = free_port()
    listen = "127.0.0.1:%d" % port
    d = Canaryd(config(listen, ups["a"]))
    wait_port(port)
    write(d.config_path, big_valid_config(listen, ups["b"], 95000))
    for _ in range(10):
        d.kill(signal.SIGHUP)
        time.sleep(0.001)
    write(d.config_path, config(listen, ups["b"]))
    d.kill(signal.SIGHUP)
    end = time.time() + 30 * SLOW
    while d.output().count("configuration reloaded from") < 2 and time.time() < end:
        time.sleep(0.02)
    time.sleep(1.0 * SLOW)  # a third read would show by now
    assert d.output().count("configuration reloaded from") == 2, d.output()[-2000:]
    assert d.status("shop")["stableEndpoints"] == [ups["b"].addr]
    wait_upstream(port, "b")


def test_sigterm_during_a_reload_exits_cleanly():
    """A reload being read when SIGTERM comes is finished and dropped: the
    daemon drains and exits 0, with nothing leaked (the sanitizer build
    checks)."""
    up = Upstream("a")
    port = free_port()
    listen = "127.0.0.1:%d" % port
    d = Canaryd(config(listen, up))
    wait_port(port)
    write(d.config_path, big_valid_config(listen, up, 95000))
    d.kill(signal.SIGHUP)
    d.kill(signal.SIGHUP)  # and one more after it, which SIGTERM cancels
    time.sleep(0.02)
    rc = d.stop(signal.SIGTERM, timeout=30)
    assert rc == 0, (rc, d.output()[-2000:])


if __name__ == "__main__":
    sys.exit(run(globals()))
