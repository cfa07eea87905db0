"""The portal's 14 rows, end to end (docs/PORTAL.md).

A real client (smtplib, from distinct 127.0.0.x source addresses) talks to
mxgate running the default ruleset, rules.d/, in a small world of real
servers: NSD for the sender domains' MX and A records, rbldnsd for the
DNSBLs, aiosmtpd downstream servers behind the hosted domains' inbound
routes, and a sender MX for sender verification. For each row the test
checks the reply (code, enhanced code, the reason verbatim at the start of
the text), the structured log record, and `mxgate report`'s line.

One world serves the module (started by the first test, stopped at exit):
every test uses its own client address, sender or recipient, so
greylisting, rate limits and the callout cache of one test never answer
for another. spec/e2e/test_operator_stories.py reuses the servers.

Run: /usr/bin/python3 spec/run.py --no-asan -k portal   (stories: -k operator)
"""
import atexit
import json
import os
import re
import shutil
import smtplib
import subprocess
import tempfile
import time
import unittest

from spec.e2e import dnsserver, leftovers, smtpservers as ss
from spec.e2e.harness import ROOT, Mxgate, binary, wait_for

# The table, as PORTAL.md spells it: row -> (reason key in stdlib/reasons.lua,
# reason text, code, enhanced code, direction, stage). Spelled out here, not
# read from reasons.lua: a wrong reasons.lua must fail these tests.
ROWS = {
    1: ("not_hosted", "Your domain is not configured to use this MX host.", 550, "5.7.1", "inbound", "rcpt"),
    2: ("xbl", "XBL", 550, "5.7.1", "inbound", "rcpt"),
    3: ("pbl", "PBL", 550, "5.7.1", "inbound", "rcpt"),
    4: ("greylisted", "Greylisted", 451, "4.7.1", "inbound", "rcpt"),
    5: ("rbl", "RBL Reject", 550, "5.7.1", "inbound", "rcpt"),
    6: ("callout_rejected", "Call forward rejected", 550, "5.7.1", "inbound", "rcpt"),
    7: ("callout_failed", "Could not complete recipient callout", 451, "4.4.1", "inbound", "rcpt"),
    8: ("invalid_mailbox", "Invalid Mailbox (Call FWD)", 550, "5.1.1", "inbound", "rcpt"),
    9: ("sender_verify", "Sender Verify Failed", 550, "5.7.1", "inbound", "rcpt"),
    10: ("helo_self", "You cannot say you are me. I am me.", 550, "5.7.1", "inbound", "helo"),
    11: ("mx_loop", "Lowest numbered MX record points to local host", 550, "5.4.6", "inbound", "rcpt"),
    12: ("tls_required", "Your sender domain is required to send via an encrypted SMTP session",
         530, "5.7.0", "inbound", "mail"),
    13: ("relay_denied", "Relay Denied", 550, "5.7.1", "outbound", "rcpt"),
    14: ("sender_rate", "Sender Rate Exceeded", 451, "4.7.1", "outbound", "mail"),
}
# Row 6 when the downstream's answer was temporary: same reason text, 451 4.7.1.
ROW6_TEMP = ("callout_deferred", "Call forward rejected", 451, "4.7.1", "inbound", "rcpt")
CAUSE6_TEMP = "We got a temporary rejection (4xx) from the downstream mail server"
# Row 9 when the sender's domain could not be looked up: 451 4.4.3.
ROW9_TEMP = ("sender_verify_deferred", "Sender Verify Failed", 451, "4.4.3", "inbound", "rcpt")
CAUSE9_TEMP = "The sender's domain could not be looked up in DNS"

# The portal's causes (the seed table), as the report must show them.
CAUSES = {
    1: "Sending to inbound MX records to a domain which is not on the system",
    2: "Sending IP is listed on Spamhaus",
    3: "Sending IP is listed on Spamhaus",
    4: "When we receive a message in our mail server which is from an unknown address to an unknown address",
    5: "Please Contact Support",
    6: "We got a rejection from the downstream mail server (Domain most likely configured, verify via SMTP).",
    7: "The downstream server timed out. (Domain most likely configured, verify via SMTP).",
    8: "We got a rejection from the downstream mail server (Domain most likely configured, verify via SMTP).",
    9: "Server tries to verify the senders e-mail address.",
    10: "Please contact support.",
    11: "Record in inbound route hostname points to our service.",
    12: "E-mail is recieved from a TLS enforced domain not in TLS.",
    13: "Outbound IP address is not added to the outbound relay section of the portal.",
    14: "Please Contact Support",
}

# Client addresses: each test connects from its own.
CLEAN = "127.0.0.1"
XBL_CLIENT, PBL_CLIENT, SBL_CLIENT = "127.0.0.20", "127.0.0.21", "127.0.0.22"
ZEN_REFUSAL_CLIENT = "127.0.0.23"      # ZEN answers 127.255.255.254: not a listing
OTHER_BL_CLIENT = "127.0.0.24"         # listed on bl.test only
SENDER_MX = "127.0.0.9"                # the senders' MX (row 9)
DEAD_SENDER_MX = "127.0.0.11"          # an MX where nothing listens
RELAY_CLIENT, STRANGER = "127.0.0.40", "127.0.0.41"

GOOD_SENDER = "alice@good.senders.test"   # the sender MX knows her
SENDER_USERS = {"alice", "carol"}
DOWNSTREAM_USERS = {"bob", "dave", "erin", "frank", "grey", "grey2"}

ZEN_DATA = "\n".join([
    ":127.0.0.2:Listed, see https://www.spamhaus.org/query/ip/$",
    XBL_CLIENT + " :127.0.0.4:",
    PBL_CLIENT + " :127.0.0.10:",
    SBL_CLIENT + " :127.0.0.2:",
    ZEN_REFUSAL_CLIENT + " :127.255.255.254:",
    # the other ends of the ranges, and SBL's siblings CSS and DROP
    "127.0.0.25 :127.0.0.7:",
    "127.0.0.26 :127.0.0.11:",
    "127.0.0.27 :127.0.0.3:",
    "127.0.0.28 :127.0.0.9:",
]) + "\n"
BL_DATA = ":127.0.0.2:Listed\n%s\n" % OTHER_BL_CLIENT


def senders_zone():
    return """$ORIGIN senders.test.
$TTL 300
@        IN SOA ns1 hostmaster 1 3600 600 86400 300
@        NS    ns1
ns1      A     127.0.0.1
good     MX    10 mx
bad      MX    10 mx
nomx     A     {mx}
dead     MX    10 mx.dead
mx       A     {mx}
mx.dead  A     {dead}
""".format(mx=SENDER_MX, dead=DEAD_SENDER_MX)


