"""lb.node.handshake_slots: caps per process and per source, and the queue over them."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.node.handshake_slots import HandshakeSlots, Offer

START, WAIT, REFUSE = Offer.START, Offer.WAIT, Offer.REFUSE


def test_under_both_caps_a_handshake_starts_at_once() -> None:
    slots: HandshakeSlots[str] = HandshakeSlots(
        per_process=4, per_source=2, max_waiting=10, max_waiting_total=100
    )
    assert slots.offer("x", "x1") is START and slots.offer("x", "x2") is START
    assert slots.running == 2 and slots.by_source == {"x": 2}


def test_over_the_source_cap_a_connection_waits_and_starts_when_its_source_frees_a_slot() -> None:
    slots: HandshakeSlots[str] = HandshakeSlots(
        per_process=4, per_source=2, max_waiting=10, max_waiting_total=100
    )
    slots.offer("x", "x1")
    slots.offer("x", "x2")
    assert slots.offer("x", "x3") is WAIT
    assert slots.offer("x", "x4") is WAIT
    assert slots.offer("y", "y1") is START, "another source has its own slots"
    assert slots.ended("y") == [], "a slot of another source is not x's"
    assert slots.queued == 2
    assert slots.ended("x") == [("x", "x3")]  # in arrival order
    assert slots.ended("x") == [("x", "x4")]
    assert slots.by_source == {"x": 2} and slots.waiting == {}
    assert slots.queued == 0


def test_a_source_with_waiting_connections_keeps_its_order_even_when_a_slot_is_free() -> None:
    """A newcomer of a source does not overtake that source's older waiting connections."""
    slots: HandshakeSlots[str] = HandshakeSlots(
        per_process=1, per_source=2, max_waiting=10, max_waiting_total=100
    )
    slots.offer("x", "x1")
    assert slots.offer("x", "x2") is WAIT  # the process cap
    assert slots.ended("x") == [("x", "x2")]
    assert slots.offer("y", "y1") is WAIT
    assert slots.offer("x", "x3") is WAIT
    assert slots.ended("x") == [("y", "y1")]  # y has waited longer


def test_process_slots_go_round_robin_over_the_waiting_sources() -> None:
    slots: HandshakeSlots[str] = HandshakeSlots(
        per_process=2, per_source=2, max_waiting=10, max_waiting_total=100
    )
    slots.offer("x", "x0")
    slots.offer("x", "x1")
    for item in ("x2", "x3", "x4"):
        assert slots.offer("x", item) is WAIT
    for item in ("y1", "y2"):
        assert slots.offer("y", item) is WAIT
    order = [slots.ended(src)[0] for src in ("x", "x", "y", "x", "y")]
    assert order == [("y", "y1"), ("x", "x2"), ("y", "y2"), ("x", "x3"), ("x", "x4")]


def test_withdraw_takes_a_waiting_connection_out_wherever_it_is() -> None:
    slots: HandshakeSlots[str] = HandshakeSlots(
        per_process=1, per_source=1, max_waiting=10, max_waiting_total=100
    )
    slots.offer("x", "x1")
    for item in ("x2", "x3", "x4"):
        slots.offer("x", item)
    assert slots.withdraw("x", "x2")  # the oldest
    assert slots.withdraw("x", "x4")  # not the oldest
    assert not slots.withdraw("x", "x4"), "withdrawn twice"
    assert not slots.withdraw("x", "x1"), "running, not waiting"
    assert slots.ended("x") == [("x", "x3")]
    assert slots.withdraw("x", "x3") is False
    assert slots.ended("x") == [] and slots.running == 0
    assert slots.waiting == {} and slots.ready == {}


def test_a_source_with_max_waiting_connections_waiting_gets_the_next_one_refused() -> None:
    """Silent sockets of one address cannot take every connection slot of the process."""
    slots: HandshakeSlots[str] = HandshakeSlots(
        per_process=8, per_source=1, max_waiting=2, max_waiting_total=100
    )
    assert [slots.offer("x", f"x{i}") for i in range(4)] == [START, WAIT, WAIT, REFUSE]
    assert slots.offer("y", "y1") is START, "other sources are not refused"
    assert slots.ended("x") == [("x", "x1")]
    assert slots.offer("x", "x4") is WAIT, "a freed place in the queue is taken again"
    none_wait: HandshakeSlots[str] = HandshakeSlots(
        per_process=8, per_source=1, max_waiting=0, max_waiting_total=100
    )
    assert [none_wait.offer("x", "a"), none_wait.offer("x", "b")] == [START, REFUSE]


