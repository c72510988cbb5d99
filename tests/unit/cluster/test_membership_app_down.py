"""Tests of lb.cluster.membership: a node whose application is down, and stays down.

The application going down makes the node DRAINING at once (no new sessions);
still down ``app_down_rehome_after`` later, the node says LEFT (its sessions
are re-homed by every entry) and ``rehomed_nodes`` names it for its own view;
up again, it says ALIVE at a new incarnation.
"""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.cluster.membership import (
    Broadcast,
    Membership,
    MemberState,
    NodeState,
    StateChanged,
    Timing,
)
from lb.routing.view import FarmView

ALIVE = MemberState.ALIVE
DRAINING = MemberState.DRAINING
LEFT = MemberState.LEFT
DEAD = MemberState.DEAD

BOUND = 30.0
WALL = 1_700_000_000.0


def fresh(name: str = "a", peers: tuple[str, ...] = ("b", "c"), bound: float = BOUND) -> Membership:
    """A machine that heard every peer at 0 (actions drained)."""
    m = Membership(
        name, peers, 0.0, timing=Timing(app_down_rehome_after=bound), rng=random.Random(1)
    )
    for p in m.members:
        m.heard(p, 0.0)
    m.take_actions()
    return m


def test_the_bound_must_be_a_positive_finite_number() -> None:
    for bad in (0, -1.0, float("nan"), float("inf"), True, "30"):
        with pytest.raises(ValueError, match="app_down_rehome_after"):
            Timing(app_down_rehome_after=bad)  # type: ignore[arg-type]
    assert Timing().app_down_rehome_after == 30.0


def test_application_down_drains_at_once_then_gives_sessions_up_at_the_bound() -> None:
    m = fresh()
    m.app_down(5.0)
    assert m.app_down_since == 5.0
    assert m.state("a") is DRAINING
    assert m.take_actions() == [
        StateChanged("a", ALIVE, DRAINING),
        Broadcast(NodeState("a", DRAINING, 1)),
    ]
    m.heard("b", 5.0)
    m.heard("c", 5.0)
    assert m.view_sets(5.0) == (frozenset("abc"), frozenset("a"))
    assert m.rehomed_nodes(6.0) == frozenset()

    for p in ("b", "c"):  # the peers stay heard: only the bound is due
        m.heard(p, 5.0 + BOUND - 0.01)
    m.tick(5.0 + BOUND - 0.01)
    assert m.state("a") is DRAINING
    assert m.take_actions() == []
    assert m.rehomed_nodes(5.0 + BOUND - 0.01) == frozenset()

    m.tick(5.0 + BOUND)
    assert m.state("a") is LEFT
    assert m.take_actions() == [
        StateChanged("a", DRAINING, LEFT),
        Broadcast(NodeState("a", LEFT, 2)),
    ]
    assert m.rehomed_nodes(5.0 + BOUND) == {"a"}
    # still live to itself (it keeps running its links), takes no new session
    live, draining = m.view_sets(5.0 + BOUND)
    assert "a" in live and "a" in draining
    assert "a" not in m.placeable_nodes(5.0 + BOUND)


def test_the_deadline_of_the_bound_is_announced_and_goes_away() -> None:
    m = fresh(bound=0.5)  # peers heard at 0: their suspicion is due at suspect_after (1.0)
    assert m.next_deadline() == 1.0
    m.app_down(0.2)
    assert m.next_deadline() == 0.7
    m.tick(0.7)
    assert m.state("a") is LEFT
    assert m.next_deadline() == 1.0  # given up: the bound is no deadline any more


def test_queries_apply_the_bound_without_a_tick() -> None:
    m = fresh()
    m.app_down(2.0)
    assert m.rehomed_nodes(2.0 + BOUND - 1e-6) == frozenset()
    assert m.rehomed_nodes(2.0 + BOUND) == {"a"}


def test_repeated_down_keeps_the_first_time() -> None:
    m = fresh()
    m.app_down(1.0)
    m.app_down(20.0)
    assert m.app_down_since == 1.0
    assert m.take_actions() == [
        StateChanged("a", ALIVE, DRAINING),
        Broadcast(NodeState("a", DRAINING, 1)),
    ]
    assert m.rehomed_nodes(1.0 + BOUND) == {"a"}


def test_up_before_the_bound_takes_new_sessions_again_and_never_leaves() -> None:
    m = fresh()
    m.app_down(1.0)
    m.app_up(10.0)
    assert m.app_down_since is None
    assert m.state("a") is ALIVE
    assert m.take_actions()[-2:] == [
        StateChanged("a", DRAINING, ALIVE),
        Broadcast(NodeState("a", ALIVE, 2)),
    ]
    for p in ("b", "c"):
        m.heard(p, 1.0 + BOUND)
    m.tick(1.0 + BOUND)
    assert m.state("a") is ALIVE
    assert m.rehomed_nodes(1.0 + BOUND + 100) == frozenset()
    assert "a" in m.placeable_nodes(1.0 + BOUND)


