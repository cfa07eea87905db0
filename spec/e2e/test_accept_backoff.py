"""A worker out of file descriptors sheds and waits instead of spinning:
accept() failing with EMFILE must not turn into a busy loop and a log that
grows by gigabytes, and the worker serves again once descriptors free up."""
import os
import select
import time
import unittest

from spec.e2e.harness import Mxgate, RawClient, parse_logfmt, wait_for

NOFILE = 40


def head_events(server, name, limit=1 << 20):
    """The events named name in the log's first MiB: a flooded log stays cheap to read."""
    try:
        with open(server.log_path, "rb") as f:
            head = f.read(limit).decode(errors="replace")
    except FileNotFoundError:
        return []
    return [e for e in map(parse_logfmt, head.splitlines()) if e.get("event") == name]


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class OutOfDescriptors(unittest.TestCase):
    """The server runs with RLIMIT_NOFILE = NOFILE (soft and hard), as a low
    `ulimit -n` would leave it; clients then take every free descriptor."""
    USES_MXGATE = True

    def setUp(self):
        self.server = Mxgate(nofile=NOFILE)
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.addCleanup(self.server.stop)

    def fill(self, pid):
        """Connects until accept() in the worker fails for want of a descriptor."""
        free = NOFILE - len(os.listdir(f"/proc/{pid}/fd"))
        self.assertGreater(free, 2, "the worker starts with too many descriptors open for this test")
        held = []
        for _ in range(free + 4):
            held.append(RawClient(self.server.port))
        self.addCleanup(lambda: [c.close() for c in held])
        wait_for(lambda: head_events(self.server, "accept_error"), what="accept() to run out of descriptors")
        return held

    def test_worker_out_of_fds_backs_off_instead_of_spinning(self):
        pid = self.server.worker_pids()[0]
        held = self.fill(pid)
        first = head_events(self.server, "accept_error")[0]
        self.assertEqual(first["error"], "Too many open files")

        # Held at the limit for a while, the worker sleeps and the log stays short.
        size0, cpu0, t0 = os.path.getsize(self.server.log_path), cpu_seconds(pid), time.monotonic()
        time.sleep(1.5)
        cpu, wall = cpu_seconds(pid) - cpu0, time.monotonic() - t0
        grown = os.path.getsize(self.server.log_path) - size0
        self.assertLess(cpu, 0.2 * wall, f"the worker burnt {cpu:.2f}s of CPU in {wall:.2f}s at the limit")
        self.assertLess(grown, 4096, f"the log grew by {grown} bytes in {wall:.2f}s")
        self.assertLessEqual(len(head_events(self.server, "accept_error")), 2)

        # One client at the head of the queue is told why, and closed.
        pending, shed = {c.sock: c for c in held}, []
        deadline = time.monotonic() + 10
        while not shed and time.monotonic() < deadline:
            ready, _, _ = select.select(list(pending), [], [], 1)
            for s in ready:
                data = s.recv(4096)
                del pending[s]
                if data.startswith(b"421 4.3.2 "):
                    shed.append(data)
        self.assertTrue(shed, "no client got the 421 for want of a descriptor")

    def test_worker_out_of_fds_serves_again_when_connections_close(self):
        pid = self.server.worker_pids()[0]
        held = self.fill(pid)
        for c in held:
            c.close()
        with self.server.smtp() as c:
            c.ehlo()
            self.assertEqual(c.mail("bob@sender.test")[0], 250)
            self.assertEqual(c.rcpt("alice@example.test")[0], 250)
            self.assertEqual(c.data(b"Subject: back\r\n\r\nserved again\r\n")[0], 250)
        self.assertEqual(pid, self.server.worker_pids()[0], "the worker itself recovered")
