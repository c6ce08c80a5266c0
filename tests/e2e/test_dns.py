"""Host names in endpoints, and a status that never says what traffic does
not do.

canaryd runs in a private mount namespace with its own /etc/hosts,
nsswitch.conf ("hosts: files") and resolv.conf (unshare -m, then bind
mounts: the machine's files and mounts are never touched), so that each
test decides what a name resolves to and changes it while canaryd runs.
Tests that need slow answers add "dns" to nsswitch.conf and run a small
DNS server of their own on a 127.0.53.x address. Upstreams listen on
127.0.0.x addresses, all on one port, and name themselves."""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(__file__))
import harness  # noqa: E402
from harness import (BUILD, SLOW, Canaryd, Load, Proc, Upstream, canary_yaml,  # noqa: E402
                     free_port, get, run, tmpdir)

CANARYD = os.path.join(BUILD, "canaryd")


class Hosts:
    """A private /etc/hosts (with nsswitch.conf and resolv.conf) for
    canaryd's namespace. Rewritten in place: the bind mount follows the
    file, not its name."""

    def __init__(self, lines, dns=None):
        d = tmpdir()
        self.path = os.path.join(d, "hosts")
        self.nss = os.path.join(d, "nsswitch.conf")
        self.resolv = os.path.join(d, "resolv.conf")
        with open(self.nss, "w") as f:
            f.write("hosts: files dns\n" if dns else "hosts: files\n")
        with open(self.resolv, "w") as f:
            # one server, asked once, waited for long (Dns decides when it answers)
            f.write("nameserver %s\noptions timeout:9 attempts:1\n" % (dns.ip if dns else "127.0.0.1"))
        self.write(lines)

    def write(self, lines):
        with open(self.path, "r+" if os.path.exists(self.path) else "w") as f:
            f.seek(0)
            f.truncate()
            f.write("127.0.0.1 localhost\n" + "".join(l + "\n" for l in lines))

    def prefix(self):
        return ["unshare", "-m", "sh", "-c",
                'mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/nsswitch.conf && '
                'mount --bind "$3" /etc/resolv.conf && shift 3 && exec "$@"', "ns",
                self.path, self.nss, self.resolv]


class Dns:
    """A DNS server (UDP, port 53 of a 127.0.53.x address: resolv.conf
    takes no port) that answers A queries for <records> (name -> IPv4)
    after <delay> seconds, AAAA with no data, other names NXDOMAIN."""

    def __init__(self, records, delay):
        self.records, self.delay = records, delay
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for i in range(1, 60):
            try:
                self.sock.bind(("127.0.53.%d" % i, 53))
                break
            except OSError:
                continue
        self.ip = self.sock.getsockname()[0]
        self.sock.settimeout(0.2)
        self.running = True
        self.queries = []
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        end = time.time() + 300   # hard bound
        while self.running and time.time() < end:
            try:
                q, peer = self.sock.recvfrom(512)
            except socket.timeout:
                continue
            except OSError:
                return
            t = threading.Timer(self.delay, self._answer, (q, peer))
            t.daemon = True
            t.start()

    def _answer(self, q, peer):
        if len(q) < 17 or not self.running:
            return
        labels, i = [], 12
        while i < len(q) and q[i]:
            labels.append(q[i + 1:i + 1 + q[i]].decode("ascii", "replace"))
            i += 1 + q[i]
        qtype = struct.unpack(">H", q[i + 1:i + 3])[0]
        question = q[12:i + 5]
        name = ".".join(labels).lower()
        self.queries.append((name, qtype))
        ip = self.records.get(name)
        rcode = 0 if ip else 3
        answers = b""
        if ip and qtype == 1:
            answers = b"\xc0\x0c" + struct.pack(">HHIH", 1, 1, 5, 4) + socket.inet_aton(ip)
        head = q[:2] + struct.pack(">HHHHH", 0x8180 | rcode, 1, 1 if answers else 0, 0, 0)
        try:
            self.sock.sendto(head + question + answers, peer)
        except OSError:
            pass

    def stop(self):
        self.running = False
        self.sock.close()


