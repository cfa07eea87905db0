#!/usr/bin/python3
"""End-to-end bench (issue 12): smtp-source -> mxgate -> smtp-sink beside Postfix relaying to the same sink.

Messages/s are counted where they arrive (smtp-sink -c), not by our 250s;
the accept rate of the same runs (smtp-source's wall time) is set beside
aiosmtpd writing nothing. Every server runs at once on its own port, the
runs alternate (rotated order each round), and ratios are per round.
Also: latency from our 250 to the next hop's receipt (tagged probe
messages during the 20-session load), each mxgate worker's share of CPU,
the delivery process's memory per queued message and start-up with
--queued messages in the queue. See bench/README.md, "End to end".
"""
import argparse
import json
import os
import re
import signal
import smtplib
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import postfix   # noqa: E402
import procs     # noqa: E402
from mxgate import MxgateServer   # noqa: E402
from postfix import PostfixServer, SetupError, lib_env, wait_ready   # noqa: E402

WORK = os.environ.get("MXGATE_BENCH_DIR", "/tmp/mxgate-bench")
DOMAIN, PROBE_DOMAIN = "bench.test", "probe.test"
RCPT, SENDER = f"user@{DOMAIN}", "sender@client.test"
T0 = time.monotonic()
STARTED = []


def log(msg):
    print(f"[e2e {time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


class CountingSink:
    """smtp-sink -c: one `mesg=N` per completed DATA on stdout, read by a thread."""

    name = "smtp-sink"

    def __init__(self, root, port):
        self.root, self.port = root, port
        self.count, self.cond, self.proc = 0, threading.Condition(), None

    def start(self):
        exe = os.path.join(self.root, "usr/sbin/smtp-sink")
        procs.terminate(procs.find(lambda p: procs.exe(p) == exe and
                                   f":{self.port}" in procs.cmdline(p)), grace=5)
        self.proc = subprocess.Popen([exe, "-c", "-u", "nobody", f"127.0.0.1:{self.port}", "1024"],
                                     env=lib_env(self.root), stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        threading.Thread(target=self._read, daemon=True).start()
        wait_ready(self.port, 10, lambda: None if self.proc.poll() is None else "smtp-sink exited")

    def _read(self):
        fd, tail = self.proc.stdout.fileno(), b""
        while True:
            b = os.read(fd, 65536)
            if not b:
                return
            tail = (tail + b)[-64:]
            m = re.findall(rb"mesg=(\d+)", tail)
            if m:
                with self.cond:
                    self.count = int(m[-1])
                    self.cond.notify_all()

    def wait_for(self, target, stall=30.0):
        """monotonic time at which the count reached target, or None after
        `stall` seconds without progress."""
        with self.cond:
            last, since = self.count, time.monotonic()
            while self.count < target:
                self.cond.wait(0.5)
                if self.count != last:
                    last, since = self.count, time.monotonic()
                elif time.monotonic() - since > stall:
                    return None
            return time.monotonic()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class ProbeSink:
    """An aiosmtpd next hop for probe.test that notes when each probe arrives."""

    def __init__(self, port):
        from aiosmtpd.controller import Controller
        self.got = {}
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                m = re.search(rb"X-Probe: (\S+)", envelope.original_content or b"")
                if m:
                    sink.got[m.group(1).decode()] = time.monotonic()
                return "250 2.0.0 Ok"
        self.ctl = Controller(Handler(), hostname="127.0.0.1", port=port)

    def start(self):
        self.ctl.start()

    def stop(self):
        self.ctl.stop()


class Prober(threading.Thread):
    """One reused smtplib session sending a tagged probe every 1/rate s;
    notes when our 250 came."""

    def __init__(self, port, tag, rate):
        super().__init__(daemon=True)
        self.port, self.tag, self.gap = port, tag, 1.0 / rate
        self.sent, self.halt, self.errors = {}, threading.Event(), 0

    def run(self):
        s, i = None, 0
        while not self.halt.is_set():
            i += 1
            pid = f"{self.tag}-{i}"
            msg = (f"From: <{SENDER}>\r\nTo: <p@{PROBE_DOMAIN}>\r\nSubject: probe\r\n"
                   f"X-Probe: {pid}\r\n\r\nprobe\r\n")
            try:
                if s is None:
                    s = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
                    s.ehlo("probe.client.test")
                s.sendmail(SENDER, [f"p@{PROBE_DOMAIN}"], msg)
                self.sent[pid] = time.monotonic()
            except (OSError, smtplib.SMTPException):
                self.errors += 1
                s = None
            self.halt.wait(self.gap)
        if s:
            try:
                s.quit()
            except (OSError, smtplib.SMTPException):
                pass


NULL_SERVER = r"""
import asyncio, sys
from aiosmtpd.smtp import SMTP
class H:
    async def handle_DATA(self, server, session, envelope):
        return "250 2.0.0 Ok"
loop = asyncio.new_event_loop()
srv = loop.run_until_complete(loop.create_server(
    lambda: SMTP(H(), hostname="null.bench.test"), "127.0.0.1", int(sys.argv[1]), backlog=1024))
loop.run_forever()
"""


class AiosmtpdNull:
    """aiosmtpd answering 250 to everything and writing nothing (the issue's peer)."""

    name = "aiosmtpd"

    def __init__(self, port):
        self.port, self.proc = port, None

    def start(self):
        self.proc = subprocess.Popen(["/usr/bin/python3", "-c", NULL_SERVER, str(self.port)],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                     start_new_session=True)
        wait_ready(self.port, 20, lambda: None if self.proc.poll() is None else "aiosmtpd exited")

    def pids(self):
        return {self.proc.pid}

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


def postfix_relay(root, port, sink_port, probe_port):
    """Postfix relaying bench.test through its relay transport (smtp(8)) to
    relayhost = the sink; probe.test to the probe sink. Default flow control."""
    return PostfixServer(root, os.path.join(WORK, "postfix-e2e"), port, DOMAIN, {
        "relay_domains": f"{DOMAIN} {PROBE_DOMAIN}",
        "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination",
        "defer_transports": "",
        "in_flow_delay": "1s",
        "relayhost": f"[127.0.0.1]:{sink_port}",
        "transport_maps": f"inline:{{ {PROBE_DOMAIN}=relay:[127.0.0.1]:{probe_port} }}",
        "smtp_tls_security_level": "none",
    }, log=log)


def mxgate_relay(binary, port, sink_port, probe_port, base="mxgate-e2e", route=None):
    route = route or f"127.0.0.1:{sink_port}"
    return MxgateServer(binary, os.path.join(WORK, base), port, sink_port, {
        "hosted_domains": {DOMAIN: {"route": route},
                           PROBE_DOMAIN: {"route": f"127.0.0.1:{probe_port}"}},
    }, log=log)


def mx_roles(mx):
    """(worker pids, delivery pid) of a running mxgate."""
    try:
        with open(os.path.join(mx.spool, "delivery.pid")) as f:
            dpid = int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        dpid = None
    kids = [p for p in procs.tree([mx.proc.pid]) if procs.ppid_of(p) == mx.proc.pid]
    return sorted(p for p in kids if p != dpid), dpid


def one_run(root, srv, sink, sessions, n, size, worker_cpu=None):
    """Send n messages; returns (accept msgs/s, end-to-end msgs/s or None,
    the server's CPU µs per message: every process, user + system)."""
    base = sink.count
    workers = mx_roles(srv)[0] if worker_cpu is not None else []
    c0 = [sum(procs.cpu_split([w])) for w in workers]
    all0 = sum(procs.cpu_split(srv.pids()))
    os.sync()
    t0 = time.monotonic()
    dt, rc, out = postfix.smtp_source(root, srv.port, sessions, n, True, size, RCPT, SENDER,
                                      timeout=600)
    if rc != 0:
        raise SetupError(f"{srv.name}: smtp-source rc={rc}: {out[-200:]}")
    done = sink.wait_for(base + n) if srv.name != "aiosmtpd" else None
    if workers:
        worker_cpu.append([sum(procs.cpu_split([w])) - c for w, c in zip(workers, c0)])
    if srv.name != "aiosmtpd" and done is None:
        raise SetupError(f"{srv.name}: the sink stalled at {sink.count - base} of {n}")
    cpu = (sum(procs.cpu_split(srv.pids())) - all0) * 1e6 / n
    return n / dt, (n / (done - t0) if done else None), cpu


def med(xs):
    xs = [x for x in xs if x is not None]
    return statistics.median(xs) if xs else None


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100.0 * len(xs)))] if xs else None


