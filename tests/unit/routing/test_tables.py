"""Tests of lb.routing.tables: bounds, verify/remove, expiry order, a model-based run."""

from __future__ import annotations

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from lb.errors import TableFull
from lb.routing.tables import FlowTables


def test_bounds_count_both_tables() -> None:
    t: FlowTables[str] = FlowTables(max_flows=3, pending_timeout=5.0)
    t.add_pending(1, "a", 0.0)
    t.add_forward(2, "b")
    t.add_pending(3, "c", 0.0)
    assert len(t) == 3 and t.pending_count == 2 and t.forward_count == 1
    with pytest.raises(TableFull):
        t.add_pending(4, "d", 0.0)
    with pytest.raises(TableFull):
        t.add_forward(4, "d")
    assert t.verify(1) == "a"  # verify does not change the count
    with pytest.raises(TableFull):
        t.add_pending(4, "d", 0.0)
    assert t.remove(2) == "b"
    t.add_forward(4, "d")
    assert len(t) == 3


def test_duplicate_ids_are_rejected_in_either_table() -> None:
    t: FlowTables[str] = FlowTables(max_flows=10, pending_timeout=5.0)
    t.add_pending(1, "a", 0.0)
    t.add_forward(2, "b")
    for flow_id in (1, 2):
        with pytest.raises(ValueError):
            t.add_pending(flow_id, "x", 0.0)
        with pytest.raises(ValueError):
            t.add_forward(flow_id, "x")
    assert t.get(1) == "a" and t.get(2) == "b"


def test_verify_moves_pending_to_forward() -> None:
    t: FlowTables[str] = FlowTables(max_flows=10, pending_timeout=5.0)
    t.add_pending(7, "conn", 0.0)
    assert t.is_pending(7)
    assert t.get(7) == "conn"
    assert t.verify(7) == "conn"
    assert not t.is_pending(7)
    assert t.get(7) == "conn"
    assert t.snapshot() == {"pending": [], "forward": [7]}
    assert t.verify(7) is None  # no longer pending
    assert t.verify(8) is None  # never seen
    assert t.expire(100.0) == []  # a verified flow never expires


def test_remove_from_either_table() -> None:
    t: FlowTables[int] = FlowTables(max_flows=10, pending_timeout=5.0)
    t.add_pending(1, 10, 0.0)
    t.add_forward(2, 20)
    assert t.remove(1) == 10
    assert t.remove(2) == 20
    assert t.remove(1) is None
    assert t.remove(3) is None
    assert len(t) == 0 and t.get(1) is None and t.get(2) is None
    assert t.expire(100.0) == []


def test_expire_returns_due_flows_oldest_first() -> None:
    t: FlowTables[str] = FlowTables(max_flows=10, pending_timeout=5.0)
    t.add_pending(3, "c", 0.0)
    t.add_pending(1, "a", 1.0)
    t.add_pending(2, "b", 2.0)
    t.add_pending(4, "d", 4.0)
    t.verify(1)
    assert t.next_deadline() == 5.0
    assert t.expire(4.9) == []
    assert t.expire(7.0) == [(3, "c"), (2, "b")]  # deadline == now expires
    assert t.snapshot() == {"pending": [4], "forward": [1]}
    assert t.next_deadline() == 9.0
    assert t.expire(100.0) == [(4, "d")]
    assert t.next_deadline() is None
    assert t.pending_count == 0 and t.forward_count == 1


def test_deadline_boundary_is_inclusive() -> None:
    t: FlowTables[str] = FlowTables(max_flows=2, pending_timeout=0.5)
    t.add_pending(1, "a", 10.0)
    assert t.expire(10.499) == []
    assert t.expire(10.5) == [(1, "a")]


def test_clock_stepping_back_never_expires_early() -> None:
    t: FlowTables[str] = FlowTables(max_flows=10, pending_timeout=5.0)
    t.add_pending(1, "a", 100.0)
    t.add_pending(2, "b", 50.0)  # earlier clock: waits at least as long as flow 1
    assert t.expire(60.0) == []
    assert t.expire(105.0) == [(1, "a"), (2, "b")]


def test_snapshot_lists_ids() -> None:
    t: FlowTables[str] = FlowTables(max_flows=10, pending_timeout=5.0)
    for i in (5, 3, 9):
        t.add_pending(i, "x", 0.0)
    t.add_forward(1, "y")
    t.verify(3)
    assert t.snapshot() == {"pending": [5, 9], "forward": [1, 3]}
    assert 3 in t and 5 in t and 2 not in t


def test_values_items_and_clear() -> None:
    t: FlowTables[str] = FlowTables(max_flows=3, pending_timeout=5.0)
    t.add_forward(1, "f")
    t.add_pending(2, "p", 0.0)
    assert t.values() == ["p", "f"]
    assert t.items() == [(2, "p"), (1, "f")]
    for value in t.values():  # a copy: removing while iterating is safe
        t.remove(1 if value == "f" else 2)
    assert len(t) == 0
    t.add_forward(1, "f")
    t.add_pending(2, "p", 100.0)
    t.clear()
    assert len(t) == 0 and t.values() == [] and t.snapshot() == {"pending": [], "forward": []}
    t.add_pending(3, "q", 0.0)  # deadlines start afresh after clear
    assert t.expire(5.0) == [(3, "q")]


