"""IPv6 end to end: a listener on ::1; a DNSBL listing an IPv6 client
(nibble-reversed names, rbldnsd ip6trie); greylisting keyed on the client's
/64 (v6_prefix = 64); relay networks over IPv6. Clients other than ::1 come
through a PROXY protocol listener (TCP6 headers from 127.0.0.1), the way a
load balancer hands mxgate its IPv6 clients."""
import os
import smtplib
import socket
import subprocess
import unittest

from spec.e2e import dnsserver
from spec.e2e.harness import ROOT, Mxgate, binary, free_port, wait_for
from spec.e2e.test_callout import have_ipv6
from spec.e2e.test_portal_rows import shared_world

ZEN6 = ":127.0.0.2:Listed, see https://www.spamhaus.org/query/ip/$\n::1 :127.0.0.4:\n2001:db8:4::/48 :127.0.0.10:\n"


class ProxiedClient:
    """SMTP over a raw socket to a PROXY listener, claiming an IPv6 client."""

    def __init__(self, port, client):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.sock.sendall(f"PROXY TCP6 {client} ::1 40000 25\r\n".encode())
        self.buf = b""
        self.reply()

    def reply(self):
        while True:
            lines = self.buf.split(b"\r\n")
            for i, line in enumerate(lines[:-1]):
                if line[3:4] == b" ":
                    self.buf = b"\r\n".join(lines[i + 1:])
                    return int(line[:3]), line[4:].decode()
            chunk = self.sock.recv(4096)
            if not chunk:
                raise AssertionError("closed: %r" % self.buf)
            self.buf += chunk

    def cmd(self, line):
        self.sock.sendall(line.encode() + b"\r\n")
        return self.reply()

    def rcpt(self, sender, rcpt):
        self.cmd("EHLO client.example")
        code, text = self.cmd(f"MAIL FROM:<{sender}>")
        assert code == 250, (code, text)
        return self.cmd(f"RCPT TO:<{rcpt}>")

    def close(self):
        self.sock.close()


class World:
    """rbldnsd with an IPv6 zone and an mxgate listening on 127.0.0.1, on
    ::1 and on PROXY listeners; one per mxgate binary, shared by the tests."""

    def __init__(self):
        self.rbl = dnsserver.Rbldnsd({"zen.test": ("ip6trie", ZEN6)})
        mx = self.mx = Mxgate(config={
            "rules": '"%s"' % os.path.join(ROOT, "rules.d"),
            "hosted_domains": '{ ["example.test"] = { route = "127.0.0.1:1", callout = false, greylist = false },'
                              ' ["grey.test"] = { route = "127.0.0.1:1", callout = false } }',
            "relay_networks": '{ "2001:db8:5::/48", "127.0.0.1/32" }',
            "dnsbl": '{ { zone = "zen.test", spamhaus = true } }',
            "verify_sender": "{ enabled = false }",
            "greylist": "{ delay = 3600, v6_prefix = 64 }",
        }, directions=("inbound", "outbound", "proxied", "proxied_out"))
        self.v6_port = free_port()
        p = mx.ports
        mx.config["listen"] = (
            '{ { address = "127.0.0.1", port = %d, direction = "inbound" }, '
            '{ address = "127.0.0.1", port = %d, direction = "outbound" }, '
            '{ address = "::1", port = %d, direction = "inbound" }, '
            '{ address = "127.0.0.1", port = %d, direction = "inbound", proxy_protocol = true, '
            'proxy_from = { "127.0.0.1" } }, '
            '{ address = "127.0.0.1", port = %d, direction = "outbound", proxy_protocol = true, '
            'proxy_from = { "127.0.0.1" } } }' % (
                p["inbound"], p["outbound"], self.v6_port, p["proxied"], p["proxied_out"]))

    def start(self):
        try:
            self.rbl.start()
            self.mx.config["dns"] = '{ servers = "%s", timeout = 0.5, tries = 2 }' % self.rbl.address
            self.mx.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        self.rbl.stop()
        self.mx.stop()
        self.mx.cleanup()


