"""The gateway fuzzed from its own OpenAPI document (schemathesis): every operation, once
with a valid login token and once without one. No answer may be a 5xx, and every answer
must conform to the document (a documented status, a body matching its schema, the
documented content type). Seeded and bounded, so the suite stays quick and repeatable."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.conftest import settings_in
from tests.gateway.helpers import Person, build_app, close_app, make_settings

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]
EXAMPLES = int(os.environ.get("PROTEUS_FUZZ_EXAMPLES", "12"))  # more: PROTEUS_FUZZ_EXAMPLES=200


@pytest.fixture(scope="module")
def fuzzed_app(tmp_path_factory: pytest.TempPathFactory, redis_server_url: str) -> Iterator[Flask]:
    import uuid

    base = settings_in(tmp_path_factory.mktemp("fuzz"))
    app = build_app(
        make_settings(
            base, base.database_url, redis_server_url, f"fuzz-{uuid.uuid4().hex[:8]}:", rate_limit="100000 per minute"
        )
    )
    yield app
    close_app(app)


@pytest.fixture(scope="module")
def token(fuzzed_app: Flask) -> str:
    person = Person(fuzzed_app, "fuzzer")
    person.create_tryon()  # something for the list and the jobs to find
    return person.token


def _operations() -> list[Any]:
    from gateway.openapi import document

    loaded = schemathesis.openapi.from_dict(document())
    return [result.ok() for result in loaded.get_all_operations()]


OPERATIONS = _operations()


def _fuzz(operation: Any, app: Flask, headers: dict[str, str]) -> None:
    @given(case=operation.as_strategy())
    @settings(
        max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck)
    )
    def run(case: Any) -> None:
        if case.headers:
            case.headers.pop("Authorization", None)
        case.call_and_validate(app=app, headers=headers or None, checks=CHECKS)

    run()


@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"{op.method.upper()} {op.path}" for op in OPERATIONS])
def test_every_route_with_a_login_token(operation: Any, fuzzed_app: Flask, token: str) -> None:
    if operation.method.upper() == "DELETE" and operation.path == "/user":
        pytest.skip("would delete the fuzzer's own account; DELETE /user is fuzzed without auth")
    _fuzz(operation, fuzzed_app, {"Authorization": f"Bearer {token}"})


@pytest.mark.parametrize("operation", OPERATIONS, ids=[f"{op.method.upper()} {op.path}" for op in OPERATIONS])
def test_every_route_without_auth(operation: Any, fuzzed_app: Flask) -> None:
    _fuzz(operation, fuzzed_app, {})
