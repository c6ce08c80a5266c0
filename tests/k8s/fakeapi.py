"""Helpers for the Kubernetes tests: a PKI made with openssl, the test API
server (apiserver.py) as a process, kubeconfigs and service-account folders,
and the two clients held to it: canaryd's (build/canaryd-k8sctl) and Debian's
python3-kubernetes (pyk8s.py).

The API server and the python3-kubernetes driver run under Debian's Python
(/usr/bin/python3), where Debian's python3-yaml, python3-jsonschema and
python3-kubernetes live, whatever python3 runs the test itself."""
import base64
import json
import os
import select
import subprocess
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
DEBIAN_PYTHON = os.environ.get("CANARYD_DEBIAN_PYTHON", "/usr/bin/python3")
SLOW = float(os.environ.get("CANARYD_SLOW", "1"))


def openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL, timeout=60)


def make_pki(d):
    """A CA, a server certificate for 127.0.0.1 and localhost signed by it,
    client certificates (CN = user, O = group) and a second, unrelated CA.
    Returns a dict of paths."""
    p = {k: os.path.join(d, k) for k in (
        "ca.key", "ca.crt", "server.key", "server.crt", "client.key", "client.crt",
        "other-ca.key", "other-ca.crt", "rogue.key", "rogue.crt")}
    for ca, cn in (("ca", "fake-kubernetes-ca"), ("other-ca", "some-other-ca")):
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                "-keyout", p[ca + ".key"], "-out", p[ca + ".crt"], "-subj", "/CN=" + cn)
    ext = os.path.join(d, "san.ext")
    with open(ext, "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\n")

    def leaf(name, subj, ca, extfile=None):
        csr = os.path.join(d, name + ".csr")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p[name + ".key"],
                "-out", csr, "-subj", subj)
        args = ["x509", "-req", "-in", csr, "-CA", p[ca + ".crt"], "-CAkey", p[ca + ".key"],
                "-CAcreateserial", "-days", "2", "-out", p[name + ".crt"]]
        if extfile:
            args += ["-extfile", extfile]
        openssl(*args)
    leaf("server", "/CN=fake-apiserver", "ca", ext)
    leaf("client", "/O=canaryd-operators/CN=alice", "ca")
    # a client certificate the server's CA never signed
    leaf("rogue", "/CN=mallory", "other-ca")
    return p


def b64file(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


class FakeAPI:
    """tests/k8s/apiserver.py on a free loopback port."""

    def __init__(self, workdir, pki, tokens):
        self.pki = pki
        self.dir = workdir
        self.log_path = os.path.join(workdir, "apiserver.log")
        args = [DEBIAN_PYTHON, os.path.join(HERE, "apiserver.py"), "--cert", pki["server.crt"],
                "--key", pki["server.key"], "--ca", pki["ca.crt"]]
        for tok, user in tokens.items():
            args += ["--token", "%s=%s" % (tok, user)]
        self.err = open(self.log_path, "wb")
        self.p = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=self.err,
                                  start_new_session=True)
        ready, _, _ = select.select([self.p.stdout], [], [], 30 * SLOW)
        line = self.p.stdout.readline() if ready else b""
        if not line:
            self.stop()
            with open(self.log_path) as f:
                raise AssertionError("the test API server did not start:\n" + f.read())
        info = json.loads(line)
        self.port, self.control_port = info["port"], info["control"]
        self.validates = info["jsonschema"]
        self.server = "https://127.0.0.1:%d" % self.port

    def stop(self):
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        self.err.close()

    def control(self, **cmd):
        req = urllib.request.Request("http://127.0.0.1:%d/" % self.control_port,
                                     data=json.dumps(cmd).encode(), method="POST")
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raise AssertionError("control %s: %s" % (cmd.get("op"), e.read().decode()))

    def log(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/log" % self.control_port,
                                    timeout=10) as r:
            return json.loads(r.read())

    def kubeconfig(self, path, user=None, ca=None, namespace="test", extra_cluster=None,
                   server=None):
        """Writes a kubeconfig for this server: <user> a dict of user fields
        (token, client-certificate-data, ...)."""
        cluster = {"server": server or self.server,
                   "certificate-authority-data": b64file(ca or self.pki["ca.crt"])}
        cluster.update(extra_cluster or {})
        doc = {"apiVersion": "v1", "kind": "Config", "current-context": "fake",
               "clusters": [{"name": "fake", "cluster": cluster}],
               "users": [{"name": "canaryd", "user": user or {}}],
               "contexts": [{"name": "fake", "context": {"cluster": "fake", "user": "canaryd",
                                                           "namespace": namespace}}]}
        with open(path, "w") as f:
            json.dump(doc, f, indent=1)  # JSON is YAML
        return path

    def sa_dir(self, d, token, namespace="test"):
        os.makedirs(d, exist_ok=True)
        write(os.path.join(d, "token"), token)
        with open(self.pki["ca.crt"]) as f:
            write(os.path.join(d, "ca.crt"), f.read())
        write(os.path.join(d, "namespace"), namespace)
        return d


