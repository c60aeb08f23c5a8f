"""The gunicorn configuration every function shares.

A function's `gunicorn.conf.py` is two lines:

    from shared.gunicorn_base import gunicorn_config
    globals().update(gunicorn_config("weave"))

Deployment variables (read here, as gunicorn reads its own config file, not via Settings):
PORT (default: the function's port in shared.routing.FUNCTION_PORTS), WEB_CONCURRENCY
(worker processes), GUNICORN_THREADS (threads per worker), GUNICORN_TIMEOUT (seconds).
"""

from __future__ import annotations

import os
import signal
from collections.abc import Mapping
from typing import Any

from shared.config import ConfigError
from shared.observability import multiproc
from shared.processes import die_with_parent
from shared.routing import FUNCTION_PORTS

# weave holds one model per process on one GPU: one worker that takes one request at a
# time (a batch of jobs, the CloudEvents batched mode), plus one thread for the probes
# while a batch runs; a timeout long enough for a full-resolution batch.
_DEFAULTS: dict[str, dict[str, int]] = {
    "weave": {"workers": 1, "threads": 2, "timeout": 600},
    "tailor": {"workers": 1, "threads": 2, "timeout": 300},
}
_GENERIC = {"workers": 2, "threads": 4, "timeout": 60}


def gunicorn_config(name: str, environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """gunicorn settings for function `name` (bind, workers, threads, timeout, hooks)."""
    if name not in FUNCTION_PORTS:
        raise KeyError(f"unknown function {name!r}; known: {', '.join(FUNCTION_PORTS)}")
    env = os.environ if environ is None else environ
    defaults = _DEFAULTS.get(name, _GENERIC)
    port = _int(env, "PORT", FUNCTION_PORTS[name])
    threads = _int(env, "GUNICORN_THREADS", defaults["threads"])
    return {
        "wsgi_app": f"functions.{name}.main:create_app()",
        "bind": [f"0.0.0.0:{port}"],
        "workers": _int(env, "WEB_CONCURRENCY", defaults["workers"]),
        "threads": threads,
        "worker_class": "gthread" if threads > 1 else "sync",
        "timeout": _int(env, "GUNICORN_TIMEOUT", defaults["timeout"]),
        "graceful_timeout": 30,
        "keepalive": 5,
        "accesslog": None,  # the runtime logs one JSON line per event instead
        "errorlog": "-",
        "proc_name": f"proteus-{name}",
        # gunicorn 27's control socket lives at one path per user: several servers on one
        # machine (make run, the tests) would fight over it, and nothing here uses it.
        "control_socket_disable": True,
        "post_fork": post_fork,
        "worker_exit": worker_exit,
        # Prometheus multiprocess mode: one metrics folder per server, shared by its workers.
        "on_starting": multiproc.on_starting,
        "child_exit": multiproc.child_exit,
        "on_exit": multiproc.on_exit,
    }


def post_fork(server: Any, worker: Any) -> None:
    """gunicorn hook: a worker dies with its master, even one killed in the middle of a batch
    (an orphan would keep the port's batch running and a restarted master could not bind)."""
    die_with_parent(signal.SIGKILL, expected_parent=server.pid)


def worker_exit(server: Any, worker: Any) -> None:
    """gunicorn hook: let the function release its resources (models, connections)."""
    from shared.runtime import close_function_app

    app = getattr(worker, "wsgi", None)
    if app is not None and hasattr(app, "extensions"):
        close_function_app(app)


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    value = env.get(name)
    if value in (None, ""):
        return default
    try:
        number = int(value)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {value!r}", field=name) from None
    if number < 1:
        raise ConfigError(f"{name} must be at least 1, got {value!r}", field=name)
    return number
