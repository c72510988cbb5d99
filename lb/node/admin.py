"""The admin listener of a node: /metrics, a JSON API, drain/undrain and the live farm page.

Off unless the farm file sets `admin = "host:port"` for the node. A tiny
HTTP/1.1 server on asyncio streams (no web framework: a node keeps its
runtime dependencies): one request per connection, heads bounded by
`MAX_HEAD`, bodies ignored, a bearer token checked when configured (it must
be off loopback: lb.config). Only worker 0 (or the only process) listens.

Across workers: every other worker ships its metrics sample over the worker
bus once a second (METRICS, lb.wire.bus); worker 0 adds the latest sample of
each sibling to its own. Drain and undrain taken here go to the siblings on
the bus (ADMIN). The forwarding matrix: this node's row comes from its own
counters; the other rows are read from the other members' admin listeners
(`GET /api/row`, addresses and tokens from the same farm file) once a second
while a farm page is open. A member whose admin listener cannot be reached
has no row (the page says so).

It must not route, place or speak the link protocol; it reads the node's
objects and calls Node.start_draining / stop_draining.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import time
from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

import structlog

from lb.cluster.membership import Membership
from lb.config import Address, FarmConfig, NodeConfig
from lb.errors import FrameError
from lb.node.bus import WorkerBus
from lb.node.entry import Entry
from lb.node.exposition import CONTENT_TYPE, render
from lb.node.farmpage import PAGE
from lb.node.health import HealthChecker
from lb.node.metrics import Metrics, Sample, matrix, merge
from lb.node.peerlink import LinkDriver
from lb.node.peers import Peers
from lb.routing.directory import Directory
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

MAX_HEAD = 8192  # bytes of a request head
HEAD_TIMEOUT = 5.0  # seconds to send it
MAX_BODY = 4096  # bytes of a request body read (and ignored)
MAX_EVENT_STREAMS = 16  # farm pages open at once
SHIP_INTERVAL = 1.0  # seconds between a worker's samples on the bus
STALE_SAMPLE = 5.0  # a sibling's sample older than this is dropped (the worker died)
REFRESH = 1.0  # seconds between farm snapshots (and reads of the other members' rows)
DEMAND = 10.0  # read other members' rows while a page or an API call wanted them this recently
PEER_TIMEOUT = 0.8  # seconds for a read of another member's row
MAX_PEER_RESPONSE = 256 * 1024

_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found"}
_REASONS |= {405: "Method Not Allowed", 413: "Payload Too Large", 503: "Service Unavailable"}


class Node(Protocol):
    """What the admin side reads of the node (lb.node.node.Node) and may ask of it."""

    name: str
    farm_name: str
    me: NodeConfig
    config: FarmConfig
    worker: int | None
    bus: WorkerBus | None
    loop: asyncio.AbstractEventLoop
    metrics: Metrics
    counters: Counter[str]
    peers: Peers
    entry: Entry
    membership: Membership
    health: HealthChecker
    directory: Directory
    draining: bool
    app_unhealthy: bool

    def load(self) -> int: ...

    def tables(self) -> dict[str, Any]: ...

    def start_draining(self) -> None: ...

    def stop_draining(self) -> None: ...


# ------------------------------------------------------------------------------ samples
class LinkAccounts:
    """Per-peer link byte counters that survive links being replaced (reconnects).

    A link's own counters end with it: when a link is no longer among the
    node's links its last seen counts move to `retired` (bytes in its last
    sampling period are lost).
    """

    def __init__(self) -> None:
        self.seen: dict[LinkDriver, tuple[str, str, int, int]] = {}
        self.retired: Counter[tuple[str, str, str]] = Counter()

    def rows(self, links: Iterable[LinkDriver]) -> list[dict[str, Any]]:
        current = [ln for ln in links if ln.peer_name is not None]
        alive = set(current)
        for link, (peer, direction, sent, received) in list(self.seen.items()):
            if link not in alive:
                self.retired[(peer, direction, "sent")] += sent
                self.retired[(peer, direction, "received")] += received
                del self.seen[link]
        rows: dict[tuple[str, str], dict[str, Any]] = {}
        for (peer, direction, what), n in self.retired.items():
            row = rows.setdefault((peer, direction), _link_row(peer, direction))
            row[what] += n
        for link in current:
            name = link.peer_name
            assert name is not None
            direction = link.direction
            self.seen[link] = (name, direction, link.bytes_sent, link.bytes_received)
            row = rows.setdefault((name, direction), _link_row(name, direction))
            row["sent"] += link.bytes_sent
            row["received"] += link.bytes_received
            if link.authenticated and not link.closed:
                row["up"] = 1
                if link.rtt is not None:
                    row["rtt"] = link.rtt
        return [rows[k] for k in sorted(rows)]


def _link_row(peer: str, direction: str) -> dict[str, Any]:
    return {"peer": peer, "direction": direction, "up": 0, "rtt": None, "sent": 0, "received": 0}


def process_sample(node: Node, accounts: LinkAccounts) -> Sample:
    """This process's numbers: request metrics, node counters, gauges, links."""
    sample = node.metrics.snapshot()
    links = [*node.peers.links_out.values(), *node.peers.links_in]
    sample.update(
        worker=node.worker or 0,
        counters=dict(node.counters),
        gauges={
            "clients": len(node.entry.clients),
            "local": node.entry.local_active,
            "home_flows": node.peers.home_flows(),
            "pending": sum(ln.conn.tables.pending_count for ln in links),
            "forward": sum(ln.conn.tables.forward_count for ln in links),
        },
        links=accounts.rows(links),
    )
    return sample


