"""notify never loses a notification: one recorded with a state change that Redis dropped
is published by the retry, and racing publishers of a pending one publish it once."""

from __future__ import annotations

import pytest

from shared import event_types as t
from shared.db.models import Job
from shared.events import event_data
from shared.notifications import PendingMessage
from tests.functions.cloudevents_support import Channel, binary_request, reply_of
from tests.functions.conftest import function_of, get_row
from tests.functions.notify.support import Notify, RedisDropsOnce, completed_data

pytestmark = pytest.mark.redis


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
    from shared.notifications import Notifier, flush

    user_id, job_id, _row = _pending_completion(notify)
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


def test_a_redis_that_lost_its_scripts_still_gets_the_notification(notify: Notify, channel: Channel) -> None:
    """The publishing script runs by its SHA: after a Redis restart (no scripts cached) it is
    loaded again, and the completion is published all the same."""
    from shared.notifications import Notifier, publish_row

    notifier = Notifier(notify.redis, function_of(notify.app).settings.redis_key_prefix)
    published = []
    for flushed in (False, True):
        _user_id, job_id, row = _pending_completion(notify)
        if flushed:
            notify.redis.script_flush()
        sent = publish_row(notify.sessions, notifier, row.id, row.user_id, row.message)
        assert sent is not None and sent["job_id"] == job_id
        published.append(sent["event_id"])
    assert [m["event_id"] for m in channel.messages()] == published


def _pending_completion(notify: Notify) -> tuple[str, str, PendingMessage]:
    """A new job whose failure waits in the outbox, not yet published: (user, job, outbox row)."""
    from shared.db.session import session_scope
    from shared.notifications import add_to_outbox, completion_message

    user_id, vton_id, job_id = notify.job()
    message = completion_message(
        job_id=job_id, job_type="try_on", status="failed", user_id=user_id, vton_id=vton_id, result_key=None, error="x"
    )
    with session_scope(notify.sessions, write=True) as session:
        return user_id, job_id, add_to_outbox(session, message)
