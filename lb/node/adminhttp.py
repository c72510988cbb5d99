"""The admin listener's HTTP/1.1: a bounded request head in, a complete response out.

One request per connection (lb.node.admin serves them): `parse_head` reads a
head of at most `MAX_HEAD` bytes, `response` / `json_response` write the whole
answer with `Connection: close`, and `authorized` checks the bearer token in
constant time (or `?token=`, which the farm page's EventSource needs).

No web framework, no I/O here: it must not read sockets nor the node's objects.
"""

from __future__ import annotations

import hmac
import json
from typing import Any
from urllib.parse import parse_qs, urlsplit

MAX_HEAD = 8192  # bytes of a request head
HEAD_TIMEOUT = 5.0  # seconds to send it
MAX_BODY = 4096  # bytes of a request body read (and ignored)

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
_REASONS |= {405: "Method Not Allowed", 413: "Payload Too Large", 503: "Service Unavailable"}


class Request:
    __slots__ = ("headers", "method", "path", "query")

    def __init__(self, method: str, target: str, headers: dict[str, str]) -> None:
        parts = urlsplit(target)
        self.method = method
        self.path = parts.path or "/"
        self.query = parse_qs(parts.query)
        self.headers = headers


def parse_head(head: bytes) -> Request:
    """A request head (up to and including the blank line) -> Request; ValueError if bad."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        raise ValueError("undecodable head") from None
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1.") or not parts[1].startswith("/"):
        raise ValueError("bad request line")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip():
            raise ValueError("bad header line")
        headers[name.lower()] = value.strip()
    return Request(parts[0], parts[1], headers)


def authorized(request: Request, token: str | None) -> bool:
    """Whether `request` carries `token` (always, when no token is configured)."""
    if token is None:
        return True
    given = ""
    auth = request.headers.get("authorization", "")
    if auth[:7].lower() == "bearer ":
        given = auth[7:].strip()
    elif request.query.get("token"):
        given = request.query["token"][0]  # the page's EventSource cannot set headers
    return hmac.compare_digest(given.encode(), token.encode())


def response(
    status: int, body: bytes, content_type: str = "application/json", extra: str = ""
) -> bytes:
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
        f"Content-Type: {content_type}\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Cache-Control: no-store\r\n"
        "X-Content-Type-Options: nosniff\r\n"
        f"{extra}"
        "Connection: close\r\n\r\n"
    )
    return head.encode("latin-1") + body


def json_response(status: int, data: Any) -> bytes:
    return response(status, json.dumps(data, sort_keys=True).encode() + b"\n")


__all__ = [
    "HEAD_TIMEOUT",
    "MAX_BODY",
    "MAX_HEAD",
    "Request",
    "authorized",
    "json_response",
    "parse_head",
    "response",
]
