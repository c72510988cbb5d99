"""The farm as one node sees it: members, liveness, load, drain.

``FarmView`` is an immutable snapshot the I/O layer rebuilds when liveness,
load or drain state changes; routing reads it. ``Liveness`` is the state
machine that turns "heard from peer at time t" into a live set. Pure: no I/O,
no clock (time is passed in as ``now``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

__all__ = ["FarmView", "Liveness", "NodeInfo"]


@dataclass(frozen=True, slots=True)
class NodeInfo:
    """One member of the farm: its name, forward address, services and Maglev weight."""

    name: str
    forward: tuple[str, int]
    services: Mapping[str, tuple[str, int]]
    weight: int = 1

    def __post_init__(self) -> None:
        if isinstance(self.weight, bool) or not isinstance(self.weight, int) or self.weight < 1:
            raise ValueError(f"weight of node {self.name!r} must be an int >= 1")


@dataclass(frozen=True, slots=True)
class FarmView:
    """An immutable snapshot of the farm for routing.

    ``live`` always contains ``self_name``; ``draining`` nodes keep their
    sessions but take no new ones. A live name missing from ``nodes`` counts
    with weight 1.
    """

    self_name: str
    nodes: Mapping[str, NodeInfo]
    live: frozenset[str]
    loads: Mapping[str, float]
    draining: frozenset[str] = field(default_factory=frozenset)

    def placeable(self) -> list[str]:
        """Sorted live nodes that are not draining; all live nodes if every one drains."""
        names = sorted(self.live - self.draining)
        return names if names else sorted(self.live)

    def weights(self) -> dict[str, int]:
        """Live node name -> Maglev weight."""
        nodes = self.nodes
        return {name: (nodes[name].weight if name in nodes else 1) for name in self.live}


class Liveness:
    """Liveness of the peers of one node, fed with "heard from" events.

    A peer is live while less than ``dead_after`` seconds passed since it was
    last heard from. Peers start "unknown" (not live) until heard; a closed
    link (``lost``) makes a peer not live at once. Events for names that are
    not peers are ignored. Time only moves forward per peer: an older
    ``heard_from`` never undoes a newer one.
    """

    __slots__ = ("_dead_after", "_heard")

    def __init__(self, peers: Iterable[str], dead_after: float, now: float) -> None:
        if not dead_after > 0:
            raise ValueError(f"dead_after must be > 0, got {dead_after!r}")
        del now  # every peer is unknown at the start, whatever the time
        self._dead_after = dead_after
        # peer -> last time heard; None = not heard since the start or since its link was lost
        self._heard: dict[str, float | None] = dict.fromkeys(peers)

    @property
    def dead_after(self) -> float:
        return self._dead_after

    @property
    def peers(self) -> frozenset[str]:
        return frozenset(self._heard)

    def heard_from(self, peer: str, now: float) -> None:
        """A frame, heartbeat or handshake arrived from ``peer`` at ``now``."""
        if peer not in self._heard:
            return
        last = self._heard[peer]
        if last is None or now > last:
            self._heard[peer] = now

    def lost(self, peer: str) -> None:
        """The link to ``peer`` closed: not live until heard from again."""
        if peer in self._heard:
            self._heard[peer] = None

    def is_live(self, peer: str, now: float) -> bool:
        """Heard from within the last ``dead_after`` seconds."""
        last = self._heard.get(peer)
        return last is not None and now - last < self._dead_after

    def live_set(self, now: float) -> frozenset[str]:
        """The live peers (this node itself is not a peer)."""
        limit = self._dead_after
        return frozenset(
            peer for peer, last in self._heard.items() if last is not None and now - last < limit
        )

    def last_heard(self, peer: str) -> float | None:
        """When ``peer`` was last heard from (None: never, or its link was lost since)."""
        return self._heard.get(peer)

    def add_peer(self, peer: str) -> None:
        """A new member: starts unknown. Adding a present peer changes nothing."""
        self._heard.setdefault(peer, None)

    def remove_peer(self, peer: str) -> None:
        """A member left the farm. Removing an absent peer changes nothing."""
        self._heard.pop(peer, None)
