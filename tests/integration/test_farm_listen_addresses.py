"""A service listening on two addresses: IPv4 and IPv6 clients of one node.

Two nodes, workers = 2, each with `listen = { web = ["127.0.0.1:P", "[::1]:P"] }`
(two IPv4 loopback addresses where this machine has no IPv6 loopback). A real
client reaches the service through each address of each node; a session started
through one address of one node is homed through every address of every node
(its home cookie brings every request to the application session it started). Every worker of a node
opens both listeners, a drain closes both and an undrain opens both again.
"""

from __future__ import annotations

import http.client
import json
import socket
from collections.abc import Iterator

import pytest

from tests.integration.conftest import running
from tests.support.admin import AdminFarm
from tests.support.farm import COOKIE_NAME, HOST
from tests.support.wait import eventually

pytestmark = pytest.mark.integration

CHAIN = '[ { kind = "home-cookie" } ]'
ATTEMPTS = 20  # connects per look at an address: spread over the node's workers by the kernel


def _second_host() -> str:
    """::1 where the machine has an IPv6 loopback, else a second IPv4 loopback address."""
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return "::1"
    except OSError:
        return "127.0.0.2"


HOSTS = (HOST, _second_host())


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AdminFarm]:
    yield from running(
        AdminFarm(
            tmp_path_factory.mktemp("farm"),
            nodes=("a", "b"),
            services={"web": ("http", CHAIN)},
            workers=2,
            listen_hosts=HOSTS,
        )
    )


def get(address: tuple[str, int], cookies: dict[str, str]) -> tuple[str, int, dict[str, str]]:
    """GET / at `address` with `cookies`: (node, session_hits, the cookies it set)."""
    conn = http.client.HTTPConnection(*address, timeout=10)
    try:
        cookie = "; ".join(f"{k}={v}" for k, v in cookies.items())
        conn.request("GET", "/", headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.status == 200, (address, resp.status, body[:200])
        set_cookies = {}
        for name, value in resp.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                set_cookies[key.strip()] = rest.split(";", 1)[0]
        answer = json.loads(body)
        return str(answer["node"]), int(answer["session_hits"]), set_cookies
    finally:
        conn.close()


def test_every_worker_listens_on_every_address(farm: AdminFarm) -> None:
    for node in farm.nodes:
        want = {"web": [f"[{h}]:{p}" if ":" in h else f"{h}:{p}" for h, p in farm.addrs(node)]}
        started = farm.events(node, "node_started")
        assert sorted(r.get("worker") for r in started) == [0, 1]
        assert [r.get("listeners") for r in started] == [want, want]


def test_a_session_started_through_one_address_is_homed_through_each(farm: AdminFarm) -> None:
    everywhere = [address for node in farm.nodes for address in farm.addrs(node)]
    assert len(set(everywhere)) == 4
    for start in everywhere:
        home, hits, cookies = get(start, {})
        assert hits == 1 and {COOKIE_NAME, "sid"} <= cookies.keys(), (start, cookies)
        for n, address in enumerate(everywhere, start=2):
            # the home cookie, with the application's own session cookie (sid)
            assert get(address, cookies)[:2] == (home, n), (start, address)


def accepting(address: tuple[str, int]) -> int:
    """How many of ATTEMPTS connects to `address` were accepted."""
    accepted = 0
    for _ in range(ATTEMPTS):
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        with socket.socket(family) as sock:
            sock.settimeout(2.0)
            try:
                sock.connect(address)
            except (ConnectionRefusedError, ConnectionResetError):
                continue  # nobody listens, or a closing listener had it queued
            accepted += 1
    return accepted


def wait_listening(farm: AdminFarm, node: str, on: bool) -> None:
    """Until every address of `node` takes every connect (`on`) or refuses every one."""
    want = [ATTEMPTS if on else 0] * len(farm.addrs(node))
    eventually(
        lambda: [accepting(a) for a in farm.addrs(node)] == want,
        timeout=10,
        what=f"{node} did not {'open' if on else 'close'} every listener",
    )


def test_a_drain_closes_every_address_and_an_undrain_opens_each(farm: AdminFarm) -> None:
    assert farm.post("b", "/drain") == {"draining": True}
    wait_listening(farm, "b", on=False)
    assert [accepting(a) for a in farm.addrs("a")] == [ATTEMPTS, ATTEMPTS]
    assert farm.post("b", "/undrain") == {"draining": False}
    wait_listening(farm, "b", on=True)
    assert farm.events("b", "undrain_listen_failed") == []
    for address in farm.addrs("b"):
        assert get(address, {COOKIE_NAME: farm.sign_cookie("a")})[0] == "a"


def test_an_undrain_opens_every_address_or_none_and_retries_until_it_can(
    farm: AdminFarm,
) -> None:
    """While b was drained, something else took its second address. The undrain must not
    leave b listening on half its addresses (clients of the other address would be
    refused with no end): it opens none, says so, and tries again until it can."""
    assert farm.post("b", "/drain") == {"draining": True}
    wait_listening(farm, "b", on=False)
    first, second = farm.addrs("b")
    family = socket.AF_INET6 if ":" in second[0] else socket.AF_INET
    blocker = socket.socket(family)
    try:
        # SO_REUSEADDR (past the TIME_WAIT of the connects above) but no SO_REUSEPORT:
        # while it listens, lb's listeners cannot bind beside it
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(second)
        blocker.listen(1)
        assert farm.post("b", "/undrain") == {"draining": False}
        eventually(
            lambda: len(farm.events("b", "undrain_listen_failed")) >= 3,
            timeout=10,
            what="b did not say it could not listen, and retry (2 workers: 3 lines)",
        )
        assert accepting(first) == 0, "b listens on one address of two"
    finally:
        blocker.close()
    wait_listening(farm, "b", on=True)
    for address in farm.addrs("b"):
        assert get(address, {COOKIE_NAME: farm.sign_cookie("a")})[0] == "a"
