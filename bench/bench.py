#!/usr/bin/python3
"""mxgate beside Postfix 3.7's smtpd on this machine: `make bench`.

Both servers accept mail for one domain (bench.test) into their queue and
deliver nothing: Postfix holds every message (check_recipient_access
static:HOLD: cleanup fsyncs it into queue/hold), mxgate spools it under
state_dir/spool/.  Load comes from Postfix's smtp-source over 127.0.0.1;
smtp-sink (accepts, writes nothing) is measured as a ceiling at 20 sessions.

Metrics: messages/s at 1, 20 and 100 concurrent reused sessions
(smtp-source -d), new connections/s (one message per connection, 20 in
parallel), and private memory per idle session (1000 sessions after EHLO).
Variants state the cost of a feature against a ref, measured interleaved:
the Lua path (empty and 10-rules-per-hook rulesets, journal), DNSBL
look-ups on a real rbldnsd (beside Postfix's reject_rbl_client), greylisting
for an allowed client; and bench/hook_bench.c times one hook call.
See bench/README.md.  Results: table on stdout, JSON under /tmp.
"""
import argparse
import atexit
import datetime
import glob
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import idle      # noqa: E402
import mxgate as mxgate_mod   # noqa: E402
import postfix   # noqa: E402
import procs     # noqa: E402
import rbl       # noqa: E402
import rulesets  # noqa: E402
from mxgate import MxgateServer   # noqa: E402
from postfix import PostfixServer, SetupError, SmtpSink   # noqa: E402

WORK = os.environ.get("MXGATE_BENCH_DIR", "/tmp/mxgate-bench")
DOMAIN = "bench.test"
RCPT = f"user@{DOMAIN}"
SENDER = "sender@client.test"

T0 = time.monotonic()


def log(msg):
    print(f"[bench +{time.monotonic() - T0:5.1f}s] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------
# Metrics and variants

class Metric:
    def __init__(self, key, label, unit, higher_better, sessions=None, reuse=None):
        self.key, self.label, self.unit = key, label, unit
        self.higher_better = higher_better
        self.sessions, self.reuse = sessions, reuse


METRICS = [
    Metric("msgs_1", "msgs/s, 1 session (reused conn)", "msg/s", True, 1, True),
    Metric("msgs_20", "msgs/s, 20 sessions (reused conns)", "msg/s", True, 20, True),
    Metric("msgs_100", "msgs/s, 100 sessions (reused conns)", "msg/s", True, 100, True),
    Metric("conns_20", "new conns/s, 20 parallel (1 msg/conn)", "conn/s", True, 20, False),
    Metric("idle_mem", "private KiB per idle session (after EHLO)", "KiB", False),
]
MBYKEY = {m.key: m for m in METRICS}
# Execution order of the load points: the 100-session point last, so the
# smtpd processes it leaves idle in Postfix do not sit under the other runs.
TPUT_ORDER = ["msgs_1", "msgs_20", "conns_20", "msgs_100"]


class Variant:
    """One benchmark row group.

    mxgate:  overrides merged into the mxgate Lua config (nested dicts merge).
    postfix: main.cf overrides for Postfix's counterpart, or None to compare
             against the baseline Postfix numbers (no extra Postfix run).
    metrics: metric keys to run for this variant.
    interleave: measured in the interleaved matrix (measure_matrix): every
             such server runs at once, and each round gives every one of
             them one timed run, so a variant and its ref are measured
             seconds apart, under the same load from the rest of the machine.
    ref:     the variant this one's cost is stated against (paired rounds).
    target:  the largest acceptable cost (0.10: at least 90% of ref's rate).
    dns:     mxgate's resolver is pointed at the bench's rbldnsd; "postfix"
             also runs Postfix with it as nameserver (rbl.py).
    setup:   fn(server, ctx) run once the mxgate server answers, before any
             load (e.g. pre-allow a greylisting client).
    outbound: mxgate also listens on an outbound port, and every load is
             split evenly between the two listeners: one smtp-source per
             listener, each with half the sessions and half the messages.
    """

    def __init__(self, name, mxgate=None, postfix=None, metrics=None, default=True,
                 note="", interleave=False, ref=None, target=None, issue="",
                 dns=None, setup=None, kind="load", outbound=False):
        self.name = name
        self.mxgate = mxgate or {}
        self.postfix = postfix
        self.metrics = metrics or [m.key for m in METRICS]
        self.default = default
        self.note = note
        self.interleave, self.ref, self.target = interleave, ref, target
        self.issue, self.dns, self.setup, self.kind = issue, dns, setup, kind
        self.outbound = outbound


# Rule sets of the Lua-path variants, written by rulesets.write() at start.
RULESETS = os.path.join(WORK, "rulesets")
RULES_D = os.path.join(REPO, "rules.d")
NOJOURNAL = {"journal": False}
JOURNAL = {"journal": {"sample": 1}}
# The default ruleset (rules.d/) with everything that needs another server
# turned off: no recipient callout, no sender verification, no greylisting,
# no DNSBL zone (dnsbl = {} is the default).
RULES_NONET = {"rules": RULES_D, "journal": False,
               "hosted_domains": {DOMAIN: {"callout": False, "greylist": False}},
               "greylist": False, "verify_sender": {"enabled": False}}
# ZEN-like: spamhaus = true makes 50-dnsbl.lua's three rules (XBL, PBL,
# other) each check the zone, as they do for zen.spamhaus.org: three dns()
# calls per RCPT (one lookup, then cache hits), plus the connect-time
# prefetch of 05-connect.lua.
DNSBL = dict(RULES_NONET, dnsbl=[{"zone": "zen.test", "spamhaus": True}])
DNSBL_TTL0 = dict(RULES_NONET, dnsbl=[{"zone": "zen0.test", "spamhaus": True}])
GREYLIST = {"rules": RULES_D, "journal": False,
            "hosted_domains": {DOMAIN: {"callout": False}},
            "greylist": {"delay": 1}, "verify_sender": {"enabled": False}}


def _preallow(server, ctx):
    return preallow_greylist(server)


# issue 13, as it words the load: greylisting on for a pre-allowed client
# and a sender rate limit on the outbound listener. The shipped rules.d/
# (80-greylist.lua on the inbound listener, 60-ratelimit.lua on the
# outbound one, 127.0.0.0/8 a relay network), the load split evenly between
# the two listeners (Variant outbound=True): an inbound message asks
# greylist() at RCPT, an outbound one ratelimit() at MAIL (a limit never
# reached). No state: the same without greylisting and the rate limit.
# The store is LMDB, or a redis-server the bench starts (its own port and
# directory). The -both variants ask both on every message instead (the
# bench/rulesets.py "state" ruleset on the inbound listener).
REDIS_PORT = postfix.free_port(6390, set())
STATE_NONE = dict(RULES_NONET, relay_networks=["127.0.0.0/8"])
STATE_LMDB = dict(STATE_NONE, hosted_domains={DOMAIN: {"callout": False}}, greylist={"delay": 1},
                  ratelimit={"sender": {"limit": 1e9, "period": 3600}})
REDIS_TCP = {"backend": "redis", "server": f"127.0.0.1:{REDIS_PORT}", "timeout": 2}
STATE_REDIS = dict(STATE_LMDB, state=REDIS_TCP)
REDIS_SOCKET = os.path.join(WORK, "redis.sock")
STATE_REDIS_UNIX = dict(STATE_LMDB, state=dict(REDIS_TCP, server="unix:" + REDIS_SOCKET))
STATE_BOTH_LMDB = dict(NOJOURNAL, rules=os.path.join(RULESETS, "state"), greylist={"delay": 1})
STATE_BOTH_REDIS = dict(STATE_BOTH_LMDB, state=REDIS_TCP)
REDIS = None          # the bench's redis-server, started when a variant needs it


def redis_commands():
    """INFO commandstats of the bench's Redis: {command: (calls, µs spent in it)}."""
    out = REDIS.cli("INFO", "commandstats") if REDIS else ""
    calls = {}
    for line in out.splitlines():
        if line.startswith("cmdstat_"):
            name, _, rest = line[8:].partition(":")
            calls[name] = (int(rest.split("calls=")[1].split(",")[0]),
                           int(rest.split("usec=")[1].split(",")[0]))
    return calls


def redis_snapshot():
    """({command: (calls, µs)}, redis-server CPU seconds user+sys) now."""
    cpu = 0.0
    for line in (REDIS.cli("INFO", "cpu") if REDIS else "").splitlines():
        k, _, v = line.partition(":")
        if k in ("used_cpu_sys", "used_cpu_user"):
            cpu += float(v)
    return redis_commands(), cpu


class RedisTally:
    """What the bench's Redis did during one server's timed runs (read
    before and after each, outside the timed window): commands by name,
    messages, CPU seconds."""
    SETUP = {"info", "config", "ping", "script|load", "script", "auth", "select", "command"}

    def __init__(self):
        self.calls, self.usec, self.msgs, self.cpu = {}, {}, 0, 0.0

    def add(self, before, after, messages):
        (c0, u0), (c1, u1) = before, after
        for k, (n, us) in c1.items():
            n0, us0 = c0.get(k, (0, 0))
            if k not in self.SETUP and n - n0:
                self.calls[k] = self.calls.get(k, 0) + n - n0
                self.usec[k] = self.usec.get(k, 0) + us - us0
        self.msgs += messages
        self.cpu += max(0.0, u1 - u0)

    def result(self, outbound_share):
        m = self.msgs
        n = sum(self.calls.values())
        # A script's own GET/SET count as commands; round trips are the
        # commands mxgate sent (EVALSHA, EVAL, and any plain GET/SET of its own
        # would be among n too: the scripts are the only thing it sends here).
        trips = self.calls.get("evalsha", 0) + self.calls.get("eval", 0)
        r = {"commands": dict(sorted(self.calls.items())), "messages": m,
             "commands_per_message": round(n / m, 3) if m else None,
             "round_trips_per_message": round(trips / m, 3) if m else None,
             # time inside the command (a script's own GET/SET included), as INFO
             # commandstats counts it: what the script costs, apart from the I/O
             "usec_per_call": {k: round(self.usec[k] / c, 2) for k, c in
                               sorted(self.calls.items()) if c},
             "redis_cpu_us_per_message": round(1e6 * self.cpu / m, 1) if m else None}
        if outbound_share and m:
            r["round_trips_per_outbound_message"] = round(trips / (m * outbound_share), 3)
        return r


# issue 14: the rules row again with the HTTP listener on (shared-memory
# counters incremented on every reply) while a client scrapes /metrics
# every second for the whole matrix.
METRICS_PORT = postfix.free_port(18025, set())
METRICS_ON = dict(RULES_NONET, http={"address": "127.0.0.1", "port": METRICS_PORT})


def _scrape(server, ctx=None):
    """A scraper thread: GET /metrics once a second until the bench exits."""
    import threading
    import urllib.request
    url = f"http://127.0.0.1:{METRICS_PORT}/metrics"
    stats = {"ok": 0, "failed": 0}

    def loop():
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5) as r:
                    r.read()
                stats["ok"] += 1
            except OSError:
                stats["failed"] += 1
            time.sleep(1)
    threading.Thread(target=loop, daemon=True).start()
    return f"scraping {url} every second"


