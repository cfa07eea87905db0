"""Real SMTP servers on loopback for e2e tests: aiosmtpd sessions, plus a
server that accepts TCP and never speaks, all on one asyncio loop in a
background thread. Nothing here sleeps on a guess: start() returns with
the socket listening, and wait_idle() waits for sessions to end.

    from spec.e2e import smtpservers as ss      # or: import smtpservers

    with ss.SmtpServer() as srv:                 # 250 to everything
        srv.address                              # "127.0.0.1:PORT" (srv.host, srv.port)
        ... run the client ...
        srv.wait_idle()                          # every session has ended
        srv.connections, srv.max_concurrent      # TCP connections; most at once
        srv.rcpts, srv.mails, srv.helos          # what the clients said, in order
        srv.messages                             # {"mail", "rcpts", "data" (bytes), "options", "tls"}
        srv.sessions                             # one dict per session (see below)

Ready-made servers (functions returning a SmtpServer, not yet started):

    accept_all()             RCPT 250
    reject_rcpt(reply=..., only=None)
                             RCPT "550 5.1.1 ..." (only: addresses refused, others 250)
    reject_mail(temp=False)  MAIL FROM 550 5.7.1 (451 4.7.1 when temp)
    bad_greeting()           greets "554 5.3.2 ..." and then refuses all but QUIT
    defer_rcpt()             RCPT 451 4.3.0
    SilentServer()           accepts the connection, never says a word
    closed_port(host)        a port nothing listens on (bound, then closed)
    common_port(*hosts)      one port free on every host given (127.0.0.x
                             MX hosts that must share the --port)

SmtpServer(host="127.0.0.1", port=0, *, greeting=None, ehlo=None,
           mail=None, rcpt=None, delay=0.0, tls=False, hostname="mx.test"):
    greeting   the greeting instead of "220 hostname ESMTP"; may be several
               lines joined by "\\r\\n" (multi-line replies, RFC 5321 4.2)
    ehlo       a reply to EHLO instead of the usual one ("502 5.5.1 no" makes
               the client fall back to HELO)
    mail, rcpt None (accept), a reply line, or f(address) -> reply or None
    delay      seconds before answering RCPT, so that sessions overlap
    tls        offer STARTTLS with a throwaway self-signed certificate (or
               with this ssl.SSLContext: see test_ca())
    data       None (accept and record in .messages), a reply line, or
               f(envelope) -> reply or None, at the end of DATA
    smtputf8   offer SMTPUTF8 (RFC 6531)
    require_tls  refuse MAIL before STARTTLS (530)
    drop_data  this many transactions end with the connection dropped
               after the message, before the final reply

Each session dict: {"peer", "helo", "esmtp", "tls", "mail", "rcpts", "quit"};
MAIL FROM:<> records mail "" (aiosmtpd itself refuses the null sender, which
every real MX must take, RFC 5321 4.5.5; this module accepts it).
"""

import asyncio
import atexit
import logging
import os
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

from aiosmtpd.smtp import SMTP, MISSING

START_TIMEOUT = 10.0
logging.getLogger("mail.log").setLevel(logging.CRITICAL)   # resets are expected

_loop = None
_loop_lock = threading.Lock()
_certdir = None


def _get_loop():
    """The shared background loop, started on first use."""
    global _loop
    with _loop_lock:
        if _loop is None:
            _loop = asyncio.new_event_loop()
            threading.Thread(target=_loop.run_forever, name="smtpservers", daemon=True).start()
        return _loop


def _run(coro, timeout=START_TIMEOUT):
    return asyncio.run_coroutine_threadsafe(coro, _get_loop()).result(timeout)


def _cleanup():
    if _certdir:
        shutil.rmtree(_certdir, ignore_errors=True)


atexit.register(_cleanup)


def _tls_context():
    """A server context with a self-signed certificate, made once per run."""
    global _certdir
    if _certdir is None:
        _certdir = tempfile.mkdtemp(prefix="mxgate-smtpcert-")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-days", "2", "-subj", "/CN=mx.test",
                        "-keyout", os.path.join(_certdir, "key.pem"),
                        "-out", os.path.join(_certdir, "cert.pem")],
                       check=True, capture_output=True)
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(_certdir, "cert.pem"), os.path.join(_certdir, "key.pem"))
    return ctx


