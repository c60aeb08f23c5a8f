"""The README tells the truth about configuration: every variable Settings reads is documented."""

from __future__ import annotations

import re
from pathlib import Path

from shared.config import Settings
from tests.knative.support import settings_variables

ROOT = Path(__file__).resolve().parent.parent


def test_every_configuration_variable_is_in_the_readme_and_env_example() -> None:
    readme = (ROOT / "README.md").read_text()
    example = (ROOT / ".env.example").read_text()
    names = settings_variables()
    assert len(names) > 40
    assert not [n for n in sorted(names) if f"`{n}`" not in readme], "undocumented in README.md"
    assert not [n for n in sorted(names) if not re.search(rf"^{n}=", example, re.M)], "missing in .env.example"


def test_readme_defaults_match_settings() -> None:
    readme = (ROOT / "README.md").read_text()
    defaults = Settings()
    for name, field in (
        ("WEAVE_MODEL", "weave_model"),
        ("RUNNER_MAX_ATTEMPTS", "runner_max_attempts"),
        ("MAX_UPLOAD_BYTES", "max_upload_bytes"),
        ("JWT_TTL_S", "jwt_ttl_s"),
    ):
        assert f"| `{name}` | `{getattr(defaults, field)}` |" in readme, name
