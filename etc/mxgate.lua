-- mxgate configuration: the one file `bin/mxgate -c etc/mxgate.lua` reads.
-- Every key is optional; README.md ("Configuration") lists them all with
-- their defaults. Check an edit with `bin/mxgate -t -c etc/mxgate.lua`.

hostname = "mx.mxgate.test"          -- our name: greeting, Received:, HELO checks

listen = {
  { address = "127.0.0.1", port = 2525, direction = "inbound" },   -- the MX
  { address = "127.0.0.1", port = 2587, direction = "outbound" },  -- the relay
}

state_dir = "var"                    -- spool/, state/, tls/ live here
user = "nobody"                      -- when started as root, run as this user

-- Hosted domains and the downstream server ("inbound route") of each.
hosted_domains = {
  ["example.test"] = { route = "127.0.0.1:2626" },
}

-- Customers' networks allowed to relay through the outbound listener.
relay_networks = { "127.0.0.0/8" }

limits = {
  max_connections = 1000,            -- in total, all workers together
  max_per_ip = 50,                   -- from one client address
  max_recipients = 100,              -- per message (452 4.5.3 beyond)
  max_message_size = 26214400,       -- octets (SIZE, 552 5.3.4 beyond)
}

timeouts = {
  greeting_delay = 0,                -- seconds; > 0 turns on the pregreet test
  command = 300,                     -- RFC 5321 4.5.3.2.7
  data = 180,                        -- RFC 5321 4.5.3.2.6
}

rules = "rules.d"                    -- rule files; false = built-in C policy
