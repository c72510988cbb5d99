"""The link handshake's cryptography: the link key and the AUTH proofs.

docs/protocol.md (links) is the spec. Pure functions: no I/O, no randomness
(nonces are passed in).
"""

from __future__ import annotations

import enum
import hashlib
import hmac

_AUTH_LABEL = b"lb link auth v2\x00"


class Role(enum.IntEnum):
    """Which side of a link: the one that connected, or the one that accepted."""

    INITIATOR = 0x01  # connected; opens the link's flows (the entry side)
    RESPONDER = 0x02  # accepted; home of the link's flows


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
    """The AUTH proof of one side of one link.

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


def node_from_certificate(peercert: object, farm: str) -> str | None:
    """The node a peer certificate names: its subjectAltName URI `lb://<farm>/<node>`.

    `peercert` is what Python's ssl gives for a verified peer (a dict with
    "subjectAltName"). None when no URI of this farm is there, or more than one.
    """
    if not isinstance(peercert, dict):
        return None
    prefix = f"lb://{farm}/"
    names = [
        value[len(prefix) :]
        for kind, value in peercert.get("subjectAltName", ())
        if kind == "URI" and isinstance(value, str) and value.startswith(prefix)
    ]
    if len(names) != 1 or not names[0] or "/" in names[0]:
        return None
    return names[0]


__all__ = ["Role", "auth_mac", "link_key", "node_from_certificate"]
