"""adv.py - the machinery of the adversarial HTTP matrix (tests/adversarial/).

A matrix file is a list of rows. A row is one attack or edge case written as
data: the exact bytes a raw client sends (with pauses and half-closes where
the case needs them), what a scripted raw upstream answers (exact bytes,
pauses, closes, per upstream connection), and what is allowed to happen on
BOTH sides: the responses the client reads (status, framing, whether the
connection is closed) and the requests the upstream reads (how many, which
targets, their exact framing). Where RFC 9110/9112 let a recipient choose,
a row lists every allowed outcome (`Exp` alternatives); the unsafe outcome
is never in the list.

Every row also passes invariants that hold for any HTTP/1.1 intermediary,
checked with a strict reference parser (RFC 9112 grammar) on both streams:
  - everything the upstream receives parses strictly as requests (no bare
    LF, no obs-fold, one well-formed Content-Length or chunked last, valid
    chunk lines and trailers, one valid Host, ...); a request left
    incomplete is only allowed on an upstream connection the proxy closed;
  - everything the client receives parses strictly as responses (never
    Content-Length with Transfer-Encoding, no body after HEAD/204/304, no
    chunked or 1xx to an HTTP/1.0 client, no CR/LF/NUL in fields, ...);
    a response left incomplete is only allowed when the connection closed,
    so a truncated message never looks complete;
  - nothing a scripted upstream sent after the end of a message it framed
    (the bytes "SPOOFED") ever reaches a client: a proxy that reuses a
    connection holding leftovers serves one client's response to another.

Each row gets its own listener and scripted upstream (one canaryd, one
`router: builtin` Canary per row), so rows run in parallel (bounded) and
never share a pooled connection. A row passes, or fails with what the client
and the upstream saw. ADV_TARGET=haproxy or nginx runs the same rows against
HAProxy or nginx (a sanity check of the expectations, not run in CI)."""
import os
import re
import socket
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "e2e"))
from harness import (PORT_BASE, SLOW, Canaryd, Proc, canary_yaml, cleanup,  # noqa: E402
                     free_port, sanitizer_reports, tmpdir)

# Bounded waits, scaled for sanitizer builds. The proxy under test is given
# a response timeout of RESPONSE_TIMEOUT and a client head timeout of
# HEAD_TIMEOUT: shorter than RESP_WAIT, so that a stalled exchange ends in
# the proxy's own 504/408 (which a row then reports) and not in our timeout.
STEP_WAIT = 3.0 * SLOW        # a scripted step waits this long at most
RESP_WAIT = 3.5 * SLOW        # the client waits this long for a response
QUIET = 0.4 * SLOW            # nothing more arrives: a kept-alive exchange is over
CLOSE_WAIT = 2.0 * SLOW       # after the last response, a close must come within
UP_CLOSE_WAIT = 2.0 * SLOW    # the proxy must close an upstream connection within
RESPONSE_TIMEOUT = 2.0 * SLOW
HEAD_TIMEOUT = 1.0 * SLOW
ROW_LIMIT = 30.0 * SLOW       # hard bound on one row
PAR = int(os.environ.get("ADV_PAR", "8"))
TARGET = os.environ.get("ADV_TARGET", "canaryd")

SPOOF = (b"HTTP/1.1 200 OK\r\nContent-Length: 7\r\nX-Spoofed: 1\r\n\r\nSPOOFED")

# ---- a strict HTTP/1.1 parser (the reference) ----------------------------
#
# It finds message boundaries the way RFC 9112 says a recipient must, and
# records every deviation from the grammar as a violation instead of
# guessing: a proxy may accept what a strict parser would refuse, but it
# must never pass it on.

TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789"
                  b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")
HEX = frozenset(b"0123456789abcdefABCDEF")
CODINGS = {b"chunked", b"gzip", b"deflate", b"compress", b"x-gzip", b"x-compress"}
# fields a trailer section must not carry (RFC 9110 6.5.1): framing,
# routing, and fields that decide how to process the content
NOT_IN_TRAILERS = {b"content-length", b"transfer-encoding", b"host", b"trailer",
                   b"connection", b"te", b"upgrade", b"keep-alive",
                   b"content-encoding", b"content-type", b"content-range"}
MAX_HEAD = 1 << 20
HOST_RE = re.compile(rb"^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(:[0-9]*)?\Z")


class NeedMore(Exception):
    pass


class Bad(Exception):
    pass


class Msg:
    """One parsed message: start line, fields, decoded body, and the
    violations of the grammar it showed."""

    def __init__(self):
        self.raw = b""
        self.method = self.target = self.version = None
        self.status = None
        self.reason = b""
        self.headers = []        # (name, value) as received, value trimmed
        self.body = b""          # decoded payload
        self.framing = "none"    # none | length | chunked | close
        self.trailers = []
        self.complete = False
        self.violations = []

    def values(self, name):
        name = (name.encode() if isinstance(name, str) else name).lower()
        return [v for n, v in self.headers if n.lower() == name]

    def has(self, name):
        return bool(self.values(name))

    def short(self):
        if self.status is not None:
            s = "%d" % self.status
        else:
            s = "%s %s" % (_d(self.method), _d(self.target))
        return s + ("" if self.complete else " (incomplete)")


