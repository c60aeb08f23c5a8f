"""Weave fixtures: the smoke model written once per session, its two pipelines, UNet hooks."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from functions.weave.loading import WeaveModelConfig, load_pipelines
from functions.weave.pipeline import CatVTONPipeline
from functions.weave.smoke import write_smoke_model


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
