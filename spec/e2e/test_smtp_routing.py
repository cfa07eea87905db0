"""Routing tricks and postmaster (issue 11, item 13).

Sender-specified routing in a recipient (user%host@us, host!user@us,
"user@host"@us) is refused from inbound clients: a hosted domain's
downstream may forward it as asked, which would make the gateway a relay
for anyone (Postfix: allow_untrusted_routing = no for relay domains). A
bare RCPT TO:<postmaster> is accepted (RFC 5321 4.5.1) and goes to the
configured `postmaster` address, by default postmaster@ the first hosted
domain."""
import os
import re

from spec.e2e.harness import ROOT, MxgateTest

DEFAULT_RULES = '"%s"' % os.path.join(ROOT, "rules.d")


def session(raw):
    raw.expect(220)
    raw.cmd("EHLO client.example", 250)
    raw.cmd("MAIL FROM:<bob@sender.test>", 250)
    return raw


def queued(r):
    r.cmd("DATA", 354)
    return re.search(r"queued as (\S+)", r.cmd("\r\nhello\r\n.", 250)[0]).group(1)


class RoutingTricks(MxgateTest):
    def test_sender_specified_routing_to_a_hosted_domain_is_refused(self):
        with session(self.server.raw()) as r:
            for addr in ("user%elsewhere.test@example.test", "elsewhere.test!user@example.test",
                         '"user@elsewhere.test"@example.test'):
                self.assertRegex(r.cmd(f"RCPT TO:<{addr}>", 550)[0],
                                 r"^550 5\.7\.1 Sender-specified routing denied", addr)
            r.cmd('RCPT TO:<"plain user"@example.test>', 250)   # quoted, but no routing
            self.assertEqual(self.server.message(queued(r))[0]["rcpts"], ['"plain user"@example.test'])
        self.assertTrue(self.server.log_has("reject", reason="sender_routing", count=3))

    def test_a_relay_network_client_may_send_to_routed_addresses_elsewhere(self):
        with session(self.server.raw("outbound")) as r:
            r.cmd("RCPT TO:<user%final.test@remote.test>", 250)


class PostmasterByDefault(MxgateTest):
    CONFIG = {"rules": DEFAULT_RULES,
              "hosted_domains": '{ ["example.test"] = { route = "127.0.0.1:1" },'
                                ' ["b.example"] = { route = "127.0.0.1:1" } }'}

    def test_bare_postmaster_goes_to_postmaster_at_the_first_hosted_domain(self):
        with session(self.server.raw()) as r:
            r.cmd("RCPT TO:<Postmaster>", 250)
            qid = queued(r)
        self.assertEqual(self.server.message(qid)[0]["rcpts"], ["postmaster@b.example"])


class PostmasterConfigured(MxgateTest):
    CONFIG = {"rules": DEFAULT_RULES, "postmaster": '"hostmaster@example.test"'}

    def test_bare_postmaster_goes_to_the_configured_postmaster_address(self):
        with session(self.server.raw()) as r:
            r.cmd("RCPT TO:<postmaster>", 250)
            qid = queued(r)
        self.assertEqual(self.server.message(qid)[0]["rcpts"], ["hostmaster@example.test"])
