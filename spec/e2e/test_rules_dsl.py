"""Rule semantics through real SMTP clients: order, replace/disable by name,
every verb at every hook, reasons from stdlib/reasons.lua, default deny at RCPT."""
import os
import smtplib
import subprocess

from spec.e2e.harness import ROOT
from spec.e2e.test_rules_common import RulesTest


def reasons_table():
    """stdlib/reasons.lua as Lua itself reads it: {key: (code, enhanced, text)}."""
    out = subprocess.run(
        ["lua5.4", "-e", 'for k, r in pairs(dofile("stdlib/reasons.lua")) do '
                         'io.write(k, "\\t", r.code, "\\t", r.enhanced, "\\t", r.text, "\\n") end'],
        cwd=ROOT, capture_output=True, text=True, check=True).stdout
    table = {}
    for line in out.splitlines():
        k, code, enh, text = line.split("\t")
        table[k] = (int(code), enh, text)
    return table


def rcpt(srv, *addrs, direction="inbound", helo="client.example"):
    """One session: EHLO, MAIL, then RCPT for each address: [(code, text)]."""
    with srv.smtp(direction) as c:
        c.ehlo(helo)
        code, msg = c.mail("sender@sender.test")
        assert code == 250, (code, msg)
        return [(code, msg.decode()) for code, msg in (c.rcpt(a) for a in addrs)]


def line(n, src):
    """The 1-based line of the first occurrence of n in src."""
    return src[:src.index(n)].count("\n") + 1


class RuleOrder(RulesTest):
    FIRST = '''\
rule("rcpt", "first_one", function(s)
  if s.rcpt == "within@example.test" then return deny { text = "first file, first rule" } end
end)
rule("rcpt", "first_two", function(s)
  if s.rcpt == "within@example.test" then return deny { text = "first file, second rule" } end
end)
rule("rcpt", "first_note", function(s)
  log("first_note saw " .. s.rcpt)      -- no verdict: the next rule runs
end)
rule("rcpt", "first_any", function(s) return deny { text = "first file" } end)
'''
    SECOND = '''\
rule("rcpt", "second_any", function(s) return deny { text = "second file" } end)
'''

    def test_the_first_file_then_the_first_rule_decides_and_renaming_reorders(self):
        srv = self.serve({"10-first.lua": self.FIRST, "20-second.lua": self.SECOND})
        self.assertEqual(rcpt(srv, "within@example.test", "any@example.test"),
                         [(550, "5.7.1 first file, first rule"), (550, "5.7.1 first file")])
        # A rule without a verdict let the chain go on to the next one.
        self.assertTrue(srv.log_has("rule_log", msg="first_note saw any@example.test"))

        os.rename(os.path.join(self.rules_dir(srv), "10-first.lua"),
                  os.path.join(self.rules_dir(srv), "30-first.lua"))
        self.assertEqual(self.reload(srv)["event"], "reloaded")
        self.assertEqual(rcpt(srv, "within@example.test", "any@example.test"),
                         [(550, "5.7.1 second file"), (550, "5.7.1 second file")])

    def test_an_accept_ends_the_hook_before_a_later_deny(self):
        srv = self.serve({
            "10-allow.lua": 'rule("rcpt", "allow", function(s)\n'
                            '  if s.rcpt == "ok@example.test" then return accept() end\nend)\n',
            "20-deny.lua": 'rule("rcpt", "deny_all", function(s) return deny { text = "denied" } end)\n'})
        self.assertEqual(rcpt(srv, "ok@example.test", "other@example.test"),
                         [(250, "2.1.5 Ok"), (550, "5.7.1 denied")])


