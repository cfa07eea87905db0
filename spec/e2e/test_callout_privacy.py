"""Callouts with the default ruleset, as an attacker would use them (issue 11
items 4 and 14): sender verification must not become a proxy into the
gateway's own network (SSRF), and a refusal must not tell the sender the
customer's internal route or quote the server behind it. What the
downstream said goes to the log, where the operator reads it."""
import os

from spec.e2e import smtpservers as ss
from spec.e2e.harness import ROOT, Mxgate, wait_for
from spec.e2e.test_rules_common import RulesTest

SECRET = "550 5.1.1 <{}>: internal-mx-7.corp.example says: no such user in LDAP ou=staff"


class CalloutPrivacy(RulesTest):
    def world(self, allow=None, callout=None, at_our_listener=False):
        """mxgate on the default rules; an "internal" SMTP server on
        127.0.0.2:P and 127.0.0.3:P refusing every RCPT with SECRET;
        callout.port = P, so MAIL FROM:<x@[127.0.0.2]> would reach it."""
        port = ss.common_port("127.0.0.2", "127.0.0.3")
        self.internal = ss.reject_rcpt(SECRET, host="127.0.0.2", port=port).start()
        self.addCleanup(self.internal.stop)
        self.internal3 = ss.reject_rcpt(SECRET, host="127.0.0.3", port=port).start()
        self.addCleanup(self.internal3.stop)
        self.downstream = ss.reject_rcpt(SECRET).start()
        self.addCleanup(self.downstream.stop)
        srv = Mxgate({})
        self.addCleanup(srv.cleanup)
        if at_our_listener:
            port = srv.port             # 127.0.0.1:port is our inbound listener
        co = "port = %d, connect_timeout = 0.5, command_timeout = 1" % port
        if allow:
            co += ", allow_networks = { %s }" % ", ".join('"%s"' % n for n in allow)
        if callout:
            co += ", " + callout
        config = {
            "rules": '"%s"' % os.path.join(ROOT, "rules.d"),
            "hosted_domains": '{ ["example.test"] = { route = "%s", callout = false }, '
                              '["routed.test"] = { route = "%s" } }'
                              % (self.downstream.address, self.downstream.address),
            "dns": '{ servers = "127.0.0.1:%d", timeout = 0.3, tries = 1 }' % ss.closed_port(),
            "greylist": "{ enabled = false }",
            "callout": "{ %s }" % co,
        }
        srv.config.update(config)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def rcpt(self, srv, sender, rcpt):
        with srv.smtp() as c:
            c.ehlo()
            self.assertEqual(c.mail(sender)[0], 250)
            code, msg = c.rcpt(rcpt)
        return code, msg.decode()

    # --- item 4: SSRF through sender verification ---------------------
    def test_verify_sender_refuses_address_literal_to_loopback(self):
        srv = self.world()
        got = self.rcpt(srv, "x@[127.0.0.2]", "bob@example.test")
        self.assertEqual(got, (550, "5.7.1 Sender Verify Failed: <x@[127.0.0.2]>: "
                                    "the sender domain's mail server is not on a public address"))
        self.assertEqual(self.internal.connections, 0, "connected to an internal address")
        ev = [e for e in srv.events("callout") if e.get("rcpt") == "x@[127.0.0.2]"]
        self.assertEqual([(e["stage"], e["result"]) for e in ev], [("policy", "unreachable")])
        self.assertIn("loopback", ev[0]["text"])

    def test_verify_sender_refuses_our_own_listener_even_when_loopback_is_allowed(self):
        srv = self.world(allow=["127.0.0.0/8"], at_our_listener=True)
        # The harness's start-up probes (one per listener) are logged first.
        before = wait_for(lambda: (lambda n: n if n >= len(srv.ports) else None)(len(srv.events("connect"))),
                          what="the start-up probes' connect events")
        got = self.rcpt(srv, "x@[127.0.0.1]", "bob@example.test")
        self.assertEqual(got[0], 550, got)
        ev = [e for e in srv.events("callout") if e.get("rcpt") == "x@[127.0.0.1]"]
        self.assertEqual([e["stage"] for e in ev], ["policy"], ev)
        self.assertIn("listener", ev[0]["text"])
        # Exactly one session reached us: the client's own.
        self.assertEqual(len(srv.events("connect")), before + 1, srv.events("connect"))

    def test_verify_sender_reaches_an_allowed_network_and_does_not_quote_it(self):
        srv = self.world(allow=["127.0.0.2/32"])
        got = self.rcpt(srv, "x@[127.0.0.2]", "bob@example.test")
        self.assertEqual(got, (550, "5.7.1 Sender Verify Failed: <x@[127.0.0.2]>: "
                                    "refused by the sender domain's mail server"))
        self.assertEqual(self.internal.rcpts, ["x@[127.0.0.2]"])
        # 127.0.0.3 is loopback and not in the allow list.
        got = self.rcpt(srv, "y@[127.0.0.3]", "bob@example.test")
        self.assertIn("not on a public address", got[1])
        self.assertEqual(self.internal3.connections, 0)
        # The sender MX's words and address: in the log, not in the reply.
        logged = [e["msg"] for e in srv.events("rule_log")]
        self.assertTrue(any("internal-mx-7" in m and "127.0.0.2" in m for m in logged), logged)

    # --- item 14: the downstream's route and words stay in the log ------
    def test_callout_refusal_does_not_reveal_the_downstream_route(self):
        srv = self.world()
        got = self.rcpt(srv, "", "bob@routed.test")
        self.assertEqual(got, (550, "5.1.1 Invalid Mailbox (Call FWD)"))
        self.assertEqual(self.downstream.rcpts, ["bob@routed.test"])
        logged = [e["msg"] for e in srv.events("rule_log")]
        self.assertTrue(any(self.downstream.address in m and "internal-mx-7" in m for m in logged), logged)
        rej = [e for e in srv.events("reject") if e.get("rcpt") == "bob@routed.test"]
        self.assertEqual(rej[-1]["text"], "Invalid Mailbox (Call FWD)")

    def test_callout_refusal_may_carry_the_downstreams_enhanced_code(self):
        srv = self.world(callout="downstream_enhanced = true")
        self.downstream.rcpt = lambda a: "550 5.2.2 <%s>: mailbox full, see 10.1.2.3" % a
        got = self.rcpt(srv, "", "bob@routed.test")
        self.assertEqual(got, (550, "5.2.2 Invalid Mailbox (Call FWD)"))


    def test_allow_networks_entry_that_is_not_a_network_is_refused(self):
        srv = self.unstarted({}, config={"callout": '{ allow_networks = { "127.0.0.0/8", "loopback" } }'})
        self.assert_refused(srv, "callout", "entry 2: not a network")
