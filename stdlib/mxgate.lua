-- mxgate.lua - the rule DSL: registration, verdicts, reasons, the hook runner.
--
-- Loaded once per generation with full privileges; the rule files it loads
-- get only the sandbox built here. A rule file reads like an Exim ACL:
--
--   rule("rcpt", "hosted_domain", function(s)
--     if not hosted(s.rcpt_domain) then
--       return deny("not_hosted")
--     end
--   end)
--
-- Rules run in file-name order, then in order within a file. The first
-- accept, deny, defer or drop ends the hook; warn logs and goes on.

local C, config, stdlib_dir = ...

local M = {}
local HOOKS = { connect = true, helo = true, starttls = true, mail = true,
                rcpt = true, route = true, predata = true, data = true, quit = true }
local ACTIONS = { accept = true, deny = true, defer = true, drop = true, warn = true }

local rules = {}          -- in order: { hook, name, fn, where, disabled }
local by_name = {}
local chains = {}         -- hook -> array of enabled rules, built by finish()
local reasons = {}        -- reason key -> { code, enhanced, text, cause, dir }
local used_reasons = {}   -- reason key -> where it was named (checked at load)
local reason_where = {}   -- reason key -> where reason() last changed it
local loading             -- the file being loaded, for error messages

-- Where the calling rule file stands: "rules.d/10-helo.lua:12".
local function caller(level)
  local info = debug.getinfo(level + 1, "Sl")
  if not info then return "?" end
  return (info.short_src or "?") .. ":" .. (info.currentline or 0)
end

local function fail(level, fmt, ...)
  error(string.format(fmt, ...), level + 1)
end

---------------------------------------------------------------------------
-- registration

-- Only while a file loads: a rule that registered, replaced or rewrote a
-- reason as it runs would change the ruleset under every other session.
local function loading_only(what)
  if not loading then fail(3, "%s: only at the top level of a rule file, not inside a rule", what) end
end

