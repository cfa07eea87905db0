"""Operator stories: the everyday changes to the default ruleset, each done
the way docs/OPERATOR_STORIES.md tells an operator to do it (edit a file,
SIGHUP), and each shown to change what a real client is answered.

Every story runs its own mxgate (it rewrites the config or the rules)
among the servers the portal row tests use (spec/e2e/test_portal_rows.py).

Run: /usr/bin/python3 spec/run.py --no-asan -k operator
"""
import os
import unittest

from spec.e2e.test_portal_rows import (GOOD_SENDER, OTHER_BL_CLIENT, ROWS, XBL_CLIENT, PortalCase,
                                       World, shared_backends)


class OperatorStory(PortalCase):
    """A fresh mxgate per story, on a copy of rules.d/ it may edit."""

    CONFIG = {}
    HOSTED = {}

    def setUp(self):
        self.world = World(shared_backends(), config=dict(self.CONFIG), hosted=dict(self.HOSTED),
                           own_port=False, copy_rules=True)
        self.addCleanup(self.world.stop)
        self.world.start()
        self.addCleanup(self.world.mx.check_sanitizers)

    def rules_dir(self):
        return os.path.join(self.world.mx.dir, "rules.d")

    def rule_of(self, client):
        """The rule (file:line) that answered the client's newest rejection."""
        return self.rejections(client=client)[-1]["rule"]


class TestReorderChecks(OperatorStory):
    """Greylisting before the recipient callout: rename 80-greylist.lua to
    74-greylist.lua. A client that matches both (a new tuple, for a
    recipient the downstream does not know) was told 550 Invalid Mailbox;
    now it is greylisted and the downstream is not asked at all."""

    def test_renaming_a_rule_file_moves_greylisting_before_the_callout(self):
        ip, rcpt = "127.0.0.50", "nobody-here@example.test"
        with self.world.client(ip) as c:
            self.assert_reply(self.rcpt(c, GOOD_SENDER, rcpt), ROWS[8])
        self.assertIn("75-callout.lua", self.rule_of(ip))
        asked = len(self.world.downstream.rcpts)

        mx = self.world.mx
        mx.rules["74-greylist.lua"] = mx.rules.pop("80-greylist.lua")
        os.unlink(os.path.join(self.rules_dir(), "80-greylist.lua"))
        self.reload()

        with self.world.client(ip) as c:
            self.assert_reply(self.rcpt(c, GOOD_SENDER, rcpt), ROWS[4])
        self.assertIn("74-greylist.lua", self.rule_of(ip))
        self.assertEqual(len(self.world.downstream.rcpts), asked, "greylisted before any callout")


class TestChangeAMessage(OperatorStory):
    """One line in rules.d/00-reasons.lua changes what XBL-listed clients
    read, and what `mxgate report -c CONF` shows support."""

    TEXT = "XBL - see https://www.spamhaus.org/query/ip/"

    def test_one_reason_line_and_sighup_change_the_reply(self):
        with self.world.client(XBL_CLIENT) as c:
            got = self.rcpt(c, GOOD_SENDER, "bob@example.test")
        self.assert_reply(got, ROWS[2])
        self.assertFalse(got[1].startswith("5.7.1 " + self.TEXT))

        mx = self.world.mx
        mx.rules["00-reasons.lua"] += 'reason("xbl", { text = "%s" })\n' % self.TEXT
        self.reload()

        with self.world.client(XBL_CLIENT) as c:
            got = self.rcpt(c, GOOD_SENDER, "bob@example.test")
        self.assertEqual(got[0], 550)
        self.assertTrue(got[1].startswith("5.7.1 " + self.TEXT), got)
        self.assertIn(XBL_CLIENT + " is listed at zen.test", got[1])
        rec = self.rejections(client=XBL_CLIENT)[-1]
        self.assertEqual(rec["reason"], "xbl")
        self.assertTrue(rec["text"].startswith(self.TEXT), rec)
        # The report reads the same rules: support sees the new text.
        e = self.report_entry("xbl", conf=True)
        self.assertEqual((e["text"], e["count"], e["row"]), (self.TEXT, 2, 2), e)
        self.assertIn("Inbound | %s | Sending IP is listed on Spamhaus | 2 |" % self.TEXT,
                      self.world.report(conf=True))


