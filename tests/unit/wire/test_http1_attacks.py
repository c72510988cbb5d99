"""lb.wire.http1 against requests whose framing a careless application reads otherwise."""

from __future__ import annotations

import pytest

from lb.errors import HttpError
from lb.wire import http1
from lb.wire.http import parse_request_head


def _head(raw: bytes):  # type: ignore[no-untyped-def]
    head = parse_request_head(raw, 65536)
    assert head is not None
    return head


@pytest.mark.parametrize(
    "raw",
    [
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
    ],
)
def test_http10_request_with_transfer_encoding_is_400(raw: bytes) -> None:
    """RFC 9112 6.1: Transfer-Encoding in an HTTP/1.0 message means faulty framing. An
    HTTP/1.0 server may ignore it and read the chunks as the next request, so a proxy
    that frames it as chunked and passes it on desynchronises from that server."""
    with pytest.raises(HttpError) as info:
        http1.request_body(_head(raw))
    assert info.value.status == 400


def test_http11_chunked_request_is_still_chunked() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    assert http1.request_body(_head(raw)) == (http1.CHUNKED, 0)


@pytest.mark.parametrize(
    "codings",
    [
        b"Transfer-Encoding: chunked, chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip, chunked\r\n",
        b"Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
    ],
)
def test_chunked_twice_or_on_two_lines_is_400(codings: bytes) -> None:
    """A server that reads one Transfer-Encoding line, or takes a body as chunked only
    when the value is `chunked`, reads no body here and the chunks as the next request:
    refused (HAProxy refuses chunked twice, nginx a second line)."""
    raw = b"POST / HTTP/1.1\r\nHost: a\r\n" + codings + b"\r\n"
    with pytest.raises(HttpError) as info:
        http1.request_body(_head(raw))
    assert info.value.status == 400


@pytest.mark.parametrize(
    "body",
    [
        b"5;a\x00\r\nhello\r\n0\r\n\r\n",  # a control byte in an extension
        b'5;a="b\r\nhello\r\n0\r\n\r\n',  # an unclosed quoted-string
        b"A ;/x HTTP/1.1\r\nHost: abcd\r\n0\r\n\r\n",  # a request line as an extension
        b"5;\r\nhello\r\n0\r\n\r\n",  # no name
        b"5;a=\r\nhello\r\n0\r\n\r\n",  # no value after '='
        b"0\r\nX-Pad : a\r\n\r\n",  # a trailer with a space before its colon
        b"0\r\nX-Pad: a\x00b\r\n\r\n",  # a control byte in a trailer
        b"0\r\nX\x80: a\r\n\r\n",  # a trailer name that is not a token
    ],
)
def test_malformed_chunk_extension_or_trailer_is_400(body: bytes) -> None:
    """RFC 9112 7.1.1 / 7.1.2: an extension is `;` token [`=` token / quoted-string], a
    trailer a field line; a server that parses them otherwise ends the line or the body
    elsewhere than lb, so they are refused as llhttp's strict mode refuses them."""
    framer = http1.BodyFramer(http1.CHUNKED)
    with pytest.raises(HttpError) as info:
        framer.feed(body)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "body",
    [
        b'5;a="x\\"y";b;c=d \r\nhello\r\n0\r\n\r\n',
        b"5 ; a = b\r\nhello\r\n0\r\n\r\n",
        b"5 \r\nhello\r\n0;last\r\nX-Sum: 1\r\n\r\n",
    ],
)
def test_well_formed_chunk_extensions_and_trailers_still_pass(body: bytes) -> None:
    framer = http1.BodyFramer(http1.CHUNKED)
    assert framer.feed(body) == len(body) and framer.done


@pytest.mark.parametrize(
    ("coding", "status"),
    [
        (b"gzip, chunked", 501),
        (b"deflate,chunked", 501),
        (b", chunked", 400),
        (b"chunked,", 400),
    ],
)
def test_a_coding_other_than_a_lone_chunked_is_refused(coding: bytes, status: int) -> None:
    """A server that compares the value with `chunked` reads these as no body and the
    chunks as the next request: another coding is a 501 (nginx's answer), an empty
    member a 400. `chunked` in any case passes, as every parser reads it."""
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: " + coding + b"\r\n\r\n"
    with pytest.raises(HttpError) as info:
        http1.request_body(_head(raw))
    assert info.value.status == status
    upper = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: CHUNKED\r\n\r\n"
    assert http1.request_body(_head(upper)) == (http1.CHUNKED, 0)


