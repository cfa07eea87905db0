-- 80-greylist.lua - portal row 4, last of the checks so that only valid
-- recipients are greylisted. A client that retried one tuple after the
-- delay joins the allow list and is not greylisted again. When the state
-- store fails, greylist() passes or defers as state.fail.greylist says.
--
-- config.greylist = { delay = 60, exempt_domains = { "example.com" }, ... }

rule("rcpt", "greylist", function(s)
  local g = config.greylist
  if not s.inbound or not g or g.enabled == false then return end
  local d = hosted(s.rcpt_domain)
  if (d and d.greylist == false) or listed(g.exempt_domains, s.rcpt_domain) then return end
  local r = greylist(s.ip, s.sender, s.rcpt, g)
  -- r.error: the store failed and its fail mode (state.fail.greylist) said defer
  if not r.pass then
    return defer("greylisted", r.error and "greylisting unavailable, please retry later"
      or string.format("please retry in %ds", math.ceil(r.wait)))
  end
end)
