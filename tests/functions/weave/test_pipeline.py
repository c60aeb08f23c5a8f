"""CatVTONPipeline on the smoke model: determinism, batching, guidance, variants, repaint,
safety, progress, warm-up and speed switches. (Bad input: test_pipeline_inputs.py.)"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from functions.weave.attention import SkipCrossAttnProcessor
from functions.weave.loading import WeaveModelConfig, load_pipelines
from functions.weave.pipeline import CatVTONPipeline
from functions.weave.pipeline_common import PipelineOptions
from functions.weave.preprocess import center_crop_resize, prepare_mask, repaint_kernel_size
from functions.weave.request import TryOnRequest, run_requests
from tests.functions.weave.support import GARMENT, MASK, PERSON, H, W, dilate, noise_image, pixels, request

# -- determinism, seeds, batching ----------------------------------------------------------


def test_same_seed_same_pixels_other_seed_other_pixels(maskfree: CatVTONPipeline) -> None:
    a, b = maskfree([request(seed=11)]), maskfree([request(seed=11)])
    c = maskfree([request(seed=12)])
    assert np.array_equal(pixels(a[0].image), pixels(b[0].image))
    assert not np.array_equal(pixels(a[0].image), pixels(c[0].image))
    assert a[0].seed == 11 and a[0].metadata["seed"] == 11


def test_missing_seed_is_drawn_reported_and_reproduces(maskfree: CatVTONPipeline) -> None:
    first = maskfree([request(seed=None)])[0]
    assert isinstance(first.seed, int) and first.metadata["seed"] == first.seed
    again = maskfree([request(seed=first.seed)])[0]
    assert np.array_equal(pixels(first.image), pixels(again.image))


def test_seed_also_drives_vae_sampling(maskfree: CatVTONPipeline) -> None:
    """Global RNG state must not matter (upstream drew the VAE sample from it)."""
    torch.manual_seed(1)
    a = maskfree([request(seed=5)])[0]
    torch.manual_seed(2)
    np.random.seed(3)
    b = maskfree([request(seed=5)])[0]
    assert np.array_equal(pixels(a.image), pixels(b.image))


def test_vae_sample_comes_from_the_request_seed(maskfree) -> None:
    """The conditioning latents are a seeded sample, not the distribution's mean."""

    def conditioning(seed: int) -> torch.Tensor:
        captured: list[torch.Tensor] = []
        handle = maskfree.unet.register_forward_pre_hook(lambda module, args: captured.append(args[0][:1, 4:].clone()))
        try:
            maskfree([request(seed=seed, steps=1)])
        finally:
            handle.remove()
        return captured[0]

    a, b, c = conditioning(1), conditioning(1), conditioning(2)
    assert torch.equal(a, b) and not torch.allclose(a, c)


@pytest.mark.parametrize("variant", ["maskfree", "mask"])
def test_batched_equals_single(pipelines, unet_batches, variant: str) -> None:
    pipe = pipelines[variant]
    mask = MASK if variant == "mask" else None
    reqs = [
        request(seed=s, guidance=g, mask=mask, garment=noise_image(70, 90, seed=s))
        for s, g in ((1, 2.5), (2, 3.0), (3, 2.0))
    ]
    shapes = unet_batches(pipe)
    batched = pipe(reqs)
    assert [s[0] for s in shapes] == [6] * 4  # 3 requests x (cond + uncond), 4 steps
    singles = [pipe([r])[0] for r in reqs]
    for b, s in zip(batched, singles):
        assert b.seed == s.seed
        assert np.abs(pixels(b.image) - pixels(s.image)).max() <= 1
        assert b.metadata["batch_size"] == 3 and s.metadata["batch_size"] == 1
    assert not np.array_equal(pixels(batched[0].image), pixels(batched[1].image))


