"""Fixtures for the fault tests: lb farms in network namespaces (tests/support/netns.py).

Every test here is marked `faults`; they need root, `ip netns` and nft, and are
skipped with the reason otherwise. `make_netfarm(**options)` starts a private
farm and removes every process, nft table and namespace at the end, also
after a failing test; namespaces left by a crashed earlier run are removed
first. A failing test's report carries the tail of every node's log; the
"FIGURE" line each test prints is repeated in the terminal summary.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tests.support.netns import (  # noqa: E402
    ACTIVE_NETFARMS,
    NetFarm,
    cleanup_leftovers,
    unsupported_reason,
)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "faults: multi-host fault tests in network namespaces (root, ip netns, nft)"
    )


@pytest.fixture(scope="session")
def netns_support() -> None:
    reason = unsupported_reason()
    if reason is not None:
        pytest.skip(reason)
    cleanup_leftovers()


@pytest.fixture
def make_netfarm(netns_support: None, tmp_path: Path) -> Iterator[Callable[..., NetFarm]]:
    """Start a private farm in namespaces: make_netfarm(limits={...}, delay_relays=True)."""
    farms: list[NetFarm] = []

    def start(**options: Any) -> NetFarm:
        f = NetFarm(tmp_path / f"netfarm{len(farms)}", **options)
        farms.append(f)
        try:
            f.start()
        except BaseException:
            f.close()
            raise
        return f

    yield start
    crashed: list[str] = []
    logs = ""
    for f in farms:
        exits = f.unexpected_exits()
        if exits:
            crashed += exits
            logs += f.all_logs()
        f.close()
    if crashed:
        pytest.fail(f"processes exited during the test: {', '.join(crashed)}\n{logs}")


_FIGURES: list[str] = []


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if report.when == "call":
        for line in report.capstdout.splitlines():
            if line.startswith("FIGURE"):
                _FIGURES.append(f"{line} [{report.outcome}]")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if _FIGURES:
        terminalreporter.section("fault test figures")
        for line in _FIGURES:
            terminalreporter.write_line(line)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed and report.when == "call":
        for f in ACTIVE_NETFARMS:
            for n in f.nodes:
                report.sections.append((f"lb node {n} log ({f.workdir})", f.log_tail(n, 60)))
    return report
