"""Learned sessions are named by keyed hashes: no session token in a dump, a log line
or a capture of the links.

The application hands out its own session cookie; the home learns it and every
node's directory holds it. The cookie's value (a session token) must not appear
in any node's SIGUSR1 dump or log, only its keyed hash.
"""

from __future__ import annotations

import http.client
from collections.abc import Callable

import pytest

from tests.support.capture import LoopbackCapture, can_capture
from tests.support.farm import Farm
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

CHAIN = '[ { kind = "cookie", name = "sid" }, { kind = "home-cookie" } ]'


def new_session(farm: Farm, entry: str) -> str:
    conn = http.client.HTTPConnection(*farm.addr(entry), timeout=10)
    try:
        conn.request("GET", "/")
        resp = conn.getresponse()
        resp.read()
        cookie = next(
            v.split(";")[0]
            for k, v in resp.getheaders()
            if k.lower() == "set-cookie" and "sid=" in v
        )
        return cookie.split("=", 1)[1]
    finally:
        conn.close()


def test_no_session_token_in_dumps_or_logs(make_farm: Callable[..., Farm]) -> None:
    farm = make_farm(services={"web": ("http", CHAIN)}, log_level="debug")
    tokens = [new_session(farm, entry) for entry in ("a", "b", "c")]
    assert all(len(t) >= 8 for t in tokens), tokens
    # every node learned every session (its directory grew), then dumps its tables
    eventually(
        lambda: all(farm.tables(n)["directory"] >= len(tokens) for n in farm.nodes),
        timeout=5.0,
        what="every node's directory holds the learned sessions",
    )
    for n in farm.nodes:
        sample = farm.tables(n)["directory_sample"]
        assert len(sample) >= len(tokens)
        assert all(key.startswith("cookie:") for key in sample), sample
    for n in farm.nodes:
        text = farm.logs(n)
        for token in tokens:
            assert token not in text, f"node {n} wrote a session token in its log"


@pytest.mark.skipif(not can_capture(), reason="a packet capture needs root and AF_PACKET")
def test_no_session_token_in_a_capture_of_the_links(make_farm: Callable[..., Farm]) -> None:
    """What a tap on the links sees while sessions are learned and replicated: mutual
    TLS records (the default link security), never a session token."""
    farm = make_farm(services={"web": ("http", CHAIN)})
    link_ports = {farm.ports[n].forward for n in farm.nodes}
    before = {n: farm.tables(n)["directory"] for n in farm.nodes}
    with LoopbackCapture(link_ports) as capture:
        tokens = [new_session(farm, entry) for entry in ("a", "b", "c", "a", "b", "c")]
        eventually(
            lambda: all(farm.tables(n)["directory"] >= before[n] + len(tokens) for n in farm.nodes),
            timeout=5.0,
            what="every node's directory holds the sessions learned during the capture",
        )
    seen = bytes(capture.payload)
    # the capture saw the links: TLS 1.2-framed application data records (TLS 1.3)
    assert capture.packets > 0 and b"\x17\x03\x03" in seen, (capture.packets, len(seen))
    for token in tokens:
        assert token.encode() not in seen, "a session token crossed a link in clear"
