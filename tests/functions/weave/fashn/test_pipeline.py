"""FashnVTONPipeline on the tiny family: determinism, batching, every input combination,
the commercial restriction, seeds, progress and cancellation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from functions.weave.fashn.pipeline import FashnRequest, FashnVTONPipeline
from functions.weave.fashn.sampling import time_schedule
from shared.errors import BadRequest, LicenceRestricted
from tests.functions.weave.fashn.conftest import photo


def pixels(image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def request(**kw) -> FashnRequest:
    kw.setdefault("person", photo(seed=1))
    kw.setdefault("garment", photo(240, 240, seed=2))
    kw.setdefault("steps", 4)
    return FashnRequest(**kw)


def test_fixed_seed_gives_identical_output_twice(fashn: FashnVTONPipeline) -> None:
    a, b = fashn([request(seed=7)])[0], fashn([request(seed=7)])[0]
    c = fashn([request(seed=8)])[0]
    assert np.array_equal(pixels(a.image), pixels(b.image)) and a.seed == 7
    assert not np.array_equal(pixels(a.image), pixels(c.image))


def test_batched_equals_single(fashn: FashnVTONPipeline) -> None:
    reqs = [
        request(seed=s, guidance=g, garment=photo(200, 260, seed=s), category=c)
        for s, g, c in ((1, 1.5, "upper"), (2, 2.5, "lower"), (3, 1.0, "overall"))
    ]
    batched = fashn(reqs)
    singles = [fashn([r])[0] for r in reqs]
    for b, s in zip(batched, singles):
        assert b.metadata["batch_size"] == 3 and s.metadata["batch_size"] == 1
        assert np.abs(pixels(b.image) - pixels(s.image)).max() <= 1
    assert not np.array_equal(pixels(batched[0].image), pixels(batched[1].image))


@pytest.mark.parametrize("photo_type", ["model", "flat-lay"])
@pytest.mark.parametrize("segmentation_free", [True, False])
@pytest.mark.parametrize("category", ["upper", "lower", "overall"])
def test_every_input_combination_runs(fashn, photo_type, segmentation_free, category) -> None:
    result = fashn(
        [
            request(
                seed=3, garment_photo_type=photo_type, segmentation_free=segmentation_free, category=category, steps=2
            )
        ]
    )[0]
    assert result.image.mode == "RGB" and result.image.size == (32, 48)
    meta = result.metadata
    assert meta["model"] == "fashn-vton-1.5" and meta["garment_photo_type"] == photo_type
    assert meta["segmentation_free"] is segmentation_free
    assert meta["fashn_category"] == {"upper": "tops", "lower": "bottoms", "overall": "one-pieces"}[category]


def test_inputs_change_the_result(fashn) -> None:
    base = pixels(fashn([request(seed=4)])[0].image)
    for change in (
        {"segmentation_free": False},
        {"garment_photo_type": "flat-lay"},
        {"category": "lower"},
        {"guidance": 3.0},
    ):
        assert not np.array_equal(base, pixels(fashn([request(seed=4, **change)])[0].image)), change


def test_output_keeps_the_fitted_person_size(fashn) -> None:
    wide = fashn([request(seed=1, person=photo(400, 200, seed=5))])[0]
    assert wide.image.size == (32, 16)  # pre-resized to 48 x 24, fitted to 32 wide, padding cropped


def test_uses_the_doubled_batch_and_the_schedule(fashn, monkeypatch) -> None:
    seen = []
    original = fashn._network

    def spy(x, t, *rest):
        seen.append((x.shape[0], t.tolist(), rest[-1].tolist()))
        return original(x, t, *rest)

    monkeypatch.setattr(fashn, "_network", spy)
    fashn([request(seed=1, steps=3), request(seed=2, steps=3)])
    times = time_schedule(3)
    assert [s[0] for s in seen] == [4, 4, 4]
    assert seen[1][1] == pytest.approx([float(times[1])] * 4)
    assert seen[0][2] == [True, True, False, False]


def test_progress_callback_counts_steps_and_can_cancel(fashn) -> None:
    steps = []
    fashn([request(seed=1, steps=3)], callback=lambda k, n: steps.append((k, n)))
    assert steps == [(1, 3), (2, 3), (3, 3)]

    class Cancelled(Exception):
        pass

    def cancel(k: int, n: int) -> None:
        if k == 1:
            raise Cancelled

    with pytest.raises(Cancelled):
        fashn([request(seed=1, steps=3)], callback=cancel)


def test_unseeded_request_draws_and_reports_its_seed(fashn) -> None:
    result = fashn([request()])[0]
    again = fashn([request(seed=result.seed)])[0]
    assert np.array_equal(pixels(result.image), pixels(again.image))


@pytest.mark.parametrize(
    "field,value",
    [
        ("category", "hats"),
        ("garment_photo_type", "auto"),
        ("steps", 0),
        ("guidance", float("nan")),
        ("seed", -1),
        ("segmentation_free", "yes"),
        ("skip_cfg_last_n", 9),
    ],
)
def test_bad_values_are_refused_by_name(fashn, field, value) -> None:
    with pytest.raises(BadRequest) as err:
        fashn([request(**{field: value})])
    assert err.value.field == field and repr(value) in err.value.message


def test_commercial_pipeline_serves_only_parser_free_requests(fashn_commercial) -> None:
    assert fashn_commercial.human_parser is None
    ok = fashn_commercial([request(seed=1, garment_photo_type="flat-lay", segmentation_free=True)])[0]
    assert ok.image.size == (32, 48)
    for kw in ({"garment_photo_type": "model"}, {"garment_photo_type": "flat-lay", "segmentation_free": False}):
        with pytest.raises(LicenceRestricted) as err:
            fashn_commercial([request(seed=1, **kw)])
        assert err.value.status == 403 and "non-commercial" in err.value.message


def test_bf16_pipeline_runs(fashn_root) -> None:
    from functions.weave.fashn.loading import load_fashn_pipeline

    bf16 = load_fashn_pipeline(fashn_root, device=torch.device("cpu"), dtype=torch.bfloat16)
    assert bf16.dtype == torch.bfloat16
    result = bf16([request(seed=5, steps=2)])[0]
    assert result.metadata["dtype"] == "bfloat16" and result.image.size == (32, 48)
