"""The stream runner against real Redis and a real HTTP function: acknowledgement, retries,
reclaiming, readiness, and what a dead letter tells."""

from __future__ import annotations

import time

import pytest

from shared.devstack import free_port
from shared.routing import route_for_consumer
from shared.streams import publish

from .conftest import NOTIFY, dead_letters, pending, progress, push, serve, streams, wait_for, weave_request


def test_entry_is_acknowledged_only_after_the_2xx(rds, runner_settings, function_url, toy, start_runner, redis_prefix):
    stream, dead, attempts = streams(redis_prefix)
    event = progress()
    job = event.get_data()["job_id"]
    toy.plan[job] = ["block"]
    start_runner(push(runner_settings, function_url))
    publish(rds, event, prefix=redis_prefix)
    wait_for(lambda: toy.count(job) == 1, message="delivery")
    time.sleep(0.1)
    assert pending(rds, stream) == 1, "acknowledged before the function answered"
    toy.release.set()
    wait_for(lambda: pending(rds, stream) == 0, message="ack")
    assert rds.exists(attempts) == 0 and rds.exists(dead) == 0


def test_a_new_entry_s_first_attempt_is_on_record_while_it_is_delivered(
    rds, runner_settings, function_url, toy, start_runner, redis_prefix
):
    """Counted while the function works (not a round trip before it), yet before its answer:
    a runner that dies mid-delivery has still spent the attempt."""
    stream, dead, attempts = streams(redis_prefix)
    event = progress()
    job = event.get_data()["job_id"]
    toy.plan[job] = ["block"]
    start_runner(push(runner_settings, function_url))
    entry_id = publish(rds, event, prefix=redis_prefix)
    wait_for(lambda: toy.count(job) == 1, message="delivery")
    assert wait_for(lambda: rds.hget(attempts, entry_id), message="the attempt counted") == "1"
    toy.release.set()
    wait_for(lambda: pending(rds, stream) == 0, message="ack")
    assert rds.exists(attempts) == 0


def test_group_starts_at_zero_so_earlier_entries_are_delivered(
    rds, runner_settings, function_url, toy, start_runner, redis_prefix
):
    events = [progress() for _ in range(3)]
    for event in events:
        publish(rds, event, prefix=redis_prefix)  # before the group exists
    start_runner(push(runner_settings, function_url))
    wait_for(lambda: len(toy.calls) == 3, message="all three")
    assert toy.calls == [e.get_data()["job_id"] for e in events]


def test_5xx_is_retried_then_succeeds(rds, runner_settings, function_url, toy, start_runner, redis_prefix):
    stream, dead, attempts = streams(redis_prefix)
    event = progress()
    job = event.get_data()["job_id"]
    toy.plan[job] = ["fail", "fail", "ok"]  # max_attempts is 3
    start_runner(push(runner_settings, function_url))
    publish(rds, event, prefix=redis_prefix)
    wait_for(lambda: toy.count(job) == 3 and pending(rds, stream) == 0, message="third attempt acked")
    assert rds.xlen(dead) == 0 and rds.exists(attempts) == 0


def test_timeout_is_retried(rds, runner_settings, function_url, toy, start_runner, redis_prefix):
    stream, dead, _ = streams(redis_prefix)
    event = progress()
    job = event.get_data()["job_id"]
    toy.plan[job] = ["slow:0.6", "ok"]
    start_runner(push(runner_settings.with_overrides(runner_request_timeout_s=0.2), function_url))
    publish(rds, event, prefix=redis_prefix)
    wait_for(lambda: toy.count(job) == 2 and pending(rds, stream) == 0, message="retry after timeout")
    assert rds.xlen(dead) == 0


def test_4xx_goes_to_the_dead_letters_at_once(rds, runner_settings, function_url, toy, start_runner, redis_prefix):
    stream, dead, attempts = streams(redis_prefix)
    event = progress()
    job = event.get_data()["job_id"]
    toy.plan[job] = ["bad"]
    start_runner(push(runner_settings, function_url))
    entry_id = publish(rds, event, prefix=redis_prefix)
    (letter,) = wait_for(lambda: dead_letters(rds, dead), message="dead letter")
    assert letter["status"] == "400" and letter["attempts"] == "1" and letter["original_id"] == entry_id
    assert f"cannot use {job}" in letter["error"] and letter["stream"] == stream
    assert letter["type"] == event.get_type()
    assert toy.count(job) == 1 and pending(rds, stream) == 0 and rds.exists(attempts) == 0


