"""Child processes that die with their parent, even when the parent is killed with SIGKILL.

Linux delivers a chosen signal to a process when the thread that forked it exits
(prctl PR_SET_PDEATHSIG). `make run` sets it in every child it starts, gunicorn's masters
set it in every worker they fork, so nothing lives on holding a port or a batch after its
parent is gone. Elsewhere (macOS) these are no-ops: clean stops still stop everything.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import sys
from collections.abc import Callable

PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGKILL, *, expected_parent: int | None = None) -> bool:
    """Ask the kernel to send `signum` to this process when its parent exits.

    With `expected_parent`, a parent that already died before the request (the race
    between fork and prctl) makes this process exit at once. Returns whether it is armed.
    """
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        armed = libc.prctl(PR_SET_PDEATHSIG, int(signum), 0, 0, 0) == 0
    except OSError:
        return False
    if armed and expected_parent is not None and os.getppid() != expected_parent:
        os._exit(1)  # the parent is already gone: the signal will never come
    return armed


def preexec_die_with_parent() -> Callable[[], None]:
    """A `preexec_fn` for subprocess.Popen: the child gets SIGKILL when this process dies.

    Start children with it from the thread that lives as long as the process (the main
    thread): the kernel fires when the forking *thread* exits.
    """
    parent = os.getpid()

    def arm() -> None:
        die_with_parent(signal.SIGKILL, expected_parent=parent)

    return arm
