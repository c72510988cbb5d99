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
