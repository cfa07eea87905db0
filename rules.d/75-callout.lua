-- 75-callout.lua - portal rows 6, 7 and 8: ask the hosted domain's inbound
-- route whether it takes this recipient before we accept mail for it.
--
-- The client reads the portal's reason, nothing more: the route (the
-- customer's internal host) and the downstream's own words go to the log
-- (and the journal), never to whoever is sending. With
-- config.callout.downstream_enhanced = true the reply carries the
-- downstream's enhanced code (5.2.2 mailbox full...) when it has one of
-- the reply's class.

local function told_the_log(s, r)
  log(string.format("callout <%s>: %s %s %s %s", s.rcpt, r.host or "", r.result,
    r.code or "", r.text or ""))
end

local function with_their_code(v, r)
  local c = config.callout
  local e = c and c.downstream_enhanced and (r.text or ""):match("^([245]%.%d%d?%d?%.%d%d?%d?)")
  if e and e:sub(1, 1) == tostring(v.code):sub(1, 1) then v.enhanced = e end
  return v
end

rule("rcpt", "recipient_callout", function(s)
  local d = s.inbound and hosted(s.rcpt_domain)
  if not d or d.callout == false then return end
  local r = callout(s.rcpt, d.route or ("mx:" .. s.rcpt_domain))
  if r.result == "ok" then return end
  told_the_log(s, r)
  if r.result == "rcpt_rejected" then
    return with_their_code(deny("invalid_mailbox"), r)            -- row 8
  elseif r.result == "rejected" then                             -- row 6
    return with_their_code(r.code >= 500 and deny("callout_rejected") or defer("callout_deferred"), r)
  elseif r.result == "rcpt_deferred" then
    return with_their_code(defer("callout_deferred"), r)
  end
  return defer("callout_failed")                                 -- row 7
end)
