"""The two clocks of lb, as two types a reader cannot mix up.

`Monotonic` is the event loop's clock (seconds, arbitrary origin): deadlines,
timeouts, membership timers, link liveness. `Wall` is Unix time (seconds since
the epoch): what crosses nodes or outlives a process — home cookie expiry,
directory entry expiry and versions, incarnations. The pure core takes them as
arguments (`now`); only lb.node reads them, through `monotonic()` and `wall()`.
"""

from __future__ import annotations

from time import monotonic as _monotonic
from time import time as _time
from typing import NewType

Monotonic = NewType("Monotonic", float)
Wall = NewType("Wall", float)


def monotonic() -> Monotonic:
    """The monotonic clock asyncio's loop uses (time.monotonic)."""
    return Monotonic(_monotonic())


def wall() -> Wall:
    """Unix time."""
    return Wall(_time())


__all__ = ["Monotonic", "Wall", "monotonic", "wall"]
