-- 99-accept.lua - a recipient that came through every check is accepted.
-- A RCPT that no rule accepts is refused (550 5.7.1): removing this file
-- closes the gateway, it never opens it.

rule("rcpt", "accept", function(s)
  return accept()
end)
