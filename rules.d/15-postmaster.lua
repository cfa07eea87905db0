-- 15-postmaster.lua - mail to our postmaster is accepted from anyone, before
-- the relay, DNSBL, callout and greylisting checks (RFC 5321 4.5.1). A bare
-- RCPT TO:<postmaster> arrives here as the configured `postmaster` address.

rule("rcpt", "postmaster", function(s)
  if s.postmaster then
    return accept()
  end
end)
