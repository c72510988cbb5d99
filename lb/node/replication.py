"""Replication of the directory: learning here, passing it on, merging what peers say.

The home side learns sessions (lb.node.learn); `learn` records them and the
updates go out at the end of the same loop turn, batched, to every peer and to
the sibling workers. Entries from peers are merged (newest version wins) and
news is passed on to the siblings. A link that comes up gets a full sync.

It must not decide placement (lb.routing) or talk to sockets itself: it hands
encoded frames to the callables it was given.
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter
from collections.abc import Callable

from lb.clock import wall
from lb.node.learn import SessionLearner
from lb.node.service import Service
from lb.routing.directory import Directory, DirectoryKeys, SourceLimited, source_key
from lb.wire.directory import decode_directory_update, encode_directory_frames

SendFrames = Callable[[list[bytes]], None]


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

    def learner_for(self, service: Service, client_ip: str) -> SessionLearner | None:
        """A learner for one response stream; what it learns counts against `client_ip`."""
        if not service.passthrough:
            return None  # http: the entry learns application cookies from each response
        learn = functools.partial(self.learn, source=client_ip)
        return SessionLearner(learn, (), True)

    def learn(
        self,
        kind: str,
        value: str,
        ttl: float | None,
        source: str | None = None,
        home: str | None = None,
    ) -> None:
        """A session started at `home` (default: here): record it; it goes out this loop turn.

        Learning is bounded per client address (`source`), so one client cannot
        flood the directory with sessions it makes up."""
        limit = self.directory_ttl
        ttl = limit if ttl is None else min(max(ttl, 1.0), limit)
        key = self.keys.key(kind, value)  # never the session token itself
        try:
            self.directory.learn(
                key, home or self.name, wall(), ttl, source=source_key(source) if source else None
            )
        except SourceLimited:
            self.counters["directory_source_limited"] += 1
            return
        except ValueError:
            self.counters["directory_refused"] += 1
            return
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

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
        return encode_directory_frames(self.directory.entries(wall()))

    def merge(self, payload: bytes, *, from_bus: bool) -> None:
        """Entries from a peer (or a sibling worker): merge; pass news on to the siblings."""
        now = wall()
        news = [e for e in decode_directory_update(payload) if self.directory.merge(e, now)]
        if news and not from_bus:
            self.to_siblings(encode_directory_frames(news))

    def expire(self) -> None:
        self.directory.expire(wall())


__all__ = ["Replication"]
