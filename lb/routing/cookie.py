"""The home cookie: a signed, expiring statement "this session's home is node N".

Any node of the farm verifies it without a table. Format and MAC input are
specified byte by byte in docs/routing.md. This module signs and verifies
strings only: it must not read the clock (``now`` is an argument), do I/O, or
raise from ``verify`` whatever the input.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Sequence

__all__ = [
    "COOKIE_NAME",
    "FORMAT_VERSION",
    "MAX_EXPIRES",
    "MAX_VALUE_LENGTH",
    "CookieKeyring",
    "derive_key",
    "key_id_of",
    "set_cookie_header_value",
]

COOKIE_NAME = "lbhome"
FORMAT_VERSION = "1"
MAX_VALUE_LENGTH = 200
MAX_EXPIRES = 10**15 - 1  # 15 decimal digits: far beyond any real expiry

_KEY_LABEL = b"lb home cookie key v1"
_KID_PERSON = b"lb-home-kid-v1"
_MAC_PREFIX = b"lb-home-cookie\x00"
_MAC_BYTES = 16
_MAC_CHARS = 22  # base64url of 16 bytes, no padding
_MAX_EXPIRES_DIGITS = len(str(MAX_EXPIRES))

_NODE_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TOKEN_RE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# RFC 6265 cookie-octet: %x21 / %x23-2B / %x2D-3A / %x3C-5B / %x5D-7E
_COOKIE_VALUE_RE = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]*")


def derive_key(secret: bytes) -> bytes:
    """The per-secret MAC key: HMAC-SHA256(secret, b"lb home cookie key v1")."""
    return hmac.digest(secret, _KEY_LABEL, "sha256")


def key_id_of(key: bytes) -> str:
    """8 lowercase hex chars naming a derived key: blake2b(key, 4 bytes, person)."""
    return hashlib.blake2b(key, digest_size=4, person=_KID_PERSON).hexdigest()


class CookieKeyring:
    """Signs home cookies with the current secret; verifies with it and the previous ones.

    ``previous`` secrets (for rotation) verify cookies but never sign.
    """

    __slots__ = ("_macs", "_prefix", "_verified", "key_id")

    key_id: str

    def __init__(self, farm: str, secret: bytes, previous: Sequence[bytes] = ()) -> None:
        if not isinstance(secret, bytes) or not secret:
            raise ValueError("the home cookie secret must be non-empty bytes")
        for old in previous:
            if not isinstance(old, bytes) or not old:
                raise ValueError("previous home cookie secrets must be non-empty bytes")
        self._prefix = _MAC_PREFIX + farm.encode("utf-8") + b"\x00"
        # value -> (node, expires) of recently verified cookies: a session sends the same
        # value on every request, so most verifications skip the HMAC (bounded, FIFO)
        self._verified: dict[str, tuple[str, int]] = {}
        # key id -> an HMAC-SHA256 object keyed and never updated: copied per MAC
        macs: dict[str, hmac.HMAC] = {}
        for raw in (secret, *previous):
            key = derive_key(raw)
            macs.setdefault(key_id_of(key), hmac.new(key, digestmod=hashlib.sha256))
        self._macs = macs
        self.key_id = next(iter(macs))

    @property
    def key_ids(self) -> tuple[str, ...]:
        """Key ids this keyring verifies, the current one first."""
        return tuple(self._macs)

    def _mac(self, base: hmac.HMAC, node: str, expires: str, kid: str) -> str:
        mac = base.copy()
        mac.update(self._prefix)
        mac.update(f"{node}\x00{expires}{kid}".encode("ascii"))
        tag = mac.digest()[:_MAC_BYTES]
        return base64.urlsafe_b64encode(tag).rstrip(b"=").decode("ascii")

    def sign(self, node: str, expires: int) -> str:
        """The cookie value ``1.<kid>.<node>.<expires>.<mac>`` (no name)."""
        if not isinstance(node, str) or _NODE_RE.fullmatch(node) is None:
            raise ValueError(f"node name must match [A-Za-z0-9_-]{{1,64}}, got {node!r}")
        if isinstance(expires, bool) or not isinstance(expires, int):
            raise ValueError(f"expires must be an int, got {expires!r}")
        if not 0 <= expires <= MAX_EXPIRES:
            raise ValueError(f"expires must be in [0, {MAX_EXPIRES}], got {expires}")
        exp = str(expires)
        kid = self.key_id
        mac = self._mac(self._macs[kid], node, exp, kid)
        return f"{FORMAT_VERSION}.{kid}.{node}.{exp}.{mac}"

    def verify(self, value: str, now: float) -> str | None:
        """The node named by a valid, unexpired cookie value; None for anything else."""
        try:
            hit = self._verified.get(value)
            if hit is not None:
                if hit[1] > now:
                    return hit[0]
                del self._verified[value]
                return None
            if not isinstance(value, str) or len(value) > MAX_VALUE_LENGTH or not value.isascii():
                return None
            parts = value.split(".")
            if len(parts) != 5:
                return None
            version, kid, node, exp, mac = parts
            base = self._macs.get(kid)
            if (
                base is None
                or version != FORMAT_VERSION
                or len(mac) != _MAC_CHARS
                # ASCII digits (value is ASCII), canonical: no sign, no leading zero
                or not exp.isdigit()
                or len(exp) > _MAX_EXPIRES_DIGITS
                or (exp[0] == "0" and exp != "0")
                or _NODE_RE.fullmatch(node) is None
            ):
                return None
            if not int(exp) > now:  # also rejects a NaN `now`
                return None
            # Comparing the base64url text (not decoded bytes) leaves no second
            # spelling of one MAC.
            if not hmac.compare_digest(self._mac(base, node, exp, kid), mac):
                return None
            verified = self._verified
            if len(verified) >= VERIFIED_CACHE_SIZE:
                del verified[next(iter(verified))]  # the oldest
            verified[value] = (node, int(exp))
            return node
        except Exception:  # defensive: verify is documented never to raise
            return None

    def verify_until(self, value: str, now: float) -> tuple[str, int] | None:
        """(node, expires) of a valid, unexpired cookie value, as ``verify`` checks it;
        None for anything else. Never raises."""
        if self.verify(value, now) is None:
            return None
        return self._verified.get(value)  # verify remembered it


VERIFIED_CACHE_SIZE = 4096  # verified cookie values remembered per keyring


def set_cookie_header_value(name: str, value: str, *, max_age: int, secure: bool) -> str:
    """A ``Set-Cookie`` header value: ``name=value; Path=/; Max-Age=n; HttpOnly; SameSite=Lax``."""
    if _TOKEN_RE.fullmatch(name) is None:
        raise ValueError(f"cookie name must be an HTTP token, got {name!r}")
    if _COOKIE_VALUE_RE.fullmatch(value) is None:
        raise ValueError(f"cookie value must be RFC 6265 cookie-octets, got {value!r}")
    if isinstance(max_age, bool) or not isinstance(max_age, int) or max_age < 0:
        raise ValueError(f"max_age must be an int >= 0, got {max_age!r}")
    header = f"{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax"
    if secure:
        header += "; Secure"
    return header
