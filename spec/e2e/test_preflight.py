"""spec/preflight.py: a tool the tests need that is missing, or lacks a
capability (swaks without TLS), stops the run with one line naming the
Debian package, before the first test."""
import os
import shutil
import subprocess
import tempfile
import unittest

from spec.e2e.harness import ROOT, PYTHON
from spec import preflight


class Preflight(unittest.TestCase):
    def setUp(self):
        self.bin = tempfile.mkdtemp(prefix="mxgate-preflight-")
        self.addCleanup(shutil.rmtree, self.bin)
        for tool in ("nsd", "rbldnsd", "openssl", "dig", "lua5.4", "swaks", "man", "nroff",
                     "systemd-analyze", "haproxy"):
            path = shutil.which(tool)
            if path:
                os.symlink(path, os.path.join(self.bin, tool))

    def fake(self, tool, script):
        p = os.path.join(self.bin, tool)
        if os.path.lexists(p):
            os.unlink(p)
        with open(p, "w") as f:
            f.write("#!/bin/sh\n" + script)
        os.chmod(p, 0o755)

    def run_py(self, *args):
        env = dict(os.environ, PATH=self.bin)
        return subprocess.run([PYTHON] + list(args), cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=60)

    def test_this_machine_has_everything_the_tests_use(self):
        self.assertIsNone(preflight.missing())

    def test_swaks_without_tls_names_the_perl_packages_in_one_line(self):
        self.fake("swaks", 'echo "*** TLS not available: requires Net::SSLeay"\n')
        r = self.run_py("-m", "spec.preflight")
        self.assertEqual(r.returncode, 2)
        self.assertEqual(r.stdout, "")
        lines = r.stderr.splitlines()
        self.assertEqual(len(lines), 1, r.stderr)
        self.assertIn("swaks with TLS", lines[0])
        self.assertIn("libnet-ssleay-perl libio-socket-ssl-perl", lines[0])

    def test_run_py_stops_before_the_first_test_when_nsd_is_missing(self):
        os.unlink(os.path.join(self.bin, "nsd"))
        r = self.run_py("spec/run.py", "-k", "no-such-test", "--no-asan")
        self.assertEqual(r.returncode, 2)
        self.assertNotIn("passed", r.stdout)
        self.assertEqual(r.stderr.strip().splitlines(),
                         ["missing: nsd (authoritative DNS for the tests): apt-get install nsd "
                          "(or run `make deps`)"])
