"""gateway/json_provider.py: orjson writes the same JSON as Flask's own provider."""

from __future__ import annotations

import dataclasses
import json
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal

import orjson
from flask import Flask, jsonify
from flask.json.provider import DefaultJSONProvider

from gateway.json_provider import OrjsonProvider


@dataclasses.dataclass
class Point:
    x: int
    y: float


VALUES = [
    {"b": 1, "a": [1, 2.5, None, True, "é ✓"], "c": {"z": {}, "y": []}},
    {"when": datetime(2026, 12, 3, 9, 30, tzinfo=UTC), "day": date(2026, 12, 3)},
    {"price": Decimal("12.50"), "id": uuid.UUID("0b5c7a7e-3f7e-4a52-9a8e-2f1d6c9b4e01"), "point": Point(1, 2.5)},
    {2: "int keys", 1: "become strings"},
    [{"seed": 2**63 - 1}, {"huge": 2**70}],
]


def test_the_same_json_as_flask_writes() -> None:
    app = Flask(__name__)
    ours, flask = OrjsonProvider(app), DefaultJSONProvider(app)
    for value in VALUES:
        written = ours.dumps(value)
        assert json.loads(written) == json.loads(flask.dumps(value)), value


def test_keys_sorted_and_compact_as_flask_writes_them() -> None:
    written = OrjsonProvider(Flask(__name__)).dumps({"b": 1, "a": {"d": 2, "c": 3}})
    assert written == '{"a":{"c":3,"d":2},"b":1}'


def test_pretty_printing_falls_back_to_the_standard_library() -> None:
    assert OrjsonProvider(Flask(__name__)).dumps({"a": 1}, indent=2) == '{\n  "a": 1\n}'


def test_jsonify_answers_are_written_by_orjson(monkeypatch) -> None:
    app = Flask(__name__)
    app.json = OrjsonProvider(app)
    calls = []
    real = orjson.dumps
    monkeypatch.setattr(orjson, "dumps", lambda *a, **k: calls.append(a) or real(*a, **k))
    with app.app_context():
        response = jsonify({"b": [1, 2], "a": "é"})
    assert calls, "jsonify went through the standard library"
    assert response.get_data(as_text=True) == '{"a":"é","b":[1,2]}\n'
    with app.app_context():
        flask_answer = DefaultJSONProvider(app).response({"b": [1, 2], "a": "é"})
    assert json.loads(response.get_data()) == json.loads(flask_answer.get_data())


def test_the_gateway_answers_with_it(app) -> None:
    assert isinstance(app.json, OrjsonProvider)
    response = app.test_client().get("/healthz")
    assert response.status_code == 200 and response.is_json
