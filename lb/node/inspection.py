"""What a node process shows of its state: the tables record (SIGUSR1, /api/tables).

`tables(node)` gathers, for a person or a test looking in: the pending and
forward tables of every link end, the client connections (and the TLS ones
whose handshake is not done) and pooled upstreams, the live set and each
member's state and incarnation, the health of the applications, a sample of
the directory (keys are keyed hashes, never the tokens) and the node's counters.

It must not change anything it reads.
"""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any, Protocol

from lb.clock import wall
from lb.cluster.membership import Membership
from lb.node.entry import Entry
from lb.node.health import HealthChecker
from lb.node.peers import Peers
from lb.routing.directory import Directory

DUMP_DIRECTORY_SAMPLE = 20  # learned sessions shown


class Inspected(Protocol):
    """What the tables record reads of the node (lb.node.node.Node)."""

    name: str
    worker: int | None
    peers: Peers
    entry: Entry
    membership: Membership
    health: HealthChecker
    directory: Directory
    counters: Counter[str]


def tables(node: Inspected) -> dict[str, Any]:
    """The pending and forward tables of every link end, and the rest, for inspection."""
    links = node.peers.tables()
    return {
        "node": node.name,
        "worker": node.worker,
        "links": links,
        "pending": sum(len(v["pending"]) for v in links.values()),
        "forward": sum(len(v["forward"]) for v in links.values()),
        "local": node.entry.local_active,
        "clients": len(node.entry.clients),
        # TLS clients accepted, handshake not done: handshaking or waiting for a slot
        "tls_handshakes": node.entry.tls_handshakes(),
        # idle pooled upstreams: flows (by id) to each home, connections to the local app
        "pooled": node.entry.pool.describe(),
        "live": sorted(node.peers.view.live),
        # peers kept as homes of their sessions while this node hears none (in "live")
        "held": sorted(node.peers.held),
        # peers declared dead whose sessions wait for them (dead_rehome_after; in "live")
        "dead_held": sorted(node.peers.dead_held),
        "members": {
            peer: state.name.lower() if state is not None else None
            for peer in node.peers.peers
            for state in [node.membership.state(peer)]
        },
        # this node's own incarnation first (once known), then each peer's as heard
        "incarnations": {e.node: e.incarnation for e in node.membership.full_state()},
        "apps": node.health.state(),
        "directory": len(node.directory),
        # where some learned sessions live; keys are keyed hashes, never the tokens
        "directory_sample": {
            e.key: e.home
            for e in itertools.islice(node.directory.iter_entries(wall()), DUMP_DIRECTORY_SAMPLE)
        },
        "counters": node.entry.counter_values(),
    }


__all__ = ["DUMP_DIRECTORY_SAMPLE", "Inspected", "tables"]
