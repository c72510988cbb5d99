"""One member of the farm as the router sees it: ``NodeInfo`` (re-exported by lb.routing.view).

A module of its own so that the compiled build makes lb.routing.view's FarmView
native code while NodeInfo stays plain Python: its ``__post_init__`` check answers
ValueError for a weight of any wrong type, which a native class's typed field
would turn into a TypeError (or take a bool as the int it is). Pure data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["NodeInfo"]


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
