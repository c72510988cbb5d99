"""A hostile or buggy application for the request smuggling and response desync tests.

It plays "the application" behind each lb node when a test starts its farm with
``Farm(backend=BACKEND_HOSTILE)``, byte by byte on raw sockets, free of lb imports
and of any framework. Every answer carries ``X-Node``, ``X-Path`` (the target it
answers) and ``X-Conn`` (this process's serial number of the connection), so a
test can tell an answer that belongs to another request or connection.

It frames request bodies as naive servers do: a body is chunked only when its one
Transfer-Encoding value is exactly ``chunked`` (as written: ``Chunked`` is no body);
else Content-Length, read as C's ``strtol(value, NULL, 0)`` reads it (a leading 0
makes it octal); else none.
So a request whose framing lb read otherwise is read here as two, and the second
one's target shows in ``/seen``.

Endpoints (the query string is ignored, but recorded):

- ``GET /seen``          JSON: every request target this process read, in order
- ``POST /early-401``    401 at once, the body never read, the connection kept (what is
  left of the body is read as the next request, as a careless server does)
- ``POST /early-401-late`` the same, ``X-Delay-Ms`` (300) after the head (the body
  meanwhile unread: lb's writes to it back up)
- ``GET /204-body``      ``204`` with ``Content-Length`` of a body that comes ``X-Delay-Ms``
  (300) later: a whole other response (``X-Smuggled: yes``, body ``EVIL!``)
- ``HEAD /head-body``     a head announcing ``len(FAKE)`` bytes, and ``X-Delay-Ms`` (300)
  later those bytes (a whole other response), as a server that answers HEAD as GET
- ``GET /te10``          an ``HTTP/1.0`` response with ``Transfer-Encoding: chunked`` and
  ``Connection: keep-alive`` (RFC 9112 6.1: faulty framing)
- ``GET /cl-te``         a response with both Content-Length and Transfer-Encoding: chunked,
  whose two framings disagree (by Content-Length the chunks hold another response)
- ``GET /te-as/NAME``    a 200 whose Transfer-Encoding is ``TE_LAST_NOT_CHUNKED[NAME]`` (its
  last coding is not ``chunked``: RFC 9112 6.3 frames it by the close), a body that is a
  complete chunked body followed by another response (``X-Smuggled: yes``), then a close;
  a client that frames by the ``chunked`` it reads in the list takes that for the answer to
  its next request
- ``GET /extra``         a normal answer and, in the same write, an unsolicited second one
- ``GET /extra-later``   a normal answer, then ``X-Delay-Ms`` (300) later an unsolicited one
- ``GET /interim/N``     N ``103 Early Hints`` interim responses, then the final 200
- ``GET /close-mid``     a 200 announcing 100 bytes, 10 of them, then a close
- ``GET /raw-upgrade``    200, the request head as received for its body
- ``GET /upgrade-101``   ``101 Switching Protocols`` whatever the request asked, then an echo
- ``CONNECT echo:1``     ``200 Connection Established`` (no Content-Length: a tunnel), then an
  echo; ``CONNECT empty:1`` an empty ``200`` (``Content-Length: 0``, as Go's net/http
  answers for a handler that writes nothing), the connection kept for more requests;
  ``CONNECT`` to any other target is answered as any request (a catch-all application
  that takes CONNECT for one more method)
- anything else: 200, JSON ``{"node", "path", "conn", "served"}``
"""

from __future__ import annotations

