"""An admin drain or undrain that comes while a worker is being restarted reaches it.

workers = 2 and an admin listener per node. b's supervisor is slowed by
tests/support/faults (``spawn-delay``): after it spawns a replacement worker it
waits before it relays the bus to it, the moment in which it has already chosen
whether the new worker starts drained (``--drained``) but the new worker does not
hear its siblings yet. An operator's drain (or undrain) of b in that moment must
still reach the new worker: once it has started, a drain leaves b's client port
refused on every worker, and an undrain opens it on every worker.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.integration.test_farm_workers import CHAIN, worker_pid, workers_of
from tests.integration.test_farm_workers_drain import ATTEMPTS, accepting
from tests.support.admin import AdminFarm
from tests.support.wait import eventually_passes

pytestmark = pytest.mark.integration

FAULTS = Path(__file__).resolve().parent.parent / "support" / "faults"
SPAWN_DELAY = 3.0  # seconds between a restarted worker's spawn and its bus being relayed


def _restart_worker_1(farm: AdminFarm) -> None:
    """Kill b's worker 1 and return while its replacement is spawned but not yet relayed."""
    supervisor = farm.pid("b")
    old = worker_pid(supervisor, 1)
    relayed = len(farm.events("b", "worker_started"))
    os.kill(old, signal.SIGKILL)

    def spawned() -> None:
        assert old not in workers_of(supervisor) and len(workers_of(supervisor)) == 2

    eventually_passes(spawned, timeout=10, what="no replacement worker spawned")
    # the supervisor logs worker_started once it relays to the new worker
    assert len(farm.events("b", "worker_started")) == relayed, "spawned and relayed already"


def _farm(tmp_path: Path) -> AdminFarm:
    env = {
        "PYTHONPATH": str(FAULTS),
        "LB_TEST_FAULTS": f"spawn-delay:{SPAWN_DELAY}:2",  # the first two spawns: at once
    }
    return AdminFarm(
        tmp_path / "farm",
        services={"web": ("http", CHAIN)},
        workers=2,
        node_env={"b": env},
    )


def _relayed(farm: AdminFarm, relayed: int) -> None:
    """Wait until b's supervisor relays to the restarted worker (it logs worker_started)."""

    def logged() -> None:
        assert len(farm.events("b", "worker_started")) == relayed + 1

    eventually_passes(logged, timeout=20, what="the restarted worker was not relayed to")


def test_a_drain_while_a_worker_restarts_reaches_it(tmp_path: Path) -> None:
    farm = _farm(tmp_path)
    with farm:
        farm.start()
        assert accepting(farm, "b") == ATTEMPTS
        relayed = len(farm.events("b", "worker_started"))
        _restart_worker_1(farm)
        assert farm.post("b", "/drain") == {"draining": True}
        _relayed(farm, relayed)

        def drained() -> None:
            assert accepting(farm, "b") == 0, "a worker restarted during the drain accepts"

        eventually_passes(drained, timeout=10, what="the restarted worker did not drain")


def test_an_undrain_while_a_worker_restarts_reaches_it(tmp_path: Path) -> None:
    farm = _farm(tmp_path)
    with farm:
        farm.start()
        assert farm.post("b", "/drain") == {"draining": True}

        def drained() -> None:
            assert accepting(farm, "b") == 0

        eventually_passes(drained, timeout=10, what="b did not drain")
        relayed = len(farm.events("b", "worker_started"))
        _restart_worker_1(farm)
        assert farm.post("b", "/undrain") == {"draining": False}
        _relayed(farm, relayed)

        def undrained() -> None:
            assert accepting(farm, "b") == ATTEMPTS

        eventually_passes(undrained, timeout=10, what="b did not undrain")
        # worker 0 gone (its replacement is a second or more away): b's port is the new
        # worker 1's alone, open only if the undrain reached it
        supervisor = farm.pid("b")
        old = worker_pid(supervisor, 0)
        os.kill(old, signal.SIGKILL)

        def gone() -> None:
            assert old not in workers_of(supervisor)

        eventually_passes(gone, timeout=5, what="worker 0 did not die")

        def served_by_worker_1() -> None:
            assert accepting(farm, "b") == ATTEMPTS, "the restarted worker 1 stayed drained"

        # within the second before worker 0's replacement could listen
        eventually_passes(served_by_worker_1, timeout=1.0, what="worker 1 alone does not serve")
