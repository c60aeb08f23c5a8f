"""The web page, health, JSON errors for unknown routes, CORS."""

from __future__ import annotations

import json

import pytest
from flask import Flask

from tests.gateway.helpers import CheckedClient, redis_of, settings_of


def test_index_serves_the_web_page(app, client) -> None:
    response = client.get("/")
    assert response.status_code == 200 and response.mimetype == "text/html"
    with open(f"{app.static_folder}/index.html", "rb") as handle:
        assert response.data == handle.read()


def test_index_placeholder_when_the_page_is_missing(app, tmp_path) -> None:
    app.static_folder = str(tmp_path)
    response = app.test_client().get("/")
    assert response.status_code == 200 and b"/openapi.json" in response.data


def test_static_files(app, client, tmp_path) -> None:
    app.static_folder = str(tmp_path)
    (tmp_path / "x.js").write_text("export const x = 1;")
    assert client.get("/static/x.js").data == b"export const x = 1;"
    missing = client.get("/static/nope.js")
    assert missing.status_code == 404 and missing.get_json()["code"] == "not_found"


def test_health_reports_dependencies_limits_and_models(app, client) -> None:
    body = client.get("/health").get_json()
    assert body["status"] == "ok" and body["checks"] == {"database": "ok", "redis": "ok", "storage": "ok"}
    assert body["models"] == {"weave": None, "tailor": None} and body["smoke"] is False
    assert body["limits"]["max_upload_bytes"] == settings_of(app).max_upload_bytes


@pytest.mark.parametrize(
    ("weave", "tailor", "smoke"),
    [
        (
            {
                "model": "catvton",
                "variant": "maskfree",
                "device": "cuda",
                "dtype": "bfloat16",
                "smoke": False,
                "warning": None,
            },
            {"model": "segformer", "smoke": False, "warning": None},
            False,
        ),
        (
            {
                "model": "smoke",
                "variant": "maskfree",
                "device": "cpu",
                "dtype": "float32",
                "smoke": True,
                "warning": "no weights: smoke model",
            },
            {"model": "segformer", "smoke": False, "warning": None},
            True,
        ),
        (
            {"model": "catvton", "smoke": False, "warning": None},
            {"model": "smoke", "smoke": True, "warning": None},
            True,
        ),
    ],
)
def test_health_says_smoke_when_either_model_is(app, client, weave, tailor, smoke) -> None:
    key = f"{settings_of(app).redis_key_prefix}proteus:models"
    redis_of(app).hset(key, mapping={"weave": json.dumps(weave), "tailor": json.dumps(tailor)})
    body = client.get("/health").get_json()
    assert body["smoke"] is smoke
    assert body["models"] == {"weave": weave, "tailor": tailor}
    if weave.get("warning"):
        assert body["warnings"] == [weave["warning"]]


def test_liveness_and_readiness(client) -> None:
    assert client.get("/healthz").get_json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.get_json()["ready"] is True


def test_not_ready_without_redis(make_app) -> None:
    app = make_app(redis_url="redis://127.0.0.1:1/0")
    client = app.test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.get_json()["checks"]["redis"].startswith("unavailable")
    health = client.get("/health").get_json()
    assert health["status"] == "degraded" and health["checks"]["database"] == "ok"


def test_unknown_routes_and_methods_answer_json(client) -> None:
    missing = client.get("/no/such/route")
    assert missing.status_code == 404
    assert missing.get_json()["code"] == "not_found" and "/no/such/route" in missing.get_json()["message"]
    wrong = client.patch("/vton")
    assert wrong.status_code == 405 and wrong.get_json()["code"] == "method_not_allowed"
    assert "GET" in wrong.headers["Allow"]


def test_a_plain_get_on_the_websocket_route_is_400(client) -> None:
    response = client.get("/ws")
    assert response.status_code == 400 and response.is_json


def test_an_unexpected_error_is_a_500_that_reveals_nothing(gw_settings) -> None:
    from gateway.app import create_app
    from tests.gateway.helpers import close_app, migrate

    migrate(gw_settings.database_url)
    app: Flask = create_app(gw_settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret detail")

    try:
        response = app.test_client().get("/boom")
        assert response.status_code == 500
        assert response.get_json()["code"] == "internal_error" and "secret" not in response.get_data(as_text=True)
    finally:
        close_app(app)


def test_no_cors_headers_without_configured_origins(client) -> None:
    response = client.get("/health", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in response.headers


def test_cors_allows_configured_origins_with_credentials_never_star(make_app) -> None:
    app = make_app(frontend_origins=("https://app.example.com",))
    client = app.test_client()
    preflight = client.options(
        "/vton",
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    assert preflight.headers["Access-Control-Allow-Credentials"] == "true"
    allowed = {h.strip().lower() for h in preflight.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    simple = client.get("/health", headers={"Origin": "https://app.example.com"})
    assert simple.headers["Access-Control-Allow-Origin"] == "https://app.example.com"
    foreign = client.get("/health", headers={"Origin": "https://evil.example"})
    assert foreign.headers.get("Access-Control-Allow-Origin") in (None, "")
    for response in (preflight, simple, foreign):
        assert response.headers.get("Access-Control-Allow-Origin") != "*"


def test_the_checked_client_catches_undocumented_answers(app) -> None:
    """The OpenAPI check in every test is real: an undocumented status fails it."""
    from gateway import openapi as module
    from gateway.openapi_paths import PATHS
    from tests import openapi_check

    original = PATHS["/healthz"]["get"]["responses"].pop("200")
    try:
        module._document.cache_clear()
        openapi_check.document.cache_clear()
        with pytest.raises(AssertionError, match="does not list"):
            CheckedClient(app).get("/healthz")
    finally:
        PATHS["/healthz"]["get"]["responses"]["200"] = original
        module._document.cache_clear()
        openapi_check.document.cache_clear()


def test_answers_over_http_are_checked_too(live_server) -> None:
    """A gateway the tests reach over HTTP (`watch`) gets the same check as the test client."""
    import requests

    from gateway import openapi as module
    from gateway.openapi_paths import PATHS
    from tests import openapi_check

    base = f"http://127.0.0.1:{live_server.port}"
    openapi_check.watch(base)
    assert requests.get(f"{base}/healthz", timeout=10).json() == {"status": "ok"}
    original = PATHS["/healthz"]["get"]["responses"].pop("200")
    try:
        module._document.cache_clear()
        openapi_check.document.cache_clear()
        with pytest.raises(AssertionError, match="does not list"):
            requests.get(f"{base}/healthz", timeout=10)
    finally:
        PATHS["/healthz"]["get"]["responses"]["200"] = original
        module._document.cache_clear()
        openapi_check.document.cache_clear()
        openapi_check.unwatch(base)