def measure_level(root, servers, sink, sessions, a, probe=None):
    """Warm-up (sizes each server's runs to ~a.seconds), then a.repeats
    rounds, each server once per round in a rotated order."""
    sizes, runs = {}, {s.name: [] for s in servers}
    cpu = {s.name: [] for s in servers if isinstance(s, MxgateServer)}
    for s in servers:
        n = max(100, 10 * sessions)
        acc, e2e, _ = one_run(root, s, sink, sessions, n, a.size)
        sizes[s.name] = int(min(max((e2e or acc) * a.seconds, 20 * sessions, 200), 50000))
        log(f"  {s.name} warm-up {sessions} sessions: accept {acc:.0f}/s e2e "
            f"{e2e and round(e2e)}/s -> {sizes[s.name]} msgs a run")
    for r in range(a.repeats):
        order = servers[r % len(servers):] + servers[:r % len(servers)]
        if r % 2:
            order.reverse()
        for s in order:
            acc, e2e, us = one_run(root, s, sink, sessions, sizes[s.name], a.size,
                                   cpu.get(s.name))
            runs[s.name].append((acc, e2e, us))
            log(f"  round {r + 1} {s.name:8} {sessions:3} sessions: accept {acc:7.0f}/s "
                f"end-to-end {e2e and round(e2e)}/s, {us:.0f} CPU µs/msg")
    out = {"sessions": sessions, "runs": runs, "messages_per_run": sizes}
    for name, c in cpu.items():
        if c:
            tot = sum(sum(x) for x in c)
            out.setdefault("worker_cpu_share", {})[name] = [
                round(sum(x[i] for x in c) / max(1e-9, tot), 3) for i in range(len(c[0]))]
    names = [s.name for s in servers]
    for s in servers:
        if isinstance(s, MxgateServer) and s.name != "mxgate":
            out.setdefault("vs_mxgate", {})[s.name] = {
                k: round(med([x[i] / m[i] for x, m in zip(runs[s.name], runs["mxgate"])
                              if x[i] and m[i]]) or 0, 2)
                for k, i in (("accept", 0), ("e2e", 1), ("cpu_per_msg", 2))}
    for peer, which in (("postfix", 1), ("aiosmtpd", 0)):
        if "mxgate" in names and peer in names:
            rs = [m[which] / p[which] for m, p in zip(runs["mxgate"], runs[peer])
                  if m[which] and p[which]]
            key = "e2e_vs_postfix" if which else "accept_vs_aiosmtpd"
            out[key] = {"median": round(med(rs), 2), "min": round(min(rs), 2),
                        "max": round(max(rs), 2)} if rs else None
    if "postfix" in names and "mxgate" in names:
        rs = [m[0] / p[0] for m, p in zip(runs["mxgate"], runs["postfix"])]
        out["accept_vs_postfix"] = {"median": round(med(rs), 2), "min": round(min(rs), 2),
                                    "max": round(max(rs), 2)}
    return out


