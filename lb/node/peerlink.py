"""The asyncio driver of one link end: bytes between a socket and a LinkConnection.

`LinkDriver` feeds what the socket reads into its `LinkConnection`
(lb.link), writes what the connection queued in one `writelines` per loop
turn, and turns the connection's events into calls: flow bytes to the local
endpoint of the flow, everything else to its `LinkOwner` (lb.node.peers).
`FlowEndpoint` is the link side of a splice (lb.node.splice.Endpoint).

It must not decide anything the protocol decides (that is lb.link), nor route
or place (lb.routing), nor keep registries of links (lb.node.peers).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Protocol, cast

import structlog

from lb.clock import Monotonic
from lb.errors import FrameError, LinkError
from lb.link import (
    Authenticated,
    ControlFrame,
    Count,
    FlowData,
    FlowEnded,
    FlowEof,
    FlowOpened,
    FlowReset,
    FlowVerified,
    FlowWritable,
    LinkConnection,
    PeerHeard,
)
from lb.link.connection import PAUSE_LINK, PAUSE_PEER
from lb.link.events import Event
from lb.link.handshake import node_from_certificate
from lb.node.splice import Endpoint
from lb.wire.frames import ConnRef, Frame, ResetReason

log = structlog.get_logger("lb.link")

_CLIENT_ABORT = int(ResetReason.CLIENT_ABORT)
_INTERNAL_ERROR = int(ResetReason.INTERNAL_ERROR)


class LinkOwner(Protocol):
    """What a link driver reports to the node (lb.node.peers implements it)."""

    def link_up(self, link: LinkDriver) -> None: ...

    def link_down(self, link: LinkDriver) -> None: ...

    def link_failed_login(self, link: LinkDriver, reason: str) -> None: ...

    def flow_opened(self, link: LinkDriver, event: FlowOpened) -> None: ...

    def peer_heard(self, link: LinkDriver, load: int) -> None: ...

    def control_frame(self, link: LinkDriver, frame: Frame) -> None: ...

    def load(self) -> int: ...

    def count(self, name: str) -> None: ...

    def wake_at(self, when: float | None) -> None: ...


class FlowEndpoint(Endpoint):
    """The link side of one splice: bytes from the local socket go into the flow."""

    __slots__ = ("awaiting", "flow_id", "link", "peer", "pooled", "used")

    def __init__(self, link: LinkDriver, flow_id: int, peer: Endpoint | None) -> None:
        self.link = link
        self.flow_id = flow_id
        self.peer = peer  # the local socket; None until the home's application connected
        # Home side, for the node's load (lb.node.peers.sample_home_load): a flow of an
        # HTTP service is kept open by its entry between requests (the entry's pool), so
        # it counts only while bytes move on it or the entry's bytes await an answer;
        # once it became a tunnel (a 101 answer, a CONNECT) it is never pooled again and
        # counts as one session until it ends, like a local tunnel.
        self.pooled = False
        self.used = False  # bytes moved since the last load sample
        self.awaiting = False  # bytes came from the entry, none went back since

    def send(self, data: bytes) -> None:
        if (
            self.awaiting
            and self.pooled
            and len(data) > 11
            and data[9] == 0x31  # "101" by index: compiled, no slice object per answer
            and data[10] == 0x30
            and data[11] == 0x31
            and data.startswith(b"HTTP/1.")
        ):
            self.pooled = False  # the first bytes of the answer: switching protocols
        self.awaiting = False
        self.used = True
        link = self.link
        link.bytes_sent += len(data)  # METRICS
        if not link.conn.send(self.flow_id, data):
            peer = self.peer
            if peer is not None:
                peer.pause_reading(PAUSE_PEER)
        link.flush_soon()

    def send_eof(self) -> None:
        link = self.link
        link.conn.close(self.flow_id)
        link.forget_if_gone(self.flow_id)
        link.flush_soon()

    def peer_closed(self, clean: bool, reason: int) -> None:
        """The local socket is gone: cleanly (CLOSE, orphan) or not (RESET)."""
        self.peer = None
        link = self.link
        if clean:
            link.conn.detach(self.flow_id)
        else:
            link.conn.reset(self.flow_id, reason or _CLIENT_ABORT)
        link.forget_if_gone(self.flow_id)
        link.flush_soon()

    def pause_reading(self, reason: int) -> None:
        self.link.conn.pause_flow(self.flow_id, reason)

    def resume_reading(self, reason: int) -> None:
        self.link.conn.resume_flow(self.flow_id, reason)
        self.link.flush_soon()

    def attach(self, peer: Endpoint) -> None:
        """Home side: the application connected; VERIFIED, then what was held."""
        self.peer = peer
        link = self.link
        link.handle(link.conn.accept_flow(self.flow_id))
        link.flush_soon()

    def reset(self, reason: int) -> None:
        """Abort the flow from this side (the application failed, or a table sweep)."""
        link = self.link
        link.conn.reset(self.flow_id, reason)
        link.flows.pop(self.flow_id, None)
        link.flush_soon()

    @property
    def done(self) -> bool:
        return not self.link.conn.has_flow(self.flow_id)


class LinkDriver:
    """One link end on a socket: outbound (this node connected) or inbound (home side).

    An asyncio protocol by its methods, not by subclassing asyncio.Protocol: the
    compiled build makes it a native class (every forwarded byte crosses it)."""

    # METRICS (read by lb.node.adminsample): flow bytes either way, the round trip of the last PING
    bytes_sent = 0
    bytes_received = 0
    ping_sent = 0.0
    rtt: float | None = None

    def __init__(
        self,
        owner: LinkOwner,
        conn: LinkConnection,
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.owner = owner
        self.conn = conn
        self.loop = loop
        self.outbound = conn.initiator
        self.transport: asyncio.Transport | None = None
        self.flows: dict[int, FlowEndpoint] = {}
        self.flush_scheduled = False
        self.tls = False  # the transport is TLS (mutual TLS links)
        self.closed = False
        self.close_reason = "closed"
        self.ready: asyncio.Future[LinkDriver] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()

    def factory(self) -> Callable[[], asyncio.Protocol]:
        """A protocol factory that hands asyncio this very driver."""
        return lambda: cast(asyncio.Protocol, self)

    @property
    def peer_name(self) -> str | None:
        return self.conn.peer_name

    @property
    def authenticated(self) -> bool:
        return self.conn.authenticated

    @property
    def direction(self) -> str:
        return "out" if self.outbound else "in"

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # inbound links were admitted at accept time, before any TLS handshake (Peers)
        self.transport = cast(asyncio.Transport, transport)  # uvloop's do not subclass it
        self._started()

    def _started(self) -> None:
        """The transport is ready (TLS done when used): say HELLO."""
        transport = self.transport
        assert transport is not None
        self.tls = transport.get_extra_info("sslcontext") is not None
        peercert = transport.get_extra_info("peercert")
        if peercert is not None:
            self.conn.set_identity(node_from_certificate(peercert, self.conn.farm))
        self.flush()  # our HELLO
        self.owner.wake_at(self.conn.next_deadline())  # the login deadline

    def data_received(self, data: bytes) -> None:
        try:
            events = self.conn.receive_data(data, Monotonic(self.loop.time()))
            if events:
                self.handle(events)  # control frames are decoded here: FrameError too
        except (FrameError, LinkError) as exc:
            self.fail(exc)
            return
        self.flush_soon()

    def eof_received(self) -> bool:
        self.close_reason = "peer closed the link"
        return False

    def pause_writing(self) -> None:
        for flow in self.flows.values():
            if flow.peer is not None:
                flow.peer.pause_reading(PAUSE_LINK)

    def resume_writing(self) -> None:
        for flow in list(self.flows.values()):
            if flow.peer is not None:
                flow.peer.resume_reading(PAUSE_LINK)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed and self.lost.done():
            return
        self.closed = True
        if exc is not None and self.close_reason == "closed":
            self.close_reason = f"{type(exc).__name__}: {exc}"
        self.handle(self.conn.connection_lost())
        self.flows.clear()
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(self.close_reason))
            self.ready.exception()  # mark retrieved: the waiter may be gone
        if not self.lost.done():
            self.lost.set_result(None)
        self.owner.link_down(self)

    # -- events -------------------------------------------------------------
    def handle(self, events: list[Event]) -> None:
        flows = self.flows
        for event in events:
            try:
                kind = type(event)
                if kind is FlowData:
                    data_event = cast(FlowData, event)
                    self.bytes_received += len(data_event.data)  # METRICS
                    flow = flows.get(data_event.flow_id)
                    if flow is not None:
                        flow.awaiting = flow.used = True
                        if flow.pooled and data_event.data.startswith(b"CONNECT "):
                            flow.pooled = False  # a tunnel once answered (see FlowEndpoint)
                        if flow.peer is not None:
                            flow.peer.send(data_event.data)
                elif kind is FlowWritable:
                    flow = flows.get(cast(FlowWritable, event).flow_id)
                    if flow is not None and flow.peer is not None:
                        flow.peer.resume_reading(PAUSE_PEER)
                elif kind is FlowEof:
                    flow = flows.get(cast(FlowEof, event).flow_id)
                    if flow is not None and flow.peer is not None:
                        flow.peer.send_eof()
                    self.forget_if_gone(cast(FlowEof, event).flow_id)
                elif kind is FlowReset:
                    reset = cast(FlowReset, event)
                    flow = flows.pop(reset.flow_id, None)
                    if flow is not None and flow.peer is not None:
                        peer, flow.peer = flow.peer, None
                        peer.peer_closed(False, reset.reason)
                elif kind is FlowEnded:
                    flows.pop(cast(FlowEnded, event).flow_id, None)
                elif kind is FlowVerified:
                    pass  # the entry's flow already carries bytes; the tables moved it
                elif kind is FlowOpened:
                    self.owner.flow_opened(self, cast(FlowOpened, event))
                elif kind is PeerHeard:
                    heard = cast(PeerHeard, event)
                    if heard.ping_token is not None:
                        self.conn.send_pong(heard.ping_token, self.owner.load())
                    elif self.ping_sent:  # METRICS: a PONG answers our last PING
                        self.rtt = self.loop.time() - self.ping_sent
                    self.owner.peer_heard(self, heard.load)
                elif kind is ControlFrame:
                    self.owner.control_frame(self, cast(ControlFrame, event).frame)
                elif kind is Authenticated:
                    if not self.ready.done():
                        self.ready.set_result(self)
                    self.owner.link_up(self)
                elif kind is Count:
                    self.owner.count(cast(Count, event).name)
            except (FrameError, LinkError):
                raise  # the peer broke the protocol (a bad control frame): the link fails
            except Exception as exc:  # a bug met handling one event must cost only its flow
                self._event_failed(event, exc)

    def _event_failed(self, event: Event, exc: Exception) -> None:
        """A bug met while handling one event (not a peer's protocol error: FrameError
        and LinkError still fail the link). A flow's event resets that flow
        only (RESET with INTERNAL_ERROR both ways), so the link's other flows go on; any
        other event leaves the link in a state nobody checked: the link is closed, its
        flows reset, and it reconnects, as after a protocol error."""
        flow_id: int | None = getattr(event, "flow_id", None)
        log.error(
            "link_event_failed",
            peer=self.peer_name,
            direction=self.direction,
            kind=type(event).__name__,
            flow=flow_id,
            exc_info=exc,
        )
        self.owner.count("link_event_errors")
        if flow_id is None:
            self.abort(f"failed handling {type(event).__name__}: {exc!r}")
            return
        self.conn.reset(flow_id, _INTERNAL_ERROR)
        flow = self.flows.pop(flow_id, None)
        peer = flow.peer if flow is not None else None
        if flow is not None:
            flow.peer = None
        if peer is not None:
            try:
                peer.peer_closed(False, _INTERNAL_ERROR)
            except Exception:
                log.exception("link_event_failed", peer=self.peer_name, flow=flow_id)
        self.flush_soon()

    # -- flows ----------------------------------------------------------------
    def open_flow(self, client: Endpoint, ref: ConnRef, initial: bytes, flags: int) -> FlowEndpoint:
        """Entry side: NEW with the bytes read so far; raises TableFull / LinkError."""
        flow_id, keep_reading = self.conn.open_flow(
            ref, initial, flags, Monotonic(self.loop.time())
        )
        flow = FlowEndpoint(self, flow_id, client)
        self.flows[flow_id] = flow
        if not keep_reading:
            client.pause_reading(PAUSE_PEER)
        self.flush_soon()
        self.owner.wake_at(self.conn.next_deadline())
        return flow

    def home_flow(self, flow_id: int) -> FlowEndpoint:
        """Home side: the endpoint of a flow the entry opened (attached once the app is up)."""
        flow = FlowEndpoint(self, flow_id, None)
        self.flows[flow_id] = flow
        self.owner.wake_at(self.conn.next_deadline())
        return flow

    def forget_if_gone(self, flow_id: int) -> None:
        if not self.conn.has_flow(flow_id):
            self.flows.pop(flow_id, None)

    def sweep(self, now: Monotonic) -> float | None:
        """Timer: pending flows past their deadline, the login deadline."""
        if self.closed or self.transport is None:
            return None  # a TLS handshake in progress is bounded by its own timeout
        try:
            events = self.conn.handle_timeout(now)
        except LinkError as exc:
            self.fail(exc)
            return None
        if events:
            self.handle(events)
            self.flush_soon()
        return self.conn.next_deadline()

    # -- writing ---------------------------------------------------------------
    def flush_soon(self) -> None:
        if not self.flush_scheduled and self.conn.out:
            self.flush_scheduled = True
            self.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        out = self.conn.data_to_send()
        transport = self.transport
        if out and transport is not None and not self.closed:
            if self.tls and len(out) > 1:
                # one TLS record per loop turn, not one per frame piece
                transport.write(b"".join(out))
            else:
                transport.writelines(out)

    def send_control(self, frame: bytes) -> None:
        if self.closed or not self.conn.authenticated:
            return
        self.conn.send_control(frame)
        self.flush_soon()

    def ping(self, load: int) -> None:
        self.ping_sent = self.loop.time()  # METRICS
        self.conn.ping(load)
        self.flush_soon()

    # -- the end -------------------------------------------------------------------
    def fail(self, exc: Exception) -> None:
        """A protocol error or a failed login: the link is closed, its flows reset."""
        if self.conn.authenticated:
            self.close_reason = f"protocol error: {exc}"
            self.owner.count("link_protocol_errors")
        else:
            self.close_reason = f"login failed: {exc}"
            self.owner.link_failed_login(self, str(exc))
        self.abort()

    def abort(self, reason: str | None = None) -> None:
        if reason is not None:
            self.close_reason = reason
        if self.transport is not None and not self.closed:
            self.closed = True  # no more writes; connection_lost follows
            self.transport.abort()

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.flush()
            self.transport.close()

    def describe(self) -> str:
        return f"{self.peer_name or '?'} {self.direction}"


__all__ = ["FlowEndpoint", "LinkDriver", "LinkOwner"]
