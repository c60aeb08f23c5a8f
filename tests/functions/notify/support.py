"""What the notify tests share: a notify app on one database (`Notify`), the original
completion shape, and Redis clients that record or drop what notify publishes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import redis
from sqlalchemy.orm import Session, sessionmaker

from functions.notify.main import create_app
from shared.config import Settings
from shared.db.migrate import upgrade
from shared.db.models import Job, TryOn
from shared.routing import NOTIFICATION_CHANNEL, NOTIFICATION_STREAM, prefixed
from tests.functions.cloudevents_support import binary_request, post, structured_request
from tests.functions.conftest import add_tryon, add_user, dispose_function, function_of, get_row, new_id, sessions_for

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


class StateAtPublish:
    """Wraps the function's Redis client: records the job and try-on rows as another
    connection sees them at the moment of every PUBLISH, XADD and publishing script, then
    calls through."""

    def __init__(self, notify: Notify, monkeypatch: pytest.MonkeyPatch) -> None:
        self.seen: list[tuple[str, dict[str, Any], str, str | None]] = []
        client = function_of(notify.app).redis
        for name in ("publish", "xadd", "evalsha"):
            original = getattr(client, name)
            monkeypatch.setattr(client, name, self._spy(name, original, notify))

    def _spy(self, name: str, original: Any, notify: Notify) -> Any:
        def call(key: str, payload: Any, *args: Any, **kwargs: Any) -> Any:
            if name == "evalsha":  # the outbox's publish-once script: (its sha, 3, keys..., user_id, message, ...)
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
