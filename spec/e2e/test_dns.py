"""engine/net/dns.c against real servers (NSD, rbldnsd), through spec/tools/dnsq.

Run: /usr/bin/python3 -m unittest spec.e2e.test_dns -v   (from the repo root,
after `make build/tools/dnsq`). MXGATE_BUILD names the build tree (default
"build"); DNSQ_WRAPPER prefixes every dnsq run, e.g.
DNSQ_WRAPPER="valgrind -q --leak-check=full --error-exitcode=99".
"""

import os
import queue
import shlex
import subprocess
import sys
import threading
import time
import unittest

try:
    from . import dnsserver, leftovers
except ImportError:     # imported by file path, not as spec.e2e
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import dnsserver
    import leftovers

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RUN_TIMEOUT = 60

EXAMPLE_ZONE = r"""
$ORIGIN example.test.
$TTL 300
@      IN SOA ns1 hostmaster 1 3600 600 86400 300
@      NS    ns1
ns1    A     127.0.0.1
www    A     192.0.2.1
www    A     192.0.2.2
www    AAAA  2001:db8::1
www    AAAA  2001:db8::2
alias  CNAME www
@      MX    20 mx-b
@      MX    10 mx-a
@      MX    30 mx-c
@      MX    10 mx-a2
@      TXT   "v=spf1 -all"
multi  TXT   "part one, " "part two"
multi  TXT   "second record"
evil   TXT   "bad\013\010250 injected"
long   TXT   "{a}" "{b}"
short  1     A 192.0.2.9
hour   3600  A 192.0.2.10
h1     A     192.0.2.11
h2     A     192.0.2.12
h3     A     192.0.2.13
""".format(a="a" * 200, b="b" * 200)
EXAMPLE_ZONE += "".join("many   A     192.0.2.%d\n" % (100 + i) for i in range(20))
# Worst preferences first, so keeping the best 16 means dropping early ones.
EXAMPLE_ZONE += "".join("mxmany MX    %d mx%d\n" % (100 - i, i) for i in range(20))

# SOA MINIMUM 1: RFC 2308 negative answers from here live one second.
SHORTNEG_ZONE = """
$ORIGIN shortneg.test.
$TTL 300
@      IN SOA ns1 hostmaster 1 3600 600 86400 1
@      NS    ns1
ns1    A     127.0.0.1
"""

REV4_ZONE = """
$ORIGIN 2.0.192.in-addr.arpa.
$TTL 300
@      IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300
@      NS    ns1.example.test.
1      PTR   www.example.test.
1      PTR   alt.example.test.
"""

REV6_ZONE = """
$ORIGIN 8.b.d.0.1.0.0.2.ip6.arpa.
$TTL 300
@      IN SOA ns1.example.test. hostmaster.example.test. 1 3600 600 86400 300
@      NS    ns1.example.test.
1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0 PTR www.example.test.
"""

ZONES = {
    "example.test": EXAMPLE_ZONE,
    "shortneg.test": SHORTNEG_ZONE,
    "2.0.192.in-addr.arpa": REV4_ZONE,
    "8.b.d.0.1.0.0.2.ip6.arpa": REV6_ZONE,
}


def dnsq_path():
    build = os.environ.get("MXGATE_BUILD", "build")
    path = os.path.join(build, "tools", "dnsq")
    if not os.path.isabs(path) and not os.path.exists(path):
        path = os.path.join(ROOT, path)
    return path


def dnsq_cmd(args):
    path = dnsq_path()
    if not os.path.exists(path):
        raise AssertionError("%s missing: run `make build/tools/dnsq`" % path)
    return shlex.split(os.environ.get("DNSQ_WRAPPER", "")) + [path] + list(args)


class Answer:
    """One dnsq line: NAME TYPE STATUS ttl=N|- RR... [cached]."""

    def __init__(self, line):
        self.line = line
        self.cached = line.endswith(" cached")
        words = shlex.split(line[:-len(" cached")] if self.cached else line)
        self.name, self.type, self.status = words[0], words[1], words[2]
        ttl = words[3].split("=", 1)[1]
        self.ttl = None if ttl == "-" else int(ttl)
        self.rrs = words[4:]

    def __repr__(self):
        return "Answer(%r)" % self.line


