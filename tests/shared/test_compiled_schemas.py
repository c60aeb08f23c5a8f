"""shared.events.validation: the compiled schema check agrees with jsonschema.

validate_event trusts the compiled check (fastjsonschema) when it accepts data, so it must
never accept what jsonschema rejects. These tests compare both verdicts on every example
and on many broken variants of each (every field given wrong types and out-of-range values,
every required field dropped, an unknown field added), and keep the schemas to keywords the
compiled check implements.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

import pytest

from shared import event_types as t
from shared.contracts.examples import EXAMPLES
from shared.events import InvalidEventData, make_event, validate_event
from shared.events.validation import _validators, data_is_valid

# What fastjsonschema's draft-07 generator checks, plus annotations that check nothing.
CHECKED = {
    "type", "enum", "const", "properties", "required", "additionalProperties", "patternProperties",
    "propertyNames", "items", "additionalItems", "contains", "minItems", "maxItems", "uniqueItems",
    "minLength", "maxLength", "pattern", "format", "minimum", "maximum", "exclusiveMinimum",
    "exclusiveMaximum", "multipleOf", "minProperties", "maxProperties", "dependencies", "anyOf",
    "allOf", "oneOf", "not", "if", "then", "else", "$ref",
}  # fmt: skip
ANNOTATIONS = {"$schema", "$id", "$defs", "title", "description", "examples", "default", "deprecated", "$comment"}
WRONG_VALUES: list[Any] = [None, True, 0, -1, 1.5, 2**64, "", "x" * 5000, "not an id!", [], {}, ["a"], {"a": 1}]


def keywords(node: Any, at_schema: bool = True) -> Iterator[str]:
    """Every keyword used in a schema (the names under properties/$defs are not keywords)."""
    if isinstance(node, list):
        for item in node:
            yield from keywords(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if at_schema:
                yield key
            if key in ("properties", "$defs", "patternProperties"):
                for sub in value.values():
                    yield from keywords(sub)
            elif key in ("examples", "default", "enum", "const", "required"):
                continue
            elif isinstance(value, (dict, list)):
                yield from keywords(value)


def variants(data: dict[str, Any], schema: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Broken (and a few still valid) copies of `data`."""
    for name in [*schema.get("properties", {}), *data]:
        for value in WRONG_VALUES:
            yield {**data, name: value}
    for name in data:
        yield {key: value for key, value in data.items() if key != name}
    yield {**data, "no_such_field": 1}
    for name, value in data.items():
        if isinstance(value, dict) and value:
            for inner in list(value):
                for wrong in WRONG_VALUES:
                    changed = copy.deepcopy(data)
                    changed[name][inner] = wrong
                    yield changed


@pytest.mark.parametrize("event_type", t.ALL_TYPES)
def test_schemas_use_only_keywords_the_compiled_check_implements(event_type: str) -> None:
    used = set(keywords(_validators()[event_type].schema))
    assert used - CHECKED - ANNOTATIONS == set()


@pytest.mark.parametrize("event_type", t.ALL_TYPES)
def test_compiled_check_and_jsonschema_agree_on_examples_and_broken_variants(event_type: str) -> None:
    validator = _validators()[event_type]
    compared = 0
    rejected = 0
    for example in EXAMPLES[event_type]:
        assert data_is_valid(event_type, example)
        for data in variants(example, validator.schema):
            full = validator.is_valid(data)
            assert data_is_valid(event_type, data) == full, data
            compared += 1
            rejected += not full
    assert compared > 50 and rejected > 25  # the variants really exercise the rejecting side


def test_rejected_data_is_still_explained_field_by_field() -> None:
    data = {**EXAMPLES[t.WEAVE_PROGRESS][0], "step": -1, "steps": "many"}
    event = make_event(t.WEAVE_PROGRESS, data, source="/test")
    with pytest.raises(InvalidEventData) as caught:
        validate_event(event)
    fields = [problem["field"] for problem in caught.value.details["errors"]]
    assert fields == ["data.step", "data.steps"]
