-- 80-greylist.lua - portal row 4, last of the checks so that only valid
-- recipients are greylisted. A client that retried one tuple after the
-- delay joins the allow list and is not greylisted again.
--
-- config.greylist = { delay = 60, exempt_domains = { "example.com" }, ... }

rule("rcpt", "greylist", function(s)
  local g = config.greylist
  if not s.inbound or not g or g.enabled == false then return end
  local d = hosted(s.rcpt_domain)
  if (d and d.greylist == false) or listed(g.exempt_domains, s.rcpt_domain) then return end
  local r = greylist(s.ip, s.sender, s.rcpt, g)
  if not r.pass and r.verdict ~= "error" then
    return defer("greylisted", string.format("please retry in %ds", math.ceil(r.wait)))
  end
end)