class ReplaceAndDisable(RulesTest):
    BASE = '''\
rule("rcpt", "gate", function(s) return deny { text = "original gate" } end)
rule("rcpt", "tail", function(s) return deny { text = "tail" } end)
'''

    def test_replace_changes_the_rule_in_place(self):
        srv = self.serve({"10-base.lua": self.BASE, "50-local.lua": '''\
replace("gate", function(s) return deny { text = "replaced gate" } end)
'''})
        # In place: "tail" comes after "gate" in the chain and never answers.
        self.assertEqual(rcpt(srv, "a@example.test"), [(550, "5.7.1 replaced gate")])

    def test_disable_removes_the_rule(self):
        srv = self.serve({"10-base.lua": self.BASE, "50-local.lua": 'disable("gate")\n'})
        self.assertEqual(rcpt(srv, "a@example.test"), [(550, "5.7.1 tail")])

    def test_replace_after_disable_brings_the_rule_back_in_place(self):
        srv = self.serve({"10-base.lua": self.BASE, "50-local.lua": 'disable("gate")\n',
                          "60-more.lua": 'replace("gate", function(s) return deny { text = "back" } end)\n'})
        self.assertEqual(rcpt(srv, "a@example.test"), [(550, "5.7.1 back")])

    def test_a_duplicate_name_without_replace_is_refused_with_both_places(self):
        dup = '-- a local rule that forgot replace()\n' \
              'rule("rcpt", "gate", function(s) return accept() end)\n'
        srv = self.unstarted({"10-base.lua": self.BASE, "50-local.lua": dup})
        self.assert_refused(srv, "rules.d/50-local.lua:2:", 'rule "gate" is already defined at rules.d/10-base.lua:1')

    def test_a_duplicate_within_one_file_is_refused(self):
        srv = self.unstarted({"10-base.lua": self.BASE + 'rule("mail", "tail", function(s) end)\n'})
        self.assert_refused(srv, "rules.d/10-base.lua:3:", '"tail" is already defined at rules.d/10-base.lua:2')

    def test_replace_or_disable_of_an_unknown_name_is_refused(self):
        for src, what in (('replace("nope", function(s) end)\n', 'replace("nope"): no such rule'),
                          ('\ndisable("nope")\n', 'disable("nope"): no such rule')):
            with self.subTest(src=src):
                srv = self.unstarted({"10-base.lua": self.BASE, "50-local.lua": src})
                self.assert_refused(srv, "rules.d/50-local.lua:%d:" % (src.count("\n")), what)

    def test_registration_is_refused_outside_loading(self):
        # A rule that registers rules or rewrites reasons while it runs would
        # change the ruleset under every other session of the generation.
        srv = self.serve({"10-late.lua": '''\
rule("rcpt", "late", function(s)
  if s.rcpt == "rule@example.test" then rule("rcpt", "sneaky", function() return accept() end) end
  if s.rcpt == "reason@example.test" then reason("xbl", { text = "rewritten" }) end
  if s.rcpt == "disable@example.test" then disable("xbl_rule") end
end)
rule("rcpt", "xbl_rule", function(s) return deny("xbl") end)
'''})
        self.assertEqual(rcpt(srv, "rule@example.test", "reason@example.test", "disable@example.test",
                              "after@example.test"),
                         [(451, "4.3.0 Temporary local problem, try again later")] * 3 +
                         [(550, "5.7.1 XBL")])
        self.assertEqual([e["error"].split(": only")[0] for e in self.rule_errors(srv)],
                         ["rules.d/10-late.lua:2: rule()", "rules.d/10-late.lua:3: reason()",
                          "rules.d/10-late.lua:4: disable()"])


