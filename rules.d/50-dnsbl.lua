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

local function zones()
  local out = {}
  for _, z in ipairs(config.dnsbl or {}) do
    out[#out + 1] = type(z) == "table" and z or { zone = z }
  end
  return out
end

local function spamhaus(z)
  return z.spamhaus or z.zone:find("spamhaus") ~= nil
end

local function check(s, lists, reason)
  for _, z in ipairs(zones()) do
    if spamhaus(z) then
      local code = dnsbl(s.ip, z.zone, lists)
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
  for _, z in ipairs(zones()) do
    local code = dnsbl(s.ip, z.zone, spamhaus(z) and SBL or z.match)
    if code then
      return deny("rbl", s.ip .. " is listed at " .. z.zone .. " (" .. code .. ")")
    end
  end
end)
