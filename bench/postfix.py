"""A private Postfix 3.7 (Debian 12's package, unpacked, never installed)
for the benchmark: its smtpd, its smtp-source/smtp-sink test tools.

Nothing here touches the system's mail setup: the .deb is fetched with
`apt-get download` and unpacked with `dpkg -x` under the bench work dir;
the instance has its own config_directory, queue_directory and log file,
listens on 127.0.0.1 only, and every accepted message goes to the hold
queue (fsync'd by cleanup like any accepted message, never delivered).
The only system changes: the `postfix` user and `postdrop` group are
created if missing, and missing shared libraries of the package (libdb5.3,
libicu72, ...) are installed with apt-get if ldd reports them absent.
"""
import glob
import os
import shutil
import signal
import socket
import subprocess
import time

import procs

DEB_LIBS = ["libdb5.3", "libicu72", "libnsl2", "libsasl2-2", "libssl3"]


class SetupError(Exception):
    pass


def _run(cmd, log, **kw):
    log("  $ " + " ".join(cmd))
    return subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, **kw)


def ensure_tree(work, log):
    """Return the root of the unpacked postfix package under work/."""
    debdir = os.path.join(work, "debs")
    root = os.path.join(work, "postfix-root")
    os.makedirs(debdir, exist_ok=True)
    debs = sorted(glob.glob(os.path.join(debdir, "postfix_*.deb")))
    if not debs:
        log("fetching the postfix .deb with apt-get download")
        cmd = ["apt-get", "-q", "-o", "APT::Sandbox::User=root", "download", "postfix"]
        r = _run(cmd, log, cwd=debdir)
        if r.returncode != 0:
            _run(["apt-get", "update", "-q"], log)
            r = _run(cmd, log, cwd=debdir)
        debs = sorted(glob.glob(os.path.join(debdir, "postfix_*.deb")))
        if r.returncode != 0 or not debs:
            raise SetupError("apt-get download postfix failed: " + r.stdout[-400:].strip())
    deb = debs[-1]
    stamp = os.path.join(root, ".from")
    have = open(stamp).read() if os.path.exists(stamp) else ""
    if have != os.path.basename(deb) or not os.path.exists(
            os.path.join(root, "usr/sbin/smtp-source")):
        log(f"unpacking {os.path.basename(deb)}")
        tmp = root + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        r = _run(["dpkg", "-x", deb, tmp], log)
        if r.returncode != 0:
            raise SetupError("dpkg -x failed: " + r.stdout[-400:].strip())
        with open(os.path.join(tmp, ".from"), "w") as f:
            f.write(os.path.basename(deb))
        shutil.rmtree(root, ignore_errors=True)
        os.rename(tmp, root)
    _ensure_libs(root, log)
    return root


def lib_env(root):
    env = dict(os.environ)
    env["LD_LIBRARY_PATH"] = os.path.join(root, "usr/lib/postfix")
    env.pop("MAIL_CONFIG", None)
    return env


