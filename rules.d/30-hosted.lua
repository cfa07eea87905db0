-- 30-hosted.lua - the MX accepts mail only for hosted domains (portal row 1).

rule("rcpt", "hosted_domain", function(s)
  if s.inbound and not hosted(s.rcpt_domain) then
    return deny("not_hosted")
  end
end)
