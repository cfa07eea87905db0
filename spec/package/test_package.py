#!/usr/bin/python3
"""The Debian package as an admin meets it (`make test-deb`, as root; slow,
so not part of `make test`): lintian has no error, `apt-get install
./mxgate_*.deb` creates the user and the directories and enables the unit,
the installed unit verifies, and the installed server, started the way the
unit starts it (same bounding set, no new privileges, NOTIFY_SOCKET; PID 1
is not systemd here), says READY=1 and answers SMTP. An admin's edit of a
conffile survives a reinstall. The package is purged at the end (KEEP=1
keeps it installed).

    make test-deb            # builds, then runs this
    python3 spec/package/test_package.py [mxgate_VERSION_ARCH.deb]
"""
import glob
import grp
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import stat
import subprocess
import sys
import tempfile
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, ROOT)
from spec.e2e.test_systemd import NotifySocket      # noqa: E402  (the test's service manager)

DEB = None


def run(*cmd, check=True, **kw):
    r = subprocess.run(list(cmd), capture_output=True, text=True, timeout=600, **kw)
    if check and r.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)}: exit {r.returncode}\n{r.stdout}\n{r.stderr}")
    return r


def unit_directive(key):
    with open("/lib/systemd/system/mxgate.service") as f:
        return [l.split("=", 1)[1].strip() for l in f if l.startswith(key + "=")]


