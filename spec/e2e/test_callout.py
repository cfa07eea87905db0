"""engine/net/callout.c against real SMTP servers (aiosmtpd) and NSD, through
spec/tools/callout.

Run: /usr/bin/python3 -m unittest spec.e2e.test_callout -v   (from the repo
root, after `make build/tools/callout`). MXGATE_BUILD names the build tree
(default "build"); CALLOUT_WRAPPER prefixes every run, e.g.
CALLOUT_WRAPPER="valgrind -q --error-exitcode=99".

Timeouts are short (0.3-1 s) and nothing asserts on elapsed time: order of
answers and what the servers saw are the evidence.
"""

import atexit
import os
import shlex
import shutil
import socket
import subprocess
import sys
import tempfile
import types
import unittest

try:
    from . import dnsserver, leftovers, smtpservers as ss
except ImportError:     # imported by file path, not as spec.e2e
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import dnsserver
    import leftovers
    import smtpservers as ss

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_TIMEOUT = 60
FAST = ["--timeout-connect", "0.5", "--timeout-cmd", "0.5"]


def binary():
    b = os.path.join(os.environ.get("MXGATE_BUILD", "build"), "tools", "callout")
    return b if os.path.isabs(b) else os.path.join(ROOT, b)


def callout(*args, stats=False):
    """Runs the driver; returns ({address: [answer, ...]}, [answers in order], stats)."""
    cmd = shlex.split(os.environ.get("CALLOUT_WRAPPER", "")) + [binary()]
    cmd += ["--stats"] if stats else []
    cmd += [str(a) for a in args]
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=RUN_TIMEOUT, cwd=ROOT)
    if p.returncode != 0:
        raise AssertionError("callout exited %d:\n%s\n%s" % (p.returncode, p.stdout, p.stderr))
    by, order, st = {}, [], {}
    for line in p.stdout.splitlines():
        if line.startswith("stats "):
            st = {k: int(v) for k, v in (kv.split("=") for kv in line.split()[1:])}
            continue
        head, _, text = line.partition(" text=")
        f = head.split(" ")
        a = {"address": f[0], "result": f[1], "text": text}
        for kv in f[2:]:
            k, _, v = kv.partition("=")
            a[k] = v
        a["code"] = int(a["code"])
        a["cached"] = a["cached"] == "1"
        by.setdefault(a["address"], []).append(a)
        order.append(a)
    return by, order, st


def one(*args):
    by, order, _ = callout(*args)
    assert len(order) == 1, order
    return order[0]


