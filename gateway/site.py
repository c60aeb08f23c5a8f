"""The web page, health and the API description: /, /health, /healthz, /readyz, /openapi.json."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from flask import Blueprint, Response, current_app, jsonify, send_from_directory

from gateway import resources
from shared.observability.metrics import WEBSOCKETS_OPEN, gauge_total

log = logging.getLogger("proteus.gateway")
bp = Blueprint("site", __name__)

MODELS_KEY = "proteus:models"
PLACEHOLDER = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Proteus</title></head>
<body><h1>Proteus</h1><p>The web page is not installed (gateway/static/index.html is missing).
The API is described at <a href="/openapi.json">/openapi.json</a>.</p></body></html>
"""


@bp.get("/")
def index() -> Response:
    static = Path(current_app.static_folder or "")
    if (static / "index.html").is_file():
        response = send_from_directory(static, "index.html")
    else:
        response = Response(PLACEHOLDER, mimetype="text/html")
    response.headers["Cache-Control"] = "no-cache"
    return response


def _check(name: str, probe: Any) -> str:
    try:
        probe()
        return "ok"
    except Exception as exc:  # reported, not raised
        log.warning("health: %s unavailable: %r", name, exc)
        return f"unavailable: {exc.__class__.__name__}"


def _checks() -> dict[str, str]:
    from shared.db.session import ping

    res = resources.current()
    return {
        "database": _check("database", lambda: ping(res.engine)),
        "redis": _check("redis", res.redis.ping),
        "storage": _check("storage", res.storage.ping),
    }


def _models() -> dict[str, Any]:
    """What weave and tailor wrote into `<prefix>proteus:models` (None where nothing yet)."""
    settings = resources.settings()
    try:
        raw = resources.redis().hgetall(f"{settings.redis_key_prefix}{MODELS_KEY}")
    except Exception:  # Redis down: the checks say so
        raw = {}
    models: dict[str, Any] = {"weave": None, "tailor": None}
    for name in models:
        if raw.get(name):
            try:
                models[name] = json.loads(raw[name])
            except ValueError:
                models[name] = {"model": None, "warning": f"unreadable entry {raw[name]!r:.100}"}
    return models


def _is_smoke(model: Any) -> bool:
    return isinstance(model, dict) and (model.get("smoke") is True or model.get("model") == "smoke")


def _websockets_open(hub: Any) -> int:
    """The sockets every worker of this gateway holds (each worker holds its own)."""
    total = gauge_total(WEBSOCKETS_OPEN)
    if total is not None:
        return int(total)
    return hub.socket_count() if hub is not None else 0


@bp.get("/health")
def health() -> Response:
    """Dependencies, the models in use (`smoke: true` when either is a smoke model) and limits."""
    settings = resources.settings()
    checks = _checks()
    models = _models()
    warnings = [m["warning"] for m in models.values() if isinstance(m, dict) and m.get("warning")]
    hub = resources.current().hub
    return jsonify(
        {
            "status": "ok" if all(v == "ok" for v in checks.values()) else "degraded",
            "checks": checks,
            "models": models,
            "smoke": any(_is_smoke(m) for m in models.values()),
            "warnings": warnings,
            "limits": {
                "max_upload_bytes": settings.max_upload_bytes,
                "image_content_types": list(settings.image_content_types),
            },
            "websockets": _websockets_open(hub),
        }
    )


@bp.get("/healthz")
def healthz() -> Response:
    """Liveness: the process answers."""
    return jsonify({"status": "ok"})


@bp.get("/readyz")
def readyz() -> tuple[Response, int]:
    """Readiness: database, Redis and storage answer (503 otherwise)."""
    checks = _checks()
    ready = all(v == "ok" for v in checks.values())
    return jsonify({"ready": ready, "checks": checks}), (200 if ready else 503)


@bp.get("/openapi.json")
def openapi() -> Response:
    from gateway.openapi import document

    return jsonify(document())