def latency(probers, sink_probe):
    res = {}
    for name, p in probers.items():
        lat = [(sink_probe.got[k] - t) * 1000 for k, t in p.sent.items() if k in sink_probe.got]
        res[name] = {"probes": len(p.sent), "arrived": len(lat), "errors": p.errors,
                     "p50_ms": pct(lat, 50) and round(pct(lat, 50), 2),
                     "p99_ms": pct(lat, 99) and round(pct(lat, 99), 2)}
    return res


def queued_phase(root, binary, a, ports, sink):
    """--queued messages accepted with the route down (deferred, held by the
    delivery process), its memory before and after; then a restart with the
    route up: time to the delivery_scanned line and to the last one at the sink."""
    mx = mxgate_relay(binary, ports["mxq"], ports["dead"], ports["probe"], base="mxgate-queued",
                      route=f"127.0.0.1:{ports['dead']}")
    mx.start()
    STARTED.append(mx)
    postfix.smtp_source(root, mx.port, 1, 10, True, a.size, RCPT, SENDER)
    time.sleep(1)
    dpid = mx_roles(mx)[1]
    m0 = procs.mem([dpid])["private"]
    t = time.monotonic()
    dt, rc, out = postfix.smtp_source(root, mx.port, 20, a.queued, True, a.size, RCPT, SENDER,
                                      timeout=1800)
    log(f"  {a.queued} queued with the route down in {dt:.1f}s (rc {rc})")
    prev = -1
    while True:                      # until the delivery process stops growing
        time.sleep(1)
        m1 = procs.mem([dpid])["private"]
        if abs(m1 - prev) <= m1 / 200 or time.monotonic() - t > 300:
            break
        prev = m1
    res = {"queued": a.queued + 10, "delivery_private_kib_before": m0,
           "delivery_private_kib_after": m1,
           "bytes_per_queued_msg": round((m1 - m0) * 1024 / a.queued)}
    mx.stop()
    # Restart with the route still down: every message is loaded and
    # deferred, nothing else to do (the start-up the issue asks for).
    t_ready, t_scan = restart(mx)
    res.update({"restart_down_to_220_s": t_ready, "restart_down_to_scanned_s": t_scan,
                "delivery_private_kib_restarted": procs.mem([mx_roles(mx)[1]])["private"]})
    mx.stop()
    # And with the route up: loaded while delivering, until the sink has all.
    mx.cfg["hosted_domains"][DOMAIN]["route"] = f"127.0.0.1:{ports['sink']}"
    base = sink.count
    t0 = time.monotonic()
    t_ready, t_scan = restart(mx)
    done = sink.wait_for(base + res["queued"], stall=60)
    res.update({"start_to_220_s": t_ready, "start_to_scanned_s": t_scan,
                "start_to_all_delivered_s": done and round(done - t0, 2),
                "delivered": sink.count - base})
    mx.stop()
    return res


