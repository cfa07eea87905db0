#!/usr/bin/python3
"""Open N idle SMTP sessions (connect, read the 220 greeting, EHLO, read the
250 reply) and keep them open.  One thread, selectors, non-blocking sockets.

As a module: sess = open_idle("127.0.0.1", 2625, 1000); ...; sess.close()
Standalone:  bench/idle.py --port 2625 -n 1000 --hold 30
"""
import argparse
import errno
import resource
import selectors
import socket
import sys
import time


def raise_nofile(want=65536):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


class _Conn:
    __slots__ = ("sock", "state", "buf")

    def __init__(self, sock):
        self.sock = sock
        self.state = "connect"
        self.buf = b""


def _final_reply(buf):
    """(code, complete) for an SMTP reply at the start of buf."""
    while True:
        nl = buf.find(b"\n")
        if nl < 0:
            return None, False
        line = buf[:nl]
        buf = buf[nl + 1:]
        if len(line) >= 4 and line[3:4] == b"-":
            continue
        return line[:3], True


class IdleSessions:
    def __init__(self):
        self.socks = []      # sessions that reached "idle after EHLO"
        self.failed = 0
        self.errors = {}     # reason -> count
        self.elapsed = 0.0

    def _err(self, why):
        self.failed += 1
        self.errors[why] = self.errors.get(why, 0) + 1

    def close(self):
        for s in self.socks:
            try:
                s.close()
            except OSError:
                pass
        self.socks = []

    def alive_count(self):
        """Sessions the server has not closed (non-blocking peek)."""
        n = 0
        for s in self.socks:
            try:
                data = s.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
                if data:
                    n += 1   # server said something unsolicited; still open
            except BlockingIOError:
                n += 1
            except OSError:
                pass
        return n


def open_idle(host, port, n, ehlo="idle.bench.test", timeout=90.0,
              max_inflight=64):
    """Return IdleSessions with up to n sockets idle after EHLO.

    At most max_inflight sessions are in the connect/greeting/EHLO phase at
    once, so a server with a short listen backlog is not flooded with SYNs.
    """
    raise_nofile(n + 256)
    res = IdleSessions()
    sel = selectors.DefaultSelector()
    started = 0
    inflight = 0
    t0 = time.monotonic()
    deadline = t0 + timeout
    ehlo_line = f"EHLO {ehlo}\r\n".encode()

    def start_one():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        c = _Conn(s)
        err = s.connect_ex((host, port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            res._err(f"connect: {errno.errorcode.get(err, err)}")
            return False
        sel.register(s, selectors.EVENT_WRITE, c)
        return True

    def drop(c, why):
        nonlocal inflight
        try:
            sel.unregister(c.sock)
        except (KeyError, ValueError):
            pass
        c.sock.close()
        inflight -= 1
        res._err(why)

    while True:
        while inflight < max_inflight and started < n:
            started += 1
            if start_one():
                inflight += 1
        if inflight == 0:
            break
        now = time.monotonic()
        if now >= deadline:
            for key in list(sel.get_map().values()):
                drop(key.data, "timeout")
            break
        for key, _ in sel.select(timeout=min(1.0, deadline - now)):
            c = key.data
            s = c.sock
            if c.state == "connect":
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err:
                    drop(c, f"connect: {errno.errorcode.get(err, err)}")
                    continue
                c.state = "greeting"
                sel.modify(s, selectors.EVENT_READ, c)
                continue
            try:
                data = s.recv(4096)
            except BlockingIOError:
                continue
            except OSError as e:
                drop(c, f"{c.state}: {e.strerror}")
                continue
            if not data:
                drop(c, f"{c.state}: closed by server")
                continue
            c.buf += data
            code, done = _final_reply(c.buf)
            if not done:
                continue
            c.buf = b""
            if c.state == "greeting":
                if code != b"220":
                    drop(c, f"greeting {code.decode(errors='replace')}")
                    continue
                try:
                    s.send(ehlo_line)
                except OSError as e:
                    drop(c, f"send EHLO: {e.strerror}")
                    continue
                c.state = "ehlo"
            elif c.state == "ehlo":
                if code != b"250":
                    drop(c, f"EHLO {code.decode(errors='replace')}")
                    continue
                sel.unregister(s)
                inflight -= 1
                res.socks.append(s)
    sel.close()
    res.elapsed = time.monotonic() - t0
    return res


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("-n", type=int, default=1000)
    ap.add_argument("--hold", type=float, default=10.0,
                    help="seconds to keep the sessions open")
    a = ap.parse_args()
    if not a.host.startswith("127.") and a.host not in ("localhost", "::1"):
        sys.exit("refusing: this tool only targets loopback addresses")
    sess = open_idle(a.host, a.port, a.n)
    print(f"{len(sess.socks)} idle sessions in {sess.elapsed:.2f}s, "
          f"{sess.failed} failed {sess.errors or ''}", flush=True)
    try:
        time.sleep(a.hold)
        print(f"{sess.alive_count()} still open after {a.hold}s")
    finally:
        sess.close()


if __name__ == "__main__":
    main()
