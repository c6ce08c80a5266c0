"""The matrix, request heads: bare CR, bare LF and NUL, field syntax, request
lines (methods, targets, absolute- and authority-form), Host (RFC 9112 3.2),
versions (HTTP/0.9, HTTP/2 preface and h2c, 1.x), size limits, slow heads,
Expect: 100-continue (and the final answer before the body), pipelining and
keep-alive after errors.

As in test_request_framing.py, a pipelined `GET /second` follows each
request: after a refusal it must never be served."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adv import Exp, Row, refused, run_rows, served  # noqa: E402

SECOND = b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"

ROWS = []


def row(name, send, expect, **kw):
    ROWS.append(Row(name, send, expect, **kw))


def get(fields=(b"Host: x",), target=b"/", line=None):
    line = line or b"GET " + target + b" HTTP/1.1"
    return line + b"\r\n" + b"".join(f + b"\r\n" for f in fields) + b"\r\n"


def up_field(name, want):
    """The first upstream request's field <name> is <want> (None: absent)."""
    def check(o):
        got = o.up_requests[0].values(name) if o.up_requests else None
        assert (got == [] if want is None else got == [want]), \
            "upstream got %s: %r, expected %r" % (name, got, want)
    return check


def folded(name, a, b):
    """RFC 9112 5.2: each obs-fold replaced with one or more SP."""
    def check(o):
        got = o.up_requests[0].values(name) if o.up_requests else None
        ok = got and len(got) == 1 and got[0].startswith(a) and got[0].endswith(b) and \
            got[0][len(a):len(got[0]) - len(b)].strip(b" ") == b"" and len(got[0]) > len(a) + len(b)
        assert ok, "upstream got %s: %r, expected %r SP... %r" % (name, got, a, b)
    return check


def never(target):
    def check(o):
        got = [r.target for r in o.up_requests]
        assert target not in got, "upstream served %r as a request: %r" % (target, got)
    return check


def ok2(t1=b"/", label="forwarded", check=None):
    return served(t1, "/second", label=label, check=check)


# ---- bare CR, bare LF, NUL and other control bytes in the head ----
row("bare_cr_ends_the_request_line", b"GET / HTTP/1.1\rHost: x\r\n\r\n" + SECOND, refused(400))
row("bare_lf_line_ends", b"GET / HTTP/1.1\nHost: x\n\n" + SECOND,
    [refused(400), ok2(label="LF accepted, forwarded with CRLF")],
    why="RFC 9112 2.2: a recipient MAY take LF as a line end, never forward it bare")
row("bare_lf_after_one_field", b"GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n" + SECOND,
    [refused(400), ok2(label="LF accepted, forwarded with CRLF")])
row("bare_cr_in_a_value", get([b"Host: x", b"X-A: a\rb"]) + SECOND,
    [refused(400), ok2(label="CR replaced by SP", check=up_field("x-a", b"a b"))],
    why="RFC 9110 5.5: CR, LF, NUL in a value: reject or replace with SP")
row("nul_in_a_value", get([b"Host: x", b"X-A: a\x00b"]) + SECOND,
    [refused(400), ok2(label="NUL replaced by SP", check=up_field("x-a", b"a b"))])
row("nul_in_a_name", get([b"Host: x", b"X-\x00A: b"]) + SECOND, refused(400))
row("nul_in_the_target", get(target=b"/a\x00b") + SECOND, refused(400))
row("nul_before_the_request", b"\x00" + get() + SECOND, refused(400))
row("del_in_a_value", get([b"Host: x", b"X-A: a\x7fb"]) + SECOND,
    [refused(400), ok2(label="forwarded")],
    why="RFC 9110 5.5: a CTL other than CR/LF/NUL may be refused or kept")
row("obs_text_in_a_value_passes", get([b"Host: x", b"X-A: caf\xc3\xa9 \xff"]) + SECOND,
    ok2(check=up_field("x-a", b"caf\xc3\xa9 \xff")),
    why="obs-text (0x80-0xFF) is a valid field value")
row("escape_sequence_in_a_value", get([b"Host: x", b"X-A: \x1b[31mred"]) + SECOND,
    [refused(400), ok2(label="forwarded")])

# ---- field-line syntax ----
row("field_with_empty_name", get([b"Host: x", b": b"]) + SECOND, refused(400),
    why="CVE-2023-25725 class: an empty name can truncate the field list")
row("field_without_colon", get([b"Host: x", b"X-A b"]) + SECOND, refused(400))
row("space_before_colon", get([b"Host: x", b"X-A : b"]) + SECOND, refused(400),
    why="RFC 9112 5.1: MUST 400")
