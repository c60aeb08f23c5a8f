"""Every event type has a schema whose examples validate and whose rules bite."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from shared.event_types import ALL_TYPES, TAILOR_REQUESTED, WEAVE_REQUESTED
from shared.events import InvalidEvent, make_event, validate_event
from shared.routing import NOTIFICATION_CHANNEL, NOTIFICATION_STREAM, ROUTES

SCHEMA_DIR = Path(__file__).resolve().parents[2] / "cloudevents-schemas"


def load(event_type: str) -> dict[str, Any]:
    return json.loads((SCHEMA_DIR / f"{event_type}.json").read_text())


def examples() -> list[tuple[str, int, dict[str, Any]]]:
    return [(t, i, ex) for t in ALL_TYPES for i, ex in enumerate(load(t)["examples"])]


def event_for(event_type: str, data: dict[str, Any]):
    user_id = data.get("user_id") or "5d2f7c1a-8e3b-4c4d-9f6a-1b2c3d4e5f60"
    return make_event(event_type, data, source="/tests", user_id=user_id)


def test_one_schema_file_per_type_and_nothing_else() -> None:
    files = {p.name for p in SCHEMA_DIR.iterdir()}
    assert files == {f"{t}.json" for t in ALL_TYPES} | {"README.md"}


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_schema_is_valid_draft_2020_12_and_named_after_its_type(event_type: str) -> None:
    schema = load(event_type)
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == event_type
    assert schema["$id"].endswith(f"/{event_type}.json")
    assert schema["additionalProperties"] is False
    assert schema["examples"], "every schema needs at least one example"
    for name, prop in schema["properties"].items():
        assert prop.get("description"), f"{event_type}: property {name} is undocumented"


def test_shared_definitions_are_identical_everywhere() -> None:
    first = load(ALL_TYPES[0])["$defs"]
    for event_type in ALL_TYPES[1:]:
        assert load(event_type)["$defs"] == first, f"{event_type} $defs drifted"


@pytest.mark.parametrize(("event_type", "index", "example"), examples(), ids=lambda v: str(v)[:40])
def test_every_example_validates_as_an_event(event_type: str, index: int, example: dict[str, Any]) -> None:
    validate_event(event_for(event_type, example))


@pytest.mark.parametrize(("event_type", "index", "example"), examples(), ids=lambda v: str(v)[:40])
def test_each_required_field_is_enforced(event_type: str, index: int, example: dict[str, Any]) -> None:
    for name in load(event_type)["required"]:
        broken = {k: v for k, v in example.items() if k != name}
        with pytest.raises(InvalidEvent) as caught:
            validate_event(event_for(event_type, broken))
        assert any(e["field"] == f"data.{name}" for e in caught.value.details["errors"])


@pytest.mark.parametrize(("event_type", "index", "example"), examples(), ids=lambda v: str(v)[:40])
def test_unknown_fields_are_refused(event_type: str, index: int, example: dict[str, Any]) -> None:
    with pytest.raises(InvalidEvent) as caught:
        validate_event(event_for(event_type, dict(example, image_bytes="iVBORw0KGgo=")))
    assert caught.value.field == "data.image_bytes"


@pytest.mark.parametrize("bad_key", ["/etc/passwd", "uploads/../secrets", "uploads//x.png", "a b.png", ""])
def test_storage_keys_refuse_escapes(bad_key: str) -> None:
    for event_type, _, example in examples():
        keys = [k for k, v in example.items() if k.endswith("_key") and k != "idempotency_key" and v]
        for key in keys:
            with pytest.raises(InvalidEvent) as caught:
                validate_event(event_for(event_type, dict(example, **{key: bad_key})))
            assert caught.value.details["errors"][0]["value"] == bad_key


def test_ids_must_look_like_ids() -> None:
    event_type, _, example = examples()[0]
    with pytest.raises(InvalidEvent) as caught:
        validate_event(event_for(event_type, dict(example, vton_id="x; DROP TABLE vtons")))
    assert caught.value.field == "data.vton_id"


def test_weave_mask_variant_needs_a_mask_key() -> None:
    example = dict(load(WEAVE_REQUESTED)["examples"][0], variant="mask")
    example.pop("mask_key", None)
    with pytest.raises(InvalidEvent) as caught:
        validate_event(event_for(WEAVE_REQUESTED, example))
    assert caught.value.field == "data.mask_key"


def test_tailor_needs_a_garment_or_a_person() -> None:
    example = copy.deepcopy(load(TAILOR_REQUESTED)["examples"][0])
    example.pop("garment_key")
    with pytest.raises(InvalidEvent, match="garment_key or person_key"):
        validate_event(event_for(TAILOR_REQUESTED, example))


def test_then_weave_is_checked_too() -> None:
    example = copy.deepcopy(load(TAILOR_REQUESTED)["examples"][1])
    example["then_weave"]["steps"] = 0
    with pytest.raises(InvalidEvent) as caught:
        validate_event(event_for(TAILOR_REQUESTED, example))
    assert caught.value.field == "data.then_weave.steps"


def test_readme_table_lists_every_type_with_the_routing_tables_stream() -> None:
    readme = (SCHEMA_DIR / "README.md").read_text()
    rows = {}
    for line in readme.splitlines():
        match = re.match(r"^\| `(dev\.proteus\.[a-z.]+)` \|([^|]+)\|([^|]+)\|([^|]+)\|([^|]+)\|$", line)
        if match:
            rows[match.group(1)] = [c.strip() for c in match.groups()[1:]]
    assert set(rows) == set(ALL_TYPES)
    streams = {t: r.stream for r in ROUTES for t in r.event_types}
    for event_type, (producer, consumer, stream, meaning) in rows.items():
        assert producer and consumer and meaning
        if event_type in streams:
            assert stream == f"`{streams[event_type]}`"
            route = next(r for r in ROUTES if event_type in r.event_types)
            assert route.consumer in consumer
    notification = rows["dev.proteus.user.notification"][2]
    assert NOTIFICATION_CHANNEL in notification and NOTIFICATION_STREAM in notification
