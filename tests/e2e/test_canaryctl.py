"""canaryctl as a pipeline and a person use it: a real canaryctl process
against a real canaryd (or, for the fields and answers a canaryd of this
tree does not give yet, a small fake admin API that records what it was
sent): exit codes, did you mean, help width, -o yaml, shell completion,
the live view on a terminal."""
import concurrent.futures
import http.server
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import tempfile
import threading
import time

import yaml

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BUILD, ROOT, SLOW, Canaryd, Load, Upstream, canary_yaml,  # noqa: E402
                     free_port, run, tmpdir)

CTL = os.path.join(BUILD, "canaryctl")


def ctl(server, *args, env=None, timeout=30):
    e = dict(os.environ)
    e.pop("NO_COLOR", None)
    e.update(env or {})
    r = subprocess.run([CTL, "--server", server] + list(args), capture_output=True, text=True,
                       timeout=timeout * SLOW, env=e)
    return r.returncode, r.stdout, r.stderr


def _daemon(interval="1h", fail_rate=0.0, extra=(), **kw):
    v1, v2 = Upstream("v1"), Upstream("v2", fail_rate=fail_rate)
    port = free_port()
    text = canary_yaml("web", "127.0.0.1:%d" % port, [v1.addr], interval=interval, **kw)
    # a check decides on 20 requests: the rollouts here end in about a second
    text = text.replace("  analysis:\n", "  analysis:\n    minSamples: 20\n")
    d = Canaryd(text, extra=extra)
    return d, v2, port


# ---- a fake admin API: what the lead's server side will answer ------------

STATUS = {
    "name": "podinfo", "phase": "WaitingPromotion", "canaryWeight": 20, "failedChecks": 0,
    "iterations": 3, "stableRevision": "v1", "canaryRevision": "v2",
    "lastTransitionTime": "2026-01-02T03:04:05Z", "message": "waiting for approval above 20",
    "analysis": {
        "interval": "1m", "threshold": 5, "maxWeight": 50, "judge": "threshold",
        "steps": [{"setWeight": 2}, {"pause": {"duration": "10m"}}, {"setWeight": 20},
                  {"pause": {}}, {"setWeight": 50}],
        "currentStep": 3,
        "approval": {"above": 20},
        "evidence": {"canaryRequests": 1200, "stableRequests": 54000, "canaryErrorRate": 0.004,
                     "stableErrorRate": 0.005, "worseEValue": 0.5, "worseThreshold": 40,
                     "noWorseEValue": 12.5, "noWorseThreshold": 40, "held": False},
    },
    "gate": {"type": "confirm-promotion", "url": "http://127.0.0.1:1/gate", "passed": False},
}
EVENTS = [
    {"id": 1, "time": "2026-01-02T03:00:00Z", "canary": "podinfo", "type": "rollout-started",
     "phase": "Progressing", "weight": 2, "message": "rollout of v2", "actor": "alice"},
    {"id": 2, "time": "2026-01-02T03:01:00Z", "canary": "podinfo", "type": "check",
     "phase": "Progressing", "weight": 20, "message": "check passed", "actor": "canaryd",
     "metrics": [{"name": "request-success-rate", "value": 99.5, "min": 99, "passed": True},
                 {"name": "request-duration", "value": 812, "max": 500, "passed": False}]},
]


class FakeApi:
    """An admin API on a loopback port: GETs of STATUS and EVENTS, POSTs
    answered 200 with <post_answer> (the status, plus what is given), every
    POST recorded as (path, body)."""

    def __init__(self, post_answer=None, phase="WaitingPromotion", events=None):
        self.posts = []
        events = EVENTS if events is None else events
        status = dict(STATUS, phase=phase)
        answer = dict(status, **(post_answer or {}))
        fake = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def _send(self, code, obj):
                raw = json.dumps(obj).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(raw)))
                self.end_headers()
                self.wfile.write(raw)

            def do_GET(self):
                p = self.path.split("?")[0]
                if p == "/api/v1/canaries":
                    self._send(200, [status])
                elif p == "/api/v1/canaries/podinfo":
                    self._send(200, status)
                elif p == "/api/v1/canaries/podinfo/events":
                    self._send(200, events)
                else:
                    self._send(404, {"error": "no canary named '%s'" % p.split("/")[4]
                                     if p.startswith("/api/v1/canaries/") else "no such path"})

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"null")
                fake.posts.append((self.path, body, self.headers.get("Content-Type")))
                self._send(200, answer)

        self.port = free_port()
        self.server = "http://127.0.0.1:%d" % self.port
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---- exit codes -------------------------------------------------------------

