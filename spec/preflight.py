"""Before the first test: every external tool the tests use is there and can
do what the tests ask of it (swaks with TLS, openssl, NSD, rbldnsd, aiosmtpd,
dig...). A missing one stops the run with one line naming the Debian package,
instead of failing tests one by one.

    python3 -m spec.preflight      # exit 0, or 2 and "missing: ..." on stderr
"""
import os
import shutil
import subprocess
import sys

PYTHON = "/usr/bin/python3"     # Debian's, the one the e2e suite runs servers with


def _run(cmd, **kw):
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30, **kw)
    except (OSError, subprocess.TimeoutExpired):
        return None


def _ok(cmd):
    p = _run(cmd)
    return p is not None and p.returncode == 0


def _swaks_tls():
    # `swaks --support` says "=== TLS supported" only when Net::SSLeay and
    # IO::Socket::SSL load (else "*** TLS not available: requires ...").
    p = _run(["swaks", "--support"])
    return p is not None and "=== TLS supported" in p.stdout + p.stderr


def _py_import(mod):
    return lambda: _ok([PYTHON, "-c", f"import {mod}"])


def _tool(name):
    return lambda: shutil.which(name) is not None


def _prometheus():
    # The server the metrics tests start on a high port (not the packaged service).
    p = _run(["prometheus", "--version"])
    return p is not None and p.returncode == 0 and "prometheus, version" in p.stdout + p.stderr


# (what the tests need, how to check it, the Debian package that provides it).
# Order matters: a tool's capability is checked after the tool itself.
CHECKS = [
    ("python3 (Debian's /usr/bin/python3)", lambda: os.access(PYTHON, os.X_OK), "python3"),
    ("aiosmtpd (downstream SMTP servers)", _py_import("aiosmtpd"), "python3-aiosmtpd"),
    ("swaks", _tool("swaks"), "swaks"),
    ("swaks with TLS (STARTTLS tests)", _swaks_tls, "libnet-ssleay-perl libio-socket-ssl-perl"),
    ("openssl (certificates, s_client)", _tool("openssl"), "openssl"),
    ("nsd (authoritative DNS for the tests)", _tool("nsd"), "nsd"),
    ("rbldnsd (DNSBL zones)", _tool("rbldnsd"), "rbldnsd"),
    ("dig", _tool("dig"), "dnsutils"),
    ("lua5.4 (stdlib checks)", _tool("lua5.4"), "lua5.4"),
    ("haproxy (PROXY protocol tests)", _tool("haproxy"), "haproxy"),
    ("systemd-analyze (verifies the unit)", _tool("systemd-analyze"), "systemd"),
    ("man (renders the man pages)", _tool("man"), "man-db"),
    ("groff (man -l of mdoc pages)", _tool("nroff"), "groff-base"),
    ("prometheus_client (parses /metrics)", _py_import("prometheus_client.parser"), "python3-prometheus-client"),
    ("prometheus (scrapes /metrics in the tests)", _prometheus, "prometheus"),
    ("chromium (the portal page in a headless browser)", _tool("chromium"), "chromium"),
    ("chromedriver (drives chromium)", _tool("chromedriver"), "chromium-driver"),
    ("selenium (the browser tests' client)", _py_import("selenium"), "python3-selenium"),
]


def missing(checks=CHECKS):
    """The first failing check as (what, package), or None."""
    for what, ok, pkg in checks:
        if not ok():
            return what, pkg
    return None


def main():
    m = missing()
    if m:
        what, pkg = m
        print(f"missing: {what}: apt-get install {pkg} (or run `make deps`)", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
