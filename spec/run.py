#!/usr/bin/python3
"""Runs every test: C unit binaries, the ruleset cases (spec/ruletest/*.session
through bin/ruletest), then the end-to-end suite against bin/mxgate and
again against the ASan/UBSan build (bin-asan/mxgate).

    spec/run.py [-k PATTERN] [--no-asan]

Ends with the line "N passed, N failed"; exits 1 when anything failed.
First, spec/preflight.py checks every external tool the tests use: a missing
one stops the run (exit 2) with one line naming its Debian package.
"""
import argparse
import glob
import os
import subprocess
import sys
import time
import unittest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


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


def run_e2e(pattern, asan):
    os.environ["MXGATE_BIN"] = os.path.join(ROOT, "bin-asan/mxgate" if asan else "bin/mxgate")
    os.environ["MXGATE_ASAN"] = "1" if asan else ""
    suite = load_e2e(pattern, asan)
    label = "asan" if asan else "e2e"
    passed = failed = 0
    for t in iter_tests(suite):
        result = unittest.TestResult()
        t0 = time.time()
        t.run(result)
        dt = time.time() - t0
        bad = result.failures + result.errors
        if bad:
            failed += 1
            print(f"FAIL {label}/{t.id()} ({dt:.1f}s)")
            for _, tb in bad:
                print("     " + tb.replace("\n", "\n     "))
        elif result.skipped:
            print(f"skip {label}/{t.id()}: {result.skipped[0][1]}")
        else:
            passed += 1
            print(f"ok   {label}/{t.id()} ({dt:.1f}s)")
        sys.stdout.flush()
    return passed, failed


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("-k", dest="pattern", default="")
    ap.add_argument("--no-asan", action="store_true")
    args = ap.parse_args()
    os.chdir(ROOT)
    from spec import preflight
    if preflight.main():
        sys.exit(2)            # one line on stderr named the package
    p1, f1 = run_units(args.pattern)
    pr, fr = run_ruletest(args.pattern)
    p2, f2 = run_e2e(args.pattern, asan=False)
    p3 = f3 = 0
    if not args.no_asan and os.path.exists(os.path.join(ROOT, "bin-asan/mxgate")):
        p3, f3 = run_e2e(args.pattern, asan=True)
    passed, failed = p1 + pr + p2 + p3, f1 + fr + f2 + f3
    print(f"unit {p1}/{p1 + f1}, ruletest {pr}/{pr + fr}, e2e {p2}/{p2 + f2}, asan {p3}/{p3 + f3}")
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed or passed == 0 else 0)


if __name__ == "__main__":
    main()
