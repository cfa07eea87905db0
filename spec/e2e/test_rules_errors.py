"""A rule that fails answers 451 4.3.0, never an accident: error(), a bad
return value, a runaway loop (also one that hides behind pcall), a memory hog.
The worker survives each and keeps serving other sessions."""
from spec.e2e.test_rules_common import RulesTest

TEMP = (451, "4.3.0 Temporary local problem, try again later")

ERRORS = '''\
rule("rcpt", "boom", function(s)
  if s.rcpt == "error@example.test" then error("boom") end
end)
rule("rcpt", "bad_value", function(s)
  if s.rcpt == "string@example.test" then return "yes" end
  if s.rcpt == "true@example.test" then return true end
  if s.rcpt == "function@example.test" then return accept end
  if s.rcpt == "action@example.test" then return { action = "maybe" } end
  if s.rcpt == "code@example.test" then return deny { code = 250, text = "looks like success" } end
  if s.rcpt == "defer5@example.test" then return defer { code = 550, text = "a 5xx defer" } end
  if s.rcpt == "unknown@example.test" then local key = "no_such_reason"; return deny(key) end
  if s.rcpt == "trap@example.test" then
    -- A verdict whose fields are traps for whoever reads them.
    return setmetatable({ action = "deny" }, { __index = function() error("trapped") end })
  end
end)
rule("rcpt", "accept", function(s) return accept() end)
'''

RUNAWAY = '''\
local function forever() while true do end end
rule("rcpt", "runaway", function(s)
  local how = s.rcpt:match("^(.-)@")
  if how == "loop" then
    forever()
  elseif how == "pcall" then
    -- Catch the budget error and carry on: must not work.
    while true do pcall(forever) end
  elseif how == "nested" then
    while true do pcall(pcall, pcall, function() while true do pcall(forever) end end) end
  elseif how == "xpcall" then
    while true do xpcall(forever, function(e) forever() end) end
  elseif how == "gsub" then
    -- In a C callback, where nothing can yield.
    while true do pcall(string.gsub, "aaaa", "a", function() pcall(forever) end) end
  elseif how == "sort" then
    local t = {} for i = 1, 100 do t[i] = i end
    while true do pcall(table.sort, t, function(a, b) pcall(forever) return a < b end) end
  elseif how == "close" then
    local guard <close> = setmetatable({}, { __close = function() while true do pcall(forever) end end })
    forever()
  elseif how == "tostring" then
    while true do pcall(error, setmetatable({}, { __tostring = function() while true do pcall(forever) end end })) end
  end
  return accept()
end)
'''

HOG = '''\
rule("rcpt", "hog", function(s)
  local how = s.rcpt:match("^(.-)@")
  if how == "many" then
    local t = {}
    for i = 1, 1e9 do t[i] = ("x"):rep(1000) .. i end
  elseif how == "one" then
    local big = ("x"):rep(64 * 1024 * 1024)
  elseif how == "swallow" then
    local ok = pcall(function() local t = {} for i = 1, 1e9 do t[i] = ("x"):rep(1000) .. i end end)
    return deny { text = "the hog was caught: " .. tostring(ok) }
  end
  return accept()
end)
'''


class RuleErrors(RulesTest):
    def test_error_in_a_rule_answers_451_and_logs_file_and_line(self):
        srv = self.serve({"10-err.lua": ERRORS})
        with srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            code, msg = c.rcpt("error@example.test")
            self.assertEqual((code, msg.decode()), TEMP)
            # The session goes on: the next recipient runs the rules again.
            self.assertEqual(c.rcpt("ok@example.test")[0], 250)
        e = self.rule_errors(srv)
        self.assertEqual(len(e), 1, e)
        self.assertEqual(e[0]["where"], "rules.d/10-err.lua:1")
        self.assertEqual(e[0]["error"], "rules.d/10-err.lua:2: boom")
        r = [x for x in srv.events("reject") if x["stage"] == "rcpt"]
        self.assertEqual((r[0]["code"], r[0]["reason"], r[0]["rule"]), ("451", "rule_error", "rules.d/10-err.lua:1"))

    def test_a_bad_return_value_answers_451(self):
        srv = self.serve({"10-err.lua": ERRORS})
        bad = ["string", "true", "function", "action", "code", "defer5", "unknown", "trap"]
        with srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            for b in bad:
                code, msg = c.rcpt(b + "@example.test")
                self.assertEqual((code, msg.decode()), TEMP, b)
            self.assertEqual(c.rcpt("ok@example.test")[0], 250)
        errors = [e["error"] for e in self.rule_errors(srv)]
        self.assertEqual(len(errors), len(bad), errors)
        self.assertIn("rule returned yes", errors[0])
        self.assertIn("does not fit", errors[4])
        self.assertIn('unknown reason', errors[6])
        self.assertIn("trapped", errors[7])
        self.assertEqual(srv.events("worker_died"), [])


