"""What the rules tests share: a server per test with its own rule files,
rewriting those files, SIGHUP and its log event, and `mxgate -t`.

No tests here; spec/e2e/test_rules_*.py use it.
"""
import os
import subprocess
import unittest

from spec.e2e.harness import ROOT, Mxgate, binary, wait_for


def server_env():
    env = dict(os.environ)
    env.setdefault("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=0")
    env.setdefault("UBSAN_OPTIONS", "print_stacktrace=1")
    return env


class RulesTest(unittest.TestCase):
    USES_MXGATE = True

    def serve(self, rules, config=None, workers=1):
        """A running mxgate whose rules.d holds exactly `rules`."""
        srv = Mxgate(dict(config or {}), rules=dict(rules), workers=workers)
        self.addCleanup(srv.cleanup)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def unstarted(self, rules, config=None):
        """A config and rules.d on disk, for `mxgate -t`, no server."""
        srv = Mxgate(dict(config or {}), rules=dict(rules))
        self.addCleanup(srv.cleanup)
        srv.write_config()
        return srv

    @staticmethod
    def rules_dir(srv):
        return os.path.join(srv.dir, "rules.d")

    def set_rules(self, srv, rules, remove=()):
        """Rewrites rule files (write to a temporary name, then rename, as an
        editor or a deploy would) and removes others."""
        d = self.rules_dir(srv)
        for name, src in rules.items():
            tmp = os.path.join(d, "." + name + ".tmp")
            with open(tmp, "w") as f:
                f.write(src)
            os.rename(tmp, os.path.join(d, name))
        for name in remove:
            os.unlink(os.path.join(d, name))

    def reload(self, srv):
        """SIGHUP, then the worker's answer: its reloaded or reload_failed event."""
        before = srv.reload()
        done = wait_for(lambda: (lambda ev: ev if len(ev) > before else None)(
            [e for e in srv.log_lines() if e.get("event") in ("reloaded", "reload_failed")]),
            what="the reload's log event")
        return done[before]

    def check(self, srv):
        """`mxgate -t -c CONF`: (exit status, stdout + stderr)."""
        p = subprocess.run([binary(), "-t", "-c", srv.conf_path], cwd=ROOT, capture_output=True,
                           text=True, timeout=60, env=server_env())
        out = p.stdout + p.stderr
        if "AddressSanitizer" in out or "runtime error:" in out:
            raise AssertionError("sanitizer report from mxgate -t:\n" + out)
        return p.returncode, out

    def assert_refused(self, srv, *fragments):
        """`mxgate -t` exits 1 and its message holds every fragment (file:line...)."""
        rc, out = self.check(srv)
        self.assertEqual(rc, 1, out)
        for f in fragments:
            self.assertIn(f, out)
        return out

    def rule_errors(self, srv):
        return srv.events("rule_error")
