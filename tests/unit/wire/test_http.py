"""Tests for lb.wire.http: request heads, Set-Cookie insertion, canned error responses."""

from __future__ import annotations

import inspect
import re
import string
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import HttpError
from lb.wire import http as http_module
from lb.wire.http import (
    RETRY_AFTER,
    RequestHead,
    error_response,
    parse_request_head,
)

BIG = 1 << 20

# -- strategies -----------------------------------------------------------------------

TOKEN_CHARS = "!#$%&'*+-.^_`|~" + string.ascii_letters + string.digits
tokens = st.text(TOKEN_CHARS, min_size=1, max_size=10)
header_names = tokens.filter(lambda n: n.lower() not in ("content-length", "transfer-encoding"))
VALUE_CHARS = [chr(c) for c in range(0x20, 0x7F)] + [chr(c) for c in range(0x80, 0x100)] + ["\t"]
header_values = st.text(st.sampled_from(VALUE_CHARS), max_size=30).map(lambda v: v.strip(" \t"))
ows = st.sampled_from(["", " ", "\t", "  "])
PATH_CHARS = string.ascii_letters + string.digits + "-._~%!$&'()*+,;=:@/?"
targets = st.one_of(
    st.text(PATH_CHARS, max_size=40).map(lambda t: "/" + t),
    st.just("*"),
    st.text(PATH_CHARS, max_size=20).map(lambda t: "http://example.com/" + t),
)


@st.composite
def valid_heads(draw: st.DrawFn) -> tuple[bytes, RequestHead]:
    """A valid request head and the RequestHead it must parse to."""
    leading = draw(st.integers(0, 2))
    method = draw(tokens)
    target = draw(targets)
    version = draw(st.sampled_from(["HTTP/1.0", "HTTP/1.1"]))
    headers = draw(st.lists(st.tuples(header_names, header_values), max_size=12))
    text = "\r\n" * leading + f"{method} {target} {version}\r\n"
    for name, value in headers:
        text += f"{name}:{draw(ows)}{value}{draw(ows)}\r\n"
    text += "\r\n"
    raw = text.encode("latin-1")
    return raw, RequestHead(method, target, version, headers, len(raw))


def parse(data: bytes, max_bytes: int = BIG) -> RequestHead | None:
    return parse_request_head(data, max_bytes)


def status_of(data: bytes, max_bytes: int = BIG) -> int:
    with pytest.raises(HttpError) as info:
        parse_request_head(data, max_bytes)
    return info.value.status


# -- valid heads ----------------------------------------------------------------------


def test_simple_get() -> None:
    data = b"GET /index.html?a=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
    head = parse(data)
    assert head == RequestHead(
        "GET",
        "/index.html?a=1",
        "HTTP/1.1",
        [("Host", "example.com"), ("Accept", "*/*")],
        len(data),
    )
    assert head.path == "/index.html"
    assert head.query == "a=1"


def test_post_with_body_reports_head_length_only() -> None:
    head_bytes = b"POST /form HTTP/1.1\r\nHost: x\r\nContent-Length: 7\r\n\r\n"
    head = parse(head_bytes + b"a=1&b=2")
    assert head is not None
    assert head.method == "POST"
    assert head.length == len(head_bytes)
    assert head.header("content-length") == "7"


def test_http_1_0_without_headers() -> None:
    head = parse(b"GET / HTTP/1.0\r\n\r\n")
    assert head is not None
    assert head.version == "HTTP/1.0"
    assert head.headers == []


@pytest.mark.parametrize("leading", [b"\r\n", b"\r\n\r\n"])
def test_up_to_two_leading_empty_lines_are_skipped(leading: bytes) -> None:
    data = leading + b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    head = parse(data)
    assert head is not None
    assert head.target == "/a"
    assert head.length == len(data)


def test_header_values_are_stripped_and_names_kept_as_sent() -> None:
    head = parse(b"GET / HTTP/1.1\r\nX-Thing: \t a  b \t\r\nEmpty:\r\n\r\n")
    assert head is not None
    assert head.headers == [("X-Thing", "a  b"), ("Empty", "")]


