"""A real Prometheus server (Debian's `prometheus`) scrapes mxgate's
/metrics, with the bearer token, every second; after a known scenario its
HTTP API returns the series with the exact counts."""
import json
import os
import shutil
import subprocess
import tempfile
import urllib.parse
import urllib.request

from spec.e2e.harness import free_port, wait_for
from spec.e2e.metricsserver import HttpTest
from spec.e2e.test_metrics_counters import RULES, rcpt_codes

TOKEN = "prometheus-test-token"


class Prometheus:
    """prometheus on a high loopback port, its own config and data dir."""

    def __init__(self, target_port, token):
        self.dir = tempfile.mkdtemp(prefix="mxgate-prom-")
        self.port = free_port()
        with open(os.path.join(self.dir, "prometheus.yml"), "w") as f:
            f.write(f"""global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: mxgate
    authorization:
      credentials: {token}
    static_configs:
      - targets: ["127.0.0.1:{target_port}"]
""")
        self.log = open(os.path.join(self.dir, "log"), "wb")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={self.dir}/prometheus.yml", f"--storage.tsdb.path={self.dir}/data",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=self.log, cwd=self.dir)

    def query(self, q):
        url = f"http://127.0.0.1:{self.port}/api/v1/query?" + urllib.parse.urlencode({"query": q})
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                body = json.load(r)
        except OSError:
            return None
        if body.get("status") != "success":
            return None
        return body["data"]["result"]

    def value(self, q):
        r = self.query(q)
        return float(r[0]["value"][1]) if r else None

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class ScrapedByPrometheus(HttpTest):
    RULES = RULES
    WORKERS = 2
    HTTP_EXTRA = f', token = "{TOKEN}"'
    AUTH = {"Authorization": f"Bearer {TOKEN}"}

    def setUp(self):
        super().setUp()
        self.prom = Prometheus(self.server.http_port, TOKEN)
        self.addCleanup(self.prom.stop)
        wait_for(lambda: self.prom.value('up{job="mxgate"}') == 1, timeout=60,
                 what="prometheus to scrape mxgate (up == 1)")

    def test_prometheus_sees_the_rejections_by_reason_exactly(self):
        codes = rcpt_codes(self.server, ["deny@example.test"] * 4 + ["defer@example.test"] * 2)
        self.assertEqual(codes, [550] * 4 + [451] * 2)
        q = 'sum(mxgate_replies_total{stage="rcpt",reason="%s"})'
        wait_for(lambda: self.prom.value(q % "not_hosted") == 4, timeout=30, what="4 not_hosted in prometheus")
        wait_for(lambda: self.prom.value(q % "greylisted") == 2, timeout=30, what="2 greylisted in prometheus")
        r = self.prom.query('mxgate_replies_total{reason="not_hosted"}')
        self.assertEqual(r[0]["metric"]["class"], "5xx")
        self.assertEqual(self.prom.value("mxgate_ready"), 1)
        # A histogram Prometheus can take a quantile of.
        self.assertIsNotNone(self.prom.query(
            "histogram_quantile(0.99, rate(mxgate_spool_commit_duration_seconds_bucket[1m]))"))
