"""Request smuggling and response desync: a hostile client, a hostile or buggy application.

Real lb node processes (entry "a"; homes "a", its local application, and "b", a
pooled flow on the link) in front of tests/support/backend_hostile.py, an
application that frames request bodies as naive servers do (chunked only for a lone
``Transfer-Encoding: chunked``) and answers some paths the way broken ones do.
lb must never let one client's bytes become a request the client did not frame
as one, nor give a client bytes of an exchange that is not its own: ambiguous
framing gets 400 (request) or 502 (response) and a close, as HAProxy and nginx
answer, and an application connection that spoke out of turn is not reused.

Each smuggling attempt carries a unique target; the application's ``/seen`` lists
every target it read, so a test sees a request that reached it behind lb's back.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.backend_hostile import TE_LAST_NOT_CHUNKED
from tests.support.farm import Farm, read_until_closed
from tests.support.http11 import WEB_ONLY, Conn, read_reply
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration

BACKEND_HOSTILE = Path(__file__).resolve().parents[1] / "support" / "backend_hostile.py"
ENTRY = "a"
HOMES = ("a", "b")  # local application, a flow to another node
_serial = itertools.count(1)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    f = Farm(
        tmp_path_factory.mktemp("smuggling"),
        nodes=("a", "b"),
        services=dict(WEB_ONLY),
        backend=BACKEND_HOSTILE,
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


def _tag() -> str:
    return f"smuggled-{next(_serial)}"


async def _seen(farm: Farm, home: str) -> list[str]:
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        reply = await conn.request("GET", "/seen", {"Cookie": farm.cookie_header(home)})
    finally:
        await conn.close()
    assert reply.status == 200 and reply.node == home
    seen: list[str] = json.loads(reply.body)
    return seen


async def _send_raw(farm: Farm, data: bytes) -> tuple[bytes, str]:
    """`data` and a FIN on a new connection to the entry; everything lb answered until
    it closed (after the FIN, lb answers what it took for requests, then closes)."""
    reader, writer = await asyncio.open_connection(*farm.addr(ENTRY))
    try:
        writer.write(data)
        await writer.drain()
        with contextlib.suppress(OSError):  # lb may have answered and reset already
            writer.write_eof()
        async with asyncio.timeout(10):
            return await read_until_closed(reader)
    finally:
        writer.close()


async def _warm(farm: Farm, home: str) -> None:
    """One exchange with `home`, so an idle pooled upstream to it waits for the attack."""
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        reply = await conn.request("GET", "/warm", {"Cookie": farm.cookie_header(home)})
        assert reply.status == 200 and reply.node == home
    finally:
        await conn.close()


async def _next_client_is_served_alone(farm: Farm, home: str) -> None:
    """A later client of `home` gets its own answer, nothing of an earlier exchange."""
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            for i in range(3):
                path = f"/next-{i}"
                reply = await conn.request("GET", path, {"Cookie": farm.cookie_header(home)})
                assert reply.status == 200, reply
                assert reply.header("X-Smuggled") is None, reply
                assert reply.path == path and reply.node == home, reply
                assert json.loads(reply.body)["path"] == path
    finally:
        await conn.close()


def _head(method: str, home_cookie: str, *lines: str, version: str = "HTTP/1.1") -> bytes:
    text = f"{method} /attack {version}\r\nHost: x\r\nCookie: {home_cookie}\r\n"
    return (text + "".join(line + "\r\n" for line in lines) + "\r\n").encode("latin-1")


# ------------------------------------------------------------- request framing: refused


def _smuggle(tag: str) -> bytes:
    return f"GET /{tag} HTTP/1.1\r\nHost: x\r\n\r\n".encode()


def _chunk(data: bytes) -> bytes:
    return b"%x\r\n" % len(data) + data + b"\r\n"


def _quoted_ext_smuggle(tag: str) -> bytes:
    """A valid chunked body (one chunk, its extension a quoted string) that a server that
    reads no body takes for a request line (method "A", target ';x="/TAG') and a head."""
    line = f'A ;x="/{tag} HTTP/1.1"\r\n'.encode()  # chunk size 0xA
    return line + b"Host: abcd" + b"\r\n0\r\n\r\n"


# name -> (head lines, body of the attack given its tag): a head lb must refuse, or a
# body whose framing it must refuse; the smuggled request stands where a parser that
# frames otherwise would read it
REFUSED: dict[str, tuple[tuple[str, ...], Callable[[str], bytes]]] = {
    "cl-and-te": (
        ("Content-Length: 5", "Transfer-Encoding: chunked"),
        lambda t: b"0\r\n\r\n" + _smuggle(t),
    ),
    "te-chunked-then-identity": (
        ("Transfer-Encoding: chunked, identity",),
        lambda t: _chunk(_smuggle(t)) + b"0\r\n\r\n",
    ),
    "te-chunked-not-last": (
        ("Transfer-Encoding: chunked, gzip",),
        lambda t: _chunk(_smuggle(t)) + b"0\r\n\r\n",
    ),
    "te-chunked-twice-in-a-list": (("Transfer-Encoding: chunked, chunked",), _quoted_ext_smuggle),
    "te-chunked-on-two-lines": (
        ("Transfer-Encoding: chunked", "Transfer-Encoding: chunked"),
        _quoted_ext_smuggle,
    ),
    "te-gzip-then-chunked": (("Transfer-Encoding: gzip, chunked",), _quoted_ext_smuggle),
    "te-empty-member": (("Transfer-Encoding: , chunked",), _quoted_ext_smuggle),
    "te-space-before-colon": (
        ("Transfer-Encoding : chunked", "Content-Length: 5"),
        lambda t: b"0\r\n\r\n" + _smuggle(t),
    ),
    "te-obs-fold": (("Transfer-Encoding:", " chunked"), lambda t: b"0\r\n\r\n" + _smuggle(t)),
    "cl-differing-lines": (
        ("Content-Length: 0", "Content-Length: 40"),
        lambda t: _smuggle(t),
    ),
    "cl-differing-list": (("Content-Length: 0, 40",), lambda t: _smuggle(t)),
    "cl-plus-sign": (("Content-Length: +0",), lambda t: _smuggle(t)),
    "cl-minus-sign": (("Content-Length: -1",), lambda t: _smuggle(t)),
    "cl-hex": (("Content-Length: 0x0",), lambda t: _smuggle(t)),
    "cl-inner-space": (("Content-Length: 0 40",), lambda t: _smuggle(t)),
    "cl-huge": (("Content-Length: 18446744073709551616",), lambda t: _smuggle(t)),
    "cl-space-before-colon": (("Content-Length : 40",), lambda t: _smuggle(t)),
    "nul-in-a-field": (("X-Pad: a\x00b",), lambda t: _smuggle(t)),
    "bare-lf-between-fields": (("X-Pad: a\nContent-Length: 40",), lambda t: _smuggle(t)),
    "bare-cr-in-a-field": (("X-Pad: a\rContent-Length: 40",), lambda t: _smuggle(t)),
    "chunk-size-overflow": (
        ("Transfer-Encoding: chunked",),
        lambda t: b"1" + b"0" * 16 + b"0\r\n" + _smuggle(t) + b"\r\n0\r\n\r\n",
    ),
    "chunk-size-hex-prefix": (
        ("Transfer-Encoding: chunked",),
        lambda t: b"0x0\r\n\r\n" + _smuggle(t),
    ),
    "chunk-size-bare-lf": (
        ("Transfer-Encoding: chunked",),
        lambda t: b"0\n\r\n" + _smuggle(t),
    ),
    "chunk-ext-bare-lf": (
        ("Transfer-Encoding: chunked",),
        lambda t: b"0;a\nb\r\n\r\n" + _smuggle(t),
    ),
    "chunk-ext-bare-cr": (
        ("Transfer-Encoding: chunked",),
        lambda t: b"0;a\rb\r\n\r\n" + _smuggle(t),
    ),
    "chunk-ext-nul": (
        ("Transfer-Encoding: chunked",),
        lambda t: b"5;a\x00\r\nhello\r\n0\r\n\r\n" + _smuggle(t),
    ),
    "chunk-ext-unclosed-quote": (
        ("Transfer-Encoding: chunked",),
        lambda t: b'5;a="b\r\nhello\r\n0\r\n\r\n' + _smuggle(t),
    ),
    "chunk-ext-not-a-token": (
        ("Transfer-Encoding: chunked",),
        lambda t: f"A ;/{t} HTTP/1.1\r\nHost: abcd\r\n0\r\n\r\n".encode(),
    ),
    "chunk-data-longer-than-size": (
        ("Transfer-Encoding: chunked",),
        lambda t: b"1\r\nAB\r\n0\r\n\r\n" + _smuggle(t),
    ),
    "trailer-without-colon": (
        ("Transfer-Encoding: chunked",),
        lambda t: b"0\r\n" + _smuggle(t),
    ),
    "trailer-space-before-colon": (
        ("Transfer-Encoding: chunked",),
        lambda t: b"0\r\nX-Pad : a\r\n\r\n" + _smuggle(t),
    ),
    "trailer-nul": (
        ("Transfer-Encoding: chunked",),
        lambda t: b"0\r\nX-Pad: a\x00b\r\n\r\n" + _smuggle(t),
    ),
}

STATUS = {"te-gzip-then-chunked": 501}  # RFC 9112 6.1, nginx: a coding lb does not know; else 400


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_ambiguous_request_framing_is_refused(farm: Farm, home: str, case: str) -> None:
    """Each head or body above is refused with exactly one 400 (501) and a close (what
    HAProxy or nginx does): its bytes are never passed on where a server could frame them
    otherwise, and nothing pipelined behind it (the smuggled request, then one
    more) reaches the application. Sent on a pooled upstream: an idle one waits."""
    lines, body = REFUSED[case]
    tag, after = _tag(), _tag()
    await _warm(farm, home)
    data, _ = await _send_raw(
        farm,
        _head("POST", farm.cookie_header(home), *lines) + body(tag) + _smuggle(after),
    )
    assert data.startswith(b"HTTP/1.1 %d " % STATUS.get(case, 400)), data[:300]
    assert data.count(b"HTTP/1.1 ") == 1, data
    seen = await _seen(farm, home)
    assert not [t for t in seen if tag in t or after in t], seen
    await _next_client_is_served_alone(farm, home)


@pytest.mark.parametrize("home", HOMES)
async def test_a_content_length_with_a_leading_zero_reaches_the_application_in_decimal(
    farm: Farm, home: str
) -> None:
    """`Content-Length: 0100` is a hundred bytes (RFC 9110 8.6: decimal digits), but
    an application reading it as strtol(value, NULL, 0) does takes it for octal, 64,
    and the other 36 bytes for a request. lb sends the length as `100`."""
    tag = _tag()
    smuggled = f"GET /{tag} HTTP/1.1\r\n\r\n"
    smuggled = smuggled[:-2] + "X: " + "a" * (36 - len(smuggled) - 5) + "\r\n\r\n"
    body = b"x" * 64 + smuggled.encode()
    assert len(body) == 100
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            conn.writer.write(
                _head("POST", farm.cookie_header(home), "Content-Length: 0100") + body
            )
            await conn.writer.drain()
            reply = await read_reply(conn.reader)
            assert reply.status == 200 and reply.path == "/attack", reply
            again = await conn.request("GET", "/again", {"Cookie": farm.cookie_header(home)})
            assert again.path == "/again", again
    finally:
        await conn.close()
    seen = await _seen(farm, home)
    assert not [t for t in seen if tag in t], seen


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("spelling", ["Chunked", "CHUNKED"])
async def test_transfer_encoding_in_another_case_reaches_the_application_as_chunked(
    farm: Farm, home: str, spelling: str
) -> None:
    """`Transfer-Encoding: CHUNKED` is chunked (RFC 9112 7: codings are case-insensitive),
    but an application that compares the value as written reads no body and the chunks
    for a request. lb passes it on as `chunked`: one request, its body whole."""
    tag = _tag()
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            head = _head("POST", farm.cookie_header(home), f"Transfer-Encoding: {spelling}")
            conn.writer.write(head + _quoted_ext_smuggle(tag))
            await conn.writer.drain()
            reply = await read_reply(conn.reader)
            assert reply.status == 200 and reply.path == "/attack", reply
            again = await conn.request("GET", "/again", {"Cookie": farm.cookie_header(home)})
            assert again.path == "/again" and again.header("X-Smuggled") is None, again
    finally:
        await conn.close()
    seen = await _seen(farm, home)
    assert not [t for t in seen if tag in t], seen


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize(
    "line",
    [
        "Transfer-Encoding:\tchunked",
        "Transfer-Encoding: chunked ",
        "Transfer-Encoding: chunked\t",
        "Transfer-Encoding:  chunked",
        "Transfer-Encoding:chunked",
    ],
    ids=["tab-before", "space-after", "tab-after", "two-spaces", "no-space"],
)
async def test_a_chunked_line_in_another_spacing_reaches_the_application_as_lb_writes_it(
    farm: Farm, home: str, line: str
) -> None:
    """RFC 9112 5: the spaces and tabs around a field value are no part of it, so
    `Transfer-Encoding:<TAB>chunked` is chunked for lb; but a server that skips only a
    space after the colon, or compares the rest of the line with `chunked`, reads no
    body and the chunks as the next request (a classic obfuscation of the header, next
    to `Chunked`). The application gets lb's own line, `Transfer-Encoding: chunked`."""
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            head = _head("POST", farm.cookie_header(home), line).replace(
                b"/attack", b"/raw-upgrade"
            )
            conn.writer.write(head + _chunk(b"hello") + b"0\r\n\r\n")
            await conn.writer.drain()
            reply = await read_reply(conn.reader, "POST")
    finally:
        await conn.close()
    assert reply.status == 200 and reply.path == "/raw-upgrade", reply
    coding = [x for x in reply.body.split(b"\r\n") if x.lower().startswith(b"transfer-encoding")]
    assert coding == [b"Transfer-Encoding: chunked"], reply.body


