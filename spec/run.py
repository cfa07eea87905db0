#!/usr/bin/python3
"""Runs every test: C unit binaries, the ruleset cases (spec/ruletest/*.session
through bin/ruletest), then the end-to-end suite against bin/mxgate and
again against the ASan/UBSan build (bin-asan/mxgate).

    spec/run.py [-k PATTERN] [--no-asan] [--timeout SECONDS]

Ends with the line "N passed, N failed"; exits 1 when anything failed.
First, spec/preflight.py checks every external tool the tests use: a missing
one stops the run (exit 2) with one line naming its Debian package.

Nothing a test started may outlive it: every process started by the run
carries its mark (spec/e2e/leftovers.py). A test after which one of its
processes still runs fails ("left running: PID CMD"), and those processes
are killed; a test that runs longer than --timeout (default 900 s) is
stopped with an error and its cleanups run. At the end the fixtures the
tests share are stopped, and anything of the run still alive is named,
killed and counted as a failure; so is a run ended by SIGINT/SIGTERM.
"""
import argparse
import atexit
import glob
import os
import signal
import subprocess
import sys
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from spec.e2e import leftovers  # noqa: E402  (needs ROOT on the path)


class Tally(unittest.TextTestResult):
    pass


# Unit binaries that run again against each other state backend: the env
# var their UNIT_MAIN_INIT reads, set to a real redis-server's address.
BACKENDS = {"test_state": "MXGATE_TEST_REDIS"}


def run_unit(exe, label, env=None):
    passed = failed = 0
    proc = subprocess.run([exe], cwd=ROOT, capture_output=True, text=True, timeout=300, env=env)
    for line in proc.stdout.splitlines():
        if line.startswith("ok "):
            passed += 1
            print(f"ok   unit/{label}: {line[3:]}")
        elif line.startswith("not ok "):
            failed += 1
            print(f"FAIL unit/{label}: {line[7:]}")
        elif line.startswith("skip "):
            print(f"skip unit/{label}: {line[5:]}")
    if proc.returncode != 0 and "not ok" not in proc.stdout:
        failed += 1
        print(f"FAIL unit/{label}: exited {proc.returncode}\n{proc.stderr[-2000:]}")
    elif proc.returncode != 0:
        print(proc.stderr[-4000:])
    return passed, failed


def run_units(pattern):
    passed = failed = 0
    for exe in sorted(glob.glob(os.path.join(ROOT, "build/unit/test_*"))):
        name = os.path.basename(exe)
        if pattern and pattern not in name and pattern not in name + "[redis]":
            continue
        if not pattern or pattern in name:
            p, f = run_unit(exe, name)
            passed, failed = passed + p, failed + f
        if name in BACKENDS:
            from spec.e2e.redisserver import RedisServer
            with RedisServer() as r:
                env = dict(os.environ, **{BACKENDS[name]: r.address})
                p, f = run_unit(exe, name + "[redis]", env)
            passed, failed = passed + p, failed + f
            # The in-memory store of ruletest's simulation (state_mem.c).
            p, f = run_unit(exe, name + "[memory]", dict(os.environ, MXGATE_TEST_MEMORY="1"))
            passed, failed = passed + p, failed + f
    return passed, failed


def run_ruletest(pattern):
    """Every spec/ruletest/*.session case, one bin/ruletest run: ok/FAIL each."""
    cases = sorted(glob.glob(os.path.join(ROOT, "spec/ruletest/*.session")))
    cases = [c for c in cases if not pattern or pattern in "ruletest/" + os.path.basename(c)]
    if not cases:
        return 0, 0
    exe = os.path.join(ROOT, "bin/ruletest")
    proc = subprocess.run([exe, "-c", os.path.join(ROOT, "spec/ruletest/mxgate.lua")] +
                          [os.path.relpath(c, ROOT) for c in cases],
                          cwd=ROOT, capture_output=True, text=True, timeout=300)
    passed = failed = 0
    seen = set()
    block = None
    for line in proc.stdout.splitlines():
        if line.startswith(("PASS ", "FAIL ")):
            name = os.path.basename(line[5:].split(":", 1)[0])
            seen.add(name)
            if line.startswith("PASS "):
                passed += 1
                print(f"ok   ruletest/{name}")
                block = None
            else:
                failed += 1
                print(f"FAIL ruletest/{name}: {line[5:].split(': ', 1)[-1]}")
                block = name
        elif block and line.startswith(" "):
            print("     " + line)
    for c in cases:
        if os.path.basename(c) not in seen:
            failed += 1
            print(f"FAIL ruletest/{os.path.basename(c)}: no result (exit {proc.returncode})\n"
                  f"{proc.stderr[-2000:]}")
    return passed, failed


