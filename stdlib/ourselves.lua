-- ourselves.lua - who we are, for rows 10 (HELO as us) and 11 (routing loop).
--
-- Our names: config.hostname and config.host_names. Our addresses: every
-- listener's, plus config.our_addresses (public addresses behind NAT,
-- which the listeners do not show). A wildcard listener (0.0.0.0, ::)
-- listens on every address of this host; of those we know loopback and
-- the one this session's client reached (s.local_ip).

local M = {}

local WILDCARD = { ["0.0.0.0"] = true, ["::"] = true, [""] = true }

local function lower(s) return s and s:lower() or nil end

local function loopback(ip)
  return ip:match("^127%.") ~= nil or ip == "::1"
end

function M.is_name(name)
  name = lower(name)
  if not name then return false end
  name = name:gsub("%.$", "")
  if name == lower(config.hostname) then return true end
  return listed(config.host_names, name)
end

-- Does listener l listen on ip (s: the session, for its local address)?
local function on(l, ip, s)
  return l.ip == ip or (WILDCARD[l.ip] and (loopback(ip) or (s ~= nil and ip == s.local_ip)))
end

local function our_ip(ip, s)
  for _, l in ipairs(listeners()) do
    if on(l, ip, s) then return true end
  end
  return listed(config.our_addresses, ip)
end

-- "[192.0.2.1]" or "[IPv6:2001:db8::1]" naming one of our addresses.
function M.is_address_literal(helo, s)
  local inner = helo and helo:match("^%[(.+)%]$")
  if not inner then return false end
  inner = inner:gsub("^[Ii][Pp][Vv]6:", "")
  return our_ip(inner:lower(), s)
end

-- Would a connection to ip:port reach our MX? Port nil: any of our
-- inbound ports (an MX route uses config.callout.port: 25 in production).
function M.is_endpoint(ip, port, s)
  for _, l in ipairs(listeners()) do
    if l.direction == "inbound" and (port == nil or l.port == port) and on(l, ip, s) then
      return true
    end
  end
  return listed(config.our_addresses, ip)
end

return M
