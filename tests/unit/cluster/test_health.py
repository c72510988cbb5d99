"""lb.cluster.health: rise/fall counting of application checks."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lb.cluster.health import AppHealth


def test_down_after_fall_failures_in_a_row_up_after_rise_passes() -> None:
    h = AppHealth(rise=2, fall=3)
    assert h.up
    assert [h.observe(False), h.observe(False)] == [None, None]
    assert h.observe(False) is False and not h.up
    assert h.observe(False) is None  # already down: no new transition
    assert h.observe(True) is None and not h.up
    assert h.observe(True) is True and h.up


def test_a_pass_resets_the_failures_and_a_failure_resets_the_passes() -> None:
    h = AppHealth(rise=2, fall=2)
    assert h.observe(False) is None
    assert h.observe(True) is None  # reset
    assert h.observe(False) is None and h.up
    assert h.observe(False) is False
    assert h.observe(True) is None
    assert h.observe(False) is None  # reset of the passes
    assert h.observe(True) is None and not h.up
    assert h.observe(True) is True


@pytest.mark.parametrize(("rise", "fall"), [(0, 1), (1, 0), (-1, 3)])
def test_bad_counts_are_refused(rise: int, fall: int) -> None:
    with pytest.raises(ValueError):
        AppHealth(rise, fall)


@given(
    st.integers(1, 5),
    st.integers(1, 5),
    st.lists(st.booleans(), max_size=60),
)
def test_matches_a_simple_model(rise: int, fall: int, results: list[bool]) -> None:
    h = AppHealth(rise, fall)
    up, run = True, 0
    for ok in results:
        change = h.observe(ok)
        if up:
            run = run + 1 if not ok else 0
            if run >= fall:
                up, run = False, 0
                assert change is False
            else:
                assert change is None
        else:
            run = run + 1 if ok else 0
            if run >= rise:
                up, run = True, 0
                assert change is True
            else:
                assert change is None
        assert h.up == up