def have_ipv6():
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@unittest.skipUnless(os.path.exists(binary()), "make build/tools/callout first")
class FixedRouteOutcomes(unittest.TestCase):
    """Each way a downstream server can answer reaches the caller as its result."""

    def test_accepting_server_answers_ok_and_the_dialogue_is_complete(self):
        with ss.accept_all() as srv:
            a = one(*FAST, "--helo", "gw.test", srv.address, "user@example.test")
            self.assertEqual((a["result"], a["code"], a["stage"]), ("OK", 250, "rcpt"))
            self.assertEqual(a["host"], srv.address)
            self.assertTrue(srv.wait_idle())
            s = srv.sessions[0]
            self.assertEqual((s["helo"], s["esmtp"], s["mail"], s["rcpts"], s["quit"]),
                             ("gw.test", True, "", ["user@example.test"], True))

    def test_rcpt_550_is_rcpt_rejected_with_the_servers_text(self):
        with ss.reject_rcpt() as srv:
            a = one(*FAST, srv.address, "nobody@example.test")
            self.assertEqual((a["result"], a["code"], a["stage"]), ("RCPT_REJECTED", 550, "rcpt"))
            self.assertTrue(a["text"].startswith("5.1.1 <nobody@example.test>"), a["text"])

    def test_rcpt_451_is_rcpt_deferred(self):
        with ss.defer_rcpt() as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["code"], a["stage"]), ("RCPT_DEFERRED", 451, "rcpt"))

    def test_mail_from_550_is_rejected_before_rcpt(self):
        with ss.reject_mail() as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["code"], a["stage"]), ("REJECTED", 550, "mail"))
            srv.wait_idle()
            self.assertEqual(srv.rcpts, [])
            self.assertTrue(srv.sessions[0]["quit"])

    def test_mail_from_451_is_rejected_with_the_temporary_code(self):
        with ss.reject_mail(temp=True) as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["code"], a["stage"]), ("REJECTED", 451, "mail"))

    def test_554_greeting_is_rejected_and_we_still_say_quit(self):
        with ss.bad_greeting() as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["code"], a["stage"]), ("REJECTED", 554, "greeting"))
            self.assertEqual(a["text"], "5.3.2 No SMTP service here")
            self.assertTrue(srv.wait_idle())
            self.assertTrue(srv.sessions[0]["quit"])
            self.assertEqual(srv.mails, [])

    def test_ehlo_refused_with_5xx_falls_back_to_helo(self):
        with ss.SmtpServer(ehlo="502 5.5.2 Error: command not recognized") as srv:
            a = one(*FAST, "--helo", "gw.test", srv.address, "user@example.test")
            self.assertEqual((a["result"], a["stage"]), ("OK", "rcpt"))
            srv.wait_idle()
            self.assertEqual(srv.sessions[0]["esmtp"], False)
            self.assertEqual(srv.helos, ["gw.test", "gw.test"])

    def test_421_greeting_is_rejected_with_the_temporary_code(self):
        with ss.bad_greeting("421 4.3.2 Too busy, try later") as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["code"], a["stage"]), ("REJECTED", 421, "greeting"))

    def test_ehlo_refused_with_4xx_is_rejected_at_ehlo(self):
        with ss.SmtpServer(ehlo="421 4.3.2 Service shutting down") as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["code"], a["stage"]), ("REJECTED", 421, "ehlo"))

    def test_multi_line_replies_are_read_whole_and_the_first_line_reported(self):
        greeting = "220-mx.test first line\r\n220-second line\r\n220 mx.test ready"
        rcpt = "550-5.1.1 no such user here\r\n550-5.1.1 really\r\n550 5.1.1 truly"
        with ss.SmtpServer(greeting=greeting, rcpt=rcpt) as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["code"]), ("RCPT_REJECTED", 550))
            self.assertEqual(a["text"], "5.1.1 no such user here")

    def test_the_sender_given_is_the_mail_from(self):
        with ss.accept_all() as srv:
            one(*FAST, "--from", "verify@gw.test", srv.address, "user@example.test")
            srv.wait_idle()
            self.assertEqual(srv.mails, ["verify@gw.test"])

    def test_server_that_never_speaks_times_out_as_unreachable(self):
        with ss.SilentServer() as srv:
            a = one("--timeout-cmd", "0.3", srv.address, "user@example.test")
            self.assertEqual((a["result"], a["code"], a["stage"]), ("UNREACHABLE", 0, "greeting"))
            self.assertIn("timed out", a["text"])

    def test_closed_port_is_unreachable_at_connect(self):
        port = ss.closed_port()
        a = one(*FAST, "127.0.0.1:%d" % port, "user@example.test")
        self.assertEqual((a["result"], a["stage"]), ("UNREACHABLE", "connect"))
        self.assertIn("refused", a["text"])

    def test_server_closing_mid_dialogue_is_unreachable(self):
        with ss.SmtpServer(mail="421 4.3.2 bye") as srv:
            # 421 is a reply: the answer is the server's, not a lost connection.
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["code"], a["stage"]), ("REJECTED", 421, "mail"))

    def test_oversized_reply_is_refused_not_buffered(self):
        huge = "\r\n".join(["250-mx.test"] + ["250-X%s" % ("x" * 200)] * 40 + ["250 HELP"])
        with ss.SmtpServer(ehlo=huge) as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["stage"]), ("UNREACHABLE", "ehlo"))

    def test_overlong_reply_line_is_refused(self):
        with ss.SmtpServer(rcpt="550 " + "y" * 600) as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["stage"]), ("UNREACHABLE", "rcpt"))
            self.assertIn("too long", a["text"])

    def test_address_with_line_break_is_never_sent(self):
        with ss.accept_all() as srv:
            a = one(*FAST, srv.address, "user@example.test>\r\nDATA")
            self.assertEqual(a["address"], "user@example.test>\\x0d\\x0aDATA")
            self.assertEqual((a["result"], a["stage"]), ("UNREACHABLE", "input"))
            self.assertEqual(srv.connections, 0)

    def test_bad_route_is_refused(self):
        a = one(*FAST, "127.0.0.1:99999", "user@example.test")
        self.assertEqual((a["result"], a["stage"]), ("UNREACHABLE", "input"))

    @unittest.skipUnless(have_ipv6(), "no IPv6 loopback")
    def test_ipv6_literal_route(self):
        with ss.accept_all(host="::1") as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual((a["result"], a["host"]), ("OK", srv.address))

    def test_domain_literal_is_its_own_route(self):
        with ss.accept_all() as srv:
            # A literal is sender-chosen: loopback only when allowed explicitly.
            a = one(*FAST, "--allow", "127.0.0.1/32", "--port", srv.port, "-", "user@[127.0.0.1]")
            self.assertEqual((a["result"], a["host"]), ("OK", srv.address))


