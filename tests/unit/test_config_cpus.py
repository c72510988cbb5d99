"""Config: what `workers = "auto"` resolves to (CPU count, affinity, cgroup quotas)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from lb.config.cpus import (
    cfs_quota,
    cgroup_paths,
    cpu_max_quota,
    read_usable_cpus,
    usable_cpus,
)


@pytest.mark.parametrize(
    ("text", "cpus"),
    [
        ("max 100000\n", None),
        ("200000 100000\n", 2.0),
        ("150000 100000", 1.5),
        ("50000 100000", 0.5),
        ("max", None),
        ("", None),
        ("abc 100000", None),
        ("100000 0", None),
    ],
)
def test_cgroup_v2_cpu_max(text: str, cpus: float | None) -> None:
    assert cpu_max_quota(text) == cpus


@pytest.mark.parametrize(
    ("quota", "period", "cpus"),
    [("-1\n", "100000\n", None), ("300000\n", "100000\n", 3.0), ("x", "100000", None)],
)
def test_cgroup_v1_cfs_quota(quota: str, period: str, cpus: float | None) -> None:
    assert cfs_quota(quota, period) == cpus


@pytest.mark.parametrize(
    ("count", "affinity", "quotas", "expected"),
    [
        (8, 8, [], 8),
        (8, 3, [], 3),  # taskset / cpuset
        (8, 8, [None], 8),  # "max": no quota
        (8, 8, [2.0], 2),
        (8, 8, [2.5], 2),  # a third worker would be throttled every period
        (8, 8, [0.5], 1),  # never fewer than one
        (8, 4, [6.0, 3.0], 3),  # the tightest of the cgroup and its ancestors
        (8, 2, [6.0], 2),
        (None, None, [], 1),
        (0, None, [], 1),
        (4, None, [16.0], 4),
    ],
)
def test_usable_cpus(
    count: int | None, affinity: int | None, quotas: list[float | None], expected: int
) -> None:
    assert usable_cpus(count, affinity, quotas) == expected


def test_cgroup_paths_v2_v1_and_hybrid() -> None:
    assert cgroup_paths("0::/user.slice/lb.service\n") == ("/user.slice/lb.service", None)
    v1 = "12:memory:/docker/abc\n4:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n"
    assert cgroup_paths(v1) == (None, "/docker/abc")
    hybrid = "3:cpuset:/\n2:cpu:/x\n0::/y\n"
    assert cgroup_paths(hybrid) == ("/y", "/x")
    assert cgroup_paths("") == (None, None)
    assert cgroup_paths("garbage\n") == (None, None)


def _this_machine() -> int:
    return min(os.cpu_count() or 1, len(os.sched_getaffinity(0)))


def test_reader_applies_a_v2_quota_of_the_cgroup_or_an_ancestor(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/farm/lb\n")
    (tmp_path / "farm" / "lb").mkdir(parents=True)
    (tmp_path / "farm" / "lb" / "cpu.max").write_text("max 100000\n")
    (tmp_path / "cpu.max").write_text("max 100000\n")
    assert read_usable_cpus(tmp_path, proc) == _this_machine()
    (tmp_path / "farm" / "cpu.max").write_text("100000 100000\n")  # the parent's quota binds
    assert read_usable_cpus(tmp_path, proc) == 1


def test_reader_in_a_container_sees_its_own_root(tmp_path: Path) -> None:
    """Without a cgroup namespace the listed path does not exist inside the container."""
    proc = tmp_path / "cgroup"
    proc.write_text("4:cpu,cpuacct:/docker/0123abcd\n")
    (tmp_path / "cpu,cpuacct").mkdir()
    (tmp_path / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("50000\n")
    (tmp_path / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    assert read_usable_cpus(tmp_path, proc) == 1


def test_reader_without_cgroups_is_count_and_affinity(tmp_path: Path) -> None:
    assert read_usable_cpus(tmp_path, tmp_path / "missing") == _this_machine()


def test_reader_on_this_machine_is_bounded() -> None:
    assert 1 <= read_usable_cpus() <= _this_machine()
