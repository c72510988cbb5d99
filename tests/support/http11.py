"""A raw HTTP/1.1 client for the per-request routing tests: keep-alive connections from a
chosen loopback source address, and a response reader that frames every kind of response.

`read_reply` frames a response the way RFC 9112 section 6.3 says a client must:
interim 1xx responses are collected and skipped (101 ends the head), HEAD, 204
and 304 have no body whatever their headers say, then chunked (with trailers),
then Content-Length, else the body runs to the close. So a test reading several
responses from one connection notices when lb frames one wrongly: the next
response would not parse, or would belong to another request.

`app_farm` starts a farm whose applications are tests/support/backend_ext.py.

This module must not import lb's code: it is a client, like a browser or curl.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.support.farm import DEFAULT_SERVICES, HOST, Farm, Response, request_bytes

BACKEND_EXT = Path(__file__).with_name("backend_ext.py")
#: the farm of the per-request tests: the http service only (home cookie, then /cart/<id>)
WEB_ONLY = {"web": DEFAULT_SERVICES["web"]}


def app_farm(workdir: Path, **options: Any) -> Farm:
    """Start a farm with backend_ext.py as every node's application (close it after use)."""
    options.setdefault("services", dict(WEB_ONLY))
    farm = Farm(workdir, backend=BACKEND_EXT, **options)
    try:
        farm.start()
    except BaseException:
        farm.close()
        raise
    return farm


def finish(farm: Farm) -> list[str]:
    """Close `farm`; return the processes that had exited although no test stopped them."""
    crashed = farm.unexpected_exits()
    farm.close()
    return crashed


@dataclass
class Reply(Response):
    """One response: status, headers, body, plus its trailers and the 1xx that came before it."""

    trailers: list[tuple[str, str]] = field(default_factory=list)
    interim: list[int] = field(default_factory=list)

    @property
    def node(self) -> str | None:
        return self.header("X-Node")

    @property
    def path(self) -> str | None:
        return self.header("X-Path")

    def trailer(self, name: str) -> str | None:
        for k, v in self.trailers:
            if k.lower() == name.lower():
                return v
        return None


def _fields(lines: list[str]) -> list[tuple[str, str]]:
    out = []
    for line in lines:
        if line:
            k, _, v = line.partition(":")
            out.append((k.strip(), v.strip()))
    return out


async def read_reply(reader: asyncio.StreamReader, method: str = "GET") -> Reply:
    """Read one response to a `method` request (raises IncompleteReadError if the peer closes)."""
    interim: list[int] = []
    while True:
        head = await reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        if 100 <= status < 200 and status != 101:
            interim.append(status)
            continue
        break
    reply = Reply(status, _fields(lines[1:]), b"", interim=interim)
    if method == "HEAD" or status in (101, 204, 304):
        return reply
    te = (reply.header("transfer-encoding") or "").lower()
    if "chunked" in te:
        parts = []
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                break
            parts.append(await reader.readexactly(size))
            if await reader.readexactly(2) != b"\r\n":
                raise AssertionError("chunk data not followed by CRLF")
        trailer_lines = []
        while (line := await reader.readuntil(b"\r\n")) != b"\r\n":
            trailer_lines.append(line.decode("latin-1").rstrip("\r\n"))
        reply.body = b"".join(parts)
        reply.trailers = _fields(trailer_lines)
    elif (length := reply.header("content-length")) is not None:
        reply.body = await reader.readexactly(int(length))
    else:
        reply.body = await reader.read()
    return reply


class Conn:
    """One keep-alive client connection (optionally from a chosen 127.x.y.z source address)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, addr: tuple[str, int], source: str | None = None) -> Conn:
        local = (source, 0) if source is not None else None
        reader, writer = await asyncio.open_connection(
            addr[0], addr[1], local_addr=local, limit=2**21
        )
        return cls(reader, writer)

    async def request(
        self,
        method: str,
        path: str,
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> Reply:
        """Send one request and read its response; the connection stays open for the next."""
        self.writer.write(request_bytes(method, path, headers, body))
        await self.writer.drain()
        return await read_reply(self.reader, method)

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(Exception):
            await self.writer.wait_closed()


async def one_request(
    addr: tuple[str, int],
    method: str,
    path: str,
    headers: Mapping[str, str] | None = None,
    *,
    source: str | None = None,
) -> Reply:
    """One request on a fresh connection (from `source`), closed after its response."""
    conn = await Conn.open(addr, source)
    try:
        return await conn.request(method, path, {**(headers or {}), "Connection": "close"})
    finally:
        await conn.close()


def source_address(i: int) -> str:
    """A distinct loopback client address per index (127.0.0.1 itself is never returned)."""
    return f"127.0.{1 + i // 250}.{2 + i % 250}"


__all__ = [
    "BACKEND_EXT",
    "HOST",
    "WEB_ONLY",
    "Conn",
    "Reply",
    "app_farm",
    "finish",
    "one_request",
    "read_reply",
    "source_address",
]
