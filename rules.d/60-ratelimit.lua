-- 60-ratelimit.lua - portal row 14: an outbound sender over its smoothed
-- message rate (Exim's ratelimit: per_mail, leaky by default) is deferred.
--
-- config.ratelimit = { sender = { limit = 100, period = 3600, mode = "leaky" } }
-- Release a customer: bin/mxgate state -c CONF del ratelimit sender:ADDRESS
--
-- Only clients that may relay count: a stranger's MAIL FROM a customer's
-- address (refused at RCPT by 20-relay.lua) must not spend that customer's
-- rate and lock them out.

rule("mail", "sender_rate", function(s)
  local rl = config.ratelimit and config.ratelimit.sender
  if not (s.outbound and rl) or s.sender == "" then return end
  if not in_networks(s.ip, config.relay_networks) then return end
  local r = ratelimit("sender:" .. s.sender:lower(), rl.limit or 100, rl.period or 3600,
                      { mode = rl.mode or "leaky" })
  -- r.error: the store failed and its fail mode (state.fail.ratelimit) said defer
  if r.over then
    return defer("sender_rate", r.error and "rate limit unavailable, please retry later"
      or string.format("%s: %.1f messages per %ds, limit %d",
      s.sender, r.rate, rl.period or 3600, rl.limit or 100))
  end
end)
