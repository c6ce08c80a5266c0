"""Steady demo traffic: N keep-alive clients, each at most R requests a
second, against a URL, for at most D seconds. Prints a summary at the end."""
import http.client
import sys
import threading
import time

host, port = sys.argv[1].split(":")
clients, rate, duration = int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
counts = {}
lock = threading.Lock()
stop_at = time.time() + duration


def client():
    conn = None
    while time.time() < stop_at:
        t0 = time.time()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(host, int(port), timeout=5)
            conn.request("GET", "/")
            r = conn.getresponse()
            r.read()
            key = "%s %d" % (r.getheader("X-Upstream", "-"), r.status)
        except Exception:  # noqa: BLE001
            key = "error"
            conn = None
            time.sleep(0.05)
        with lock:
            counts[key] = counts.get(key, 0) + 1
        dt = time.time() - t0
        if dt < 1.0 / rate:
            time.sleep(1.0 / rate - dt)


ts = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
for t in ts:
    t.start()
for t in ts:
    t.join(duration + 10)
print("traffic summary (upstream status: requests): " +
      ", ".join("%s: %d" % kv for kv in sorted(counts.items())))
