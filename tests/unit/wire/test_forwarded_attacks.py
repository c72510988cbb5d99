"""lb.wire.forwarded against forwarding headers spelled with underscores."""

from __future__ import annotations

import pytest

from lb.wire.forwarded import ForwardedHeaders
from lb.wire.http import parse_request_head


def _rewrite(raw: bytes, trusted: bool) -> bytes:
    head = parse_request_head(raw, 65536)
    assert head is not None
    return ForwardedHeaders("192.0.2.7", "http", trusted).rewrite(head, raw)


@pytest.mark.parametrize("trusted", [False, True])
@pytest.mark.parametrize(
    "name", [b"X_Forwarded_For", b"x_forwarded_proto", b"X_Real_IP", b"X-Forwarded_For"]
)
def test_underscore_spellings_are_removed(name: bytes, trusted: bool) -> None:
    """A CGI-style server (WSGI, PHP) maps X_Forwarded_For and X-Forwarded-For to one
    variable, and some join the two: the underscore spelling is a spoofed address."""
    raw = b"GET / HTTP/1.1\r\nHost: x\r\n" + name + b": 6.6.6.6\r\n\r\n"
    out = _rewrite(raw, trusted)
    assert b"6.6.6.6" not in out
    assert out.endswith(
        b"X-Forwarded-For: 192.0.2.7\r\nX-Forwarded-Proto: http\r\n"
        b"Forwarded: for=192.0.2.7;proto=http\r\n\r\n"
    )


def test_a_trusted_proxys_dashed_chain_is_still_extended() -> None:
    raw = b"GET / HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: 198.51.100.1\r\n\r\n"
    assert b"X-Forwarded-For: 198.51.100.1, 192.0.2.7\r\n" in _rewrite(raw, True)
