"""The floor for a per-request proxy on uvloop: the least a Python proxy can do.

A script, not part of lb: ``.venv/bin/python bench/floor_proxy.py --listen 18080
--backend 127.0.0.1:18001``. It parses every request and response with llhttp
(httptools), reads the Cookie header of each request, rebuilds the request with
one forwarding header and sends it on a pooled keep-alive connection to the
backend, and relays the response. No extractor chain, no routing, no limits, no
error answers, GET only: a yardstick for lb's per-request cost on this machine
(BENCHMARKS.md, "llhttp for response heads, the floor of a Python proxy"), never a proxy to run.
"""

from __future__ import annotations

import argparse
import asyncio

import httptools
import uvloop


class Upstream(asyncio.Protocol):
    def __init__(self, pool: list[Upstream]) -> None:
        self.pool = pool
        self.client: Client | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        assert self.client is not None and self.client.transport is not None
        self.client.transport.write(data)
        self.parser.feed_data(data)

    def on_message_complete(self) -> None:
        client, self.client = self.client, None
        self.pool.append(self)
        assert client is not None
        client.next()


class Client(asyncio.Protocol):
    def __init__(self, backend: tuple[str, int], pool: list[Upstream]) -> None:
        self.backend = backend
        self.pool = pool
        self.parser = httptools.HttpRequestParser(self)
        self.transport: asyncio.Transport | None = None
        self.url = b""
        self.cookie = b""
        self.queue: list[bytes] = []
        self.busy = False
        self.connecting: asyncio.Future[None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.parser.feed_data(data)

    def on_url(self, url: bytes) -> None:
        self.url = url

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() == b"cookie":
            self.cookie = value

    def on_message_complete(self) -> None:
        self.queue.append(
            b"GET "
            + self.url
            + b" HTTP/1.1\r\nHost: backend\r\nCookie: "
            + self.cookie
            + b"\r\nX-Forwarded-For: 127.0.0.1\r\n\r\n"
        )
        if not self.busy:
            self.next()

    def next(self) -> None:
        if not self.queue:
            self.busy = False
            return
        self.busy = True
        request = self.queue.pop(0)
        if self.pool:
            upstream = self.pool.pop()
            upstream.client = self
            assert upstream.transport is not None
            upstream.transport.write(request)
        else:
            self.connecting = asyncio.ensure_future(self.connect(request))

    async def connect(self, request: bytes) -> None:
        loop = asyncio.get_running_loop()
        transport, upstream = await loop.create_connection(
            lambda: Upstream(self.pool), *self.backend
        )
        upstream.client = self
        transport.write(request)


async def serve(listen: int, backend: tuple[str, int]) -> None:
    pool: list[Upstream] = []
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: Client(backend, pool), "127.0.0.1", listen)
    await server.serve_forever()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--listen", type=int, required=True)
    parser.add_argument("--backend", required=True, help="HOST:PORT")
    args = parser.parse_args()
    host, _, port = args.backend.rpartition(":")
    uvloop.run(serve(args.listen, (host, int(port))))


if __name__ == "__main__":
    main()
