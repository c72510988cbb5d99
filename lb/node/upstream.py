"""Upstreams of the HTTP entry: where one request goes, and the pools that keep them.

An *upstream* carries one request at a time to a home and its response back:
a connection to the local application (`LocalUpstream`), or a flow on the
link to another home (`FlowUpstream`), whose home end is spliced to one
connection to that home's application. After a response that leaves it
reusable, an upstream goes back to its `UpstreamPool` (keyed by home and
service, bounded, idle ones closed after `limits.pool_idle_timeout`), so the next
request for that home, from any client, skips the connect or the NEW/VERIFIED
round trip.

The user of an upstream (lb.node.http_client.HttpClient) implements `User`, a base
class (not a Protocol, so the compiled build calls its methods through its method
table, not by looking each name up).
This module only moves bytes and keeps pools; it does not parse HTTP (lb.wire)
or decide homes (lb.routing).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Final, cast

from mypy_extensions import mypyc_attr

from lb.link.connection import PAUSE_PEER
from lb.node.peerlink import FlowEndpoint
from lb.node.splice import Endpoint, abort_with_reset
from lb.wire.frames import ResetReason

POOL_MAX_IDLE: Final = 256
"""Idle upstreams kept per (home, service); more are closed."""

_CLIENT_ABORT = int(ResetReason.CLIENT_ABORT)

PoolKey = tuple[str, ...]
"""(home, service). Typed as a tuple of any length so that a compiled build keeps it one
boxed tuple: a tuple[str, str] is a C struct there, made a new tuple object at every
dict access (the pool's look-ups then hash and compare a fresh tuple each time)."""


class User:
    """What an upstream reports to the request it carries (lb.node.http_state's
    HttpClientState derives from it; HttpClient implements every method)."""

    __slots__ = ()

    def upstream_data(self, data: bytes) -> None:
        raise NotImplementedError

    def upstream_eof(self) -> None:
        raise NotImplementedError

    def upstream_lost(self, reason: int) -> None:
        raise NotImplementedError

    def pause_client(self, reason: int) -> None:
        raise NotImplementedError

    def resume_client(self, reason: int) -> None:
        raise NotImplementedError


@mypyc_attr(allow_interpreted_subclasses=True)  # compiled builds: tests subclass it
class Upstream:
    """The common part: pool membership and the current user."""

    __slots__ = (
        "closed",
        "home",
        "idle_since",
        "key",
        "pool",
        "response_paused",
        "reused",
        "user",
    )

    def __init__(self, pool: UpstreamPool, key: PoolKey, home: str) -> None:
        self.pool = pool
        self.key = key
        self.home = home
        self.user: User | None = None
        self.reused = False  # carried a request before this one
        self.closed = False
        self.idle_since = 0.0
        self.response_paused = False  # the user's client could not take more

    # what the user calls
    def write(self, data: bytes) -> None:
        raise NotImplementedError

    def write_eof(self) -> None:
        raise NotImplementedError

    def pause_response(self) -> None:
        """The client cannot take more: stop reading the response for now."""
        raise NotImplementedError

    def resume_response(self) -> None:
        raise NotImplementedError

    def close(self, clean: bool) -> None:
        """Never reuse: a clean close (FIN / CLOSE), or an abort (RST / RESET)."""
        raise NotImplementedError

    def release(self, reusable: bool) -> None:
        """The exchange is over: back to the pool when `reusable`, else closed cleanly.

        A pause of the response that its client asked for ends with the exchange:
        a pooled upstream left paused would stall the next request's response."""
        self.user = None
        if self.response_paused:
            self.resume_response()
        if reusable and not self.closed:
            self.reused = True
            self.pool.put(self)
        else:
            self.close(True)

    # what the transport side calls
    def _data(self, data: bytes) -> None:
        user = self.user
        if user is not None:
            user.upstream_data(data)
        else:  # bytes from an idle upstream: the application is confused; drop it
            self.pool.discard(self)
            self.close(False)

    def _eof(self) -> None:
        user = self.user
        if user is not None:
            user.upstream_eof()
        else:  # the application closed an idle connection: forget it
            self.pool.discard(self)
            self.close(True)

    def _lost(self, reason: int) -> None:
        self.closed = True
        self.pool.discard(self)
        user, self.user = self.user, None
        if user is not None:
            user.upstream_lost(reason)


class LocalUpstream(Upstream):
    """A connection to this node's application (an asyncio protocol by its methods, like
    lb.node.http_client.HttpClient)."""

    __slots__ = ("transport",)

    def __init__(self, pool: UpstreamPool, key: PoolKey, home: str) -> None:
        Upstream.__init__(self, pool, key, home)
        self.transport: asyncio.Transport | None = None

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self._data(data)

    def eof_received(self) -> bool:
        self._eof()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed or self.user is not None:
            self._lost(int(ResetReason.APP_ABORT) if exc is not None else 0)
        self.closed = True
        self.pool.discard(self)

    def pause_writing(self) -> None:
        if self.user is not None:
            self.user.pause_client(PAUSE_PEER)

    def resume_writing(self) -> None:
        if self.user is not None:
            self.user.resume_client(PAUSE_PEER)

    # Upstream
    def write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not self.closed:
            transport.write(data)

    def write_eof(self) -> None:
        transport = self.transport
        if transport is not None and not self.closed and transport.can_write_eof():
            transport.write_eof()

    def pause_response(self) -> None:
        self.response_paused = True
        if self.transport is not None and not self.closed:
            self.transport.pause_reading()

    def resume_response(self) -> None:
        self.response_paused = False
        if self.transport is not None and not self.closed:
            self.transport.resume_reading()

    def close(self, clean: bool) -> None:
        self.user = None
        self.pool.discard(self)
        transport = self.transport
        if transport is not None and not self.closed:
            self.closed = True
            if clean:
                transport.close()
            else:
                abort_with_reset(transport)


class FlowUpstream(Upstream, Endpoint):
    """A flow on the link to another home; the home splices it to its application.

    It is the flow endpoint's `peer` (lb.node.splice.Endpoint): the home's
    bytes arrive through `send`, its half-close through `send_eof`, a reset
    or the link's loss through `peer_closed`.
    """

    __slots__ = ("eof_in", "eof_out", "flow")

    def __init__(self, pool: UpstreamPool, key: PoolKey, home: str) -> None:
        super().__init__(pool, key, home)
        self.flow: FlowEndpoint | None = None
        self.eof_in = False
        self.eof_out = False

    # Endpoint (called by the flow)
    def send(self, data: bytes) -> None:
        self._data(data)

    def send_eof(self) -> None:
        self.eof_in = True
        self._eof()

    def peer_closed(self, clean: bool, reason: int) -> None:
        self.flow = None
        self._lost(0 if clean else reason)

    def pause_reading(self, reason: int) -> None:
        """The link cannot take more of this flow now: stop reading the client."""
        if self.user is not None:
            self.user.pause_client(reason)

    def resume_reading(self, reason: int) -> None:
        if self.user is not None:
            self.user.resume_client(reason)

    # Upstream
    def write(self, data: bytes) -> None:
        flow = self.flow
        if flow is not None and not self.closed:
            flow.send(data)

    def write_eof(self) -> None:
        flow = self.flow
        if flow is not None and not self.closed and not self.eof_out:
            self.eof_out = True
            flow.send_eof()

    def pause_response(self) -> None:
        self.response_paused = True
        if self.flow is not None:
            self.flow.pause_reading(PAUSE_PEER)

    def resume_response(self) -> None:
        self.response_paused = False
        if self.flow is not None:
            self.flow.resume_reading(PAUSE_PEER)

    def close(self, clean: bool) -> None:
        self.user = None
        self.pool.discard(self)
        flow, self.flow = self.flow, None
        if self.closed:
            return
        self.closed = True
        if flow is None:
            return
        if clean:
            if not self.eof_out:
                self.eof_out = True
                flow.send_eof()
            flow.peer_closed(True, 0)
        else:
            flow.peer_closed(False, _CLIENT_ABORT)


class UpstreamPool:
    """Idle upstreams by (home, service): last in, first out; bounded; swept when idle.

    `idle` holds them by home, then by service: two look-ups by a name (a str caches
    its hash) instead of one by a (home, service) tuple, whose hash is computed and
    whose items are compared at every look-up; and a home's upstreams leave at once."""

    def __init__(
        self,
        now: Callable[[], float],
        idle_seconds: float,
        keeps: Callable[[str], bool] = lambda _home: True,
    ) -> None:
        self.now = now
        self.idle: dict[str, dict[str, list[Upstream]]] = {}
        self.max_idle = POOL_MAX_IDLE
        self.idle_seconds = idle_seconds
        # whether upstreams to a home may be kept: not to one that drains or left, so
        # its flows end between requests and its drain can finish
        self.keeps = keeps

    def take(self, key: PoolKey) -> Upstream | None:
        by_service = self.idle.get(key[0])
        if by_service is None:
            return None
        idle = by_service.get(key[1])
        while idle:
            upstream = idle.pop()
            if not upstream.closed:
                return upstream
        return None

    def put(self, upstream: Upstream) -> None:
        if not self.keeps(upstream.home):
            upstream.close(True)
            return
        key = upstream.key
        by_service = self.idle.get(key[0])
        if by_service is None:
            by_service = self.idle[key[0]] = {}
        service = key[1]
        idle = by_service.get(service)
        if idle is None:  # not setdefault: no new list per release of a pooled one
            idle = by_service[service] = []
        if len(idle) >= self.max_idle:
            upstream.close(True)
            return
        upstream.idle_since = self.now()
        idle.append(upstream)

    def discard(self, upstream: Upstream) -> None:
        key = upstream.key
        by_service = self.idle.get(key[0])
        if by_service is None:
            return
        idle = by_service.get(key[1])
        if idle and upstream in idle:
            idle.remove(upstream)

    def sweep(self) -> None:
        """Close upstreams idle for longer than `idle_seconds` (oldest are at the front)."""
        limit = self.now() - self.idle_seconds
        for home, by_service in list(self.idle.items()):
            for service, idle in list(by_service.items()):
                old = 0
                while old < len(idle) and idle[old].idle_since <= limit:
                    old += 1
                if old:
                    expired, idle[:] = idle[:old], idle[old:]
                    for upstream in expired:
                        upstream.close(True)
                if not idle:
                    del by_service[service]
            if not by_service:
                del self.idle[home]

    def homes(self) -> list[str]:
        """The homes some idle upstreams (or some emptied lists, until a sweep) go to."""
        return list(self.idle)

    def close_home(self, home: str) -> None:
        """Close the idle upstreams to `home` (it drains, or left the farm)."""
        for idle in self.idle.pop(home, {}).values():
            for upstream in idle:
                upstream.close(True)

    def close_all(self) -> None:
        for by_service in list(self.idle.values()):
            for idle in list(by_service.values()):
                for upstream in list(idle):
                    upstream.close(True)
        self.idle.clear()

    def describe(self) -> dict[str, list[int]]:
        """Idle upstreams by home: the flow ids of flows, one 0 per local connection."""
        out: dict[str, list[int]] = {}
        for home, by_service in self.idle.items():
            for idle in by_service.values():
                ids = out.setdefault(home, [])
                for upstream in idle:
                    flow = getattr(upstream, "flow", None)
                    ids.append(flow.flow_id if flow is not None else 0)
        return out

    def __len__(self) -> int:
        return sum(len(idle) for by_service in self.idle.values() for idle in by_service.values())


__all__ = [
    "POOL_MAX_IDLE",
    "FlowUpstream",
    "LocalUpstream",
    "PoolKey",
    "Upstream",
    "UpstreamPool",
    "User",
]
