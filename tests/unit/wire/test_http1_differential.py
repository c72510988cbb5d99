"""lb's request framing against two other HTTP/1.1 parsers: where lb passes a request on,
they must not end it elsewhere.

A request lb takes (the head parse, ``request_framing``, then ``BodyFramer``) ends at
one byte; bytes after it are the next request. llhttp (httptools, what Node and uvicorn
use) and h11 (what many Python servers use) read the same bytes as an application
behind lb would. Each may refuse a request lb takes (the application answers 400 and
closes: no harm), but where one takes it, its end must be lb's: an application that
ends it earlier or later reads the rest of it, or the start of the next, as a request
("request smuggling"). Messages are built from the pieces where parsers disagree:
codings, lengths, chunk sizes, extensions, trailers, line ends.
"""

from __future__ import annotations

import h11
import httptools
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lb.errors import HttpError
from lb.wire import http1
from lb.wire.http import parse_request_head

NEXT = b"GET /next HTTP/1.1\r\nHost: a\r\n\r\n"

_framing_lines = st.lists(
    st.sampled_from(
        [
            b"Transfer-Encoding: chunked",
            b"Transfer-Encoding: CHUNKED",
            b"Transfer-Encoding: chunked, chunked",
            b"Transfer-Encoding: gzip, chunked",
            b"Transfer-Encoding: , chunked",
            b"Transfer-Encoding: chunked ",
            b"Transfer-Encoding:\tchunked",
            b"Transfer-Encoding: identity",
            b"Transfer-Encoding: xchunked",
            b"Transfer-Encoding : chunked",
            b"Content-Length: 5",
            b"Content-Length: 05",
            b"Content-Length: 5, 5",
            b"Content-Length: +5",
            b"Content-Length: 0",
            b"Content-Length: 7",
            b"Content-Length:5",
            b"X-Pad: a",
        ]
    ),
    max_size=3,
)
_size_lines = st.sampled_from(
    [b"5", b"05", b"5 ", b"5\t", b"0x5", b"+5", b"5;a", b"5;a=b", b'5;a="b;c"', b"5 ;a", b"5;a b"]
)
_chunk_ends = st.sampled_from([b"\r\n", b"\n", b"\r", b""])
_last_chunks = st.sampled_from([b"0\r\n\r\n", b"0;x\r\n\r\n", b"0\r\nT: v\r\n\r\n", b"00\r\n\r\n"])
_bodies = st.builds(
    lambda size, end, last, prefix: prefix + size + end + b"hello\r\n" + last,
    _size_lines,
    _chunk_ends,
    _last_chunks,
    st.sampled_from([b"", b"hello"]),
)


def _lb_end(raw: bytes) -> int | None:
    """Where lb ends the request at the start of `raw`; None when lb refuses it."""
    try:
        head = parse_request_head(raw, 65536)
        if head is None:
            return None
        http1.check_host(head)
        kind, length = http1.request_body(head)
        framer = http1.BodyFramer(kind, length)
        end = framer.feed(raw, head.length)
    except HttpError:
        return None
    return end if framer.done else None


class _Ends:
    def __init__(self) -> None:
        self.ends: list[int] = []
        self.fed = 0

    def on_message_complete(self) -> None:
        self.ends.append(self.fed)


def _llhttp_end(raw: bytes) -> int | None:
    """Where llhttp ends the first request, fed one byte at a time; None if it refuses."""
    ends = _Ends()
    parser = httptools.HttpRequestParser(ends)
    try:
        for i in range(len(raw)):
            ends.fed = i + 1
            parser.feed_data(raw[i : i + 1])
            if ends.ends:
                return ends.ends[0]
    except httptools.HttpParserError:
        return None
    return None


def _h11_end(raw: bytes) -> int | None:
    """Where h11 ends the first request; None if it refuses it (h11 reads a message's
    end only when the next bytes arrive, so the end is what it has not consumed)."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(raw)
    try:
        while True:
            event = conn.next_event()
            if isinstance(event, h11.EndOfMessage):
                unused, _closed = conn.trailing_data
                return len(raw) - len(unused)
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return None
    except h11.RemoteProtocolError:
        return None


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(lines=_framing_lines, body=_bodies)
def test_no_parser_ends_a_request_lb_passes_elsewhere(lines: list[bytes], body: bytes) -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\n" + b"".join(x + b"\r\n" for x in lines) + b"\r\n"
    raw += body + NEXT
    end = _lb_end(raw)
    if end is None:
        return  # refused: nothing passed on
    for name, other in (("llhttp", _llhttp_end(raw)), ("h11", _h11_end(raw))):
        assert other is None or other == end, (name, raw, end, other)
