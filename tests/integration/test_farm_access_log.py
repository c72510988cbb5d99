"""The access log: one JSON line per HTTP request, on local and forwarded paths.

Requests through entry a: one for a's own session, one forwarded to b's home
(both on one keep-alive connection), one new session (no cookie), and a
malformed one (400). Each gets one "access" line in a's log with the fields an
operator reads; the query string and the identifier's value (the signed home
cookie) never appear in the log.
"""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from tests.support.farm import Farm, http_request, open_conn, read_response, request_bytes
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration

BAD = b"GET /acc/bad HTTP/1.1\r\nBad Header\r\n\r\n"


async def test_one_access_line_per_request(farm: Farm) -> None:
    cookie_a, cookie_b = farm.cookie_header("a"), farm.cookie_header("b")
    async with asyncio.timeout(20):
        reader, writer = await open_conn(farm.addr("a"))
        client_port = writer.get_extra_info("sockname")[1]
        try:
            for path, cookie in (("/acc/own?token=SECRET1", cookie_a), ("/acc/fwd", cookie_b)):
                writer.write(request_bytes("GET", path, {"Cookie": cookie}))
                await writer.drain()
                assert (await read_response(reader)).status == 200
        finally:
            writer.close()
        fresh = await http_request(farm.addr("a"), "GET", "/acc/new?q=SECRET2")
        assert fresh.status == 200
        reader, writer = await open_conn(farm.addr("a"))
        try:
            writer.write(BAD)
            await writer.drain()
            assert (await read_response(reader)).status == 400
        finally:
            writer.close()
        reader, writer = await open_conn(farm.addr("a"))
        try:  # a head that never ends: 408 after head_timeout
            writer.write(b"GET /acc/slow HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            assert (await read_response(reader)).status == 408
        finally:
            writer.close()

    def lines() -> dict[str, dict[str, object]]:
        found = {
            # an error answered before a head was parsed has no path ("-"): its status
            str(rec["path"]) if rec.get("path") != "-" else str(rec["status"]): rec
            for rec in farm.events("a", "access")
            if str(rec.get("path", "")).startswith("/acc/") or rec.get("status") in (400, 408)
        }
        assert {"/acc/own", "/acc/fwd", "/acc/new"} <= set(found), found
        assert {rec.get("status") for rec in found.values()} >= {400, 408}, found
        return found

    found = eventually_passes(lines, timeout=5, what="access lines in a's log")
    own, fwd, new = found["/acc/own"], found["/acc/fwd"], found["/acc/new"]
    assert (own["entry"], own["home"], own["status"], own["method"]) == ("a", "a", 200, "GET")
    assert (fwd["entry"], fwd["home"], fwd["status"]) == ("a", "b", 200)
    # the client's address and port, as an operator matches a line to a connection
    for rec in (own, fwd):
        assert (rec["client"], rec["client_port"]) == ("127.0.0.1", client_port), rec
    assert new["client"] == "127.0.0.1" and new["client_port"] != client_port
    for rec in (own, fwd):
        assert rec["id_kind"] == "home-cookie" and rec["new_session"] is False
    assert new["new_session"] is True and new["id_kind"] is None
    assert new["home"] in farm.nodes
    # what lb answered itself says why, and counts the request bytes it read
    (bad,) = [rec for rec in found.values() if rec["status"] == 400]
    assert bad["error"] == "header line without ':'" and bad["bytes_in"] == len(BAD), bad
    (slow,) = [rec for rec in found.values() if rec["status"] == 408]
    assert slow["error"] == "request head not complete within head_timeout", slow
    assert slow["bytes_in"] == len(b"GET /acc/slow HTTP/1.1\r\nHost: x\r\n"), slow
    for rec in (own, fwd, new):
        assert rec["error"] is None, rec  # answered by the application
    for rec in (own, fwd, new):
        assert rec["service"] == "web"
        assert isinstance(rec["bytes_in"], int) and rec["bytes_in"] > 0
        assert isinstance(rec["bytes_out"], int) and rec["bytes_out"] > 0
        t_head, t_home, t_first, t_total = (
            rec["t_head"],
            rec["t_home"],
            rec["t_first_byte"],
            rec["t_total"],
        )
        assert isinstance(t_total, float) and 0 <= t_head <= t_home <= t_first <= t_total < 5  # type: ignore[operator]
    text = farm.logs("a")
    for secret in ("SECRET1", "SECRET2", cookie_a.split(".")[-1], cookie_b.split(".")[-1]):
        assert secret not in text, f"{secret} leaked into the log"


async def test_one_access_line_per_tcp_connection(farm: Farm) -> None:
    """A tcp service (client-ip extractor, echo application): one line per connection
    with where it went and the bytes of the whole connection, also for one that only
    took the application's greeting (client-ip routes at accept)."""
    sent = b"tcp-access-probe\n" * 3
    async with asyncio.timeout(20):
        silent_reader, silent = await open_conn(farm.addr("a", "raw"))
        silent_port = silent.get_extra_info("sockname")[1]
        silent.write_eof()
        silent_got = await silent_reader.read()  # the greeting, then a's close
        silent.close()
        reader, writer = await open_conn(farm.addr("a", "raw"))
        port = writer.get_extra_info("sockname")[1]
        writer.write(sent)
        await writer.drain()
        greeting = await reader.readline()  # node=<home>
        echoed = await reader.readexactly(len(sent))
        assert echoed == sent
        writer.write_eof()
        assert await reader.read() == b""
        writer.close()

    def line(port: int) -> dict[str, object]:
        mine = [r for r in farm.events("a", "access") if r.get("client_port") == port]
        assert len(mine) == 1, mine
        return mine[0]

    rec = eventually_passes(lambda: line(port), timeout=5, what="the connection's line")
    home = greeting.decode().strip().removeprefix("node=")
    assert (rec["service"], rec["entry"], rec["client"], rec["home"]) == (
        "raw",
        "a",
        "127.0.0.1",
        home,
    )
    assert (rec["bytes_in"], rec["bytes_out"]) == (len(sent), len(greeting) + len(sent)), rec
    assert rec["id_kind"] == "client-ip" and rec["error"] is None, rec
    assert 0 <= rec["t_home"] <= rec["t_total"] < 10, rec  # type: ignore[operator]
    assert "method" not in rec and "status" not in rec, rec
    quiet = eventually_passes(lambda: line(silent_port), timeout=5, what="the silent one's")
    assert (quiet["bytes_in"], quiet["bytes_out"]) == (0, len(silent_got)), quiet
    assert silent_got.startswith(b"node="), silent_got


async def test_error_line_after_a_served_request_is_its_own(farm: Farm) -> None:
    """A 400 for the second request of a keep-alive connection: its line counts the
    bytes of that request and the 400 only, and no upstream time (the first request's
    upstream is not its)."""
    cookie = farm.cookie_header("a")
    first = request_bytes("POST", "/acc2/first", {"Cookie": cookie}, b"x" * 1000)
    async with asyncio.timeout(20):
        reader, writer = await open_conn(farm.addr("a"))
        client_port = writer.get_extra_info("sockname")[1]
        try:
            writer.write(first)
            await writer.drain()
            assert (await read_response(reader)).status == 200
            writer.write(BAD)
            await writer.drain()
            assert (await read_response(reader)).status == 400
        finally:
            writer.close()

    def line() -> dict[str, object]:
        mine = [
            r
            for r in farm.events("a", "access")
            if r.get("client_port") == client_port and r.get("status") == 400
        ]
        assert len(mine) == 1, mine
        return mine[0]

    rec = eventually_passes(line, timeout=5, what="the 400's line")
    assert rec["bytes_in"] == len(BAD), rec
    assert rec["bytes_out"] < 200, rec  # lb's 400 alone, not the first answer's bytes too
    assert rec["t_home"] is None and rec["t_first_byte"] is None, rec


async def test_a_tcp_connection_its_application_reset_is_logged_as_broken(farm: Farm) -> None:
    """The application resets a tcp connection it served: the line says it broke, not
    that it never had an upstream."""
    async with asyncio.timeout(20):
        reader, writer = await open_conn(farm.addr("a", "raw"))
        port = writer.get_extra_info("sockname")[1]
        await reader.readline()  # node=<home>: spliced
        writer.write(b"RESET-NOW\n")
        await writer.drain()
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.close()

    def line() -> dict[str, object]:
        mine = [r for r in farm.events("a", "access") if r.get("client_port") == port]
        assert len(mine) == 1, mine
        return mine[0]

    rec = eventually_passes(line, timeout=5, what="the connection's line")
    assert str(rec["error"]).startswith("broken: "), rec
