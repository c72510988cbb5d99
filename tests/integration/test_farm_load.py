"""A node's load counts the sessions it serves, not the flows entries keep idle in their pools.

New sessions go to the less loaded of two nodes (docs/routing.md), so a load
that counted idle pooled flows would steer them away from every node that had
recently served forwarded requests. Real processes: entry `a` forwards a burst
of parallel keep-alive requests to home `b` (the cookie names `b`); `a` then
keeps those flows idle in its pool (pool_idle_timeout is long here). While a
streamed response runs, `b` counts it; once every request is answered, `b`'s
load, as `b` and as `a` see it, falls back to 0 although the pooled flows stay.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from tests.integration.conftest import running
from tests.support.admin import AdminFarm
from tests.support.farm import Response, http_request
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration

PARALLEL = 24  # client connections at once: the entry opens about one flow each


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminFarm]:
    yield from running(
        AdminFarm(
            tmp_path_factory.mktemp("load"),
            nodes=("a", "b"),
            limits={"ping_interval": 0.2, "pool_idle_timeout": 120},
        )
    )


async def forwarded_get(farm: AdminFarm, path: str) -> Response:
    """GET `path` through entry a with b's home cookie (a fresh connection)."""
    resp = await http_request(farm.addr("a"), "GET", path, {"Cookie": farm.cookie_header("b")})
    assert resp.status == 200, resp
    return resp


def loads(farm: AdminFarm) -> tuple[int, float]:
    """(b's load as b says it, b's load as a sees it)."""
    return farm.load_of("b", seen_by="a")


def pooled_to_b(farm: AdminFarm) -> int:
    tables = farm.tables("a")
    return len([i for i in (tables.get("pooled") or {}).get("b", []) if i])


async def test_idle_pooled_flows_are_not_load(farm: AdminFarm) -> None:
    answers = await asyncio.gather(*(forwarded_get(farm, f"/p/{k}") for k in range(PARALLEL)))
    assert {a.json()["node"] for a in answers} == {"b"}
    pooled = pooled_to_b(farm)
    assert pooled >= PARALLEL // 3, f"the entry pooled {pooled} flows to b"

    def back_to_zero() -> None:
        assert loads(farm) == (0, 0), json.dumps(farm.get_json("b", "/api/status"))

    eventually_passes(back_to_zero, timeout=5, what="b's load without requests in flight")
    # the flows are still there, idle in a's pool: what no longer counts is idleness
    assert pooled_to_b(farm) == pooled


async def test_a_running_forwarded_response_is_load(farm: AdminFarm) -> None:
    # 400 KiB streamed at 1 KiB per 10 ms: about 4 s of a response in flight at b
    streaming = asyncio.create_task(forwarded_get(farm, "/slow/409600"))
    seen: list[tuple[int, float]] = []
    try:
        for _ in range(60):
            await asyncio.sleep(0.05)
            seen.append(await asyncio.to_thread(loads, farm))
            if seen[-1][0] >= 1 and seen[-1][1] >= 1:
                break
        assert seen and seen[-1][0] >= 1 and seen[-1][1] >= 1, seen
    finally:
        answer = await streaming
    assert len(answer.body) == 409600
