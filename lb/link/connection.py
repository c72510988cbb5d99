"""One link end as a sans-IO state machine: handshake, flows, credit, dispatch.

The rules are docs/protocol.md. A `LinkConnection` is fed the bytes its peer
sent (`receive_data(data, now)`), returns what happened as events, and queues
the frames it wants sent (`data_to_send()`). The driver (lb.node) calls the
flow methods (`open_flow`, `send`, `close`, `detach`, `reset`, `accept_flow`,
`pause_flow`/`resume_flow`) and arms a timer for `next_deadline()`, calling
`handle_timeout(now)` when it passes.

A malformed frame raises FrameError; a failed login raises LinkAuthError. Either
ends the link: the driver closes the socket and calls `connection_lost()`, which
reports every flow as reset.

It must not import asyncio, touch sockets, read the clock or draw random numbers.
"""

from __future__ import annotations

import hmac
from collections import deque
from collections.abc import Callable, Sequence
from typing import Final

from lb.errors import FrameError, LinkAuthError, LinkError, TableFull
from lb.link.events import (
    Authenticated,
    ControlFrame,
    Count,
    Event,
    FlowData,
    FlowEnded,
    FlowEof,
    FlowOpened,
    FlowReset,
    FlowVerified,
    FlowWritable,
    PeerHeard,
)
from lb.link.handshake import Role, auth_mac
from lb.routing.tables import FlowTables
from lb.wire import frames as fr
from lb.wire.frames import ConnRef, Frame, FrameType, ResetReason

__all__ = [
    "MAX_HANDSHAKE_BYTES",
    "PAUSE_LINK",
    "PAUSE_PEER",
    "PAUSE_WAIT",
    "LinkConnection",
    "Role",
]

# Reasons to withhold a flow's credit (or, in the driver, to stop reading a socket);
# a bit each, so one resume never undoes another pause.
PAUSE_PEER: Final = 1  # the local endpoint cannot take more bytes
PAUSE_LINK: Final = 2  # the link's own write buffer is full
PAUSE_WAIT: Final = 4  # there is no local endpoint yet (the home is connecting its application)

#: HELLO and AUTH are small; a peer that sends more before login is refused.
MAX_HANDSHAKE_BYTES: Final = 2 * (fr.HEADER_SIZE + 2 + 2 * fr.MAX_HELLO_NAME + fr.NONCE_SIZE)

# Final: compiled, a native constant, not a look-up in the module's dict per frame
_DATA: Final = int(FrameType.DATA)
_HELLO: Final = int(FrameType.HELLO)
_AUTH: Final = int(FrameType.AUTH)
_LOGIN_TYPES: Final = (_HELLO, _AUTH)
_RESET_LINK: Final = int(ResetReason.LINK_CLOSED)


