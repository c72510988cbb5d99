"""The pending table and the forward table of one link end.

A flow announced with NEW waits in the pending table until the home answers
VERIFIED (or a deadline passes); verified flows live in the forward table,
which the DATA path reads on every frame. Both tables together hold at most
``max_flows`` flows. Pure: no I/O, no clock (time is passed in as ``now``).
Compiled (setup.py): the link's DATA path looks a flow up natively.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from lb.errors import TableFull

__all__ = ["FlowTables"]

V = TypeVar("V")


class FlowTables(Generic[V]):
    """Pending flows (insertion-ordered, with deadlines) and forward flows, bounded together."""

    __slots__ = ("_forward", "_last_deadline", "_pending", "max_flows", "pending_timeout")

    def __init__(self, max_flows: object, pending_timeout: float) -> None:
        # max_flows is checked here, not typed int: compiled (setup.py), an int
        # parameter would take True as 1 and refuse 1.5 with a TypeError
        if isinstance(max_flows, bool) or not isinstance(max_flows, int) or max_flows < 1:
            raise ValueError(f"max_flows must be an int >= 1, got {max_flows!r}")
        if not pending_timeout > 0:
            raise ValueError(f"pending_timeout must be > 0, got {pending_timeout!r}")
        self.max_flows = max_flows
        self.pending_timeout = pending_timeout
        # flow id -> (value, deadline); deadlines never decrease in insertion order
        self._pending: OrderedDict[int, tuple[V, float]] = OrderedDict()
        self._forward: dict[int, V] = {}
        self._last_deadline = float("-inf")

    def __len__(self) -> int:
        return len(self._pending) + len(self._forward)

    def __contains__(self, flow_id: object) -> bool:
        return flow_id in self._forward or flow_id in self._pending

    @property
    def pending_count(self) -> int:
        return len(self._pending)

    @property
    def forward_count(self) -> int:
        return len(self._forward)

    def _check_new(self, flow_id: int) -> None:
        if flow_id in self._forward or flow_id in self._pending:
            raise ValueError(f"flow {flow_id} is already in the tables")
        if len(self._pending) + len(self._forward) >= self.max_flows:
            raise TableFull(f"{self.max_flows} flows already in the tables")

    def add_pending(self, flow_id: int, value: V, now: float) -> None:
        """Announce a flow; it expires at ``now + pending_timeout`` unless verified.

        A deadline is never earlier than the one of the flow added before it (if
        ``now`` steps back, the new flow waits a little longer, never less), so
        expiry can stop at the first live flow. Raises ValueError for an id in
        either table and TableFull when the tables are full.
        """
        self._check_new(flow_id)
        deadline = max(now + self.pending_timeout, self._last_deadline)
        self._last_deadline = deadline
        self._pending[flow_id] = (value, deadline)

    def add_forward(self, flow_id: int, value: V) -> None:
        """Put a flow straight into the forward table (the home side after its app connected)."""
        self._check_new(flow_id)
        self._forward[flow_id] = value

    def verify(self, flow_id: int) -> V | None:
        """Move a pending flow to the forward table; None if it is not pending."""
        entry = self._pending.pop(flow_id, None)
        if entry is None:
            return None
        value = entry[0]
        self._forward[flow_id] = value
        return value

    def get(self, flow_id: int) -> V | None:
        """The flow's value from either table, or None."""
        value = self._forward.get(flow_id)
        if value is not None:
            return value
        entry = self._pending.get(flow_id)
        return None if entry is None else entry[0]

    def is_pending(self, flow_id: int) -> bool:
        return flow_id in self._pending

    def remove(self, flow_id: int) -> V | None:
        """Remove a flow from either table; its value, or None if absent."""
        if flow_id in self._forward:
            return self._forward.pop(flow_id)
        entry = self._pending.pop(flow_id, None)
        return None if entry is None else entry[0]

    def expire(self, now: float) -> list[tuple[int, V]]:
        """Remove and return pending flows whose deadline <= ``now``, oldest first."""
        expired: list[tuple[int, V]] = []
        pending = self._pending
        while pending:
            flow_id = next(iter(pending))
            value, deadline = pending[flow_id]
            if deadline > now:
                break
            del pending[flow_id]
            expired.append((flow_id, value))
        return expired

    def next_deadline(self) -> float | None:
        """The earliest pending deadline (for the I/O layer's timer), or None."""
        if not self._pending:
            return None
        return self._pending[next(iter(self._pending))][1]

    def values(self) -> list[V]:
        """Every flow's value (pending first, then forward); a copy, safe to mutate under."""
        return [entry[0] for entry in self._pending.values()] + list(self._forward.values())

    def items(self) -> list[tuple[int, V]]:
        """Every (flow id, value) (pending first, then forward); a copy."""
        return [(i, entry[0]) for i, entry in self._pending.items()] + list(self._forward.items())

    def clear(self) -> None:
        """Drop every flow (the link closed); deadlines start afresh."""
        self._pending.clear()
        self._forward.clear()
        self._last_deadline = float("-inf")

    def snapshot(self) -> dict[str, list[int]]:
        """Flow ids for inspection: pending oldest first, forward in insertion order."""
        return {"pending": list(self._pending), "forward": list(self._forward)}
