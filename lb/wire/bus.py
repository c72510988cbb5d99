"""The worker bus's own frame: a control frame a worker heard from a peer, passed on.

The bus between the workers of one node (lb.node.workers) speaks the link frame
codec. Besides DIRECTORY_UPDATE and PING it carries RELAYED (0x50): a membership
control frame (NODE_STATE, PROBE_REQUEST, PROBE_RESULT) that one worker received
on a link from `peer`, so every worker hears what the peer said. RELAYED is
never sent on a link. Payload: u8 N, N bytes peer node name (UTF-8), then the
complete inner frame (header and payload). APP_HEALTH (0x51): worker 0, the one
that checks the node's applications, tells the others whether they are up, so
all workers say the same to the farm. Pure codec: no I/O.
"""

from __future__ import annotations

from lb.errors import FrameError
from lb.wire import frames as fr

RELAYED = 0x50
APP_HEALTH = 0x51  # payload: u8 1 = the node's applications are up, 0 = one is down


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


__all__ = [
    "APP_HEALTH",
    "RELAYED",
    "decode_app_health",
    "decode_relayed",
    "encode_app_health",
    "encode_relayed",
]