def _d(b):
    return b.decode("latin-1") if isinstance(b, bytes) else str(b)


def _line(buf, pos, v):
    """Returns (line, next position); a bare LF is a violation."""
    i = buf.find(b"\n", pos)
    if i < 0:
        if len(buf) - pos > MAX_HEAD:
            raise Bad("line longer than %d bytes" % MAX_HEAD)
        raise NeedMore()
    line = buf[pos:i]
    if line.endswith(b"\r"):
        line = line[:-1]
    else:
        v.append("bare LF line end")
    if b"\r" in line:
        v.append("bare CR in %r" % line[:60])
    return line, i + 1


def _list(value):
    return [e.strip(b" \t") for e in value.split(b",") if e.strip(b" \t")]


def _check_value(name, value, v, where="field"):
    """RFC 9110 5.5: CR, LF and NUL in a value are dangerous, a recipient
    must refuse or replace them; other control characters are invalid too,
    but a recipient MAY keep them, so forwarding them is no violation."""
    for ch in value:
        if ch in (0x00, 0x0a, 0x0d):
            v.append("control character 0x%02x in %s %r" % (ch, where, _d(name)))
            return


def _fields(lines, v, where="field"):
    """Field lines -> [(name, value)], obs-fold unfolded (a violation)."""
    out = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            v.append("obs-fold (continuation line) in %s section" % where)
            if out:
                n, val = out[-1]
                out[-1] = (n, (val + b" " + line.strip(b" \t")).strip(b" \t"))
            continue
        c = line.find(b":")
        if c < 0:
            v.append("%s line without a colon: %r" % (where, line[:60]))
            continue
        name, value = line[:c], line[c + 1:]
        if not name:
            v.append("empty %s name" % where)
        elif any(ch not in TCHAR for ch in name):
            v.append("invalid %s name %r" % (where, name[:60]))
        _check_value(name, value, v, where)
        out.append((name.strip(b" \t"), value.strip(b" \t")))
    return out


def _head(buf, pos, v):
    """Returns (start line, field lines, position after the head)."""
    start = pos
    lines = []
    first = None
    while True:
        line, pos = _line(buf, pos, v)
        if pos - start > MAX_HEAD:
            raise Bad("head longer than %d bytes" % MAX_HEAD)
        if first is None:
            first = line
            continue
        if line == b"":
            return first, lines, pos
        lines.append(line)


def _framing_fields(m, v):
    """Content-Length and Transfer-Encoding per RFC 9110 8.6 / 9112 6."""
    cls = m.values("content-length")
    tes = m.values("transfer-encoding")
    cl = None
    if len(cls) > 1:
        v.append("%d Content-Length fields" % len(cls))
    for val in cls:
        if not val or any(ch not in b"0123456789" for ch in val):
            v.append("invalid Content-Length %r" % _d(val))
            elems = _list(val)
            if elems and all(e.isdigit() for e in elems) and len(set(int(e) for e in elems)) == 1:
                n = int(elems[0])
            else:
                raise Bad("unusable Content-Length %r" % _d(val))
        else:
            n = int(val)
        if cl is not None and n != cl:
            raise Bad("differing Content-Lengths")
        cl = n
    codings = []
    for val in tes:
        elems = _list(val)
        if not elems:
            v.append("empty Transfer-Encoding")
        codings += elems
    # a server SHOULD refuse a request with a coding it does not know (RFC
    # 9112 6.1: 501); passed on, a next hop that skips it reads the body
    # as requests. A response with one is read until close: no ambiguity.
    for c in codings:
        if c.lower() not in CODINGS and m.status is None:
            v.append("unknown transfer coding %r" % _d(c))
    chunked_last = bool(codings) and codings[-1].lower() == b"chunked"
    if sum(1 for c in codings if c.lower() == b"chunked") > 1:
        v.append("chunked applied more than once")
    if tes and cls:
        v.append("both Content-Length and Transfer-Encoding")
    if tes and m.version == b"HTTP/1.0":
        v.append("Transfer-Encoding in an HTTP/1.0 message")
    return cl, tes, chunked_last


