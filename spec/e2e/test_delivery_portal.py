"""The portal suite's accepted cases reach their next hop: the same world
as test_portal_rows (NSD, rbldnsd, aiosmtpd downstreams, the default
rules.d/), one per test, with delivery on."""
import time
import unittest

from spec.e2e import test_portal_rows as pr
from spec.e2e.harness import wait_for


class PortalCasesReachTheirNextHop(unittest.TestCase):

    USES_MXGATE = True

    def setUp(self):
        self.backends = pr.Backends().start()
        self.addCleanup(self.backends.stop)
        self.world = pr.World(self.backends, config={
            "delivery": "{ port = %d, retry_min = 0.2, retry_max = 0.5, connect_timeout = 1 }"
                        % self.backends.mx_port,
            # secure.test (the TLS-enforced sender domain) has no DNS here.
            "verify_sender": "{ enabled = false }"})
        self.world.start()
        self.addCleanup(self.world.stop)

    def through_greylisting(self, c, sender, rcpt):
        """MAIL and RCPT again until the greylist lets the tuple pass."""
        deadline = time.monotonic() + 15
        while True:
            c.rset()
            self.assertEqual(c.mail(sender)[0], 250)
            code, msg = c.rcpt(rcpt)
            if code == 250:
                return
            self.assertEqual(code, 451, msg)
            self.assertLess(time.monotonic(), deadline, "still greylisted")
            time.sleep(0.2)

    def arrived(self, server, rcpt):
        return wait_for(lambda: [m for m in server.messages if rcpt in m["rcpts"]],
                        what="%s at its next hop" % rcpt)[0]

    def test_greylisted_then_accepted_message_reaches_the_downstream(self):
        with self.world.client("127.0.0.30") as c:
            c.ehlo()
            self.through_greylisting(c, pr.GOOD_SENDER, "grey@example.test")
            self.assertEqual(c.data(b"Subject: grey\r\n\r\nafter greylisting\r\n")[0], 250)
        m = self.arrived(self.world.downstream, "grey@example.test")
        self.assertEqual(m["mail"], pr.GOOD_SENDER)
        self.assertTrue(m["data"].endswith(b"Subject: grey\r\n\r\nafter greylisting\r\n"))

    def test_tls_enforced_sender_after_starttls_reaches_the_downstream(self):
        with self.world.client("127.0.0.33") as c:
            c.starttls()
            c.ehlo()
            self.through_greylisting(c, "ceo@secure.test", "dave@example.test")
            self.assertEqual(c.data(b"Subject: secure\r\n\r\nover TLS\r\n")[0], 250)
        self.assertEqual(self.arrived(self.world.downstream, "dave@example.test")["mail"], "ceo@secure.test")

    def test_null_sender_reaches_the_downstream(self):
        with self.world.client("127.0.0.35") as c:
            c.ehlo()
            self.through_greylisting(c, "", "erin@example.test")
            self.assertEqual(c.data(b"Subject: bounce\r\n\r\na bounce\r\n")[0], 250)
        self.assertEqual(self.arrived(self.world.downstream, "erin@example.test")["mail"], "<>")

    def test_outbound_relay_reaches_the_recipients_mx(self):
        with self.world.client(pr.RELAY_CLIENT, direction="outbound") as c:
            c.ehlo()
            c.sendmail("newsletter@customer.test", ["carol@good.senders.test"], b"Subject: out\r\n\r\nhello\r\n")
        m = self.arrived(self.world.sender_mx, "carol@good.senders.test")
        self.assertEqual(m["mail"], "newsletter@customer.test")
        # The MX has the message before the delivery process writes its log line.
        e = wait_for(lambda: [x for x in self.world.mx.events("delivered") if x["rcpt"] == "carol@good.senders.test"],
                     what="the delivered log line")[0]
        self.assertIn("[127.0.0.9:", e["relay"])       # by MX, at the MX host's address


if __name__ == "__main__":
    unittest.main()
