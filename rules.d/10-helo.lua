-- 10-helo.lua - portal row 10: a client that greets with our own name, or
-- an address literal of one of our addresses, is lying about who it is.

local ourselves = require "ourselves"

rule("helo", "helo_self", function(s)
  if s.inbound and (ourselves.is_name(s.helo) or ourselves.is_address_literal(s.helo, s)) then
    return deny("helo_self")
  end
end)
