"""lb.node.node.Node: the idle sweeps as the node's one timer runs them, driven with the
times a busy node fires at (late, uneven), never with a clock.

A connection silent since its accept is closed no later than idle_timeout plus two
sweep gaps after it: one until a sweep sees its accept, one past the timeout. A gap
is the idle interval, plus at most one timer resolution (a sweep never asks for a
moment sooner than that) and the lateness of the firing. That
holds for a connection the node takes in its first second too (a client of a node
that just started, or the first request of a test farm): the first idle sweep comes
one idle interval after the node is made, not a fixed second later.

A real Node in this process (made, not started: no socket is opened); its `_sweep`
is called with chosen times, and a stand-in client sits in the entry's clients.
"""

from __future__ import annotations

import asyncio
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from lb.clock import Monotonic
from lb.config import parse_config, select_node
from lb.node.node import Node
from lb.node.splice import silent_for
from lb.node.timer import RESOLUTION
from tests.support.config_data import base

IDLE = 2.0  # idle_timeout; its sweep interval is IDLE / 8
LATE = 0.1  # the most a timer firing comes after its moment here (a poll, a busy loop)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def node_config() -> Any:
    data = base()
    data["limits"] = {"idle_timeout": IDLE}
    for node in data["nodes"]:
        node["forward"] = f"127.0.0.1:{free_port()}"
        node["listen"]["web"] = [f"127.0.0.1:{free_port()}"]
        node["apps"]["web"] = f"127.0.0.1:{free_port()}"
    cfg = parse_config(data, base_dir=Path("."))
    return cfg, select_node(cfg, "a")


CONFIG = node_config()


@dataclass(eq=False)
class Client:
    """What the idle sweep sees of a client connection: the flag its bytes set."""

    active: bool = True  # its accept counts as a byte
    quiet_since: float = 0.0
    closed_at: float | None = None

    def idle_tick(self, now: float, timeout: float) -> None:
        if self.closed_at is None and silent_for(self, now, timeout):
            self.closed_at = now


def closed_after(accept_after: float, lateness: list[float]) -> tuple[float, float]:
    """(seconds from accept to close, the idle interval) of a client accepted
    `accept_after` seconds after the node was made, silent from then on; the timer
    fires each time `lateness[k]` after the moment the sweep before asked for."""

    async def run() -> tuple[float, float]:
        node = Node(*CONFIG)
        try:
            start = node.loop.time()
            accepted = start + accept_after
            client = Client()
            now = start
            for late in lateness * 100:
                if client not in node.entry.clients and now >= accepted:
                    node.entry.clients.add(client)  # type: ignore[arg-type]
                wanted = node._sweep(Monotonic(now))
                assert wanted is not None
                if client.closed_at is not None:
                    return client.closed_at - accepted, node.entry.idle_interval
                now = max(wanted + late, now)
            raise AssertionError("never closed")
        finally:
            node.timer.cancel()

    return asyncio.run(run())


def test_a_connection_of_the_first_second_is_closed_like_any_other() -> None:
    """Accepted 10 ms after the node was made, silent, every firing 20 ms late: closed
    2.34 s after its accept (the sweep that sees it comes within one gap, the close
    within one gap past 2 s from there). With the first idle sweep a fixed second
    after the node was made, the silence counted from that sweep: closed 3.10 s after
    the accept, past what a test of a fresh farm allows (3 s for idle_timeout 2 s)."""
    took, interval = closed_after(0.01, [0.02])
    assert interval == IDLE / 8
    assert IDLE <= took <= IDLE + 2 * (interval + RESOLUTION + 0.02), took


@settings(max_examples=40, deadline=None)
@given(
    accept_after=st.floats(min_value=0.0, max_value=3.0),
    lateness=st.lists(st.floats(min_value=0.0, max_value=LATE), min_size=1, max_size=20),
)
def test_a_silent_connection_is_closed_within_two_sweep_gaps_past_the_timeout(
    accept_after: float, lateness: list[float]
) -> None:
    took, interval = closed_after(accept_after, lateness)
    assert IDLE <= took <= IDLE + 2 * (interval + RESOLUTION + LATE), took