@unittest.skipUnless(os.path.exists(binary()), "make build/tools/callout first")
class StartTls(unittest.TestCase):

    def test_starttls_when_offered_and_wanted(self):
        with ss.SmtpServer(tls=True) as srv:
            a = one(*FAST, "--starttls", srv.address, "user@example.test")
            self.assertEqual(a["result"], "OK")
            srv.wait_idle()
            self.assertTrue(srv.sessions[0]["tls"])
            self.assertEqual(len(srv.helos), 2)       # EHLO again after TLS (RFC 3207 4.2)

    def test_no_starttls_unless_wanted(self):
        with ss.SmtpServer(tls=True) as srv:
            a = one(*FAST, srv.address, "user@example.test")
            self.assertEqual(a["result"], "OK")
            srv.wait_idle()
            self.assertFalse(srv.sessions[0]["tls"])

    def test_starttls_wanted_but_not_offered_carries_on_in_the_clear(self):
        with ss.accept_all() as srv:
            a = one(*FAST, "--starttls", srv.address, "user@example.test")
            self.assertEqual(a["result"], "OK")


@unittest.skipUnless(os.path.exists(binary()), "make build/tools/callout first")
class CacheAndCoalescing(unittest.TestCase):

    def test_second_query_is_answered_from_the_cache(self):
        with ss.accept_all() as srv:
            by, _, _ = callout(*FAST, "--twice", srv.address, "user@example.test")
            first, second = by["user@example.test"]
            self.assertEqual((first["result"], first["cached"]), ("OK", False))
            self.assertEqual((second["result"], second["cached"], second["code"]), ("OK", True, 250))
            srv.wait_idle()
            self.assertEqual(srv.connections, 1)

    def test_rcpt_rejection_is_cached_too(self):
        with ss.reject_rcpt() as srv:
            by, _, _ = callout(*FAST, "--twice", srv.address, "nobody@example.test")
            self.assertEqual([(a["result"], a["cached"]) for a in by["nobody@example.test"]],
                             [("RCPT_REJECTED", False), ("RCPT_REJECTED", True)])
            self.assertEqual(srv.connections, 1)

    def test_temporary_answers_are_not_cached(self):
        with ss.defer_rcpt() as srv, ss.reject_mail(temp=True) as rm:
            by, _, _ = callout(*FAST, "--twice", srv.address, "a@example.test",
                               "route:" + rm.address, "b@example.test")
            self.assertEqual([a["cached"] for a in by["a@example.test"]], [False, False])
            self.assertEqual([a["cached"] for a in by["b@example.test"]], [False, False])
            srv.wait_idle()
            rm.wait_idle()
            self.assertEqual((srv.connections, rm.connections), (2, 2))

    def test_unreachable_is_not_cached(self):
        by, _, _ = callout(*FAST, "--twice", "127.0.0.1:%d" % ss.closed_port(), "a@example.test")
        self.assertEqual([(a["result"], a["cached"]) for a in by["a@example.test"]],
                         [("UNREACHABLE", False), ("UNREACHABLE", False)])

    def test_cache_is_per_sender_and_case_blind_in_the_domain(self):
        with ss.accept_all() as srv:
            by, order, _ = callout(*FAST, "--twice", srv.address, "user@Example.TEST")
            self.assertEqual([a["cached"] for a in order], [False, True])
            by, order, _ = callout(*FAST, "--from", "x@gw.test", srv.address, "user@example.test")
            self.assertFalse(order[0]["cached"])

    def test_the_state_store_cache_outlives_the_process(self):
        d = tempfile.mkdtemp(prefix="mxgate-callout-state-")
        try:
            with ss.reject_rcpt() as srv:
                a = one(*FAST, "--state", d, srv.address, "nobody@example.test")
                self.assertEqual((a["result"], a["cached"]), ("RCPT_REJECTED", False))
                b = one(*FAST, "--state", d, srv.address, "nobody@example.test")
                self.assertEqual((b["result"], b["cached"], b["code"], b["stage"]),
                                 ("RCPT_REJECTED", True, 550, "rcpt"))
                self.assertEqual(b["text"], a["text"])
                srv.wait_idle()
                self.assertEqual(srv.connections, 1)
        finally:
            shutil.rmtree(d, ignore_errors=True)

    def test_five_simultaneous_queries_for_one_address_share_one_connection(self):
        with ss.accept_all(delay=0.05) as srv:
            by, order, st = callout(*FAST, srv.address, *(["user@example.test"] * 5), stats=True)
            self.assertEqual(len(order), 5)
            self.assertTrue(all(a["result"] == "OK" and not a["cached"] for a in order))
            self.assertEqual(st["coalesced"], 4)
            srv.wait_idle()
            self.assertEqual(srv.connections, 1)
            self.assertEqual(srv.rcpts, ["user@example.test"])

    def test_per_host_limit_holds_and_every_queued_callout_is_answered(self):
        addrs = ["user%02d@example.test" % i for i in range(20)]
        with ss.accept_all(delay=0.02) as srv:
            by, order, st = callout(*FAST, "--max-per-host", "2", srv.address, *addrs, stats=True)
            self.assertEqual(sorted(by), addrs)
            self.assertTrue(all(a["result"] == "OK" for a in order))
            self.assertTrue(srv.wait_idle())
            self.assertEqual(srv.connections, 20)
            self.assertLessEqual(srv.max_concurrent, 2)
            self.assertEqual(st["queued"], 18)
            self.assertEqual(st["open"], 0)

    def test_hung_server_does_not_hold_up_the_others(self):
        goods = ["g%d@example.test" % i for i in range(5)]
        with ss.SilentServer() as hung, ss.accept_all() as good:
            _, order, _ = callout("--timeout-cmd", "1", hung.address, "stuck@example.test",
                                  "route:" + good.address, *goods)
            self.assertEqual(sorted(a["address"] for a in order[:5]), goods)
            self.assertTrue(all(a["result"] == "OK" for a in order[:5]))
            self.assertEqual((order[5]["address"], order[5]["result"]),
                             ("stuck@example.test", "UNREACHABLE"))