def _chunked(buf, pos, m, v):
    """Decodes a chunked body at pos; returns the position after it."""
    body = []
    while True:
        line, pos = _line(buf, pos, v)
        i = 0
        while i < len(line) and line[i] in HEX:
            i += 1
        if i == 0:
            raise Bad("chunk-size line %r has no size" % line[:60])
        if i > 16:
            raise Bad("chunk size %r overflows" % line[:40])
        size = int(line[:i], 16)
        ext = line[i:]
        if ext and not _valid_ext(ext):
            v.append("invalid chunk-size line %r" % line[:60])
        if size == 0:
            break
        if len(buf) - pos < size + 2:
            raise NeedMore()
        body.append(buf[pos:pos + size])
        pos += size
        if buf[pos:pos + 2] != b"\r\n":
            if buf[pos:pos + 1] == b"\n":
                v.append("bare LF after chunk data")
                pos -= 1
            else:
                raise Bad("chunk data not followed by CRLF")
        pos += 2
    trailer_lines = []
    while True:
        line, pos = _line(buf, pos, v)
        if line == b"":
            break
        trailer_lines.append(line)
    m.trailers = _fields(trailer_lines, v, "trailer")
    for n, _ in m.trailers:
        if n.lower() in NOT_IN_TRAILERS:
            v.append("%r in a trailer section" % _d(n))
    m.body = b"".join(body)
    return pos


_TOKEN = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_QSTRING = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
_EXT_RE = re.compile(rb"^(?:[ \t]*;[ \t]*" + _TOKEN + rb"(?:[ \t]*=[ \t]*(?:" + _TOKEN + rb"|"
                     + _QSTRING + rb"))?)*\Z")


def _valid_ext(ext):
    """chunk-ext of RFC 9112 7.1.1 (BWS before ';' included)."""
    return _EXT_RE.match(ext) is not None


def parse_request(buf, pos=0, eof=False):
    """Parses one request at buf[pos:]. Returns (Msg, next position);
    raises NeedMore or Bad."""
    m = Msg()
    v = m.violations
    line, fields, p = _head(buf, pos, v)
    parts = line.split(b" ")
    if len(parts) != 3:
        ws = line.split()
        if len(ws) != 3:
            raise Bad("request line %r is not METHOD TARGET VERSION" % line[:80])
        v.append("request line %r not single-space separated" % line[:80])
        parts = ws
    m.method, m.target, m.version = parts
    if not m.method or any(ch not in TCHAR for ch in m.method):
        v.append("invalid method %r" % m.method[:40])
    if not m.target or any(not (0x21 <= ch <= 0x7e) for ch in m.target):
        v.append("invalid request target %r" % m.target[:80])
    if m.version not in (b"HTTP/1.0", b"HTTP/1.1"):
        v.append("version %r" % m.version[:20])
    m.headers = _fields(fields, v)
    hosts = m.values("host")
    if len(hosts) > 1:
        v.append("%d Host fields" % len(hosts))
    if not hosts and m.version == b"HTTP/1.1":
        v.append("HTTP/1.1 request without Host")
    for h in hosts:
        if not HOST_RE.match(h) or b"@" in h:
            v.append("invalid Host %r" % _d(h))
    t = m.target
    if t.lower().startswith(b"http://") or t.lower().startswith(b"https://"):
        auth = t.split(b"//", 1)[1].split(b"/", 1)[0].split(b"?", 1)[0]
        if b"@" in auth:
            v.append("userinfo in the target %r" % _d(t[:80]))
        if hosts and hosts[0].lower() != auth.lower():
            v.append("Host %r differs from the target's authority %r" % (_d(hosts[0]), _d(auth)))
    elif t == b"*":
        if m.method != b"OPTIONS":
            v.append("asterisk-form with %s" % _d(m.method))
    elif not t.startswith(b"/") and m.method != b"CONNECT":
        v.append("target %r in authority-form with %s" % (_d(t[:60]), _d(m.method)))
    cl, tes, chunked_last = _framing_fields(m, v)
    if tes:
        if not chunked_last:
            raise Bad("request Transfer-Encoding without chunked last")
        m.framing = "chunked"
        p = _chunked(buf, p, m, v)
    elif cl:
        m.framing = "length"
        if len(buf) - p < cl:
            raise NeedMore()
        m.body = buf[p:p + cl]
        p += cl
    m.complete = True
    m.raw = buf[pos:p]
    return m, p


def parse_response(buf, pos=0, eof=False, method=b"GET", client10=False):
    """Parses one response (a 1xx is one too) at buf[pos:] to a request
    with <method>. Returns (Msg, next position); raises NeedMore or Bad."""
    m = Msg()
    v = m.violations
    line, fields, p = _head(buf, pos, v)
    # the SP before an empty reason is often left out: harmless, tolerated
    mt = re.match(rb"^(HTTP/\d\.\d) (\d{3})(?: (.*))?\Z", line, re.S)
    if not mt:
        mt2 = re.match(rb"^(HTTP/\d\.\d)[ \t]+(\d{3})[ \t]*(.*)\Z", line, re.S)
        if not mt2:
            raise Bad("status line %r" % line[:80])
        v.append("status line %r not of the grammar" % line[:80])
        mt = mt2
    m.version, m.status, m.reason = mt.group(1), int(mt.group(2)), mt.group(3) or b""
    if m.version not in (b"HTTP/1.0", b"HTTP/1.1"):
        v.append("version %r" % _d(m.version))
    if not 100 <= m.status <= 599:
        v.append("status %d out of 100..599" % m.status)
    _check_value(b"reason", m.reason, v, "reason phrase")
    m.headers = _fields(fields, v)
    cl, tes, chunked_last = _framing_fields(m, v)
    if m.status < 200 or m.status == 204:
        if cl is not None:
            v.append("Content-Length in a %d response" % m.status)
        if tes:
            v.append("Transfer-Encoding in a %d response" % m.status)
    if client10:
        if tes:
            v.append("Transfer-Encoding sent to an HTTP/1.0 client")
        if m.status < 200:
            v.append("1xx sent to an HTTP/1.0 client")
    if method == b"HEAD" or m.status < 200 or m.status in (204, 304):
        pass
    elif tes and chunked_last:
        m.framing = "chunked"
        p = _chunked(buf, p, m, v)
    elif tes:
        m.framing = "close"
    elif cl is not None:
        m.framing = "length"
        if len(buf) - p < cl:
            raise NeedMore()
        m.body = buf[p:p + cl]
        p += cl
    else:
        m.framing = "close"
    if m.framing == "close":
        if not eof:
            raise NeedMore()
        m.body = buf[p:]
        p = len(buf)
    m.complete = True
    m.raw = buf[pos:p]
    return m, p


