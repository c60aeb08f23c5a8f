""".env.example lists every variable Settings.from_env reads, each commented, with the
embedded defaults (loading the file changes nothing) and production examples."""

from __future__ import annotations

import dataclasses

from shared.config import Settings
from tests.knative import support

PAIRS = support.env_example()


def test_every_settings_variable_once() -> None:
    names = [name for name, _ in PAIRS]
    assert len(names) == len(set(names)), "a variable is listed twice"
    assert set(names) == support.settings_variables()


def test_every_variable_is_commented() -> None:
    """Each variable, or the group of variables it is listed with, has a comment above."""
    lines = support.ENV_EXAMPLE.read_text().splitlines()
    for index, line in enumerate(lines):
        if not line or line.startswith("#"):
            continue
        above = index - 1
        while above >= 0 and lines[above] and not lines[above].startswith("#"):
            above -= 1
        assert above >= 0 and lines[above].startswith("#"), f"{line.split('=')[0]} has no comment"


def test_the_values_are_the_embedded_defaults() -> None:
    fixed = {"PROTEUS_ENV": "test", "JWT_SECRET": "x" * 48}  # no generated secret file
    from_file = Settings.from_env({**dict(PAIRS), **fixed})
    from_nothing = Settings.from_env(fixed)
    assert dataclasses.asdict(from_file) == dataclasses.asdict(from_nothing)


def test_production_examples_are_given() -> None:
    text = support.ENV_EXAMPLE.read_text()
    for example in (
        "DATABASE_URL=postgresql+psycopg://",
        "REDIS_URL=redis://:",
        "REDIS_URL=rediss://",
        "S3_ENDPOINT_URL=https://us-east-1.linodeobjects.com",
        "STORAGE_BACKEND=s3",
        "PROTEUS_ENV=production",
    ):
        assert "# Production" in text and example in text, example


def test_a_wrong_default_would_be_noticed() -> None:
    pairs = dict(PAIRS) | {"WEAVE_MAX_BATCH": "16"}
    fixed = {"PROTEUS_ENV": "test", "JWT_SECRET": "x" * 48}
    assert Settings.from_env({**pairs, **fixed}) != Settings.from_env(fixed)
