"""tailor through its CloudEvents app, with the smoke parsing model.

The smoke model has random (seeded) weights, so whether a photo "is" a garment is decided
by the label map it produces. Each test first reads that label map for its photo and
derives, by the documented rule (functions/tailor/geometry.py: a category wins with the
most clothing pixels, at least 1% of the image; otherwise unknown_category when accessories
cover 1%, else no_garment), exactly which of tailor.completed / tailor.failed must come.
With the weights of today the blue photo is a "lower" garment and the red one is refused
as unknown_category, so both outcomes are exercised.
"""

from __future__ import annotations

import hashlib
import io

import pytest
import redis
from flask import Flask
from PIL import Image

from shared import event_types as t
from shared import jobs
from shared.db.models import Job
from shared.db.session import session_scope
from shared.events import event_data
from tests.functions.cloudevents_support import (
    INVALID_CASES,
    Invalid,
    check_invalid,
    check_valid_pair,
    prefix_entry_count,
    reply_of,
)
from tests.functions.conftest import get_row
from tests.functions.tailor.support import (
    PHOTOS,
    RESULTS,
    WEAVE,
    Expected,
    ParseCounter,
    Request,
    assets_of,
    for_job,
    send,
)

pytestmark = pytest.mark.redis


def test_todays_smoke_weights_exercise_both_outcomes(expected: dict[str, Expected]) -> None:
    """Not a rule of tailor: a guard that these photos still cover both paths (pick other
    photos if the smoke model's weights change)."""
    assert expected["blue"].outcome == "completed" and expected["red"].outcome == "failed", expected


# --------------------------------------------------------------------------- readiness and the contract


def test_readyz_names_the_smoke_model(client, redis_client: redis.Redis, module_prefix: str) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    state = response.get_json()
    assert state["ready"] is True and state["model"] == "smoke" and state["smoke"] is True
    assert "SMOKE" in state["warning"]
    assert '"model": "smoke"' in redis_client.hget(module_prefix + "proteus:models", "tailor")


def test_binary_and_structured_events_are_answered(client, sessions, storage, expected: dict[str, Expected]) -> None:
    first, second = Request(sessions, storage, PHOTOS["blue"]), Request(sessions, storage, PHOTOS["blue"])
    reply_type = t.TAILOR_COMPLETED if expected["blue"].outcome == "completed" else t.TAILOR_FAILED
    check_valid_pair(client, first.valid(), second.valid(), reply_type=reply_type)


@pytest.mark.parametrize("case", INVALID_CASES, ids=lambda c: c.name)
def test_invalid_event_is_refused(
    client, sessions, storage, case: Invalid, redis_client: redis.Redis, module_prefix: str
) -> None:
    request = Request(sessions, storage, PHOTOS["blue"])
    check_invalid(client, case, request.valid(), redis_client, module_prefix)
    assert get_row(sessions, Job, request.job_id).status == "queued"
    assert assets_of(sessions, request.user_id) == []


# --------------------------------------------------------------------------- garment requests


@pytest.mark.parametrize("photo", ["blue", "red"])
def test_garment_request_gives_the_outcome_the_label_map_decides(
    client,
    sessions,
    storage,
    expected: dict[str, Expected],
    redis_client: redis.Redis,
    module_prefix: str,
    photo: str,
) -> None:
    want = expected[photo]
    request = Request(sessions, storage, PHOTOS[photo])
    reply = reply_of(send(client, request))
    data = event_data(reply)
    results = for_job(redis_client, module_prefix, RESULTS, request.job_id)
    assert len(results) == 1 and event_data(results[0]) == data and results[0].get_type() == reply.get_type()
    assert for_job(redis_client, module_prefix, WEAVE, request.job_id) == []
    assert get_row(sessions, Job, request.job_id).status == "running"

    if want.outcome == "failed":
        assert reply.get_type() == t.TAILOR_FAILED
        assert data["reason"] == want.reason and data["error"]
        # the one failure shape of every stage, with tailor's own reason
        assert set(data) == {"job_id", "user_id", "vton_id", "error", "code", "retryable", "reason"}
        assert data["code"] == "unusable_photo" and data["retryable"] is False
        assert not storage.exists(request.cutout_key)
        assert assets_of(sessions, request.user_id) == []
        return

    assert reply.get_type() == t.TAILOR_COMPLETED
    assert data == {
        "job_id": request.job_id,
        "user_id": request.user_id,
        "vton_id": request.vton_id,
        "model": "smoke",
        "cutout_key": request.cutout_key,
        "category": want.category,
        "confidence": pytest.approx(want.confidence),
    }
    with Image.open(io.BytesIO(storage.get(request.cutout_key))) as cutout:
        assert cutout.format == "PNG" and cutout.mode == "RGBA"
        assert abs(cutout.width * 4 - cutout.height * 3) <= 4, cutout.size  # a 3:4 canvas
        assert cutout.getchannel("A").getextrema()[1] == 255, "the cut-out keeps some garment"
    (asset,) = assets_of(sessions, request.user_id)
    assert (asset.kind, asset.category, asset.key) == ("cutout", "", request.cutout_key)
    assert asset.content_hash == hashlib.sha256(request.photo).hexdigest()
    assert asset.confidence == pytest.approx(want.confidence) and asset.meta["category"] == want.category


