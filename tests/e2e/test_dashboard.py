"""The dashboard at / in headless Chromium (issue 12), driven over the
DevTools protocol by tests/e2e/cdp.py: first the driver itself against a
static page of its own, then the real page of a real canaryd with real
upstreams and traffic.

One Chromium for the whole file (it takes a second or two to start); each
test opens its own tab. Screenshots go to $CANARYD_SCREENSHOTS (a temporary
directory by default; the ones in docs/screenshots/ come from a run with
CANARYD_SCREENSHOTS=docs/screenshots). Not run in the sanitizer builds:
Chromium is the same there, and canaryd's side is covered by the other
files.

Figures for the record (printed, never asserted on: no timed assertions):
the page's weight on first load and the delay from a transition to the
phase on screen."""
import json
import os
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import cdp  # noqa: E402
from harness import BUILD, SLOW, StaticServer, run, tmpdir  # noqa: E402

if "san" in os.path.basename(os.environ.get("CANARYD_BUILD", "build")):
    print("SKIP test_dashboard: not in the sanitizer builds (the browser is not what they check)")
    print("0 passed, 0 failed")
    sys.exit(0)

SHOTS = os.environ.get("CANARYD_SCREENSHOTS") or tempfile.mkdtemp(prefix="canaryd-screenshots-")
os.makedirs(SHOTS, exist_ok=True)
print("screenshots in %s" % SHOTS, flush=True)

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


# --- the driver, against a page of its own ---------------------------------

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
