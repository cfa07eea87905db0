-- 50-dnsbl.lua - portal rows 2, 3 and 5: the client's address on a DNS
-- block list. Spamhaus ZEN answers tell which list: XBL first, then PBL,
-- then everything else (SBL, CSS, DROP and any other configured zone) is
-- "RBL Reject". A lookup that fails (timeout, a Spamhaus refusal code) is
-- logged and never rejects mail.
--
-- config.dnsbl = { { zone = "zen.spamhaus.org", ... }, { zone = "bl.example" } }
-- The first zone with codes for xbl/pbl is Spamhaus ZEN (or its DQS zone,
-- "KEY.zen.dq.spamhaus.net").

local XBL = { "127.0.0.4-127.0.0.7" }
local PBL = { "127.0.0.10-127.0.0.11" }
local SBL = { "127.0.0.2", "127.0.0.3", "127.0.0.9" }

-- The configured zones, read once when the rules load (a reload rereads them).
local ZONES = {}
for _, z in ipairs(config.dnsbl or {}) do
  z = type(z) == "table" and z or { zone = z }
  ZONES[#ZONES + 1] = { zone = z.zone, match = z.match,
                        spamhaus = z.spamhaus or z.zone:find("spamhaus") ~= nil }
end

-- One lookup per zone per session, however many recipients and rules ask.
local function answers(s, z)
  local memo = s.data.dnsbl
  if not memo then memo = {}; s.data.dnsbl = memo end
  local a = memo[z.zone]
  if a == nil then
    local err
    a, err = dnsbl_lookup(s.ip, z.zone)
    if err then log("dnsbl " .. z.zone .. " lookup failed for " .. s.ip .. ": " .. err) end
    a = a or false
    memo[z.zone] = a
  end
  return a or nil
end

local function listed_at(s, z, list)
  local a = answers(s, z)
  return a and dnsbl_match(a, list)
end

local function check(s, list, reason)
  for _, z in ipairs(ZONES) do
    if z.spamhaus then
      local code = listed_at(s, z, list)
      if code then
        return deny(reason, s.ip .. " is listed at " .. z.zone .. " (" .. code .. ")")
      end
    end
  end
end

rule("rcpt", "dnsbl_xbl", function(s)
  if s.inbound then return check(s, XBL, "xbl") end
end)

rule("rcpt", "dnsbl_pbl", function(s)
  if s.inbound then return check(s, PBL, "pbl") end
end)

rule("rcpt", "dnsbl_other", function(s)
  if not s.inbound then return end
  for _, z in ipairs(ZONES) do
    local code = listed_at(s, z, z.spamhaus and SBL or z.match)
    if code then
      return deny("rbl", s.ip .. " is listed at " .. z.zone .. " (" .. code .. ")")
    end
  end
end)