M20 = ["msgs_20"]
# The DNSBL rows also at one message per connection: every message is a
# new session, so the connect-time prefetch and the per-session look-up
# happen for every message.
M20C = ["msgs_20", "conns_20"]

VARIANTS = [
    Variant("baseline", mxgate={}, postfix={},
            note="built-in C policy (rules=false) vs Postfix with no restrictions but HOLD"),
    # --- issue 3: the Lua path.  (a) is c-nojournal.
    Variant("c-nojournal", mxgate=NOJOURNAL, metrics=M20, interleave=True,
            note="(a) built-in C policy, rules=false, journal=false: the reference"),
    Variant("c-aa", mxgate=NOJOURNAL, metrics=M20, interleave=True, ref="c-nojournal",
            note="A/A check: (a) again, as a second instance; its ratio to (a) is the "
            "harness's own error"),
    Variant("c-journal", mxgate=JOURNAL, metrics=M20, interleave=True, ref="c-nojournal",
            note="C policy with the session journal on (journal = { sample = 1 })"),
    Variant("lua-empty", mxgate=dict(NOJOURNAL, rules=os.path.join(RULESETS, "empty")),
            metrics=M20, interleave=True, ref="c-nojournal", target=0.10,
            issue="issue 3 (b) empty ruleset",
            note="(b) Lua rules: only rcpt -> accept() (bench/rulesets.py)"),
    Variant("lua-10x7", mxgate=dict(NOJOURNAL, rules=os.path.join(RULESETS, "lookups10")),
            metrics=M20, interleave=True, ref="c-nojournal", target=0.10,
            issue="issue 3 (c) 10 look-up rules per hook",
            note="(c) 10 table look-up rules on each of 7 hooks + rcpt accept"),
    Variant("lua-10x7-journal", mxgate=dict(JOURNAL, rules=os.path.join(RULESETS, "lookups10")),
            metrics=M20, interleave=True, ref="lua-10x7",
            note="(c) with the journal on: the journal's cost on the Lua path"),
    # --- issues 4 and 5: the default ruleset with and without its look-ups.
    Variant("rules", mxgate=RULES_NONET, postfix={}, metrics=M20C, interleave=True,
            ref="c-nojournal",
            note="rules.d/ with callout, verify_sender, greylist off and no DNSBL zone; "
            "Postfix as in baseline, measured in the same rounds"),
    Variant("dnsbl", mxgate=DNSBL, dns="postfix", metrics=M20C, interleave=True,
            postfix={"smtpd_client_restrictions": "reject_rbl_client zen.test"},
            ref="rules", target=0.10, issue="issue 4 DNSBL look-ups",
            note="rules + dnsbl zen.test (ZEN-like: 3 rules) on rbldnsd, client not "
            "listed; Postfix: reject_rbl_client zen.test, same rbldnsd"),
    Variant("dnsbl-nocache", mxgate=DNSBL_TTL0, dns="mxgate", metrics=["conns_20"],
            interleave=True, ref="rules",
            note="as dnsbl, one message per connection, and the zone has TTL 0: mxgate "
            "caches nothing, every connection asks rbldnsd (prefetched at connect, "
            "awaited at RCPT). On reused sessions 50-dnsbl.lua asks once per session "
            "whatever the TTL; Postfix's RBL cache ignores TTLs, so no Postfix row"),
    Variant("state-none", mxgate=STATE_NONE, metrics=M20, interleave=True, outbound=True,
            note="rules.d/ as in rules, 127.0.0.0/8 a relay network, no greylisting, no rate "
            "limit; half the sessions on the inbound listener, half on the outbound one"),
    Variant("state-lmdb", mxgate=STATE_LMDB, setup=_preallow, metrics=M20, interleave=True,
            outbound=True, ref="state-none", issue="issue 13 state (LMDB)",
            note="state-none + greylisting for a pre-allowed client (inbound) and a sender "
            "rate limit (outbound), on LMDB"),
    Variant("state-redis", mxgate=STATE_REDIS, setup=_preallow, metrics=M20, interleave=True,
            outbound=True, ref="state-lmdb", target=0.10,
            issue="issue 13 state on Redis (>= 0.9x LMDB)",
            note="the same on a local redis-server over TCP (state.backend = redis); Redis "
            "commands per message from INFO commandstats"),
    Variant("state-redis-unix", mxgate=STATE_REDIS_UNIX, setup=_preallow, metrics=M20,
            interleave=True, outbound=True, ref="state-lmdb", default=False,
            note="state-redis over the same redis-server's unix socket"),
    Variant("state-lmdb-both", mxgate=STATE_BOTH_LMDB, setup=_preallow, metrics=M20,
            interleave=True, ref="lua-empty", default=False,
            note="a ratelimit() per MAIL and a greylist() per RCPT (pre-allowed client) on "
            "every message, inbound, on LMDB (bench/rulesets.py state)"),
    Variant("state-redis-both", mxgate=STATE_BOTH_REDIS, setup=_preallow, metrics=M20,
            interleave=True, ref="state-lmdb-both", default=False,
            note="state-lmdb-both on Redis over TCP: one EVALSHA per message"),
    Variant("greylist", mxgate=GREYLIST, setup=_preallow, metrics=M20, interleave=True,
            ref="rules", target=0.10, issue="issue 5 greylisting",
            note="rules + greylist { delay = 1 } for a client on the allow list "
            "(mxgate state add allow 127.0.0.1)"),
    Variant("metrics", mxgate=METRICS_ON, setup=_scrape, metrics=M20, interleave=True,
            ref="rules", target=0.02, issue="issue 14 metrics on (>= 0.98x off)",
            note="rules with http = {...} on: every session and reply counted in shared "
            "memory, /metrics scraped every second; ref: the same rules, metrics off"),
    # --- the cost of one hook call, without the network (bench/hook_bench.c)
    Variant("hookcost", kind="micro", metrics=[],
            note="C microbenchmark: ops->decide() per stage, in-process"),
]


# ---------------------------------------------------------------------------
# Cleanup: every started server is stopped at exit, on SIGTERM/SIGHUP/SIGINT.

ACTIVE = []


def _stop_all():
    while ACTIVE:
        s = ACTIVE.pop()
        try:
            log(f"stopping {s.name}")
            s.stop()
        except Exception as e:   # never let cleanup raise
            log(f"stopping {s.name} failed: {e}")


def _on_signal(sig, frame):
    raise SystemExit(128 + sig)


# ---------------------------------------------------------------------------
# Measurements

class Opts:
    pass


def check_count(server, before, sent):
    """'' when the queue grew by `sent` messages, else a warning."""
    if before is None:
        return ""
    after = server.queued()
    got = after - before
    if got == sent:
        return ""
    k = getattr(server, "files_per_msg", None)
    if k is None and sent and got > sent and got % sent == 0 and got // sent <= 4:
        server.files_per_msg = k = got // sent
        log(f"{server.name}: {k} spool files per message (assumed from now on)")
    if k and got == k * sent:
        return ""
    return f"queue +{got} for {sent} sent"


