"""SIGHUP builds the next generation of rules beside the running one: new
sessions get it, sessions already open keep theirs, a broken edit changes
nothing but the log, and no session is failed or dropped meanwhile."""
import os
import select
import signal
import smtplib
import threading
import time

from spec.e2e.harness import wait_for
from spec.e2e.test_rules_common import RulesTest


def text_rule(text):
    return 'rule("rcpt", "text", function(s)\n  return deny { text = "%s" }\nend)\n' % text


# Broken edits of 50-text.lua, and where each must be reported.
BROKEN = {
    "syntax": ('rule("rcpt", "text", function(s)\n  return deny { text = "half an edit"\nend)\n',
               "rules.d/50-text.lua:3:", "'}' expected"),
    "unknown_reason": ('rule("rcpt", "text", function(s)\n  return deny("nonexistent")\nend)\n',
                       "rules.d/50-text.lua:2:", 'unknown reason "nonexistent"'),
    "runtime": ('local limits = nil\nlocal n = limits.max + 1\n' + text_rule("never"),
                "rules.d/50-text.lua:2:", "attempt to index a nil value"),
    "duplicate": (text_rule("first") + text_rule("second"),
                  "rules.d/50-text.lua:4:", 'rule "text" is already defined at rules.d/50-text.lua:1'),
    "load_loop": ("while true do end\n", "rules.d/50-text.lua:1:", "instruction budget"),
}


def rcpt_text(srv):
    with srv.smtp() as c:
        c.ehlo()
        c.mail("a@sender.test")
        code, msg = c.rcpt("a@example.test")
    return code, msg.decode()