@pytest.mark.parametrize("home", HOMES)
async def test_an_absolute_target_naming_another_host_than_host_is_refused(
    farm: Farm, home: str
) -> None:
    """`GET http://evil.example/... ` with `Host: x`: an application that takes the host
    from the target (as RFC 9112 3.2.2 says a server must) and lb's operator, who
    reads Host, see two hosts; HAProxy answers 400, and so does lb. The same target
    naming the Host's own host is served."""
    tag = _tag()
    cookie = farm.cookie_header(home)
    data, _ = await _send_raw(
        farm,
        f"GET http://evil.example/{tag} HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode(),
    )
    assert data.startswith(b"HTTP/1.1 400 ") and data.count(b"HTTP/1.1 ") == 1, data
    data, _ = await _send_raw(
        farm, f"GET http://x/{tag}-ok HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\n\r\n".encode()
    )
    assert data.startswith(b"HTTP/1.1 200 ") and f"/{tag}-ok".encode() in data, data
    seen = await _seen(farm, home)
    assert [t for t in seen if tag in t] == [f"http://x/{tag}-ok"], seen


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("expect", [True, False], ids=["expect-100", "plain"])
async def test_a_body_sent_after_a_complete_early_answer_does_not_reach_the_application(
    farm: Farm, home: str, expect: bool
) -> None:
    """The application answers 401 to the head alone, never reads the body, and keeps
    its connection (a careless server): it reads whatever comes next on it as a
    request. The client sends its body only after that answer (it asked for
    100-continue, or it waits for an early answer): lb has not passed a byte of it on
    yet, so it must not: the body would reach the application as a request lb never
    read (no forwarding headers rewritten, no routing). lb frames the body and drops
    it; the client's connection goes on."""
    tag = _tag()
    smuggled = f"GET /{tag} HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n".encode()
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            conn.writer.write(
                _head(
                    "POST",
                    farm.cookie_header(home),
                    f"Content-Length: {len(smuggled)}",
                    *(["Expect: 100-continue"] if expect else []),
                ).replace(b"/attack", b"/early-401")
            )
            await conn.writer.drain()
            reply = await read_reply(conn.reader, "POST")
            assert reply.status == 401 and reply.path == "/early-401", reply
            conn.writer.write(smuggled)
            await conn.writer.drain()
            again = await conn.request("GET", "/again", {"Cookie": farm.cookie_header(home)})
            assert again.path == "/again", again
    finally:
        await conn.close()
    seen = await _seen(farm, home)
    assert not [t for t in seen if tag in t], seen


