"""Owners of learned directory keys, and the registration / lookup state machine.

Every learned key has **owners**: the two live nodes that rank highest for it by
rendezvous hashing (the *owner*, then its *successor*). When a node dies, the
rendezvous order of the others does not change, so its successor becomes the
owner and already holds the key.

A node that learns a session **registers** the entry with the key's owners
(REGISTER) and holds the response that names the session until every owner it
asked acknowledged (REGISTER_ACK), or until a bound (``register_timeout``) passes:
then it is released anyway and counted. When the learning node is itself the
owner and the home, the registration is done at once: the successor matters only
if the owner dies, and then so did the home (its sessions are re-homed anyway).

A node whose replica does not hold a key **looks it up**: LOOKUP to the owners
(not itself), the first answer that knows the key wins, and when every owner
asked said "unknown", a link to one of them dropped, or ``lookup_timeout``
passed, the answer is whatever the local replica holds then (usually nothing: a
new session). Pending registrations and lookups are bounded; past the bound a
registration is released at once and a lookup answers at once from the replica.

``Coordinator`` is the pure state machine of one node (or one worker): it reads
and writes a ``Directory``, is given time as ``now`` and the live nodes, and
returns what to send as values (``SendRegister``, ``SendLookup`` ...) and what
completed (``Released``, ``Answered``). It must not import asyncio, touch
sockets, read a clock or draw random numbers: the driver (lb.node.registry)
does the I/O.
"""

from __future__ import annotations

import hashlib
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from lb.routing.directory import Directory
from lb.wire.directory import DirectoryEntry

__all__ = [
    "REPLICAS",
    "Answered",
    "Coordinator",
    "Released",
    "Reply",
    "SendLookup",
    "SendRegister",
    "owners",
]

REPLICAS = 2
"""Owners per key: the owner and its successor."""


def _score(node: bytes, key: bytes) -> int:
    return int.from_bytes(hashlib.blake2b(node + b"\0" + key, digest_size=8).digest(), "big")


def owners(key: str, nodes: Iterable[str], replicas: int = REPLICAS) -> tuple[str, ...]:
    """The ``replicas`` nodes of ``nodes`` that rank highest for ``key``, owner first.

    Rendezvous (highest random weight) hashing: each node scores
    BLAKE2b-64(node NUL key) and the highest scores own the key; ties (never seen
    with 64-bit scores) go to the larger name. Removing a node moves only its own
    keys, each to its successor.
    """
    raw = key.encode("utf-8")
    ranked = sorted(
        ((_score(n.encode("utf-8"), raw), n) for n in set(nodes)),
        reverse=True,
    )
    return tuple(n for _, n in ranked[:replicas])


# -- what the coordinator asks for ------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendRegister:
    """Send REGISTER(request_id, entry) to ``to``."""

    to: str
    request_id: int
    entry: DirectoryEntry


@dataclass(frozen=True, slots=True)
class SendLookup:
    """Send LOOKUP(request_id, key) to ``to``."""

    to: str
    request_id: int
    key: str


@dataclass(frozen=True, slots=True)
class Released:
    """Registration ``token`` is over: release what was held for it.

    ``acked``: every owner still linked acknowledged; False: the bound passed, or
    the link of every owner not yet heard from dropped. ``conflict``: an owner
    holds another home for the key (another node's entry won the conflict rule,
    or the owner refused the entry)."""

    token: int
    acked: bool
    conflict: bool = False


@dataclass(frozen=True, slots=True)
class Answered:
    """Lookup ``token`` is over: ``home`` (None: unknown, place a new session)."""

    token: int
    home: str | None
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class Reply:
    """The frame an owner sends back to ``to`` on the link the request came in on."""

    to: str
    request_id: int
    home: str | None = None  # REGISTER_ACK
    entry: DirectoryEntry | None = None  # LOOKUP_ANSWER
    is_ack: bool = True


Outcome = Released | Answered


@dataclass(slots=True)
class _Registration:
    token: int
    key: str
    home: str
    waiting: set[str]
    deadline: float
    requests: dict[str, int] = field(default_factory=dict)
    conflict: bool = False


@dataclass(slots=True)
class _Lookup:
    token: int
    key: str
    waiting: set[str]
    deadline: float
    requests: dict[str, int] = field(default_factory=dict)


