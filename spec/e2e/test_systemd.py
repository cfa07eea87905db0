"""Readiness the way systemd sees it (Type=notify): the test is the service
manager. It binds a NOTIFY_SOCKET datagram socket, starts mxgate with it and
reads what the master says: READY=1 only once every worker has loaded its
rules and the listeners answer, RELOADING=1 then READY=1 around a SIGHUP
(also when the new rules are refused), STOPPING=1 on SIGTERM. Only the
master (systemd's MainPID) speaks."""
import os
import shutil
import socket
import struct
import threading
import time

import subprocess
import tempfile
import unittest

from spec.e2e.harness import Mxgate, MxgateTest, ROOT, binary, wait_for

RULES = '"%s"' % os.path.join(ROOT, "rules.d")


class NotifySocket:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(path)
        os.chmod(path, 0o777)          # the master writes it after dropping root
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)

    def next(self, timeout=30):
        """(fields dict, sender pid) of the next notification."""
        self.sock.settimeout(timeout)
        data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        pid = None
        for level, kind, cdata in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        fields = dict(l.split("=", 1) for l in data.decode().splitlines() if "=" in l)
        return fields, pid

    def until(self, key, timeout=30, snapshot=lambda: None):
        """Notifications up to and including the first carrying key=1, each
        as (fields, pid, snapshot()) taken the moment it was read."""
        seen = []
        deadline = time.monotonic() + timeout
        while True:
            fields, pid = self.next(max(0.1, deadline - time.monotonic()))
            seen.append((fields, pid, snapshot()))
            if fields.get(key) == "1":
                return seen

    def close(self):
        self.sock.close()


class Readiness(MxgateTest):
    WORKERS = 2
    CONFIG = {"rules": RULES}

    def setUp(self):
        # The server is started by the test, with the notify socket.
        self.server = Mxgate(dict(self.CONFIG), workers=self.WORKERS)
        self.addCleanup(self.server.cleanup)
        path = os.path.join(self.server.dir, "notify")
        self.notify = NotifySocket(path)
        self.addCleanup(self.notify.close)
        self.server.env["NOTIFY_SOCKET"] = path

    def start_and_wait_ready(self):
        """Starts the server while a thread reads the notify socket; returns
        the notifications up to READY=1, each with the number of workers that
        had logged their start (first generation loaded) when it was read."""
        seen = []
        reader = threading.Thread(target=lambda: seen.extend(self.notify.until(
            "READY", snapshot=lambda: len(self.server.events("worker_start")))))
        reader.start()
        try:
            self.server.start()
        finally:
            self.addCleanup(self.server.stop)
            reader.join(30)
        return seen

    def greeting(self):
        with socket.create_connection(("127.0.0.1", self.server.port), timeout=10) as c:
            return c.recv(512)

    def test_ready_comes_from_the_master_once_every_worker_has_its_rules(self):
        seen = self.start_and_wait_ready()
        self.assertTrue(seen, "no READY=1")
        fields, pid, workers_started = seen[-1]
        self.assertEqual(pid, self.server.proc.pid)
        self.assertEqual(fields.get("STATUS"), "serving")
        # When READY=1 was read, both workers had loaded their first generation...
        self.assertEqual(workers_started, self.WORKERS)
        # ... and a client gets its greeting.
        self.assertTrue(self.greeting().startswith(b"220 mx.mxgate.test"))

    def test_no_ready_while_the_workers_cannot_load_their_rules(self):
        # Listeners bound, workers forked, but no generation: not ready.
        self.server.rules = {"10-broken.lua": "rule(\"rcpt\", \"x\", function(s) end\nthis is not lua\n"}
        self.server.write_config()
        stderr = open(self.server.stderr_path, "ab")
        proc = subprocess.Popen([binary(), "-c", self.server.conf_path], cwd=ROOT, env=dict(
            os.environ, NOTIFY_SOCKET=self.server.env["NOTIFY_SOCKET"]), stdout=stderr, stderr=stderr)
        self.addCleanup(lambda: (proc.poll() is None and proc.kill(), proc.wait(), stderr.close()))
        wait_for(lambda: len(self.server.events("worker_died")) >= 2, what="workers failing to load")
        self.notify.sock.setblocking(False)
        pending = []
        try:
            while True:
                pending.append(self.notify.sock.recv(4096))
        except BlockingIOError:
            pass
        self.assertEqual([m for m in pending if b"READY=1" in m], [])
        # Fixed: the restarted workers load it, and only now is it ready.
        with open(os.path.join(self.server.dir, "rules.d", "10-broken.lua"), "w") as f:
            f.write("-- fixed\n")
        seen = self.notify.until("READY", snapshot=lambda: len(self.server.events("worker_start")))
        self.assertEqual(seen[-1][1], proc.pid)
        self.assertEqual(seen[-1][2], self.WORKERS)
        proc.terminate()
        proc.wait(timeout=30)

    def test_sighup_is_reloading_then_ready_once_the_workers_reloaded(self):
        self.start_and_wait_ready()
        self.server.reload()
        seen = self.notify.until("READY", snapshot=lambda: len(self.server.events("reloaded")))
        self.assertEqual(seen[0][0].get("RELOADING"), "1", seen)
        self.assertIn("MONOTONIC_USEC", seen[0][0])
        self.assertTrue(all(pid == self.server.proc.pid for _, pid, _ in seen))
        # READY=1 again only once every worker had its new generation.
        self.assertEqual(seen[-1][2], self.WORKERS)
        self.assertTrue(self.greeting().startswith(b"220 "))

    def test_a_refused_config_is_still_reloading_then_ready_with_the_reason(self):
        self.start_and_wait_ready()
        with open(self.server.conf_path, "a") as f:
            f.write("no_such_key = 1\n")
        self.server.reload()
        seen = self.notify.until("READY")
        self.assertEqual(seen[0][0].get("RELOADING"), "1")
        self.assertIn("reload refused", seen[-1][0].get("STATUS", ""))
        self.assertIn("no_such_key", seen[-1][0]["STATUS"])
        self.assertTrue(self.greeting().startswith(b"220 "))     # still serving, old config

    def test_sigterm_says_stopping(self):
        self.start_and_wait_ready()
        self.server.proc.terminate()
        seen = self.notify.until("STOPPING")
        self.assertEqual(seen[-1][1], self.server.proc.pid)
        self.server.proc.wait(timeout=30)