class EveryVerb(RulesTest):
    """One ruleset; the client's HELO name says which verb to try at which hook
    ("deny-mail.test": deny at MAIL), so each test reads as one transcript."""
    VERBS = '''\
local function asked(s, hook)
  local verb, at = (s.helo or ""):match("^(%a+)%-(%a+)%.test$")
  if at == hook then return verb end
end

rule("connect", "deny_connect", function(s)
  if s.outbound then return deny { text = "no relay today" } end
end)

rule("helo", "accept_helo", function(s)
  if asked(s, "helo") == "accept" then return accept() end
end)
rule("helo", "helo_verbs", function(s)
  local v = asked(s, "helo")
  if v == "deny" or v == "accept" then return deny("helo_self") end
end)

rule("starttls", "starttls_verbs", function(s)
  if asked(s, "starttls") == "deny" then return deny { code = 554, enhanced = "5.7.3", text = "no TLS here" } end
end)

rule("mail", "mail_verbs", function(s)
  local v = asked(s, "mail")
  if v == "deny" then return deny("rbl", s.sender .. " is unwelcome") end
  if v == "defer" then return defer("greylisted") end
  if v == "warn" then return warn("rbl", "only a warning") end
  if v == "drop" then return drop { text = "go away" } end
end)
rule("mail", "after_warn", function(s)
  if asked(s, "mail") == "warn" then log("the rule after warn ran") end
end)

rule("rcpt", "rcpt_verbs", function(s)
  local v = asked(s, "rcpt")
  if v == "deny" then return deny("not_hosted", "see the portal") end
  if v == "defer" then return defer { text = "come back later" } end
  if v == "drop" then return drop("rbl") end
  if v == "table" then return deny { code = 553, enhanced = "5.1.3", text = "custom, in full" } end
  return accept()
end)

rule("predata", "predata_verbs", function(s)
  if asked(s, "predata") == "deny" then return deny { text = "no DATA for you" } end
  if asked(s, "predata") == "defer" then return defer("callout_failed") end
end)

rule("data", "data_verbs", function(s)
  if asked(s, "data") == "deny" then return deny("xbl", "at the end of data") end
  if asked(s, "data") == "defer" then return defer("sender_rate") end
end)
'''
    RULES = {"10-verbs.lua": VERBS}

    def setUp(self):
        self.srv = self.serve(self.RULES)
        self.reasons = reasons_table()

    def session(self, helo):
        c = self.srv.raw()
        self.addCleanup(c.close)
        c.expect(220)
        c.cmd("EHLO " + helo, 250)
        return c

    def reply(self, c, line):
        c.send(line + "\r\n")
        return c.read_reply()

    def test_deny_at_connect_is_554_then_close(self):
        c = self.srv.raw("outbound")
        self.assertEqual(c.replies(), [(554, ["554 5.7.1 no relay today"])])

    def test_accept_at_helo_ends_the_helo_hook(self):
        c = self.session("accept-helo.test")
        c.cmd("MAIL FROM:<a@sender.test>", 250)

    def test_deny_at_helo_with_a_reason_then_no_transaction(self):
        c = self.srv.raw()
        c.expect(220)
        code, enh, text = self.reasons["helo_self"]
        self.assertEqual(self.reply(c, "EHLO deny-helo.test"), (code, [f"{code} {enh} {text}"]))
        c.cmd("MAIL FROM:<a@sender.test>", 503)
        c.cmd("EHLO client.example", 250)          # the session goes on
        c.cmd("MAIL FROM:<a@sender.test>", 250)

    def test_deny_at_starttls_keeps_the_session_in_plaintext(self):
        c = self.session("deny-starttls.test")
        self.assertEqual(self.reply(c, "STARTTLS"), (554, ["554 5.7.3 no TLS here"]))
        c.cmd("MAIL FROM:<a@sender.test>", 250)

    def test_deny_at_mail_with_a_reason_and_detail(self):
        c = self.session("deny-mail.test")
        code, enh, text = self.reasons["rbl"]
        self.assertEqual(self.reply(c, "MAIL FROM:<bad@sender.test>"),
                         (code, [f"{code} {enh} {text}: bad@sender.test is unwelcome"]))
        c.cmd("RCPT TO:<a@example.test>", 503)     # no transaction began

    def test_defer_at_mail_answers_4xx_from_the_reason(self):
        c = self.session("defer-mail.test")
        code, enh, text = self.reasons["greylisted"]
        self.assertEqual(code // 100, 4)
        self.assertEqual(self.reply(c, "MAIL FROM:<a@sender.test>"), (code, [f"{code} {enh} {text}"]))

    def test_warn_is_logged_with_its_rule_and_the_session_goes_on(self):
        c = self.session("warn-mail.test")
        c.cmd("MAIL FROM:<a@sender.test>", 250)
        c.cmd("RCPT TO:<a@example.test>", 250)
        w = self.srv.events("warn")
        self.assertEqual(len(w), 1, w)
        self.assertEqual(w[0]["rule"], "mail_verbs")
        self.assertEqual(w[0]["where"], "rules.d/10-verbs.lua:%d" % line('rule("mail", "mail_verbs"', self.VERBS))
        self.assertEqual(w[0]["reason"], "rbl")
        self.assertEqual(w[0]["text"], self.reasons["rbl"][2] + ": only a warning")
        self.assertTrue(self.srv.log_has("rule_log", msg="the rule after warn ran"))
        self.assertEqual([e for e in self.srv.events("reject") if e["stage"] != "connect"], [])

    def test_drop_at_mail_replies_then_closes(self):
        c = self.session("drop-mail.test")
        c.send("MAIL FROM:<a@sender.test>\r\n")
        self.assertEqual(c.replies(), [(421, ["421 4.7.0 go away"])])

    def test_drop_at_rcpt_with_a_reason_replies_then_closes(self):
        c = self.session("drop-rcpt.test")
        c.cmd("MAIL FROM:<a@sender.test>", 250)
        c.send("RCPT TO:<a@example.test>\r\nNOOP\r\n")    # the NOOP is never answered
        code, enh, text = self.reasons["rbl"]
        self.assertEqual(c.replies(), [(code, [f"{code} {enh} {text}"])])

    def test_deny_at_rcpt_with_a_reason_ending_in_a_full_stop_and_detail(self):
        c = self.session("deny-rcpt.test")
        c.cmd("MAIL FROM:<a@sender.test>", 250)
        code, enh, text = self.reasons["not_hosted"]
        self.assertTrue(text.endswith("."))
        self.assertEqual(self.reply(c, "RCPT TO:<a@example.test>"), (code, [f"{code} {enh} {text} see the portal"]))
        r = self.srv.events("reject")[-1]
        self.assertEqual((r["stage"], r["reason"], r["rule"]),
                         ("rcpt", "not_hosted", "rules.d/10-verbs.lua:%d" % line('"rcpt_verbs"', self.VERBS)))

    def test_defer_at_rcpt_with_a_table_takes_the_4xx_defaults(self):
        c = self.session("defer-rcpt.test")
        c.cmd("MAIL FROM:<a@sender.test>", 250)
        self.assertEqual(self.reply(c, "RCPT TO:<a@example.test>"), (451, ["451 4.7.1 come back later"]))

    def test_an_explicit_table_verdict_gives_code_enhanced_and_text(self):
        c = self.session("table-rcpt.test")
        c.cmd("MAIL FROM:<a@sender.test>", 250)
        self.assertEqual(self.reply(c, "RCPT TO:<a@example.test>"), (553, ["553 5.1.3 custom, in full"]))

    def test_deny_at_predata_refuses_data(self):
        c = self.session("deny-predata.test")
        c.cmd("MAIL FROM:<a@sender.test>", 250)
        c.cmd("RCPT TO:<a@example.test>", 250)
        self.assertEqual(self.reply(c, "DATA"), (550, ["550 5.7.1 no DATA for you"]))
        c.cmd("RSET", 250)
        self.assertEqual(self.srv.queue(), [])

    def test_defer_at_predata(self):
        c = self.session("defer-predata.test")
        c.cmd("MAIL FROM:<a@sender.test>", 250)
        c.cmd("RCPT TO:<a@example.test>", 250)
        code, enh, text = self.reasons["callout_failed"]
        self.assertEqual(self.reply(c, "DATA"), (code, [f"{code} {enh} {text}"]))

    def test_deny_at_data_rejects_the_message_and_queues_nothing(self):
        c = self.session("deny-data.test")
        c.cmd("MAIL FROM:<a@sender.test>", 250)
        c.cmd("RCPT TO:<a@example.test>", 250)
        c.cmd("DATA", 354)
        code, enh, text = self.reasons["xbl"]
        self.assertEqual(self.reply(c, "Subject: t\r\n\r\nbody\r\n."),
                         (code, [f"{code} {enh} {text}: at the end of data"]))
        self.assertEqual((self.srv.queue(), self.srv.tmp()), ([], []))
        c.cmd("MAIL FROM:<a@sender.test>", 250)     # the transaction was reset

    def test_defer_at_data(self):
        c = self.session("defer-data.test")
        c.cmd("MAIL FROM:<a@sender.test>", 250)
        c.cmd("RCPT TO:<a@example.test>", 250)
        c.cmd("DATA", 354)
        code, enh, text = self.reasons["sender_rate"]
        self.assertEqual(self.reply(c, "Subject: t\r\n\r\nbody\r\n."), (code, [f"{code} {enh} {text}"]))
        self.assertEqual(self.srv.queue(), [])

    def test_accept_everywhere_queues_the_message(self):
        with self.srv.smtp() as c:
            c.ehlo("accept-helo.test")
            c.mail("a@sender.test")
            self.assertEqual(c.rcpt("a@example.test")[0], 250)
            code, msg = c.data(b"Subject: t\r\n\r\nbody\r\n")
        self.assertEqual(code, 250, msg)
        self.assertEqual(len(self.srv.queue()), 1)


class EveryReason(RulesTest):
    def test_each_reason_answers_its_exact_code_enhanced_code_and_text(self):
        table = reasons_table()
        srv = self.serve({"10-reasons.lua": '''\
rule("rcpt", "by_reason", function(s)
  local key, detail = s.rcpt:match("^([%w_]+)%+?(.-)@")
  local r = require("reasons")[key]
  local verb = r.code >= 500 and deny or defer
  return verb(key, detail)
end)
'''})
        keys = sorted(table)
        got = rcpt(srv, *(k + "@example.test" for k in keys))
        self.assertEqual(got, [(table[k][0], f"{table[k][1]} {table[k][2]}") for k in keys])
        # Detail goes after the reason, which stays verbatim.
        got = rcpt(srv, *(k + "+why@example.test" for k in keys))
        want = [(table[k][0], f"{table[k][1]} {table[k][2]}{' ' if table[k][2][-1] in '.!?' else ': '}why")
                for k in keys]
        self.assertEqual(got, want)

    def test_a_reason_override_in_a_rule_file_changes_the_text(self):
        srv = self.serve({"00-reasons.lua": 'reason("xbl", { text = "Listed on the XBL, see spamhaus.org" })\n'
                                            'reason("local_policy", { code = 550, enhanced = "5.7.1", text = "Local policy" })\n',
                          "10-x.lua": 'rule("rcpt", "x", function(s)\n'
                                      '  if s.rcpt == "new@example.test" then return deny("local_policy") end\n'
                                      '  return deny("xbl")\nend)\n'})
        self.assertEqual(rcpt(srv, "a@example.test", "new@example.test"),
                         [(550, "5.7.1 Listed on the XBL, see spamhaus.org"), (550, "5.7.1 Local policy")])


class DefaultDenyAtRcpt(RulesTest):
    def assert_default_deny(self, srv):
        for direction in ("inbound", "outbound"):
            with srv.smtp(direction) as c:
                self.assertEqual(c.ehlo()[0], 250)
                self.assertEqual(c.mail("a@sender.test")[0], 250)
                for addr in ("postmaster@example.test", "someone@elsewhere.test"):
                    code, msg = c.rcpt(addr)
                    self.assertEqual((code, msg[:5]), (550, b"5.7.1"), (direction, addr))
                self.assertEqual(c.docmd("DATA")[0], 503)

    def test_no_rcpt_rules_refuses_every_recipient_while_other_stages_accept(self):
        srv = self.serve({"10-other.lua": '''\
rule("helo", "note_helo", function(s) log("helo " .. s.helo) end)
rule("mail", "note_mail", function(s) log("mail " .. s.sender) end)
rule("rcpt", "undecided", function(s) log("no verdict for " .. s.rcpt) end)
'''})
        self.assert_default_deny(srv)
        self.assertTrue(srv.log_has("rule_log", msg="no verdict for postmaster@example.test"))
        r = [e for e in srv.events("reject") if e.get("stage") == "rcpt"]
        self.assertEqual(len(r), 4)
        self.assertTrue(all(e["reason"] == "relay_denied" for e in r), r)

    def test_an_empty_rules_directory_also_fails_closed(self):
        self.assert_default_deny(self.serve({}))
