"""lb.wire._headscan under attack: hostile heads, any start and stop, memory bounds.

A review of the C quick pass (compiled build only; skipped on pure Python). Each test
holds the C scan to the regex scan it stands for (lb.wire.http._regex_scan_request,
lb.wire.response_head._regex_scan_response) where test_headscan.py does not reach:
start/stop values a caller could pass (negative, past the end, the wrong way round,
near the ssize_t bounds), the edges of the grammar (status line forms, framing-name
look-alikes, bytes with no ASCII case, values ending in SP/HT, line limits exactly),
heads of a MiB; and the buffer is read only within ``buf[pos:stop]`` (guard pages
either side), released after every call, and no call leaks a reference.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import mmap
import sys
import tracemalloc
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.wire import http, response_head
from tests.unit.wire.test_headscan import _as_bytes

headscan = pytest.importorskip("lb.wire._headscan", reason="the C pass is in the compiled build")


def _outcome(function: Callable[..., object], *args: object) -> object:
    """What a call answers, or the type of what it raises."""
    try:
        return _as_bytes(function(*args))
    except Exception as exc:  # the exception's type is the answer compared
        return type(exc)


def _same(data: bytes, pos: int, stop: int) -> None:
    for buf in (data, bytearray(data)):
        c_request = _outcome(headscan.scan_request, buf, pos, stop)
        assert c_request == _outcome(http._regex_scan_request, buf, pos, stop), (pos, stop)
        c_response = _outcome(headscan.scan_response, buf, pos, stop)
        assert c_response == _outcome(response_head._regex_scan_response, buf, pos, stop), (
            pos,
            stop,
        )


REQUEST = b"GET /a?b HTTP/1.1\r\nHost: h\r\nContent-Length: 0\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nSet-Cookie: a=b\r\n\r\n"
SSIZE_MAX = sys.maxsize


# -- start and stop ------------------------------------------------------------------


@pytest.mark.parametrize("pos", [-1, -2, -5, -30, -len(REQUEST) + 1])
def test_a_negative_request_pos_answers_as_the_regex_does(pos: int) -> None:
    """re's match clamps a negative pos to 0, and so does the C pass; the method the
    two give for the head found there must be the same too."""
    assert headscan.scan_request(REQUEST, pos, len(REQUEST)) is not None
    _same(REQUEST, pos, len(REQUEST))


BOUNDS = [
    -SSIZE_MAX - 1, -SSIZE_MAX, -(2**40), -100, -1, 0, 1, 3, 17, 30, 49, 50, 51, 52, 53,
    54, 55, 56, 57, 100, 2**40, SSIZE_MAX - 1, SSIZE_MAX,
]  # fmt: skip


@pytest.mark.parametrize("pos", BOUNDS)
@pytest.mark.parametrize("stop", BOUNDS)
def test_any_start_and_stop_answer_as_the_regex_does(pos: int, stop: int) -> None:
    """Every pair of bounds, including near the ssize_t ends (no overflow in the C
    arithmetic), negative ones, past the end, and start after stop."""
    for data in (REQUEST, RESPONSE, b"\r\n\r\n" + REQUEST, b"xx" + RESPONSE):
        _same(data, pos, stop)


@pytest.mark.parametrize("bound", [SSIZE_MAX + 1, -SSIZE_MAX - 2, 2**100])
def test_bounds_beyond_ssize_t_raise_as_the_regex_does(bound: int) -> None:
    _same(REQUEST, bound, len(REQUEST))
    _same(RESPONSE, 0, bound)
    assert _outcome(headscan.scan_request, REQUEST, bound, 10) is OverflowError


# -- the grammar's edges -------------------------------------------------------------

STATUS_LINES = [
    b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/1.1 200  ", b"HTTP/1.1 200 OK", b"HTTP/1.1 200\t",
    b"HTTP/1.1 200 \t", b"HTTP/1.1 200 a\tb", b"HTTP/1.1 200 \xff\x80", b"HTTP/1.1 200 a\x7f",
    b"HTTP/1.1 200OK", b"HTTP/1.1 2000", b"HTTP/1.1 20", b"HTTP/1.1 099", b"HTTP/1.1 100",
    b"HTTP/1.1 599", b"HTTP/1.1 600", b"HTTP/1.0 500 x", b"HTTP/1.2 200", b"HTTP/1.1  200",
    b"http/1.1 200", b"HTTP/1.1 200 a\x00", b"HTTP/1.1 200 :", b"HTTP/1.1 2:0",
]  # fmt: skip
NAMES = [
    b"Content-Length", b"content-length", b"CONTENT-LENGTH", b"Content-Lengt", b"Content-Lengths",
    b"Content_Length", b"Connection", b"Connection-X", b"XConnection", b"Set-Cookie",
    b"Set-Cookie2", b"set-cookie", b"Keep-Alive", b"Proxy-Connection", b"Proxy-Connectio",
    b"Transfer-Encoding", b"TRANSFER-encoding", b"Set-Coo\xcbie", b"Conn\xc5ction",
    b"Conn\xe5ction", b"Set-Coo\xe2\x84\xaaie", b"\xe2\x84\xaaeep-Alive", b"Se\xfft-Cookie",
    b"Host", b"X", b"", b" Host", b"Host ", b"Ho st", b"H@st", b"Content-Length\t",
]  # fmt: skip
VALUES = [
    b"", b" ", b"\t", b"  \t ", b"v", b" v", b"v ", b"v\t", b"\tv\t", b" v w ", b"7", b" 7 ",
    b"\xff", b"\x80 ", b"a:b", b"close", b"chunked", b"v\x7f", b"v\x00", b"v\rw", b"v\nw",
]  # fmt: skip


@pytest.mark.parametrize("status", STATUS_LINES)
def test_status_line_forms_answer_as_the_regex_does(status: bytes) -> None:
    for rest in (b"\r\n\r\n", b"\r\nServer: s\r\n\r\n", b"\r\nConnection: close \r\n\r\n"):
        data = status + rest
        _same(data, 0, len(data))
        _same(data, 0, len(data) - 1)


@pytest.mark.parametrize("name", NAMES)
def test_field_names_and_values_answer_as_the_regex_does(name: bytes) -> None:
    for value in VALUES:
        line = name + b":" + value
        for data in (
            b"GET / HTTP/1.1\r\n" + line + b"\r\n\r\n",
            b"GET / HTTP/1.1\r\nHost: h\r\n" + line + b"\r\nX: y\r\n\r\n",
            b"HTTP/1.1 200 OK\r\n" + line + b"\r\n\r\n",
            b"HTTP/1.1 204\r\nServer: s\r\n" + line + b"\r\nConnection: close\r\n\r\n",
        ):
            _same(data, 0, len(data))


@pytest.mark.parametrize("lines", [99, 100, 101, 198, 199, 200])
@pytest.mark.parametrize("last", [b"X: v", b"X: v ", b"X:", b"Connection: close", b"X v"])
def test_the_line_limits_hold_whatever_the_last_line(lines: int, last: bytes) -> None:
    """At, below and above each limit, with the last line good, bad or empty."""
    request = b"GET / HTTP/1.1" + b"\r\nX: v" * (lines - 1) + b"\r\n" + last + b"\r\n\r\n"
    response = b"HTTP/1.1 200" + b"\r\nSet-Cookie: v" * (lines - 1) + b"\r\n" + last + b"\r\n\r\n"
    for data in (request, response):
        _same(data, 0, len(data))
        _same(data, 0, len(data) - 1)
        _same(data, 0, len(data) + 1)


MIB = 1 << 20


@pytest.mark.parametrize(
    "data",
    [
        b"GET /" + b"a" * MIB + b" HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: " + b"\xff" * MIB + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\nX: " + b"v" * MIB + b" \r\n\r\n",
        b"G" * MIB + b" / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1" + b"\r\nX: v" * (MIB // 5) + b"\r\n\r\n",
        b"GET / HTTP/1.1\r\n" + b"N" * MIB + b":\r\n\r\n",
        b"HTTP/1.1 200 " + b"r" * MIB + b"\r\n\r\n",
        b"HTTP/1.1 200\r\nSet-Cookie: " + b"\t" * MIB + b"\r\n\r\n",
        b"HTTP/1.1 200" + b"\r\nConnection: x" * (MIB // 14) + b"\r\n\r\n",
        b"HTTP/1.1 200\r\n" + b"c" * MIB + b": x\r\n\r\n",
    ],
    ids=range(10),
)
def test_heads_of_a_mebibyte_answer_as_the_regex_does(data: bytes) -> None:
    _same(data, 0, len(data))
    _same(data, 0, len(data) - 3)


# -- hostile heads built from pieces, at any start and stop ---------------------------

PIECES = [
    *NAMES, b"GET", b" ", b"/", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/1.", b"200", b"099", b" OK",
    b"\r\n", b"\r\n\r\n", b"\r", b"\n", b":", b": ", b"\t", b"v", b"\x00", b"\x7f", b"\x80",
    b"\xff", b"\xc5", b"\xe5", b"\xe2\x84\xaa",
]  # fmt: skip


@settings(max_examples=4000)
@given(
    st.lists(st.sampled_from(PIECES), max_size=60),
    st.integers(-70, 700),
    st.integers(-70, 700),
    st.sampled_from([b"", b"GET / HTTP/1.1", b"HTTP/1.1 200", b"\r\n", REQUEST, RESPONSE]),
)
def test_hostile_heads_at_any_bounds_answer_as_the_regex_does(
    pieces: list[bytes], pos: int, stop: int, lead: bytes
) -> None:
    data = lead + b"".join(pieces)
    _same(data, pos, stop)
    _same(data, 0, len(data))


# -- memory: what is read, what is held, what is kept ---------------------------------

_PAGE = mmap.PAGESIZE
_libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
_libc.mmap.restype = ctypes.c_void_p
_libc.mmap.argtypes = [
    ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int, ctypes.c_long,
]  # fmt: skip
_libc.mprotect.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
_libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]


@contextmanager
def _guarded_pages(pages: int) -> Iterator[int]:
    """The address of ``pages`` readable pages with an unreadable page either side."""
    size = (pages + 2) * _PAGE
    prot_rw = mmap.PROT_READ | mmap.PROT_WRITE
    flags = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS
    base = _libc.mmap(None, size, prot_rw, flags, -1, 0)
    assert base not in (None, ctypes.c_void_p(-1).value)
    try:
        assert _libc.mprotect(base, _PAGE, 0) == 0
        assert _libc.mprotect(base + (pages + 1) * _PAGE, _PAGE, 0) == 0
        yield base + _PAGE
    finally:
        _libc.munmap(base, size)


def _scan_guarded(data: bytes, pos: int, stop: int) -> tuple[object, object]:
    """Both C scans of ``data`` at ``pos``/``stop``, with only ``data[pos:stop]`` readable:
    run twice, once with ``buf[pos]`` the first byte after an unreadable page, once with
    ``buf[stop]`` the first byte of one (a read there kills the process). Both runs must
    answer alike; that answer. ``data`` need not be longer than ``stop``."""
    span = stop - pos
    pages = max(1, -(-span // _PAGE))
    answers = []
    with _guarded_pages(pages) as readable:
        for first in (readable, readable + pages * _PAGE - span):
            ctypes.memmove(first, data[pos:stop], span)
            # buf[0] is at first - pos; the buffer claims 64 bytes past stop
            view = memoryview((ctypes.c_ubyte * (stop + 64)).from_address(first - pos))
            answers.append(
                (headscan.scan_request(view, pos, stop), headscan.scan_response(view, pos, stop))
            )
    assert answers[0] == answers[1]
    return answers[0]


@settings(max_examples=1500)
@given(st.lists(st.sampled_from(PIECES), max_size=40), st.data())
def test_nothing_outside_pos_to_stop_is_read(pieces: list[bytes], data: st.DataObject) -> None:
    """What the two C scans answer with guard pages right before ``pos`` and at ``stop``
    is what they answer on the bytes themselves."""
    raw = data.draw(st.sampled_from([b"", b"GET / HTTP/1.1", b"HTTP/1.1 200"])) + b"".join(pieces)
    pos = data.draw(st.integers(0, min(len(raw), 40)))
    stop = data.draw(st.integers(pos, len(raw)))
    request, response = _scan_guarded(raw, pos, stop)
    assert request == headscan.scan_request(raw, pos, stop)
    assert response == headscan.scan_response(raw, pos, stop)
    assert _as_bytes(response) == _as_bytes(response_head._regex_scan_response(raw, pos, stop))


def test_every_cut_of_a_head_is_scanned_with_guard_pages_either_side() -> None:
    """Each head at every stop (a check one byte too short reads past it) and a few starts."""
    heads = (REQUEST, RESPONSE, b"HTTP/1.1 200\r\n\r\n", b"x" * 7 + REQUEST)
    for raw in (*heads, b"HTTP/1.1 200" + b"\r\nX: v" * 199 + b"\r\n\r\n"):
        for pos in (0, 1, 7):
            for stop in range(pos, len(raw) + 1) if len(raw) < 100 else (len(raw) - 1, len(raw)):
                request, response = _scan_guarded(raw, pos, stop)
                assert request == headscan.scan_request(raw, pos, stop)
                assert response == headscan.scan_response(raw, pos, stop)
    assert _scan_guarded(REQUEST, 0, len(REQUEST))[0] is not None
    assert _scan_guarded(RESPONSE, 0, len(RESPONSE))[1] is not None


CALLS: list[tuple[str, tuple[object, ...], type[Exception] | None]] = [
    ("scan_request", (REQUEST, 0, len(REQUEST)), None),
    ("scan_request", (REQUEST, 0, len(REQUEST) - 1), None),
    ("scan_request", (REQUEST, 0, 2**70), OverflowError),
    ("scan_request", (REQUEST, 0, None), TypeError),
    ("scan_response", (RESPONSE, 0, len(RESPONSE)), None),
    ("scan_response", (RESPONSE, 1, len(RESPONSE)), None),
    ("scan_response", (RESPONSE, 0, 2**70), OverflowError),
    ("scan_response", (RESPONSE, "0", 5), TypeError),
]


@pytest.mark.parametrize(("name", "args", "raises"), CALLS)
def test_the_buffer_is_released_after_every_call(
    name: str, args: tuple[object, ...], raises: type[Exception] | None
) -> None:
    """A bytearray can be resized after any call: no buffer export is left behind."""
    buf = bytearray(args[0])  # type: ignore[arg-type]
    function = getattr(headscan, name)
    for _ in range(3):
        if raises is None:
            function(buf, *args[1:])
        else:
            with pytest.raises(raises):
                function(buf, *args[1:])
        buf.extend(b"x")
        del buf[-1:]
    with pytest.raises(TypeError):
        function(buf, 0)  # the wrong number of arguments, before any buffer is taken
    buf.extend(b"x")


@pytest.mark.parametrize(("name", "args", "raises"), CALLS)
def test_no_call_keeps_a_reference_or_memory(
    name: str, args: tuple[object, ...], raises: type[Exception] | None
) -> None:
    """Many calls (answers, None and raises alike) leave the inputs' reference counts as
    they were and no memory behind."""
    function = getattr(headscan, name)
    # fresh objects of the call's values, so nothing else holds them (small ints are shared)
    args = tuple(bytes(bytearray(arg)) if isinstance(arg, bytes) else arg for arg in args)
    own = [arg for arg in args if isinstance(arg, bytes) or (type(arg) is int and arg > 256)]
    counts = [sys.getrefcount(arg) for arg in own]

    def calls(times: int) -> None:
        for _ in range(times):
            try:
                function(*args)
            except Exception as exc:
                assert raises is not None and isinstance(exc, raises)

    calls(1000)
    tracemalloc.start()
    try:
        calls(1000)
        before = tracemalloc.get_traced_memory()[0]
        calls(20_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert grown < 20_000  # a leaked object per call would be 20,000 objects
    assert [sys.getrefcount(arg) for arg in own] == counts
