"""The session as rules see it (s.*), and each session as its own coroutine:
a rule that sleeps holds up its own session only."""
import re
import select
import smtplib
import ssl
import threading
import time

from spec.e2e.harness import wait_for
from spec.e2e.test_rules_common import RulesTest

# Rules that answer with what they see: a multi-line deny, one "key=value" a line.
SHOW = r'''
local function show(pairs_)
  local out = {}
  for _, kv in ipairs(pairs_) do
    local v = kv[2]
    out[#out + 1] = kv[1] .. "=" .. (type(v) == "string" and string.format("%q", v) or tostring(v))
  end
  return deny { code = 550, enhanced = "5.7.1", text = table.concat(out, "\n") }
end

local kept = {}          -- file-level: outlives every session

rule("mail", "remember", function(s)
  s.data.at_mail = { sender = s.sender, sender_domain = s.sender_domain, rcpt = s.rcpt }
end)

rule("rcpt", "show", function(s)
  local what = s.rcpt:match("^(.-)@")
  if what == "conn" then
    return show { { "ip", s.ip }, { "client_port", s.client_port }, { "direction", s.direction },
                  { "inbound", s.inbound }, { "outbound", s.outbound },
                  { "local_ip", s.local_ip }, { "local_port", s.local_port },
                  { "hostname", s.hostname }, { "helo", s.helo } }
  elseif what == "tls" then
    return show { { "tls", s.tls }, { "tls_version", s.tls_version }, { "tls_cipher", s.tls_cipher } }
  elseif what == "env" then
    local m = s.data.at_mail
    return show { { "sender", s.sender }, { "sender_domain", s.sender_domain },
                  { "rcpt", s.rcpt }, { "rcpt_domain", s.rcpt_domain },
                  { "rcpts", table.concat(s.rcpts, ",") }, { "nrcpts", s.nrcpts },
                  { "mail.sender", m.sender }, { "mail.sender_domain", m.sender_domain },
                  { "mail.rcpt", m.rcpt }, { "qid", s.qid } }
  elseif what == "count" then
    s.data.n = (s.data.n or 0) + 1
    return show { { "n", s.data.n } }
  elseif what == "write" then
    s.ip = "192.0.2.1"
  elseif what == "writedata" then
    s.data = {}
  elseif what == "nofield" then
    return show { { "x", s.no_such_field } }
  elseif what == "keep" then
    -- A session kept in a file-level table outlives its SMTP session:
    -- reading it later must fail cleanly, never read freed memory.
    local prev = kept.s
    kept.s = s
    if prev then
      local ok, err = pcall(function() return prev.ip end)
      return show { { "ok", ok }, { "err", err }, { "str", tostring(prev) } }
    end
  end
  return accept()
end)

rule("predata", "predata_qid", function(s)
  if s.helo == "predata.test" then return show { { "qid", s.qid }, { "size", s.size } } end
end)

rule("data", "show_data", function(s)
  return show { { "size", s.size }, { "qid_ok", s.qid ~= nil and s.qid:match("^%w+$") ~= nil },
                { "headers", (s.headers:gsub("\r\n", "|")) }, { "rcpts", table.concat(s.rcpts, ",") },
                { "mail.sender", s.data.at_mail.sender } }
end)
'''


def fields(msg):
    """"5.7.1 k=v\\nk=v..." -> {k: v} (v as Lua printed it)."""
    text = msg.decode() if isinstance(msg, bytes) else msg
    out = {}
    for line in text.splitlines():
        line = re.sub(r"^5\.7\.1 ", "", line)
        k, _, v = line.partition("=")
        out[k] = v
    return out


def q(s):
    return '"%s"' % s