class Reload(RulesTest):
    def test_an_edit_and_sighup_change_the_answer_of_new_sessions(self):
        srv = self.serve({"50-text.lua": text_rule("before")})
        self.assertEqual(rcpt_text(srv), (550, "5.7.1 before"))
        self.set_rules(srv, {"50-text.lua": text_rule("after")})
        self.assertEqual(self.reload(srv)["event"], "reloaded")
        self.assertEqual(rcpt_text(srv), (550, "5.7.1 after"))

    def test_a_session_open_before_the_reload_keeps_its_generation_to_the_end(self):
        srv = self.serve({"50-text.lua": text_rule("old")})
        old = srv.raw()
        self.addCleanup(old.close)
        old.expect(220)
        old.cmd("EHLO old.example", 250)
        self.set_rules(srv, {"50-text.lua": text_rule("new")})
        self.assertEqual(self.reload(srv)["event"], "reloaded")
        self.assertEqual(rcpt_text(srv), (550, "5.7.1 new"))
        old.cmd("MAIL FROM:<a@sender.test>", 250)
        self.assertEqual(old.cmd("RCPT TO:<a@example.test>", 550), ["550 5.7.1 old"])
        old.cmd("RSET", 250)                       # a new transaction, the same session
        old.cmd("MAIL FROM:<a@sender.test>", 250)
        self.assertEqual(old.cmd("RCPT TO:<a@example.test>", 550), ["550 5.7.1 old"])
        # Another reload while it is still open: it keeps the first one still.
        self.set_rules(srv, {"50-text.lua": text_rule("newer")})
        self.assertEqual(self.reload(srv)["event"], "reloaded")
        self.assertEqual(old.cmd("RCPT TO:<b@example.test>", 550), ["550 5.7.1 old"])
        self.assertEqual(rcpt_text(srv), (550, "5.7.1 newer"))
        old.cmd("QUIT", 221)

    def test_a_session_waiting_in_a_rule_across_reloads_finishes_on_its_generation(self):
        srv = self.serve({"50-text.lua": '''rule("rcpt", "text", function(s)
  if s.rcpt == "slow@example.test" then
    log("asleep in generation one")
    sleep(1.5)
  end
  return deny { text = "generation one" }
end)
'''})
        slow = srv.raw()
        self.addCleanup(slow.close)
        slow.expect(220)
        slow.cmd("EHLO slow.example", 250)
        slow.cmd("MAIL FROM:<a@sender.test>", 250)
        slow.send("RCPT TO:<slow@example.test>\r\n")
        wait_for(lambda: srv.log_has("rule_log", msg="asleep in generation one"), what="the rule to sleep")
        for n in (2, 3, 4):
            self.set_rules(srv, {"50-text.lua": text_rule("generation %d" % n)})
            self.assertEqual(self.reload(srv)["event"], "reloaded")
            self.assertEqual(rcpt_text(srv), (550, "5.7.1 generation %d" % n))
        self.assertEqual(select.select([slow.sock], [], [], 0)[0], [], "woke before the reloads were done")
        self.assertEqual(slow.read_reply(), (550, ["550 5.7.1 generation one"]))
        self.assertEqual(slow.cmd("RCPT TO:<a@example.test>", 550), ["550 5.7.1 generation one"])
        slow.cmd("QUIT", 221)
        self.assertEqual(rcpt_text(srv), (550, "5.7.1 generation 4"))
        self.assertEqual(srv.events("rule_error"), [])

    def test_a_broken_edit_is_logged_with_file_and_line_and_the_old_rules_answer(self):
        srv = self.serve({"10-keep.lua": 'rule("mail", "keep", function(s) end)\n',
                          "50-text.lua": text_rule("good")})
        for kind, (src, where, why) in BROKEN.items():
            with self.subTest(kind):
                self.set_rules(srv, {"50-text.lua": src})
                ev = self.reload(srv)
                self.assertEqual(ev["event"], "reload_failed", ev)
                self.assertTrue(ev["error"].startswith(where), ev["error"])
                self.assertIn(why, ev["error"])
                self.assertEqual(rcpt_text(srv), (550, "5.7.1 good"))
                # `mxgate -t` runs the same check and says the same.
                rc, out = self.check(srv)
                self.assertEqual((rc, out.strip()), (1, ev["error"]))
        self.set_rules(srv, {"50-text.lua": text_rule("fixed")})
        self.assertEqual(self.reload(srv)["event"], "reloaded")
        self.assertEqual(self.check(srv)[0], 0)
        self.assertEqual(rcpt_text(srv), (550, "5.7.1 fixed"))
        self.assertEqual(srv.events("worker_died"), [])

    def test_a_removed_file_is_gone_after_reload(self):
        srv = self.serve({"40-first.lua": text_rule("first").replace('"text"', '"first"'),
                          "50-text.lua": text_rule("second")})
        self.assertEqual(rcpt_text(srv), (550, "5.7.1 first"))
        self.set_rules(srv, {}, remove=["40-first.lua"])
        self.assertEqual(self.reload(srv)["event"], "reloaded")
        self.assertEqual(rcpt_text(srv), (550, "5.7.1 second"))

    def test_new_rule_limits_apply_after_reload(self):
        busy = '''rule("rcpt", "busy", function(s)
  local n = 0
  for i = 1, 300000 do n = n + i end
  return deny { text = "counted " .. n }
end)
'''
        srv = self.serve({"50-busy.lua": busy}, config={"rule_limits": {"instructions": 10000000}})
        self.assertEqual(rcpt_text(srv)[0], 550)
        srv.config["rule_limits"] = {"instructions": 100000}
        srv.write_config()
        self.assertEqual(self.reload(srv)["event"], "reloaded")
        self.assertEqual(rcpt_text(srv), (451, "4.3.0 Temporary local problem, try again later"))


class LogTail:
    """Reads only what was appended to the log since last time."""

    def __init__(self, path):
        self.path, self.off = path, 0

    def new_events(self, *names):
        with open(self.path, "rb") as f:
            f.seek(self.off)
            data = f.read()
        end = data.rfind(b"\n") + 1
        self.off += end
        out = []
        for line in data[:end].decode(errors="replace").splitlines():
            for n in names:
                if " event=%s " % n in line or line.endswith(" event=" + n):
                    out.append((n, line))
        return out


def pss_kib(pid):
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1])
    raise AssertionError("no Pss for %d" % pid)