def loop_zone():
    # loop.test's lowest-numbered MX is us; its backup is not.
    return """$ORIGIN loop.test.
$TTL 300
@        IN SOA ns1 hostmaster 1 3600 600 86400 300
@        NS    ns1
ns1      A     127.0.0.1
@        MX    20 backup
@        MX    10 mx
mx       A     127.0.0.1
backup   A     192.0.2.25
; two MX share the lowest preference, the second is us
tie      MX    10 elsewhere
tie      MX    10 mx
elsewhere A    192.0.2.26
; we are only the backup: no loop
backup-us MX   10 backup
backup-us MX   20 mx
"""


# --- the servers behind the routes ----------------------------------------

def mailboxes(users, **kw):
    """A downstream (or sender MX) that knows some local parts: RCPT for
    anyone else is 550 5.1.1, as Postfix says it."""
    def rcpt(address):
        if address.split("@")[0].lower() in users:
            return None
        return "550 5.1.1 <%s>: Recipient address rejected: User unknown in local recipient table" % address
    return ss.SmtpServer(rcpt=rcpt, **kw)


class _RefuseHelo(ss._Handler):
    async def handle_HELO(self, server, session, envelope, hostname):
        with self.srv._lock:
            self.srv.helos.append(hostname)
        return "550 5.7.1 Go away"


def helo_refuser():
    """Refuses EHLO, and the HELO a client falls back to."""
    srv = ss.SmtpServer(ehlo="550 5.7.1 Go away")
    srv._handler = _RefuseHelo(srv)
    return srv


# --- the world ------------------------------------------------------------

class Backends:
    """Everything around mxgate: NSD, rbldnsd, the downstream servers
    behind the hosted domains' routes, and the senders' MX. They keep no
    state a test depends on, so one set serves many mxgates."""

    def __init__(self):
        self.stack = []

    def _keep(self, srv):
        self.stack.append(srv)
        srv.start()
        return srv

    def start(self):
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self):
        self.nsd = self._keep(dnsserver.DnsServer({"senders.test": senders_zone(), "loop.test": loop_zone()}))
        self.rbl = self._keep(dnsserver.Rbldnsd({"zen.test": ("ip4set", ZEN_DATA),
                                                  "bl.test": ("ip4set", BL_DATA)}))
        # MX routes and sender verification connect to config callout.port;
        # for an MX that resolves to us to mean our own listener (row 11), the
        # MX mxgate listens on that port too, on 127.0.0.1.
        self.mx_port = ss.common_port("127.0.0.1", SENDER_MX)
        self.sender_mx = self._keep(mailboxes(SENDER_USERS, host=SENDER_MX, port=self.mx_port))
        self.downstream = self._keep(mailboxes(DOWNSTREAM_USERS))
        self.mail_refuser = self._keep(ss.reject_mail())
        self.mail_deferrer = self._keep(ss.reject_mail(temp=True))
        self.helo_refuser = self._keep(helo_refuser())
        self.greeting_refuser = self._keep(ss.bad_greeting())
        self.silent = self._keep(ss.SilentServer())
        self.hosted = {
            "example.test": self.downstream.address,
            "mailfrom-refuses.test": self.mail_refuser.address,
            "mailfrom-defers.test": self.mail_deferrer.address,
            "helo-refuses.test": self.helo_refuser.address,
            "greeting-refuses.test": self.greeting_refuser.address,
            "silent.test": self.silent.address,
            "closed.test": "127.0.0.1:%d" % ss.closed_port(),
            "loop.test": "mx:loop.test",
            "named-loop.test": "mx.loop.test",
            "tie.test": "mx:tie.loop.test",
            "backup-us.test": '{ route = "mx:backup-us.loop.test", callout = false }',
        }

    def stop(self):
        for s in reversed(self.stack):
            try:
                s.stop()
            except Exception:
                pass
        self.stack = []

    def config(self, hosted=None):
        """The mxgate config for this world (Lua source per key)."""
        domains = dict(self.hosted)
        domains.update(hosted or {})
        return dict(ruleset(), **{
            "host_names": '{ "mxgate.test" }',
            "hosted_domains": "{ " + ", ".join(
                '["%s"] = %s' % (d, r if r.startswith("{") else '{ route = "%s" }' % r)
                for d, r in domains.items()) + " }",
            "relay_networks": '{ "127.0.0.1/32", "%s/32" }' % RELAY_CLIENT,
            "tls_enforced_senders": '{ "secure.test" }',
            "dns": '{ servers = "%s,%s", timeout = 0.5, tries = 2 }' % (self.rbl.address, self.nsd.address),
            "dnsbl": '{ { zone = "zen.test", spamhaus = true }, { zone = "bl.test" } }',
            "greylist": "{ delay = 1 }",
            "ratelimit": "{ sender = { limit = 3, period = 3600 } }",
            # The senders' MX servers are fakes on loopback: sender
            # verification refuses loopback unless it is allowed (issue 11).
            "callout": '{ port = %d, connect_timeout = 0.5, command_timeout = 1, '
                       'allow_networks = { "127.0.0.0/8" } }' % self.mx_port,
        })


def ruleset():
    """The config keys that choose the ruleset under test: the default."""
    return {"rules": '"%s"' % os.path.join(ROOT, "rules.d")}


def default_rules():
    """rules.d/ as {file name: source}."""
    d = os.path.join(ROOT, "rules.d")
    out = {}
    for name in sorted(os.listdir(d)):
        if name.endswith(".lua"):
            with open(os.path.join(d, name)) as f:
                out[name] = f.read()
    return out