class NsCanaryd(Canaryd):
    """canaryd in its own mount namespace with <hosts>."""

    def __init__(self, hosts, config_text=None, config_path=None, data_dir=None,
                 admin_port=None, wait=True):
        super().__init__(config_text, config_path, data_dir, admin_port, wait=wait,
                         prefix=hosts.prefix())


class IpUpstream(Proc):
    """canaryd-upstream on <ip>:<port>, answering its <name>."""

    def __init__(self, name, ip, port):
        self.addr = "%s:%d" % (ip, port)
        super().__init__([os.path.join(BUILD, "canaryd-upstream"), "--listen", self.addr,
                          "--name", name], "upstream-" + name)
        end = time.time() + 10 * SLOW
        while time.time() < end:
            try:
                socket.create_connection((ip, port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError("upstream %s not listening on %s" % (name, self.addr))


def _yaml(name, listen, stable, canary=None, refresh="1s", extra="", **kw):
    return canary_yaml(name, listen, stable, canary=canary,
                       extra_spec="  dns: { refresh: %s }\n%s" % (refresh, extra), **kw)


def _split(port, n):
    """Who answered <n> requests, each on a new connection."""
    seen = {}
    for _ in range(n):
        st, hdr, body = get(port)
        assert st == 200, (st, body)
        up = hdr.get("X-Upstream", "-")
        seen[up] = seen.get(up, 0) + 1
    return seen


def _wait_for(cond, what, timeout=10):
    end = time.time() + timeout * SLOW
    last = None
    while time.time() < end:
        last = cond()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("%s not seen within %ds (last: %r)" % (what, timeout, last))


def _serving(port):
    try:
        return get(port)[0] == 200
    except OSError:
        return False


def _two_addresses():
    """app.internal -> 127.0.0.5 and 127.0.0.6, an upstream on each."""
    up_port = free_port()
    a = IpUpstream("a", "127.0.0.5", up_port)
    b = IpUpstream("b", "127.0.0.6", up_port)
    hosts = Hosts(["127.0.0.5 app.internal", "127.0.0.6 app.internal"])
    return up_port, a, b, hosts


def test_a_name_with_several_addresses_gets_requests_on_every_address():
    up_port, a, b, hosts = _two_addresses()
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, ["app.internal:%d" % up_port]))
    _wait_for(lambda: _serving(port), "a first answer")
    seen = _split(port, 40)
    # round-robin over the two addresses: an exact half each
    assert seen == {"a": 20, "b": 20}, seen
    s = d.status("web")
    assert s["stableEndpoints"] == ["app.internal:%d" % up_port], s
    assert s["hosts"] == [{"name": "app.internal", "addresses": ["127.0.0.5", "127.0.0.6"],
                           "resolvedAt": s["hosts"][0]["resolvedAt"]}], s


def test_workers_use_every_address_too():
    up_port, a, b, hosts = _two_addresses()
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, ["app.internal:%d" % up_port],
                               extra="  workers: 2\n"))
    _wait_for(lambda: _serving(port), "a first answer")
    seen = _split(port, 40)
    assert set(seen) == {"a", "b"} and min(seen.values()) >= 10, seen


def test_a_changed_answer_changes_the_split_without_a_failed_request():
    up_port, a, b, hosts = _two_addresses()
    c = IpUpstream("c", "127.0.0.7", up_port)
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, ["app.internal:%d" % up_port]))
    _wait_for(lambda: _serving(port), "a first answer")
    load = Load(port, threads=4, rps_per_thread=40)
    time.sleep(0.5)
    hosts.write(["127.0.0.6 app.internal", "127.0.0.7 app.internal"])
    changed = time.time()
    _wait_for(lambda: load.by_upstream.get("c", 0) > 0, "requests on the new address", 10)
    switched = time.time()
    time.sleep(1.0)
    load.stop()
    print("  new address in use %.2fs after the change (refresh 1s)" % (switched - changed))
    assert not load.errors, load.errors[:5]
    assert load.non2xx() == 0, load.by_status
    late = [u for (t, u, st) in load.timeline if t > switched + 0.1]
    assert late and set(late) <= {"b", "c"} and "b" in late, set(late)
    addrs = d.status("web")["hosts"][0]["addresses"]
    assert addrs == ["127.0.0.6", "127.0.0.7"], addrs
    assert "now resolves to 127.0.0.6, 127.0.0.7 (was 127.0.0.5, 127.0.0.6)" in d.output()


