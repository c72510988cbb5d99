"""Tests of lb.routing.placement: power of two choices driven by a salt."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.routing.maglev import stable_hash64
from lb.routing.placement import (
    SOURCE_SLACK,
    SOURCE_SLACK_SHARE,
    least_loaded_of_two,
    least_loaded_of_two_with_slack,
    pick_two,
    source_salt,
)

SALTS = range(3000)


def test_empty_raises_and_single_is_returned() -> None:
    with pytest.raises(ValueError):
        least_loaded_of_two([], {}, 1)
    assert least_loaded_of_two(["only"], {"only": 99.0}, 1) == "only"


@given(count=st.integers(min_value=2, max_value=50), salt=st.integers())
@settings(max_examples=200)
def test_pick_two_gives_two_distinct_indexes(count: int, salt: int) -> None:
    i, j = pick_two(count, salt)
    assert 0 <= i < count
    assert 0 <= j < count
    assert i != j
    assert pick_two(count, salt) == (i, j)


def test_pick_two_covers_every_ordered_pair_evenly() -> None:
    pairs = Counter(pick_two(3, salt) for salt in SALTS)
    assert set(pairs) == {(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)}
    for n in pairs.values():
        assert abs(n / len(SALTS) - 1 / 6) < 0.03


def test_lower_load_wins_and_both_of_two_are_chosen() -> None:
    loads = {"a": 0.5, "b": 0.1, "c": 0.9}
    wins = Counter(least_loaded_of_two(["a", "b", "c"], loads, salt) for salt in SALTS)
    # b wins every pair it is in (2 of 3), a wins the pair {a, c}, c never wins
    assert set(wins) == {"a", "b"}
    assert abs(wins["b"] / len(SALTS) - 2 / 3) < 0.04
    assert abs(wins["a"] / len(SALTS) - 1 / 3) < 0.04


def test_each_win_is_the_lower_loaded_of_the_picked_pair() -> None:
    names = ["n0", "n1", "n2", "n3", "n4"]
    loads = {"n0": 3.0, "n1": 1.0, "n2": 4.0, "n3": 1.5, "n4": 0.5}
    for salt in range(500):
        i, j = pick_two(len(names), salt)
        expected = min(names[i], names[j], key=lambda n: loads[n])
        assert least_loaded_of_two(names, loads, salt) == expected


def test_equal_loads_spread_evenly_over_all_nodes() -> None:
    # an idle farm (all loads equal) must still spread new sessions over every node
    wins = Counter(least_loaded_of_two(["a", "b", "c"], {}, salt) for salt in SALTS)
    assert set(wins) == {"a", "b", "c"}
    for name in "abc":
        assert abs(wins[name] / len(SALTS) - 1 / 3) < 0.04, wins


def test_missing_load_counts_as_zero() -> None:
    for salt in range(50):
        assert least_loaded_of_two(["a", "b"], {"a": 0.2}, salt) == "b"
        # a missing load equals an explicit 0: a tie, won by the first drawn candidate
        first, _ = pick_two(2, salt)
        assert least_loaded_of_two(["a", "b"], {"a": 0.0}, salt) == ["a", "b"][first]


def test_nan_load_loses() -> None:
    for salt in range(50):
        assert least_loaded_of_two(["a", "b"], {"a": float("nan"), "b": 1e9}, salt) == "b"


def test_tie_goes_to_the_first_drawn_candidate() -> None:
    names = ["abe", "zed"]
    for salt in range(50):
        first, _ = pick_two(2, salt)
        assert least_loaded_of_two(names, {"zed": 1.0, "abe": 1.0}, salt) == names[first]


@given(
    loads=st.dictionaries(
        st.sampled_from(["a", "b", "c", "d", "e"]),
        st.floats(min_value=0, max_value=100, allow_nan=False),
        min_size=2,
    ),
    salt=st.integers(),
)
@settings(max_examples=200)
def test_deterministic_and_never_the_strictly_most_loaded(
    loads: dict[str, float], salt: int
) -> None:
    names = sorted(loads)
    winner = least_loaded_of_two(names, loads, salt)
    assert winner in names
    assert least_loaded_of_two(names, dict(loads), salt) == winner
    top = max(loads.values())
    if sum(1 for v in loads.values() if v == top) == 1:
        assert loads[winner] < top


# --- source_salt: the salt of a client's placements ------------------------------------------


def test_source_salt_is_the_documented_hash() -> None:
    # docs/routing.md: stable_hash64(b"lb-source\x00" + source + b"\x00" + decimal(window));
    # written down once: a change means nodes of mixed versions would place differently
    data = b"lb-source\x00192.0.2.1\x00170000000"
    assert source_salt("192.0.2.1", 1_700_000_000.0, 10.0) == stable_hash64(data)
    assert source_salt("192.0.2.1", 1_700_000_000.0, 10.0) == 17807862189323528469


def test_source_salt_changes_with_the_window_and_the_source_only() -> None:
    salt = source_salt("10.0.0.1", 100.0, 10.0)
    assert source_salt("10.0.0.1", 109.999, 10.0) == salt
    assert source_salt("10.0.0.1", 110.0, 10.0) != salt
    assert source_salt("10.0.0.1", 99.999, 10.0) != salt
    assert source_salt("10.0.0.2", 100.0, 10.0) != salt
    assert source_salt("10.0.0.1", -5.0, 10.0) == source_salt("10.0.0.1", -0.5, 10.0)


def test_source_salt_of_a_non_finite_time_is_window_zero() -> None:
    zero = source_salt("a", 0.0, 10.0)
    for now in (float("nan"), float("inf"), float("-inf")):
        assert source_salt("a", now, 10.0) == zero
    with pytest.raises(ValueError):
        source_salt("a", 0.0, 0.0)
    assert source_salt("\udcff", 0.0, 1.0) == source_salt("\udcff", 0.5, 1.0)  # lone surrogate


@given(source=st.text(max_size=50), now=st.floats(allow_nan=False, allow_infinity=False))
@settings(max_examples=200)
def test_source_salt_feeds_pick_two(source: str, now: float) -> None:
    salt = source_salt(source, now, 10.0)
    assert 0 <= salt < 2**64
    i, j = pick_two(4, salt)
    assert i != j


# --- least_loaded_of_two_with_slack: a client's pair ---------------------------------------


def test_slack_defaults() -> None:
    assert (SOURCE_SLACK, SOURCE_SLACK_SHARE) == (16.0, 0.25)


def test_with_slack_the_second_wins_only_by_more_than_the_margin() -> None:
    for salt in SALTS[:300]:
        i, j = pick_two(2, salt)
        first, second = ["a", "b"][i], ["a", "b"][j]
        # within the absolute slack: the first drawn stays
        pair = ["a", "b"]
        assert least_loaded_of_two_with_slack(pair, {first: 16.0, second: 0.0}, salt) == first
        # beyond it: the second wins
        assert least_loaded_of_two_with_slack(pair, {first: 16.5, second: 0.0}, salt) == second
        # the relative slack rules large loads: 25% of 1000
        loads = {first: 1000.0, second: 760.0}
        assert least_loaded_of_two_with_slack(["a", "b"], loads, salt) == first
        loads = {first: 1000.0, second: 740.0}
        assert least_loaded_of_two_with_slack(["a", "b"], loads, salt) == second
        # never the more loaded
        assert least_loaded_of_two_with_slack(["a", "b"], {first: 0.0, second: 99.0}, salt) == first


def test_with_slack_nan_and_infinite_loads_lose() -> None:
    nan = float("nan")
    for salt in range(100):
        assert least_loaded_of_two_with_slack(["a", "b"], {"a": nan, "b": 1e12}, salt) == "b"
        assert least_loaded_of_two_with_slack(["a", "b"], {"b": float("inf")}, salt) == "a"
    both = {least_loaded_of_two_with_slack(["a", "b"], {"a": nan, "b": nan}, s) for s in range(50)}
    assert both == {"a", "b"}  # a tie of two unusable loads: the first drawn, as without slack


def test_with_slack_edge_cases() -> None:
    with pytest.raises(ValueError):
        least_loaded_of_two_with_slack([], {}, 1)
    assert least_loaded_of_two_with_slack(["x"], {"x": 1e9}, 1) == "x"


@given(
    loads=st.dictionaries(st.sampled_from("abcdef"), st.floats(0, 1e6, allow_nan=False)),
    salt=st.integers(),
)
@settings(max_examples=200)
def test_with_slack_spends_at_most_the_margin(loads: dict[str, float], salt: int) -> None:
    names = list("abcdef")
    won = least_loaded_of_two_with_slack(names, loads, salt)
    i, j = pick_two(len(names), salt)
    a, b = names[i], names[j]
    assert won in (a, b)
    other = b if won == a else a
    la, lo = loads.get(won, 0.0), loads.get(other, 0.0)
    margin = max(SOURCE_SLACK, SOURCE_SLACK_SHARE * loads.get(a, 0.0))
    assert la <= lo + margin  # the winner is never more loaded than the other by more
