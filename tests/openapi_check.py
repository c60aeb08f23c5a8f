"""Every answer a test gets from a running gateway, checked against the OpenAPI document.

The Flask test clients check theirs in tests/gateway/helpers.py (CheckedClient); tests that
talk to a real gateway over HTTP (the system tests, gunicorn, the public API) go through
`requests`, whose answers are checked here: `watch(base_url)` names a gateway, and every
response from under it must have a status the operation documents and a JSON body that
matches that status's schema. `check_message` does the same for a WebSocket message.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any
from urllib.parse import urlsplit

import jsonschema
import requests

_WATCHED: set[str] = set()
_PATCHED: list[Any] = []


@cache
def document() -> dict[str, Any]:
    from gateway.openapi import document

    return document()


@cache
def _templates() -> list[tuple[re.Pattern[str], str]]:
    """(regex, template) for each documented path; literal paths before templated ones."""
    found = []
    for template in document()["paths"]:
        parts = re.split(r"\{([^}]+)\}", template)
        # {key} and {filename} span slashes (Flask's path converter); other parameters do not.
        pattern = "".join(
            re.escape(part) if i % 2 == 0 else "(.+)" if part in ("key", "filename") else "([^/]+)"
            for i, part in enumerate(parts)
        )
        found.append((re.compile(pattern + "$"), template))
    return sorted(found, key=lambda item: (item[1].count("{"), -len(item[1])))


def _template(path: str) -> str | None:
    return next((template for pattern, template in _templates() if pattern.match(path)), None)


def schema_errors(schema: dict[str, Any], instance: Any) -> list[str]:
    """Errors of `instance` against an OpenAPI schema (with the document's components)."""
    validator = jsonschema.Draft202012Validator(
        {**schema, "components": document()["components"]}, format_checker=jsonschema.FormatChecker()
    )
    return [e.message for e in sorted(validator.iter_errors(instance), key=str)]


def check(method: str, path: str, status: int, body: bytes, json_body: Any = None) -> None:
    """The status is documented for the operation, and a JSON body matches its schema."""
    if method in ("OPTIONS", "HEAD"):
        return
    template = _template(path)
    operation = document()["paths"][template].get(method.lower()) if template else None
    if operation is None:  # unknown route or method: the JSON error shape
        assert status in (404, 405), f"{method} {path}: {status} from an undocumented route"
        schema: dict[str, Any] | None = {"$ref": "#/components/schemas/Error"}
    else:
        spec = operation["responses"].get(str(status))
        assert spec is not None, (
            f"{method} {template} answered {status}, which the OpenAPI document does not list: {body[:300]!r}"
        )
        content = spec.get("content") or {}
        schema = content.get("application/json", {}).get("schema")
        if not content:
            assert body == b"", f"{method} {template} {status} documents no body"
    if schema is not None:
        assert json_body is not None, f"{method} {path}: {status} is not JSON"
        errors = schema_errors(schema, json_body)
        assert not errors, f"{method} {template or path} {status}: {errors[0]}"


def check_message(text: str | bytes) -> None:
    """A WebSocket message from the server matches its schema in x-websocket."""
    message = json.loads(text)
    name = {"ready": "ReadyMessage", "progress": "ProgressMessage"}.get(message.get("event"), "CompletionMessage")
    assert {"$ref": f"#/components/schemas/{name}"} in document()["x-websocket"]["serverMessages"]
    errors = schema_errors({"$ref": f"#/components/schemas/{name}"}, message)
    assert not errors, f"WebSocket {name}: {errors[0]}: {message}"


def _check_response(response: requests.Response) -> None:
    url = response.request.url or ""
    base = next((b for b in _WATCHED if url.startswith(b + "/") or url == b), None)
    if base is None:
        return
    is_json = response.headers.get("Content-Type", "").startswith("application/json")
    json_body = response.json() if is_json and response.content else None
    check(
        response.request.method or "GET", urlsplit(url).path or "/", response.status_code, response.content, json_body
    )


def unwatch(base_url: str) -> None:
    """Stop checking `base_url` (its gateway stopped; another server may get the port)."""
    _WATCHED.discard(base_url.rstrip("/"))


def watch(base_url: str) -> None:
    """Check every `requests` answer from under `base_url` (a running gateway) from now on."""
    _WATCHED.add(base_url.rstrip("/"))
    if _PATCHED:
        return
    send = requests.Session.send

    def checked_send(self: requests.Session, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        response = send(self, request, **kwargs)
        if not kwargs.get("stream"):
            _check_response(response)
        return response

    requests.Session.send = checked_send  # type: ignore[method-assign]
    _PATCHED.append(send)