def test_exit_4_when_canaryd_is_unreachable():
    closed = "http://127.0.0.1:%d" % free_port()
    for args in (("status",), ("list",), ("get", "web"), ("wait", "web", "--timeout", "5s"),
                 ("pause", "web"), ("history", "web"), ("status", "web", "--watch")):
        rc, out, err = ctl(closed, *args)
        assert rc == 4, (args, rc, out, err)
        assert "cannot connect to '%s'" % closed in err, (args, err)
    # version says canaryctl's own, and that canaryd's is unknown
    rc, out, err = ctl(closed, "version")
    assert rc == 0 and out.startswith("canaryctl ") and "canaryd" in err, (rc, out, err)


def test_exit_4_when_the_token_is_refused_and_0_with_the_right_one():
    tok = os.path.join(tmpdir(), "tokens")
    with open(tok, "w") as f:
        f.write("alice s3cret\n")
    d, v2, port = _daemon(extra=["--token-file", tok])
    d.ctl("status")  # reachable
    wrong = os.path.join(tmpdir(), "wrong")
    with open(wrong, "w") as f:
        f.write("nope\n")
    rc, out, err = ctl(d.server, "--token-file", wrong, "rollout", "web", "--revision", "v2",
                       "--endpoints", v2.addr)
    assert rc == 4 and "invalid token" in err and "--token-file" in err, (rc, out, err)
    rc, out, err = ctl(d.server, "pause", "web")
    assert rc == 4, (rc, out, err)
    rc, out, err = ctl(d.server, "--token-file", tok, "rollout", "web", "--revision", "v2",
                       "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)


def test_wait_exits_0_when_promoted_1_when_rolled_back_3_at_timeout():
    d, v2, port = _daemon(interval="200ms", threshold=1, max_weight=50, step_weight=50)
    load = Load(port, threads=2, rps_per_thread=50)
    rc, out, err = d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    rc, out, err = d.ctl("wait", "web", "--timeout", "30s", "--interval", "100ms")
    load.stop()
    assert rc == 0, (rc, out, err)
    lines = out.splitlines()
    # not a terminal: plain lines, one per event, from the rollout's start
    assert " rollout-started " in lines[0], out
    checks = [ln for ln in lines if " check " in ln]
    assert checks and "request-success-rate=" in checks[-1] and "pass" in checks[-1], out
    assert lines[-1].startswith("web Succeeded"), out
    assert "\x1b" not in out, out

    d2, bad, port2 = _daemon(interval="200ms", threshold=1, fail_rate=1.0, step_weight=50)
    load = Load(port2, threads=2, rps_per_thread=50)
    assert d2.ctl("rollout", "web", "--revision", "v2", "--endpoints", bad.addr)[0] == 0
    rc, out, err = d2.ctl("wait", "web", "--timeout", "30s", "--interval", "100ms")
    load.stop()
    assert rc == 1 and "web Failed" in out and "FAIL" in out, (rc, out, err)

    d3, v2c, port3 = _daemon(interval="1h")
    assert d3.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2c.addr)[0] == 0
    rc, out, err = d3.ctl("wait", "web", "--timeout", "300ms")
    assert rc == 3 and "timed out" in err, (rc, out, err)
    # status --watch, not a terminal: a line per canary as it changes, exit 0
    # at its timeout (watching is not waiting)
    rc, out, err = d3.ctl("status", "--watch", "--timeout", "300ms", "--interval", "100ms")
    assert rc == 0 and len(out.splitlines()) == 1, (rc, out, err)
    assert " web Progressing weight=10 failed=0 " in out, out


