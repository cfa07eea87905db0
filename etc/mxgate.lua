-- mxgate configuration: the one file `bin/mxgate -c etc/mxgate.lua` reads.
-- Every key is optional; README.md ("Configuration") lists them all with
-- their defaults. Check an edit with `bin/mxgate -t -c etc/mxgate.lua`,
-- apply it with `kill -HUP <master pid>`.

hostname = "mx.mxgate.test"          -- our name: greeting, Received:, row 10
host_names = { "mxgate.test" }       -- other names we answer to (row 10)
our_addresses = {}                   -- public IPs not on a listener (NAT), rows 10-11

listen = {
  { address = "127.0.0.1", port = 2525, direction = "inbound" },   -- the MX
  { address = "127.0.0.1", port = 2587, direction = "outbound" },  -- the relay
}

-- /metrics (Prometheus), /healthz and the portal page, in a process of
-- its own. Off without this line; an address off loopback needs a token
-- (Authorization: Bearer ...) or user and password (basic auth).
-- Its limits, with their defaults (`mxgate -t` refuses 0, negatives,
-- fractions, NaN, values past their range and unknown keys):
--   max_connections = 64         at once, all clients
--   max_per_ip = 16              at once, one client address
--   timeout = 10                 seconds a connection may sit idle
--   connection_memory = 32768    bytes of a request's headers (more: 431)
--   max_page = 16777216          bytes of one page (more: 500)
--   index_max_size = 17179869184 bytes of the portal's index, state_dir/index
--   index_retention = 30         days the portal's index keeps a log record
--                                (older ones leave the page and `mxgate report`)
http = { address = "127.0.0.1", port = 8025 }

state_dir = "var"                    -- spool/, state/, journal/, tls/ live here
user = "mxgate"                      -- when started as root, run as this (dedicated) user
rules = "rules.d"                    -- rule files; false = built-in C policy

-- Hosted domains and where each one's mail goes (its inbound route):
-- "host[:port]", or "mx:domain" to follow that domain's MX. Per domain,
-- callout = false skips the recipient callout (rows 6-8) and
-- greylist = false exempts it from greylisting (row 4).
hosted_domains = {
  -- The demo domain: no downstream server runs on 2626 in `make run`, so
  -- its callouts are off and it is not greylisted.
  ["example.test"] = { route = "127.0.0.1:2626", callout = false, greylist = false },
  -- ["customer.example"] = { route = "mail.customer.example:25" },
}

-- Customers' networks allowed to relay through the outbound listener (row 13).
relay_networks = { "127.0.0.0/8" }

-- Sender domains whose mail must arrive over STARTTLS (row 12).
tls_enforced_senders = { "secure.example" }

-- DNS block lists (rows 2, 3, 5). ZEN's answers say XBL, PBL or SBL/CSS/DROP;
-- with a Spamhaus DQS key use "KEY.zen.dq.spamhaus.net". Other zones:
-- { zone = "bl.example", match = { "127.0.0.2" } } (any listing when no match).
dnsbl = {
  { zone = "zen.spamhaus.org" },
}

-- Resolver; nil servers = /etc/resolv.conf. Spamhaus refuses queries that
-- come through public resolvers: run a local one.
dns = { timeout = 2, tries = 2 }

-- Greylisting (row 4), as postgrey/Exim: delay before a retry passes, how
-- long an unretried tuple is kept, how long a client stays on the allow list.
greylist = { delay = 60, tuple_ttl = 48 * 3600, allow_ttl = 35 * 86400,
             v4_prefix = 32, v6_prefix = 128, exempt_domains = {} }

-- Outbound sender rate (row 14): Exim's smoothed rate, per message.
ratelimit = { sender = { limit = 100, period = 3600, mode = "leaky" } }

-- Recipient callouts (rows 6-8) and sender verification (row 9).
-- Sender verification never connects to loopback, private, link-local or
-- our own addresses (the sender chose them); allow_networks lists exceptions.
-- downstream_enhanced = true: rows 6-8 carry the downstream's enhanced code.
callout = { port = 25, connect_timeout = 10, command_timeout = 30,
            positive_ttl = 24 * 3600, negative_ttl = 2 * 3600, max_per_host = 5,
            allow_networks = {}, downstream_enhanced = false }
-- Sender verification talks to the internet's port 25; off in the demo.
verify_sender = { enabled = false }

limits = {
  max_connections = 1000,            -- in total, all workers together
  max_per_ip = 50,                   -- from one client address
  max_recipients = 100,              -- per message (452 4.5.3 beyond)
  max_message_size = 26214400,       -- octets (SIZE, 552 5.3.4 beyond)
  max_errors = 10,                   -- protocol errors before 421
}

timeouts = {
  greeting_delay = 0,                -- seconds; > 0 turns on the pregreet test
  command = 300,                     -- a whole command line (RFC 5321 4.5.3.2.7)
  data = 180,                        -- the next data block (RFC 5321 4.5.3.2.6)
  message = 900,                     -- a whole message, 354 to the final dot
  session = 1800,                    -- a whole session
  shutdown = 30,                     -- SIGTERM: sessions get this long to finish
}

-- The session journal ruletest replays: every session (sample = 1), or
-- a fraction, or journal = false.
journal = { sample = 1 }
