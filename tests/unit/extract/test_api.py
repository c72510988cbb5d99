"""Tests for lb.extract.api: the extractor context and identifiers."""

from __future__ import annotations

import pytest

from lb.extract import ExtractorContext, Identifier


def ident(n: int) -> Identifier:
    return Identifier("uri", f"/{n}", "hash")


def test_context_default_home_cookie_name() -> None:
    assert ExtractorContext().home_cookie_name == "lbhome"
    assert ExtractorContext("sid").home_cookie_name == "sid"


def test_identifier_is_hashable_and_immutable() -> None:
    assert {ident(1): 1}[Identifier("uri", "/1", "hash")] == 1
    with pytest.raises(AttributeError):
        ident(1).value = "/2"  # type: ignore[misc]
