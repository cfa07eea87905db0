"""Delivery: every accepted message reaches its next hop (aiosmtpd downstreams).

Each test starts its downstream servers first, then an mxgate whose hosted
domains route to them, sends with smtplib, and waits for what arrives.
Retry intervals are tiny (delivery.retry_min) so retries happen in the test.
"""
import email
import email.policy
import hashlib
import os
import signal
import smtplib
import subprocess
import unittest

try:
    from . import smtpservers as ss
    from .harness import Mxgate, wait_for
except ImportError:
    import smtpservers as ss
    from harness import Mxgate, wait_for

FAST = '{ retry_min = 0.2, retry_max = 0.4, connect_timeout = 2, command_timeout = 3 }'


class DeliveryTest(unittest.TestCase):
    USES_MXGATE = True
    """Downstreams named in DOWNSTREAMS are started first; hosted.test goes to
    "main", sender.test (where bounces go) to "senders"."""

    DELIVERY = FAST

    def downstreams(self):
        return {"main": ss.accept_all(), "senders": ss.accept_all()}

    def routes(self):
        return {"hosted.test": self.srv["main"].address, "sender.test": self.srv["senders"].address}

    def setUp(self):
        self.srv = self.downstreams()
        for s in self.srv.values():
            s.start()
            self.addCleanup(s.stop)
        self.server = Mxgate({"delivery": self.DELIVERY})
        self.addCleanup(self.server.cleanup)
        domains = ", ".join('["%s"] = { route = "%s" }' % (d, r) for d, r in self.routes().items())
        self.server.config["hosted_domains"] = "{ %s }" % domains
        self.server.start()
        self.addCleanup(self.server.stop)
        wait_for(lambda: self.server.events("delivery_start"), what="the delivery process")

    def send(self, rcpts, body=b"Subject: hello\r\n\r\nHello.\r\n", sender="alice@sender.test",
             direction="inbound"):
        with self.server.smtp(direction) as c:
            c.sendmail(sender, rcpts, body)

    def dsn(self):
        """The one DSN that reached sender.test, parsed."""
        msgs = wait_for(lambda: self.srv["senders"].messages, what="a DSN")
        self.assertEqual(len(msgs), 1)
        m = msgs[0]
        self.assertEqual(m["mail"], "<>")             # from the null sender
        return email.message_from_bytes(m["data"], policy=email.policy.compat32)

    @staticmethod
    def report(msg):
        """The per-recipient blocks of a multipart/report DSN."""
        parts = msg.get_payload()
        status = [p for p in parts if p.get_content_type() == "message/delivery-status"][0]
        blocks = status.get_payload()      # [per-message, per-recipient...]
        return blocks[0], blocks[1:]

    def queue_empty(self):
        return wait_for(lambda: self.server.queue() == [], what="an empty queue")


class TestAccept(DeliveryTest):

    def test_message_arrives_byte_for_byte_with_dots_restuffed(self):
        body = (b"Subject: dots\r\nX-Test: 1\r\n\r\n"
                b".starts with a dot\r\n..two dots\r\n.\r\nnot the end\r\n"
                + b"x" * 990 + b"\r\n" + b"last line\r\n")
        self.send(["bob@hosted.test"], body)
        msgs = wait_for(lambda: self.srv["main"].messages, what="delivery")
        got = msgs[0]["data"]
        self.assertTrue(got.startswith(b"Received: from "), got[:80])
        self.assertTrue(got.endswith(body), got[-200:])
        self.assertNotIn(b"\n", got.replace(b"\r\n", b""))    # CRLF only
        self.assertEqual(msgs[0]["mail"], "alice@sender.test")
        self.assertEqual(msgs[0]["rcpts"], ["bob@hosted.test"])
        self.queue_empty()
        e = self.server.events("delivered")[0]
        self.assertEqual(e["rcpt"], "bob@hosted.test")
        self.assertEqual(e["relay"], self.srv["main"].address)
        self.assertTrue(e["reply"].startswith("250"))
        self.assertEqual(e["attempts"], "1")

    def test_two_messages_for_one_destination_share_one_connection(self):
        # Both are queued before the session is ready, so it sends both.
        with self.server.smtp() as c:
            c.sendmail("alice@sender.test", ["a@hosted.test"], b"Subject: 1\r\n\r\n1\r\n")
            c.sendmail("alice@sender.test", ["b@hosted.test", "c@hosted.test"], b"Subject: 2\r\n\r\n2\r\n")
        wait_for(lambda: len(self.srv["main"].messages) == 2, what="two deliveries")
        self.queue_empty()
        self.assertEqual(sorted(r for m in self.srv["main"].messages for r in m["rcpts"]),
                         ["a@hosted.test", "b@hosted.test", "c@hosted.test"])

    def test_outbound_relay_reaches_the_recipient_domains_route(self):
        self.send(["carol@hosted.test"], direction="outbound")
        wait_for(lambda: self.srv["main"].messages, what="delivery")
        self.queue_empty()


