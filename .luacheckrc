-- .luacheckrc - luacheck over stdlib/ and rules.d/ (run by `make test`).
--
-- Rule files and stdlib modules run in the rules' sandbox (stdlib/mxgate.lua
-- builds it as `base`): only these names exist there, read-only. A rule
-- that assigns a global keeps it in its own file's environment, which is
-- almost always a mistake (a missing `local`), so luacheck reports it.
local sandbox = {
  -- Lua, minus what reaches outside the rule's own data
  "assert", "error", "ipairs", "next", "pairs", "pcall", "select", "tonumber",
  "tostring", "type", "xpcall", "rawequal", "rawlen", "setmetatable",
  "getmetatable", "string", "table", "math", "utf8",
  os = { fields = { "time", "clock", "date" } },
  -- the DSL
  "rule", "replace", "disable", "reason", "route", "accept", "deny", "defer", "drop",
  "warn", "hosted", "listed", "config", "require",
  -- primitives (lua/lua_*.c) and the stdlib's ready-made checks
  "sleep", "log", "now", "in_networks", "listeners", "dns", "dns_prefetch",
  "reverse_ip", "greylist", "ratelimit", "callout", "verify_sender",
  "dnsbl", "dnsbl_prefetch", "dnsbl_lookup", "dnsbl_match",
}

std = "none"
read_globals = sandbox
max_line_length = false
-- A rule's session argument is `s` whether the rule reads it or not.
ignore = { "212/s" }

-- The loader itself runs in the generation's full Lua state.
files["stdlib/mxgate.lua"] = { std = "lua54", read_globals = {} }
-- Data: a table of reasons, loaded with an empty environment.
files["stdlib/reasons.lua"] = { std = "none", read_globals = {} }
