"""ruletest replays data-hook rules from the headers the journal recorded, and
its prediction for a new header rule is the reply mxgate then gives live."""
import glob
import json
import os
import re
import smtplib
import unittest

from spec.e2e.harness import Mxgate
from spec.e2e.test_ruletest import ruletest

BASE = {
    "10-hosted.lua": '''\
rule("rcpt", "hosted_domain", function(s)
  if not hosted(s.rcpt_domain) then return deny("not_hosted") end
  return accept()
end)
''',
}
# The change an operator wants to try: refuse lottery mail by its Subject.
LOTTERY = '''\
rule("data", "no_lottery", function(s)
  if s.headers:match("\\n[Ss]ubject:[^\\r\\n]*[Ll]ottery") or s.headers:match("^[Ss]ubject:[^\\r\\n]*[Ll]ottery") then
    return deny { code = 550, enhanced = "5.7.1", text = "No lottery mail here" }
  end
end)
'''
MESSAGES = [
    b"From: a@sender.test\r\nSubject: minutes of the meeting\r\n\r\nhello\r\n",
    b"From: b@sender.test\r\nSubject: You won the Lottery!\r\nX-Long: "
    + b"x" * 200 + b"\r\n\r\nclaim now\r\n",
]


def send_all(srv):
    """The client scenario: each message in its own session; the DATA reply of each."""
    replies = []
    for msg in MESSAGES:
        with smtplib.SMTP("127.0.0.1", srv.port, local_hostname="client.example", timeout=30) as c:
            c.ehlo()
            c.mail("a@sender.test")
            assert c.rcpt("x@example.test")[0] == 250
            code, text = c.data(msg)
            replies.append("%d %s" % (code, text.decode()))
    return replies


def journal_of(srv):
    paths = sorted(glob.glob(os.path.join(srv.dir, "var/journal/*.jsonl")))
    assert paths, "no journal"
    return paths


class RecordedHeaders(unittest.TestCase):
    USES_MXGATE = True

    def run_server(self, rules, journal="{ sample = 1 }"):
        srv = Mxgate({"journal": journal}, rules=rules)
        self.addCleanup(srv.cleanup)
        srv.start()
        try:
            replies = send_all(srv)
        finally:
            srv.stop()
        return srv, replies

    def test_a_new_header_rule_predicted_by_ruletest_is_the_reply_mxgate_gives_live(self):
        before, recorded = self.run_server(BASE)
        self.assertTrue(all(r.startswith("250 ") for r in recorded), recorded)
        new_rules = dict(BASE, **{"50-lottery.lua": LOTTERY})
        rdir = os.path.join(before.dir, "rules.new")
        os.makedirs(rdir)
        for name, src in new_rules.items():
            with open(os.path.join(rdir, name), "w") as f:
                f.write(src)
        p = ruletest("-c", before.conf_path, "-r", rdir, "--diff", *journal_of(before))
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("1 would change, 0 unanswered", p.stdout)
        predicted = re.findall(r"(?m)^\s+new\s+(\d{3} .*?)(?:\s{3}\(.*\))?$", p.stdout)
        # Reality: the same clients against mxgate running the new rules.
        _, live = self.run_server(new_rules)
        self.assertTrue(live[1].startswith("550 "), live)
        self.assertEqual(predicted, [live[1]], p.stdout)
        self.assertTrue(live[0].startswith("250 "), live)

    def test_headers_are_recorded_up_to_max_headers_cut_after_a_whole_field_and_never_the_body(self):
        srv, _ = self.run_server(BASE, journal="{ sample = 1, max_headers = 100 }")
        hooks = []
        for path in journal_of(srv):
            with open(path) as f:
                for line in f:
                    rec = json.loads(line)
                    hooks += [e for e in rec["events"] if e["e"] == "hook" and e["stage"] == "data"]
        self.assertEqual(len(hooks), 2)
        self.assertEqual(hooks[0]["headers"], "From: a@sender.test\r\nSubject: minutes of the meeting\r\n")
        self.assertNotIn("headers_cut", hooks[0])
        # The second's X-Long field passes 100 bytes: kept up to the field before it.
        self.assertEqual(hooks[1]["headers"], "From: b@sender.test\r\nSubject: You won the Lottery!\r\n")
        self.assertIs(hooks[1]["headers_cut"], True)
        for h in hooks:
            self.assertNotIn("hello", h["headers"])
            self.assertNotIn("claim", h["headers"])

    def test_max_headers_0_records_no_headers_and_a_header_rule_is_then_unanswered_not_guessed(self):
        srv, _ = self.run_server(BASE, journal="{ sample = 1, max_headers = 0 }")
        with open(journal_of(srv)[0]) as f:
            text = f.read()
        self.assertNotIn('"headers"', text)
        self.assertNotIn("Lottery", text)
        rdir = os.path.join(srv.dir, "rules.new")
        os.makedirs(rdir)
        for name, src in dict(BASE, **{"50-lottery.lua": LOTTERY}).items():
            with open(os.path.join(rdir, name), "w") as f:
                f.write(src)
        p = ruletest("-c", srv.conf_path, "-r", rdir, "--diff", *journal_of(srv))
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn("0 would change, 2 unanswered", p.stdout)     # was: "0 would change, 0 unanswered"
        self.assertIn("unanswered: s.headers (not in the record)", p.stdout)
        # Rules that never read s.headers replay such a journal with nothing unanswered.
        p = ruletest("-c", srv.conf_path, "--diff", *journal_of(srv))
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("0 would change, 0 unanswered", p.stdout)


if __name__ == "__main__":
    unittest.main()
