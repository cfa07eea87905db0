"""A fleet sharing its state through a real redis-server: two mxgate
instances (A and B, their own ports and directories) on one Redis.

Greylisting across hosts, one sender rate across hosts with concurrent
senders (portal row 14), one callout cache (the downstream sees one
callout), Redis stopped/hung and back (fail modes, log lines, no restart),
an ACL user, and a wrong password refused at start and by `mxgate -t`.
"""
import os
import signal
import subprocess
import threading
import time
import unittest

from spec.e2e.harness import Mxgate, binary, wait_for
from spec.e2e.redisserver import RedisServer

GREY = '''
rule("rcpt", "grey", function(s)
  local g = greylist(s.ip, s.sender, s.rcpt, config.greylist)
  if not g.pass then
    return defer("greylisted", g.error and "greylisting unavailable" or "retry later")
  end
end)
rule("rcpt", "ok", function(s) return accept() end)
'''

# rules.d/60-ratelimit.lua as shipped (row 14), and an accept rule
with open(os.path.join(os.path.dirname(__file__), "..", "..", "rules.d", "60-ratelimit.lua")) as f:
    RATE = f.read()
ACCEPT = 'rule("rcpt", "ok", function(s) return accept() end)\n'

CALLOUT = '''
rule("rcpt", "callout", function(s)
  local r = callout(s.rcpt, hosted(s.rcpt_domain).route)
  if r.result == "rcpt_rejected" then return deny("invalid_mailbox", r.text) end
  return accept()
end)
'''


def rcpt(server, sender, to, direction="inbound"):
    with server.smtp(direction) as c:
        c.ehlo()
        c.mail(sender)
        return c.rcpt(to)


class Fleet(unittest.TestCase):
    """Redis and two gateways, A and B, with the rules and config given."""
    USES_MXGATE = True

    def fleet(self, rules, config=None, redis=None, state=None):
        self.redis = redis or RedisServer()
        if not redis:
            self.redis.start()
            self.addCleanup(self.redis.cleanup)
        st = {"backend": '"redis"', "server": '"%s"' % self.redis.address, "timeout": 0.5}
        st.update(state or {})
        conf = dict(config or {}, state=st)
        self.a = Mxgate(dict(conf), rules={"50-test.lua": rules})
        self.b = Mxgate(dict(conf), rules={"50-test.lua": rules})
        for m in (self.a, self.b):
            self.addCleanup(m.cleanup)
            m.start()
            self.addCleanup(m.stop)
        return self.a, self.b

    def config_test(self, redis, state):
        """`mxgate -t` on a config whose store is this Redis (self.bad)."""
        self.bad = Mxgate({"state": dict({"backend": '"redis"', "server": '"%s"' % redis.address},
                                         **state)}, rules={"50-test.lua": GREY})
        self.addCleanup(self.bad.cleanup)
        self.bad.write_config()
        return subprocess.run([binary(), "-t", "-c", self.bad.conf_path], capture_output=True,
                              text=True, timeout=30, cwd=self.bad.dir)


class GreylistAcrossHosts(Fleet):
    def test_greylisted_at_a_passes_at_b_after_the_delay_and_is_then_allowed_at_a(self):
        a, b = self.fleet(GREY, {"greylist": "{ delay = 0.5 }"})
        self.assertEqual(rcpt(a, "s@one.test", "x@example.test")[0], 451)
        # early at B: the tuple A recorded is still within its delay
        self.assertEqual(rcpt(b, "s@one.test", "x@example.test")[0], 451)
        wait_for(lambda: rcpt(b, "s@one.test", "x@example.test")[0] == 250, what="pass at B")
        # the client is on the shared allow list: a new tuple passes at A at once
        self.assertEqual(rcpt(a, "t@two.test", "y@example.test")[0], 250)
        # and the operators see it through Redis
        out = subprocess.run([binary(), "state", "-c", a.conf_path, "list", "allow"],
                             capture_output=True, text=True, timeout=30)
        self.assertEqual(out.returncode, 0, out.stderr)
        self.assertIn("127.0.0.1\texpires=", out.stdout)
        self.assertIn("mxgate:allow:{127.0.0.1}", self.redis.cli("KEYS", "*"))


class RateAcrossHosts(Fleet):
    def test_sender_limit_of_5_across_two_hosts_refuses_the_sixth_with_concurrent_senders(self):
        a, b = self.fleet(RATE + ACCEPT, {"ratelimit": "{ sender = { limit = 5, period = 3600 } }"})
        results, go = [], threading.Barrier(6)

        def send(server):
            with server.smtp("outbound") as c:
                c.ehlo()
                go.wait(10)
                results.append(c.mail("bulk@customer.test"))

        threads = [threading.Thread(target=send, args=(m,)) for m in (a, b) * 3]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        codes = sorted(code for code, _ in results)
        self.assertEqual(codes, [250] * 5 + [451], results)
        refused = [msg.decode() for code, msg in results if code == 451][0]
        self.assertIn("4.7.1", refused)
        self.assertIn("Sender Rate Exceeded", refused)
        # the shared record saw five, not five per host
        out = subprocess.run([binary(), "state", "-c", b.conf_path, "get", "ratelimit",
                              "sender:bulk@customer.test"], capture_output=True, text=True, timeout=30)
        rate = float(out.stdout.split("rate=")[1].split()[0])
        self.assertAlmostEqual(rate, 5, delta=0.01)


