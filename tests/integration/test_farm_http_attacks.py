"""Per-request HTTP routing under attack: what a hostile client or a careless application sends.

Real lb node processes (entry "a", homes "a" = its local application and "b" =
a pooled flow on the link) in front of tests/support/backend_rough.py, an
application that answers the way careless real ones do (an early answer that
leaves the body unread, a close in the middle of a head, an HTTP/1.0 close with
no `Connection: close`). Each test names what was sent, what lb must do, and
the response's `X-Path` / `X-Conn` tell a response that belongs to another
request or connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import select
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.backend_rough import CL_SPELLINGS
from tests.support.farm import Farm, read_until_closed
from tests.support.http11 import WEB_ONLY, Conn, read_reply

pytestmark = pytest.mark.integration

BACKEND_ROUGH = Path(__file__).resolve().parents[1] / "support" / "backend_rough.py"
ENTRY = "a"
HOMES = ("a", "b")  # local application, a flow to another node


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    f = Farm(
        tmp_path_factory.mktemp("attacks"),
        nodes=("a", "b"),
        services=dict(WEB_ONLY),
        backend=BACKEND_ROUGH,
        limits={"pool_idle_timeout": 1.0},
    )
    try:
        f.start()
    except BaseException:
        f.close()
        raise
    yield f
    crashed = f.unexpected_exits()
    f.close()
    assert not crashed, f"processes exited during the tests: {crashed}"


def _cookie(farm: Farm, home: str) -> str:
    return f"Cookie: {farm.cookie_header(home)}\r\n"


async def _open(farm: Farm) -> Conn:
    return await Conn.open(farm.addr(ENTRY))


async def _write_with_fin(conn: Conn, data: bytes) -> None:
    """`data` and the client's FIN in one TCP segment: corked, the kernel holds the bytes
    until the shutdown sends them with the FIN, so lb reads the FIN with them (two
    writes would let a quick lb answer every request before the FIN arrives)."""
    sock = conn.writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
    conn.writer.write(data)
    await conn.writer.drain()
    conn.writer.write_eof()


def _tracebacks(farm: Farm) -> list[str]:
    """Log lines of an exception that escaped lb's code (a traceback, a fatal protocol error)."""
    marks = ("Traceback", "AssertionError", "HttpError", "call failed", "never retrieved")
    return [
        line
        for node in farm.nodes
        for line in farm.logs(node).splitlines()
        if any(mark in line for mark in marks)
    ]


# ---------------------------------------------------------------- request framing


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("pooled", [False, True], ids=["fresh", "pooled"])
async def test_bad_chunked_body_in_the_heads_read_gets_400(
    farm: Farm, home: str, pooled: bool
) -> None:
    """A chunked body that is malformed right away ("ZZ" is no chunk size), sent in the
    same write as its head, is a 400 like any other bad chunk. (attach() feeds the
    request framer without catching its HttpError: the exception leaves data_received,
    or the connect task, and the client is reset or hangs until idle_timeout.)"""
    before = _tracebacks(farm)
    async with asyncio.timeout(10):
        if pooled:  # an idle upstream to the home is waiting in the pool
            warm = await _open(farm)
            r = await warm.request("GET", "/warm", {"Cookie": farm.cookie_header(home)})
            assert r.status == 200 and r.node == home
            await warm.close()
        else:  # let idle pooled upstreams expire (pool_idle_timeout is 1 s here)
            await asyncio.sleep(2.0)
        conn = await _open(farm)
        conn.writer.write(
            b"POST /bad-chunk HTTP/1.1\r\nHost: x\r\n"
            + _cookie(farm, home).encode()
            + b"Transfer-Encoding: chunked\r\n\r\nZZ\r\nhello\r\n0\r\n\r\n"
        )
        await conn.writer.drain()
        try:
            async with asyncio.timeout(4):
                data, how = await read_until_closed(conn.reader)
        except TimeoutError:
            data, how = b"", "no answer within 4 s"
        await conn.close()
    assert data.startswith(b"HTTP/1.1 400 "), f"got {data[:80]!r} ({how})"
    assert _tracebacks(farm) == before


