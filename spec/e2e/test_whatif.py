"""ruletest's "what if", checked against reality: each operator story runs the
same client scenarios against two mxgates, one before the change (its journal
is what ruletest replays) and one after it, and ruletest's predicted reply for
every session must be the reply the second server really gave.

Documented differences only: queue ids, and the greeting and EHLO lists,
which ruletest takes from the record (the server that was recorded).

The questions the first server's records never asked are answered by the
simulated state store (greylist(), ratelimit()), borrowed from another
session's record (dns()), or, with --live, asked of the real servers now
(callout(), verify_sender()); none may stay unanswered.

Run: /usr/bin/python3 spec/run.py --no-asan -k whatif
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
import types
import unittest

from spec.e2e.harness import ROOT, binary, wait_for
from spec.e2e.test_portal_rows import (GOOD_SENDER, OTHER_BL_CLIENT, RELAY_CLIENT, XBL_CLIENT, Backends,
                                       PortalCase, World, default_rules, reply, shared_backends)

GREY_DELAY = 1.0            # the portal world's greylist.delay

# A reply line of ruletest's trace: "    = 250 2.1.5 Ok", "    ! NEW    [recorded: OLD]", "    + NEW    [not recorded]".
TRACE_REPLY = re.compile(r"^    ([=!+.]) (\d{3}) (.*?)(?:    \[(?:recorded|not recorded).*\])?$")


def normal(code, text):
    """A reply as the comparison sees it: its first line, without queue ids."""
    first = text.split("\n")[0]
    first = re.sub(r" \(\+\d+ lines?\)$", "", first)
    return "%d %s" % (code, re.sub(r"queued as \S+", "queued as QID", first))


def whole_records(jdir):
    """The records of jdir's journals that the server has finished writing.
    A record is one write(2) at the end of its session, and a read can see
    that write half done: a last line without its newline is still being
    written (parsed, it once failed a run under ASan). Read as bytes, so a
    cut inside a UTF-8 character is no decoding error either."""
    out = []
    for f in sorted(os.listdir(jdir)) if os.path.isdir(jdir) else []:
        with open(os.path.join(jdir, f), "rb") as fh:
            out += [json.loads(line) for line in fh if line.endswith(b"\n") and line.strip()]
    return out


class Story:
    """One story (a mixin of PortalCase): the BEFORE and AFTER servers' configs and rules."""

    BEFORE_CONFIG = {}
    AFTER_CONFIG = {}
    PREDICT_ARGS = ()           # ruletest's options beyond -c AFTER_CONF (e.g. --live)

    def backends(self):
        """The servers around both mxgates."""
        return shared_backends()

    def before_rules(self):
        return default_rules()

    def after_rules(self):
        return default_rules()

    def scenarios(self, world):
        raise NotImplementedError

    def server(self, config, rules):
        w = World(self.backends(), config=dict(config), own_port=False)
        w.mx.rules = rules
        self.addCleanup(w.stop)
        w.start()
        self.addCleanup(w.mx.check_sanitizers)
        return w

    def journal(self, world):
        """Every session's record, in time order, once each closed session is written."""
        jdir = os.path.join(world.mx.dir, "var", "journal")
        # The harness's own probes (connect, close) are no scenario's sessions.
        talk = lambda: [r for r in whole_records(jdir) if any(e["e"] == "cmd" for e in r["events"])]
        wait_for(lambda: len(talk()) >= world.sessions, what="every scenario session's record")
        talked = talk()
        return sorted(talked, key=lambda r: r["time"]), \
            [os.path.join(jdir, f) for f in sorted(os.listdir(jdir))]

    def ruletest(self, after, files, *args):
        """ruletest with the AFTER server's config and rules over the BEFORE journal."""
        exe = os.path.join(os.path.dirname(binary()), "ruletest")
        p = subprocess.run([exe, "-c", after.mx.conf_path] + list(args) + files, cwd=ROOT,
                           capture_output=True, text=True, timeout=120)
        self.outputs = getattr(self, "outputs", []) + [p.stdout]
        return p

    def predict(self, after, files):
        """ruletest's trace (with PREDICT_ARGS): (its output, {session id: the predicted replies})."""
        p = self.ruletest(after, files, *self.PREDICT_ARGS)
        self.assertEqual(p.returncode, 0, p.stdout[-4000:] + p.stderr[-2000:])
        sessions, cur = {}, None
        for line in p.stdout.splitlines():
            if line.startswith("session "):
                cur = sessions.setdefault(line.split()[1], [])
            m = TRACE_REPLY.match(line)
            if m and cur is not None:
                cur.append(normal(int(m.group(2)), m.group(3)))
        return p.stdout, sessions

    def test_the_prediction_is_what_the_changed_server_answers(self):
        before = self.server(self.BEFORE_CONFIG, self.before_rules())
        self.scenarios(before)
        recorded, files = self.journal(before)

        after = self.server(self.AFTER_CONFIG or self.BEFORE_CONFIG, self.after_rules())
        self.scenarios(after)
        real, _ = self.journal(after)

        self.after, self.files = after, files
        out, predicted = self.predict(after, files)
        self.assertRegex(out, r"summary: \d+ sessions replayed: \d+ same, \d+ would change, 0 unanswered")
        self.assertEqual(len(recorded), len(real), out)
        changed = 0
        for i, (rec, now) in enumerate(zip(recorded, real)):
            pred = predicted[rec["sid"]]
            self.assertEqual(rec["client"]["ip"], now["client"]["ip"], "session %d" % i)
            live = [normal(e["code"], e["text"]) for e in now["events"] if e["e"] == "reply"]
            old = [normal(e["code"], e["text"]) for e in rec["events"] if e["e"] == "reply"]
            # The greeting and the EHLO list are the record's (documented).
            self.assertEqual(pred[2:], live[2:], "session %d (%s): predicted vs live\n%s" % (i, rec["sid"], out))
            changed += old != live
        self.assertGreater(changed, 0, "the story changes nothing: it proves nothing")
        self.check_sources(out)
        self.check_docs()

    def check_sources(self, out):
        pass

    STORY = None                # the story's title in README.md and docs/OPERATOR_STORIES.md

    def check_docs(self):
        """The summary lines the docs show for this story are the ones ruletest prints."""
        if not self.STORY:
            return
        for doc, head in (("README.md", "### "), ("docs/OPERATOR_STORIES.md", "## ")):
            with open(os.path.join(ROOT, doc)) as f:
                text = f.read()
            start = text.index(head + self.STORY + "\n")
            end = text.find("\n" + head, start + 1)
            shown = re.findall(r"(?m)^    ((?:summary|would change|same): .*)$", text[start:end])
            self.assertTrue(shown, "%s: no summary under %r" % (doc, self.STORY))
            for line in shown:
                self.assertTrue(any(line in o.splitlines() for o in self.outputs),
                                "%s (%s) shows %r; ruletest printed:\n%s" % (doc, self.STORY, line,
                                                                           "\n".join(self.outputs)[-3000:]))

    # --- client steps ------------------------------------------------------
    def send(self, world, ip, sender, *rcpts, direction="inbound", data=False):
        world.sessions = getattr(world, "sessions", 0) + 1
        with world.client(ip, direction=direction) as c:
            c.ehlo()
            c.mail(sender)
            got = [reply(c.rcpt(r)) for r in rcpts]
            if data and any(g[0] == 250 for g in got):
                c.data(b"Subject: what if\r\n\r\nhello\r\n")
        return got

    def after_delay(self, since):
        """Waits out the greylisting delay counted from `since` (monotonic)."""
        wait_for(lambda: time.monotonic() - since > GREY_DELAY + 0.2, what="the greylist delay")


