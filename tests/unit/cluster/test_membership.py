"""Tests of lb.cluster.membership: failure detection, gossip, drain, join/leave.

Single-machine tests feed inputs with a fake clock and read the actions. The
farm tests run several machines in a discrete-event simulation of a farm: links
between every pair, PING/PONG heartbeats, membership frames encoded and decoded
with lb.wire.membership, random delays, loss, link cuts and crashes, all driven
by random.Random(seed), so a seed replays exactly.
"""

from __future__ import annotations

import copy
import heapq
import random
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.cluster.membership import (
    Action,
    Broadcast,
    Membership,
    MemberState,
    NodeState,
    SendProbeRequest,
    SendProbeResult,
    SendTo,
    StateChanged,
    Timing,
    diff_members,
)
from lb.routing.view import FarmView
from lb.wire.frames import FrameDecoder
from lb.wire.membership import (
    ProbeRequest,
    ProbeResult,
    encode_node_state_frame,
    encode_probe_request_frame,
    encode_probe_result_frame,
    parse_membership_frame,
)

ALIVE = MemberState.ALIVE
SUSPECT = MemberState.SUSPECT
DEAD = MemberState.DEAD
DRAINING = MemberState.DRAINING
LEFT = MemberState.LEFT
UNKNOWN = MemberState.UNKNOWN

T = Timing()
WALL = 1_700_000_000.0  # the wall clock passed with gossip: small incarnations are far behind
TICK = 0.1
EPS = 1e-6

A = TypeVar("A")


def machine(
    peers: Iterable[str] = ("b", "c"), name: str = "a", seed: int = 1, **timing: Any
) -> Membership:
    return Membership(
        name, peers, 0.0, timing=Timing(**timing) if timing else T, rng=random.Random(seed)
    )


def of(actions: list[Action], cls: type[A]) -> list[A]:
    return [a for a in actions if isinstance(a, cls)]


def hear(m: Membership, peers: Iterable[str], now: float) -> None:
    for p in peers:
        m.heard(p, now)


def fresh(peers: Iterable[str] = ("b", "c"), **timing: Any) -> Membership:
    """A machine that heard every peer at 0 (actions drained)."""
    m = machine(peers, **timing)
    hear(m, m.members, 0.0)
    m.take_actions()
    return m


def ticks(start: float, stop: float, step: float = TICK) -> list[float]:
    out = []
    k = 0
    while start + k * step <= stop + EPS:
        out.append(round(start + k * step, 9))
        k += 1
    return out


# --- settings ---------------------------------------------------------------------------------


