"""What the chaos tests share, on top of tests/e2e/harness.py: canaryd in a
private mount namespace (its own small tmpfs, a read-only bind mount: the
machine's mounts are never touched), faults injected into a running canaryd
with strace, and readings of the daemon (history digests, metrics, wakeups,
log lines). Every wait is bounded in time."""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
import harness  # noqa: E402
from harness import (BUILD, SLOW, Load, Proc, Upstream, canary_yaml, free_port,  # noqa: E402,F401
                     run, tmpdir, wait_port)

# root mounts in a new mount namespace directly; anyone else maps
# themselves to root in a new user namespace first (Debian allows it)
AS_ROOT = os.geteuid() == 0


def wait_until(fn, timeout, what):
    """Calls fn() until it returns a true value (returned), for at most
    <timeout> seconds (scaled for slow builds)."""
    end = time.time() + timeout * SLOW
    last = None
    while time.time() < end:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError("%s: not after %.0fs (last: %r)" % (what, timeout * SLOW, last))


class Namespace(Proc):
    """A process that holds a private mount namespace in which the shell
    commands <setup> ran (mounts); processes started with enter() see those
    mounts, nothing outside does. It ends at the test's cleanup."""

    def __init__(self, setup):
        unshare = ["unshare", "--mount", "--propagation", "private"]
        if not AS_ROOT:
            unshare.insert(1, "--map-root-user")
        script = "set -e\n%s\necho namespace-ready\nexec sleep 600\n" % setup
        super().__init__(unshare + ["sh", "-c", script], "namespace")
        wait_until(lambda: "namespace-ready" in self.output() or not self.alive(), 10,
                   "mount namespace set up")
        if not self.alive():
            raise AssertionError("mount namespace setup failed:\n%s" % self.output())

    def enter(self):
        args = ["nsenter", "-t", str(self.p.pid), "-m"]
        if not AS_ROOT:
            args += ["-U", "--preserve-credentials"]
        return args

    def sh(self, script, check=True):
        """Runs <script> in the namespace; returns (exit code, output)."""
        r = subprocess.run(self.enter() + ["sh", "-c", script], capture_output=True, text=True,
                           timeout=60 * SLOW)
        if check and r.returncode != 0:
            raise AssertionError("in the namespace, %r exited %d:\n%s%s"
                                 % (script, r.returncode, r.stdout, r.stderr))
        return r.returncode, r.stdout + r.stderr


class Canaryd(harness.Canaryd):
    """harness.Canaryd, started inside <ns> when given (nsenter execs
    canaryd: the process id is canaryd's)."""

    def __init__(self, config_text=None, config_path=None, data_dir=None, admin_port=None,
                 extra=(), wait=True, ns=None):
        super().__init__(config_text, config_path, data_dir, admin_port, extra, wait,
                         prefix=ns.enter() if ns else ())

    def exit_code(self, timeout=15):
        """Waits for canaryd to exit on its own; returns its exit code."""
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError("canaryd still running after %.0fs:\n%s"
                                 % (timeout * SLOW, self.output()))

    def readyz(self):
        return self.api("GET", "/readyz")

    def metrics(self):
        """/metrics as {'name{labels}': value}."""
        st, text = self.api("GET", "/metrics")
        assert st == 200, (st, text)
        out = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                k, _, v = line.rpartition(" ")
                out[k] = float(v)
        return out

    def wakeups(self):
        """Context switches of canaryd's main thread (its event loop) so far."""
        with open("/proc/%d/status" % self.p.pid) as f:
            fields = dict(l.split(":", 1) for l in f.read().splitlines() if ":" in l)
        return int(fields["voluntary_ctxt_switches"]) + int(fields["nonvoluntary_ctxt_switches"])

    def log_lines(self, needle):
        return [l for l in self.output().splitlines() if needle in l]


def digest(events):
    """A digest of a history (the events as the API gives them)."""
    return hashlib.sha256(json.dumps(events, sort_keys=True).encode()).hexdigest()


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class Strace(Proc):
    """strace attached to process <pid>, tampering with <syscall> as <inject>
    says (strace's -e inject= syntax: 'error=EROFS', 'signal=SIGKILL:when=3',
    ...). A fault the kernel would give, on the running process, without
    touching any file system. Detaches when stopped."""

    def __init__(self, pid, syscall, inject):
        args = ["strace", "-qq", "-p", str(pid), "-e", "trace=" + syscall,
                "-e", "inject=%s:%s" % (syscall, inject), "-o", "/dev/null"]
        super().__init__(args, "strace")
        # attached once the tracee shows strace as its tracer
        wait_until(lambda: self._attached(pid) or not self.alive(), 10, "strace attached")
        if not self.alive() and self.p.returncode not in (0, None):
            raise AssertionError("strace could not attach:\n%s" % self.output())

    @staticmethod
    def _attached(pid):
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("TracerPid:"):
                        return int(line.split()[1]) != 0
        except OSError:
            return True  # the tracee is gone: whatever was injected happened
        return False

    def detach(self):
        self.stop(signal.SIGTERM)
