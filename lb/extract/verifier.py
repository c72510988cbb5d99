"""``CookieVerifier``: a base class for what checks home cookie values, native when compiled.

lb.extract.api.HomeCookieVerifier is the protocol a ``home-cookie`` extractor's
keyring follows. A checker that subclasses ``CookieVerifier`` (the node's
lb.routing.keyring_slot.KeyringSlot) is called by the extractor as a native method
in the compiled build (setup.py), not looked up and called through Python; any
other object that follows the protocol still works. Pure: no I/O, no clock.
"""

from __future__ import annotations

__all__ = ["CookieVerifier"]


class CookieVerifier:
    """What checks a home cookie value (lb.extract.api.HomeCookieVerifier), as a class."""

    __slots__ = ()

    def verify(self, value: object, now: float) -> str | None:
        """The node named by a valid, unexpired cookie value; None for anything else.
        Never raises."""
        raise NotImplementedError