def test_default_timing_is_valid_and_fits_three_seconds() -> None:
    assert T.ping_interval < T.suspect_after < T.dead_after
    assert T.dead_after + TICK < 3.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ping_interval": 0},
        {"suspect_after": -1},
        {"dead_after": float("nan")},
        {"probe_interval": 0},
        {"recheck_interval": 0},
        {"ping_interval": 1.0, "suspect_after": 1.0},
        {"suspect_after": 2.5, "dead_after": 2.5},
        {"helpers": -1},
        {"helpers": True},
        {"ping_interval": True},
    ],
)
def test_bad_timing_is_rejected(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Timing(**kwargs)


def test_bad_incarnation_is_rejected() -> None:
    for bad in (-1, 2**64, True):
        with pytest.raises(ValueError):
            Membership("a", ["b"], 0.0, incarnation=bad)


# --- start, heard, queries ---------------------------------------------------------------------


def test_peers_start_unknown_and_not_live() -> None:
    m = machine(["b", "c", "a", "b"])
    assert m.members == frozenset({"b", "c"})
    assert m.state("a") is ALIVE
    assert m.state("b") is UNKNOWN
    assert m.state("zz") is None
    assert m.live_nodes(0.0) == {"a"}
    assert m.placeable_nodes(0.0) == {"a"}
    assert m.take_actions() == []


def test_heard_makes_alive_reports_and_gossips() -> None:
    m = machine()
    m.heard("b", 0.1)
    assert m.state("b") is ALIVE
    assert m.take_actions() == [
        StateChanged("b", UNKNOWN, ALIVE),
        Broadcast(NodeState("b", ALIVE, 0)),
    ]
    m.heard("b", 0.2)
    assert m.take_actions() == []
    assert m.live_nodes(0.2) == {"a", "b"}
    assert m.placeable_nodes(0.2) == {"a", "b"}


def test_events_for_non_members_and_self_are_ignored() -> None:
    m = machine()
    m.heard("zz", 0.0)
    m.heard("a", 0.0)
    m.link_lost("zz", 0.0)
    m.link_up("zz", 0.0)
    m.on_node_state("zz", NodeState("b", DEAD, 9), 0.0, wall=WALL)
    m.on_node_state("b", NodeState("zz", ALIVE, 0), 0.0, wall=WALL)
    m.on_probe_request("zz", "b", 1, 0.0)
    m.on_probe_result("zz", "b", 1, True, 0.0)
    assert m.state("zz") is None
    assert m.members == frozenset({"b", "c"})
    # the gossip from b about a non-member still counts as hearing b
    assert m.take_actions() == [
        StateChanged("b", UNKNOWN, ALIVE),
        Broadcast(NodeState("b", ALIVE, 0)),
    ]


def test_full_state_and_link_up() -> None:
    m = machine(["b", "c", "d"])
    m.heard("b", 0.0)
    m.link_up("c", 0.1)
    actions = m.take_actions()
    # the full state is taken before c counts as heard: c was still UNKNOWN, so not listed
    assert actions[2] == SendTo("c", (NodeState("a", ALIVE, 0), NodeState("b", ALIVE, 0)))
    assert actions[3:] == [StateChanged("c", UNKNOWN, ALIVE), Broadcast(NodeState("c", ALIVE, 0))]
    assert m.state("c") is ALIVE
    assert m.full_state() == [
        NodeState("a", ALIVE, 0),
        NodeState("b", ALIVE, 0),
        NodeState("c", ALIVE, 0),
    ]


# --- suspicion, second opinion, death ------------------------------------------------------


def test_suspect_after_silence_and_ask_helpers() -> None:
    m = fresh(["b", "c", "d"])
    hear(m, ["b", "d"], 0.9)
    m.tick(0.99)
    assert m.state("c") is ALIVE
    assert m.take_actions() == []
    m.tick(1.0)
    actions = m.take_actions()
    assert m.state("c") is SUSPECT
    assert actions[:2] == [StateChanged("c", ALIVE, SUSPECT), Broadcast(NodeState("c", SUSPECT, 0))]
    probes = of(actions, SendProbeRequest)
    assert len(actions) == 4
    assert sorted(p.via for p in probes) == ["b", "d"]
    assert {p.target for p in probes} == {"c"}
    assert len({p.nonce for p in probes}) == 2


def test_suspect_is_live_but_not_placeable() -> None:
    m = fresh(["b", "c"])
    m.heard("b", 1.0)
    m.tick(1.0)
    assert m.live_nodes(1.0) == {"a", "b", "c"}
    assert m.placeable_nodes(1.0) == {"a", "b"}
    live, draining = m.view_sets(1.0)
    assert (live, draining) == (frozenset("abc"), frozenset("c"))
    view = FarmView("a", {}, live, {}, draining)
    assert view.placeable() == ["a", "b"]


def answer_probes(
    m: Membership, actions: list[Action], alive: bool, now: float
) -> list[SendProbeRequest]:
    probes = of(actions, SendProbeRequest)
    for p in probes:
        m.on_probe_result(p.via, p.target, p.nonce, alive, now)
    return probes


def drive(
    m: Membership,
    start: float,
    stop: float,
    heard: Iterable[str] = (),
    vouch: bool | None = None,
) -> list[Action]:
    """Tick from start to stop; hear ``heard`` every tick; answer probes when vouch is set."""
    out: list[Action] = []
    heard = list(heard)
    for now in ticks(start, stop):
        hear(m, heard, now)
        m.tick(now)
        actions = m.take_actions()
        out += actions
        if vouch is not None:
            answer_probes(m, actions, vouch, now)
            out += m.take_actions()
    return out


def changes(actions: list[Action], node: str) -> list[tuple[MemberState | None, MemberState]]:
    return [(a.old, a.new) for a in of(actions, StateChanged) if a.node == node]


def test_a_vouch_prevents_death_hearing_clears_suspicion() -> None:
    m = fresh(["b", "c"])
    actions = drive(m, 0.1, 20.0, heard=["b"], vouch=True)
    assert changes(actions, "c") == [(ALIVE, SUSPECT)]
    # re-probed every probe_interval while suspect: rounds at 1.0, 1.5, ..., 20.0
    assert len(of(actions, SendProbeRequest)) == 39
    assert m.state("c") is SUSPECT
    m.heard("c", 20.0)
    assert m.state("c") is ALIVE
    assert m.take_actions() == [
        StateChanged("c", SUSPECT, ALIVE),
        Broadcast(NodeState("c", ALIVE, 0)),
    ]


def test_no_vouch_means_dead_at_dead_after() -> None:
    m = fresh(["b", "c"])
    actions = drive(m, 0.1, 2.4, heard=["b"], vouch=False)
    assert m.state("c") is SUSPECT
    assert len(of(actions, SendProbeRequest)) == 3  # rounds at 1.0, 1.5, 2.0
    m.tick(2.5 - EPS)
    assert m.state("c") is SUSPECT
    m.tick(2.5)
    assert m.state("c") is DEAD
    assert m.take_actions() == [
        StateChanged("c", SUSPECT, DEAD),
        Broadcast(NodeState("c", DEAD, 0)),
    ]
    assert m.live_nodes(2.5) == {"a", "b"}


def test_two_node_farm_declares_dead_alone() -> None:
    m = fresh(["b"])
    actions = drive(m, 0.1, 2.4)
    assert changes(actions, "b") == [(ALIVE, SUSPECT)]
    assert of(actions, SendProbeRequest) == []
    m.tick(2.5)
    assert m.state("b") is DEAD


def test_all_others_suspect_declares_dead_alone() -> None:
    m = fresh(["b", "c", "d"])
    actions = drive(m, 0.1, 2.5)
    assert of(actions, SendProbeRequest) == []
    assert {n: m.state(n) for n in "bcd"} == {"b": DEAD, "c": DEAD, "d": DEAD}


def test_a_vouch_extends_life_by_what_the_helper_can_know() -> None:
    # A vouch received at t says the target was heard after t - suspect_after.
    m = fresh(["b", "c"])
    for now in ticks(0.1, 1.9):
        m.heard("b", now)
        m.tick(now)
        answer_probes(m, m.take_actions(), False, now)
    m.heard("b", 2.0)
    m.tick(2.0)
    assert answer_probes(m, m.take_actions(), True, 2.0)  # the round at 2.0 vouches
    for now in ticks(2.1, 3.4):
        m.heard("b", now)
        m.tick(now)
        answer_probes(m, m.take_actions(), False, now)
    assert m.state("c") is SUSPECT
    m.tick(3.5)
    assert m.state("c") is DEAD


def test_link_lost_suspects_at_once_but_does_not_kill() -> None:
    m = fresh(["b", "c"])
    m.link_lost("c", 0.2)
    actions = m.take_actions()
    assert m.state("c") is SUSPECT
    assert [p.via for p in of(actions, SendProbeRequest)] == ["b"]
    actions = drive(m, 0.3, 2.4, heard=["b"], vouch=False)
    assert m.state("c") is SUSPECT
    m.tick(2.5)
    assert m.state("c") is DEAD


def test_link_lost_with_a_vouching_helper_keeps_the_peer() -> None:
    m = fresh(["b", "c"])
    m.link_lost("c", 0.2)
    answer_probes(m, m.take_actions(), True, 0.2)
    drive(m, 0.3, 10.0, heard=["b"], vouch=True)
    assert m.state("c") is SUSPECT


def test_link_lost_of_unknown_or_dead_changes_nothing() -> None:
    m = machine(["b", "c"])
    m.link_lost("b", 0.0)
    assert m.state("b") is UNKNOWN
    m = fresh(["b"])
    drive(m, 0.1, 2.5)
    assert m.state("b") is DEAD
    m.take_actions()
    m.link_lost("b", 2.6)
    assert m.state("b") is DEAD
    assert m.take_actions() == []


def test_wrong_or_negative_results_do_not_vouch() -> None:
    m = fresh(["b", "c", "d"])
    for now in ticks(0.1, 2.4):
        hear(m, ["b", "d"], now)
        m.tick(now)
        for p in of(m.take_actions(), SendProbeRequest):
            other = "d" if p.via == "b" else "b"
            m.on_probe_result(p.via, p.target, p.nonce + 1, True, now)  # unknown nonce
            m.on_probe_result(other, p.target, p.nonce, True, now)  # not the helper asked
            m.on_probe_result(p.via, "b", p.nonce, True, now)  # other target
            m.on_probe_result(p.via, p.target, p.nonce, False, now)  # the real answer: no
            m.on_probe_result(p.via, p.target, p.nonce, True, now)  # a nonce counts once
    m.tick(2.5)
    assert m.state("c") is DEAD


def test_a_stalled_node_suspects_before_it_kills() -> None:
    # The tick did not run for 10 s (our own stall): suspect first, give probes time.
    m = fresh(["b", "c"])
    m.heard("b", 10.0)
    m.tick(10.0)
    assert m.state("c") is SUSPECT
    m.tick(10.0 + T.probe_interval - EPS)
    assert m.state("c") is SUSPECT
    m.heard("c", 10.2)
    assert m.state("c") is ALIVE


def test_a_stall_with_no_answer_still_ends_in_death() -> None:
    m = fresh(["b", "c"])
    m.heard("b", 10.0)
    m.tick(10.0)
    m.tick(10.0 + T.probe_interval)
    assert m.state("c") is DEAD


def test_queries_apply_due_timeouts_without_tick() -> None:
    m = fresh(["b", "c"])
    assert m.placeable_nodes(0.99) == {"a", "b", "c"}
    assert m.placeable_nodes(1.0) == {"a"}
    assert m.live_nodes(1.0) == {"a", "b", "c"}  # due suspect: still live
    assert m.state("b") is ALIVE  # state() reports the last input
    m.tick(1.0)
    m.tick(1.5)
    assert m.live_nodes(2.49) == {"a", "b", "c"}
    assert m.live_nodes(2.5) == {"a"}
    # a, hearing neither, keeps their sessions theirs (held: live, not placeable) ...
    assert m.view_sets(2.5) == (frozenset("abc"), frozenset("bc"))
    # ... until the bound
    assert m.view_sets(2.5 + T.isolated_rehome_after) == (frozenset("a"), frozenset())


# --- probes answered by this node ------------------------------------------------------------


def test_probe_requests_are_answered_from_direct_hearing() -> None:
    m = fresh(["b", "c", "d"])
    m.heard("c", 0.5)
    m.on_probe_request("b", "c", 7, 1.49)
    m.on_probe_request("b", "c", 8, 1.5)
    m.on_probe_request("b", "d", 9, 0.5)
    m.on_probe_request("b", "a", 10, 5.0)
    m.on_probe_request("b", "zz", 11, 0.5)
    assert of(m.take_actions(), SendProbeResult) == [
        SendProbeResult("b", "c", 7, True),
        SendProbeResult("b", "c", 8, False),
        SendProbeResult("b", "d", 9, True),
        SendProbeResult("b", "a", 10, True),
        SendProbeResult("b", "zz", 11, False),
    ]


def test_a_vouch_received_is_not_passed_on_as_own_hearing() -> None:
    m = fresh(["b", "c", "d"])
    m.link_lost("c", 0.5)
    answer_probes(m, m.take_actions(), True, 0.5)
    m.on_probe_request("d", "c", 3, 1.6)
    assert of(m.take_actions(), SendProbeResult) == [SendProbeResult("d", "c", 3, False)]


def test_helpers_are_heard_lately_bounded_and_the_last_voucher_first() -> None:
    m = fresh(["b", "c", "d", "e", "f"], helpers=1)
    seen: list[str] = []
    for now in ticks(0.1, 6.0):
        hear(m, ["b", "d", "e"], now)
        m.tick(now)
        for p in of(m.take_actions(), SendProbeRequest):
            assert p.target in ("c", "f")
            assert p.via in ("b", "d", "e")  # never the target, never an unheard node
            if p.target == "c":
                seen.append(p.via)
                m.on_probe_result(p.via, "c", p.nonce, p.via == "d", now)
    # random until d vouches, then d every time
    first = seen.index("d")
    assert first < len(seen) - 5
    assert set(seen[first:]) == {"d"}
    assert m.state("c") is SUSPECT


# --- re-checks of dead and unknown members -----------------------------------------------------


def test_dead_member_is_rechecked_and_a_vouch_brings_it_back_as_suspect() -> None:
    m = fresh(["b", "c"])
    drive(m, 0.1, 2.5, heard=["b"], vouch=False)
    assert m.state("c") is DEAD
    actions = drive(m, 2.6, 4.4, heard=["b"])
    assert of(actions, SendProbeRequest) == []
    m.heard("b", 4.5)
    m.tick(4.5)
    probes = answer_probes(m, m.take_actions(), True, 4.5)
    assert [(p.via, p.target) for p in probes] == [("b", "c")]
    assert m.take_actions() == [
        StateChanged("c", DEAD, SUSPECT),
        Broadcast(NodeState("c", SUSPECT, 0)),
    ]
    assert "c" in m.live_nodes(4.5)
    assert "c" not in m.placeable_nodes(4.5)
    drive(m, 4.6, 10.0, heard=["b"], vouch=True)
    assert m.state("c") is SUSPECT


def test_unknown_member_is_rechecked_through_helpers() -> None:
    m = machine(["b", "c"])
    drive(m, 0.0, 1.9, heard=["b"])
    m.take_actions()
    m.heard("b", 2.0)
    m.tick(2.0)
    probes = answer_probes(m, m.take_actions(), True, 2.0)
    assert [(p.via, p.target) for p in probes] == [("b", "c")]
    assert m.state("c") is SUSPECT
    m.heard("c", 2.1)
    assert m.state("c") is ALIVE


def test_hearing_a_dead_member_revives_it_and_asks_it_to_refute() -> None:
    m = fresh(["b", "c"])
    drive(m, 0.1, 2.5, heard=["b"], vouch=False)
    m.take_actions()
    m.heard("c", 3.0)
    assert m.state("c") is ALIVE
    assert m.take_actions() == [
        SendTo("c", (NodeState("c", DEAD, 0),)),
        StateChanged("c", DEAD, ALIVE),
        Broadcast(NodeState("c", ALIVE, 0)),
    ]


# --- gossip and incarnations ---------------------------------------------------------------


def test_a_node_refutes_suspicion_and_death_with_a_new_incarnation() -> None:
    m = fresh(["b", "c"])
    m.on_node_state("b", NodeState("a", SUSPECT, 0), 0.1, wall=WALL)
    assert m.incarnation == 1
    assert m.take_actions() == [Broadcast(NodeState("a", ALIVE, 1))]
    m.on_node_state("b", NodeState("a", SUSPECT, 0), 0.2, wall=WALL)  # stale: already refuted
    m.on_node_state("c", NodeState("a", ALIVE, 1), 0.2, wall=WALL)  # agrees
    assert m.take_actions() == []
    m.on_node_state("c", NodeState("a", DEAD, 1), 0.3, wall=WALL)
    assert m.incarnation == 2
    assert m.take_actions() == [Broadcast(NodeState("a", ALIVE, 2))]
    assert m.state("a") is ALIVE


def test_a_restarted_node_takes_an_incarnation_above_its_old_one() -> None:
    m = fresh(["b", "c"])
    m.on_node_state("b", NodeState("a", ALIVE, 41), 0.1, wall=WALL)
    assert m.incarnation == 42
    assert m.take_actions() == [Broadcast(NodeState("a", ALIVE, 42))]


def test_a_draining_node_refutes_with_draining() -> None:
    m = fresh(["b", "c"])
    m.start_draining(0.1)
    m.take_actions()
    m.on_node_state(
        "b", NodeState("a", ALIVE, 1), 0.2, wall=WALL
    )  # a stale record at our incarnation
    assert m.take_actions() == [Broadcast(NodeState("a", DRAINING, 2))]


def test_third_party_suspicion_is_not_adopted() -> None:
    m = fresh(["b", "c"])
    m.on_node_state("b", NodeState("c", SUSPECT, 0), 0.1, wall=WALL)
    m.on_node_state("b", NodeState("c", SUSPECT, 5), 0.1, wall=WALL)
    assert m.state("c") is ALIVE
    assert m.take_actions() == []


def test_a_death_claim_about_a_node_heard_lately_is_relayed_to_it_not_adopted() -> None:
    m = fresh(["b", "c"])
    m.heard("c", 0.5)
    m.on_node_state("b", NodeState("c", DEAD, 0), 1.0, wall=WALL)
    assert m.state("c") is ALIVE
    assert m.take_actions() == [SendTo("c", (NodeState("c", DEAD, 0),))]
    m.on_node_state("b", NodeState("c", DEAD, 0), 1.1, wall=WALL)  # once per incarnation
    assert m.take_actions() == []


def test_a_death_claim_is_adopted_without_own_evidence() -> None:
    m = fresh(["b", "c"])
    m.heard("b", 1.2)
    m.tick(1.2)
    m.take_actions()
    m.on_node_state("b", NodeState("c", DEAD, 0), 1.3, wall=WALL)
    assert m.state("c") is DEAD
    assert m.take_actions() == [
        StateChanged("c", SUSPECT, DEAD),
        Broadcast(NodeState("c", DEAD, 0)),
    ]
    m.on_node_state("b", NodeState("c", DEAD, 0), 1.4, wall=WALL)
    assert m.take_actions() == []


def test_a_death_claim_is_ignored_while_a_helper_vouches() -> None:
    m = fresh(["b", "c", "d"])
    m.link_lost("c", 0.5)
    answer_probes(m, m.take_actions(), True, 0.5)
    m.on_node_state("d", NodeState("c", DEAD, 0), 1.2, wall=WALL)
    assert m.state("c") is SUSPECT
    assert m.take_actions() == []


def test_a_stale_death_claim_is_ignored() -> None:
    m = fresh(["b", "c"])
    m.on_node_state("c", NodeState("c", ALIVE, 3), 0.1, wall=WALL)
    m.take_actions()
    m.heard("b", 1.9)
    m.tick(1.9)
    m.on_node_state("b", NodeState("c", DEAD, 2), 2.0, wall=WALL)
    assert m.state("c") is SUSPECT


def test_a_relayed_refutation_revives_a_dead_member_as_suspect() -> None:
    m = fresh(["b", "c"])
    drive(m, 0.1, 2.5, heard=["b"], vouch=False)
    m.take_actions()
    m.on_node_state("b", NodeState("c", ALIVE, 1), 2.6, wall=WALL)
    assert m.state("c") is SUSPECT
    assert m.take_actions() == [
        StateChanged("c", DEAD, SUSPECT),
        Broadcast(NodeState("c", SUSPECT, 1)),
    ]
    # the refutation counts as a vouch: not dead again before it is dead_after - suspect_after old
    drive(m, 2.7, 4.0, heard=["b"], vouch=False)
    assert m.state("c") is SUSPECT
    m.tick(4.1 + EPS)  # 2.6 - suspect_after + dead_after
    assert m.state("c") is DEAD


def test_a_newer_declaration_is_relayed_once() -> None:
    m = fresh(["b", "c"])
    m.on_node_state("b", NodeState("c", ALIVE, 4), 0.1, wall=WALL)
    assert m.take_actions() == [Broadcast(NodeState("c", ALIVE, 4))]
    m.on_node_state("b", NodeState("c", ALIVE, 4), 0.2, wall=WALL)
    m.on_node_state("c", NodeState("c", ALIVE, 3), 0.2, wall=WALL)
    assert m.take_actions() == []


def test_a_suspected_node_refuting_does_not_gossip_the_suspicion_again() -> None:
    m = fresh(["b", "c"])
    m.link_lost("c", 0.5)
    m.take_actions()
    m.on_node_state("b", NodeState("c", ALIVE, 1), 0.6, wall=WALL)  # c refuted through b
    assert m.state("c") is SUSPECT
    assert m.take_actions() == []


def test_draining_is_announced_by_the_node_and_adopted() -> None:
    m = fresh(["b", "c"])
    m.on_node_state("c", NodeState("c", DRAINING, 1), 0.5, wall=WALL)
    assert m.state("c") is DRAINING
    assert m.take_actions() == [
        StateChanged("c", ALIVE, DRAINING),
        Broadcast(NodeState("c", DRAINING, 1)),
    ]
    assert m.live_nodes(0.5) == {"a", "b", "c"}
    assert m.placeable_nodes(0.5) == {"a", "b"}
    assert m.view_sets(0.5) == (frozenset("abc"), frozenset("c"))
    # a draining node is still watched: silence makes it suspect, then dead
    drive(m, 0.6, 2.0, heard=["b"], vouch=False)
    assert m.state("c") is SUSPECT
    m.heard("c", 2.0)
    assert m.state("c") is DRAINING  # its own mode survives the suspicion
    m.on_node_state("c", NodeState("c", ALIVE, 2), 2.1, wall=WALL)
    assert m.state("c") is ALIVE


def test_left_member_is_not_live_not_watched_until_it_comes_back() -> None:
    m = fresh(["b", "c"])
    m.on_node_state("b", NodeState("c", LEFT, 2), 0.5, wall=WALL)  # relayed: not believed
    assert m.state("c") is ALIVE
    assert m.take_actions() == []
    m.on_node_state("c", NodeState("c", LEFT, 2), 0.5, wall=WALL)  # from c itself
    assert m.state("c") is LEFT
    assert m.take_actions() == [StateChanged("c", ALIVE, LEFT), Broadcast(NodeState("c", LEFT, 2))]
    assert m.live_nodes(0.5) == {"a", "b"}
    actions = drive(m, 0.6, 10.0, heard=["b"])
    assert changes(actions, "c") == []
    assert of(actions, SendProbeRequest) == []
    m.on_node_state(
        "b", NodeState("c", DEAD, 2), 10.0, wall=WALL
    )  # LEFT outranks DEAD at equal inc
    m.heard("c", 10.1)  # hearing it does not undo LEFT
    assert m.state("c") is LEFT
    m.on_node_state("c", NodeState("c", ALIVE, 3), 10.2, wall=WALL)
    assert m.state("c") is ALIVE


# --- own drain and leave ---------------------------------------------------------------------


def test_start_and_stop_draining() -> None:
    m = fresh(["b", "c"])
    m.start_draining(1.0)
    assert m.state("a") is DRAINING
    assert m.incarnation == 1
    assert m.take_actions() == [
        StateChanged("a", ALIVE, DRAINING),
        Broadcast(NodeState("a", DRAINING, 1)),
    ]
    assert "a" in m.live_nodes(0.5)
    assert m.placeable_nodes(0.5) == {"b", "c"}
    assert m.view_sets(0.5) == (frozenset("abc"), frozenset("a"))
    m.start_draining(1.1)
    assert m.take_actions() == []
    m.stop_draining(1.2)
    assert m.take_actions() == [
        StateChanged("a", DRAINING, ALIVE),
        Broadcast(NodeState("a", ALIVE, 2)),
    ]
    assert m.full_state()[0] == NodeState("a", ALIVE, 2)


def test_leave_announces_left_and_stops_refuting() -> None:
    m = fresh(["b", "c"])
    m.leave(1.0)
    assert m.take_actions() == [StateChanged("a", ALIVE, LEFT), Broadcast(NodeState("a", LEFT, 1))]
    m.on_node_state("b", NodeState("a", DEAD, 1), 1.1, wall=WALL)
    m.start_draining(1.2)
    assert m.take_actions() == []
    assert m.state("a") is LEFT


# --- join / leave of members -------------------------------------------------------------------


def test_add_node_starts_unknown_until_heard() -> None:
    m = fresh(["b"])
    m.add_node("c", 1.0)
    assert m.take_actions() == [StateChanged("c", None, UNKNOWN)]
    assert m.state("c") is UNKNOWN
    assert "c" not in m.live_nodes(1.0)
    m.add_node("c", 1.1)
    m.add_node("a", 1.1)
    assert m.take_actions() == []
    m.heard("c", 1.2)
    assert m.state("c") is ALIVE


def test_remove_node_forgets_it_and_its_probes() -> None:
    m = fresh(["b", "c", "d"])
    m.link_lost("c", 0.5)
    probes = of(m.take_actions(), SendProbeRequest)
    m.remove_node("b", 0.6)
    assert m.take_actions() == [StateChanged("b", ALIVE, LEFT)]
    assert m.state("b") is None
    m.heard("b", 0.7)
    assert "b" not in m.live_nodes(0.7)
    for p in probes:  # answers from a removed helper count for nothing
        m.on_probe_result(p.via, p.target, p.nonce, True, 0.7)
    m.remove_node("b", 0.8)
    m.remove_node("a", 0.8)
    assert m.take_actions() == []
    assert m.members == frozenset({"c", "d"})
    m.remove_node("c", 0.9)
    assert m.take_actions() == [StateChanged("c", SUSPECT, LEFT)]


def test_diff_members() -> None:
    assert diff_members({"a", "b", "c"}, {"b", "c", "d", "e"}) == ({"d", "e"}, {"a"})
    assert diff_members(set(), set()) == (set(), set())
    current = {"a"}
    added, removed = diff_members(current, {"a"})
    assert added == removed == set()


@settings(max_examples=300)
@given(st.sets(st.sampled_from("abcdefg")), st.sets(st.sampled_from("abcdefg")))
def test_diff_members_property(current: set[str], resolved: set[str]) -> None:
    added, removed = diff_members(current, resolved)
    assert (current | added) - removed == resolved
    assert not added & current and removed <= current


# --- determinism and random inputs -----------------------------------------------------------


def test_same_seed_same_nonces() -> None:
    def run(seed: int) -> list[Action]:
        m = Membership("a", ["b", "c", "d"], 0.0, rng=random.Random(seed))
        hear(m, "bcd", 0.0)
        return drive(m, 0.1, 3.0, heard=["b", "d"])

    assert run(7) == run(7)
    assert run(7) != run(8)


op_names = st.sampled_from(["b", "c", "d", "e"])
wire_states = st.sampled_from([ALIVE, SUSPECT, DEAD, DRAINING, LEFT])
ops = st.one_of(
    st.tuples(st.just("heard"), op_names),
    st.tuples(st.just("lost"), op_names),
    st.tuples(st.just("up"), op_names),
    st.tuples(st.just("tick"), st.floats(0.0, 1.5)),
    st.tuples(
        st.just("gossip"),
        op_names,
        st.sampled_from(["a", "b", "c", "d", "e"]),
        wire_states,
        st.integers(0, 3),
    ),
    st.tuples(st.just("answer"), st.booleans()),
    st.tuples(st.just("ask"), op_names, op_names),
    st.tuples(st.just("drain"), st.booleans()),
    st.tuples(st.just("member"), op_names, st.booleans()),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(ops, max_size=60))
def test_random_inputs_keep_the_books_straight(script: list[tuple[Any, ...]]) -> None:
    run_script(machine(["b", "c", "d"], seed=3), script)


# longer silences too: more peers die, and holds end
ops_with_deaths = st.one_of(ops, st.tuples(st.just("tick"), st.floats(1.0, 4.0)))


@settings(max_examples=200, deadline=None)
@given(st.lists(ops_with_deaths, max_size=60), st.sampled_from([0.5, 2.0, 30.0]))
def test_random_inputs_keep_the_books_straight_with_dead_peers_held(
    script: list[tuple[Any, ...]], hold: float
) -> None:
    """The same books with dead_rehome_after: a dead peer held for its sessions is live
    in the view, never placeable, never live by failure detection, and DEAD."""
    run_script(machine(["b", "c", "d"], seed=3, dead_rehome_after=hold), script)


def run_script(m: Membership, script: list[tuple[Any, ...]]) -> None:
    """Feed `script` to `m`, checking after each input that the reported changes, the
    states and the view sets agree."""
    now = 0.0
    known: dict[str, MemberState | None] = {n: m.state(n) for n in "abcde"}
    asked: list[SendProbeRequest] = []
    for op in script:
        kind = op[0]
        if kind == "heard":
            m.heard(op[1], now)
        elif kind == "lost":
            m.link_lost(op[1], now)
        elif kind == "up":
            m.link_up(op[1], now)
        elif kind == "tick":
            now += op[1]
            m.tick(now)
        elif kind == "gossip":
            m.on_node_state(op[1], NodeState(op[2], op[3], op[4]), now, wall=WALL)
        elif kind == "answer" and asked:
            p = asked.pop(0)
            m.on_probe_result(p.via, p.target, p.nonce, op[1], now)
        elif kind == "ask":
            m.on_probe_request(op[1], op[2], 5, now)
        elif kind == "drain":
            (m.start_draining if op[1] else m.stop_draining)(now)
        elif kind == "member":
            (m.add_node if op[2] else m.remove_node)(op[1], now)
        for action in m.take_actions():
            if isinstance(action, StateChanged):
                assert known[action.node] == action.old
                assert action.old != action.new
                known[action.node] = action.new
            elif isinstance(action, Broadcast):
                assert action.state.state is not UNKNOWN
            elif isinstance(action, SendProbeRequest):
                assert action.via != action.target and action.via in m.members
                asked.append(action)
        for n in "bcde":
            if known[n] is LEFT and m.state(n) is None:
                known[n] = None
            assert m.state(n) == known[n]
        live, draining = m.view_sets(now)
        placeable = m.placeable_nodes(now)
        assert "a" in live
        assert draining <= live
        assert live - draining == placeable
        held = m.held_nodes(now)
        dead_held = m.dead_held_nodes(now)
        assert live == m.live_nodes(now) | held | dead_held
        assert not held & (m.live_nodes(now) | placeable)
        assert not dead_held & (m.live_nodes(now) | placeable)
        assert all(m.state(n) is DEAD for n in dead_held), {n: m.state(n) for n in dead_held}
        if m.timing.dead_rehome_after == 0:
            assert dead_held == frozenset()


# --- a simulated farm --------------------------------------------------------------------------


@dataclass
class Net:
    """Network behaviour of the simulation."""

    delay_min: float = 0.0005
    delay_max: float = 0.005
    spike_p: float = 0.0  # chance of a slow message
    spike_max: float = 0.0
    loss: float = 0.0

    @property
    def max_delay(self) -> float:
        return max(self.delay_max, self.spike_max)


@dataclass(order=True)
class _Event:
    at: float
    seq: int
    kind: str = field(compare=False)
    data: tuple[Any, ...] = field(compare=False)


class Farm:
    """A farm of membership machines joined by simulated links (one per pair of nodes).

    A link is connected while both ends are up and it is not cut; every change
    reaches both ends as link_up / link_lost (a silent crash tells nobody).
    Messages are delivered in order per direction after a random delay, may be
    lost, and are dropped when their link went down meanwhile.
    """

    def __init__(
        self, names: list[str], seed: int, net: Net | None = None, timing: Timing = T
    ) -> None:
        self.names = names
        self.seed = seed
        self.net = net or Net()
        self.timing = timing
        self.rng = random.Random(f"net/{seed}")
        self.now = 0.0
        self.queue: list[_Event] = []
        self.seq = 0
        self.up = dict.fromkeys(names, True)
        self.boot = dict.fromkeys(names, 0)
        self.cut: set[frozenset[str]] = set()
        self.epoch: dict[frozenset[str], int] = {}
        self.last_delivery: dict[tuple[str, str], float] = {}
        self.log: list[tuple[Any, ...]] = []
        self.watchers: list[Any] = []  # called with (farm, observer, StateChanged)
        self.crash_hooks: list[Any] = []  # called with (farm, victim) before a crash
        self.m: dict[str, Membership] = {n: self._new_machine(n) for n in names}
        self.connected = {k: False for k in self._pairs()}
        for n in names:
            self._boot(n)
        self._links_changed(silent=frozenset())

    # -- plumbing ----------------------------------------------------------------------------
    def _pairs(self) -> list[frozenset[str]]:
        return [frozenset((a, b)) for i, a in enumerate(self.names) for b in self.names[i + 1 :]]

    def _new_machine(self, n: str) -> Membership:
        rng = random.Random(f"node/{self.seed}/{n}/{self.boot[n]}")
        return Membership(n, self.names, self.now, timing=self.timing, rng=rng)

    def at(self, when: float, kind: str, *data: Any) -> None:
        self.seq += 1
        heapq.heappush(self.queue, _Event(when, self.seq, kind, data))

    def _boot(self, n: str) -> None:
        boot = self.boot[n]
        self.at(self.now + self.rng.uniform(0, TICK), "tick", n, boot)
        self.at(self.now + self.rng.uniform(0, self.timing.ping_interval), "ping", n, boot)

    def _is_connected(self, key: frozenset[str]) -> bool:
        a, b = sorted(key)
        return self.up[a] and self.up[b] and key not in self.cut

    def _links_changed(self, silent: frozenset[str]) -> None:
        for key in self._pairs():
            now_connected = self._is_connected(key)
            if now_connected == self.connected[key]:
                continue
            self.connected[key] = now_connected
            self.epoch[key] = self.epoch.get(key, 0) + 1
            a, b = sorted(key)
            for me, peer in ((a, b), (b, a)):
                if not self.up[me]:
                    continue
                if now_connected:
                    self.m[me].link_up(peer, self.now)
                elif peer not in silent:
                    self.m[me].link_lost(peer, self.now)
                self._flush(me)

    def send(self, src: str, dst: str, kind: str, payload: Any) -> None:
        key = frozenset((src, dst))
        if not self.connected[key]:
            return
        net, rng = self.net, self.rng
        delay = rng.uniform(net.delay_min, net.delay_max)
        if net.spike_p and rng.random() < net.spike_p:
            delay = rng.uniform(net.delay_max, net.spike_max)
        lost = net.loss > 0 and rng.random() < net.loss
        when = max(self.now + delay, self.last_delivery.get((src, dst), 0.0))
        self.last_delivery[(src, dst)] = when
        if not lost:
            self.at(when, "deliver", src, dst, self.epoch[key], kind, payload)

    def _flush(self, n: str) -> None:
        m = self.m[n]
        for action in m.take_actions():
            if isinstance(action, SendProbeRequest):
                frame = encode_probe_request_frame(action.target, action.nonce)
                self.send(n, action.via, "frame", frame)
            elif isinstance(action, SendProbeResult):
                frame = encode_probe_result_frame(action.target, action.nonce, action.alive)
                self.send(n, action.to, "frame", frame)
            elif isinstance(action, Broadcast):
                frame = encode_node_state_frame([action.state])
                for peer in self.names:
                    if peer != n:
                        self.send(n, peer, "frame", frame)
            elif isinstance(action, SendTo):
                self.send(n, action.peer, "frame", encode_node_state_frame(action.states))
            else:
                entry = (round(self.now, 6), n, action.node, action.old, action.new)
                self.log.append(entry)
                for watch in self.watchers:
                    watch(self, n, action)

    def _receive(self, src: str, dst: str, kind: str, payload: Any) -> None:
        m, now = self.m[dst], self.now
        if kind == "ping":
            m.heard(src, now)
            self.send(dst, src, "pong", None)
        elif kind == "pong":
            m.heard(src, now)
        else:
            for frame in FrameDecoder().feed(payload):
                msg = parse_membership_frame(frame)
                if isinstance(msg, list):
                    for entry in msg:
                        m.on_node_state(src, entry, now, wall=WALL)
                elif isinstance(msg, ProbeRequest):
                    m.on_probe_request(src, msg.target, msg.nonce, now)
                elif isinstance(msg, ProbeResult):
                    m.on_probe_result(src, msg.target, msg.nonce, msg.alive, now)
        self._flush(dst)

    # -- scenario --------------------------------------------------------------------------
    def run_until(self, stop: float) -> None:
        while self.queue and self.queue[0].at <= stop:
            ev = heapq.heappop(self.queue)
            self.now = ev.at
            getattr(self, "_on_" + ev.kind)(*ev.data)
        self.now = stop

    def _on_tick(self, n: str, boot: int) -> None:
        if not self.up[n] or boot != self.boot[n]:
            return
        self.m[n].tick(self.now)
        self._flush(n)
        self.at(self.now + TICK, "tick", n, boot)

    def _on_ping(self, n: str, boot: int) -> None:
        if not self.up[n] or boot != self.boot[n]:
            return
        for peer in self.names:
            if peer != n:
                self.send(n, peer, "ping", None)
        self.at(self.now + self.timing.ping_interval, "ping", n, boot)

    def _on_deliver(self, src: str, dst: str, epoch: int, kind: str, payload: Any) -> None:
        key = frozenset((src, dst))
        if self.connected[key] and self.epoch[key] == epoch:
            self._receive(src, dst, kind, payload)

    def _on_cut(self, a: str, b: str) -> None:
        self.log.append((round(self.now, 6), "cut", a, b))
        self.cut.add(frozenset((a, b)))
        self._links_changed(silent=frozenset())

    def _on_heal(self, a: str, b: str) -> None:
        self.log.append((round(self.now, 6), "heal", a, b))
        self.cut.discard(frozenset((a, b)))
        self._links_changed(silent=frozenset())

    def _on_crash(self, n: str, silent: bool) -> None:
        if not self.up[n]:
            return
        self.log.append((round(self.now, 6), "crash", n, silent))
        for hook in self.crash_hooks:
            hook(self, n)
        self.up[n] = False
        self._links_changed(silent=frozenset({n}) if silent else frozenset())

    def _on_restart(self, n: str) -> None:
        if self.up[n]:
            return
        self.log.append((round(self.now, 6), "restart", n))
        self.up[n] = True
        self.boot[n] += 1
        self.m[n] = self._new_machine(n)
        self._boot(n)
        self._links_changed(silent=frozenset())

    def _on_call(self, fn: Any) -> None:
        fn(self)

    def cut_link(self, when: float, a: str, b: str) -> None:
        self.at(when, "cut", a, b)

    def heal_link(self, when: float, a: str, b: str) -> None:
        self.at(when, "heal", a, b)

    def crash(self, when: float, n: str, silent: bool = False) -> None:
        self.at(when, "crash", n, silent)

    def restart(self, when: float, n: str) -> None:
        self.at(when, "restart", n)

    def call(self, when: float, fn: Any) -> None:
        self.at(when, "call", fn)

    def changes(self, observer: str, node: str) -> list[tuple[float, Any, Any]]:
        return [(e[0], e[3], e[4]) for e in self.log if e[1] == observer and e[2] == node]


def test_farm_starts_with_everyone_alive() -> None:
    farm = Farm(["a", "b", "c"], seed=1)
    farm.run_until(1.0)
    for n in "abc":
        assert farm.m[n].live_nodes(1.0) == {"a", "b", "c"}
        assert farm.m[n].placeable_nodes(1.0) == {"a", "b", "c"}
    farm.run_until(20.0)
    assert all(e[4] is ALIVE for e in farm.log)  # only the start: UNKNOWN -> ALIVE


def test_one_bad_link_is_not_a_dead_node() -> None:
    # A's link to C breaks, B still hears C: A keeps C suspect (live), never dead.
    farm = Farm(["a", "b", "c"], seed=2)
    farm.cut_link(3.0, "a", "c")
    farm.run_until(30.0)
    for observer, node in (("a", "c"), ("c", "a")):
        assert [(old, new) for _, old, new in farm.changes(observer, node)] == [
            (UNKNOWN, ALIVE),
            (ALIVE, SUSPECT),
        ]
        assert node in farm.m[observer].live_nodes(30.0)
        assert node not in farm.m[observer].placeable_nodes(30.0)
    for node in "ac":
        assert [(old, new) for _, old, new in farm.changes("b", node)] == [(UNKNOWN, ALIVE)]
    farm.heal_link(31.0, "a", "c")
    farm.run_until(32.0)
    assert farm.m["a"].state("c") is ALIVE
    assert farm.m["c"].state("a") is ALIVE


@pytest.mark.parametrize("n", [3, 4, 5])
@pytest.mark.parametrize("silent", [False, True])
def test_a_dead_node_is_declared_dead_by_everyone_in_time(n: int, silent: bool) -> None:
    names = [f"n{i}" for i in range(n)]
    farm = Farm(names, seed=n)
    crash_at = 5.0
    farm.crash(crash_at, "n0", silent=silent)
    farm.run_until(crash_at + 10.0)
    for observer in names[1:]:
        deaths = [t for t, _, new in farm.changes(observer, "n0") if new is DEAD]
        assert len(deaths) == 1
        assert crash_at < deaths[0] <= crash_at + T.dead_after + TICK + farm.net.max_delay
        assert farm.m[observer].state("n0") is DEAD
        assert "n0" not in farm.m[observer].live_nodes(farm.now)


def test_a_restarted_node_refutes_its_death_everywhere() -> None:
    farm = Farm(["a", "b", "c"], seed=4)
    farm.crash(2.0, "c")
    farm.cut_link(6.0, "a", "c")  # a cannot hear c when it comes back
    farm.restart(8.0, "c")
    farm.run_until(9.0)
    assert farm.m["c"].incarnation == 1  # told it was DEAD at 0, it took 1
    assert farm.m["b"].state("c") is ALIVE
    assert farm.m["a"].state("c") is SUSPECT  # the refutation came through b; b vouches
    assert "c" in farm.m["a"].live_nodes(9.0)
    farm.run_until(30.0)
    assert farm.m["a"].state("c") is SUSPECT
    assert farm.m["c"].incarnation == 1  # no refutation storm


def test_drain_reaches_every_peer() -> None:
    farm = Farm(["a", "b", "c"], seed=5)

    def drain(f: Farm) -> None:
        f.m["b"].start_draining(f.now)
        f._flush("b")

    farm.call(2.0, drain)
    farm.run_until(3.0)
    for n in "abc":
        live, draining = farm.m[n].view_sets(3.0)
        assert live == {"a", "b", "c"}
        assert draining == {"b"}
        assert farm.m[n].placeable_nodes(3.0) == {"a", "c"}


def test_a_node_added_later_joins_when_heard() -> None:
    farm = Farm(["a", "b"], seed=6)
    farm.run_until(1.0)
    farm.m["a"].add_node("z", 1.0)
    assert farm.m["a"].state("z") is UNKNOWN
    assert "z" not in farm.m["a"].live_nodes(1.0)
    farm.m["a"].heard("z", 1.5)
    assert farm.m["a"].state("z") is ALIVE


# --- randomized simulation -------------------------------------------------------------------

SIM_SECONDS = 40.0
QUIET_FROM = 34.0  # every fault is over by then: the farm must converge
SIM_NET = Net(delay_min=0.0002, delay_max=0.005, spike_p=0.01, spike_max=0.15, loss=0.002)
# A crashed node is declared dead by every live node within this time.
DETECT_BOUND = T.dead_after + TICK + SIM_NET.max_delay + EPS
# A node up and reachable from an observer (a direct link, or a link to a helper linked
# to it) is not held DEAD/UNKNOWN by that observer for longer than this: the next
# re-check round, plus one more for an unlucky choice of helpers or a lost message.
REACH_BOUND = 2 * T.recheck_interval + 1.0


@dataclass
class SimResult:
    log: list[tuple[Any, ...]]
    detections: list[tuple[int, float]]  # (farm size, seconds from crash to DEAD)
    worst_unreachable: float
    violations: list[str]


def simulate(seed: int) -> SimResult:
    rng = random.Random(f"scenario/{seed}")
    n = rng.choice([3, 4, 5])
    names = [f"n{i}" for i in range(n)]
    farm = Farm(names, seed, SIM_NET)
    for _ in range(rng.randint(0, 4)):
        a, b = rng.sample(names, 2)
        start = rng.uniform(2.0, 20.0)
        farm.cut_link(start, a, b)
        farm.heal_link(min(start + rng.uniform(0.5, 14.0), QUIET_FROM), a, b)
    for victim in rng.sample(names, rng.randint(1, 2)):
        when = rng.uniform(3.0, 26.0)
        farm.crash(when, victim, silent=rng.random() < 0.5)
        if rng.random() < 0.5:
            farm.restart(min(when + rng.uniform(1.0, 8.0), QUIET_FROM), victim)

    detections: list[tuple[int, float]] = []
    violations: list[str] = []
    # (observer, victim) -> (crash time, observer boot) for crashes the observer must detect
    expect: dict[tuple[str, str], tuple[float, int]] = {}
    bad_since: dict[tuple[str, str], float] = {}
    worst = 0.0

    def on_change(f: Farm, observer: str, action: StateChanged) -> None:
        key = (observer, action.node)
        if action.new is DEAD and key in expect:
            crashed, _ = expect.pop(key)
            detections.append((n, f.now - crashed))

    def on_crash(f: Farm, victim: str) -> None:
        for obs in names:
            if obs != victim and f.up[obs] and f.m[obs].state(victim) in (ALIVE, SUSPECT):
                expect[(obs, victim)] = (f.now, f.boot[obs])

    farm.watchers.append(on_change)
    farm.crash_hooks.append(on_crash)

    def reachable(obs: str, target: str) -> bool:
        if farm.connected[frozenset((obs, target))]:
            return True
        return any(
            farm.connected[frozenset((obs, h))] and farm.connected[frozenset((h, target))]
            for h in names
            if h not in (obs, target)
        )

    def check(f: Farm) -> None:
        nonlocal worst
        for (obs, victim), (crashed, boot) in list(expect.items()):
            if f.boot[obs] != boot or not f.up[obs] or f.up[victim]:
                del expect[(obs, victim)]  # the observer restarted, or the victim is back
            elif f.now > crashed + DETECT_BOUND:
                violations.append(f"{obs} did not detect the crash of {victim} at {crashed:.2f}")
                del expect[(obs, victim)]
        for obs in names:
            for target in names:
                key = (obs, target)
                if obs == target or not f.up[obs] or not f.up[target]:
                    bad_since.pop(key, None)
                    continue
                held_dead = f.m[obs].state(target) in (DEAD, UNKNOWN)
                if held_dead and reachable(obs, target):
                    since = bad_since.setdefault(key, f.now)
                    worst = max(worst, f.now - since)
                    if f.now - since > REACH_BOUND:
                        violations.append(f"{obs} holds reachable {target} dead since {since:.2f}")
                        bad_since[key] = f.now
                else:
                    bad_since.pop(key, None)
        if f.now + TICK <= SIM_SECONDS:
            f.call(f.now + TICK, check)

    farm.call(0.05, check)
    farm.run_until(SIM_SECONDS)
    # Converged: up nodes see each other ALIVE at the incarnation each one has; every
    # node still down is not live anywhere.
    now = farm.now
    for obs in names:
        if not farm.up[obs]:
            continue
        for target in names:
            if target == obs:
                continue
            state = farm.m[obs].state(target)
            if farm.up[target]:
                seen = next(e for e in farm.m[obs].full_state() if e.node == target)
                if (state, seen.incarnation) != (ALIVE, farm.m[target].incarnation):
                    violations.append(f"at the end {obs} holds {target} as {seen}")
            elif state not in (DEAD, UNKNOWN) or target in farm.m[obs].live_nodes(now):
                violations.append(f"at the end {obs} holds crashed {target} as {state}")
    return SimResult(farm.log, detections, worst, violations)


SEEDS = list(range(50))


def test_randomized_farm_simulation() -> None:
    detections: list[tuple[int, float]] = []
    worst = 0.0
    for seed in SEEDS:
        result = simulate(seed)
        assert result.violations == [], f"seed {seed}: {result.violations}"
        detections += result.detections
        worst = max(worst, result.worst_unreachable)
    times = sorted(t for _, t in detections)
    assert len(times) >= len(SEEDS)
    p99 = times[min(len(times) - 1, int(0.99 * len(times)))]
    three = sorted(t for size, t in detections if size == 3)
    p99_three = three[min(len(three) - 1, int(0.99 * len(three)))]
    print(
        f"\nmembership simulation: {len(SEEDS)} seeds, {len(times)} crash detections, "
        f"p50 {times[len(times) // 2]:.2f}s p99 {p99:.2f}s max {times[-1]:.2f}s; "
        f"3-node farms: p99 {p99_three:.2f}s over {len(three)}; "
        f"longest hold of a reachable node as not live {worst:.2f}s"
    )
    assert p99_three < 3.0
    assert times[-1] <= DETECT_BOUND


@pytest.mark.parametrize("seed", [0, 17, 33])
def test_same_seed_replays_exactly(seed: int) -> None:
    first, second = simulate(seed), simulate(seed)
    assert first.log == second.log
    assert first.log != simulate(seed + 100).log


# --- boundaries that a mutation of the code would cross ----------------------------------------


def test_draining_then_alive_at_the_same_incarnation_stays_draining() -> None:
    m = fresh(["b", "c"])
    m.on_node_state("c", NodeState("c", DRAINING, 1), 0.1, wall=WALL)
    m.on_node_state("c", NodeState("c", ALIVE, 1), 0.2, wall=WALL)  # a stale one, reordered
    assert m.state("c") is DRAINING
    m.on_node_state("c", NodeState("c", LEFT, 1), 0.3, wall=WALL)  # LEFT outranks DRAINING
    m.on_node_state("c", NodeState("c", DRAINING, 1), 0.4, wall=WALL)
    assert m.state("c") is LEFT


def test_hearing_one_node_keeps_the_pending_probes_about_another() -> None:
    m = fresh(["b", "c", "d"])
    m.heard("b", 1.0)
    m.tick(1.0)  # c and d fall silent: both SUSPECT, both probed through b
    probes = {p.target: p for p in of(m.take_actions(), SendProbeRequest)}
    assert set(probes) == {"c", "d"}
    m.heard("d", 1.5)  # d is back: its probes are dropped, not c's
    p = probes["c"]
    m.on_probe_result(p.via, p.target, p.nonce, True, 2.0)  # b vouches for c at 2.0
    m.tick(2.6)  # without that vouch c would be dead now (silent since 0, dead_after 2.5)
    assert m.state("c") is SUSPECT
    m.tick(3.5 + EPS)  # the vouch proved c up at 2.0 - suspect_after: dead after 3.5
    assert m.state("c") is DEAD


# -- next_deadline: the I/O layer's timer asks it instead of polling tick() ----------------


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["heard", "lost", "up", "tick"]),
            st.sampled_from(["b", "c", "d"]),
            st.floats(0.0, 2.0),
        ),
        max_size=30,
    )
)
def test_tick_before_next_deadline_does_nothing(events: list[tuple[str, str, float]]) -> None:
    """Soundness: no timer fires before next_deadline(), so the timer may sleep until it."""
    m = Membership("a", ["b", "c", "d"], 0.0, timing=T, incarnation=1)
    now = 0.0
    for what, peer, step in events:
        now += step
        if what == "heard":
            m.heard(peer, now)
        elif what == "lost":
            m.link_lost(peer, now)
        elif what == "up":
            m.link_up(peer, now)
        else:
            m.tick(now)
        m.take_actions()
        due = m.next_deadline()
        if due is None:
            continue
        before = {p: m.state(p) for p in ("b", "c", "d")}
        probe = copy.deepcopy(m)
        for t in (now, (now + due) / 2, due - 1e-6):
            if t < due and t >= now:
                probe.tick(t)
                assert probe.take_actions() == [], (t, due)
                assert {p: probe.state(p) for p in ("b", "c", "d")} == before
