"""Tests of lb.wire.http.parse_set_cookie: the Set-Cookie values the entry learns from."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lb.wire.http import parse_set_cookie

# -- parse_set_cookie -----------------------------------------------------------------


def test_parse_set_cookie_name_value_attributes() -> None:
    assert parse_set_cookie(" SID = a b ; Path=/x ; max-age=10; Secure; HttpOnly ;;") == (
        "SID",
        "a b",
        {"path": "/x", "max-age": "10", "secure": "", "httponly": ""},
    )


def test_parse_set_cookie_last_attribute_wins_and_value_may_hold_equals() -> None:
    assert parse_set_cookie("t=a=b==; Max-Age=1; MAX-AGE=2") == ("t", "a=b==", {"max-age": "2"})


@pytest.mark.parametrize(
    "value", ["", "novalue", "=v", "bad name=v", "a(b)=v", "x=\x01", "x=a\x7fb", ";x=1"]
)
def test_parse_set_cookie_rejects_unusable(value: str) -> None:
    assert parse_set_cookie(value) is None


@given(st.text(max_size=200))
@settings(max_examples=300)
def test_parse_set_cookie_never_raises(value: str) -> None:
    parsed = parse_set_cookie(value)
    if parsed is not None:
        name, cookie, attributes = parsed
        assert name and "=" not in name and ";" not in name and ";" not in cookie
        assert all(k == k.lower() for k in attributes)
