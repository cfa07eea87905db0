"""Start a real mxgate on loopback for a test, talk to it, read its log and spool.

    class MyTest(MxgateTest):
        CONFIG = {"hosted_domains": '{ ["example.test"] = true }'}
        def test_x(self):
            with self.server.smtp() as c: ...

The binary comes from $MXGATE_BIN (spec/run.py runs the suite once with
bin/mxgate and once with the ASan/UBSan build); a sanitizer report in the
server's stderr fails the test that produced it.
"""
import json
import os
import pwd
import re
import resource
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

try:
    from . import leftovers
except ImportError:
    import leftovers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PYTHON = "/usr/bin/python3"     # Debian's, which has aiosmtpd


def ensure_user(name="mxgate"):
    """Root drops to `user` (default "mxgate"): make that account when it is
    missing, as .ci/deps.sh and the Debian package's postinst do."""
    if os.geteuid() != 0:
        return
    try:
        pwd.getpwnam(name)
        return
    except KeyError:
        pass
    for cmd in (["adduser", "--system", "--group", "--no-create-home", "--home", "/nonexistent", name],
                ["useradd", "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
                 "--shell", "/usr/sbin/nologin", name]):
        try:
            subprocess.run(cmd, capture_output=True, timeout=60)
        except FileNotFoundError:
            continue
        try:
            pwd.getpwnam(name)
            return
        except KeyError:
            pass
    raise AssertionError(f"cannot create the user {name!r} the server runs as")


def binary():
    return os.environ.get("MXGATE_BIN") or os.path.join(ROOT, "bin/mxgate")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(cond, timeout=10.0, what="condition"):
    """Polls cond() until it returns a true value; fails after timeout."""
    deadline = time.monotonic() + timeout
    delay = 0.005
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.1)


