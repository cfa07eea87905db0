"""A real redis-server (Debian's) for a test: its own port, directory and
socket, never the system one; no persistence.

    with RedisServer(password="pw", user="mx") as r:
        r.address          # "127.0.0.1:PORT"
        r.cli("DBSIZE")    # redis-cli's output
        r.stop(); r.start()   # the same port and password again
"""
import os
import shutil
import socket
import subprocess
import tempfile
import time


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class RedisServer:
    def __init__(self, password=None, user=None, port=None, socket_path=None):
        self.dir = tempfile.mkdtemp(prefix="mxgate-redis-")
        os.chmod(self.dir, 0o755)         # workers run as nobody
        self.port = port or _free_port()
        self.password = password
        self.user = user
        self.socket = socket_path or os.path.join(self.dir, "redis.sock")
        self.proc = None

    @property
    def address(self):
        return "127.0.0.1:%d" % self.port

    def start(self):
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--dir", self.dir, "--save", "", "--appendonly", "no",
                "--unixsocket", self.socket, "--unixsocketperm", "777",
                "--logfile", os.path.join(self.dir, "redis.log")]
        if self.user:
            # an ACL user for mxgate; the default user needs the password too
            args += ["--user", self.user, "on", ">" + self.password, "~*", "&*", "+@all",
                     "--user", "default", "on", ">admin-" + self.password, "~*", "&*", "+@all"]
        elif self.password:
            args += ["--requirepass", self.password]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                if self.cli("PING").strip() == "PONG":
                    return self
            except (subprocess.SubprocessError, OSError):
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError("redis-server did not start: " + self.read_log())
            time.sleep(0.02)

    def cli(self, *args):
        cmd = ["redis-cli", "-p", str(self.port), "--no-auth-warning"]
        if self.user:
            cmd += ["--user", "default", "--pass", "admin-%s" % self.password]
        elif self.password:
            cmd += ["-a", self.password]
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=10).stdout

    def read_log(self):
        try:
            with open(os.path.join(self.dir, "redis.log")) as f:
                return f.read()[-2000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.cleanup()