class Coordinator:
    """Registrations and lookups of one node, against its directory replica."""

    __slots__ = (
        "_by_request",
        "_look_order",
        "_lookups",
        "_lookups_by_key",
        "_next_id",
        "_reg_order",
        "_registrations",
        "counters",
        "directory",
        "lookup_timeout",
        "max_lookups",
        "max_registrations",
        "name",
        "outcomes",
        "register_timeout",
        "replicas",
        "sends",
    )

    def __init__(
        self,
        name: str,
        directory: Directory,
        *,
        register_timeout: float = 0.05,
        lookup_timeout: float = 0.1,
        max_registrations: int = 10_000,
        max_lookups: int = 10_000,
        replicas: int = REPLICAS,
    ) -> None:
        if not (register_timeout > 0 and lookup_timeout > 0):
            raise ValueError("register_timeout and lookup_timeout must be > 0")
        if max_registrations < 0 or max_lookups < 0 or replicas < 1:
            raise ValueError("pending bounds must be >= 0 and replicas >= 1")
        self.name = name
        self.directory = directory
        self.register_timeout = register_timeout
        self.lookup_timeout = lookup_timeout
        self.max_registrations = max_registrations
        self.max_lookups = max_lookups
        self.replicas = replicas
        self._next_id = 1  # request ids and tokens share one counter: never reused
        self._registrations: dict[int, _Registration] = {}
        self._lookups: dict[int, _Lookup] = {}
        self._lookups_by_key: dict[str, set[int]] = {}
        # (peer, request id) -> token of the registration or lookup that sent it
        self._by_request: dict[tuple[str, int], int] = {}
        self._reg_order: deque[tuple[float, int]] = deque()  # deadlines in order (FIFO)
        self._look_order: deque[tuple[float, int]] = deque()
        self.sends: list[SendRegister | SendLookup | Reply] = []
        self.outcomes: list[Outcome] = []
        self.counters: dict[str, int] = {}

    # -- reading ---------------------------------------------------------------------
    @property
    def pending_registrations(self) -> int:
        return len(self._registrations)

    @property
    def pending_lookups(self) -> int:
        return len(self._lookups)

    def take_sends(self) -> list[SendRegister | SendLookup | Reply]:
        out, self.sends = self.sends, []
        return out

    def take_outcomes(self) -> list[Outcome]:
        out, self.outcomes = self.outcomes, []
        return out

    def next_deadline(self) -> float | None:
        """The earliest deadline of a pending registration or lookup."""
        times = [q[0][0] for q in (self._reg_order, self._look_order) if q]
        return min(times) if times else None

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def _new_id(self) -> int:
        token = self._next_id
        self._next_id += 1
        return token

    # -- registering ------------------------------------------------------------------
    def register(self, entry: DirectoryEntry, live: Iterable[str], now: float) -> int | None:
        """Register ``entry`` (already stored in the replica) with its key's owners.

        Returns None when nothing needs to wait: no owner other than this node, or
        this node is the owner and the home. Otherwise a token: a ``Released`` for it
        comes later (acks, the bound, or a lost link), and SendRegister requests are
        queued. Past ``max_registrations`` pending, None at once (counted).
        """
        replicas = owners(entry.key, live, self.replicas)
        if replicas and replicas[0] == self.name and entry.home == self.name:
            self._count("register_local")
            return None
        targets = {n for n in replicas if n != self.name}
        if not targets:
            self._count("register_local")
            return None
        if len(self._registrations) >= self.max_registrations:
            self._count("register_overflow")
            return None
        token = self._new_id()
        deadline = now + self.register_timeout
        self._registrations[token] = _Registration(token, entry.key, entry.home, targets, deadline)
        self._reg_order.append((deadline, token))
        reg = self._registrations[token]
        for peer in sorted(targets):
            request_id = self._new_id()
            reg.requests[peer] = request_id
            self._by_request[(peer, request_id)] = token
            self.sends.append(SendRegister(peer, request_id, entry))
        self._count("register_sent")
        return token

    def on_register_ack(self, peer: str, request_id: int, home: str | None, now: float) -> None:
        """REGISTER_ACK from ``peer``; an ack that matches nothing is ignored (counted)."""
        token = self._by_request.pop((peer, request_id), None)
        reg = self._registrations.get(token) if token is not None else None
        if reg is None:
            self._count("register_ack_unmatched")
            return
        if home != reg.home:
            reg.conflict = True  # a newer entry of another home won (or the owner refused)
        reg.waiting.discard(peer)
        if not reg.waiting:
            self._finish_registration(reg, acked=True)

    def _finish_registration(self, reg: _Registration, *, acked: bool) -> None:
        del self._registrations[reg.token]
        for peer, request_id in reg.requests.items():
            self._by_request.pop((peer, request_id), None)
        if reg.conflict:
            self._count("register_conflicts")
        self._count("register_acked" if acked else "register_timeouts")
        self.outcomes.append(Released(reg.token, acked, reg.conflict))

    # -- answering as an owner ----------------------------------------------------------
    def on_register(self, peer: str, request_id: int, entry: DirectoryEntry, now: float) -> bool:
        """REGISTER from ``peer``: merge the entry (the directory's rules apply) and
        acknowledge with the home now held for the key. True if the replica changed."""
        changed = self.directory.merge(entry, now)
        held = self.directory.get(entry.key, now)
        self.sends.append(Reply(peer, request_id, home=held.home if held else None))
        if changed:
            self._resolve_key(entry.key, now)
        return changed

    def on_lookup(self, peer: str, request_id: int, key: str, now: float) -> None:
        """LOOKUP from ``peer``: answer with the live entry held, or None."""
        self.sends.append(Reply(peer, request_id, entry=self.directory.get(key, now), is_ack=False))

    # -- looking up ---------------------------------------------------------------------
    def lookup(self, key: str, live: Iterable[str], now: float) -> int | str | None:
        """The home of ``key``: from the replica at once (a str), or a token whose
        ``Answered`` comes later (an int). None only when the replica does not know the
        key and no round trip is possible (no owner but this node, or the pending
        table is full): place a new session."""
        home = self.directory.lookup(key, now)
        if home is not None:
            return home
        targets = {n for n in owners(key, live, self.replicas) if n != self.name}
        if not targets:
            self._count("lookup_local_miss")
            return None
        if len(self._lookups) >= self.max_lookups:
            self._count("lookup_overflow")
            return None
        token = self._new_id()
        deadline = now + self.lookup_timeout
        pending = _Lookup(token, key, set(targets), deadline)
        self._lookups[token] = pending
        self._lookups_by_key.setdefault(key, set()).add(token)
        self._look_order.append((deadline, token))
        for peer in sorted(targets):
            request_id = self._new_id()
            pending.requests[peer] = request_id
            self._by_request[(peer, request_id)] = token
            self.sends.append(SendLookup(peer, request_id, key))
        self._count("lookup_sent")
        return token

    def on_lookup_answer(
        self, peer: str, request_id: int, entry: DirectoryEntry | None, now: float
    ) -> bool:
        """LOOKUP_ANSWER from ``peer``. A known entry is merged into the replica (its
        rules apply) and answers the lookup; True if the replica changed."""
        token = self._by_request.pop((peer, request_id), None)
        pending = self._lookups.get(token) if token is not None else None
        if pending is None:
            self._count("lookup_answer_late")
            return False
        if entry is not None and entry.key != pending.key:
            self._count("lookup_answer_wrong_key")  # a broken peer: treated as unknown
            entry = None
        changed = entry is not None and self.directory.merge(entry, now)
        pending.waiting.discard(peer)
        home = self.directory.get(pending.key, now)
        if home is not None:
            self._finish_lookup(pending, home.home)
            if changed:
                self._resolve_key(pending.key, now)
        elif not pending.waiting:
            self._finish_lookup(pending, None)
        return changed

    def merged(self, keys: Iterable[str], now: float) -> None:
        """Entries reached the replica another way (DIRECTORY_UPDATE): lookups waiting
        for those keys are answered at once."""
        if self._lookups_by_key:
            for key in keys:
                self._resolve_key(key, now)

    def _resolve_key(self, key: str, now: float) -> None:
        tokens = self._lookups_by_key.get(key)
        if not tokens:
            return
        held = self.directory.get(key, now)
        if held is None:
            return
        for token in sorted(tokens):
            pending = self._lookups.get(token)
            if pending is not None:
                self._finish_lookup(pending, held.home)

    def _finish_lookup(
        self, pending: _Lookup, home: str | None, *, timed_out: bool = False
    ) -> None:
        del self._lookups[pending.token]
        tokens = self._lookups_by_key.get(pending.key)
        if tokens is not None:
            tokens.discard(pending.token)
            if not tokens:
                del self._lookups_by_key[pending.key]
        for peer, request_id in pending.requests.items():
            self._by_request.pop((peer, request_id), None)
        self._count("lookup_found" if home is not None else "lookup_unknown")
        self.outcomes.append(Answered(pending.token, home, timed_out))

    # -- time and failures ---------------------------------------------------------------
    def handle_timeout(self, now: float) -> None:
        """Release registrations and answer lookups whose bound passed."""
        order = self._reg_order
        while order and order[0][0] <= now:
            _, token = order.popleft()
            reg = self._registrations.get(token)
            if reg is not None:
                self._finish_registration(reg, acked=False)
        order = self._look_order
        while order and order[0][0] <= now:
            _, token = order.popleft()
            pending = self._lookups.get(token)
            if pending is not None:
                entry = self.directory.get(pending.key, now)
                self._finish_lookup(pending, entry.home if entry else None, timed_out=True)

    def peer_lost(self, peer: str, now: float) -> None:
        """No link to ``peer`` is left: what waits on it will never hear back.

        A registration waiting only on it is released (not acked); a lookup waiting
        only on it answers from the replica."""
        for reg in [r for r in self._registrations.values() if peer in r.waiting]:
            reg.waiting.discard(peer)
            self._by_request.pop((peer, reg.requests.get(peer, -1)), None)
            if not reg.waiting:
                self._finish_registration(reg, acked=False)
        for pending in [p for p in self._lookups.values() if peer in p.waiting]:
            pending.waiting.discard(peer)
            self._by_request.pop((peer, pending.requests.get(peer, -1)), None)
            if not pending.waiting:
                entry = self.directory.get(pending.key, now)
                self._finish_lookup(pending, entry.home if entry else None)
