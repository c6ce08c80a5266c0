"""A small Chrome DevTools Protocol driver for the end-to-end tests: Debian's
headless Chromium over --remote-debugging-pipe, standard library only (no
pip package can be installed where the tests run).

Chromium reads the protocol from its fd 3 and writes to its fd 4, one JSON
message per NUL-terminated chunk. One reader thread splits the output into
answers (matched to the waiting call by id) and events (kept per session for
wait_event). Every call and wait has a deadline, and the browser's process
group is killed at close(), at exit, and when start() fails half way.

    b = Browser()                 # one per test file: Chromium takes a while to start
    p = b.new_page(1200, 800)     # a target of its own, attached (flatten)
    p.navigate(url)
    p.wait_for("document.body.dataset.ready == '1'")
    p.screenshot("/tmp/x.png")
    p.close()
    b.close()
"""
import atexit
import base64
import fcntl
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time

CHROMIUM = os.environ.get("CANARYD_CHROMIUM", "chromium")


class CDPError(Exception):
    pass


def chromium_path():
    """The Chromium binary on PATH (or CANARYD_CHROMIUM), None when there is none."""
    return shutil.which(CHROMIUM)


class Browser:
    """One headless Chromium. <timeout>: seconds for each protocol call."""

    def __init__(self, width=1200, height=800, timeout=10.0, extra_args=()):
        self.timeout = timeout
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._next_id = 0
        self._answers = {}
        self._events = []  # (sessionId or None, method, params), in order of arrival
        self._closed = False
        self._dead = None  # why the reader stopped
        self.dir = tempfile.mkdtemp(prefix="canaryd-chromium-")
        exe = chromium_path()
        if not exe:
            raise CDPError("cannot start '%s': not found on PATH (sh scripts/setup.sh test)" % CHROMIUM)
        args = [exe, "--headless=new", "--remote-debugging-pipe", "--no-sandbox",
                "--user-data-dir=" + os.path.join(self.dir, "profile"),
                "--window-size=%d,%d" % (width, height),
                # loopback only, and nothing of Chromium's own background traffic
                "--no-proxy-server", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--disable-extensions",
                "--disable-default-apps", "--no-first-run", "--no-default-browser-check",
                "--disable-features=Translate,MediaRouter,OptimizationHints",
                "--disable-gpu", "--disable-dev-shm-usage", "--mute-audio",
                "--password-store=basic", "--use-mock-keychain"]
        args += list(extra_args)
        args.append("about:blank")
        # our ends: we write to w_in (Chromium's fd 3), read r_out (its fd 4)
        r_in, w_in = os.pipe()
        r_out, w_out = os.pipe()
        env = dict(os.environ, HOME=self.dir, XDG_CONFIG_HOME=self.dir,
                   XDG_CACHE_HOME=self.dir, TZ="UTC")
        log = open(os.path.join(self.dir, "chromium.log"), "wb")

        def child_fds():
            # after fork, before exec: the pipes onto fds 3 and 4 whatever
            # numbers they got here (through 10+ first, so that one of them
            # already being 3 or 4 is not overwritten by the other). Not
            # pass_fds: close_fds would close 3 and 4 after this runs
            a = fcntl.fcntl(r_in, fcntl.F_DUPFD, 10)
            b = fcntl.fcntl(w_out, fcntl.F_DUPFD, 10)
            os.dup2(a, 3)
            os.dup2(b, 4)
            # and nothing else of ours (an inherited lock: tests/run.sh's slot)
            os.closerange(5, 1 << 16)

        try:
            self.proc = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=log,
                                         stderr=subprocess.STDOUT, env=env,
                                         close_fds=False,
                                         preexec_fn=child_fds, start_new_session=True)
        finally:
            os.close(r_in)
            os.close(w_out)
            log.close()
        self._w = w_in
        self._r = r_out
        atexit.register(self.close)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        try:
            v = self.call("Browser.getVersion")
        except Exception:
            self.close()
            raise
        self.version = v.get("product", "?")

    # --- protocol ---------------------------------------------------------

    def _read(self):
        buf = b""
        try:
            while True:
                chunk = os.read(self._r, 1 << 16)
                if not chunk:
                    break
                buf += chunk
                while b"\0" in buf:
                    msg, buf = buf.split(b"\0", 1)
                    self._dispatch(json.loads(msg))
        except (OSError, ValueError) as e:
            why = "reading from Chromium: %s" % e
        else:
            why = "Chromium closed its end of the pipe"
        with self._cond:
            self._dead = why
            self._cond.notify_all()

    def _dispatch(self, m):
        with self._cond:
            if "id" in m:
                self._answers[m["id"]] = m
            else:
                self._events.append((m.get("sessionId"), m.get("method"), m.get("params", {})))
                # bounded: a long page load makes thousands of events
                if len(self._events) > 20000:
                    del self._events[:10000]
            self._cond.notify_all()

    def call(self, method, params=None, session=None, timeout=None):
        """Sends one command; returns its result, raises CDPError on an error
        answer, a dead browser or no answer within <timeout> seconds."""
        with self._cond:
            if self._dead or self._closed:
                raise CDPError("%s: browser gone (%s)" % (method, self._dead or "closed"))
            self._next_id += 1
            mid = self._next_id
        msg = {"id": mid, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        data = json.dumps(msg).encode() + b"\0"
        try:
            while data:
                n = os.write(self._w, data)
                data = data[n:]
        except OSError as e:
            raise CDPError("%s: cannot write to Chromium: %s" % (method, e))
        end = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            while mid not in self._answers:
                left = end - time.monotonic()
                if self._dead:
                    raise CDPError("%s: %s" % (method, self._dead))
                if left <= 0:
                    raise CDPError("%s: no answer after %.1fs" % (method, timeout or self.timeout))
                self._cond.wait(left)
            m = self._answers.pop(mid)
        if "error" in m:
            raise CDPError("%s: %s" % (method, m["error"].get("message", m["error"])))
        return m.get("result", {})

    def events(self, session=None, method=None):
        with self._lock:
            return [(me, p) for s, me, p in self._events
                    if (session is None or s == session) and (method is None or me == method)]

    def wait_event(self, method, session=None, pred=None, timeout=None, start=0):
        """The params of the first event <method> of <session> at or after
        index <start> of the event list for which pred(params) holds."""
        end = time.monotonic() + (timeout or self.timeout)
        with self._cond:
            i = start
            while True:
                while i < len(self._events):
                    s, me, p = self._events[i]
                    i += 1
                    if me == method and (session is None or s == session) and (pred is None or pred(p)):
                        return p
                left = end - time.monotonic()
                if self._dead:
                    raise CDPError("waiting for %s: %s" % (method, self._dead))
                if left <= 0:
                    raise CDPError("no %s after %.1fs" % (method, timeout or self.timeout))
                self._cond.wait(left)

    def mark(self):
        """An index into the event list, for wait_event(start=)."""
        with self._lock:
            return len(self._events)

    # --- pages ------------------------------------------------------------

    def new_page(self, width=1200, height=800, init_script=None):
        """A new tab of its own, attached with flatten, at width x height
        CSS pixels. <init_script>: JavaScript run in every document of the
        tab before its own scripts (Page.addScriptToEvaluateOnNewDocument)."""
        t = self.call("Target.createTarget", {"url": "about:blank"})
        tid = t["targetId"]
        s = self.call("Target.attachToTarget", {"targetId": tid, "flatten": True})["sessionId"]
        p = Page(self, tid, s)
        p.call("Page.enable")
        p.call("Runtime.enable")
        p.set_viewport(width, height)
        if init_script:
            p.call("Page.addScriptToEvaluateOnNewDocument", {"source": init_script})
        return p

    def close(self):
        """Kills Chromium (its whole process group) and removes its profile.
        Safe to call more than once."""
        if self._closed:
            return
        self._closed = True
        # SIGKILL, not Browser.close: its profile is thrown away, and a
        # graceful shutdown takes two seconds
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        # once more for what the group forked meanwhile (its dead are
        # reaped by init, on its own time)
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        for fd in (self._w, self._r):
            try:
                os.close(fd)
            except OSError:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)


