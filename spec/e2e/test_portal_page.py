"""The portal page in a real headless browser (chromium + chromedriver via
selenium): after portal-row scenarios run against the default rules.d/ in
test_portal_rows' world (NSD, rbldnsd, aiosmtpd downstreams), the table's
counts equal the log's, a search by recipient finds the right rejection
with its reason text, and a queue-id search leads to the session's trace.
Bad requests get clear HTTP errors and SMTP goes on.

Run: /usr/bin/python3 spec/run.py --no-asan -k portal_page
"""
import collections
import http.client
import json
import subprocess
import unittest

from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select

from spec.e2e import test_portal_rows as pr
from spec.e2e.harness import ROOT, binary, free_port, wait_for

SENDER = "page@customer.test"          # the accepted message's sender (outbound relay)


def make_world():
    port = free_port()
    w = pr.World(pr.shared_backends(), own_port=False, config={
        "http": '{ address = "127.0.0.1", port = %d }' % port,
        "delivery": "{ retry_min = 0.2, retry_max = 0.5, connect_timeout = 1 }"})
    w.http_port = port
    w.scenarios_done = False
    return w


def browser():
    o = webdriver.ChromeOptions()
    for a in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
              "--disable-extensions", "--no-first-run"):
        o.add_argument(a)
    d = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=o)
    d.set_page_load_timeout(60)
    return d


