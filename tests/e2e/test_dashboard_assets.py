"""The dashboard's files as a real canaryd serves them (src/api/assets.h):
the bytes of web/ exactly, identity or gzip as the client asks, ETag and
304, HEAD, the Content-Security-Policy, 404 for anything else; the
settings endpoint /api/v1/dashboard and its flags, a bad value refused at
start; and app.js' formatting under node (tests/web/test_format.mjs,
tests/web/contrast.mjs). The page itself in a browser: test_dashboard.py."""
import gzip
import hashlib
import http.client
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from harness import BUILD, ROOT, SLOW, Canaryd, canary_yaml, free_port, run, tmpdir  # noqa: E402

WEB = os.path.join(ROOT, "web")
CTYPES = {"html": "text/html; charset=utf-8", "css": "text/css; charset=utf-8",
          "js": "text/javascript; charset=utf-8", "svg": "image/svg+xml"}


def _daemon(extra=()):
    return Canaryd(canary_yaml("web", "127.0.0.1:%d" % free_port(), ["127.0.0.1:9"]), extra=extra)


def _req(d, path, method="GET", headers=None):
    """One request on a connection of its own: (status, headers with lower-case
    names, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", d.admin_port, timeout=10 * SLOW)
    c.request(method, path, headers=headers or {})
    r = c.getresponse()
    body = r.read()
    c.close()
    return r.status, {k.lower(): v for k, v in r.getheaders()}, body


def test_every_web_file_served_as_is_gzip_or_identity_with_etag():
    d = _daemon()
    names = sorted(n for n in os.listdir(WEB) if "." in n)
    assert {"index.html", "app.js", "app.css"} <= set(names), names
    for name in names:
        with open(os.path.join(WEB, name), "rb") as f:
            want = f.read()
        digest = hashlib.sha256(want).hexdigest()
        ctype = CTYPES[name.rsplit(".", 1)[1]]
        path = "/assets/" + name
        # identity: no Accept-Encoding, and one that refuses gzip
        for ae in (None, "br, gzip;q=0"):
            st, h, body = _req(d, path, headers={"Accept-Encoding": ae} if ae else {})
            assert st == 200, (name, st, body[:200])
            assert body == want, name
            assert "content-encoding" not in h, (name, h)
            assert h["content-type"] == ctype, (name, h)
            assert h["etag"] == '"sha256-%s"' % digest, (name, h["etag"], digest)
            assert h["content-length"] == str(len(want)), (name, h)
            assert h["vary"] == "Accept-Encoding" and h["cache-control"] == "no-cache", h
            assert h["x-content-type-options"] == "nosniff", h
        # gzip: decompressed, the same bytes, with the gzip representation's own tag
        st, h, body = _req(d, path, headers={"Accept-Encoding": "gzip, deflate, br"})
        assert st == 200 and h.get("content-encoding") == "gzip", (name, st, h)
        assert len(body) < len(want) and gzip.decompress(body) == want, name
        gz_len = len(body)
        assert h["etag"] == '"sha256-%s-gz"' % digest and h["vary"] == "Accept-Encoding", h
        # revalidation: 304 without a body, for either tag
        for inm in ('"sha256-%s"' % digest, 'W/"other", "sha256-%s-gz"' % digest):
            st, h, body = _req(d, path, headers={"If-None-Match": inm, "Accept-Encoding": "gzip"})
            assert st == 304 and body == b"", (name, st, body[:100])
            assert h["etag"] == '"sha256-%s-gz"' % digest and h["vary"] == "Accept-Encoding", h
            assert "content-length" not in h and "content-encoding" not in h, h
        st, h, body = _req(d, path, headers={"If-None-Match": '"sha256-%s"' % ("0" * 64)})
        assert st == 200 and body == want, (name, st)
        # HEAD: the GET's headers, no body
        st, h, body = _req(d, path, method="HEAD", headers={"Accept-Encoding": "gzip"})
        assert st == 200 and body == b"" and h["content-encoding"] == "gzip", (name, st, h)
        assert h["content-length"] == str(gz_len), (name, h)

    # / is index.html, with a policy that allows no other origin
    with open(os.path.join(WEB, "index.html"), "rb") as f:
        index = f.read()
    st, h, body = _req(d, "/")
    assert st == 200 and body == index, st
    csp = h["content-security-policy"]
    assert csp.startswith("default-src 'self';"), csp
    for part in ("script-src 'self'", "style-src 'self'", "connect-src 'self'", "object-src 'none'",
                 "frame-ancestors 'none'", "base-uri 'none'"):
        assert part in csp, (part, csp)
    assert "unsafe-inline" not in csp and "http" not in csp and "*" not in csp, csp
    # the page names only its own assets
    assert b'src="/assets/app.js"' in index and b'href="/assets/app.css"' in index
    assert b"http://" not in index and b"https://" not in index

    for bad in ("/assets/nope.js", "/assets/..%2findex.html", "/assets/INDEX.HTML", "/index.html"):
        st, h, body = _req(d, bad)
        assert st == 404 and h["content-type"] == "application/json", (bad, st, body)
        assert b"error" in body, body
    st, _, _ = _req(d, "/assets/app.js", method="POST")
    assert st == 405, st


def test_dashboard_settings_from_the_flags():
    d = _daemon()
    assert d.api("GET", "/api/v1/dashboard") == (200, {"timeZone": "Europe/London", "locale": "en-GB"})
    d.stop()
    d = _daemon(extra=("--dashboard-time-zone", "America/New_York", "--dashboard-locale", "en-US"))
    assert d.api("GET", "/api/v1/dashboard") == (200, {"timeZone": "America/New_York", "locale": "en-US"})
    # bad values: refused before anything starts, naming the flag
    conf = os.path.join(tmpdir(), "c.yaml")
    with open(conf, "w") as f:
        f.write(canary_yaml("web", "127.0.0.1:%d" % free_port(), ["127.0.0.1:9"]))
    for flag, value, want in (
            ("--dashboard-time-zone", "Europe/Lon don", "--dashboard-time-zone 'Europe/Lon don' is not "
             "an IANA time zone name such as Europe/London or UTC: only letters, digits and _ + / - "
             "are allowed"),
            ("--dashboard-time-zone", "../../etc/passwd", "is not an IANA time zone name"),
            ("--dashboard-locale", "en_GB", "--dashboard-locale 'en_GB' is not a BCP 47 language tag "
             "such as en-GB: only letters, digits and hyphens are allowed"),
            ("--dashboard-locale", "", "must be 1 to 35 characters")):
        p = subprocess.run([os.path.join(BUILD, "canaryd"), "-c", conf, "--admin",
                            "127.0.0.1:%d" % free_port(), "--data-dir", os.path.join(tmpdir(), "d"),
                            flag, value], capture_output=True, text=True, timeout=10 * SLOW)
        assert p.returncode == 2, (flag, value, p.returncode, p.stderr)
        assert want in p.stderr, (flag, value, p.stderr)


def test_app_js_formatting_and_contrast_under_node():
    for script in ("test_format.mjs", "contrast.mjs"):
        p = subprocess.run(["node", os.path.join(ROOT, "tests", "web", script)],
                           capture_output=True, text=True, timeout=30 * SLOW)
        assert p.returncode == 0, (script, p.stdout, p.stderr)


if __name__ == "__main__":
    run(globals())