def test_header_lookup_is_case_insensitive_first_occurrence() -> None:
    head = parse(b"GET / HTTP/1.1\r\nX-A: 1\r\nx-a: 2\r\n\r\n")
    assert head is not None
    assert head.header("X-A") == "1"
    assert head.header("x-A") == "1"
    assert head.header("X-B") is None


def test_non_ascii_values_decode_as_latin1() -> None:
    head = parse(b"GET / HTTP/1.1\r\nX-Name: caf\xe9 \xff\r\n\r\n")
    assert head is not None
    assert head.header("x-name") == "caf\u00e9 \u00ff"


def test_cookies_from_all_headers_first_occurrence_wins_bad_pairs_skipped() -> None:
    data = (
        b"GET / HTTP/1.1\r\n"
        b"Cookie: a=1; b=2;c; =4; d=\r\n"
        b"X-Other: a=9\r\n"
        b"cookie: a=3; e = 5 ;bad name=6\r\n\r\n"
    )
    head = parse(data)
    assert head is not None
    assert head.cookies() == {"a": "1", "b": "2", "d": "", "e": "5"}


@pytest.mark.parametrize("name", ["a", "b", "c", "d", "e", "bad name", "", "x", "=4", "bad"])
def test_one_cookie_is_what_cookies_holds(name: str) -> None:
    data = (
        b"GET / HTTP/1.1\r\n"
        b"Cookie: a=1; b=2;c; =4; d=\r\n"
        b"X-Other: a=9; x=1\r\n"
        b"cookie: a=3; e = 5 ;bad name=6\r\n\r\n"
    )
    head = parse(data)
    assert head is not None
    assert head.cookie(name) == head.cookies().get(name)


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Cookie", "cookie", "COOKIE", "X-Cookie", "Host"]),
            st.text(alphabet=st.sampled_from(list('ab=; \t"xé,')), max_size=30),
        ),
        max_size=5,
    ),
    st.sampled_from(["a", "b", "ab", "a b", "", "é", "x"]),
)
def test_one_cookie_is_what_cookies_holds_for_any_fields(
    fields: list[tuple[str, str]], name: str
) -> None:
    head = RequestHead("GET", "/", "HTTP/1.1", [(k, v.strip(" \t")) for k, v in fields], 20)
    assert head.cookie(name) == head.cookies().get(name)


@pytest.mark.parametrize("value", ["s" * 4000 + "=1", "ss" * 2000, " s" * 2000 + "=x"])
def test_one_cookie_reads_a_value_of_many_names_in_one_pass(value: str) -> None:
    """A Cookie value of thousands of copies of the name in one pair: the search goes on
    after the pair, not one character on (which looked at the rest of the pair again
    for every copy: seconds of CPU per request at head_bytes = 1 MiB). Counted in calls
    the pure build makes, not timed."""
    if not inspect.isfunction(RequestHead.cookie):
        pytest.skip("compiled: its calls are not visible to a profiler")
    head = RequestHead("GET", "/", "HTTP/1.1", [("Cookie", value)], 20)
    calls = 0

    def count(_frame: object, event: str, _arg: object) -> None:
        nonlocal calls
        calls += event == "c_call"

    sys.setprofile(count)
    try:
        got = head.cookie("s")
    finally:
        sys.setprofile(None)
    assert got == head.cookies().get("s")
    assert calls < 40, calls


