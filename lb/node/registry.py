"""The node's side of directory ownership: registering learned sessions, looking keys up.

`Registry` drives the pure `lb.routing.owners.Coordinator`: it gives it the farm
view and the wall clock, sends the REGISTER / LOOKUP frames it asks for, answers
owners' requests on the link they came in on, and turns what completed into
calls: `release()` for a registration (acknowledged, or the bound passed),
`answer(home)` for a lookup. What it merges as an owner or from an answer goes to
the sibling workers like any other news.

The API the client path calls:

* ``register(kind, value, ttl, home, release)`` -> True when nothing has to wait
  (this node owns the key and is its home, no live peer, or learning was refused);
  otherwise ``release()`` is called exactly once, later (ack or bound).
* ``lookup(kind, value, answer)`` -> the home at once when the replica knows the key;
  otherwise None and ``answer(home_or_None)`` is called exactly once, later (bounded).

It must not parse bytes (lb.wire), decide ownership (lb.routing.owners) or route
clients (lb.node.entry).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Iterable

import structlog

from lb.clock import wall
from lb.node.peerlink import LinkDriver
from lb.node.replication import Replication
from lb.routing.owners import Answered, Coordinator, Released, Reply, SendLookup, SendRegister
from lb.wire import frames as fr
from lb.wire.directory import (
    Lookup,
    Register,
    RegisterAck,
    decode_owner_frame,
    encode_directory_frames,
    encode_lookup,
    encode_lookup_answer,
    encode_register,
    encode_register_ack,
)

log = structlog.get_logger("lb.directory")

LOG_EVERY = 1.0  # seconds: at most one line about released-by-the-bound registrations

Release = Callable[[], None]
Answer = Callable[[str | None], None]


class Registry:
    """Registrations and lookups of one node process, over its links."""

    def __init__(
        self,
        name: str,
        replication: Replication,
        loop: asyncio.AbstractEventLoop,
        counters: Counter[str],
        *,
        live: Callable[[], Iterable[str]],
        send: Callable[[str, bytes], None],
        wake_at: Callable[[float | None], None],
        register_timeout: float,
        lookup_timeout: float,
        max_pending: int,
    ) -> None:
        self.name = name
        self.replication = replication
        self.loop = loop
        self.counters = counters
        self.live = live
        self.send = send
        self.wake_at = wake_at
        self.coordinator = Coordinator(
            name,
            replication.directory,
            register_timeout=register_timeout,
            lookup_timeout=lookup_timeout,
            max_registrations=max_pending,
            max_lookups=max_pending,
        )
        self.releases: dict[int, Release] = {}
        self.answers: dict[int, Answer] = {}
        self.last_log = -LOG_EVERY
        self.logged_timeouts = 0
        replication.on_news = self.merged

    # -- the API of the client path -------------------------------------------------------
    def register(
        self,
        kind: str,
        value: str,
        ttl: float | None,
        home: str,
        release: Release,
        *,
        source: str | None = None,
    ) -> bool:
        """Learn (kind, value) -> home and register it with the key's owners.

        True: done now, ``release`` will not be called. False: ``release()`` comes
        once, when every owner asked acknowledged or after ``register_timeout``.
        """
        entry = self.replication.learn_entry(kind, value, ttl, home, source)
        if entry is None:
            return True  # refused (source limit, bad value): nothing to wait for
        token = self.coordinator.register(entry, self.live(), wall())
        if token is None:
            self._pump(None)
            return True
        self.releases[token] = release
        self._pump(None)
        return False

    def lookup(self, kind: str, value: str, answer: Answer) -> str | None:
        """The home of (kind, value): at once from the replica, else None and
        ``answer(home_or_None)`` once the owners answered (bounded by lookup_timeout)."""
        key = self.replication.keys.key(kind, value)
        result = self.coordinator.lookup(key, self.live(), wall())
        if isinstance(result, str):
            return result
        if result is None:
            self.loop.call_soon(answer, None)  # never from inside the caller's stack
            return None
        self.answers[result] = answer
        self._pump(None)
        return None

    # -- frames from peers ---------------------------------------------------------------
    def control_frame(self, link: LinkDriver, frame: fr.Frame) -> bool:
        """An owner frame from `link`'s peer (True), or not one (False).

        FrameError for a malformed one (the link ends, like any bad frame)."""
        message = decode_owner_frame(frame)
        if message is None:
            return False
        peer = link.peer_name
        assert peer is not None
        c = self.coordinator
        now = wall()
        if isinstance(message, Register):
            if c.on_register(peer, message.request_id, message.entry, now):
                self.replication.to_siblings(encode_directory_frames([message.entry]))
        elif isinstance(message, RegisterAck):
            c.on_register_ack(peer, message.request_id, message.home, now)
        elif isinstance(message, Lookup):
            c.on_lookup(peer, message.request_id, message.key, now)
        elif c.on_lookup_answer(peer, message.request_id, message.entry, now):
            assert message.entry is not None
            self.replication.to_siblings(encode_directory_frames([message.entry]))
        self._pump(link)
        return True

    def merged(self, keys: list[str]) -> None:
        """Replication merged entries (from a peer or a sibling): waiting lookups end."""
        self.coordinator.merged(keys, wall())
        self._pump(None)

    def peer_lost(self, peer: str) -> None:
        """No link to `peer` is left: what waits on it is released or answered now."""
        self.coordinator.peer_lost(peer, wall())
        self._pump(None)

    # -- time ----------------------------------------------------------------------------
    def sweep(self, now: float) -> float | None:
        """Timer (monotonic `now`): bounds that passed; the next deadline, monotonic."""
        self.coordinator.handle_timeout(wall())
        self._pump(None)
        return self._next_deadline(now)

    def _next_deadline(self, mono_now: float) -> float | None:
        due = self.coordinator.next_deadline()
        if due is None:
            return None
        return mono_now + max(0.0, due - wall())

    # -- internals -----------------------------------------------------------------------
    def _pump(self, reply_link: LinkDriver | None) -> None:
        c = self.coordinator
        for s in c.take_sends():
            if isinstance(s, SendRegister):
                self.send(s.to, encode_register(s.request_id, s.entry))
            elif isinstance(s, SendLookup):
                self.send(s.to, encode_lookup(s.request_id, s.key))
            else:
                self._reply(s, reply_link)
        for outcome in c.take_outcomes():
            if isinstance(outcome, Released):
                self._released(outcome)
            elif isinstance(outcome, Answered):
                self._answered(outcome)
        for name, value in c.counters.items():
            self.counters["directory_" + name] = value
        self.wake_at(self._next_deadline(self.loop.time()))

    def _reply(self, reply: Reply, link: LinkDriver | None) -> None:
        frame = (
            encode_register_ack(reply.request_id, reply.home)
            if reply.is_ack
            else encode_lookup_answer(reply.request_id, reply.entry)
        )
        if link is not None and link.peer_name == reply.to and not link.closed:
            link.send_control(frame)  # back on the link it came in on: the asking worker
        else:
            self.send(reply.to, frame)

    def _released(self, outcome: Released) -> None:
        release = self.releases.pop(outcome.token, None)
        if not outcome.acked:
            self._log_timeouts()
        if release is not None:
            try:
                release()
            except Exception:
                log.exception("directory_release_failed", node=self.name)

    def _answered(self, outcome: Answered) -> None:
        answer = self.answers.pop(outcome.token, None)
        if answer is not None:
            try:
                answer(outcome.home)
            except Exception:
                log.exception("directory_answer_failed", node=self.name)

    def _log_timeouts(self) -> None:
        now = self.loop.time()
        if now - self.last_log < LOG_EVERY:
            return
        self.last_log = now
        total = self.coordinator.counters.get("register_timeouts", 0)
        log.warning(
            "directory_register_unacked",
            node=self.name,
            released_unacked=total - self.logged_timeouts,
            total=total,
            reason="an owner did not acknowledge within register_timeout (or its link "
            "dropped): the response went out anyway",
        )
        self.logged_timeouts = total


__all__ = ["Answer", "Registry", "Release"]