def smtp_source_split(root, ports, sessions, messages, reuse, opts):
    """One smtp-source per port, all at once, each with its share of the
    sessions and messages; returns (wall seconds until the last is done,
    [(rc, output tail)])."""
    import threading
    n = len(ports)
    got = [None] * n

    def one(i):
        got[i] = postfix.smtp_source(root, ports[i], max(1, sessions // n),
                                     messages // n + (1 if i < messages % n else 0), reuse,
                                     opts.size, RCPT, SENDER,
                                     timeout=max(60, opts.seconds * 15))
    t0 = time.monotonic()
    ts = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return time.monotonic() - t0, [(g[1], g[2]) for g in got]


def run_load(server, root, sessions, messages, reuse, opts):
    before = server.queued()
    ports = getattr(server, "load_ports", None)
    if ports:
        dt, outs = smtp_source_split(root, ports, sessions, messages, reuse, opts)
    else:
        dt, rc, out = postfix.smtp_source(root, server.port, sessions, messages, reuse,
                                          opts.size, RCPT, SENDER,
                                          timeout=max(60, opts.seconds * 15))
        outs = [(rc, out)]
    warn = []
    for rc, out in outs:
        if rc != 0:
            warn.append(f"smtp-source rc={rc}: {out[-120:]}")
    w = check_count(server, before, messages)
    if w:
        warn.append(w)
    return dt, warn


def _size_for(rate, seconds, sessions, opts):
    return int(min(max(rate * seconds, 10 * sessions, 50), opts.max_messages))


def warm_up(server, root, metric, opts, max_stages=5):
    """Warm-up doubles as calibration: runs sized for ~1s until two in a row
    agree within 15% (Postfix has spawned its processes, caches are warm),
    at most max_stages of them.  Returns (rate, stages, warnings), or
    (None, stage, error text) when smtp-source failed."""
    s, reuse = metric.sessions, metric.reuse
    n, prev, warns = max(50, 3 * s), None, []
    for stage in range(1, max_stages + 1):
        dt, warn = run_load(server, root, s, n, reuse, opts)
        if any(w.startswith("smtp-source") for w in warn):
            return None, stage, f"warm-up {stage}: " + "; ".join(warn)
        warns += [f"warm-up: {w}" for w in warn if f"warm-up: {w}" not in warns]
        rate = n / dt
        if prev and dt >= 0.5 and abs(rate - prev) / prev < 0.15:
            break
        prev, n = rate, _size_for(rate, 1.0, s, opts)
    return rate, stage, warns


def run_load_cpu(server, root, sessions, messages, reuse, opts, extra_pids=()):
    """run_load, plus the CPU seconds the server's processes (and
    extra_pids: the DNSBL server) and smtp-source used meanwhile: returns
    (seconds, warnings, (server user s, server system s), smtp-source s).
    CPU per message depends much less than the rate on how much CPU other
    work leaves us; and user time, where all of a rule's work is done,
    escapes most of the kernel's noise (file system, lock spinning)."""
    pids = server.pids() | set(extra_pids)
    u0, k0 = procs.cpu_split(pids)
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    dt, warn = run_load(server, root, sessions, messages, reuse, opts)
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    pids = server.pids() | set(extra_pids)
    u1, k1 = procs.cpu_split(pids)
    cli = (r1.ru_utime + r1.ru_stime) - (r0.ru_utime + r0.ru_stime)
    return dt, warn, (max(0.0, u1 - u0), max(0.0, k1 - k0)), cli


def measure_tput(server, root, metric, opts):
    s, reuse = metric.sessions, metric.reuse
    rate, stage, warns = warm_up(server, root, metric, opts)
    if rate is None:
        return {"error": warns, "warm": stage}
    per_run = opts.seconds / opts.repeats
    log(f"  {server.name} {metric.key}: warm {rate:.0f}/s after {stage} runs -> "
        f"{opts.repeats} timed runs of ~{per_run:.1f}s")
    rates, secs, counts, failed = [], [], [], 0
    for i in range(opts.repeats):
        count = _size_for(rate, per_run, s, opts)
        dt, warn = run_load(server, root, s, count, reuse, opts)
        warns += [w for w in warn if w not in warns]
        if any(w.startswith("smtp-source") for w in warn):
            failed += 1       # an aborted run's rate means nothing
            continue
        rate = count / dt
        rates.append(rate)
        secs.append(round(dt, 3))
        counts.append(count)
    if not rates:
        return {"error": "every timed run failed: " + "; ".join(warns)}
    if failed:
        warns.insert(0, f"{failed}/{opts.repeats} runs failed, median of the rest")
    med = statistics.median(rates)
    spread = (max(rates) - min(rates)) / med if med else 0
    if spread > opts.noisy:
        warns.append("noisy: " + "/".join(f"{r:.0f}" for r in rates))
    return {"value": med, "runs": [round(r, 1) for r in rates], "spread": round(spread, 3),
            "messages": counts, "seconds": secs, "sessions": s,
            "reuse": reuse, "size": opts.size, "warn": "; ".join(warns)}


def measure_idle(server, opts):
    n = opts.idle
    base = procs.mem(server.pids())
    sess = idle.open_idle("127.0.0.1", server.port, n)
    try:
        # Let late forks finish start-up before reading memory (not a
        # readiness wait: every session has already answered EHLO).
        time.sleep(1.0)
        m = procs.mem(server.pids())
        open_now = sess.alive_count()
        opened = len(sess.socks)
    finally:
        sess.close()
    if opened == 0:
        return {"error": f"no idle session opened: {sess.errors}"}
    warn = []
    if opened < n:
        warn.append(f"{opened}/{n} opened {sess.errors}")
    if open_now < opened:
        warn.append(f"server closed {opened - open_now} idle sessions")
    return {
        "value": (m["private"] - base["private"]) / opened,
        "pss_per_session_kib": (m["Pss"] - base["Pss"]) / opened,
        "sessions": opened, "open_seconds": round(sess.elapsed, 2),
        "before": base, "after": m, "warn": "; ".join(warn),
    }


def measure_server(name, start_fn, port, metrics, opts):
    """Run `metrics` (keys) against fresh instances from start_fn().

    The idle-memory phase gets its own fresh instance (no processes or
    buffers left from load runs); the load points share one instance.
    Returns {metric_key: result}; a result has "value" or "error".
    """
    res = {}
    phases = []
    if "idle_mem" in metrics:
        phases.append(["idle_mem"])
    load = [k for k in TPUT_ORDER if k in metrics]
    if load:
        phases.append(load)
    for keys in phases:
        server = None
        try:
            log(f"starting {name} on 127.0.0.1:{port}")
            server = start_fn()
            ACTIVE.append(server)
            # Flush what earlier phases left dirty (queue deletions, logs) so
            # it is not charged to this server's fsyncs.
            os.sync()
        except SetupError as e:
            log(f"{name} unavailable: {e}")
            for k in metrics:
                res.setdefault(k, {"error": str(e)})
            return res
        except Exception as e:
            log(f"{name} start crashed:\n{traceback.format_exc()}")
            for k in metrics:
                res.setdefault(k, {"error": f"start: {e!r}"})
            return res
        try:
            for k in keys:
                log(f"{name}: {MBYKEY[k].label}")
                try:
                    if k == "idle_mem":
                        res[k] = measure_idle(server, opts)
                    else:
                        res[k] = measure_tput(server, opts.root, MBYKEY[k], opts)
                except Exception as e:
                    log(f"{name} {k} crashed:\n{traceback.format_exc()}")
                    res[k] = {"error": repr(e)}
                r = res[k]
                log(f"  -> {fmt_value(k, r)} {r.get('warn', '')}")
        finally:
            if server in ACTIVE:
                ACTIVE.remove(server)
            try:
                server.stop()
            except Exception as e:
                log(f"stopping {name} failed: {e}")
    return res


# ---------------------------------------------------------------------------
# The interleaved matrix: variants whose cost is a ratio to another variant.

class Entry:
    """One server of the matrix: a variant's mxgate, or its Postfix."""

    def __init__(self, variant, who, make, setup=None):
        self.v, self.who, self.make, self.setup = variant, who, make, setup
        self.label = f"{who}[{variant.name}]"
        self.server, self.error, self.rate = None, None, None
        self.runs, self.counts, self.secs, self.warns = [], [], [], []
        self.failed = 0
        self.parent, self.children = None, []
        self.ratios = []          # per round: this variant / its parent
        # per round, against the parent's runs around this one's:
        self.d_usr, self.d_sys = [], []   # server user / system µs per message, difference
        self.est_all = []         # CPU-bound rate estimate: parent's CPU/msg / this one's
        self.est_usr = []         # the same counting only the user-time difference
        self.usr, self.sys, self.cli = [], [], []   # per run, µs per message
        self.setup_note = ""
        self.port = None
        self.extra_pids = None    # fn() -> pids whose CPU counts as this server's
        self.redis = None         # RedisTally: the bench's Redis works for this server

    def result(self, metric, opts):
        if self.error:
            return {"error": self.error}
        if not self.runs:
            return {"error": "every timed run failed: " + "; ".join(self.warns)}
        warns = list(self.warns)
        if self.failed:
            warns.insert(0, f"{self.failed}/{self.failed + len(self.runs)} runs failed, "
                         "median of the rest")
        med = statistics.median(self.runs)
        spread = (max(self.runs) - min(self.runs)) / med if med else 0
        if spread > opts.noisy:
            warns.append(f"noisy: {min(self.runs):.0f}-{max(self.runs):.0f} over "
                         f"{len(self.runs)} runs")
        r = {"value": med, "runs": [round(x, 1) for x in self.runs],
             "spread": round(spread, 3), "messages": self.counts, "seconds": self.secs,
             "sessions": metric.sessions, "reuse": metric.reuse, "size": opts.size,
             "interleaved": True, "setup": self.setup_note, "warn": "; ".join(warns)}
        if self.usr:
            r["cpu_user_us"] = round(statistics.median(self.usr), 1)
            r["cpu_sys_us"] = round(statistics.median(self.sys), 1)
            r["client_cpu_us"] = round(statistics.median(self.cli), 1)
            r["cpu_runs"] = [[round(u, 1), round(k, 1), round(c, 1)]
                             for u, k, c in zip(self.usr, self.sys, self.cli)]
        if self.parent is not None:
            ref = self.parent.v.name
            r["paired"] = summarize_ratios(self.ratios, ref)
            r["paired_d_user_us"] = summarize_ratios(self.d_usr, ref)
            r["paired_d_sys_us"] = summarize_ratios(self.d_sys, ref)
            r["paired_cpu_bound"] = summarize_ratios(self.est_all, ref)
            r["paired_cpu_bound_user"] = summarize_ratios(self.est_usr, ref)
        return r


def summarize_ratios(ratios, ref):
    ok = [x for x in ratios if x is not None]
    if not ok:
        return None
    return {"ref": ref, "median": statistics.median(ok), "min": min(ok), "max": max(ok),
            "n": len(ok), "ratios": [round(x, 3) for x in ok]}


def sandwich(node, seq, pairs):
    """Appends node, then each child's own sandwich followed by node again:
    c E c T J T c R D R G R c. Every child's block has a run of its parent
    just before and just after it; pairs gets (child, parent, index
    before, the child's indices in its block, index after)."""
    seq.append(node)
    for ch in node.children:
        before, start = len(seq) - 1, len(seq)
        sandwich(ch, seq, pairs)
        own = [k for k in range(start, len(seq)) if seq[k] is ch]
        seq.append(node)
        pairs.append((ch, node, before, own, len(seq) - 1))


def schedule(roots, rnd):
    """One round: every root's sandwich; roots rotated by the round number,
    the whole sequence reversed every other round."""
    k = rnd % max(1, len(roots))
    seq, pairs = [], []
    for root in roots[k:] + roots[:k]:
        sandwich(root, seq, pairs)
    if rnd % 2:
        n = len(seq) - 1
        seq.reverse()
        pairs = [(c, p, n - a, [n - x for x in own], n - b) for c, p, b, own, a in pairs]
    return seq, pairs


def measure_matrix(entries, metric, opts):
    """Every entry's server runs at once (each on its own port and
    directory; idle ones cost nothing). After a warm-up of each, there are
    opts.rounds rounds. In a round every variant runs between two runs of
    its ref (schedule()), each run ~opts.seconds/opts.repeats long with
    os.sync() before it, so that no run pays for what the one before left
    dirty. A variant's cost is then its rate over the mean of the two ref
    runs around it, one ratio per round: bursts of load from the rest of a
    shared machine hit both sides of a ratio or are caught by the median of
    the rounds. Returns {(variant name, who): result}."""
    byvar = {(e.v.name, e.who): e for e in entries}
    try:
        for e in entries:
            for d in ("state", "queue"):     # start() deletes what --keep kept
                if os.path.isdir(os.path.join(getattr(e, "base", ""), d)):
                    LAST_DELETE[0] = time.time() + 5
        for e in entries:
            log(f"matrix: starting {e.label} on 127.0.0.1:{e.port}")
            try:
                e.server = _start(e.make())
                ACTIVE.append(e.server)
                if e.setup:
                    e.setup_note = e.setup(e.server) or ""
            except SetupError as ex:
                log(f"{e.label} unavailable: {ex}")
                e.error = str(ex)
            except Exception as ex:
                log(f"{e.label} start crashed:\n{traceback.format_exc()}")
                e.error = f"start: {ex!r}"
        wait_for_old_deletions()
        os.sync()
        for e in entries:
            if e.error:
                continue
            rate, stage, warns = warm_up(e.server, opts.root, metric, opts, max_stages=3)
            if rate is None:
                e.error = warns
                log(f"  {e.label}: {warns}")
                continue
            e.rate, e.warns = rate, list(warns)
            log(f"  {e.label} {metric.key}: warm {rate:.0f}/s after {stage} runs")
        live = [e for e in entries if not e.error]
        for e in live:
            p = byvar.get((e.v.ref, e.who)) if e.v.ref else None
            if p is not None and not p.error:
                e.parent = p
                p.children.append(e)
        roots = [e for e in live if e.parent is None]
        per_run = opts.seconds / opts.repeats
        n_runs = len(schedule(roots, 0)[0])
        log(f"matrix {metric.key}: {opts.rounds} rounds of {n_runs} runs of ~{per_run:.1f}s "
            f"({len(live)} servers, each variant between two runs of its ref)")
        def around(vals, own, b, a):
            """(mean over the child's runs, mean over the parent's two)."""
            cv = [vals[k] for k in own if vals[k] is not None]
            pv = [vals[k] for k in (b, a) if vals[k] is not None]
            if not cv or not pv:
                return None, None
            return statistics.mean(cv), statistics.mean(pv)

        for rnd in range(opts.rounds):
            seq, pairs = schedule(roots, rnd)
            rates, usrs, syss, tots = [], [], [], []
            for e in seq:
                os.sync()
                count = _size_for(e.rate, per_run, metric.sessions, opts)
                extra = e.extra_pids() if e.extra_pids else ()
                snap = redis_snapshot() if e.redis is not None else None
                dt, warn, (usr, sys_), cli = run_load_cpu(
                    e.server, opts.root, metric.sessions, count, metric.reuse, opts, extra)
                if snap is not None:
                    e.redis.add(snap, redis_snapshot(), count)
                e.warns += [w for w in warn if w not in e.warns]
                if any(w.startswith("smtp-source") for w in warn):
                    e.failed += 1
                    for l in (rates, usrs, syss, tots):
                        l.append(None)
                    continue
                e.rate = count / dt
                rates.append(e.rate)
                e.runs.append(e.rate)
                e.counts.append(count)
                e.secs.append(round(dt, 3))
                e.usr.append(1e6 * usr / count)
                e.sys.append(1e6 * sys_ / count)
                e.cli.append(1e6 * cli / count)
                usrs.append(e.usr[-1])
                syss.append(e.sys[-1])
                tots.append(e.usr[-1] + e.sys[-1] + e.cli[-1])
            for ch, par, b, own, a in pairs:
                c, p = around(rates, own, b, a)
                ch.ratios.append(c / p if c and p else None)
                cu, pu = around(usrs, own, b, a)
                ck, pk = around(syss, own, b, a)
                ct, pt = around(tots, own, b, a)
                ok = None not in (cu, pu, ck, pk, ct, pt) and ct > 0 and pt > 0
                ch.d_usr.append(cu - pu if ok else None)
                ch.d_sys.append(ck - pk if ok else None)
                ch.est_all.append(pt / ct if ok else None)
                ch.est_usr.append(pt / (pt + cu - pu) if ok and pt + cu - pu > 0 else None)
            log(f"  round {rnd + 1}/{opts.rounds}: " + (", ".join(
                f"{ch.v.name}/{par.v.name}"
                f"{'(pf)' if ch.who == 'postfix' else ''} "
                + (f"{ch.ratios[-1]:.2f}" if ch.ratios[-1] else "n/a")
                for ch, par, *_ in sorted(pairs, key=lambda p: p[0].label)) or ", ".join(
                f"{e.label} {r:.0f}/s" if r else f"{e.label} failed"
                for e, r in zip(seq, rates))))
    finally:
        for e in entries:
            if e.server is None:
                continue
            if e.server in ACTIVE:
                ACTIVE.remove(e.server)
            try:
                e.server.stop()
            except Exception as ex:
                log(f"stopping {e.label} failed: {ex}")
    return {(e.v.name, e.who): e.result(metric, opts) for e in entries}


def _with_ports(server, ports):
    """server, whose loads go to ports (inbound, outbound) when given."""
    if ports:
        server.load_ports = ports
    return server


def _smtp_probe(port, timeout=10):
    """HELO, MAIL, RCPT as smtp-source sends them; returns the RCPT reply."""
    import smtplib
    with smtplib.SMTP("127.0.0.1", port, local_hostname="client.test",
                      timeout=timeout) as c:
        c.helo("client.test")
        c.mail(SENDER)
        code, text = c.rcpt(RCPT)
        c.rset()
        return code, text.decode("utf-8", "replace")


def preallow_greylist(server):
    """Puts 127.0.0.1 on the greylist allow list with the operators' CLI
    (`mxgate state -c CONF add allow 127.0.0.1`); if RCPT is still
    greylisted, falls back to one greylisted attempt retried after the
    delay (which also puts the client on the allow list)."""
    cmd = [server.binary, "state", "-c", server.cfg_path, "add", "allow", "127.0.0.1"]
    r = subprocess.run(cmd, cwd=server.cwd, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=30)
    how = "mxgate state add allow 127.0.0.1"
    if r.returncode:
        log(f"  {' '.join(cmd[1:])}: rc={r.returncode} {r.stdout.strip()[-200:]}")
    code, text = _smtp_probe(server.port)
    if code != 250:
        delay = float(server.cfg.get("greylist", {}).get("delay", 60))
        log(f"  greylist: RCPT {code} after the CLI; retrying once after {delay:g}s")
        time.sleep(delay + 0.3)
        code, text = _smtp_probe(server.port)
        how = "one greylisted RCPT retried after the delay"
    if code != 250:
        raise SetupError(f"greylist pre-allow failed: RCPT {code} {text[:120]}")
    log(f"  greylist: 127.0.0.1 allowed ({how}); RCPT 250")
    return how


def check_postfix_dns(server, dns):
    """Proof that this Postfix asks our rbldnsd: one RCPT must raise
    rbldnsd's zen.test query counter (counters are written every second)."""
    q0 = dns.queries_after(time.time())
    code, text = _smtp_probe(server.port)
    q1 = dns.queries_after(time.time())
    if code != 250:
        raise SetupError(f"postfix with reject_rbl_client: RCPT {code} {text[:120]}")
    if q0 is None or q1 is None:
        log("  rbldnsd query counters unreadable: Postfix's resolver path unverified")
        return "resolver path unverified"
    n = q1.get("zen.test", 0) - q0.get("zen.test", 0)
    if n < 1:
        raise SetupError("Postfix did not query rbldnsd (private resolv.conf not used?)")
    log(f"  postfix resolves through rbldnsd {dns.address} ({n} zen.test queries for one RCPT)")
    return f"resolver verified: {n} zen.test queries for one RCPT"


# ---------------------------------------------------------------------------
# The cost of one hook call: bench/hook_bench.c on the policy API.

HOOK_STAGES = ["connect", "helo", "mail", "rcpt", "predata", "data", "quit"]
PER_MESSAGE = ["mail", "rcpt", "predata", "data"]   # one message on a reused session


def run_hookcost(mx_bin, dns, route_port, opts):
    import mxgate as mxmod
    r = subprocess.run(["make", "-s", "-f", "bench/Makefile"], cwd=REPO,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                       timeout=600)
    exe = os.path.join(REPO, "build", "bench", "hook_bench")
    if r.returncode or not os.access(exe, os.X_OK):
        return {"error": "make -f bench/Makefile failed: " + r.stdout.strip()[-300:]}
    try:
        if os.path.getmtime(os.path.join(REPO, "build", "libmxgate.a")) > os.path.getmtime(mx_bin):
            log("note: build/libmxgate.a is newer than the mxgate binary measured "
                "(make bin/mxgate): hook_bench runs newer code")
    except OSError:
        pass
    configs = [("c-nojournal", NOJOURNAL),
               ("lua-empty", dict(NOJOURNAL, rules=os.path.join(RULESETS, "empty"))),
               ("lua-10x7", dict(NOJOURNAL, rules=os.path.join(RULESETS, "lookups10"))),
               ("rules", RULES_NONET)]
    if dns is not None:
        configs.append(("dnsbl", mxmod.merge(DNSBL, {"dns": {"servers": dns.address}})))
    configs.append(("greylist", GREYLIST))
    out = {}
    for name, over in configs:
        base = os.path.join(WORK, "hookbench", name)
        shutil.rmtree(base, ignore_errors=True)
        os.makedirs(os.path.join(base, "state", "state"), exist_ok=True)
        cfg = mxmod.merge(mxmod.base_config(base, 0, route_port), over)
        path = os.path.join(base, "mxgate.lua")
        with open(path, "w") as f:
            f.write(mxmod.render_config(cfg))
        if name == "greylist":
            subprocess.run([mx_bin, "state", "-c", path, "add", "allow", "127.0.0.1"],
                           cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        log(f"hook_bench {name}")
        try:
            p = subprocess.run([exe, "-n", str(opts.hook_calls), "-r", "7", path], cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               timeout=300)
        except subprocess.TimeoutExpired:
            out[name] = {"error": "timeout"}
            continue
        if p.returncode:
            out[name] = {"error": (p.stderr or p.stdout).strip()[-200:]}
            continue
        stages = {}
        for line in p.stdout.splitlines():
            try:
                d = json.loads(line)
            except ValueError:
                continue
            stages[d["stage"]] = d
        out[name] = {"stages": stages, "policy": next(iter(stages.values()), {}).get("policy")}
    return out


def _us(x):
    return f"{x:.3f}" if x < 0.1 else f"{x:.2f}"


def print_hookcost(hc, mx_rates, out=sys.stdout):
    if "error" in hc:
        print(f"Hook cost: n/a ({hc['error']})", file=out)
        return
    print("One hook call, in-process (bench/hook_bench.c: ops->decide() on one session, "
          "no network; CPU µs per call, median of 7 x N calls):", file=out)
    head = ["ruleset"] + HOOK_STAGES + ["per message"]
    lines = []
    for name, r in hc.items():
        if "error" in r:
            lines.append([name, f"n/a ({r['error'][:60]})"] + [""] * (len(head) - 2))
            continue
        st = r["stages"]
        cells = [name]
        for h in HOOK_STAGES:
            d = st.get(h)
            cells.append(_us(d["ns_median"] / 1000) if d else "-")
        per = sum(st[h]["ns_median"] for h in PER_MESSAGE if h in st) / 1000
        r["per_message_us"] = per
        cells.append(_us(per))
        lines.append(cells)
    widths = [max([len(h)] + [len(l[i]) for l in lines]) for i, h in enumerate(head)]

    def row(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    print(row(head), file=out)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)
    for l in lines:
        print(row(l), file=out)
    print("per message = mail + rcpt + predata + data, the hooks one more message costs on "
          "a reused session (connect, helo and quit run once per session).", file=out)
    e, t = hc.get("lua-empty", {}), hc.get("lua-10x7", {})
    if "stages" in e and "stages" in t:
        per_rule = statistics.mean(
            (t["stages"][h]["ns_median"] - e["stages"][h]["ns_median"]) / 10
            for h in HOOK_STAGES if h in t["stages"] and h in e["stages"]) / 1000
        hc["per_rule_us"] = per_rule
        print(f"one look-up rule ≈ {per_rule:.2f} µs ((lua-10x7 - lua-empty) / 10, mean over "
              f"hooks); a hook with no rule ≈ {e['stages']['connect']['ns_median'] / 1000:.2f} µs",
              file=out)
    ncpu = os.cpu_count() or 1
    for name in ("lua-empty", "lua-10x7", "rules", "dnsbl", "greylist"):
        r, rate = hc.get(name, {}), mx_rates.get(name)
        if "per_message_us" in r and rate:
            share = r["per_message_us"] * rate / (ncpu * 1e6)
            r["cpu_share_at_rate"] = share
            print(f"  {name}: {r['per_message_us']:.1f} µs/message x {rate:.0f} msg/s = "
                  f"{100 * share:.1f}% of {ncpu} CPUs", file=out)


# ---------------------------------------------------------------------------
# Output

def fmt_value(key, r, width=None):
    if r is None:
        return "-"
    if "error" in r:
        why = r["error"].replace("\n", " ")
        return f"n/a ({why[:48]}{'…' if len(why) > 48 else ''})"
    v = r["value"]
    if key == "idle_mem":
        return f"{v:.1f}"
    return f"{v:.0f}" if v >= 100 else f"{v:.1f}"


def ratio(a, b):
    if not a or not b or "value" not in a or "value" not in b or not b["value"]:
        return None
    return a["value"] / b["value"]


def fmt_paired(pr, ref):
    if not pr:
        return "-"
    return (f"{pr['median']:.3f}x of {ref} ({pr['min']:.2f}-{pr['max']:.2f}, "
            f"{pr['n']} rounds)")


def print_table(rows, sink, out=sys.stdout):
    """rows: (label, key, mxgate result, postfix result[, vs-ref text])."""
    head = ["metric", "mxgate", "postfix", "mxgate/postfix", "vs ref (paired rounds)",
            "mxgate CPU µs/msg user+sys", "warnings"]
    lines = []
    for label, key, mx, pf, *rest in rows:
        rt = ratio(mx, pf)
        m = MBYKEY[key]
        rs = "-" if rt is None else f"{rt:.3g}x" + ("" if m.higher_better else " (lower=better)")
        warns = []
        for who, r in (("mxgate", mx), ("postfix", pf)):
            if r and r.get("warn"):
                warns.append(f"{who}: {r['warn']}")
        vs = rest[0] if rest and rest[0] else "-"
        cpu = rest[1] if len(rest) > 1 and rest[1] else "-"
        lines.append([label, fmt_value(key, mx), fmt_value(key, pf), rs, vs, cpu,
                      "; ".join(warns)])
    if sink is not None:
        base = {key: (mx, pf) for label, key, mx, pf, *_ in rows if "[" not in label}
        cells = []
        for r in base.get("msgs_20", (None, None)):
            if r and "value" in r and "value" in sink:
                cells.append(f"{100 * r['value'] / sink['value']:.0f}% of it")
            else:
                cells.append("-")
        lines.append([f"smtp-sink ceiling (writes nothing), 20 sessions: "
                      f"{fmt_value('msgs_20', sink)} msg/s", cells[0], cells[1], "-", "-", "-",
                      sink.get("warn", "")])
    widths = [max([len(h)] + [len(l[i]) for l in lines]) for i, h in enumerate(head)]
    widths[-1] = len(head[-1])

    def row(cells):
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths)) + " |"
    print(row(head), file=out)
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)
    for l in lines:
        print(row(l), file=out)