def test_cookies_without_cookie_header() -> None:
    head = parse(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert head is not None
    assert head.cookies() == {}


@pytest.mark.parametrize(
    ("target", "path", "query"),
    [
        ("/", "/", ""),
        ("/a/b?x=1&y=2", "/a/b", "x=1&y=2"),
        ("/a?b?c", "/a", "b?c"),
        ("/a?", "/a", ""),
        ("*", "", ""),
        ("http://example.com/a/b?q=1", "/a/b", "q=1"),
        ("http://example.com", "/", ""),
        ("https://example.com:8443?q=1", "/", "q=1"),
        ("example.com:443", "", ""),
    ],
)
def test_path_and_query(target: str, path: str, query: str) -> None:
    method = "CONNECT" if target == "example.com:443" else "GET"
    head = parse(f"{method} {target} HTTP/1.1\r\n\r\n".encode())
    assert head is not None
    assert (head.path, head.query) == (path, query)


def test_identical_content_length_values_are_accepted() -> None:
    head = parse(b"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length: 5, 5\r\n\r\n")
    assert head is not None
    assert head.length_values == 3  # made one on the way to the application


@pytest.mark.parametrize(
    ("fields", "values"),
    [
        (b"", 0),
        (b"Content-Length: 5\r\n", 1),
        (b"content-LENGTH:5\r\nHost: h\r\n", 1),
        (b"Content-Length: 5,5\r\n", 2),
        (b"Content-Length: 0\r\nCONTENT-length: 0 , 0\r\n", 3),
        (b"Content-Length-X: 5, 5\r\nContent_Length: 5\r\nContent-Length: 5\r\n", 1),
    ],
)
def test_length_values_counts_every_content_length_value(fields: bytes, values: int) -> None:
    head = parse(b"POST / HTTP/1.1\r\n" + fields + b"\r\n")
    assert head is not None
    assert head.length_values == values


def test_transfer_encoding_alone_is_accepted() -> None:
    head = parse(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert head is not None


def test_exactly_100_header_lines_are_accepted() -> None:
    data = b"GET / HTTP/1.1\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(100)) + b"\r\n"
    head = parse(data)
    assert head is not None
    assert len(head.headers) == 100


# -- malformed heads: 400 -------------------------------------------------------------

BAD_HEADS = {
    "method not a token": b"G(T / HTTP/1.1\r\n\r\n",
    "empty method": b" / HTTP/1.1\r\n\r\n",
    "lowercase version": b"GET / http/1.1\r\n\r\n",
    "http 2 version": b"GET / HTTP/2.0\r\n\r\n",
    "http 0.9 version": b"GET / HTTP/0.9\r\n\r\n",
    "missing version": b"GET /\r\n\r\n",
    "double space": b"GET  / HTTP/1.1\r\n\r\n",
    "extra part": b"GET / x HTTP/1.1\r\n\r\n",
    "trailing space": b"GET / HTTP/1.1 \r\n\r\n",
    "CTL in target": b"GET /a\x01b HTTP/1.1\r\n\r\n",
    "DEL in target": b"GET /a\x7f HTTP/1.1\r\n\r\n",
    "tab in target": b"GET /a\tb HTTP/1.1\r\n\r\n",
    "header without colon": b"GET / HTTP/1.1\r\nHost x\r\n\r\n",
    "header name not a token": b"GET / HTTP/1.1\r\nHo(st: x\r\n\r\n",
    "empty header name": b"GET / HTTP/1.1\r\n: x\r\n\r\n",
    "space before colon": b"GET / HTTP/1.1\r\nHost : x\r\n\r\n",
    "tab before colon": b"GET / HTTP/1.1\r\nHost\t: x\r\n\r\n",
    "obs-fold with space": b"GET / HTTP/1.1\r\nX-A: 1\r\n 2\r\n\r\n",
    "obs-fold with tab": b"GET / HTTP/1.1\r\nX-A: 1\r\n\t2\r\n\r\n",
    "CTL in value": b"GET / HTTP/1.1\r\nX-A: a\x01b\r\n\r\n",
    "DEL in value": b"GET / HTTP/1.1\r\nX-A: a\x7fb\r\n\r\n",
    "vertical tab in value": b"GET / HTTP/1.1\r\nX-A: a\x0bb\r\n\r\n",
    "NUL in value": b"GET / HTTP/1.1\r\nX-A: a\x00b\r\n\r\n",
    "NUL in target": b"GET /\x00 HTTP/1.1\r\n\r\n",
    "bare CR in value": b"GET / HTTP/1.1\r\nX-A: a\rb\r\n\r\n",
    "bare LF in value": b"GET / HTTP/1.1\r\nX-A: a\nb\r\n\r\n",
    "bare LF line ends": b"GET / HTTP/1.1\nHost: x\n\n",
    "bare LF after request line": b"GET / HTTP/1.1\nHost: x\r\n\r\n",
    "101 header lines": b"GET / HTTP/1.1\r\n"
    + b"".join(b"X-%d: v\r\n" % i for i in range(101))
    + b"\r\n",
    "three leading empty lines": b"\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n",
    "content-length and transfer-encoding": (
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n"
    ),
    "transfer-encoding then content-length": (
        b"POST / HTTP/1.1\r\ntransfer-encoding: chunked\r\ncontent-length: 3\r\n\r\n"
    ),
    "differing content-length headers": (
        b"POST / HTTP/1.1\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n"
    ),
    "differing content-length list": b"POST / HTTP/1.1\r\nContent-Length: 3, 4\r\n\r\n",
    "non-numeric content-length": b"POST / HTTP/1.1\r\nContent-Length: 3a\r\n\r\n",
    "negative content-length": b"POST / HTTP/1.1\r\nContent-Length: -3\r\n\r\n",
    "empty content-length": b"POST / HTTP/1.1\r\nContent-Length:\r\n\r\n",
    "unicode digit content-length": b"POST / HTTP/1.1\r\nContent-Length: \xb2\r\n\r\n",
    "huge content-length": b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 5000 + b"\r\n\r\n",
}


@pytest.mark.parametrize("data", BAD_HEADS.values(), ids=BAD_HEADS.keys())
def test_malformed_head_is_400(data: bytes) -> None:
    assert status_of(data) == 400


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # a TLS ClientHello
        b"GET / HTTP/1.1\n",
        b"GET / HTTP/1.1\r\nHost: x\n",
        b"GET / HTTP/3\r\n",
        b"GET /a\x00",
        b"G\rET",
    ],
)
def test_hopeless_incomplete_head_fails_early(data: bytes) -> None:
    assert status_of(data) == 400


