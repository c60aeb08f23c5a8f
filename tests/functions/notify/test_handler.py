"""notify through its CloudEvents app: results in, rows updated, then one user notification.

The job and try-on rows change BEFORE anything is published (a client that refetches on
the message sees the new state); a completion is published once per job, on the channel
`events:job_done` in the original shape with `event_id` = its entry in the replay stream;
progress goes to the channel only. The behaviour runs on SQLite and on PostgreSQL.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from functions.notify.main import create_app
from shared import event_types as t
from shared.config import Settings
from shared.db.migrate import upgrade
from shared.db.models import Job, TryOn
from shared.events import event_data
from shared.routing import NOTIFICATION_CHANNEL, NOTIFICATION_STREAM, prefixed
from tests.functions.conftest import (
    INVALID_CASES,
    Channel,
    Invalid,
    Valid,
    add_tryon,
    add_user,
    binary_request,
    check_invalid,
    check_valid_pair,
    dispose_function,
    function_of,
    get_row,
    new_id,
    post,
    reply_of,
    sessions_for,
    structured_request,
)

pytestmark = pytest.mark.redis

# The original shape, plus result_keys: every sample (result_s3_key stays the first).
COMPLETION_KEYS = {
    "job_id",
    "job_type",
    "status",
    "user_id",
    "vton_id",
    "result_s3_key",
    "result_keys",
    "error",
    "finished_at",
    "event_id",
}


class Notify:
    """A notify app on one database, the rows it works on, and its channel and stream."""

    def __init__(self, settings: Settings, redis_client: redis.Redis) -> None:
        upgrade(settings.database_url)
        self.app = create_app(settings)
        self.client = self.app.test_client()
        self.sessions: sessionmaker[Session] = sessions_for(settings.database_url)
        self.redis = redis_client
        self.channel_name = prefixed(NOTIFICATION_CHANNEL, settings.redis_key_prefix)
        self.stream = prefixed(NOTIFICATION_STREAM, settings.redis_key_prefix)

    def job(self, job_type: str = "try_on") -> tuple[str, str, str]:
        """(user_id, vton_id, job_id) of a fresh queued job."""
        user_id = add_user(self.sessions)
        vton_id, job_id = add_tryon(self.sessions, user_id, job_id=new_id(), job_type=job_type)
        return user_id, vton_id, job_id  # type: ignore[return-value]

    def send(self, event_type: str, data: dict[str, Any], mode: str = "binary"):
        build = binary_request if mode == "binary" else structured_request
        return post(self.client, build(event_type, data, user_id=data["user_id"], subject=data["job_id"]))

    def replay(self) -> list[tuple[str, dict[str, Any]]]:
        return [(entry_id, fields) for entry_id, fields in self.redis.xrange(self.stream)]

    def close(self) -> None:
        dispose_function(self.app)
        self.sessions.kw["bind"].dispose()


@pytest.fixture
def notify(
    settings: Settings, database_url: str, redis_server_url: str, redis_prefix: str, redis_client: redis.Redis
) -> Iterator[Notify]:
    """Notify on SQLite and on PostgreSQL (a fresh database each), with a private prefix."""
    n = Notify(
        settings.with_overrides(database_url=database_url, redis_url=redis_server_url, redis_key_prefix=redis_prefix),
        redis_client,
    )
    yield n
    n.close()


@pytest.fixture
def channel(notify: Notify, redis_client: redis.Redis) -> Iterator[Channel]:
    """Subscribed before the test posts anything."""
    c = Channel(redis_client, notify.channel_name)
    yield c
    c.close()


class StateAtPublish:
    """Wraps the function's Redis client: records the job and try-on rows as another
    connection sees them at the moment of every PUBLISH, XADD and publishing script, then
    calls through."""

    def __init__(self, notify: Notify, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str, dict[str, Any], str, str | None]] = []
        client = function_of(notify.app).redis
        for name in ("publish", "xadd", "eval"):
            original = getattr(client, name)
            monkeypatch.setattr(client, name, self._spy(name, original, notify))

    def _spy(self, name: str, original: Any, notify: Notify) -> Any:
        def call(key: str, payload: Any, *args: Any, **kwargs: Any) -> Any:
            if name == "eval":  # the outbox's publish-once script: (script, 3, keys..., user_id, message, ...)
                message = json.loads(args[4])
            elif name == "publish":
                message = json.loads(payload)
            else:
                message = json.loads(payload["message"])
            job = get_row(notify.sessions, Job, message["job_id"])
            tryon = get_row(notify.sessions, TryOn, message["vton_id"]) if message.get("vton_id") else None
            self.seen.append((name, message, job.status, tryon.status if tryon else None))
            return original(key, payload, *args, **kwargs)

        return call


def completed_data(user_id: str, vton_id: str, job_id: str, **extra: Any) -> dict[str, Any]:
    return {
        "job_id": job_id,
        "user_id": user_id,
        "vton_id": vton_id,
        "result_key": f"outputs/weaver/{user_id}/{job_id}.png",
        "seed": 42,
        "model": "smoke",
        "metadata": {"steps": 3},
        **extra,
    }


def check_completion(
    message: dict[str, Any],
    *,
    job_id: str,
    user_id: str,
    vton_id: str,
    job_type: str,
    status: str,
    result_key: str | None,
    error: str | None,
    event_id: str,
) -> None:
    """The original completion shape, exactly, plus the replay stream's entry id."""
    assert set(message) == COMPLETION_KEYS, message
    assert message["job_id"] == job_id and message["user_id"] == user_id and message["vton_id"] == vton_id
    assert message["job_type"] == job_type and message["status"] == status
    assert message["result_s3_key"] == result_key and message["error"] == error
    assert message["result_keys"] == ([result_key] if result_key else [])
    assert message["event_id"] == event_id
    finished = datetime.fromisoformat(message["finished_at"].replace("Z", "+00:00"))
    assert message["finished_at"].endswith("Z")
    assert abs(datetime.now(UTC) - finished) < timedelta(minutes=1)


