"""The admin listener of a node: /metrics, a JSON API, drain/undrain and the live farm page.

Off unless the farm file sets `admin = "host:port"` for the node. A tiny
HTTP/1.1 server on asyncio streams (no web framework: a node keeps its
runtime dependencies; the codec is lb.node.adminhttp): one request per
connection, heads bounded by `MAX_HEAD`, bodies ignored, a bearer token
checked when configured (it must be off loopback: lb.config). Only worker 0
(or the only process) listens.

Across workers: every other worker ships its metrics sample over the worker
bus once a second (METRICS, lb.wire.bus); worker 0 adds the latest sample of
each sibling to its own (lb.node.adminsample). Drain and undrain taken here go
to the siblings on the bus (ADMIN). The farm page's snapshot and its event
stream are lb.node.farmfeed.

It must not route, place or speak the link protocol; it reads the node's
objects and calls Node.start_draining / stop_draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable

import structlog

from lb.config import Address
from lb.errors import FrameError
from lb.node.adminhttp import (
    HEAD_TIMEOUT,
    MAX_BODY,
    MAX_HEAD,
    Request,
    authorized,
    json_response,
    parse_head,
    response,
)
from lb.node.adminsample import Node, Samples, node_view
from lb.node.exposition import CONTENT_TYPE, render
from lb.node.farmfeed import FarmFeed
from lb.node.farmpage import PAGE
from lb.wire import frames as fr
from lb.wire.bus import (
    ADMIN,
    ADMIN_DRAIN,
    ADMIN_UNDRAIN,
    METRICS,
    decode_admin,
    decode_metrics,
    encode_admin,
    encode_metrics,
)

log = structlog.get_logger("lb.admin")

SHIP_INTERVAL = 1.0  # seconds between a worker's samples on the bus


class Admin:
    """The admin side of one node process: the listener (worker 0) or the shipper (siblings)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        me = node.me
        assert me.admin is not None
        self.address: Address = me.admin
        self.token = me.admin_token
        self.serves = node.worker in (None, 0)
        self.samples = Samples(node)
        self.feed = FarmFeed(node, self.samples)
        self.server: asyncio.Server | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.routes_get: dict[str, Callable[[], bytes]] = {
            "/": self._page,
            "/metrics": self._metrics,
            "/api/status": self._status,
            "/api/members": self._members,
            "/api/links": self._links,
            "/api/tables": self._tables,
            "/api/directory": self._directory,
            "/api/health": self._health,
            "/api/row": self._row,
            "/api/farm": self._farm,
        }
        self.routes_post: dict[str, Callable[[], bytes]] = {
            "/drain": self._drain,
            "/undrain": self._undrain,
        }

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        loop = self.node.loop
        if self.serves:
            self.server = await asyncio.start_server(
                self._serve, self.address.host, self.address.port, limit=MAX_HEAD
            )
            self.tasks.append(loop.create_task(self.feed.refresh_forever()))
            log.info("admin_listening", node=self.node.name, address=str(self.address))
        else:
            self.tasks.append(loop.create_task(self._ship_forever()))

    async def close(self) -> None:
        self.feed.closing.set()
        if self.server is not None:
            self.server.close()
        for task in self.tasks:
            task.cancel()
        for task in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.tasks.clear()

    # -- the bus ------------------------------------------------------------------------
    async def _ship_forever(self) -> None:
        node = self.node
        while True:
            await asyncio.sleep(SHIP_INTERVAL)
            if node.siblings.bus is None or node.worker is None:
                continue
            try:
                payload = json.dumps(self.samples.own()).encode()
                node.siblings.write(encode_metrics(node.worker, payload))
            except ValueError as exc:  # a sample too big for a frame: say so, go on
                log.error("metrics_sample_dropped", node=node.name, error=str(exc))

    def bus_frame(self, frame: fr.Frame) -> None:
        """METRICS from a sibling (worker 0 keeps it), or ADMIN (a sibling obeys)."""
        if frame.type == METRICS:
            if not self.serves:
                return
            worker, raw = decode_metrics(frame.payload)
            try:
                sample = json.loads(raw)
            except ValueError:
                raise FrameError("METRICS sample is not JSON") from None
            if not isinstance(sample, dict):
                raise FrameError("METRICS sample is not a JSON object")
            self.samples.keep(worker, sample)
        elif frame.type == ADMIN:
            if decode_admin(frame.payload) == ADMIN_DRAIN:
                self.node.start_draining()
            else:
                self.node.stop_draining()

    # -- serving ------------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            async with asyncio.timeout(HEAD_TIMEOUT):
                head = await reader.readuntil(b"\r\n\r\n")
                request = parse_head(head)
                length = int(request.headers.get("content-length", "0") or "0")
                if not 0 <= length <= MAX_BODY:
                    writer.write(json_response(413, {"error": "body too large"}))
                    return
                if length:
                    await reader.readexactly(length)
            if (
                request.path == "/events"
                and request.method == "GET"
                and authorized(request, self.token)
            ):
                await self.feed.events(writer)
                return
            writer.write(self.answer(request))
            await writer.drain()
        except (asyncio.LimitOverrunError, asyncio.IncompleteReadError, ValueError):
            writer.write(json_response(400, {"error": "bad request"}))
        except (OSError, TimeoutError):
            pass
        finally:
            with contextlib.suppress(OSError):
                writer.close()

    def answer(self, request: Request) -> bytes:
        """The response to one (non-streaming) request."""
        path, method = request.path, request.method
        if path == "/healthz" and method == "GET":
            # open without a token: says only whether the node serves (HEALTHCHECK)
            node = self.node
            status = "draining" if node.draining else "ok"
            if node.app_unhealthy:
                status = "app_down"
            return json_response(503 if status == "app_down" else 200, {"status": status})
        if not authorized(request, self.token):
            return response(
                401,
                b'{"error": "a bearer token is required"}\n',
                extra='WWW-Authenticate: Bearer realm="lb admin"\r\n',
            )
        if method == "GET" and path in self.routes_get:
            return self.routes_get[path]()
        if method == "POST" and path in self.routes_post:
            return self.routes_post[path]()
        if path in self.routes_get or path in self.routes_post:
            return json_response(405, {"error": f"{method} is not allowed on {path}"})
        return json_response(404, {"error": f"no such path: {path}"})

    # -- the API ------------------------------------------------------------------------------
    def _page(self) -> bytes:
        return response(200, PAGE, "text/html; charset=utf-8")

    def _metrics(self) -> bytes:
        text = render(node_view(self.node), self.samples.merged())
        return response(200, text.encode(), CONTENT_TYPE)

    def _status(self) -> bytes:
        merged = self.samples.merged()
        view = node_view(self.node)
        view["gauges"] = merged["gauges"]
        view["workers_reporting"] = merged["workers"]
        return json_response(200, view)

    def _members(self) -> bytes:
        view = node_view(self.node)
        return json_response(
            200,
            {
                name: {"state": state, "load": view["loads"].get(name)}
                for name, state in view["members"].items()
            },
        )

    def _links(self) -> bytes:
        return json_response(200, {"links": self.samples.merged()["links"]})

    def _tables(self) -> bytes:
        tables = self.node.tables()
        tables.pop("directory_sample", None)
        return json_response(200, tables)

    def _directory(self) -> bytes:
        counters = self.samples.merged()["counters"]
        return json_response(
            200,
            {
                "entries": len(self.node.directory),
                "hits": counters.get("directory", 0),
                "misses": counters.get("directory-miss", 0),
                "rehomed": counters.get("directory-rehomed", 0),
            },
        )

    def _health(self) -> bytes:
        node = self.node
        return json_response(200, {"healthy": not node.app_unhealthy, "apps": node.health.state()})

    def _row(self) -> bytes:
        return json_response(200, self.feed.own_row(self.samples.merged()))

    def _farm(self) -> bytes:
        self.feed.want()
        return json_response(200, self.feed.farm)

    def _drain(self) -> bytes:
        self.node.start_draining()
        self.node.siblings.write(encode_admin(ADMIN_DRAIN))
        return json_response(200, {"draining": self.node.draining})

    def _undrain(self) -> bytes:
        self.node.stop_draining()
        self.node.siblings.write(encode_admin(ADMIN_UNDRAIN))
        # still draining when the node is shutting down (SIGTERM): that drain is not undone
        return json_response(200, {"draining": self.node.draining})


__all__ = ["Admin"]