class TestWhatIfGreylistBeforeTheCallout(Story, PortalCase):
    """80-greylist.lua renamed 74-greylist.lua: greylisting runs before the
    recipient callout, so unknown mailboxes are greylisted instead of refused."""

    def after_rules(self):
        rules = default_rules()
        rules["74-greylist.lua"] = rules.pop("80-greylist.lua")
        return rules

    def scenarios(self, w):
        t = time.monotonic()
        self.send(w, "127.0.0.60", GOOD_SENDER, "bob@example.test")                  # new tuple: 451
        self.send(w, "127.0.0.61", GOOD_SENDER, "nobody-here@example.test")          # 550 / now 451
        self.send(w, "127.0.0.62", GOOD_SENDER, "bob@mailfrom-refuses.test")         # row 6 / now 451
        self.send(w, "127.0.0.63", GOOD_SENDER, "bob@example.test", "nobody-2@example.test")
        self.send(w, XBL_CLIENT, GOOD_SENDER, "bob@example.test")                    # XBL either way
        self.after_delay(t)
        self.send(w, "127.0.0.60", GOOD_SENDER, "bob@example.test", data=True)        # retried: 250
        self.send(w, "127.0.0.61", GOOD_SENDER, "nobody-here@example.test")          # retried: 550 both
        self.send(w, "127.0.0.60", GOOD_SENDER, "dave@example.test")                 # allowed now

    def check_sources(self, out):
        self.assertIn("[simulated]", out)
        self.assertRegex(out, r"result: CHANGED \(using simulated state\)")

    def test_state_starts_the_simulation_from_a_read_only_copy_of_the_real_store(self):
        """--state DIR: with 127.0.0.61 on the real store's allow list, its
        unknown-mailbox sessions are no longer predicted greylisted; the store
        is only read."""
        before = self.server({}, self.before_rules())
        self.scenarios(before)
        _, files = self.journal(before)
        store = os.path.join(before.mx.dir, "var", "state")
        subprocess.run([binary(), "state", "-d", store, "add", "allow", "127.0.0.61", "expires=+35d since=0"],
                       cwd=ROOT, check=True, capture_output=True, timeout=60)
        records = lambda: [subprocess.run([binary(), "state", "-d", store, "list", db], cwd=ROOT,
                                          capture_output=True, text=True, timeout=60).stdout
                           for db in ("greylist", "allow", "ratelimit")]
        kept = records()
        after = self.server({}, self.after_rules())
        exe = os.path.join(os.path.dirname(binary()), "ruletest")
        run = lambda *a: subprocess.run([exe, "-c", after.mx.conf_path] + list(a) + files, cwd=ROOT,
                                        capture_output=True, text=True, timeout=120)
        empty, snap = run(), run("--state", store)
        grey61 = 'greylist("127.0.0.61","alice@good.senders.test","nobody-here@example.test",[]) -> '
        self.assertIn(grey61 + '{"pass":false,"verdict":"new","wait":1}   [simulated]', empty.stdout)
        self.assertIn(grey61 + '{"pass":true,"verdict":"allowed","wait":0}   [simulated]', snap.stdout,
                      snap.stdout[-3000:] + snap.stderr)
        self.assertEqual(records(), kept, "ruletest wrote to the real store")
        bad = run("--state", os.path.join(before.mx.dir, "no-such-store"))
        self.assertEqual(bad.returncode, 2, bad.stdout + bad.stderr)
        self.assertIn("no-such-store", bad.stderr)