def write(path, text):
    """Replaces <path> at once (a rename), as kubelet rotates a token."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text)
    os.replace(tmp, path)


SANITIZER_MARKS = ("ERROR: AddressSanitizer", "runtime error:", "ERROR: LeakSanitizer")


def check_sanitizers(stderr):
    bad = [l for l in stderr.splitlines() if any(m in l for m in SANITIZER_MARKS)]
    if bad:
        raise AssertionError("canaryd-k8sctl: sanitizer report:\n" + stderr[-6000:])


def k8sctl(build, args, timeout=30, env=None, stdin=None):
    """Runs canaryd-k8sctl. Returns (exit status, [JSON lines], stderr)."""
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    if env:
        e.update(env)
    p = subprocess.run([os.path.join(build, "canaryd-k8sctl")] + list(args), cwd=ROOT,
                       capture_output=True, timeout=timeout * SLOW, env=e, input=stdin)
    err = p.stderr.decode("utf-8", "replace")
    check_sanitizers(err)
    out = []
    for line in p.stdout.decode("utf-8", "replace").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            out.append({"unparsed": line})
    return p.returncode, out, err


class K8sctlStream:
    """canaryd-k8sctl running in the background (a watch): its JSON lines as
    they come."""

    def __init__(self, build, args, env=None):
        e = dict(os.environ)
        e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
        if env:
            e.update(env)
        self.p = subprocess.Popen([os.path.join(build, "canaryd-k8sctl")] + list(args), cwd=ROOT,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=e,
                                  start_new_session=True)
        self.lines = []
        self._buf = b""

    def _read(self, timeout):
        ready, _, _ = select.select([self.p.stdout], [], [], timeout)
        if not ready:
            return False
        chunk = os.read(self.p.stdout.fileno(), 65536)
        if not chunk:
            return None
        self._buf += chunk
        while b"\n" in self._buf:
            line, self._buf = self._buf.split(b"\n", 1)
            self.lines.append(json.loads(line))
        return True

    def wait_for(self, pred, timeout=10, what="a line"):
        """The first line (from the start) that <pred> accepts."""
        end = time.time() + timeout * SLOW
        seen = 0
        while True:
            while seen < len(self.lines):
                if pred(self.lines[seen]):
                    return self.lines[seen]
                seen += 1
            left = end - time.time()
            if left <= 0:
                raise AssertionError("no %s within %.0fs; got:\n%s" % (
                    what, timeout, "\n".join(json.dumps(x)[:300] for x in self.lines)))
            if self._read(min(left, 0.5)) is None:
                raise AssertionError("canaryd-k8sctl ended (%s) without %s; got:\n%s\n%s" % (
                    self.p.wait(), what, "\n".join(json.dumps(x)[:300] for x in self.lines),
                    self.p.stderr.read().decode("utf-8", "replace")))

    def finish(self, timeout=20):
        """Waits for the exit. Returns (status, stderr)."""
        end = time.time() + timeout * SLOW
        while time.time() < end and self._read(0.5) is not None:
            pass
        try:
            rc = self.p.wait(max(1, end - time.time()))
        except subprocess.TimeoutExpired:
            self.p.kill()
            rc = self.p.wait(5)
        err = self.p.stderr.read().decode("utf-8", "replace")
        check_sanitizers(err)
        return rc, err

    def stop(self):
        """Ends it (SIGTERM) and checks its stderr for sanitizer reports."""
        if self.p.poll() is None:
            self.p.terminate()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait(5)
        check_sanitizers(self.p.stderr.read().decode("utf-8", "replace"))


def pyk8s(kubeconfig, ops, timeout=60):
    """Runs <ops> through python3-kubernetes (pyk8s.py). Returns the results."""
    p = subprocess.run([DEBIAN_PYTHON, os.path.join(HERE, "pyk8s.py"), kubeconfig],
                       input=json.dumps(ops).encode(), capture_output=True,
                       timeout=timeout * SLOW)
    if p.returncode != 0:
        raise AssertionError("pyk8s.py failed (%d):\n%s" % (p.returncode, p.stderr.decode()))
    return json.loads(p.stdout)
