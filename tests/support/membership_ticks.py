"""Driving a pure lb.cluster.membership machine through time in unit tests."""

from __future__ import annotations

from lb.cluster.membership import Membership

TICK = 0.1  # seconds between ticks, as the node's timer sweeps about


def run_ticks(m: Membership, start: float, stop: float, heard: tuple[str, ...] = ()) -> None:
    """Tick from start to stop (exclusive) every TICK, hearing ``heard`` at each tick and
    dropping the actions."""
    k = 0
    while (now := start + k * TICK) < stop:
        for p in heard:
            m.heard(p, now)
        m.tick(now)
        m.take_actions()
        k += 1
