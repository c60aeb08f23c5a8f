"""Security headers, and a Content-Security-Policy that lets the page reach its storage only."""

from __future__ import annotations

import pytest

from gateway.app import create_app
from gateway.security import content_security_policy
from shared.config import Settings


@pytest.fixture(autouse=True)
def _stop_embedded_redis():
    yield
    from shared import redis_client

    redis_client.shutdown_embedded()


def test_the_page_has_a_strict_policy_and_every_answer_the_basic_headers(settings: Settings) -> None:
    client = create_app(settings).test_client()
    page = client.get("/")
    assert page.status_code == 200 and page.mimetype == "text/html"
    policy = page.headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "'unsafe-inline'" not in policy and "frame-ancestors 'none'" in policy
    for response in (page, client.get("/health"), client.get("/no/such/route")):
        assert response.headers["X-Content-Type-Options"] == "nosniff"
        assert response.headers["X-Frame-Options"] == "DENY"
    assert "Content-Security-Policy" not in client.get("/health").headers  # JSON needs none


def test_the_policy_allows_the_s3_origin_browsers_use(settings: Settings) -> None:
    s3 = settings.with_overrides(
        storage_backend="s3",
        s3_endpoint_url="http://minio:9000",
        s3_public_endpoint_url="https://us-east-1.linodeobjects.com",
    )
    policy = content_security_policy(s3)
    assert (
        "connect-src 'self' ws: wss: https://us-east-1.linodeobjects.com https://*.us-east-1.linodeobjects.com"
        in policy
    )
    assert "minio" not in policy
    assert "linodeobjects" not in content_security_policy(settings)  # local storage: the gateway itself
