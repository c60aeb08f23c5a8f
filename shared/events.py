"""Build, validate and (de)serialise Proteus CloudEvents.

Every event is a CloudEvents 1.0 `cloudevents.core.v1.event.CloudEvent` whose data is a JSON
object described by `cloudevents-schemas/<type>.json`. Three encodings exist:

- HTTP binary or structured mode (`to_http_binary`, `to_http_structured`, `from_http`);
- a Redis stream entry (`to_stream_fields`, `from_stream_fields`): the field `event` holds the
  structured-mode JSON and `type` repeats the type for people reading the stream;
- Knative's RedisStreamSource wrapper (`unwrap_redis_stream_source`), which `from_http`
  undoes so a function works the same behind the local runner or behind Knative.

Example:
    >>> event = make_event(TRYON_REQUESTED, data, source=source_for("gateway"))
    >>> validate_event(event)
    >>> headers, body = to_http_binary(event)
"""
from __future__ import annotations

import base64
import binascii
import json
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timezone
from functools import cache
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

import jsonschema
from cloudevents.core.bindings import http as ce_http
from cloudevents.core.exceptions import CloudEventValidationError
from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from dateutil.parser import isoparse

from shared.errors import BadRequest, UnsupportedMediaType
from shared.event_types import ALL_TYPES

__all__ = [
    "CloudEvent",
    "InvalidEvent",
    "InvalidEventData",
    "UnknownEventType",
    "make_event",
    "validate_event",
    "load_schemas",
    "schema_for",
    "event_data",
    "source_for",
    "to_stream_fields",
    "from_stream_fields",
    "to_http_binary",
    "to_http_structured",
    "from_http",
    "unwrap_redis_stream_source",
]

SCHEMA_DIR: Final = Path(__file__).resolve().parent.parent / "cloudevents-schemas"
JSON_MEDIA_TYPE: Final = "application/json"
STRUCTURED_MEDIA_TYPE: Final = "application/cloudevents+json"
BATCH_MEDIA_TYPE: Final = "application/cloudevents-batch+json"
USER_ID_EXTENSION: Final = "userid"
# Knative eventing-redis (source/pkg/adapter/adapter.go): one event per stream entry, with
# this type, source "<address>/<stream>", id = the entry id, and data = the entry's
# field/value list as a JSON array ["f1", "v1", "f2", "v2"] (values may arrive base64-encoded,
# as Go marshals []byte).
REDIS_STREAM_SOURCE_TYPE: Final = "dev.knative.sources.redisstream"
REQUIRED_ATTRIBUTES: Final = ("id", "source", "type", "specversion")
_MAX_VALUE_CHARS: Final = 120
_FORMAT = JSONFormat()


class InvalidEvent(BadRequest):
    """HTTP 400: a malformed event or an attribute with a bad value (never retried)."""

    code = "invalid_event"


class UnknownEventType(InvalidEvent):
    """HTTP 400: an event type Proteus does not know."""

    code = "unknown_event_type"


class InvalidEventData(InvalidEvent):
    """HTTP 400: the event's data breaks its type's JSON Schema."""

    code = "invalid_event_data"


def source_for(component: str) -> str:
    """The `source` attribute of events a component produces, e.g. `/proteus/weave`."""
    return f"/proteus/{component}"


def make_event(
    type: str,  # noqa: A002 - the CloudEvents attribute name
    data: Mapping[str, Any],
    *,
    source: str,
    subject: str | None = None,
    user_id: str | None = None,
    id: str | None = None,  # noqa: A002
) -> CloudEvent:
    """A new event with JSON data, `time` now, a uuid4 `id` unless given.

    `subject` defaults to `data["job_id"]` and the `userid` extension to `data["user_id"]`
    where the data has them. The event is not validated here: `publish()` and the runtime do.

    Example:
        >>> make_event("dev.proteus.weave.progress", {...}, source="/proteus/weave")
    """
    if not isinstance(data, Mapping):
        raise InvalidEvent(f"data must be a JSON object, got {type_name(data)}", field="data")
    try:
        body = json.loads(json.dumps(dict(data)))
    except (TypeError, ValueError) as exc:
        raise InvalidEvent(f"data is not JSON-serialisable: {exc}", field="data") from None
    attributes: dict[str, Any] = {
        "specversion": "1.0",
        "id": id or str(uuid.uuid4()),
        "source": source,
        "type": type,
        "time": datetime.now(timezone.utc),
        "datacontenttype": JSON_MEDIA_TYPE,
    }
    subject = subject if subject is not None else _str_or_none(body.get("job_id"))
    user_id = user_id if user_id is not None else _str_or_none(body.get("user_id"))
    if subject is not None:
        attributes["subject"] = subject
    if user_id is not None:
        attributes[USER_ID_EXTENSION] = user_id
    return _construct(attributes, body)


