"""Many concurrent forwarded flows on the same links all complete with the right bytes."""

from __future__ import annotations

import asyncio
import hashlib
import os

import pytest

from tests.support.farm import Farm, http_request

pytestmark = pytest.mark.integration

CLIENTS = 200
BODY = 64 * 1024


async def test_200_concurrent_forwarded_uploads(farm: Farm) -> None:
    nodes = farm.nodes
    cookies = {n: farm.cookie_header(n) for n in nodes}
    failures: list[str] = []

    async def client(i: int) -> None:
        entry = nodes[i % len(nodes)]
        home = nodes[(i + 1 + i // 3 % 2) % len(nodes)]  # every entry -> both other homes
        body = os.urandom(BODY)
        try:
            resp = await http_request(
                farm.addr(entry), "POST", "/sha256", {"Cookie": cookies[home]}, body, timeout=80
            )
        except (OSError, asyncio.IncompleteReadError) as exc:
            failures.append(f"client {i} ({entry}->{home}): {exc!r}")
            return
        if resp.status != 200:
            failures.append(f"client {i} ({entry}->{home}): status {resp.status}")
        elif resp.header("X-Node") != home:
            failures.append(f"client {i} ({entry}->{home}): served by {resp.header('X-Node')}")
        elif resp.body.decode() != hashlib.sha256(body).hexdigest():
            failures.append(f"client {i} ({entry}->{home}): wrong digest")

    async with asyncio.timeout(90):
        await asyncio.gather(*(client(i) for i in range(CLIENTS)))
    assert failures == [], f"{len(failures)} of {CLIENTS} failed: {failures[:10]}"
    await asyncio.to_thread(farm.assert_clean)