def node_view(node: Node) -> dict[str, Any]:
    """What this node knows of itself and the farm (worker 0's view)."""
    members: dict[str, str | None] = {}
    for name in [node.name, *node.peers.peers]:
        state = node.membership.state(name)
        members[name] = state.name.lower() if state is not None else None
    loads = {name: int(load) for name, load in node.peers.loads.items()}
    loads[node.name] = node.load()
    return {
        "node": node.name,
        "farm": node.farm_name,
        "workers": node.me.workers,
        "draining": node.draining,
        "app_healthy": not node.app_unhealthy,
        "apps": node.health.state(),
        "load": node.load(),
        "loads": loads,
        "members": members,
        "live": sorted(node.peers.view.live),
        "directory": {"entries": len(node.directory)},
    }


# ------------------------------------------------------------------------------ HTTP
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


# ------------------------------------------------------------------------------ the admin side
class Admin:
    """The admin side of one node process: the listener (worker 0) or the shipper (siblings)."""

    def __init__(self, node: Node) -> None:
        self.node = node
        me = node.me
        assert me.admin is not None
        self.address: Address = me.admin
        self.token = me.admin_token
        self.serves = node.worker in (None, 0)
        self.accounts = LinkAccounts()
        self.siblings: dict[int, tuple[float, Sample]] = {}
        self.server: asyncio.Server | None = None
        self.tasks: list[asyncio.Task[None]] = []
        self.streams = 0
        self.wanted_until = 0.0
        self.farm: dict[str, Any] = {}
        self.rows: dict[str, dict[str, Any]] = {}  # other members' last rows
        self.previous: dict[str, tuple[float, dict[str, dict[str, int]]]] = {}
        self.rates: dict[str, dict[str, dict[str, float]]] = {}
        self.closing = asyncio.Event()

    # -- lifecycle ------------------------------------------------------------------
    async def start(self) -> None:
        loop = self.node.loop
        if self.serves:
            self.server = await asyncio.start_server(
                self._serve, self.address.host, self.address.port, limit=MAX_HEAD
            )
            self.tasks.append(loop.create_task(self._refresh_forever()))
            log.info("admin_listening", node=self.node.name, address=str(self.address))
        else:
            self.tasks.append(loop.create_task(self._ship_forever()))

    async def close(self) -> None:
        self.closing.set()
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
            if node.bus is None or node.worker is None:
                continue
            try:
                payload = json.dumps(process_sample(node, self.accounts)).encode()
                node.bus.write(encode_metrics(node.worker, payload))
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
            sample["worker"] = worker
            self.siblings[worker] = (self.node.loop.time(), sample)
        elif frame.type == ADMIN:
            if decode_admin(frame.payload) == ADMIN_DRAIN:
                self.node.start_draining()
            else:
                self.node.stop_draining()

    def merged(self) -> Sample:
        now = self.node.loop.time()
        for worker, (at, _) in list(self.siblings.items()):
            if now - at > STALE_SAMPLE:
                del self.siblings[worker]
        own = process_sample(self.node, self.accounts)
        return merge([own, *(s for _, s in self.siblings.values())])

    # -- the farm page's data ----------------------------------------------------------
    def own_row(self, merged: Sample) -> dict[str, Any]:
        view = node_view(self.node)
        return {
            "node": self.node.name,
            "row": matrix(merged, self.node.name),
            "load": view["load"],
            "app_healthy": view["app_healthy"],
            "apps": view["apps"],
            "draining": view["draining"],
        }

    def _rate(self, name: str, row: dict[str, dict[str, int]], now: float) -> None:
        prev = self.previous.get(name)
        self.previous[name] = (now, row)
        if prev is None or now <= prev[0]:
            return
        dt = now - prev[0]
        out: dict[str, dict[str, float]] = {}
        for home, cell in row.items():
            before = prev[1].get(home, {"requests": 0, "bytes": 0})
            out[home] = {
                "rps": max(0, cell["requests"] - before["requests"]) / dt,
                "bps": max(0, cell["bytes"] - before["bytes"]) / dt,
                "requests": cell["requests"],
            }
        self.rates[name] = out

    async def _refresh_forever(self) -> None:
        while not self.closing.is_set():
            try:
                await self._refresh()
            except Exception:  # the page's data must never stop the node
                log.exception("admin_refresh_failed", node=self.node.name)
            await asyncio.sleep(REFRESH)

    async def _refresh(self) -> None:
        node = self.node
        now = node.loop.time()
        own = self.own_row(self.merged())
        self._rate(node.name, own["row"], now)
        wanted = now < self.wanted_until or self.streams > 0
        others = [n for n in node.config.nodes.values() if n.name != node.name]
        if wanted and others:
            got = await asyncio.gather(*(self._read_row(n) for n in others))
            now = node.loop.time()
            for peer, row in zip(others, got, strict=True):
                if row is None:
                    self.rows.pop(peer.name, None)
                    self.rates.pop(peer.name, None)
                    self.previous.pop(peer.name, None)
                    continue
                self.rows[peer.name] = row
                cells = row.get("row")
                if isinstance(cells, dict):
                    self._rate(peer.name, cells, now)
        view = node_view(node)
        names = list(node.config.nodes)
        members = []
        for name in names:
            info = own if name == node.name else self.rows.get(name)
            members.append(
                {
                    "name": name,
                    "self": name == node.name,
                    "state": view["members"].get(name),
                    "load": view["loads"].get(name),
                    "app_healthy": None if info is None else info.get("app_healthy"),
                    "apps": None if info is None else info.get("apps"),
                    "admin": name == node.name or info is not None,
                }
            )
        self.farm = {
            "farm": node.farm_name,
            "node": node.name,
            "time": time.time(),
            "draining": node.draining,
            "members": members,
            "matrix": {
                "nodes": names,
                "rows": {n: self.rates.get(n) for n in names if n in self.rates},
            },
        }

    async def _read_row(self, peer: NodeConfig) -> dict[str, Any] | None:
        """GET /api/row of another member's admin listener; None when it does not answer."""
        if peer.admin is None:
            return None
        host = peer.admin.host
        if host in ("0.0.0.0", "::", ""):
            host = peer.forward_advertised.host
        auth = f"Authorization: Bearer {peer.admin_token}\r\n" if peer.admin_token else ""
        request = f"GET /api/row HTTP/1.1\r\nHost: {host}\r\n{auth}Connection: close\r\n\r\n"
        writer: asyncio.StreamWriter | None = None
        try:
            async with asyncio.timeout(PEER_TIMEOUT):
                reader, writer = await asyncio.open_connection(host, peer.admin.port)
                writer.write(request.encode("latin-1"))
                data = await reader.read(MAX_PEER_RESPONSE)
                while data and len(data) < MAX_PEER_RESPONSE:
                    more = await reader.read(MAX_PEER_RESPONSE - len(data))
                    if not more:
                        break
                    data += more
        except (OSError, TimeoutError):
            return None
        finally:
            if writer is not None:
                writer.close()
        head, _, body = data.partition(b"\r\n\r\n")
        if not head.startswith(b"HTTP/1.1 200 "):
            return None
        try:
            row = json.loads(body)
        except ValueError:
            return None
        # a loopback address of a member on another machine may reach something else here
        if not isinstance(row, dict) or row.get("node") != peer.name:
            return None
        return row

    # -- serving ------------------------------------------------------------------------------
    def _authorized(self, request: Request) -> bool:
        token = self.token
        if token is None:
            return True
        given = ""
        auth = request.headers.get("authorization", "")
        if auth[:7].lower() == "bearer ":
            given = auth[7:].strip()
        elif request.query.get("token"):
            given = request.query["token"][0]  # the page's EventSource cannot set headers
        return hmac.compare_digest(given.encode(), token.encode())

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
            if request.path == "/events" and request.method == "GET" and self._authorized(request):
                await self._events(writer)
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
        if not self._authorized(request):
            return response(
                401,
                b'{"error": "a bearer token is required"}\n',
                extra='WWW-Authenticate: Bearer realm="lb admin"\r\n',
            )
        routes_get = {
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
        routes_post = {"/drain": self._drain, "/undrain": self._undrain}
        if method == "GET" and path in routes_get:
            return routes_get[path]()
        if method == "POST" and path in routes_post:
            return routes_post[path]()
        if path in routes_get or path in routes_post:
            return json_response(405, {"error": f"{method} is not allowed on {path}"})
        return json_response(404, {"error": f"no such path: {path}"})

    def _page(self) -> bytes:
        return response(200, PAGE, "text/html; charset=utf-8")

    def _metrics(self) -> bytes:
        text = render(node_view(self.node), self.merged())
        return response(200, text.encode(), CONTENT_TYPE)

    def _status(self) -> bytes:
        merged = self.merged()
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
        return json_response(200, {"links": self.merged()["links"]})

    def _tables(self) -> bytes:
        tables = self.node.tables()
        tables.pop("directory_sample", None)
        return json_response(200, tables)

    def _directory(self) -> bytes:
        counters = self.merged()["counters"]
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
        return json_response(200, self.own_row(self.merged()))

    def _farm(self) -> bytes:
        self.wanted_until = self.node.loop.time() + DEMAND
        return json_response(200, self.farm)

    def _drain(self) -> bytes:
        self.node.start_draining()
        if self.node.bus is not None:
            self.node.bus.write(encode_admin(ADMIN_DRAIN))
        return json_response(200, {"draining": self.node.draining})

    def _undrain(self) -> bytes:
        self.node.stop_draining()
        if self.node.bus is not None:
            self.node.bus.write(encode_admin(ADMIN_UNDRAIN))
        # still draining when the node is shutting down (SIGTERM): that drain is not undone
        return json_response(200, {"draining": self.node.draining})

    async def _events(self, writer: asyncio.StreamWriter) -> None:
        """Server-sent events: the farm snapshot once a second while the page is open."""
        if self.streams >= MAX_EVENT_STREAMS:
            writer.write(json_response(503, {"error": "too many farm pages open"}))
            return
        self.streams += 1
        try:
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Cache-Control: no-store\r\nConnection: close\r\n\r\n"
            )
            if not self.farm:
                await self._refresh()
            while not self.closing.is_set():
                data = json.dumps(self.farm, sort_keys=True)
                writer.write(f"data: {data}\n\n".encode())
                async with asyncio.timeout(REFRESH * 5):
                    await writer.drain()
                if writer.is_closing():
                    return
                await asyncio.sleep(REFRESH)
        finally:
            self.streams -= 1


__all__ = ["Admin", "LinkAccounts", "node_view", "parse_head", "process_sample"]
