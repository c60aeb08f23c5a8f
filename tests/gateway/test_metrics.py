"""GET /metrics on the gateway: requests by route rule and status, 429s, open sockets; no ids as labels."""

from __future__ import annotations

from prometheus_client import REGISTRY

from tests.gateway.helpers import Person


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_requests_are_counted_by_route_rule_not_path(app, person: Person) -> None:
    tryon = person.create_tryon()
    route = {"route": "/vton/<vton_id>", "method": "PUT", "status": "200"}
    before = sample("proteus_http_requests_total", **route)
    assert person.put(f"/vton/{tryon['id']}", json={"category": "upper"}).status_code == 200
    assert sample("proteus_http_requests_total", **route) == before + 1
    missing = sample("proteus_http_requests_total", route="unmatched", method="GET", status="404")
    person.get("/no/such/path/12345")
    assert sample("proteus_http_requests_total", route="unmatched", method="GET", status="404") == missing + 1

    text = app.test_client().get("/metrics").get_data(as_text=True)
    assert 'proteus_http_requests_total{method="PUT",route="/vton/<vton_id>",status="200"}' in text
    assert "proteus_http_request_duration_seconds_bucket" in text and "proteus_websockets_open" in text
    assert tryon["id"] not in text and person.id not in text and "/no/such/path" not in text


def test_rate_limit_refusals_are_counted(make_app) -> None:
    app = make_app(rate_limit="2 per minute")
    client = app.test_client()
    before = sample("proteus_rate_limit_refusals_total", route="/user/login")
    statuses = [
        client.post("/user/login", json={"email": "x@example.com", "password": "wrong password"}).status_code
        for _ in range(3)
    ]
    assert statuses[-1] == 429
    assert sample("proteus_rate_limit_refusals_total", route="/user/login") == before + 1