row("name_with_a_space", get([b"Host: x", b"X A: b"]) + SECOND, refused(400))
row("name_with_a_delimiter", get([b"Host: x", b"X(A): b"]) + SECOND, refused(400))
row("name_with_non_ascii", get([b"Host: x", b"X-\xc3\xa9: b"]) + SECOND, refused(400))
row("obs_fold_continuation", get([b"Host: x", b"X-A: a", b"  b"]) + SECOND,
    [refused(400), ok2(label="unfolded", check=folded("x-a", b"a", b"b"))],
    why="RFC 9112 5.2: reject, or replace each obs-fold with SP")
row("whitespace_line_before_the_fields", b"GET / HTTP/1.1\r\n X-A: b\r\nHost: x\r\n\r\n" + SECOND,
    [refused(400), ok2(label="line consumed, not forwarded", check=up_field("x-a", None))],
    why="RFC 9112 2.2: reject, or consume the whitespace-preceded line unprocessed")
row("leading_empty_lines_ignored", b"\r\n\r\n" + get() + SECOND,
    [ok2(), refused(400)], why="RFC 9112 2.2: SHOULD ignore an empty line before a request")

# ---- request line ----
row("method_with_a_delimiter", get(line=b"G(T / HTTP/1.1") + SECOND, refused(400, 405, 501))
row("method_empty", get(line=b" / HTTP/1.1") + SECOND, refused(400))
row("method_lower_case", get(line=b"get /lc HTTP/1.1") + SECOND,
    [served("/lc", "/second"), refused(400, 405, 501)],
    why="methods are case-sensitive tokens: forward as is or refuse")
row("method_unknown", get(line=b"FROB /u HTTP/1.1") + SECOND,
    [served("/u", "/second"), refused(405, 501)])
row("method_long", get(line=b"A" * 300 + b" /m HTTP/1.1") + SECOND,
    [served("/m", "/second"), refused(400, 405, 414, 501)])
row("two_spaces_after_method", get(line=b"GET  / HTTP/1.1") + SECOND,
    [refused(400), ok2(label="parsed on whitespace, forwarded with SP")])
row("tabs_as_separators", get(line=b"GET\t/\tHTTP/1.1") + SECOND,
    [refused(400), ok2(label="parsed on whitespace, forwarded with SP")])
row("space_after_version", get(line=b"GET / HTTP/1.1 ") + SECOND, refused(400, 505))
row("space_in_the_target", get(line=b"GET /a b HTTP/1.1") + SECOND, refused(400))
row("control_char_in_the_target", get(target=b"/a\x01b") + SECOND, refused(400))
row("raw_utf8_in_the_target", get(target=b"/caf\xc3\xa9") + SECOND,
    [refused(400), ok2(b"/caf%C3%A9", label="percent-encoded")])
row("fragment_in_the_target", get(target=b"/a#frag") + SECOND,
    [refused(400), ok2(b"/a", label="fragment dropped"),
     ok2(b"/a#frag", label="forwarded as is")])
row("asterisk_with_get", get(target=b"*") + SECOND, refused(400, 405, 501),
    why="RFC 9112 3.2.4: asterisk-form only with OPTIONS")
row("options_asterisk", get(line=b"OPTIONS * HTTP/1.1") + SECOND,
    [served("*", "/second"),
     Exp("answered by the proxy", resp=[{200, 204, 400, 405, 501}, {200}], up=1,
         up_targets=[b"/second"])])
row("authority_form_with_get", get(target=b"x:80") + SECOND, refused(400, 405),
    why="RFC 9112 3.2.3: authority-form only with CONNECT (haproxy #2565)")
row("connect_method",
    get([b"Host: x:443"], line=b"CONNECT x:443 HTTP/1.1") + SECOND,
    [refused(400, 403, 405, 501),
     Exp("forwarded, never tunnelled", resp=None, check=never(b"/smuggled"))])
row("absolute_form_matching_host",
    get([b"Host: x"], target=b"http://x/abs") + SECOND,
    [Exp("forwarded", resp=[{200}, {200}], up=2,
         check=lambda o: _assert_in(o.up_requests[0].target, (b"/abs", b"http://x/abs")))])
row("absolute_form_other_host",
    get([b"Host: x"], target=b"http://evil/abs") + SECOND,
    [refused(400),
     Exp("forwarded with the target's authority as Host", resp=[{200}, {200}], up=2,
         check=up_field("host", b"evil"))],
    why="RFC 9112 3.2.2: the authority wins over Host; forwarding both lets the next hop pick")
row("absolute_form_userinfo",
    get([b"Host: x"], target=b"http://u:p@x/abs") + SECOND,
    [refused(400),
     Exp("forwarded without userinfo", resp=[{200}, {200}], up=2)],
    why="RFC 9110 4.2.4: userinfo in an http URI is an error")
row("absolute_form_without_host",
    get([], target=b"http://x/abs") + SECOND,
    [refused(400), Exp("forwarded with Host from the target", resp=[{200}, {200}], up=2,
                       check=up_field("host", b"x"))])
