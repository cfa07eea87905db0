-- ourselves.lua - who we are, for rows 10 (HELO as us) and 11 (routing loop).
--
-- Our names: config.hostname and config.host_names. Our addresses: every
-- listener's, plus config.our_addresses (public addresses behind NAT,
-- which the listeners do not show).

local M = {}

local function lower(s) return s and s:lower() or nil end

function M.is_name(name)
  name = lower(name)
  if not name then return false end
  name = name:gsub("%.$", "")
  if name == lower(config.hostname) then return true end
  return listed(config.host_names, name)
end

local function our_ip(ip)
  for _, l in ipairs(listeners()) do
    if l.ip == ip then return true end
  end
  return listed(config.our_addresses, ip)
end

-- "[192.0.2.1]" or "[IPv6:2001:db8::1]" naming one of our addresses.
function M.is_address_literal(helo)
  local inner = helo and helo:match("^%[(.+)%]$")
  if not inner then return false end
  inner = inner:gsub("^[Ii][Pp][Vv]6:", "")
  return our_ip(inner:lower())
end

-- Would a connection to ip:port reach us? Port nil: any of ours (an MX
-- route, port 25 in production, config.callout.port in tests).
function M.is_endpoint(ip, port)
  for _, l in ipairs(listeners()) do
    if l.ip == ip and (port == nil or l.port == port) and l.direction == "inbound" then
      return true
    end
  end
  return listed(config.our_addresses, ip)
end

return M
