"""Delivery by MX (NSD serving the zone): preference order, fallback to the
next MX and to the A record, null MX, and a route that does not resolve."""
import email
import email.policy
import unittest

try:
    from . import dnsserver, smtpservers as ss
    from .harness import Mxgate, wait_for
except ImportError:
    import dnsserver
    import smtpservers as ss
    from harness import Mxgate, wait_for

ZONE = """
$ORIGIN dlv.test.
$TTL 300
@          IN SOA ns1 hostmaster 1 3600 600 86400 300
@          NS    ns1
ns1        A     127.0.0.1
mx-good    A     127.0.0.2
mx-closed  A     127.0.0.4
good       MX    10 mx-good
fallback   MX    10 mx-closed
fallback   MX    20 mx-good
implicit   A     127.0.0.2
nullmx     MX    0 .
"""


class DeliveryByMx(unittest.TestCase):
    USES_MXGATE = True

    DELIVERY = '{ port = %d, retry_min = 0.2, retry_max = 0.3, max_lifetime = %s, connect_timeout = 1 }'
    LIFETIME = "60"

    def setUp(self):
        self.dns = dnsserver.DnsServer({"dlv.test": ZONE})
        addr = self.dns.start()
        self.addCleanup(self.dns.stop)
        port = ss.common_port("127.0.0.2", "127.0.0.4")
        self.good = ss.accept_all(host="127.0.0.2", port=port).start()
        self.addCleanup(self.good.stop)
        self.senders = ss.accept_all().start()
        self.addCleanup(self.senders.stop)
        self.server = Mxgate({
            "hosted_domains": '{ ["sender.test"] = { route = "%s" }, ["lost.test"] = { route = "nowhere.dlv.test:25" } }'
                              % self.senders.address,
            "dns": '{ servers = "%s", timeout = 0.5, tries = 1 }' % addr,
            "delivery": self.DELIVERY % (port, self.LIFETIME),
        })
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.addCleanup(self.server.stop)

    def relay(self, rcpt, direction="outbound"):
        with self.server.smtp(direction) as c:
            c.sendmail("alice@sender.test", [rcpt], b"Subject: mx\r\n\r\nvia MX\r\n")

    def dsn_status(self):
        m = wait_for(lambda: self.senders.messages, what="a DSN")[0]
        msg = email.message_from_bytes(m["data"], policy=email.policy.compat32)
        status = [p for p in msg.get_payload() if p.get_content_type() == "message/delivery-status"][0]
        return status.get_payload()[1]

    def test_outbound_mail_goes_to_the_recipient_domains_mx(self):
        self.relay("bob@good.dlv.test")
        m = wait_for(lambda: self.good.messages, what="delivery by MX")[0]
        self.assertEqual(m["rcpts"], ["bob@good.dlv.test"])
        # The MX has the message before the delivery process logs it.
        e = wait_for(lambda: self.server.events("delivered"), what="the delivered log line")[0]
        self.assertEqual(e["relay"], "mx-good.dlv.test[127.0.0.2:%d]" % self.good.port)

    def test_an_unreachable_mx_sends_us_to_the_next_preference(self):
        self.relay("bob@fallback.dlv.test")
        wait_for(lambda: self.good.messages, what="delivery by the second MX")
        self.assertEqual(self.server.events("deferred"), [])

    def test_a_domain_without_mx_is_its_own_mx(self):
        self.relay("bob@implicit.dlv.test")
        wait_for(lambda: self.good.messages, what="delivery to the A record")

    def test_a_null_mx_bounces_at_once_5_1_10(self):
        self.relay("bob@nullmx.dlv.test")
        r = self.dsn_status()
        self.assertEqual(r["Status"], "5.1.10")
        self.assertEqual(r["Final-Recipient"], "rfc822; bob@nullmx.dlv.test")
        self.assertEqual(self.server.events("deferred"), [])
        wait_for(lambda: self.server.queue() == [], what="an empty queue")


class UnresolvableRoute(DeliveryByMx):

    LIFETIME = "1.2"

    def test_a_route_that_does_not_resolve_is_deferred_then_bounced_at_expiry(self):
        self.relay("bob@lost.test", direction="inbound")
        wait_for(lambda: self.server.events("deferred"), what="a deferral")
        r = self.dsn_status()
        self.assertEqual(r["Status"], "4.4.7")
        self.assertEqual(r["Action"], "failed")
        self.assertIn("nowhere.dlv.test", r["Diagnostic-Code"])
        wait_for(lambda: self.server.queue() == [], what="an empty queue")

    # The MX cases run once, in DeliveryByMx.
    test_outbound_mail_goes_to_the_recipient_domains_mx = None
    test_an_unreachable_mx_sends_us_to_the_next_preference = None
    test_a_domain_without_mx_is_its_own_mx = None
    test_a_null_mx_bounces_at_once_5_1_10 = None


if __name__ == "__main__":
    unittest.main()
