"""Which processes the tests started are still running, found by a mark in
their environment, and how to end them.

Every process a test starts inherits os.environ, and a forked child keeps
it (an mxgate master's workers and delivery process included, after they
change user and even after their parent died): so a mark there names
exactly the processes of this run, of this test, of this server, without a
pid that may have been reused or a command line that another engineer's
run shares. spec/run.py sets RUN once and OWNER per test; a fixture that
is shared by the tests and lives until exit starts under owner("shared");
harness.Mxgate adds SERVER for its own processes.
"""
import contextlib
import os
import signal
import time

RUN = "MXGATE_TEST_RUN"         # one spec/run.py run
OWNER = "MXGATE_TEST_OWNER"     # the test that started it, or "shared"
SERVER = "MXGATE_TEST_SERVER"   # one harness.Mxgate (its directory)


def _environ(pid):
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            data = f.read()
    except OSError:                 # gone, or not ours to read
        return {}
    out = {}
    for item in data.split(b"\0"):
        k, sep, v = item.partition(b"=")
        if sep and k.startswith(b"MXGATE_TEST_"):
            out[k.decode()] = v.decode(errors="replace")
    return out


def _running(pid):
    """Alive and not a zombie waiting to be reaped."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(b")") + 2:][:1] not in (b"Z", b"X")


def describe(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            cmd = f.read().rstrip(b"\0").replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        cmd = "?"
    return f"{pid} {cmd[:200]}"


def marked(**want):
    """Pids of the running processes (this one excepted) whose environment
    has every NAME=value of want (names: RUN, OWNER, SERVER's values)."""
    me = os.getpid()
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit() or int(name) == me:
            continue
        env = _environ(name)
        if env and all(env.get(k) == v for k, v in want.items()) and _running(name):
            out.append(int(name))
    return sorted(out)


def wait_gone(pids, timeout):
    """The pids still running after up to timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in pids if _running(p)]
        if not pids or time.monotonic() > deadline:
            return pids
        time.sleep(0.05)


def kill(pids, timeout=10.0):
    """SIGKILL each pid, then wait until none runs; returns those that still do."""
    for p in pids:
        try:
            os.kill(p, signal.SIGKILL)
        except OSError:
            pass
    return wait_gone(pids, timeout)


@contextlib.contextmanager
def owner(name):
    """Processes started inside are marked as owned by name."""
    old = os.environ.get(OWNER)
    os.environ[OWNER] = name
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(OWNER, None)
        else:
            os.environ[OWNER] = old


def shared():
    """For a fixture that the tests share and that stops at exit."""
    return owner("shared")
