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
See bench/README.md.  Results: table on stdout, JSON under /tmp.
"""
import argparse
import atexit
import datetime
import json
import os
import platform
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
import postfix   # noqa: E402
import procs     # noqa: E402
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
    """

    def __init__(self, name, mxgate=None, postfix=None, metrics=None, default=True,
                 note=""):
        self.name = name
        self.mxgate = mxgate or {}
        self.postfix = postfix
        self.metrics = metrics or [m.key for m in METRICS]
        self.default = default
        self.note = note


VARIANTS = [
    Variant("baseline", mxgate={}, postfix={},
            note="built-in C policy (rules=false) vs Postfix with no restrictions but HOLD"),
    # Later variants are one entry each, e.g. (enable with --variants):
    Variant("rules", mxgate={"rules": os.path.join(REPO, "rules.d")}, postfix=None,
            metrics=["msgs_20", "conns_20"], default=False,
            note="Lua rules from rules.d/ on; Postfix baseline for comparison"),
    # Variant("dnsbl", mxgate={...dnsbl keys...},
    #         postfix={"smtpd_client_restrictions": "reject_rbl_client zen.bench.test"},
    #         metrics=["msgs_20", "conns_20"], default=False),
    # Variant("greylist", mxgate={...}, postfix=None, metrics=["conns_20"], default=False),
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


def run_load(server, root, sessions, messages, reuse, opts):
    before = server.queued()
    dt, rc, out = postfix.smtp_source(root, server.port, sessions, messages, reuse,
                                      opts.size, RCPT, SENDER,
                                      timeout=max(60, opts.seconds * 15))
    warn = []
    if rc != 0:
        warn.append(f"smtp-source rc={rc}: {out[-120:]}")
    w = check_count(server, before, messages)
    if w:
        warn.append(w)
    return dt, warn


def measure_tput(server, root, metric, opts):
    s, reuse = metric.sessions, metric.reuse

    def size_for(rate, seconds):
        return int(min(max(rate * seconds, 10 * s, 50), opts.max_messages))

    # Warm-up doubles as calibration: runs sized for ~1s until two in a row
    # agree within 15% (Postfix has spawned its processes, caches are warm),
    # at most 5 of them.  Each timed run is then sized from the rate of the
    # run before it, to last ~opts.seconds/opts.repeats.
    n, prev, warns = max(50, 3 * s), None, []
    for stage in range(1, 6):
        dt, warn = run_load(server, root, s, n, reuse, opts)
        if any(w.startswith("smtp-source") for w in warn):
            return {"error": f"warm-up {stage}: " + "; ".join(warn), "warm": n}
        warns += [f"warm-up: {w}" for w in warn if f"warm-up: {w}" not in warns]
        rate = n / dt
        if prev and dt >= 0.5 and abs(rate - prev) / prev < 0.15:
            break
        prev, n = rate, size_for(rate, 1.0)
    per_run = opts.seconds / opts.repeats
    log(f"  {server.name} {metric.key}: warm {rate:.0f}/s after {stage} runs -> "
        f"{opts.repeats} timed runs of ~{per_run:.1f}s")
    rates, secs, counts, failed = [], [], [], 0
    for i in range(opts.repeats):
        count = size_for(rate, per_run)
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


def print_table(rows, sink, out=sys.stdout):
    head = ["metric", "mxgate", "postfix", "mxgate/postfix", "warnings"]
    lines = []
    for label, key, mx, pf in rows:
        rt = ratio(mx, pf)
        m = MBYKEY[key]
        rs = "-" if rt is None else f"{rt:.3g}x" + ("" if m.higher_better else " (lower=better)")
        warns = []
        for who, r in (("mxgate", mx), ("postfix", pf)):
            if r and r.get("warn"):
                warns.append(f"{who}: {r['warn']}")
        lines.append([label, fmt_value(key, mx), fmt_value(key, pf), rs, "; ".join(warns)])
    if sink is not None:
        base = {key: (mx, pf) for label, key, mx, pf in rows if "[" not in label}
        cells = []
        for r in base.get("msgs_20", (None, None)):
            if r and "value" in r and "value" in sink:
                cells.append(f"{100 * r['value'] / sink['value']:.0f}% of it")
            else:
                cells.append("-")
        lines.append([f"smtp-sink ceiling (writes nothing), 20 sessions: "
                      f"{fmt_value('msgs_20', sink)} msg/s", cells[0], cells[1], "-",
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
    base = {key: (mx, pf) for label, key, mx, pf in rows if "[" not in label}
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
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0,
                    help="target timed wall time of each load point, split over "
                    "--repeats runs whose median is reported (default 5)")
    ap.add_argument("--repeats", type=int, default=5,
                    help="timed runs per load point (default 5)")
    ap.add_argument("--noisy", type=float, default=0.25,
                    help="warn when (max-min)/median of the runs exceeds this")
    ap.add_argument("--idle", type=int, default=1000,
                    help="idle sessions for the memory metric (default 1000)")
    ap.add_argument("--size", type=int, default=2048,
                    help="message body bytes, smtp-source -l (default 2048)")
    ap.add_argument("--max-messages", type=int, default=200000)
    ap.add_argument("--metrics", default=",".join(m.key for m in METRICS),
                    help="comma list of: " + ", ".join(m.key for m in METRICS))
    ap.add_argument("--servers", default="mxgate,postfix,sink",
                    help="comma list of: mxgate, postfix, sink")
    ap.add_argument("--variants", default=None,
                    help="comma list (default: those marked default): "
                    + ", ".join(v.name for v in VARIANTS) + ", or 'all'")
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
    metrics = [k for k in a.metrics.split(",") if k in MBYKEY]
    servers = set(a.servers.split(","))
    if a.variants == "all":
        variants = VARIANTS
    elif a.variants:
        want = a.variants.split(",")
        variants = [v for v in VARIANTS if v.name in want]
    else:
        variants = [v for v in VARIANTS if v.default]

    nofile = idle.raise_nofile(max(65536, a.idle * 2 + 1024))
    os.makedirs(WORK, exist_ok=True)
    log(f"work dir {WORK}, RLIMIT_NOFILE {nofile}, {os.cpu_count()} cpus")

    results = {"time": datetime.datetime.now().isoformat(timespec="seconds"),
               "host": {"cpus": os.cpu_count(), "kernel": platform.release(),
                        "loadavg_start": _loadavg()},
               "params": {"seconds": a.seconds, "repeats": a.repeats,
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
    rows = []          # (label, metric key, mxgate result, postfix result)
    sink_res = None
    why_none = None    # why the summary has no ratio at all
    pf_baseline = {}
    try:
        if root:
            _stop_stale(root, os.path.join(REPO, a.mxgate))
        _empty_trash()
        taken = set()

        def port(pref):
            p = postfix.free_port(pref, taken)
            taken.add(p)
            return p
        pf_port, route_port, sink_port, mx_port = port(2625), port(2626), port(2627), port(2725)
        if route_port != 2626:
            log(f"note: mxgate's route port is {route_port} (nothing listens there)")

        if setup_error is None and "sink" in servers and "msgs_20" in metrics:
            r = measure_server("smtp-sink", lambda: _start(SmtpSink(root, sink_port, log)),
                               sink_port, ["msgs_20"], opts)
            sink_res = r.get("msgs_20")
            results["sink"] = sink_res

        for v in variants:
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
                        lambda: _start(MxgateServer(os.path.join(REPO, a.mxgate), os.path.join(WORK, "mxgate"),
                                                    mx_port, route_port, v.mxgate, log=log)),
                        mx_port, keys, opts)
            if v.name == "baseline":
                for who, res in (("mxgate", mx), ("postfix", pf)):
                    errs = [r["error"] for r in res.values() if "error" in r]
                    if errs and len(errs) == len(res) and not why_none:
                        why_none = f"{who}: {' '.join(errs[0].split())}"
            results["variants"][v.name] = {"note": v.note, "mxgate": mx, "postfix": pf,
                                           "mxgate_config_overrides": v.mxgate,
                                           "postfix_overrides": v.postfix}
            for k in keys:
                label = MBYKEY[k].label
                if k == "idle_mem":
                    label = f"private KiB per idle session ({a.idle}, after EHLO)"
                if v.name != "baseline":
                    label += f" [{v.name}]"
                rows.append((label, k, mx.get(k), pf.get(k)))
    except BaseException as e:
        if isinstance(e, KeyboardInterrupt) or isinstance(e, SystemExit):
            log(f"interrupted ({e!r}); printing what was measured")
            exit_code = e.code if isinstance(e, SystemExit) else 130
        else:
            log("bench crashed:\n" + traceback.format_exc())
    finally:
        _stop_all()
        if not a.keep:
            _discard_queues()

    results["host"]["loadavg_end"] = _loadavg()
    print()
    print(f"mxgate vs Postfix 3.7 smtpd: {os.cpu_count()} cpus, {a.size}-byte bodies, "
          f"median of {opts.repeats} runs over ~{a.seconds:g}s per load point; "
          "both fsync each accepted message and deliver nothing")
    print_table(rows, sink_res)
    print()
    print(summary(rows, sink_res, why_none))
    notes = set()
    for label, key, mx, pf in rows:
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
    for d in (os.path.join(WORK, "postfix", "queue"), os.path.join(WORK, "mxgate", "state")):
        if os.path.isdir(d):
            os.makedirs(trash, exist_ok=True)
            try:
                os.rename(d, os.path.join(trash, os.path.basename(os.path.dirname(d))))
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


def _stop_stale(root, mxgate_bin):
    """Instances a previous bench run left behind (it was SIGKILLed)."""
    try:
        PostfixServer(root, os.path.join(WORK, "postfix"), 0, log=log).stop_stale()
        MxgateServer(mxgate_bin, os.path.join(WORK, "mxgate"), 0, 0, log=log).stop_stale()
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
