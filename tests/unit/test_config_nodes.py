"""Config: [[nodes]] (names, addresses, binds, advertise, workers) and parse_address."""

from __future__ import annotations

import ipaddress
import os
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.config import Address, parse_address
from lb.config.cpus import read_usable_cpus
from tests.support.config_data import (
    base,
    errors_of,
    keys_of,
    message_for,
    parse,
)

# ---------------------------------------------------------------- workers


def test_workers_default_to_the_usable_cpus_and_are_bounded() -> None:
    usable = read_usable_cpus()
    assert [n.workers for n in parse(base()).nodes.values()] == [usable] * 3
    assert 1 <= usable <= (os.cpu_count() or 1)
    data = base()
    data["nodes"][0]["workers"] = 0
    data["nodes"][1]["workers"] = "many"
    data["nodes"][2]["workers"] = 2
    assert keys_of(data) == {"nodes[0].workers", "nodes[1].workers"}


# ---------------------------------------------------------------- names and binds


def test_duplicate_node_names() -> None:
    data = base()
    data["nodes"][2]["name"] = "a"
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"nodes[2].name"}
    assert "nodes[0]" in message_for(errors, "nodes[2].name")


@pytest.mark.parametrize("name", ["a.b", "", "x" * 65, "a b"])
def test_bad_node_name(name: str) -> None:
    data = base()
    data["nodes"][0]["name"] = name
    assert keys_of(data) == {"nodes[0].name"}


def test_node_missing_fields() -> None:
    data = base()
    data["nodes"][0] = {"name": "a"}
    assert keys_of(data) == {"nodes[0].forward", "nodes[0].listen", "nodes[0].apps"}


def test_duplicate_forward_addresses() -> None:
    data = base()
    data["nodes"][1]["forward"] = "127.0.0.1:7101"
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"nodes[1].forward"}
    assert "nodes[0].forward" in message_for(errors, "nodes[1].forward")


def test_duplicate_listen_on_loopback_across_nodes() -> None:
    data = base()
    data["nodes"][2]["listen"]["web"] = "127.0.0.1:8101"
    assert keys_of(data) == {"nodes[2].listen.web"}


def test_listen_on_another_nodes_forward() -> None:
    data = base()
    data["nodes"][1]["listen"]["web"] = "127.0.0.1:7101"
    assert keys_of(data) == {"nodes[1].listen.web"}


def test_duplicate_binds_within_one_node() -> None:
    data = base()
    data["nodes"][0]["listen"]["web"] = "127.0.0.1:7101"
    assert keys_of(data) == {"nodes[0].listen.web"}
    data = base()
    data["nodes"][0]["forward"] = "0.0.0.0:8101"
    assert keys_of(data) == {"nodes[0].listen.web"}


def test_separate_servers_may_share_a_public_listen_address() -> None:
    data = base()
    for i, node in enumerate(data["nodes"], start=1):
        node["forward"] = f"10.0.0.{i}:7100"
        node["listen"] = {"web": "0.0.0.0:80"}
        node["apps"] = {"web": "127.0.0.1:8080"}
    cfg = parse(data)
    assert {n.listen["web"] for n in cfg.nodes.values()} == {(Address("0.0.0.0", 80),)}


def test_app_must_not_point_at_lb() -> None:
    data = base()
    data["nodes"][0]["apps"]["web"] = "127.0.0.1:8101"
    data["nodes"][1]["apps"]["web"] = "127.0.0.1:7103"
    assert keys_of(data) == {"nodes[0].apps.web", "nodes[1].apps.web"}


@pytest.mark.parametrize(
    "text",
    [
        "",
        "127.0.0.1",
        "127.0.0.1:",
        ":80",
        "127.0.0.1:0",
        "127.0.0.1:65536",
        "127.0.0.1:\uff18\uff10",  # full-width digits
        "127.0.0.1:+80",
        "::1:80",
        "[::1]80",
        "[::1",
        "[nothex]:80",
        "[127.0.0.1]:80",
        "999.1.1.1:80",
        "bad_host:80",
        "-x:80",
    ],
)
def test_bad_addresses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)
    data = base()
    data["nodes"][0]["forward"] = text
    assert keys_of(data) == {"nodes[0].forward"}


def test_address_wrong_type() -> None:
    data = base()
    data["nodes"][0]["forward"] = 7101
    data["nodes"][1]["listen"] = "127.0.0.1:8102"
    assert keys_of(data) == {"nodes[0].forward", "nodes[1].listen"}


def test_address_forms() -> None:
    assert parse_address("127.0.0.1:80") == Address("127.0.0.1", 80)
    assert parse_address("[::0001]:443") == Address("::1", 443)
    assert parse_address("App.Example:8080") == Address("app.example", 8080)
    assert str(Address("::1", 80)) == "[::1]:80"
    assert str(Address("127.0.0.1", 80)) == "127.0.0.1:80"


