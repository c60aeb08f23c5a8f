"""The /v1 API, the API-key routes and the webhook settings in the OpenAPI document,
generated from the pydantic models of shared/contracts/v1.py."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateway.openapi_builders import path_param
from shared.contracts import v1 as m
from shared.contracts.fields import IDEMPOTENCY_KEY_PATTERN

REF = "#/components/schemas/{model}"
MODELS: tuple[type[BaseModel], ...] = (
    m.RunRequest,
    m.RunResponse,
    m.StatusResponse,
    m.CancelResponse,
    m.Deliveries,
    m.ApiKeyCreate,
    m.ApiKeyCreated,
    m.ApiKeyList,
    m.WebhookSettingsUpdate,
    m.WebhookSettings,
)
RATE_HEADERS = {
    "RateLimit-Policy": {
        "description": 'The key\'s limit: "key";q=<requests>;w=<window seconds>.',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'What is left: "key";r=<remaining>;t=<seconds until the window resets>.',
        "schema": {"type": "string"},
    },
}


def _schemas() -> dict[str, Any]:
    schemas: dict[str, Any] = {}
    for model in MODELS:
        schema = model.model_json_schema(ref_template=REF)
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    return schemas


def _json(description: str, name: str, headers: dict[str, Any] | None = None) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "content": {"application/json": {"schema": {"$ref": REF.format(model=name)}}},
    }
    if headers:
        response["headers"] = headers
    return response


def _json_body(name: str) -> dict[str, Any]:
    """A required JSON request body of the model `name`."""
    return {"required": True, "content": {"application/json": {"schema": {"$ref": REF.format(model=name)}}}}


def _v1(
    op_id: str,
    summary: str,
    ok: dict[str, Any],
    *,
    request: str | None = None,
    not_found: bool = False,
    params: list[dict[str, Any]] | None = None,
    description: str | None = None,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    # The common Error shape; on /v1 `error` is FASHN's name (BadRequest, UnauthorizedAccess, ...).
    def error(text: str) -> dict[str, Any]:
        return _json(text, "Error", RATE_HEADERS)

    responses = {
        "200": ok,
        "400": error("BadRequest: the message names the field and the value."),
        "401": _json("UnauthorizedAccess: no, unknown or revoked API key.", "Error"),
        "429": {
            **error("RateLimitExceeded: over the key's limit."),
            "headers": {
                **RATE_HEADERS,
                "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}},
            },
        },
        "503": error("ServiceUnavailable: the database, Redis or storage is down; retry."),
    }
    if not_found:
        responses["404"] = error("NotFound: no such prediction, or another account's.")
    if request:
        responses["413"] = error("BadRequest: the body or an image is over the size limit.")
    for status, text in (extra or {}).items():
        responses[status] = error(text)
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": ["v1"],
        "security": [{"apiKey": []}],
        "responses": responses,
    }
    if description:
        operation["description"] = description
    if request:
        operation["requestBody"] = _json_body(request)
    if params:
        operation["parameters"] = params
    return operation


def _session(
    op_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    request: str | None = None,
    params: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    error = _json("Invalid input, no session, or not yours.", "Error")
    operation: dict[str, Any] = {
        "operationId": op_id,
        "summary": summary,
        "tags": ["api-keys"],
        "responses": {**responses, "400": error, "401": error, "503": error},
    }
    if request:
        operation["requestBody"] = _json_body(request)
    if params:
        operation["parameters"] = params
    return operation


IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The same key answers the same prediction and starts nothing new.",
    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
}


WEBHOOK_QUERY = {
    "name": "webhook_url",
    "in": "query",
    "required": False,
    "description": "Where to POST the status when the run ends (FASHN's place for it; the body's "
    "webhook_url is the same).",
    "schema": {"type": "string", "maxLength": 2048},
}


def _paths() -> dict[str, Any]:
    return {
        "/v1/run": {
            "post": _v1(
                "v1Run",
                "Start a try-on (FASHN-compatible)",
                _json("The prediction id.", "RunResponse", RATE_HEADERS),
                request="RunRequest",
                params=[IDEMPOTENCY, WEBHOOK_QUERY],
                description="Images may be storage keys, data: URLs or https URLs (fetched through an SSRF guard and "
                "checked as images before anything is queued).",
            )
        },
        "/v1/status/{id}": {
            "get": _v1(
                "v1Status",
                "A prediction's status and outputs",
                _json("The status.", "StatusResponse", RATE_HEADERS),
                not_found=True,
                params=[path_param("id", "The prediction id.")],
            )
        },
        "/v1/cancel/{id}": {
            "post": {
                **_v1(
                    "v1Cancel",
                    "Cancel a queued or running prediction",
                    _json("Canceled.", "CancelResponse", RATE_HEADERS),
                    not_found=True,
                    params=[path_param("id", "The prediction id.")],
                    description="A queued one stops at once, a running one at its next denoising step.",
                    extra={"409": "Conflict: the prediction has already ended."},
                )
            }
        },
        "/v1/webhooks/deliveries": {
            "get": _v1(
                "v1Deliveries",
                "The last webhook deliveries",
                _json("Newest first.", "Deliveries", RATE_HEADERS),
                params=[
                    {
                        "name": "limit",
                        "in": "query",
                        "required": False,
                        "schema": {"type": "integer", "minimum": 1, "maximum": 100, "default": 50},
                    }
                ],
            )
        },
        "/api-keys": {
            "post": _session(
                "createApiKey",
                "Create an API key (shown once)",
                {"201": _json("The key.", "ApiKeyCreated")},
                request="ApiKeyCreate",
            ),
            "get": _session(
                "listApiKeys",
                "Your API keys (never the keys themselves)",
                {"200": _json("Newest first.", "ApiKeyList")},
            ),
        },
        "/api-keys/{key_id}": {
            "delete": _session(
                "revokeApiKey",
                "Revoke a key (at once, on every replica)",
                {"204": {"description": "Revoked."}, "404": _json("No such key (or not yours).", "Error")},
                params=[path_param("key_id", "The key's id.")],
            )
        },
        "/webhook-settings": {
            "get": _session(
                "getWebhookSettings",
                "Default webhook URL and signing secret",
                {"200": _json("The settings.", "WebhookSettings")},
            ),
            "put": _session(
                "putWebhookSettings",
                "Set the default webhook URL",
                {"200": _json("The settings.", "WebhookSettings")},
                request="WebhookSettingsUpdate",
            ),
        },
        "/webhook-settings/rotate-secret": {
            "post": _session(
                "rotateWebhookSecret",
                "A new signing secret (the old one stops at once)",
                {"200": _json("The settings.", "WebhookSettings")},
            )
        },
    }


def add_public_api(document: dict[str, Any]) -> dict[str, Any]:
    """`document` with the /v1 paths, their schemas, the apiKey scheme and the tags added."""
    document["paths"] = {**document["paths"], **_paths()}
    document["components"]["schemas"] = {**document["components"]["schemas"], **_schemas()}
    document["components"]["securitySchemes"]["apiKey"] = {
        "type": "http",
        "scheme": "bearer",
        "description": "An API key (pt_...) from POST /api-keys; /v1 only.",
    }
    document["tags"] = [*document["tags"], {"name": "v1"}, {"name": "api-keys"}]
    document["info"]["description"] += (
        " The server-to-server API under /v1 is FASHN-compatible and takes API keys (Authorization: Bearer pt_...);"
        " its errors are {error: <name>, message, code, field}."
    )
    return document
