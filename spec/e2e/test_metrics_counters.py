"""Counters checked exactly after known scenarios: N rejections of reason R
make mxgate_replies_total{reason=R} go up by N; rule errors, budget hits,
lookups, commits, reloads, sessions, the queue and deliveries are counted
where they happen, summed over workers, and never go back when a worker is
killed and restarted."""
import os
import signal
import smtplib
import socket

from spec.e2e import smtpservers as ss
from spec.e2e.harness import MxgateTest, wait_for
from spec.e2e.metricsserver import HttpServer, HttpTest, value

RULES = {"10-metrics.lua": '''\
rule("rcpt", "by_local_part", function(s)
  local how = s.rcpt:match("^(.-)@")
  if how == "deny" then return deny("not_hosted") end
  if how == "defer" then return defer("greylisted") end
  if how == "boom" then error("boom") end
  if how == "loop" then while true do end end
  if how == "dns" then dns("name.invalid", "a") end
  if how == "dnsbl" then dns("4.3.2.1.bl.invalid", "a") end
  if how == "grey" then greylist(s.ip, s.sender, s.rcpt, { delay = 0 }) end
  if how == "callout" then callout(s.rcpt, "127.0.0.1:1") end
  return accept()
end)
'''}


def rcpt_codes(srv, rcpts, direction="inbound"):
    codes = []
    with srv.smtp(direction) as c:
        c.ehlo()
        c.mail("bob@sender.test")
        for r in rcpts:
            codes.append(c.rcpt(r)[0])
        c.rset()
    return codes


class ReplyCounters(HttpTest):
    RULES = RULES
    WORKERS = 2

    def setUp(self):
        # A resolver that never answers: lookups end in a timeout after 0.2 s.
        self.silent = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.silent.bind(("127.0.0.1", 0))
        self.addCleanup(self.silent.close)
        self.CONFIG = {"dns": '{ servers = "127.0.0.1:%d", timeout = 0.2, tries = 1 }' % self.silent.getsockname()[1]}
        super().setUp()

    def test_n_rejections_of_a_reason_count_n(self):
        before = self.server.metrics()
        codes = rcpt_codes(self.server, ["deny@example.test"] * 3 + ["defer@example.test"] * 2 +
                           ["ok@example.test"])
        self.assertEqual(codes, [550, 550, 550, 451, 451, 250])
        after = self.server.metrics()

        def delta(**labels):
            return value(after, "mxgate_replies_total", **labels) - value(before, "mxgate_replies_total", **labels)
        self.assertEqual(delta(stage="rcpt", **{"class": "5xx"}, reason="not_hosted"), 3)
        self.assertEqual(delta(stage="rcpt", **{"class": "4xx"}, reason="greylisted"), 2)
        self.assertEqual(delta(stage="rcpt", **{"class": "2xx"}, reason=""), 1)

    def test_every_reply_of_a_session_is_counted_by_stage(self):
        before = self.server.metrics()
        with self.server.smtp() as c:
            c.ehlo()
            c.mail("bob@sender.test")
            c.rcpt("ok@example.test")
            c.data(b"Subject: x\r\n\r\nx\r\n")
        after = self.server.metrics()
        lis = f"127.0.0.1:{self.server.port}"
        self.assertEqual(value(after, "mxgate_sessions_total", direction="inbound", listener=lis) -
                         value(before, "mxgate_sessions_total", direction="inbound", listener=lis), 1)
        d = lambda st: (value(after, "mxgate_replies_total", stage=st, **{"class": "2xx"}, reason="") -
                        value(before, "mxgate_replies_total", stage=st, **{"class": "2xx"}, reason=""))
        self.assertEqual(d("connect"), 1)       # 220
        self.assertEqual(d("helo"), 1)          # 250 EHLO
        self.assertEqual(d("mail"), 1)
        self.assertEqual(d("rcpt"), 1)
        self.assertEqual(d("data"), 1)          # 250 queued (the 354 is predata's, 3xx)
        self.assertEqual(value(after, "mxgate_replies_total", stage="predata", **{"class": "3xx"}, reason="") -
                         value(before, "mxgate_replies_total", stage="predata", **{"class": "3xx"}, reason=""), 1)
        self.assertEqual(value(after, "mxgate_spool_commit_duration_seconds_count") -
                         value(before, "mxgate_spool_commit_duration_seconds_count"), 1)

    def test_rule_errors_and_budget_hits_are_counted_by_cause(self):
        before = self.server.metrics()
        codes = rcpt_codes(self.server, ["boom@example.test"] * 2 + ["loop@example.test"])
        self.assertEqual(codes, [451, 451, 451])
        after = self.server.metrics()
        d = lambda cause: (value(after, "mxgate_rule_errors_total", cause=cause) -
                           value(before, "mxgate_rule_errors_total", cause=cause))
        self.assertEqual(d("error"), 2)
        self.assertEqual(d("instructions"), 1)
        self.assertEqual(value(after, "mxgate_replies_total", stage="rcpt", **{"class": "4xx"}, reason="rule_error") -
                         value(before, "mxgate_replies_total", stage="rcpt", **{"class": "4xx"}, reason="rule_error"), 3)

    def test_lookups_land_in_their_histograms(self):
        before = self.server.metrics()
        rcpt_codes(self.server, ["dns@example.test", "dnsbl@example.test", "dnsbl@example.test",
                                 "grey@example.test", "callout@example.test"])
        after = self.server.metrics()
        d = lambda h: value(after, h + "_count") - value(before, h + "_count")
        self.assertEqual(d("mxgate_dns_lookup_duration_seconds"), 1)
        # The second is a cached negative answer, or a second timeout: one each way.
        self.assertEqual(d("mxgate_dnsbl_lookup_duration_seconds"), 2)
        self.assertEqual(d("mxgate_state_call_duration_seconds"), 1)
        self.assertEqual(d("mxgate_callout_duration_seconds"), 1)
        # The timed-out lookup took at least the resolver's 0.2 s.
        self.assertEqual(value(after, "mxgate_dns_lookup_duration_seconds_bucket", le="0.1") -
                         value(before, "mxgate_dns_lookup_duration_seconds_bucket", le="0.1"), 0)
        self.assertGreaterEqual(value(after, "mxgate_dns_lookup_duration_seconds_sum") -
                                value(before, "mxgate_dns_lookup_duration_seconds_sum"), 0.15)

    def test_journal_bytes_are_counted(self):
        before = value(self.server.metrics(), "mxgate_journal_written_bytes_total")
        rcpt_codes(self.server, ["ok@example.test"])
        jdir = os.path.join(self.server.dir, "var/journal")
        size = lambda: sum(os.path.getsize(os.path.join(jdir, f)) for f in os.listdir(jdir))
        wait_for(lambda: value(self.server.metrics(), "mxgate_journal_written_bytes_total") > before,
                 what="journal bytes counted")
        self.assertEqual(value(self.server.metrics(), "mxgate_journal_written_bytes_total"), size())