@pytest.mark.parametrize("photo", ["blue", "red"])
def test_second_identical_request_is_a_cache_hit(
    client,
    app: Flask,
    sessions,
    storage,
    expected: dict[str, Expected],
    monkeypatch: pytest.MonkeyPatch,
    photo: str,
) -> None:
    want = expected[photo]
    request = Request(sessions, storage, PHOTOS[photo])
    parses = ParseCounter(app, monkeypatch)

    first = reply_of(send(client, request))
    assert parses.calls == 1
    second = reply_of(send(client, request, "structured"))  # the same event, delivered again
    assert second.get_type() == first.get_type()
    if want.outcome == "completed":
        assert parses.calls == 1, "a cut-out already made is reused, not parsed again"
        assert event_data(second) == event_data(first)
        assert len(assets_of(sessions, request.user_id)) == 1
        # the same photo uploaded again under another key is the same content: cached too
        again = Request(sessions, storage, PHOTOS[photo], user_id=request.user_id)
        assert event_data(reply_of(send(client, again)))["cutout_key"] == request.cutout_key
        assert parses.calls == 1
        # another user's identical photo is that user's own asset
        other = Request(sessions, storage, PHOTOS[photo])
        assert event_data(reply_of(send(client, other)))["cutout_key"] == other.cutout_key
        assert parses.calls == 2
    else:
        assert parses.calls == 2, "a refused photo leaves nothing cached: it is parsed again"
        assert event_data(second) == event_data(first)


@pytest.mark.parametrize("photo", ["blue", "red"])
def test_then_weave_sends_the_weave_request_with_the_resolved_category(
    client,
    sessions,
    storage,
    expected: dict[str, Expected],
    redis_client: redis.Redis,
    module_prefix: str,
    photo: str,
) -> None:
    want = expected[photo]
    request = Request(sessions, storage, PHOTOS[photo], then_weave=True)
    reply = reply_of(send(client, request))
    weave = for_job(redis_client, module_prefix, WEAVE, request.job_id)
    if want.outcome == "failed":
        assert reply.get_type() == t.TAILOR_FAILED and weave == []
        return
    assert reply.get_type() == t.TAILOR_COMPLETED
    assert event_data(reply)["category"] == want.category
    (event,) = weave
    assert event.get_type() == t.WEAVE_REQUESTED and event.get_extension("userid") == request.user_id
    assert event_data(event) == {
        **request.data["then_weave"],
        "category": want.category,
        "garment_key": request.cutout_key,
    }
    results = for_job(redis_client, module_prefix, RESULTS, request.job_id)
    assert [e.get_type() for e in results] == [t.TAILOR_COMPLETED]


@pytest.mark.parametrize("outcome", ["succeeded", "failed"])
def test_finished_job_is_left_alone(
    client,
    app: Flask,
    sessions,
    storage,
    redis_client: redis.Redis,
    module_prefix: str,
    monkeypatch: pytest.MonkeyPatch,
    outcome: str,
) -> None:
    request = Request(sessions, storage, PHOTOS["blue"], then_weave=True)
    with session_scope(sessions, write=True) as session:
        if outcome == "succeeded":
            assert jobs.complete_job(session, request.job_id, result_key=f"outputs/weaver/{request.user_id}/x.png")
        else:
            assert jobs.fail_job(session, request.job_id, error="given up")
    parses = ParseCounter(app, monkeypatch)
    before = prefix_entry_count(redis_client, module_prefix)
    response = send(client, request)
    assert response.status_code == 202 and response.get_data() == b""
    assert parses.calls == 0 and prefix_entry_count(redis_client, module_prefix) == before
    assert get_row(sessions, Job, request.job_id).status == outcome
    assert assets_of(sessions, request.user_id) == []