class UnitFile(unittest.TestCase):
    """etc/mxgate.service, the unit `make install` and the package ship."""
    UNIT = os.path.join(ROOT, "etc/mxgate.service")

    def directives(self):
        out = {}
        with open(self.UNIT) as f:
            for line in f:
                if "=" in line and not line.startswith("#"):
                    k, v = line.rstrip("\n").split("=", 1)
                    out.setdefault(k, []).append(v)
        return out

    def test_systemd_analyze_verify_is_clean(self):
        # The installed unit runs /usr/sbin/mxgate; verify this one against
        # the binary just built (the package test verifies the installed one).
        d = tempfile.mkdtemp(prefix="mxgate-unit-")
        self.addCleanup(shutil.rmtree, d)
        with open(self.UNIT) as f:
            unit = f.read().replace("/usr/sbin/mxgate", binary())
        with open(os.path.join(d, "mxgate.service"), "w") as f:
            f.write(unit)
        r = subprocess.run(["systemd-analyze", "verify", "--man=no", os.path.join(d, "mxgate.service")],
                           capture_output=True, text=True, timeout=60)
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_notify_reload_and_the_sandbox_a_reviewer_expects(self):
        d = self.directives()
        self.assertEqual(d["Type"], ["notify"])
        self.assertEqual(d["ExecReload"], ["/bin/kill -HUP $MAINPID"])
        self.assertEqual(d["ExecStart"], ["/usr/sbin/mxgate -c /etc/mxgate/mxgate.lua"])
        self.assertEqual(d["ProtectSystem"], ["strict"])
        self.assertEqual(set(d["ReadWritePaths"][0].split()), {"/var/spool/mxgate", "/var/lib/mxgate"})
        self.assertEqual(set(d["CapabilityBoundingSet"][0].split()), {
            "CAP_NET_BIND_SERVICE",            # port 25
            "CAP_SETUID", "CAP_SETGID",        # dropping to user "mxgate"
            "CAP_CHOWN", "CAP_FOWNER", "CAP_DAC_OVERRIDE",   # preparing its spool and state dirs
        })
        for k in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices",
                  "ProtectKernelTunables", "ProtectControlGroups", "RestrictSUIDSGID"):
            self.assertEqual(d[k], ["yes"], k)
        self.assertEqual(d["WantedBy"], ["multi-user.target"])
