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


class Jobs(unittest.TestCase):
    """--jobs N: the journals cut into N runs of whole lines, one process each,
    print exactly what one process prints."""

    def test_sharded_replay_prints_what_one_process_prints(self):
        d = tempfile.mkdtemp(prefix="ruletest-jobs-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        first, second = os.path.join(d, "a.jsonl"), os.path.join(d, "b.jsonl")
        gen_journal.generate(300, first)
        gen_journal.generate(200, second, seed=11)
        with open(second) as f:
            lines = f.readlines()
        lines.insert(57, "not json\n")                    # a line every shard layout must report
        with open(second, "w") as f:
            f.writelines(lines)
        conf = os.path.join(d, "mxgate.lua")
        with open(conf, "w") as f:
            f.write(gen_journal.CONFIG + 'stdlib = "%s/stdlib"\n' % ROOT)
        rules = os.path.join(d, "rules.d")
        shutil.copytree(os.path.join(ROOT, "rules.d"), rules)
        with open(os.path.join(rules, "00-text.lua"), "w") as f:
            f.write('reason("not_hosted", { text = "We do not host that domain" })\n')
        runs = {}
        for jobs in ("1", "2", "5"):
            p = ruletest("-c", conf, "-r", rules, "--diff", "--coverage", "--jobs", jobs, first, second)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            runs[jobs] = (p.stdout, p.stderr)
        self.assertIn("b.jsonl:58: not a session record", runs["1"][1])
        self.assertRegex(runs["1"][0], r"summary: 500 sessions replayed: \d+ same, [1-9]\d* would change")
        self.assertRegex(runs["1"][0], r"\(.*b\.jsonl:1\d\d\)")   # line numbers past the cut
        self.assertEqual(runs["2"], runs["1"])
        self.assertEqual(runs["5"], runs["1"])

    def test_a_prediction_that_needs_earlier_shards_state_is_replayed_as_one_job(self):
        # One customer sends all the outbound mail; the sender rate limit
        # goes from 100 to 3 an hour: the recorded ratelimit() answers no
        # longer fit, so every outbound session leans on the simulated rate,
        # which the sessions of every earlier shard fed. A shard on its own
        # would start that customer at zero and predict too few deferrals.
        d = tempfile.mkdtemp(prefix="ruletest-jobs-sim-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        journal = os.path.join(d, "j.jsonl")
        gen_journal.generate(600, journal)
        one = "user1@sender1.example"
        with open(journal) as f:
            recs = [json.loads(l) for l in f]
        for r in recs:
            if r["direction"] != "outbound":
                continue
            for e in r["events"]:
                if e["e"] == "cmd" and e["line"].startswith("MAIL FROM:"):
                    e["line"] = "MAIL FROM:<%s>" % one
                elif e["e"] == "hook" and e.get("stage") == "mail":
                    e["sender"] = one
                elif e["e"] == "call" and e["p"] == "ratelimit":
                    e["a"][0] = "sender:" + one
        with open(journal, "w") as f:
            f.writelines(json.dumps(r, separators=(",", ":")) + "\n" for r in recs)
        conf = os.path.join(d, "mxgate.lua")
        with open(conf, "w") as f:
            f.write(gen_journal.CONFIG.replace("limit = 100", "limit = 3") + 'stdlib = "%s/stdlib"\n' % ROOT)
        runs = {}
        for jobs in ("1", "2", "4"):
            p = ruletest("-c", conf, "-r", os.path.join(ROOT, "rules.d"), "--diff", "--jobs", jobs, journal)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            runs[jobs] = p
        m = re.search(r"would change: (\d+) \(0 from recorded answers only, (\d+) using simulated state\)",
                      runs["1"].stdout)
        self.assertTrue(m, runs["1"].stdout[-2000:])
        self.assertEqual(m.group(1), m.group(2))
        self.assertGreater(int(m.group(1)), 20)
        for jobs in ("2", "4"):
            self.assertEqual(runs[jobs].stdout, runs["1"].stdout)
            self.assertRegex(runs[jobs].stderr, r"ruletest: of %s runs, a later one answered from \d+ state records? "
                             r"or questions? an earlier one had met .*: replaying as one job" % jobs)
        self.assertEqual(runs["1"].stderr, "")

    def test_simulated_answers_no_earlier_run_could_change_stay_parallel(self):
        # Greylisting turned on for every inbound recipient: none of the
        # recorded sessions asked greylist(), so every inbound RCPT is
        # answered by the simulation; each tuple (client, sender, recipient)
        # comes once, so no run's answers depend on another run's sessions
        # and the runs' predictions are what one job predicts.
        d = tempfile.mkdtemp(prefix="ruletest-jobs-grey-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        journal = os.path.join(d, "j.jsonl")
        gen_journal.generate(600, journal)
        conf = os.path.join(d, "mxgate.lua")
        with open(conf, "w") as f:
            f.write(gen_journal.CONFIG.replace("greylist = false", "greylist = true") +
                    'stdlib = "%s/stdlib"\n' % ROOT)
        runs = {}
        for jobs in ("1", "2", "4"):
            p = ruletest("-c", conf, "-r", os.path.join(ROOT, "rules.d"), "--diff", "--jobs", jobs, journal)
            self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
            self.assertEqual(p.stderr, "")
            runs[jobs] = p.stdout
        self.assertRegex(runs["1"], r"would change: [1-9]\d* \(0 from recorded answers only, [1-9]\d* using "
                         r"simulated state\)")
        self.assertEqual(runs["2"], runs["1"])
        self.assertEqual(runs["4"], runs["1"])