async def test_http10_request_with_transfer_encoding_is_refused(farm: Farm) -> None:
    """RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing. An
    HTTP/1.0 application may ignore the coding and read the chunks as the next request
    on a pooled connection (another client's): lb must answer 400, not pass it on."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        smuggled = b"GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
        conn.writer.write(
            b"POST /te10 HTTP/1.0\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            + b"%x\r\n" % len(smuggled)
            + smuggled
            + b"\r\n0\r\n\r\n"
        )
        await conn.writer.drain()
        data, _ = await read_until_closed(conn.reader)
        await conn.close()
    assert data.startswith(b"HTTP/1.1 400 "), data[:200]


# ------------------------------------------------ an answer before the request body ends


@pytest.mark.parametrize("home", HOMES)
async def test_rest_of_body_after_an_early_answer_and_close(farm: Farm, home: str) -> None:
    """The application answers 413 after 1000 bytes of a 1 MB body and closes. The client
    goes on sending its body (it may not read before it has sent it): lb must drop
    those bytes and close cleanly after them, not fail on the upstream that is gone
    (`_request_body` asserts an upstream: an AssertionError out of data_received)."""
    before = _tracebacks(farm)
    total = 1_000_000
    async with asyncio.timeout(20):
        conn = await _open(farm)
        conn.writer.write(
            b"POST /early-close HTTP/1.1\r\nHost: x\r\n"
            + _cookie(farm, home).encode()
            + b"X-Read: 1000\r\nContent-Length: %d\r\n\r\n" % total
            + b"y" * 1000
        )
        await conn.writer.drain()
        reply = await read_reply(conn.reader, "POST")
        assert reply.status == 413 and reply.path == "/early-close"
        sent = 1000
        failure = ""
        try:
            while sent < total:
                piece = min(65536, total - sent)
                conn.writer.write(b"y" * piece)
                await conn.writer.drain()
                sent += piece
                await asyncio.sleep(0.02)
            rest, how = await read_until_closed(conn.reader)
        except (ConnectionError, OSError) as exc:
            rest, how = b"", f"{type(exc).__name__} after {sent} bytes of the body"
            failure = how
        await conn.close()
    assert not failure and how == "eof" and rest == b"", (how, rest[:100])
    new = [line for line in _tracebacks(farm) if line not in before]
    assert not new, new[:5]


@pytest.mark.parametrize("home", HOMES)
async def test_early_answer_leaves_the_upstream_out_of_the_pool(farm: Farm, home: str) -> None:
    """The application starts its answer before it read the body and ends it later
    (POST /early-stream; it never reads the body, as a careless server does). Its
    connection's state is unknown: lb must not pool it. Here the body is a request
    (GET /sleep/800); if lb pools the upstream, the application reads that body as
    the next request, and the next client on that upstream gets its answer."""
    smuggled = b"GET /sleep/800 HTTP/1.1\r\nHost: x\r\n\r\n"
    async with asyncio.timeout(20):
        attacker = await _open(farm)
        attacker.writer.write(
            b"POST /early-stream HTTP/1.1\r\nHost: x\r\n"
            + _cookie(farm, home).encode()
            + b"X-Delay-Ms: 400\r\nContent-Length: %d\r\n\r\n" % len(smuggled)
        )
        await attacker.writer.drain()
        await attacker.reader.readuntil(b"\r\n\r\n")  # the answer's head came first
        attacker.writer.write(smuggled)  # then the body
        await attacker.writer.drain()
        assert await attacker.reader.readexactly(10) == b"1234567890"
        await attacker.close()

        victim = await _open(farm)
        reply = await victim.request("GET", "/victim", {"Cookie": farm.cookie_header(home)})
        await victim.close()
    assert reply.path == "/victim", (
        f"the victim's GET /victim got the answer to {reply.path} "
        f"(connection {reply.header('X-Conn')}, request {reply.header('X-Served')} on it)"
    )


# ------------------------------------------------------------------ later requests


_BAD_LATER_HEADS = {
    400: b"GET /bad HTTP/1.1\r\nHost: x\r\nBad Header: 1\r\n\r\n",
    431: b"GET /big HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 20000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("status", sorted(_BAD_LATER_HEADS))
async def test_a_later_requests_bad_head_gets_its_status(
    farm: Farm, home: str, status: int
) -> None:
    """A malformed head (400) or one over head_bytes (431) as the second request of a
    keep-alive connection gets its status like a first request does, then the close;
    not a bare FIN because an answer to the first request went out."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        first = await conn.request("GET", "/first", {"Cookie": farm.cookie_header(home)})
        assert first.status == 200 and first.node == home
        conn.writer.write(_BAD_LATER_HEADS[status])
        await conn.writer.drain()
        data, _ = await read_until_closed(conn.reader)
        await conn.close()
    assert data.startswith(f"HTTP/1.1 {status} ".encode()), data[:200]


@pytest.mark.parametrize("home", HOMES)
async def test_a_later_request_whose_application_is_down_gets_502(
    tmp_path: Path, home: str
) -> None:
    """The home's application stops between two requests of one keep-alive connection:
    the second request (a POST) cannot reach it and gets 502 like a first request does,
    not a bare FIN (the client could not tell whether its POST was applied)."""
    with Farm(tmp_path, nodes=("a", "b"), services=dict(WEB_ONLY)) as own:
        own.start()
        async with asyncio.timeout(15):
            conn = await Conn.open(own.addr(ENTRY))
            cookie = {"Cookie": own.cookie_header(home)}
            first = await conn.request("GET", "/first", cookie)
            assert first.status == 200 and first.node == home
            own.stop_backend(home)
            reply = await conn.request("POST", "/second", cookie, b"x")
            await conn.close()
    assert reply.status == 502, (reply.status, reply.headers)


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize(
    "tail",
    [
        b"",
        b"GET /cut HTTP/1.1\r\nHo",
        b"POST /cut HTTP/1.1\r\nHost: x\r\nContent-Length: 9\r\n\r\nab",
    ],
    ids=["whole", "cut-head", "cut-body"],
)
async def test_pipelined_requests_then_a_half_close_are_all_answered(
    farm: Farm, home: str, tail: bytes
) -> None:
    """Three pipelined requests and the client's FIN in one segment: every complete request
    read before the FIN is answered, in order, then lb closes (nginx does the same). A
    cut head or body after them (it can never be whole, and nothing of it reached the
    application) gets 400."""
    cookie = _cookie(farm, home).encode()
    heads = b"".join(
        b"GET /p" + str(i).encode() + b" HTTP/1.1\r\nHost: x\r\n" + cookie + b"\r\n"
        for i in range(3)
    )
    async with asyncio.timeout(10):
        conn = await _open(farm)
        await _write_with_fin(conn, heads + tail)
        replies = [await read_reply(conn.reader) for _ in range(3)]
        rest, _ = await read_until_closed(conn.reader)
        await conn.close()
    assert [(r.status, r.path, r.node) for r in replies] == [
        (200, f"/p{i}", home) for i in range(3)
    ]
    if not tail:  # the last answer before the close says so (RFC 9112 9.6)
        assert replies[-1].header("Connection") == "close", replies[-1].headers
    assert rest.startswith(b"HTTP/1.1 400 ") if tail else rest == b"", rest[:200]


