"""Config: services.client_affinity (bool, default true), an error by key otherwise."""

from __future__ import annotations

from tests.support.config_data import base, keys_of, parse


def test_default_is_on_and_false_is_kept() -> None:
    assert parse(base()).services["web"].client_affinity is True
    data = base()
    data["services"][0]["client_affinity"] = False
    assert parse(data).services["web"].client_affinity is False


def test_a_non_boolean_is_an_error_by_key() -> None:
    data = base()
    data["services"][0]["client_affinity"] = "no"
    assert keys_of(data) == {"services[0].client_affinity"}
