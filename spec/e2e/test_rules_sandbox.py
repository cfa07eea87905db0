"""Rule files run in a sandbox: nothing reaches files, processes, the Lua
loader, the debug library or the garbage collector, and no rule can change
what the other rules of its generation see. A rule that tries answers 451;
a file that tries while loading is refused by `mxgate -t` with file:line."""
import os
import subprocess

from spec.e2e.test_rules_common import RulesTest

TEMP = (451, "4.3.0 Temporary local problem, try again later")

# Each probe must raise. One that returns lets the rule answer 250 "escaped".
PROBES = r'''
local probes = {
  io_open = function() return io.open("/etc/passwd") end,
  os_execute = function() return os.execute("touch /tmp/mxgate-sandbox-escaped") end,
  os_exit = function() return os.exit(3) end,
  os_remove = function() return os.remove("/tmp/mxgate-sandbox-escaped") end,
  os_getenv = function() return os.getenv("PATH") end,
  loadfile = function() return loadfile("/etc/passwd") end,
  dofile = function() return dofile("/etc/passwd") end,
  load_text = function() return load("return 1") end,
  load_bytecode = function() return load(string.dump(function() return 1 end), "x", "b") end,
  require_os = function() return require("os") end,
  require_io = function() return require("io") end,
  require_path = function() return require("../etc/mxgate") end,
  require_abs = function() return require("/etc/passwd") end,
  require_dotted = function() return require("socket.core") end,
  debug = function() return debug.getinfo(1) end,
  package = function() return package.loaded end,
  collectgarbage = function() return collectgarbage("count") end,
  rawset = function() return rawset(string, "upper", nil) end,
  rawget = function() return rawget(_ENV, "x") end,
  coroutine = function() return coroutine.create(print) end,
  print = function() return print("hello") end,
  globals = function() return _G.io end,
  string_write = function() string.upper = nil return "written" end,
  string_proxy_unprotect = function() setmetatable(string, nil) return "unprotected" end,
  string_metatable = function() getmetatable("").__index.upper = nil return "written" end,
  base_via_env = function() getmetatable(_ENV).__index.deny = accept return "written" end,
  config_write = function() config.hostname = "evil" return "written" end,
  config_deep_write = function() config.hosted_domains["evil.test"] = true return "written" end,
  session_write = function(s) s.ip = "192.0.2.1" return "written" end,
  finalizer = function() return setmetatable({}, { __gc = function() while true do end end }) end,
}

rule("rcpt", "probe", function(s)
  local name = s.rcpt:match("^(.-)@")
  local p = probes[name]
  if p then
    local v = p(s)
    return accept { text = "escaped: " .. tostring(v) }
  end
  -- What the probes tried to change is as it was.
  assert(string.upper("a") == "A" and ("a"):upper() == "A", "string library changed")
  assert(deny ~= accept, "the DSL changed")
  assert(config.hostname == "mx.mxgate.test" and not hosted("evil.test"), "config changed")
  return accept()
end)
'''

# Each file runs its line at load time; every one must be refused.
LOAD_TIME = {
    "io": ('local f = io.open("/etc/passwd")\n', "global 'io'"),
    "os_execute": ('os.execute("true")\n', "field 'execute'"),
    "os_exit": ('os.exit(1)\n', "field 'exit'"),
    "loadfile": ('loadfile("/etc/passwd")\n', "global 'loadfile'"),
    "dofile": ('dofile("/etc/passwd")\n', "global 'dofile'"),
    "load": ('load(string.dump(function() end))\n', "global 'load'"),
    "require_os": ('local os = require("os")\n', 'require("os")'),
    "require_path": ('require("../../etc/passwd")\n', "only stdlib modules"),
    "debug": ('debug.sethook()\n', "global 'debug'"),
    "package": ('package.path = "/tmp/?.lua"\n', "global 'package'"),
    "collectgarbage": ('collectgarbage("stop")\n', "global 'collectgarbage'"),
    "finalizer": ('setmetatable({}, { __gc = function() end })\n', "__gc"),
    "protected_string": ('setmetatable(string, {})\n', "protected metatable"),
}


class SandboxAtRuntime(RulesTest):
    def test_every_way_out_answers_451_and_changes_nothing(self):
        srv = self.serve({"10-probe.lua": PROBES})
        names = [l.split("=")[0].strip() for l in PROBES.split("local probes = {")[1].split("\n}")[0].splitlines()
                 if "= function" in l]
        self.assertGreater(len(names), 25)
        pid = srv.worker_pids()
        with srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            for n in names:
                code, msg = c.rcpt(n + "@example.test")
                self.assertEqual((code, msg.decode()), TEMP, n)
                # And the probe changed nothing the next rule run relies on.
                self.assertEqual(c.rcpt("check@example.test")[0], 250, "after " + n)
        self.assertFalse(os.path.exists("/tmp/mxgate-sandbox-escaped"))
        self.assertEqual(len(self.rule_errors(srv)), len(names))
        self.assertEqual((srv.worker_pids(), srv.events("worker_died")), (pid, []))

    def test_stdlib_modules_load_by_plain_name(self):
        srv = self.serve({"10-req.lua": '''\
local reasons = require("reasons")
rule("rcpt", "req", function(s)
  return deny { text = reasons.xbl.text .. " " .. tostring(require("reasons") == reasons) }
end)
'''})
        with srv.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            self.assertEqual(c.rcpt("a@example.test"), (550, b"5.7.1 XBL true"))


class SandboxAtLoad(RulesTest):
    def test_a_file_reaching_out_while_loading_is_refused_with_file_and_line(self):
        for name, (src, why) in LOAD_TIME.items():
            with self.subTest(name):
                srv = self.unstarted({"10-ok.lua": 'rule("rcpt", "ok", function(s) return accept() end)\n',
                                      "20-%s.lua" % name: "-- tries %s\n%s" % (name, src)})
                self.assert_refused(srv, "rules.d/20-%s.lua:2:" % name, why)

    def test_a_bytecode_rule_file_is_refused(self):
        srv = self.unstarted({})
        src = os.path.join(srv.dir, "accept.lua")
        with open(src, "w") as f:
            f.write('rule("rcpt", "bytecode", function(s) return accept() end)\n')
        subprocess.run(["luac5.4", "-o", os.path.join(self.rules_dir(srv), "10-bytecode.lua"), src], check=True)
        self.assert_refused(srv, "rules.d/10-bytecode.lua", "binary chunk")

    def test_a_runaway_loop_while_loading_is_refused_not_hung(self):
        for src in ("while true do end\n",
                    "while true do pcall(function() while true do end end) end\n"):
            with self.subTest(src):
                srv = self.unstarted({"10-loop.lua": "local n = 0\n" + src},
                                     config={"rule_limits": {"instructions": 100000}})
                self.assert_refused(srv, "rules.d/10-loop.lua:2:", "instruction budget")

    def test_a_memory_hog_while_loading_is_refused(self):
        srv = self.unstarted({"10-hog.lua": 'local t = {}\nfor i = 1, 1e9 do t[i] = ("x"):rep(1000) .. i end\n'},
                             config={"rule_limits": {"memory": 16 * 1024 * 1024}})
        self.assert_refused(srv, "rules.d/10-hog.lua", "not enough memory")

    def test_an_error_without_a_position_still_names_the_file(self):
        for src in ('error("no position", 0)\n', 'error({})\n', 'error()\n'):
            with self.subTest(src):
                srv = self.unstarted({"10-ok.lua": "\n", "20-bad.lua": src})
                out = self.assert_refused(srv, "rules.d/20-bad.lua")
                self.assertNotIn("10-ok.lua", out)
