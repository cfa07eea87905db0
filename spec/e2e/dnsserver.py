"""Real DNS servers for e2e tests: NSD for ordinary zones, rbldnsd for DNSBLs.

Each instance runs in the foreground from its own temporary directory, on a
free loopback port (never 53), with its own config, and is killed on stop()
or at interpreter exit. start() returns once the server has answered a
query, so tests never sleep on a guess.

    with DnsServer({"example.test": ZONE_TEXT}) as addr:      # "127.0.0.1:PORT"
        ...
    with Rbldnsd({"zen.test": ("ip4set", "127.0.0.2\\n")}) as addr:
        ...

Also here: query(), a minimal stdlib DNS client used for readiness, and
Blackhole and CountingProxy, UDP endpoints that never answer and that count
what passes through.
"""

import atexit
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import threading
import time

START_TIMEOUT = 15.0
_live = set()


def _stop_all():
    for srv in list(_live):
        srv.stop()


atexit.register(_stop_all)


def free_port():
    """A port free for both UDP and TCP on 127.0.0.1 (NSD binds both)."""
    for _ in range(50):
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", 0))
            port = u.getsockname()[1]
            t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                t.bind(("127.0.0.1", port))
            except OSError:
                continue
            finally:
                t.close()
            return port
        finally:
            u.close()
    raise RuntimeError("no free port")


def encode_name(name):
    out = b""
    for label in name.rstrip(".").split("."):
        if label:
            out += bytes([len(label)]) + label.encode("ascii")
    return out + b"\0"


TYPES = {"A": 1, "NS": 2, "CNAME": 5, "SOA": 6, "PTR": 12, "MX": 15, "TXT": 16, "AAAA": 28}


