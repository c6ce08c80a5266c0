"""The matrix, responses: what a misbehaving upstream sends and what the
client may see of it. Content-Length with Transfer-Encoding (response
splitting), differing or malformed lengths, 1xx floods, 101 not asked for,
bodies on HEAD/204/304, CR/LF/NUL in fields, invalid status lines, chunked
to an HTTP/1.0 client, bad chunk lines and trailers, an upstream closing or
stalling mid-message, early answers, huge heads, and a request resent after
a reused connection closed (RFC 9112 6.3, 9.3.1; RFC 9110 8.6, 9.2.2, 15).

In most rows the client asks `GET /r`, reads the answer, then asks
`GET /second` on the same connection; the scripted upstream answers /r on
its first connection with the row's bytes followed by a complete spoof
response ("SPOOFED"). A proxy that frames the first answer wrongly, or
reuses that connection, hands the spoof to the client: the invariant no
row may break."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from adv import SPOOF, Exp, Row, run_rows  # noqa: E402

REQ = b"GET /r HTTP/1.1\r\nHost: x\r\n\r\n"
SECOND = b"GET /second HTTP/1.1\r\nHost: x\r\n\r\n"
TWO = [REQ, ("wait", 1), SECOND]

ROWS = []


def row(name, answer, expect, send=None, spoof=True, then=(), **kw):
    """<answer>: the first upstream connection's reply to the first request,
    followed by SPOOF (unless spoof=False) and the steps <then>."""
    script = [("req",), ("send", answer + (SPOOF if spoof else b""))] + list(then) + [("serve",)]
    ROWS.append(Row(name, send if send is not None else TWO, expect, up=[script], **kw))


def first_body(want):
    def check(o):
        assert o.finals and o.finals[0].body == want, \
            "client got body %r, upstream sent %r" % (o.finals[0].body if o.finals else None, want)
    return check


def forwarded(body=b"hello", label="forwarded", check=None):
    """The first answer forwarded with <body> (framed soundly: the invariants
    check the framing), /second served after it."""
    def both(o):
        first_body(body)(o)
        if check:
            check(o)
    return Exp(label, resp=[{200}, {200}], check=both)


def bad_gateway(label="502"):
    """RFC 9112 6.3 / RFC 9110 15.6.3: an invalid response is discarded, the
    connection to the upstream closed, the client answered 502; /second is
    served (on a new connection) or the client connection closed."""
    return [Exp(label, resp=[{502}, {200}]), Exp(label + ", then closed", resp=[{502}], closed=True)]


def truncated(label="truncated, then closed"):
    """The head went out: the client must see an incomplete message and a
    close, never a complete-looking one."""
    return Exp(label, resp=[], truncated=True, closed=True)


def dropped(label="closed without an answer"):
    """Nothing went out yet and the connection is closed: safe (a client
    sees no answer, never a wrong one), if less helpful than a 502."""
    return Exp(label, resp=[], truncated=False, closed=True)


def no_field(name):
    def check(o):
        assert not o.finals[0].has(name), "client got %s: %r" % (name, o.finals[0].values(name))
    return check


OK_HEAD = b"HTTP/1.1 200 OK\r\n"

# ---- baselines ----
row("baseline_content_length", OK_HEAD + b"Content-Length: 5\r\n\r\nhello", forwarded(),
    spoof=False)
row("extra_bytes_after_the_body", OK_HEAD + b"Content-Length: 5\r\n\r\nhello", forwarded(),
    why="bytes past the framed end are not the next response")
row("baseline_chunked", OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    forwarded())

# ---- Content-Length and Transfer-Encoding ----
CL_TE = OK_HEAD + b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"
row("cl_and_te", CL_TE,
    [forwarded(label="forwarded with Content-Length removed", check=no_field("content-length"))]
    + bad_gateway(),
    why="RFC 9112 6.3: TE wins; an intermediary MUST remove CL (issue 8 item 4)")
row("te_and_cl", OK_HEAD + b"Transfer-Encoding: chunked\r\nContent-Length: 50\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    [forwarded(label="forwarded with Content-Length removed", check=no_field("content-length"))]
    + bad_gateway())
row("cl_lines_differing", OK_HEAD + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello!",
    bad_gateway(), why="RFC 9112 6.3: MUST 502")
row("cl_list_differing", OK_HEAD + b"Content-Length: 5, 6\r\n\r\nhello!", bad_gateway())
row("cl_list_same", OK_HEAD + b"Content-Length: 5, 5\r\n\r\nhello",
    [forwarded(label="forwarded with one Content-Length")] + bad_gateway(),
    why="RFC 9110 8.6: reject, or replace with one value: never forward the list")
row("cl_lines_same", OK_HEAD + b"Content-Length: 5\r\nContent-Length: 5\r\n\r\nhello",
    [forwarded(label="forwarded with one Content-Length")] + bad_gateway())
for name, value in [("plus_sign", b"+5"), ("negative", b"-5"), ("hex", b"0x5"), ("empty", b""),
                    ("overflow", b"99999999999999999999999"), ("inner_space", b"5 5")]:
    row("cl_" + name, OK_HEAD + b"Content-Length: " + value + b"\r\n\r\nhello", bad_gateway())
row("te_not_chunked", OK_HEAD + b"Transfer-Encoding: xchunked\r\n\r\nhello", spoof=False,
    then=[("close",)], send=[REQ],
    expect=[Exp("read until close, forwarded framed by close", resp=[{200}], closed=True,
                check=lambda o: first_body(b"hello")(o) if o.finals else None),
            Exp("502", resp=[{502}])],
    why="RFC 9112 6.3: a response TE without chunked last is read until close")
row("te_chunked_twice", OK_HEAD + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5\r\nhello\r\n0\r\n\r\n", bad_gateway())
row("te_upper_case", OK_HEAD + b"Transfer-Encoding: CHUNKED\r\n\r\n5\r\nhello\r\n0\r\n\r\n", forwarded())
row("chunked_to_an_http10_client",
    OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    [Exp("dechunked, framed by close", resp=[{200}], closed=True, check=first_body(b"hello")),
     Exp("502", resp=[{502}], closed=True)],
    send=[b"GET /r HTTP/1.0\r\n\r\n"], client10=True,
    why="RFC 9112 6.1: no Transfer-Encoding to an HTTP/1.0 client")
row("connection_names_content_length",
    OK_HEAD + b"Connection: Content-Length\r\nContent-Length: 5\r\n\r\nhello",
    [forwarded()] + bad_gateway(), why="a Connection list may not strip framing")

# ---- 1xx ----
CONT = b"HTTP/1.1 100 Continue\r\n\r\n"
FINAL = OK_HEAD + b"Content-Length: 5\r\n\r\nhello"
row("interim_then_final", CONT + b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + FINAL,
    forwarded())
row("interim_flood_64", CONT * 64 + FINAL, [forwarded()] + bad_gateway(),
    why="issue 8 item 8: 64 buffered 1xx stalled the final answer until a 504")
row("interim_flood_1000", CONT * 1000 + FINAL, [forwarded()] + bad_gateway())
row("interim_flood_slow", CONT, [forwarded()] + bad_gateway(), spoof=False,
    then=[("sleep", 0.05), ("send", CONT)] * 10 + [("send", FINAL)])
row("interim_with_a_body", b"HTTP/1.1 100 Continue\r\nContent-Length: 5\r\n\r\nhello" + FINAL,
    [forwarded(label="interim's Content-Length ignored")] + bad_gateway(),
    why="1xx has no body: 'hello' is the start of the next response")
row("interim_to_an_http10_client", CONT + FINAL,
    Exp("final only", resp=[{200}], check=first_body(b"hello")),
    send=[b"GET /r HTTP/1.0\r\n\r\n"], client10=True, spoof=False,
    why="RFC 9110 15.2: a server MUST NOT send 1xx to an HTTP/1.0 client")
row("switching_protocols_not_asked",
    b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    bad_gateway(), why="RFC 9110 15.2.2: 101 only when the request asked to upgrade")

# ---- responses without a body that carry one ----
for status, extra in [(204, b"Content-Length: 5\r\n"), (204, b"Transfer-Encoding: chunked\r\n"),
                      (304, b"Content-Length: 5\r\n"), (204, b""), (304, b"")]:
    body = b"5\r\nhello\r\n0\r\n\r\n" if b"chunked" in extra else b"hello"
    kind = "cl" if b"Content" in extra else "te" if extra else "bare"
    row("status_%d_with_body_bytes_%s" % (status, kind),
        b"HTTP/1.1 %d X\r\n%s\r\n%s" % (status, extra, body),
        [Exp("no body, /second served", resp=[{status}, {200}],
             check=lambda o: _eq(o.finals[1].body, b"ok /second")),
         Exp("no body, closed", resp=[{status}], closed=True)] + bad_gateway(),
        why="RFC 9112 6.3: no body after 204/304; RFC 9110 8.6: no CL/TE in a 204")
row("status_304_with_chunked_and_no_body",
    b"HTTP/1.1 304 Not Modified\r\nTransfer-Encoding: chunked\r\n\r\n",
    [Exp("no body awaited", resp=[{304}, {200}],
         check=lambda o: _eq(o.finals[1].body, b"ok /second"))] + bad_gateway(),
    why="a 304 ends with its head whatever its framing fields say")
row("head_answer_with_body_bytes", OK_HEAD + b"Content-Length: 5\r\n\r\nhello",
    [Exp("no body, /second served", resp=[{200}, {200}],
         check=lambda o: _eq(o.finals[1].body, b"ok /second")),
     Exp("no body, closed", resp=[{200}], closed=True)] + bad_gateway(),
    send=[b"HEAD /r HTTP/1.1\r\nHost: x\r\n\r\n", ("wait", 1), SECOND], methods=["HEAD", "GET"])
row("head_answer_with_chunked_bytes",
    OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    [Exp("no body, /second served", resp=[{200}, {200}],
         check=lambda o: _eq(o.finals[1].body, b"ok /second")),
     Exp("no body, closed", resp=[{200}], closed=True)] + bad_gateway(),
    send=[b"HEAD /r HTTP/1.1\r\nHost: x\r\n\r\n", ("wait", 1), SECOND], methods=["HEAD", "GET"])

# ---- field syntax ----
FIELDS = [
    ("bare_cr_in_a_value", b"X-A: a\rb", "sp"),
    ("nul_in_a_value", b"X-A: a\x00b", "sp"),
    ("bare_lf_in_a_value", b"X-A: a\nSet-Cookie: evil=1", "lf"),
    ("obs_fold", b"X-A: a\r\n  b", "fold"),
    ("space_before_colon", b"Content-Length : 5", "cl"),
    ("name_with_a_space", b"X A: b", "drop"),
    ("empty_name", b": b", "drop"),
    ("line_without_colon", b"junk line", "drop"),
]
for name, line, kind in FIELDS:
    ans = OK_HEAD + line + b"\r\n" + (b"" if kind == "cl" else b"Content-Length: 5\r\n") + b"\r\nhello"
    row("field_" + name, ans, [forwarded(label="forwarded sanitised")] + bad_gateway(),
        why="RFC 9110 5.5 / RFC 9112 5.1-5.2: sanitise or 502, never pass on")
row("bare_lf_line_ends", b"HTTP/1.1 200 OK\nContent-Length: 5\n\nhello",
    [forwarded(label="LF accepted, forwarded with CRLF")] + bad_gateway())
row("head_too_large", OK_HEAD + b"X-Big: " + b"a" * 70000 + b"\r\nContent-Length: 5\r\n\r\nhello",
    bad_gateway())
row("too_many_fields", OK_HEAD + b"".join(b"X-%d: a\r\n" % i for i in range(300))
    + b"Content-Length: 5\r\n\r\nhello", [forwarded()] + bad_gateway())

# ---- status lines ----
for name, line, verdict in [
        ("000", b"HTTP/1.1 000 Zero", "bad"), ("099", b"HTTP/1.1 099 Low", "bad"),
        ("600", b"HTTP/1.1 600 High", "bad"), ("999", b"HTTP/1.1 999 High", "bad"),
        ("two_digits", b"HTTP/1.1 20 OK", "bad"), ("four_digits", b"HTTP/1.1 2000 OK", "bad"),
        ("letters", b"HTTP/1.1 2x0 OK", "bad"), ("http2", b"HTTP/2.0 200 OK", "lenient"),
        ("http2_short", b"HTTP/2 200 OK", "bad"), ("lower_case", b"http/1.1 200 OK", "bad"),
        ("double_space", b"HTTP/1.1  200 OK", "lenient"), ("no_reason", b"HTTP/1.1 200", "lenient"),
        ("empty_reason", b"HTTP/1.1 200 ", "ok"), ("reason_with_nul", b"HTTP/1.1 200 O\x00K", "lenient"),
        ("http_1_2", b"HTTP/1.2 200 OK", "lenient"), ("garbage", b"SSH-2.0-OpenSSH_9.2", "bad")]:
    ans = line + b"\r\nContent-Length: 5\r\n\r\nhello"
    if verdict == "bad":
        exp = bad_gateway()
    else:
        exp = [forwarded()] + (bad_gateway() if verdict == "lenient" else [])
    row("status_line_" + name, ans, exp)

# ---- chunked framing from the upstream ----
CH = OK_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
for name, body in [("two_numbers", b"5 6\r\nhello\r\n0\r\n\r\n"),
                   ("hex_prefix", b"0x5\r\nhello\r\n0\r\n\r\n"),
                   ("negative", b"-5\r\nhello\r\n0\r\n\r\n"),
                   ("overflow", b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
                   ("bare_lf", b"5\nhello\r\n0\r\n\r\n"),
                   ("extension_junk", b"5;\x01\r\nhello\r\n0\r\n\r\n"),
                   ("data_too_long", b"5\r\nhelloXX\r\n0\r\n\r\n")]:
    row("chunk_" + name, CH + body,
        [truncated(), dropped(), Exp("502", resp=[{502}, {200}])],
        why="a framing error after the head: the client sees a cut message and a close")
for name, line in [("without_colon", b"bad trailer"), ("nul", b"X-T: a\x00b"),
                   ("content_length", b"Content-Length: 50"), ("obs_fold", b"X-T: a\r\n b")]:
    row("trailer_" + name, CH + b"5\r\nhello\r\n0\r\n" + line + b"\r\n\r\n",
        [forwarded(label="trailer dropped"), truncated(), dropped()] + bad_gateway(),
        why="issue 8 item 8: trailers validated as fields, or dropped")
row("trailer_valid", CH + b"5\r\nhello\r\n0\r\nX-Checksum: abc\r\n\r\n", forwarded())

# ---- the upstream closes or stalls mid-message ----
row("closes_mid_head", b"HTTP/1.1 200 OK\r\nContent-Len", bad_gateway(), spoof=False,
    then=[("close",)])
row("closes_before_answering", b"", bad_gateway() + [forwarded(b"ok /r", label="GET retried")],
    spoof=False, then=[("close",)])
row("closes_mid_body", OK_HEAD + b"Content-Length: 100\r\n\r\nhello", truncated(), spoof=False,
    then=[("close",)], why="never a complete-looking message")
row("closes_mid_chunk", CH + b"a\r\nhello", truncated(), spoof=False, then=[("close",)])
row("closes_before_last_chunk", CH + b"5\r\nhello\r\n", truncated(), spoof=False, then=[("close",)])
row("closes_in_trailers", CH + b"5\r\nhello\r\n0\r\nX-T: v\r\n", truncated(), spoof=False,
    then=[("close",)])
row("body_until_close", OK_HEAD + b"\r\nhello", spoof=False, then=[("close",)], send=[REQ],
    expect=[Exp("framed by close", resp=[{200}], closed=True, check=first_body(b"hello")),
            Exp("re-chunked", resp=[{200}], check=first_body(b"hello"))])
row("stalls_mid_body", OK_HEAD + b"Content-Length: 10\r\n\r\nhello", truncated(), spoof=False,
    why="the response timeout ends it: a cut message, never a complete one")
row("huge_body_length_then_close", OK_HEAD + b"Content-Length: 18446744073709551615\r\n\r\nhello",
    [truncated()] + bad_gateway(), spoof=False, then=[("close",)])

# ---- early answers ----
SMUGGLED = REQ.replace(b"/r", b"/smuggled")
POST_HEAD = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % len(SMUGGLED)


def never_smuggled(o):
    got = [r.target for r in o.up_requests]
    assert b"/smuggled" not in got, "upstream served /smuggled: %r" % got


for name, conn in [("closing", b"Connection: close\r\n"), ("keep_alive", b"")]:
    ROWS.append(Row(
        "early_answer_before_the_body_" + name,
        [POST_HEAD + SMUGGLED[:4], ("wait", 1), SMUGGLED[4:] + SECOND],
        [Exp("413, then closed", resp=[{413}], closed=True, check=never_smuggled),
         Exp("413, the body read as a body", resp=[{413}, {200}], check=never_smuggled)],
        up=[[("head",), ("send", b"HTTP/1.1 413 Too Large\r\n" + conn + b"Content-Length: 0\r\n\r\n"),
             ("req",), ("serve",)]],
        why="the rest of the body after an early answer is never a request"))

# ---- resending (issue 8 item 5) ----
def sent_once(target):
    def check(o):
        n = [r.target for r in o.up_requests].count(target)
        assert n == 1, "upstream received %s %d times" % (target.decode(), n)
    return check


ROWS.append(Row(
    "bodiless_post_not_resent",
    [REQ, ("wait", 1), b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n"],
    [Exp("502, sent once", resp=[{200}, {500, 502, 503, 504}], check=sent_once(b"/p")),
     Exp("closed unanswered, sent once", resp=[{200}], closed=True, check=sent_once(b"/p"))],
    up=[[("req",), ("send", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok /r"), ("req",),
         ("close",)]],
    why="a reused connection closed after reading the POST: it may have acted on it"))
ROWS.append(Row(
    "get_may_be_resent",
    [REQ, ("wait", 1), b"GET /g HTTP/1.1\r\nHost: x\r\n\r\n"],
    [Exp("resent", resp=[{200}, {200}]), Exp("502", resp=[{200}, {502}], check=sent_once(b"/g")),
     Exp("closed unanswered", resp=[{200}], closed=True, check=sent_once(b"/g"))],
    up=[[("req",), ("send", b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nok /r"), ("req",),
         ("close",)]],
    why="positive control: an idempotent request may go again"))


def _eq(a, b):
    assert a == b, "%r != %r" % (a, b)


if __name__ == "__main__":
    sys.exit(run_rows(ROWS))