class TestCa:
    """A throwaway CA in dir: .ca_file (PEM) and .context(name), a server
    context whose certificate it issued for `name` (a DNS name, or an IP
    address: then an IP subjectAltName)."""

    def __init__(self, dir):
        self.dir = dir
        self.ca_file = os.path.join(dir, "test-ca.pem")
        self._key = os.path.join(dir, "test-ca.key")
        self._run("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-days", "2", "-subj", "/CN=mxgate test CA", "-keyout", self._key, "-out", self.ca_file)
        os.chmod(self.ca_file, 0o644)     # the delivery process reads it as `user`

    def _run(self, *args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)

    def context(self, name):
        base = os.path.join(self.dir, name)
        ext = base + ".ext"
        with open(ext, "w") as f:
            f.write("subjectAltName = %s:%s\n" % ("IP" if name[:1].isdigit() or ":" in name else "DNS", name))
        self._run("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                  "-subj", "/CN=%s" % name, "-keyout", base + ".key", "-out", base + ".csr")
        self._run("x509", "-req", "-in", base + ".csr", "-CA", self.ca_file, "-CAkey", self._key,
                  "-CAcreateserial", "-days", "2", "-extfile", ext, "-out", base + ".pem")
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(base + ".pem", base + ".key")
        return ctx


def closed_port(host="127.0.0.1"):
    """A port on host that nothing listens on: connecting is refused."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(fam, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def common_port(*hosts):
    """A TCP port free on every one of hosts (e.g. 127.0.0.2 and 127.0.0.3)."""
    for _ in range(100):
        port = closed_port(hosts[0])
        socks = []
        try:
            for h in hosts:
                s = socket.socket(socket.AF_INET6 if ":" in h else socket.AF_INET)
                socks.append(s)
                s.bind((h, port))
            return port
        except OSError:
            continue
        finally:
            for s in socks:
                s.close()
    raise RuntimeError("no port free on all of %s" % (hosts,))


class _Counted:
    """Connection bookkeeping shared by both kinds of server."""

    def __init__(self, host, port):
        self.host = host
        self.port = port
        self._server = None
        self._lock = threading.Lock()
        self._transports = set()
        self.connections = 0      # TCP connections accepted
        self.active = 0           # open now
        self.max_concurrent = 0   # most open at once

    @property
    def address(self):
        return "[%s]:%d" % (self.host, self.port) if ":" in self.host else "%s:%d" % (self.host, self.port)

    def _enter(self, transport):
        with self._lock:
            self._transports.add(transport)
            self.connections += 1
            self.active += 1
            self.max_concurrent = max(self.max_concurrent, self.active)

    def _leave(self, transport):
        with self._lock:
            self._transports.discard(transport)
            self.active -= 1

    def _factory(self):
        raise NotImplementedError

    def start(self):
        if self._server is not None:
            return self

        async def start():
            return await _get_loop().create_server(self._factory, self.host, self.port,
                                                   backlog=256, reuse_address=True)
        self._server = _run(start())
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self):
        if self._server is None:
            return

        async def stop(server):
            server.close()
            for t in list(self._transports):
                t.close()
            await server.wait_closed()
        server, self._server = self._server, None
        _run(stop(server))

    def wait_idle(self, timeout=5.0):
        """Waits until no session is open; returns True when none is."""
        return self.wait_for(lambda: self.active == 0, timeout)

    def wait_for(self, pred, timeout=5.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if pred():
                    return True
            time.sleep(0.01)
        with self._lock:
            return pred()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
        return False


class _Handler:
    """aiosmtpd hooks: apply the server's policy and record what was said."""

    def __init__(self, srv):
        self.srv = srv

    @staticmethod
    def _decide(policy, address):
        if policy is None:
            return None
        if callable(policy):
            return policy(address)
        return policy

    async def handle_EHLO(self, server, session, envelope, hostname, responses):
        server._record["helo"] = hostname
        server._record["esmtp"] = True
        with self.srv._lock:
            self.srv.helos.append(hostname)
        if self.srv.ehlo is not None:
            return [self.srv.ehlo]
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server, session, envelope, hostname):
        server._record["helo"] = hostname
        server._record["esmtp"] = False
        with self.srv._lock:
            self.srv.helos.append(hostname)
        session.host_name = hostname
        return "250 %s" % self.srv.hostname

    async def handle_MAIL(self, server, session, envelope, address, options):
        server._record["mail"] = address
        server._record["tls"] = session.ssl is not None
        with self.srv._lock:
            self.srv.mails.append(address)
        reply = self._decide(self.srv.mail, address)
        if reply is not None:
            return reply
        envelope.mail_from = address or "<>"   # aiosmtpd tests truthiness
        envelope.mail_options.extend(options)
        return "250 2.1.0 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        server._record["rcpts"].append(address)
        with self.srv._lock:
            self.srv.rcpts.append(address)
        if self.srv.delay:
            await asyncio.sleep(self.srv.delay)
        reply = self._decide(self.srv.rcpt, address)
        if reply is not None:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server, session, envelope):
        with self.srv._lock:
            drop = self.srv.drop_data > 0
            self.srv.drop_data -= drop
        if drop:
            # The whole message came, the reply never goes: a connection
            # lost while the client waits for the final 250.
            server.transport.abort()
            return "421 4.4.2 gone"
        reply = self._decide(self.srv.data, envelope)
        if reply is not None:
            return reply
        with self.srv._lock:
            self.srv.messages.append({"mail": envelope.mail_from, "rcpts": list(envelope.rcpt_tos),
                                      "data": envelope.original_content,
                                      "options": list(envelope.mail_options),
                                      "tls": session.ssl is not None, "at": time.time()})
        return "250 2.0.0 OK: queued"

    async def handle_QUIT(self, server, session, envelope):
        server._record["quit"] = True
        return "221 2.0.0 Bye"


