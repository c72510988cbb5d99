"""Typed events a LinkConnection reports to its driver.

Plain slotted classes, made once per frame at most; the DATA fast path makes
exactly one (`FlowData`). Pure data: no behaviour, no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

from lb.wire.frames import ConnRef, Frame


@dataclass(slots=True)
class Authenticated:
    """The handshake finished: the peer proved it is `peer` of this farm."""

    peer: str


@dataclass(slots=True)
class FlowOpened:
    """Home side: the entry announced a new flow (NEW). The driver connects the
    application and calls `accept_flow`, or `reset` with a reason."""

    flow_id: int
    ref: ConnRef
    flags: int


@dataclass(slots=True)
class FlowVerified:
    """Entry side: the home connected its application (VERIFIED); the flow is forwarded."""

    flow_id: int


@dataclass(slots=True)
class FlowData:
    """Bytes of a flow for the local endpoint."""

    flow_id: int
    data: bytes


@dataclass(slots=True)
class FlowEof:
    """The remote half-closed the flow (CLOSE): the local endpoint gets EOF."""

    flow_id: int


@dataclass(slots=True)
class FlowReset:
    """The flow was aborted (a RESET from the remote, a protocol violation on the flow,
    a pending timeout, or the link itself closed): abort the local endpoint."""

    flow_id: int
    reason: int


@dataclass(slots=True)
class FlowWritable:
    """Credit arrived and the flow's send queue is empty: resume reading its source."""

    flow_id: int


@dataclass(slots=True)
class FlowEnded:
    """The flow finished cleanly both ways and left the tables."""

    flow_id: int


@dataclass(slots=True)
class PeerHeard:
    """A PING or PONG: the peer is alive, and this is its load. A PING wants a PONG."""

    load: int
    ping_token: int | None  # set for a PING: answer with `send_pong(token, load)`


@dataclass(slots=True)
class ControlFrame:
    """An extension frame (type >= 0x40) on the authenticated link: directory, membership."""

    frame: Frame


@dataclass(slots=True)
class Count:
    """Something worth a counter happened (table full, window violation, pending timeout)."""

    name: str


Event = (
    Authenticated
    | FlowOpened
    | FlowVerified
    | FlowData
    | FlowEof
    | FlowReset
    | FlowWritable
    | FlowEnded
    | PeerHeard
    | ControlFrame
    | Count
)

__all__ = [
    "Authenticated",
    "ControlFrame",
    "Count",
    "Event",
    "FlowData",
    "FlowEnded",
    "FlowEof",
    "FlowOpened",
    "FlowReset",
    "FlowVerified",
    "FlowWritable",
    "PeerHeard",
]
