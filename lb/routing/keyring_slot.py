"""The keyring a node's home-cookie extractors check cookies with, and what it verified.

A reload that renews the farm's secrets puts a new keyring in the slot; the
extractors keep the slot. The slot remembers (bounded) the values its keyring
verified, with their expiry, so a session's later requests cost a dict look-up in
compiled code, not a call into the keyring (lb.routing.cookie stays pure Python:
setup.py). A new keyring empties that memory: a value is never accepted on the
word of a keyring that is gone.

Pure: no clock (``now`` is an argument), no I/O; ``verify`` never raises.
"""

from __future__ import annotations

from lb.extract.verifier import CookieVerifier
from lb.routing.cookie import CookieKeyring

__all__ = ["MAX_REMEMBERED", "KeyringSlot"]

MAX_REMEMBERED = 4096  # verified values a slot remembers, then it starts over


class KeyringSlot(CookieVerifier):
    """The keyring home cookies are checked with now (``keyring``, settable); a
    CookieVerifier, so the home-cookie extractor calls it natively when compiled."""

    __slots__ = ("_keyring", "_verified")

    def __init__(self, keyring: CookieKeyring) -> None:
        self._keyring = keyring
        self._verified: dict[str, tuple[str, int]] = {}

    @property
    def keyring(self) -> CookieKeyring:
        return self._keyring

    @keyring.setter
    def keyring(self, keyring: CookieKeyring) -> None:
        self._keyring = keyring
        self._verified = {}

    def verify(self, value: object, now: float) -> str | None:
        """``keyring.verify``: the node a valid, unexpired cookie value names, else
        None (also for a value that is not a str). Never raises."""
        if type(value) is not str:
            return None
        hit = self._verified.get(value)
        if hit is not None and hit[1] > now:
            return hit[0]
        verified = self._keyring.verify_until(value, now)
        if verified is None:
            return None
        if len(self._verified) >= MAX_REMEMBERED:
            self._verified.clear()
        self._verified[value] = verified
        return verified[0]
