"""A/B tests by request (analysis.match) and session affinity
(analysis.sessionAffinity) on the built-in proxy: real clients sending
headers, cookies and query parameters through canaryd to two real
upstreams that name themselves; counts of who answered."""
import http.client
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from harness import (BUILD, SLOW, Canaryd, Upstream, canary_yaml, free_port, run,  # noqa: E402
                     tmpdir)

MATCH = """    match:
      - headers:
          x-canary: { exact: insider }
      - headers:
          x-user: { prefix: qa- }
      - headers:
          x-email: { suffix: "@example.com" }
          x-team: { exact: web }
      - headers:
          cookie: { regex: "^(.*?;)?(canary=always)(;.*)?$" }
      - queryParams:
          group: { exact: beta }
      - queryParams:
          build: { regex: "[0-9]+-rc" }
"""


def _with(text, block):
    """<text> (canary_yaml's) with <block> added to spec.analysis."""
    return text.replace("  analysis:\n", "  analysis:\n" + block)


def _ask(port, n, path="/", headers=None):
    """<n> requests on one keep-alive connection: {upstream: count} and the
    Set-Cookie values seen."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seen, cookies = {}, []
    for _ in range(n):
        c.request("GET", path, headers=headers or {})
        r = c.getresponse()
        body = r.read().decode().strip()
        seen[body] = seen.get(body, 0) + 1
        cookies += [v for k, v in r.getheaders() if k.lower() == "set-cookie"]
    c.close()
    return seen, cookies


def _ab_canary(step=None):
    v1, v2 = Upstream("v1"), Upstream("v2")
    port = free_port()
    if step is None:
        # A/B as Flagger runs it: iterations, the canary at weight 0; the
        # interval is long so that the rollout stays Progressing
        text = canary_yaml("shop", "127.0.0.1:%d" % port, [v1.addr], interval="1h",
                           max_weight=100, step_weight=10)
        text = text.replace("    stepWeight: 10\n", "    iterations: 10\n")
    else:
        text = canary_yaml("shop", "127.0.0.1:%d" % port, [v1.addr], interval="1h",
                           max_weight=step, step_weight=step)
    return v1, v2, port, text


def test_matching_requests_go_to_the_canary_the_rest_to_stable():
    v1, v2, port, text = _ab_canary()
    d = Canaryd(_with(text, MATCH))
    # no rollout: a match sends nothing to a canary that is not rolling out
    assert _ask(port, 5, headers={"X-Canary": "insider"})[0] == {"v1": 5}
    rc, out, err = d.ctl("rollout", "shop", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    s = d.wait_phase("shop", "Progressing")
    assert s["canaryWeight"] == 0, s
    canary = [
        ({"X-Canary": "insider"}, "/"),
        ({"x-user": "qa-anna"}, "/"),
        ({"X-Email": "bob@example.com", "X-Team": "web"}, "/"),
        ({"Cookie": "canary=always"}, "/"),
        ({"Cookie": "session=1;canary=always;theme=dark"}, "/"),
        ({}, "/list?page=2&group=beta"),
        ({}, "/list?gr%6Fup=be%74a"),
        ({}, "/?build=42-rc"),
    ]
    stable = [
        ({}, "/"),
        ({"X-Canary": "Insider"}, "/"),          # exact is case-sensitive
        ({"X-Canary": "insider2"}, "/"),
        ({"x-user": "anna-qa-"}, "/"),
        ({"X-Email": "bob@example.com"}, "/"),   # one condition of two
        ({"X-Email": "bob@example.com.evil", "X-Team": "web"}, "/"),
        ({"Cookie": "canary=never"}, "/"),
        ({"Cookie": "xcanary=always"}, "/"),
        ({}, "/list?group=beta2"),
        ({}, "/list?groups=beta"),
        ({}, "/list?group=alpha&group=beta"),    # the first one counts
        ({}, "/?build=42-rc1"),                  # a regex matches whole values
        ({"X-Group": "beta"}, "/"),
    ]
    for headers, path in canary:
        seen, _ = _ask(port, 10, path, headers)
        assert seen == {"v2": 10}, (headers, path, seen)
    for headers, path in stable:
        seen, _ = _ask(port, 10, path, headers)
        assert seen == {"v1": 10}, (headers, path, seen)
    # the canary's analysis sees the requests the match sent it
    st = d.status("shop")
    assert d.wait_phase("shop", "Progressing")
    rc, out, err = d.ctl("abort", "shop")
    assert rc == 0, (rc, out, err)
    d.wait_phase("shop", "Failed")
    # the rollout is over: a match pins nothing any more
    for headers, path in canary[:1] + canary[5:6]:
        seen, _ = _ask(port, 10, path, headers)
        assert seen == {"v1": 10}, (headers, path, seen, st)


def test_match_with_weight_sends_the_rest_by_weight():
    v1, v2, port, text = _ab_canary(step=50)
    d = Canaryd(_with(text, MATCH))
    rc, out, err = d.ctl("rollout", "shop", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    s = d.wait_phase("shop", "Progressing")
    assert s["canaryWeight"] == 50, s
    assert _ask(port, 20, headers={"X-Canary": "insider"})[0] == {"v2": 20}
    seen, _ = _ask(port, 40)
    # smooth weighted round-robin: exact per worker, within one request
    # per worker over all of them
    assert abs(seen.get("v1", 0) - 20) <= 2 and abs(seen.get("v2", 0) - 20) <= 2, seen


AFFINITY = """    sessionAffinity:
      cookieName: flagger-cookie
      maxAge: 7200
      path: /
      httpOnly: true
      primaryCookieName: primary-cookie