class _Session(SMTP):
    """One aiosmtpd session, counted from connect to close."""

    def __init__(self, srv):
        self._srv = srv
        self._counted = False
        self._greeted = False
        self._record = {"peer": None, "helo": None, "esmtp": None, "tls": False,
                        "mail": None, "rcpts": [], "quit": False}
        super().__init__(srv._handler, hostname=srv.hostname, ident="ESMTP test",
                         tls_context=srv._tls, timeout=30, decode_data=False,
                         enable_SMTPUTF8=srv.smtputf8, require_starttls=srv.require_tls)

    def connection_made(self, transport):
        # STARTTLS calls this again with the TLS transport: count once.
        if not self._counted:
            self._counted = True
            self._transport0 = transport
            self._record["peer"] = transport.get_extra_info("peername")
            self._srv._enter(transport)
            with self._srv._lock:
                self._srv.sessions.append(self._record)
        super().connection_made(transport)

    def connection_lost(self, exc):
        if self._counted:
            self._counted = False
            self._srv._leave(self._transport0)
        super().connection_lost(exc)

    async def push(self, status):
        if not self._greeted:
            self._greeted = True
            if self._srv.greeting is not None:
                status = self._srv.greeting
        await super().push(status)

    async def smtp_MAIL(self, arg):
        # The null reverse-path (bounces, callouts) must be accepted.
        rest = self._strip_command_keyword("FROM:", arg) if arg else None
        if rest is None or rest.split(" ")[0] != "<>":
            return await super().smtp_MAIL(arg)
        if await self.check_helo_needed():
            return
        if self.envelope.mail_from:
            return await self.push("503 Error: nested MAIL command")
        status = await self._call_handler_hook("MAIL", "", [])
        await self.push("250 OK" if status is MISSING else status)

    async def smtp_EHLO(self, hostname):
        if self._srv.greeting is not None and self._srv.greeting[:1] != "2":
            return await self.push("503 5.5.1 Error: greeting refused; say QUIT")
        return await super().smtp_EHLO(hostname)

    async def smtp_HELO(self, hostname):
        if self._srv.greeting is not None and self._srv.greeting[:1] != "2":
            return await self.push("503 5.5.1 Error: greeting refused; say QUIT")
        return await super().smtp_HELO(hostname)


class SmtpServer(_Counted):
    """An aiosmtpd server with a policy; see the module docstring."""

    def __init__(self, host="127.0.0.1", port=0, *, greeting=None, ehlo=None, mail=None,
                 rcpt=None, delay=0.0, tls=False, hostname="mx.test", data=None,
                 smtputf8=True, require_tls=False, drop_data=0):
        super().__init__(host, port)
        self.drop_data = drop_data
        self.data = data
        self.smtputf8 = smtputf8
        self.require_tls = require_tls
        self.messages = []
        self.greeting = greeting
        self.ehlo = ehlo
        self.mail = mail
        self.rcpt = rcpt
        self.delay = delay
        self.hostname = hostname
        self._tls = tls if isinstance(tls, ssl.SSLContext) else _tls_context() if tls else None
        self._handler = _Handler(self)
        self.helos = []
        self.mails = []
        self.rcpts = []
        self.sessions = []

    def _factory(self):
        return _Session(self)


class _Mute(asyncio.Protocol):
    def __init__(self, srv):
        self.srv = srv
        self.transport = None

    def connection_made(self, transport):
        self.transport = transport
        self.srv._enter(transport)

    def data_received(self, data):
        self.srv.received += len(data)

    def connection_lost(self, exc):
        self.srv._leave(self.transport)


class SilentServer(_Counted):
    """Accepts TCP connections and never says a word (a hung MX)."""

    def __init__(self, host="127.0.0.1", port=0):
        super().__init__(host, port)
        self.received = 0         # bytes the clients sent anyway

    def _factory(self):
        return _Mute(self)


def accept_all(**kw):
    return SmtpServer(**kw)


def reject_rcpt(reply="550 5.1.1 <{}>: Recipient address rejected: User unknown", only=None, **kw):
    """RCPT refused with reply ("{}" becomes the address); only: the addresses refused."""
    def policy(address):
        if only is None or address in only:
            return reply.format(address)
        return None
    return SmtpServer(rcpt=policy, **kw)


def reject_mail(temp=False, **kw):
    reply = ("451 4.7.1 Sender temporarily refused" if temp
             else "550 5.7.1 Sender refused by policy")
    return SmtpServer(mail=reply, **kw)


def bad_greeting(reply="554 5.3.2 No SMTP service here", **kw):
    return SmtpServer(greeting=reply, **kw)


def defer_rcpt(reply="451 4.3.0 Mailbox temporarily unavailable", **kw):
    return SmtpServer(rcpt=reply, **kw)
