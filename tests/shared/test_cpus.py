"""shared/cpus.py: the affinity, capped by a cgroup's CPU quota."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.cpus import cgroup_cpu_quota, usable_cpus


def affinity() -> int:
    return len(os.sched_getaffinity(0))


def test_no_cgroup_files_means_no_quota(tmp_path: Path) -> None:
    assert cgroup_cpu_quota(tmp_path) is None
    assert usable_cpus(tmp_path) == affinity()


@pytest.mark.parametrize(
    ("cpu_max", "quota"),
    [("max 100000\n", None), ("50000 100000\n", 0.5), ("150000 100000\n", 1.5), ("not numbers\n", None)],
)
def test_cgroup_v2_cpu_max(tmp_path: Path, cpu_max: str, quota: float | None) -> None:
    (tmp_path / "cpu.max").write_text(cpu_max)
    assert cgroup_cpu_quota(tmp_path) == quota


def test_cgroup_v1_cfs_quota(tmp_path: Path) -> None:
    (tmp_path / "cpu").mkdir()
    (tmp_path / "cpu" / "cpu.cfs_period_us").write_text("100000\n")
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup_cpu_quota(tmp_path) is None
    (tmp_path / "cpu" / "cpu.cfs_quota_us").write_text("250000\n")
    assert cgroup_cpu_quota(tmp_path) == 2.5


def test_a_quota_caps_the_affinity_and_rounds_up(tmp_path: Path) -> None:
    (tmp_path / "cpu.max").write_text("25000 100000\n")  # a quarter of a CPU still gets one
    assert usable_cpus(tmp_path) == 1
    (tmp_path / "cpu.max").write_text(f"{(affinity() + 8) * 100000} 100000\n")  # more than the cores
    assert usable_cpus(tmp_path) == affinity()
