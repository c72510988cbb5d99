"""How the test applications read requests (tests/support/request_reader.py), on its own.

No farm and no sockets: heads parsed from bytes, and heads read off an
asyncio StreamReader fed by hand, so the module runs in well under a second.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.request_reader import BadRequest, parse_head, read_head

HEAD = (
    b"GET /a?b=1 HTTP/1.1\r\nHost: x\r\nCookie: sid=1\r\nX-Forwarded-For: 10.0.0.1\r\n"
    b"cookie: lang=fr\r\nX-Forwarded-For: 10.0.0.2\r\n\r\n"
)


def test_a_head_keeps_every_field_in_order_and_joins_the_cookies() -> None:
    req = parse_head(HEAD)
    assert (req.method, req.path, req.version) == ("GET", "/a?b=1", "HTTP/1.1")
    assert req.values("x-forwarded-for") == ["10.0.0.1", "10.0.0.2"]
    assert req.headers["x-forwarded-for"] == "10.0.0.2"
    assert req.headers["cookie"] == "sid=1; lang=fr"
    assert req.cookie("sid") == "1" and req.cookie("lang") == "fr" and req.cookie("x") is None
    names = [k for k, _ in req.fields]
    assert names == ["host", "cookie", "x-forwarded-for", "cookie", "x-forwarded-for"]


@pytest.mark.parametrize(
    ("head", "keep"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nConnection: Close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_keep_alive_follows_the_version_and_connection(head: bytes, keep: bool) -> None:
    assert parse_head(head).keep_alive is keep


def test_a_line_without_a_colon_is_refused_or_skipped_when_lenient() -> None:
    head = b"GET / HTTP/1.1\r\nno colon here\r\nA: 1\r\n\r\n"
    with pytest.raises(BadRequest):
        parse_head(head)
    assert parse_head(head, lenient=True).fields == [("a", "1")]
    for bad in (b"GET /\r\n\r\n", b"GET  / HTTP/1.1\r\n\r\n"):
        with pytest.raises(BadRequest):
            parse_head(bad, lenient=True)


async def test_heads_are_read_one_after_another_until_the_client_is_done() -> None:
    reader = asyncio.StreamReader(limit=64)
    reader.feed_data(b"GET /1 HTTP/1.1\r\n\r\nGET /2 HTTP/1.1\r\n\r\nGET /3")
    reader.feed_eof()
    assert await read_head(reader) == b"GET /1 HTTP/1.1\r\n\r\n"
    assert await read_head(reader, idle=1.0) == b"GET /2 HTTP/1.1\r\n\r\n"
    assert await read_head(reader) is None  # cut short by the end of the connection

    long = asyncio.StreamReader(limit=16)
    long.feed_data(b"GET /" + b"x" * 64 + b" HTTP/1.1\r\n\r\n")
    assert await read_head(long) is None  # over the reader's limit


async def test_no_head_within_idle_is_a_timeout() -> None:
    reader = asyncio.StreamReader()
    reader.feed_data(b"GET / HTTP/1.1\r\n")
    with pytest.raises(TimeoutError):
        await read_head(reader, idle=0.05)
