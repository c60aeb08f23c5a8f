"""`python -m shared.lifecycle.sweep`: what the CronJob and `make run` run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from shared.db.migrate import upgrade

ROOT = Path(__file__).resolve().parents[3]


def test_one_sweep_prints_its_report(tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'proteus.db'}"
    upgrade(database)
    orphan = tmp_path / "storage" / "objects" / "uploads" / "u1" / "x.jpg"
    env = {
        "PATH": "/usr/bin:/bin",
        "PROTEUS_ENV": "test",
        "PROTEUS_DATA_DIR": str(tmp_path),
        "DATABASE_URL": database,
        "JWT_SECRET": "s" * 48,
        "RETENTION_ORPHANS_HOURS": "1",
    }
    done = subprocess.run(
        [sys.executable, "-m", "shared.lifecycle.sweep"],
        check=False,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["objects_deleted"] == 0 and report["orphans"] == 0 and report["finished_at"]
    assert not orphan.exists()
    log = [json.loads(line) for line in done.stderr.splitlines() if line.startswith("{")]
    assert any(line["message"] == "retention sweep done" and line["outcome"] == "ok" for line in log)


def test_base64_only_sweeps_nothing_else(tmp_path: Path) -> None:
    """What the CronJob proteus-retention-base64 runs every 2 minutes: an old orphan stays."""
    database = f"sqlite:///{tmp_path / 'proteus.db'}"
    upgrade(database)
    orphan = tmp_path / "storage" / "objects" / "uploads" / "u1" / "x.jpg"
    orphan.parent.mkdir(parents=True)
    orphan.write_bytes(b"\xff\xd8old")
    os.utime(orphan, (0, 0))  # 1970: long past RETENTION_ORPHANS_HOURS
    env = {
        "PATH": "/usr/bin:/bin",
        "PROTEUS_ENV": "test",
        "PROTEUS_DATA_DIR": str(tmp_path),
        "DATABASE_URL": database,
        "JWT_SECRET": "s" * 48,
        "RETENTION_ORPHANS_HOURS": "1",
    }
    command = [sys.executable, "-m", "shared.lifecycle.sweep", "--base64-only"]
    done = subprocess.run(command, check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["base64_results"] == 0 and report["orphans"] == 0 and report["objects_deleted"] == 0
    assert orphan.exists()
    full = subprocess.run(command[:-1], check=False, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert full.returncode == 0 and json.loads(full.stdout.strip().splitlines()[-1])["orphans"] == 1
    assert not orphan.exists()
