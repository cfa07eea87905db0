"""ruletest: replay sessions mxgate recorded in its journal against a ruleset,
offline, and hand-written cases; a transcript of what an operator runs.

One server records a day in miniature (accepted and refused recipients, a
DNSBL listing from rbldnsd, greylisting with its retry, STARTTLS, the
outbound relay with its rate limit); each test then replays that journal.
"""
import atexit
import glob
import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from spec.e2e import dnsserver
from spec.e2e.harness import ROOT, Mxgate, binary

ZONE = "zen.test"
LISTED = "127.0.0.2"          # answers 127.0.0.4: XBL

RULES = {
    "10-hosted.lua": '''\
rule("rcpt", "hosted_domain", function(s)
  if s.inbound and not hosted(s.rcpt_domain) then return deny("not_hosted") end
end)
''',
    "15-vip.lua": '''\
rule("rcpt", "vip", function(s)
  if s.rcpt:match("^vip@") then return accept() end
end)
''',
    "20-dnsbl.lua": '''\
rule("rcpt", "xbl", function(s)
  if not s.inbound then return end
  local code = dnsbl(s.ip, "zen.test", { "127.0.0.4-127.0.0.7" })
  if code then return deny("xbl", s.ip .. " is listed at zen.test (" .. code .. ")") end
end)
''',
    "25-rate.lua": '''\
rule("mail", "rate", function(s)
  if not s.outbound then return end
  local r = ratelimit("sender:" .. s.sender, 100, 3600, { mode = "leaky" })
  if r and r.over then return defer("sender_rate") end
end)
''',
    "30-greylist.lua": '''\
rule("rcpt", "greylist", function(s)
  if not s.inbound then return end
  local r = greylist(s.ip, s.sender, s.rcpt, config.greylist)
  if not r.pass then return defer("greylisted", "retry in " .. math.ceil(r.wait) .. "s") end
end)
''',
    "99-accept.lua": 'rule("rcpt", "accept", function(s) return accept() end)\n',
}


def ruletest_bin():
    """bin/ruletest beside the mxgate under test (bin-asan/ in the ASan pass)."""
    return os.path.join(os.path.dirname(binary()), "ruletest")


def env():
    e = dict(os.environ)
    e.setdefault("ASAN_OPTIONS", "detect_leaks=1:abort_on_error=0")
    e.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return e


def ruletest(*args, stdin=None, exe=None):
    p = subprocess.run([exe or ruletest_bin()] + list(args), cwd=ROOT, capture_output=True, text=True,
                       input=stdin, timeout=120, env=env())
    out = p.stdout + p.stderr
    if "AddressSanitizer" in out or "runtime error:" in out or "LeakSanitizer" in out:
        raise AssertionError("sanitizer report from ruletest:\n" + out[-6000:])
    return p


def sessions_in_diff(out):
    return set(re.findall(r"^session (\S+) ", out, re.M))


