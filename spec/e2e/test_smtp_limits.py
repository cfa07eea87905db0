"""Named, configurable bounds: recipients, message size, timeouts and
connections (counted across all workers)."""
import os
import re
import signal

from spec.e2e.harness import MxgateTest, wait_for


def stop(pid):
    """SIGSTOP a worker and wait until it is stopped: it accepts nothing more."""
    os.kill(pid, signal.SIGSTOP)

    def stopped():
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "T"
    wait_for(stopped, what=f"worker {pid} to stop")


def session(raw):
    raw.expect(220)
    raw.cmd("EHLO client.example", 250)
    return raw


class DefaultRecipientLimit(MxgateTest):
    def test_the_101st_recipient_gets_452_453_and_the_first_100_get_the_message(self):
        with session(self.server.raw()) as r:
            r.send("MAIL FROM:<bob@sender.test>\r\n" +
                   "".join(f"RCPT TO:<u{i}@example.test>\r\n" for i in range(101)) + "DATA\r\n")
            codes = [r.read_reply() for _ in range(103)]
            self.assertEqual([c for c, _ in codes], [250] + [250] * 100 + [452, 354])
            self.assertRegex(codes[101][1][0], r"^452 4\.5\.3 ")
            qid = re.search(r"queued as (\S+)", r.cmd("\r\nmany\r\n.", 250)[0]).group(1)
        self.assertEqual(len(self.server.message(qid)[0]["rcpts"]), 100)


class ConfiguredRecipientLimit(MxgateTest):
    CONFIG = {"limits": {"max_recipients": 3}}

    def test_the_fourth_recipient_gets_452_453(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            for i in range(3):
                r.cmd(f"RCPT TO:<u{i}@example.test>", 250)
            self.assertRegex(r.cmd("RCPT TO:<u3@example.test>", 452)[0], r"^452 4\.5\.3 ")
            r.cmd("RSET", 250)
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("RCPT TO:<u3@example.test>", 250)   # the count is per message


class MessageSize(MxgateTest):
    CONFIG = {"limits": {"max_message_size": 4096}}

    def test_ehlo_advertises_the_configured_size(self):
        with session(self.server.raw()) as r:
            self.assertIn("250-SIZE 4096", r.cmd("EHLO client.example", 250))

    def test_mail_declaring_a_size_over_the_limit_is_552_534(self):
        with session(self.server.raw()) as r:
            self.assertRegex(r.cmd("MAIL FROM:<bob@sender.test> SIZE=4097", 552)[0], r"^552 5\.3\.4 ")
            r.cmd("MAIL FROM:<bob@sender.test> SIZE=4096", 250)

    def test_body_over_the_limit_without_size_is_552_534_at_end_of_data_and_nothing_is_queued(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("RCPT TO:<alice@example.test>", 250)
            r.cmd("DATA", 354)
            r.send(("x" * 78 + "\r\n") * 100)
            self.assertRegex(r.cmd(".", 552)[0], r"^552 5\.3\.4 ")
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
        self.assertEqual(self.server.queue(), [])
        self.assertEqual(self.server.tmp(), [])

    def test_body_at_the_limit_is_accepted(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("RCPT TO:<alice@example.test>", 250)
            r.cmd("DATA", 354)
            r.send(("x" * 62 + "\r\n") * 64)      # 4096 octets
            r.cmd(".", 250)


class CommandTimeout(MxgateTest):
    CONFIG = {"timeouts": {"command": 0.5}}

    def test_idle_client_gets_421_442_and_is_closed(self):
        with session(self.server.raw()) as r:
            got = r.replies()
        self.assertEqual([c for c, _ in got], [421])
        self.assertRegex(got[0][1][0], r"^421 4\.4\.2 ")

    def test_idle_client_before_ehlo_is_closed_too(self):
        with self.server.raw() as r:
            r.expect(220)
            self.assertEqual([c for c, _ in r.replies()], [421])


class DataTimeout(MxgateTest):
    CONFIG = {"timeouts": {"command": 60, "data": 0.5}}

    def test_client_idle_after_354_gets_421_442(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("RCPT TO:<alice@example.test>", 250)
            r.cmd("DATA", 354)
            r.sock.settimeout(10)            # far below the command timeout
            got = r.replies()
        self.assertEqual([c for c, _ in got], [421])
        self.assertRegex(got[0][1][0], r"^421 4\.4\.2 ")
        self.assertEqual(self.server.queue(), [])
        wait_for(lambda: self.server.tmp() == [], what="the aborted message to leave tmp/")

    def test_client_idle_in_the_middle_of_the_body_gets_421_442(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("RCPT TO:<alice@example.test>", 250)
            r.cmd("DATA", 354)
            r.send("Subject: half\r\n\r\nhalf a bo")
            r.sock.settimeout(10)
            self.assertEqual([c for c, _ in r.replies()], [421])
        self.assertEqual(self.server.queue(), [])


class ConnectionLimitTotal(MxgateTest):
    CONFIG = {"limits": {"max_connections": 3}}
    WORKERS = 2

    def test_the_fourth_connection_gets_421_470_even_on_another_worker(self):
        w0, w1 = self.server.worker_pids()
        held = []
        try:
            # Two connections on one worker, one on the other: the fourth is
            # refused by a worker that holds only one itself.
            stop(w1)
            for _ in range(2):
                held.append(self.server.raw())
                held[-1].expect(220)
            os.kill(w1, signal.SIGCONT)
            stop(w0)
            held.append(self.server.raw())
            held[-1].expect(220)
            with self.server.raw() as r:
                got = r.replies()
            self.assertEqual([c for c, _ in got], [421])
            self.assertRegex(got[0][1][0], r"^421 4\.7\.0 ")
        finally:
            os.kill(w0, signal.SIGCONT)
            os.kill(w1, signal.SIGCONT)
        self.assertEqual({int(e["pid"]) for e in self.server.events("connect")}, {w0, w1})
        held.pop().cmd("QUIT", 221)
        wait_for(lambda: self.server.log_has("close", why="quit"), what="the session to close")
        with session(self.server.raw()) as r:      # a slot is free again
            r.cmd("QUIT", 221)
        for h in held:
            h.close()


class ConnectionLimitPerAddress(MxgateTest):
    CONFIG = {"limits": {"max_per_ip": 2}}
    WORKERS = 2

    def test_the_third_connection_from_one_address_gets_421_470(self):
        w0, w1 = self.server.worker_pids()
        held = []
        try:
            stop(w1)
            held.append(self.server.raw())
            held[-1].expect(220)
            os.kill(w1, signal.SIGCONT)
            stop(w0)
            held.append(self.server.raw())
            held[-1].expect(220)
            with self.server.raw() as r:
                got = r.replies()
            self.assertEqual([c for c, _ in got], [421])
            self.assertRegex(got[0][1][0], r"^421 4\.7\.0 .*your address")
        finally:
            os.kill(w0, signal.SIGCONT)
            os.kill(w1, signal.SIGCONT)
        for h in held:
            h.close()
