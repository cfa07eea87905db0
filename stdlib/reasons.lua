-- reasons.lua - every reason a rule can give, in one table.
--
-- The reply text starts with `text`, verbatim; a rule may add detail after
-- it. `cause` is what the portal shows customers. Change a message with one
-- line in rules.d/00-reasons.lua:  reason("xbl", { text = "..." })
return {
  -- The hosting portal's table (docs/PORTAL.md), row by row.
  not_hosted = { row = 1, dir = "in", code = 550, enhanced = "5.7.1",
    text = "Your domain is not configured to use this MX host.",
    cause = "Sending to inbound MX records to a domain which is not on the system" },
  xbl = { row = 2, dir = "in", code = 550, enhanced = "5.7.1", text = "XBL",
    cause = "Sending IP is listed on Spamhaus" },
  pbl = { row = 3, dir = "in", code = 550, enhanced = "5.7.1", text = "PBL",
    cause = "Sending IP is listed on Spamhaus" },
  greylisted = { row = 4, dir = "in", code = 451, enhanced = "4.7.1", text = "Greylisted",
    cause = "When we receive a message in our mail server which is from an unknown address to an unknown address, then the following tuple will be grey-listed: IP, sender, recipient. However, if our mail server receives the same tuple for the 2nd time, then the IP address will be added to our system-wide global greylisting allow list. It will not be greylisted again." },
  rbl = { row = 5, dir = "in", code = 550, enhanced = "5.7.1", text = "RBL Reject",
    cause = "Please Contact Support" },
  callout_rejected = { row = 6, dir = "in", code = 550, enhanced = "5.7.1",
    text = "Call forward rejected",
    cause = "We got a rejection from the downstream mail server (Domain most likely configured, verify via SMTP)." },
  callout_failed = { row = 7, dir = "in", code = 451, enhanced = "4.4.1",
    text = "Could not complete recipient callout",
    cause = "The downstream server timed out. (Domain most likely configured, verify via SMTP)." },
  invalid_mailbox = { row = 8, dir = "in", code = 550, enhanced = "5.1.1",
    text = "Invalid Mailbox (Call FWD)",
    cause = "We got a rejection from the downstream mail server (Domain most likely configured, verify via SMTP)." },
  sender_verify = { row = 9, dir = "in", code = 550, enhanced = "5.7.1",
    text = "Sender Verify Failed",
    cause = "Server tries to verify the senders e-mail address. In order to verify this, the server connects to the remote SMTP server from which the mail originates according to the \"MAIL FROM\" command. If the server can't be reached, or if it doesn't know about that particular e-mail address, the delivery is denied." },
  helo_self = { row = 10, dir = "in", code = 550, enhanced = "5.7.1",
    text = "You cannot say you are me. I am me.", cause = "Please contact support." },
  mx_loop = { row = 11, dir = "in", code = 550, enhanced = "5.4.6",
    text = "Lowest numbered MX record points to local host",
    cause = "Record in inbound route hostname points to our service." },
  tls_required = { row = 12, dir = "in", code = 530, enhanced = "5.7.0",
    text = "Your sender domain is required to send via an encrypted SMTP session",
    cause = "E-mail is recieved from a TLS enforced domain not in TLS." },
  relay_denied = { row = 13, dir = "out", code = 550, enhanced = "5.7.1", text = "Relay Denied",
    cause = "Outbound IP address is not added to the outbound relay section of the portal." },
  sender_rate = { row = 14, dir = "out", code = 451, enhanced = "4.7.1", text = "Sender Rate Exceeded",
    cause = "Please Contact Support" },

  -- The portal's row 6 when the downstream answer was temporary.
  callout_deferred = { row = 6, dir = "in", code = 451, enhanced = "4.7.1", text = "Call forward rejected",
    cause = "We got a temporary rejection (4xx) from the downstream mail server (Domain most likely configured, verify via SMTP)." },
  -- The portal's row 9 when the sender's domain could not be looked up:
  -- a resolver failure is ours, so the client is asked to retry.
  sender_verify_deferred = { row = 9, dir = "in", code = 451, enhanced = "4.4.3",
    text = "Sender Verify Failed",
    cause = "The sender's domain could not be looked up in DNS (a temporary failure); the sending server will retry." },
  -- Not in the portal: the engine's own.
  rule_error = { code = 451, enhanced = "4.3.0", text = "Temporary local problem, try again later",
    cause = "A rule failed; the log names it." },
}
