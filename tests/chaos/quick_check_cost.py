"""How long store_open's PRAGMA quick_check takes on a large history:
builds a database with canaryd's schema (store.c, version 2) holding N
audit events shaped like canaryd's (a third of them weight changes, the
rest checks with two metrics), then times quick_check with the file in the
page cache (warm) and after evicting it (cold: the disk's read speed).
Not a test; run by hand:
    python3 tests/chaos/quick_check_cost.py [EVENTS] [PATH]"""
import json
import os
import sqlite3
import sys
import time

SCHEMA = """
CREATE TABLE canaries (name TEXT PRIMARY KEY, phase TEXT, weight INT, failed_checks INT,
 iterations INT, manual_weight INT, stable_rev TEXT, canary_rev TEXT, rollout_started_ms INT,
 next_check_ms INT, unready_since_ms INT, last_transition_ms INT, message TEXT,
 stable_eps TEXT, canary_eps TEXT, updated_ms INT, breach_since TEXT);
CREATE TABLE events (id INTEGER PRIMARY KEY AUTOINCREMENT, time_ms INT, canary TEXT,
 type TEXT, phase TEXT, weight INT, message TEXT, actor TEXT, metrics TEXT);
CREATE INDEX events_canary_id ON events(canary, id);
CREATE TABLE rollouts (canary TEXT, revision TEXT, outcome TEXT, ended_ms INT,
 PRIMARY KEY(canary, revision));
PRAGMA user_version = 2;
"""


def build(path, n):
    for side in ("", "-wal", "-shm"):
        if os.path.exists(path + side):
            os.unlink(path + side)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL")
    db.executescript(SCHEMA)
    metrics = json.dumps([
        {"name": "request-success-rate", "value": 99.87, "min": 99, "passed": True},
        {"name": "request-duration", "value": 123.4, "max": 500, "passed": True}])
    db.execute("BEGIN")
    for i in range(n):
        check = i % 3 != 0
        db.execute("INSERT INTO events(time_ms, canary, type, phase, weight, message, actor,"
                   " metrics) VALUES(?, ?, ?, ?, ?, ?, ?, ?)",
                   (1764100000000 + i * 1000, "shop%d" % (i % 10),
                    "check" if check else "weight", "Progressing", i % 50,
                    "check passed" if check else "advance canary weight 30 -> 40", "canaryd",
                    metrics if check else None))
        if i % 100000 == 99999:
            db.execute("COMMIT")
            db.execute("BEGIN")
    db.execute("COMMIT")
    db.close()


def timed_check(path, cold):
    if cold:
        fd = os.open(path, os.O_RDONLY)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        os.close(fd)
    db = sqlite3.connect(path)
    t0 = time.perf_counter()
    answer = db.execute("PRAGMA quick_check").fetchall()
    dt = time.perf_counter() - t0
    db.close()
    assert answer == [("ok",)], answer
    return dt


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1000000
    path = sys.argv[2] if len(sys.argv) > 2 else "/tmp/canaryd-quick-check.db"
    build(path, n)
    size = os.path.getsize(path)
    cold = timed_check(path, True)
    warm = min(timed_check(path, False) for _ in range(3))
    print("%d events, %.0f MB: quick_check %.2fs cold, %.2fs warm (SQLite %s)"
          % (n, size / 1e6, cold, warm, sqlite3.sqlite_version))


if __name__ == "__main__":
    main()
