"""Slots for the TLS handshakes of client connections: a cap per process and one per
source (an IPv4 address, an IPv6 /64), and a fair queue for the connections over a cap.

A connection over a cap waits for a slot instead of being closed: a browser, a
NAT or a load generator opens more connections at once than one source may
handshake at once, and closing the extra ones fails clients that did nothing
wrong. Slots free up in turn across the sources that wait (round robin), and in
arrival order within one source, so one busy source delays only itself.

One source may have only so many connections waiting (`max_waiting`), and the
process only so many in all (`max_waiting_total`: lb.node.entry keeps it at half
its max_connections); more are refused, so sockets that never handshake, from
one address or a few, cannot take every connection slot of the process.

Pure bookkeeping: it never touches a socket, a task or the clock. lb.node.entry
starts the handshakes it hands out and withdraws the waiting connections whose
head_timeout passes.
"""

from __future__ import annotations

from collections import deque
from enum import Enum
from typing import Generic, TypeVar

T = TypeVar("T")


class Offer(Enum):
    """What becomes of a connection that asks for a handshake slot."""

    START = "start"  # its slots are taken: handshake now
    WAIT = "wait"  # queued: `ended` hands it out later, or `withdraw` removes it
    REFUSE = "refuse"  # its source already has max_waiting connections waiting: close it


class HandshakeSlots(Generic[T]):
    """Handshakes running (per process and per source) and connections waiting for one."""

    __slots__ = (
        "by_source",
        "max_waiting",
        "max_waiting_total",
        "per_process",
        "per_source",
        "queued",
        "ready",
        "running",
        "waiting",
    )

    def __init__(
        self, per_process: int, per_source: int, max_waiting: int, max_waiting_total: int
    ) -> None:
        if per_process < 1 or per_source < 1 or max_waiting < 0 or max_waiting_total < 0:
            raise ValueError("handshake caps must be at least 1, the waiting caps at least 0")
        self.per_process = per_process
        self.per_source = per_source
        # connections of one source that may wait, and of every source together: sockets
        # that never handshake cannot hold every connection slot of the process
        self.max_waiting = max_waiting
        self.max_waiting_total = max_waiting_total
        self.queued = 0  # connections waiting, every source together
        self.running = 0
        self.by_source: dict[str, int] = {}  # source -> handshakes running
        self.waiting: dict[str, deque[T]] = {}  # source -> connections waiting, oldest first
        # sources with a waiting connection and a free slot of their own, in turn order;
        # they wait only for a slot of the process
        self.ready: dict[str, None] = {}

    def offer(self, source: str, item: T) -> Offer:
        """A connection from `source` wants to handshake: it starts now (its slots are
        taken), waits, or is refused (its source's queue, or the process's, is full)."""
        queue = self.waiting.get(source)
        running = self.by_source.get(source, 0)
        if queue is None and running < self.per_source and self.running < self.per_process:
            self.by_source[source] = running + 1
            self.running += 1
            return Offer.START
        if self.queued >= self.max_waiting_total:
            return Offer.REFUSE
        if queue is None:
            if self.max_waiting == 0:
                return Offer.REFUSE
            queue = self.waiting[source] = deque()
            if running < self.per_source:
                self.ready[source] = None
        elif len(queue) >= self.max_waiting:
            return Offer.REFUSE
        queue.append(item)
        self.queued += 1
        return Offer.WAIT

    def ended(self, source: str) -> list[tuple[str, T]]:
        """A handshake of `source` finished, either way: its slots are free. Returns the
        waiting connections that may start now, each with its slots taken."""
        left = self.by_source[source] - 1
        if left:
            self.by_source[source] = left
        else:
            del self.by_source[source]
        self.running -= 1
        if source in self.waiting and source not in self.ready:
            self.ready[source] = None
        return self._hand_out()

    def withdraw(self, source: str, item: T) -> bool:
        """Take a waiting connection out of the queue; False if it is not waiting."""
        queue = self.waiting.get(source)
        if queue is None:
            return False
        if queue[0] is item:  # the usual case: deadlines pass in arrival order
            queue.popleft()
        else:
            try:
                queue.remove(item)
            except ValueError:
                return False
        self.queued -= 1
        if not queue:
            del self.waiting[source]
            self.ready.pop(source, None)
        return True

    def clear(self) -> list[T]:
        """Take every waiting connection out (the process stops): none is handed a slot.
        Returns them."""
        items = [item for queue in self.waiting.values() for item in queue]
        self.waiting.clear()
        self.ready.clear()
        self.queued = 0
        return items

    def _hand_out(self) -> list[tuple[str, T]]:
        started: list[tuple[str, T]] = []
        while self.ready and self.running < self.per_process:
            source = next(iter(self.ready))
            del self.ready[source]
            queue = self.waiting[source]
            started.append((source, queue.popleft()))
            self.queued -= 1
            running = self.by_source.get(source, 0) + 1
            self.by_source[source] = running
            self.running += 1
            if not queue:
                del self.waiting[source]
            elif running < self.per_source:
                self.ready[source] = None  # behind the other sources: their turn first
        return started
