-- 40-loop.lua - portal row 11: if a hosted domain's inbound route (or, for
-- an MX route, its lowest-numbered MX) resolves to us, forwarding its mail
-- would loop back here. Refuse it rather than accept mail we cannot deliver.

local ourselves = require "ourselves"

-- "host", "host:port", "[ip]:port", "mx" (the domain's own MX) or "mx:domain".
local function parse_route(route, domain)
  if route == "mx" then return nil, nil, domain end
  local mxdomain = route:match("^mx:(.+)$")
  if mxdomain then return nil, nil, mxdomain end
  local host, port = route:match("^%[(.+)%]:?(%d*)$")
  if not host then host, port = route:match("^([^:]+):?(%d*)$") end
  return host, tonumber(port), nil
end

local function resolves_to_us(host, port, s)
  if host:match("^[%d.]+$") or host:find(":") then
    return ourselves.is_endpoint(host, port, s)
  end
  for _, t in ipairs({ "a", "aaaa" }) do
    for _, ip in ipairs(dns(host, t) or {}) do
      if ourselves.is_endpoint(ip, port, s) then return true end
    end
  end
  return false
end

-- The hosts of the lowest preference (several may share it).
local function lowest(mx)
  local best, hosts = math.huge, {}
  for _, m in ipairs(mx) do
    if m.pref < best then best, hosts = m.pref, {} end
    if m.pref == best then hosts[#hosts + 1] = m.host end
  end
  return hosts
end

rule("rcpt", "route_loop", function(s)
  if not s.inbound then return end
  local d = hosted(s.rcpt_domain)
  local route = d and (d.route or "mx")
  if not route then return end
  local host, port, mxdomain = parse_route(route, s.rcpt_domain)
  if host then
    if resolves_to_us(host, port, s) then
      return deny("mx_loop", route .. " points to this host")
    end
    return
  end
  -- An MX route: callouts and delivery go to config.callout.port (25).
  local mxport = config.callout and config.callout.port or 25
  for _, h in ipairs(lowest(dns(mxdomain, "mx") or {})) do
    if resolves_to_us(h, mxport, s) then
      return deny("mx_loop", string.format("%s: MX %s points to this host", route, h))
    end
  end
end)
