"""gunicorn settings for the gateway: `gunicorn -c gateway/gunicorn.conf.py 'gateway.app:create_app()'`.

Worker class: gevent. REST requests are greenlets; gunicorn's gevent worker monkey-patches
the standard library in the worker before the app is imported, so redis-py's sockets and
SQLAlchemy's pool cooperate, and psycopg 3 detects the patched `select` and uses a
cooperative wait. A WebSocket is a request only until its handshake, auth and replay are
done; then gateway/wsloop.py serves it (one selector loop for all sockets, ~1.3 KB per idle
socket), so open sockets do not count against worker_connections. bcrypt runs on native
threads (gateway/passwords.py). The app opens its connections lazily, after the fork.
Nothing here imports the app.

Workers: one per core the process may use (shared/cpus.py: its affinity, capped by a
container's CPU quota), since one gevent process runs Python on one core: on 2 cores two
workers serve about twice the REST requests of one. Each holds its own sockets and its own
Redis subscription (every completion reaches every worker, which pushes it to its own
sockets of that user), so memory per socket stays the same.

Deployment variables, read here as gunicorn reads its own config (not via Settings):
PORT (8000), WEB_CONCURRENCY (worker processes; default one per usable core),
GUNICORN_WORKER_CONNECTIONS (requests and WebSocket handshakes in flight per worker, 20000),
GUNICORN_TIMEOUT (30).
"""

from __future__ import annotations

import os
import resource
import signal
from typing import Any

from shared.cpus import usable_cpus
from shared.observability import multiproc


def _int(name: str, default: int) -> int:
    value = os.environ.get(name) or str(default)
    try:
        number = int(value)
    except ValueError:
        raise SystemExit(f"{name} must be an integer, got {value!r}") from None
    if number < 1:
        raise SystemExit(f"{name} must be at least 1, got {value!r}")
    return number


wsgi_app = "gateway.app:create_app()"
bind = [f"0.0.0.0:{_int('PORT', 8000)}"]
workers = _int("WEB_CONCURRENCY", usable_cpus())
worker_class = "gevent"
worker_connections = _int("GUNICORN_WORKER_CONNECTIONS", 20_000)
timeout = _int("GUNICORN_TIMEOUT", 30)
graceful_timeout = 10
keepalive = 5
backlog = 4096
accesslog = None
errorlog = "-"
proc_name = "proteus-gateway"
# gunicorn >= 25 opens a control socket at one shared default path ($HOME/.gunicorn/gunicorn.ctl),
# which every gunicorn on the machine (the functions, test servers) would fight over.
control_socket_disable = True


def _raise_fd_limit() -> None:
    """One file descriptor per socket: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = hard if hard != resource.RLIM_INFINITY else max(soft, 1_048_576)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError):
            pass


def on_starting(server: Any) -> None:
    multiproc.on_starting(server)  # Prometheus multiprocess mode, before the workers fork
    _raise_fd_limit()


def post_fork(server: Any, worker: Any) -> None:
    """Lift the fd limit; the worker dies with its master, even on SIGKILL (no orphan keeps the port)."""
    from shared.processes import die_with_parent

    _raise_fd_limit()
    die_with_parent(signal.SIGKILL, expected_parent=server.pid)


def worker_exit(server: Any, worker: Any) -> None:
    """Stop the WebSocket listener and close the worker's connections."""
    app = getattr(worker, "wsgi", None)
    extensions = getattr(app, "extensions", None)
    if extensions and "proteus" in extensions:
        extensions["proteus"].close()


child_exit = multiproc.child_exit
on_exit = multiproc.on_exit
