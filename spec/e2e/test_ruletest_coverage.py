"""ruletest --coverage: per rule (file:line, name, hook) the sessions that reached
it and those it decided; rules no session reached are listed."""
import json
import os
import re
import shutil
import sys
import tempfile
import unittest

from spec.e2e.harness import ROOT
from spec.e2e.test_ruletest import ruletest

sys.path.insert(0, os.path.join(ROOT, "bench"))
import gen_journal  # noqa: E402

RULES = {
    "10-first.lua": '''\
rule("mail", "log_sender", function(s)
  log("sender " .. s.sender)
end)

rule("rcpt", "vip", function(s)
  if s.rcpt:match("^vip@") then return accept() end
end)
''',
    "20-second.lua": '''\
rule("rcpt", "everyone", function(s)
  return accept()
end)

rule("rcpt", "after_everyone", function(s)
  return deny("not_hosted")
end)

rule("data", "never_disabled", function(s) end)
disable("never_disabled")
''',
}

CASE = """\
# %s
client 192.0.2.1
> EHLO c.example
> MAIL FROM:<a@example.org>
%s> QUIT
"""


def rows(out):
    """{rule name: (where, hook, reached, decided)} from the coverage table."""
    table = {}
    for m in re.finditer(r"(?m)^  (\S+:\d+)\s+(\S+)\s+(\S+)\s+(\d+|disabled)\s+(\d+|-)$", out):
        table[m.group(2)] = (m.group(1), m.group(3), m.group(4), m.group(5))
    return table


class Coverage(unittest.TestCase):
    def setUp(self):
        self.dir = tempfile.mkdtemp(prefix="ruletest-cov-")
        self.addCleanup(shutil.rmtree, self.dir, ignore_errors=True)

    def write(self, name, text):
        path = os.path.join(self.dir, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_each_rule_counts_the_sessions_that_reached_it_and_that_it_decided(self):
        for name, src in RULES.items():
            self.write("rules/" + name, src)
        cases = [
            self.write("a.session", CASE % ("two recipients, one vip", "> RCPT TO:<vip@example.test>\n"
                                                                       "> RCPT TO:<bob@example.test>\n")),
            self.write("b.session", CASE % ("one recipient", "> RCPT TO:<carol@example.test>\n")),
            self.write("c.session", CASE % ("no recipient", "")),
        ]
        p = ruletest("-c", os.path.join(ROOT, "spec/ruletest/mxgate.lua"), "-r", os.path.join(self.dir, "rules"),
                     "--coverage", *cases)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        t = rows(p.stdout)
        # A session counts once per rule, however many RCPTs ran it.
        self.assertEqual(t["log_sender"], ("rules.d/10-first.lua:1", "mail", "3", "0"))
        self.assertEqual(t["vip"], ("rules.d/10-first.lua:5", "rcpt", "2", "1"))
        self.assertEqual(t["everyone"], ("rules.d/20-second.lua:1", "rcpt", "2", "2"))
        self.assertEqual(t["after_everyone"], ("rules.d/20-second.lua:5", "rcpt", "0", "0"))
        self.assertEqual(t["never_disabled"][2:], ("disabled", "-"))
        never = p.stdout.split("never reached: ", 1)[1]
        self.assertTrue(never.startswith("1\n"), never)
        self.assertRegex(never, r"20-second\.lua:5\s+after_everyone\s+rcpt")
        self.assertRegex(p.stdout, r"reached but never decided: 1\n  \S+/10-first\.lua:1\s+log_sender\s+mail")

    def test_coverage_of_a_journal_with_the_default_rules_matches_its_verdicts(self):
        journal = os.path.join(self.dir, "journal.jsonl")
        gen_journal.generate(400, journal)
        conf = self.write("mxgate.lua", gen_journal.CONFIG + 'stdlib = "%s/stdlib"\n' % ROOT)
        p = ruletest("-c", conf, "-r", os.path.join(ROOT, "rules.d"), "--diff", "--coverage", journal)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(journal) as f:
            records = [json.loads(l) for l in f]

        def sessions(**match):
            return sum(1 for r in records if any(e["e"] == "verdict" and all(e.get(k) == v for k, v in match.items())
                                                 for e in r["events"]))
        t = rows(p.stdout)
        self.assertEqual(t["dnsbl_xbl"][0], "rules.d/50-dnsbl.lua:54")
        self.assertEqual(int(t["dnsbl_xbl"][3]), sessions(reason="xbl"))
        self.assertEqual(int(t["accept"][3]), sessions(action="accept"))
        self.assertEqual(int(t["dnsbl_prefetch"][2]), len(records))              # every session connects
        self.assertIn("of 400 sessions", p.stdout)


if __name__ == "__main__":
    unittest.main()
