"""Listening with several workers: each has its own socket (SO_REUSEPORT), connections spread over all of them, and a port another server holds is still refused."""
import os
import socket

from spec.e2e.harness import Mxgate, MxgateTest, wait_for


class SpreadOverWorkers(MxgateTest):
    WORKERS = 2

    def listening_sockets(self, pid):
        """Inodes of the sockets process pid holds that listen on our port."""
        listen = set()
        with open("/proc/net/tcp") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                if fields[3] == "0A" and int(fields[1].split(":")[1], 16) == self.server.port:
                    listen.add(fields[9])
        held = set()
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in listen:
                held.add(link[8:-1])
        return held

    def test_each_worker_accepts_on_a_listening_socket_of_its_own(self):
        # The kernel hashes each connection to one socket of the group: no
        # worker can take a burst meant for all (with one shared socket, 20
        # reused connections all went to whichever worker was awake).
        pids = self.server.worker_pids()
        self.assertEqual(len(pids), 2)
        a, b = (self.listening_sockets(p) for p in pids)
        self.assertEqual((len(a), len(b)), (1, 1))
        self.assertNotEqual(a, b)

    def test_twenty_connections_at_once_are_served_by_both_workers(self):
        conns = [socket.create_connection(("127.0.0.1", self.server.port), timeout=10)
                 for _ in range(20)]
        try:
            for c in conns:
                self.assertTrue(c.recv(512).startswith(b"220"))
            pids = wait_for(lambda: {e["pid"] for e in self.server.events("connect")}
                            if len(self.server.events("connect")) >= 20 else None,
                            what="20 connect lines")
            self.assertEqual(len(pids), 2)      # all on one: odds of 2 in a million
        finally:
            for c in conns:
                c.close()

    def test_a_second_server_on_the_same_address_is_refused_not_let_into_the_group(self):
        other = Mxgate(workers=2)
        self.addCleanup(other.cleanup)
        other.ports = dict(self.server.ports)
        other.port = self.server.port
        with self.assertRaises(AssertionError) as e:
            other._start()
        self.addCleanup(other.stop, False)
        self.assertIn("Address already in use", str(e.exception))