def parse_stream(buf, eof, kind, methods=(), client10=False):
    """Splits a whole connection's bytes. Returns (complete messages, tail)
    where tail is '' (nothing left), 'incomplete' (a message begun) or
    'bad: why' (bytes a strict parser cannot frame)."""
    msgs, pos, k = [], 0, 0
    while pos < len(buf):
        try:
            if kind == "req":
                m, pos = parse_request(buf, pos, eof)
            else:
                meth = methods[k] if k < len(methods) else b"GET"
                m, pos = parse_response(buf, pos, eof, meth, client10)
                if m.status >= 200 or m.status == 101:
                    k += 1
        except NeedMore:
            return msgs, "incomplete"
        except Bad as e:
            return msgs, "bad: %s (at %r)" % (e, buf[pos:pos + 60])
        msgs.append(m)
        if (kind == "resp" and m.status == 101) or (kind == "req" and m.has("upgrade")):
            break   # a tunnel may follow: no more HTTP to read
    return msgs, ""


# ---- rows and expectations ------------------------------------------------

class Exp:
    """One allowed outcome of a row.
    resp: one set of allowed statuses per final response, exactly that many
          (None: not checked);
    closed: the client connection is closed at the end (True), still open
          (False), either (None);
    up: how many complete requests the upstream received (None: any);
    up_targets: their targets, in order;
    up_bytes: the most bytes the upstream may receive in all (0: nothing);
    up_closed: every upstream connection was closed by the proxy;
    bodies: the decoded bodies of the final responses;
    truncated: the client got a response that never completed (and a close);
    check: a function(Outcome) that raises AssertionError."""

    def __init__(self, label, resp=None, closed=None, up=None, up_targets=None,
                 up_bytes=None, up_closed=None, bodies=None, truncated=None, check=None):
        self.label = label
        self.resp, self.closed, self.up, self.up_targets = resp, closed, up, up_targets
        self.up_bytes, self.up_closed, self.bodies = up_bytes, up_closed, bodies
        self.truncated, self.check = truncated, check

    def errors(self, o):
        e = []
        finals = o.finals
        if self.resp is not None:
            got = [m.status for m in finals]
            ok = len(got) == len(self.resp) and all(
                s in (want if isinstance(want, (set, tuple, list, frozenset)) else {want})
                for s, want in zip(got, self.resp))
            if not ok:
                e.append("client got responses %s, allowed %s" % (got, _fmt_resp(self.resp)))
        if self.closed is True and not o.closed:
            e.append("client connection still open %.1fs after the last response" % CLOSE_WAIT)
        if self.closed is False and o.closed:
            e.append("client connection closed")
        if self.bodies is not None:
            got = [m.body for m in finals]
            if got != list(self.bodies):
                e.append("response bodies %r, expected %r" % (got, list(self.bodies)))
        if self.truncated is not None:
            trunc = o.client_tail == "incomplete" and o.closed
            if trunc != self.truncated:
                e.append("client %s a truncated response" % ("did not get" if self.truncated else "got"))
        reqs = o.up_requests
        if self.up is not None and len(reqs) != self.up:
            e.append("upstream received %d requests, expected %d" % (len(reqs), self.up))
        if self.up_targets is not None:
            got = [r.target for r in reqs]
            if got != list(self.up_targets):
                e.append("upstream received targets %r, expected %r" % (got, list(self.up_targets)))
        if self.up_bytes is not None and o.up_nbytes > self.up_bytes:
            e.append("upstream received %d bytes, at most %d allowed" % (o.up_nbytes, self.up_bytes))
        if self.up_closed and not all(c.gone for c in o.up):
            e.append("an upstream connection was left open")
        if self.check:
            try:
                self.check(o)
            except AssertionError as x:
                e.append(str(x) or "check failed")
            except (IndexError, AttributeError, TypeError) as x:
                if not e:   # a check that assumed what already failed
                    e.append("check failed: %r" % x)
        return e


