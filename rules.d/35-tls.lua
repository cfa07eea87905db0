-- 35-tls.lua - portal row 12: mail from a TLS-enforced sender domain must
-- arrive over STARTTLS.

rule("mail", "tls_enforced_sender", function(s)
  if s.inbound and not s.tls and listed(config.tls_enforced_senders, s.sender_domain) then
    return deny("tls_required")
  end
end)
