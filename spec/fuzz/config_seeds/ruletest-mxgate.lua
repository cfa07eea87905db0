-- The configuration spec/ruletest/*.session cases run against (spec/run.py:
-- bin/ruletest -c spec/ruletest/mxgate.lua spec/ruletest/*.session).
-- Every portal row is switched on; nothing here is ever contacted: the
-- cases answer every primitive themselves.
hostname = "mx.mxgate.test"
host_names = { "mxgate.test" }
listen = {
  { address = "127.0.0.1", port = 2525, direction = "inbound" },
  { address = "127.0.0.1", port = 2587, direction = "outbound" },
}
state_dir = "/tmp/mxgate-ruletest-cases"
rules = "rules.d"
hosted_domains = {
  ["example.test"] = { route = "127.0.0.1:2626" },
  ["loop.test"] = { route = "127.0.0.1:2525" },          -- row 11: routes back to us
}
relay_networks = { "10.0.0.0/8" }
tls_enforced_senders = { "secure.example" }
dnsbl = { { zone = "zen.spamhaus.org" } }
greylist = { delay = 60 }
ratelimit = { sender = { limit = 100, period = 3600, mode = "leaky" } }
verify_sender = { enabled = true }
