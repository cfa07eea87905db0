"""A plain session with a real client: the message is queued before the 250."""
from spec.e2e.harness import MxgateTest


class PlainSession(MxgateTest):
    def test_swaks_message_is_in_the_spool_with_its_envelope(self):
        r = self.server.swaks("--to", "alice@example.test", "--from", "bob@sender.test")
        self.assertEqual(r.returncode, 0, r.stdout)
        qid = r.stdout.split("queued as ")[1].split()[0]
        self.assertIn(qid, self.server.queue())
        env, msg = self.server.message(qid)
        self.assertEqual(env["sender"], "bob@sender.test")
        self.assertEqual(env["rcpts"], ["alice@example.test"])
        self.assertEqual(env["direction"], "inbound")
        self.assertTrue(msg.startswith(b"Received: from client.example ([127.0.0.1])"))
        self.assertIn(b"This is a test mailing", msg)
