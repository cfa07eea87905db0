-- 75-callout.lua - portal rows 6, 7 and 8: ask the hosted domain's inbound
-- route whether it takes this recipient before we accept mail for it.

rule("rcpt", "recipient_callout", function(s)
  local d = s.inbound and hosted(s.rcpt_domain)
  if not d or d.callout == false then return end
  local r = callout(s.rcpt, d.route or ("mx:" .. s.rcpt_domain))
  if r.result == "ok" then return end
  local detail = string.format("%s said %s %s", r.host or "", r.code or "", r.text or "")
  if r.result == "rcpt_rejected" then
    return deny("invalid_mailbox", detail)                    -- row 8
  elseif r.result == "rejected" then                          -- row 6
    return r.code >= 500 and deny("callout_rejected", detail) or defer("callout_deferred", detail)
  elseif r.result == "rcpt_deferred" then
    return defer("callout_deferred", detail)
  end
  return defer("callout_failed", (r.host or "") .. ": " .. (r.text or r.result))  -- row 7
end)
