"""The farm as the router sees it: members, which are live, their load, who drains.

``FarmView`` is an immutable snapshot the I/O layer rebuilds when membership
(lb.cluster), load or drain state changes; ``route()`` reads it. Pure data: no
I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

__all__ = ["FarmView", "NodeInfo"]


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