@pytest.mark.parametrize("home", HOMES)
async def test_a_stray_empty_line_after_a_body_then_the_fin_is_ignored(
    farm: Farm, home: str
) -> None:
    """RFC 9112 2.2: some clients send an empty line after a POST body. With the client's
    FIN after it, the client gets its one answer and the close, not a 400 for a request
    it never made."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        conn.writer.write(
            b"POST /body HTTP/1.1\r\nHost: x\r\n"
            + _cookie(farm, home).encode()
            + b"Content-Length: 2\r\n\r\nhi\r\n"
        )
        await conn.writer.drain()
        conn.writer.write_eof()
        reply = await read_reply(conn.reader)
        rest, _ = await read_until_closed(conn.reader)
        await conn.close()
    assert reply.status == 200 and reply.node == home
    assert rest == b"", rest[:200]


@pytest.mark.parametrize("home", HOMES)
async def test_a_whole_body_then_the_fin_is_answered_while_the_upstream_opens(
    farm: Farm, home: str
) -> None:
    """A POST whose body came whole, then the client's FIN, before its upstream was ready
    (no idle one in the pool: a connect to the application or a NEW flow in flight) is a
    whole request: it is answered, then the connection closes. The FIN must not be read
    as a body cut in its middle (a reset, and a request that never reached the
    application). Sixteen at once, so most wait for a fresh upstream."""

    async def post_then_fin(i: int) -> tuple[int, str | None, str | None, bytes, str]:
        conn = await _open(farm)
        body = b"n=" + str(i).encode()
        conn.writer.write(
            b"POST /body/"
            + str(i).encode()
            + b" HTTP/1.1\r\nHost: x\r\n"
            + _cookie(farm, home).encode()
            + b"Content-Length: "
            + str(len(body)).encode()
            + b"\r\n\r\n"
            + body
        )
        conn.writer.write_eof()
        try:
            reply = await read_reply(conn.reader)
            rest, how = await read_until_closed(conn.reader)
        finally:
            await conn.close()
        return reply.status, reply.node, reply.path, rest, how

    async with asyncio.timeout(20):
        results = await asyncio.gather(*(post_then_fin(i) for i in range(16)))
    assert results == [(200, home, f"/body/{i}", b"", "eof") for i in range(16)], results


async def _post_past_100_continue(farm: Farm, home: str, length: int) -> Conn:
    """A connection whose POST /continue-then-close (Content-Length `length`, no body yet)
    the application has answered with 100 Continue: the upstream is attached."""
    conn = await _open(farm)
    conn.writer.write(
        b"POST /continue-then-close HTTP/1.1\r\nHost: x\r\n"
        + _cookie(farm, home).encode()
        + b"Expect: 100-continue\r\nContent-Length: %d\r\n\r\n" % length
    )
    await conn.writer.drain()
    interim = await conn.reader.readuntil(b"\r\n\r\n")
    assert interim.startswith(b"HTTP/1.1 100 "), interim
    return conn


@pytest.mark.parametrize("home", HOMES)
async def test_an_application_that_breaks_after_100_continue_gets_a_502(
    farm: Farm, home: str
) -> None:
    """An interim 100 Continue is not the answer: when the application closes after it,
    before its final response, the client gets 100 then 502 (RFC 9110 15.2: any number of
    1xx may come before the final response), not a reset that leaves it guessing."""
    async with asyncio.timeout(10):
        conn = await _post_past_100_continue(farm, home, 5)
        conn.writer.write(b"hello")
        await conn.writer.drain()
        reply = await read_reply(conn.reader)
        await conn.close()
    assert reply.status == 502, reply


@pytest.mark.parametrize("home", HOMES)
async def test_a_request_the_application_answered_100_is_not_sent_again(
    farm: Farm, home: str
) -> None:
    """An idempotent PUT whose body came with its head, on a pooled upstream: the
    application answers 100 Continue, then closes. It had the request: lb must not send
    it once more on a fresh upstream (the retry is for a pooled connection that closed
    before it took the request). The client gets one 100, then 502."""
    cookie = _cookie(farm, home).encode()
    async with asyncio.timeout(10):
        conn = await _open(farm)
        warm = await conn.request("GET", "/warm", {"Cookie": farm.cookie_header(home)})
        assert warm.status == 200 and warm.node == home
        conn.writer.write(
            b"PUT /continue-then-close HTTP/1.1\r\nHost: x\r\n"
            + cookie
            + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\nhello"
        )
        await conn.writer.drain()
        reply = await read_reply(conn.reader)
        await conn.close()
    assert (reply.interim, reply.status) == ([100], 502), reply


@pytest.mark.parametrize("home", HOMES)
async def test_a_body_the_fin_cuts_after_it_reached_the_application_gets_400(
    farm: Farm, home: str
) -> None:
    """The client's FIN cuts a body the application is already reading (its 100 Continue
    came back, so the upstream is attached). The request can never be whole: lb drops it
    at the application and answers 400, as for a body cut while its upstream was being
    opened, not a reset whose only cause is timing."""
    async with asyncio.timeout(10):
        conn = await _post_past_100_continue(farm, home, 9)
        conn.writer.write(b"ab")
        conn.writer.write_eof()
        data, how = await read_until_closed(conn.reader)
        await conn.close()
    assert data.startswith(b"HTTP/1.1 400 ") and how == "eof", (how, data[:300])


# ------------------------------------------------------------------ Host, empty lines


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize(
    "fields",
    [b"", b"Hosts: x\r\n", b"Host: x\r\nHost: evil.example\r\n", b"Host: x\r\nhost: x\r\n"],
    ids=["none", "only-hosts", "two", "two-same"],
)
@pytest.mark.parametrize("later", [False, True], ids=["first", "later"])
async def test_a_request_without_exactly_one_host_gets_400(
    farm: Farm, home: str, fields: bytes, later: bool
) -> None:
    """RFC 9112 3.2: an HTTP/1.1 request without a Host field, or any request with two,
    gets 400 (nginx answers so too): hops behind lb that pick different Host lines would
    route, cache or authorise one request as two different ones."""
    cookie = _cookie(farm, home).encode()
    async with asyncio.timeout(10):
        conn = await _open(farm)
        if later:
            first = await conn.request("GET", "/first", {"Cookie": farm.cookie_header(home)})
            assert first.status == 200 and first.node == home
        conn.writer.write(b"GET /raw-head HTTP/1.1\r\n" + cookie + fields + b"\r\n")
        await conn.writer.drain()
        data, _ = await read_until_closed(conn.reader)
        await conn.close()
    assert data.startswith(b"HTTP/1.1 400 "), data[:300]


async def test_an_http10_request_without_host_is_served(farm: Farm) -> None:
    async with asyncio.timeout(10):
        conn = await _open(farm)
        conn.writer.write(b"GET /raw-head HTTP/1.0\r\n" + _cookie(farm, "b").encode() + b"\r\n")
        await conn.writer.drain()
        reply = await read_reply(conn.reader)
        await conn.close()
    assert reply.status == 200 and reply.node == "b"


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("lead", [b"\r\n", b"\r\n\r\n"], ids=["one", "two"])
async def test_empty_lines_before_a_request_line_do_not_reach_the_application(
    farm: Farm, home: str, lead: bytes
) -> None:
    """RFC 9112 2.2: a server ignores empty lines before the request line (some clients
    send one after a POST body). lb takes them off; an application that does not ignore
    them (Python's http.server) would answer them with an error. As the first request,
    and after one in the same write."""
    head = b"GET /raw-head HTTP/1.1\r\nHost: x\r\n" + _cookie(farm, home).encode() + b"\r\n"
    async with asyncio.timeout(10):
        conn = await _open(farm)
        conn.writer.write(lead + head + lead + head)
        await conn.writer.drain()
        replies = [await read_reply(conn.reader) for _ in range(2)]
        await conn.close()
    for reply in replies:
        assert reply.status == 200 and reply.node == home
        assert reply.body.startswith(b"GET /raw-head HTTP/1.1\r\n"), reply.body[:80]


# ------------------------------------------------------------------ pooled upstreams


@pytest.mark.parametrize("home", HOMES)
async def test_retry_on_a_fresh_upstream_drops_the_dead_ones_partial_head(
    farm: Farm, home: str
) -> None:
    """A GET on a reused upstream gets the start of a head ("HTTP/1.1 200 OK\\r\\nX-Partial:
    yes"), then the application closes: lb sends the GET again on a fresh upstream. The
    client must get the fresh upstream's answer alone, not the dead one's partial head
    glued in front of it (attach() resets rstate but not rbuf)."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        cookie = {"Cookie": farm.cookie_header(home)}
        first = await conn.request("GET", "/first", cookie)
        assert first.status == 200 and first.node == home
        reply = await conn.request("GET", "/partial-close", cookie)
        await conn.close()
    assert reply.status == 200 and reply.path == "/partial-close"
    assert reply.header("X-Served") == "1", reply.headers  # the fresh connection's answer
    assert reply.header("X-Partial") is None, reply.headers


def _client_keeps(head: bytes) -> bool:
    """Whether an HTTP/1.1 client keeps its connection after a response with this head
    (RFC 9112 9.3: an HTTP/1.0 response persists only with the keep-alive option, an
    HTTP/1.1 one unless it says close)."""
    lines = head.decode("latin-1").split("\r\n")
    options = {
        token.strip().lower()
        for line in lines[1:]
        if line.lower().startswith("connection:")
        for token in line.split(":", 1)[1].split(",")
    }
    if lines[0].startswith("HTTP/1.0 "):
        return "keep-alive" in options
    return "close" not in options


@pytest.mark.parametrize("home", HOMES)
async def test_http10_answer_keeps_the_clients_connection_and_says_so(
    farm: Farm, home: str
) -> None:
    """An HTTP/1.0 application (Python's http.server) answers every request with
    `HTTP/1.0 200` and a Content-Length, no Connection header, and closes. lb keeps the
    client's keep-alive connection, so its answer must say so: relayed as it came, an
    HTTP/1.0 answer without `Connection: keep-alive` tells the client the connection
    ends (RFC 9112 9.3), and curl or a browser close it and pay a new connection (a TLS
    handshake on tls-terminate) for every request."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        for n in range(2):
            conn.writer.write(
                f"GET /http10 HTTP/1.1\r\nHost: x\r\n{_cookie(farm, home)}\r\n".encode()
            )
            head = await conn.reader.readuntil(b"\r\n\r\n")
            assert b"\r\nX-Path: /http10\r\n" in head, head
            assert await conn.reader.readexactly(2) == b"ok"
            assert _client_keeps(head), (n, head)
        await conn.close()


@pytest.mark.parametrize("home", HOMES)
async def test_http10_request_does_not_leave_its_upstream_in_the_pool(
    farm: Farm, home: str
) -> None:
    """RFC 9112 9.3: after an HTTP/1.0 request without keep-alive the connection closes
    after the response, `Connection: close` or not. The application here answers such a
    request with no Connection header and closes 300 ms later. lb must not pool that
    upstream: a POST from another client sent on it is lost (no retry for a POST: 502)."""
    async with asyncio.timeout(10):
        old = await _open(farm)
        old.writer.write(
            b"GET /old HTTP/1.0\r\nHost: x\r\n" + _cookie(farm, home).encode() + b"\r\n"
        )
        await old.writer.drain()
        first = await read_reply(old.reader)
        assert first.status == 200 and first.node == home
        await old.close()

        other = await _open(farm)
        reply = await other.request(
            "POST", "/after-http10", {"Cookie": farm.cookie_header(home)}, b"hello"
        )
        await other.close()
    assert reply.status == 200 and reply.path == "/after-http10", (reply.status, reply.headers)


@pytest.mark.parametrize("home", HOMES)
async def test_answers_carry_lbs_own_http_version(farm: Farm, home: str) -> None:
    """RFC 9110 6.2: an intermediary sends its own HTTP-version. An HTTP/1.0 application's
    `HTTP/1.0 200` relayed as it came makes curl send its next requests as HTTP/1.0 on the
    kept connection. To an HTTP/1.1 client lb says HTTP/1.1 and keeps the connection; to
    an HTTP/1.0 client that asked no keep-alive it says HTTP/1.1 with `Connection: close`
    and closes after the body (the body's framing unchanged)."""
    request = f"GET /http10 HTTP/1.{{}}\r\nHost: x\r\n{_cookie(farm, home)}\r\n"
    async with asyncio.timeout(10):
        conn = await _open(farm)
        conn.writer.write(request.format(1).encode())
        head = await conn.reader.readuntil(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200 "), head
        assert await conn.reader.readexactly(2) == b"ok"
        conn.writer.write(request.format(0).encode())
        await conn.writer.drain()
        data, _ = await read_until_closed(conn.reader)
        await conn.close()
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and b"\r\nX-Path: /http10\r\n" in head, head
    assert not _client_keeps(head + b"\r\n\r\n") and body == b"ok", data


@pytest.mark.parametrize("home", HOMES)
async def test_an_http10_client_that_asks_keep_alive_is_told_it_is_kept(
    farm: Farm, home: str
) -> None:
    """RFC 9112 9.3 / RFC 7230 A.1.2: an HTTP/1.0 client keeps its connection only when
    the answer says `Connection: keep-alive` (ApacheBench's `ab -k` looks for it). lb
    keeps such a client's connection, so its answers must say so, also when the
    application is an HTTP/1.1 server that sends no Connection header."""
    request = (
        f"GET /raw-head HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\n{_cookie(farm, home)}\r\n"
    )
    async with asyncio.timeout(10):
        conn = await _open(farm)
        for n in range(2):
            conn.writer.write(request.encode())
            await conn.writer.drain()
            reply = await read_reply(conn.reader)
            assert reply.status == 200 and reply.node == home, (n, reply.status)
            assert (reply.header("Connection") or "").lower() == "keep-alive", (n, reply.headers)
        await conn.close()


@pytest.mark.parametrize("home", HOMES)
async def test_interim_answers_carry_lbs_own_http_version(farm: Farm, home: str) -> None:
    """RFC 9110 6.2, as for final answers: Python's http.server (HTTP/1.0 by default)
    answers `Expect: 100-continue` with `HTTP/1.0 100 Continue`; relayed as it came, the
    interim answer tells an HTTP/1.1 client it speaks to an HTTP/1.0 server, while the
    final answer says HTTP/1.1. The client gets `HTTP/1.1 100 Continue`, then the
    final answer, both HTTP/1.1."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        conn.writer.write(
            b"POST /expect10 HTTP/1.1\r\nHost: x\r\n"
            + _cookie(farm, home).encode()
            + b"Expect: 100-continue\r\nContent-Length: 5\r\n\r\n"
        )
        await conn.writer.drain()
        interim = await conn.reader.readuntil(b"\r\n\r\n")
        conn.writer.write(b"hello")
        await conn.writer.drain()
        final = await conn.reader.readuntil(b"\r\n\r\n")
        body = await conn.reader.readexactly(2)
        await conn.close()
    assert interim == b"HTTP/1.1 100 Continue\r\n\r\n", interim
    assert final.startswith(b"HTTP/1.1 200 ") and b"\r\nX-Path: /expect10\r\n" in final, final
    assert body == b"ok"


# ------------------------------------------------------------------ forwarding headers


def _fields(raw: bytes) -> list[tuple[str, str]]:
    out = []
    for line in raw.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            out.append((name, value.strip()))
    return out


async def test_underscore_forwarding_headers_are_removed(farm: Farm) -> None:
    """An untrusted client's X_Forwarded_For is the same header to a CGI-style application
    (WSGI, PHP, CGI map '-' and '_' to HTTP_X_FORWARDED_FOR, and some join the two):
    lb removes X-Forwarded-For, Forwarded, X-Forwarded-Proto and X-Real-IP, it must
    remove their underscore spellings too (or refuse them)."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        reply = await conn.request(
            "GET",
            "/raw-head",
            {
                "X_Forwarded_For": "6.6.6.6",
                "X_Forwarded_Proto": "https",
                "X_Real_IP": "6.6.6.6",
            },
        )
        await conn.close()
    assert reply.status == 200
    spoofed = [
        (name, value) for name, value in _fields(reply.body) if "_" in name and _spoofable(name)
    ]
    assert not spoofed, f"the application got {spoofed} from an untrusted client"


async def test_underscore_transfer_encoding_does_not_reach_the_application(farm: Farm) -> None:
    """`Transfer_Encoding: chunked` next to a Content-Length: lb frames the body by the
    Content-Length, an application server that maps '_' to '-' in header names (older
    gunicorn did) frames it as chunked: the two disagree on where the request ends.
    lb must refuse the request (400) or drop the field, as nginx does by default."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        conn.writer.write(
            b"GET /raw-head HTTP/1.1\r\nHost: x\r\nTransfer_Encoding: chunked\r\n"
            b"Content_Length: 7\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        )
        await conn.writer.drain()
        data, _ = await read_until_closed(conn.reader)
        await conn.close()
    head, _, body = data.partition(b"\r\n\r\n")
    if head.startswith(b"HTTP/1.1 400 "):
        return
    names = [name.lower() for name, _ in _fields(body)]
    assert "transfer_encoding" not in names and "content_length" not in names, body


@pytest.mark.parametrize("home", HOMES)
async def test_equal_content_length_values_reach_the_application_as_one(
    farm: Farm, home: str
) -> None:
    """RFC 9110 8.6: lb accepts a list of equal Content-Length values (`2, 2`, or two
    lines) and must pass one value on: an application that reads only the first line
    frames the body as lb did, and one that cannot read a list (as the test application,
    int() of the value) would fail (a 502 for a request lb accepted)."""
    cookie = _cookie(farm, home).encode()
    async with asyncio.timeout(10):
        conn = await _open(farm)
        conn.writer.write(
            b"GET /raw-head HTTP/1.1\r\nHost: x\r\n"
            + cookie
            + b"Content-Length: 0, 0\r\ncontent-length: 0\r\n\r\n"
            + b"POST /body HTTP/1.1\r\nHost: x\r\n"
            + cookie
            + b"Content-Length: 2,2\r\nContent-Length: 2\r\n\r\nhi"
        )
        await conn.writer.drain()
        raw_head = await read_reply(conn.reader)
        posted = await read_reply(conn.reader)
        await conn.close()
    assert (raw_head.status, raw_head.node, posted.status, posted.node) == (200, home, 200, home)
    lengths = [v for n, v in _fields(raw_head.body) if n.lower() == "content-length"]
    assert lengths == ["0"], raw_head.body


@pytest.mark.parametrize("home", HOMES)
async def test_an_applications_equal_content_length_values_reach_the_client_as_one(
    farm: Farm, home: str
) -> None:
    """RFC 9110 8.6 for responses: lb frames `Content-Length: 2, 2` as 2 and must pass one
    value on (a client that refuses a list, or reads another length, would disagree)."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        reply = await conn.request("GET", "/dup-cl", {"Cookie": farm.cookie_header(home)})
        after = await conn.request("GET", "/after", {"Cookie": farm.cookie_header(home)})
        await conn.close()
    lengths = [v for n, v in reply.headers if n.lower() == "content-length"]
    assert (reply.status, reply.node, reply.body, lengths) == (200, home, b"ok", ["2"])
    assert (after.status, after.path) == (200, "/after")


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("spelling", sorted(CL_SPELLINGS))
async def test_an_applications_content_length_reaches_the_client_as_one_decimal_line(
    farm: Farm, home: str, spelling: str
) -> None:
    """lb frames `Content-Length: 010` as 10 bytes (RFC 9110 8.6: 1*DIGIT), but a client
    that reads the value with `strtol(value, NULL, 0)` takes it for octal 8, and one
    that refuses it (or a list, or two lines) fails the answer: the client gets lb's
    own `Content-Length: 10`, one line, as the application's request gets it (nginx
    and HAProxy write their own value too). The next answer on the connection is its
    own."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        path = f"/cl-as/{spelling}"
        reply = await conn.request("GET", path, {"Cookie": farm.cookie_header(home)})
        after = await conn.request("GET", "/after", {"Cookie": farm.cookie_header(home)})
        await conn.close()
    lengths = [v for n, v in reply.headers if n.lower() == "content-length"]
    assert (reply.status, reply.node, reply.path) == (200, home, path), reply
    assert (reply.body, lengths) == (b"0123456789", ["10"]), reply
    assert (after.status, after.path) == (200, "/after")


async def test_connection_header_cannot_name_lbs_forwarding_headers(farm: Farm) -> None:
    """RFC 9110 7.6.1: a proxy removes the Connection header and the fields it names. lb
    passes a keep-alive client's `Connection: keep-alive, X-Forwarded-For` on as sent, so
    any hop behind lb that honours it (the application's server, a sidecar) drops the
    X-Forwarded-For lb added: the client hides its address."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        reply = await conn.request(
            "GET", "/raw-head", {"Connection": "keep-alive, X-Forwarded-For, Forwarded"}
        )
        await conn.close()
    assert reply.status == 200
    _assert_no_forwarding_option(reply.body)


def _assert_no_forwarding_option(body: bytes) -> None:
    """The head the application got (its /raw-head echo) has no Connection option that
    names a forwarding header."""
    options = [
        token.strip().lower()
        for name, value in _fields(body)
        if name.lower() == "connection"
        for token in value.split(",")
    ]
    assert "x-forwarded-for" not in options and "forwarded" not in options, body


# what an application may trust to name the client, or the request as the client sent
# it, when the proxy in front of it vouches for it
_FORWARDING_NAMES = {
    *("x-forwarded-for", "x-forwarded-proto", "forwarded", "x-real-ip", "x-client-ip"),
    *("client-ip", "true-client-ip", "x-forwarded-host", "x-forwarded-port"),
    *("x-forwarded-prefix", "x-forwarded-server", "x-forwarded-ssl", "x-forwarded-scheme"),
    *("x-url-scheme", "front-end-https"),
}


def _spoofable(name: str) -> bool:
    """A name an application may read as a forwarding header: any case, any '-' spelled '_'."""
    return name.lower().replace("_", "-") in _FORWARDING_NAMES


@pytest.mark.parametrize("home", HOMES)
async def test_a_second_connection_line_cannot_name_lbs_forwarding_headers(
    farm: Farm, home: str
) -> None:
    """RFC 9110 5.3: two Connection lines are one list. A client that sends
    `Connection: keep-alive` and then `Connection: X-Forwarded-For, Forwarded` must not
    reach the application with the second line: a hop behind lb that honours it drops
    the X-Forwarded-For lb added, as with one line naming them."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        for _ in range(2):  # a fresh upstream, then the same client's next request
            conn.writer.write(
                b"GET /raw-head HTTP/1.1\r\nHost: x\r\n"
                + _cookie(farm, home).encode()
                + b"Connection: keep-alive\r\nConnection: X-Forwarded-For, Forwarded\r\n\r\n"
            )
            await conn.writer.drain()
            reply = await read_reply(conn.reader)
            assert reply.status == 200 and reply.node == home
            _assert_no_forwarding_option(reply.body)
        await conn.close()


@pytest.mark.parametrize("home", HOMES)
async def test_keep_alive_and_proxy_connection_lines_stay_with_the_client(
    farm: Farm, home: str
) -> None:
    """Keep-Alive and Proxy-Connection are hop-by-hop: they do not reach the application,
    with or without a Connection line, on a fresh and on a pooled upstream."""
    heads = [
        b"Keep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\n",
        b"Connection: keep-alive\r\nkeep-alive: timeout=5, max=100\r\n",
    ]
    async with asyncio.timeout(10):
        conn = await _open(farm)
        for extra in heads:
            conn.writer.write(
                b"GET /raw-head HTTP/1.1\r\nHost: x\r\n" + _cookie(farm, home).encode() + extra
                + b"\r\n"
            )  # fmt: skip
            await conn.writer.drain()
            reply = await read_reply(conn.reader)
            assert reply.status == 200 and reply.node == home
            names = {name.lower() for name, _ in _fields(reply.body)}
            assert not names & {"keep-alive", "proxy-connection"}, reply.body
            assert "host" in names  # the echo is the head the application got
        await conn.close()


@pytest.mark.parametrize("home", HOMES)
async def test_a_close_on_a_second_connection_line_closes_the_connection(
    farm: Farm, home: str
) -> None:
    """`Connection: keep-alive` then `Connection: close`: one list that holds close, so
    lb answers and closes the client's connection, as it does for one line."""
    async with asyncio.timeout(10):
        conn = await _open(farm)
        conn.writer.write(
            b"GET /raw-head HTTP/1.1\r\nHost: x\r\n"
            + _cookie(farm, home).encode()
            + b"Connection: keep-alive\r\nConnection: close\r\n\r\n"
        )
        await conn.writer.drain()
        reply = await read_reply(conn.reader)
        assert reply.status == 200 and reply.node == home
        assert await conn.reader.read() == b""  # closed after the answer
        await conn.close()


@pytest.mark.parametrize("home", HOMES)
async def test_no_spelling_of_a_forwarding_header_from_a_client_reaches_the_application(
    farm: Farm, home: str
) -> None:
    """Every spelling an application may read as X-Forwarded-For, X-Forwarded-Proto,
    Forwarded, X-Real-IP, X-Forwarded-Host, True-Client-IP and their kin (any case, '-'
    or '_'; an application behind a proxy trusts them: a forged X-Forwarded-Host poisons
    the links it builds), and the '_' spellings of the framing fields, from an untrusted
    client: pipelined heads in one write, HTTP/1.0 and 1.1.
    The application sees lb's X-Forwarded-For, X-Forwarded-Proto and Forwarded once
    each, naming the client, and none of what the client sent."""
    spellings = [
        "X-Forwarded-For", "x_forwarded_for", "X_FORWARDED-FOR", "x-Forwarded_for",
        "X-Forwarded-Proto", "X_Forwarded_Proto", "x-forwarded_PROTO",
        "Forwarded", "FORWARDED", "X-Real-IP", "x_real_ip", "X-REAL_ip",
        "X-Forwarded-Host", "x_forwarded_host", "X-Forwarded-Port", "X-FORWARDED-PREFIX",
        "X-Forwarded-Server", "x-forwarded_ssl", "X-Client-IP", "Client-IP", "true_client_ip",
        "True-Client-IP", "X-Forwarded-Scheme", "x_url_scheme", "Front-End-Https",
    ]  # fmt: skip
    heads = []
    for i, name in enumerate(spellings):
        version = b"HTTP/1.0" if i % 4 == 3 else b"HTTP/1.1"
        keep = b"Connection: keep-alive\r\n" if version == b"HTTP/1.0" else b""
        heads.append(
            b"GET /raw-head " + version + b"\r\nHost: x\r\n"
            + _cookie(farm, home).encode()
            + keep
            + f"{name}: 6.6.6.6\r\n".encode()
            + b"Transfer_Encoding: chunked\r\nContent_Length: 5\r\n\r\n"
        )  # fmt: skip
    async with asyncio.timeout(20):
        conn = await _open(farm)
        conn.writer.write(b"".join(heads))
        await conn.writer.drain()
        replies = [await read_reply(conn.reader) for _ in heads]
        await conn.close()
    for name, reply in zip(spellings, replies, strict=True):
        assert reply.status == 200 and reply.node == home, (name, reply.status)
        fields = _fields(reply.body)
        seen = [(n, v) for n, v in fields if _spoofable(n)]
        assert sorted(n.lower() for n, _ in seen) == [
            "forwarded",
            "x-forwarded-for",
            "x-forwarded-proto",
        ], (name, reply.body)
        assert "6.6.6.6" not in reply.body.decode("latin-1"), (name, reply.body)
        assert dict((n.lower(), v) for n, v in seen)["x-forwarded-for"] == "127.0.0.1", name
        framing = [n for n, _ in fields if n.lower() in ("transfer_encoding", "content_length")]
        assert not framing, (name, reply.body)


# ------------------------------------------------------------------ resource bounds


def _entry_growth_under_unread_requests(farm: Farm, requests: bytes, seconds: float) -> float:
    """Send `requests` (pipelined) to the entry from a socket with a small receive
    buffer that reads nothing, for `seconds`; the entry's peak RSS growth in MiB. lb
    may stop reading the requests (it must, once the answers back up): the client
    sends what it takes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    try:
        sock.connect(farm.addr(ENTRY))
        sock.setblocking(False)
        rss_before = farm.rss_mib(ENTRY)
        data = memoryview(requests)
        peak = rss_before
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            if data and select.select([], [sock], [], 0.25)[1]:
                with contextlib.suppress(BlockingIOError):
                    data = data[sock.send(data[:262144]) :]
            else:
                time.sleep(0.25)
            peak = max(peak, farm.rss_mib(ENTRY))
    finally:
        with contextlib.suppress(OSError):
            sock.close()
    return peak - rss_before


def test_client_that_does_not_read_cannot_make_lb_buffer_a_whole_response(farm: Farm) -> None:
    """A client pipelines 2000 GETs of 16 kB answers (each comes in one read) and reads
    nothing, then asks for 150 MB. Once its socket is full, lb's transport calls
    pause_writing once, which pauses the upstream of the response being read; but that
    response is complete, its exchange ends and releases (resumes) the upstream, and the
    *next* upstream is handed a client that is already write-paused: nobody pauses it.
    lb reads the 32 MB of answers and the whole 150 MB into memory. Its resident memory
    must stay far below that."""
    big = 150 * 1024 * 1024
    cookie = farm.cookie_header(ENTRY)
    small = f"GET /pad/16000 HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode()
    last = f"GET /big/{big} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode()
    grew = _entry_growth_under_unread_requests(farm, small * 2000 + last, 10)
    assert grew < 60, f"entry's RSS grew {grew:.0f} MiB"


@pytest.mark.parametrize("home", HOMES)
def test_a_client_that_reads_no_answer_stops_its_pipelined_requests(farm: Farm, home: str) -> None:
    """A client pipelines 3000 GETs of 60 kB answers and reads nothing. On a flow to
    another home each answer fits in the flow's credit window, so pausing the flow
    holds nothing back: the exchange ends, the next pipelined request goes out, and
    every answer lands in the client's write buffer (180 MB). Once the client's
    socket is full, lb must take no further request of it until it reads (as nginx
    waits for a response to be sent before it reads the next request): the entry's
    resident memory stays far below the sum of the answers."""
    cookie = farm.cookie_header(home)
    request = f"GET /pad/60000 HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode()
    grew = _entry_growth_under_unread_requests(farm, request * 3000, 8)
    assert grew < 60, f"entry's RSS grew {grew:.0f} MiB"


@pytest.mark.parametrize("home", HOMES)
async def test_pipelined_answers_a_client_reads_late_all_come(farm: Farm, home: str) -> None:
    """200 pipelined GETs of 60 kB answers (12 MB, more than the sockets hold), then a
    pause before the client reads: lb stops taking its requests meanwhile, and takes
    them again as the client reads; every answer comes, whole, and the connection goes on."""
    paths = [f"/pad/60000?n={i}" for i in range(200)]
    conn = await _open(farm)
    try:
        async with asyncio.timeout(30):
            conn.writer.write(
                "".join(
                    f"GET {path} HTTP/1.1\r\nHost: x\r\n{_cookie(farm, home)}\r\n" for path in paths
                ).encode()
            )
            await conn.writer.drain()
            await asyncio.sleep(1)
            for _ in paths:
                reply = await read_reply(conn.reader)
                assert reply.status == 200 and reply.node == home, reply
                assert reply.path == "/pad/60000" and len(reply.body) == 60000, reply
            again = await conn.request("GET", "/again", {"Cookie": farm.cookie_header(home)})
            assert again.path == "/again", again
    finally:
        await conn.close()


@pytest.fixture(autouse=True)
def _settle() -> Iterator[None]:
    """Each test starts with empty pools: an upstream a test left (some of lb's bugs
    pool one that is about to close) expires after pool_idle_timeout (1 s here)."""
    yield
    time.sleep(1.6)


async def test_idle_timeout_in_the_middle_of_a_close_delimited_answer_is_a_reset(
    make_farm: Callable[..., Farm],
) -> None:
    """An answer delimited by the close (no Content-Length, not chunked) stalls after 7
    bytes. At idle_timeout lb closes the client: with a FIN the client takes the 7
    bytes for the whole body. A truncated answer must end in a reset, as lb does
    when a link breaks mid-answer."""
    farm = make_farm(
        nodes=("a",),
        services=dict(WEB_ONLY),
        backend=BACKEND_ROUGH,
        limits={"idle_timeout": 1.0},
    )
    async with asyncio.timeout(15):
        conn = await Conn.open(farm.addr("a"))
        conn.writer.write(b"GET /stall HTTP/1.1\r\nHost: x\r\n\r\n")
        await conn.writer.drain()
        data, how = await read_until_closed(conn.reader)
        await conn.close()
    assert data.endswith(b"\r\n\r\npartial")
    assert how == "reset", "a truncated answer ended in a FIN: the client took it as whole"
