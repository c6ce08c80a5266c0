"""A read-only data directory. At start (a read-only bind mount in a private
mount namespace) canaryd refuses clearly and leaves the file alone. While
running, the file system turns read-only under the open database (the
kernel's EROFS on every write, as after an ext4 error remount, injected
with strace): canaryd must stop writing at once, say so once and in
/readyz and /metrics, hold traffic where it is, still apply an abort, and
never write into the file again, even once writes would work."""
import os
import time

from chaoslib import (Canaryd, Load, Namespace, Strace, Upstream, canary_yaml, digest,  # noqa: E402
                      file_digest, free_port, run, tmpdir, wait_until)


def _config(port, v1, v2):
    return canary_yaml("shop", "127.0.0.1:%d" % port, [v1.addr], [v2.addr], interval="300ms",
                       threshold=100, max_weight=90, step_weight=10,
                       metrics=[("request-success-rate", "min: 0", "1m")])


def test_read_only_data_dir_is_refused_at_start():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    text = _config(port, v1, v2)
    d = Canaryd(text)
    wait_until(lambda: d.status("shop")["canaryWeight"] >= 10, 10, "a rollout")
    assert d.stop() == 0
    data = d.data_dir
    db = os.path.join(data, "canaryd.db")
    before = file_digest(db)
    empty = os.path.join(tmpdir(), "empty")
    os.mkdir(empty)
    ns = Namespace("for d in %s %s; do mount --bind $d $d; mount -o remount,bind,ro $d; done"
                   % (data, empty))
    # with a database
    d = Canaryd(text, data_dir=data, ns=ns, wait=False)
    assert d.exit_code() == 1, d.output()
    out = d.output()
    assert "cannot write to database '%s': Read-only file system" % db in out, out
    assert file_digest(db) == before
    # and without one
    d = Canaryd(text, data_dir=empty, ns=ns, wait=False)
    assert d.exit_code() == 1, d.output()
    out = d.output()
    assert ("cannot create database '%s/canaryd.db'" % empty) in out, out
    assert "Read-only file system" in out, out
    assert os.listdir(empty) == []


def test_file_system_turning_read_only_while_running():
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    text = _config(port, v1, v2)
    d = Canaryd(text)
    load = Load(port, threads=2, rps_per_thread=40)
    wait_until(lambda: d.status("shop")["canaryWeight"] >= 20, 20, "weight 20")
    db = os.path.join(d.data_dir, "canaryd.db")

    tracer = Strace(d.p.pid, "pwrite64", "error=EROFS")
    st, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(d.readyz()), 5,
                          "readyz 503")
    assert "damaged" in body and "I/O error" in body, body
    assert d.metrics()["canaryd_store_ok"] == 0
    saved_events = d.events("shop")  # reads still work
    held = d.status("shop")["canaryWeight"]
    # writes would work again: the store must not try them
    tracer.detach()
    files = (file_digest(db), file_digest(db + "-wal"))
    time.sleep(1.5)
    assert (file_digest(db), file_digest(db + "-wal")) == files, "written after the damage"
    s = d.status("shop")
    assert s["phase"] == "Progressing" and s["canaryWeight"] == held, (held, s)
    assert len(d.log_lines("database is damaged or cannot be written")) == 1, d.output()

    t_abort = time.time()
    st, body = d.api("POST", "/api/v1/canaries/shop/abort", {})
    assert st == 200 and body["canaryWeight"] == 0 and body["stateSaved"] is False, (st, body)
    time.sleep(0.5)
    load.stop()
    late = [u for (t, u, c) in load.timeline if t > t_abort + 0.1]
    assert late and all(u == "v1" for u in late), late[:20]
    assert load.non2xx() == 0 and not load.errors, (load.by_status, load.errors[:3])
    assert d.stop() == 0
    assert d.log_lines("exiting with unsaved state"), d.output()

    # the next start resumes from the last state saved, as said at exit
    d = Canaryd(text, data_dir=d.data_dir)
    s = d.status("shop")
    assert s["canaryWeight"] >= held and s["phase"] == "Progressing", (held, s)
    ev = d.events("shop")
    assert digest(ev[:len(saved_events)]) == digest(saved_events)


if __name__ == "__main__":
    raise SystemExit(run(globals()))