# -- need more, limits ----------------------------------------------------------------


@settings(max_examples=200)
@given(valid_heads())
def test_valid_head_parses_to_its_model(case: tuple[bytes, RequestHead]) -> None:
    raw, expected = case
    assert parse(raw, len(raw)) == expected


@settings(max_examples=200)
@given(valid_heads(), st.binary(max_size=50))
def test_bytes_after_the_head_are_ignored(case: tuple[bytes, RequestHead], body: bytes) -> None:
    raw, expected = case
    assert parse(raw + body, len(raw)) == expected


@settings(max_examples=100)
@given(valid_heads())
def test_every_proper_prefix_of_a_valid_head_needs_more(case: tuple[bytes, RequestHead]) -> None:
    raw, _ = case
    for end in range(len(raw)):
        assert parse(raw[:end]) is None, raw[:end]


# -- what a head holds, for the steps after the parse --------------------------------

# The searches of the head's bytes these flags replace, as they were: a line that starts
# with the name (any case; '-' or '_' where the name has '-') and a ':'.
_CONNECTION_LINE = re.compile(rb"\r\nconnection:", re.I)
_FORWARDED_LINE = re.compile(
    rb"\r\n(?:x[-_]forwarded[-_](?:for|proto|host|port|prefix|server|ssl|scheme)|forwarded"
    rb"|x[-_]real[-_]ip|(?:x[-_]|true[-_])?client[-_]ip|x[-_]url[-_]scheme|front[-_]end[-_]https):",
    re.I,
)
_UNDERSCORE_FRAMING_LINE = re.compile(rb"\r\n(?:transfer_encoding|content_length):", re.I)
_HOP_LINE = re.compile(rb"\r\n(?:keep-alive|proxy-connection):", re.I)
_HOST_LINE = re.compile(rb"\r\nhost:", re.I)
_NOTABLE_NAMES = [
    *(
        "".join(sep if c == "-" else c for c in name)
        for name in ("x-forwarded-for", "x-forwarded-proto", "x-real-ip", "forwarded")
        for sep in "-_"
    ),
    *("X_Forwarded-For", "x-FORWARDED_proto", "X-Real_IP", "Forwarded-For", "X-Forwarded"),
    *("X-Forwarded-Host", "x_forwarded_PORT", "X-Forwarded-Prefix", "X-Forwarded-Server"),
    *("X-Forwarded-Ssl", "X-Client-IP", "client_ip", "True-Client-IP", "True-Client"),
    *("X-Forwarded-Hosts", "Client-IPs", "X-Client", "Y-Client-IP", "X-Forwarded-Sslx"),
    *("X-Forwarded-Scheme", "x_url_SCHEME", "Front-End-Https", "X-Url-Schemes", "Front-End"),
    *("Connection", "CONNECTION", "Connections", "Proxy-Connection", "Keep-Alive"),
    *("keep-ALIVE", "Keep_Alive", "proxy-connection", "Proxy-Connections", "Keep-Alives"),
    *("Transfer_Encoding", "content_LENGTH", "Content_Lengths", "Host", "Cookie", "Accept"),
    *("host", "HOST", "Hosts", "X-Host", "Hos"),
]


