"""Config: [log] access_log ("on" / "off") and access_log_sample (0.0 .. 1.0), errors by key."""

from __future__ import annotations

from typing import Any

import pytest

from tests.support.config_data import base, errors_of, keys_of, message_for, parse


def test_defaults_log_every_request() -> None:
    cfg = parse(base())
    assert (cfg.access_log, cfg.access_log_sample) == (True, 1.0)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({"access_log": "off"}, (False, 1.0)),
        ({"access_log": "on", "access_log_sample": 0.25}, (True, 0.25)),
        ({"access_log_sample": 0}, (True, 0.0)),
        ({"access_log_sample": 1}, (True, 1.0)),
    ],
)
def test_valid_values(table: dict[str, Any], expected: tuple[bool, float]) -> None:
    data = base()
    data["log"] = table
    cfg = parse(data)
    assert (cfg.access_log, cfg.access_log_sample) == expected
    assert isinstance(cfg.access_log_sample, float)


@pytest.mark.parametrize(
    ("key", "value", "words"),
    [
        ("access_log", True, "must be a string"),
        ("access_log", False, 'one of: "on", "off" (in quotes), not a boolean'),
        ("access_log", "yes", "not one of: on, off"),
        ("access_log_sample", 1.5, "out of range 0.0 .. 1.0"),
        ("access_log_sample", -0.1, "out of range 0.0 .. 1.0"),
        ("access_log_sample", float("nan"), "out of range 0.0 .. 1.0"),
        ("access_log_sample", "0.5", "must be a number"),
        ("access_log_sample", True, "must be a number"),
    ],
)
def test_bad_values_are_errors_by_key(key: str, value: Any, words: str) -> None:
    data = base()
    data["log"] = {key: value}
    assert keys_of(data) == {f"log.{key}"}
    assert words in message_for(errors_of(data), f"log.{key}")


def test_both_bad_values_are_reported_together() -> None:
    data = base()
    data["log"] = {"access_log": "sometimes", "access_log_sample": 2}
    assert keys_of(data) == {"log.access_log", "log.access_log_sample"}