class ReloadUnderLoad(RulesTest):
    RELOADS = 50
    THREADS = 4
    # Each generation carries 4 MiB (a string a rule keeps), so one that is
    # never freed shows: the 40 reloads between the two samples would add
    # about 160 MiB (80 for the valid ones, 80 for the broken ones, which load
    # the ballast before they fail). Normal life holds at most three at once
    # (current, the one being loaded, an old one still finishing a session)
    # plus malloc's slack; 20 MiB is far above that noise and far below a leak.
    BALLAST = 'local ballast = string.rep("b", 4 * 1024 * 1024)\n' \
              'rule("connect", "ballast", function(s)\n' \
              '  if #ballast ~= 4 * 1024 * 1024 then return deny { text = "ballast" } end\n' \
              'end)\n'
    BOUND_KIB = 20 * 1024

    def test_fifty_reloads_under_load_fail_no_session_and_free_old_generations(self):
        srv = self.serve({"10-ballast.lua": self.BALLAST, "50-text.lua": text_rule("A0")})
        (pid,) = srv.worker_pids()
        tail = LogTail(srv.log_path)
        stop = threading.Event()
        sessions = [[] for _ in range(self.THREADS)]     # (t_connect, version, t_reply)
        failures = []

        def client(out):
            while not stop.is_set():
                t0 = time.monotonic()
                try:
                    with smtplib.SMTP("127.0.0.1", srv.port, local_hostname="load.example", timeout=20) as c:
                        c.ehlo()
                        c.mail("a@sender.test")
                        code, msg = c.rcpt("a@example.test")
                        t1 = time.monotonic()
                        msg = msg.decode()
                        if code != 550 or not msg.startswith("5.7.1 A"):
                            failures.append(("reply", code, msg))
                            continue
                        out.append((t0, int(msg[7:]), t1))
                        c.quit()
                except Exception as e:        # a refused, dropped or failed session
                    failures.append(("session", repr(e)))

        threads = [threading.Thread(target=client, args=(sessions[i],)) for i in range(self.THREADS)]
        for t in threads:
            t.start()
        self.addCleanup(stop.set)
        wait_for(lambda: all(len(s) > 3 for s in sessions), what="the clients to get going")

        version, sent, done = 0, {}, {}    # version -> monotonic time of SIGHUP / of its log event
        broken = [k for k in BROKEN if k != "load_loop"]
        samples = {}
        t_start = time.monotonic()
        for i in range(1, self.RELOADS + 1):
            valid = i % 2 == 1
            if valid:
                version += 1
                self.set_rules(srv, {"50-text.lua": text_rule("A%d" % version)})
                sent[version] = time.monotonic()
            else:
                self.set_rules(srv, {"50-text.lua": BROKEN[broken[i // 2 % len(broken)]][0]})
            srv.proc.send_signal(signal.SIGHUP)     # (srv.reload() reads the whole, long log)
            ev = wait_for(lambda: tail.new_events("reloaded", "reload_failed"), what="reload %d" % i)
            self.assertEqual([e[0] for e in ev], ["reloaded" if valid else "reload_failed"], ev)
            if valid:
                done[version] = time.monotonic()
            # The very next session answers with the newest valid text.
            self.assertEqual(rcpt_text(srv), (550, "5.7.1 A%d" % version), "after reload %d" % i)
            if i in (10, self.RELOADS):
                samples[i] = min(pss_kib(pid) for _ in range(5) if time.sleep(0.02) is None)
            time.sleep(0.05)                # sessions of this generation come and go
        elapsed = time.monotonic() - t_start
        stop.set()
        for t in threads:
            t.join(60)

        self.assertEqual(failures, [])
        total = sum(len(s) for s in sessions)
        self.assertGreater(total, self.RELOADS, "the clients hardly ran")
        for out in sessions:
            seen = [v for _, v, _ in out]
            self.assertEqual(seen, sorted(seen), "a text went backwards")
            for t_connect, v, t_reply in out:
                # Not older than what was in place when it connected, not newer
                # than what had been asked for by the time it was answered.
                floor = max([w for w, t in done.items() if t < t_connect], default=0)
                ceiling = max([w for w, t in sent.items() if t < t_reply], default=0)
                self.assertTrue(floor <= v <= ceiling, (floor, v, ceiling))
        self.assertEqual(max(v for s in sessions for _, v, _ in s), version)
        self.assertEqual(srv.events("rule_error"), [])
        self.assertEqual(srv.events("worker_died"), [])
        self.assertEqual(srv.worker_pids(), [pid])
        if os.environ.get("MXGATE_ASAN"):
            return      # ASan's quarantine holds freed memory on purpose: no RSS check there
        growth = samples[self.RELOADS] - samples[10]
        self.assertLess(growth, self.BOUND_KIB,
                        "worker Pss grew %d KiB from reload 10 to %d (%d sessions, %.1fs): "
                        "old generations are not freed" % (growth, self.RELOADS, total, elapsed))
