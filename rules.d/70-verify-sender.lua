-- 70-verify-sender.lua - portal row 9: ask the sender domain's MX (or its
-- A record when it has no MX) whether it takes mail for the sender, with
-- MAIL FROM:<>. The null sender (bounces) is never verified. A definite
-- "no" or a domain that cannot be reached fails; a 4xx is given the
-- benefit of the doubt, as Exim's defer_ok; a DNS lookup that failed is
-- our resolver's trouble, not the sender's, and defers.
--
-- The sender chose where we connect: an address literal or a name that
-- resolves to loopback, private, link-local or our own addresses is never
-- verified by connecting (config.callout.allow_networks lists exceptions),
-- and the client reads our finding, never the remote server's words or
-- address: those go to the log (and the journal).
--
-- config.verify_sender = { enabled = false } turns it off.

-- What the client may read.
local function finding(r)
  if r.result == "rcpt_rejected" or r.result == "rejected" then
    return "refused by the sender domain's mail server"
  elseif r.stage == "policy" then
    return "the sender domain's mail server is not on a public address"
  elseif r.stage == "dns" then
    local t = r.text or ""
    if t:find("no such domain", 1, true) then return "no such domain" end
    if t:find("lookup failed", 1, true) then return "DNS lookup failed" end
    return "no mail server for the sender domain"
  end
  return "the sender domain's mail server could not be reached"
end

local function dns_failed(r)
  return r.result == "unreachable" and r.stage == "dns" and
         (r.text or ""):find("lookup failed", 1, true) ~= nil
end

rule("rcpt", "verify_sender", function(s)
  local vs = config.verify_sender
  if not s.inbound or s.sender == "" or (vs and vs.enabled == false) then return end
  -- Once per sender: after RSET, a new MAIL FROM is verified anew.
  if s.data.verified_sender == s.sender then return end
  local r = verify_sender(s.sender)
  if r.result == "ok" or r.result == "rcpt_deferred" or
     (r.result == "rejected" and r.code < 500) then
    s.data.verified_sender = s.sender
    return
  end
  log(string.format("verify_sender <%s>: %s %s %s %s %s", s.sender, r.host or "", r.result,
    r.stage or "", r.code or "", r.text or ""))
  local detail = string.format("<%s>: %s", s.sender, finding(r))
  if dns_failed(r) then
    return defer("sender_verify_deferred", detail)
  end
  return deny("sender_verify", detail)
end)
