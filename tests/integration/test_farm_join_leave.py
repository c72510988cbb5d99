"""A node joins a running farm and leaves it, without restarting the others.

The farm file first lists a and b; both run. Node c is added to the file and
started; a and b re-read the file on SIGHUP and take c as a member: sessions
homed on c are reachable through a and b, and c takes new sessions. Then c is
removed from the file, drained with SIGTERM (it says LEFT to its peers), and
the others re-read the file: a session homed on c is re-homed on a live node.
"""

from __future__ import annotations

import http.client
import json
import signal
from pathlib import Path

import pytest

from tests.support.farm import ACTIVE_FARMS, Farm
from tests.support.wait import eventually

pytestmark = pytest.mark.integration


def get(
    farm: Farm, entry: str, cookie: str | None = None, source: str = "127.0.0.1"
) -> tuple[str, bool]:
    """(answering node, whether a fresh home cookie was set), from client address `source`."""
    host, port = farm.addr(entry)
    conn = http.client.HTTPConnection(host, port, timeout=10, source_address=(source, 0))
    try:
        conn.request("GET", "/", headers={"Cookie": cookie} if cookie else {})
        resp = conn.getresponse()
        fresh = any(
            k.lower() == "set-cookie" and v.startswith("lbhome=") for k, v in resp.getheaders()
        )
        return str(json.loads(resp.read())["node"]), fresh
    finally:
        conn.close()


def write_config(farm: Farm, members: tuple[str, ...]) -> None:
    full = farm.nodes
    farm.nodes = members
    try:
        farm.config_path.write_text(farm.config_text())
    finally:
        farm.nodes = full


def test_a_node_joins_and_leaves_a_running_farm(tmp_path: Path) -> None:
    farm = Farm(tmp_path / "farm", services={"web": ("http", '[ { kind = "home-cookie" } ]')})
    ACTIVE_FARMS.append(farm)
    try:
        write_config(farm, ("a", "b"))
        for n in farm.nodes:
            farm._start_backend(n, "web", "http")
        for key in list(farm.backend_procs):
            farm._wait_backend(key, 10)
        farm._start_node("a")
        farm._start_node("b")
        # a refused connection counts as not yet
        eventually(
            lambda: (
                get(farm, "a", farm.cookie_header("b"))[0] == "b"
                and get(farm, "b", farm.cookie_header("a"))[0] == "a"
            ),
            timeout=15,
            what="a and b did not form a farm",
            retry_on=(OSError, ValueError),  # an error answer before the link is up: no JSON body
        )
        # c joins: the file lists it, c starts, a and b re-read the file
        write_config(farm, ("a", "b", "c"))
        farm._start_node("c")
        for n in ("a", "b"):
            farm.kill(n, signal.SIGHUP)
        for entry in ("a", "b", "c"):

            def reaches_c(e: str = entry) -> bool:
                return get(farm, e, farm.cookie_header("c")) == ("c", False)

            eventually(
                reaches_c,
                timeout=15,
                what=f"a session homed on c is not reachable through {entry}",
                retry_on=(OSError, ValueError),  # an error answer until c is linked: no JSON body
            )
        assert any(e.get("joined") == ["c"] for e in farm.events("a", "farm_reloaded"))
        # c takes new sessions: placement spreads fresh sessions (of 60 client addresses;
        # one address keeps its home for placement_hold) over all three nodes
        placed = {
            get(farm, entry, source=f"127.0.1.{i + 1}")[0]
            for i, entry in enumerate(("a", "b") * 30)
        }
        assert "c" in placed, placed
        # c leaves: out of the file, drained with SIGTERM, the others re-read the file
        write_config(farm, ("a", "b"))
        farm.lb_procs["c"].expected_exit = True
        farm.kill("c", signal.SIGTERM)
        assert farm.lb_procs["c"].popen.wait(timeout=40) == 0
        for n in ("a", "b"):
            farm.kill(n, signal.SIGHUP)
        for entry in ("a", "b"):
            node, fresh = get(farm, entry, farm.cookie_header("c"))
            assert node in ("a", "b") and fresh, (entry, node, fresh)
        left = [e for e in farm.events("a", "node_state") if e.get("peer") == "c"]
        assert left and left[-1]["new"] == "left", left[-3:]
        assert not farm.unexpected_exits()
    finally:
        farm.close()
