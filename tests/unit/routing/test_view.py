"""Tests of lb.routing.view: FarmView queries."""

from __future__ import annotations

import dataclasses

import pytest

from lb.routing.view import FarmView, NodeInfo


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


# --- re-homed nodes ---------------------------------------------------------------------


def rview(live: set[str], draining: set[str], rehomed: set[str]) -> FarmView:
    return FarmView("a", NODES, frozenset(live), {}, frozenset(draining), frozenset(rehomed))


def test_default_rehomed_is_empty() -> None:
    v = view({"a", "b"})
    assert v.rehomed == frozenset()
    assert v.keeps("a") and v.keeps("b") and not v.keeps("c")


def test_a_rehomed_node_keeps_nothing_takes_nothing_and_owns_no_hash() -> None:
    v = rview({"a", "b", "c"}, {"a"}, {"a"})
    assert not v.keeps("a") and v.keeps("b")
    assert v.homes() == {"b", "c"}
    assert v.placeable() == ["b", "c"]
    assert v.strictly_placeable() == ["b", "c"]
    assert v.weights() == {"b": 2, "c": 3}


def test_rehomed_beats_the_all_draining_fallback() -> None:
    v = rview({"a", "b"}, {"a", "b"}, {"a"})
    assert v.placeable() == ["b"]  # every node drains: the one that keeps sessions
    assert v.strictly_placeable() == []


def test_every_node_rehomed_still_leaves_somewhere_to_go() -> None:
    v = rview({"a", "b"}, {"a", "b"}, {"a", "b"})
    assert v.homes() == {"a", "b"}
    assert v.placeable() == ["a", "b"]
    assert v.weights() == {"a": 1, "b": 2}