def query(port, name, qtype="SOA", timeout=0.5, host="127.0.0.1"):
    """One UDP query; returns (rcode, ancount) or None on no answer."""
    qid = random.randrange(65536)
    msg = struct.pack(">HHHHHH", qid, 0, 1, 0, 0, 0)
    msg += encode_name(name) + struct.pack(">HH", TYPES[qtype], 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.settimeout(timeout)
        s.sendto(msg, (host, port))
        while True:
            data, _ = s.recvfrom(4096)
            if len(data) >= 12 and struct.unpack(">H", data[:2])[0] == qid:
                flags, _, ancount = struct.unpack(">HHH", data[2:8])
                return flags & 0x0F, ancount
    except (socket.timeout, ConnectionRefusedError):
        return None
    finally:
        s.close()


def parse_question(msg):
    """(qname lowercased, qtype) of a DNS message, or None if malformed."""
    off, labels = 12, []
    try:
        while msg[off] != 0:
            n = msg[off]
            if n & 0xC0:
                return None
            labels.append(msg[off + 1:off + 1 + n].decode("ascii", "replace"))
            off += 1 + n
        qtype = struct.unpack(">H", msg[off + 1:off + 3])[0]
    except (IndexError, struct.error):
        return None
    return ".".join(labels).lower(), qtype


class _Process:
    """A foreground server process in its own temp dir and process group."""

    name = "server"

    def __init__(self):
        self.dir = None
        self.proc = None
        self.port = None
        self.log = None

    def _command(self):
        raise NotImplementedError

    def _probe(self):
        raise NotImplementedError

    def _prepare(self):
        raise NotImplementedError

    def start(self):
        if self.proc is not None:
            return self.address
        self.dir = tempfile.mkdtemp(prefix="mxgate-%s-" % self.name)
        # rbldnsd drops root to its own user: it must read these files.
        os.chmod(self.dir, 0o755)
        last = ""
        for _ in range(3):
            self.port = free_port()
            self._prepare()
            self.log = open(os.path.join(self.dir, "output.log"), "wb")
            self.proc = subprocess.Popen(self._command(), stdin=subprocess.DEVNULL,
                                         stdout=self.log, stderr=subprocess.STDOUT,
                                         cwd=self.dir, start_new_session=True)
            _live.add(self)
            if self._wait_ready():
                return self.address
            last = self.output()
            self._kill()    # port taken meanwhile, or a bad zone: retry, then fail
        self.stop()
        raise RuntimeError("%s did not start:\n%s" % (self.name, last))

    def _wait_ready(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if self._probe():
                return True
        return False

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def output(self):
        if self.dir is None:
            return ""
        try:
            with open(os.path.join(self.dir, "output.log"), "rb") as f:
                return f.read().decode("utf-8", "replace")
        except OSError:
            return ""

    def _kill(self):
        proc, self.proc = self.proc, None
        if proc is not None and proc.poll() is None:
            # The group is the one start_new_session made for this child:
            # NSD's own xfrd and server processes go with it.
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()
        if self.log is not None:
            self.log.close()
            self.log = None

    def stop(self):
        self._kill()
        _live.discard(self)
        if self.dir is not None:
            shutil.rmtree(self.dir, ignore_errors=True)
            self.dir = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class DnsServer(_Process):
    """NSD serving the given zones: {"example.test": "zone file text"}."""

    name = "nsd"

    def __init__(self, zones):
        super().__init__()
        if not zones:
            raise ValueError("at least one zone")
        self.zones = dict(zones)

    def _prepare(self):
        d = self.dir
        conf = [
            "server:",
            "    ip-address: 127.0.0.1@%d" % self.port,
            "    port: %d" % self.port,
            "    do-ip6: no",
            '    username: ""',
            '    chroot: ""',
            '    database: ""',
            '    zonesdir: "%s"' % d,
            '    zonelistfile: "%s/zone.list"' % d,
            '    pidfile: "%s/nsd.pid"' % d,
            '    xfrdfile: "%s/xfrd.state"' % d,
            '    xfrdir: "%s"' % d,
            '    logfile: "%s/nsd.log"' % d,
            "    server-count: 1",
            "    verbosity: 1",
            "    hide-version: yes",
            "remote-control:",
            "    control-enable: no",
        ]
        for i, (zone, text) in enumerate(sorted(self.zones.items())):
            fname = "zone%d.zone" % i
            with open(os.path.join(d, fname), "w") as f:
                f.write(text if text.endswith("\n") else text + "\n")
            conf += ["zone:", "    name: %s" % zone, "    zonefile: %s" % fname]
        with open(os.path.join(d, "nsd.conf"), "w") as f:
            f.write("\n".join(conf) + "\n")

    def _command(self):
        return ["nsd", "-d", "-c", os.path.join(self.dir, "nsd.conf")]

    def _probe(self):
        # Every zone loaded: NSD answers SOA at each apex authoritatively.
        for zone in self.zones:
            r = query(self.port, zone, "SOA", timeout=0.2)
            if r is None or r[0] != 0 or r[1] < 1:
                return False
        return True


class Rbldnsd(_Process):
    """rbldnsd serving {"zen.test": ("ip4set", "data file text")}."""

    name = "rbldnsd"

    def __init__(self, zones):
        super().__init__()
        if not zones:
            raise ValueError("at least one zone")
        self.zones = dict(zones)

    def _prepare(self):
        self.specs = []
        for i, (zone, (dtype, text)) in enumerate(sorted(self.zones.items())):
            fname = "data%d" % i
            path = os.path.join(self.dir, fname)
            with open(path, "w") as f:
                f.write(text if text.endswith("\n") else text + "\n")
            os.chmod(path, 0o644)
            self.specs.append("%s:%s:%s" % (zone, dtype, fname))

    def _command(self):
        # -n foreground, -q quiet, -c 0 no reload polling, -w data directory.
        cmd = ["rbldnsd", "-n", "-q", "-c", "0", "-4",
               "-b", "127.0.0.1/%d" % self.port, "-w", self.dir]
        if os.geteuid() == 0:
            cmd += ["-u", "rbldns"]
        return cmd + self.specs

    def _probe(self):
        # Any answer at all: rbldnsd serves only once its data is loaded.
        zone = next(iter(self.zones))
        return query(self.port, zone, "A", timeout=0.2) is not None


class Blackhole:
    """A UDP port that reads queries and never answers."""

    def __init__(self):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.received = 0
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                self.sock.recvfrom(4096)
                self.received += 1
            except socket.timeout:
                continue
            except OSError:
                return

    def start(self):
        self._thread.start()
        return "127.0.0.1:%d" % self.sock.getsockname()[1]

    def stop(self):
        self._stop = True
        self._thread.join()
        self.sock.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class CountingProxy:
    """UDP relay in front of a server that counts queries by (name, type)."""

    def __init__(self, upstream):
        host, port = upstream.rsplit(":", 1)
        self.upstream = (host, int(port))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.up.connect(self.upstream)
        self.counts = {}
        self.clients = {}
        self._lock = threading.Lock()
        self._stop = False
        self._threads = [threading.Thread(target=self._down, daemon=True),
                         threading.Thread(target=self._back, daemon=True)]

    def _down(self):
        self.sock.settimeout(0.1)
        while not self._stop:
            try:
                msg, addr = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            q = parse_question(msg)
            with self._lock:
                if q is not None:
                    self.counts[q] = self.counts.get(q, 0) + 1
                self.clients[msg[:2]] = addr
            self.up.send(msg)

    def _back(self):
        self.up.settimeout(0.1)
        while not self._stop:
            try:
                msg = self.up.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self._lock:
                addr = self.clients.pop(msg[:2], None)
            if addr is not None:
                self.sock.sendto(msg, addr)

    def count(self, name, qtype):
        with self._lock:
            return self.counts.get((name.rstrip(".").lower(), TYPES[qtype]), 0)

    def start(self):
        for t in self._threads:
            t.start()
        return "127.0.0.1:%d" % self.sock.getsockname()[1]

    def stop(self):
        self._stop = True
        for t in self._threads:
            t.join()
        self.sock.close()
        self.up.close()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False
