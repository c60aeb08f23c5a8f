"""The stream runner in pull mode (in process) and its batches, pulled and over HTTP."""

from __future__ import annotations

import time

from shared.routing import route_for_consumer
from shared.streams import publish

from .conftest import dead_letters, pending, progress, push, streams, wait_for, weave_request


class TestPullMode:
    def test_retry_then_success_in_process(self, rds, runner_settings, toy, start_runner, redis_prefix):
        stream, dead, _ = streams(redis_prefix)
        event = progress()
        job = event.get_data()["job_id"]
        toy.plan[job] = ["fail", "ok"]
        start_runner(runner_settings, pull={"notify": toy})
        publish(rds, event, prefix=redis_prefix)
        wait_for(lambda: toy.count(job) == 2 and pending(rds, stream) == 0, message="pulled and acked")
        assert rds.xlen(dead) == 0

    def test_non_retryable_error_is_dead_lettered_at_once(self, rds, runner_settings, toy, start_runner, redis_prefix):
        _, dead, _ = streams(redis_prefix)
        event = progress()
        toy.plan[event.get_data()["job_id"]] = ["bad"]
        start_runner(runner_settings, pull={"notify": toy})
        publish(rds, event, prefix=redis_prefix)
        (letter,) = wait_for(lambda: dead_letters(rds, dead), message="dead letter")
        assert letter["status"] == "400" and letter["attempts"] == "1"

    def test_bug_is_retried_then_dead_lettered(self, rds, runner_settings, toy, start_runner, redis_prefix):
        weave = route_for_consumer("weave")
        dead = redis_prefix + weave.dead_letter_stream
        event = weave_request()
        toy.always[event.get_data()["job_id"]] = "boom"
        start_runner(runner_settings, routes=[weave], pull={"weave": toy})
        publish(rds, event, prefix=redis_prefix)
        (letter,) = wait_for(lambda: dead_letters(rds, dead), message="dead letter")
        assert letter["attempts"] == "3" and letter["status"] == "500" and "RuntimeError: poison" in letter["error"]

    def test_schema_violation_is_dead_lettered_naming_the_field(
        self, rds, runner_settings, toy, start_runner, redis_prefix
    ):
        stream, dead, _ = streams(redis_prefix)
        event = progress()
        event.get_data()["steps"] = 0  # broken after publish's validation, as a foreign producer might
        from shared.events import to_stream_fields

        rds.xadd(stream, to_stream_fields(event))
        start_runner(runner_settings, pull={"notify": toy})
        (letter,) = wait_for(lambda: dead_letters(rds, dead), message="dead letter")
        assert "data.steps" in letter["error"] and letter["status"] == "400" and toy.calls == []

    def test_pull_waits_for_readiness(self, rds, runner_settings, toy, start_runner, redis_prefix):
        toy.state = {"ready": False}
        start_runner(runner_settings, pull={"notify": toy})
        publish(rds, progress(), prefix=redis_prefix)
        time.sleep(0.2)
        assert toy.calls == []
        toy.state = {"ready": True}
        wait_for(lambda: len(toy.calls) == 1, message="delivery once ready")


class TestPullBatches:
    """A pulled function with handle_batch (and max_batch in its readiness) gets one read's
    entries together (how weave batches under KEDA)."""

    def test_one_call_for_the_entries_of_a_read_each_settled_on_its_own(
        self, rds, runner_settings, toy, start_runner, redis_prefix
    ):
        from shared.errors import BadRequest, TransientError

        class Batching:
            def __init__(self) -> None:
                self.batches: list[list[str]] = []
                self.failed_once: set[str] = set()

            def handle(self, event):  # the retry of a single entry comes here
                return None

            def handle_batch(self, events):
                jobs = [e.get_data()["job_id"] for e in events]
                self.batches.append(jobs)
                outcomes = []
                for job in jobs:
                    if job.startswith("bad"):
                        outcomes.append(BadRequest(f"cannot use {job}"))
                    elif job.startswith("flaky") and job not in self.failed_once:
                        self.failed_once.add(job)
                        outcomes.append(TransientError(f"try {job} again"))
                    else:
                        outcomes.append(None)
                return outcomes

            def readiness(self):
                return {"ready": True, "max_batch": 8}

        function = Batching()
        stream, dead, _ = streams(redis_prefix)
        for job in ("ok-1", "bad-2", "flaky-3"):
            publish(rds, progress(job_id=job), prefix=redis_prefix)
        start_runner(runner_settings, pull={"notify": function})
        wait_for(lambda: function.batches and function.failed_once and pending(rds, stream) == 0, message="all settled")
        assert function.batches[0] == ["ok-1", "bad-2", "flaky-3"]  # one call for the read
        (letter,) = dead_letters(rds, dead)
        assert letter["status"] == "400" and "cannot use bad-2" in letter["error"]
        assert function.failed_once == {"flaky-3"}  # retried (alone) and then acknowledged

    def test_a_batch_that_raises_fails_each_of_its_entries(self, rds, runner_settings, start_runner, redis_prefix):
        class Broken:
            calls = 0

            def handle(self, event):
                return None

            def handle_batch(self, events):
                Broken.calls += 1
                raise RuntimeError("the GPU fell over")

            def readiness(self):
                return {"ready": True, "max_batch": 8}

        stream, dead, _ = streams(redis_prefix)
        for job in ("a", "b"):
            publish(rds, progress(job_id=job), prefix=redis_prefix)
        start_runner(runner_settings, pull={"notify": Broken()})
        wait_for(lambda: Broken.calls == 1 and pending(rds, stream) == 0, message="retried singly and acknowledged")
        assert Broken.calls == 1 and dead_letters(rds, dead) == []