@unittest.skipUnless(os.path.exists(binary()), "make build/tools/callout first")
class Lifetime(unittest.TestCase):
    """callout_free: no answer after it, from outside or inside a callback."""

    def test_free_with_callouts_in_flight_answers_nothing(self):
        with ss.accept_all(delay=0.2) as srv:
            _, order, _ = callout(*FAST, "--abandon", srv.address, "a@example.test", "b@example.test")
            self.assertEqual(order, [])

    def test_free_from_inside_a_callback_stops_the_other_answers(self):
        with ss.accept_all() as srv:
            _, order, _ = callout(*FAST, "--free-in-callback", "--twice", srv.address,
                                  "a@example.test", "route:127.0.0.1:%d" % ss.closed_port(),
                                  "b@example.test")
            self.assertEqual(len(order), 1)


MX_ZONE = """
$ORIGIN callout.test.
$TTL 300
@          IN SOA ns1 hostmaster 1 3600 600 86400 300
@          NS    ns1
ns1        A     127.0.0.1
mx-good    A     127.0.0.2
mx-reject  A     127.0.0.3
mx-closed  A     127.0.0.4
mx-silent  A     127.0.0.5
mx-six     AAAA  ::1
mx-busy    A     127.0.0.6
good       MX    10 mx-good
reject     MX    10 mx-reject
pref       MX    20 mx-reject
pref       MX    10 mx-good
fallback   MX    10 mx-closed
fallback   MX    20 mx-good
hung       MX    10 mx-silent
hung       MX    20 mx-good
implicit   A     127.0.0.2
nullmx     MX    0 .
noaddr     MX    10 nowhere
six        MX    10 mx-six
busy       MX    10 mx-busy
busy       MX    20 mx-good
"""


