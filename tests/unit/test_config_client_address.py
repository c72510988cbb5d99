"""Config keys of the client's address: trusted_proxies, forwarded_headers,
app_proxy_protocol, accept_proxy_from (validated, listed by key)."""

from __future__ import annotations

from typing import Any

from tests.support.config_data import base, errors_of, message_for, parse


def with_tcp(**service: Any) -> dict[str, Any]:
    data = base()
    data["services"] = [{"name": "db", "protocol": "tcp", **service}]
    for i, node in enumerate(data["nodes"], start=1):
        node["listen"] = {"db": f"127.0.0.1:820{i}"}
        node["apps"] = {"db": f"127.0.0.1:920{i}"}
    return data


def test_defaults() -> None:
    cfg = parse(base())
    web = cfg.services["web"]
    assert cfg.trusted_proxies == ()
    assert web.forwarded_headers is True
    assert web.app_proxy_protocol == "off"
    assert web.accept_proxy_from == ()
    db = parse(with_tcp()).services["db"]
    assert db.app_proxy_protocol == "off" and db.accept_proxy_from == ()


def test_networks_are_canonical() -> None:
    data = base()
    data["farm"]["trusted_proxies"] = ["10.0.0.0/8", "2001:DB8::/32", "192.0.2.9"]
    data["services"][0]["accept_proxy_from"] = ["127.0.0.1", "::1"]
    data["services"][0]["forwarded_headers"] = False
    cfg = parse(data)
    assert cfg.trusted_proxies == ("10.0.0.0/8", "2001:db8::/32", "192.0.2.9/32")
    assert cfg.services["web"].accept_proxy_from == ("127.0.0.1/32", "::1/128")
    assert cfg.services["web"].forwarded_headers is False


def test_tcp_takes_proxy_protocol_v2() -> None:
    cfg = parse(with_tcp(app_proxy_protocol="v2", accept_proxy_from=["10.1.0.0/16"]))
    assert cfg.services["db"].app_proxy_protocol == "v2"
    assert cfg.services["db"].accept_proxy_from == ("10.1.0.0/16",)


def test_bad_values_are_listed_by_key() -> None:
    data = base()
    data["farm"]["trusted_proxies"] = ["10.0.0.0/8", "10.0.0.1/8", 7, "nope"]
    data["services"][0]["accept_proxy_from"] = "10.0.0.0/8"
    data["services"][0]["app_proxy_protocol"] = "v2"
    errors = errors_of(data)
    assert {k for k, _ in errors} == {
        "farm.trusted_proxies[1]",
        "farm.trusted_proxies[2]",
        "farm.trusted_proxies[3]",
        "services[0].accept_proxy_from",
        "services[0].app_proxy_protocol",
    }
    assert "host bits set" in message_for(errors, "farm.trusted_proxies[1]")
    assert "must be an array" in message_for(errors, "services[0].accept_proxy_from")
    assert "tcp or tls-passthrough" in message_for(errors, "services[0].app_proxy_protocol")


def test_keys_of_the_other_protocol_are_refused() -> None:
    errors = errors_of(with_tcp(forwarded_headers=True, app_proxy_protocol="v1"))
    assert "http or tls-terminate" in message_for(errors, "services[0].forwarded_headers")
    assert "'v1' is not one of: off, v2" in message_for(errors, "services[0].app_proxy_protocol")