@settings(max_examples=300)
@given(st.lists(st.tuples(st.one_of(st.sampled_from(_NOTABLE_NAMES), header_names), header_values)))
def test_what_a_head_holds_is_what_a_search_of_its_bytes_finds(
    fields: list[tuple[str, str]],
) -> None:
    fields = fields[: http_module.MAX_HEADER_LINES]
    raw = b"GET / HTTP/1.1\r\n" + b"".join(f"{n}: {v}\r\n".encode("latin-1") for n, v in fields)
    head = parse(raw + b"\r\n")
    assert head is not None
    assert head.has_connection == (_CONNECTION_LINE.search(raw) is not None)
    assert head.has_forwarded_fields == (_FORWARDED_LINE.search(raw) is not None)
    assert head.has_underscore_framing == (_UNDERSCORE_FRAMING_LINE.search(raw) is not None)
    assert head.has_hop_fields == (_HOP_LINE.search(raw) is not None)
    assert head.host_lines == len(_HOST_LINE.findall(raw))


def test_what_a_head_holds_in_every_spelling() -> None:
    for name in ("X-FORWARDED_FOR", "x_real_ip", "Forwarded", "x-forwarded-proto", "Client-IP"):
        head = parse(f"GET / HTTP/1.1\r\n{name}: 1\r\n\r\n".encode())
        assert head is not None and head.has_forwarded_fields, name
        assert not head.has_connection and not head.has_underscore_framing
    head = parse(b"GET / HTTP/1.1\r\nconnection: close\r\nTRANSFER_encoding: x\r\n\r\n")
    assert head is not None and head.has_connection and head.has_underscore_framing
    head = parse(b"GET / HTTP/1.1\r\nX-Forwarded-Hosts: a\r\nKeep-Alive: 5\r\n\r\n")
    assert head is not None and head.has_hop_fields
    assert not (head.has_connection or head.has_forwarded_fields or head.has_underscore_framing)
    head = parse(b"GET / HTTP/1.1\r\nx_forwarded_PREFIX: /a\r\n\r\n")
    assert head is not None and head.has_forwarded_fields
    head = parse(b"GET / HTTP/1.1\r\nPROXY-connection: x\r\n\r\n")
    assert head is not None and head.has_hop_fields


def test_empty_buffer_needs_more() -> None:
    assert parse(b"") is None


def test_431_boundary_exactly_fits_vs_one_byte_over() -> None:
    raw = b"GET /abc HTTP/1.1\r\nHost: example.com\r\n\r\n"
    size = len(raw)
    assert parse(raw, size) is not None
    assert status_of(raw, size - 1) == 431
    # a buffer of max_bytes bytes without a head end can never complete
    assert status_of(raw[: size - 1], size - 1) == 431
    assert parse(raw[: size - 2], size - 1) is None
    # one byte over, with more bytes already buffered
    assert status_of(raw + b"body", size - 1) == 431


def test_431_is_decided_within_max_bytes_of_a_long_buffer() -> None:
    data = b"GET /" + b"a" * 1_000_000 + b" HTTP/1.1\r\n\r\n"
    assert status_of(data, 8192) == 431


def test_leading_empty_lines_count_towards_the_limit() -> None:
    raw = b"\r\n\r\nGET / HTTP/1.1\r\n\r\n"
    assert parse(raw, len(raw)) is not None
    assert status_of(raw, len(raw) - 1) == 431


# -- robustness -----------------------------------------------------------------------

PIECES = [
    b"GET",
    b"POST",
    b" ",
    b"/",
    b"/a?b=c",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"\r\n",
    b"\r",
    b"\n",
    b":",
    b"Host",
    b"Content-Length: 1",
    b"Transfer-Encoding: x",
    b"\t",
    b"\x00",
    b"\x7f",
    b"\xe9",
    b"x",
]


