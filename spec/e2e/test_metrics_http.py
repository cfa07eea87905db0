"""The HTTP listener (`http = {...}`): its own process, /healthz, /metrics
parsed by a real Prometheus text parser, credentials, and hostile clients
getting clear HTTP errors while SMTP goes on."""
import base64
import http.client
import os
import signal
import socket
import subprocess
import time

from spec.e2e.harness import ROOT, Mxgate, binary, free_port, wait_for
from spec.e2e.metricsserver import HttpTest, get, http_config, samples

TOKEN = "s3cret-token-for-tests"


def mxgate_t(config):
    srv = Mxgate(config)
    try:
        srv.write_config()
        p = subprocess.run([binary(), "-t", "-c", srv.conf_path], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
        return p.returncode, p.stdout + p.stderr
    finally:
        srv.cleanup()


def smtp_accepts(test, srv):
    with srv.smtp() as c:
        c.ehlo()
        test.assertEqual(c.mail("bob@sender.test")[0], 250)
        test.assertEqual(c.rcpt("alice@example.test")[0], 250)
        test.assertEqual(c.data(b"Subject: hi\r\n\r\nhello\r\n")[0], 250)


def raw_http(port, data, timeout=15):
    """Bytes sent as they are; whatever comes back until the server closes."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    try:
        s.sendall(data)
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except (ConnectionResetError, socket.timeout):
                break
            if not chunk:
                break
            got += chunk
        return got
    finally:
        s.close()


class HttpListener(HttpTest):
    WORKERS = 2

    def test_healthz_says_ready_with_the_generation_and_uptime(self):
        status, headers, body = self.server.get("/healthz")
        self.assertEqual(status, 200, body)
        self.assertEqual(headers["content-type"], "application/json")
        import json
        h = json.loads(body)
        self.assertIs(h["ready"], True)
        self.assertEqual(h["generation"], 1)
        self.assertGreaterEqual(h["uptime"], 0)

    def test_a_reload_moves_the_generation_on(self):
        self.server.reload()
        wait_for(lambda: len(self.server.events("reloaded")) >= 1, what="the reload")
        import json
        wait_for(lambda: json.loads(self.server.get("/healthz")[2])["generation"] == 2,
                 what="generation 2 on /healthz")
        m = self.server.metrics()
        self.assertEqual(m[("mxgate_rule_generation", frozenset())], 2)
        wait_for(lambda: self.server.metrics()[("mxgate_reloads_total", frozenset({("result", "ok")}))] == 2,
                 what="both workers' reloads counted")

    def test_metrics_parse_as_prometheus_text_with_help_and_type(self):
        status, headers, body = self.server.get("/metrics")
        self.assertEqual(status, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        m = samples(body)
        listener = f"127.0.0.1:{self.server.ports['inbound']}"
        self.assertIn(("mxgate_sessions_total", frozenset({("direction", "inbound"), ("listener", listener)})), m)
        self.assertEqual(m[("mxgate_ready", frozenset())], 1)
        self.assertIn(("mxgate_dns_lookup_duration_seconds_bucket", frozenset({("le", "+Inf")})), m)
        for line in body.splitlines():
            if line.startswith("# TYPE "):
                self.assertTrue(line.split()[2].startswith("mxgate_"), line)

    def test_the_http_server_is_its_own_process_running_as_the_user(self):
        start = wait_for(lambda: self.server.events("http_start"), what="http_start")[0]
        pid = int(start["pid"])
        self.assertNotIn(pid, self.server.worker_pids())
        self.assertNotEqual(pid, self.server.proc.pid)
        with open(f"/proc/{pid}/status") as f:
            uids = [l for l in f if l.startswith("Uid:")][0].split()[1:]
        if os.geteuid() == 0:
            self.assertNotIn("0", uids, "the HTTP process kept root")

    def test_a_killed_http_process_is_restarted(self):
        pid = int(wait_for(lambda: self.server.events("http_start"), what="http_start")[0]["pid"])
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: self.server.log_has("http_died"), what="http_died")
        wait_for(lambda: len(self.server.events("http_start")) >= 2, what="a new HTTP process")
        wait_for(lambda: self.server._connectable(self.server.http_port), what="the listener again")
        self.assertEqual(self.server.get("/healthz")[0], 200)

    def test_unknown_paths_and_traversal_are_404(self):
        for path in ("/nope", "/../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/metrics/../../etc/passwd",
                     "//etc/passwd"):
            status, _, body = self.server.get(path)
            self.assertEqual(status, 404, path)
            self.assertNotIn("root:", body)

    def test_other_methods_are_405(self):
        status, headers, _ = self.server.get("/metrics", method="POST")
        self.assertEqual(status, 405)
        self.assertIn("GET", headers["allow"])

    def test_malformed_requests_get_400_and_nothing_dies(self):
        for junk, code in ((b"GET /metrics HTTP/9.9\r\n\r\n", b"505"),
                           (b"GET /metrics HTTP/1.1\r\nHost: x\r\nBad header line\r\n\r\n", b"400"),
                           (b"GET /metrics HTTP/1.1\r\n\r\n", b"400"),          # no Host
                           (b"GET /metrics\r\n\r\n", b"400")):                    # HTTP/0.9
            got = raw_http(self.server.http_port, junk)
            self.assertTrue(got.startswith(b"HTTP/1.1 " + code), (junk, got[:100]))
        self.assertEqual(self.server.get("/healthz")[0], 200)
        self.assertFalse(self.server.log_has("http_died"))
        smtp_accepts(self, self.server)

    def test_bytes_that_are_not_a_request_line_are_dropped(self):
        # libmicrohttpd 0.9.75 closes such a connection without a status line.
        for junk in (b"GARBAGE\r\n\r\n", b"GET\r\n\r\n", b"\x00\x01\x02\xff\r\n\r\n"):
            self.assertEqual(raw_http(self.server.http_port, junk, timeout=30), b"", junk)
        self.assertEqual(self.server.get("/healthz")[0], 200)
        self.assertFalse(self.server.log_has("http_died"))
        smtp_accepts(self, self.server)

    def test_huge_headers_get_431_and_nothing_dies(self):
        req = b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 200000 + b"\r\n\r\n"
        got = raw_http(self.server.http_port, req)
        self.assertRegex(got[:12], rb"^HTTP/1\.[01] 431", got[:200])
        many = b"GET /metrics HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: y\r\n" % i for i in range(5000)) + b"\r\n"
        got = raw_http(self.server.http_port, many)
        self.assertRegex(got[:12], rb"^HTTP/1\.[01] 431", got[:200])
        self.assertEqual(self.server.get("/healthz")[0], 200)
        self.assertFalse(self.server.log_has("http_died"))

    def test_slow_clients_neither_block_others_nor_smtp(self):
        slow = []
        for _ in range(8):          # each sends half a request line and waits
            s = socket.create_connection(("127.0.0.1", self.server.http_port), timeout=30)
            s.sendall(b"GET /met")
            slow.append(s)
        try:
            self.assertEqual(self.server.get("/healthz")[0], 200)
            smtp_accepts(self, self.server)
            # The server drops a client that stalls (10 s without a byte).
            slow[0].settimeout(30)
            self.assertEqual(slow[0].recv(100), b"")
        finally:
            for s in slow:
                s.close()


class HttpCredentials(HttpTest):
    HTTP_EXTRA = f', token = "{TOKEN}", user = "ops", password = "pa:ss"'
    AUTH = {"Authorization": f"Bearer {TOKEN}"}

    def test_without_credentials_metrics_are_401(self):
        status, headers, body = self.server.get("/metrics")
        self.assertEqual(status, 401)
        self.assertIn("www-authenticate", headers)
        self.assertNotIn("mxgate_", body)

    def test_a_wrong_token_is_401(self):
        for auth in (f"Bearer {TOKEN}x", f"Bearer {TOKEN[:-1]}", "Bearer ", "Bearer", f"Token {TOKEN}",
                     f"Basic {base64.b64encode(b'ops:wrong').decode()}"):
            self.assertEqual(self.server.get("/metrics", {"Authorization": auth})[0], 401, auth)

    def test_the_right_token_or_basic_auth_gets_the_metrics(self):
        self.assertEqual(self.server.get("/metrics", {"Authorization": f"Bearer {TOKEN}"})[0], 200)
        self.assertEqual(self.server.get("/metrics", {"Authorization": f"bearer {TOKEN}"})[0], 200)
        basic = base64.b64encode(b"ops:pa:ss").decode()
        self.assertEqual(self.server.get("/metrics", {"Authorization": f"Basic {basic}"})[0], 200)
        self.assertEqual(self.server.get("/", {"Authorization": f"Bearer {TOKEN}"})[0], 200)

    def test_healthz_needs_no_credentials(self):
        self.assertEqual(self.server.get("/healthz")[0], 200)


class HttpLimits(HttpTest):
    """http.max_per_ip, max_connections and connection_memory, set in the config."""
    HTTP_EXTRA = ", max_per_ip = 2, max_connections = 4, connection_memory = 8192"

    def test_a_third_connection_from_one_address_is_refused_while_smtp_goes_on(self):
        held = []
        for _ in range(2):          # two requests in progress: half a request line each
            s = socket.create_connection(("127.0.0.1", self.server.http_port), timeout=30)
            s.sendall(b"GET /heal")
            held.append(s)
        try:
            third = raw_http(self.server.http_port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            self.assertEqual(third, b"", "a third connection from 127.0.0.1 was served")
            smtp_accepts(self, self.server)
            # The two held ones were not disturbed: the first finishes its request.
            held[0].sendall(b"thz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            got = b""
            while True:
                chunk = held[0].recv(65536)
                if not chunk:
                    break
                got += chunk
            self.assertTrue(got.startswith(b"HTTP/1.1 200"), got[:100])
        finally:
            for s in held:
                s.close()

        # Once they are gone, a new connection is served again.
        def served():
            try:
                return self.server.get("/healthz")[0] == 200
            except (OSError, http.client.HTTPException):
                return False
        wait_for(served, what="a connection served after the held ones closed")
        self.assertFalse(self.server.log_has("http_died"))

    def test_headers_past_connection_memory_get_431(self):
        req = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"a" * 12000 + b"\r\n\r\n"
        got = raw_http(self.server.http_port, req)
        self.assertRegex(got[:12], rb"^HTTP/1\.[01] 431", got[:200])
        self.assertEqual(self.server.get("/healthz")[0], 200)


class HttpLimitConfig(HttpTest):
    USES_MXGATE = False

    def setUp(self):
        pass

    def test_http_limits_are_checked_by_mxgate_t(self):
        code, out = mxgate_t({"http": '{ max_per_ip = 2, max_connections = 8, timeout = 30, '
                                      'connection_memory = 65536, max_page = 1048576, '
                                      'index_max_size = 1073741824, index_retention = 90 }'})
        self.assertEqual(code, 0, out)
        for bad, why in (("max_per_ip = 0", "max_per_ip: out of range"),
                         ("max_connections = -1", "max_connections: out of range"),
                         ("timeout = 0/0", "timeout: not a finite number"),        # NaN
                         ("timeout = 0", "timeout: out of range"),
                         ("connection_memory = 1e12", "connection_memory: out of range"),
                         ("max_page = 10", "max_page: out of range"),
                         ("index_max_size = 1/0", "index_max_size: not a finite number"),  # inf
                         ("index_retention = 0", "index_retention: out of range"),
                         ("index_retention = -30", "index_retention: out of range"),
                         ("max_per_ip = 2.5", "max_per_ip: expected a whole number"),
                         ('max_per_ip = "2"', "max_per_ip: expected a number"),
                         ("max_per_ip = 100, max_connections = 10", "max_per_ip (100) is more than"),
                         ("max_per_Ip = 2", "unknown key max_per_Ip")):
            with self.subTest(bad):
                code, out = mxgate_t({"http": "{ %s }" % bad})
                self.assertEqual(code, 1, out)
                self.assertIn("http: " + why, out)


class HttpConfig(HttpTest):
    USES_MXGATE = False

    def setUp(self):
        pass

    def test_a_public_address_without_a_token_is_a_config_error(self):
        code, out = mxgate_t({"http": '{ address = "0.0.0.0", port = 8025 }'})
        self.assertEqual(code, 1, out)
        self.assertIn("http", out)
        self.assertIn("not loopback", out)
        code, out = mxgate_t({"http": '{ address = "0.0.0.0", port = 8025, token = "t" }'})
        self.assertEqual(code, 0, out)
        code, out = mxgate_t({"http": '{ address = "::1", port = 8025 }'})
        self.assertEqual(code, 0, out)

    def test_bad_http_settings_are_config_errors(self):
        for bad, why in (('{ address = "nowhere", port = 1 }', "not an IP address"),
                         ('{ port = 0 }', "out of range"),
                         ('{ user = "a" }', "both user and password"),
                         ('"yes"', "expected")):
            code, out = mxgate_t({"http": bad})
            self.assertEqual(code, 1, bad)
            self.assertIn(why, out, bad)

    def test_without_http_there_is_no_listener(self):
        srv = Mxgate({})
        self.addCleanup(srv.cleanup)
        srv.start()
        self.addCleanup(srv.stop)
        self.assertFalse(srv.log_has("http_start"))