def summary(rows, sink, why_none):
    base = {key: (mx, pf) for label, key, mx, pf, *_ in rows if "[" not in label}
    parts = []
    names = {"msgs_1": "msgs/s @1", "msgs_20": "@20", "msgs_100": "@100",
             "conns_20": "new conns/s", "idle_mem": "memory/idle session"}
    for key in ["msgs_1", "msgs_20", "msgs_100", "conns_20", "idle_mem"]:
        if key in base:
            rt = ratio(*base[key])
            if rt is not None:
                parts.append(f"{names[key]} {rt:.3g}x")
    s = "Summary, mxgate/postfix: " + (", ".join(parts) if parts else
                                         f"n/a ({why_none or 'no data'})")
    if "idle_mem" in base and ratio(*base["idle_mem"]):
        s += " (memory: lower is better)"
    if sink and "value" in sink:
        cl = []
        for who, idx in (("mxgate", 0), ("postfix", 1)):
            r = base.get("msgs_20", (None, None))[idx]
            if r and "value" in r:
                cl.append(f"{who} {100 * r['value'] / sink['value']:.0f}%")
        if cl:
            s += "; share of the smtp-sink ceiling @20: " + ", ".join(cl)
    return s


# ---------------------------------------------------------------------------

def main():
    global REDIS
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="target timed wall time of each load point, split over "
                    "--repeats runs whose median is reported (default 5)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="timed runs per load point (default 5); one run lasts "
                    "--seconds/--repeats, also in the interleaved matrix")
    ap.add_argument("--rounds", type=int, default=9,
                    help="rounds of the interleaved matrix (default 9): one timed "
                    "run of every interleaved server per round")
    ap.add_argument("--noisy", type=float, default=0.25,
                    help="warn when (max-min)/median of the runs exceeds this")
    ap.add_argument("--idle", type=int, default=1000,
                    help="idle sessions for the memory metric (default 1000)")
    ap.add_argument("--size", type=int, default=2048,
                    help="message body bytes, smtp-source -l (default 2048)")
    ap.add_argument("--max-messages", type=int, default=200000)
    ap.add_argument("--hook-calls", type=int, default=20000,
                    help="hook_bench: calls per timing (default 20000)")
    ap.add_argument("--metrics", default=",".join(m.key for m in METRICS),
                    help="comma list of: " + ", ".join(m.key for m in METRICS))
    ap.add_argument("--servers", default="mxgate,postfix,sink",
                    help="comma list of: mxgate, postfix, sink")
    ap.add_argument("--variants", default=None,
                    help="comma list (default: all): "
                    + ", ".join(v.name for v in VARIANTS) + ", or 'all'; the ref "
                    "of a chosen variant is added")
    ap.add_argument("--mxgate", default=os.environ.get(
        "MXGATE_BIN", "bin/mxgate"), help="mxgate binary, relative to the repo "
                    "(default bin/mxgate; env MXGATE_BIN)")
    ap.add_argument("--keep", action="store_true",
                    help="keep the queued test mail (Postfix queue, mxgate state) at exit")
    ap.add_argument("--json", default=os.path.join(WORK, "results", "last.json"))
    a = ap.parse_args()

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    atexit.register(_stop_all)

    opts = Opts()
    opts.seconds, opts.idle, opts.size = a.seconds, a.idle, a.size
    opts.max_messages = a.max_messages
    opts.repeats, opts.noisy = max(1, a.repeats), a.noisy
    opts.rounds, opts.hook_calls = max(1, a.rounds), max(100, a.hook_calls)
    metrics = [k for k in a.metrics.split(",") if k in MBYKEY]
    servers = set(a.servers.split(","))
    byname = {v.name: v for v in VARIANTS}
    if a.variants and a.variants != "all":
        want = set(a.variants.split(","))
        unknown = want - set(byname)
        if unknown:
            ap.error("unknown variant(s): " + ", ".join(sorted(unknown)))
        todo = list(want)
        while todo:                       # a variant's ref comes along
            ref = byname[todo.pop()].ref
            if ref and ref not in want:
                want.add(ref)
                todo.append(ref)
        variants = [v for v in VARIANTS if v.name in want]
    else:
        variants = [v for v in VARIANTS if v.default]
    mx_bin = os.path.join(REPO, a.mxgate)

    nofile = idle.raise_nofile(max(65536, a.idle * 2 + 1024))
    os.makedirs(WORK, exist_ok=True)
    log(f"work dir {WORK}, RLIMIT_NOFILE {nofile}, {os.cpu_count()} cpus, variants "
        + ",".join(v.name for v in variants))

    results = {"time": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                        "loadavg_start": _loadavg()},
               "params": {"seconds": a.seconds, "repeats": a.repeats, "rounds": a.rounds,
                          "idle_sessions": a.idle,
                          "size": a.size, "rcpt": RCPT, "sender": SENDER,
                          "conns_metric": "one message per new connection, 20 in parallel"},
               "variants": {}, "sink": None}
    setup_error = None
    root = None
    try:
        root = postfix.ensure_tree(WORK, log)
        postfix.ensure_users(log)
    except (SetupError, OSError) as e:
        setup_error = f"postfix/smtp-source setup: {e}"
        log(setup_error)
    opts.root = root

    exit_code = 0
    rows = []          # (label, metric key, mxgate result, postfix result[, vs ref])
    sink_res = None
    why_none = None    # why the summary has no ratio at all
    pf_baseline = {}
    res_by = {}        # variant name -> (mxgate results, postfix results)
    paired_by = {}     # variant name -> {metric: {"mxgate": .., "postfix": ..}}
    hookcost = None
    dns = None
    dns_why = None
    notes = set()
    try:
        if root:
            _stop_stale(root, mx_bin)
        if _empty_trash():
            # An earlier run's mail was still being deleted: let ext4 forget
            # those inodes before anything is measured (wait_for_old_deletions).
            notes.add("an earlier run's test mail was still being deleted at start: "
                      "the bench waited 60 s before measuring")
            wait_for_old_deletions()
        taken = set()

        def port(pref):
            p = postfix.free_port(pref, taken)
            taken.add(p)
            return p
        pf_port, route_port, sink_port, mx_port = port(2625), port(2626), port(2627), port(2725)
        if route_port != 2626:
            log(f"note: mxgate's route port is {route_port} (nothing listens there)")

        if any(v.interleave or v.kind == "micro" for v in variants):
            rulesets.write(RULESETS)
        if any(v.dns for v in variants) or any(v.kind == "micro" for v in variants):
            try:
                dns, dns_why = rbl.start(log)
                log(f"rbldnsd on {dns.address} (zones {', '.join(rbl.ZONES)})")
            except Exception as e:
                dns_why = f"rbldnsd: {e}"
                log(dns_why)

        # The ceiling belongs to the baseline's table rows and summary.
        if (setup_error is None and "sink" in servers and "msgs_20" in metrics
                and any(v.name == "baseline" for v in variants)):
            r = measure_server("smtp-sink", lambda: _start(SmtpSink(root, sink_port, log)),
                               sink_port, ["msgs_20"], opts)
            sink_res = r.get("msgs_20")
            results["sink"] = sink_res

        # 1. Variants measured one after another (baseline: every metric).
        for v in variants:
            if v.interleave or v.kind != "load":
                continue
            keys = [k for k in v.metrics if k in metrics]
            if not keys:
                continue
            log(f"=== variant {v.name}: {', '.join(keys)}")
            if setup_error:
                pf = {k: {"error": setup_error} for k in keys}
                mx = dict(pf)
            else:
                if "postfix" not in servers:
                    pf = {k: {"error": "skipped (--servers)"} for k in keys}
                elif v.postfix is None:
                    pf = {k: pf_baseline.get(k, {"error": "no baseline run"}) for k in keys}
                else:
                    pf = measure_server(
                        "postfix",
                        lambda: _start(PostfixServer(root, os.path.join(WORK, "postfix"),
                                                     pf_port, DOMAIN, v.postfix,
                                                     smtpd_limit=max(1100, a.idle + 100),
                                                     log=log)),
                        pf_port, keys, opts)
                    if v.name == "baseline":
                        pf_baseline = pf
                if "mxgate" not in servers:
                    mx = {k: {"error": "skipped (--servers)"} for k in keys}
                else:
                    mx = measure_server(
                        "mxgate",
                        lambda: _start(MxgateServer(mx_bin, os.path.join(WORK, "mxgate"),
                                                    mx_port, route_port, v.mxgate, log=log)),
                        mx_port, keys, opts)
            if v.name == "baseline":
                for who, res in (("mxgate", mx), ("postfix", pf)):
                    errs = [r["error"] for r in res.values() if "error" in r]
                    if errs and len(errs) == len(res) and not why_none:
                        why_none = f"{who}: {' '.join(errs[0].split())}"
            res_by[v.name] = (mx, pf)

        # 2. The interleaved matrix: every variant with a ref, and the refs.
        inter = [v for v in variants if v.interleave]
        mkeys = [k for k in metrics if any(k in v.metrics for v in inter)]
        for key in mkeys:
            metric = MBYKEY[key]
            vs = [v for v in inter if key in v.metrics]
            # A variant with neither its ref nor a variant of its own in this
            # matrix is measured here only if this is its first metric.
            names = {v.name for v in vs}
            vs = [v for v in vs if v.ref in names or key == v.metrics[0] or
                  any(w.ref == v.name for w in vs)]
            if not vs:
                continue
            log(f"=== interleaved matrix {key}: {', '.join(v.name for v in vs)}")
            entries = []
            for v in vs:
                # One directory per variant and metric: reusing the previous
                # matrix's would delete its spool right before measuring.
                base = os.path.join(WORK, f"mxgate-{v.name}-{key}")
                if setup_error or "mxgate" not in servers:
                    pass
                elif v.dns and dns is None:
                    res_by.setdefault(v.name, ({}, {}))[0][key] = {"error": dns_why}
                else:
                    over = v.mxgate
                    if v.dns:
                        over = mxgate_mod.merge(over, {"dns": {"servers": dns.address}})
                    e = Entry(v, "mxgate", None)
                    e.port, e.base = port(2725), base
                    out_port = None
                    if v.outbound:
                        out_port = port(2725)
                        over = dict(over, listen=[
                            {"address": "127.0.0.1", "port": e.port, "direction": "inbound"},
                            {"address": "127.0.0.1", "port": out_port, "direction": "outbound"}])
                    e.make = (lambda base=base, p=e.port, over=over, op=out_port:
                              _with_ports(MxgateServer(mx_bin, base, p, route_port, over, log=log),
                                          [p, op] if op else None))
                    if v.setup:
                        e.setup = (lambda srv, f=v.setup: f(srv, None))
                    if v.dns:
                        e.extra_pids = lambda: [dns.proc.pid] if dns.proc else []
                    if v.name.startswith("state-redis"):
                        # redis-server works for this server's messages: its CPU counts
                        e.extra_pids = lambda: [REDIS.proc.pid] if REDIS and REDIS.proc else []
                        e.redis = RedisTally()
                    entries.append(e)
                if v.postfix is not None and "postfix" in servers and not setup_error:
                    ns = None
                    if v.dns == "postfix":
                        if dns is None or dns_why:
                            res_by.setdefault(v.name, ({}, {}))[1][key] = {
                                "error": f"no nameserver on port 53 for Postfix: {dns_why}"}
                            continue
                        ns = dns.host
                    e = Entry(v, "postfix", None)
                    e.port, e.base = port(2625), os.path.join(WORK, f"postfix-{v.name}-{key}")
                    e.make = (lambda v=v, p=e.port, ns=ns, b=e.base: PostfixServer(
                        root, b, p, DOMAIN, v.postfix,
                        smtpd_limit=1100, log=log, nameserver=ns))
                    if ns:
                        e.setup = lambda srv: check_postfix_dns(srv, dns)
                        e.extra_pids = lambda: [dns.proc.pid] if dns.proc else []
                    entries.append(e)
            if any(e.v.name.startswith("state-redis") for e in entries) and REDIS is None:
                sys.path.insert(0, os.path.join(REPO, "spec", "e2e"))
                from redisserver import RedisServer
                REDIS = RedisServer(port=REDIS_PORT, socket_path=REDIS_SOCKET).start()
                REDIS.cli("CONFIG", "RESETSTAT")
            got = measure_matrix(entries, metric, opts) if entries else {}
            # Redis commands, round trips and redis-server CPU per message,
            # for each state-redis* server over its own timed runs.
            for e in entries:
                if e.redis is None or not e.redis.msgs:
                    continue
                rr = e.redis.result(0.5 if e.v.outbound else None)
                results.setdefault("redis", {}).setdefault(key, {})[e.v.name] = rr
                per_out = rr.get("round_trips_per_outbound_message")
                log(f"  redis [{e.v.name}]: {rr['commands_per_message']} commands per message "
                    f"({', '.join(f'{k}={c}' for k, c in rr['commands'].items())} for "
                    f"{rr['messages']} messages; a script's own GET/SET count), "
                    f"{rr['round_trips_per_message']} round trips per message"
                    + (f" ({per_out} per outbound message)" if per_out is not None else "")
                    + f", redis-server CPU {rr['redis_cpu_us_per_message']} µs per message")
            for (name, who), r in got.items():
                mx, pf = res_by.setdefault(name, ({}, {}))
                (mx if who == "mxgate" else pf)[key] = r
            if setup_error:
                for v in vs:
                    res_by.setdefault(v.name, ({}, {}))[0][key] = {"error": setup_error}
            # Rows without a Postfix of their own show the matrix's plain Postfix.
            plain = next((v.name for v in vs if v.postfix == {} and
                          key in res_by.get(v.name, ({}, {}))[1]), None)
            for v in vs:
                mx, pf = res_by.setdefault(v.name, ({}, {}))
                if key not in pf:
                    if plain:
                        pf[key] = res_by[plain][1][key]
                    elif "postfix" in servers:
                        pf[key] = pf_baseline.get(key, {"error": "no Postfix run"})
                    else:
                        pf[key] = {"error": "skipped (--servers)"}
                if v.ref:
                    own_pf = v.postfix is not None and byname[v.ref].postfix is not None
                    paired_by.setdefault(v.name, {})[key] = {
                        "ref": v.ref,
                        "mxgate": (mx.get(key) or {}).get("paired"),
                        "postfix": (pf.get(key) or {}).get("paired") if own_pf else None}
            if dns is not None:
                time.sleep(1.1)
                results["rbldnsd"] = {"address": dns.address, "queries": dns.queries()[1]}
            for e in entries:
                if e.who == "postfix" and e.setup and e.server is not None:
                    lf = os.path.join(e.base, "postfix.log")
                    try:
                        with open(lf, errors="replace") as f:
                            bad = sum(1 for l in f if "RBL lookup error" in l)
                    except OSError:
                        bad = 0
                    if bad:
                        notes.add(f"postfix[{e.v.name}]: {bad} 'RBL lookup error' lines "
                                  f"in {lf}")

        # 3. The hook microbenchmark.
        if any(v.kind == "micro" for v in variants):
            log("=== hook cost (bench/hook_bench.c)")
            hookcost = run_hookcost(mx_bin, dns, route_port, opts)
            results["hookcost"] = hookcost
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) or isinstance(e, SystemExit):
            log(f"interrupted ({e!r}); printing what was measured")
            exit_code = e.code if isinstance(e, SystemExit) else 130
        else:
            log("bench crashed:\n" + traceback.format_exc())
    finally:
        _stop_all()
        if REDIS is not None:
            REDIS.cleanup()
        if dns is not None:
            try:
                dns.stop()
            except Exception:
                pass
        if not a.keep:
            _discard_queues()

    # Rows: the table shows every variant that measured something.
    for v in variants:
        if v.name not in res_by:
            continue
        mx, pf = res_by[v.name]
        keys = [k for k in TPUT_ORDER + ["idle_mem"] if k in mx or k in pf]
        keys = [k for k in [m.key for m in METRICS] if k in keys]
        for k in keys:
            label = MBYKEY[k].label
            if k == "idle_mem":
                label = f"private KiB per idle session ({a.idle}, after EHLO)"
            if v.name != "baseline":
                label += f" [{v.name}]"
            vs = "-"
            pr = paired_by.get(v.name, {}).get(k)
            if pr:
                vs = fmt_paired(pr["mxgate"], pr["ref"])
                if pr.get("postfix"):
                    vs += f"; postfix {pr['postfix']['median']:.3f}x"
            cpu = "-"
            r = mx.get(k) or {}
            if "cpu_user_us" in r:
                cpu = f"{r['cpu_user_us']:.0f}+{r['cpu_sys_us']:.0f}"
                du = r.get("paired_d_user_us")
                if du:
                    cpu += f" (user {du['median']:+.0f})"
            rows.append((label, k, mx.get(k), pf.get(k), vs, cpu))
        results["variants"][v.name] = {"note": v.note, "mxgate": mx, "postfix": pf,
                                       "ref": v.ref, "paired": paired_by.get(v.name),
                                       "mxgate_config_overrides": v.mxgate,
                                       "postfix_overrides": v.postfix}

    results["host"]["loadavg_end"] = _loadavg()
    print()
    print(f"mxgate vs Postfix 3.7 smtpd: {os.cpu_count()} cpus, {a.size}-byte bodies, "
          f"median of {opts.repeats} runs over ~{a.seconds:g}s per load point "
          f"([variant] rows: median of {opts.rounds} interleaved rounds); "
          "both fsync each accepted message and deliver nothing")
    print_table(rows, sink_res)
    if any(v.name == "baseline" for v in variants):
        print()
        print(summary(rows, sink_res, why_none))
    costs = cost_lines(variants, paired_by, res_by, results.get("redis") or {})
    if costs:
        print()
        print("Costs against a ref, paired per round (a variant's run over the mean of "
              "its ref's runs just before and after it; median [range] over rounds):")
        for line in costs:
            print("  " + line)
    if hookcost is not None:
        print()
        rates = {n: r[0]["msgs_20"]["value"] for n, r in res_by.items()
                 if "value" in r[0].get("msgs_20", {})}
        print_hookcost(hookcost, rates)
    for v in variants:
        if v.interleave and v.name in res_by:
            notes.add(f"[{v.name}] {v.note}")
    if results.get("rbldnsd"):
        q = results["rbldnsd"]["queries"]
        notes.add(f"rbldnsd {results['rbldnsd']['address']} answered " + ", ".join(
            f"{n} {z}" for z, n in q.items() if z != "*") + " queries in all")
    if dns_why:
        notes.add(f"DNSBL: {dns_why}")
    for label, key, mx, pf, *_ in rows:
        for who, r in (("mxgate", mx), ("postfix", pf)):
            if r and "error" in r and len(r["error"]) > 48:
                notes.add(f"{who}: {' '.join(r['error'].split())}")
    for n in sorted(notes):
        print("note:", n)
    la = results["host"]["loadavg_start"]
    if la and la[0] > 0.7:
        print(f"note: the machine was busy before the bench started (load {la[0]:.2f} "
              f"on {os.cpu_count()} cpus): other work competes with both servers")

    try:
        os.makedirs(os.path.dirname(a.json), exist_ok=True)
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
        stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
        with open(os.path.join(os.path.dirname(a.json), f"bench-{stamp}.json"), "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"JSON: {a.json}")
    except OSError as e:
        print(f"JSON not written: {e}")
    log("done")
    return exit_code


def cost_lines(variants, paired_by, res_by, redis=None):
    """A block per variant with a ref: rate ratio, CPU per message, verdict."""
    out = []
    byname_metrics = {v.name: v.metrics for v in variants}

    def rng(d, fmt):
        return f"[{format(d['min'], fmt)}..{format(d['max'], fmt)}]"

    for v in variants:
        for key, pr in paired_by.get(v.name, {}).items():
            m = pr.get("mxgate")
            head = f"{v.name} vs {pr['ref']}, {MBYKEY[key].label}"
            if v.target is not None:
                head += f" -- {v.issue}, target: cost < {100 * v.target:.0f}%"
            if not m:
                if key in byname_metrics.get(pr["ref"], ()):
                    out.append(f"{head}: n/a")
                continue
            out.append(head)
            line = (f"    rate {m['median']:.3f}x {rng(m, '.2f')} over {m['n']} rounds "
                    f"(cost {100 * (1 - m['median']):+.1f}%)")
            if v.target is not None:
                below = sum(1 for r in m["ratios"] if r < 1 - v.target)
                line += (f": {'MET' if m['median'] >= 1 - v.target else 'NOT MET'}, "
                         f"{below}/{m['n']} rounds below {1 - v.target:.2f}x")
            if m["max"] - m["min"] > 0.25:
                line += " [noisy]"
            out.append(line)
            mx, pf = res_by.get(v.name, ({}, {}))
            r = mx.get(key) or {}
            rr = res_by.get(pr["ref"], ({}, {}))[0].get(key) or {}
            du, dk = r.get("paired_d_user_us"), r.get("paired_d_sys_us")
            pa, pu = r.get("paired_cpu_bound"), r.get("paired_cpu_bound_user")
            if du and dk and pa and pu and "cpu_user_us" in rr:
                who = "mxgate+redis-server" if v.name.startswith("state-redis") else "mxgate"
                out.append(f"    CPU µs/msg: {who} user {r['cpu_user_us']:.0f} vs "
                           f"{rr['cpu_user_us']:.0f} ({du['median']:+.1f} {rng(du, '+.0f')}), "
                           f"system {r['cpu_sys_us']:.0f} vs {rr['cpu_sys_us']:.0f} "
                           f"({dk['median']:+.1f} {rng(dk, '+.0f')}); smtp-source "
                           f"{r['client_cpu_us']:.0f}")
                line = (f"    CPU-bound rate: {pa['median']:.3f}x {rng(pa, '.2f')} from all "
                        f"CPU, {pu['median']:.3f}x {rng(pu, '.2f')} from the user-time "
                        "difference alone")
                if v.target is not None:
                    line += f": {'MET' if pu['median'] >= 1 - v.target else 'NOT MET'}"
                out.append(line)
            rd = (redis or {}).get(key, {}).get(v.name)
            if rd:
                per_out = rd.get("round_trips_per_outbound_message")
                out.append(f"    Redis: {rd['commands_per_message']} commands per message "
                           f"({', '.join(f'{k}={c}' for k, c in rd['commands'].items())}), "
                           f"{rd['round_trips_per_message']} round trips per message"
                           + (f" ({per_out} per outbound message)" if per_out is not None
                              else "")
                           + f"; redis-server CPU {rd['redis_cpu_us_per_message']:.0f} µs/msg, "
                           + "of it inside commands "
                           + ", ".join(f"{k} {u:g}" for k, u in rd["usec_per_call"].items())
                           + " µs per call")
            p = pr.get("postfix")
            if p:
                line = (f"    Postfix: rate {p['median']:.3f}x {rng(p, '.2f')}")
                q = (pf.get(key) or {})
                qu, qk = q.get("paired_d_user_us"), q.get("paired_d_sys_us")
                if qu and qk and "cpu_user_us" in q:
                    line += (f"; CPU µs/msg user {q['cpu_user_us']:.0f} "
                             f"({qu['median']:+.1f}), system {q['cpu_sys_us']:.0f} "
                             f"({qk['median']:+.1f})")
                if ratio(mx.get(key), pf.get(key)):
                    line += f"; mxgate/postfix {ratio(mx.get(key), pf.get(key)):.3g}x"
                out.append(line)
    return out


def _loadavg():
    try:
        with open("/proc/loadavg") as f:
            return [float(x) for x in f.read().split()[:3]]
    except (OSError, ValueError):
        return None


def _discard_queues():
    """Queued test mail is ballast once measured (configs and logs stay).
    Deleting tens of thousands of files can take minutes on a busy disk, so
    the directories are moved aside and removed by a detached `rm -rf`; the
    next run finishes any leftover before it measures."""
    trash = os.path.join(WORK, "trash", str(os.getpid()))
    moved = False
    dirs = [os.path.join(WORK, "postfix", "queue"), os.path.join(WORK, "mxgate", "state")]
    # The interleaved matrix's instances: postfix-VARIANT/, mxgate-VARIANT/.
    dirs += sorted(glob.glob(os.path.join(WORK, "postfix-*", "queue")))
    dirs += sorted(glob.glob(os.path.join(WORK, "mxgate-*", "state")))
    for d in dirs:
        if os.path.isdir(d):
            os.makedirs(trash, exist_ok=True)
            try:
                os.rename(d, os.path.join(trash, os.path.basename(os.path.dirname(d)) +
                                          "." + os.path.basename(d)))
                moved = True
            except OSError:
                shutil.rmtree(d, ignore_errors=True)
    if moved:
        subprocess.Popen(["rm", "-rf", trash], stdin=subprocess.DEVNULL,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                         start_new_session=True)


def _empty_trash():
    trash = os.path.join(WORK, "trash")
    if os.path.isdir(trash) and os.listdir(trash):
        log("removing test mail left by an earlier run")
        shutil.rmtree(trash, ignore_errors=True)
        LAST_DELETE[0] = time.time()
        return True
    return False


# When the bench last deleted many files (time.time()). This root
# filesystem is ext4 without a journal: for 60 s after an inode is freed
# (360 s while its inode-table block is dirty), allocating an inode in its
# block group skips it after reading it (ialloc.c: recently_deleted()), so
# every file created near a mass deletion costs much more CPU; a profile of
# a run right after one showed half the server's CPU there.
LAST_DELETE = [0.0]
RECENT_DELETE = 60


def wait_for_old_deletions():
    last = LAST_DELETE[0]
    try:   # the detached `rm -rf` of an earlier run touches trash/ last
        last = max(last, os.stat(os.path.join(WORK, "trash")).st_mtime)
    except OSError:
        pass
    age = time.time() - last
    if age < RECENT_DELETE:
        os.sync()     # written-back inode tables: 60 s, not 360 s
        wait = RECENT_DELETE - age
        log(f"waiting {wait:.0f}s: files were deleted {age:.0f}s ago and ext4 (no journal) "
            "makes file creation slow for 60s after a mass deletion")
        time.sleep(wait)


def _stop_stale(root, mxgate_bin):
    """Instances a previous bench run left behind (it was SIGKILLed)."""
    try:
        for d in [os.path.join(WORK, "postfix")] + sorted(
                glob.glob(os.path.join(WORK, "postfix-*"))):
            if d != os.path.join(WORK, "postfix-root") and os.path.isdir(d):
                PostfixServer(root, d, 0, log=log).stop_stale()
        for d in [os.path.join(WORK, "mxgate")] + sorted(
                glob.glob(os.path.join(WORK, "mxgate-*"))):
            MxgateServer(mxgate_bin, d, 0, 0, log=log).stop_stale()
        SmtpSink(root, 0, log=log).stop_stale()
    except Exception as e:
        log(f"stale-instance cleanup failed: {e!r}")


def _start(server):
    """Start server; on any failure (or a signal) stop whatever it left."""
    try:
        server.start()
    except BaseException:
        try:
            server.stop()
        except Exception:
            pass
        raise
    return server


if __name__ == "__main__":
    sys.exit(main())
