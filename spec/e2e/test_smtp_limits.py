"""Named, configurable bounds: recipients, message size, timeouts and
connections (counted across all workers)."""
import os
import re

from spec.e2e.harness import MxgateTest, wait_for


def worker_of(server, raw):
    """The worker holding the server side of raw's connection (/proc)."""
    mine = raw.sock.getsockname()[1]
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            fields = line.split()
            if (int(fields[1].split(":")[1], 16) == server.port and
                    int(fields[2].split(":")[1], 16) == mine):
                inode = fields[9]
    for pid in server.worker_pids():
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]":
                    return pid
            except OSError:
                pass
    return None


def greeted(server):
    """A new session that got its 220, or None: a 421 while the slot of a
    session just closed is not free yet (the count is shared, the close and
    the next accept can be on different workers)."""
    r = server.raw()
    code, _ = r.read_reply()
    if code == 220:
        return r
    r.close()
    return None


def held_on_both_workers(server, n):
    """n sessions that got their 220, spread over both workers. Each worker
    listens on its own socket and the kernel picks one by a hash of the
    client's port, so a last connection that landed where all the others are
    is closed and made again (from another port)."""
    held, pids = [], []
    for _ in range(60):
        r = wait_for(lambda: greeted(server), what="a 220")
        pid = wait_for(lambda: worker_of(server, r), what="the worker holding it")
        if len(held) == n - 1 and set(pids) <= {pid}:
            r.cmd("QUIT", 221)
            r.close()
            continue
        held.append(r)
        pids.append(pid)
        if len(held) == n:
            return held
    raise AssertionError("60 connections in a row landed on one worker")


def refused(server):
    """The one reply line a new connection gets, which must be a 421."""
    with server.raw() as r:
        got = r.replies()
    if [c for c, _ in got] != [421]:
        raise AssertionError(f"expected one 421, got {got}")
    return got[0][1][0]


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
        # Three held on both workers: whichever worker the fourth lands on
        # holds at most two itself, so its 421 comes from the shared count.
        held = held_on_both_workers(self.server, 3)
        self.assertRegex(refused(self.server), r"^421 4\.7\.0 ")
        held.pop().cmd("QUIT", 221)
        with wait_for(lambda: greeted(self.server), what="a slot free again") as r:
            r.cmd("QUIT", 221)
        for h in held:
            h.close()


class ConnectionLimitPerAddress(MxgateTest):
    CONFIG = {"limits": {"max_per_ip": 2}}
    WORKERS = 2

    def test_the_third_connection_from_one_address_gets_421_470(self):
        # One held on each worker: the third holds at most one on its worker.
        held = held_on_both_workers(self.server, 2)
        self.assertRegex(refused(self.server), r"^421 4\.7\.0 .*your address")
        for h in held:
            h.close()
