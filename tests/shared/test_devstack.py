"""`make run` (python -m shared.devstack): it serves, and Ctrl-C or a closed terminal stops
every process it started, gunicorn's workers included."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from shared.devstack import free_port
from tests.conftest import stack_environ

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")]


def descendants(pid: int) -> set[int]:
    """Every living process under `pid` (from /proc)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            parents[int(entry.name)] = int(stat.rsplit(")", 1)[1].split()[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGHUP], ids=["ctrl-c", "hang-up"])
def test_make_run_serves_then_stops_every_process(tmp_path: Path, smoke_models_dir: Path, signum: int) -> None:
    port = free_port()
    env = stack_environ(tmp_path / "var", smoke_models_dir)  # SQLite and the embedded Redis
    with open(tmp_path / "devstack.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "shared.devstack", "--port", str(port), "--free-ports"],
                                cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
        started: set[int] = set()  # every process seen under it, for the clean-up below
        try:
            deadline = time.monotonic() + 120
            while True:
                started |= descendants(proc.pid)
                assert proc.poll() is None, (tmp_path / "devstack.log").read_text()[-3000:]
                assert time.monotonic() < deadline, "make run never served /health"
                try:
                    if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                        break
                except requests.RequestException:  # not listening yet, or still starting
                    pass
                time.sleep(0.3)
            started |= descendants(proc.pid)
            assert len(started) >= 7, started  # gateway, five functions, the runner, gunicorn workers
            proc.send_signal(signum)
            assert proc.wait(60) == 0, (tmp_path / "devstack.log").read_text()[-3000:]
            deadline = time.monotonic() + 20
            while (left := [pid for pid in started if alive(pid)]) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert not left, (f"still running after make run stopped: {left}",
                              (tmp_path / "devstack.log").read_text()[-3000:])
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            for pid in started | descendants(proc.pid):
                if alive(pid):
                    os.kill(pid, signal.SIGKILL)


def test_make_run_refuses_a_port_already_in_use(tmp_path: Path, smoke_models_dir: Path) -> None:
    """Something else on the gateway's port: a clear message, exit 1, nothing left running
    (before, readiness would have passed against the other server)."""
    with socket.socket() as busy:
        busy.bind(("0.0.0.0", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "shared.devstack", "--port", str(port), "--free-ports"],
                              cwd=ROOT, env=stack_environ(tmp_path / "var", smoke_models_dir),
                              capture_output=True, text=True, timeout=120)
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"port {port} for gateway is already in use" in done.stderr
