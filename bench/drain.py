#!/usr/bin/python3
"""Drain bench: a queue of --messages held while the next hop was down, then
the route brought up, mxgate beside Postfix in the same run.

Both servers take the same messages (smtp-source, 20 sessions, 2 KiB, one
recipient) while their next hop is a closed port, so every message is
deferred and on disk. Each is then stopped and started again with the next
hop on one `smtp-sink -c`, which counts what arrives:
  * mxgate: restarted with bench.test routed to the sink (its start-up scan
    loads the queue while it delivers);
  * Postfix: relayhost changed to the sink, started, `postqueue -f`.
The drain time is from that start until the sink has every message; the
ratio is Postfix's time over mxgate's (above 1: mxgate drains faster), with
each server's CPU seconds for the drain (every process, reaped children
included). Servers drain one after the other, never at once.

    /usr/bin/python3 bench/drain.py --messages 20000
    /usr/bin/python3 bench/drain.py --messages 20000 --perf /tmp/drain.perf  # perf record -g
        of mxgate's delivery process during its drain
"""
import argparse
import json
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import postfix   # noqa: E402
import procs     # noqa: E402
from e2e import CountingSink, mx_roles, mxgate_relay   # noqa: E402
from postfix import PostfixServer, SetupError, count_files   # noqa: E402

WORK = os.environ.get("MXGATE_BENCH_DIR", "/tmp/mxgate-bench")
DOMAIN, RCPT, SENDER = "bench.test", "user@bench.test", "sender@client.test"
T0 = time.monotonic()


def log(msg):
    print(f"[drain {time.monotonic() - T0:7.1f}s] {msg}", file=sys.stderr, flush=True)


def wait(cond, timeout, what):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return
        time.sleep(0.2)
    raise SetupError(f"timed out after {timeout:.0f}s waiting for {what}")


def fill(root, srv, n, size):
    dt, rc, out = postfix.smtp_source(root, srv.port, 20, n, True, size, RCPT, SENDER,
                                      timeout=1800)
    if rc != 0:
        raise SetupError(f"{srv.name}: smtp-source rc={rc}: {out[-200:]}")
    log(f"  {srv.name}: {n} queued with the next hop down in {dt:.1f}s")


def cpu(pids):
    return sum(procs.cpu_split(pids))


