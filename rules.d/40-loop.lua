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

local function resolves_to_us(host, port)
  if host:match("^[%d.]+$") or host:find(":") then
    return ourselves.is_endpoint(host, port)
  end
  for _, t in ipairs({ "a", "aaaa" }) do
    for _, ip in ipairs(dns(host, t) or {}) do
      if ourselves.is_endpoint(ip, port) then return true end
    end
  end
  return false
end

rule("rcpt", "route_loop", function(s)
  if not s.inbound then return end
  local d = hosted(s.rcpt_domain)
  local route = d and (d.route or "mx")
  if not route then return end
  local host, port, mxdomain = parse_route(route, s.rcpt_domain)
  if mxdomain then
    local mx = dns(mxdomain, "mx")
    if not mx or not mx[1] then return end
    host, port = mx[1].host, config.callout and config.callout.port or 25
  end
  if host and resolves_to_us(host, port) then
    return deny("mx_loop", route .. " points to this host")
  end
end)
