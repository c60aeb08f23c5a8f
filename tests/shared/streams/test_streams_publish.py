"""publish(): validated events land on the stream the routing table names."""

from __future__ import annotations

import pytest
import redis

from shared import event_types as t
from shared.errors import BadRequest, DependencyUnavailable
from shared.events import InvalidEvent, from_stream_fields, make_event
from shared.routing import ROUTES, route_for
from shared.streams import publish, stream_for
from shared.streams.publish import STREAM_MAXLEN

from .conftest import USER, progress


def test_publish_appends_to_the_routed_stream(rds: redis.Redis, redis_prefix: str) -> None:
    event = progress()
    entry_id = publish(rds, event, prefix=redis_prefix)
    assert isinstance(entry_id, str) and "-" in entry_id
    stream = f"{redis_prefix}{route_for(t.WEAVE_PROGRESS).stream}"
    ((found_id, fields),) = rds.xrange(stream)
    assert found_id == entry_id and set(fields) == {"event", "type"} and fields["type"] == t.WEAVE_PROGRESS
    back = from_stream_fields(fields)
    assert back.get_attributes() == event.get_attributes() and back.get_data() == event.get_data()


def test_every_routed_type_has_its_stream(redis_prefix: str) -> None:
    for route in ROUTES:
        for event_type in route.event_types:
            assert stream_for(event_type, redis_prefix) == redis_prefix + route.stream


def test_invalid_events_are_refused_and_not_written(rds: redis.Redis, redis_prefix: str) -> None:
    bad = make_event(t.WEAVE_PROGRESS, {"job_id": "j1", "user_id": USER, "step": 1}, source="/tests")
    with pytest.raises(InvalidEvent):
        publish(rds, bad, prefix=redis_prefix)
    assert rds.exists(f"{redis_prefix}proteus:results") == 0


def test_types_without_a_stream_are_refused(rds: redis.Redis, redis_prefix: str) -> None:
    event = make_event(
        t.UPLOAD_REQUESTED, {"user_id": USER, "file_name": "a.png", "content_type": "image/png"}, source="/tests"
    )
    with pytest.raises(BadRequest, match="not carried by any stream"):
        publish(rds, event, prefix=redis_prefix)


def test_publish_caps_the_stream(redis_prefix: str) -> None:
    calls = []

    class Spy:
        def xadd(self, name, fields, **kwargs):
            calls.append((name, kwargs))
            return "1-0"

    assert publish(Spy(), progress(), prefix=redis_prefix) == "1-0"  # type: ignore[arg-type]
    assert calls == [(f"{redis_prefix}proteus:results", {"maxlen": STREAM_MAXLEN, "approximate": True})]


def test_redis_down_is_dependency_unavailable() -> None:
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    client = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    with pytest.raises(DependencyUnavailable, match="cannot publish"):
        publish(client, progress())
