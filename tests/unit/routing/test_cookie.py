"""Tests of lb.routing.cookie: home cookie format, MAC, expiry, rotation, robustness."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.routing.cookie import (
    MAX_EXPIRES,
    CookieKeyring,
    set_cookie_header_value,
)

SECRET = b"s3cret-of-the-farm-0123456789abcdef"
OTHER = b"another-secret-entirely-9876543210"
NOW = 1_700_000_000.0
EXPIRES = 1_700_003_600

node_names = st.from_regex(r"\A[A-Za-z0-9_-]{1,64}\Z")
COOKIE_OCTETS = re.compile(r"[\x21\x23-\x2b\x2d-\x3a\x3c-\x5b\x5d-\x7e]+")


def spec_value(farm: str, secret: bytes, node: str, expires: int) -> str:
    """The cookie value computed from the byte-level spec in docs/routing.md."""
    key = hmac.new(secret, b"lb home cookie key v1", hashlib.sha256).digest()
    kid = hashlib.blake2b(key, digest_size=4, person=b"lb-home-kid-v1").hexdigest()
    msg = (
        b"lb-home-cookie\x00"
        + farm.encode()
        + b"\x00"
        + node.encode()
        + b"\x00"
        + str(expires).encode()
        + kid.encode()
    )
    tag = hmac.new(key, msg, hashlib.sha256).digest()[:16]
    mac = base64.urlsafe_b64encode(tag).decode().rstrip("=")
    return f"1.{kid}.{node}.{expires}.{mac}"


def test_value_matches_the_byte_level_spec() -> None:
    ring = CookieKeyring("prod", SECRET)
    value = ring.sign("web-01", EXPIRES)
    assert value == spec_value("prod", SECRET, "web-01", EXPIRES)
    assert value.startswith(f"1.{ring.key_id}.web-01.{EXPIRES}.")
    assert re.fullmatch(r"[0-9a-f]{8}", ring.key_id)


def test_worked_example_of_the_docs() -> None:
    # the known-answer vector printed in docs/routing.md
    ring = CookieKeyring("prod", b"example-secret")
    assert ring.key_id == "8b83b4fe"
    assert ring.sign("web-02", 1767225600) == "1.8b83b4fe.web-02.1767225600.uCWvxJWc1LD3UKGETcSotw"


@given(node=node_names, expires=st.integers(min_value=1, max_value=MAX_EXPIRES))
@settings(max_examples=300)
def test_round_trip(node: str, expires: int) -> None:
    ring = CookieKeyring("farm-\u00e9", SECRET)
    value = ring.sign(node, expires)
    assert len(value) <= 200
    assert COOKIE_OCTETS.fullmatch(value)
    assert ring.verify(value, expires - 1) == node
    assert ring.verify(value, expires - 0.5) == node
    assert CookieKeyring("farm-\u00e9", SECRET).verify(value, expires - 1) == node


def test_expired_is_none() -> None:
    ring = CookieKeyring("prod", SECRET)
    value = ring.sign("web-01", EXPIRES)
    assert ring.verify(value, EXPIRES - 0.5) == "web-01"
    assert ring.verify(value, EXPIRES) is None  # expires <= now
    assert ring.verify(value, EXPIRES + 1) is None
    assert ring.verify(value, float("nan")) is None
    assert ring.verify(ring.sign("web-01", 0), 0.0) is None


def test_every_single_char_change_is_rejected() -> None:
    ring = CookieKeyring("prod", SECRET)
    value = ring.sign("web-01", EXPIRES)
    alphabet = string.ascii_letters + string.digits + "-_.=+/ "
    for i, original in enumerate(value):
        for ch in alphabet:
            if ch != original:
                tampered = value[:i] + ch + value[i + 1 :]
                assert ring.verify(tampered, NOW) is None, tampered
        assert ring.verify(value[:i] + value[i + 1 :], NOW) is None
        assert ring.verify(value[:i] + "0" + value[i:], NOW) is None
    assert ring.verify(value + "A", NOW) is None
    assert ring.verify(value, NOW) == "web-01"


def test_tampered_fields_are_rejected() -> None:
    ring = CookieKeyring("prod", SECRET)
    value = ring.sign("web-01", EXPIRES)
    version, kid, node, expires, mac = value.split(".")
    other_mac = ring.sign("web-02", EXPIRES).split(".")[4]
    forged = [
        f"2.{kid}.{node}.{expires}.{mac}",
        f"1.{kid}.web-02.{expires}.{mac}",  # other node, old MAC
        f"1.{kid}.{node}.{int(expires) + 86400}.{mac}",  # longer life, old MAC
        f"1.{kid}.{node}.0{expires}.{mac}",  # non-canonical number
        f"1.{kid}.{node}.{expires}.{other_mac}",  # MAC of another cookie
        f"1.{kid}.{node}.{expires}.{mac}=",
        f"1.{kid}.{node}.{expires}.{mac}==",
        f"1.{kid.upper()}.{node}.{expires}.{mac}",
        f"1.00000000.{node}.{expires}.{mac}",
        f"1.{kid}.{node}.{expires}",
        f"1.{kid}.{node}.{expires}.{mac}.x",
        f"{version}.{kid}.{node}.{expires}.{mac[:-1]}",
    ]
    for bad in forged:
        assert ring.verify(bad, NOW) is None, bad


def test_other_farm_or_secret_is_rejected() -> None:
    value = CookieKeyring("prod", SECRET).sign("web-01", EXPIRES)
    assert CookieKeyring("staging", SECRET).verify(value, NOW) is None
    assert CookieKeyring("prod", OTHER).verify(value, NOW) is None


def test_rotation() -> None:
    old = CookieKeyring("prod", OTHER)
    new = CookieKeyring("prod", SECRET, previous=[OTHER])
    assert new.key_id != old.key_id
    assert new.key_id == CookieKeyring("prod", SECRET).key_id
    old_value = old.sign("web-01", EXPIRES)
    new_value = new.sign("web-02", EXPIRES)
    # old secret still verifies; new signs with its own key id only
    assert new.verify(old_value, NOW) == "web-01"
    assert new_value.split(".")[1] == new.key_id
    assert new.verify(new_value, NOW) == "web-02"
    # a node that no longer knows the old secret: unknown key id
    assert CookieKeyring("prod", SECRET).verify(old_value, NOW) is None
    # a node that does not know the new secret yet
    assert old.verify(new_value, NOW) is None
    assert new.key_ids == (new.key_id, old.key_id)


def test_previous_equal_to_current_is_harmless() -> None:
    ring = CookieKeyring("prod", SECRET, previous=[SECRET, OTHER, OTHER])
    assert len(ring.key_ids) == 2
    assert ring.verify(ring.sign("a", EXPIRES), NOW) == "a"


@pytest.mark.parametrize(
    "node", ["", "a" * 65, "web.01", "web 01", "wéb", "web\n", "a/b", "a=b", "a;b"]
)
def test_sign_rejects_bad_node_names(node: str) -> None:
    with pytest.raises(ValueError):
        CookieKeyring("prod", SECRET).sign(node, EXPIRES)


@pytest.mark.parametrize("expires", [-1, MAX_EXPIRES + 1, True, 1.5, "123"])
def test_sign_rejects_bad_expiry(expires: object) -> None:
    with pytest.raises(ValueError):
        CookieKeyring("prod", SECRET).sign("web-01", expires)  # type: ignore[arg-type]


@pytest.mark.parametrize("secret,previous", [(b"", ()), ("text", ()), (SECRET, [b""])])
def test_keyring_rejects_empty_or_non_bytes_secret(secret: object, previous: list[bytes]) -> None:
    with pytest.raises(ValueError):
        CookieKeyring("prod", secret, previous)  # type: ignore[arg-type]


def test_verify_rejects_overlong_and_non_str() -> None:
    ring = CookieKeyring("prod", SECRET)
    value = ring.sign("web-01", EXPIRES)
    assert ring.verify(value + "." * 300, NOW) is None
    assert ring.verify("1." * 1_000_000, NOW) is None
    for thing in (None, value.encode(), 42, [value]):
        assert ring.verify(thing, NOW) is None  # type: ignore[arg-type]


@given(st.text(max_size=250))
@settings(max_examples=400)
def test_garbage_text_never_raises(garbage: str) -> None:
    assert CookieKeyring("prod", SECRET).verify(garbage, NOW) is None


_RING = CookieKeyring("prod", SECRET)
_field = st.one_of(st.text(max_size=24), st.text(alphabet="0123456789abcdefAZ_-", max_size=24))


@given(
    version=st.sampled_from(["1", "2", "", "01"]),
    kid=st.one_of(st.just(_RING.key_id), _field),
    node=_field,
    expires=st.one_of(st.integers(min_value=-5, max_value=10**20).map(str), _field),
    mac=_field,
    extra=st.lists(_field, max_size=2),
)
@settings(max_examples=300)
def test_structured_garbage_never_raises(
    version: str, kid: str, node: str, expires: str, mac: str, extra: list[str]
) -> None:
    value = ".".join([version, kid, node, expires, mac, *extra])
    assert _RING.verify(value, NOW) is None


def test_set_cookie_header_value() -> None:
    assert (
        set_cookie_header_value("lbhome", "1.abc", max_age=3600, secure=False)
        == "lbhome=1.abc; Path=/; Max-Age=3600; HttpOnly; SameSite=Lax"
    )
    assert (
        set_cookie_header_value("lbhome", "v", max_age=0, secure=True)
        == "lbhome=v; Path=/; Max-Age=0; HttpOnly; SameSite=Lax; Secure"
    )


@pytest.mark.parametrize(
    "name,value,max_age",
    [
        ("lb home", "v", 1),
        ("", "v", 1),
        ("lb;home", "v", 1),
        ("lbhome", "a;b", 1),
        ("lbhome", "a b", 1),
        ("lbhome", 'a"b', 1),
        ("lbhome", "a\r\nSet-Cookie: x=y", 1),
        ("lbhome", "v", -1),
    ],
)
def test_set_cookie_header_value_rejects_unsafe(name: str, value: str, max_age: int) -> None:
    with pytest.raises(ValueError):
        set_cookie_header_value(name, value, max_age=max_age, secure=False)


def test_verified_cache_never_outlives_expiry_or_accepts_a_tampered_value() -> None:
    from lb.routing.cookie import VERIFIED_CACHE_SIZE, CookieKeyring

    ring = CookieKeyring("farm", b"k" * 32)
    value = ring.sign("node-a", 1000)
    assert ring.verify(value, 10.0) == "node-a"
    assert ring.verify(value, 999.0) == "node-a"  # from the cache
    assert ring.verify(value, 1000.0) is None  # expired, even though it was cached
    assert ring.verify(value, 10.0) == "node-a"  # verified afresh, not from a stale entry
    tampered = value[:-1] + ("A" if value[-1] != "A" else "B")
    assert ring.verify(tampered, 10.0) is None
    # bounded: many sessions never grow the cache past its size, and each still verifies
    values = [ring.sign(f"n{i}", 5000) for i in range(VERIFIED_CACHE_SIZE + 10)]
    assert all(ring.verify(v, 10.0) == f"n{i}" for i, v in enumerate(values))
    assert len(ring._verified) <= VERIFIED_CACHE_SIZE


def test_verify_until_names_the_node_and_the_expiry_as_verify_checks_them() -> None:
    ring = CookieKeyring("farm", SECRET)
    value = ring.sign("node-a", EXPIRES)
    assert ring.verify_until(value, NOW) == ("node-a", EXPIRES)
    assert ring.verify_until(value, NOW) == ("node-a", EXPIRES)  # from the cache
    assert ring.verify_until(value, float(EXPIRES)) is None  # expired
    assert ring.verify_until(value[:-1] + ("A" if value[-1] != "A" else "B"), NOW) is None
    assert ring.verify_until(CookieKeyring("farm", OTHER).sign("node-a", EXPIRES), NOW) is None
    assert ring.verify_until(None, NOW) is None  # type: ignore[arg-type]
