"""What a reload reports as waiting for a restart (lb.node.reload.restart_keys)."""

from __future__ import annotations

import copy
import tomllib
from pathlib import Path
from typing import Any

from lb.config import FarmConfig, parse_config, select_node
from lb.node.reload import restart_keys

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "tcp-farm.toml"


def farm(change: Any = None) -> FarmConfig:
    data = tomllib.loads(EXAMPLE.read_text())
    if change is not None:
        data = copy.deepcopy(data)
        change(data)
    return parse_config(data, base_dir=EXAMPLE.parent)


def keys(change: Any) -> list[str]:
    old, new = farm(), farm(change)
    return restart_keys(old, new, select_node(old, "a"), select_node(new, "a"))


def test_the_same_file_waits_for_nothing() -> None:
    assert keys(lambda d: None) == []


def test_each_changed_key_is_named() -> None:
    def change(d: dict[str, Any]) -> None:
        d["limits"] = {"head_timeout": 3.0, "drain_timeout": 7.0}
        d["services"][0]["extractors"] = [{"kind": "client-ip"}, {"kind": "client-ip"}]
        d["services"].append(
            {"name": "more", "protocol": "tcp", "extractors": [{"kind": "client-ip"}]}
        )
        for node in d["nodes"]:
            port = 8300 + ord(node["name"]) - ord("a")
            node["listen"]["more"] = f"127.0.0.1:{port}"
            node["apps"]["more"] = f"127.0.0.1:{port + 100}"

    assert keys(change) == [
        "services.echo",
        "services.more",
        "limits.head_timeout",  # in the order of the farm file's reference
        "limits.drain_timeout",
        "nodes.a.listen",
        "nodes.a.apps",
    ]


def test_another_nodes_addresses_are_not_this_nodes_restart() -> None:
    def change(d: dict[str, Any]) -> None:
        d["nodes"][1]["forward"] = "127.0.0.1:7299"

    assert keys(change) == []


def test_a_change_of_a_services_addresses_is_named() -> None:
    def more(d: dict[str, Any]) -> None:
        d["nodes"][0]["listen"]["echo"] = ["127.0.0.1:8201", "[::1]:8201"]

    def reordered(d: dict[str, Any]) -> None:
        d["nodes"][0]["listen"]["echo"] = ["[::1]:8201", "127.0.0.1:8201"]

    old = farm(more)
    for change in (reordered, lambda d: None):  # a new primary; back to one address
        new = farm(change)
        assert restart_keys(old, new, select_node(old, "a"), select_node(new, "a")) == [
            "nodes.a.listen"
        ]


def test_one_address_as_a_list_is_no_change() -> None:
    def listed(d: dict[str, Any]) -> None:
        d["nodes"][0]["listen"]["echo"] = ["127.0.0.1:8201"]

    assert keys(listed) == []
