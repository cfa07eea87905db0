"""Root and the unprivileged user: what root does before dropping privileges
never follows a link that user planted in state_dir, and what that user
owns is its own (a dedicated account, private spool files)."""
import os
import shutil
import stat
import subprocess
import unittest

from spec.e2e.harness import Mxgate, binary, wait_for

ROOT_ONLY = unittest.skipUnless(os.geteuid() == 0, "needs root: the master drops privileges only then")


def run_once(srv, timeout=20):
    """Starts srv's config; returns (exit status or None if it came up, stderr). Stops it."""
    srv.write_config()
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0")
    err_path = os.path.join(srv.dir, "stderr.once")
    with open(err_path, "wb") as err:
        p = subprocess.Popen([binary(), "-c", srv.conf_path], stdout=err, stderr=err, env=env)
        try:
            wait_for(lambda: p.poll() is not None or srv._connectable(srv.port), timeout=timeout,
                     what="mxgate to start or exit")
            status = p.poll()
        finally:
            if p.poll() is None:
                p.terminate()
                p.wait(timeout=30)
    with open(err_path, errors="replace") as f:
        text = f.read()
    if "AddressSanitizer" in text or "runtime error:" in text:
        raise AssertionError("sanitizer report from mxgate:\n" + text[-6000:])
    return status, text


class Victim:
    """A root-owned directory with a root-only file, outside state_dir."""

    def __init__(self, base):
        self.dir = os.path.join(base, "victim")
        os.mkdir(self.dir, 0o755)
        self.file = os.path.join(self.dir, "key.pem")
        with open(self.file, "w") as f:
            f.write("precious\n")
        os.chmod(self.file, 0o600)

    def assert_untouched(self, test):
        test.assertTrue(os.path.exists(self.file), "root deleted the victim file")
        d, f = os.lstat(self.dir), os.lstat(self.file)
        test.assertEqual((d.st_uid, d.st_gid), (0, 0), "the victim directory changed owner")
        test.assertEqual((f.st_uid, f.st_gid, stat.S_IMODE(f.st_mode)), (0, 0, 0o600))
        with open(self.file) as fh:
            test.assertEqual(fh.read(), "precious\n", "root wrote into or replaced the victim file")
        test.assertEqual(sorted(os.listdir(self.dir)), ["key.pem"])


@ROOT_ONLY
class PlantedLinks(unittest.TestCase):
    """state_dir belongs to the unprivileged user: each test plants what that
    user could, then restarts the master as root."""
    USES_MXGATE = True

    def setUp(self):
        self.srv = Mxgate()
        self.addCleanup(self.srv.cleanup)
        self.srv.start()
        self.srv.stop()
        self.var = os.path.join(self.srv.dir, "var")
        self.assertNotEqual(os.stat(self.var).st_uid, 0, "state_dir should belong to the user")
        self.victim = Victim(self.srv.dir)

    def replace_with_link(self, path, target):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.unlink(path)
        os.symlink(target, path)

    def test_master_does_not_follow_symlinked_spool_tmp(self):
        self.replace_with_link(os.path.join(self.var, "spool/tmp"), self.victim.dir)
        status, err = run_once(self.srv)
        self.victim.assert_untouched(self)
        self.assertEqual(status, 1, "a planted spool/tmp link must stop the start, loudly")
        self.assertIn("spool", err)

    def test_master_does_not_follow_symlinked_spool_dir(self):
        self.replace_with_link(os.path.join(self.var, "spool"), self.victim.dir)
        status, err = run_once(self.srv)
        self.victim.assert_untouched(self)
        self.assertEqual(status, 1)

    def test_master_does_not_follow_symlinked_tls_dir(self):
        self.replace_with_link(os.path.join(self.var, "tls"), self.victim.dir)
        status, err = run_once(self.srv)
        self.victim.assert_untouched(self)
        self.assertEqual(status, 1)
        self.assertIn("tls", err)

    def test_master_refuses_a_tls_dir_the_user_made(self):
        tls = os.path.join(self.var, "tls")
        for name in os.listdir(tls):
            os.unlink(os.path.join(tls, name))
        os.chown(tls, os.stat(self.var).st_uid, os.stat(self.var).st_gid)
        status, err = run_once(self.srv)
        self.assertEqual(status, 1, "a key directory the user controls would let it pick our TLS key")
        self.assertIn("tls", err)

    def test_master_does_not_follow_symlinked_log_file(self):
        log = os.path.join(self.var, "mxgate.log")
        self.replace_with_link(log, self.victim.file)
        self.srv.config["log_file"] = f'"{log}"'
        status, err = run_once(self.srv)
        self.victim.assert_untouched(self)
        self.assertEqual(status, 1)
        self.assertIn("log file", err)

    def test_master_does_not_chown_a_hard_linked_log_file(self):
        log = os.path.join(self.var, "mxgate.log")
        os.link(self.victim.file, log)
        self.srv.config["log_file"] = f'"{log}"'
        status, err = run_once(self.srv)
        os.unlink(log)
        self.victim.assert_untouched(self)
        self.assertEqual(status, 1)


if __name__ == "__main__":
    unittest.main()
