"""Placement memory: the home a client source's new sessions got, held for a short while.

A browser opens several connections at once, each without a cookie; each one is
a new session. ``PlacementMemory`` remembers, per client source (an IPv4
address or an IPv6 /64, see ``lb.routing.directory.source_key``), the home its
first new session was placed on, for ``hold`` seconds from that placement, so
the router gives its later new sessions the same home (docs/routing.md).

Bounded: at most ``max_entries`` sources. When every entry is still held, a new
source is not remembered (``remember`` returns False) and the router places it
by a hash of its address alone; held entries are never evicted early, so a flood
of addresses cannot undo the hold of a client in the middle of a page load.

Pure: no I/O, no clock (time is the ``now`` argument), no randomness.
"""

from __future__ import annotations

import math
from collections import OrderedDict

__all__ = ["DEFAULT_ENTRIES", "DEFAULT_HOLD", "MAX_SOURCE", "PlacementMemory"]

DEFAULT_ENTRIES = 16384
DEFAULT_HOLD = 10.0
MAX_SOURCE = 64
"""Longest source key remembered (an IPv6 /64 in text is at most 43 characters)."""


class PlacementMemory:
    """Client source -> (home, placed at), for ``hold`` seconds, at most ``max_entries``.

    An entry placed at ``at`` holds while ``at <= now < at + hold``: a clock that
    stepped back before ``at`` ends the hold instead of stretching it. Entries are
    kept in placement order and expired from the oldest, so each call costs
    O(1) plus the entries it expires.
    """

    __slots__ = ("_entries", "hold", "max_entries", "refused")

    def __init__(self, max_entries: int = DEFAULT_ENTRIES, hold: float = DEFAULT_HOLD) -> None:
        if isinstance(max_entries, bool) or not isinstance(max_entries, int) or max_entries < 0:
            raise ValueError(f"max_entries must be an int >= 0, got {max_entries!r}")
        if (
            isinstance(hold, bool)
            or not isinstance(hold, int | float)
            or not (hold > 0 and math.isfinite(hold))
        ):
            raise ValueError(f"hold must be a finite number of seconds > 0, got {hold!r}")
        self.max_entries = max_entries
        self.hold = float(hold)
        self.refused = 0  # placements not remembered because every entry was held
        self._entries: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _held(self, at: float, now: float) -> bool:
        return at <= now < at + self.hold

    def expire(self, now: float) -> None:
        """Drop the oldest entries whose hold is over at ``now``."""
        entries = self._entries
        while entries:
            at = next(iter(entries.values()))[1]
            if self._held(at, now):
                return
            entries.popitem(last=False)

    def recall(self, source: str, now: float) -> str | None:
        """The home remembered for ``source`` if its hold runs at ``now``, else None."""
        entry = self._entries.get(source)
        if entry is None:
            return None
        if self._held(entry[1], now):
            return entry[0]
        del self._entries[source]
        return None

    def held(self, source: str, now: float) -> tuple[str, float] | None:
        """(home, placed at) remembered for ``source`` if its hold runs at ``now``, else None."""
        entry = self._entries.get(source)
        if entry is None or not self._held(entry[1], now):
            return None
        return entry

    def remember(self, source: str, home: str, now: float) -> bool:
        """Hold ``home`` for ``source`` from ``now`` on (replacing what it had).

        False (nothing remembered) when the memory is full of held entries, when
        ``source`` is longer than MAX_SOURCE, or ``now`` is not finite.
        """
        if len(source) > MAX_SOURCE or not math.isfinite(now):
            return False
        entries = self._entries
        self.expire(now)
        if source in entries:
            del entries[source]  # re-inserted at the end: entries stay in placement order
        elif len(entries) >= self.max_entries:
            self.refused += 1
            return False
        entries[source] = (home, now)
        return True

    def forget(self, source: str) -> None:
        """Drop what is remembered for ``source`` (nothing if absent)."""
        self._entries.pop(source, None)

    def snapshot(self, now: float) -> dict[str, str]:
        """Held entries at ``now``: source -> home, oldest first (for inspection)."""
        return {s: home for s, (home, at) in self._entries.items() if self._held(at, now)}
