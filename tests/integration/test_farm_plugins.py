"""Extractor plugins in a real farm: an installed plugin whose extractor raises does not take
a node down (tests/support/plugins/lb-test-raising provides the "test-raise" kind)."""

from __future__ import annotations

import http.client
import json
from collections.abc import Callable

import pytest

from tests.support.farm import Farm

pytestmark = pytest.mark.integration


def get(farm: Farm, entry: str, cookie: str) -> tuple[int, dict[str, object]]:
    """(status, JSON body) of one GET / through `entry`."""
    host, port = farm.addr(entry)
    conn = http.client.HTTPConnection(host, port, timeout=10)
    try:
        conn.request("GET", "/", headers={"Cookie": cookie})
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read())
    finally:
        conn.close()


def test_a_plugin_that_raises_does_not_take_the_node_down(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm(
        services={"web": ("http", '[ { kind = "test-raise" }, { kind = "home-cookie" } ]')},
    )
    for entry in ("a", "b", "c", "a"):
        status, body = get(farm, entry, farm.cookie_header("b"))
        # the raising extractor counts as no match; the next one (home cookie) decides
        assert (status, body["node"]) == (200, "b")
    tables = farm.tables("a")
    assert tables["counters"]["extractor_failures"] >= 2
    assert any(e.get("extractor") == "test-raise" for e in farm.events("a", "extractor_failed"))
    assert not farm.unexpected_exits()
