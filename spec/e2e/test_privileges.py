"""Root and the unprivileged user: what root does before dropping privileges
never follows a link that user planted in state_dir, and what that user
owns is its own (a dedicated account, private spool files)."""
import os
import pwd
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


def t_check(srv):
    srv.write_config()
    p = subprocess.run([binary(), "-t", "-c", srv.conf_path], capture_output=True, text=True, timeout=30,
                       env=dict(os.environ, ASAN_OPTIONS="detect_leaks=0:abort_on_error=0"))
    return p.returncode, p.stdout + p.stderr


class DedicatedUser(unittest.TestCase):
    """`nobody` is shared with other daemons: mxgate runs as its own account
    and its spool is readable by that account only."""
    USES_MXGATE = True

    def served(self, config=None):
        srv = Mxgate(dict(config or {}))
        self.addCleanup(srv.cleanup)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def test_spool_files_are_0600_and_spool_dirs_0700(self):
        srv = self.served()
        with srv.smtp() as c:
            c.sendmail("bob@sender.test", ["alice@example.test"], b"Subject: private\r\n\r\nmine\r\n")
        [qid] = srv.queue()
        spool = srv.spool_dir()
        self.assertEqual(oct(stat.S_IMODE(os.stat(os.path.join(spool, "queue", qid)).st_mode)), "0o600")
        for d in ("", "tmp", "queue"):
            self.assertEqual(oct(stat.S_IMODE(os.stat(os.path.join(spool, d)).st_mode)), "0o700", d or "spool")
        if os.geteuid() == 0:
            self.assertEqual(os.stat(os.path.join(spool, "queue", qid)).st_uid, pwd.getpwnam("mxgate").pw_uid)

    @ROOT_ONLY
    def test_default_user_is_the_dedicated_mxgate_account(self):
        srv = self.served()
        uid = pwd.getpwnam("mxgate").pw_uid
        self.assertNotEqual(uid, pwd.getpwnam("nobody").pw_uid)
        for pid in [srv.proc.pid] + srv.worker_pids():
            with open(f"/proc/{pid}/status") as f:
                uids = next(l for l in f if l.startswith("Uid:")).split()[1:]
            self.assertEqual(set(map(int, uids)), {uid}, f"pid {pid} runs as {uids}")

    def test_user_nobody_is_refused_unless_allow_user_nobody(self):
        srv = Mxgate({"user": '"nobody"'})
        self.addCleanup(srv.cleanup)
        code, out = t_check(srv)
        self.assertEqual(code, 1, out)
        self.assertIn("allow_user_nobody", out)
        status, err = run_once(srv)
        self.assertEqual(status, 1, "the server started as nobody")
        self.assertIn("allow_user_nobody", err)
        srv.config["allow_user_nobody"] = "true"
        code, out = t_check(srv)
        self.assertEqual(code, 0, out)

    @ROOT_ONLY
    def test_queued_files_of_an_earlier_user_become_private_at_start(self):
        srv = Mxgate()
        self.addCleanup(srv.cleanup)
        srv.start()
        srv.stop()
        queue = os.path.join(srv.spool_dir(), "queue")
        old = os.path.join(queue, "1OLDQUEUEDFILE00000")
        with open(old, "w") as f:
            f.write('{"length":"00000000000000000000"}\n')
        os.chmod(old, 0o640)
        nobody = pwd.getpwnam("nobody")
        os.chown(old, nobody.pw_uid, nobody.pw_gid)
        victim = Victim(srv.dir)
        os.link(victim.file, os.path.join(queue, "1HARDLINKEDFILE0000"))
        self.addCleanup(srv.stop)
        srv.start()
        st = os.stat(old)
        self.assertEqual((st.st_uid, oct(stat.S_IMODE(st.st_mode))), (pwd.getpwnam("mxgate").pw_uid, "0o600"))
        victim.assert_untouched(self)


if __name__ == "__main__":
    unittest.main()
