"""A home killed -9 mid-response: the client sees a reset, never a clean close; the farm heals."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import pytest

from lb.routing.cookie import CookieKeyring
from tests.support.farm import (
    COOKIE_NAME,
    Farm,
    http_request,
    open_conn,
    read_until_closed,
    request_bytes,
)
from tests.support.wait import eventually_async, eventually_passes_async

pytestmark = pytest.mark.integration

SIZE = 64 << 20


async def test_home_killed_during_download_resets_client(make_farm: Callable[..., Farm]) -> None:
    farm = make_farm()
    entry, home = "a", "b"
    async with asyncio.timeout(30):
        reader, writer = await open_conn(farm.addr(entry))
        try:
            writer.write(
                request_bytes("GET", f"/bytes/{SIZE}", {"Cookie": farm.cookie_header(home)})
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            assert f"Content-Length: {SIZE}".encode() in head
            got = len(await reader.readexactly(1 << 20))
            downs_before = sum(1 for e in farm.events(entry, "link_down") if e.get("peer") == home)
            farm.kill(home, signal.SIGKILL)
            rest, how = await read_until_closed(reader)
            got += len(rest)
        finally:
            writer.close()
    assert got < SIZE, "the whole body arrived although its home was killed"
    assert how == "reset", f"connection ended with a clean close after {got} of {SIZE} bytes"

    # The entry noticed the link to the dead home (a link_down after the kill).
    await eventually_async(
        lambda: (
            sum(1 for e in farm.events(entry, "link_down") if e.get("peer") == home) > downs_before
        ),
        timeout=5,
        what="entry logged no link_down for the killed home",
    )
    await asyncio.to_thread(farm.assert_clean, [entry, "c"])

    # The home comes back: its sessions are served by it again through the same entry.
    ups_before = sum(1 for e in farm.events(entry, "link_up") if e.get("peer") == home)
    await asyncio.to_thread(farm.restart, home)
    async with asyncio.timeout(20):
        resp = await http_request(
            farm.addr(entry), "GET", "/after", {"Cookie": farm.cookie_header(home)}
        )
        assert resp.status == 200
        assert resp.json()["node"] == home
        fresh = await http_request(farm.addr(entry), "GET", "/fresh")
        assert fresh.status == 200
        assert fresh.set_cookie(COOKIE_NAME) is not None
    ups_after = sum(1 for e in farm.events(entry, "link_up") if e.get("peer") == home)
    assert ups_after > ups_before, "no new link_up logged after the restart"
    await asyncio.to_thread(farm.assert_clean)


async def test_sessions_of_a_dead_home_are_rehomed(make_farm: Callable[..., Farm]) -> None:
    farm = make_farm()
    farm.kill("c", signal.SIGKILL)

    def c_out_of_the_views_of_a_and_b() -> None:
        views = {n: farm.events(n, "farm_view")[-1:] for n in ("a", "b")}
        assert all(v and "c" not in v[0]["live"] for v in views.values()), views

    # c is declared dead after dead_after (1 s): the entries' views drop it
    await eventually_passes_async(
        c_out_of_the_views_of_a_and_b, timeout=2.0, what="c still live for a or b"
    )
    keyring = CookieKeyring(farm.name, farm.secret.encode())
    async with asyncio.timeout(20):
        for entry in ("a", "b"):
            resp = await http_request(
                farm.addr(entry), "GET", "/orphan", {"Cookie": farm.cookie_header("c")}
            )
            assert resp.status == 200, f"entry {entry}: {resp.status}"
            node = resp.json()["node"]
            assert node in ("a", "b")
            value = resp.cookie_value(COOKIE_NAME)
            assert value is not None, "the re-homed session got no new home cookie"
            assert keyring.verify(value, time.time()) == node