@pytest.mark.parametrize("value", [b"010", b"00", b"0, 0", b"010, 10"])
def test_a_content_length_with_leading_zeros_goes_on_as_one_decimal(value: bytes) -> None:
    """`010` is ten bytes, but a server reading it with strtol(value, NULL, 0) takes it
    for octal (eight) and the last two bytes for the next request: the value goes on
    written as one decimal number, as nginx writes its own."""
    raw = b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + b"\r\n\r\n"
    head = _head(raw)
    out = http1.upstream_hop_by_hop(raw, head, False)
    number = int(value.split(b",")[0])
    assert out.count(b"Content-Length") == 1
    assert b"\r\nContent-Length: %d\r\n" % number in out


@pytest.mark.parametrize("upgrade", [b"h2c", b"websocket, H2C"])
def test_an_h2c_upgrade_is_no_upgrade_and_does_not_go_on(upgrade: bytes) -> None:
    """HTTP/2 on the connection would carry requests lb never reads ("h2c smuggling"):
    the request is a plain one, its Upgrade, HTTP2-Settings and Connection lines stay
    behind (as Envoy drops them); other fields starting alike stay."""
    raw = (
        b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\n"
        b"Upgrade: " + upgrade + b"\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n"
        b"Upgrade-Insecure-Requests: 1\r\n\r\n"
    )
    head = _head(raw)
    assert not http1.request_framing(head).upgrade
    out = http1.upstream_hop_by_hop(raw, head, False).lower()
    assert b"\r\nupgrade:" not in out and b"http2-settings" not in out
    assert b"connection" not in out and b"upgrade-insecure-requests: 1\r\n" in out


@pytest.mark.parametrize(
    ("line", "host", "refused"),
    [
        (b"GET http://x/a HTTP/1.1", b"x", False),
        (b"GET http://X:80/a?q HTTP/1.1", b"x", False),  # case and the default port
        (b"GET https://u:p@x:443 HTTP/1.1", b"x", False),  # userinfo is no part of Host
        (b"GET http://x?a HTTP/1.1", b"x", False),
        (b"OPTIONS * HTTP/1.1", b"x", False),
        (b"CONNECT x:443 HTTP/1.1", b"x:443", False),
        (b"GET http://evil/a HTTP/1.1", b"x", True),
        (b"GET http://x:8080/a HTTP/1.1", b"x", True),
        (b"GET http://x@evil/a HTTP/1.1", b"x", True),
        (b"GET * HTTP/1.1", b"x", True),
        (b"GET x:80 HTTP/1.1", b"x:80", True),
        (b"GET x/a HTTP/1.1", b"x", True),
    ],
)
def test_a_target_not_in_origin_form_must_agree_with_host(
    line: bytes, host: bytes, refused: bool
) -> None:
    """RFC 9112 3.2: an absolute-form target's authority and Host are identical (HAProxy
    refuses them differing); `*` is OPTIONS', an authority alone CONNECT's. An
    application that reads the target's host and one that reads Host would otherwise
    see two hosts in one request."""
    head = _head(line + b"\r\nHost: " + host + b"\r\n\r\n")
    if not refused:
        http1.check_host(head)
        return
    with pytest.raises(HttpError) as info:
        http1.check_host(head)
    assert info.value.status == 400


@pytest.mark.parametrize("spelling", ["Chunked", "CHUNKED", "cHuNkEd"])
def test_transfer_encoding_in_another_case_goes_on_as_chunked(spelling: str) -> None:
    raw = f"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: {spelling}\r\n\r\n".encode()
    head = parse_request_head(raw, 16384)
    assert head is not None
    assert http1.request_framing(head).kind == http1.CHUNKED
    out = http1.upstream_hop_by_hop(raw, head, False)
    assert out.count(b"Transfer-Encoding") == 1 and b"Transfer-Encoding: chunked\r\n" in out
    assert spelling.encode() not in out


def test_transfer_encoding_chunked_as_written_goes_on_untouched() -> None:
    raw = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    head = parse_request_head(raw, 16384)
    assert head is not None
    http1.request_framing(head)
    assert http1.upstream_hop_by_hop(raw, head, False) == raw