class World:
    """One mxgate on the default rules.d/ (or a copy) among the backends.

    own_port: listen for inbound on backends.mx_port, the port MX routes
    and sender verification use (only one mxgate at a time may)."""

    def __init__(self, backends, config=None, hosted=None, own_port=True, copy_rules=False):
        self.backends = backends
        # copy_rules: the server gets its own copy of rules.d/ to edit.
        self.mx = Mxgate(rules=default_rules() if copy_rules else None)
        if own_port:
            self.mx.ports["inbound"] = self.mx.port = backends.mx_port
        self.mx.config.update(backends.config(hosted))
        self.mx.config.update(config or {})

    def __getattr__(self, name):
        return getattr(self.backends, name)

    def start(self):
        self.mx.start()
        return self

    def stop(self):
        try:
            self.mx.stop()
        finally:
            self.mx.cleanup()

    # --- clients -------------------------------------------------------
    def client(self, source=CLEAN, direction="inbound", helo="client.example"):
        """smtplib from `source`; EHLO is the caller's (c.ehlo())."""
        return smtplib.SMTP("127.0.0.1", self.mx.ports[direction], local_hostname=helo,
                            source_address=(source, 0), timeout=30)

    def report(self, *args, conf=True):
        """`mxgate report -c CONF ARGS`: the config's log file, its stdlib's
        reasons and its rules' overrides; conf=False: `mxgate report ARGS
        LOGFILE`, with the reasons of the checkout's stdlib/ and rules.d/."""
        cmd = [binary(), "report"] + (["-c", self.mx.conf_path] if conf else [])
        cmd += list(args) + ([] if conf else [self.mx.log_path])
        p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
        if p.returncode != 0:
            raise AssertionError("mxgate report exited %d:\n%s%s" % (p.returncode, p.stdout, p.stderr))
        return p.stdout


class PortalCase(unittest.TestCase):
    """Assertions shared by the row tests and the operator stories."""

    USES_MXGATE = True
    world = None

    def rcpt(self, c, sender, rcpt):
        """EHLO (if not yet), MAIL, RCPT: the RCPT reply (code, text)."""
        if c.ehlo_resp is None and c.helo_resp is None:
            c.ehlo()
        code, msg = c.mail(sender)
        self.assertEqual(code, 250, msg)
        return reply(c.rcpt(rcpt))

    def assert_starts_with_reason(self, text, reason):
        """text is the reason, verbatim, alone or followed by detail (after
        ": ", or after " " when the reason ends a sentence)."""
        ok = text == reason or text.startswith(reason + ": ") or \
            (reason[-1] in ".!?" and text.startswith(reason + " "))
        self.assertTrue(ok, "%r does not start with the reason %r" % (text, reason))

    def assert_reply(self, got, row, detail=None):
        """(code, text) is the row's reply: code, enhanced code, then the
        reason verbatim at the start of the text."""
        key, text, code, enh = row[:4]
        self.assertEqual(got[0], code, got)
        self.assertTrue(got[1].startswith(enh + " "), got)
        self.assert_starts_with_reason(got[1][len(enh) + 1:], text)
        if detail:
            self.assertIn(detail, got[1])

    def assert_quiet(self, got, their_words, route=None):
        """The client read neither the downstream's words nor its address
        (issue 11 item 14); the log has both."""
        self.assertNotIn(their_words, got[1])
        self.assertNotIn(" said ", got[1])
        self.assertNotIn(route or "127.0.0.1", got[1])
        self.assertTrue(any(their_words in e.get("msg", "") and (route or "127.0.0.1") in e["msg"]
                            for e in self.world.mx.events("rule_log")), got)

    def rejections(self, **kv):
        return [e for e in self.world.mx.events("reject") if all(e.get(k) == v for k, v in kv.items())]

    def assert_logged(self, row, client, sender=None, rcpt=None):
        """The newest reject record for this client (and envelope) carries
        the row's reason key, direction, stage, codes and text."""
        key, text, code, enh, direction, stage = row
        match = {"client": client}
        if sender is not None:
            match["from"] = sender
        if rcpt is not None:
            match["rcpt"] = rcpt
        recs = self.rejections(**match)
        self.assertTrue(recs, "no reject record for %r" % match)
        r = recs[-1]
        self.assertEqual((r.get("reason"), r.get("dir"), r.get("stage"), r.get("code"), r.get("enhanced")),
                         (key, direction, stage, str(code), enh), r)
        self.assert_starts_with_reason(r.get("text", ""), text)
        self.assertTrue(r.get("rule"), r)       # the rule file:line that answered
        return r

    def reload(self):
        """Writes the config (and rule files) again, SIGHUP, and waits for
        the worker's answer, which must be "reloaded"."""
        mx = self.world.mx
        mx.write_config()
        before = mx.reload()
        done = wait_for(lambda: (lambda ev: ev if len(ev) > before else None)(
            [e for e in mx.log_lines() if e.get("event") in ("reloaded", "reload_failed")]),
            what="the reload's log event")
        self.assertEqual(done[before]["event"], "reloaded", done[before])

    def report_entry(self, key, **kw):
        data = json.loads(self.world.report("--json", **kw))
        for e in data["reasons"]:
            if e["reason"] == key:
                return e
        return None

    def assert_reported(self, n, row, client, sender=None, rcpt=None, cause=None):
        """`mxgate report` shows the row: its text, cause and count (every
        record of its reason in the log), the newest example being ours."""
        key, text, code, enh, direction, stage = row
        count = len(self.rejections(reason=key))
        out = self.world.report(conf=False)          # `mxgate report LOGFILE`
        d = "Inbound" if direction == "inbound" else "Outbound"
        lines = [l for l in out.splitlines() if l.startswith("%s | %s | " % (d, text))]
        cause = cause or CAUSES.get(n)
        lines = [l for l in lines if cause in l] if cause else lines
        self.assertEqual(len(lines), 1, out)
        cols = [c.strip() for c in lines[0].split(" | ")]
        self.assertEqual(int(cols[3]), count, lines[0])
        self.assertIn("client=" + client, lines[0])
        e = self.report_entry(key)
        self.assertEqual((e["direction"], e["text"], e["count"]), (direction, text, count), e)
        if n:
            self.assertEqual(e["row"], n, e)
            self.assertTrue(e["cause"].startswith(cause), e)
        self.assertEqual(e["last"]["client"], client, e)
        if sender is not None:
            self.assertEqual(e["last"]["sender"], sender, e)
        if rcpt is not None:
            self.assertEqual(e["last"]["recipient"], rcpt, e)
        self.assertEqual((e["last"]["code"], e["last"]["enhanced"]), (code, enh), e)
        return e

    def assert_row(self, n, got, client, sender=None, rcpt=None, detail=None, row=None, cause=None):
        """Reply, log record and report line: the three places row n shows."""
        row = row or ROWS[n]
        self.assert_reply(got, row, detail)
        self.assert_logged(row, client, sender, rcpt)
        self.assert_reported(n, row, client, sender, rcpt, cause)


def reply(r):
    return r[0], r[1].decode("utf-8", "replace")


_backends = None
_worlds = {}


def shared_backends():
    global _backends
    if _backends is None:
        with leftovers.shared():
            _backends = Backends().start()
    return _backends


