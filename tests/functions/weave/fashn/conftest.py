"""FASHN fixtures: the tiny family written once per session and loaded by the real loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from functions.weave.fashn.loading import load_fashn_pipeline
from functions.weave.fashn.pipeline import FashnVTONPipeline
from functions.weave.fashn.smoke import write_smoke_fashn


@pytest.fixture(scope="session")
def fashn_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_smoke_fashn(tmp_path_factory.mktemp("fashn-models") / "smoke")


@pytest.fixture(scope="session")
def fashn(fashn_root: Path) -> FashnVTONPipeline:
    return load_fashn_pipeline(fashn_root, device=torch.device("cpu"), dtype=torch.float32)


@pytest.fixture(scope="session")
def fashn_commercial(fashn_root: Path) -> FashnVTONPipeline:
    return load_fashn_pipeline(fashn_root, device=torch.device("cpu"), dtype=torch.float32, parser=False)


def photo(width: int = 200, height: int = 300, seed: int = 0) -> Image.Image:
    """A noisy photo with a bright figure in the middle (the tiny detector finds bright regions)."""
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 120, (height, width, 3), dtype=np.uint8)
    pixels[height // 6 : 5 * height // 6, width // 4 : 3 * width // 4] += 120
    return Image.fromarray(pixels)
