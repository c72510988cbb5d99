"""Tests of lb.cluster.membership: a node that hears none of its peers holds their sessions.

An isolated node (a farm of three or more, no peer heard) cannot tell the peers'
death from its own isolation, and a node restarted cut off never heard them:
the peers of its start, and those it declared DEAD while isolated, stay homes of
their sessions (``held_nodes``: live in ``view_sets``, not placeable) for
``isolated_rehome_after``; hearing any peer ends the hold (docs/membership.md,
"A node that hears nobody").
"""

from __future__ import annotations

import random

from lb.cluster.membership import (
    Membership,
    MemberState,
    NodeState,
    SendProbeRequest,
    StateChanged,
    Timing,
)
from tests.support.membership_ticks import TICK, run_ticks

ALIVE = MemberState.ALIVE
SUSPECT = MemberState.SUSPECT
DEAD = MemberState.DEAD
LEFT = MemberState.LEFT
UNKNOWN = MemberState.UNKNOWN
T = Timing()
HOLD = T.isolated_rehome_after
WALL = 1_700_000_000.0


def machine(peers: tuple[str, ...] = ("b", "c"), start: float = 0.0) -> Membership:
    return Membership("a", peers, start, timing=T, rng=random.Random(1))


run = run_ticks


def test_a_node_started_cut_off_holds_the_peers_of_its_start() -> None:
    m = machine()
    run(m, 0.0, 5.0)
    assert m.isolated(5.0)
    assert m.state("b") is UNKNOWN and m.live_nodes(5.0) == {"a"}
    assert m.held_nodes(5.0) == {"b", "c"}
    # their sessions stay theirs: live in the view, but no new session goes there
    assert m.view_sets(5.0) == (frozenset("abc"), frozenset("bc"))
    assert m.placeable_nodes(5.0) == {"a"}
    # the bound: then re-homed here as before
    assert m.held_nodes(HOLD - 1e-6) == {"b", "c"}
    assert m.held_nodes(HOLD) == frozenset()
    assert m.view_sets(HOLD) == (frozenset("a"), frozenset())


def test_hearing_one_peer_ends_the_hold_of_the_others() -> None:
    m = machine()
    run(m, 0.0, 3.0)
    m.heard("b", 3.0)
    assert not m.isolated(3.0)
    assert m.held_nodes(3.0) == frozenset()
    # c is not heard by a node that hears b: re-homed as before the change
    assert m.view_sets(3.0) == (frozenset("ab"), frozenset())


def test_peers_dying_together_are_held_then_given_up() -> None:
    m = machine()
    m.heard("b", 0.0)
    m.heard("c", 0.0)
    run(m, 0.1, 2.6)
    assert (m.state("b"), m.state("c")) == (DEAD, DEAD)
    assert m.held_nodes(2.6) == {"b", "c"}
    assert m.held_nodes(2.5 + HOLD) == frozenset()
    assert m.view_sets(2.5 + HOLD) == (frozenset("a"), frozenset())


def isolated_with_both_dead() -> Membership:
    m = machine()
    m.heard("b", 0.0)
    m.heard("c", 0.0)
    run(m, 0.1, 5.0)
    assert m.held_nodes(5.0) == {"b", "c"}
    return m


def test_a_healed_cut_checks_the_held_peers_again_before_giving_them_up() -> None:
    m = isolated_with_both_dead()
    m.heard("b", 5.0)  # the cut heals: b's link is back a moment before c's
    actions = m.take_actions()
    assert StateChanged("c", DEAD, SUSPECT) in actions
    assert [(a.via, a.target) for a in actions if isinstance(a, SendProbeRequest)] == [("b", "c")]
    # c stays home to its sessions (live, not placeable) while b is asked
    assert m.view_sets(5.0) == (frozenset("abc"), frozenset("c"))
    m.heard("c", 5.01)
    assert m.state("c") is ALIVE


def test_a_held_peer_nobody_vouches_for_is_given_up_after_the_heal() -> None:
    m = isolated_with_both_dead()
    m.heard("b", 5.0)
    m.take_actions()
    run(m, 5.0, 5.0 + T.probe_interval + TICK, heard=("b",))  # b does not vouch
    assert m.state("c") is DEAD
    assert m.held_nodes(5.6) == frozenset()
    assert m.view_sets(5.6) == (frozenset("ab"), frozenset())


def test_a_peer_dead_while_another_is_heard_is_not_held() -> None:
    m = machine()
    m.heard("b", 0.0)
    m.heard("c", 0.0)
    run(m, 0.1, 3.0, heard=("b",))  # c dies; a still hears b
    assert m.state("c") is DEAD and m.held_nodes(3.0) == frozenset()
    run(m, 3.0, 6.0)  # then b dies too: a is alone now
    assert m.state("b") is DEAD
    assert m.held_nodes(6.0) == {"b"}  # c was re-homed already: it stays so


def test_queries_hold_a_death_due_at_now_as_tick_would() -> None:
    m = machine()
    m.heard("b", 0.0)
    m.heard("c", 0.0)
    run(m, 0.1, 1.5)  # both suspect, not yet declared dead
    assert m.held_nodes(2.5) == {"b", "c"}
    assert m.live_nodes(2.5) == {"a"}


def test_a_two_node_farm_never_holds() -> None:
    m = machine(("b",))
    run(m, 0.0, 5.0)
    assert not m.isolated(5.0)
    assert m.held_nodes(5.0) == frozenset()
    assert m.view_sets(5.0) == (frozenset("a"), frozenset())


def test_a_peer_that_left_does_not_count_and_is_not_held() -> None:
    m = machine()
    m.heard("b", 0.0)
    m.heard("c", 0.0)
    m.on_node_state("c", NodeState("c", LEFT, 1), 0.1, wall=WALL)
    run(m, 0.2, 3.0)  # b dies: with c gone, a and b were a two-node farm
    assert m.state("b") is DEAD and m.state("c") is LEFT
    assert not m.isolated(3.0)
    assert m.held_nodes(3.0) == frozenset()


def test_a_peer_added_later_is_not_held() -> None:
    m = machine(("b", "c"))
    m.add_node("d", 0.0)
    run(m, 0.0, 3.0)
    assert m.held_nodes(3.0) == {"b", "c"}


def test_a_death_seen_by_another_node_is_not_held() -> None:
    m = machine(("b", "c", "d"))
    for p in "bcd":
        m.heard(p, 0.0)
    # b says d died (b heard: not isolated), then a stops hearing b and c
    m.on_node_state("b", NodeState("d", DEAD, 0), 1.1, wall=WALL)
    assert m.state("d") is DEAD
    run(m, 1.2, 4.0)
    assert m.isolated(4.0)
    assert m.held_nodes(4.0) == {"b", "c"}