def test_incompatible_requests_are_grouped_never_mixed(maskfree, unet_batches) -> None:
    reqs = [
        request(seed=1),
        request(seed=2, height=64, width=64),
        request(seed=3, steps=2),
        request(seed=4),
        request(seed=5, guidance=1.0),
    ]
    shapes = unet_batches(maskfree)
    results = maskfree(reqs)
    # groups: {0, 3} 4 steps x batch 4; {1} 4 x 2; {2} 2 x 2; {4} 4 x 1 (no guidance pair)
    assert sorted(shapes) == sorted(
        [(4, 8, 16, 16)] * 4 + [(2, 8, 8, 16)] * 4 + [(2, 8, 16, 16)] * 2 + [(1, 8, 16, 16)] * 4
    )
    assert [r.image.size for r in results] == [(W, H), (64, 64), (W, H), (W, H), (W, H)]
    assert [r.seed for r in results] == [1, 2, 3, 4, 5]
    alone = maskfree([reqs[3]])[0]
    assert np.abs(pixels(results[3].image) - pixels(alone.image)).max() <= 1


def test_max_batch_size_splits_groups(maskfree, unet_batches) -> None:
    previous = maskfree.options.max_batch_size
    maskfree.options.max_batch_size = 2
    try:
        shapes = unet_batches(maskfree)
        maskfree([request(seed=s, steps=1) for s in range(3)])
    finally:
        maskfree.options.max_batch_size = previous
    assert sorted(s[0] for s in shapes) == [2, 4]


# -- guidance and the attention processor -------------------------------------------------


@pytest.mark.parametrize("guidance,batch", [(1.0, 1), (0.5, 1), (0.0, 1), (2.5, 2)])
def test_guidance_one_or_less_skips_unconditional_pass(maskfree, unet_batches, guidance, batch) -> None:
    shapes = unet_batches(maskfree)
    maskfree([request(guidance=guidance)])
    assert [s[0] for s in shapes] == [batch] * 4


def test_unconditional_member_has_zeroed_garment(maskfree, unet_batches) -> None:
    captured: list[torch.Tensor] = []
    handle = maskfree.unet.register_forward_pre_hook(lambda module, args: captured.append(args[0].clone()))
    try:
        maskfree([request(steps=1)])
    finally:
        handle.remove()
    x = captured[0]  # (2, 8, 16, 16): noisy 4 | person latent | garment latent (width)
    cond, uncond = x[0, 4:], x[1, 4:]
    assert torch.equal(cond[:, :, :8], uncond[:, :, :8])  # same person half
    assert torch.count_nonzero(uncond[:, :, 8:]) == 0  # garment zeroed
    assert torch.count_nonzero(cond[:, :, 8:]) > 0
    assert torch.equal(x[0, :4], x[1, :4])  # same noisy latent


def test_cross_attention_processor_returns_its_input(maskfree) -> None:
    hidden = torch.randn(2, 5, 32)
    out = SkipCrossAttnProcessor()(None, hidden, encoder_hidden_states=None)
    assert out is hidden and torch.count_nonzero(out) > 0
    processors = maskfree.unet.attn_processors
    attn2 = [n for n in processors if ".attn2." in f".{n}"]
    assert attn2 and all(isinstance(processors[n], SkipCrossAttnProcessor) for n in attn2)
    assert not any(isinstance(processors[n], SkipCrossAttnProcessor) for n in processors if ".attn1." in f".{n}")
    # inside the real network: every attn2 output equals its input, and it is not zero
    seen: list[bool] = []
    modules = [m for n, m in maskfree.unet.named_modules() if n.endswith("attn2")]
    hooks = [
        m.register_forward_hook(
            lambda mod, args, kwargs, out: seen.append(bool(torch.equal(out, args[0]) and out.abs().sum() > 0)),
            with_kwargs=True,
        )
        for m in modules
    ]
    try:
        with torch.no_grad():
            maskfree.unet(torch.randn(1, 8, 16, 16), 10, encoder_hidden_states=None)
    finally:
        for h in hooks:
            h.remove()
    assert seen and all(seen) and len(seen) == len(modules)


# -- variants, outputs, repaint ----------------------------------------------------------


