"""bench/chaos.py, small: 20 try-ons from two users against `make run` while weave (master
and worker), the runner, notify and the gateway are killed at random, notify is frozen, the
embedded Redis is killed and the whole stack is killed with SIGKILL and started again.
Every try-on must end done, notified exactly once on its user's socket, with one result."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc")]


def test_no_try_on_is_lost_stuck_or_doubled_whatever_crashes(tmp_path: Path, smoke_models_dir: Path) -> None:
    env = {**os.environ, "MODELS_DIR": str(smoke_models_dir)}
    done = subprocess.run(
        [
            sys.executable,
            "bench/chaos.py",
            "--tryons",
            "20",
            "--chaos-s",
            "45",
            "--kill-every-s",
            "5",
            "--target-gap-s",
            "20",
            "--outage-s",
            "8",
            "--restarts",
            "sigkill",
            "--settle-s",
            "300",
            "--seed",
            "3",
            "--logs",
            str(tmp_path),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert done.stdout.strip(), done.stderr[-3000:]
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    report = done.stdout[-3000:]
    assert figures["submitted"] == 20, report
    assert figures["done"] == 20 and figures["stuck"] == 0 and figures["failed"] == 0, report
    assert figures["duplicate_notifications"] == 0 and figures["duplicate_result_objects"] == 0, report
    assert figures["socket_api_disagreements"] == 0, report
    assert figures["random_kills"] >= 3 and figures["make_run_starts"] == 2, report
    assert done.returncode == 0, report