def shared_world(key, factory):
    """One world per key and mxgate binary (spec/run.py runs the e2e pass
    and then the ASan pass in one process), stopped at exit. spec/run.py
    runs each test on its own, so class and module fixtures never run."""
    k = (key, binary())
    w = _worlds.get(k)
    if w is not None and w.mx.proc.poll() is not None:
        _worlds.pop(k).stop()
        w = None
    if w is None:
        for old in [x for x in _worlds if x[0] == key]:
            _worlds.pop(old).stop()
        with leftovers.shared():
            w = factory()
            w.start()
        _worlds[k] = w
    return w


def _stop_all():
    global _backends
    for w in _worlds.values():
        w.stop()
    _worlds.clear()
    if _backends is not None:
        _backends.stop()
        _backends = None


atexit.register(_stop_all)


class PortalRowsTest(PortalCase):
    """One mxgate on the default rules.d, shared by every test here."""

    def setUp(self):
        self.world = shared_world("portal", lambda: World(shared_backends()))
        self.addCleanup(self.world.mx.check_sanitizers)

    # --- row 1 ---------------------------------------------------------
    def test_row01_recipient_domain_not_hosted(self):
        with self.world.client() as c:
            got = self.rcpt(c, GOOD_SENDER, "someone@not-hosted.test")
        self.assert_row(1, got, CLEAN, GOOD_SENDER, "someone@not-hosted.test")

    # --- rows 2, 3, 5: DNSBLs --------------------------------------------
    def test_row02_client_on_spamhaus_xbl(self):
        with self.world.client(XBL_CLIENT) as c:
            got = self.rcpt(c, GOOD_SENDER, "bob@example.test")
        self.assert_row(2, got, XBL_CLIENT, GOOD_SENDER, "bob@example.test",
                        detail=XBL_CLIENT + " is listed at zen.test (127.0.0.4)")

    def test_row03_client_on_spamhaus_pbl(self):
        with self.world.client(PBL_CLIENT) as c:
            got = self.rcpt(c, GOOD_SENDER, "bob@example.test")
        self.assert_row(3, got, PBL_CLIENT, GOOD_SENDER, "bob@example.test",
                        detail=PBL_CLIENT + " is listed at zen.test (127.0.0.10)")

    def test_row05_client_on_spamhaus_sbl(self):
        with self.world.client(SBL_CLIENT) as c:
            got = self.rcpt(c, GOOD_SENDER, "bob@example.test")
        self.assert_row(5, got, SBL_CLIENT, GOOD_SENDER, "bob@example.test",
                        detail=SBL_CLIENT + " is listed at zen.test (127.0.0.2)")

    def test_row05_client_on_another_configured_dnsbl(self):
        with self.world.client(OTHER_BL_CLIENT) as c:
            got = self.rcpt(c, GOOD_SENDER, "bob@example.test")
        self.assert_row(5, got, OTHER_BL_CLIENT, GOOD_SENDER, "bob@example.test",
                        detail=OTHER_BL_CLIENT + " is listed at bl.test")

    def test_every_zen_return_code_maps_to_its_row(self):
        for ip, code, n in (("127.0.0.25", "127.0.0.7", 2), ("127.0.0.26", "127.0.0.11", 3),
                            ("127.0.0.27", "127.0.0.3", 5), ("127.0.0.28", "127.0.0.9", 5)):
            with self.world.client(ip) as c:
                got = self.rcpt(c, GOOD_SENDER, "bob@example.test")
            self.assert_reply(got, ROWS[n], detail="listed at zen.test (%s)" % code)
            self.assert_logged(ROWS[n], ip, GOOD_SENDER, "bob@example.test")

    def test_first_rule_in_file_order_wins(self):
        # An XBL-listed client writing to a domain we do not host: 30-hosted
        # runs before 50-dnsbl. With a sender that fails verification: the
        # DNSBL (50) answers before sender verification (70).
        with self.world.client(XBL_CLIENT) as c:
            self.assert_reply(self.rcpt(c, GOOD_SENDER, "x@not-hosted.test"), ROWS[1])
            c.rset()
            self.assert_reply(self.rcpt(c, "mallory@bad.senders.test", "bob@example.test"), ROWS[2])

    def test_zen_refusal_code_is_not_a_listing(self):
        # 127.255.255.254 (query through a public resolver): the lookup
        # failed, it is logged, and the mail goes on to the next checks
        # (here greylisting: a new tuple).
        with self.world.client(ZEN_REFUSAL_CLIENT) as c:
            got = self.rcpt(c, GOOD_SENDER, "bob@example.test")
        self.assert_reply(got, ROWS[4])
        logs = [e.get("msg", "") for e in self.world.mx.events("rule_log")]
        self.assertTrue(any("zen.test" in m and ZEN_REFUSAL_CLIENT in m and "127.255.255.254" in m
                            for m in logs), logs)

    # --- row 4: greylisting, and the clean inbound message -------------
    def test_row04_greylisted_then_allowed_then_queued(self):
        ip, rcpt = "127.0.0.30", "grey@example.test"
        with self.world.client(ip) as c:
            first = time.monotonic()
            got = self.rcpt(c, GOOD_SENDER, rcpt)
            self.assert_row(4, got, ip, GOOD_SENDER, rcpt, detail="retry in 1s")
            c.rset()
            # An early retry is greylisted again; retry, as a client would,
            # until the delay has passed. (A loaded machine may take the
            # whole delay to get here: then the retry is not early.)
            got = self.rcpt(c, GOOD_SENDER, rcpt)
            tries = 0 if got[0] == 250 else 1
            if tries:
                self.assert_reply(got, ROWS[4])
            while got[0] != 250:
                c.rset()
                got = self.rcpt(c, GOOD_SENDER, rcpt)
                if got[0] == 250:
                    break
                self.assert_reply(got, ROWS[4])
                tries += 1
                self.assertLess(time.monotonic() - first, 10, "still greylisted after 10 s")
                time.sleep(0.2)
            self.assertGreaterEqual(time.monotonic() - first, 1.0, "passed before greylist.delay")
            # The clean message: 250, queued.
            code, msg = c.data(b"Subject: hello\r\n\r\nafter greylisting\r\n")
            self.assertEqual(code, 250, msg)
            self.assertIn(b"queued", msg.lower())
        self.assertEqual(len(self.rejections(client=ip, reason="greylisted")), tries + 1)
        # The client IP is on the allow list now: a new sender and recipient
        # pass at once.
        with self.world.client(ip) as c:
            self.assertEqual(self.rcpt(c, "carol@good.senders.test", "grey2@example.test")[0], 250)
        # ...but only for that IP: another client with the same tuple waits.
        with self.world.client("127.0.0.31") as c:
            self.assert_reply(self.rcpt(c, GOOD_SENDER, rcpt), ROWS[4])

    # --- rows 6, 7, 8: the recipient callout ----------------------------
    def test_row06_downstream_refuses_mail_from(self):
        rcpt = "bob@mailfrom-refuses.test"
        with self.world.client() as c:
            got = self.rcpt(c, GOOD_SENDER, rcpt)
        self.assert_row(6, got, CLEAN, GOOD_SENDER, rcpt)
        self.assert_quiet(got, "Sender refused by policy")

    def test_row06_downstream_refuses_ehlo_and_helo(self):
        rcpt = "bob@helo-refuses.test"
        with self.world.client() as c:
            got = self.rcpt(c, GOOD_SENDER, rcpt)
        self.assert_row(6, got, CLEAN, GOOD_SENDER, rcpt)
        self.assert_quiet(got, "Go away")

    def test_row06_downstream_greets_with_an_error(self):
        rcpt = "bob@greeting-refuses.test"
        with self.world.client() as c:
            got = self.rcpt(c, GOOD_SENDER, rcpt)
        self.assert_row(6, got, CLEAN, GOOD_SENDER, rcpt)
        self.assert_quiet(got, "No SMTP service here")

    def test_row06_downstream_defers_mail_from_is_451(self):
        rcpt = "bob@mailfrom-defers.test"
        with self.world.client() as c:
            got = self.rcpt(c, GOOD_SENDER, rcpt)
        self.assert_row(6, got, CLEAN, GOOD_SENDER, rcpt, row=ROW6_TEMP, cause=CAUSE6_TEMP)
        self.assert_quiet(got, "Sender temporarily refused")

    def test_row07_downstream_times_out(self):
        rcpt = "bob@silent.test"
        before = self.world.silent.connections
        with self.world.client() as c:
            t0 = time.monotonic()
            got = self.rcpt(c, GOOD_SENDER, rcpt)
            took = time.monotonic() - t0
        self.assert_row(7, got, CLEAN, GOOD_SENDER, rcpt)
        self.assertGreater(self.world.silent.connections, before)
        self.assertLess(took, 5, "the callout must give up after callout.command_timeout")

    def test_row07_downstream_unreachable(self):
        rcpt = "bob@closed.test"
        with self.world.client() as c:
            got = self.rcpt(c, GOOD_SENDER, rcpt)
        self.assert_row(7, got, CLEAN, GOOD_SENDER, rcpt)

    def test_row08_downstream_has_no_such_mailbox(self):
        rcpt = "nosuchuser@example.test"
        with self.world.client() as c:
            got = self.rcpt(c, GOOD_SENDER, rcpt)
        self.assert_row(8, got, CLEAN, GOOD_SENDER, rcpt)
        self.assert_quiet(got, "User unknown")
        self.assertIn(rcpt, self.world.downstream.rcpts)

    # --- row 9: sender verification ----------------------------------
    def test_row09_sender_mx_refuses_the_sender(self):
        sender, rcpt = "mallory@bad.senders.test", "bob@example.test"
        before = len(self.world.sender_mx.mails)
        with self.world.client() as c:
            got = self.rcpt(c, sender, rcpt)
        self.assert_row(9, got, CLEAN, sender, rcpt, detail="<%s>" % sender)
        self.assert_quiet(got, "User unknown", route=SENDER_MX)
        self.assertIn(sender, self.world.sender_mx.rcpts)
        # The sender callout says MAIL FROM:<>.
        self.assertEqual(self.world.sender_mx.mails[before:], [""])

    def test_row09_sender_domain_without_mx_uses_its_a_record(self):
        sender, rcpt = "mallory@nomx.senders.test", "bob@example.test"
        with self.world.client() as c:
            got = self.rcpt(c, sender, rcpt)
        self.assert_row(9, got, CLEAN, sender, rcpt)
        self.assertIn(sender, self.world.sender_mx.rcpts)

    def test_row09_sender_mx_unreachable(self):
        sender, rcpt = "someone@dead.senders.test", "bob@example.test"
        with self.world.client() as c:
            got = self.rcpt(c, sender, rcpt)
        self.assert_row(9, got, CLEAN, sender, rcpt)

    def test_row09_sender_domain_does_not_exist(self):
        sender, rcpt = "someone@nxdomain.senders.test", "bob@example.test"
        with self.world.client() as c:
            got = self.rcpt(c, sender, rcpt)
        self.assert_row(9, got, CLEAN, sender, rcpt, detail="no such domain")

    def test_row09_sender_domain_lookup_failure_defers(self):
        # No server answers for unserved.example (both refuse): our DNS
        # trouble, not the sender's. 451 4.4.3, the same portal reason.
        sender, rcpt = "someone@unserved.example", "bob@example.test"
        with self.world.client() as c:
            got = self.rcpt(c, sender, rcpt)
        self.assert_row(9, got, CLEAN, sender, rcpt, detail="lookup failed", row=ROW9_TEMP, cause=CAUSE9_TEMP)

    def test_row09_each_sender_of_a_session_is_verified(self):
        # A verified sender does not vouch for the next MAIL FROM after RSET.
        ip, rcpt = "127.0.0.35", "dave@example.test"
        with self.world.client(ip) as c:
            self.assert_reply(self.rcpt(c, GOOD_SENDER, rcpt), ROWS[4])      # verified, greylisted
            c.rset()
            got = self.rcpt(c, "trudy@bad.senders.test", rcpt)
        self.assert_row(9, got, ip, "trudy@bad.senders.test", rcpt)

    def test_known_sender_is_verified(self):
        # alice is known to her MX: the RCPT goes on to the greylist.
        with self.world.client("127.0.0.32") as c:
            got = self.rcpt(c, GOOD_SENDER, "dave@example.test")
        self.assert_reply(got, ROWS[4])
        self.assertIn(GOOD_SENDER, self.world.sender_mx.rcpts)

    # --- row 10: HELO as us -------------------------------------------
    def test_row10_helo_with_our_host_name(self):
        with self.world.client(helo="mx.mxgate.test") as c:
            got = reply(c.ehlo())
        self.assert_row(10, got, CLEAN)

    def test_row10_helo_with_our_other_name_and_address_literal(self):
        for name in ("MXGATE.test", "[127.0.0.1]"):
            with self.world.client(helo=name) as c:
                got = reply(c.helo())
            self.assert_row(10, got, CLEAN)
        # A literal of an address that is not ours is fine.
        with self.world.client(helo="[192.0.2.1]") as c:
            self.assertEqual(c.ehlo()[0], 250)

    # --- row 11: the route loops back to us ---------------------------
    def test_row11_lowest_mx_of_the_route_is_us(self):
        rcpt = "bob@loop.test"
        with self.world.client() as c:
            got = self.rcpt(c, GOOD_SENDER, rcpt)
        self.assert_row(11, got, CLEAN, GOOD_SENDER, rcpt, detail="mx:loop.test")

    def test_row11_route_host_resolves_to_us(self):
        rcpt = "bob@named-loop.test"
        with self.world.client() as c:
            got = self.rcpt(c, GOOD_SENDER, rcpt)
        self.assert_row(11, got, CLEAN, GOOD_SENDER, rcpt, detail="mx.loop.test")

    def test_row11_any_lowest_preference_mx_that_is_us(self):
        rcpt = "bob@tie.test"
        with self.world.client() as c:
            got = self.rcpt(c, GOOD_SENDER, rcpt)
        self.assert_row(11, got, CLEAN, GOOD_SENDER, rcpt, detail="MX mx.loop.test points to this host")

    def test_row11_we_are_only_a_backup_mx(self):
        ip, rcpt = "127.0.0.36", "bob@backup-us.test"
        with self.world.client(ip) as c:
            got = self.rcpt(c, GOOD_SENDER, rcpt)
        self.assert_reply(got, ROWS[4])          # no loop: on to greylisting

    # --- row 12: TLS-enforced sender domains ----------------------------
    def test_row12_tls_enforced_sender_without_starttls(self):
        ip = "127.0.0.34"
        with self.world.client(ip) as c:
            c.ehlo()
            got = reply(c.mail("ceo@secure.test"))
        self.assert_row(12, got, ip)

    def test_row12_tls_enforced_sender_after_starttls(self):
        with self.world.client("127.0.0.33") as c:
            c.starttls()
            c.ehlo()
            self.assertEqual(c.mail("ceo@secure.test")[0], 250)
        self.assertFalse(self.rejections(client="127.0.0.33"))

    def test_mail_stage_rejections_name_the_sender(self):
        # Rows 12 and 14 refuse MAIL FROM itself: the log record, and so
        # the report's example, must still say which sender it was.
        ip, sender = "127.0.0.37", "cfo@secure.test"
        with self.world.client(ip) as c:
            c.ehlo()
            self.assert_reply(reply(c.mail(sender)), ROWS[12])
        self.assert_logged(ROWS[12], ip, sender=sender)
        self.assertEqual(self.report_entry("tls_required")["last"]["sender"], sender)

    # --- rows 13, 14: the outbound listener ---------------------------
    def test_row13_client_outside_the_relay_networks(self):
        sender, rcpt = "someone@customer.test", "friend@elsewhere.test"
        with self.world.client(STRANGER, direction="outbound") as c:
            got = self.rcpt(c, sender, rcpt)
        self.assert_row(13, got, STRANGER, sender, rcpt, detail=STRANGER + " is not in the outbound relay networks")

    def test_row14_sender_over_its_rate(self):
        sender = "burst@customer.test"
        with self.world.client(RELAY_CLIENT, direction="outbound") as c:
            c.ehlo()
            for i in range(3):
                self.assertEqual(c.mail(sender)[0], 250, "message %d is within the limit" % (i + 1))
                c.rset()
            got = reply(c.mail(sender))
        self.assert_row(14, got, RELAY_CLIENT, detail=sender)

    def test_outbound_relay_client_under_its_limit_is_queued(self):
        with self.world.client(RELAY_CLIENT, direction="outbound") as c:
            c.ehlo()
            self.assertEqual(c.mail("newsletter@customer.test")[0], 250)
            self.assertEqual(c.rcpt("friend@elsewhere.test")[0], 250)
            code, msg = c.data(b"Subject: out\r\n\r\nhello\r\n")
        self.assertEqual(code, 250, msg)
        self.assertIn(b"queued", msg.lower())

    def test_stranger_does_not_spend_a_customers_rate(self):
        # MAIL from a client that may not relay does not count toward the
        # sender's rate: a stranger cannot lock a customer out (row 14).
        sender = "victim@customer.test"
        with self.world.client(STRANGER, direction="outbound") as c:
            c.ehlo()
            for _ in range(5):
                c.mail(sender)
                c.rset()
        with self.world.client(RELAY_CLIENT, direction="outbound") as c:
            c.ehlo()
            self.assertEqual(c.mail(sender)[0], 250)


    # --- every session above, replayed ----------------------------------
    def journal_files(self):
        """Every row's sessions, once each closed one is written."""
        mx = self.world.mx
        jdir = os.path.join(mx.dir, "var", "journal")
        # A record is written when its session ends: wait for every closed one.
        closed = lambda: len(mx.events("close"))
        def recorded():
            n = 0
            for f in os.listdir(jdir) if os.path.isdir(jdir) else []:
                with open(os.path.join(jdir, f)) as fh:
                    n += sum(1 for _ in fh)
            return n
        wait_for(lambda: recorded() >= closed() > 0, what="journal records")
        return sorted(os.path.join(jdir, f) for f in os.listdir(jdir))

    def ruletest(self, *args):
        exe = os.path.join(os.path.dirname(binary()), "ruletest")
        return subprocess.run([exe, "-c", self.world.mx.conf_path] + list(args), cwd=ROOT,
                              capture_output=True, text=True, timeout=120)

    def test_zz_every_recorded_session_replays_exactly(self):
        """The journal of every row's sessions, replayed by ruletest with the
        same config and rules, gives the same reply to every command (runs
        last: unittest orders tests by name)."""
        p = self.ruletest("--diff", *self.journal_files())
        self.assertEqual(p.returncode, 0, p.stdout[-4000:] + p.stderr[-2000:])

    def test_zz_greylisting_before_the_callout_is_predicted_with_nothing_unanswered(self):
        """The README's story on this journal: 80-greylist.lua renamed to run
        before the callout. The greylist() questions the records never asked
        are answered by the simulated store (spec/e2e/test_whatif.py checks
        such predictions against a live server)."""
        rules = tempfile.mkdtemp(prefix="rules-new-")
        self.addCleanup(shutil.rmtree, rules, ignore_errors=True)
        for name, src in default_rules().items():
            with open(os.path.join(rules, "74-greylist.lua" if name == "80-greylist.lua" else name), "w") as f:
                f.write(src)
        p = self.ruletest("-r", rules, "--diff", *self.journal_files())
        self.assertEqual(p.returncode, 1, p.stdout[-4000:] + p.stderr[-2000:])
        m = re.search(r"summary: \d+ sessions replayed: \d+ same, (\d+) would change, 0 unanswered", p.stdout)
        self.assertTrue(m, p.stdout[-4000:])
        self.assertIn("would change: %s (0 from recorded answers only, %s using simulated state)"
                      % (m.group(1), m.group(1)), p.stdout)
        self.assertIn("new       451 4.7.1 Greylisted", p.stdout)


