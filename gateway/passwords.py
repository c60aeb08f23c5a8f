"""Password hashing that never blocks the event loop: bcrypt on a pool of native threads.

bcrypt releases the GIL while it hashes, so a pool of one native thread per core uses every
core from one gateway process. Under gunicorn's gevent worker the pool is gevent's native
`ThreadPool` (the calling greenlet waits, every other greenlet and socket keeps running);
elsewhere (the threaded development server, tests) a `ThreadPoolExecutor`.

The pool's threads run at a lower CPU priority (nice +10) than the event loop, so when logins
arrive faster than the cores can hash them they queue among themselves while requests and
WebSocket pushes keep their latency.

New hashes use `Settings.bcrypt_rounds` (BCRYPT_ROUNDS, default 12). Hashes of a lower cost,
such as the original system's cost-10 `$2a$` hashes, keep verifying; `needs_upgrade` tells
the login to re-hash them at the current cost. An unknown e-mail is checked against a dummy
hash of the current cost, so its answer takes as long as a wrong password's.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import bcrypt

from shared.cpus import usable_cpus

T = TypeVar("T")
HASH_NICENESS = 10  # the hashing threads yield the CPU to the event loop
_COST = re.compile(r"^\$2[abxy]\$(\d\d)\$")


def pool_size() -> int:
    """One thread per core this process may run on (shared.cpus: affinity and CPU quota)."""
    return usable_cpus()


def hash_cost(password_hash: str | None) -> int | None:
    """The cost factor of a bcrypt hash, None if it is not one."""
    match = _COST.match(password_hash or "")
    return int(match.group(1)) if match else None


def hash_now(password: str, rounds: int) -> str:
    """bcrypt-hash `password` at cost `rounds` in the calling thread."""
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds)).decode("ascii")


def check_now(password: str, password_hash: str) -> bool:
    """True if `password` matches; False for a wrong one, an unusable hash or a >72-byte password."""
    try:
        return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))
    except (ValueError, UnicodeEncodeError):
        return False


def _at_low_priority(fn: Callable[..., T], *args: Any) -> T:
    """Run `fn` in a pool thread after lowering that thread's CPU priority (Linux: per thread)."""
    try:
        tid = threading.get_native_id()
        if os.getpriority(os.PRIO_PROCESS, tid) < HASH_NICENESS:
            os.setpriority(os.PRIO_PROCESS, tid, HASH_NICENESS)
    except (AttributeError, OSError):
        pass  # not Linux, or not allowed: hash at normal priority
    return fn(*args)


def _gevent_patched() -> bool:
    try:
        from gevent import monkey
    except ImportError:  # pragma: no cover - gevent is a gateway requirement
        return False
    return bool(monkey.is_module_patched("threading"))


class PasswordHasher:
    """Hash and verify passwords on a pool of `threads` native threads (default: one per core)."""

    def __init__(self, rounds: int, threads: int | None = None) -> None:
        self.rounds = rounds
        self.threads = threads or pool_size()
        self._lock = threading.Lock()
        self._pool: Any = None
        self._dummy: str | None = None

    def _run(self, fn: Callable[..., T], *args: Any) -> T:
        if self._pool is None:
            with self._lock:
                if self._pool is None:
                    if _gevent_patched():
                        from gevent.threadpool import ThreadPool

                        self._pool = ThreadPool(self.threads)
                    else:
                        from concurrent.futures import ThreadPoolExecutor

                        self._pool = ThreadPoolExecutor(self.threads, thread_name_prefix="proteus-bcrypt")
        pool = self._pool
        if hasattr(pool, "apply"):  # gevent: waits cooperatively
            return pool.apply(_at_low_priority, (fn, *args))  # type: ignore[no-any-return]
        return pool.submit(_at_low_priority, fn, *args).result()  # type: ignore[no-any-return]

    def hash(self, password: str) -> str:
        return self._run(hash_now, password, self.rounds)

    def verify(self, password: str, password_hash: str | None) -> bool:
        """Check a password against a stored hash (a missing hash costs the same and fails)."""
        if not password_hash:
            self.verify_unknown(password)
            return False
        return self._run(check_now, password, password_hash)

    def verify_unknown(self, password: str) -> None:
        """Spend a real check's time for an account that does not exist."""
        self._run(check_now, password, self.dummy_hash())

    def dummy_hash(self) -> str:
        """A hash of a random secret at the current cost (made once, on first use)."""
        if self._dummy is None:
            self._dummy = self._run(hash_now, os.urandom(16).hex(), self.rounds)
        return self._dummy

    def needs_upgrade(self, password_hash: str | None) -> bool:
        """True for a hash of a lower cost than the current one."""
        cost = hash_cost(password_hash)
        return cost is not None and cost < self.rounds

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if hasattr(pool, "kill"):
            pool.kill()
        else:
            pool.shutdown(wait=False)