@pytest.mark.parametrize(
    "max_flows,timeout", [(0, 1.0), (-1, 1.0), (True, 1.0), (1.5, 1.0), (1, 0.0), (1, -1.0)]
)
def test_rejects_bad_limits(max_flows: int, timeout: float) -> None:
    with pytest.raises(ValueError):
        FlowTables(max_flows, timeout)


class TablesVersusModel(RuleBasedStateMachine):
    """Random operations against a plain-dict model of the two tables."""

    MAX = 8
    TIMEOUT = 3.0

    def __init__(self) -> None:
        super().__init__()
        self.t: FlowTables[str] = FlowTables(self.MAX, self.TIMEOUT)
        self.pending: dict[int, tuple[str, float]] = {}  # id -> (value, deadline)
        self.forward: dict[int, str] = {}
        self.now = 0.0

    ids = st.integers(min_value=0, max_value=12)

    @rule(dt=st.floats(min_value=0, max_value=2))
    def tick(self, dt: float) -> None:
        self.now += dt

    @rule(flow_id=ids, value=st.text(max_size=3))
    def add_pending(self, flow_id: int, value: str) -> None:
        if flow_id in self.pending or flow_id in self.forward:
            with pytest.raises(ValueError):
                self.t.add_pending(flow_id, value, self.now)
        elif len(self.pending) + len(self.forward) >= self.MAX:
            with pytest.raises(TableFull):
                self.t.add_pending(flow_id, value, self.now)
        else:
            self.t.add_pending(flow_id, value, self.now)
            self.pending[flow_id] = (value, self.now + self.TIMEOUT)

    @rule(flow_id=ids, value=st.text(max_size=3))
    def add_forward(self, flow_id: int, value: str) -> None:
        if flow_id in self.pending or flow_id in self.forward:
            with pytest.raises(ValueError):
                self.t.add_forward(flow_id, value)
        elif len(self.pending) + len(self.forward) >= self.MAX:
            with pytest.raises(TableFull):
                self.t.add_forward(flow_id, value)
        else:
            self.t.add_forward(flow_id, value)
            self.forward[flow_id] = value

    @rule(flow_id=ids)
    def verify(self, flow_id: int) -> None:
        got = self.t.verify(flow_id)
        if flow_id in self.pending:
            value, _ = self.pending.pop(flow_id)
            self.forward[flow_id] = value
            assert got == value
        else:
            assert got is None

    @rule(flow_id=ids)
    def remove(self, flow_id: int) -> None:
        got = self.t.remove(flow_id)
        if flow_id in self.pending:
            assert got == self.pending.pop(flow_id)[0]
        elif flow_id in self.forward:
            assert got == self.forward.pop(flow_id)
        else:
            assert got is None

    @rule()
    def expire(self) -> None:
        due = [(i, v) for i, (v, d) in self.pending.items() if d <= self.now]
        for i, _ in due:
            del self.pending[i]
        assert self.t.expire(self.now) == due

    @invariant()
    def same_contents(self) -> None:
        assert len(self.t) == len(self.pending) + len(self.forward)
        assert self.t.pending_count == len(self.pending)
        assert self.t.snapshot() == {"pending": list(self.pending), "forward": list(self.forward)}
        assert sorted(self.t.values()) == sorted(
            [v for v, _ in self.pending.values()] + list(self.forward.values())
        )
        for i in range(13):
            expected = self.forward.get(i, self.pending.get(i, (None, 0.0))[0])
            assert self.t.get(i) == expected
            assert self.t.is_pending(i) == (i in self.pending)


TablesVersusModel.TestCase.settings = settings(max_examples=60, stateful_step_count=30)
test_tables_versus_model = TablesVersusModel.TestCase


def test_deadlines_never_go_backwards_when_the_clock_steps_back() -> None:
    t: FlowTables[str] = FlowTables(max_flows=10, pending_timeout=5.0)
    t.add_pending(1, "a", 100.0)  # deadline 105
    t.add_pending(2, "b", 50.0)  # the clock stepped back: still 105, not 55
    t.add_pending(3, "c", 200.0)  # 205
    t.add_pending(4, "d", 10.0)  # 205
    assert t.next_deadline() == 105.0
    t.verify(1)  # flow 2 is first now: its deadline is the one it inherited
    assert t.next_deadline() == 105.0
    assert t.expire(60.0) == []
    assert t.expire(104.9) == []
    assert t.expire(105.0) == [(2, "b")]
    assert t.next_deadline() == 205.0
    assert t.expire(204.0) == []
    assert t.expire(205.0) == [(3, "c"), (4, "d")]
