"""Config: a service's `listen` is one address or a list of them (IPv4 and IPv6 on one node).

A string keeps its meaning; a list gives the service a listener per address, the first
one its primary address (the home address of a flow's connection reference). Every
error names its key, with the index of the entry; the bind checks (within a node,
across nodes on one machine, an application pointing back at lb) see every address.
"""

from __future__ import annotations

from typing import Any

import pytest

from lb.config import Address
from tests.support.config_data import base, errors_of, keys_of, message_for, parse


def listen(data: dict[str, Any], node: int, value: Any, service: str = "web") -> dict[str, Any]:
    data["nodes"][node]["listen"][service] = value
    return data


def test_a_string_is_one_address() -> None:
    cfg = parse(base())
    assert cfg.nodes["a"].listen == {"web": (Address("127.0.0.1", 8101),)}


def test_a_list_gives_every_address_in_order() -> None:
    cfg = parse(listen(base(), 0, ["0.0.0.0:8101", "[::]:8101", "127.0.0.2:8111"]))
    assert cfg.nodes["a"].listen["web"] == (
        Address("0.0.0.0", 8101),
        Address("::", 8101),
        Address("127.0.0.2", 8111),
    )
    assert cfg.nodes["b"].listen["web"] == (Address("127.0.0.1", 8102),)


def test_a_list_of_one_is_the_string() -> None:
    assert parse(listen(base(), 0, ["127.0.0.1:8101"])) == parse(base())


def test_an_empty_list_is_an_error() -> None:
    errors = errors_of(listen(base(), 0, []))
    assert {k for k, _ in errors} == {"nodes[0].listen.web"}
    assert "at least one" in message_for(errors, "nodes[0].listen.web")


@pytest.mark.parametrize("value", [8101, {"host": "127.0.0.1"}, True, [["127.0.0.1:8101"]]])
def test_neither_a_string_nor_a_list_of_strings(value: Any) -> None:
    data = listen(base(), 0, value)
    want = "nodes[0].listen.web[0]" if isinstance(value, list) else "nodes[0].listen.web"
    errors = errors_of(data)
    assert {k for k, _ in errors} == {want}
    assert "host:port" in message_for(errors, want)


def test_every_bad_entry_is_named_by_its_index() -> None:
    data = listen(base(), 0, ["127.0.0.1:8101", "127.0.0.1", 8111, "[::1]:99999"])
    listen(data, 2, ["127.0.0.1:8103", "::1:8103"])
    errors = errors_of(data)
    assert {k for k, _ in errors} == {
        "nodes[0].listen.web[1]",
        "nodes[0].listen.web[2]",
        "nodes[0].listen.web[3]",
        "nodes[2].listen.web[1]",
    }
    assert "brackets" in message_for(errors, "nodes[2].listen.web[1]")


def test_a_duplicate_entry_is_an_error() -> None:
    data = listen(base(), 0, ["127.0.0.1:8101", "[::1]:8101", "[0:0::1]:8101"])
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"nodes[0].listen.web[2]"}
    message = message_for(errors, "nodes[0].listen.web[2]")
    assert "[::1]:8101" in message and "nodes[0].listen.web[1]" in message


def test_ipv4_and_ipv6_wildcards_share_a_port() -> None:
    """IPv6 sockets are IPv6-only: 0.0.0.0:P and [::]:P are two binds, not a conflict."""
    cfg = parse(listen(base(), 0, ["0.0.0.0:8101", "[::]:8101"]))
    assert [str(a) for a in cfg.nodes["a"].listen["web"]] == ["0.0.0.0:8101", "[::]:8101"]
    cfg = parse(listen(base(), 0, ["127.0.0.1:8101", "[::]:8101"]))
    assert len(cfg.nodes["a"].listen["web"]) == 2


