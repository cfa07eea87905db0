"""RFC 5321 as real clients speak it: EHLO extensions, command sequence,
enhanced status codes, pipelining, and what lands in the spool."""
import re
import time

from spec.e2e.harness import MxgateTest

MAX_SIZE = 1048576


def qid_of(reply):
    if isinstance(reply, bytes):
        reply = reply.decode()
    return re.search(r"queued as (\S+)", reply).group(1)


def session(raw):
    """A raw client past the greeting and EHLO."""
    raw.expect(220)
    raw.cmd("EHLO client.example", 250)
    return raw


class Extensions(MxgateTest):
    CONFIG = {"limits": {"max_message_size": MAX_SIZE}}

    def test_ehlo_advertises_pipelining_size_8bitmime_enhancedstatuscodes_smtputf8_starttls(self):
        with self.server.smtp() as c:
            code, _ = c.ehlo()
            self.assertEqual(code, 250)
            f = c.esmtp_features
            for ext in ("pipelining", "8bitmime", "enhancedstatuscodes", "smtputf8", "starttls"):
                self.assertIn(ext, f)
            self.assertEqual(f["size"], str(MAX_SIZE))

    def test_ehlo_reply_is_multiline_without_enhanced_codes(self):
        with self.server.raw() as r:
            r.expect(220)
            lines = r.cmd("EHLO client.example", 250)
            self.assertEqual(lines[0], "250-mx.mxgate.test")
            self.assertEqual(lines[-1], "250 SMTPUTF8")
            self.assertTrue(all(l.startswith("250-") for l in lines[:-1]))

    def test_helo_gets_one_line_and_no_extensions(self):
        with self.server.raw() as r:
            r.expect(220)
            self.assertEqual(r.cmd("HELO client.example", 250), ["250 mx.mxgate.test"])
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("RCPT TO:<alice@example.test>", 250)
            r.cmd("DATA", 354)
            qid = qid_of(r.cmd("Subject: helo\r\n\r\nhi\r\n.", 250)[0])
        env, msg = self.server.message(qid)
        self.assertEqual(env["helo"], "client.example")
        self.assertIn(b"with SMTP id", msg)