row("absolute_form_https_scheme", get([b"Host: x"], target=b"https://x/abs") + SECOND,
    [refused(400, 421),
     Exp("forwarded", resp=[{200}, {200}], up=2)])

# ---- Host (RFC 9112 3.2: MUST 400 for none, several or an invalid one) ----
row("host_missing", get([]) + SECOND, refused(400), why="RFC 9112 3.2: MUST 400")
row("host_twice_different", get([b"Host: x", b"Host: y"]) + SECOND, refused(400))
row("host_twice_same", get([b"Host: x", b"Host: x"]) + SECOND, refused(400))
row("host_list", get([b"Host: a, b"]) + SECOND, refused(400))
row("host_userinfo", get([b"Host: u@x"]) + SECOND, refused(400))
row("host_with_space", get([b"Host: a b"]) + SECOND, refused(400))
row("host_with_slash", get([b"Host: a/b"]) + SECOND, refused(400),
    why="a '/' in Host lets a path-routing hop and a Host-routing hop disagree")
row("host_bad_port", get([b"Host: x:8o"]) + SECOND, refused(400))
row("host_ipv6_literal", get([b"Host: [::1]:8080"]) + SECOND, ok2())
row("host_empty", get([b"Host:"]) + SECOND, [ok2(), refused(400)],
    why="an empty Host is valid syntax (no authority)")
row("host_missing_http10",
    [b"GET /ten HTTP/1.0\r\n\r\n"],
    served("/ten", closed=True), client10=True, why="HTTP/1.0 needs no Host")
row("host_twice_http10",
    [b"GET /ten HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n"], refused(400), client10=True)

# ---- versions ----
row("http09_request", b"GET /\r\n" + SECOND,
    [refused(400, 505), Exp("closed without an answer", resp=[], closed=True, up=0, up_bytes=0)])
row("http2_preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + SECOND,
    [refused(400, 505), Exp("closed without an answer", resp=[], closed=True, up=0, up_bytes=0)])
row("version_2_0", get(line=b"GET / HTTP/2.0") + SECOND, refused(400, 505))
row("version_1_2", get(line=b"GET /v HTTP/1.2") + SECOND,
    [refused(505), served("/v", "/second", label="served as HTTP/1.1")],
    why="RFC 9110 2.5: a higher minor version may be served as 1.1")
row("version_1_10", get(line=b"GET / HTTP/1.10") + SECOND, refused(400, 505))
row("version_lower_case", get(line=b"GET / http/1.1") + SECOND, refused(400, 505))
row("version_missing", get(line=b"GET / ") + SECOND, refused(400))
row("version_garbage", get(line=b"GET / HTTP/1.x") + SECOND, refused(400, 505))

# ---- Upgrade ----
H2C = [b"Host: x", b"Connection: Upgrade, HTTP2-Settings", b"Upgrade: h2c",
       b"HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA"]
SWITCH_H2C = b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n"
SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


def no_101(o):
    assert not [m for m in o.finals if m.status == 101], "client got 101: an h2c tunnel"


row("h2c_upgrade_is_not_tunnelled", get(H2C, target=b"/h2c"),
    [Exp("no h2c tunnel", check=no_101)],
    up=[[("req",), ("send", SWITCH_H2C + SETTINGS_FRAME)]],
    why="h2c smuggling: a proxy that tunnels h2c hands the client a channel past itself")
