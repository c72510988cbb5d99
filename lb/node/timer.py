"""One timer for the whole node, armed from the state machines' next deadlines.

Drivers say when they next need attention (`at(when)`); the timer keeps one
`loop.call_at` for the earliest such moment, rounded up to `RESOLUTION` so a
burst of deadlines costs one wake-up. On firing it calls the node's sweep,
which handles everything due and returns the next deadline.

A deadline is judged only after the loop has polled its sockets since the
process last stalled. The loop runs timers before it reads what arrived while
a callback kept the process busy (a slow plugin, a long garbage collection, a
CPU stall), so a sweep right after such a stall would take this process's own
silence for its peers' (every peer suspected at once) and its clients' (heads
timed out that sit unread in the socket). So the timer first lets the loop
poll (it fires again one `RESOLUTION` later), and it sweeps when that second
firing is on time; a firing more than `LATE` behind its moment means the
process stalled again, maybe before that poll, so it lets the loop poll once
more (at most `MAX_POLLS` times in a row: an overloaded process still sweeps).
Deadlines move by 10-20 ms; wake-ups double, which at one sweep per ping
interval is nothing.

A firing more than `STALL_REPORT` behind its moment is also handed to
`on_stall(seconds)`: the node tells the operator that its process stopped
serving that long (a plugin's synchronous call is the usual cause), since its
peers will have suspected it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from lb.clock import Monotonic

T = TypeVar("T", bound=Hashable)

RESOLUTION = 0.01  # seconds: deadlines closer together than this share one wake-up
LATE = 0.05  # seconds behind its moment: the timer fired after a stall of the process
MAX_POLLS = 4  # polls the timer lets the loop make before one sweep, at most
STALL_REPORT = 0.25  # seconds behind its moment: a stall worth telling the operator


class Timer:
    """A single re-armable deadline on the event loop."""

    __slots__ = ("_handle", "_loop", "_on_stall", "_polls", "_sweep", "_when")

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        sweep: Callable[[Monotonic], float | None],
        on_stall: Callable[[float], None] | None = None,
    ) -> None:
        self._loop = loop
        self._sweep = sweep  # handles what is due at `now`; returns the next deadline
        self._on_stall = on_stall  # told how long the process stalled, past STALL_REPORT
        self._handle: asyncio.TimerHandle | None = None
        self._when: float | None = None
        self._polls = 0  # polls let happen since the deadline came due

    def at(self, when: float | None) -> None:
        """Make sure the sweep runs no later than `when` (None: nothing to do)."""
        if when is None:
            return
        when = math.ceil(when / RESOLUTION) * RESOLUTION
        if self._when is not None and self._when <= when:
            return
        if self._handle is not None:
            self._handle.cancel()
        self._when = when
        self._handle = self._loop.call_at(when, self._fire)

    def _fire(self) -> None:
        due = self._when
        self._handle = None
        self._when = None
        now = self._loop.time()
        polls = self._polls
        stalled = due is not None and now - due > LATE
        if stalled and due is not None and now - due > STALL_REPORT and self._on_stall is not None:
            self._on_stall(now - due)
        if (polls == 0 or stalled) and polls < MAX_POLLS:
            # first read what arrived meanwhile: a later timer (not due in this pass of
            # the loop's timers) comes after one poll of the sockets
            self._polls = polls + 1
            self.at(now + RESOLUTION)
            return
        self._polls = 0
        self.at(self._sweep(Monotonic(now)))

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
        self._handle = None
        self._when = None
        self._polls = 0


class Deadlines(Generic[T]):
    """Objects with deadlines that arrive in order (a constant timeout from `now`).

    Insertion order is deadline order, so the earliest is the first and expiry
    stops at the first one not yet due. A deadline earlier than its predecessor's
    (the clock stepped back) is raised to it.
    """

    __slots__ = ("_items", "_last")

    def __init__(self) -> None:
        self._items: dict[T, float] = {}
        self._last = -math.inf

    def add(self, item: T, deadline: float) -> float:
        deadline = max(deadline, self._last)
        self._last = deadline
        self._items.pop(item, None)
        self._items[item] = deadline
        return deadline

    def discard(self, item: T) -> None:
        self._items.pop(item, None)

    def __contains__(self, item: object) -> bool:
        return item in self._items

    def __len__(self) -> int:
        return len(self._items)

    def next_deadline(self) -> float | None:
        for deadline in self._items.values():
            return deadline
        return None

    def pop_due(self, now: float) -> list[T]:
        """Remove and return the items whose deadline is <= now, earliest first."""
        due: list[T] = []
        items = self._items
        for item, deadline in items.items():
            if deadline > now:
                break
            due.append(item)
        for item in due:
            del items[item]
        return due


__all__ = ["RESOLUTION", "Deadlines", "Timer"]
