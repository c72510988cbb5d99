"""Tests of lb.routing.memory: the placement memory's hold and its bound."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.routing.memory import DEFAULT_ENTRIES, DEFAULT_HOLD, MAX_SOURCE, PlacementMemory

NOW = 1_700_000_000.0


def test_defaults() -> None:
    memory = PlacementMemory()
    assert (memory.max_entries, memory.hold) == (DEFAULT_ENTRIES, DEFAULT_HOLD)
    assert len(memory) == 0


@pytest.mark.parametrize(
    ("kwargs", "what"),
    [
        ({"max_entries": -1}, "max_entries"),
        ({"max_entries": True}, "max_entries"),
        ({"max_entries": 1.5}, "max_entries"),
        ({"hold": 0}, "hold"),
        ({"hold": -1.0}, "hold"),
        ({"hold": float("nan")}, "hold"),
        ({"hold": float("inf")}, "hold"),
        ({"hold": True}, "hold"),
    ],
)
def test_bad_arguments_are_rejected(kwargs: dict[str, Any], what: str) -> None:
    with pytest.raises(ValueError, match=what):
        PlacementMemory(**kwargs)


def test_a_home_is_held_for_hold_seconds_from_the_placement() -> None:
    memory = PlacementMemory(10, hold=10.0)
    assert memory.recall("10.0.0.1", NOW) is None
    assert memory.remember("10.0.0.1", "n2", NOW)
    assert memory.recall("10.0.0.1", NOW) == "n2"
    assert memory.recall("10.0.0.1", NOW + 9.999) == "n2"  # recalling does not extend it
    assert memory.recall("10.0.0.1", NOW + 10.0) is None
    assert len(memory) == 0  # the expired entry went at the recall
    assert memory.recall("10.0.0.2", NOW) is None


def test_a_clock_step_back_ends_the_hold_instead_of_stretching_it() -> None:
    memory = PlacementMemory(10, hold=10.0)
    memory.remember("10.0.0.1", "n2", NOW)
    assert memory.recall("10.0.0.1", NOW - 1.0) is None


def test_remembering_again_replaces_and_restarts_the_hold() -> None:
    memory = PlacementMemory(10, hold=10.0)
    memory.remember("a", "n1", NOW)
    memory.remember("b", "n2", NOW + 1)
    assert memory.remember("a", "n3", NOW + 5)
    assert memory.recall("a", NOW + 14) == "n3"
    assert memory.snapshot(NOW + 5) == {"b": "n2", "a": "n3"}  # placement order
    assert len(memory) == 2


def test_full_of_held_entries_refuses_new_sources_and_keeps_the_old() -> None:
    memory = PlacementMemory(3, hold=10.0)
    for i in range(3):
        assert memory.remember(f"s{i}", "n1", NOW + i)
    assert not memory.remember("flood", "n2", NOW + 3)
    assert memory.refused == 1
    assert memory.recall("flood", NOW + 3) is None
    assert [memory.recall(f"s{i}", NOW + 3) for i in range(3)] == ["n1"] * 3
    assert memory.remember("s1", "n4", NOW + 4)  # a held source may still be updated
    # the oldest hold ends at NOW + 10: room again
    assert memory.remember("late", "n2", NOW + 10)
    assert memory.recall("s0", NOW + 10) is None
    assert len(memory) == 3


def test_zero_entries_remembers_nothing() -> None:
    memory = PlacementMemory(0, hold=10.0)
    assert not memory.remember("a", "n1", NOW)
    assert memory.recall("a", NOW) is None


def test_long_sources_and_non_finite_times_are_not_remembered() -> None:
    memory = PlacementMemory(10, hold=10.0)
    assert not memory.remember("x" * (MAX_SOURCE + 1), "n1", NOW)
    assert memory.remember("x" * MAX_SOURCE, "n1", NOW)
    for bad in (float("nan"), float("inf"), float("-inf")):
        assert not memory.remember("y", "n1", bad)
    assert len(memory) == 1


def test_forget_and_expire() -> None:
    memory = PlacementMemory(10, hold=10.0)
    memory.remember("a", "n1", NOW)
    memory.remember("b", "n1", NOW + 5)
    memory.forget("a")
    memory.forget("absent")
    assert memory.snapshot(NOW + 5) == {"b": "n1"}
    memory.expire(NOW + 15)
    assert len(memory) == 0


ops = st.lists(
    st.tuples(
        st.sampled_from(["remember", "recall", "forget"]),
        st.integers(0, 30),  # source
        st.sampled_from(["n1", "n2", "n3"]),
        st.floats(-2.0, 6.0, allow_nan=False),  # clock step (may go back)
    ),
    max_size=200,
)


@settings(max_examples=300, deadline=None)
@given(max_entries=st.integers(0, 8), hold=st.floats(0.5, 20.0), script=ops)
def test_the_bound_holds_and_recall_answers_only_held_homes(
    max_entries: int, hold: float, script: list[tuple[str, int, str, float]]
) -> None:
    memory = PlacementMemory(max_entries, hold)
    model: dict[str, tuple[str, float]] = {}  # what a correct memory holds (or may have dropped)
    now = NOW
    went_back = False  # after a clock step back, holds may end early (never late)
    for op, i, home, step in script:
        now += step
        went_back = went_back or step < 0
        source = f"10.0.0.{i}"
        if op == "remember":
            held = {s for s, (_, at) in model.items() if at <= now < at + hold}
            stored = memory.remember(source, home, now)
            if not went_back and (source in held or len(held) < max_entries):
                assert stored  # never refused while there is room (or the source is held)
            if stored:
                model[source] = (home, now)
        elif op == "recall":
            got = memory.recall(source, now)
            entry = model.get(source)
            if got is not None:
                assert entry is not None and got == entry[0]
                assert entry[1] <= now < entry[1] + hold  # only a home still held
            elif not went_back and entry is not None and entry[1] <= now < entry[1] + hold:
                pytest.fail("a held home was lost")
        else:
            memory.forget(source)
            model.pop(source, None)
        assert len(memory) <= max_entries


def test_held_answers_the_home_and_its_placement_time_while_it_holds() -> None:
    memory = PlacementMemory(8, 10.0)
    assert memory.held("a", 100.0) is None
    memory.remember("a", "n1", 100.0)
    assert memory.held("a", 105.0) == ("n1", 100.0)
    assert memory.held("a", 110.0) is None  # the hold is over
    assert memory.held("a", 99.0) is None  # a clock that stepped back