def restart(mx):
    """Starts mx on its queue: seconds to the 220 and to delivery_scanned."""
    t0 = time.monotonic()
    mx.start(fresh=False)
    t_ready = time.monotonic() - t0
    while time.monotonic() - t0 < 600:
        try:
            with open(mx.logfile) as f:
                if "event=delivery_scanned" in f.read():
                    return round(t_ready, 2), round(time.monotonic() - t0, 2)
        except OSError:
            pass
        time.sleep(0.05)
    return round(t_ready, 2), None


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", default="1,20,100")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=2.0, help="end-to-end seconds a run")
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--servers", default="mxgate,postfix,aiosmtpd")
    ap.add_argument("--probe-rate", type=float, default=20.0, help="probes/s at 20 sessions")
    ap.add_argument("--queued", type=int, default=100000, help="0: skip the queued phase")
    ap.add_argument("--mxgate", default=os.environ.get("MXGATE_BIN", "bin/mxgate"))
    ap.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                    help="another mxgate binary in the same rounds (an A/B of a change); "
                    "its ratios are to --mxgate's")
    ap.add_argument("--json", default=os.path.join(WORK, "results", "e2e.json"))
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *x: sys.exit(1))
    binary = os.path.join(REPO, a.mxgate)
    root = postfix.ensure_tree(WORK, log)
    postfix.ensure_users(log)
    taken = set()

    def port(pref):
        p = postfix.free_port(pref, taken)
        taken.add(p)
        return p
    ports = {k: port(p) for k, p in (("sink", 2827), ("probe", 2828), ("mx", 2825),
                                     ("pf", 2826), ("null", 2829), ("mxq", 2830),
                                     ("dead", 2831))}
    want = a.servers.split(",")
    sink, psink = CountingSink(root, ports["sink"]), ProbeSink(ports["probe"])
    results = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "params": vars(a), "levels": []}
    servers = []
    try:
        sink.start()
        STARTED.append(sink)
        psink.start()
        STARTED.append(psink)
        if "mxgate" in want:
            servers.append(mxgate_relay(binary, ports["mx"], ports["sink"], ports["probe"]))
        for i, spec in enumerate(a.also):
            name, _, path = spec.partition("=")
            ports[name] = port(2840 + i)
            extra = mxgate_relay(os.path.join(REPO, path), ports[name], ports["sink"],
                                 ports["probe"], base=f"mxgate-e2e-{name}")
            extra.name = name
            servers.append(extra)
        if "postfix" in want:
            servers.append(postfix_relay(root, ports["pf"], ports["sink"], ports["probe"]))
        if "aiosmtpd" in want:
            servers.append(AiosmtpdNull(ports["null"]))
        for s in servers:
            s.start()
            STARTED.append(s)
        for lvl in [int(x) for x in a.sessions.split(",") if x]:
            probers = {}
            if lvl == 20 and a.probe_rate > 0:
                for s in servers:
                    if s.name in ("mxgate", "postfix"):
                        probers[s.name] = Prober(s.port, s.name, a.probe_rate)
                        probers[s.name].start()
            log(f"=== {lvl} sessions")
            r = measure_level(root, servers, sink, lvl, a)
            for p in probers.values():
                p.halt.set()
                p.join()
            if probers:
                time.sleep(1)
                r["latency_250_to_next_hop"] = latency(probers, psink)
            results["levels"].append(r)
        if a.queued > 0 and "mxgate" in want:
            log(f"=== {a.queued} queued messages")
            results["queued"] = queued_phase(root, binary, a, ports, sink)
    finally:
        for s in reversed(STARTED):
            try:
                s.stop()
            except Exception as e:   # noqa: BLE001
                log(f"stopping {getattr(s, 'name', s)}: {e}")
    report(results)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(results, f, indent=1)
    log(f"JSON: {a.json}")


