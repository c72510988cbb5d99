"""lb.routing.keyring_slot: the keyring extractors check home cookies with, and its memory."""

from __future__ import annotations

import pytest

from lb.routing import keyring_slot
from lb.routing.cookie import CookieKeyring
from lb.routing.keyring_slot import KeyringSlot

SECRET = b"s3cret-of-the-farm-0123456789abcdef"
OTHER = b"another-secret-entirely-9876543210"
NOW = 1_700_000_000.0
EXPIRES = 1_700_003_600


def test_a_valid_value_names_its_node_before_and_after_it_is_remembered() -> None:
    keyring = CookieKeyring("prod", SECRET)
    slot = KeyringSlot(keyring)
    value = keyring.sign("web-01", EXPIRES)
    assert slot.verify(value, NOW) == "web-01"
    assert slot.verify(value, NOW + 1) == "web-01"  # from the slot's memory


def test_a_remembered_value_expires_as_the_keyring_says() -> None:
    keyring = CookieKeyring("prod", SECRET)
    slot = KeyringSlot(keyring)
    value = keyring.sign("web-01", EXPIRES)
    assert slot.verify(value, NOW) == "web-01"
    assert slot.verify(value, EXPIRES) is None
    assert slot.verify(value, EXPIRES + 10) is None
    assert keyring.verify(value, EXPIRES) is None  # the same answer


def test_a_new_keyring_forgets_what_the_old_one_verified() -> None:
    """A reload that drops a secret: its cookies are refused at once, although the slot
    had remembered them."""
    old = CookieKeyring("prod", OTHER)
    slot = KeyringSlot(CookieKeyring("prod", SECRET, previous=[OTHER]))
    value = old.sign("web-01", EXPIRES)
    assert slot.verify(value, NOW) == "web-01"
    slot.keyring = CookieKeyring("prod", SECRET)
    assert slot.verify(value, NOW) is None
    new_value = slot.keyring.sign("web-02", EXPIRES)
    assert slot.verify(new_value, NOW) == "web-02"


@pytest.mark.parametrize("value", [None, 7, b"1.a.b.c.d", "", "garbage", "1.x.web-01.9.mac"])
def test_anything_but_a_valid_value_is_none_and_never_raises(value: object) -> None:
    slot = KeyringSlot(CookieKeyring("prod", SECRET))
    assert slot.verify(value, NOW) is None


def test_a_tampered_value_is_refused_though_its_original_is_remembered() -> None:
    keyring = CookieKeyring("prod", SECRET)
    slot = KeyringSlot(keyring)
    value = keyring.sign("web-01", EXPIRES)
    assert slot.verify(value, NOW) == "web-01"
    tampered = value.replace("web-01", "web-02")
    assert slot.verify(tampered, NOW) is None


def test_the_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    keyring = CookieKeyring("prod", SECRET)
    slot = KeyringSlot(keyring)
    values = [keyring.sign(f"web-{i}", EXPIRES) for i in range(keyring_slot.MAX_REMEMBERED + 5)]
    for i, value in enumerate(values):
        assert slot.verify(value, NOW) == f"web-{i}"
    remembered = slot._verified
    assert 0 < len(remembered) <= keyring_slot.MAX_REMEMBERED
    assert all(slot.verify(value, NOW) == f"web-{i}" for i, value in enumerate(values))
