"""Links and flows: the inter-node half of the I/O layer.

A *link* is one long-lived TCP connection from an entry node to a peer's
forward address; it carries the frames of many *flows* (forwarded client
connections). The side that connected opens flows; the other side is their
home. Frames are coalesced into one write per loop turn and parsed in batches
(`FrameDecoder.feed`). Per-flow credit windows keep one slow client from
stalling the other flows of the link.

The wire format and the rules implemented here are docs/protocol.md. This
module must not parse HTTP, route, or decide placement: it asks the node.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
from collections import deque
from typing import TYPE_CHECKING, cast

import structlog

from lb.errors import FrameError, LinkError, TableFull
from lb.node.splice import PAUSE_LINK, PAUSE_PEER, PAUSE_WAIT, Endpoint
from lb.routing.tables import FlowTables
from lb.wire import frames as fr
from lb.wire.frames import ConnRef, FrameType, ResetReason

if TYPE_CHECKING:
    from lb.node.node import Node

log = structlog.get_logger("lb.link")

_AUTH_LABEL = b"lb link auth v2\x00"
ROLE_INITIATOR = 0x01  # the side that connected (entry side of its flows)
ROLE_RESPONDER = 0x02  # the side that accepted (home side)
_NONCE_SIZE = 16
MAX_FLOW_ID = 0xFFFFFFFF

T_NEW = int(FrameType.NEW)
T_DATA = int(FrameType.DATA)
T_VERIFIED = int(FrameType.VERIFIED)
T_CLOSE = int(FrameType.CLOSE)
T_RESET = int(FrameType.RESET)
T_WINDOW = int(FrameType.WINDOW)
T_PING = int(FrameType.PING)
T_PONG = int(FrameType.PONG)
T_HELLO = int(FrameType.HELLO)
T_AUTH = int(FrameType.AUTH)


def link_key(secret: bytes) -> bytes:
    """The key links authenticate with, derived from the farm secret."""
    return hmac.new(secret, b"lb link key v1", hashlib.sha256).digest()


def auth_mac(
    key: bytes,
    role: int,
    initiator_nonce: bytes,
    responder_nonce: bytes,
    initiator: str,
    responder: str,
) -> bytes:
    """The AUTH proof of one side of one link (docs/protocol.md, links).

    It binds who made it (`role`), both nonces and both node names, so an AUTH
    made on one link, or by the other side of the same link, is worth nothing
    anywhere else.
    """
    ini = initiator.encode()
    res = responder.encode()
    msg = b"".join(
        (
            _AUTH_LABEL,
            bytes((role,)),
            initiator_nonce,
            responder_nonce,
            bytes((len(ini),)),
            ini,
            bytes((len(res),)),
            res,
        )
    )
    return hmac.new(key, msg, hashlib.sha256).digest()


class Flow:
    """One forwarded client connection on a link; the link-side endpoint of a splice."""

    __slots__ = (
        "closed_in",
        "closed_out",
        "credit_threshold",
        "done",
        "eof_held",
        "eof_queued",
        "flow_id",
        "held",
        "link",
        "orphan",
        "out_queue",
        "paused",
        "peer",
        "recv_allowed",
        "recv_owed",
        "send_credit",
        "source_paused",
    )

    def __init__(self, link: Link, flow_id: int, window: int, peer: Endpoint | None) -> None:
        self.link = link
        self.flow_id = flow_id
        self.peer = peer
        self.send_credit = window  # bytes we may still send
        self.recv_allowed = window  # bytes the remote may still send us
        self.recv_owed = 0  # bytes delivered (or held) but not yet credited back
        self.credit_threshold = max(1, window // 4)
        self.out_queue: deque[bytes] | None = None  # bytes waiting for credit
        self.eof_queued = False
        self.source_paused = False  # we paused our peer because credit ran out
        self.paused = 0 if peer is not None else PAUSE_WAIT  # reasons to withhold credit
        self.held: list[bytes] = []  # bytes received before the peer existed
        self.eof_held = False
        self.closed_in = False  # CLOSE received
        self.closed_out = False  # CLOSE sent
        self.done = False
        self.orphan = False  # the local socket ended cleanly; remote bytes are dropped

    # -- Endpoint: called by the socket side ------------------------------
    def send(self, data: bytes) -> None:
        if self.done or self.closed_out:
            return
        n = len(data)
        if self.out_queue is None and n <= self.send_credit and n <= fr.MAX_PAYLOAD:
            self.send_credit = self.send_credit - n
            self.link.write_data(self.flow_id, data)
            return
        if self.out_queue is None:
            self.out_queue = deque()
        self.out_queue.append(data)
        self._flush_queue()
        if self.out_queue and not self.source_paused and self.peer is not None:
            self.source_paused = True
            self.peer.pause_reading(PAUSE_PEER)

    def send_eof(self) -> None:
        if self.done or self.closed_out:
            return
        if self.out_queue:
            self.eof_queued = True
        else:
            self._send_close()

    def peer_closed(self, clean: bool, reason: int) -> None:
        self.peer = None
        if self.done:
            return
        if not clean:
            self.reset(reason or int(ResetReason.CLIENT_ABORT))
            return
        self.orphan = True
        self.send_eof()
        if self.recv_owed:
            self._credit()

    def pause_reading(self, reason: int) -> None:
        self.paused |= reason

    def resume_reading(self, reason: int) -> None:
        self.paused &= ~reason
        if not self.paused and self.recv_owed and not self.done:
            self._credit()

    # -- frames from the link ---------------------------------------------
    def on_data(self, payload: bytes) -> None:
        n = len(payload)
        if self.closed_in:
            self.reset(int(ResetReason.PROTOCOL_ERROR), notify_peer=True)
            return
        if n > self.recv_allowed:
            self.link.node.count("flow_window_violations")
            self.reset(int(ResetReason.WINDOW_VIOLATION), notify_peer=True)
            return
        self.recv_allowed -= n
        self.recv_owed += n
        peer = self.peer
        if peer is not None:
            peer.send(payload)
        elif self.orphan:
            pass  # the local socket is gone; drop and credit back below
        else:
            self.held.append(payload)
            return
        if not self.paused and self.recv_owed >= self.credit_threshold:
            self._credit()

    def on_window(self, increment: int) -> None:
        self.send_credit += increment
        if self.out_queue:
            self._flush_queue()
        if not self.out_queue and self.source_paused:
            self.source_paused = False
            if self.peer is not None:
                self.peer.resume_reading(PAUSE_PEER)

    def on_close(self) -> None:
        if self.closed_in:
            return
        self.closed_in = True
        peer = self.peer
        if peer is not None:
            peer.send_eof()
        elif not self.orphan:
            self.eof_held = True
        if self.closed_out:
            self._finish()

    def on_reset(self, reason: int) -> None:
        """The remote aborted the flow."""
        if self.done:
            return
        self.done = True
        self.link.forget(self.flow_id)
        peer = self.peer
        self.peer = None
        if peer is not None:
            peer.peer_closed(False, reason)

    def attach(self, peer: Endpoint) -> None:
        """The home connected its application: deliver what was held, start crediting."""
        self.peer = peer
        held, self.held = self.held, []
        for chunk in held:
            peer.send(chunk)
        if self.eof_held:
            peer.send_eof()
        self.resume_reading(PAUSE_WAIT)

    # -- internals ----------------------------------------------------------
    def reset(self, reason: int, *, notify_peer: bool = False) -> None:
        """Abort the flow from this side: RESET to the remote, drop from the tables."""
        if self.done:
            return
        self.done = True
        self.link.forget(self.flow_id)
        self.link.write(fr.encode_reset(self.flow_id, reason))
        peer = self.peer
        self.peer = None
        if notify_peer and peer is not None:
            peer.peer_closed(False, reason)

    def link_lost(self) -> None:
        self.done = True
        peer = self.peer
        self.peer = None
        if peer is not None:
            peer.peer_closed(False, int(ResetReason.LINK_CLOSED))

    def _credit(self) -> None:
        increment = self.recv_owed
        self.recv_owed = 0
        self.recv_allowed += increment
        self.link.write(fr.encode_window(self.flow_id, increment))

    def _flush_queue(self) -> None:
        queue = self.out_queue
        assert queue is not None
        while queue and self.send_credit > 0:
            chunk = queue[0]
            room = min(self.send_credit, fr.MAX_PAYLOAD)
            if len(chunk) <= room:
                queue.popleft()
            else:
                queue[0] = chunk[room:]
                chunk = chunk[:room]
            self.send_credit -= len(chunk)
            self.link.write_data(self.flow_id, chunk)
        if not queue:
            self.out_queue = None
            if self.eof_queued:
                self.eof_queued = False
                self._send_close()

    def _send_close(self) -> None:
        self.closed_out = True
        self.link.write(fr.encode_close(self.flow_id))
        if self.closed_in:
            self._finish()

    def _finish(self) -> None:
        self.done = True
        self.link.forget(self.flow_id)


class Link(asyncio.Protocol):
    """One inter-node link end (outbound: we connected and open flows; inbound: we are home)."""

    def __init__(self, node: Node, *, outbound: bool, expected_peer: str | None = None) -> None:
        self.node = node
        self.outbound = outbound
        self.peer_name: str | None = expected_peer if outbound else None
        self.transport: asyncio.Transport | None = None
        self.decoder = fr.FrameDecoder()
        self.tables: FlowTables[Flow] = FlowTables(
            node.limits.max_flows, node.limits.pending_timeout
        )
        self.window = node.limits.flow_window
        self.out: list[bytes] = []
        self.flush_scheduled = False
        self.write_paused = False
        self.nonce = os.urandom(_NONCE_SIZE)
        self.peer_nonce: bytes | None = None
        self.authenticated = False
        self.ready: asyncio.Future[Link] = node.loop.create_future()
        self.lost: asyncio.Future[None] = node.loop.create_future()
        self.next_flow_id = 1
        self.closed = False
        self.close_reason = "closed"
        self.ping_token = 0
        self.last_heard = node.loop.time()  # last PING or PONG from the peer

    # -- asyncio.Protocol -------------------------------------------------
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(
            asyncio.Transport, transport
        )  # uvloop's transports do not subclass it
        self.write(fr.encode_hello(self.node.farm_name, self.node.name, self.nonce))

    def data_received(self, data: bytes) -> None:
        try:
            frames = self.decoder.feed(data)
            for frame in frames:
                self.dispatch(frame)
        except FrameError as exc:
            self.protocol_error(str(exc))

    def eof_received(self) -> bool:
        self.close_reason = "peer closed the link"
        return False

    def pause_writing(self) -> None:
        self.write_paused = True
        for flow in self.tables.values():
            if flow.peer is not None:
                flow.peer.pause_reading(PAUSE_LINK)

    def resume_writing(self) -> None:
        self.write_paused = False
        for flow in self.tables.values():
            if flow.peer is not None:
                flow.peer.resume_reading(PAUSE_LINK)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if exc is not None and self.close_reason == "closed":
            self.close_reason = f"{type(exc).__name__}: {exc}"
        flows = list(self.tables.values())
        self.tables.clear()
        for flow in flows:
            flow.link_lost()
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(self.close_reason))
            self.ready.exception()  # mark retrieved: the waiter may be gone
        if not self.lost.done():
            self.lost.set_result(None)
        self.node.link_closed(self)

    # -- writing ------------------------------------------------------------
    def write(self, frame: bytes) -> None:
        self.out.append(frame)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.node.loop.call_soon(self.flush)

    def write_data(self, flow_id: int, payload: bytes) -> None:
        out = self.out
        out.append(fr.data_header(flow_id, len(payload)))
        out.append(payload)
        if not self.flush_scheduled:
            self.flush_scheduled = True
            self.node.loop.call_soon(self.flush)

    def flush(self) -> None:
        self.flush_scheduled = False
        out = self.out
        if not out:
            return
        self.out = []
        transport = self.transport
        if transport is not None and not self.closed:
            transport.writelines(out)

    # -- flows (entry side) -------------------------------------------------
    def open_flow(
        self, client: Endpoint, ref: ConnRef, initial: bytes, flags: int, now: float
    ) -> Flow:
        """Announce a new flow with NEW; it waits in the pending table for VERIFIED."""
        flow_id = self.next_flow_id
        if flow_id > MAX_FLOW_ID:
            raise LinkError("flow ids of this link are used up; a new link takes new flows")
        self.next_flow_id += 1
        flow = Flow(self, flow_id, self.window, client)
        self.tables.add_pending(flow_id, flow, now)  # TableFull propagates to the caller
        first = initial[: min(len(initial), self.window, fr.MAX_PAYLOAD)]
        flow.send_credit -= len(first)
        self.write(fr.encode_new(flow_id, ref, first, flags))
        rest = initial[len(first) :]
        if rest:
            flow.send(rest)
        return flow

    def forget(self, flow_id: int) -> None:
        self.tables.remove(flow_id)

    # -- reading --------------------------------------------------------------
    def dispatch(self, frame: fr.Frame) -> None:
        ftype = frame.type
        if not self.authenticated:
            self.handshake(frame)
            return
        if ftype == T_DATA:
            flow = self.tables.get(frame.flow_id)
            if flow is not None:
                flow.on_data(frame.payload)
        elif ftype == T_WINDOW:
            flow = self.tables.get(frame.flow_id)
            if flow is not None:
                flow.on_window(fr.parse_window(frame.payload))
        elif ftype == T_NEW:
            if self.outbound:
                raise FrameError(
                    "NEW on a link opened by this node: flows are opened by the connecting side"
                )
            self.node.home_new_flow(self, frame)
        elif ftype == T_VERIFIED:
            if not self.outbound:
                raise FrameError("VERIFIED on a link this node accepted: only the home verifies")
            self.tables.verify(frame.flow_id)  # unknown: it crossed a RESET; ignore
        elif ftype == T_CLOSE:
            flow = self.tables.get(frame.flow_id)
            if flow is not None:
                flow.on_close()
        elif ftype == T_RESET:
            flow = self.tables.get(frame.flow_id)
            if flow is not None:
                reason, _message = fr.parse_reset(frame.payload)
                flow.on_reset(reason)
        elif ftype == T_PING:
            token, load = fr.parse_ping(frame.payload)
            self.last_heard = self.node.loop.time()
            self.write(fr.encode_pong(token, self.node.load()))
            self.node.peer_heard(self, load)
        elif ftype == T_PONG:
            _token, load = fr.parse_ping(frame.payload)
            self.last_heard = self.node.loop.time()
            self.node.peer_heard(self, load)
        elif ftype >= fr.EXTENSION_TYPE_MIN:
            self.node.control_frame(self, frame)  # directory, membership; unknown ones ignored
        elif ftype in (T_HELLO, T_AUTH):
            raise FrameError("HELLO/AUTH after the link was authenticated")

    def handshake(self, frame: fr.Frame) -> None:
        """HELLO both ways; then the initiator proves itself, and only then the responder.

        The responder never sends AUTH before it verified the initiator's, so a
        stranger who claims to be a farm member learns no proof it could relay.
        """
        ftype = frame.type
        node = self.node
        if ftype == T_HELLO and self.peer_nonce is None:
            farm, node_name, nonce = fr.parse_hello(frame.payload)
            if farm != node.farm_name:
                raise FrameError(f"link from farm {farm!r}, this farm is {node.farm_name!r}")
            if self.outbound and node_name != self.peer_name:
                raise FrameError(f"expected node {self.peer_name!r}, the peer says {node_name!r}")
            if not self.outbound and not node.is_peer(node_name):
                raise FrameError(f"node {node_name!r} is not a member of this farm")
            self.peer_name = node_name
            self.peer_nonce = nonce
            if self.outbound:
                self.write(fr.encode_auth(self._mac(ROLE_INITIATOR)))
        elif ftype == T_AUTH and self.peer_nonce is not None:
            assert self.peer_name is not None
            role = ROLE_RESPONDER if self.outbound else ROLE_INITIATOR
            if not hmac.compare_digest(self._mac(role), frame.payload):
                raise FrameError(f"bad link authentication from {self.peer_name!r}")
            if not self.outbound:
                self.write(fr.encode_auth(self._mac(ROLE_RESPONDER)))
            self.authenticated = True
            if not self.ready.done():
                self.ready.set_result(self)
            node.link_authenticated(self)
        else:
            raise FrameError(f"frame type {ftype:#x} before the link was authenticated")

    def _mac(self, role: int) -> bytes:
        peer_nonce, peer_name = self.peer_nonce, self.peer_name
        assert peer_nonce is not None and peer_name is not None
        if self.outbound:
            return auth_mac(
                self.node.link_key, role, self.nonce, peer_nonce, self.node.name, peer_name
            )
        return auth_mac(self.node.link_key, role, peer_nonce, self.nonce, peer_name, self.node.name)

    def protocol_error(self, message: str) -> None:
        self.close_reason = f"protocol error: {message}"
        self.node.count("link_protocol_errors")
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def ping(self) -> None:
        self.ping_token += 1
        self.write(fr.encode_ping(self.ping_token, self.node.load()))

    def close(self) -> None:
        if self.transport is not None and not self.closed:
            self.flush()
            self.transport.close()

    def describe(self) -> str:
        return f"{self.peer_name or '?'} {'out' if self.outbound else 'in'}"


__all__ = ["Flow", "Link", "TableFull", "auth_mac", "link_key"]
