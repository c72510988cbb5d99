"""The idle timeout counts from the last byte lb wrote, also when it held the answer.

A response that names a new learned session (the application's `sid` cookie) is
held until the key's owners acknowledge it, at most `register_timeout`
(lb.routing.owners). Here b, the owner of some keys, is stopped (SIGSTOP; its
death sentence is far off), so such an answer goes out `register_timeout` after
it arrived. The keep-alive connection is then silent: it must stay open for
idle_timeout after that answer was written, not after it arrived from the
application.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest

from tests.support.farm import Farm, read_until_closed
from tests.support.http11 import Conn

pytestmark = pytest.mark.integration

CHAIN = '[ { kind = "cookie", name = "sid" }, { kind = "home-cookie" } ]'
IDLE = 2.0
HOLD = 1.2  # register_timeout: the held answer's wait for the stopped owner


async def test_a_held_answer_restarts_the_idle_timeout_when_it_is_written(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm(
        nodes=("a", "b"),
        services={"web": ("http", CHAIN)},
        limits={
            "idle_timeout": IDLE,
            "register_timeout": HOLD,
            "head_timeout": 10.0,
            "ping_interval": 0.5,
            "dead_after": 20.0,
        },
    )
    await asyncio.to_thread(farm.assert_clean)
    farm.kill("b", signal.SIGSTOP)
    try:
        async with asyncio.timeout(60):
            # a is the home and the entry; a new sid whose owner is b is held for HOLD
            # (about half of them: a key a owns itself is registered at once)
            for _ in range(20):
                conn = await Conn.open(farm.addr("a"))
                start = time.monotonic()
                reply = await conn.request("GET", "/held", {"Cookie": farm.cookie_header("a")})
                answered = time.monotonic()
                assert (reply.status, reply.node) == (200, "a"), reply
                assert reply.header("Set-Cookie") is not None, reply
                if answered - start < HOLD / 2:
                    await conn.close()
                    continue
                data, how = await read_until_closed(conn.reader)
                silent = time.monotonic() - answered
                await conn.close()
                break
            else:
                raise AssertionError("no answer was held for the stopped owner")
    finally:
        farm.kill("b", signal.SIGCONT)
    assert (how, data) == ("eof", b""), (how, data)
    # the answer was written `answered` or before: the connection stayed silent after it
    assert silent >= IDLE - 0.1, f"closed {silent:.2f} s after the held answer (idle {IDLE} s)"
