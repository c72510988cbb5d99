"""The node's one timer on real event loops and real sockets (lb.node.timer).

Each test runs on uvloop, as a node does, and on asyncio's own loop: the order
in which a loop runs due timers and reads its sockets differs between them, and
the timer must hold on both.
"""

from __future__ import annotations

import asyncio
import math
import socket
import time
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from lb.clock import Monotonic
from lb.node.timer import RESOLUTION, Timer

Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=["uvloop", "asyncio"])
def run(request: pytest.FixtureRequest) -> Run:
    return uvloop.run if request.param == "uvloop" else asyncio.run  # type: ignore[return-value]


class Recorder(asyncio.Protocol):
    """Keeps what arrives, and calls `on_data` with it."""

    def __init__(self, on_data: Callable[[bytes], None] | None = None) -> None:
        self.received: list[bytes] = []
        self.on_data = on_data

    def data_received(self, data: bytes) -> None:
        self.received.append(data)
        if self.on_data is not None:
            self.on_data(data)


Start = Callable[[asyncio.AbstractEventLoop, Timer, socket.socket], None]


async def what_the_sweep_saw(start: Start, arm_in_stall: bool) -> list[list[bytes]]:
    """A peer's socket and a client's. The client's first bytes run a callback that keeps
    the process busy 0.3 s (a slow plugin) while the peer's bytes arrive; with
    `arm_in_stall` that callback also arms the timer 50 ms on, so the deadline passes
    during the stall. `start(loop, timer, client)` sends the client's bytes (and may arm
    the timer itself). Returns what the peer had received at each sweep."""
    loop = asyncio.get_running_loop()
    peer_near, peer_far = socket.socketpair()
    client_near, client_far = socket.socketpair()
    seen_by_sweep: list[list[bytes]] = []
    swept = asyncio.Event()
    peer = Recorder()

    def sweep(now: Monotonic) -> float | None:
        seen_by_sweep.append(list(peer.received))
        swept.set()
        return None

    timer = Timer(loop, sweep)

    def stall(_data: bytes) -> None:
        if arm_in_stall:
            timer.at(loop.time() + 0.05)
        peer_far.send(b"ping")
        time.sleep(0.3)

    try:
        await loop.create_connection(lambda: peer, sock=peer_near)
        await loop.create_connection(lambda: Recorder(stall), sock=client_near)
        start(loop, timer, client_far)
        await asyncio.wait_for(swept.wait(), 5)
        return seen_by_sweep
    finally:
        timer.cancel()
        for s in (peer_far, client_far):
            s.close()


def test_a_sweep_after_a_stall_sees_what_arrived_during_the_stall(run: Run) -> None:
    """A callback keeps the process busy past the timer's deadline while a peer's
    bytes arrive on another socket: the sweep runs after they were read."""

    async def main() -> None:
        def start(loop: asyncio.AbstractEventLoop, timer: Timer, client: socket.socket) -> None:
            client.send(b"GET /slow")

        assert await what_the_sweep_saw(start, arm_in_stall=True) == [[b"ping"]]

    run(main())


def test_a_stall_after_the_timer_let_the_loop_poll_makes_it_poll_again(run: Run) -> None:
    """The timer came due and let the loop poll; then, before its sweep, a callback
    kept the process busy while a peer's bytes arrived: the sweep still sees them."""

    async def main() -> None:
        def start(loop: asyncio.AbstractEventLoop, timer: Timer, client: socket.socket) -> None:
            due = math.ceil((loop.time() + 0.05) / RESOLUTION) * RESOLUTION
            timer.at(due)
            # just after the timer's first firing, a request comes whose handling blocks
            loop.call_at(due + 0.002, client.send, b"GET /slow")

        assert await what_the_sweep_saw(start, arm_in_stall=False) == [[b"ping"]]

    run(main())


def test_the_sweep_runs_once_per_deadline_a_little_after_it(run: Run) -> None:
    """Waited for, not timed: a process stalled around the deadline makes the timer poll
    again before it sweeps (up to MAX_POLLS times, each as long as the stall), so no
    fixed wait after the deadline is sure to see the sweep on a busy machine."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        swept = asyncio.Event()

        def sweep(now: Monotonic) -> float | None:
            fired.append(now)
            swept.set()
            return None

        timer = Timer(loop, sweep)
        try:
            due = loop.time() + 0.05
            timer.at(due)
            timer.at(due + 1.0)  # a later deadline does not move an earlier one
            await asyncio.wait_for(swept.wait(), 5)
            assert due <= fired[0] < due + 1.0, (fired, due)
            await asyncio.sleep(0.1)
            assert len(fired) == 1  # the sweep asked for nothing more
        finally:
            timer.cancel()

    run(main())


def test_a_sweep_returns_its_next_deadline(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        done = asyncio.Event()

        def sweep(now: Monotonic) -> float | None:
            fired.append(now)
            if len(fired) == 3:
                done.set()
                return None
            return now + 0.02

        timer = Timer(loop, sweep)
        try:
            timer.at(loop.time())
            await asyncio.wait_for(done.wait(), 5)
            assert fired == sorted(fired) and len(fired) == 3
            await asyncio.sleep(0.1)
            assert len(fired) == 3  # None: nothing more to do
        finally:
            timer.cancel()

    run(main())


def test_cancel_stops_a_pending_sweep(run: Run) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        fired: list[float] = []
        timer = Timer(loop, lambda now: fired.append(now) or None)
        timer.at(loop.time() + 0.02)
        timer.cancel()
        await asyncio.sleep(0.1)
        assert fired == []

    run(main())


def test_a_stall_past_the_report_bound_is_handed_to_on_stall_and_a_short_one_is_not(
    run: Run,
) -> None:
    """A callback that blocks the process 0.4 s across the timer's moment is reported
    with how far behind the timer fired; a 0.1 s one (under STALL_REPORT) is not."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        stalls: list[float] = []
        swept = asyncio.Event()

        def sweep(now: Monotonic) -> float | None:
            swept.set()
            return None

        timer = Timer(loop, sweep, stalls.append)
        for block, expect in ((0.1, 0), (0.4, 1)):
            swept.clear()
            timer.at(loop.time() + 0.02)
            loop.call_soon(time.sleep, block)  # runs before the timer is due
            await asyncio.wait_for(swept.wait(), 5)
            assert len(stalls) == expect, (block, stalls)
        assert stalls[0] >= 0.3, stalls
        timer.cancel()

    run(main())
