"""How many CPUs this process may use: what `workers = "auto"` resolves to.

`usable_cpus` is a pure function of the CPU count, the affinity mask's size
and the cgroup CPU quotas (cgroup v2 `cpu.max`, cgroup v1
`cpu.cfs_quota_us` / `cpu.cfs_period_us`, of the process's cgroup and its
ancestors). A quota of 2.5 CPUs gives 2: one worker more than the quota
would be throttled by the kernel in every period. `read_usable_cpus` is the
thin reader that feeds it from /proc and /sys.

Reads a handful of small files under /proc and /sys; nothing else.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable
from pathlib import Path, PurePosixPath

__all__ = [
    "cfs_quota",
    "cgroup_paths",
    "cpu_max_quota",
    "read_usable_cpus",
    "usable_cpus",
]

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_SELF_CGROUP = Path("/proc/self/cgroup")


def cpu_max_quota(text: str) -> float | None:
    """The CPUs a cgroup v2 `cpu.max` ("$MAX $PERIOD") allows; None for "max" or nonsense."""
    parts = text.split()
    if len(parts) != 2 or parts[0] == "max":
        return None
    return _ratio(parts[0], parts[1])


def cfs_quota(quota_us: str, period_us: str) -> float | None:
    """The CPUs cgroup v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us` allow; None for -1."""
    return _ratio(quota_us.strip(), period_us.strip())


def _ratio(quota: str, period: str) -> float | None:
    try:
        q, p = int(quota), int(period)
    except ValueError:
        return None
    if q <= 0 or p <= 0:
        return None
    return q / p


def usable_cpus(cpu_count: int | None, affinity: int | None, quotas: Iterable[float | None]) -> int:
    """The CPUs this process may use: the least of count, affinity and every quota; >= 1."""
    n = cpu_count if cpu_count and cpu_count > 0 else 1
    if affinity is not None and affinity > 0:
        n = min(n, affinity)
    for quota in quotas:
        if quota is not None:
            n = min(n, max(1, math.floor(quota)))
    return n


def cgroup_paths(proc_self_cgroup: str) -> tuple[str | None, str | None]:
    """From /proc/self/cgroup: (the cgroup v2 path, the cgroup v1 `cpu` controller's path)."""
    v2: str | None = None
    v1: str | None = None
    for line in proc_self_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _upwards(mount: Path, path: str | None) -> list[Path]:
    """`mount/path` and every ancestor up to `mount` (a container sees only its own root)."""
    out: list[Path] = []
    if path is not None:
        rel = PurePosixPath(path.lstrip("/"))
        while rel.parts:
            out.append(mount / rel)
            rel = rel.parent
    out.append(mount)
    return out


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except OSError:
        return None


def read_usable_cpus(
    cgroup_root: Path = CGROUP_ROOT, proc_self_cgroup: Path = PROC_SELF_CGROUP
) -> int:
    """`usable_cpus` of this process, from os, /proc/self/cgroup and the cgroup tree."""
    try:
        affinity: int | None = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        affinity = None
    v2_path, v1_path = cgroup_paths(_read(proc_self_cgroup) or "")
    quotas: list[float | None] = []
    for mount in (cgroup_root, cgroup_root / "unified"):
        for d in _upwards(mount, v2_path):
            text = _read(d / "cpu.max")
            if text is not None:
                quotas.append(cpu_max_quota(text))
    for mount in (cgroup_root / "cpu", cgroup_root / "cpu,cpuacct"):
        for d in _upwards(mount, v1_path):
            quota, period = _read(d / "cpu.cfs_quota_us"), _read(d / "cpu.cfs_period_us")
            if quota is not None and period is not None:
                quotas.append(cfs_quota(quota, period))
    return usable_cpus(os.cpu_count(), affinity, quotas)
