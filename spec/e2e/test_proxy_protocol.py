"""mxgate behind a real HAProxy (PROXY protocol v1 and v2): the client's own
address, not the load balancer's, is what every rule, log line, DNSBL
lookup and greylist tuple sees. A client on 127.0.0.4, listed in XBL, is
refused exactly as when it connects directly (portal row 2). A header from
outside proxy_from, a malformed or truncated one, or none at all: the
connection is closed, and the log says why."""
import os
import shutil
import smtplib
import socket
import subprocess
import time
import unittest

from spec.e2e import dnsserver
from spec.e2e.harness import ROOT, Mxgate, binary, free_port, wait_for
from spec.e2e.test_portal_rows import shared_world

XBL_CLIENT = "127.0.0.4"
ZEN = ":127.0.0.2:Listed, see https://www.spamhaus.org/query/ip/$\n%s :127.0.0.4:\n" % XBL_CLIENT


class HAProxy(dnsserver._Process):
    """haproxy -db in front of one backend: frontend `port` sends PROXY v1,
    frontend `port_v2` sends v2."""

    name = "haproxy"

    def __init__(self, backend):
        super().__init__()
        self.backend = backend

    def _prepare(self):
        self.port_v2 = free_port()
        with open(os.path.join(self.dir, "haproxy.cfg"), "w") as f:
            f.write(f"""global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
frontend smtp_v1
    bind 127.0.0.1:{self.port}
    default_backend mx_v1
backend mx_v1
    server mx {self.backend} send-proxy
frontend smtp_v2
    bind 127.0.0.1:{self.port_v2}
    default_backend mx_v2
backend mx_v2
    server mx {self.backend} send-proxy-v2
""")

    def _command(self):
        return ["haproxy", "-db", "-f", os.path.join(self.dir, "haproxy.cfg")]

    def _probe(self):
        for p in (self.port, self.port_v2):
            try:
                socket.create_connection(("127.0.0.1", p), timeout=0.2).close()
            except OSError:
                time.sleep(0.05)
                return False
        return True


class World:
    """rbldnsd, mxgate (a direct and a PROXY listener) and HAProxy in front;
    one per mxgate binary, shared by the tests (spec/run.py runs each test
    on its own: class fixtures never run)."""

    def __init__(self):
        self.rbl = dnsserver.Rbldnsd({"zen.test": ("ip4set", ZEN)})
        self.haproxy = None
        self.mx = Mxgate(config={
            "rules": '"%s"' % os.path.join(ROOT, "rules.d"),
            "hosted_domains": '{ ["example.test"] = { route = "127.0.0.1:1", callout = false, greylist = false },'
                              ' ["grey.test"] = { route = "127.0.0.1:1", callout = false } }',
            "verify_sender": "{ enabled = false }",
            "dnsbl": '{ { zone = "zen.test", spamhaus = true } }',
            "greylist": "{ delay = 60 }",
            "timeouts": "{ command = 2 }",
        }, directions=("inbound", "proxied"))
        direct, proxied = self.mx.ports["inbound"], self.mx.ports["proxied"]
        self.mx.config["listen"] = (
            '{ { address = "127.0.0.1", port = %d, direction = "inbound" }, '
            '{ address = "127.0.0.1", port = %d, direction = "inbound", proxy_protocol = true, '
            'proxy_from = { "127.0.0.1/32" } } }' % (direct, proxied))

    def start(self):
        try:
            self.rbl.start()
            self.mx.config["dns"] = '{ servers = "%s", timeout = 0.5, tries = 2 }' % self.rbl.address
            self.mx.start()
            self.haproxy = HAProxy("127.0.0.1:%d" % self.mx.ports["proxied"])
            self.haproxy.start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self):
        if self.haproxy:
            self.haproxy.stop()
        self.rbl.stop()
        self.mx.stop()
        self.mx.cleanup()