def test_a_name_that_stops_resolving_keeps_serving_on_the_last_answer():
    up_port, a, b, hosts = _two_addresses()
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, ["app.internal:%d" % up_port]))
    _wait_for(lambda: _serving(port), "a first answer")
    load = Load(port, threads=2, rps_per_thread=40)
    hosts.write([])
    # several refreshes (1s) pass without an answer
    _wait_for(lambda: "does not resolve any more" in d.output(), "the failure logged", 10)
    time.sleep(3.0)
    s = d.status("web")
    assert s["hosts"][0]["addresses"] == ["127.0.0.5", "127.0.0.6"], s
    assert s["hosts"][0]["error"], s
    hosts.write(["127.0.0.5 app.internal", "127.0.0.6 app.internal"])
    _wait_for(lambda: "resolves again" in d.output(), "the recovery logged", 10)
    load.stop()
    assert not load.errors, load.errors[:5]
    assert load.non2xx() == 0, load.by_status
    assert set(load.by_upstream) == {"a", "b"}, load.by_upstream
    out = d.output()
    # logged once per change of condition, not once per failed lookup
    assert out.count("does not resolve any more") == 1, out
    assert out.count("resolves again") == 1, out
    assert "error" not in d.status("web")["hosts"][0]


def test_a_name_that_never_resolved_is_retried_sooner():
    v1 = Upstream("v1")
    up_port = free_port()
    late = IpUpstream("late", "127.0.0.8", up_port)
    hosts = Hosts([])
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port,
                               [v1.addr, "late.internal:%d" % up_port], refresh="1h"))
    time.sleep(0.5)   # the first lookup has failed by now
    assert _split(port, 4) == {"v1": 4}
    hosts.write(["127.0.0.8 late.internal"])
    # retried after 1s, 2s, 4s...: well before the hour of spec.dns.refresh
    _wait_for(lambda: "late" in _split(port, 4), "the name in use", 15)
    assert d.output().count("does not resolve") == 1, d.output()
    assert d.status("web")["hosts"][0]["addresses"] == ["127.0.0.8"]