class LateAccept(HttpServer):
    """A server whose workers are stopped while the harness probes its SMTP
    ports, as a loaded machine can leave them unscheduled: the probes wait
    in the listen backlog. The workers go on right after the second look at
    the server once it has started (its log or /metrics): had quiet()
    returned after one look, the second is the test's baseline."""

    def __init__(self, *a, **kw):
        super().__init__(*a, **kw)
        self.stopped = []
        self.looks = None           # counted from the end of start()

    def _connectable(self, port):
        if port != self.http_port and not self.stopped:
            self.stopped = self.worker_pids()
            for pid in self.stopped:
                os.kill(pid, signal.SIGSTOP)
        return HttpServer._connectable(port)

    def resume(self):
        for pid in self.stopped:
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass

    def _looked(self):
        if self.looks is not None:
            self.looks += 1
            if self.looks == 2:
                self.resume()

    def log_lines(self):
        lines = super().log_lines()
        self._looked()
        return lines

    def get(self, *a, **kw):
        got = super().get(*a, **kw)
        self._looked()
        return got


class Baseline(MxgateTest):
    """quiet() is the still point a test's baseline is read at, however late
    the workers take the harness's start-up probes."""

    def setUp(self):
        self.server = LateAccept({}, workers=2)
        self.addCleanup(self.server.cleanup)
        self.addCleanup(self.server.stop)
        self.addCleanup(self.server.resume)     # first: a stopped worker would not stop
        self.server.start()

    def test_the_start_up_probes_are_in_the_baseline_even_when_accepted_late(self):
        srv = self.server
        self.assertEqual(len(srv.stopped), 2)
        srv.looks = 0
        srv.quiet()
        before = srv.metrics()
        self.assertGreaterEqual(srv.looks, 2)     # the workers went on
        # All a session counts is in once its "close" line is.
        wait_for(lambda: len(srv.events("close")) >= len(srv.ports), what="the probes' sessions closed")
        after = srv.metrics()
        for d, p in srv.ports.items():
            self.assertEqual(value(before, "mxgate_sessions_total", direction=d, listener=f"127.0.0.1:{p}"), 1)
        greetings = lambda m: value(m, "mxgate_replies_total", stage="connect", **{"class": "2xx"}, reason="")
        self.assertEqual(greetings(before), len(srv.ports))
        self.assertEqual(greetings(after), greetings(before))


class ManyReasons(HttpTest):
    RULES = {"10-many.lua": "".join(
        f'reason("k{i}", {{ code = 550, enhanced = "5.7.1", text = "key {i}" }})\n' for i in range(1, 201)) +
        "local keys = {}\nfor i = 1, 200 do keys[i] = \"k\" .. i end\n" + '''\
rule("rcpt", "many", function(s)
  local n = tonumber(s.rcpt:match("^k(%d+)@"))
  if n then return deny(keys[n]) end
  return accept()
end)
'''}

    def test_reason_keys_past_the_table_count_as_other(self):
        rcpts = [f"k{i}@example.test" for i in range(1, 201)]
        for i in range(0, 200, 50):
            rcpt_codes(self.server, rcpts[i:i + 50])
        m = self.server.metrics()
        per_reason = {dict(k[1])["reason"]: v for k, v in m.items()
                      if k[0] == "mxgate_replies_total" and dict(k[1])["class"] == "5xx"}
        named = {r for r in per_reason if r.startswith("k")}
        self.assertEqual(len(named), 126)
        self.assertEqual(sum(per_reason.values()), 200)
        self.assertEqual(per_reason["other"], 200 - 126)


