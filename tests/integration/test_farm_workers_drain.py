"""An admin drain outlives a worker that dies: the restarted worker starts drained.

workers = 2 and an admin listener per node. An operator drains b (POST /drain):
every worker of b closes its client listeners and the farm sees b draining. Then
one of b's workers dies and its supervisor restarts it. The new process must
not open b's client port again (a connect is refused while every worker is
drained) and, when it is worker 0 (the one that speaks for b in membership),
must not declare b alive again. An undrain afterwards opens the port on every
worker as before.
"""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from tests.integration.test_farm_workers import CHAIN, get, worker_pid, workers_of
from tests.support.admin import AdminFarm
from tests.support.farm import Farm
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration

ATTEMPTS = 20  # connects per look at b's client port: spread over its workers by the kernel


def accepting(farm: Farm, node: str) -> int:
    """How many of ATTEMPTS connects to `node`'s client port were accepted (a connect
    refused or reset counts as not accepted)."""
    accepted = 0
    for _ in range(ATTEMPTS):
        with socket.socket() as sock:
            sock.settimeout(2.0)
            try:
                sock.connect(farm.addr(node))
            except (ConnectionRefusedError, ConnectionResetError):
                # refused: no worker listens; reset: the connect met a listener that was
                # closing (a drain) with it still queued. Either way nobody accepted it
                continue
            accepted += 1
    return accepted


def _state_seen(farm: AdminFarm, node: str, observer: str) -> str:
    return str(farm.get_json(observer, "/api/members")[node]["state"])


@pytest.mark.parametrize("index", [1, 0])
def test_a_restarted_worker_keeps_the_admin_drain(tmp_path: Path, index: int) -> None:
    farm = AdminFarm(tmp_path / "farm", services={"web": ("http", CHAIN)}, workers=2)
    with farm:
        farm.start()
        assert farm.post("b", "/drain") == {"draining": True}

        def drained() -> None:
            assert accepting(farm, "b") == 0
            assert _state_seen(farm, "b", "a") == "draining"

        eventually_passes(drained, timeout=10, what="b did not drain")
        supervisor = farm.pid("b")
        old = worker_pid(supervisor, index)
        started = len(farm.events("b", "node_started"))
        os.kill(old, signal.SIGKILL)

        def replaced() -> None:
            assert old not in workers_of(supervisor) and len(workers_of(supervisor)) == 2
            assert len(farm.events("b", "node_started")) == started + 1

        eventually_passes(replaced, timeout=20, what="the killed worker was not replaced")
        time.sleep(1.5)  # more than a ping interval: a declaration of b would be out by now
        assert accepting(farm, "b") == 0, "a restarted worker opened the drained port"
        for observer in ("a", "c"):
            assert _state_seen(farm, "b", observer) == "draining", observer
        assert farm.get_json("b", "/api/status")["draining"] is True

        assert farm.post("b", "/undrain") == {"draining": False}

        def undrained() -> None:
            assert accepting(farm, "b") == ATTEMPTS
            assert _state_seen(farm, "b", "a") == "alive"

        eventually_passes(undrained, timeout=10, what="b did not undrain")
        assert get(farm, "b", farm.cookie_header("b"))[0] == "b"