def test_both_variants_join_and_channels(pipelines, unet_batches) -> None:
    free_shapes = unet_batches(pipelines["maskfree"])
    mask_shapes = unet_batches(pipelines["mask"])
    free = run_requests(pipelines, [request(steps=1)])[0]
    masked = run_requests(pipelines, [request(steps=1, mask=MASK)])[0]
    assert free_shapes == [(2, 8, H // 8, 2 * W // 8)]  # joined along width
    assert mask_shapes == [(2, 9, 2 * H // 8, W // 8)]  # joined along height, + mask channel
    assert free.metadata["variant"] == "maskfree" and masked.metadata["variant"] == "mask"


def test_mask_channel_marks_the_person_region(masked) -> None:
    captured: list[torch.Tensor] = []
    handle = masked.unet.register_forward_pre_hook(lambda module, args: captured.append(args[0].clone()))
    try:
        masked([request(steps=1, mask=MASK)])
    finally:
        handle.remove()
    m = captured[0][:, 4]  # (2, 32, 8): person rows 0..15, garment rows 16..31
    assert torch.equal(m[0], m[1])  # duplicated for the unconditional member
    assert m[0, :16].sum() > 0 and m[0, 16:].sum() == 0
    assert set(m.unique().tolist()) <= {0.0, 1.0}


def test_output_size_mode_and_metadata(pipelines) -> None:
    result = run_requests(pipelines, [request(category="lower")])[0]
    assert result.image.mode == "RGB" and result.image.size == (W, H)
    assert pixels(result.image).max() > 0  # never a black image
    meta = result.metadata
    for key in (
        "model",
        "variant",
        "steps",
        "guidance",
        "height",
        "width",
        "rendered_height",
        "rendered_width",
        "upscaled",
        "device",
        "dtype",
        "seconds",
    ):
        assert key in meta
    assert meta["model"] == "smoke" and meta["device"] == "cpu" and meta["dtype"] == "float32"
    assert (meta["height"], meta["width"], meta["rendered_height"], meta["rendered_width"]) == (H, W, H, W)
    assert meta["upscaled"] is False and meta["category"] == "lower" and meta["steps"] == 4


def test_default_request_renders_small_and_upscales_quickly(maskfree) -> None:
    """The smoke try-on at the default size (1024 x 768, 50 steps) takes seconds."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        result = maskfree([TryOnRequest(person=PERSON, garment=GARMENT, seed=3)])[0]
        assert torch.get_num_threads() == 2  # the smoke model's 1 thread is restored
    finally:
        torch.set_num_threads(threads)
    meta = result.metadata
    assert result.image.size == (768, 1024)
    assert (meta["rendered_height"], meta["rendered_width"], meta["upscaled"]) == (128, 96, True)
    assert meta["steps"] == 50 and meta["seconds"] < 20


def test_repaint_keeps_pixels_outside_the_mask(masked) -> None:
    plain, painted = masked([request(mask=MASK), request(mask=MASK, repaint=True)])
    person = pixels(center_crop_resize(PERSON, H, W))
    mask = np.asarray(prepare_mask(MASK, H, W)) > 127
    reach = repaint_kernel_size(H) // 2  # the blur's support
    core = ~dilate(~mask, 2 * reach)  # farther than erosion + blur from the edge
    out = pixels(painted.image)
    assert np.array_equal(out[~mask], person[~mask])  # every pixel outside the mask: the person's
    assert not np.array_equal(out[mask], person[mask])  # inside: generated
    assert core.sum() > 100
    assert np.array_equal(out[core], pixels(plain.image)[core])  # deep inside: the try-on's
    assert not np.array_equal(pixels(plain.image)[~mask], person[~mask])  # repaint did it
    assert painted.metadata["repaint"] is True


def test_maskfree_variant_can_repaint_with_a_mask(maskfree) -> None:
    result = maskfree([request(mask=MASK, variant="maskfree", repaint=True)])[0]
    assert result.metadata["variant"] == "maskfree" and result.metadata["repaint"] is True


# -- progress and safety -----------------------------------------------------------------


def test_progress_callback_reports_every_step(maskfree) -> None:
    calls: list[tuple[int, int]] = []
    maskfree([request(steps=3)], callback=lambda k, n: calls.append((k, n)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    calls.clear()  # two groups: counted over the whole call
    maskfree([request(steps=3), request(steps=2)], callback=lambda k, n: calls.append((k, n)))
    assert [k for k, _ in calls] == [1, 2, 3, 4, 5] and {n for _, n in calls} == {5}


def test_safety_checker_flags_without_blacking_out(maskfree) -> None:
    checker = maskfree.safety_checker
    assert checker is not None
    ok = maskfree([request()])[0]
    off = maskfree([request(safety_check=False)])[0]
    assert (ok.nsfw, ok.metadata["safety"]) == (False, "passed")
    assert (off.nsfw, off.metadata["safety"]) == (None, "off")
    saved = checker.concept_embeds_weights.detach().clone()
    with torch.no_grad():
        checker.concept_embeds_weights.fill_(-2.0)  # every image now scores as flagged
    try:
        flagged = maskfree([request()])[0]
    finally:
        with torch.no_grad():
            checker.concept_embeds_weights.copy_(saved)
    assert (flagged.nsfw, flagged.metadata["safety"]) == (True, "flagged")
    assert np.array_equal(pixels(flagged.image), pixels(ok.image))  # not blacked out


@pytest.mark.parametrize("variant", ["maskfree", "mask"])
def test_warm_up_runs_every_unet_batch_shape_once(pipelines, unet_batches, variant) -> None:
    """Guided single (2), guided full batch (2 x max), unguided single (1): after these a
    compiled UNet has met batch 1 and a dynamic batch, so no user request compiles."""
    pipe = pipelines[variant]
    shapes = unet_batches(pipe)
    batch_sizes = pipe.warm_up()
    assert batch_sizes == [2, 2 * pipe.options.max_batch_size, 1]
    assert [shape[0] for shape in shapes] == batch_sizes  # one step each
    assert len({shape[1:] for shape in shapes}) == 1  # all at the default request size


@pytest.fixture(scope="module")
def bf16_pipelines(smoke_config: WeaveModelConfig) -> dict[str, CatVTONPipeline]:
    """The dtype CUDA runs by default, here on the CPU: catches dtype mix-ups without a GPU."""
    return load_pipelines(dataclasses.replace(smoke_config, dtype="bf16"))


@pytest.mark.parametrize("variant", ["maskfree", "mask"])
def test_bf16_runs_both_variants_close_to_fp32(pipelines, bf16_pipelines, variant) -> None:
    mask = MASK if variant == "mask" else None
    alone = bf16_pipelines[variant]([request(mask=mask, repaint=mask is not None)])[0]
    batched = bf16_pipelines[variant]([request(mask=mask, repaint=mask is not None), request(mask=mask, seed=8)])[0]
    full = pipelines[variant]([request(mask=mask, repaint=mask is not None)])[0]
    assert alone.metadata["dtype"] == "bfloat16" and alone.image.size == (W, H)
    assert np.abs(pixels(alone.image) - pixels(batched.image)).max() <= 2
    assert np.abs(pixels(alone.image) - pixels(full.image)).mean() < 2.0


@pytest.mark.parametrize("switch", [{"channels_last": True}, {"sdpa_backend": "math"}, {"vae_slicing": False}])
def test_speed_switches_keep_the_pixels(smoke_config, maskfree, switch) -> None:
    assert maskfree.vae.use_slicing  # on by default
    options = PipelineOptions(**{**vars(maskfree.options), **switch})
    switched = load_pipelines(dataclasses.replace(smoke_config, variants=("maskfree",), options=options))["maskfree"]
    pair = [request(), request(seed=8)]  # a batch: the VAE sees 4 images at once, or one by one
    for ours, theirs in zip(switched(pair), maskfree(pair)):
        assert np.abs(pixels(ours.image) - pixels(theirs.image)).max() <= 2
