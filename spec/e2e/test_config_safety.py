"""No config stops the service: the master reads the file on every SIGHUP
in a protected call under an instruction and memory budget, `mxgate -t`
reports the same error, every number must be finite, and the rules read
the file in the same sandbox the server does."""
import os
import signal
import subprocess
import time

from spec.e2e.harness import ROOT, Mxgate, binary, wait_for
from spec.e2e.test_rules_common import RulesTest, server_env

RAISING_INDEX = 'limits = setmetatable({}, { __index = function() error("boom") end })\n'
ENDLESS = "while true do end\n"


def check(srv, extra="", timeout=30):
    """`mxgate -t` on srv's config plus the extra Lua: (exit code, output)."""
    srv.write_config()
    with open(srv.conf_path, "a") as f:
        f.write(extra)
    p = subprocess.run([binary(), "-t", "-c", srv.conf_path], cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout, env=server_env())
    out = p.stdout + p.stderr
    if "AddressSanitizer" in out or "runtime error:" in out:
        raise AssertionError("sanitizer report:\n" + out)
    return p.returncode, out


def append_config(srv, extra):
    with open(srv.conf_path, "a") as f:
        f.write(extra)


def still_serves(test, srv):
    """The master is alive and a client gets its mail accepted."""
    test.assertIsNone(srv.proc.poll(), "the master died:\n" + srv.read_stderr()[-3000:])
    with srv.smtp() as c:
        c.ehlo()
        test.assertEqual(c.mail("bob@sender.test")[0], 250)
        test.assertEqual(c.rcpt("alice@example.test")[0], 250)
        test.assertEqual(c.data(b"Subject: after\r\n\r\nstill here\r\n")[0], 250)


class ConfigCheck(RulesTest):
    """`mxgate -t` on what a careless edit can put in the file."""

    def unstarted_builtin(self, config=None):
        srv = Mxgate(dict(config or {}))
        self.addCleanup(srv.cleanup)
        return srv

    def test_t_reports_a_raising_index_instead_of_aborting(self):
        code, out = check(self.unstarted_builtin(), RAISING_INDEX)
        self.assertEqual(code, 1, out)
        self.assertIn("mxgate.lua:", out)
        self.assertNotIn("PANIC", out)

    def test_t_stops_an_endless_loop_in_the_config(self):
        t0 = time.monotonic()
        code, out = check(self.unstarted_builtin(), ENDLESS, timeout=20)
        self.assertEqual(code, 1, out)
        self.assertIn("budget", out)
        self.assertLess(time.monotonic() - t0, 20)

    def test_t_refuses_pattern_matching_that_could_stall_the_master(self):
        code, out = check(self.unstarted_builtin(), 'x = ("a"):rep(2500):find("a-a-b")\n', timeout=5)
        self.assertEqual(code, 1, out)
        code, out = check(self.unstarted_builtin(), 'x = string.gsub(("a"):rep(2500), "a-a-b", "")\n',
                          timeout=5)
        self.assertEqual(code, 1, out)

    def test_t_refuses_a_config_over_its_memory_budget(self):
        code, out = check(self.unstarted_builtin(), 'settings = { big = ("x"):rep(128 * 1024 * 1024) }\n')
        self.assertEqual(code, 1, out)
        self.assertIn("memory", out)

    def test_t_reports_a_non_string_error_with_its_line(self):
        srv = self.unstarted_builtin()
        code, out = check(srv, "\nerror({})\n")
        self.assertEqual(code, 1, out)
        self.assertNotIn("(null)", out)
        with open(srv.conf_path) as f:
            line = f.read().splitlines().index("error({})") + 1
        self.assertIn(f"mxgate.lua:{line}: error object is a table value", out)

    def test_t_fails_when_the_tls_certificate_is_missing(self):
        srv = self.unstarted_builtin({"tls": '{ cert = "/nonexistent/cert.pem", key = "/nonexistent/key.pem" }'})
        code, out = check(srv)
        self.assertEqual(code, 1, out)
        self.assertIn("/nonexistent/cert.pem", out)

    def test_t_fails_when_the_tls_key_is_missing(self):
        srv = self.unstarted_builtin()
        srv.start()       # makes a self-signed pair in state_dir/tls
        srv.stop()
        cert = os.path.join(srv.dir, "var/tls/cert.pem")
        srv.config["tls"] = f'{{ cert = "{cert}", key = "/nonexistent/key.pem" }}'
        code, out = check(srv)
        self.assertEqual(code, 1, out)
        self.assertIn("/nonexistent/key.pem", out)

    def test_nan_timeout_is_refused_by_t(self):
        code, out = check(self.unstarted_builtin({"timeouts": "{ command = 0/0 }"}))
        self.assertEqual(code, 1, out)
        self.assertIn("timeouts: command: not a finite number (nan)", out)

    def test_nan_max_connections_is_refused_by_t(self):
        code, out = check(self.unstarted_builtin({"limits": "{ max_connections = 0/0 }"}))
        self.assertEqual(code, 1, out)
        self.assertIn("limits: max_connections: not a finite number", out)

    def test_infinity_in_a_key_the_rules_read_is_refused_by_t(self):
        code, out = check(self.unstarted_builtin({"greylist": "{ delay = 1/0 }"}))
        self.assertEqual(code, 1, out)
        self.assertIn("greylist: delay: not a finite number (inf)", out)
        code, out = check(self.unstarted_builtin({"ratelimit": "{ sender = { limit = -1/0 } }"}))
        self.assertEqual(code, 1, out)
        self.assertIn("ratelimit: sender.limit: not a finite number (-inf)", out)


