"""Gather calls that arrive together into one batch call (the GPU renders a batch at once).

    batcher = MicroBatcher(run_batch, max_size=4)
    with batcher.reserve() as slot:     # a request has arrived; a gathering batch waits for it
        item = prepare(request)         # checks, decoding (may fail: the slot is released)
        outcome = slot.submit(item)     # blocks this thread until its batch has run

`run_batch(items) -> outcomes` gets up to `max_size` items and returns one outcome per item,
in order. One worker thread runs the batches one after another. A batch starts with the
first item submitted and takes, up to `max_size`: every item already waiting, the items of
reserved slots still being prepared (for at most `arrival_timeout_s`), and items submitted
within `wait_s`. A lone request therefore starts at once, a burst becomes one batch, and
items that arrive while a batch runs form the next one. If `run_batch` raises, every item
of that batch gets the exception, raised in its own thread.
"""
from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class BatcherClosed(RuntimeError):
    """submit() after close()."""


class MicroBatcher(Generic[T, R]):
    """Runs concurrent submissions as batches of at most `max_size`, one batch at a time."""

    def __init__(self, run_batch: Callable[[Sequence[T]], Sequence[R]], *, max_size: int,
                 wait_s: float = 0.0, arrival_timeout_s: float = 1.0, name: str = "batcher") -> None:
        if max_size < 1:
            raise ValueError(f"max_size must be at least 1, got {max_size}")
        if wait_s < 0 or arrival_timeout_s < 0:
            raise ValueError(f"wait_s and arrival_timeout_s must be 0 or more, got {wait_s} and "
                             f"{arrival_timeout_s}")
        self.run_batch = run_batch
        self.max_size = max_size
        self.wait_s = wait_s
        self.arrival_timeout_s = arrival_timeout_s
        self._cond = threading.Condition()
        self._items: deque[tuple[T, Future[R]]] = deque()
        self._coming = 0  # reserved slots not yet submitted
        self._closed = False
        self._thread = threading.Thread(target=self._work, name=name, daemon=True)
        self._thread.start()

    def reserve(self) -> Slot[T, R]:
        """A slot for a request that has arrived and is being prepared (use it with `with`)."""
        with self._cond:
            if self._closed:
                raise BatcherClosed("the batcher is closed")
            self._coming += 1
        return Slot(self)

    def submit(self, item: T) -> R:
        """Run `item` in the next batch and return its outcome (or raise the batch's error)."""
        with self.reserve() as slot:
            return slot.submit(item)

    def close(self, timeout: float | None = None) -> None:
        """Finish what was submitted, then stop the worker thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    # -- slots ---------------------------------------------------------------------------

    def _enqueue(self, item: T) -> Future[R]:
        future: Future[R] = Future()
        with self._cond:
            self._coming -= 1
            self._items.append((item, future))
            self._cond.notify_all()
        return future

    def _release(self) -> None:
        with self._cond:
            self._coming -= 1
            self._cond.notify_all()

    # -- the worker ----------------------------------------------------------------------

    def _work(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._items or (self._closed and not self._coming))
                if not self._items:
                    return  # closed, and nothing more can arrive
                batch = self._gather()
            self._run(batch)

    def _gather(self) -> list[tuple[T, Future[R]]]:
        """Take the first item and those that join it (called holding the lock)."""
        start = time.monotonic()
        batch = [self._items.popleft()]
        while len(batch) < self.max_size:
            if self._items:
                batch.append(self._items.popleft())
                continue
            now = time.monotonic()
            if self._coming and now < start + self.arrival_timeout_s:
                self._cond.wait(start + self.arrival_timeout_s - now)
            elif now < start + self.wait_s:
                self._cond.wait(start + self.wait_s - now)
            else:
                break
        return batch

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


class Slot(Generic[T, R]):
    """One reserved place in a coming batch: submit an item once, or leave it unused."""

    def __init__(self, batcher: MicroBatcher[T, R]) -> None:
        self._batcher = batcher
        self._open = True

    def submit(self, item: T) -> R:
        if not self._open:
            raise RuntimeError("this slot was already used or released")
        self._open = False
        return self._batcher._enqueue(item).result()

    def release(self) -> None:
        """Give the slot up (nothing to render): a gathering batch stops waiting for it."""
        if self._open:
            self._open = False
            self._batcher._release()

    def __enter__(self) -> Slot[T, R]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()