class SessionAsRulesSeeIt(RulesTest):
    def setUp(self):
        self.srv = self.serve({"10-show.lua": SHOW})

    def test_connection_facts(self):
        for direction in ("inbound", "outbound"):
            with self.srv.smtp(direction) as c:
                c.ehlo("client.example")
                c.mail("a@sender.test")
                code, msg = c.rcpt("conn@example.test")
                self.assertEqual(code, 550)
                f = fields(msg)
                self.assertEqual(f, {
                    "ip": q("127.0.0.1"), "client_port": str(c.sock.getsockname()[1]),
                    "direction": q(direction), "inbound": str(direction == "inbound").lower(),
                    "outbound": str(direction == "outbound").lower(),
                    "local_ip": q("127.0.0.1"), "local_port": str(self.srv.ports[direction]),
                    "hostname": q("mx.mxgate.test"), "helo": q("client.example")})

    def test_tls_facts_after_starttls(self):
        with self.srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            self.assertEqual(fields(c.rcpt("tls@example.test")[1]),
                             {"tls": "false", "tls_version": "nil", "tls_cipher": "nil"})
            c.rset()
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            self.assertEqual(c.starttls(context=ctx)[0], 220)
            c.ehlo()
            c.mail("a@sender.test")
            self.assertEqual(fields(c.rcpt("tls@example.test")[1]),
                             {"tls": "true", "tls_version": q(c.sock.version()),
                              "tls_cipher": q(c.sock.cipher()[0])})

    def test_envelope_facts_and_recipients_so_far(self):
        with self.srv.smtp() as c:
            c.ehlo()
            c.mail("Bob@Sender.TEST")
            self.assertEqual(c.rcpt("a@example.test")[0], 250)
            self.assertEqual(c.rcpt("b@example.test")[0], 250)
            code, msg = c.rcpt("env@Example.TEST")
            self.assertEqual(fields(msg), {
                "sender": q("Bob@Sender.TEST"), "sender_domain": q("sender.test"),
                "rcpt": q("env@Example.TEST"), "rcpt_domain": q("example.test"),
                "rcpts": q("a@example.test,b@example.test"), "nrcpts": "2",
                "mail.sender": q("Bob@Sender.TEST"), "mail.sender_domain": q("sender.test"),
                "mail.rcpt": "nil", "qid": "nil"})

    def test_the_null_sender_is_an_empty_string_from_the_mail_hook_on(self):
        with self.srv.smtp() as c:
            c.ehlo()
            self.assertEqual(c.docmd("MAIL FROM:<>")[0], 250)
            f = fields(c.rcpt("env@example.test")[1])
        self.assertEqual((f["sender"], f["sender_domain"]), ('""', "nil"))
        self.assertEqual((f["mail.sender"], f["mail.sender_domain"]), ('""', "nil"))

    def test_data_stage_sees_size_headers_and_queue_id_and_nothing_is_queued(self):
        msg = b"Subject: hello\r\nX-Test: 1\r\n\r\nbody line\r\n"
        with self.srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            c.rcpt("a@example.test")
            code, reply = c.data(msg)
        self.assertEqual(code, 550)
        f = fields(reply)
        self.assertEqual(f["size"], str(len(msg)))
        self.assertEqual(f["qid_ok"], "true")
        self.assertEqual(f["headers"], q("Subject: hello|X-Test: 1|"))
        self.assertEqual((f["rcpts"], f["mail.sender"]), (q("a@example.test"), q("a@sender.test")))
        self.assertEqual(self.srv.queue(), [])

    def test_no_queue_id_before_data(self):
        with self.srv.smtp() as c:
            c.ehlo("predata.test")
            c.mail("a@sender.test")
            c.rcpt("a@example.test")
            code, msg = c.docmd("DATA")
        self.assertEqual((code, fields(msg)), (550, {"qid": "nil", "size": "0"}))

    def test_s_data_persists_within_a_session_only(self):
        with self.srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            self.assertEqual([fields(c.rcpt("count@example.test")[1])["n"] for _ in range(3)], ["1", "2", "3"])
            c.rset()                               # a new transaction, the same session
            c.mail("a@sender.test")
            self.assertEqual(fields(c.rcpt("count@example.test")[1])["n"], "4")
        with self.srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            self.assertEqual(fields(c.rcpt("count@example.test")[1])["n"], "1")

    def test_writing_the_session_or_reading_an_unknown_field_answers_451(self):
        with self.srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            for what in ("write", "writedata", "nofield"):
                self.assertEqual(c.rcpt(what + "@example.test")[0], 451, what)
        errors = [e["error"] for e in self.rule_errors(self.srv)]
        self.assertIn("read-only", errors[0])
        self.assertIn("read-only", errors[1])
        self.assertIn("no field 'no_such_field'", errors[2])

    def test_a_session_kept_past_its_end_reads_as_gone(self):
        with self.srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            self.assertEqual(c.rcpt("keep@example.test")[0], 250)
        wait_for(lambda: self.srv.log_has("close", count=2), what="the first session to end")
        with self.srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            code, msg = c.rcpt("keep@example.test")
        f = fields(msg)
        self.assertEqual((code, f["ok"], f["str"]), (550, "false", q("session (gone)")))
        self.assertIn("the session is gone", f["err"])


