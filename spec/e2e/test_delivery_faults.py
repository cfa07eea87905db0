"""Delivery under faults and load: kill -9 of the delivery process mid-burst loses nothing; the per-destination and global session limits hold (downstreams count simultaneous sessions)."""
import hashlib
import os
import signal
import threading
import unittest

try:
    from . import smtpservers as ss
    from .harness import wait_for
    from .test_delivery import DeliveryTest
except ImportError:
    import smtpservers as ss
    from harness import wait_for
    from test_delivery import DeliveryTest


def burst(server, clients, per_client, sent, errors):
    """clients SMTP sessions at once, per_client messages each; sent[rcpt] =
    sha256 of each message that got its 250."""
    def one(c):
        try:
            with server.smtp() as s:
                for i in range(per_client):
                    rcpt = "c%dm%d@hosted.test" % (c, i)
                    body = b"X-Seq: %d.%d\r\nSubject: burst\r\n\r\n%s\r\n" % (c, i, os.urandom(16).hex().encode())
                    s.sendmail("alice@sender.test", [rcpt], body)
                    sent[rcpt] = hashlib.sha256(body).hexdigest()
        except Exception as e:        # reported by the test, not lost in a thread
            errors.append(e)
    threads = [threading.Thread(target=one, args=(c,)) for c in range(clients)]
    for t in threads:
        t.start()
    return threads


class TestKillDuringBurst(DeliveryTest):

    DELIVERY = '{ retry_min = 0.2, retry_max = 0.4, connect_timeout = 2, command_timeout = 5 }'

    def downstreams(self):
        # Each RCPT takes a while, so transfers are in flight when the kill comes.
        return {"main": ss.SmtpServer(delay=0.05), "senders": ss.accept_all()}

    def test_kill_9_mid_transfer_loses_no_message_that_got_its_250(self):
        main = self.srv["main"]
        sent, errors = {}, []
        threads = burst(self.server, 4, 25, sent, errors)
        wait_for(lambda: len(main.messages) >= 10 and main.active > 0, timeout=30,
                 what="deliveries in flight")
        with open(os.path.join(self.server.spool_dir(), "delivery.pid")) as f:
            pid = int(f.read())
        os.kill(pid, signal.SIGKILL)
        delivered_before = len(main.messages)
        for t in threads:
            t.join()
        self.assertEqual(errors, [])
        self.assertEqual(len(sent), 100)
        self.assertLess(delivered_before, 100, "the kill came after the burst was delivered")
        wait_for(lambda: any(e.get("pid") != str(pid) for e in self.server.events("delivery_start")),
                 what="the delivery process restarted")
        wait_for(lambda: {r for m in main.messages for r in m["rcpts"]} >= set(sent),
                 timeout=60, what="every message that got its 250")
        got = {}
        for m in main.messages:
            body = m["data"][m["data"].index(b"X-Seq:"):]
            got.setdefault(m["rcpts"][0], set()).add(hashlib.sha256(body).hexdigest())
        self.assertEqual({r: {h} for r, h in sent.items()}, got)     # byte for byte, no stranger
        self.queue_empty()
        # At-least-once: only a transfer whose 250 was in flight may come twice.
        self.assertLessEqual(len(main.messages) - len(sent), 20)


class TestPerDestinationLimit(DeliveryTest):
    """The default per_destination (20), with room in max_sessions (100)."""

    DELIVERY = '{ retry_min = 0.2, retry_max = 0.4, connect_timeout = 2, command_timeout = 10 }'

    def downstreams(self):
        # Sessions last (RCPT answers after 2 s): the queue fills faster than they end.
        return {"main": ss.SmtpServer(delay=2.0), "senders": ss.accept_all()}

    def test_one_destination_gets_at_most_20_sessions_at_once(self):
        sent, errors = {}, []
        for t in burst(self.server, 6, 10, sent, errors):
            t.join()
        self.assertEqual(errors, [])
        main = self.srv["main"]
        wait_for(lambda: len(main.messages) >= 60, timeout=60, what="every message")
        self.assertEqual(main.max_concurrent, 20)
        self.queue_empty()


class TestGlobalLimit(DeliveryTest):
    """max_sessions over two destinations that are one server ("127.0.0.1:P"
    and "[127.0.0.1]:P" are two routes), each allowed more than the total."""

    DELIVERY = ('{ retry_min = 0.2, retry_max = 0.4, connect_timeout = 2, command_timeout = 10, '
                'per_destination = 3, max_sessions = 4 }')

    def downstreams(self):
        return {"main": ss.SmtpServer(delay=1.0), "senders": ss.accept_all()}

    def routes(self):
        main = self.srv["main"]
        return {"hosted.test": main.address, "other.test": "[%s]:%d" % (main.host, main.port),
                "sender.test": self.srv["senders"].address}

    def test_sessions_over_all_destinations_stay_within_max_sessions(self):
        with self.server.smtp() as c:
            for i in range(12):
                c.sendmail("alice@sender.test", ["m%d@%s" % (i, ("hosted.test", "other.test")[i % 2])],
                           b"Subject: %d\r\n\r\nx\r\n" % i)
        main = self.srv["main"]
        wait_for(lambda: len(main.messages) >= 12, timeout=60, what="every message")
        self.assertEqual(main.max_concurrent, 4)
        self.queue_empty()


if __name__ == "__main__":
    unittest.main()
