"""notify and tailor's results: a tailor job finishes with its cut-out, or fails with the
reason; on the way to a try-on only the assets are recorded. On SQLite and on PostgreSQL."""

from __future__ import annotations

import pytest

from shared import event_types as t
from shared.db.models import Job, TryOn
from tests.functions.cloudevents_support import Channel, reply_of
from tests.functions.conftest import get_row
from tests.functions.notify.support import Notify, check_completion

pytestmark = pytest.mark.redis


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
