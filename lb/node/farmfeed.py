"""The farm page's data: a snapshot of the farm once a second, and the event stream that carries it.

`FarmFeed.refresh` builds the snapshot the page draws: the members with their
state as this node sees it, their load and application health, and the
forwarding matrix as rates (requests/s, bytes/s from each entry to each home).
This node's row comes from its merged metrics; the other rows are read from the
other members' admin listeners (`GET /api/row`, addresses and tokens from the
same farm file) while a page is open or an API call wanted them lately. A
member whose listener cannot be reached has no row. `events` streams the
snapshot as server-sent events (at most `MAX_EVENT_STREAMS` pages at once).

It must not change the node; it reads it (lb.node.adminsample).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import structlog

from lb.config import NodeConfig
from lb.node.adminhttp import json_response
from lb.node.adminsample import Node, Samples, node_view
from lb.node.metrics import Sample, matrix

log = structlog.get_logger("lb.admin")

MAX_EVENT_STREAMS = 16  # farm pages open at once
REFRESH = 1.0  # seconds between farm snapshots (and reads of the other members' rows)
DEMAND = 10.0  # read other members' rows while a page or an API call wanted them this recently
PEER_TIMEOUT = 0.8  # seconds for a read of another member's row
MAX_PEER_RESPONSE = 256 * 1024


class FarmFeed:
    """The snapshot of the farm the page shows, kept fresh by worker 0's admin side."""

    def __init__(self, node: Node, samples: Samples) -> None:
        self.node = node
        self.samples = samples
        self.streams = 0
        self.wanted_until = 0.0
        self.farm: dict[str, Any] = {}
        self.rows: dict[str, dict[str, Any]] = {}  # other members' last rows
        self.previous: dict[str, tuple[float, dict[str, dict[str, int]]]] = {}
        self.rates: dict[str, dict[str, dict[str, float]]] = {}
        self.closing = asyncio.Event()

    def want(self) -> None:
        """An API call asked for the snapshot: read the other members' rows for a while."""
        self.wanted_until = self.node.loop.time() + DEMAND

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

    async def refresh_forever(self) -> None:
        while not self.closing.is_set():
            try:
                await self.refresh()
            except Exception:  # the page's data must never stop the node
                log.exception("admin_refresh_failed", node=self.node.name)
            await asyncio.sleep(REFRESH)

    async def refresh(self) -> None:
        node = self.node
        now = node.loop.time()
        own = self.own_row(self.samples.merged())
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

    async def events(self, writer: asyncio.StreamWriter) -> None:
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
                await self.refresh()
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


__all__ = ["DEMAND", "MAX_EVENT_STREAMS", "REFRESH", "FarmFeed"]
