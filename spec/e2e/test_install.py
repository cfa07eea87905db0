"""`make install PREFIX=... DESTDIR=...`: the Debian package's layout for
those who build from source, an admin's config never overwritten, and the
version the package carries is the one the binary prints."""
import os
import re
import shutil
import subprocess
import tempfile
import unittest

from spec.e2e.harness import ROOT


def make_install(destdir, prefix):
    # -o all: install what `make test` built; never rebuild under a running suite.
    return subprocess.run(["make", "-s", "-o", "all", "install", f"DESTDIR={destdir}", f"PREFIX={prefix}"], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)


def read(path):
    with open(path) as f:
        return f.read()


class Install(unittest.TestCase):
    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="mxgate-install-")
        self.addCleanup(shutil.rmtree, self.dest)

    def test_prefix_usr_is_the_package_layout(self):
        r = make_install(self.dest, "/usr")
        self.assertEqual(r.returncode, 0, r.stderr)
        d = self.dest
        for path in ("usr/sbin/mxgate", "usr/share/mxgate/stdlib/mxgate.lua", "usr/share/mxgate/stdlib/reasons.lua",
                     "etc/mxgate/mxgate.lua", "etc/mxgate/rules.d/99-accept.lua", "var/spool/mxgate",
                     "var/lib/mxgate", "lib/systemd/system/mxgate.service", "usr/share/man/man8/mxgate.8",
                     "usr/share/man/man8/ruletest.8", "usr/share/man/man5/mxgate.lua.5",
                     "usr/share/man/man7/mxgate-rules.7", "usr/share/doc/mxgate/PORTAL.md"):
            self.assertTrue(os.path.exists(os.path.join(d, path)), path)
        self.assertEqual(os.readlink(os.path.join(d, "usr/sbin/ruletest")), "mxgate")
        conf = read(os.path.join(d, "etc/mxgate/mxgate.lua"))
        for line in ('state_dir = "/var/lib/mxgate"', 'spool_dir = "/var/spool/mxgate"', 'user = "mxgate"',
                     'rules = "/etc/mxgate/rules.d"', 'stdlib = "/usr/share/mxgate/stdlib"', "port = 25,"):
            self.assertIn(line, conf)
        self.assertEqual(read(os.path.join(d, "lib/systemd/system/mxgate.service")),
                         read(os.path.join(ROOT, "etc/mxgate.service")))

    def test_another_prefix_moves_config_state_and_unit_under_it(self):
        r = make_install(self.dest, "/usr/local")
        self.assertEqual(r.returncode, 0, r.stderr)
        conf = read(os.path.join(self.dest, "usr/local/etc/mxgate/mxgate.lua"))
        self.assertIn('rules = "/usr/local/etc/mxgate/rules.d"', conf)
        self.assertIn('stdlib = "/usr/local/share/mxgate/stdlib"', conf)
        self.assertIn('state_dir = "/usr/local/var/lib/mxgate"', conf)
        unit = read(os.path.join(self.dest, "usr/local/lib/systemd/system/mxgate.service"))
        self.assertIn("ExecStart=/usr/local/sbin/mxgate -c /usr/local/etc/mxgate/mxgate.lua", unit)
        self.assertIn("ReadWritePaths=/usr/local/var/spool/mxgate /usr/local/var/lib/mxgate", unit)

    def test_a_second_install_keeps_the_admins_config_and_rules(self):
        self.assertEqual(make_install(self.dest, "/usr").returncode, 0)
        conf = os.path.join(self.dest, "etc/mxgate/mxgate.lua")
        rule = os.path.join(self.dest, "etc/mxgate/rules.d/50-dnsbl.lua")
        for p in (conf, rule):
            with open(p, "a") as f:
                f.write("-- the admin's edit\n")
        r = make_install(self.dest, "/usr")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("kept", r.stdout)
        for p in (conf, rule):
            self.assertTrue(read(p).endswith("-- the admin's edit\n"), p)

    def test_debian_changelog_carries_the_version_the_binary_prints(self):
        version = re.search(r'MXGATE_VERSION "([^"]+)"', read(os.path.join(ROOT, "engine/lib/version.h"))).group(1)
        first = read(os.path.join(ROOT, "debian/changelog")).splitlines()[0]
        self.assertEqual(re.match(r"mxgate \(([^)]+)\)", first).group(1), version)
