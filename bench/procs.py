"""Process-tree and memory helpers for the benchmark (Linux /proc only).

Memory is read from /proc/PID/smaps_rollup.  "private" is
Private_Clean + Private_Dirty: pages only that process maps, i.e. what
killing it would give back.  Pss is reported beside it.  Kernel memory
(socket buffers, page tables) is in neither.
"""
import os
import signal
import time


def _pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def ppid_of(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    # comm may contain spaces/parens: the fields after the last ')' are fixed.
    rest = data[data.rfind(")") + 2:].split()
    if rest and rest[0] == "Z":
        return None  # zombie: no memory, not a live server process
    try:
        return int(rest[1])
    except (IndexError, ValueError):
        return None


def alive(pid):
    if pid is None or pid <= 0:
        return False
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return False
    rest = data[data.rfind(")") + 2:].split()
    return bool(rest) and rest[0] != "Z"


def tree(roots):
    """roots plus all their live descendants."""
    roots = {p for p in roots if alive(p)}
    if not roots:
        return set()
    children = {}
    for pid in _pids():
        pp = ppid_of(pid)
        if pp is not None:
            children.setdefault(pp, []).append(pid)
    out, todo = set(), list(roots)
    while todo:
        p = todo.pop()
        if p in out:
            continue
        out.add(p)
        todo.extend(children.get(p, ()))
    return out


def session_of(pid):
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2:].split()
    try:
        return int(rest[3])
    except (IndexError, ValueError):
        return None


def session(sid):
    """Live processes of session sid (a process started with setsid keeps
    its children there even after it exits itself)."""
    return set(find(lambda p: session_of(p) == sid))


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


def exe(pid):
    try:
        return os.readlink(f"/proc/{pid}/exe")
    except OSError:
        return ""


def find(predicate):
    """Live pids for which predicate(pid) is true."""
    out = []
    for pid in _pids():
        if pid == os.getpid():
            continue
        try:
            if alive(pid) and predicate(pid):
                out.append(pid)
        except OSError:
            pass
    return out


FIELDS = ("Rss", "Pss", "Private_Clean", "Private_Dirty")


def mem(pids):
    """Summed smaps_rollup fields (kB) over pids, plus the process count."""
    tot = {k: 0 for k in FIELDS}
    n = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                lines = f.read().splitlines()
        except OSError:
            continue  # exited meanwhile
        n += 1
        for line in lines:
            key, _, val = line.partition(":")
            if key in tot:
                tot[key] += int(val.split()[0])
    tot["private"] = tot["Private_Clean"] + tot["Private_Dirty"]
    tot["procs"] = n
    return tot


def terminate(pids, grace=10.0, sig=signal.SIGTERM):
    """Send sig to pids, wait up to grace seconds, SIGKILL what is left."""
    pids = [p for p in pids if alive(p)]
    for p in pids:
        try:
            os.kill(p, sig)
        except ProcessLookupError:
            pass
    return wait_gone(pids, grace, kill=True)


def wait_gone(pids, timeout, kill=False):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not any(alive(p) for p in pids):
            return True
        time.sleep(0.05)
    if kill:
        for p in pids:
            if alive(p):
                try:
                    os.kill(p, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        wait_gone(pids, 5.0)
    return False


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_split(pids):
    """(user, system) CPU seconds of pids, each with what their reaped
    children used (cutime, cstime)."""
    u = k = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = data[data.rfind(")") + 2:].split()
        try:
            u += int(rest[11]) + int(rest[13])
            k += int(rest[12]) + int(rest[14])
        except (IndexError, ValueError):
            pass
    return u / CLK_TCK, k / CLK_TCK


def cpu_seconds(pids):
    """CPU time (user + system, in seconds) of pids plus that of their
    children they have reaped (cutime + cstime): a process that exits
    during a measurement still counts, in its parent's reaped total."""
    tot = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read().decode("ascii", "replace")
        except OSError:
            continue
        rest = data[data.rfind(")") + 2:].split()
        try:
            tot += sum(int(x) for x in rest[11:15])   # utime stime cutime cstime
        except (IndexError, ValueError):
            pass
    return tot / CLK_TCK
