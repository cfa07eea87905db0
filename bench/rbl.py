"""The DNSBL server of the dnsbl variants: the e2e suite's Rbldnsd
(spec/e2e/dnsserver.py, a real rbldnsd) on a fixed address and port.

Postfix asks the system resolver (res_query), which reads
/etc/resolv.conf and speaks to port 53 only, so rbldnsd listens on
HOST:53 with HOST a loopback address of its own (127.9.9.53 by default:
nothing else uses it, and the machine's resolver, 127.0.0.1 and port 53 on
other addresses stay untouched). The bench's Postfix instance for the
dnsbl row runs in a private mount namespace where a bind mount puts a
resolv.conf naming HOST over /etc/resolv.conf (postfix.py: resolv_conf);
the real /etc/resolv.conf is never written. mxgate is pointed at it with
dns = { servers = "HOST:53" }.

Zones (the client, 127.0.0.1, is listed in none: every check does the
look-up and finds nothing):
  zen.test   127.0.0.2 listed; SOA minimum 60 s, so NXDOMAIN answers are
             cached 60 s (mxgate: TTL cache; Postfix: smtpd's per-process
             RBL cache, which keeps an answer for the process's life).
  zen0.test  the same data with TTL 0 and SOA minimum 0: mxgate caches
             nothing, every dns() call is a round trip to rbldnsd.

rbldnsd writes per-zone query counters to a stats file every second
(-c 1 -s FILE): queries() reads them.
"""
import os
import shutil
import socket
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(REPO, "spec", "e2e"))
import dnsserver  # noqa: E402

HOST = "127.9.9.53"

ZONES = {
    "zen.test": ("ip4set", "$SOA 60 ns.zen.test hostmaster.zen.test 1 600 300 86400 60\n"
                 "127.0.0.2\n"),
    "zen0.test": ("ip4set", "$TTL 0\n"
                  "$SOA 0 ns.zen0.test hostmaster.zen0.test 1 600 300 86400 0\n"
                  "127.0.0.2\n"),
}


def udp_free(host, port):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


class BenchRbldnsd(dnsserver.Rbldnsd):
    """dnsserver.Rbldnsd on host:port (not a random port), with a stats file."""

    def __init__(self, zones=None, host=HOST, port=53):
        super().__init__(zones or ZONES)
        self.host, self.fixed_port = host, port
        self.stats = None

    def _prepare(self):
        self.port = self.fixed_port
        super()._prepare()
        self.stats = os.path.join(self.dir, "stats")
        open(self.stats, "w").close()
        if os.geteuid() == 0:
            try:
                shutil.chown(self.stats, "rbldns")
            except (LookupError, OSError):
                pass

    def _command(self):
        # As the e2e class, plus: a fixed address, -c 1 (stats every second).
        cmd = ["rbldnsd", "-n", "-q", "-c", "1", "-4",
               "-b", "%s/%d" % (self.host, self.port), "-w", self.dir, "-s", self.stats]
        if os.geteuid() == 0:
            cmd += ["-u", "rbldns"]
        return cmd + self.specs

    def _probe(self):
        zone = next(iter(self.zones))
        return dnsserver.query(self.port, zone, "A", timeout=0.2, host=self.host) is not None

    @property
    def address(self):
        return "%s:%d" % (self.host, self.port)

    def queries(self):
        """(unix time of the counters, {zone: queries answered}), or (0, {})."""
        try:
            with open(self.stats) as f:
                lines = f.read().split("\n")
        except (OSError, TypeError):
            return 0, {}
        for line in reversed(lines):
            parts = line.split()
            if len(parts) < 2:
                continue
            out = {}
            for p in parts[1:]:
                f = p.split(":")
                if len(f) >= 2 and f[1].isdigit():
                    out[f[0]] = int(f[1])
            return int(parts[0]), out
        return 0, {}

    def queries_after(self, t, timeout=4.0):
        """The counters as written at least one second after time t."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            ts, q = self.queries()
            if ts >= t + 1:
                return q
            time.sleep(0.1)
        return None


def start(log, port=53, host=HOST):
    """A running BenchRbldnsd on host:port, or on a free 127.0.0.1 port when
    port 53 there is taken (then Postfix cannot be pointed at it: the second
    value says why)."""
    why = None
    if not shutil.which("rbldnsd"):
        raise RuntimeError("rbldnsd not installed (apt-get install rbldnsd)")
    if udp_free(host, port):
        srv = BenchRbldnsd(host=host, port=port)
        try:
            srv.start()
            return srv, None
        except RuntimeError as e:
            why = f"rbldnsd on {host}:{port} failed: {str(e)[-200:]}"
    else:
        why = f"UDP {host}:{port} is taken"
    log(f"{why}; rbldnsd on a free 127.0.0.1 port instead (mxgate rows only)")
    srv = BenchRbldnsd(host="127.0.0.1", port=dnsserver.free_port())
    srv.start()
    return srv, why
