"""The admin listener keys of [[nodes]]: admin, admin_token, admin_token_file."""

from __future__ import annotations

from pathlib import Path

from lb.config.model import Address
from tests.support.config_data import base, errors_of, message_for, parse

TOKEN = "t0ken-0123456789abcdef"


def test_admin_is_off_by_default() -> None:
    config = parse(base())
    assert all(n.admin is None and n.admin_token is None for n in config.nodes.values())


def test_loopback_admin_needs_no_token() -> None:
    data = base()
    data["nodes"][0]["admin"] = "127.0.0.1:9100"
    node = parse(data).nodes["a"]
    assert node.admin == Address("127.0.0.1", 9100)
    assert node.admin_token is None


def test_admin_off_loopback_requires_a_token() -> None:
    data = base()
    data["nodes"][1]["admin"] = "0.0.0.0:9100"
    message = message_for(errors_of(data), "nodes[1].admin_token")
    assert "not on loopback" in message
    data["nodes"][1]["admin_token"] = TOKEN
    assert parse(data).nodes["b"].admin_token == TOKEN


def test_token_from_a_file(tmp_path: Path) -> None:
    (tmp_path / "admin.token").write_text(TOKEN + "\n")
    data = base()
    data["nodes"][0]["admin"] = "10.0.0.1:9100"
    data["nodes"][0]["admin_token_file"] = "admin.token"
    assert parse(data, tmp_path).nodes["a"].admin_token == TOKEN


def test_every_admin_error_is_listed_by_key(tmp_path: Path) -> None:
    data = base()
    data["nodes"][0]["admin"] = "10.0.0.1:9100"  # no token
    data["nodes"][1]["admin"] = "127.0.0.1:9101"
    data["nodes"][1]["admin_token"] = "short"
    data["nodes"][2]["admin"] = "127.0.0.1:9102"
    data["nodes"][2]["admin_token"] = TOKEN
    data["nodes"][2]["admin_token_file"] = "missing"
    errors = errors_of(data, tmp_path)
    keys = {k for k, _ in errors}
    assert {"nodes[0].admin_token", "nodes[1].admin_token", "nodes[2].admin_token"} <= keys
    assert "at least 16" in message_for(errors, "nodes[1].admin_token")
    assert "not both" in message_for(errors, "nodes[2].admin_token")


def test_unreadable_token_file(tmp_path: Path) -> None:
    data = base()
    data["nodes"][0]["admin"] = "127.0.0.1:9100"
    data["nodes"][0]["admin_token_file"] = "nope"
    assert "cannot read" in message_for(errors_of(data, tmp_path), "nodes[0].admin_token_file")


def test_admin_address_must_not_clash_with_the_nodes_binds() -> None:
    data = base()
    data["nodes"][0]["admin"] = data["nodes"][0]["forward"]
    assert "already bound" in message_for(errors_of(data), "nodes[0].admin")
    data = base()
    data["nodes"][0]["admin"] = "127.0.0.1:9100"
    data["nodes"][1]["admin"] = "127.0.0.1:9100"  # two nodes of one machine, one port
    assert "already bound" in message_for(errors_of(data), "nodes[1].admin")


def test_token_is_not_in_the_repr() -> None:
    data = base()
    data["nodes"][0]["admin"] = "127.0.0.1:9100"
    data["nodes"][0]["admin_token"] = TOKEN
    assert TOKEN not in repr(parse(data).nodes["a"])
