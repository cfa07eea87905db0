-- 20-relay.lua - the outbound listener relays only for customers' networks
-- (portal row 13). An outbound client from a relay network is accepted by
-- 99-accept.lua once the later outbound checks (rate limit) pass.

rule("rcpt", "outbound_relay", function(s)
  if s.outbound and not in_networks(s.ip, config.relay_networks) then
    return deny("relay_denied", s.ip .. " is not in the outbound relay networks")
  end
end)
