"""Who may say what in membership gossip (lb.cluster.membership).

A node's own state (DRAINING, LEFT) is believed only from that node; ALIVE,
SUSPECT and DEAD gossip keeps its rules. Incarnations far ahead of the wall clock
are refused, so no statement can lock a node out of the farm: a restarted node
starts at its start wall time and is believed.
"""

from __future__ import annotations

import random

import pytest

from lb.cluster.membership import (
    MAX_AHEAD,
    Broadcast,
    Membership,
    MemberState,
    NodeState,
    SendTo,
    StateChanged,
)

ALIVE = MemberState.ALIVE
SUSPECT = MemberState.SUSPECT
DEAD = MemberState.DEAD
DRAINING = MemberState.DRAINING
LEFT = MemberState.LEFT

WALL = 1_700_000_000.0  # wall clock at monotonic time 0 in these tests
U64_MAX = 2**64 - 1
START = int(WALL) - 3600  # the incarnation of a node that started an hour ago


def machine(
    name: str = "a", peers: tuple[str, ...] = ("a", "b", "c"), inc: int = START
) -> Membership:
    m = Membership(name, peers, 0.0, rng=random.Random(1), incarnation=inc)
    for peer in peers:
        m.heard(peer, 0.0)
    m.take_actions()
    return m


def gossip(m: Membership, sender: str, entry: NodeState, now: float = 0.1) -> None:
    m.on_node_state(sender, entry, now, wall=WALL + now)


# -- a node's own state only from itself --------------------------------------------------


@pytest.mark.parametrize("state", [LEFT, DRAINING])
def test_a_strangers_word_on_a_nodes_own_state_is_not_believed(state: MemberState) -> None:
    m = machine()
    for inc in (START, START + 1, int(WALL), U64_MAX):
        gossip(m, "b", NodeState("c", state, inc))
    assert m.state("c") is ALIVE
    assert "c" in m.live_nodes(0.1) and "c" in m.placeable_nodes(0.1)
    assert m.take_actions() == []  # nothing adopted, nothing relayed
    assert m.refused == 4
    # c's own later word at an ordinary incarnation is still taken
    gossip(m, "c", NodeState("c", DRAINING, START + 1), 0.2)
    assert m.state("c") is DRAINING


def test_the_issue_case_c_left_at_u64_max_from_b() -> None:
    m = machine()
    gossip(m, "b", NodeState("c", LEFT, U64_MAX))
    assert m.state("c") is ALIVE
    assert "c" in m.live_nodes(0.1)
    assert next(e for e in m.full_state() if e.node == "c").incarnation != U64_MAX


@pytest.mark.parametrize("state", [LEFT, DRAINING])
def test_a_nodes_own_word_is_believed(state: MemberState) -> None:
    m = machine()
    gossip(m, "c", NodeState("c", state, START + 1))
    assert m.state("c") is state
    assert m.take_actions()[0] == StateChanged("c", ALIVE, state)


def test_alive_suspect_and_dead_gossip_keep_their_rules() -> None:
    m = machine(peers=("a", "b", "c", "d"))
    # a relayed ALIVE at a newer incarnation is taken and relayed on
    gossip(m, "b", NodeState("c", ALIVE, START + 5))
    assert m.take_actions() == [Broadcast(NodeState("c", ALIVE, START + 5))]
    # a third node's DEAD claim about a node this node hears is sent to it to refute
    gossip(m, "b", NodeState("c", DEAD, START + 5))
    assert m.take_actions() == [SendTo("c", (NodeState("c", DEAD, START + 5),))]
    # SUSPECT from a third node is its own opinion
    gossip(m, "b", NodeState("d", SUSPECT, START + 9))
    assert m.state("d") is ALIVE


def test_a_draining_node_is_not_undrained_by_a_relayed_alive_at_its_incarnation() -> None:
    m = machine()
    gossip(m, "c", NodeState("c", DRAINING, START + 1))
    gossip(m, "b", NodeState("c", ALIVE, START + 1))
    assert m.state("c") is DRAINING


# -- incarnations from the future ---------------------------------------------------------


def test_a_death_claim_from_the_far_future_is_refused() -> None:
    m = machine()
    m.tick(5.0)  # c not heard since 0: a death claim would be adopted
    m.heard("b", 5.0)
    m.take_actions()
    gossip(m, "b", NodeState("c", DEAD, U64_MAX), 5.0)
    assert m.state("c") is SUSPECT
    assert m.refused == 1
    # c comes back with its own word at an ordinary incarnation: believed
    gossip(m, "c", NodeState("c", DRAINING, START + 1), 5.1)
    assert m.state("c") is DRAINING


def test_a_relayed_alive_from_the_far_future_is_refused() -> None:
    m = machine()
    gossip(m, "b", NodeState("c", ALIVE, int(WALL) + int(MAX_AHEAD) + 10))
    assert m.take_actions() == []
    gossip(m, "c", NodeState("c", LEFT, START + 1), 0.2)
    assert m.state("c") is LEFT


