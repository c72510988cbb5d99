"""lb.wire.http1: message framing, as a decision table and as properties over splits."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lb.errors import HttpError
from lb.wire import http1
from lb.wire.forwarded import ForwardedHeaders
from lb.wire.http import parse_request_head
from lb.wire.response_head import ResponseHead, parse_response_head


def req(raw: bytes) -> tuple[int, int]:
    head = parse_request_head(raw, 65536)
    assert head is not None
    return http1.request_body(head)


# -- request bodies -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", (http1.NO_BODY, 0)),
        (b"POST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n", (http1.NO_BODY, 0)),
        (b"POST / HTTP/1.1\r\nContent-Length: 12\r\n\r\n", (http1.LENGTH, 12)),
        (b"POST / HTTP/1.1\r\nContent-Length: 7, 7\r\n\r\n", (http1.LENGTH, 7)),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", (http1.CHUNKED, 0)),
        (b"POST / HTTP/1.1\r\nTransfer-Encoding: Chunked\r\n\r\n", (http1.CHUNKED, 0)),
    ],
)
def test_request_body_kinds(raw: bytes, expected: tuple[int, int]) -> None:
    assert req(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [
        b"POST / HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding:\r\n\r\n",
    ],
)
def test_request_coding_without_final_chunked_is_400(raw: bytes) -> None:
    with pytest.raises(HttpError) as info:
        req(raw)
    assert info.value.status == 400


def test_ambiguous_request_framing_is_refused_by_the_head_scanner() -> None:
    for raw in (
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
    ):
        with pytest.raises(HttpError) as info:
            parse_request_head(raw, 65536)
        assert info.value.status == 400


@pytest.mark.parametrize(
    ("raw", "refused"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nhOST: x\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),  # HTTP/1.0 need not send one
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHosts: x\r\nX-Host: y\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\nHOST: x\r\n\r\n", True),  # even the same twice
        (b"GET / HTTP/1.0\r\nHost: x\r\nHost: y\r\n\r\n", True),
    ],
)
def test_check_host(raw: bytes, refused: bool) -> None:
    head = parse_request_head(raw, 65536)
    assert head is not None
    if not refused:
        http1.check_host(head)
        return
    with pytest.raises(HttpError) as info:
        http1.check_host(head)
    assert info.value.status == 400


@pytest.mark.parametrize(
    ("raw", "keeps"),
    [
        (b"GET / HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nConnection: keep-alive, Close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", True),
        # RFC 9110 5.3, 7.6.1: every Connection line is part of one list
        (b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nConnection: x\r\nHost: h\r\nconnection: Close\r\n\r\n", False),
        (b"GET / HTTP/1.0\r\nConnection: te\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_request_keeps_alive(raw: bytes, keeps: bool) -> None:
    head = parse_request_head(raw, 65536)
    assert head is not None
    assert http1.request_keeps_alive(head) is keeps


@pytest.mark.parametrize(
    ("raw", "upgrade"),
    [
        (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n", False),
        (b"CONNECT h:443 HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\n\r\n", False),
        (
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: x\r\nConnection: upgrade\r\n\r\n",
            True,
        ),
    ],
)
def test_request_upgrade(raw: bytes, upgrade: bool) -> None:
    head = parse_request_head(raw, 65536)
    assert head is not None
    assert http1.request_upgrade(head) is upgrade


# -- response heads and bodies ---------------------------------------------------------------


def resp(raw: bytes) -> ResponseHead:
    head = parse_response_head(raw, 0, 65536)
    assert head is not None
    return head


@pytest.mark.parametrize(
    ("raw", "method", "expected"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "GET", (http1.LENGTH, 5)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", "GET", (http1.NO_BODY, 0)),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", "HEAD", (http1.NO_BODY, 0)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", "GET", (http1.CHUNKED, 0)),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\n\r\n", "GET", (http1.UNTIL_CLOSE, 0)),
        # the Transfer-Encoding lines are one list (RFC 9110 5.3): its last coding decides
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: ,\r\n\r\n",
            "GET",
            (http1.CHUNKED, 0),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip\r\ntransfer-encoding: chunked\r\n\r\n",
            "GET",
            (http1.CHUNKED, 0),
        ),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n\r\n",
            "GET",
            (http1.UNTIL_CLOSE, 0),
        ),
        (b"HTTP/1.1 200 OK\r\n\r\n", "GET", (http1.UNTIL_CLOSE, 0)),
        (b"HTTP/1.1 204 No Content\r\n\r\n", "GET", (http1.NO_BODY, 0)),
        (b"HTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n", "GET", (http1.NO_BODY, 0)),
        (b"HTTP/1.1 100 Continue\r\n\r\n", "POST", (http1.NO_BODY, 0)),
        (b"HTTP/1.1 101 Switching Protocols\r\n\r\n", "GET", (http1.TUNNEL, 0)),
        (b"HTTP/1.1 200 OK\r\n\r\n", "CONNECT", (http1.TUNNEL, 0)),
        (b"HTTP/1.1 407 Auth\r\nContent-Length: 2\r\n\r\n", "CONNECT", (http1.LENGTH, 2)),
        (b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\n", "GET", (http1.LENGTH, 3)),
    ],
)
def test_response_body_kinds(raw: bytes, method: str, expected: tuple[int, int]) -> None:
    assert http1.response_body(resp(raw), method) == expected


@pytest.mark.parametrize(
    ("raw", "keeps"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\n", True),
        (b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\n\r\n", False),
        (b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n", True),
    ],
)
def test_response_keeps_alive(raw: bytes, keeps: bool) -> None:
    assert http1.response_keeps_alive(resp(raw)) is keeps


def frame_all(kind: int, length: int, data: bytes, cuts: list[int]) -> tuple[int, bool]:
    """Feed `data` split at `cuts`; return where the body ended (absolute) and done."""
    framer = http1.BodyFramer(kind, length)
    pos = 0
    bounds = [*sorted({c for c in cuts if 0 < c < len(data)}), len(data)]
    for bound in bounds:
        piece = data[pos:bound]
        end = framer.feed(piece, 0)
        if framer.done:
            return pos + end, True
        assert end == len(piece)
        pos = bound
    return len(data), framer.done


CHUNKED_BODY = b"5\r\nhello\r\n1;ext=1\r\n \r\n0\r\nTrailer: x\r\n\r\n"


def test_chunked_with_extensions_and_trailers() -> None:
    assert frame_all(http1.CHUNKED, 0, CHUNKED_BODY + b"NEXT", []) == (len(CHUNKED_BODY), True)


def test_length_body_ends_exactly() -> None:
    assert frame_all(http1.LENGTH, 5, b"helloNEXT", []) == (5, True)
    assert frame_all(http1.LENGTH, 5, b"hel", []) == (3, False)


@pytest.mark.parametrize(
    "body",
    [
        b"g\r\n",  # not hex
        b"5\r\nhelloXX",  # no CRLF after data
        b"5\nhello\r\n",  # bare LF
        b"0\r\nbad trailer\r\n\r\n",  # trailer without ':'
        b"1234567890abcdef0\r\n",  # too many digits
        b"5" * (http1.MAX_CHUNK_LINE + 1),  # endless size line
    ],
)
def test_bad_chunked_bodies(body: bytes) -> None:
    framer = http1.BodyFramer(http1.CHUNKED, status=400)
    with pytest.raises(HttpError) as info:
        framer.feed(body, 0)
    assert info.value.status == 400


def test_trailers_are_bounded() -> None:
    framer = http1.BodyFramer(http1.CHUNKED, max_trailer=64)
    with pytest.raises(HttpError):
        framer.feed(b"0\r\n" + b"X-A: b\r\n" * 20, 0)


@given(st.lists(st.integers(min_value=0, max_value=len(CHUNKED_BODY) + 4), max_size=12))
def test_any_split_frames_chunked_identically(cuts: list[int]) -> None:
    data = CHUNKED_BODY + b"NEXT"
    assert frame_all(http1.CHUNKED, 0, data, cuts) == (len(CHUNKED_BODY), True)


@given(
    st.lists(st.binary(min_size=1, max_size=40), min_size=1, max_size=6),
    st.lists(st.integers(min_value=0, max_value=400), max_size=10),
)
def test_any_chunked_body_any_split(chunks: list[bytes], cuts: list[int]) -> None:
    body = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in chunks) + b"0\r\n\r\n"
    assert frame_all(http1.CHUNKED, 0, body + b"GET", cuts) == (len(body), True)


@given(st.binary(max_size=300), st.lists(st.integers(min_value=0, max_value=300), max_size=8))
def test_framer_never_reads_past_the_input_and_fails_typed(data: bytes, cuts: list[int]) -> None:
    framer = http1.BodyFramer(http1.CHUNKED, max_trailer=128)
    pos = 0
    try:
        for bound in [*sorted({c for c in cuts if 0 < c < len(data)}), len(data)]:
            piece = data[pos:bound]
            end = framer.feed(piece, 0)
            assert 0 <= end <= len(piece)
            if framer.done:
                return
            pos = bound
    except HttpError as exc:
        assert exc.status == 400


def test_header_rewrites() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\nkeep-alive: 5\r\nA: b\r\n\r\n"
    assert http1.without_connection_headers(raw) == b"GET / HTTP/1.1\r\nHost: x\r\nA: b\r\n\r\n"
    assert http1.with_header(b"HTTP/1.1 200 OK\r\n\r\n", b"Set-Cookie: a=b\r\n") == (
        b"HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\n\r\n"
    )


@pytest.mark.parametrize(
    ("raw", "upgrade", "expected"),
    [
        # the usual browser head goes as it is
        (
            b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nA: b\r\n\r\n",
            False,
            b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nA: b\r\n\r\n",
        ),
        # close stays with the client: the pooled upstream lives on
        (b"GET / HTTP/1.1\r\nConnection: close\r\n\r\n", False, b"GET / HTTP/1.1\r\n\r\n"),
        # options naming other fields do not reach the application
        (
            b"GET / HTTP/1.1\r\nConnection: keep-alive, X-Forwarded-For\r\n"
            b"X-Forwarded-For: 1.2.3.4\r\n\r\n",
            False,
            b"GET / HTTP/1.1\r\nX-Forwarded-For: 1.2.3.4\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive, Forwarded\r\n\r\n",
            False,
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ),
        # an upgrade keeps exactly Connection: upgrade
        (
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade, X-Forwarded-For\r\n\r\n",
            True,
            b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        ),
        # after empty lines before the request line (RFC 9112 2.2), a line lb adds
        # still goes after the request line, not before it
        (
            b"\r\nGET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade, X\r\n\r\n",
            True,
            b"\r\nGET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        ),
        (
            b"\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive, Forwarded\r\n\r\n",
            False,
            b"\r\n\r\nGET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ),
        # Keep-Alive and Proxy-Connection are hop-by-hop (RFC 9110 7.6.1, RFC 9112 C.2.2):
        # they go, with or without a Connection line that names them
        (
            b"GET / HTTP/1.1\r\nKeep-Alive: timeout=5\r\nHost: h\r\n\r\n",
            False,
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nProxy-Connection: keep-alive\r\n\r\n",
            False,
            b"GET / HTTP/1.1\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nkeep-alive: timeout=5\r\n\r\n",
            False,
            b"GET / HTTP/1.1\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nKeep-Alive: max=9\r\n\r\n",
            False,
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n"
            b"Proxy-Connection: x\r\n\r\n",
            True,
            b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        ),
        # equal Content-Length values (RFC 9110 8.6) become one line, after the request line
        (
            b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5, 5\r\nX-A: 1\r\n\r\n",
            False,
            b"POST / HTTP/1.1\r\nContent-Length: 5\r\nHost: h\r\nX-A: 1\r\n\r\n",
        ),
        (
            b"POST / HTTP/1.1\r\ncontent-length: 12\r\nHost: h\r\nCONTENT-LENGTH:12\r\n\r\n",
            False,
            b"POST / HTTP/1.1\r\nContent-Length: 12\r\nHost: h\r\n\r\n",
        ),
        (
            b"\r\nPOST / HTTP/1.1\r\nContent-Length: 3,3\r\nContent-Length-X: 9\r\n\r\n",
            False,
            b"\r\nPOST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length-X: 9\r\n\r\n",
        ),
        # underscore spellings of framing fields are dropped
        (
            b"GET / HTTP/1.1\r\nTransfer_Encoding: chunked\r\ncontent_length: 7\r\n"
            b"Content-Length: 0\r\n\r\n",
            False,
            b"GET / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
        ),
    ],
)
def test_upstream_hop_by_hop(raw: bytes, upgrade: bool, expected: bytes) -> None:
    head = parse_request_head(raw, 65536)
    assert head is not None
    assert http1.upstream_hop_by_hop(raw, head, upgrade) == expected


@pytest.mark.parametrize(
    ("raw", "upgrade", "expected"),
    [
        # RFC 9110 5.3: two Connection lines are one list; the options of the second
        # are the client's as much as those of the first
        (
            b"GET / HTTP/1.1\r\nConnection: keep-alive\r\nConnection: X-Forwarded-For\r\n"
            b"Host: h\r\n\r\n",
            False,
            b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nconnection:\r\nConnection: close, Forwarded\r\n\r\n",
            False,
            b"GET / HTTP/1.1\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\nCONNECTION: X-Real-IP\r\n\r\n",
            False,
            b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
        ),
        # a request lb does not take for an upgrade must not ask the application for one
        (
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: keep-alive\r\n"
            b"Connection: Upgrade\r\n\r\n",
            False,
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\n\r\n",
        ),
        (
            b"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Connection: X-Forwarded-For\r\n\r\n",
            True,
            b"GET / HTTP/1.1\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n",
        ),
    ],
)
def test_upstream_hop_by_hop_reads_every_connection_line(
    raw: bytes, upgrade: bool, expected: bytes
) -> None:
    head = parse_request_head(raw, 65536)
    assert head is not None
    assert http1.upstream_hop_by_hop(raw, head, upgrade) == expected


def _without_connection_lines(raw: bytes) -> bytes:
    """The rule, line by line: drop header lines named Connection, Keep-Alive or
    Proxy-Connection (any case), keep every other line as it is."""
    lines = raw.split(b"\r\n")
    names = (b"connection:", b"keep-alive:", b"proxy-connection:")
    return b"\r\n".join([lines[0]] + [ln for ln in lines[1:] if not ln.lower().startswith(names)])


@given(
    st.lists(
        st.sampled_from(
            [
                b"Connection: close",
                b"connection:keep-alive",
                b"CONNECTION: Upgrade",
                b"Keep-Alive: timeout=5",
                b"Proxy-Connection: close",
                b"Connection-Extra: stays",
                b"X-Connection: stays",
                b"Content-Length: 7",
                b"Set-Cookie: connection: not a header",
                b"keep-alive:",
                b"Proxy-Connection:x",
                b"X-A: \xe9 Connection: \xc9",
            ]
        ),
        max_size=8,
    )
)
def test_without_connection_headers_drops_exactly_those_lines(lines: list[bytes]) -> None:
    raw = b"\r\n".join([b"HTTP/1.1 200 OK", *lines]) + b"\r\n\r\n"
    assert http1.without_connection_headers(raw) == _without_connection_lines(raw)


_FORWARDING_NAMES = (
    *("x-forwarded-for", "x-forwarded-proto", "forwarded", "x-real-ip", "x-client-ip"),
    *("client-ip", "true-client-ip", "x-forwarded-host", "x-forwarded-port"),
    *("x-forwarded-prefix", "x-forwarded-server", "x-forwarded-ssl", "x-forwarded-scheme"),
    *("x-url-scheme", "front-end-https"),
)
_HOSTILE_FIELDS = [
    *(f"{n}: 6.6.6.6" for n in ("X-Forwarded-For", "x_forwarded_FOR", "X-Forwarded_For")),
    *("X_FORWARDED_PROTO: https", "x-forwarded-proto:https", "Forwarded: for=6.6.6.6"),
    *("FORWARDED:for=6.6.6.6", "X-Real-IP: 6.6.6.6", "x_real_ip:6.6.6.6"),
    *("Connection: keep-alive", "connection:", "Connection: close", "CONNECTION: Upgrade"),
    *("Connection: keep-alive, X-Forwarded-For", "Connection: Forwarded", "Upgrade: websocket"),
    *("Transfer_Encoding: chunked", "content_LENGTH: 7", "Content-Length: 0", "Host: h"),
    *("X-Forwarded-Host: h", "Keep-Alive: 5", "X-A: Connection: close", "True_Client_IP: 6"),
    *("x-forwarded_port: 1", "Client-IP: 6.6.6.6", "X-FORWARDED-PREFIX: /x"),
    *("content-LENGTH: 0, 0", "Content-Length:0,0 , 0"),
]


@given(
    st.lists(st.sampled_from(_HOSTILE_FIELDS), max_size=10),
    st.sampled_from(["", "\r\n", "\r\n\r\n"]),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
    st.booleans(),
)
def test_what_reaches_the_application_from_an_untrusted_client(
    fields: list[str], lead: str, version: str, upgrade: bool
) -> None:
    """The two pure steps of a request head on its way to the application (the forwarded
    rewrite, then upstream_hop_by_hop), over heads of hostile fields in any order and
    number: lb's three forwarding fields once each, none of the client's in any
    spelling, no '_' framing field, and no Connection option but keep-alive (or exactly
    upgrade for an upgrade)."""
    raw = f"{lead}GET / {version}\r\n{''.join(f + chr(13) + chr(10) for f in fields)}\r\n"
    data = raw.encode("latin-1")
    head = parse_request_head(data, 65536)
    assert head is not None
    rewritten = ForwardedHeaders("192.0.2.7", "http", False).rewrite(head, data)
    out = http1.upstream_hop_by_hop(rewritten, head, upgrade)
    assert out.endswith(b"\r\n\r\n") and out.startswith(data[: data.index(b"GET")])
    lines = out[:-4].decode("latin-1").split("\r\n")[len(lead) // 2 + 1 :]
    named = [(n.lower(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]
    spoofable = [(n, v) for n, v in named if n.replace("_", "-") in _FORWARDING_NAMES]
    assert sorted(spoofable) == [
        ("forwarded", "for=192.0.2.7;proto=http"),
        ("x-forwarded-for", "192.0.2.7"),
        ("x-forwarded-proto", "http"),
    ], out
    assert not [n for n, _ in named if n in ("transfer_encoding", "content_length")], out
    lengths = [v for n, v in named if n == "content-length"]
    assert lengths == (["0"] if head.length_values > 1 else lengths[:1]), out
    options = {t.strip().lower() for n, v in named if n == "connection" for t in v.split(",")}
    options.discard("")
    assert options <= ({"upgrade"} if upgrade else {"keep-alive"}), out


@given(
    st.lists(st.sampled_from(_HOSTILE_FIELDS), max_size=10),
    st.sampled_from(["HTTP/1.1", "HTTP/1.0"]),
    st.booleans(),
)
def test_connection_options_read_by_request_framing_are_the_ones_read_again(
    fields: list[str], version: str, upgrade: bool
) -> None:
    """upstream_hop_by_hop takes the Connection options request_framing read (the head
    keeps them); its answer is the one of a head no one read before."""
    raw = f"GET / {version}\r\n{''.join(f + chr(13) + chr(10) for f in fields)}\r\n"
    data = raw.encode("latin-1")
    fresh, framed = parse_request_head(data, 65536), parse_request_head(data, 65536)
    assert fresh is not None and framed is not None
    try:
        http1.request_framing(framed)
    except HttpError:
        return
    assert framed.connection_options is not None and fresh.connection_options is None
    assert http1.upstream_hop_by_hop(data, framed, upgrade) == http1.upstream_hop_by_hop(
        data, fresh, upgrade
    )


def test_with_one_content_length_keeps_a_responses_other_lines() -> None:
    raw = b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nX: y\r\ncontent-length: 2\r\n\r\n"
    assert (
        http1.with_one_content_length(raw, 2)
        == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX: y\r\n\r\n"
    )


@pytest.mark.parametrize(
    "line",
    [
        b"Transfer-Encoding: Chunked",
        b"Transfer-Encoding:\tchunked",
        b"Transfer-Encoding: chunked ",
        b"Transfer-Encoding: chunked\t",
        b"Transfer-Encoding:  chunked",
        b"Transfer-Encoding:chunked",
        b"transfer-encoding: chunked",
    ],
)
def test_a_chunked_line_goes_on_as_lb_writes_it(line: bytes) -> None:
    """A server that compares the value as written, or skips one space after the colon,
    reads no body for any of these spellings: the application gets lb's own line."""
    raw = b"POST / HTTP/1.1\r\nHost: h\r\n" + line + b"\r\nX-A: 1\r\n\r\n"
    head = parse_request_head(raw, 65536)
    assert head is not None
    assert http1.request_framing(head).kind == http1.CHUNKED
    assert http1.upstream_hop_by_hop(raw, head, False) == (
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\nHost: h\r\nX-A: 1\r\n\r\n"
    )


def test_a_chunked_line_as_lb_writes_it_goes_on_unchanged() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n"
    head = parse_request_head(raw, 65536)
    assert head is not None
    assert http1.request_framing(head).kind == http1.CHUNKED
    assert http1.upstream_hop_by_hop(raw, head, False) is raw