def test_clear_takes_every_waiting_connection_out_and_none_is_handed_a_slot_after() -> None:
    """The process stops: the waiting connections are closed, the handshakes that end
    meanwhile start none of them."""
    slots: HandshakeSlots[str] = HandshakeSlots(
        per_process=2, per_source=1, max_waiting=10, max_waiting_total=100
    )
    slots.offer("x", "x1")
    slots.offer("y", "y1")
    for item in ("x2", "x3", "y2", "z1"):
        assert slots.offer(item[0], item) is WAIT
    assert sorted(slots.clear()) == ["x2", "x3", "y2", "z1"]
    assert slots.queued == 0 and slots.ready == {}
    assert slots.ended("x") == [] and slots.ended("y") == []
    assert slots.running == 0 and slots.by_source == {}


def test_the_process_has_a_cap_on_waiting_connections_of_every_source_together() -> None:
    """Silent sockets of a few addresses cannot take every connection slot either."""
    slots: HandshakeSlots[str] = HandshakeSlots(
        per_process=8, per_source=1, max_waiting=10, max_waiting_total=3
    )
    assert [slots.offer("x", f"x{i}") for i in range(3)] == [START, WAIT, WAIT]
    assert [slots.offer("y", f"y{i}") for i in range(3)] == [START, WAIT, REFUSE]
    assert slots.offer("z", "z0") is START, "a connection that starts needs no room to wait"
    assert slots.offer("z", "z1") is REFUSE
    assert slots.ended("x") == [("x", "x1")]
    assert slots.offer("z", "z1") is WAIT, "a freed place in the process's queue is taken"
    assert slots.withdraw("x", "x2") and slots.offer("y", "y2") is WAIT
    assert slots.queued == 3


def test_caps_must_be_positive() -> None:
    with pytest.raises(ValueError):
        HandshakeSlots(per_process=0, per_source=1, max_waiting=1, max_waiting_total=100)
    with pytest.raises(ValueError):
        HandshakeSlots(per_process=1, per_source=1, max_waiting=-1, max_waiting_total=100)
    with pytest.raises(ValueError):
        HandshakeSlots(per_process=1, per_source=1, max_waiting=1, max_waiting_total=-1)


# offer(source), end the handshake of a running item, or withdraw a waiting one
ACTIONS = st.lists(
    st.tuples(st.sampled_from(["offer", "end", "withdraw"]), st.integers(0, 3), st.integers(0, 50)),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(ACTIONS, st.integers(1, 5), st.integers(1, 3), st.integers(0, 6), st.integers(0, 12))
def test_any_sequence_keeps_the_caps_and_loses_no_connection(
    actions: list[tuple[str, int, int]],
    per_process: int,
    per_source: int,
    max_waiting: int,
    max_waiting_total: int,
) -> None:
    slots: HandshakeSlots[int] = HandshakeSlots(
        per_process, per_source, max_waiting, max_waiting_total
    )
    running: list[tuple[str, int]] = []
    waiting: dict[int, str] = {}
    serial = 0
    for action, src, pick in actions:
        source = f"s{src}"
        if action == "offer":
            serial += 1
            offer = slots.offer(source, serial)
            mine = sum(1 for s in waiting.values() if s == source)
            if offer is START:
                running.append((source, serial))
            elif offer is WAIT:
                waiting[serial] = source
            else:
                assert mine == max_waiting or len(waiting) == max_waiting_total, "refused with room"
            assert mine <= max_waiting
            assert len(waiting) <= max_waiting_total
        elif action == "end" and running:
            done_source, _ = running.pop(pick % len(running))
            for started_source, item in slots.ended(done_source):
                assert waiting.pop(item) == started_source
                running.append((started_source, item))
        elif action == "withdraw" and waiting:
            item = sorted(waiting)[pick % len(waiting)]
            assert slots.withdraw(waiting.pop(item), item)
        # the caps hold
        assert slots.running == len(running) <= per_process
        for s in {s for s, _ in running}:
            assert slots.by_source[s] == sum(1 for r, _ in running if r == s) <= per_source
        # every connection is running or waiting, none twice
        queued = [item for q in slots.waiting.values() for item in q]
        assert sorted(queued) == sorted(waiting)
        assert slots.queued == len(waiting)
        # no slot idles while a connection could use it
        for s, q in slots.waiting.items():
            assert q, s
            if slots.by_source.get(s, 0) < per_source:
                assert slots.running == per_process, (s, slots.running)
                assert s in slots.ready
        # each source's waiting connections keep their arrival order
        for q in slots.waiting.values():
            assert list(q) == sorted(q)