def lua_value(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return v                     # already Lua source
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {lua_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(v)


def parse_logfmt(line):
    out = {}
    for m in re.finditer(r'(\w+)=("(?:[^"\\]|\\.)*"|\S*)', line):
        v = m.group(2)
        if v.startswith('"'):
            v = v[1:-1].replace('\\"', '"').replace("\\\\", "\\")
        out[m.group(1)] = v
    return out


class Mxgate:
    """One mxgate server with its own config, state dir, ports and log."""

    def __init__(self, config=None, rules=None, workers=1, directions=("inbound", "outbound"), nofile=None):
        self.dir = tempfile.mkdtemp(prefix="mxgate-test-")
        os.chmod(self.dir, 0o755)     # workers run as "mxgate" when we are root
        ensure_user()
        self.ports = {d: free_port() for d in directions}
        self.port = self.ports.get("inbound") or next(iter(self.ports.values()))
        self.workers = workers
        self.config = {
            "hostname": '"mx.mxgate.test"',
            "hosted_domains": '{ ["example.test"] = { route = "127.0.0.1:1" } }',
            "relay_networks": '{ "127.0.0.0/8" }',
            "rules": "false",
            # Tests of the accept path read queue files: nothing takes them
            # away (and nothing asks real DNS) unless a test turns delivery on.
            "delivery": "{ enabled = false }",
        }
        self.config.update(config or {})
        self.rules = rules           # {"10-x.lua": "source"} or None
        self.nofile = nofile         # RLIMIT_NOFILE (soft = hard) for the server, or None
        self.proc = None
        self.stderr_path = os.path.join(self.dir, "stderr")
        self.log_path = os.path.join(self.dir, "mxgate.log")
        self.conf_path = os.path.join(self.dir, "mxgate.lua")
        self.env = {}                # extra environment (NOTIFY_SOCKET...)

    def write_config(self):
        listen = ", ".join(
            f'{{ address = "127.0.0.1", port = {p}, direction = "{d}" }}' for d, p in self.ports.items())
        # Workers run as "mxgate" when the suite runs as root, and the checkout
        # may sit where that user cannot read (CI clones anywhere): the server
        # reads its own copies of stdlib/ and of the default rules.d/.
        stdlib = os.path.join(self.dir, "stdlib")
        if not os.path.isdir(stdlib):
            shutil.copytree(os.path.join(ROOT, "stdlib"), stdlib)
        default_rules = '"%s"' % os.path.join(ROOT, "rules.d")
        if self.config.get("rules") == default_rules:
            copy = os.path.join(self.dir, "default-rules.d")
            if not os.path.isdir(copy):
                shutil.copytree(os.path.join(ROOT, "rules.d"), copy)
            self.config["rules"] = '"%s"' % copy
        lines = [f"listen = {{ {listen} }}", f'state_dir = "{self.dir}/var"',
                 f'log_file = "{self.log_path}"', f"workers = {self.workers}",
                 f'stdlib = "{stdlib}"']
        if self.rules is not None:
            rdir = os.path.join(self.dir, "rules.d")
            os.makedirs(rdir, exist_ok=True)
            for name, src in self.rules.items():
                with open(os.path.join(rdir, name), "w") as f:
                    f.write(src)
            self.config["rules"] = f'"{rdir}"'
        for k, v in self.config.items():
            lines.append(f"{k} = {lua_value(v)}")
        with open(self.conf_path, "w") as f:
            f.write("\n".join(lines) + "\n")

    def start(self):
        # free_port() closes the port it found, so another process on the
        # machine can take it before mxgate binds: then pick fresh ports.
        try:
            for _ in range(3):
                try:
                    return self._start()
                except AssertionError as e:
                    if "Address already in use" not in str(e):
                        raise
                    self.proc.wait()
                    self.ports = {d: free_port() for d in self.ports}
                    self.port = self.ports.get("inbound") or next(iter(self.ports.values()))
            return self._start()
        except BaseException:
            # A server that did not come up (or came up too slowly) is still
            # ours to end: the caller has no server to stop.
            self.stop(check=False)
            raise

    def _start(self):
        self.write_config()
        env = dict(os.environ)
        env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
        env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
        env.update(self.env)
        env[leftovers.SERVER] = self.dir     # stop() finds every process of this server by it
        self.stderr = open(self.stderr_path, "ab")
        limit = None
        if self.nofile:
            limit = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (self.nofile, self.nofile))
        self.proc = subprocess.Popen([binary(), "-c", self.conf_path], cwd=ROOT, preexec_fn=limit,
                                     stdout=self.stderr, stderr=self.stderr, env=env)
        wait_for(lambda: self.log_has("worker_start", count=self.workers) or self.proc.poll() is not None,
                 what="workers to start")
        if self.proc.poll() is not None:
            raise AssertionError("mxgate exited at start:\n" + self.read_stderr())
        # Each probe that connects is an SMTP session the server counts and
        # ends with a "close" line: settled() waits for those lines.
        self.probe_closes = len(self.events("close"))
        for p in self.ports.values():
            wait_for(lambda: self._connectable(p), what=f"port {p}")
            self.probe_closes += 1
        return self

    def settled(self):
        """Waits until the sessions of the start-up probes above have ended.
        "No session open" is not enough: a probe still in the listen backlog
        (a loaded machine, a worker not scheduled yet) is not open yet, and
        its greeting would be counted in the middle of the test. The server
        logs "close" after the session's last count, so once the log holds
        the probes' closes, counters and logs hold only what the test does.
        (A PROXY-protocol listener's probe sends no header, so it makes no
        session and no "close": not for servers with such listeners.)"""
        wait_for(lambda: len(self.events("close")) >= self.probe_closes,
                 what=f"the start-up probes' sessions to close ({self.probe_closes} close lines)")

    @staticmethod
    def _connectable(port):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return True
        except OSError:
            return False

    def stop(self, check=True):
        """SIGTERM to the master and wait for it (SIGKILL after 30 s); then
        whatever of this server still runs (children that outlived a killed
        master) is killed and waited for, so nothing is left behind."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            left = leftovers.kill(leftovers.marked(**{leftovers.SERVER: self.dir}))
            if left:
                raise AssertionError("mxgate processes survive SIGKILL: " +
                                     "; ".join(leftovers.describe(p) for p in left))
            if not self.stderr.closed:
                self.stderr.close()
        if check:
            self.check_sanitizers()

    def cleanup(self):
        shutil.rmtree(self.dir, ignore_errors=True)

    def read_stderr(self):
        try:
            with open(self.stderr_path, errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def check_sanitizers(self):
        err = self.read_stderr()
        if "AddressSanitizer" in err or "runtime error:" in err or "LeakSanitizer" in err:
            raise AssertionError("sanitizer report from mxgate:\n" + err[-6000:])

    def reload(self):
        before = len(self.events("reloaded")) + len(self.events("reload_failed"))
        self.proc.send_signal(signal.SIGHUP)
        return before

    # --- log and spool -------------------------------------------------
    def log_lines(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return [parse_logfmt(l) for l in f if l.strip()]
        except FileNotFoundError:
            return []

    def events(self, name):
        return [l for l in self.log_lines() if l.get("event") == name]

    def log_has(self, name, count=1, **kv):
        return len([e for e in self.events(name) if all(e.get(k) == v for k, v in kv.items())]) >= count

    def spool_dir(self):
        return os.path.join(self.dir, "var/spool")

    def queue(self):
        """Queued messages: queue/ without its dot entries (.free.PID/: a
        writer's ring of recycled files, and messages being written into them)."""
        q = os.path.join(self.spool_dir(), "queue")
        return sorted(n for n in os.listdir(q) if not n.startswith(".")) if os.path.isdir(q) else []

    def tmp(self):
        t = os.path.join(self.spool_dir(), "tmp")
        return sorted(os.listdir(t)) if os.path.isdir(t) else []

    def worker_pids(self):
        """Pids of the running workers: worker_start events minus worker_died ones."""
        died = {e.get("worker_pid") for e in self.events("worker_died")}
        return [int(e["pid"]) for e in self.events("worker_start") if e.get("pid") not in died]

    def message(self, qid):
        """(envelope dict, message bytes) of a queued message."""
        with open(os.path.join(self.spool_dir(), "queue", qid), "rb") as f:
            data = f.read()
        env, _, body = data.partition(b"\n")
        env = json.loads(env)
        # The envelope's "length" is the whole file's size: a mismatch is a torn file.
        if int(env["length"]) != len(data):
            raise AssertionError(f"{qid}: length {env['length']} but the file has {len(data)} bytes")
        return env, body

    # --- clients -------------------------------------------------------
    def smtp(self, direction="inbound", **kw):
        return smtplib.SMTP("127.0.0.1", self.ports[direction], local_hostname="client.example", timeout=30, **kw)

    def raw(self, direction="inbound"):
        return RawClient(self.ports[direction])

    def swaks(self, *args, direction="inbound", check=False):
        cmd = ["swaks", "--server", f"127.0.0.1:{self.ports[direction]}", "--helo", "client.example",
               "--timeout", "30"] + list(args)
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=check)


class RawClient:
    """Bytes on a socket, for what a polite client library will not send."""

    def __init__(self, port):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.buf = b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def read_reply(self):
        """One whole (possibly multi-line) reply: (code, [lines])."""
        lines = []
        while True:
            while b"\n" not in self.buf:
                chunk = self.sock.recv(65536)
                if not chunk:
                    if lines or self.buf:
                        raise AssertionError(f"connection closed mid-reply: {lines} {self.buf!r}")
                    return None, []
                self.buf += chunk
            line, self.buf = self.buf.split(b"\n", 1)
            line = line.rstrip(b"\r").decode(errors="replace")
            lines.append(line)
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), lines

    def expect(self, code):
        got, lines = self.read_reply()
        if got != code:
            raise AssertionError(f"expected {code}, got {got}: {lines}")
        return lines

    def cmd(self, line, code):
        self.send(line + "\r\n")
        return self.expect(code)

    def replies(self):
        """Every reply until the server closes: [(code, [lines]), ...]."""
        out = []
        while True:
            try:
                code, lines = self.read_reply()
            except ConnectionResetError:
                code = None
            if code is None:
                return out
            out.append((code, lines))

    def starttls(self):
        """TLS handshake on the socket (the server's 220 already read)."""
        if self.buf:
            raise AssertionError(f"plaintext left over before TLS: {self.buf!r}")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        self.sock = ctx.wrap_socket(self.sock, server_hostname="mx.mxgate.test")

    def closed(self, timeout=10):
        """True when the server closed the connection (EOF) within timeout."""
        self.sock.settimeout(timeout)
        try:
            while True:
                d = self.sock.recv(65536)
                if not d:
                    return True
                self.buf += d
        except (ConnectionResetError, BrokenPipeError):
            return True
        except socket.timeout:
            return False

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *a):
        self.close()


class MxgateTest(unittest.TestCase):
    """A test case with a fresh server per test (self.server)."""
    USES_MXGATE = True
    CONFIG = {}
    RULES = None
    WORKERS = 1

    def setUp(self):
        self.server = Mxgate(dict(self.CONFIG), rules=self.RULES and dict(self.RULES), workers=self.WORKERS)
        self.addCleanup(self.server.cleanup)
        self.addCleanup(self.server.stop)
        self.server.start()
