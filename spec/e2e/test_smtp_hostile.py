"""What a hostile client sends: overlong lines, smuggled end-of-data
sequences, talking before the greeting, errors, NULs and binary junk.
Each test fails when the defence it names is taken out."""
import os
import random
import re
import signal

from spec.e2e.harness import MxgateTest, wait_for

SMUGGLED = ("MAIL FROM:<evil@attacker.test>\r\n"
            "RCPT TO:<victim@example.test>\r\n"
            "DATA\r\n"
            "Subject: smuggled\r\n\r\nsmuggled body\r\n"
            ".\r\n")


def qid_of(line):
    return re.search(r"queued as (\S+)", line).group(1)


def session(raw):
    raw.expect(220)
    raw.cmd("EHLO client.example", 250)
    return raw


def transaction(raw):
    session(raw)
    raw.cmd("MAIL FROM:<bob@sender.test>", 250)
    raw.cmd("RCPT TO:<alice@example.test>", 250)
    raw.cmd("DATA", 354)
    return raw


class CommandLines(MxgateTest):
    def test_command_line_of_512_octets_is_accepted_and_513_is_500(self):
        with session(self.server.raw()) as r:
            r.cmd("NOOP " + "x" * 505, 250)            # 510 + CRLF = 512
            self.assertRegex(r.cmd("NOOP " + "x" * 506, 500)[0], r"^500 5\.5\.\d ")
            r.cmd("NOOP", 250)

    def test_overlong_line_in_one_write_is_500_and_its_tail_is_not_a_command(self):
        with session(self.server.raw()) as r:
            # Octets 513.. of the line read "QUIT": a server that split the line
            # would run them as a command.
            r.send("NOOP " + "x" * 507 + "QUIT\r\nNOOP\r\n")
            self.assertRegex(r.read_reply()[1][0], r"^500 5\.5\.\d ")
            r.expect(250)
            r.cmd("MAIL FROM:<bob@sender.test>", 250)

    def test_overlong_line_in_pieces_is_500_at_once_and_the_session_stays_in_sync(self):
        with session(self.server.raw()) as r:
            r.send("NOOP " + "x" * 600)
            self.assertRegex(r.read_reply()[1][0], r"^500 5\.5\.\d ")
            r.send("y" * 5000)
            r.send("QUIT\r\nNOOP\r\n")             # "QUIT" still ends that line
            r.expect(250)
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("RCPT TO:<alice@example.test>", 250)

    def test_nul_in_a_command_is_500(self):
        with session(self.server.raw()) as r:
            self.assertRegex(r.cmd("NOOP\0QUIT", 500)[0], r"^500 5\.5\.\d ")
            r.cmd("MAIL FROM:<bob@sender.test>\0", 500)
            r.cmd("MAIL FROM:<bob@sender.test>", 250)


class CommandLineLimitAboveTheBuffer(MxgateTest):
    CONFIG = {"limits": {"command_line": 8192}}

    def test_line_longer_than_the_input_buffer_is_500_not_a_stall(self):
        with session(self.server.raw()) as r:
            r.sock.settimeout(10)
            r.cmd("NOOP " + "x" * 3000, 250)
            r.send("NOOP " + "x" * 6000)
            self.assertRegex(r.read_reply()[1][0], r"^500 5\.5\.\d ")
            r.send("\r\n")
            r.cmd("NOOP", 250)


class TooManyErrors(MxgateTest):
    CONFIG = {"limits": {"max_errors": 3}}

    def test_the_third_error_gets_421_and_the_connection_is_closed(self):
        with session(self.server.raw()) as r:
            r.cmd("FROB", 500)
            r.cmd("RCPT TO:<alice@example.test>", 503)
            r.send("MAIL FROM:bob\r\nNOOP\r\n")
            self.assertEqual([c for c, _ in r.replies()], [501, 421])
        wait_for(lambda: self.server.log_has("close", why="too many errors"), what="the close")


class TextLines(MxgateTest):
    def test_text_line_of_1000_octets_is_accepted(self):
        with transaction(self.server.raw()) as r:
            qid = qid_of(r.cmd("Subject: long\r\n\r\n" + "x" * 998 + "\r\n.", 250)[0])
        self.assertTrue(self.server.message(qid)[1].endswith(b"x" * 998 + b"\r\n"))

    def test_text_line_of_1001_octets_is_500_at_end_of_data_and_nothing_is_queued(self):
        with transaction(self.server.raw()) as r:
            r.send("Subject: long\r\n\r\n" + "x" * 999 + "\r\nmore\r\n")
            lines = r.cmd(".", 500)
            self.assertRegex(lines[0], r"^500 5\.5\.\d ")
            r.cmd("MAIL FROM:<bob@sender.test>", 250)   # the session goes on
        self.assertEqual(self.server.queue(), [])
        self.assertEqual(self.server.tmp(), [])