def parse(stdout):
    answers, stats = [], {}
    for line in stdout.splitlines():
        if line.startswith("stats "):
            stats = {k: int(v) for k, v in (w.split("=") for w in line.split()[1:])}
        elif line and line != "done":
            answers.append(Answer(line))
    return answers, stats


def run_dnsq(*args):
    """Runs one batch; returns (answers in callback order, stats)."""
    p = subprocess.run(dnsq_cmd(args), capture_output=True, text=True, timeout=RUN_TIMEOUT)
    if p.returncode != 0:
        raise AssertionError("dnsq %s: exit %d\n%s%s" % (" ".join(args), p.returncode,
                                                        p.stdout, p.stderr))
    return parse(p.stdout)


class DnsqSession:
    """dnsq --stdin: one batch per ask(), with the cache kept in between."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(dnsq_cmd(list(args[:-1]) + ["--stdin", args[-1]]),
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def ask(self, line):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        out = []
        while True:
            got = self.lines.get(timeout=RUN_TIMEOUT)
            if got is None:
                raise AssertionError("dnsq died: %s" % self.proc.stderr.read())
            if got == "done":
                return parse("\n".join(out))
            out.append(got)

    def one(self, line):
        answers, _ = self.ask(line)
        assert len(answers) == 1, answers
        return answers[0]

    def close(self):
        self.proc.stdin.close()
        rc = self.proc.wait(timeout=RUN_TIMEOUT)
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        if rc != 0:
            raise AssertionError("dnsq exit %d: %s" % (rc, err))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if exc[0] is None:
            self.close()
        else:
            self.proc.kill()
            self.proc.wait()
        return False


# spec/run.py runs each test on its own, without class or module fixtures:
# servers start on first use, are shared, and stop at exit (dnsserver's
# atexit) or in tearDownModule under plain unittest.
_servers = {}


def shared_server(key, factory):
    srv = _servers.get(key)
    if srv is None or srv.proc is None or srv.proc.poll() is not None:
        if srv is not None:
            srv.stop()
        srv = _servers[key] = factory()
        with leftovers.shared():
            srv.start()
    return srv.address


def tearDownModule():
    for srv in _servers.values():
        srv.stop()
    _servers.clear()


def poll_until(fn, seconds=10.0, every=0.05):
    """Calls fn until it returns something true; returns that or the last value."""
    deadline = time.monotonic() + seconds
    while True:
        got = fn()
        if got or time.monotonic() > deadline:
            return got
        time.sleep(every)


class NsdCase(unittest.TestCase):
    def setUp(self):
        self.server = shared_server("nsd", lambda: dnsserver.DnsServer(ZONES))

    def one(self, name, qtype, *opts):
        answers, _ = run_dnsq(*opts, self.server, name, qtype)
        self.assertEqual(len(answers), 1, answers)
        return answers[0]


class TestRecordTypes(NsdCase):
    def test_a_returns_every_address_with_its_ttl(self):
        a = self.one("www.example.test", "A")
        self.assertEqual((a.status, a.ttl), ("OK", 300))
        self.assertEqual(sorted(a.rrs), ["192.0.2.1", "192.0.2.2"])

    def test_aaaa_returns_addresses_as_text(self):
        a = self.one("www.example.test", "AAAA")
        self.assertEqual(a.status, "OK")
        self.assertEqual(sorted(a.rrs), ["2001:db8::1", "2001:db8::2"])

    def test_cname_is_followed(self):
        a = self.one("alias.example.test", "A")
        self.assertEqual(a.status, "OK")
        self.assertEqual(sorted(a.rrs), ["192.0.2.1", "192.0.2.2"])

    def test_mx_sorted_by_preference(self):
        a = self.one("example.test", "MX")
        self.assertEqual(a.status, "OK")
        prefs = [int(rr.split(":")[0]) for rr in a.rrs]
        self.assertEqual(prefs, [10, 10, 20, 30])
        self.assertEqual(set(a.rrs[:2]), {"10:mx-a.example.test", "10:mx-a2.example.test"})
        self.assertEqual(a.rrs[2:], ["20:mx-b.example.test", "30:mx-c.example.test"])

    def test_mx_keeps_the_sixteen_best_preferences(self):
        a = self.one("mxmany.example.test", "MX")
        self.assertEqual([rr.split(":")[0] for rr in a.rrs], [str(p) for p in range(81, 97)])

    def test_addresses_bounded_to_sixteen(self):
        a = self.one("many.example.test", "A")
        self.assertEqual(a.status, "OK")
        self.assertEqual(len(a.rrs), 16)
        self.assertTrue(set(a.rrs) <= {"192.0.2.%d" % (100 + i) for i in range(20)})

    def test_ptr_for_ipv4_lists_every_name(self):
        p = subprocess.run(dnsq_cmd(["--reverse", "192.0.2.1"]), capture_output=True, text=True)
        a = self.one(p.stdout.strip() + ".in-addr.arpa", "PTR")
        self.assertEqual(a.status, "OK")
        self.assertEqual(sorted(a.rrs), ["alt.example.test", "www.example.test"])

    def test_ptr_for_ipv6(self):
        p = subprocess.run(dnsq_cmd(["--reverse", "2001:db8::1"]), capture_output=True, text=True)
        a = self.one(p.stdout.strip() + ".ip6.arpa", "PTR")
        self.assertEqual((a.status, a.rrs), ("OK", ["www.example.test"]))

    def test_txt_joins_the_strings_of_each_record(self):
        a = self.one("multi.example.test", "TXT")
        self.assertEqual(a.status, "OK")
        self.assertEqual(sorted(a.rrs), ["part one, part two", "second record"])

    def test_txt_control_bytes_cannot_forge_reply_lines(self):
        a = self.one("evil.example.test", "TXT")
        self.assertEqual(a.rrs, ["bad??250 injected"])

    def test_txt_is_cut_at_the_record_buffer(self):
        a = self.one("long.example.test", "TXT")
        self.assertEqual(a.rrs, ["a" * 200 + "b" * 55])

    def test_nxdomain(self):
        a = self.one("nope.example.test", "A")
        self.assertEqual((a.status, a.rrs), ("NXDOMAIN", []))

    def test_nodata_when_the_name_has_other_types(self):
        a = self.one("www.example.test", "MX")
        self.assertEqual((a.status, a.rrs), ("NODATA", []))

    def test_max_ttl_clamps_what_is_reported(self):
        a = self.one("hour.example.test", "A", "--max-ttl", "60")
        self.assertEqual((a.status, a.ttl), ("OK", 60))

    @staticmethod
    def name_of_length(n):
        prefix, suffix = ".".join(["a" * 63] * 3), ".example.test"
        name = prefix + "." + "b" * (n - len(prefix) - 1 - len(suffix)) + suffix
        assert len(name) == n
        return name

    def test_overlong_names_fail_without_a_query(self):
        answers, stats = run_dnsq("--stats", self.server, self.name_of_length(254), "A",
                                  "a" * 64 + ".example.test", "A", "a..example.test", "A")
        self.assertEqual([a.status for a in answers], ["SERVFAIL"] * 3)
        self.assertEqual(stats["upstream"], 0)

    def test_253_character_name_is_asked(self):
        answers, stats = run_dnsq("--stats", self.server, self.name_of_length(253), "A",
                                  self.name_of_length(253) + ".", "AAAA")
        self.assertEqual([a.status for a in answers], ["NXDOMAIN"] * 2)
        self.assertEqual(stats["upstream"], 2)

    def test_server_list_with_ports_and_ipv6_brackets(self):
        port = self.server.rsplit(":", 1)[1]
        answers, _ = run_dnsq("127.0.0.1:%s,[::1]:%s" % (port, port), "www.example.test", "A")
        self.assertEqual(answers[0].status, "OK")

    def test_bad_server_list_is_refused(self):
        p = subprocess.run(dnsq_cmd(["bogus:53", "www.example.test", "A"]),
                           capture_output=True, text=True, timeout=RUN_TIMEOUT)
        self.assertEqual(p.returncode, 1)
        self.assertIn("bad server list", p.stderr)


class TestCache(NsdCase):
    def setUp(self):
        super().setUp()
        self._proxy = dnsserver.CountingProxy(self.server)
        self.proxy = self._proxy.start()

    def tearDown(self):
        self._proxy.stop()

    def test_repeated_batch_is_answered_from_cache(self):
        answers, stats = run_dnsq("--twice", "--stats", self.proxy,
                                  "www.example.test", "A", "nope.example.test", "A",
                                  "www.example.test", "MX")
        self.assertEqual([a.cached for a in answers], [False] * 3 + [True] * 3)
        self.assertEqual([a.status for a in answers[3:]], ["OK", "NXDOMAIN", "NODATA"])
        self.assertEqual(sorted(answers[3].rrs), ["192.0.2.1", "192.0.2.2"])
        self.assertEqual(self._proxy.count("www.example.test", "A"), 1)
        self.assertEqual(self._proxy.count("nope.example.test", "A"), 1)
        self.assertEqual(stats["cache_hits"], 3)

    def test_cache_entries_zero_disables_the_cache(self):
        answers, _ = run_dnsq("--twice", "--cache", "0", self.proxy, "www.example.test", "A")
        self.assertEqual([a.cached for a in answers], [False, False])
        self.assertEqual(self._proxy.count("www.example.test", "A"), 2)

    def test_names_are_cached_case_insensitively(self):
        with DnsqSession(self.proxy) as s:
            self.assertFalse(s.one("www.example.test A").cached)
            self.assertTrue(s.one("WWW.Example.TEST. A").cached)
        self.assertEqual(self._proxy.count("www.example.test", "A"), 1)

    def test_record_expires_after_its_ttl(self):
        with DnsqSession(self.proxy) as s:
            first = s.one("short.example.test A")
            self.assertEqual((first.status, first.ttl, first.cached), ("OK", 1, False))
            self.assertTrue(s.one("short.example.test A").cached)
            s.one("hour.example.test A")
            expired = poll_until(lambda: not s.one("short.example.test A").cached)
            self.assertTrue(expired, "TTL 1 record still cached after 10 s")
            self.assertTrue(s.one("hour.example.test A").cached)
        self.assertEqual(self._proxy.count("short.example.test", "A"), 2)

    def test_negative_answer_lives_for_the_soa_minimum(self):
        with DnsqSession("--neg-ttl", "3600", self.proxy) as s:
            self.assertFalse(s.one("nx.shortneg.test A").cached)
            self.assertFalse(s.one("nope.example.test A").cached)
            self.assertTrue(s.one("nope.example.test A").cached)
            expired = poll_until(lambda: not s.one("nx.shortneg.test A").cached)
            self.assertTrue(expired, "SOA minimum 1 ignored")
            # SOA minimum 300 here: still cached when the 1 s one expired.
            self.assertTrue(s.one("nope.example.test A").cached)

    def test_cache_is_bounded_and_evicts_least_recently_used(self):
        with DnsqSession("--cache", "2", self.proxy) as s:
            for h in ("h1", "h2", "h3"):
                self.assertFalse(s.one("%s.example.test A" % h).cached)
            self.assertTrue(s.one("h3.example.test A").cached)
            self.assertTrue(s.one("h2.example.test A").cached)
            self.assertFalse(s.one("h1.example.test A").cached)    # evicted by h3
            self.assertTrue(s.one("h2.example.test A").cached)
            self.assertFalse(s.one("h3.example.test A").cached)    # least recent
            _, stats = s.ask("stats")
        self.assertEqual(stats["cached"], 2)
        self.assertEqual(stats["evictions"], 3)
        self.assertEqual(self._proxy.count("h1.example.test", "A"), 2)


class TestCoalescing(NsdCase):
    def setUp(self):
        super().setUp()
        self._proxy = dnsserver.CountingProxy(self.server)
        self.proxy = self._proxy.start()

    def tearDown(self):
        self._proxy.stop()

    def test_identical_queries_in_flight_share_one_upstream_query(self):
        # Cache off: only coalescing can keep this to one query.
        names = ["www.example.test", "WWW.example.test", "www.EXAMPLE.test."]
        args = ["--cache", "0", "--stats", self.proxy]
        for n in names:
            args += [n, "A"]
        answers, stats = run_dnsq(*args)
        self.assertEqual([a.name for a in answers], names)      # waiters in order
        for a in answers:
            self.assertEqual((a.status, sorted(a.rrs)), ("OK", ["192.0.2.1", "192.0.2.2"]))
        self.assertEqual(self._proxy.count("www.example.test", "A"), 1)
        self.assertEqual((stats["upstream"], stats["coalesced"]), (1, 2))

    def test_different_types_are_not_merged(self):
        answers, _ = run_dnsq("--cache", "0", self.proxy, "www.example.test", "A",
                              "www.example.test", "AAAA")
        self.assertEqual(sorted(a.type for a in answers), ["A", "AAAA"])
        self.assertEqual(self._proxy.count("www.example.test", "A"), 1)
        self.assertEqual(self._proxy.count("www.example.test", "AAAA"), 1)


class TestFailures(unittest.TestCase):
    def test_silent_server_times_out_and_is_not_cached(self):
        with dnsserver.Blackhole() as hole:
            answers, stats = run_dnsq("--twice", "--stats", "--timeout", "0.3", "--tries", "1",
                                      hole, "www.example.test", "A")
        self.assertEqual([(a.status, a.cached) for a in answers],
                         [("TIMEOUT", False), ("TIMEOUT", False)])
        self.assertEqual(stats["timeouts"], 2)

    def test_failure_inside_ares_query_reaches_the_caller_once(self):
        # Linux refuses a UDP send to broadcast: c-ares fails the query
        # before ares_query() returns, so the callback runs inside it.
        answers, stats = run_dnsq("--stats", "255.255.255.255:53",
                                  "www.example.test", "A", "www.example.test", "A")
        self.assertEqual([(a.status, a.cached) for a in answers],
                         [("SERVFAIL", True), ("SERVFAIL", True)])
        self.assertEqual((stats["upstream"], stats["cache_hits"], stats["inflight"]), (2, 0, 0))

    def test_dns_free_fails_lookups_in_flight_once_each(self):
        with dnsserver.Blackhole() as hole:
            answers, _ = run_dnsq("--abandon", "--timeout", "30", hole, "a.example.test", "A",
                                  "a.example.test", "A", "b.example.test", "MX")
        self.assertEqual([(a.name, a.status) for a in answers],
                         [("a.example.test", "SERVFAIL"), ("a.example.test", "SERVFAIL"),
                          ("b.example.test", "SERVFAIL")])


class TestFreeFromCallback(NsdCase):
    def test_dns_free_inside_a_callback_is_deferred(self):
        answers, _ = run_dnsq("--free-in-callback", self.server, "www.example.test", "A",
                              "h1.example.test", "A", "www.example.test", "A",
                              "h2.example.test", "A")
        self.assertEqual(len(answers), 4)
        self.assertEqual(answers[0].status, "OK")
        self.assertEqual(sorted(a.name for a in answers),
                         sorted(["www.example.test", "www.example.test",
                                 "h1.example.test", "h2.example.test"]))
        for a in answers:
            self.assertIn(a.status, ("OK", "SERVFAIL"))


class TestRbldnsd(unittest.TestCase):
    def setUp(self):
        self.server = shared_server("rbldnsd", lambda: dnsserver.Rbldnsd(
            {"zen.test": ("ip4set", ":127.0.0.2:Listed $\n127.0.0.2\n")}))

    def test_listed_address_answers_127_0_0_2(self):
        answers, _ = run_dnsq(self.server, "2.0.0.127.zen.test", "A", "2.0.0.127.zen.test", "TXT")
        by_type = {a.type: a for a in answers}
        self.assertEqual((by_type["A"].status, by_type["A"].rrs), ("OK", ["127.0.0.2"]))
        self.assertEqual(by_type["TXT"].rrs, ["Listed 127.0.0.2"])

    def test_unlisted_address_is_nxdomain(self):
        answers, _ = run_dnsq(self.server, "3.0.0.127.zen.test", "A")
        self.assertEqual(answers[0].status, "NXDOMAIN")


class TestReverseName(unittest.TestCase):
    def reverse(self, ip):
        p = subprocess.run(dnsq_cmd(["--reverse", ip]), capture_output=True, text=True,
                           timeout=RUN_TIMEOUT)
        return p.returncode, p.stdout.strip()

    def test_ipv4_octets_reversed(self):
        self.assertEqual(self.reverse("192.0.2.1"), (0, "1.2.0.192"))

    def test_ipv6_nibbles_reversed(self):
        self.assertEqual(self.reverse("2001:db8::1"),
                         (0, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2"))

    def test_invalid_addresses_rejected(self):
        for bad in ("192.0.2", "192.0.2.256", "01.2.3.4", "2001:db8::g", "1.2.3.4 ", "", "::1%lo"):
            self.assertEqual(self.reverse(bad)[0], 1, bad)


if __name__ == "__main__":
    unittest.main()
