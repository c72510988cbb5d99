"""Config: the [limits] table (ranges, ordering, derived suspect_after) and membership timers."""

from __future__ import annotations

import copy
from dataclasses import fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.cluster.membership import Timing
from lb.config import Limits, parse_config
from lb.config.model import LIMIT_KEY, limit_keys
from lb.errors import ConfigError
from tests.support.config_data import (
    BASE,
    base,
    errors_of,
    keys_of,
    message_for,
    parse,
)

# ---------------------------------------------------------------- ranges


def errors(data: dict[str, Any], base_dir: Path) -> dict[str, str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, base_dir=base_dir)
    return dict(info.value.errors)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("head_bytes", 1023),
        ("head_bytes", 1048577),
        ("head_bytes", 2048.0),
        ("head_timeout", 0),
        ("head_timeout", 300.5),
        ("head_timeout", float("nan")),
        ("connect_timeout", -1),
        ("pending_timeout", "5"),
        ("idle_timeout", float("inf")),
        ("max_flows", 0),
        ("flow_window", 16383),
        ("flow_window", 16777217),
        ("max_connections", True),
        ("ping_interval", 0.0),
        ("dead_rehome_after", -1),
        ("dead_rehome_after", 86401),
    ],
)
def test_bad_limit(key: str, value: Any) -> None:
    data = base()
    data["limits"] = {key: value}
    assert keys_of(data) == {f"limits.{key}"}


def test_limit_bounds_accepted() -> None:
    data = base()
    data["limits"] = {"head_bytes": 1024, "flow_window": 16777216, "head_timeout": 300}
    limits = parse(data).limits
    assert (limits.head_bytes, limits.flow_window, limits.head_timeout) == (1024, 16777216, 300.0)


def test_dead_rehome_after_takes_zero_and_says_so_when_negative() -> None:
    data = base()
    data["limits"] = {"dead_rehome_after": 0}
    assert parse(data).limits.dead_rehome_after == 0.0
    data["limits"] = {"dead_rehome_after": 45}
    limits = parse(data).limits
    assert limits.membership_timing().dead_rehome_after == 45.0
    data["limits"] = {"dead_rehome_after": -0.5}
    assert message_for(errors_of(data), "limits.dead_rehome_after") == (
        "-0.5 seconds is out of range: must be >= 0 and <= 86400"
    )


def test_every_limit_field_is_a_checked_key_with_its_default() -> None:
    """The [limits] keys are read from the dataclass: one per field, same default."""
    keys = {k.name: k for k in limit_keys()}
    assert list(keys) == [f.name for f in fields(Limits)]
    for f in fields(Limits):
        assert f.metadata[LIMIT_KEY].doc, f"{f.name} has no meaning written next to it"
        if f.name != "suspect_after":  # derived when omitted
            assert keys[f.name].default == f.default
    assert parse(base()).limits == Limits()


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("head_bytes", "1023 is out of range 1024 .. 1048576"),
        ("idle_timeout", "86401 seconds is out of range: must be > 0 and <= 86400"),
        ("directory_entries", "15 is out of range 16 .. 10000000"),
        ("directory_ttl", "must be a number of seconds, not a string"),
    ],
)
def test_limit_messages_state_the_range(key: str, message: str) -> None:
    data = base()
    value = {"head_bytes": 1023, "idle_timeout": 86401, "directory_entries": 15}.get(key, "1h")
    data["limits"] = {key: value}
    assert message_for(errors_of(data), f"limits.{key}") == message


# ---------------------------------------------------------------- ordering


def test_dead_after_must_exceed_ping_interval() -> None:
    data = base()
    data["limits"] = {"ping_interval": 2, "dead_after": 2}
    assert "ping_interval" in message_for(errors_of(data), "limits.dead_after")
    data["limits"] = {"ping_interval": 2, "dead_after": 2.5}
    assert parse(data).limits.dead_after == 2.5


def test_dead_after_message_explains() -> None:
    data = base()
    data["limits"] = {"ping_interval": 2, "dead_after": 1.5, "suspect_after": 1.8}
    errors = errors_of(data)
    assert errors == [
        (
            "limits.dead_after",
            "must be greater than limits.ping_interval (2 s); "
            "a peer is declared dead only after several pings went unanswered",
        )
    ]  # suspect_after is not judged against bounds that are themselves out of order


@pytest.mark.parametrize(
    ("ping", "dead", "suspect"),
    [(0.5, 2.5, 1.0), (0.2, 1.0, 0.4), (1.0, 3.0, 2.0), (1.0, 1.5, 1.25)],
)
def test_suspect_after_is_derived_between_ping_and_dead(
    tmp_path: Path, ping: float, dead: float, suspect: float
) -> None:
    data = copy.deepcopy(BASE)
    data["limits"] = {"ping_interval": ping, "dead_after": dead}
    limits = parse_config(data, base_dir=tmp_path).limits
    assert limits.suspect_after == pytest.approx(suspect)
    assert ping < limits.suspect_after < dead


def test_suspect_after_outside_the_window_is_refused(tmp_path: Path) -> None:
    data = copy.deepcopy(BASE)
    data["limits"] = {"ping_interval": 0.5, "dead_after": 2.5, "suspect_after": 3.0}
    assert "between limits.ping_interval" in errors(data, tmp_path)["limits.suspect_after"]


def test_suspect_after_message_states_the_window(tmp_path: Path) -> None:
    data = base()
    data["limits"] = {"ping_interval": 0.5, "dead_after": 2.5, "suspect_after": 0.5}
    assert errors(data, tmp_path)["limits.suspect_after"] == (
        "must lie between limits.ping_interval (0.5 s) and limits.dead_after (2.5 s)"
    )


# ---------------------------------------------------------------- membership timers


def test_membership_timing_from_default_limits() -> None:
    assert Limits().membership_timing() == Timing(
        ping_interval=0.5,
        suspect_after=1.0,
        dead_after=2.5,
        probe_interval=0.5,
        recheck_interval=2.5,
    )


def test_membership_timing_from_the_file() -> None:
    data = base()
    data["limits"] = {"ping_interval": 2, "dead_after": 3, "suspect_after": 2.5}
    timing = parse(data).limits.membership_timing()
    assert (timing.ping_interval, timing.suspect_after, timing.dead_after) == (2.0, 2.5, 3.0)
    assert timing.probe_interval == 2.0
    assert timing.recheck_interval == 4.0  # twice the ping interval, more than dead_after


@settings(max_examples=200, deadline=None)
@given(
    ping=st.floats(min_value=0.001, max_value=60.0),
    dead=st.floats(min_value=0.001, max_value=600.0),
    suspect=st.one_of(st.none(), st.floats(min_value=0.001, max_value=600.0)),
)
def test_every_accepted_limits_make_valid_timers(
    ping: float, dead: float, suspect: float | None
) -> None:
    """Whatever [limits] the file accepts, the membership timers can be built from it."""
    data = base()
    data["limits"] = {"ping_interval": ping, "dead_after": dead}
    if suspect is not None:
        data["limits"]["suspect_after"] = suspect
    try:
        limits = parse(data).limits
    except ConfigError as exc:
        assert {k for k, _ in exc.errors} <= {"limits.dead_after", "limits.suspect_after"}
        assert dead <= ping or suspect is not None
        return
    timing = limits.membership_timing()
    assert timing.ping_interval < timing.suspect_after < timing.dead_after
