"""Health of the local applications: rise/fall counting, as HAProxy's `check`.

An application is up until `fall` checks (active TCP connects, or real
connects that failed) in a row say otherwise, and down until `rise` checks in
a row pass. `observe(ok)` returns the new state when it changed. Pure: no
I/O, no clock.
"""

from __future__ import annotations

__all__ = ["AppHealth"]


class AppHealth:
    """The up/down state of one application, from a stream of check results."""

    __slots__ = ("_fails", "_passes", "fall", "rise", "up")

    def __init__(self, rise: int, fall: int) -> None:
        if rise < 1 or fall < 1:
            raise ValueError(f"rise and fall must be >= 1, got {rise}, {fall}")
        self.rise = rise
        self.fall = fall
        self.up = True  # an application is believed up until checks say otherwise
        self._fails = 0
        self._passes = 0

    def observe(self, ok: bool) -> bool | None:
        """One check result; the new state (True up, False down) if it changed, else None."""
        if ok:
            self._fails = 0
            if self.up:
                return None
            self._passes += 1
            if self._passes >= self.rise:
                self.up = True
                self._passes = 0
                return True
            return None
        self._passes = 0
        if not self.up:
            return None
        self._fails += 1
        if self._fails >= self.fall:
            self.up = False
            self._fails = 0
            return False
        return None