def _fmt_resp(resp):
    return [sorted(r) if isinstance(r, (set, tuple, list, frozenset)) else r for r in resp]


def refused(*codes, label=None):
    """Answered by the proxy with one of <codes>, the connection closed, and
    not one byte sent upstream (so nothing pipelined behind it is served)."""
    codes = codes or (400,)
    return Exp(label or "refused %s" % "/".join(map(str, codes)), resp=[set(codes)],
               closed=True, up=0, up_bytes=0)


def served(*targets, label="forwarded", closed=False, status=200, check=None, up_closed=None):
    """Each request forwarded once, in order, each answered by the upstream."""
    return Exp(label, resp=[{status}] * len(targets), closed=closed, up=len(targets),
               up_targets=[t.encode() if isinstance(t, str) else t for t in targets],
               bodies=[b"ok " + (t.encode() if isinstance(t, str) else t) for t in targets],
               check=check, up_closed=up_closed)


def aborted(*codes, label=None):
    """A body found bad after its head went upstream: the client gets one of
    <codes> or a bare close, the upstream gets no complete request and its
    connection is closed (so the rest is never read as a request)."""
    codes = codes or (400,)
    return [Exp(label or "aborted with %s" % "/".join(map(str, codes)), resp=[set(codes)],
                closed=True, up=0, up_closed=True),
            Exp(label or "aborted by a close", resp=[], closed=True, up=0, up_closed=True)]


class Row:
    """send: bytes, or a list of steps: bytes (sent), ("sleep", s),
    ("wait", n) (until n final responses), ("wait1xx",) (until an interim or
    a final response), ("shut",) (half-close).
    up: a list of scripts, one per upstream connection in order of accept
    (connections past the list are served by the default script); a script
    is a list of steps: ("req",) (read one whole request), ("head",) (wait
    until the next request's head is whole; a later ("req",) reads it with
    its body), ("send", bytes), ("sleep", s), ("close",), ("serve",) (answer
    every further request with 200 'ok TARGET'). A script that ends keeps
    the connection open and records what arrives.
    expect: an Exp or a list of allowed Exps.
    methods: the client's request methods in order (for HEAD framing).
    client10: the client speaks HTTP/1.0.
    allow_up / allow_client: substrings of strict-parser violations this row
    tolerates on that side (where the RFC lets a proxy forward them)."""

    def __init__(self, name, send, expect, up=None, methods=(), client10=False,
                 allow_up=(), allow_client=(), why=""):
        self.name = name
        self.send = send if isinstance(send, list) else [send]
        self.expect = expect if isinstance(expect, list) else [expect]
        self.up = up or []
        self.methods = [m.encode() if isinstance(m, str) else m for m in methods]
        self.client10 = client10
        self.allow_up, self.allow_client = allow_up, allow_client
        self.why = why
        self.port = None
        self.upstream = None


# ---- the scripted upstream -------------------------------------------------

def _ok(target):
    body = b"ok " + target
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)


class UpConn:
    def __init__(self, sock, script):
        self.sock = sock
        self.script = script
        self.raw = b""
        self.pos = 0               # parsed up to here by the script
        self.eof = False
        self.closed_by_us = False
        self.reqs = []             # what the script read (lenient)
        self.lock = threading.Lock()

    @property
    def gone(self):
        """The connection is closed, by the proxy or by the script."""
        return self.eof or self.closed_by_us

    def _fill(self, deadline, stop):
        """Reads what is there; False at EOF, error or deadline."""
        while time.time() < deadline and not stop.is_set():
            try:
                d = self.sock.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                self.eof = True
                return False
            if not d:
                self.eof = True
                return False
            with self.lock:
                self.raw += d
            return True
        return False

    def _read_req(self, stop, head_only=False):
        deadline = time.time() + STEP_WAIT
        while True:
            try:
                if head_only:
                    # the whole head is there; a later ("req",) reads
                    # the same request again, with its body
                    line, _, _ = _head(self.raw, self.pos, [])
                    m = Msg()
                    parts = line.split()
                    m.target = parts[1] if len(parts) > 1 else b""
                    return m
                m, p = parse_request(self.raw, self.pos)
                self.pos = p
                self.reqs.append(m)
                return m
            except NeedMore:
                if self.eof or not self._fill(deadline, stop):
                    return None
            except Bad:
                # unframeable: keep recording until the proxy gives up
                while not self.eof and self._fill(deadline, stop):
                    pass
                return None

    def run(self, stop):
        self.sock.settimeout(0.05)
        script = list(self.script)
        try:
            for step in script:
                if stop.is_set():
                    return
                op = step[0]
                if op in ("req", "head"):
                    if self._read_req(stop, op == "head") is None:
                        break
                elif op == "send":
                    self.sock.sendall(step[1])
                elif op == "sleep":
                    stop.wait(step[1] * SLOW)
                elif op == "close":
                    self.closed_by_us = True
                    self.sock.close()
                    return
                elif op == "shut":
                    self.sock.shutdown(socket.SHUT_WR)
                elif op == "serve":
                    while not stop.is_set():
                        m = self._read_req(stop)
                        if m is None:
                            break
                        self.sock.sendall(_ok(m.target))
            # the script is over: keep recording until EOF or the row ends
            while not self.eof and not stop.is_set():
                self._fill(time.time() + 0.2, stop)
        except OSError:
            self.eof = True


