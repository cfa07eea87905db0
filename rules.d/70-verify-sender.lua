-- 70-verify-sender.lua - portal row 9: ask the sender domain's MX (or its
-- A record when it has no MX) whether it takes mail for the sender, with
-- MAIL FROM:<>. The null sender (bounces) is never verified. A definite
-- "no" or a domain that cannot be reached fails; a 4xx is given the
-- benefit of the doubt, as Exim's defer_ok; a DNS lookup that failed is
-- our resolver's trouble, not the sender's, and defers.
--
-- config.verify_sender = { enabled = false } turns it off.

-- "127.0.0.9:25 said 550 5.1.1 ...", "mx.example:25: connect: refused"...
local function what_happened(r)
  local host, text = r.host or "", r.text or r.result
  if r.code and r.code > 0 then return string.format("%s said %d %s", host, r.code, text) end
  if host == "" or text:find(host, 1, true) then return text end
  return host .. ": " .. text
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
  local detail = string.format("<%s>: %s", s.sender, what_happened(r))
  if dns_failed(r) then
    return defer("sender_verify_deferred", detail)
  end
  return deny("sender_verify", detail)
end)
