"""delivery.delay_warning: a message deferred that long gets ONE RFC 3464 "Action: delayed" DSN, and stays queued."""
import email
import email.policy
import unittest

try:
    from . import smtpservers as ss
    from .harness import wait_for
    from .test_delivery import DeliveryTest
except ImportError:
    import smtpservers as ss
    from harness import wait_for
    from test_delivery import DeliveryTest


class TestDelayWarning(DeliveryTest):

    DELIVERY = '{ retry_min = 0.1, retry_max = 0.1, connect_timeout = 2, delay_warning = 0.3 }'

    def downstreams(self):
        return {"main": ss.defer_rcpt(), "senders": ss.accept_all()}

    def test_one_delayed_dsn_per_message_and_the_message_stays_queued(self):
        self.send(["bob@hosted.test", "carol@hosted.test"],
                  body=b"Subject: slow\r\nMessage-ID: <slow@sender.test>\r\n\r\nHello.\r\n")
        m = wait_for(lambda: self.srv["senders"].messages, what="the delay warning")[0]
        self.assertEqual(m["mail"], "<>")
        self.assertEqual(m["rcpts"], ["alice@sender.test"])
        msg = email.message_from_bytes(m["data"], policy=email.policy.compat32)
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertEqual(msg["Subject"], "Delayed Mail (still being retried)")
        per_message, per_rcpt = self.report(msg)
        self.assertEqual(per_message["Reporting-MTA"], "dns; mx.mxgate.test")
        self.assertEqual(sorted(b["Final-Recipient"] for b in per_rcpt),
                         ["rfc822; bob@hosted.test", "rfc822; carol@hosted.test"])
        for b in per_rcpt:
            self.assertEqual(b["Action"], "delayed")
            self.assertEqual(b["Status"], "4.3.0")
            self.assertEqual(b["Remote-MTA"], "dns; 127.0.0.1")
            self.assertTrue(b["Diagnostic-Code"].startswith("smtp; 451 4.3.0"), b["Diagnostic-Code"])
            self.assertTrue(b["Will-Retry-Until"])
        headers = [p for p in msg.get_payload() if p.get_content_type() == "text/rfc822-headers"][0]
        self.assertIn("Message-ID: <slow@sender.test>", headers.get_payload())
        # Retried on and on: still one warning, and the message is still queued.
        n = len(self.server.events("deferred"))
        wait_for(lambda: len(self.server.events("deferred")) >= n + 6, what="more retries")
        self.assertEqual(len(self.srv["senders"].messages), 1)
        self.assertEqual(len(self.server.events("delay_warning")), 1)
        self.assertEqual(len(self.server.queue()), 1)
        self.assertEqual(self.server.events("bounced"), [])

    def test_mail_from_the_null_sender_is_never_warned_about(self):
        self.send(["bob@hosted.test"], sender="")
        wait_for(lambda: len(self.server.events("deferred")) >= 6, what="retries past delay_warning")
        self.assertEqual(self.srv["senders"].messages, [])
        self.assertEqual(self.server.events("delay_warning"), [])


class TestNoDelayWarningByDefault(DeliveryTest):

    DELIVERY = '{ retry_min = 0.1, retry_max = 0.1, connect_timeout = 2 }'

    def downstreams(self):
        return {"main": ss.defer_rcpt(), "senders": ss.accept_all()}

    def test_without_delay_warning_a_deferred_message_sends_nothing_back(self):
        self.send(["bob@hosted.test"])
        wait_for(lambda: len(self.server.events("deferred")) >= 6, what="retries")
        self.assertEqual(self.srv["senders"].messages, [])
        self.assertEqual(self.server.events("delay_warning"), [])


if __name__ == "__main__":
    unittest.main()
