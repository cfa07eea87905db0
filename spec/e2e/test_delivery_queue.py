"""`mxgate queue` against a running server: list, show, counts, flush,
hold, release, delete."""
import subprocess
import unittest

try:
    from . import smtpservers as ss
    from .harness import Mxgate, binary, wait_for, ROOT
except ImportError:
    import smtpservers as ss
    from harness import Mxgate, binary, wait_for, ROOT


class QueueCommand(unittest.TestCase):
    USES_MXGATE = True

    def setUp(self):
        tries = []

        def first_451(address):       # each recipient's first try is deferred
            tries.append(address)
            return "451 4.3.0 Try again later" if tries.count(address) == 1 else None
        self.down = ss.SmtpServer(rcpt=first_451).start()
        self.addCleanup(self.down.stop)
        self.server = Mxgate({
            "hosted_domains": '{ ["hosted.test"] = { route = "%s" } }' % self.down.address,
            # Retries far away: only `flush` brings them back within the test.
            "delivery": "{ retry_min = 600, retry_max = 600 }",
        })
        self.addCleanup(self.server.cleanup)
        self.server.start()
        self.addCleanup(self.server.stop)
        wait_for(lambda: self.server.events("delivery_start"), what="the delivery process")

    def queue(self, *args, code=0):
        r = subprocess.run([binary(), "queue", "-c", self.server.conf_path] + list(args),
                           capture_output=True, text=True, timeout=30, cwd=ROOT)
        self.assertEqual(r.returncode, code, r.stdout + r.stderr)
        return r.stdout

    def deferred(self, n):
        self.send(n)
        wait_for(lambda: len(self.server.events("deferred")) >= n, what="deferrals")
        return [e["qid"] for e in self.server.events("deferred")]

    def send(self, n):
        with self.server.smtp() as c:
            for i in range(n):
                c.sendmail("alice@sender.test", ["r%d@hosted.test" % i], b"Subject: q\r\n\r\nq\r\n")

    def test_list_show_and_counts_describe_the_deferred_messages(self):
        qids = self.deferred(2)
        out = self.queue("list")
        for q in qids:
            self.assertIn(q, out)
        self.assertIn("451 4.3.0 Try again later", out)
        self.assertIn("alice@sender.test", out)
        self.assertIn("2 %s" % self.down.address, self.queue("counts"))
        show = self.queue("show", qids[0])
        self.assertIn("rcpt: <r0@hosted.test> pending via %s" % self.down.address, show)
        self.queue("show", "NOSUCHQID", code=1)

    def test_flush_retries_now(self):
        self.deferred(1)
        self.queue("flush")
        wait_for(lambda: self.down.messages, what="delivery after flush")
        wait_for(lambda: self.server.queue() == [], what="an empty queue")
        self.assertIn("the queue is empty", self.queue("list"))

    def test_flush_of_one_domain(self):
        self.deferred(1)
        self.queue("flush", "hosted.test")
        wait_for(lambda: self.down.messages, what="delivery after flush")

    def test_a_held_message_waits_until_released(self):
        qid = self.deferred(1)[0]
        self.queue("hold", qid)
        wait_for(lambda: self.server.events("held"), what="the hold")
        self.assertIn("held", self.queue("list"))
        self.queue("flush")
        wait_for(lambda: self.server.log_has("queue_request", request="flush"), what="the flush")
        self.assertEqual(self.down.messages, [])
        self.assertEqual(self.server.queue(), [qid])
        self.queue("release", qid)
        wait_for(lambda: self.down.messages, what="delivery after release")

    def test_delete_removes_a_message_for_good(self):
        qid = self.deferred(1)[0]
        self.queue("delete", qid)
        wait_for(lambda: self.server.log_has("deleted", qid=qid), what="the delete")
        self.assertEqual(self.server.queue(), [])
        self.queue("flush")
        wait_for(lambda: self.server.log_has("queue_request", request="flush"), what="the flush")
        self.assertEqual(self.down.messages, [])
        self.queue("delete", qid, code=1)


if __name__ == "__main__":
    unittest.main()