@st.composite
def mutated_heads(draw: st.DrawFn) -> bytes:
    """A valid head (maybe with a body) with a few pieces spliced in or cut out."""
    raw, _ = draw(valid_heads())
    data = bytearray(raw + draw(st.sampled_from([b"", b"body", b"\r\n\r\n"])))
    for _ in range(draw(st.integers(0, 2))):
        at = draw(st.integers(0, len(data)))
        if draw(st.booleans()):
            data[at:at] = draw(st.sampled_from(PIECES))
        else:
            del data[at : at + draw(st.integers(1, 3))]
    return bytes(data)


http_like = st.one_of(st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join), mutated_heads())


def outcome(data: bytes, max_bytes: int) -> object:
    try:
        return parse_request_head(data, max_bytes)
    except HttpError as exc:
        assert exc.status in (400, 431)
        return exc.status


@settings(max_examples=500)
@given(st.one_of(st.binary(max_size=200), http_like), st.integers(1, 300))
def test_any_bytes_give_none_a_head_or_http_error(data: bytes, max_bytes: int) -> None:
    result = outcome(data, max_bytes)
    if isinstance(result, RequestHead):
        assert 0 < result.length <= min(len(data), max_bytes)
        assert data[result.length - 4 : result.length] == b"\r\n\r\n"


@settings(max_examples=500)
@given(http_like, st.integers(0, 1000), st.integers(8, 400))
def test_a_decided_prefix_stays_decided(data: bytes, cut: int, max_bytes: int) -> None:
    decided = outcome(data[: cut % (len(data) + 1)], max_bytes)
    if decided is not None:
        assert outcome(data, max_bytes) == decided


# -- error responses ------------------------------------------------------------------

REASONS = {  # RFC 9110 section 15
    400: "Bad Request",
    408: "Request Timeout",
    413: "Content Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
}


@pytest.mark.parametrize(("status", "reason"), REASONS.items())
def test_error_response_is_a_complete_closing_response(status: int, reason: str) -> None:
    response = error_response(status)
    head, sep, body = response.partition(b"\r\n\r\n")
    assert sep
    lines = head.decode("ascii").split("\r\n")
    assert lines[0] == f"HTTP/1.1 {status} {reason}"
    fields = dict(line.split(": ", 1) for line in lines[1:])
    assert fields["Content-Type"] == "text/plain; charset=utf-8"
    assert fields["Connection"] == "close"
    assert int(fields["Content-Length"]) == len(body)
    assert body == f"{status} {reason}\n".encode()
    assert error_response(status) is response


@pytest.mark.parametrize("status", [s for s in REASONS if s != 503])
def test_only_a_503_says_retry_after(status: int) -> None:
    """Every 503 lb answers is a condition that passes (a full table, a home whose link is
    not up, sessions a node that hears no peer holds): it tells the client when to try
    again (RFC 9110 10.2.3); no other error answer does."""
    assert b"\r\nRetry-After:" not in error_response(status)
    head = error_response(503).partition(b"\r\n\r\n")[0].decode("ascii")
    assert [x for x in head.split("\r\n") if x.startswith("Retry-After")] == [
        f"Retry-After: {RETRY_AFTER}"
    ]
    assert RETRY_AFTER == 1


@pytest.mark.parametrize("status", [200, 404, 418, 599])
def test_error_response_for_other_statuses_is_refused(status: int) -> None:
    with pytest.raises(ValueError):
        error_response(status)


# -- boundaries that a mutation of the code would cross --------------------------------


def test_content_length_of_18_digits_is_taken_and_of_19_is_400() -> None:
    head = parse(b"POST / HTTP/1.1\r\nContent-Length: " + b"9" * 18 + b"\r\n\r\n")
    assert head is not None
    assert head.header("Content-Length") == "9" * 18
    assert status_of(b"POST / HTTP/1.1\r\nContent-Length: " + b"1" * 19 + b"\r\n\r\n") == 400
    assert status_of(b"POST / HTTP/1.1\r\nContent-Length: 0" + b"0" * 18 + b"\r\n\r\n") == 400


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("If-Modified-Since", "Sat, 29 Oct 1994 19:43:31 GMT"),  # 17 chars: Transfer-Encoding
        ("Accept-Charset", "utf-8, iso-8859-1;q=0.5"),  # 14 chars: Content-Length
    ],
)
def test_headers_as_long_as_the_framing_ones_are_not_taken_for_them(name: str, value: str) -> None:
    data = f"POST /f HTTP/1.1\r\n{name}: {value}\r\nContent-Length: 5\r\n\r\n".encode()
    head = parse(data)
    assert head is not None
    assert head.headers == [(name, value), ("Content-Length", "5")]
    assert head.header(name) == value
    # and the framing headers themselves are still recognised, in any case
    assert (
        status_of(
            data.replace(b"Content-Length: 5", b"Transfer-Encoding: chunked\r\nContent-Length: 5")
        )
        == 400
    )
    assert (
        status_of(data.replace(b"Content-Length: 5", b"content-LENGTH: 5\r\nContent-Length: 6"))
        == 400
    )