_mx = None


def mx_world():
    """NSD with MX_ZONE and the servers its MX hosts name, started once for
    every MxRoutes test (spec/run.py runs tests one by one, without class
    fixtures) and stopped at exit. 127.0.0.4:port stays closed."""
    global _mx
    if _mx is None:
        w = types.SimpleNamespace(servers=[])
        dns = dnsserver.DnsServer({"callout.test": MX_ZONE})
        with leftovers.shared():
            w.dns_addr = dns.start()
        try:
            w.port = ss.common_port("127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5", "127.0.0.6")
            w.good = ss.accept_all(host="127.0.0.2", port=w.port).start()
            w.servers.append(w.good)
            w.reject = ss.reject_rcpt(host="127.0.0.3", port=w.port).start()
            w.servers.append(w.reject)
            w.silent = ss.SilentServer(host="127.0.0.5", port=w.port).start()
            w.servers.append(w.silent)
            w.busy = ss.bad_greeting("421 4.3.2 Too busy", host="127.0.0.6", port=w.port).start()
            w.servers.append(w.busy)
        except Exception:
            for srv in w.servers:
                srv.stop()
            dns.stop()
            raise

        def stop():
            for srv in w.servers:
                srv.stop()
            dns.stop()
        atexit.register(stop)
        _mx = w
    return _mx


