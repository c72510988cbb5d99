"""Reading HTTP/1.1 requests in the test applications: one head after another, parsed.

The test backends (backend.py, backend_ext.py, backend_rough.py) stand for the
application behind lb; they differ in how they answer, not in how they read.
`read_head` takes the next request head off a client connection (None once the
client is done; TimeoutError after `idle` seconds without one), `parse_head`
turns it into a `Request`, and `client_connection` ends a connection's handler
the same way for all three: a reset or a cut-short read ends it quietly, and the
connection is closed. `serve_until_signalled` runs a backend's server until
SIGTERM or SIGINT, after saying "ready" (what the farm harness waits for).

Like the backends it must stay free of lb imports and of any framework: it is
what lb talks to, not part of lb, and it must cost next to nothing per request.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
from collections.abc import AsyncIterator, Awaitable, Callable


class BadRequest(Exception):
    """A request a backend cannot parse; answered with 400 and a close."""


class Request:
    __slots__ = ("fields", "headers", "method", "path", "version")

    def __init__(
        self,
        method: str,
        path: str,
        version: str,
        headers: dict[str, str],
        fields: list[tuple[str, str]] | None = None,
    ) -> None:
        self.method = method
        self.path = path
        self.version = version
        self.headers = headers  # lower-case name -> value (the last one; cookies joined)
        self.fields = fields if fields is not None else []  # every field, in order

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def cookie(self, name: str) -> str | None:
        for part in self.headers.get("cookie", "").split(";"):
            key, sep, value = part.strip().partition("=")
            if sep and key == name:
                return value
        return None

    def values(self, name: str) -> list[str]:
        """Every value of the field `name` (lower case), repeated ones too, in order."""
        return [v for k, v in self.fields if k == name]


def parse_head(raw: bytes, *, lenient: bool = False) -> Request:
    """A request head (up to its blank line) -> Request; BadRequest when it is not one.

    A header line without a colon is a BadRequest, or skipped when `lenient`.
    """
    try:
        text = raw.decode("latin-1")
        lines = text.split("\r\n")
        method, path, version = lines[0].split(" ")
    except ValueError as exc:
        raise BadRequest("bad request line") from exc
    headers: dict[str, str] = {}
    fields: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            if lenient:
                continue
            raise BadRequest("bad header line")
        key = name.strip().lower()
        value = value.strip()
        fields.append((key, value))
        if key == "cookie" and key in headers:
            headers[key] = headers[key] + "; " + value
        else:
            headers[key] = value
    return Request(method, path, version, headers, fields)


async def read_head(reader: asyncio.StreamReader, idle: float | None = None) -> bytes | None:
    """The next request head, up to and including its blank line.

    None when the client is done: the connection ended, or the head outgrew the
    reader's limit. TimeoutError when no head came within `idle` seconds.
    """
    try:
        if idle is None:
            return await reader.readuntil(b"\r\n\r\n")
        async with asyncio.timeout(idle):
            return await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError):
        return None


@contextlib.asynccontextmanager
async def client_connection(writer: asyncio.StreamWriter) -> AsyncIterator[None]:
    """Around a connection's handler: a reset or a cut-short read ends it quietly; the
    connection is closed at the end, whatever happened."""
    try:
        yield
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()
            await writer.wait_closed()


async def serve_until_signalled(server: asyncio.Server) -> None:
    """Serve until SIGTERM or SIGINT; "ready" on stdout once the server listens."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print("ready", flush=True)
    async with server:
        await stop.wait()


MAX_APP_HEAD = 64 * 1024  # a test application's StreamReader limit (one head line, at most)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run_app(description: str, handler_of: Callable[[str], Handler], argv: list[str] | None) -> int:
    """The command line of a one-class test application (``--node --port [--host]
    [--mode http]``): serve ``handler_of(node)`` until SIGTERM or SIGINT."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--node", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--mode", default="http")
    args = parser.parse_args(argv)

    async def serve() -> None:
        server = await asyncio.start_server(
            handler_of(args.node), args.host, args.port, limit=MAX_APP_HEAD, backlog=1024
        )
        await serve_until_signalled(server)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve())
    return 0


__all__ = [
    "BadRequest",
    "Request",
    "client_connection",
    "parse_head",
    "read_head",
    "run_app",
    "serve_until_signalled",
]