class Coroutines(RulesTest):
    RULES = {"10-sleep.lua": '''\
local released = false

rule("rcpt", "slow", function(s)
  if s.rcpt == "slow@example.test" then
    log("slow: sleeping")
    sleep(0.5)
    -- Then wait on (still sleeping, never blocking) for the other session.
    for _ = 1, 600 do
      if released then break end
      sleep(0.05)
    end
    return deny { text = "slept; released " .. tostring(released) }
  end
  if s.rcpt == "nap@example.test" then
    sleep(0.2)
    return deny { text = "woke as " .. s.helo }
  end
  return accept()
end)

rule("quit", "release", function(s)
  if s.helo == "fast.example" then released = true end
end)
'''}

    def test_a_sleeping_rule_lets_another_session_finish_first(self):
        srv = self.serve(self.RULES)
        slow = srv.raw()
        self.addCleanup(slow.close)
        slow.expect(220)
        slow.cmd("EHLO slow.example", 250)
        slow.cmd("MAIL FROM:<a@sender.test>", 250)
        slow.send("RCPT TO:<slow@example.test>\r\n")
        wait_for(lambda: srv.log_has("rule_log", msg="slow: sleeping"), what="the slow rule to sleep")

        # Same worker (workers=1): a whole transaction while the rule sleeps.
        fast = srv.raw()
        self.addCleanup(fast.close)
        fast.expect(220)
        fast.cmd("EHLO fast.example", 250)
        fast.cmd("MAIL FROM:<b@sender.test>", 250)
        fast.cmd("RCPT TO:<b@example.test>", 250)
        fast.cmd("DATA", 354)
        queued = fast.cmd("Subject: meanwhile\r\n\r\nhi\r\n.", 250)
        # The slow session's RCPT reply has not come yet: its rule still waits.
        self.assertEqual(select.select([slow.sock], [], [], 0)[0], [])
        self.assertEqual(slow.buf, b"")
        fast.cmd("QUIT", 221)

        self.assertEqual(slow.read_reply(), (550, ["550 5.7.1 slept; released true"]))
        qid = queued[0].split("queued as ")[1]
        order = [e["event"] for e in srv.log_lines()
                 if (e.get("event") == "accepted" and e.get("qid") == qid) or
                 (e.get("event") == "reject" and e.get("rcpt") == "slow@example.test")]
        self.assertEqual(order, ["accepted", "reject"])
        self.assertEqual(len(srv.worker_pids()), 1)

    def test_sleeping_sessions_each_wake_in_their_own_coroutine(self):
        srv = self.serve(self.RULES)
        n = 8
        clients = []
        for i in range(n):
            c = srv.raw()
            self.addCleanup(c.close)
            c.expect(220)
            c.cmd("EHLO client%d.example" % i, 250)
            c.cmd("MAIL FROM:<a@sender.test>", 250)
            clients.append(c)
        for c in clients:                    # all asleep at once
            c.send("RCPT TO:<nap@example.test>\r\n")
        for i, c in enumerate(clients):
            self.assertEqual(c.read_reply(), (550, ["550 5.7.1 woke as client%d.example" % i]))

    def test_a_sleep_refused_in_a_callback_leaves_no_timer_behind(self):
        srv = self.serve({"10-cb.lua": '''\
rule("rcpt", "cb", function(s)
  if s.rcpt == "gsub@example.test" then
    local ok, err = pcall(string.gsub, "a", "a", function() sleep(0.1) end)
    return deny { text = tostring(ok) .. " " .. tostring(err) }
  end
  if s.rcpt == "sleep@example.test" then
    local t0 = now()
    sleep(0.5)
    return deny { text = string.format("slept %.2f", now() - t0) }
  end
end)
'''})
        with srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            code, refused = c.rcpt("gsub@example.test")
            self.assertEqual(code, 550)
            t0 = time.monotonic()
            code, msg = c.rcpt("sleep@example.test")
            # A stale timer from the refused sleep(0.1) would wake this one at
            # about 0.1 s; the loop's cached clock may end a real 0.5 s sleep a
            # few ms early, so the bound sits between the two.
            self.assertGreaterEqual(time.monotonic() - t0, 0.3)
            self.assertEqual(code, 550)
        self.assertTrue(refused.startswith(b"5.7.1 false "), refused)
        self.assertIn(b"sleep: cannot wait", refused)
        with srv.smtp() as c:                 # the worker still answers
            self.assertEqual(c.ehlo()[0], 250)