class Upstream:
    """A listening socket whose n-th accepted connection runs script n."""

    def __init__(self):
        self.ls = socket.socket()
        self.ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.ls.bind(("127.0.0.1", 0))
        self.ls.listen(64)
        self.port = self.ls.getsockname()[1]
        self.addr = "127.0.0.1:%d" % self.port
        self.conns = []
        self.threads = []
        self.stop = threading.Event()
        self.scripts = []

    def start(self, scripts):
        self.scripts = scripts
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self.threads.append(t)

    def _accept(self):
        self.ls.settimeout(0.05)
        while not self.stop.is_set():
            try:
                s, _ = self.ls.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            i = len(self.conns)
            script = self.scripts[i] if i < len(self.scripts) else [("serve",)]
            c = UpConn(s, script)
            self.conns.append(c)
            t = threading.Thread(target=c.run, args=(self.stop,), daemon=True)
            t.start()
            self.threads.append(t)

    def finish(self):
        self.stop.set()
        for t in self.threads:
            t.join(2)
        for c in self.conns:
            try:
                c.sock.close()
            except OSError:
                pass
        self.ls.close()


# ---- the raw client ---------------------------------------------------------

class Outcome:
    """What both sides saw in one row."""

    def __init__(self):
        self.client_raw = b""
        self.client_msgs = []
        self.client_tail = ""
        self.closed = False
        self.reset = False
        self.send_error = None
        self.up = []
        self.up_requests = []
        self.up_tails = []
        self.up_nbytes = 0

    @property
    def finals(self):
        return [m for m in self.client_msgs if m.status >= 200 or m.status == 101]

    @property
    def interims(self):
        return [m for m in self.client_msgs if m.status < 200 and m.status != 101]


def _client(row, o):
    s = socket.create_connection(("127.0.0.1", row.port), 5 * SLOW)
    s.settimeout(0.05)

    def parse():
        o.client_msgs, o.client_tail = parse_stream(o.client_raw, o.closed, "resp",
                                                    row.methods, row.client10)

    def pump(until):
        """Reads until until() or EOF or RESP_WAIT without data."""
        last = time.time()
        while not o.closed:
            parse()
            if until():
                return True
            if time.time() - last > RESP_WAIT:
                return False
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                o.closed = o.reset = True
                break
            if not d:
                o.closed = True
                break
            o.client_raw += d
            last = time.time()
        parse()
        return until()

    try:
        for step in row.send:
            if isinstance(step, (bytes, bytearray)):
                if o.send_error:
                    continue
                try:
                    s.sendall(step)
                except OSError as e:
                    o.send_error = repr(e)
            elif step[0] == "sleep":
                time.sleep(step[1] * SLOW)
            elif step[0] == "wait":
                n = step[1]
                pump(lambda: len(o.finals) >= n)
            elif step[0] == "wait1xx":
                pump(lambda: len(o.client_msgs) >= 1)
            elif step[0] == "shut":
                s.shutdown(socket.SHUT_WR)
        need = max((len(e.resp) if e.resp is not None else 1) for e in row.expect)
        must_close = all(e.closed is True for e in row.expect)
        last = time.time()
        while not o.closed:
            parse()
            have = len(o.finals) >= need and o.client_tail == ""
            wait = (CLOSE_WAIT if must_close else QUIET) if have else RESP_WAIT
            if time.time() - last > wait:
                break
            try:
                d = s.recv(65536)
            except socket.timeout:
                continue
            except ConnectionResetError:
                o.closed = o.reset = True
                break
            if not d:
                o.closed = True
                break
            o.client_raw += d
            last = time.time()
        parse()
    finally:
        s.close()


# ---- checking one row -------------------------------------------------------

def _generic(row, o):
    """The invariants every row must keep, whatever it expects."""
    e = []
    if b"SPOOFED" in o.client_raw:
        e.append("the client got bytes the upstream sent after the end of a message "
                 "(a response meant for nobody reached a client)")
    for m in o.client_msgs:
        for v in m.violations:
            if not any(a in v for a in row.allow_client):
                e.append("client got a response with %s" % v)
    if o.client_tail.startswith("bad"):
        e.append("client got bytes that are not a response: %s" % o.client_tail)
    elif o.client_tail == "incomplete" and not o.closed:
        e.append("client got an incomplete response on an open connection")
    for i, m in enumerate(o.finals):
        if m.complete and any(v.lower() == b"close" for c in m.values("connection")
                              for v in _list(c)) and i + 1 < len(o.finals):
            e.append("a response followed one that said Connection: close")
    for c, (msgs, tail) in zip(o.up, o.up_tails):
        for m in msgs:
            for v in m.violations:
                if not any(a in v for a in row.allow_up):
                    e.append("upstream got a request with %s" % v)
        if tail.startswith("bad"):
            e.append("upstream got bytes that are not a request: %s" % tail)
        elif tail == "incomplete" and not c.gone:
            e.append("upstream connection holding an incomplete request left open")
    return e


