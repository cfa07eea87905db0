#!/usr/bin/python3
"""ruletest's replay speed: `bin/ruletest --diff` over a generated journal of
N sessions (bench/gen_journal.py: EHLO, MAIL, 1-3 RCPT, DATA, QUIT, DNSBL
lookups) replayed against the default rules.d/, as one process on one core
(`--jobs 1`, taskset) and as ruletest runs by default on this machine
(`--jobs` = the CPUs, the journal cut into runs of whole lines, one process
each); the one-core run only up to --single-max sessions. `make bench` runs
it at 100,000 and 1,000,000 sessions (the journals are generated once into
/tmp/mxgate-replay-bench: 0.2 and 2.1 GB, about 1 and 10 minutes).

    /usr/bin/python3 bench/replay_bench.py [-n 100000[,1000000]] [--runs 3] [--single-max 100000] [--perf]

Prints wall and CPU time of each run, the median, and the load average (on
a shared machine the wall clock counts the other tenants too). --perf
records one single-core run with `perf record -g` into
/tmp/mxgate-replay-bench/perf.data and prints the top of the report. Also
checks that the replay changed nothing (the journal was generated as the
same rules would have answered).

The simulation is on, as in every ruletest run: every greylist() and
ratelimit() call also runs against the in-memory state store on the
session's clock (each --jobs shard over its own run, in time order), and
answers the questions the record did not ask. This journal has one
ratelimit() per outbound session (15%) and no greylist().
"""
import argparse
import os
import re
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import gen_journal  # noqa: E402

WORK = "/tmp/mxgate-replay-bench"


def run(cmd, n, same=True):
    """One run: (wall seconds, CPU seconds of ruletest and its shards, whether
    the shards were kept). same: the replay must change nothing."""
    out = open(os.path.join(WORK, "out.txt"), "w+")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    _, status, ru = os.wait4(proc.pid, 0)
    dt = time.perf_counter() - t0
    # wait4's rusage counts the process; its shards are its children, reaped by it.
    cpu = ru.ru_utime + ru.ru_stime
    out.seek(0)
    stdout = out.read()
    out.close()
    code = os.waitstatus_to_exitcode(status)
    m = re.search(r"summary: (\d+) sessions? replayed: (\d+) same, (\d+) would change, (\d+) unanswered",
                  stdout)
    if code not in (0, 1) or not m or int(m.group(1)) != n:
        sys.exit("ruletest failed (%d):\n%s" % (code, stdout[-3000:]))
    if same and (int(m.group(3)) or int(m.group(4))):
        print("warning: the replay changed %s and left %s unanswered (generator out of step "
              "with rules.d?)" % (m.group(3), m.group(4)))
    if not same and not int(m.group(3)):
        print("warning: greylisting on changed nothing")
    return dt, cpu, "replaying as one job" not in stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", default="100000", help="sessions; several: 100000,1000000")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--single-max", type=int, default=100000,
                    help="also run one job on one core up to this many sessions")
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin/ruletest"))
    args = ap.parse_args()

    os.makedirs(WORK, exist_ok=True)
    conf = os.path.join(WORK, "mxgate.lua")
    with open(conf, "w") as f:
        f.write(gen_journal.CONFIG + 'stdlib = "%s/stdlib"\n' % ROOT)
    # "What if" greylisting were on: no recorded session asked greylist(),
    # so every inbound recipient is answered by the simulated store.
    grey = os.path.join(WORK, "mxgate-greylist.lua")
    with open(grey, "w") as f:
        f.write(gen_journal.CONFIG.replace("greylist = false", "greylist = true") +
                'stdlib = "%s/stdlib"\n' % ROOT)
    cpus = os.cpu_count() or 1
    lines = []
    for n in [int(x) for x in args.n.split(",")]:
        journal = os.path.join(WORK, "journal-%d.jsonl" % n)
        if not os.path.exists(journal):
            t0 = time.time()
            gen_journal.generate(n, journal + ".tmp")
            os.rename(journal + ".tmp", journal)
            print("generated %s (%d sessions, %.0f MB) in %.1fs" % (
                journal, n, os.path.getsize(journal) / 1e6, time.time() - t0))
        base = [args.bin, "-c", conf, "-r", os.path.join(ROOT, "rules.d"), "--diff"]
        variants = [("%d jobs (default)" % cpus, base + [journal], True),
                    ("greylisting on (simulated), %d jobs (default)" % cpus,
                     [args.bin, "-c", grey, "-r", os.path.join(ROOT, "rules.d"), "--diff", journal], False)]
        if n <= args.single_max:
            variants.insert(0, ("1 job, 1 core", ["taskset", "-c", "0"] + base + ["--jobs", "1", journal], True))
        for label, cmd, same in variants:
            walls, cpus_used, kept = [], [], True
            for _ in range(args.runs):
                dt, cpu, k = run(cmd, n, same)
                walls.append(dt)
                cpus_used.append(cpu)
                kept = kept and k
            wall, cpu = statistics.median(walls), statistics.median(cpus_used)
            line = ("ruletest --diff, %d sessions, %s: %.1f s wall (%.0f sessions/s), %.1f s CPU "
                    "(%.0f sessions per CPU-second); median of %d, load average %.1f%s" % (
                        n, label, wall, n / wall, cpu, n / cpu, args.runs, os.getloadavg()[0],
                        "" if kept else "; the runs needed each other: replayed as one job"))
            print(line, flush=True)
            lines.append(line)
    print("\nreplay speed (simulation on: each greylist()/ratelimit() call also runs on the in-memory store)")
    for line in lines:
        print("  " + line)
    journal = os.path.join(WORK, "journal-%s.jsonl" % args.n.split(",")[0])
    cmd = ["taskset", "-c", "0", args.bin, "-c", conf, "-r", os.path.join(ROOT, "rules.d"), "--diff",
           "--jobs", "1", journal]
    if args.perf:
        data = os.path.join(WORK, "perf.data")
        subprocess.run(["perf", "record", "-g", "-o", data, "--"] + cmd, capture_output=True)
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "--percent-limit", "1.5"],
                             capture_output=True, text=True)
        print("\n".join(l for l in rep.stdout.splitlines() if l and not l.startswith("#"))[:6000])


if __name__ == "__main__":
    main()