@settings(max_examples=300)
@given(
    ip=st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)),
    port=st.integers(min_value=1, max_value=65535),
)
def test_address_round_trip(ip: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int) -> None:
    text = f"[{ip}]:{port}" if ip.version == 6 else f"{ip}:{port}"
    addr = parse_address(text)
    assert addr == Address(str(ip), port)
    assert str(addr) == text
    assert parse_address(str(addr)) == addr


@settings(max_examples=300)
@given(st.text(max_size=40))
def test_parse_address_raises_only_value_error(text: str) -> None:
    try:
        addr = parse_address(text)
    except ValueError:
        return
    assert 1 <= addr.port <= 65535
    assert parse_address(str(addr)) == addr


# ---------------------------------------------------------------- other nodes are named


def test_messages_name_the_other_node() -> None:
    data = base()
    data["nodes"][1]["forward"] = "127.0.0.1:7101"
    data["nodes"][2]["apps"]["web"] = "127.0.0.1:8101"
    errors = errors_of(data)
    assert message_for(errors, "nodes[1].forward") == (
        "127.0.0.1:7101 is already bound by node 'a' (nodes[0].forward)"
    )
    assert message_for(errors, "nodes[2].apps.web").startswith(
        "127.0.0.1:8101 is lb's own address, bound by node 'a' (nodes[0].listen.web)"
    )


def test_missing_service_address_names_the_node_and_service() -> None:
    data = base()
    data["services"].append({"name": "api", "protocol": "http"})
    data["nodes"][0]["listen"]["api"] = "127.0.0.1:8201"
    data["nodes"][0]["apps"]["api"] = "127.0.0.1:9201"
    data["nodes"][1]["listen"]["api"] = "127.0.0.1:8202"
    errors = errors_of(data)
    assert {k for k, _ in errors} == {
        "nodes[1].apps.api",
        "nodes[2].listen.api",
        "nodes[2].apps.api",
    }
    message = message_for(errors, "nodes[2].listen.api")
    assert "every node needs a client-facing listen address" in message
    assert "node 'c'" in message and "'api'" in message


# ---------------------------------------------------------------- advertise


def test_advertise_defaults_to_forward() -> None:
    cfg = parse(base())
    for node in cfg.nodes.values():
        assert node.advertise is None
        assert node.forward_advertised == node.forward


def test_nodes_behind_nat_bind_one_forward_and_advertise_their_own() -> None:
    data = base()
    for i, node in enumerate(data["nodes"], start=1):
        node["forward"] = "0.0.0.0:7100"
        node["advertise"] = f"lb-{i}.farm.internal:{7100 + i}"
        node["listen"] = {"web": "0.0.0.0:80"}
        node["apps"] = {"web": "10.1.0.1:8080"}
    cfg = parse(data)
    b = cfg.nodes["b"]
    assert b.forward == Address("0.0.0.0", 7100)
    assert b.advertise == b.forward_advertised == Address("lb-2.farm.internal", 7102)


def test_one_shared_forward_without_advertise_is_refused() -> None:
    data = base()
    for node in data["nodes"]:
        node["forward"] = "0.0.0.0:7100"
    assert keys_of(data) == {"nodes[1].forward", "nodes[2].forward"}


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        ("0.0.0.0:7100", "wildcard"),
        ("[::]:7100", "wildcard"),
        ("10.0.0.1", "host:port"),
        (7100, "must be a string host:port"),
    ],
)
def test_bad_advertise(value: Any, fragment: str) -> None:
    data = base()
    data["nodes"][0]["advertise"] = value
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"nodes[0].advertise"}
    assert fragment in message_for(errors, "nodes[0].advertise")


def test_advertised_addresses_are_distinct() -> None:
    data = base()
    data["nodes"][1]["advertise"] = "127.0.0.1:7101"  # node a's forward, advertised
    data["nodes"][2]["advertise"] = "10.0.0.9:7100"
    data["nodes"][0]["advertise"] = "10.0.0.9:7100"
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"nodes[1].advertise", "nodes[2].advertise"}
    assert message_for(errors, "nodes[2].advertise") == (
        "10.0.0.9:7100 is already the link address of node 'a' (nodes[0].advertise)"
    )
    assert message_for(errors, "nodes[1].advertise") == (
        "127.0.0.1:7101 is already bound by node 'a' (nodes[0].forward)"
    )


def test_app_must_not_point_at_an_advertised_address() -> None:
    data = base()
    data["nodes"][0]["advertise"] = "10.0.0.1:7100"
    data["nodes"][1]["apps"]["web"] = "10.0.0.1:7100"
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"nodes[1].apps.web"}
    assert "nodes[0].advertise" in message_for(errors, "nodes[1].apps.web")


def test_advertise_typo_is_suggested() -> None:
    data = base()
    data["nodes"][0]["advertize"] = "10.0.0.1:7100"
    assert message_for(errors_of(data), "nodes[0].advertize") == (
        "unknown key; did you mean 'advertise'?"
    )
