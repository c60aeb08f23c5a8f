"""The committed schemas are exactly what the contract models generate (`make schemas`)."""

from __future__ import annotations

import json

import jsonschema
import pytest

from gateway.openapi import OPENAPI_FILE
from shared.contracts import generate
from shared.contracts.events import EVENT_MODELS, TryonRequested
from shared.contracts.examples import EXAMPLES
from shared.contracts.rest import REQUEST_MODELS, WeaveJobRequest
from shared.contracts.tryon import MAX_SEED, STEPS_RANGE


def test_committed_files_equal_what_the_models_generate() -> None:
    from gateway import openapi

    stale = generate.stale_files() + generate.stale_files(openapi.expected_files())
    assert stale == [], f"run `make schemas`: {[str(p.relative_to(generate.ROOT)) for p in stale]} differ"
    assert generate.main(["--check"]) == 0 and generate.main(["--check"], files=openapi.expected_files) == 0


def test_the_check_reports_a_drifted_file(tmp_path, monkeypatch, capsys) -> None:
    target = generate.SCHEMA_DIR / "dev.proteus.weave.progress.json"
    copy = tmp_path / target.name
    copy.write_text(target.read_text().replace('"maximum": 1000', '"maximum": 999', 1))
    real = generate.expected_files

    def redirected():
        files = real()
        return {copy if path == target else path: text for path, text in files.items()}

    monkeypatch.setattr(generate, "expected_files", redirected)
    assert generate.main(["--check"]) == 1
    assert "weave.progress" in capsys.readouterr().err


@pytest.mark.parametrize("event_type", sorted(EVENT_MODELS))
def test_every_example_is_valid_for_the_model_and_the_generated_schema(event_type: str) -> None:
    schema = generate.event_schema(event_type)
    for example in EXAMPLES[event_type]:
        EVENT_MODELS[event_type].parse(example)
        jsonschema.Draft202012Validator(schema).validate(example)


def test_limits_reach_every_document_from_one_definition() -> None:
    tryon = generate.event_schema(TryonRequested.event_type)
    assert tryon["properties"]["seed"]["maximum"] == MAX_SEED
    assert tryon["properties"]["steps"]["maximum"] == STEPS_RANGE[1]
    openapi = json.loads(OPENAPI_FILE.read_text())["components"]["schemas"]
    assert openapi["WeaveJobRequest"]["properties"]["seed"]["maximum"] == MAX_SEED
    assert {m.__name__ for m in REQUEST_MODELS} <= set(openapi)


def test_legacy_spellings_are_documented_and_accepted() -> None:
    schema = json.loads(OPENAPI_FILE.read_text())["components"]["schemas"]["WeaveJobRequest"]
    assert {"user_snap", "user_snap_s3", "uncleaned_outfit", "uncleaned_outfit_s3", "mask"} <= set(schema["properties"])
    assert {"anyOf": [{"required": ["user_snap_s3"]}, {"required": ["user_snap"]}]} in schema["allOf"]
    for spelling in ("user_snap", "user_snap_s3"):
        body = WeaveJobRequest.parse(
            {"vton_id": "v", spelling: "uploads/u/a.png", "uncleaned_outfit": "uploads/u/b.png"},
            context={"user_id": "u"},
        )
        assert body.person_key == "uploads/u/a.png"
