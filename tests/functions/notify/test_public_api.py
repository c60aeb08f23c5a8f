"""notify and the public API: a finished prediction with a webhook URL (its own, or its
owner's default) is queued for the webhooks function every time its end is seen (that
function sends each prediction's message once); a canceled one tells the owner's sockets."""

from __future__ import annotations

import json
from typing import Any

import pytest
from sqlalchemy import update

from shared import event_types as t
from shared.db.models import User
from shared.db.session import session_scope
from tests.functions.conftest import add_tryon, add_user, new_id
from tests.functions.notify.support import Notify

pytestmark = pytest.mark.redis


def webhook_requests(n: Notify) -> list[dict[str, Any]]:
    prefix = n.stream.removesuffix("proteus:notifications")
    return [json.loads(f["event"])["data"] for _, f in n.redis.xrange(prefix + "proteus:webhooks")]


def prediction(n: Notify, webhook_url: str | None) -> tuple[str, str, str]:
    user_id = add_user(n.sessions)
    job_id = new_id()
    vton_id, _ = add_tryon(
        n.sessions, user_id, job_id=job_id, params={"api": {"model_name": "tryon-v1.6", "webhook_url": webhook_url}}
    )
    return user_id, vton_id, job_id


def test_a_completed_prediction_requests_its_webhook(notify: Notify) -> None:
    user_id, vton_id, job_id = prediction(notify, "https://shop.example.com/hook")
    data = {
        "job_id": job_id,
        "user_id": user_id,
        "vton_id": vton_id,
        "result_key": f"outputs/weaver/{user_id}/a.png",
        "result_keys": [f"outputs/weaver/{user_id}/a.png", f"outputs/weaver/{user_id}/a-1.png"],
        "seed": 1,
        "model": "smoke",
        "metadata": {},
    }
    assert notify.send(t.WEAVE_COMPLETED, data).status_code in (200, 202, 204)
    assert notify.send(t.WEAVE_COMPLETED, data).status_code in (200, 202, 204)  # a redelivery
    assert (
        webhook_requests(notify) == [{"job_id": job_id, "user_id": user_id, "url": "https://shop.example.com/hook"}] * 2
    )
    ((_, fields),) = notify.replay()
    assert json.loads(fields["message"])["result_keys"] == data["result_keys"]


def test_the_owners_default_url_serves_runs_without_one(notify: Notify) -> None:
    user_id, vton_id, job_id = prediction(notify, None)
    with session_scope(notify.sessions, write=True) as session:
        session.execute(update(User).where(User.id == user_id).values(webhook_url="https://shop.example.com/all"))
    notify.send(
        t.WEAVE_FAILED,
        {
            "job_id": job_id,
            "user_id": user_id,
            "vton_id": vton_id,
            "error": "no",
            "code": "invalid_image",
            "retryable": False,
        },
    )
    assert [w["url"] for w in webhook_requests(notify)] == ["https://shop.example.com/all"]


def test_jobs_of_the_web_page_have_no_webhook(notify: Notify) -> None:
    user_id = add_user(notify.sessions)
    vton_id, job_id = add_tryon(notify.sessions, user_id, job_id=new_id())
    notify.send(
        t.WEAVE_FAILED,
        {
            "job_id": job_id,
            "user_id": user_id,
            "vton_id": vton_id,
            "error": "no",
            "code": "invalid_image",
            "retryable": False,
        },
    )
    assert webhook_requests(notify) == []
