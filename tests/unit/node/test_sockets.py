"""lb.node.sockets.fit_to_descriptors: client connections bounded by the descriptor limit."""

from __future__ import annotations

import resource
from collections.abc import Iterator

import pytest
import structlog
import structlog.testing

from lb.node.sockets import DESCRIPTOR_RESERVE, fit_to_descriptors

SOFT = 1280  # a soft limit below the test process's own: room for (1280 - 256) // 2 = 512


@pytest.fixture(autouse=True)
def plain_structlog() -> Iterator[None]:
    """structlog's defaults (every level, no cached loggers) whatever another test set."""
    old = structlog.get_config()
    structlog.reset_defaults()
    try:
        yield
    finally:
        structlog.configure(**old)


@pytest.fixture
def low_soft_limit() -> Iterator[int]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < SOFT:
        pytest.skip(f"the descriptor limit ({soft}) is already below {SOFT}")
    resource.setrlimit(resource.RLIMIT_NOFILE, (SOFT, hard))
    try:
        yield (SOFT - DESCRIPTOR_RESERVE) // 2
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_what_fits_is_kept_silently(low_soft_limit: int) -> None:
    with structlog.testing.capture_logs() as logs:
        assert fit_to_descriptors("a", low_soft_limit, explicit=True) == low_soft_limit
        assert fit_to_descriptors("a", 1, explicit=True) == 1
    assert logs == []


@pytest.mark.parametrize(("explicit", "level"), [(True, "warning"), (False, "info")])
def test_what_does_not_fit_is_lowered_and_said(
    low_soft_limit: int, explicit: bool, level: str
) -> None:
    with structlog.testing.capture_logs() as logs:
        assert fit_to_descriptors("a", 10_000, explicit=explicit) == low_soft_limit == 512
    assert [(e["event"], e["log_level"], e["allowed"], e["max_connections"]) for e in logs] == [
        ("max_connections_lowered", level, 512, 10_000)
    ]
    assert logs[0]["descriptor_limit"] == SOFT


def test_a_workers_share_is_said_beside_the_nodes_limit(low_soft_limit: int) -> None:
    """Two workers of a node with max_connections = 20000: each would admit 10000. The
    line names the farm file's 20000 as max_connections, and the share as such."""
    with structlog.testing.capture_logs() as logs:
        assert fit_to_descriptors("a", 10_000, False, workers=2, per_node=20_000) == 512
    line = logs[0]
    assert (line["max_connections"], line["workers"], line["worker_share"], line["allowed"]) == (
        20_000,
        2,
        10_000,
        512,
    )
