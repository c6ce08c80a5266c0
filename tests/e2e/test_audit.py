"""The audit a regulator accepts (issue 12): a real canaryd's audit is a
hash chain per canary; `canaryctl audit verify` names an event altered,
deleted or moved in the SQLite file by hand, kill -9 in the middle of a
stream of writes never breaks the chain, and the exports parse with their
UTC and Europe/London times. The documented sqlite3 + sha256sum check
(docs/audit.md) is run as written."""
import atexit
import csv
import hashlib
import io
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(__file__))
from harness import (ROOT, SLOW, Canaryd, Load, Upstream, canary_yaml, free_port,  # noqa: E402
                     run, tmpdir)

_state = {}


def _rollout():
    """A short real rollout to Succeeded, then canaryd stopped: its data dir."""
    if "data" in _state:
        return _state["data"], _state["config"]
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    text = canary_yaml("shop", "127.0.0.1:%d" % port, [v1.addr], [v2.addr], interval="150ms",
                       max_weight=50, step_weight=25)
    text = text.replace("  analysis:\n", "  analysis:\n    minSamples: 5\n")
    d = Canaryd(text)
    load = Load(port, threads=2, rps_per_thread=100)
    try:
        d.wait_phase("shop", "Succeeded", timeout=20)
    finally:
        load.stop()
    assert d.stop() == 0, d.output()
    # the harness removes a test's directories after it: the other tests
    # start from a copy of this one
    keep = tempfile.mkdtemp(prefix="canaryd-audit-")
    atexit.register(shutil.rmtree, keep, True)
    shutil.copytree(d.data_dir, os.path.join(keep, "data"))
    shutil.copy(d.config_path, os.path.join(keep, "canary.yaml"))
    _state["data"], _state["config"] = os.path.join(keep, "data"), os.path.join(keep, "canary.yaml")
    return _state["data"], _state["config"]


def _copy(data):
    dst = os.path.join(tmpdir(), "data")
    shutil.copytree(data, dst)
    return dst


def _verify(data, config, name="shop"):
    """canaryctl audit verify on a canaryd started on <data>: (rc, out, err)."""
    d = Canaryd(config_path=config, data_dir=data)
    try:
        return d.ctl("audit", "verify", *([name] if name else []))
    finally:
        d.stop()


def _rows(db, canary="shop"):
    c = sqlite3.connect(db)
    try:
        return c.execute("SELECT id, seq FROM events WHERE canary = ? ORDER BY id",
                         (canary,)).fetchall()
    finally:
        c.close()


def _edit(db, *sql):
    c = sqlite3.connect(db)
    try:
        for s in sql:
            c.execute(*s) if isinstance(s, tuple) else c.execute(s)
        c.commit()
    finally:
        c.close()


PAYLOAD = ("seq", "time_ms", "type", "phase", "weight", "message", "actor", "metrics", "detail",
           "prev_hash", "hash")


def _swap(db, a, b, cols):
    c = sqlite3.connect(db)
    try:
        ra = c.execute("SELECT %s FROM events WHERE id = ?" % ",".join(cols), (a,)).fetchone()
        rb = c.execute("SELECT %s FROM events WHERE id = ?" % ",".join(cols), (b,)).fetchone()
        sets = ",".join("%s = ?" % k for k in cols)
        c.execute("UPDATE events SET %s WHERE id = ?" % sets, rb + (a,))
        c.execute("UPDATE events SET %s WHERE id = ?" % sets, ra + (b,))
        c.commit()
    finally:
        c.close()