@unittest.skipUnless(have_ipv6(), "no IPv6 loopback (::1)")
class IPv6(unittest.TestCase):
    USES_MXGATE = True

    def setUp(self):
        w = shared_world("ipv6", World)
        self.mx, self.v6_port = w.mx, w.v6_port
        self.addCleanup(self.mx.check_sanitizers)

    def v6(self):
        return smtplib.SMTP("::1", self.v6_port, local_hostname="client.example", timeout=30)

    def proxied(self, client, direction="inbound"):
        c = ProxiedClient(self.mx.ports["proxied" if direction == "inbound" else "proxied_out"], client)
        self.addCleanup(c.close)
        return c

    def test_a_listener_on_ipv6_loopback_serves_the_ipv6_client(self):
        with self.v6() as c:
            code, banner = c.ehlo()
            self.assertEqual(code, 250)
            self.assertEqual(c.mail("someone@sender.test")[0], 250)
            # ::1 is listed in the IPv6 DNSBL: see the next test; a hosted
            # recipient still needs an unlisted client, so this one says
            # which check refused it, and where it came from.
            code, text = c.rcpt("user@example.test")
        self.assertEqual(code, 550)
        connect = [e for e in self.mx.events("connect") if e.get("client") == "::1"]
        self.assertTrue(connect)
        self.assertEqual(connect[-1]["listener"], "::1")

    def test_an_ipv6_client_listed_in_the_dnsbl_is_refused_as_xbl(self):
        with self.v6() as c:
            c.ehlo()
            c.mail("someone@sender.test")
            code, text = c.rcpt("user@example.test")
        self.assertEqual(code, 550)
        self.assertTrue(text.decode().startswith("5.7.1 XBL: ::1 is listed at zen.test (127.0.0.4)"), text)
        # ... and a network listing (PBL, 2001:db8:4::/48), through the proxy.
        code, text = self.proxied("2001:db8:4::77").rcpt("someone@sender.test", "user@example.test")
        self.assertEqual(code, 550)
        self.assertTrue(text.startswith("5.7.1 PBL: 2001:db8:4::77 is listed at zen.test"), text)

    def test_an_unlisted_ipv6_client_is_queued(self):
        c = self.proxied("2001:db8:9::1")
        self.assertEqual(c.rcpt("someone@sender.test", "user@example.test")[0], 250)
        self.assertEqual(c.cmd("DATA")[0], 354)
        code, text = c.cmd("Subject: v6\r\n\r\nhello\r\n.")
        self.assertEqual(code, 250, text)
        _, msg = self.mx.message(text.split("queued as ")[1].split()[0])
        self.assertIn(b"2001:db8:9::1", msg.split(b"\r\n", 1)[0])

    def greylist_keys(self):
        r = subprocess.run([binary(), "state", "-c", self.mx.conf_path, "list", "greylist"],
                           capture_output=True, text=True, timeout=30, cwd=ROOT)
        self.assertEqual(r.returncode, 0, r.stderr)
        return r.stdout

    def test_greylisting_keys_an_ipv6_client_on_its_64(self):
        for client in ("2001:db8:1:1::5", "2001:db8:1:1::6"):      # the same /64
            code, text = self.proxied(client).rcpt("someone@sender.test", "a@grey.test")
            self.assertEqual(code, 451, text)
        code, _ = self.proxied("2001:db8:1:2::5").rcpt("someone@sender.test", "a@grey.test")  # another /64
        self.assertEqual(code, 451)
        keys = self.greylist_keys()
        self.assertEqual(keys.count("2001:db8:1:1::/64"), 1, keys)
        self.assertEqual(keys.count("2001:db8:1:2::/64"), 1, keys)
        self.assertNotIn("::5", keys)

    def test_relay_networks_over_ipv6(self):
        code, text = self.proxied("2001:db8:5::9", "outbound").rcpt("a@customer.test", "b@elsewhere.test")
        self.assertEqual(code, 250, text)
        code, text = self.proxied("2001:db8:6::9", "outbound").rcpt("a@customer.test", "b@elsewhere.test")
        self.assertEqual(code, 550)
        self.assertTrue(text.startswith("5.7.1 Relay Denied"), text)
