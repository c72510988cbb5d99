"""The link key and AUTH proofs against the test vector of docs/protocol.md."""

from __future__ import annotations

from lb.link import Role, auth_mac, link_key

ROLE_INITIATOR = Role.INITIATOR
ROLE_RESPONDER = Role.RESPONDER

SECRET = b"correct horse battery staple"
NONCE_A = bytes(range(0x00, 0x10))
NONCE_B = bytes(range(0x10, 0x20))


def test_link_key_matches_the_spec_vector() -> None:
    assert link_key(SECRET).hex() == (
        "9be37f8064dcbb1e765d202409d91fc9a8191c7c398fa263c914f010b756b077"
    )


def test_auth_macs_match_the_spec_vector() -> None:
    key = link_key(SECRET)
    # node-a connected (initiator, nonce A) to node-b (responder, nonce B)
    assert auth_mac(key, ROLE_INITIATOR, NONCE_A, NONCE_B, "node-a", "node-b").hex() == (
        "d5b1f219a9d166998cc3bf841309cdcd2e5d31d5b60aa863ea72188a763c6fbc"
    )
    assert auth_mac(key, ROLE_RESPONDER, NONCE_A, NONCE_B, "node-a", "node-b").hex() == (
        "118ad8dbbb60fe9b40317d0908006077725ff97d1baf08f3de6ac218bff3f07e"
    )


def test_auth_mac_binds_role_both_names_and_both_nonces() -> None:
    key = link_key(SECRET)
    good = auth_mac(key, ROLE_INITIATOR, NONCE_A, NONCE_B, "node-a", "node-b")
    variants = [
        auth_mac(key, ROLE_RESPONDER, NONCE_A, NONCE_B, "node-a", "node-b"),  # other side
        auth_mac(key, ROLE_INITIATOR, NONCE_B, NONCE_A, "node-a", "node-b"),  # nonces swapped
        auth_mac(key, ROLE_INITIATOR, NONCE_A, NONCE_B, "node-b", "node-a"),  # names swapped
        auth_mac(key, ROLE_INITIATOR, NONCE_A, NONCE_B, "node-c", "node-b"),
        auth_mac(key, ROLE_INITIATOR, NONCE_A, NONCE_B, "node-a", "node-c"),
        # the name lengths are part of the message: moving a byte across the boundary differs
        auth_mac(key, ROLE_INITIATOR, NONCE_A, NONCE_B, "node-ab", "ode-b"),
        auth_mac(link_key(SECRET + b"!"), ROLE_INITIATOR, NONCE_A, NONCE_B, "node-a", "node-b"),
    ]
    assert good not in variants
    assert len(set(variants)) == len(variants)
