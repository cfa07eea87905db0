"""Slowloris (issue 11, item 8): bytes that trickle in do not keep a session
alive. A command line must be whole within timeouts.command of the server
being ready for it, a message within timeouts.message of its 354, and a
session ends after timeouts.session however busy the client keeps it.

Each client below would be served to the end if reads restarted the timer
(they did: one byte every 2.5 s kept a 3 s timeout alive for 27 s)."""
import select

from spec.e2e.harness import MxgateTest


def trickle(r, data, every):
    """Sends data one byte every `every` seconds, stopping when the server
    speaks or closes. Returns (bytes sent, replies until the close)."""
    for i in range(len(data)):
        if select.select([r.sock], [], [], every)[0]:
            return i, r.replies()
        try:
            r.send(data[i:i + 1])
        except (BrokenPipeError, ConnectionResetError):
            return i, r.replies()
    return len(data), []


def greeted(raw):
    raw.expect(220)
    raw.cmd("EHLO client.example", 250)
    return raw


class SlowlorisCommand(MxgateTest):
    CONFIG = {"timeouts": {"command": 2}}

    def test_a_command_trickled_one_byte_at_a_time_is_cut_at_the_command_deadline(self):
        line = b"MAIL FROM:<" + b"a" * 40 + b"@sender.test>\r\n"     # 15 s at 4 bytes/s
        with greeted(self.server.raw()) as r:
            sent, got = trickle(r, line, 0.25)
        self.assertLess(sent, len(line), "the server waited for the whole trickled line")
        self.assertEqual([c for c, _ in got], [421])
        self.assertRegex(got[0][1][0], r"^421 4\.4\.2 .*timeout")
        self.assertTrue(self.server.log_has("timeout", deadline="command"))

    def test_an_endless_overlong_line_is_cut_at_the_command_deadline_too(self):
        with greeted(self.server.raw()) as r:
            r.send(b"NOOP " + b"x" * 600)
            r.expect(500)                                     # the rest of the line is discarded
            sent, got = trickle(r, b"y" * 60, 0.25)
        self.assertLess(sent, 60)
        self.assertEqual([c for c, _ in got][-1:], [421])


class SlowlorisData(MxgateTest):
    CONFIG = {"timeouts": {"command": 60, "data": 2, "message": 3}}

    def test_a_message_trickled_one_byte_at_a_time_is_cut_at_the_message_deadline(self):
        body = b"Subject: slow\r\n\r\n" + b"z" * 60 + b"\r\n.\r\n"    # 20 s at 4 bytes/s
        with greeted(self.server.raw()) as r:
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("RCPT TO:<alice@example.test>", 250)
            r.cmd("DATA", 354)
            sent, got = trickle(r, body, 0.25)
        self.assertLess(sent, len(body), "the server waited for the whole trickled message")
        self.assertEqual([c for c, _ in got], [421])
        self.assertRegex(got[0][1][0], r"^421 4\.4\.2 ")
        self.assertEqual(self.server.queue(), [])
        self.assertTrue(self.server.log_has("timeout", deadline="message"))


class SlowlorisSession(MxgateTest):
    CONFIG = {"timeouts": {"command": 2, "session": 3}}

    def test_a_client_busy_with_noops_is_cut_at_the_session_deadline(self):
        codes = []
        with greeted(self.server.raw()) as r:
            for _ in range(40):                               # 20 s of NOOPs, one every 0.5 s
                select.select([r.sock], [], [], 0.5)
                try:
                    r.send("NOOP\r\n")
                except (BrokenPipeError, ConnectionResetError):
                    break
                code, _ = r.read_reply()
                if code is None:
                    break
                codes.append(code)
                if code != 250:
                    break
        self.assertLess(len(codes), 40, "the session outlived its deadline")
        self.assertEqual(codes[-1], 421)
        self.assertTrue(self.server.log_has("timeout", deadline="session"))
