"""The test application for per-request routing: backend.py plus the endpoints those tests need.

It plays "the application" behind each lb node when a test starts its farm with
``Farm(backend=BACKEND_EXT)``. It must stay free of lb imports and of any
framework (it is what lb talks to, byte by byte), and it must never guess:
every response says which node answered (``X-Node``) and which request it
answers (``X-Path``), so a test can tell a misrouted or misframed response from
a right one.

Run it like backend.py (``--node a --port 8001 [--mode http|tcp|https]``; only
``http`` mode has the endpoints below, the other modes are backend.py's; requests
are read by tests/support/request_reader.py, as in backend.py), plus:

- ``--close-after N``  after the N-th request on a connection, answer with
  ``Connection: close`` and close it (the application ends a pooled connection)
- ``--idle-close S``   close (FIN) a keep-alive connection that sent no request
  for S seconds (the application's own keep-alive timeout)

HTTP endpoints, besides backend.py's (every response carries ``X-Node`` and ``X-Path``):

- ``GET /whoami``      JSON: ``node``, ``path``, ``peer`` (the TCP peer, i.e. lb), and
  every value of ``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``Forwarded`` as sent
- ``GET /sleep/MS``    wait MS milliseconds, then the session JSON below
- ``GET /status/204``  204 No Content (no Content-Length, no body)
- ``GET /etag``        200 with ``ETag: "v1"``; with ``If-None-Match: "v1"`` a 304 that carries
  the representation's Content-Length and no body
- ``GET /chunked/N``   N pattern bytes as a chunked response with a trailer
  ``X-Body-Sha256`` (the hex sha256 of the body)
- ``GET /stats``       JSON counters of this process: connections, requests,
  ``closed_after_n``, ``closed_idle``
- ``POST`` with ``Expect: 100-continue``: an interim ``100 Continue`` before reading the body
- ``Upgrade: websocket`` on any path: 101 (with ``X-Node``), a first text message
  ``node=<name>``, then every frame is echoed back unmasked (ping -> pong, close -> close
  and end)
- any other ``GET``/``HEAD``: backend.py's session JSON ``{"node", "path", "session_hits"}``,
  the session being the app cookie ``sid``
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import contextvars
import hashlib
import json
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests.support` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support import backend as base
from tests.support.backend import HttpBackend, pattern_bytes
from tests.support.request_reader import (
    BadRequest,
    Request,
    client_connection,
    parse_head,
    read_head,
    serve_until_signalled,
)

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: the request path of the connection being served, for the X-Path header (one task per connection)
_PATH: contextvars.ContextVar[str] = contextvars.ContextVar("path", default="")


class ExtBackend(HttpBackend):
    def __init__(
        self, node: str, close_after: int | None = None, idle_close: float | None = None
    ) -> None:
        super().__init__(node)
        self.close_after = close_after
        self.idle_close = idle_close
        self.stats = {"connections": 0, "requests": 0, "closed_after_n": 0, "closed_idle": 0}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.stats["connections"] += 1
        served = 0
        async with client_connection(writer):
            while True:
                try:
                    raw = await read_head(reader, self.idle_close)
                except TimeoutError:
                    self.stats["closed_idle"] += 1
                    break
                if raw is None:
                    break
                served += 1
                self.stats["requests"] += 1
                closing = self.close_after is not None and served >= self.close_after
                try:
                    req = parse_head(raw)
                    if closing:
                        req.headers["connection"] = "close"
                    _PATH.set(req.path)
                    keep = await self.serve(req, reader, writer)
                except BadRequest:
                    writer.write(self._head("400 Bad Request", 0, "text/plain", False))
                    keep = False
                await writer.drain()
                if not keep:
                    if closing:
                        self.stats["closed_after_n"] += 1
                    break

    def _head(
        self, status: str, length: int, ctype: str, keep: bool, extra: list[str] | None = None
    ) -> bytes:
        return super()._head(
            status, length, ctype, keep, [f"X-Path: {_PATH.get()}", *(extra or [])]
        )

    def _bare_head(self, status: str, fields: list[str], keep: bool) -> bytes:
        lines = [f"HTTP/1.1 {status}", f"X-Node: {self.node}", f"X-Path: {_PATH.get()}", *fields]
        if not keep:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _json(self, obj: object, keep: bool, head_only: bool) -> bytes:
        out = json.dumps(obj).encode()
        return self._head("200 OK", len(out), "application/json", keep) + (
            b"" if head_only else out
        )

    async def serve(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        keep = req.keep_alive
        path = req.path.split("?", 1)[0]
        head_only = req.method == "HEAD"
        if req.headers.get("upgrade", "").lower() == "websocket":
            return await self._websocket(req, reader, writer)
        if req.method == "POST" and "100-continue" in req.headers.get("expect", "").lower():
            writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if req.method not in ("GET", "HEAD"):
            return await super().serve(req, reader, writer)
        if path == "/whoami":
            peer = writer.get_extra_info("peername")
            info = {
                "node": self.node,
                "path": req.path,
                "peer": peer[0] if peer else None,
                "x_forwarded_for": req.values("x-forwarded-for"),
                "x_forwarded_proto": req.values("x-forwarded-proto"),
                "forwarded": req.values("forwarded"),
            }
            writer.write(self._json(info, keep, head_only))
            return keep
        if path == "/stats":
            writer.write(self._json(dict(self.stats), keep, head_only))
            return keep
        if path.startswith("/sleep/"):
            try:
                await asyncio.sleep(int(path.split("/")[2]) / 1000)
            except ValueError as exc:
                raise BadRequest("bad sleep") from exc
            return await super().serve(req, reader, writer)
        if path == "/status/204":
            writer.write(self._bare_head("204 No Content", [], keep))
            return keep
        if path == "/etag":
            body = b"representation v1\n"
            tag = '"v1"'
            if req.headers.get("if-none-match") == tag:
                # 304 keeps the representation's Content-Length and has no body
                fields = [f"ETag: {tag}", f"Content-Length: {len(body)}"]
                writer.write(self._bare_head("304 Not Modified", fields, keep))
            else:
                fields = [
                    f"ETag: {tag}",
                    f"Content-Length: {len(body)}",
                    "Content-Type: text/plain",
                ]
                writer.write(self._bare_head("200 OK", fields, keep) + (b"" if head_only else body))
            return keep
        if path.startswith("/chunked/"):
            try:
                n = int(path.split("/")[2])
            except ValueError as exc:
                raise BadRequest("bad length") from exc
            data = pattern_bytes(n)
            fields = ["Transfer-Encoding: chunked", "Trailer: X-Body-Sha256"]
            writer.write(self._bare_head("200 OK", fields, keep))
            if head_only:
                return keep
            for off in range(0, n, 4096):
                piece = data[off : off + 4096]
                writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                await writer.drain()
            digest = hashlib.sha256(data).hexdigest()
            writer.write(f"0\r\nX-Body-Sha256: {digest}\r\n\r\n".encode())
            return keep
        return await super().serve(req, reader, writer)

    async def _websocket(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        key = req.headers.get("sec-websocket-key")
        if not key:
            raise BadRequest("no Sec-WebSocket-Key")
        accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
        fields = ["Upgrade: websocket", "Connection: Upgrade", f"Sec-WebSocket-Accept: {accept}"]
        lines = ["HTTP/1.1 101 Switching Protocols", f"X-Node: {self.node}", *fields]
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))
        greeting = f"node={self.node}".encode()
        writer.write(bytes([0x81]) + _ws_length(len(greeting)) + greeting)
        await writer.drain()
        while True:
            b0, b1 = await reader.readexactly(2)
            n = b1 & 0x7F
            if n == 126:
                n = int.from_bytes(await reader.readexactly(2), "big")
            elif n == 127:
                n = int.from_bytes(await reader.readexactly(8), "big")
            mask = await reader.readexactly(4) if b1 & 0x80 else b""
            payload = await reader.readexactly(n)
            if mask and n:
                stream = (mask * (n // 4 + 1))[:n]
                payload = (int.from_bytes(payload, "big") ^ int.from_bytes(stream, "big")).to_bytes(
                    n, "big"
                )
            opcode = b0 & 0x0F
            if opcode == 0x9:  # ping -> pong
                b0 = (b0 & 0xF0) | 0xA
            writer.write(bytes([b0]) + _ws_length(n) + payload)
            await writer.drain()
            if opcode == 0x8:  # close: echoed, then the connection ends
                return False


def _ws_length(n: int) -> bytes:
    """The server's (unmasked) payload length field."""
    if n < 126:
        return bytes([n])
    if n < 65536:
        return bytes([126]) + n.to_bytes(2, "big")
    return bytes([127]) + n.to_bytes(8, "big")


async def serve(
    node: str, host: str, port: int, close_after: int | None, idle_close: float | None
) -> None:
    app = ExtBackend(node, close_after, idle_close)
    server = await asyncio.start_server(app.handle, host, port, limit=base.MAX_HEAD, backlog=1024)
    await serve_until_signalled(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mode", choices=("http", "https", "tcp"), default="http")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--close-after", type=int, default=None)
    parser.add_argument("--idle-close", type=float, default=None)
    args = parser.parse_args(argv)
    import uvloop

    if args.mode != "http":
        coro = base.serve(args.node, args.host, args.port, args.mode, args.cert, args.key)
    else:
        coro = serve(args.node, args.host, args.port, args.close_after, args.idle_close)
    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(coro)
    return 0


if __name__ == "__main__":
    sys.exit(main())
