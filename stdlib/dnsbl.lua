-- dnsbl.lua - DNS block list checks on top of dns().
--
--   local code, err = dnsbl(s.ip, "zen.spamhaus.org", { "127.0.0.4-127.0.0.7" })
--   -- code: the listing answer that matched ("127.0.0.4"), or nil
--   -- err:  why the lookup says nothing (timeout, a refusal code), or nil
--
-- A match list entry is one address ("127.0.0.2"), a range
-- ("127.0.0.4-127.0.0.7") or a bit mask ("&0.0.0.4", as Exim's &): any
-- answer matching any entry is a listing. No list: any listing counts.
-- Spamhaus's refusal answers (127.255.255.252/254/255: typo'd zone, query
-- through a public resolver, over the free limit) and anything outside
-- 127.0.0.0/8 are errors, never listings (docs/PORTAL.md).

local M = {}

local REFUSALS = {
  ["127.255.255.252"] = "zone name typo (127.255.255.252)",
  ["127.255.255.254"] = "query via a public or unattributable resolver (127.255.255.254)",
  ["127.255.255.255"] = "excessive number of queries (127.255.255.255)",
}

local function ip4(s)
  local a, b, c, d = s:match("^(%d+)%.(%d+)%.(%d+)%.(%d+)$")
  if not a then return nil end
  a, b, c, d = tonumber(a), tonumber(b), tonumber(c), tonumber(d)
  if a > 255 or b > 255 or c > 255 or d > 255 then return nil end
  return ((a * 256 + b) * 256 + c) * 256 + d
end

-- Does one answer match one entry?
local function matches(addr, entry)
  local n = ip4(addr)
  if not n then return false end
  if entry:sub(1, 1) == "&" then
    local mask = ip4(entry:sub(2))
    return mask ~= nil and (n & mask) ~= 0
  end
  local lo, hi = entry:match("^([%d.]+)%-([%d.]+)$")
  if lo then
    lo, hi = ip4(lo), ip4(hi)
    return lo ~= nil and hi ~= nil and n >= lo and n <= hi
  end
  return n == ip4(entry)
end

function M.match(addrs, list)
  for _, a in ipairs(addrs) do
    if not list then return a end
    for _, e in ipairs(list) do
      if matches(a, e) then return a end
    end
  end
  return nil
end

function M.query_name(ip, zone)
  local rev = reverse_ip(ip)
  return rev and (rev .. "." .. zone)
end

-- Every A answer for ip in zone, or nil and why (nil, nil: not listed).
function M.lookup(ip, zone)
  local name = M.query_name(ip, zone)
  if not name then return nil, "not an IP address: " .. tostring(ip) end
  local addrs, status = dns(name, "a")
  if status == "nxdomain" or status == "nodata" then return nil, nil end
  if not addrs then return nil, status end
  for _, a in ipairs(addrs) do
    if REFUSALS[a] then return nil, zone .. ": " .. REFUSALS[a] end
    if not a:match("^127%.") then return nil, zone .. ": answer " .. a .. " outside 127.0.0.0/8" end
  end
  return addrs
end

function M.check(ip, zone, list)
  local addrs, err = M.lookup(ip, zone)
  if not addrs then
    if err then log("dnsbl " .. zone .. " lookup failed for " .. tostring(ip) .. ": " .. err) end
    return nil, err
  end
  return M.match(addrs, list), nil
end

-- Starts the lookups now (at connect) so that RCPT finds them answered.
function M.prefetch(ip, zones)
  for _, z in ipairs(zones) do
    local zone = type(z) == "table" and z.zone or z
    local name = M.query_name(ip, zone)
    if name then dns_prefetch(name, "a") end
  end
end

return M