@pytest.mark.parametrize("byte", [0x1F, 0x01, 0x08, 0x0B, 0x0C, 0x7F])
def test_control_bytes_up_to_0x1f_are_400_in_a_head(byte: int) -> None:
    assert status_of(b"GET / HTTP/1.1\r\nX-A: a" + bytes([byte]) + b"b\r\n\r\n") == 400
    assert status_of(b"GET / HTTP/1.1\r\nX" + bytes([byte]) + b"A: ab\r\n\r\n") == 400


def test_0x20_and_tab_are_fine_in_a_value() -> None:
    head = parse(b"GET / HTTP/1.1\r\nX-A: a \tb\r\n\r\n")
    assert head is not None and head.header("x-a") == "a \tb"


@pytest.mark.parametrize("name", ["X-Foo", "X-Cook", "Cookies", "Cooki", "Set-Cookie", "X-Cookie"])
def test_cookies_come_only_from_cookie_headers(name: str) -> None:
    head = parse(f"GET / HTTP/1.1\r\n{name}: lbhome=evil\r\nCookie: a=1\r\n\r\n".encode())
    assert head is not None
    assert head.cookies() == {"a": "1"}
    alone = parse(f"GET / HTTP/1.1\r\n{name}: lbhome=evil\r\n\r\n".encode())
    assert alone is not None and alone.cookies() == {}


def test_cookie_header_name_is_case_insensitive() -> None:
    head = parse(b"GET / HTTP/1.1\r\ncOOKIE: lbhome=v\r\n\r\n")
    assert head is not None and head.cookies() == {"lbhome": "v"}


# -- the quick pass against the full check ---------------------------------------------
_REQUEST_LINES = [
    b"GET / HTTP/1.1",
    b"GET /a?b=c HTTP/1.0",
    b"POST http://h/p HTTP/1.1",
    b"OPTIONS * HTTP/1.1",
    b"CONNECT h:443 HTTP/1.1",
    b"GET /caf\xe9 HTTP/1.1",
    b"GET  / HTTP/1.1",
    b"GET / HTTP/1.2",
    b"GET / HTTP/1.1 ",
    b"GET\t/ HTTP/1.1",
    b"G@T / HTTP/1.1",
    b"GET /\x00 HTTP/1.1",
    b"GET /\x7f HTTP/1.1",
    b"get / http/1.1",
    b"GET / HTTP/1.1x",
    b"",
]
_REQUEST_HEADER_LINES = [
    b"Host: x",
    b"Cookie: lbhome=a.1.b; sid=2",
    b"Content-Length: 7",
    b"content-length:7",
    b"Content-Length: 8",
    b"Content-Length: 007",
    b"Content-Length: 7, 7",
    b"Content-Length: 7,8",
    b"Content-Length: 12345678901234567890",
    b"Content-Length: 999999999999999999",
    b"Content-Length: -1",
    b"Content-Length: \xb2",
    b"Content-Length: ",
    b"Content-Length: 7 ",
    b"Transfer-Encoding: chunked",
    b"transfer-encoding: gzip",
    b"Connection: close",
    b"X-Spaces:   v   ",
    b"X-Tab:\tv\t",
    b"X-Inner: a \t b",
    b"X-Empty:",
    b"X-Blank:   ",
    b"X-Obs: caf\xe9",
    b"X-Colon: a:b:c",
    b"X-Nul: a\x00b",
    b"X-Bare-CR: a\rb",
    b"X-Bare-LF: a\nb",
    b"X-Del: \x7f",
    b" folded",
    b"\tfolded",
    b"Bad Name: x",
    b"Bad : x",
    b": empty",
    b"NoColon",
    b"X-\xe9: latin",
    b'X-Quote": y',
    b"",
]


