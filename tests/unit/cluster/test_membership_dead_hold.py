"""Tests of lb.cluster.membership: a dead peer keeps its sessions for dead_rehome_after.

With ``Timing.dead_rehome_after`` above 0, a peer declared DEAD (by this node or
by another) stays home to its sessions (``dead_held_nodes``: live in
``view_sets``, not placeable) for that long from its death, so a node restarted
without leaving finds its sessions when it is back. 0, the default, re-homes
at the death as before; LEFT is never held (docs/membership.md, "A node that
restarts").
"""

from __future__ import annotations

import random

import pytest

from lb.cluster.membership import Membership, MemberState, NodeState, SendTo, Timing
from tests.support.membership_ticks import TICK, run_ticks

ALIVE = MemberState.ALIVE
DEAD = MemberState.DEAD
LEFT = MemberState.LEFT
HOLD = 20.0
T = Timing(dead_rehome_after=HOLD)
WALL = 1_700_000_000.0


def machine(timing: Timing = T, peers: tuple[str, ...] = ("b", "c")) -> Membership:
    m = Membership("a", peers, 0.0, timing=timing, rng=random.Random(1))
    for p in peers:
        m.heard(p, 0.0)
    return m


run = run_ticks


def died_at(m: Membership, peer: str, until: float, heard: tuple[str, ...]) -> float:
    """Tick until ``peer`` is DEAD; the time of its death."""
    k = 1
    while (now := k * TICK) < until:
        for p in heard:
            m.heard(p, now)
        m.tick(now)
        m.take_actions()
        if m.state(peer) is DEAD:
            return now
        k += 1
    raise AssertionError(f"{peer} not dead by {until}")


def test_a_dead_peer_is_held_for_the_bound_then_re_homed() -> None:
    m = machine()
    death = died_at(m, "b", 10.0, heard=("c",))  # c still heard: not an isolation
    assert not m.isolated(death) and m.held_nodes(death) == frozenset()
    assert m.live_nodes(death) == {"a", "c"}
    assert m.dead_held_nodes(death) == {"b"}
    # its sessions stay its own: live in the view, but no new session goes there
    assert m.view_sets(death) == (frozenset("abc"), frozenset("b"))
    assert m.placeable_nodes(death) == {"a", "c"}
    run(m, death, death + HOLD - 1.0, heard=("c",))
    assert m.dead_held_nodes(death + HOLD - 1e-6) == {"b"}
    assert m.dead_held_nodes(death + HOLD) == frozenset()
    m.heard("c", death + HOLD)
    assert m.view_sets(death + HOLD) == (frozenset("ac"), frozenset())


def test_without_the_limit_a_dead_peer_is_re_homed_at_its_death() -> None:
    m = machine(Timing())
    death = died_at(m, "b", 10.0, heard=("c",))
    assert m.dead_held_nodes(death) == frozenset()
    assert m.view_sets(death) == (frozenset("ac"), frozenset())


def test_a_death_due_but_not_ticked_is_held_from_when_tick_would_declare_it() -> None:
    m = machine()
    run(m, 0.1, 1.5, heard=("c",))  # b is SUSPECT now, its death due later
    assert m.state("b") is MemberState.SUSPECT
    later = 3.5  # past dead_after (2.5 s of silence) without a tick
    assert m.dead_held_nodes(later) == {"b"}
    assert m.view_sets(later)[0] == frozenset("abc")
    # held from the due death, not from the query: no earlier than 2.5 + HOLD
    assert m.dead_held_nodes(2.5 + HOLD - 0.2) == {"b"}
    assert m.dead_held_nodes(2.6 + HOLD) == frozenset()


def test_the_restarted_peer_is_placeable_again_and_no_longer_held() -> None:
    m = machine()
    death = died_at(m, "b", 10.0, heard=("c",))
    back = death + 3.0
    run(m, death, back, heard=("c",))
    # b restarts: a newer incarnation, heard directly
    m.on_node_state("b", NodeState("b", ALIVE, int(WALL) + 10), back, wall=WALL + 10)
    m.heard("b", back)
    m.tick(back)
    assert m.state("b") is ALIVE
    assert m.dead_held_nodes(back) == frozenset()
    assert m.placeable_nodes(back) == {"a", "b", "c"}


