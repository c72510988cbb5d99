"""The farm as the router sees it: members, which are live, their load, who drains,
whose sessions are re-homed.

``FarmView`` is an immutable snapshot the I/O layer rebuilds when membership
(lb.cluster), load or drain state changes; ``route()`` reads it. Pure data: no
I/O, no clock.

The compiled build makes ``FarmView`` a native class (the router reads it per
request); ``NodeInfo`` stays plain Python in lb.routing.nodeinfo (re-exported
here), whose check of its fields answers ValueError for any wrongly typed weight.
``ViewCell`` holds the view of now for the parts that read it per request.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from lb.routing.nodeinfo import NodeInfo

__all__ = ["FarmView", "NodeInfo", "ViewCell"]


@dataclass(frozen=True, slots=True)
class FarmView:
    """An immutable snapshot of the farm for routing.

    ``live`` always contains ``self_name``; ``draining`` nodes keep their
    sessions but take no new ones. ``rehomed`` nodes are live but neither keep
    their sessions nor take new ones nor own hashed identifiers: a node whose
    application stayed down past ``app_down_rehome_after`` (only ever the node
    itself; its peers see it LEFT). A live name missing from ``nodes`` counts
    with weight 1.
    """

    self_name: str
    nodes: Mapping[str, NodeInfo]
    live: frozenset[str]
    loads: Mapping[str, float]
    draining: frozenset[str] = field(default_factory=frozenset)
    rehomed: frozenset[str] = field(default_factory=frozenset)

    def keeps(self, name: str) -> bool:
        """Whether sessions homed on ``name`` stay there: live and not re-homed."""
        return name in self.live and name not in self.rehomed

    def homes(self) -> frozenset[str]:
        """The live nodes that keep their sessions (all live nodes if every one is re-homed)."""
        return (self.live - self.rehomed) or self.live

    def placeable(self) -> list[str]:
        """Sorted nodes that take new sessions: live, not draining, not re-homed.

        If there is none: the live nodes that are not re-homed, and if every live
        node is re-homed, all live nodes (a session must go somewhere).
        """
        homes = self.homes()
        names = sorted(homes - self.draining)
        return names if names else sorted(homes)

    def strictly_placeable(self) -> list[str]:
        """Sorted live nodes that are neither draining nor re-homed; no fallback (may be empty)."""
        return sorted(self.live - self.draining - self.rehomed)

    def weights(self) -> dict[str, int]:
        """Node name -> Maglev weight, for every node of ``homes()``."""
        nodes = self.nodes
        return {name: (nodes[name].weight if name in nodes else 1) for name in self.homes()}


class ViewCell:
    """The farm view of now (``view``, replaced whole when it changes): the I/O layer's
    membership keeps it, the entry reads it per request (natively, compiled)."""

    __slots__ = ("view",)

    def __init__(self, view: FarmView) -> None:
        self.view = view