def test_a_failing_result_is_kept_and_retried_while_others_keep_flowing(
    rds, runner_settings, function_url, toy, start_runner, redis_prefix
):
    """A result (here progress) out of attempts is not dropped (its job would never end):
    it is tried again later, afresh, and never dead-lettered; good events flow meanwhile."""
    stream, dead, attempts = streams(redis_prefix)
    poison = progress()
    toy.always[poison.get_data()["job_id"]] = "boom"
    good = [progress() for _ in range(5)]
    settings = runner_settings.with_overrides(runner_backoff_s=0.4, runner_backoff_max_s=0.4)
    start_runner(push(settings, function_url))
    publish(rds, poison, prefix=redis_prefix)
    for event in good:
        publish(rds, event, prefix=redis_prefix)
    wait_for(lambda: all(toy.count(e.get_data()["job_id"]) == 1 for e in good), message="good events")
    assert rds.xlen(dead) == 0, "the good events waited behind the poison"
    job = poison.get_data()["job_id"]
    wait_for(lambda: toy.count(job) >= 5, message="tried again after its last attempt")
    assert rds.xlen(dead) == 0 and pending(rds, stream) == 1
    toy.always[job] = "ok"
    wait_for(lambda: pending(rds, stream) == 0, message="delivered once it works")
    assert rds.xlen(dead) == 0 and rds.exists(attempts) == 0


def test_malformed_entry_is_dead_lettered(rds, runner_settings, function_url, toy, start_runner, redis_prefix):
    stream, dead, _ = streams(redis_prefix)
    rds.xadd(stream, {"hello": "world"})
    start_runner(push(runner_settings, function_url))
    (letter,) = wait_for(lambda: dead_letters(rds, dead), message="dead letter")
    assert "malformed entry" in letter["error"] and letter["fields"] == '{"hello": "world"}'
    assert toy.calls == [] and pending(rds, stream) == 0


def test_pending_entry_of_a_dead_consumer_is_reclaimed(
    rds, runner_settings, function_url, toy, start_runner, redis_prefix
):
    stream, _, _ = streams(redis_prefix)
    rds.xgroup_create(stream, NOTIFY.group, id="0", mkstream=True)
    event = progress()
    publish(rds, event, prefix=redis_prefix)
    rds.xreadgroup(NOTIFY.group, "crashed-consumer", {stream: ">"}, count=1)  # read, never acked
    start_runner(push(runner_settings, function_url))
    wait_for(lambda: pending(rds, stream) == 0, message="reclaimed and acked")
    assert toy.calls == [event.get_data()["job_id"]]


def test_entry_being_delivered_is_not_reclaimed_by_another_runner(
    rds, runner_settings, function_url, toy, start_runner, redis_prefix
):
    stream, _, _ = streams(redis_prefix)
    event = progress()
    job = event.get_data()["job_id"]
    toy.plan[job] = ["slow:1.0"]  # over three times runner_claim_idle_ms
    settings = push(runner_settings, function_url)
    start_runner(settings, consumer="runner-a")
    start_runner(settings, consumer="runner-b")
    publish(rds, event, prefix=redis_prefix)
    wait_for(lambda: pending(rds, stream) == 0 and toy.count(job) >= 1, message="delivered")
    time.sleep(0.4)
    assert toy.count(job) == 1, "the heartbeat did not keep the entry claimed"


def test_attempts_survive_a_restart(rds, runner_settings, function_url, toy, start_runner, redis_prefix):
    weave = route_for_consumer("weave")
    stream, dead = redis_prefix + weave.stream, redis_prefix + weave.dead_letter_stream
    attempts = f"{stream}:attempts"
    event = weave_request()
    job = event.get_data()["job_id"]
    toy.always[job] = "fail"
    slow = runner_settings.with_overrides(
        runner_backoff_s=30, runner_backoff_max_s=30, function_urls={"weave": function_url}
    )
    first = start_runner(slow, routes=[weave])
    entry_id = publish(rds, event, prefix=redis_prefix)
    wait_for(lambda: rds.hget(attempts, entry_id) == "1", message="first attempt")
    first.stop(timeout=5)
    assert rds.xpending(stream, weave.group)["pending"] == 1 and toy.count(job) == 1

    # same consumer name, a fresh process
    start_runner(runner_settings.with_overrides(function_urls={"weave": function_url}), routes=[weave])
    (letter,) = wait_for(lambda: dead_letters(rds, dead), message="dead letter after restart")
    assert letter["attempts"] == "3" and toy.count(job) == 3
    assert "transient trouble" in letter["error"] and rds.exists(attempts) == 0