def _assert_quick_pass_is_the_full_check(data: bytes | bytearray, max_bytes: int) -> None:
    """Where the quick pass decides a head, the full check decides it alike; where the
    full check refuses it (or needs more bytes), the quick pass does not decide."""
    n = min(len(data), max_bytes)
    try:
        pos = http_module._skip_empty_lines(data, n)
    except HttpError:
        return  # decided before either pass runs
    fast = http_module._parse_fast(data, pos, n)
    end = data.find(b"\r\n\r\n", pos, n)
    if end < 0:
        assert fast is None, (data, fast)
        return
    try:
        reference = http_module._parse_complete(data[pos:end], end + 4)
    except HttpError:
        assert fast is None, (data, fast)
        return
    if fast is not None:
        assert fast == reference, (data, fast, reference)


@given(
    st.sampled_from([b"", b"\r\n", b"\r\n\r\n", b"\r\n\r\n\r\n", b"\n", b" "]),
    st.sampled_from(_REQUEST_LINES),
    st.lists(st.sampled_from(_REQUEST_HEADER_LINES), max_size=6),
    st.sampled_from([b"\r\n\r\n", b"\r\n\r\nbody", b"\r\n", b"\n\n", b"\r\n\r"]),
    st.booleans(),
    st.sampled_from([BIG, 64, 30]),
)
def test_the_quick_pass_decides_only_as_the_full_check(
    lead: bytes,
    line: bytes,
    lines: list[bytes],
    end: bytes,
    as_bytearray: bool,
    max_bytes: int,
) -> None:
    data = lead + b"\r\n".join([line, *lines]) + end
    _assert_quick_pass_is_the_full_check(bytearray(data) if as_bytearray else data, max_bytes)


@given(st.binary(max_size=160), st.booleans())
def test_the_quick_pass_and_the_full_check_agree_on_any_bytes(tail: bytes, cut: bool) -> None:
    data = b"GET / HTTP/1.1\r\n" + tail + (b"" if cut else b"\r\n\r\n")
    _assert_quick_pass_is_the_full_check(data, BIG)


@given(st.lists(st.tuples(header_names, header_values), max_size=8), targets)
def test_the_quick_pass_decides_generated_usual_heads(
    headers: list[tuple[str, str]], target: str
) -> None:
    """Token names, values without control bytes and stripped: the quick lane is taken,
    and it answers as the full check does."""
    lines = "".join(f"{k}:{' ' if v else ''}{v}\r\n" for k, v in headers)
    text = f"GET {target} HTTP/1.1\r\n{lines}\r\n"
    data = text.encode("latin-1")
    fast = http_module._parse_fast(data, 0, len(data))
    assert fast is not None
    assert fast == http_module._parse_complete(data[:-4], len(data))


def test_the_quick_pass_takes_the_usual_heads() -> None:
    for raw in (
        b"GET / HTTP/1.1\r\nHost: shop\r\nCookie: lbhome=a.1.b\r\n\r\n",
        b"POST /form HTTP/1.0\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\nabc",
        b"POST /up HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"\r\nGET * HTTP/1.1\r\nX-Empty:\r\n\r\n",
    ):
        pos = 2 if raw.startswith(b"\r\n") else 0
        head = http_module._parse_fast(raw, pos, len(raw))
        assert head is not None, raw
        assert head == http_module._parse_complete(
            raw[pos : raw.index(b"\r\n\r\n", pos)], head.length
        )


def test_the_quick_pass_decides_every_pair_of_lines_as_the_full_check() -> None:
    """Every request line with every header line, every two header lines after a usual
    request line: exhaustive, where the properties above sample."""
    for line in _REQUEST_LINES:
        for header in _REQUEST_HEADER_LINES:
            _assert_quick_pass_is_the_full_check(line + b"\r\n" + header + b"\r\n\r\n", BIG)
    for first in _REQUEST_HEADER_LINES:
        for second in _REQUEST_HEADER_LINES:
            data = b"GET / HTTP/1.1\r\n" + first + b"\r\n" + second + b"\r\n\r\n"
            _assert_quick_pass_is_the_full_check(data, BIG)