def event_data(event: CloudEvent) -> dict[str, Any]:
    """The event's data as a dict (a validated event always has one)."""
    data = event.get_data()
    if not isinstance(data, dict):
        raise InvalidEvent(f"data must be a JSON object, got {type_name(data)}", field="data")
    return data


# --------------------------------------------------------------------------- validation


@cache
def _validators() -> dict[str, jsonschema.protocols.Validator]:
    """Every type's compiled schema, loaded once per process."""
    validators = {}
    for event_type in ALL_TYPES:
        path = SCHEMA_DIR / f"{event_type}.json"
        schema = json.loads(path.read_text())
        jsonschema.Draft202012Validator.check_schema(schema)
        validators[event_type] = jsonschema.Draft202012Validator(schema, format_checker=_FORMAT_CHECKER)
    return validators


def load_schemas() -> None:
    """Load and check every schema now (apps call this at start to fail fast)."""
    _validators()


def schema_for(event_type: str) -> dict[str, Any]:
    """The JSON Schema of one type's data; UnknownEventType if there is none."""
    try:
        return dict(_validators()[event_type].schema)
    except KeyError:
        raise _unknown_type(event_type) from None


def validate_event(event: CloudEvent) -> None:
    """Check attributes and data; raise one InvalidEvent listing every problem.

    The exception's `field` names the first problem (`type`, `userid`, `data.steps`...), its
    `details["errors"]` all of them as `{"field", "message", "value"}`.
    """
    event_type = event.get_type()
    if event_type not in ALL_TYPES:
        raise _unknown_type(event_type)
    problems = _attribute_problems(event)
    data = event.get_data()
    if not isinstance(data, dict):
        problems.append(_problem("data", f"must be a JSON object, got {type_name(data)}", data))
    else:
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
        problems.append(_problem("specversion", "must be '1.0'", event.get_specversion()))
    content_type = event.get_datacontenttype()
    if content_type is not None and _media_type(content_type) != JSON_MEDIA_TYPE:
        problems.append(_problem("datacontenttype", f"must be {JSON_MEDIA_TYPE}", content_type))
    user_id = event.get_extension(USER_ID_EXTENSION)
    if user_id is None:
        problems.append(_problem(USER_ID_EXTENSION, "is required (the owner's user id)", None))
    elif not _is_id(user_id):
        problems.append(_problem(USER_ID_EXTENSION, "must be an id (letters, digits, '-', '_')", user_id))
    return problems


def _consistency_problems(event: CloudEvent, data: dict[str, Any]) -> list[dict[str, Any]]:
    problems = []
    user_id = event.get_extension(USER_ID_EXTENSION)
    if user_id is not None and "user_id" in data and data["user_id"] != user_id:
        problems.append(_problem(USER_ID_EXTENSION, f"must equal data.user_id {data['user_id']!r}", user_id))
    subject = event.get_subject()
    if subject is not None and "job_id" in data and data["job_id"] != subject:
        problems.append(_problem("subject", f"must equal data.job_id {data['job_id']!r}", subject))
    return problems


def _data_problems(validator: Any, data: dict[str, Any]) -> list[dict[str, Any]]:
    problems = []
    for error in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.absolute_path))):
        if error.validator in ("anyOf", "oneOf") and error.context:
            if not error.absolute_path:  # a top-level "one of these keys" rule
                options = [sorted(sub.schema.get("required", [])) for sub in error.context]
                names = " or ".join("/".join(o) for o in options if o)
                problems.append(_problem("data", f"needs {names}", None))
                continue
            error = jsonschema.exceptions.best_match(error.context)
        path = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error.absolute_path)
        field = f"data{path}"
        if error.validator == "required":
            missing = [name for name in error.validator_value if name not in error.instance]
            for name in missing:
                problems.append(_problem(f"{field}.{name}", "is required", None))
            continue
        if error.validator == "additionalProperties" and isinstance(error.instance, dict):
            known = set(error.schema.get("properties", {}))
            for name in sorted(set(error.instance) - known):
                problems.append(_problem(f"{field}.{name}", "is not an allowed field", error.instance[name]))
            continue
        message = error.message
        if error.validator == "pattern" and "description" in error.schema:
            message = f"{_shorten(repr(error.instance))} is not valid: {error.schema['description']}"
        problems.append(_problem(field, _shorten(message), error.instance))
    # jsonschema reports one "required" error per missing key, each naming the whole list.
    unique: dict[tuple[str, str], dict[str, Any]] = {}
    for problem in problems:
        unique.setdefault((problem["field"], problem["message"]), problem)
    return list(unique.values())


