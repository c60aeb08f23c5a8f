"""Dead letters: list them, replay one or all, through the API and the command line."""

from __future__ import annotations

import json

import pytest

from shared.errors import BadRequest, NotFound
from shared.streams import publish
from shared.streams.deadletters import list_dead_letters, main, replay

from .conftest import NOTIFY, progress, wait_for


def dead_letter_two(rds, runner_settings, function_url, toy, start_runner, redis_prefix):
    """Two events the function refuses (400), dead-lettered by a real runner."""
    events = [progress(), progress()]
    for event in events:
        toy.plan[event.get_data()["job_id"]] = ["bad"]
    runner = start_runner(runner_settings.with_overrides(function_urls={"notify": function_url}))
    ids = [publish(rds, event, prefix=redis_prefix) for event in events]
    wait_for(lambda: rds.xlen(redis_prefix + NOTIFY.dead_letter_stream) == 2, message="two dead letters")
    return runner, events, ids


def test_list_shows_error_status_attempts_and_original_id(
    rds, runner_settings, function_url, toy, start_runner, redis_prefix
):
    _, events, ids = dead_letter_two(rds, runner_settings, function_url, toy, start_runner, redis_prefix)
    letters = list_dead_letters(rds, prefix=redis_prefix)
    assert [d.original_id for d in letters] == ids
    first = letters[0]
    assert (
        first.dead_stream == redis_prefix + NOTIFY.dead_letter_stream and first.stream == redis_prefix + NOTIFY.stream
    )
    assert first.status == "400" and first.attempts == 1 and "cannot use" in first.error
    assert json.loads(first.fields["event"])["id"] == events[0].get_id()
    assert list_dead_letters(rds, prefix=redis_prefix, stream="weave") == []
    assert len(list_dead_letters(rds, prefix=redis_prefix, stream=NOTIFY.dead_letter_stream)) == 2


def test_replay_one_republishes_it_and_deletes_the_dead_letter(
    rds, runner_settings, function_url, toy, start_runner, redis_prefix
):
    _, events, _ = dead_letter_two(rds, runner_settings, function_url, toy, start_runner, redis_prefix)
    dead_id = list_dead_letters(rds, prefix=redis_prefix)[0].id
    job = events[0].get_data()["job_id"]
    ((replayed_dead, new_id),) = replay(rds, prefix=redis_prefix, stream="notify", entry_id=dead_id)
    assert replayed_dead == dead_id
    ((_, fields),) = rds.xrange(redis_prefix + NOTIFY.stream, new_id, new_id)
    assert json.loads(fields["event"])["id"] == events[0].get_id()
    assert [d.id for d in list_dead_letters(rds, prefix=redis_prefix)] != [dead_id]
    assert len(list_dead_letters(rds, prefix=redis_prefix)) == 1
    # the function is fixed now: the replayed entry is delivered and acknowledged
    wait_for(lambda: toy.count(job) == 2, message="replayed delivery")
    wait_for(lambda: rds.xpending(redis_prefix + NOTIFY.stream, NOTIFY.group)["pending"] == 0, message="ack")
    assert rds.xlen(redis_prefix + NOTIFY.dead_letter_stream) == 1


def test_replay_unknown_or_malformed_id(rds, redis_prefix):
    with pytest.raises(NotFound):
        replay(rds, prefix=redis_prefix, entry_id="1-0")
    with pytest.raises(BadRequest):
        replay(rds, prefix=redis_prefix, entry_id="latest")
    with pytest.raises(NotFound, match="unknown stream"):
        list_dead_letters(rds, prefix=redis_prefix, stream="proteus:nope")


def test_command_line_list_and_replay_all(rds, runner_settings, function_url, toy, start_runner, redis_prefix, capsys):
    _, events, ids = dead_letter_two(rds, runner_settings, function_url, toy, start_runner, redis_prefix)
    assert main(["list"], client=rds, prefix=redis_prefix) == 0
    table = capsys.readouterr().out
    assert "2 dead letter(s)" in table and events[0].get_type() in table and "cannot use" in table

    assert main(["list", "--stream", "proteus:results", "--json"], client=rds, prefix=redis_prefix) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["original_id"] for x in lines] == ids

    assert main(["replay", "--all"], client=rds, prefix=redis_prefix) == 0
    assert "2 dead letter(s) replayed" in capsys.readouterr().out
    assert rds.xlen(redis_prefix + NOTIFY.dead_letter_stream) == 0
    wait_for(lambda: all(toy.count(e.get_data()["job_id"]) == 2 for e in events), message="replayed deliveries")

    assert main(["replay", "--id", "1-0"], client=rds, prefix=redis_prefix) == 1
    assert "no dead letter" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["replay"], client=rds, prefix=redis_prefix)  # --id or --all is required
