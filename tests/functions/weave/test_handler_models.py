"""weave serves its models by name: FASHN VTON beside CatVTON, readiness lists them with their
licences, a model that is not loaded fails the job with a 4xx reason, and COMMERCIAL serves
only the parser-free FASHN combination."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy.orm import Session, sessionmaker

from functions.weave.main import create_app
from shared import event_types as t
from shared.config import Settings
from shared.events import event_data
from tests.functions.cloudevents_support import binary_request, post, reply_of, stream_events
from tests.functions.conftest import dispose_function, function_of
from tests.functions.weave.handler_support import Job1

pytestmark = pytest.mark.redis


def _app(settings: Settings) -> Flask:
    app = create_app(settings)
    client = app.test_client()
    deadline = time.monotonic() + 120
    while (ready := client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, f"weave never became ready: {ready.get_json()}"
        assert "error" not in ready.get_json(), ready.get_json()
        time.sleep(0.05)
    return app


@pytest.fixture(scope="module")
def app(module_settings: Settings, weave_smoke_models: Path) -> Iterator[Flask]:
    app = _app(
        module_settings.with_overrides(
            models_dir=str(weave_smoke_models), weave_device="cpu", weave_models=("catvton-maskfree", "fashn-vton-1.5")
        )
    )
    yield app
    dispose_function(app)


@pytest.fixture(scope="module")
def commercial_app(module_settings: Settings, weave_smoke_models: Path) -> Iterator[Flask]:
    app = _app(
        module_settings.with_overrides(
            models_dir=str(weave_smoke_models),
            weave_device="cpu",
            commercial=True,
            weave_models=("fashn-vton-1.5",),
            weave_default_model="fashn-vton-1.5",
        )
    )
    yield app
    dispose_function(app)


def send(app: Flask, job: Job1) -> Any:
    return reply_of(
        post(app.test_client(), binary_request(t.WEAVE_REQUESTED, job.data, user_id=job.user_id, subject=job.job_id))
    )


def fashn_job(sessions: sessionmaker[Session], storage: Any, **fields: Any) -> Job1:
    job = Job1(sessions, storage)
    job.data.update(
        {
            "model": "fashn-vton-1.5",
            "steps": 3,
            "guidance": 1.5,
            "garment_photo_type": "model",
            "segmentation_free": True,
            **fields,
        }
    )
    return job


def test_readyz_lists_the_loaded_models_with_licences(app: Flask) -> None:
    state = app.test_client().get("/readyz").get_json()
    names = [m["name"] for m in state["models"]]
    assert names == ["catvton-maskfree", "fashn-vton-1.5"] and state["default_model"] == "catvton-maskfree"
    fashn = state["models"][1]
    assert fashn["family"] == "fashn" and "Apache-2.0" in fashn["licence"] and fashn["human_parser"] is True
    assert "non-commercial" in state["models"][0]["licence"] and state["models"][0]["commercial"] is False


@pytest.mark.parametrize(
    "photo_type,segmentation_free", [("model", True), ("model", False), ("flat-lay", True), ("flat-lay", False)]
)
def test_fashn_request_renders_and_names_its_model(app, sessions, storage, photo_type, segmentation_free) -> None:
    job = fashn_job(sessions, storage, garment_photo_type=photo_type, segmentation_free=segmentation_free)
    reply = send(app, job)
    assert reply.get_type() == t.WEAVE_COMPLETED, event_data(reply)
    data = event_data(reply)
    assert data["model"] == "fashn-vton-1.5" and data["seed"] == 7
    assert data["metadata"]["garment_photo_type"] == photo_type and data["metadata"]["steps"] == 3
    with Image.open(io.BytesIO(storage.get(job.result_key))) as image:
        assert image.width == 32 and image.height <= 48


def test_model_not_loaded_fails_the_job_with_a_4xx_reason(app, sessions, storage) -> None:
    job = Job1(sessions, storage)
    job.data.update({"model": "catvton-mask", "variant": "mask", "mask_key": job.person_key})
    data = event_data(send(app, job))
    assert data["code"] == "model_not_loaded" and data["retryable"] is False
    assert "'catvton-mask' is not loaded" in data["error"] and "fashn-vton-1.5" in data["error"]


def test_commercial_serves_only_flat_lay_segmentation_free(commercial_app, sessions, storage) -> None:
    state = commercial_app.test_client().get("/readyz").get_json()
    assert state["commercial"] is True and state["models"][0]["human_parser"] is False
    ok = event_data(send(commercial_app, fashn_job(sessions, storage, garment_photo_type="flat-lay")))
    assert ok["model"] == "fashn-vton-1.5", ok
    refused = event_data(send(commercial_app, fashn_job(sessions, storage, garment_photo_type="model")))
    assert refused["code"] == "licence_restricted" and "non-commercial" in refused["error"]
    auto = event_data(send(commercial_app, fashn_job(sessions, storage, garment_photo_type="auto")))
    assert auto["model"] == "fashn-vton-1.5" and auto["metadata"]["garment_photo_type"] == "flat-lay"


@pytest.mark.parametrize("image_format", ["png", "jpeg", "webp"])
def test_a_stored_result_says_it_is_generated_and_by_which_model(app, sessions, storage, image_format) -> None:
    """The C2PA manifest (read back by c2pa.Reader) and the IPTC XMP of a real result."""
    from shared.c2pa_signing import created_action, read_manifest
    from shared.provenance import DIGITAL_SOURCE_TYPE, read_digital_source_type

    job = fashn_job(sessions, storage, output_format=image_format)
    reply = send(app, job)
    assert reply.get_type() == t.WEAVE_COMPLETED, event_data(reply)
    data = storage.get(event_data(reply)["result_key"])
    manifest = read_manifest(data, image_format)
    assert manifest is not None and set(manifest["failure_codes"]) <= {"signingCredential.untrusted"}
    action = created_action(manifest)
    assert action is not None and action["digitalSourceType"] == DIGITAL_SOURCE_TYPE
    assert action["parameters"] == {"model": "fashn-vton-1.5", "smoke": True}
    assert read_digital_source_type(data) == DIGITAL_SOURCE_TYPE


def test_a_canceled_fashn_job_leaves_its_batch_at_the_next_step(
    app, sessions, storage, redis_client, module_prefix, monkeypatch
) -> None:
    from functions.weave.events import sample_keys
    from shared.events import make_event
    from tests.functions.weave.handler_support import cancel_at_step

    kept, canceled = fashn_job(sessions, storage), fashn_job(sessions, storage, num_samples=2)
    cancel_at_step(monkeypatch, redis_client, module_prefix, 1, canceled)
    events = [make_event(t.WEAVE_REQUESTED, job.data, source="/tests") for job in (kept, canceled)]
    assert function_of(app).handle_batch(events) == [None, None]
    replies = {
        e.get_subject(): e
        for _, e in stream_events(redis_client, module_prefix, "proteus:results")
        if e.get_type() != t.WEAVE_PROGRESS
    }
    assert event_data(replies[canceled.job_id])["code"] == "canceled"
    assert not any(storage.exists(key) for key in sample_keys(canceled.data))
    done = event_data(replies[kept.job_id])
    assert done["model"] == "fashn-vton-1.5" and done["metadata"]["batch_size"] == 1  # 3 rows -> 1
    assert storage.exists(kept.result_key)
