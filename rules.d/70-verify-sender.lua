-- 70-verify-sender.lua - portal row 9: ask the sender domain's MX (or its
-- A record when it has no MX) whether it takes mail for the sender, with
-- MAIL FROM:<>. The null sender (bounces) is never verified. Only a
-- definite "no" or an unreachable domain fails; a 4xx is given the benefit
-- of the doubt, as Exim's defer_ok.

rule("rcpt", "verify_sender", function(s)
  local vs = config.verify_sender
  if not s.inbound or s.sender == "" or (vs and vs.enabled == false) then return end
  if s.data.sender_verified then return end
  local r = verify_sender(s.sender)
  if r.result == "ok" or r.result == "rcpt_deferred" or
     (r.result == "rejected" and r.code < 500) then
    s.data.sender_verified = true
    return
  end
  return deny("sender_verify", string.format("<%s>: %s %s", s.sender, r.host or "", r.text or r.result))
end)
