"""Fixtures for the integration tests: real lb node processes and backends on loopback.

`farm` is one 3-node farm shared by a test module (for tests that leave it as
they found it); `make_farm(**options)` starts a private farm for a test that
kills, stops or reconfigures nodes. A failing test's report carries the tail
of every running node's log.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.farm import ACTIVE_FARMS, Farm  # noqa: E402

F = TypeVar("F", bound=Farm)


def _finish(farm: Farm) -> None:
    crashed = farm.unexpected_exits()
    logs = farm.all_logs() if crashed else ""
    farm.close()
    if crashed:
        pytest.fail(f"processes exited during the test: {', '.join(crashed)}\n{logs}")


def running(farm: F) -> Iterator[F]:
    """A module fixture's body: `farm` started (closed if it fails to start), yielded,
    then closed, failing the module's last test if a process exited on its own."""
    try:
        farm.start()
    except BaseException:
        farm.close()
        raise
    yield farm
    _finish(farm)


@pytest.fixture(scope="module")
def farm(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Farm]:
    """A running 3-node farm (services "web" http and "raw" tcp), shared by the module."""
    yield from running(Farm(tmp_path_factory.mktemp("farm")))


@pytest.fixture
def make_farm(tmp_path: Path) -> Iterator[Callable[..., Farm]]:
    """Start a private farm: make_farm(limits={...}, services={...}, nodes=(...))."""
    farms: list[Farm] = []

    def start(**options: Any) -> Farm:
        f = Farm(tmp_path / f"farm{len(farms)}", **options)
        farms.append(f)
        f.start()
        return f

    yield start
    for f in farms:
        _finish(f)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when == "call":
        for f in ACTIVE_FARMS:
            for n in f.nodes:
                report.sections.append((f"lb node {n} log ({f.workdir})", f.log_tail(n, 60)))
    return report