def test_gossip_about_this_node_from_the_far_future_is_refused() -> None:
    m = machine()
    gossip(m, "b", NodeState("a", DEAD, U64_MAX))
    assert m.incarnation == START
    assert m.take_actions() == []
    # within the bound it is refuted as always
    gossip(m, "b", NodeState("a", DEAD, START + 7))
    assert m.incarnation == START + 8
    assert m.take_actions() == [Broadcast(NodeState("a", ALIVE, START + 8))]


def test_the_bound_is_the_wall_clock_passed_in_not_the_monotonic_now() -> None:
    m = machine()
    ahead = int(WALL) + int(MAX_AHEAD)
    m.on_node_state("b", NodeState("c", ALIVE, ahead), 0.1, wall=WALL)
    assert m.refused == 0
    m.on_node_state("b", NodeState("c", ALIVE, ahead + 1), 0.2, wall=WALL)
    assert m.refused == 1
    # a minute later the same incarnation is within the bound
    m.on_node_state("b", NodeState("c", ALIVE, ahead + 1), 60.0, wall=WALL + 60)
    assert m.refused == 1


def test_a_nodes_own_word_gets_twice_the_bound() -> None:
    """A node may have refuted a record up to the bound: its answer is one above."""
    m = machine()
    limit = int(WALL) + 2 * int(MAX_AHEAD)
    m.on_node_state("c", NodeState("c", DRAINING, limit), 0.1, wall=WALL)
    assert m.state("c") is DRAINING
    m.on_node_state("c", NodeState("c", ALIVE, limit + 1), 0.2, wall=WALL)
    assert m.state("c") is DRAINING
    assert m.refused == 1


def test_a_nan_wall_clock_refuses_rather_than_accepts() -> None:
    m = machine()
    m.on_node_state("c", NodeState("c", LEFT, START + 1), 0.1, wall=float("nan"))
    assert m.state("c") is ALIVE
    assert m.refused == 1


def test_max_ahead_is_checked() -> None:
    for bad in (0, -1.0, float("nan"), float("inf"), True):
        with pytest.raises(ValueError):
            Membership("a", ["b"], 0.0, max_ahead=bad)


# -- a restart is never locked out --------------------------------------------------------


def exchange(src: Membership, dst: Membership, now: float) -> None:
    """Deliver what ``src`` queued for ``dst`` (SendTo and Broadcast), as the links would."""
    for action in src.take_actions():
        if isinstance(action, SendTo) and action.peer == dst.name:
            entries: tuple[NodeState, ...] = action.states
        elif isinstance(action, Broadcast):
            entries = (action.state,)
        else:
            continue
        for entry in entries:
            dst.on_node_state(src.name, entry, now, wall=WALL + now)


def test_a_node_that_left_and_restarts_is_believed_at_its_new_start_time() -> None:
    a = machine()
    gossip(a, "c", NodeState("c", LEFT, START + 1))
    assert a.state("c") is LEFT
    # c restarts ten seconds later: its incarnation is its start wall time
    c = Membership("c", ("a", "b", "c"), 10.0, rng=random.Random(2), incarnation=int(WALL) + 10)
    c.link_up("a", 10.0)
    a.link_up("c", 10.0)
    exchange(c, a, 10.0)
    exchange(a, c, 10.0)
    assert a.state("c") is ALIVE
    c.start_draining(11.0)
    exchange(c, a, 11.0)
    assert a.state("c") is DRAINING


def test_a_restarted_node_refutes_its_own_old_left_record() -> None:
    """A peer still holds this node LEFT from its previous life at an incarnation above
    the new one (a clock stepped back, or many refutations): the node refutes it."""
    a = machine(inc=START + 3)
    gossip(a, "b", NodeState("a", LEFT, START + 5))
    assert a.incarnation == START + 6
    assert a.take_actions() == [Broadcast(NodeState("a", ALIVE, START + 6))]
    b = machine("b")
    gossip(b, "a", NodeState("a", LEFT, START + 5))
    gossip(b, "a", NodeState("a", ALIVE, START + 6))
    assert b.state("a") is ALIVE


def test_a_restart_outgrows_a_forged_incarnation_at_the_bound() -> None:
    """b said "c is ALIVE at the largest incarnation a accepts"; c restarts below it.
    On link up a tells c its record, c refutes one above it, a believes c, and c's
    drain after that is believed too: a forged statement cannot lock c out."""
    a = machine()
    forged = int(WALL) + int(MAX_AHEAD)
    a.on_node_state("b", NodeState("c", ALIVE, forged), 0.0, wall=WALL)
    a.take_actions()
    c = Membership("c", ("a", "b", "c"), 1.0, rng=random.Random(2), incarnation=int(WALL) + 1)
    c.link_up("a", 1.0)
    a.link_up("c", 1.0)
    exchange(c, a, 1.0)  # c's full state: its own entry is older than the forged one
    exchange(a, c, 1.0)  # a's full state holds the forged record: c refutes it
    assert c.incarnation == forged + 1
    exchange(c, a, 1.0)
    c.start_draining(2.0)
    exchange(c, a, 2.0)
    assert a.state("c") is DRAINING
    assert a.refused == 0