@pytest.mark.parametrize("home", HOMES)
async def test_a_body_the_application_ignored_does_not_take_the_next_clients_request(
    farm: Farm, home: str
) -> None:
    """CL.0: the application answers 401 without reading the body, which came with the
    head in one write and so reached it whole, and keeps its connection. The body is
    the start of a request whose last header line is left open; on a reused
    connection the next client's request completes it, and that client gets the answer
    to the attacker's request (its own request, cookies and all, swallowed into a
    header). An answer of 300 or more to a request with a body does not give its
    application connection back to the pool."""
    tag = _tag()
    prefix = f"GET /{tag} HTTP/1.1\r\nHost: x\r\nX-Ignore: ".encode()
    attacker = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            attacker.writer.write(
                _head("POST", farm.cookie_header(home), f"Content-Length: {len(prefix)}").replace(
                    b"/attack", b"/early-401"
                )
                + prefix
            )
            await attacker.writer.drain()
            reply = await read_reply(attacker.reader, "POST")
            assert reply.status == 401 and reply.path == "/early-401", reply
    finally:
        await attacker.close()
    for n in range(3):
        victim = await Conn.open(farm.addr(ENTRY))
        try:
            async with asyncio.timeout(10):
                answer = await victim.request(
                    "GET", f"/victim-{n}", {"Cookie": farm.cookie_header(home)}
                )
        finally:
            await victim.close()
        assert answer.path == f"/victim-{n}", (n, answer.status, answer.path)


