"""POST /jobs/weaver names its model: model defaults and presets, a model not served is a 400,
and COMMERCIAL refuses what needs a non-commercial parser with a 403 that says why."""

from __future__ import annotations

import pytest

from tests.gateway.helpers import Person, stream_entries


def body_for(person: Person, **extra: object) -> dict:
    tryon = person.create_tryon()
    return {
        "vton_id": tryon["id"],
        "user_snap_s3": tryon["user_snap"],
        "uncleaned_outfit_s3": tryon["uncleaned_outfit"],
        **extra,
    }


@pytest.mark.parametrize(
    ("extra", "expected"),
    [
        ({}, (None, None)),  # enqueue fills the model's defaults
        ({"preset": "fast"}, (20, 1.5)),
        ({"preset": "default"}, (30, 1.5)),
        ({"steps": 100, "guidance": 10}, (100, 10)),
    ],
)
def test_fashn_request_reaches_the_event_with_its_options(person, extra, expected) -> None:
    body = body_for(
        person, model="fashn-vton-1.5", garment_photo_type="model", segmentation_free=False, category="upper", **extra
    )
    response = person.post("/jobs/weaver", json=body)
    assert response.status_code == 202, response.get_json()
    data = stream_entries(person.app, "proteus:tryon")[0][1]["data"]
    assert data["model"] == "fashn-vton-1.5" and data["garment_photo_type"] == "model"
    assert data["segmentation_free"] is False
    assert (data.get("steps"), data.get("guidance")) == expected


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"model": "catvton"}, "model"),
        ({"model": "fashn-vton-1.5", "steps": 101}, "steps"),
        ({"model": "fashn-vton-1.5", "guidance": 10.5}, "guidance"),
        ({"garment_photo_type": "photo"}, "garment_photo_type"),
        ({"segmentation_free": "yes"}, "segmentation_free"),
    ],
)
def test_bad_model_options_name_the_field(person, change, field) -> None:
    response = person.post("/jobs/weaver", json=body_for(person, **change))
    assert response.status_code == 400 and response.get_json()["field"] == field, response.get_json()


def test_a_model_this_deployment_does_not_serve_is_a_400(make_app) -> None:
    person = Person(make_app(weave_models=("fashn-vton-1.5",), weave_default_model="fashn-vton-1.5"))
    response = person.post("/jobs/weaver", json=body_for(person, model="catvton-mask"))
    assert response.status_code == 400
    error = response.get_json()
    assert error["code"] == "model_not_loaded" and "'catvton-mask' is not served" in error["error"]
    assert person.post("/jobs/weaver", json=body_for(person, category="upper")).status_code == 202


def test_commercial_serves_only_parser_free_fashn(make_app) -> None:
    person = Person(make_app(commercial=True, weave_models=("fashn-vton-1.5",), weave_default_model="fashn-vton-1.5"))
    ok = body_for(person, category="upper", garment_photo_type="flat-lay")
    assert person.post("/jobs/weaver", json=ok).status_code == 202
    for change, field in (
        ({"garment_photo_type": "model"}, "garment_photo_type"),
        ({"garment_photo_type": "flat-lay", "segmentation_free": False}, "segmentation_free"),
        ({"category": "auto", "garment_photo_type": "flat-lay"}, "category"),
    ):
        response = person.post("/jobs/weaver", json=body_for(person, **{"category": "upper", **change}))
        assert response.status_code == 403, response.get_json()
        error = response.get_json()
        assert error["code"] == "licence_restricted" and error["field"] == field and "non-commercial" in error["error"]


def test_history_names_the_model_and_seed_of_the_newest_job(person) -> None:
    tryon = person.create_tryon(category="upper")
    assert [r["model"] for r in person.get("/vton").get_json()] == [None]
    person.start_weave(tryon, model="fashn-vton-1.5", seed=42, garment_photo_type="flat-lay")
    person.start_weave(tryon, seed=43)  # a new run: the default model
    (row,) = person.get("/vton").get_json()
    assert (row["model"], row["seed"]) == (None, 43)  # queued: the default model is named once it ran
    other = person.create_tryon(category="upper")
    person.start_weave(other, model="fashn-vton-1.5", seed=42)
    row = next(r for r in person.get("/vton").get_json() if r["id"] == other["id"])
    assert (row["model"], row["seed"]) == ("fashn-vton-1.5", 42)