def test_bad_usage_and_unknown_canary_exit_2_with_did_you_mean():
    d, v2, port = _daemon()
    for args, hint in ((("stauts",), "did you mean 'status'?"),
                       (("lst",), "did you mean 'list'?"),
                       (("status", "--wacth"), "did you mean '--watch'?"),
                       (("abort", "web", "--reason-text", "x"), "did you mean '--reason'?"),
                       (("--sever", d.server, "list"), "did you mean '--server'?"),
                       (("completion", "bsh"), "did you mean 'bash'?"),
                       (("wait", "web", "--timeout", "soon"), "not a duration"),
                       (("status", "-o", "xml"), "json, yaml")):
        rc, out, err = d.ctl(*args)
        assert rc == 2 and hint in err, (args, rc, out, err)
    rc, out, err = d.ctl("get", "wbe")
    assert rc == 2 and "no canary named 'wbe'" in err and "did you mean 'web'?" in err, (rc, err)
    # nothing near: no suggestion
    rc, out, err = d.ctl("frobnicate")
    assert rc == 2 and "did you mean" not in err, err


def test_every_help_line_fits_80_columns():
    outs = [subprocess.run([CTL, "help"], capture_output=True, text=True).stdout,
            subprocess.run([CTL, "--help"], capture_output=True, text=True).stdout]
    names = [ln.split()[0] for ln in outs[0].split("commands:\n")[1].split("\n\n")[0].splitlines()]
    assert len(names) >= 19 and "list" in names and "completion" in names, names
    runs = [[CTL, "help", n] for n in names] + [[CTL, "simulate", "--help"]]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        outs += pool.map(lambda a: subprocess.run(a, capture_output=True, text=True).stdout, runs)
    # a usage error prints the command's usage too
    outs.append(subprocess.run([CTL, "simulate", "--bogus"], capture_output=True, text=True).stderr)
    # and canaryd's own
    daemon = os.path.join(os.path.dirname(CTL), "canaryd")
    r = subprocess.run([daemon, "--help"], capture_output=True, text=True)
    outs.append(r.stdout + r.stderr)
    for o in outs:
        assert o.strip(), outs
        for ln in o.splitlines():
            assert len(ln) <= 80, (len(ln), ln)


# ---- output ----------------------------------------------------------------