# --------------------------------------------------------------------------- the CloudEvents contract (SQLite)


@pytest.fixture(scope="module")
def module_notify(module_settings: Settings, redis_server_url: str) -> Iterator[Notify]:
    client = redis.Redis.from_url(redis_server_url, decode_responses=True)
    n = Notify(module_settings, client)
    yield n
    n.close()
    client.close()


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
        ("eval", "succeeded", "done")
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
    assert [(n, j, v) for n, _, j, v in spy.seen] == [("eval", "failed", "failed")]

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


def test_tailor_completed_finishes_a_tailor_job(notify: Notify, channel: Channel) -> None:
    user_id, vton_id, job_id = notify.job(job_type="tailor")
    cutout = f"outputs/tailor/{user_id}/{'ab' * 32}-cutout.png"
    data = {
        "job_id": job_id,
        "user_id": user_id,
        "vton_id": vton_id,
        "cutout_key": cutout,
        "category": "lower",
        "confidence": 0.9,
        "model": "smoke",
    }
    reply = reply_of(notify.send(t.TAILOR_COMPLETED, data))
    assert reply.get_type() == t.USER_NOTIFICATION

    job = get_row(notify.sessions, Job, job_id)
    assert (job.status, job.result_key) == ("succeeded", cutout)
    tryon = get_row(notify.sessions, TryOn, vton_id)
    assert (tryon.status, tryon.cleaned_outfit, tryon.category, tryon.outfit_try_on) == ("done", cutout, "lower", None)

    (message,) = channel.messages()
    ((entry_id, _),) = notify.replay()
    check_completion(
        message,
        job_id=job_id,
        user_id=user_id,
        vton_id=vton_id,
        job_type="tailor",
        status="done",
        result_key=cutout,
        error=None,
        event_id=entry_id,
    )


def test_tailor_completed_on_the_way_to_a_try_on_only_records_the_assets(notify: Notify, channel: Channel) -> None:
    user_id, vton_id, job_id = notify.job(job_type="try_on")
    cutout = f"outputs/tailor/{user_id}/{'cd' * 32}-cutout.png"
    data = {
        "job_id": job_id,
        "user_id": user_id,
        "vton_id": vton_id,
        "cutout_key": cutout,
        "category": "upper",
        "confidence": 0.8,
        "model": "smoke",
    }
    response = notify.send(t.TAILOR_COMPLETED, data)
    assert response.status_code == 202
    assert channel.messages() == [] and notify.replay() == []
    assert get_row(notify.sessions, Job, job_id).status == "queued", "weave finishes a try-on job"
    tryon = get_row(notify.sessions, TryOn, vton_id)
    assert (tryon.cleaned_outfit, tryon.category, tryon.status) == (cutout, "upper", "queued")