def load_e2e(pattern, asan):
    loader = unittest.TestLoader()
    suite = unittest.TestSuite()
    for path in sorted(glob.glob(os.path.join(ROOT, "spec/e2e/test_*.py"))):
        mod = "spec.e2e." + os.path.basename(path)[:-3]
        tests = loader.loadTestsFromName(mod)
        for t in iter_tests(tests):
            tid = t.id()
            if pattern and pattern not in tid:
                continue
            # The ASan pass re-runs only what drives the mxgate server.
            if asan and not getattr(t, "USES_MXGATE", False):
                continue
            suite.addTest(t)
    return suite


def iter_tests(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from iter_tests(t)
        else:
            yield t


class TestTimeout(Exception):
    """Raised in the test that ran past --timeout: its cleanups still run."""


def _timeout(sig, frame):
    raise TestTimeout("the test ran past --timeout")


def left_by(**mark):
    """Processes with this mark that still run a few seconds on (a process
    being stopped as the test ended gets that long), killed: their
    descriptions, or []."""
    pids = leftovers.wait_gone(leftovers.marked(**mark), timeout=5)
    names = [leftovers.describe(p) for p in pids]
    leftovers.kill(pids)
    return names


def run_e2e(pattern, asan, timeout):
    os.environ["MXGATE_BIN"] = os.path.join(ROOT, "bin-asan/mxgate" if asan else "bin/mxgate")
    os.environ["MXGATE_ASAN"] = "1" if asan else ""
    suite = load_e2e(pattern, asan)
    label = "asan" if asan else "e2e"
    passed = failed = 0
    signal.signal(signal.SIGALRM, _timeout)
    for t in iter_tests(suite):
        result = unittest.TestResult()
        t0 = time.time()
        with leftovers.owner(t.id()):
            signal.alarm(timeout)
            try:
                t.run(result)
            finally:
                signal.alarm(0)
        dt = time.time() - t0
        bad = [tb for _, tb in result.failures + result.errors]
        left = left_by(**{leftovers.RUN: os.environ[leftovers.RUN], leftovers.OWNER: t.id()})
        if left:
            bad.append("left running after the test (now killed):\n" + "\n".join(left))
        if bad:
            failed += 1
            print(f"FAIL {label}/{t.id()} ({dt:.1f}s)")
            for tb in bad:
                print("     " + tb.replace("\n", "\n     "))
        elif result.skipped:
            print(f"skip {label}/{t.id()}: {result.skipped[0][1]}")
        else:
            passed += 1
            print(f"ok   {label}/{t.id()} ({dt:.1f}s)")
        sys.stdout.flush()
    return passed, failed


def _interrupted(sig, frame):
    raise KeyboardInterrupt(f"signal {sig}")


def end_of_run():
    """Stops the shared fixtures (their atexit handlers), then names and
    kills whatever the run started that still runs: 1 when there was any."""
    atexit._run_exitfuncs()
    left = left_by(**{leftovers.RUN: os.environ[leftovers.RUN]})
    if left:
        print("FAIL left running after the suite (now killed):\n     " + "\n     ".join(left))
    return 1 if left else 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="pattern", default="")
    ap.add_argument("--no-asan", action="store_true")
    ap.add_argument("--timeout", type=int, default=900, help="seconds one e2e test may run (default 900)")
    args = ap.parse_args()
    os.chdir(ROOT)
    from spec import preflight
    if preflight.main():
        sys.exit(2)            # one line on stderr named the package
    os.environ[leftovers.RUN] = f"{os.getpid()}.{time.time_ns()}"
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupted)
    p1 = f1 = pr = fr = p2 = f2 = p3 = f3 = 0
    try:
        p1, f1 = run_units(args.pattern)
        pr, fr = run_ruletest(args.pattern)
        p2, f2 = run_e2e(args.pattern, asan=False, timeout=args.timeout)
        if not args.no_asan and os.path.exists(os.path.join(ROOT, "bin-asan/mxgate")):
            p3, f3 = run_e2e(args.pattern, asan=True, timeout=args.timeout)
    except KeyboardInterrupt as e:
        end_of_run()
        print(f"interrupted ({e or 'SIGINT'})")
        sys.exit(130)
    fl = end_of_run()
    passed, failed = p1 + pr + p2 + p3, f1 + fr + f2 + f3 + fl
    print(f"unit {p1}/{p1 + f1}, ruletest {pr}/{pr + fr}, e2e {p2}/{p2 + f2}, asan {p3}/{p3 + f3}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or passed == 0 else 0)


if __name__ == "__main__":
    main()