def port_free(port):
    with socket.socket() as s:
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            s.bind(("127.0.0.1", port))
            return True
        except OSError:
            return False


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Package(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.lintian = run("lintian", "--allow-root", "-I", "-E", DEB, check=False)
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        cls.install = run("apt-get", "install", "-y", "-q", "--no-install-recommends",
                          os.path.join(".", os.path.relpath(DEB, ROOT)), cwd=ROOT, env=env, check=False)

    @classmethod
    def tearDownClass(cls):
        if os.environ.get("KEEP") != "1":
            run("apt-get", "purge", "-y", "-q", "mxgate", check=False,
                env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))

    def test_01_lintian_reports_no_error_and_no_warning(self):
        tags = [l for l in self.lintian.stdout.splitlines() if re.match(r"[EW]: ", l)]
        print("\n     lintian: " + (self.lintian.stdout.strip().replace("\n", "\n     lintian: ") or "clean"))
        self.assertEqual(tags, [])

    def test_02_apt_get_install_of_the_file_succeeds(self):
        self.assertEqual(self.install.returncode, 0, self.install.stdout + self.install.stderr)
        self.assertEqual(run("dpkg-query", "-W", "-f=${Status}", "mxgate").stdout, "install ok installed")

    def test_03_layout_binaries_stdlib_config_spool_state(self):
        for path in ("/usr/sbin/mxgate", "/usr/share/mxgate/stdlib/mxgate.lua",
                     "/usr/share/mxgate/stdlib/reasons.lua", "/etc/mxgate/mxgate.lua",
                     "/etc/mxgate/rules.d/50-dnsbl.lua", "/usr/share/doc/mxgate/PORTAL.md.gz",
                     "/usr/share/man/man5/mxgate.lua.5.gz", "/lib/systemd/system/mxgate.service"):
            self.assertTrue(os.path.exists(path), path)
        self.assertEqual(os.readlink("/usr/sbin/ruletest"), "mxgate")
        self.assertTrue(os.access("/usr/sbin/mxgate", os.X_OK))

    def test_04_the_system_user_owns_the_spool_and_the_state(self):
        pw = pwd.getpwnam("mxgate")
        self.assertLess(pw.pw_uid, 1000)                     # a system user
        self.assertEqual(grp.getgrgid(pw.pw_gid).gr_name, "mxgate")
        self.assertIn(pw.pw_shell, ("/usr/sbin/nologin", "/bin/false"))
        for d, mode in (("/var/spool/mxgate", 0o700), ("/var/lib/mxgate", 0o750)):
            st = os.stat(d)
            self.assertEqual((st.st_uid, stat.S_IMODE(st.st_mode)), (pw.pw_uid, mode), d)

    def test_05_config_and_rules_are_conffiles(self):
        conffiles = run("dpkg-query", "-W", "-f=${Conffiles}", "mxgate").stdout
        for f in ["/etc/mxgate/mxgate.lua"] + ["/etc/mxgate/rules.d/" + os.path.basename(p)
                                                for p in glob.glob(os.path.join(ROOT, "rules.d/*.lua"))]:
            self.assertIn(f + " ", conffiles)

    def test_06_the_unit_is_enabled_and_verifies_clean(self):
        self.assertTrue(os.path.islink("/etc/systemd/system/multi-user.target.wants/mxgate.service"))
        r = run("systemd-analyze", "verify", "/lib/systemd/system/mxgate.service", check=False)
        print(f"\n     systemd-analyze verify: exit {r.returncode} {(r.stdout + r.stderr).strip() or 'clean'}")
        self.assertEqual((r.returncode, r.stdout + r.stderr), (0, ""))

    def test_07_config_check_man_and_version(self):
        r = run("/usr/sbin/mxgate", "-t", "-c", "/etc/mxgate/mxgate.lua")
        self.assertIn("/etc/mxgate/mxgate.lua: ok", r.stdout)
        self.assertRegex(run("/usr/sbin/ruletest", "--version").stdout, r"^ruletest \(mxgate\) \d")
        for page in ("mxgate", "ruletest", "mxgate.lua", "mxgate-rules"):
            r = run("man", "-P", "cat", page, env=dict(os.environ, MANWIDTH="80"))
            self.assertIn("SEE ALSO", r.stdout, page)

    def test_08_started_as_the_unit_starts_it_it_is_ready_and_answers(self):
        # The installed config, on free ports when 25/587 are taken here.
        inbound = 25 if port_free(25) else free_port()
        outbound = 587 if port_free(587) else free_port()
        work = tempfile.mkdtemp(prefix="mxgate-pkg-")
        self.addCleanup(shutil.rmtree, work, True)
        os.chmod(work, 0o755)
        with open("/etc/mxgate/mxgate.lua") as f:
            conf = f.read().replace("port = 25,", f"port = {inbound},").replace(
                "port = 587,", f"port = {outbound},")
        conf += ('\nhosted_domains = { ["example.test"] = { route = "127.0.0.1:1", callout = false, '
                 'greylist = false } }\ndnsbl = {}\n')
        conf_path = os.path.join(work, "mxgate.lua")
        with open(conf_path, "w") as f:
            f.write(conf)
        notify = NotifySocket(os.path.join(work, "notify"))
        self.addCleanup(notify.close)
        caps = unit_directive("CapabilityBoundingSet")[0].lower().split()
        bounding = "-all," + ",".join("+" + c[len("cap_"):] for c in caps)
        cmd = ["setpriv", "--bounding-set", bounding, "--no-new-privs",
               "/usr/sbin/mxgate", "-c", conf_path]
        print(f"\n     started as: {' '.join(cmd)} (inbound port {inbound})")
        log = open(os.path.join(work, "stderr"), "w+")
        proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=dict(
            os.environ, NOTIFY_SOCKET=os.path.join(work, "notify")))
        self.addCleanup(lambda: proc.poll() is None and proc.kill())
        try:
            seen = notify.until("READY", timeout=30)
        except socket.timeout:
            log.seek(0)
            self.fail("no READY=1; mxgate said:\n" + log.read())
        self.assertEqual(seen[-1][1], proc.pid)
        with smtplib.SMTP("127.0.0.1", inbound, local_hostname="client.example", timeout=30) as c:
            code, banner = c.ehlo()
            self.assertEqual(code, 250)
            self.assertEqual(c.mail("someone@sender.test")[0], 250)
            code, text = c.rcpt("nobody@not-hosted.test")
            self.assertEqual((code, text.split(b" ", 1)[0]), (550, b"5.7.1"))
            self.assertIn(b"Your domain is not configured to use this MX host.", text)   # row 1
            self.assertEqual(c.rcpt("postmaster@example.test")[0], 250)
            code, text = c.data(b"Subject: installed\r\n\r\nhello\r\n")
            self.assertEqual(code, 250, text)
        queue = os.listdir("/var/spool/mxgate/queue")
        self.assertEqual(len(queue), 1)
        self.assertEqual(os.stat("/var/spool/mxgate/queue/" + queue[0]).st_uid, pwd.getpwnam("mxgate").pw_uid)
        # Workers run as mxgate, not root.
        workers = run("pgrep", "-P", str(proc.pid)).stdout.split()
        self.assertTrue(workers)
        for w in workers:
            self.assertEqual(os.stat(f"/proc/{w}").st_uid, pwd.getpwnam("mxgate").pw_uid)
        # systemctl reload is SIGHUP.
        proc.send_signal(signal.SIGHUP)
        seen = notify.until("READY")
        self.assertEqual(seen[0][0].get("RELOADING"), "1")
        proc.send_signal(signal.SIGTERM)
        self.assertEqual(proc.wait(timeout=60), 0)

    def test_09_an_edited_conffile_survives_a_reinstall(self):
        path = "/etc/mxgate/rules.d/99-accept.lua"
        with open(path, "a") as f:
            f.write("-- edited by the admin\n")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        run("apt-get", "install", "-y", "-q", "--reinstall",
            os.path.join(".", os.path.relpath(DEB, ROOT)), cwd=ROOT, env=env)
        with open(path) as f:
            self.assertIn("-- edited by the admin", f.read())


def main():
    global DEB
    if os.geteuid() != 0:
        print("test_package.py: run as root (it installs the package)", file=sys.stderr)
        return 2
    debs = sys.argv[1:] or sorted(glob.glob(os.path.join(ROOT, "mxgate_*_*.deb")))
    if not debs:
        print("test_package.py: no mxgate_*.deb: run `make deb` first", file=sys.stderr)
        return 2
    DEB = os.path.abspath(debs[-1])
    print(f"package: {os.path.basename(DEB)}")
    suite = unittest.TestLoader().loadTestsFromTestCase(Package)
    passed = failed = 0
    result = unittest.TestResult()
    suite.run(result)
    bad = {t.id() for t, _ in result.failures + result.errors}
    for t in unittest.TestLoader().getTestCaseNames(Package):
        tid = f"{Package.__module__}.Package.{t}"
        if any(b.endswith(t) for b in bad):
            failed += 1
            print(f"FAIL package/{t}")
        else:
            passed += 1
            print(f"ok   package/{t}")
    for _, tb in result.failures + result.errors:
        print("     " + tb.replace("\n", "\n     "))
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