"""


def _cookie(set_cookies, name):
    for v in set_cookies:
        if v.startswith(name + "="):
            return v
    return None


def test_affinity_keeps_a_client_on_the_canary_until_rollback():
    v1, v2, port, text = _ab_canary(step=50)
    d = Canaryd(_with(text, AFFINITY))
    rc, out, err = d.ctl("rollout", "shop", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    d.wait_phase("shop", "Progressing")
    # new clients, by weight: each canary answer sets the canary cookie,
    # each stable one the primary cookie
    got = {"v1": [], "v2": []}
    for _ in range(20):
        seen, cookies = _ask(port, 1)
        got[list(seen)[0]].append(cookies)
    assert len(got["v1"]) >= 8 and len(got["v2"]) >= 8, got
    for cookies in got["v2"]:
        c = _cookie(cookies, "flagger-cookie")
        assert c and c.endswith("; Max-Age=7200; HttpOnly; Path=/"), cookies
        assert _cookie(cookies, "primary-cookie") is None, cookies
    for cookies in got["v1"]:
        c = _cookie(cookies, "primary-cookie")
        assert c and c.endswith("; Max-Age=3600; HttpOnly; Path=/"), cookies
        assert _cookie(cookies, "flagger-cookie") is None, cookies
    canary_cookie = _cookie(got["v2"][0], "flagger-cookie").split(";")[0]
    primary_cookie = _cookie(got["v1"][0], "primary-cookie").split(";")[0]
    assert len(canary_cookie) == len("flagger-cookie=") + 16, canary_cookie
    # a client with the cookie stays where it was, every time; sticky
    # answers set no new cookie
    seen, cookies = _ask(port, 30, headers={"Cookie": "a=1; " + canary_cookie})
    assert seen == {"v2": 30} and not cookies, (seen, cookies)
    seen, cookies = _ask(port, 30, headers={"Cookie": primary_cookie + "; b=2"})
    assert seen == {"v1": 30} and not cookies, (seen, cookies)
    # a forged value pins nothing
    seen, _ = _ask(port, 20, headers={"Cookie": "flagger-cookie=0123456789abcdef"})
    assert seen.get("v1", 0) >= 8, seen

    rc, out, err = d.ctl("abort", "shop")
    assert rc == 0, (rc, out, err)
    d.wait_phase("shop", "Failed")
    # rolled back: the cookie no longer pins, and the answer deletes it
    seen, cookies = _ask(port, 10, headers={"Cookie": canary_cookie})
    assert seen == {"v1": 10}, seen
    assert cookies and all(c.startswith("flagger-cookie=; Max-Age=0") for c in cookies), cookies

    # the same revision again is another rollout: the old cookie is stale
    rc, out, err = d.ctl("rollout", "shop", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    d.wait_phase("shop", "Progressing")
    seen, cookies = _ask(port, 20, headers={"Cookie": canary_cookie})
    assert seen.get("v1", 0) >= 8, seen


def test_rules_reach_every_worker_and_follow_a_reload():
    v1, v2, port, text = _ab_canary()
    text += "  workers: 2\n" if "workers:" not in text else ""
    d = Canaryd(_with(text, "    match:\n      - headers: {x-canary: {exact: insider}}\n"))
    rc, out, err = d.ctl("rollout", "shop", "--revision", "v2", "--endpoints", v2.addr)
    assert rc == 0, (rc, out, err)
    d.wait_phase("shop", "Progressing")
    # each request on a connection of its own: the kernel spreads them
    # over both workers
    for _ in range(10):
        assert _ask(port, 1, headers={"X-Canary": "insider"})[0] == {"v2": 1}
        assert _ask(port, 1, headers={"X-Canary": "tester"})[0] == {"v1": 1}
    with open(d.config_path, "w") as f:
        f.write(_with(text, "    match:\n      - headers: {x-canary: {exact: tester}}\n"))
    d.kill(signal.SIGHUP)
    end = time.time() + 10 * SLOW
    while time.time() < end and _ask(port, 1, headers={"X-Canary": "tester"})[0] != {"v2": 1}:
        time.sleep(0.05)
    for _ in range(10):
        assert _ask(port, 1, headers={"X-Canary": "tester"})[0] == {"v2": 1}
        assert _ask(port, 1, headers={"X-Canary": "insider"})[0] == {"v1": 1}
    assert d.status("shop")["phase"] == "Progressing"


def test_config_refuses_what_the_proxy_cannot_do():
    port = free_port()
    base = canary_yaml("shop", "127.0.0.1:%d" % port, ["127.0.0.1:9"])
    cases = [
        ("      - headers:\n          x-a: { regex: \"(abc\" }\n",
         "spec.analysis.match[0].headers.x-a.regex: regex '(abc' is not a POSIX extended"),
        ("      - sourceLabels: { app: web }\n",
         "spec.analysis.match[0].sourceLabels: router builtin cannot match source labels"),
        ("      - headers:\n          x-a: { exact: a, prefix: b }\n",
         "spec.analysis.match[0].headers.x-a: give exactly one of exact, prefix, suffix or "
         "regex, got 2"),
        ("      - queryParams:\n          q: { suffix: a }\n",
         "spec.analysis.match[0].queryParams.q.suffix: unknown field"),
    ]
    d = tmpdir()
    for i, (entry, want) in enumerate(cases):
        p = os.path.join(d, "c%d.yaml" % i)
        with open(p, "w") as f:
            f.write(_with(base, "    match:\n" + entry))
        r = subprocess.run([os.path.join(BUILD, "canaryd"), "--check", "-c", p],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 2 and want in r.stderr + r.stdout, (want, r.stdout, r.stderr)
        # FILE:LINE:COL of the value at fault
        assert r.stderr.startswith(p + ":1"), r.stderr


if __name__ == "__main__":
    run(globals())
