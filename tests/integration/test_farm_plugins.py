"""Extractor plugins in a real farm: an installed plugin whose extractor raises does not take
a node down, and one that blocks its worker does not make it suspect its peers
(tests/support/plugins/lb-test-raising provides the "test-raise" and "test-stall" kinds)."""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable

import pytest

from tests.support.farm import Farm
from tests.support.wait import eventually_passes

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
    assert any(
        e.get("extractor") == "test-raise" and e.get("node") == "a" and e.get("reason") is None
        for e in farm.events("a", "extractor_failed")
    )
    assert not farm.unexpected_exits()


def test_a_plugin_answer_of_the_wrong_type_is_logged_with_what_it_was(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm(
        services={
            "web": ("http", '[ { kind = "test-raise", answer = "b" }, { kind = "home-cookie" } ]')
        },
    )
    status, body = get(farm, "a", farm.cookie_header("c"))
    assert (status, body["node"]) == (200, "c")  # no match: the home cookie decides

    def logged() -> None:
        events = farm.events("a", "extractor_failed")
        assert events
        for event in events:  # one a second at most: the farm's start probes may log one
            assert event["node"] == "a"
            assert event["error"] == "ExtractorAnswerError"
            assert event["reason"] == (
                "extractor 'test-raise' returned str, not an Identifier or a Verdict"
            )

    eventually_passes(logged, timeout=10, what="the wrong answer is logged")
    assert not farm.unexpected_exits()


def test_a_worker_busy_past_its_peers_deadline_does_not_suspect_them(
    make_farm: Callable[..., Farm],
) -> None:
    """A plugin that blocks its worker (a synchronous look-up) for longer than
    suspect_after (0.4 s in test farms; 0.7 s here, below dead_after) stops the whole
    process: its peers rightly suspect it, since it answered nothing. But what they sent
    meanwhile waits unread in its sockets, and a node that judged silence before
    reading it would suspect every peer at once, stop placing new sessions on them, and
    send its workers' views apart. It must read first."""
    farm = make_farm(
        services={
            "web": (
                "http",
                '[ { kind = "test-stall", seconds = 0.7 }, { kind = "home-cookie" } ]',
            )
        },
    )
    for _ in range(3):
        host, port = farm.addr("a")
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request("GET", "/__stall")
            resp = conn.getresponse()
            resp.read()
        finally:
            conn.close()
        assert resp.status == 200
        time.sleep(0.5)  # the peers hear a again

    def peers_suspected_a() -> None:
        assert any(
            r.get("peer") == "a" and r.get("new") == "suspect"
            for n in ("b", "c")
            for r in farm.events(n, "node_state")
        )

    # the stalls were real: the peers noticed a's silence
    eventually_passes(peers_suspected_a, timeout=5, what="a peer suspected a")
    suspected_by_a = [
        r for r in farm.events("a", "node_state") if r.get("new") in ("suspect", "dead")
    ]
    assert suspected_by_a == [], suspected_by_a
    # and the operator is told a stalled, and for how long (once per 10 s, all counted)
    stalls = farm.events("a", "process_stalled")
    assert stalls and stalls[0]["seconds"] >= 0.4, stalls
    assert farm.tables("a")["counters"]["process_stalls"] >= 1
    assert not farm.events("b", "process_stalled")
    assert not farm.unexpected_exits()


def test_need_more_on_a_request_without_a_body_lets_the_rest_of_the_chain_decide(
    make_farm: Callable[..., Farm],
) -> None:
    # no byte more can come for a GET: an extractor still answering need-more counts as no
    # match and the next one decides (it used to hold the request for head_timeout, then
    # route it as a new session, the home cookie unread)
    farm = make_farm(
        services={
            "web": (
                "http",
                '[ { kind = "test-raise", answer = "need-more" }, { kind = "home-cookie" } ]',
            )
        },
    )
    for entry in ("a", "b", "c"):
        host, port = farm.addr(entry)
        conn = http.client.HTTPConnection(host, port, timeout=10)
        try:
            conn.request("GET", "/need-more", headers={"Cookie": farm.cookie_header("b")})
            resp = conn.getresponse()
            assert (resp.status, json.loads(resp.read())["node"]) == (200, "b")
        finally:
            conn.close()

    def routed_by_the_cookie() -> None:
        lines = [
            e
            for n in ("a", "b", "c")
            for e in farm.events(n, "access")
            if e["path"] == "/need-more"
        ]
        assert sorted(e["entry"] for e in lines) == ["a", "b", "c"]
        for e in lines:
            assert (e["id_kind"], e["new_session"], e["home"]) == ("home-cookie", False, "b")

    eventually_passes(routed_by_the_cookie, timeout=10, what="the access lines")
    assert not farm.unexpected_exits()
