"""The pieces the gateway's OpenAPI paths are built from: schema references, JSON answers and
bodies, the shared error answers, `op` (one operation) and the common parameters."""

from __future__ import annotations

from typing import Any

from shared.contracts.fields import IDEMPOTENCY_KEY_PATTERN


def ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


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
IDEMPOTENCY_CONFLICT = error("The Idempotency-Key was used for a different request.")
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