class BadReload(RulesTest):
    """SIGHUP with a broken config: one reload_failed line, nothing else changes."""

    def served(self):
        srv = Mxgate({})
        self.addCleanup(srv.cleanup)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def reload_fails(self, srv, extra, timeout=15):
        failed = len(srv.events("reload_failed"))
        append_config(srv, extra)
        srv.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: len(srv.events("reload_failed")) > failed or srv.proc.poll() is not None,
                 timeout=timeout, what="the master's reload_failed")
        return srv.events("reload_failed")[failed:]

    def test_sighup_with_raising_index_keeps_serving(self):
        srv = self.served()
        ev = self.reload_fails(srv, RAISING_INDEX)
        self.assertTrue(ev and "mxgate.lua:" in ev[0]["error"], ev)
        still_serves(self, srv)

    def test_sighup_with_endless_loop_keeps_serving_and_stops_on_sigterm(self):
        srv = self.served()
        ev = self.reload_fails(srv, ENDLESS)
        self.assertIn("budget", ev[0]["error"])
        # The master still reaps and restarts workers...
        pid = srv.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: srv.log_has("worker_died", worker_pid=str(pid)), what="the master to reap")
        wait_for(lambda: len(srv.worker_pids()) == 1, what="a new worker")
        still_serves(self, srv)
        # ...and stops on SIGTERM.
        srv.proc.send_signal(signal.SIGTERM)
        srv.proc.wait(timeout=20)

    def test_sighup_with_nan_timeout_keeps_serving(self):
        srv = self.served()
        ev = self.reload_fails(srv, "timeouts = { command = 0/0 }\n")
        self.assertIn("not a finite number", ev[0]["error"])
        still_serves(self, srv)
        self.assertEqual(srv.events("worker_died"), [])


class RulesReadTheSameConfig(RulesTest):
    def test_string_functions_in_the_config_work_for_the_rules_as_for_t(self):
        config = {"settings": '{ banner = string.format("%s-%d", ("gate"):upper(), 7) }'}
        rule = ('rule("rcpt", "banner", function(s)\n'
                '  return deny { text = config.settings.banner }\nend)\n')
        code, out = check(self.unstarted({"10-banner.lua": rule}, config))
        self.assertEqual(code, 0, out)
        srv = self.serve({"10-banner.lua": rule}, config)
        with srv.smtp() as c:
            c.ehlo()
            c.mail("bob@sender.test")
            self.assertEqual(c.rcpt("alice@example.test"), (550, b"5.7.1 GATE-7"))
