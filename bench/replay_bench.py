#!/usr/bin/python3
"""ruletest's replay speed: sessions per second of `bin/ruletest --quiet` on
one core (it is single-threaded), over a generated journal of N sessions
(bench/gen_journal.py: EHLO, MAIL, 1-3 RCPT, DATA, QUIT, DNSBL lookups)
replayed against the default rules.d/.

    /usr/bin/python3 bench/replay_bench.py [-n 100000] [--runs 3] [--perf]

Prints the median of the runs; --perf records one run with `perf record -g`
into /tmp/mxgate-replay-bench/perf.data and prints the top of the report.
Also checks that the replay changed nothing (the journal was generated as
the same rules would have answered).
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-n", type=int, default=100000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--perf", action="store_true")
    ap.add_argument("--bin", default=os.path.join(ROOT, "bin/ruletest"))
    args = ap.parse_args()

    os.makedirs(WORK, exist_ok=True)
    journal = os.path.join(WORK, "journal-%d.jsonl" % args.n)
    conf = os.path.join(WORK, "mxgate.lua")
    with open(conf, "w") as f:
        f.write(gen_journal.CONFIG + 'stdlib = "%s/stdlib"\n' % ROOT)
    if not os.path.exists(journal):
        t0 = time.time()
        gen_journal.generate(args.n, journal)
        print("generated %s (%d sessions, %.0f MB) in %.1fs" % (
            journal, args.n, os.path.getsize(journal) / 1e6, time.time() - t0))
    cmd = ["taskset", "-c", "0", args.bin, "-c", conf, "-r", os.path.join(ROOT, "rules.d"), "--quiet", journal]
    rates, cpu_rates = [], []
    for _ in range(args.runs):
        out = open(os.path.join(WORK, "out.txt"), "w+")
        t0 = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        _, status, ru = os.wait4(proc.pid, 0)
        dt = time.perf_counter() - t0
        cpu = ru.ru_utime + ru.ru_stime
        out.seek(0)
        stdout = out.read()
        out.close()
        if os.waitstatus_to_exitcode(status) != 0:
            sys.exit("ruletest failed (%d):\n%s" % (os.waitstatus_to_exitcode(status), stdout[-3000:]))
        m = re.search(r"summary: (\d+) sessions? replayed: (\d+) same, (\d+) would change, (\d+) unanswered",
                      stdout)
        if not m or int(m.group(1)) != args.n:
            sys.exit("unexpected output:\n" + stdout[-3000:])
        if int(m.group(3)) or int(m.group(4)):
            print("warning: the replay changed %s and left %s unanswered (generator out of step "
                  "with rules.d?)" % (m.group(3), m.group(4)))
        rates.append(args.n / dt)
        cpu_rates.append(args.n / cpu)
        print("run: %.2fs wall, %.2fs cpu: %.0f sessions/s wall, %.0f sessions/s of cpu" % (
            dt, cpu, args.n / dt, args.n / cpu))
    # On a shared machine the wall clock counts the other tenants too; the
    # cpu figure is what one core of ruletest does.
    print("ruletest --quiet: %.0f sessions/s wall, %.0f sessions/s per cpu-second "
          "(median of %d runs, %d sessions, one core, load average %.1f)" % (
              statistics.median(rates), statistics.median(cpu_rates), len(rates), args.n,
              os.getloadavg()[0]))
    if args.perf:
        data = os.path.join(WORK, "perf.data")
        subprocess.run(["perf", "record", "-g", "-o", data, "--"] + cmd, capture_output=True)
        rep = subprocess.run(["perf", "report", "-i", data, "--no-children", "--stdio", "--percent-limit", "1.5"],
                             capture_output=True, text=True)
        print("\n".join(l for l in rep.stdout.splitlines() if l and not l.startswith("#"))[:6000])


if __name__ == "__main__":
    main()
