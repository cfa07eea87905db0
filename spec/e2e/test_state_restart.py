"""Greylisting state outlives the server: the allow list is on disk (LMDB),
or in Redis; the same test runs against each backend."""
import subprocess

from spec.e2e.harness import Mxgate, MxgateTest, binary, wait_for
from spec.e2e.redisserver import RedisServer

GREY = {"50-grey.lua": '''
rule("rcpt", "grey", function(s)
  local g = greylist(s.ip, s.sender, s.rcpt, config.greylist)
  if not g.pass then return defer("greylisted", g.verdict) end
end)
rule("rcpt", "ok", function(s) return accept() end)
'''}


def rcpt_code(server, sender, rcpt):
    with server.smtp() as c:
        c.ehlo()
        c.mail(sender)
        return c.rcpt(rcpt)[0]


class StateSurvivesRestart(MxgateTest):
    CONFIG = {"greylist": "{ delay = 0.2 }"}
    RULES = GREY

    def test_allow_list_survives_a_restart_and_the_state_command_sees_it(self):
        s = self.server
        self.assertEqual(rcpt_code(s, "a@one.test", "x@example.test"), 451)
        # Retried after the (short) delay: passes and allow-lists 127.0.0.1.
        wait_for(lambda: rcpt_code(s, "a@one.test", "x@example.test") == 250, what="greylist pass")
        s.stop()
        # A new server on the same state directory: the client is still allowed,
        # so a tuple it never sent passes at once.
        again = Mxgate(dict(self.server.config, state_dir='"%s/var"' % s.dir), rules=dict(GREY))
        self.addCleanup(again.cleanup)
        again.start()
        self.addCleanup(again.stop)
        self.assertEqual(rcpt_code(again, "b@two.test", "y@example.test"), 250)
        out = subprocess.run([binary(), "state", "-c", again.conf_path, "list", "allow"],
                             capture_output=True, text=True, timeout=30).stdout
        self.assertIn("127.0.0.1", out)


class StateSurvivesRestartRedis(StateSurvivesRestart):
    """The same, with the state in a real redis-server."""

    def setUp(self):
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.cleanup)
        self.CONFIG = dict(self.CONFIG, state={"backend": '"redis"', "server": '"%s"' % self.redis.address})
        super().setUp()