def test_runner_waits_for_the_function_to_be_ready(rds, runner_settings, function_url, toy, start_runner, redis_prefix):
    stream, _, attempts = streams(redis_prefix)
    toy.state = {"ready": False, "model": "loading"}
    start_runner(push(runner_settings, function_url))
    publish(rds, progress(), prefix=redis_prefix)
    time.sleep(0.3)
    assert toy.calls == [] and rds.exists(attempts) == 0, "attempts burned on a function that was not ready"
    toy.state = {"ready": True}
    wait_for(lambda: len(toy.calls) == 1 and pending(rds, stream) == 0, message="delivery once ready")


@pytest.mark.parametrize("kind", ["request", "result"])
def test_a_function_down_longer_than_all_backoffs_loses_nothing(
    rds, runner_settings, toy, start_runner, redis_prefix, kind
):
    """The function goes away after the runner started (a crash, a scale to zero): the
    refused connections are not attempts (urllib3 2.x reports them as a TimeoutError), the
    route waits for /readyz, and the entry is delivered once the function is back; nothing
    is dead-lettered however long it was down."""
    route = route_for_consumer("weave") if kind == "request" else NOTIFY
    stream, dead = redis_prefix + route.stream, redis_prefix + route.dead_letter_stream
    port = free_port()
    server = serve(toy, port)
    start_runner(
        runner_settings.with_overrides(function_urls={route.consumer: f"http://127.0.0.1:{port}/"}), routes=[route]
    )
    first = weave_request() if kind == "request" else progress()
    publish(rds, first, prefix=redis_prefix)
    wait_for(lambda: toy.count(first.get_data()["job_id"]) == 1, message="first delivery")
    server.shutdown()
    server.server_close()

    event = weave_request() if kind == "request" else progress()
    publish(rds, event, prefix=redis_prefix)
    time.sleep(1.0)  # far longer than the three attempts' backoffs (0.01 + 0.02 s)
    assert rds.xlen(dead) == 0 and rds.xpending(stream, route.group)["pending"] == 1
    assert int(rds.hget(f"{stream}:attempts", rds.xrange(stream)[-1][0]) or 0) == 0

    server = serve(toy, port)
    try:
        wait_for(lambda: rds.xpending(stream, route.group)["pending"] == 0, message="delivered once back")
        assert toy.count(event.get_data()["job_id"]) == 1 and rds.xlen(dead) == 0
    finally:
        server.shutdown()
        server.server_close()


def test_unreachable_function_burns_no_attempts(rds, runner_settings, start_runner, redis_prefix):
    stream, dead, attempts = streams(redis_prefix)
    start_runner(push(runner_settings, "http://127.0.0.1:1/"))
    publish(rds, progress(), prefix=redis_prefix)
    time.sleep(0.3)
    assert rds.exists(attempts) == 0 and rds.exists(dead) == 0 and rds.xlen(stream) == 1


def test_dead_lettered_job_request_tells_its_owner(rds, runner_settings, toy, start_runner, redis_prefix):
    """A weave request that keeps failing ends as a weave.failed event for notify, not a job stuck running."""

    from shared import event_types as t
    from shared.routing import route_for_consumer

    from .conftest import USER, weave_request

    weave = route_for_consumer("weave")
    request = weave_request()
    job = request.get_data()["job_id"]
    toy.always[job] = "boom"
    start_runner(runner_settings, routes=[weave], pull={"weave": toy})
    publish(rds, request, prefix=redis_prefix)
    wait_for(lambda: rds.xlen(redis_prefix + weave.dead_letter_stream), message="dead letter")
    results = wait_for(lambda: rds.xrange(redis_prefix + NOTIFY.stream), message="failure event")
    assert [fields["type"] for _id, fields in results] == [t.WEAVE_FAILED]
    from shared.events import from_stream_fields

    failed = from_stream_fields(results[0][1]).get_data()
    assert failed["job_id"] == job and failed["user_id"] == USER and failed["code"] == "dead_lettered"
    assert "3 time(s)" in failed["error"]


def test_dead_lettered_progress_announces_nothing(rds, runner_settings, toy, start_runner, redis_prefix):
    _, dead, _ = streams(redis_prefix)
    event = progress()
    toy.plan[event.get_data()["job_id"]] = ["bad"]
    start_runner(runner_settings, pull={"notify": toy})
    publish(rds, event, prefix=redis_prefix)
    wait_for(lambda: dead_letters(rds, dead), message="dead letter")
    time.sleep(0.2)
    assert [fields["type"] for _id, fields in rds.xrange(redis_prefix + NOTIFY.stream)] == [event.get_type()]
