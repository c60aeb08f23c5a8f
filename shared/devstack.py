"""The whole system on one machine, as real processes: what `make run` starts.

Migrates the database, starts an embedded Redis (unless REDIS_URL is set), writes the
smoke models when no real weights exist, then starts every function under gunicorn (one
port each), the stream runner, the reconciler (shared.reconcile) and the gateway, and
waits until each answers `/readyz`.
Tests use the same class with their own folder and ports, so what they test is what
`make run` runs.

`make run` supervises what it started, as Kubernetes would: a process that exits is
started again after a backoff (1 s doubling to 30 s; reset once it has run for 30 s),
and said so in the log; one that crashes `max_restarts` times in a row stops the stack
with a non-zero exit. Every child dies with `make run`, even when it is killed with
SIGKILL (shared.processes), so the next `make run` finds its ports free.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import IO

import requests

from shared.config import Settings
from shared.processes import preexec_die_with_parent
from shared.redis_client import EmbeddedRedis, start_embedded_redis
from shared.routing import FUNCTION_PORTS

log = logging.getLogger("proteus.devstack")
REPO_ROOT = Path(__file__).resolve().parent.parent
FUNCTIONS: tuple[str, ...] = tuple(FUNCTION_PORTS)
REDIS = "redis"  # the embedded Redis, in supervision and its log


def free_port() -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class StackError(RuntimeError):
    """A process of the stack did not start; the message carries the end of its log."""


class CrashLoop(StackError):
    """A process kept crashing: it was restarted `max_restarts` times and exited again."""


class DevStack:
    """Starts and stops every Proteus process. Use as a context manager."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        gateway_port: int = 8000,
        function_ports: Mapping[str, int] | None = None,
        log_dir: Path | None = None,
        ready_timeout_s: float = 180.0,
        restart_backoff_s: float = 1.0,
        restart_backoff_max_s: float = 30.0,
        max_restarts: int = 5,
        stable_after_s: float = 30.0,
        metrics_port: int | None = None,
    ) -> None:
        self.environ = dict(os.environ if environ is None else environ)
        self.gateway_port = gateway_port
        # The runner's /metrics: METRICS_PORT (8106) beside the default ports, else a free one.
        self.metrics_port = metrics_port or (free_port() if function_ports is not None else None)
        self.function_ports = dict(function_ports or FUNCTION_PORTS)
        self.log_dir = log_dir
        self.ready_timeout_s = ready_timeout_s
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self._logs: dict[str, IO[bytes]] = {}
        self._redis_server: EmbeddedRedis | None = None
        self.settings: Settings | None = None
        self.restart_backoff_s = restart_backoff_s
        self.restart_backoff_max_s = restart_backoff_max_s
        self.max_restarts = max_restarts
        self.stable_after_s = stable_after_s
        self._commands: dict[str, tuple[list[str], int | None]] = {}
        self._started_at: dict[str, float] = {}
        self._crashes: dict[str, int] = {}
        self._restart_at: dict[str, float] = {}

    @property
    def runner_metrics_url(self) -> str:
        """The stream runner's Prometheus page."""
        return f"http://127.0.0.1:{self.metrics_port}/metrics"

    @property
    def gateway_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway_port}"

    def function_url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.function_ports[name]}/"

    # -- lifecycle ----------------------------------------------------------------------

    def __enter__(self) -> DevStack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        self._check_ports_free()
        env = self.environ
        env.setdefault("PUBLIC_URL", self.gateway_url)
        settings = Settings.from_env(env)
        env["JWT_SECRET"] = settings.jwt_secret  # every process signs and checks with the same one
        Path(settings.data_dir).mkdir(parents=True, exist_ok=True)
        self._prepare_models(settings, env)
        from shared.db.migrate import upgrade

        upgrade(settings.database_url)
        if not settings.redis_url:
            self._redis_server, env["REDIS_URL"] = start_embedded_redis(settings.data_dir, die_with_parent=True)
            self._started_at[REDIS] = time.monotonic()
        for name in self.function_ports:
            env[f"{name.upper()}_URL"] = self.function_url(name)
        env.setdefault("PYTHONUNBUFFERED", "1")
        if self.metrics_port is not None:
            env["METRICS_PORT"] = str(self.metrics_port)
        self.settings = Settings.from_env(env)
        self.metrics_port = self.settings.metrics_port

        for name, port in self.function_ports.items():
            self.spawn(
                name,
                ["-m", "gunicorn", "-c", f"functions/{name}/gunicorn.conf.py", f"functions.{name}.main:create_app()"],
                port,
            )
        self.spawn(
            "gateway",
            ["-m", "gunicorn", "-c", "gateway/gunicorn.conf.py", "gateway.app:create_app()"],
            self.gateway_port,
        )
        self._wait_ready(
            {name: self.function_url(name) for name in self.function_ports} | {"gateway": self.gateway_url + "/"}
        )
        self.spawn("runner", ["-m", "shared.streams.runner"], None)
        if self.settings.retention_interval_s > 0:  # the cluster runs it as a CronJob instead
            every = str(self.settings.retention_interval_s)
            self.spawn("retention", ["-m", "shared.lifecycle.sweep", "--every", every], None)
        # At start-up (a restart after data loss heals) and every RECONCILE_INTERVAL_S.
        self.spawn("reconciler", ["-m", "shared.reconcile", "--every", f"{self.settings.reconcile_interval_s:g}"])

    def stop(self) -> None:
        for proc in self.processes.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for name, proc in self.processes.items():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop in time; killing it", name)
                self.kill(name)
        self.processes.clear()
        self._restart_at.clear()
        for handle in self._logs.values():
            handle.close()
        self._logs.clear()
        server, self._redis_server = self._redis_server, None
        if server is not None:
            server.close()

    # -- helpers --------------------------------------------------------------------------

    def _check_ports_free(self) -> None:
        """Refuse to start beside something that already listens on one of our ports: its
        readiness would pass for ours, and this stack would use another one's processes."""
        for name, port in {"gateway": self.gateway_port, **self.function_ports}.items():
            with socket.socket() as sock:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as gunicorn binds
                try:
                    sock.bind(("0.0.0.0", port))
                except OSError as exc:
                    raise StackError(
                        f"port {port} for {name} is already in use ({exc.strerror}): stop what "
                        f"listens there (another `make run`?) or choose other ports"
                    ) from None

    def _prepare_models(self, settings: Settings, env: dict[str, str]) -> None:
        """Write the smoke models when the configuration may use them and they are missing."""
        smoke_dir = Path(settings.models_dir) / "smoke"
        wants_smoke = settings.weave_model != "real" or settings.tailor_model != "real"
        if wants_smoke and not (smoke_dir / ".complete").exists():
            for module in ("functions.weave.smoke", "functions.tailor.smoke"):
                subprocess.run(
                    [sys.executable, "-m", module, "--out", str(smoke_dir)], check=True, cwd=REPO_ROOT, env=env
                )
            (smoke_dir / ".complete").write_text("written by shared.devstack\n")

    def spawn(self, name: str, args: list[str], port: int | None = None) -> None:
        """Start `python <args>` as process `name` (with PORT=`port`), supervised like the rest."""
        self._commands[name] = (args, port)
        self._started_at[name] = time.monotonic()
        env = dict(self.environ)
        if port is not None:
            env["PORT"] = str(port)
        stdout: IO[bytes] | None = None
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            stdout = self._logs[name] = open(self.log_dir / f"{name}.log", "wb")
        self.processes[name] = subprocess.Popen(
            [sys.executable, *args],
            cwd=REPO_ROOT,
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT if stdout is not None else None,
            start_new_session=True,  # its own process group: kill() reaches gunicorn's workers too
            preexec_fn=preexec_die_with_parent(),  # gone with us, even on SIGKILL
        )

    def kill(self, name: str) -> None:
        """Kill process `name` and every process it started, at once (a crash: no clean-up)."""
        proc = self.processes[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def restart(self, name: str) -> None:
        """Start process `name` again (tests kill one to prove redelivery)."""
        args, port = self._commands[name]
        self.spawn(name, args, port)
        if port is not None:
            url = self.gateway_url + "/" if name == "gateway" else self.function_url(name)
            self._wait_ready({name: url})

    # -- supervision ------------------------------------------------------------------------

    def supervise(self) -> None:
        """Restart every process that exited, after its backoff; call it every half second.

        Raises CrashLoop when one exits again after `max_restarts` restarts in a row.
        """
        now = time.monotonic()
        children: dict[str, subprocess.Popen[bytes] | None] = dict(self.processes)
        if self._redis_server is not None:
            children[REDIS] = self._redis_server.process
        for name, proc in children.items():
            if name in self._restart_at:
                if now >= self._restart_at[name]:
                    del self._restart_at[name]
                    self._start_again(name)
                continue
            code = None if proc is None else proc.poll()
            if proc is not None and code is None:
                if now - self._started_at.get(name, now) >= self.stable_after_s:
                    self._crashes.pop(name, None)  # it has run long enough: forget old crashes
                continue
            crashes = self._crashes[name] = self._crashes.get(name, 0) + 1
            if crashes > self.max_restarts:
                raise CrashLoop(
                    f"{name} keeps crashing: it exited with code {code} after {crashes - 1} restarts "
                    f"in a row; stopping\n{self.log_tail(name)}"
                )
            delay = min(self.restart_backoff_s * 2 ** (crashes - 1), self.restart_backoff_max_s)
            log.warning(
                "%s exited with code %s; restarting it in %.1f s (restart %d of at most %d in a row)",
                name,
                code,
                delay,
                crashes,
                self.max_restarts,
            )
            if name != REDIS:
                self.kill(name)  # what is left of its process group (gunicorn's workers)
            self._restart_at[name] = now + delay

    def _start_again(self, name: str) -> None:
        if name == REDIS:
            assert self.settings is not None
            self._redis_server, _url = start_embedded_redis(self.settings.data_dir, die_with_parent=True)
            self._started_at[name] = time.monotonic()
        else:
            args, port = self._commands[name]
            self.spawn(name, args, port)
        log.warning("%s restarted", name)

    def log_tail(self, name: str, lines: int = 40) -> str:
        if self.log_dir is None or not (self.log_dir / f"{name}.log").exists():
            return "(no log file)"
        return "\n".join((self.log_dir / f"{name}.log").read_text(errors="replace").splitlines()[-lines:])

    def _wait_ready(self, urls: Mapping[str, str]) -> None:
        pending = dict(urls)
        deadline = time.monotonic() + self.ready_timeout_s
        while pending:
            for name, url in list(pending.items()):
                proc = self.processes[name]
                if proc.poll() is not None:
                    raise StackError(f"{name} exited with code {proc.returncode}:\n{self.log_tail(name)}")
                try:
                    if requests.get(url.rstrip("/") + "/readyz", timeout=2).status_code == 200:
                        del pending[name]
                except requests.RequestException:
                    pass
            if pending and time.monotonic() > deadline:
                names = ", ".join(pending)
                raise StackError(
                    f"not ready after {self.ready_timeout_s:.0f} s: {names}\n{self.log_tail(next(iter(pending)))}"
                )
            if pending:
                time.sleep(0.2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run every Proteus process on this machine.")
    parser.add_argument("--port", type=int, default=int(os.environ.get("GATEWAY_PORT", "8000")), help="gateway port")
    parser.add_argument(
        "--free-ports",
        action="store_true",
        help=f"run the functions on free ports instead of {min(FUNCTION_PORTS.values())}-"
        f"{max(FUNCTION_PORTS.values())}",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    stop = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stop
        stop = True

    # The processes run in their own process groups, so a terminal's Ctrl-C or hang-up
    # reaches only this one: it stops them all.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, on_signal)
    ports = {name: free_port() for name in FUNCTIONS} if args.free_ports else None
    try:
        with DevStack(gateway_port=args.port, function_ports=ports) as stack:
            print(f"\n  Proteus is running: open {stack.gateway_url}/  (Ctrl-C stops everything)\n", flush=True)
            while not stop:
                stack.supervise()
                time.sleep(0.5)
    except StackError as exc:
        print(f"make run: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