@pytest.mark.parametrize(
    "addresses",
    [
        ["0.0.0.0:8101", "127.0.0.2:8101"],
        ["[::1]:8101", "[::]:8101"],
        ["localhost:8101", "[::]:8101"],  # a host name may resolve to either family
        ["0.0.0.0:8101", "localhost:8101"],
        # a host name may resolve to any address: the same one under another spelling
        ["127.0.0.1:8101", "localhost:8101"],
        ["localhost:8101", "[::1]:8101"],
        ["a.example:8101", "b.example:8101"],
        ["[::1]:8101", "[0:0::1]:8101"],  # one IPv6 address, two spellings
    ],
)
def test_a_wildcard_overlaps_its_own_family(addresses: list[str]) -> None:
    errors = errors_of(listen(base(), 0, addresses))
    assert {k for k, _ in errors} == {"nodes[0].listen.web[1]"}
    assert "nodes[0].listen.web[0]" in message_for(errors, "nodes[0].listen.web[1]")


def test_a_listed_address_conflicts_with_another_nodes() -> None:
    data = listen(base(), 1, ["[::1]:8102", "127.0.0.1:8101"])  # a's, on loopback
    listen(data, 2, ["[::1]:8103", "127.0.0.1:7101"])  # a's forward
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"nodes[1].listen.web[1]", "nodes[2].listen.web[1]"}
    assert "nodes[0].listen.web" in message_for(errors, "nodes[1].listen.web[1]")
    assert "nodes[0].forward" in message_for(errors, "nodes[2].listen.web[1]")


def test_another_nodes_listed_address_conflicts_with_this_one() -> None:
    data = listen(base(), 0, ["[::1]:8101", "127.0.0.1:8102"])  # b's listen, on loopback
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"nodes[1].listen.web"}
    assert "nodes[0].listen.web[1]" in message_for(errors, "nodes[1].listen.web")


def test_a_listed_address_conflicts_within_its_node() -> None:
    data = base()
    data["services"].append({"name": "db", "protocol": "tcp"})
    for i, node in enumerate(data["nodes"], start=1):
        node["apps"]["db"] = f"127.0.0.1:920{i}"
        node["listen"]["db"] = f"127.0.0.1:820{i}"
    listen(data, 0, ["[::1]:8201", "127.0.0.1:8201"], "db")
    listen(data, 0, ["127.0.0.1:8101", "127.0.0.1:8201"])  # web comes first: db[1] clashes
    listen(data, 1, ["127.0.0.1:8102", "127.0.0.1:7102"])  # b's own forward
    data["nodes"][2]["admin"] = "[::1]:8113"
    listen(data, 2, ["127.0.0.1:8103", "[::1]:8113"])  # c's own admin
    assert keys_of(data) == {
        "nodes[0].listen.db[1]",
        "nodes[1].listen.web[1]",
        "nodes[2].admin",
    }


def test_an_application_on_a_listed_address_is_refused() -> None:
    data = listen(base(), 0, ["127.0.0.1:8101", "[::1]:9101"])
    data["nodes"][0]["apps"]["web"] = "[::1]:9101"
    errors = errors_of(data)
    assert {k for k, _ in errors} == {"nodes[0].apps.web"}
    assert "nodes[0].listen.web[1]" in message_for(errors, "nodes[0].apps.web")


def test_every_problem_is_listed_at_once() -> None:
    data = listen(base(), 0, ["127.0.0.1:8101", "127.0.0.1:8101"])
    listen(data, 1, [])
    listen(data, 2, ["[::1]:8103", "nope"])
    data["nodes"][2]["listen"]["api"] = ["127.0.0.1:8123"]
    assert keys_of(data) == {
        "nodes[0].listen.web[1]",
        "nodes[1].listen.web",
        "nodes[2].listen.web[1]",
        "nodes[2].listen.api",
    }


@pytest.mark.parametrize(
    "value", ["[::ffff:127.0.0.1]:8101", ["[::1]:8101", "[::ffff:10.0.0.1]:8101"]]
)
def test_an_ipv4_mapped_address_is_refused(value: str | list[str]) -> None:
    """An IPv6-only socket cannot bind ::ffff:a.b.c.d (EINVAL at start): said at load."""
    key = "nodes[0].listen.web" + ("[1]" if isinstance(value, list) else "")
    errors = errors_of(listen(base(), 0, value))
    assert {k for k, _ in errors} == {key}
    assert "IPv4-mapped" in message_for(errors, key)
