"""The controller's tick must pace itself: a check that is due but waits for
a slow gate webhook needs no tick until the webhook answers (the tick used
to re-arm every millisecond meanwhile)."""
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from chaoslib import Canaryd, Upstream, canary_yaml, free_port, run, wait_until  # noqa: E402


class SlowReceiver:
    """Answers every POST with 200 after <delay> seconds; counts them."""

    def __init__(self, delay):
        self.started = 0
        rec = self

        class H(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_POST(self):
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                rec.started += 1
                time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.port = free_port()
        self.srv = ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.srv.daemon_threads = True
        threading.Thread(target=self.srv.serve_forever, daemon=True).start()


def test_a_slow_gate_does_not_spin_the_tick():
    rec = SlowReceiver(4.0)
    v1, v2 = Upstream("v1"), Upstream("v2")
    hooks = ("    webhooks:\n      - name: load-test\n        type: rollout\n"
             "        url: http://127.0.0.1:%d/gate\n        timeout: 10s\n" % rec.port)
    d = Canaryd(canary_yaml("web", "127.0.0.1:%d" % free_port(), [v1.addr], [v2.addr],
                            interval="300ms", threshold=100, extra_spec=hooks))
    wait_until(lambda: rec.started >= 1, 10, "the gate posted")
    w0, t0 = d.wakeups(), time.time()
    time.sleep(1.5)
    woke, dt = d.wakeups() - w0, time.time() - t0
    print("  gate pending: %d wakeups in %.1fs" % (woke, dt))
    assert rec.started == 1, rec.started  # still the one gate: no check ran meanwhile
    assert woke < 100 * dt, woke
    rec.srv.shutdown()


if __name__ == "__main__":
    raise SystemExit(run(globals()))