def drain_mxgate(root, binary, a, ports, sink, name="mxgate"):
    mx = mxgate_relay(binary, ports["mx"], ports["dead"], ports["dead"], base=f"{name}-drain",
                      route=f"127.0.0.1:{ports['dead']}")
    mx.name = name
    # Retried every second while down, so each message is tried and
    # deferred (its "T" line in spool/status/), as a real outage leaves it.
    mx.cfg["delivery"] = {"retry_min": 1, "retry_max": 2}
    mx.start()
    try:
        fill(root, mx, a.messages, a.size)
        status = os.path.join(mx.spool, "status")
        wait(lambda: count_files(status) >= a.messages, 600, "mxgate to defer every message")
    finally:
        mx.stop()
    del mx.cfg["delivery"]
    mx.cfg["hosted_domains"][DOMAIN]["route"] = f"127.0.0.1:{ports['sink']}"
    base = sink.count
    t0 = time.monotonic()
    mx.start(fresh=False)
    perf = None
    if a.perf:
        out = a.perf if name == "mxgate" else os.path.join(os.path.dirname(a.perf),
                                                           f"{name}.{os.path.basename(a.perf)}")
        # delivery.pid is rewritten by the new process: wait for a live child's.
        wait(lambda: mx_roles(mx)[1] in procs.tree([mx.proc.pid]), 10, "the delivery process")
        # CPU samples and, with their call chains, every time it blocks.
        perf = subprocess.Popen(["perf", "record", "-g", "-e", "cpu-clock,sched:sched_switch",
                                 "-o", out, "-p", str(mx_roles(mx)[1])],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    done = sink.wait_for(base + a.messages, stall=60)
    used = cpu(mx.pids())
    if perf:
        perf.send_signal(signal.SIGINT)
        perf.wait(60)
    got = sink.count - base
    mx.stop()
    if done is None:
        raise SetupError(f"mxgate: the sink stalled at {got} of {a.messages}")
    return {"seconds": round(done - t0, 2), "cpu_s": round(used, 2), "delivered": got}


def drain_postfix(root, a, ports, sink):
    def cf(relay):
        return {"relay_domains": DOMAIN,
                "smtpd_recipient_restrictions": "permit_mynetworks, reject_unauth_destination",
                "defer_transports": "", "in_flow_delay": "1s",
                "relayhost": f"[127.0.0.1]:{relay}", "smtp_tls_security_level": "none"}
    pf = PostfixServer(root, os.path.join(WORK, "postfix-drain"), ports["pf"], DOMAIN,
                       cf(ports["dead"]), log=log)
    pf.start()
    try:
        fill(root, pf, a.messages, a.size)
        q = pf.queue

        def all_deferred():
            return (count_files(os.path.join(q, "deferred")) >= a.messages and
                    count_files(os.path.join(q, "active")) == 0 and
                    count_files(os.path.join(q, "incoming")) == 0)
        wait(all_deferred, 600, "postfix to defer every message")
    finally:
        pf.stop()
    pf.overrides = cf(ports["sink"])
    with open(os.path.join(pf.conf, "main.cf"), "w") as f:
        f.write(pf.main_cf())
    base = sink.count
    t0 = time.monotonic()
    r = pf._postfix("start", timeout=120)
    pf.master_pid = pf._pidfile_pid()
    if r.returncode != 0 or pf.master_pid is None:
        raise SetupError(f"postfix restart failed: {r.stdout[-300:]}")
    try:
        subprocess.run([os.path.join(root, "usr/sbin/postqueue"), "-c", pf.conf, "-f"],
                       env=pf.env, check=True, timeout=60)
        done = sink.wait_for(base + a.messages, stall=60)
        used = cpu(pf.pids())
        got = sink.count - base
    finally:
        pf.stop()
    if done is None:
        raise SetupError(f"postfix: the sink stalled at {got} of {a.messages}")
    return {"seconds": round(done - t0, 2), "cpu_s": round(used, 2), "delivered": got}


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--size", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=1, help="queue and drain both, this many times")
    ap.add_argument("--servers", default="mxgate,postfix")
    ap.add_argument("--mxgate", default=os.environ.get("MXGATE_BIN", "bin/mxgate"))
    ap.add_argument("--also", action="append", default=[], metavar="NAME=PATH",
                    help="another mxgate binary drained in the same rounds (an A/B of a change)")
    ap.add_argument("--perf", help="perf record -g of mxgate's delivery process into this file"
                    " (NAME.FILE for --also ones)")
    ap.add_argument("--json", default=os.path.join(WORK, "results", "drain.json"))
    a = ap.parse_args()
    signal.signal(signal.SIGTERM, lambda *x: sys.exit(1))
    root = postfix.ensure_tree(WORK, log)
    postfix.ensure_users(log)
    ports = postfix.free_ports({"sink": 2857, "mx": 2855, "pf": 2856, "dead": 2859})
    binary = os.path.join(REPO, a.mxgate)
    want = a.servers.split(",")
    binaries = {"mxgate": binary} if "mxgate" in want else {}
    for spec in a.also:
        name, _, path = spec.partition("=")
        binaries[name] = os.path.join(REPO, path)
    sink = CountingSink(root, ports["sink"])
    res = {"time": time.strftime("%Y-%m-%dT%H:%M:%S"), "params": vars(a), "rounds": []}
    sink.start()
    try:
        for r in range(a.rounds):
            one = {}
            order = list(binaries) + (["postfix"] if "postfix" in want else [])
            order = order[r % len(order):] + order[:r % len(order)]
            for s in order:
                log(f"=== round {r + 1}: {s}, {a.messages} queued, then the route up")
                one[s] = (drain_mxgate(root, binaries[s], a, ports, sink, s) if s in binaries
                          else drain_postfix(root, a, ports, sink))
                x = one[s]
                log(f"  {s}: all {x['delivered']} at the sink {x['seconds']} s after start"
                    f" ({a.messages / x['seconds']:.0f} msgs/s), {x['cpu_s']} CPU s")
            res["rounds"].append(one)
    finally:
        sink.stop()
    report(res, a.messages)
    os.makedirs(os.path.dirname(a.json), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=1)


def report(res, n):
    print(f"\nDrain: {n} queued messages, next hop down then up (smtp-sink); seconds from"
          " start until the sink has all; vs postfix = postfix s / this s (>1: faster than"
          " Postfix), CPU = this CPU / Postfix's")
    for i, r in enumerate(res["rounds"]):
        pf = r.get("postfix")
        print(f"round {i + 1}:")
        for name, x in r.items():
            line = (f"  {name:10} {x['seconds']:7.2f} s {n / x['seconds']:6.0f} msgs/s"
                    f" {x['cpu_s'] * 1e6 / n:5.0f} CPU µs/msg")
            if pf and name != "postfix":
                line += (f"  vs postfix {pf['seconds'] / x['seconds']:.2f},"
                         f" CPU {x['cpu_s'] / max(pf['cpu_s'], 1e-9):.2f}")
            print(line)


if __name__ == "__main__":
    main()
