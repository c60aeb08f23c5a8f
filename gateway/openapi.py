"""The gateway's OpenAPI 3.1 document (served at /openapi.json, written to docs/openapi.json).

    python -m gateway.openapi [--check]   # write docs/openapi.json (`make schemas`)

The request bodies' schemas are generated from shared/contracts/rest.py; the paths and the
response shapes are written here. Tests validate the document with openapi-spec-validator, check that every Flask route is
described here, and validate real response bodies against the operation's schema.
"""

from __future__ import annotations

import copy
import sys
from functools import cache
from pathlib import Path
from typing import Any, Final

from shared.contracts.fields import IDEMPOTENCY_KEY_PATTERN
from shared.contracts.generate import ROOT, dump, main, openapi_components
from shared.contracts.rest import REQUEST_MODELS

KEY = {"type": "string", "minLength": 1, "maxLength": 1024, "description": "A storage key."}
NULLABLE_KEY = {"type": ["string", "null"], "maxLength": 1024}
TIME = {"type": "string", "format": "date-time"}
NULLABLE_TIME = {"type": ["string", "null"], "format": "date-time"}
ID = {"type": "string", "minLength": 1, "maxLength": 64}


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def obj(
    properties: dict[str, Any], required: tuple[str, ...] = (), *, closed: bool = True, **extra: Any
) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, "required": list(required)}
    if closed:
        schema["additionalProperties"] = False
    schema.update(extra)
    return schema