def _problem(field: str, message: str, value: Any) -> dict[str, Any]:
    if isinstance(value, str) and len(value) > _MAX_VALUE_CHARS:
        value = value[:_MAX_VALUE_CHARS] + "..."
    elif isinstance(value, (dict, list)):
        value = _shorten(json.dumps(value))
    return {"field": field, "message": message, "value": value}


def _unknown_type(event_type: Any) -> UnknownEventType:
    return UnknownEventType(
        f"unknown event type {event_type!r}; known types: {', '.join(ALL_TYPES)}", field="type"
    )


def _check_date_time(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return False
    return "T" in value.upper() and parsed.tzinfo is not None


def _check_uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return bool(parts.scheme and parts.netloc) and not any(c.isspace() for c in value)


def _make_format_checker() -> jsonschema.FormatChecker:
    """Draft 2020-12 formats, with date-time and uri checked without optional packages."""
    checker = jsonschema.FormatChecker()
    checker.checks("date-time")(_check_date_time)
    checker.checks("uri")(_check_uri)
    return checker


_FORMAT_CHECKER: Final = _make_format_checker()


# --------------------------------------------------------------------------- Redis streams


def to_stream_fields(event: CloudEvent) -> dict[str, str]:
    """The stream entry for an event: `{"event": <structured JSON>, "type": <type>}`."""
    return {"event": _FORMAT.write(event).decode("utf-8"), "type": event.get_type()}


def from_stream_fields(fields: Mapping[str | bytes, str | bytes]) -> CloudEvent:
    """The event in a stream entry (keys/values as str or bytes); InvalidEvent if malformed."""
    decoded = {_text(k): _text(v) for k, v in fields.items()}
    if "event" not in decoded:
        raise InvalidEvent(
            f"stream entry has no 'event' field (fields: {', '.join(sorted(decoded)) or 'none'})",
            field="event",
        )
    return _parse_structured(decoded["event"].encode("utf-8"))


# --------------------------------------------------------------------------- HTTP


def to_http_binary(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Binary mode: attributes as `ce-*` headers, `Content-Type` and the JSON data as body."""
    message = ce_http.to_binary(event, _FORMAT)
    return dict(message.headers), message.body


def to_http_structured(event: CloudEvent) -> tuple[dict[str, str], bytes]:
    """Structured mode: `Content-Type: application/cloudevents+json`, the whole event as body."""
    message = ce_http.to_structured(event, _FORMAT)
    return dict(message.headers), message.body


def from_http(headers: Mapping[str, str], body: bytes) -> CloudEvent:
    """Parse a binary- or structured-mode request (and unwrap a RedisStreamSource event).

    Raises UnsupportedMediaType (415) for a Content-Type neither mode accepts and
    InvalidEvent (400) naming the attribute for a malformed event. Does not validate the
    data against its schema: call `validate_event`.
    """
    lowered = {str(k).lower(): str(v) for k, v in headers.items()}
    content_type = lowered.get("content-type")
    if any(name.startswith("ce-") for name in lowered):
        event = _parse_binary(lowered, body, content_type)
    else:
        media_type = _media_type(content_type or "")
        if media_type == BATCH_MEDIA_TYPE:
            raise UnsupportedMediaType("batched CloudEvents are not supported; send one event", field="content-type")
        if media_type != STRUCTURED_MEDIA_TYPE:
            raise UnsupportedMediaType(
                f"no ce-* headers, so a structured-mode event with Content-Type {STRUCTURED_MEDIA_TYPE} "
                f"was expected, got {content_type!r}; for binary mode send ce-specversion, ce-id, "
                f"ce-source and ce-type headers with Content-Type {JSON_MEDIA_TYPE}",
                field="content-type",
            )
        event = _parse_structured(body)
    if event.get_type() == REDIS_STREAM_SOURCE_TYPE:
        return unwrap_redis_stream_source(event)
    return event


def unwrap_redis_stream_source(event: CloudEvent) -> CloudEvent:
    """The Proteus event inside a Knative RedisStreamSource event (type
    `dev.knative.sources.redisstream`, data `["event", "<json>", "type", "<type>"]`)."""
    data = event.get_data()
    if isinstance(data, (bytes, str)):
        try:
            data = json.loads(data)
        except ValueError:
            pass
    fields = _pairs(data)
    if "event" not in fields:
        decoded = _pairs(_b64_all(data))
        fields = decoded if "event" in decoded else fields
    if "event" not in fields:
        raise InvalidEvent(
            f"{REDIS_STREAM_SOURCE_TYPE} event {event.get_id()!r} carries no 'event' field; "
            "its data must be the entry's field/value list",
            field="data",
        )
    return from_stream_fields(fields)


def _pairs(data: Any) -> dict[str, str]:
    if isinstance(data, dict):
        return {str(k): v for k, v in data.items() if isinstance(v, str)}
    if isinstance(data, list) and len(data) % 2 == 0 and all(isinstance(x, str) for x in data):
        return dict(zip(data[0::2], data[1::2]))
    return {}


def _b64_all(data: Any) -> list[str] | None:
    if not isinstance(data, list):
        return None
    try:
        return [base64.b64decode(x, validate=True).decode("utf-8") for x in data]
    except (binascii.Error, UnicodeDecodeError, TypeError, ValueError):
        return None


def _parse_binary(headers: dict[str, str], body: bytes, content_type: str | None) -> CloudEvent:
    if content_type is not None and _media_type(content_type) != JSON_MEDIA_TYPE:
        raise UnsupportedMediaType(
            f"binary-mode CloudEvents must carry Content-Type {JSON_MEDIA_TYPE}, got {content_type!r}",
            field="content-type",
        )
    _require_attributes({name[3:]: value for name, value in headers.items() if name.startswith("ce-")}, "ce-")
    _check_time(headers.get("ce-time"))
    if body.strip():
        try:
            json.loads(body)
        except (ValueError, UnicodeDecodeError) as exc:
            raise InvalidEvent(f"data is not valid JSON: {exc}", field="data") from None
    if content_type is None:
        headers = dict(headers, **{"content-type": JSON_MEDIA_TYPE})
    message = ce_http.HTTPMessage(headers=headers, body=body)
    return _guard(lambda: ce_http.from_binary(message, _FORMAT, CloudEvent))


def _parse_structured(body: bytes) -> CloudEvent:
    try:
        document = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise InvalidEvent(f"structured-mode body is not valid JSON: {exc}", field="body") from None
    if not isinstance(document, dict):
        raise InvalidEvent(f"a structured-mode event must be a JSON object, got {type_name(document)}", field="body")
    _require_attributes(document, "")
    _check_time(document.get("time"))
    return _guard(lambda: _FORMAT.read(CloudEvent, body))


def _require_attributes(attributes: Mapping[str, Any], prefix: str) -> None:
    """The SDK would invent a missing id or specversion; a received event must carry them."""
    missing = [name for name in REQUIRED_ATTRIBUTES if attributes.get(name) in (None, "")]
    if missing:
        problems = [_problem(name, f"is required ({prefix}{name})", None) for name in missing]
        names = ", ".join(f"{prefix}{name}" for name in missing)
        raise InvalidEvent(f"malformed CloudEvent: missing {names}", field=missing[0], errors=problems)


def _construct(attributes: dict[str, Any], data: Any) -> CloudEvent:
    return _guard(lambda: CloudEvent(attributes, data))


def _guard(build: Callable[[], CloudEvent]) -> CloudEvent:
    """Run an SDK constructor, turning its errors into InvalidEvent naming the attribute."""
    try:
        return build()
    except CloudEventValidationError as exc:
        problems = [
            _problem(name, str(err), None) for name, errors in exc.errors.items() for err in errors[:1]
        ]
        summary = "; ".join(f"{p['field']}: {p['message']}" for p in problems)
        raise InvalidEvent(f"malformed CloudEvent: {summary}", field=problems[0]["field"], errors=problems) from None
    except (ValueError, TypeError, AttributeError) as exc:  # e.g. undecodable data_base64
        raise InvalidEvent(f"malformed CloudEvent: {exc.__class__.__name__}: {exc}", field="body") from None


def _check_time(value: Any) -> None:
    if value is None:
        return
    try:
        parsed = isoparse(str(value)) if not isinstance(value, datetime) else value
    except (ValueError, OverflowError):
        raise InvalidEvent(f"time must be an RFC 3339 timestamp, got {value!r}", field="time") from None
    if parsed.tzinfo is None:
        raise InvalidEvent(f"time must carry a timezone (e.g. 'Z'), got {value!r}", field="time")


# --------------------------------------------------------------------------- small helpers


def _media_type(content_type: str) -> str:
    return content_type.split(";", 1)[0].strip().lower()


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


def _str_or_none(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@cache
def _id_pattern() -> re.Pattern[str]:
    """The schemas' shared `$defs/id` pattern (identical in every file)."""
    return re.compile(_validators()[ALL_TYPES[0]].schema["$defs"]["id"]["pattern"])


def _is_id(value: Any) -> bool:
    return isinstance(value, str) and _id_pattern().search(value) is not None


def _shorten(text: str) -> str:
    return text if len(text) <= 300 else text[:300] + "..."


def type_name(value: Any) -> str:
    """JSON's name for a Python value's type, for error messages."""
    if value is None:
        return "null"
    return {dict: "object", list: "array", str: "string", bool: "boolean", int: "number", float: "number"}.get(
        type(value), type(value).__name__
    )
