"""prometheus-client's multiprocess mode under gunicorn, without importing prometheus-client.

prometheus-client decides at import whether values go to per-process files, from
PROMETHEUS_MULTIPROC_DIR. gunicorn's `on_starting` hook (in the master, before any worker
forks and imports the app) calls `prepare_multiprocess_dir`, so every worker of one server
writes into one folder and `/metrics` on any worker reports all of them.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any, Final

MULTIPROC_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
_OWNED_ENV: Final = "PROTEUS_METRICS_DIR_OWNED"


def prepare_multiprocess_dir() -> str:
    """Point PROMETHEUS_MULTIPROC_DIR at an empty folder (a fresh temporary one when unset)."""
    path = os.environ.get(MULTIPROC_ENV)
    if path and os.environ.get(_OWNED_ENV) != path:
        folder = Path(path)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):  # a previous run's values would be added in
            stale.unlink()
        return path
    path = tempfile.mkdtemp(prefix="proteus-metrics-")
    os.environ[MULTIPROC_ENV] = path
    os.environ[_OWNED_ENV] = path
    return path


def on_starting(server: Any) -> None:
    """gunicorn hook (master, before the workers)."""
    prepare_multiprocess_dir()


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: a worker is gone; its live gauges (open sockets...) stop counting."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(worker.pid)


def on_exit(server: Any) -> None:
    """gunicorn hook: remove the folder this master made for itself."""
    owned = os.environ.get(_OWNED_ENV)
    if owned and owned == os.environ.get(MULTIPROC_ENV):
        shutil.rmtree(owned, ignore_errors=True)
