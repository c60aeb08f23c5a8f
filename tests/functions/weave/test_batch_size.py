"""functions/weave/batch_size.py: measuring images/s per batch size and keeping what pays."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from functions.weave.batch_size import choose_batch_limit, measure_throughput
from functions.weave.handler import WeaveFunction
from functions.weave.pipeline import CatVTONPipeline
from shared.contracts.tryon import CATVTON_VARIANT_MODELS
from shared.stage import Dependencies


@pytest.mark.parametrize(
    ("throughput", "limit"),
    [
        ({1: 10.0, 2: 19.0, 3: 27.0, 4: 30.0, 5: 30.5, 6: 29.0}, 4),  # 5 adds under 5%
        ({1: 10.0, 2: 9.0, 3: 8.0}, 1),  # batching never pays
        ({1: 10.0, 2: 9.0, 3: 12.0}, 3),  # a dip, then a size that beats every smaller one
        ({1: 10.0, 2: 20.0, 3: 30.0, 4: 40.0, 5: 50.0, 6: 60.0, 7: 70.0, 8: 80.0}, 8),
        ({1: 5.0}, 1),
    ],
)
def test_the_largest_size_that_still_raises_throughput_is_kept(throughput: dict[int, float], limit: int) -> None:
    assert choose_batch_limit(throughput) == limit


def test_measures_every_size_up_to_the_bound_on_the_pipelines_device(maskfree: CatVTONPipeline) -> None:
    throughput = measure_throughput(maskfree, 3, height=256, width=192, repeats=1)
    assert sorted(throughput) == [1, 2, 3] and all(v > 0 for v in throughput.values())


class _NoRedis:
    def hset(self, *args: Any) -> None:
        return None


def test_a_real_model_reports_the_measured_limit(
    pipelines: Mapping[str, CatVTONPipeline], settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Not the smoke model: weave measures at warm-up, keeps what pays, and says so."""
    from functions.weave import handler

    measured: list[int] = []

    def fake_measure(pipe: CatVTONPipeline, max_batch: int) -> dict[int, float]:
        measured.append(max_batch)
        return {1: 10.0, 2: 19.0, 3: 19.5}

    monkeypatch.setattr(handler, "measure_throughput", fake_measure)
    for pipe in pipelines.values():
        monkeypatch.setattr(pipe, "model_name", "catvton")
        monkeypatch.setattr(pipe.options, "max_batch_size", pipe.options.max_batch_size)  # restored after
    deps = Dependencies(settings, None, None, _NoRedis())  # type: ignore[arg-type]  # none are used here
    named = {CATVTON_VARIANT_MODELS[variant]: pipe for variant, pipe in pipelines.items()}
    function = WeaveFunction(deps, lambda: named, max_batch=3)
    function._loaded.wait(30)
    assert measured == [3]
    info = function.model_info()
    assert info["max_batch"] == 2 and info["batch_images_per_s"] == {1: 10.0, 2: 19.0, 3: 19.5}
    assert all(pipe.options.max_batch_size == 2 for pipe in pipelines.values())