@pytest.mark.parametrize("home", HOMES)
async def test_a_large_body_after_an_early_answer_is_read_to_its_end(farm: Farm, home: str) -> None:
    """The application leaves a large body unread, so lb stops reading the client
    (back-pressure), then answers 401 early. lb drops the application's connection and
    the rest of the body: it must read the client again, else the body never ends and
    the connection hangs until idle_timeout instead of serving its next request."""
    size = 64 * 1024 * 1024
    conn = await Conn.open(farm.addr(ENTRY))
    sender: asyncio.Task[None] | None = None
    try:
        async with asyncio.timeout(20):
            conn.writer.write(
                _head(
                    "POST",
                    farm.cookie_header(home),
                    f"Content-Length: {size}",
                    "X-Delay-Ms: 500",
                ).replace(b"/attack", b"/early-401-late")
            )

            async def send_body() -> None:
                piece = b"x" * (1024 * 1024)
                for _ in range(size // len(piece)):
                    conn.writer.write(piece)
                    await conn.writer.drain()

            sender = asyncio.create_task(send_body())
            reply = await read_reply(conn.reader, "POST")
            assert reply.status == 401 and reply.path == "/early-401-late", reply
            await sender  # lb reads (and drops) the whole body
            again = await conn.request("GET", "/again", {"Cookie": farm.cookie_header(home)})
            assert again.status == 200 and again.path == "/again", again
    finally:
        if sender is not None and (not sender.done() or sender.cancelled()):
            sender.cancel()
            conn.writer.transport.abort()  # a close would wait for the unsent body
        await conn.close()


# ------------------------------------------------------- a hostile or buggy application


async def _get(farm: Farm, home: str, path: str, *lines: str) -> tuple[bytes, str]:
    """GET `path` at `home` on a new connection, then the client's FIN: all lb answered."""
    head = f"GET {path} HTTP/1.1\r\nHost: x\r\nCookie: {farm.cookie_header(home)}\r\n"
    return await _send_raw(farm, (head + "".join(f"{x}\r\n" for x in lines) + "\r\n").encode())


@pytest.mark.parametrize("home", HOMES)
async def test_a_response_with_length_and_chunked_is_a_502(farm: Farm, home: str) -> None:
    """A response with both Content-Length and Transfer-Encoding whose two framings
    disagree (by one the chunks end at once, by the other they hold another response):
    502, no byte of it to the client, and its connection is not reused."""
    await _warm(farm, home)
    data, _ = await _get(farm, home, "/cl-te")
    assert data.startswith(b"HTTP/1.1 502 "), data[:300]
    assert b"EVIL" not in data and b"X-Smuggled" not in data, data
    await _next_client_is_served_alone(farm, home)


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("coding", sorted(TE_LAST_NOT_CHUNKED))
async def test_a_response_whose_last_coding_is_not_chunked_is_a_502(
    farm: Farm, home: str, coding: str
) -> None:
    """RFC 9112 6.3: a response whose Transfer-Encoding does not end with chunked is framed
    by the close. Relayed so, with its Transfer-Encoding line, a client that frames by the
    `chunked` it reads in the list (or a hop that merges the lines otherwise) ends the
    answer where lb does not, and takes the rest for the answer to its next request (an
    `X-Smuggled` response here). No framing lb could relay is the client's for sure: 502,
    as HAProxy and nginx answer any coding but chunked, nothing of it to the client, and
    its connection closed."""
    data, _ = await _get(farm, home, f"/te-as/{coding}")
    assert data.startswith(b"HTTP/1.1 502 "), data[:300]
    assert b"EVIL" not in data and b"X-Smuggled" not in data, data
    assert b"\r\n\r\n2\r\nok" not in data, data
    await _next_client_is_served_alone(farm, home)


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize(
    ("method", "path", "status"), [("GET", "/204-body", 204), ("HEAD", "/head-body", 200)]
)
async def test_an_answer_that_announces_a_body_it_cannot_have_does_not_go_back_to_the_pool(
    farm: Farm, home: str, method: str, path: str, status: int
) -> None:
    """A 204 with a Content-Length (RFC 9110 8.6: a server must not send one), or a HEAD
    answer from a server that answers HEAD as GET, whose body comes a moment later (a
    later read for lb): neither has a body (RFC 9110 9.3.2, 15.3.5), so those bytes
    would be the answer to whichever request the connection carries next, another
    client's. The client gets its answer; the application's connection is not reused
    (HAProxy and nginx ignore the announced body too; the bytes must reach no client)."""
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            reply = await conn.request(
                method, path, {"Cookie": farm.cookie_header(home), "X-Delay-Ms": "500"}
            )
            assert reply.status == status and reply.path == path, reply
            # another client at once, and this one again: neither gets the late bytes
            await _next_client_is_served_alone(farm, home)
            again = await conn.request("GET", "/again", {"Cookie": farm.cookie_header(home)})
            assert again.path == "/again" and again.header("X-Smuggled") is None, again
    finally:
        await conn.close()


@pytest.mark.parametrize("home", HOMES)
async def test_an_http10_response_with_transfer_encoding_ends_its_connections(
    farm: Farm, home: str
) -> None:
    """RFC 9112 6.1: an HTTP/1.0 message with Transfer-Encoding has faulty framing, and
    its recipient closes the connection after it: the application's connection is
    not reused (the next request gets another one), and the client is told close."""
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            reply = await conn.request("GET", "/te10", {"Cookie": farm.cookie_header(home)})
            assert reply.status == 200 and reply.body == b"ok", reply
            assert reply.header("Connection") == "close", reply
    finally:
        await conn.close()
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            after = await conn.request("GET", "/after", {"Cookie": farm.cookie_header(home)})
            assert after.path == "/after" and after.header("X-Conn") != reply.header("X-Conn")
    finally:
        await conn.close()


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("path", ["/extra", "/extra-later"])
async def test_an_unsolicited_response_reaches_no_client(farm: Farm, home: str, path: str) -> None:
    """The application writes a second response nobody asked for, in the same write as
    the answer or a moment later (while its connection waits in the pool): the client
    gets its answer only, and no later client gets the extra one."""
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            reply = await conn.request(
                "GET", path, {"Cookie": farm.cookie_header(home), "X-Delay-Ms": "100"}
            )
            assert reply.status == 200 and reply.body == b"ok", reply
            if path == "/extra-later":
                await asyncio.sleep(0.5)  # the extra response reaches the idle upstream
            await _next_client_is_served_alone(farm, home)
            again = await conn.request("GET", "/again", {"Cookie": farm.cookie_header(home)})
            assert again.path == "/again" and again.header("X-Smuggled") is None, again
    finally:
        await conn.close()


@pytest.mark.parametrize("home", HOMES)
async def test_a_storm_of_interim_responses_then_the_answer(farm: Farm, home: str) -> None:
    """2000 `103 Early Hints` before the answer: each passes to an HTTP/1.1 client in
    order, then the answer, and the next client is served alone."""
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(20):
            reply = await conn.request("GET", "/interim/2000", {"Cookie": farm.cookie_header(home)})
            assert reply.status == 200 and reply.body == b"ok", reply
            assert reply.interim == [103] * 2000
            again = await conn.request("GET", "/again", {"Cookie": farm.cookie_header(home)})
            assert again.path == "/again", again
    finally:
        await conn.close()
    await _next_client_is_served_alone(farm, home)


@pytest.mark.parametrize("home", HOMES)
async def test_no_interim_response_goes_to_an_http10_client(farm: Farm, home: str) -> None:
    """RFC 9110 15.2: a server must not send a 1xx response to an HTTP/1.0 client. Such a
    client takes the first status line it reads for its answer: on a keep-alive
    connection every later answer would then be read as the next request's."""
    cookie = farm.cookie_header(home)
    request = "GET {} HTTP/1.0\r\nHost: x\r\nCookie: {}\r\nConnection: keep-alive\r\n\r\n"
    reader, writer = await asyncio.open_connection(*farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            writer.write(request.format("/interim/2", cookie).encode())
            writer.write(request.format("/second", cookie).encode())
            await writer.drain()
            first = await reader.readuntil(b"\r\n\r\n")
            assert first.startswith(b"HTTP/1.1 200 "), first
            assert b"X-Path: /interim/2\r\n" in first, first
            assert await reader.readexactly(2) == b"ok"
            second = await read_reply(reader)
            assert second.path == "/second" and second.interim == [], second
    finally:
        writer.close()


@pytest.mark.parametrize("home", HOMES)
async def test_a_response_cut_in_its_body_looks_broken_and_ends_there(
    farm: Farm, home: str
) -> None:
    """A pooled application connection closes after 10 of the 100 bytes it announced:
    the client sees a broken answer (a reset, never a complete response), and the next
    client gets nothing of it."""
    await _warm(farm, home)
    data, how = await _get(farm, home, "/close-mid")
    assert data.startswith(b"HTTP/1.1 200 "), data[:200]
    assert data.endswith(b"0123456789") and how == "reset", (data, how)
    await _next_client_is_served_alone(farm, home)


@pytest.mark.parametrize("home", HOMES)
async def test_a_101_to_a_request_that_asked_no_upgrade_is_a_502(farm: Farm, home: str) -> None:
    """A 101 answers only a request that asked to switch protocols (RFC 9110 15.2.2);
    to any other, the application speaks no HTTP lb knows: 502, no tunnel (HAProxy
    answers 502 too). The client's next bytes are never passed to it raw."""
    data, _ = await _get(farm, home, "/upgrade-101")
    assert data.startswith(b"HTTP/1.1 502 "), data[:300]
    assert b"101" not in data.split(b"\r\n", 1)[0], data
    # a request that asks gets its tunnel
    conn = await Conn.open(farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            conn.writer.write(
                b"GET /upgrade-101 HTTP/1.1\r\nHost: x\r\nCookie: "
                + farm.cookie_header(home).encode()
                + b"\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n"
            )
            await conn.writer.drain()
            reply = await read_reply(conn.reader)
            assert reply.status == 101, reply
            conn.writer.write(b"ping")
            assert await conn.reader.readexactly(4) == b"ping"
    finally:
        await conn.close()


async def test_the_502_for_an_unasked_101_says_why_in_the_access_log(farm: Farm) -> None:
    """The access line of that 502 names the 101, not an upstream that closed (it had
    not: it answered)."""
    data, _ = await _get(farm, "a", "/upgrade-101")
    assert data.startswith(b"HTTP/1.1 502 "), data[:300]

    def lines() -> list[dict[str, object]]:
        found = [
            r
            for r in farm.events(ENTRY, "access")
            if r.get("path") == "/upgrade-101" and r.get("status") == 502
        ]
        assert found
        return found

    found = eventually_passes(lines, timeout=5, what="the 502's access line")
    assert {r["error"] for r in found} == {"a 101 to a request that asked no upgrade"}, found


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("target", ["x:80", "empty:1"])
async def test_a_2xx_to_connect_that_frames_a_body_opens_no_tunnel(
    farm: Farm, home: str, target: str
) -> None:
    """An application that takes CONNECT for one more method answers it as any request:
    200 with a Content-Length. RFC 9110 9.3.6: a 2xx to CONNECT has neither
    Content-Length nor Transfer-Encoding, and its client ignores them. Taken for a
    tunnel, the client's next bytes would reach the application raw, read there as
    requests lb never read (no forwarding headers rewritten, no routing), as an h2c
    upgrade would. 502, as for a 101 nobody asked for; the bytes after it reach no
    application. `Content-Length: 0` too (empty:1): it is what a catch-all handler
    that writes nothing answers (Go's net/http), its connection kept for requests, so
    a tunnel server that sends it cannot be told from one (a tunnel server sends
    neither field)."""
    tag = _tag()
    cookie = farm.cookie_header(home)
    reader, writer = await asyncio.open_connection(*farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            writer.write(
                f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nCookie: {cookie}\r\n\r\n".encode()
            )
            await writer.drain()
            first = await reader.readuntil(b"\r\n\r\n")
            assert first.startswith(b"HTTP/1.1 502 "), first
            writer.write(
                _smuggle(tag).replace(b"\r\n\r\n", b"\r\nX-Forwarded-For: 6.6.6.6\r\n\r\n")
            )
            with contextlib.suppress(ConnectionError):
                await writer.drain()
            await read_until_closed(reader)
    finally:
        writer.close()
    seen = await _seen(farm, home)
    assert not [t for t in seen if tag in t], seen
    # an application that opens a tunnel (a 2xx without a body's framing) gets one
    reader, writer = await asyncio.open_connection(*farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            writer.write(
                f"CONNECT echo:1 HTTP/1.1\r\nHost: echo:1\r\nCookie: {cookie}\r\n\r\n".encode()
            )
            await writer.drain()
            head = await reader.readuntil(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200 "), head
            writer.write(b"ping")
            assert await reader.readexactly(4) == b"ping"
    finally:
        writer.close()


# ---------------------------------------------------------------------------- mixed


# the third request of the mixed pipeline: (its framing lines, its body)
BAD_THIRD = {
    "head": ("Content-Length: 5\r\nTransfer-Encoding: chunked\r\n", "0\r\n\r\n"),
    "chunk": ("Transfer-Encoding: chunked\r\n", "5\r\nhello\r\nZZ\r\n0\r\n\r\n"),
}


@pytest.mark.parametrize("bad", sorted(BAD_THIRD))
async def test_pipelined_requests_to_both_homes_with_a_bad_one_in_the_middle(
    farm: Farm, bad: str
) -> None:
    """One keep-alive connection pipelines requests that alternate homes, the third one
    malformed (its head: Content-Length and Transfer-Encoding; or its body: a bad chunk
    after a good one): the first two are answered in order by their own homes, the
    third gets 400, then the close; the fourth never reaches an application."""
    tags = [_tag() for _ in range(4)]
    homes = ["a", "b", "a", "b"]
    parts = []
    for i, (tag, home) in enumerate(zip(tags, homes, strict=True)):
        extra, body = BAD_THIRD[bad] if i == 2 else ("", "")
        method = "POST" if i == 2 else "GET"
        parts.append(
            f"{method} /{tag} HTTP/1.1\r\nHost: x\r\nCookie: {farm.cookie_header(home)}\r\n"
            f"{extra}\r\n{body}"
        )
    reader, writer = await asyncio.open_connection(*farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            writer.write("".join(parts).encode())
            await writer.drain()
            for tag, home in zip(tags[:2], homes[:2], strict=True):
                reply = await read_reply(reader)
                assert reply.status == 200 and reply.path == f"/{tag}", reply
                assert reply.node == home, reply
            data, _ = await read_until_closed(reader)
    finally:
        writer.close()
    assert data.startswith(b"HTTP/1.1 400 ") and data.count(b"HTTP/1.1 ") == 1, data
    for home in ("a", "b"):
        seen = await _seen(farm, home)
        assert not [t for t in seen if tags[3] in t], seen
        if bad == "head":
            assert not [t for t in seen if tags[2] in t], seen


@pytest.mark.parametrize("home", HOMES)
async def test_pipelined_http10_keep_alive_requests_on_a_pooled_upstream(
    farm: Farm, home: str
) -> None:
    """HTTP/1.0 requests that ask for keep-alive, pipelined behind an HTTP/1.1 one: each
    answer is its own request's, in order, on the upstream the pool gives."""
    await _warm(farm, home)
    cookie = farm.cookie_header(home)
    paths = ["/k1", "/k2", "/k3"]
    data = "".join(
        f"GET {p} HTTP/1.{0 if i else 1}\r\nHost: x\r\nCookie: {cookie}\r\n"
        + ("Connection: keep-alive\r\n" if i else "")
        + "\r\n"
        for i, p in enumerate(paths)
    )
    reader, writer = await asyncio.open_connection(*farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            writer.write(data.encode())
            await writer.drain()
            for p in paths:
                reply = await read_reply(reader)
                assert reply.path == p and json.loads(reply.body)["path"] == p, reply
    finally:
        writer.close()
    await _next_client_is_served_alone(farm, home)


# -------------------------------------------------------------------- upgrades


@pytest.mark.parametrize("home", HOMES)
async def test_a_declined_upgrade_leaves_the_next_request_to_lb(farm: Farm, home: str) -> None:
    """The application answers an upgrade request with a 200 (no 101, as for a websocket
    request it refuses): no tunnel. The request pipelined behind it is read and routed
    by lb (here to the other home), not passed raw on the first one's connection."""
    other = "b" if home == "a" else "a"
    reader, writer = await asyncio.open_connection(*farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            writer.write(
                (
                    f"GET /ws HTTP/1.1\r\nHost: x\r\nCookie: {farm.cookie_header(home)}\r\n"
                    "Connection: Upgrade\r\nUpgrade: websocket\r\n"
                    "Sec-WebSocket-Version: 99\r\n"
                    "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAA==\r\n\r\n"
                    f"GET /after HTTP/1.1\r\nHost: x\r\nCookie: {farm.cookie_header(other)}\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            first = await read_reply(reader)
            assert first.status == 200 and first.path == "/ws" and first.node == home, first
            second = await read_reply(reader)
            assert second.path == "/after" and second.node == other, second
    finally:
        writer.close()


@pytest.mark.parametrize("home", HOMES)
async def test_an_h2c_upgrade_does_not_reach_the_application(farm: Farm, home: str) -> None:
    """`Upgrade: h2c` asks the application to speak HTTP/2 on the connection: a tunnel
    through which the client's requests reach it unread by lb (no forwarding headers,
    no routing: "h2c smuggling"). The upgrade is not passed on (HAProxy, Envoy and
    Traefik drop it): the application sees a plain request."""
    reader, writer = await asyncio.open_connection(*farm.addr(ENTRY))
    try:
        async with asyncio.timeout(10):
            writer.write(
                (
                    "GET /raw-upgrade HTTP/1.1\r\nHost: x\r\n"
                    f"Cookie: {farm.cookie_header(home)}\r\n"
                    "Connection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\n"
                    "HTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n"
                ).encode()
            )
            await writer.drain()
            reply = await read_reply(reader)
    finally:
        writer.close()
    assert reply.status == 200 and reply.path == "/raw-upgrade", reply
    lowered = reply.body.lower()
    assert b"upgrade: h2c" not in lowered and b"connection: upgrade" not in lowered, reply.body


# -------------------------------------------------------------- many clients at once

HOSTILE = [
    ("GET", "/extra"),
    ("GET", "/204-body"),
    ("HEAD", "/head-body"),
    ("GET", "/cl-te"),
    ("GET", "/close-mid"),
    ("GET", "/te10"),
]


async def test_concurrent_clients_each_get_only_their_own_answers(farm: Farm) -> None:
    """Eight keep-alive clients at once, each alternating homes (the local application
    and the pooled flows to b), each with a hostile request every third one (an
    unsolicited response, a late body after a 204 or a HEAD answer, CL with chunked, a
    cut body, HTTP/1.0 chunked): every plain request's answer is its own, whatever
    pooled upstream it got; a client whose connection a hostile answer ended opens
    another. (An unsolicited response written a moment after a complete one is left
    out: under load the connection is reused before it comes, and no HTTP/1.1 proxy
    can tell it from the next answer.)"""
    mistakes: list[str] = []

    async def client(n: int) -> None:
        conn = await Conn.open(farm.addr(ENTRY))
        try:
            for i in range(30):
                home = HOMES[(n + i) % 2]
                headers = {"Cookie": farm.cookie_header(home), "X-Delay-Ms": "30"}
                if i % 3 == 2:
                    method, path = HOSTILE[(n + i) % len(HOSTILE)]
                    try:
                        reply = await conn.request(method, path, headers)
                        if reply.header("X-Smuggled") is not None:
                            mistakes.append(f"{path}: {reply}")
                        if reply.status in (200, 204) and reply.header("Connection") != "close":
                            continue
                    except (asyncio.IncompleteReadError, ConnectionError):
                        pass
                    await conn.close()  # broken or closing: another connection
                    conn = await Conn.open(farm.addr(ENTRY))
                    continue
                path = f"/c{n}-{i}"
                reply = await conn.request("GET", path, headers)
                if (
                    reply.status != 200
                    or reply.path != path
                    or reply.node != home
                    or json.loads(reply.body)["path"] != path
                ):
                    mistakes.append(f"{path} at {home}: {reply}")
        finally:
            await conn.close()

    async with asyncio.timeout(60):
        await asyncio.gather(*(client(n) for n in range(8)))
    assert mistakes == []
