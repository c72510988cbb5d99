"""Every request reaches its session's home, also when many requests share one client connection.

Real lb node processes, real clients (raw sockets, requests, curl) and the test
application tests/support/backend_ext.py, which names the node that answered
(X-Node) and the request it answers (X-Path) in every response. The cases are
the acceptance of issue 10: pooled clients, the URI rule over a keep-alive
`requests.Session`, pipelining, `curl --next`, the application closing a pooled
connection, message framing on keep-alive connections, the client's address
reaching the application, and the idle timeout.
"""

from __future__ import annotations

import asyncio
import hashlib
import http.client
import json
import os
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from lb.routing.cookie import CookieKeyring
from tests.support.backend import pattern_bytes
from tests.support.farm import COOKIE_NAME, HOST, Farm, read_until_closed, request_bytes
from tests.support.http11 import (
    BACKEND_EXT,
    WEB_ONLY,
    Conn,
    Reply,
    app_farm,
    finish,
    one_request,
    read_reply,
    source_address,
)

pytestmark = pytest.mark.integration

CURL = "/usr/bin/curl"


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """A 3-node farm ("web": home cookie, then /cart/<id>) in front of backend_ext.py."""
    f = app_farm(tmp_path_factory.mktemp("farm"))
    yield f
    crashed = finish(f)
    assert not crashed, f"processes exited during the tests: {crashed}"


def _ext_farm(make_farm: Callable[..., Farm], *args: str, **options: object) -> Farm:
    return make_farm(services=dict(WEB_ONLY), backend=BACKEND_EXT, backend_args=args, **options)


def _cookie(farm: Farm, home: str) -> dict[str, str]:
    return {"Cookie": farm.cookie_header(home)}


async def _app_stats(farm: Farm) -> Counter[str]:
    """The applications' own counters, summed over the nodes (asked directly, not through lb)."""
    total: Counter[str] = Counter()
    for n in farm.nodes:
        reply = await one_request((HOST, farm.ports[n].apps["web"]), "GET", "/stats")
        total.update(reply.json())
    return total


# ---------------------------------------------------------------------- pooled clients

SESSIONS = 30
ROUNDS = 5


async def test_pooled_connections_every_request_reaches_its_sessions_home(farm: Farm) -> None:
    """An upstream proxy sends 30 users' requests round-robin over one connection per entry."""
    nodes = farm.nodes
    keyring = CookieKeyring(farm.name, farm.secret.encode())
    cookies: list[str] = []
    homes: list[str] = []
    async with asyncio.timeout(20):
        # Each session starts as a new user would: its own client address, no cookie.
        for i in range(SESSIONS):
            first = await one_request(
                farm.addr(nodes[i % 3]), "GET", f"/s{i}/r0", source=source_address(i)
            )
            assert first.status == 200
            value, sid = first.cookie_value(COOKIE_NAME), first.cookie_value("sid")
            assert value is not None, f"session {i}: no home cookie in {first.headers}"
            assert sid is not None
            home = keyring.verify(value, time.time())
            assert home is not None and first.node == home
            assert first.json()["session_hits"] == 1
            cookies.append(f"{COOKIE_NAME}={value}; sid={sid}")
            homes.append(home)
        assert len(set(homes)) >= 2, f"30 new sessions were all placed on one home: {homes}"

        conns = {e: await Conn.open(farm.addr(e)) for e in nodes}
        seen: dict[int, list[tuple[int, str, Reply]]] = {i: [] for i in range(SESSIONS)}

        async def one_connection(k: int, rnd: int) -> None:
            for i in range(SESSIONS):
                if (i + rnd) % 3 == k:
                    path = f"/s{i}/r{rnd}"
                    reply = await conns[nodes[k]].request("GET", path, {"Cookie": cookies[i]})
                    seen[i].append((rnd, nodes[k], reply))

        # Rounds one after another, so each session's hits must count up in order;
        # within a round the three connections run at once.
        for rnd in range(1, ROUNDS + 1):
            await asyncio.gather(*(one_connection(k, rnd) for k in range(3)))
        for c in conns.values():
            await c.close()

    wrong = [
        f"session {i} round {rnd} via {entry}: home {homes[i]}, answered by {r.node} for {r.path}"
        for i, answers in seen.items()
        for rnd, entry, r in answers
        if r.status != 200 or r.node != homes[i] or r.path != f"/s{i}/r{rnd}"
    ]
    total = SESSIONS * ROUNDS
    assert not wrong, f"{len(wrong)} of {total} requests not answered by their home: {wrong[:5]}"
    hits = {i: [r.json()["session_hits"] for _, _, r in answers] for i, answers in seen.items()}
    expected = list(range(2, ROUNDS + 2))
    assert all(h == expected for h in hits.values()), hits