class Recorded(unittest.TestCase):
    """A journal recorded once by a real mxgate, replayed by every test."""
    USES_MXGATE = True

    prepared = False

    def setUp(self):
        # spec/run.py runs each test on its own (no setUpClass): record once, lazily.
        if not Recorded.prepared:
            Recorded.prepared = True
            Recorded.prepare()
            atexit.register(Recorded.srv.cleanup)
        if not Recorded.journal:
            self.fail("the recording failed")

    journal = None

    @classmethod
    def prepare(cls):
        cls.rbl = dnsserver.Rbldnsd({ZONE: ("ip4set", ":127.0.0.4:Listed\n%s\n" % LISTED)})
        cls.rbl.start()
        cls.srv = Mxgate({"dns": '{ servers = "%s" }' % cls.rbl.address, "greylist": "{ delay = 1 }",
                          "relay_networks": '{ "127.0.0.0/8" }'}, rules=dict(RULES))
        try:
            cls.srv.start()
            cls.record()
        finally:
            cls.srv.stop()
            cls.rbl.stop()
        cls.journal = sorted(glob.glob(os.path.join(cls.srv.dir, "var/journal/*.jsonl")))
        assert cls.journal, "no journal written"
        with open(cls.journal[0]) as f:
            cls.records = [json.loads(l) for l in f if l.strip()]

    @classmethod
    def client(cls, source="127.0.0.1", direction="inbound"):
        return smtplib.SMTP("127.0.0.1", cls.srv.ports[direction], local_hostname="client.example",
                            timeout=30, source_address=(source, 0))

    @classmethod
    def record(cls):
        with cls.client() as c:                         # greylisted, then refused (not hosted)
            c.ehlo()
            c.mail("a@sender.test")
            assert c.rcpt("x@example.test")[0] == 451
            assert c.rcpt("x@other.test")[0] == 550
        time.sleep(1.2)
        with cls.client() as c:                         # the retry passes; a message
            c.ehlo()
            c.mail("a@sender.test")
            assert c.rcpt("x@example.test")[0] == 250
            assert c.data(b"Subject: hi\r\n\r\nhello\r\n")[0] == 250
        with cls.client(LISTED) as c:                   # DNSBL: XBL
            c.ehlo()
            c.mail("b@sender.test")
            code, msg = c.rcpt("y@example.test")
            assert code == 550 and msg.startswith(b"5.7.1 XBL"), (code, msg)
            assert c.docmd("DATA")[0] == 503
        with cls.client() as c:                         # STARTTLS
            c.ehlo()
            c.starttls()
            c.ehlo()
            c.mail("c@sender.test")
            assert c.rcpt("vip@example.test")[0] == 250
        with cls.client() as c:                         # a VIP the order of rules decides
            c.ehlo()
            c.mail("d@sender.test")
            assert c.rcpt("vip@other.test")[0] == 550
            assert c.docmd("NOOP")[0] == 250
            assert c.docmd("BOGUS")[0] == 500
        with cls.client(direction="outbound") as c:     # the relay, rate-limited
            c.ehlo()
            c.mail("e@customer.test")
            assert c.rcpt("z@far.test")[0] == 250
            c.rset()
            assert c.rcpt("z@far.test")[0] == 503

    def rules_dir(self, rules):
        d = tempfile.mkdtemp(prefix="ruletest-rules-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        for name, src in rules.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(src)
        return d

    def sids_with(self, *fragments):
        return {r["sid"] for r in self.records
                if any(f in e.get("line", "") for e in r["events"] for f in fragments)}

    # ------------------------------------------------------------------

    def test_the_journal_holds_every_session_with_its_primitive_answers(self):
        calls = [e["p"] for r in self.records for e in r["events"] if e["e"] == "call"]
        self.assertIn("dns", calls)
        self.assertIn("greylist", calls)
        self.assertIn("ratelimit", calls)
        self.assertTrue(any(e["e"] == "tls" for r in self.records for e in r["events"]))

    def test_replaying_with_the_same_rules_changes_no_reply(self):
        p = ruletest("-c", self.srv.conf_path, "--diff", *self.journal)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual(sessions_in_diff(p.stdout), set())
        m = re.search(r"summary: (\d+) sessions replayed: (\d+) same, 0 would change, 0 unanswered", p.stdout)
        self.assertTrue(m, p.stdout)
        self.assertEqual(int(m.group(1)), len(self.records))

    def test_the_trace_shows_hooks_rules_answers_verdicts_and_replies(self):
        p = ruletest("-c", self.srv.conf_path, *self.journal)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout
        self.assertIn('dns("2.0.0.127.zen.test","a") -> ["127.0.0.4"],"ok"', out)
        self.assertRegex(out, r"rule xbl \(rules\.d/20-dnsbl\.lua:\d+\): deny xbl")
        self.assertRegex(out, r"greylist\(\"127\.0\.0\.1\",\"a@sender\.test\",\"x@example\.test\",\[\]\) -> "
                              r"\{[^\n]*\"pass\":false")
        self.assertIn("= 451 4.7.1 Greylisted: retry in 1s", out)
        self.assertIn("= 550 5.7.1 XBL: 127.0.0.2 is listed at zen.test (127.0.0.4)", out)
        self.assertIn("(TLS TLSv1.3", out)
        self.assertIn("= 503 5.5.1 Error: need RCPT command", out)
        self.assertIn("= 500 5.5.2 Error: command not recognized", out)
        self.assertIn("= 250 2.0.0 Ok: queued as", out)
        self.assertNotIn("CHANGED", out)
        self.assertRegex(out, r"rcpt deny xbl +1 +1")

    def test_reordered_rules_and_a_changed_message_show_exactly_the_sessions_that_change(self):
        rules = dict(RULES)
        # "vip" now runs before "hosted_domain", and not_hosted says something else.
        rules["05-vip.lua"] = rules.pop("15-vip.lua")
        rules["00-reasons.lua"] = 'reason("not_hosted", { text = "We do not host that domain" })\n'
        p = ruletest("-c", self.srv.conf_path, "-r", self.rules_dir(rules), "--diff", *self.journal)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        expected = self.sids_with("x@other.test", "vip@other.test")
        self.assertEqual(len(expected), 2)
        self.assertEqual(sessions_in_diff(p.stdout), expected, p.stdout)
        self.assertIn("recorded  550 5.7.1 Your domain is not configured to use this MX host.", p.stdout)
        self.assertIn("new       550 5.7.1 We do not host that domain", p.stdout)
        self.assertRegex(p.stdout, r"new       250 2\.1\.5 Ok   \(rules\.d/05-vip\.lua:\d+\)")
        self.assertIn("2 would change, 0 unanswered", p.stdout)

    def test_a_lookup_the_record_never_made_is_reported_unanswered(self):
        rules = dict(RULES)
        rules["12-mx.lua"] = '''\
rule("mail", "sender_mx", function(s)
  local mx, status = dns(s.sender_domain or "", "mx")
  if status == "nxdomain" then return deny { text = "no such domain" } end
end)
'''
        p = ruletest("-c", self.srv.conf_path, "-r", self.rules_dir(rules), "--diff", *self.journal)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn('unanswered: dns("sender.test","mx")', p.stdout)
        n = len([r for r in self.records if any(e.get("line", "").upper().startswith("MAIL") and
                                                "customer.test" not in e["line"] for e in r["events"])])
        self.assertRegex(p.stdout, r"0 would change, %d unanswered" % (n + 1))
        # In the trace the rule saw nil, "unanswered", and went on.
        t = ruletest("-c", self.srv.conf_path, "-r", self.rules_dir(rules), *self.journal)
        self.assertIn('dns("sender.test","mx") -> UNANSWERED', t.stdout)
        self.assertIn("result: UNANSWERED", t.stdout)

    def test_live_asks_the_network_only_what_nothing_recorded_answers_and_says_so(self):
        rbl = dnsserver.Rbldnsd({"live.test": ("ip4set", ":127.0.0.2:Listed\n127.0.0.1\n")})
        rbl.start()
        self.addCleanup(rbl.stop)
        with open(self.srv.conf_path) as f:
            conf = re.sub(r"(?m)^dns = .*$", 'dns = { servers = "%s" }' % rbl.address, f.read())
        path = os.path.join(tempfile.mkdtemp(prefix="ruletest-live-"), "mxgate.lua")
        self.addCleanup(shutil.rmtree, os.path.dirname(path), ignore_errors=True)
        with open(path, "w") as f:
            f.write(conf)
        rules = dict(RULES)
        rules["22-live.lua"] = '''\
rule("rcpt", "live_zone", function(s)
  if not s.inbound then return end
  local code = dnsbl(s.ip, "live.test")
  if code then return deny("rbl", s.ip .. " is listed at live.test (" .. code .. ")") end
end)
'''
        d = self.rules_dir(rules)
        offline = ruletest("-c", path, "-r", d, "--diff", *self.journal)
        self.assertIn('unanswered: dns("1.0.0.127.live.test","a")', offline.stdout)
        p = ruletest("-c", path, "-r", d, "--live", "--diff", *self.journal)
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        self.assertIn('live: dns("1.0.0.127.live.test","a") -> ["127.0.0.2"],"ok",', p.stdout)
        self.assertIn("550 5.7.1 RBL Reject: 127.0.0.1 is listed at live.test (127.0.0.2)", p.stdout)
        m = re.search(r"summary: \d+ sessions replayed: \d+ same, (\d+) would change, 0 unanswered", p.stdout)
        self.assertTrue(m, p.stdout)
        self.assertRegex(p.stdout, r"would change: %s \(0 from recorded answers only, .*%s using live answers\)"
                         % (m.group(1), m.group(1)))
        # The questions the record answers are never asked again.
        self.assertNotIn('live: dns("2.0.0.127.zen.test"', p.stdout)

    def test_a_truncated_line_and_a_line_of_garbage_are_reported_and_skipped(self):
        with open(self.journal[0]) as f:
            lines = [l for l in f if l.strip()]
        d = tempfile.mkdtemp(prefix="ruletest-bad-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        path = os.path.join(d, "journal.jsonl")
        with open(path, "w") as f:
            f.write(lines[2])
            f.write(lines[3][:len(lines[3]) // 2] + "\n")       # cut by a crash
            f.write("this is not JSON at all\n")
            f.write('{"v":1,"sid":"x","events":[]}\n')           # JSON, but no session
            f.write("".join(lines[4:]))
        bins = [ruletest_bin()]
        asan = os.path.join(ROOT, "bin-asan/ruletest")
        if os.path.exists(asan) and asan not in bins:
            bins.append(asan)
        for exe in bins:
            p = ruletest("-c", self.srv.conf_path, path, exe=exe)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn(path + ":2: truncated line", p.stderr)
            self.assertIn(path + ":3: not a session record", p.stderr)
            self.assertIn(path + ":4: not a session record", p.stderr)
            self.assertIn("summary: %d sessions replayed: %d same, 0 would change, 0 unanswered, 3 lines skipped"
                          % (len(lines) - 3, len(lines) - 3), p.stdout)

    def test_rules_that_do_not_load_exit_2_with_file_and_line(self):
        d = self.rules_dir({"10-broken.lua": 'rule("rcpt", "x", function(s)\n  return deny("no_such_reason")\nend)\n'})
        p = ruletest("-c", self.srv.conf_path, "-r", d, *self.journal)
        self.assertEqual(p.returncode, 2)
        self.assertIn("rules.d/10-broken.lua:2", p.stderr)
        p = ruletest("-c", "/nonexistent.lua", *self.journal)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(ruletest().returncode, 2)


class Cases(unittest.TestCase):
    """Hand-written sessions: spec/ruletest/*.session."""

    def run_cases(self, *paths):
        return ruletest("-c", os.path.join(ROOT, "spec/ruletest/mxgate.lua"), *paths)

    def test_the_shipped_cases_pass(self):
        cases = sorted(glob.glob(os.path.join(ROOT, "spec/ruletest/*.session")))
        self.assertGreaterEqual(len(cases), 15)
        p = self.run_cases(*cases)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("cases: %d passed, 0 failed" % len(cases), p.stdout)

    def write(self, text):
        d = tempfile.mkdtemp(prefix="ruletest-case-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        path = os.path.join(d, "wrong.session")
        with open(path, "w") as f:
            f.write(text)
        return path

    def test_a_wrong_expectation_fails_with_the_line_and_both_replies(self):
        path = self.write('''\
# An XBL client expected to be refused as PBL (wrong)
client 192.0.2.4
answer dns 4.2.0.192.zen.spamhaus.org -> 127.0.0.4
> EHLO mail.example.org
< 250
> MAIL FROM:<a@example.org>
< 250
> RCPT TO:<b@example.test>
< 550 5.7.1 PBL
''')
        p = self.run_cases(path)
        self.assertEqual(p.returncode, 1, p.stdout)
        self.assertIn("FAIL %s: An XBL client expected to be refused as PBL (wrong)" % path, p.stdout)
        self.assertIn("line 9: expected 550 5.7.1 PBL, got 550 5.7.1 XBL: 192.0.2.4 is listed", p.stdout)
        self.assertIn("cases: 0 passed, 1 failed", p.stdout)

    def test_a_question_the_case_does_not_answer_fails_it(self):
        path = self.write("client 192.0.2.1\n> EHLO a.example\n> MAIL FROM:<a@example.org>\n"
                          "> RCPT TO:<b@example.test>\n")
        p = self.run_cases(path)
        self.assertEqual(p.returncode, 1)
        self.assertIn('unanswered: dns("1.2.0.192.zen.spamhaus.org","a")', p.stdout)

    def test_a_malformed_case_names_its_line(self):
        path = self.write("client 192.0.2.1\n> EHLO a.example\n< two hundred fifty\n")
        p = self.run_cases(path)
        self.assertEqual(p.returncode, 1)
        self.assertIn(path + ":3: an expectation is: < CODE [TEXT PREFIX]", p.stdout)


class Interactive(unittest.TestCase):
    """exim -bh: commands on stdin, the trace and the replies as they go."""

    def test_commands_through_a_pipe(self):
        p = ruletest("-c", os.path.join(ROOT, "spec/ruletest/mxgate.lua"), "--client", "192.0.2.4",
                     "--answer", "dns:4.2.0.192.zen.spamhaus.org=127.0.0.4",
                     stdin="EHLO mail.example.org\r\nMAIL FROM:<a@example.org>\r\n"
                           "RCPT TO:<b@example.test>\r\nRCPT TO:<c@elsewhere.example>\r\nQUIT\r\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout
        self.assertRegex(out, r"(?m)^220 mx\.mxgate\.test ESMTP mxgate$")
        self.assertRegex(out, r"(?m)^250-mx\.mxgate\.test$")
        self.assertRegex(out, r"(?m)^250 SMTPUTF8$")
        self.assertIn('>>> dns("4.2.0.192.zen.spamhaus.org","a") -> ["127.0.0.4"],"ok"', out)
        self.assertRegex(out, r">>> rule dnsbl_xbl \(rules\.d/50-dnsbl\.lua:\d+\): deny xbl")
        self.assertRegex(out, r"(?m)^550 5\.7\.1 XBL: 192\.0\.2\.4 is listed")
        self.assertRegex(out, r"(?m)^550 5\.7\.1 Your domain is not configured to use this MX host\.$")
        self.assertRegex(out, r"(?m)^221 2\.0\.0 Bye$")

    def test_a_rules_log_line_names_the_rule_that_logged(self):
        d = tempfile.mkdtemp(prefix="ruletest-log-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        with open(os.path.join(d, "10-say.lua"), "w") as f:
            f.write('local function say(s)\n  log("hello " .. s.helo)\nend\n'
                    'rule("helo", "say", function(s)\n  say(s)\nend)\n')
        p = ruletest("-c", os.path.join(ROOT, "spec/ruletest/mxgate.lua"), "-r", d, "--client", "192.0.2.1",
                     stdin="EHLO a.example\r\nQUIT\r\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        # Was "log (stdlib/mxgate.lua:283)": the line of the trace's own wrapper.
        self.assertIn(">>> log (rules.d/10-say.lua:2): hello a.example", p.stdout)

    def test_outbound_with_a_message(self):
        p = ruletest("-c", os.path.join(ROOT, "spec/ruletest/mxgate.lua"), "--client", "10.0.0.5",
                     "--direction", "outbound", "--answer", "ratelimit * -> under 3",
                     stdin="EHLO c.example\nMAIL FROM:<a@customer.example>\nRCPT TO:<b@far.example>\n"
                           "DATA\nSubject: hello\n\nbody\n.\nQUIT\n")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertRegex(p.stdout, r"(?m)^354 ")
        self.assertRegex(p.stdout, r"(?m)^250 2\.0\.0 Ok: queued as RT")
        self.assertRegex(p.stdout, r"(?m)^221 ")


if __name__ == "__main__":
    unittest.main()


class JournalBounds(unittest.TestCase):
    """Issue 11 item 9: a long session stays visible to ruletest."""
    USES_MXGATE = True

    def test_a_record_over_max_record_is_cut_at_an_event_boundary_into_valid_json(self):
        srv = Mxgate({"journal": "{ sample = 1, max_record = 4096 }"}, rules=dict(RULES))
        self.addCleanup(srv.cleanup)
        srv.start()
        try:
            with srv.smtp() as c:
                c.ehlo()
                for i in range(80):                     # ~9 KiB of events: twice the bound
                    self.assertEqual(c.docmd("NOOP", "x" * 60 + str(i))[0], 250)
                c.quit()
        finally:
            srv.stop()
        path = sorted(glob.glob(os.path.join(srv.dir, "var/journal/*.jsonl")))[0]
        with open(path, "rb") as f:
            lines = [l for l in f.read().split(b"\n") if b"NOOP" in l]   # (the harness's probes aside)
        self.assertEqual(len(lines), 1)
        self.assertLessEqual(len(lines[0]) + 1, 4096)
        rec = json.loads(lines[0])                      # was: cut mid-event, not JSON
        self.assertIs(rec.get("truncated"), True)
        events = rec["events"]
        self.assertEqual(events[0], {"e": "hook", "stage": "connect"})  # kept from the start...
        self.assertTrue(all("e" in e for e in events))  # ...and every event kept is whole
        kept = [e["line"] for e in events if e["e"] == "cmd" and e["line"].startswith("NOOP")]
        self.assertGreater(len(kept), 10)
        self.assertLess(len(kept), 80)
        self.assertEqual(kept, ["NOOP " + "x" * 60 + str(i) for i in range(len(kept))])
        p = ruletest("-c", srv.conf_path, "--diff", path)
        self.assertIn("1 truncated record, 0 lines skipped", p.stdout)

    def test_bytes_that_are_not_utf8_are_journaled_as_valid_json_and_replay_the_same(self):
        srv = Mxgate({"journal": "{ sample = 1 }"}, rules=dict(RULES))
        self.addCleanup(srv.cleanup)
        srv.start()
        try:
            c = srv.raw()
            c.expect(220)
            c.send(b"EHLO caf\xe9.\xff\xfe.example\r\n")          # Latin-1 and garbage, not UTF-8
            c.read_reply()
            c.send(b"MAIL FROM:<\xc3\xa9t\xe9@sender.test>\r\n")   # UTF-8 and Latin-1 mixed
            c.read_reply()
            c.cmd("QUIT", 221)
        finally:
            srv.stop()
        path = sorted(glob.glob(os.path.join(srv.dir, "var/journal/*.jsonl")))[0]
        with open(path, "rb") as f:
            lines = [l for l in f.read().split(b"\n") if b"EHLO" in l]
        self.assertEqual(len(lines), 1)
        rec = json.loads(lines[0].decode("utf-8"))           # strict UTF-8, valid JSON
        cmds = [e["line"] for e in rec["events"] if e["e"] == "cmd"]
        self.assertEqual(cmds[0], "EHLO caf\u00e9.\u00ff\u00fe.example")
        p = ruletest("-c", srv.conf_path, "--diff", path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"summary: \d+ sessions? replayed: \d+ same, 0 would change, 0 unanswered")

    def test_diff_exits_non_zero_when_lines_were_skipped_unless_allow_skipped(self):
        d = tempfile.mkdtemp(prefix="ruletest-skip-")
        self.addCleanup(shutil.rmtree, d, ignore_errors=True)
        conf = os.path.join(ROOT, "spec/ruletest/mxgate.lua")
        path = os.path.join(d, "journal.jsonl")
        with open(path, "w") as f:
            f.write('{"v":1,"sid":"x","time":1,"client":{"ip":"192.0.2.1","port":1},"events":[{"e":"cmd","line":"EHLO')
            f.write("\nnot JSON at all\n")
        p = ruletest("-c", conf, "--diff", path)       # every line skipped: was exit 0
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("2 lines skipped", p.stdout)
        self.assertIn("--allow-skipped", p.stderr)
        p = ruletest("-c", conf, "--diff", "--allow-skipped", path)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        p = ruletest("-c", conf, path)                  # a plain replay reports and goes on
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