class TestDeferThenAccept(DeliveryTest):

    def downstreams(self):
        tries = []

        def once_451(address):
            tries.append(address)
            return "451 4.3.0 Try again later" if len(tries) == 1 else None
        return {"main": ss.SmtpServer(rcpt=once_451), "senders": ss.accept_all()}

    def test_4xx_is_retried_and_then_delivered(self):
        self.send(["bob@hosted.test"])
        wait_for(lambda: self.srv["main"].messages, what="delivery after a retry")
        self.queue_empty()
        d = self.server.events("deferred")
        self.assertEqual(len(d), 1)
        self.assertTrue(d[0]["reply"].startswith("451 4.3.0"))
        self.assertEqual(self.server.events("delivered")[0]["attempts"], "2")
        self.assertEqual(self.srv["senders"].messages, [])     # no DSN


class TestOneOfTwoRefused(DeliveryTest):

    def downstreams(self):
        return {"main": ss.reject_rcpt(only=["nobody@hosted.test"]), "senders": ss.accept_all()}

    def test_5xx_for_one_recipient_bounces_only_that_one(self):
        self.send(["bob@hosted.test", "nobody@hosted.test"],
                  b"Subject: for two\r\nMessage-ID: <m1@sender.test>\r\n\r\nHi.\r\n")
        wait_for(lambda: self.srv["main"].messages, what="delivery")
        self.assertEqual(self.srv["main"].messages[0]["rcpts"], ["bob@hosted.test"])
        msg = self.dsn()
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertEqual(msg["To"], "<alice@sender.test>")
        per_msg, rcpts = self.report(msg)
        self.assertEqual(per_msg["Reporting-MTA"], "dns; mx.mxgate.test")
        self.assertEqual(len(rcpts), 1)
        r = rcpts[0]
        self.assertEqual(r["Final-Recipient"], "rfc822; nobody@hosted.test")
        self.assertEqual(r["Action"], "failed")
        self.assertEqual(r["Status"], "5.1.1")
        self.assertEqual(r["Remote-MTA"], "dns; 127.0.0.1")
        self.assertTrue(r["Diagnostic-Code"].startswith("smtp; 550 5.1.1"), r["Diagnostic-Code"])
        headers = [p for p in msg.get_payload() if p.get_content_type() == "text/rfc822-headers"][0]
        self.assertIn("Message-ID: <m1@sender.test>", headers.get_payload())
        self.queue_empty()
        # The DSN itself was delivered from <>, and the original is gone.
        self.assertEqual(len(self.server.events("bounced")), 1)


class TestRefusedAtData(DeliveryTest):

    def downstreams(self):
        return {"main": ss.SmtpServer(data="554 5.6.0 Message content rejected"),
                "senders": ss.accept_all()}

    def test_5xx_at_end_of_data_bounces_every_recipient_in_one_dsn(self):
        self.send(["bob@hosted.test", "carol@hosted.test"])
        msg = self.dsn()
        _, rcpts = self.report(msg)
        self.assertEqual(sorted(r["Final-Recipient"] for r in rcpts),
                         ["rfc822; bob@hosted.test", "rfc822; carol@hosted.test"])
        for r in rcpts:
            self.assertEqual(r["Status"], "5.6.0")
            self.assertTrue(r["Diagnostic-Code"].startswith("smtp; 554 5.6.0"))
        self.queue_empty()

    def test_a_bounce_from_the_null_sender_is_dropped_not_bounced(self):
        self.send(["bob@hosted.test"], sender="")
        wait_for(lambda: self.server.events("dsn_dropped"), what="the dropped DSN")
        self.queue_empty()
        self.assertEqual(self.srv["senders"].messages, [])


