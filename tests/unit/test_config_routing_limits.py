"""Config: the routing limits app_down_rehome_after, placement_hold and placement_entries."""

from __future__ import annotations

from typing import Any

import pytest

from lb.config import Limits
from tests.support.config_data import base, errors_of, keys_of, parse


def test_defaults() -> None:
    limits = Limits()
    assert (limits.app_down_rehome_after, limits.placement_hold) == (30.0, 10.0)
    assert limits.placement_entries == 16384
    assert limits.membership_timing().app_down_rehome_after == 30.0


def test_from_the_file() -> None:
    data = base()
    data["limits"] = {"app_down_rehome_after": 5, "placement_hold": 2.5, "placement_entries": 0}
    limits = parse(data).limits
    assert (limits.app_down_rehome_after, limits.placement_hold) == (5.0, 2.5)
    assert limits.placement_entries == 0  # no memory: placement by address hash alone
    assert limits.membership_timing().app_down_rehome_after == 5.0


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("app_down_rehome_after", 0),
        ("app_down_rehome_after", 86400.5),
        ("app_down_rehome_after", float("inf")),
        ("app_down_rehome_after", "30"),
        ("placement_hold", 0.0),
        ("placement_hold", -1),
        ("placement_hold", 3600.5),
        ("placement_hold", float("nan")),
        ("placement_entries", -1),
        ("placement_entries", 10000001),
        ("placement_entries", 1.5),
        ("placement_entries", True),
    ],
)
def test_bad_values(key: str, value: Any) -> None:
    data = base()
    data["limits"] = {key: value}
    assert keys_of(data) == {f"limits.{key}"}
    assert errors_of(data)[0][1]
