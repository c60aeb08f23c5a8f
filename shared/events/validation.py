"""Validate an event: its attributes, and its data against `cloudevents-schemas/<type>.json`.

Every event is checked several times on its way (published, received, replied), so the data
is first checked by the schema compiled to Python (fastjsonschema, ~30x faster than
jsonschema's interpreter); only data it rejects goes through jsonschema, which names every
problem with its path and value. The schemas use only keywords both know (a test checks it,
and that both give the same verdict on every example and on many broken variants of them).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, Final

import fastjsonschema
import jsonschema
from cloudevents.core.v1.event import CloudEvent

from shared.event_types import ALL_TYPES
from shared.events.errors import (
    InvalidEvent,
    InvalidEventData,
    problem,
    shorten,
    type_name,
    unknown_type,
)
from shared.events.event import JSON_MEDIA_TYPE, USER_ID_EXTENSION, media_type
from shared.events.formats import FORMAT_CHECKER, check_date_time, check_uri

SCHEMA_DIR: Final = Path(__file__).resolve().parents[2] / "cloudevents-schemas"


@cache
def _validators() -> dict[str, jsonschema.protocols.Validator]:
    """Every type's compiled schema, loaded once per process."""
    validators = {}
    for event_type in ALL_TYPES:
        path = SCHEMA_DIR / f"{event_type}.json"
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        validators[event_type] = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
    return validators


@cache
def _compiled() -> dict[str, Callable[[Any], Any]]:
    """Every type's schema compiled to a Python function (raises on invalid data), once per process."""
    formats = {"date-time": check_date_time, "uri": check_uri}
    return {
        event_type: fastjsonschema.compile(validator.schema, formats=formats)
        for event_type, validator in _validators().items()
    }


def data_is_valid(event_type: str, data: Any) -> bool:
    """Whether `data` passes `event_type`'s schema (the compiled check alone, no details)."""
    try:
        _compiled()[event_type](data)
    except fastjsonschema.JsonSchemaException:
        return False
    return True


def load_schemas() -> None:
    """Load, check and compile every schema now (apps call this at start to fail fast)."""
    _compiled()


def schema_for(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one type's data; UnknownEventType if there is none."""
    try:
        return dict(_validators()[event_type].schema)
    except KeyError:
        raise unknown_type(event_type) from None


def validate_event(event: CloudEvent) -> None:
    """Check attributes and data; raise one InvalidEvent listing every problem.

    The exception's `field` names the first problem (`type`, `userid`, `data.steps`...), its
    `details["errors"]` all of them as `{"field", "message", "value"}`.
    """
    event_type = event.get_type()
    if event_type not in ALL_TYPES:
        raise unknown_type(event_type)
    problems = _attribute_problems(event)
    data = event.get_data()
    if not isinstance(data, dict):
        problems.append(problem("data", f"must be a JSON object, got {type_name(data)}", data))
    else:
        if not data_is_valid(event_type, data):
            problems.extend(_data_problems(_validators()[event_type], data))
        problems.extend(_consistency_problems(event, data))
    if problems:
        only_data = all(p["field"].startswith("data") for p in problems)
        cls = InvalidEventData if only_data else InvalidEvent
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise cls(f"invalid {event_type} event: {summary}", field=problems[0]["field"], errors=problems)


def _attribute_problems(event: CloudEvent) -> list[dict[str, Any]]:
    problems = []
    if event.get_specversion() != "1.0":
        problems.append(problem("specversion", "must be '1.0'", event.get_specversion()))
    content_type = event.get_datacontenttype()
    if content_type is not None and media_type(content_type) != JSON_MEDIA_TYPE:
        problems.append(problem("datacontenttype", f"must be {JSON_MEDIA_TYPE}", content_type))
    user_id = event.get_extension(USER_ID_EXTENSION)
    if user_id is None:
        problems.append(problem(USER_ID_EXTENSION, "is required (the owner's user id)", None))
    elif not _is_id(user_id):
        problems.append(problem(USER_ID_EXTENSION, "must be an id (letters, digits, '-', '_')", user_id))
    return problems


def _consistency_problems(event: CloudEvent, data: dict[str, Any]) -> list[dict[str, Any]]:
    problems = []
    user_id = event.get_extension(USER_ID_EXTENSION)
    if user_id is not None and "user_id" in data and data["user_id"] != user_id:
        problems.append(problem(USER_ID_EXTENSION, f"must equal data.user_id {data['user_id']!r}", user_id))
    subject = event.get_subject()
    if subject is not None and "job_id" in data and data["job_id"] != subject:
        problems.append(problem("subject", f"must equal data.job_id {data['job_id']!r}", subject))
    return problems


def _data_problems(validator: Any, data: dict[str, Any]) -> list[dict[str, Any]]:
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator in ("anyOf", "oneOf") and error.context:
            if not error.absolute_path:  # a top-level "one of these keys" rule
                options = [sorted(sub.schema.get("required", [])) for sub in error.context]
                names = " or ".join("/".join(o) for o in options if o)
                problems.append(problem("data", f"needs {names}", None))
                continue
            error = jsonschema.exceptions.best_match(error.context)
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        field = f"data{path}"
        if error.validator == "required":
            missing = [name for name in error.validator_value if name not in error.instance]
            for name in missing:
                problems.append(problem(f"{field}.{name}", "is required", None))
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - known):
                problems.append(problem(f"{field}.{name}", "is not an allowed field", error.instance[name]))
            continue
        message = error.message
        if error.validator == "pattern" and "description" in error.schema:
            message = f"{shorten(repr(error.instance))} is not valid: {error.schema['description']}"
        problems.append(problem(field, shorten(message), error.instance))
    # jsonschema reports one "required" error per missing key, each naming the whole list.
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for item in problems:
        unique.setdefault((item["field"], item["message"]), item)
    return list(unique.values())


@cache
def _id_pattern() -> re.Pattern[str]:
    """The schemas' shared `$defs/id` pattern (identical in every file)."""
    return re.compile(_validators()[ALL_TYPES[0]].schema["$defs"]["id"]["pattern"])


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and _id_pattern().search(value) is not None
