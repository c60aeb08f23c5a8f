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


def _number(value: float) -> str:
    return f"{value:g}"


def test_readme_model_limits_and_presets_match_the_contract() -> None:
    """The README's words about steps, guidance and presets say what shared/contracts defines."""
    from shared.contracts.tryon import FASHN_MODEL, MODELS

    readme = " ".join((ROOT / "README.md").read_text().split())
    fashn = MODELS[FASHN_MODEL]
    low, high = fashn.steps_range
    g_low, g_high = fashn.guidance_range
    assert (
        f"`steps` {low}-{high} (default {fashn.steps}; the `fast` preset runs {fashn.fast_steps}), "
        f"`guidance` {_number(g_low)}-{_number(g_high)} (default {_number(fashn.guidance)};"
    ) in readme
    catvton = MODELS["catvton-maskfree"]
    assert (
        f"`default` is the published setting ({catvton.steps} steps, guidance {_number(catvton.guidance)}); "
        f"`fast` is {catvton.fast_steps} steps, {_number(catvton.steps / catvton.fast_steps)}x less denoising work."
    ) in readme
    assert f"{catvton.steps} DDIM steps" in readme and f"{fashn.steps} Euler steps" in readme
