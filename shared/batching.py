"""Gather calls that arrive together into one batch call (the GPU renders a batch at once).

    batcher = MicroBatcher(run_batch, max_size=4, wait_s=0.05)
    outcome = batcher.submit(item)      # blocks this thread until its batch has run

`run_batch(items) -> outcomes` gets up to `max_size` items and returns one outcome per item,
in order. One worker thread runs the batches one after another: the first item of a batch
starts it, and everything submitted before the batch starts (waiting up to `wait_s` for
more, never beyond `max_size`) joins it. Items that arrive while a batch runs form the
next one, so under load batches fill up by themselves. If `run_batch` raises, every item
of that batch gets the exception raised in its own thread.
"""
from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")

_STOP = object()


class BatcherClosed(RuntimeError):
    """submit() after close()."""


class MicroBatcher(Generic[T, R]):
    """Runs concurrent submissions as batches of at most `max_size`, one batch at a time."""

    def __init__(self, run_batch: Callable[[Sequence[T]], Sequence[R]], *, max_size: int,
                 wait_s: float = 0.0, name: str = "batcher") -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if wait_s < 0:
            raise ValueError(f"wait_s must be 0 or more, got {wait_s}")
        self.run_batch = run_batch
        self.max_size = max_size
        self.wait_s = wait_s
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def submit(self, item: T) -> R:
        """Run `item` in the next batch and return its outcome (or raise the batch's error)."""
        future: Future[R] = Future()
        with self._lock:
            if self._closed:
                raise BatcherClosed("the batcher is closed")
            self._queue.put((item, future))
        return future.result()

    def close(self, timeout: float | None = None) -> None:
        """Finish what was submitted, then stop the worker thread."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(_STOP)
        self._thread.join(timeout)

    # -- the worker ----------------------------------------------------------------------

    def _work(self) -> None:
        stopping = False
        while not stopping:
            first = self._queue.get()
            if first is _STOP:
                return
            batch = [first]
            deadline = time.monotonic() + self.wait_s
            while len(batch) < self.max_size:
                try:
                    remaining = deadline - time.monotonic()
                    nxt = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stopping = True
                    break
                batch.append(nxt)
            self._run(batch)

    def _run(self, batch: list[tuple[T, Future[R]]]) -> None:
        try:
            outcomes = list(self.run_batch([item for item, _ in batch]))
            if len(outcomes) != len(batch):
                raise RuntimeError(f"run_batch returned {len(outcomes)} outcomes for {len(batch)} items")
        except BaseException as exc:  # noqa: BLE001 - handed to every caller of this batch
            for _, future in batch:
                future.set_exception(exc)
            return
        for (_, future), outcome in zip(batch, outcomes):
            future.set_result(outcome)