def test_check_says_what_will_happen_to_host_names():
    up_port = free_port()
    hosts = Hosts(["127.0.0.5 app.internal", "127.0.0.6 app.internal"])
    text = _yaml("web", "127.0.0.1:18080", ["app.internal:%d" % up_port, "127.0.0.1:9002"],
                 canary=["missing.internal:9003"], refresh="45s")
    path = os.path.join(tmpdir(), "c.yaml")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run(hosts.prefix() + [CANARYD, "--check", "-c", path],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    lines = r.stdout.splitlines()
    note = [l for l in lines if "app.internal" in l]
    assert len(note) == 1, r.stdout
    assert note[0].startswith(path + ":10:17: note: canary 'web': stable endpoint "
                              "'app.internal:%d' is a host name" % up_port), note
    assert "every 45s" in note[0] and "last answer" in note[0], note
    assert note[0].endswith("resolves now to 127.0.0.5, 127.0.0.6"), note
    warn = [l for l in lines if "missing.internal" in l]
    assert len(warn) == 1 and ":13:17: warning:" in warn[0], r.stdout
    assert "does not resolve now" in warn[0] and "not start the configuration's rollout" in warn[0]
    assert "127.0.0.1:9002" not in r.stdout, r.stdout   # numeric: nothing to say
    assert lines[-1] == path + ": ok (1 canary, 2 host names, 1 not resolving now)", lines


def test_check_waits_at_most_5s_for_a_dns_server():
    dns = Dns({"slow.internal": "127.0.0.7", "quick.internal": "127.0.0.8"}, delay=8.0)
    try:
        hosts = Hosts(["127.0.0.9 local.internal"], dns=dns)
        text = _yaml("web", "127.0.0.1:18080", ["slow.internal:80", "local.internal:80"])
        path = os.path.join(tmpdir(), "c.yaml")
        with open(path, "w") as f:
            f.write(text)
        t0 = time.time()
        r = subprocess.run(hosts.prefix() + [CANARYD, "--check", "-c", path],
                           capture_output=True, text=True, timeout=30 * SLOW)
        took = time.time() - t0
        assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
        assert took < 5 + 2 * SLOW, took   # not the resolver's 9s timeout
        assert "'slow.internal:80' is a host name that does not resolve now (no answer " \
               "within 5000ms)" in r.stdout, r.stdout
        assert "resolves now to 127.0.0.9" in r.stdout, r.stdout
        assert not r.stderr, r.stderr   # no sanitizer report either
    finally:
        _stop_all_then(dns)


def test_check_refuses_what_is_neither_address_nor_name():
    text = canary_yaml("web", "127.0.0.1:18080", ["app..internal:9001", "10.0.0.256:80"])
    path = os.path.join(tmpdir(), "c.yaml")
    with open(path, "w") as f:
        f.write(text)
    r = subprocess.run([CANARYD, "--check", "-c", path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert path + ":10:17: spec.stable.endpoints[0]: 'app..internal:9001'" in r.stderr, r.stderr
    assert path + ":10:37: spec.stable.endpoints[1]: '10.0.0.256:80'" in r.stderr, r.stderr
    with open(path, "w") as f:
        f.write(_yaml("web", "127.0.0.1:18080", ["app.internal:9001"], refresh="100ms"))
    r = subprocess.run([CANARYD, "--check", "-c", path], capture_output=True, text=True,
                       timeout=30)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "spec.dns.refresh: must be a duration from 1s to 24h" in r.stderr, r.stderr


def test_the_configurations_rollout_starts_once_its_names_resolve():
    v1 = Upstream("v1")
    up_port = free_port()
    IpUpstream("v2", "127.0.0.7", up_port)
    hosts = Hosts([])
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr],
                               canary=["v2.internal:%d" % up_port], interval="1h"))
    time.sleep(1.0)   # the first lookup has failed by now
    s = d.status("web")
    assert s["phase"] == "Initialized" and s["canaryEndpoints"] == [], s
    assert "rollout of v2 from the configuration waits" in d.output(), d.output()
    assert _split(port, 10) == {"v1": 10}
    hosts.write(["127.0.0.7 v2.internal"])
    s = d.wait_phase("web", "Progressing", timeout=15)
    assert s["canaryRevision"] == "v2" and s["canaryEndpoints"] == ["v2.internal:%d" % up_port], s
    rc, out, err = d.ctl("set-weight", "web", "50")
    assert rc == 0, (rc, out, err)
    assert _split(port, 10) == {"v1": 5, "v2": 5}


def _rollout_v2(d, port, v2_endpoint, weight=50):
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2_endpoint)
    assert rc == 0, (rc, out, err)
    rc, out, err = d.ctl("set-weight", "web", str(weight))
    assert rc == 0, (rc, out, err)


def test_rollout_to_a_name_that_does_not_resolve_is_refused_and_nothing_changes():
    v1, v2 = Upstream("v1"), Upstream("v2")
    hosts = Hosts([])
    port = free_port()
    # set-weight pauses the analysis; the short interval is for promote --full
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="500ms",
                               threshold=10))
    _rollout_v2(d, port, v2.addr)
    before, events_before = d.status("web"), d.events("web")
    assert _split(port, 20) == {"v1": 10, "v2": 10}
    rc, out, err = d.ctl("rollout", "web", "--revision", "v3", "--endpoints",
                         "canary.invalid:9003")
    assert rc == 2, (rc, out, err)   # a 4xx: bad input
    assert "canary.invalid:9003" in err and "unknown node or service" in err, err
    st, body = d.api("POST", "/api/v1/canaries/web/rollout",
                     {"revision": "v3", "endpoints": [v2.addr, "canary.invalid:9003"]})
    assert st == 422 and "canary.invalid:9003" in body["error"], (st, body)
    after = d.status("web")
    for k in ("phase", "canaryWeight", "canaryRevision", "stableRevision", "canaryEndpoints",
              "stableEndpoints", "lastTransitionTime"):
        assert after[k] == before[k], (k, before, after)
    assert d.events("web") == events_before
    assert _split(port, 20) == {"v1": 10, "v2": 10}
    # and what the issue saw next: promote --full now makes v2, which traffic
    # reaches, stable
    rc, out, err = d.ctl("promote", "web", "--full")
    assert rc == 0, (rc, out, err)
    s = d.wait_phase("web", "Succeeded", timeout=15)
    assert s["stableRevision"] == "v2", s
    assert _split(port, 10) == {"v2": 10}