import asyncio
import itertools
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests.support` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.request_reader import (
    BadRequest,
    client_connection,
    parse_head,
    read_head,
    run_app,
)

FAKE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Smuggled: yes\r\nX-Path: /fake\r\n\r\nEVIL!"
_conns = itertools.count(1)

#: /te-as/NAME: a response's Transfer-Encoding whose last coding is not chunked
TE_LAST_NOT_CHUNKED = {
    "chunked-identity": "Transfer-Encoding: chunked, identity",
    "chunked-gzip": "Transfer-Encoding: chunked, gzip",
    "chunked-then-identity": "Transfer-Encoding: chunked\r\nTransfer-Encoding: identity",
    "gzip": "Transfer-Encoding: gzip",
}


async def _read_chunked(reader: asyncio.StreamReader) -> None:
    while True:
        line = await reader.readuntil(b"\r\n")
        size = int(line.split(b";", 1)[0].strip() or b"0", 16)
        if size == 0:
            while await reader.readuntil(b"\r\n") != b"\r\n":
                pass
            return
        await reader.readexactly(size + 2)


class Hostile:
    def __init__(self, node: str) -> None:
        self.node = node
        self.seen: list[str] = []

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(_conns)
        served = 0
        async with client_connection(writer):
            while (raw := await read_head(reader)) is not None:
                served += 1
                if not await self.serve(raw, conn, served, reader, writer):
                    break
                await writer.drain()

    def head(self, status: str, path: str, conn: int, length: int, extra: str = "") -> bytes:
        return (
            f"HTTP/1.1 {status}\r\nContent-Length: {length}\r\nX-Node: {self.node}\r\n"
            f"X-Path: {path}\r\nX-Conn: {conn}\r\n{extra}\r\n"
        ).encode("latin-1")

    async def serve(
        self,
        raw: bytes,
        conn: int,
        served: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        try:
            req = parse_head(raw, lenient=True)
        except BadRequest:
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            return False
        self.seen.append(req.path)
        path = req.path.split("?", 1)[0]
        if path == "/early-401":
            # answers at once, never reads the body, keeps the connection: careless
            writer.write(self.head("401 Unauthorized", path, conn, 2) + b"no")
            return True
        if path == "/early-401-late":
            # the same, X-Delay-Ms (300) after the head: the body waits unread meanwhile
            await asyncio.sleep(int(req.headers.get("x-delay-ms", "300")) / 1000)
            writer.write(self.head("401 Unauthorized", path, conn, 2) + b"no")
            return True
        codings = req.values("transfer-encoding")
        if codings == ["chunked"]:  # as written: a naive server's strcmp
            await _read_chunked(reader)
        elif (length := req.headers.get("content-length", "")).isdigit():
            # as C's strtol(value, NULL, 0): a leading 0 makes it octal
            await reader.readexactly(int(length, 8 if length.startswith("0") else 10))
        path = req.path.split("?", 1)[0]
        delay = int(req.headers.get("x-delay-ms", "300")) / 1000
        if path == "/seen":
            body = json.dumps(self.seen).encode()
            writer.write(self.head("200 OK", path, conn, len(body)) + body)
        elif path == "/204-body":
            writer.write(self.head("204 No Content", path, conn, len(FAKE)))
            await writer.drain()
            await asyncio.sleep(delay)
            writer.write(FAKE)
        elif path == "/head-body":
            # the HEAD answered as a GET: its body comes in a later write
            writer.write(self.head("200 OK", path, conn, len(FAKE)))
            await writer.drain()
            await asyncio.sleep(delay)
            writer.write(FAKE)
        elif path == "/te10":
            writer.write(
                b"HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n"
                + f"X-Path: {path}\r\nX-Conn: {conn}\r\n\r\n2\r\nok\r\n0\r\n\r\n".encode()
            )
        elif path == "/cl-te":
            inner = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Smuggled: yes\r\n\r\nEVIL!"
            chunked = b"0\r\n\r\n" + inner
            writer.write(
                self.head("200 OK", path, conn, len(chunked), "Transfer-Encoding: chunked\r\n")
                + chunked
            )
        elif path.startswith("/te-as/"):
            coding = TE_LAST_NOT_CHUNKED[path.split("/")[2]]
            writer.write(
                f"HTTP/1.1 200 OK\r\n{coding}\r\nX-Node: {self.node}\r\nX-Path: {path}\r\n"
                f"X-Conn: {conn}\r\n\r\n".encode()
                + b"2\r\nok\r\n0\r\n\r\n"
                + FAKE
            )
            return False
        elif path == "/extra":
            writer.write(self.head("200 OK", path, conn, 2) + b"ok" + FAKE)
        elif path == "/extra-later":
            writer.write(self.head("200 OK", path, conn, 2) + b"ok")
            await writer.drain()
            await asyncio.sleep(delay)
            writer.write(FAKE)
        elif path.startswith("/interim/"):
            count = int(path.split("/")[2])
            writer.write(b"HTTP/1.1 103 Early Hints\r\nLink: </style.css>\r\n\r\n" * count)
            writer.write(self.head("200 OK", path, conn, 2) + b"ok")
        elif path == "/close-mid":
            writer.write(self.head("200 OK", path, conn, 100) + b"0123456789")
            await writer.drain()
            return False
        elif path == "/raw-upgrade":
            writer.write(self.head("200 OK", path, conn, len(raw)) + raw)
        elif req.method == "CONNECT" and path == "echo:1":
            writer.write(b"HTTP/1.1 200 Connection Established\r\nX-Path: echo:1\r\n\r\n")
            await writer.drain()
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            return False
        elif req.method == "CONNECT" and path == "empty:1":
            writer.write(self.head("200 OK", path, conn, 0))
        elif path == "/upgrade-101":
            writer.write(b"HTTP/1.1 101 Switching Protocols\r\nX-Path: /upgrade-101\r\n\r\n")
            await writer.drain()
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
            return False
        else:
            body = json.dumps(
                {"node": self.node, "path": path, "conn": conn, "served": served}
            ).encode()
            writer.write(self.head("200 OK", path, conn, len(body)) + body)
        return "close" not in req.headers.get("connection", "").lower()


def main(argv: list[str] | None = None) -> int:
    return run_app(__doc__.splitlines()[0], lambda node: Hostile(node).handle, argv)


if __name__ == "__main__":
    sys.exit(main())