class TestTooManyHops(DeliveryTest):

    def test_more_than_50_received_lines_bounce_5_4_6_and_are_not_sent(self):
        hops = b"".join(b"Received: from hop%d.example by hop%d.example; Mon, 1 Jan 2026 00:00:00 +0000\r\n"
                        % (i, i + 1) for i in range(50))
        self.send(["bob@hosted.test"], hops + b"Subject: loop\r\n\r\nround and round\r\n")
        r = self.report(self.dsn())[1][0]
        self.assertEqual(r["Status"], "5.4.6")
        self.assertEqual(self.srv["main"].messages, [])
        self.queue_empty()


class TestMalformedReplies(DeliveryTest):

    def downstreams(self):
        return {"main": ss.SmtpServer(greeting="220 " + "x" * 600), "senders": ss.accept_all()}

    def test_an_overlong_reply_line_defers_and_sends_nothing(self):
        self.send(["bob@hosted.test"])
        d = wait_for(lambda: self.server.events("deferred"), what="a deferral")[0]
        self.assertIn("reply line too long", d["reply"])
        self.assertEqual(self.srv["main"].messages, [])
        self.assertEqual(len(self.server.queue()), 1)


class TestNoSmtputf8(DeliveryTest):

    def downstreams(self):
        return {"main": ss.SmtpServer(smtputf8=False), "senders": ss.accept_all()}

    def test_smtputf8_message_to_a_hop_without_it_bounces_5_6_7(self):
        with self.server.smtp() as c:
            c.ehlo()
            c.sendmail("alice@sender.test", ["bob@hosted.test"],
                       "Subject: héllo\r\n\r\nçà\r\n".encode(), mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        msg = self.dsn()
        _, rcpts = self.report(msg)
        self.assertEqual(rcpts[0]["Status"], "5.6.7")
        self.assertEqual(self.srv["main"].messages, [])
        self.queue_empty()


class TestStarttlsRequired(DeliveryTest):

    def downstreams(self):
        return {"main": ss.SmtpServer(tls=True, require_tls=True), "senders": ss.accept_all()}

    def test_delivery_uses_starttls_when_offered_and_logs_the_cipher(self):
        self.send(["bob@hosted.test"])
        msgs = wait_for(lambda: self.srv["main"].messages, what="delivery")
        self.assertTrue(msgs[0]["tls"])
        # The downstream has the message before our "delivered" line is written.
        e = wait_for(lambda: self.server.events("delivered"), what="the delivered log line")[0]
        self.assertTrue(e["tls"].startswith("TLSv1."), e["tls"])


class TestClosedPort(DeliveryTest):

    DELIVERY = '{ retry_min = 0.3, retry_max = 0.3, max_lifetime = 1.5, connect_timeout = 1 }'

    def downstreams(self):
        return {"senders": ss.accept_all()}

    def routes(self):
        return {"hosted.test": "127.0.0.1:%d" % ss.closed_port(), "sender.test": self.srv["senders"].address}

    def test_refused_connection_defers_then_bounces_at_max_lifetime(self):
        self.send(["bob@hosted.test"])
        wait_for(lambda: self.server.events("deferred"), what="a deferral")
        msg = self.dsn()
        _, rcpts = self.report(msg)
        self.assertEqual(rcpts[0]["Status"], "4.4.7")
        self.assertEqual(rcpts[0]["Action"], "failed")
        self.queue_empty()


class TestDroppedBeforeTheFinalReply(DeliveryTest):

    def downstreams(self):
        return {"main": ss.SmtpServer(drop_data=1), "other": ss.accept_all(),
                "senders": ss.accept_all()}

    def routes(self):
        return {"hosted.test": self.srv["main"].address, "other.test": self.srv["other"].address,
                "sender.test": self.srv["senders"].address}

    def test_the_lost_transfer_is_retried_and_delivered_recipients_are_not_resent(self):
        self.send(["bob@hosted.test", "carol@other.test"])
        wait_for(lambda: self.srv["main"].messages, what="the retry")
        self.queue_empty()
        self.assertEqual(len(self.srv["other"].messages), 1)   # not sent again
        self.assertEqual(len(self.srv["main"].messages), 1)
        d = self.server.events("deferred")
        self.assertEqual([e["rcpt"] for e in d], ["bob@hosted.test"])


class TestLoop(DeliveryTest):

    def routes(self):
        return {"hosted.test": "127.0.0.1:%d" % self.server.port, "sender.test": self.srv["senders"].address}

    def test_a_route_back_to_our_own_listener_bounces_5_4_6(self):
        self.send(["bob@hosted.test"])
        r = self.report(self.dsn())[1][0]
        self.assertEqual(r["Status"], "5.4.6")
        self.assertIn("loops back to myself", r["Diagnostic-Code"])
        self.queue_empty()
        # Nothing was sent to ourselves: the only accepted message is the test's.
        self.assertEqual(len(self.server.events("accepted")), 1)


class TestDeadDestination(DeliveryTest):

    DELIVERY = '{ retry_min = 0.5, retry_max = 0.5, connect_timeout = 1, command_timeout = 0.3 }'

    def downstreams(self):
        return {"main": ss.SilentServer(), "senders": ss.accept_all()}

    def test_a_dead_destination_is_probed_once_per_interval(self):
        with self.server.smtp() as c:
            for i in range(6):
                c.sendmail("alice@sender.test", ["m%d@hosted.test" % i], b"Subject: x\r\n\r\nx\r\n")
        # Each round defers all six; after the first, one connection per round.
        wait_for(lambda: len(self.server.events("deferred")) >= 6 * 4, timeout=20, what="four rounds")
        rounds = len(self.server.events("deferred")) // 6
        first = self.srv["main"].connections
        wait_for(lambda: len(self.server.events("deferred")) >= 6 * (rounds + 2), timeout=20,
                 what="two more rounds")
        more = len(self.server.events("deferred")) // 6 - rounds
        self.assertLessEqual(self.srv["main"].connections - first, more + 1)


class TestReload(DeliveryTest):

    def downstreams(self):
        return {"main": ss.accept_all(), "new": ss.accept_all(), "senders": ss.accept_all()}

    def test_sighup_reroutes_new_mail(self):
        self.send(["bob@hosted.test"])
        wait_for(lambda: self.srv["main"].messages, what="delivery by the old route")
        self.server.config["hosted_domains"] = '{ ["hosted.test"] = { route = "%s" } }' % self.srv["new"].address
        self.server.write_config()
        self.server.reload()
        wait_for(lambda: self.server.events("delivery_reloaded"), what="the delivery process's reload")
        self.send(["carol@hosted.test"])
        m = wait_for(lambda: self.srv["new"].messages, what="delivery by the new route")[0]
        self.assertEqual(m["rcpts"], ["carol@hosted.test"])
        self.assertEqual(len(self.srv["main"].messages), 1)


class TestRestart(DeliveryTest):

    def test_kill_9_of_the_delivery_process_loses_nothing(self):
        pid = int(wait_for(lambda: self.server.events("delivery_start"))[-1]["pid"])
        sent = {}
        with self.server.smtp() as c:
            for i in range(30):
                body = b"Subject: %d\r\n\r\nmessage %d\r\n" % (i, i)
                c.sendmail("alice@sender.test", ["m%d@hosted.test" % i], body)
                sent["m%d@hosted.test" % i] = hashlib.sha256(body).hexdigest()
                if i == 10:
                    os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(self.server.events("delivery_start")) >= 2, what="a restart")
        wait_for(lambda: {r for m in self.srv["main"].messages for r in m["rcpts"]} >= set(sent),
                 timeout=20, what="every message")
        for m in self.srv["main"].messages:
            self.assertTrue(m["data"].endswith(m["data"].split(b"\r\n", 3)[-1]))
            body = m["data"][m["data"].index(b"Subject:"):]
            self.assertEqual(hashlib.sha256(body).hexdigest(), sent[m["rcpts"][0]])
        self.queue_empty()