def test_promote_full_serves_what_status_calls_stable():
    v1 = Upstream("v1")
    up_port = free_port()
    v2 = IpUpstream("v2", "127.0.0.7", up_port)
    hosts = Hosts(["127.0.0.7 v2.internal"])
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="300ms",
                               threshold=10))
    load = Load(port, threads=2, rps_per_thread=40)
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints",
                         "v2.internal:%d" % up_port)
    assert rc == 0, (rc, out, err)
    rc, out, err = d.ctl("promote", "web", "--full")
    assert rc == 0, (rc, out, err)
    s = d.wait_phase("web", "Succeeded", timeout=15)
    done = time.time()
    time.sleep(0.5)
    load.stop()
    assert s["stableRevision"] == "v2" and s["stableEndpoints"] == ["v2.internal:%d" % up_port], s
    assert not load.errors and load.non2xx() == 0, (load.errors[:3], load.by_status)
    late = [u for (t, u, st) in load.timeline if t > done + 0.05]
    assert late and set(late) == {"v2"}, set(late)
    assert _split(port, 10) == {"v2": 10}


def test_readiness_probes_use_the_resolved_addresses():
    v1 = Upstream("v1")
    up_port = free_port()
    IpUpstream("v2", "127.0.0.7", up_port)
    hosts = Hosts(["127.0.0.7 v2.internal", "127.0.0.9 dead.internal"])
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h",
                               deadline=2))
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints",
                         "v2.internal:%d" % up_port)
    assert rc == 0, (rc, out, err)
    time.sleep(3.5 * SLOW)   # longer than progressDeadlineSeconds
    s = d.status("web")
    assert s["phase"] == "Progressing" and s["canaryReady"] is True, s
    # a name whose address has nothing listening is unready, and rolled back
    rc, out, err = d.ctl("rollout", "web", "--revision", "v3", "--endpoints",
                         "dead.internal:%d" % up_port)
    assert rc == 0, (rc, out, err)
    s = d.wait_phase("web", "Failed", timeout=10)
    assert s["canaryRevision"] == "v3", s


def test_restart_resumes_a_host_name_canary():
    v1 = Upstream("v1")
    up_port = free_port()
    IpUpstream("v2", "127.0.0.7", up_port)
    hosts = Hosts(["127.0.0.7 v2.internal"])
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"))
    _rollout_v2(d, port, "v2.internal:%d" % up_port)
    assert _split(port, 10) == {"v1": 5, "v2": 5}
    d.stop(signal.SIGKILL)
    d2 = NsCanaryd(hosts, config_path=d.config_path, data_dir=d.data_dir,
                   admin_port=d.admin_port)
    _wait_for(lambda: "v2" in _split(port, 2), "the canary's name in use again")
    assert _split(port, 10) == {"v1": 5, "v2": 5}
    s = d2.status("web")
    assert s["canaryWeight"] == 50 and s["canaryEndpoints"] == ["v2.internal:%d" % up_port], s
    assert s["hosts"][0]["addresses"] == ["127.0.0.7"], s


