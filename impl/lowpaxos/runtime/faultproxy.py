"""A UDP fault proxy for tests: cut replicas off from each other without privileges.

The cluster file advertises, for each replica, a proxy port as its ``address``
and the replica listens on its ``bind`` port. The proxy forwards each datagram
from the advertised port to the bind port, unless the sender or the target is
isolated, or a random draw drops it (``set_loss``: each datagram is lost with that
probability, from a seeded generator). The sender is read from the
(unauthenticated) frame header, which is enough for a test's own traffic. It
runs in one thread with a selector and stops by itself at ``lifetime_s``.
"""

from __future__ import annotations

import random
import selectors
import socket
import threading
import time

from lowpaxos.runtime.framing import peek_sender

RECEIVE_BUFFER_BYTES = 4 << 20


class UdpFaultProxy:
    def __init__(self, advertised_ports: list[int], bind_ports: list[int],
                 lifetime_s: float = 300.0, seed: int = 0) -> None:
        self.targets = {}
        self.sockets = []
        self.selector = selectors.DefaultSelector()
        for replica_id, (advertised, bound) in enumerate(zip(advertised_ports, bind_ports)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            # Room for a burst of fragments, as the replicas ask for (the kernel may cap it).
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER_BYTES)
            sock.bind(("127.0.0.1", advertised))
            sock.setblocking(False)
            self.sockets.append(sock)
            self.selector.register(sock, selectors.EVENT_READ, (replica_id, ("127.0.0.1", bound)))
        self.isolated: set[int] = set()
        self.loss = 0.0
        self.rng = random.Random(seed)
        self.forwarded = 0
        self.dropped = 0
        self.lost = 0  # dropped by the random loss (also counted in dropped)
        self.lifetime_s = lifetime_s
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self.run, name="udp-fault-proxy", daemon=True)

    def start(self) -> "UdpFaultProxy":
        self.thread.start()
        return self

    def isolate(self, replica_id: int) -> None:
        self.isolated = self.isolated | {replica_id}

    def heal(self) -> None:
        self.isolated = set()
        self.loss = 0.0

    def set_loss(self, probability: float) -> None:
        assert 0.0 <= probability <= 1.0, "a probability"
        self.loss = probability

    def run(self) -> None:
        deadline = time.monotonic() + self.lifetime_s
        while not self.stopping.is_set() and time.monotonic() < deadline:
            for key, _ in self.selector.select(timeout=0.1):
                target_id, target = key.data
                # Bounded: at most 256 datagrams per socket per wake-up.
                for _ in range(256):
                    try:
                        data = key.fileobj.recv(65536)
                    except BlockingIOError:
                        break
                    isolated = self.isolated
                    if target_id in isolated or peek_sender(data) in isolated:
                        self.dropped += 1
                        continue
                    if self.loss and self.rng.random() < self.loss:
                        self.dropped += 1
                        self.lost += 1
                        continue
                    try:
                        key.fileobj.sendto(data, target)
                        self.forwarded += 1
                    except OSError:
                        self.dropped += 1

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(timeout=5)
        for sock in self.sockets:
            self.selector.unregister(sock)
            sock.close()
        self.selector.close()
