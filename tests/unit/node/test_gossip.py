"""lb.node.gossip.Gossip: membership frames into a real machine, its actions out to callables."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator

import pytest

from lb.cluster.membership import Membership, MemberState, NodeState
from lb.config import Limits
from lb.node.gossip import Gossip
from lb.wire import frames as fr
from lb.wire import membership as mw
from lb.wire.bus import decode_own_state

START = 1_700_000_000


class Out:
    """What Gossip asked for, in order."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes]] = []
        self.siblings: list[bytes] = []
        self.dropped: list[tuple[str, str]] = []
        self.views = 0
        self.wakes: list[float | None] = []

    def view(self) -> None:
        self.views += 1


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def make(loop: asyncio.AbstractEventLoop, *, speaker: bool) -> tuple[Gossip, Membership, Out]:
    membership = Membership(
        "a", ("b", "c"), loop.time(), rng=random.Random(1), incarnation=START, speaker=speaker
    )
    membership.heard("b", loop.time())
    membership.heard("c", loop.time())
    membership.take_actions()
    out = Out()
    gossip = Gossip(
        "a",
        0 if speaker else 1,
        loop,
        membership,
        Limits(),
        peers=["b", "c"],
        send_control=lambda peer, frame: out.sent.append((peer, frame)),
        to_siblings=out.siblings.extend,
        drop_links=lambda peer, reason: out.dropped.append((peer, reason)),
        refresh_view=out.view,
        wake_at=out.wakes.append,
    )
    return gossip, membership, out


def parsed(frame: bytes) -> object:
    decoded = fr.decode_frame(frame, 0)
    assert decoded is not None
    return mw.parse_membership_frame(decoded[0])


def test_a_refutation_goes_to_every_peer_and_to_the_siblings(
    loop: asyncio.AbstractEventLoop,
) -> None:
    gossip, membership, out = make(loop, speaker=True)
    claim = mw.encode_node_state_frame([NodeState("a", MemberState.SUSPECT, START)])
    decoded = fr.decode_frame(claim, 0)
    assert decoded is not None
    assert gossip.frame("b", decoded[0]) is True
    refutation = [NodeState("a", MemberState.ALIVE, START + 1)]
    assert [(peer, parsed(frame)) for peer, frame in out.sent] == [
        ("b", refutation),
        ("c", refutation),
    ]
    own = fr.decode_frame(out.siblings[0], 0)
    assert own is not None and len(out.siblings) == 1
    assert decode_own_state(own[0].payload) == (MemberState.ALIVE, START + 1)
    assert out.wakes == [membership.next_deadline()]


def test_a_sibling_neither_refutes_nor_tells_its_siblings(loop: asyncio.AbstractEventLoop) -> None:
    gossip, _, out = make(loop, speaker=False)
    claim = mw.encode_node_state_frame([NodeState("a", MemberState.DEAD, START + 3)])
    decoded = fr.decode_frame(claim, 0)
    assert decoded is not None
    assert gossip.frame("b", decoded[0]) is True
    assert out.sent == [] and out.siblings == []


def test_a_change_rebuilds_the_view_and_a_dead_peer_loses_its_links(
    loop: asyncio.AbstractEventLoop,
) -> None:
    gossip, membership, out = make(loop, speaker=True)
    now = loop.time()
    membership.tick(now + 10.0)  # b and c silent: suspect, probed through each other
    gossip.run()
    assert out.views == 1 and out.dropped == []
    membership.tick(now + 20.0)  # nobody vouched: dead
    gossip.run()
    assert out.views == 2
    assert sorted(out.dropped) == [
        ("b", "the peer was declared dead"),
        ("c", "the peer was declared dead"),
    ]
    assert membership.state("b") is MemberState.DEAD


def test_a_frame_that_is_not_membership_is_left_to_others(loop: asyncio.AbstractEventLoop) -> None:
    gossip, _, out = make(loop, speaker=True)
    assert gossip.frame("b", fr.Frame(0x40, 0, 0, b"")) is False
    assert out.sent == [] and out.wakes == []
