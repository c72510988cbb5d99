"""The link authentication MACs and the connection reference, checked against docs/protocol.md."""

from __future__ import annotations

import pytest

from lb.config import Address
from lb.node.link import auth_mac, link_key
from lb.node.node import make_conn_ref

SECRET = b"correct horse battery staple"
NONCE_A = bytes(range(0x00, 0x10))
NONCE_B = bytes(range(0x10, 0x20))


def test_link_key_matches_the_spec_vector() -> None:
    assert link_key(SECRET).hex() == (
        "9be37f8064dcbb1e765d202409d91fc9a8191c7c398fa263c914f010b756b077"
    )


def test_auth_macs_match_the_spec_vector() -> None:
    key = link_key(SECRET)
    # each side MACs (peer nonce, own nonce, own name)
    assert auth_mac(key, NONCE_B, NONCE_A, "node-a").hex() == (
        "98b4ff7d0798229992070c52e34dd2287e1ec20a641f7aec1ccb5e5f1796b5ab"
    )
    assert auth_mac(key, NONCE_A, NONCE_B, "node-b").hex() == (
        "ae1ace9ea7fd02163acacd25585a3e325ff6de8fdb495a580f6f74255a4e641c"
    )


def test_auth_mac_binds_name_and_both_nonces() -> None:
    key = link_key(SECRET)
    good = auth_mac(key, NONCE_B, NONCE_A, "node-a")
    assert auth_mac(key, NONCE_B, NONCE_A, "node-c") != good
    assert auth_mac(key, NONCE_A, NONCE_B, "node-a") != good
    assert auth_mac(link_key(SECRET + b"!"), NONCE_B, NONCE_A, "node-a") != good


@pytest.mark.parametrize(
    ("client", "home", "expected"),
    [
        (("10.0.0.7", 5555), Address("10.0.0.2", 80), ("10.0.0.7", "10.0.0.2")),
        (("2001:db8::7", 5555), Address("2001:db8::2", 80), ("2001:db8::7", "2001:db8::2")),
        # mixed families: the IPv4 side is mapped into IPv6 so both share one family
        (("2001:db8::7", 5555), Address("10.0.0.2", 80), ("2001:db8::7", "::ffff:10.0.0.2")),
        (("10.0.0.7", 5555), Address("2001:db8::2", 80), ("::ffff:10.0.0.7", "2001:db8::2")),
        # a host name as listen address: the unspecified address of the client's family
        (("10.0.0.7", 5555), Address("web.internal", 80), ("10.0.0.7", "0.0.0.0")),
    ],
)
def test_conn_ref_keeps_one_family(
    client: tuple[str, int], home: Address, expected: tuple[str, str]
) -> None:
    ref = make_conn_ref(client, home, "web")
    assert (ref.client_ip, ref.home_ip) == expected
    assert (ref.client_port, ref.home_port, ref.service) == (5555, 80, "web")