class TestTornFile(DeliveryTest):

    def test_a_torn_queue_file_is_skipped_with_a_log_line(self):
        q = os.path.join(self.server.spool_dir(), "queue")
        tmp = os.path.join(self.server.spool_dir(), "tmp", "torn")
        body = (b'{"length":"00000000000000009999","v":1,"qid":"TORN","sender":"a@sender.test",'
                b'"rcpts":["bob@hosted.test"]}\nSubject: half\r\n')
        with open(tmp, "wb") as f:
            f.write(body)
        os.rename(tmp, os.path.join(q, "TORN"))
        e = wait_for(lambda: self.server.events("queue_skipped"), what="the skip")[0]
        self.assertEqual(e["qid"], "TORN")
        self.assertIn("torn", e["why"])
        self.assertEqual(self.srv["main"].messages, [])
        self.assertTrue(os.path.exists(os.path.join(self.server.spool_dir(), "corrupt", "TORN")))


def ring_files(spool, pid=None):
    """{inode: name} of the recycled files in queue/ (of writer pid's ring, or
    every ring): queue/.free.PID/N, or queue/.free.PID.N as rings were before
    they were directories."""
    q = os.path.join(spool, "queue")
    out = {}
    for n in os.listdir(q):
        if not n.startswith(".free.") or (pid is not None and n.split(".")[2] != str(pid)):
            continue
        p = os.path.join(q, n)
        names = [os.path.join(n, m) for m in os.listdir(p)] if os.path.isdir(p) else [n]
        out.update({os.stat(os.path.join(q, m)).st_ino: m for m in names})
    return out


