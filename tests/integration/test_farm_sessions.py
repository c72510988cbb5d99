"""A session reaches its home whichever node it enters by (real processes, real sockets)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import time
from pathlib import Path

import aiohttp
import pytest

from lb.routing.cookie import CookieKeyring
from tests.support.farm import (
    COOKIE_NAME,
    HOST,
    Farm,
    http_request,
    open_conn,
    read_response,
    request_bytes,
)

pytestmark = pytest.mark.integration

CURL = "/usr/bin/curl"


@pytest.mark.parametrize("home", ["a", "b", "c"])
async def test_signed_session_reaches_its_home_from_every_entry(farm: Farm, home: str) -> None:
    async with asyncio.timeout(20):
        for entry in farm.nodes:
            resp = await http_request(
                farm.addr(entry), "GET", f"/from/{entry}", {"Cookie": farm.cookie_header(home)}
            )
            assert resp.status == 200
            body = resp.json()
            assert body["node"] == home, f"entered at {entry}, homed at {home}"
            assert body["path"] == f"/from/{entry}"
            assert resp.header("X-Node") == home
            # A valid home cookie is not replaced.
            assert resp.set_cookie(COOKIE_NAME) is None


async def test_signed_session_with_aiohttp_keepalive(farm: Farm) -> None:
    """Several requests on one keep-alive connection through a non-home entry stay home."""
    jar = aiohttp.CookieJar(unsafe=True)
    connector = aiohttp.TCPConnector(limit=1)
    async with (
        asyncio.timeout(20),
        aiohttp.ClientSession(cookie_jar=jar, connector=connector) as session,
    ):
        headers = {"Cookie": farm.cookie_header("c")}
        hits = []
        for i in range(5):
            async with session.get(farm.url("a", f"/k/{i}"), headers=headers) as resp:
                assert resp.status == 200
                body = await resp.json()
                assert body["node"] == "c"
                hits.append(body["session_hits"])
                sid = resp.cookies.get("sid")
                if sid is not None:
                    headers["Cookie"] = f"{farm.cookie_header('c')}; sid={sid.value}"
        assert hits == [1, 2, 3, 4, 5]


def _write_jar(path: Path, cookie_value: str) -> None:
    expires = int(time.time()) + 3600
    path.write_text(
        "# Netscape HTTP Cookie File\n"
        f"{HOST}\tFALSE\t/\tFALSE\t{expires}\t{COOKIE_NAME}\t{cookie_value}\n"
    )


def test_signed_session_with_curl_cookie_jar(farm: Farm, tmp_path: Path) -> None:
    jar = tmp_path / "jar.txt"
    _write_jar(jar, farm.sign_cookie("b"))
    seen = []
    for entry in ("a", "c", "b", "a"):
        out = subprocess.run(
            [CURL, "-s", "-f", "-m", "10", "-b", str(jar), "-c", str(jar), farm.url(entry, "/c")],
            capture_output=True,
            timeout=15,
            check=True,
        )
        body = json.loads(out.stdout)
        seen.append((body["node"], body["session_hits"]))
    assert seen == [("b", 1), ("b", 2), ("b", 3), ("b", 4)]


@pytest.mark.parametrize("first_entry", ["a", "b", "c"])
async def test_new_session_gets_a_home_cookie_and_sticks(farm: Farm, first_entry: str) -> None:
    async with asyncio.timeout(20):
        first = await http_request(farm.addr(first_entry), "GET", "/new")
        assert first.status == 200
        header = first.set_cookie(COOKIE_NAME)
        assert header is not None, f"no home cookie in {first.headers}"
        attrs = {a.strip().split("=", 1)[0].lower() for a in header.split(";")[1:]}
        assert {"path", "max-age", "httponly", "samesite"} <= attrs
        assert "Path=/" in header and "SameSite=Lax" in header
        value = first.cookie_value(COOKIE_NAME)
        assert value is not None
        keyring = CookieKeyring(farm.name, farm.secret.encode())
        home = keyring.verify(value, time.time())
        assert home in farm.nodes, "the home cookie does not verify with the farm's secret"
        body = first.json()
        assert body["node"] == home
        assert body["session_hits"] == 1
        sid = first.cookie_value("sid")
        assert sid is not None

        cookies = f"{COOKIE_NAME}={value}; sid={sid}"
        hits = [1]
        for entry in (n for n in farm.nodes if n != first_entry):
            resp = await http_request(farm.addr(entry), "GET", "/again", {"Cookie": cookies})
            assert resp.status == 200
            body = resp.json()
            assert body["node"] == home, f"entered at {entry}"
            hits.append(body["session_hits"])
        assert hits == [1, 2, 3]


async def test_invalid_home_cookie_starts_a_new_session(farm: Farm) -> None:
    signed = farm.sign_cookie("b")
    head, mac = signed.rsplit(".", 1)
    # the MAC's first character changed: a well-formed value that surely differs from the
    # signed one. (Its last character carries 2 bits and takes 4 values, so the former
    # `signed[:-2] + "AA"` was the signed value itself, a valid cookie, 1 time in 256.)
    forged = f"{head}.{'B' if mac[0] == 'A' else 'A'}{mac[1:]}"
    assert forged != signed
    async with asyncio.timeout(20):
        resp = await http_request(farm.addr("a"), "GET", "/", {"Cookie": f"{COOKIE_NAME}={forged}"})
        assert resp.status == 200
        value = resp.cookie_value(COOKIE_NAME)
        assert value is not None and value != forged
        keyring = CookieKeyring(farm.name, farm.secret.encode())
        assert keyring.verify(value, time.time()) == resp.json()["node"]


async def test_new_sessions_spread_over_the_farm(farm: Farm) -> None:
    """New sessions of different clients entering at every node do not all land on one home.

    Each comes from its own loopback address: new sessions of one address share a
    home for placement_hold (docs/routing.md)."""
    homes = set()
    async with asyncio.timeout(30):
        for i in range(30):
            reader, writer = await asyncio.open_connection(
                *farm.addr("abc"[i % 3]), local_addr=(f"127.0.1.{i + 1}", 0)
            )
            try:
                writer.write(request_bytes("GET", "/spread"))
                resp = await read_response(reader)
            finally:
                writer.close()
            homes.add(resp.json()["node"])
    assert len(homes) >= 2, homes


async def test_uri_identifier_homes_every_entry_on_one_node(farm: Farm) -> None:
    async with asyncio.timeout(20):
        nodes = set()
        for entry in farm.nodes:
            resp = await http_request(farm.addr(entry), "GET", "/cart/42/items")
            assert resp.status == 200
            nodes.add(resp.json()["node"])
        assert len(nodes) == 1, nodes


async def test_keepalive_connection_routes_every_request(farm: Farm) -> None:
    """Homing is per request: each request of one keep-alive connection reaches the
    home its cookie names (a pooling client carries many sessions on one connection)."""
    async with asyncio.timeout(20):
        reader, writer = await open_conn(farm.addr("a"))
        try:
            answers = []
            for home in ("b", "c", "a"):
                writer.write(
                    request_bytes("GET", f"/ka/{home}", {"Cookie": farm.cookie_header(home)})
                )
                await writer.drain()
                answers.append((await read_response(reader)).json())
        finally:
            writer.close()
    assert [a["node"] for a in answers] == ["b", "c", "a"]
    assert [a["path"] for a in answers] == ["/ka/b", "/ka/c", "/ka/a"]


@pytest.mark.parametrize("entry", ["a", "b"])
async def test_pipelined_requests_in_one_write(farm: Farm, entry: str) -> None:
    cookie = {"Cookie": farm.cookie_header("b")}
    data = b"".join(request_bytes("GET", f"/p/{i}", cookie) for i in range(5))
    async with asyncio.timeout(20):
        reader, writer = await open_conn(farm.addr(entry))
        try:
            writer.write(data)
            await writer.drain()
            answers = [(await read_response(reader)).json() for _ in range(5)]
        finally:
            writer.close()
    assert [a["path"] for a in answers] == [f"/p/{i}" for i in range(5)]
    assert {a["node"] for a in answers} == {"b"}


def test_nodes_log_start_and_links(farm: Farm) -> None:
    for n in farm.nodes:
        started = farm.events(n, "node_started")
        assert started and started[0].get("node") == n
        peers = {e.get("peer") for e in farm.events(n, "link_up")}
        assert peers == set(farm.nodes) - {n}, (n, peers)
