"""Tests of lb.wire.http.SetCookieWatcher and parse_set_cookie: learning app cookies."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.wire.http import SetCookieWatcher, parse_set_cookie

NAMES = ("JSESSIONID", "PHPSESSID")

RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: text/html\r\n"
    b"Set-Cookie: JSESSIONID=abc123; Path=/; Max-Age=1800; HttpOnly\r\n"
    b"set-cookie: theme=dark; Max-Age=99\r\n"
    b'SET-COOKIE:PHPSESSID="q-9"\r\n'
    b"Set-Cookie: jsessionid=lower; Max-Age=5\r\n"
    b"Content-Length: 5\r\n"
    b"\r\n"
    b"hello"
)
EXPECTED = [("JSESSIONID", "abc123", 1800), ("PHPSESSID", '"q-9"', None)]


def feed_in_chunks(watcher: SetCookieWatcher, data: bytes, size: int) -> None:
    for i in range(0, len(data), size):
        watcher.feed(data[i : i + size])


# -- parse_set_cookie -----------------------------------------------------------------


def test_parse_set_cookie_name_value_attributes() -> None:
    assert parse_set_cookie(" SID = a b ; Path=/x ; max-age=10; Secure; HttpOnly ;;") == (
        "SID",
        "a b",
        {"path": "/x", "max-age": "10", "secure": "", "httponly": ""},
    )


def test_parse_set_cookie_last_attribute_wins_and_value_may_hold_equals() -> None:
    assert parse_set_cookie("t=a=b==; Max-Age=1; MAX-AGE=2") == ("t", "a=b==", {"max-age": "2"})


@pytest.mark.parametrize(
    "value", ["", "novalue", "=v", "bad name=v", "a(b)=v", "x=\x01", "x=a\x7fb", ";x=1"]
)
def test_parse_set_cookie_rejects_unusable(value: str) -> None:
    assert parse_set_cookie(value) is None


@given(st.text(max_size=200))
@settings(max_examples=300)
def test_parse_set_cookie_never_raises(value: str) -> None:
    parsed = parse_set_cookie(value)
    if parsed is not None:
        name, cookie, attributes = parsed
        assert name and "=" not in name and ";" not in name and ";" not in cookie
        assert all(k == k.lower() for k in attributes)


# -- the watcher -----------------------------------------------------------------------


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, len(RESPONSE)])
def test_one_chunk_and_small_chunks_find_the_same(size: int) -> None:
    watcher = SetCookieWatcher(NAMES)
    feed_in_chunks(watcher, RESPONSE, size)
    assert watcher.done
    assert watcher.found == EXPECTED


def test_done_right_after_the_head_and_body_is_not_read() -> None:
    head_end = RESPONSE.index(b"\r\n\r\n") + 4
    watcher = SetCookieWatcher(NAMES)
    watcher.feed(RESPONSE[: head_end - 1])
    assert not watcher.done and watcher.found == []
    watcher.feed(RESPONSE[head_end - 1 : head_end])
    assert watcher.done and watcher.found == EXPECTED
    watcher.feed(b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=later\r\n\r\n")
    assert watcher.found == EXPECTED


def test_feed_does_not_change_or_keep_the_caller_bytes() -> None:
    data = bytearray(RESPONSE)
    watcher = SetCookieWatcher(NAMES)
    assert watcher.feed(bytes(data)) is None  # type: ignore[func-returns-value]
    assert data == RESPONSE
    assert watcher._line == bytearray()


def test_max_age_forms() -> None:
    head = (
        b"HTTP/1.1 200 OK\r\n"
        b"Set-Cookie: S=1; Max-Age=-5\r\n"
        b"Set-Cookie: S=2; Max-Age=abc\r\n"
        b"Set-Cookie: S=3; Expires=Wed, 21 Oct 2065 07:28:00 GMT\r\n"
        b"Set-Cookie: S=; Max-Age=0\r\n"
        b"Set-Cookie: S=5; Max-Age=" + b"9" * 19 + b"\r\n"
        b"Set-Cookie: S=6; Max-Age=0100\r\n"
        b"\r\n"
    )
    watcher = SetCookieWatcher(["S"])
    watcher.feed(head)
    assert watcher.found == [
        ("S", "1", 0),
        ("S", "2", None),
        ("S", "3", None),
        ("S", "", 0),
        ("S", "5", None),
        ("S", "6", 100),
    ]


def test_interim_100_continue_is_skipped() -> None:
    data = (
        b"HTTP/1.1 100 Continue\r\nSet-Cookie: JSESSIONID=interim\r\n\r\n"
        b"HTTP/1.1 103 Early Hints\r\nLink: </s.css>\r\n\r\n" + RESPONSE
    )
    for size in (1, 5, len(data)):
        watcher = SetCookieWatcher(NAMES)
        feed_in_chunks(watcher, data, size)
        assert watcher.done
        assert watcher.found == EXPECTED


def test_only_the_first_final_response_counts() -> None:
    watcher = SetCookieWatcher(NAMES)
    watcher.feed(b"HTTP/1.1 302 Found\r\nLocation: /\r\n\r\n")
    assert watcher.done and watcher.found == []
    watcher.feed(b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=x\r\n\r\n")
    assert watcher.found == []


def test_switching_protocols_gives_up() -> None:
    watcher = SetCookieWatcher(NAMES)
    watcher.feed(b"HTTP/1.1 101 Switching Protocols\r\nSet-Cookie: JSESSIONID=x\r\n\r\n")
    assert watcher.done and watcher.found == []


@pytest.mark.parametrize(
    "data",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",  # TLS
        b"SSH-2.0-OpenSSH_9.6\r\n",
        b"HTTP/2.0 200 OK\r\n\r\n",
        b"HTTP/1.1 20 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\nSet-Cookie: JSESSIONID=bare-lf\n\n",  # bare LF
        b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=x\n\r\n",
        b"\r\nHTTP/1.1 200 OK\r\n\r\n",
    ],
)
def test_non_http_gives_up_without_results(data: bytes) -> None:
    for size in (1, len(data)):
        watcher = SetCookieWatcher(NAMES)
        feed_in_chunks(watcher, data, size)
        assert watcher.done
        assert watcher.found == []


def test_non_http_is_noticed_early() -> None:
    watcher = SetCookieWatcher(NAMES)
    watcher.feed(b"SSH-")
    assert watcher.done


def test_oversize_head_gives_up() -> None:
    head = b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=x\r\nX-Pad: " + b"a" * 200 + b"\r\n\r\n"
    for size in (1, 50, len(head)):
        watcher = SetCookieWatcher(NAMES, max_head_bytes=200)
        feed_in_chunks(watcher, head, size)
        assert watcher.done and watcher.found == []
    exact = SetCookieWatcher(NAMES, max_head_bytes=len(head))
    feed_in_chunks(exact, head, 1)
    assert exact.found == [("JSESSIONID", "x", None)]


def test_oversize_partial_line_is_not_kept() -> None:
    watcher = SetCookieWatcher(NAMES, max_head_bytes=1000)
    watcher.feed(b"HTTP/1.1 200 OK\r\nX-Long: ")
    for _ in range(200):
        watcher.feed(b"a" * 10)
        assert len(watcher._line) < 1000
    assert watcher.done and watcher.found == []


def test_oversize_counts_interim_heads_separately() -> None:
    interim = b"HTTP/1.1 100 Continue\r\nX-Pad: " + b"a" * 60 + b"\r\n\r\n"
    final = b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=y\r\n\r\n"
    watcher = SetCookieWatcher(NAMES, max_head_bytes=100)
    feed_in_chunks(watcher, interim * 3 + final, 7)
    assert watcher.found == [("JSESSIONID", "y", None)]


def test_no_names_is_done_at_once() -> None:
    watcher = SetCookieWatcher([])
    assert watcher.done
    watcher.feed(RESPONSE)
    assert watcher.found == []


def test_constructor_checks_the_limit() -> None:
    with pytest.raises(ValueError):
        SetCookieWatcher(NAMES, max_head_bytes=4)


@given(st.binary(max_size=300), st.integers(1, 50))
@settings(max_examples=400)
def test_garbage_never_raises(data: bytes, size: int) -> None:
    watcher = SetCookieWatcher(NAMES, max_head_bytes=128)
    feed_in_chunks(watcher, data, size)
    assert all(name in NAMES for name, _, _ in watcher.found)


@given(st.lists(st.integers(1, 40), min_size=1, max_size=40))
@settings(max_examples=200)
def test_any_chunking_finds_the_same(sizes: list[int]) -> None:
    data = b"HTTP/1.1 100 Continue\r\n\r\n" + RESPONSE
    watcher = SetCookieWatcher(NAMES)
    pos = 0
    for size in sizes * (len(data) // sum(sizes) + 1):
        watcher.feed(data[pos : pos + size])
        pos += size
    assert watcher.found == EXPECTED


# -- boundaries that a mutation of the code would cross --------------------------------


@pytest.mark.parametrize("byte", [0x1F, 0x01, 0x0B, 0x7F])
def test_a_control_byte_in_a_cookie_value_makes_it_unusable(byte: int) -> None:
    assert parse_set_cookie("JSESSIONID=ab" + chr(byte) + "c; Path=/") is None
    watcher = SetCookieWatcher(NAMES)
    watcher.feed(b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=a" + bytes([byte]) + b"\r\n\r\n")
    assert watcher.done and watcher.found == []


def test_a_tab_and_high_bytes_in_a_cookie_value_are_kept() -> None:
    assert parse_set_cookie("S=a\tb\xe9") == ("S", "a\tb\xe9", {})


@pytest.mark.parametrize("size", [1, 7, 1000])
def test_head_limit_is_exactly_max_head_bytes(size: int) -> None:
    head = b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=x\r\nX-Pad: " + b"p" * 30 + b"\r\n\r\n"
    exact = SetCookieWatcher(NAMES, max_head_bytes=len(head))
    feed_in_chunks(exact, head, size)
    assert exact.done and exact.found == [("JSESSIONID", "x", None)]
    over = SetCookieWatcher(NAMES, max_head_bytes=len(head) - 1)
    feed_in_chunks(over, head, size)
    assert over.done and over.found == []


def test_gives_up_as_soon_as_max_head_bytes_arrived_without_an_end() -> None:
    start = b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=x\r\nX-Pad: ppp"
    watcher = SetCookieWatcher(NAMES, max_head_bytes=len(start))
    watcher.feed(start[:-1])
    assert not watcher.done
    watcher.feed(start[-1:])
    assert watcher.done and watcher.found == []


def test_101_gives_up_even_when_http_follows() -> None:
    watcher = SetCookieWatcher(NAMES)
    watcher.feed(b"HTTP/1.1 101 Switching Protocols\r\n\r\n")
    assert watcher.done
    watcher.feed(b"HTTP/1.1 200 OK\r\nSet-Cookie: JSESSIONID=late\r\n\r\n")
    assert watcher.found == []