def report(res):
    print("\nEnd to end: smtp-source -> server -> smtp-sink (msgs/s counted at the sink);"
          " accept = the same runs' 250 rate; medians of the rounds, ratios per round")
    print(f"{'sessions':>8} {'mxgate e2e':>11} {'postfix e2e':>12} {'mx/pf e2e':>16}"
          f" {'mx accept':>10} {'aiosmtpd':>9} {'mx/aio accept':>16} {'worker CPU':>12}"
          f" {'mx µs':>7} {'pf µs':>7}")
    for lv in res["levels"]:
        runs = lv["runs"]

        def m(name, i):
            v = med([r[i] for r in runs.get(name, [])])
            return f"{v:.0f}" if v else "-"

        def rr(key):
            x = lv.get(key)
            return f"{x['median']:.2f} ({x['min']:.2f}-{x['max']:.2f})" if x else "-"
        share = "/".join(f"{x * 100:.0f}%" for x in lv.get("worker_cpu_share", {}).get("mxgate", []))
        print(f"{lv['sessions']:>8} {m('mxgate', 1):>11} {m('postfix', 1):>12}"
              f" {rr('e2e_vs_postfix'):>16} {m('mxgate', 0):>10} {m('aiosmtpd', 0):>9}"
              f" {rr('accept_vs_aiosmtpd'):>16} {share or '-':>12}"
              f" {m('mxgate', 2):>7} {m('postfix', 2):>7}")
        for name, v in lv.get("vs_mxgate", {}).items():
            share = "/".join(f"{x * 100:.0f}%" for x in lv.get("worker_cpu_share", {}).get(name, []))
            print(f"         {name} ({m(name, 1)} e2e, {m(name, 0)} accept msgs/s) over mxgate in the"
                  f" same rounds: e2e {v['e2e']:.2f}, accept {v['accept']:.2f}, CPU per message"
                  f" {v['cpu_per_msg']:.2f}; worker CPU {share}")
        for name, l in lv.get("latency_250_to_next_hop", {}).items():
            print(f"         latency 250 -> next hop, {name}: p50 {l['p50_ms']} ms, p99 "
                  f"{l['p99_ms']} ms ({l['arrived']} of {l['probes']} probes)")
    q = res.get("queued")
    if q:
        print(f"queued {q['queued']}: delivery process {q['bytes_per_queued_msg']} B/message"
              f" private; restart with the route down: 220 after {q['restart_down_to_220_s']} s,"
              f" every file loaded after {q['restart_down_to_scanned_s']} s; with the route up:"
              f" all loaded after {q['start_to_scanned_s']} s, all {q['delivered']} at the sink"
              f" after {q['start_to_all_delivered_s']} s")


if __name__ == "__main__":
    main()