class TestWhatIfLowerTheSenderRate(Story, PortalCase):
    """ratelimit.sender.limit from 5 to 3: the fourth message of a customer's
    sender within the period is deferred (row 14)."""

    STORY = "Lower a sender's rate limit"
    BEFORE_CONFIG = {"ratelimit": "{ sender = { limit = 5, period = 3600 } }"}
    AFTER_CONFIG = {"ratelimit": "{ sender = { limit = 3, period = 3600 } }"}

    def scenarios(self, w):
        for _ in range(6):
            self.send(w, RELAY_CLIENT, "news@customer.test", "someone@far-away.test", direction="outbound")
        self.send(w, RELAY_CLIENT, "other@customer.test", "someone@far-away.test", direction="outbound")

    def check_sources(self, out):
        self.assertRegex(out, r'ratelimit\("sender:news@customer\.test",3,3600,\{"mode":"leaky"\}\) -> '
                              r'\{"over":true,.*\}   \[simulated\]')


class TestAStoryReadsOnlyWholeJournalLines(unittest.TestCase):
    """The server writes a session's record when the session ends, while a
    story is already polling the journal: the record being written is not
    read, whether the cut falls between characters or inside one."""

    def test_a_record_cut_short_is_left_for_the_next_look(self):
        done = {"sid": "A", "time": 1, "client": {"ip": "127.0.0.60"},
                "events": [{"e": "cmd", "line": "EHLO client.test"}]}
        writing = json.dumps(dict(done, sid="B", events=[{"e": "cmd", "line": "MAIL FROM:<\u00e9@x.test>"}]),
                             ensure_ascii=False).encode()
        for cut in (len(writing) // 2, writing.index("\u00e9".encode()) + 1):
            with self.subTest(cut=writing[:cut][-12:]):
                d = tempfile.mkdtemp()
                self.addCleanup(shutil.rmtree, d)
                jdir = os.path.join(d, "var", "journal")
                os.makedirs(jdir)
                with open(os.path.join(jdir, "journal.jsonl"), "wb") as f:
                    f.write(json.dumps(done).encode() + b"\n" + writing[:cut])
                world = types.SimpleNamespace(mx=types.SimpleNamespace(dir=d), sessions=1)
                records, _ = Story.journal(self, world)
                self.assertEqual([r["sid"] for r in records], ["A"])


# The trial: bl.test asked for one hosted domain only, by a rule of its own.
TRIAL = '''-- 52-trial.lua - bl.test, tried on example.test first
rule("rcpt", "bl_trial", function(s)
  if s.inbound and s.rcpt_domain == "example.test" then
    local code = dnsbl(s.ip, "bl.test")
    if code then return deny("rbl", s.ip .. " is listed at bl.test (" .. code .. ")") end
  end
end)
'''


class TestWhatIfAddADnsblZoneAnotherSessionAsked(Story, PortalCase):
    """bl.test, tried for example.test only, goes into config.dnsbl for every
    domain: the sessions that never asked it borrow the answer a session of
    the same client recorded."""

    STORY = "Add a DNSBL zone"
    BEFORE_CONFIG = {"dnsbl": '{ { zone = "zen.test", spamhaus = true } }'}
    AFTER_CONFIG = {"dnsbl": '{ { zone = "zen.test", spamhaus = true }, { zone = "bl.test" } }'}

    def before_rules(self):
        rules = default_rules()
        rules["52-trial.lua"] = TRIAL
        return rules

    def scenarios(self, w):
        self.send(w, OTHER_BL_CLIENT, GOOD_SENDER, "bob@example.test")               # 550 RBL both
        self.send(w, OTHER_BL_CLIENT, GOOD_SENDER, "bob@mailfrom-refuses.test")      # row 6 / now RBL
        self.send(w, "127.0.0.64", GOOD_SENDER, "dave@example.test")                 # not listed: 451 grey
        self.send(w, "127.0.0.64", GOOD_SENDER, "erin@greeting-refuses.test")        # row 6 both

    def check_sources(self, out):
        self.assertRegex(out, r'dns\("24\.0\.0\.127\.bl\.test","a"\) -> \["127\.0\.0\.2"\],"ok",\d+   '
                              r'\[borrowed from \S+\]')
        self.assertIn("result: CHANGED (using answers borrowed from other sessions)", out)



class TestWhatIfAskTheCalloutsLive(Story, PortalCase):
    """The journal was recorded before recipient callouts and sender
    verification were turned on (no 70-verify-sender.lua, no 75-callout.lua),
    so no session's record, nor any other session's, answers them. Offline
    they stay unanswered and ruletest connects to no mail server; with
    --live it asks the downstream (aiosmtpd behind example.test's route) and
    the sender's MX (aiosmtpd, found through NSD) now, marks those answers
    live, and predicts what the server with the new rules answers."""

    STORY = "Try recipient callouts and sender verification before turning them on"
    PREDICT_ARGS = ("--live",)

    def backends(self):
        # Servers of its own: their connection counts are this test's alone
        # (the shared ones also serve the portal worlds' delivery processes).
        if not hasattr(self, "_own"):
            self._own = Backends().start()
            self.addCleanup(self._own.stop)
        return self._own

    def before_rules(self):
        rules = default_rules()
        del rules["70-verify-sender.lua"], rules["75-callout.lua"]
        return rules

    def scenarios(self, w):
        self.send(w, "127.0.0.70", GOOD_SENDER, "bob@example.test")                  # 451 grey both
        self.send(w, "127.0.0.71", GOOD_SENDER, "nobody-here@example.test")          # 451 / now 550 row 8
        self.send(w, "127.0.0.72", "mallory@good.senders.test", "dave@example.test")  # 451 / now 550 row 9
        self.send(w, "127.0.0.73", GOOD_SENDER, "bob@mailfrom-refuses.test")         # 451 / now 550 row 6
        self.send(w, "127.0.0.74", "", "nobody-2@example.test")                      # a bounce: no sender check

    def mail_servers(self):
        b = self.backends()
        return [b.sender_mx, b.downstream, b.mail_refuser, b.mail_deferrer, b.helo_refuser,
                b.greeting_refuser, b.silent]

    def connections(self):
        """TCP connections every mail server of the world has accepted so far."""
        for srv in self.mail_servers():
            self.assertTrue(srv.wait_idle(), srv.address)
        return {srv.address: srv.connections for srv in self.mail_servers()}

    def predict(self, after, files):
        before = self.connections()
        out = super().predict(after, files)
        self.asked = {a: n - before[a] for a, n in self.connections().items() if n != before[a]}
        return out

    def check_sources(self, out):
        b = self.backends()
        # Asked now, of the real servers: the sender's MX and both routes.
        self.assertEqual(set(self.asked), {b.sender_mx.address, b.downstream.address, b.mail_refuser.address},
                         out)
        self.assertRegex(out, r'callout\("nobody-here@example\.test","%s"\) -> \{[^\n]*"result":"rcpt_rejected"'
                              r'[^\n]*\}   \[live\]' % re.escape(b.downstream.address))
        self.assertRegex(out, r'verify_sender\("mallory@good\.senders\.test"\) -> \{[^\n]*'
                              r'"result":"rcpt_rejected"[^\n]*\}   \[live\]')
        self.assertRegex(out, r'verify_sender\("alice@good\.senders\.test"\) -> \{[^\n]*"result":"ok"'
                              r'[^\n]*\}   \[live\]')
        self.assertIn("result: CHANGED (using live answers)", out)
        self.assertIn("would change: 4 (0 from recorded answers only, 4 using live answers)", out)
        # The harness's own probes, and 127.0.0.70's session, greylisted either way.
        self.assertIn("same: 3 (2 from recorded answers only, 1 using live answers)", out)
        after, files, route = self.after, self.files, self.backends().downstream.address
        # --diff prints each session's answers that were not the record's.
        p = self.ruletest(after, files, "--live", "--diff")
        self.assertEqual(p.returncode, 1, p.stdout[-4000:] + p.stderr[-2000:])
        self.assertRegex(p.stdout, r'(?m)^  live: callout\("nobody-2@example\.test","%s"\) -> \{[^\n]*'
                                   r'"result":"rcpt_rejected"' % re.escape(route))
        self.assertRegex(p.stdout, r'(?m)^  live: verify_sender\("mallory@good\.senders\.test"\) -> \{[^\n]*'
                                   r'"result":"rcpt_rejected"')
        self.assertRegex(p.stdout, r"summary: 7 sessions replayed: 3 same, 4 would change, 0 unanswered")
        # Without --live the same questions stay unanswered, and no mail
        # server hears from ruletest.
        before = self.connections()
        p = self.ruletest(after, files, "--diff")
        self.assertEqual(p.returncode, 1, p.stdout[-4000:] + p.stderr[-2000:])
        self.assertEqual(self.connections(), before, "ruletest without --live connected to a mail server")
        self.assertIn('unanswered: verify_sender("alice@good.senders.test")', p.stdout)
        # (A rule that gets nil where it wanted an answer errs: 451 4.3.0.)
        self.assertIn('unanswered: callout("nobody-2@example.test","%s")' % route, p.stdout)
        self.assertNotRegex(p.stdout, r"(?m)^  live: |\[live\]")
        self.assertRegex(p.stdout, r"summary: 7 sessions replayed: 2 same, 0 would change, 5 unanswered")


if __name__ == "__main__":
    unittest.main()