class BehindHAProxy(unittest.TestCase):
    USES_MXGATE = True

    def setUp(self):
        w = shared_world("haproxy", World)
        self.mx, self.haproxy = w.mx, w.haproxy
        self.addCleanup(self.mx.check_sanitizers)

    def rcpt(self, port, source, sender="someone@sender.test", rcpt="user@example.test"):
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", source_address=(source, 0),
                          timeout=30) as c:
            c.ehlo()
            self.assertEqual(c.mail(sender)[0], 250)
            code, text = c.rcpt(rcpt)
            return code, text.decode()

    def test_xbl_client_through_haproxy_v1_is_refused_exactly_as_directly(self):
        direct = self.rcpt(self.mx.ports["inbound"], XBL_CLIENT)
        via = self.rcpt(self.haproxy.port, XBL_CLIENT)
        self.assertEqual(direct[0], 550)
        self.assertTrue(direct[1].startswith("5.7.1 XBL: 127.0.0.4 is listed at zen.test"), direct)
        self.assertEqual(via, direct)
        self.assertEqual(len([e for e in self.mx.events("reject")
                              if e.get("client") == XBL_CLIENT and e.get("reason") == "xbl"]), 2)

    def test_xbl_client_through_haproxy_v2_is_refused_exactly_as_directly(self):
        direct = self.rcpt(self.mx.ports["inbound"], XBL_CLIENT)
        via = self.rcpt(self.haproxy.port_v2, XBL_CLIENT)
        self.assertEqual(via, direct)
        self.assertTrue(via[1].startswith("5.7.1 XBL"), via)

    def test_the_log_names_the_client_and_the_proxy(self):
        self.rcpt(self.haproxy.port_v2, "127.0.0.5")
        wait_for(lambda: [e for e in self.mx.events("proxy") if e.get("client") == "127.0.0.5"])
        e = [e for e in self.mx.events("proxy") if e.get("client") == "127.0.0.5"][-1]
        self.assertEqual((e["from"], e["version"]), ("127.0.0.1", "2"))
        self.assertTrue([c for c in self.mx.events("connect") if c.get("client") == "127.0.0.5"])

    def test_a_clean_client_through_haproxy_is_queued_with_its_own_address(self):
        with smtplib.SMTP("127.0.0.1", self.haproxy.port, local_hostname="client.example",
                          source_address=("127.0.0.6", 0), timeout=30) as c:
            c.ehlo()
            c.mail("someone@sender.test")
            self.assertEqual(c.rcpt("user@example.test")[0], 250)
            code, text = c.data(b"Subject: via haproxy\r\n\r\nhello\r\n")
            self.assertEqual(code, 250, text)
            qid = text.decode().split("queued as ")[1].split()[0]
        _, msg = self.mx.message(qid)
        self.assertTrue(msg.startswith(b"Received: from client.example ([127.0.0.6])"), msg[:120])

    def test_the_greylist_tuple_has_the_client_address(self):
        code, text = self.rcpt(self.haproxy.port, "127.0.0.8", rcpt="someone@grey.test")
        self.assertEqual(code, 451, text)
        r = subprocess.run([binary(), "state", "-c", self.mx.conf_path, "list", "greylist"],
                           capture_output=True, text=True, timeout=30, cwd=ROOT)
        self.assertIn("127.0.0.8", r.stdout, r.stdout + r.stderr)
        self.assertNotIn("127.0.0.1", r.stdout)

    # --- refused before any SMTP ----------------------------------------
    def raw(self, source, data, close_write=False):
        """Connects to the PROXY listener from source, sends data; returns
        what mxgate sent before it closed the connection."""
        with socket.create_connection(("127.0.0.1", self.mx.ports["proxied"]), timeout=10,
                                      source_address=(source, 0)) as s:
            s.sendall(data)
            if close_write:
                s.shutdown(socket.SHUT_WR)
            got = b""
            while True:
                try:
                    chunk = s.recv(4096)
                except ConnectionResetError:      # closed with our bytes unread
                    return got
                if not chunk:
                    return got
                got += chunk

    def refused(self, why):
        return wait_for(lambda: [e for e in self.mx.events("proxy_refused") if e.get("error") == why],
                        what=f"proxy_refused {why!r}")

    def test_a_header_from_outside_proxy_from_is_closed_unread(self):
        got = self.raw("127.0.0.9", b"PROXY TCP4 127.0.0.1 127.0.0.1 1000 25\r\nEHLO x\r\n")
        self.assertEqual(got, b"")
        e = self.refused("source not in proxy_from")[-1]
        self.assertEqual(e["from"], "127.0.0.9")

    def test_no_header_is_closed(self):
        self.assertEqual(self.raw("127.0.0.1", b"EHLO client.example\r\n"), b"")
        self.refused("no PROXY header")

    def test_a_malformed_header_is_closed(self):
        self.assertEqual(self.raw("127.0.0.1", b"PROXY TCP4 127.0.0.300 127.0.0.1 1000 25\r\n"), b"")
        self.refused("v1 header: bad address")

    def test_a_truncated_header_is_closed(self):
        self.assertEqual(self.raw("127.0.0.1", b"PROXY TCP4 127.0.0.4 127.0", close_write=True), b"")
        self.refused("closed before the PROXY header")
        # ... and one that never completes, at the command timeout.
        self.assertEqual(self.raw("127.0.0.1", b"\r\n\r\n\x00\r\nQUIT\n\x21\x11\x00\x0c\x7f\x00"), b"")
        self.refused("no complete PROXY header in time")


class ProxyConfig(unittest.TestCase):
    def check(self, listen):
        d = Mxgate()
        self.addCleanup(d.cleanup)
        d.config["listen"] = listen
        d.write_config()
        return subprocess.run([binary(), "-t", "-c", d.conf_path], capture_output=True, text=True,
                              timeout=30, cwd=ROOT)

    def test_proxy_protocol_without_proxy_from_is_refused(self):
        r = self.check('{ { address = "127.0.0.1", port = 2525, proxy_protocol = true } }')
        self.assertEqual(r.returncode, 1)
        self.assertIn("proxy_protocol needs proxy_from", r.stderr)

    def test_proxy_from_must_be_networks(self):
        r = self.check('{ { address = "127.0.0.1", port = 2525, proxy_protocol = true, '
                       'proxy_from = { "haproxy.example" } } }')
        self.assertEqual(r.returncode, 1)
        self.assertIn("proxy_from: not a network", r.stderr)
