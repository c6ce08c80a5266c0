"""A damaged database is never read as "no state" (issue 8, item 1): a
rollout stands at weight 40 with its history, canaryd stops cleanly, the
file is garbled, truncated, emptied or replaced, and canaryd refuses to
start, naming the file and what to do, and leaves it byte for byte. A
database deleted under a running canaryd stops the writes at once."""
import os
import random
import shutil
import signal
import time

from chaoslib import (Canaryd, Load, Upstream, canary_yaml, digest, file_digest,  # noqa: E402
                      free_port, run, tmpdir, wait_until)


def _rollout_at_40():
    """A rollout of v2 paused at weight 40 by a clean stop's time; returns
    (config path, data dir, listen port, status, history)."""
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    text = canary_yaml("shop", "127.0.0.1:%d" % port, [v1.addr], [v2.addr], interval="300ms",
                       threshold=100, max_weight=90, step_weight=10)
    d = Canaryd(text)
    load = Load(port, threads=2, rps_per_thread=40)
    wait_until(lambda: d.status("shop")["canaryWeight"] >= 40, 20, "weight 40")
    st, body = d.api("POST", "/api/v1/canaries/shop/pause", {})
    assert st == 200 and body["canaryWeight"] == 40, (st, body)
    load.stop()
    status, events = d.status("shop"), d.events("shop")
    assert status["phase"] == "Paused" and status["canaryWeight"] == 40, status
    assert len(events) >= 8, events
    assert d.stop() == 0, d.output()
    db = os.path.join(d.data_dir, "canaryd.db")
    assert not os.path.exists(db + "-wal"), "a clean stop leaves the database whole"
    return d.config_path, d.data_dir, port, status, events


def _garble(db, pages, pattern):
    with open(db, "r+b") as f:
        for pg in pages:
            f.seek(pg * 4096)
            f.write(pattern(pg))


def _refused(config_path, data_dir, port, want):
    """Starts canaryd on <data_dir>: it must exit 1 without ever serving,
    saying <want> about the database, and leave the file as it was."""
    db = os.path.join(data_dir, "canaryd.db")
    before = file_digest(db)
    d = Canaryd(config_path=config_path, data_dir=data_dir, wait=False)
    rc = d.exit_code()
    out = d.output()
    assert rc == 1, (rc, out)
    assert want in out and db in out, (want, out)
    assert "aside" in out or want == "cannot write", out
    assert file_digest(db) == before, "the refused database was written"
    # nobody was served a state read from it
    try:
        import socket
        socket.create_connection(("127.0.0.1", port), 0.5).close()
        raise AssertionError("the proxy listened on a damaged database")
    except OSError:
        pass
    return out


def test_damaged_database_is_refused_and_left_as_it_was():
    config_path, data_dir, port, status, events = _rollout_at_40()
    db = os.path.join(data_dir, "canaryd.db")
    backup = os.path.join(tmpdir(), "canaryd.db")
    shutil.copyfile(db, backup)
    pages = os.path.getsize(db) // 4096
    assert pages >= 4, pages
    rnd = random.Random(8)

    def restore():
        shutil.copyfile(backup, db)
        for side in ("-wal", "-shm"):
            if os.path.exists(db + side):
                os.unlink(db + side)

    # the case: pages garbled after a clean stop
    _garble(db, range(1, pages), lambda pg: bytes(rnd.getrandbits(8) for _ in range(4096)))
    out = _refused(config_path, data_dir, port, "is damaged")
    assert ".recover" in out and "backup" in out, out
    # one page of zeros in the middle
    restore()
    _garble(db, [pages // 2], lambda pg: bytes(4096))
    _refused(config_path, data_dir, port, "is damaged")
    # truncated, on and off a page boundary
    for size in ((pages - 1) * 4096, 4096 + 1234):
        restore()
        os.truncate(db, size)
        _refused(config_path, data_dir, port, "is damaged")
    # emptied
    restore()
    os.truncate(db, 0)
    _refused(config_path, data_dir, port, "is empty")
    # not a database at all
    restore()
    with open(db, "wb") as f:
        f.write(b"apiVersion: canaryd/v1\nkind: Canary\n")
    _refused(config_path, data_dir, port, "not a database")

    # the backup restored, as the message advises: where it stood
    restore()
    d = Canaryd(config_path=config_path, data_dir=data_dir)
    s = d.status("shop")
    assert (s["phase"], s["canaryWeight"]) == ("Paused", 40), s
    assert digest(d.events("shop")) == digest(events)


def test_database_deleted_while_running_stops_the_writes():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    d = Canaryd(canary_yaml("shop", "127.0.0.1:%d" % port, [v1.addr], [v2.addr],
                            interval="300ms", threshold=100, max_weight=90, step_weight=10))
    load = Load(port, threads=2, rps_per_thread=40)
    wait_until(lambda: d.status("shop")["canaryWeight"] >= 20, 20, "weight 20")
    db = os.path.join(d.data_dir, "canaryd.db")
    for side in ("", "-wal", "-shm"):
        os.unlink(db + side)   # an operator cleaning up the wrong directory
    # the next write finds it: no more writes, said once, loudly
    st, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(d.readyz()), 5,
                          "readyz 503")
    assert "moved or deleted" in body, body
    assert d.metrics()["canaryd_store_ok"] == 0
    held = d.status("shop")["canaryWeight"]
    time.sleep(1.5)
    s = d.status("shop")
    assert s["canaryWeight"] == held and s["phase"] == "Progressing", (held, s)
    assert len(d.log_lines("database is damaged or cannot be written")) == 1, d.output()
    # an abort still protects users at once
    t_abort = time.time()
    st, body = d.api("POST", "/api/v1/canaries/shop/abort", {})
    assert st == 200 and body["phase"] == "Failed" and body["canaryWeight"] == 0, (st, body)
    assert body["stateSaved"] is False and body["unsavedEvents"] >= 1, body
    time.sleep(0.5)
    load.stop()
    late = [u for (t, u, code) in load.timeline if t > t_abort + 0.1]
    assert late and all(u == "v1" for u in late), late[:20]
    assert load.non2xx() == 0 and not load.errors, (load.by_status, load.errors[:3])
    assert not os.path.exists(db), "the deleted database came back"
    assert d.stop() == 0
    assert d.log_lines("exiting with unsaved state"), d.output()


if __name__ == "__main__":
    raise SystemExit(run(globals()))