SCHEMAS: dict[str, Any] = {
    "Error": obj(
        {
            "error": {"type": "string", "description": "The message (the original clients read `error`)."},
            "message": {"type": "string"},
            "code": {"type": "string", "description": "Machine-readable, e.g. bad_request, unauthorized."},
            "field": {"type": ["string", "null"], "description": "The offending field, where there is one."},
            "details": {"type": "object"},
        },
        ("error", "message", "code", "field"),
    ),
    "Message": obj({"message": {"type": "string"}}, ("message",)),
    "User": obj(
        {
            "id": ID,
            "user_name": {"type": "string"},
            "email": {"type": "string"},
            "createdAt": TIME,
            "updatedAt": TIME,
        },
        ("id", "user_name", "email", "createdAt", "updatedAt"),
    ),
    "UpdatedUser": obj(
        {
            "id": ID,
            "user_name": {"type": "string"},
            "email": {"type": "string"},
            "createdAt": TIME,
            "updatedAt": TIME,
            "token": {"type": "string", "description": "A new login token, when the password changed."},
        },
        ("id", "user_name", "email", "createdAt", "updatedAt"),
    ),
    "LoginResponse": obj(
        {
            "message": {"type": "string"},
            "token": {"type": "string", "description": "JWT (HS256)."},
            "user": ref("User"),
        },
        ("message", "token", "user"),
    ),
    "WsToken": obj(
        {"token": {"type": "string", "description": "JWT with purpose 'ws'."}, "expiresIn": {"type": "integer"}},
        ("token",),
    ),
    "PresignedUpload": obj(
        {
            "key": KEY,
            "url": {"type": "string"},
            "uploadUrl": {"type": "string", "description": "Same as url."},
            "method": {"type": "string", "enum": ["PUT", "POST"]},
            "headers": {"type": "object", "additionalProperties": {"type": "string"}},
            "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            "expiresAt": TIME,
            "maxBytes": {"type": "integer"},
        },
        ("key", "url", "method", "headers", "fields"),
    ),
    "PresignedDownload": obj({"key": KEY, "url": {"type": "string"}, "expiresAt": TIME}, ("url",)),
    "TryOn": obj(
        {
            "id": ID,
            "user_id": ID,
            "user_snap": KEY,
            "uncleaned_outfit": KEY,
            "cleaned_outfit": NULLABLE_KEY,
            "outfit_try_on": NULLABLE_KEY,
            "person_mask": NULLABLE_KEY,
            "category": {"type": ["string", "null"], "description": "The category used (tailor's answer for auto)."},
            "category_requested": {"type": ["string", "null"], "description": "What was asked for, auto included."},
            "status": {"type": "string", "enum": ["queued", "processing", "done", "failed"]},
            "error": {"type": ["string", "null"]},
            "progress": {"type": ["number", "null"], "minimum": 0, "maximum": 1},
            "progress_step": {"type": ["integer", "null"]},
            "progress_steps": {"type": ["integer", "null"]},
            "model": {
                "type": ["string", "null"],
                "description": "The model of its newest try-on job (e.g. fashn-vton-1.5); null before any.",
            },
            "seed": {"type": ["integer", "null"], "description": "The seed of its newest try-on job."},
            "result_expired_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the retention sweep deleted the result (RETENTION_RESULTS_DAYS); "
                "outfit_try_on is null from then on.",
            },
            "inputs_expired_at": {
                "type": ["string", "null"],
                "format": "date-time",
                "description": "When the retention sweep deleted the uploaded photos (RETENTION_UPLOADS_DAYS).",
            },
            "createdAt": TIME,
            "updatedAt": TIME,
        },
        (
            "id",
            "user_id",
            "user_snap",
            "uncleaned_outfit",
            "cleaned_outfit",
            "outfit_try_on",
            "person_mask",
            "category",
            "category_requested",
            "status",
            "error",
            "progress",
            "progress_step",
            "progress_steps",
            "result_expired_at",
            "inputs_expired_at",
            "createdAt",
            "updatedAt",
        ),
    ),
    "TryOnList": {"type": "array", "items": ref("TryOn")},
    "JobAccepted": obj(
        {
            "jobId": ID,
            "job_id": ID,
            "vton_id": ID,
            "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed"]},
        },
        ("jobId", "job_id", "vton_id", "status"),
    ),
    "Job": obj(
        {
            "id": ID,
            "jobId": ID,
            "job_id": ID,
            "vton_id": ID,
            "job_type": {"type": "string", "enum": ["try_on", "tailor"]},
            "status": {"type": "string", "enum": ["queued", "running", "succeeded", "failed", "canceled"]},
            "step": {"type": "integer", "minimum": 0},
            "steps": {"type": ["integer", "null"]},
            "error": {"type": ["string", "null"]},
            "result_key": NULLABLE_KEY,
            "result_keys": {"type": "array", "items": KEY, "description": "Every sample's result (result_key first)."},
            "seed": {"type": ["integer", "null"]},
            "model": {"type": ["string", "null"]},
            "createdAt": TIME,
            "updatedAt": TIME,
            "finished_at": NULLABLE_TIME,
        },
        ("id", "job_id", "vton_id", "job_type", "status", "step", "steps", "error", "result_key"),
    ),
    "Health": obj(
        {
            "status": {"type": "string", "enum": ["ok", "degraded"]},
            "checks": {"type": "object", "additionalProperties": {"type": "string"}},
            "models": obj(
                {
                    "weave": {"type": ["object", "null"]},
                    "tailor": {"type": ["object", "null"]},
                },
                ("weave", "tailor"),
                description="What each model function reported in Redis (model, variant, device, dtype, smoke, warning).",
            ),
            "smoke": {"type": "boolean", "description": "True when weave or tailor runs a smoke model."},
            "warnings": {"type": "array", "items": {"type": "string"}},
            "limits": obj(
                {
                    "max_upload_bytes": {"type": "integer"},
                    "image_content_types": {"type": "array", "items": {"type": "string"}},
                },
                ("max_upload_bytes", "image_content_types"),
            ),
            "websockets": {"type": "integer", "minimum": 0, "description": "Sockets held by this process."},
        },
        ("status", "checks", "models", "smoke", "warnings", "limits", "websockets"),
    ),
    "Live": obj({"status": {"const": "ok"}}, ("status",)),
    "Ready": obj(
        {"ready": {"type": "boolean"}, "checks": {"type": "object", "additionalProperties": {"type": "string"}}},
        ("ready", "checks"),
    ),
    # -- WebSocket messages (server to client) --
    "CompletionMessage": obj(
        {
            "job_id": ID,
            "job_type": {"type": "string", "enum": ["try_on", "tailor"]},
            "status": {"type": "string", "enum": ["done", "failed"]},
            "user_id": ID,
            "vton_id": {"type": ["string", "null"]},
            "result_s3_key": NULLABLE_KEY,
            "result_keys": {"type": "array", "items": KEY, "description": "Every sample (result_s3_key is the first)."},
            "error": {"type": ["string", "null"]},
            "finished_at": TIME,
            "event_id": {"type": "string", "description": "The notification stream id; pass as last_event_id."},
        },
        ("job_id", "job_type", "status", "user_id", "vton_id", "result_s3_key", "error", "finished_at", "event_id"),
    ),
    "ProgressMessage": obj(
        {
            "event": {"const": "progress"},
            "job_id": ID,
            "vton_id": {"type": ["string", "null"]},
            "user_id": ID,
            "step": {"type": "integer", "minimum": 0},
            "steps": {"type": "integer", "minimum": 1},
        },
        ("event", "job_id", "vton_id", "user_id", "step", "steps"),
    ),
    "ReadyMessage": obj(
        {
            "event": {"const": "ready"},
            "user_id": ID,
            "replayed": {"type": "integer", "minimum": 0},
            "truncated": {"type": "boolean"},
        },
        ("event", "user_id", "replayed", "truncated"),
    ),
}