class Runaway(RulesTest):
    CONFIG = {"rule_limits": {"instructions": 100000}}

    def test_a_runaway_rule_answers_451_and_the_worker_serves_another_session(self):
        srv = self.serve({"10-loop.lua": RUNAWAY}, self.CONFIG)
        pid = srv.worker_pids()
        other = srv.raw()
        self.addCleanup(other.close)
        other.expect(220)
        other.cmd("EHLO other.example", 250)
        other.cmd("MAIL FROM:<b@sender.test>", 250)
        with srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            code, msg = c.rcpt("loop@example.test")
            self.assertEqual((code, msg.decode()), TEMP)
            # The same session's coroutine runs its rules again afterwards.
            self.assertEqual(c.rcpt("ok@example.test")[0], 250)
        other.cmd("RCPT TO:<b@example.test>", 250)
        other.cmd("DATA", 354)
        other.cmd("Subject: still here\r\n\r\nhi\r\n.", 250)
        e = self.rule_errors(srv)
        self.assertEqual(len(e), 1)
        self.assertIn("instruction budget", e[0]["error"])
        self.assertTrue(e[0]["where"].startswith("rules.d/10-loop.lua:"), e[0])
        self.assertEqual((srv.worker_pids(), srv.events("worker_died")), (pid, []))

    def test_pcall_cannot_swallow_the_budget(self):
        srv = self.serve({"10-loop.lua": RUNAWAY}, self.CONFIG)
        ways = ["pcall", "nested", "xpcall", "gsub", "sort", "close", "tostring"]
        with srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            for how in ways:
                code, msg = c.rcpt(how + "@example.test")
                self.assertEqual((code, msg.decode()), TEMP, how)
            self.assertEqual(c.rcpt("ok@example.test")[0], 250)
        e = self.rule_errors(srv)
        self.assertEqual(len(e), len(ways), e)
        for x in e:
            self.assertIn("instruction budget", x["error"])
            self.assertTrue(x["where"].startswith("rules.d/10-loop.lua:"), x)
        self.assertEqual(srv.events("worker_died"), [])


class MemoryHog(RulesTest):
    CONFIG = {"rule_limits": {"memory": 16 * 1024 * 1024}}

    def test_a_memory_hog_answers_451_and_the_worker_survives(self):
        srv = self.serve({"10-hog.lua": HOG}, self.CONFIG)
        pid = srv.worker_pids()
        with srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            for how in ("many", "one"):
                code, msg = c.rcpt(how + "@example.test")
                self.assertEqual((code, msg.decode()), TEMP, how)
            # Caught by the rule itself: an ordinary answer, then all is well.
            self.assertEqual(c.rcpt("swallow@example.test"), (550, b"5.7.1 the hog was caught: false"))
            self.assertEqual(c.rcpt("ok@example.test")[0], 250)
        with srv.smtp() as c:          # a new session in the same generation
            c.ehlo()
            c.mail("a@sender.test")
            self.assertEqual(c.rcpt("ok@example.test")[0], 250)
        e = self.rule_errors(srv)
        self.assertEqual(len(e), 2, e)
        self.assertTrue(all("not enough memory" in x["error"] for x in e), e)
        self.assertEqual((srv.worker_pids(), srv.events("worker_died")), (pid, []))
