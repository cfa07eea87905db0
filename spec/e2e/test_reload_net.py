"""SIGHUP reloads the resolver and callout client settings (`dns`,
`callout`), all or nothing: new lookups go to the new DNS servers, new
callouts to the new port; a setting that does not work (a server list
c-ares refuses) changes nothing, not even the rest of the config, and the
log says why."""
import os
import smtplib

from spec.e2e import dnsserver, smtpservers as ss
from spec.e2e.harness import ROOT, Mxgate, MxgateTest, wait_for

ZEN_A = ":127.0.0.2:Listed\n127.0.0.4 :127.0.0.4:\n"
ZEN_B = ":127.0.0.2:Listed\n127.0.0.5 :127.0.0.4:\n"


class ResolverAndCalloutReload(MxgateTest):
    WORKERS = 2

    def setUp(self):
        self.rbl_a = dnsserver.Rbldnsd({"zen.test": ("ip4set", ZEN_A)})
        self.rbl_b = dnsserver.Rbldnsd({"zen.test": ("ip4set", ZEN_B)})
        self.downstream = ss.SmtpServer(host="127.0.0.2")   # 127.0.0.1 is us (row 11)
        for srv in (self.rbl_a, self.rbl_b, self.downstream):
            srv.start()
            self.addCleanup(srv.stop)
        self.server = Mxgate(config={
            "rules": '"%s"' % os.path.join(ROOT, "rules.d"),
            "hosted_domains": '{ ["example.test"] = { route = "127.0.0.1:1", callout = false, greylist = false },'
                              ' ["co.test"] = { route = "127.0.0.2", greylist = false } }',
            "dnsbl": '{ { zone = "zen.test", spamhaus = true } }',
            "verify_sender": "{ enabled = false }",
        }, workers=self.WORKERS)
        self.addCleanup(self.server.cleanup)
        self.set(dns=self.rbl_a.address, port=self.downstream.port)
        self.server.start()
        self.addCleanup(self.server.stop)

    def set(self, dns, port, extra=""):
        self.server.config["dns"] = '{ servers = "%s", timeout = 0.5, tries = 2 }' % dns
        self.server.config["callout"] = "{ port = %d, connect_timeout = 1, command_timeout = 2 }" % port
        self.server.write_config()
        if extra:
            with open(self.server.conf_path, "a") as f:
                f.write(extra)

    def reload(self, event):
        before = len(self.server.events(event))
        self.server.reload()
        wait_for(lambda: len(self.server.events(event)) >= before + self.WORKERS, what=event)

    def rcpt(self, source, rcpt="user@example.test"):
        with smtplib.SMTP("127.0.0.1", self.server.port, local_hostname="client.example",
                          source_address=(source, 0), timeout=30) as c:
            c.ehlo()
            c.mail("someone@sender.test")
            code, text = c.rcpt(rcpt)
            return code, text.decode()

    def test_new_dns_servers_answer_after_sighup(self):
        self.assertTrue(self.rcpt("127.0.0.4")[1].startswith("5.7.1 XBL"))
        self.assertEqual(self.rcpt("127.0.0.5")[0], 250)
        self.set(dns=self.rbl_b.address, port=self.downstream.port)
        self.reload("reloaded")
        # The new resolver asks B, with an empty cache.
        self.assertTrue(self.rcpt("127.0.0.5")[1].startswith("5.7.1 XBL"))
        self.assertEqual(self.rcpt("127.0.0.4")[0], 250)

    def test_a_broken_dns_setting_changes_nothing(self):
        self.set(dns="not a server list", port=self.downstream.port,
                 extra='hosted_domains = { ["example.test"] = true, ["new.test"] = true }\n')
        self.reload("reload_failed")
        e = self.server.events("reload_failed")[-1]
        self.assertIn("dns: bad server list", e["error"])
        self.assertTrue(self.rcpt("127.0.0.4")[1].startswith("5.7.1 XBL"))    # still A
        self.assertEqual(self.rcpt("127.0.0.6", "user@new.test")[0], 550)        # old config
        self.assertEqual(self.server.events("reloaded"), [])

    def test_a_new_callout_port_is_used_after_sighup(self):
        got = self.rcpt("127.0.0.6", "first@co.test")
        self.assertEqual(got[0], 250, got)
        self.assertTrue(self.downstream.rcpts)
        self.set(dns=self.rbl_a.address, port=ss.closed_port("127.0.0.2"))
        self.reload("reloaded")
        code, text = self.rcpt("127.0.0.6", "second@co.test")
        self.assertEqual(code, 451)
        self.assertTrue(text.startswith("4.4.1 Could not complete recipient callout"), text)
