"""Boundary tests of lb.routing.tables: the smallest legal limits and exact deadlines.

Complements test_tables.py with the limit values themselves (one flow, the smallest
positive timeout) and exact deadline arithmetic, the cases a mutation run
(scripts/mutation.py) showed uncovered.
"""

from __future__ import annotations

import math

import pytest

from lb.errors import TableFull
from lb.routing.tables import FlowTables


def test_one_flow_is_a_legal_limit() -> None:
    t: FlowTables[str] = FlowTables(max_flows=1, pending_timeout=1e-9)
    assert t.max_flows == 1
    t.add_pending(7, "a", 0.0)
    assert len(t) == 1
    with pytest.raises(TableFull):
        t.add_pending(8, "b", 0.0)
    with pytest.raises(TableFull):
        t.add_forward(8, "b")
    assert t.remove(7) == "a"
    t.add_forward(8, "b")
    assert len(t) == 1 and t.forward_count == 1 and t.pending_count == 0


@pytest.mark.parametrize("timeout", [math.nan, -math.inf, -1e-9])
def test_timeout_must_be_a_positive_number(timeout: float) -> None:
    with pytest.raises(ValueError):
        FlowTables(1, timeout)


def test_deadline_is_now_plus_timeout_exactly() -> None:
    t: FlowTables[str] = FlowTables(max_flows=4, pending_timeout=2.5)
    assert t.next_deadline() is None
    t.add_pending(1, "a", 10.0)
    assert t.next_deadline() == 12.5
    assert t.expire(12.499) == []
    assert t.is_pending(1)
    assert t.expire(12.5) == [(1, "a")]
    assert not t.is_pending(1) and len(t) == 0


def test_clear_forgets_the_last_deadline() -> None:
    t: FlowTables[str] = FlowTables(max_flows=4, pending_timeout=1.0)
    t.add_pending(1, "a", 100.0)
    t.clear()
    t.add_pending(2, "b", 0.0)
    assert t.next_deadline() == 1.0
    assert t.expire(1.0) == [(2, "b")]


def test_falsy_values_are_values() -> None:
    t: FlowTables[int] = FlowTables(max_flows=4, pending_timeout=1.0)
    t.add_forward(1, 0)
    t.add_pending(2, 0, 0.0)
    assert t.get(1) == 0 and t.get(2) == 0 and t.get(3) is None
    assert 1 in t and 2 in t and 3 not in t
    assert t.verify(2) == 0 and t.verify(2) is None
    assert t.remove(1) == 0 and t.remove(1) is None