def _missing_libs(root):
    env = lib_env(root)
    out = ""
    for b in ("usr/lib/postfix/sbin/smtpd", "usr/sbin/postfix", "usr/sbin/smtp-source"):
        r = subprocess.run(["ldd", os.path.join(root, b)], env=env, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        out += "".join(l for l in r.stdout.splitlines(True) if "not found" in l)
    return out


def _ensure_libs(root, log):
    if not _missing_libs(root):
        return
    log("installing postfix's shared-library dependencies: " + " ".join(DEB_LIBS))
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    cmd = ["apt-get", "install", "-y", "-q", "--no-install-recommends"] + DEB_LIBS
    r = _run(cmd, log, env=env)
    if r.returncode != 0:
        _run(["apt-get", "update", "-q"], log)
        _run(cmd, log, env=env)
    miss = _missing_libs(root)
    if miss:
        raise SetupError("postfix libraries still missing: " + miss.strip()[:300])


def ensure_users(log):
    """postfix user and postdrop group, created only if missing."""
    if subprocess.run(["getent", "group", "postdrop"], stdout=subprocess.DEVNULL).returncode:
        _run(["groupadd", "--system", "postdrop"], log)
    if subprocess.run(["getent", "passwd", "postfix"], stdout=subprocess.DEVNULL).returncode:
        r = _run(["useradd", "--system", "--user-group", "--no-create-home",
                  "--home-dir", "/nonexistent", "--shell", "/usr/sbin/nologin",
                  "postfix"], log)
        if r.returncode:
            raise SetupError("useradd postfix failed: " + r.stdout[-300:].strip())


def read_banner(port, host="127.0.0.1", timeout=2.0):
    """The server's first reply line, or raises OSError."""
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.settimeout(timeout)
        buf = b""
        while b"\n" not in buf:
            d = s.recv(512)
            if not d:
                raise OSError("closed before greeting")
            buf += d
        try:
            s.sendall(b"QUIT\r\n")
            s.recv(512)
        except OSError:
            pass
        return buf.split(b"\n")[0].decode("utf-8", "replace").strip()


def wait_ready(port, timeout, dead=lambda: None):
    """Poll until the port answers 220. dead() returns a reason to give up."""
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        why = dead()
        if why:
            raise SetupError(why)
        try:
            line = read_banner(port)
            if line.startswith("220"):
                return line
            last = f"greeting {line!r}"
        except OSError as e:
            last = str(e)
        time.sleep(0.05)
    raise SetupError(f"port {port} not ready after {timeout:.0f}s ({last})")


def port_free(port, host="127.0.0.1"):
    s = socket.socket()
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


def free_port(preferred, avoid=()):
    p = preferred
    while p < preferred + 200:
        if p not in avoid and port_free(p):
            return p
        p += 1
    raise SetupError(f"no free port near {preferred}")


def free_ports(prefs, taken=None):
    """{name: a free port at or after prefs[name]}, no two the same (taken,
    a set, grows with each one given)."""
    taken = set() if taken is None else taken
    out = {}
    for name, pref in prefs.items():
        out[name] = free_port(pref, taken)
        taken.add(out[name])
    return out


def count_files(top, skip_dirs=(), skip_hidden=False):
    """Regular files (not symlinks) under top, skipping dirs named in
    skip_dirs. scandir's d_type answers without a stat() per file: this runs
    twice per timed run over spools of tens of thousands of files."""
    n, todo = 0, [top]
    while todo:
        try:
            it = os.scandir(todo.pop())
        except OSError:
            continue
        with it:
            for e in it:
                try:
                    if e.is_dir(follow_symlinks=False):
                        if e.name not in skip_dirs:
                            todo.append(e.path)
                    elif e.is_file(follow_symlinks=False) and not (
                            skip_hidden and e.name.startswith(".")):
                        n += 1
                except OSError:
                    pass
    return n


def _cwd(pid):
    try:
        return os.readlink(f"/proc/{pid}/cwd")
    except OSError:
        return ""


def tail(path, n=8):
    try:
        with open(path, errors="replace") as f:
            return " | ".join(l.rstrip() for l in f.readlines()[-n:])
    except OSError:
        return ""


MASTER_CF = """\
# generated by bench/postfix.py
127.0.0.1:{port} inet n - n - {smtpd_limit} smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


class PostfixServer:
    """One private Postfix instance rooted at base/ (conf/, queue/, data/)."""

    name = "postfix"

    def __init__(self, root, base, port, domain="bench.test", overrides=None,
                 smtpd_limit=1100, log=print, nameserver=None):
        self.root, self.base, self.port = root, base, port
        # nameserver: an IPv4 address answering DNS on port 53. Postfix
        # resolves through res_query(), which reads /etc/resolv.conf; the
        # instance then runs in a private mount namespace (unshare -m) where
        # a resolv.conf naming it is bind-mounted over /etc/resolv.conf. The
        # real file is never written; processes outside see no change.
        self.nameserver = nameserver
        self.domain = domain
        self.overrides = dict(overrides or {})
        self.smtpd_limit = smtpd_limit
        self.log = log
        self.conf = os.path.join(base, "conf")
        self.queue = os.path.join(base, "queue")
        self.data = os.path.join(base, "data")
        self.logfile = os.path.join(base, "postfix.log")
        self.env = lib_env(root)
        self.master_pid = None

    # -- helpers ---------------------------------------------------------
    def _postfix(self, *args, timeout=60, resolver=False):
        cmd = [os.path.join(self.root, "usr/sbin/postfix"), "-c", self.conf] + list(args)
        if resolver and self.nameserver:
            # master and every daemon it forks inherit the namespace, so
            # smtpd's res_init() reads our file; `postfix stop` from
            # outside signals the master through its pid file as usual.
            resolv = os.path.join(self.base, "resolv.conf")
            with open(resolv, "w") as f:
                f.write(f"# generated by bench/postfix.py\nnameserver {self.nameserver}\n"
                        "options timeout:2 attempts:2\n")
            os.chmod(resolv, 0o644)
            if not shutil.which("unshare"):
                raise SetupError("unshare (util-linux) missing: no private resolv.conf")
            cmd = ["unshare", "--mount", "--propagation", "private", "sh", "-c",
                   'mount --bind "$0" /etc/resolv.conf && exec "$@"', resolv] + cmd
        return subprocess.run(cmd, env=self.env, text=True,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                              timeout=timeout)

    def _pidfile_pid(self):
        try:
            with open(os.path.join(self.queue, "pid/master.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        return pid if procs.alive(pid) and "master" in procs.cmdline(pid) else None

    def main_cf(self):
        r, b = self.root, self.base
        cf = {
            "compatibility_level": "3.6",
            "config_directory": self.conf,
            "meta_directory": self.conf,
            "queue_directory": self.queue,
            "data_directory": self.data,
            "daemon_directory": f"{r}/usr/lib/postfix/sbin",
            "command_directory": f"{r}/usr/sbin",
            "shlib_directory": f"{r}/usr/lib/postfix",
            "sendmail_path": f"{r}/usr/sbin/sendmail",
            "newaliases_path": f"{r}/usr/bin/newaliases",
            "mailq_path": f"{r}/usr/bin/mailq",
            "manpage_directory": f"{r}/usr/share/man",
            "html_directory": f"{r}/usr/share/doc/postfix/html",
            "readme_directory": f"{r}/usr/share/doc/postfix",
            "sample_directory": self.conf,
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "pf.bench.test",
            "mydomain": "bench.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "relay_domains": self.domain,
            "relay_recipient_maps": "",
            "local_recipient_maps": "",
            "mynetworks": "127.0.0.0/8",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            # Only the bench domain is accepted; every accepted message is
            # put on hold: cleanup fsyncs it into queue/hold, qmgr never sees it.
            "smtpd_relay_restrictions": "reject_unauth_destination",
            "smtpd_recipient_restrictions": "check_recipient_access static:HOLD",
            # Belt and braces: nothing may leave even if a message is not held.
            "defer_transports": "smtp relay local virtual lmtp",
            # in_flow_delay would stall cleanup waiting for qmgr tokens that a
            # hold-only queue never produces; mxgate has no such throttle.
            "in_flow_delay": "0",
            "default_process_limit": str(self.smtpd_limit + 100),
            "smtpd_client_connection_count_limit": "0",
            "smtpd_client_connection_rate_limit": "0",
            "alias_maps": "",
            "alias_database": "",
            "biff": "no",
            "maillog_file": self.logfile,
            "maillog_file_prefixes": b,
            "import_environment": "MAIL_CONFIG MAIL_DEBUG MAIL_LOGTAG TZ LANG=C LD_LIBRARY_PATH",
        }
        cf.update(self.overrides)
        return "# generated by bench/postfix.py\n" + "".join(
            f"{k} = {v}\n" for k, v in cf.items())

    # -- lifecycle -------------------------------------------------------
    def stop_stale(self):
        """Stop an instance a previous (killed) bench run left behind."""
        pid = self._pidfile_pid()
        if pid is None:
            self._sweep()
            return
        self.log(f"stopping stale postfix master {pid}")
        try:
            self._postfix("stop", timeout=20)
        except subprocess.TimeoutExpired:
            pass
        if not procs.wait_gone([pid], 10):
            self._kill_group(pid)
        self._sweep()

    def _sweep(self):
        """Kill orphaned daemons of this instance (cwd is its queue dir)."""
        left = procs.find(lambda p: procs.exe(p).startswith(self.root) and
                          _cwd(p) == self.queue)
        if left:
            self.log(f"killing {len(left)} orphaned postfix processes")
            procs.terminate(left, grace=5)

    def _kill_group(self, pid):
        members = procs.tree([pid])
        try:
            os.killpg(pid, signal.SIGKILL)   # master runs setsid(): pgid == pid
        except OSError:
            pass
        procs.terminate(members, grace=5, sig=signal.SIGKILL)

    def start(self):
        self.stop_stale()
        for d in (self.queue, self.data, self.conf):
            shutil.rmtree(d, ignore_errors=True)
        for d in (self.conf, self.queue, self.data):
            os.makedirs(d, exist_ok=True)
        shutil.chown(self.data, "postfix")
        try:
            os.unlink(self.logfile)
        except OSError:
            pass
        with open(os.path.join(self.conf, "main.cf"), "w") as f:
            f.write(self.main_cf())
        with open(os.path.join(self.conf, "master.cf"), "w") as f:
            f.write(MASTER_CF.format(port=self.port, smtpd_limit=self.smtpd_limit))
        open(os.path.join(self.conf, "dynamicmaps.cf"), "w").close()
        shutil.copy(os.path.join(self.root, "etc/postfix/postfix-files"), self.conf)
        r = self._postfix("start", timeout=120, resolver=True)
        self.master_pid = self._pidfile_pid()
        if r.returncode != 0 or self.master_pid is None:
            raise SetupError(f"postfix start failed (rc={r.returncode}): "
                             f"{r.stdout.strip()[-300:]} {tail(self.logfile, 4)}")
        wait_ready(self.port, 30, lambda: None if procs.alive(self.master_pid)
                   else "postfix master exited: " + tail(self.logfile, 4))

    def stop(self):
        pid = self.master_pid or self._pidfile_pid()
        if pid is None:
            return
        try:
            self._postfix("stop", timeout=30)
        except subprocess.TimeoutExpired:
            pass
        if not procs.wait_gone([pid], 15):
            self._kill_group(pid)
        self._sweep()
        self.master_pid = None

    def pids(self):
        return procs.tree([self.master_pid]) if self.master_pid else set()

    def queued(self):
        """Messages accepted so far: files in the hold queue."""
        return count_files(os.path.join(self.queue, "hold"))


class SmtpSink:
    """smtp-sink: speaks SMTP, writes nothing. The ceiling line."""

    name = "smtp-sink"

    def __init__(self, root, port, log=print):
        self.root, self.port, self.log = root, port, log
        self.proc = None

    def _start(self):
        self.proc = subprocess.Popen(
            [os.path.join(self.root, "usr/sbin/smtp-sink"), "-u", "nobody",
             "-m", "2000", f"127.0.0.1:{self.port}", "1024"],
            env=lib_env(self.root), stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE, start_new_session=True)
        wait_ready(self.port, 10, lambda: None if self.proc.poll() is None else
                   f"smtp-sink exited {self.proc.returncode}: "
                   f"{self.proc.stderr.read().decode(errors='replace')[-300:]}")

    def stop_stale(self):
        exe = os.path.join(self.root, "usr/sbin/smtp-sink")
        left = procs.find(lambda p: procs.exe(p) == exe)
        if left:
            self.log(f"stopping {len(left)} stale smtp-sink processes")
            procs.terminate(left, grace=5)

    def start(self):
        self.stop_stale()
        self._start()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def pids(self):
        return procs.tree([self.proc.pid]) if self.proc else set()

    def queued(self):
        return None   # writes nothing; rely on smtp-source's exit status


def smtp_source(root, port, sessions, messages, reuse, size, rcpt, sender,
                helo="client.test", timeout=300):
    """Run smtp-source; returns (wall seconds, returncode, output tail)."""
    cmd = [os.path.join(root, "usr/sbin/smtp-source"), "-4",
           "-s", str(sessions), "-m", str(messages), "-l", str(size),
           "-f", sender, "-t", rcpt, "-M", helo]
    if reuse:
        cmd.append("-d")
    cmd.append(f"127.0.0.1:{port}")
    t0 = time.monotonic()
    try:
        r = subprocess.run(cmd, env=lib_env(root), stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
        rc, out = r.returncode, r.stdout
    except subprocess.TimeoutExpired as e:
        rc, out = "timeout", (e.stdout or b"")
    dt = time.monotonic() - t0
    return dt, rc, out.decode("utf-8", "replace").strip()[-300:]
