"""Tests of incremental request-head scanning and of decided prefixes (lb.wire.http).

``RequestHeadScanner`` looks at each received byte a bounded number of times,
whatever ``max_bytes`` is; ``parse_request_head`` is a one-shot scan. Once a prefix
of the stream is decided (a head, 400 or 431), every extension decides the same.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.errors import HttpError
from lb.wire.http import RequestHead, RequestHeadScanner, parse_request_head
from tests.unit.wire.test_http import PIECES, http_like, valid_heads

MIB = 1 << 20
Outcome = RequestHead | int | None


def outcome(data: bytes, max_bytes: int) -> Outcome:
    try:
        return parse_request_head(data, max_bytes)
    except HttpError as exc:
        assert exc.status in (400, 431)
        return exc.status


def scan(scanner: RequestHeadScanner, buf: bytes | bytearray) -> Outcome:
    try:
        return scanner.scan(buf)
    except HttpError as exc:
        assert exc.status in (400, 431)
        return exc.status


# -- decided prefixes -------------------------------------------------------------------


def test_431_on_empty_lines_stays_431_when_more_empty_lines_follow() -> None:
    """atheris: with max_bytes=4, b"\\r\\n\\r\\n" said 431 but b"\\r\\n\\r\\n\\r\\n" said 400."""
    assert outcome(b"\r\n\r\n", 4) == 431
    assert outcome(b"\r\n\r\n\r\n", 4) == 431
    assert outcome(b"\r\n\r\n\r", 5) == 431
    assert outcome(b"\r\n\r\n\r\n", 5) == 431
    # with room for the third empty line it is the 400 it always was
    assert outcome(b"\r\n\r\n\r\n", 6) == 400
    assert outcome(b"\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", 100) == 400


def test_a_byte_beyond_max_bytes_never_changes_the_answer() -> None:
    head = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    for max_bytes in range(len(head) + 3):
        decided = outcome(head[:max_bytes], max_bytes)
        for tail in (b"\x00", b"\n", b"\r\n", b"x" * 10):
            assert outcome(head[:max_bytes] + tail, max_bytes) == decided, (max_bytes, tail)


any_data = st.one_of(st.binary(max_size=120), http_like)
extensions = st.one_of(
    st.binary(max_size=40), st.lists(st.sampled_from(PIECES), max_size=8).map(b"".join)
)


@settings(max_examples=500, deadline=None)
@given(any_data, extensions, st.integers(0, 200))
def test_a_decided_prefix_decides_every_extension_alike(
    data: bytes, extension: bytes, max_bytes: int
) -> None:
    decided = outcome(data, max_bytes)
    if decided is not None:
        assert outcome(data + extension, max_bytes) == decided


@settings(max_examples=500, deadline=None)
@given(any_data, st.integers(0, 1000), st.integers(0, 200))
def test_every_prefix_of_a_decided_stream_is_undecided_or_decided_alike(
    data: bytes, cut: int, max_bytes: int
) -> None:
    decided = outcome(data[: cut % (len(data) + 1)], max_bytes)
    if decided is not None:
        assert outcome(data, max_bytes) == decided


@settings(max_examples=100, deadline=None)
@given(valid_heads(), extensions, st.integers(0, 2))
def test_a_valid_head_decides_at_its_last_byte(
    case: tuple[bytes, RequestHead], extension: bytes, slack: int
) -> None:
    raw, expected = case
    max_bytes = len(raw) + slack
    assert outcome(raw[:-1], max_bytes) is None
    assert outcome(raw, max_bytes) == expected
    assert outcome(raw + extension, max_bytes) == expected


# -- the scanner agrees with the one-shot parse at every read -----------------------------


@settings(max_examples=300, deadline=None)
@given(any_data, st.lists(st.integers(0, 25), max_size=20), st.integers(0, 200))
def test_the_scanner_answers_like_the_one_shot_parse_after_every_read(
    data: bytes, reads: list[int], max_bytes: int
) -> None:
    scanner = RequestHeadScanner(max_bytes)
    buf = bytearray()
    pos = 0
    for size in [*reads, len(data)]:
        buf += data[pos : pos + size]
        pos += size
        got = scan(scanner, buf)
        assert got == outcome(bytes(buf), max_bytes), bytes(buf)
        if got is not None:
            # decided: the scanner keeps its answer, whatever comes next
            buf += b"\x00\n"
            assert scan(scanner, buf) == got
            return


def test_the_scanner_takes_bytes_and_bytearray() -> None:
    raw = b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n"
    assert RequestHeadScanner(100).scan(raw) == parse_request_head(raw, 100)
    assert RequestHeadScanner(100).scan(bytearray(raw)) == parse_request_head(raw, 100)


def test_a_shrinking_buffer_is_a_caller_error() -> None:
    scanner = RequestHeadScanner(100)
    assert scanner.scan(b"GET /a HT") is None
    with pytest.raises(ValueError):
        scanner.scan(b"GET")


def test_a_negative_limit_is_refused() -> None:
    with pytest.raises(ValueError):
        RequestHeadScanner(-1)
    with pytest.raises(ValueError):
        parse_request_head(b"GET / HTTP/1.1\r\n\r\n", -1)


# -- linear in the bytes received, whatever max_bytes is ------------------------------


def test_a_1_mib_head_in_100_byte_reads_is_scanned_once() -> None:
    """Structural linearity: bytes the scanner has passed are never read again.

    After every read, everything the scanner has passed (but the 3 bytes a head end
    may straddle) is overwritten with NUL bytes. A rescan from the start, as the old
    code did after every read, would meet a NUL and answer 400; a scanner that keeps
    its cursor never sees them and answers 431 at the limit. The count of examined
    bytes is the received bytes, plus at most 3 per read (a head end may straddle two
    reads), plus the first 6 bytes (empty lines before the request line) and the
    request line once each.
    """
    scanner = RequestHeadScanner(MIB)
    stream = b"GET /upload HTTP/1.1\r\nX-Big: " + b"a" * MIB
    buf = bytearray()
    reads = 0
    poisoned = 0
    result: Outcome = None
    for start in range(0, len(stream), 100):
        buf += stream[start : start + 100]
        reads += 1
        result = scan(scanner, buf)
        if result is not None:
            break
        assert scanner.scanned == len(buf)  # the cursor is at the end after every read
        passed = max(scanner.scanned - 3, 0)
        buf[poisoned:passed] = bytes(passed - poisoned)  # poison what was passed
        poisoned = passed
    assert result == 431
    assert len(buf) >= MIB
    assert scanner.examined <= MIB + 3 * reads + 6 + len(b"GET /upload HTTP/1.1")


def test_a_long_method_in_small_reads_is_scanned_once() -> None:
    scanner = RequestHeadScanner(MIB)
    buf = bytearray()
    reads = 0
    poisoned = 0
    while len(buf) < 200_000:
        buf += b"A" * 100
        reads += 1
        assert scanner.scan(buf) is None
        passed = max(scanner.scanned - 3, 0)
        buf[poisoned:passed] = bytes(passed - poisoned)
        poisoned = passed
    assert scanner.examined <= len(buf) + 3 * reads + 6


def test_a_complete_head_is_parsed_once_after_an_incremental_scan() -> None:
    head = b"GET /a HTTP/1.1\r\n" + b"".join(b"H%d: v\r\n" % i for i in range(50)) + b"\r\n"
    scanner = RequestHeadScanner(MIB)
    buf = bytearray()
    result: Outcome = None
    for i in range(0, len(head), 7):
        buf += head[i : i + 7]
        result = scan(scanner, buf)
    assert result == parse_request_head(head, MIB)
    # every byte once while scanning (3 back per read), the first 6 bytes and the
    # request line once more, and the head once more for its final parse
    reads = len(range(0, len(head), 7))
    request_line = len(b"GET /a HTTP/1.1")
    assert scanner.examined <= 2 * len(head) + 3 * reads + 6 + request_line