class CalloutCacheAcrossHosts(Fleet):
    def test_callout_cached_by_a_is_used_by_b_and_the_downstream_sees_one(self):
        from spec.e2e import smtpservers as ss
        down = ss.SmtpServer()
        down.start()
        self.addCleanup(down.stop)
        a, b = self.fleet(CALLOUT, {"hosted_domains": '{ ["example.test"] = { route = "%s" } }' % down.address})
        self.assertEqual(rcpt(a, "s@one.test", "user@example.test")[0], 250)
        # A writes its answer to the shared cache after answering (no wait on
        # the SMTP path): once it is there, B uses it
        wait_for(lambda: "mxgate:callout:{" in self.redis.cli("KEYS", "*"), what="A's cache entry")
        self.assertEqual(rcpt(b, "s@one.test", "user@example.test")[0], 250)
        self.assertEqual(down.rcpts, ["user@example.test"])
        self.assertTrue(b.log_has("callout", cached="1") or
                        any(e.get("cached") in ("1", "true") for e in b.events("callout")), b.log_lines())


class RedisFailure(Fleet):
    def test_redis_down_answers_with_the_fail_mode_and_comes_back_without_a_restart(self):
        a, _ = self.fleet(GREY, {"greylist": "{ delay = 0.3 }"}, state={"fail": '{ greylist = "defer" }'})
        self.assertEqual(rcpt(a, "s@one.test", "x@example.test")[0], 451)
        self.redis.stop()
        t0 = time.monotonic()
        code, msg = rcpt(a, "s@two.test", "y@example.test")
        self.assertLess(time.monotonic() - t0, 10)          # answered, not hung
        self.assertEqual((code, b"greylisting unavailable" in msg), (451, True), msg)
        wait_for(lambda: a.log_has("state_error"), what="a state_error log line")
        self.redis.start()                                   # same port, empty
        # back to normal greylisting: a new tuple is recorded, then passes
        wait_for(lambda: b"retry later" in rcpt(a, "s@three.test", "z@example.test")[1],
                 what="greylisting again")
        wait_for(lambda: rcpt(a, "s@three.test", "z@example.test")[0] == 250, what="pass")
        self.assertTrue(a.log_has("state_connected"))

    def test_hung_redis_is_answered_within_the_timeout_with_the_fail_mode(self):
        a, _ = self.fleet(GREY, {"greylist": "{ delay = 0.3 }"})
        self.assertEqual(rcpt(a, "s@one.test", "x@example.test")[0], 451)
        os.kill(self.redis.proc.pid, signal.SIGSTOP)
        try:
            t0 = time.monotonic()
            code, _ = rcpt(a, "s@two.test", "y@example.test")
            took = time.monotonic() - t0
            # two more unanswered calls: the connection is given up on
            more = [rcpt(a, "s@%d.test" % i, "y@example.test")[0] for i in range(2)]
        finally:
            os.kill(self.redis.proc.pid, signal.SIGCONT)
        self.assertEqual(code, 250)                           # fail mode: pass
        self.assertGreaterEqual(took, 0.5)                    # it waited for the timeout...
        self.assertLess(took, 10)                             # ...not for Redis
        self.assertEqual(more, [250, 250])
        errs = [e for e in a.events("state_error") if e.get("op") == "greylist"]
        self.assertTrue(errs and "no answer within 0.5s" in errs[0].get("error", ""), a.log_lines())
        self.assertEqual(errs[0].get("fail_mode"), "pass")
        # dropped, reconnected, and greylisting as before
        wait_for(lambda: a.log_has("state_connected"), what="reconnected")
        self.assertTrue(any("reconnecting" in e.get("error", "") for e in a.events("state_error")))
        wait_for(lambda: rcpt(a, "s@three.test", "z@example.test")[0] == 451, what="greylisting")


class RedisAbsentAtStart(Fleet):
    def test_redis_unreachable_at_start_is_a_warning_then_state_comes_when_redis_does(self):
        r = RedisServer()                     # its port, not listening yet
        self.addCleanup(r.cleanup)
        t = self.config_test(r, {})
        self.assertEqual(t.returncode, 0, t.stdout + t.stderr)
        self.assertIn("warning", t.stderr)
        a, _ = self.fleet(GREY, {"greylist": "{ delay = 0.3 }"}, redis=r)
        self.assertEqual(rcpt(a, "s@one.test", "x@example.test")[0], 250)   # fail mode: pass
        r.start()
        wait_for(lambda: rcpt(a, "s@two.test", "y@example.test")[0] == 451, what="greylisting")


class RedisAuth(Fleet):
    def test_acl_user_and_password_work_and_a_wrong_password_is_refused_at_start(self):
        r = RedisServer(password="s3cret", user="mx")
        r.start()
        self.addCleanup(r.cleanup)
        a, _ = self.fleet(GREY, {"greylist": "{ delay = 5 }"}, redis=r,
                          state={"user": '"mx"', "password": '"s3cret"'})
        self.assertEqual(rcpt(a, "s@one.test", "x@example.test")[0], 451)
        self.assertIn("mxgate:grey:{127.0.0.1}:<s@one.test> <x@example.test>", r.cli("KEYS", "*"))

        t = self.config_test(r, {"user": '"mx"', "password": '"wrong"'})
        self.assertEqual(t.returncode, 1, t.stdout + t.stderr)
        self.assertIn("AUTH refused", t.stderr)
        self.assertIn("WRONGPASS", t.stderr)
        with self.assertRaises(AssertionError) as e:
            self.bad.start()
        self.assertIn("WRONGPASS", str(e.exception))


if __name__ == "__main__":
    unittest.main()