def test_after_a_restart_an_unresolvable_canary_gets_no_more_traffic_by_command():
    v1 = Upstream("v1")
    up_port = free_port()
    IpUpstream("v2", "127.0.0.7", up_port)
    hosts = Hosts(["127.0.0.7 v2.internal"])
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"))
    _rollout_v2(d, port, "v2.internal:%d" % up_port, weight=10)
    d.stop(signal.SIGKILL)
    hosts.write([])
    d2 = NsCanaryd(hosts, config_path=d.config_path, data_dir=d.data_dir,
                   admin_port=d.admin_port)
    time.sleep(1.0)   # the first lookup has failed by now
    before = d2.status("web")
    for args in (("set-weight", "web", "50"), ("promote", "web", "--full")):
        rc, out, err = d2.ctl(*args)
        assert rc == 1, (args, rc, out, err)   # 409: the state is fine, DNS is not
        assert "v2.internal:%d" % up_port in err and "does not resolve" in err, err
    after = d2.status("web")
    assert after["canaryWeight"] == 10 and after["phase"] == before["phase"], after
    assert after["hosts"][0]["addresses"] == [] and after["hosts"][0]["error"], after
    # what the status says traffic does, it does: nothing reaches v2, and
    # the canary is not ready (its deadline would roll it back)
    assert _split(port, 10) == {"v1": 10}
    _wait_for(lambda: d2.status("web")["canaryReady"] is False, "the canary unready", 5)
    rc, out, err = d2.ctl("abort", "web")   # rolling back is never refused
    assert rc == 0, (rc, out, err)


def test_a_promotion_waits_for_names_that_do_not_resolve_after_a_restart():
    v1 = Upstream("v1")
    up_port = free_port()
    IpUpstream("v2", "127.0.0.7", up_port)
    hosts = Hosts(["127.0.0.7 v2.internal"])
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="3s",
                               threshold=10))
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints",
                         "v2.internal:%d" % up_port)
    assert rc == 0, (rc, out, err)
    rc, out, err = d.ctl("promote", "web", "--full")
    assert rc == 0, (rc, out, err)
    d.stop(signal.SIGKILL)   # in Promoting: it ends an interval (3s) later
    hosts.write([])
    d2 = NsCanaryd(hosts, config_path=d.config_path, data_dir=d.data_dir,
                   admin_port=d.admin_port)
    time.sleep(3.5 * SLOW)
    # the promotion would make stable a name without an address: it waits,
    # and requests keep being answered by the stable revision
    s = d2.status("web")
    assert s["phase"] == "Promoting" and s["stableRevision"] == "v1", s
    assert _split(port, 6) == {"v1": 6}
    assert "promotion of v2 waits" in d2.output(), d2.output()
    hosts.write(["127.0.0.7 v2.internal"])
    s = d2.wait_phase("web", "Succeeded", timeout=20)
    assert s["stableRevision"] == "v2", s
    assert _split(port, 6) == {"v2": 6}


def test_reload_to_a_host_name_applies_once_it_resolves_and_fails_nothing():
    v1 = Upstream("v1")
    up_port, a, b, hosts = _two_addresses()
    hosts.write([])
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr]))
    load = Load(port, threads=2, rps_per_thread=40)
    with open(d.config_path, "w") as f:
        f.write(_yaml("web", "127.0.0.1:%d" % port, ["app.internal:%d" % up_port]))
    d.kill(signal.SIGHUP)
    time.sleep(1.0)
    # the name does not resolve: traffic and status both stay on v1
    assert d.status("web")["stableEndpoints"] == [v1.addr]
    assert "stable endpoints wait" in d.output(), d.output()
    assert set(load.by_upstream) == {"v1"}, load.by_upstream
    hosts.write(["127.0.0.5 app.internal", "127.0.0.6 app.internal"])
    _wait_for(lambda: d.status("web")["stableEndpoints"] == ["app.internal:%d" % up_port],
              "the configuration's endpoints applied")
    applied = time.time()
    time.sleep(1.0)
    load.stop()
    assert not load.errors and load.non2xx() == 0, (load.errors[:3], load.by_status)
    late = [u for (t, u, st) in load.timeline if t > applied + 0.05]
    assert late and set(late) == {"a", "b"}, set(late)


def _stop_all_then(dns):
    """Stops the processes, then <dns>: a lookup still waiting for it
    would otherwise hold canaryd's exit for the resolver's timeout."""
    for p in list(harness._procs):
        p.stop()
    dns.stop()


def _raw_post(port, path, body):
    """Sends a POST and returns the socket without reading the answer."""
    data = json.dumps(body).encode()
    s = socket.create_connection(("127.0.0.1", port), 5)
    s.sendall(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
              b"Content-Length: %d\r\n\r\n%s" % (path.encode(), port, len(data), data))
    return s