def test_a_death_another_node_saw_is_held_too() -> None:
    m = machine()
    run(m, 0.1, 1.0, heard=("b", "c"))
    # c says b is dead (a restart seen from c first); a does not hear b either
    run(m, 1.0, 2.2, heard=("c",))
    m.on_node_state("c", NodeState("b", DEAD, 0), 2.2, wall=WALL)
    assert m.state("b") is DEAD
    assert m.dead_held_nodes(2.2) == {"b"}
    assert m.dead_held_nodes(2.2 + HOLD) == frozenset()


def test_a_peer_that_left_is_not_held() -> None:
    m = machine()
    m.on_node_state("b", NodeState("b", LEFT, 0), 0.5, wall=WALL)
    assert m.state("b") is LEFT
    run(m, 0.5, 5.0, heard=("c",))
    assert m.dead_held_nodes(5.0) == frozenset()
    assert m.view_sets(5.0) == (frozenset("ac"), frozenset())


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan"), True, "5"])
def test_the_limit_is_a_number_of_seconds_at_least_zero(bad: object) -> None:
    with pytest.raises(ValueError, match="dead_rehome_after"):
        Timing(dead_rehome_after=bad)  # type: ignore[arg-type]


def test_a_peer_dead_past_the_bound_is_not_handed_to_a_new_link_as_dead() -> None:
    """A node that starts (or links anew) while a peer is long dead must not hold that
    peer's sessions for another dead_rehome_after: it would fail requests the rest of
    the farm re-homed long ago. The full state a link gets leaves out a DEAD peer whose
    hold ended here; within the hold it is handed on, so the new node holds it too."""
    m = machine(peers=("b", "c", "d"))
    death = died_at(m, "b", 10.0, heard=("c", "d"))

    def handed(now: float) -> dict[str, MemberState]:
        m.take_actions()
        m.link_up("d", now)
        sent = [a for a in m.take_actions() if isinstance(a, SendTo) and a.peer == "d"]
        return {e.node: e.state for e in sent[0].states}

    assert handed(death + 1.0).get("b") is DEAD
    run(m, death + 1.0, death + HOLD, heard=("c", "d"))
    assert m.dead_held_nodes(death + HOLD) == frozenset()
    after = handed(death + HOLD)
    assert "b" not in after and after["c"] is ALIVE, after

    # the node that linked: b stays unknown there, so not held, as everywhere else
    def fresh_node_fed(states: dict[str, MemberState], now: float) -> Membership:
        fresh = Membership("d", ("a", "b", "c"), now, timing=T, rng=random.Random(2))
        for node, state in states.items():
            fresh.on_node_state("a", NodeState(node, state, 0), now, wall=WALL)
        return fresh

    later = death + HOLD + 0.5  # a still heard there: not an isolation
    assert fresh_node_fed(after, death + HOLD).dead_held_nodes(later) == frozenset()
    assert "b" not in fresh_node_fed(after, death + HOLD).view_sets(later)[0]
    # within the hold the new node holds b too (a restart overlapping b's)
    within = {"a": ALIVE, "b": DEAD, "c": ALIVE}
    assert fresh_node_fed(within, death + 1.0).dead_held_nodes(death + 2.0) == {"b"}


def test_without_the_limit_a_new_link_hears_of_every_dead_peer() -> None:
    m = machine(Timing(), peers=("b", "c", "d"))
    death = died_at(m, "b", 10.0, heard=("c", "d"))
    m.take_actions()
    m.link_up("d", death + 100.0)
    sent = [a for a in m.take_actions() if isinstance(a, SendTo) and a.peer == "d"]
    assert {e.node: e.state for e in sent[0].states}["b"] is DEAD
