"""A node whose application stays down gives its sessions up after app_down_rehome_after.

30 sessions walk the farm (each request through the next entry, with the
session's cookies) while one new session starts per round. Node b's
application is killed: after the health check's fall time no new session is
placed on b and none fails; b's own sessions wait for it (they are not moved
early) until the application has been down for app_down_rehome_after, then
every entry re-homes them: they are answered elsewhere with a fresh home
cookie and stay on their new home. When b's application is back, b takes new
sessions again.
"""

from __future__ import annotations

import http.client
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest

from lb.routing.cookie import CookieKeyring
from tests.support.farm import COOKIE_NAME, Farm
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

BOUND = 3.0
LIMITS = {
    "health_interval": 0.3,
    "health_fall": 2,
    "health_rise": 2,
    "app_down_rehome_after": BOUND,
}
SESSIONS = 30


@dataclass
class Session:
    cookies: dict[str, str] = field(default_factory=dict)
    home: str = ""
    moved_to: str | None = None


def request(
    farm: Farm, entry: str, path: str, cookies: dict[str, str], source: str = "127.0.0.1"
) -> tuple[int, str | None, dict[str, str]]:
    """(status, the node that answered, the cookies set) of one request on a fresh connection."""
    conn = http.client.HTTPConnection(*farm.addr(entry), timeout=10, source_address=(source, 0))
    try:
        headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items())} if cookies else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        node = json.loads(body)["node"] if resp.status == 200 else None
        set_cookies = {}
        for key, value in resp.getheaders():
            if key.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                set_cookies[name.strip()] = rest.split(";", 1)[0].strip()
        return resp.status, node, set_cookies
    finally:
        conn.close()


def saw(farm: Farm, node: str, event: str, **fields: object) -> bool:
    return any(all(e.get(k) == v for k, v in fields.items()) for e in farm.events(node, event))


def last_state(farm: Farm, node: str, peer: str) -> str | None:
    """The last state `node` logged for `peer`."""
    states = [e.get("new") for e in farm.events(node, "node_state") if e.get("peer") == peer]
    return states[-1] if states else None


def test_sessions_of_a_node_whose_application_stays_down_are_rehomed(
    make_farm: Callable[..., Farm],
) -> None:
    farm = make_farm(limits=LIMITS)
    keyring = CookieKeyring(farm.name, farm.secret.encode())
    entries = farm.nodes

    # 30 sessions, started as new sessions from 30 client addresses (so they spread)
    sessions = []
    for i in range(SESSIONS):
        status, node, cookies = request(farm, entries[i % 3], "/start", {}, f"127.0.0.{30 + i}")
        assert status == 200 and node is not None and COOKIE_NAME in cookies
        assert keyring.verify(cookies[COOKIE_NAME], time.time()) == node
        sessions.append(Session(cookies, node))
    homes = {s.home for s in sessions}
    assert "b" in homes, homes  # 30 sessions over 3 idle nodes: b has some
    on_b = [s for s in sessions if s.home == "b"]

    fresh = 0  # new sessions come from ever new client addresses

    def walk_round(rnd: int) -> list[tuple[float, Session | None, int, str | None]]:
        """Every session once, then one new session; (time, session, status, node)."""
        nonlocal fresh
        out: list[tuple[float, Session | None, int, str | None]] = []
        for i, s in enumerate(sessions):
            status, node, cookies = request(farm, entries[(rnd + i) % 3], f"/w/{rnd}", s.cookies)
            if COOKIE_NAME in cookies:
                s.cookies[COOKIE_NAME] = cookies[COOKIE_NAME]
                s.moved_to = node
            out.append((time.monotonic(), s, status, node))
        fresh += 1
        source = f"127.0.1.{fresh % 250 + 1}"
        status, node, _ = request(farm, entries[rnd % 3], "/new", {}, source)
        out.append((time.monotonic(), None, status, node))
        return out

    # before: everything answered by its home
    for rnd in range(2):
        for _, s, status, node in walk_round(rnd):
            assert status == 200
            assert s is None or node == s.home

    stopped = time.monotonic()
    farm.stop_backend("b", "web")
    fall_seen: float | None = None
    rehome_seen: float | None = None
    log: list[tuple[float, Session | None, int, str | None]] = []
    rnd = 2
    deadline = stopped + BOUND + 20.0
    while time.monotonic() < deadline:
        round_started = time.monotonic()
        log += [(t, s, st, n) for t, s, st, n in walk_round(rnd)]
        rnd += 1
        if (
            fall_seen is None
            and all(saw(farm, n, "node_state", peer="b", new="draining") for n in ("a", "c"))
            and saw(farm, "b", "app_down", service="web")
        ):
            fall_seen = time.monotonic()
        if (
            rehome_seen is None
            and all(saw(farm, n, "node_state", peer="b", new="left") for n in ("a", "c"))
            and saw(farm, "b", "app_down_rehome")
        ):
            rehome_seen = time.monotonic()
        if rehome_seen is not None and round_started > rehome_seen + 1.0:
            break  # a whole round after every node gave b's sessions up
    assert fall_seen is not None, "b's application was never seen down by the farm"
    assert rehome_seen is not None, "b's sessions were never given up"

    # no new session placed on b after the fall time, and none failed
    after_fall = [(t, st, n) for t, s, st, n in log if s is None and t > fall_seen]
    assert after_fall, "no new session was started after the fall time"
    assert all(st == 200 and n != "b" for _, st, n in after_fall), after_fall

    # sessions of a and c never noticed anything
    for t, s, st, n in log:
        if s is not None and s.home != "b":
            assert (st, n) == (200, s.home), (t - stopped, s.home, st, n)

    # b's sessions were not moved before the application had been down for the bound
    moved_early = [
        (round(t - stopped, 2), n)
        for t, s, st, n in log
        if s is not None and s.home == "b" and st == 200 and n != "b" and t < stopped + BOUND
    ]
    assert moved_early == [], moved_early

    # after the bound (as every node saw it): every request of b's sessions is answered
    # elsewhere, the first with a fresh home cookie, and each stays on its new home
    late = [
        (s, st, n) for t, s, st, n in log if s is not None and s.home == "b" and t > rehome_seen
    ]
    assert late, "no request of b's sessions after the bound"
    assert all(st == 200 and n in ("a", "c") for _, st, n in late), late
    for s in on_b:
        assert s.moved_to in ("a", "c"), "a session of b got no new home"
        assert keyring.verify(s.cookies[COOKIE_NAME], time.time()) == s.moved_to
        assert {n for s2, _, n in late if s2 is s} == {s.moved_to}

    # b's application is back: b rejoins and takes new sessions again
    farm.start_backend("b", "web")
    eventually(
        lambda: all(last_state(farm, n, "b") == "alive" for n in ("a", "c")),
        timeout=10.0,
        what="a and c see b alive again",
    )

    def a_new_session_lands_on_b() -> bool:
        nonlocal fresh
        fresh += 1
        return request(farm, "a", "/back", {}, f"127.0.2.{fresh % 250 + 1}")[1] == "b"

    eventually(a_new_session_lands_on_b, timeout=10.0, what="a new session placed on b")
