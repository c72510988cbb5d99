"""One node, several workers, one voice (lb.cluster.membership, ``speaker=``).

Each worker of a node runs its own machine, but the node has one own state:
worker 0 (the speaker) declares and refutes, a sibling adopts what it declared
(``adopt_own_state``, from the worker bus) and never contradicts it. The last
tests replay the two races of two speakers on one node with a small message
pump: the same delivery order flaps (or never ends) with two speakers, and
does not with one.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable
from functools import partial

import pytest

from lb.cluster.membership import (
    Broadcast,
    Membership,
    MemberState,
    NodeState,
    SendTo,
    StateChanged,
    Timing,
)

ALIVE = MemberState.ALIVE
SUSPECT = MemberState.SUSPECT
DEAD = MemberState.DEAD
DRAINING = MemberState.DRAINING
LEFT = MemberState.LEFT

WALL = 1_700_000_000.0  # wall clock at monotonic time 0 in these tests
START = int(WALL) - 60  # the incarnation of a node that started a minute ago


def sibling(name: str = "b", inc: int = START + 7) -> Membership:
    m = Membership(name, ("a", "b", "c"), 0.0, rng=random.Random(1), incarnation=inc, speaker=False)
    m.heard("a", 0.0)
    m.heard("c", 0.0)
    m.take_actions()
    return m


def gossip(m: Membership, sender: str, entry: NodeState, now: float = 0.1) -> None:
    m.on_node_state(sender, entry, now, wall=WALL + now)


def test_the_speaker_is_the_default() -> None:
    m = Membership("b", ("a", "c"), 0.0, incarnation=START)
    assert m.speaker
    assert m.full_state()[0] == NodeState("b", ALIVE, START)
    m.adopt_own_state(NodeState("b", DRAINING, START + 9))  # only siblings adopt
    assert m.own_state() == NodeState("b", ALIVE, START)
    assert m.take_actions() == []


@pytest.mark.parametrize(
    "entry",
    [
        NodeState("b", SUSPECT, START + 7),
        NodeState("b", DEAD, START + 7),
        NodeState("b", ALIVE, START + 20),  # a stale record from a previous life
        NodeState("b", DRAINING, START + 8),  # the speaker's word, relayed back
        NodeState("b", LEFT, START + 8),
    ],
)
def test_a_sibling_never_refutes_gossip_about_its_node(entry: NodeState) -> None:
    m = sibling()
    gossip(m, "a", entry)
    assert m.take_actions() == []
    assert m.incarnation == START + 7
    assert m.state("b") is ALIVE


def test_a_sibling_says_nothing_of_its_node_until_it_adopted_the_speakers_word() -> None:
    m = sibling()
    assert m.full_state() == [NodeState("a", ALIVE, 0), NodeState("c", ALIVE, 0)]
    m.link_up("a", 0.1)
    assert m.take_actions() == [SendTo("a", (NodeState("a", ALIVE, 0), NodeState("c", ALIVE, 0)))]
    m.adopt_own_state(NodeState("b", ALIVE, START))
    assert m.take_actions() == []  # no change of declaration, nothing to report
    assert m.full_state()[0] == NodeState("b", ALIVE, START)
    assert m.incarnation == START


def test_a_sibling_adopts_each_declaration_and_reports_it_without_broadcasting() -> None:
    m = sibling()
    m.adopt_own_state(NodeState("b", ALIVE, START))
    m.adopt_own_state(NodeState("b", DRAINING, START + 1))
    assert m.take_actions() == [StateChanged("b", ALIVE, DRAINING)]
    assert m.state("b") is DRAINING and m.own_state() == NodeState("b", DRAINING, START + 1)
    assert "b" not in m.placeable_nodes(0.2) and "b" in m.live_nodes(0.2)
    m.adopt_own_state(NodeState("b", LEFT, START + 2))
    assert m.take_actions() == [StateChanged("b", DRAINING, LEFT)]
    # a restarted speaker starts lower: it is the node's voice all the same
    m.adopt_own_state(NodeState("b", ALIVE, START - 5))
    assert m.take_actions() == [StateChanged("b", LEFT, ALIVE)]
    assert m.full_state()[0] == NodeState("b", ALIVE, START - 5)


@pytest.mark.parametrize(
    "entry", [NodeState("a", DRAINING, START + 1), NodeState("b", SUSPECT, START + 1)]
)
def test_a_sibling_adopts_only_a_declaration_of_its_own_node(entry: NodeState) -> None:
    m = sibling()
    m.adopt_own_state(entry)
    assert m.take_actions() == []
    assert m.full_state()[0].node == "a"  # still nothing said of itself


def test_a_siblings_own_inputs_declare_nothing_but_count_locally() -> None:
    m = Membership(
        "b",
        ("a", "c"),
        0.0,
        incarnation=START,
        speaker=False,
        timing=Timing(app_down_rehome_after=5.0),
    )
    m.adopt_own_state(NodeState("b", ALIVE, START))
    m.start_draining(0.1)
    m.stop_draining(0.2)
    m.app_down(0.3)
    assert m.take_actions() == []
    assert m.own_state() == NodeState("b", ALIVE, START)
    # the application timer still runs here: this worker re-homes its own sessions
    assert m.rehomed_nodes(5.2) == frozenset()
    m.tick(5.3)
    assert m.rehomed_nodes(5.3) == frozenset({"b"})
    assert m.take_actions() == []
    m.leave(6.0)
    assert m.take_actions() == []


# -- the races of two voices, replayed ------------------------------------------------------

Delivery = tuple[str, str, NodeState]  # (sender node, receiving machine, entry)


class Pump:
    """Peers a and c (one machine each) and node b with workers b0 (the speaker) and b1.

    NODE_STATE from a machine of b goes out as sender "b"; what a peer sends to b
    lands on b1 (the worker its link took), which relays it to b0 over the bus.
    The bus is slower than the peers: bus messages wait until no link message is
    in flight, which is the order that made the workers disagree.
    """

    def __init__(self, *, b1_speaks: bool, b0_inc: int, b1_inc: int) -> None:
        def machine(name: str, inc: int, speaker: bool = True) -> Membership:
            m = Membership(
                name[0],
                ("a", "b", "c"),
                0.0,
                rng=random.Random(1),
                incarnation=inc,
                speaker=speaker,
            )
            for peer in ("a", "b", "c"):
                m.heard(peer, 0.0)
            return m

        self.m = {
            "a": machine("a", START),
            "c": machine("c", START),
            "b0": machine("b0", b0_inc),
            "b1": machine("b1", b1_inc, speaker=b1_speaks),
        }
        self.links: deque[Delivery] = deque()
        self.bus: deque[tuple[str, Callable[[], None]]] = deque()
        self.seen: dict[str, list[tuple[MemberState | None, MemberState]]] = {"a": [], "c": []}
        self.delivered = 0
        for machine_name in self.m:  # every link comes up: full states both ways
            for peer in ("a", "b", "c"):
                if peer != machine_name[0]:
                    self.m[machine_name].link_up(peer, 0.0)
        self.collect_all()
        self.seen = {"a": [], "c": []}  # b was heard from the start: no change so far
        if not b1_speaks:  # worker 0 repeats the node's state on the bus every ping
            own = self.m["b0"].own_state()
            self.bus.append(("b1", partial(self.m["b1"].adopt_own_state, own)))

    def to_node(self, sender: str, node: str, entry: NodeState) -> None:
        self.links.append((sender, "b1" if node == "b" else node, entry))

    def collect(self, name: str) -> None:
        me = name[0]
        for action in self.m[name].take_actions():
            if isinstance(action, Broadcast):
                for node in ("a", "b", "c"):
                    if node != me:
                        self.to_node(me, node, action.state)
                if name == "b0" and action.state.node == "b" and not self.m["b1"].speaker:
                    self.bus.append(("b1", partial(self.m["b1"].adopt_own_state, action.state)))
            elif isinstance(action, SendTo):
                for entry in action.states:
                    self.to_node(me, action.peer, entry)
            elif isinstance(action, StateChanged) and name in self.seen and action.node == "b":
                self.seen[name].append((action.old, action.new))

    def collect_all(self) -> None:
        for name in self.m:
            self.collect(name)

    def run(self, limit: int = 2000) -> bool:
        """Deliver until nothing is in flight (True) or `limit` deliveries (False)."""
        while self.links or self.bus:
            if self.delivered >= limit:
                return False
            self.delivered += 1
            if self.links:
                sender, to, entry = self.links.popleft()
                self.m[to].on_node_state(sender, entry, 0.1, wall=WALL)
                if to == "b1":  # RELAYED to the sibling on the bus
                    relay = partial(self.m["b0"].on_node_state, sender, entry, 0.1, wall=WALL)
                    self.bus.append(("b0", relay))
                self.collect(to)
            else:
                to, call = self.bus.popleft()
                call()
                self.collect(to)
        return True

    def app_down(self) -> None:
        """Worker 0's health check: b0 goes down now, b1 hears APP_HEALTH on the bus."""
        self.m["b0"].app_down(0.1)
        self.collect("b0")
        self.bus.append(("b1", partial(self.m["b1"].app_down, 0.1)))

    def app_up(self) -> None:
        self.m["b0"].app_up(0.1)
        self.collect("b0")
        self.bus.append(("b1", partial(self.m["b1"].app_up, 0.1)))


