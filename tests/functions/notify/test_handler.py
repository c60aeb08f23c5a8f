"""notify through its CloudEvents app: results in, rows updated, then one user notification.

The job and try-on rows change BEFORE anything is published (a client that refetches on
the message sees the new state); a completion is published once per job, on the channel
`events:job_done` in the original shape with `event_id` = its entry in the replay stream;
progress goes to the channel only. The behaviour runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json

import pytest

from shared import event_types as t
from shared.db.models import Job, TryOn
from shared.events import event_data
from tests.functions.cloudevents_support import (
    INVALID_CASES,
    Channel,
    Invalid,
    Valid,
    binary_request,
    check_invalid,
    check_valid_pair,
    reply_of,
)
from tests.functions.conftest import get_row
from tests.functions.notify.support import Notify, StateAtPublish, check_completion, completed_data

pytestmark = pytest.mark.redis


# --------------------------------------------------------------------------- the CloudEvents contract (SQLite)


def _valid(n: Notify) -> Valid:
    user_id, vton_id, job_id = n.job()
    return Valid(t.WEAVE_COMPLETED, completed_data(user_id, vton_id, job_id), user_id, job_id, "result_key")


def test_binary_and_structured_events_are_answered_with_the_notification(module_notify: Notify) -> None:
    first, second = _valid(module_notify), _valid(module_notify)
    responses = check_valid_pair(module_notify.client, first, second, reply_type=t.USER_NOTIFICATION)
    for response, sent in zip(responses, (first, second)):
        reply = reply_of(response)
        assert reply.get_subject() == sent.subject and reply.get_extension("userid") == sent.user_id
        assert event_data(reply)["status"] == "done"
        assert get_row(module_notify.sessions, Job, sent.subject).status == "succeeded"


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.name)
def test_invalid_event_is_refused(module_notify: Notify, case: Invalid, module_prefix: str) -> None:
    valid = _valid(module_notify)
    check_invalid(module_notify.client, case, valid, module_notify.redis, module_prefix)
    assert get_row(module_notify.sessions, Job, valid.subject).status == "queued"


# --------------------------------------------------------------------------- behaviour, on both databases


@pytest.mark.parametrize("mode", ["binary", "structured"])
def test_weave_completed_updates_rows_before_one_completion(
    notify: Notify, channel: Channel, monkeypatch: pytest.MonkeyPatch, mode: str
) -> None:
    user_id, vton_id, job_id = notify.job()
    data = completed_data(user_id, vton_id, job_id)
    spy = StateAtPublish(notify, monkeypatch)

    reply = reply_of(notify.send(t.WEAVE_COMPLETED, data, mode))
    assert reply.get_type() == t.USER_NOTIFICATION

    job = get_row(notify.sessions, Job, job_id)
    assert (job.status, job.result_key, job.seed, job.model, job.error) == (
        "succeeded",
        data["result_key"],
        42,
        "smoke",
        None,
    )
    assert job.finished_at is not None
    tryon = get_row(notify.sessions, TryOn, vton_id)
    assert (tryon.status, tryon.outfit_try_on, tryon.error) == ("done", data["result_key"], None)

    assert [(name, job_status, tryon_status) for name, _, job_status, tryon_status in spy.seen] == [
        ("evalsha", "succeeded", "done")
    ], "the rows must be committed before the completion is sent"

    (message,) = channel.messages()
    ((entry_id, fields),) = notify.replay()
    check_completion(
        message,
        job_id=job_id,
        user_id=user_id,
        vton_id=vton_id,
        job_type="try_on",
        status="done",
        result_key=data["result_key"],
        error=None,
        event_id=entry_id,
    )
    assert fields["user_id"] == user_id
    assert json.loads(fields["message"]) == {k: v for k, v in message.items() if k != "event_id"}
    assert event_data(reply) == message


def test_second_delivery_publishes_nothing(notify: Notify, channel: Channel) -> None:
    user_id, vton_id, job_id = notify.job()
    headers, body = binary_request(
        t.WEAVE_COMPLETED,
        completed_data(user_id, vton_id, job_id),
        user_id=user_id,
        subject=job_id,
        event_id="delivery-1",
    )
    assert notify.client.post("/", headers=headers, data=body).status_code == 200
    assert len(channel.messages()) == 1
    again = notify.client.post("/", headers=headers, data=body)
    assert again.status_code == 202 and again.get_data() == b""
    # a late failure for the finished job changes nothing either
    failed = {"job_id": job_id, "user_id": user_id, "vton_id": vton_id, "error": "late", "code": "internal_error"}
    assert notify.send(t.WEAVE_FAILED, failed).status_code == 202
    assert channel.messages() == []
    assert len(notify.replay()) == 1
    assert get_row(notify.sessions, Job, job_id).status == "succeeded"
    assert get_row(notify.sessions, TryOn, vton_id).status == "done"


def test_weave_failed_marks_failed_with_the_error(
    notify: Notify, channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, vton_id, job_id = notify.job()
    error = "person_key is not a readable image (15 bytes)"
    data = {
        "job_id": job_id,
        "user_id": user_id,
        "vton_id": vton_id,
        "error": error,
        "code": "invalid_image",
        "retryable": False,
    }
    spy = StateAtPublish(notify, monkeypatch)
    reply = reply_of(notify.send(t.WEAVE_FAILED, data))
    assert reply.get_type() == t.USER_NOTIFICATION

    job = get_row(notify.sessions, Job, job_id)
    assert (job.status, job.error, job.result_key) == ("failed", error, None) and job.finished_at is not None
    tryon = get_row(notify.sessions, TryOn, vton_id)
    assert (tryon.status, tryon.error, tryon.outfit_try_on) == ("failed", error, None)
    assert [(n, j, v) for n, _, j, v in spy.seen] == [("evalsha", "failed", "failed")]

    (message,) = channel.messages()
    ((entry_id, _),) = notify.replay()
    check_completion(
        message,
        job_id=job_id,
        user_id=user_id,
        vton_id=vton_id,
        job_type="try_on",
        status="failed",
        result_key=None,
        error=error,
        event_id=entry_id,
    )


def test_weave_progress_is_a_progress_message_and_the_rows_progress(notify: Notify, channel: Channel) -> None:
    user_id, vton_id, job_id = notify.job()
    data = {"job_id": job_id, "user_id": user_id, "vton_id": vton_id, "step": 3, "steps": 10}
    reply = reply_of(notify.send(t.WEAVE_PROGRESS, data))
    assert reply.get_type() == t.USER_NOTIFICATION

    (message,) = channel.messages()
    assert message == {
        "event": "progress",
        "job_id": job_id,
        "vton_id": vton_id,
        "user_id": user_id,
        "step": 3,
        "steps": 10,
    }
    assert event_data(reply) == message
    assert notify.replay() == [], "progress is not replayed"
    job = get_row(notify.sessions, Job, job_id)
    assert (job.status, job.step, job.steps) == ("running", 3, 10)
    tryon = get_row(notify.sessions, TryOn, vton_id)
    assert (tryon.status, tryon.progress_step, tryon.progress_steps) == ("processing", 3, 10)

    # an older step (out-of-order delivery) is not news: nothing changes, nothing is sent
    assert notify.send(t.WEAVE_PROGRESS, {**data, "step": 2}).status_code == 202
    assert channel.messages() == []
    assert get_row(notify.sessions, Job, job_id).step == 3
