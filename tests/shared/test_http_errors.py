"""One error mapping: an outage is the same status from a function and from the gateway."""

from __future__ import annotations

import botocore.exceptions
import pytest
import redis
import sqlalchemy.exc
from flask import Flask

from gateway.errors import init_app
from shared.config import Settings
from shared.http_errors import as_proteus_error
from shared.runtime import create_function_app
from tests.shared.test_runtime import BODY, curl_headers

OUTAGES = [
    botocore.exceptions.EndpointConnectionError(endpoint_url="http://s3.invalid"),
    redis.ConnectionError("Connection refused"),
    sqlalchemy.exc.OperationalError("SELECT 1", {}, Exception("server closed the connection")),
]


@pytest.mark.parametrize("outage", OUTAGES, ids=lambda e: type(e).__name__)
def test_an_outage_is_503_everywhere(outage: Exception, settings: Settings) -> None:
    assert as_proteus_error(outage).status == 503

    class Failing:
        def handle(self, event):
            raise outage

    function = create_function_app(Failing(), settings).test_client()
    from_function = function.post("/", headers=curl_headers(), data=BODY)

    gateway = Flask("gateway-test")
    init_app(gateway)

    @gateway.get("/boom")
    def boom() -> str:
        raise outage

    from_gateway = gateway.test_client().get("/boom")
    assert from_function.status_code == from_gateway.status_code == 503
    assert from_function.get_json()["code"] == from_gateway.get_json()["code"] == "dependency_unavailable"


def test_a_bug_is_a_500_that_reveals_nothing() -> None:
    gateway = Flask("gateway-test")
    init_app(gateway)

    @gateway.get("/boom")
    def boom() -> str:
        raise KeyError("secret-detail")

    answer = gateway.test_client().get("/boom")
    assert answer.status_code == 500 and "secret" not in answer.get_data(as_text=True)