row("websocket_upgrade_is_tunnelled",
    [get([b"Host: x", b"Connection: Upgrade", b"Upgrade: websocket",
          b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13"],
         target=b"/ws"),
     ("wait", 1), b"ping"],
    [Exp("tunnelled", resp=[{101}],
         check=lambda o: _assert_in(b"pong", (o.client_raw[-4:],)))],
    up=[[("req",),
         ("send", b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n"
                  b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n"),
         ("sleep", 0.1), ("send", b"pong")]],
    why="positive control: an asked-for upgrade works")

WS = [b"Host: x", b"Connection: Upgrade", b"Upgrade: websocket",
      b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==", b"Sec-WebSocket-Version: 13"]
row("upgrade_refused_stays_http",
    [get(WS, target=b"/ws"), ("wait", 1),
     b"GET /bad HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n" + SECOND],
    [Exp("the next request parsed, refused", resp=[{426}, {400}], closed=True, up=1,
         up_targets=[b"/ws"]),
     Exp("closed after the refusal", resp=[{426}], closed=True, up=1, up_targets=[b"/ws"])],
    up=[[("req",), ("send", b"HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n"),
         ("serve",)]],
    why="WebSocket smuggling: only a 101 opens a tunnel; after a refusal the bytes are HTTP")

# ---- limits and slow heads ----
row("request_line_too_long", get(target=b"/" + b"a" * 20000) + SECOND, refused(400, 414, 431))
row("field_too_long", get([b"Host: x", b"X-A: " + b"a" * 20000]) + SECOND, refused(400, 431))
row("head_too_large", get([b"Host: x"] + [b"X-%d: %s" % (i, b"a" * 1000) for i in range(40)]) + SECOND,
    refused(400, 431))
row("head_of_10k_passes", get([b"Host: x"] + [b"X-%d: %s" % (i, b"a" * 1000) for i in range(10)]) + SECOND,
    ok2())
row("too_many_fields", get([b"Host: x"] + [b"X-%d: a" % i for i in range(300)]) + SECOND,
    [refused(400, 431), ok2()])
row("ninety_fields_pass", get([b"Host: x"] + [b"X-%d: a" % i for i in range(90)]) + SECOND, ok2())
row("head_never_finishes",
    [b"GET / HTTP/1.1\r\nHost: x\r\n", ("sleep", 2.0)],
    [Exp("408 and closed", resp=[{408}], closed=True, up=0, up_bytes=0),
     Exp("closed", resp=[], closed=True, up=0, up_bytes=0)],
    why="the client head timeout (1s here) ends a head that never completes")

# ---- Expect: 100-continue ----
EXPECT_HEAD = b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n"


def got_100(o):
    assert [m for m in o.interims if m.status == 100], "client got no 100 Continue"


row("expect_100_relayed",
    [EXPECT_HEAD, ("wait1xx",), b"hello" + SECOND],
    served("/", "/second", check=got_100),
    up=[[("head",), ("send", b"HTTP/1.1 100 Continue\r\n\r\n"), ("req",),
         ("send", b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nok /"), ("serve",)]])
row("expect_100_upstream_silent",
    [EXPECT_HEAD, ("sleep", 0.5), b"hello" + SECOND],
    served("/", "/second"), why="a client that gives up waiting sends the body anyway")
row("expect_final_before_body",
    [b"POST / HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED),
     ("wait", 1), SMUGGLED + SECOND],
    [Exp("401, then closed", resp=[{401}], closed=True, check=never(b"/smuggled")),
     Exp("401, the body read as a body", resp=[{401}, {200}], closed=False,
         check=never(b"/smuggled"))],
    up=[[("head",), ("send", b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"),
         ("req",), ("serve",)]],
    why="RFC 9110 10.1.1: the body after a final answer is still a body, never a request")
row("expect_in_http10_gets_no_1xx",
    [b"POST /ten HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n", ("sleep", 0.5), b"hello"],
    served("/ten", closed=True), client10=True,
    up=[[("head",), ("send", b"HTTP/1.1 100 Continue\r\n\r\n"), ("req",),
         ("send", b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\nok /ten")]],
    why="RFC 9110 15.2: no 1xx to an HTTP/1.0 client")
row("expect_unknown",
    get([b"Host: x", b"Expect: teapot"], target=b"/e") + SECOND,
    [served("/e", "/second"), Exp("417", resp=[{417}, {200}], up=1, up_targets=[b"/second"]),
     refused(417)])

# ---- pipelining and keep-alive ----
row("three_pipelined", get(target=b"/a") + get(target=b"/b") + get(target=b"/c"),
    served("/a", "/b", "/c"))
row("pipelined_after_a_post_body",
    b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhello" + SECOND,
    served("/p", "/second"))
row("keep_alive_after_a_response", [get(), ("wait", 1), ("sleep", 0.5), SECOND], ok2())
row("bad_request_after_a_good_one_closes",
    get() + b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 1, 2\r\n\r\n" + SECOND,
    Exp("200, 400, closed", resp=[{200}, {400}], closed=True, up=1, up_targets=[b"/"]))
row("client_half_close_still_answered", [get(target=b"/h"), ("shut",)],
    [Exp("answered", resp=[{200}], up=1, up_targets=[b"/h"]),
     Exp("taken as an abort", resp=[], closed=True)],
    why="RFC 9112 9.6 lets a client half-close; answering is the useful choice")
row("connection_close_honoured", get([b"Host: x", b"Connection: close"]) + SECOND,
    Exp("answered, closed", resp=[{200}], closed=True, up=1, up_targets=[b"/"]))
row("head_request_pipelined",
    get(line=b"HEAD /h HTTP/1.1") + SECOND,
    Exp("HEAD then GET", resp=[{200}, {200}], up=2, up_targets=[b"/h", b"/second"],
        bodies=[b"", b"ok /second"]),
    methods=["HEAD", "GET"],
    up=[[("req",), ("send", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"), ("serve",)]])


def _assert_in(x, allowed):
    assert x in allowed, "%r not in %r" % (x, allowed)


if __name__ == "__main__":
    sys.exit(run_rows(ROWS))
