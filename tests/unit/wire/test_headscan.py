"""lb.wire._headscan: the C quick pass answers exactly what the regex quick pass does,
and its removal of hop-by-hop lines, insertion of a line and join of a span with a tail
what the Python ones do.

The C pass exists in the compiled build only (setup.py, LB_COMPILE=1; scripts/test.sh
runs the unit tests again compiled); on pure Python these tests are skipped, and the
regex pass they compare against is the one that runs. Each property compares the two
on the same bytes, as bytes and as bytearray, at any start and stop: random bytes,
heads built from the pieces a head is made of (so delimiters, controls and limits
meet in every order), and valid heads with one byte changed.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.wire import http, http1, response_head

headscan = pytest.importorskip("lb.wire._headscan", reason="the C pass is in the compiled build")

REQUEST_PIECES = [
    b"GET", b"POST", b"G", b" ", b"  ", b"/", b"/a?b=c", b"*", b"HTTP/1.1", b"HTTP/1.0",
    b"HTTP/1.2", b"HTTP/2", b"\r\n", b"\r\n\r\n", b"\r", b"\n", b"Host", b"Cookie",
    b"Content-Length", b"content-length", b"Transfer-Encoding", b"Connection", b":", b": ",
    b"\t", b"x", b"7", b"chunked", b"a=b; c=d", b"\x00", b"\x01", b"\x7f", b"\x80", b"\xff",
    b"\xe9", b"(", b"@", b"_", b"-", b"Host: h\r\n",
]  # fmt: skip
RESPONSE_PIECES = [
    b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.2", b"HTTP/1.", b" ", b"200", b"204", b"101", b"099",
    b"600", b"5", b" OK", b"\r\n", b"\r\n\r\n", b"\r", b"\n", b"Content-Length",
    b"CONTENT-LENGTH", b"Transfer-Encoding", b"transfer-encoding", b"Connection",
    b"Set-Cookie", b"Keep-Alive", b"Proxy-Connection", b"Connection-X", b"Set-Cookies",
    b"Server", b":", b": ", b"\t", b"x", b"7", b"close", b"a=b", b"\x00", b"\x0b", b"\x7f",
    b"\x80", b"\xff", b"(", b"_", b"-",
]  # fmt: skip

VALID_REQUEST = (
    b"GET /cart/1?x=y HTTP/1.1\r\nHost: shop.example\r\nUser-Agent: t/1 (x; y)\r\n"
    b"Accept:\t*/*\r\nX-Empty:\r\nCookie: lbhome=a.1.b; other=\xe9\r\n\r\nbody"
)
VALID_RESPONSE = (
    b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length:  7 \r\nconnection: keep-alive\r\n"
    b"Set-Cookie: a=b\r\nSET-COOKIE:\r\nKeep-Alive: timeout=5\r\nX-Empty:\r\n\r\nnode=a\n"
)


def _as_bytes(answer: object) -> object:
    """An answer with every bytearray as bytes (re gives bytearray slices of a bytearray)."""
    if isinstance(answer, bytearray):
        return bytes(answer)
    if isinstance(answer, (tuple, list)):
        return type(answer)(_as_bytes(item) for item in answer)
    return answer


def _same_request(data: bytes, pos: int, stop: int) -> None:
    for buf in (data, bytearray(data)):
        assert headscan.scan_request(buf, pos, stop) == http._regex_scan_request(buf, pos, stop)


def _same_response(data: bytes, start: int, stop: int) -> None:
    for buf in (data, bytearray(data)):
        c_answer = headscan.scan_response(buf, start, stop)
        regex_answer = response_head._regex_scan_response(buf, start, stop)
        assert c_answer == _as_bytes(regex_answer)
        if c_answer is not None:
            assert type(c_answer[1]) is bytes and all(type(v) is bytes for v in c_answer[2])


def _mutated(data: bytes, at: int, byte: int, how: int) -> bytes:
    at %= len(data)
    if how == 0:
        return data[:at] + bytes([byte]) + data[at + 1 :]  # changed
    if how == 1:
        return data[:at] + bytes([byte]) + data[at:]  # inserted
    return data[:at] + data[at + 1 :]  # removed


@settings(max_examples=1500)
@given(st.binary(max_size=300), st.integers(-2, 310), st.integers(-2, 310))
def test_any_bytes_scan_alike(data: bytes, pos: int, stop: int) -> None:
    _same_request(data, pos, stop)
    _same_response(data, pos, stop)


@pytest.mark.parametrize(
    ("pieces_of", "same"),
    [(REQUEST_PIECES, _same_request), (RESPONSE_PIECES, _same_response)],
    ids=["request", "response"],
)
@settings(max_examples=3000)
@given(data=st.data())
def test_heads_of_head_pieces_scan_alike(
    pieces_of: list[bytes], same: Callable[[bytes, int, int], None], data: st.DataObject
) -> None:
    head = b"".join(data.draw(st.lists(st.sampled_from(pieces_of), max_size=40)))
    stop = data.draw(st.integers(0, len(head) + 2))
    start = data.draw(st.integers(0, 4))
    same(head, 0, len(head))
    same(head, start, stop)


# the bytes a head's grammar turns on, more often than the rest
BYTES = st.one_of(st.sampled_from(list(b"\t \r\n:/\x00\x7f\x80\xffA1")), st.integers(0, 255))


@settings(max_examples=3000)
@given(st.integers(0, 10_000), BYTES, st.integers(0, 2), st.integers(0, 400))
def test_valid_heads_with_one_byte_changed_scan_alike(
    at: int, byte: int, how: int, cut: int
) -> None:
    request = _mutated(VALID_REQUEST, at, byte, how)
    response = _mutated(VALID_RESPONSE, at, byte, how)
    _same_request(request, 0, len(request))
    _same_request(request, 0, cut)
    _same_response(response, 0, len(response))
    _same_response(response, 0, cut)


# bytes at the edges of what a value may hold, for the C pass's eight-bytes-at-once run
EDGE_BYTES = st.sampled_from(list(b"\x00\x08\t\n\x0b\r\x1f !~\x7f\x80\xfeaZ"))


# a run of allowed bytes with one edge byte at any offset, or edge bytes throughout
EDGE_VALUES = st.one_of(
    st.tuples(st.integers(0, 20), EDGE_BYTES, st.integers(0, 20)).map(
        lambda t: b"a" * t[0] + bytes([t[1]]) + b"\x80" * t[2]
    ),
    st.lists(EDGE_BYTES, max_size=40).map(bytes),
)


@settings(max_examples=2000)
@given(st.lists(EDGE_VALUES, min_size=1, max_size=4))
def test_long_values_of_edge_bytes_scan_alike(values: list[bytes]) -> None:
    """Values longer than a word, with an HT, a control, 0x7f or 0x80 at any offset."""
    request = b"GET / HTTP/1.1" + b"".join(b"\r\nX-A:" + v for v in values) + b"\r\n\r\n"
    response = b"HTTP/1.1 200 " + b"\r\nConnection:".join(values) + b"\r\n\r\n"
    for start in (0, 1):
        _same_request(request, start, len(request))
        _same_response(response, start, len(response))


def test_the_usual_heads_are_taken_with_their_fields() -> None:
    """Not only None alike: the valid heads are decided, with every field."""
    answer = headscan.scan_request(VALID_REQUEST, 0, len(VALID_REQUEST))
    assert answer is not None
    length, method, target, minor, headers = answer
    assert (length, method, target, minor) == (len(VALID_REQUEST) - 4, "GET", "/cart/1?x=y", 1)
    assert headers[3] == ("X-Empty", "") and headers[4] == ("Cookie", "lbhome=a.1.b; other=é")
    assert headers == http._regex_scan_request(VALID_REQUEST, 0, len(VALID_REQUEST))[4]  # type: ignore[index]
    end, kinds, values = headscan.scan_response(VALID_RESPONSE, 0, len(VALID_RESPONSE)) or (
        0,
        b"",
        [],
    )
    assert end == len(VALID_RESPONSE) - 7
    # Content-Length, connection, Set-Cookie, SET-COOKIE, Keep-Alive
    assert kinds == b"LCSSK"
    assert values == [b"7 ", b"keep-alive", b"a=b", b"", b"timeout=5"]


def test_each_framing_line_has_its_kind() -> None:
    head = (
        b"HTTP/1.0 204 x\r\nTRANSFER-encoding: gzip\r\nProxy-Connection:close\r\n"
        b"content-length:\t12\r\nConnection: close\r\nKEEP-ALIVE: a\r\nset-cookie: c\r\n\r\n"
    )
    assert headscan.scan_response(head, 0, len(head)) == (
        len(head),
        b"TPLCKS",
        [b"gzip", b"close", b"12", b"close", b"a", b"c"],
    )
    _same_response(head, 0, len(head))


@pytest.mark.parametrize("value", [b"v", b"", b"v ", b"v\t", b" ", b"\t", b"v w", b"v\tw"])
def test_a_request_field_value_ends_in_neither_sp_nor_ht(value: bytes) -> None:
    for head in (
        b"GET / HTTP/1.1\r\nX-A:" + value + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nX-A:" + value + b"\r\nHost: h\r\n\r\n",
    ):
        _same_request(head, 0, len(head))
        taken = headscan.scan_request(head, 0, len(head)) is not None
        assert taken == (value[-1:] not in (b" ", b"\t"))


@pytest.mark.parametrize("lines", [0, 1, 99, 100, 101])
def test_the_request_line_limit_is_the_regex_one(lines: int) -> None:
    head = b"GET / HTTP/1.1" + b"\r\nX-A: b" * lines + b"\r\n\r\n"
    _same_request(head, 0, len(head))
    assert (headscan.scan_request(head, 0, len(head)) is None) == (lines > http.MAX_HEADER_LINES)


@pytest.mark.parametrize("lines", [0, 1, 198, 199, 200, 201])
def test_the_response_line_limit_is_the_regex_one(lines: int) -> None:
    head = b"HTTP/1.1 200 OK" + b"\r\nSet-Cookie: a=b" * lines + b"\r\n\r\n"
    _same_response(head, 0, len(head))
    assert (headscan.scan_response(head, 0, len(head)) is None) == (lines >= 200)


def test_nothing_after_stop_is_read() -> None:
    """A head complete only past ``stop`` is not taken, even though the bytes are there."""
    head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"
    response = b"HTTP/1.1 204 No Content\r\nServer: s\r\n\r\n"
    assert headscan.scan_request(head, 0, len(head) - 1) is None
    assert headscan.scan_response(response, 0, len(response) - 1) is None
    assert headscan.scan_request(head, 0, len(head)) is not None
    assert headscan.scan_response(response, 0, len(response)) is not None


@pytest.mark.parametrize("scan", ["scan_request", "scan_response"])
def test_wrong_arguments_raise_type_errors(scan: str) -> None:
    function = getattr(headscan, scan)
    with pytest.raises(TypeError):
        function(b"GET / HTTP/1.1\r\n\r\n", 0)
    with pytest.raises(TypeError):
        function("GET / HTTP/1.1\r\n\r\n", 0, 18)
    with pytest.raises(TypeError):
        function(b"GET / HTTP/1.1\r\n\r\n", 0, None)


HOP_PIECES = [
    b"\r\n", b"\r", b"\n", b"\r\r\n", b"Connection:", b"connection:", b"CONNECTION:",
    b"Keep-Alive:", b"keep-alive:", b"Proxy-Connection:", b"proxy-CONNECTION:", b"Connection",
    b"Connection-X:", b"X-Connection:", b"Keep-Alive", b"Proxy-", b":", b" close", b"x",
    b"\xe9", b"\x00", b"\t", b"HTTP/1.1 200 OK", b"GET / HTTP/1.1", b"Host: h",
]  # fmt: skip


def _same_drop(raw: bytes) -> None:
    assert headscan.drop_hop_lines(raw) == http1._regex_without_connection_headers(raw)


@settings(max_examples=1500)
@given(st.binary(max_size=300))
def test_any_bytes_drop_hop_lines_alike(raw: bytes) -> None:
    _same_drop(raw)


@settings(max_examples=3000)
@given(st.lists(st.sampled_from(HOP_PIECES), max_size=40))
def test_heads_of_hop_pieces_drop_alike(pieces: list[bytes]) -> None:
    _same_drop(b"".join(pieces))


def test_drop_hop_lines_keeps_a_head_without_them_as_it_is() -> None:
    head = b"GET / HTTP/1.1\r\nHost: h\r\nX-Connection: a\r\n\r\n"
    assert headscan.drop_hop_lines(head) is head
    assert (
        headscan.drop_hop_lines(b"HTTP/1.1 200 OK\r\nConnection: close\r\nA: b\r\n\r\n")
        == b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"
    )
    with pytest.raises(TypeError):
        headscan.drop_hop_lines(bytearray(head))  # type: ignore[arg-type]


def _same_insert(raw: bytes, line: bytes) -> None:
    try:
        expected = http1._py_with_header(raw, line)
    except ValueError:
        with pytest.raises(ValueError):
            headscan.insert_line(raw, line)
        return
    assert headscan.insert_line(raw, line) == expected


@settings(max_examples=1500)
@given(st.binary(max_size=200), st.binary(max_size=30))
def test_any_bytes_insert_a_line_alike(raw: bytes, line: bytes) -> None:
    _same_insert(raw, line)


@settings(max_examples=1500)
@given(st.lists(st.sampled_from(HOP_PIECES), max_size=30), st.sampled_from(HOP_PIECES))
def test_heads_of_hop_pieces_insert_a_line_alike(pieces: list[bytes], line: bytes) -> None:
    _same_insert(b"".join(pieces), line)


def test_insert_line_after_the_empty_lines_and_the_first_line() -> None:
    assert (
        headscan.insert_line(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", b"A: b\r\n")
        == b"\r\n\r\nGET / HTTP/1.1\r\nA: b\r\n\r\n"
    )
    with pytest.raises(ValueError):
        headscan.insert_line(b"\r\n\r\nGET / HTTP/1.1", b"A: b\r\n")
    with pytest.raises(TypeError):
        headscan.insert_line(b"GET / HTTP/1.1\r\n\r\n", "A: b\r\n")  # type: ignore[arg-type]


@settings(max_examples=1500)
@given(
    st.binary(max_size=80),
    st.integers(min_value=-3, max_value=90),
    st.integers(min_value=-3, max_value=90),
    st.binary(max_size=20),
    st.booleans(),
)
def test_a_span_joins_a_tail_alike(
    raw: bytes, start: int, end: int, tail: bytes, as_bytearray: bool
) -> None:
    buf = bytearray(raw) if as_bytearray else raw
    try:
        expected = http1._py_span_joined(buf, start, end, tail)
    except ValueError:
        with pytest.raises(ValueError):
            headscan.span_joined(buf, start, end, tail)
        return
    got = headscan.span_joined(buf, start, end, tail)
    assert type(got) is bytes
    assert got == expected == raw[start:end] + tail


def test_span_joined_is_a_copy_and_checks_its_arguments() -> None:
    buf = bytearray(b"GET / HTTP/1.1\r\n\r\nrest")
    got = headscan.span_joined(buf, 0, 18, b"")
    buf[0:3] = b"PUT"
    assert got == b"GET / HTTP/1.1\r\n\r\n"
    assert headscan.span_joined(buf, 4, 4, b"X") == b"X"
    for start, end in ((-1, 3), (3, 2), (0, len(buf) + 1)):
        with pytest.raises(ValueError):
            headscan.span_joined(buf, start, end, b"")
    with pytest.raises(TypeError):
        headscan.span_joined(buf, 0, 1, bytearray(b"x"))  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        headscan.span_joined("text", 0, 1, b"")  # type: ignore[arg-type]


COOKIE_PIECES = [
    "lb", "lb_home", "_home", "a", "=", ";", " ", "\t", "x=y", "\u00e9", "\u4e2d", '"', ",",
]  # fmt: skip


def _same_cookie(value: str, name: str) -> None:
    assert headscan.cookie_in(value, name) == http._py_cookie_in(value, name)


@settings(max_examples=2000)
@given(st.lists(st.sampled_from(COOKIE_PIECES), max_size=25), st.sampled_from(COOKIE_PIECES))
def test_cookie_values_of_pieces_are_found_alike(pieces: list[str], name: str) -> None:
    _same_cookie("".join(pieces), name)


@settings(max_examples=1500)
@given(st.text(max_size=60), st.text(max_size=4))
def test_cookie_values_of_any_text_are_found_alike(value: str, name: str) -> None:
    _same_cookie(value, name)


def test_cookie_in_finds_the_first_pair_of_the_name() -> None:
    assert headscan.cookie_in("a=1; lb_home = v1 ; lb_home=v2", "lb_home") == "v1"
    assert headscan.cookie_in("xlb_home=1; lb_home=2", "lb_home") == "2"
    assert headscan.cookie_in("lb_homes=1", "lb_home") is None
    assert headscan.cookie_in("lb_home", "lb_home") is None
    assert headscan.cookie_in("lb_home=\u00e9\u4e2d", "lb_home") == "\u00e9\u4e2d"
    assert headscan.cookie_in("lb_home=x", "") is None
    with pytest.raises(TypeError):
        headscan.cookie_in(b"lb_home=x", "lb_home")  # type: ignore[arg-type]
