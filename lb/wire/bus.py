"""The worker bus's own frame: a control frame a worker heard from a peer, passed on.

The bus between the workers of one node (lb.node.workers) speaks the link frame
codec. Besides DIRECTORY_UPDATE and PING it carries RELAYED (0x50): a membership
control frame (NODE_STATE, PROBE_REQUEST, PROBE_RESULT) that one worker received
on a link from `peer`, so every worker hears what the peer said. RELAYED is
never sent on a link. Payload: u8 N, N bytes peer node name (UTF-8), then the
complete inner frame (header and payload). APP_HEALTH (0x51): worker 0, the one
that checks the node's applications, tells the others whether they are up, so
all workers say the same to the farm. METRICS (0x52): a worker's metrics sample
for the admin listener of worker 0: u16 worker index, then a JSON object
(UTF-8). ADMIN (0x53): worker 0's admin listener asks its siblings to drain
(payload 1) or undrain (payload 2). OWN_STATE (0x54): worker 0, the node's
membership speaker, tells its siblings the node's own declaration and
incarnation (u8 state, u64 incarnation), so every worker says the same about
the node and none contradicts it. PLACE (0x55) and PLACED (0x56): a worker
asks worker 0 where a client source's new sessions go (the home it would
choose), and worker 0 says where they go for every worker (u8 S, S bytes
source, u8 H, H bytes home; PLACED adds the f64 wall-clock time of the
placement), so the parallel connections of one browser that the kernel
spread over several workers get one home (docs/routing.md). Pure codec: no
I/O.
"""

from __future__ import annotations

import math
import struct

from lb.errors import FrameError
from lb.wire import frames as fr
from lb.wire.membership import MAX_INCARNATION, MemberState

RELAYED = 0x50
APP_HEALTH = 0x51  # payload: u8 1 = the node's applications are up, 0 = one is down
METRICS = 0x52  # payload: u16 worker, JSON object
ADMIN = 0x53  # payload: u8 command
OWN_STATE = 0x54  # payload: u8 state (ALIVE, DRAINING or LEFT), u64 incarnation
PLACE = 0x55  # payload: u8 S, source, u8 H, home (the asker's choice)
PLACED = 0x56  # payload: u8 S, source, u8 H, home, f64 placed at (wall clock)
MAX_PLACE_SOURCE = 64  # bytes: the longest source key (lb.routing.memory.MAX_SOURCE)
ADMIN_DRAIN = 1
ADMIN_UNDRAIN = 2

_OWN_STATES = frozenset((MemberState.ALIVE, MemberState.DRAINING, MemberState.LEFT))
_STATE_INC = struct.Struct("!BQ")
_AT = struct.Struct("!d")


def encode_relayed(peer: str, inner: bytes) -> bytes:
    """A RELAYED frame carrying `inner` (an encoded frame) heard from `peer`."""
    name = peer.encode()
    if not 0 < len(name) <= fr.MAX_HELLO_NAME:
        raise ValueError(f"peer name must be 1..{fr.MAX_HELLO_NAME} bytes, got {peer!r}")
    return fr.encode_frame(fr.Frame(RELAYED, 0, 0, bytes((len(name),)) + name + inner))


def decode_relayed(payload: bytes) -> tuple[str, fr.Frame]:
    """RELAYED payload -> (peer, inner frame). FrameError when it does not add up."""
    if not payload:
        raise FrameError("RELAYED payload is empty")
    n = payload[0]
    if n == 0 or len(payload) < 1 + n:
        raise FrameError("RELAYED peer name runs past the payload")
    try:
        peer = payload[1 : 1 + n].decode()
    except UnicodeDecodeError:
        raise FrameError("RELAYED peer name is not UTF-8") from None
    decoded = fr.decode_frame(payload, 1 + n)
    if decoded is None or decoded[1] != len(payload):
        raise FrameError("RELAYED inner frame is not one complete frame")
    return peer, decoded[0]


def encode_app_health(healthy: bool) -> bytes:
    """APP_HEALTH: worker 0 tells its siblings whether the node's applications are up."""
    return fr.encode_frame(fr.Frame(APP_HEALTH, 0, 0, b"\x01" if healthy else b"\x00"))


def decode_app_health(payload: bytes) -> bool:
    if payload not in (b"\x00", b"\x01"):
        raise FrameError("APP_HEALTH payload is one byte, 0 or 1")
    return payload == b"\x01"


def encode_metrics(worker: int, sample: bytes) -> bytes:
    """METRICS: worker `worker`'s sample, a JSON object already encoded as UTF-8."""
    if not 0 <= worker <= 0xFFFF:
        raise ValueError(f"worker index out of range: {worker}")
    if len(sample) + 2 > fr.MAX_PAYLOAD:
        raise ValueError(f"a metrics sample of {len(sample)} bytes exceeds a frame")
    return fr.encode_frame(fr.Frame(METRICS, 0, 0, worker.to_bytes(2, "big") + sample))


