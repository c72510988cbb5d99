"""Replication of the directory: learning here, passing it on, merging what peers say.

The home side learns sessions (lb.node.learn); `learn` records them and the
updates go out at the end of the same loop turn (one `call_soon` per turn, not a
periodic tick), batched, to every peer and to the sibling workers. When a
registry (lb.node.registry) is set, learners register what they learn with the
key's owners and hold the response until they acknowledged (bounded). Entries
from peers are merged (newest version wins) and news is passed on to the
siblings. A link that comes up gets a full sync.

It must not decide placement (lb.routing) or talk to sockets itself: it hands
encoded frames to the callables it was given.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Callable

from lb.clock import wall
from lb.node.learn import Register, SessionLearner
from lb.node.service import Service
from lb.routing.directory import Directory, DirectoryKeys, SourceLimited, source_key
from lb.wire.directory import DirectoryEntry, decode_directory_update, encode_directory_frames

SendFrames = Callable[[list[bytes]], None]
# the registry's register(kind, value, ttl, home, release, source=...) -> done now
RegisterWith = Callable[..., bool]


class Replication:
    """The node's directory and the traffic that keeps it in step across the farm."""

    def __init__(
        self,
        name: str,
        directory: Directory,
        keys: DirectoryKeys,
        directory_ttl: float,
        loop: asyncio.AbstractEventLoop,
        counters: Counter[str],
        to_peers: SendFrames,
        to_siblings: SendFrames,
    ) -> None:
        self.name = name
        self.directory = directory
        self.keys = keys
        self.directory_ttl = directory_ttl
        self.loop = loop
        self.counters = counters
        self.to_peers = to_peers
        self.to_siblings = to_siblings
        self.flush_scheduled = False
        # set by the node (lb.node.registry): learners register and hold; merges report keys
        self.register: RegisterWith | None = None
        self.on_news: Callable[[list[str]], None] | None = None

    def learner_for(self, service: Service, client_ip: str) -> SessionLearner | None:
        """A learner for one response stream; what it learns counts against `client_ip`."""
        if not service.passthrough:
            return None  # http: the entry learns application cookies from every response
        register = self.register
        learn: Register
        if register is not None:
            # issue 11: register with the key's owners; the response waits for their ack
            learn = functools.partial(_register_here, register, self.name, client_ip)
        else:
            learn = functools.partial(_learn_now, self.learn, client_ip)
        return SessionLearner(learn, True)

    def learn(self, kind: str, value: str, ttl: float | None, source: str | None = None) -> None:
        """The home side saw a session start here: record it; it goes out this loop turn."""
        self.learn_entry(kind, value, ttl, self.name, source)

    def learn_entry(
        self, kind: str, value: str, ttl: float | None, home: str, source: str | None = None
    ) -> DirectoryEntry | None:
        """Record (kind, value) -> `home`; it goes out this loop turn. The entry, or None
        when it was refused.

        Learning is bounded per client address (`source`), so one client cannot
        flood the directory with sessions it makes up."""
        limit = self.directory_ttl
        ttl = limit if ttl is None else min(max(ttl, 1.0), limit)
        key = self.keys.key(kind, value)  # never the session token itself
        try:
            entry = self.directory.learn(
                key, home, wall(), ttl, source=source_key(source) if source else None
            )
        except SourceLimited:
            self.counters["directory_source_limited"] += 1
            return None
        except ValueError:
            self.counters["directory_refused"] += 1
            return None
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)
        return entry

    def flush(self) -> None:
        """Send what was learned since the last flush, batched, to siblings and peers."""
        self.flush_scheduled = False
        learned = self.directory.take_outbox()
        if not learned:
            return
        frames = encode_directory_frames(learned)
        self.to_siblings(frames)
        self.to_peers(frames)

    def full_sync(self) -> list[bytes]:
        """Every live entry, for a link that just came up."""
        return encode_directory_frames(self.directory.iter_entries(wall()))

    def merge(self, payload: bytes, *, from_bus: bool) -> None:
        """Entries from a peer (or a sibling worker): merge; pass news on to the siblings."""
        now = wall()
        news = [e for e in decode_directory_update(payload) if self.directory.merge(e, now)]
        if news and not from_bus:
            self.to_siblings(encode_directory_frames(news))
        if news and self.on_news is not None:
            self.on_news([e.key for e in news])

    def expire(self) -> None:
        self.directory.expire(wall())


def _register_here(
    register: RegisterWith,
    home: str,
    source: str,
    kind: str,
    value: str,
    ttl: float | None,
    release: Callable[[], None],
) -> bool:
    return register(kind, value, ttl, home, release, source=source)


def _learn_now(
    learn: Callable[..., None],
    source: str,
    kind: str,
    value: str,
    ttl: float | None,
    release: Callable[[], None],
) -> bool:
    learn(kind, value, ttl, source=source)
    return True


__all__ = ["Replication"]
