"""The OpenAPI 3.1 document: valid, served, and describing exactly the app's routes."""

from __future__ import annotations

import re

from openapi_spec_validator import validate

from gateway.openapi import document
from tests.gateway.helpers import validate_schema


def test_the_document_is_valid_openapi_3_1() -> None:
    doc = document()
    assert doc["openapi"].startswith("3.1")
    validate(doc)


def test_it_is_served(client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200 and response.get_json() == document()


def _app_routes(app) -> set[tuple[str, str]]:
    routes = set()
    for rule in app.url_map.iter_rules():
        path = re.sub(r"<(?:[^:<>]+:)?([^<>]+)>", r"{\1}", rule.rule)
        for method in rule.methods - {"HEAD", "OPTIONS"}:
            routes.add((path, method.lower()))
    return routes


def test_every_route_is_described_and_nothing_else(app) -> None:
    documented = {(path, method) for path, item in document()["paths"].items() for method in item}
    assert _app_routes(app) == documented


def test_every_operation_has_an_id_and_json_errors() -> None:
    ids = []
    for path, item in document()["paths"].items():
        for method, operation in item.items():
            ids.append(operation["operationId"])
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path != "/readyz":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (path, method, status)
            if operation.get("security") != [] and path not in ("/ws",):
                assert "401" in operation["responses"], (path, method)
    assert len(ids) == len(set(ids))


def test_websocket_messages_are_described() -> None:
    completion = {
        "job_id": "j1",
        "job_type": "try_on",
        "status": "done",
        "user_id": "u1",
        "vton_id": "v1",
        "result_s3_key": "outputs/weaver/u1/j1.png",
        "error": None,
        "finished_at": "2026-01-01T00:00:00Z",
        "event_id": "1-0",
    }
    progress = {"event": "progress", "job_id": "j1", "vton_id": "v1", "user_id": "u1", "step": 3, "steps": 50}
    assert validate_schema({"$ref": "#/components/schemas/CompletionMessage"}, completion) == []
    assert validate_schema({"$ref": "#/components/schemas/ProgressMessage"}, progress) == []
    assert validate_schema({"$ref": "#/components/schemas/CompletionMessage"}, {**completion, "status": "running"})
