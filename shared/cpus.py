"""How many CPUs this process may really use: its affinity, capped by a container's CPU quota.

`os.cpu_count()` counts the machine's cores; a container limited to 500m (cgroup v2
`cpu.max`, or v1 `cpu.cfs_quota_us` / `cpu.cfs_period_us`) or pinned to some cores can use
fewer. Sizing worker processes or thread pools by the machine would oversubscribe it.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def usable_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """The cores this process may run on, capped by its cgroup's CPU quota (a quota of 1.5 CPUs
    counts as 2); at least 1."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        cores = os.cpu_count() or 1
    quota = cgroup_cpu_quota(cgroup_root)
    if quota is not None:
        cores = min(cores, math.ceil(quota))
    return max(1, cores)


def cgroup_cpu_quota(cgroup_root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota in CPUs (cgroup v2 `cpu.max`, else v1 CFS), or None when there is none."""
    try:
        quota, period = (cgroup_root / "cpu.max").read_text().split()[:2]
        return None if quota == "max" else int(quota) / int(period)
    except (OSError, ValueError):
        pass
    try:
        quota_us = int((cgroup_root / "cpu" / "cpu.cfs_quota_us").read_text())
        period_us = int((cgroup_root / "cpu" / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 and period_us > 0 else None