def _fresh_node(farm: Farm, entry: str, path: str) -> str:
    """The node that answers `path` on a fresh connection through `entry`."""
    conn = http.client.HTTPConnection(HOST, farm.ports[entry].listen["web"], timeout=5)
    try:
        conn.request("GET", path, headers={"Connection": "close"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        node = resp.getheader("X-Node")
        assert node is not None
        return node
    finally:
        conn.close()


def test_uri_rule_over_a_requests_session_reaches_the_rules_home(farm: Farm) -> None:
    """`requests.Session` over /cart/1..100 (one pooled connection): every cart on its home."""
    nodes = farm.nodes
    rule_home = {}
    for cart in range(1, 101):
        # The rule's home, asked on fresh connections through two different entries.
        first = _fresh_node(farm, nodes[cart % 3], f"/cart/{cart}/probe")
        second = _fresh_node(farm, nodes[(cart + 1) % 3], f"/cart/{cart}/probe")
        assert first == second, f"/cart/{cart}: entries disagree ({first} vs {second})"
        rule_home[cart] = first
    assert set(rule_home.values()) == set(nodes), "100 carts should hash onto every node"

    for entry in nodes:
        wrong = []
        with requests.Session() as session:
            for cart in range(1, 101):
                resp = session.get(farm.url(entry, f"/cart/{cart}/items"), timeout=5)
                assert resp.status_code == 200
                path = resp.headers.get("X-Path")
                if resp.headers.get("X-Node") != rule_home[cart] or path != f"/cart/{cart}/items":
                    wrong.append(f"/cart/{cart}: {resp.headers.get('X-Node')} for {path}")
            adapter = session.get_adapter(farm.url(entry))
            # every pool requests made for this session (connection_from_url would make a new one)
            pools = adapter.poolmanager.pools  # type: ignore[attr-defined]
            connections = sum(pools[k].num_connections for k in pools.keys())  # noqa: SIM118 (no __iter__)
        assert not wrong, f"via {entry}: {len(wrong)} of 100 not on the rule's home: {wrong[:5]}"
        assert connections == 1, f"via {entry}: requests opened {connections} connections"


@pytest.mark.parametrize("entry", ["a", "b", "c"])
async def test_pipelined_requests_are_answered_in_order_by_their_homes(
    farm: Farm, entry: str
) -> None:
    homes = [n for n in farm.nodes if n != entry] + [entry]
    paths = [f"/pipe/{entry}/{i}" for i in range(3)]
    async with asyncio.timeout(10):
        conn = await Conn.open(farm.addr(entry))
        try:
            conn.writer.write(
                b"".join(
                    request_bytes("GET", p, _cookie(farm, h))
                    for p, h in zip(paths, homes, strict=True)
                )
            )  # three requests, one send
            await conn.writer.drain()
            replies = [await read_reply(conn.reader) for _ in paths]
        finally:
            await conn.close()
    got = [(r.status, r.node, r.path, r.json()["path"]) for r in replies]
    assert got == [(200, h, p, p) for p, h in zip(paths, homes, strict=True)]


def test_curl_next_on_one_connection_each_request_reaches_its_home(farm: Farm) -> None:
    order = ["a", "b", "c", "c", "a", "b"]
    args = [CURL]
    for k, home in enumerate(order):
        if k:
            args.append("--next")
        args += [
            "-s",
            "-m",
            "10",
            "-H",
            f"Cookie: {farm.cookie_header(home)}",
            "-w",
            "\\n%{num_connects} %{http_code}\\n",
            farm.url("b", f"/curl/{k}"),
        ]
    out = subprocess.run(args, capture_output=True, text=True, timeout=30, check=False)
    lines = out.stdout.splitlines()
    assert len(lines) == 2 * len(order), f"curl exit {out.returncode}: {out.stdout!r}"
    got = []
    for k in range(len(order)):
        body = json.loads(lines[2 * k])
        connects, code = lines[2 * k + 1].split()
        got.append((code, connects, body["node"], body["path"]))
    expected = [("200", "1" if k == 0 else "0", home, f"/curl/{k}") for k, home in enumerate(order)]
    assert got == expected, "(status, new connections, node, path) per transfer"


# ---------------------------------------------------------------------- the application closes


@pytest.mark.parametrize("homes", ["one-home", "three-homes"])
async def test_application_idle_close_of_a_pooled_connection_is_invisible(
    make_farm: Callable[..., Farm], homes: str
) -> None:
    """The application closes keep-alive connections idle 0.3 s; the client never notices."""
    farm = _ext_farm(make_farm, "--idle-close", "0.3")
    order = ["b"] * 6 if homes == "one-home" else ["a", "b", "c"] * 2
    async with asyncio.timeout(15):
        conn = await Conn.open(farm.addr("a"))
        for k, home in enumerate(order):
            if k:
                # longer than the application's 0.3 s keep-alive: it closes the
                # connection lb used for the request before, while this client waits
                await asyncio.sleep(0.7)
            try:
                reply = await conn.request("GET", f"/idle/{k}", _cookie(farm, home))
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                pytest.fail(f"GET {k} (home {home}): the client saw {exc!r}")
            assert (reply.status, reply.node, reply.path) == (200, home, f"/idle/{k}")
        await conn.close()
        stats = await _app_stats(farm)
    assert stats["closed_idle"] >= 1, f"the applications closed no idle connection: {stats}"


@pytest.mark.parametrize("homes", ["one-home", "three-homes"])
async def test_application_close_after_n_requests_is_invisible(
    make_farm: Callable[..., Farm], homes: str
) -> None:
    """The application ends every connection after 2 requests (Connection: close)."""
    farm = _ext_farm(make_farm, "--close-after", "2")
    order = ["c"] * 12 if homes == "one-home" else ["a", "b", "c"] * 4
    async with asyncio.timeout(15):
        conn = await Conn.open(farm.addr("a"))
        for k, home in enumerate(order):
            try:
                reply = await conn.request("GET", f"/n/{k}", _cookie(farm, home))
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                pytest.fail(f"GET {k} (home {home}): the client saw {exc!r}")
            assert (reply.status, reply.node, reply.path) == (200, home, f"/n/{k}")
            assert (reply.header("Connection") or "").lower() != "close", (
                f"GET {k}: lb passed the application's Connection: close to the client"
            )
        await conn.close()
        stats = await _app_stats(farm)
    assert stats["closed_after_n"] >= 2, f"the applications closed too few connections: {stats}"


# ---------------------------------------------------------------------- framing on keep-alive


@pytest.mark.parametrize("home", ["a", "b"])
async def test_an_answer_that_starts_before_the_upload_ends_keeps_the_connection(
    farm: Farm, home: str
) -> None:
    """A streaming application (POST /echo writes its head as soon as the body starts)
    answers before lb has read the whole upload. The exchange ends when both directions
    are done and the connection goes on: no Connection: close, the next request on it is
    answered. (Only the application's connection is not reused: its state is unknown.)"""
    upload = os.urandom(200_000)
    cookie = _cookie(farm, home)
    head = (
        f"POST /echo HTTP/1.1\r\nHost: lb.test\r\nContent-Length: {len(upload)}\r\n"
        f"Cookie: {cookie['Cookie']}\r\n\r\n"
    ).encode()
    async with asyncio.timeout(15):
        conn = await Conn.open(farm.addr("a"))
        try:
            conn.writer.write(head + upload[:1000])
            await conn.writer.drain()
            answer = await conn.reader.readuntil(b"\r\n\r\n")  # before the upload ended
            assert answer.startswith(b"HTTP/1.1 200"), answer
            assert b"connection: close" not in answer.lower(), answer
            conn.writer.write(upload[1000:])
            assert await conn.reader.readexactly(len(upload)) == upload
            r = await conn.request("GET", "/after-the-stream", cookie)
            assert (r.status, r.node, r.path) == (200, home, "/after-the-stream")
        finally:
            await conn.close()


def _chunked_post(path: str, headers: dict[str, str], chunks: list[bytes]) -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: lb.test", "Transfer-Encoding: chunked"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    body = b"".join(b"%x;ext=1\r\n%s\r\n" % (len(c), c) for c in chunks)
    trailers = b"0\r\nX-Upload-Checksum: 1234\r\nX-Other: done\r\n\r\n"
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body + trailers


@pytest.mark.parametrize("homes", ["one-home", "alternating"])
async def test_every_message_kind_is_framed_on_one_keepalive_connection(
    farm: Farm, homes: str
) -> None:
    """Bodies both ways, HEAD, 204, 304, chunked: each response answers its own request."""
    order = ["b"] * 8 if homes == "one-home" else ["b", "c", "a", "b", "c", "a", "b", "c"]
    upload = os.urandom(256 * 1024)
    chunks = [os.urandom(n) for n in (1, 5000, 70000, 3)]
    async with asyncio.timeout(15):
        conn = await Conn.open(farm.addr("a"))
        try:
            r = await conn.request("POST", "/echo", _cookie(farm, order[0]), upload)
            assert (r.status, r.node, r.body == upload) == (200, order[0], True)

            conn.writer.write(_chunked_post("/echo", _cookie(farm, order[1]), chunks))
            r = await read_reply(conn.reader)
            assert (r.status, r.node, r.body == b"".join(chunks)) == (200, order[1], True)

            r = await conn.request("HEAD", "/bytes/5000", _cookie(farm, order[2]))
            assert (r.status, r.node, r.path, r.header("Content-Length"), r.body) == (
                200, order[2], "/bytes/5000", "5000", b"",
            )  # fmt: skip

            r = await conn.request("GET", "/status/204", _cookie(farm, order[3]))
            assert (r.status, r.node, r.path) == (204, order[3], "/status/204")

            headers = {**_cookie(farm, order[4]), "If-None-Match": '"v1"'}
            r = await conn.request("GET", "/etag", headers)
            assert (r.status, r.node, r.path, r.body) == (304, order[4], "/etag", b"")

            r = await conn.request("GET", "/chunked/100000", _cookie(farm, order[5]))
            assert (r.status, r.node, r.path) == (200, order[5], "/chunked/100000")
            assert r.body == pattern_bytes(100000)

            r = await conn.request("HEAD", "/head-json", _cookie(farm, order[6]))
            assert (r.status, r.node, r.path, r.body) == (200, order[6], "/head-json", b"")

            r = await conn.request("GET", "/last", _cookie(farm, order[7]))
            assert (r.status, r.node, r.path, r.json()["path"]) == (200, order[7], "/last", "/last")
        finally:
            await conn.close()


def test_expect_100_continue_upload_then_the_next_request(farm: Farm, tmp_path: Path) -> None:
    """curl uploads 1 MiB with Expect: 100-continue, then reuses the connection for another home."""
    data = os.urandom(1 << 20)
    upload = tmp_path / "upload.bin"
    upload.write_bytes(data)
    write_out = "\\n%{num_connects} %{http_code} %header{x-node} %{time_total}\\n"
    args = [
        CURL, "-s", "-v", "-m", "15", "--expect100-timeout", "8",
        "-H", "Expect: 100-continue", "-H", f"Cookie: {farm.cookie_header('b')}",
        "--data-binary", f"@{upload}", "-w", write_out, farm.url("a", "/sha256"),
        "--next", "-s", "-m", "15",
        "-H", f"Cookie: {farm.cookie_header('c')}", "-w", write_out, farm.url("a", "/after"),
    ]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=40, check=False)
    lines = out.stdout.splitlines()
    assert len(lines) == 4, f"curl exit {out.returncode}: {out.stdout!r}\n{out.stderr[-2000:]}"
    assert lines[0] == hashlib.sha256(data).hexdigest()
    connects, code, node, total = lines[1].split()
    assert (connects, code, node) == ("1", "200", "b")
    assert "HTTP/1.1 100 Continue" in out.stderr, "the 100 Continue did not reach the client"
    # curl waits --expect100-timeout (8 s) for a 100 that never comes
    assert float(total) < 5, f"the upload took {total} s"
    body = json.loads(lines[2])
    assert (lines[3].split()[:3], body["node"], body["path"]) == (["0", "200", "c"], "c", "/after")


# ---------------------------------------------------------------------- the client's address


def _forwarded_for(values: list[str]) -> list[str]:
    """The for= parameters of Forwarded header values (RFC 7239), in order, unquoted."""
    out = []
    for value in values:
        for element in value.split(","):
            for pair in element.split(";"):
                key, _, val = pair.strip().partition("=")
                if key.lower() == "for":
                    out.append(val.strip('"'))
    return out


@pytest.mark.parametrize("spoofed", [False, True], ids=["plain", "client-sent-xff"])
@pytest.mark.parametrize("path", ["local", "forwarded"])
async def test_application_sees_the_real_client_address(
    farm: Farm, path: str, spoofed: bool
) -> None:
    entry, home = ("a", "a") if path == "local" else ("a", "b")
    client = source_address(77)
    headers = _cookie(farm, home)
    if spoofed:
        headers.update({"X-Forwarded-For": "6.6.6.6", "Forwarded": "for=6.6.6.6;proto=https"})
    async with asyncio.timeout(10):
        reply = await one_request(farm.addr(entry), "GET", "/whoami", headers, source=client)
    assert (reply.status, reply.node) == (200, home)
    info = reply.json()
    assert info["peer"] != client, "the application should be talking to lb, not the client"
    xff = [p.strip() for v in info["x_forwarded_for"] for p in v.split(",")]
    assert xff == [client], f"X-Forwarded-For as the application saw it: {info}"
    assert _forwarded_for(info["forwarded"]) == [client], f"Forwarded: {info}"
    assert info["x_forwarded_proto"] == ["http"], f"X-Forwarded-Proto: {info}"
    assert "6.6.6.6" not in json.dumps(info)


# ---------------------------------------------------------------------- idle timeout


@pytest.fixture(scope="module")
def idle_farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """idle_timeout = 2 s; the head timeout is longer, so only the idle timeout can act."""
    f = app_farm(
        tmp_path_factory.mktemp("idle"), limits={"idle_timeout": 2.0, "head_timeout": 10.0}
    )
    yield f
    crashed = finish(f)
    assert not crashed, f"processes exited during the tests: {crashed}"


async def test_idle_keepalive_connection_is_closed_with_fin_at_idle_timeout(
    idle_farm: Farm,
) -> None:
    farm = idle_farm

    async def idle_close(home: str) -> tuple[str, bytes, str, float]:
        conn = await Conn.open(farm.addr("a"))
        reply = await conn.request("GET", "/before-idle", _cookie(farm, home))
        assert (reply.status, reply.node) == (200, home)
        start = time.monotonic()
        data, how = await read_until_closed(conn.reader)
        elapsed = time.monotonic() - start
        await conn.close()
        return home, data, how, elapsed

    async with asyncio.timeout(10):
        results = await asyncio.gather(idle_close("a"), idle_close("b"))  # local, forwarded
    for home, data, how, elapsed in results:
        assert (how, data) == ("eof", b""), f"home {home}: closed by {how} after {elapsed:.2f} s"
        assert 1.9 <= elapsed <= 3.0, f"home {home}: closed after {elapsed:.2f} s (idle 2 s)"


async def test_waiting_for_a_slow_response_is_not_cut_before_idle_timeout(
    idle_farm: Farm,
) -> None:
    """idle_timeout = 2 s: 5 requests each waiting 1.6 s for their response (twice in a
    row on one connection: 3.2 s in all) are not cut; a request whose response takes 4 s
    gets 504 once 2 s passed with no byte either way (HAProxy's `timeout server` answer),
    not a reset and not before 2 s."""
    farm = idle_farm

    async def slow(k: int, home: str, ms: int, times: int) -> tuple[float, list[Any]]:
        start = time.monotonic()
        conn = await Conn.open(farm.addr("a"))
        replies: list[Any] = []
        try:
            for _ in range(times):
                try:
                    replies.append(
                        await conn.request("GET", f"/sleep/{ms}?k={k}", _cookie(farm, home))
                    )
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    replies.append(exc)
                    break
        finally:
            await conn.close()
        return time.monotonic() - start, replies

    homes = ["a", "b", "c", "a", "b"]
    async with asyncio.timeout(15):
        results = await asyncio.gather(
            *(slow(k, h, 1600, 2) for k, h in enumerate(homes)), slow(9, "b", 4000, 1)
        )
    for (elapsed, replies), home in zip(results[:-1], homes, strict=True):
        for reply in replies:
            assert isinstance(reply, Reply), f"home {home}: cut after {elapsed:.2f} s: {reply!r}"
            assert (reply.status, reply.node) == (200, home)
        assert len(replies) == 2 and elapsed >= 3.2
    elapsed, (late,) = results[-1]
    assert isinstance(late, Reply), f"the 4 s request: {late!r} after {elapsed:.2f} s"
    assert late.status == 504, late
    assert 1.9 <= elapsed <= 3.0, f"504 after {elapsed:.2f} s (idle 2 s)"
