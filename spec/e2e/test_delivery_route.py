"""The route hook: a rule in rules.d routes a domain or one recipient elsewhere than the config; ruletest shows each recipient's route."""
import glob
import os
import subprocess
import unittest

try:
    from . import smtpservers as ss
    from .harness import Mxgate, ROOT, binary, wait_for
except ImportError:
    import smtpservers as ss
    from harness import Mxgate, ROOT, binary, wait_for

ACCEPT = """-- 10-accept.lua - every recipient of the test domains.
rule("rcpt", "test_domains", function(s)
  if hosted(s.rcpt_domain) then return accept() end
end)
"""

ROUTE = """-- 20-route.lua - moved.test and one VIP go to the backup downstream.
rule("route", "moved_domain", function(s)
  if s.rcpt_domain == "moved.test" then return route("%(backup)s") end
end)
rule("route", "vip", function(s)
  if s.rcpt == "vip@hosted.test" then return route("%(backup)s", { tls = "may" }) end
end)
"""


class TestRouteRule(unittest.TestCase):
    USES_MXGATE = True

    def setUp(self):
        self.main = ss.accept_all().start()
        self.addCleanup(self.main.stop)
        self.backup = ss.accept_all().start()
        self.addCleanup(self.backup.stop)
        self.server = Mxgate({
            "hosted_domains": '{ ["hosted.test"] = { route = "%s" }, ["moved.test"] = { route = "%s" } }'
                              % (self.main.address, self.main.address),
            "delivery": '{ retry_min = 0.2, retry_max = 0.4, connect_timeout = 2 }',
        }, rules={"10-accept.lua": ACCEPT, "20-route.lua": ROUTE % {"backup": self.backup.address}})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.addCleanup(self.server.stop)
        wait_for(lambda: self.server.events("delivery_start"), what="the delivery process")

    def send(self, rcpts):
        with self.server.smtp() as c:
            c.sendmail("alice@sender.example", rcpts, b"Subject: routed\r\n\r\nHello.\r\n")

    def test_a_rule_routes_a_domain_to_another_downstream_than_the_config(self):
        self.send(["bob@moved.test"])
        m = wait_for(lambda: self.backup.messages, what="delivery to the backup")[0]
        self.assertEqual(m["rcpts"], ["bob@moved.test"])
        e = wait_for(lambda: self.server.events("delivered"), what="the delivered line")[0]
        self.assertEqual(e["relay"], self.backup.address)
        self.assertEqual(self.main.messages, [])

    def test_a_rule_routes_one_recipient_and_the_others_follow_the_config(self):
        self.send(["vip@hosted.test", "bob@hosted.test"])
        wait_for(lambda: self.backup.messages and self.main.messages, what="both deliveries")
        self.assertEqual([m["rcpts"] for m in self.backup.messages], [["vip@hosted.test"]])
        self.assertEqual([m["rcpts"] for m in self.main.messages], [["bob@hosted.test"]])

    def test_the_rules_route_is_kept_with_the_message_and_the_configs_is_not(self):
        self.backup.stop()              # the VIP's copy waits in the queue
        self.send(["vip@hosted.test", "bob@hosted.test"])
        wait_for(lambda: self.main.messages, what="bob's delivery")
        qid = wait_for(lambda: self.server.queue(), what="the queued VIP copy")[0]
        env, _ = self.server.message(qid)
        self.assertEqual(env["routes"], [{"route": self.backup.address, "tls": "may"}, None])

    def ruletest(self, *args, stdin=None):
        return subprocess.run([os.path.join(os.path.dirname(binary()), "ruletest"), "-c", self.server.conf_path]
                              + list(args), input=stdin, cwd=ROOT, capture_output=True, text=True)

    def test_ruletest_diff_names_a_recipient_a_rule_change_would_reroute(self):
        self.send(["vip@hosted.test", "bob@hosted.test"])
        wait_for(lambda: self.backup.messages and self.main.messages, what="both deliveries")
        journal = wait_for(lambda: glob.glob(os.path.join(self.server.dir, "var/journal/*.jsonl")),
                           what="the journal")
        same = self.ruletest("--diff", *journal)
        self.assertEqual(same.returncode, 0, same.stdout + same.stderr)
        without = os.path.join(self.server.dir, "rules-without-route")
        os.mkdir(without)
        with open(os.path.join(without, "10-accept.lua"), "w") as f:
            f.write(ACCEPT)
        p = self.ruletest("-r", without, "--diff", *journal)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("> rcpt TO:<vip@hosted.test>\n    route recorded  %s\n    route new       %s\n"
                      % (self.backup.address, self.main.address), p.stdout)
        self.assertNotIn("TO:<bob@hosted.test>", p.stdout)

    def test_ruletest_shows_each_recipients_route(self):
        commands = "EHLO c.example\nMAIL FROM:<a@sender.example>\nRCPT TO:<vip@hosted.test>\n" \
                   "RCPT TO:<bob@hosted.test>\nRCPT TO:<carol@moved.test>\nQUIT\n"
        p = self.ruletest("--client", "127.0.0.1", stdin=commands)
        self.assertEqual(p.returncode, 0, p.stderr)
        routes = [line for line in p.stdout.splitlines() if line.startswith(">>> route: ")]
        self.assertEqual(len(routes), 3, p.stdout)
        self.assertRegex(routes[0], r"^>>> route: %s tls=may \(.*20-route.lua:5\)$" % self.backup.address)
        self.assertEqual(routes[1], ">>> route: %s (stdlib/route.lua)" % self.main.address)
        self.assertRegex(routes[2], r"^>>> route: %s \(.*20-route.lua:2\)$" % self.backup.address)


class TestBadRoute(unittest.TestCase):
    USES_MXGATE = True

    def test_a_route_that_is_not_a_route_defers_the_recipient_as_a_rule_error(self):
        bad = '-- 20-route.lua - a typo.\nrule("route", "typo", function(s) return route("relay host") end)\n'
        self.server = Mxgate({"hosted_domains": '{ ["hosted.test"] = { route = "127.0.0.1:1" } }'},
                             rules={"10-accept.lua": ACCEPT, "20-route.lua": bad})
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.addCleanup(self.server.stop)
        with self.server.smtp() as c:
            c.ehlo()
            c.mail("alice@sender.example")
            code, text = c.rcpt("bob@hosted.test")
        self.assertEqual((code, text), (451, b"4.3.0 Temporary local problem, try again later"))
        e = wait_for(lambda: self.server.events("rule_error"), what="the rule_error line")[0]
        self.assertIn("20-route.lua:2", e["where"])
        self.assertIn('route("relay host")', e["error"])


if __name__ == "__main__":
    unittest.main()
