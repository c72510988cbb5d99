"""Two LinkConnections wired back to back in memory, for tests of lb.link.

The initiator is `a` (it connected; it opens flows), the responder `b` (the home
of every flow). Bytes a side queues (`data_to_send`) go onto its wire; `deliver`
moves wire bytes into the other side's `receive_data`, whole or cut into
random chunks, and the events each side reports are kept in order per side.
Time is a FakeClock. Errors the connections raise are not caught here: a test
sees them.

It must not open sockets, start an event loop or read the real clock.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any, Literal

from lb.link import Event, LinkConnection, Role, link_key
from lb.wire.frames import Frame, FrameDecoder
from tests.support.fake_clock import FakeClock

Side = Literal["a", "b"]

FARM = "farm-1"
NAME_A = "node-a"
NAME_B = "node-b"
NONCE_A = bytes(range(0x00, 0x10))
NONCE_B = bytes(range(0x10, 0x20))
SECRET = b"correct horse battery staple"
KEY = link_key(SECRET)
MEMBERS = frozenset({NAME_A, NAME_B})


def initiator(clock: FakeClock, **overrides: Any) -> LinkConnection:
    """An initiator `node-a` of `farm-1` that means to reach `node-b`."""
    kwargs: dict[str, Any] = {
        "farm": FARM,
        "name": NAME_A,
        "nonce": NONCE_A,
        "keys": [KEY],
        "now": clock.now,
        "expected_peer": NAME_B,
    }
    kwargs.update(overrides)
    return LinkConnection(Role.INITIATOR, **kwargs)


def responder(clock: FakeClock, **overrides: Any) -> LinkConnection:
    """A responder `node-b` of `farm-1` whose members are node-a and node-b."""
    kwargs: dict[str, Any] = {
        "farm": FARM,
        "name": NAME_B,
        "nonce": NONCE_B,
        "keys": [KEY],
        "now": clock.now,
        "is_member": MEMBERS.__contains__,
    }
    kwargs.update(overrides)
    return LinkConnection(Role.RESPONDER, **kwargs)


class LinkPair:
    """An initiator `a` and a responder `b` joined by two in-memory byte pipes."""

    def __init__(
        self,
        a: LinkConnection,
        b: LinkConnection,
        clock: FakeClock,
        *,
        rng: random.Random | None = None,
        max_chunk: int = 64,
    ) -> None:
        self.a = a
        self.b = b
        self.clock = clock
        self.rng = rng  # set: deliveries are cut into chunks of 1..max_chunk bytes
        self.max_chunk = max_chunk
        self.events: dict[Side, list[Event]] = {"a": [], "b": []}
        # bytes a side sent that the other has not received yet
        self.wire: dict[Side, bytearray] = {"a": bytearray(), "b": bytearray()}
        self.received: dict[Side, int] = {"a": 0, "b": 0}  # bytes fed into each side
        # every byte each side ever queued, up to the last collect (for replays and counts)
        self.sent_log: dict[Side, bytearray] = {"a": bytearray(), "b": bytearray()}

    @classmethod
    def make(
        cls,
        *,
        clock: FakeClock | None = None,
        rng: random.Random | None = None,
        max_chunk: int = 64,
        a: dict[str, Any] | None = None,
        b: dict[str, Any] | None = None,
    ) -> LinkPair:
        """A fresh pair, not logged in; `a` / `b` override constructor arguments."""
        clock = clock or FakeClock()
        return cls(
            initiator(clock, **(a or {})),
            responder(clock, **(b or {})),
            clock,
            rng=rng,
            max_chunk=max_chunk,
        )

    # -- sides ----------------------------------------------------------------
    def conn(self, side: Side) -> LinkConnection:
        return self.a if side == "a" else self.b

    @staticmethod
    def other(side: Side) -> Side:
        return "b" if side == "a" else "a"

    def record(self, side: Side, events: Sequence[Event]) -> list[Event]:
        """Keep events a side returned outside receive_data (accept_flow, handle_timeout...)."""
        self.events[side].extend(events)
        return list(events)

    # -- bytes ------------------------------------------------------------------
    def collect(self) -> None:
        """Move what both sides queued onto their wires."""
        for side in ("a", "b"):
            for chunk in self.conn(side).data_to_send():
                self.wire[side] += chunk
                self.sent_log[side] += chunk

    def inject(self, side: Side, data: bytes) -> list[Event]:
        """Feed raw bytes into `side` as if its peer sent them (a misbehaving peer)."""
        self.received[side] += len(data)
        return self.record(side, self.conn(side).receive_data(data, self.clock.now))

    def deliver(self, sender: Side, limit: int | None = None) -> list[Event]:
        """Move up to `limit` bytes (default: all) of `sender`'s wire into the other side."""
        self.collect()
        wire = self.wire[sender]
        n = len(wire) if limit is None else min(limit, len(wire))
        data = bytes(wire[:n])
        del wire[:n]
        receiver = self.other(sender)
        events: list[Event] = []
        for chunk in self._chunks(data):
            events += self.inject(receiver, chunk)
        return events

    def _chunks(self, data: bytes) -> list[bytes]:
        if not data:
            return []
        rng = self.rng
        if rng is None:
            return [data]
        chunks = []
        off = 0
        while off < len(data):
            step = rng.randint(1, self.max_chunk)
            chunks.append(data[off : off + step])
            off += step
        return chunks

    def in_flight(self) -> int:
        """Bytes queued or on a wire, both directions."""
        self.collect()
        return len(self.wire["a"]) + len(self.wire["b"])

    def pump(self, max_rounds: int = 10_000) -> tuple[list[Event], list[Event]]:
        """Deliver both ways until no side has anything to send; (a's events, b's events)."""
        got_a: list[Event] = []
        got_b: list[Event] = []
        for _ in range(max_rounds):
            if not self.in_flight():
                return got_a, got_b
            got_b += self.deliver("a")
            got_a += self.deliver("b")
        raise AssertionError(f"the link is still busy after {max_rounds} rounds")

    def login(self) -> None:
        """Run the handshake to the end; both sides must be authenticated."""
        self.pump()
        assert self.a.authenticated, "the initiator did not log in"
        assert self.b.authenticated, "the responder did not log in"

    # -- time and the end ----------------------------------------------------------
    def advance(self, seconds: float) -> tuple[list[Event], list[Event]]:
        """Move the clock; run handle_timeout on each side whose deadline passed."""
        now = self.clock.advance(seconds)
        out: dict[Side, list[Event]] = {"a": [], "b": []}
        for side in ("a", "b"):
            conn = self.conn(side)
            deadline = conn.next_deadline()
            if deadline is not None and deadline <= now:
                out[side] = self.record(side, conn.handle_timeout(now))
        return out["a"], out["b"]

    def lose(self) -> tuple[list[Event], list[Event]]:
        """The underlying connection broke: bytes on the wires are gone, both sides told."""
        self.wire["a"].clear()
        self.wire["b"].clear()
        return (
            self.record("a", self.a.connection_lost()),
            self.record("b", self.b.connection_lost()),
        )


def logged_in_pair(
    *,
    rng: random.Random | None = None,
    max_chunk: int = 64,
    a: dict[str, Any] | None = None,
    b: dict[str, Any] | None = None,
) -> LinkPair:
    """A pair that finished the handshake; the handshake's events are cleared."""
    pair = LinkPair.make(rng=rng, max_chunk=max_chunk, a=a, b=b)
    pair.login()
    pair.events["a"].clear()
    pair.events["b"].clear()
    return pair


def of_type(events: Sequence[Event], kind: type[Any]) -> list[Any]:
    """The events of one class, in order."""
    return [e for e in events if isinstance(e, kind)]


def frames_of(chunks: Sequence[bytes]) -> list[Frame]:
    """Decode queued bytes (a data_to_send() result) into frames, for assertions."""
    return FrameDecoder().feed(b"".join(chunks))


__all__ = [
    "FARM",
    "KEY",
    "MEMBERS",
    "NAME_A",
    "NAME_B",
    "NONCE_A",
    "NONCE_B",
    "SECRET",
    "FakeClock",
    "LinkPair",
    "Side",
    "frames_of",
    "initiator",
    "logged_in_pair",
    "of_type",
    "responder",
]