function M.rule(hook, name, fn)
  loading_only("rule()")
  if not HOOKS[hook] then
    fail(2, "rule(%q, ...): unknown hook (connect, helo, starttls, mail, rcpt, route, predata, data, quit)", tostring(hook))
  end
  if type(name) ~= "string" or name == "" then fail(2, "rule(hook, NAME, fn): the name must be a string") end
  if type(fn) ~= "function" then fail(2, "rule(%q, %q, FN): expected a function", hook, name) end
  if by_name[name] then
    fail(2, "rule %q is already defined at %s; use replace(%q, fn) or disable(%q)",
      name, by_name[name].where, name, name)
  end
  local r = { hook = hook, name = name, fn = fn, where = caller(2) }
  rules[#rules + 1] = r
  by_name[name] = r
end

-- A later file changes an earlier rule in place: same hook, same position.
function M.replace(name, fn)
  loading_only("replace()")
  local r = by_name[name]
  if not r then fail(2, "replace(%q): no such rule", tostring(name)) end
  if type(fn) ~= "function" then fail(2, "replace(%q, FN): expected a function", name) end
  r.fn, r.where, r.disabled = fn, caller(2), nil
end

function M.disable(name)
  loading_only("disable()")
  local r = by_name[name]
  if not r then fail(2, "disable(%q): no such rule", tostring(name)) end
  r.disabled = caller(2)
end

-- Overrides fields of a reason (or adds one): reason("xbl", { text = "..." }).
function M.reason(key, fields)
  loading_only("reason()")
  if type(key) ~= "string" or type(fields) ~= "table" then
    fail(2, "reason(KEY, { code = 550, enhanced = \"5.7.1\", text = \"...\" })")
  end
  local r = reasons[key] or {}
  for k, v in pairs(fields) do r[k] = v end
  if not r.text then fail(2, "reason %q has no text", key) end
  reasons[key] = r
  reason_where[key] = caller(2)
end

---------------------------------------------------------------------------
-- verdicts: deny("xbl"), deny("xbl", "192.0.2.4 listed"), deny { code = ..., text = ... }

local function verdict(action, level, what, detail)
  local v = { action = action }
  if type(what) == "table" then
    for k, x in pairs(what) do v[k] = x end
    v.action = action
  elseif type(what) == "string" then
    local r = reasons[what]
    if not r then fail(level + 1, "%s(%q): unknown reason (stdlib/reasons.lua)", action, what) end
    v.reason, v.code, v.enhanced, v.text = what, r.code, r.enhanced, r.text
    if detail and detail ~= "" then
      -- The reason comes first, verbatim (the portal's rule); detail after.
      v.text = v.text .. (v.text:match("[.!?]$") and " " or ": ") .. detail
    end
  elseif what ~= nil then
    fail(level + 1, "%s(...): expected a reason name or a table", action)
  end
  return v
end

-- (Parenthesised: not tail calls, so an error names the rule's line.)
function M.accept(what, detail) return (verdict("accept", 2, what, detail)) end
function M.deny(what, detail)   return (verdict("deny", 2, what, detail)) end
function M.defer(what, detail)  return (verdict("defer", 2, what, detail)) end
function M.drop(what, detail)   return (verdict("drop", 2, what, detail)) end
function M.warn(what, detail)   return (verdict("warn", 2, what, detail)) end

---------------------------------------------------------------------------
-- routes: the route hook's answer, route("127.0.0.1:2626", { tls = "verify" })

local TLS = { may = true, require = true, verify = true }

-- "host[:port]", "[ip]:port" or "mx:domain", as engine/net/route.c reads them.
local function route_form(t)
  if type(t) ~= "string" or #t == 0 or #t > 255 then return false end
  if t:match("^mx:[%w_][%w%.%-_]*$") then return true end
  local port = t:match("^%[[%x:%.]+%](.*)$") or t:match("^[%w_][%w%.%-_]*(.*)$")
  if port == nil then return false end
  if port == "" then return true end
  local n = tonumber(port:match("^:(%d%d?%d?%d?%d?)$"))
  return n ~= nil and n >= 1 and n <= 65535
end

function M.route(target, opts)
  if not route_form(target) then
    fail(2, "route(%q): expected \"host[:port]\", \"[ip]:port\" or \"mx:domain\"", tostring(target))
  end
  local tls = type(opts) == "table" and opts.tls or nil
  if opts ~= nil and type(opts) ~= "table" or tls ~= nil and not TLS[tls] then
    fail(2, "route(%q, { tls = \"may\" | \"require\" | \"verify\" })", target)
  end
  return { action = "route", route = target, tls = tls }
end

---------------------------------------------------------------------------
-- helpers rules use

-- The hosted-domain entry for a domain (its route and settings), or nil.
function M.hosted(domain)
  if not domain then return nil end
  local d = config.hosted_domains and config.hosted_domains[domain:lower()]
  if d == nil then return nil end
  if type(d) ~= "table" then d = { route = type(d) == "string" and d or nil } end
  return d
end

-- Is value in list (case-insensitive for strings)?
function M.listed(list, value)
  if not list or not value then return false end
  value = type(value) == "string" and value:lower() or value
  for _, x in ipairs(list) do
    if (type(x) == "string" and x:lower() or x) == value then return true end
  end
  return false
end

---------------------------------------------------------------------------
-- the sandbox rule files run in

-- One proxy per table, made once: rules read config.x on every hook, and a
-- fresh proxy (a table and four closures) per read was most of a hook's cost.
-- A proxy's __index is a table of what was read through it (a value, or the
-- proxy of a table), filled on first read: later reads are the VM's own
-- table lookups, no function call. Rules never see that table (the
-- metatable is hidden) and the config does not change within a generation.
local proxies = setmetatable({}, { __mode = "k" })

local function readonly(t, name)
  if type(t) ~= "table" then return t end
  local cached = proxies[t]
  if cached then return cached end
  local proxy = {}
  proxies[t] = proxy
  local seen = setmetatable({}, { __index = function(seen, k)
    local v = readonly(t[k], name)
    rawset(seen, k, v)
    return v
  end })
  return setmetatable(proxy, {
    __index = seen,
    __newindex = function() error(name .. " is read-only", 2) end,
    __pairs = function() return function(_, k)
      local nk, nv = next(t, k)
      return nk, readonly(nv, name)
    end, proxy, nil end,
    __len = function() return #t end,
    __metatable = false,        -- no setmetatable(string, nil) to unwrap it
  })
end

-- A finalizer runs inside the collector, where no instruction budget reaches
-- it (and again when the generation is closed): rules get no __gc.
local function sandbox_setmetatable(t, mt)
  if type(mt) == "table" and rawget(mt, "__gc") ~= nil then
    error("setmetatable: __gc is not available to rules", 2)
  end
  local ok, r = pcall(setmetatable, t, mt)
  if not ok then error(r, 2) end          -- the rule's line, not ours
  return r
end

-- xpcall's handler would run inside the error, where the instruction
-- budget's hook cannot fire (an endless handler would hang the worker): here
-- it runs after the error, as any other rule code.
local function sandbox_xpcall(f, handler, ...)
  local res = table.pack(pcall(f, ...))
  if res[1] then return table.unpack(res, 1, res.n) end
  return false, select(2, pcall(handler, res[2]))
end

-- The string metatable's __index is the real string library: hidden, as the
-- session's metatable is, so no rule rewrites string.* under the others.
getmetatable("").__metatable = false

local base = {
  -- Lua, minus everything that reaches outside the rule's own data.
  assert = assert, error = error, ipairs = ipairs, next = next, pairs = pairs,
  pcall = pcall, select = select, tonumber = tonumber, tostring = tostring,
  type = type, xpcall = sandbox_xpcall, rawequal = rawequal, rawlen = rawlen,
  setmetatable = sandbox_setmetatable, getmetatable = getmetatable,
  string = readonly(string, "string"), table = readonly(table, "table"),
  math = readonly(math, "math"), utf8 = readonly(utf8, "utf8"),
  os = readonly({ time = os.time, clock = os.clock, date = os.date }, "os"),
  -- the DSL
  rule = M.rule, replace = M.replace, disable = M.disable, reason = M.reason,
  route = M.route, accept = M.accept, deny = M.deny, defer = M.defer, drop = M.drop, warn = M.warn,
  hosted = M.hosted, listed = M.listed,
  config = readonly(config, "config"),
}
-- Primitives from C (sleep, log, dns, ...), each yielding where it waits.
-- Those that ask the world (DNS, other servers, the state store, the
-- clock) are recorded in the session journal with their answers, so that
-- ruletest can replay a session exactly; in ruletest they answer from the
-- record instead (M.replay = C.replay, set by ruletest's lua/replay.c:
-- M.replay(name, ...) returns what the record answered, or what the
-- simulated store, another session or the network answered in its place
-- (lua/replay.h), or nil and "unanswered").
local WORLD = { dns = true, greylist = true, ratelimit = true, callout = true,
                verify_sender = true, now = true }
local pack, unpack = table.pack, table.unpack
M.replay = C.replay

for k, f in pairs(C.primitives) do
  if not WORLD[k] then
    base[k] = f
  elseif C.world == "replay" and C.ask then
    -- ruletest --live: what nothing else answers is asked of the network
    -- now (C.replay says so with C.ask), and C.heard marks it "live".
    local answer, ask, heard = M.replay, C.ask, C.heard
    base[k] = function(...)
      local r = pack(answer(k, ...))
      if r[1] ~= ask then return unpack(r, 1, r.n) end
      r = pack(f(...))
      heard(k, r, ...)
      return unpack(r, 1, r.n)
    end
  elseif C.world == "replay" then
    local answer = M.replay
    base[k] = function(...) return answer(k, ...) end
  else
    local record = C.journal_call
    base[k] = function(...)
      local res = pack(f(...))
      record(k, pack(...), res)
      return unpack(res, 1, res.n)
    end
  end
end
M.primitives = C.primitives
if C.world == "replay" then
  -- A dry run never waits and writes no log: sleep() returns at once, and
  -- log() lines go to ruletest's trace.
  base.sleep = function() end
  local trace = C.trace
  base.log = function(msg)
    -- caller(2): the rule's line that called log(), not this wrapper's.
    if trace then trace("log", "", "", caller(2), "log", tostring(msg)) end
  end
end

local modules = {}
-- require() finds only stdlib/ modules, loaded as text into the sandbox.
function base.require(name)
  if type(name) ~= "string" or not name:match("^[%w_]+$") then
    error("require: only stdlib modules, by plain name", 2)
  end
  if modules[name] ~= nil then return modules[name] end
  local src, why = C.read_file(stdlib_dir .. "/" .. name .. ".lua")
  if not src then error("require(\"" .. name .. "\"): " .. why, 2) end
  local env = setmetatable({}, { __index = base, __metatable = false })
  local chunk, err = load(src, "@stdlib/" .. name .. ".lua", "t", env)
  if not chunk then error(err, 0) end
  modules[name] = chunk() or true
  return modules[name]
end

-- The network checks most rules want, ready without a require.
do
  local d = base.require("dnsbl")
  base.dnsbl, base.dnsbl_prefetch = d.check, d.prefetch
  base.dnsbl_lookup, base.dnsbl_match = d.lookup, d.match
end

M.base = base

---------------------------------------------------------------------------
-- loading

-- The reason table ships in stdlib/reasons.lua.
do
  local src = assert(C.read_file(stdlib_dir .. "/reasons.lua"))
  local chunk = assert(load(src, "@stdlib/reasons.lua", "t", {}))
  for k, r in pairs(chunk()) do reasons[k] = r end
end

function M.load_file(name, src)
  loading = name
  -- Names of reasons used, to refuse a ruleset that names one never defined.
  local n = 0
  for line in (src .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    for verb, key in line:gmatch("%f[%w_](%a+)%s*%(%s*[\"']([%w_]+)[\"']") do
      if ACTIONS[verb] then used_reasons[key] = used_reasons[key] or (name .. ":" .. n) end
    end
  end
  -- Each file its own globals; base is behind a protected metatable.
  local mt = { __index = base, __metatable = false }
  local env = setmetatable({}, mt)
  local chunk, err = load(src, "@" .. name, "t", env)
  if not chunk then error(err, 0) end
  chunk()
  -- Loaded: its globals are read-only. One a rule set would outlive the
  -- session, be shared by every other and could grow until the rules'
  -- memory is full (issue 11); per-session notes go in s.data.
  local vars = setmetatable({}, { __index = base })
  for k, v in next, env do vars[k], env[k] = v, nil end
  mt.__index = vars
  mt.__newindex = function(_, k)
    error(string.format("global '%s' is read-only once %s is loaded (keep notes in s.data)",
      tostring(k), name), 2)
  end
  loading = nil
end

-- A reason's code and enhanced code as the C side will check them on
-- every verdict (lua_policy.c): refused at load, not at the first reply.
local function reason_fits(r)
  local code, enh = r.code, r.enhanced
  if code ~= nil and (math.type(code) ~= "integer" or code < 400 or code > 599) then
    return "code must be an integer from 400 to 599"
  end
  if enh ~= nil then
    local cls = type(enh) == "string" and enh:match("^([245])%.%d%d?%d?%.%d%d?%d?$")
    if not cls or cls ~= tostring(code or 550):sub(1, 1) then
      return "enhanced must be class.subject.detail (\"5.7.1\") of the code's class"
    end
  end
end

function M.finish()
  for key, where in pairs(used_reasons) do
    if not reasons[key] then error(where .. ": unknown reason \"" .. key .. "\"", 0) end
  end
  for key, r in pairs(reasons) do
    local why = reason_fits(r)
    if why then error((reason_where[key] or "stdlib/reasons.lua") .. ": reason \"" .. key .. "\": " .. why, 0) end
  end
  for h in pairs(HOOKS) do chains[h] = {} end
  for _, r in ipairs(rules) do
    if not r.disabled then
      local c = chains[r.hook]
      c[#c + 1] = r
    end
  end
  -- The route no rule chose: the config's (stdlib/route.lua), last.
  local default = base.require("route")
  chains.route[#chains.route + 1] = { hook = "route", name = "default_route", fn = default.route,
                                      where = "stdlib/route.lua", default = true }
  M.reasons = reasons
end

-- The hooks some enabled rule runs on: the bridge does not enter Lua for
-- the others (a hook with no rule decides nothing).
function M.hooks_with_rules()
  local out = {}
  for h, c in pairs(chains) do
    if #c > 0 then out[#out + 1] = h end
  end
  return out
end

---------------------------------------------------------------------------
-- running a hook: called in the session's coroutine by the bridge

local trace = C.trace     -- nil unless ruletest asked for a trace

-- ruletest --coverage: per rule, how many sessions reached it and how many
-- it decided (a session counts once per rule: s is one table a session).
local coverage = C.coverage
local function reached(r, s)
  if r.cov_s ~= s then r.cov_s, r.reached = s, (r.reached or 0) + 1 end
end
local function decided(r, s)
  if r.dec_s ~= s then r.dec_s, r.decided = s, (r.decided or 0) + 1 end
end

-- The rules in load order with their counts, for ruletest --coverage.
function M.coverage()
  local out = {}
  for i, r in ipairs(rules) do
    out[i] = { hook = r.hook, name = r.name, where = r.where, disabled = r.disabled ~= nil,
               reached = r.reached or 0, decided = r.decided or 0 }
  end
  return out
end

-- The verdict as the C side reads it: plain values, copied here, inside the
-- resume and under the budget, so nothing a rule returned (a metatable, a
-- trap in __index) runs where an error could not be caught.
local function plain(v, r)
  if v.action == "route" then
    return { action = "route", route = v.route, tls = v.tls, where = r.where, name = r.name,
             rule = not r.default }
  end
  return { action = v.action, code = v.code, enhanced = v.enhanced, text = v.text,
           reason = v.reason, where = r.where, name = r.name }
end

-- One hook's chain, run under a single xpcall (a pcall per rule costs as
-- much as a simple rule). When an error escapes, failed_rule() reads which
-- rule was running from this function's own locals.
local running             -- the rule run_chain runs, for errors no handler sees

local function run_chain(hook, chain, s)
  for i = 1, #chain do              -- not ipairs: this loop is the hot path
    local r = chain[i]
    running = r
    if coverage then reached(r, s) end
    local v = r.fn(s)
    if v ~= nil then
      local a = type(v) == "table" and rawget(v, "action")
      if hook == "route" and a ~= "route" or hook ~= "route" and not ACTIONS[a] then
        if coverage then decided(r, s) end
        return { action = "error", where = r.where, name = r.name, text = "rule returned " .. tostring(v) ..
                 (hook == "route" and " (return route(...) or nothing)" or " (return accept(), deny(...) or nothing)") }
      end
      v = plain(v, r)
      if coverage and v.action ~= "warn" then decided(r, s) end
    end
    if trace then trace("rule", hook, r.name, r.where, v and v.action or "next", v and (v.route or v.reason)) end
    if v then
      if v.action ~= "warn" then return v end
      C.log("warn", r.name, r.where, v.reason or "", v.text or "")
    end
  end
  return nil
end

local getinfo, getlocal = debug.getinfo, debug.getlocal

-- xpcall's handler, still on the failing stack: find run_chain's frame and
-- its local `r`, the rule that raised.
local function failed_rule(err)
  for level = 2, 200 do
    local info = getinfo(level, "f")
    if not info then break end
    if info.func == run_chain then
      for n = 1, 20 do
        local name, value = getlocal(level, n)
        if not name then break end
        if name == "r" and type(value) == "table" then return { err = err, rule = value } end
      end
      break
    end
  end
  return { err = err }
end

function M.run(hook, s)
  local ok, v = xpcall(run_chain, failed_rule, hook, chains[hook], s)
  if ok and hook == "rcpt" and v and v.action == "accept" then
    -- An accepted recipient's route: the route hook, in the same run, so
    -- the verdict carries it (recorded with the message, shown by ruletest).
    local rok, r = xpcall(run_chain, failed_rule, "route", chains.route, s)
    if not rok then
      ok, v = false, r
    elseif r and r.action == "route" then
      v.route, v.route_tls, v.route_where, v.route_rule = r.route, r.tls, r.where, r.rule
    elseif r then
      ok, v = false, { err = r.text, rule = r }
    end
  end
  if ok then return v end
  -- Lua calls no handler for "not enough memory" (and the handler itself
  -- may fail): the rule is the one run_chain was running.
  if type(v) ~= "table" then v = { err = v, rule = running } end
  local r = v.rule or { where = "?", name = "?" }
  if coverage and v.rule then decided(r, s) end
  local text = tostring(v.err)
  if trace then trace("error", hook, r.name, r.where, "error", text) end
  return { action = "error", where = r.where, name = r.name, text = text }
end

return M
