"""Command-line conventions of every command and subcommand: --help prints
the usage on stdout and exits 0, --version prints the version, a usage error
prints the usage on stderr and exits 2."""
import os
import re
import subprocess
import unittest

from spec.e2e.harness import ROOT, binary

COMMANDS = {
    "mxgate": [],
    "mxgate state": ["state"],
    "mxgate report": ["report"],
    "mxgate queue": ["queue"],
    "mxgate queue": ["queue"],
    "ruletest": None,
}


def version_h():
    with open(os.path.join(ROOT, "engine/lib/version.h")) as f:
        return re.search(r'MXGATE_VERSION "([^"]+)"', f.read()).group(1)


class CommandLine(unittest.TestCase):
    def run_cmd(self, name, *args):
        sub = COMMANDS[name]
        if sub is None:
            cmd = [os.path.join(os.path.dirname(binary()), "ruletest")]
        else:
            cmd = [binary()] + sub
        return subprocess.run(cmd + list(args), capture_output=True, text=True, timeout=30,
                              cwd=ROOT)

    def test_help_prints_usage_on_stdout_and_exits_0(self):
        for name in COMMANDS:
            with self.subTest(name):
                r = self.run_cmd(name, "--help")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.startswith("usage: " + name.split()[0]), r.stdout)
                self.assertIn(name, r.stdout)
                self.assertEqual(r.stderr, "")

    def test_version_prints_the_release(self):
        for name in COMMANDS:
            with self.subTest(name):
                r = self.run_cmd(name, "--version")
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertRegex(r.stdout, r"^\S.* " + re.escape(version_h()) + r"\n$")
                self.assertEqual(r.stderr, "")

    def test_unknown_option_is_a_usage_error_on_stderr_exit_2(self):
        for name in COMMANDS:
            with self.subTest(name):
                r = self.run_cmd(name, "--no-such-option")
                self.assertEqual(r.returncode, 2)
                self.assertEqual(r.stdout, "")
                self.assertIn("usage:", r.stderr)

    def test_stray_argument_is_a_usage_error(self):
        r = self.run_cmd("mxgate", "-c", "etc/mxgate.lua", "stray")
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("unexpected argument: stray", r.stderr)
        r = self.run_cmd("mxgate state", "frobnicate")
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("unknown command: frobnicate", r.stderr)
        r = self.run_cmd("ruletest")          # nothing to replay
        self.assertEqual((r.returncode, r.stdout), (2, ""))
        self.assertIn("usage: ruletest", r.stderr)