def take_pid(pid, tries=1000):
    """A process that is no part of mxgate (sleep) with this pid, as a busy
    machine hands out a dead process's pid again, or None. The kernel gives
    the next fork ns_last_pid + 1 (root only); another fork on the machine
    may come first, so try again."""
    for _ in range(tries):
        try:
            with open("/proc/sys/kernel/ns_last_pid", "w") as f:
                f.write(str(pid - 1))
        except OSError:
            return None
        p = subprocess.Popen(["sleep", "300"])
        if p.pid == pid:
            return p
        p.kill()
        p.wait()
    return None


class TestRecycledFiles(DeliveryTest):
    """A delivered queue file goes into the ring of the worker that wrote it,
    queue/.free.PID/N, and the next message that worker accepts is written
    into it (no inode allocated, none freed)."""

    def free_files(self):
        return ring_files(self.server.spool_dir())

    def test_the_next_message_is_written_into_the_file_of_one_delivered(self):
        self.send(["bob@hosted.test"], b"Subject: first\r\n\r\n" + (b"x" * 70 + b"\r\n") * 80)
        self.queue_empty()
        free = wait_for(self.free_files, what="a recycled file")
        self.srv["main"].stop()                     # the second one stays queued
        self.send(["bob@hosted.test"], b"Subject: second\r\n\r\nshort\r\n")
        [qid] = self.server.queue()
        q = os.path.join(self.server.spool_dir(), "queue")
        self.assertIn(os.stat(os.path.join(q, qid)).st_ino, free)
        env, msg = self.server.message(qid)         # whole: length = size, no old bytes left
        self.assertTrue(msg.endswith(b"Subject: second\r\n\r\nshort\r\n"))
        self.assertNotIn(b"xxxx", msg)

    def test_a_file_whose_content_does_not_match_its_sum_is_skipped_as_torn(self):
        self.srv["main"].stop()
        self.send(["bob@hosted.test"], b"Subject: mine\r\n\r\nHello.\r\n")
        [qid] = self.server.queue()
        q = os.path.join(self.server.spool_dir(), "queue")
        with open(os.path.join(q, qid), "rb") as f:
            data = f.read()
        self.assertRegex(data[:58], rb'^\{"length":"\d{20}","sum":"[0-9a-f]{16}",$')
        # What a crash can leave of a recycled file: the new header, old bytes after it.
        tmp = os.path.join(self.server.spool_dir(), "tmp", "mixed")
        with open(tmp, "wb") as f:
            f.write(data.replace(b"Hello.", b"Olleh."))
        os.rename(tmp, os.path.join(q, "MIXED"))
        e = wait_for(lambda: self.server.events("queue_skipped"), what="the skip")[0]
        self.assertEqual((e["qid"], e["why"]), ("MIXED", "torn: checksum"))


