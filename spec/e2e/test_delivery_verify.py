"""Delivery with tls = "verify": the next hop's certificate must chain to the CAs of delivery.ca_file and name the route's host, else nothing is sent."""
import subprocess
import unittest

try:
    from . import dnsserver, smtpservers as ss
    from .harness import Mxgate, binary, wait_for
except ImportError:
    import dnsserver
    import smtpservers as ss
    from harness import Mxgate, binary, wait_for

ZONE = """
$ORIGIN vfy.test.
$TTL 300
@          IN SOA ns1 hostmaster 1 3600 600 86400 300
@          NS    ns1
ns1        A     127.0.0.1
good       A     127.0.0.1
wrong      A     127.0.0.1
"""


class TestTlsVerify(unittest.TestCase):
    USES_MXGATE = True

    def setUp(self):
        self.dns = dnsserver.DnsServer({"vfy.test": ZONE})
        addr = self.dns.start()
        self.addCleanup(self.dns.stop)
        self.server = Mxgate()
        self.addCleanup(self.server.cleanup)
        ca = ss.TestCa(self.server.dir)
        # One hop with a certificate the test CA issued for good.vfy.test,
        # one with a self-signed certificate.
        self.signed = ss.SmtpServer(tls=ca.context("good.vfy.test")).start()
        self.addCleanup(self.signed.stop)
        self.by_ip = ss.SmtpServer(tls=ca.context("127.0.0.1")).start()
        self.addCleanup(self.by_ip.stop)
        self.selfsigned = ss.SmtpServer(tls=True).start()
        self.addCleanup(self.selfsigned.stop)
        self.senders = ss.accept_all().start()
        self.addCleanup(self.senders.stop)
        verify = '{ route = "%s", tls = "verify" }'
        self.server.config.update({
            "hosted_domains": "{ %s }" % ", ".join([
                '["right.test"] = ' + verify % ("good.vfy.test:%d" % self.signed.port),
                '["wrongname.test"] = ' + verify % ("wrong.vfy.test:%d" % self.signed.port),
                '["selfsigned.test"] = ' + verify % ("good.vfy.test:%d" % self.selfsigned.port),
                '["literal.test"] = ' + verify % self.by_ip.address,
                '["sender.test"] = { route = "%s" }' % self.senders.address]),
            "dns": '{ servers = "%s", timeout = 0.5, tries = 1 }' % addr,
            "delivery": '{ ca_file = "%s", retry_min = 30, connect_timeout = 2 }' % ca.ca_file,
        })
        self.server.start()
        self.addCleanup(self.server.stop)
        wait_for(lambda: self.server.events("delivery_start"), what="the delivery process")

    def send(self, rcpt):
        with self.server.smtp() as c:
            c.sendmail("alice@sender.test", [rcpt], b"Subject: verify\r\n\r\nsecret\r\n")

    def deferred(self, rcpt):
        return wait_for(lambda: [e for e in self.server.events("deferred") if e["rcpt"] == rcpt],
                        what="the deferral of " + rcpt)[0]

    def test_a_certificate_from_the_trusted_ca_for_the_route_host_gets_the_mail(self):
        self.send("bob@right.test")
        m = wait_for(lambda: self.signed.messages, what="delivery")[0]
        self.assertTrue(m["tls"])
        self.assertEqual(m["rcpts"], ["bob@right.test"])
        e = wait_for(lambda: self.server.events("delivered"), what="the delivered line")[0]
        self.assertTrue(e["tls"].startswith("TLSv1."), e["tls"])

    def test_an_address_route_wants_the_address_in_the_certificate(self):
        self.send("bob@literal.test")
        m = wait_for(lambda: self.by_ip.messages, what="delivery")[0]
        self.assertTrue(m["tls"])

    def test_a_certificate_for_another_name_gets_no_mail_from(self):
        self.send("bob@wrongname.test")
        d = self.deferred("bob@wrongname.test")
        self.assertIn("certificate: hostname mismatch", d["reply"])
        self.assertEqual(self.signed.mails, [])          # no MAIL FROM, in TLS or not
        self.assertEqual(self.signed.messages, [])
        self.assertEqual(len(self.server.queue()), 1)

    def test_a_self_signed_certificate_gets_no_mail_from(self):
        self.send("bob@selfsigned.test")
        d = self.deferred("bob@selfsigned.test")
        self.assertIn("certificate: self-signed certificate", d["reply"])
        self.assertEqual(self.selfsigned.mails, [])
        self.assertEqual(self.selfsigned.messages, [])
        self.assertEqual(len(self.server.queue()), 1)


class TestCaFileChecked(unittest.TestCase):
    USES_MXGATE = True

    def test_mxgate_t_refuses_a_ca_file_it_cannot_read(self):
        server = Mxgate({"delivery": '{ ca_file = "/nonexistent/ca.pem" }'})
        self.addCleanup(server.cleanup)
        server.write_config()
        p = subprocess.run([binary(), "-t", "-c", server.conf_path], capture_output=True, text=True)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("delivery.ca_file: /nonexistent/ca.pem", p.stderr)


if __name__ == "__main__":
    unittest.main()