@unittest.skipUnless(os.path.exists(binary()), "make build/tools/callout first")
@unittest.skipUnless(shutil.which("nsd"), "nsd not installed")
class MxRoutes(unittest.TestCase):
    """Route NULL: the MX of the address's domain, through NSD on loopback."""

    def setUp(self):
        w = mx_world()
        self.dns_addr, self.port = w.dns_addr, w.port
        self.good, self.reject, self.silent, self.busy = w.good, w.reject, w.silent, w.busy

    # The fake MX servers live on loopback, which a route-less callout
    # (sender verification) refuses unless it is allowed explicitly.
    ALLOW = ("--allow", "127.0.0.0/8", "--allow", "::1/128")

    def run_mx(self, *args):
        return callout(*FAST, "--dns", self.dns_addr, "--port", self.port, *self.ALLOW, *args)

    def mx_one(self, *args):
        _, order, _ = self.run_mx(*args)
        self.assertEqual(len(order), 1)
        return order[0]

    def test_mx_host_answers(self):
        a = self.mx_one("-", "user@good.callout.test")
        self.assertEqual((a["result"], a["host"]), ("OK", "127.0.0.2:%d" % self.port))

    def test_sender_verification_to_a_refusing_mx(self):
        a = self.mx_one("--from", "", "-", "sender@reject.callout.test")
        self.assertEqual((a["result"], a["code"]), ("RCPT_REJECTED", 550))

    def test_lowest_preference_is_tried_first(self):
        before = self.reject.connections
        a = self.mx_one("-", "user@pref.callout.test")
        self.assertEqual((a["result"], a["host"]), ("OK", "127.0.0.2:%d" % self.port))
        self.assertEqual(self.reject.connections, before)

    def test_refused_mx_falls_through_to_the_next(self):
        a = self.mx_one("-", "user@fallback.callout.test")
        self.assertEqual((a["result"], a["host"]), ("OK", "127.0.0.2:%d" % self.port))

    def test_hung_mx_times_out_and_the_next_answers(self):
        before = self.silent.connections
        a = self.mx_one("-", "user@hung.callout.test")
        self.assertEqual((a["result"], a["host"]), ("OK", "127.0.0.2:%d" % self.port))
        self.assertEqual(self.silent.connections, before + 1)

    def test_mx_greeting_421_sends_us_to_the_next(self):
        before = self.busy.connections
        a = self.mx_one("-", "user@busy.callout.test")
        self.assertEqual((a["result"], a["host"]), ("OK", "127.0.0.2:%d" % self.port))
        self.assertEqual(self.busy.connections, before + 1)

    def test_silent_dns_is_unreachable_at_dns(self):
        with dnsserver.Blackhole() as bh:
            _, order, _ = callout(*FAST, "--dns", bh, "--dns-timeout", "0.3", "--port", self.port,
                                  "-", "user@good.callout.test")
        self.assertEqual((order[0]["result"], order[0]["stage"]), ("UNREACHABLE", "dns"))

    def test_mx_on_loopback_is_refused_without_an_allow_list(self):
        # Route NULL is sender verification: the address's writer chose the
        # destination (issue 11 item 4). Loopback MX or literal: no connection.
        before = self.good.connections
        _, order, _ = callout(*FAST, "--dns", self.dns_addr, "--port", self.port,
                              "-", "user@good.callout.test", "user@[127.0.0.2]")
        self.assertEqual([(a["result"], a["stage"]) for a in order], [("UNREACHABLE", "policy")] * 2)
        self.assertIn("loopback", order[0]["text"])
        self.assertEqual(self.good.connections, before)
        # A fixed route (the operator's own) is not guarded.
        a = self.mx_one("127.0.0.2:%s" % self.port, "user@good.callout.test")
        self.assertEqual(a["result"], "OK")

    def test_domain_without_mx_is_its_own_implicit_mx(self):
        a = self.mx_one("-", "user@implicit.callout.test")
        self.assertEqual((a["result"], a["host"]), ("OK", "127.0.0.2:%d" % self.port))

    def test_nonexistent_domain_is_unreachable_at_dns(self):
        a = self.mx_one("-", "user@nosuch.callout.test")
        self.assertEqual((a["result"], a["stage"]), ("UNREACHABLE", "dns"))
        self.assertIn("no such domain", a["text"])

    def test_null_mx_is_unreachable_at_dns(self):
        a = self.mx_one("-", "user@nullmx.callout.test")
        self.assertEqual((a["result"], a["stage"]), ("UNREACHABLE", "dns"))
        self.assertIn("null MX", a["text"])

    def test_mx_without_address_is_unreachable_at_dns(self):
        a = self.mx_one("-", "user@noaddr.callout.test")
        self.assertEqual((a["result"], a["stage"]), ("UNREACHABLE", "dns"))

    def test_mx_route_names_another_domain(self):
        a = self.mx_one("mx:reject.callout.test", "user@hosted.example")
        self.assertEqual(a["result"], "RCPT_REJECTED")

    def test_route_by_host_name_uses_its_address(self):
        a = self.mx_one("mx-good.callout.test:%d" % self.port, "user@hosted.example")
        self.assertEqual((a["result"], a["host"]), ("OK", "127.0.0.2:%d" % self.port))

    def test_mx_answers_are_cached_per_domain(self):
        by, order, _ = self.run_mx("--twice", "-", "user@good.callout.test", "other@good.callout.test")
        self.assertEqual([a["cached"] for a in order], [False, False, True, True])

    @unittest.skipUnless(have_ipv6(), "no IPv6 loopback")
    def test_ipv6_mx(self):
        try:
            srv = ss.accept_all(host="::1", port=self.port).start()
        except OSError:
            self.skipTest("port taken on ::1")
        try:
            a = self.mx_one("-", "user@six.callout.test")
            self.assertEqual((a["result"], a["host"]), ("OK", "[::1]:%d" % self.port))
        finally:
            srv.stop()


if __name__ == "__main__":
    unittest.main()
