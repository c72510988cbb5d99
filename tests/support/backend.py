"""A small, fast test backend: HTTP/1.1 or raw TCP echo, on asyncio streams and uvloop.

It stands for "the application" behind one lb node in the integration tests and
benchmarks. It must stay free of lb imports (it is the thing lb talks to, not
part of lb) and free of any framework, so what it measures is lb, not itself.
Requests are read by tests/support/request_reader.py, as in the other test
applications.

Run it as ``python tests/support/backend.py --node a --port 8001 [--mode tcp]``;
it prints ``ready`` on stdout once it listens.

HTTP endpoints (keep-alive, Content-Length or chunked request bodies):

- ``GET /bytes/N``  N deterministic bytes (see :func:`pattern_bytes`), header X-Node
- ``GET /slow/N``   N deterministic bytes written 1 KiB every 10 ms
- ``POST /echo``    the request body back, written while it arrives
- ``POST /sha256``  hex sha256 of the request body
- any other ``GET`` JSON ``{"node", "path", "session_hits"}`` where the session is
  the cookie ``sid`` (a fresh one is set with ``Set-Cookie`` when absent)

TCP mode: on connect write ``node=<name>\\n``, echo everything until EOF, close
(a read that starts with ``RESET-NOW``: a reset instead).
HTTPS mode (``--cert``/``--key``): the HTTP endpoints over TLS, with this process's
own TLS session cache and ticket keys.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import secrets
import socket
import struct
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make `tests.support` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from tests.support.request_reader import (
    BadRequest,
    Request,
    client_connection,
    parse_head,
    read_head,
    serve_until_signalled,
)

CHUNK = 64 * 1024
MAX_HEAD = 64 * 1024

_BASE = b"".join(hashlib.sha256(b"lb-test-pattern-%d" % i).digest() for i in range(CHUNK // 32))


def pattern_chunk(index: int) -> bytes:
    """The 64 KiB chunk number ``index`` of the deterministic pattern.

    Each chunk starts with its own index, so a lost, doubled or reordered chunk
    changes the digest of the whole stream.
    """
    return index.to_bytes(8, "big") + _BASE[8:]


def pattern_bytes(n: int) -> bytes:
    """The first ``n`` bytes of the deterministic pattern (what ``GET /bytes/n`` returns)."""
    full, rest = divmod(n, CHUNK)
    parts = [pattern_chunk(i) for i in range(full)]
    if rest:
        parts.append(pattern_chunk(full)[:rest])
    return b"".join(parts)


def pattern_sha256(n: int) -> str:
    """Hex sha256 of :func:`pattern_bytes` (n) without building it in one piece."""
    digest = hashlib.sha256()
    full, rest = divmod(n, CHUNK)
    for i in range(full):
        digest.update(pattern_chunk(i))
    if rest:
        digest.update(pattern_chunk(full)[:rest])
    return digest.hexdigest()


class HttpBackend:
    def __init__(self, node: str) -> None:
        self.node = node
        self.sessions: dict[str, int] = {}

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        async with client_connection(writer):
            while (raw := await read_head(reader)) is not None:
                try:
                    req = parse_head(raw)
                    keep = await self.serve(req, reader, writer)
                except BadRequest:
                    writer.write(self._head("400 Bad Request", 0, "text/plain", False))
                    keep = False
                await writer.drain()
                if not keep:
                    break

    def _head(
        self, status: str, length: int, ctype: str, keep: bool, extra: list[str] | None = None
    ) -> bytes:
        lines = [
            f"HTTP/1.1 {status}",
            f"Content-Length: {length}",
            f"Content-Type: {ctype}",
            f"X-Node: {self.node}",
        ]
        if extra:
            lines.extend(extra)
        if not keep:
            lines.append("Connection: close")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    async def _body_chunks(self, req: Request, reader: asyncio.StreamReader) -> _Body:
        te = req.headers.get("transfer-encoding", "").lower()
        if "chunked" in te:
            return _ChunkedBody(reader)
        try:
            length = int(req.headers.get("content-length", "0"))
        except ValueError as exc:
            raise BadRequest("bad content-length") from exc
        if length < 0:
            raise BadRequest("negative content-length")
        return _LengthBody(reader, length)

    async def serve(
        self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> bool:
        keep = req.keep_alive
        path = req.path
        if req.method == "POST" and path == "/echo":
            body = await self._body_chunks(req, reader)
            if isinstance(body, _LengthBody):
                # Write while the body arrives, without waiting for the client to
                # read: a client that sends everything before reading must not
                # deadlock against us.
                writer.write(self._head("200 OK", body.remaining, "application/octet-stream", keep))
                async for chunk in body:
                    writer.write(chunk)
            else:
                data = b"".join([c async for c in body])
                writer.write(self._head("200 OK", len(data), "application/octet-stream", keep))
                writer.write(data)
            return keep
        if req.method == "POST" and path == "/sha256":
            body = await self._body_chunks(req, reader)
            digest = hashlib.sha256()
            async for chunk in body:
                digest.update(chunk)
            out = digest.hexdigest().encode()
            writer.write(self._head("200 OK", len(out), "text/plain", keep) + out)
            return keep
        if req.method == "POST":
            body = await self._body_chunks(req, reader)
            async for _ in body:
                pass
        if req.method not in ("GET", "HEAD", "POST"):
            writer.write(self._head("405 Method Not Allowed", 0, "text/plain", False))
            return False
        if path.startswith("/bytes/") or path.startswith("/slow/"):
            try:
                n = int(path.split("/")[2])
            except ValueError:
                writer.write(self._head("404 Not Found", 0, "text/plain", keep))
                return keep
            writer.write(self._head("200 OK", n, "application/octet-stream", keep))
            if req.method == "HEAD":
                return keep
            slow = path.startswith("/slow/")
            full, rest = divmod(n, CHUNK)
            for i in range(full + (1 if rest else 0)):
                chunk = pattern_chunk(i) if i < full else pattern_chunk(i)[:rest]
                if slow:
                    for off in range(0, len(chunk), 1024):
                        writer.write(chunk[off : off + 1024])
                        await writer.drain()
                        await asyncio.sleep(0.01)
                else:
                    writer.write(chunk)
                    await writer.drain()
            return keep
        if path == "/healthz":
            writer.write(self._head("200 OK", 2, "text/plain", keep) + b"ok")
            return keep
        extra: list[str] = []
        sid = req.cookie("sid")
        if sid is None or sid not in self.sessions:
            if sid is None:
                sid = secrets.token_hex(8)
                extra.append(f"Set-Cookie: sid={sid}; Path=/")
            self.sessions[sid] = 0
        self.sessions[sid] += 1
        out = json.dumps(
            {"node": self.node, "path": path, "session_hits": self.sessions[sid]}
        ).encode()
        writer.write(self._head("200 OK", len(out), "application/json", keep, extra))
        if req.method != "HEAD":
            writer.write(out)
        return keep


class _Body:
    def __aiter__(self) -> _Body:
        return self

    async def __anext__(self) -> bytes:
        raise StopAsyncIteration


class _LengthBody(_Body):
    def __init__(self, reader: asyncio.StreamReader, length: int) -> None:
        self.reader = reader
        self.remaining = length
        self.left = length

    async def __anext__(self) -> bytes:
        if self.left <= 0:
            raise StopAsyncIteration
        chunk = await self.reader.read(min(self.left, CHUNK))
        if not chunk:
            raise asyncio.IncompleteReadError(b"", self.left)
        self.left -= len(chunk)
        return chunk


class _ChunkedBody(_Body):
    def __init__(self, reader: asyncio.StreamReader) -> None:
        self.reader = reader
        self.done = False

    async def __anext__(self) -> bytes:
        if self.done:
            raise StopAsyncIteration
        line = await self.reader.readuntil(b"\r\n")
        try:
            size = int(line.split(b";")[0].strip(), 16)
        except ValueError as exc:
            raise BadRequest("bad chunk size") from exc
        if size == 0:
            while (await self.reader.readuntil(b"\r\n")) != b"\r\n":
                pass
            self.done = True
            raise StopAsyncIteration
        data = await self.reader.readexactly(size)
        await self.reader.readexactly(2)
        return data


async def tcp_echo(node: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        writer.write(f"node={node}\n".encode())
        while True:
            data = await reader.read(CHUNK)
            if not data:
                break
            if data.startswith(b"RESET-NOW"):  # an application that breaks mid-connection
                sock = writer.get_extra_info("socket")
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                writer.transport.abort()
                return
            writer.write(data)
            await writer.drain()
    except ConnectionError:
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
            await writer.wait_closed()


async def serve(
    node: str, host: str, port: int, mode: str, cert: str | None = None, key: str | None = None
) -> None:
    if mode == "tcp":

        async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            await tcp_echo(node, r, w)

    else:
        handler = HttpBackend(node).handle
    ctx = None
    if mode == "https":
        # a TLS application: its own session cache and ticket keys, so a TLS 1.2
        # session resumes only on this node (what tls-passthrough homing is for)
        import ssl

        if not cert or not key:
            raise SystemExit("--mode https needs --cert and --key")
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(cert, key)
    server = await asyncio.start_server(handler, host, port, limit=MAX_HEAD, backlog=1024, ssl=ctx)
    await serve_until_signalled(server)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--node", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mode", choices=("http", "https", "tcp"), default="http")
    parser.add_argument("--cert", help="PEM certificate chain (https mode)")
    parser.add_argument("--key", help="PEM private key (https mode)")
    args = parser.parse_args(argv)
    import uvloop

    with contextlib.suppress(KeyboardInterrupt):
        uvloop.run(serve(args.node, args.host, args.port, args.mode, args.cert, args.key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
