"""The portal index keeps http.index_retention days (30 unless set): log
records older than that leave the search, the table and `mxgate report`,
together with their counts; newer ones stay, and the page and the report
still agree."""
import json
import re
import subprocess
import time

from spec.e2e.harness import ROOT, binary, wait_for
from spec.e2e.metricsserver import HttpTest

DAY = 86400


def ts(t):
    return time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(t))


def reject(t, sid, reason, client, rcpt):
    return (f"ts={ts(t)} pid=1 event=reject sid={sid} dir=inbound client={client} stage=rcpt code=550 "
            f"enhanced=5.7.1 reason={reason} rule=rules.d/50-dnsbl.lua:12 text=\"{reason}: listed\" "
            f"from=a@x.example rcpt={rcpt}\n")


def delivered(t, qid, rcpt):
    return (f"ts={ts(t)} pid=1 event=delivered qid={qid} rcpt={rcpt} from=a@x.example "
            f"relay=127.0.0.1:25 reply=\"250 ok\" delay=1 attempts=1 tls=none\n")


class PortalRetention(HttpTest):
    def found(self, field, value):
        """How many records the search page finds for field=value over all time."""
        status, _, body = self.server.get(f"/search?field={field}&q={value}&window=all")
        self.assertEqual(status, 200, body[:300])
        return int(re.search(r'<p id="found">(\d+) record', body).group(1))

    def table(self):
        status, _, body = self.server.get("/?window=all")
        self.assertEqual(status, 200, body[:300])
        rows = {(m.group(1), m.group(2)): int(m.group(3)) for m in re.finditer(
            r'data-reason="([^"]+)" data-dir="([^"]*)".*?<td class="count">(\d+)</td>', body)}
        return {k: n for k, n in rows.items() if n}, int(re.search(r'id="delivered">(\d+)<', body).group(1))

    def test_records_older_than_the_retention_leave_search_table_and_report(self):
        now = time.time()
        with open(self.server.log_path, "a") as f:
            for i in range(3):                     # 40 days old: past the 30 days kept
                f.write(reject(now - 40 * DAY + i, f"old{i}", "xbl", "192.0.2.40", "old@gone.test"))
            f.write(delivered(now - 40 * DAY, "QOLD1", "old@gone.test"))
            f.write(reject(now - 29 * DAY, "new0", "pbl", "192.0.2.41", "new@kept.test"))
            for i in range(1, 3):                  # an hour old
                f.write(reject(now - 3600 + i, f"new{i}", "pbl", "192.0.2.41", "new@kept.test"))
            f.write(delivered(now - 3600, "QNEW1", "new@kept.test"))
        # The newer records are indexed; the older ones go (the HTTP process
        # prunes once it has read the log, at start and every minute).
        wait_for(lambda: self.found("client", "192.0.2.41") == 3, what="the newer records indexed")
        wait_for(lambda: self.found("client", "192.0.2.40") == 0, timeout=30, what="the older records pruned")
        self.assertEqual(self.found("domain", "gone.test"), 0)
        self.assertEqual(self.found("id", "old1"), 0)
        self.assertEqual(self.found("id", "QOLD1"), 0)
        self.assertEqual(self.found("domain", "kept.test"), 4)
        self.assertEqual(self.found("id", "new0"), 1)       # 29 days old: kept
        shown, delivered_n = self.table()
        self.assertEqual(shown, {("pbl", "inbound"): 3})
        self.assertEqual(delivered_n, 1)
        # `mxgate report -c` reads the same (pruned) index and prints the same numbers.
        p = subprocess.run([binary(), "report", "-c", self.server.conf_path, "--json"], cwd=ROOT,
                           capture_output=True, text=True, timeout=60)
        self.assertEqual(p.returncode, 0, p.stderr)
        data = json.loads(p.stdout)
        self.assertEqual({(e["reason"], e["direction"]): e["count"] for e in data["reasons"] if e["count"]},
                         shown)
        self.assertEqual(data["delivery"]["delivered"], 1)
