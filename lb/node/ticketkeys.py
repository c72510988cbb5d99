"""TLS session ticket keys a farm shares: resumption on any node and any worker.

A TLS server seals each session ticket with its ticket key. OpenSSL makes a
random key for every SSL_CTX, so each lb worker process had its own: a client
that reconnects to another node of the farm, or to another worker of the same
node (the kernel spreads connections over SO_REUSEPORT sockets), paid a full
handshake, about forty times a request's work. nginx shares one key among its
workers (they fork from one master) and takes a key file for a farm
(`ssl_session_ticket_key`); HAProxy takes `tls-ticket-keys`.

Every lb node of a farm already holds the farm's secret, so each derives the
same key from it, without a key file to copy around:

- `ticket_key(secret, farm, service, epoch)` (pure): 80 bytes, OpenSSL's
  layout (16-byte key name, 32-byte HMAC secret, 32-byte AES-256 key), from
  HMAC-SHA256 of the secret (HKDF, RFC 5869), one key per service and epoch;
- `ticket_epoch(now)`: the key changes every TICKET_KEY_PERIOD seconds of
  Unix time (an hour), so a key never seals tickets longer than that; a ticket
  sealed in the last epoch is refused after the change (one full handshake);
- `install_ticket_key(context, key)`: hands the key to the context's SSL_CTX
  (SSL_CTRL_SET_TLSEXT_TICKET_KEYS, the call behind nginx's key file). Python's
  ssl module has no call for it, so this reaches OpenSSL through ctypes, and
  refuses (returns False) when the object it finds is not the context's
  SSL_CTX: the context then keeps OpenSSL's own per-process key.

The derivation is pure (no clock, no I/O); only `install_ticket_key` touches
the ssl context. It must not hold keys beyond the context it is given.
"""

from __future__ import annotations

import ctypes
import hashlib
import hmac
import ssl
import sys
from typing import Final

__all__ = [
    "TICKET_KEY_BYTES",
    "TICKET_KEY_PERIOD",
    "install_ticket_key",
    "ticket_epoch",
    "ticket_key",
]

TICKET_KEY_BYTES: Final = 80  # key name 16 + HMAC secret 32 + AES-256 key 32 (OpenSSL)
TICKET_KEY_PERIOD: Final = 3600.0  # seconds of Unix time one key seals tickets
_SET_TICKET_KEYS: Final = 59  # SSL_CTRL_SET_TLSEXT_TICKET_KEYS
_GET_TICKET_KEYS: Final = 58  # SSL_CTRL_GET_TLSEXT_TICKET_KEYS


def ticket_epoch(now: float) -> int:
    """The key period Unix time `now` falls in."""
    return int(now // TICKET_KEY_PERIOD)


def ticket_key(secret: bytes, farm: str, service: str, epoch: int) -> bytes:
    """The farm's ticket key of `service` in `epoch` (HKDF-SHA256 of the farm secret)."""
    prk = hmac.new(b"lb tls session ticket key", secret, hashlib.sha256).digest()
    info = b"\0".join((farm.encode(), service.encode(), b"%d" % epoch))
    out = b""
    block = b""
    counter = 1
    while len(out) < TICKET_KEY_BYTES:
        block = hmac.new(prk, block + info + bytes((counter,)), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:TICKET_KEY_BYTES]


class _OpenSsl:
    """SSL_CTX_ctrl and SSL_CTX_get_options of the libssl the ssl module uses."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(ssl._ssl.__file__)  # type: ignore[attr-defined]
        self.ctrl = lib.SSL_CTX_ctrl
        self.ctrl.restype = ctypes.c_long
        self.ctrl.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_long, ctypes.c_void_p]
        self.get_options = lib.SSL_CTX_get_options
        self.get_options.restype = ctypes.c_uint64
        self.get_options.argtypes = [ctypes.c_void_p]


_openssl: _OpenSsl | None = None


def _ssl_ctx(context: ssl.SSLContext, openssl: _OpenSsl) -> int | None:
    """The SSL_CTX pointer of `context`: CPython keeps it right after the object's
    header; None unless OpenSSL reads the same options there as the context says."""
    if sys.implementation.name != "cpython":
        return None
    address = ctypes.c_void_p.from_address(id(context) + object.__basicsize__).value
    if not address:
        return None
    if openssl.get_options(address) != int(context.options):
        return None
    return address


def install_ticket_key(context: ssl.SSLContext, key: bytes) -> bool:
    """Seal and open the tickets of `context` with `key` (TICKET_KEY_BYTES); False when
    this Python's ssl context cannot be reached (it keeps OpenSSL's own key)."""
    global _openssl
    if len(key) != TICKET_KEY_BYTES:
        raise ValueError(f"a ticket key is {TICKET_KEY_BYTES} bytes, not {len(key)}")
    try:
        if _openssl is None:
            _openssl = _OpenSsl()
        address = _ssl_ctx(context, _openssl)
        if address is None:
            return False
        buf = ctypes.create_string_buffer(key, TICKET_KEY_BYTES)
        if _openssl.ctrl(address, _SET_TICKET_KEYS, TICKET_KEY_BYTES, buf) != 1:
            return False
        check = ctypes.create_string_buffer(TICKET_KEY_BYTES)
        got = _openssl.ctrl(address, _GET_TICKET_KEYS, TICKET_KEY_BYTES, check)
        return got == 1 and check.raw[:16] == key[:16]  # the key name reads back
    except (OSError, AttributeError):
        return False
