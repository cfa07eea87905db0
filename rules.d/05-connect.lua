-- 05-connect.lua - start the DNSBL lookups for the client's address as soon
-- as it connects, so that RCPT finds them answered (cache) and never waits.

rule("connect", "dnsbl_prefetch", function(s)
  if s.inbound and config.dnsbl then
    dnsbl_prefetch(s.ip, config.dnsbl)
  end
end)