def _describe(o):
    lines = ["    client got: %s%s%s" % (
        [m.short() for m in o.client_msgs] or "nothing",
        ", closed" if o.closed else ", open", " (reset)" if o.reset else "")]
    if o.client_tail:
        lines.append("    client stream tail: %s" % o.client_tail)
    if o.send_error:
        lines.append("    client could not send everything: %s" % o.send_error)
    lines.append("    client bytes: %r" % o.client_raw[:600])
    if not o.up:
        lines.append("    upstream: no connection")
    for i, (c, (msgs, tail)) in enumerate(zip(o.up, o.up_tails)):
        lines.append("    upstream conn %d (%s): %s%s bytes: %r" % (
            i, "closed by proxy" if c.eof else "closed by upstream" if c.closed_by_us else "open",
            [m.short() for m in msgs], (" tail " + tail) if tail else "", c.raw[:600]))
    return "\n".join(lines)


def run_row(row):
    o = Outcome()
    up = row.upstream
    up.start(row.up)
    try:
        _client(row, o)
        time.sleep(0.1 * SLOW)   # let anything forwarded late arrive
        # wait for the proxy to close upstream connections it must close
        deadline = time.time() + UP_CLOSE_WAIT
        want_closed = all(e.up_closed for e in row.expect)
        while time.time() < deadline:
            pending = []
            for c in up.conns:
                if c.gone:
                    continue
                _, tail = parse_stream(c.raw, False, "req")
                if tail == "incomplete" or want_closed:
                    pending.append(c)
            if not pending:
                break
            time.sleep(0.05)
    finally:
        up.finish()
    o.up = list(up.conns)
    for c in o.up:
        o.up_nbytes += len(c.raw)
        msgs, tail = parse_stream(c.raw, c.eof, "req")
        o.up_tails.append((msgs, tail))
        o.up_requests += msgs
    errs = _generic(row, o)
    alts = []
    for ex in row.expect:
        ee = ex.errors(o)
        if not ee:
            alts = None
            break
        alts.append((ex.label, ee))
    if alts:
        for label, ee in alts:
            errs.append("not '%s': %s" % (label, "; ".join(ee)))
    return errs, o


# ---- the proxy under test ----------------------------------------------------

def _sec(x):
    return "%dms" % int(x * 1000)


class CanarydTarget:
    name = "canaryd"

    def start(self, rows):
        docs = []
        for i, r in enumerate(rows):
            docs.append(canary_yaml(
                "adv%d" % i, "127.0.0.1:%d" % r.port, [r.upstream.addr], interval="1h",
                extra_spec="  timeouts: {connect: 2s, response: %s, clientHead: %s}\n"
                           "  outlierDetection: {consecutiveErrors: 0}\n"
                           % (_sec(RESPONSE_TIMEOUT), _sec(HEAD_TIMEOUT))))
        self.d = Canaryd("---\n".join(docs))

    def alive(self):
        return self.d.alive()

    def output(self):
        return self.d.output()

    def stop(self):
        self.d.stop()


