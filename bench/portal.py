"""The portal bench: page and search latency over a million log lines.

    python3 bench/portal.py [--lines 1000000] [--rounds 200] [--keep]

Generates the log (bench/gen_log.py), builds build/bench/portal_bench,
which indexes it from nothing (timed) and renders each page ROUNDS times
(p50/p99), and prints one JSON object a line.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lines", type=int, default=1000000)
    ap.add_argument("--rounds", type=int, default=200)
    ap.add_argument("--keep", action="store_true", help="keep the log and index")
    a = ap.parse_args()
    subprocess.run(["make", "-s", "-f", "bench/Makefile", "portal_bench"], cwd=ROOT, check=True)
    d = tempfile.mkdtemp(prefix="mxgate-portal-bench-")
    try:
        log = os.path.join(d, "mxgate.log")
        picks = json.loads(subprocess.run([sys.executable, os.path.join(ROOT, "bench", "gen_log.py"), log,
                                           "--lines", str(a.lines)], check=True, capture_output=True,
                                          text=True).stdout)
        conf = os.path.join(d, "mxgate.lua")
        with open(conf, "w") as f:
            f.write('state_dir = "%s"\nlog_file = "%s"\nstdlib = "%s/stdlib"\nrules = "%s/rules.d"\n'
                    'journal = false\n' % (d, log, ROOT, ROOT))
        print(json.dumps({"log_lines": picks["lines"], "log_bytes": os.path.getsize(log)}))
        sys.stdout.flush()
        subprocess.run([os.path.join(ROOT, "build", "bench", "portal_bench"), conf, str(a.rounds),
                        picks["domain"], picks["rcpt"], picks["client"], picks["qid"]], check=True)
        du = subprocess.run(["du", "-sk", os.path.join(d, "index")], capture_output=True, text=True).stdout
        print(json.dumps({"index_kib": int(du.split()[0]) if du else None}))
    finally:
        if a.keep:
            print("kept in", d)
        else:
            shutil.rmtree(d, True)


if __name__ == "__main__":
    main()
