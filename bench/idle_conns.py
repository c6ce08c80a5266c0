#!/usr/bin/env python3
"""bench/idle_conns.py - hold many idle keep-alive HTTP connections open.

    python3 bench/idle_conns.py PORT [--count N] [--host 127.0.0.1]
        [--parallel P] [--open-timeout S] [--hold S]

Opens N (10000) TCP connections to HOST:PORT, at most P (256) of them
connecting or waiting for an answer at a time (so the server's listen
backlog never overflows), sends one `GET / HTTP/1.1` on each and reads its
whole answer. Connections that got a 2xx answer are kept open, idle. When
all are done, or after --open-timeout seconds (60), it prints one line

    IDLE ready requested=N opened=O ok=K failed=F seconds=T

on stdout and flushes it; the caller then measures whatever it wants. It
holds the connections until SIGTERM or SIGINT, or at most --hold seconds
(120), watching them meanwhile; on the way out it prints

    IDLE done held=H closed_by_peer=C

(C: idle connections the server closed during the hold) and exits 0, or 1
when no connection got an answer. Only the standard library is used.
"""

import argparse
import errno
import resource
import selectors
import signal
import socket
import sys
import time

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: canaryd-bench-idle\r\n\r\n"
MAX_ANSWER = 64 * 1024  # an answer bigger than this is a failure, not a hang


def raise_nofile(want):
    """Raises the soft open-files limit towards want (never above the hard
    limit); returns the soft limit in force afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft


def answer_complete(data):
    """Returns (done, ok) for the bytes of one HTTP answer read so far:
    done once the head and the whole body (Content-Length or chunked) are
    in, ok when the status is 2xx."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return False, False
    head = data[:end].decode("latin-1").split("\r\n")
    parts = head[0].split(" ")
    ok = len(parts) >= 2 and parts[1].startswith("2")
    body = data[end + 4:]
    length = None
    chunked = False
    for line in head[1:]:
        name, _, value = line.partition(":")
        name = name.strip().lower()
        if name == "content-length":
            try:
                length = int(value.strip())
            except ValueError:
                return True, False
        elif name == "transfer-encoding" and "chunked" in value.lower():
            chunked = True
    if chunked:
        return body.endswith(b"0\r\n\r\n"), ok
    if length is None:
        # no framing: a keep-alive answer without a body (204, 304)
        return True, ok
    return len(body) >= length, ok


class Conn:
    """One client connection: connecting, then sending, then reading."""

    __slots__ = ("sock", "state", "buf", "sent")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connect"
        self.buf = b""
        self.sent = 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("port", type=int)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--count", type=int, default=10000)
    ap.add_argument("--parallel", type=int, default=256)
    ap.add_argument("--open-timeout", type=float, default=60.0)
    ap.add_argument("--hold", type=float, default=120.0)
    args = ap.parse_args()
    if args.host not in ("127.0.0.1", "::1", "localhost"):
        ap.error("only loopback addresses are allowed")

    limit = raise_nofile(args.count + 64)
    count = args.count
    if limit < count + 16:
        count = max(0, limit - 16)
        print(f"idle_conns: open-files limit is {limit}: opening {count} connections, "
              f"not {args.count}", file=sys.stderr)

    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)

    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    sel = selectors.DefaultSelector()
    held = []        # sockets with their answer, kept open
    started = 0      # connections begun
    in_flight = 0
    opened = 0       # connect() succeeded
    failed = 0
    t0 = time.monotonic()
    deadline = t0 + args.open_timeout

    def fail(c):
        nonlocal failed, in_flight
        failed += 1
        in_flight -= 1
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()

    while (started < count or in_flight > 0) and not stop["now"]:
        now = time.monotonic()
        if now >= deadline:
            break
        while started < count and in_flight < args.parallel:
            s = socket.socket(family, socket.SOCK_STREAM)
            s.setblocking(False)
            started += 1
            try:
                rc = s.connect_ex((args.host, args.port))
            except OSError:
                rc = errno.EIO
            if rc not in (0, errno.EINPROGRESS):
                failed += 1
                s.close()
                continue
            c = Conn(s)
            in_flight += 1
            sel.register(s, selectors.EVENT_WRITE, c)
        for key, events in sel.select(timeout=min(0.5, max(0.0, deadline - now))):
            c = key.data
            if c.state == "connect":
                err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err != 0:
                    fail(c)
                    continue
                opened += 1
                c.state = "send"
            if c.state == "send":
                try:
                    c.sent += c.sock.send(REQUEST[c.sent:])
                except BlockingIOError:
                    continue
                except OSError:
                    fail(c)
                    continue
                if c.sent == len(REQUEST):
                    c.state = "read"
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                continue
            if c.state == "read":
                try:
                    chunk = c.sock.recv(16384)
                except BlockingIOError:
                    continue
                except OSError:
                    fail(c)
                    continue
                if not chunk:
                    fail(c)
                    continue
                c.buf += chunk
                done, ok = answer_complete(c.buf)
                if not done and len(c.buf) <= MAX_ANSWER:
                    continue
                if not ok or not done:
                    fail(c)
                    continue
                sel.unregister(c.sock)
                in_flight -= 1
                held.append(c.sock)

    # whatever is still half-way (timeout or stop) counts as failed
    for key in list(sel.get_map().values()):
        sel.unregister(key.fileobj)
        key.fileobj.close()
        failed += 1
    seconds = time.monotonic() - t0
    print(f"IDLE ready requested={count} opened={opened} ok={len(held)} failed={failed} "
          f"seconds={seconds:.1f}", flush=True)

    # hold: a readable idle connection means the server closed it (or sent
    # something unasked); either way it no longer counts as held
    for s in held:
        sel.register(s, selectors.EVENT_READ, None)
    closed = 0
    hold_end = time.monotonic() + args.hold
    while not stop["now"] and time.monotonic() < hold_end:
        for key, events in sel.select(timeout=0.2):
            sel.unregister(key.fileobj)
            key.fileobj.close()
            closed += 1
    for key in list(sel.get_map().values()):
        key.fileobj.close()
    print(f"IDLE done held={len(held) - closed} closed_by_peer={closed}", flush=True)
    return 0 if held else 1


if __name__ == "__main__":
    sys.exit(main())