def test_up_after_the_bound_comes_back_alive_at_a_new_incarnation() -> None:
    m = fresh()
    m.app_down(1.0)
    m.tick(1.0 + BOUND)
    m.take_actions()
    m.app_up(40.0)
    assert m.state("a") is ALIVE
    assert m.take_actions() == [
        StateChanged("a", LEFT, ALIVE),
        Broadcast(NodeState("a", ALIVE, 3)),
    ]
    assert m.rehomed_nodes(40.0) == frozenset()
    # down again later: the bound counts from the new fall
    m.app_down(50.0)
    assert m.rehomed_nodes(50.0 + BOUND - 1) == frozenset()
    assert m.rehomed_nodes(50.0 + BOUND) == {"a"}


def test_an_operator_drain_outlasts_the_application() -> None:
    m = fresh()
    m.start_draining(1.0)
    m.app_down(2.0)
    m.app_up(3.0)
    assert m.state("a") is DRAINING  # still draining: the operator said so
    m.app_down(4.0)
    m.stop_draining(5.0)
    assert m.state("a") is DRAINING  # the application is still down
    m.tick(4.0 + BOUND)
    assert m.state("a") is LEFT  # a drained node's dead application gives up its sessions too
    m.app_up(40.0)
    assert m.state("a") is ALIVE


def test_a_real_leave_is_final_whatever_the_application_does() -> None:
    m = fresh()
    m.app_down(1.0)
    m.leave(2.0)
    assert m.state("a") is LEFT
    m.app_up(3.0)
    assert m.state("a") is LEFT
    actions = m.take_actions()
    assert Broadcast(NodeState("a", ALIVE, 3)) not in actions


def test_a_node_that_gave_its_sessions_up_still_refutes_stale_records() -> None:
    m = fresh()
    m.app_down(1.0)
    m.tick(1.0 + BOUND)
    m.take_actions()
    inc = m.incarnation
    # a record above its incarnation (its previous life) would put it back into placement
    m.on_node_state("b", NodeState("a", ALIVE, inc + 5), 32.0, wall=WALL)
    assert m.state("a") is LEFT
    assert Broadcast(NodeState("a", LEFT, inc + 6)) in m.take_actions()


def pump(src: Membership, dst: Membership, now: float) -> None:
    """Deliver src's broadcasts to dst, as the links would."""
    for action in src.take_actions():
        if isinstance(action, Broadcast):
            dst.on_node_state(src.name, action.state, now, wall=WALL)


def test_peers_see_draining_then_left_then_alive_and_rehome_accordingly() -> None:
    a, b = fresh("a", ("b", "c")), fresh("b", ("a", "c"))
    a.app_down(1.0)
    pump(a, b, 1.0)
    assert b.state("a") is DRAINING
    live, draining = b.view_sets(1.0)
    assert "a" in live and "a" not in live - draining  # keeps its sessions, takes no new ones
    for now in (10.0, 20.0, 1.0 + BOUND):
        for m, others in ((a, ("b", "c")), (b, ("a", "c"))):
            for p in others:
                m.heard(p, now)
        a.tick(now)
        b.tick(now)
        pump(a, b, now)
    assert b.state("a") is LEFT
    assert "a" not in b.live_nodes(1.0 + BOUND)  # every entry re-homes a's sessions
    now = 1.0 + BOUND
    live, draining = b.view_sets(now)
    view = FarmView("b", {}, live, {}, draining, b.rehomed_nodes(now))
    assert "a" not in view.placeable() and not view.keeps("a")
    live, draining = a.view_sets(now)
    own = FarmView("a", {}, live, {}, draining, a.rehomed_nodes(now))
    assert not own.keeps("a") and own.placeable() == ["b", "c"]
    a.app_up(40.0)
    b.heard("a", 40.0)
    pump(a, b, 40.0)
    assert b.state("a") is ALIVE
    assert "a" in b.placeable_nodes(40.0)


ops = st.one_of(
    st.tuples(st.just("down")),
    st.tuples(st.just("up")),
    st.tuples(st.just("drain"), st.booleans()),
    st.tuples(st.just("tick"), st.floats(0.0, 20.0)),
)


@settings(max_examples=300, deadline=None)
@given(st.lists(ops, max_size=40))
def test_the_declaration_always_follows_the_rule(script: list[tuple[Any, ...]]) -> None:
    m = fresh(bound=BOUND)
    now = 0.0
    since: float | None = None
    drain = False
    for op in script:
        if op[0] == "down":
            m.app_down(now)
            since = now if since is None else since
        elif op[0] == "up":
            m.app_up(now)
            since = None
        elif op[0] == "drain":
            drain = op[1]
            (m.start_draining if drain else m.stop_draining)(now)
        else:
            now += op[1]
            for p in ("b", "c"):
                m.heard(p, now)
            m.tick(now)
        gone = since is not None and now >= since + BOUND
        expected = LEFT if gone else DRAINING if (drain or since is not None) else ALIVE
        assert m.state("a") is expected
        assert m.rehomed_nodes(now) == (frozenset("a") if gone else frozenset())
        assert m.app_down_since == since
        incs = [a.state.incarnation for a in m.take_actions() if isinstance(a, Broadcast)]
        assert incs == sorted(incs)  # every declaration at a new, higher incarnation
        assert m.full_state()[0] == NodeState("a", expected, m.incarnation)
