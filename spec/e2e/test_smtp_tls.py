"""STARTTLS (RFC 3207): when it is allowed, what it forgets, and the
command injection of CVE-2011-0411."""
import os
import re
import socket
import ssl

from spec.e2e.harness import MxgateTest


def session(raw):
    raw.expect(220)
    raw.cmd("EHLO client.example", 250)
    return raw


def client_context():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class StartTLS(MxgateTest):
    def test_message_after_starttls_is_marked_tls_in_envelope_and_received(self):
        with self.server.smtp() as c:
            c.ehlo()
            self.assertEqual(c.starttls(context=client_context())[0], 220)
            c.ehlo()
            self.assertNotIn("starttls", c.esmtp_features)
            self.assertIn("pipelining", c.esmtp_features)
            c.mail("bob@sender.test")
            c.rcpt("alice@example.test")
            code, text = c.data(b"Subject: secret\r\n\r\nover tls\r\n")
        self.assertEqual(code, 250)
        env, msg = self.server.message(re.search(rb"queued as (\S+)", text).group(1).decode())
        self.assertIs(env["tls"], True)
        self.assertRegex(env["tls_version"], r"^TLSv1\.[23]$")
        self.assertTrue(env["tls_cipher"])
        self.assertIn(b" with ESMTPS id ", msg)

    def test_swaks_with_tls_delivers(self):
        r = self.server.swaks("--tls", "--to", "alice@example.test", "--from", "bob@sender.test")
        self.assertEqual(r.returncode, 0, r.stdout)
        qid = r.stdout.split("queued as ")[1].split()[0]
        self.assertIs(self.server.message(qid)[0]["tls"], True)

    def test_starttls_needs_ehlo_first(self):
        with self.server.raw() as r:
            r.expect(220)
            self.assertRegex(r.cmd("STARTTLS", 503)[0], r"^503 5\.5\.1 ")

    def test_starttls_inside_a_transaction_is_503(self):
        with session(self.server.raw()) as r:
            r.cmd("MAIL FROM:<bob@sender.test>", 250)
            r.cmd("STARTTLS", 503)
            r.cmd("RCPT TO:<alice@example.test>", 250)

    def test_starttls_with_an_argument_is_501(self):
        with session(self.server.raw()) as r:
            r.cmd("STARTTLS now", 501)

    def test_starttls_forgets_the_ehlo_and_cannot_be_repeated(self):
        with session(self.server.raw()) as r:
            self.assertEqual(r.cmd("STARTTLS", 220), ["220 2.0.0 Ready to start TLS"])
            r.starttls()
            r.cmd("MAIL FROM:<bob@sender.test>", 503)      # RFC 3207 4.2
            lines = r.cmd("EHLO client.example", 250)
            self.assertNotIn("250-STARTTLS", lines)
            self.assertRegex(r.cmd("STARTTLS", 503)[0], r"^503 5\.5\.1 ")
            r.cmd("MAIL FROM:<bob@sender.test>", 250)

    def test_commands_pipelined_after_starttls_are_not_executed(self):
        # CVE-2011-0411: a man in the middle appends plaintext commands to
        # STARTTLS; the server must not run them inside the TLS session.
        with session(self.server.raw()) as r:
            r.send("STARTTLS\r\nEHLO evil.example\r\nMAIL FROM:<evil@attacker.test>\r\n")
            r.expect(220)
            r.starttls()
            r.send("EHLO client.example\r\nRCPT TO:<alice@example.test>\r\n"
                   "MAIL FROM:<bob@sender.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
            got = [r.read_reply()[0] for _ in range(5)]
            self.assertEqual(got, [250, 503, 250, 250, 354])
            qid = re.search(r"queued as (\S+)", r.cmd("\r\nafter tls\r\n.", 250)[0]).group(1)
        env, _ = self.server.message(qid)
        self.assertEqual((env["helo"], env["sender"], env["tls"]), ("client.example", "bob@sender.test", True))

    def test_bad_handshake_closes_the_session_and_the_worker_lives_on(self):
        pid = self.server.worker_pids()[0]
        with session(self.server.raw()) as r:
            r.cmd("STARTTLS", 220)
            r.send(b"\x16\x03\x01\x00\x05hello" + os.urandom(300))
            self.assertTrue(r.closed())
        with session(self.server.raw()) as r:
            r.cmd("QUIT", 221)
        self.assertEqual(self.server.worker_pids(), [pid])

    def test_after_a_tls_error_nothing_is_sent_in_plaintext(self):
        with session(self.server.raw()) as r:
            r.cmd("STARTTLS", 220)
            sock = r.sock
            into, out = ssl.MemoryBIO(), ssl.MemoryBIO()
            tls = client_context().wrap_bio(into, out, server_hostname="mx.mxgate.test")

            def exchange():
                sock.sendall(out.read())
                data = sock.recv(65536)
                if not data:
                    raise AssertionError("closed during the exchange")
                into.write(data)

            while True:
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    exchange()
            tls.write(b"EHLO client.example\r\n")
            got = b""
            while not re.search(rb"^250 [^\r\n]*\r\n", got, re.M):
                try:
                    got += tls.read(65536)
                except ssl.SSLWantReadError:
                    exchange()
            # One good record (NOOP), then a forged one: decryption fails.
            tls.write(b"NOOP\r\n")
            sock.sendall(out.read() + b"\x17\x03\x03\x00\x20" + os.urandom(32))
            raw = b""
            sock.settimeout(10)
            try:
                while True:
                    d = sock.recv(65536)
                    if not d:
                        break
                    raw += d
            except (ConnectionResetError, socket.timeout):
                pass
        self.assertIsNone(re.search(rb"[245]\d\d[ -]\d\.\d+\.\d+ ", raw), raw)