class WildcardListenerTest(PortalCase):
    """Listening on 0.0.0.0 means every address of the host is ours: an
    address literal or a route to any of them is us (rows 10, 11)."""

    def test_wildcard_listener_counts_every_local_address_as_ours(self):
        mx = Mxgate()
        self.addCleanup(mx.cleanup)
        port = mx.ports["inbound"]
        mx.config.update(ruleset())
        mx.config.update({
            "listen": '{ { address = "0.0.0.0", port = %d, direction = "inbound" } }' % port,
            "hosted_domains": '{ ["wild.test"] = { route = "127.0.0.5:%d" } }' % port,
            "verify_sender": "{ enabled = false }",
        })
        mx.ports = {"inbound": port}
        mx.start()
        self.addCleanup(mx.stop)
        with smtplib.SMTP("127.0.0.1", port, local_hostname="[127.0.0.1]", timeout=30) as c:
            self.assert_reply(reply(c.ehlo()), ROWS[10])
        with smtplib.SMTP("127.0.0.1", port, local_hostname="client.example", timeout=30) as c:
            got = self.rcpt(c, GOOD_SENDER, "bob@wild.test")
        self.assert_reply(got, ROWS[11], detail="127.0.0.5:%d points to this host" % port)


class PortalReportTest(PortalCase):
    """`mxgate report` on a log written here: periods, filters, order,
    garbage, and hostile bytes (no server needed)."""

    def setUp(self):
        self.now = time.time()
        self.dir = tempfile.mkdtemp(prefix="mxgate-report-")
        self.addCleanup(shutil.rmtree, self.dir, True)
        self.log = os.path.join(self.dir, "mxgate.log")

    @staticmethod
    def ts(t):
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + ".000Z"

    def record(self, age, reason, client, direction="inbound", code=550, enh="5.7.1", text=None,
               sender="a@example.com", rcpt="b@example.net", stage="rcpt"):
        line = 'ts=%s pid=7 event=reject sid=x dir=%s client=%s stage=%s code=%d enhanced=%s reason=%s ' \
               'rule=rules.d/x.lua:1 text="%s"' % (self.ts(self.now - age), direction, client, stage, code, enh,
                                                   reason, (text or reason).replace('"', '\\"'))
        if sender is not None:
            line += ' from=%s' % sender
        if rcpt is not None:
            line += ' rcpt=%s' % rcpt
        return line

    def write(self, lines):
        with open(self.log, "w") as f:
            f.write("\n".join(lines) + "\n")

    def run_report(self, *args, stdin=None):
        p = subprocess.run([binary(), "report"] + list(args), cwd=ROOT, capture_output=True, text=True,
                           timeout=60, input=stdin)
        if "AddressSanitizer" in p.stderr or "runtime error:" in p.stderr:
            raise AssertionError("sanitizer report from mxgate report:\n" + p.stderr)
        return p

    def entries(self, *args, stdin=None):
        p = self.run_report("--json", *args, stdin=stdin)
        self.assertEqual(p.returncode, 0, p.stderr)
        data = json.loads(p.stdout)
        return data, {(e["reason"], e["direction"]): e for e in data["reasons"]}

    def sample(self):
        self.write([
            self.record(7200, "xbl", "192.0.2.1", text="XBL: 192.0.2.1 is listed at zen.spamhaus.org (127.0.0.4)"),
            "this is not a log line",
            'ts=2026-13-45T99:00:00Z event=reject reason=xbl',
            'ts=%s event=reject reason=xbl text="never closed' % self.ts(self.now - 60),
            self.ts(self.now) + " event=reject",
            'ts=%s pid=7 event=connect sid=y dir=inbound client=192.0.2.1' % self.ts(self.now - 600),
            self.record(600, "xbl", "192.0.2.2", text="XBL: 192.0.2.2 is listed"),
            self.record(500, "sender_rate", "192.0.2.9", direction="outbound", code=451, enh="4.7.1",
                        stage="mail", sender=None, rcpt=None, text="Sender Rate Exceeded: x"),
            self.record(400, "protocol", "192.0.2.3", code=554, enh="5.6.0", text="Bad header",
                        rcpt="evil\\x1b[31m@example.net"),
            self.record(300, "relay_denied", "192.0.2.9", direction="outbound", text="Relay Denied: 192.0.2.9"),
        ])

    def test_counts_newest_example_and_skipped_lines(self):
        self.sample()
        data, e = self.entries(self.log)
        self.assertEqual((data["total"], data["skipped"]), (5, 4), data)
        x = e[("xbl", "inbound")]
        self.assertEqual((x["row"], x["text"], x["count"]), (2, "XBL", 2))
        self.assertEqual((x["last"]["client"], x["last"]["reply"]), ("192.0.2.2", "XBL: 192.0.2.2 is listed"))
        self.assertEqual(e[("sender_rate", "outbound")]["count"], 1)
        self.assertEqual(e[("not_hosted", "inbound")]["count"], 0)      # every portal row is listed
        self.assertIsNone(e[("not_hosted", "inbound")]["last"])

    def test_table_in_portal_order_then_other_reasons(self):
        self.sample()
        p = self.run_report(self.log)
        self.assertEqual(p.returncode, 0, p.stderr)
        out = p.stdout
        positions = [out.index("| %s |" % ROWS[n][1]) for n in range(1, 15)]
        self.assertEqual(positions, sorted(positions), out)
        self.assertLess(out.index("Inbound | XBL |"), out.index("Inbound | protocol |"))
        self.assertLess(out.index("Inbound | protocol |"), out.index("Outbound Rejections"))
        self.assertIn("Inbound | XBL | Sending IP is listed on Spamhaus | 2 | ", out)
        self.assertIn("client=192.0.2.2 from=<a@example.com> rcpt=<b@example.net>", out)
        self.assertIn("Outbound | Relay Denied | Outbound IP address is not added to the outbound relay "
                      "section of the portal. | 1 |", out)
        self.assertIn("(4 lines skipped", out)
        self.assertNotIn("\x1b", out)                        # a client's bytes never reach the terminal raw
        self.assertIn("evil\\x1b[31m@example.net", out)

    def test_since_until_and_match(self):
        self.sample()
        _, e = self.entries("--since", "1h", self.log)
        self.assertEqual(e[("xbl", "inbound")]["count"], 1)
        _, e = self.entries("--since", self.ts(self.now - 7300)[:16], "--until", "%d" % (self.now - 3600), self.log)
        self.assertEqual(e[("xbl", "inbound")]["count"], 1)
        self.assertEqual(e[("xbl", "inbound")]["last"]["client"], "192.0.2.1")
        self.assertEqual(e[("relay_denied", "outbound")]["count"], 0)
        data, e = self.entries("--match", "192.0.2.9", self.log)
        self.assertEqual(data["total"], 2)
        self.assertEqual(e[("xbl", "inbound")]["count"], 0)

    def test_reads_standard_input(self):
        self.sample()
        with open(self.log) as f:
            data, e = self.entries("-", stdin=f.read())
        self.assertEqual(e[("xbl", "inbound")]["count"], 2)

    def config_with_rules(self, files):
        """A config whose rules directory holds `files`: the report reads
        reasons through the stdlib as the server loads the rules."""
        d = os.path.join(self.dir, "rules.d")
        os.mkdir(d)
        for name, src in files.items():
            with open(os.path.join(d, name), "w") as f:
                f.write(src)
        conf = os.path.join(self.dir, "mxgate.lua")
        with open(conf, "w") as f:
            f.write('hostname = "mx.report.test"\nrules = "%s"\nstdlib = "%s"\nlog_file = "%s"\n'
                    % (d, os.path.join(ROOT, "stdlib"), self.log))
        return conf

    def test_reason_overrides_are_read_through_the_stdlib_with_the_real_config(self):
        # The old embedded loader gave rule files an inert `config`: this override was lost.
        conf = self.config_with_rules({
            "00-reasons.lua": 'local d = require("dnsbl")\n'
                              'reason("xbl", { text = "Listed at " .. config.hostname })\n'
                              'for _, k in ipairs({ "pbl", "rbl" }) do reason(k, { cause = "see " .. k }) end\n',
            "99-accept.lua": 'rule("rcpt", "accept", function(s) return accept() end)\n'})
        self.sample()
        p = self.run_report("--json", "-c", conf)
        self.assertEqual(p.returncode, 0, p.stderr)
        e = {(x["reason"], x["direction"]): x for x in json.loads(p.stdout)["reasons"]}
        self.assertEqual(e[("xbl", "inbound")]["text"], "Listed at mx.report.test")
        self.assertEqual(e[("pbl", "inbound")]["cause"], "see pbl")
        self.assertEqual(e[("rbl", "inbound")]["cause"], "see rbl")
        self.assertEqual(e[("not_hosted", "inbound")]["text"], ROWS[1][1])

    def test_rules_that_do_not_load_leave_the_stdlib_reasons_with_a_warning(self):
        conf = self.config_with_rules({"00-reasons.lua": 'reason("xbl", { text = "never" })\nthis is not Lua\n'})
        self.sample()
        p = self.run_report("--json", "-c", conf)
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("the rules do not load", p.stderr)
        e = {(x["reason"], x["direction"]): x for x in json.loads(p.stdout)["reasons"]}
        self.assertEqual(e[("xbl", "inbound")]["text"], "XBL")

    def delivery(self, age, event, rcpt, qid="Q1"):
        return 'ts=%s pid=8 event=%s qid=%s rcpt=%s from=a@example.com relay=127.0.0.1:25 ' \
               'reply="250 2.0.0 ok" delay=0.5 attempts=1 tls=none' % (self.ts(self.now - age), event, qid, rcpt)

    def test_delivery_events_are_counted_by_result(self):
        self.sample()
        with open(self.log, "a") as f:
            for line in (self.delivery(900, "deferred", "b@example.net"),
                         self.delivery(800, "delivered", "b@example.net"),
                         self.delivery(700, "delivered", "c@example.net", qid="Q2"),
                         self.delivery(7300, "bounced", "d@example.net", qid="Q3")):
                f.write(line + "\n")
        data, _ = self.entries(self.log)
        self.assertEqual(data["delivery"], {"delivered": 2, "deferred": 1, "bounced": 1})
        self.assertEqual(data["total"], 5)                   # deliveries are not rejections
        data, _ = self.entries("--since", "1h", self.log)
        self.assertEqual(data["delivery"], {"delivered": 2, "deferred": 1, "bounced": 0})
        p = self.run_report(self.log)
        self.assertIn("delivery: 2 delivered, 1 deferred, 1 bounced", p.stdout)

    def test_a_kept_index_reads_what_the_log_gained_and_follows_rotation(self):
        index = os.path.join(self.dir, "index")
        self.sample()
        data, e = self.entries("--index", index, self.log)
        self.assertEqual(e[("xbl", "inbound")]["count"], 2)
        with open(self.log, "a") as f:
            f.write(self.record(100, "xbl", "192.0.2.7") + "\n")
        _, e = self.entries("--index", index, self.log)
        self.assertEqual(e[("xbl", "inbound")]["count"], 3)
        # logrotate: the old file keeps a line the index has not read yet
        with open(self.log, "a") as f:
            f.write(self.record(90, "xbl", "192.0.2.8") + "\n")
        os.rename(self.log, self.log + ".1")
        self.write([self.record(80, "pbl", "192.0.2.9")])
        data, e = self.entries("--index", index, self.log)
        self.assertEqual(e[("xbl", "inbound")]["count"], 4)
        self.assertEqual(e[("pbl", "inbound")]["count"], 1)
        self.assertEqual(data["skipped"], 4)
        # the same numbers as a report that reads the files afresh
        with open(self.log + ".1") as a, open(self.log) as b:
            fresh, _ = self.entries("-", stdin=a.read() + b.read())
        self.assertEqual(fresh["total"], data["total"])

    def test_bad_time_is_a_usage_error(self):
        for bad in ("yesterday", "2026-11-28T25:00", "5x", ""):
            p = self.run_report("--since", bad, "/dev/null")
            self.assertEqual(p.returncode, 2, (bad, p.stdout))
            self.assertIn("--since", p.stderr)
        p = self.run_report("/nonexistent/mxgate.log")
        self.assertEqual(p.returncode, 2)


if __name__ == "__main__":
    unittest.main()
