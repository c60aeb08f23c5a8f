"""The paths of the gateway's OpenAPI document (all but /v1: gateway/openapi_v1.py), built with
gateway/openapi_builders.py; every schema they name is generated from shared/contracts/."""

from __future__ import annotations

from typing import Any

from gateway.openapi_builders import (
    BAD,
    IDEMPOTENCY,
    IDEMPOTENCY_CONFLICT,
    LIMITED,
    NOT_FOUND,
    TOO_LARGE,
    error,
    ok,
    op,
    path_param,
    ref,
)
from shared.contracts.rest import HISTORY_DEFAULT_LIMIT, HISTORY_MAX_LIMIT

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
                    "description": "Page size. Without limit and before: every try-on; before alone: "
                    f"{HISTORY_DEFAULT_LIMIT}.",
                    "schema": {"type": "integer", "minimum": 1, "maximum": HISTORY_MAX_LIMIT},
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
                "409": IDEMPOTENCY_CONFLICT,
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
                "409": IDEMPOTENCY_CONFLICT,
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