def test_an_intact_audit_verifies_and_the_documented_shell_check_agrees():
    data, config = _rollout()
    db = os.path.join(data, "canaryd.db")
    rows = _rows(db)
    assert len(rows) >= 5, rows
    assert [s for _, s in rows] == list(range(1, len(rows) + 1)), rows
    rc, out, err = _verify(_copy(data), config)
    assert rc == 0 and "shop: intact" in out, (rc, out, err)
    rc, out, err = _verify(_copy(data), config, name=None)
    assert rc == 0 and "shop: intact" in out, (rc, out, err)
    # the check an auditor runs with sqlite3 and sha256sum, as documented
    with open(os.path.join(ROOT, "docs", "audit.md")) as f:
        doc = f.read()
    script = re.search(r"audit-verify-shell.*?```sh\n(.*?)```", doc, re.S).group(1)
    script = script.replace("db=canaryd-data/canaryd.db", "db=\"$1\"")
    good = _copy(data)
    r = subprocess.run(["sh", "-c", script, "sh", os.path.join(good, "canaryd.db")],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.stdout.strip() == "ok", (r.stdout, r.stderr)
    bad = _copy(data)
    _edit(os.path.join(bad, "canaryd.db"),
          ("UPDATE events SET message = message || 'x' WHERE id = ?", (rows[2][0],)))
    r = subprocess.run(["sh", "-c", script, "sh", os.path.join(bad, "canaryd.db")],
                       capture_output=True, text=True, timeout=30 * SLOW)
    assert r.stdout.strip() == "seq 3: its content does not give its hash", (r.stdout, r.stderr)


def test_verify_names_an_altered_a_deleted_and_reordered_events():
    data, config = _rollout()
    rows = _rows(os.path.join(data, "canaryd.db"))
    mid = len(rows) // 2

    # one byte of one row's message
    d1 = _copy(data)
    db = os.path.join(d1, "canaryd.db")
    c = sqlite3.connect(db)
    msg = c.execute("SELECT message FROM events WHERE id = ?", (rows[mid][0],)).fetchone()[0]
    c.close()
    flipped = msg[:-1] + chr(ord(msg[-1]) ^ 1)
    _edit(db, ("UPDATE events SET message = ? WHERE id = ?", (flipped, rows[mid][0])))
    rc, out, err = _verify(d1, config)
    assert rc == 1, (rc, out, err)
    assert "event id %d (seq %d) was altered" % rows[mid] in out, out

    # a row deleted
    d2 = _copy(data)
    _edit(os.path.join(d2, "canaryd.db"), ("DELETE FROM events WHERE id = ?", (rows[mid][0],)))
    rc, out, err = _verify(d2, config)
    assert rc == 1, (rc, out, err)
    assert "event seq %d is missing" % rows[mid][1] in out, out

    # the newest row deleted: the chain's head shows it
    d3 = _copy(data)
    _edit(os.path.join(d3, "canaryd.db"), ("DELETE FROM events WHERE id = ?", (rows[-1][0],)))
    rc, out, err = _verify(d3, config)
    assert rc == 1 and "event seq %d, the newest, is missing" % rows[-1][1] in out, out

    # two rows moved: each keeps its seq and hashes, in the other's place
    a, b = rows[mid - 1], rows[mid + 1]
    d4 = _copy(data)
    _swap(os.path.join(d4, "canaryd.db"), a[0], b[0], PAYLOAD)
    rc, out, err = _verify(d4, config)
    assert rc == 1, (rc, out, err)
    assert "event id %d (seq %d) is out of order" % (a[0], b[1]) in out, out

    # two rows' contents swapped under their seq and hashes
    d5 = _copy(data)
    _swap(os.path.join(d5, "canaryd.db"), a[0], b[0],
          ("time_ms", "type", "phase", "weight", "message", "actor", "metrics", "detail"))
    rc, out, err = _verify(d5, config)
    assert rc == 1, (rc, out, err)
    assert "event id %d (seq %d) holds the content of seq %d" % (a[0], a[1], b[1]) in out, out


def _blast(d, stop, done):
    """set-weight as fast as it goes: each is a commit of a state and an event."""
    w = 0
    while not stop.is_set() and done[0] < 20000:
        w = (w + 7) % 50
        req = urllib.request.Request(d.server + "/api/v1/canaries/busy/weight",
                                     data=json.dumps({"weight": w}).encode(),
                                     headers={"Content-Type": "application/json"})
        try:
            urllib.request.urlopen(req, timeout=2).read()
            done[0] += 1
        except OSError:
            return


def test_kill_9_during_a_stream_of_writes_leaves_the_chain_whole():
    v1, v2 = Upstream("v1"), Upstream("v2")
    text = canary_yaml("busy", "127.0.0.1:%d" % free_port(), [v1.addr], [v2.addr],
                       interval="100ms")
    d = Canaryd(text)
    acked = 0
    for _ in range(3):
        # three writers and the canary's own checks, killed in full flow
        stop, done = threading.Event(), [0]
        threads = [threading.Thread(target=_blast, args=(d, stop, done)) for _ in range(3)]
        for t in threads:
            t.start()
        end = time.time() + 5 * SLOW
        while done[0] < 100 and time.time() < end:
            time.sleep(0.01)
        d.kill(signal.SIGKILL)
        d.p.wait(5)
        stop.set()
        for t in threads:
            t.join(5)
        assert done[0] >= 100, done[0]
        acked += done[0]
        d = Canaryd(config_path=d.config_path, data_dir=d.data_dir)
        rc, out, err = d.ctl("audit", "verify", "busy")
        assert rc == 0 and "busy: intact" in out, (rc, out, err)
        # every answered write's event was kept
        n = int(re.search(r"(\d+) events", out).group(1))
        assert n >= acked, (n, acked)
    d.stop()


def _chain(prev, ev):
    """The hash of docs/audit.md, in Python."""
    def q(v):
        return json.dumps(v, ensure_ascii=False, separators=(",", ":"))
    canon = "{%s}" % ",".join('"%s":%s' % (k, "null" if ev[k] is None else q(ev[k]))
                              for k in ("seq", "canary", "time", "type", "phase", "weight",
                                        "message", "actor", "metrics", "detail"))
    return hashlib.sha256((prev + canon).encode()).hexdigest()


def _ms(s):
    import datetime
    return int(datetime.datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp() * 1000)


# both sides of both clock changes of 2026: 29 March and 25 October, 01:00 UTC
EDGES = [("2026-03-29T00:59:59.999Z", "2026-03-29T00:59:59.999+00:00", "GMT"),
         ("2026-03-29T01:00:00.000Z", "2026-03-29T02:00:00.000+01:00", "BST"),
         ("2026-10-25T00:59:59.999Z", "2026-10-25T01:59:59.999+01:00", "BST"),
         ("2026-10-25T01:00:00.000Z", "2026-10-25T01:00:00.000+00:00", "GMT")]


def test_exports_parse_with_utc_and_london_times_on_both_sides_of_the_clock_changes():
    data, config = _rollout()
    d1 = _copy(data)
    db = os.path.join(d1, "canaryd.db")
    # events appended to the chain by the documented rule (not canaryd's
    # code): canaryd must find them intact, at the times given
    c = sqlite3.connect(db)
    seq, prev = c.execute("SELECT seq, hash FROM audit_heads WHERE canary = 'shop'").fetchone()
    for utc, _, _ in EDGES:
        seq += 1
        ev = {"seq": seq, "canary": "shop", "time": _ms(utc), "type": "note", "phase": "Succeeded",
              "weight": 0, "message": 'clock "edge" \\ \u00e9\t%s' % utc, "actor": "auditor",
              "metrics": None, "detail": "line\nline\x01"}
        h = _chain(prev, ev)
        c.execute("INSERT INTO events(time_ms, canary, type, phase, weight, message, actor,"
                  " metrics, detail, seq, prev_hash, hash) VALUES(?,?,?,?,?,?,?,?,?,?,?,?)",
                  (ev["time"], "shop", ev["type"], ev["phase"], 0, ev["message"], ev["actor"],
                   None, ev["detail"], seq, prev, h))
        prev = h
    c.execute("UPDATE audit_heads SET seq = ?, hash = ? WHERE canary = 'shop'", (seq, prev))
    c.commit()
    c.close()
    d = Canaryd(config_path=config, data_dir=d1)
    try:
        rc, out, err = d.ctl("audit", "verify", "shop")
        assert rc == 0, (rc, out, err)
        since, until = "2026-03-01", "2026-11-01T00:00:00+00:00"
        rc, out, err = d.ctl("audit", "export", "shop", "--since", since, "--until", until)
        assert rc == 0, (rc, out, err)
        j = json.loads(out)
        assert [(e["time"], e["timeLondon"], e["zoneLondon"]) for e in j] == EDGES, j
        assert j[0]["message"].startswith('clock "edge" \\ \u00e9\t'), j[0]
        rc, nd, err = d.ctl("audit", "export", "shop", "--format", "ndjson",
                            "--since", since, "--until", until)
        assert rc == 0 and [json.loads(l) for l in nd.splitlines()] == j, nd
        rc, cs, err = d.ctl("audit", "export", "shop", "--format", "csv",
                            "--since", since, "--until", until)
        assert rc == 0, (rc, cs, err)
        rows = list(csv.DictReader(io.StringIO(cs, newline="")))
        assert [(r["time_utc"], r["time_london"], r["zone_london"]) for r in rows] == EDGES, rows
        assert [r["hash"] for r in rows] == [e["hash"] for e in j]
        assert rows[0]["detail"] == "line\nline\x01", rows[0]
        # the whole export, and the rollout's events before the edges
        rc, out, err = d.ctl("audit", "export", "shop")
        allj = json.loads(out)
        assert len(allj) == len(_rows(db)) and allj[-1]["hash"] == prev, allj[-1]
        assert all(e["zoneLondon"] in ("GMT", "BST") for e in allj)
        # bad input: exit 2 with the reason
        rc, out, err = d.ctl("audit", "export", "shop", "--since", "2026-03-29T01:00:00")
        assert rc == 2 and "'since' must be an RFC 3339 time" in err, (rc, err)
        rc, out, err = d.ctl("audit", "export", "shop", "--format", "xml")
        assert rc == 2 and "json, ndjson, csv" in err, (rc, err)
        rc, out, err = d.ctl("audit", "verify", "shopp")
        assert rc == 2 and "did you mean 'shop'" in err, (rc, err)
        rc, out, err = d.ctl("audit", "verfy")
        assert rc == 2 and "did you mean 'verify'" in err, (rc, err)
        # clients that go away while their export is read: the answer has
        # nowhere to go, and canaryd goes on
        for path in ("/api/v1/canaries/shop/audit/export?format=csv", "/api/v1/audit/verify"):
            for _ in range(5):
                s = socket.create_connection(("127.0.0.1", d.admin_port), 2)
                s.sendall(("GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n"
                           % (path, d.admin_port)).encode())
                s.close()
        st, body = d.api("GET", "/api/v1/audit/verify")
        assert st == 200 and body["intact"] and body["canaries"][0]["canary"] == "shop", body
    finally:
        d.stop()


if __name__ == "__main__":
    run(globals())
