"""An mxgate with its HTTP listener on, and clients for it: get() over
http.client, metrics() parsed by python3-prometheus-client's text parser."""
import http.client

from prometheus_client.parser import text_string_to_metric_families

from spec.e2e.harness import Mxgate, MxgateTest, free_port, wait_for


def http_config(port, extra=""):
    return '{ address = "127.0.0.1", port = %d%s }' % (port, extra)


def get(port, path, headers=None, method="GET"):
    """(status, headers dict, body text) of one request."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read().decode("utf-8", "replace")
    finally:
        c.close()


def samples(text):
    """{(sample name, frozenset of label items): value} of a /metrics body."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


class HttpServer(Mxgate):
    def __init__(self, config=None, http_extra="", auth=None, **kw):
        self.http_port = free_port()
        self.auth = auth or {}          # headers that pass the configured credentials
        config = dict(config or {})
        config["http"] = http_config(self.http_port, http_extra)
        super().__init__(config, **kw)

    def _start(self):
        super()._start()
        wait_for(lambda: self._connectable(self.http_port), what="the HTTP listener")
        return self

    def get(self, path, headers=None, method="GET"):
        return get(self.http_port, path, headers, method)

    def quiet(self):
        """Waits for a still point: the harness's start-up probes have ended
        and are counted (settled(): an open-session count of 0 does not see a
        probe the workers have not accepted yet), and no SMTP session is open,
        so a scenario's counts are its own."""
        self.settled()

        def none_open():
            m = self.metrics(self.auth)
            return all(v == 0 for k, v in m.items() if k[0] == "mxgate_sessions_open")
        wait_for(none_open, what="no open SMTP session")

    def metrics(self, headers=None):
        status, _, body = self.get("/metrics", headers)
        if status != 200:
            raise AssertionError(f"/metrics: {status} {body[:200]}")
        return samples(body)


def value(m, name, **labels):
    """One sample's value, 0 when the series is absent (not seen yet)."""
    return m.get((name, frozenset(labels.items())), 0)


class HttpTest(MxgateTest):
    """A test with a fresh server whose HTTP listener is on (self.server)."""
    HTTP_EXTRA = ""
    AUTH = {}

    def setUp(self):
        self.server = HttpServer(dict(self.CONFIG), http_extra=self.HTTP_EXTRA, auth=self.AUTH,
                                 rules=self.RULES and dict(self.RULES), workers=self.WORKERS)
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.addCleanup(self.server.stop)
        self.server.quiet()