class TestHttpBatches:
    """A function that reports max_batch (weave) gets what is waiting, up to that many, in one
    batched request; each entry is still acknowledged, retried or dead-lettered on its own."""

    def test_up_to_the_bound_go_in_one_request_and_no_more_are_claimed(
        self, rds, runner_settings, batch_function_url, batching_toy, start_runner, redis_prefix
    ):
        stream, dead, _ = streams(redis_prefix)
        toy = batching_toy
        events = [progress() for _ in range(5)]
        for event in events:
            toy.always[event.get_data()["job_id"]] = "block"
            publish(rds, event, prefix=redis_prefix)
        start_runner(push(runner_settings, batch_function_url))
        wait_for(lambda: len(toy.calls) == 1, message="the first batch")
        time.sleep(0.2)
        assert [len(b) for b in toy.batches] == [3] and pending(rds, stream) == 3  # the other two wait
        toy.release.set()
        wait_for(lambda: len(toy.calls) == 5 and pending(rds, stream) == 0, message="all acknowledged")
        assert [len(b) for b in toy.batches] == [3, 2]
        assert sorted(toy.calls) == sorted(e.get_data()["job_id"] for e in events)
        assert rds.exists(dead) == 0

    def test_each_entry_of_a_batch_is_retried_on_its_own(
        self, rds, runner_settings, batch_function_url, batching_toy, start_runner, redis_prefix
    ):
        stream, dead, _ = streams(redis_prefix)
        toy = batching_toy
        good, flaky, bad = progress(), progress(), progress()
        toy.plan[flaky.get_data()["job_id"]] = ["fail"]
        toy.always[bad.get_data()["job_id"]] = "bad"
        for event in (good, flaky, bad):
            publish(rds, event, prefix=redis_prefix)
        start_runner(push(runner_settings, batch_function_url))
        wait_for(
            lambda: pending(rds, stream) == 0 and toy.count(flaky.get_data()["job_id"]) == 2,
            message="retry and dead letter",
        )
        assert toy.batches[0] == [e.get_data()["job_id"] for e in (good, flaky, bad)]
        assert toy.count(good.get_data()["job_id"]) == 1
        (letter,) = dead_letters(rds, dead)
        assert bad.get_data()["job_id"] in letter["fields"] and letter["status"] == "400"

    def test_a_lone_entry_goes_at_once_alone(
        self, rds, runner_settings, batch_function_url, batching_toy, start_runner, redis_prefix
    ):
        stream, _, _ = streams(redis_prefix)
        start_runner(push(runner_settings, batch_function_url))
        event = progress()
        publish(rds, event, prefix=redis_prefix)
        wait_for(lambda: pending(rds, stream) == 0 and batching_toy.calls, message="delivery")
        assert batching_toy.calls == [event.get_data()["job_id"]] and batching_toy.batches == []

    def test_a_function_that_does_not_batch_gets_one_entry_at_a_time(
        self, rds, runner_settings, function_url, toy, start_runner, redis_prefix
    ):
        events = [progress() for _ in range(3)]
        for event in events:
            toy.always[event.get_data()["job_id"]] = "block"
            publish(rds, event, prefix=redis_prefix)
        start_runner(push(runner_settings, function_url).with_overrides(weave_max_batch=3))
        wait_for(lambda: len(toy.calls) == 1, message="first delivery")
        time.sleep(0.2)
        assert len(toy.calls) == 1
        toy.release.set()
        wait_for(lambda: len(toy.calls) == 3, message="the rest, in order")
        assert toy.calls == [e.get_data()["job_id"] for e in events]
