"""SIGHUP reloads the TLS certificate and key (renewed every 60-90 days: no
restart), all or nothing: a broken certificate, or a key that does not
match it, changes nothing (not the certificate, not the rest of the
config) and logs why."""
import os
import smtplib
import ssl
import subprocess

from spec.e2e.harness import Mxgate, MxgateTest, wait_for


def make_cert(path, cn):
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                    "-nodes", "-days", "2", "-subj", "/CN=" + cn, "-keyout", path + ".key",
                    "-out", path + ".crt"], check=True, capture_output=True, timeout=60)
    for p in (path + ".key", path + ".crt"):
        os.chmod(p, 0o644)      # the workers read them as `user` on reload


def pem(path):
    with open(path) as f:
        return f.read().strip()


class CertificateReload(MxgateTest):
    WORKERS = 2

    def setUp(self):
        self.server = Mxgate(workers=self.WORKERS)
        self.addCleanup(self.server.cleanup)
        d = self.server.dir
        self.cert, self.key = os.path.join(d, "live.crt"), os.path.join(d, "live.key")
        for cn in ("one", "two", "three"):
            make_cert(os.path.join(d, cn), cn)
        self.install("one")
        self.server.config["tls"] = '{ cert = "%s", key = "%s" }' % (self.cert, self.key)
        self.server.start()
        self.addCleanup(self.server.stop)

    def install(self, cn, key_of=None):
        """What a certificate renewal does: new files at the same paths."""
        d = self.server.dir
        with open(self.cert, "w") as f:
            f.write(pem(os.path.join(d, cn + ".crt")) + "\n")
        with open(self.key, "w") as f:
            f.write(pem(os.path.join(d, (key_of or cn) + ".key")) + "\n")
        os.chmod(self.key, 0o644)

    def presented(self):
        """The certificate a new STARTTLS session gets, as PEM."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        with self.server.smtp() as c:
            c.ehlo()
            code, _ = c.starttls(context=ctx)
            self.assertEqual(code, 220)
            return ssl.DER_cert_to_PEM_cert(c.sock.getpeercert(binary_form=True)).strip()

    def reload_and_wait(self, event):
        before = len(self.server.events(event))
        self.server.reload()
        want = self.WORKERS if event == "reloaded" else 1
        wait_for(lambda: len(self.server.events(event)) >= before + want, what=event)

    def test_sighup_presents_the_renewed_certificate_to_new_sessions(self):
        self.assertEqual(self.presented(), pem(os.path.join(self.server.dir, "one.crt")))
        self.install("two")
        self.reload_and_wait("reloaded")
        for _ in range(4):              # whichever worker accepts
            self.assertEqual(self.presented(), pem(os.path.join(self.server.dir, "two.crt")))

    def test_a_broken_certificate_changes_nothing_and_says_why(self):
        with open(self.cert, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        # In the same edit, a config change that must not apply either.
        with open(self.server.conf_path, "a") as f:
            f.write('hosted_domains = { ["example.test"] = true, ["new.test"] = true }\n')
        self.reload_and_wait("reload_failed")
        e = self.server.events("reload_failed")[-1]
        self.assertTrue(e["error"].startswith("tls: " + self.cert), e)
        self.assertEqual(self.presented(), pem(os.path.join(self.server.dir, "one.crt")))
        with self.server.smtp() as c:
            c.ehlo()
            c.mail("a@sender.test")
            self.assertEqual(c.rcpt("b@new.test")[0], 550)          # the old config
        self.assertEqual(self.server.events("reloaded"), [])

    def test_a_key_that_does_not_match_changes_nothing(self):
        self.install("three", key_of="two")
        self.reload_and_wait("reload_failed")
        self.assertIn("tls: ", self.server.events("reload_failed")[-1]["error"])
        self.assertEqual(self.presented(), pem(os.path.join(self.server.dir, "one.crt")))
        # Fixed: the next SIGHUP takes it.
        self.install("three")
        self.reload_and_wait("reloaded")
        self.assertEqual(self.presented(), pem(os.path.join(self.server.dir, "three.crt")))
