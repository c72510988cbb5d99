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
import itertools
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.farm import Farm, read_until_closed
from tests.support.http11 import WEB_ONLY, Conn

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


@pytest.mark.parametrize("home", HOMES)
@pytest.mark.parametrize("case", sorted(REFUSED))
async def test_ambiguous_request_framing_is_refused(farm: Farm, home: str, case: str) -> None:
    """Each head or body above is refused with exactly one 400 and a close (what
    HAProxy does): its bytes are never passed on where a server could frame them
    otherwise, and nothing pipelined behind it (the smuggled request, then one
    more) reaches the application. Sent on a pooled upstream: an idle one waits."""
    lines, body = REFUSED[case]
    tag, after = _tag(), _tag()
    await _warm(farm, home)
    data, _ = await _send_raw(
        farm,
        _head("POST", farm.cookie_header(home), *lines) + body(tag) + _smuggle(after),
    )
    assert data.startswith(b"HTTP/1.1 400 "), data[:300]
    assert data.count(b"HTTP/1.1 ") == 1, data
    seen = await _seen(farm, home)
    assert not [t for t in seen if tag in t or after in t], seen
    await _next_client_is_served_alone(farm, home)