class Page:
    """One attached tab."""

    def __init__(self, browser, target_id, session):
        self.b, self.target_id, self.session = browser, target_id, session

    def call(self, method, params=None, timeout=None):
        return self.b.call(method, params, session=self.session, timeout=timeout)

    def wait_event(self, method, pred=None, timeout=None, start=0):
        return self.b.wait_event(method, self.session, pred, timeout, start)

    def events(self, method=None):
        return self.b.events(self.session, method)

    def navigate(self, url, timeout=None):
        """Loads <url> and waits for its load event."""
        m = self.b.mark()
        r = self.call("Page.navigate", {"url": url})
        if r.get("errorText"):
            raise CDPError("cannot load '%s': %s" % (url, r["errorText"]))
        self.wait_event("Page.loadEventFired", timeout=timeout, start=m)

    def evaluate(self, expr, timeout=None):
        """The value of the JavaScript expression <expr> (a promise is
        awaited); a thrown exception is a CDPError with its text."""
        r = self.call("Runtime.evaluate", {"expression": expr, "awaitPromise": True,
                                           "returnByValue": True, "userGesture": True},
                      timeout=timeout)
        if "exceptionDetails" in r:
            d = r["exceptionDetails"]
            text = d.get("exception", {}).get("description") or d.get("text")
            raise CDPError("evaluating %r: %s" % (expr[:200], text))
        return r.get("result", {}).get("value")

    def wait_for(self, expr, timeout=10.0, interval=0.05):
        """Polls <expr> until it is truthy; returns its value. CDPError with
        the last value after <timeout> seconds."""
        end = time.monotonic() + timeout
        last = None
        while True:
            last = self.evaluate(expr)
            if last:
                return last
            if time.monotonic() >= end:
                raise CDPError("%r still %r after %.1fs" % (expr[:200], last, timeout))
            time.sleep(interval)

    def problems(self):
        """What the page reported going wrong: uncaught exceptions, console
        errors and warnings, failed loads (for a failing test's message)."""
        out = []
        for _, e in self.events("Runtime.exceptionThrown"):
            d = e.get("exceptionDetails", {})
            out.append("exception: %s" % (d.get("exception", {}).get("description") or d.get("text")))
        for _, e in self.events("Runtime.consoleAPICalled"):
            if e.get("type") in ("error", "warning", "assert"):
                out.append("console.%s: %s" % (e["type"], " ".join(
                    str(a.get("value", a.get("description", ""))) for a in e.get("args", []))))
        for _, e in self.events("Network.loadingFailed"):
            out.append("load failed: %s %s" % (e.get("requestId"), e.get("errorText")))
        return out

    def set_viewport(self, width, height):
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False})

    def screenshot(self, path):
        """A PNG of the viewport into <path>; returns its size in bytes."""
        r = self.call("Page.captureScreenshot", {"format": "png"}, timeout=20)
        data = base64.b64decode(r["data"])
        with open(path, "wb") as f:
            f.write(data)
        return len(data)

    _KEYS = {"Tab": 9, "Enter": 13, "Escape": 27, " ": 32, "ArrowDown": 40, "ArrowUp": 38}

    def press(self, key, shift=False):
        """One key press (keyDown, keyUp) as the keyboard would send it:
        "Tab", "Enter", "Escape", " "."""
        code = self._KEYS[key]
        p = {"key": key, "code": "Space" if key == " " else key,
             "windowsVirtualKeyCode": code, "nativeVirtualKeyCode": code,
             "modifiers": 8 if shift else 0}
        if key in ("Enter", " "):
            p["text"] = "\r" if key == "Enter" else " "
        self.call("Input.dispatchKeyEvent", dict(p, type="keyDown"))
        self.call("Input.dispatchKeyEvent", dict(p, type="keyUp"))

    def type_text(self, text):
        """Types <text> into the focused element."""
        self.call("Input.insertText", {"text": text})

    def click(self, selector):
        """A real mouse click at the middle of the first element matching
        <selector>, scrolled into view first."""
        box = self.evaluate("""(() => { const e = document.querySelector(%s);
            if (!e) return null; e.scrollIntoView({block: 'center'});
            const r = e.getBoundingClientRect();
            return [r.left + r.width / 2, r.top + r.height / 2, r.width, r.height]; })()"""
                            % json.dumps(selector))
        if not box or box[2] == 0 or box[3] == 0:
            raise CDPError("cannot click %r: %s" % (selector, "not found" if not box else "not shown"))
        for t in ("mousePressed", "mouseReleased"):
            self.call("Input.dispatchMouseEvent", {"type": t, "x": box[0], "y": box[1],
                                                   "button": "left", "clickCount": 1})

    def close(self):
        try:
            self.b.call("Target.closeTarget", {"targetId": self.target_id}, timeout=5)
        except CDPError:
            pass


def date_shift_script(offset_ms):
    """JavaScript for Browser.new_page(init_script=): the page's clock (Date,
    Date.now) runs <offset_ms> ahead of the machine's (behind when
    negative), as a process under `faketime -f +SECONDS` does; timers and
    performance.now are left alone."""
    return """(() => {
  const RealDate = Date, off = %d;
  function FakeDate(...a) {
    if (!new.target) return new RealDate(RealDate.now() + off).toString();
    return a.length ? new RealDate(...a) : new RealDate(RealDate.now() + off);
  }
  FakeDate.prototype = RealDate.prototype;
  FakeDate.now = () => RealDate.now() + off;
  FakeDate.UTC = RealDate.UTC;
  FakeDate.parse = RealDate.parse;
  Object.defineProperty(RealDate.prototype, 'constructor', {value: FakeDate});
  window.Date = FakeDate;
})();""" % int(offset_ms)
