"""The dashboard at / in headless Chromium (issue 12), driven over the
DevTools protocol by tests/e2e/cdp.py: the real page of a real canaryd with
real upstreams and traffic, then the driver itself against a static page of
its own.

One Chromium for the whole file (it takes a second or two to start); each
test opens its own tab. Screenshots go to $CANARYD_SCREENSHOTS (a temporary
directory by default); docs/screenshots/ comes from

    CANARYD_SCREENSHOTS=docs/screenshots CANARYD_SCREENSHOT_SETTLE=30 \
        python3 tests/e2e/test_dashboard.py

Clocks: canaryd runs under faketime and each tab's Date is shifted by the
same whole seconds (cdp.date_shift_script), to a winter day (GMT) or a
summer one (BST) whatever today is. Not run in the sanitizer builds:
Chromium is the same there, and canaryd's side is covered by the other
files.

Figures for the record (printed, never asserted on: no timed assertions):
the page's weight on first load and the delay from a transition to the
phase on screen."""
import calendar
import glob
import json
import os
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import cdp  # noqa: E402
from harness import (SLOW, Canaryd, Load, StaticServer, Upstream, canary_yaml, free_port,  # noqa: E402
                     run, tmpdir)

if "san" in os.path.basename(os.environ.get("CANARYD_BUILD", "build")):
    print("SKIP test_dashboard: not in the sanitizer builds (the browser is not what they check)")
    print("0 passed, 0 failed")
    sys.exit(0)

SHOTS = os.environ.get("CANARYD_SCREENSHOTS") or tempfile.mkdtemp(prefix="canaryd-screenshots-")
os.makedirs(SHOTS, exist_ok=True)
print("screenshots in %s" % SHOTS, flush=True)
# at most this many seconds of traffic before the screenshots of a rollout
# (the charts then have more than a sample or two: docs/screenshots/ is
# made with 30)
SETTLE = int(os.environ.get("CANARYD_SCREENSHOT_SETTLE", "0"))

_browser = []


def browser():
    """The file's one Chromium, started on first use (killed at exit)."""
    if not _browser:
        _browser.append(cdp.Browser(timeout=10 * SLOW))
    return _browser[0]


def png_size(path):
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", head[:8]
    return struct.unpack(">II", head[16:24])


# --- the dashboard of a real canaryd ---------------------------------------

TOKEN = "d4shb0ard-t0ken-0123456789"
WINTER = "2026-11-24 09:30:00"  # GMT; the date the issue writes 24/11/2026
SUMMER = "2026-07-15 14:00:00"  # BST
SEL = 'section.canary[data-canary="web"]'
COST = "  cost: {currency: GBP, perMillionRequests: 0.40, canaryHourly: 0.12, failedRequest: 0.002}\n"


def utc_ms(text):
    return calendar.timegm(time.strptime(text, "%Y-%m-%d %H:%M:%S")) * 1000


def iso_ms(text):
    """Epoch ms of canaryd's '2026-12-01T21:45:28.981Z'."""
    head, frac = text.rstrip("Z").split(".")
    return calendar.timegm(time.strptime(head, "%Y-%m-%dT%H:%M:%S")) * 1000 + int(frac[:3].ljust(3, "0"))


def faketime_lib():
    """Debian's libfaketimeMT (package faketime), for LD_PRELOAD."""
    libs = sorted(glob.glob("/usr/lib/*/faketime/libfaketimeMT.so.1"))
    assert libs, "libfaketimeMT.so.1 not found: install Debian's faketime (sh scripts/setup.sh test)"
    return libs[0]