@pytest.mark.parametrize("b1_speaks", [False, True])
def test_an_application_down_is_announced_once_when_only_worker_0_speaks(b1_speaks: bool) -> None:
    pump = Pump(b1_speaks=b1_speaks, b0_inc=START, b1_inc=START)
    assert pump.run()
    assert pump.seen == {"a": [], "c": []}
    for _ in range(3):
        pump.app_down()
        assert pump.run()
        pump.app_up()
        assert pump.run()
    once = [(ALIVE, DRAINING), (DRAINING, ALIVE)] * 3
    if b1_speaks:  # two voices: b1 refutes b0's DRAINING before the bus tells it
        assert pump.seen["a"] != once
        assert (DRAINING, ALIVE) in pump.seen["a"][:2]
    else:
        assert pump.seen == {"a": once, "c": once}
        assert pump.m["b1"].own_state() == pump.m["b0"].own_state()


@pytest.mark.parametrize("b1_speaks", [False, True])
def test_a_later_start_of_one_worker_starts_no_refutation_race(b1_speaks: bool) -> None:
    # b1 was restarted: its start wall time is later than b0's incarnation
    pump = Pump(b1_speaks=b1_speaks, b0_inc=START, b1_inc=START + 30)
    ended = pump.run()
    if b1_speaks:  # two voices outbid each other, one above the other, for ever
        assert not ended
        assert pump.m["b0"].incarnation > START + 100
    else:
        assert ended
        assert pump.delivered < 100
        assert pump.m["b0"].incarnation == START
        assert pump.m["a"].full_state()[1] == NodeState("b", ALIVE, START)
        assert pump.m["b1"].own_state() == NodeState("b", ALIVE, START)
        assert pump.seen == {"a": [], "c": []}  # no change of b, no flapping
