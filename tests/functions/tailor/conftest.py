"""Fixtures of the tailor handler tests: the app on the smoke parsing model (per module)
and the outcome each photo must have."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from functions.tailor.main import create_app
from shared.config import Settings
from tests.functions.conftest import dispose_function
from tests.functions.tailor.support import PHOTOS, Expected, expected_for


@pytest.fixture(scope="module")
def app(module_settings: Settings, tailor_smoke_models: Path) -> Iterator[Flask]:
    app = create_app(module_settings.with_overrides(models_dir=str(tailor_smoke_models)))
    yield app
    dispose_function(app)


@pytest.fixture(scope="module")
def expected(app: Flask) -> dict[str, Expected]:
    return {name: expected_for(app, photo) for name, photo in PHOTOS.items()}