class TestAddADnsblZone(OperatorStory):
    """config dnsbl gains { zone = "bl.test" }: a client listed only there
    is refused with RBL Reject after the reload."""

    CONFIG = {"dnsbl": '{ { zone = "zen.test", spamhaus = true } }'}

    def test_new_zone_refuses_a_client_listed_only_there(self):
        with self.world.client(OTHER_BL_CLIENT) as c:
            got = self.rcpt(c, GOOD_SENDER, "bob@example.test")
        self.assert_reply(got, ROWS[4])          # not listed anywhere we ask: greylisted

        self.world.mx.config["dnsbl"] = '{ { zone = "zen.test", spamhaus = true }, { zone = "bl.test" } }'
        self.reload()

        with self.world.client(OTHER_BL_CLIENT) as c:
            got = self.rcpt(c, GOOD_SENDER, "bob@example.test")
        self.assert_reply(got, ROWS[5], detail=OTHER_BL_CLIENT + " is listed at bl.test")
        self.assert_logged(ROWS[5], OTHER_BL_CLIENT, GOOD_SENDER, "bob@example.test")


class TestExemptADomainFromGreylisting(OperatorStory):
    """hosted_domains[d].greylist = false, or greylist.exempt_domains: mail
    for that domain is not greylisted; other domains still are."""

    HOSTED = {"nogrey.test": None, "nogrey2.test": None}

    def setUp(self):
        addr = shared_backends().downstream.address
        self.HOSTED = {d: addr for d in self.HOSTED}
        super().setUp()

    def hosted_with(self, flags):
        addr = self.world.downstream.address
        domains = dict(self.world.hosted)
        domains.update({d: addr for d in self.HOSTED})
        domains.update(flags)
        return "{ " + ", ".join('["%s"] = %s' % (d, r if r.startswith("{") else '{ route = "%s" }' % r)
                                for d, r in domains.items()) + " }"

    def test_hosted_domain_flag_greylist_false(self):
        ip = "127.0.0.52"
        with self.world.client(ip) as c:
            self.assert_reply(self.rcpt(c, GOOD_SENDER, "bob@nogrey.test"), ROWS[4])

        self.world.mx.config["hosted_domains"] = self.hosted_with(
            {"nogrey.test": '{ route = "%s", greylist = false }' % self.world.downstream.address})
        self.reload()

        with self.world.client(ip) as c:
            self.assertEqual(self.rcpt(c, GOOD_SENDER, "bob@nogrey.test")[0], 250)
            c.rset()
            self.assert_reply(self.rcpt(c, GOOD_SENDER, "bob@nogrey2.test"), ROWS[4])

    def test_greylist_exempt_domains(self):
        ip = "127.0.0.53"
        with self.world.client(ip) as c:
            self.assert_reply(self.rcpt(c, GOOD_SENDER, "bob@nogrey2.test"), ROWS[4])

        self.world.mx.config["greylist"] = '{ delay = 1, exempt_domains = { "nogrey2.test" } }'
        self.reload()

        with self.world.client(ip) as c:
            self.assertEqual(self.rcpt(c, GOOD_SENDER, "bob@nogrey2.test")[0], 250)
            c.rset()
            self.assert_reply(self.rcpt(c, GOOD_SENDER, "bob@nogrey.test"), ROWS[4])


class TestAddARelayNetwork(OperatorStory):
    """relay_networks gains "127.0.0.9/32": that client, refused with Relay
    Denied before, may now send out through the outbound listener."""

    def test_new_relay_network_may_relay(self):
        ip, sender, rcpt = "127.0.0.9", "app@customer.test", "friend@elsewhere.test"
        with self.world.client(ip, direction="outbound") as c:
            got = self.rcpt(c, sender, rcpt)
        self.assert_row(13, got, ip, sender, rcpt)

        self.world.mx.config["relay_networks"] = self.world.mx.config["relay_networks"].replace(
            " }", ', "127.0.0.9/32" }')
        self.assertIn('"127.0.0.9/32"', self.world.mx.config["relay_networks"])
        self.reload()

        with self.world.client(ip, direction="outbound") as c:
            self.assertEqual(self.rcpt(c, sender, rcpt)[0], 250)
            code, msg = c.data(b"Subject: out\r\n\r\nthrough the relay\r\n")
        self.assertEqual(code, 250, msg)
        self.assertEqual(len(self.rejections(client=ip)), 1)


if __name__ == "__main__":
    unittest.main()