def _close(a, b):
    """JSON and YAML of the same value: equal, reals within 1e-9."""
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_close(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(map(_close, a, b))
    if isinstance(a, float) or isinstance(b, float):
        return abs(a - b) <= 1e-9 * max(1, abs(a))
    return a == b


def test_output_yaml_is_the_json_and_list_get_version_show_the_canary():
    d, v2, port = _daemon(stable_rev="10", canary_rev="1e3")
    load = Load(port, threads=1, rps_per_thread=20)
    assert d.ctl("rollout", "web", "--revision", "1e3", "--endpoints", v2.addr)[0] == 0
    load.stop()
    for args in (("status",), ("status", "web"), ("list",), ("history", "web"), ("get", "web"),
                 ("version",)):
        rc, js, err = d.ctl(*args, "-o", "json")
        assert rc == 0, (args, err)
        rc, ym, err = d.ctl(*args, "-o", "yaml")
        assert rc == 0, (args, err)
        a, b = json.loads(js), yaml.safe_load(ym)
        if args[0] in ("status", "get"):  # the age of a poll apart
            for o in (a if isinstance(a, list) else [a]) + (b if isinstance(b, list) else [b]):
                o.pop("unsavedEvents", None)
        assert _close(a, b), (args, a, b)
    # revisions that look like numbers stay strings in YAML
    st = yaml.safe_load(d.ctl("status", "web", "-o", "yaml")[1])
    assert st["stableRevision"] == "10" and st["canaryRevision"] == "1e3", st
    assert "lastCheck" in yaml.safe_load(d.ctl("get", "web", "-o", "yaml")[1])

    rc, out, err = d.ctl("list")
    lines = out.splitlines()
    assert rc == 0 and lines[0].split() == ["NAME", "PHASE", "WEIGHT", "STABLE", "CANARY",
                                            "FAILED", "AGE"], out
    assert lines[1].split()[:6] == ["web", "Progressing", "10", "10", "1e3", "0"], out
    assert d.ctl("list", "-o", "name")[1] == "web\n"
    rc, out, err = d.ctl("get", "web")
    assert rc == 0 and "Phase:         Progressing" in out and "Weights:       10* 20" in out, out
    assert "Revisions:     stable 10, canary 1e3" in out, out
    rc, out, err = d.ctl("version")
    assert rc == 0 and out.splitlines() == ["canaryctl 0.1.0", "canaryd 0.1.0 (%s)" % d.server], out


def test_get_shows_steps_gates_approval_and_the_last_check():
    api = FakeApi()
    try:
        rc, out, err = ctl(api.server, "get", "podinfo")
    finally:
        api.close()
    assert rc == 0, (rc, out, err)
    for want in ("     1. setWeight 2", "     2. pause 10m",
                 "  >  4. pause until resumed or approved  <- now",
                 "     5. setWeight 50", "Gate:          type confirm-promotion, "
                 "url http://127.0.0.1:1/gate, passed false", "Approval:      above 20",
                 "request-success-rate=99.5 [99..] pass", "request-duration=812 [..500] FAIL",
                 "Judge:         canary 1200 requests, 0.4% errors; stable 54000, 0.5%",
                 "worse: e-value 0.5 of 40; no worse: 12.5 of 40"):
        assert want in out, (want, out)
    assert "\x1b" not in out


def test_actions_send_their_reason_and_pause_resume_are_idempotent():
    api = FakeApi(post_answer={"phase": "Paused", "changed": False})
    try:
        for args in (("approve", "podinfo", "--reason", "change 42 signed off"),
                     ("abort", "podinfo", "--reason=bad p99"), ("retry", "podinfo"),
                     ("undo", "podinfo"), ("approve", "podinfo")):
            rc, out, err = ctl(api.server, *args)
            assert rc == 0, (args, rc, out, err)
        rc, out, err = ctl(api.server, "pause", "podinfo")
        assert rc == 0 and out == "podinfo is already paused (canary weight 20)\n", (rc, out)
        posts = [(p, b) for p, b, t in api.posts]
        assert all(t == "application/json" for p, b, t in api.posts), api.posts
        assert posts[:5] == [
            ("/api/v1/canaries/podinfo/approve", {"reason": "change 42 signed off"}),
            ("/api/v1/canaries/podinfo/abort", {"reason": "bad p99"}),
            ("/api/v1/canaries/podinfo/retry", {}), ("/api/v1/canaries/podinfo/undo", {}),
            ("/api/v1/canaries/podinfo/approve", {})], posts
    finally:
        api.close()
    # a server without "changed": the phase before the call tells
    api = FakeApi(phase="Paused")
    try:
        rc, out, err = ctl(api.server, "pause", "podinfo")
        assert rc == 0 and "already paused" in out, (rc, out, err)
        rc, out, err = ctl(api.server, "resume", "podinfo")
        assert rc == 0 and "podinfo: resumed" in out, (rc, out, err)
    finally:
        api.close()


def test_wait_prints_the_last_50_events_of_a_long_rollout_and_where_the_rest_are():
    many = [dict(EVENTS[0], id=1, type="check", message="an older rollout's check")]
    many += [dict(EVENTS[0], id=2)]
    many += [dict(EVENTS[1], id=i, message="check %d" % i) for i in range(3, 123)]
    api = FakeApi(phase="Succeeded", events=many)
    try:
        rc, out, err = ctl(api.server, "wait", "podinfo")
    finally:
        api.close()
    lines = out.splitlines()
    assert rc == 0 and len(lines) == 52, (rc, out, err)
    assert lines[0] == "(71 earlier events of this rollout: canaryctl history podinfo)", lines[0]
    assert "check 73:" in lines[1] and "check 122:" in lines[50], lines
    assert lines[51].startswith("podinfo Succeeded v1->v2"), lines[51]


def _on_a_terminal(args, env=None, timeout=30):
    """Runs canaryctl with its stdout on a pseudo-terminal; returns what the
    terminal got and the exit code."""
    master, slave = pty.openpty()
    e = dict(os.environ, TERM="xterm")
    e.pop("NO_COLOR", None)
    e.update(env or {})
    p = subprocess.Popen([CTL] + args, stdout=slave, stderr=subprocess.PIPE, env=e)
    os.close(slave)
    got = b""
    end = time.time() + timeout * SLOW
    while time.time() < end:
        r, _, _ = select.select([master], [], [], 0.2)
        if r:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        elif p.poll() is not None:
            break
    rc = p.wait(timeout=10)
    os.close(master)
    return got.decode("utf-8", "replace"), rc


def test_wait_on_a_terminal_redraws_one_block_in_colour_unless_no_color():
    d, v2, port = _daemon(interval="300ms", threshold=1, max_weight=50, step_weight=25)
    load = Load(port, threads=2, rps_per_thread=50)
    assert d.ctl("rollout", "web", "--revision", "v2", "--endpoints", v2.addr)[0] == 0
    out, rc = _on_a_terminal(["--server", d.server, "wait", "web", "--interval", "100ms"])
    assert rc == 0, out
    assert out.count("Name:          web") >= 2, out          # redrawn
    assert "\x1b[" in out and "A\r\x1b[J" in out, out        # in place
    assert "\x1b[32mSucceeded" in out or "\x1b[36mProgressing" in out, out
    assert "request-success-rate=" in out, out               # the checks, live
    assert out.rstrip().splitlines()[-1].startswith("web Succeeded"), out
    # NO_COLOR and --no-color: the same block, no colour
    assert d.ctl("rollout", "web", "--revision", "v3", "--endpoints", v2.addr)[0] == 0
    for extra, env in (([], {"NO_COLOR": "1"}), (["--no-color"], None)):
        out, rc = _on_a_terminal(["--server", d.server] + extra + ["status", "web", "--watch",
                                 "--timeout", "300ms", "--interval", "100ms"], env=env)
        assert rc == 0 and "Name:          web" in out, out
        assert "\x1b[3" not in out and "\x1b[1m" not in out, out
    load.stop()


# ---- completion -------------------------------------------------------------

def _complete(script, words, cword=None):
    cword = len(words) - 1 if cword is None else cword
    prog = ('source "$1"; COMP_WORDS=(%s); COMP_CWORD=%d; _canaryctl; '
            'printf "%%s\\n" "${COMPREPLY[@]}"') % (" ".join("'%s'" % w for w in words), cword)
    r = subprocess.run(["bash", "-c", prog, "bash", script], capture_output=True, text=True,
                       timeout=20 * SLOW, env=dict(os.environ, PATH=BUILD + ":" + os.environ["PATH"]))
    assert r.returncode == 0, r.stderr
    return r.stdout.split()


def test_bash_completion_completes_commands_options_and_canary_names():
    d, v2, port = _daemon()
    script = os.path.join(tmpdir(), "canaryctl.bash")
    rc, out, err = ctl(d.server, "completion", "bash")
    assert rc == 0, err
    with open(script, "w") as f:
        f.write(out)
    # the files packagers install are the generated ones
    with open(os.path.join(ROOT, "completions", "canaryctl.bash")) as f:
        assert f.read() == out, "completions/canaryctl.bash differs from 'canaryctl completion bash'"
    zsh = ctl(d.server, "completion", "zsh")[1]
    with open(os.path.join(ROOT, "completions", "_canaryctl")) as f:
        assert f.read() == zsh, "completions/_canaryctl differs from 'canaryctl completion zsh'"
    assert _complete(script, ["canaryctl", "st"]) == ["status"]
    assert set(_complete(script, ["canaryctl", "a"])) == {"approve", "abort", "audit"}
    assert _complete(script, ["canaryctl", "status", "--wa"]) == ["--watch"]
    assert _complete(script, ["canaryctl", "abort", "web", "--r"]) == ["--reason"]
    assert _complete(script, ["canaryctl", "get", "-o", "y"]) == ["yaml"]
    assert _complete(script, ["canaryctl", "--no"]) == ["--no-color"]
    # canary names come from the server the command line names
    assert _complete(script, ["canaryctl", "--server", d.server, "pause", ""]) == ["web"]
    assert _complete(script, ["canaryctl", "--server", d.server, "version", ""]) == []
    closed = "http://127.0.0.1:%d" % free_port()
    assert _complete(script, ["canaryctl", "--server", closed, "pause", ""]) == []


def _zsh_complete(script, words):
    """What _canaryctl offers for <words> (the last one being completed),
    with zsh's compadd replaced by a print: zsh itself filters by prefix."""
    prog = ('compadd() { print -l -- "$@"; }; compdef() { :; }; _files() { print FILES; }; '
            'source "$1"; words=(%s); CURRENT=%d; _canaryctl') % (
                " ".join("'%s'" % w for w in words), len(words))
    r = subprocess.run(["zsh", "-f", "-c", prog, "zsh", script], capture_output=True, text=True,
                       timeout=20 * SLOW, env=dict(os.environ, PATH=BUILD + ":" + os.environ["PATH"]))
    assert r.returncode == 0, r.stderr
    return [w for w in r.stdout.split() if w != "--"]


def test_zsh_completion_offers_commands_options_and_canary_names():
    d, v2, port = _daemon()
    script = os.path.join(tmpdir(), "_canaryctl")
    with open(script, "w") as f:
        f.write(ctl(d.server, "completion", "zsh")[1])
    r = subprocess.run(["zsh", "-n", script], capture_output=True, text=True, timeout=20 * SLOW)
    assert r.returncode == 0, r.stderr
    assert {"status", "list", "get", "approve", "undo"} <= set(_zsh_complete(script, ["canaryctl", "s"]))
    assert "--watch" in _zsh_complete(script, ["canaryctl", "status", "--wa"])
    assert _zsh_complete(script, ["canaryctl", "get", "-o", ""]) == ["json", "yaml", "text"]
    assert _zsh_complete(script, ["canaryctl", "-f", ""]) == ["FILES"]
    assert _zsh_complete(script, ["canaryctl", "--server", d.server, "pause", ""]) == ["web"]
    assert _zsh_complete(script, ["canaryctl", "completion", ""]) == ["bash", "zsh"]


# ---- man pages --------------------------------------------------------------

def test_man_pages_render_without_warnings_and_name_every_command():
    for page in ("canaryd.1", "canaryctl.1"):
        path = os.path.join(ROOT, "man", page)
        r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-z", path], capture_output=True,
                           text=True, timeout=20 * SLOW)
        assert r.returncode == 0 and r.stderr == "", (page, r.returncode, r.stderr)
    with open(os.path.join(ROOT, "man", "canaryctl.1")) as f:
        text = f.read()
    commands = text.split(".SH COMMANDS")[1].split(".SH ")[0]
    out = subprocess.run([CTL, "help"], capture_output=True, text=True).stdout
    names = [ln.split()[0] for ln in out.split("commands:\n")[1].split("\n\n")[0].splitlines()]
    for n in names:
        roff = n.replace("-", "\\-")
        assert any(w % roff in commands for w in (".B %s ", ".B %s\n", "\\fB%s ")), n
    assert "canaryd unreachable, or the token refused" in text


def test_make_install_puts_programs_man_pages_and_completions_under_destdir():
    d = tempfile.mkdtemp()
    b = os.path.relpath(BUILD, ROOT)
    # -o: the programs are what this test run built, never rebuilt here
    r = subprocess.run(["make", "-s", "-C", ROOT, "install", "DESTDIR=" + d, "PREFIX=/usr",
                        "BUILD=" + b, "-o", b + "/canaryd", "-o", b + "/canaryctl"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    want = ["usr/bin/canaryctl", "usr/bin/canaryd", "usr/share/man/man1/canaryctl.1",
            "usr/share/man/man1/canaryd.1", "usr/share/bash-completion/completions/canaryctl",
            "usr/share/zsh/site-functions/_canaryctl", "usr/lib/systemd/system/canaryd.service"]
    for w in want:
        assert os.path.isfile(os.path.join(d, w)), (w, r.stdout)
    assert os.access(os.path.join(d, "usr/bin/canaryd"), os.X_OK)
    r = subprocess.run([os.path.join(d, "usr/bin/canaryctl"), "version"], capture_output=True,
                       text=True)
    assert r.returncode == 0, r.stderr
    shutil.rmtree(d)


if __name__ == "__main__":
    sys.exit(run(globals()))
