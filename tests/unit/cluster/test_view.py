"""Tests of lb.cluster.view: FarmView queries and the Liveness state machine."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.cluster.view import FarmView, Liveness, NodeInfo


def info(name: str, weight: int = 1) -> NodeInfo:
    return NodeInfo(name, ("10.0.0.1", 7000), {"http": ("127.0.0.1", 8080)}, weight)


NODES = {n: info(n, w) for n, w in (("a", 1), ("b", 2), ("c", 3), ("d", 1))}


def view(live: set[str], draining: frozenset[str] | set[str] = frozenset()) -> FarmView:
    return FarmView("a", NODES, frozenset(live), {}, frozenset(draining))


def test_nodeinfo_defaults_and_weight_check() -> None:
    assert info("a").weight == 1
    for bad in (0, -1, True, 1.5):
        with pytest.raises(ValueError):
            NodeInfo("a", ("h", 1), {}, bad)  # type: ignore[arg-type]


def test_views_are_immutable() -> None:
    v = view({"a"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        v.live = frozenset({"b"})  # type: ignore[misc]


def test_placeable_is_sorted_live_minus_draining() -> None:
    assert view({"d", "a", "c"}).placeable() == ["a", "c", "d"]
    assert view({"d", "a", "c"}, {"c", "b"}).placeable() == ["a", "d"]


def test_placeable_falls_back_to_live_when_all_drain() -> None:
    assert view({"b", "a"}, {"a", "b"}).placeable() == ["a", "b"]


def test_default_draining_is_empty() -> None:
    v = FarmView("a", NODES, frozenset({"a", "b"}), {})
    assert v.draining == frozenset()
    assert v.placeable() == ["a", "b"]


def test_weights_of_live_nodes_only() -> None:
    assert view({"a", "c"}).weights() == {"a": 1, "c": 3}
    assert view({"a", "b"}, {"b"}).weights() == {"a": 1, "b": 2}  # draining still hashes
    v = FarmView("a", NODES, frozenset({"a", "zz"}), {})
    assert v.weights() == {"a": 1, "zz": 1}


def test_peers_start_unknown() -> None:
    lv = Liveness(["b", "c"], dead_after=3.0, now=100.0)
    assert not lv.is_live("b", 100.0)
    assert lv.live_set(100.0) == frozenset()
    assert lv.last_heard("b") is None
    assert lv.peers == frozenset({"b", "c"})


def test_heard_from_makes_live_until_dead_after() -> None:
    lv = Liveness(["b", "c"], dead_after=3.0, now=0.0)
    lv.heard_from("b", 10.0)
    assert lv.is_live("b", 10.0)
    assert lv.is_live("b", 12.999)
    assert not lv.is_live("b", 13.0)
    assert lv.live_set(12.0) == frozenset({"b"})
    assert lv.live_set(13.0) == frozenset()
    lv.heard_from("b", 14.0)
    assert lv.is_live("b", 16.0)


def test_lost_link_is_not_live_at_once() -> None:
    lv = Liveness(["b"], dead_after=3.0, now=0.0)
    lv.heard_from("b", 1.0)
    lv.lost("b")
    assert not lv.is_live("b", 1.0)
    assert lv.live_set(1.0) == frozenset()
    lv.heard_from("b", 2.0)
    assert lv.is_live("b", 2.0)


def test_older_heard_from_never_undoes_a_newer_one() -> None:
    lv = Liveness(["b"], dead_after=3.0, now=0.0)
    lv.heard_from("b", 10.0)
    lv.heard_from("b", 5.0)
    assert lv.last_heard("b") == 10.0
    assert lv.is_live("b", 12.0)


def test_non_peers_are_ignored() -> None:
    lv = Liveness(["b"], dead_after=3.0, now=0.0)
    lv.heard_from("stranger", 1.0)
    lv.lost("stranger")
    assert not lv.is_live("stranger", 1.0)
    assert lv.live_set(1.0) == frozenset()


def test_add_and_remove_peers() -> None:
    lv = Liveness([], dead_after=3.0, now=0.0)
    lv.add_peer("b")
    assert not lv.is_live("b", 0.0)
    lv.heard_from("b", 1.0)
    lv.add_peer("b")  # already present: stays live
    assert lv.is_live("b", 1.0)
    lv.remove_peer("b")
    assert not lv.is_live("b", 1.0)
    assert lv.peers == frozenset()
    lv.remove_peer("b")  # absent: no error


@pytest.mark.parametrize("dead_after", [0.0, -1.0, float("nan")])
def test_rejects_bad_dead_after(dead_after: float) -> None:
    with pytest.raises(ValueError):
        Liveness(["b"], dead_after=dead_after, now=0.0)


events = st.lists(
    st.tuples(
        st.sampled_from(["heard", "lost"]),
        st.sampled_from(["b", "c", "d"]),
        st.floats(min_value=0, max_value=20, allow_nan=False),
    ),
    max_size=30,
)


@given(events=events, at=st.floats(min_value=0, max_value=25, allow_nan=False))
@settings(max_examples=200)
def test_live_set_matches_a_simple_model(events: list[tuple[str, str, float]], at: float) -> None:
    lv = Liveness(["b", "c", "d"], dead_after=2.5, now=0.0)
    last: dict[str, float | None] = {"b": None, "c": None, "d": None}
    for kind, peer, t in events:
        if kind == "heard":
            lv.heard_from(peer, t)
            prev = last[peer]
            last[peer] = t if prev is None else max(prev, t)
        else:
            lv.lost(peer)
            last[peer] = None
    expected = {p for p, t in last.items() if t is not None and at - t < 2.5}
    assert lv.live_set(at) == frozenset(expected)
    assert {p for p in "bcd" if lv.is_live(p, at)} == expected