def test_a_rollout_waits_for_its_lookup_even_when_its_client_has_gone():
    v1 = Upstream("v1")
    up_port = free_port()
    IpUpstream("v2", "127.0.0.7", up_port)
    dns = Dns({"slow.internal": "127.0.0.7"}, delay=1.0)
    try:
        hosts = Hosts([], dns=dns)
        port = free_port()
        d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"))
        # the client asks and goes away before the answer: the command still
        # completes, and nothing touches the closed connection
        s = _raw_post(d.admin_port, "/api/v1/canaries/web/rollout",
                      {"revision": "v2", "endpoints": ["slow.internal:%d" % up_port]})
        s.close()
        assert d.status("web")["phase"] == "Initialized"   # not yet: the lookup takes 1s
        s = _wait_for(lambda: d.status("web")["canaryRevision"] == "v2" and d.status("web"),
                      "the rollout applied")
        assert s["phase"] == "Progressing", s
        # a client that waits gets its answer once the lookup is done
        t0 = time.time()
        rc, out, err = d.ctl("rollout", "web", "--revision", "v3", "--endpoints",
                             "slow.internal:%d" % up_port)
        took = time.time() - t0
        assert rc == 0 and took >= 0.9, (rc, out, err, took)
        assert d.status("web")["canaryRevision"] == "v3"
        d.ctl("set-weight", "web", "50")
        assert _split(port, 10) == {"v1": 5, "v2": 5}
        assert ("slow.internal", 1) in dns.queries, dns.queries
    finally:
        _stop_all_then(dns)


def test_a_lookup_without_an_answer_in_5s_is_refused_and_never_applied():
    v1 = Upstream("v1")
    dns = Dns({"slow.internal": "127.0.0.7"}, delay=7.0)
    try:
        hosts = Hosts([], dns=dns)
        port = free_port()
        d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"))
        before = d.status("web")
        t0 = time.time()
        rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", "slow.internal:80")
        took = time.time() - t0
        assert rc == 2, (rc, out, err)
        assert "'slow.internal:80'" in err and "no answer within 5000ms" in err, err
        assert 4.5 <= took < 9, took
        time.sleep(3.0)   # the answer comes at 7s: too late, and dropped
        assert d.status("web") == before
        assert "rollout-started" not in [e["type"] for e in d.events("web")], d.events("web")
    finally:
        _stop_all_then(dns)


def test_sigterm_answers_a_command_waiting_for_its_lookup_then_exits():
    v1 = Upstream("v1")
    dns = Dns({"slow.internal": "127.0.0.7"}, delay=1.0)
    try:
        hosts = Hosts([], dns=dns)
        port = free_port()
        d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval="1h"))
        s = _raw_post(d.admin_port, "/api/v1/canaries/web/rollout",
                      {"revision": "v2", "endpoints": ["slow.internal:80"]})
        time.sleep(0.3)
        d.kill(signal.SIGTERM)
        assert d.wait(15) == 0, d.output()
        s.settimeout(5)
        try:
            answer = s.recv(65536)
        except OSError:
            answer = b""
        s.close()
        # the drain waited for the command, which was answered
        assert answer.startswith(b"HTTP/1.1 200 "), answer
        assert b'"canaryRevision":"v2"' in answer, answer
        assert ("slow.internal", 1) in dns.queries, dns.queries   # resolved first
    finally:
        _stop_all_then(dns)


def test_numeric_endpoints_need_no_resolver():
    """No /etc/hosts entry at all, and a nsswitch.conf that resolves
    nothing: numeric endpoints work as before."""
    v1, v2 = Upstream("v1"), Upstream("v2")
    hosts = Hosts([])
    with open(hosts.nss, "w") as f:
        f.write("hosts: \n")
    port = free_port()
    d = NsCanaryd(hosts, _yaml("web", "127.0.0.1:%d" % port, [v1.addr, "localhost:%d" % v2.port],
                               interval="1h"))
    assert _split(port, 10) == {"v1": 5, "v2": 5}
    assert "hosts" not in d.status("web")
    assert "host name" not in d.output(), d.output()


if __name__ == "__main__":
    sys.exit(run(globals()))
