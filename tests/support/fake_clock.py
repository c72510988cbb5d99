"""A fake monotonic clock for tests of sans-IO state machines.

Time moves only when a test says so (`advance`, `set`); nothing sleeps. It must
not read the real clock.
"""

from __future__ import annotations


class FakeClock:
    """Seconds as a float, starting at `start`; never goes backwards."""

    __slots__ = ("now",)

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move forward by `seconds` (>= 0); the new time."""
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds})")
        self.now += seconds
        return self.now

    def set(self, when: float) -> float:
        """Jump to `when` (not before now); the new time."""
        if when < self.now:
            raise ValueError(f"a clock does not go back ({when} < {self.now})")
        self.now = when
        return self.now


__all__ = ["FakeClock"]