class HaproxyTarget:
    name = "haproxy"

    def start(self, rows):
        d = tmpdir()
        cfg = ["global", "  maxconn 2000", "defaults", "  mode http",
               "  timeout connect 2s", "  timeout client 30s",
               "  timeout server %s" % _sec(RESPONSE_TIMEOUT),
               "  timeout http-request %s" % _sec(HEAD_TIMEOUT),
               "  option http-keep-alive"]
        for i, r in enumerate(rows):
            cfg += ["frontend f%d" % i, "  bind 127.0.0.1:%d" % r.port, "  default_backend b%d" % i,
                    "backend b%d" % i, "  server s %s" % r.upstream.addr]
        path = os.path.join(d, "haproxy.cfg")
        with open(path, "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.p = Proc(["haproxy", "-db", "-f", path], "haproxy")
        _wait_ports(rows, self.p)

    def alive(self):
        return self.p.alive()

    def output(self):
        return self.p.output()

    def stop(self):
        self.p.stop()


class NginxTarget:
    name = "nginx"

    def start(self, rows):
        d = tmpdir()
        cfg = ["worker_processes 1;", "daemon off;", "pid %s/nginx.pid;" % d,
               "error_log %s/error.log;" % d, "events { worker_connections 4096; }", "http {",
               "  access_log off;", "  client_body_temp_path %s/b;" % d,
               "  proxy_temp_path %s/p;" % d, "  fastcgi_temp_path %s/f;" % d,
               "  uwsgi_temp_path %s/u;" % d, "  scgi_temp_path %s/s;" % d,
               "  client_header_timeout %s;" % _sec(HEAD_TIMEOUT),
               "  proxy_read_timeout %s;" % _sec(RESPONSE_TIMEOUT)]
        # $host: the request's Host, or the absolute target's authority,
        # or server_name for an HTTP/1.0 request without one
        for i, r in enumerate(rows):
            cfg += ["  upstream u%d { server %s; keepalive 4; }" % (i, r.upstream.addr),
                    "  server { listen 127.0.0.1:%d; server_name x; location / { proxy_pass http://u%d; "
                    "proxy_http_version 1.1; proxy_set_header Connection \"\"; "
                    "proxy_set_header Host $host; "
                    "proxy_request_buffering off; proxy_buffering off; } }" % (r.port, i)]
        cfg.append("}")
        path = os.path.join(d, "nginx.conf")
        with open(path, "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.p = Proc(["nginx", "-p", d, "-c", path, "-e", "stderr"], "nginx")
        _wait_ports(rows, self.p)

    def alive(self):
        return self.p.alive()

    def output(self):
        return self.p.output()

    def stop(self):
        self.p.stop()


def _wait_ports(rows, p):
    end = time.time() + 10 * SLOW
    for r in rows:
        while time.time() < end:
            if not p.alive():
                raise AssertionError("%s exited:\n%s" % (p.name, p.output()))
            try:
                socket.create_connection(("127.0.0.1", r.port), 0.2).close()
                break
            except OSError:
                time.sleep(0.05)


# ---- the runner ----------------------------------------------------------------

def run_rows(rows):
    """Runs the rows (in parallel, at most PAR at once) against one proxy
    process, prints 'PASS name (Ns)' / 'FAIL name' per row in row order, one
    last row for the proxy's survival and sanitizer log, and the closing
    'N passed, N failed' line. Returns the exit status."""
    only = os.environ.get("CANARYD_TEST_ONLY")
    if only:
        rows = [r for r in rows if only in r.name]
    names = [r.name for r in rows]
    dup = {n for n in names if names.count(n) > 1}
    assert not dup, "duplicate row names %s" % dup
    # hold every listen port until the proxy starts: ports picked one by
    # one and released at once could be handed out twice (free_port hands
    # out each of its range's ports once; the kernel's could come back)
    held = []
    for r in rows:
        r.upstream = Upstream()
        if PORT_BASE:
            r.port = free_port()
            continue
        h = socket.socket()
        h.bind(("127.0.0.1", 0))
        r.port = h.getsockname()[1]
        held.append(h)
    for h in held:
        h.close()
    target = {"canaryd": CanarydTarget, "haproxy": HaproxyTarget,
              "nginx": NginxTarget}[TARGET]()
    t0 = time.time()
    results = {}
    passed = failed = 0
    try:
        target.start(rows)

        def one(row):
            t = time.time()
            box = {}

            def body():
                try:
                    box["r"] = run_row(row)
                except Exception:  # noqa: BLE001 - a broken row is a failed row
                    box["r"] = (["row raised:\n" + traceback.format_exc()], None)

            th = threading.Thread(target=body, daemon=True)
            th.start()
            th.join(ROW_LIMIT)
            if th.is_alive():
                row.upstream.stop.set()
                box["r"] = (["row took longer than %ds" % ROW_LIMIT], None)
            errs, o = box["r"]
            if not target.alive():
                errs = ["%s is not running any more" % target.name] + errs
            results[row.name] = (errs, o, time.time() - t)

        with ThreadPoolExecutor(max_workers=PAR) as ex:
            list(ex.map(one, rows))
    finally:
        alive = False
        out = ""
        try:
            alive = target.alive()
            target.stop()
            out = target.output()
        except Exception:  # noqa: BLE001
            pass
    for r in rows:
        errs, o, dt = results.get(r.name, (["not run"], None, 0))
        if not errs:
            passed += 1
            print("PASS %s (%.1fs)" % (r.name, dt), flush=True)
            continue
        failed += 1
        print("FAIL %s (%.1fs)" % (r.name, dt), flush=True)
        if r.why:
            print("    row: %s" % r.why)
        for e in errs:
            print("  - %s" % e)
        if o is not None:
            print(_describe(o), flush=True)
    reps = sanitizer_reports(out)
    name = "%s_survived_every_row_without_a_sanitizer_report" % target.name
    dt = time.time() - t0
    if alive and not reps:
        passed += 1
        print("PASS %s (%.1fs)" % (name, dt), flush=True)
    else:
        failed += 1
        print("FAIL %s (%.1fs)" % (name, dt), flush=True)
        print("  - %s\n%s" % ("exited early" if not alive else "sanitizer report",
                              "\n".join(reps[:5]) or out[-3000:]), flush=True)
    cleanup()
    print("%d passed, %d failed" % (passed, failed), flush=True)
    return 1 if failed else 0
