"""Weave fixtures: the smoke model written once per session, its two pipelines, UNet hooks;
the weave app on the smoke model (per module) and a queued job for it."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from flask import Flask
from sqlalchemy.orm import Session, sessionmaker

from functions.weave.loading import WeaveModelConfig, load_pipelines
from functions.weave.main import create_app
from functions.weave.pipeline import CatVTONPipeline
from functions.weave.smoke import write_smoke_model
from shared.config import Settings
from tests.functions.conftest import dispose_function
from tests.functions.weave.handler_support import Job1


@pytest.fixture(scope="module", autouse=True)
def _one_thread() -> Iterator[None]:
    """Direct UNet calls in tests: tiny models run as fast on one thread, and far steadier
    on a busy 2-core box (the smoke pipeline itself sets 1 thread per call)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def weave_models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A models folder holding only the smoke model (`<dir>/smoke`), written once."""
    models = tmp_path_factory.mktemp("weave-models")
    write_smoke_model(models / "smoke")
    return models


@pytest.fixture(scope="session")
def smoke_config(weave_models_dir: Path) -> WeaveModelConfig:
    return WeaveModelConfig(model="smoke", models_dir=weave_models_dir, device="cpu")


@pytest.fixture(scope="session")
def pipelines(smoke_config: WeaveModelConfig) -> dict[str, CatVTONPipeline]:
    """Both smoke pipelines ("maskfree", "mask"), loaded through the real loader."""
    return load_pipelines(smoke_config)


@pytest.fixture(scope="session")
def maskfree(pipelines: dict[str, CatVTONPipeline]) -> CatVTONPipeline:
    return pipelines["maskfree"]


@pytest.fixture(scope="session")
def masked(pipelines: dict[str, CatVTONPipeline]) -> CatVTONPipeline:
    return pipelines["mask"]


@pytest.fixture
def unet_batches() -> Iterator[Callable[[CatVTONPipeline], list[tuple[int, ...]]]]:
    """Records the input shape of every UNet call of a pipeline (hook removed afterwards)."""
    handles = []

    def attach(pipe: CatVTONPipeline) -> list[tuple[int, ...]]:
        shapes: list[tuple[int, ...]] = []
        handles.append(pipe.unet.register_forward_pre_hook(lambda module, args: shapes.append(tuple(args[0].shape))))
        return shapes

    yield attach
    for handle in handles:
        handle.remove()


@pytest.fixture(scope="module")
def app(module_settings: Settings, weave_smoke_models: Path) -> Iterator[Flask]:
    settings = module_settings.with_overrides(models_dir=str(weave_smoke_models), weave_device="cpu")
    app = create_app(settings)
    client = app.test_client()
    deadline = time.monotonic() + 120
    while (ready := client.get("/readyz")).status_code != 200:
        assert time.monotonic() < deadline, f"weave never became ready: {ready.get_json()}"
        assert "error" not in ready.get_json(), ready.get_json()
        time.sleep(0.05)
    yield app
    dispose_function(app)


@pytest.fixture
def job(sessions: sessionmaker[Session], storage: Any) -> Job1:
    return Job1(sessions, storage)