class PortalPageTest(unittest.TestCase):

    USES_MXGATE = True

    def setUp(self):
        self.world = pr.shared_world("portal_page", make_world)
        wait_for(lambda: self.world.mx._connectable(self.world.http_port), what="the HTTP listener")
        if not self.world.scenarios_done:
            self.run_scenarios()
            self.world.scenarios_done = True
        self.base = "http://127.0.0.1:%d" % self.world.http_port
        self.b = browser()
        self.addCleanup(self.b.quit)

    # --- the scenarios: rows 1, 2, 3, 13 and one relayed message ----------
    def rcpt(self, source, rcpt, sender=pr.GOOD_SENDER, direction="inbound"):
        with self.world.client(source, direction=direction) as c:
            c.ehlo()
            self.assertEqual(c.mail(sender)[0], 250)
            return c.rcpt(rcpt)

    def run_scenarios(self):
        self.assertEqual(self.rcpt(pr.XBL_CLIENT, "bob@example.test")[0], 550)
        self.assertEqual(self.rcpt(pr.PBL_CLIENT, "dave@example.test")[0], 550)
        for i in range(2):
            self.assertEqual(self.rcpt("127.0.0.50", "user%d@nothosted.test" % i)[0], 550)
        self.assertEqual(self.rcpt(pr.STRANGER, "x@elsewhere.test", sender="a@customer.test",
                                   direction="outbound")[0], 550)
        with self.world.client(pr.RELAY_CLIENT, direction="outbound") as c:
            c.ehlo()
            c.sendmail(SENDER, ["frank@example.test"], b"Subject: page\r\n\r\nhello\r\n")
        wait_for(lambda: [e for e in self.world.mx.events("delivered") if e.get("from") == SENDER],
                 what="the delivered log line")

    # --- helpers ----------------------------------------------------------
    def open(self, path):
        self.b.get(self.base + path)
        return self.b

    def table(self):
        """{(reason, dir): count} of the page's table."""
        out = {}
        for tr in self.b.find_elements(By.CSS_SELECTOR, "#rejections tr.entry"):
            count = int(tr.find_element(By.CSS_SELECTOR, "td.count").text)
            out[(tr.get_attribute("data-reason"), tr.get_attribute("data-dir"))] = count
        return out

    def log_counts(self):
        return collections.Counter((e.get("reason"), e.get("dir")) for e in self.world.mx.events("reject"))

    def results(self):
        rows = []
        for tr in self.b.find_elements(By.CSS_SELECTOR, "#results tr.record"):
            rows.append({td.get_attribute("class"): td.text for td in tr.find_elements(By.TAG_NAME, "td")})
        return rows

    def search(self, field, value):
        self.open("/search")
        Select(self.b.find_element(By.ID, "field")).select_by_value(field)
        self.b.find_element(By.ID, "q").send_keys(value)
        Select(self.b.find_element(By.ID, "window")).select_by_value("hour")
        self.b.find_element(By.ID, "go").click()
        wait_for(lambda: self.b.find_elements(By.ID, "found"), what="the results")
        return self.results()

    # --- tests ------------------------------------------------------------
    def test_the_tables_counts_equal_the_logs(self):
        log = self.log_counts()
        self.assertTrue(log[("xbl", "inbound")] >= 1 and log[("relay_denied", "outbound")] >= 1, log)
        self.open("/?window=all")
        shown = self.table()
        for key, n in log.items():
            self.assertEqual(shown.get(key), n, (key, shown))
        self.assertEqual(sum(shown.values()), sum(log.values()), shown)
        self.assertEqual(int(self.b.find_element(By.ID, "total").text), sum(log.values()))
        delivered = len(self.world.mx.events("delivered"))
        self.assertEqual(int(self.b.find_element(By.ID, "delivered").text), delivered)
        # every portal row has its line, rejected or not
        self.assertIn(("greylisted", "inbound"), shown)
        xbl = self.b.find_element(By.CSS_SELECTOR, 'tr.entry[data-reason="xbl"]')
        self.assertEqual(xbl.find_element(By.CSS_SELECTOR, "td.text").text, "XBL")
        self.assertIn("client=" + pr.XBL_CLIENT, xbl.find_element(By.CSS_SELECTOR, "td.newest").text)
        # `mxgate report -c` prints the same numbers, from the server's own index
        p = subprocess.run([binary(), "report", "-c", self.world.mx.conf_path, "--json"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        data = json.loads(p.stdout)
        self.assertEqual({(e["reason"], e["direction"]): e["count"] for e in data["reasons"]}, shown)
        self.assertEqual(data["delivery"]["delivered"], delivered)
        # the window form: everything happened within the last hour
        Select(self.b.find_element(By.ID, "window")).select_by_value("hour")
        self.b.find_element(By.ID, "show").click()
        wait_for(lambda: "window=hour" in self.b.current_url, what="the hour's page")
        self.assertEqual(self.table(), shown)

    def test_a_search_by_recipient_finds_the_rejection_with_its_reason(self):
        rows = self.search("rcpt", "Bob@Example.test")
        rejects = [r for r in rows if r["event"] == "reject"]
        self.assertEqual(len(rejects), 1, rows)
        r = rejects[0]
        self.assertEqual((r["reason"], r["client"], r["rcpt"]), ("xbl", pr.XBL_CLIENT, "bob@example.test"), r)
        self.assertTrue(r["reply"].startswith("550 5.7.1 XBL"), r)
        self.assertRegex(r["rule"], r"^.*rules\.d/50-dnsbl\.lua:\d+$")
        rows = self.search("domain", "nothosted.test")
        self.assertEqual(sorted(r["rcpt"] for r in rows), ["user0@nothosted.test", "user1@nothosted.test"])
        self.assertTrue(all(r["reply"].startswith("550 5.7.1 Your domain is not configured") for r in rows), rows)

    def test_a_queue_id_search_shows_the_sessions_trace(self):
        acc = [e for e in self.world.mx.events("accepted") if e.get("from") == SENDER][0]
        rows = self.search("id", acc["qid"])
        self.assertEqual(sorted(r["event"] for r in rows), ["accepted", "delivered"], rows)
        self.b.find_element(By.LINK_TEXT, acc["qid"]).click()
        wait_for(lambda: self.b.find_elements(By.CSS_SELECTOR, "table.trace"), what="the trace")
        self.assertEqual(self.b.find_element(By.TAG_NAME, "h2").text, "Session " + acc["sid"])
        trace = self.b.find_element(By.ID, "trace-" + acc["sid"]).text
        self.assertIn("FROM:<%s>" % SENDER, trace)                     # what the client said
        self.assertIn("ratelimit([\"sender:%s\"" % SENDER, trace)        # what the rules asked the world
        self.assertIn("hook rcpt rcpt=frank@example.test", trace)          # each hook with its facts
        self.assertRegex(trace, r"rules at rcpt accept .*where=.*rules\.d/99-accept\.lua:\d+")
        self.assertIn("250 2.0.0 Ok: queued as " + acc["qid"], trace)

    def get(self, path):
        c = http.client.HTTPConnection("127.0.0.1", self.world.http_port, timeout=30)
        try:
            c.putrequest("GET", path, skip_accept_encoding=True)
            c.endheaders()
            r = c.getresponse()
            return r.status, r.read().decode("utf-8", "replace")
        finally:
            c.close()

    def test_bad_requests_get_clear_errors_and_smtp_goes_on(self):
        self.assertEqual(self.get("/../../etc/passwd")[0], 404)
        self.assertEqual(self.get("/search/../../etc/passwd")[0], 404)
        status, body = self.get("/search?q=" + "a" * 5000)
        self.assertEqual(status, 414)
        self.assertIn("longer than 256 bytes", body)
        self.assertEqual(self.get("/search?q=x%0d%0aSet-Cookie:%20y")[0], 400)
        self.assertEqual(self.get("/?window=fortnight")[0], 400)
        self.assertEqual(self.get("/search?field=body&q=x")[0], 400)
        self.assertEqual(self.get("/?since=yesterday")[0], 400)
        for odd in ("/search?q=%zz%&&=&field", "/search?%%%", "/trace?id=%3Cscript%3E"):
            status, body = self.get(odd)
            self.assertIn(status, (200, 400), odd)
            self.assertNotIn("<script>", body)
        self.assertEqual(self.get("/")[0], 200)
        with self.world.client("127.0.0.51") as c:
            self.assertEqual(c.ehlo()[0], 250)


if __name__ == "__main__":
    unittest.main()