class Smuggling(MxgateTest):
    """CVE-2023-51764 and kin: only CRLF.CRLF ends DATA, so a smuggled
    transaction behind a bare-LF or bare-CR "end" stays message content."""

    def smuggle(self, fake_end):
        with transaction(self.server.raw()) as r:
            r.send("Subject: innocent\r\n\r\nhello" + fake_end + SMUGGLED + "QUIT\r\n")
            got = r.replies()
        self.assertEqual([c for c, _ in got], [250, 221], got)
        self.assertEqual(len(self.server.queue()), 1)
        env, msg = self.server.message(self.server.queue()[0])
        self.assertEqual(env["sender"], "bob@sender.test")
        self.assertIn(b"MAIL FROM:<evil@attacker.test>\r\n", msg)
        self.assertIn(b"smuggled body\r\n", msg)

    def test_bare_lf_dot_bare_lf_does_not_end_data(self):
        self.smuggle("\n.\n")

    def test_bare_cr_dot_bare_cr_does_not_end_data(self):
        self.smuggle("\r.\r")

    def test_crlf_dot_bare_lf_does_not_end_data(self):
        self.smuggle("\r\n.\n")

    def test_bare_lf_dot_crlf_does_not_end_data(self):
        self.smuggle("\n.\r\n")

    def test_bare_cr_dot_crlf_does_not_end_data(self):
        self.smuggle("\r.\r\n")

    def test_crlf_dot_bare_cr_does_not_end_data(self):
        self.smuggle("\r\n.\r")


class SmugglingRefused(MxgateTest):
    CONFIG = {"bare_lf": '"reject"'}

    def test_bare_lf_in_data_is_550_and_nothing_is_queued(self):
        with transaction(self.server.raw()) as r:
            r.send("Subject: innocent\r\n\r\nhello\n.\n" + SMUGGLED + "QUIT\r\n")
            got = r.replies()
        self.assertEqual([c for c, _ in got], [550, 221], got)
        self.assertRegex(got[0][1][0], r"^550 5\.6\.\d ")
        self.assertEqual(self.server.queue(), [])

    def test_bare_cr_in_data_is_550(self):
        with transaction(self.server.raw()) as r:
            r.send("Subject: x\r\n\r\nhello\rworld\r\n.\r\n")
            r.expect(550)

    def test_clean_message_is_still_accepted(self):
        with transaction(self.server.raw()) as r:
            r.cmd("Subject: x\r\n\r\nhello\r\n..dot\r\n.", 250)


class Pregreet(MxgateTest):
    CONFIG = {"timeouts": {"greeting_delay": 0.5}}

    def test_client_talking_before_the_greeting_gets_554_and_is_closed(self):
        with self.server.raw() as r:
            r.send("EHLO bot.example\r\nMAIL FROM:<spam@bot.example>\r\n")
            got = r.replies()
        self.assertEqual([c for c, _ in got], [554])
        self.assertRegex(got[0][1][0], r"^554 5\.\d\.\d ")
        self.assertTrue(self.server.log_has("reject", reason="pregreet"))

    def test_client_waiting_for_the_greeting_is_served(self):
        with self.server.raw() as r:
            r.expect(220)
            r.cmd("EHLO client.example", 250)
            r.cmd("MAIL FROM:<bob@sender.test>", 250)


class NoPregreetTestByDefault(MxgateTest):
    def test_early_talker_is_served_when_greeting_delay_is_off(self):
        # The worker is stopped so that the client's EHLO is surely there
        # before the connection is accepted.
        pid = self.server.worker_pids()[0]
        os.kill(pid, signal.SIGSTOP)
        wait_for(lambda: open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0] == "T",
                 what="the worker to stop")
        try:
            r = self.server.raw()
            r.send("EHLO client.example\r\n")
        finally:
            os.kill(pid, signal.SIGCONT)
        with r:
            r.expect(220)
            r.expect(250)


class BinaryJunk(MxgateTest):
    def test_random_bytes_never_crash_a_worker(self):
        rnd = random.Random(20240229)
        pid = self.server.worker_pids()[0]
        junks = [bytes(rnd.randrange(256) for _ in range(20000)),
                 b"\0" * 5000 + b"\r\n",
                 b"\xff" * 70000,
                 b"MAIL FROM:<" + b"\xc3" * 4000 + b">\r\n",
                 b"EHLO x\r\nMAIL FROM:<a@b> SIZE=99999999999999999999999\r\nRCPT TO:<\x00>\r\n",
                 bytes(rnd.randrange(256) for _ in range(3000)).replace(b"\n", b"\r\n") * 5]
        for junk in junks:
            with session(self.server.raw()) as r:
                r.send(junk + b"\r\nQUIT\r\n")
                self.assertIn(r.replies()[-1][0], (221, 421))
        for junk in junks:                  # the same inside DATA
            with transaction(self.server.raw()) as r:
                r.send(junk + b"\r\n.\r\nQUIT\r\n")
                self.assertEqual(r.replies()[-1][0], 221)
        r = self.server.swaks("--to", "alice@example.test", "--from", "bob@sender.test")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertEqual(self.server.worker_pids(), [pid])
        self.assertEqual(self.server.events("worker_died"), [])