class TestRingOfADeadWorker(DeliveryTest):
    """A worker killed with -9 leaves no recycled file behind, not even when
    its pid goes to another process before its last messages are delivered,
    and every message it accepted is delivered."""

    def subjects(self):
        return sorted(email.message_from_bytes(m["data"])["Subject"] for m in self.srv["main"].messages)

    def test_the_ring_of_a_killed_worker_is_removed_and_its_queued_mail_delivered(self):
        [pid] = self.server.worker_pids()
        spool = self.server.spool_dir()
        for i in range(3):
            self.send(["bob@hosted.test"], b"Subject: early %d\r\n\r\nHello.\r\n" % i)
        wait_for(lambda: len(self.srv["main"].messages) == 3 and ring_files(spool, pid),
                 what="the three delivered, their file in the worker's ring")
        self.srv["main"].stop()                     # these stay queued, written by the worker
        for i in range(5):
            self.send(["bob@hosted.test"], b"Subject: late %d\r\n\r\nHello.\r\n" % i)
        self.assertEqual(len(self.server.queue()), 5)

        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: self.server.log_has("worker_died", worker_pid=str(pid)), what="the master to reap it")
        self.assertEqual(ring_files(spool, pid), {}, "the dead worker's ring is still there")
        [new] = wait_for(self.server.worker_pids, what="the new worker")
        # Its pid now belongs to a process that is no worker of ours: the
        # five files it wrote must not go into a ring nobody will take.
        squatter = take_pid(pid)
        if squatter is None:
            self.skipTest("cannot give a process a chosen pid (needs root: /proc/sys/kernel/ns_last_pid)")
        self.addCleanup(lambda: (squatter.kill(), squatter.wait()))

        self.srv["main"].start()
        wait_for(lambda: self.server.queue() == [] and len(self.srv["main"].messages) == 8, timeout=20,
                 what="the queue to drain")
        self.assertEqual(self.subjects(), ["early %d" % i for i in range(3)] + ["late %d" % i for i in range(5)])
        self.assertEqual(ring_files(spool, pid), {}, "delivered files went into a ring nobody takes")
        # The worker the master started instead recycles as before.
        self.send(["bob@hosted.test"], b"Subject: after\r\n\r\nHello.\r\n")
        wait_for(lambda: ring_files(spool, new), what="a file in the new worker's ring")


def listing(path):
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


class TestTrash(DeliveryTest):
    """A finished queue file leaves queue/ by a rename into spool/trash/; a
    thread of the delivery process unlinks it there, then its status record
    (an unlink can wait for the disk: not on the loop). What a crash leaves
    in trash/ goes at the next start and is never delivered."""

    def test_a_deferred_then_delivered_message_leaves_no_file_behind(self):
        spool = self.server.spool_dir()
        self.srv["main"].stop()
        self.send(["bob@hosted.test"])
        [qid] = self.server.queue()
        wait_for(lambda: os.path.exists(os.path.join(spool, "status", qid)), what="its deferral on record")
        self.srv["main"].start()
        wait_for(lambda: len(self.srv["main"].messages) == 1, timeout=20, what="the delivery")
        wait_for(lambda: self.server.queue() == [] and listing(os.path.join(spool, "status")) == [] and
                 listing(os.path.join(spool, "trash")) == [], what="queue, status and trash empty")

    def test_what_a_crash_left_in_trash_is_removed_at_the_next_start(self):
        spool = self.server.spool_dir()
        trash, qid = os.path.join(spool, "trash"), "1K1NLHT58DFN1G001H0"
        os.makedirs(trash, exist_ok=True)
        for path, data in ((os.path.join(trash, qid), b"delivered before the crash\r\n"),
                           (os.path.join(spool, "status", qid), b"T 0 1 451 try later\n"),
                           (os.path.join(trash, "1K1NLHT58DFN1G002H0.status"), b"D 0\n")):
            with open(path, "wb") as f:
                f.write(data)
        pid = int(self.server.events("delivery_start")[-1]["pid"])
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: len(self.server.events("delivery_start")) >= 2, what="a restart")
        wait_for(lambda: listing(trash) == [] and not os.path.exists(os.path.join(spool, "status", qid)),
                 what="trash/ emptied and the status record gone")
        self.send(["bob@hosted.test"])
        wait_for(lambda: len(self.srv["main"].messages) == 1, what="a new message delivered")
        self.assertEqual(len(self.srv["main"].messages), 1)


if __name__ == "__main__":
    unittest.main()