def decode_metrics(payload: bytes) -> tuple[int, bytes]:
    """METRICS payload -> (worker, JSON bytes); the JSON is the receiver's to parse."""
    if len(payload) < 3 or payload[2:3] != b"{":
        raise FrameError("METRICS payload is u16 worker and a JSON object")
    return int.from_bytes(payload[:2], "big"), payload[2:]


def encode_admin(command: int) -> bytes:
    if command not in (ADMIN_DRAIN, ADMIN_UNDRAIN):
        raise ValueError(f"unknown admin command {command}")
    return fr.encode_frame(fr.Frame(ADMIN, 0, 0, bytes((command,))))


def decode_admin(payload: bytes) -> int:
    if len(payload) != 1 or payload[0] not in (ADMIN_DRAIN, ADMIN_UNDRAIN):
        raise FrameError("ADMIN payload is one byte, 1 (drain) or 2 (undrain)")
    return payload[0]


def encode_own_state(state: MemberState, incarnation: int) -> bytes:
    """OWN_STATE: worker 0 tells its siblings the node's declaration and incarnation."""
    if state not in _OWN_STATES:
        raise ValueError(f"a node declares ALIVE, DRAINING or LEFT, not {state!r}")
    if not 0 <= incarnation <= MAX_INCARNATION:
        raise ValueError(f"incarnation out of range: {incarnation}")
    return fr.encode_frame(fr.Frame(OWN_STATE, 0, 0, _STATE_INC.pack(state, incarnation)))


def decode_own_state(payload: bytes) -> tuple[MemberState, int]:
    """OWN_STATE payload -> (state, incarnation)."""
    if len(payload) != _STATE_INC.size:
        raise FrameError("OWN_STATE payload is u8 state and u64 incarnation")
    code, incarnation = _STATE_INC.unpack(payload)
    if code not in {s.value for s in _OWN_STATES}:
        raise FrameError(f"OWN_STATE state {code} is not ALIVE, DRAINING or LEFT")
    return MemberState(code), incarnation


def _source_and_home(source: str, home: str) -> bytes:
    s, h = source.encode(), home.encode()
    if not 0 < len(s) <= MAX_PLACE_SOURCE:
        raise ValueError(f"a source key is 1..{MAX_PLACE_SOURCE} bytes, got {source!r}")
    if not 0 < len(h) <= fr.MAX_HELLO_NAME:
        raise ValueError(f"a node name is 1..{fr.MAX_HELLO_NAME} bytes, got {home!r}")
    return bytes((len(s),)) + s + bytes((len(h),)) + h


def _read_source_and_home(payload: bytes, what: str) -> tuple[str, str, int]:
    """(source, home, offset after them) or FrameError."""
    if not payload:
        raise FrameError(f"{what} payload is empty")
    n = payload[0]
    if not 0 < n <= MAX_PLACE_SOURCE or len(payload) < 2 + n:
        raise FrameError(f"{what} source runs past the payload or is out of range")
    m = payload[1 + n]
    end = 2 + n + m
    if m == 0 or len(payload) < end:
        raise FrameError(f"{what} home runs past the payload or is empty")
    try:
        return payload[1 : 1 + n].decode(), payload[2 + n : end].decode(), end
    except UnicodeDecodeError:
        raise FrameError(f"{what} source or home is not UTF-8") from None


def encode_place(source: str, home: str) -> bytes:
    """PLACE: a worker asks worker 0 where `source`'s new sessions go; `home` is its choice."""
    return fr.encode_frame(fr.Frame(PLACE, 0, 0, _source_and_home(source, home)))


def decode_place(payload: bytes) -> tuple[str, str]:
    """PLACE payload -> (source, home)."""
    source, home, end = _read_source_and_home(payload, "PLACE")
    if end != len(payload):
        raise FrameError("PLACE payload has bytes after the home")
    return source, home


def encode_placed(source: str, home: str, at: float) -> bytes:
    """PLACED: worker 0 says `source`'s new sessions go to `home`, placed at `at` (wall)."""
    return fr.encode_frame(fr.Frame(PLACED, 0, 0, _source_and_home(source, home) + _AT.pack(at)))


def decode_placed(payload: bytes) -> tuple[str, str, float]:
    """PLACED payload -> (source, home, placed at)."""
    source, home, end = _read_source_and_home(payload, "PLACED")
    if len(payload) != end + _AT.size:
        raise FrameError("PLACED payload is source, home and an f64 time")
    (at,) = _AT.unpack_from(payload, end)
    if not math.isfinite(at):
        raise FrameError("PLACED time is not finite")
    return source, home, at


__all__ = [
    "ADMIN",
    "ADMIN_DRAIN",
    "ADMIN_UNDRAIN",
    "APP_HEALTH",
    "METRICS",
    "OWN_STATE",
    "PLACE",
    "PLACED",
    "RELAYED",
    "decode_admin",
    "decode_app_health",
    "decode_metrics",
    "decode_own_state",
    "decode_place",
    "decode_placed",
    "decode_relayed",
    "encode_admin",
    "encode_app_health",
    "encode_metrics",
    "encode_own_state",
    "encode_place",
    "encode_placed",
    "encode_relayed",
]
