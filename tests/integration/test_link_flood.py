"""A flood of silent sockets on a node's link port does not keep a restarted peer out.

The caps (256 sockets not logged in, 16 per source) bound memory. A stranger with
many sources (127.0.0.2 .. 127.0.0.65 here, any /64 on IPv6) fills all 256 slots and
refills each the moment it is freed; the farm members' own addresses do not count
against the total, and a full table evicts its oldest stranger, so a peer that
restarts links at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable

import pytest

from tests.support.farm import HOST, Farm
from tests.support.wait import eventually_passes_async

pytestmark = pytest.mark.integration

SOURCES = 64  # 64 x 16 sockets: far more than the 256 slots
PER_SOURCE = 16


async def _hold_slot(port: int, source: str, stop: asyncio.Event) -> None:
    """Connect from `source`, stay silent until the node closes, reconnect at once."""
    while not stop.is_set():
        try:
            reader, writer = await asyncio.open_connection(HOST, port, local_addr=(source, 0))
        except OSError:
            await asyncio.sleep(0.01)
            continue
        try:
            with contextlib.suppress(ConnectionError, TimeoutError):
                async with asyncio.timeout(5):
                    while await reader.read(4096):
                        pass
        finally:
            writer.close()
        await asyncio.sleep(0)


def _links_up(farm: Farm, node: str, peer: str, since: int) -> list[dict[str, object]]:
    return [e for e in farm.events(node, "link_up")[since:] if e.get("peer") == peer]


@pytest.mark.parametrize("links", ["plaintext", "mtls"])
async def test_a_flood_of_silent_sockets_does_not_keep_a_restarted_peer_out(
    make_farm: Callable[..., Farm], links: str
) -> None:
    farm = make_farm(nodes=("a", "b"), link_security=links)
    port = farm.ports["b"].forward
    stop = asyncio.Event()
    sources = [f"127.0.0.{i}" for i in range(2, 2 + SOURCES)]
    tasks = [
        asyncio.create_task(_hold_slot(port, s, stop)) for s in sources for _ in range(PER_SOURCE)
    ]
    try:
        await asyncio.sleep(2.0)  # the flood holds every slot
        farm.kill("a", signal.SIGKILL)
        before = len(farm.events("a", "link_up"))  # the log file is appended to
        farm.lb_procs["a"].expected_exit = False
        farm._start_node("a")

        def a_linked_to_b() -> None:
            ups = [e for e in _links_up(farm, "a", "b", before) if e.get("direction") == "out"]
            assert ups, "a never linked to b"

        # a fresh process' log starts again; a's outbound link to b must come up
        t0 = asyncio.get_running_loop().time()
        await eventually_passes_async(
            a_linked_to_b, timeout=20.0, what="restarted a could not link to b under the flood"
        )
        took = asyncio.get_running_loop().time() - t0
        refused = [e for e in farm.events("b", "link_login_failed") if "too many" in e["reason"]]
        assert refused, "the flood never filled b's pre-login slots"
        assert took < 5.0, f"a restarted peer took {took:.1f}s to link under the flood"
    finally:
        stop.set()
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
