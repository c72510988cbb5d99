"""Payload codec of the membership control frames: NODE_STATE, PROBE_REQUEST, PROBE_RESULT.

These are link extension frames (types 0x48-0x4A, flow id 0) that carry the farm
membership gossip and the second-opinion probes; the layout is specified in
docs/membership.md. Pure: no asyncio, no sockets, no clock, no state.

Encoders are called by lb's own code and raise ValueError for out-of-range
arguments (a programming error). Decoders are fed network input and raise only
FrameError; every length is checked before it is used, so a decoder never reads
past its input nor does more work than the entry count bound allows.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from lb.errors import FrameError
from lb.wire.frames import Frame, encode_frame

__all__ = [
    "MAX_INCARNATION",
    "MAX_NAME",
    "MAX_NONCE",
    "MAX_STATES",
    "NODE_STATE",
    "PROBE_REQUEST",
    "PROBE_RESULT",
    "MemberState",
    "NodeState",
    "ProbeRequest",
    "ProbeResult",
    "encode_node_state",
    "encode_node_state_frame",
    "encode_probe_request",
    "encode_probe_request_frame",
    "encode_probe_result",
    "encode_probe_result_frame",
    "parse_membership_frame",
    "parse_node_state",
    "parse_probe_request",
    "parse_probe_result",
]

NODE_STATE = 0x48
PROBE_REQUEST = 0x49
PROBE_RESULT = 0x4A

MAX_NAME = 255  # bytes of UTF-8; the length field is one byte
MAX_STATES = 512  # entries per NODE_STATE frame: 512 * (1 + 255 + 1 + 8) bytes < MAX_PAYLOAD
MAX_INCARNATION = 2**64 - 1
MAX_NONCE = 2**64 - 1

_U16 = struct.Struct("!H")
_U64 = struct.Struct("!Q")
_STATE_INC = struct.Struct("!BQ")  # state, incarnation


class MemberState(enum.IntEnum):
    """The state of one farm member as one node sees it; the value is the wire code.

    UNKNOWN (0) is local only: a member not heard from yet. It is never sent;
    a frame that carries code 0 is rejected.
    """

    UNKNOWN = 0
    ALIVE = 1
    SUSPECT = 2
    DEAD = 3
    DRAINING = 4
    LEFT = 5


_WIRE_STATES: dict[int, MemberState] = {s.value: s for s in MemberState if s.value != 0}


@dataclass(frozen=True, slots=True)
class NodeState:
    """One gossip entry: ``node`` is in ``state`` at ``incarnation``."""

    node: str
    state: MemberState
    incarnation: int


@dataclass(frozen=True, slots=True)
class ProbeRequest:
    """Asks the receiver whether it hears ``target``; ``nonce`` matches the answer."""

    target: str
    nonce: int


@dataclass(frozen=True, slots=True)
class ProbeResult:
    """The answer to a PROBE_REQUEST: does the sender hear ``target``."""

    target: str
    nonce: int
    alive: bool


# --- encoders (our own code calls these: bad arguments are ValueError) -----------------------


def _name_bytes(name: str, what: str) -> bytes:
    if not isinstance(name, str):
        raise ValueError(f"{what} must be a str, got {type(name).__name__}")
    raw = name.encode("utf-8")  # UnicodeEncodeError (a ValueError) for a lone surrogate
    if not 0 < len(raw) <= MAX_NAME:
        raise ValueError(f"{what} must be 1..{MAX_NAME} bytes of UTF-8, got {len(raw)}")
    return raw


def _check_u64(value: int, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_NONCE:
        raise ValueError(f"{what} must be an int in 0..2**64-1, got {value!r}")
    return value


def encode_node_state(states: Iterable[NodeState]) -> bytes:
    """NODE_STATE payload: u16 count, then per entry name, state, incarnation."""
    entries = list(states)
    if len(entries) > MAX_STATES:
        raise ValueError(
            f"a NODE_STATE batch holds at most {MAX_STATES} entries, got {len(entries)}"
        )
    parts = [_U16.pack(len(entries))]
    for entry in entries:
        raw = _name_bytes(entry.node, "node name")
        code = int(entry.state)
        if code not in _WIRE_STATES:
            raise ValueError(f"state {entry.state!r} of {entry.node!r} is not sent on the wire")
        inc = _check_u64(entry.incarnation, "incarnation")
        parts.append(bytes((len(raw),)) + raw + _STATE_INC.pack(code, inc))
    return b"".join(parts)


def encode_probe_request(target: str, nonce: int) -> bytes:
    """PROBE_REQUEST payload: target name, u64 nonce."""
    raw = _name_bytes(target, "target")
    return bytes((len(raw),)) + raw + _U64.pack(_check_u64(nonce, "nonce"))


def encode_probe_result(target: str, nonce: int, alive: bool) -> bytes:
    """PROBE_RESULT payload: target name, u64 nonce, u8 alive (0 or 1)."""
    if not isinstance(alive, bool):
        raise ValueError(f"alive must be a bool, got {alive!r}")
    return encode_probe_request(target, nonce) + (b"\x01" if alive else b"\x00")


def encode_node_state_frame(states: Sequence[NodeState]) -> bytes:
    """Complete NODE_STATE frame bytes; more than MAX_STATES entries make several frames.

    An empty sequence gives one frame with a count of 0.
    """
    if len(states) <= MAX_STATES:
        return encode_frame(Frame(NODE_STATE, 0, 0, encode_node_state(states)))
    return b"".join(
        encode_frame(Frame(NODE_STATE, 0, 0, encode_node_state(states[i : i + MAX_STATES])))
        for i in range(0, len(states), MAX_STATES)
    )


def encode_probe_request_frame(target: str, nonce: int) -> bytes:
    """Complete PROBE_REQUEST frame bytes (flow id 0)."""
    return encode_frame(Frame(PROBE_REQUEST, 0, 0, encode_probe_request(target, nonce)))


def encode_probe_result_frame(target: str, nonce: int, alive: bool) -> bytes:
    """Complete PROBE_RESULT frame bytes (flow id 0)."""
    return encode_frame(Frame(PROBE_RESULT, 0, 0, encode_probe_result(target, nonce, alive)))


# --- decoders (network input: only FrameError) -----------------------------------------------

_Buffer = bytes | bytearray | memoryview


def _read_name(buf: _Buffer, pos: int, end: int, what: str) -> tuple[str, int]:
    """Name at ``buf[pos:]`` (u8 length + UTF-8) -> (name, position after it)."""
    if pos >= end:
        raise FrameError(f"{what}: the name length byte is missing")
    n = buf[pos]
    if n == 0:
        raise FrameError(f"{what}: empty name")
    stop = pos + 1 + n
    if stop > end:
        raise FrameError(f"{what}: a name of {n} bytes runs past the payload")
    try:
        name = bytes(buf[pos + 1 : stop]).decode("utf-8")
    except UnicodeDecodeError:
        raise FrameError(f"{what}: name is not valid UTF-8") from None
    return name, stop


def parse_node_state(payload: _Buffer) -> list[NodeState]:
    """NODE_STATE payload -> its entries, in order."""
    end = len(payload)
    if end < 2:
        raise FrameError(f"NODE_STATE payload of {end} bytes: the u16 count needs 2")
    (count,) = _U16.unpack_from(payload, 0)
    if count > MAX_STATES:
        raise FrameError(f"NODE_STATE count {count} exceeds {MAX_STATES}")
    pos = 2
    out: list[NodeState] = []
    for _ in range(count):
        name, pos = _read_name(payload, pos, end, "NODE_STATE")
        if pos + _STATE_INC.size > end:
            raise FrameError("NODE_STATE: an entry runs past the payload")
        code, inc = _STATE_INC.unpack_from(payload, pos)
        pos += _STATE_INC.size
        state = _WIRE_STATES.get(code)
        if state is None:
            raise FrameError(f"NODE_STATE: undefined state code {code} for {name!r}")
        out.append(NodeState(name, state, int(inc)))
    if pos != end:
        raise FrameError(f"NODE_STATE: {end - pos} bytes after the last of {count} entries")
    return out


def _parse_target_nonce(payload: _Buffer, what: str) -> tuple[str, int, int]:
    end = len(payload)
    target, pos = _read_name(payload, 0, end, what)
    if pos + 8 > end:
        raise FrameError(f"{what}: the u64 nonce runs past the payload")
    (nonce,) = _U64.unpack_from(payload, pos)
    return target, int(nonce), pos + 8


def parse_probe_request(payload: _Buffer) -> ProbeRequest:
    """PROBE_REQUEST payload -> ProbeRequest."""
    target, nonce, pos = _parse_target_nonce(payload, "PROBE_REQUEST")
    if pos != len(payload):
        raise FrameError(f"PROBE_REQUEST: {len(payload) - pos} bytes after the nonce")
    return ProbeRequest(target, nonce)


def parse_probe_result(payload: _Buffer) -> ProbeResult:
    """PROBE_RESULT payload -> ProbeResult."""
    target, nonce, pos = _parse_target_nonce(payload, "PROBE_RESULT")
    if pos + 1 != len(payload):
        raise FrameError(
            f"PROBE_RESULT payload is {len(payload)} bytes, its name length says {pos + 1}"
        )
    flag = payload[pos]
    if flag > 1:
        raise FrameError(f"PROBE_RESULT: alive byte must be 0 or 1, got {flag}")
    return ProbeResult(target, nonce, flag == 1)


def parse_membership_frame(frame: Frame) -> list[NodeState] | ProbeRequest | ProbeResult | None:
    """Decode a membership frame; None for a frame of any other type.

    Membership frames belong to the link itself: a flow id other than 0 is a
    FrameError. Flags are ignored.
    """
    t = frame.type
    if t not in (NODE_STATE, PROBE_REQUEST, PROBE_RESULT):
        return None
    if frame.flow_id != 0:
        raise FrameError(f"membership frame 0x{t:02x} with flow id {frame.flow_id}, must be 0")
    if t == NODE_STATE:
        return parse_node_state(frame.payload)
    if t == PROBE_REQUEST:
        return parse_probe_request(frame.payload)
    return parse_probe_result(frame.payload)
