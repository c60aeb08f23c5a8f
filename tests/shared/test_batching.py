"""MicroBatcher: concurrent submissions become batches, each caller gets its own outcome."""
from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import pytest

from shared.batching import BatcherClosed, MicroBatcher


class Recorder:
    """run_batch that records each batch; `gate` holds the first batch until released."""

    def __init__(self, hold_first: bool = False) -> None:
        self.batches: list[list[int]] = []
        self.started = threading.Event()
        self.gate = threading.Event()
        if not hold_first:
            self.gate.set()

    def __call__(self, items: Sequence[int]) -> list[int]:
        self.batches.append(list(items))
        self.started.set()
        self.gate.wait(5)
        return [item * 10 for item in items]


def submit_all(batcher: MicroBatcher, items: list[int]) -> list[int]:
    with ThreadPoolExecutor(len(items)) as pool:
        return list(pool.map(batcher.submit, items))


def test_a_lone_submission_runs_at_once_and_gets_its_outcome() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_size=4)
    started = time.monotonic()
    assert batcher.submit(7) == 70
    assert time.monotonic() - started < 1 and run.batches == [[7]]
    batcher.close()


def test_submissions_that_arrive_while_a_batch_runs_form_the_next_batch() -> None:
    run = Recorder(hold_first=True)
    batcher = MicroBatcher(run, max_size=4)
    with ThreadPoolExecutor(6) as pool:
        first = pool.submit(batcher.submit, 1)
        assert run.started.wait(5)
        rest = [pool.submit(batcher.submit, n) for n in (2, 3, 4, 5, 6)]
        time.sleep(0.1)  # all five are queued behind the running batch
        run.gate.set()
        assert first.result(5) == 10 and [f.result(5) for f in rest] == [20, 30, 40, 50, 60]
    assert run.batches[0] == [1]
    assert sorted(map(len, run.batches[1:])) == [1, 4]  # never more than max_size
    assert sorted(n for batch in run.batches for n in batch) == [1, 2, 3, 4, 5, 6]
    batcher.close()


def test_the_wait_gathers_submissions_sent_together() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_size=4, wait_s=0.5)
    assert submit_all(batcher, [1, 2, 3, 4]) == [10, 20, 30, 40]
    assert len(run.batches) == 1 and sorted(run.batches[0]) == [1, 2, 3, 4]  # full: no waiting on
    batcher.close()


def test_a_batch_waits_for_requests_still_being_prepared_but_not_for_released_ones() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_size=4, arrival_timeout_s=5)
    prepared = threading.Event()

    def slow(n: int) -> int:  # arrives with the others, takes a while to prepare
        with batcher.reserve() as slot:
            prepared.wait(5)
            return slot.submit(n)

    def nothing_to_do() -> None:  # arrives, then finds nothing to render
        with batcher.reserve():
            prepared.wait(5)

    with ThreadPoolExecutor(4) as pool:
        late = pool.submit(slow, 2)
        idle = pool.submit(nothing_to_do)
        time.sleep(0.05)
        early = pool.submit(batcher.submit, 1)
        time.sleep(0.2)
        assert run.batches == []  # waiting for the slow one, not running without it
        prepared.set()
        assert (early.result(5), late.result(5), idle.result(5)) == (10, 20, None)
    assert len(run.batches) == 1 and sorted(run.batches[0]) == [1, 2]
    batcher.close()


def test_a_lone_request_waits_for_nobody() -> None:
    run = Recorder()
    batcher = MicroBatcher(run, max_size=4, arrival_timeout_s=5)
    started = time.monotonic()
    with batcher.reserve() as slot:
        assert slot.submit(3) == 30
    assert time.monotonic() - started < 0.5
    batcher.close()


def test_a_failed_batch_raises_in_every_caller_and_the_next_batch_still_runs() -> None:
    calls: list[list[int]] = []

    def run(items: Sequence[int]) -> list[int]:
        calls.append(list(items))
        if 13 in items:
            raise RuntimeError(f"cannot render {list(items)}")
        return list(items)

    batcher = MicroBatcher(run, max_size=2, wait_s=0.5)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(batcher.submit, n) for n in (13, 14)]
        for future in futures:
            with pytest.raises(RuntimeError, match="cannot render"):
                future.result(5)
    assert batcher.submit(5) == 5
    batcher.close()


def test_a_wrong_number_of_outcomes_is_an_error_not_a_silent_mismatch() -> None:
    batcher = MicroBatcher(lambda items: [], max_size=2)
    with pytest.raises(RuntimeError, match="0 outcomes for 1 items"):
        batcher.submit(1)
    batcher.close()


def test_close_finishes_what_was_submitted_then_refuses() -> None:
    run = Recorder(hold_first=True)
    batcher = MicroBatcher(run, max_size=1)
    with ThreadPoolExecutor(2) as pool:
        futures = [pool.submit(batcher.submit, n) for n in (1, 2)]
        assert run.started.wait(5)
        time.sleep(0.05)
        closer = threading.Thread(target=batcher.close)
        closer.start()
        run.gate.set()
        closer.join(5)
        assert [f.result(5) for f in futures] == [10, 20]
    with pytest.raises(BatcherClosed):
        batcher.submit(3)


@pytest.mark.parametrize("kwargs", [{"max_size": 0}, {"max_size": 2, "wait_s": -1},
                                    {"max_size": 2, "arrival_timeout_s": -1}])
def test_bad_settings_are_refused(kwargs) -> None:
    with pytest.raises(ValueError):
        MicroBatcher(lambda items: items, **kwargs)
