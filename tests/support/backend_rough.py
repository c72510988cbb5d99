"""A rough application for the HTTP attack tests: it answers the way real, careless ones do.

It plays "the application" behind each lb node when a test starts its farm with
``Farm(backend=BACKEND_ROUGH)``. It must stay free of lb imports and of any
framework: what lb talks to, byte by byte. Every response carries ``X-Node``,
``X-Path`` (the request it answers) and ``X-Conn`` / ``X-Served`` (this
process's serial number of the connection, and how many requests that
connection carried, this one included), so a test can tell a response that
belongs to another request or another connection.

Run it like backend.py (``--node a --port 8001``; ``--mode`` is accepted and ignored).
Requests are read by tests/support/request_reader.py, as in the other test applications
(header lines without a colon are skipped, not refused).

Endpoints:

- ``GET /raw-head``      the request head exactly as received, as the body
- ``GET /partial-close`` on the first request of a connection a normal answer; on a later
  one only the start of a head (``HTTP/1.1 200 OK\\r\\nX-Partial: yes``), then a close
  (an application that dies while it answers on a reused connection)
- ``POST /early-close``  reads ``X-Read`` bytes of the body (0 if absent), answers
  ``413`` with ``Connection: close`` and closes, the rest of the body unread
- ``POST /early-stream`` does not read the body: answers 200 with ``Content-Length: 10``,
  5 bytes at once and 5 more ``X-Delay-Ms`` (500) later, and keeps the connection
  (what is left of the body is read as the next request, as a careless server does)
- ``POST|PUT /continue-then-close`` answers ``100 Continue``, reads the body, then closes
  with no final answer (an application that dies in the middle of an exchange)
- ``GET /exit-on-next``  a normal answer; the next request read on this connection makes
  the process exit at once, unanswered (an application that dies between two requests of a
  kept connection: its listener goes with it, so a fresh connection is refused)
- ``GET /dup-cl``        200 with ``Content-Length: 2, 2`` (a list of equal values) and ``ok``
- ``GET /cl-as/NAME``    200 and ``0123456789`` (10 bytes), its Content-Length written as
  ``CL_SPELLINGS[NAME]`` says (leading zeros, two equal lines, ...)
- ``GET /sleep/MS``      waits MS milliseconds, then answers
- ``GET /big/N``         N bytes (``x``), written 64 KiB at a time as the client takes them
- ``GET /stall``         200 with neither Content-Length nor chunked (delimited by the close),
  ``partial`` of its body, then nothing more for 60 s (an application stuck mid-answer)
- ``GET /pad/N``         N bytes (``p``, N up to 60000), head and body in one write (one segment)
- ``POST /expect10``     as Python's ``http.server`` (HTTP/1.0 by default) answers a request
  with ``Expect: 100-continue``: ``HTTP/1.0 100 Continue``, then the body is read and
  answered ``HTTP/1.0 200`` (``Content-Length``, no ``Connection`` header), then a close
- ``GET /http10``        an ``HTTP/1.0`` answer (``Content-Length``, no ``Connection``
  header) whatever the request's version, then a close (as Python's ``http.server`` answers)
- any request of HTTP/1.0 without ``Connection: keep-alive``: answered like others but
  without a ``Connection`` header, and the connection is closed 300 ms later (as an
  HTTP/1.0 server that lingers before its close)
- anything else: 200, JSON ``{"node", "path", "conn", "served"}``; a ``Content-Length``
  body is read first
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
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

_conns = itertools.count(1)

#: /cl-as/NAME: the Content-Length line(s) of a 10-byte body, spelled as some servers do
CL_SPELLINGS = {
    "zeros": b"Content-Length: 010\r\n",
    "many-zeros": b"Content-Length: 0000000000010\r\n",
    "two-lines": b"Content-Length: 10\r\nContent-Length: 10\r\n",
    "two-padded-lines": b"Content-Length: 010\r\ncontent-length: 010\r\n",
    "padded-list": b"Content-Length: 010, 010\r\n",
}


class Rough:
    def __init__(self, node: str) -> None:
        self.node = node

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = next(_conns)
        served = 0
        armed = False
        async with client_connection(writer):
            while (raw := await read_head(reader)) is not None:
                if armed:
                    # die with the listener closed first: a connection the kernel could still
                    # queue on it after this one's FIN went out would be reset later, and the
                    # docstring promises a refused connect (the process's exit closes its
                    # descriptors in number order, and an accepted socket may have a lower
                    # number than the listener)
                    own = writer.get_extra_info("socket").fileno()
                    os.closerange(3, own)
                    os.closerange(own + 1, 65536)
                    os._exit(0)
                served += 1
                keep = await self.serve(raw, conn, served, reader, writer)
                await writer.drain()
                armed = raw.split(b" ", 2)[1:2] == [b"/exit-on-next"]
                if not keep:
                    break

    def head(
        self, status: str, path: str, conn: int, served: int, length: int, close: bool
    ) -> bytes:
        lines = [
            f"HTTP/1.1 {status}",
            f"Content-Length: {length}",
            f"X-Node: {self.node}",
            f"X-Path: {path}",
            f"X-Conn: {conn}",
            f"X-Served: {served}",
        ]
        if close:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def serve(
        self,
        raw: bytes,
        conn: int,
        served: int,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        try:
            req = parse_head(raw, lenient=True)  # a careless server skips what it cannot read
        except BadRequest:
            writer.write(self.head("400 Bad Request", "?", conn, served, 0, True))
            return False
        method, version, headers = req.method, req.version, req.headers
        path = req.path.split("?", 1)[0]
        connection = headers.get("connection", "").lower()
        if version == "HTTP/1.0":
            lingering = "keep-alive" not in connection
            close_header = False
        else:
            lingering = False
            close_header = "close" in connection
        keep = not (lingering or close_header)

        if path == "/raw-head":
            writer.write(self.head("200 OK", path, conn, served, len(raw), close_header) + raw)
        elif path == "/partial-close" and served > 1:
            writer.write(b"HTTP/1.1 200 OK\r\nX-Partial: yes")
            await writer.drain()
            return False
        elif method == "POST" and path == "/early-close":
            want = int(headers.get("x-read", "0"))
            if want:
                await reader.readexactly(want)
            writer.write(self.head("413 Payload Too Large", path, conn, served, 0, True))
            return False
        elif method == "POST" and path == "/early-stream":
            delay = int(headers.get("x-delay-ms", "500")) / 1000
            writer.write(self.head("200 OK", path, conn, served, 10, close_header) + b"12345")
            await writer.drain()
            await asyncio.sleep(delay)
            writer.write(b"67890")
        elif method in ("POST", "PUT") and path == "/continue-then-close":
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            await writer.drain()
            await reader.readexactly(int(headers.get("content-length", "0") or 0))
            return False  # the application dies before its final answer
        elif method == "POST" and path == "/expect10":
            if headers.get("expect", "").lower() == "100-continue":
                writer.write(b"HTTP/1.0 100 Continue\r\n\r\n")
                await writer.drain()
            await reader.readexactly(int(headers.get("content-length", "0") or 0))
            head = self.head("200 OK", path, conn, served, 2, False)
            writer.write(head.replace(b"HTTP/1.1 ", b"HTTP/1.0 ", 1) + b"ok")
            return False
        elif path == "/http10":
            head = self.head("200 OK", path, conn, served, 2, False)
            writer.write(head.replace(b"HTTP/1.1 ", b"HTTP/1.0 ", 1) + b"ok")
            return False
        elif path == "/dup-cl":
            head = self.head("200 OK", path, conn, served, 2, close_header)
            writer.write(
                head.replace(b"Content-Length: 2\r\n", b"Content-Length: 2, 2\r\n") + b"ok"
            )
        elif path.startswith("/cl-as/"):
            head = self.head("200 OK", path, conn, served, 10, close_header)
            spelled = CL_SPELLINGS[path.split("/")[2]]
            writer.write(head.replace(b"Content-Length: 10\r\n", spelled) + b"0123456789")
        elif path == "/stall":
            writer.write(b"HTTP/1.1 200 OK\r\nX-Path: /stall\r\n\r\npartial")
            await writer.drain()
            await asyncio.sleep(60)
            return False
        elif path.startswith("/pad/"):
            n = min(int(path.split("/")[2]), 60000)
            writer.write(self.head("200 OK", path, conn, served, n, close_header) + b"p" * n)
        elif path.startswith("/big/"):
            n = int(path.split("/")[2])
            writer.write(self.head("200 OK", path, conn, served, n, close_header))
            block = b"x" * 65536
            while n > 0:
                writer.write(block[: min(n, len(block))])
                n -= len(block)
                await writer.drain()
        else:
            if path.startswith("/sleep/"):
                await asyncio.sleep(int(path.split("/")[2]) / 1000)
            length = int(headers.get("content-length", "0") or 0)
            if length:
                await reader.readexactly(length)
            body = json.dumps(
                {"node": self.node, "path": path, "conn": conn, "served": served}
            ).encode()
            writer.write(self.head("200 OK", path, conn, served, len(body), close_header) + body)
        if lingering:
            await writer.drain()
            await asyncio.sleep(0.3)
        return keep


def main(argv: list[str] | None = None) -> int:
    return run_app(__doc__.splitlines()[0], lambda node: Rough(node).handle, argv)


if __name__ == "__main__":
    sys.exit(main())
