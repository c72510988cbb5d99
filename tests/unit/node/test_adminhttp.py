"""lb.node.adminhttp: the request head parser and the token check of the admin listener."""

from __future__ import annotations

import pytest

from lb.node.adminhttp import authorized, parse_head


def test_request_line_path_query_and_headers() -> None:
    r = parse_head(
        b"GET /events?token=abc&x=1 HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer t\r\n\r\n"
    )
    assert r.method == "GET"
    assert r.path == "/events"
    assert r.query["token"] == ["abc"]
    assert r.headers["authorization"] == "Bearer t"
    assert r.headers["host"] == "h"


@pytest.mark.parametrize(
    "head",
    [
        b"GET\r\n\r\n",
        b"GET / HTTP/2\r\n\r\n",
        b"GET http://x/ HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        b"GET / HTTP/1.1\r\n Folded: x\r\n\r\n",
        b"GET  / HTTP/1.1\r\n\r\n",
    ],
)
def test_bad_heads_are_refused(head: bytes) -> None:
    with pytest.raises(ValueError):
        parse_head(head)


@pytest.mark.parametrize(
    ("head", "ok"),
    [
        (b"GET / HTTP/1.1\r\nAuthorization: Bearer s3cret\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nAuthorization: bearer  s3cret \r\n\r\n", True),
        (b"GET /events?token=s3cret HTTP/1.1\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nAuthorization: Bearer s3cre\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\nAuthorization: Basic s3cret\r\n\r\n", False),
        (b"GET /?token= HTTP/1.1\r\n\r\n", False),
        (b"GET / HTTP/1.1\r\n\r\n", False),
    ],
)
def test_the_token_comes_as_a_bearer_header_or_a_query_parameter(head: bytes, ok: bool) -> None:
    assert authorized(parse_head(head), "s3cret") is ok


def test_without_a_configured_token_every_request_is_authorized() -> None:
    assert authorized(parse_head(b"GET / HTTP/1.1\r\n\r\n"), None) is True