def error(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": ref("Error")}}}


def ok(description: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def body(schema_name: str) -> dict[str, Any]:
    return {"required": True, "content": {"application/json": {"schema": ref(schema_name)}}}


BAD = error("Invalid body or parameter (names the field and value).")
UNAUTHORIZED = error('No, bad, expired or revoked token: {"message": "Unauthorized"}.')
NOT_FOUND = error("No such thing, or someone else's (never revealed which).")
LIMITED = error("Rate limit exceeded (Retry-After says when to try again).")
UNAVAILABLE = error("The database, Redis or storage is unavailable; retry.")
TOO_LARGE = error("The body (or the declared file) is too large.")
PUBLIC: list[dict[str, list[str]]] = []


def op(
    op_id: str,
    summary: str,
    responses: dict[str, Any],
    *,
    tag: str,
    request: str | None = None,
    params: list[dict[str, Any]] | None = None,
    public: bool = False,
    description: str | None = None,
) -> dict[str, Any]:
    operation: dict[str, Any] = {"operationId": op_id, "summary": summary, "tags": [tag], "responses": responses}
    if description:
        operation["description"] = description
    if request:
        operation["requestBody"] = body(request)
    if params:
        operation["parameters"] = params
    if public:
        operation["security"] = PUBLIC
    if not public:
        responses.setdefault("401", UNAUTHORIZED)
    responses.setdefault("503", UNAVAILABLE)
    return operation


def path_param(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": {"type": "string"}}


IDEMPOTENCY = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": "The same key gives the same job and publishes nothing new (1-200 printable ASCII).",
    "schema": {"type": "string", "pattern": IDEMPOTENCY_KEY_PATTERN},
}

PATHS: dict[str, Any] = {
    "/": {
        "get": op(
            "webPage",
            "The web page (gateway/static/index.html)",
            {"200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}},
            tag="site",
            public=True,
        )
    },
    "/static/{filename}": {
        "get": op(
            "staticFile",
            "Files of the web page",
            {"200": {"description": "The file", "content": {"*/*": {"schema": {}}}}, "404": NOT_FOUND},
            tag="site",
            public=True,
            params=[path_param("filename", "Path under gateway/static/")],
        )
    },
    "/health": {
        "get": op(
            "health",
            "Dependencies, models in use (smoke flag) and limits",
            {"200": ok("Health", ref("Health"))},
            tag="site",
            public=True,
        )
    },
    "/healthz": {"get": op("live", "Liveness", {"200": ok("Alive", ref("Live"))}, tag="site", public=True)},
    "/readyz": {
        "get": op(
            "ready",
            "Readiness: database, Redis and storage answer",
            {"200": ok("Ready", ref("Ready")), "503": ok("Not ready", ref("Ready"))},
            tag="site",
            public=True,
        )
    },
    "/metrics": {
        "get": op(
            "metrics",
            "Prometheus metrics of this gateway (every worker): requests, sockets, push latency",
            {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
            tag="site",
            public=True,
        )
    },
    "/openapi.json": {
        "get": op("openapi", "This document", {"200": ok("OpenAPI 3.1", {"type": "object"})}, tag="site", public=True)
    },
    "/user/signup": {
        "post": op(
            "signup",
            "Create an account",
            {
                "201": ok("The new user (never the password hash)", ref("User")),
                "400": BAD,
                "413": TOO_LARGE,
                "429": LIMITED,
            },
            tag="user",
            request="SignupRequest",
            public=True,
            description="A taken email (compared case-insensitively) is a 400 naming `email`.",
        )
    },
    "/user/login": {
        "post": op(
            "login",
            "Log in: the token in the body and as the HttpOnly cookie `token`",
            {
                "200": ok("Logged in", ref("LoginResponse")),
                "400": BAD,
                "401": error("Wrong email or password (the same message for both)."),
                "413": TOO_LARGE,
                "429": LIMITED,
            },
            tag="user",
            request="LoginRequest",
            public=True,
        )
    },
    "/user/logout": {
        "post": op(
            "logout",
            "Revoke every token of the user (if the request has a valid one) and clear the cookie",
            {"200": ok("Logged out", ref("Message"))},
            tag="user",
        )
    },
    "/user": {
        "get": op("getUser", "The current user", {"200": ok("The user", ref("User"))}, tag="user"),
        "put": op(
            "updateUser",
            "Change user_name, email and/or password (a new password revokes earlier tokens)",
            {
                "200": ok("The user (and a new token after a password change)", ref("UpdatedUser")),
                "400": BAD,
                "413": TOO_LARGE,
            },
            tag="user",
            request="UserUpdate",
        ),
        "delete": op(
            "deleteUser",
            "Delete the account, all its rows, all its stored objects and its kept notifications",
            {"204": {"description": "Deleted"}},
            tag="user",
        ),
    },
    "/user/export": {
        "get": op(
            "exportUser",
            "Everything held about the caller as one zip archive",
            {
                "200": {
                    "description": "A zip: README.txt, account.json, tryons.json, jobs.json, garment_assets.json, "
                    "notifications.json and objects/<key> for every stored image",
                    "content": {"application/zip": {"schema": {"type": "string", "format": "binary"}}},
                }
            },
            tag="user",
        )
    },
    "/user/ws-token": {
        "get": op("wsToken", "A short-lived token for WS /ws", {"200": ok("Token", ref("WsToken"))}, tag="user")
    },
    "/images/presignedUploadUrl": {
        "post": op(
            "presignUpload",
            "Presign an upload under uploads/<userId>/",
            {
                "200": ok(
                    "How to upload: PUT with headers, or POST a form with fields then `file`", ref("PresignedUpload")
                ),
                "400": BAD,
                "413": error("fileSize is over the upload limit."),
                "415": error("fileType is not an accepted image type."),
                "429": LIMITED,
            },
            tag="images",
            request="PresignUploadRequest",
        )
    },
    "/images/presignedDownloadUrl": {
        "post": op(
            "presignDownload",
            "Presign a download of one of the caller's objects",
            {"200": ok("A GET URL", ref("PresignedDownload")), "400": BAD, "404": NOT_FOUND, "413": TOO_LARGE},
            tag="images",
            request="PresignDownloadRequest",
        )
    },
    "/vton": {
        "get": op(
            "listTryOns",
            "The caller's try-ons, newest first (a bare array)",
            {"200": ok("Try-ons", ref("TryOnList")), "400": BAD},
            tag="vton",
            params=[
                {
                    "name": "limit",
                    "in": "query",
                    "description": "Page size. Without limit and before: every try-on; before alone: 50.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": 100},
                },
                {
                    "name": "before",
                    "in": "query",
                    "description": "An ISO 8601 time or a try-on id: older ones only.",
                    "schema": {"type": "string"},
                },
                {
                    "name": "user_id",
                    "in": "query",
                    "description": "Accepted for the original frontend; any id but the caller's gives [].",
                    "schema": {"type": "string"},
                },
            ],
        ),
        "post": op(
            "createTryOn",
            "Record a try-on from two uploaded images",
            {"201": ok("The try-on", ref("TryOn")), "400": BAD, "413": TOO_LARGE},
            tag="vton",
            request="TryOnCreate",
        ),
    },
    "/vton/{vton_id}": {
        "put": op(
            "updateTryOn",
            "Change keys or category of one of the caller's try-ons",
            {"200": ok("The try-on", ref("TryOn")), "400": BAD, "404": NOT_FOUND, "413": TOO_LARGE},
            tag="vton",
            request="TryOnUpdate",
            params=[path_param("vton_id", "The try-on id")],
        ),
        "delete": op(
            "deleteTryOn",
            "Delete a try-on, its jobs, its results and inputs no other try-on uses",
            {"204": {"description": "Deleted"}, "404": NOT_FOUND},
            tag="vton",
            params=[path_param("vton_id", "The try-on id")],
        ),
    },
    "/jobs/weaver": {
        "post": op(
            "startWeave",
            "Queue a try-on job (publishes dev.proteus.tryon.requested)",
            {
                "202": ok("Queued (or the job of this Idempotency-Key)", ref("JobAccepted")),
                "400": BAD,
                "403": error(
                    "COMMERCIAL deployments: the request needs a non-commercial component (code "
                    "licence_restricted; the message says which and what to send instead)."
                ),
                "404": NOT_FOUND,
                "409": error("The Idempotency-Key was used for a different request."),
                "413": TOO_LARGE,
                "429": LIMITED,
            },
            tag="jobs",
            request="WeaveJobRequest",
            params=[IDEMPOTENCY],
        )
    },
    "/jobs/tailor": {
        "post": op(
            "startTailor",
            "Queue a garment cut-out job (publishes dev.proteus.tailor.requested)",
            {
                "202": ok("Queued", ref("JobAccepted")),
                "400": BAD,
                "404": NOT_FOUND,
                "409": error("The Idempotency-Key was used for a different request."),
                "413": TOO_LARGE,
                "429": LIMITED,
            },
            tag="jobs",
            request="TailorJobRequest",
            params=[IDEMPOTENCY],
        )
    },
    "/jobs/{job_id}": {
        "get": op(
            "getJob",
            "One of the caller's jobs: status, step k of N, error",
            {"200": ok("The job", ref("Job")), "404": NOT_FOUND},
            tag="jobs",
            params=[path_param("job_id", "The job id")],
        )
    },
    "/ws": {
        "get": op(
            "websocket",
            "WebSocket: job notifications for the caller",
            {
                "101": {"description": "Switching protocols; then messages as in x-websocket."},
                "400": error("Not a WebSocket handshake."),
            },
            tag="ws",
            public=True,
            params=[
                {
                    "name": "token",
                    "in": "query",
                    "description": "A ws-token or login token (or Bearer header, or cookie).",
                    "schema": {"type": "string"},
                },
                {
                    "name": "last_event_id",
                    "in": "query",
                    "description": "Replay the caller's completions after this notification stream id first.",
                    "schema": {"type": "string", "pattern": "^\\d+(-\\d+)?$"},
                },
            ],
            description=(
                "A bad token closes the socket with code 4401 (4403: cookie from a foreign Origin). "
                "The server pings every WS_HEARTBEAT_S seconds. Messages: see x-websocket."
            ),
        )
    },
    "/files/{key}": {
        "put": op(
            "localPut",
            "Local storage backend only: the presigned PUT upload",
            {
                "200": {"description": "Stored"},
                "400": BAD,
                "403": error("Bad or expired signature, wrong Content-Type."),
                "413": TOO_LARGE,
            },
            tag="files",
            public=True,
            params=[path_param("key", "The storage key")],
        ),
        "get": op(
            "localGet",
            "Local storage backend only: the presigned download",
            {
                "200": {"description": "The object", "content": {"*/*": {"schema": {}}}},
                "400": BAD,
                "403": error("Bad or expired signature."),
                "404": NOT_FOUND,
            },
            tag="files",
            public=True,
            params=[path_param("key", "The storage key")],
        ),
    },
    "/files": {
        "post": op(
            "localPost",
            "Local storage backend only: the presigned POST form upload",
            {"204": {"description": "Stored"}, "400": BAD, "403": error("Bad policy or signature."), "413": TOO_LARGE},
            tag="files",
            public=True,
        )
    },
}

WEBSOCKET = {
    "path": "/ws",
    "closeCodes": {
        "4401": "Missing, bad, expired or revoked token.",
        "4403": "Cookie authentication from an Origin that is not allowed.",
        "1008": "The client was too slow to read its messages; reconnect with last_event_id.",
        "1011": "Notifications are unavailable (Redis); reconnect later.",
    },
    "serverMessages": [ref("ReadyMessage"), ref("CompletionMessage"), ref("ProgressMessage")],
    "clientMessages": "Ignored.",
}


def build_document() -> dict[str, Any]:
    """The whole document, built from the paths here and the contract models (the public API's
    /v1 part from gateway/openapi_v1.py)."""
    from gateway.openapi_v1 import add_public_api

    return add_public_api(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "Proteus gateway",
                "version": "1.0.0",
                "description": (
                    "Virtual try-on REST API. Authenticate with `Authorization: Bearer <token>` or the `token` cookie "
                    "from POST /user/login. Errors are JSON {error, message, code, field}."
                ),
            },
            "servers": [{"url": "/"}],
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "tags": [{"name": n} for n in ("site", "user", "images", "vton", "jobs", "ws", "files")],
            "paths": PATHS,
            "components": {
                "schemas": {**SCHEMAS, **openapi_components(REQUEST_MODELS)},
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "token"},
                },
            },
            "x-websocket": WEBSOCKET,
        }
    )


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_document())


@cache
def _document() -> dict[str, Any]:
    return build_document()


OPENAPI_FILE: Final = ROOT / "docs" / "openapi.json"


def expected_files() -> dict[Path, str]:
    """docs/openapi.json and the text it must have."""
    return {OPENAPI_FILE: dump(build_document())}


if __name__ == "__main__":
    sys.exit(main(files=expected_files))