class Restarts(HttpTest):
    WORKERS = 1

    def test_counters_do_not_go_back_when_a_worker_is_killed(self):
        lis = f"127.0.0.1:{self.server.port}"
        total = lambda: value(self.server.metrics(), "mxgate_sessions_total", direction="inbound", listener=lis)
        base = total()
        for _ in range(3):
            rcpt_codes(self.server, ["a@example.test"])
        self.assertEqual(total(), base + 3)
        c = smtplib.SMTP("127.0.0.1", self.server.port, timeout=30)    # open while the worker dies
        c.ehlo()
        wait_for(lambda: value(self.server.metrics(), "mxgate_sessions_open", direction="inbound", listener=lis) == 1,
                 what="one session open")
        pid = self.server.worker_pids()[0]
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: self.server.log_has("worker_died"), what="worker_died")
        wait_for(lambda: len(self.server.events("worker_start")) >= 2, what="a new worker")
        c.close()
        m = self.server.metrics()
        self.assertEqual(value(m, "mxgate_sessions_total", direction="inbound", listener=lis), base + 4)
        self.assertEqual(value(m, "mxgate_sessions_open", direction="inbound", listener=lis), 0)
        rcpt_codes(self.server, ["a@example.test"])
        wait_for(lambda: total() == base + 5,
                 what="the new worker's session added to the old count")


class QueueMetrics(HttpTest):
    """The delivery process's gauges: a message its next hop refuses for now
    stays deferred, and its age grows at each scrape though nothing moves."""

    def setUp(self):
        self.down = ss.defer_rcpt()
        self.down.start()
        self.addCleanup(self.down.stop)
        self.ok = ss.accept_all()
        self.ok.start()
        self.addCleanup(self.ok.stop)
        self.CONFIG = {
            "delivery": '{ retry_min = 30, retry_max = 60, connect_timeout = 2, command_timeout = 3 }',
            "hosted_domains": '{ ["slow.test"] = { route = "%s" }, ["fine.test"] = { route = "%s" } }' % (
                self.down.address, self.ok.address),
        }
        super().setUp()
        wait_for(lambda: self.server.events("delivery_start"), what="the delivery process")

    def test_queue_by_state_oldest_age_and_deliveries(self):
        with self.server.smtp() as c:
            c.sendmail("a@sender.test", ["x@slow.test"], b"Subject: 1\r\n\r\n1\r\n")
            c.sendmail("a@sender.test", ["y@fine.test", "z@fine.test"], b"Subject: 2\r\n\r\n2\r\n")
        m = wait_for(lambda: (lambda m: m if value(m, "mxgate_deliveries_total", result="delivered") == 2 and
                              value(m, "mxgate_deliveries_total", result="deferred") == 1 and
                              value(m, "mxgate_queue_messages", state="deferred") == 1 else None)(
            self.server.metrics()), what="2 delivered, 1 deferred and queued")
        self.assertEqual(value(m, "mxgate_queue_messages", state="active"), 0)
        self.assertEqual(value(m, "mxgate_deliveries_total", result="bounced"), 0)
        age = value(m, "mxgate_queue_oldest_message_age_seconds")
        self.assertGreater(age, 0)
        # Nothing is delivered meanwhile, and the age still grows.
        wait_for(lambda: value(self.server.metrics(), "mxgate_queue_oldest_message_age_seconds") >= age + 1,
                 what="the age to grow")


class Reloads(HttpTest):
    RULES = RULES
    WORKERS = 2

    def test_reloads_by_result_and_generations_alive(self):
        m = self.server.metrics()
        self.assertEqual(value(m, "mxgate_rule_generations_alive"), 2)     # one per worker
        with open(self.server.conf_path, "a") as f:
            f.write("limits = 5\n")                                         # the master refuses it
        self.server.reload()
        wait_for(lambda: self.server.log_has("reload_failed"), what="reload_failed")
        m = wait_for(lambda: (lambda m: m if value(m, "mxgate_reloads_total", result="failed") == 1 else None)(
            self.server.metrics()), what="the failed reload counted")
        self.assertEqual(value(m, "mxgate_reloads_total", result="ok"), 0)
        self.assertEqual(value(m, "mxgate_rule_generation"), 1)
        self.server.write_config()                                          # fixed
        self.server.reload()
        m = wait_for(lambda: (lambda m: m if value(m, "mxgate_reloads_total", result="ok") == 2 else None)(
            self.server.metrics()), what="both workers' reloads counted")
        self.assertEqual(value(m, "mxgate_rule_generation"), 2)
        # The old generations go once no session holds them.
        wait_for(lambda: value(self.server.metrics(), "mxgate_rule_generations_alive") == 2,
                 what="the old generations freed")
