"""A valid 3-node farm as parsed TOML, and the helpers the config tests share."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from lb.config import FarmConfig, parse_config
from lb.errors import ConfigError

SECRET = "s" * 40

BASE: dict[str, Any] = {
    "farm": {"name": "f1", "secret": SECRET, "link_security": "plaintext"},
    "services": [{"name": "web", "protocol": "http"}],
    "nodes": [
        {
            "name": n,
            "forward": f"127.0.0.1:710{i}",
            "listen": {"web": f"127.0.0.1:810{i}"},
            "apps": {"web": f"127.0.0.1:910{i}"},
        }
        for i, n in enumerate(["a", "b", "c"], start=1)
    ],
}


def base() -> dict[str, Any]:
    """A fresh copy of BASE to change."""
    return copy.deepcopy(BASE)


def parse(data: dict[str, Any], tmp: Path | None = None) -> FarmConfig:
    return parse_config(data, base_dir=tmp or Path("."))


def errors_of(data: dict[str, Any], tmp: Path | None = None) -> list[tuple[str, str]]:
    with pytest.raises(ConfigError) as info:
        parse(data, tmp)
    assert info.value.errors, "a ConfigError must list at least one error"
    return info.value.errors


def keys_of(data: dict[str, Any]) -> set[str]:
    return {key for key, _ in errors_of(data)}


def message_for(errors: list[tuple[str, str]], key: str) -> str:
    found = [m for k, m in errors if k == key]
    assert found, f"no error for {key!r} in {errors!r}"
    return found[0]
