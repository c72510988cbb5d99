"""What the admin side reads of a node process: its metrics sample and its view of the farm.

`process_sample` turns this process's numbers (request metrics, node counters,
gauges, per-peer link bytes that survive reconnects: `LinkAccounts`) into a
sample (lb.node.metrics); `Samples` keeps the latest sample each sibling
worker shipped over the bus and merges them with this process's own;
`node_view` is what the node knows of itself and the farm. `Node` names what
is read (lb.node.node.Node provides it).

It must not serve HTTP (lb.node.admin, lb.node.adminhttp) nor change the node.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterable
from typing import Any, Protocol

from lb.cluster.membership import Membership
from lb.config import FarmConfig, NodeConfig
from lb.node.entry import Entry
from lb.node.health import HealthChecker
from lb.node.metrics import Metrics, Sample, merge
from lb.node.peerlink import LinkDriver
from lb.node.peers import Peers
from lb.node.siblings import Siblings
from lb.routing.directory import Directory

STALE_SAMPLE = 5.0  # a sibling's sample older than this is dropped (the worker died)


class Node(Protocol):
    """What the admin side reads of the node (lb.node.node.Node) and may ask of it."""

    name: str
    farm_name: str
    me: NodeConfig
    config: FarmConfig
    worker: int | None
    siblings: Siblings
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
        counters=node.entry.counter_values(),
        gauges={
            "clients": len(node.entry.clients),
            "tls_handshakes": node.entry.handshake_slots.running,
            "tls_handshakes_waiting": node.entry.handshake_slots.queued,
            "local": node.entry.local_active,
            "home_flows": node.peers.home_flows(),
            "pending": sum(ln.conn.tables.pending_count for ln in links),
            "forward": sum(ln.conn.tables.forward_count for ln in links),
        },
        links=accounts.rows(links),
    )
    return sample


class Samples:
    """This process's sample and the latest one of each sibling worker, merged on demand."""

    def __init__(self, node: Node) -> None:
        self.node = node
        self.accounts = LinkAccounts()
        self.siblings: dict[int, tuple[float, Sample]] = {}

    def own(self) -> Sample:
        return process_sample(self.node, self.accounts)

    def keep(self, worker: int, sample: Sample) -> None:
        """A sibling's sample (METRICS on the bus) replaces its previous one."""
        sample["worker"] = worker
        self.siblings[worker] = (self.node.loop.time(), sample)

    def merged(self) -> Sample:
        now = self.node.loop.time()
        for worker, (at, _) in list(self.siblings.items()):
            if now - at > STALE_SAMPLE:
                del self.siblings[worker]
        return merge([self.own(), *(s for _, s in self.siblings.values())])


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
        # live for their sessions, though unreachable: isolated or dead_rehome_after
        "held": sorted(node.peers.held | node.peers.dead_held),
        "directory": {"entries": len(node.directory)},
    }


__all__ = ["STALE_SAMPLE", "LinkAccounts", "Node", "Samples", "node_view", "process_sample"]
