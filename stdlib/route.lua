-- route.lua - the default route hook: a hosted domain's route, else the recipient domain's MX.
--
-- The same answer as engine/delivery/routing.c, which the delivery process
-- uses for every recipient no rule routed (looked up again at each attempt,
-- so a config change reroutes the queue). A rule in rules.d overrides it:
--
--   rule("route", "partner_backup", function(s)
--     if s.rcpt_domain == "partner.example" then return route("[192.0.2.7]:25") end
--   end)

local M = {}

function M.route(s)
  local domain = s.rcpt_domain
  if not domain or domain == "" then return nil end
  domain = domain:lower()
  local d = hosted(domain)
  local delivery = config.delivery
  local tls = d and d.tls or delivery and delivery.tls
  if tls ~= "may" and tls ~= "require" and tls ~= "verify" then tls = nil end
  if d and d.route and d.route ~= "" then
    return route(d.route, { tls = tls })
  end
  return route("mx:" .. domain, { tls = tls })
end

return M