def test_tailor_failed_fails_the_job(notify: Notify, channel: Channel) -> None:
    user_id, vton_id, job_id = notify.job(job_type="tailor")
    data = {
        "job_id": job_id,
        "user_id": user_id,
        "vton_id": vton_id,
        "error": "No garment found",
        "code": "unusable_photo",
        "retryable": False,
        "reason": "no_garment",
    }
    assert reply_of(notify.send(t.TAILOR_FAILED, data)).get_type() == t.USER_NOTIFICATION
    assert get_row(notify.sessions, Job, job_id).status == "failed"
    (message,) = channel.messages()
    ((entry_id, _),) = notify.replay()
    check_completion(
        message,
        job_id=job_id,
        user_id=user_id,
        vton_id=vton_id,
        job_type="tailor",
        status="failed",
        result_key=None,
        error="No garment found",
        event_id=entry_id,
    )


class RedisDropsOnce:
    """The function's Redis fails the first publishing command (XADD, PUBLISH or the
    publish-once script) with a connection error, as when Redis restarts right after the
    job's state was committed; later commands go through."""

    def __init__(self, notify: Notify, monkeypatch: pytest.MonkeyPatch) -> None:
        self.dropped = 0
        client = function_of(notify.app).redis
        original = client.execute_command

        def execute_command(*args: Any, **kwargs: Any) -> Any:
            if not self.dropped and str(args[0]).upper() in ("XADD", "PUBLISH", "EVAL", "EVALSHA"):
                self.dropped += 1
                raise redis.ConnectionError("Connection closed by server.")
            return original(*args, **kwargs)

        monkeypatch.setattr(client, "execute_command", execute_command)


@pytest.mark.parametrize("event_type", [t.WEAVE_COMPLETED, t.WEAVE_FAILED])
def test_a_notification_lost_between_commit_and_publish_is_sent_by_the_retry(
    notify: Notify, channel: Channel, monkeypatch: pytest.MonkeyPatch, event_type: str
) -> None:
    """Redis drops out after the job's new state is committed: the delivery fails (503, so
    the runner retries), and the retry, which finds the job already finished, publishes the
    notification that was recorded with the state change: once, on the socket and in replay."""
    user_id, vton_id, job_id = notify.job()
    data = (
        completed_data(user_id, vton_id, job_id)
        if event_type == t.WEAVE_COMPLETED
        else {"job_id": job_id, "user_id": user_id, "vton_id": vton_id, "error": "boom", "code": "internal_error"}
    )
    headers, body = binary_request(event_type, data, user_id=user_id, subject=job_id, event_id="delivery-1")
    drops = RedisDropsOnce(notify, monkeypatch)
    first = notify.client.post("/", headers=headers, data=body)
    assert drops.dropped == 1 and first.status_code == 503
    assert get_row(notify.sessions, Job, job_id).status in ("succeeded", "failed")
    assert channel.messages() == [] and notify.replay() == []

    again = notify.client.post("/", headers=headers, data=body)
    assert again.status_code == 200
    (message,) = channel.messages()
    ((entry_id, _),) = notify.replay()
    assert message["job_id"] == job_id and message["event_id"] == entry_id
    assert event_data(reply_of(again)) == message
    # a third delivery publishes nothing more
    assert notify.client.post("/", headers=headers, data=body).status_code == 202
    assert channel.messages() == [] and len(notify.replay()) == 1


def test_a_pending_notification_is_published_once_by_racing_publishers(notify: Notify, channel: Channel) -> None:
    """Two processes flush the same pending outbox row (notify's retry and the reconciler):
    one replay entry, one message."""
    from shared.db.session import session_scope
    from shared.notifications import Notifier, add_to_outbox, completion_message, flush

    user_id, vton_id, job_id = notify.job()
    with session_scope(notify.sessions, write=True) as session:
        add_to_outbox(
            session,
            completion_message(
                job_id=job_id,
                job_type="try_on",
                status="failed",
                user_id=user_id,
                vton_id=vton_id,
                result_key=None,
                error="x",
            ),
        )
    notifier = Notifier(notify.redis, function_of(notify.app).settings.redis_key_prefix)
    # the first publisher died after publishing, before marking the row: the mark in Redis decides
    from sqlalchemy import select

    from shared.db.models import OutboxMessage

    with session_scope(notify.sessions) as session:
        row = session.scalars(select(OutboxMessage).where(OutboxMessage.job_id == job_id)).one()
        outbox_id, text = row.id, row.message
    first_id, fresh = notifier.publish_once(outbox_id, user_id, text)
    assert fresh
    assert flush(notify.sessions, notifier, job_id=job_id) == []
    assert flush(notify.sessions, notifier) == []
    (message,) = channel.messages()
    assert message["event_id"] == first_id and len(notify.replay()) == 1
