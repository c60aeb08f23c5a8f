"""Processes die with their parent: gunicorn's workers with their master (even one killed
with SIGKILL in the middle of a long request), children started with preexec_die_with_parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from shared.devstack import free_port
from shared.processes import preexec_die_with_parent

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")


def children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(condition, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


@pytest.mark.parametrize("config", ["functions/weave/gunicorn.conf.py", "gateway/gunicorn.conf.py"])
def test_a_busy_worker_dies_with_its_killed_master(tmp_path: Path, config: str) -> None:
    port = free_port()
    env = {**os.environ, "PORT": str(port), "WEB_CONCURRENCY": "1"}
    with open(tmp_path / "gunicorn.log", "wb") as log:
        master = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", config, "tests.shared.slow_wsgi:app"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    workers: set[int] = set()
    try:
        assert wait_for(lambda: _answers(port), 30), (tmp_path / "gunicorn.log").read_text()
        workers = children(master.pid)
        assert workers
        busy = threading.Thread(target=_request, args=(port, 120), daemon=True)
        busy.start()
        time.sleep(0.5)  # the request is being served
        master.send_signal(signal.SIGKILL)
        master.wait()
        assert wait_for(lambda: not any(alive(pid) for pid in workers), 15), "an orphaned worker lives on"
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if master.poll() is None:
            master.kill()
            master.wait()


def test_a_child_started_with_preexec_dies_with_its_parent(tmp_path: Path) -> None:
    """The parent (a Python process standing in for `make run`) starts a sleeper and is
    killed with SIGKILL: the sleeper goes too."""
    script = (
        "import subprocess, sys, time\n"
        "from shared.processes import preexec_die_with_parent\n"
        "child = subprocess.Popen(['sleep', '300'], preexec_fn=preexec_die_with_parent())\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(300)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    try:
        assert alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        assert wait_for(lambda: not alive(child), 10)
    finally:
        if alive(child):
            os.kill(child, signal.SIGKILL)
    assert preexec_die_with_parent  # imported for the module under test


def _answers(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/?s=0", timeout=1).status_code == 200
    except requests.RequestException:
        return False


def _request(port: int, seconds: float) -> None:
    try:
        requests.get(f"http://127.0.0.1:{port}/?s={seconds}", timeout=seconds + 5)
    except requests.RequestException:
        pass