class _Flow:
    """One flow's state at this link end: credit both ways, half-close, held bytes."""

    __slots__ = (
        "attached",
        "blocked",
        "closed_in",
        "closed_out",
        "credit_threshold",
        "eof_held",
        "eof_queued",
        "flow_id",
        "held",
        "orphan",
        "out_queue",
        "paused",
        "recv_allowed",
        "recv_owed",
        "send_credit",
    )

    def __init__(self, flow_id: int, window: int, attached: bool) -> None:
        self.flow_id = flow_id
        self.send_credit = window  # bytes we may still send
        self.recv_allowed = window  # bytes the remote may still send us
        self.recv_owed = 0  # bytes delivered (or held) but not yet credited back
        self.credit_threshold = max(1, window // 4)
        self.out_queue: deque[bytes] | None = None  # bytes waiting for credit
        self.eof_queued = False
        self.blocked = False  # send() told the driver to stop reading the source
        self.attached = attached  # a local endpoint takes this flow's bytes
        self.paused = 0 if attached else PAUSE_WAIT
        self.held: list[bytes] = []  # bytes received before the local endpoint existed
        self.eof_held = False
        self.closed_in = False  # CLOSE received
        self.closed_out = False  # CLOSE sent
        self.orphan = False  # the local endpoint ended cleanly; remote bytes are dropped


class LinkConnection:
    """One end of a link: the initiator (connected; opens flows) or the responder (home)."""

    def __init__(
        self,
        role: Role,
        *,
        farm: str,
        name: str,
        nonce: bytes,
        keys: Sequence[bytes],
        now: float,
        expected_peer: str | None = None,
        is_member: Callable[[str], bool] | None = None,
        key_index: int = 0,
        max_flows: int = 10_000,
        pending_timeout: float = 5.0,
        window: int = 256 * 1024,
        handshake_timeout: float = 3.0,
        require_identity: bool = False,
    ) -> None:
        if role is Role.INITIATOR and expected_peer is None:
            raise ValueError("an initiator must know which node it meant to reach")
        if role is Role.RESPONDER and is_member is None:
            raise ValueError("a responder needs is_member to refuse strangers")
        if not keys:
            raise ValueError("at least one link key")
        if len(nonce) != fr.NONCE_SIZE:
            raise ValueError(f"nonce must be {fr.NONCE_SIZE} bytes")
        self.role = role
        self.initiator = role is Role.INITIATOR
        self.farm = farm
        self.name = name
        self.nonce = nonce
        self.keys = tuple(keys)
        self.key = self.keys[key_index % len(self.keys)]  # the initiator's pick
        self.is_member = is_member
        self.peer_name: str | None = expected_peer
        self.peer_nonce: bytes | None = None
        self.authenticated = False
        self.closed = False
        # the node name the transport proved (a verified TLS certificate), if links use mTLS
        self.require_identity = require_identity
        self.identity: str | None = None
        self.handshake_deadline = now + handshake_timeout
        self.handshake_timeout = handshake_timeout
        self.window = window
        self.tables: FlowTables[_Flow] = FlowTables(max_flows, pending_timeout)
        self.next_flow_id = 1
        self.ping_token = 0
        self.last_heard = now
        self.out: list[bytes] = [fr.encode_hello(farm, name, nonce)]
        self._pre = bytearray()  # bytes before login, bounded by MAX_HANDSHAKE_BYTES
        self._decoder = fr.FrameDecoder()
        self._handlers: dict[int, Callable[[Frame, float, list[Event]], None]] = {
            int(FrameType.WINDOW): self._on_window,
            int(FrameType.NEW): self._on_new,
            int(FrameType.VERIFIED): self._on_verified,
            int(FrameType.CLOSE): self._on_close,
            int(FrameType.RESET): self._on_reset,
            int(FrameType.PING): self._on_ping,
            int(FrameType.PONG): self._on_pong,
            _HELLO: self._on_login_again,
            _AUTH: self._on_login_again,
        }

    def set_identity(self, node: str | None) -> None:
        """The node name the transport authenticated (the peer's TLS certificate)."""
        self.identity = node

    # -- bytes in and out ------------------------------------------------------
    def data_to_send(self) -> list[bytes]:
        """The frames queued since the last call, in order (for one writev)."""
        out = self.out
        self.out = []
        return out

    def receive_data(self, data: bytes, now: float) -> list[Event]:
        """Bytes from the peer -> events. Raises FrameError / LinkAuthError (link over)."""
        if self.closed:
            return []
        events: list[Event] = []
        try:
            if not self.authenticated:
                data = self._login_bytes(data, events)
                if not data:
                    return events
            frames = self._decoder.feed(data)
            if frames:
                # any frame proves the peer alive: a PING queued behind flow data on a
                # lossy path must not get a busy link declared silent
                self.last_heard = now
            tables = self.tables
            handlers = self._handlers
            for frame in frames:
                t = frame.type
                if t == _DATA:  # the fast path
                    flow = tables.get(frame.flow_id)
                    if flow is not None:
                        self._on_data(flow, frame.payload, events)
                    continue
                handler = handlers.get(t)
                if handler is not None:
                    handler(frame, now, events)
                elif t >= fr.EXTENSION_TYPE_MIN:
                    events.append(ControlFrame(frame))
        except (FrameError, LinkError):
            self.closed = True
            raise
        return events

    # -- the handshake (docs/protocol.md, links) -------------------------------
    def _login_bytes(self, data: bytes, events: list[Event]) -> bytes:
        """Handshake frames from `data`; returns the bytes after login (if it completed)."""
        pre = self._pre
        pre += data
        off = 0
        while not self.authenticated:
            if len(pre) - off >= 2 and pre[off + 1] not in _LOGIN_TYPES:
                # refused from its header: a frame before login is never buffered
                raise FrameError(f"frame type {pre[off + 1]:#x} before the link was authenticated")
            decoded = fr.decode_frame(pre, off)
            if decoded is None:
                if len(pre) - off > MAX_HANDSHAKE_BYTES:
                    raise FrameError("handshake frames larger than any HELLO or AUTH")
                break
            frame, off = decoded
            self._login_frame(frame, events)
        rest = bytes(pre[off:])
        pre.clear()
        if self.authenticated:
            return rest
        pre += rest
        return b""

    def _login_frame(self, frame: Frame, events: list[Event]) -> None:
        if frame.type == _HELLO and self.peer_nonce is None:
            farm, peer, nonce = fr.parse_hello(frame.payload)
            if farm != self.farm:
                raise LinkAuthError(f"link from farm {farm!r}, this farm is {self.farm!r}")
            if self.require_identity and self.identity != peer:
                raise LinkAuthError(
                    f"the peer's certificate names {self.identity!r}, its HELLO {peer!r}"
                )
            if self.initiator:
                if peer != self.peer_name:
                    raise LinkAuthError(f"expected node {self.peer_name!r}, the peer says {peer!r}")
            else:
                assert self.is_member is not None
                if peer == self.name or not self.is_member(peer):
                    raise LinkAuthError(f"node {peer!r} is not a member of this farm")
            self.peer_name = peer
            self.peer_nonce = nonce
            if self.initiator:
                self.out.append(fr.encode_auth(self._mac(self.key, Role.INITIATOR)))
            return
        if frame.type == _AUTH and self.peer_nonce is not None:
            if self.initiator:
                if not _equal(self._mac(self.key, Role.RESPONDER), frame.payload):
                    raise LinkAuthError(f"bad link authentication from {self.peer_name!r}")
            else:
                # the responder proves itself only to an initiator that proved itself first
                for key in self.keys:
                    if _equal(self._mac(key, Role.INITIATOR), frame.payload):
                        self.key = key
                        break
                else:
                    raise LinkAuthError(f"bad link authentication from {self.peer_name!r}")
                self.out.append(fr.encode_auth(self._mac(self.key, Role.RESPONDER)))
            self.authenticated = True
            assert self.peer_name is not None
            events.append(Authenticated(self.peer_name))
            return
        raise FrameError(f"frame type {frame.type:#x} out of order in the handshake")

    def _mac(self, key: bytes, role: Role) -> bytes:
        peer_nonce, peer = self.peer_nonce, self.peer_name
        assert peer_nonce is not None and peer is not None
        if self.initiator:
            return auth_mac(key, role, self.nonce, peer_nonce, self.name, peer)
        return auth_mac(key, role, peer_nonce, self.nonce, peer, self.name)

    # -- frames after login ------------------------------------------------------
    def _on_login_again(self, frame: Frame, now: float, events: list[Event]) -> None:
        raise FrameError("HELLO/AUTH after the link was authenticated")

    def _on_data(self, flow: _Flow, payload: bytes, events: list[Event]) -> None:
        n = len(payload)
        if flow.closed_in:
            self._abort(flow, int(ResetReason.PROTOCOL_ERROR), events)
            return
        if n > flow.recv_allowed:
            events.append(Count("flow_window_violations"))
            self._abort(flow, int(ResetReason.WINDOW_VIOLATION), events)
            return
        flow.recv_allowed -= n
        flow.recv_owed += n
        if flow.attached:
            events.append(FlowData(flow.flow_id, payload))
        elif not flow.orphan:
            flow.held.append(payload)
            return
        if not flow.paused and flow.recv_owed >= flow.credit_threshold:
            self._credit(flow)

    def _on_window(self, frame: Frame, now: float, events: list[Event]) -> None:
        flow = self.tables.get(frame.flow_id)
        if flow is None:
            return
        flow.send_credit += fr.parse_window(frame.payload)
        if flow.out_queue:
            self._flush_queue(flow)
            if flow.flow_id not in self.tables:  # the queued CLOSE went out and ended it
                events.append(FlowEnded(flow.flow_id))
                return
        if not flow.out_queue and flow.blocked:
            flow.blocked = False
            events.append(FlowWritable(flow.flow_id))

    def _on_new(self, frame: Frame, now: float, events: list[Event]) -> None:
        if self.initiator:
            raise FrameError("NEW on a link opened by this node: flows are opened by the initiator")
        flow_id = frame.flow_id
        ref = frame.conn_ref
        assert ref is not None
        if flow_id in self.tables:
            raise FrameError(f"NEW for flow {flow_id} which exists")
        flow = _Flow(flow_id, self.window, attached=False)
        try:
            self.tables.add_pending(flow_id, flow, now)
        except TableFull:
            events.append(Count("table_full"))
            self.out.append(fr.encode_reset(flow_id, int(ResetReason.TABLE_FULL)))
            return
        events.append(FlowOpened(flow_id, ref, frame.flags))
        if frame.payload:
            self._on_data(flow, frame.payload, events)

    def _on_verified(self, frame: Frame, now: float, events: list[Event]) -> None:
        if not self.initiator:
            raise FrameError("VERIFIED on a link this node accepted: only the home verifies")
        if self.tables.verify(frame.flow_id) is not None:
            events.append(FlowVerified(frame.flow_id))
        # unknown: it crossed a RESET; ignored

    def _on_close(self, frame: Frame, now: float, events: list[Event]) -> None:
        flow = self.tables.get(frame.flow_id)
        if flow is None or flow.closed_in:
            return
        flow.closed_in = True
        if flow.attached:
            events.append(FlowEof(flow.flow_id))
        elif not flow.orphan:
            flow.eof_held = True
        if flow.closed_out:
            self._finish(flow, events)

    def _on_reset(self, frame: Frame, now: float, events: list[Event]) -> None:
        flow = self.tables.remove(frame.flow_id)
        if flow is None:
            return
        reason, _message = fr.parse_reset(frame.payload)
        events.append(FlowReset(flow.flow_id, reason))

    def _on_ping(self, frame: Frame, now: float, events: list[Event]) -> None:
        token, load = fr.parse_ping(frame.payload)
        self.last_heard = now
        events.append(PeerHeard(load, token))

    def _on_pong(self, frame: Frame, now: float, events: list[Event]) -> None:
        _token, load = fr.parse_ping(frame.payload)
        self.last_heard = now
        events.append(PeerHeard(load, None))

    # -- flows: what the driver may do -----------------------------------------------
    def open_flow(self, ref: ConnRef, initial: bytes, flags: int, now: float) -> tuple[int, bool]:
        """Initiator: announce a flow with NEW (+ the first bytes); it waits for VERIFIED.

        Returns (flow id, keep reading): False when the initial bytes exceed the
        credit window and the source must pause until FlowWritable. Raises
        TableFull when the tables are full and LinkError when flow ids ran out.
        """
        if not self.initiator:
            raise LinkError("flows are opened by the side that connected")
        if not self.authenticated or self.closed:
            raise LinkError("the link is not up")
        flow_id = self.next_flow_id
        if flow_id > fr.MAX_FLOW_ID:
            raise LinkError("flow ids of this link are used up; a new link takes new flows")
        flow = _Flow(flow_id, self.window, attached=True)
        self.tables.add_pending(flow_id, flow, now)  # TableFull propagates
        self.next_flow_id = flow_id + 1
        first = initial[: min(len(initial), self.window, fr.MAX_PAYLOAD)]
        flow.send_credit -= len(first)
        self.out.append(fr.encode_new(flow_id, ref, first, flags))
        rest = initial[len(first) :]
        keep_reading = self.send(flow_id, rest) if rest else True
        return flow_id, keep_reading

    def accept_flow(self, flow_id: int) -> list[Event]:
        """Home: the application is connected; VERIFIED, then the bytes held so far."""
        if self.initiator:
            raise LinkError("only the home side accepts flows")
        flow = self.tables.verify(flow_id)
        if flow is None:
            return []  # reset meanwhile
        self.out.append(fr.encode_verified(flow_id))
        flow.attached = True
        events: list[Event] = [FlowData(flow_id, chunk) for chunk in flow.held]
        flow.held = []
        if flow.eof_held:
            events.append(FlowEof(flow_id))
            if flow.closed_out:
                self._finish(flow, events)
        self.resume_flow(flow_id, PAUSE_WAIT)
        return events

    def send(self, flow_id: int, data: bytes) -> bool:
        """Bytes for the remote end of a flow; False: stop reading until FlowWritable."""
        n = len(data)  # compiled, a native length (`not data` is a call through Python)
        flow = self.tables.get(flow_id)
        if flow is None or flow.closed_out or flow.eof_queued or n == 0:
            return True  # gone or closed: the bytes are dropped (the caller learns by events)
        if flow.out_queue is None and n <= flow.send_credit and n <= fr.MAX_PAYLOAD:
            flow.send_credit -= n
            out = self.out
            out.append(fr.data_header(flow_id, n))
            out.append(data)
            return True
        if flow.out_queue is None:
            flow.out_queue = deque()
        flow.out_queue.append(data)
        self._flush_queue(flow)
        if flow.out_queue:
            flow.blocked = True
            return False
        return True

    def close(self, flow_id: int) -> None:
        """The local endpoint half-closed: CLOSE after the bytes still queued."""
        flow = self.tables.get(flow_id)
        if flow is None or flow.closed_out:
            return
        if flow.out_queue:
            flow.eof_queued = True
        else:
            self._send_close(flow)

    def detach(self, flow_id: int) -> None:
        """The local endpoint ended cleanly: CLOSE; later bytes of the remote are dropped."""
        flow = self.tables.get(flow_id)
        if flow is None:
            return
        flow.attached = False
        flow.orphan = True
        flow.held = []
        flow.paused &= ~(PAUSE_WAIT | PAUSE_PEER)  # the endpoint's reasons left with it
        self.close(flow_id)
        if flow.recv_owed and flow_id in self.tables:
            self._credit(flow)

    def reset(self, flow_id: int, reason: int, message: str = "") -> None:
        """Abort a flow from this side: RESET to the remote; the flow leaves the tables."""
        if self.tables.remove(flow_id) is None:
            return
        self.out.append(fr.encode_reset(flow_id, reason, message))

    def pause_flow(self, flow_id: int, reason: int) -> None:
        """Withhold the flow's credit: the local endpoint cannot take more now."""
        flow = self.tables.get(flow_id)
        if flow is not None:
            flow.paused |= reason

    def resume_flow(self, flow_id: int, reason: int) -> None:
        flow = self.tables.get(flow_id)
        if flow is None:
            return
        flow.paused &= ~reason
        if not flow.paused and flow.recv_owed:
            self._credit(flow)

    def has_flow(self, flow_id: int) -> bool:
        return flow_id in self.tables

    def flow_count(self) -> int:
        return len(self.tables)

    def flow_ids(self) -> list[int]:
        return [flow_id for flow_id, _flow in self.tables.items()]

    # -- link-level frames ----------------------------------------------------------
    def ping(self, load: int) -> None:
        if not self.authenticated or self.closed:
            return  # PING only on an authenticated link
        self.ping_token += 1
        self.out.append(fr.encode_ping(self.ping_token, load))

    def send_pong(self, token: int, load: int) -> None:
        if not self.authenticated or self.closed:
            return
        self.out.append(fr.encode_pong(token, load))

    def send_control(self, frame: bytes) -> None:
        """An encoded extension frame (directory, membership); only after login."""
        if not self.authenticated:
            raise LinkError("control frames only on an authenticated link")
        self.out.append(frame)

    # -- time and the end -----------------------------------------------------------------
    def next_deadline(self) -> float | None:
        """When `handle_timeout` has work: the login deadline, then the oldest pending flow."""
        if self.closed:
            return None
        if not self.authenticated:
            return self.handshake_deadline
        return self.tables.next_deadline()

    def handle_timeout(self, now: float) -> list[Event]:
        """Expire what is due at `now`. Raises LinkAuthError when login took too long."""
        if self.closed:
            return []
        if not self.authenticated:
            if now >= self.handshake_deadline:
                self.closed = True
                raise LinkAuthError(f"no login within {self.handshake_timeout:g}s")
            return []
        events: list[Event] = []
        for flow_id, _flow in self.tables.expire(now):
            events.append(Count("pending_timeouts"))
            self.out.append(fr.encode_reset(flow_id, int(ResetReason.PENDING_TIMEOUT)))
            events.append(FlowReset(flow_id, int(ResetReason.PENDING_TIMEOUT)))
        return events

    def connection_lost(self) -> list[Event]:
        """The underlying connection is gone: every flow is reset (LINK_CLOSED)."""
        self.closed = True
        events: list[Event] = [FlowReset(flow_id, _RESET_LINK) for flow_id in self.flow_ids()]
        self.tables.clear()
        self.out = []
        return events

    # -- internals -------------------------------------------------------------------------
    def _abort(self, flow: _Flow, reason: int, events: list[Event]) -> None:
        self.reset(flow.flow_id, reason)
        events.append(FlowReset(flow.flow_id, reason))

    def _credit(self, flow: _Flow) -> None:
        increment = flow.recv_owed
        flow.recv_owed = 0
        flow.recv_allowed += increment
        self.out.append(fr.encode_window(flow.flow_id, increment))

    def _flush_queue(self, flow: _Flow) -> None:
        queue = flow.out_queue
        assert queue is not None
        out = self.out
        while queue and flow.send_credit > 0:
            chunk = queue[0]
            room = min(flow.send_credit, fr.MAX_PAYLOAD)
            if len(chunk) <= room:
                queue.popleft()
            else:
                queue[0] = chunk[room:]
                chunk = chunk[:room]
            flow.send_credit -= len(chunk)
            out.append(fr.data_header(flow.flow_id, len(chunk)))
            out.append(chunk)
        if not queue:
            flow.out_queue = None
            if flow.eof_queued:
                flow.eof_queued = False
                self._send_close(flow)

    def _send_close(self, flow: _Flow) -> None:
        flow.closed_out = True
        self.out.append(fr.encode_close(flow.flow_id))
        if flow.closed_in:
            self.tables.remove(flow.flow_id)

    def _finish(self, flow: _Flow, events: list[Event]) -> None:
        self.tables.remove(flow.flow_id)
        events.append(FlowEnded(flow.flow_id))


def _equal(a: bytes, b: bytes) -> bool:
    return hmac.compare_digest(a, b)
