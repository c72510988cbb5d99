"""Typed events a LinkConnection reports to its driver.

Plain slotted classes, made once per frame at most; the DATA fast path makes
exactly one (`FlowData`). Pure data: no behaviour, no I/O. They compare by value
and show their fields in their repr as dataclasses do, but are written out: a
compiled dataclass is built through the interpreted __init__ that the dataclass
decorator generates, about ten times the instructions of a native constructor,
once per DATA frame on each side of a link.
"""

from __future__ import annotations

from typing import ClassVar

from mypy_extensions import mypyc_attr

from lb.wire.frames import ConnRef, Frame


@mypyc_attr(acyclic=True)
class _Event:
    """Value semantics: equal when of the same type with equal fields (`__match_args__`)."""

    __slots__ = ()
    __match_args__: ClassVar[tuple[str, ...]] = ()  # the fields, in order

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__match_args__)

    __hash__ = None  # type: ignore[assignment]  # mutable: compared by value, not hashable

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__match_args__)
        return f"{type(self).__name__}({fields})"


@mypyc_attr(acyclic=True)
class Authenticated(_Event):
    """The handshake finished: the peer proved it is `peer` of this farm."""

    __slots__ = ("peer",)
    __match_args__ = ("peer",)

    def __init__(self, peer: str) -> None:
        self.peer = peer


@mypyc_attr(acyclic=True)
class FlowOpened(_Event):
    """Home side: the entry announced a new flow (NEW). The driver connects the
    application and calls `accept_flow`, or `reset` with a reason."""

    __slots__ = ("flags", "flow_id", "ref")
    __match_args__ = ("flow_id", "ref", "flags")

    def __init__(self, flow_id: int, ref: ConnRef, flags: int) -> None:
        self.flow_id = flow_id
        self.ref = ref
        self.flags = flags


@mypyc_attr(acyclic=True)
class FlowVerified(_Event):
    """Entry side: the home connected its application (VERIFIED); the flow is forwarded."""

    __slots__ = ("flow_id",)
    __match_args__ = ("flow_id",)

    def __init__(self, flow_id: int) -> None:
        self.flow_id = flow_id


@mypyc_attr(acyclic=True, free_list_len=1)  # one per DATA frame: reused
class FlowData(_Event):
    """Bytes of a flow for the local endpoint."""

    __slots__ = ("data", "flow_id")
    __match_args__ = ("flow_id", "data")

    def __init__(self, flow_id: int, data: bytes) -> None:
        self.flow_id = flow_id
        self.data = data


@mypyc_attr(acyclic=True)
class FlowEof(_Event):
    """The remote half-closed the flow (CLOSE): the local endpoint gets EOF."""

    __slots__ = ("flow_id",)
    __match_args__ = ("flow_id",)

    def __init__(self, flow_id: int) -> None:
        self.flow_id = flow_id


@mypyc_attr(acyclic=True)
class FlowReset(_Event):
    """The flow was aborted (a RESET from the remote, a protocol violation on the flow,
    a pending timeout, or the link itself closed): abort the local endpoint."""

    __slots__ = ("flow_id", "reason")
    __match_args__ = ("flow_id", "reason")

    def __init__(self, flow_id: int, reason: int) -> None:
        self.flow_id = flow_id
        self.reason = reason


@mypyc_attr(acyclic=True)
class FlowWritable(_Event):
    """Credit arrived and the flow's send queue is empty: resume reading its source."""

    __slots__ = ("flow_id",)
    __match_args__ = ("flow_id",)

    def __init__(self, flow_id: int) -> None:
        self.flow_id = flow_id


@mypyc_attr(acyclic=True)
class FlowEnded(_Event):
    """The flow finished cleanly both ways and left the tables."""

    __slots__ = ("flow_id",)
    __match_args__ = ("flow_id",)

    def __init__(self, flow_id: int) -> None:
        self.flow_id = flow_id


@mypyc_attr(acyclic=True)
class PeerHeard(_Event):
    """A PING or PONG: the peer is alive, and this is its load. A PING wants a PONG."""

    __slots__ = ("load", "ping_token")
    __match_args__ = ("load", "ping_token")

    def __init__(self, load: int, ping_token: int | None) -> None:
        self.load = load
        self.ping_token = ping_token  # set for a PING: answer with `send_pong(token, load)`


@mypyc_attr(acyclic=True)
class ControlFrame(_Event):
    """An extension frame (type >= 0x40) on the authenticated link: directory, membership."""

    __slots__ = ("frame",)
    __match_args__ = ("frame",)

    def __init__(self, frame: Frame) -> None:
        self.frame = frame


@mypyc_attr(acyclic=True)
class Count(_Event):
    """Something worth a counter happened (table full, window violation, pending timeout)."""

    __slots__ = ("name",)
    __match_args__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name


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