class Dash:
    """stable and canary upstreams, canaryd with a token under a clock shifted
    to <at> (faketime, both processes and the browser's tab by the same
    whole seconds, so their times compare), and a tab on its dashboard."""

    def __init__(self, at, fail_rate=0.0, analysis="", threshold=5, step_weight=10, extra_spec="",
                 width=1200, height=800):
        self.stable, self.canary = Upstream("stable"), Upstream("canary", fail_rate=fail_rate)
        self.port = free_port()
        text = canary_yaml("web", "127.0.0.1:%d" % self.port, [self.stable.addr], [self.canary.addr],
                           interval="1s", threshold=threshold, max_weight=60, step_weight=step_weight,
                           extra_spec=extra_spec)
        text = text.replace("    metrics:\n", analysis + "    metrics:\n")
        tok = os.path.join(tmpdir(), "tokens")
        with open(tok, "w") as f:
            f.write("ops %s\n" % TOKEN)
        self.offset = int(utc_ms(at) / 1000 - time.time())
        # libfaketime preloaded into canaryd itself, not the faketime
        # wrapper: the wrapper stays canaryd's parent and does not pass on
        # the SIGTERM that stops it, which left canaryd running after the test
        self.d = Canaryd(text, extra=["--token-file", tok],
                         env={"LD_PRELOAD": faketime_lib(), "FAKETIME": "%+d" % self.offset,
                              "FAKETIME_DONT_FAKE_MONOTONIC": "1"})
        self.load = None
        self.p = browser().new_page(width, height, init_script=cdp.date_shift_script(self.offset * 1000))

    def open(self):
        self.p.call("Network.enable")
        self.p.navigate(self.d.server + "/")
        try:
            self.p.wait_for("document.body.dataset.ready == '1' && document.body.dataset.sse == 'open'"
                            " && !!document.querySelector(%s)" % json.dumps(SEL), timeout=10 * SLOW)
        except cdp.CDPError as e:
            raise AssertionError("%s\npage problems: %s\nbody: %s" % (
                e, self.p.problems(), self.p.evaluate("document.body.outerHTML.slice(0, 2000)")))
        return self.p

    def traffic(self, rps=100):
        self.load = Load(self.port, threads=2, rps_per_thread=rps // 2)

    def q(self, sel, what="textContent"):
        """<what> of the first element matching <sel> inside the canary's section."""
        return self.p.evaluate("(() => { const e = document.querySelector(%s).querySelector(%s);"
                               " return e ? e.%s : null; })()" % (json.dumps(SEL), json.dumps(sel), what))

    def state(self):
        return self.p.evaluate("(() => { const e = document.querySelector(%s + ' [data-role=phase]');"
                               " return e ? [e.textContent.trim(), e.dataset.state] : null; })()"
                               % json.dumps(SEL))

    def wait_state(self, state, timeout=10):
        return self.p.wait_for("(() => { const e = document.querySelector(%s + ' [data-role=phase]');"
                               " return e && e.dataset.state == %s && e.textContent.trim(); })()"
                               % (json.dumps(SEL), json.dumps(state)), timeout=timeout * SLOW)

    def settle(self, weight=30):
        """With CANARYD_SCREENSHOT_SETTLE: traffic until the rollout is at
        <weight> % (its staircase drawn) or for that many seconds."""
        end = time.monotonic() + SETTLE
        while time.monotonic() < end:
            st = self.d.status("web")
            if st["phase"] != "Progressing" or st["canaryWeight"] >= weight:
                break
            time.sleep(0.2)

    def shot(self, name):
        path = os.path.join(SHOTS, name)
        self.p.screenshot(path)
        w, h = png_size(path)
        assert w <= 1200 and h <= 800, (name, w, h)
        return path

    def close(self):
        if self.load:
            self.load.stop()
        self.p.close()


def points(dash):
    return dash.p.evaluate("Array.from(document.querySelector(%s).querySelectorAll("
                           "'svg[data-role^=chart-]')).map(s => [s.dataset.role, +s.dataset.points])"
                           % json.dumps(SEL))


def series(dash):
    st, body = dash.d.api("GET", "/api/v1/canaries/web/series")
    assert st == 200 and body["available"], (st, body)
    return body["samples"]


def page_weight(p):
    """(total encoded bytes, [(url, bytes, content-encoding)]) of what the
    first load fetched, from the Network domain; the event stream, never
    finished, counts what it had received."""
    reqs = {e["requestId"]: e["request"]["url"] for _, e in p.events("Network.requestWillBeSent")}
    enc = {e["requestId"]: e["response"]["headers"] for _, e in p.events("Network.responseReceived")}
    done = {e["requestId"]: e["encodedDataLength"] for _, e in p.events("Network.loadingFinished")}
    rows = []
    for rid, url in reqs.items():
        hdr = {k.lower(): v for k, v in enc.get(rid, {}).items()}
        if rid in done:
            n = done[rid]
        else:
            n = sum(e["encodedDataLength"] for _, e in p.events("Network.dataReceived")
                    if e["requestId"] == rid)
        rows.append((url, int(n), hdr.get("content-encoding", "-")))
    return sum(r[1] for r in rows), rows


LATENCY_JS = r"""(() => {
  // when the phase text a transition sets is on the screen: the mutation,
  // then the frame it is painted in (rAF runs before that paint; the
  // timeout after it runs once the frame is out)
  const sec = document.querySelector(%s);
  window.__seen = [];
  let last = null;
  const look = () => {
    const e = sec.querySelector('[data-role=phase]');
    const t = e ? e.textContent.trim() : null;
    if (t === last) return;
    last = t;
    requestAnimationFrame(() => setTimeout(() => window.__seen.push([t, Date.now()]), 0));
  };
  look();
  new MutationObserver(look).observe(sec, {subtree: true, childList: true, characterData: true});
  return true;
})()""" % json.dumps(SEL)


def test_dashboard_shows_a_rollout_live_and_its_controls_work():
    dash = Dash(WINTER, step_weight=5)
    try:
        dash.d.wait_phase("web", "Progressing")
        dash.traffic()
        p = dash.open()
        first_requests = len(p.events("Network.requestWillBeSent"))
        text, state = dash.state()
        assert "Progressing" in text and state in ("ok", "at-risk"), (text, state)
        weight = dash.q("[data-role=weight]")
        assert weight and weight.strip().endswith("%"), weight
        # times in Europe/London on the faked winter day: GMT
        clock = p.evaluate("document.getElementById('clock').textContent.trim()")
        assert clock.endswith("GMT"), clock
        # no spec.cost: no cost panel
        assert dash.q("[data-role=cost]", "offsetParent === null") is not False, "cost panel without spec.cost"
        start_points = dict(points(dash))
        assert set(start_points) == {"chart-weight", "chart-errors", "chart-latency"}, start_points
        # the 5 s samples canaryd had when the page loaded (the page read
        # them, or fewer)
        n0 = len(series(dash))
        total, rows = page_weight(p)
        print("page weight, first load: %d bytes over %d requests" % (total, len(rows)))
        for url, n, ce in sorted(rows):
            print("    %7d  %-5s %s" % (n, ce, url.replace(dash.d.server, "")))

        # the page's own formatters: UK conventions both sides of the changes
        f = lambda ms: p.evaluate("window.canarydUI.formatTime(%d)" % ms)  # noqa: E731
        t = f(utc_ms("2026-03-29 00:59:59"))
        assert t.endswith("00:59:59 GMT") and t.startswith("29/03/2026"), t
        t = f(utc_ms("2026-03-29 01:00:00"))
        assert t.endswith("02:00:00 BST"), t
        t = f(utc_ms("2026-10-25 00:59:59"))
        assert t.endswith("01:59:59 BST"), t
        t = f(utc_ms("2026-10-25 01:00:00"))
        assert t.endswith("01:00:00 GMT"), t
        assert f(utc_ms("2026-11-24 12:00:00")).startswith("24/11/2026"), f(utc_ms("2026-11-24 12:00:00"))
        assert p.evaluate("window.canarydUI.formatNumber(1000, 2)") == "1,000.00"
        assert p.evaluate("window.canarydUI.formatNumber(1234567.891, 1)") == "1,234,567.9"
        assert p.evaluate("window.canarydUI.formatMoney(1000)") == "£1,000.00"

        # the keyboard reaches every control: Tab from the top of the page
        p.evaluate("document.activeElement && document.activeElement.blur(), window.scrollTo(0, 0)")
        shown = set(p.evaluate("Array.from(document.querySelectorAll(%s + ' button[data-action]'))"
                               ".filter(b => b.offsetParent).map(b => b.dataset.action)" % json.dumps(SEL)))
        assert {"pause", "abort"} <= shown, shown
        reached = set()
        for _ in range(120):
            p.press("Tab")
            a = p.evaluate("(() => { const e = document.activeElement; return e && e.closest(%s)"
                           " && e.matches('button[data-action]') ? e.dataset.action : null; })()"
                           % json.dumps(SEL))
            if a:
                reached.add(a)
            if reached == shown:
                break
        assert reached == shown, (reached, shown)

        # a control: pause, confirmed with a reason and the token
        dash.p.click(SEL + " button[data-action=pause]")
        p.wait_for("document.getElementById('confirm').open", timeout=5)
        p.click("#confirm textarea[name=reason]")
        p.type_text("checking the p99 by hand")
        if p.evaluate("(() => { const t = document.querySelector('#confirm input[name=token]');"
                      " return !!(t && t.offsetParent); })()"):
            p.click("#confirm input[name=token]")
            p.type_text(TOKEN)
        p.click("#confirm button[data-role=confirm-ok]")
        dash.wait_state("paused")
        assert dash.d.status("web")["phase"] == "Paused"
        ev = [e for e in dash.d.events("web") if e["type"] == "paused"]
        assert ev and ev[-1]["actor"] == "ops" and "checking the p99" in ev[-1]["message"], ev
        # the audit in the page names the token's owner, the live region says it
        p.wait_for("Array.from(document.querySelector(%s).querySelectorAll("
                   "'[data-role=audit-row][data-type=paused]')).some(r => r.textContent.includes('ops'))"
                   % json.dumps(SEL), timeout=5 * SLOW)
        p.wait_for("document.getElementById('live').textContent.includes('Paused')", timeout=5 * SLOW)
        assert not p.evaluate("document.getElementById('confirm').open")

        # the delay from a transition (its event's time) to the phase on the
        # screen, over pause/resume transitions made through the API
        p.evaluate(LATENCY_JS)
        lat = []
        for i in range(10):
            action, phase = ("resume", "Progressing") if i % 2 == 0 else ("pause", "Paused")
            n = p.evaluate("window.__seen.length")
            st, body = dash.d.api("POST", "/api/v1/canaries/web/" + action,
                                  {"reason": "latency %d" % i}, token=TOKEN)
            assert st == 200 and body["phase"] == phase, (st, body)
            at = iso_ms(body["lastTransitionTime"])
            seen = p.wait_for("(() => { const s = window.__seen.slice(%d).find(x => x[0] && "
                              "x[0].includes(%s)); return s ? s[1] : 0; })()" % (n, json.dumps(phase)),
                              timeout=5 * SLOW)
            lat.append(seen - at)
        lat.sort()
        print("update latency, transition to screen over %d transitions: median %d ms, max %d ms"
              " (all: %s)" % (len(lat), lat[len(lat) // 2], lat[-1], lat))
        st, body = dash.d.api("POST", "/api/v1/canaries/web/resume", {"reason": "carry on"}, token=TOKEN)
        assert st == 200 and body["phase"] == "Progressing", (st, body)
        dash.wait_state("ok")

        # the charts follow the traffic without a reload: each plots every 5 s
        # sample canaryd has, and the samples that came after the load too;
        # nothing downloads the history again
        end = time.monotonic() + 12 * SLOW
        while True:
            sm = series(dash)
            n = len(sm)
            # a bucket without a request has no rate nor percentile: no point
            want_err = sum(1 for x in sm
                           if any(x[k]["errorRate"] is not None for k in ("canary", "stable")))
            want_lat = sum(1 for x in sm if any(x[k][q] is not None for k in ("canary", "stable")
                                                for q in ("p50", "p95", "p99")))
            got = dict(points(dash))
            if (n > n0 and want_err > 0 and got["chart-errors"] == want_err
                    and got["chart-latency"] == want_lat and got["chart-weight"] >= n):
                break
            assert time.monotonic() < end, ("charts do not follow the samples", n0, n, want_err,
                                            want_lat, start_points, got)
            time.sleep(0.1)
        later = [e["request"]["url"] for _, e in p.events("Network.requestWillBeSent")[first_requests:]]
        bad = [u for u in later if "/series" in u or ("/events" in u and "/events/stream" not in u)
               or u.rstrip("/") == dash.d.server]
        assert not bad, bad
        dash.settle()
        dash.shot("rollout-gmt.png")

        # usable at 400 px: no sideways scrolling
        p.set_viewport(400, 800)
        p.evaluate("new Promise(r => requestAnimationFrame(() => requestAnimationFrame(r)))")
        sw = p.evaluate("document.scrollingElement.scrollWidth")
        assert sw <= 400, sw
        dash.shot("rollout-400.png")
    finally:
        dash.close()


def test_dashboard_shows_at_risk_then_the_rollback():
    # a canary that fails 30 % of its requests: checks fail from the first
    # one with enough data (10 requests; 20 a second reach the canary), the
    # 3rd rolls back
    dash = Dash(WINTER, fail_rate=0.3, analysis="    minSamples: %d\n" % max(10, 20 * SETTLE),
                threshold=3, step_weight=20, extra_spec=COST)
    try:
        dash.d.wait_phase("web", "Progressing")
        dash.open()
        assert dash.state()[1] == "ok", dash.state()
        dash.traffic()
        text = dash.wait_state("at-risk", timeout=10 + SETTLE)
        assert "Progressing" in text, text
        assert dash.d.status("web")["failedChecks"] > 0
        dash.shot("at-risk.png")
        text = dash.wait_state("failed", timeout=15)
        assert "Failed" in text, text
        assert dash.d.status("web")["phase"] == "Failed"
        dash.p.wait_for("document.getElementById('live').textContent.includes('Failed')", timeout=5 * SLOW)
        dash.shot("rolled-back.png")
        # the cost panel, in pounds, with what the rollback saved
        cost = dash.d.status("web")["cost"]
        assert cost["currency"] == "GBP" and cost["savedByRollback"] is not None, cost
        saved = dash.p.evaluate("window.canarydUI.formatMoney(%r)" % cost["savedByRollback"])
        assert saved.startswith("£"), saved
        dash.p.wait_for("(() => { const e = document.querySelector(%s + ' [data-role=cost]');"
                        " return !!e && !!e.offsetParent && e.textContent.includes(%s); })()"
                        % (json.dumps(SEL), json.dumps(saved)), timeout=5 * SLOW)
    finally:
        dash.close()


def test_dashboard_in_summer_reads_bst():
    dash = Dash(SUMMER)
    try:
        dash.d.wait_phase("web", "Progressing")
        dash.traffic()
        p = dash.open()
        clock = p.evaluate("document.getElementById('clock').textContent.trim()")
        assert clock.endswith("BST"), clock
        # the rollout's events: 15/07/2026 in BST (an hour ahead of UTC)
        ev = dash.d.events("web")[0]
        t = p.evaluate("window.canarydUI.formatTime(%d)" % iso_ms(ev["time"]))
        assert t.startswith("15/07/2026") and t.endswith("BST") and " 15:" in t, t
        p.wait_for("document.querySelector(%s + ' [data-role=audit]').textContent.includes('BST')"
                   % json.dumps(SEL), timeout=5 * SLOW)
        dash.settle()
        dash.shot("rollout-bst.png")
    finally:
        dash.close()


# --- the driver, against a page of its own ---------------------------------
# (after the dashboard: there Chromium starts while canaryd's first 5 s
# sample comes)

SMOKE = """<!doctype html><html lang="en"><head><meta charset="utf-8"><title>smoke</title>
<link rel="stylesheet" href="s.css"></head><body>
<h1 id="h">smoke</h1>
<input id="a" aria-label="a"><button id="b">press</button>
<p id="out">none</p>
<script src="s.js"></script></body></html>
"""
SMOKE_JS = """document.getElementById('b').addEventListener('click', () => {
  document.getElementById('out').textContent = 'clicked';
});
window.later = (ms) => new Promise(r => setTimeout(() => r(ms), ms));
"""


def _smoke_server():
    d = tmpdir()
    for name, text in (("index.html", SMOKE), ("s.js", SMOKE_JS), ("s.css", "h1 { color: #333 }\n" * 50)):
        with open(os.path.join(d, name), "w") as f:
            f.write(text)
    return StaticServer(d)


def test_cdp_drives_a_page_keyboard_mouse_and_screenshots():
    srv = _smoke_server()
    p = browser().new_page(400, 300)
    try:
        p.call("Network.enable")
        p.navigate(srv.url + "/")
        assert p.evaluate("document.getElementById('h').textContent") == "smoke"
        # awaitPromise: the value of what the promise resolves to
        assert p.evaluate("later(150)") == 150
        assert p.evaluate("window.innerWidth") == 400
        # a thrown exception is an error with its message, not a value
        try:
            p.evaluate("(() => { throw new Error('boom') })()")
            raise AssertionError("no error")
        except cdp.CDPError as e:
            assert "boom" in str(e), e
        # keyboard: Tab walks the focusable elements, Enter presses a button
        p.press("Tab")
        assert p.evaluate("document.activeElement.id") == "a"
        p.type_text("xyz")
        assert p.evaluate("document.getElementById('a').value") == "xyz"
        p.press("Tab")
        assert p.evaluate("document.activeElement.id") == "b"
        p.press("Enter")
        p.wait_for("document.getElementById('out').textContent == 'clicked'", timeout=5)
        p.evaluate("document.getElementById('out').textContent = 'none'")
        p.click("#b")
        p.wait_for("document.getElementById('out').textContent == 'clicked'", timeout=5)
        # bounded: a condition that never holds is an error after its time
        t0 = time.monotonic()
        try:
            p.wait_for("false", timeout=0.3)
            raise AssertionError("no error")
        except cdp.CDPError as e:
            assert "after 0.3s" in str(e), e
        assert time.monotonic() - t0 < 5
        path = os.path.join(SHOTS, "smoke-400.png")
        assert p.screenshot(path) > 100
        assert png_size(path) == (400, 300), png_size(path)
        # the Network domain sees each resource with its bytes on the wire
        fin = {e["requestId"]: e["encodedDataLength"] for _, e in p.events("Network.loadingFinished")}
        urls = {e["requestId"]: e["request"]["url"] for _, e in p.events("Network.requestWillBeSent")}
        got = sorted(urls[i].rsplit("/", 1)[1] for i in fin if i in urls)
        assert [g for g in got if g != "favicon.ico"] == ["", "s.css", "s.js"], got
        assert all(n > 0 for n in fin.values()), fin
        assert srv.requests.get("/s.js") == 1, srv.requests
    finally:
        p.close()


def test_cdp_page_clock_can_be_set():
    # the page's Date is shifted to the given instant and runs on; new Date(x)
    # and instanceof are what they were
    t = 1784124000000  # 2026-07-15T14:00:00Z
    p = browser().new_page(400, 300, init_script=cdp.date_shift_script(t - time.time() * 1000))
    try:
        p.navigate("data:text/html,<p>clock</p>")
        now = p.evaluate("Date.now()")
        assert t <= now < t + 30000 * SLOW, now
        assert p.evaluate("new Date().getTime() - Date.now()") <= 0
        assert p.evaluate("new Date(0).toISOString()") == "1970-01-01T00:00:00.000Z"
        assert p.evaluate("new Date() instanceof Date && typeof Date() == 'string'") is True
        assert p.evaluate("new Intl.DateTimeFormat('en-GB', {timeZone: 'Europe/London', "
                          "timeZoneName: 'short'}).format(new Date())").endswith("BST")
    finally:
        p.close()



run(globals())
