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

pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc")]


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
        proc = subprocess.Popen(
            [sys.executable, "-m", "shared.devstack", "--port", str(port), "--free-ports"],
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
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
            assert not left, (
                f"still running after make run stopped: {left}",
                (tmp_path / "devstack.log").read_text()[-3000:],
            )
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
        done = subprocess.run(
            [sys.executable, "-m", "shared.devstack", "--port", str(port), "--free-ports"],
            cwd=ROOT,
            env=stack_environ(tmp_path / "var", smoke_models_dir),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert done.returncode == 1, done.stderr[-2000:]
    assert f"port {port} for gateway is already in use" in done.stderr


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def find(root: int, needle: str) -> list[int]:
    """Living children of `root` whose command line contains `needle` (a gunicorn master, not its workers)."""
    return [pid for pid in descendants(root) if needle in cmdline(pid) and alive(pid) and parent(pid) == root]


def parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except OSError:
        return 0


def wait_until(condition, seconds: float, message: str) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, message
        time.sleep(0.2)


def running(log: Path) -> bool:
    return "Proteus is running" in log.read_text(errors="replace")


def serves(port: int) -> bool:
    try:
        return requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def test_make_run_restarts_crashed_processes_and_dies_whole(tmp_path: Path, smoke_models_dir: Path) -> None:
    """A killed weave master and a killed embedded Redis are started again (and the log says
    so); `make run` killed with SIGKILL takes every child with it, Redis included, and the
    next `make run` on the same ports and data starts cleanly."""
    port = free_port()
    env = stack_environ(tmp_path / "var", smoke_models_dir)
    seen: set[int] = set()
    logs = [tmp_path / "first.log", tmp_path / "second.log"]

    def start(log_path: Path) -> subprocess.Popen[bytes]:
        with open(log_path, "wb") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "shared.devstack", "--port", str(port), "--free-ports"],
                cwd=ROOT,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    proc = start(logs[0])
    try:
        wait_until(lambda: running(logs[0]) or proc.poll() is not None, 120, "make run never started")
        assert proc.poll() is None and serves(port), logs[0].read_text()[-3000:]
        seen |= descendants(proc.pid)
        weave = find(proc.pid, "functions/weave/gunicorn.conf.py")[0]
        redis_server = find(proc.pid, "redis-server")[0]
        os.kill(weave, signal.SIGKILL)
        os.kill(redis_server, signal.SIGKILL)
        wait_until(
            lambda: (
                [p for p in find(proc.pid, "functions/weave/gunicorn.conf.py") if p != weave]
                and [p for p in find(proc.pid, "redis-server") if p != redis_server]
            ),
            60,
            "weave or Redis was not started again",
        )
        assert proc.poll() is None
        text = logs[0].read_text()
        assert "weave exited with code -9; restarting it" in text and "redis exited with code -9" in text
        seen |= descendants(proc.pid)

        proc.send_signal(signal.SIGKILL)
        proc.wait()
        wait_until(
            lambda: not [pid for pid in seen if alive(pid)],
            20,
            f"children outlived make run: {[cmdline(p) for p in seen if alive(p)]}",
        )

        proc = start(logs[1])
        wait_until(lambda: running(logs[1]) or proc.poll() is not None, 120, "the second make run never started")
        assert proc.poll() is None and serves(port), logs[1].read_text()[-3000:]
        seen |= descendants(proc.pid)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, logs[1].read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for pid in seen | descendants(proc.pid):
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_a_process_that_keeps_crashing_stops_the_stack(tmp_path: Path) -> None:
    """Restarted with backoff, then given up on with CrashLoop (make run exits 1 with it)."""
    from shared.devstack import CrashLoop, DevStack

    stack = DevStack(log_dir=tmp_path, restart_backoff_s=0.01, restart_backoff_max_s=0.05, max_restarts=3)
    stack.spawn("crasher", ["-c", "import sys; print('crashing', flush=True); sys.exit(3)"])
    starts = 0
    try:
        with pytest.raises(CrashLoop, match=r"crasher keeps crashing: it exited with code 3 after 3 restarts"):
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                pid = stack.processes["crasher"].pid
                stack.supervise()
                starts += stack.processes["crasher"].pid != pid
                time.sleep(0.01)
    finally:
        stack.stop()
    assert starts == 3