class Transcript(MxgateTest):
    CONFIG = {"limits": {"max_errors": 50}}

    def test_replies_carry_enhanced_status_codes(self):
        with self.server.raw() as r:
            self.assertEqual(r.expect(220), ["220 mx.mxgate.test ESMTP mxgate"])
            r.cmd("EHLO client.example", 250)
            self.assertEqual(r.cmd("NOOP", 250), ["250 2.0.0 Ok"])
            self.assertEqual(r.cmd("MAIL FROM:<bob@sender.test>", 250), ["250 2.1.0 Ok"])
            self.assertEqual(r.cmd("RCPT TO:<alice@example.test>", 250), ["250 2.1.5 Ok"])
            self.assertEqual(r.cmd("RSET", 250), ["250 2.0.0 Ok"])
            self.assertRegex(r.cmd("VRFY alice@example.test", 252)[0], r"^252 2\.\d\.\d ")
            self.assertRegex(r.cmd("EXPN staff", 502)[0], r"^502 5\.5\.1 ")
            help_ = r.cmd("HELP", 214)
            self.assertTrue(all(re.match(r"^214[- ]2\.0\.0 ", l) for l in help_), help_)
            self.assertRegex(r.cmd("FROB", 500)[0], r"^500 5\.5\.2 ")
            self.assertEqual(r.cmd("QUIT", 221), ["221 2.0.0 Bye"])
            self.assertTrue(r.closed())

    def test_vrfy_neither_confirms_nor_denies(self):
        with session(self.server.raw()) as r:
            known = r.cmd("VRFY alice@example.test", 252)
            unknown = r.cmd("VRFY nobody@elsewhere.test", 252)
            self.assertEqual(known, unknown)

    def test_rcpt_before_mail_is_503(self):
        with session(self.server.raw()) as r:
            self.assertRegex(r.cmd("RCPT TO:<alice@example.test>", 503)[0], r"^503 5\.5\.1 ")

    def test_data_before_rcpt_is_503(self):
        with session(self.server.raw()) as r:
            r.cmd("DATA", 503)
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("DATA", 503)

    def test_mail_before_ehlo_is_503(self):
        with self.server.raw() as r:
            r.expect(220)
            r.cmd("MAIL FROM:<bob@sender.test>", 503)
            r.cmd("RCPT TO:<alice@example.test>", 503)

    def test_nested_mail_is_503_and_the_first_sender_stays(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<first@sender.test>", 250)
            r.cmd("MAIL FROM:<second@sender.test>", 503)
            r.cmd("RCPT TO:<alice@example.test>", 250)
            r.cmd("DATA", 354)
            qid = qid_of(r.cmd("\r\nbody\r\n.", 250)[0])
        self.assertEqual(self.server.message(qid)[0]["sender"], "first@sender.test")

    def test_rset_ends_the_transaction(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("RSET", 250)
            r.cmd("RCPT TO:<alice@example.test>", 503)
            r.cmd("MAIL FROM:<bob@sender.test>", 250)

    def test_syntax_errors_are_501(self):
        with self.server.raw() as r:
            r.expect(220)
            self.assertRegex(r.cmd("EHLO", 501)[0], r"^501 5\.5\.4 ")
            r.cmd("EHLO bad..name", 501)
            r.cmd("EHLO client.example", 250)
            self.assertRegex(r.cmd("MAIL FROM:bob@sender.test", 501)[0], r"^501 5\.5\.4 ")
            self.assertRegex(r.cmd("MAIL FROM:<bob@@sender.test>", 501)[0], r"^501 5\.1\.7 ")
            r.cmd("MAIL TO:<bob@sender.test>", 501)
            r.cmd("MAIL FROM:<bob@sender.test", 501)
            r.cmd("MAIL FROM:<bob@sender.test> SIZE=big", 501)
            r.cmd("MAIL FROM:<bob@sender.test> BODY=9BIT", 501)
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            self.assertRegex(r.cmd("RCPT TO:<>", 501)[0], r"^501 5\.1\.3 ")
            r.cmd("RCPT TO:<alice@example.test>", 250)
            r.cmd("DATA now", 501)
            r.cmd("DATA", 354)

    def test_unknown_mail_parameter_is_555(self):
        with session(self.server.raw()) as r:
            self.assertRegex(r.cmd("MAIL FROM:<bob@sender.test> FROB=1", 555)[0], r"^555 5\.5\.4 ")
            r.cmd("MAIL FROM:<bob@sender.test> BODY=8BITMIME SIZE=100", 250)
            r.cmd("RCPT TO:<alice@example.test> NOTIFY=NEVER", 555)

    def test_null_sender_is_accepted(self):
        with self.server.smtp() as c:
            c.ehlo()
            self.assertEqual(c.mail("")[0], 250)
            self.assertEqual(c.rcpt("alice@example.test")[0], 250)
            code, text = c.data(b"Subject: bounce\r\n\r\nundeliverable\r\n")
        self.assertEqual(code, 250)
        env, _ = self.server.message(qid_of(text))
        self.assertEqual(env["sender"], "")

    def test_rcpt_postmaster_without_a_domain_is_accepted(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("RCPT TO:<Postmaster>", 250)
            r.cmd("DATA", 354)
            qid = qid_of(r.cmd("\r\nhello postmaster\r\n.", 250)[0])
        # RFC 5321 4.5.1: routed to the configured postmaster (by default
        # postmaster@ the first hosted domain).
        self.assertEqual(self.server.message(qid)[0]["rcpts"], ["postmaster@example.test"])

    def test_source_route_is_ignored(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<@relay.test,@other.test:bob@sender.test>", 250)
            r.cmd("RCPT TO:<@relay.test:alice@example.test>", 250)
            r.cmd("DATA", 354)
            qid = qid_of(r.cmd("\r\nrouted\r\n.", 250)[0])
        env, _ = self.server.message(qid)
        self.assertEqual((env["sender"], env["rcpts"]), ("bob@sender.test", ["alice@example.test"]))

    def test_quit_closes_and_nothing_pipelined_after_it_runs(self):
        with session(self.server.raw()) as r:
            r.send("QUIT\r\nMAIL FROM:<bob@sender.test>\r\nNOOP\r\n")
            self.assertEqual([c for c, _ in r.replies()], [221])


class Relay(MxgateTest):
    def test_inbound_rcpt_for_a_domain_we_do_not_host_is_550_571(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            self.assertRegex(r.cmd("RCPT TO:<carol@elsewhere.test>", 550)[0], r"^550 5\.7\.1 ")
            r.cmd("RCPT TO:<alice@EXAMPLE.test>", 250)

    def test_outbound_rcpt_from_a_relay_network_is_accepted(self):
        with session(self.server.raw("outbound")) as r:
            r.cmd("MAIL FROM:<alice@example.test>", 250)
            r.cmd("RCPT TO:<carol@elsewhere.test>", 250)
            r.cmd("DATA", 354)
            qid = qid_of(r.cmd("\r\noutbound\r\n.", 250)[0])
        self.assertEqual(self.server.message(qid)[0]["direction"], "outbound")


class RelayFromOutside(MxgateTest):
    CONFIG = {"relay_networks": '{ "192.0.2.0/24" }'}

    def test_outbound_rcpt_from_outside_the_relay_networks_is_550_571(self):
        with session(self.server.raw("outbound")) as r:
            r.cmd("MAIL FROM:<alice@example.test>", 250)
            self.assertRegex(r.cmd("RCPT TO:<carol@elsewhere.test>", 550)[0], r"^550 5\.7\.1 ")
            r.cmd("RCPT TO:<alice@example.test>", 550)
            r.cmd("DATA", 503)


class Pipelining(MxgateTest):
    def test_whole_transaction_in_one_write_gets_every_reply_in_order(self):
        with self.server.raw() as r:
            r.expect(220)
            r.send("EHLO client.example\r\n"
                   "MAIL FROM:<bob@sender.test>\r\n"
                   "RCPT TO:<alice@example.test>\r\n"
                   "RCPT TO:<nobody@elsewhere.test>\r\n"
                   "RCPT TO:<alice2@example.test>\r\n"
                   "DATA\r\n"
                   "Subject: pipelined\r\n\r\none write\r\n.\r\n"
                   "MAIL FROM:<bob@sender.test>\r\n"
                   "RCPT TO:<alice@example.test>\r\n"
                   "DATA\r\n"
                   "Subject: second\r\n\r\nstill one write\r\n.\r\n"
                   "QUIT\r\n")
            got = r.replies()
        self.assertEqual([c for c, _ in got], [250, 250, 250, 550, 250, 354, 250, 250, 250, 354, 250, 221])
        qids = [qid_of(got[6][1][0]), qid_of(got[10][1][0])]
        self.assertEqual(sorted(qids), self.server.queue())
        env, msg = self.server.message(qids[0])
        self.assertEqual(env["rcpts"], ["alice@example.test", "alice2@example.test"])
        self.assertTrue(msg.endswith(b"Subject: pipelined\r\n\r\none write\r\n"))
        self.assertTrue(self.server.message(qids[1])[1].endswith(b"\r\nstill one write\r\n"))

    def test_replies_to_a_pipelined_group_come_back_in_one_write(self):
        with session(self.server.raw()) as r:
            r.send("MAIL FROM:<bob@sender.test>\r\nRCPT TO:<a@example.test>\r\n"
                   "RCPT TO:<b@example.test>\r\nNOOP\r\nDATA\r\n")
            first = r.sock.recv(65536)
            self.assertEqual(first, b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"
                                    b"354 End data with <CR><LF>.<CR><LF>\r\n")

    def test_several_messages_in_one_connection_with_smtplib(self):
        qids = []
        with self.server.smtp() as c:
            for i in range(3):
                c.ehlo_or_helo_if_needed()
                c.mail("bob@sender.test")
                c.rcpt("alice@example.test")
                code, text = c.data(f"Subject: {i}\r\n\r\nmessage {i}\r\n".encode())
                self.assertEqual(code, 250)
                qids.append(qid_of(text))
        self.assertEqual(sorted(qids), self.server.queue())
        for i, q in enumerate(qids):
            self.assertTrue(self.server.message(q)[1].endswith(f"message {i}\r\n".encode()))

    def test_swaks_pipelining_delivers(self):
        r = self.server.swaks("--pipeline", "--to", "alice@example.test,alice2@example.test",
                              "--from", "bob@sender.test")
        self.assertEqual(r.returncode, 0, r.stdout)
        self.assertIn("PIPELINING", r.stdout)
        qid = qid_of(r.stdout)
        self.assertEqual(self.server.message(qid)[0]["rcpts"], ["alice@example.test", "alice2@example.test"])


class Content(MxgateTest):
    def test_smtputf8_address_needs_the_smtputf8_parameter(self):
        with session(self.server.raw()) as r:
            self.assertRegex(r.cmd("MAIL FROM:<jörg@sender.test>", 553)[0], r"^553 5\.6\.7 ")
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            self.assertRegex(r.cmd("RCPT TO:<zoë@example.test>", 553)[0], r"^553 5\.6\.7 ")
            r.cmd("RSET", 250)
            r.cmd("MAIL FROM:<jörg@bücher.test> SMTPUTF8", 250)
            r.cmd("RCPT TO:<zoë@example.test>", 250)
            r.cmd("DATA", 354)
            qid = qid_of(r.cmd("Subject: =?utf-8?q?gr=C3=BC=C3=9Fe?=\r\n\r\nhallo\r\n.", 250)[0])
        env, msg = self.server.message(qid)
        self.assertEqual((env["sender"], env["rcpts"], env["smtputf8"]), ("jörg@bücher.test", ["zoë@example.test"], True))
        self.assertIn(b"with UTF8ESMTP id", msg)

    def test_8bitmime_body_is_stored_byte_for_byte(self):
        body = b"Subject: 8bit\r\nContent-Type: text/plain; charset=latin1\r\n\r\n" + \
            bytes(range(0x80, 0x100)) + b"\r\n\xe9t\xe9 \xfc\r\n.leading dot\r\n"
        with self.server.smtp() as c:
            c.ehlo()
            c.mail("bob@sender.test", ["BODY=8BITMIME"])
            c.rcpt("alice@example.test")
            code, text = c.data(body)
        self.assertEqual(code, 250)
        env, msg = self.server.message(qid_of(text))
        self.assertEqual(env["body"], "8BITMIME")
        self.assertTrue(msg.endswith(b"\r\n\r\n" + bytes(range(0x80, 0x100)) + b"\r\n\xe9t\xe9 \xfc\r\n.leading dot\r\n"),
                        msg[-300:])

    def test_received_header_is_prepended_and_the_envelope_is_complete(self):
        before = time.time()
        with self.server.smtp() as c:
            c.ehlo()
            c.mail("bob@sender.test")
            c.rcpt("alice@example.test")
            code, text = c.data(b"Subject: env\r\nFrom: bob@sender.test\r\n\r\nbody\r\n")
        qid = qid_of(text)
        env, msg = self.server.message(qid)
        self.assertEqual(env["qid"], qid)
        self.assertEqual(env["client"], "127.0.0.1")
        self.assertEqual(env["helo"], "client.example")
        self.assertIs(env["tls"], False)
        self.assertEqual(env["sender"], "bob@sender.test")
        self.assertEqual(env["rcpts"], ["alice@example.test"])
        self.assertEqual(env["direction"], "inbound")
        self.assertEqual(env["listener"], f"127.0.0.1:{self.server.port}")
        self.assertEqual(env["body"], "7BIT")
        self.assertLessEqual(int(before) - 1, env["time"])
        self.assertLessEqual(env["time"], time.time() + 1)
        self.assertRegex(msg.decode(), r"^Received: from client\.example \(\[127\.0\.0\.1\]\)\r\n"
                         r"\tby mx\.mxgate\.test \(mxgate\) with ESMTP id " + qid +
                         r"\r\n\tfor <alice@example\.test>;\r\n\t\w{3}, \d\d \w{3} \d{4} [\d:]{8} [+-]\d{4}\r\n"
                         r"Subject: env\r\nFrom: bob@sender\.test\r\n\r\nbody\r\n$")

    def test_longest_helo_sender_and_recipient_still_fit_the_spool_file(self):
        helo = ".".join(["h" * 63] * 4)[:253]
        domain = ".".join(["d" * 63] * 4)[:250]
        sender = '"' + '\\"' * 31 + '"@' + domain
        rcpt = "r" * 64 + "@" + domain[:134]
        with self.server.raw("outbound") as r:
            r.expect(220)
            r.cmd("EHLO " + helo, 250)
            r.cmd(f"MAIL FROM:<{sender}>", 250)
            r.cmd(f"RCPT TO:<{rcpt}>", 250)
            r.cmd("DATA", 354)
            qid = qid_of(r.cmd("\r\nlong names\r\n.", 250)[0])
        env, msg = self.server.message(qid)
        self.assertEqual((env["helo"], env["sender"], env["rcpts"]), (helo, sender, [rcpt]))
        self.assertIn(f"for <{rcpt}>".encode(), msg)

    def test_control_characters_in_an_address_are_refused(self):
        # A CR inside a command line is not a line end; it must not reach the
        # Received: header's "for <...>" clause as a header break.
        with session(self.server.raw("outbound")) as r:
            r.cmd("MAIL FROM:<bob@example.test>", 250)
            r.cmd('RCPT TO:<"a\\\rX-Injected: 1"@example.test>', 501)
            r.cmd('RCPT TO:<"a\rX-Injected: 1"@example.test>', 501)
            r.cmd("RCPT TO:<a@[192.0.2.1\rX-Injected: 1]>", 501)
            r.cmd("RCPT TO:<a@[192.0.2.1]>", 250)
            r.cmd('RCPT TO:<"quoted local"@example.test>', 250)
