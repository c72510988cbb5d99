"""Boundary tests of lb.routing.cookie: the limits of docs/routing.md at and around the edge.

Complements test_cookie.py with the exact edges (expiry equal to now, the largest
expiry, the longest node name, canonical expiry digits carried by a correct MAC), the
cases a mutation run (scripts/mutation.py) showed uncovered. A value whose MAC is right
but whose fields break a rule is built here from the byte-level spec, so each rule is
seen to reject on its own, not because the MAC fails.
"""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest

from lb.routing.cookie import CookieKeyring, set_cookie_header_value

MAX_EXPIRES = 10**15 - 1  # docs/routing.md: 1 to 15 decimal digits (not imported on purpose)
SECRET = b"bounds-secret-0123456789"
FARM = "prod"


def forged(node: str, expires: str, secret: bytes = SECRET, version: str = "1") -> str:
    """A value with the right MAC for any ``expires`` text (docs/routing.md, Keys and MAC)."""
    key = hmac.new(secret, b"lb home cookie key v1", hashlib.sha256).digest()
    kid = hashlib.blake2b(key, digest_size=4, person=b"lb-home-kid-v1").hexdigest()
    msg = b"lb-home-cookie\x00" + FARM.encode() + b"\x00" + f"{node}\x00{expires}{kid}".encode()
    tag = hmac.new(key, msg, hashlib.sha256).digest()[:16]
    mac = base64.urlsafe_b64encode(tag).decode().rstrip("=")
    return f"{version}.{kid}.{node}.{expires}.{mac}"


def test_expiry_is_exclusive_on_both_paths() -> None:
    ring = CookieKeyring(FARM, SECRET)
    value = ring.sign("n", 100)
    assert ring.verify(value, 100) is None  # fresh verification
    assert ring.verify(value, 99.5) == "n"
    assert ring.verify(value, 100) is None  # the cached entry expires at the same instant
    assert ring.verify(value, 99) == "n"


def test_largest_and_smallest_expiry() -> None:
    ring = CookieKeyring(FARM, SECRET)
    top = ring.sign("n", MAX_EXPIRES)
    assert top.split(".")[3] == "9" * 15
    assert top == forged("n", str(MAX_EXPIRES))
    assert ring.verify(top, MAX_EXPIRES - 1) == "n"
    zero = ring.sign("n", 0)
    assert zero == forged("n", "0")
    assert ring.verify(zero, -1) == "n"  # "0" alone is canonical
    for bad in (MAX_EXPIRES + 1, -1):
        with pytest.raises(ValueError):
            ring.sign("n", bad)


@pytest.mark.parametrize("expires", ["1" + "0" * 15, "01", "00", "0100", "+5", "-5", "1e3"])
def test_non_canonical_expiry_is_rejected_even_with_a_correct_mac(expires: str) -> None:
    ring = CookieKeyring(FARM, SECRET)
    assert ring.verify(forged("n", expires), -10.0) is None


def test_the_longest_value_verifies() -> None:
    ring = CookieKeyring(FARM, SECRET)
    node = "N" * 64
    value = ring.sign(node, MAX_EXPIRES)
    assert len(value) == 114  # the longest value the spec allows
    assert ring.verify(value, 0) == node
    with pytest.raises(ValueError):
        ring.sign(node + "N", 5)
    assert ring.verify(forged(node + "N", "5"), 0) is None


def test_version_and_field_count() -> None:
    ring = CookieKeyring(FARM, SECRET)
    assert ring.verify(forged("n", "5"), 0) == "n"
    assert ring.verify(forged("n", "5", version="2"), 0) is None
    assert ring.verify(forged("n", "5") + ".x", 0) is None
    assert ring.verify(forged("n", "5").replace(".", "", 1), 0) is None


def test_max_age_limits_of_the_header_value() -> None:
    assert "Max-Age=0;" in set_cookie_header_value("lbhome", "v", max_age=0, secure=False)
    with pytest.raises(ValueError):
        set_cookie_header_value("lbhome", "v", max_age=-1, secure=False)
    assert set_cookie_header_value("a", "v", max_age=1, secure=True).endswith("; Secure")
    assert not set_cookie_header_value("a", "v", max_age=1, secure=False).endswith("Secure")
