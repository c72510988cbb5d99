"""lb.wire.response_head: response heads, the quick pass, llhttp and the reference."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lb.errors import HttpError
from lb.wire import response_head
from lb.wire.http import NOT_CONTROL_BYTES


@pytest.mark.parametrize(
    "raw",
    [
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
        # a client reading the Transfer-Encoding lines as one list frames this one chunked:
        # an empty last line must not hide the chunked coding behind the Content-Length
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding:\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n"
        b"Transfer-Encoding:  \r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding:\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding:\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 0x10\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/2 200 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nName : v\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\x00c\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nA: b\nC: d\r\n\r\n",
        b"SSH-2.0-OpenSSH\r\n\r\n",
    ],
)
def test_bad_responses_are_502(raw: bytes) -> None:
    with pytest.raises(HttpError) as info:
        response_head.parse_response_head(raw, 0, 65536)
    assert info.value.status == 502


def test_response_head_needs_more_then_is_bounded() -> None:
    assert response_head.parse_response_head(b"HTTP/1.1 200 OK\r\nA: b\r\n", 0, 100) is None
    assert response_head.parse_response_head(b"HTT", 0, 100) is None
    with pytest.raises(HttpError):
        response_head.parse_response_head(b"XYZ", 0, 100)
    with pytest.raises(HttpError):
        response_head.parse_response_head(b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * 40, 0, 100)


def test_response_head_at_an_offset_and_its_cookies() -> None:
    raw = b"junkHTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2; Path=/\r\n\r\nbody"
    head = response_head.parse_response_head(raw, 4, 1000)
    assert head is not None
    assert head.length == len(raw) - 4 - 4
    assert head.set_cookies == ["a=1", "b=2; Path=/"]


# -- body framing ---------------------------------------------------------------------------


@given(st.binary(max_size=200))
def test_response_head_parser_fails_only_typed(data: bytes) -> None:
    try:
        head = response_head.parse_response_head(b"HTTP/1.1 200 OK\r\n" + data, 0, 150)
    except HttpError as exc:
        assert exc.status == 502
        return
    if head is not None:
        assert head.length <= 150


# -- llhttp on the hot path, the own scanner as the reference ------------------------------

_STATUS_LINES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.0 404 Not Found",
    b"HTTP/1.1 204",
    b"HTTP/1.1 101 Switching Protocols",
    b"HTTP/1.1 099 Low",
    b"HTTP/1.1 600 High",
    b"HTTP/2.0 200 OK",
    b"HTTP/1.1  200 OK",
    b"HTTP/1.1 20 OK",
    b"http/1.1 200 OK",
    b" HTTP/1.1 200 OK",
    b"\r\nHTTP/1.1 200 OK",
    b"\r\n\r\nHTTP/1.1 200 OK",
    b"HTTP/1.1 200 \xe9t\xe9",
]
_HEADER_LINES = [
    b"Content-Length: 7",
    b"content-length:7",
    b"Content-Length: 7, 7",
    b"Content-Length: 7,8",
    b"Content-Length: 007",
    b"Content-Length: 12345678901234567890",
    b"Content-Length: -1",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip, chunked",
    b"Transfer-Encoding: gzip",
    b"Connection: close",
    b"Connection: keep-alive",
    b"Connection: Keep-Alive, Upgrade",
    b"Keep-Alive: timeout=5",
    b"Proxy-Connection: close",
    b"Set-Cookie: a=1; Path=/",
    b"set-cookie:  b=2  ",
    b"Upgrade: websocket",
    b"X-Frame-Op: same",
    b"Server: nginx",
    b"X-Empty:",
    b"X-Spaces:   v   ",
    b"X-Obs-Text: caf\xe9",
    b" folded",
    b"\tfolded",
    b"Bad Name: x",
    b"Bad : x",
    b": empty name",
    b"NoColon",
    b"X-\xe9: latin name",
    b'X-Quote": y',
]


def _assert_llhttp_answers_as_the_reference(raw: bytes) -> None:
    """Where llhttp answers for the head `raw` (CRLFCRLF not included), the reference
    gives the same answer; where the reference refuses it, llhttp does not answer."""
    fast = response_head.llhttp_response_head(raw + b"\r\n\r\n")
    try:
        reference = response_head.own_response_head(raw)
    except HttpError:
        assert fast is None, (raw, fast)
        return
    if fast is not None:
        assert fast == reference


@given(
    st.sampled_from(_STATUS_LINES),
    st.lists(st.sampled_from(_HEADER_LINES), max_size=6),
)
def test_llhttp_accepts_only_what_the_own_scanner_accepts_alike(
    status_line: bytes, lines: list[bytes]
) -> None:
    """Differential: whenever llhttp answers, the reference gives the same answer;
    where llhttp says None the reference decides (refuses, or accepts on its own)."""
    _assert_llhttp_answers_as_the_reference(b"\r\n".join([status_line, *lines]))


@given(st.binary(max_size=120))
def test_llhttp_and_the_own_scanner_agree_on_any_bytes(tail: bytes) -> None:
    raw = b"HTTP/1.1 200 OK\r\n" + tail.replace(b"\r\n\r\n", b"\r\n")
    if raw.endswith(b"\r\n") or len(raw.translate(None, NOT_CONTROL_BYTES)) != 2 * raw.count(
        b"\r\n"
    ):
        return  # parse_response_head refuses these before either parser runs
    if b"\r\n\r\n" in raw:
        return  # a head ends at its first CRLFCRLF: neither parser is handed one inside
    _assert_llhttp_answers_as_the_reference(raw)


def test_llhttp_answers_the_usual_heads() -> None:
    """The fast lane is taken for ordinary responses (not only the reference)."""
    head = (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nContent-Length: 7\r\n"
        b"Connection: keep-alive\r\nSet-Cookie: a=1\r\n\r\n"
    )
    assert response_head.llhttp_response_head(head) == (
        200,
        1,
        [(b"content-length", b"7"), (b"connection", b"keep-alive"), (b"set-cookie", b"a=1")],
    )
    assert response_head.llhttp_response_head(b"HTTP/1.0 304 Not Modified\r\n\r\n") == (304, 0, [])


@pytest.mark.parametrize("lead", [b"\r\n", b"\r\n\r\n", b" "])
def test_a_response_head_after_empty_lines_is_502_as_the_reference_says(lead: bytes) -> None:
    """llhttp skips empty lines before a status line (found by fuzzing); lb does not."""
    head = lead + b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
    with pytest.raises(HttpError):
        response_head.parse_response_head(head, 0, 65536)


# -- the quick pass against the full check ---------------------------------------------

_QUICK_HEADER_LINES = [
    *_HEADER_LINES,
    b"Content-Length: 7 ",
    b"Content-Length:\t7\t",
    b"Content-Length: 8",
    b"Content-Length: 999999999999999999",
    b"Content-Length: \xb2",
    b"CONTENT-LENGTH: 7",
    b"Transfer-Encoding:",
    b"Transfer-Encoding:  ",
    b"Transfer-Encoding: chunked ",
    b"TRANSFER-ENCODING: Chunked",
    b"Connection:  close \t",
    b"connection: CLOSE",
    b"Connection: keep-alive, close",
    b"Set-Cookie: a=1 ",
    b"SET-COOKIE:c=3;\tPath=/\t",
    b"Keep-Alive:",
    b"X-Content-Length: 9",
    b"Content-Lengths: 9",
    b"X-Nul: a\x00b",
    b"X-Bare-CR: a\rb",
    b"X-Bare-LF: a\nb",
    b"X-Del: \x7f",
    b"X-Tab:\tv\t",
    b"",
]


def _assert_quick_pass_is_the_full_check(data: bytes | bytearray, start: int, limit: int) -> None:
    """Where the quick pass decides a response head, the full check decides it alike;
    where the full check refuses it or needs more bytes, the quick pass does not decide."""
    fast = response_head._fast_response_head(data, start, min(len(data), start + limit))
    try:
        reference = response_head._checked_response_head(data, start, limit)
    except HttpError:
        assert fast is None, (data, fast)
        return
    if reference is None:
        assert fast is None, (data, fast)
    elif fast is not None:
        assert fast == reference, (data, fast, reference)


@given(
    st.sampled_from([b"", b"\r\n", b"XX"]),
    st.sampled_from(_STATUS_LINES),
    st.lists(st.sampled_from(_QUICK_HEADER_LINES), max_size=6),
    st.sampled_from([b"\r\n\r\n", b"\r\n\r\nbody", b"\r\n", b"\n\n"]),
    st.booleans(),
    st.sampled_from([65536, 60, 20]),
)
def test_the_quick_pass_decides_only_as_the_full_check(
    before: bytes,
    status_line: bytes,
    lines: list[bytes],
    end: bytes,
    as_bytearray: bool,
    limit: int,
) -> None:
    data = before + b"\r\n".join([status_line, *lines]) + end
    start = 2 if before == b"XX" else 0
    _assert_quick_pass_is_the_full_check(bytearray(data) if as_bytearray else data, start, limit)


@given(st.binary(max_size=160))
def test_the_quick_pass_and_the_full_check_agree_on_any_bytes(tail: bytes) -> None:
    _assert_quick_pass_is_the_full_check(b"HTTP/1.1 200 OK\r\n" + tail + b"\r\n\r\n", 0, 65536)


def test_the_quick_pass_refuses_200_header_lines_as_the_full_check() -> None:
    for count in (198, 199, 200, 201):
        data = b"HTTP/1.1 200 OK\r\n" + b"A: b\r\n" * count + b"\r\n"
        _assert_quick_pass_is_the_full_check(data, 0, 65536)
        assert (response_head._fast_response_head(data, 0, len(data)) is not None) == (count < 200)


def test_the_quick_pass_takes_the_usual_heads() -> None:
    for raw in (
        b"HTTP/1.1 200 OK\r\nServer: nginx\r\nDate: Mon, 30 Nov 2026 11:39:13 GMT\r\n"
        b"Content-Type: text/plain\r\nContent-Length: 7\r\nConnection: keep-alive\r\n\r\nnode=a\n",
        b"HTTP/1.0 304 Not Modified\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nSet-Cookie: a=1\r\n\r\n",
        b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n",
    ):
        head = response_head._fast_response_head(raw, 0, len(raw))
        assert head is not None, raw
        assert head == response_head._checked_response_head(raw, 0, 65536)


def test_the_quick_pass_decides_every_pair_of_lines_as_the_full_check() -> None:
    """Every status line with every header line, every two header lines after a usual
    status line: exhaustive, where the properties above sample."""
    for status_line in _STATUS_LINES:
        for line in _QUICK_HEADER_LINES:
            _assert_quick_pass_is_the_full_check(
                status_line + b"\r\n" + line + b"\r\n\r\n", 0, 65536
            )
    for first in _QUICK_HEADER_LINES:
        for second in _QUICK_HEADER_LINES:
            data = b"HTTP/1.1 200 OK\r\n" + first + b"\r\n" + second + b"\r\n\r\n"
            _assert_quick_pass_is_the_full_check(data, 0, 65536)


@pytest.mark.parametrize(
    ("lines", "respelled"),
    [
        (b"Content-Length: 2\r\n", False),
        (b"Content-Length: 0\r\n", False),
        (b"Content-Length: 20\r\n", False),
        (b"Content-Length: 2, 2\r\n", True),
        (b"Content-Length: 2\r\ncontent-length: 2\r\n", True),
        (b"Content-Length:2,2 ,2\r\nServer: s\r\n", True),
        (b"Content-Length: 02\r\n", True),
        (b"Content-Length: 00\r\n", True),
        (b"Content-Length: 000000000000000002\r\n", True),
        (b"Content-Length:\t02 \r\n", True),
        (b"Content-Length: 02\r\nContent-Length: 02\r\n", True),
        (b"Content-Length: 02, 02\r\n", True),
        (b"Server: s\r\n", False),
    ],
)
def test_a_content_length_list_or_padded_value_is_marked_in_both_passes(
    lines: bytes, respelled: bool
) -> None:
    """Equal values (a list, several lines) and leading zeros are marked: the entry writes
    one decimal line instead (a client reading `010` with strtol(value, NULL, 0) frames 8
    bytes)."""
    raw = b"HTTP/1.1 200 OK\r\n" + lines + b"\r\n"
    head = response_head.parse_response_head(raw, 0, 65536)
    assert head is not None and head.length_respelled == respelled
    assert response_head._checked_response_head(raw, 0, 65536) == head
    if respelled:
        assert head.content_length in (0, 2)


@pytest.mark.parametrize(
    "lines",
    [b"Content-Length: 02\r\nContent-Length: 2\r\n", b"Content-Length: 2, 02\r\n"],
)
def test_content_length_values_spelled_differently_are_refused(lines: bytes) -> None:
    """Equal numbers spelled differently are refused, not merged (both passes): which one a
    client would read is the question a recipient must not answer for it."""
    raw = b"HTTP/1.1 200 OK\r\n" + lines + b"\r\n"
    with pytest.raises(HttpError):
        response_head.parse_response_head(raw, 0, 65536)
