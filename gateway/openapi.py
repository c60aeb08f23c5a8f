"""The gateway's OpenAPI 3.1 document (served at /openapi.json, written to docs/openapi.json).

    python -m gateway.openapi [--check]   # write docs/openapi.json (`make schemas`)

Every schema is generated from the contract models: the request bodies from
shared/contracts/rest.py, the answers and WebSocket messages from shared/contracts/responses.py,
/v1 from its own models (gateway/openapi_v1.py); the paths are in gateway/openapi_paths.py,
built with gateway/openapi_builders.py.
Tests validate the document with openapi-spec-validator, check that every Flask route is
described, and validate every response the gateway tests get against its operation's schema.
"""

from __future__ import annotations

import copy
import sys
from functools import cache
from pathlib import Path
from typing import Any, Final

from gateway.openapi_builders import ref
from gateway.openapi_paths import PATHS
from shared.contracts.generate import ROOT, dump, main, openapi_components
from shared.contracts.responses import RESPONSE_MODELS
from shared.contracts.rest import REQUEST_MODELS
from shared.contracts.tryon import CATVTON_VARIANT_MODELS, MODELS, PRESETS, preset_for

WEBSOCKET = {
    "path": "/ws",
    "closeCodes": {
        "4401": "Missing, bad, expired or revoked token.",
        "4403": "Cookie authentication from an Origin that is not allowed.",
        "1008": "The client was too slow to read its messages; reconnect with last_event_id.",
        "1011": "Notifications are unavailable (Redis); reconnect later.",
    },
    "serverMessages": [ref("ReadyMessage"), ref("CompletionMessage"), ref("ProgressMessage")],
    "clientMessages": "Ignored.",
}


def models_extension() -> dict[str, Any]:
    """What each model a try-on may name runs by default (its presets' steps, guidance, ranges,
    licence) and which model each CatVTON variant means: the web page words its choices from it."""
    return {
        "models": {
            name: {
                "family": spec.family,
                "licence": spec.licence,
                "commercial": spec.commercial,
                "presets": {preset: preset_for(name, preset)["steps"] for preset in PRESETS},
                "guidance": spec.guidance,
                "steps_range": list(spec.steps_range),
                "guidance_range": list(spec.guidance_range),
            }
            for name, spec in MODELS.items()
        },
        "variants": dict(CATVTON_VARIANT_MODELS),
    }


def build_document() -> dict[str, Any]:
    """The whole document: the paths, and the components generated from the contract models
    (the public API's /v1 part from gateway/openapi_v1.py)."""
    from gateway.openapi_v1 import add_public_api

    return add_public_api(
        {
            "openapi": "3.1.0",
            "info": {
                "title": "Proteus gateway",
                "version": "1.0.0",
                "description": (
                    "Virtual try-on REST API. Authenticate with `Authorization: Bearer <token>` or the `token` cookie "
                    "from POST /user/login. Errors are JSON {error, message, code, field}."
                ),
            },
            "servers": [{"url": "/"}],
            "security": [{"bearerAuth": []}, {"cookieAuth": []}],
            "tags": [{"name": n} for n in ("site", "user", "images", "vton", "jobs", "ws", "files")],
            "paths": PATHS,
            "components": {
                "schemas": openapi_components((*REQUEST_MODELS, *RESPONSE_MODELS)),
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                    "cookieAuth": {"type": "apiKey", "in": "cookie", "name": "token"},
                },
            },
            "x-websocket": WEBSOCKET,
            "x-models": models_extension(),
        }
    )


def document() -> dict[str, Any]:
    """The OpenAPI document (a fresh copy: callers may change it)."""
    return copy.deepcopy(_document())


@cache
def _document() -> dict[str, Any]:
    return build_document()


OPENAPI_FILE: Final = ROOT / "docs" / "openapi.json"


def expected_files() -> dict[Path, str]:
    """docs/openapi.json and the text it must have."""
    return {OPENAPI_FILE: dump(build_document())}


if __name__ == "__main__":
    sys.exit(main(files=expected_files))
